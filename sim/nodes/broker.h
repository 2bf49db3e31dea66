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
/* Clean stop: SIGTERM, wait for the node to exit; 0, or -1 when it took over 30 s and was killed (gone either way). */
int broker_stop(struct broker *b);
/* kill -9 of the node, like a machine crash; returns once it is gone. */
int broker_kill(struct broker *b);
/* Starts the node again on the same data and ports (stops it first if running); waits until ready. 0 or -1 with err. */
int broker_restart(struct broker *b, char *err, size_t errlen);
/* Stops the node if running, removes its folder unless keep_dir, frees. NULL ok. */
void broker_free(struct broker *b);
/* dupsim-PID-N-TAG: the node's name, also in DUPSIM_NODE of each of its processes. */
const char *broker_node_name(const struct broker *b);
/* OS pid of the node (beam.smp, leader of its own process group); 0 while it is down. */
int broker_pid(const struct broker *b);
/* How long the last start or restart took until the first guest login. */
uint64_t broker_last_start_ns(const struct broker *b);
/*
 * Live processes of a node or redis server named node_name: the VM, its
 * helpers (erl_child_setup, inet_gethost, which leave its process group) and
 * its private epmd; zombies don't count. -1 when /proc can't be read.
 */
int broker_procs_alive(const char *node_name);

/*
 * Environment: DUPSIM_RABBITMQ_SERVER, DUPSIM_EPMD, DUPSIM_REDIS_SERVER name
 * other binaries; DUPSIM_KEEP=1 keeps every node's folder (for its logs).
 * A non-persistent node gets SIGKILL when the *thread* that started or
 * restarted it exits (PR_SET_PDEATHSIG): call these from a thread that lives
 * as long as the node, e.g. the main thread. A mkdtemp folder records its
 * owner; one left by a dupsim that was SIGKILLed is removed by the next
 * start in the same TMPDIR once none of its processes is alive.
 */

/*
 * A private redis-server, same life cycle. No RDB snapshots; appendonly yes,
 * appendfsync everysec: every acknowledged write survives a kill -9 (only a
 * machine crash could lose the last second).
 */
struct redis_node;
int redis_node_start(struct redis_node **out, const struct broker_opts *opts, char *err, size_t errlen);
const char *redis_node_url(const struct redis_node *r); /* redis://127.0.0.1:PORT */
uint16_t redis_node_port(const struct redis_node *r);
const char *redis_node_name(const struct redis_node *r);
const char *redis_node_dir(const struct redis_node *r);
int redis_node_pid(const struct redis_node *r);
bool redis_node_running(const struct redis_node *r);
int redis_node_stop(struct redis_node *r);
int redis_node_kill(struct redis_node *r);
int redis_node_restart(struct redis_node *r, char *err, size_t errlen);
void redis_node_free(struct redis_node *r);

/*
 * Kills every non-persistent node and server this process started and removes
 * their folders. Async-signal-safe: only kill, waitpid, nanosleep and raw
 * /proc and folder syscalls (open, getdents64, read, unlinkat), so it can be
 * called from a SIGINT/SIGTERM handler. broker_start registers an atexit
 * handler the first time that does the same at a normal exit. Nodes started
 * by a fork()ed parent are left to the parent.
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
