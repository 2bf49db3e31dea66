/* crashes.c — the broker crash schedule of a run: kill -9 every so often, restart on the same data a while later. */
#include "cmd/crashes.h"

#include "core/clock.h"
#include "core/log.h"

void crashes_init(struct crashes *c, struct node *broker, struct events *events, uint64_t every_ns,
		  uint64_t down_ns, uint64_t start_ns, uint64_t warmup_ns)
{
	*c = (struct crashes){
		.broker = broker,
		.events = events,
		.every_ns = every_ns,
		.down_ns = down_ns,
		.next_crash_ns = start_ns + (every_ns > warmup_ns ? every_ns : warmup_ns),
	};
}

/* Brings the killed broker back; on failure tries again in a second, and gives up after CRASHES_RESTART_TRIES. */
static void crashes_restart(struct crashes *c)
{
	char err[512];

	if (node_restart(c->broker, err, sizeof(err)) < 0) {
		if (++c->restart_failures >= CRASHES_RESTART_TRIES) {
			log_line("run: restarting the broker failed %d times (last: %s); ending the run",
				 CRASHES_RESTART_TRIES, err);
			c->lost = true;
			return;
		}
		log_line("run: restarting the broker failed: %s; trying again in 1 s (%d of %d)", err, c->restart_failures,
			 CRASHES_RESTART_TRIES);
		c->restart_at_ns = clock_now_ns() + NS_PER_S;
		return;
	}
	c->restart_at_ns = 0;
	c->restart_failures = 0;
	c->next_crash_ns = clock_now_ns() + c->every_ns;
}

bool crashes_step(struct crashes *c, uint64_t now, bool publishing)
{
	if (!c->every_ns || !c->broker)
		return false;
	if (c->restart_at_ns && now >= c->restart_at_ns) {
		crashes_restart(c);
		return false;
	}
	if (!c->restart_at_ns && now >= c->next_crash_ns && publishing) {
		/* noted first: the workers see their connections die before node_kill returns */
		events_note_crash(c->events, clock_now_ns());
		node_kill(c->broker);
		c->count++;
		c->restart_at_ns = clock_now_ns() + c->down_ns;
		return true;
	}
	return false;
}

bool crashes_down(const struct crashes *c)
{
	return c->restart_at_ns != 0;
}
