/* run.h — one `dupsim run`: the shared state of its publishers and consumers, and the command itself. */
#ifndef DUPSIM_RUN_H
#define DUPSIM_RUN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dedup/dedup.h"
#include "truth/ledger.h"
#include "workload/mq.h"
#include "core/scenario.h"
#include "analysis/stats.h"

/* What publishers and consumers share with the run that started them. */
struct run_ctx {
	const struct scenario *sc;
	struct ledger *ledger;
	struct events *events;	 /* fault events: every session of every worker */
	struct mq_target via;	 /* the proxy, with the broker's credentials and vhost */
	uint64_t per_publisher;	 /* messages per publisher (the last may have fewer) */
	atomic_bool stop;	 /* everyone: finish now (interrupt, or the drain is over) */
	atomic_bool stop_publishing; /* interrupt: publishers give up */

	/* live counters for the progress line and timeseries.csv */
	_Atomic uint64_t published;   /* publish attempts */
	_Atomic uint64_t confirmed;   /* messages confirmed */
	_Atomic uint64_t deliveries;
	_Atomic uint64_t duplicate_deliveries;
	_Atomic uint64_t executions;
	_Atomic uint64_t reconnects;  /* publisher and consumer reconnections */
	_Atomic uint64_t last_delivery_ns;
	_Atomic int publishers_running;

	/* dedup stores: a consumer's own store (local scope, or its connection to a
	 * shared redis / tokyocabinet), or NULL to use shared_store */
	struct dedup_store *(*make_store)(struct run_ctx *rc, unsigned consumer, char *err, size_t errlen);
	void *make_store_arg;
	struct dedup_store *shared_store; /* a store all consumers call directly, or NULL */
	_Atomic uint64_t consumer_crashes;

	/* dedup accounting */
	_Atomic uint64_t lookups, inserts, store_errors;
	struct stats_hist store_latency; /* ns per store call */
};

/* Message ids: "p<publisher>-<sequence>"; index = publisher * per_publisher + sequence. */
int run_parse_message_id(const struct run_ctx *rc, const char *id, size_t len, size_t *index);

/* Publisher thread body; arg is a struct publisher. */
struct publisher {
	struct run_ctx *rc;
	unsigned id;
	uint64_t first, end; /* message indices [first, end) */
	char error[256];     /* last connection problem, for the report */
	bool gave_up;	     /* no connection for run.drain_timeout: the publisher stopped */
};
void *publisher_main(void *arg);

/* Consumer thread body; arg is a struct consumer. */
struct consumer {
	struct run_ctx *rc;
	unsigned id;
	struct dedup_store *store; /* the shared one or its own; NULL for store none */
	bool own_store;		   /* store belongs to this consumer (destroyed, or rebuilt after a crash) */
	char error[256];
};
void *consumer_main(void *arg);

/* `dupsim run FILE [--set section.key=value]... [--out DIR] [--seed N] [--quiet]`; returns an exit code. */
int run_cli(int argc, char **argv);

#endif
