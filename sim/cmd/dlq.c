/* dlq.c — delivery limits and the dead-letter queue: the queue's arguments, an operator's replay, the count at the end. */
#include "cmd/dlq.h"

#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"

void dlq_init(struct dlq *d, const struct scenario *sc, const struct mq_target *target)
{
	*d = (struct dlq){ .sc = sc, .target = target };
	if (sc->broker.dead_letter)
		snprintf(d->name, sizeof(d->name), "%s.dlq", sc->broker.queue);
}

void dlq_start(struct dlq *d, struct ledger *ledger, struct events *events, struct msgid_space ids,
	       uint64_t start_ns)
{
	d->ledger = ledger;
	d->events = events;
	d->ids = ids;
	if (d->sc->faults.dlq_replay_after_ns)
		d->replay_at_ns = start_ns + d->sc->faults.dlq_replay_after_ns;
}

static void dlq_arg_str(amqp_table_entry_t *e, const char *key, const char *value)
{
	e->key = amqp_cstring_bytes(key);
	e->value.kind = AMQP_FIELD_KIND_UTF8;
	e->value.value.bytes = amqp_cstring_bytes(value);
}

/* Declares the DLQ (a durable classic queue) and empties it: a run starts with none dead-lettered. */
static int dlq_declare(struct dlq *d, amqp_connection_state_t c, char *err, size_t errlen)
{
	char why[256];

	amqp_queue_declare(c, 1, amqp_cstring_bytes(d->name), 0, 1, 0, 0, amqp_empty_table);
	if (mq_ok(amqp_get_rpc_reply(c))) {
		amqp_queue_purge(c, 1, amqp_cstring_bytes(d->name));
		if (mq_ok(amqp_get_rpc_reply(c)))
			return 0;
	}
	return log_seterr(err, errlen, "declaring the dead-letter queue '%s' failed: %s (a queue of that name with "
			  "other arguments? delete it)", d->name, mq_reply_str(amqp_get_rpc_reply(c), why, sizeof(why)));
}

int dlq_setup(struct dlq *d, amqp_connection_state_t c, amqp_table_t *args, char *err, size_t errlen)
{
	amqp_table_entry_t *e = args->entries + args->num_entries;

	if (d->sc->broker.delivery_limit) {
		e->key = amqp_cstring_bytes("x-delivery-limit");
		e->value.kind = AMQP_FIELD_KIND_I64;
		e->value.value.i64 = (int64_t)d->sc->broker.delivery_limit;
		e++;
	}
	if (d->name[0]) {
		if (dlq_declare(d, c, err, errlen) < 0)
			return -1;
		dlq_arg_str(e++, "x-dead-letter-exchange", "");
		dlq_arg_str(e++, "x-dead-letter-routing-key", d->name);
	}
	args->num_entries = (int)(e - args->entries);
	return 0;
}

bool dlq_replay_due(const struct dlq *d, uint64_t now, bool quiet)
{
	return d->replay_at_ns && !d->replayed && (now >= d->replay_at_ns || quiet);
}

/* The next message of the DLQ: 1 with it in *msg, 0 when it is empty, -1 on an error. */
static int dlq_get(amqp_connection_state_t c, const char *queue, amqp_message_t *msg, uint64_t *tag)
{
	amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(queue), 0);

	if (!mq_ok(r))
		return -1;
	if (r.reply.id != AMQP_BASIC_GET_OK_METHOD)
		return 0;
	*tag = ((amqp_basic_get_ok_t *)r.reply.decoded)->delivery_tag;
	return mq_ok(amqp_read_message(c, 1, msg, 0)) ? 1 : -1;
}

/* The ledger index of a message of this run, or SIZE_MAX. */
static size_t dlq_index(const struct dlq *d, const amqp_message_t *msg)
{
	const amqp_basic_properties_t *p = &msg->properties;
	size_t m;

	if (!(p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) ||
	    msgid_parse(&d->ids, p->message_id.bytes, p->message_id.len, &m) < 0)
		return SIZE_MAX;
	return m;
}

/* Publishes msg back into the queue and waits for its confirm; then it leaves the DLQ. 0 or -1. */
static int dlq_move(struct dlq *d, amqp_connection_state_t c, amqp_message_t *msg, uint64_t tag, events_id ev)
{
	size_t m = dlq_index(d, msg);
	amqp_frame_t f;
	struct timeval tv = { 5, 0 };

	if (m != SIZE_MAX)
		ledger_note_handover(d->ledger, m, ev); /* before the copy can be delivered */
	if (amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(d->sc->broker.queue), 0, 0,
			       &msg->properties, msg->body) != AMQP_STATUS_OK)
		return -1;
	do {
		if (amqp_simple_wait_frame_noblock(c, &f, &tv) != AMQP_STATUS_OK)
			return -1;
	} while (f.frame_type != AMQP_FRAME_METHOD || f.payload.method.id != AMQP_BASIC_ACK_METHOD);
	return amqp_basic_ack(c, 1, tag, 0) == AMQP_STATUS_OK ? 0 : -1;
}

int64_t dlq_replay(struct dlq *d)
{
	char err[256];
	amqp_connection_state_t c = mq_open(d->target, 5000, err, sizeof(err));
	events_id ev = 0;
	int64_t moved = 0;
	int got = -1;

	d->replayed = true;
	if (!c || !amqp_confirm_select(c, 1)) {
		log_line("run: faults.dlq_replay_after: cannot reach the broker to replay '%s': %s", d->name,
			 c ? "confirm.select failed" : err);
		mq_abandon(c);
		return -1;
	}
	for (;;) {
		amqp_message_t msg;
		uint64_t tag;

		amqp_maybe_release_buffers(c);
		if ((got = dlq_get(c, d->name, &msg, &tag)) <= 0)
			break;
		if (!ev) /* one operator, one action: one fault event for everything it moves */
			ev = events_note_instant(d->events, EVENTS_DLQ_REPLAY, EVENTS_BROKER, 0, 0, clock_now_ns());
		got = dlq_move(d, c, &msg, tag, ev);
		amqp_destroy_message(&msg);
		if (got < 0)
			break;
		moved++;
	}
	if (got < 0)
		log_line("run: faults.dlq_replay_after: the replay of '%s' failed after %lld messages", d->name,
			 (long long)moved);
	d->moved += (uint64_t)moved;
	mq_close(c);
	return got < 0 ? -1 : moved;
}

void dlq_count_left(struct dlq *d)
{
	char err[256];
	amqp_connection_state_t c = d->name[0] ? mq_open(d->target, 5000, err, sizeof(err)) : NULL;
	amqp_message_t msg;
	uint64_t tag;

	if (!c) {
		if (d->name[0])
			log_line("run: cannot read the dead-letter queue '%s': %s", d->name, err);
		return;
	}
	while (dlq_get(c, d->name, &msg, &tag) > 0) {
		size_t m = dlq_index(d, &msg);

		if (m != SIZE_MAX)
			ledger_note_dead_lettered(d->ledger, m);
		d->left++;
		amqp_destroy_message(&msg);
		amqp_maybe_release_buffers(c);
		/* kept: a later basic.recover (the close) puts them back for whoever looks */
		if (!d->sc->broker.keep_queue && amqp_basic_ack(c, 1, tag, 0) != AMQP_STATUS_OK)
			break;
	}
	mq_close(c);
}
