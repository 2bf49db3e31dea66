/* csv.h — the CSV files of a results folder: one reader for all of them, the writers of the run's tables. */
#ifndef DUPSIM_CSV_H
#define DUPSIM_CSV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * A small CSV table as dupsim writes them (a header line, double-quoted
 * fields may hold commas and "" quotes). Cells are NUL-terminated strings
 * owned by the table; a short row reads as empty cells.
 */
struct csv {
	size_t ncols;
	size_t nrows;
	char **head;  /* ncols names */
	char **cells; /* nrows * ncols, row-major */
	char *buf;    /* backing store of every string */
};

/* Reads path into t. 0; -1 with errno set (ENOENT when missing, EINVAL when it has no header). */
int csv_read(const char *path, struct csv *t);
/* Frees what csv_read allocated; t may be zeroed or already freed. */
void csv_free(struct csv *t);
/* Index of the column named name, or -1. */
int csv_col(const struct csv *t, const char *name);
/* The cell at row, col ("" outside the table). */
const char *csv_cell(const struct csv *t, size_t row, int col);
/* The cell as a number; NaN when empty or not a number. */
double csv_num(const struct csv *t, size_t row, int col);
/* Data rows of DIR/NAME; 0 when it is missing or has only its header. */
size_t csv_rows(const char *dir, const char *name);

/* One row of timeseries.csv: the run's counters at t seconds. */
struct csv_tick {
	double t;
	uint64_t published, confirmed, deliveries, duplicates, executions, faults, reconnects;
};
void csv_write_timeseries(FILE *f, const struct csv_tick *ticks, size_t n);

/* copies.csv from messages by distinct copies delivered: [0..32], [33] more than 32. */
void csv_write_copies(FILE *f, const uint64_t hist[34]);

/* One row of curve.csv: the predicted miss probability at one TTL (low/high NaN: no interval). */
struct csv_curve_point {
	double ttl_ms, estimate, low, high;
	uint64_t dups, events;
};
void csv_write_curve(FILE *f, const struct csv_curve_point *pts, size_t n);

/*
 * One row of periods.csv: a stretch of the run's timetable, in seconds from
 * its start (the warm-up, a schedule's window, the cool-down), and what it is
 * (a rule's text, "warmup", "cooldown"); the timeseries plot shades each.
 */
struct csv_period {
	double start_s, end_s;
	const char *label;
};
void csv_write_periods(FILE *f, const struct csv_period *p, size_t n);

#endif
