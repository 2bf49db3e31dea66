/* dedup.h — the dedup store interface (a table of functions) and its backends: memory, redis, tokyocabinet, postgres. */
#ifndef DUPSIM_DEDUP_H
#define DUPSIM_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dedup_store;

/*
 * The transactional inbox (dedup_execute_once): the key's insert and the
 * side effect commit together or not at all. The store calls `at` inside the
 * open transaction at each stage; the side effect's own work runs at
 * DEDUP_TX_INSERTED (the key is in, visible to no one yet). `at` answering
 * DEDUP_TX_DIE means the owner dies right there: the store returns
 * DEDUP_TX_DIED without COMMIT and leaves the transaction open, and the
 * caller abandons the store (dedup_abandon), which, like a crashed
 * process's closed socket, rolls it back: nothing happened. DEDUP_TX_FAIL
 * means the handler failed (threw) and lives on: the store rolls the
 * transaction back itself and returns DEDUP_TX_FAILED; nothing happened,
 * and the store stays usable.
 */
enum dedup_tx_stage {
	DEDUP_TX_INSERTED, /* the key's row is in: do the work */
	DEDUP_TX_EFFECT,   /* the effect's row is in too: the next step is COMMIT */
};
enum dedup_tx_step {
	DEDUP_TX_GO,   /* go on to the next stage (or COMMIT) */
	DEDUP_TX_DIE,  /* the owner dies here, the transaction left open */
	DEDUP_TX_FAIL, /* the handler failed: roll back, nothing happened */
};
struct dedup_effect {
	enum dedup_tx_step (*at)(void *arg, enum dedup_tx_stage stage);
	void *arg;
	uint32_t consumer; /* written into the effect's row */
};
/* dedup_execute_once's results besides < 0 (an error: rolled back, nothing happened). */
enum {
	DEDUP_TX_DONE = 0, /* committed: the effect happened once, the key is visible */
	DEDUP_TX_SEEN = 1, /* the key was there: nothing done (a duplicate) */
	DEDUP_TX_DIED = 2, /* `at` said die: no COMMIT; abandon the store */
	DEDUP_TX_FAILED = 3, /* `at` said fail: rolled back; the store is still usable */
};

struct dedup_store_ops {
	const char *name;
	/* Atomically: 1 if key is present (not expired), else insert it and return 0. < 0 on error. */
	int (*check_and_put)(struct dedup_store *s, uint64_t key, uint64_t now_ns);
	/* 1 present, 0 absent, < 0 error. */
	int (*lookup)(struct dedup_store *s, uint64_t key, uint64_t now_ns);
	/* Inserts (or refreshes) key. 0 or < 0. */
	int (*put)(struct dedup_store *s, uint64_t key, uint64_t now_ns);
	/*
	 * Optional (NULL: same as put): queue an insert that becomes visible to
	 * other connections at the latest on the next flush (or any other call
	 * that must wait for the store's replies). Pipelining backends use it.
	 */
	int (*put_deferred)(struct dedup_store *s, uint64_t key, uint64_t now_ns);
	/* Optional (NULL: nothing queued): makes every deferred insert visible. 0 or < 0. */
	int (*flush)(struct dedup_store *s);
	/* Optional (NULL: free): the owner died; free without sending what is
	 * still queued, as a crashed process would. */
	void (*abandon)(struct dedup_store *s);
	/*
	 * Optional (NULL: the store has no transactions; the caller marks and
	 * processes in two steps): the transactional inbox. In one transaction,
	 * insert key unless present (ttl as for check_and_put), run fx, write
	 * the effect's row, COMMIT. DEDUP_TX_DONE exactly when the COMMIT
	 * succeeded (a COMMIT whose reply was lost is looked up again, by the
	 * effect row's token, on a new connection), DEDUP_TX_SEEN, DEDUP_TX_DIED,
	 * DEDUP_TX_FAILED,
	 * or < 0 when it was rolled back (or its outcome can't be learnt).
	 */
	int (*execute_once)(struct dedup_store *s, uint64_t key, uint64_t now_ns, const struct dedup_effect *fx);
	/* Keys currently held (expired ones may still count until purged). */
	size_t (*size)(struct dedup_store *s);
	void (*free)(struct dedup_store *s);
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
static inline int dedup_put_deferred(struct dedup_store *s, uint64_t key, uint64_t now_ns)
{
	return s->ops->put_deferred ? s->ops->put_deferred(s, key, now_ns) : s->ops->put(s, key, now_ns);
}
static inline int dedup_flush(struct dedup_store *s)
{
	return s->ops->flush ? s->ops->flush(s) : 0;
}
static inline bool dedup_has_tx(const struct dedup_store *s)
{
	return s && s->ops->execute_once;
}
/* Only when dedup_has_tx. */
static inline int dedup_execute_once(struct dedup_store *s, uint64_t key, uint64_t now_ns,
				     const struct dedup_effect *fx)
{
	return s->ops->execute_once(s, key, now_ns, fx);
}
static inline void dedup_free(struct dedup_store *s)
{
	if (s)
		s->ops->free(s);
}
static inline void dedup_abandon(struct dedup_store *s)
{
	if (s)
		(s->ops->abandon ? s->ops->abandon : s->ops->free)(s);
}

/*
 * The memory store: open addressing, thread-safe (one lock),
 * no malloc per key. ttl_ns 0 = keys never expire; capacity 0 = unbounded,
 * else the least recently used key is evicted first. expected: a sizing hint.
 * Returns NULL when out of memory.
 */
struct dedup_store *dedup_mem_new(uint64_t ttl_ns, uint64_t capacity, size_t expected);

/*
 * The redis store: one hiredis connection (a store object per consumer
 * thread; several objects with the same prefix share the keys, which is how
 * scope = shared works). check_and_put is `SET prefix:key 1 NX PX ttl`
 * (no PX when ttl is 0); put_deferred pipelines SETs, flush reads their
 * replies. url: "redis://host:port". NULL with one line in err when the
 * server can't be reached. The ttl runs on redis's own wall clock (now_ns is
 * ignored); size() SCANs the keyspace (O(N), for tests). One object is one
 * connection for one thread. The process must ignore SIGPIPE.
 */
struct dedup_store *dedup_redis_new(const char *url, const char *prefix, uint64_t ttl_ns, char *err,
				    size_t errlen);
/* The same with the connect and command timeout (dedup_redis_new: 2 s; 0 = that). A call that
 * timed out makes the next ones fail at once for one more timeout (a hung server). */
struct dedup_store *dedup_redis_new_timeout(const char *url, const char *prefix, uint64_t ttl_ns,
					    uint64_t timeout_ns, char *err, size_t errlen);

/*
 * The Tokyo Cabinet store: an on-disk hash database at path (created when
 * missing, reopened as it is otherwise: a crashed consumer finds its keys
 * again). sync: tchdbsync after every insert. ttl as in the memory store,
 * from the insert time kept as the value. Safe for several threads; one
 * handle per path per process. No capacity bound (every key is kept).
 * NULL with one line in err.
 */
struct dedup_store *dedup_tc_new(const char *path, bool sync, uint64_t ttl_ns, char *err, size_t errlen);

/*
 * The postgres store, the transactional inbox: one libpq connection (one
 * object per consumer thread, like redis), tables inbox(owner, id, at) and
 * effects(owner, id, consumer, token, at), created when missing. owner
 * is the scope: stores with the same owner share their keys. check_and_put
 * and friends are single autocommit statements (INSERT ... ON CONFLICT DO
 * NOTHING); execute_once is the inbox proper. The ttl runs on the server's
 * clock (now_ns ignored): an expired row is taken over by the next insert.
 * url: postgresql://user@host:port/db (any libpq connection string). NULL
 * with one line in err when the server can't be reached.
 */
struct dedup_store *dedup_pg_new(const char *url, const char *owner, uint64_t ttl_ns, char *err, size_t errlen);

#endif
