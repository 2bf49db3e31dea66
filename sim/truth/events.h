/* events.h — fault events: the one cause every duplicate delivery belongs to (a cut connection, a republished batch, a crash). */
#ifndef DUPSIM_EVENTS_H
#define DUPSIM_EVENTS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "analysis/evidence.h"

/*
 * Every AMQP connection a worker opens is a session, and a session is a
 * potential fault event: when it ends, what was unacked on it (a consumer)
 * is redelivered, or what was not confirmed on it (a publisher) is
 * republished. How it ended gives the event its kind: the proxy rule that
 * fired on it (found by the client's port), the consumer's own crash, or a
 * broker crash. Sessions ended by one broker crash are one event: the crash.
 * Some faults belong to a moment, not to a connection (a consumer's nack
 * with requeue, an operator's DLQ replay): each is an instant event of its
 * own, and the messages it puts back are handed over to it in the ledger.
 *
 * Memory stays flat however long the run: only open sessions are held; a
 * closed session, every duplicate charged to a session and every miss are
 * records appended to a spill file (unlinked, in $TMPDIR), read back once by
 * events_summarise.
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
	EVENTS_APP_CRASH,	/* [app]: dupsim killed the app instance that held it (kill -9) */
	EVENTS_APP_EXIT,	/* [app]: the app instance that held it exited on its own */
	/* issue 13, broker timeouts */
	EVENTS_CONSUMER_TIMEOUT,   /* the broker closed the channel: delivery acknowledgement timed out (consumer_timeout) */
	EVENTS_HEARTBEAT_TIMEOUT,  /* missed heartbeats (the broker's timeout, the client's, or a heartbeat rule) */
	/* issue 13, alarms, requeues and delivery limits */
	EVENTS_MEMORY_ALARM,	/* a publisher's connection given up while the broker's memory alarm blocked it */
	EVENTS_NACK_REQUEUE,	/* one delivery nacked with requeue after its side effect (a per-delivery event) */
	EVENTS_DLQ_REPLAY,	/* an operator's replay of the dead-letter queue into the queue */
	/* issue 14: a cluster */
	EVENTS_LEADER_KILL,	/* kill -9 of the quorum queue's leader node: with every session on that node */
	EVENTS_PARTITION,	/* a node cut off from the others (or a bridge): with every session on the cut nodes */
	EVENTS_UNATTRIBUTED,	/* duplicates the ledger could not tie to a session (a bug if ever > 0) */
	EVENTS_KINDS
};
const char *events_kind_name(enum events_kind k);

enum events_role { EVENTS_CONSUMER, EVENTS_PUBLISHER, EVENTS_BROKER };

/* Ids are 1-based; 0 means none. Id 1 is the entry that collects unattributed duplicates. */
typedef uint32_t events_id;
#define EVENTS_UNATTRIBUTED_ID 1

/* What is known of a session (or a crash): while it is open, and once it has ended. */
struct events_entry {
	events_id id;
	uint64_t end_ns;   /* when it ended (the fault's time for a rule); clock_now_ns(); 0 still open */
	int32_t rule;	   /* proxy rule index that fired on it, -1 none */
	events_id crash;   /* the broker-crash event that ended it, 0 none */
	uint8_t kind;	   /* enum events_kind */
	uint8_t role;	   /* enum events_role */
	uint16_t worker;   /* consumer / publisher number */
	uint32_t session;  /* that worker's connection number, from 1 */
	uint16_t port;	   /* while open: the client's TCP port, how the proxy names the connection */
	uint8_t node;	   /* a cluster's node it is connected to, from 1; 0 unknown (one broker) */
};

struct events {
	pthread_mutex_t lock;
	_Atomic uint32_t count;		  /* ids issued */
	struct events_entry *open;	  /* the open sessions (few: one per worker at most) */
	size_t nopen, capopen;
	FILE *spill;			  /* closed sessions, duplicates, misses */
	char *buf;			  /* records waiting to be written */
	size_t used;
	uint64_t dups, misses;		  /* totals, for a quick check */
	bool failed;			  /* a record could not be kept (reported by the run) */
	bool alarm_on;			  /* the memory alarm is on (events_note_alarm) */
	events_id outage;		  /* a cluster's fault under way (events_note_outage), 0 none */
	uint8_t outage_kind;
	uint64_t outage_grace_until;	  /* a finished one still counts until then */
	uint64_t alarm_grace_until;	  /* and counts until then once off */
};

/* 0, or -1 (no memory, or no spill file: $TMPDIR not writable) with one line in err. */
int events_init(struct events *ev, char *err, size_t errlen);
void events_release(struct events *ev);

/*
 * A worker opened a connection: a new session. port: the client's local
 * port (0 unknown), for the proxy's faults. Returns its id, 0 when out of memory.
 */
events_id events_open(struct events *ev, enum events_role role, unsigned worker, uint32_t session, uint16_t port);
/* The session ended; kind is how, when nothing else (a rule, a crash) said so first. */
void events_close(struct events *ev, events_id id, enum events_kind kind, uint64_t now_ns);
/* A proxy rule fired on the connection of client port `port` (from the proxy's thread). */
void events_note_rule(struct events *ev, uint16_t port, int32_t rule, enum events_kind kind, uint64_t now_ns);
/* The broker was killed: a new event, and every open session no rule ended already is ended by it. */
events_id events_note_crash(struct events *ev, uint64_t now_ns);
/* Session id is connected to a cluster's node `node` (from 1). */
void events_set_node(struct events *ev, events_id id, unsigned node);
/*
 * A fault of some of a cluster's nodes (bit n - 1 of nodes: node n): a new
 * event of `kind`, and every open session on those nodes that nothing ended
 * already is ended by it, as by a broker crash. Returns its id.
 */
events_id events_note_nodes(struct events *ev, enum events_kind kind, uint32_t nodes, uint64_t now_ns);
/*
 * A fault that belongs to one moment rather than to a connection (a nack
 * with requeue, a DLQ replay): a new event, ended at once. What it puts back
 * into the queue is charged to it by handing the messages over to it
 * (ledger_note_handover). worker/session name who did it (0 for dupsim's own
 * operator). Returns its id, 0 when none could be issued.
 */
events_id events_note_instant(struct events *ev, enum events_kind kind, enum events_role role, unsigned worker,
			      uint32_t session, uint64_t now_ns);
/*
 * The broker's memory alarm went on (on) or off: while it is on, and for
 * grace_ns after it went off (a publisher blocked until then times out a
 * little later), a publisher session that ends as connection_lost ends as
 * memory_alarm instead.
 */
void events_note_alarm(struct events *ev, bool on, uint64_t grace_ns, uint64_t now_ns);
/*
 * A cluster's fault (event id, of events_note_nodes) goes on or off: while
 * it is on, and for grace_ns after, a session of any node whose connection
 * is lost (a publisher's confirm timed out while the queue elected a new
 * leader, a consumer's node went away) belongs to it, not to an event of its own.
 */
void events_note_outage(struct events *ev, events_id id, enum events_kind kind, bool on, uint64_t grace_ns,
			uint64_t now_ns);
/* A copy of what is known of an open session; false when it is not open. */
bool events_peek(struct events *ev, events_id id, struct events_entry *out);

/* A duplicate delivery charged to session id (0 or unknown: unattributed), with its gap. */
void events_note_dup(struct events *ev, events_id id, uint64_t gap_ns);
/* One of the duplicates charged to id was processed again (a miss). */
void events_note_miss(struct events *ev, events_id id);

/*
 * The run's fault events, once quiet (every session still open is closed
 * first): every unit with a duplicate, a rule or a crash; a unit is a
 * session, or a crash with all the sessions it ended.
 */
struct events_summary {
	size_t n;
	struct events_entry *unit;      /* what is known of each unit */
	struct evidence_event *ev;      /* its duplicates and misses */
	uint64_t with_dups;		/* units that caused at least one duplicate: "fault events" */
	uint64_t by_kind[EVENTS_KINDS]; /* of those, by kind */
	uint64_t dups, misses;
	/* for the miss-vs-TTL curve: each unit's gaps, sorted, in one array */
	uint32_t *gaps_us;
	size_t *gap_start; /* unit i's gaps are gaps_us[gap_start[i] .. gap_start[i + 1]) */
};
/* 0, or -1 (out of memory, or the spill could not be read back). */
int events_summarise(struct events *ev, struct events_summary *s);
void events_summary_release(struct events_summary *s);

/*
 * Per unit, the duplicates with a gap above ttl (µs): x[i] of d[i], for the
 * interval of P(gap > ttl). x and d have room for s->n.
 */
void events_summary_above(const struct events_summary *s, double ttl_us, uint64_t *x, uint64_t *d);

/* events.csv: t_s,kind,rule,connection,duplicates,misses; rule_text(i) names rule i. */
void events_write_csv(const struct events_summary *s, FILE *f, uint64_t t0_ns,
		      const char *(*rule_text)(void *arg, int32_t rule), void *arg);

#endif
