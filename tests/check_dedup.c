/* check_dedup.c — every dedup store through one set of tests: semantics, ttl, LRU, growth, a reference model, threads. */
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "dedup.h"
#include "tests.h"
#include "util.h"

/* The stores under test; each test runs once per row (tcase_add_loop_test). */
struct backend {
	const char *name;
	struct dedup_store *(*make)(uint64_t ttl_ns, uint64_t capacity, size_t expected);
	bool exact_size; /* size() drops expired keys as soon as any later operation runs */
};

static const struct backend backends[] = {
	{ "memory", dedup_mem_new, true },
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
	dedup_destroy(s);
	dedup_destroy(NULL);
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
	dedup_destroy(s);
}
END_TEST

START_TEST(test_expiry)
{
	struct dedup_store *s = make(_i, 100, 0, 0);

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
	dedup_destroy(s);

	s = make(_i, 0, 0, 0); /* ttl 0: forever */
	ck_assert_int_eq(dedup_put(s, 1, 0), 0);
	ck_assert_int_eq(dedup_lookup(s, 1, UINT64_MAX), 1);
	dedup_destroy(s);
}
END_TEST

START_TEST(test_lru)
{
	struct dedup_store *s = make(_i, 0, 3, 0);

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
	dedup_destroy(s);

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
	dedup_destroy(s);

	s = make(_i, 100, 2, 0); /* both: the ttl still counts from the insert */
	ck_assert_int_eq(dedup_put(s, 1, 0), 0);
	ck_assert_int_eq(dedup_put(s, 2, 50), 0);
	ck_assert_int_eq(dedup_lookup(s, 1, 60), 1); /* used recently, but inserted at 0 */
	ck_assert_int_eq(dedup_lookup(s, 1, 101), 0);
	ck_assert_int_eq(dedup_lookup(s, 2, 101), 1);
	if (backends[_i].exact_size)
		ck_assert_uint_eq(size_of(s), 1);
	dedup_destroy(s);
}
END_TEST

/* Bulk loops count failures instead of asserting: every ck_assert is a write to the runner. */
START_TEST(test_growth)
{
	const uint64_t n = 1000000, golden = 0x9e3779b97f4a7c15ull;
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
	dedup_destroy(s);

	s = make(_i, 0, 0, 0); /* sequential keys, as message ids are */
	for (uint64_t i = 1; i <= n; i++)
		bad += dedup_check_and_put(s, i, 0) != 0;
	for (uint64_t i = 1; i <= n; i++)
		bad += dedup_lookup(s, i, 0) != 1;
	ck_assert_uint_eq(bad, 0);
	ck_assert_int_eq(dedup_lookup(s, n + 1, 0), 0);
	dedup_destroy(s);
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
	struct util_rng rng;

	util_rng_seed(&rng, 42);
	keys[0] = 0;
	for (int i = 1; i < MODEL_KEYS; i++)
		keys[i] = util_rng_next(&rng) | 1;
	for (size_t c = 0; c < sizeof(configs) / sizeof(configs[0]); c++) {
		struct dedup_store *s = make(_i, configs[c].ttl, configs[c].cap, 0);
		struct model m = { .ttl = configs[c].ttl, .cap = configs[c].cap };
		uint64_t now = 0;

		for (int n = 0; n < 100000; n++) {
			uint64_t r = util_rng_next(&rng);
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
		dedup_destroy(s);
	}
}
END_TEST

#define THREADS 4
#define THREAD_KEYS 100000

struct worker_arg {
	struct dedup_store *s;
	unsigned id;
	uint64_t inserted;
};

static void *worker(void *p)
{
	struct worker_arg *a = p;
	/* every thread inserts the same keys, each in its own order */
	const uint64_t stride[THREADS] = { 1, 7, 13, 99991 };

	for (uint64_t i = 0; i < THREAD_KEYS; i++) {
		uint64_t key = (i * stride[a->id]) % THREAD_KEYS + 1;
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
	for (int shape = 0; shape < 2; shape++) {
		/* unbounded and growing; then ttl and capacity, so the order list is kept under load */
		struct dedup_store *s = shape ? make(_i, 1000, THREAD_KEYS, 0) : make(_i, 0, 0, 0);
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
		ck_assert_uint_eq(total, THREAD_KEYS); /* each key inserted exactly once */
		ck_assert_uint_eq(size_of(s), THREAD_KEYS);
		for (uint64_t k = 1; k <= THREAD_KEYS; k++)
			if (dedup_lookup(s, k, 2) != 1)
				ck_abort_msg("key %llu lost", (unsigned long long)k);
		dedup_destroy(s);
	}
}
END_TEST

Suite *dedup_suite(void)
{
	Suite *s = suite_create("dedup");
	TCase *tc = tcase_create("dedup");
	TCase *slow = tcase_create("dedup-bulk");

	tcase_add_loop_test(tc, test_check_and_put, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_lookup_put, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_expiry, 0, NBACKENDS);
	tcase_add_loop_test(tc, test_lru, 0, NBACKENDS);
	suite_add_tcase(s, tc);
	tcase_set_timeout(slow, 300);
	tcase_add_loop_test(slow, test_growth, 0, NBACKENDS);
	tcase_add_loop_test(slow, test_against_model, 0, NBACKENDS);
	tcase_add_loop_test(slow, test_threads, 0, NBACKENDS);
	suite_add_tcase(s, slow);
	return s;
}
