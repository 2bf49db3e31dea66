/* check_scenario.c — scenario files: defaults, units, every error message, --set, round trip, scenarios/. */
#include <glob.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/scenario.h"
#include "tests.h"
#include "core/clock.h"

#define MS NS_PER_MS
#define SEC NS_PER_S

/* Writes text to a fresh temp file; path receives its name. */
static void write_tmp(const char *text, char *path, size_t len)
{
	FILE *f;
	int fd;

	snprintf(path, len, "/tmp/check_scenario_XXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq((int)fwrite(text, 1, strlen(text), f), (int)strlen(text));
	ck_assert_int_eq(fclose(f), 0);
}

/* init_defaults + load of text; returns scenario_load's result, the file is removed. */
static int load_text(struct scenario *sc, const char *text, char *path, size_t pathlen, char *err, size_t errlen)
{
	int rc;

	write_tmp(text, path, pathlen);
	scenario_init_defaults(sc, path);
	err[0] = '\0';
	rc = scenario_load(sc, path, err, errlen);
	unlink(path);
	return rc;
}

static void assert_one_line(const char *err)
{
	ck_assert_msg(err[0] != '\0', "empty message");
	ck_assert_msg(strchr(err, '\n') == NULL, "message has a newline: '%s'", err);
}

/* err starts with "PATH:LINE: " and contains each needle. */
static void assert_err_at(const char *err, const char *path, int line, const char *n1, const char *n2)
{
	char prefix[256];

	assert_one_line(err);
	snprintf(prefix, sizeof(prefix), "%s:%d: ", path, line);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "'%s' does not start with '%s'", err, prefix);
	if (n1)
		ck_assert_msg(strstr(err, n1) != NULL, "'%s' lacks '%s'", err, n1);
	if (n2)
		ck_assert_msg(strstr(err, n2) != NULL, "'%s' lacks '%s'", err, n2);
}

static void assert_same(const struct scenario *a, const struct scenario *b)
{
	ck_assert_str_eq(a->run.name, b->run.name);
	ck_assert_uint_eq(a->run.messages, b->run.messages);
	ck_assert_uint_eq(a->run.seed, b->run.seed);
	ck_assert_uint_eq(a->run.drain_timeout_ns, b->run.drain_timeout_ns);
	ck_assert_str_eq(a->broker.url, b->broker.url);
	ck_assert_str_eq(a->broker.queue, b->broker.queue);
	ck_assert_int_eq(a->broker.queue_type, b->broker.queue_type);
	ck_assert_int_eq(a->broker.keep_queue, b->broker.keep_queue);
	ck_assert_uint_eq(a->publishers.count, b->publishers.count);
	ck_assert_int_eq(a->publishers.mode, b->publishers.mode);
	ck_assert_uint_eq(a->publishers.batch, b->publishers.batch);
	ck_assert_uint_eq(a->publishers.rate, b->publishers.rate);
	ck_assert_uint_eq(a->publishers.size, b->publishers.size);
	ck_assert_uint_eq(a->publishers.timeout_ns, b->publishers.timeout_ns);
	ck_assert_uint_eq(a->consumers.count, b->consumers.count);
	ck_assert_uint_eq(a->consumers.prefetch, b->consumers.prefetch);
	ck_assert_uint_eq(a->consumers.ack_every, b->consumers.ack_every);
	ck_assert_uint_eq(a->consumers.work_ns, b->consumers.work_ns);
	ck_assert(a->faults.commit_ok_loss == b->faults.commit_ok_loss);
	ck_assert(a->faults.confirm_loss == b->faults.confirm_loss);
	ck_assert(a->faults.ack_loss == b->faults.ack_loss);
	ck_assert_int_eq(a->faults.on_loss, b->faults.on_loss);
	ck_assert_uint_eq(a->faults.rule_count, b->faults.rule_count);
	for (size_t i = 0; i < a->faults.rule_count; i++)
		ck_assert_str_eq(a->faults.rules[i].text, b->faults.rules[i].text);
	ck_assert_uint_eq(a->faults.schedule_count, b->faults.schedule_count);
	for (size_t i = 0; i < a->faults.schedule_count; i++) {
		ck_assert_str_eq(a->faults.schedules[i].text, b->faults.schedules[i].text);
		ck_assert_uint_eq(a->faults.schedules[i].from_ns, b->faults.schedules[i].from_ns);
		ck_assert_uint_eq(a->faults.schedules[i].until_ns, b->faults.schedules[i].until_ns);
	}
	ck_assert_uint_eq(a->faults.warmup_ns, b->faults.warmup_ns);
	ck_assert_uint_eq(a->faults.cooldown_ns, b->faults.cooldown_ns);
	ck_assert_uint_eq(a->faults.broker_crash_every_ns, b->faults.broker_crash_every_ns);
	ck_assert_uint_eq(a->faults.broker_down_ns, b->faults.broker_down_ns);
	ck_assert(a->faults.consumer_crash == b->faults.consumer_crash);
	ck_assert_int_eq(a->faults.consumer_crash_at, b->faults.consumer_crash_at);
	ck_assert_int_eq(a->dedup.store, b->dedup.store);
	ck_assert_int_eq(a->dedup.scope, b->dedup.scope);
	ck_assert_uint_eq(a->dedup.ttl_ns, b->dedup.ttl_ns);
	ck_assert_uint_eq(a->dedup.capacity, b->dedup.capacity);
	ck_assert_int_eq(a->dedup.check, b->dedup.check);
	ck_assert_int_eq(a->dedup.mark, b->dedup.mark);
	ck_assert_str_eq(a->dedup.url, b->dedup.url);
	ck_assert_int_eq(a->dedup.sync, b->dedup.sync);
	/* issue 13 */
	ck_assert_uint_eq(a->broker.delivery_limit, b->broker.delivery_limit);
	ck_assert_int_eq(a->broker.dead_letter, b->broker.dead_letter);
	ck_assert(a->consumers.nack_requeue == b->consumers.nack_requeue);
	ck_assert_uint_eq(a->faults.memory_alarm_from_ns, b->faults.memory_alarm_from_ns);
	ck_assert_uint_eq(a->faults.memory_alarm_until_ns, b->faults.memory_alarm_until_ns);
	ck_assert_uint_eq(a->faults.dlq_replay_after_ns, b->faults.dlq_replay_after_ns);
	ck_assert_uint_eq(a->store.restart_every_ns, b->store.restart_every_ns);
	ck_assert_uint_eq(a->store.down_from_ns, b->store.down_from_ns);
	ck_assert_uint_eq(a->store.down_until_ns, b->store.down_until_ns);
	ck_assert_uint_eq(a->store.redis_maxmemory, b->store.redis_maxmemory);
	ck_assert_int_eq(a->store.on_error, b->store.on_error);
	ck_assert_uint_eq(a->store.timeout_ns, b->store.timeout_ns);
	/* issue 14 */
	ck_assert_int_eq(a->hosts.store, b->hosts.store);
	ck_assert_uint_eq(a->hosts.store_rtt_ns, b->hosts.store_rtt_ns);
	ck_assert_uint_eq(a->hosts.store_jitter_ns, b->hosts.store_jitter_ns);
	ck_assert(a->hosts.store_loss == b->hosts.store_loss);
	ck_assert_int_eq(a->hosts.consumers, b->hosts.consumers);
	ck_assert_uint_eq(a->hosts.consumer_rtt_ns, b->hosts.consumer_rtt_ns);
	ck_assert_uint_eq(a->hosts.consumer_jitter_ns, b->hosts.consumer_jitter_ns);
	ck_assert(a->hosts.consumer_loss == b->hosts.consumer_loss);
}

/* scenario_write, then scenario_load of what it wrote: the same values. */
static void assert_round_trip(const struct scenario *sc)
{
	struct scenario back;
	char path[64], err[1024];
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "/tmp/check_scenario_rt_XXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	ck_assert_int_eq(scenario_write(sc, f), 0);
	ck_assert_int_eq(fclose(f), 0);
	scenario_init_defaults(&back, "/tmp/some-other-name.ini");
	ck_assert_msg(scenario_load(&back, path, err, sizeof(err)) == 0, "reload: %s", err);
	ck_assert_msg(scenario_check(&back, err, sizeof(err)) == 0, "check after reload: %s", err);
	unlink(path);
	assert_same(sc, &back);
	scenario_release(&back);
}

START_TEST(test_defaults)
{
	struct scenario sc;
	struct rule *rules;
	size_t n;
	char err[256];

	scenario_init_defaults(&sc, "scenarios/foo.ini");
	ck_assert_str_eq(sc.run.name, "foo");
	ck_assert_uint_eq(sc.run.messages, 10000);
	ck_assert_uint_eq(sc.run.seed, 1);
	ck_assert_uint_eq(sc.run.drain_timeout_ns, 60 * SEC);
	ck_assert_str_eq(sc.broker.url, "embedded");
	ck_assert_str_eq(sc.broker.queue, "dupsim");
	ck_assert_int_eq(sc.broker.queue_type, SCENARIO_QUEUE_CLASSIC);
	ck_assert(!sc.broker.keep_queue);
	ck_assert_uint_eq(sc.publishers.count, 2);
	ck_assert_int_eq(sc.publishers.mode, SCENARIO_MODE_TX);
	ck_assert_uint_eq(sc.publishers.batch, 10);
	ck_assert_uint_eq(sc.publishers.rate, 0);
	ck_assert_uint_eq(sc.publishers.size, 128);
	ck_assert_uint_eq(sc.publishers.timeout_ns, 2 * SEC);
	ck_assert_uint_eq(sc.consumers.count, 2);
	ck_assert_uint_eq(sc.consumers.prefetch, 100);
	ck_assert_uint_eq(sc.consumers.ack_every, 1);
	ck_assert_uint_eq(sc.consumers.work_ns, 0);
	ck_assert(sc.faults.commit_ok_loss == 0 && sc.faults.confirm_loss == 0 && sc.faults.ack_loss == 0);
	ck_assert_int_eq(sc.faults.on_loss, RULE_THEN_CLOSE);
	ck_assert_uint_eq(sc.faults.rule_count, 0);
	ck_assert_ptr_null(sc.faults.rules);
	ck_assert_uint_eq(sc.faults.schedule_count, 0);
	ck_assert_ptr_null(sc.faults.schedules);
	ck_assert_uint_eq(sc.faults.warmup_ns, 0);
	ck_assert_uint_eq(sc.faults.cooldown_ns, 0);
	ck_assert_uint_eq(sc.faults.broker_crash_every_ns, 0);
	ck_assert_uint_eq(sc.faults.broker_down_ns, 2 * SEC);
	ck_assert(sc.faults.consumer_crash == 0);
	ck_assert_int_eq(sc.faults.consumer_crash_at, SCENARIO_CRASH_AFTER_MARK);
	ck_assert_int_eq(sc.dedup.store, SCENARIO_STORE_MEMORY);
	ck_assert_int_eq(sc.dedup.scope, SCENARIO_SCOPE_SHARED);
	ck_assert_uint_eq(sc.dedup.ttl_ns, 0);
	ck_assert_uint_eq(sc.dedup.capacity, 0);
	ck_assert_int_eq(sc.dedup.check, SCENARIO_CHECK_ALWAYS);
	ck_assert_int_eq(sc.dedup.mark, SCENARIO_MARK_AFTER);
	ck_assert_str_eq(sc.dedup.url, "embedded");
	ck_assert(!sc.dedup.sync);
	ck_assert_int_eq(scenario_check(&sc, err, sizeof(err)), 0);
	ck_assert_int_eq(scenario_rules(&sc, &rules, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(rules);
	assert_round_trip(&sc);
	scenario_release(&sc);
}
END_TEST

START_TEST(test_default_name)
{
	static const struct {
		const char *path, *name;
	} cases[] = {
		{ NULL, "scenario" },
		{ "", "scenario" },
		{ "dir/", "scenario" },
		{ "default.ini", "default" },
		{ "/a/b/ttl-too-short.ini", "ttl-too-short" },
		{ "/x/my run.v2.ini", "my_run.v2" },
		{ "noext", "noext" },
		{ ".hidden", "_hidden" },
		{ "-dash.ini", "_dash" },
		{ "caf\xc3\xa9.ini", "caf__" },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.ini",
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" },
	};
	struct scenario sc;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[256];

		scenario_init_defaults(&sc, cases[i].path);
		ck_assert_str_eq(sc.run.name, cases[i].name);
		/* the default name is always a valid name */
		ck_assert_int_eq(scenario_check(&sc, err, sizeof(err)), 0);
		assert_round_trip(&sc);
		scenario_release(&sc);
	}
}
END_TEST

START_TEST(test_units)
{
	static const char text[] = "[run]\n"
				   "drain_timeout = 5m\n"
				   "[publishers]\n"
				   "timeout = 500ms\n"
				   "[consumers]\n"
				   "work = 250us\n"
				   "[faults]\n"
				   "commit_ok_loss = 1%\n"
				   "ack_loss = 0.005\n"
				   "broker_crash_every = 1.5s\n"
				   "broker_down = 0\n"
				   "consumer_crash = 0.5%\n"
				   "[dedup]\n"
				   "ttl = 1h\n";
	struct scenario sc;
	char path[64], err[1024];

	ck_assert_msg(load_text(&sc, text, path, sizeof(path), err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(sc.run.drain_timeout_ns, 300 * SEC);
	ck_assert_uint_eq(sc.publishers.timeout_ns, 500 * MS);
	ck_assert_uint_eq(sc.consumers.work_ns, 250000);
	ck_assert(sc.faults.commit_ok_loss == 0.01);
	ck_assert(sc.faults.ack_loss == 0.005);
	ck_assert_uint_eq(sc.faults.broker_crash_every_ns, 1500 * MS);
	ck_assert_uint_eq(sc.faults.broker_down_ns, 0);
	ck_assert(fabs(sc.faults.consumer_crash - 0.005) < 1e-15);
	ck_assert_uint_eq(sc.dedup.ttl_ns, 3600 * SEC);
	assert_round_trip(&sc);
	scenario_release(&sc);
}
END_TEST

START_TEST(test_duration_resolution)
{
	struct scenario sc;
	char err[256];

	scenario_init_defaults(&sc, NULL);
	ck_assert_int_eq(scenario_set(&sc, "consumers.work=1.5us", err, sizeof(err)), 0);
	ck_assert_uint_eq(sc.consumers.work_ns, 2000);
	ck_assert_int_eq(scenario_set(&sc, "consumers.work=1.0000004s", err, sizeof(err)), 0);
	ck_assert_uint_eq(sc.consumers.work_ns, SEC);
	ck_assert_int_eq(scenario_set(&sc, "consumers.work=0.0004ms", err, sizeof(err)), 0);
	ck_assert_uint_eq(sc.consumers.work_ns, 0);
	ck_assert_int_eq(scenario_set(&sc, "dedup.ttl=999h", err, sizeof(err)), 0);
	ck_assert_int_eq(scenario_set(&sc, "publishers.timeout=1.234567s", err, sizeof(err)), 0);
	ck_assert_uint_eq(sc.publishers.timeout_ns, 1234567000);
	assert_round_trip(&sc);
	scenario_release(&sc);
}
END_TEST

/* Every key away from its default, with comments, blanks, CRLF and `key: value`. */
static const char all_keys[] = "; a comment\r\n"
			       "# another\n"
			       "\n"
			       "[run]\n"
			       "name = all-keys_1.0\n"
			       "messages = 1234\n"
			       "seed = 18446744073709551615\n"
			       "drain_timeout = 90s ; inline comment\n"
			       "[broker]\r\n"
			       "url = amqp://user:pass@localhost:5673/vh\r\n"
			       "queue = q.1:x-y_z\n"
			       "queue_type = quorum\n"
			       "keep_queue = yes\n"
			       "[publishers]\n"
			       "count = 7\n"
			       "mode = confirm\n"
			       "batch = 33\n"
			       "rate: 500\n"
			       "size = 0\n"
			       "timeout = 750ms\n"
			       "[consumers]\n"
			       "count = 3\n"
			       "prefetch = 0\n"
			       "ack_every = 500\n"
			       "work = 3ms\n"
			       "[faults]\n"
			       "confirm_loss = 2.5%\n"
			       "ack_loss = 0.125\n"
			       "on_loss = hang\n"
			       "rule = drop tx.commit-ok from=broker p=0.3 after=2\n"
			       "rule = cut basic.ack from=client p=10%\n"
			       "broker_crash_every = 0\n"
			       "broker_down = 5s\n"
			       "consumer_crash = 0.001\n"
			       "consumer_crash_at = before-mark\n"
			       "[dedup]\n"
			       "store = redis\n"
			       "scope = local\n"
			       "ttl = 10s\n"
			       "capacity = 0\n"
			       "check = republish-count\n"
			       "mark = before\n"
			       "url = redis://127.0.0.1:6390\n"
			       "sync = false\n";

START_TEST(test_all_keys)
{
	struct scenario sc;
	char path[64], err[1024];

	ck_assert_msg(load_text(&sc, all_keys, path, sizeof(path), err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(scenario_check(&sc, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(sc.path, path);
	ck_assert_str_eq(sc.run.name, "all-keys_1.0");
	ck_assert_uint_eq(sc.run.messages, 1234);
	ck_assert_uint_eq(sc.run.seed, UINT64_MAX);
	ck_assert_uint_eq(sc.run.drain_timeout_ns, 90 * SEC);
	ck_assert_str_eq(sc.broker.url, "amqp://user:pass@localhost:5673/vh");
	ck_assert_str_eq(sc.broker.queue, "q.1:x-y_z");
	ck_assert_int_eq(sc.broker.queue_type, SCENARIO_QUEUE_QUORUM);
	ck_assert(sc.broker.keep_queue);
	ck_assert_uint_eq(sc.publishers.count, 7);
	ck_assert_int_eq(sc.publishers.mode, SCENARIO_MODE_CONFIRM);
	ck_assert_uint_eq(sc.publishers.batch, 33);
	ck_assert_uint_eq(sc.publishers.rate, 500);
	ck_assert_uint_eq(sc.publishers.size, 0);
	ck_assert_uint_eq(sc.publishers.timeout_ns, 750 * MS);
	ck_assert_uint_eq(sc.consumers.count, 3);
	ck_assert_uint_eq(sc.consumers.prefetch, 0);
	ck_assert_uint_eq(sc.consumers.ack_every, 500);
	ck_assert_uint_eq(sc.consumers.work_ns, 3 * MS);
	ck_assert(sc.faults.confirm_loss == 0.025);
	ck_assert(sc.faults.ack_loss == 0.125);
	ck_assert_int_eq(sc.faults.on_loss, RULE_THEN_HANG);
	ck_assert_uint_eq(sc.faults.rule_count, 2);
	ck_assert_str_eq(sc.faults.rules[0].text, "drop tx.commit-ok from=broker p=0.3 after=2");
	ck_assert_str_eq(sc.faults.rules[1].text, "cut basic.ack from=client p=0.1");
	ck_assert_uint_eq(sc.faults.broker_down_ns, 5 * SEC);
	ck_assert(sc.faults.consumer_crash == 0.001);
	ck_assert_int_eq(sc.faults.consumer_crash_at, SCENARIO_CRASH_BEFORE_MARK);
	ck_assert_int_eq(sc.dedup.store, SCENARIO_STORE_REDIS);
	ck_assert_int_eq(sc.dedup.scope, SCENARIO_SCOPE_LOCAL);
	ck_assert_uint_eq(sc.dedup.ttl_ns, 10 * SEC);
	ck_assert_uint_eq(sc.dedup.capacity, 0); /* redis has no key-count bound */
	ck_assert_int_eq(sc.dedup.check, SCENARIO_CHECK_REPUBLISH_COUNT);
	ck_assert_int_eq(sc.dedup.mark, SCENARIO_MARK_BEFORE);
	ck_assert_str_eq(sc.dedup.url, "redis://127.0.0.1:6390");
	ck_assert(!sc.dedup.sync);
	assert_round_trip(&sc);
	scenario_release(&sc);
}
END_TEST

START_TEST(test_other_values)
{
	static const char text[] = "\xEF\xBB\xBF[run]\n" /* UTF-8 BOM */
				   "  messages = 5\n"	   /* indented, but no key above it */
				   "[dedup]\n"
				   "store = tokyocabinet\n"
				   "sync = on\n"
				   "check = flagged\n"
				   "[faults]\n"
				   "consumer_crash_at = after-process\n"
				   "[publishers]\n"
				   "mode = tx\n"
				   "[broker]\n"
				   "queue_type = classic\n"
				   "[dedup]\n" /* a section may come back */
				   "scope = shared\n"
				   "mark = after\n";
	struct scenario sc;
	char path[64], err[1024];

	ck_assert_msg(load_text(&sc, text, path, sizeof(path), err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(scenario_check(&sc, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(sc.run.messages, 5);
	ck_assert_int_eq(sc.dedup.store, SCENARIO_STORE_TOKYOCABINET);
	ck_assert(sc.dedup.sync);
	ck_assert_int_eq(sc.dedup.check, SCENARIO_CHECK_FLAGGED);
	ck_assert_int_eq(sc.faults.consumer_crash_at, SCENARIO_CRASH_AFTER_PROCESS);
	assert_round_trip(&sc);
	scenario_release(&sc);

	ck_assert_msg(load_text(&sc, "[dedup]\nstore = none\n", path, sizeof(path), err, sizeof(err)) == 0, "%s",
		      err);
	ck_assert_msg(scenario_check(&sc, err, sizeof(err)) == 0, "%s", err);
	assert_round_trip(&sc);
	scenario_release(&sc);
}
END_TEST

/* A file that scenario_load refuses: the line named, and words the message must hold. */
static const struct {
	const char *text;
	int line;
	const char *n1, *n2;
} bad_files[] = {
	/* syntax */
	{ "[run\nmessages = 1\n", 1, "'[' without a closing ']'", NULL },
	{ "[run]\nmessages 5\n", 2, "expected 'key = value'", NULL },
	{ "[run]\nmessages = 5\n  seed = 3\n", 3, "indented line continues 'messages'", "remove the leading blanks" },
	{ "[run]\n= 5\n", 2, "missing key name", NULL },
	{ "[run]\nmessages = 5\x00\n", 2, "NUL byte", NULL },
	/* sections */
	{ "[fault]\nack_loss = 1%\n", 1, "unknown section [fault]; did you mean [faults]?", NULL },
	{ "; c\n[Dedup]\n", 2, "unknown section [Dedup]; did you mean [dedup]?", NULL },
	{ "[zzz]\n", 1, "unknown section [zzz]; sections: [run], [broker], [publishers], [consumers], [faults], [dedup]",
	  NULL },
	/* keys */
	{ "[faults]\ncomit_ok_loss = 1%\n", 2,
	  "unknown key 'comit_ok_loss' in [faults]; did you mean 'commit_ok_loss'?", NULL },
	{ "[run]\nmessage = 5\n", 2, "did you mean 'messages'?", NULL },
	{ "[run]\ndrain = 5s\n", 2, "did you mean 'drain_timeout'?", NULL },
	{ "[faults]\ncount = 2\n", 2, "unknown key 'count' in [faults]; 'count' belongs in [publishers], [consumers]",
	  NULL },
	{ "[publishers]\nprefetchh = 2\n", 2, "did you mean 'prefetch' in [consumers]?", NULL },
	{ "[run]\nbogus = 1\n", 2, "keys in [run]: name, messages, seed, drain_timeout", NULL },
	{ "messages = 5\n", 1, "key 'messages' before any [section]; it belongs in [run]", NULL },
	{ "bogus = 5\n", 1, "unknown key 'bogus' before any [section]; sections: [run]", NULL },
	{ "[faults]\nack_loss = 1%\n\nack_loss = 2%\n", 4, "duplicate key 'ack_loss' in [faults]",
	  "first set on line 2" },
	{ "[dedup]\nttl = 1s\n[run]\n[dedup]\nttl = 2s\n", 5, "duplicate key 'ttl'", "line 2" },
	/* whole numbers */
	{ "[run]\nmessages =\n", 2, "run.messages: missing value; allowed: 1..1000000000", NULL },
	{ "[run]\nmessages = lots\n", 2, "'lots' is not a whole number; allowed: 1..1000000000", NULL },
	{ "[run]\nmessages = -1\n", 2, "not a whole number", NULL },
	{ "[run]\nmessages = 0\n", 2, "run.messages: '0' is out of range; allowed: 1..1000000000", NULL },
	{ "[run]\nmessages = 1000000001\n", 2, "out of range", NULL },
	{ "[run]\nseed = 18446744073709551616\n", 2, "not a whole number", NULL },
	{ "[publishers]\ncount = 0\n", 2, "publishers.count: '0' is out of range; allowed: 1..1000", NULL },
	{ "[publishers]\ncount = 1001\n", 2, "allowed: 1..1000", NULL },
	{ "[publishers]\nbatch = 100001\n", 2, "allowed: 1..100000", NULL },
	{ "[publishers]\nrate = 1000001\n", 2, "allowed: 0..1000000 messages/s", NULL },
	{ "[publishers]\nsize = 134217729\n", 2, "allowed: 0..134217728 bytes", NULL },
	{ "[consumers]\ncount = 1001\n", 2, "allowed: 0..1000 (0 = publish only)", NULL },
	{ "[consumers]\nprefetch = 65536\n", 2, "allowed: 0..65535 (0 = no limit)", NULL },
	{ "[consumers]\nack_every = 0\n", 2, "consumers.ack_every: '0' is out of range", NULL },
	{ "[dedup]\ncapacity = 1000000001\n", 2, "allowed: 0..1000000000 keys", NULL },
	/* durations */
	{ "[run]\ndrain_timeout = 60\n", 2, "'60' needs a unit (250us, 500ms, 2s, 5m, 1h); allowed: 1ms..24h", NULL },
	{ "[run]\ndrain_timeout = soon\n", 2, "'soon' is not a duration", NULL },
	{ "[run]\ndrain_timeout = 5 s\n", 2, "'5 s' is not a duration", NULL },
	{ "[run]\ndrain_timeout = 0\n", 2, "'0' is out of range; allowed: 1ms..24h", NULL },
	{ "[run]\ndrain_timeout = 25h\n", 2, "out of range", NULL },
	{ "[publishers]\ntimeout = 11m\n", 2, "allowed: 1ms..10m", NULL },
	{ "[consumers]\nwork = 2m\n", 2, "allowed: 0..1m", NULL },
	{ "[faults]\nbroker_crash_every = 500ms\n", 2, "allowed: 0 (never) or 1s..24h", NULL },
	{ "[faults]\nbroker_down = 11m\n", 2, "allowed: 0..10m", NULL },
	{ "[dedup]\nttl = 1001h\n", 2, "allowed: 0..1000h (0 = never)", NULL },
	/* probabilities */
	{ "[faults]\nack_loss = 1\n", 2, "faults.ack_loss: '1' is out of range: at 1 every frame is lost", NULL },
	{ "[faults]\ncommit_ok_loss = 100%\n", 2, "out of range", NULL },
	{ "[faults]\nconfirm_loss = 1.5\n", 2, "'1.5' is not a probability; allowed: 0, or a fraction", NULL },
	{ "[faults]\nconsumer_crash = often\n", 2, "is not a probability", NULL },
	{ "[faults]\nack_loss = 1e-13\n", 2, "'1e-13' is out of range", "[1e-12, 1)" },
	{ "[faults]\nack_loss =\n", 2, "missing value; allowed: 0, or a fraction", NULL },
	/* booleans and names */
	{ "[broker]\nkeep_queue = maybe\n", 2, "'maybe' is not a boolean; allowed: true, false", NULL },
	{ "[dedup]\nsync =\n", 2, "missing value; allowed: true, false", NULL },
	{ "[publishers]\nmode = confirms\n", 2, "'confirms' is not allowed; did you mean 'confirm'? (allowed: tx, confirm)",
	  NULL },
	{ "[publishers]\nmode = async\n", 2, "'async' is not allowed; allowed: tx, confirm", NULL },
	{ "[publishers]\nmode =\n", 2, "missing value; allowed: tx, confirm", NULL },
	{ "[broker]\nqueue_type = stream\n", 2, "allowed: classic, quorum", NULL },
	{ "[faults]\non_loss = reset\n", 2, "allowed: close, hang", NULL },
	{ "[faults]\nconsumer_crash_at = after_mark\n", 2, "did you mean 'after-mark'?", NULL },
	{ "[dedup]\nstore = tokyo\n", 2, "allowed: none, memory, redis, tokyocabinet", NULL },
	{ "[dedup]\nscope = global\n", 2, "allowed: local, shared", NULL },
	{ "[dedup]\ncheck = sometimes\n", 2, "allowed: always, republish-count, flagged", NULL },
	{ "[dedup]\nmark = during\n", 2, "allowed: before, after", NULL },
	/* strings */
	{ "[run]\nname = my run\n", 2, "'my run' is not a valid run name", "A-Z a-z 0-9 . _ -" },
	{ "[run]\nname = .hidden\n", 2, "not a valid run name", NULL },
	{ "[run]\nname = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", 2, "not a valid run name",
	  NULL },
	{ "[run]\nname = a/b\n", 2, "not a valid run name", NULL },
	{ "[broker]\nqueue = amq.foo\n", 2, "reserved by RabbitMQ", NULL },
	{ "[broker]\nqueue = my queue\n", 2, "'my queue' is not a valid queue name", NULL },
	{ "[broker]\nqueue = q/1\n", 2, "not a valid queue name", NULL },
	{ "[broker]\nqueue =\n", 2, "missing value; allowed: 1 to 180", NULL },
	{ "[broker]\nurl = localhost:5672\n", 2, "'localhost:5672' is not a broker URL; allowed: embedded, amqp://", NULL },
	{ "[broker]\nurl = amqps://h:5671/\n", 2, "TLS (amqps://) is not supported", NULL },
	{ "[broker]\nurl = amqp://host:notaport/\n", 2, "is not a valid AMQP URL", NULL },
	{ "[broker]\nurl = amqp://a b/\n", 2, "is not a broker URL", NULL },
	{ "[dedup]\nurl = localhost:6379\n", 2, "is not a redis URL; allowed: embedded or redis://host:port", NULL },
	{ "[dedup]\nurl = redis://localhost\n", 2, "is not a redis URL", NULL },
	{ "[dedup]\nurl = redis://localhost:0\n", 2, "is not a redis URL", NULL },
	{ "[dedup]\nurl = redis://localhost:6379/0\n", 2, "is not a redis URL", NULL },
	/* rules */
	{ "[faults]\nrule = drop tx.comit-ok\n", 2, "faults.rule: rule 'drop tx.comit-ok'", "did you mean 'tx.commit-ok'" },
	{ "[faults]\nrule =\n", 2, "faults.rule: empty rule", NULL },
	{ "[faults]\nrule = drop basic.ack p=1e-307%\n", 2, "does not survive being written back", NULL },
	{ "[faults]\nrule = 2s-5s drop basic.ack\n", 2, "looks like a time window", "[faults] schedule" },
	/* schedules, warm-up, cool-down */
	{ "[faults]\nschedule = 20s-10s drop basic.ack\n", 2,
	  "faults.schedule: schedule '20s-10s drop basic.ack': the window 20s-10s ends before it starts",
	  "END must be after START" },
	{ "[faults]\nschedule = 10-20s drop basic.ack\n", 2, "faults.schedule: schedule '10-20s drop basic.ack': "
	  "'10-20s' is not a time window", "with a unit (500ms, 2s, 5m)" },
	{ "[faults]\nschedule = drop basic.ack p=5%\n", 2, "faults.schedule: schedule 'drop basic.ack p=5%': expected "
	  "START-END RULE", "e.g. 10s-20s drop basic.ack from=client p=5%" },
	{ "[faults]\nschedule =\n", 2, "faults.schedule: schedule '': expected START-END RULE", NULL },
	{ "[faults]\nschedule = 1s-2s drop basic.akc\n", 2, "faults.schedule: rule 'drop basic.akc'",
	  "did you mean 'basic.ack'" },
	{ "[faults]\nwarmup = 5\n", 2, "faults.warmup: '5' needs a unit", "allowed: 0..24h" },
	{ "[faults]\ncooldown = soon\n", 2, "faults.cooldown: 'soon' is not a duration", NULL },
	{ "[faults]\nwarmup = 1s\nwarmup = 2s\n", 3, "duplicate key 'warmup'", "only 'rule' and 'schedule' may repeat" },
};

START_TEST(test_bad_file)
{
	struct scenario sc;
	char path[64], err[1024];
	size_t len = strlen(bad_files[_i].text);
	FILE *f;
	int fd;

	/* written with fwrite of the full literal length, so an embedded NUL survives */
	if (strstr(bad_files[_i].n1, "NUL"))
		len = sizeof("[run]\nmessages = 5\x00\n") - 1;
	snprintf(path, sizeof(path), "/tmp/check_scenario_XXXXXX");
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	ck_assert_uint_eq(fwrite(bad_files[_i].text, 1, len, f), len);
	fclose(f);
	scenario_init_defaults(&sc, path);
	ck_assert_int_eq(scenario_load(&sc, path, err, sizeof(err)), -1);
	unlink(path);
	assert_err_at(err, path, bad_files[_i].line, bad_files[_i].n1, bad_files[_i].n2);
	scenario_release(&sc);
}
END_TEST

START_TEST(test_long_line)
{
	char text[512], path[64], err[1024];
	struct scenario sc;

	snprintf(text, sizeof(text), "[faults]\n; %0300d\n", 0);
	ck_assert_int_eq(load_text(&sc, text, path, sizeof(path), err, sizeof(err)), -1);
	assert_err_at(err, path, 2, "line longer than", "characters");
	scenario_release(&sc);

	/* the longest line inih takes is fine */
	snprintf(text, sizeof(text), "[faults]\n;%0*d\nack_loss = 1%%\n", ini_max_line - 3, 0);
	ck_assert_msg(load_text(&sc, text, path, sizeof(path), err, sizeof(err)) == 0, "%s", err);
	ck_assert(sc.faults.ack_loss == 0.01);
	scenario_release(&sc);
}
END_TEST

START_TEST(test_too_many_rules)
{
	char *text = malloc(64 * 1024), path[64], err[1024];
	struct scenario sc;
	size_t n = 0;

	n += (size_t)sprintf(text + n, "[faults]\n");
	for (int i = 0; i <= SCENARIO_RULES_MAX; i++)
		n += (size_t)sprintf(text + n, "rule = drop basic.ack from=client p=0.001\n");
	ck_assert_int_eq(load_text(&sc, text, path, sizeof(path), err, sizeof(err)), -1);
	assert_err_at(err, path, SCENARIO_RULES_MAX + 2, "too many rules; at most 256", NULL);
	scenario_release(&sc);
	free(text);
}
END_TEST

START_TEST(test_open_errors)
{
	struct scenario sc;
	char err[1024], longpath[5000];

	scenario_init_defaults(&sc, NULL);
	ck_assert_int_eq(scenario_load(&sc, "/nonexistent/x.ini", err, sizeof(err)), -1);
	assert_one_line(err);
	ck_assert_str_eq(err, "/nonexistent/x.ini: cannot open: No such file or directory");

	ck_assert_int_eq(scenario_load(&sc, "/tmp", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "/tmp: read error: Is a directory");

	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	ck_assert_int_eq(scenario_load_file(&sc, stdin, longpath, err, sizeof(err)), -1);
	assert_one_line(err);
	ck_assert_ptr_nonnull(strstr(err, "path too long"));
	scenario_release(&sc);
}
END_TEST

START_TEST(test_load_file_stream)
{
	static const char text[] = "[run]\nname = streamed\nmessages = 77\n";
	struct scenario sc;
	char err[256];
	FILE *f = fmemopen((void *)text, sizeof(text) - 1, "r");

	scenario_init_defaults(&sc, NULL);
	ck_assert_int_eq(scenario_load_file(&sc, f, "<mem>", err, sizeof(err)), 0);
	fclose(f);
	ck_assert_str_eq(sc.run.name, "streamed");
	ck_assert_uint_eq(sc.run.messages, 77);
	ck_assert_str_eq(sc.path, "<mem>");
	scenario_release(&sc);

	/* without run.name, the name follows the file loaded */
	f = fmemopen((void *)"[run]\n", 6, "r");
	scenario_init_defaults(&sc, NULL);
	ck_assert_int_eq(scenario_load_file(&sc, f, "dir/from-stream.ini", err, sizeof(err)), 0);
	fclose(f);
	ck_assert_str_eq(sc.run.name, "from-stream");
	scenario_release(&sc);
}
END_TEST

START_TEST(test_set)
{
	struct scenario sc;
	char path[64], err[1024];
	struct rule *rules;
	size_t n;

	ck_assert_int_eq(load_text(&sc, "[run]\nmessages = 100\n[faults]\nrule = drop tx.commit-ok\n", path,
				   sizeof(path), err, sizeof(err)),
			 0);
	ck_assert_int_eq(scenario_set(&sc, "run.messages=200", err, sizeof(err)), 0);
	ck_assert_uint_eq(sc.run.messages, 200);
	ck_assert_int_eq(scenario_set(&sc, "  run.messages = 300  ", err, sizeof(err)), 0);
	ck_assert_uint_eq(sc.run.messages, 300);
	ck_assert_int_eq(scenario_set(&sc, "faults.ack_loss=2%", err, sizeof(err)), 0);
	ck_assert(sc.faults.ack_loss == 0.02);
	ck_assert_int_eq(scenario_set(&sc, "dedup.ttl=5s", err, sizeof(err)), 0);
	ck_assert_uint_eq(sc.dedup.ttl_ns, 5 * SEC);
	ck_assert_int_eq(scenario_set(&sc, "run.name=from-set", err, sizeof(err)), 0);
	ck_assert_str_eq(sc.run.name, "from-set");
	/* faults.rule adds one */
	ck_assert_int_eq(scenario_set(&sc, "faults.rule=cut basic.ack from=client", err, sizeof(err)), 0);
	ck_assert_uint_eq(sc.faults.rule_count, 2);
	ck_assert_str_eq(sc.faults.rules[0].text, "drop tx.commit-ok");
	ck_assert_str_eq(sc.faults.rules[1].text, "cut basic.ack from=client");
	ck_assert_int_eq(scenario_check(&sc, err, sizeof(err)), 0);
	ck_assert_int_eq(scenario_rules(&sc, &rules, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(rules[0].text, "drop basic.ack from=client p=0.02");
	free(rules);
	assert_round_trip(&sc);
	scenario_release(&sc);
}
END_TEST

static const struct {
	const char *set;
	const char *err; /* the whole message, or its start when it ends in '*' */
} bad_sets[] = {
	{ "runmessages", "--set runmessages: expected section.key=value (e.g. faults.ack_loss=1%)" },
	{ "messages=5", "--set messages=5: expected section.key=value*" },
	{ ".messages=5", "--set .messages=5: expected section.key=value*" },
	{ "run.=5", "--set run.=5: expected section.key=value*" },
	{ "fault.ack_loss=1%", "--set fault.ack_loss: unknown section [fault]; did you mean [faults]?" },
	{ "xyz.ack_loss=1%", "--set xyz.ack_loss: unknown section [xyz]; sections: [run], [broker]*" },
	{ "faults.ackloss=1%", "--set faults.ackloss: unknown key 'ackloss' in [faults]; did you mean 'ack_loss'?" },
	{ "run.zzz=1", "--set run.zzz: unknown key 'zzz' in [run]; keys in [run]: name, messages, seed, drain_timeout" },
	{ "consumers.prefetch=70000",
	  "--set consumers.prefetch: '70000' is out of range; allowed: 0..65535 (0 = no limit)" },
	{ "faults.ack_loss=", "--set faults.ack_loss: missing value*" },
	{ "faults.rule=drop", "--set faults.rule: rule 'drop': missing METHOD*" },
};

START_TEST(test_set_errors)
{
	struct scenario sc;
	char err[1024];
	const char *want = bad_sets[_i].err;
	size_t n = strlen(want);

	scenario_init_defaults(&sc, "x.ini");
	ck_assert_int_eq(scenario_set(&sc, bad_sets[_i].set, err, sizeof(err)), -1);
	assert_one_line(err);
	if (want[n - 1] == '*')
		ck_assert_msg(strncmp(err, want, n - 1) == 0, "'%s' vs '%s'", err, want);
	else
		ck_assert_str_eq(err, want);
	scenario_release(&sc);
}
END_TEST

START_TEST(test_set_too_long)
{
	struct scenario sc;
	char big[2000], err[256];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	scenario_init_defaults(&sc, NULL);
	ck_assert_int_eq(scenario_set(&sc, big, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "--set: too long (at most 1023 characters)");
	ck_assert_int_eq(scenario_set(&sc, "faults.rule=drop basic.ack\nfoo", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "--set: control character 0x0a in the argument");
	ck_assert_int_eq(scenario_set(&sc, "faults.ack_loss=\t1%", err, sizeof(err)), 0);
	scenario_release(&sc);
}
END_TEST

START_TEST(test_long_values)
{
	struct scenario sc;
	char set[512], err[1024];

	scenario_init_defaults(&sc, NULL);
	snprintf(set, sizeof(set), "broker.queue=%0180d", 0);
	ck_assert_msg(scenario_set(&sc, set, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(strlen(sc.broker.queue), SCENARIO_STR_MAX);
	snprintf(set, sizeof(set), "broker.queue=%0181d", 0);
	ck_assert_int_eq(scenario_set(&sc, set, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "is not a valid queue name; allowed: 1 to 180"));
	snprintf(set, sizeof(set), "broker.url=amqp://h/%0*d", SCENARIO_STR_MAX - 9, 0);
	ck_assert_msg(scenario_set(&sc, set, err, sizeof(err)) == 0, "%s", err);
	snprintf(set, sizeof(set), "broker.url=amqp://h/%0*d", SCENARIO_STR_MAX - 8, 0);
	ck_assert_int_eq(scenario_set(&sc, set, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "is not a broker URL"));
	snprintf(set, sizeof(set), "dedup.url=redis://%0*d:1", SCENARIO_STR_MAX - 10, 0);
	ck_assert_msg(scenario_set(&sc, set, err, sizeof(err)) == 0, "%s", err);
	snprintf(set, sizeof(set), "dedup.url=redis://%0*d:1", SCENARIO_STR_MAX - 9, 0);
	ck_assert_int_eq(scenario_set(&sc, set, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "is not a redis URL"));
	/* the longest values still make lines inih reads back */
	ck_assert_int_eq(scenario_set(&sc, "dedup.store=redis", err, sizeof(err)), 0);
	ck_assert_int_eq(scenario_set(&sc, "faults.rule=drop connection.secure-ok from=client "
					   "p=0.123456789012345 then=hang after=18446744073709551615",
				      err, sizeof(err)),
			 0);
	assert_round_trip(&sc);
	scenario_release(&sc);
}
END_TEST

/* Files that load but cannot run; sets are applied after the file. */
static const struct {
	const char *text;
	const char *set;    /* NULL: none */
	int line;	    /* where the message points; 0: at the --set */
	const char *prefix; /* with line 0: the expected start */
	const char *n1, *n2;
} bad_combos[] = {
	{ "[consumers]\nprefetch = 10\nack_every = 20\n", NULL, 3, NULL,
	  "consumers.ack_every = 20 (line 3) exceeds consumers.prefetch = 10 (line 2)", "would stall" },
	{ "[consumers]\nack_every = 20\nprefetch = 10\n", NULL, 3, NULL, "exceeds consumers.prefetch = 10", NULL },
	{ "[consumers]\nack_every = 200\n", NULL, 2, NULL, "consumers.prefetch = 100 (the default)",
	  "allowed: ack_every <= prefetch, or prefetch = 0" },
	{ "[consumers]\nack_every = 20\n", "consumers.prefetch=5", 0, "--set consumers.prefetch: ",
	  "consumers.prefetch = 5 (--set)", NULL },
	{ "[faults]\ncommit_ok_loss = 1%\n", "publishers.mode=confirm", 0, "--set publishers.mode: ",
	  "faults.commit_ok_loss needs publishers.mode = tx", "use faults.confirm_loss" },
	{ "[publishers]\nmode = confirm\n[faults]\ncommit_ok_loss = 1%\n", NULL, 4, NULL,
	  "mode is confirm (line 2)", NULL },
	{ "[faults]\nconfirm_loss = 1%\n", NULL, 2, NULL, "faults.confirm_loss needs publishers.mode = confirm",
	  "(mode is tx (the default)" },
	{ "[consumers]\ncount = 0\n[faults]\nack_loss = 1%\n", NULL, 4, NULL, "faults.ack_loss needs consumers",
	  "consumers.count is 0 (line 2)" },
	{ "[faults]\nconsumer_crash = 1%\n", "consumers.count=0", 0, "--set consumers.count: ",
	  "faults.consumer_crash needs consumers", NULL },
	{ "[broker]\nurl = amqp://h/\n[faults]\nbroker_crash_every = 30s\n", NULL, 4, NULL,
	  "needs broker.url = embedded (url is amqp://h/ (line 2))", "kill -9" },
	{ "[faults]\nbroker_crash_every = 2s\n", NULL, 2, NULL,
	  "broker_crash_every = 2s is not longer than faults.broker_down = 2s (the default)", NULL },
	{ "[faults]\nbroker_crash_every = 10s\nbroker_down = 1m\n", NULL, 3, NULL, "broker_down = 1m (line 3)",
	  "allowed: broker_crash_every > broker_down" },
	{ "[dedup]\nstore = none\nttl = 5s\n", NULL, 3, NULL, "dedup.ttl describes a dedup store",
	  "dedup.store = none (line 2)" },
	{ "[dedup]\nstore = none\ncapacity = 5\n", NULL, 3, NULL, "dedup.capacity describes a dedup store", NULL },
	{ "[dedup]\nstore = redis\ncapacity = 5\n", NULL, 3, NULL, "dedup.capacity bounds the memory store only",
	  "store is redis (line 2)" },
	{ "[dedup]\ncapacity = 5\n", "dedup.store=tokyocabinet", 0, "--set dedup.store: ",
	  "dedup.capacity bounds the memory store only", NULL },
	{ "[dedup]\ncheck = republish-count\nstore = none\n", NULL, 3, NULL, "dedup.check describes a dedup store",
	  NULL },
	{ "[dedup]\nscope = local\n", "dedup.store=none", 0, "--set dedup.store: ",
	  "dedup.scope describes a dedup store", NULL },
	{ "[dedup]\nmark = before\nstore = none\n", NULL, 3, NULL, "dedup.mark describes a dedup store", NULL },
	{ "[dedup]\nsync = true\n", NULL, 2, NULL, "dedup.sync = true applies to store = tokyocabinet only",
	  "(store is memory (the default))" },
	{ "[dedup]\nstore = redis\nurl = redis://h:1\n", "dedup.store=memory", 0, "--set dedup.store: ",
	  "dedup.url = redis://h:1 applies to store = redis only", NULL },
	{ "[run]\ndrain_timeout = 10s\n[faults]\ncooldown = 10s\n", NULL, 4, NULL,
	  "faults.cooldown = 10s is not shorter than run.drain_timeout = 10s (line 2)",
	  "allowed: cooldown < drain_timeout" },
	{ "[faults]\ncooldown = 2s\n", "run.drain_timeout=1s", 0, "--set run.drain_timeout: ",
	  "faults.cooldown = 2s is not shorter than run.drain_timeout = 1s (--set)", NULL },
	{ "[faults]\nschedule = 1s-3s drop basic.ack from=client\nwarmup = 3s\n", NULL, 3, NULL,
	  "faults.schedule '1s-3s drop basic.ack from=client' is over before faults.warmup = 3s (line 3) ends",
	  "allowed: END after the warm-up" },
	/* [app]: the keys of dupsim's own consumers are refused, naming the app */
	{ "[app]\nconsumer = ./worker.py\n[consumers]\nprefetch = 10\n", NULL, 4, NULL,
	  "consumers.prefetch is for dupsim's own consumers, but app.consumer (line 2) makes your app consume",
	  "remove it" },
	{ "[app]\nconsumer = ./worker.py\n", "dedup.ttl=1s", 0, "--set dedup.ttl: ",
	  "dedup.ttl is for dupsim's own consumers", NULL },
	{ "[app]\nconsumer = ./worker.py\n[dedup]\nstore = tokyocabinet\n", NULL, 4, NULL,
	  "dedup.store = tokyocabinet with app.consumer (line 2)", "allowed: none, or redis" },
	{ "[app]\ninstances = 3\n", NULL, 2, NULL, "app.instances needs app.consumer", NULL },
	/* issue 13, broker timeouts */
	{ "[broker]\nurl = amqp://h/\nconsumer_timeout = 2s\n", NULL, 3, NULL,
	  "broker.consumer_timeout needs broker.url = embedded (url is amqp://h/ (line 2))", "rabbitmq.conf" },
	{ "[broker]\nconsumer_timeout = 2s\n", "broker.url=amqp://h/", 0, "--set broker.url: ",
	  "broker.consumer_timeout needs broker.url = embedded", NULL },
	{ "[consumers]\nslow = 1%\n", NULL, 2, NULL, "consumers.slow needs consumers.slow_work",
	  "it is 0 (the default)" },
	{ "[consumers]\nheartbeat = 1500ms\n", NULL, 2, NULL, "consumers.heartbeat = 1500ms is not whole seconds",
	  "allowed: 0 (none) or 1s" },
	{ "[app]\nconsumer = ./worker.py\n[consumers]\nheartbeat = 5s\n", NULL, 4, NULL,
	  "consumers.heartbeat is for dupsim's own consumers", NULL },
	/* issue 13: the store's own faults need dupsim's own redis */
	{ "[faults]\nstore_restart_every = 1s\n", NULL, 2, NULL, "faults.store_restart_every needs dupsim's own redis",
	  "store is memory" },
	{ "[dedup]\nstore = redis\nurl = redis://h:1\n[faults]\nstore_down = 1s-2s\n", NULL, 5, NULL,
	  "faults.store_down needs dupsim's own redis", "url redis://h:1" },
	{ "[dedup]\nstore = redis\nredis_maxmemory = 2mb\n", "dedup.store=memory", 0, "--set dedup.store: ",
	  "dedup.redis_maxmemory needs dupsim's own redis", NULL },
	{ "[dedup]\ntimeout = 100ms\n", NULL, 2, NULL, "dedup.timeout applies to store = redis only", NULL },
	{ "[dedup]\nstore = none\non_error = closed\n", NULL, 3, NULL, "dedup.on_error = closed describes a dedup store",
	  NULL },
	{ "[dedup]\nstore = redis\n[faults]\nwarmup = 3s\nstore_down = 1s-2s\n", NULL, 5, NULL,
	  "faults.store_down ends before faults.warmup = 3s", NULL },
	{ "[app]\nconsumer = ./worker.py\n[dedup]\non_error = closed\n", NULL, 4, NULL,
	  "dedup.on_error is for dupsim's own consumers", NULL },
	/* issue 14: hosts */
	{ "[hosts]\nstore = own\n", NULL, 2, NULL,
	  "hosts.store = own needs dupsim's own redis: dedup.store = redis and dedup.url = embedded",
	  "store is memory, url embedded (the default)" },
	{ "[dedup]\nstore = redis\nurl = redis://h:1\n[hosts]\nstore = own\n", NULL, 5, NULL,
	  "hosts.store = own needs dupsim's own redis", "url redis://h:1 (line 2)" },
	{ "[dedup]\nstore = redis\n[hosts]\nstore = own\n", "dedup.store=memory", 0, "--set dedup.store: ",
	  "hosts.store = own needs dupsim's own redis", NULL },
	{ "[dedup]\nstore = redis\n[hosts]\nstore_rtt = 1ms\n", NULL, 4, NULL,
	  "hosts.store_rtt describes the link to the store's own test host, but hosts.store = local (the default)",
	  "set hosts.store = own" },
	{ "[dedup]\nstore = redis\n[hosts]\nstore = own\nstore_rtt = 1ms\n", "hosts.store=local", 0,
	  "--set hosts.store: ", "hosts.store_rtt describes the link", NULL },
	{ "[hosts]\nstore_jitter = 1ms\n", NULL, 2, NULL, "hosts.store_jitter describes the link", NULL },
	{ "[hosts]\nstore_loss = 1%\n", NULL, 2, NULL, "hosts.store_loss describes the link", NULL },
	{ "[dedup]\nstore = redis\n[hosts]\nstore = own\nstore_rtt = 2ms\nstore_jitter = 1500us\n", NULL, 6, NULL,
	  "hosts.store_jitter = 1500us (line 6) is more than half of hosts.store_rtt = 2ms (line 5)",
	  "allowed: store_jitter <= store_rtt / 2" },
	/* issue 14: consumers on hosts of their own */
	{ "[hosts]\nconsumers = own\n", NULL, 2, NULL,
	  "hosts.consumers = own (line 2) puts each consumer on a host of its own, but dedup.store = memory",
	  "share a store over the network (dedup.store = redis or postgres), or use dedup.scope = local" },
	{ "[dedup]\nstore = redis\nurl = redis://h:1\n[hosts]\nconsumers = own\n", NULL, 5, NULL,
	  "hosts.consumers = own (line 5) needs dupsim's own redis (dedup.url = embedded), not redis://h:1", NULL },
	{ "[consumers]\ncount = 9\n[dedup]\nscope = local\n[hosts]\nconsumers = own\n", NULL, 6, NULL,
	  "makes a test host for each of 9 consumers (consumers.count); allowed: at most 8", NULL },
	{ "[app]\nconsumer = ./w\ninstances = 12\n[hosts]\nconsumers = own\n", NULL, 5, NULL,
	  "each of 12 app instances (app.instances)", NULL },
	{ "[hosts]\nconsumer_rtt = 1ms\n", NULL, 2, NULL,
	  "hosts.consumer_rtt describes the link of each consumer's own test host, but hosts.consumers = local",
	  "set hosts.consumers = own (root)" },
	{ "[hosts]\nconsumer_loss = 1%\n", NULL, 2, NULL, "hosts.consumer_loss describes the link", NULL },
	{ "[dedup]\nscope = local\n[hosts]\nconsumers = own\nconsumer_rtt = 2ms\nconsumer_jitter = 2ms\n", NULL, 6,
	  NULL, "hosts.consumer_jitter = 2ms (line 6) is more than half of hosts.consumer_rtt = 2ms (line 5)",
	  "allowed: consumer_jitter <= consumer_rtt / 2" },
};

/* issue 13, broker timeouts: the keys read, and an effective file reads back the same. */
START_TEST(test_timeout_keys)
{
	struct scenario sc;
	char path[64], err[1024];
	const char *text = "[broker]\nconsumer_timeout = 2s\n[consumers]\nslow = 0.2%\nslow_work = 3s\n"
			   "heartbeat = 5s\n[faults]\nrule = drop heartbeat from=client then=hang\n";

	ck_assert_msg(load_text(&sc, text, path, sizeof(path), err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(scenario_check(&sc, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(sc.broker.consumer_timeout_ns, 2 * SEC);
	ck_assert(fabs(sc.consumers.slow - 0.002) < 1e-12);
	ck_assert_uint_eq(sc.consumers.slow_work_ns, 3 * SEC);
	ck_assert_uint_eq(sc.consumers.heartbeat_ns, 5 * SEC);
	ck_assert_uint_eq(sc.faults.rules[0].method, RULE_METHOD_HEARTBEAT);
	assert_round_trip(&sc);
	scenario_release(&sc);
	ck_assert_int_lt(load_text(&sc, "[broker]\nconsumer_timeout = 50ms\n", path, sizeof(path), err, sizeof(err)),
			 0);
	ck_assert_msg(strstr(err, "100ms..24h"), "%s", err);
	scenario_release(&sc);
}
END_TEST

START_TEST(test_bad_combo)
{
	struct scenario sc;
	char path[64], err[1024];

	ck_assert_msg(load_text(&sc, bad_combos[_i].text, path, sizeof(path), err, sizeof(err)) == 0, "%s", err);
	if (bad_combos[_i].set)
		ck_assert_msg(scenario_set(&sc, bad_combos[_i].set, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(scenario_check(&sc, err, sizeof(err)), -1);
	if (bad_combos[_i].line) {
		assert_err_at(err, path, bad_combos[_i].line, bad_combos[_i].n1, bad_combos[_i].n2);
	} else {
		assert_one_line(err);
		ck_assert_msg(strncmp(err, bad_combos[_i].prefix, strlen(bad_combos[_i].prefix)) == 0,
			      "'%s' does not start with '%s'", err, bad_combos[_i].prefix);
		ck_assert_msg(strstr(err, bad_combos[_i].n1), "'%s' lacks '%s'", err, bad_combos[_i].n1);
	}
	scenario_release(&sc);
}
END_TEST

START_TEST(test_check_without_file)
{
	struct scenario sc;
	char err[512];

	/* nothing set from a file: the message still says where */
	scenario_init_defaults(&sc, NULL);
	sc.consumers.ack_every = 500;
	ck_assert_int_eq(scenario_check(&sc, err, sizeof(err)), -1);
	ck_assert_msg(strncmp(err, "scenario: consumers.ack_every = 500 (the default)", 49) == 0, "%s", err);
	scenario_release(&sc);
}
END_TEST

START_TEST(test_combos_allowed)
{
	static const char *const ok[] = {
		"[consumers]\nprefetch = 0\nack_every = 1000\n",
		"[consumers]\nprefetch = 10\nack_every = 10\n",
		"[publishers]\nmode = confirm\n[faults]\nconfirm_loss = 1%\n",
		"[consumers]\ncount = 0\n", /* publish only, with the default memory store */
		"[faults]\nbroker_crash_every = 3s\n",
		"[faults]\nbroker_crash_every = 1s\nbroker_down = 0\n",
		"[dedup]\nstore = none\nurl = embedded\nsync = false\n",
		"[dedup]\nstore = tokyocabinet\nsync = true\n",
		"[dedup]\nstore = redis\nurl = redis://localhost:6379\n",
		"[faults]\nrule = drop tx.commit-ok from=broker p=1\n",
	};
	struct scenario sc;
	char path[64], err[1024];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ck_assert_msg(load_text(&sc, ok[i], path, sizeof(path), err, sizeof(err)) == 0, "%s", err);
		ck_assert_msg(scenario_check(&sc, err, sizeof(err)) == 0, "%s: %s", ok[i], err);
		assert_round_trip(&sc);
		scenario_release(&sc);
	}
}
END_TEST

START_TEST(test_rules_expansion)
{
	static const char text[] = "[faults]\n"
				   "commit_ok_loss = 1%\n"
				   "ack_loss = 0.5%\n"
				   "on_loss = hang\n"
				   "rule = cut tx.commit-ok from=broker after=3\n";
	struct scenario sc;
	struct rule *rules, r;
	char path[64], err[1024];
	size_t n;

	ck_assert_msg(load_text(&sc, text, path, sizeof(path), err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(scenario_rules(&sc, &rules, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(rule_parse("drop tx.commit-ok from=broker p=0.01 then=hang", &r, err, sizeof(err)), 0);
	ck_assert_str_eq(rules[0].text, r.text);
	ck_assert_int_eq(rules[0].action, RULE_DROP);
	ck_assert_uint_eq(rules[0].method, r.method);
	ck_assert_int_eq(rules[0].from, RULE_FROM_BROKER);
	ck_assert(rules[0].p == 0.01);
	ck_assert_int_eq(rules[0].then, RULE_THEN_HANG);
	ck_assert_str_eq(rules[1].text, "drop basic.ack from=client p=0.005 then=hang");
	ck_assert(rules[1].p == 0.005);
	ck_assert_str_eq(rules[2].text, "cut tx.commit-ok from=broker after=3");
	free(rules);
	scenario_release(&sc);

	/* confirm_loss: basic.ack and basic.nack from the broker, on_loss = close */
	ck_assert_msg(load_text(&sc, "[publishers]\nmode = confirm\n[faults]\nconfirm_loss = 0.02\n", path,
				sizeof(path), err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert_int_eq(scenario_rules(&sc, &rules, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(rules[0].text, "drop basic.ack from=broker p=0.02");
	ck_assert_str_eq(rules[1].text, "drop basic.nack from=broker p=0.02");
	ck_assert_int_eq(rules[0].then, RULE_THEN_CLOSE);
	ck_assert_int_eq(rules[1].then, RULE_THEN_CLOSE);
	free(rules);
	scenario_release(&sc);
}
END_TEST

/* Schedules, warm-up and cool-down: values, the proxy's rule order, --set, the round trip. */
START_TEST(test_schedule_keys)
{
	static const char text[] = "[faults]\n"
				   "warmup = 1s\n"
				   "schedule = 2s-5s drop basic.ack from=client p=2%\n"
				   "rule = cut tx.commit-ok from=broker after=3\n"
				   "schedule = 500ms-1.5m drop tx.commit-ok from=broker\n"
				   "cooldown = 1500ms\n"
				   "ack_loss = 1%\n";
	struct scenario sc;
	struct rule *rules;
	char path[64], err[1024];
	size_t n;

	ck_assert_msg(load_text(&sc, text, path, sizeof(path), err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(scenario_check(&sc, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(sc.faults.warmup_ns, SEC);
	ck_assert_uint_eq(sc.faults.cooldown_ns, 1500 * MS);
	ck_assert_uint_eq(sc.faults.rule_count, 1);
	ck_assert_uint_eq(sc.faults.schedule_count, 2);
	ck_assert_uint_eq(sc.faults.schedules[0].from_ns, 2 * SEC);
	ck_assert_uint_eq(sc.faults.schedules[0].until_ns, 5 * SEC);
	ck_assert_str_eq(sc.faults.schedules[0].text, "2s-5s drop basic.ack from=client p=0.02");
	ck_assert_uint_eq(sc.faults.schedules[1].from_ns, 500 * MS);
	ck_assert_uint_eq(sc.faults.schedules[1].until_ns, 90 * SEC);
	ck_assert_str_eq(sc.faults.schedules[1].text, "500ms-90s drop tx.commit-ok from=broker");
	/* shortcuts, rules, then schedules, whatever the order of the lines: ids don't move on a rerun */
	ck_assert_int_eq(scenario_rules(&sc, &rules, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 4);
	ck_assert_str_eq(rules[0].text, "drop basic.ack from=client p=0.01");
	ck_assert_uint_eq(rules[0].until_ns, 0);
	ck_assert_str_eq(rules[1].text, "cut tx.commit-ok from=broker after=3");
	ck_assert_uint_eq(rules[1].until_ns, 0);
	ck_assert_str_eq(rules[2].text, "2s-5s drop basic.ack from=client p=0.02");
	ck_assert_uint_eq(rules[2].from_ns, 2 * SEC);
	ck_assert_uint_eq(rules[2].until_ns, 5 * SEC);
	ck_assert_str_eq(rules[3].text, "500ms-90s drop tx.commit-ok from=broker");
	free(rules);
	assert_round_trip(&sc);

	/* --set: a schedule adds one, warmup and cooldown replace */
	ck_assert_int_eq(scenario_set(&sc, "faults.schedule=10s-20s cut basic.ack", err, sizeof(err)), 0);
	ck_assert_uint_eq(sc.faults.schedule_count, 3);
	ck_assert_str_eq(sc.faults.schedules[2].text, "10s-20s cut basic.ack");
	ck_assert_int_eq(scenario_set(&sc, "faults.warmup=3s", err, sizeof(err)), 0);
	ck_assert_uint_eq(sc.faults.warmup_ns, 3 * SEC);
	ck_assert_int_eq(scenario_set(&sc, "faults.cooldown=0", err, sizeof(err)), 0);
	ck_assert_uint_eq(sc.faults.cooldown_ns, 0);
	ck_assert_int_eq(scenario_set(&sc, "faults.schedule=9s-8s cut basic.ack", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "--set faults.schedule: schedule '9s-8s cut basic.ack': the window 9s-8s ends before it "
			      "starts; END must be after START (e.g. 10s-20s)");
	ck_assert_msg(scenario_check(&sc, err, sizeof(err)) == 0, "%s", err);
	assert_round_trip(&sc);
	scenario_release(&sc);
	ck_assert_uint_eq(sc.faults.schedule_count, 0);
	ck_assert_ptr_null(sc.faults.schedules);
}
END_TEST

/* issue 13: the keys of the store's own faults, their units, their errors, and the effective file. */
START_TEST(test_store_fault_keys)
{
	static const struct {
		const char *text, *n1;
	} bad[] = {
		{ "[dedup]\nredis_maxmemory = 2 mb\n", "not an allowed size" },
		{ "[dedup]\nredis_maxmemory = 512kb\n", "1mb..1024gb" },
		{ "[dedup]\nredis_maxmemory = 2tb\n", "not an allowed size" },
		{ "[faults]\nstore_down = 5s-3s\n", "END must be after START" },
		{ "[faults]\nstore_down = 3s\n", "is not a window" },
		{ "[faults]\nstore_down = 3-5s\n", "START and END are durations with a unit" },
		{ "[faults]\nstore_restart_every = 50ms\n", "out of range" },
		{ "[dedup]\non_error = shut\n", "allowed: open, closed" },
		{ "[dedup]\ntimeout = 0\n", "out of range" },
	};
	struct scenario sc;
	char path[64], err[1024];

	ck_assert_msg(load_text(&sc, "[faults]\nstore_restart_every = 1s\nstore_down = 1500ms-3500ms\n[dedup]\n"
				     "store = redis\nredis_maxmemory = 2mb\non_error = closed\ntimeout = 100ms\n",
				path, sizeof(path), err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(scenario_check(&sc, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(sc.store.restart_every_ns, NS_PER_S);
	ck_assert_uint_eq(sc.store.down_from_ns, 1500 * NS_PER_MS);
	ck_assert_uint_eq(sc.store.down_until_ns, 3500 * NS_PER_MS);
	ck_assert_uint_eq(sc.store.redis_maxmemory, 2 * 1024 * 1024);
	ck_assert_int_eq(sc.store.on_error, SCENARIO_ON_ERROR_CLOSED);
	ck_assert_uint_eq(sc.store.timeout_ns, 100 * NS_PER_MS);
	assert_round_trip(&sc);
	ck_assert_int_eq(scenario_set(&sc, "dedup.redis_maxmemory=1500000", err, sizeof(err)), 0);
	ck_assert_uint_eq(sc.store.redis_maxmemory, 1500000);
	ck_assert_int_eq(scenario_set(&sc, "faults.store_down=none", err, sizeof(err)), 0);
	ck_assert_uint_eq(sc.store.down_until_ns, 0);
	assert_round_trip(&sc);
	scenario_release(&sc);
	/* the defaults: open, 2 s, nothing faulty */
	scenario_init_defaults(&sc, NULL);
	ck_assert_int_eq(sc.store.on_error, SCENARIO_ON_ERROR_OPEN);
	ck_assert_uint_eq(sc.store.timeout_ns, 2 * NS_PER_S);
	ck_assert_uint_eq(sc.store.restart_every_ns + sc.store.down_until_ns + sc.store.redis_maxmemory, 0);
	scenario_release(&sc);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(load_text(&sc, bad[i].text, path, sizeof(path), err, sizeof(err)), -1);
		assert_err_at(err, path, 2, bad[i].n1, NULL);
		scenario_release(&sc);
	}
}
END_TEST

/* issue 14: the hosts keys read, write back, and refuse out-of-range values naming the key. */
START_TEST(test_hosts_keys)
{
	static const struct {
		const char *text, *n1;
	} bad[] = {
		{ "[hosts]\nstore = remote\n", "allowed: local, own" },
		{ "[hosts]\nstore_rtt = 11s\n", "0..10s (a round trip)" },
		{ "[hosts]\nstore_rtt = 4\n", "needs a unit" },
		{ "[hosts]\nstore_loss = 100%\n", "out of range" },
	};
	struct scenario sc;
	char path[64], err[1024];

	ck_assert_msg(load_text(&sc, "[dedup]\nstore = redis\nurl = embedded\n[hosts]\nstore = own\nstore_rtt = 4ms\n"
				     "store_jitter = 500us\nstore_loss = 0.1%\n",
				path, sizeof(path), err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(scenario_check(&sc, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(sc.hosts.store, SCENARIO_HOSTS_STORE_OWN);
	ck_assert_uint_eq(sc.hosts.store_rtt_ns, 4 * NS_PER_MS);
	ck_assert_uint_eq(sc.hosts.store_jitter_ns, 500 * 1000);
	ck_assert(fabs(sc.hosts.store_loss - 0.001) < 1e-15);
	assert_round_trip(&sc);
	scenario_release(&sc);
	ck_assert_msg(load_text(&sc, "[dedup]\nstore = postgres\n[hosts]\nconsumers = own\nconsumer_rtt = 3ms\n"
				     "consumer_jitter = 1ms\nconsumer_loss = 0.5%\n",
				path, sizeof(path), err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(scenario_check(&sc, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(sc.hosts.consumers, SCENARIO_HOSTS_CONSUMERS_OWN);
	ck_assert_uint_eq(sc.hosts.consumer_rtt_ns, 3 * NS_PER_MS);
	ck_assert_uint_eq(sc.hosts.consumer_jitter_ns, NS_PER_MS);
	ck_assert(fabs(sc.hosts.consumer_loss - 0.005) < 1e-15);
	assert_round_trip(&sc);
	scenario_release(&sc);
	/* the default: the store on this host, no link; the effective file still reads back */
	scenario_init_defaults(&sc, NULL);
	ck_assert_int_eq(sc.hosts.store, SCENARIO_HOSTS_STORE_LOCAL);
	ck_assert_uint_eq(sc.hosts.store_rtt_ns + sc.hosts.store_jitter_ns, 0);
	ck_assert(sc.hosts.store_loss == 0);
	assert_round_trip(&sc);
	scenario_release(&sc);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(load_text(&sc, bad[i].text, path, sizeof(path), err, sizeof(err)), -1);
		assert_err_at(err, path, 2, bad[i].n1, NULL);
		scenario_release(&sc);
	}
	/* a typo in the new section finds its key */
	ck_assert_int_eq(load_text(&sc, "[hosts]\nstore_rt = 1ms\n", path, sizeof(path), err, sizeof(err)), -1);
	assert_err_at(err, path, 2, "did you mean 'store_rtt'?", NULL);
	scenario_release(&sc);
}
END_TEST

START_TEST(test_scenarios_dir)
{
	glob_t g;
	size_t found = 0;

	ck_assert_int_eq(glob("scenarios/*.ini", 0, NULL, &g), 0);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		struct scenario sc;
		struct rule *rules;
		char err[1024];
		size_t n;

		scenario_init_defaults(&sc, g.gl_pathv[i]);
		ck_assert_msg(scenario_load(&sc, g.gl_pathv[i], err, sizeof(err)) == 0, "%s", err);
		ck_assert_msg(scenario_check(&sc, err, sizeof(err)) == 0, "%s", err);
		ck_assert_int_eq(scenario_rules(&sc, &rules, &n, err, sizeof(err)), 0);
		free(rules);
		assert_round_trip(&sc);
		scenario_release(&sc);
		found++;
	}
	globfree(&g);
	ck_assert_uint_ge(found, 6);
}
END_TEST

START_TEST(test_default_ini)
{
	struct scenario sc;
	struct rule *rules;
	char err[1024];
	size_t n;

	scenario_init_defaults(&sc, "scenarios/default.ini");
	ck_assert_msg(scenario_load(&sc, "scenarios/default.ini", err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(sc.run.name, "default");
	ck_assert_int_eq(sc.publishers.mode, SCENARIO_MODE_TX);
	ck_assert_uint_eq(sc.publishers.count, 2);
	ck_assert_uint_eq(sc.consumers.count, 2);
	ck_assert(sc.faults.commit_ok_loss == 0.01);
	ck_assert(sc.faults.ack_loss == 0.005);
	ck_assert_int_eq(sc.dedup.store, SCENARIO_STORE_MEMORY);
	ck_assert_int_eq(sc.dedup.scope, SCENARIO_SCOPE_SHARED);
	ck_assert_int_eq(scenario_rules(&sc, &rules, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 2);
	free(rules);
	scenario_release(&sc);
}
END_TEST

START_TEST(test_write_error)
{
	struct scenario sc;
	FILE *f = fopen("/dev/full", "w");

	ck_assert_ptr_nonnull(f);
	scenario_init_defaults(&sc, NULL);
	ck_assert_int_eq(scenario_write(&sc, f), -1);
	fclose(f);
	scenario_release(&sc);
}
END_TEST

/* ---- issue 13, alarms, requeues and delivery limits ---- */

/* The keys, their round trip, the window's syntax, and what each needs. */
START_TEST(test_requeue_keys)
{
	static const char text[] = "[broker]\nqueue_type = quorum\ndelivery_limit = 3\ndead_letter = true\n"
				   "[consumers]\nnack_requeue = 5%\n"
				   "[faults]\nmemory_alarm = 1500ms-4s\ndlq_replay_after = 5s\n";
	static const struct {
		const char *set, *what;
	} bad[] = {
		{ "faults.memory_alarm=4s-2s", "END must be after START" },
		{ "faults.memory_alarm=3s", "is not a window" },
		{ "faults.memory_alarm=a-b", "durations with a unit" },
		{ "consumers.nack_requeue=1", "allowed" },
	};
	struct scenario sc, def;
	char path[64], err[1024];

	ck_assert_msg(load_text(&sc, text, path, sizeof(path), err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(scenario_check(&sc, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(sc.broker.delivery_limit, 3);
	ck_assert(sc.broker.dead_letter);
	ck_assert(sc.consumers.nack_requeue == 0.05);
	ck_assert_uint_eq(sc.faults.memory_alarm_from_ns, 1500 * MS);
	ck_assert_uint_eq(sc.faults.memory_alarm_until_ns, 4 * SEC);
	ck_assert_uint_eq(sc.faults.dlq_replay_after_ns, 5 * SEC);
	assert_round_trip(&sc);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(scenario_set(&sc, bad[i].set, err, sizeof(err)), -1);
		assert_one_line(err);
		ck_assert_msg(strstr(err, bad[i].what), "'%s' lacks '%s'", err, bad[i].what);
	}
	ck_assert_int_eq(scenario_set(&sc, "faults.memory_alarm=none", err, sizeof(err)), 0);
	ck_assert_uint_eq(sc.faults.memory_alarm_until_ns, 0);
	/* what each key needs, named with where it was set */
	ck_assert_int_eq(scenario_set(&sc, "broker.queue_type=classic", err, sizeof(err)), 0);
	ck_assert_int_eq(scenario_check(&sc, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "broker.delivery_limit needs broker.queue_type = quorum"), "%s", err);
	ck_assert_int_eq(scenario_set(&sc, "broker.delivery_limit=0", err, sizeof(err)), 0);
	ck_assert_int_eq(scenario_set(&sc, "broker.dead_letter=false", err, sizeof(err)), 0);
	ck_assert_int_eq(scenario_check(&sc, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "faults.dlq_replay_after replays the dead-letter queue"), "%s", err);
	ck_assert_int_eq(scenario_set(&sc, "faults.dlq_replay_after=0", err, sizeof(err)), 0);
	ck_assert_int_eq(scenario_set(&sc, "faults.memory_alarm=1s-2s", err, sizeof(err)), 0);
	ck_assert_int_eq(scenario_set(&sc, "broker.url=amqp://h/", err, sizeof(err)), 0);
	ck_assert_int_eq(scenario_check(&sc, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "faults.memory_alarm needs broker.url = embedded"), "%s", err);
	scenario_release(&sc);
	/* the defaults: none of it */
	scenario_init_defaults(&def, NULL);
	ck_assert_uint_eq(def.broker.delivery_limit, 0);
	ck_assert(!def.broker.dead_letter);
	ck_assert(def.consumers.nack_requeue == 0);
	ck_assert_uint_eq(def.faults.memory_alarm_until_ns, 0);
	ck_assert_uint_eq(def.faults.dlq_replay_after_ns, 0);
	scenario_release(&def);
	/* [app] consumes: dupsim's nacks can't apply */
	ck_assert_msg(load_text(&sc, "[app]\nconsumer = ./w.py\n[consumers]\nnack_requeue = 1%\n", path,
				sizeof(path), err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(scenario_check(&sc, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "consumers.nack_requeue is for dupsim's own consumers"), "%s", err);
	scenario_release(&sc);
}
END_TEST

/* ---- issue 14: a cluster ---- */

/* broker.nodes and the cluster's faults: their values, the round trip, and what each needs, named. */
START_TEST(test_cluster_keys)
{
	static const char text[] = "[broker]\nnodes = 3\nqueue_type = quorum\n"
				   "[faults]\nleader_kill = 4s\npartition = 10s-14s\nbridge = 20s-24s\n";
	static const struct {
		const char *set, *what;
	} bad[] = {
		{ "broker.nodes=0", "allowed: 1..3" },
		{ "broker.nodes=4", "allowed: 1..3" },
		{ "faults.partition=14s-10s", "END must be after START" },
		{ "broker.url=amqp://a/,embedded", "a list is up to 5 amqp:// URLs" },
		{ "broker.url=amqp://a/,amqps://b/", "TLS" },
		{ "broker.url=amqp://a/,amqp://b/,amqp://c/,amqp://d/,amqp://e/,amqp://f/", "up to 5" },
	};
	struct scenario sc;
	char path[64], err[1024];

	ck_assert_msg(load_text(&sc, text, path, sizeof(path), err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(scenario_check(&sc, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(sc.cluster.nodes, 3);
	ck_assert_uint_eq(sc.cluster.leader_kill_ns, 4 * SEC);
	ck_assert_uint_eq(sc.cluster.partition_from_ns, 10 * SEC);
	ck_assert_uint_eq(sc.cluster.bridge_until_ns, 24 * SEC);
	assert_round_trip(&sc);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(scenario_set(&sc, bad[i].set, err, sizeof(err)), -1);
		assert_one_line(err);
		ck_assert_msg(strstr(err, bad[i].what), "'%s' lacks '%s'", err, bad[i].what);
	}
	/* what each needs */
	ck_assert_int_eq(scenario_set(&sc, "faults.bridge=12s-16s", err, sizeof(err)), 0);
	ck_assert_int_eq(scenario_check(&sc, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "overlaps faults.bridge"), "%s", err);
	ck_assert_int_eq(scenario_set(&sc, "faults.bridge=none", err, sizeof(err)), 0);
	ck_assert_int_eq(scenario_set(&sc, "broker.queue_type=classic", err, sizeof(err)), 0);
	ck_assert_int_eq(scenario_check(&sc, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "broker.nodes = 3 needs broker.queue_type = quorum"), "%s", err);
	ck_assert_int_eq(scenario_set(&sc, "broker.queue_type=quorum", err, sizeof(err)), 0);
	ck_assert_int_eq(scenario_set(&sc, "faults.broker_crash_every=5s", err, sizeof(err)), 0);
	ck_assert_int_eq(scenario_check(&sc, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "in a cluster use faults.leader_kill"), "%s", err);
	ck_assert_int_eq(scenario_set(&sc, "faults.broker_crash_every=0", err, sizeof(err)), 0);
	/* a cluster of the user's: a list of URLs, nodes = 1, and no fault that needs root on its hosts */
	ck_assert_int_eq(scenario_set(&sc, "broker.url=amqp://a:5672/, amqp://b:5672/,amqp://c:5672/", err,
				      sizeof(err)), 0);
	ck_assert_int_eq(scenario_check(&sc, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "broker.nodes = 3 starts a private cluster, but broker.url is"), "%s", err);
	ck_assert_int_eq(scenario_set(&sc, "broker.nodes=1", err, sizeof(err)), 0);
	ck_assert_int_eq(scenario_check(&sc, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "faults.leader_kill") && strstr(err, "needs root on their hosts"), "%s", err);
	ck_assert_int_eq(scenario_set(&sc, "faults.leader_kill=0", err, sizeof(err)), 0);
	ck_assert_int_eq(scenario_check(&sc, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "faults.partition") && strstr(err, "needs root on their hosts"), "%s", err);
	ck_assert_int_eq(scenario_set(&sc, "faults.partition=none", err, sizeof(err)), 0);
	ck_assert_msg(scenario_check(&sc, err, sizeof(err)) == 0, "%s", err);
	assert_round_trip(&sc);
	scenario_release(&sc);
}
END_TEST

Suite *scenario_suite(void)
{
	Suite *s = suite_create("scenario");
	TCase *tc = tcase_create("scenario");

	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_default_name);
	tcase_add_test(tc, test_units);
	tcase_add_test(tc, test_duration_resolution);
	tcase_add_test(tc, test_all_keys);
	tcase_add_test(tc, test_timeout_keys);
	tcase_add_test(tc, test_other_values);
	tcase_add_loop_test(tc, test_bad_file, 0, (int)(sizeof(bad_files) / sizeof(bad_files[0])));
	tcase_add_test(tc, test_long_line);
	tcase_add_test(tc, test_too_many_rules);
	tcase_add_test(tc, test_open_errors);
	tcase_add_test(tc, test_load_file_stream);
	tcase_add_test(tc, test_set);
	tcase_add_loop_test(tc, test_set_errors, 0, (int)(sizeof(bad_sets) / sizeof(bad_sets[0])));
	tcase_add_test(tc, test_set_too_long);
	tcase_add_test(tc, test_long_values);
	tcase_add_loop_test(tc, test_bad_combo, 0, (int)(sizeof(bad_combos) / sizeof(bad_combos[0])));
	tcase_add_test(tc, test_check_without_file);
	tcase_add_test(tc, test_combos_allowed);
	tcase_add_test(tc, test_rules_expansion);
	tcase_add_test(tc, test_schedule_keys);
	tcase_add_test(tc, test_scenarios_dir);
	tcase_add_test(tc, test_store_fault_keys); /* issue 13 */
	tcase_add_test(tc, test_hosts_keys);	    /* issue 14 */
	tcase_add_test(tc, test_default_ini);
	tcase_add_test(tc, test_write_error);
	suite_add_tcase(s, tc);
	tc = tcase_create("requeue");
	tcase_add_test(tc, test_requeue_keys);
	tcase_add_test(tc, test_cluster_keys);
	suite_add_tcase(s, tc);
	return s;
}
