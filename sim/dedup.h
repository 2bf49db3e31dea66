/* dedup.h — dedup stores behind one table of functions, and the policy that decides per delivery. */
#ifndef DUPSIM_DEDUP_H
#define DUPSIM_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dedup_store;

struct dedup_store_ops {
	const char *name;
	/* Atomically: 1 if key is present (not expired), else insert it and return 0. < 0 on error. */
	int (*check_and_put)(struct dedup_store *s, uint64_t key, uint64_t now_ns);
	/* 1 present, 0 absent, < 0 error. */
	int (*lookup)(struct dedup_store *s, uint64_t key, uint64_t now_ns);
	/* Inserts (or refreshes) key. 0 or < 0. */
	int (*put)(struct dedup_store *s, uint64_t key, uint64_t now_ns);
	/* Keys currently held (expired ones may still count until purged). */
	size_t (*size)(struct dedup_store *s);
	void (*destroy)(struct dedup_store *s);
};

/* Every backend embeds this first. */
struct dedup_store {
	const struct dedup_store_ops *ops;
};

static inline int dedup_check_and_put(struct dedup_store *s, uint64_t key, uint64_t now_ns)
{
	return s->ops->check_and_put(s, key, now_ns);
}
static inline int dedup_lookup(struct dedup_store *s, uint64_t key, uint64_t now_ns)
{
	return s->ops->lookup(s, key, now_ns);
}
static inline int dedup_put(struct dedup_store *s, uint64_t key, uint64_t now_ns)
{
	return s->ops->put(s, key, now_ns);
}
static inline void dedup_destroy(struct dedup_store *s)
{
	if (s)
		s->ops->destroy(s);
}

/*
 * The memory store: open addressing, thread-safe (one lock, or striped),
 * no malloc per key. ttl_ns 0 = keys never expire; capacity 0 = unbounded,
 * else the least recently used key is evicted first. expected: a sizing hint.
 * Returns NULL when out of memory.
 */
struct dedup_store *dedup_mem_new(uint64_t ttl_ns, uint64_t capacity, size_t expected);

#endif
