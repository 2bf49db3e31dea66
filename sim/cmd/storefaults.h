/* storefaults.h — faults of a run's dedup store itself: restarts without persistence, a hung (SIGSTOPped) redis. */
#ifndef DUPSIM_STOREFAULTS_H
#define DUPSIM_STOREFAULTS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/scenario.h"
#include "nodes/node.h"
#include "truth/ledger.h"

/*
 * The store's faults are no fault events (events.csv): they make no
 * duplicate delivery themselves. They turn the duplicates of other faults
 * (a lost ack, a lost CommitOk) into misses: `store_lost` after a restart,
 * `store_error` while the store hangs under on_error = open. Each is a row
 * of faults.csv.
 */
enum store_fault { STORE_FAULT_NONE, STORE_FAULT_RESTART, STORE_FAULT_DOWN, STORE_FAULT_UP };

struct store_faults {
	struct node *redis;	 /* the run's private redis; NULL: nothing to do */
	struct ledger *ledger;	 /* told of each restart before the kill */
	uint64_t every_ns, next_restart_ns; /* faults.store_restart_every; 0 never */
	uint64_t down_from_ns, down_until_ns; /* faults.store_down, on the monotonic clock; until 0: none */
	bool stopped, window_done;
	uint64_t stopped_at_ns, down_ns; /* down_ns: time stopped in all */
	uint64_t restarts, restart_failures;
};

/* The schedule from start_ns: restarts every_ns apart (the first not before the warm-up is over),
 * the SIGSTOP window no earlier than the warm-up's end. redis NULL: none. */
void store_faults_init(struct store_faults *f, struct node *redis, struct ledger *l, const struct scenario *sc,
		       uint64_t start_ns);

/*
 * About every 50 ms from the thread that started redis: a restart when due
 * and publishing goes on (none in the cool-down, as with broker crashes);
 * the SIGSTOP at the window's start and the SIGCONT at its end, or at once
 * when the cool-down begins (cooling). Returns what it just did.
 */
enum store_fault store_faults_step(struct store_faults *f, uint64_t now, bool publishing, bool cooling);

/* The store is stopped now (the run must not call itself drained). */
bool store_faults_down(const struct store_faults *f);

/* SIGCONT if still stopped: before the run reads redis's figures or stops it. */
void store_faults_end(struct store_faults *f, uint64_t now);

/* faults.csv's text for a fault. */
const char *store_fault_text(enum store_fault what);

#endif
