/* rabbitmq.h — the RabbitMQ kind of node: a private broker with its own epmd, ready once guest can log in. */
#ifndef DUPSIM_NODES_RABBITMQ_H
#define DUPSIM_NODES_RABBITMQ_H

#include <stdint.h>
#include <sys/types.h>

#include "nodes/node.h"

/*
 * node_new(&n, &rabbitmq_ops, ...): a node named dupsim-PID-N-RAND on free
 * AMQP and distribution ports with a private epmd on a third, its config,
 * mnesia, logs and HOME (the Erlang cookie) in its folder; node_url is
 * amqp://guest:guest@127.0.0.1:PORT/. The epmd stays up across node_stop,
 * node_kill and node_restart, and goes with node_free.
 * DUPSIM_RABBITMQ_SERVER and DUPSIM_EPMD name other binaries.
 */
extern const struct node_ops rabbitmq_ops;

enum rabbitmq_port { RABBITMQ_PORT_AMQP, RABBITMQ_PORT_DIST, RABBITMQ_PORT_EPMD };
/* One of a rabbitmq node's three ports. */
uint16_t rabbitmq_port(const struct node *n, enum rabbitmq_port which);
/* Its epmd's pid; 0 while it is down. */
pid_t rabbitmq_epmd_pid(const struct node *n);

#endif
