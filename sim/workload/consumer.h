/* consumer.h — consumer threads: manual acks, prefetch, multiple-acks, the dedup decision, reconnect after a cut. */
#ifndef DUPSIM_CONSUMER_H
#define DUPSIM_CONSUMER_H

#include <stdbool.h>

#include "dedup/dedup.h"
#include "workload/workload.h"

/* One consumer thread's store and outcome. */
struct consumer {
	struct workload *w;
	unsigned id;
	struct dedup_store *store; /* the shared one or its own; NULL for store none */
	bool own_store;		   /* store belongs to this consumer (freed, or reopened after a crash) */
	char error[256];
};

/* Thread body; arg is a struct consumer. Consumes until w->stop. */
void *consumer_main(void *arg);

#endif
