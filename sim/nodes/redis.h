/* redis.h — the redis kind of node: a private redis-server whose acknowledged writes survive a kill -9. */
#ifndef DUPSIM_NODES_REDIS_H
#define DUPSIM_NODES_REDIS_H

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

#endif
