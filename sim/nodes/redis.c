/* redis.c — the redis kind of node: the binary, its command line, the PING check. */
#include "nodes/redis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

#define NODE_PATH "/usr/bin:/bin"

struct redis {
	struct node n;
	const char *server;
};

static int redis_check(struct node *n, char *err, size_t errlen)
{
	struct redis *r = (struct redis *)n;

	r->server = node_exe("DUPSIM_REDIS_SERVER", "/usr/bin/redis-server");
	if (access(r->server, X_OK) < 0) {
		log_seterr(err, errlen, "cannot run %s: %s (install redis-server, or set DUPSIM_REDIS_SERVER)",
			   r->server, strerror(errno));
		return NODE_EBIN;
	}
	return 0;
}

/* The kind's settings: none for the plain redis_ops. */
static const struct redis_config *redis_cfg(const struct node *n)
{
	static const struct redis_config none = { 0 };

	return n->ops == &redis_ops ? &none : &((const struct redis_kind *)n->ops)->cfg;
}

/* What a redis_kind adds to the command line: no persistence, a memory bound. */
static int redis_configure_extra(struct node *n, const struct redis_config *cfg)
{
	struct strv *a = &n->argv;
	int rc = 0;

	if (cfg->maxmemory) {
		rc |= strv_addf(a, "--maxmemory");
		rc |= strv_addf(a, "%llu", (unsigned long long)cfg->maxmemory);
		rc |= strv_addf(a, "--maxmemory-policy");
		rc |= strv_addf(a, "allkeys-lru");
	}
	return rc;
}

static int redis_configure(struct node *n, char *err, size_t errlen)
{
	struct strv *a = &n->argv, *e = &n->envp;
	const struct redis_config *cfg = redis_cfg(n);
	int rc = 0;

	snprintf(n->url, sizeof(n->url), "redis://%s:%u", n->addr, n->ports[0]);
	/* appendfsync no, not everysec: while a background fsync is slow (a
	 * loaded machine) everysec postpones the writes for up to 2 s and still
	 * replies, and a kill -9 then loses acknowledged keys. With no, every
	 * write reaches the OS before the reply; fsync is left to the OS, as a
	 * machine crash is not what dupsim simulates. */
	rc |= strv_addf(a, "%s", ((struct redis *)n)->server);
	rc |= strv_addf(a, "--port");
	rc |= strv_addf(a, "%u", n->ports[0]);
	rc |= strv_addf(a, "--bind");
	rc |= strv_addf(a, "%s", n->addr);
	/* redis 7 refuses every client not on loopback in protected mode, even with a --bind address:
	 * on a test host the clients come from dupsim's own address */
	rc |= strv_addf(a, "--protected-mode");
	rc |= strv_addf(a, "no");
	rc |= strv_addf(a, "--dir");
	rc |= strv_addf(a, "%s", n->dir);
	rc |= strv_addf(a, "--save");
	rc |= strv_addf(a, "%s", "");
	rc |= strv_addf(a, "--appendonly");
	rc |= strv_addf(a, "%s", cfg->volatile_data ? "no" : "yes");
	rc |= strv_addf(a, "--appendfsync");
	rc |= strv_addf(a, "no");
	rc |= strv_addf(a, "--daemonize");
	rc |= strv_addf(a, "no");
	rc |= strv_addf(a, "--logfile");
	rc |= strv_addf(a, "%s", "");
	rc |= redis_configure_extra(n, cfg);
	rc |= strv_addf(e, "PATH=%s", NODE_PATH);
	rc |= strv_addf(e, "HOME=%s", n->dir);
	rc |= strv_addf(e, "LANG=C.UTF-8");
	rc |= strv_addf(e, "%s", n->marker);
	if (rc) {
		log_seterr(err, errlen, "out of memory");
		return NODE_ESYS;
	}
	return 0;
}

/* True when the server answers PING with PONG (not -LOADING). */
static bool redis_ready(const struct node *n)
{
	struct timeval tv = { 0, 500000 };
	redisContext *c = redisConnectWithTimeout(n->addr, n->ports[0], tv);
	redisReply *r;
	bool ok = false;

	if (!c || c->err)
		goto out;
	redisSetTimeout(c, tv);
	r = redisCommand(c, "PING");
	ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
	freeReplyObject(r);
out:
	redisFree(c);
	return ok;
}

const struct node_ops redis_ops = {
	.title = "redis-server",
	.tag = "-redis",
	.log_name = "redis.log",
	.size = sizeof(struct redis),
	.nports = 1,
	.ready_digits = 2,
	.check = redis_check,
	.configure = redis_configure,
	.ready = redis_ready,
};

void redis_kind_init(struct redis_kind *k, const struct redis_config *cfg)
{
	k->ops = redis_ops;
	k->cfg = *cfg;
}

long long redis_info_number(const struct node *n, const char *name)
{
	struct timeval tv = { 1, 0 };
	redisContext *c = redisConnectWithTimeout(n->addr, n->ports[0], tv);
	redisReply *r = NULL;
	long long v = -1;
	size_t len = strlen(name);

	if (!c || c->err)
		goto out;
	redisSetTimeout(c, tv);
	r = redisCommand(c, "INFO");
	if (!r || r->type != REDIS_REPLY_STRING)
		goto out;
	/* lines "name:value\r\n" */
	for (const char *p = r->str; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (strncmp(p, name, len) == 0 && p[len] == ':') {
			v = strtoll(p + len + 1, NULL, 10);
			break;
		}
out:
	freeReplyObject(r);
	redisFree(c);
	return v;
}
