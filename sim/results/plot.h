/* plot.h — gnuplot plots of a run or sweep folder (tools/plot-run.gp, tools/plot-sweep.gp) and `dupsim plot`. */
#ifndef DUPSIM_PLOT_H
#define DUPSIM_PLOT_H

#include <stddef.h>

/* report_write(), report_write_sweep(): `dupsim plot` and its callers use both modules. */
#include "results/report.h"

/*
 * Writes DIR/plots/{timeseries,gaps-cdf,miss-vs-ttl,copies}.{png,svg} from a
 * run folder's CSV files (see DESIGN.md). A plot whose data file is missing
 * or has only its header is skipped, and a stale image of it removed; that is
 * not an error. Runs gnuplot once per format. 0, or -1 with one line in err
 * (folder missing, gnuplot or the script missing, gnuplot failed).
 *
 * The scripts are looked up in $DUPSIM_TOOLS, else in the folder of the
 * running executable + "/../tools" (build/dupsim -> tools/).
 */
int plot_run(const char *dir, char *err, size_t errlen);

/*
 * Writes DIR/plots/sweep.dat (the rows of DIR/sweep.csv against the first
 * varied key, with a Poisson 95 % band on the duplicate rate) and
 * DIR/plots/sweep-duprate.{png,svg}, DIR/plots/sweep-miss.{png,svg}
 * (the latter only when some run saw a duplicate). 0 or -1 with err.
 */
int plot_sweep(const char *dir, char *err, size_t errlen);

/*
 * `dupsim plot DIR`: a run folder (has summary.json) gets plot_run +
 * report_write, a sweep folder (has sweep.csv) plot_sweep +
 * report_write_sweep. argv[0] is "plot". Returns the exit code: 0 done,
 * 1 could not plot (gnuplot missing or failed, cannot write), 2 bad command
 * line or DIR is neither kind of folder.
 */
int plot_cli(int argc, char **argv);

/*
 * A small CSV table as dupsim writes them (a header line, double-quoted
 * fields may hold commas and "" quotes). Cells are NUL-terminated strings
 * owned by the table; a short row reads as empty cells.
 */
struct plot_csv {
	size_t ncols;
	size_t nrows;
	char **head;  /* ncols names */
	char **cells; /* nrows * ncols, row-major */
	char *buf;    /* backing store of every string */
};

/* Reads path into t. 0; -1 with errno set (ENOENT when missing, EINVAL when it has no header). */
int plot_csv_read(const char *path, struct plot_csv *t);
/* Frees what plot_csv_read allocated; t may be zeroed or already freed. */
void plot_csv_free(struct plot_csv *t);
/* Index of the column named name, or -1. */
int plot_csv_col(const struct plot_csv *t, const char *name);
/* The cell at row, col ("" outside the table). */
const char *plot_csv_cell(const struct plot_csv *t, size_t row, int col);

#endif
