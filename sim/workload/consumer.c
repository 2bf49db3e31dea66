/* consumer.c — consumer threads: manual acks, prefetch, multiple-acks, the dedup decision, reconnect after a cut. */
#include <amqp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/run.h"
#include "core/clock.h"
#include "core/rng.h"

#define POLL_NS (100 * NS_PER_MS)

int run_parse_message_id(const struct run_ctx *rc, const char *id, size_t len, size_t *index)
{
	uint64_t pub = 0, seq = 0;
	size_t i = 1;

	if (len < 4 || id[0] != 'p')
		return -1;
	for (; i < len && id[i] >= '0' && id[i] <= '9'; i++)
		pub = pub * 10 + (uint64_t)(id[i] - '0');
	if (i == 1 || i >= len || id[i] != '-' || ++i >= len)
		return -1;
	for (; i < len && id[i] >= '0' && id[i] <= '9'; i++)
		seq = seq * 10 + (uint64_t)(id[i] - '0');
	if (i != len || pub >= rc->sc->publishers.count || seq >= rc->per_publisher)
		return -1;
	if (pub * rc->per_publisher + seq >= rc->ledger->count)
		return -1;
	*index = (size_t)(pub * rc->per_publisher + seq);
	return 0;
}

static int64_t header_int(const amqp_basic_properties_t *p, const char *key, int64_t dflt)
{
	if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
		return dflt;
	for (int i = 0; i < p->headers.num_entries; i++) {
		const amqp_table_entry_t *e = &p->headers.entries[i];

		if (e->key.len != strlen(key) || memcmp(e->key.bytes, key, e->key.len) != 0)
			continue;
		switch (e->value.kind) {
		case AMQP_FIELD_KIND_I8:
			return e->value.value.i8;
		case AMQP_FIELD_KIND_U8:
			return e->value.value.u8;
		case AMQP_FIELD_KIND_I16:
			return e->value.value.i16;
		case AMQP_FIELD_KIND_U16:
			return e->value.value.u16;
		case AMQP_FIELD_KIND_I32:
			return e->value.value.i32;
		case AMQP_FIELD_KIND_U32:
			return e->value.value.u32;
		case AMQP_FIELD_KIND_I64:
			return e->value.value.i64;
		case AMQP_FIELD_KIND_U64:
			return (int64_t)e->value.value.u64;
		default:
			return dflt;
		}
	}
	return dflt;
}

#define DEFERRED_MAX 32 /* flushed before the store's own pipeline limit */

struct cons_state {
	struct consumer *c;
	struct run_ctx *rc;
	amqp_connection_state_t conn;
	uint64_t unacked;	/* deliveries handled since the last ack frame */
	uint64_t last_tag;
	uint64_t backoff_ns;
	struct rng crash_rng;
	size_t deferred[DEFERRED_MAX]; /* messages whose insert is queued, not yet visible */
	size_t ndeferred;
	events_id session; /* the fault event this connection becomes when it ends; 0 none */
	uint32_t sessions; /* connections opened so far */
};

enum cons_step { STEP_NONE, STEP_BEFORE_MARK, STEP_AFTER_MARK, STEP_AFTER_PROCESS };

/* The session ends: `kind` says how, unless a rule or a crash said so first. */
static void cons_end_session(struct cons_state *s, enum events_kind kind)
{
	if (!s->session)
		return;
	events_close(s->rc->events, s->session, kind, clock_now_ns());
	s->session = 0;
}

static void cons_drop_conn(struct cons_state *s, const char *why)
{
	cons_end_session(s, EVENTS_CONNECTION_LOST);
	if (s->conn) {
		mq_abandon(s->conn);
		s->conn = NULL;
	}
	/* acks not sent are lost with the connection: the broker redelivers */
	s->unacked = 0;
	snprintf(s->c->error, sizeof(s->c->error), "%s", why);
	atomic_fetch_add(&s->rc->reconnects, 1);
	clock_sleep_ns(s->backoff_ns);
	s->backoff_ns = s->backoff_ns * 2 > NS_PER_S ? NS_PER_S : s->backoff_ns * 2;
}

static int cons_connect(struct cons_state *s)
{
	const struct scenario *sc = s->rc->sc;
	char err[256], why[200];

	s->conn = mq_open(&s->rc->via, 5000, err, sizeof(err));
	if (!s->conn) {
		cons_drop_conn(s, err);
		return -1;
	}
	s->session = events_open(s->rc->events, EVENTS_CONSUMER, s->c->id, ++s->sessions, mq_local_port(s->conn));
	if (!amqp_basic_qos(s->conn, 1, 0, (uint16_t)sc->consumers.prefetch, 0)) {
		cons_drop_conn(s, "basic.qos failed");
		return -1;
	}
	amqp_basic_consume(s->conn, 1, amqp_cstring_bytes(sc->broker.queue), amqp_empty_bytes, 0, 0, 0,
			   amqp_empty_table);
	if (!mq_ok(amqp_get_rpc_reply(s->conn))) {
		mq_reply_str(amqp_get_rpc_reply(s->conn), why, sizeof(why));
		cons_drop_conn(s, why);
		return -1;
	}
	s->unacked = 0;
	return 0;
}

static int cons_flush_acks(struct cons_state *s)
{
	if (!s->unacked || !s->conn)
		return 0;
	s->unacked = 0;
	return amqp_basic_ack(s->conn, 1, s->last_tag, s->rc->sc->consumers.ack_every > 1) == AMQP_STATUS_OK ? 0 : -1;
}

enum { OP_CHECK_AND_PUT, OP_LOOKUP, OP_PUT, OP_PUT_DEFERRED, OP_FLUSH };

/* One store call, timed into the latency histogram and counted. */
static int cons_store_call(struct cons_state *s, int op, uint64_t key)
{
	struct dedup_store *st = s->c->store;
	uint64_t t0 = clock_now_ns();
	int r;

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
	stats_hist_add(&s->rc->store_latency, clock_now_ns() - t0);
	if (r < 0)
		atomic_fetch_add(&s->rc->store_errors, 1);
	if (op == OP_CHECK_AND_PUT || op == OP_LOOKUP)
		atomic_fetch_add(&s->rc->lookups, 1);
	if (op == OP_PUT || op == OP_PUT_DEFERRED || (op == OP_CHECK_AND_PUT && r == 0))
		atomic_fetch_add(&s->rc->inserts, 1);
	return r;
}

/* Makes queued inserts visible, and tells the ledger; a failed flush made none of them visible. */
static void cons_flush_deferred(struct cons_state *s)
{
	bool ok;

	if (!s->ndeferred)
		return;
	ok = cons_store_call(s, OP_FLUSH, 0) == 0;
	for (size_t i = 0; i < s->ndeferred; i++) {
		if (ok)
			ledger_note_marked(s->rc->ledger, s->deferred[i]);
		else
			ledger_note_mark_failed(s->rc->ledger, s->deferred[i]);
	}
	s->ndeferred = 0;
}

/* Inserts m's key: queued (pipelined) when `deferred`, else at once. */
static void cons_mark(struct cons_state *s, size_t m, bool deferred)
{
	if (deferred) {
		if (cons_store_call(s, OP_PUT_DEFERRED, (uint64_t)m + 1) < 0) {
			ledger_note_mark_failed(s->rc->ledger, m);
			return;
		}
		s->deferred[s->ndeferred++] = m;
		if (s->ndeferred == DEFERRED_MAX)
			cons_flush_deferred(s);
		return;
	}
	if (cons_store_call(s, OP_PUT, (uint64_t)m + 1) == 0)
		ledger_note_marked(s->rc->ledger, m);
	else
		ledger_note_mark_failed(s->rc->ledger, m);
}

/*
 * Where this delivery kills the consumer, drawn once per delivery: one of the
 * steps, or STEP_NONE. The step is consumer_crash_at, mapped onto this
 * delivery's order of steps (see cons_handle).
 */
static enum cons_step cons_crash_draw(struct cons_state *s)
{
	const struct scenario *sc = s->rc->sc;

	if (sc->faults.consumer_crash <= 0 || rng_unit(&s->crash_rng) >= sc->faults.consumer_crash)
		return STEP_NONE;
	switch (sc->faults.consumer_crash_at) {
	case SCENARIO_CRASH_BEFORE_MARK:
		return STEP_BEFORE_MARK;
	case SCENARIO_CRASH_AFTER_MARK:
		return STEP_AFTER_MARK;
	default:
		return STEP_AFTER_PROCESS;
	}
}

/*
 * The consumer dies: no ack, the connection dropped (the broker redelivers
 * everything unacked), queued inserts gone, and a memory of its own wiped;
 * redis and tokyocabinet keep what reached them. Then it starts over.
 */
static void cons_crash(struct cons_state *s)
{
	struct run_ctx *rc = s->rc;
	char err[256];

	atomic_fetch_add(&rc->consumer_crashes, 1);
	cons_end_session(s, EVENTS_CONSUMER_CRASH);
	s->ndeferred = 0;
	if (s->c->own_store) {
		dedup_abandon(s->c->store);
		s->c->store = rc->make_store(rc, s->c->id, err, sizeof(err));
		if (!s->c->store) {
			snprintf(s->c->error, sizeof(s->c->error), "%s", err);
			atomic_fetch_add(&rc->store_errors, 1);
		}
	}
	cons_drop_conn(s, "crashed (consumer_crash)");
}

/*
 * The dedup decision for a delivery of m: true when the store says "seen".
 * With mark = before the decision and the mark are one check-and-put, except
 * when this delivery is to crash before its mark: then a lookup, so that the
 * crash can fall between the two (*marked says whether the key went in).
 * *deferred: the policy skipped the lookup and the key is to be queued.
 */
static bool cons_decide(struct cons_state *s, size_t m, int64_t count, bool redelivered, enum cons_step crash,
			bool *looked_up, bool *marked, bool *deferred, bool *store_error)
{
	const struct scenario *sc = s->rc->sc;
	uint64_t key = (uint64_t)m + 1;
	int r;

	*looked_up = *marked = *deferred = *store_error = false;
	if (!s->c->store)
		return false;
	if (sc->dedup.check != SCENARIO_CHECK_ALWAYS && count <= 0 && !redelivered) {
		/* assumed first: inserted without a lookup, queued where the store
		 * pipelines (republish-count) or at once (flagged) */
		*deferred = sc->dedup.check == SCENARIO_CHECK_REPUBLISH_COUNT;
		return false;
	}
	*looked_up = true;
	/* a failing store: go on as if the key were absent (fail-open), and say so */
	if (sc->dedup.mark != SCENARIO_MARK_BEFORE || crash == STEP_BEFORE_MARK) {
		r = cons_store_call(s, OP_LOOKUP, key);
		*store_error = r < 0;
		return r == 1;
	}
	r = cons_store_call(s, OP_CHECK_AND_PUT, key);
	if (r == 0) {
		ledger_note_marked(s->rc->ledger, m);
		*marked = true;
	} else if (r < 0) {
		*store_error = true;
		ledger_note_mark_failed(s->rc->ledger, m);
		*marked = true; /* tried: not again */
	}
	return r == 1;
}

/* Counts the delivery for the ack; sends the (multiple-)ack when ack_every are due. 0, or -1 when it failed. */
static int cons_ack(struct cons_state *s, uint64_t tag)
{
	s->last_tag = tag;
	s->unacked++;
	if (s->unacked >= s->rc->sc->consumers.ack_every)
		return cons_flush_acks(s);
	return 0;
}

/*
 * One delivery: ledger, dedup decision, side effect, mark, then the ack.
 * The order of the steps depends on dedup.mark; a crash drawn for this
 * delivery happens exactly at its step:
 *   before: decide -> [before-mark] -> mark -> [after-mark] -> process -> [after-process] -> ack
 *   after:  decide -> process -> [after-process = before-mark] -> mark -> [after-mark] -> ack
 * A crash before the side effect leaves it undone (abandoned); after it, done.
 * Returns 0, -1 when the ack could not be sent, 1 when the consumer crashed.
 */
static int cons_handle(struct cons_state *s, amqp_envelope_t *e)
{
	struct run_ctx *rc = s->rc;
	const struct scenario *sc = rc->sc;
	struct ledger *l = rc->ledger;
	const amqp_basic_properties_t *p = &e->message.properties;
	bool before = sc->dedup.mark == SCENARIO_MARK_BEFORE;
	bool looked_up, marked, deferred, store_error;
	enum cons_step crash;
	unsigned acc, seen;
	size_t m;
	int64_t count, published;
	uint64_t now = clock_now_ns();
	events_id charge;

	atomic_fetch_add(&rc->deliveries, 1);
	atomic_store(&rc->last_delivery_ns, now);
	if (!(p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) ||
	    run_parse_message_id(rc, p->message_id.bytes, p->message_id.len, &m) < 0) {
		ledger_note_foreign(l);
		return cons_ack(s, e->delivery_tag);
	}
	count = header_int(p, "x-republish-count", 0);
	published = header_int(p, "x-published-ns", -1);
	charge = ledger_note_delivery(l, m, count < 0 ? 0 : (unsigned)count, s->session,
				      (events_id)header_int(p, "x-dupsim-event", 0));
	seen = ledger_note_decision(l, m, now, charge);
	if (seen)
		atomic_fetch_add(&rc->duplicate_deliveries, 1);
	crash = cons_crash_draw(s);
	if (cons_decide(s, m, count, e->redelivered, crash, &looked_up, &marked, &deferred, &store_error)) {
		ledger_note_rejected(l, m);
		return cons_ack(s, e->delivery_tag);
	}
	acc = ledger_note_accept(l, m, s->c->id, now, seen);
	if (store_error)
		acc |= LEDGER_ACCEPT_STORE_ERROR;
	if (before) {
		if (crash == STEP_BEFORE_MARK)
			goto crash_undone;
		if (s->c->store && !marked)
			cons_mark(s, m, deferred);
		if (crash == STEP_AFTER_MARK)
			goto crash_undone;
	}
	if (sc->consumers.work_ns)
		clock_sleep_ns(sc->consumers.work_ns);
	ledger_note_executed(l, m, s->c->id, clock_now_ns(), published >= 0 ? l->t0_ns + (uint64_t)published : 0, acc,
			     looked_up, seen ? charge : 0);
	atomic_fetch_add(&rc->executions, 1);
	if (crash == STEP_AFTER_PROCESS || (!before && crash == STEP_BEFORE_MARK))
		goto crash_done;
	if (!before) {
		if (s->c->store)
			cons_mark(s, m, deferred);
		if (crash == STEP_AFTER_MARK)
			goto crash_done;
	}
	return cons_ack(s, e->delivery_tag);
crash_undone:
	ledger_note_abandoned(l, m);
crash_done:
	cons_crash(s);
	return 1;
}

void *consumer_main(void *arg)
{
	struct consumer *c = arg;
	struct cons_state s = { .c = c, .rc = c->rc, .backoff_ns = 20 * NS_PER_MS };

	rng_seed(&s.crash_rng, c->rc->sc->run.seed * 1000003u + c->id);

	while (!atomic_load(&s.rc->stop)) {
		amqp_envelope_t e;
		amqp_rpc_reply_t r;
		struct timeval tv = { .tv_sec = 0, .tv_usec = POLL_NS / 1000 };

		if (!s.conn && cons_connect(&s) < 0)
			continue;
		amqp_maybe_release_buffers(s.conn);
		r = amqp_consume_message(s.conn, &e, &tv, 0);
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT) {
			/* idle: queued inserts and a partial multiple-ack go out now */
			if (s.c->store)
				cons_flush_deferred(&s);
			if (cons_flush_acks(&s) < 0)
				cons_drop_conn(&s, "ack failed: connection lost");
			continue;
		}
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		    r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
			amqp_frame_t f;

			/* a method other than basic.deliver: a close, or a cancel */
			if (amqp_simple_wait_frame_noblock(s.conn, &f, &tv) != AMQP_STATUS_OK ||
			    (f.frame_type == AMQP_FRAME_METHOD &&
			     (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
			      f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD ||
			      f.payload.method.id == AMQP_BASIC_CANCEL_METHOD)))
				cons_drop_conn(&s, "closed by the broker");
			continue;
		}
		if (!mq_ok(r)) {
			char why[200];

			cons_drop_conn(&s, mq_reply_str(r, why, sizeof(why)));
			continue;
		}
		s.backoff_ns = 20 * NS_PER_MS;
		if (cons_handle(&s, &e) < 0)
			cons_drop_conn(&s, "ack failed: connection lost");
		/* a crash dropped the connection already */
		amqp_destroy_envelope(&e);
	}
	if (s.c->store)
		cons_flush_deferred(&s);
	if (s.conn) {
		cons_flush_acks(&s);
		mq_close(s.conn);
	}
	cons_end_session(&s, EVENTS_NONE);
	return NULL;
}
