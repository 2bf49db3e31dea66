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

#define RABBITMQ_PEERS_MAX 8

/*
 * Settings of a private node's rabbit application beyond the defaults.
 * consumer_timeout_ms: the delivery acknowledgement timeout, 0 = the
 * broker's default (30 minutes). RabbitMQ checks it on each channel's tick
 * (rabbit_channel.erl, handle_info(tick) -> evaluate_consumer_timeout),
 * every channel_tick_interval ms, 60000 by default and settable only in
 * advanced.config: with a timeout the node ticks every timeout / 4 (at
 * least 100 ms, at most 60 s), so a timeout fires within a quarter of
 * itself instead of up to a minute late.
 */
struct rabbitmq_conf {
	uint64_t consumer_timeout_ms;
	/* A cluster member (broker.nodes = 3): the Erlang cookie all members share, and the nodes
	 * already running that this one joins at its first boot (classic_config peer discovery). */
	const char *cookie;
	const char *peers[RABBITMQ_PEERS_MAX]; /* node names (NAME@ADDR), NULL-ended */
	/* Erlang finds a peer through the epmd on the peer's host at its *own* epmd port: all
	 * members use one (each has a host of its own, so it is free there). 0: a free one. */
	uint16_t epmd_port;
};

/* node_new with rabbitmq_ops and these settings (NULL: none) written into the node's config. */
int rabbitmq_new(struct node **out, const struct node_opts *opts, const struct rabbitmq_conf *conf, char *err,
		 size_t errlen);
/* The channel tick interval a node with this consumer timeout gets (ms); 0: the broker's default. */
uint64_t rabbitmq_tick_ms(uint64_t consumer_timeout_ms);

enum rabbitmq_port { RABBITMQ_PORT_AMQP, RABBITMQ_PORT_DIST, RABBITMQ_PORT_EPMD };
/* One of a rabbitmq node's three ports. */
uint16_t rabbitmq_port(const struct node *n, enum rabbitmq_port which);
/* Its Erlang node name: NAME@localhost, or NAME@ADDR on a test host (long names). */
const char *rabbitmq_node_name(const struct node *n);
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
/* The same, waited for (at most timeout_ms): its output in out. 0, or -1 with err (its exit status and output). */
int rabbitmq_ctl_run(struct node *n, const char *const *args, int timeout_ms, char *out, size_t outlen, char *err,
		     size_t errlen);

#endif
