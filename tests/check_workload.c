/* check_workload.c — message ids and message headers of the workload (the threads themselves run in check_run.c). */
#include <string.h>

#include "tests.h"
#include "workload/mq.h"
#include "workload/msgid.h"

static int parse(const struct msgid_space *sp, const char *id, size_t *m)
{
	return msgid_parse(sp, id, strlen(id), m);
}

START_TEST(test_msgid_round_trip)
{
	struct msgid_space sp = { .messages = 2500 };
	char buf[48];
	size_t m;

	for (uint64_t i = 0; i < 2500; i += 37) {
		msgid_format(buf, sizeof(buf), i);
		ck_assert_int_eq(parse(&sp, buf, &m), 0);
		ck_assert_uint_eq(m, i);
	}
	/* DESIGN.md: a decimal string, what users' apps see */
	ck_assert_str_eq(msgid_format(buf, sizeof(buf), 1017), "1017");
	ck_assert_str_eq(msgid_format(buf, sizeof(buf), 0), "0");
}
END_TEST

START_TEST(test_msgid_rejects)
{
	struct msgid_space sp = { .messages = 2500 };
	const char *bad[] = {
		"", "2500",	       /* past the last message */
		"-1", "+1", " 1", "1 ", "1x", "0x10", "01", "00", /* one spelling per id */
		"p1-1",		       /* the old form */
		"99999999999999999999999", /* would overflow */
	};
	size_t m = 12345;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(parse(&sp, bad[i], &m) < 0, "accepted '%s'", bad[i]);
		ck_assert_uint_eq(m, 12345); /* untouched */
	}
	/* a prefix of a longer buffer: only len bytes count */
	ck_assert_int_eq(msgid_parse(&sp, "1012junk", 4, &m), 0);
	ck_assert_uint_eq(m, 1012);
}
END_TEST

START_TEST(test_header_int)
{
	amqp_table_entry_t h[3];
	amqp_basic_properties_t p = { 0 };

	ck_assert_int_eq(mq_header_int(&p, "x-republish-count", -7), -7); /* no headers at all */
	h[0].key = amqp_cstring_bytes("x-republish-count");
	h[0].value.kind = AMQP_FIELD_KIND_U8;
	h[0].value.value.u8 = 3;
	h[1].key = amqp_cstring_bytes("x-published-ns");
	h[1].value.kind = AMQP_FIELD_KIND_I64;
	h[1].value.value.i64 = 123456789012345;
	h[2].key = amqp_cstring_bytes("x-text");
	h[2].value.kind = AMQP_FIELD_KIND_UTF8;
	h[2].value.value.bytes = amqp_cstring_bytes("12");
	p._flags = AMQP_BASIC_HEADERS_FLAG;
	p.headers.num_entries = 3;
	p.headers.entries = h;
	ck_assert_int_eq(mq_header_int(&p, "x-republish-count", 0), 3);
	ck_assert_int_eq(mq_header_int(&p, "x-published-ns", 0), 123456789012345);
	ck_assert_int_eq(mq_header_int(&p, "x-text", -1), -1);	 /* not an integer */
	ck_assert_int_eq(mq_header_int(&p, "x-republish", -1), -1); /* a prefix is not the key */
}
END_TEST

Suite *workload_suite(void)
{
	Suite *s = suite_create("workload");
	TCase *tc = tcase_create("workload");

	tcase_add_test(tc, test_msgid_round_trip);
	tcase_add_test(tc, test_msgid_rejects);
	tcase_add_test(tc, test_header_int);
	suite_add_tcase(s, tc);
	return s;
}
