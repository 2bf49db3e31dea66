/* report.h — report.md of a run or sweep folder: the measured numbers beside the model's, what they can claim, the plots. */
#ifndef DUPSIM_REPORT_H
#define DUPSIM_REPORT_H

#include <stddef.h>

#include "results/results.h"
#include "results/sweep.h"

/*
 * Writes DIR/report.md for a run from its results: the summary table,
 * measured beside predicted, what the run can and cannot claim, the model's
 * assumptions, and the images found in DIR/plots/ (draw the plots first to
 * have them). Replaces the file atomically. 0, or -1 with one line in err.
 */
int report_run(const char *dir, const struct results *r, char *err, size_t errlen);
/* The same for a run folder, loaded with results_load. */
int report_write(const char *dir, char *err, size_t errlen);

/* Writes DIR/report.md for a sweep: a row per run and the sweep plots found
 * in DIR/plots/. 0, or -1 with one line in err. */
int report_sweep(const char *dir, const struct sweep *s, char *err, size_t errlen);
/* The same for a sweep folder, loaded with sweep_load. */
int report_write_sweep(const char *dir, char *err, size_t errlen);

#endif
