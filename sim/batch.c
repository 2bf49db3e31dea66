/* batch.c — many runs of one scenario: `dupsim sweep` over a grid of keys, `dupsim validate` until a verdict. */
#include "batch.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "plot.h"
#include "scenario.h"
#include "stats.h"
#include "util.h"

#define VARY_MAX 4
#define VALUES_MAX 64
#define SETS_MAX 64

extern char **environ;

static volatile sig_atomic_t batch_signals;

static void batch_on_signal(int sig)
{
	(void)sig;
	batch_signals++;
}

/* What every batch command shares: the scenario, extra --set, where results go, the broker. */
struct batch {
	const char *file;
	const char *sets[SETS_MAX];
	size_t nsets;
	const char *out;
	bool quiet;
	struct scenario sc;     /* loaded once, to check it and for the name */
	char dir[PATH_MAX];	/* the batch folder */
	struct broker *broker;  /* a private node for the whole batch, or NULL */
	char broker_set[300];   /* "broker.url=..." handed to every run, or "" */
};

/* Loads and checks the scenario with the --set values, so a typo fails before any run. */
static int batch_load(struct batch *b, const char *const *extra, size_t nextra)
{
	char err[1024];

	scenario_init_defaults(&b->sc, b->file);
	if (scenario_load(&b->sc, b->file, err, sizeof(err)) < 0)
		goto fail;
	for (size_t i = 0; i < b->nsets; i++)
		if (scenario_set(&b->sc, b->sets[i], err, sizeof(err)) < 0)
			goto fail;
	for (size_t i = 0; i < nextra; i++)
		if (scenario_set(&b->sc, extra[i], err, sizeof(err)) < 0)
			goto fail;
	if (scenario_check(&b->sc, err, sizeof(err)) < 0)
		goto fail;
	return 0;
fail:
	util_log("%s", err);
	return -1;
}

/* The batch folder, and one broker for every run of the batch. */
static int batch_prepare(struct batch *b, const char *kind)
{
	char err[1024], url[256];

	if (util_results_dir(b->dir, sizeof(b->dir), b->out, b->sc.run.name, kind) < 0) {
		util_log("%s: cannot write into %s: %s; choose another folder with --out", kind, b->dir,
			 strerror(errno));
		return -1;
	}
	if (strcmp(b->sc.broker.url, "embedded") == 0 && broker_find_persistent(url, sizeof(url)) < 0) {
		struct broker_opts o = { .quiet = b->quiet };

		if (!b->quiet)
			util_log("%s: starting one private RabbitMQ node for all runs", kind);
		if (broker_start(&b->broker, &o, err, sizeof(err)) < 0) {
			util_log("%s: could not start a private RabbitMQ node: %s", kind, err);
			return -1;
		}
		snprintf(b->broker_set, sizeof(b->broker_set), "broker.url=%s", broker_url(b->broker));
	}
	return 0;
}

static void batch_release(struct batch *b)
{
	broker_free(b->broker);
	scenario_release(&b->sc);
}

/*
 * One `dupsim run` in a child process, into b->dir/name, with the batch's
 * --set values, then extra. Returns the summary (caller json_decref's), or
 * NULL when the run wrote none; *status is its exit status.
 */
static json_t *batch_run(struct batch *b, const char *name, const char *const *extra, size_t nextra, int *status)
{
	char self[PATH_MAX], out[PATH_MAX + 64], path[PATH_MAX + 96];
	char *argv[16 + 2 * (SETS_MAX + VARY_MAX + 4)];
	int argc = 0, st;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	pid_t pid;

	if (n <= 0)
		return NULL;
	self[n] = '\0';
	snprintf(out, sizeof(out), "%s/%s", b->dir, name);
	argv[argc++] = self;
	argv[argc++] = "run";
	argv[argc++] = (char *)b->file;
	argv[argc++] = "--quiet";
	argv[argc++] = "--out";
	argv[argc++] = out;
	if (b->broker_set[0]) {
		argv[argc++] = "--set";
		argv[argc++] = b->broker_set;
	}
	for (size_t i = 0; i < b->nsets; i++) {
		argv[argc++] = "--set";
		argv[argc++] = (char *)b->sets[i];
	}
	for (size_t i = 0; i < nextra; i++) {
		argv[argc++] = "--set";
		argv[argc++] = (char *)extra[i];
	}
	argv[argc] = NULL;
	{
		posix_spawn_file_actions_t fa;

		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
		if (posix_spawn(&pid, self, &fa, NULL, argv, environ) != 0) {
			posix_spawn_file_actions_destroy(&fa);
			return NULL;
		}
		posix_spawn_file_actions_destroy(&fa);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	snprintf(path, sizeof(path), "%s/summary.json", out);
	return json_load_file(path, 0, NULL);
}

static double jnum(json_t *j, const char *a, const char *b)
{
	json_t *v = json_object_get(j, a);

	if (b)
		v = json_object_get(v, b);
	return json_is_number(v) ? json_number_value(v) : NAN;
}

static int batch_parse_common(struct batch *b, int opt, const char *arg)
{
	switch (opt) {
	case 's':
		if (b->nsets == SETS_MAX) {
			util_log("at most %d --set options", SETS_MAX);
			return -1;
		}
		b->sets[b->nsets++] = arg;
		return 1;
	case 'o':
		b->out = arg;
		return 1;
	case 'q':
		b->quiet = true;
		return 1;
	default:
		return 0;
	}
}

/* ---- sweep ---- */

struct vary {
	char key[96];		  /* section.key */
	char *values[VALUES_MAX]; /* into text */
	size_t count;
	char text[1024];
};

static int vary_parse(struct vary *v, const char *arg)
{
	const char *eq = strchr(arg, '=');
	char *save, *tok;

	memset(v, 0, sizeof(*v));
	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(v->key) || !strchr(arg, '.')) {
		util_log("sweep: --vary '%s': expected section.key=v1,v2,... e.g. --vary faults.commit_ok_loss=0.5%%,1%%,2%%",
			 arg);
		return -1;
	}
	snprintf(v->key, sizeof(v->key), "%.*s", (int)(eq - arg), arg);
	snprintf(v->text, sizeof(v->text), "%s", eq + 1);
	for (tok = strtok_r(v->text, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (v->count == VALUES_MAX) {
			util_log("sweep: --vary %s: at most %d values", v->key, VALUES_MAX);
			return -1;
		}
		v->values[v->count++] = tok;
	}
	if (!v->count) {
		util_log("sweep: --vary %s: no values", v->key);
		return -1;
	}
	return 0;
}

static void sweep_usage(FILE *f)
{
	fprintf(f, "usage: dupsim sweep FILE --vary section.key=v1,v2,... [--vary ...] [--repeat R]\n"
		   "                    [--set section.key=value]... [--out DIR] [--quiet]\n"
		   "\n"
		   "Runs the scenario once per point of the grid (and R times per point, with seeds\n"
		   "seed, seed+1, ...) on one RabbitMQ node, keeps every run's folder, and writes\n"
		   "DIR/sweep.csv (a row per run: the varied values and the summary's numbers),\n"
		   "plots and report.md. DIR defaults to results/<name>-sweep-<UTC time>.\n");
}

int batch_sweep_cli(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vary", required_argument, NULL, 'v' }, { "repeat", required_argument, NULL, 'r' },
		{ "set", required_argument, NULL, 's' },  { "out", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },	  { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct vary vary[VARY_MAX];
	struct batch b = { 0 };
	size_t nvary = 0, points = 1, done = 0, failed = 0;
	uint64_t repeat = 1;
	char csv[PATH_MAX + 16], err[512];
	FILE *f = NULL;
	char *buf = NULL;
	size_t len = 0;
	struct sigaction sa = { .sa_handler = batch_on_signal };
	int opt, code = 0;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "hq", opts, NULL)) != -1) {
		int rc = batch_parse_common(&b, opt, optarg);

		if (rc < 0)
			return 2;
		if (rc > 0)
			continue;
		switch (opt) {
		case 'v':
			if (nvary == VARY_MAX) {
				util_log("sweep: at most %d --vary options", VARY_MAX);
				return 2;
			}
			if (vary_parse(&vary[nvary], optarg) < 0)
				return 2;
			points *= vary[nvary++].count;
			break;
		case 'r':
			if (util_parse_u64(optarg, &repeat) < 0 || repeat < 1 || repeat > 1000) {
				util_log("sweep: --repeat '%s': expected 1 to 1000", optarg);
				return 2;
			}
			break;
		case 'h':
			sweep_usage(stdout);
			return 0;
		default:
			sweep_usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1 || nvary == 0) {
		util_log("sweep: expected one scenario FILE and at least one --vary; see dupsim sweep --help");
		return 2;
	}
	b.file = argv[optind];
	/* every value of every key must be valid before anything runs */
	for (size_t k = 0; k < nvary; k++) {
		for (size_t i = 0; i < vary[k].count; i++) {
			char set[1200];
			const char *one = set;

			if (snprintf(set, sizeof(set), "%s=%s", vary[k].key, vary[k].values[i]) >= (int)sizeof(set) ||
			    batch_load(&b, &one, 1) < 0) {
				scenario_release(&b.sc);
				return 2;
			}
			scenario_release(&b.sc);
		}
	}
	if (batch_load(&b, NULL, 0) < 0 || batch_prepare(&b, "sweep") < 0) {
		batch_release(&b);
		return b.sc.path[0] ? 1 : 2;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	snprintf(csv, sizeof(csv), "%s/sweep.csv", b.dir);
	f = open_memstream(&buf, &len);
	fprintf(f, "run");
	for (size_t k = 0; k < nvary; k++)
		fprintf(f, ",%s", vary[k].key);
	fprintf(f, ",committed,publish_attempts,excess_copies,deliveries,duplicate_deliveries,duplicates_processed,"
		   "lost,wrongly_suppressed,duplicate_rate,predicted_duplicate_rate,miss_probability,miss_ci_low,"
		   "miss_ci_high,faults_fired,status\n");
	for (size_t p = 0; p < points && !batch_signals; p++) {
		char sets[VARY_MAX + 1][1200];
		const char *extra[VARY_MAX + 1];
		size_t idx = p;

		for (size_t k = 0; k < nvary; k++) {
			size_t i = idx % vary[k].count;

			idx /= vary[k].count;
			if (snprintf(sets[k], sizeof(sets[k]), "%s=%s", vary[k].key, vary[k].values[i]) >=
			    (int)sizeof(sets[k]))
				sets[k][0] = '\0'; /* can't happen: key and values are shorter */
			extra[k] = sets[k];
		}
		for (uint64_t r = 0; r < repeat && !batch_signals; r++) {
			char name[64];
			int status = -1;
			json_t *j;
			double fired = 0;

			snprintf(sets[nvary], sizeof(sets[nvary]), "run.seed=%" PRIu64, b.sc.run.seed + r);
			extra[nvary] = sets[nvary];
			snprintf(name, sizeof(name), "run-%03zu", done + 1);
			if (!b.quiet)
				util_log("sweep: %s (%zu of %zu): %s%s%s%s, seed %" PRIu64, name, done + 1,
					 points * (size_t)repeat, extra[0], nvary > 1 ? ", " : "", nvary > 1 ? extra[1] : "",
					 nvary > 2 ? ", ..." : "", b.sc.run.seed + r);
			j = batch_run(&b, name, extra, nvary + 1, &status);
			done++;
			fprintf(f, "%s", name);
			for (size_t k = 0; k < nvary; k++)
				fprintf(f, ",%s", strchr(extra[k], '=') + 1);
			if (!j) {
				failed++;
				util_log("sweep: %s failed (exit %d) and wrote no summary", name, status);
				fprintf(f, ",,,,,,,,,,,,,,,failed\n");
				continue;
			}
			{
				json_t *rules = json_object_get(json_object_get(j, "faults"), "rules");
				size_t ri;
				json_t *rj;

				json_array_foreach(rules, ri, rj)
					fired += jnum(rj, "fired", NULL);
			}
			fprintf(f, ",%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.8g,%.8g,%.8g,%.8g,%.8g,%.0f,%s\n",
				jnum(j, "committed", NULL), jnum(j, "publish_attempts", NULL),
				jnum(j, "excess_copies", NULL), jnum(j, "deliveries", NULL),
				jnum(j, "duplicate_deliveries", NULL), jnum(j, "duplicates_processed", NULL),
				jnum(j, "lost", NULL), jnum(j, "wrongly_suppressed", NULL), jnum(j, "duplicate_rate", NULL),
				jnum(j, "predicted", "duplicate_rate"), jnum(j, "miss_probability", "estimate"),
				jnum(j, "miss_probability", "ci_low"), jnum(j, "miss_probability", "ci_high"), fired,
				json_string_value(json_object_get(j, "status")) ?: "?");
			json_decref(j);
			/* written after every run: an interrupted sweep keeps what it measured */
			fflush(f);
			if (util_write_file_atomic(csv, buf, len) < 0) {
				util_log("sweep: cannot write %s: %s", csv, strerror(errno));
				code = 1;
				goto out;
			}
		}
	}
	fflush(f);
	if (util_write_file_atomic(csv, buf, len) < 0) {
		util_log("sweep: cannot write %s: %s", csv, strerror(errno));
		code = 1;
		goto out;
	}
	if (plot_sweep(b.dir, err, sizeof(err)) < 0)
		util_log("sweep: plots: %s", err);
	if (report_write_sweep(b.dir, err, sizeof(err)) < 0)
		util_log("sweep: report: %s", err);
	printf("dupsim sweep: %zu run%s (%zu failed)%s -> %s/sweep.csv\n", done, done == 1 ? "" : "s", failed,
	       batch_signals ? ", interrupted" : "", b.dir);
	code = batch_signals ? 130 : failed ? 1 : 0;
out:
	if (f)
		fclose(f);
	free(buf);
	batch_release(&b);
	return code;
}

/* ---- validate ---- */

/*
 * Duplicate deliveries needed in all for a PASS if misses go on at the rate
 * seen so far (x / n; none seen: none to come): the smallest n' >= n with the
 * upper bound for x n' / n misses in n' below target. 0 when the rate itself
 * is not below the target, or n' would pass 1e12.
 */
static uint64_t validate_needed(uint64_t x, uint64_t n, double confidence, double target)
{
	double rate = n ? (double)x / (double)n : 0;
	struct stats_interval iv;
	uint64_t lo = n, hi = n ? n : 1;

	if (rate >= target)
		return 0;
	for (;;) {
		stats_clopper_pearson((uint64_t)llround(rate * (double)hi), hi, confidence, &iv);
		if (iv.high < target)
			break;
		if (hi > 1000000000000ull)
			return 0;
		lo = hi;
		hi *= 2;
	}
	while (lo + 1 < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		stats_clopper_pearson((uint64_t)llround(rate * (double)mid), mid, confidence, &iv);
		if (iv.high < target)
			hi = mid;
		else
			lo = mid;
	}
	return hi;
}

static void validate_usage(FILE *f)
{
	fprintf(f, "usage: dupsim validate FILE --target P [--confidence C] [--max-time T]\n"
		   "                       [--set section.key=value]... [--out DIR] [--quiet]\n"
		   "\n"
		   "Runs the scenario again and again (seed, seed+1, ...), pooling misses over\n"
		   "duplicate deliveries, until the Clopper-Pearson upper bound on the miss\n"
		   "probability at confidence C (default 0.95) is below P: PASS (exit 0); or the\n"
		   "lower bound is above P, so P can't be met: FAIL (exit 1); or T (default 10m)\n"
		   "passes: INCONCLUSIVE (exit 2), saying how many more duplicate deliveries a\n"
		   "PASS would need. P as a fraction or a percentage: 1e-3, 0.1%%.\n");
}

int batch_validate_cli(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "target", required_argument, NULL, 't' },   { "confidence", required_argument, NULL, 'c' },
		{ "max-time", required_argument, NULL, 'm' }, { "set", required_argument, NULL, 's' },
		{ "out", required_argument, NULL, 'o' },      { "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },	      { NULL, 0, NULL, 0 },
	};
	struct batch b = { 0 };
	double target = -1, confidence = 0.95;
	uint64_t max_ns = 600 * NS_PER_S, start, x = 0, n = 0, runs = 0;
	struct stats_interval iv = { 0, 0, 1, "none" };
	const char *verdict = "INCONCLUSIVE";
	struct sigaction sa = { .sa_handler = batch_on_signal };
	json_t *out;
	char path[PATH_MAX + 32];
	int opt, code = 2;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "hq", opts, NULL)) != -1) {
		int rc = batch_parse_common(&b, opt, optarg);

		if (rc < 0)
			return 2;
		if (rc > 0)
			continue;
		switch (opt) {
		case 't':
			if (util_parse_prob(optarg, &target) < 0 || target <= 0 || target >= 1) {
				util_log("validate: --target '%s': a miss probability strictly between 0 and 1, e.g. 1e-3 "
					 "or 0.1%%",
					 optarg);
				return 2;
			}
			break;
		case 'c':
			if (util_parse_prob(optarg, &confidence) < 0 || confidence < 0.5 || confidence >= 1) {
				util_log("validate: --confidence '%s': expected 0.5 <= C < 1, e.g. 0.95 or 99%%", optarg);
				return 2;
			}
			break;
		case 'm':
			if (util_parse_duration(optarg, &max_ns) < 0 || max_ns == 0) {
				util_log("validate: --max-time '%s': a duration with a unit, e.g. 90s or 10m", optarg);
				return 2;
			}
			break;
		case 'h':
			validate_usage(stdout);
			return 0;
		default:
			validate_usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1 || target < 0) {
		util_log("validate: expected one scenario FILE and --target P; see dupsim validate --help");
		return 2;
	}
	b.file = argv[optind];
	if (batch_load(&b, NULL, 0) < 0) {
		batch_release(&b);
		return 2;
	}
	if (batch_prepare(&b, "validate") < 0) {
		batch_release(&b);
		return 2;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	start = util_now_ns();
	while (!batch_signals) {
		char name[64], seed[64];
		const char *extra[1] = { seed };
		int status = -1;
		json_t *j;

		snprintf(name, sizeof(name), "run-%03" PRIu64, runs + 1);
		snprintf(seed, sizeof(seed), "run.seed=%" PRIu64, b.sc.run.seed + runs);
		j = batch_run(&b, name, extra, 1, &status);
		runs++;
		if (!j || status != 0) {
			util_log("validate: %s failed (exit %d); its numbers are not pooled", name, status);
			json_decref(j);
			if (!j)
				break;
		} else {
			x += (uint64_t)jnum(j, "duplicates_processed", NULL);
			n += (uint64_t)jnum(j, "duplicate_deliveries", NULL);
			json_decref(j);
		}
		stats_clopper_pearson(x, n, confidence, &iv);
		printf("validate: run %" PRIu64 ": %" PRIu64 " misses in %" PRIu64
		       " duplicate deliveries, miss probability <= %.3g (lower %.3g) at %.0f%%, target %.3g\n",
		       runs, x, n, iv.high, iv.low, confidence * 100, target);
		fflush(stdout);
		if (n > 0 && iv.high < target) {
			verdict = "PASS";
			code = 0;
			break;
		}
		if (n > 0 && iv.low > target) {
			verdict = "FAIL";
			code = 1;
			break;
		}
		if (util_now_ns() - start > max_ns)
			break;
	}
	printf("validate: %s: %" PRIu64 " misses in %" PRIu64 " duplicate deliveries over %" PRIu64 " run%s; "
	       "95%% interval [%.3g, %.3g] (Clopper-Pearson at %.0f%%), target %.3g\n",
	       verdict, x, n, runs, runs == 1 ? "" : "s", iv.low, iv.high, confidence * 100, target);
	if (code == 2) {
		uint64_t need = validate_needed(x, n, confidence, target);

		if (need)
			printf("validate: a PASS needs about %" PRIu64 " more duplicate deliveries if misses go on at "
			       "the rate seen (%" PRIu64 " in all)\n",
			       need - n, need);
		else
			printf("validate: at the miss rate seen (%.3g) the target can't be shown; more runs won't help\n",
			       n ? (double)x / (double)n : 0.0);
	}
	out = json_pack("{s:s, s:f, s:f, s:I, s:I, s:I, s:f, s:f, s:s}", "verdict", verdict, "target", target,
			"confidence", confidence, "runs", (json_int_t)runs, "misses", (json_int_t)x, "duplicate_deliveries",
			(json_int_t)n, "ci_low", iv.low, "ci_high", iv.high, "scenario", b.sc.run.name);
	snprintf(path, sizeof(path), "%s/validate.json", b.dir);
	if (out) {
		char *s = json_dumps(out, JSON_INDENT(2));

		if (!s || util_write_file_atomic(path, s, strlen(s)) < 0)
			util_log("validate: cannot write %s: %s", path, strerror(errno));
		free(s);
		json_decref(out);
	}
	batch_release(&b);
	return batch_signals ? 130 : code;
}
