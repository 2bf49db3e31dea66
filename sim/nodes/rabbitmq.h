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

/*
 * Starts `rabbitmqctl -n NODE args...` against the running node n (its
 * cookie, its epmd), output appended to log/rabbitmqctl.log in its folder,
 * and returns at once: poll proc_exited(*pid, &code) (the call takes a
 * second or two: an Erlang VM starts). args ends with NULL. 0, or a negative
 * NODE_E* code with err. DUPSIM_RABBITMQCTL names another binary.
 */
int rabbitmq_ctl_spawn(struct node *n, const char *const *args, pid_t *pid, char *err, size_t errlen);

#endif
