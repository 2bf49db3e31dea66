/* report.h — report.md of a run or sweep folder: the measured numbers beside the model's, what they can claim, the plots. */
#ifndef DUPSIM_REPORT_H
#define DUPSIM_REPORT_H

#include <stddef.h>

/*
 * Writes DIR/report.md for a run folder from DIR/summary.json (and
 * scenario.ini for the TTL): the summary table, measured beside predicted,
 * what the run can and cannot claim, the model's assumptions, and the images
 * found in DIR/plots/ (call plot_run first to have them). Replaces the file
 * atomically. 0, or -1 with one line in err.
 */
int report_write(const char *dir, char *err, size_t errlen);

/* Writes DIR/report.md for a sweep folder from DIR/sweep.csv: a row per run
 * and the sweep plots found in DIR/plots/. 0, or -1 with one line in err. */
int report_write_sweep(const char *dir, char *err, size_t errlen);

#endif
