/* node.h — private servers (RabbitMQ, redis, …): free loopback ports, own folder, start, readiness wait, stop, kill -9, restart; one table of ops per kind. */
#ifndef DUPSIM_NODES_NODE_H
#define DUPSIM_NODES_NODE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/clock.h"
#include "nodes/proc.h"
#include "nodes/strv.h"

struct node_opts {
	const char *dir;      /* folder for data, logs, HOME; NULL: a fresh mkdtemp folder */
	bool keep_dir;	      /* leave dir on node_free (a persistent node) */
	bool persistent;      /* no death signal, so that node_detach can leave it running past this process */
	int start_timeout_ms; /* 0: 60000 */
	bool quiet;	      /* no progress lines on stderr */
	const char *netns;    /* a test host's namespace (hosts/hosts.h) to run in; NULL: this one */
	const char *addr;     /* the address it listens on there (the host's); NULL: 127.0.0.1 */
};

/* Error codes: every function returns 0 or one of these (with one line in err where it takes one). */
enum {
	NODE_ESYS = -1,	    /* a folder, file, fork or allocation failed */
	NODE_EBIN = -2,	    /* the server's binary is missing */
	NODE_EFULL = -3,    /* too many nodes in one process */
	NODE_EEXIT = -4,    /* the server exited while starting */
	NODE_ETIMEOUT = -5, /* the server was not ready within the start timeout */
	NODE_EPORT = -6,    /* a port was taken between the probe and the bind, twice */
	NODE_EKILLED = -7,  /* a stop took over NODE_STOP_TIMEOUT_NS: killed (gone all the same) */
};
const char *node_strerror(int code);

#define NODE_STOP_TIMEOUT_NS (30 * NS_PER_S)

struct node;
struct node_ops;

/*
 * Starts a node of the given kind (rabbitmq_ops, redis_ops): its own name,
 * free loopback ports, a folder for data, logs and HOME, listening on
 * 127.0.0.1 only; returns once the kind's readiness check passes (an AMQP
 * login, a PING). 0, or a NODE_E* code with one line in err (with the log's
 * path and its last lines when the server died). Works as root and as a
 * normal user. A non-persistent node gets SIGKILL when the *thread* that
 * started or restarted it exits: call this from a thread that lives as long
 * as the node, e.g. the main thread.
 */
int node_new(struct node **out, const struct node_ops *kind, const struct node_opts *opts, char *err,
	     size_t errlen);
/* Stops the node (and its helpers) if running, removes its folder unless keep_dir, frees. NULL ok. */
void node_free(struct node *n);
/* Forgets a persistent node without stopping it: it outlives this process. Frees. */
void node_detach(struct node *n);

/* The clients' URL (amqp://guest:guest@127.0.0.1:PORT/, redis://127.0.0.1:PORT); owned by the node. */
const char *node_url(const struct node *n);
/* The address its clients connect to (127.0.0.1, or its test host's). */
const char *node_addr(const struct node *n);
/* The clients' port. */
uint16_t node_port(const struct node *n);
const char *node_dir(const struct node *n);
/* dupsim<tag>-PID-N-RAND: the node's name, also in DUPSIM_NODE of each of its processes. */
const char *node_name(const struct node *n);
/* OS pid of the server (leader of its own process group); 0 while it is down. */
pid_t node_pid(const struct node *n);
/* True while the server's OS process runs. */
bool node_running(const struct node *n);
/* How long the last start or restart took until ready. */
uint64_t node_last_start_ns(const struct node *n);

/* Clean stop: SIGTERM (or the kind's stop_signal), wait for the server to exit; 0, or NODE_EKILLED. Helpers (epmd) stay for a restart. */
int node_stop(struct node *n);
/* kill -9 of the server, like a machine crash; returns once it is gone. Helpers stay. 0. */
int node_kill(struct node *n);
/* Starts the server again on the same data and ports (stops it first if running); waits until ready. 0 or a code with err. */
int node_restart(struct node *n, char *err, size_t errlen);

/*
 * By name, for nodes this process may not hold (another dupsim's, the one
 * `dupsim broker start` left running): live processes of node `name` and of
 * its helpers, zombies not counted, -1 when /proc can't be read; whether pid
 * is still that node's process; kill -9 of all of them.
 */
int node_procs_alive(const char *name);
bool node_pid_is(pid_t pid, const char *name);
void node_kill_named(const char *name);

/*
 * Environment: DUPSIM_KEEP=1 keeps every node's folder (for its logs); the
 * kinds name their own (DUPSIM_RABBITMQ_SERVER, DUPSIM_EPMD,
 * DUPSIM_REDIS_SERVER, DUPSIM_PG_BIN). A mkdtemp folder records its owner; one left by a
 * dupsim that was SIGKILLed is removed by the next start in the same TMPDIR
 * once none of its processes is alive (nodes/sweep.h). proc_cleanup_signal()
 * (nodes/proc.h) kills every node of this process from a signal handler.
 */

/* ---------- for the kinds ---------- */

#define NODE_PORTS_MAX 4

/*
 * A kind is one file with a `const struct node_ops` and a struct that embeds
 * struct node first. node_new calls, in order: check (once), then per
 * attempt configure, start_helpers, spawn of argv/envp, ready until it
 * holds; a failure whose log holds port_taken gets one more attempt with
 * new ports. check, configure and ready are required; the helper hooks and
 * release may be NULL.
 */
struct node_ops {
	const char *title;	     /* "RabbitMQ node": progress lines and errors */
	const char *tag;	     /* in the node's name: dupsim<tag>-PID-N-RAND */
	const char *log_name;	     /* the server's stdout and stderr, inside the folder */
	const char *detail_log_name; /* the server's own log inside the folder, or NULL */
	const char *port_taken;	     /* text in log_name after a failed bind, or NULL */
	size_t size;		     /* of the kind's struct */
	int nports;		     /* free distinct loopback ports in ports[]; ports[0] is the clients' */
	int ready_digits;	     /* decimals of the "ready in" line */
	int stop_signal;	     /* what node_stop sends; 0: SIGTERM */
	/* Finds the binaries; NODE_EBIN with err. */
	int (*check)(struct node *n, char *err, size_t errlen);
	/* With ports chosen and argv/envp empty: url, config files, argv and envp. 0 or a code with err. */
	int (*configure)(struct node *n, char *err, size_t errlen);
	/* Starts (or keeps) helper processes; failure counts as a taken port. */
	int (*start_helpers)(struct node *n, char *err, size_t errlen);
	/* Kills the helpers (node_free, and before a new attempt). */
	void (*stop_helpers)(struct node *n);
	/* Frees what the kind allocated. */
	void (*release)(struct node *n);
	/* True when the server takes clients. */
	bool (*ready)(const struct node *n);
};

struct node {
	const struct node_ops *ops;
	char name[64];
	char marker[PROC_MARKER_MAX]; /* DUPSIM_NODE=<name>: put it into envp */
	char *dir;
	bool keep_dir, persistent, quiet;
	uint64_t start_timeout_ns;
	struct proc_slot *slot;
	pid_t pid;	       /* 0: not running (reaped) */
	struct strv argv, envp; /* filled by configure */
	char log[PATH_MAX], detail_log[PATH_MAX];
	uint16_t ports[NODE_PORTS_MAX];
	char url[96];
	uint64_t start_ns;
	char addr[24];	     /* where it listens: 127.0.0.1, or its test host's address */
	char netns_env[80]; /* DUPSIM_NETNS=<its host's namespace> (proc_spawn enters it), "" on this host */
};

/* A helper's marker, DUPSIM_NODE=<name>-<suffix>: in the node's family, so the cleanup finds it. */
void node_helper_marker(const struct node *n, const char *suffix, char *buf, size_t len);
/* Tells the cleanup about the kind's helper process (one per node); 0 when it is gone. */
void node_watch_helper(struct node *n, pid_t pid);
/* The binary named by environment variable envname, else dflt. */
const char *node_exe(const char *envname, const char *dflt);
/* Writes text to dir/name atomically; 0 or NODE_ESYS with err. */
int node_write_file(const struct node *n, const char *name, const char *text, char *err, size_t errlen);

#endif
