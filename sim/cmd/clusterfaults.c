/* clusterfaults.c — faults.leader_kill, faults.partition and faults.bridge on a private cluster, one step at a time. */
#include "cmd/clusterfaults.h"

#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"

#define LEADER_TIMEOUT_MS 20000
#define RESTART_TRIES 5

const char *cluster_fault_text(enum cluster_fault f)
{
	switch (f) {
	case CLUSTER_FAULT_LEADER_KILL:
		return "quorum leader killed (kill -9)";
	case CLUSTER_FAULT_RESTART:
		return "killed node restarted";
	case CLUSTER_FAULT_PARTITION:
		return "partition: the leader cut off from the other nodes";
	case CLUSTER_FAULT_BRIDGE:
		return "bridge partition: the leader and one follower cut apart";
	case CLUSTER_FAULT_HEAL:
		return "partition healed";
	case CLUSTER_FAULT_FAILED:
		return "cluster fault failed (see the log)";
	case CLUSTER_FAULT_NONE:
		break;
	}
	return "";
}

void cluster_faults_init(struct cluster_faults *f, struct cluster *c, struct events *events, const struct scenario *sc,
			 uint64_t start_ns)
{
	const struct scenario_cluster *k = &sc->cluster;

	*f = (struct cluster_faults){ .c = c, .events = events, .queue = sc->broker.queue, .killed = -1,
				      .leader_at_kill = -1, .leader_after_kill = -1 };
	f->grace_ns = sc->publishers.timeout_ns + NS_PER_S;
	if (!c)
		return;
	if (k->leader_kill_ns)
		f->kill_at = start_ns + k->leader_kill_ns;
	f->down_ns = sc->faults.broker_down_ns;
	if (k->partition_until_ns) {
		f->part_from = start_ns + k->partition_from_ns;
		f->part_until = start_ns + k->partition_until_ns;
	}
	if (k->bridge_until_ns) {
		f->bridge_from = start_ns + k->bridge_from_ns;
		f->bridge_until = start_ns + k->bridge_until_ns;
	}
}

static uint32_t bit(int member)
{
	return 1u << member;
}

/* The queue's leader now, or -1 (said in the log). */
static int leader(struct cluster_faults *f, const char *what)
{
	char err[512];
	int l = cluster_leader(f->c, f->queue, LEADER_TIMEOUT_MS, err, sizeof(err));

	if (l < 0)
		log_line("run: %s: %s", what, err);
	return l;
}

static enum cluster_fault step_kill(struct cluster_faults *f, uint64_t now)
{
	int l = leader(f, "faults.leader_kill");

	f->kill_at = 0;
	if (l < 0)
		return CLUSTER_FAULT_FAILED;
	/* the event first: a client of the node may see its connection die before the kill returns */
	f->outage = events_note_nodes(f->events, EVENTS_LEADER_KILL, bit(l), clock_now_ns());
	events_note_outage(f->events, f->outage, EVENTS_LEADER_KILL, true, 0, clock_now_ns());
	cluster_kill(f->c, (size_t)l);
	f->killed = f->leader_at_kill = l;
	f->kills++;
	f->restart_at = now + f->down_ns;
	snprintf(f->text, sizeof(f->text), "%s: node %d", cluster_fault_text(CLUSTER_FAULT_LEADER_KILL), l + 1);
	return CLUSTER_FAULT_LEADER_KILL;
}

static enum cluster_fault step_restart(struct cluster_faults *f)
{
	char err[1024];
	int l = f->killed;

	f->leader_after_kill = leader(f, "the leader after the kill");
	for (int i = 0; i < RESTART_TRIES; i++) {
		if (cluster_restart(f->c, (size_t)l, err, sizeof(err)) == 0) {
			events_note_outage(f->events, f->outage, EVENTS_LEADER_KILL, false, f->grace_ns, clock_now_ns());
			f->killed = -1;
			f->restart_at = 0;
			snprintf(f->text, sizeof(f->text), "%s: node %d", cluster_fault_text(CLUSTER_FAULT_RESTART),
				 l + 1);
			return CLUSTER_FAULT_RESTART;
		}
		log_line("run: restarting RabbitMQ node %d: %s", l + 1, err);
	}
	f->lost = true;
	f->restart_at = 0;
	return CLUSTER_FAULT_FAILED;
}

/* Cuts: the leader alone (partition) or the leader and the next member apart (bridge). */
static enum cluster_fault step_cut(struct cluster_faults *f, bool bridge)
{
	char err[512];
	int l = leader(f, bridge ? "faults.bridge" : "faults.partition");
	int other = l < 0 ? -1 : (int)((size_t)(l + 1) % cluster_size(f->c));
	int rc;

	if (bridge)
		f->bridge_on = true;
	else
		f->part_on = true;
	if (l < 0)
		return CLUSTER_FAULT_FAILED;
	rc = bridge ? cluster_bridge(f->c, (size_t)l, (size_t)other, true, err, sizeof(err))
		    : cluster_isolate(f->c, (size_t)l, true, err, sizeof(err));
	if (rc < 0) {
		log_line("run: %s: %s", bridge ? "faults.bridge" : "faults.partition", err);
		return CLUSTER_FAULT_FAILED;
	}
	f->outage = events_note_nodes(f->events, EVENTS_PARTITION, bridge ? bit(l) | bit(other) : bit(l), clock_now_ns());
	events_note_outage(f->events, f->outage, EVENTS_PARTITION, true, 0, clock_now_ns());
	f->partitions++;
	if (bridge)
		snprintf(f->text, sizeof(f->text), "%s: nodes %d and %d", cluster_fault_text(CLUSTER_FAULT_BRIDGE),
			 l + 1, other + 1);
	else
		snprintf(f->text, sizeof(f->text), "%s: node %d", cluster_fault_text(CLUSTER_FAULT_PARTITION), l + 1);
	return bridge ? CLUSTER_FAULT_BRIDGE : CLUSTER_FAULT_PARTITION;
}

static enum cluster_fault step_heal(struct cluster_faults *f, bool bridge)
{
	char err[512];

	if (bridge) {
		f->bridge_on = false;
		f->bridge_done = true;
	} else {
		f->part_on = false;
		f->part_done = true;
	}
	events_note_outage(f->events, f->outage, EVENTS_PARTITION, false, f->grace_ns, clock_now_ns());
	if (cluster_heal(f->c, err, sizeof(err)) < 0) {
		log_line("run: healing the partition: %s", err);
		return CLUSTER_FAULT_FAILED;
	}
	snprintf(f->text, sizeof(f->text), "%s", cluster_fault_text(CLUSTER_FAULT_HEAL));
	return CLUSTER_FAULT_HEAL;
}

enum cluster_fault cluster_faults_step(struct cluster_faults *f, uint64_t now)
{
	f->text[0] = '\0';
	if (!f->c)
		return CLUSTER_FAULT_NONE;
	if (f->kill_at && now >= f->kill_at)
		return step_kill(f, now);
	if (f->killed >= 0 && now >= f->restart_at)
		return step_restart(f);
	if (f->part_until && !f->part_on && !f->part_done && now >= f->part_from)
		return step_cut(f, false);
	if (f->part_on && now >= f->part_until)
		return step_heal(f, false);
	if (f->bridge_until && !f->bridge_on && !f->bridge_done && now >= f->bridge_from)
		return step_cut(f, true);
	if (f->bridge_on && now >= f->bridge_until)
		return step_heal(f, true);
	return CLUSTER_FAULT_NONE;
}

bool cluster_faults_pending(const struct cluster_faults *f)
{
	if (!f->c || f->lost)
		return false;
	return f->kill_at || f->killed >= 0 || f->part_on || f->bridge_on || (f->part_until && !f->part_done) ||
	       (f->bridge_until && !f->bridge_done);
}

void cluster_faults_finish(struct cluster_faults *f)
{
	char err[512];

	if (!f->c)
		return;
	if (f->part_on || f->bridge_on)
		cluster_heal(f->c, err, sizeof(err));
	f->part_on = f->bridge_on = false;
}
