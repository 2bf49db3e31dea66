/* batch.c — many runs of one scenario: `dupsim sweep` over a grid of keys, `dupsim validate` until a verdict. */
#include "cmd/batch.h"

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

#include "cmd/broker.h"
#include "cmd/cli.h"
#include "nodes/node.h"
#include "nodes/rabbitmq.h"
#include "results/csv.h"
#include "results/plot.h"
#include "results/report.h"
#include "results/results.h"
#include "results/sweep.h"
#include "core/scenario.h"
#include "analysis/evidence.h"
#include "analysis/stats.h"
#include "core/clock.h"
#include "core/files.h"
#include "core/log.h"
#include "core/parse.h"

#define VARY_MAX 4
#define VALUES_MAX 64
#define SETS_MAX 64

extern char **environ;

/* What every batch command shares: the scenario, extra --set, where results go, the broker. */
struct batch {
	const char *file;
	const char *sets[SETS_MAX];
	size_t nsets;
	const char *out;
	bool quiet;
	struct scenario sc;     /* loaded once, to check it and for the name */
	char dir[PATH_MAX];	/* the batch folder */
	struct node *broker;  /* a private node for the whole batch, or NULL */
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
	log_line("%s", err);
	return -1;
}

/* The batch folder, and one broker for every run of the batch. */
static int batch_prepare(struct batch *b, const char *kind)
{
	char err[1024], url[256];

	if (files_results_dir(b->dir, sizeof(b->dir), b->out, b->sc.run.name, kind) < 0) {
		log_line("%s: cannot write into %s: %s; choose another folder with --out", kind, b->dir,
			 strerror(errno));
		return -1;
	}
	/* a scenario that kills its broker (or sets its consumer_timeout): every run starts a node of its own */
	if (b->sc.faults.broker_crash_every_ns || b->sc.broker.consumer_timeout_ns) {
		if (!b->quiet)
			log_line("%s: the scenario kills its broker: each run starts a private node of its own", kind);
		return 0;
	}
	if (strcmp(b->sc.broker.url, "embedded") == 0 && broker_find_persistent(url, sizeof(url)) < 0) {
		struct node_opts o = { .quiet = b->quiet };

		if (!b->quiet)
			log_line("%s: starting one private RabbitMQ node for all runs", kind);
		if (node_new(&b->broker, &rabbitmq_ops, &o, err, sizeof(err)) < 0) {
			log_line("%s: could not start a private RabbitMQ node: %s", kind, err);
			return -1;
		}
		snprintf(b->broker_set, sizeof(b->broker_set), "broker.url=%s", node_url(b->broker));
	}
	return 0;
}

static void batch_release(struct batch *b)
{
	node_free(b->broker);
	scenario_release(&b->sc);
}

/*
 * One `dupsim run` in a child process, into b->dir/name, with the batch's
 * --set values, then extra; its folder loaded into res (results_load).
 * 0, or -1 when the run wrote no summary; *status is its exit status.
 */
static int batch_run(struct batch *b, const char *name, const char *const *extra, size_t nextra, int *status,
		     struct results *res)
{
	char self[PATH_MAX], out[PATH_MAX + 64], why[PATH_MAX + 128];
	char *argv[16 + 2 * (SETS_MAX + VARY_MAX + 4)];
	int argc = 0, st;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	pid_t pid;

	if (n <= 0)
		return -1;
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
			return -1;
		}
		posix_spawn_file_actions_destroy(&fa);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return results_load(res, out, why, sizeof(why));
}

static int batch_parse_common(struct batch *b, int opt, const char *arg)
{
	switch (opt) {
	case 's':
		if (b->nsets == SETS_MAX) {
			log_line("at most %d --set options", SETS_MAX);
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
		log_line("sweep: --vary '%s': expected section.key=v1,v2,... e.g. --vary faults.commit_ok_loss=0.5%%,1%%,2%%",
			 arg);
		return -1;
	}
	snprintf(v->key, sizeof(v->key), "%.*s", (int)(eq - arg), arg);
	snprintf(v->text, sizeof(v->text), "%s", eq + 1);
	for (tok = strtok_r(v->text, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (v->count == VALUES_MAX) {
			log_line("sweep: --vary %s: at most %d values", v->key, VALUES_MAX);
			return -1;
		}
		v->values[v->count++] = tok;
	}
	if (!v->count) {
		log_line("sweep: --vary %s: no values", v->key);
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

/* One sweep: its options and the rows so far. */
struct sweep_cmd {
	struct batch b;
	struct vary vary[VARY_MAX];
	size_t nvary, points, done, failed;
	uint64_t repeat;
	struct sweep s;
};

/* The command line into w; -1 to go on, else the exit code. */
static int sweep_parse(struct sweep_cmd *w, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vary", required_argument, NULL, 'v' }, { "repeat", required_argument, NULL, 'r' },
		{ "set", required_argument, NULL, 's' },  { "out", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },	  { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "hq", opts, NULL)) != -1) {
		int rc = batch_parse_common(&w->b, opt, optarg);

		if (rc < 0)
			return 2;
		if (rc > 0)
			continue;
		switch (opt) {
		case 'v':
			if (w->nvary == VARY_MAX) {
				log_line("sweep: at most %d --vary options", VARY_MAX);
				return 2;
			}
			if (vary_parse(&w->vary[w->nvary], optarg) < 0)
				return 2;
			w->points *= w->vary[w->nvary++].count;
			break;
		case 'r':
			if (parse_u64(optarg, &w->repeat) < 0 || w->repeat < 1 || w->repeat > 1000) {
				log_line("sweep: --repeat '%s': expected 1 to 1000", optarg);
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
	if (optind != argc - 1 || w->nvary == 0) {
		log_line("sweep: expected one scenario FILE and at least one --vary; see dupsim sweep --help");
		return 2;
	}
	w->b.file = argv[optind];
	return -1;
}

/* Every value of every key must be valid before anything runs; 0 or -1 (said). */
static int sweep_check_values(struct sweep_cmd *w)
{
	for (size_t k = 0; k < w->nvary; k++) {
		for (size_t i = 0; i < w->vary[k].count; i++) {
			char set[1200];
			const char *one = set;
			int bad = snprintf(set, sizeof(set), "%s=%s", w->vary[k].key, w->vary[k].values[i]) >=
					  (int)sizeof(set) ||
				  batch_load(&w->b, &one, 1) < 0;

			scenario_release(&w->b.sc);
			if (bad)
				return -1;
		}
	}
	return 0;
}

/* sweep.csv from the rows so far; written after every run, so an interrupted sweep keeps what it measured. */
static int sweep_save(const struct sweep_cmd *w)
{
	char csv[PATH_MAX + 16], *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int rc = -1;

	snprintf(csv, sizeof(csv), "%s/sweep.csv", w->b.dir);
	if (f) {
		sweep_write_csv(&w->s, f);
		if (fclose(f) == 0)
			rc = files_write_atomic(csv, buf, len);
	}
	if (rc < 0)
		log_line("sweep: cannot write %s: %s", csv, strerror(errno));
	free(buf);
	return rc;
}

/* The runs of grid point p (repeat seeds each); 0, or -1 when sweep.csv can't be written. */
static int sweep_point(struct sweep_cmd *w, size_t p)
{
	static struct results res; /* large; one run at a time */
	char sets[VARY_MAX + 1][1200];
	const char *extra[VARY_MAX + 1], *values[VARY_MAX];
	size_t idx = p, nvary = w->nvary;

	for (size_t k = 0; k < nvary; k++) {
		size_t i = idx % w->vary[k].count;

		idx /= w->vary[k].count;
		if (snprintf(sets[k], sizeof(sets[k]), "%s=%s", w->vary[k].key, w->vary[k].values[i]) >= (int)sizeof(sets[k]))
			sets[k][0] = '\0'; /* can't happen: key and values are shorter */
		extra[k] = sets[k];
		values[k] = w->vary[k].values[i];
	}
	for (uint64_t r = 0; r < w->repeat && !cli_signals; r++) {
		char name[64];
		int status = -1, rc;

		snprintf(sets[nvary], sizeof(sets[nvary]), "run.seed=%" PRIu64, w->b.sc.run.seed + r);
		extra[nvary] = sets[nvary];
		snprintf(name, sizeof(name), "run-%03zu", w->done + 1);
		if (!w->b.quiet)
			log_line("sweep: %s (%zu of %zu): %s%s%s%s, seed %" PRIu64, name, w->done + 1,
				 w->points * (size_t)w->repeat, extra[0], nvary > 1 ? ", " : "", nvary > 1 ? extra[1] : "",
				 nvary > 2 ? ", ..." : "", w->b.sc.run.seed + r);
		rc = batch_run(&w->b, name, extra, nvary + 1, &status, &res);
		w->done++;
		if (rc < 0) {
			w->failed++;
			log_line("sweep: %s failed (exit %d) and wrote no summary", name, status);
		}
		if (sweep_add(&w->s, name, values, rc < 0 ? NULL : &res) < 0 || sweep_save(w) < 0)
			return -1;
	}
	return 0;
}

int batch_sweep_cli(int argc, char **argv)
{
	static struct sweep_cmd w;
	const char *keys[VARY_MAX];
	char err[512];
	int code;

	memset(&w, 0, sizeof(w));
	w.points = 1;
	w.repeat = 1;
	code = sweep_parse(&w, argc, argv);
	if (code >= 0)
		return code;
	if (sweep_check_values(&w) < 0)
		return 2;
	if (batch_load(&w.b, NULL, 0) < 0 || batch_prepare(&w.b, "sweep") < 0) {
		batch_release(&w.b);
		return w.b.sc.path[0] ? 1 : 2;
	}
	cli_catch_signals(false, NULL);
	for (size_t k = 0; k < w.nvary; k++)
		keys[k] = w.vary[k].key;
	sweep_init(&w.s, keys, w.nvary);
	code = 0;
	for (size_t p = 0; p < w.points && !cli_signals && code == 0; p++)
		code = sweep_point(&w, p) < 0 ? 1 : 0;
	if (code == 0 && sweep_save(&w) == 0) {
		if (plot_draw_sweep(w.b.dir, &w.s, err, sizeof(err)) < 0)
			log_line("sweep: plots: %s", err);
		if (report_sweep(w.b.dir, &w.s, err, sizeof(err)) < 0)
			log_line("sweep: report: %s", err);
		printf("dupsim sweep: %zu run%s (%zu failed)%s -> %s/sweep.csv\n", w.done, w.done == 1 ? "" : "s",
		       w.failed, cli_signals ? ", interrupted" : "", w.b.dir);
		code = cli_signals ? 130 : w.failed ? 1 : 0;
	} else {
		code = 1;
	}
	sweep_release(&w.s);
	batch_release(&w.b);
	return code;
}

/* ---- pooled fault events ---- */

/* Every fault event of the runs so far: x[i] misses among d[i] duplicates. */
struct pool {
	uint64_t *x, *d;
	size_t n, cap;
};

static void pool_release(struct pool *p)
{
	free(p->x);
	free(p->d);
	memset(p, 0, sizeof(*p));
}

/* Room for one more event; 0 or -1 (said). */
static int pool_grow(struct pool *p)
{
	size_t cap = p->cap ? p->cap * 2 : 1024;
	uint64_t *nx, *nd;

	if (p->n < p->cap)
		return 0;
	nx = realloc(p->x, cap * sizeof(*nx));
	if (nx)
		p->x = nx;
	nd = nx ? realloc(p->d, cap * sizeof(*nd)) : NULL;
	if (!nd) {
		log_line("out of memory for the pooled fault events");
		return -1;
	}
	p->d = nd;
	p->cap = cap;
	return 0;
}

/*
 * Appends the events of one run folder (events.csv's columns duplicates and
 * misses). 0, or -1 when the file can't be read or a row is malformed (named).
 */
static int pool_add_run(struct pool *p, const char *dir)
{
	char path[PATH_MAX + 256];
	struct csv t;
	int cd, cm, rc = 0;

	snprintf(path, sizeof(path), "%s/events.csv", dir);
	if (csv_read(path, &t) < 0) {
		log_line("cannot read %s: %s", path, errno == EINVAL ? "it has no header line" : strerror(errno));
		return -1;
	}
	cd = csv_col(&t, "duplicates");
	cm = csv_col(&t, "misses");
	for (size_t i = 0; i < t.nrows && rc == 0; i++) {
		uint64_t dups, misses;

		if (cd < 0 || cm < 0 || parse_u64(csv_cell(&t, i, cd), &dups) < 0 ||
		    parse_u64(csv_cell(&t, i, cm), &misses) < 0 || misses > dups) {
			log_line("%s: data row %zu: malformed (expected ...,duplicates,misses)", path, i + 1);
			rc = -1;
		} else if ((rc = pool_grow(p)) == 0) {
			p->x[p->n] = misses;
			p->d[p->n] = dups;
			p->n++;
		}
	}
	csv_free(&t);
	return rc;
}

/* ---- validate ---- */

enum {
	VALIDATE_PASS = 0,
	VALIDATE_FAIL = 1,
	VALIDATE_USAGE = 2,
	VALIDATE_INCONCLUSIVE = 3,
	VALIDATE_COULD_NOT_RUN = 4,
	VALIDATE_INTERRUPTED = 130,
};

/*
 * Fault events needed in all for a PASS at the look confidence if misses go
 * on as seen (the events keep their effective weight n_eff / events): 0 when
 * the rate seen is not below the target, or it would take over 1e9 events.
 */
static uint64_t validate_needed(const struct evidence_interval *iv, double look_confidence, double target)
{
	double per_event, rate = iv->estimate;
	struct stats_interval ci;

	if (iv->events == 0 || rate >= target)
		return 0;
	if (iv->misses == 0) { /* 1 - (1 - c)^(1/n) < target */
		uint64_t n = (uint64_t)ceil(log(1 - look_confidence) / log1p(-target));

		return n < EVIDENCE_MIN_EVENTS ? EVIDENCE_MIN_EVENTS : n;
	}
	per_event = isfinite(iv->n_eff) ? iv->n_eff / (double)iv->events : (double)iv->dups / (double)iv->events;
	for (uint64_t n = iv->events; n < 1000000000ull; n += n / 8 + 1) {
		uint64_t ne = (uint64_t)llround(per_event * (double)n);

		stats_clopper_pearson((uint64_t)llround(rate * (double)ne), ne, 2 * look_confidence - 1, &ci);
		if (ci.high < target)
			return n;
	}
	return 0;
}

static void validate_usage(FILE *f)
{
	fprintf(f, "usage: dupsim validate FILE --target P [--confidence C] [--max-runs N] [--max-time T]\n"
		   "                       [--set section.key=value]... [--out DIR] [--quiet]\n"
		   "\n"
		   "Runs the scenario with seeds seed, seed+1, ... and pools the fault events of\n"
		   "all runs (the duplicates of one event share their fate, so the event is the\n"
		   "unit of evidence). It looks only after runs 1, 2, 4, 8, ... and N (default 32),\n"
		   "with the error 1 - C (C default 0.95) split evenly over those looks, so the\n"
		   "chance of a false PASS stays below 1 - C however many looks are made. At a\n"
		   "look: PASS when the one-sided upper bound on the miss probability is below P;\n"
		   "FAIL when the lower bound is above P. INCONCLUSIVE when N runs or T (default\n"
		   "10m) are used up first, saying how many fault events a PASS would need.\n"
		   "P as a fraction or a percentage: 1e-3, 0.1%%.\n"
		   "\n"
		   "Exit codes: 0 PASS, 1 FAIL, 2 bad command line or scenario, 3 INCONCLUSIVE,\n"
		   "4 could not run (broker, results folder), 130 interrupted.\n");
}

/* Prints the plan once, before the first run. */
static void validate_print_plan(const struct evidence_plan *plan, double target)
{
	printf("validate: plan: looks after run");
	for (unsigned r = 1; r <= plan->max_runs; r++)
		if (evidence_plan_is_look(plan, r))
			printf(" %u", r);
	printf(" (%u looks); error %.3g%% split evenly: each look tests one-sided at %.4g%%; "
	       "PASS when the upper bound over fault events is below %.3g, FAIL when the lower bound is above it\n",
	       plan->looks, (1 - plan->confidence) * 100, plan->look_confidence * 100, target);
	fflush(stdout);
}

/* Writes a JSON verdict file into the batch folder (named in a message when it can't). Consumes j. */
static void batch_write_json(const struct batch *b, const char *name, json_t *j)
{
	char path[PATH_MAX + 32], *txt;

	if (!j)
		return;
	snprintf(path, sizeof(path), "%s/%s", b->dir, name);
	txt = json_dumps(j, JSON_INDENT(2));
	if (!txt || files_write_atomic(path, txt, strlen(txt)) < 0)
		log_line("cannot write %s: %s", path, strerror(errno));
	free(txt);
	json_decref(j);
}

/* One validation: its options, the pooled events, where the plan stands. */
struct validate {
	struct batch b;
	struct pool pool;
	struct evidence_plan plan;
	struct evidence_interval iv; /* at the last look */
	double target, confidence;
	uint64_t max_ns;
	unsigned long max_runs;
	unsigned runs, pooled_runs;
	const char *verdict;
	int code;
};

/* The command line into v; -1 to go on, else the exit code. */
static int validate_parse(struct validate *v, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "target", required_argument, NULL, 't' },   { "confidence", required_argument, NULL, 'c' },
		{ "max-time", required_argument, NULL, 'm' }, { "max-runs", required_argument, NULL, 'n' },
		{ "set", required_argument, NULL, 's' },      { "out", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },	      { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "hq", opts, NULL)) != -1) {
		int rc = batch_parse_common(&v->b, opt, optarg);

		if (rc < 0)
			return VALIDATE_USAGE;
		if (rc > 0)
			continue;
		switch (opt) {
		case 't':
			if (parse_prob(optarg, &v->target) < 0 || v->target <= 0 || v->target >= 1) {
				log_line("validate: --target '%s': a miss probability strictly between 0 and 1, e.g. 1e-3 "
					 "or 0.1%%",
					 optarg);
				return VALIDATE_USAGE;
			}
			break;
		case 'c':
			if (parse_prob(optarg, &v->confidence) < 0 || v->confidence < 0.5 || v->confidence >= 1) {
				log_line("validate: --confidence '%s': expected 0.5 <= C < 1, e.g. 0.95 or 99%%", optarg);
				return VALIDATE_USAGE;
			}
			break;
		case 'm':
			if (parse_duration(optarg, &v->max_ns) < 0 || v->max_ns == 0) {
				log_line("validate: --max-time '%s': a duration with a unit, e.g. 90s or 10m", optarg);
				return VALIDATE_USAGE;
			}
			break;
		case 'n':
			errno = 0;
			v->max_runs = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || v->max_runs < 1 || v->max_runs > 4096) {
				log_line("validate: --max-runs '%s': a whole number from 1 to 4096", optarg);
				return VALIDATE_USAGE;
			}
			break;
		case 'h':
			validate_usage(stdout);
			return VALIDATE_PASS;
		default:
			validate_usage(stderr);
			return VALIDATE_USAGE;
		}
	}
	if (optind != argc - 1 || v->target < 0) {
		log_line("validate: expected one scenario FILE and --target P; see dupsim validate --help");
		return VALIDATE_USAGE;
	}
	v->b.file = argv[optind];
	return -1;
}

/* The look after this run, if the plan makes one: sets the verdict; false when it is given. */
static bool validate_look(struct validate *v)
{
	enum evidence_verdict verdict;

	if (!evidence_plan_is_look(&v->plan, v->runs)) {
		if (!v->b.quiet)
			printf("validate: run %u done, %zu fault events pooled; next look after run", v->runs, v->pool.n);
		for (unsigned r = v->runs + 1; !v->b.quiet && r <= v->plan.max_runs; r++)
			if (evidence_plan_is_look(&v->plan, r)) {
				printf(" %u\n", r);
				break;
			}
		fflush(stdout);
		return true;
	}
	verdict = evidence_look(&v->plan, v->pool.x, v->pool.d, v->pool.n, v->target, &v->iv);
	if (v->iv.has_interval)
		printf("validate: look after run %u: %" PRIu64 " misses in %" PRIu64 " duplicate deliveries from %" PRIu64
		       " fault events; miss probability in [%.3g, %.3g] at %.4g%% per side, target %.3g\n",
		       v->runs, v->iv.misses, v->iv.dups, v->iv.events, v->iv.low, v->iv.high,
		       v->plan.look_confidence * 100, v->target);
	else
		printf("validate: look after run %u: %" PRIu64 " fault events; no interval yet: %s\n", v->runs,
		       v->iv.events, v->iv.reason);
	fflush(stdout);
	if (verdict == EVIDENCE_CONTINUE)
		return true;
	v->verdict = verdict == EVIDENCE_PASS ? "PASS" : "FAIL";
	v->code = verdict == EVIDENCE_PASS ? VALIDATE_PASS : VALIDATE_FAIL;
	return false;
}

/* One more run, pooled, then the plan's look; false when the validation is over. */
static bool validate_step(struct validate *v)
{
	char name[64], seed[64], dir[PATH_MAX + 80];
	const char *extra[1] = { seed };
	static struct results res; /* large; one run at a time */
	int status = -1, rc;

	snprintf(name, sizeof(name), "run-%03u", v->runs + 1);
	snprintf(seed, sizeof(seed), "run.seed=%" PRIu64, v->b.sc.run.seed + v->runs);
	rc = batch_run(&v->b, name, extra, 1, &status, &res);
	v->runs++;
	snprintf(dir, sizeof(dir), "%s/%s", v->b.dir, name);
	if (rc < 0 || status != 0 || pool_add_run(&v->pool, dir) < 0) {
		/* a run that did not finish can't be pooled; the plan's looks stay where they were */
		log_line("validate: %s failed (exit %d); its events are not pooled", name, status);
		if (rc < 0) {
			v->code = VALIDATE_COULD_NOT_RUN;
			return false;
		}
	} else {
		v->pooled_runs++;
	}
	return validate_look(v);
}

/* The verdict's last lines and validate.json. */
static void validate_report(struct validate *v)
{
	struct evidence_interval *iv = &v->iv;
	unsigned n = v->pooled_runs;

	if (!iv->has_interval && v->pool.n)
		evidence_ratio2(v->pool.x, v->pool.d, v->pool.n, 2 * v->plan.look_confidence - 1, iv);
	if (iv->has_interval)
		printf("validate: %s: %" PRIu64 " misses in %" PRIu64 " duplicate deliveries from %" PRIu64
		       " fault events over %u run%s; miss probability in [%.3g, %.3g] at %.4g%% per side (%s), "
		       "%.3g%% overall; target %.3g\n",
		       v->verdict, iv->misses, iv->dups, iv->events, n, n == 1 ? "" : "s", iv->low, iv->high,
		       v->plan.look_confidence * 100, iv->method, v->confidence * 100, v->target);
	else
		printf("validate: %s: %zu fault events over %u run%s: %s\n", v->verdict, v->pool.n, n, n == 1 ? "" : "s",
		       iv->reason);
	if (v->code == VALIDATE_INCONCLUSIVE) {
		uint64_t need = validate_needed(iv, v->plan.look_confidence, v->target);

		if (need)
			printf("validate: a PASS needs about %" PRIu64 " fault events in all if misses go on as seen (%" PRIu64
			       " so far); raise --max-runs, or make faults smaller and more frequent\n",
			       need, iv->events);
		else if (iv->events)
			printf("validate: at the miss rate seen (%.3g) the target can't be shown; more runs won't help\n",
			       iv->estimate);
	}
	batch_write_json(&v->b, "validate.json",
			 json_pack("{s:s, s:f, s:f, s:i, s:i, s:f, s:I, s:I, s:I, s:o, s:o, s:s, s:s}", "verdict",
				   v->verdict, "target", v->target, "confidence", v->confidence, "runs", (int)v->runs,
				   "looks", (int)v->plan.looks, "look_confidence", v->plan.look_confidence, "misses",
				   (json_int_t)iv->misses, "duplicate_deliveries", (json_int_t)iv->dups, "fault_events",
				   (json_int_t)iv->events, "ci_low", iv->has_interval ? json_real(iv->low) : json_null(),
				   "ci_high", iv->has_interval ? json_real(iv->high) : json_null(), "method", iv->method,
				   "scenario", v->b.sc.run.name));
}

int batch_validate_cli(int argc, char **argv)
{
	static struct validate v; /* large (the scenario); one per process */
	uint64_t start;
	int rc;

	memset(&v, 0, sizeof(v));
	v.target = -1;
	v.confidence = 0.95;
	v.max_ns = 600 * NS_PER_S;
	v.max_runs = 32;
	v.verdict = "INCONCLUSIVE";
	v.code = VALIDATE_INCONCLUSIVE;
	v.iv = (struct evidence_interval){ .method = "none", .reason = "no look yet", .low = NAN, .high = NAN };
	rc = validate_parse(&v, argc, argv);
	if (rc >= 0)
		return rc;
	if (batch_load(&v.b, NULL, 0) < 0 || batch_prepare(&v.b, "validate") < 0) {
		rc = v.b.dir[0] ? VALIDATE_COULD_NOT_RUN : VALIDATE_USAGE;
		batch_release(&v.b);
		return rc;
	}
	evidence_plan_init(&v.plan, (unsigned)v.max_runs, v.confidence);
	validate_print_plan(&v.plan, v.target);
	cli_catch_signals(false, NULL);
	start = clock_now_ns();
	while (!cli_signals && v.runs < v.plan.max_runs && validate_step(&v)) {
		if (clock_now_ns() - start > v.max_ns) {
			printf("validate: --max-time used up after run %u\n", v.runs);
			break;
		}
	}
	validate_report(&v);
	pool_release(&v.pool);
	batch_release(&v.b);
	return cli_signals ? VALIDATE_INTERRUPTED : v.code;
}

/* ---- coverage ---- */

static void coverage_usage(FILE *f)
{
	fprintf(f, "usage: dupsim coverage FILE [--runs N] [--min-covered K] [--max-width-ratio R]\n"
		   "                       [--set section.key=value]... [--out DIR] [--quiet]\n"
		   "\n"
		   "Tests the miss-probability interval on your scenario: runs it N times (default\n"
		   "25; seeds seed, seed+1, ...), pools every run's misses and duplicates into one\n"
		   "estimate, and counts the runs whose 95 %% interval covers it. A run without an\n"
		   "interval (too few fault events) counts as not covered. Prints the same for the\n"
		   "independent-trials interval, the mean half-width and the spread of the per-run\n"
		   "estimates, and writes DIR/coverage.json.\n"
		   "\n"
		   "The duplicate rate too, for information: how many runs' 95 %% bands hold the\n"
		   "pooled rate, and how many runs fall in the model's 95 %% band for one run\n"
		   "(predicted.duplicate_rate_band). These don't decide the exit code.\n"
		   "\n"
		   "Exit codes: 0 when at least K runs (default 22 of 25, scaled to N) are covered\n"
		   "and the mean half-width is below R (default 3) times the per-run sd, so that\n"
		   "[0, 1] can't pass; 1 when not; 2 bad command\n"
		   "line or scenario; 4 could not run; 130 interrupted.\n");
}

struct coverage_run {
	double estimate, low, high, ilow, ihigh;
	bool has_interval;
	uint64_t misses, trials;
	double dups, committed, rate_low, rate_high; /* the duplicate rate and its band (NAN: none) */
	double pred, pred_sd;			     /* the model's prediction and spread (NAN: none) */
};

struct coverage {
	struct batch b;
	unsigned long nruns, min_covered;
	double max_ratio;
	struct coverage_run *cr;
	unsigned done;
};

/* The command line into c; -1 to go on, else the exit code. */
static int coverage_parse(struct coverage *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "runs", required_argument, NULL, 'n' }, { "min-covered", required_argument, NULL, 'k' },
		{ "max-width-ratio", required_argument, NULL, 'w' },
		{ "set", required_argument, NULL, 's' },  { "out", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },	  { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "hq", opts, NULL)) != -1) {
		int rc = batch_parse_common(&c->b, opt, optarg);

		if (rc < 0)
			return 2;
		if (rc > 0)
			continue;
		switch (opt) {
		case 'n':
		case 'k':
			errno = 0;
			(opt == 'n' ? &c->nruns : &c->min_covered)[0] = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || (opt == 'n' && (c->nruns < 2 || c->nruns > 1000))) {
				log_line("coverage: --%s '%s': a whole number%s", opt == 'n' ? "runs" : "min-covered", optarg,
					 opt == 'n' ? " from 2 to 1000" : "");
				return 2;
			}
			break;
		case 'w':
			c->max_ratio = strtod(optarg, &end);
			if (end == optarg || *end || !(c->max_ratio > 0)) {
				log_line("coverage: --max-width-ratio '%s': a positive number, e.g. 3", optarg);
				return 2;
			}
			break;
		case 'h':
			coverage_usage(stdout);
			return 0;
		default:
			coverage_usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		log_line("coverage: expected one scenario FILE; see dupsim coverage --help");
		return 2;
	}
	if (!c->min_covered)
		c->min_covered = (unsigned long)ceil(22.0 / 25.0 * (double)c->nruns);
	if (c->min_covered > c->nruns) {
		log_line("coverage: --min-covered %lu is more than --runs %lu", c->min_covered, c->nruns);
		return 2;
	}
	c->b.file = argv[optind];
	return -1;
}

/* The runs, each one's headline and independent-trials intervals; 0, or 4 when a run failed. */
static int coverage_collect(struct coverage *c)
{
	for (unsigned i = 0; i < c->nruns && !cli_signals; i++) {
		char name[64], seed[64];
		const char *extra[1] = { seed };
		struct coverage_run *r = &c->cr[c->done];
		static struct results res; /* large; one run at a time */
		int status = -1;

		snprintf(name, sizeof(name), "run-%03u", i + 1);
		snprintf(seed, sizeof(seed), "run.seed=%" PRIu64, c->b.sc.run.seed + i);
		if (batch_run(&c->b, name, extra, 1, &status, &res) < 0 || status != 0) {
			log_line("coverage: %s failed (exit %d); see %s/%s", name, status, c->b.dir, name);
			return 4;
		}
		*r = (struct coverage_run){
			.estimate = res.miss.estimate,
			.low = res.miss.ci_low,
			.high = res.miss.ci_high,
			.ilow = res.miss.independent_low,
			.ihigh = res.miss.independent_high,
			.misses = (uint64_t)res.miss.misses,
			.trials = (uint64_t)res.miss.trials,
			.dups = res.duplicate_deliveries,
			.committed = res.committed,
			.rate_low = res.duplicate_rate_low,
			.rate_high = res.duplicate_rate_high,
			.pred = res.predicted.duplicate_rate,
			.pred_sd = res.predicted.duplicate_rate_sd,
		};
		r->has_interval = isfinite(r->low) && isfinite(r->high);
		c->done++;
		if (!c->b.quiet) {
			printf("coverage: run %u of %lu: miss probability %.4g [%.4g, %.4g]\n", c->done, c->nruns, r->estimate,
			       r->low, r->high);
			fflush(stdout);
		}
	}
	return 0;
}

/*
 * The duplicate rate's two claims over the runs: each run's band around its
 * measured rate should hold the pooled rate, and the model's band around its
 * prediction (from the loss rates) each run's rate; 95 % of the runs for
 * both. Printed and returned as JSON; they don't decide the exit code.
 */
static json_t *coverage_rates(const struct coverage *c)
{
	unsigned n = c->done, banded = 0, held = 0, modelled = 0, fits = 0;
	double dups = 0, committed = 0, pooled;

	for (unsigned i = 0; i < n; i++) {
		dups += c->cr[i].dups;
		committed += c->cr[i].committed;
	}
	pooled = committed > 0 ? dups / committed : NAN;
	for (unsigned i = 0; i < n; i++) {
		const struct coverage_run *r = &c->cr[i];
		double rate = r->committed > 0 ? r->dups / r->committed : NAN;

		if (isfinite(r->rate_low) && isfinite(r->rate_high)) {
			banded++;
			held += r->rate_low <= pooled && pooled <= r->rate_high;
		}
		if (isfinite(r->pred) && isfinite(r->pred_sd) && isfinite(rate)) {
			modelled++;
			fits += fabs(rate - r->pred) <= 1.959964 * r->pred_sd;
		}
	}
	printf("coverage: pooled duplicate rate %.4g%%: each run's 95%% band held it in %u of %u runs with a band\n",
	       pooled * 100, held, banded);
	if (modelled)
		printf("coverage: the model's 95%% band for one run held the run's rate in %u of %u\n", fits, modelled);
	return json_pack("{s:o, s:i, s:i, s:i, s:i}", "pooled", isfinite(pooled) ? json_real(pooled) : json_null(),
			 "runs_with_band", (int)banded, "band_held_pooled", (int)held, "runs_predicted", (int)modelled,
			 "model_band_held_run", (int)fits);
}

/* Pools the runs, counts the covering intervals, prints the verdict, writes coverage.json; 0 met, 1 not. */
static int coverage_report(struct coverage *c)
{
	unsigned covered = 0, icovered = 0, without = 0, n = c->done;
	uint64_t misses = 0, trials = 0;
	double pooled, mean = 0, sd = 0, half = 0;
	json_t *arr = json_array();
	bool ok;

	for (unsigned i = 0; i < n; i++) {
		misses += c->cr[i].misses;
		trials += c->cr[i].trials;
		mean += c->cr[i].estimate / n;
	}
	pooled = trials ? (double)misses / (double)trials : 0;
	for (unsigned i = 0; i < n; i++) {
		const struct coverage_run *r = &c->cr[i];
		bool in = r->has_interval && r->low <= pooled && pooled <= r->high;

		sd += (r->estimate - mean) * (r->estimate - mean) / (n - 1);
		covered += in;
		icovered += r->ilow <= pooled && pooled <= r->ihigh;
		without += !r->has_interval;
		half += r->has_interval ? (r->high - r->low) / 2 / n : 0.5 / n; /* no interval: as wide as [0, 1] */
		json_array_append_new(arr, json_pack("{s:f, s:o, s:o, s:f, s:f, s:b}", "estimate", r->estimate, "ci_low",
						     r->has_interval ? json_real(r->low) : json_null(), "ci_high",
						     r->has_interval ? json_real(r->high) : json_null(), "independent_low",
						     r->ilow, "independent_high", r->ihigh, "covered", in));
	}
	sd = sqrt(sd);
	ok = covered >= c->min_covered && half < c->max_ratio * sd;
	printf("coverage: %s: pooled miss probability %.4g (%" PRIu64 " misses in %" PRIu64
	       " duplicate deliveries over %u runs)\n"
	       "coverage: the 95%% interval over fault events covered it in %u of %u runs (%u without an interval); "
	       "needed %lu\n"
	       "coverage: the independent-trials interval covered it in %u of %u\n"
	       "coverage: per-run estimates: sd %.4g; mean half-width %.4g (%.2fx the sd; must stay below %gx)\n",
	       ok ? "OK" : "NOT MET", pooled, misses, trials, n, covered, n, without, c->min_covered, icovered, n, sd, half,
	       sd > 0 ? half / sd : INFINITY, c->max_ratio);
	batch_write_json(&c->b, "coverage.json",
			 json_pack("{s:s, s:f, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:b, s:o, s:o}", "scenario",
				   c->b.sc.run.name, "pooled", pooled, "runs", (int)n, "covered", (int)covered,
				   "independent_covered", (int)icovered, "without_interval", (int)without, "min_covered",
				   (int)c->min_covered, "sd", sd, "mean_half_width", half, "ok", ok, "per_run", arr,
				   "duplicate_rate", coverage_rates(c)));
	return ok ? 0 : 1;
}

int batch_coverage_cli(int argc, char **argv)
{
	static struct coverage c; /* large (the scenario); one per process */
	int code;

	memset(&c, 0, sizeof(c));
	c.nruns = 25;
	c.max_ratio = 3;
	code = coverage_parse(&c, argc, argv);
	if (code >= 0)
		return code;
	if (batch_load(&c.b, NULL, 0) < 0) {
		batch_release(&c.b);
		return 2;
	}
	if (batch_prepare(&c.b, "coverage") < 0 || !(c.cr = calloc(c.nruns, sizeof(*c.cr)))) {
		batch_release(&c.b);
		return 4;
	}
	cli_catch_signals(false, NULL);
	code = coverage_collect(&c);
	if (code == 0)
		code = cli_signals || c.done < 2 ? 130 : coverage_report(&c);
	free(c.cr);
	batch_release(&c.b);
	return code;
}
