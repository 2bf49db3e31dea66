/* check_events.c — fault events: sessions, rules by port, crash folding, charges through the ledger, summaries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "ledger.h"
#include "tests.h"

#define MS 1000000ull

static struct events *new_events(void)
{
	struct events *ev = malloc(sizeof(*ev));

	ck_assert_ptr_nonnull(ev);
	ck_assert_int_eq(events_init(ev), 0);
	return ev;
}

static void free_events(struct events *ev)
{
	events_release(ev);
	free(ev);
}

START_TEST(test_rule_by_port_and_close)
{
	struct events *ev = new_events();
	events_id a = events_open(ev, EVENTS_CONSUMER, 0, 1, 40001, 10 * MS);
	events_id b = events_open(ev, EVENTS_CONSUMER, 1, 1, 40002, 11 * MS);
	struct events_entry *ea = events_get(ev, a), *eb = events_get(ev, b);

	ck_assert_uint_ne(a, b);
	/* the rule finds its connection by the client's port */
	events_note_rule(ev, 40002, 3, EVENTS_LOST_ACK, 20 * MS);
	ck_assert_int_eq(eb->kind, EVENTS_LOST_ACK);
	ck_assert_int_eq(eb->rule, 3);
	ck_assert_int_eq(ea->kind, EVENTS_NONE);
	/* the consumer noticing the cut later does not overwrite what cut it */
	events_close(ev, b, EVENTS_CONNECTION_LOST, 25 * MS);
	ck_assert_int_eq(eb->kind, EVENTS_LOST_ACK);
	ck_assert_uint_eq(eb->end_ns, 20 * MS);
	/* nor does a second rule on the same (hung) connection */
	events_note_rule(ev, 40002, 4, EVENTS_RULE, 30 * MS);
	ck_assert_int_eq(eb->rule, 3);
	/* an unknown port is ignored */
	events_note_rule(ev, 50000, 1, EVENTS_RULE, 30 * MS);
	/* a port reused by a later session points at the new one */
	events_close(ev, a, EVENTS_CONSUMER_CRASH, 31 * MS);
	{
		events_id c = events_open(ev, EVENTS_CONSUMER, 0, 2, 40001, 32 * MS);

		events_note_rule(ev, 40001, 0, EVENTS_RULE, 33 * MS);
		ck_assert_int_eq(events_get(ev, c)->kind, EVENTS_RULE);
		ck_assert_int_eq(ea->kind, EVENTS_CONSUMER_CRASH);
	}
	free_events(ev);
}
END_TEST

START_TEST(test_crash_folds_sessions)
{
	struct events *ev = new_events();
	_Atomic events_id open[3];
	events_id a = events_open(ev, EVENTS_CONSUMER, 0, 1, 0, 0), b = events_open(ev, EVENTS_PUBLISHER, 0, 1, 0, 0);
	events_id c = events_open(ev, EVENTS_CONSUMER, 1, 1, 41000, 0), crash;
	struct events_summary s;

	atomic_store(&open[0], a);
	atomic_store(&open[1], b);
	atomic_store(&open[2], c);
	events_note_rule(ev, 41000, 0, EVENTS_LOST_ACK, MS); /* c was cut by a rule just before */
	crash = events_note_crash(ev, open, 3, 2 * MS);
	ck_assert_uint_eq(events_unit(ev, a), crash);
	ck_assert_uint_eq(events_unit(ev, b), crash);
	ck_assert_uint_eq(events_unit(ev, c), c);
	for (int i = 0; i < 5; i++)
		events_note_dup(ev, a, (uint64_t)(i + 1) * MS);
	for (int i = 0; i < 3; i++)
		events_note_dup(ev, b, 50 * MS);
	events_note_dup(ev, c, 7 * MS);
	events_note_miss(ev, a);
	events_note_miss(ev, c);
	ck_assert_int_eq(events_summarise(ev, &s), 0);
	/* one unit for the crash (8 dups, 1 miss), one for the rule (1 dup, 1 miss) */
	ck_assert_uint_eq(s.with_dups, 2);
	ck_assert_uint_eq(s.by_kind[EVENTS_BROKER_CRASH], 1);
	ck_assert_uint_eq(s.by_kind[EVENTS_LOST_ACK], 1);
	ck_assert_uint_eq(s.dups, 9);
	ck_assert_uint_eq(s.misses, 2);
	for (size_t i = 0; i < s.n; i++) {
		if (s.unit[i] == crash) {
			ck_assert_uint_eq(s.ev[i].dups, 8);
			ck_assert_uint_eq(s.ev[i].misses, 1);
		}
	}
	/* gaps by unit: the crash's 8 gaps are 1..5 ms and three of 50 ms */
	{
		uint64_t x[8], d[8];

		ck_assert_uint_le(s.n, 8);
		events_summary_above(&s, 4500, x, d); /* 4.5 ms */
		for (size_t i = 0; i < s.n; i++) {
			if (s.unit[i] == crash) {
				ck_assert_uint_eq(d[i], 8);
				ck_assert_uint_eq(x[i], 4); /* 5 ms and 3 x 50 ms */
			} else if (s.unit[i] == c) {
				ck_assert_uint_eq(x[i], 1);
			}
		}
	}
	{
		char *buf = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&buf, &len);

		events_write_csv(ev, &s, f, 0, NULL, NULL);
		fclose(f);
		ck_assert_ptr_nonnull(strstr(buf, "t_s,kind,rule,connection,duplicates,misses\n"));
		ck_assert_ptr_nonnull(strstr(buf, "0.002000,broker_crash,\"\",all,8,1\n"));
		ck_assert_ptr_nonnull(strstr(buf, ",lost_ack,\"\",consumer 1 #1,1,1\n"));
		free(buf);
	}
	events_summary_release(&s);
	free_events(ev);
}
END_TEST

/*
 * The ledger charges each duplicate to the right session: a copy seen before
 * to the session that last delivered it, a new copy to the publisher session
 * whose failure republished it; a miss to the duplicate it pairs with.
 */
START_TEST(test_ledger_charges)
{
	struct events *ev = new_events();
	struct ledger l;
	events_id c1 = events_open(ev, EVENTS_CONSUMER, 0, 1, 0, 0), c2 = events_open(ev, EVENTS_CONSUMER, 1, 1, 0, 0);
	events_id p1 = events_open(ev, EVENTS_PUBLISHER, 0, 1, 0, 0);
	events_id ch;
	struct events_summary s;

	ck_assert_int_eq(ledger_init(&l, 4, NULL), 0);
	l.events = ev;
	/* message 0: delivered on c1, executed; redelivered (same copy) on c2: charged to c1 */
	ledger_note_publish(&l, 0);
	ledger_note_confirm(&l, 0);
	ch = ledger_note_delivery(&l, 0, 0, c1, 0);
	ck_assert(!ledger_note_decision(&l, 0, l.t0_ns + MS, ch));
	ledger_note_accept(&l, 0, 0, l.t0_ns + MS);
	ledger_note_executed(&l, 0, 0, l.t0_ns + 2 * MS, 0, 0, true, 0);
	ch = ledger_note_delivery(&l, 0, 0, c2, 0);
	ck_assert_uint_eq(ch, c1);
	ck_assert(ledger_note_decision(&l, 0, l.t0_ns + 10 * MS, ch));
	/* message 1: copy 0 on c1, then copy 1 (republished because p1 failed) on c1: charged to p1 */
	ledger_note_publish(&l, 1);
	ledger_note_publish(&l, 1);
	ch = ledger_note_delivery(&l, 1, 0, c1, 0);
	ledger_note_decision(&l, 1, l.t0_ns + MS, ch);
	ledger_note_accept(&l, 1, 0, l.t0_ns + MS);
	ledger_note_executed(&l, 1, 0, l.t0_ns + MS, 0, 0, true, 0);
	ch = ledger_note_delivery(&l, 1, 1, c1, p1);
	ck_assert_uint_eq(ch, p1);
	ck_assert(ledger_note_decision(&l, 1, l.t0_ns + 3 * MS, ch));
	/* message 2: a race: first delivery (c1) accepted, duplicate (charged to c1 via c2's
	 * redelivery) executes first; the first delivery's late execution is the miss, charged to c1 */
	ledger_note_publish(&l, 2);
	ch = ledger_note_delivery(&l, 2, 0, c1, 0);
	ledger_note_decision(&l, 2, l.t0_ns + MS, ch);
	ledger_note_accept(&l, 2, 0, l.t0_ns + MS);
	ch = ledger_note_delivery(&l, 2, 0, c2, 0);
	ck_assert_uint_eq(ch, c1);
	ck_assert(ledger_note_decision(&l, 2, l.t0_ns + 2 * MS, ch));
	ledger_note_accept(&l, 2, 1, l.t0_ns + 2 * MS);
	ledger_note_executed(&l, 2, 1, l.t0_ns + 3 * MS, 0, 0, true, ch);
	ledger_note_executed(&l, 2, 0, l.t0_ns + 4 * MS, 0, 0, true, 0); /* the first delivery: charge 0 */
	ck_assert_int_eq(events_summarise(ev, &s), 0);
	ck_assert_uint_eq(s.dups, 3);
	ck_assert_uint_eq(s.misses, 1);
	for (size_t i = 0; i < s.n; i++) {
		if (s.unit[i] == c1) {
			ck_assert_uint_eq(s.ev[i].dups, 2);
			ck_assert_uint_eq(s.ev[i].misses, 1);
		} else if (s.unit[i] == p1) {
			ck_assert_uint_eq(s.ev[i].dups, 1);
		} else {
			ck_assert_uint_eq(s.ev[i].dups, 0);
		}
	}
	ck_assert_uint_eq(atomic_load(&events_get(ev, ev->unattributed)->dups), 0);
	events_summary_release(&s);
	ledger_release(&l);
	free_events(ev);
}
END_TEST

/* A duplicate with no session to charge goes to the unattributed entry, which the summary lists. */
START_TEST(test_unattributed)
{
	struct events *ev = new_events();
	struct events_summary s;

	events_note_dup(ev, 0, MS);
	events_note_dup(ev, 12345, MS); /* an id never issued */
	ck_assert_int_eq(events_summarise(ev, &s), 0);
	ck_assert_uint_eq(s.with_dups, 1);
	ck_assert_uint_eq(s.by_kind[EVENTS_UNATTRIBUTED], 1);
	ck_assert_uint_eq(s.dups, 2);
	events_summary_release(&s);
	free_events(ev);
}
END_TEST

Suite *events_suite(void)
{
	Suite *s = suite_create("events");
	TCase *tc = tcase_create("events");

	tcase_add_test(tc, test_rule_by_port_and_close);
	tcase_add_test(tc, test_crash_folds_sessions);
	tcase_add_test(tc, test_ledger_charges);
	tcase_add_test(tc, test_unattributed);
	suite_add_tcase(s, tc);
	return s;
}
