/* factory.h — how a run opens its dedup stores from the scenario's [dedup] keys: one per consumer, or one for all. */
#ifndef DUPSIM_DEDUP_FACTORY_H
#define DUPSIM_DEDUP_FACTORY_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/scenario.h"
#include "dedup/dedup.h"

/* Embedded in the run; filled by dedup_factory_init, read by every consumer thread. */
struct dedup_factory {
	enum scenario_store kind;
	bool shared;		/* scope = shared: every consumer sees the same keys */
	uint64_t ttl_ns, capacity;
	size_t expected;	/* sizing hint: the run's messages */
	bool sync;		/* tokyocabinet: tchdbsync after each insert */
	uint64_t timeout_ns;	/* redis: connect and command timeout (dedup.timeout) */
	char redis_url[256];
	char pg_url[256];	/* postgres: the inbox's server */
	char prefix[128];	/* redis keys of this run; postgres: the inbox's owner column */
	char tc_dir[PATH_MAX];	/* tokyocabinet files of this run (removed by dedup_factory_release) */
};

/*
 * Fills f from sc. redis_url: the server for store = redis (a private
 * node's URL, or dedup.url) or for store = postgres (a private node's URL),
 * else ignored. For tokyocabinet it creates the
 * folder for the run's files under $TMPDIR. 0, or -1 with one line in err.
 */
int dedup_factory_init(struct dedup_factory *f, const struct scenario *sc, const char *redis_url, char *err,
		       size_t errlen);
/* Removes what init created; safe on a zeroed f. */
void dedup_factory_release(struct dedup_factory *f);

/*
 * A new store: consumer's own (local scope), or a handle on the shared keys
 * (its own redis or postgres connection, the shared file). The caller frees it with
 * dedup_free. NULL with one line in err; NULL without err for store = none.
 */
struct dedup_store *dedup_factory_open(const struct dedup_factory *f, unsigned consumer, char *err, size_t errlen);

/* True when one store object can serve every consumer: shared scope on a
 * thread-safe backend (memory, tokyocabinet). */
bool dedup_factory_one_for_all(const struct dedup_factory *f);

#endif
