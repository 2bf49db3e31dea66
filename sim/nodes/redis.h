/* redis.h — the redis kind of node: a private redis-server whose acknowledged writes survive a kill -9 (or, configured, none do; a memory bound). */
#ifndef DUPSIM_NODES_REDIS_H
#define DUPSIM_NODES_REDIS_H

#include <stdbool.h>
#include <stdint.h>

#include "nodes/node.h"

/*
 * node_new(&n, &redis_ops, ...): a redis-server named dupsim-redis-PID-N-RAND
 * on a free port, data and log in its folder; node_url is
 * redis://127.0.0.1:PORT. No RDB snapshots; appendonly yes with
 * appendfsync no: every write reaches the OS before its reply, so whatever
 * redis acknowledged survives a kill -9 (only a machine crash, which dupsim
 * doesn't simulate, could lose it). DUPSIM_REDIS_SERVER names another binary.
 */
extern const struct node_ops redis_ops;

/*
 * A redis kind with settings of its own: node_new(&n, &k->ops, ...) after
 * redis_kind_init; k must outlive the node (its restarts read it too).
 *   volatile_data  no persistence at all (--appendonly no, no RDB): a kill -9
 *                  and restart comes back EMPTY (faults.store_restart_every)
 *   maxmemory      bytes, with maxmemory-policy allkeys-lru: redis evicts
 *                  keys itself once its memory is used up; 0 = no limit
 */
struct redis_config {
	bool volatile_data;
	uint64_t maxmemory;
};
struct redis_kind {
	struct node_ops ops; /* first: a node's ops pointer leads back to the config */
	struct redis_config cfg;
};
void redis_kind_init(struct redis_kind *k, const struct redis_config *cfg);

/* The server's INFO field `name` (e.g. "evicted_keys") as a number; -1 when it can't be read. */
long long redis_info_number(const struct node *n, const char *name);

#endif
