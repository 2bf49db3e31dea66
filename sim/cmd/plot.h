/* plot.h — `dupsim plot DIR`: the plots and report.md of a run or sweep folder, drawn again. */
#ifndef DUPSIM_CMD_PLOT_H
#define DUPSIM_CMD_PLOT_H

/*
 * `dupsim plot DIR`: a run folder (has summary.json) is loaded with
 * results_load and gets its plots and report.md, a sweep folder (has
 * sweep.csv) is loaded with sweep_load and gets the sweep's. argv[0] is
 * "plot". Returns the exit code: 0 done, 1 could not plot (gnuplot missing
 * or failed, cannot write), 2 bad command line or DIR is neither kind of
 * folder.
 */
int plot_cli(int argc, char **argv);

#endif
