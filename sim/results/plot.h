/* plot.h — gnuplot plots of a run or sweep (tools/plot-run.gp, tools/plot-sweep.gp, plot-sweep-store.gp), drawn from struct results / struct sweep. */
#ifndef DUPSIM_PLOT_H
#define DUPSIM_PLOT_H

#include <stddef.h>

#include "results/results.h"
#include "results/sweep.h"

/*
 * Writes DIR/plots/{timeseries,gaps-cdf,miss-vs-ttl,copies}.{png,svg} from
 * the run folder's CSV files (gnuplot reads them; see DESIGN.md), with the
 * titles and marks from r. A plot whose data file has no rows (r->has_rows)
 * is skipped, and a stale image of it removed; that is not an error. Runs
 * gnuplot once per format. 0, or -1 with one line in err (folder missing,
 * gnuplot or the script missing, gnuplot failed).
 *
 * The scripts are looked up in $DUPSIM_TOOLS, else in the folder of the
 * running executable + "/../tools" (build/dupsim -> tools/).
 */
int plot_draw_run(const char *dir, const struct results *r, char *err, size_t errlen);
/* The same for a run folder, loaded with results_load (summary.json optional: titles and marks only). */
int plot_run(const char *dir, char *err, size_t errlen);

/*
 * Writes DIR/plots/sweep.dat (the runs of s against the first varied key,
 * with each run's 95 % band on the duplicate rate) and
 * DIR/plots/sweep-duprate.{png,svg}, DIR/plots/sweep-miss.{png,svg}
 * (the latter only when some run saw a duplicate); issue 14, from the same
 * file: DIR/plots/sweep-throughput.{png,svg} (processed msg/s and the
 * store's latency; when some run has a throughput) and
 * DIR/plots/sweep-race.{png,svg} (race misses and the miss probability;
 * when some run had a race miss or its store on a host of its own). 0 or
 * -1 with err.
 */
int plot_draw_sweep(const char *dir, const struct sweep *s, char *err, size_t errlen);
/* The same for a sweep folder, loaded with sweep_load. */
int plot_sweep(const char *dir, char *err, size_t errlen);

#endif
