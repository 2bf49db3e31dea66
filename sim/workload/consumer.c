/* consumer.c — consumer threads: manual acks, prefetch, multiple-acks, the dedup decision, nacks, reconnect after a cut. */
#include "workload/consumer.h"

#include <amqp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/rng.h"
#include "dedup/factory.h"
#include "dedup/policy.h"
#include "workload/msgid.h"
#include "workload/session.h"

#define POLL_NS (100 * NS_PER_MS)
#define DEFERRED_MAX 32 /* flushed before the store's own pipeline limit */
#define STALL_RETRY_NS (20 * NS_PER_MS) /* on_error = closed: between tries of a failed store call */

struct cons_state {
	struct consumer *c;
	struct workload *w;
	struct session sess;
	struct dedup_policy policy;
	struct msgid_space ids;
	uint64_t unacked;	/* deliveries handled since the last ack frame */
	uint64_t last_tag;
	struct rng crash_rng;
	struct rng slow_rng;	/* consumers.slow: which deliveries work slow_work */
	uint64_t away_max_ns;	/* this connection's longest work, out of librabbitmq-c (no heartbeats sent) */
	struct rng nack_rng;	/* consumers.nack_requeue's draws, apart: crash draws stay as they were */
	size_t deferred[DEFERRED_MAX]; /* messages whose insert is queued, not yet visible */
	uint32_t deferred_epoch[DEFERRED_MAX]; /* the ledger's store epoch when each was queued */
	size_t ndeferred;
	uint32_t epoch; /* the ledger's store epoch just before the latest store call was sent */
};

/* Where a crash drawn for a delivery happens (see cons_handle). */
enum cons_crash_at { CRASH_NONE, CRASH_BEFORE_MARK, CRASH_AFTER_MARK, CRASH_AFTER_PROCESS };

/* One delivery on its way through the consumer. */
struct cons_delivery {
	size_t m;		/* ledger index */
	int64_t count;		/* x-republish-count */
	int64_t published;	/* x-published-ns, -1 absent */
	events_id charge;	/* the fault event a duplicate of it is charged to */
	unsigned seen;		/* the ledger's verdict: a duplicate delivery */
	unsigned accept;	/* ledger_note_accept's flags */
	bool looked_up, marked, deferred, store_error, done;
	bool nack; /* consumers.nack_requeue drew this delivery: the handler fails after its side effect */
	enum cons_crash_at crash;
};

/* What cons_steps ended with. */
enum cons_end { CONS_END_OK, CONS_END_CRASH, CONS_END_NACK };

/* The connection is gone: acks not sent are lost with it (the broker redelivers). */
static void cons_drop(struct cons_state *s, const char *why)
{
	s->unacked = 0;
	session_drop(&s->sess, why);
}

static int cons_connect(struct cons_state *s)
{
	const struct scenario *sc = s->w->sc;
	char why[200];

	if (session_connect(&s->sess, NULL) < 0)
		return -1;
	if (!amqp_basic_qos(s->sess.conn, 1, 0, (uint16_t)sc->consumers.prefetch, 0)) {
		cons_drop(s, "basic.qos failed");
		return -1;
	}
	amqp_basic_consume(s->sess.conn, 1, amqp_cstring_bytes(sc->broker.queue), amqp_empty_bytes, 0, 0, 0,
			   amqp_empty_table);
	if (!mq_ok(amqp_get_rpc_reply(s->sess.conn))) {
		mq_reply_str(amqp_get_rpc_reply(s->sess.conn), why, sizeof(why));
		cons_drop(s, why);
		return -1;
	}
	s->unacked = 0;
	s->away_max_ns = 0;
	return 0;
}

/*
 * The connection failed under the library (no close from the broker). With
 * heartbeats, a failure after work that kept the consumer out of the library
 * for two heartbeat intervals or more is the broker's heartbeat timeout (it
 * closes the socket after 2 to 3 silent intervals, with no close method), and
 * AMQP_STATUS_HEARTBEAT_TIMEOUT is librabbitmq-c's own, the broker silent.
 */
static void cons_lost(struct cons_state *s, int library_error, const char *why)
{
	uint64_t hb = (uint64_t)s->sess.heartbeat_s * NS_PER_S;

	if (hb && (library_error == AMQP_STATUS_HEARTBEAT_TIMEOUT || s->away_max_ns >= 2 * hb))
		session_end(&s->sess, EVENTS_HEARTBEAT_TIMEOUT);
	cons_drop(s, why);
}

static int cons_flush_acks(struct cons_state *s)
{
	if (!s->unacked || !s->sess.conn)
		return 0;
	s->unacked = 0;
	return amqp_basic_ack(s->sess.conn, 1, s->last_tag, s->w->sc->consumers.ack_every > 1) == AMQP_STATUS_OK ? 0
													      : -1;
}

enum { OP_CHECK_AND_PUT, OP_LOOKUP, OP_PUT, OP_PUT_DEFERRED, OP_FLUSH };

/* One store call, timed into the latency histogram and counted. */
static int cons_store_once(struct cons_state *s, int op, uint64_t key)
{
	struct dedup_store *st = s->c->store;
	uint64_t t0 = clock_now_ns();
	int r;

	s->epoch = ledger_store_epoch(s->w->ledger); /* before it is sent: see ledger_note_marked_at */
	switch (op) {
	case OP_CHECK_AND_PUT:
		r = dedup_check_and_put(st, key, t0);
		break;
	case OP_LOOKUP:
		r = dedup_lookup(st, key, t0);
		break;
	case OP_PUT:
		r = dedup_put(st, key, t0);
		break;
	case OP_PUT_DEFERRED:
		r = dedup_put_deferred(st, key, t0);
		break;
	default:
		r = dedup_flush(st);
		break;
	}
	stats_hist_add(&s->w->store_latency, clock_now_ns() - t0);
	if (r < 0)
		atomic_fetch_add(&s->w->store_errors, 1);
	if (op == OP_CHECK_AND_PUT || op == OP_LOOKUP)
		atomic_fetch_add(&s->w->lookups, 1);
	if (op == OP_PUT || op == OP_PUT_DEFERRED || (op == OP_CHECK_AND_PUT && r == 0))
		atomic_fetch_add(&s->w->inserts, 1);
	return r;
}

/*
 * A store call. With dedup.on_error = closed a failed one is tried again
 * until the store answers (or the run stops): the consumer stalls, and the
 * stall is counted. A flush is not tried again: its queued inserts died with
 * the connection (cons_flush_deferred inserts them again one by one).
 */
static int cons_store_call(struct cons_state *s, int op, uint64_t key)
{
	struct workload *w = s->w;
	int r = cons_store_once(s, op, key);
	uint64_t t0;

	if (r >= 0 || op == OP_FLUSH || w->sc->store.on_error != SCENARIO_ON_ERROR_CLOSED)
		return r;
	t0 = clock_now_ns();
	atomic_fetch_add(&w->store_stalls, 1);
	while (r < 0 && !atomic_load(&w->stop)) {
		clock_sleep_ns(STALL_RETRY_NS);
		r = cons_store_once(s, op, key);
	}
	atomic_fetch_add(&w->store_stalled_ns, clock_now_ns() - t0);
	return r;
}

static void cons_mark(struct cons_state *s, size_t m, bool deferred);

/* Makes queued inserts visible, and tells the ledger; a failed flush made none of them visible. */
static void cons_flush_deferred(struct cons_state *s)
{
	bool ok;

	if (!s->ndeferred)
		return;
	ok = cons_store_call(s, OP_FLUSH, 0) == 0;
	if (!ok && s->w->sc->store.on_error == SCENARIO_ON_ERROR_CLOSED) {
		size_t n = s->ndeferred;

		s->ndeferred = 0;
		for (size_t i = 0; i < n; i++) /* fail-closed: each again, at once, until it is in */
			cons_mark(s, s->deferred[i], false);
		return;
	}
	for (size_t i = 0; i < s->ndeferred; i++) {
		if (ok)
			ledger_note_marked_at(s->w->ledger, s->deferred[i], s->deferred_epoch[i]);
		else
			ledger_note_mark_failed(s->w->ledger, s->deferred[i]);
	}
	s->ndeferred = 0;
}

/* Inserts m's key: queued (pipelined) when `deferred`, else at once. */
static void cons_mark(struct cons_state *s, size_t m, bool deferred)
{
	if (deferred) {
		if (cons_store_call(s, OP_PUT_DEFERRED, (uint64_t)m + 1) < 0) {
			ledger_note_mark_failed(s->w->ledger, m);
			return;
		}
		s->deferred_epoch[s->ndeferred] = s->epoch;
		s->deferred[s->ndeferred++] = m;
		if (s->ndeferred == DEFERRED_MAX)
			cons_flush_deferred(s);
		return;
	}
	if (cons_store_call(s, OP_PUT, (uint64_t)m + 1) == 0)
		ledger_note_marked_at(s->w->ledger, m, s->epoch);
	else
		ledger_note_mark_failed(s->w->ledger, m);
}

/* Where this delivery kills the consumer, drawn once per delivery: consumer_crash_at, or CRASH_NONE. */
static enum cons_crash_at cons_crash_draw(struct cons_state *s)
{
	const struct scenario *sc = s->w->sc;

	if (sc->faults.consumer_crash <= 0 || rng_unit(&s->crash_rng) >= sc->faults.consumer_crash)
		return CRASH_NONE;
	switch (sc->faults.consumer_crash_at) {
	case SCENARIO_CRASH_BEFORE_MARK:
		return CRASH_BEFORE_MARK;
	case SCENARIO_CRASH_AFTER_MARK:
		return CRASH_AFTER_MARK;
	default:
		return CRASH_AFTER_PROCESS;
	}
}

/*
 * The consumer dies: no ack, the connection dropped (the broker redelivers
 * everything unacked), queued inserts gone, and a memory of its own wiped;
 * redis and tokyocabinet keep what reached them. Then it starts over.
 */
static void cons_crash(struct cons_state *s)
{
	struct workload *w = s->w;
	char err[256];

	atomic_fetch_add(&w->consumer_crashes, 1);
	session_end(&s->sess, EVENTS_CONSUMER_CRASH);
	s->ndeferred = 0;
	if (s->c->own_store) {
		dedup_abandon(s->c->store);
		s->c->store = dedup_factory_open(w->stores, s->c->id, err, sizeof(err));
		if (!s->c->store) {
			snprintf(s->c->error, sizeof(s->c->error), "%s", err);
			atomic_fetch_add(&w->store_errors, 1);
		}
	}
	cons_drop(s, "crashed (consumer_crash)");
}

/*
 * The dedup decision for d: true when the store says "seen". With mark =
 * before the decision and the mark are one check-and-put, except when this
 * delivery is to crash before its mark: then a lookup, so that the crash can
 * fall between the two (d->marked says whether the key went in). A failing
 * store: go on as if the key were absent (on_error = open), and say so; with
 * on_error = closed cons_store_call waits for it (only a stop gives up).
 */
static bool cons_decide(struct cons_state *s, struct cons_delivery *d, bool redelivered)
{
	uint64_t key = (uint64_t)d->m + 1;
	int r;

	if (!s->c->store)
		return false;
	switch (dedup_policy_decide(&s->policy, d->count, redelivered, d->crash == CRASH_BEFORE_MARK)) {
	case DEDUP_ASSUME_FIRST:
		d->deferred = dedup_policy_defers(&s->policy);
		return false;
	case DEDUP_LOOKUP:
		d->looked_up = true;
		r = cons_store_call(s, OP_LOOKUP, key);
		d->store_error = r < 0;
		return r == 1;
	case DEDUP_CHECK_AND_PUT:
		break;
	}
	d->looked_up = true;
	r = cons_store_call(s, OP_CHECK_AND_PUT, key);
	if (r == 0) {
		ledger_note_marked_at(s->w->ledger, d->m, s->epoch);
		d->marked = true;
	} else if (r < 0) {
		d->store_error = true;
		ledger_note_mark_failed(s->w->ledger, d->m);
		d->marked = true; /* tried: not again */
	}
	return r == 1;
}

/* Counts the delivery for the ack; sends the (multiple-)ack when ack_every are due. 0, or -1 when it failed. */
static int cons_ack(struct cons_state *s, uint64_t tag)
{
	s->last_tag = tag;
	s->unacked++;
	if (s->unacked >= s->w->sc->consumers.ack_every)
		return cons_flush_acks(s);
	return 0;
}

/* The side effect's work (the inbox runs it inside its transaction); a slow one works slow_work. */
static void cons_work(struct cons_state *s)
{
	const struct scenario *sc = s->w->sc;
	uint64_t work = sc->consumers.work_ns;

	if (sc->consumers.slow > 0 && rng_unit(&s->slow_rng) < sc->consumers.slow)
		work = sc->consumers.slow_work_ns;
	if (work)
		clock_sleep_ns(work);
	if (work > s->away_max_ns)
		s->away_max_ns = work;
}

/* The side effect completed: the ledger's execution. */
static void cons_executed(struct cons_state *s, struct cons_delivery *d)
{
	struct ledger *l = s->w->ledger;

	ledger_note_executed(l, d->m, s->c->id, clock_now_ns(), d->published >= 0 ? l->t0_ns + (uint64_t)d->published : 0,
			     d->accept, d->looked_up, d->seen ? d->charge : 0);
	atomic_fetch_add(&s->w->executions, 1);
	d->done = true;
}

/* The side effect: the work, then the ledger's execution. */
static void cons_process(struct cons_state *s, struct cons_delivery *d)
{
	cons_work(s);
	cons_executed(s, d);
}

/*
 * Runs the policy's steps in order; CONS_END_CRASH when the drawn crash
 * struck between them, CONS_END_NACK when the handler failed right after
 * the side effect (a mark that was to follow is not made).
 */
static enum cons_end cons_steps(struct cons_state *s, struct cons_delivery *d)
{
	const enum dedup_step *steps = dedup_policy_steps(&s->policy);

	for (int i = 0; i < 2; i++) {
		if (steps[i] == DEDUP_STEP_PROCESS) {
			cons_process(s, d);
			if (d->crash == CRASH_AFTER_PROCESS)
				return CONS_END_CRASH;
			if (d->nack)
				return CONS_END_NACK;
			continue;
		}
		if (d->crash == CRASH_BEFORE_MARK)
			return CONS_END_CRASH;
		if (s->c->store && !d->marked)
			cons_mark(s, d->m, d->deferred);
		if (d->crash == CRASH_AFTER_MARK)
			return CONS_END_CRASH;
	}
	return CONS_END_OK;
}

/* consumers.nack_requeue: does the handler fail on this delivery (a crash drawn for it wins)? */
static bool cons_nack_draw(struct cons_state *s, const struct cons_delivery *d)
{
	double p = s->w->sc->consumers.nack_requeue;

	return p > 0 && d->crash == CRASH_NONE && rng_unit(&s->nack_rng) < p;
}

/*
 * The handler failed after its side effect: basic.nack requeue=true, as a
 * client library does when the handler throws. The nack is a fault event of
 * its own, and the redelivery it causes is charged to it (the session stays
 * up, so charging the session would lump every nack of it into one event).
 * Acks counted before it go out first: a later multiple-ack must not be
 * what settles them. 0, or -1 when the connection failed.
 */
static int cons_nack(struct cons_state *s, const struct cons_delivery *d, uint64_t tag)
{
	struct workload *w = s->w;
	events_id ev = events_note_instant(w->events, EVENTS_NACK_REQUEUE, EVENTS_CONSUMER, s->c->id, s->sess.opened,
					   clock_now_ns());

	if (cons_flush_acks(s) < 0)
		return -1;
	ledger_note_handover(w->ledger, d->m, ev);
	return amqp_basic_nack(s->sess.conn, 1, tag, 0, 1) == AMQP_STATUS_OK ? 0 : -1;
}

/* ---------- the transactional inbox (dedup.store = postgres) ---------- */

struct cons_tx {
	struct cons_state *s;
	struct cons_delivery *d;
	bool accepted;
	uint64_t work_ns; /* time spent in the work, not the store's */
};

/*
 * Inside the open transaction: the key is in (visible to no one), so the
 * delivery is accepted and the work done; before-mark dies before the work,
 * after-mark after the effect's row, both before COMMIT: rolled back. A nack
 * drawn for it (consumers.nack_requeue) is the handler throwing after its
 * work, before COMMIT: the store rolls back, and the consumer nacks.
 */
static enum dedup_tx_step cons_tx_at(void *arg, enum dedup_tx_stage stage)
{
	struct cons_tx *t = arg;
	struct cons_delivery *d = t->d;
	uint64_t t0 = clock_now_ns();

	if (stage == DEDUP_TX_EFFECT) {
		if (d->crash == CRASH_AFTER_MARK)
			return DEDUP_TX_DIE;
		return d->nack ? DEDUP_TX_FAIL : DEDUP_TX_GO;
	}
	d->accept = ledger_note_accept(t->s->w->ledger, d->m, t->s->c->id, t0, d->seen);
	t->accepted = true;
	if (d->crash == CRASH_BEFORE_MARK)
		return DEDUP_TX_DIE;
	cons_work(t->s);
	t->work_ns += clock_now_ns() - t0;
	return DEDUP_TX_GO;
}

/* The transaction failed (rolled back): the message goes back to the queue, as an inbox's retry would. */
static int cons_tx_failed(struct cons_state *s, struct cons_tx *t, uint64_t tag)
{
	struct ledger *l = s->w->ledger;

	if (!t->accepted)
		t->d->accept = ledger_note_accept(l, t->d->m, s->c->id, clock_now_ns(), t->d->seen);
	ledger_note_abandoned(l, t->d->m);
	return amqp_basic_reject(s->sess.conn, 1, tag, 1) == AMQP_STATUS_OK ? 0 : -1;
}

/*
 * One delivery through the inbox: the key and the effect commit together.
 * The ledger sees the execution exactly when the COMMIT succeeded; a crash
 * after it (after-process) leaves the ack unsent, and the redelivery finds
 * the key. Returns as cons_handle.
 */
static int cons_inbox(struct cons_state *s, struct cons_delivery *d, uint64_t tag)
{
	struct cons_tx t = { .s = s, .d = d };
	struct dedup_effect fx = { .at = cons_tx_at, .arg = &t, .consumer = s->c->id };
	uint64_t t0 = clock_now_ns();
	int r = dedup_execute_once(s->c->store, (uint64_t)d->m + 1, t0, &fx);

	stats_hist_add(&s->w->store_latency, clock_now_ns() - t0 - t.work_ns);
	atomic_fetch_add(&s->w->lookups, 1);
	d->looked_up = true;
	if (r == DEDUP_TX_SEEN) {
		ledger_note_rejected(s->w->ledger, d->m);
		return cons_ack(s, tag);
	}
	if (r < 0) {
		atomic_fetch_add(&s->w->store_errors, 1);
		return cons_tx_failed(s, &t, tag);
	}
	if (r == DEDUP_TX_FAILED) {
		ledger_note_abandoned(s->w->ledger, d->m); /* the work rolled back with the key */
		return cons_nack(s, d, tag);
	}
	if (r == DEDUP_TX_DONE) {
		atomic_fetch_add(&s->w->inserts, 1);
		ledger_note_marked(s->w->ledger, d->m);
		cons_executed(s, d);
		if (d->crash != CRASH_AFTER_PROCESS)
			return cons_ack(s, tag);
	} else {
		ledger_note_abandoned(s->w->ledger, d->m);
	}
	cons_crash(s); /* abandons the store: an open transaction rolls back */
	return 1;
}

/*
 * One delivery: ledger, dedup decision, then the policy's steps, then the
 * ack. A crash drawn for this delivery happens exactly at its step:
 *   before: decide -> [before-mark] -> mark -> [after-mark] -> process -> [after-process] -> ack
 *   after:  decide -> process -> [after-process = before-mark] -> mark -> [after-mark] -> ack
 * A crash before the side effect leaves it undone (abandoned); after it, done.
 * A nack drawn for it (consumers.nack_requeue) comes right after the side
 * effect, in place of whatever follows (the mark with mark = after, the ack).
 * Returns 0, -1 when the ack or nack could not be sent, 1 when the consumer crashed.
 */
static int cons_handle(struct cons_state *s, amqp_envelope_t *e)
{
	struct workload *w = s->w;
	struct ledger *l = w->ledger;
	const amqp_basic_properties_t *p = &e->message.properties;
	uint64_t now = clock_now_ns();
	struct cons_delivery d = { 0 };

	atomic_fetch_add(&w->deliveries, 1);
	atomic_store(&w->last_delivery_ns, now);
	if (!(p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) ||
	    msgid_parse(&s->ids, p->message_id.bytes, p->message_id.len, &d.m) < 0) {
		ledger_note_foreign(l);
		return cons_ack(s, e->delivery_tag);
	}
	d.count = mq_header_int(p, "x-republish-count", 0);
	d.published = mq_header_int(p, "x-published-ns", -1);
	d.charge = ledger_note_delivery_from(l, d.m, d.count < 0 ? 0 : (unsigned)d.count, s->sess.event,
					     (events_id)mq_header_int(p, "x-dupsim-event", 0),
					     (events_id)mq_header_int(p, "x-dupsim-from", 0));
	d.seen = ledger_note_decision(l, d.m, now, d.charge);
	if (d.seen)
		atomic_fetch_add(&w->duplicate_deliveries, 1);
	d.crash = cons_crash_draw(s);
	d.nack = cons_nack_draw(s, &d);
	if (dedup_has_tx(s->c->store))
		return cons_inbox(s, &d, e->delivery_tag);
	if (cons_decide(s, &d, e->redelivered)) {
		ledger_note_rejected(l, d.m);
		return cons_ack(s, e->delivery_tag);
	}
	d.accept = ledger_note_accept(l, d.m, s->c->id, now, d.seen);
	if (d.store_error)
		d.accept |= LEDGER_ACCEPT_STORE_ERROR;
	switch (cons_steps(s, &d)) {
	case CONS_END_CRASH:
		if (!d.done)
			ledger_note_abandoned(l, d.m);
		cons_crash(s);
		return 1;
	case CONS_END_NACK:
		return cons_nack(s, &d, e->delivery_tag);
	case CONS_END_OK:
		break;
	}
	return cons_ack(s, e->delivery_tag);
}

/* A channel.close for an unacked delivery held past consumer_timeout (rabbit_channel's PRECONDITION_FAILED). */
static bool cons_is_ack_timeout(const amqp_frame_t *f)
{
	const amqp_channel_close_t *m = f->payload.method.decoded;
	static const char needle[] = "delivery acknowledgement";

	if (f->payload.method.id != AMQP_CHANNEL_CLOSE_METHOD || !m || m->reply_code != AMQP_PRECONDITION_FAILED)
		return false;
	for (size_t i = 0; i + sizeof(needle) - 1 <= m->reply_text.len; i++)
		if (memcmp((const char *)m->reply_text.bytes + i, needle, sizeof(needle) - 1) == 0)
			return true;
	return false;
}

/* A frame other than a delivery arrived: a close or a cancel ends the connection (what was unacked comes back). */
static void cons_other_frame(struct cons_state *s, struct timeval *tv)
{
	amqp_frame_t f;
	int rc = amqp_simple_wait_frame_noblock(s->sess.conn, &f, tv);
	uint32_t id;

	if (rc != AMQP_STATUS_OK) {
		cons_lost(s, rc, amqp_error_string2(rc));
		return;
	}
	id = f.frame_type == AMQP_FRAME_METHOD ? f.payload.method.id : 0;
	if (id != AMQP_CHANNEL_CLOSE_METHOD && id != AMQP_CONNECTION_CLOSE_METHOD && id != AMQP_BASIC_CANCEL_METHOD)
		return;
	if (cons_is_ack_timeout(&f)) {
		session_end(&s->sess, EVENTS_CONSUMER_TIMEOUT);
		cons_drop(s, "channel closed by the broker: delivery acknowledgement timed out (consumer_timeout)");
		return;
	}
	cons_drop(s, "closed by the broker");
}

/*
 * The run is over: a close the broker sent, or a socket it closed, while
 * this consumer was at work may wait unread. Its session still gets its kind
 * (the duplicates charged to it came from that close). Frames only, so no
 * delivery reaches the ledger now: what is unread goes back to the queue.
 */
static void cons_last_frames(struct cons_state *s)
{
	uint64_t hb = (uint64_t)s->sess.heartbeat_s * NS_PER_S;

	for (int i = 0; i < 100000 && s->sess.event; i++) {
		struct timeval zero = { 0, 0 };
		amqp_frame_t f;
		int rc = amqp_simple_wait_frame_noblock(s->sess.conn, &f, &zero);

		if (rc == AMQP_STATUS_TIMEOUT)
			return;
		if (rc != AMQP_STATUS_OK) {
			if (hb && (rc == AMQP_STATUS_HEARTBEAT_TIMEOUT || s->away_max_ns >= 2 * hb))
				session_end(&s->sess, EVENTS_HEARTBEAT_TIMEOUT);
			return;
		}
		if (f.frame_type == AMQP_FRAME_METHOD && cons_is_ack_timeout(&f))
			session_end(&s->sess, EVENTS_CONSUMER_TIMEOUT);
	}
}

void *consumer_main(void *arg)
{
	struct consumer *c = arg;
	const struct scenario *sc = c->w->sc;
	struct cons_state s = {
		.c = c,
		.w = c->w,
		.policy = { .check = sc->dedup.check, .mark = sc->dedup.mark },
		.ids = workload_ids(c->w),
	};

	session_init(&s.sess, c->w, EVENTS_CONSUMER, c->id, c->error, sizeof(c->error));
	rng_seed(&s.crash_rng, sc->run.seed * 1000003u + c->id);
	rng_seed(&s.slow_rng, sc->run.seed * 1000033u + c->id + 0x510u);
	s.sess.heartbeat_s = (int)(sc->consumers.heartbeat_ns / NS_PER_S);
	rng_seed(&s.nack_rng, sc->run.seed * 2000003u + c->id + 7);
	while (!atomic_load(&s.w->stop)) {
		amqp_envelope_t e;
		amqp_rpc_reply_t r;
		struct timeval tv = { .tv_sec = 0, .tv_usec = POLL_NS / 1000 };
		char why[200];

		if (!s.sess.conn && cons_connect(&s) < 0)
			continue;
		amqp_maybe_release_buffers(s.sess.conn);
		r = amqp_consume_message(s.sess.conn, &e, &tv, 0);
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT) {
			/* idle: queued inserts and a partial multiple-ack go out now */
			if (s.c->store)
				cons_flush_deferred(&s);
			if (cons_flush_acks(&s) < 0)
				cons_lost(&s, 0, "ack failed: connection lost");
			continue;
		}
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
			cons_other_frame(&s, &tv);
			continue;
		}
		if (!mq_ok(r)) {
			if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
				cons_lost(&s, r.library_error, mq_reply_str(r, why, sizeof(why)));
			else
				cons_drop(&s, mq_reply_str(r, why, sizeof(why)));
			continue;
		}
		session_ok(&s.sess);
		if (cons_handle(&s, &e) < 0)
			cons_lost(&s, 0, "ack failed: connection lost");
		/* a crash dropped the connection already */
		amqp_destroy_envelope(&e);
	}
	if (s.c->store)
		cons_flush_deferred(&s);
	if (s.sess.conn)
		cons_flush_acks(&s);
	if (s.sess.conn)
		cons_last_frames(&s);
	session_release(&s.sess);
	return NULL;
}
