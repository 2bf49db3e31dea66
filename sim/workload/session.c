/* session.c — one worker's AMQP connection through the proxy: connect, its fault event, drop with backoff. */
#include "workload/session.h"

#include <stdio.h>

#include "core/clock.h"

void session_init(struct session *s, struct workload *w, enum events_role role, unsigned worker, char *error,
		  size_t errlen)
{
	*s = (struct session){ .w = w, .role = role, .worker = worker, .backoff_ns = SESSION_BACKOFF_MIN_NS,
			       .error = error, .errlen = errlen };
}

int session_connect(struct session *s, uint64_t *down_for)
{
	char err[256];

	s->conn = mq_open_heartbeat(&s->w->via, 5000, s->heartbeat_s, err, sizeof(err));
	if (!s->conn) {
		uint64_t now = clock_now_ns();

		if (!s->down_since)
			s->down_since = now;
		if (down_for)
			*down_for = now - s->down_since;
		session_drop(s, err);
		return -1;
	}
	s->down_since = 0;
	if (down_for)
		*down_for = 0;
	s->event = events_open(s->w->events, s->role, s->worker, ++s->opened, mq_local_port(s->conn));
	return 0;
}

void session_end(struct session *s, enum events_kind kind)
{
	if (!s->event)
		return;
	events_close(s->w->events, s->event, kind, clock_now_ns());
	s->failed = s->event;
	s->event = 0;
}

void session_drop(struct session *s, const char *why)
{
	session_end(s, EVENTS_CONNECTION_LOST);
	mq_abandon(s->conn);
	s->conn = NULL;
	snprintf(s->error, s->errlen, "%s", why);
	atomic_fetch_add(&s->w->reconnects, 1);
	clock_sleep_ns(s->backoff_ns);
	s->backoff_ns = s->backoff_ns * 2 > SESSION_BACKOFF_MAX_NS ? SESSION_BACKOFF_MAX_NS : s->backoff_ns * 2;
}

void session_release(struct session *s)
{
	mq_close(s->conn);
	s->conn = NULL;
	session_end(s, EVENTS_NONE);
}
