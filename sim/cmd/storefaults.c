/* storefaults.c — faults of a run's dedup store itself: restarts without persistence, a hung (SIGSTOPped) redis. */
#include "cmd/storefaults.h"

#include <signal.h>

#include "core/clock.h"
#include "core/log.h"

void store_faults_init(struct store_faults *f, struct node *redis, struct ledger *l, const struct scenario *sc,
		       uint64_t start_ns)
{
	uint64_t warm = sc->faults.warmup_ns, every = sc->store.restart_every_ns;

	*f = (struct store_faults){ .redis = redis, .ledger = l, .every_ns = every };
	f->next_restart_ns = start_ns + (every > warm ? every : warm);
	if (sc->store.down_until_ns) {
		f->down_from_ns = start_ns + (sc->store.down_from_ns > warm ? sc->store.down_from_ns : warm);
		f->down_until_ns = start_ns + sc->store.down_until_ns;
	}
}

/* kill -9, then the same server again on its (empty) data; the ledger hears of it first. */
static enum store_fault store_faults_restart(struct store_faults *f)
{
	char err[512];

	ledger_note_store_restart(f->ledger); /* before the kill: every mark sent so far may be gone */
	node_kill(f->redis);
	if (node_restart(f->redis, err, sizeof(err)) < 0) {
		f->restart_failures++;
		log_line("run: restarting the dedup store failed: %s; trying again", err);
	}
	f->restarts++;
	f->next_restart_ns = clock_now_ns() + f->every_ns;
	return STORE_FAULT_RESTART;
}

static enum store_fault store_faults_signal(struct store_faults *f, uint64_t now, bool stop)
{
	pid_t pid = node_pid(f->redis);

	if (pid > 0)
		kill(pid, stop ? SIGSTOP : SIGCONT);
	f->stopped = stop;
	if (stop) {
		f->stopped_at_ns = now;
		return STORE_FAULT_DOWN;
	}
	f->down_ns += now - f->stopped_at_ns;
	f->window_done = true;
	return STORE_FAULT_UP;
}

enum store_fault store_faults_step(struct store_faults *f, uint64_t now, bool publishing, bool cooling)
{
	char err[512];

	if (!f->redis)
		return STORE_FAULT_NONE;
	if (!node_running(f->redis) && !f->stopped && node_restart(f->redis, err, sizeof(err)) < 0)
		return STORE_FAULT_NONE; /* a failed restart: again on the next step */
	if (f->stopped && (now >= f->down_until_ns || cooling))
		return store_faults_signal(f, now, false);
	if (!f->stopped && !f->window_done && f->down_until_ns && now >= f->down_from_ns && now < f->down_until_ns &&
	    !cooling)
		return store_faults_signal(f, now, true);
	if (f->every_ns && !f->stopped && publishing && now >= f->next_restart_ns)
		return store_faults_restart(f);
	return STORE_FAULT_NONE;
}

bool store_faults_down(const struct store_faults *f)
{
	return f->stopped;
}

void store_faults_end(struct store_faults *f, uint64_t now)
{
	if (f->redis && f->stopped)
		store_faults_signal(f, now, false);
}

const char *store_fault_text(enum store_fault what)
{
	switch (what) {
	case STORE_FAULT_RESTART:
		return "dedup store restart (kill -9, no persistence)";
	case STORE_FAULT_DOWN:
		return "dedup store down (SIGSTOP)";
	case STORE_FAULT_UP:
		return "dedup store back (SIGCONT)";
	default:
		return "";
	}
}
