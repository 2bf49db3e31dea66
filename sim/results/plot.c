/* plot.c — runs gnuplot over a run or sweep folder, the CSV reader plots and reports share, and `dupsim plot`. */
#include "results/plot.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
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

#include "analysis/stats.h"
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

/* ---- CSV ---- */

/*
 * Copies the field at src[*pos] into dst, NUL-terminated, and moves *pos past
 * its terminator. Returns what ended it: ',', '\n', or 0 at the end of input.
 */
static int plot_csv_field(const char *src, size_t len, size_t *pos, char *dst, size_t *dlen)
{
	size_t i = *pos, n = 0;
	bool quoted = false;
	int end;

	while (i < len) {
		char c = src[i];

		if (quoted) {
			if (c == '"' && i + 1 < len && src[i + 1] == '"') {
				dst[n++] = '"';
				i += 2;
				continue;
			}
			if (c == '"')
				quoted = false;
			else
				dst[n++] = c;
			i++;
			continue;
		}
		if (c == '"')
			quoted = true;
		else if (c == ',' || c == '\n')
			break;
		else if (c != '\r')
			dst[n++] = c;
		i++;
	}
	dst[n] = '\0';
	*dlen = n;
	end = i < len ? src[i] : 0;
	*pos = i < len ? i + 1 : len;
	return end;
}

/* Appends p to a growing array of strings; 0 or -1. */
static int plot_csv_push(char ***v, size_t *n, size_t *cap, char *p)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		char **nv = realloc(*v, nc * sizeof(*nv));

		if (!nv)
			return -1;
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = p;
	return 0;
}

int plot_csv_read(const char *path, struct plot_csv *t)
{
	size_t len = 0, pos = 0, out = 1, hcap = 0, ccap = 0, ncells = 0, nhead = 0;
	char *src, *empty;

	memset(t, 0, sizeof(*t));
	src = files_read(path, &len);
	if (!src)
		return -1;
	/* every field costs at least its bytes plus a terminator or the end of input */
	t->buf = malloc(2 * len + 2);
	if (!t->buf)
		goto fail;
	t->buf[0] = '\0';
	empty = t->buf;
	while (pos < len) {
		size_t fi = 0, n;
		int end;

		do {
			char *dst = t->buf + out;

			end = plot_csv_field(src, len, &pos, dst, &n);
			out += n + 1;
			if (fi == 0 && n == 0 && end != ',')
				break; /* a blank line */
			if (t->ncols == 0) {
				if (plot_csv_push(&t->head, &nhead, &hcap, dst) < 0)
					goto fail;
			} else if (fi < t->ncols) {
				if (fi == 0) {
					for (size_t k = 0; k < t->ncols; k++)
						if (plot_csv_push(&t->cells, &ncells, &ccap, empty) < 0)
							goto fail;
					t->nrows++;
				}
				t->cells[(t->nrows - 1) * t->ncols + fi] = dst;
			}
			fi++;
		} while (end == ',');
		if (t->ncols == 0 && nhead > 0)
			t->ncols = nhead;
	}
	free(src);
	if (t->ncols == 0) {
		plot_csv_free(t);
		errno = EINVAL;
		return -1;
	}
	return 0;
fail:
	free(src);
	plot_csv_free(t);
	errno = ENOMEM;
	return -1;
}

void plot_csv_free(struct plot_csv *t)
{
	free(t->head);
	free(t->cells);
	free(t->buf);
	memset(t, 0, sizeof(*t));
}

int plot_csv_col(const struct plot_csv *t, const char *name)
{
	for (size_t i = 0; i < t->ncols; i++)
		if (strcmp(t->head[i], name) == 0)
			return (int)i;
	return -1;
}

const char *plot_csv_cell(const struct plot_csv *t, size_t row, int col)
{
	if (col < 0 || (size_t)col >= t->ncols || row >= t->nrows)
		return "";
	return t->cells[row * t->ncols + (size_t)col];
}

/* The cell as a number; NaN when empty or not a number. */
static double plot_csv_num(const struct plot_csv *t, size_t row, int col)
{
	const char *s = plot_csv_cell(t, row, col);
	char *end;
	double v;

	if (!*s)
		return NAN;
	errno = 0;
	v = strtod(s, &end);
	return *end || errno ? NAN : v;
}

/* Data rows of a CSV file; 0 when it is missing or has only its header. */
static size_t plot_csv_rows(const char *dir, const char *name)
{
	char path[PATH_MAX];
	struct plot_csv t;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (plot_csv_read(path, &t) < 0)
		return 0;
	n = t.nrows;
	plot_csv_free(&t);
	return n;
}

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

static void plot_minpos(double *m, double v)
{
	if (isfinite(v) && v > 0 && (!isfinite(*m) || v < *m))
		*m = v;
}

/* ---- run folder ---- */

/* A number at obj.key1.key2 of a summary, NaN when absent. */
static double plot_json_num(json_t *root, const char *k1, const char *k2)
{
	json_t *v = json_object_get(root, k1);

	if (k2)
		v = json_object_get(v, k2);
	return json_is_number(v) ? json_number_value(v) : NAN;
}

/* [dedup] ttl of the run's scenario.ini in ms; NaN when absent or 0. */
static double plot_scenario_ttl_ms(const char *dir)
{
	char path[PATH_MAX], line[512];
	bool in_dedup = false;
	double ms = NAN;
	FILE *f;

	snprintf(path, sizeof(path), "%s/scenario.ini", dir);
	f = fopen(path, "r");
	if (!f)
		return NAN;
	while (fgets(line, sizeof(line), f)) {
		char *p = line, *eq, *end;
		uint64_t ns;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '[') {
			in_dedup = strncmp(p, "[dedup]", 7) == 0;
			continue;
		}
		if (!in_dedup || strncmp(p, "ttl", 3) != 0)
			continue;
		eq = p + 3;
		while (*eq == ' ' || *eq == '\t')
			eq++;
		if (*eq != '=')
			continue;
		eq++;
		while (*eq == ' ' || *eq == '\t')
			eq++;
		end = eq + strcspn(eq, ";#\r\n");
		while (end > eq && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		*end = '\0';
		if (parse_duration(eq, &ns) == 0 && ns > 0)
			ms = (double)ns / 1e6;
	}
	fclose(f);
	return ms;
}

struct plot_rule {
	const char *text;
	long fired;
};

/* Adds text to the rule list (if new and there is room); returns its index or -1. */
static int plot_rule_index(struct plot_rule *r, size_t *n, const char *text)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp(r[i].text, text) == 0)
			return (int)i;
	if (*n == PLOT_MAX_RULES)
		return -1;
	r[*n] = (struct plot_rule){ .text = text, .fired = 0 };
	return (int)(*n)++;
}

/* The fault rules for the raster under the time series, and their -e variables. */
static void plot_run_rules(FILE *v, const char *dir, json_t *sum)
{
	struct plot_rule rules[PLOT_MAX_RULES];
	struct plot_csv fl;
	char path[PATH_MAX];
	size_t n = 0;
	json_t *list = json_object_get(json_object_get(sum, "faults"), "rules");
	int rcol;

	snprintf(path, sizeof(path), "%s/faults.csv", dir);
	if (plot_csv_read(path, &fl) < 0 || fl.nrows == 0) {
		if (fl.buf)
			plot_csv_free(&fl);
		plot_var_int(v, "nrules", 0);
		return;
	}
	/* the summary's order first, so rules that never fired still get their (empty) row */
	for (size_t i = 0; i < json_array_size(list); i++) {
		const char *t = json_string_value(json_object_get(json_array_get(list, i), "rule"));

		if (t)
			plot_rule_index(rules, &n, t);
	}
	rcol = plot_csv_col(&fl, "rule");
	for (size_t i = 0; i < fl.nrows; i++) {
		int k = plot_rule_index(rules, &n, plot_csv_cell(&fl, i, rcol));

		if (k >= 0)
			rules[k].fired++;
	}
	plot_var_int(v, "nrules", (long)n);
	for (size_t i = 0; i < n; i++) {
		char name[32], title[600];

		snprintf(name, sizeof(name), "rule%zu", i + 1);
		plot_var_str(v, name, rules[i].text);
		snprintf(name, sizeof(name), "rtitle%zu", i + 1);
		snprintf(title, sizeof(title), "%s (fired %ld time%s)", rules[i].text, rules[i].fired,
			 rules[i].fired == 1 ? "" : "s");
		plot_var_str(v, name, title);
	}
	plot_csv_free(&fl);
}

/* Smallest positive probability in curve.csv, for the bottom of the log axis. */
static double plot_curve_min(const char *dir)
{
	char path[PATH_MAX];
	struct plot_csv c;
	double m = NAN;

	snprintf(path, sizeof(path), "%s/curve.csv", dir);
	if (plot_csv_read(path, &c) < 0)
		return NAN;
	for (size_t i = 0; i < c.nrows; i++)
		for (int k = 1; k <= 3; k++)
			plot_minpos(&m, plot_csv_num(&c, i, k));
	plot_csv_free(&c);
	return m;
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

int plot_run(const char *dir, char *err, size_t errlen)
{
	char script[PATH_MAX], path[PATH_MAX], name[300];
	bool want[4];
	char *vars = NULL;
	size_t vlen = 0;
	json_t *sum;
	FILE *v;
	double minpos, ttl, trials;
	int rc;

	if (plot_prepare(dir, err, errlen) < 0 || plot_script("plot-run.gp", script, sizeof(script), err, errlen) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/summary.json", dir);
	sum = json_load_file(path, 0, NULL); /* optional: titles and marks only */

	want[0] = plot_csv_rows(dir, "timeseries.csv") > 0;
	want[1] = plot_csv_rows(dir, "gaps.csv") > 0;
	want[2] = plot_csv_rows(dir, "curve.csv") > 0;
	want[3] = plot_csv_rows(dir, "copies.csv") > 0;
	for (size_t i = 0; i < 4; i++)
		if (!want[i])
			plot_remove(dir, plot_run_names[i]);
	if (!want[0] && !want[1] && !want[2] && !want[3]) {
		json_decref(sum);
		return 0;
	}

	v = open_memstream(&vars, &vlen);
	if (!v) {
		json_decref(sum);
		return log_seterr(err, errlen, "out of memory");
	}
	plot_var_str(v, "dir", dir);
	if (json_is_string(json_object_get(sum, "scenario")))
		snprintf(name, sizeof(name), "%s (seed %.0f)", json_string_value(json_object_get(sum, "scenario")),
			 plot_json_num(sum, "seed", NULL));
	else
		plot_basename(dir, name, sizeof(name));
	plot_var_str(v, "name", name);
	plot_var_int(v, "has_ts", want[0]);
	plot_var_int(v, "has_gaps", want[1]);
	plot_var_int(v, "has_curve", want[2]);
	plot_var_int(v, "has_copies", want[3]);
	if (want[0])
		plot_run_rules(v, dir, sum);
	if (plot_json_num(sum, "gap_ms", "count") > 0) {
		plot_var_num(v, "gap_p50", plot_json_num(sum, "gap_ms", "p50"));
		plot_var_num(v, "gap_p99", plot_json_num(sum, "gap_ms", "p99"));
	}
	minpos = want[2] ? plot_curve_min(dir) : NAN;
	ttl = plot_json_num(sum, "dedup", "ttl_ms");
	if (!(ttl > 0))
		ttl = plot_scenario_ttl_ms(dir);
	trials = plot_json_num(sum, "miss_probability", "trials");
	if (want[2] && ttl > 0 && trials > 0) {
		double m = plot_json_num(sum, "miss_probability", "estimate");
		double lo = plot_json_num(sum, "miss_probability", "ci_low");
		double hi = plot_json_num(sum, "miss_probability", "ci_high");

		if (isfinite(m) && isfinite(lo) && isfinite(hi)) {
			plot_var_num(v, "meas_ttl", ttl);
			plot_var_num(v, "meas_miss", m);
			plot_var_num(v, "meas_lo", lo);
			plot_var_num(v, "meas_hi", hi);
			plot_minpos(&minpos, m);
			plot_minpos(&minpos, lo);
			plot_minpos(&minpos, hi);
		}
	}
	plot_var_num(v, "miss_floor", plot_floor(minpos));
	json_decref(sum);
	if (fclose(v) != 0) {
		free(vars);
		return log_seterr(err, errlen, "out of memory");
	}
	rc = plot_draw(dir, script, vars, plot_run_names, want, 4, err, errlen);
	free(vars);
	return rc;
}

/* ---- sweep folder ---- */

enum plot_xkind { PLOT_X_NUM, PLOT_X_PCT, PLOT_X_MS, PLOT_X_CAT };

struct plot_sweep_row {
	size_t order, group;
	double x;
	const char *label;
	double dup, dup_lo, dup_hi, pred, miss, miss_lo, miss_hi;
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
 * How the values of a varied column read: all plain numbers, all percentages
 * ("1%"), numbers and percentages (as fractions), durations ("10ms", and a
 * bare 0) in ms, or else categories. Fills x[] for the numeric kinds.
 */
static enum plot_xkind plot_sweep_xkind(const struct plot_csv *t, int col, const size_t *rows, size_t n, double *x)
{
	size_t plain = 0, pct = 0, dur = 0, zero = 0;

	for (size_t i = 0; i < n; i++) {
		const char *s = plot_csv_cell(t, rows[i], col);
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
		const char *s = plot_csv_cell(t, rows[i], col);
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

/* Writes plots/sweep.dat and the variables of plot-sweep.gp; 0, or -1 with err. */
static int plot_sweep_data(const char *dir, const struct plot_csv *t, FILE *v, bool *has_miss, char *err,
			   size_t errlen)
{
	int c_committed = plot_csv_col(t, "committed"), c_dup = plot_csv_col(t, "duplicate_deliveries");
	int c_rate = plot_csv_col(t, "duplicate_rate"), c_pred = plot_csv_col(t, "predicted_duplicate_rate");
	int c_miss = plot_csv_col(t, "miss_probability"), c_lo = plot_csv_col(t, "miss_ci_low");
	int c_hi = plot_csv_col(t, "miss_ci_high"), c_dlo = plot_csv_col(t, "duplicate_rate_low");
	int c_dhi = plot_csv_col(t, "duplicate_rate_high");
	int nvaried = c_committed - 1;
	struct plot_sweep_row *r = NULL;
	size_t *rows = NULL, n = 0, ngroups = 0, ncats = 0;
	double *x = NULL, minpos = NAN, xmin = INFINITY, xmax = -INFINITY;
	const char **cats = NULL;
	char **gtitles = NULL, path[PATH_MAX], xlabel[300];
	enum plot_xkind kind = PLOT_X_CAT;
	FILE *f = NULL;
	int rc = -1;

	if (c_committed < 1 || c_dup < 0 || c_rate < 0 || c_pred < 0 || c_miss < 0 || c_lo < 0 || c_hi < 0 ||
	    plot_csv_col(t, "run") != 0)
		return log_seterr(err, errlen,
				"%s/sweep.csv lacks the columns run, committed, duplicate_deliveries, duplicate_rate, "
				"predicted_duplicate_rate, miss_probability, miss_ci_low, miss_ci_high",
				dir);
	rows = calloc(t->nrows + 1, sizeof(*rows));
	r = calloc(t->nrows + 1, sizeof(*r));
	x = calloc(t->nrows + 1, sizeof(*x));
	gtitles = calloc(t->nrows + 1, sizeof(*gtitles));
	cats = calloc(t->nrows + 1, sizeof(*cats));
	if (!rows || !r || !x || !gtitles || !cats) {
		log_seterr(err, errlen, "out of memory");
		goto out;
	}
	/* runs that failed have no numbers and are left out */
	for (size_t i = 0; i < t->nrows; i++)
		if (plot_csv_num(t, i, c_committed) > 0)
			rows[n++] = i;
	if (n == 0) {
		log_seterr(err, errlen, "%s/sweep.csv has no run with committed messages to plot", dir);
		goto out;
	}
	if (nvaried > 0)
		kind = plot_sweep_xkind(t, 1, rows, n, x);
	for (size_t i = 0; i < n; i++) {
		struct plot_sweep_row *w = &r[i];
		const char *label = nvaried > 0 ? plot_csv_cell(t, rows[i], 1) : plot_csv_cell(t, rows[i], 0);
		double committed = plot_csv_num(t, rows[i], c_committed), d = plot_csv_num(t, rows[i], c_dup);
		char *key = NULL;
		size_t klen = 0, g, k;
		FILE *kf;

		w->order = i;
		w->label = label;
		if (kind == PLOT_X_CAT) {
			for (k = 0; k < ncats && strcmp(cats[k], label) != 0; k++)
				;
			if (k == ncats)
				cats[ncats++] = label;
			w->x = (double)k;
		} else {
			w->x = x[i];
			xmin = fmin(xmin, w->x);
			xmax = fmax(xmax, w->x);
		}
		/* the other varied keys name the group (one line per combination) */
		kf = open_memstream(&key, &klen);
		if (!kf) {
			log_seterr(err, errlen, "out of memory");
			goto out;
		}
		for (int c = 2; c <= nvaried; c++)
			fprintf(kf, "%s%s=%s", c > 2 ? ", " : "", t->head[c], plot_csv_cell(t, rows[i], c));
		fclose(kf);
		for (g = 0; g < ngroups && strcmp(gtitles[g], key) != 0; g++)
			;
		if (g == ngroups)
			gtitles[ngroups++] = key;
		else
			free(key);
		w->group = g;
		w->dup = plot_csv_num(t, rows[i], c_rate);
		if (!isfinite(w->dup) && isfinite(d))
			w->dup = d / committed;
		/* the run's own 95 % band over its fault events (none with fewer than 20) */
		w->dup_lo = c_dlo >= 0 ? plot_csv_num(t, rows[i], c_dlo) : NAN;
		w->dup_hi = c_dhi >= 0 ? plot_csv_num(t, rows[i], c_dhi) : NAN;
		w->pred = plot_csv_num(t, rows[i], c_pred);
		w->miss = w->miss_lo = w->miss_hi = NAN;
		if (isfinite(d) && d > 0) {
			w->miss = plot_csv_num(t, rows[i], c_miss);
			w->miss_lo = plot_csv_num(t, rows[i], c_lo);
			w->miss_hi = plot_csv_num(t, rows[i], c_hi);
		}
		if (isfinite(w->miss_hi)) {
			*has_miss = true;
			plot_minpos(&minpos, w->miss);
			plot_minpos(&minpos, w->miss_lo);
			plot_minpos(&minpos, w->miss_hi);
		}
	}
	qsort(r, n, sizeof(*r), plot_sweep_cmp);

	snprintf(path, sizeof(path), "%s/plots/sweep.dat", dir);
	f = fopen(path, "w");
	if (!f) {
		log_seterr(err, errlen, "cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	fprintf(f, "# written by dupsim plot from sweep.csv for tools/plot-sweep.gp\n"
		   "# x label dup_rate dup_low dup_high predicted miss miss_low miss_high\n");
	for (size_t i = 0; i < n; i++) {
		const struct plot_sweep_row *w = &r[i];

		if (i == 0 || w->group != r[i - 1].group)
			fprintf(f, "%s# group %zu: %s\n", i ? "\n\n" : "", w->group + 1, gtitles[w->group]);
		fprintf(f, "%.10g \"", w->x);
		for (const char *p = w->label; *p; p++)
			fputc(*p == '"' ? '\'' : *p, f);
		fprintf(f, "\" %.10g %.10g %.10g %.10g %.10g %.10g %.10g\n", w->dup, w->dup_lo, w->dup_hi, w->pred,
			w->miss, w->miss_lo, w->miss_hi);
	}
	if (fclose(f) != 0) {
		f = NULL;
		log_seterr(err, errlen, "cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	f = NULL;

	snprintf(xlabel, sizeof(xlabel), "%s%s", nvaried > 0 ? t->head[1] : "run (in sweep order)",
		 kind == PLOT_X_MS ? " (ms)" : kind == PLOT_X_PCT ? " (%)" : "");
	plot_var_str(v, "xlabel", xlabel);
	plot_var_int(v, "xcat", kind == PLOT_X_CAT);
	plot_var_int(v, "xlog", kind != PLOT_X_CAT && xmin > 0 && xmax / xmin >= 20);
	plot_var_int(v, "ngroups", (long)ngroups);
	for (size_t g = 0; g < ngroups; g++) {
		char name[32];

		snprintf(name, sizeof(name), "gtitle%zu", g + 1);
		plot_var_str(v, name, gtitles[g]);
	}
	plot_var_int(v, "has_miss", *has_miss);
	plot_var_num(v, "miss_floor", plot_floor(minpos));
	rc = 0;
out:
	if (f)
		fclose(f);
	if (gtitles)
		for (size_t g = 0; g < ngroups; g++)
			free(gtitles[g]);
	free(gtitles);
	free(cats);
	free(x);
	free(r);
	free(rows);
	return rc;
}

int plot_sweep(const char *dir, char *err, size_t errlen)
{
	char script[PATH_MAX], path[PATH_MAX], name[300];
	struct plot_csv t;
	bool want[2] = { true, false };
	char *vars = NULL;
	size_t vlen = 0;
	FILE *v;
	int rc;

	if (plot_prepare(dir, err, errlen) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/sweep.csv", dir);
	if (plot_csv_read(path, &t) < 0)
		return log_seterr(err, errlen, "cannot read %s: %s", path,
				errno == EINVAL ? "it has no header line" : strerror(errno));
	if (plot_script("plot-sweep.gp", script, sizeof(script), err, errlen) < 0) {
		plot_csv_free(&t);
		return -1;
	}
	v = open_memstream(&vars, &vlen);
	if (!v) {
		plot_csv_free(&t);
		return log_seterr(err, errlen, "out of memory");
	}
	plot_var_str(v, "dir", dir);
	plot_basename(dir, name, sizeof(name));
	plot_var_str(v, "name", name);
	rc = plot_sweep_data(dir, &t, v, &want[1], err, errlen);
	plot_csv_free(&t);
	if (fclose(v) != 0 && rc == 0)
		rc = log_seterr(err, errlen, "out of memory");
	if (rc == 0) {
		if (!want[1])
			plot_remove(dir, plot_sweep_names[1]);
		rc = plot_draw(dir, script, vars, plot_sweep_names, want, 2, err, errlen);
	} else {
		plot_remove(dir, plot_sweep_names[0]);
		plot_remove(dir, plot_sweep_names[1]);
	}
	free(vars);
	return rc;
}

/* ---- dupsim plot ---- */

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
	prc = sweep ? plot_sweep(dir, err, sizeof(err)) : plot_run(dir, err, sizeof(err));
	/* the report is worth having without its plots */
	rrc = sweep ? report_write_sweep(dir, rerr, sizeof(rerr)) : report_write(dir, rerr, sizeof(rerr));
	if (prc < 0)
		log_line("plot: %s", err);
	if (rrc < 0)
		log_line("plot: report: %s", rerr);
	if (prc < 0 || rrc < 0)
		return 1;
	printf("dupsim plot: %s/plots/, %s/report.md\n", dir, dir);
	return 0;
}
