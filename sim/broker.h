/* broker.h — private RabbitMQ nodes and redis servers: free loopback ports, own folders, start, stop, kill -9, restart. */
#ifndef DUPSIM_BROKER_H
#define DUPSIM_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker_opts {
	const char *dir;   /* folder for data, logs, HOME; NULL: a fresh mkdtemp folder */
	bool keep_dir;	   /* leave dir on broker_free (a persistent node) */
	bool persistent;   /* survive this process (dupsim broker start): no death signal, not cleaned at exit */
	int start_timeout_ms; /* 0: 60000 */
	bool quiet;	   /* no progress lines on stderr */
};

/* A private RabbitMQ node. */
struct broker;

/*
 * Starts a node: its own node name, free AMQP and distribution ports (and a
 * private epmd port), data, log and HOME folder, listening on 127.0.0.1 only;
 * returns once it accepts an AMQP login as guest. 0, or -1 with one line in
 * err (with the log file's path and its last lines when the node died).
 * Works as root and as a normal user.
 */
int broker_start(struct broker **out, const struct broker_opts *opts, char *err, size_t errlen);
/* amqp://guest:guest@127.0.0.1:PORT/ ; owned by the broker. */
const char *broker_url(const struct broker *b);
uint16_t broker_amqp_port(const struct broker *b);
const char *broker_dir(const struct broker *b);
/* True while the node's OS process runs. */
bool broker_running(const struct broker *b);
/* Clean stop (waits for the node to exit). 0 or -1. */
int broker_stop(struct broker *b);
/* kill -9 of the node, like a machine crash; returns once it is gone. */
int broker_kill(struct broker *b);
/* Starts the node again on the same data and ports; waits until ready. */
int broker_restart(struct broker *b, char *err, size_t errlen);
/* Stops the node if running, removes its folder unless keep_dir, frees. NULL ok. */
void broker_free(struct broker *b);

/* A private redis-server, same life cycle. */
struct redis_node;
int redis_node_start(struct redis_node **out, const struct broker_opts *opts, char *err, size_t errlen);
const char *redis_node_url(const struct redis_node *r); /* redis://127.0.0.1:PORT */
uint16_t redis_node_port(const struct redis_node *r);
bool redis_node_running(const struct redis_node *r);
int redis_node_stop(struct redis_node *r);
int redis_node_kill(struct redis_node *r);
int redis_node_restart(struct redis_node *r, char *err, size_t errlen);
void redis_node_free(struct redis_node *r);

/*
 * Kills every non-persistent node and server this process started and removes
 * their folders. Async-signal-safe enough to call from a SIGINT/SIGTERM
 * handler (kill + waitpid; folder removal happens in broker_cleanup_atexit).
 * broker_start registers an atexit handler the first time.
 */
void broker_cleanup_signal(void);

/*
 * The node kept up by `dupsim broker start`, if it is alive: copies its URL
 * into url and returns 0; -1 when there is none.
 */
int broker_find_persistent(char *url, size_t len);

/* `dupsim broker start|stop|status`; argv[0] is "broker". Returns an exit code. */
int broker_cli(int argc, char **argv);

#endif
