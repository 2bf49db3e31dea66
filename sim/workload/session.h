/* session.h — one worker's AMQP connection through the proxy: connect, its fault event, drop with backoff. */
#ifndef DUPSIM_SESSION_H
#define DUPSIM_SESSION_H

#include <amqp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "truth/events.h"
#include "workload/workload.h"

/* Embedded in a publisher's or consumer's state. */
struct session {
	struct workload *w;
	enum events_role role;
	unsigned worker;
	amqp_connection_state_t conn; /* NULL while disconnected */
	events_id event;	      /* this connection's fault event; 0 none */
	events_id failed;	      /* the event that ended last (what a republish is charged to) */
	uint32_t opened;	      /* connections opened so far */
	uint32_t failovers;	      /* failed connects so far: which of a cluster's nodes is next */
	uint64_t backoff_ns;	      /* sleep after the next drop */
	uint64_t down_since;	      /* first failed connect since the last connection; 0: connected */
	int heartbeat_s;	      /* AMQP heartbeat asked for at connect; 0 none */
	char *error;		      /* the worker's "last problem" text, for the report */
	size_t errlen;
};

#define SESSION_BACKOFF_MIN_NS (20 * NS_PER_MS)
#define SESSION_BACKOFF_MAX_NS (1000 * NS_PER_MS)

void session_init(struct session *s, struct workload *w, enum events_role role, unsigned worker, char *error,
		  size_t errlen);

/*
 * Opens a logged-in connection through the proxy and its fault event.
 * 0, or -1 after session_drop (the reason is in the worker's error).
 * *down_for: how long connects have been failing (0 once connected).
 */
int session_connect(struct session *s, uint64_t *down_for);

/* Work went through: the next drop backs off from the minimum again. */
static inline void session_ok(struct session *s)
{
	s->backoff_ns = SESSION_BACKOFF_MIN_NS;
}

/* The fault event ends as `kind` (unless a proxy rule or a crash said so first). */
void session_end(struct session *s, enum events_kind kind);

/* The connection is gone or unusable: the event ends as connection_lost
 * (unless named already), the connection is dropped without a close, why
 * becomes the worker's error, and the thread backs off (20 ms doubling to 1 s). */
void session_drop(struct session *s, const char *why);

/* The end of the worker: a clean close, and the event ends with no fault. */
void session_release(struct session *s);

#endif
