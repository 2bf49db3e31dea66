/* check_run.c — `dupsim run` end to end against the private broker: the numbers DESIGN.md defines. */
#include <amqp.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd/crashes.h"
#include "cmd/storehost.h"
#include "core/scenario.h"
#include "nodes/node.h"
#include "nodes/rabbitmq.h"
#include "workload/mq.h"
#include "tests.h"
#include "hosts/hosts.h"
#include "nodes/cluster.h"
#include "core/clock.h"
#include "core/files.h"
#include "core/net.h"

struct result {
	int status;
	char out[16384];
	char dir[128];
	json_t *summary;
};

static void interrupt_after(pid_t pid, void *arg)
{
	clock_sleep_ns((uint64_t)*(int *)arg * NS_PER_MS);
	kill(pid, SIGINT);
}

/*
 * Runs `dupsim run scenarios/default.ini --quiet --out DIR --set broker.url=... SETS...`;
 * interrupt_after_ms > 0 sends SIGINT then. Loads DIR/summary.json when there.
 */
static void run_dupsim_file(struct result *r, const char *file, const char *queue, const char *const *sets,
			    void (*during)(pid_t pid, void *arg), void *arg)
{
	char url[300], qset[128], path[256];
	const char *args[64];
	size_t n = 0;

	memset(r, 0, sizeof(*r));
	snprintf(r->dir, sizeof(r->dir), "/tmp/dupsim-run-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(r->dir));
	rmdir(r->dir); /* dupsim creates it */
	snprintf(url, sizeof(url), "broker.url=%s", test_broker_url());
	snprintf(qset, sizeof(qset), "broker.queue=%s", queue);
	args[n++] = "run";
	args[n++] = file;
	args[n++] = "--quiet";
	args[n++] = "--out";
	args[n++] = r->dir;
	args[n++] = "--set";
	args[n++] = url;
	args[n++] = "--set";
	args[n++] = qset;
	for (size_t i = 0; sets && sets[i] && n < 60; i++) {
		args[n++] = "--set";
		args[n++] = sets[i];
	}
	args[n] = NULL;
	r->status = test_dupsim(args, r->out, sizeof(r->out), during, arg);
	snprintf(path, sizeof(path), "%s/summary.json", r->dir);
	r->summary = json_load_file(path, 0, NULL);
}

static void run_dupsim(struct result *r, const char *queue, const char *const *sets, int interrupt_after_ms)
{
	run_dupsim_file(r, "scenarios/default.ini", queue, sets, interrupt_after_ms > 0 ? interrupt_after : NULL,
			&interrupt_after_ms);
}

static void result_release(struct result *r)
{
	json_decref(r->summary);
	files_rm_rf(r->dir);
}

static double num(const struct result *r, const char *key)
{
	json_t *v;
	char buf[128];
	char *save, *part;

	ck_assert_msg(r->summary != NULL, "no summary.json; exit %d, output:\n%s", r->status, r->out);
	snprintf(buf, sizeof(buf), "%s", key);
	v = r->summary;
	for (part = strtok_r(buf, ".", &save); part; part = strtok_r(NULL, ".", &save))
		v = json_is_array(v) ? json_array_get(v, (size_t)atoi(part)) : json_object_get(v, part);
	ck_assert_msg(v && json_is_number(v), "summary.json has no number %s", key);
	return json_number_value(v);
}

static void assert_ok(const struct result *r)
{
	ck_assert_msg(r->status == 0, "exit %d, output:\n%s", r->status, r->out);
	ck_assert_msg(num(r, "invariants.violations") == 0, "%s", r->out);
	/* every miss has a cause: `unexplained` would be a harness bug */
	ck_assert_msg(num(r, "misses_by_cause.unexplained") == 0, "unexplained misses:\n%s", r->out);
}

/* The run's file name (faults.csv, periods.csv…) as a string; the caller frees it. */
static char *run_file(const struct result *r, const char *name)
{
	char path[512], *text;

	snprintf(path, sizeof(path), "%s/%s", r->dir, name);
	text = files_read(path, NULL);
	ck_assert_msg(text != NULL, "no %s in %s", name, r->dir);
	return text;
}

START_TEST(test_no_faults)
{
	const char *sets[] = { "run.messages=2000", "faults.commit_ok_loss=0", "faults.ack_loss=0", NULL };
	static const char *const files[] = { "scenario.ini", "summary.json", "timeseries.csv", "gaps.csv",
					     "copies.csv", "faults.csv" };
	struct result r;

	run_dupsim(&r, "t-nofaults", sets, 0);
	assert_ok(&r);
	ck_assert_double_eq(num(&r, "committed"), 2000);
	ck_assert_double_eq(num(&r, "publish_attempts"), 2000);
	ck_assert_double_eq(num(&r, "deliveries"), 2000);
	ck_assert_double_eq(num(&r, "duplicate_deliveries"), 0);
	ck_assert_double_eq(num(&r, "excess_copies"), 0);
	ck_assert_double_eq(num(&r, "lost"), 0);
	ck_assert_double_eq(num(&r, "faults.frames_dropped"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(r.summary, "status")), "ok");
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char p[256];
		struct stat st;

		snprintf(p, sizeof(p), "%s/%s", r.dir, files[i]);
		ck_assert_msg(stat(p, &st) == 0 && st.st_size > 0, "missing %s", p);
	}
	result_release(&r);
}
END_TEST

/* Excess copies from CommitOk loss: exactly batch per lost CommitOk, and p/(1-p) per message within 3.3 sd. */
START_TEST(test_commit_ok_loss_model)
{
	const char *sets[] = { "run.messages=4000", "publishers.batch=5", "faults.commit_ok_loss=5%",
			       "faults.ack_loss=0", "dedup.mark=before", NULL };
	struct result r;
	double p = 0.05, b = 5, batches = 4000 / 5;
	double mean = 4000 * p / (1 - p), sd = b * sqrt(batches * p) / (1 - p);
	double excess;

	run_dupsim(&r, "t-commitok", sets, 0);
	assert_ok(&r);
	excess = num(&r, "excess_copies");
	ck_assert_double_eq(num(&r, "committed"), 4000);
	ck_assert_double_eq(excess, b * num(&r, "faults.commit_ok_dropped"));
	ck_assert_double_eq(num(&r, "publish_attempts"), 4000 + excess);
	ck_assert_msg(fabs(excess - mean) < 3.3 * sd, "excess %.0f, predicted %.1f +- %.1f", excess, mean, sd);
	ck_assert(fabs(num(&r, "predicted.excess_copies_per_message") - p / (1 - p)) < 1e-9);
	/* every copy was delivered, and the shared store caught each */
	ck_assert_double_eq(num(&r, "duplicate_deliveries"), excess);
	ck_assert_double_eq(num(&r, "duplicates_processed"), 0);
	ck_assert_double_eq(num(&r, "lost"), 0);
	result_release(&r);
}
END_TEST

START_TEST(test_store_none_misses_all)
{
	const char *sets[] = { "run.messages=2000", "faults.commit_ok_loss=3%", "faults.ack_loss=1%", "dedup.store=none",
			       NULL };
	struct result r;

	run_dupsim(&r, "t-none", sets, 0);
	assert_ok(&r);
	ck_assert_double_gt(num(&r, "duplicate_deliveries"), 0);
	ck_assert_double_eq(num(&r, "duplicates_processed"), num(&r, "duplicate_deliveries"));
	ck_assert_double_eq(num(&r, "miss_probability.estimate"), 1);
	ck_assert_double_eq(num(&r, "misses_by_cause.unchecked"), num(&r, "duplicates_processed"));
	ck_assert_double_eq(num(&r, "dedup.lookups"), 0);
	result_release(&r);
}
END_TEST

START_TEST(test_memory_catches_all)
{
	const char *sets[] = { "run.messages=3000", "faults.commit_ok_loss=3%", "faults.ack_loss=1%",
			       "dedup.store=memory", "dedup.mark=before", NULL };
	struct result r;

	run_dupsim(&r, "t-memory", sets, 0);
	assert_ok(&r);
	ck_assert_double_gt(num(&r, "duplicate_deliveries"), 0);
	ck_assert_double_eq(num(&r, "duplicates_processed"), 0);
	ck_assert_double_eq(num(&r, "lost"), 0);
	ck_assert_double_eq(num(&r, "wrongly_suppressed"), 0);
	ck_assert_double_eq(num(&r, "miss_probability.estimate"), 0);
	ck_assert_double_gt(num(&r, "miss_probability.ci_high"), 0); /* zero misses still have an upper bound */
	ck_assert_double_eq(num(&r, "dedup.lookups"), num(&r, "deliveries"));
	result_release(&r);
}
END_TEST

/* Publish only: the queue holds every committed message plus its excess copies. */
START_TEST(test_publish_only_queue)
{
	const char *sets[] = { "run.messages=1000", "consumers.count=0", "broker.keep_queue=true",
			       "faults.commit_ok_loss=5%", "faults.ack_loss=0", NULL };
	struct result r;
	amqp_connection_state_t c;
	char err[256];
	unsigned char *seen = calloc(1000, 1);
	double in_queue = 0, distinct = 0, extra = 0;

	run_dupsim(&r, "t-publish-only", sets, 0);
	assert_ok(&r);
	c = mq_open_local(test_broker_port(), 5000, err, sizeof(err));
	ck_assert_msg(c != NULL, "%s", err);
	for (;;) {
		amqp_rpc_reply_t g = amqp_basic_get(c, 1, amqp_cstring_bytes("t-publish-only"), 1);
		amqp_message_t m;
		unsigned idx;
		char id[64];

		ck_assert(mq_ok(g));
		if (g.reply.id != AMQP_BASIC_GET_OK_METHOD)
			break;
		ck_assert(mq_ok(amqp_read_message(c, 1, &m, 0)));
		snprintf(id, sizeof(id), "%.*s", (int)m.properties.message_id.len,
			 (const char *)m.properties.message_id.bytes);
		ck_assert_int_eq(sscanf(id, "%u", &idx), 1);
		ck_assert_uint_lt(idx, 1000);
		if (seen[idx]++)
			extra++;
		else
			distinct++;
		in_queue++;
		amqp_destroy_message(&m);
	}
	amqp_queue_delete(c, 1, amqp_cstring_bytes("t-publish-only"), 0, 0);
	mq_close(c);
	free(seen);
	ck_assert_double_eq(distinct, num(&r, "committed"));
	ck_assert_double_eq(in_queue, num(&r, "publish_attempts"));
	ck_assert_double_eq(extra, num(&r, "publish_attempts") - num(&r, "committed"));
	ck_assert_double_gt(extra, 0);
	/* excess copies, counted in the queue with nobody consuming (it used to be 0 here), and the queue
	 * was left as it was (keep_queue): every swallowed CommitOk's batch of 10 is in it twice */
	ck_assert_double_eq(num(&r, "excess_copies"), extra);
	ck_assert_double_eq(num(&r, "excess_copies"), 10 * num(&r, "faults.commit_ok_dropped"));
	ck_assert_str_eq(json_string_value(json_object_get(r.summary, "excess_copies_from")), "queue");
	result_release(&r);
}
END_TEST

START_TEST(test_confirm_mode)
{
	const char *sets[] = { "run.messages=3000", "publishers.mode=confirm", "faults.commit_ok_loss=0",
			       "faults.confirm_loss=2%", "faults.ack_loss=0", "dedup.mark=before", NULL };
	struct result r;

	run_dupsim(&r, "t-confirm", sets, 0);
	assert_ok(&r);
	ck_assert_double_eq(num(&r, "committed"), 3000);
	ck_assert_double_eq(num(&r, "lost"), 0);
	ck_assert_double_gt(num(&r, "faults.confirms_dropped"), 0);
	ck_assert_double_gt(num(&r, "excess_copies"), 0);
	ck_assert_double_eq(num(&r, "duplicates_processed"), 0);
	result_release(&r);
}
END_TEST

START_TEST(test_interrupt_keeps_results)
{
	const char *sets[] = { "run.messages=100000", "publishers.rate=300", NULL };
	struct result r;

	run_dupsim(&r, "t-interrupt", sets, 2500);
	ck_assert_msg(r.status == 130, "exit %d: %s", r.status, r.out);
	ck_assert_str_eq(json_string_value(json_object_get(r.summary, "status")), "interrupted");
	ck_assert_double_gt(num(&r, "published"), 0);
	ck_assert_double_lt(num(&r, "published"), 100000);
	result_release(&r);
}
END_TEST

START_TEST(test_unreachable_broker)
{
	uint16_t port;
	char set[128];
	const char *sets[] = { set, NULL };
	struct result r;
	struct stat st;

	/* broker.url comes later on the command line than the runner's and wins */
	ck_assert_int_eq(net_free_port(&port), 0);
	snprintf(set, sizeof(set), "broker.url=amqp://guest:guest@127.0.0.1:%u/", port);
	run_dupsim(&r, "t-unreachable", sets, 0);
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(strstr(r.out, "cannot connect to 127.0.0.1") != NULL, "%s", r.out);
	ck_assert_msg(strchr(r.out, '\n') == r.out + strlen(r.out) - 1, "more than one line: %s", r.out);
	ck_assert_ptr_null(r.summary);
	ck_assert_int_ne(stat(r.dir, &st), 0); /* no empty results folder left */
	result_release(&r);
}
END_TEST

START_TEST(test_bad_scenario_runs_nothing)
{
	const char *sets[] = { "faults.comit_ok_loss=1%", NULL };
	struct result r;

	run_dupsim(&r, "t-bad", sets, 0);
	ck_assert_int_eq(r.status, 2);
	ck_assert_msg(strstr(r.out, "did you mean 'commit_ok_loss'") != NULL, "%s", r.out);
	ck_assert_ptr_null(r.summary);
	result_release(&r);
}
END_TEST

/* ---- dedup strategies (the comparisons of scenarios/) ---- */

START_TEST(test_local_scope_other_cache_vs_shared_redis)
{
	const char *local[] = { "run.messages=6000", "faults.commit_ok_loss=0", "faults.ack_loss=2%",
				"consumers.count=4", "dedup.scope=local", "dedup.mark=before", NULL };
	const char *redis[] = { "run.messages=6000", "faults.commit_ok_loss=0", "faults.ack_loss=2%",
				"consumers.count=4", "dedup.store=redis", "dedup.mark=before", NULL };
	struct result r;

	run_dupsim(&r, "t-local", local, 0);
	assert_ok(&r);
	ck_assert_double_gt(num(&r, "duplicates_processed"), 0);
	ck_assert_double_eq(num(&r, "misses_by_cause.other_cache"), num(&r, "duplicates_processed"));
	result_release(&r);
	run_dupsim(&r, "t-redis", redis, 0);
	assert_ok(&r);
	ck_assert_double_gt(num(&r, "duplicate_deliveries"), 0);
	ck_assert_double_eq(num(&r, "duplicates_processed"), 0);
	ck_assert_double_eq(num(&r, "dedup.errors"), 0);
	result_release(&r);
}
END_TEST

START_TEST(test_ttl_shorter_than_gaps_expires)
{
	const char *shortttl[] = { "run.messages=6000", "faults.commit_ok_loss=2%", "faults.ack_loss=1%",
				   "dedup.mark=before", "dedup.ttl=1ms", NULL };
	const char *longttl[] = { "run.messages=6000", "faults.commit_ok_loss=2%", "faults.ack_loss=1%",
				  "dedup.mark=before", "dedup.ttl=10m", NULL };
	struct result r;

	run_dupsim(&r, "t-ttl-short", shortttl, 0);
	assert_ok(&r);
	ck_assert_double_gt(num(&r, "gap_ms.p50"), 1); /* the gaps are longer than the ttl... */
	ck_assert_double_gt(num(&r, "misses_by_cause.expired"), 0); /* ...so keys expire */
	ck_assert_double_eq(num(&r, "misses_by_cause.expired"), num(&r, "duplicates_processed"));
	result_release(&r);
	run_dupsim(&r, "t-ttl-long", longttl, 0);
	assert_ok(&r);
	ck_assert_double_gt(num(&r, "duplicate_deliveries"), 0);
	ck_assert_double_eq(num(&r, "duplicates_processed"), 0);
	result_release(&r);
}
END_TEST

START_TEST(test_crash_mark_before_loses_after_duplicates)
{
	const char *before[] = { "run.messages=5000", "faults.commit_ok_loss=0", "faults.ack_loss=0",
				 "faults.consumer_crash=1%", "faults.consumer_crash_at=after-mark", "dedup.mark=before",
				 NULL };
	const char *after[] = { "run.messages=5000", "faults.commit_ok_loss=0", "faults.ack_loss=0",
				"faults.consumer_crash=1%", "faults.consumer_crash_at=after-process", "dedup.mark=after",
				NULL };
	struct result r;

	run_dupsim(&r, "t-crash-before", before, 0);
	assert_ok(&r);
	ck_assert_double_gt(num(&r, "faults.consumer_crashes"), 0);
	ck_assert_double_gt(num(&r, "lost"), 0);
	ck_assert_double_ge(num(&r, "wrongly_suppressed"), num(&r, "lost"));
	ck_assert_double_eq(num(&r, "duplicates_processed"), 0);
	result_release(&r);
	run_dupsim(&r, "t-crash-after", after, 0);
	assert_ok(&r);
	ck_assert_double_gt(num(&r, "faults.consumer_crashes"), 0);
	ck_assert_double_eq(num(&r, "lost"), 0);
	ck_assert_double_eq(num(&r, "wrongly_suppressed"), 0);
	ck_assert_double_gt(num(&r, "duplicates_processed"), 0);
	ck_assert_double_eq(num(&r, "misses_by_cause.not_inserted"), num(&r, "duplicates_processed"));
	result_release(&r);
}
END_TEST

/*
 * Every crash point happens where its name says, for both marks (a shared
 * memory store, which outlives the consumer): what was done before the crash
 * decides what the redelivery finds.
 */
static const struct crash_case {
	const char *mark, *at;
	bool lost, misses; /* lost > 0, duplicates processed > 0 */
} crash_cases[] = {
	{ "before", "before-mark", false, false },  /* no key, no effect: the redelivery does it once */
	{ "before", "after-mark", true, false },    /* key, no effect: the redelivery is rejected, lost */
	{ "before", "after-process", false, false }, /* key and effect: a duplicate, caught */
	{ "after", "before-mark", false, true },     /* effect, no key: done twice */
	{ "after", "after-mark", false, false },     /* effect and key: caught */
	{ "after", "after-process", false, true },   /* the same step as before-mark */
};

START_TEST(test_crash_points)
{
	const struct crash_case *c = &crash_cases[_i];
	char mark[32], at[64];
	const char *sets[] = { "run.messages=4000", "faults.commit_ok_loss=0", "faults.ack_loss=0",
			       "faults.consumer_crash=1%", at, mark, NULL };
	struct result r;

	snprintf(mark, sizeof(mark), "dedup.mark=%s", c->mark);
	snprintf(at, sizeof(at), "faults.consumer_crash_at=%s", c->at);
	run_dupsim(&r, "t-crash-points", sets, 0);
	assert_ok(&r);
	ck_assert_double_gt(num(&r, "faults.consumer_crashes"), 0);
	ck_assert_msg((num(&r, "lost") > 0) == c->lost, "mark=%s at=%s: lost %g", c->mark, c->at, num(&r, "lost"));
	ck_assert_msg((num(&r, "duplicates_processed") > 0) == c->misses, "mark=%s at=%s: duplicates processed %g",
		      c->mark, c->at, num(&r, "duplicates_processed"));
	if (!c->lost)
		ck_assert_double_eq(num(&r, "wrongly_suppressed"), 0);
	ck_assert_double_eq(num(&r, "misses_by_cause.unexplained"), 0);
	result_release(&r);
}
END_TEST

/*
 * The seed's race: 4 consumers sharing a redis, 2 % ack loss. A cut consumer
 * still handles its buffer while the broker redelivers to another; such a
 * miss used to come out `unexplained`. Every miss has a cause here.
 */
START_TEST(test_shared_redis_ack_loss_causes)
{
	const char *sets[] = { "run.messages=20000", "consumers.count=4", "faults.commit_ok_loss=0",
			       "faults.ack_loss=2%", "dedup.store=redis", NULL };
	struct result r;
	double explained = 0;

	run_dupsim(&r, "t-redis-race", sets, 0);
	assert_ok(&r); /* includes unexplained == 0 */
	for (const char *const *c = (const char *const[]){ "race", "not_inserted", NULL }; *c; c++) {
		char key[64];

		snprintf(key, sizeof(key), "misses_by_cause.%s", *c);
		explained += num(&r, key);
	}
	ck_assert_double_eq(explained, num(&r, "duplicates_processed"));
	result_release(&r);
}
END_TEST

START_TEST(test_republish_count_misses_attributed)
{
	const char *sets[] = { "run.messages=8000", "consumers.count=4", "faults.commit_ok_loss=3%",
			       "faults.ack_loss=0.5%", "dedup.store=redis", "dedup.check=republish-count", NULL };
	struct result r;
	double attributed;

	run_dupsim(&r, "t-republish-count", sets, 0);
	assert_ok(&r);
	ck_assert_double_gt(num(&r, "duplicate_deliveries"), 0);
	attributed = num(&r, "misses_by_cause.not_inserted") + num(&r, "misses_by_cause.unchecked") +
		     num(&r, "misses_by_cause.race");
	ck_assert_double_eq(attributed, num(&r, "duplicates_processed"));
	ck_assert_double_eq(num(&r, "misses_by_cause.unexplained"), 0);
	ck_assert_double_eq(num(&r, "lost"), 0);
	/* cheaper: fewer lookups than deliveries */
	ck_assert_double_lt(num(&r, "dedup.lookups"), num(&r, "deliveries"));
	result_release(&r);
}
END_TEST

START_TEST(test_tokyocabinet_survives_crash)
{
	const char *tc[] = { "run.messages=4000", "publishers.count=1", "consumers.count=1",
			     "faults.commit_ok_loss=0", "faults.ack_loss=0", "faults.consumer_crash=2%",
			     "faults.consumer_crash_at=after-mark", "dedup.store=tokyocabinet", "dedup.scope=local", NULL };
	const char *mem[] = { "run.messages=4000", "publishers.count=1", "consumers.count=1",
			      "faults.commit_ok_loss=0", "faults.ack_loss=0", "faults.consumer_crash=2%",
			      "faults.consumer_crash_at=after-mark", "dedup.store=memory", "dedup.scope=local", NULL };
	struct result r;

	run_dupsim(&r, "t-tc", tc, 0);
	assert_ok(&r);
	ck_assert_double_gt(num(&r, "faults.consumer_crashes"), 0);
	ck_assert_double_gt(num(&r, "duplicate_deliveries"), 0);
	ck_assert_double_eq(num(&r, "duplicates_processed"), 0);
	ck_assert_double_eq(num(&r, "lost"), 0);
	result_release(&r);
	run_dupsim(&r, "t-tc-mem", mem, 0);
	assert_ok(&r);
	ck_assert_double_gt(num(&r, "misses_by_cause.lost_in_crash"), 0);
	ck_assert_double_eq(num(&r, "lost"), 0);
	result_release(&r);
}
END_TEST

/*
 * Every duplicate delivery is charged to one fault event: events.csv adds up
 * to the summary, each event that caused duplicates is a lost ack or a lost
 * CommitOk (the only rules), and the headline interval counts those events.
 */
START_TEST(test_fault_events_add_up)
{
	/* a long publisher timeout: on a loaded machine (ASan) a commit could take the default 2 s, and
	 * the publisher's own timeout would then make an event of another kind */
	const char *sets[] = { "run.messages=6000", "faults.commit_ok_loss=2%", "faults.ack_loss=1%",
			       "dedup.scope=local", "publishers.timeout=30s", NULL };
	struct result r;
	char path[256], line[512];
	double dups = 0, misses = 0, rows = 0, acks = 0, commits = 0;
	char other[2048] = ""; /* the rows of any other kind, for the message */
	FILE *f;

	run_dupsim(&r, "t-events", sets, 0);
	assert_ok(&r);
	snprintf(path, sizeof(path), "%s/events.csv", r.dir);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
	ck_assert_str_eq(line, "t_s,kind,rule,connection,duplicates,misses\n");
	while (fgets(line, sizeof(line), f)) {
		char *last = strrchr(line, ','), *prev;
		double d, m;

		ck_assert_ptr_nonnull(last);
		*last = '\0';
		prev = strrchr(line, ',');
		d = strtod(prev + 1, NULL);
		m = strtod(last + 1, NULL);
		ck_assert_double_le(m, d);
		dups += d;
		misses += m;
		if (d > 0) {
			bool ack = strstr(line, ",lost_ack,\"drop basic.ack from=client") != NULL;
			bool commit = strstr(line, ",lost_commit_ok,\"drop tx.commit-ok from=broker") != NULL;

			rows++;
			acks += ack;
			commits += commit;
			if (!ack && !commit && strlen(other) + strlen(line) + 2 < sizeof(other))
				strcat(strcat(other, line), "\n");
		}
	}
	fclose(f);
	ck_assert_double_eq(dups, num(&r, "duplicate_deliveries"));
	ck_assert_double_eq(misses, num(&r, "duplicates_processed"));
	ck_assert_double_eq(rows, num(&r, "fault_events"));
	ck_assert_msg(acks + commits == rows, "%.0f events, %.0f lost acks, %.0f lost CommitOks; the others:\n%s\n%s", rows,
		      acks, commits, other, r.out);
	ck_assert_double_ge(acks, 20);
	ck_assert_double_ge(commits, 1);
	ck_assert_double_eq(num(&r, "fault_events_by_kind.lost_ack"), acks);
	ck_assert_double_eq(num(&r, "miss_probability.events"), rows);
	/* local scope misses; the interval over events is wider than the one over duplicates */
	ck_assert_double_gt(num(&r, "duplicates_processed"), 0);
	ck_assert_double_gt(num(&r, "miss_probability.ci_high") - num(&r, "miss_probability.ci_low"),
			    num(&r, "miss_probability.independent_trials.ci_high") -
				    num(&r, "miss_probability.independent_trials.ci_low"));
	ck_assert_double_gt(num(&r, "miss_probability.design_effect"), 1);
	ck_assert_double_lt(num(&r, "duplicate_rate_band.low"), num(&r, "duplicate_rate"));
	ck_assert_double_gt(num(&r, "duplicate_rate_band.high"), num(&r, "duplicate_rate"));
	result_release(&r);
}
END_TEST

/* Too few fault events for an honest interval: an estimate, null bounds, and the reason. */
START_TEST(test_few_events_no_interval)
{
	const char *sets[] = { "run.messages=2000", "faults.commit_ok_loss=0", "faults.ack_loss=0.2%",
			       "dedup.store=none", NULL };
	struct result r;
	json_t *mp;

	run_dupsim(&r, "t-few-events", sets, 0);
	assert_ok(&r);
	ck_assert_double_lt(num(&r, "fault_events"), 20);
	ck_assert_double_gt(num(&r, "duplicate_deliveries"), 0);
	mp = json_object_get(r.summary, "miss_probability");
	ck_assert(json_is_null(json_object_get(mp, "ci_low")));
	ck_assert(json_is_null(json_object_get(mp, "ci_high")));
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(mp, "reason")), "fewer than 20 fault events"));
	ck_assert(json_is_null(json_object_get(r.summary, "duplicate_rate_band")));
	ck_assert_msg(strstr(r.out, "no interval: fewer than 20 fault events") != NULL, "%s", r.out);
	result_release(&r);
}
END_TEST

/*
 * Every shipped scenario the model covers: its prediction against the
 * measured duplicate rate. From the loss rates, the distance is judged by the
 * model's own spread for one run (predicted.duplicate_rate_band): a band from
 * the event sizes a run drew is too narrow when the skewed sizes of its lost
 * acks came out small, and those runs are also the ones whose rate is low
 * (republish-count-race failed CI that way: 2.44 % against 3.80 %, band sd
 * 0.30 %, the model's 0.47 %). With eight scenarios a correct model would
 * leave its 95 % band in a third of the runs, so this allows 3.5 sds.
 * Given the faults applied (each lost ack at the deliveries it had ahead)
 * only the mechanism is left: inside the measured band.
 */
static const char *const predicted_scenarios[] = {
	"ack-loss", "commit-ok-loss", "competing-consumers", "confirm-loss", "republish-count-race",
	"shared-redis", "ttl-too-short", "default",
};

START_TEST(test_shipped_scenarios_predicted)
{
	const char *name = predicted_scenarios[_i];
	char file[128], url[300], queue[128], out[16384], dir[64];
	const char *args[] = { "run", file, "--quiet", "--out", dir, "--set", url, "--set", queue, "--set",
			       strcmp(name, "default") == 0 ? "run.messages=50000" : "run.name=shipped", NULL };
	struct result r = { 0 };
	double rate, pred, given, lo, hi, sd, psd;

	snprintf(file, sizeof(file), "scenarios/%s.ini", name);
	snprintf(url, sizeof(url), "broker.url=%s", test_broker_url());
	snprintf(queue, sizeof(queue), "broker.queue=t-shipped-%s", name);
	snprintf(dir, sizeof(dir), "/tmp/dupsim-shipped-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	rmdir(dir);
	r.status = test_dupsim(args, out, sizeof(out), NULL, NULL);
	snprintf(r.dir, sizeof(r.dir), "%s", dir);
	snprintf(out, sizeof(out), "%s/summary.json", dir);
	r.summary = json_load_file(out, 0, NULL);
	assert_ok(&r);
	rate = num(&r, "duplicate_rate");
	pred = num(&r, "predicted.duplicate_rate");
	given = num(&r, "predicted.duplicate_rate_given_faults");
	if (json_is_null(json_object_get(r.summary, "duplicate_rate_band"))) {
		/* fewer than 20 fault events (ttl-too-short has about 20): the Poisson sd of equal-sized bursts */
		ck_assert_double_gt(num(&r, "fault_events"), 0);
		sd = rate / sqrt(num(&r, "fault_events"));
		lo = rate - 1.959964 * sd;
		hi = rate + 1.959964 * sd;
	} else {
		lo = num(&r, "duplicate_rate_band.low");
		hi = num(&r, "duplicate_rate_band.high");
		sd = (hi - lo) / (2 * 1.959964);
	}
	psd = num(&r, "predicted.duplicate_rate_band.sd");
	fprintf(stderr,
		"shipped %s: measured %.4g%% [%.4g%%, %.4g%%], predicted %.4g%% sd %.3g%% (%.2f sds off), given the "
		"faults %.4g%%%s\n",
		name, rate * 100, lo * 100, hi * 100, pred * 100, psd * 100, fabs(pred - rate) / psd, given * 100,
		given >= lo && given <= hi ? " (inside)" : " (outside)");
	/* from the loss rates: the seed's luck in the number and size of faults is part of the distance */
	ck_assert_msg(isfinite(psd) && psd > 0, "%s: no spread from the model", name);
	ck_assert_msg(fabs(pred - rate) <= 3.5 * psd, "%s: measured %g (band %g - %g), predicted %g, sd %g", name, rate,
		      lo, hi, pred, psd);
	/* given the faults applied, only the mechanism is left: inside the band */
	ck_assert_msg(given >= lo && given <= hi, "%s: measured %g (band %g - %g), predicted given the faults %g", name,
		      rate, lo, hi, given);
	result_release(&r);
}
END_TEST

/* ---- real crashes, quorum queues, hostile set-ups ---- */

START_TEST(test_broker_crash_loses_nothing)
{
	const char *sets[] = { "run.messages=40000", "publishers.rate=1500", "faults.broker_crash_every=6s",
			       "faults.broker_down=1s", "faults.commit_ok_loss=0", "faults.ack_loss=0",
			       "dedup.mark=before", "broker.url=embedded", NULL };
	struct result r;

	/* broker.url=embedded comes after the runner's URL: the run starts (and kills) a node of its own */
	run_dupsim(&r, "t-broker-crash", sets, 0);
	assert_ok(&r);
	ck_assert_double_ge(num(&r, "faults.broker_crashes"), 1);
	ck_assert_double_eq(num(&r, "committed"), 40000);
	ck_assert_double_eq(num(&r, "lost"), 0);
	ck_assert_double_eq(num(&r, "duplicates_processed"), 0);
	/* the duplicates a crash makes come back after the broker was down for a second */
	if (num(&r, "duplicate_deliveries") > 0) {
		ck_assert_double_gt(num(&r, "gap_ms.max"), 1000);
		/* with no rule, every duplicate is charged to a crash: all sessions it ended are one event */
		ck_assert_double_ge(num(&r, "fault_events_by_kind.broker_crash"), 1);
		ck_assert_double_le(num(&r, "fault_events_by_kind.broker_crash"), num(&r, "faults.broker_crashes"));
		ck_assert_double_eq(num(&r, "fault_events_by_kind.unattributed"), 0);
	}
	{
		/* each time down is a window of periods.csv, about broker_down (1 s) plus the restart */
		char *periods = run_file(&r, "periods.csv"), *row = strstr(periods, "\"broker down (kill -9)\"");
		double from = -1, until = -1;

		ck_assert_msg(row, "%s", periods);
		while (row > periods && row[-1] != '\n')
			row--;
		ck_assert_int_eq(sscanf(row, "%lf,%lf", &from, &until), 2);
		ck_assert_msg(from >= 5 && until - from >= 1 && until - from < 30, "down %g..%g s", from, until);
		free(periods);
	}
	result_release(&r);
}
END_TEST

static void kill_broker_after_2s(pid_t pid, void *arg)
{
	(void)pid;
	clock_sleep_ns(2 * NS_PER_S);
	node_kill(arg);
}

/*
 * A broker that dies and never comes back: the publishers give up after
 * run.drain_timeout, the run ends (it used to retry forever) with the
 * reason in its status, and its results are written.
 */
START_TEST(test_broker_gone_publishers_give_up)
{
	struct node_opts o = { .quiet = true };
	struct node *b = NULL;
	char err[512], url[300], path[100];
	const char *args[] = { "run", "scenarios/default.ini", "--quiet", "--out", path, "--set", url, "--set",
			       "run.messages=20000", "--set", "publishers.rate=300", "--set", "run.drain_timeout=3s", NULL };
	struct result r = { 0 };
	uint64_t t0;

	ck_assert_msg(node_new(&b, &rabbitmq_ops, &o, err, sizeof(err)) == 0, "%s", err);
	snprintf(url, sizeof(url), "broker.url=%s", node_url(b));
	snprintf(path, sizeof(path), "/tmp/dupsim-gone-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(path));
	rmdir(path);
	t0 = clock_now_ns();
	r.status = test_dupsim(args, r.out, sizeof(r.out), kill_broker_after_2s, b);
	ck_assert_msg(clock_now_ns() - t0 < 40 * NS_PER_S, "took %.1f s", (double)(clock_now_ns() - t0) / 1e9);
	ck_assert_msg(r.status == 1, "exit %d:\n%s", r.status, r.out);
	ck_assert_msg(strstr(r.out, "gave up") != NULL, "%s", r.out);
	snprintf(r.dir, sizeof(r.dir), "%s", path);
	snprintf(err, sizeof(err), "%s/summary.json", path);
	r.summary = json_load_file(err, 0, NULL);
	ck_assert_ptr_nonnull(r.summary);
	ck_assert_str_eq(json_string_value(json_object_get(r.summary, "status")), "publisher_gave_up");
	ck_assert_double_lt(num(&r, "committed"), 20000);
	result_release(&r);
	node_free(b);
}
END_TEST

START_TEST(test_quorum_queue)
{
	const char *sets[] = { "run.messages=4000", "broker.queue_type=quorum", "faults.commit_ok_loss=2%",
			       "faults.ack_loss=1%", "dedup.mark=before", NULL };
	struct result r;

	run_dupsim(&r, "t-quorum", sets, 0);
	assert_ok(&r);
	ck_assert_double_eq(num(&r, "committed"), 4000);
	ck_assert_double_eq(num(&r, "lost"), 0);
	ck_assert_double_gt(num(&r, "duplicate_deliveries"), 0);
	ck_assert_double_eq(num(&r, "duplicates_processed"), 0);
	result_release(&r);
}
END_TEST

START_TEST(test_refused_login)
{
	char set[300];
	const char *sets[] = { set, NULL };
	struct result r;

	snprintf(set, sizeof(set), "broker.url=amqp://guest:wrong@127.0.0.1:%u/", test_broker_port());
	run_dupsim(&r, "t-login", sets, 0);
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(strstr(r.out, "login as 'guest'") != NULL, "%s", r.out);
	ck_assert_msg(strchr(r.out, '\n') == r.out + strlen(r.out) - 1, "more than one line: %s", r.out);
	ck_assert_ptr_null(r.summary);
	result_release(&r);
}
END_TEST

START_TEST(test_redis_down)
{
	uint16_t port;
	char set[128];
	const char *sets[] = { "dedup.store=redis", set, NULL };
	struct result r;

	ck_assert_int_eq(net_free_port(&port), 0);
	snprintf(set, sizeof(set), "dedup.url=redis://127.0.0.1:%u", port);
	run_dupsim(&r, "t-redis-down", sets, 0);
	ck_assert_int_eq(r.status, 1);
	ck_assert_msg(strstr(r.out, "redis") != NULL && strstr(r.out, "check dedup.url") != NULL, "%s", r.out);
	ck_assert_msg(strchr(r.out, '\n') == r.out + strlen(r.out) - 1, "more than one line: %s", r.out);
	result_release(&r);
}
END_TEST

/* A full disk, as a file size limit: one line, exit 1, the files that fit are kept. */
START_TEST(test_results_disk_full)
{
	char dir[] = "/tmp/dupsim-full-XXXXXX", url[300], out[PATH_MAX];
	pid_t pid;
	int st;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(out, sizeof(out), "%s/run", dir);
	snprintf(url, sizeof(url), "broker.url=%s", test_broker_url());
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct rlimit rl = { 1500, 1500 }; /* bytes per file: summary.json won't fit */
		int devnull = open("/dev/null", O_WRONLY);

		dup2(devnull, 1);
		dup2(devnull, 2);
		setrlimit(RLIMIT_FSIZE, &rl);
		execl(test_dupsim_bin(), "dupsim", "run", "scenarios/default.ini", "--quiet", "--out", out, "--set", url,
		      "--set", "run.messages=2000", "--set", "broker.queue=t-full", (char *)NULL);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 1);
	snprintf(out, sizeof(out), "%s/run/scenario.ini", dir);
	ck_assert_int_eq(access(out, F_OK), 0); /* what fits is kept */
	snprintf(out, sizeof(out), "%s/run/summary.json.tmp", dir);
	ck_assert_int_ne(access(out, F_OK), 0); /* no half-written temp file left */
	files_rm_rf(dir);
}
END_TEST

/* The node a run started in TMPDIR (tmp): its AMQP port, from its config; 0 while there is none. */
static uint16_t run_node_port(const char *tmp)
{
	char cmd[PATH_MAX + 96], line[128];
	unsigned port = 0;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "cat %s/dupsim-*/etc/rabbitmq.conf 2>/dev/null", tmp);
	f = popen(cmd, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "listeners.tcp.default = 127.0.0.1:%u", &port) == 1)
			break;
	pclose(f);
	return (uint16_t)port;
}

struct wipe {
	const char *tmp;
	bool done; /* the node's folder was removed while it was down */
};

/* Waits for the run's node, then for its first kill -9, and removes the
 * node's folder before the restart: every restart then fails at once. */
static void wipe_broker_when_down(pid_t pid, void *arg)
{
	struct wipe *w = arg;
	uint64_t deadline = clock_now_ns() + 60 * NS_PER_S;
	char cmd[PATH_MAX + 64];
	uint16_t port = 0;

	(void)pid;
	while (!port && clock_now_ns() < deadline) {
		port = run_node_port(w->tmp);
		clock_sleep_ns(50 * NS_PER_MS);
	}
	while (port && !net_port_open(port) && clock_now_ns() < deadline)
		clock_sleep_ns(20 * NS_PER_MS); /* not up yet */
	while (port && net_port_open(port) && clock_now_ns() < deadline)
		clock_sleep_ns(5 * NS_PER_MS); /* up: wait for the kill */
	if (!port)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf %s/dupsim-*", w->tmp);
	w->done = system(cmd) == 0;
}

/*
 * A killed broker whose restarts all fail (its port was taken while it was
 * down): the run tries a bounded number of times (it used to retry
 * forever), ends with the reason in its status, and writes its results.
 */
START_TEST(test_broker_restart_fails)
{
	char tmp[] = "/tmp/dupsim-rf-XXXXXX", path[100], file[160];
	const char *args[] = { "run", "scenarios/default.ini", "--quiet", "--out", path,
			       "--set", "run.messages=200000", "--set", "publishers.rate=500",
			       "--set", "faults.broker_crash_every=6s", "--set", "faults.broker_down=1s",
			       "--set", "run.drain_timeout=5m", NULL };
	struct wipe w = { .tmp = tmp };
	struct result r = { 0 };
	uint64_t t0;

	ck_assert_ptr_nonnull(mkdtemp(tmp));
	setenv("TMPDIR", tmp, 1); /* this test's own process: the run's node goes where the test can find it */
	snprintf(path, sizeof(path), "%s/out", tmp);
	t0 = clock_now_ns();
	r.status = test_dupsim(args, r.out, sizeof(r.out), wipe_broker_when_down, &w);
	ck_assert_msg(w.done, "could not remove the node's folder:\n%s", r.out);
	ck_assert_msg(clock_now_ns() - t0 < 60 * NS_PER_S, "took %.1f s", (double)(clock_now_ns() - t0) / 1e9);
	ck_assert_msg(r.status == 1, "exit %d:\n%s", r.status, r.out);
	ck_assert_msg(strstr(r.out, "restarting the broker failed") != NULL, "%s", r.out);
	snprintf(r.dir, sizeof(r.dir), "%s", path);
	snprintf(file, sizeof(file), "%s/summary.json", path);
	r.summary = json_load_file(file, 0, NULL);
	ck_assert_msg(r.summary != NULL, "no summary.json:\n%s", r.out);
	ck_assert_str_eq(json_string_value(json_object_get(r.summary, "status")), "broker_restart_failed");
	ck_assert_double_eq(num(&r, "faults.broker_crashes"), 1);
	result_release(&r);
	files_rm_rf(tmp);
}
END_TEST

/* ---- [app]: the user's own consumer ---- */

/* What the app's files in a run folder say, counted here without dupsim. */
struct own_count {
	uint64_t dups;	   /* from the tally files: Σ max(0, processed(m) - 1) */
	uint64_t skipped;  /* tally lines "skipped": duplicates the app's dedup caught */
	uint64_t distinct; /* messages processed at least once */
	uint64_t effect_dups; /* the same Σ from the effects files */
};

/* Counts "<id> processed|skipped" lines (tally-N.txt), or effects lines (effects-N.txt, kind NULL). */
static void own_count_file(const char *path, const char *kind, uint32_t *per_msg, size_t n, uint64_t *skipped)
{
	FILE *f = fopen(path, "r");
	char line[256], what[32];
	unsigned long id;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		int k = sscanf(line, "%lu %31s", &id, what);

		if (k < 1 || id >= n)
			continue;
		if (kind && k == 2 && strcmp(what, "skipped") == 0)
			(*skipped)++;
		else if (!kind || (k == 2 && strcmp(what, kind) == 0))
			per_msg[id]++;
	}
	fclose(f);
}

static void own_count(const struct result *r, unsigned instances, size_t messages, struct own_count *oc)
{
	uint32_t *tally = calloc(messages, sizeof(*tally)), *eff = calloc(messages, sizeof(*eff));
	char path[256];

	ck_assert(tally && eff);
	memset(oc, 0, sizeof(*oc));
	for (unsigned i = 0; i < instances; i++) {
		snprintf(path, sizeof(path), "%s/tally-%u.txt", r->dir, i);
		own_count_file(path, "processed", tally, messages, &oc->skipped);
		snprintf(path, sizeof(path), "%s/effects-%u.txt", r->dir, i);
		own_count_file(path, NULL, eff, messages, NULL);
	}
	for (size_t m = 0; m < messages; m++) {
		oc->dups += tally[m] > 1 ? tally[m] - 1 : 0;
		oc->distinct += tally[m] > 0;
		oc->effect_dups += eff[m] > 1 ? eff[m] - 1 : 0;
	}
	free(tally);
	free(eff);
}

static const char *const app_examples[] = { "scenarios/app-mark-after.ini", "scenarios/app-mark-before.ini" };

/*
 * The shipped examples (a) and (b) behind ack loss and kill -9s: dupsim's
 * figures against what each app counted itself, in its tally files that
 * dupsim never reads. A kill between the effect line and the tally line
 * makes them differ by one, so the tolerance is the number of kills.
 */
START_TEST(test_app_examples_match_own_count)
{
	const char *sets[] = { "run.messages=1200", "publishers.rate=300", "app.crash_every=700ms",
			       "faults.ack_loss=2%", NULL };
	bool after = _i == 0;
	struct own_count oc;
	struct result r;
	double kills, dups, lost, dd;

	run_dupsim_file(&r, app_examples[_i], after ? "t-app-after" : "t-app-before", sets, NULL, NULL);
	assert_ok(&r);
	kills = num(&r, "app.kills");
	dups = num(&r, "duplicates_processed");
	lost = num(&r, "lost");
	dd = num(&r, "duplicate_deliveries");
	own_count(&r, 2, 1200, &oc);
	printf("app %s: kills %.0f, lost acks %.0f; dupsim: duplicate deliveries %.0f, processed %.0f, lost %.0f, "
	       "miss %.4g; the app's own count: duplicates processed %" PRIu64 ", skipped %" PRIu64
	       ", lost %" PRIu64 "\n", after ? "mark-after" : "mark-before", kills, num(&r, "faults.acks_dropped"), dd,
	       dups, lost, num(&r, "miss_probability.estimate"), oc.dups, oc.skipped, 1200 - oc.distinct);
	ck_assert_msg(kills >= 1 && num(&r, "faults.acks_dropped") >= 1, "no faults:\n%s", r.out);
	ck_assert_double_eq(num(&r, "committed"), 1200);
	/* the ledger's judging of the effects files, against a plain count of the same files */
	ck_assert_double_eq(dups, (double)oc.effect_dups);
	ck_assert_msg(fabs(dups - (double)oc.dups) <= kills, "processed %.0f vs tally %" PRIu64, dups, oc.dups);
	ck_assert_msg(fabs(lost - (double)(1200 - oc.distinct)) <= kills, "lost %.0f vs tally %" PRIu64, lost,
		      1200 - oc.distinct);
	/* every "skipped" the app counted is a duplicate caught, or a wrong suppression (mark before a crash) */
	ck_assert_msg(fabs(dd + num(&r, "wrongly_suppressed") - (double)(oc.skipped + oc.dups)) <= kills,
		      "duplicates %.0f + wrongly suppressed %.0f vs tally %" PRIu64, dd, num(&r, "wrongly_suppressed"),
		      oc.skipped + oc.dups);
	ck_assert_double_eq(num(&r, "misses_by_cause.unknown_app"), dups);
	ck_assert_double_eq(num(&r, "fault_events_by_kind.unattributed"), 0); /* every duplicate has its event */
	if (after)
		ck_assert_double_eq(lost, 0); /* marking after never loses */
	else
		ck_assert_double_eq(dups, 0); /* marking before never processes twice */
	result_release(&r);
}
END_TEST

/* No dedup at all: every duplicate delivery is processed, and that is what the app's effects say. */
START_TEST(test_app_no_dedup_misses_all)
{
	const char *sets[] = { "run.messages=1000", "publishers.rate=300", "app.crash_every=0", NULL };
	struct own_count oc;
	struct result r;

	run_dupsim_file(&r, "scenarios/app-no-dedup.ini", "t-app-none", sets, NULL, NULL);
	assert_ok(&r);
	own_count(&r, 2, 1000, &oc);
	ck_assert_msg(num(&r, "duplicate_deliveries") > 0, "%s", r.out);
	ck_assert_double_eq(num(&r, "duplicates_processed"), num(&r, "duplicate_deliveries"));
	ck_assert_double_eq(num(&r, "duplicates_processed"), (double)oc.effect_dups);
	ck_assert_double_eq(num(&r, "miss_probability.estimate"), 1);
	ck_assert_double_eq(num(&r, "lost"), 0);
	ck_assert_double_eq(num(&r, "app.effects_unmatched"), 0);
	ck_assert_double_eq(num(&r, "app.connections_unmapped"), 0);
	result_release(&r);
}
END_TEST

/* An instance that exits on its own is restarted and counted, and the run goes on (app.h). */
START_TEST(test_app_exit_restarted)
{
	const char *sets[] = { "run.messages=1500", "publishers.rate=250", "app.crash_every=0", "app.instances=1",
			       "app.consumer=timeout 2.5 examples/pika_no_dedup.py", NULL };
	struct result r;

	run_dupsim_file(&r, "scenarios/app-no-dedup.ini", "t-app-exit", sets, NULL, NULL);
	assert_ok(&r);
	ck_assert_msg(num(&r, "app.exits") >= 1 && num(&r, "app.restarts") >= 1, "%s", r.out);
	ck_assert_double_eq(num(&r, "lost"), 0);
	result_release(&r);
}
END_TEST

/* One that keeps exiting at once fails the run: exit 1, its status and its log's last lines, the results kept. */
START_TEST(test_app_crash_loop_fails)
{
	const char *sets[] = { "run.messages=200", "app.consumer=echo no such module >&2; exit 3", NULL };
	struct result r;

	run_dupsim_file(&r, "scenarios/app-no-dedup.ini", "t-app-loop", sets, NULL, NULL);
	ck_assert_msg(r.status == 1, "exit %d:\n%s", r.status, r.out);
	ck_assert_msg(strstr(r.out, "exited with status 3") && strstr(r.out, ".log: no such module"), "%s", r.out);
	ck_assert_str_eq(json_string_value(json_object_get(r.summary, "status")), "app_failed");
	result_release(&r);
}
END_TEST

/* While the run goes: a rule through the control API, then a cut of everything (POST /cut). */
static void api_during_run(pid_t pid, void *arg)
{
	uint16_t port = *(uint16_t *)arg;
	char out[4096];
	int st = -1;

	(void)pid;
	for (int i = 0; i < 100 && st != 200; i++) { /* the API comes up with the proxy */
		clock_sleep_ns(100 * NS_PER_MS);
		st = test_http(port, "GET", "/rules", NULL, out, sizeof(out));
	}
	clock_sleep_ns(1000 * NS_PER_MS);
	test_http(port, "POST", "/rules", "{\"rule\": \"drop basic.ack from=client p=0.05\"}", out, sizeof(out));
	clock_sleep_ns(1500 * NS_PER_MS);
	test_http(port, "POST", "/cut", NULL, out, sizeof(out));
}

/* [proxy] api during a run, against the pika example: what the API adds and cuts are fault events of the run. */
START_TEST(test_app_api_faults)
{
	char api[64], path[256], csv[65536] = "";
	const char *sets[] = { "run.messages=2000", "publishers.rate=250", "app.crash_every=0", "faults.ack_loss=0",
			       api, NULL };
	struct result r;
	uint16_t port;
	json_t *rules;
	bool found = false;
	FILE *f;

	ck_assert_int_eq(net_free_port(&port), 0);
	snprintf(api, sizeof(api), "proxy.api=127.0.0.1:%u", port);
	run_dupsim_file(&r, "scenarios/app-no-dedup.ini", "t-app-api", sets, api_during_run, &port);
	assert_ok(&r);
	rules = json_object_get(json_object_get(r.summary, "faults"), "rules");
	for (size_t i = 0; i < json_array_size(rules); i++) {
		json_t *ru = json_array_get(rules, i);

		if (strcmp(json_string_value(json_object_get(ru, "rule")), "drop basic.ack from=client p=0.05") == 0)
			found = json_integer_value(json_object_get(ru, "fired")) > 0;
	}
	ck_assert_msg(found, "the API's rule is not in faults.rules, or never fired:\n%s", r.out);
	ck_assert_msg(num(&r, "fault_events_by_kind.lost_ack") >= 1, "%s", r.out);
	snprintf(path, sizeof(path), "%s/faults.csv", r.dir);
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	csv[fread(csv, 1, sizeof(csv) - 1, f)] = '\0';
	fclose(f);
	ck_assert_msg(strstr(csv, "POST /cut") && strstr(csv, "drop basic.ack from=client p=0.05"), "%s", csv);
	ck_assert_double_eq(num(&r, "duplicates_processed"), num(&r, "duplicate_deliveries"));
	ck_assert_double_eq(num(&r, "fault_events_by_kind.unattributed"), 0);
	result_release(&r);
}
END_TEST

/* While run A goes: run B on the same queue of the same broker, then stop A. */
static void second_run_same_queue(pid_t pid, void *arg)
{
	struct result *b = arg;
	char url[300];
	const char *args[] = { "run", "scenarios/default.ini", "--quiet", "--set", url, "--set", "broker.queue=t-lock",
			       "--set", "run.messages=100", "--out", b->dir, NULL };

	snprintf(url, sizeof(url), "broker.url=%s", test_broker_url());
	clock_sleep_ns(3 * NS_PER_S); /* A holds the lock once it has set its queue up */
	b->status = test_dupsim(args, b->out, sizeof(b->out), NULL, NULL);
	kill(pid, SIGINT);
}

/* Two runs on one queue would consume each other's messages: the second is refused, naming the queue. */
START_TEST(test_second_run_same_queue_refused)
{
	const char *sets[] = { "run.messages=200000", "publishers.rate=2000", NULL };
	struct result a, b;

	memset(&b, 0, sizeof(b));
	snprintf(b.dir, sizeof(b.dir), "/tmp/dupsim-run-b-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(b.dir));
	rmdir(b.dir);
	run_dupsim_file(&a, "scenarios/default.ini", "t-lock", sets, second_run_same_queue, &b);
	ck_assert_msg(b.status == 1 && strstr(b.out, "another dupsim run is using queue 't-lock'"), "exit %d:\n%s",
		      b.status, b.out);
	ck_assert_int_eq(a.status, 130); /* A went on until it was stopped, its results kept */
	ck_assert(a.summary != NULL);
	result_release(&a);
	files_rm_rf(b.dir);
}
END_TEST

/* The crash schedule waits for the warm-up: the first kill every_ns after the start, or at its end if later. */
START_TEST(test_crashes_wait_for_warmup)
{
	struct crashes c;
	const uint64_t t0 = 1000 * NS_PER_S;

	crashes_init(&c, NULL, NULL, 10 * NS_PER_S, 2 * NS_PER_S, t0, 0);
	ck_assert_uint_eq(c.next_crash_ns, t0 + 10 * NS_PER_S);
	crashes_init(&c, NULL, NULL, 10 * NS_PER_S, 2 * NS_PER_S, t0, 3 * NS_PER_S);
	ck_assert_uint_eq(c.next_crash_ns, t0 + 10 * NS_PER_S);
	crashes_init(&c, NULL, NULL, 10 * NS_PER_S, 2 * NS_PER_S, t0, 25 * NS_PER_S);
	ck_assert_uint_eq(c.next_crash_ns, t0 + 25 * NS_PER_S);
	/* without a node of its own nothing is ever killed, publishing or not */
	ck_assert(!crashes_step(&c, t0 + 30 * NS_PER_S, true));
	ck_assert(!crashes_down(&c));
}
END_TEST

/* DIR/periods.csv's lines into lines[] (at most max, newline kept); how many. */
static size_t read_periods(const char *dir, char lines[][256], size_t max)
{
	char path[256];
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/periods.csv", dir);
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "no %s", path);
	while (n < max && fgets(lines[n], 256, f))
		n++;
	fclose(f);
	return n;
}

/*
 * Faults on a timetable: warm-up 0.5 s, ack loss 5 % from 1 s to 2 s only,
 * cool-down 0.5 s, beside plain rules (2 % ack loss, default.ini's 1 % CommitOk loss).
 * The consumers (2 x 400/s) fall behind the publishers (2 x 500/s), so
 * hundreds of acks are sent after the publishers' end: in the cool-down. Every fault in
 * faults.csv lies after the warm-up and before the cool-down (the
 * publishers' end), a scheduled one inside its window; a second run with
 * the same seed writes the same periods (the cool-down's start excepted:
 * when the publishers finish is timing).
 */
START_TEST(test_schedule_windows)
{
	const char *sets[] = { "run.messages=3000", "publishers.rate=500", "consumers.work=2500us",
			       "faults.ack_loss=2%", "faults.warmup=500ms",
			       "faults.schedule=1s-2s drop basic.ack from=client p=5%", "faults.cooldown=500ms",
			       "publishers.timeout=30s", NULL };
	char lines[2][8][256], path[256], line[512];
	size_t n[2];
	double cool_start = 0, cool_end = 0, in_window = 0, plain = 0;
	struct result r;
	FILE *f;

	for (int k = 0; k < 2; k++) {
		run_dupsim(&r, "t-schedule", sets, 0);
		assert_ok(&r);
		n[k] = read_periods(r.dir, lines[k], 8);
		if (k == 1) {
			result_release(&r);
			break;
		}
		ck_assert_uint_eq(n[0], 4);
		ck_assert_str_eq(lines[0][0], "start_s,end_s,label\n");
		ck_assert_str_eq(lines[0][1], "0.000000,0.500000,\"warmup\"\n");
		ck_assert_str_eq(lines[0][2], "1.000000,2.000000,\"1s-2s drop basic.ack from=client p=0.05\"\n");
		ck_assert_int_eq(sscanf(lines[0][3], "%lf,%lf,\"cooldown\"", &cool_start, &cool_end), 2);
		ck_assert_double_ge(cool_start, 2.0); /* 3000 messages at 2 x 500/s: about 3 s */
		ck_assert_double_ge(cool_end - cool_start, 0.5); /* drained at least the cool-down */
		snprintf(path, sizeof(path), "%s/faults.csv", r.dir);
		f = fopen(path, "r");
		ck_assert_ptr_nonnull(f);
		ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
		while (fgets(line, sizeof(line), f)) {
			double t = strtod(line, NULL);

			ck_assert_msg(t >= 0.5, "a fault in the warm-up: %s", line);
			ck_assert_msg(t < cool_start, "a fault in the cool-down (from %.3f s): %s", cool_start, line);
			if (strstr(line, ",\"1s-2s drop basic.ack")) {
				ck_assert_msg(t >= 1.0 && t <= 2.0, "a scheduled fault outside 1s-2s: %s", line);
				in_window++;
			} else {
				plain++;
			}
		}
		fclose(f);
		ck_assert_double_ge(in_window, 3); /* ~300 acks in the window at 5 %: about 15 */
		ck_assert_double_ge(plain, 1);
		ck_assert_double_eq(in_window + plain, num(&r, "faults.frames_dropped")); /* every rule here drops */
		result_release(&r);
	}
	ck_assert_uint_eq(n[1], n[0]);
	for (size_t i = 0; i + 1 < n[0]; i++) /* every row but the cool-down's */
		ck_assert_str_eq(lines[1][i], lines[0][i]);
	ck_assert_ptr_nonnull(strstr(lines[1][n[1] - 1], ",\"cooldown\"\n"));
}
END_TEST

/* ---- issue 13, broker timeouts ------------------------------------------ */

/*
 * consumer_timeout: a delivery worked past the private node's 1 s timeout
 * has its channel closed (channel_tick_interval 250 ms: it fires in time),
 * the consumer reconnects, the message comes back about a timeout later.
 */
START_TEST(test_consumer_timeout_redelivers)
{
	const char *sets[] = { "run.messages=1500", "consumers.slow=0.3%", "consumers.slow_work=2s",
			       "broker.consumer_timeout=1s", "broker.url=embedded", NULL };
	struct result r;

	/* broker.url=embedded after the runner's URL: the timeout is set on a node of the run's own */
	run_dupsim_file(&r, "scenarios/consumer-timeout.ini", "t-consumer-timeout", sets, NULL, NULL);
	assert_ok(&r);
	ck_assert_double_eq(num(&r, "lost"), 0);
	ck_assert_msg(num(&r, "fault_events_by_kind.consumer_timeout") >= 1, "%s", r.out);
	ck_assert_double_eq(num(&r, "fault_events_by_kind.heartbeat_timeout"), 0);
	ck_assert_double_eq(num(&r, "fault_events_by_kind.unattributed"), 0);
	ck_assert_double_ge(num(&r, "duplicate_deliveries"), num(&r, "fault_events_by_kind.consumer_timeout"));
	/* redelivered once the timeout (1 s) and at most a tick (250 ms) passed, while the 2 s work went on */
	ck_assert_msg(num(&r, "gap_ms.p50") >= 900 && num(&r, "gap_ms.p50") <= 2500, "gap p50 %.0f ms",
		      num(&r, "gap_ms.p50"));
	result_release(&r);
}
END_TEST

/* consumers.heartbeat: 4 s of blocking work misses a 1 s heartbeat; the broker closes, the message comes back. */
START_TEST(test_heartbeat_missed_redelivers)
{
	const char *sets[] = { "run.messages=1500", "consumers.slow=0.3%", NULL };
	struct result r;

	run_dupsim_file(&r, "scenarios/heartbeat-loss.ini", "t-heartbeat-loss", sets, NULL, NULL);
	assert_ok(&r);
	ck_assert_double_eq(num(&r, "lost"), 0);
	ck_assert_msg(num(&r, "fault_events_by_kind.heartbeat_timeout") >= 1, "%s", r.out);
	ck_assert_double_eq(num(&r, "fault_events_by_kind.consumer_timeout"), 0);
	ck_assert_double_eq(num(&r, "fault_events_by_kind.unattributed"), 0);
	/* the broker waits two to three silent heartbeat intervals before it closes */
	ck_assert_msg(num(&r, "gap_ms.p50") >= 2000, "gap p50 %.0f ms", num(&r, "gap_ms.p50"));
	result_release(&r);
}
END_TEST

/*
 * The heartbeat rule end to end: the proxy swallows the consumers' heartbeats
 * and keeps their connections (then=hang). Three consumers share one message
 * a second, so each is silent for about 3 s, past the broker's two missed
 * 1 s heartbeats: the broker closes them, they reconnect, and the sessions
 * the rule hit are `heartbeat_timeout` events (with no duplicate: each had
 * acked all it got). Nothing is lost.
 */
START_TEST(test_heartbeat_rule_closes)
{
	const char *sets[] = { "run.messages=8", "publishers.count=1", "publishers.rate=1", "consumers.count=3",
			       "consumers.slow=0", "faults.rule=drop heartbeat from=client then=hang", NULL };
	struct result r;
	char *events;

	run_dupsim_file(&r, "scenarios/heartbeat-loss.ini", "t-heartbeat-rule", sets, NULL, NULL);
	assert_ok(&r);
	ck_assert_double_eq(num(&r, "lost"), 0);
	ck_assert_double_eq(num(&r, "duplicates_processed"), 0);
	/* the broker closed them (the proxy does not: then=hang), and they came back */
	ck_assert_double_eq(num(&r, "faults.connections_cut"), 0);
	ck_assert_double_ge(num(&r, "faults.reconnects"), 1);
	/* events.csv: the sessions the rule hit are heartbeat_timeout events, a second session among them */
	events = run_file(&r, "events.csv");
	ck_assert_msg(strstr(events, ",heartbeat_timeout,\"drop heartbeat from=client then=hang\",consumer ") &&
			      strstr(events, " #2,"), "%s", events);
	free(events);
	result_release(&r);
}
END_TEST

/* The same consumers without slow work keep their heartbeats: no event, no duplicate. */
START_TEST(test_heartbeat_kept_no_duplicates)
{
	const char *sets[] = { "run.messages=1500", "consumers.slow=0", NULL };
	struct result r;

	run_dupsim_file(&r, "scenarios/heartbeat-loss.ini", "t-heartbeat-kept", sets, NULL, NULL);
	assert_ok(&r);
	ck_assert_double_eq(num(&r, "duplicate_deliveries"), 0);
	ck_assert_double_eq(num(&r, "fault_events_by_kind.heartbeat_timeout"), 0);
	result_release(&r);
}
END_TEST

/* ---- issue 13, alarms, requeues and delivery limits ---- */

/*
 * consumers.nack_requeue: the handler fails after its side effect. Each nack
 * is one fault event with exactly one duplicate (its redelivery; a
 * redelivery nacked again is another event). mark = after: the key was never
 * inserted, every duplicate is processed again (not_inserted); mark =
 * before: every one is caught.
 */
START_TEST(test_nack_requeue_per_nack)
{
	const char *after[] = { "run.messages=3000", "dedup.mark=after", NULL };
	const char *before[] = { "run.messages=3000", "dedup.mark=before", NULL };
	struct result r;

	run_dupsim_file(&r, "scenarios/nack-requeue.ini", "t-nack-after", after, NULL, NULL);
	assert_ok(&r);
	ck_assert_double_gt(num(&r, "duplicate_deliveries"), 20);
	ck_assert_double_eq(num(&r, "fault_events_by_kind.nack_requeue"), num(&r, "duplicate_deliveries"));
	ck_assert_double_eq(num(&r, "fault_events"), num(&r, "duplicate_deliveries"));
	ck_assert_double_eq(num(&r, "fault_events_by_kind.unattributed"), 0);
	ck_assert_double_eq(num(&r, "misses_by_cause.not_inserted"), num(&r, "duplicate_deliveries"));
	ck_assert_double_eq(num(&r, "lost"), 0);
	result_release(&r);
	run_dupsim_file(&r, "scenarios/nack-requeue.ini", "t-nack-before", before, NULL, NULL);
	assert_ok(&r);
	ck_assert_double_gt(num(&r, "fault_events_by_kind.nack_requeue"), 20);
	ck_assert_double_eq(num(&r, "duplicates_processed"), 0);
	ck_assert_double_eq(num(&r, "lost"), 0);
	result_release(&r);
}
END_TEST

/* ---------- issue 13, the transactional inbox (dedup.store = postgres) ---------- */

/*
 * scenarios/inbox.ini at each crash point, with ack and CommitOk loss: the
 * id and the effect commit together, so 0 duplicates processed and 0 lost,
 * while the faults really made duplicate deliveries.
 */
static const char *const inbox_crash_points[] = { "before-mark", "after-mark", "after-process" };

START_TEST(test_inbox_exactly_once)
{
	char at[64];
	const char *sets[] = { "run.messages=3000", at, NULL };
	struct result r;

	snprintf(at, sizeof(at), "faults.consumer_crash_at=%s", inbox_crash_points[_i]);
	run_dupsim_file(&r, "scenarios/inbox.ini", "t-inbox", sets, NULL, NULL);
	assert_ok(&r);
	ck_assert_msg(num(&r, "faults.consumer_crashes") >= 1, "%s: no crash\n%s", at, r.out);
	ck_assert_msg(num(&r, "duplicate_deliveries") >= 1, "%s: no duplicate delivery\n%s", at, r.out);
	ck_assert_msg(num(&r, "duplicates_processed") == 0, "%s: duplicates processed %g", at,
		      num(&r, "duplicates_processed"));
	ck_assert_msg(num(&r, "lost") == 0, "%s: lost %g", at, num(&r, "lost"));
	ck_assert_double_eq(num(&r, "wrongly_suppressed"), 0);
	ck_assert_double_eq(num(&r, "dedup.errors"), 0);
	result_release(&r);
}
END_TEST

/*
 * nack-requeue.ini through the inbox: the handler throws inside the
 * transaction, which rolls back with its key, and the nack requeues. Each
 * nack is one more delivery, of a message nothing has happened to yet: no
 * duplicate delivery at all, every message executed once. (Before the fix
 * the inbox path never drew the nack: deliveries = committed.)
 */
START_TEST(test_inbox_nack_rolls_back)
{
	const char *sets[] = { "run.messages=3000", "dedup.store=postgres", NULL };
	struct result r;

	run_dupsim_file(&r, "scenarios/nack-requeue.ini", "t-inbox-nack", sets, NULL, NULL);
	assert_ok(&r);
	ck_assert_msg(num(&r, "deliveries") > num(&r, "committed") + 20, "no nack: %g deliveries of %g\n%s",
		      num(&r, "deliveries"), num(&r, "committed"), r.out);
	ck_assert_double_eq(num(&r, "dedup.lookups"), num(&r, "deliveries"));
	ck_assert_double_eq(num(&r, "dedup.inserts"), num(&r, "committed"));
	ck_assert_double_eq(num(&r, "duplicate_deliveries"), 0);
	ck_assert_double_eq(num(&r, "duplicates_processed"), 0);
	ck_assert_double_eq(num(&r, "lost"), 0);
	ck_assert_double_eq(num(&r, "dedup.errors"), 0);
	result_release(&r);
}
END_TEST

/*
 * A quorum queue with delivery_limit = 1 and a DLQ: messages nacked twice
 * are dead-lettered; the operator's replay brings them back as duplicates of
 * one dlq_replay event, seconds old; the handler never reached its mark, so
 * they are processed again (not_inserted). Nothing counts as lost: all were
 * executed before being dead-lettered. With mark = before the first
 * redelivery is caught, and nothing reaches the limit.
 */
START_TEST(test_delivery_limit_replay)
{
	const char *sets[] = { "run.messages=2400", "publishers.rate=400", "faults.dlq_replay_after=2s", NULL };
	const char *before[] = { "run.messages=1000", "publishers.rate=0", "faults.dlq_replay_after=0",
				 "dedup.mark=before", NULL };
	struct result r;

	run_dupsim_file(&r, "scenarios/delivery-limit.ini", "t-dlq-replay", sets, NULL, NULL);
	assert_ok(&r);
	ck_assert_double_gt(num(&r, "dlq_replayed"), 10);
	ck_assert_double_eq(num(&r, "dead_lettered"), num(&r, "dlq_replayed") + num(&r, "dead_lettered_left"));
	ck_assert_double_eq(num(&r, "fault_events_by_kind.dlq_replay"), 1);
	ck_assert_double_eq(num(&r, "fault_events_by_kind.unattributed"), 0);
	ck_assert_double_eq(num(&r, "lost"), 0);
	ck_assert_double_eq(num(&r, "lost_in_dlq"), 0);
	{
		char *faults = run_file(&r, "faults.csv");

		ck_assert_msg(strstr(faults, "dead-letter queue replayed into the queue"), "%s", faults);
		free(faults);
	}
	/* a replayed copy comes back seconds later: past the TTL */
	ck_assert_double_gt(num(&r, "gap_ms.max"), 1000);
	ck_assert_double_eq(num(&r, "duplicates_processed"), num(&r, "misses_by_cause.not_inserted"));
	ck_assert_double_eq(num(&r, "duplicates_processed"), num(&r, "duplicate_deliveries"));
	result_release(&r);
	run_dupsim_file(&r, "scenarios/delivery-limit.ini", "t-dlq-before", before, NULL, NULL);
	assert_ok(&r);
	ck_assert_double_gt(num(&r, "duplicate_deliveries"), 10);
	ck_assert_double_eq(num(&r, "dead_lettered"), 0);
	ck_assert_double_eq(num(&r, "duplicates_processed"), 0);
	result_release(&r);
}
END_TEST

/*
 * No replay, and consumers that crash before their side effect: a message
 * whose deliveries were all abandoned goes over the limit unexecuted. It is
 * in the DLQ (lost_in_dlq), not in `lost`, and the invariants still hold.
 */
START_TEST(test_dead_lettered_unexecuted)
{
	const char *sets[] = { "run.messages=2000", "publishers.rate=0", "faults.dlq_replay_after=0",
			       "consumers.nack_requeue=0", "faults.consumer_crash=3%",
			       "faults.consumer_crash_at=before-mark", "dedup.mark=before", NULL };
	struct result r;

	run_dupsim_file(&r, "scenarios/delivery-limit.ini", "t-dlq-left", sets, NULL, NULL);
	assert_ok(&r);
	ck_assert_double_eq(num(&r, "dlq_replayed"), 0);
	ck_assert_double_gt(num(&r, "dead_lettered_left"), 0);
	ck_assert_double_eq(num(&r, "dead_lettered"), num(&r, "dead_lettered_left"));
	ck_assert_double_gt(num(&r, "lost_in_dlq"), 0);
	ck_assert_double_le(num(&r, "lost_in_dlq"), num(&r, "dead_lettered_left"));
	ck_assert_double_eq(num(&r, "lost"), 0);
	result_release(&r);
}
END_TEST

/*
 * faults.memory_alarm on a node of the run's own: blocked publishers time
 * out and republish; what they had sent is read once the alarm clears, so
 * copies are enqueued twice, every duplicate charged to a memory_alarm
 * event, none processed again with the shared memory store.
 */
START_TEST(test_memory_alarm_republishes)
{
	const char *sets[] = { "run.messages=7000", "faults.memory_alarm=1s-3s", "broker.url=embedded", NULL };
	struct result r;

	run_dupsim_file(&r, "scenarios/memory-alarm.ini", "t-alarm", sets, NULL, NULL);
	assert_ok(&r);
	ck_assert_double_gt(num(&r, "publish_attempts"), num(&r, "committed"));
	ck_assert_double_gt(num(&r, "duplicate_deliveries"), 0);
	ck_assert_double_ge(num(&r, "fault_events_by_kind.memory_alarm"), 1);
	ck_assert_double_eq(num(&r, "fault_events"), num(&r, "fault_events_by_kind.memory_alarm"));
	ck_assert_double_eq(num(&r, "fault_events_by_kind.unattributed"), 0);
	ck_assert_double_eq(num(&r, "duplicates_processed"), 0);
	ck_assert_double_eq(num(&r, "lost"), 0);
	/* the alarm's raise and clearing are rows of faults.csv, its window a row of periods.csv */
	{
		char *faults = run_file(&r, "faults.csv"), *periods = run_file(&r, "periods.csv");
		double from = -1, until = -1;
		const char *row = strstr(periods, "\"memory alarm\"");

		ck_assert_msg(strstr(faults, "memory alarm raised") && strstr(faults, "memory alarm cleared"), "%s", faults);
		ck_assert_msg(row, "%s", periods);
		while (row > periods && row[-1] != '\n')
			row--;
		ck_assert_int_eq(sscanf(row, "%lf,%lf", &from, &until), 2);
		ck_assert_msg(from >= 0.9 && until > from + 1.5, "alarm window %g..%g s for 1s-3s", from, until);
		free(faults);
		free(periods);
	}
	result_release(&r);
}
END_TEST

/* ---------- issue 13: faults of the dedup store itself ---------- */

/* A shipped store-*.ini with SETS, against the test broker; the result must hold its invariants. */
static void run_store(struct result *r, const char *file, const char *queue, const char *const *sets)
{
	run_dupsim_file(r, file, queue, sets, NULL, NULL);
	assert_ok(r);
	ck_assert_double_eq(num(r, "lost"), 0);
}

/* A redis restarted without persistence loses its keys: duplicates after a restart are store_lost; none without. */
START_TEST(test_store_restart_loses_keys)
{
	const char *none[] = { "faults.store_restart_every=0", NULL };
	struct result r;

	run_store(&r, "scenarios/store-lost.ini", "t-store-lost", NULL);
	ck_assert_double_ge(num(&r, "dedup.store_restarts"), 2);
	ck_assert_msg(num(&r, "misses_by_cause.store_lost") > 0, "no store_lost misses:\n%s", r.out);
	/* closed: the restarts stall the consumers, they never go on without the store */
	ck_assert_double_eq(num(&r, "misses_by_cause.store_error"), 0);
	ck_assert_double_gt(num(&r, "dedup.stalled_ms"), 0);
	result_release(&r);

	run_store(&r, "scenarios/store-lost.ini", "t-store-lost", none);
	ck_assert_double_eq(num(&r, "dedup.store_restarts"), 0);
	ck_assert_double_eq(num(&r, "misses_by_cause.store_lost"), 0);
	ck_assert_double_gt(num(&r, "duplicate_deliveries"), 0);
	result_release(&r);
}
END_TEST

/* redis's own maxmemory eviction (allkeys-lru) lets duplicates through as `evicted`. */
START_TEST(test_store_maxmemory_evicts)
{
	const char *sets[] = { "run.messages=5000", NULL };
	struct result r;

	run_store(&r, "scenarios/store-evicted.ini", "t-store-evicted", sets);
	ck_assert_double_gt(num(&r, "dedup.redis_evicted_keys"), 0);
	ck_assert_msg(num(&r, "misses_by_cause.evicted") > 0, "no evicted misses:\n%s", r.out);
	ck_assert_double_eq(num(&r, "misses_by_cause.store_error"), 0);
	result_release(&r);
}
END_TEST

/* A hung redis (SIGSTOP for 2 s): fail-open processes duplicates (store_error), fail-closed stalls instead. */
START_TEST(test_store_down_open_closed)
{
	const char *closed[] = { "dedup.on_error=closed", NULL };
	struct result r;

	run_store(&r, "scenarios/store-down.ini", "t-store-down", NULL);
	ck_assert_double_gt(num(&r, "dedup.store_down_ms"), 1500);
	ck_assert_double_gt(num(&r, "dedup.errors"), 0);
	ck_assert_msg(num(&r, "misses_by_cause.store_error") > 0, "no store_error misses:\n%s", r.out);
	ck_assert_double_eq(num(&r, "dedup.stalls"), 0);
	result_release(&r);

	run_store(&r, "scenarios/store-down.ini", "t-store-down", closed);
	ck_assert_double_gt(num(&r, "dedup.store_down_ms"), 1500);
	ck_assert_double_gt(num(&r, "duplicate_deliveries"), 0);
	ck_assert_msg(num(&r, "duplicates_processed") == 0, "misses with on_error = closed:\n%s", r.out);
	ck_assert_double_gt(num(&r, "dedup.stalls"), 0);
	/* the consumer waited for most of the window */
	ck_assert_double_gt(num(&r, "dedup.stalled_ms"), 1000);
	result_release(&r);
}
END_TEST

/* ---------- issue 14: a cluster ---------- */

/*
 * scenarios/cluster.ini, shorter: a private three-node cluster, its leader
 * killed at 2 s (back 2 s later), the leader of then cut off from 16 s to
 * 20 s. Confirmed messages are on a majority: every committed message is
 * processed, none twice (shared dedup), and the faults are rows of
 * faults.csv and events of their own kinds.
 */
START_TEST(test_cluster_leader_kill_partition)
{
	const char *sets[] = { "broker.url=embedded", "run.messages=6600", "faults.leader_kill=2s",
			       "faults.broker_down=2s", "faults.partition=16s-20s", NULL };
	char err[512], path[400], csv[4096] = "";
	struct result r;
	FILE *f;

	if (hosts_check("the cluster run test", err, sizeof(err)) < 0) {
		fprintf(stderr, "check_run: cluster skipped (%s)\n", err);
		return;
	}
	run_dupsim_file(&r, "scenarios/cluster.ini", "t-cluster", sets, NULL, NULL);
	assert_ok(&r);
	ck_assert_double_eq(num(&r, "committed"), 6600);
	ck_assert_double_eq(num(&r, "lost"), 0);
	ck_assert_double_eq(num(&r, "duplicates_processed"), 0);
	ck_assert_double_eq(num(&r, "cluster.nodes"), 3);
	ck_assert_double_eq(num(&r, "cluster.leader_kills"), 1);
	ck_assert_double_eq(num(&r, "cluster.partitions"), 1);
	ck_assert_double_eq(num(&r, "fault_events_by_kind.unattributed"), 0);
	/* the workers were spread over the three nodes */
	for (int i = 0; i < 3; i++) {
		char key[64];

		snprintf(key, sizeof(key), "cluster.connections.%d", i);
		ck_assert_msg(num(&r, key) >= 1, "node %d got no connection\n%s", i + 1, r.out);
	}
	snprintf(path, sizeof(path), "%s/faults.csv", r.dir);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	csv[fread(csv, 1, sizeof(csv) - 1, f)] = '\0';
	fclose(f);
	ck_assert_msg(strstr(csv, "quorum leader killed") && strstr(csv, "killed node restarted") &&
			      strstr(csv, "partition: the leader cut off") && strstr(csv, "partition healed"),
		      "%s", csv);
	{
		/* the member down and the partition are windows of periods.csv (the timeseries plot draws them) */
		char *periods = run_file(&r, "periods.csv");

		ck_assert_msg(strstr(periods, "quorum leader killed") && strstr(periods, "partition: the leader cut off"),
			      "%s", periods);
		free(periods);
	}
	result_release(&r);
}
END_TEST

/*
 * The same run against a cluster "of the user's": three URLs in broker.url
 * (a cluster this test starts itself, as a user's would be running). The
 * workers use all three; faults that need root on the cluster's hosts are
 * refused by name.
 */
START_TEST(test_cluster_of_users)
{
	struct hosts *h;
	struct cluster *c;
	char err[1024], urls[400] = "broker.url=";
	const char *sets[] = { urls, "broker.queue_type=quorum", "run.messages=1500", NULL };
	const char *kill[] = { urls, "broker.queue_type=quorum", "faults.leader_kill=2s", NULL };
	struct result r;

	if (hosts_check("the user's cluster test", err, sizeof(err)) < 0) {
		fprintf(stderr, "check_run: user's cluster skipped (%s)\n", err);
		return;
	}
	ck_assert_msg(hosts_new(&h, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(cluster_new(&c, h, 3, NULL, NULL, err, sizeof(err)) == 0, "%s", err);
	for (size_t i = 0; i < 3; i++)
		snprintf(urls + strlen(urls), sizeof(urls) - strlen(urls), "%s%s", i ? "," : "",
			 node_url(cluster_node(c, i)));
	run_dupsim(&r, "t-users-cluster", sets, 0);
	assert_ok(&r);
	ck_assert_double_eq(num(&r, "lost"), 0);
	ck_assert_double_eq(num(&r, "cluster.nodes"), 3);
	for (int i = 0; i < 3; i++) {
		char key[64];

		snprintf(key, sizeof(key), "cluster.connections.%d", i);
		ck_assert_msg(num(&r, key) >= 1, "node %d got no connection\n%s", i + 1, r.out);
	}
	result_release(&r);
	run_dupsim(&r, "t-users-cluster", kill, 0);
	ck_assert_int_eq(r.status, 2);
	ck_assert_msg(strstr(r.out, "faults.leader_kill") && strstr(r.out, "needs root on their hosts"), "%s", r.out);
	result_release(&r);
	cluster_free(c);
	hosts_free(h);
}
END_TEST

/* ---------- issue 14: hosts ---------- */

/* scenarios/store-rtt.ini with SETS at store_rtt = rtt; the result must hold its invariants and lose nothing. */
static void run_storehost(struct result *r, const char *rtt)
{
	char set[64];
	const char *sets[] = { "run.messages=200", set, NULL };

	snprintf(set, sizeof(set), "hosts.store_rtt=%s", rtt);
	run_dupsim_file(r, "scenarios/store-rtt.ini", "t-storehost", sets, NULL, NULL);
	assert_ok(r);
	ck_assert_double_eq(num(r, "lost"), 0);
	ck_assert_double_eq(num(r, "committed"), 200);
}

static const char *str(const struct result *r, const char *obj, const char *key)
{
	json_t *v = json_object_get(json_object_get(r->summary, obj), key);

	ck_assert_msg(json_is_string(v), "summary.json has no string %s.%s:\n%s", obj, key, r->out);
	return json_string_value(v);
}

/* The store on its own host: 4 ms of RTT on its link shows in every dedup call, and in report.md. */
START_TEST(test_storehost_rtt)
{
	struct result r0, r4;
	char path[256], *md;
	double p0, p4;

	if (geteuid() != 0) {
		run_dupsim_file(&r0, "scenarios/store-rtt.ini", "t-storehost", NULL, NULL, NULL);
		ck_assert_msg(r0.status != 0 && strstr(r0.out, "hosts.store = own needs root"), "%s", r0.out);
		result_release(&r0);
		return;
	}
	run_storehost(&r0, "0");
	run_storehost(&r4, "4ms");
	ck_assert_str_eq(str(&r4, "hosts", "store"), "own");
	ck_assert_msg(strncmp(str(&r4, "hosts", "store_addr"), "10.77.", 6) == 0, "%s", str(&r4, "hosts", "store_addr"));
	ck_assert_double_eq(num(&r4, "hosts.store_rtt_ms"), 4);
	ck_assert_double_eq(num(&r0, "hosts.store_rtt_ms"), 0);
	/* a PING over the link takes the round trip; without delay well under it */
	ck_assert_double_ge(num(&r4, "hosts.store_ping_ms"), 3.9);
	ck_assert_double_lt(num(&r0, "hosts.store_ping_ms"), 2);
	p0 = num(&r0, "dedup.store_latency_us_p50");
	p4 = num(&r4, "dedup.store_latency_us_p50");
	ck_assert_msg(p4 - p0 >= 3500, "store latency p50 %.0f us at 4 ms RTT, %.0f us at 0", p4, p0);
	snprintf(path, sizeof(path), "%s/report.md", r4.dir);
	md = files_read(path, NULL);
	ck_assert_ptr_nonnull(md);
	ck_assert_msg(strstr(md, "| dedup store's host | its own test host 10.77.") && strstr(md, "link round trip 4 ms"),
		      "%s", md);
	free(md);
	result_release(&r0);
	result_release(&r4);
}
END_TEST

/* Copies file src to dst with mode; asserts it worked. */
static void copy_file(const char *src, const char *dst, unsigned mode)
{
	size_t len;
	char *data = files_read(src, &len);

	ck_assert_msg(data != NULL, "cannot read %s", src);
	ck_assert_int_eq(files_write_atomic(dst, data, len), 0);
	ck_assert_int_eq(chmod(dst, mode), 0);
	free(data);
}

/*
 * dupsim run as a normal user (nobody) with SET, from copies in a folder of
 * its own that nobody can read wherever the checkout is (root's home is
 * not). Its exit status, and its output in buf. The refusal must come
 * before any work: no summary.json in `out`.
 */
static int run_as_nobody(const char *file, const char *set, char *buf, size_t len)
{
	const char *bin = getenv("DUPSIM_BIN");
	char dir[64] = "/tmp/dupsim-nobody-XXXXXX", exe[96], ini[96], out[96], summary[128];
	int fds[2], status;
	size_t got = 0;
	ssize_t n;
	pid_t pid;

	ck_assert_ptr_nonnull(bin);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(chmod(dir, 0777), 0);
	snprintf(exe, sizeof(exe), "%s/dupsim", dir);
	snprintf(ini, sizeof(ini), "%s/scenario.ini", dir);
	snprintf(out, sizeof(out), "%s/out", dir);
	copy_file(bin, exe, 0755);
	copy_file(file, ini, 0644);
	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		if (chdir(dir) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
			_exit(99);
		execl(exe, exe, "run", ini, "--quiet", "--out", out, "--set", set, (char *)NULL);
		_exit(98);
	}
	close(fds[1]);
	while (got + 1 < len && (n = read(fds[0], buf + got, len - 1 - got)) > 0)
		got += (size_t)n;
	buf[got] = '\0';
	close(fds[0]);
	waitpid(pid, &status, 0);
	snprintf(summary, sizeof(summary), "%s/summary.json", out);
	ck_assert_msg(access(summary, F_OK) != 0, "a refused run wrote %s", summary);
	files_rm_rf(dir);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A normal user asking for test hosts gets one line naming the key and root, before any work. */
START_TEST(test_hosts_refused_without_root)
{
	static const struct {
		const char *file, *set, *says;
	} cases[] = {
		{ "scenarios/store-rtt.ini", "hosts.store_rtt=1ms", "hosts.store = own needs root" },
		{ "scenarios/consumer-hosts.ini", "hosts.consumer_rtt=1ms", "hosts.consumers = own needs root" },
		{ "scenarios/cluster.ini", "run.messages=10", "broker.nodes = 3 needs root" },
	};
	char buf[4096];

	if (geteuid() != 0)
		return; /* test_storehost_rtt asserts the refusal then */
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int st = run_as_nobody(cases[i].file, cases[i].set, buf, sizeof(buf));

		ck_assert_msg(st != 0 && st < 98, "exit %d: %s", st, buf);
		ck_assert_msg(strstr(buf, cases[i].says), "%s", buf);
	}
}
END_TEST

/*
 * issue 14: dupsim's consumers on hosts of their own, sharing a redis over
 * their links. Each consumer's connections reach the proxy from its host's
 * address, and every store call crosses the link (its latency is at least
 * the round trip): the sockets are on the hosts, not on loopback.
 */
START_TEST(test_consumer_hosts)
{
	const char *sets[] = { "run.messages=400", NULL };
	struct result r;
	json_t *hosts;
	char path[256], *md;

	if (geteuid() != 0)
		return; /* test_hosts_refused_without_root's case */
	run_dupsim_file(&r, "scenarios/consumer-hosts.ini", "t-conshosts", sets, NULL, NULL);
	assert_ok(&r);
	ck_assert_double_eq(num(&r, "committed"), 400);
	ck_assert_double_eq(num(&r, "lost"), 0);
	ck_assert_double_gt(num(&r, "duplicate_deliveries"), 0); /* the faults happened */
	ck_assert_str_eq(str(&r, "hosts", "consumers"), "own");
	ck_assert_double_eq(num(&r, "hosts.consumer_rtt_ms"), 4);
	hosts = json_object_get(json_object_get(r.summary, "hosts"), "consumer_hosts");
	ck_assert_uint_eq(json_array_size(hosts), 3);
	for (size_t i = 0; i < 3; i++) {
		const char *addr = json_string_value(json_object_get(json_array_get(hosts, i), "addr"));
		char key[64];

		ck_assert_msg(addr && strncmp(addr, "10.77.", 6) == 0, "host %zu: %s", i, addr ? addr : "(none)");
		snprintf(key, sizeof(key), "hosts.consumer_hosts.%zu.connections", i);
		ck_assert_msg(num(&r, key) >= 1, "no connection from consumer host %s\n%s", addr, r.out);
	}
	ck_assert_msg(num(&r, "dedup.store_latency_us_p50") >= 3900, "store latency p50 %.0f us over a 4 ms link",
		      num(&r, "dedup.store_latency_us_p50"));
	snprintf(path, sizeof(path), "%s/report.md", r.dir);
	md = files_read(path, NULL);
	ck_assert_ptr_nonnull(md);
	ck_assert_msg(strstr(md, "| consumers' hosts | one test host each, link round trip 4 ms"), "%s", md);
	free(md);
	result_release(&r);
}
END_TEST

/*
 * The user's app on hosts of its own: each instance a process on its host,
 * every one of its connections found to be its (the proxy's owner lookup
 * reads the socket tables of the host's namespace), its effects all read.
 */
START_TEST(test_app_on_hosts)
{
	const char *sets[] = { "run.messages=300", "hosts.consumers=own", "hosts.consumer_rtt=2ms",
			       "app.crash_every=0", NULL };
	struct result r;

	if (geteuid() != 0)
		return;
	run_dupsim_file(&r, "scenarios/app-mark-after.ini", "t-apphosts", sets, NULL, NULL);
	assert_ok(&r);
	ck_assert_double_eq(num(&r, "committed"), 300);
	ck_assert_double_eq(num(&r, "lost"), 0);
	ck_assert_double_eq(num(&r, "app.connections_unmapped"), 0);
	ck_assert_double_ge(num(&r, "app.effect_lines"), 300);
	ck_assert_double_ge(num(&r, "hosts.consumer_hosts.0.connections"), 1);
	ck_assert_double_ge(num(&r, "hosts.consumer_hosts.1.connections"), 1);
	ck_assert_double_eq(num(&r, "hosts.consumer_hosts.0.connections") + num(&r, "hosts.consumer_hosts.1.connections"),
			    num(&r, "app.connections"));
	result_release(&r);
}
END_TEST

Suite *run_suite(void)
{
	Suite *s = suite_create("run");
	TCase *tc = tcase_create("broker");

	tcase_add_test(tc, test_no_faults);
	tcase_add_test(tc, test_commit_ok_loss_model);
	tcase_add_test(tc, test_store_none_misses_all);
	tcase_add_test(tc, test_memory_catches_all);
	tcase_add_test(tc, test_publish_only_queue);
	tcase_add_test(tc, test_confirm_mode);
	tcase_add_test(tc, test_interrupt_keeps_results);
	tcase_add_test(tc, test_unreachable_broker);
	tcase_add_test(tc, test_bad_scenario_runs_nothing);
	tcase_add_test(tc, test_schedule_windows);
	tcase_add_test(tc, test_crashes_wait_for_warmup);
	tcase_add_test(tc, test_second_run_same_queue_refused);
	tcase_set_timeout(tc, 180);
	suite_add_tcase(s, tc);
	tc = tcase_create("strategies");
	tcase_add_test(tc, test_local_scope_other_cache_vs_shared_redis);
	tcase_add_test(tc, test_ttl_shorter_than_gaps_expires);
	tcase_add_test(tc, test_crash_mark_before_loses_after_duplicates);
	tcase_add_test(tc, test_republish_count_misses_attributed);
	tcase_add_test(tc, test_shared_redis_ack_loss_causes);
	tcase_add_test(tc, test_tokyocabinet_survives_crash);
	tcase_set_timeout(tc, 180);
	suite_add_tcase(s, tc);
	/* the model against measured rates: alone, after the shards (a loaded machine moves the rates) */
	tc = tcase_create("predicted");
	tcase_set_tags(tc, "serial");
	tcase_add_loop_test(tc, test_shipped_scenarios_predicted, 0,
			    (int)(sizeof(predicted_scenarios) / sizeof(predicted_scenarios[0])));
	tcase_set_timeout(tc, 180);
	suite_add_tcase(s, tc);
	tc = tcase_create("hostile"); /* shard 0: shard 1 holds the clusters (see tools/test-shards' times) */
	tcase_add_test(tc, test_fault_events_add_up);
	tcase_add_loop_test(tc, test_crash_points, 0, (int)(sizeof(crash_cases) / sizeof(crash_cases[0])));
	tcase_add_test(tc, test_few_events_no_interval);
	tcase_add_test(tc, test_broker_crash_loses_nothing);
	tcase_add_test(tc, test_broker_gone_publishers_give_up);
	tcase_add_test(tc, test_broker_restart_fails);
	tcase_add_test(tc, test_quorum_queue);
	tcase_add_test(tc, test_refused_login);
	tcase_add_test(tc, test_redis_down);
	tcase_add_test(tc, test_results_disk_full);
	tcase_set_timeout(tc, 180);
	suite_add_tcase(s, tc);
	tc = tcase_create("app");
	tcase_set_tags(tc, "shard1");
	tcase_add_loop_test(tc, test_app_examples_match_own_count, 0,
			    (int)(sizeof(app_examples) / sizeof(app_examples[0])));
	tcase_add_test(tc, test_app_no_dedup_misses_all);
	tcase_add_test(tc, test_app_exit_restarted);
	tcase_add_test(tc, test_app_crash_loop_fails);
	tcase_add_test(tc, test_app_api_faults);
	tcase_set_timeout(tc, 180);
	suite_add_tcase(s, tc);
	/* issue 13, broker timeouts */
	tc = tcase_create("timeouts");
	tcase_add_test(tc, test_consumer_timeout_redelivers);
	tcase_add_test(tc, test_heartbeat_missed_redelivers);
	tcase_add_test(tc, test_heartbeat_kept_no_duplicates);
	tcase_add_test(tc, test_heartbeat_rule_closes);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	/* issue 13: the transactional inbox */
	tc = tcase_create("inbox");
	tcase_add_loop_test(tc, test_inbox_exactly_once, 0,
			    (int)(sizeof(inbox_crash_points) / sizeof(inbox_crash_points[0])));
	tcase_add_test(tc, test_inbox_nack_rolls_back);
	tcase_set_timeout(tc, 90);
	suite_add_tcase(s, tc);
	/* issue 13, alarms, requeues and delivery limits */
	tc = tcase_create("requeue");
	tcase_add_test(tc, test_nack_requeue_per_nack);
	tcase_add_test(tc, test_delivery_limit_replay);
	tcase_add_test(tc, test_dead_lettered_unexecuted);
	tcase_add_test(tc, test_memory_alarm_republishes);
	tcase_set_timeout(tc, 180);
	suite_add_tcase(s, tc);

	/* issue 13: faults of the dedup store itself */
	tc = tcase_create("store");
	tcase_add_test(tc, test_store_restart_loses_keys);
	tcase_add_test(tc, test_store_maxmemory_evicts);
	tcase_add_test(tc, test_store_down_open_closed);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);

	/* issue 14: a cluster (root: test hosts) */
	tc = tcase_create("cluster");
	tcase_add_test(tc, test_cluster_leader_kill_partition);
	tcase_add_test(tc, test_cluster_of_users);
	tcase_set_timeout(tc, 240);
	tcase_set_tags(tc, "shard1");
	suite_add_tcase(s, tc);
	/* issue 14: the dedup store on a test host of its own */
	tc = tcase_create("storehost");
	tcase_set_tags(tc, "shard1");
	tcase_add_test(tc, test_storehost_rtt);
	tcase_add_test(tc, test_hosts_refused_without_root);
	tcase_add_test(tc, test_consumer_hosts);
	tcase_add_test(tc, test_app_on_hosts);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}
