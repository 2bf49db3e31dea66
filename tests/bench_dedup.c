/* bench_dedup.c — `make bench`: the memory store's ns per check-and-put and bytes per key, at 1M and 10M keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dedup/dedup.h"
#include "core/clock.h"

/* Resident memory of this process in bytes. */
static uint64_t rss_bytes(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
			resident = 0;
		fclose(f);
	}
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

struct shape {
	const char *name;
	uint64_t ttl_ns;
	int capacity; /* capacity = keys: nothing evicted while filling */
};

/*
 * Inserts n new keys (check_and_put misses), then checks them all again
 * (hits), on a store sized by the hint. Keys are spread (a multiplicative
 * hash of the index) as message ids of many publishers are.
 */
static void bench(const struct shape *sh, uint64_t n)
{
	uint64_t rss0 = rss_bytes(), t0, t1, t2, rss1, dups = 0;
	struct dedup_store *s = dedup_mem_new(sh->ttl_ns, sh->capacity ? n : 0, n);

	if (!s) {
		fprintf(stderr, "bench_dedup: out of memory\n");
		exit(1);
	}
	t0 = clock_now_ns();
	for (uint64_t i = 0; i < n; i++)
		dups += dedup_check_and_put(s, (i + 1) * 0x9e3779b97f4a7c15ull, t0 + i) == 1;
	t1 = clock_now_ns();
	rss1 = rss_bytes();
	for (uint64_t i = 0; i < n; i++)
		dups += dedup_check_and_put(s, (i + 1) * 0x9e3779b97f4a7c15ull, t0 + n + i) == 1;
	t2 = clock_now_ns();
	printf("%-18s %5lluM keys  insert %6.1f ns/op   hit %6.1f ns/op   %5.1f bytes/key%s\n", sh->name,
	       (unsigned long long)(n / 1000000), (double)(t1 - t0) / (double)n, (double)(t2 - t1) / (double)n,
	       (double)(rss1 - rss0) / (double)n, dups == n ? "" : "   (WRONG: not every re-check hit)");
	dedup_free(s);
}

int main(void)
{
	static const struct shape shapes[] = {
		{ "unbounded", 0, 0 },
		{ "ttl 1h", 3600 * NS_PER_S, 0 },
		{ "capacity (LRU)", 0, 1 },
		{ "ttl + capacity", 3600 * NS_PER_S, 1 },
	};

	printf("\n== bench_dedup: memory store, one thread, check_and_put (targets: <= 100 ns, <= 48 bytes/key) ==\n");
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		bench(&shapes[i], 1000000);
		bench(&shapes[i], 10000000);
	}
	return 0;
}
