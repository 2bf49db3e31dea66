/* dedup_redis.c — the redis dedup store: one hiredis connection, SET NX PX, pipelined deferred puts. */
#include "dedup/dedup.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/parse.h"

/*
 * Keys are "<prefix>:<decimal key>" holding "1". Stores with the same prefix
 * on the same server share their keys (scope = shared); another prefix is
 * another cache.
 *
 * Time. redis expires keys on its own clock, so the ttl is wall time since
 * the SET (PX, in whole milliseconds, rounded up) and every now_ns argument is
 * ignored: a test cannot step this store's clock.
 *
 * Threads. One store object is one connection and belongs to one thread at a
 * time; give every consumer thread its own object (same prefix to share).
 *
 * Pipelining. put_deferred only appends a SET to hiredis's output buffer and
 * counts the reply it owes; flush (or DEFER_MAX queued SETs) writes the
 * buffer and reads every owed reply. Any other call drains them first, since
 * a reply read for a command belongs to the oldest command still unanswered.
 * A deferred SET that fails (error reply or lost connection) is reported by
 * the next flush.
 *
 * Connection loss. The call that meets it returns -1; the next call
 * reconnects once (so a restarted server is picked up) and returns -1 if that
 * fails too.
 *
 * A hung server (SIGSTOPped, a black hole: faults.store_down). Connecting and
 * every command give up after the timeout (dedup.timeout). A call that failed
 * only after the whole timeout means the server hangs: for one more timeout
 * the store does not try it again and every call fails at once, as a client
 * with a circuit breaker would; otherwise each delivery would wait out the
 * timeout twice (lookup and mark) and a consumer would barely move. Writing to a dead socket raises SIGPIPE: the process must ignore
 * it, as `dupsim run` does.
 */

#define DEFER_MAX 64
#define DEFAULT_TIMEOUT_NS (2 * NS_PER_S)
#define SCAN_COUNT "1000"
#define KEY_DIGITS 20 /* UINT64_MAX in decimal */

struct redis_store {
	struct dedup_store base;
	redisContext *c;   /* NULL or in error: reconnect on the next call */
	uint64_t timeout_ns;	/* connect and command timeout */
	uint64_t hung_until_ns; /* the server hung (a call timed out): fail at once until then */
	char host[256];
	uint16_t port;
	unsigned pending;  /* replies owed for deferred SETs */
	bool deferred_err; /* a deferred SET failed since the last flush */
	bool has_ttl;
	char ttl_ms[24];
	size_t prefix_len;
	char *pattern; /* the prefix with glob characters escaped, then ":*" */
	char *key;     /* prefix ":" then room for the digits */
};

static struct redis_store *redis_of(struct dedup_store *base)
{
	return (struct redis_store *)base;
}

/* Writes the key's name into s->key; returns its length. */
static size_t dedup_redis_key(struct redis_store *s, uint64_t key)
{
	int n = snprintf(s->key + s->prefix_len + 1, KEY_DIGITS + 1, "%" PRIu64, key);

	return s->prefix_len + 1 + (size_t)n;
}

static redisContext *dedup_redis_connect(const char *host, uint16_t port, uint64_t timeout_ns)
{
	struct timeval t = { (time_t)(timeout_ns / NS_PER_S), (suseconds_t)(timeout_ns % NS_PER_S / 1000) };
	redisContext *c = redisConnectWithTimeout(host, port, t);

	if (c && !c->err && redisSetTimeout(c, t) != REDIS_OK && !c->err) {
		/* setsockopt failed without hiredis noting it: treat as a broken connection */
		c->err = REDIS_ERR_IO;
		snprintf(c->errstr, sizeof(c->errstr), "cannot set the command timeout");
	}
	return c;
}

/* A usable connection: reconnects once when there is none or it failed. 0 or -1. */
static int dedup_redis_ready(struct redis_store *s)
{
	if (s->c && !s->c->err)
		return 0;
	if (s->hung_until_ns && clock_now_ns() < s->hung_until_ns)
		return -1; /* still taken as hung: don't wait out another timeout */
	s->hung_until_ns = 0;
	if (s->pending)
		s->deferred_err = true; /* their replies died with the connection */
	s->pending = 0;
	redisFree(s->c);
	s->c = dedup_redis_connect(s->host, s->port, s->timeout_ns);
	return s->c && !s->c->err ? 0 : -1;
}

/* After a call that began at t0 and returned rc: one that failed only after the whole timeout marks the server hung. */
static int dedup_redis_after(struct redis_store *s, uint64_t t0, int rc)
{
	uint64_t now;

	if (rc >= 0 || s->hung_until_ns)
		return rc;
	now = clock_now_ns();
	if (now - t0 >= s->timeout_ns)
		s->hung_until_ns = now + s->timeout_ns;
	return rc;
}

static bool dedup_redis_ok(const redisReply *r)
{
	return r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;
}

/* Reads every owed reply. -1 only when the connection failed (the owed SETs count as failed). */
static int dedup_redis_drain(struct redis_store *s)
{
	while (s->pending) {
		void *r;

		if (redisGetReply(s->c, &r) != REDIS_OK) {
			s->pending = 0;
			s->deferred_err = true;
			return -1;
		}
		s->pending--;
		if (!dedup_redis_ok(r))
			s->deferred_err = true;
		freeReplyObject(r);
	}
	return 0;
}

/* One command and its reply, after the owed ones; NULL when the connection failed. */
static redisReply *dedup_redis_call(struct redis_store *s, int argc, const char **argv, const size_t *lens)
{
	if (dedup_redis_ready(s) < 0 || dedup_redis_drain(s) < 0)
		return NULL;
	return redisCommandArgv(s->c, argc, argv, lens);
}

/* SET key 1 [NX] [PX ttl] as an argv; returns argc. */
static int dedup_redis_set_argv(struct redis_store *s, uint64_t key, bool nx, const char **argv, size_t *lens)
{
	int n = 3;

	argv[0] = "SET";
	argv[1] = s->key;
	argv[2] = "1";
	lens[0] = 3;
	lens[1] = dedup_redis_key(s, key);
	lens[2] = 1;
	if (nx) {
		argv[n] = "NX";
		lens[n++] = 2;
	}
	if (s->has_ttl) {
		argv[n] = "PX";
		lens[n++] = 2;
		argv[n] = s->ttl_ms;
		lens[n++] = strlen(s->ttl_ms);
	}
	return n;
}

static int dedup_redis_check_and_put(struct dedup_store *base, uint64_t key, uint64_t now_ns)
{
	struct redis_store *s = redis_of(base);
	const char *argv[6];
	size_t lens[6];
	int argc = dedup_redis_set_argv(s, key, true, argv, lens);
	uint64_t t0 = clock_now_ns();
	redisReply *r = dedup_redis_call(s, argc, argv, lens);
	int rc = dedup_redis_ok(r) ? 0 : r && r->type == REDIS_REPLY_NIL ? 1 : -1;

	(void)now_ns;
	freeReplyObject(r);
	return dedup_redis_after(s, t0, rc);
}

static int dedup_redis_lookup(struct dedup_store *base, uint64_t key, uint64_t now_ns)
{
	struct redis_store *s = redis_of(base);
	const char *argv[2] = { "EXISTS", s->key };
	size_t lens[2] = { 6, dedup_redis_key(s, key) };
	uint64_t t0 = clock_now_ns();
	redisReply *r = dedup_redis_call(s, 2, argv, lens);
	int rc = r && r->type == REDIS_REPLY_INTEGER ? r->integer > 0 : -1;

	(void)now_ns;
	freeReplyObject(r);
	return dedup_redis_after(s, t0, rc);
}

static int dedup_redis_put(struct dedup_store *base, uint64_t key, uint64_t now_ns)
{
	struct redis_store *s = redis_of(base);
	const char *argv[6];
	size_t lens[6];
	int argc = dedup_redis_set_argv(s, key, false, argv, lens);
	uint64_t t0 = clock_now_ns();
	redisReply *r = dedup_redis_call(s, argc, argv, lens);
	int rc = dedup_redis_ok(r) ? 0 : -1;

	(void)now_ns;
	freeReplyObject(r);
	return dedup_redis_after(s, t0, rc);
}

static int dedup_redis_put_deferred(struct dedup_store *base, uint64_t key, uint64_t now_ns)
{
	struct redis_store *s = redis_of(base);
	const char *argv[6];
	size_t lens[6];
	int argc;

	(void)now_ns;
	if (dedup_redis_ready(s) < 0)
		return -1;
	argc = dedup_redis_set_argv(s, key, false, argv, lens);
	if (redisAppendCommandArgv(s->c, argc, argv, lens) != REDIS_OK)
		return -1;
	/* bounded: the output buffer and the replies owed stay small */
	if (++s->pending >= DEFER_MAX) {
		uint64_t t0 = clock_now_ns();

		return dedup_redis_after(s, t0, dedup_redis_drain(s));
	}
	return 0;
}

static int dedup_redis_flush(struct dedup_store *base)
{
	struct redis_store *s = redis_of(base);
	uint64_t t0 = clock_now_ns();
	int rc = 0;

	if (s->pending && (!s->c || s->c->err || dedup_redis_drain(s) < 0))
		rc = dedup_redis_after(s, t0, -1);
	if (s->deferred_err)
		rc = -1;
	s->pending = 0;
	s->deferred_err = false;
	return rc;
}

/* O(keys on the server): SCAN MATCH prefix:* walks the whole keyspace. 0 when redis can't be asked. */
static size_t dedup_redis_size(struct dedup_store *base)
{
	struct redis_store *s = redis_of(base);
	char cursor[32] = "0";
	size_t n = 0;

	do {
		const char *argv[6] = { "SCAN", cursor, "MATCH", s->pattern, "COUNT", SCAN_COUNT };
		redisReply *r = dedup_redis_call(s, 6, argv, NULL);

		if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len >= sizeof(cursor) ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			freeReplyObject(r);
			return 0;
		}
		memcpy(cursor, r->element[0]->str, r->element[0]->len + 1);
		n += r->element[1]->elements;
		freeReplyObject(r);
	} while (strcmp(cursor, "0") != 0);
	return n;
}

static void redis_store_dispose(struct redis_store *s)
{
	redisFree(s->c);
	free(s->pattern);
	free(s->key);
	free(s);
}

static void dedup_redis_free(struct dedup_store *base)
{
	struct redis_store *s = redis_of(base);

	if (s->pending && s->c && !s->c->err)
		dedup_redis_drain(s); /* a free after put_deferred still delivers the SETs */
	redis_store_dispose(s);
}

/* A crash: the SETs still in hiredis's output buffer never leave the process. */
static void dedup_redis_abandon(struct dedup_store *base)
{
	redis_store_dispose(redis_of(base));
}

static const struct dedup_store_ops dedup_redis_ops = {
	.name = "redis",
	.check_and_put = dedup_redis_check_and_put,
	.lookup = dedup_redis_lookup,
	.put = dedup_redis_put,
	.put_deferred = dedup_redis_put_deferred,
	.flush = dedup_redis_flush,
	.size = dedup_redis_size,
	.free = dedup_redis_free,
	.abandon = dedup_redis_abandon,
};

/* "redis://host:port" and nothing else. 0 or -1. */
static int dedup_redis_parse_url(const char *url, char *host, size_t hostlen, uint16_t *port)
{
	if (!url || strncmp(url, "redis://", 8) != 0 || strchr(url + 8, '/') || strchr(url + 8, '@'))
		return -1;
	return parse_hostport(url + 8, host, hostlen, port, false);
}

/* prefix with the glob characters of SCAN MATCH escaped, then ":*"; NULL when out of memory. */
static char *dedup_redis_pattern(const char *prefix)
{
	char *p = malloc(strlen(prefix) * 2 + 3), *o = p;

	if (!p)
		return NULL;
	for (const char *c = prefix; *c; c++) {
		if (strchr("*?[]\\", *c))
			*o++ = '\\';
		*o++ = *c;
	}
	memcpy(o, ":*", 3);
	return p;
}

struct dedup_store *dedup_redis_new(const char *url, const char *prefix, uint64_t ttl_ns, char *err,
				    size_t errlen)
{
	return dedup_redis_new_timeout(url, prefix, ttl_ns, DEFAULT_TIMEOUT_NS, err, errlen);
}

struct dedup_store *dedup_redis_new_timeout(const char *url, const char *prefix, uint64_t ttl_ns,
					    uint64_t timeout_ns, char *err, size_t errlen)
{
	struct redis_store *s = calloc(1, sizeof(*s));
	redisReply *r = NULL;

	if (!s) {
		log_seterr(err, errlen, "out of memory");
		return NULL;
	}
	s->base.ops = &dedup_redis_ops;
	s->timeout_ns = timeout_ns ? timeout_ns : DEFAULT_TIMEOUT_NS;
	if (dedup_redis_parse_url(url, s->host, sizeof(s->host), &s->port) < 0) {
		log_seterr(err, errlen, "'%s' is not a redis URL; expected redis://host:port", url ? url : "(none)");
		goto fail;
	}
	if (!prefix) {
		log_seterr(err, errlen, "the redis store needs a key prefix");
		goto fail;
	}
	s->has_ttl = ttl_ns > 0;
	snprintf(s->ttl_ms, sizeof(s->ttl_ms), "%" PRIu64, (uint64_t)(ttl_ns / NS_PER_MS + (ttl_ns % NS_PER_MS != 0)));
	s->prefix_len = strlen(prefix);
	s->key = malloc(s->prefix_len + 1 + KEY_DIGITS + 1);
	s->pattern = dedup_redis_pattern(prefix);
	if (!s->key || !s->pattern) {
		log_seterr(err, errlen, "out of memory");
		goto fail;
	}
	memcpy(s->key, prefix, s->prefix_len);
	s->key[s->prefix_len] = ':';

	s->c = dedup_redis_connect(s->host, s->port, s->timeout_ns);
	if (!s->c || s->c->err) {
		log_seterr(err, errlen, "cannot reach redis at %s:%u: %s", s->host, s->port,
			 s->c ? s->c->errstr : "out of memory");
		goto fail;
	}
	/* connected is not enough: something else may listen there, or redis may still be loading */
	r = redisCommand(s->c, "PING");
	if (!r || r->type != REDIS_REPLY_STATUS || strcmp(r->str, "PONG") != 0) {
		log_seterr(err, errlen, "cannot reach redis at %s:%u: %s", s->host, s->port,
			 !r ? s->c->errstr
			 : r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STATUS ? r->str
											 : "unexpected reply to PING");
		goto fail;
	}
	freeReplyObject(r);
	return &s->base;
fail:
	freeReplyObject(r);
	redis_store_dispose(s);
	return NULL;
}
