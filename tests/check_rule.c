/* check_rule.c — fault rules: the grammar, its errors, and reproducible seeded decisions. */
#include <math.h>
#include <string.h>

#include "frame.h"
#include "rule.h"
#include "tests.h"

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
};

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

	ck_assert_int_eq(rule_parse(text, &r, NULL, 0), 0);
	ck_assert_int_eq(rule_set_init(&s, &r, 1, seed), 0);
	for (int i = 0; i < n; i++)
		out[i] = rule_set_decide(&s, i % 3 == 0 ? BASIC_ACK : COMMIT_OK, RULE_FROM_BROKER);
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
	const int n = 200000;
	int fired = 0;
	double p = 0.01, sd = sqrt(n * p * (1 - p));

	ck_assert_int_eq(rule_parse("drop tx.commit-ok from=broker p=1%", &r, NULL, 0), 0);
	ck_assert_int_eq(rule_set_init(&s, &r, 1, 1), 0);
	for (int i = 0; i < n; i++)
		fired += rule_set_decide(&s, COMMIT_OK, RULE_FROM_BROKER) == 0;
	ck_assert_uint_eq(s.matched[0], (uint64_t)n);
	ck_assert_uint_eq(s.fired[0], (uint64_t)fired);
	ck_assert_msg(fabs(fired - n * p) < 5 * sd, "fired %d of %d", fired, n);
	rule_set_release(&s);
}
END_TEST

START_TEST(test_direction_after_and_order)
{
	struct rule r[2];
	struct rule_set s;

	ck_assert_int_eq(rule_parse("drop basic.ack from=client after=3", &r[0], NULL, 0), 0);
	ck_assert_int_eq(rule_parse("cut basic.ack", &r[1], NULL, 0), 0);
	ck_assert_int_eq(rule_set_init(&s, r, 2, 1), 0);
	/* from the broker (a confirm): only the second rule matches */
	ck_assert_int_eq(rule_set_decide(&s, BASIC_ACK, RULE_FROM_BROKER), 1);
	/* from the client: the first rule waits for its 3rd match, the second fires meanwhile */
	ck_assert_int_eq(rule_set_decide(&s, BASIC_ACK, RULE_FROM_CLIENT), 1);
	ck_assert_int_eq(rule_set_decide(&s, BASIC_ACK, RULE_FROM_CLIENT), 1);
	ck_assert_int_eq(rule_set_decide(&s, BASIC_ACK, RULE_FROM_CLIENT), 0);
	ck_assert_int_eq(rule_set_decide(&s, BASIC_ACK, RULE_FROM_CLIENT), 0);
	ck_assert_int_eq(rule_set_decide(&s, COMMIT_OK, RULE_FROM_CLIENT), -1);
	ck_assert_uint_eq(s.matched[0], 4);
	ck_assert_uint_eq(s.fired[0], 2);
	ck_assert_uint_eq(s.matched[1], 5);
	ck_assert_uint_eq(s.fired[1], 3);
	rule_set_release(&s);
}
END_TEST

START_TEST(test_p_zero_never)
{
	struct rule r;
	struct rule_set s;

	ck_assert_int_eq(rule_parse("drop tx.commit-ok p=0", &r, NULL, 0), 0);
	ck_assert_int_eq(rule_set_init(&s, &r, 1, 3), 0);
	for (int i = 0; i < 10000; i++)
		ck_assert_int_eq(rule_set_decide(&s, COMMIT_OK, RULE_FROM_BROKER), -1);
	rule_set_release(&s);
}
END_TEST

Suite *rule_suite(void)
{
	Suite *s = suite_create("rule");
	TCase *tc = tcase_create("rules");

	tcase_add_test(tc, test_parse_full);
	tcase_add_loop_test(tc, test_parse_errors, 0, sizeof(bad_rules) / sizeof(bad_rules[0]));
	tcase_add_test(tc, test_parse_too_long);
	tcase_add_test(tc, test_reproducible);
	tcase_add_test(tc, test_probability);
	tcase_add_test(tc, test_direction_after_and_order);
	tcase_add_test(tc, test_p_zero_never);
	suite_add_tcase(s, tc);
	return s;
}
