/* bench_redis.c — `make bench`: the redis store's checks/s, one at a time and pipelined, beside hiredis and redis-benchmark. */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nodes/node.h"
#include "nodes/redis.h"
#include "dedup/dedup.h"
#include "core/clock.h"

#define KEYS 50000
#define ROUNDS 3 /* every figure is the median of ROUNDS, measured interleaved: a busy machine hits all alike */
#define DEPTH 64 /* pipeline depth: flush every DEPTH deferred puts, redis-benchmark -P DEPTH */
#define TTL_NS (60 * NS_PER_S) /* a ttl, so every SET carries PX as in a run */

static struct node *rn;
static const char *rb_bin;
static struct dedup_store *hits; /* holds the keys the "hits" figures check again */

static void die(const char *what, const char *err)
{
	fprintf(stderr, "bench_redis: %s: %s\n", what, err);
	node_free(rn);
	exit(1);
}

static struct dedup_store *store_open(const char *prefix, int round)
{
	char err[256], name[64];
	struct dedup_store *s;

	snprintf(name, sizeof(name), "bench:%s:%d", prefix, round);
	s = dedup_redis_new(node_url(rn), name, TTL_NS, err, sizeof(err));
	if (!s)
		die("dedup_redis_new", err);
	return s;
}

/* Keys spread as message ids of many publishers are. */
static uint64_t key_of(uint64_t i)
{
	return (i + 1) * 0x9e3779b97f4a7c15ull;
}

static double per_s(uint64_t t0)
{
	return (double)KEYS * 1e9 / (double)(clock_now_ns() - t0);
}

static void check(uint64_t bad, const char *what)
{
	if (bad)
		die(what, "some calls failed or answered wrongly");
}

static double store_new_keys(int round)
{
	uint64_t t0, bad = 0;
	double r;

	dedup_free(hits);
	hits = store_open("sync", round);
	t0 = clock_now_ns();
	for (uint64_t i = 0; i < KEYS; i++)
		bad += dedup_check_and_put(hits, key_of(i), 0) != 0;
	r = per_s(t0);
	check(bad, "check_and_put");
	return r;
}

static double store_hits(int round)
{
	uint64_t t0 = clock_now_ns(), bad = 0;
	double r;

	(void)round;
	for (uint64_t i = 0; i < KEYS; i++)
		bad += dedup_check_and_put(hits, key_of(i), 0) != 1;
	r = per_s(t0);
	check(bad, "check_and_put");
	return r;
}

static double store_lookups(int round)
{
	uint64_t t0 = clock_now_ns(), bad = 0;
	double r;

	(void)round;
	for (uint64_t i = 0; i < KEYS; i++)
		bad += dedup_lookup(hits, key_of(i), 0) != 1;
	r = per_s(t0);
	check(bad, "lookup");
	return r;
}

static double store_deferred(int round)
{
	struct dedup_store *s = store_open("deferred", round);
	uint64_t t0 = clock_now_ns(), bad = 0;
	double r;

	for (uint64_t i = 0; i < KEYS; i++) {
		bad += dedup_put_deferred(s, key_of(i), 0) != 0;
		if ((i + 1) % DEPTH == 0)
			bad += dedup_flush(s) != 0;
	}
	bad += dedup_flush(s) != 0;
	r = per_s(t0);
	check(bad, "put_deferred");
	dedup_free(s);
	return r;
}

/* The same SET NX PX straight through hiredis: what the store's own code costs is the difference. */
static double hiredis_sets(int round, int depth)
{
	struct timeval tv = { 2, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", node_port(rn), tv);
	uint64_t t0, bad = 0;
	double r;
	void *reply;

	if (!c || c->err)
		die("hiredis connect", c ? c->errstr : "out of memory");
	t0 = clock_now_ns();
	for (uint64_t i = 0; i < KEYS; i += (uint64_t)depth) {
		uint64_t n = KEYS - i < (uint64_t)depth ? KEYS - i : (uint64_t)depth;

		for (uint64_t j = 0; j < n; j++)
			bad += redisAppendCommand(c, "SET bench:raw%d:%d:%" PRIu64 " 1 NX PX 60000", depth, round,
						  key_of(i + j)) != REDIS_OK;
		for (uint64_t j = 0; j < n; j++) {
			if (redisGetReply(c, &reply) != REDIS_OK)
				die("hiredis", c->errstr);
			bad += ((redisReply *)reply)->type != REDIS_REPLY_STATUS;
			freeReplyObject(reply);
		}
	}
	r = per_s(t0);
	redisFree(c);
	check(bad, "hiredis SET");
	return r;
}

static double hiredis_one(int round)
{
	return hiredis_sets(round, 1);
}

static double hiredis_pipelined(int round)
{
	return hiredis_sets(round, DEPTH);
}

/* redis-benchmark -t set with extra arguments; its requests per second. */
static double redis_benchmark(const char *extra)
{
	char cmd[512], line[512];
	double rps = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "'%s' -h 127.0.0.1 -p %u -t set -n %d --csv %s 2>&1", rb_bin, node_port(rn),
		 KEYS, extra);
	p = popen(cmd, "r");
	if (!p)
		die("popen", cmd);
	/* --csv: a header, then "SET","<rps>",... */
	while (fgets(line, sizeof(line), p))
		if (strncmp(line, "\"SET\",\"", 7) == 0)
			rps = strtod(line + 7, NULL);
	if (pclose(p) != 0 || rps <= 0)
		die("redis-benchmark failed", cmd);
	return rps;
}

static double rb_c1(int round)
{
	(void)round;
	return redis_benchmark("-c 1");
}

static double rb_c1_p64(int round)
{
	(void)round;
	return redis_benchmark("-c 1 -P 64");
}

static double rb_c50(int round)
{
	(void)round;
	return redis_benchmark("");
}

static double rb_c50_p64(int round)
{
	(void)round;
	return redis_benchmark("-P 64");
}

enum { RB_C1, RB_C1_P64, RB_C50, RB_C50_P64, RB_NONE };

static const struct fig {
	const char *what;
	double (*run)(int round);
	int vs1, vs50; /* the redis-benchmark figures at the same pipeline depth */
} figs[] = {
	{ "store check_and_put, one at a time (new keys)", store_new_keys, RB_C1, RB_C50 },
	{ "store check_and_put, one at a time (hits)", store_hits, RB_C1, RB_C50 },
	{ "store lookup, one at a time", store_lookups, RB_C1, RB_C50 },
	{ "store put_deferred, flush every 64", store_deferred, RB_C1_P64, RB_C50_P64 },
	{ "hiredis SET NX PX, one at a time (no store)", hiredis_one, RB_C1, RB_C50 },
	{ "hiredis SET NX PX, pipelined 64 (no store)", hiredis_pipelined, RB_C1_P64, RB_C50_P64 },
	{ "redis-benchmark -t set -c 1", rb_c1, RB_C1, RB_C50 },
	{ "redis-benchmark -t set -c 1 -P 64", rb_c1_p64, RB_C1_P64, RB_C50_P64 },
	{ "redis-benchmark -t set (-c 50)", rb_c50, RB_C1, RB_C50 },
	{ "redis-benchmark -t set -P 64 (-c 50)", rb_c50_p64, RB_C1_P64, RB_C50_P64 },
};
#define NFIGS ((int)(sizeof(figs) / sizeof(figs[0])))
#define RB_FIRST 6 /* figs[RB_FIRST + RB_*] are the redis-benchmark rows */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(void)
{
	struct node_opts o = { .quiet = true };
	double got[NFIGS][ROUNDS], med[NFIGS];
	bool have_rb;
	char err[1024];
	int n = NFIGS;

	signal(SIGPIPE, SIG_IGN);
	rb_bin = getenv("DUPSIM_REDIS_BENCHMARK");
	if (!rb_bin || !*rb_bin)
		rb_bin = "/usr/bin/redis-benchmark";
	have_rb = access(rb_bin, X_OK) == 0;
	if (!have_rb) {
		printf("bench_redis: %s not found: no redis-benchmark figures (install redis-tools)\n", rb_bin);
		n = RB_FIRST;
	}
	if (node_new(&rn, &redis_ops, &o, err, sizeof(err)) < 0)
		die("redis-server", err);
	printf("== bench_redis: one redis-server on 127.0.0.1:%u; %d keys per figure, median of %d interleaved "
	       "rounds; one connection unless said; SET NX PX 60000 ==\n",
	       node_port(rn), KEYS, ROUNDS);
	for (int r = 0; r < ROUNDS; r++)
		for (int f = 0; f < n; f++)
			got[f][r] = figs[f].run(r);
	dedup_free(hits);
	for (int f = 0; f < n; f++) {
		qsort(got[f], ROUNDS, sizeof(double), cmp_double);
		med[f] = got[f][ROUNDS / 2];
	}

	printf("%-46s %10s %6s %11s %11s\n", "", "ops/s", "depth", "x rb -c 1", "x rb -c 50");
	for (int f = 0; f < n; f++) {
		printf("%-46s %10.0f %6d", figs[f].what, med[f], figs[f].vs1 == RB_C1 ? 1 : DEPTH);
		if (have_rb)
			printf(" %11.2f %11.2f", med[f] / med[RB_FIRST + figs[f].vs1],
			       med[f] / med[RB_FIRST + figs[f].vs50]);
		printf("\n");
	}
	if (have_rb)
		printf("(x rb: against redis-benchmark SET at the same pipeline depth, with one client (-c 1, like the "
		       "store) and with its default 50)\n");
	node_free(rn);
	return 0;
}
