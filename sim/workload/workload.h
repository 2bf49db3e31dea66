/* workload.h — what a run's publishers and consumers share: the scenario, the ledger, the proxy's address, live counters. */
#ifndef DUPSIM_WORKLOAD_H
#define DUPSIM_WORKLOAD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "analysis/stats.h"
#include "core/scenario.h"
#include "dedup/dedup.h"
#include "truth/events.h"
#include "truth/ledger.h"
#include "workload/mq.h"
#include "workload/msgid.h"

#define WORKLOAD_VIA_MAX 8

/* Filled by the run before the first worker starts; workers only read the
 * pointers and bump the counters. */
struct workload {
	const struct scenario *sc;
	struct ledger *ledger;
	struct events *events;	 /* fault events: every session of every worker */
	struct mq_target via;	 /* the proxy, with the broker's credentials and vhost */
	/* A cluster (broker.nodes = 3, or several broker.url): the proxy's listener for each node,
	 * via first. Worker k of a role starts on node (k + role) mod nvia and moves to the next
	 * node when a connect fails. nvia 0 or 1: via only. */
	struct mq_target vias[WORKLOAD_VIA_MAX];
	size_t nvia;
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

	/* dedup stores: how a consumer opens its own (local scope, or its
	 * connection to a shared redis / tokyocabinet), and the one object all
	 * consumers call when the backend is thread-safe (else NULL) */
	struct dedup_factory *stores;
	struct dedup_store *shared_store;
	_Atomic uint64_t consumer_crashes;

	/* dedup accounting */
	_Atomic uint64_t lookups, inserts, store_errors;
	struct stats_hist store_latency; /* ns per store call */
	/* dedup.on_error = closed: consumers waiting for a failed store to answer again (issue 13) */
	_Atomic uint64_t store_stalls, store_stalled_ns;
};

/* How this run's message ids map onto its ledger. */
static inline struct msgid_space workload_ids(const struct workload *w)
{
	return (struct msgid_space){ .messages = w->ledger->count };
}

#endif
