/* events.h — fault events: the one cause every duplicate delivery belongs to (a cut connection, a republished batch, a crash). */
#ifndef DUPSIM_EVENTS_H
#define DUPSIM_EVENTS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "evidence.h"

/*
 * Every AMQP connection a worker opens is a session, and a session is a
 * potential fault event: when it ends, what was unacked on it (a consumer)
 * is redelivered, or what was not confirmed on it (a publisher) is
 * republished. How it ended gives the event its kind: the proxy rule that
 * fired on it (found by the client's port), the consumer's own crash, or a
 * broker crash. Sessions ended by one broker crash are one event: the crash.
 */
enum events_kind {
	EVENTS_NONE,		/* the session did not end by a fault (still open at the end) */
	EVENTS_LOST_ACK,	/* a consumer's basic.ack dropped */
	EVENTS_LOST_COMMIT_OK,	/* a tx.commit-ok dropped */
	EVENTS_LOST_CONFIRM,	/* a publisher confirm (basic.ack/nack from the broker) dropped */
	EVENTS_RULE,		/* another proxy rule fired on it (a cut, a drop of another method) */
	EVENTS_CONSUMER_CRASH,	/* consumer_crash killed the consumer */
	EVENTS_BROKER_CRASH,	/* kill -9 of the broker */
	EVENTS_CONNECTION_LOST, /* the connection died, no fault of the run's on it (a timeout, an error) */
	EVENTS_UNATTRIBUTED,	/* duplicates the ledger could not tie to a session (a bug if ever > 0) */
	EVENTS_KINDS
};
const char *events_kind_name(enum events_kind k);

enum events_role { EVENTS_CONSUMER, EVENTS_PUBLISHER, EVENTS_BROKER };

/* Ids are 1-based; 0 means none. */
typedef uint32_t events_id;

struct events_entry {
	uint64_t open_ns, end_ns; /* session opened, ended (fault time for a rule); util_now_ns() */
	int32_t rule;		  /* proxy rule index that fired on it, -1 none */
	events_id crash;	  /* the broker-crash event that ended it, 0 none */
	uint8_t kind;		  /* enum events_kind */
	uint8_t role;		  /* enum events_role */
	uint16_t worker;	  /* consumer / publisher number */
	uint32_t session;	  /* that worker's connection number, from 1 */
	_Atomic uint64_t dups, misses;
};

/* One duplicate delivery: the session it was charged to and its gap. */
struct events_dup {
	events_id id;
	uint32_t gap_us; /* saturates at UINT32_MAX µs (71 min) */
};

#define EVENTS_CHUNK 4096
#define EVENTS_CHUNKS 4096 /* at most 16M sessions */

struct events {
	pthread_mutex_t lock;
	struct events_entry *chunk[EVENTS_CHUNKS];
	_Atomic uint32_t count;
	_Atomic events_id by_port[65536]; /* client port -> its open session */
	events_id unattributed;		  /* the one entry that collects unattributed duplicates */
	struct events_dup *dups;	  /* guarded by lock */
	size_t ndups, capdups;
	bool oom;			  /* a record could not be kept (reported by events_check) */
};

/* 0, or -1 out of memory. */
int events_init(struct events *ev);
void events_release(struct events *ev);

/* The entry of an id (1..count), or NULL. Lock-free. */
struct events_entry *events_get(struct events *ev, events_id id);

/*
 * A worker opened a connection: a new session. port: the client's local
 * port (0 unknown), for the proxy's faults. Returns its id, 0 when out of memory.
 */
events_id events_open(struct events *ev, enum events_role role, unsigned worker, uint32_t session, uint16_t port,
		      uint64_t now_ns);
/* The session ended; kind is how, when nothing else (a rule, a crash) said so first. */
void events_close(struct events *ev, events_id id, enum events_kind kind, uint64_t now_ns);
/* A proxy rule fired on the connection of client port `port` (from the proxy's thread). */
void events_note_rule(struct events *ev, uint16_t port, int32_t rule, enum events_kind kind, uint64_t now_ns);
/*
 * The broker was killed: a new event, and every session in open[0..n) (the
 * workers' current ones, 0 = none) that no rule ended already is ended by it.
 */
events_id events_note_crash(struct events *ev, const _Atomic events_id *open, size_t n, uint64_t now_ns);

/* A duplicate delivery charged to session id (0: unattributed), with its gap. */
void events_note_dup(struct events *ev, events_id id, uint64_t gap_ns);
/* One of the duplicates charged to id was processed again (a miss). */
void events_note_miss(struct events *ev, events_id id);

/* The event a session's duplicates count towards: the crash that ended it, or itself. */
events_id events_unit(struct events *ev, events_id id);

/*
 * The run's fault events, once quiet: every unit with a duplicate, a rule or
 * a crash. Filled by events_summarise; freed by events_summary_release.
 */
struct events_summary {
	size_t n;
	events_id *unit;	       /* the unit's id */
	struct evidence_event *ev;     /* its duplicates and misses */
	uint64_t with_dups;	       /* units that caused at least one duplicate: "fault events" */
	uint64_t by_kind[EVENTS_KINDS]; /* of those, by kind */
	uint64_t dups, misses;
	/* for the miss-vs-TTL curve: each unit's gaps, sorted, in one array */
	uint32_t *gaps_us;
	size_t *gap_start; /* unit i's gaps are gaps_us[gap_start[i] .. gap_start[i + 1]) */
};
int events_summarise(struct events *ev, struct events_summary *s);
void events_summary_release(struct events_summary *s);

/*
 * Per unit, the duplicates with a gap above ttl (µs): x[i] of d[i], for the
 * interval of P(gap > ttl). x and d have room for s->n.
 */
void events_summary_above(const struct events_summary *s, double ttl_us, uint64_t *x, uint64_t *d);

/* events.csv: t_s,kind,rule,connection,duplicates,misses; rule_text(i) names rule i. */
void events_write_csv(struct events *ev, const struct events_summary *s, FILE *f, uint64_t t0_ns,
		      const char *(*rule_text)(void *arg, int32_t rule), void *arg);

#endif
