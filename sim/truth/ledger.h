/* ledger.h — ground truth per message: attempts, confirms, deliveries, decisions, executions; miss causes. */
#ifndef DUPSIM_LEDGER_H
#define DUPSIM_LEDGER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "truth/events.h"
#include "analysis/stats.h"

/* Why a duplicate was executed (DESIGN.md's miss causes, plus `unexplained`). */
enum ledger_cause {
	LEDGER_CAUSE_EXPIRED,	   /* the key's ttl had passed */
	LEDGER_CAUSE_EVICTED,	   /* capacity pushed the key out */
	LEDGER_CAUSE_UNCHECKED,	   /* the policy (or store none) skipped the lookup */
	LEDGER_CAUSE_NOT_INSERTED, /* the first copy's mark was not visible yet */
	LEDGER_CAUSE_OTHER_CACHE,  /* local scope: another consumer's cache had it */
	LEDGER_CAUSE_RACE,	   /* the first copy was still in flight at another consumer */
	LEDGER_CAUSE_LOST_IN_CRASH, /* a crashed consumer's memory (local store) took the key with it */
	LEDGER_CAUSE_STORE_ERROR,  /* the store failed (a lookup, or the first copy's mark) and the policy went on */
	/* issue 13, faults of the store itself */
	LEDGER_CAUSE_STORE_LOST,   /* the store lost the key in a restart without persistence */
	LEDGER_CAUSE_UNKNOWN_APP,  /* the user's own app executed it again: dupsim can't see inside it to say why */
	LEDGER_CAUSE_UNEXPLAINED,  /* none of the above: a bug in a store or policy */
	LEDGER_CAUSES
};
const char *ledger_cause_name(enum ledger_cause c);

/*
 * One message, 48 bytes, updated with atomics only (no lock on the hot path).
 * Counters saturate at their type's maximum (and set LEDGER_F_SATURATED).
 *
 * `state` holds K(m) and the claims in one word, so that a decision sees
 * both at one instant: a delivery claims m when it reaches the decision and
 * gives the claim back when it is rejected, executed or abandoned. A
 * delivery is a duplicate when, at its decision, m was executed (K > 0) or
 * another delivery held a claim (its execution in flight, or about to be).
 */
#define LEDGER_F_CONFIRMED 0x01 /* a CommitOk / confirm reached the publisher */
#define LEDGER_F_SATURATED 0x02 /* a counter hit its maximum (reported) */
#define LEDGER_F_COPY_OVERFLOW 0x04 /* a republish count >= 31 was delivered (folded into bit 31) */
#define LEDGER_F_MARKED 0x08	    /* the dedup key was inserted and visible to lookups */
#define LEDGER_F_REJECTED_K0 0x10   /* a delivery was rejected while K(m) was 0 */
#define LEDGER_F_MARK_FAILED 0x20   /* inserting the key failed (the store said so) */
#define LEDGER_F_DEAD_LETTERED 0x40 /* issue 13: found in the dead-letter queue when the run ended */
struct ledger_msg {
	_Atomic uint64_t first_accept_ns; /* run clock + 1 of the first accepted delivery; 0 none */
	_Atomic uint32_t copies;	  /* bit c: a copy with x-republish-count c was delivered */
	_Atomic uint32_t state;		  /* K(m) (low 16 bits) and claims (high 16) */
	_Atomic events_id last_session;	  /* the consumer session of the latest delivery */
	_Atomic events_id dup_charge;	  /* the session the latest duplicate delivery was charged to */
	_Atomic uint32_t touched;	  /* l->touches when the key was last inserted or found (for LRU) */
	_Atomic uint16_t attempts;	  /* publishes of this message */
	_Atomic uint16_t deliveries;	  /* D(m) */
	_Atomic uint16_t decided;	  /* A(m): deliveries that reached the dedup decision */
	_Atomic uint16_t dups;		  /* duplicate deliveries of m */
	_Atomic uint16_t first_consumer;  /* consumer of the first accepted delivery */
	_Atomic uint16_t suppressed;	  /* rejections while K == 0 and no other claim: wrong ones */
	_Atomic uint8_t inflight;	  /* accepted, side effect not yet completed */
	_Atomic uint8_t flags;
	_Atomic uint8_t raced;		  /* accepts made while another copy was in flight, not yet
					   * matched to a duplicate execution (the `race` cause) */
	_Atomic uint16_t mark_epoch;	  /* l->store_epoch (low 16 bits) when the latest mark was sent */
};

/* What the ledger knows of the dedup set-up, to classify misses without asking the store. */
struct ledger_setup {
	bool store_none;    /* no dedup at all */
	bool scope_local;   /* a store per consumer */
	uint64_t ttl_ns;    /* 0: never expires */
	uint64_t capacity;  /* 0: unbounded */
	bool crash_wipes_cache; /* consumers crash and their store is memory: keys die with them */
	bool app;	    /* the consumers are the user's app ([app]): every miss is unknown_app */
	bool store_restarts; /* the store is restarted without persistence (faults.store_restart_every) */
	bool store_evicts;   /* the store evicts keys by memory (dedup.redis_maxmemory): a miss can be `evicted` */
};

/* What ledger_note_decision saw, handed to ledger_note_accept (0: not a duplicate). */
#define LEDGER_SEEN_DUP 0x01	  /* a duplicate delivery */
#define LEDGER_SEEN_INFLIGHT 0x02 /* another delivery of m held a claim: its execution was in flight */
#define LEDGER_SEEN_UNMARKED 0x04 /* m was executed or claimed, but its key was not visible yet */

/* What ledger_note_accept saw (and the consumer adds), handed to ledger_note_executed. */
#define LEDGER_ACCEPT_UNMARKED 0x01    /* another copy came first, and its key was not visible */
#define LEDGER_ACCEPT_STORE_ERROR 0x02 /* this delivery's lookup failed; the policy went on (fail-open) */

struct ledger {
	size_t count;
	struct ledger_msg *msgs;
	uint64_t t0_ns; /* clock_now_ns() at init: the run clock's zero */
	struct ledger_setup setup;
	_Atomic uint64_t foreign;     /* deliveries whose message id is not this run's */
	_Atomic uint64_t misses[LEDGER_CAUSES];
	struct stats_hist gaps;	      /* duplicate gaps, ns */
	struct stats_hist latency;    /* publish -> first processed, ns */
	struct events *events;	      /* where duplicates and misses are charged; NULL: nowhere */
	_Atomic uint32_t touches;     /* keys inserted or found so far (wraps): evidence for `evicted` */
	_Atomic uint32_t store_epoch; /* store restarts begun so far: evidence for `store_lost` */
};

/* 0, or -1 when the table can't be allocated. */
int ledger_init(struct ledger *l, size_t messages, const struct ledger_setup *setup);
void ledger_release(struct ledger *l);

/* Publisher side. */
/* A publish of m; returns the publishes before it (its x-republish-count), UINT16_MAX once saturated.
 * The ledger is the one count: a publisher keeps none of its own. */
unsigned ledger_note_publish(struct ledger *l, size_t m);
void ledger_note_confirm(struct ledger *l, size_t m);

/*
 * Consumer side, in this order for each delivery. now_ns is clock_now_ns().
 *
 * A delivery on consumer session `session` of copy `republish_count`, which
 * the publisher republished because session `cause` failed (0: a first
 * copy). Returns the fault event this delivery is charged to should it be a
 * duplicate: a copy delivered before comes back because the session that
 * last held it ended (a redelivery); a new copy exists because its
 * publisher's session failed (a republish).
 */
events_id ledger_note_delivery(struct ledger *l, size_t m, unsigned republish_count, events_id session,
			       events_id cause);
/*
 * The same, knowing `from`, the publisher session that sent this copy (0
 * unknown): an older copy delivered after a newer one (the broker read it
 * late, from a connection its publisher had given up: a memory alarm) is
 * charged to that session.
 */
events_id ledger_note_delivery_from(struct ledger *l, size_t m, unsigned republish_count, events_id session,
				    events_id cause, events_id from);
/* The delivery reached the dedup decision and claims m. Returns LEDGER_SEEN_*
 * flags, nonzero exactly when it is a duplicate delivery (m executed, or
 * claimed by another delivery); its
 * gap then goes into l->gaps and it is charged to `charge` (what
 * ledger_note_delivery returned). Every decision is followed by exactly one
 * of ledger_note_rejected, ledger_note_executed or ledger_note_abandoned. */
unsigned ledger_note_decision(struct ledger *l, size_t m, uint64_t now_ns, events_id charge);
/* The store said "seen": the claim is given back; a wrong suppression when nothing was executed or claimed. */
void ledger_note_rejected(struct ledger *l, size_t m);
/* The delivery was accepted by consumer c; the side effect starts. seen: what ledger_note_decision
 * returned. Returns LEDGER_ACCEPT_* flags. */
unsigned ledger_note_accept(struct ledger *l, size_t m, unsigned consumer, uint64_t now_ns, unsigned seen);
/* The message's dedup key became visible in the store (an insert completed or was flushed). */
void ledger_note_marked(struct ledger *l, size_t m);
/*
 * Store restarts (faults.store_restart_every). The run calls
 * ledger_note_store_restart just before it kills the store: every key sent
 * before is gone. A consumer reads ledger_store_epoch just before it sends a
 * mark and hands it to ledger_note_marked_at when the mark was acknowledged:
 * a key marked in an older epoch than the duplicate's was lost (a mark sent
 * before the kill either reached the old server or failed; one sent after it
 * can only reach the new one).
 */
void ledger_note_store_restart(struct ledger *l);
uint32_t ledger_store_epoch(const struct ledger *l);
/* ledger_note_marked, for a mark sent in store epoch `epoch`. */
void ledger_note_marked_at(struct ledger *l, size_t m, uint32_t epoch);
/* Inserting the message's key failed (the store returned an error, or its deferred flush did). */
void ledger_note_mark_failed(struct ledger *l, size_t m);
/*
 * The side effect completed (published_ns: the publish time carried by the
 * copy, for end-to-end latency of the first execution). accept_flags: what
 * ledger_note_accept returned for this delivery; looked_up: the policy looked
 * this delivery up in the store. A second or later execution is a miss: its
 * cause is classified and counted, and it is charged to the event of the
 * duplicate it pairs with: `charge` when this delivery was a duplicate (what
 * ledger_note_delivery returned), else (0: it was the first, and a duplicate
 * overtook it) the latest duplicate's.
 */
void ledger_note_executed(struct ledger *l, size_t m, unsigned consumer, uint64_t now_ns, uint64_t published_ns,
			  unsigned accept_flags, bool looked_up, events_id charge);
/* The consumer crashed between accept and completion: the claim is given back. */
void ledger_note_abandoned(struct ledger *l, size_t m);
/* issue 13, alarms, requeues and delivery limits */
/*
 * m goes back into the queue because of fault event `event` (a nack with
 * requeue, a DLQ replay), not because a session ended: its next delivery,
 * a redelivery of a copy seen before, is charged to that event.
 */
void ledger_note_handover(struct ledger *l, size_t m, events_id event);
/* m was found in the dead-letter queue at the run's end (and taken out of it). */
void ledger_note_dead_lettered(struct ledger *l, size_t m);

/* A delivery with an id not of this run. */
void ledger_note_foreign(struct ledger *l);

/* True when every committed message was executed at least once (a scan). */
bool ledger_all_processed(const struct ledger *l);

/* Totals over all messages (a scan; call when the run is quiet). */
struct ledger_totals {
	uint64_t messages, published, committed, publish_attempts;
	uint64_t excess_copies, deliveries, decisions, executions;
	uint64_t duplicate_deliveries, duplicates_processed, lost, wrongly_suppressed;
	/* committed, never executed, and in the dead-letter queue at the end: not in `lost` (the broker did
	 * what it was told), but lost to the app unless an operator replays the DLQ (issue 13) */
	uint64_t lost_in_dlq;
	uint64_t processed_messages; /* K(m) >= 1 */
	uint64_t misses[LEDGER_CAUSES];
	uint64_t foreign, saturated, copy_overflow;
	uint64_t copies_hist[34]; /* messages by distinct copies delivered: [0..32], [33] more */
};
void ledger_totals(const struct ledger *l, struct ledger_totals *t);

/*
 * Checks the invariants (per message: K <= A <= D, duplicates <= A - 1 and
 * K - 1 <= duplicates, D > 0 only for published messages, distinct copies <=
 * attempts, no claim or execution in flight after the drain, and a lost
 * message, once drained, had a delivery rejected while it was unexecuted;
 * wrongly suppressed <= rejections; misses by cause add up to duplicates
 * processed; no foreign deliveries).
 * Returns the number of violations and writes the first few, one per line, into msg.
 */
size_t ledger_check(const struct ledger *l, bool drained, char *msg, size_t msglen);

#endif
