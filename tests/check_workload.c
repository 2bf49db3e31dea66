/* check_workload.c — message ids, message headers, and the app's view (the threads themselves run in check_run.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/files.h"
#include "tests.h"
#include "workload/appview.h"
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

/* ---- appview: the app's ledger from the tap and the effects files ---- */

/* The owner of a client port in these tests: port 1000 + i is instance i; dead_port's process is gone. */
static uint16_t dead_port;
static int fake_owner(void *arg, uint16_t port, pid_t *pid)
{
	(void)arg;
	*pid = port == dead_port ? 0 : getpid(); /* 0: proc_alive says gone */
	return port >= 1000 && port < 1002 ? port - 1000 : -1;
}

struct av_test {
	char dir[64];
	struct ledger l;
	struct events ev;
	struct workload w;
	struct appview *v;
	struct proxy_tap tap;
};

static void av_setup(struct av_test *t)
{
	struct ledger_setup setup = { .app = true };
	char err[256];
	struct appview_config cfg;

	memset(t, 0, sizeof(*t));
	snprintf(t->dir, sizeof(t->dir), "/tmp/check-appview-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(t->dir));
	ck_assert_int_eq(ledger_init(&t->l, 10, &setup), 0);
	ck_assert_int_eq(events_init(&t->ev, err, sizeof(err)), 0);
	t->l.events = &t->ev;
	cfg = (struct appview_config){ .ledger = &t->l, .events = &t->ev, .w = &t->w, .ids = { .messages = 10 },
				       .instances = 2, .dir = t->dir, .owner = fake_owner };
	ck_assert_msg(appview_new(&t->v, &cfg, err, sizeof(err)) == 0, "%s", err);
	t->tap = appview_tap(t->v);
}

static void av_release(struct av_test *t)
{
	appview_free(t->v);
	events_release(&t->ev);
	ledger_release(&t->l);
	files_rm_rf(t->dir);
}

/* Message m reaches the app on connection conn, channel 1, with this tag. */
static void av_deliver(struct av_test *t, uint64_t conn, uint64_t tag, unsigned m)
{
	char id[24];
	amqp_basic_properties_t p = { ._flags = AMQP_BASIC_MESSAGE_ID_FLAG };

	p.message_id = amqp_cstring_bytes(msgid_format(id, sizeof(id), m));
	t->tap.delivery(t->v, &(struct proxy_delivery){ .time_ns = clock_now_ns(), .conn_id = conn, .channel = 1,
							.delivery_tag = tag, .props = &p });
}

static void av_ack(struct av_test *t, uint64_t conn, uint64_t tag)
{
	t->tap.settle(t->v, &(struct proxy_settle){ .conn_id = conn, .channel = 1, .kind = PROXY_SETTLE_ACK,
						    .delivery_tag = tag });
}

/* Instance i writes an effects line. */
static void av_effect(struct av_test *t, unsigned i, const char *line)
{
	FILE *f = fopen(appview_effects_path(t->v, i), "a");

	ck_assert_ptr_nonnull(f);
	fputs(line, f);
	fclose(f);
}

/*
 * Each fate the view can read: executed (an ack with a new effect line),
 * rejected (an ack without), abandoned (lost unsettled, no line), a late
 * effect of an unsettled delivery (judged when its instance connects again),
 * and effect lines no delivery explains or of no message of the run.
 */
START_TEST(test_appview_fates)
{
	struct av_test t;
	struct ledger_totals tot;
	struct appview_totals at;

	av_setup(&t);
	dead_port = 1001;
	t.tap.conn_open(t.v, 1, 1000); /* instance 0 */
	t.tap.conn_open(t.v, 2, 1001); /* instance 1, whose process is gone when its connection ends */
	av_deliver(&t, 1, 1, 3);
	av_effect(&t, 0, "3 done\n");
	av_ack(&t, 1, 1);		/* executed */
	av_deliver(&t, 2, 1, 3);
	av_ack(&t, 2, 1);		/* rejected: a duplicate caught */
	av_deliver(&t, 2, 2, 4);	/* abandoned: its connection ends, no effect */
	t.tap.conn_close(t.v, 2);
	av_deliver(&t, 1, 2, 4);
	av_effect(&t, 0, "4\n");
	av_ack(&t, 1, 2);		/* executed, not a duplicate: the first was never done */
	av_deliver(&t, 1, 3, 5);
	av_effect(&t, 0, "5\n");
	av_ack(&t, 1, 3);
	av_deliver(&t, 1, 4, 5);
	av_effect(&t, 0, "5\n");
	av_ack(&t, 1, 4);		/* a duplicate processed */
	av_deliver(&t, 1, 5, 6);	/* in limbo: instance 0 still runs when its connection ends */
	t.tap.conn_close(t.v, 1);
	av_effect(&t, 0, "6 late\n");
	t.tap.conn_open(t.v, 3, 1000);	/* instance 0 again: done with what it held; 6 was executed */
	av_effect(&t, 1, "7\nnot-an-id\n"); /* 7 was never delivered; the other line is no id */
	t.tap.conn_close(t.v, 3);
	appview_finish(t.v, &at);
	ledger_totals(&t.l, &tot);
	ck_assert_uint_eq(tot.deliveries, 7);
	ck_assert_uint_eq(tot.executions, 5);
	ck_assert_uint_eq(tot.duplicate_deliveries, 2);
	ck_assert_uint_eq(tot.duplicates_processed, 1);
	ck_assert_uint_eq(tot.misses[LEDGER_CAUSE_UNKNOWN_APP], 1);
	ck_assert_uint_eq(tot.wrongly_suppressed, 0);
	ck_assert_uint_eq(at.abandoned, 1);
	ck_assert_uint_eq(at.judged_late, 1);
	ck_assert_uint_eq(at.effects_unmatched, 1);
	ck_assert_uint_eq(at.effects_foreign, 1);
	ck_assert_uint_eq(at.conns, 3);
	av_release(&t);
}
END_TEST

/*
 * The bug the limbo rule fixes: a delivery left unsettled by a cut, while a
 * later delivery of the same message to the same instance writes its line,
 * must not take that line (the later one then read as rejected).
 */
START_TEST(test_appview_limbo_leaves_effect_to_later_delivery)
{
	struct av_test t;
	struct ledger_totals tot;
	struct appview_totals at;

	av_setup(&t);
	dead_port = 0;
	t.tap.conn_open(t.v, 1, 1000);
	t.tap.conn_open(t.v, 2, 1000); /* instance 0's next connection, open before the first one ends */
	av_deliver(&t, 1, 1, 2);	/* prefetched, never worked on */
	t.tap.conn_close(t.v, 1);	/* cut while instance 0 lives: limbo */
	av_deliver(&t, 2, 1, 2);	/* the redelivery, to the same instance */
	av_effect(&t, 0, "2\n");
	av_ack(&t, 2, 1);
	appview_finish(t.v, &at);
	ledger_totals(&t.l, &tot);
	ck_assert_uint_eq(tot.executions, 1);
	ck_assert_uint_eq(tot.duplicate_deliveries, 0); /* it read as executed-then-rejected */
	ck_assert_uint_eq(tot.wrongly_suppressed, 0);
	ck_assert_uint_eq(at.abandoned, 1);
	ck_assert_uint_eq(at.effects_unmatched, 0);
	av_release(&t);
}
END_TEST

Suite *workload_suite(void)
{
	Suite *s = suite_create("workload");
	TCase *tc = tcase_create("workload");

	tcase_add_test(tc, test_msgid_round_trip);
	tcase_add_test(tc, test_msgid_rejects);
	tcase_add_test(tc, test_header_int);
	tcase_add_test(tc, test_appview_fates);
	tcase_add_test(tc, test_appview_limbo_leaves_effect_to_later_delivery);
	suite_add_tcase(s, tc);
	return s;
}
