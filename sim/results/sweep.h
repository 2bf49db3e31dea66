/* sweep.h — a sweep in memory (a row per run: the varied values and the run's figures), sweep.csv written from it and read back. */
#ifndef DUPSIM_SWEEP_H
#define DUPSIM_SWEEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "results/results.h"

#define SWEEP_VARY_MAX 8

/* The figures of a row, in sweep.csv's column order (after run and the varied keys). */
enum sweep_col {
	SWEEP_COMMITTED,
	SWEEP_PUBLISH_ATTEMPTS,
	SWEEP_EXCESS_COPIES,
	SWEEP_DELIVERIES,
	SWEEP_DUPLICATE_DELIVERIES,
	SWEEP_DUPLICATES_PROCESSED,
	SWEEP_LOST,
	SWEEP_WRONGLY_SUPPRESSED,
	SWEEP_DUPLICATE_RATE,
	SWEEP_PREDICTED_DUPLICATE_RATE,
	SWEEP_MISS_PROBABILITY,
	SWEEP_MISS_CI_LOW,
	SWEEP_MISS_CI_HIGH,
	SWEEP_FAULTS_FIRED,
	SWEEP_FAULT_EVENTS,
	SWEEP_DUPLICATE_RATE_LOW,
	SWEEP_DUPLICATE_RATE_HIGH,
	/* issue 14: the shared store's trade-off */
	SWEEP_PROCESSED_PER_S,	     /* throughput.processed_per_s */
	SWEEP_MISSES_RACE,	     /* misses_by_cause.race */
	SWEEP_STORE_LATENCY_US_P50, /* dedup.store_latency_us_p50 */
	SWEEP_STORE_PING_MS,	     /* hosts.store_ping_ms: the link's measured round trip */
	SWEEP_COLS
};
/* The column name of each (sweep.csv's header). */
extern const char *const sweep_col_name[SWEEP_COLS];

struct sweep_row {
	char name[64];			    /* the run's folder in the sweep folder */
	char values[SWEEP_VARY_MAX][256];   /* of the varied keys */
	double v[SWEEP_COLS];		    /* NaN: unknown (a failed run has none) */
	char status[32];		    /* the run's status, or "failed" */
};

struct sweep {
	size_t nvaried;
	char keys[SWEEP_VARY_MAX][96]; /* section.key */
	bool has[SWEEP_COLS];	       /* loaded: the column was in the file */
	struct sweep_row *rows;
	size_t nrows, cap;
};

/* An empty sweep over these keys (nvaried <= SWEEP_VARY_MAX); sweep_release frees it. */
void sweep_init(struct sweep *s, const char *const *keys, size_t nvaried);
void sweep_release(struct sweep *s);
/* Appends a row: the run's figures from res, or a failed run when res is NULL. 0 or -1 (memory). */
int sweep_add(struct sweep *s, const char *name, const char *const *values, const struct results *res);
/* Writes sweep.csv: every column, or of a loaded sweep the columns its file had (so it reads back the same). */
void sweep_write_csv(const struct sweep *s, FILE *f);
/*
 * The one reader of DIR/sweep.csv into s (sweep_init'ed by it): the columns
 * run, the varied keys, committed, ... 0, or -1 with one line in err.
 */
int sweep_load(struct sweep *s, const char *dir, char *err, size_t errlen);

#endif
