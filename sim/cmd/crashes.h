/* crashes.h — the broker crash schedule of a run: kill -9 every so often, restart on the same data a while later. */
#ifndef DUPSIM_CRASHES_H
#define DUPSIM_CRASHES_H

#include <stdbool.h>
#include <stdint.h>

#include "nodes/node.h"
#include "truth/events.h"

#define CRASHES_RESTART_TRIES 5 /* a killed broker that won't come back in this many tries ends the run */

struct crashes {
	struct node *broker;	       /* the run's private node; NULL: no crashes */
	struct events *events;	       /* where each crash is noted as a fault event */
	uint64_t every_ns, down_ns;    /* faults.broker_crash_every, faults.broker_down; every 0: never */
	uint64_t next_crash_ns, restart_at_ns; /* when the next kill, when the restart (0: the broker is up) */
	uint64_t count;		       /* kills so far */
	int restart_failures;	       /* in a row */
	bool lost;		       /* the broker could not be restarted: the run must end */
};

/*
 * The schedule from start_ns on: the first kill every_ns after it, but not
 * before the warm-up (faults.warmup) is over; broker NULL or every_ns 0
 * makes crashes_step do nothing.
 */
void crashes_init(struct crashes *c, struct node *broker, struct events *events, uint64_t every_ns,
		  uint64_t down_ns, uint64_t start_ns, uint64_t warmup_ns);

/*
 * Called from the thread that started the broker (its death signal follows
 * that thread) about every 50 ms: restarts a killed broker when its time has
 * come (retrying each second, setting lost after CRASHES_RESTART_TRIES
 * failures), or kills it when the next crash is due and publishing goes on
 * (never once the publishers are done: the cool-down, faults.cooldown).
 * Returns true when it killed the broker just now (the caller records the fault).
 */
bool crashes_step(struct crashes *c, uint64_t now, bool publishing);

/* The broker is down (killed, not restarted yet). */
bool crashes_down(const struct crashes *c);

#endif
