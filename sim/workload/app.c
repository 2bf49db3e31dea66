/* app.c — the user's own consumer ([app]): its instances, their environment and logs, kill -9 on a schedule, restarts. */
#include "workload/app.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "nodes/proc.h"
#include "nodes/strv.h"

extern char **environ;

/* The variables dupsim sets: an inherited one of the same name (a nested run) is not passed on. */
static const char *const app_vars[] = { "DUPSIM_AMQP_URL=", "DUPSIM_QUEUE=", "DUPSIM_EFFECTS=", "DUPSIM_REDIS_URL=",
					"DUPSIM_PG_URL=",   "DUPSIM_INSTANCE=", "DUPSIM_SEED=", "DUPSIM_NODE=",
					"DUPSIM_NETNS=" };

static bool app_var_ours(const char *entry)
{
	for (size_t i = 0; i < sizeof(app_vars) / sizeof(app_vars[0]); i++)
		if (strncmp(entry, app_vars[i], strlen(app_vars[i])) == 0)
			return true;
	return false;
}

/* Instance i's environment: dupsim's own, then DESIGN.md's variables. 0 or -1. */
static int app_env(const struct app *a, unsigned i, struct strv *env)
{
	const struct app_config *c = &a->cfg;
	int rc = 0;

	for (char **e = environ; e && *e; e++)
		if (!app_var_ours(*e))
			rc |= strv_addf(env, "%s", *e);
	rc |= strv_addf(env, "DUPSIM_AMQP_URL=%s", c->amqp_url);
	rc |= strv_addf(env, "DUPSIM_QUEUE=%s", c->sc->broker.queue);
	rc |= strv_addf(env, "DUPSIM_EFFECTS=%s", appview_effects_path(c->view, i));
	if (c->redis_url)
		rc |= strv_addf(env, "DUPSIM_REDIS_URL=%s", c->redis_url);
	if (c->pg_url)
		rc |= strv_addf(env, "DUPSIM_PG_URL=%s", c->pg_url);
	rc |= strv_addf(env, "DUPSIM_INSTANCE=%u", i);
	rc |= strv_addf(env, "DUPSIM_SEED=%llu", (unsigned long long)c->sc->run.seed);
	rc |= strv_addf(env, "%s", a->inst[i].marker);
	if (c->netns && i < APP_HOSTS_MAX && c->netns[i]) /* proc_spawn starts it on that host */
		rc |= strv_addf(env, "DUPSIM_NETNS=%s", c->netns[i]);
	return rc;
}

/* Starts instance i; 0, or -1 with err. */
static int app_spawn(struct app *a, unsigned i, uint64_t now, char *err, size_t errlen)
{
	struct app_instance *in = &a->inst[i];
	char *argv[] = { "/bin/sh", "-c", (char *)a->cfg.sc->app.consumer, NULL };
	struct strv env = { 0 };
	char cwd[4096];
	pid_t pid;
	int rc;

	if (!getcwd(cwd, sizeof(cwd)))
		return log_seterr(err, errlen, "getcwd: %s", strerror(errno));
	if (app_env(a, i, &env) < 0) {
		strv_release(&env);
		return log_seterr(err, errlen, "out of memory");
	}
	rc = proc_spawn(argv, env.v, cwd, in->log, false, &pid, err, errlen);
	strv_release(&env);
	if (rc < 0)
		return -1;
	atomic_store(&in->pid, pid);
	in->started_ns = now;
	return 0;
}

static uint64_t app_next_gap(struct app *a)
{
	/* exponential with mean crash_every; 1 - u is in (0, 1] */
	return (uint64_t)(-log(1.0 - rng_unit(&a->rng)) * (double)a->cfg.sc->app.crash_every_ns);
}

int app_start(struct app *a, const struct app_config *cfg, char *err, size_t errlen)
{
	uint64_t now = clock_now_ns();
	char family[64];

	memset(a, 0, sizeof(*a));
	a->cfg = *cfg;
	/* restarts come long after the caller's strings are gone */
	snprintf(a->amqp_url, sizeof(a->amqp_url), "%s", cfg->amqp_url);
	a->cfg.amqp_url = a->amqp_url;
	if (cfg->redis_url) {
		snprintf(a->redis_url, sizeof(a->redis_url), "%s", cfg->redis_url);
		a->cfg.redis_url = a->redis_url;
	}
	if (cfg->pg_url) {
		snprintf(a->pg_url, sizeof(a->pg_url), "%s", cfg->pg_url);
		a->cfg.pg_url = a->pg_url;
	}
	a->n = (unsigned)cfg->sc->app.instances;
	if (!(a->inst = calloc(a->n, sizeof(*a->inst))))
		return log_seterr(err, errlen, "out of memory");
	snprintf(family, sizeof(family), "DUPSIM_NODE=app-%d", (int)getpid());
	a->slot = proc_slot_claim(family, "", false);
	rng_seed(&a->rng, cfg->sc->run.seed ^ 0x6170702d6b696c6cULL); /* "app-kill": its own stream */
	for (unsigned i = 0; i < a->n; i++) {
		struct app_instance *in = &a->inst[i];

		snprintf(in->log, sizeof(in->log), "%s/app-%u.log", cfg->dir, i);
		snprintf(in->marker, sizeof(in->marker), "%s-%u", family, i);
		if (app_spawn(a, i, now, err, errlen) < 0) {
			app_stop(a);
			app_release(a);
			return -1;
		}
	}
	if (cfg->sc->app.crash_every_ns)
		a->next_kill_ns = now + app_next_gap(a);
	return 0;
}

/* Instance i exited on its own with status code: count it, restart it later, or fail the run. */
static void app_exited(struct app *a, unsigned i, int code, uint64_t now)
{
	struct app_instance *in = &a->inst[i];
	char tail[1024];

	proc_kill(atomic_load(&in->pid), in->marker); /* reaps it, and kills what it left behind */
	atomic_store(&in->pid, 0);
	a->exits++;
	in->quick_exits = now - in->started_ns < APP_QUICK_EXIT_NS ? in->quick_exits + 1 : 0;
	in->restart_at_ns = now + a->cfg.sc->app.restart_delay_ns;
	if (in->quick_exits < APP_QUICK_EXITS || a->failure[0])
		return;
	proc_log_tail(in->log, 4, tail, sizeof(tail));
	snprintf(a->failure, sizeof(a->failure),
		 "app instance %u (%s) exited with status %d, %u times in a row within %llu s of its start; "
		 "the last lines of %s: %s", i, a->cfg.sc->app.consumer, code, in->quick_exits,
		 (unsigned long long)(APP_QUICK_EXIT_NS / NS_PER_S), in->log, tail[0] ? tail : "(empty)");
}

/* kill -9 of a random running instance; false when none runs. */
static bool app_kill_one(struct app *a, uint64_t now)
{
	unsigned running = 0, pick;

	for (unsigned i = 0; i < a->n; i++)
		running += atomic_load(&a->inst[i].pid) != 0;
	if (!running)
		return false;
	pick = (unsigned)(rng_next(&a->rng) % running);
	for (unsigned i = 0; i < a->n; i++) {
		struct app_instance *in = &a->inst[i];

		if (!atomic_load(&in->pid) || pick--)
			continue;
		appview_note_killing(a->cfg.view, i, now);
		proc_kill(atomic_load(&in->pid), in->marker);
		atomic_store(&in->pid, 0);
		in->quick_exits = 0;
		in->restart_at_ns = now + a->cfg.sc->app.restart_delay_ns;
		a->kills++;
		return true;
	}
	return false;
}

bool app_kill_due(const struct app *a, uint64_t now)
{
	return a->next_kill_ns && now >= a->next_kill_ns;
}

bool app_step(struct app *a, uint64_t now, bool crashes_on)
{
	char err[512];
	bool killed = false;

	for (unsigned i = 0; i < a->n && !a->failure[0]; i++) {
		struct app_instance *in = &a->inst[i];
		pid_t pid = atomic_load(&in->pid);
		int code;

		if (pid && proc_exited(pid, &code)) {
			app_exited(a, i, code, now);
		} else if (!pid && now >= in->restart_at_ns) {
			if (app_spawn(a, i, now, err, sizeof(err)) < 0)
				snprintf(a->failure, sizeof(a->failure), "app instance %u could not be restarted: %s", i,
					 err);
			else
				a->restarts++;
		}
	}
	if (a->next_kill_ns && now >= a->next_kill_ns) {
		if (crashes_on && !a->failure[0])
			killed = app_kill_one(a, now);
		a->next_kill_ns = now + app_next_gap(a);
	}
	return killed;
}

const char *app_failure(const struct app *a)
{
	return a->failure[0] ? a->failure : NULL;
}

void app_stop(struct app *a)
{
	uint64_t deadline = clock_now_ns() + 3 * NS_PER_S;
	bool left = true;

	if (!a->inst)
		return;
	for (unsigned i = 0; i < a->n; i++)
		if (atomic_load(&a->inst[i].pid))
			kill(-atomic_load(&a->inst[i].pid), SIGTERM);
	while (left && clock_now_ns() < deadline) {
		left = false;
		for (unsigned i = 0; i < a->n; i++) {
			pid_t pid = atomic_load(&a->inst[i].pid);

			left |= pid && !proc_exited(pid, NULL);
		}
		if (left)
			clock_sleep_ns(20 * NS_PER_MS);
	}
	for (unsigned i = 0; i < a->n; i++) {
		proc_kill(atomic_load(&a->inst[i].pid), a->inst[i].marker);
		atomic_store(&a->inst[i].pid, 0);
	}
	proc_slot_release(a->slot);
	a->slot = NULL;
}

void app_release(struct app *a)
{
	free(a->inst);
	a->inst = NULL;
	a->n = 0;
}

int app_owner(void *arg, uint16_t port, pid_t *pid)
{
	struct app *a = arg;
	pid_t groups[64], owner, group;
	size_t n = 0;

	/* each instance leads a session (and process group) of its own: /bin/sh's pid */
	for (unsigned i = 0; i < a->n && n < 64; i++)
		if ((groups[n] = atomic_load(&a->inst[i].pid)) > 0)
			n++;
	owner = proc_socket_owner(port, a->cfg.proxy_port, groups, n);
	*pid = owner;
	if (owner == getpid())
		return APP_OWNER_SELF;
	if (owner <= 0 || (group = getpgid(owner)) < 0)
		return -1;
	for (unsigned i = 0; i < a->n; i++)
		if (atomic_load(&a->inst[i].pid) == group)
			return (int)i;
	return -1;
}
