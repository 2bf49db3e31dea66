/* plot.c — gnuplot over a run or sweep: the runner, the variables of the scripts, the sweep's data file. */
#include "results/plot.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/files.h"
#include "core/log.h"
#include "core/parse.h"

extern char **environ;

/* gnuplot draws a run's plots in well under a second; this only catches a hang. */
#define PLOT_TIMEOUT_MS 120000
/* Fault rules drawn as rows under the time series; more would not be readable. */
#define PLOT_MAX_RULES 12

static const char *const plot_formats[] = { "png", "svg" };
static const char *const plot_run_names[] = { "timeseries", "gaps-cdf", "miss-vs-ttl", "copies" };
static const char *const plot_sweep_names[] = { "sweep-duprate", "sweep-miss" };
/* issue 14: the shared store's trade-off (tools/plot-sweep-store.gp) */
static const char *const plot_store_names[] = { "sweep-throughput", "sweep-race" };

/* ---- gnuplot ---- */

/* The path of a gnuplot script: $DUPSIM_TOOLS, else beside the executable in ../tools or ../share/dupsim/tools. */
static int plot_script(const char *name, char *path, size_t len, char *err, size_t errlen)
{
	const char *env = getenv("DUPSIM_TOOLS");
	char exe[PATH_MAX];
	ssize_t n;
	char *slash;

	if (env && *env) {
		snprintf(path, len, "%s/%s", env, name);
		if (access(path, R_OK) == 0)
			return 0;
		return log_seterr(err, errlen, "cannot read %s: DUPSIM_TOOLS=%s should name dupsim's tools/ folder", path,
				env);
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return log_seterr(err, errlen, "cannot find %s: set DUPSIM_TOOLS to dupsim's tools/ folder", name);
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	if ((size_t)snprintf(path, len, "%s/../tools/%s", exe, name) < len && access(path, R_OK) == 0)
		return 0;
	if ((size_t)snprintf(path, len, "%s/../share/dupsim/tools/%s", exe, name) < len && access(path, R_OK) == 0)
		return 0;
	return log_seterr(err, errlen, "cannot find %s in %s/../tools: set DUPSIM_TOOLS to dupsim's tools/ folder", name,
			exe);
}

/* name='value'; as a gnuplot string: '' stands for a quote, control characters become blanks. */
static void plot_var_str(FILE *f, const char *name, const char *val)
{
	fprintf(f, "%s='", name);
	for (const char *p = val; *p; p++) {
		if (*p == '\'')
			fputs("''", f);
		else
			fputc((unsigned char)*p < 0x20 ? ' ' : *p, f);
	}
	fputs("'; ", f);
}

/* name=value; as a gnuplot float (a decimal point keeps it from being an integer); nothing when not finite. */
static void plot_var_num(FILE *f, const char *name, double v)
{
	char b[64];

	if (!isfinite(v))
		return;
	snprintf(b, sizeof(b), "%.10g", v);
	fprintf(f, "%s=%s%s; ", name, b, strpbrk(b, ".eEn") ? "" : ".0");
}

static void plot_var_int(FILE *f, const char *name, long v)
{
	fprintf(f, "%s=%ld; ", name, v);
}

/* The last non-blank line of gnuplot's stderr: where it names the script line and the problem. */
static const char *plot_last_line(char *text)
{
	char *line = NULL;

	for (char *p = strtok(text, "\n"); p; p = strtok(NULL, "\n")) {
		char *q = p;

		while (*q == ' ' || *q == '\t' || *q == '^')
			q++;
		if (*q)
			line = q;
	}
	return line ? line : "(no message)";
}

/* Runs `gnuplot -e VARS SCRIPT` with stderr captured; 0, or -1 with gnuplot's complaint in err. */
static int plot_gnuplot(const char *script, const char *vars, char *err, size_t errlen)
{
	char *const argv[] = { "gnuplot", "-e", (char *)vars, (char *)script, NULL };
	char out[8192];
	size_t used = 0;
	posix_spawn_file_actions_t fa;
	int pfd[2], rc, st = 0;
	pid_t pid;
	bool timed_out = false;
	uint64_t deadline = clock_now_ns() + (uint64_t)PLOT_TIMEOUT_MS * 1000000u;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return log_seterr(err, errlen, "cannot run gnuplot: pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	rc = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (rc != 0) {
		close(pfd[0]);
		if (rc == ENOENT)
			return log_seterr(err, errlen,
					"gnuplot is not installed (apt-get install gnuplot-nox), so no plots were drawn");
		return log_seterr(err, errlen, "cannot run gnuplot: %s", strerror(rc));
	}
	for (;;) {
		struct pollfd p = { .fd = pfd[0], .events = POLLIN };
		uint64_t now = clock_now_ns();
		char chunk[1024];
		ssize_t n;

		if (now >= deadline) {
			timed_out = true;
			kill(pid, SIGKILL);
			break;
		}
		rc = poll(&p, 1, (int)((deadline - now) / 1000000u) + 1);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			continue;
		n = read(pfd[0], chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		/* keep the tail (chunk is smaller than out): gnuplot ends with the line that says what went wrong */
		if (used + (size_t)n > sizeof(out) - 1) {
			size_t drop = used + (size_t)n - (sizeof(out) - 1);

			memmove(out, out + drop, used - drop);
			used -= drop;
		}
		memcpy(out + used, chunk, (size_t)n);
		used += (size_t)n;
	}
	close(pfd[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	out[used] = '\0';
	if (timed_out)
		return log_seterr(err, errlen, "gnuplot took longer than %d s on %s and was stopped", PLOT_TIMEOUT_MS / 1000,
				script);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return log_seterr(err, errlen, "gnuplot failed on %s: %s", script, plot_last_line(out));
	return 0;
}

/* Removes DIR/plots/NAME.{png,svg}: a plot whose data went away must not show old numbers. */
static void plot_remove(const char *dir, const char *name)
{
	char path[PATH_MAX];

	for (size_t f = 0; f < sizeof(plot_formats) / sizeof(plot_formats[0]); f++) {
		snprintf(path, sizeof(path), "%s/plots/%s.%s", dir, name, plot_formats[f]);
		unlink(path);
	}
}

/* True when DIR/plots/NAME.FMT exists and is not empty. */
static bool plot_exists(const char *dir, const char *name, const char *fmt)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/plots/%s.%s", dir, name, fmt);
	return stat(path, &st) == 0 && st.st_size > 0;
}

/*
 * Runs script once per format with vars + fmt, then checks that every plot
 * flagged in want[] was written. 0 or -1 with err.
 */
static int plot_draw(const char *dir, const char *script, const char *vars, const char *const *names,
		     const bool *want, size_t nnames, char *err, size_t errlen)
{
	for (size_t f = 0; f < sizeof(plot_formats) / sizeof(plot_formats[0]); f++) {
		char *all = NULL;

		if (asprintf(&all, "%sfmt='%s'", vars, plot_formats[f]) < 0)
			return log_seterr(err, errlen, "out of memory");
		if (plot_gnuplot(script, all, err, errlen) < 0) {
			free(all);
			return -1;
		}
		free(all);
		for (size_t i = 0; i < nnames; i++)
			if (want[i] && !plot_exists(dir, names[i], plot_formats[f]))
				return log_seterr(err, errlen, "gnuplot wrote no %s/plots/%s.%s", dir, names[i],
						plot_formats[f]);
	}
	return 0;
}

/* mkdir DIR/plots after checking that DIR is a folder. */
static int plot_prepare(const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct stat st;

	if (stat(dir, &st) < 0)
		return log_seterr(err, errlen, "%s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return log_seterr(err, errlen, "%s is not a folder", dir);
	snprintf(path, sizeof(path), "%s/plots", dir);
	if (files_mkdir_p(path, 0755) < 0)
		return log_seterr(err, errlen, "cannot create %s: %s", path, strerror(errno));
	return 0;
}

/* Lowest value drawn on a log axis of probabilities: the decade under half the smallest positive value. */
static double plot_floor(double min_pos)
{
	double f;

	if (!isfinite(min_pos) || min_pos <= 0)
		return 1e-4;
	f = pow(10, floor(log10(min_pos / 2)));
	return f < 1e-12 ? 1e-12 : f > 0.1 ? 0.1 : f;
}

/* ---- run folder ---- */

/* The fault rules for the raster under the time series (the summary's first, so rules that never fired
 * still get their empty row), and their -e variables; none when faults.csv has no row. */
static void plot_run_rules(FILE *v, const struct results *r)
{
	size_t n = r->faults.rule_count < PLOT_MAX_RULES ? r->faults.rule_count : PLOT_MAX_RULES;
	uint64_t rows = 0;

	for (size_t i = 0; i < r->faults.rule_count; i++)
		rows += r->faults.rules[i].rows;
	if (!rows)
		n = 0;
	plot_var_int(v, "nrules", (long)n);
	for (size_t i = 0; i < n; i++) {
		const struct results_rule *ru = &r->faults.rules[i];
		char name[32], title[600];

		snprintf(name, sizeof(name), "rule%zu", i + 1);
		plot_var_str(v, name, ru->text);
		snprintf(name, sizeof(name), "rtitle%zu", i + 1);
		snprintf(title, sizeof(title), "%s (fired %" PRIu64 " time%s)", ru->text, ru->rows, ru->rows == 1 ? "" : "s");
		plot_var_str(v, name, title);
	}
}

/* Base name of a folder path, ignoring trailing slashes. */
static void plot_basename(const char *dir, char *out, size_t len)
{
	size_t n = strlen(dir);
	const char *s;

	while (n > 1 && dir[n - 1] == '/')
		n--;
	s = dir + n;
	while (s > dir && s[-1] != '/')
		s--;
	snprintf(out, len, "%.*s", (int)(dir + n - s), s);
}

/* The -e variables of plot-run.gp. */
static void plot_run_vars(FILE *v, const char *dir, const struct results *r, const bool *want)
{
	double minpos = want[RESULTS_CURVE] ? r->curve_min : NAN, ttl = r->dedup.ttl_ms;
	char name[300];

	plot_var_str(v, "dir", dir);
	if (*r->scenario)
		snprintf(name, sizeof(name), "%s (seed %" PRIu64 ")", r->scenario, r->seed);
	else
		plot_basename(dir, name, sizeof(name));
	plot_var_str(v, "name", name);
	plot_var_int(v, "has_ts", want[RESULTS_TIMESERIES]);
	plot_var_int(v, "has_gaps", want[RESULTS_GAPS]);
	plot_var_int(v, "has_curve", want[RESULTS_CURVE]);
	plot_var_int(v, "has_copies", want[RESULTS_COPIES]);
	if (want[RESULTS_TIMESERIES])
		plot_run_rules(v, r);
	if (r->gap_ms.count > 0) {
		plot_var_num(v, "gap_p50", r->gap_ms.p50);
		plot_var_num(v, "gap_p99", r->gap_ms.p99);
	}
	/* this run's own TTL and miss probability, as a point on the predicted curve */
	if (want[RESULTS_CURVE] && ttl > 0 && r->miss.trials > 0 && isfinite(r->miss.estimate) &&
	    isfinite(r->miss.ci_low) && isfinite(r->miss.ci_high)) {
		plot_var_num(v, "meas_ttl", ttl);
		plot_var_num(v, "meas_miss", r->miss.estimate);
		plot_var_num(v, "meas_lo", r->miss.ci_low);
		plot_var_num(v, "meas_hi", r->miss.ci_high);
		results_minpos(&minpos, r->miss.estimate);
		results_minpos(&minpos, r->miss.ci_low);
		results_minpos(&minpos, r->miss.ci_high);
	}
	plot_var_num(v, "miss_floor", plot_floor(minpos));
}

int plot_draw_run(const char *dir, const struct results *r, char *err, size_t errlen)
{
	char script[PATH_MAX];
	const bool *want = r->has_rows;
	char *vars = NULL;
	size_t vlen = 0;
	FILE *v;
	int rc;

	if (plot_prepare(dir, err, errlen) < 0 || plot_script("plot-run.gp", script, sizeof(script), err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < RESULTS_DATA_COUNT; i++)
		if (!want[i])
			plot_remove(dir, plot_run_names[i]);
	if (!want[0] && !want[1] && !want[2] && !want[3])
		return 0;
	v = open_memstream(&vars, &vlen);
	if (!v)
		return log_seterr(err, errlen, "out of memory");
	plot_run_vars(v, dir, r, want);
	if (fclose(v) != 0) {
		free(vars);
		return log_seterr(err, errlen, "out of memory");
	}
	rc = plot_draw(dir, script, vars, plot_run_names, want, RESULTS_DATA_COUNT, err, errlen);
	free(vars);
	return rc;
}

int plot_run(const char *dir, char *err, size_t errlen)
{
	static struct results r; /* large; one plot at a time */
	char why[512];

	if (plot_prepare(dir, err, errlen) < 0)
		return -1;
	results_load(&r, dir, why, sizeof(why)); /* without summary.json: the data files alone, no titles or marks */
	return plot_draw_run(dir, &r, err, errlen);
}

/* ---- sweep folder ---- */

enum plot_xkind { PLOT_X_NUM, PLOT_X_PCT, PLOT_X_MS, PLOT_X_CAT };

struct plot_sweep_row {
	size_t order, group;
	double x;
	const char *label;
	double dup, dup_lo, dup_hi, pred, miss, miss_lo, miss_hi;
	double processed_per_s, race, store_ms, ping_ms; /* issue 14 */
};

static int plot_sweep_cmp(const void *a, const void *b)
{
	const struct plot_sweep_row *p = a, *q = b;

	if (p->group != q->group)
		return p->group < q->group ? -1 : 1;
	if (p->x != q->x)
		return p->x < q->x ? -1 : 1;
	return p->order < q->order ? -1 : p->order > q->order;
}

/* A plain number (strtod, all of s); 0 or -1. */
static int plot_strict_num(const char *s, double *v)
{
	char *end;

	if (!*s)
		return -1;
	errno = 0;
	*v = strtod(s, &end);
	return *end || errno || !isfinite(*v) ? -1 : 0;
}

/*
 * How the values of the first varied key read: all plain numbers, all
 * percentages ("1%"), numbers and percentages (as fractions), durations
 * ("10ms", and a bare 0) in ms, or else categories. Fills x[] for the
 * numeric kinds.
 */
static enum plot_xkind plot_sweep_xkind(const struct sweep *t, const size_t *rows, size_t n, double *x)
{
	size_t plain = 0, pct = 0, dur = 0, zero = 0;

	for (size_t i = 0; i < n; i++) {
		const char *s = t->rows[rows[i]].values[0];
		size_t len = strlen(s);
		double v;
		uint64_t ns;
		char num[64];

		if (plot_strict_num(s, &v) == 0) {
			plain++;
			zero += v == 0;
		} else if (len > 1 && len < sizeof(num) && s[len - 1] == '%') {
			snprintf(num, sizeof(num), "%.*s", (int)len - 1, s);
			if (plot_strict_num(num, &v) < 0)
				return PLOT_X_CAT;
			pct++;
		} else if (parse_duration(s, &ns) == 0) {
			dur++;
		} else {
			return PLOT_X_CAT;
		}
	}
	if (dur > 0 && plain != zero)
		return PLOT_X_CAT;
	if (dur > 0 && pct > 0)
		return PLOT_X_CAT;
	for (size_t i = 0; i < n; i++) {
		const char *s = t->rows[rows[i]].values[0];
		uint64_t ns = 0;
		char num[64];

		if (dur > 0) {
			parse_duration(s, &ns);
			x[i] = (double)ns / 1e6;
		} else if (plot_strict_num(s, &x[i]) == 0) {
			continue; /* a plain number, or a fraction beside percentages */
		} else {
			snprintf(num, sizeof(num), "%.*s", (int)strlen(s) - 1, s);
			plot_strict_num(num, &x[i]);
			if (plain > 0)
				x[i] /= 100;
		}
	}
	if (dur > 0)
		return PLOT_X_MS;
	if (pct > 0 && plain == 0)
		return PLOT_X_PCT;
	return PLOT_X_NUM;
}

/* The points of a sweep plot: one per run with committed messages, grouped by the other varied keys. */
struct plot_points {
	struct plot_sweep_row *r;
	size_t *rows, n;
	double *x;
	const char **cats;
	size_t ncats;
	char **gtitles;
	size_t ngroups;
	enum plot_xkind kind;
	double minpos, xmin, xmax;
	bool has_miss;
	bool has_throughput, has_race; /* issue 14: some run has a throughput; a race miss or a store host */
};

static void plot_points_release(struct plot_points *p)
{
	for (size_t g = 0; p->gtitles && g < p->ngroups; g++)
		free(p->gtitles[g]);
	free(p->gtitles);
	free(p->cats);
	free(p->x);
	free(p->r);
	free(p->rows);
}

/* The group of a row: the other varied keys with their values ("" with one key); its index, or -1. */
static int plot_point_group(struct plot_points *p, const struct sweep *t, const struct sweep_row *row)
{
	char *key = NULL;
	size_t klen = 0, g;
	FILE *kf = open_memstream(&key, &klen);

	if (!kf)
		return -1;
	for (size_t c = 1; c < t->nvaried; c++)
		fprintf(kf, "%s%s=%s", c > 1 ? ", " : "", t->keys[c], row->values[c]);
	if (fclose(kf) != 0) {
		free(key);
		return -1;
	}
	for (g = 0; g < p->ngroups && strcmp(p->gtitles[g], key) != 0; g++)
		;
	if (g == p->ngroups)
		p->gtitles[p->ngroups++] = key;
	else
		free(key);
	return (int)g;
}

/* issue 14: throughput, race misses, the store's latency and round trip (NaN: the column was not there). */
static void plot_point_store(struct plot_points *p, struct plot_sweep_row *w, const struct sweep_row *row)
{
	w->processed_per_s = row->v[SWEEP_PROCESSED_PER_S];
	w->race = row->v[SWEEP_MISSES_RACE];
	w->store_ms = row->v[SWEEP_STORE_LATENCY_US_P50] / 1e3;
	w->ping_ms = row->v[SWEEP_STORE_PING_MS];
	p->has_throughput |= isfinite(w->processed_per_s);
	p->has_race |= (isfinite(w->race) && w->race > 0) || isfinite(w->ping_ms);
}

/* Fills point i from its row: x, group, the rate with its band, the prediction, the miss probability. */
static int plot_point(struct plot_points *p, const struct sweep *t, size_t i)
{
	const struct sweep_row *row = &t->rows[p->rows[i]];
	struct plot_sweep_row *w = &p->r[i];
	double committed = row->v[SWEEP_COMMITTED], d = row->v[SWEEP_DUPLICATE_DELIVERIES];
	int g;
	size_t k;

	w->order = i;
	w->label = t->nvaried > 0 ? row->values[0] : row->name;
	if (p->kind == PLOT_X_CAT) {
		for (k = 0; k < p->ncats && strcmp(p->cats[k], w->label) != 0; k++)
			;
		if (k == p->ncats)
			p->cats[p->ncats++] = w->label;
		w->x = (double)k;
	} else {
		w->x = p->x[i];
		p->xmin = fmin(p->xmin, w->x);
		p->xmax = fmax(p->xmax, w->x);
	}
	g = plot_point_group(p, t, row);
	if (g < 0)
		return -1;
	w->group = (size_t)g;
	w->dup = row->v[SWEEP_DUPLICATE_RATE];
	if (!isfinite(w->dup) && isfinite(d))
		w->dup = d / committed;
	/* the run's own 95 % band over its fault events (none with fewer than 20) */
	w->dup_lo = row->v[SWEEP_DUPLICATE_RATE_LOW];
	w->dup_hi = row->v[SWEEP_DUPLICATE_RATE_HIGH];
	w->pred = row->v[SWEEP_PREDICTED_DUPLICATE_RATE];
	w->miss = w->miss_lo = w->miss_hi = NAN;
	if (isfinite(d) && d > 0) {
		w->miss = row->v[SWEEP_MISS_PROBABILITY];
		w->miss_lo = row->v[SWEEP_MISS_CI_LOW];
		w->miss_hi = row->v[SWEEP_MISS_CI_HIGH];
	}
	plot_point_store(p, w, row);
	if (isfinite(w->miss_hi)) {
		p->has_miss = true;
		results_minpos(&p->minpos, w->miss);
		results_minpos(&p->minpos, w->miss_lo);
		results_minpos(&p->minpos, w->miss_hi);
	}
	return 0;
}

/* The points of every run with committed messages (failed runs have no numbers), sorted. 0 or -1 with err. */
static int plot_points_make(struct plot_points *p, const char *dir, const struct sweep *t, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	p->minpos = NAN;
	p->xmin = INFINITY;
	p->xmax = -INFINITY;
	p->kind = PLOT_X_CAT;
	p->rows = calloc(t->nrows + 1, sizeof(*p->rows));
	p->r = calloc(t->nrows + 1, sizeof(*p->r));
	p->x = calloc(t->nrows + 1, sizeof(*p->x));
	p->gtitles = calloc(t->nrows + 1, sizeof(*p->gtitles));
	p->cats = calloc(t->nrows + 1, sizeof(*p->cats));
	if (!p->rows || !p->r || !p->x || !p->gtitles || !p->cats)
		return log_seterr(err, errlen, "out of memory");
	for (size_t i = 0; i < t->nrows; i++)
		if (t->rows[i].v[SWEEP_COMMITTED] > 0)
			p->rows[p->n++] = i;
	if (p->n == 0)
		return log_seterr(err, errlen, "%s/sweep.csv has no run with committed messages to plot", dir);
	if (t->nvaried > 0)
		p->kind = plot_sweep_xkind(t, p->rows, p->n, p->x);
	for (size_t i = 0; i < p->n; i++)
		if (plot_point(p, t, i) < 0)
			return log_seterr(err, errlen, "out of memory");
	qsort(p->r, p->n, sizeof(*p->r), plot_sweep_cmp);
	return 0;
}

/* plots/sweep.dat: a block per group, a line per point. 0 or -1 with err. */
static int plot_points_write(const struct plot_points *p, const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/plots/sweep.dat", dir);
	f = fopen(path, "w");
	if (!f)
		return log_seterr(err, errlen, "cannot write %s: %s", path, strerror(errno));
	fprintf(f, "# written by dupsim plot from sweep.csv for tools/plot-sweep.gp\n"
		   "# x label dup_rate dup_low dup_high predicted miss miss_low miss_high processed_per_s race_misses "
		   "store_latency_ms_p50 store_ping_ms\n");
	for (size_t i = 0; i < p->n; i++) {
		const struct plot_sweep_row *w = &p->r[i];

		if (i == 0 || w->group != p->r[i - 1].group)
			fprintf(f, "%s# group %zu: %s\n", i ? "\n\n" : "", w->group + 1, p->gtitles[w->group]);
		fprintf(f, "%.10g \"", w->x);
		for (const char *c = w->label; *c; c++)
			fputc(*c == '"' ? '\'' : *c, f);
		fprintf(f, "\" %.10g %.10g %.10g %.10g %.10g %.10g %.10g %.10g %.10g %.10g %.10g\n", w->dup, w->dup_lo,
			w->dup_hi, w->pred, w->miss, w->miss_lo, w->miss_hi, w->processed_per_s, w->race, w->store_ms,
			w->ping_ms);
	}
	if (fclose(f) != 0)
		return log_seterr(err, errlen, "cannot write %s: %s", path, strerror(errno));
	return 0;
}

/* The variables of plot-sweep.gp. */
static void plot_points_vars(FILE *v, const struct plot_points *p, const struct sweep *t)
{
	char xlabel[300];

	snprintf(xlabel, sizeof(xlabel), "%s%s", t->nvaried > 0 ? t->keys[0] : "run (in sweep order)",
		 p->kind == PLOT_X_MS ? " (ms)" : p->kind == PLOT_X_PCT ? " (%)" : "");
	plot_var_str(v, "xlabel", xlabel);
	plot_var_int(v, "xcat", p->kind == PLOT_X_CAT);
	plot_var_int(v, "xlog", p->kind != PLOT_X_CAT && p->xmin > 0 && p->xmax / p->xmin >= 20);
	plot_var_int(v, "ngroups", (long)p->ngroups);
	for (size_t g = 0; g < p->ngroups; g++) {
		char name[32];

		snprintf(name, sizeof(name), "gtitle%zu", g + 1);
		plot_var_str(v, name, p->gtitles[g]);
	}
	plot_var_int(v, "has_miss", p->has_miss);
	plot_var_num(v, "miss_floor", plot_floor(p->minpos));
}

/* Writes plots/sweep.dat and the variables of plot-sweep.gp; 0, or -1 with err. */
static int plot_sweep_data(const char *dir, const struct sweep *t, FILE *v, bool *want, char *err, size_t errlen)
{
	static const int need[] = { SWEEP_DUPLICATE_DELIVERIES, SWEEP_DUPLICATE_RATE, SWEEP_PREDICTED_DUPLICATE_RATE,
				    SWEEP_MISS_PROBABILITY, SWEEP_MISS_CI_LOW, SWEEP_MISS_CI_HIGH };
	struct plot_points p;
	int rc;

	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (!t->has[need[i]])
			return log_seterr(err, errlen,
					  "%s/sweep.csv lacks the columns run, committed, duplicate_deliveries, "
					  "duplicate_rate, predicted_duplicate_rate, miss_probability, miss_ci_low, "
					  "miss_ci_high",
					  dir);
	rc = plot_points_make(&p, dir, t, err, errlen);
	if (rc == 0)
		rc = plot_points_write(&p, dir, err, errlen);
	if (rc == 0) {
		plot_points_vars(v, &p, t);
		want[1] = p.has_miss;
		want[2] = p.has_throughput;
		want[3] = p.has_race;
	}
	plot_points_release(&p);
	return rc;
}

/* issue 14: throughput and race misses from the same sweep.dat (tools/plot-sweep-store.gp); want[0..1] say which. */
static int plot_draw_store(const char *dir, const char *vars, const bool *want, char *err, size_t errlen)
{
	char script[PATH_MAX], *all = NULL;
	int rc;

	for (int i = 0; i < 2; i++)
		if (!want[i])
			plot_remove(dir, plot_store_names[i]);
	if (!want[0] && !want[1])
		return 0;
	if (plot_script("plot-sweep-store.gp", script, sizeof(script), err, errlen) < 0)
		return -1;
	if (asprintf(&all, "%shas_throughput=%d; has_race=%d; ", vars, want[0], want[1]) < 0)
		return log_seterr(err, errlen, "out of memory");
	rc = plot_draw(dir, script, all, plot_store_names, want, 2, err, errlen);
	free(all);
	return rc;
}

int plot_draw_sweep(const char *dir, const struct sweep *t, char *err, size_t errlen)
{
	char script[PATH_MAX], name[300];
	bool want[4] = { true, false, false, false }; /* duprate, miss; throughput, race */
	char *vars = NULL;
	size_t vlen = 0;
	FILE *v;
	int rc;

	if (plot_prepare(dir, err, errlen) < 0 || plot_script("plot-sweep.gp", script, sizeof(script), err, errlen) < 0)
		return -1;
	v = open_memstream(&vars, &vlen);
	if (!v)
		return log_seterr(err, errlen, "out of memory");
	plot_var_str(v, "dir", dir);
	plot_basename(dir, name, sizeof(name));
	plot_var_str(v, "name", name);
	rc = plot_sweep_data(dir, t, v, want, err, errlen);
	if (fclose(v) != 0 && rc == 0)
		rc = log_seterr(err, errlen, "out of memory");
	if (rc == 0) {
		if (!want[1])
			plot_remove(dir, plot_sweep_names[1]);
		rc = plot_draw(dir, script, vars, plot_sweep_names, want, 2, err, errlen);
		if (rc == 0)
			rc = plot_draw_store(dir, vars, want + 2, err, errlen);
	} else {
		for (int i = 0; i < 2; i++) {
			plot_remove(dir, plot_sweep_names[i]);
			plot_remove(dir, plot_store_names[i]);
		}
	}
	free(vars);
	return rc;
}

int plot_sweep(const char *dir, char *err, size_t errlen)
{
	struct sweep t;
	int rc;

	if (plot_prepare(dir, err, errlen) < 0 || sweep_load(&t, dir, err, errlen) < 0)
		return -1;
	rc = plot_draw_sweep(dir, &t, err, errlen);
	sweep_release(&t);
	return rc;
}
