/* factory.c — how a run opens its dedup stores from the scenario's [dedup] keys: one per consumer, or one for all. */
#include "dedup/factory.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/files.h"
#include "core/log.h"

int dedup_factory_init(struct dedup_factory *f, const struct scenario *sc, const char *redis_url, char *err,
		       size_t errlen)
{
	const char *tmp = getenv("TMPDIR");

	*f = (struct dedup_factory){
		.kind = sc->dedup.store,
		.shared = sc->dedup.scope == SCENARIO_SCOPE_SHARED,
		.ttl_ns = sc->dedup.ttl_ns,
		.capacity = sc->dedup.capacity,
		.expected = (size_t)sc->run.messages,
		.sync = sc->dedup.sync,
		.timeout_ns = sc->store.timeout_ns,
	};
	/* unique per run, so that runs sharing one redis never see each other's keys */
	snprintf(f->prefix, sizeof(f->prefix), "dupsim:%s:%d:%llu", sc->run.name, (int)getpid(),
		 (unsigned long long)(clock_wall_ns() / NS_PER_MS));
	if (f->kind == SCENARIO_STORE_REDIS)
		snprintf(f->redis_url, sizeof(f->redis_url), "%s", redis_url ? redis_url : "");
	if (f->kind == SCENARIO_STORE_POSTGRES)
		snprintf(f->pg_url, sizeof(f->pg_url), "%s", redis_url ? redis_url : "");
	if (f->kind == SCENARIO_STORE_TOKYOCABINET) {
		snprintf(f->tc_dir, sizeof(f->tc_dir), "%s/dupsim-tc-XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(f->tc_dir)) {
			int e = errno;

			f->tc_dir[0] = '\0';
			return log_seterr(err, errlen, "cannot create a folder for the tokyocabinet files: %s",
					  strerror(e));
		}
	}
	return 0;
}

void dedup_factory_release(struct dedup_factory *f)
{
	if (f->tc_dir[0])
		files_rm_rf(f->tc_dir);
	f->tc_dir[0] = '\0';
}

struct dedup_store *dedup_factory_open(const struct dedup_factory *f, unsigned consumer, char *err, size_t errlen)
{
	char name[PATH_MAX + 64];
	struct dedup_store *s = NULL;

	switch (f->kind) {
	case SCENARIO_STORE_MEMORY:
		s = dedup_mem_new(f->ttl_ns, f->capacity, f->expected);
		if (!s)
			log_seterr(err, errlen, "out of memory for the dedup store");
		break;
	case SCENARIO_STORE_REDIS:
		if (f->shared)
			snprintf(name, sizeof(name), "%s:shared", f->prefix);
		else
			snprintf(name, sizeof(name), "%s:c%u", f->prefix, consumer);
		s = dedup_redis_new_timeout(f->redis_url, name, f->ttl_ns, f->timeout_ns, err, errlen);
		break;
	case SCENARIO_STORE_POSTGRES: /* the owner column plays the prefix's part */
		if (f->shared)
			snprintf(name, sizeof(name), "%s:shared", f->prefix);
		else
			snprintf(name, sizeof(name), "%s:c%u", f->prefix, consumer);
		s = dedup_pg_new(f->pg_url, name, f->ttl_ns, err, errlen);
		break;
	case SCENARIO_STORE_TOKYOCABINET:
		if (f->shared)
			snprintf(name, sizeof(name), "%s/shared.tch", f->tc_dir);
		else
			snprintf(name, sizeof(name), "%s/consumer-%u.tch", f->tc_dir, consumer);
		s = dedup_tc_new(name, f->sync, f->ttl_ns, err, errlen);
		break;
	default:
		break;
	}
	return s;
}

bool dedup_factory_one_for_all(const struct dedup_factory *f)
{
	return f->shared && (f->kind == SCENARIO_STORE_MEMORY || f->kind == SCENARIO_STORE_TOKYOCABINET);
}
