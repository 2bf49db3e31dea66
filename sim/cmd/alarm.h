/* alarm.h — faults.memory_alarm: the private node's memory alarm on for a window of the run, via rabbitmqctl. */
#ifndef DUPSIM_ALARM_H
#define DUPSIM_ALARM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "nodes/node.h"
#include "truth/events.h"

enum alarm_state { ALARM_IDLE, ALARM_RAISING, ALARM_ON, ALARM_CLEARING, ALARM_DONE };

struct alarm {
	struct node *broker;	   /* the run's private node; NULL: no alarm */
	struct events *events;	   /* told when the alarm is on and off */
	uint64_t on_ns, off_ns;	   /* when to raise and clear it (clock_now_ns) */
	uint64_t grace_ns;	   /* a blocked publisher's timeout: its session still ends by the alarm */
	enum alarm_state state;
	pid_t pid;		   /* the rabbitmqctl under way */
	uint64_t raised_ns, cleared_ns; /* when it took effect, when it was gone; 0 not (yet) */
	bool failed;		   /* a rabbitmqctl failed: said in the log, the window is then short or none */
};

/*
 * The window from..until (from the run's start start_ns; until 0: no alarm,
 * alarm_step does nothing). Setting vm_memory_high_watermark to 0 raises the
 * alarm at once: every publishing connection gets connection.blocked and is
 * no longer read; 0.4 (RabbitMQ's default) clears it. rabbitmqctl takes a
 * second or two, so the alarm goes on that late, and lasts until - from
 * from then on.
 */
void alarm_init(struct alarm *a, struct node *broker, struct events *events, uint64_t start_ns, uint64_t from_ns,
		uint64_t until_ns, uint64_t grace_ns);
/* Called about every 50 ms from the thread that started the broker; never blocks. */
void alarm_step(struct alarm *a, uint64_t now);
/* The window is not over yet (the run must not end while the broker refuses publishes). */
bool alarm_pending(const struct alarm *a);
/* At the run's end: an alarm still on is cleared, waiting for rabbitmqctl (a node left alarmed stops nothing,
 * but a kept node must not stay so). */
void alarm_finish(struct alarm *a);

#endif
