/* clusterfaults.h — a cluster's faults during a run: kill -9 of the quorum leader and its restart, partitions and their healing. */
#ifndef DUPSIM_CLUSTERFAULTS_H
#define DUPSIM_CLUSTERFAULTS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/scenario.h"
#include "nodes/cluster.h"
#include "truth/events.h"

/* What a step did: each is a row of faults.csv. */
enum cluster_fault {
	CLUSTER_FAULT_NONE,
	CLUSTER_FAULT_LEADER_KILL,    /* the leader killed (kill -9) */
	CLUSTER_FAULT_RESTART,	      /* ... started again on its data */
	CLUSTER_FAULT_PARTITION,      /* the leader cut off from the other members */
	CLUSTER_FAULT_BRIDGE,	      /* the leader and one follower cut apart; the third reaches both */
	CLUSTER_FAULT_HEAL,	      /* every cut healed */
	CLUSTER_FAULT_FAILED,	      /* a step could not be done (said in the log) */
};
const char *cluster_fault_text(enum cluster_fault f);

struct cluster_faults {
	struct cluster *c;	/* NULL: nothing to do */
	struct events *events;
	const char *queue;
	uint64_t kill_at, restart_at; /* clock_now_ns; 0: none (pending) */
	uint64_t down_ns;	      /* how long a killed member stays down (faults.broker_down) */
	uint64_t part_from, part_until, bridge_from, bridge_until;
	int killed;		/* the member killed and not yet restarted, -1 none */
	bool part_on, bridge_on, part_done, bridge_done;
	bool lost;		/* a killed member would not come back: the run must end */
	int leader_at_kill, leader_after_kill; /* who led before and after (for the report), -1 unknown */
	uint64_t kills, partitions;
	uint64_t grace_ns;	/* a publisher's timeout and a second: how long after a fault a lost session is still its */
	events_id outage;	/* the event of the fault under way (events_note_outage), 0 none */
	char text[160];		/* the last step's detail, for faults.csv */
};

/* The schedule from start_ns on (scenario's cluster keys, faults.broker_down for the restart). */
void cluster_faults_init(struct cluster_faults *f, struct cluster *c, struct events *events, const struct scenario *sc,
			 uint64_t start_ns);
/*
 * Called from the thread that started the cluster about every 50 ms. Does at
 * most one thing per call, and may block for a rabbitmqctl (a second or two)
 * or a member's restart. Returns what it did.
 */
enum cluster_fault cluster_faults_step(struct cluster_faults *f, uint64_t now);
/* Something is still to come or undone (a member down, a cut): the run must not end yet. */
bool cluster_faults_pending(const struct cluster_faults *f);
/* At the run's end: heals what is cut and restarts what is down (best effort). */
void cluster_faults_finish(struct cluster_faults *f);

#endif
