/* plot.c — `dupsim plot DIR`: loads a run or sweep folder, draws its plots, writes its report.md. */
#include "cmd/plot.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "results/plot.h"
#include "results/report.h"
#include "results/results.h"
#include "results/sweep.h"

static void plot_usage(FILE *f)
{
	fprintf(f, "usage: dupsim plot DIR\n"
		   "\n"
		   "Draws the plots of a results folder with gnuplot into DIR/plots/ (PNG and SVG)\n"
		   "and writes DIR/report.md beside them:\n"
		   "  a run folder (summary.json): timeseries, gaps-cdf, miss-vs-ttl, copies\n"
		   "  a sweep folder (sweep.csv):  sweep-duprate, sweep-miss\n"
		   "The scripts are tools/plot-run.gp and tools/plot-sweep.gp (found beside the\n"
		   "dupsim binary, or in $DUPSIM_TOOLS).\n"
		   "\n"
		   "Exit codes: 0 done, 1 could not plot or write, 2 bad command line or DIR is\n"
		   "not a results folder.\n");
}

/* Loads a run folder once, then draws and reports from it; -1 (rerr) when it can't be loaded. */
static int plot_run_folder(const char *dir, int *prc, int *rrc, char *err, char *rerr, size_t errlen)
{
	static struct results r; /* large; one per process */

	if (results_load(&r, dir, rerr, errlen) < 0)
		return -1;
	*prc = plot_draw_run(dir, &r, err, errlen);
	/* the report is worth having without its plots */
	*rrc = report_run(dir, &r, rerr, errlen);
	return 0;
}

static int plot_sweep_folder(const char *dir, int *prc, int *rrc, char *err, char *rerr, size_t errlen)
{
	struct sweep s;

	if (sweep_load(&s, dir, rerr, errlen) < 0)
		return -1;
	*prc = plot_draw_sweep(dir, &s, err, errlen);
	*rrc = report_sweep(dir, &s, rerr, errlen);
	sweep_release(&s);
	return 0;
}

int plot_cli(int argc, char **argv)
{
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 } };
	char path[PATH_MAX + 32], err[1024], rerr[1024], dirbuf[PATH_MAX];
	const char *dir;
	struct stat st;
	bool sweep;
	int opt, prc, rrc;

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h') {
			plot_usage(stdout);
			return 0;
		}
		log_line("plot: unknown option '%s'; see dupsim plot --help", argv[optind - 1]);
		return 2;
	}
	if (optind != argc - 1) {
		log_line("plot: expected one results folder DIR (e.g. results/latest); see dupsim plot --help");
		return 2;
	}
	snprintf(dirbuf, sizeof(dirbuf), "%s", argv[optind]);
	for (size_t n = strlen(dirbuf); n > 1 && dirbuf[n - 1] == '/'; n--)
		dirbuf[n - 1] = '\0';
	dir = dirbuf;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		log_line("plot: %s: %s", dir, stat(dir, &st) < 0 ? strerror(errno) : "not a folder");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/summary.json", dir);
	if (access(path, R_OK) == 0) {
		sweep = false;
	} else {
		snprintf(path, sizeof(path), "%s/sweep.csv", dir);
		if (access(path, R_OK) != 0) {
			log_line("plot: %s is neither a run folder (summary.json) nor a sweep folder (sweep.csv)", dir);
			return 2;
		}
		sweep = true;
	}
	if (sweep ? plot_sweep_folder(dir, &prc, &rrc, err, rerr, sizeof(err)) < 0
		  : plot_run_folder(dir, &prc, &rrc, err, rerr, sizeof(err)) < 0) {
		log_line("plot: %s", rerr);
		return 1;
	}
	if (prc < 0)
		log_line("plot: %s", err);
	if (rrc < 0)
		log_line("plot: report: %s", rerr);
	if (prc < 0 || rrc < 0)
		return 1;
	printf("dupsim plot: %s/plots/, %s/report.md\n", dir, dir);
	return 0;
}
