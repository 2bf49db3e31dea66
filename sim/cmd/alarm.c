/* alarm.c — faults.memory_alarm: the private node's memory alarm on for a window of the run, via rabbitmqctl. */
#include "cmd/alarm.h"

#include "core/clock.h"
#include "core/log.h"
#include "nodes/proc.h"
#include "nodes/rabbitmq.h"

void alarm_init(struct alarm *a, struct node *broker, struct events *events, uint64_t start_ns, uint64_t from_ns,
		uint64_t until_ns, uint64_t grace_ns)
{
	*a = (struct alarm){
		.broker = until_ns ? broker : NULL,
		.events = events,
		.on_ns = start_ns + from_ns,
		.off_ns = start_ns + until_ns,
		.grace_ns = grace_ns,
		.state = until_ns && broker ? ALARM_IDLE : ALARM_DONE,
	};
}

/* Starts rabbitmqctl set_vm_memory_high_watermark with `value`; false (said in the log) when it could not. */
static bool alarm_set(struct alarm *a, const char *value)
{
	const char *args[] = { "set_vm_memory_high_watermark", value, NULL };
	char err[256];

	if (rabbitmq_ctl_spawn(a->broker, args, &a->pid, err, sizeof(err)) == 0)
		return true;
	log_line("run: faults.memory_alarm: cannot start rabbitmqctl: %s", err);
	a->failed = true;
	return false;
}

/* The rabbitmqctl under way is done: true, with its success in *ok. */
static bool alarm_ctl_done(struct alarm *a, bool *ok)
{
	int code = 0;

	if (!proc_exited(a->pid, &code))
		return false;
	proc_kill(a->pid, ""); /* reaps it */
	a->pid = 0;
	*ok = code == 0;
	if (!*ok) {
		log_line("run: faults.memory_alarm: rabbitmqctl exited with %d (see log/rabbitmqctl.log of the node)",
			 code);
		a->failed = true;
	}
	return true;
}

void alarm_step(struct alarm *a, uint64_t now)
{
	bool ok;

	switch (a->state) {
	case ALARM_IDLE:
		if (now >= a->on_ns)
			a->state = alarm_set(a, "0") ? ALARM_RAISING : ALARM_DONE;
		break;
	case ALARM_RAISING:
		if (!alarm_ctl_done(a, &ok))
			break;
		if (ok) {
			a->raised_ns = clock_now_ns();
			/* rabbitmqctl takes a second or two (an Erlang VM starts): the alarm lasts as long as asked */
			if (a->raised_ns > a->on_ns)
				a->off_ns += a->raised_ns - a->on_ns;
			events_note_alarm(a->events, true, 0, a->raised_ns);
			log_line("run: faults.memory_alarm: the broker's memory alarm is on (%.1f s late)",
				 (double)(a->raised_ns - a->on_ns) / NS_PER_S);
		}
		a->state = ALARM_ON;
		break;
	case ALARM_ON:
		if (now >= a->off_ns)
			a->state = alarm_set(a, "0.4") ? ALARM_CLEARING : ALARM_DONE;
		break;
	case ALARM_CLEARING:
		if (!alarm_ctl_done(a, &ok))
			break;
		a->cleared_ns = clock_now_ns();
		events_note_alarm(a->events, false, a->grace_ns, a->cleared_ns);
		log_line("run: faults.memory_alarm: the alarm is off (%.1f s late)",
			 (double)(a->cleared_ns - a->off_ns) / NS_PER_S);
		a->state = ALARM_DONE;
		break;
	case ALARM_DONE:
		break;
	}
}

bool alarm_pending(const struct alarm *a)
{
	return a->state != ALARM_DONE;
}

void alarm_finish(struct alarm *a)
{
	uint64_t deadline = clock_now_ns() + 30 * NS_PER_S;

	if (a->state == ALARM_IDLE)
		a->state = ALARM_DONE;
	if (a->state == ALARM_ON)
		a->off_ns = 0;
	while (a->state != ALARM_DONE && clock_now_ns() < deadline) {
		alarm_step(a, clock_now_ns());
		clock_sleep_ns(50 * NS_PER_MS);
	}
	if (a->pid) {
		proc_kill(a->pid, "");
		a->pid = 0;
	}
}
