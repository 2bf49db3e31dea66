/* check_dedup.c — every dedup store through one set of tests: semantics, ttl, LRU, growth, a reference model, threads. */
#include <fcntl.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nodes/node.h"
#include "nodes/postgres.h"
#include "nodes/redis.h"
#include "dedup/dedup.h"
#include "dedup/policy.h"
#include "tests.h"
#include "core/clock.h"
#include "core/files.h"
#include "core/net.h"
#include "core/rng.h"

/* The redis store on the test run's redis-server: a fresh prefix per store, so tests never see each other's keys. */
static char redis_prefix[64];

static struct dedup_store *redis_open(const char *prefix, uint64_t ttl_ns)
{
	char err[256] = "";
	struct dedup_store *s = dedup_redis_new(test_redis_url(), prefix, ttl_ns, err, sizeof(err));

	ck_assert_msg(s != NULL, "redis store: %s", err);
	return s;
}

/* redis has no key-count bound: capacity is ignored (backends[].capacity says so). */
static struct dedup_store *redis_make(uint64_t ttl_ns, uint64_t capacity, size_t expected)
{
	static unsigned made;

	(void)capacity;
	(void)expected;
	snprintf(redis_prefix, sizeof(redis_prefix), "t:%d:%u", (int)getpid(), made++);
	return redis_open(redis_prefix, ttl_ns);
}

/* Another connection sharing the keys of the store redis_make made last. */
static struct dedup_store *redis_peer(uint64_t ttl_ns)
{
	return redis_open(redis_prefix, ttl_ns);
}

/* A Tokyo Cabinet store on a fresh file, unlinked at once: the open handle
 * keeps the file alive until destroy, and nothing is left behind. */
static struct dedup_store *tc_make(uint64_t ttl_ns, uint64_t capacity, size_t expected)
{
	char path[] = "/tmp/dupsim-check-tc-XXXXXX";
	char err[512] = "";
	struct dedup_store *s;
	int fd = mkstemp(path);

	(void)capacity;
	(void)expected;
	ck_assert_msg(fd >= 0, "mkstemp failed");
	close(fd);
	s = dedup_tc_new(path, false, ttl_ns, err, sizeof(err));
	unlink(path);
	ck_assert_msg(s != NULL, "tokyocabinet store: %s", err);
	return s;
}

/* The stores under test; each test runs once per row (tcase_add_loop_test). */
struct backend {
	const char *name;
	struct dedup_store *(*make)(uint64_t ttl_ns, uint64_t capacity, size_t expected);
	bool exact_size; /* size() drops expired keys as soon as any later operation runs */
	/* Expiry follows the now_ns arguments. Without it (redis: wall time) the
	 * simulated-time checks are skipped; a backend's own test covers its clock. */
	bool simulated_time;
	bool capacity; /* honours capacity (LRU); without it the tests check that nothing is evicted */
	/* Another object on the same keys, one per thread; NULL: threads share one object. */
	struct dedup_store *(*peer)(uint64_t ttl_ns);
	uint64_t bulk; /* keys in the bulk tests: fewer for a store one round trip away */
};

static const struct backend backends[] = {
	{ .name = "memory", .make = dedup_mem_new, .exact_size = true, .simulated_time = true, .capacity = true,
	  .bulk = 1000000 },
	{ .name = "redis", .make = redis_make, .peer = redis_peer, .bulk = 20000 },
	{ .name = "tokyocabinet", .make = tc_make, .simulated_time = true, .bulk = 1000000 },
};
#define NBACKENDS ((int)(sizeof(backends) / sizeof(backends[0])))

static struct dedup_store *make(int b, uint64_t ttl_ns, uint64_t capacity, size_t expected)
{
	struct dedup_store *s = backends[b].make(ttl_ns, capacity, expected);

	ck_assert_msg(s != NULL, "%s store could not be created", backends[b].name);
	ck_assert_str_eq(s->ops->name, backends[b].name);
	return s;
}

static size_t size_of(struct dedup_store *s)
{
	return s->ops->size(s);
}

START_TEST(test_check_and_put)
{
	struct dedup_store *s = make(_i, 0, 0, 0);

	ck_assert_int_eq(dedup_check_and_put(s, 1, 10), 0);
	ck_assert_int_eq(dedup_check_and_put(s, 1, 11), 1);
	ck_assert_int_eq(dedup_check_and_put(s, 0, 12), 0); /* 0 is a key like any other */
	ck_assert_int_eq(dedup_check_and_put(s, 0, 13), 1);
	ck_assert_int_eq(dedup_check_and_put(s, UINT64_MAX, 14), 0);
	ck_assert_int_eq(dedup_check_and_put(s, UINT64_MAX, 15), 1);
	ck_assert_uint_eq(size_of(s), 3);
	ck_assert_int_eq(dedup_lookup(s, 2, 16), 0);
	ck_assert_int_eq(dedup_lookup(s, 1, 16), 1);
	ck_assert_int_eq(dedup_lookup(s, 0, 16), 1);
	ck_assert_uint_eq(size_of(s), 3);
	dedup_free(s);
	dedup_free(NULL);
}
END_TEST

START_TEST(test_lookup_put)
{
	struct dedup_store *s = make(_i, 0, 0, 0);

	ck_assert_int_eq(dedup_lookup(s, 5, 1), 0);
	ck_assert_int_eq(dedup_lookup(s, 5, 1), 0); /* a lookup never inserts */
	ck_assert_uint_eq(size_of(s), 0);
	ck_assert_int_eq(dedup_put(s, 5, 2), 0);
	ck_assert_int_eq(dedup_lookup(s, 5, 3), 1);
	ck_assert_int_eq(dedup_put(s, 5, 4), 0);
	ck_assert_uint_eq(size_of(s), 1);
	ck_assert_int_eq(dedup_check_and_put(s, 5, 5), 1);
	ck_assert_int_eq(dedup_put(s, 0, 6), 0);
	ck_assert_int_eq(dedup_lookup(s, 0, 7), 1);
	ck_assert_uint_eq(size_of(s), 2);
	dedup_free(s);
}
END_TEST

START_TEST(test_expiry)
{
	struct dedup_store *s = make(_i, 0, 0, 0); /* ttl 0: forever */

	ck_assert_int_eq(dedup_put(s, 1, 0), 0);
	ck_assert_int_eq(dedup_lookup(s, 1, UINT64_MAX), 1);
	dedup_free(s);
	if (!backends[_i].simulated_time)
		return; /* skipped: the clock below is simulated; test_redis_expiry uses wall time */

	s = make(_i, 100, 0, 0);
	/* present while now − inserted <= ttl, absent after */
	ck_assert_int_eq(dedup_put(s, 7, 1000), 0);
	ck_assert_int_eq(dedup_lookup(s, 7, 1100), 1);
	ck_assert_int_eq(dedup_lookup(s, 7, 1101), 0);
	/* a check_and_put hit does not extend the ttl; a miss re-inserts */
	ck_assert_int_eq(dedup_check_and_put(s, 8, 2000), 0);
	ck_assert_int_eq(dedup_check_and_put(s, 8, 2100), 1);
	ck_assert_int_eq(dedup_check_and_put(s, 8, 2101), 0);
	ck_assert_int_eq(dedup_check_and_put(s, 8, 2201), 1);
	ck_assert_int_eq(dedup_check_and_put(s, 8, 2202), 0);
	/* a put does */
	ck_assert_int_eq(dedup_put(s, 9, 3000), 0);
	ck_assert_int_eq(dedup_put(s, 9, 3090), 0);
	ck_assert_int_eq(dedup_lookup(s, 9, 3150), 1);
	ck_assert_int_eq(dedup_lookup(s, 9, 3191), 0);
	/* key 0 expires too */
	ck_assert_int_eq(dedup_check_and_put(s, 0, 4000), 0);
	ck_assert_int_eq(dedup_check_and_put(s, 0, 4100), 1);
	ck_assert_int_eq(dedup_check_and_put(s, 0, 4101), 0);
	/* a clock that steps back (threads read it before taking the lock) keeps the key */
	ck_assert_int_eq(dedup_lookup(s, 0, 4050), 1);
	/* expired keys are reclaimed by whatever operation comes next */
	for (uint64_t i = 0; i < 1000; i++)
		ck_assert_int_eq(dedup_put(s, 100 + i, 10000 + i / 10), 0);
	ck_assert_int_eq(dedup_lookup(s, 1, 10150), 0);
	if (backends[_i].exact_size)
		ck_assert_uint_eq(size_of(s), 500); /* inserted at 10050 .. 10099 */
	ck_assert_int_eq(dedup_lookup(s, 100 + 499, 10150), 0);
	ck_assert_int_eq(dedup_lookup(s, 100 + 500, 10150), 1);
	ck_assert_int_eq(dedup_lookup(s, 1, 20000), 0);
	if (backends[_i].exact_size)
		ck_assert_uint_eq(size_of(s), 0);
	dedup_free(s);
}
END_TEST

START_TEST(test_lru)
{
	struct dedup_store *s = make(_i, 0, 3, 0);

	if (!backends[_i].capacity) {
		/* skipped: no capacity bound; what can be checked is that nothing is evicted */
		for (uint64_t k = 1; k <= 6; k++)
			ck_assert_int_eq(dedup_put(s, k, k), 0);
		for (uint64_t k = 1; k <= 6; k++)
			ck_assert_int_eq(dedup_lookup(s, k, 7), 1);
		ck_assert_uint_eq(size_of(s), 6);
		dedup_free(s);
		return;
	}
	ck_assert_int_eq(dedup_put(s, 1, 1), 0);
	ck_assert_int_eq(dedup_put(s, 2, 2), 0);
	ck_assert_int_eq(dedup_put(s, 3, 3), 0);
	ck_assert_int_eq(dedup_lookup(s, 1, 4), 1);	    /* recency: 2 3 1 */
	ck_assert_int_eq(dedup_put(s, 4, 5), 0);	    /* evicts 2: 3 1 4 */
	ck_assert_uint_eq(size_of(s), 3);
	ck_assert_int_eq(dedup_lookup(s, 2, 6), 0);
	ck_assert_int_eq(dedup_check_and_put(s, 3, 7), 1); /* a hit is a use: 1 4 3 */
	ck_assert_int_eq(dedup_check_and_put(s, 5, 8), 0); /* evicts 1: 4 3 5 */
	ck_assert_int_eq(dedup_put(s, 4, 9), 0);	    /* refresh: 3 5 4 */
	ck_assert_int_eq(dedup_put(s, 6, 10), 0);	    /* evicts 3: 5 4 6 */
	ck_assert_int_eq(dedup_lookup(s, 1, 11), 0);
	ck_assert_int_eq(dedup_lookup(s, 2, 11), 0);
	ck_assert_int_eq(dedup_lookup(s, 3, 11), 0);
	ck_assert_int_eq(dedup_lookup(s, 5, 11), 1);
	ck_assert_int_eq(dedup_lookup(s, 4, 11), 1);
	ck_assert_int_eq(dedup_lookup(s, 6, 11), 1);
	ck_assert_uint_eq(size_of(s), 3);
	dedup_free(s);

	s = make(_i, 0, 2, 0); /* key 0 takes part in the order */
	ck_assert_int_eq(dedup_put(s, 0, 1), 0);
	ck_assert_int_eq(dedup_put(s, 1, 2), 0);
	ck_assert_int_eq(dedup_lookup(s, 0, 3), 1);
	ck_assert_int_eq(dedup_put(s, 2, 4), 0);
	ck_assert_int_eq(dedup_lookup(s, 1, 5), 0);
	ck_assert_int_eq(dedup_lookup(s, 0, 5), 1);
	ck_assert_int_eq(dedup_put(s, 3, 6), 0);
	ck_assert_int_eq(dedup_lookup(s, 2, 7), 0);
	ck_assert_int_eq(dedup_lookup(s, 0, 7), 1);
	dedup_free(s);

	s = make(_i, 100, 2, 0); /* both: the ttl still counts from the insert */
	ck_assert_int_eq(dedup_put(s, 1, 0), 0);
	ck_assert_int_eq(dedup_put(s, 2, 50), 0);
	ck_assert_int_eq(dedup_lookup(s, 1, 60), 1); /* used recently, but inserted at 0 */
	ck_assert_int_eq(dedup_lookup(s, 1, 101), 0);
	ck_assert_int_eq(dedup_lookup(s, 2, 101), 1);
	if (backends[_i].exact_size)
		ck_assert_uint_eq(size_of(s), 1);
	dedup_free(s);
}
END_TEST

/* Bulk loops count failures instead of asserting: every ck_assert is a write to the runner. */
START_TEST(test_growth)
{
	const uint64_t n = backends[_i].bulk, golden = 0x9e3779b97f4a7c15ull;
	struct dedup_store *s = make(_i, 0, 0, 0);
	uint64_t bad = 0;

	for (uint64_t i = 0; i < n; i++)
		bad += dedup_check_and_put(s, i * golden, i) != 0;
	ck_assert_uint_eq(bad, 0);
	ck_assert_uint_eq(size_of(s), n);
	for (uint64_t i = 0; i < n; i++)
		bad += dedup_check_and_put(s, i * golden, i) != 1;
	ck_assert_uint_eq(bad, 0);
	for (uint64_t i = 0; i < n; i++)
		bad += dedup_lookup(s, i * golden + 1, i) != 0;
	ck_assert_uint_eq(bad, 0);
	ck_assert_uint_eq(size_of(s), n);
	dedup_free(s);

	s = make(_i, 0, 0, 0); /* sequential keys, as message ids are */
	for (uint64_t i = 1; i <= n; i++)
		bad += dedup_check_and_put(s, i, 0) != 0;
	for (uint64_t i = 1; i <= n; i++)
		bad += dedup_lookup(s, i, 0) != 1;
	ck_assert_uint_eq(bad, 0);
	ck_assert_int_eq(dedup_lookup(s, n + 1, 0), 0);
	dedup_free(s);
}
END_TEST

/*
 * The reference model: a flat array and linear scans. Keys are ordered by a
 * tick: the last use when there is a capacity (LRU), else the last insert or
 * put (FIFO). Before every operation, expired keys are purged from the front
 * of that order, up to the first live one.
 */
#define MODEL_KEYS 128

struct model {
	uint64_t ttl, cap, clock;
	size_t held;
	struct {
		bool held;
		uint64_t t, tick;
	} k[MODEL_KEYS];
};

static bool model_expired(const struct model *m, int i, uint64_t now)
{
	return m->ttl && now > m->k[i].t && now - m->k[i].t > m->ttl;
}

static int model_oldest(const struct model *m)
{
	int best = -1;

	for (int i = 0; i < MODEL_KEYS; i++)
		if (m->k[i].held && (best < 0 || m->k[i].tick < m->k[best].tick))
			best = i;
	return best;
}

static void model_drop(struct model *m, int i)
{
	m->k[i].held = false;
	m->held--;
}

/* Purges, then says whether key i is held (dropping it when it expired). */
static bool model_find(struct model *m, int i, uint64_t now)
{
	int o;

	while (m->ttl && (o = model_oldest(m)) >= 0 && model_expired(m, o, now))
		model_drop(m, o);
	if (m->k[i].held && model_expired(m, i, now))
		model_drop(m, i);
	return m->k[i].held;
}

static void model_insert(struct model *m, int i, uint64_t now)
{
	if (m->cap && m->held >= m->cap)
		model_drop(m, model_oldest(m));
	m->k[i].held = true;
	m->k[i].t = now;
	m->k[i].tick = ++m->clock;
	m->held++;
}

static int model_op(struct model *m, int op, int i, uint64_t now)
{
	bool hit = model_find(m, i, now);

	if (hit && (m->cap || op == 2))
		m->k[i].tick = ++m->clock; /* a use (LRU), or a put's re-insert */
	if (hit && op == 2)
		m->k[i].t = now;
	if (!hit && op != 1)
		model_insert(m, i, now);
	return op == 2 ? 0 : hit;
}

START_TEST(test_against_model)
{
	static const struct {
		uint64_t ttl, cap;
	} configs[] = { { 0, 0 }, { 50, 0 }, { 0, 64 }, { 50, 64 }, { 200, 1 }, { 0, 2 } };
	uint64_t keys[MODEL_KEYS];
	struct rng rng;

	rng_seed(&rng, 42);
	keys[0] = 0;
	for (int i = 1; i < MODEL_KEYS; i++)
		keys[i] = rng_next(&rng) | 1;
	for (size_t c = 0; c < sizeof(configs) / sizeof(configs[0]); c++) {
		struct dedup_store *s;
		struct model m = { .ttl = configs[c].ttl, .cap = configs[c].cap };
		const int steps = backends[_i].bulk < 100000 ? (int)backends[_i].bulk : 100000;
		uint64_t now = 0;

		/* skipped: configs the backend can't honour (the model's clock is simulated) */
		if ((configs[c].ttl && !backends[_i].simulated_time) || (configs[c].cap && !backends[_i].capacity))
			continue;
		s = make(_i, configs[c].ttl, configs[c].cap, 0);
		for (int n = 0; n < steps; n++) {
			uint64_t r = rng_next(&rng);
			int i = (int)(r % MODEL_KEYS), op = (int)(r >> 32) % 10;
			int want, got;

			op = op < 4 ? 0 : op < 7 ? 1 : 2; /* check_and_put, lookup, put */
			now += (r >> 40) % 4;
			want = model_op(&m, op, i, now);
			got = op == 0 ? dedup_check_and_put(s, keys[i], now)
			      : op == 1 ? dedup_lookup(s, keys[i], now)
					: dedup_put(s, keys[i], now);
			if (got != want)
				ck_abort_msg("config %zu step %d: op %d key %d at %llu: got %d, model %d", c, n, op, i,
					     (unsigned long long)now, got, want);
			if (backends[_i].exact_size && size_of(s) != m.held)
				ck_abort_msg("config %zu step %d: size %zu, model %zu", c, n, size_of(s), m.held);
		}
		dedup_free(s);
	}
}
END_TEST

#define THREADS 4
#define THREAD_KEYS 100000

struct worker_arg {
	struct dedup_store *s;
	unsigned id;
	uint64_t keys; /* 0: THREAD_KEYS (a count coprime to the strides) */
	uint64_t inserted;
};

static void *worker(void *p)
{
	struct worker_arg *a = p;
	/* every thread inserts the same keys, each in its own order */
	const uint64_t stride[THREADS] = { 1, 7, 13, 99991 };
	const uint64_t n = a->keys ? a->keys : THREAD_KEYS;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t key = (i * stride[a->id]) % n + 1;
		int r = dedup_check_and_put(a->s, key, 1);

		if (r == 0)
			a->inserted++;
		else if (r != 1)
			return (void *)1;
	}
	return NULL;
}

START_TEST(test_threads)
{
	const uint64_t keys = backends[_i].bulk < THREAD_KEYS ? backends[_i].bulk : THREAD_KEYS;

	for (int shape = 0; shape < 2; shape++) {
		/* unbounded and growing; then ttl and capacity, so the order list is kept under load */
		struct dedup_store *s;
		struct worker_arg args[THREADS];
		pthread_t th[THREADS];
		uint64_t total = 0;
		void *ret;

		/* skipped: shape 1's ttl of 1000 ns is simulated time, and it needs a capacity */
		if (shape && (!backends[_i].simulated_time || !backends[_i].capacity))
			continue;
		s = shape ? make(_i, 1000, THREAD_KEYS, 0) : make(_i, 0, 0, 0);
		for (unsigned t = 0; t < THREADS; t++) {
			/* a store that is one object per thread races through its peers instead */
			struct dedup_store *own = t && backends[_i].peer ? backends[_i].peer(0) : s;

			args[t] = (struct worker_arg){ .s = own, .id = t, .keys = keys };
			ck_assert_int_eq(pthread_create(&th[t], NULL, worker, &args[t]), 0);
		}
		for (unsigned t = 0; t < THREADS; t++) {
			ck_assert_int_eq(pthread_join(th[t], &ret), 0);
			ck_assert_ptr_null(ret);
			total += args[t].inserted;
			if (args[t].s != s)
				dedup_free(args[t].s);
		}
		ck_assert_uint_eq(total, keys); /* each key inserted exactly once */
		ck_assert_uint_eq(size_of(s), keys);
		for (uint64_t k = 1; k <= keys; k++)
			if (dedup_lookup(s, k, 2) != 1)
				ck_abort_msg("key %llu lost", (unsigned long long)k);
		dedup_free(s);
	}
}
END_TEST

/* ---------- the redis store alone: several connections, wall-clock ttl, pipelining, a restart ---------- */

START_TEST(test_redis_shared)
{
	struct dedup_store *a = redis_make(0, 0, 0), *b = redis_peer(0), *other = redis_make(0, 0, 0);

	ck_assert_int_eq(dedup_check_and_put(a, 42, 0), 0);
	ck_assert_int_eq(dedup_lookup(b, 42, 0), 1);	    /* the other connection sees it at once */
	ck_assert_int_eq(dedup_check_and_put(b, 42, 0), 1);
	ck_assert_int_eq(dedup_put(b, 43, 0), 0);
	ck_assert_int_eq(dedup_check_and_put(a, 43, 0), 1);
	ck_assert_int_eq(dedup_lookup(other, 42, 0), 0);    /* another prefix, another cache */
	ck_assert_int_eq(dedup_check_and_put(other, 42, 0), 0);
	ck_assert_uint_eq(size_of(a), 2);
	ck_assert_uint_eq(size_of(other), 1);
	dedup_free(a);
	ck_assert_int_eq(dedup_lookup(b, 43, 0), 1); /* the keys outlive the connection that made them */
	dedup_free(b);
	dedup_free(other);
}
END_TEST

START_TEST(test_redis_expiry)
{
	struct dedup_store *s = redis_make(200 * NS_PER_MS, 0, 0);

	/* now_ns is ignored: the ttl runs on redis's clock */
	ck_assert_int_eq(dedup_check_and_put(s, 1, 0), 0);
	ck_assert_int_eq(dedup_check_and_put(s, 1, UINT64_MAX), 1);
	ck_assert_int_eq(dedup_lookup(s, 1, 0), 1);
	ck_assert_uint_eq(size_of(s), 1);
	clock_sleep_ns(300 * NS_PER_MS);
	ck_assert_int_eq(dedup_lookup(s, 1, 0), 0);
	ck_assert_uint_eq(size_of(s), 0);
	ck_assert_int_eq(dedup_check_and_put(s, 1, 0), 0); /* expired: inserted again */
	dedup_free(s);

	s = redis_make(400 * NS_PER_MS, 0, 0); /* a put refreshes the ttl, a check_and_put hit doesn't */
	ck_assert_int_eq(dedup_put(s, 1, 0), 0);
	ck_assert_int_eq(dedup_check_and_put(s, 2, 0), 0);
	clock_sleep_ns(250 * NS_PER_MS);
	ck_assert_int_eq(dedup_put(s, 1, 0), 0);
	ck_assert_int_eq(dedup_check_and_put(s, 2, 0), 1);
	clock_sleep_ns(250 * NS_PER_MS);
	ck_assert_int_eq(dedup_lookup(s, 1, 0), 1);
	ck_assert_int_eq(dedup_lookup(s, 2, 0), 0);
	dedup_free(s);

	s = redis_make(1, 0, 0); /* 1 ns rounds up to 1 ms, not down to "forever" */
	ck_assert_int_eq(dedup_put(s, 1, 0), 0);
	clock_sleep_ns(20 * NS_PER_MS);
	ck_assert_int_eq(dedup_lookup(s, 1, 0), 0);
	dedup_free(s);
}
END_TEST

START_TEST(test_redis_deferred)
{
	struct dedup_store *a = redis_make(0, 0, 0), *b = redis_peer(0);
	uint64_t bad = 0;

	ck_assert_int_eq(dedup_flush(a), 0); /* nothing queued */
	for (uint64_t k = 1; k <= 1000; k++)
		bad += dedup_put_deferred(a, k, 0) != 0;
	ck_assert_uint_eq(bad, 0);
	/* no promise before the flush; after it every key is visible to the other connection */
	ck_assert_int_eq(dedup_flush(a), 0);
	for (uint64_t k = 1; k <= 1000; k++)
		bad += dedup_lookup(b, k, 0) != 1;
	ck_assert_uint_eq(bad, 0);
	ck_assert_uint_eq(size_of(b), 1000);

	/* a synchronous call waits for the queued replies: order is kept on one connection */
	ck_assert_int_eq(dedup_put_deferred(a, 5000, 0), 0);
	ck_assert_int_eq(dedup_check_and_put(a, 5000, 0), 1);
	ck_assert_int_eq(dedup_put_deferred(a, 5001, 0), 0);
	ck_assert_int_eq(dedup_lookup(a, 5001, 0), 1);
	ck_assert_int_eq(dedup_flush(a), 0);

	/* destroy delivers what is still queued */
	ck_assert_int_eq(dedup_put_deferred(a, 6000, 0), 0);
	dedup_free(a);
	ck_assert_int_eq(dedup_lookup(b, 6000, 0), 1);
	/* a crash (abandon) does not: queued SETs die with the process */
	a = redis_peer(0);
	ck_assert_int_eq(dedup_put_deferred(a, 7000, 0), 0);
	dedup_abandon(a);
	ck_assert_int_eq(dedup_lookup(b, 7000, 0), 0);
	dedup_free(b);
}
END_TEST

START_TEST(test_redis_restart)
{
	struct node_opts o = { .quiet = true };
	struct node *rn = NULL;
	struct dedup_store *s;
	char err[1024] = "";

	ck_assert_msg(node_new(&rn, &redis_ops, &o, err, sizeof(err)) == 0, "%s", err);
	s = dedup_redis_new(node_url(rn), "restart", 0, err, sizeof(err));
	ck_assert_msg(s != NULL, "%s", err);
	ck_assert_int_eq(dedup_check_and_put(s, 1, 0), 0);
	ck_assert_int_eq(dedup_put(s, 2, 0), 0);
	ck_assert_int_eq(dedup_put_deferred(s, 3, 0), 0);
	ck_assert_int_eq(dedup_flush(s), 0);

	ck_assert_int_eq(node_kill(rn), 0);
	/* down: every call fails, none crashes (the first meets the dead socket, the next ones a refused reconnect) */
	ck_assert_int_lt(dedup_check_and_put(s, 4, 0), 0);
	ck_assert_int_lt(dedup_lookup(s, 1, 0), 0);
	ck_assert_int_lt(dedup_put(s, 4, 0), 0);
	if (dedup_put_deferred(s, 4, 0) == 0)
		ck_assert_int_lt(dedup_flush(s), 0);
	ck_assert_uint_eq(size_of(s), 0);

	ck_assert_msg(node_restart(rn, err, sizeof(err)) == 0, "%s", err);
	/* up again on the same port: the next call reconnects; the append-only file kept the keys */
	ck_assert_int_eq(dedup_check_and_put(s, 1, 0), 1);
	ck_assert_int_eq(dedup_lookup(s, 2, 0), 1);
	ck_assert_int_eq(dedup_lookup(s, 3, 0), 1);
	ck_assert_int_eq(dedup_check_and_put(s, 4, 0), 0);
	ck_assert_int_eq(dedup_flush(s), 0); /* the failed deferred put was reported once, not again */
	ck_assert_uint_eq(size_of(s), 4);

	/* a connection that died while idle: the call that finds out fails, the next one reconnects */
	ck_assert_int_eq(node_kill(rn), 0);
	ck_assert_msg(node_restart(rn, err, sizeof(err)) == 0, "%s", err);
	if (dedup_lookup(s, 1, 0) < 0)
		ck_assert_int_eq(dedup_lookup(s, 1, 0), 1);
	dedup_free(s);
	node_free(rn);
}
END_TEST

/*
 * issue 13. A volatile redis kind comes back EMPTY after a kill -9 and
 * restart; a hung one (SIGSTOP) makes a call fail after the timeout, the next
 * ones at once for one more timeout (the circuit breaker), and after SIGCONT
 * the store works again. A maxmemory kind evicts keys itself.
 */
START_TEST(test_redis_volatile_hung_evicting)
{
	struct node_opts o = { .quiet = true };
	struct redis_kind vol, mm;
	struct node *rn = NULL, *rm = NULL;
	struct dedup_store *s;
	char err[1024] = "";
	uint64_t t0, took;

	redis_kind_init(&vol, &(struct redis_config){ .volatile_data = true });
	ck_assert_msg(node_new(&rn, &vol.ops, &o, err, sizeof(err)) == 0, "%s", err);
	s = dedup_redis_new_timeout(node_url(rn), "vol", 0, 100 * NS_PER_MS, err, sizeof(err));
	ck_assert_msg(s != NULL, "%s", err);
	ck_assert_int_eq(dedup_check_and_put(s, 1, 0), 0);
	ck_assert_int_eq(node_kill(rn), 0);
	ck_assert_msg(node_restart(rn, err, sizeof(err)) == 0, "%s", err);
	if (dedup_lookup(s, 1, 0) < 0) /* the call that finds the old connection dead */
		ck_assert_int_eq(dedup_lookup(s, 1, 0), 0);
	else
		ck_abort_msg("a lookup on the killed server's connection succeeded");
	ck_assert_int_eq(dedup_check_and_put(s, 1, 0), 0); /* gone: no persistence */

	ck_assert_int_eq(kill(node_pid(rn), SIGSTOP), 0);
	t0 = clock_now_ns();
	ck_assert_int_lt(dedup_lookup(s, 1, 0), 0);
	took = clock_now_ns() - t0;
	ck_assert_msg(took >= 90 * NS_PER_MS && took < 1500 * NS_PER_MS, "timed out after %llu ms",
		      (unsigned long long)(took / NS_PER_MS));
	t0 = clock_now_ns();
	ck_assert_int_lt(dedup_put(s, 2, 0), 0); /* hung: at once */
	ck_assert_uint_lt(clock_now_ns() - t0, 50 * NS_PER_MS);
	ck_assert_int_eq(kill(node_pid(rn), SIGCONT), 0);
	clock_sleep_ns(150 * NS_PER_MS);
	ck_assert_int_eq(dedup_lookup(s, 1, 0), 1);
	dedup_free(s);
	node_free(rn);

	/* 1 MiB: redis's own overhead leaves room for few keys; the early ones go */
	redis_kind_init(&mm, &(struct redis_config){ .maxmemory = 1024 * 1024 });
	ck_assert_msg(node_new(&rm, &mm.ops, &o, err, sizeof(err)) == 0, "%s", err);
	s = dedup_redis_new(node_url(rm), "mm", 0, err, sizeof(err));
	ck_assert_msg(s != NULL, "%s", err);
	for (uint64_t k = 1; k <= 20000; k++)
		ck_assert_int_eq(dedup_put(s, k, 0), 0);
	ck_assert_uint_lt(size_of(s), 20000);
	ck_assert_int_gt(redis_info_number(rm, "evicted_keys"), 0);
	dedup_free(s);
	node_free(rm);
}
END_TEST

START_TEST(test_redis_bad_url)
{
	static const char *const bad[] = {
		"127.0.0.1:6379", "redis://", "redis://127.0.0.1", "redis://127.0.0.1:0", "redis://127.0.0.1:70000",
		"redis://127.0.0.1:6379/0", "redis://user@127.0.0.1:6379", "http://127.0.0.1:6379", "",
	};
	char err[256], url[64], want[64];
	uint16_t port;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		ck_assert_ptr_null(dedup_redis_new(bad[i], "p", 0, err, sizeof(err)));
		ck_assert_msg(strstr(err, bad[i]) && strstr(err, "expected redis://host:port"), "%s: %s", bad[i], err);
		ck_assert_ptr_null(strchr(err, '\n'));
	}
	ck_assert_ptr_null(dedup_redis_new(NULL, "p", 0, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "expected redis://host:port"));

	/* a port nobody listens on */
	ck_assert_int_eq(net_free_port(&port), 0);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%u", port);
	ck_assert_ptr_null(dedup_redis_new(url, "p", 0, err, sizeof(err)));
	snprintf(want, sizeof(want), "cannot reach redis at 127.0.0.1:%u: ", port);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0 && strlen(err) > strlen(want), "%s", err);
	ck_assert_ptr_null(dedup_redis_new(url, "p", 0, NULL, 0)); /* no err buffer: still no crash */
}
END_TEST

/* ---------- the Tokyo Cabinet store alone: reopen, a process that never closed, sync, errors ---------- */

static struct dedup_store *tc_open(const char *path, bool sync, uint64_t ttl_ns)
{
	char err[512] = "";
	struct dedup_store *s = dedup_tc_new(path, sync, ttl_ns, err, sizeof(err));

	ck_assert_msg(s != NULL, "tokyocabinet store: %s", err);
	return s;
}

/* NULL, and one line that starts by naming the file (and holds hint, if any). */
static void tc_expect_open_error(const char *path, const char *hint)
{
	char err[512] = "", want[256];

	ck_assert_ptr_null(dedup_tc_new(path, false, 0, err, sizeof(err)));
	snprintf(want, sizeof(want), "cannot open dedup database %s: ", path);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0 && strlen(err) > strlen(want), "%s", err);
	ck_assert_msg(!hint || strstr(err, hint), "%s: no \"%s\" in it", err, hint);
	ck_assert_ptr_null(strchr(err, '\n'));
}

START_TEST(test_tc_reopen)
{
	char dir[] = "/tmp/dupsim-check-tc-XXXXXX", path[64];
	struct dedup_store *s;
	uint64_t bad = 0;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/keys.tch", dir);
	s = tc_open(path, false, 100);
	for (uint64_t k = 1; k <= 1000; k++)
		bad += dedup_check_and_put(s, k, 1000) != 0;
	ck_assert_uint_eq(bad, 0);
	ck_assert_int_eq(dedup_put(s, 5000, 1100), 0);
	/* one handle per file and process: a second one is refused, not a second cache on the same bytes */
	tc_expect_open_error(path, "already open in this process");
	dedup_free(s);

	/* the successor of a crashed consumer finds every key, with its insert time */
	s = tc_open(path, false, 100);
	ck_assert_uint_eq(size_of(s), 1001);
	for (uint64_t k = 1; k <= 1000; k++)
		bad += dedup_lookup(s, k, 1100) != 1;
	ck_assert_uint_eq(bad, 0);
	ck_assert_int_eq(dedup_check_and_put(s, 1, 1100), 1);
	ck_assert_int_eq(dedup_lookup(s, 1, 1101), 0); /* inserted at 1000, before the reopen */
	ck_assert_int_eq(dedup_lookup(s, 5000, 1101), 1);
	ck_assert_int_eq(dedup_check_and_put(s, 1, 1101), 0); /* expired: inserted again */
	ck_assert_int_eq(dedup_lookup(s, 1, 1201), 1);
	dedup_free(s);

	s = tc_open(path, false, 0); /* the ttl is the opener's, not the file's */
	ck_assert_int_eq(dedup_lookup(s, 2, UINT64_MAX), 1);
	ck_assert_uint_eq(size_of(s), 1001);
	dedup_free(s);
	ck_assert_int_eq(files_rm_rf(dir), 0);
}
END_TEST

#define TC_CRASH_KEYS 100000

START_TEST(test_tc_abandoned)
{
	char dir[] = "/tmp/dupsim-check-tc-XXXXXX", path[64], c;
	int ready[2], go[2], status = 0;
	struct dedup_store *s;
	uint64_t bad = 0;
	pid_t pid;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/keys.tch", dir);
	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(go), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* a consumer process that dies holding the file: no destroy, no close, no exit handlers */
		close(ready[0]);
		close(go[1]);
		s = dedup_tc_new(path, false, 0, NULL, 0);
		if (!s)
			_exit(2);
		for (uint64_t k = 1; k <= TC_CRASH_KEYS; k++)
			if (dedup_check_and_put(s, k, k) != 0)
				_exit(3);
		if (write(ready[1], "r", 1) != 1)
			_exit(4);
		if (read(go[0], &c, 1) < 0) /* EOF: the parent has looked */
			_exit(5);
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	if (read(ready[0], &c, 1) != 1) {
		waitpid(pid, &status, 0);
		ck_abort_msg("the child failed: status %d", status);
	}
	/* while it lives, the file is its: refused at once rather than a hang */
	tc_expect_open_error(path, "another process holds it");
	close(go[1]);
	close(ready[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);

	s = tc_open(path, false, 0);
	ck_assert_uint_eq(size_of(s), TC_CRASH_KEYS);
	for (uint64_t k = 1; k <= TC_CRASH_KEYS; k++)
		bad += dedup_lookup(s, k, 0) != 1;
	ck_assert_uint_eq(bad, 0);
	ck_assert_int_eq(dedup_lookup(s, TC_CRASH_KEYS + 1, 0), 0);
	ck_assert_int_eq(dedup_check_and_put(s, TC_CRASH_KEYS + 1, 0), 0); /* and it takes new keys */
	dedup_free(s);
	s = tc_open(path, false, 0); /* the clean close after the unclean one left a sound file */
	ck_assert_uint_eq(size_of(s), TC_CRASH_KEYS + 1);
	ck_assert_int_eq(dedup_lookup(s, 1, 0), 1);
	ck_assert_int_eq(dedup_lookup(s, TC_CRASH_KEYS + 1, 0), 1);
	dedup_free(s);
	ck_assert_int_eq(files_rm_rf(dir), 0);
}
END_TEST

START_TEST(test_tc_sync)
{
	char dir[] = "/tmp/dupsim-check-tc-XXXXXX", path[64];
	struct dedup_store *s;
	uint64_t bad = 0;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/keys.tch", dir);
	s = tc_open(path, true, 0); /* an fsync per insert: slower, same answers */
	for (uint64_t k = 1; k <= 200; k++)
		bad += dedup_check_and_put(s, k, 0) != 0;
	for (uint64_t k = 1; k <= 200; k++)
		bad += dedup_check_and_put(s, k, 0) != 1;
	ck_assert_uint_eq(bad, 0);
	ck_assert_int_eq(dedup_put(s, 1000, 0), 0);
	dedup_free(s);

	s = tc_open(path, true, 100); /* the ttl path: get + put under the lock, then the sync */
	ck_assert_int_eq(dedup_lookup(s, 7, 100), 1);
	ck_assert_int_eq(dedup_lookup(s, 7, 101), 0);
	ck_assert_int_eq(dedup_put(s, 8, 500), 0);
	ck_assert_int_eq(dedup_check_and_put(s, 9, 500), 0); /* inserted at 0: expired, inserted again */
	ck_assert_uint_eq(size_of(s), 201);
	dedup_free(s);

	s = tc_open(path, false, 100);
	ck_assert_int_eq(dedup_lookup(s, 8, 550), 1);
	ck_assert_int_eq(dedup_lookup(s, 9, 550), 1);
	ck_assert_int_eq(dedup_lookup(s, 10, 550), 0);
	dedup_free(s);
	ck_assert_int_eq(files_rm_rf(dir), 0);
}
END_TEST

START_TEST(test_tc_threads_ttl)
{
	/* with a ttl, check_and_put is a get and a put under the store's lock: still each key once */
	struct dedup_store *s = tc_make(1000, 0, 0);
	struct worker_arg args[THREADS];
	pthread_t th[THREADS];
	uint64_t total = 0;
	void *ret;

	for (unsigned t = 0; t < THREADS; t++) {
		args[t] = (struct worker_arg){ .s = s, .id = t };
		ck_assert_int_eq(pthread_create(&th[t], NULL, worker, &args[t]), 0);
	}
	for (unsigned t = 0; t < THREADS; t++) {
		ck_assert_int_eq(pthread_join(th[t], &ret), 0);
		ck_assert_ptr_null(ret);
		total += args[t].inserted;
	}
	ck_assert_uint_eq(total, THREAD_KEYS);
	ck_assert_uint_eq(size_of(s), THREAD_KEYS);
	dedup_free(s);
}
END_TEST

START_TEST(test_tc_errors)
{
	char dir[] = "/tmp/dupsim-check-tc-XXXXXX", path[96], file[64];
	char junk[4096];
	int fd;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/missing/keys.tch", dir);
	tc_expect_open_error(path, "does not exist)");
	ck_assert_ptr_null(dedup_tc_new(path, false, 0, NULL, 0)); /* no err buffer: still no crash */
	tc_expect_open_error(dir, "(a folder, not a file)");
	tc_expect_open_error("/proc/dupsim-check.tch", "(cannot create a file in /proc)"); /* even for root */

	/* a file that is something else */
	snprintf(file, sizeof(file), "%s/other", dir);
	memset(junk, 'x', sizeof(junk));
	fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, junk, sizeof(junk)), (int)sizeof(junk));
	close(fd);
	tc_expect_open_error(file, "not a Tokyo Cabinet hash database");
	ck_assert_int_eq(truncate(file, 10), 0); /* shorter than a header */
	tc_expect_open_error(file, "not a Tokyo Cabinet hash database");
	snprintf(path, sizeof(path), "%s/keys.tch", file); /* under a regular file */
	tc_expect_open_error(path, "is not a folder)");
	ck_assert_int_eq(files_rm_rf(dir), 0);
}
END_TEST

/* The policy's table: which copies get a lookup, and the order of mark and side effect. */
/* ---------- the postgres store: the transactional inbox, on a private PostgreSQL per test ---------- */

static struct node *pg_start(void)
{
	struct node_opts o = { .quiet = true };
	struct node *n = NULL;
	char err[1024] = "";

	ck_assert_msg(node_new(&n, &postgres_ops, &o, err, sizeof(err)) == 0, "%s", err);
	return n;
}

static struct dedup_store *pg_open(const struct node *n, const char *owner, uint64_t ttl_ns)
{
	char err[512] = "";
	struct dedup_store *s = dedup_pg_new(node_url(n), owner, ttl_ns, err, sizeof(err));

	ck_assert_msg(s != NULL, "postgres store: %s", err);
	return s;
}

/* Rows of table for owner (and id, unless 0), asked on a connection of the test's own. */
static long pg_rows(const struct node *n, const char *table, const char *owner, uint64_t id)
{
	PGconn *c = PQconnectdb(node_url(n));
	char sql[256];
	PGresult *r;
	long v;

	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE owner = '%s'%s%llu", table, owner,
		 id ? " AND id = " : " AND id > ", (unsigned long long)id);
	r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
	v = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	PQfinish(c);
	return v;
}

/* The effect's stages as the store calls them: counts them, and answers `step` at die_at (never: -1). */
struct pg_fx {
	int calls[2];
	int die_at;
	enum dedup_tx_step step; /* DEDUP_TX_GO (the zero) means DEDUP_TX_DIE */
};

static enum dedup_tx_step pg_fx_at(void *arg, enum dedup_tx_stage stage)
{
	struct pg_fx *f = arg;

	f->calls[stage]++;
	if ((int)stage != f->die_at)
		return DEDUP_TX_GO;
	return f->step == DEDUP_TX_GO ? DEDUP_TX_DIE : f->step;
}

START_TEST(test_pg_inbox)
{
	struct node *n = pg_start();
	struct dedup_store *a = pg_open(n, "run:shared", 0), *b = pg_open(n, "run:shared", 0);
	struct dedup_store *other = pg_open(n, "run:c1", 0);
	struct pg_fx f = { .die_at = -1 };
	struct dedup_effect fx = { .at = pg_fx_at, .arg = &f, .consumer = 7 };

	ck_assert(dedup_has_tx(a));
	ck_assert_int_eq(dedup_execute_once(a, 1, 0, &fx), DEDUP_TX_DONE);
	ck_assert(f.calls[DEDUP_TX_INSERTED] == 1 && f.calls[DEDUP_TX_EFFECT] == 1);
	ck_assert_int_eq(pg_rows(n, "effects", "run:shared", 1), 1);
	/* a duplicate, on the same connection or another with the same owner: nothing runs, no row */
	ck_assert_int_eq(dedup_execute_once(a, 1, 0, &fx), DEDUP_TX_SEEN);
	ck_assert_int_eq(dedup_execute_once(b, 1, 0, &fx), DEDUP_TX_SEEN);
	ck_assert(f.calls[DEDUP_TX_INSERTED] == 1 && f.calls[DEDUP_TX_EFFECT] == 1);
	ck_assert_int_eq(pg_rows(n, "effects", "run:shared", 1), 1);
	/* another owner is another inbox */
	ck_assert_int_eq(dedup_execute_once(other, 1, 0, &fx), DEDUP_TX_DONE);
	/* the plain operations share the inbox's rows */
	ck_assert_int_eq(dedup_lookup(b, 1, 0), 1);
	ck_assert_int_eq(dedup_lookup(b, 2, 0), 0);
	ck_assert_int_eq(dedup_check_and_put(b, 2, 0), 0);
	ck_assert_int_eq(dedup_check_and_put(a, 2, 0), 1);
	ck_assert_int_eq(dedup_execute_once(a, 2, 0, &fx), DEDUP_TX_SEEN);
	ck_assert_int_eq(dedup_put(a, 3, 0), 0);
	ck_assert_int_eq(dedup_put(a, 3, 0), 0);
	ck_assert_uint_eq(size_of(a), 3);
	ck_assert_uint_eq(size_of(other), 1);
	dedup_free(a);
	dedup_free(b);
	dedup_free(other);
	node_free(n);
}
END_TEST

/* A death inside the transaction, at either stage: the abandoned store rolls it back, the redelivery does the work. */
START_TEST(test_pg_died)
{
	struct node *n = pg_start();
	struct dedup_store *peer = pg_open(n, "o", 0);

	for (int stage = DEDUP_TX_INSERTED; stage <= DEDUP_TX_EFFECT; stage++) {
		struct dedup_store *s = pg_open(n, "o", 0);
		struct pg_fx f = { .die_at = stage };
		struct dedup_effect fx = { .at = pg_fx_at, .arg = &f, .consumer = 1 };
		uint64_t key = 10 + (uint64_t)stage;

		ck_assert_int_eq(dedup_execute_once(s, key, 0, &fx), DEDUP_TX_DIED);
		ck_assert_int_eq(f.calls[DEDUP_TX_EFFECT], stage == DEDUP_TX_EFFECT);
		/* uncommitted: invisible to a lookup elsewhere */
		ck_assert_int_eq(dedup_lookup(peer, key, 0), 0);
		dedup_abandon(s);
		f.die_at = -1;
		ck_assert_int_eq(dedup_execute_once(peer, key, 0, &fx), DEDUP_TX_DONE);
		ck_assert_int_eq(pg_rows(n, "effects", "o", key), 1);
		ck_assert_int_eq(dedup_execute_once(peer, key, 0, &fx), DEDUP_TX_SEEN);
	}
	ck_assert_int_eq(pg_rows(n, "inbox", "o", 0), 2);
	dedup_free(peer);
	node_free(n);
}
END_TEST

/* The handler fails (nack requeue) at either stage: rolled back on the same connection, which goes on working. */
START_TEST(test_pg_failed)
{
	struct node *n = pg_start();
	struct dedup_store *s = pg_open(n, "o", 0), *peer = pg_open(n, "o", 0);

	for (int stage = DEDUP_TX_INSERTED; stage <= DEDUP_TX_EFFECT; stage++) {
		struct pg_fx f = { .die_at = stage, .step = DEDUP_TX_FAIL };
		struct dedup_effect fx = { .at = pg_fx_at, .arg = &f, .consumer = 1 };
		uint64_t key = 20 + (uint64_t)stage;

		ck_assert_int_eq(dedup_execute_once(s, key, 0, &fx), DEDUP_TX_FAILED);
		/* rolled back, not merely uncommitted: the key is free for the same connection */
		ck_assert_int_eq(dedup_lookup(peer, key, 0), 0);
		ck_assert_int_eq(pg_rows(n, "effects", "o", key), 0);
		f.die_at = -1;
		ck_assert_int_eq(dedup_execute_once(s, key, 0, &fx), DEDUP_TX_DONE);
		ck_assert_int_eq(pg_rows(n, "effects", "o", key), 1);
		ck_assert_int_eq(dedup_execute_once(peer, key, 0, &fx), DEDUP_TX_SEEN);
	}
	dedup_free(s);
	dedup_free(peer);
	node_free(n);
}
END_TEST

/* The server dies before the COMMIT: an error, nothing committed; after a restart the store reconnects. */
static enum dedup_tx_step pg_kill_at_effect(void *arg, enum dedup_tx_stage stage)
{
	if (stage == DEDUP_TX_EFFECT)
		node_kill(arg);
	return DEDUP_TX_GO;
}

START_TEST(test_pg_server_lost)
{
	struct node *n = pg_start();
	struct dedup_store *s = pg_open(n, "o", 0);
	struct dedup_effect kill_fx = { .at = pg_kill_at_effect, .arg = n };
	struct pg_fx f = { .die_at = -1 };
	struct dedup_effect fx = { .at = pg_fx_at, .arg = &f };
	char err[1024] = "";

	ck_assert_int_lt(dedup_execute_once(s, 5, 0, &kill_fx), 0);
	ck_assert_int_lt(dedup_execute_once(s, 6, 0, &fx), 0); /* down: refused */
	ck_assert_int_eq(f.calls[DEDUP_TX_INSERTED], 0);
	ck_assert_msg(node_restart(n, err, sizeof(err)) == 0, "%s", err);
	/* fsync on, crash recovery: the rolled-back insert is not there */
	ck_assert_int_eq(dedup_execute_once(s, 5, 0, &fx), DEDUP_TX_DONE);
	ck_assert_int_eq(pg_rows(n, "effects", "o", 5), 1);
	dedup_free(s);
	node_free(n);
}
END_TEST

/* ttl on the server's clock: an expired row is taken over, a lookup no longer sees it. */
START_TEST(test_pg_ttl_and_bad_url)
{
	struct node *n = pg_start();
	struct dedup_store *s = pg_open(n, "t", 300 * NS_PER_MS);
	struct pg_fx f = { .die_at = -1 };
	struct dedup_effect fx = { .at = pg_fx_at, .arg = &f };
	char err[512] = "", url[128];
	uint16_t port;

	ck_assert_int_eq(dedup_execute_once(s, 1, 0, &fx), DEDUP_TX_DONE);
	ck_assert_int_eq(dedup_check_and_put(s, 1, 0), 1);
	ck_assert_int_eq(dedup_lookup(s, 1, 0), 1);
	clock_sleep_ns(450 * NS_PER_MS);
	ck_assert_int_eq(dedup_lookup(s, 1, 0), 0);
	ck_assert_int_eq(dedup_execute_once(s, 1, 0, &fx), DEDUP_TX_DONE);
	ck_assert_int_eq(pg_rows(n, "effects", "t", 1), 2);
	dedup_free(s);
	node_free(n);

	ck_assert_int_eq(net_free_port(&port), 0);
	snprintf(url, sizeof(url), "postgresql://dupsim@127.0.0.1:%u/dupsim", port);
	ck_assert_ptr_null(dedup_pg_new(url, "o", 0, err, sizeof(err)));
	ck_assert_msg(strstr(err, "cannot reach PostgreSQL at") && strstr(err, url), "%s", err);
}
END_TEST

START_TEST(test_policy)
{
	struct dedup_policy always_before = { SCENARIO_CHECK_ALWAYS, SCENARIO_MARK_BEFORE };
	struct dedup_policy count_after = { SCENARIO_CHECK_REPUBLISH_COUNT, SCENARIO_MARK_AFTER };
	struct dedup_policy flagged_before = { SCENARIO_CHECK_FLAGGED, SCENARIO_MARK_BEFORE };
	const enum dedup_step *st;

	/* always: every copy is looked up; mark = before makes it one check-and-put, unless split */
	ck_assert_int_eq(dedup_policy_decide(&always_before, 0, false, false), DEDUP_CHECK_AND_PUT);
	ck_assert_int_eq(dedup_policy_decide(&always_before, 0, false, true), DEDUP_LOOKUP);
	/* the shortcut: a first publish never delivered before is assumed first */
	ck_assert_int_eq(dedup_policy_decide(&count_after, 0, false, false), DEDUP_ASSUME_FIRST);
	ck_assert_int_eq(dedup_policy_decide(&count_after, 1, false, false), DEDUP_LOOKUP);
	ck_assert_int_eq(dedup_policy_decide(&count_after, 0, true, false), DEDUP_LOOKUP);
	ck_assert_int_eq(dedup_policy_decide(&flagged_before, 0, false, false), DEDUP_ASSUME_FIRST);
	ck_assert_int_eq(dedup_policy_decide(&flagged_before, 2, false, false), DEDUP_CHECK_AND_PUT);
	/* republish-count pipelines the assumed-first inserts; flagged makes them at once */
	ck_assert(dedup_policy_defers(&count_after));
	ck_assert(!dedup_policy_defers(&flagged_before));
	st = dedup_policy_steps(&always_before);
	ck_assert(st[0] == DEDUP_STEP_MARK && st[1] == DEDUP_STEP_PROCESS);
	st = dedup_policy_steps(&count_after);
	ck_assert(st[0] == DEDUP_STEP_PROCESS && st[1] == DEDUP_STEP_MARK);
}
END_TEST

Suite *dedup_suite(void)
{
	Suite *s = suite_create("dedup");
	TCase *tc = tcase_create("dedup");
	TCase *slow = tcase_create("dedup-bulk");
	TCase *redis = tcase_create("dedup-redis");
	TCase *tok = tcase_create("dedup-tokyocabinet");
	TCase *pg = tcase_create("dedup-postgres");

	tcase_add_loop_test(tc, test_check_and_put, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_lookup_put, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_expiry, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_lru, 0, NBACKENDS);
	tcase_add_test(tc, test_policy);
	suite_add_tcase(s, tc);
	tcase_set_timeout(slow, 300);
	tcase_add_loop_test(slow, test_growth, 0, NBACKENDS);
	tcase_add_loop_test(slow, test_against_model, 0, NBACKENDS);
	tcase_add_loop_test(slow, test_threads, 0, NBACKENDS);
	suite_add_tcase(s, slow);
	tcase_set_timeout(redis, 60); /* a redis-server start and restart */
	tcase_add_test(redis, test_redis_shared);
	tcase_add_test(redis, test_redis_expiry);
	tcase_add_test(redis, test_redis_deferred);
	tcase_add_test(redis, test_redis_restart);
	tcase_add_test(redis, test_redis_volatile_hung_evicting); /* issue 13 */
	tcase_add_test(redis, test_redis_bad_url);
	suite_add_tcase(s, redis);
	tcase_set_timeout(tok, 120); /* 100k keys in a child, fsyncs */
	tcase_add_test(tok, test_tc_reopen);
	tcase_add_test(tok, test_tc_abandoned);
	tcase_add_test(tok, test_tc_sync);
	tcase_add_test(tok, test_tc_threads_ttl);
	tcase_add_test(tok, test_tc_errors);
	suite_add_tcase(s, tok);
	tcase_set_timeout(pg, 90); /* an initdb and a PostgreSQL start per test */
	tcase_add_test(pg, test_pg_inbox);
	tcase_add_test(pg, test_pg_died);
	tcase_add_test(pg, test_pg_failed);
	tcase_add_test(pg, test_pg_server_lost);
	tcase_add_test(pg, test_pg_ttl_and_bad_url);
	suite_add_tcase(s, pg);
	return s;
}
