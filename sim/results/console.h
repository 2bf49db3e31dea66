/* console.h — the summary `dupsim run` prints when it is done, rendered from struct results. */
#ifndef DUPSIM_CONSOLE_H
#define DUPSIM_CONSOLE_H

#include <stdio.h>

#include "results/results.h"

/*
 * Prints the run's summary to f: measured beside predicted, the headline
 * claim in fault events, the faults, the invariants, then notes (lines the
 * run adds that summary.json does not hold, each ending in '\n'; may be "").
 * out_dir names the results folder in the first line.
 */
void console_print(FILE *f, const struct results *r, const char *out_dir, const char *notes);

#endif
