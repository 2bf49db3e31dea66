/* app.h — the user's own consumer ([app]): its instances, their environment and logs, kill -9 on a schedule, restarts. */
#ifndef DUPSIM_APP_H
#define DUPSIM_APP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/rng.h"
#include "core/scenario.h"
#include "workload/appview.h"

/*
 * Each instance is `/bin/sh -c COMMAND`, started from the folder dupsim was
 * started in, in a process group of its own, with dupsim's environment plus
 * DESIGN.md's DUPSIM_* variables; its stdout and stderr go to
 * DIR/app-<i>.log (appended over restarts).
 *
 * Exits: an instance that exits on its own is restarted after restart_delay
 * and counted (`exits`), whatever its status: a consumer that gives up on a
 * cut connection is what the run is there to find. But one that exits within
 * APP_QUICK_EXIT of its start APP_QUICK_EXITS times in a row is broken (a
 * wrong command, a missing module): the run fails, and app_failure() says
 * which instance, its status and the last lines of its log.
 *
 * Crashes: with crash_every > 0, a random running instance is killed with
 * kill -9 (its whole process group) at exponential intervals of that mean,
 * from the run's seed, while app_step is told crashes are on; it stays down
 * restart_delay.
 */
#define APP_QUICK_EXIT_NS (2ULL * 1000000000ULL)
#define APP_QUICK_EXITS 3
#define APP_HOSTS_MAX 8 /* entries of app_config.netns */

struct app_config {
	const struct scenario *sc;
	const char *dir;       /* the run's results folder */
	const char *amqp_url;  /* DUPSIM_AMQP_URL: the fault proxy (copied) */
	const char *redis_url; /* DUPSIM_REDIS_URL, or NULL (copied) */
	const char *pg_url;    /* DUPSIM_PG_URL, or NULL (copied) */
	uint16_t proxy_port;   /* where the proxy listens: the far end of every app connection */
	struct appview *view;  /* effects files, and told of every kill */
	const char *const *netns; /* APP_HOSTS_MAX entries or NULL: instance i on test host netns[i] (NULL: here) */
};

struct app_instance {
	_Atomic pid_t pid;	 /* 0 while down (read by the proxy's thread: app_owner) */
	uint64_t started_ns;
	uint64_t restart_at_ns;	 /* while down: when it comes back */
	unsigned quick_exits;	 /* exits in a row within APP_QUICK_EXIT_NS of starting */
	char log[4096];
	char marker[128];	 /* DUPSIM_NODE=app-<dupsim's pid>-<i>: finds what the instance left */
};

struct app {
	struct app_config cfg; /* its URLs point at the copies below */
	char amqp_url[512], redis_url[256], pg_url[256];
	unsigned n;
	struct app_instance *inst;
	struct rng rng;
	uint64_t next_kill_ns; /* 0: no crashes */
	uint64_t kills, exits, restarts;
	char failure[8192];    /* why the app failed the run; "" while it did not */
	struct proc_slot *slot; /* SIGINT's cleanup kills what is left */
};

/* Starts every instance. 0, or -1 with one line in err (and nothing left running). */
int app_start(struct app *a, const struct app_config *cfg, char *err, size_t errlen);
/* True when the kill schedule has a kill -9 due now (so the caller can decide whether crashes are on). */
bool app_kill_due(const struct app *a, uint64_t now_ns);
/* Exits, restarts and (while crashes_on) the kill schedule; call every few tens of ms. True when it killed one. */
bool app_step(struct app *a, uint64_t now_ns, bool crashes_on);
/* Why the app failed the run, or NULL. */
const char *app_failure(const struct app *a);
/* SIGTERM to every instance, up to 3 s to go, then kill -9 of what is left. A zeroed app is fine. */
void app_stop(struct app *a);
/* Frees, once nothing calls app_owner any more (the proxy is gone). A zeroed app is fine. */
void app_release(struct app *a);
/*
 * The proxy's question (appview_config.owner): which instance holds the
 * client's port; -1 none found, APP_OWNER_SELF for dupsim's own connections
 * (its publishers), which the view leaves alone.
 */
#define APP_OWNER_SELF (-2)
int app_owner(void *arg, uint16_t port, pid_t *pid);

#endif
