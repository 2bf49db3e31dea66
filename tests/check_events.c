/* check_events.c — fault events: sessions, rules by port, crash folding, charges through the ledger, summaries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "truth/events.h"
#include "truth/ledger.h"
#include "tests.h"

#define MS 1000000ull

static struct events *new_events(void)
{
	struct events *ev = malloc(sizeof(*ev));
	char err[256];

	ck_assert_ptr_nonnull(ev);
	ck_assert_msg(events_init(ev, err, sizeof(err)) == 0, "%s", err);
	return ev;
}

/* The summary's unit with this id, or NULL. */
static const struct events_entry *unit_of(const struct events_summary *s, events_id id, size_t *index)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->unit[i].id == id) {
			if (index)
				*index = i;
			return &s->unit[i];
		}
	return NULL;
}

static void free_events(struct events *ev)
{
	events_release(ev);
	free(ev);
}

START_TEST(test_rule_by_port_and_close)
{
	struct events *ev = new_events();
	events_id a = events_open(ev, EVENTS_CONSUMER, 0, 1, 40001);
	events_id b = events_open(ev, EVENTS_CONSUMER, 1, 1, 40002);
	struct events_entry e;
	struct events_summary s;
	events_id c;

	ck_assert_uint_ne(a, b);
	/* the rule finds its connection by the client's port */
	events_note_rule(ev, 40002, 3, EVENTS_LOST_ACK, 20 * MS);
	ck_assert(events_peek(ev, b, &e));
	ck_assert_int_eq(e.kind, EVENTS_LOST_ACK);
	ck_assert_int_eq(e.rule, 3);
	ck_assert(events_peek(ev, a, &e));
	ck_assert_int_eq(e.kind, EVENTS_NONE);
	/* a second rule on the same (hung) connection does not overwrite the first */
	events_note_rule(ev, 40002, 4, EVENTS_RULE, 30 * MS);
	/* the consumer noticing the cut later does not overwrite what cut it; closed, it is no longer held */
	events_close(ev, b, EVENTS_CONNECTION_LOST, 25 * MS);
	ck_assert(!events_peek(ev, b, &e));
	/* an unknown port, or the port of a closed session, is ignored */
	events_note_rule(ev, 50000, 1, EVENTS_RULE, 30 * MS);
	events_note_rule(ev, 40002, 1, EVENTS_RULE, 30 * MS);
	/* a port reused by a later session points at the new one */
	events_close(ev, a, EVENTS_CONSUMER_CRASH, 31 * MS);
	c = events_open(ev, EVENTS_CONSUMER, 0, 2, 40001);
	events_note_rule(ev, 40001, 0, EVENTS_RULE, 33 * MS);
	ck_assert_int_eq(events_summarise(ev, &s), 0);
	ck_assert_int_eq(unit_of(&s, b, NULL)->kind, EVENTS_LOST_ACK);
	ck_assert_int_eq(unit_of(&s, b, NULL)->rule, 3);
	ck_assert_uint_eq(unit_of(&s, b, NULL)->end_ns, 20 * MS);
	ck_assert_int_eq(unit_of(&s, a, NULL)->kind, EVENTS_CONSUMER_CRASH);
	ck_assert_int_eq(unit_of(&s, c, NULL)->kind, EVENTS_RULE);
	ck_assert_uint_eq(s.with_dups, 0);
	events_summary_release(&s);
	events_release(ev);
	free(ev);
}
END_TEST

/*
 * The soak's creep: a table indexed by client port (256 KiB) had its pages
 * touched one by one as new connections took new ephemeral ports, so a run
 * with many reconnects grew for minutes. Sessions are found among the open
 * ones instead: what events holds is its open sessions and a write buffer.
 */
START_TEST(test_memory_by_open_sessions)
{
	struct events *ev = new_events();
	struct events_entry e;

	ck_assert_uint_lt(sizeof(struct events), 1024);
	for (uint32_t i = 0; i < 20000; i++) {
		uint16_t port = (uint16_t)(32768 + i % 28000);
		events_id id = events_open(ev, EVENTS_PUBLISHER, 0, i + 1, port);

		events_note_rule(ev, port, 0, EVENTS_LOST_COMMIT_OK, i * MS);
		ck_assert(events_peek(ev, id, &e));
		ck_assert_int_eq(e.kind, EVENTS_LOST_COMMIT_OK);
		events_close(ev, id, EVENTS_CONNECTION_LOST, i * MS + 1);
	}
	ck_assert_uint_le(ev->capopen, 16);
	free_events(ev);
}
END_TEST

START_TEST(test_crash_folds_sessions)
{
	struct events *ev = new_events();
	events_id a = events_open(ev, EVENTS_CONSUMER, 0, 1, 0), b = events_open(ev, EVENTS_PUBLISHER, 0, 1, 0);
	events_id c = events_open(ev, EVENTS_CONSUMER, 1, 1, 41000), crash;
	struct events_summary s;
	size_t ic = 0, ir = 0;

	events_note_rule(ev, 41000, 0, EVENTS_LOST_ACK, MS); /* c was cut by a rule just before */
	crash = events_note_crash(ev, 2 * MS);
	events_close(ev, a, EVENTS_CONNECTION_LOST, 3 * MS); /* noticed later: the crash ended it */
	for (int i = 0; i < 5; i++)
		events_note_dup(ev, a, (uint64_t)(i + 1) * MS);
	for (int i = 0; i < 3; i++)
		events_note_dup(ev, b, 50 * MS);
	events_note_dup(ev, c, 7 * MS);
	events_note_miss(ev, a);
	events_note_miss(ev, c);
	ck_assert_int_eq(events_summarise(ev, &s), 0);
	/* one unit for the crash (8 dups, 1 miss), one for the rule (1 dup, 1 miss); a and b are folded */
	ck_assert_ptr_null(unit_of(&s, a, NULL));
	ck_assert_ptr_null(unit_of(&s, b, NULL));
	ck_assert_ptr_nonnull(unit_of(&s, crash, &ic));
	ck_assert_ptr_nonnull(unit_of(&s, c, &ir));
	ck_assert_uint_eq(s.with_dups, 2);
	ck_assert_uint_eq(s.by_kind[EVENTS_BROKER_CRASH], 1);
	ck_assert_uint_eq(s.by_kind[EVENTS_LOST_ACK], 1);
	ck_assert_uint_eq(s.dups, 9);
	ck_assert_uint_eq(s.misses, 2);
	ck_assert_uint_eq(s.ev[ic].dups, 8);
	ck_assert_uint_eq(s.ev[ic].misses, 1);
	/* gaps by unit: the crash's 8 gaps are 1..5 ms and three of 50 ms */
	{
		uint64_t x[8], d[8];

		ck_assert_uint_le(s.n, 8);
		events_summary_above(&s, 4500, x, d); /* 4.5 ms */
		ck_assert_uint_eq(d[ic], 8);
		ck_assert_uint_eq(x[ic], 4); /* 5 ms and 3 x 50 ms */
		ck_assert_uint_eq(x[ir], 1);
	}
	{
		char *buf = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&buf, &len);

		events_write_csv(&s, f, 0, NULL, NULL);
		fclose(f);
		ck_assert_ptr_nonnull(strstr(buf, "t_s,kind,rule,connection,duplicates,misses\n"));
		ck_assert_ptr_nonnull(strstr(buf, "0.002000,broker_crash,\"\",all,8,1\n"));
		ck_assert_ptr_nonnull(strstr(buf, "0.001000,lost_ack,\"\",consumer 1 #1,1,1\n"));
		free(buf);
	}
	events_summary_release(&s);
	free_events(ev);
}
END_TEST

/*
 * A cluster's node fault folds only the sessions on its nodes; a session of
 * another node lost while the fault is on (or within its grace) is folded
 * into it too; after the grace, a lost session is an event of its own.
 */
START_TEST(test_node_fault_folds_its_nodes)
{
	struct events *ev = new_events();
	events_id on1 = events_open(ev, EVENTS_CONSUMER, 0, 1, 0), on2 = events_open(ev, EVENTS_CONSUMER, 1, 1, 0);
	events_id pub = events_open(ev, EVENTS_PUBLISHER, 0, 1, 0), late = events_open(ev, EVENTS_PUBLISHER, 1, 1, 0);
	events_id kill;
	struct events_summary s;
	size_t ik = 0;

	events_set_node(ev, on1, 1);
	events_set_node(ev, on2, 2);
	events_set_node(ev, pub, 3);
	events_set_node(ev, late, 3);
	kill = events_note_nodes(ev, EVENTS_LEADER_KILL, 1u << 0, MS);
	events_note_outage(ev, kill, EVENTS_LEADER_KILL, true, 0, MS);
	events_close(ev, pub, EVENTS_CONNECTION_LOST, 2 * MS); /* node 3's publisher timed out meanwhile */
	events_note_outage(ev, kill, EVENTS_LEADER_KILL, false, 5 * MS, 10 * MS);
	events_close(ev, late, EVENTS_CONNECTION_LOST, 20 * MS); /* past the grace: its own */
	events_note_dup(ev, on1, MS);
	events_note_dup(ev, pub, MS);
	events_note_dup(ev, on2, MS); /* node 2's consumer: untouched, still open */
	events_note_dup(ev, late, MS);
	ck_assert_int_eq(events_summarise(ev, &s), 0);
	ck_assert_ptr_null(unit_of(&s, on1, NULL));
	ck_assert_ptr_null(unit_of(&s, pub, NULL));
	ck_assert_ptr_nonnull(unit_of(&s, kill, &ik));
	ck_assert_uint_eq(s.ev[ik].dups, 2);
	ck_assert_ptr_nonnull(unit_of(&s, on2, NULL));
	ck_assert_ptr_nonnull(unit_of(&s, late, NULL));
	ck_assert_uint_eq(s.by_kind[EVENTS_LEADER_KILL], 1);
	ck_assert_uint_eq(s.by_kind[EVENTS_CONNECTION_LOST], 1);
	ck_assert_uint_eq(s.with_dups, 3);
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
	events_id c1 = events_open(ev, EVENTS_CONSUMER, 0, 1, 0), c2 = events_open(ev, EVENTS_CONSUMER, 1, 1, 0);
	events_id p1 = events_open(ev, EVENTS_PUBLISHER, 0, 1, 0);
	events_id ch;
	struct events_summary s;

	ck_assert_int_eq(ledger_init(&l, 4, NULL), 0);
	l.events = ev;
	/* message 0: delivered on c1, executed; redelivered (same copy) on c2: charged to c1 */
	ledger_note_publish(&l, 0);
	ledger_note_confirm(&l, 0);
	ch = ledger_note_delivery(&l, 0, 0, c1, 0);
	ck_assert(!ledger_note_decision(&l, 0, l.t0_ns + MS, ch));
	ledger_note_accept(&l, 0, 0, l.t0_ns + MS, 0);
	ledger_note_executed(&l, 0, 0, l.t0_ns + 2 * MS, 0, 0, true, 0);
	ch = ledger_note_delivery(&l, 0, 0, c2, 0);
	ck_assert_uint_eq(ch, c1);
	ck_assert(ledger_note_decision(&l, 0, l.t0_ns + 10 * MS, ch));
	/* message 1: copy 0 on c1, then copy 1 (republished because p1 failed) on c1: charged to p1 */
	ledger_note_publish(&l, 1);
	ledger_note_publish(&l, 1);
	ch = ledger_note_delivery(&l, 1, 0, c1, 0);
	ledger_note_decision(&l, 1, l.t0_ns + MS, ch);
	ledger_note_accept(&l, 1, 0, l.t0_ns + MS, 0);
	ledger_note_executed(&l, 1, 0, l.t0_ns + MS, 0, 0, true, 0);
	ch = ledger_note_delivery(&l, 1, 1, c1, p1);
	ck_assert_uint_eq(ch, p1);
	ck_assert(ledger_note_decision(&l, 1, l.t0_ns + 3 * MS, ch));
	/* message 2: a race: first delivery (c1) accepted, duplicate (charged to c1 via c2's
	 * redelivery) executes first; the first delivery's late execution is the miss, charged to c1 */
	ledger_note_publish(&l, 2);
	ch = ledger_note_delivery(&l, 2, 0, c1, 0);
	ledger_note_decision(&l, 2, l.t0_ns + MS, ch);
	ledger_note_accept(&l, 2, 0, l.t0_ns + MS, 0);
	ch = ledger_note_delivery(&l, 2, 0, c2, 0);
	ck_assert_uint_eq(ch, c1);
	ck_assert(ledger_note_decision(&l, 2, l.t0_ns + 2 * MS, ch));
	ledger_note_accept(&l, 2, 1, l.t0_ns + 2 * MS, 0);
	ledger_note_executed(&l, 2, 1, l.t0_ns + 3 * MS, 0, 0, true, ch);
	ledger_note_executed(&l, 2, 0, l.t0_ns + 4 * MS, 0, 0, true, 0); /* the first delivery: charge 0 */
	ck_assert_int_eq(events_summarise(ev, &s), 0);
	ck_assert_uint_eq(s.dups, 3);
	ck_assert_uint_eq(s.misses, 1);
	for (size_t i = 0; i < s.n; i++) {
		if (s.unit[i].id == c1) {
			ck_assert_uint_eq(s.ev[i].dups, 2);
			ck_assert_uint_eq(s.ev[i].misses, 1);
		} else if (s.unit[i].id == p1) {
			ck_assert_uint_eq(s.ev[i].dups, 1);
		} else {
			ck_assert_uint_eq(s.ev[i].dups, 0); /* the unattributed entry among them */
		}
	}
	ck_assert_uint_eq(s.by_kind[EVENTS_UNATTRIBUTED], 0);
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
	tcase_add_test(tc, test_node_fault_folds_its_nodes);
	tcase_add_test(tc, test_memory_by_open_sessions);
	tcase_add_test(tc, test_ledger_charges);
	tcase_add_test(tc, test_unattributed);
	suite_add_tcase(s, tc);
	return s;
}
