/* scenario.h — scenario files for `dupsim run`: INI keys, defaults, --set, validation, the effective file. */
#ifndef DUPSIM_SCENARIO_H
#define DUPSIM_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "wire/rule.h"

/*
 * Every key of DESIGN.md's "Scenario keys" table, with the unit of its field.
 * Durations are nanoseconds (uint64_t) with a resolution of 1 us (parsed
 * values are rounded to whole microseconds so that the effective file
 * written by scenario_write reads back exactly); probabilities are doubles
 * in [0, 1]; every count is a uint64_t. scenarios/README.md documents the
 * ranges and the combinations scenario_check refuses.
 */

enum scenario_queue_type { SCENARIO_QUEUE_CLASSIC, SCENARIO_QUEUE_QUORUM };
enum scenario_mode { SCENARIO_MODE_TX, SCENARIO_MODE_CONFIRM };
enum scenario_crash_at {
	SCENARIO_CRASH_BEFORE_MARK,
	SCENARIO_CRASH_AFTER_MARK,
	SCENARIO_CRASH_AFTER_PROCESS,
};
enum scenario_store {
	SCENARIO_STORE_NONE,
	SCENARIO_STORE_MEMORY,
	SCENARIO_STORE_REDIS,
	SCENARIO_STORE_TOKYOCABINET,
	SCENARIO_STORE_POSTGRES, /* issue 13, the inbox: key and side effect in one transaction */
};
enum scenario_scope { SCENARIO_SCOPE_LOCAL, SCENARIO_SCOPE_SHARED };
enum scenario_check {
	SCENARIO_CHECK_ALWAYS,		/* look every delivery up */
	SCENARIO_CHECK_REPUBLISH_COUNT, /* look up only x-republish-count > 0 or redelivered; the
					 * others are only inserted, queued (pipelined) where the store can */
	SCENARIO_CHECK_FLAGGED,		/* the same lookups; every insert made at once */
};
enum scenario_mark { SCENARIO_MARK_BEFORE, SCENARIO_MARK_AFTER };
enum scenario_on_error { SCENARIO_ON_ERROR_OPEN, SCENARIO_ON_ERROR_CLOSED };
/* issue 14: where the dedup store's private redis runs */
enum scenario_hosts_store {
	SCENARIO_HOSTS_STORE_LOCAL, /* on this host, on loopback */
	SCENARIO_HOSTS_STORE_OWN,   /* on a test host of its own (root), reached over its link */
};
/* issue 14: where the consumers (dupsim's threads, or the app's instances) run */
enum scenario_hosts_consumers {
	SCENARIO_HOSTS_CONSUMERS_LOCAL, /* on this host */
	SCENARIO_HOSTS_CONSUMERS_OWN,	/* each on a test host of its own (root), behind its link */
};

#define SCENARIO_NAME_MAX 64   /* run.name: characters, without the NUL */
#define SCENARIO_URLS_MAX 5     /* broker.url: a user's cluster, comma-separated */
#define SCENARIO_STR_MAX 180   /* queue and URLs: characters, without the NUL (fits inih's 200-byte line) */
#define SCENARIO_RULES_MAX 256 /* explicit [faults] rule lines */
#define SCENARIO_KEY_COUNT 69  /* keys in the table of scenario.c */
#define SCENARIO_ORIGIN_SET UINT32_MAX

struct scenario {
	char path[4096]; /* file the values came from, for messages; "" when none */

	struct {
		char name[SCENARIO_NAME_MAX + 1]; /* [A-Za-z0-9._-], used as results/<name>/ */
		uint64_t messages;		  /* in total, over all publishers */
		uint64_t seed;			  /* seeds every random decision */
		uint64_t drain_timeout_ns;	  /* wait for the queue to drain after publishing */
	} run;
	struct {
		char url[SCENARIO_STR_MAX + 1]; /* "embedded" or "amqp://user:pass@host:port/vhost" */
		char queue[SCENARIO_STR_MAX + 1];
		enum scenario_queue_type queue_type;
		bool keep_queue; /* leave the queue's content after the run */
		uint64_t consumer_timeout_ns; /* the private node's delivery ack timeout; 0 = the broker's default */
		/* issue 13, alarms, requeues and delivery limits */
		uint64_t delivery_limit; /* quorum x-delivery-limit; 0 = none */
		bool dead_letter;	 /* declare <queue>.dlq and dead-letter into it */
	} broker;
	struct {
		uint64_t count; /* connections */
		enum scenario_mode mode;
		uint64_t batch;	     /* messages per commit (tx) / in flight (confirm) */
		uint64_t rate;	     /* messages/s per publisher; 0 = as fast as possible */
		uint64_t size;	     /* body bytes */
		uint64_t timeout_ns; /* wait for CommitOk / confirm before giving up the connection */
	} publishers;
	struct {
		uint64_t count;	   /* connections; 0 = publish only */
		uint64_t prefetch; /* basic.qos prefetch count; 0 = no limit */
		uint64_t ack_every; /* 1 = ack each message; k = one multiple-ack per k */
		uint64_t work_ns;   /* simulated processing time per message */
		double slow;	      /* per delivery: work slow_work_ns instead of work_ns */
		uint64_t slow_work_ns;
		uint64_t heartbeat_ns; /* AMQP heartbeat the consumers ask for (whole seconds); 0 = none */
		double nack_requeue; /* per delivery: the handler fails after its side effect, nack requeue=true */
	} consumers;
	struct {
		double commit_ok_loss; /* shortcut: drop tx.commit-ok from=broker */
		double confirm_loss;   /* shortcut: drop basic.ack and basic.nack from=broker */
		double ack_loss;       /* shortcut: drop basic.ack from=client */
		enum rule_then on_loss; /* then= of the three shortcut rules */
		struct rule *rules;	/* explicit `rule =` lines, in file order; owned */
		size_t rule_count;
		struct rule *schedules; /* `schedule =` lines (rules with a window), in file order; owned */
		size_t schedule_count;
		uint64_t warmup_ns;   /* no proxy rule fires and no broker crash before this, from the start */
		uint64_t cooldown_ns; /* once the publishers are done: no faults, and at least this long a drain */
		uint64_t broker_crash_every_ns; /* kill -9 period; 0 = never */
		uint64_t broker_down_ns;	/* how long a killed broker stays down */
		double consumer_crash;		/* per delivery */
		enum scenario_crash_at consumer_crash_at;
		/* issue 13: the memory alarm on the private node from..until (from the run's start; until 0 =
		 * none; the two fields stay together: one key) and a DLQ replay that long after the start */
		uint64_t memory_alarm_from_ns, memory_alarm_until_ns;
		uint64_t dlq_replay_after_ns; /* 0 = never */
	} faults;
	struct {
		enum scenario_store store;
		enum scenario_scope scope;
		uint64_t ttl_ns;   /* expiry after insertion; 0 = never */
		uint64_t capacity; /* most keys kept (LRU); 0 = no bound */
		enum scenario_check check;
		enum scenario_mark mark;
		char url[SCENARIO_STR_MAX + 1]; /* redis only: "embedded" or "redis://host:port" */
		bool sync;			/* tokyocabinet only: sync after every insert */
	} dedup;
	struct {
		char consumer[SCENARIO_STR_MAX + 1]; /* the user's consumer, run with /bin/sh -c; "" = none */
		uint64_t instances;		     /* copies of it */
		uint64_t crash_every_ns;	     /* mean time between kill -9s of a random instance; 0 = never */
		uint64_t restart_delay_ns;	     /* how long a killed instance stays down */
	} app;
	struct {
		char api[SCENARIO_STR_MAX + 1]; /* [HOST:]PORT of the control API during the run; "" = none */
	} proxy;
	/* issue 13, faults of the dedup store itself (the private redis) */
	struct {
		uint64_t restart_every_ns; /* faults.store_restart_every: kill -9 + restart, empty; 0 = never */
		uint64_t down_from_ns, down_until_ns; /* faults.store_down: SIGSTOP window; until 0 = none */
		uint64_t redis_maxmemory;  /* dedup.redis_maxmemory bytes, allkeys-lru; 0 = no limit */
		enum scenario_on_error on_error; /* dedup.on_error: when a store call fails */
		uint64_t timeout_ns;	   /* dedup.timeout: a redis command's client-side timeout */
	} store;
	/* issue 14: hosts */
	struct {
		enum scenario_hosts_store store; /* hosts.store: own = the private redis on a test host */
		uint64_t store_rtt_ns;		 /* round trip over the store's link: rtt / 2 each way */
		uint64_t store_jitter_ns;	 /* netem-style jitter on each way's delay */
		double store_loss;		 /* per packet, each way */
		enum scenario_hosts_consumers consumers; /* hosts.consumers: own = one test host each */
		uint64_t consumer_rtt_ns;	 /* round trip over each consumer host's link */
		uint64_t consumer_jitter_ns;
		double consumer_loss;
	} hosts;

	/* issue 14: a private cluster (broker.nodes) and its faults */
	struct scenario_cluster {
		uint64_t nodes;			       /* 1: one node; 3: a cluster on test hosts */
		uint64_t leader_kill_ns;	       /* faults.leader_kill: when, from the start; 0 = never */
		uint64_t partition_from_ns, partition_until_ns; /* faults.partition: the leader cut off */
		uint64_t bridge_from_ns, bridge_until_ns;	/* faults.bridge: leader and one follower apart */
	} cluster;

	/* Private to scenario.c: where each key got its value (0 = default,
	 * SCENARIO_ORIGIN_SET = --set, else the line in path). */
	uint32_t origin[SCENARIO_KEY_COUNT];
};

/*
 * Fills sc with the defaults. run.name becomes the base name of path without
 * its extension (characters other than [A-Za-z0-9._-] turned into '_'), or
 * "scenario" when path is NULL. Call scenario_release when done.
 */
void scenario_init_defaults(struct scenario *sc, const char *path);

/*
 * Reads an INI scenario file over the values already in sc (call
 * scenario_init_defaults first). Returns 0, or -1 with exactly one line in
 * err: `FILE:LINE: what is wrong; what is allowed`. On -1 sc holds a mix of
 * old and new values: release it, don't run it. Does not call scenario_check.
 */
int scenario_load(struct scenario *sc, const char *path, char *err, size_t errlen);
/* The same from an open stream; path names it in messages. f is not closed. */
int scenario_load_file(struct scenario *sc, FILE *f, const char *path, char *err, size_t errlen);

/*
 * Applies one `--set section.key=value`. faults.rule adds a rule and
 * faults.schedule a schedule; every other key replaces its value. Returns 0, or -1 with one line in err that
 * starts with `--set section.key: `.
 */
int scenario_set(struct scenario *sc, const char *assignment, char *err, size_t errlen);

/*
 * Refuses combinations that cannot run as written (scenarios/README.md lists
 * them), once the file and every --set are applied. Returns 0, or -1 with one
 * line in err naming where the offending key was set (`FILE:LINE: ` or
 * `--set section.key: `).
 */
int scenario_check(const struct scenario *sc, char *err, size_t errlen);

/*
 * The proxy's rule list: the shortcut keys with a probability above 0 (in the
 * order commit_ok_loss, confirm_loss as basic.ack then basic.nack, ack_loss,
 * each with then= from on_loss), then the explicit rules, then the schedules
 * (rules with a window, wire/rule.h). *out is malloc'd
 * (NULL when *count is 0) and the caller frees it. Returns 0 or -1.
 */
int scenario_rules(const struct scenario *sc, struct rule **out, size_t *count, char *err, size_t errlen);

/*
 * Writes the effective scenario (every key, explicit rules included) as an
 * INI file that scenario_load reads back to the same values. 0, or -1 when
 * the stream reports an error.
 */
int scenario_write(const struct scenario *sc, FILE *f);

/* True when [app] consumer is set: the user's app consumes instead of dupsim's consumer threads. */
static inline bool scenario_has_app(const struct scenario *sc)
{
	return sc->app.consumer[0] != '\0';
}

/* Frees the rules; sc may be initialised again. */
void scenario_release(struct scenario *sc);

#endif
