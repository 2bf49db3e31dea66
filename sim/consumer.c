/* consumer.c — consumer threads: manual acks, prefetch, multiple-acks, the dedup decision, reconnect after a cut. */
#include <amqp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run.h"
#include "util.h"

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
	struct util_rng crash_rng;
	size_t deferred[DEFERRED_MAX]; /* messages whose insert is queued, not yet visible */
	size_t ndeferred;
	events_id session; /* the fault event this connection becomes when it ends; 0 none */
	uint32_t sessions; /* connections opened so far */
};

enum cons_step { STEP_BEFORE_MARK, STEP_AFTER_MARK, STEP_AFTER_PROCESS };

/* The session ends: `kind` says how, unless a rule or a crash said so first. */
static void cons_end_session(struct cons_state *s, enum events_kind kind)
{
	if (!s->session)
		return;
	events_close(s->rc->events, s->session, kind, util_now_ns());
	atomic_store(&s->rc->open_sessions[s->c->id], 0);
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
	util_sleep_ns(s->backoff_ns);
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
	s->session = events_open(s->rc->events, EVENTS_CONSUMER, s->c->id, ++s->sessions, mq_local_port(s->conn),
				 util_now_ns());
	atomic_store(&s->rc->open_sessions[s->c->id], s->session);
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
	uint64_t t0 = util_now_ns();
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
	stats_hist_add(&s->rc->store_latency, util_now_ns() - t0);
	if (r < 0)
		atomic_fetch_add(&s->rc->store_errors, 1);
	if (op == OP_CHECK_AND_PUT || op == OP_LOOKUP)
		atomic_fetch_add(&s->rc->lookups, 1);
	if (op == OP_PUT || op == OP_PUT_DEFERRED || (op == OP_CHECK_AND_PUT && r == 0))
		atomic_fetch_add(&s->rc->inserts, 1);
	return r;
}

/* Makes queued inserts visible, and tells the ledger. */
static void cons_flush_deferred(struct cons_state *s)
{
	if (!s->ndeferred)
		return;
	cons_store_call(s, OP_FLUSH, 0);
	for (size_t i = 0; i < s->ndeferred; i++)
		ledger_note_marked(s->rc->ledger, s->deferred[i]);
	s->ndeferred = 0;
}

/* Inserts m's key: queued (pipelined) when `deferred`, else at once. */
static void cons_mark(struct cons_state *s, size_t m, bool deferred)
{
	if (deferred) {
		cons_store_call(s, OP_PUT_DEFERRED, (uint64_t)m + 1);
		s->deferred[s->ndeferred++] = m;
		if (s->ndeferred == DEFERRED_MAX)
			cons_flush_deferred(s);
		return;
	}
	if (cons_store_call(s, OP_PUT, (uint64_t)m + 1) == 0)
		ledger_note_marked(s->rc->ledger, m);
}

/* Does this consumer die now, at this step of handling a delivery? */
static bool cons_crash_here(struct cons_state *s, enum cons_step step, bool draw)
{
	const struct scenario *sc = s->rc->sc;
	static const enum scenario_crash_at at_of[] = {
		[STEP_BEFORE_MARK] = SCENARIO_CRASH_BEFORE_MARK,
		[STEP_AFTER_MARK] = SCENARIO_CRASH_AFTER_MARK,
		[STEP_AFTER_PROCESS] = SCENARIO_CRASH_AFTER_PROCESS,
	};

	if (!draw || sc->faults.consumer_crash <= 0 || sc->faults.consumer_crash_at != at_of[step])
		return false;
	return util_rng_unit(&s->crash_rng) < sc->faults.consumer_crash;
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
 * One delivery: ledger, dedup decision, side effect, mark, then the ack.
 * The order of the steps depends on dedup.mark:
 *   before: decide -> [before-mark] -> mark -> [after-mark] -> process -> [after-process] -> ack
 *   after:  decide -> process -> [after-process = before-mark] -> mark -> [after-mark] -> ack
 * Returns 0, -1 when the ack could not be sent, 1 when the consumer crashed.
 */
static int cons_handle(struct cons_state *s, amqp_envelope_t *e)
{
	struct run_ctx *rc = s->rc;
	const struct scenario *sc = rc->sc;
	struct ledger *l = rc->ledger;
	const amqp_basic_properties_t *p = &e->message.properties;
	bool before = sc->dedup.mark == SCENARIO_MARK_BEFORE;
	bool have_store = s->c->store != NULL;
	bool looked_up = false, dup = false, marked = false, deferred = false, crash_draw, duplicate;
	unsigned acc;
	events_id charge;
	size_t m;
	int64_t count, published;
	uint64_t key, now;

	now = util_now_ns();
	atomic_fetch_add(&rc->deliveries, 1);
	atomic_store(&rc->last_delivery_ns, now);
	if (!(p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) ||
	    run_parse_message_id(rc, p->message_id.bytes, p->message_id.len, &m) < 0) {
		ledger_note_foreign(l);
		goto ack;
	}
	count = header_int(p, "x-republish-count", 0);
	published = header_int(p, "x-published-ns", -1);
	charge = ledger_note_delivery(l, m, count < 0 ? 0 : (unsigned)count, s->session,
				      (events_id)header_int(p, "x-dupsim-event", 0));
	duplicate = ledger_note_decision(l, m, now, charge);
	if (duplicate)
		atomic_fetch_add(&rc->duplicate_deliveries, 1);
	crash_draw = sc->faults.consumer_crash > 0;
	key = (uint64_t)m + 1;
	if (have_store) {
		bool flagged = count > 0 || e->redelivered;

		if (sc->dedup.check == SCENARIO_CHECK_ALWAYS || flagged) {
			looked_up = true;
			if (before) {
				int r = cons_store_call(s, OP_CHECK_AND_PUT, key);

				dup = r == 1;
				if (r == 0) {
					ledger_note_marked(l, m);
					marked = true;
				}
			} else {
				dup = cons_store_call(s, OP_LOOKUP, key) == 1;
			}
		} else {
			/* assumed first: inserted without a lookup, queued where the store
			 * pipelines (republish-count) or at once (flagged) */
			deferred = sc->dedup.check == SCENARIO_CHECK_REPUBLISH_COUNT;
		}
	}
	if (dup) {
		ledger_note_rejected(l, m);
		goto ack;
	}
	acc = ledger_note_accept(l, m, s->c->id, now);
	if (before) {
		if (cons_crash_here(s, STEP_BEFORE_MARK, crash_draw))
			goto crash_unprocessed;
		if (have_store && !marked)
			cons_mark(s, m, deferred);
		if (cons_crash_here(s, STEP_AFTER_MARK, crash_draw))
			goto crash_unprocessed;
	}
	if (sc->consumers.work_ns)
		util_sleep_ns(sc->consumers.work_ns);
	ledger_note_executed(l, m, s->c->id, util_now_ns(), published >= 0 ? l->t0_ns + (uint64_t)published : 0, acc,
			     looked_up, duplicate ? charge : 0);
	atomic_fetch_add(&rc->executions, 1);
	if (cons_crash_here(s, STEP_AFTER_PROCESS, crash_draw) ||
	    (!before && cons_crash_here(s, STEP_BEFORE_MARK, crash_draw)))
		goto crash;
	if (!before) {
		if (have_store)
			cons_mark(s, m, deferred);
		if (cons_crash_here(s, STEP_AFTER_MARK, crash_draw))
			goto crash;
	}
ack:
	s->last_tag = e->delivery_tag;
	s->unacked++;
	if (s->unacked >= sc->consumers.ack_every)
		return cons_flush_acks(s);
	return 0;
crash_unprocessed:
	ledger_note_abandoned(l, m);
crash:
	cons_crash(s);
	return 1;
}

void *consumer_main(void *arg)
{
	struct consumer *c = arg;
	struct cons_state s = { .c = c, .rc = c->rc, .backoff_ns = 20 * NS_PER_MS };

	util_rng_seed(&s.crash_rng, c->rc->sc->run.seed * 1000003u + c->id);

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
