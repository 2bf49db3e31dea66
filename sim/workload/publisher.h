/* publisher.h — publisher threads: tx or confirm mode, republish on timeout or cut with x-republish-count + 1. */
#ifndef DUPSIM_PUBLISHER_H
#define DUPSIM_PUBLISHER_H

#include <stdbool.h>
#include <stdint.h>

#include "workload/workload.h"

/* One publisher thread's assignment and outcome. */
struct publisher {
	struct workload *w;
	unsigned id;
	uint64_t first, end; /* message indices [first, end) */
	char error[256];     /* last connection problem, for the report */
	bool gave_up;	     /* no connection for run.drain_timeout: the publisher stopped */
};

/* Thread body; arg is a struct publisher. Publishes [first, end) until each
 * is confirmed (or committed), w->stop_publishing, or it gives up. */
void *publisher_main(void *arg);

#endif
