/* bench_tc.c — `make bench`: Tokyo Cabinet dedup store throughput: inserts with and without sync, lookups. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dedup/dedup.h"
#include "core/clock.h"
#include "core/files.h"

#define KEYS 200000	 /* inserts without sync, then lookups of them */
#define SYNC_KEYS 2000	 /* inserts with an fsync each */
#define TTL_NS NS_PER_S /* the ttl path: get + put under the store's lock */

static char dir[64];

static void die(const char *what, const char *err)
{
	fprintf(stderr, "bench_tc: %s: %s\n", what, err);
	if (dir[0])
		files_rm_rf(dir);
	exit(1);
}

static struct dedup_store *open_store(const char *name, bool sync, uint64_t ttl_ns)
{
	char path[128], err[512];
	struct dedup_store *s;

	snprintf(path, sizeof(path), "%s/%s.tch", dir, name);
	s = dedup_tc_new(path, sync, ttl_ns, err, sizeof(err));
	if (!s)
		die("open", err);
	return s;
}

/* Sequential ids scattered a little, as several publishers' message ids are. */
static uint64_t key_of(uint64_t i)
{
	return (i << 8) | (i % 251);
}

/* op 0: check_and_put of new keys (each must be absent); 1: lookup (each must be present). */
static double ops_per_s(struct dedup_store *s, int op, uint64_t n)
{
	uint64_t t0 = clock_now_ns(), bad = 0, dt;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t now = clock_now_ns();

		if (op == 0)
			bad += dedup_check_and_put(s, key_of(i), now) != 0;
		else
			bad += dedup_lookup(s, key_of(i), now) != 1;
	}
	dt = clock_now_ns() - t0;
	if (bad)
		die(op == 0 ? "check_and_put" : "lookup", "wrong answers");
	return (double)n * NS_PER_S / (double)(dt ? dt : 1);
}

static void row(const char *what, uint64_t n, double rate)
{
	printf("%-38s %8llu %12.0f %10.2f\n", what, (unsigned long long)n, rate, 1e6 / rate);
}

int main(void)
{
	struct dedup_store *s;
	double put, look;

	snprintf(dir, sizeof(dir), "/tmp/dupsim-bench-tc-XXXXXX");
	if (!mkdtemp(dir)) {
		dir[0] = 0;
		die("mkdtemp", "cannot create a temporary folder");
	}
	printf("\n== bench_tc: Tokyo Cabinet dedup store, one thread, files in %s\n", dir);
	printf("%-38s %8s %12s %10s\n", "operation", "keys", "ops/s", "us/op");

	s = open_store("plain", false, 0);
	put = ops_per_s(s, 0, KEYS);
	look = ops_per_s(s, 1, KEYS);
	row("check_and_put, new keys, no sync", KEYS, put);
	row("lookup, present keys", KEYS, look);
	dedup_free(s);

	s = open_store("ttl", false, TTL_NS);
	put = ops_per_s(s, 0, KEYS);
	look = ops_per_s(s, 1, KEYS);
	row("check_and_put, new keys, ttl, no sync", KEYS, put);
	row("lookup, present keys, ttl", KEYS, look);
	dedup_free(s);

	s = open_store("sync", true, 0);
	row("check_and_put, new keys, sync", SYNC_KEYS, ops_per_s(s, 0, SYNC_KEYS));
	dedup_free(s);

	s = open_store("plain", false, 0); /* reopen: the keys are still there */
	look = ops_per_s(s, 1, KEYS);
	row("lookup after reopen", KEYS, look);
	dedup_free(s);

	if (files_rm_rf(dir) < 0)
		fprintf(stderr, "bench_tc: could not remove %s\n", dir);
	return 0;
}
