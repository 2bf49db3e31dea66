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

/* The node this worker connects to next: its own first, the next one after each failure. */
static size_t session_node(const struct session *s)
{
	const struct workload *w = s->w;

	return w->nvia <= 1 ? 0 : (s->worker + (unsigned)s->role + s->failovers) % w->nvia;
}

static const struct mq_target *session_target(const struct session *s)
{
	return s->w->nvia <= 1 ? &s->w->via : &s->w->vias[session_node(s)];
}

int session_connect(struct session *s, uint64_t *down_for)
{
	char err[256];

	s->conn = mq_open_heartbeat(session_target(s), 5000, s->heartbeat_s, err, sizeof(err));
	if (!s->conn) {
		s->failovers++;
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
	if (s->w->nvia > 1)
		events_set_node(s->w->events, s->event, (unsigned)session_node(s) + 1);
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
	if (s->conn && s->w->nvia > 1)
		s->failovers++; /* a connection of a cluster that failed: its node may be down, try the next */
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
