/* check_ledger.c — the ledger: counters, duplicate gaps, miss causes and their rule order, totals, invariants, threads. */
#include <pthread.h>
#include <string.h>

#include "truth/ledger.h"
#include "tests.h"
#include "core/clock.h"

#define MS NS_PER_MS

/* A ledger whose run clock starts at 0, so that tests can pass small explicit times. */
static void open_ledger(struct ledger *l, size_t n, const struct ledger_setup *p)
{
	ck_assert_int_eq(ledger_init(l, n, p), 0);
	l->t0_ns = 0;
}

static void published(struct ledger *l, size_t m, int attempts, bool confirmed)
{
	for (int i = 0; i < attempts; i++)
		ledger_note_publish(l, m);
	if (confirmed)
		ledger_note_confirm(l, m);
}

/* A delivery up to the dedup decision; returns ledger_note_decision's verdict. */
static bool arrive(struct ledger *l, size_t m, unsigned copy, uint64_t now)
{
	ledger_note_delivery(l, m, copy, 0, 0);
	return ledger_note_decision(l, m, now, 0);
}

/* A delivery accepted and executed at once by consumer c. */
static void process(struct ledger *l, size_t m, unsigned copy, unsigned c, uint64_t accept, uint64_t done)
{
	arrive(l, m, copy, accept);
	ledger_note_accept(l, m, c, accept, 0);
	ledger_note_executed(l, m, c, done, 0, 0, true, 0);
}

static uint64_t misses_total(const struct ledger *l)
{
	uint64_t n = 0;

	for (int c = 0; c < LEDGER_CAUSES; c++)
		n += l->misses[c];
	return n;
}

static void assert_clean(const struct ledger *l)
{
	char msg[512];

	ck_assert_msg(ledger_check(l, true, msg, sizeof(msg)) == 0, "violations: %s", msg);
	ck_assert_str_eq(msg, "");
}

START_TEST(test_layout_and_names)
{
	ck_assert_uint_eq(sizeof(struct ledger_msg), 48);
	ck_assert_str_eq(ledger_cause_name(LEDGER_CAUSE_EXPIRED), "expired");
	ck_assert_str_eq(ledger_cause_name(LEDGER_CAUSE_NOT_INSERTED), "not_inserted");
	ck_assert_str_eq(ledger_cause_name(LEDGER_CAUSE_OTHER_CACHE), "other_cache");
	ck_assert_str_eq(ledger_cause_name(LEDGER_CAUSE_UNEXPLAINED), "unexplained");
	ck_assert_str_eq(ledger_cause_name(LEDGER_CAUSES), "?");
	for (int c = 0; c < LEDGER_CAUSES; c++)
		ck_assert_ptr_nonnull(ledger_cause_name(c));
}
END_TEST

START_TEST(test_normal_message)
{
	struct ledger l;
	struct ledger_totals t;

	open_ledger(&l, 4, NULL);
	published(&l, 0, 1, true);
	ck_assert(!arrive(&l, 0, 0, 10 * MS));
	ledger_note_accept(&l, 0, 1, 10 * MS, 0);
	ledger_note_executed(&l, 0, 1, 15 * MS, 2 * MS, 0, true, 0);
	ledger_totals(&l, &t);
	ck_assert_uint_eq(t.messages, 4);
	ck_assert_uint_eq(t.published, 1);
	ck_assert_uint_eq(t.committed, 1);
	ck_assert_uint_eq(t.publish_attempts, 1);
	ck_assert_uint_eq(t.excess_copies, 0);
	ck_assert_uint_eq(t.deliveries, 1);
	ck_assert_uint_eq(t.decisions, 1);
	ck_assert_uint_eq(t.executions, 1);
	ck_assert_uint_eq(t.duplicate_deliveries, 0);
	ck_assert_uint_eq(t.duplicates_processed, 0);
	ck_assert_uint_eq(t.lost, 0);
	ck_assert_uint_eq(t.wrongly_suppressed, 0);
	ck_assert_uint_eq(t.processed_messages, 1);
	ck_assert_uint_eq(t.copies_hist[0], 3);
	ck_assert_uint_eq(t.copies_hist[1], 1);
	ck_assert_uint_eq(l.latency.count, 1);
	ck_assert_uint_eq(l.latency.sum, 13 * MS);
	ck_assert_uint_eq(l.gaps.count, 0);
	ck_assert_uint_eq(misses_total(&l), 0);
	assert_clean(&l);
	ledger_release(&l);
}
END_TEST

/* CommitOk lost: the batch is republished (copy 1); the store catches it, and a redelivery too. */
START_TEST(test_commit_ok_loss_caught)
{
	struct ledger l;
	struct ledger_totals t;

	open_ledger(&l, 1, NULL);
	published(&l, 0, 2, true);
	process(&l, 0, 0, 1, 10 * MS, 12 * MS);
	ck_assert(arrive(&l, 0, 1, 30 * MS));
	ledger_note_rejected(&l, 0);
	ck_assert_uint_eq(l.gaps.count, 1);
	ck_assert_uint_eq(l.gaps.sum, 20 * MS);
	ck_assert(arrive(&l, 0, 0, 40 * MS)); /* ack lost: copy 0 redelivered */
	ledger_note_rejected(&l, 0);
	ledger_totals(&l, &t);
	ck_assert_uint_eq(t.excess_copies, 1);
	ck_assert_uint_eq(t.copies_hist[2], 1);
	ck_assert_uint_eq(t.deliveries, 3);
	ck_assert_uint_eq(t.duplicate_deliveries, 2);
	ck_assert_uint_eq(t.duplicates_processed, 0);
	ck_assert_uint_eq(t.wrongly_suppressed, 0);
	ck_assert_uint_eq(t.lost, 0);
	ck_assert_uint_eq(l.gaps.count, 2);
	ck_assert_uint_eq(l.gaps.sum, 50 * MS);
	assert_clean(&l);
	ledger_release(&l);
}
END_TEST

/* A duplicate that arrives before anything was accepted has no gap to record. */
START_TEST(test_gap_needs_an_accept)
{
	struct ledger l;

	open_ledger(&l, 1, NULL);
	published(&l, 0, 1, true);
	ck_assert(!arrive(&l, 0, 0, 10 * MS));
	ck_assert(arrive(&l, 0, 0, 11 * MS));
	ck_assert_uint_eq(l.gaps.count, 0);
	ledger_release(&l);
}
END_TEST

/* Executes a copy after message m was processed once at 10 ms by consumer 1; returns the cause counted. */
static int second_execution(struct ledger *l, size_t m, unsigned c, uint64_t at)
{
	uint64_t before[LEDGER_CAUSES];
	int found = -1;

	memcpy(before, (const void *)l->misses, sizeof(before));
	process(l, m, 1, c, at, at);
	for (int k = 0; k < LEDGER_CAUSES; k++) {
		if (l->misses[k] == before[k] + 1) {
			ck_assert_int_eq(found, -1);
			found = k;
		} else {
			ck_assert_uint_eq(l->misses[k], before[k]);
		}
	}
	return found;
}

static void first_execution(struct ledger *l, size_t m)
{
	published(l, m, 2, true);
	process(l, m, 0, 1, 10 * MS, 11 * MS);
}

START_TEST(test_cause_unchecked)
{
	struct ledger_setup p = { .store_none = true, .scope_local = true, .ttl_ns = MS, .capacity = 5 };
	struct ledger l;

	open_ledger(&l, 2, &p);
	first_execution(&l, 0);
	ck_assert_int_eq(second_execution(&l, 0, 2, 500 * MS), LEDGER_CAUSE_UNCHECKED);
	/* rule 1 before rule 2: overlapping copies without a store are still `unchecked` */
	published(&l, 1, 2, true);
	arrive(&l, 1, 0, 0);
	ledger_note_accept(&l, 1, 1, 0, 0);
	arrive(&l, 1, 1, 0);
	ledger_note_accept(&l, 1, 2, 0, 0);
	ledger_note_executed(&l, 1, 1, MS, 0, 0, true, 0);
	ledger_note_executed(&l, 1, 2, MS, 0, 0, true, 0);
	ck_assert_uint_eq(l.misses[LEDGER_CAUSE_UNCHECKED], 2);
	ck_assert_uint_eq(l.msgs[1].raced, 0); /* the race token went with the verdict */
	assert_clean(&l);
	ledger_release(&l);
}
END_TEST

/* Two copies accepted while the other is in flight, in both completion orders; then a chain of three. */
START_TEST(test_cause_race)
{
	struct ledger_setup p = { .scope_local = true, .ttl_ns = MS, .capacity = 5 };
	struct ledger l;
	struct ledger_totals t;

	open_ledger(&l, 3, &p);
	for (size_t m = 0; m < 2; m++) {
		published(&l, m, 2, true);
		ck_assert(!arrive(&l, m, 0, 10 * MS));
		ledger_note_accept(&l, m, 1, 10 * MS, 0);
		ck_assert(arrive(&l, m, 1, 500 * MS));
		ledger_note_accept(&l, m, 2, 500 * MS, 0);
		ledger_note_executed(&l, m, m == 0 ? 1 : 2, 600 * MS, 0, 0, true, 0);
		ledger_note_executed(&l, m, m == 0 ? 2 : 1, 600 * MS, 0, 0, true, 0);
	}
	/* rule 2 before other_cache (local scope, another consumer), expired (490 ms > 1 ms) and evicted */
	ck_assert_uint_eq(l.misses[LEDGER_CAUSE_RACE], 2);
	ck_assert_uint_eq(misses_total(&l), 2);
	published(&l, 2, 3, true);
	for (unsigned c = 0; c < 3; c++) {
		arrive(&l, 2, c, 10 * MS);
		ledger_note_accept(&l, 2, 1, 10 * MS, 0); /* same consumer: only the race explains it */
	}
	for (unsigned c = 0; c < 3; c++)
		ledger_note_executed(&l, 2, 1, 11 * MS, 0, 0, true, 0);
	ck_assert_uint_eq(l.misses[LEDGER_CAUSE_RACE], 4);
	/* the tokens are used up: a later copy is judged by the cache rules */
	ck_assert_int_eq(second_execution(&l, 2, 1, 12 * MS), LEDGER_CAUSE_EXPIRED);
	ledger_totals(&l, &t);
	ck_assert_uint_eq(t.duplicates_processed, 5);
	assert_clean(&l);
	ledger_release(&l);
}
END_TEST

START_TEST(test_cause_other_cache)
{
	struct ledger_setup p = { .scope_local = true, .ttl_ns = 100 * MS, .capacity = 5 };
	struct ledger l;

	open_ledger(&l, 2, &p);
	first_execution(&l, 0);
	/* rule 3 before expired: the other consumer never had the key */
	ck_assert_int_eq(second_execution(&l, 0, 2, 500 * MS), LEDGER_CAUSE_OTHER_CACHE);
	/* the first consumer again: its own cache had it, the ttl passed */
	ck_assert_int_eq(second_execution(&l, 0, 1, 500 * MS), LEDGER_CAUSE_EXPIRED);
	/* shared scope: another consumer is no explanation; a capacity is, once enough keys came after */
	p.scope_local = false;
	l.setup = p;
	first_execution(&l, 1);
	ledger_note_marked(&l, 1);
	for (int i = 0; i < 5; i++)
		ledger_note_marked(&l, 0);
	ck_assert_int_eq(second_execution(&l, 1, 2, 50 * MS), LEDGER_CAUSE_EVICTED);
	assert_clean(&l);
	ledger_release(&l);
}
END_TEST

START_TEST(test_cause_expired_evicted_unexplained)
{
	struct ledger_setup p = { .ttl_ns = 100 * MS, .capacity = 1000 };
	struct ledger l;

	open_ledger(&l, 2, &p);
	first_execution(&l, 0);
	ledger_note_marked(&l, 0);
	/* a capacity alone explains nothing: too few keys came after this one for LRU to push it out */
	for (int i = 0; i < 999; i++)
		ledger_note_marked(&l, 1);
	ck_assert_int_eq(second_execution(&l, 0, 1, 110 * MS), LEDGER_CAUSE_UNEXPLAINED);
	ledger_note_marked(&l, 1);
	/* accepted at 10 ms: 100 ms later is still within the ttl, but 1000 keys came after: evicted */
	ck_assert_int_eq(second_execution(&l, 0, 1, 110 * MS), LEDGER_CAUSE_EVICTED);
	ck_assert_int_eq(second_execution(&l, 0, 1, 110 * MS + 1), LEDGER_CAUSE_EXPIRED);
	ck_assert_int_eq(second_execution(&l, 0, 2, 50 * MS), LEDGER_CAUSE_EVICTED);
	l.setup.capacity = 0;
	ck_assert_int_eq(second_execution(&l, 0, 2, 50 * MS), LEDGER_CAUSE_UNEXPLAINED);
	ck_assert_int_eq(second_execution(&l, 0, 2, 5000 * MS), LEDGER_CAUSE_EXPIRED);
	l.setup.ttl_ns = 0;
	ck_assert_int_eq(second_execution(&l, 0, 2, 5000 * MS), LEDGER_CAUSE_UNEXPLAINED);
	ck_assert_uint_eq(misses_total(&l), 7);
	assert_clean(&l);
	ledger_release(&l);
}
END_TEST

/*
 * issue 13. A key marked before a store restart began is store_lost; one
 * marked (sent) after it is not, and falls through as before. A mark whose
 * reply came after the restart began but was sent before it (the epoch read
 * before the send) is lost too. The ttl is judged first: an expired key was
 * gone anyway.
 */
START_TEST(test_cause_store_lost)
{
	struct ledger_setup p = { .store_restarts = true, .ttl_ns = 100 * MS };
	struct ledger l;
	uint32_t sent;

	open_ledger(&l, 3, &p);
	first_execution(&l, 0);
	ledger_note_marked(&l, 0);
	ck_assert_int_eq(second_execution(&l, 0, 1, 50 * MS), LEDGER_CAUSE_UNEXPLAINED);
	ledger_note_store_restart(&l);
	ck_assert_uint_eq(ledger_store_epoch(&l), 1);
	ck_assert_int_eq(second_execution(&l, 0, 1, 50 * MS), LEDGER_CAUSE_STORE_LOST);
	ck_assert_int_eq(second_execution(&l, 0, 1, 500 * MS), LEDGER_CAUSE_EXPIRED);
	/* marked again after the restart: the new server has it, a miss is no restart's doing */
	ledger_note_marked(&l, 0);
	ck_assert_int_eq(second_execution(&l, 0, 1, 50 * MS), LEDGER_CAUSE_UNEXPLAINED);
	/* sent in epoch 1, the restart to epoch 2 began before the reply was noted */
	first_execution(&l, 1);
	sent = ledger_store_epoch(&l);
	ledger_note_store_restart(&l);
	ledger_note_marked_at(&l, 1, sent);
	ck_assert_int_eq(second_execution(&l, 1, 1, 50 * MS), LEDGER_CAUSE_STORE_LOST);
	/* without restarts in the set-up, an old epoch explains nothing */
	l.setup.store_restarts = false;
	ck_assert_int_eq(second_execution(&l, 1, 1, 50 * MS), LEDGER_CAUSE_UNEXPLAINED);
	/* a store that evicts by memory: what is left is evicted (redis's choice, not seen) */
	l.setup.store_evicts = true;
	ck_assert_int_eq(second_execution(&l, 1, 1, 50 * MS), LEDGER_CAUSE_EVICTED);
	ck_assert_str_eq(ledger_cause_name(LEDGER_CAUSE_STORE_LOST), "store_lost");
	assert_clean(&l);
	ledger_release(&l);
}
END_TEST

/*
 * Decided while another copy was in flight, accepted after it completed
 * (mark = after): the store was asked before the first copy's key went in.
 * That pair is a race (it used to fall through to `unexplained`); a copy
 * decided after the execution, before the key was visible, is not_inserted;
 * a failed lookup or a failed first mark is store_error.
 */
START_TEST(test_cause_seen_at_the_decision)
{
	struct ledger l;
	unsigned seen, acc;

	open_ledger(&l, 3, NULL);
	published(&l, 0, 1, true);
	ck_assert(!arrive(&l, 0, 0, MS));
	ledger_note_accept(&l, 0, 1, MS, 0);
	ledger_note_delivery(&l, 0, 0, 0, 0);
	seen = ledger_note_decision(&l, 0, 2 * MS, 0); /* copy 1 in flight */
	ck_assert(seen & LEDGER_SEEN_INFLIGHT);
	ledger_note_executed(&l, 0, 1, 3 * MS, 0, 0, true, 0);
	ledger_note_marked(&l, 0);
	acc = ledger_note_accept(&l, 0, 2, 4 * MS, seen); /* accepted after the first completed and marked */
	ledger_note_executed(&l, 0, 2, 5 * MS, 0, acc, true, 0);
	ck_assert_uint_eq(l.misses[LEDGER_CAUSE_RACE], 1);
	/* decided after the execution, before the mark */
	published(&l, 1, 1, true);
	process(&l, 1, 0, 1, MS, 2 * MS);
	ledger_note_delivery(&l, 1, 0, 0, 0);
	seen = ledger_note_decision(&l, 1, 3 * MS, 0);
	ck_assert(seen & LEDGER_SEEN_UNMARKED);
	ck_assert(!(seen & LEDGER_SEEN_INFLIGHT));
	ledger_note_marked(&l, 1);
	acc = ledger_note_accept(&l, 1, 2, 4 * MS, seen);
	ledger_note_executed(&l, 1, 2, 5 * MS, 0, acc, true, 0);
	ck_assert_uint_eq(l.misses[LEDGER_CAUSE_NOT_INSERTED], 1);
	/* the first copy's mark failed: the duplicate that got through is a store error */
	published(&l, 2, 1, true);
	process(&l, 2, 0, 1, MS, 2 * MS);
	ledger_note_mark_failed(&l, 2);
	ledger_note_delivery(&l, 2, 0, 0, 0);
	seen = ledger_note_decision(&l, 2, 10 * MS, 0);
	acc = ledger_note_accept(&l, 2, 2, 10 * MS, seen);
	ledger_note_executed(&l, 2, 2, 11 * MS, 0, acc & ~LEDGER_ACCEPT_UNMARKED, true, 0);
	ck_assert_uint_eq(l.misses[LEDGER_CAUSE_STORE_ERROR], 1);
	ck_assert_uint_eq(l.misses[LEDGER_CAUSE_UNEXPLAINED], 0);
	assert_clean(&l);
	ledger_release(&l);
}
END_TEST

/* A consumer crash between accept and completion: no execution, no duplicate, and no race left behind. */
START_TEST(test_abandoned)
{
	struct ledger l;
	struct ledger_totals t;

	open_ledger(&l, 2, NULL);
	published(&l, 0, 1, true);
	arrive(&l, 0, 0, 10 * MS);
	ledger_note_accept(&l, 0, 1, 10 * MS, 0);
	ledger_note_abandoned(&l, 0);
	arrive(&l, 0, 0, 20 * MS); /* the redelivery */
	ledger_note_accept(&l, 0, 2, 20 * MS, 0);
	ledger_note_executed(&l, 0, 2, 21 * MS, 0, 0, true, 0);
	/* overlapping copies, one abandoned: the survivor is the first execution */
	published(&l, 1, 2, true);
	arrive(&l, 1, 0, 10 * MS);
	ledger_note_accept(&l, 1, 1, 10 * MS, 0);
	arrive(&l, 1, 0, 10 * MS);
	ledger_note_accept(&l, 1, 2, 10 * MS, 0);
	ledger_note_abandoned(&l, 1);
	ledger_note_executed(&l, 1, 2, 11 * MS, 0, 0, true, 0);
	ledger_totals(&l, &t);
	/* message 0's redelivery is not a duplicate: its first copy was never executed (a perfect dedup
	 * must take it); message 1's second copy is, since the first was in flight at its decision */
	ck_assert_uint_eq(t.duplicate_deliveries, 1);
	ck_assert_uint_eq(l.msgs[0].dups, 0);
	ck_assert_uint_eq(l.msgs[1].dups, 1);
	ck_assert_uint_eq(t.duplicates_processed, 0);
	ck_assert_uint_eq(t.processed_messages, 2);
	ck_assert_uint_eq(misses_total(&l), 0);
	/* a later duplicate is not a race: the token went with the abandoned copy */
	ck_assert_int_eq(second_execution(&l, 1, 2, 50 * MS), LEDGER_CAUSE_UNEXPLAINED);
	assert_clean(&l);
	ledger_release(&l);
}
END_TEST

START_TEST(test_wrong_suppression_and_loss)
{
	struct ledger l;
	struct ledger_totals t;

	open_ledger(&l, 5, NULL);
	/* 0: rejected with nothing executed or in flight: a false positive, and the message is lost */
	published(&l, 0, 1, true);
	arrive(&l, 0, 0, 10 * MS);
	ledger_note_rejected(&l, 0);
	/* 1: rejected while the first copy is in flight: right */
	published(&l, 1, 1, true);
	arrive(&l, 1, 0, 10 * MS);
	ledger_note_accept(&l, 1, 1, 10 * MS, 0);
	arrive(&l, 1, 0, 11 * MS);
	ledger_note_rejected(&l, 1);
	ledger_note_executed(&l, 1, 1, 12 * MS, 0, 0, true, 0);
	/* 2: rejected after the execution: right */
	published(&l, 2, 1, true);
	process(&l, 2, 0, 1, 10 * MS, 11 * MS);
	arrive(&l, 2, 0, 20 * MS);
	ledger_note_rejected(&l, 2);
	/* 3: never confirmed, never delivered: not lost, not committed */
	published(&l, 3, 1, false);
	/* 4: mark = before with a shared store: A's check-and-put made the key visible, B is rejected
	 * before the ledger hears of A's accept. Not wrong: A had claimed m at its decision. */
	published(&l, 4, 1, true);
	ck_assert(!arrive(&l, 4, 0, 10 * MS));
	ck_assert(arrive(&l, 4, 0, 10 * MS));
	ledger_note_rejected(&l, 4);
	ledger_note_accept(&l, 4, 1, 11 * MS, 0);
	ledger_note_executed(&l, 4, 1, 12 * MS, 0, 0, true, 0);
	ledger_totals(&l, &t);
	ck_assert_uint_eq(t.wrongly_suppressed, 1);
	ck_assert_uint_eq(t.lost, 1);
	ck_assert_uint_eq(t.committed, 4);
	ck_assert_uint_eq(t.published, 5);
	ck_assert_uint_eq(t.processed_messages, 3);
	assert_clean(&l);
	ledger_release(&l);
}
END_TEST

START_TEST(test_invariants)
{
	struct ledger l;
	char msg[2048], tiny[12];

	open_ledger(&l, 8, NULL);
	published(&l, 0, 1, true);
	ledger_note_executed(&l, 0, 1, MS, 0, 0, true, 0);	/* executed, never delivered */
	ledger_note_delivery(&l, 1, 0, 0, 0);		/* delivered, never published (also 1 copy > 0 attempts) */
	ledger_note_confirm(&l, 2);		/* confirmed, never published */
	published(&l, 3, 1, true);
	ledger_note_delivery(&l, 3, 0, 0, 0);
	ledger_note_delivery(&l, 3, 1, 0, 0);		/* two distinct copies of one attempt */
	published(&l, 4, 1, true);
	arrive(&l, 4, 0, MS);
	ledger_note_accept(&l, 4, 1, MS, 0);	/* still in flight */
	published(&l, 5, 1, true);
	ledger_note_decision(&l, 5, MS, 0);	/* decided, never delivered */
	ck_assert_uint_eq(ledger_check(&l, false, msg, sizeof(msg)), 6);
	ck_assert_ptr_nonnull(strstr(msg, "message 0: executions 1 > decided 0\n"));
	ck_assert_ptr_nonnull(strstr(msg, "message 1: 1 deliveries but never published\n"));
	ck_assert_ptr_nonnull(strstr(msg, "message 1: 1 distinct copies delivered > 0 publish attempts\n"));
	ck_assert_ptr_nonnull(strstr(msg, "message 2: confirmed but never published\n"));
	ck_assert_ptr_nonnull(strstr(msg, "message 3: 2 distinct copies delivered > 1 publish attempts\n"));
	ck_assert_ptr_nonnull(strstr(msg, "message 5: decided 1 > deliveries 0\n"));
	ck_assert_ptr_null(strstr(msg, "message 4"));
	ck_assert_uint_eq(ledger_check(&l, true, msg, sizeof(msg)), 10);
	ck_assert_ptr_nonnull(strstr(msg, "message 3: lost, but no delivery was rejected while it was unexecuted\n"));
	ck_assert_ptr_nonnull(strstr(msg, "message 4: 1 deliveries still in flight (1 claims) after the drain\n"));
	ck_assert_ptr_nonnull(strstr(msg, "message 4: lost, but no delivery was rejected while it was unexecuted\n"));
	/* foreign deliveries, an index outside the run, misses that don't add up */
	ledger_note_foreign(&l);
	ledger_note_delivery(&l, 8, 0, 0, 0);
	atomic_fetch_add(&l.misses[LEDGER_CAUSE_RACE], 1);
	ck_assert_uint_eq(ledger_check(&l, true, msg, sizeof(msg)), 12);
	ck_assert_ptr_nonnull(strstr(msg, "... and 4 more\n"));
	ck_assert_ptr_null(strstr(msg, "foreign")); /* lines after the 8th are summarised */
	/* a short buffer is truncated, not overrun; no buffer at all is fine */
	ck_assert_uint_eq(ledger_check(&l, true, tiny, sizeof(tiny)), 12);
	ck_assert_uint_eq(strlen(tiny), sizeof(tiny) - 1);
	ck_assert_uint_eq(ledger_check(&l, true, NULL, 0), 12);
	ledger_release(&l);

	/* a decision never resolved (rejected, executed or abandoned) holds its claim */
	open_ledger(&l, 1, NULL);
	published(&l, 0, 1, false);
	arrive(&l, 0, 0, MS);
	ck_assert_uint_eq(ledger_check(&l, true, msg, sizeof(msg)), 1);
	ck_assert_str_eq(msg, "message 0: 0 deliveries still in flight (1 claims) after the drain\n");
	ledger_release(&l);

	open_ledger(&l, 1, NULL);
	ledger_note_foreign(&l);
	ck_assert_uint_eq(ledger_check(&l, true, msg, sizeof(msg)), 1);
	ck_assert_str_eq(msg, "1 foreign deliveries (message ids not of this run)\n");
	ledger_release(&l);
}
END_TEST

START_TEST(test_saturation_and_copy_overflow)
{
	struct ledger l;
	struct ledger_totals t;

	open_ledger(&l, 2, NULL);
	published(&l, 0, 1, true);
	for (int i = 0; i < 70000; i++)
		ledger_note_delivery(&l, 0, 0, 0, 0);
	ck_assert_uint_eq(l.msgs[0].deliveries, UINT16_MAX);
	ck_assert(l.msgs[0].flags & LEDGER_F_SATURATED);
	published(&l, 1, 40, true);
	ledger_note_delivery(&l, 1, 30, 0, 0);
	ck_assert(!(l.msgs[1].flags & LEDGER_F_COPY_OVERFLOW));
	ledger_note_delivery(&l, 1, 40, 0, 0);
	ledger_note_delivery(&l, 1, 31, 0, 0);
	ck_assert(l.msgs[1].flags & LEDGER_F_COPY_OVERFLOW);
	ck_assert_uint_eq(l.msgs[1].copies, (1u << 30) | (1u << 31));
	ledger_totals(&l, &t);
	ck_assert_uint_eq(t.saturated, 1);
	ck_assert_uint_eq(t.copy_overflow, 1);
	ck_assert_uint_eq(t.deliveries, UINT16_MAX + 3);
	ck_assert_uint_eq(t.copies_hist[1], 1);
	ck_assert_uint_eq(t.copies_hist[2], 1);
	ledger_release(&l);
}
END_TEST

#define HAMMER_THREADS 4
#define HAMMER_ITERS 200000 /* x 5 operations = 1e6 per thread */
#define HAMMER_MSGS 1000

struct hammer_arg {
	struct ledger *l;
	unsigned id;
};

static void *hammer(void *p)
{
	struct hammer_arg *a = p;

	for (size_t i = 0; i < HAMMER_ITERS; i++) {
		/* every thread walks the same messages in the same order: they collide on purpose */
		size_t m = (i * 7) % HAMMER_MSGS;
		uint64_t now = clock_now_ns();

		ledger_note_publish(a->l, m);
		ledger_note_delivery(a->l, m, (unsigned)(i / HAMMER_MSGS % 4), 0, 0);
		ledger_note_decision(a->l, m, now, 0);
		ledger_note_accept(a->l, m, a->id, now, 0);
		ledger_note_executed(a->l, m, a->id, now, 1, 0, true, 0);
	}
	return NULL;
}

START_TEST(test_hammer)
{
	const uint64_t n = (uint64_t)HAMMER_THREADS * HAMMER_ITERS;
	struct ledger_setup p = { .ttl_ns = NS_PER_S };
	struct hammer_arg args[HAMMER_THREADS];
	pthread_t th[HAMMER_THREADS];
	struct ledger l;
	struct ledger_totals t;

	ck_assert_int_eq(ledger_init(&l, HAMMER_MSGS, &p), 0);
	for (unsigned i = 0; i < HAMMER_THREADS; i++) {
		args[i] = (struct hammer_arg){ &l, i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, hammer, &args[i]), 0);
	}
	for (unsigned i = 0; i < HAMMER_THREADS; i++)
		pthread_join(th[i], NULL);
	ledger_totals(&l, &t);
	ck_assert_uint_eq(t.publish_attempts, n);
	ck_assert_uint_eq(t.deliveries, n);
	ck_assert_uint_eq(t.decisions, n);
	ck_assert_uint_eq(t.executions, n);
	ck_assert_uint_eq(t.published, HAMMER_MSGS);
	ck_assert_uint_eq(t.processed_messages, HAMMER_MSGS);
	ck_assert_uint_eq(t.excess_copies, 3 * HAMMER_MSGS);
	ck_assert_uint_eq(t.copies_hist[4], HAMMER_MSGS);
	ck_assert_uint_eq(t.duplicate_deliveries, n - HAMMER_MSGS);
	ck_assert_uint_eq(t.duplicates_processed, n - HAMMER_MSGS);
	ck_assert_uint_eq(misses_total(&l), n - HAMMER_MSGS);
	ck_assert_uint_eq(t.saturated, 0);
	ck_assert_uint_eq(l.latency.count, HAMMER_MSGS);
	ck_assert_uint_le(l.gaps.count, n - HAMMER_MSGS);
	ck_assert_uint_ge(l.gaps.count, n - HAMMER_MSGS * HAMMER_THREADS);
	for (size_t m = 0; m < HAMMER_MSGS; m++) {
		ck_assert_uint_eq(l.msgs[m].inflight, 0);
		ck_assert_uint_eq(l.msgs[m].raced, 0);
	}
	assert_clean(&l);
	ledger_release(&l);
}
END_TEST

/*
 * issue 13: which fault event a delivery is charged to. A redelivery of a
 * copy seen before goes to the session that held it, unless the copy was
 * handed over to an event (a nack with requeue, a DLQ replay); a new copy
 * to its publisher's failed session (cause); an older copy after a newer
 * one to the session that sent it (from: it was stuck in a blocked
 * connection).
 */
START_TEST(test_charged_to)
{
	struct ledger l;
	const events_id held = 11, later = 12, nack = 13, failed_pub = 14, stuck = 15;

	open_ledger(&l, 3, NULL);
	/* a redelivery: the session that held it, or the event it was handed over to */
	ck_assert_uint_eq(ledger_note_delivery(&l, 0, 0, held, 0), 0); /* first copy: no earlier session */
	ck_assert_uint_eq(ledger_note_delivery(&l, 0, 0, later, 0), held);
	ledger_note_handover(&l, 0, nack);
	ck_assert_uint_eq(ledger_note_delivery(&l, 0, 0, held, 0), nack);
	ck_assert_uint_eq(ledger_note_delivery(&l, 0, 0, later, 0), held); /* the handover was used up */
	/* a new copy: its publisher's failed session, even when `from` is known (it is not older) */
	ck_assert_uint_eq(ledger_note_delivery_from(&l, 1, 0, held, 0, stuck), 0);
	ck_assert_uint_eq(ledger_note_delivery_from(&l, 1, 1, later, failed_pub, stuck), failed_pub);
	/* an older copy after a newer one: the session that sent it, not the cause of a new copy */
	ck_assert_uint_eq(ledger_note_delivery_from(&l, 2, 2, held, failed_pub, 0), failed_pub);
	ck_assert_uint_eq(ledger_note_delivery_from(&l, 2, 0, later, failed_pub, stuck), stuck);
	/* from unknown (0): the cause as before */
	ck_assert_uint_eq(ledger_note_delivery_from(&l, 2, 1, later, failed_pub, 0), failed_pub);
	ledger_release(&l);
}
END_TEST

Suite *ledger_suite(void)
{
	Suite *s = suite_create("ledger");
	TCase *tc = tcase_create("ledger");
	TCase *slow = tcase_create("ledger-threads");

	tcase_add_test(tc, test_layout_and_names);
	tcase_add_test(tc, test_cause_store_lost); /* issue 13 */
	tcase_add_test(tc, test_normal_message);
	tcase_add_test(tc, test_commit_ok_loss_caught);
	tcase_add_test(tc, test_gap_needs_an_accept);
	tcase_add_test(tc, test_cause_unchecked);
	tcase_add_test(tc, test_cause_race);
	tcase_add_test(tc, test_cause_other_cache);
	tcase_add_test(tc, test_cause_expired_evicted_unexplained);
	tcase_add_test(tc, test_cause_seen_at_the_decision);
	tcase_add_test(tc, test_abandoned);
	tcase_add_test(tc, test_charged_to); /* issue 13 */
	tcase_add_test(tc, test_wrong_suppression_and_loss);
	tcase_add_test(tc, test_invariants);
	tcase_add_test(tc, test_saturation_and_copy_overflow);
	suite_add_tcase(s, tc);
	tcase_set_timeout(slow, 120);
	tcase_add_test(slow, test_hammer);
	suite_add_tcase(s, slow);
	return s;
}
