/* check_rule.c — fault rules: the grammar, its errors, and reproducible seeded decisions. */
#include <math.h>
#include <string.h>

#include "wire/frame.h"
#include "wire/rule.h"
#include "tests.h"
#include "core/clock.h"
#include "core/rng.h"

#define COMMIT_OK (90u << 16 | 21)
#define BASIC_ACK (60u << 16 | 80)

START_TEST(test_parse_full)
{
	struct rule r;
	char err[256];

	ck_assert_int_eq(rule_parse("drop tx.commit-ok from=broker p=0.01 then=hang after=3", &r, err, sizeof(err)), 0);
	ck_assert_int_eq(r.action, RULE_DROP);
	ck_assert_uint_eq(r.method, COMMIT_OK);
	ck_assert_int_eq(r.from, RULE_FROM_BROKER);
	ck_assert(fabs(r.p - 0.01) < 1e-12);
	ck_assert_int_eq(r.then, RULE_THEN_HANG);
	ck_assert_uint_eq(r.after, 3);
	ck_assert_str_eq(r.text, "drop tx.commit-ok from=broker p=0.01 then=hang after=3");

	ck_assert_int_eq(rule_parse("cut  basic.ack\tfrom=client p=50%", &r, err, sizeof(err)), 0);
	ck_assert_int_eq(r.action, RULE_CUT);
	ck_assert_uint_eq(r.method, BASIC_ACK);
	ck_assert(fabs(r.p - 0.5) < 1e-12);
	ck_assert_str_eq(r.text, "cut basic.ack from=client p=0.5");

	ck_assert_int_eq(rule_parse("drop basic.nack", &r, err, sizeof(err)), 0);
	ck_assert_int_eq(r.from, RULE_FROM_ANY);
	ck_assert(r.p == 1.0);
	ck_assert_int_eq(r.then, RULE_THEN_CLOSE);
	ck_assert_uint_eq(r.after, 1);
}
END_TEST

static const struct {
	const char *text;
	const char *needle; /* must appear in the message */
} bad_rules[] = {
	{ "", "empty rule" },
	{ "   ", "empty rule" },
	{ "delay tx.commit-ok", "allowed: drop, cut" },
	{ "drop", "missing METHOD" },
	{ "drop tx.comit-ok", "did you mean 'tx.commit-ok'" },
	{ "drop basic.akc", "did you mean 'basic.ack'" },
	{ "drop zzzzzzzzzzzzzzzz", "methods are AMQP names" },
	{ "drop tx.commit-ok from=server", "allowed: from=client, from=broker" },
	{ "drop tx.commit-ok p=1.5", "fraction in [0, 1]" },
	{ "drop tx.commit-ok p=-0.1", "fraction in [0, 1]" },
	{ "drop tx.commit-ok p=abc", "p=abc" },
	{ "drop tx.commit-ok p=150%", "fraction in [0, 1]" },
	{ "drop tx.commit-ok then=reset", "allowed: then=close, then=hang" },
	{ "drop tx.commit-ok after=0", "N >= 1" },
	{ "drop tx.commit-ok after=x", "whole number" },
	{ "drop tx.commit-ok probability=1", "unknown option 'probability'" },
	{ "drop tx.commit-ok broker", "is not an option" },
	{ "cut basic.ack then=hang", "then= applies to drop only" },
	{ "drop hearbeat from=client", "did you mean 'heartbeat'" },
};

/* METHOD heartbeat: frame type 8, a number no AMQP method has; decided like any method. */
START_TEST(test_parse_heartbeat)
{
	struct rule r, again;
	struct rule_set set;
	struct rule_conn rc;
	char err[256];

	ck_assert_int_eq(rule_parse("drop heartbeat from=client p=100% then=hang", &r, err, sizeof(err)), 0);
	ck_assert_uint_eq(r.method, RULE_METHOD_HEARTBEAT);
	ck_assert_ptr_null(frame_method_name(r.method));
	ck_assert_str_eq(rule_method_name(r.method), "heartbeat");
	ck_assert_str_eq(r.text, "drop heartbeat from=client then=hang");
	ck_assert_int_eq(rule_parse(r.text, &again, err, sizeof(err)), 0);
	ck_assert_str_eq(again.text, r.text);
	ck_assert_int_eq(rule_set_init(&set, &r, 1, 7), 0);
	ck_assert_int_eq(rule_conn_init(&rc, &set, 1), 0);
	ck_assert_int_eq(rule_set_decide(&set, &rc, RULE_METHOD_HEARTBEAT, RULE_FROM_BROKER), -1);
	ck_assert_int_eq(rule_set_decide(&set, &rc, BASIC_ACK, RULE_FROM_CLIENT), -1);
	ck_assert_int_eq(rule_set_decide(&set, &rc, RULE_METHOD_HEARTBEAT, RULE_FROM_CLIENT), 0);
	rule_conn_release(&rc);
	rule_set_release(&set);
}
END_TEST

START_TEST(test_parse_errors)
{
	struct rule r;
	char err[512] = "";

	ck_assert_int_eq(rule_parse(bad_rules[_i].text, &r, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, bad_rules[_i].needle) != NULL, "'%s' gave '%s'", bad_rules[_i].text, err);
	ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

START_TEST(test_parse_too_long)
{
	char text[600];
	struct rule r;
	char err[256];

	memset(text, 'x', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	ck_assert_int_eq(rule_parse(text, &r, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "too long"));
}
END_TEST

static void decide_seq(uint64_t seed, const char *text, int *out, int n)
{
	struct rule r;
	struct rule_set s;
	struct rule_conn rc;

	ck_assert_int_eq(rule_parse(text, &r, NULL, 0), 0);
	ck_assert_int_eq(rule_set_init(&s, &r, 1, seed), 0);
	ck_assert_int_eq(rule_conn_init(&rc, &s, 1), 0);
	for (int i = 0; i < n; i++)
		out[i] = rule_set_decide(&s, &rc, i % 3 == 0 ? BASIC_ACK : COMMIT_OK, RULE_FROM_BROKER);
	rule_conn_release(&rc);
	rule_set_release(&s);
}

START_TEST(test_reproducible)
{
	int a[3000], b[3000], c[3000];

	decide_seq(7, "drop tx.commit-ok p=0.3", a, 3000);
	decide_seq(7, "drop tx.commit-ok p=0.3", b, 3000);
	decide_seq(8, "drop tx.commit-ok p=0.3", c, 3000);
	ck_assert(memcmp(a, b, sizeof(a)) == 0);
	ck_assert(memcmp(a, c, sizeof(a)) != 0);
	for (int i = 0; i < 3000; i += 3)
		ck_assert_int_eq(a[i], -1); /* basic.ack never matches */
}
END_TEST

START_TEST(test_probability)
{
	struct rule r;
	struct rule_set s;
	struct rule_conn rc;
	const int n = 200000;
	int fired = 0;
	double p = 0.01, sd = sqrt(n * p * (1 - p));

	ck_assert_int_eq(rule_parse("drop tx.commit-ok from=broker p=1%", &r, NULL, 0), 0);
	ck_assert_int_eq(rule_set_init(&s, &r, 1, 1), 0);
	ck_assert_int_eq(rule_conn_init(&rc, &s, 1), 0);
	for (int i = 0; i < n; i++)
		fired += rule_set_decide(&s, &rc, COMMIT_OK, RULE_FROM_BROKER) == 0;
	ck_assert_uint_eq(s.matched[0], (uint64_t)n);
	ck_assert_uint_eq(s.fired[0], (uint64_t)fired);
	ck_assert_msg(fabs(fired - n * p) < 5 * sd, "fired %d of %d", fired, n);
	rule_conn_release(&rc);
	rule_set_release(&s);
}
END_TEST

START_TEST(test_direction_after_and_order)
{
	struct rule r[2];
	struct rule_set s;
	struct rule_conn rc;

	ck_assert_int_eq(rule_parse("drop basic.ack from=client after=3", &r[0], NULL, 0), 0);
	ck_assert_int_eq(rule_parse("cut basic.ack", &r[1], NULL, 0), 0);
	ck_assert_int_eq(rule_set_init(&s, r, 2, 1), 0);
	ck_assert_int_eq(rule_conn_init(&rc, &s, 1), 0);
	/* from the broker (a confirm): only the second rule matches */
	ck_assert_int_eq(rule_set_decide(&s, &rc, BASIC_ACK, RULE_FROM_BROKER), 1);
	/* from the client: the first rule waits for its 3rd match, the second fires meanwhile */
	ck_assert_int_eq(rule_set_decide(&s, &rc, BASIC_ACK, RULE_FROM_CLIENT), 1);
	ck_assert_int_eq(rule_set_decide(&s, &rc, BASIC_ACK, RULE_FROM_CLIENT), 1);
	ck_assert_int_eq(rule_set_decide(&s, &rc, BASIC_ACK, RULE_FROM_CLIENT), 0);
	ck_assert_int_eq(rule_set_decide(&s, &rc, BASIC_ACK, RULE_FROM_CLIENT), 0);
	ck_assert_int_eq(rule_set_decide(&s, &rc, COMMIT_OK, RULE_FROM_CLIENT), -1);
	ck_assert_uint_eq(s.matched[0], 4);
	ck_assert_uint_eq(s.fired[0], 2);
	ck_assert_uint_eq(s.matched[1], 5);
	ck_assert_uint_eq(s.fired[1], 3);
	rule_conn_release(&rc);
	rule_set_release(&s);
}
END_TEST

START_TEST(test_p_zero_never)
{
	struct rule r;
	struct rule_set s;
	struct rule_conn rc;

	ck_assert_int_eq(rule_parse("drop tx.commit-ok p=0", &r, NULL, 0), 0);
	ck_assert_int_eq(rule_set_init(&s, &r, 1, 3), 0);
	ck_assert_int_eq(rule_conn_init(&rc, &s, 1), 0);
	for (int i = 0; i < 10000; i++)
		ck_assert_int_eq(rule_set_decide(&s, &rc, COMMIT_OK, RULE_FROM_BROKER), -1);
	rule_conn_release(&rc);
	rule_set_release(&s);
}
END_TEST

/*
 * Per-connection decisions: three connections, each with its own frames,
 * decided in three interleavings (one after the other, round robin, random).
 * Each connection's decisions, after=N included, are the same every time;
 * the set's counters are the sums over connections.
 */
enum { IL_CONNS = 3, IL_FRAMES = 2000 };

struct il_frame {
	uint32_t method;
	enum rule_from from;
};

static void il_run(const struct rule *r, size_t nr, const struct il_frame fr[IL_CONNS][IL_FRAMES], int order,
		   int out[IL_CONNS][IL_FRAMES], uint64_t *matched, uint64_t *fired)
{
	struct rule_set s;
	struct rule_conn rc[IL_CONNS];
	size_t next[IL_CONNS] = { 0 };
	struct rng pick;

	ck_assert_int_eq(rule_set_init(&s, r, nr, 42), 0);
	for (int c = 0; c < IL_CONNS; c++) /* ordinals 1..3, as the proxy numbers its connections */
		ck_assert_int_eq(rule_conn_init(&rc[c], &s, (uint64_t)c + 1), 0);
	rng_seed(&pick, 7);
	for (int k = 0; k < IL_CONNS * IL_FRAMES; k++) {
		int c;

		if (order == 0) /* one connection after the other */
			c = k / IL_FRAMES;
		else if (order == 1) /* round robin */
			c = k % IL_CONNS;
		else /* random */
			do
				c = (int)(rng_next(&pick) % IL_CONNS);
			while (next[c] == IL_FRAMES);
		out[c][next[c]] = rule_set_decide(&s, &rc[c], fr[c][next[c]].method, fr[c][next[c]].from);
		next[c]++;
	}
	memcpy(matched, s.matched, nr * sizeof(*matched));
	memcpy(fired, s.fired, nr * sizeof(*fired));
	for (int c = 0; c < IL_CONNS; c++)
		rule_conn_release(&rc[c]);
	rule_set_release(&s);
}

START_TEST(test_per_connection_interleaving)
{
	static const char *const texts[] = { "drop basic.ack from=client p=0.3", "cut tx.commit-ok p=0.5 after=3",
					     "drop basic.ack p=0.5" };
	static struct il_frame fr[IL_CONNS][IL_FRAMES];
	static int out[3][IL_CONNS][IL_FRAMES];
	struct rule r[3];
	uint64_t matched[3][3], fired[3][3];
	struct rng g;
	int diff = 0;

	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(rule_parse(texts[i], &r[i], NULL, 0), 0);
	rng_seed(&g, 99);
	for (int c = 0; c < IL_CONNS; c++)
		for (int i = 0; i < IL_FRAMES; i++) {
			uint64_t x = rng_next(&g);

			fr[c][i].method = x % 3 == 0 ? COMMIT_OK : BASIC_ACK;
			fr[c][i].from = (x >> 8) % 2 ? RULE_FROM_CLIENT : RULE_FROM_BROKER;
		}
	for (int order = 0; order < 3; order++)
		il_run(r, 3, fr, order, out[order], matched[order], fired[order]);
	for (int order = 1; order < 3; order++) {
		ck_assert_msg(memcmp(out[order], out[0], sizeof(out[0])) == 0, "interleaving %d changed decisions", order);
		ck_assert(memcmp(matched[order], matched[0], sizeof(matched[0])) == 0);
		ck_assert(memcmp(fired[order], fired[0], sizeof(fired[0])) == 0);
	}
	/* the set counts over all connections */
	for (int i = 0; i < 3; i++) {
		uint64_t f = 0;

		for (int c = 0; c < IL_CONNS; c++)
			for (int k = 0; k < IL_FRAMES; k++)
				f += out[0][c][k] == i;
		ck_assert_uint_eq(fired[0][i], f);
		ck_assert_uint_gt(f, 0);
	}
	/* after=3 counts each connection's own commit-oks: the first two on every connection pass */
	for (int c = 0; c < IL_CONNS; c++) {
		int seen = 0;

		for (int k = 0; k < IL_FRAMES && seen < 2; k++)
			if (fr[c][k].method == COMMIT_OK) {
				ck_assert_int_eq(out[0][c][k], -1);
				seen++;
			}
	}
	/* and connections differ from each other: the same frames would not get the same decisions */
	for (int k = 0; k < IL_FRAMES; k++)
		diff += fr[0][k].method == fr[1][k].method && fr[0][k].from == fr[1][k].from &&
			out[0][0][k] != out[0][1][k];
	ck_assert_int_gt(diff, 0);
}
END_TEST

/* rule_seed: a distinct seed for each seed, rule and connection. */
START_TEST(test_rule_seed)
{
	ck_assert_uint_eq(rule_seed(1, 0, 1), rule_seed(1, 0, 1));
	ck_assert_uint_ne(rule_seed(1, 0, 1), rule_seed(2, 0, 1));
	ck_assert_uint_ne(rule_seed(1, 0, 1), rule_seed(1, 1, 1));
	ck_assert_uint_ne(rule_seed(1, 0, 1), rule_seed(1, 0, 2));
	ck_assert_uint_ne(rule_seed(1, 1, 2), rule_seed(1, 2, 1)); /* not a sum of rule and connection */
	ck_assert_uint_ne(rule_seed(0, 0, 0), 0);
}
END_TEST

/*
 * Rules change under open connections (the proxy's control API): a rule
 * added after a connection opened decides on it as if it had been there from
 * the start with the same id; removing a rule leaves the others' ids and
 * decisions; ids are never reused.
 */
START_TEST(test_add_and_remove)
{
	struct rule r[2];
	struct rule_set ref, s;
	struct rule_conn rc_ref, rc;
	uint64_t id;
	int want[400], got[400];

	ck_assert_int_eq(rule_parse("drop tx.commit-ok p=0.5", &r[0], NULL, 0), 0);
	ck_assert_int_eq(rule_parse("drop basic.ack p=0.5", &r[1], NULL, 0), 0);
	/* the reference: both rules from the start, ids 1 and 2, on connection 5 */
	ck_assert_int_eq(rule_set_init(&ref, r, 2, 9), 0);
	ck_assert_int_eq(rule_conn_init(&rc_ref, &ref, 5), 0);
	for (int i = 0; i < 400; i++)
		want[i] = rule_set_decide(&ref, &rc_ref, i % 2 ? BASIC_ACK : COMMIT_OK, RULE_FROM_BROKER);
	/* rule 2 added after the connection opened and its first 100 frames (none of them a basic.ack) */
	ck_assert_int_eq(rule_set_init(&s, r, 1, 9), 0);
	ck_assert_int_eq(rule_conn_init(&rc, &s, 5), 0);
	ck_assert_uint_eq(rc.count, 1);
	for (int i = 0; i < 100; i++)
		got[i] = rule_set_decide(&s, &rc, COMMIT_OK, RULE_FROM_BROKER);
	ck_assert_int_eq(rule_set_add(&s, &r[1], &id), 0);
	ck_assert_uint_eq(id, 2);
	/* the reference's commit-oks at even places: the first 100 commit-oks decide alike */
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(got[i], want[2 * i]);
	rule_conn_release(&rc);
	ck_assert_int_eq(rule_conn_init(&rc, &s, 5), 0); /* fresh, to replay the reference's order */
	for (int i = 0; i < 200; i++)
		got[i] = rule_set_decide(&s, &rc, i % 2 ? BASIC_ACK : COMMIT_OK, RULE_FROM_BROKER);
	ck_assert(memcmp(got, want, 200 * sizeof(*got)) == 0);
	rule_conn_release(&rc);

	/* a connection opened with rule 1 only, rule 2 added later: its acks decide as the reference's */
	rule_set_release(&s);
	ck_assert_int_eq(rule_set_init(&s, r, 1, 9), 0);
	ck_assert_int_eq(rule_conn_init(&rc, &s, 5), 0);
	ck_assert_int_eq(rule_set_add(&s, &r[1], &id), 0);
	for (int i = 0; i < 400; i++)
		got[i] = rule_set_decide(&s, &rc, i % 2 ? BASIC_ACK : COMMIT_OK, RULE_FROM_BROKER);
	ck_assert_uint_eq(rc.count, 2);
	ck_assert(memcmp(got, want, sizeof(got)) == 0);

	/* removing rule 1: rule 2 keeps its id, its place is now 0, its decisions go on as before */
	ck_assert_int_eq(rule_set_remove(&s, 1), 0);
	ck_assert_int_eq(rule_set_remove(&s, 1), -1);
	ck_assert_int_eq(rule_set_find(&s, 1), -1);
	ck_assert_int_eq(rule_set_find(&s, 2), 0);
	ck_assert_uint_eq(s.count, 1);
	for (int i = 0; i < 200; i++) {
		int w = rule_set_decide(&ref, &rc_ref, BASIC_ACK, RULE_FROM_BROKER);

		ck_assert_int_eq(rule_set_decide(&s, &rc, BASIC_ACK, RULE_FROM_BROKER), w < 0 ? -1 : 0);
		ck_assert_int_eq(rule_set_decide(&s, &rc, COMMIT_OK, RULE_FROM_BROKER), -1);
	}
	/* the removed rule keeps its counts; the next id is 3, never 1 again */
	ck_assert_uint_eq(s.matched[0], 200);
	ck_assert_int_eq(rule_set_add(&s, &r[0], &id), 0);
	ck_assert_uint_eq(id, 3);
	ck_assert_uint_eq(s.ids, 3);
	ck_assert_int_eq(rule_set_find(&s, 3), 1);
	ck_assert_uint_eq(s.matched[2], 0);
	rule_conn_release(&rc);
	rule_conn_release(&rc_ref);
	rule_set_release(&s);
	rule_set_release(&ref);
}
END_TEST

/* rule_change_p: the probability and the canonical text follow. */
START_TEST(test_change_p)
{
	struct rule r;

	ck_assert_int_eq(rule_parse("drop basic.ack from=client p=0.01", &r, NULL, 0), 0);
	rule_change_p(&r, 0.05);
	ck_assert(r.p == 0.05);
	ck_assert_str_eq(r.text, "drop basic.ack from=client p=0.05");
	rule_change_p(&r, 1);
	ck_assert_str_eq(r.text, "drop basic.ack from=client");
	rule_change_p(&r, 0);
	ck_assert_str_eq(r.text, "drop basic.ack from=client p=0");
}
END_TEST

START_TEST(test_parse_scheduled)
{
	struct rule r, back;
	char err[256];

	ck_assert_int_eq(rule_parse_scheduled("10s-20s drop basic.ack from=client p=5%", &r, err, sizeof(err)), 0);
	ck_assert_uint_eq(r.from_ns, 10 * NS_PER_S);
	ck_assert_uint_eq(r.until_ns, 20 * NS_PER_S);
	ck_assert_uint_eq(r.method, BASIC_ACK);
	ck_assert_int_eq(r.from, RULE_FROM_CLIENT);
	ck_assert_str_eq(r.text, "10s-20s drop basic.ack from=client p=0.05");
	/* the canonical text reads back to the same rule, window included */
	ck_assert_int_eq(rule_parse_scheduled(r.text, &back, err, sizeof(err)), 0);
	ck_assert_str_eq(back.text, r.text);
	ck_assert_uint_eq(back.from_ns, r.from_ns);
	ck_assert_uint_eq(back.until_ns, r.until_ns);
	rule_change_p(&r, 0.5);
	ck_assert_str_eq(r.text, "10s-20s drop basic.ack from=client p=0.5");

	ck_assert_int_eq(rule_parse_scheduled("  0-1.5s cut tx.commit-ok", &r, err, sizeof(err)), 0);
	ck_assert_uint_eq(r.from_ns, 0);
	ck_assert_uint_eq(r.until_ns, 1500 * NS_PER_MS);
	ck_assert_str_eq(r.text, "0-1500ms cut tx.commit-ok");
	ck_assert_int_eq(rule_parse_scheduled("2m-1h drop basic.ack", &r, err, sizeof(err)), 0);
	ck_assert_str_eq(r.text, "2m-60m drop basic.ack");

	/* a plain rule has no window: in force at every time */
	ck_assert_int_eq(rule_parse("drop basic.ack", &r, err, sizeof(err)), 0);
	ck_assert_uint_eq(r.until_ns, 0);
	ck_assert(rule_in_force(&r, 0) && rule_in_force(&r, UINT64_MAX));
}
END_TEST

static const struct {
	const char *text;
	const char *needle;
} bad_schedules[] = {
	{ "", "expected START-END RULE" },
	{ "drop basic.ack from=client", "expected START-END RULE" },
	{ "10-20s drop basic.ack", "'10-20s' is not a time window" },
	{ "10s-x drop basic.ack", "'10s-x' is not a time window" },
	{ "10s- drop basic.ack", "is not a time window" },
	{ "-1s-2s drop basic.ack", "is not a time window" },
	{ "20s-10s drop basic.ack", "the window 20s-10s ends before it starts" },
	{ "5s-5s drop basic.ack", "END must be after START" },
	{ "1s-2s", "empty rule" },
	{ "1s-2s drop basic.akc", "did you mean 'basic.ack'" },
	{ "1s-2s drop basic.ack p=2", "fraction in [0, 1]" },
};

START_TEST(test_parse_scheduled_errors)
{
	struct rule r;
	char err[512] = "";

	ck_assert_int_eq(rule_parse_scheduled(bad_schedules[_i].text, &r, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, bad_schedules[_i].needle) != NULL, "'%s' gave '%s'", bad_schedules[_i].text, err);
	ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

/* A window where a plain rule is expected says where windows go. */
START_TEST(test_parse_window_in_rule)
{
	struct rule r;
	char err[512] = "";

	ck_assert_int_eq(rule_parse("2s-5s drop basic.ack", &r, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "looks like a time window"));
	ck_assert_ptr_nonnull(strstr(err, "[faults] schedule"));
}
END_TEST

/* [from, until): the start is in, the end is out. */
START_TEST(test_window_bounds)
{
	struct rule r;
	struct rule_set s;
	struct rule_conn rc;

	ck_assert_int_eq(rule_parse_scheduled("2s-5s drop basic.ack from=client", &r, NULL, 0), 0);
	ck_assert(!rule_in_force(&r, 0));
	ck_assert(!rule_in_force(&r, 2 * NS_PER_S - 1));
	ck_assert(rule_in_force(&r, 2 * NS_PER_S));
	ck_assert(rule_in_force(&r, 5 * NS_PER_S - 1));
	ck_assert(!rule_in_force(&r, 5 * NS_PER_S));

	ck_assert_int_eq(rule_set_init(&s, &r, 1, 1), 0);
	ck_assert_int_eq(rule_conn_init(&rc, &s, 1), 0);
	ck_assert_int_eq(rule_set_decide_at(&s, &rc, BASIC_ACK, RULE_FROM_CLIENT, NS_PER_S), -1);
	ck_assert_int_eq(rule_set_decide(&s, &rc, BASIC_ACK, RULE_FROM_CLIENT), -1); /* at t = 0 */
	ck_assert_uint_eq(s.matched[0], 0); /* outside its window the rule does not even see the frame */
	ck_assert_int_eq(rule_set_decide_at(&s, &rc, BASIC_ACK, RULE_FROM_CLIENT, 2 * NS_PER_S), 0);
	ck_assert_int_eq(rule_set_decide_at(&s, &rc, BASIC_ACK, RULE_FROM_CLIENT, 5 * NS_PER_S - 1), 0);
	ck_assert_int_eq(rule_set_decide_at(&s, &rc, BASIC_ACK, RULE_FROM_CLIENT, 5 * NS_PER_S), -1);
	ck_assert_int_eq(rule_set_decide_at(&s, &rc, BASIC_ACK, RULE_FROM_CLIENT, 60 * NS_PER_S), -1);
	ck_assert_uint_eq(s.matched[0], 2);
	ck_assert_uint_eq(s.fired[0], 2);
	rule_conn_release(&rc);
	rule_set_release(&s);
}
END_TEST

/*
 * Frames at times spread over 0..10 s, the window 3s-7s: the decisions inside
 * are those a rule without a window makes on the inside frames alone (the
 * frames outside draw nothing and do not count for after=N), and the same
 * seed gives the same decisions again.
 */
static void decide_timed(const char *scheduled, uint64_t seed, int *out, int n, bool window)
{
	struct rule r;
	struct rule_set s;
	struct rule_conn rc;

	if (window)
		ck_assert_int_eq(rule_parse_scheduled(scheduled, &r, NULL, 0), 0);
	else
		ck_assert_int_eq(rule_parse(strchr(scheduled, ' ') + 1, &r, NULL, 0), 0);
	ck_assert_int_eq(rule_set_init(&s, &r, 1, seed), 0);
	ck_assert_int_eq(rule_conn_init(&rc, &s, 3), 0);
	for (int i = 0; i < n; i++) {
		uint64_t t = (uint64_t)i * 10 * NS_PER_S / (uint64_t)n;
		bool inside = t >= 3 * NS_PER_S && t < 7 * NS_PER_S;

		out[i] = -2; /* not asked */
		if (window)
			out[i] = rule_set_decide_at(&s, &rc, COMMIT_OK, RULE_FROM_BROKER, t);
		else if (inside)
			out[i] = rule_set_decide(&s, &rc, COMMIT_OK, RULE_FROM_BROKER);
	}
	rule_conn_release(&rc);
	rule_set_release(&s);
}

START_TEST(test_window_decisions)
{
	static const char text[] = "3s-7s drop tx.commit-ok p=0.3 after=5";
	int a[2000], b[2000], plain[2000], fired = 0;

	decide_timed(text, 11, a, 2000, true);
	decide_timed(text, 11, b, 2000, true);
	decide_timed(text, 11, plain, 2000, false);
	ck_assert(memcmp(a, b, sizeof(a)) == 0);
	for (int i = 0; i < 2000; i++) {
		if (plain[i] == -2) {
			ck_assert_msg(a[i] == -1, "frame %d lies outside the window but was hit", i);
			continue;
		}
		ck_assert_msg(a[i] == plain[i], "frame %d: %d with a window, %d on the inside frames alone", i, a[i],
			      plain[i]);
		fired += a[i] == 0;
	}
	ck_assert_int_gt(fired, 150); /* about 0.3 of the 800 inside */
	ck_assert_int_lt(fired, 330);
	/* after=5 counts inside frames: frames 600..603 (t 3.0 s ..) are spared, whatever came before */
	for (int i = 600; i < 604; i++)
		ck_assert_int_eq(a[i], -1);
}
END_TEST

Suite *rule_suite(void)
{
	Suite *s = suite_create("rule");
	TCase *tc = tcase_create("rules");

	tcase_add_test(tc, test_parse_full);
	tcase_add_test(tc, test_parse_heartbeat);
	tcase_add_loop_test(tc, test_parse_errors, 0, sizeof(bad_rules) / sizeof(bad_rules[0]));
	tcase_add_test(tc, test_parse_too_long);
	tcase_add_test(tc, test_reproducible);
	tcase_add_test(tc, test_probability);
	tcase_add_test(tc, test_direction_after_and_order);
	tcase_add_test(tc, test_p_zero_never);
	tcase_add_test(tc, test_per_connection_interleaving);
	tcase_add_test(tc, test_rule_seed);
	tcase_add_test(tc, test_add_and_remove);
	tcase_add_test(tc, test_change_p);
	tcase_add_test(tc, test_parse_scheduled);
	tcase_add_loop_test(tc, test_parse_scheduled_errors, 0, sizeof(bad_schedules) / sizeof(bad_schedules[0]));
	tcase_add_test(tc, test_parse_window_in_rule);
	tcase_add_test(tc, test_window_bounds);
	tcase_add_test(tc, test_window_decisions);
	suite_add_tcase(s, tc);
	return s;
}
