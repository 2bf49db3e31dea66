/* dedup_tc.c — the Tokyo Cabinet dedup store: an on-disk hash of key → insert time that survives a crash. */
#include "dedup/dedup.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <tcutil.h>
#include <tchdb.h>

#include "core/log.h"

/*
 * Records. Key: the 8 bytes of the uint64 in host order; value: the 8 bytes
 * of the insert time (the caller's now_ns, in host order). The file is not
 * meant to move between machines of different byte order.
 *
 * Expiry. Like the memory store, a key is live while now − inserted <= ttl
 * (and when the clock steps back). An expired key is answered as absent and
 * overwritten by the next check_and_put or put; nothing purges it, so the
 * file grows with the distinct keys of a run and size() counts expired keys.
 *
 * Capacity (LRU) is not supported: a bound would need an order kept on disk.
 * Scenario validation refuses capacity with this store.
 *
 * Threads. tchdbsetmutex makes every single call safe (TC locks per bucket
 * group). Without a ttl, check_and_put is one tchdbputkeep, atomic on its own.
 * With a ttl it is a get, an expiry test and a put, so writes take our lock;
 * a put takes it too, or a racing check_and_put could overwrite its fresher
 * time. Lookups are one get and never take it.
 *
 * Crashes. The database is opened without TC's write-ahead log; every write
 * lands in the mmap'd file (MAP_SHARED) or goes through pwrite, so it is in
 * the page cache when the call returns: a process that dies without closing
 * loses nothing, and the next open finds every key (TC notices the "opened"
 * flag in the header and skips loading the free-block pool it did not save).
 * A machine crash loses what the kernel had not written back, unless sync:
 * then every insert is followed by tchdbsync (msync + fsync).
 *
 * Opening. A write lock on the file (fcntl, non-blocking: another process
 * holding the file is an error, not a hang) and TC's per-process path lock: a
 * second handle on the same path in this process fails until the first is
 * destroyed. An in-process "crash" is therefore free + new on the same
 * path; free closes cleanly and leaves the file.
 */

/* 2M buckets (TC rounds to a prime): 8 MB of bucket array, about one key per
 * bucket at a typical run's few million keys. Only a new file takes it. */
#define TC_BUCKETS (2ll << 20)
/* Records within the first 256 MB of the file are reached through the map. */
#define TC_XMSIZ (256ll << 20)
#define TC_APOW 4 /* 16-byte record alignment: a 30-byte record takes 32 */
#define TC_FPOW 10

struct tc_store {
	struct dedup_store base;
	TCHDB *hdb;
	pthread_mutex_t lock; /* around get + put when there is a ttl */
	uint64_t ttl_ns;
	bool sync;
	atomic_bool complained; /* the first failing call logs one line, the rest count */
	char path[];
};

static struct tc_store *tc_of(struct dedup_store *base)
{
	return (struct tc_store *)base;
}

/* Logs the first failure of a store (the caller only counts errors); -1. */
static int dedup_tc_fail(struct tc_store *s, const char *what)
{
	if (!atomic_exchange(&s->complained, true))
		log_line("dedup database %s: %s failed: %s (further errors are only counted)", s->path, what,
			 tchdberrmsg(tchdbecode(s->hdb)));
	return -1;
}

static bool dedup_tc_expired(const struct tc_store *s, uint64_t t, uint64_t now_ns)
{
	return s->ttl_ns && now_ns > t && now_ns - t > s->ttl_ns;
}

/* 1 live, 0 absent or expired, -1 error. */
static int dedup_tc_get(struct tc_store *s, uint64_t key, uint64_t now_ns)
{
	uint64_t t;
	int n = tchdbget3(s->hdb, &key, sizeof(key), &t, sizeof(t));

	if (n < 0)
		return tchdbecode(s->hdb) == TCENOREC ? 0 : dedup_tc_fail(s, "get");
	if (n != (int)sizeof(t)) {
		if (!atomic_exchange(&s->complained, true))
			log_line("dedup database %s: a record of %d bytes, not a dupsim dedup database?", s->path,
				 n);
		return -1;
	}
	return !dedup_tc_expired(s, t, now_ns);
}

static int dedup_tc_synced(struct tc_store *s)
{
	if (s->sync && !tchdbsync(s->hdb))
		return dedup_tc_fail(s, "sync");
	return 0;
}

static int dedup_tc_check_and_put(struct dedup_store *base, uint64_t key, uint64_t now_ns)
{
	struct tc_store *s = tc_of(base);
	int r;

	if (!s->ttl_ns) {
		if (tchdbputkeep(s->hdb, &key, sizeof(key), &now_ns, sizeof(now_ns)))
			return dedup_tc_synced(s);
		return tchdbecode(s->hdb) == TCEKEEP ? 1 : dedup_tc_fail(s, "putkeep");
	}
	pthread_mutex_lock(&s->lock);
	r = dedup_tc_get(s, key, now_ns);
	if (r == 0 && !tchdbput(s->hdb, &key, sizeof(key), &now_ns, sizeof(now_ns)))
		r = dedup_tc_fail(s, "put");
	pthread_mutex_unlock(&s->lock);
	if (r == 0)
		r = dedup_tc_synced(s);
	return r;
}

static int dedup_tc_lookup(struct dedup_store *base, uint64_t key, uint64_t now_ns)
{
	return dedup_tc_get(tc_of(base), key, now_ns);
}

static int dedup_tc_put(struct dedup_store *base, uint64_t key, uint64_t now_ns)
{
	struct tc_store *s = tc_of(base);
	bool ok;

	if (s->ttl_ns)
		pthread_mutex_lock(&s->lock);
	ok = tchdbput(s->hdb, &key, sizeof(key), &now_ns, sizeof(now_ns));
	if (s->ttl_ns)
		pthread_mutex_unlock(&s->lock);
	if (!ok)
		return dedup_tc_fail(s, "put");
	return dedup_tc_synced(s);
}

static size_t dedup_tc_size(struct dedup_store *base)
{
	return (size_t)tchdbrnum(tc_of(base)->hdb);
}

static void dedup_tc_free(struct dedup_store *base)
{
	struct tc_store *s = tc_of(base);

	if (!tchdbclose(s->hdb))
		log_line("dedup database %s: close failed: %s", s->path, tchdberrmsg(tchdbecode(s->hdb)));
	tchdbdel(s->hdb);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static const struct dedup_store_ops tc_ops = {
	.name = "tokyocabinet",
	.check_and_put = dedup_tc_check_and_put,
	.lookup = dedup_tc_lookup,
	.put = dedup_tc_put,
	.size = dedup_tc_size,
	.free = dedup_tc_free,
};

/* What a failed open most likely means, beyond TC's own words ("file not
 * found" for a path whose folder exists but takes no files, "open error" for
 * a folder). Into hint, "" when there is nothing to add. */
static void dedup_tc_open_hint(const char *path, int ecode, char *hint, size_t len)
{
	struct stat st;
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];

	hint[0] = '\0';
	switch (ecode) {
	case TCETHREAD:
		snprintf(hint, len, " (already open in this process: free the other store first)");
		return;
	case TCELOCK:
		snprintf(hint, len, " (another process holds it)");
		return;
	case TCEMETA:
	case TCEREAD:
		snprintf(hint, len, " (not a Tokyo Cabinet hash database)");
		return;
	default:
		break;
	}
	if (stat(path, &st) == 0) {
		if (S_ISDIR(st.st_mode))
			snprintf(hint, len, " (a folder, not a file)");
		return;
	}
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
	if (!dir[0])
		snprintf(dir, sizeof(dir), "/");
	if (stat(dir, &st) != 0)
		snprintf(hint, len, " (folder %s does not exist)", dir);
	else if (!S_ISDIR(st.st_mode))
		snprintf(hint, len, " (%s is not a folder)", dir);
	else
		snprintf(hint, len, " (cannot create a file in %s)", dir);
}

struct dedup_store *dedup_tc_new(const char *path, bool sync, uint64_t ttl_ns, char *err, size_t errlen)
{
	size_t plen = strlen(path);
	struct tc_store *s = calloc(1, sizeof(*s) + plen + 1);
	char hint[PATH_MAX + 64];
	int ecode;

	if (!s) {
		log_seterr(err, errlen, "cannot open dedup database %s: out of memory", path);
		return NULL;
	}
	memcpy(s->path, path, plen + 1);
	s->base.ops = &tc_ops;
	s->ttl_ns = ttl_ns;
	s->sync = sync;
	atomic_init(&s->complained, false);
	if (pthread_mutex_init(&s->lock, NULL) != 0) {
		free(s);
		log_seterr(err, errlen, "cannot open dedup database %s: out of memory", path);
		return NULL;
	}
	s->hdb = tchdbnew();
	/* These only fail on an open handle or when threads are unavailable. */
	if (!tchdbsetmutex(s->hdb) || !tchdbtune(s->hdb, TC_BUCKETS, TC_APOW, TC_FPOW, 0) ||
	    !tchdbsetxmsiz(s->hdb, TC_XMSIZ) || !tchdbopen(s->hdb, path, HDBOWRITER | HDBOCREAT | HDBOLCKNB))
		goto fail;
	return &s->base;

fail:
	ecode = tchdbecode(s->hdb);
	dedup_tc_open_hint(path, ecode, hint, sizeof(hint));
	log_seterr(err, errlen, "cannot open dedup database %s: %s%s", path, tchdberrmsg(ecode), hint);
	tchdbdel(s->hdb);
	pthread_mutex_destroy(&s->lock);
	free(s);
	return NULL;
}
