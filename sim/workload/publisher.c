/* publisher.c — publisher threads: tx or confirm mode, republish on timeout or cut with x-republish-count + 1. */
#include "workload/publisher.h"

#include <amqp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "workload/msgid.h"
#include "workload/session.h"

struct pub_state {
	struct publisher *p;
	struct workload *w;
	struct session sess;
	uint8_t *body;
	uint64_t sent;	    /* publishes, for the rate limit */
	uint64_t start_ns;
	/* confirm mode: unconfirmed messages by delivery tag, oldest first */
	uint64_t *pending;  /* message indices */
	uint64_t pending_head, pending_len, pending_cap;
	uint64_t first_tag; /* delivery tag of pending[head] */
	uint64_t *retry;    /* messages to publish again, in order */
	events_id *retry_cause; /* retry[i] is republished because session retry_cause[i] failed */
	uint64_t retry_len;
};

static int pub_connect(struct pub_state *s)
{
	const struct scenario *sc = s->w->sc;
	struct timeval tv = { .tv_sec = (time_t)(sc->publishers.timeout_ns / NS_PER_S),
			      .tv_usec = (suseconds_t)(sc->publishers.timeout_ns % NS_PER_S / 1000) };
	uint64_t down_for;

	if (session_connect(&s->sess, &down_for) < 0) {
		/* a broker that never comes back: give up after drain_timeout, the run says why */
		if (down_for > sc->run.drain_timeout_ns)
			s->p->gave_up = true;
		return -1;
	}
	amqp_set_rpc_timeout(s->sess.conn, &tv);
	if (sc->publishers.mode == SCENARIO_MODE_TX) {
		if (!amqp_tx_select(s->sess.conn, 1)) {
			session_drop(&s->sess, "tx.select failed");
			return -1;
		}
	} else if (!amqp_confirm_select(s->sess.conn, 1)) {
		session_drop(&s->sess, "confirm.select failed");
		return -1;
	}
	s->first_tag = 1;
	return 0;
}

static void pub_pace(struct pub_state *s)
{
	uint64_t rate = s->w->sc->publishers.rate;
	uint64_t due, now;

	if (!rate)
		return;
	due = s->start_ns + s->sent * NS_PER_S / rate;
	now = clock_now_ns();
	if (due > now)
		clock_sleep_ns(due - now);
}

/* Publishes message m (global index) once, republished because session `cause` failed (0: a first
 * publish); 0 or -1 when the connection failed. */
static int pub_send(struct pub_state *s, uint64_t m, events_id cause)
{
	struct workload *w = s->w;
	amqp_basic_properties_t props;
	amqp_table_entry_t hdr[4];
	char id[48];
	unsigned before;
	int rc_pub;

	pub_pace(s);
	/* counted before the write, whatever its outcome: the bytes may reach the broker */
	before = ledger_note_publish(w->ledger, m);
	msgid_format(id, sizeof(id), m);
	hdr[0].key = amqp_cstring_bytes("x-republish-count");
	hdr[0].value.kind = AMQP_FIELD_KIND_I32;
	hdr[0].value.value.i32 = (int32_t)before;
	hdr[1].key = amqp_cstring_bytes("x-published-ns");
	hdr[1].value.kind = AMQP_FIELD_KIND_I64;
	hdr[1].value.value.i64 = (int64_t)(clock_now_ns() - w->ledger->t0_ns);
	memset(&props, 0, sizeof(props));
	props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_HEADERS_FLAG |
		       AMQP_BASIC_TIMESTAMP_FLAG;
	props.delivery_mode = 2;
	props.message_id = amqp_cstring_bytes(id);
	props.timestamp = clock_wall_ns() / NS_PER_S;
	/* the session sending it: a copy read late, after its republished one, is charged to it */
	hdr[2].key = amqp_cstring_bytes("x-dupsim-from");
	hdr[2].value.kind = AMQP_FIELD_KIND_I64;
	hdr[2].value.value.i64 = s->sess.event;
	props.headers.num_entries = 3;
	if (cause && before > 0) {
		hdr[3].key = amqp_cstring_bytes("x-dupsim-event");
		hdr[3].value.kind = AMQP_FIELD_KIND_I64;
		hdr[3].value.value.i64 = cause;
		props.headers.num_entries = 4;
	}
	props.headers.entries = hdr;
	rc_pub = amqp_basic_publish(s->sess.conn, 1, amqp_empty_bytes, amqp_cstring_bytes(w->sc->broker.queue), 0, 0,
				    &props, (amqp_bytes_t){ w->sc->publishers.size, s->body });
	s->sent++;
	atomic_fetch_add(&w->published, 1);
	return rc_pub == AMQP_STATUS_OK ? 0 : -1;
}

static void pub_confirmed(struct pub_state *s, uint64_t m)
{
	ledger_note_confirm(s->w->ledger, m);
	atomic_fetch_add(&s->w->confirmed, 1);
}

static bool pub_interrupted(const struct pub_state *s)
{
	return atomic_load(&s->w->stop_publishing) || s->p->gave_up;
}

/* tx mode: publish a batch, commit; on a failed commit republish the batch on a new connection. */
static void pub_run_tx(struct pub_state *s)
{
	struct publisher *p = s->p;
	uint64_t batch = s->w->sc->publishers.batch;
	uint64_t next = p->first;

	while (next < p->end && !pub_interrupted(s)) {
		uint64_t b1 = next + batch < p->end ? next + batch : p->end;
		bool done = false;
		events_id cause = 0; /* the session whose failure makes this a republish */

		while (!done && !pub_interrupted(s)) {
			uint64_t m;

			if (!s->sess.conn && pub_connect(s) < 0)
				continue;
			for (m = next; m < b1; m++)
				if (pub_send(s, m, cause) < 0)
					break;
			if (m < b1) {
				session_drop(&s->sess, "publish failed: connection lost");
				cause = s->sess.failed;
				continue;
			}
			if (!amqp_tx_commit(s->sess.conn, 1)) {
				char why[200];

				mq_reply_str(amqp_get_rpc_reply(s->sess.conn), why, sizeof(why));
				session_drop(&s->sess, why);
				cause = s->sess.failed;
				continue;
			}
			for (m = next; m < b1; m++)
				pub_confirmed(s, m);
			/* the replies were decoded into the connection's pool: give it back, or it grows per commit */
			amqp_maybe_release_buffers(s->sess.conn);
			session_ok(&s->sess);
			done = true;
		}
		next = b1;
	}
}

static void pub_retry(struct pub_state *s, uint64_t m, events_id cause)
{
	s->retry_cause[s->retry_len] = cause;
	s->retry[s->retry_len++] = m;
}

static void pending_push(struct pub_state *s, uint64_t m)
{
	s->pending[(s->pending_head + s->pending_len) % s->pending_cap] = m;
	s->pending_len++;
}

/* Confirms (ok) or queues for republishing (nack) every pending tag up to tag. */
static void pub_settle(struct pub_state *s, uint64_t tag, bool multiple, bool ok)
{
	if (tag < s->first_tag)
		return; /* already settled */
	if (!multiple && tag != s->first_tag) {
		/* a single out-of-order settle: RabbitMQ confirms in order, so treat
		 * the ones before it as still pending, and this one as settled */
		uint64_t idx = tag - s->first_tag;
		uint64_t m;

		if (idx >= s->pending_len)
			return;
		m = s->pending[(s->pending_head + idx) % s->pending_cap];
		if (ok)
			pub_confirmed(s, m);
		else
			pub_retry(s, m, s->sess.event);
		/* mark as settled by pointing it at an impossible index */
		s->pending[(s->pending_head + idx) % s->pending_cap] = UINT64_MAX;
		return;
	}
	while (s->pending_len && s->first_tag <= tag) {
		uint64_t m = s->pending[s->pending_head];

		s->pending_head = (s->pending_head + 1) % s->pending_cap;
		s->pending_len--;
		s->first_tag++;
		if (m == UINT64_MAX)
			continue;
		if (ok)
			pub_confirmed(s, m);
		else
			pub_retry(s, m, s->sess.event);
	}
	/* settled entries at the front (out-of-order singles) can go too */
	while (s->pending_len && s->pending[s->pending_head] == UINT64_MAX) {
		s->pending_head = (s->pending_head + 1) % s->pending_cap;
		s->pending_len--;
		s->first_tag++;
	}
}

/* Everything unconfirmed goes back to the retry list, oldest first. */
static void pub_requeue_pending(struct pub_state *s)
{
	for (uint64_t i = 0; i < s->pending_len; i++) {
		uint64_t m = s->pending[(s->pending_head + i) % s->pending_cap];

		if (m != UINT64_MAX)
			pub_retry(s, m, s->sess.failed);
	}
	s->pending_len = 0;
	s->pending_head = 0;
}

/* confirm mode: keep up to `batch` unconfirmed; a timeout or a cut republishes them. */
static void pub_run_confirm(struct pub_state *s)
{
	struct publisher *p = s->p;
	uint64_t window = s->w->sc->publishers.batch;
	uint64_t next = p->first;
	uint64_t timeout = s->w->sc->publishers.timeout_ns;
	uint64_t last_progress = clock_now_ns();

	while ((next < p->end || s->retry_len || s->pending_len) && !pub_interrupted(s)) {
		amqp_frame_t f;
		struct timeval tv;
		uint64_t now, wait;
		int rc;

		if (!s->sess.conn) {
			pub_requeue_pending(s);
			if (pub_connect(s) < 0)
				continue;
			last_progress = clock_now_ns();
		}
		while (s->pending_len < window && (s->retry_len || next < p->end)) {
			events_id cause = 0;
			uint64_t m;

			if (s->retry_len) {
				m = s->retry[0];
				cause = s->retry_cause[0];
				memmove(s->retry, s->retry + 1, (s->retry_len - 1) * sizeof(*s->retry));
				memmove(s->retry_cause, s->retry_cause + 1, (s->retry_len - 1) * sizeof(*s->retry_cause));
				s->retry_len--;
			} else {
				m = next++;
			}
			pending_push(s, m);
			if (pub_send(s, m, cause) < 0)
				break;
		}
		if (!s->pending_len)
			continue;
		now = clock_now_ns();
		if (now - last_progress >= timeout) {
			session_drop(&s->sess, "confirm timeout");
			continue;
		}
		wait = timeout - (now - last_progress);
		if (wait > 100 * NS_PER_MS)
			wait = 100 * NS_PER_MS;
		tv.tv_sec = 0;
		tv.tv_usec = (suseconds_t)(wait / 1000);
		amqp_maybe_release_buffers(s->sess.conn); /* frames decoded so far are handled: free their pool */
		rc = amqp_simple_wait_frame_noblock(s->sess.conn, &f, &tv);
		if (rc == AMQP_STATUS_TIMEOUT)
			continue;
		if (rc != AMQP_STATUS_OK) {
			session_drop(&s->sess, amqp_error_string2(rc));
			continue;
		}
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
			amqp_basic_ack_t *a = f.payload.method.decoded;

			pub_settle(s, a->delivery_tag, a->multiple, true);
			last_progress = clock_now_ns();
			session_ok(&s->sess);
		} else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
			amqp_basic_nack_t *n = f.payload.method.decoded;

			pub_settle(s, n->delivery_tag, n->multiple, false);
			last_progress = clock_now_ns();
		} else if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
			   f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
			session_drop(&s->sess, "closed by the broker");
		}
	}
}

void *publisher_main(void *arg)
{
	struct publisher *p = arg;
	struct pub_state s = { .p = p, .w = p->w };
	uint64_t window = p->w->sc->publishers.batch;

	session_init(&s.sess, p->w, EVENTS_PUBLISHER, p->id, p->error, sizeof(p->error));
	s.body = malloc(p->w->sc->publishers.size + 1);
	s.pending_cap = window + 1;
	s.pending = malloc(s.pending_cap * sizeof(*s.pending));
	s.retry = malloc((window + 1) * 2 * sizeof(*s.retry));
	s.retry_cause = malloc((window + 1) * 2 * sizeof(*s.retry_cause));
	if (!s.body || !s.pending || !s.retry || !s.retry_cause) {
		snprintf(p->error, sizeof(p->error), "out of memory");
		goto out;
	}
	for (uint64_t i = 0; i < p->w->sc->publishers.size; i++)
		s.body[i] = (uint8_t)('a' + (p->id + i) % 26);
	s.start_ns = clock_now_ns();
	if (p->w->sc->publishers.mode == SCENARIO_MODE_TX)
		pub_run_tx(&s);
	else
		pub_run_confirm(&s);
	session_release(&s.sess);
out:
	free(s.body);
	free(s.pending);
	free(s.retry);
	free(s.retry_cause);
	atomic_fetch_sub(&p->w->publishers_running, 1);
	return NULL;
}
