/* cluster.h — a private RabbitMQ cluster: one node per test host, joined at first boot; leader lookup, kill -9 and restart, partitions. */
#ifndef DUPSIM_NODES_CLUSTER_H
#define DUPSIM_NODES_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hosts/hosts.h"
#include "nodes/node.h"
#include "nodes/rabbitmq.h"

#define CLUSTER_MAX 5

struct cluster;

/*
 * Starts `count` RabbitMQ nodes, each on a test host of its own (n1, n2, …
 * of hosts h, which the caller owns and frees after the cluster), sharing a
 * cookie: n1 first, then each next one joins the ones before it at its first
 * boot (classic_config), so the cluster is whole when this returns; checked
 * with rabbitmqctl cluster_status. Settings as for one node (conf may be NULL).
 * Must be called from a thread that lives as long as the nodes (node_new).
 * 0, or -1 with err.
 */
int cluster_new(struct cluster **out, struct hosts *h, size_t count, const struct node_opts *opts,
		const struct rabbitmq_conf *conf, char *err, size_t errlen);
void cluster_free(struct cluster *c);
size_t cluster_size(const struct cluster *c);
struct node *cluster_node(const struct cluster *c, size_t i);
/* Node i's test host, in h. */
int cluster_host(const struct cluster *c, size_t i);
/*
 * The member that leads quorum queue `queue` now (its record's pid, by
 * rabbitmqctl eval on a running member), or -1 with err when none answers
 * within timeout_ms. A killed member the record still names is not an
 * answer: it waits for the election that replaces it.
 */
int cluster_leader(struct cluster *c, const char *queue, int timeout_ms, char *err, size_t errlen);
/* kill -9 of member i (its host stays). 0. */
int cluster_kill(struct cluster *c, size_t i);
/* Starts member i again on its data; waits until it takes clients. 0, or a NODE_E* code with err. */
int cluster_restart(struct cluster *c, size_t i, char *err, size_t errlen);
/* Member i cut off from every other member (not from dupsim: its clients still reach it); heal with cut = false. */
int cluster_isolate(struct cluster *c, size_t i, bool cut, char *err, size_t errlen);
/* The bridge: members a and b can't reach each other, both still reach every other member. */
int cluster_bridge(struct cluster *c, size_t a, size_t b, bool cut, char *err, size_t errlen);
/* Heals every cut between members. 0, or -1 with err. */
int cluster_heal(struct cluster *c, char *err, size_t errlen);

#endif
