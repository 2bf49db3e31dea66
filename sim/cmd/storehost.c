/* storehost.c — issue 14, hosts.store = own: the dedup store's redis on a test host of its own, behind a link. */
#include "cmd/storehost.h"

#include <hiredis/hiredis.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "hosts/hosts.h"

#define STOREHOST_PINGS 15 /* timed, after STOREHOST_WARMUP untimed (the link thread and redis wake up) */
#define STOREHOST_WARMUP 3

int storehost_new(struct storehost *s, struct hosts *h, const struct scenario *sc, struct node_opts *o, char *err,
		  size_t errlen)
{
	char why[512];

	memset(s, 0, sizeof(*s));
	s->host = -1;
	s->ping_ms = NAN;
	if (sc->hosts.store != SCENARIO_HOSTS_STORE_OWN)
		return 0;
	s->host = hosts_add(h, "store", why, sizeof(why));
	if (s->host < 0)
		return log_seterr(err, errlen, "hosts.store = own: could not make the store's host: %s", why);
	s->hosts = h;
	o->netns = hosts_netns(s->hosts, s->host);
	o->addr = hosts_addr(s->hosts, s->host);
	return 0;
}

static int storehost_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The median of a few PINGs over the link, in ms; NaN when redis can't be reached. */
static double storehost_ping(const char *addr, unsigned port)
{
	struct timeval tv = { 5, 0 };
	redisContext *c = redisConnectWithTimeout(addr, (int)port, tv);
	double t[STOREHOST_PINGS];
	int n = 0;

	if (!c || c->err) {
		redisFree(c);
		return NAN;
	}
	redisSetTimeout(c, tv);
	for (int i = 0; i < STOREHOST_WARMUP; i++)
		freeReplyObject(redisCommand(c, "PING"));
	for (int i = 0; i < STOREHOST_PINGS; i++) {
		uint64_t t0 = clock_now_ns();
		redisReply *r = redisCommand(c, "PING");

		if (!r)
			break;
		freeReplyObject(r);
		t[n++] = (double)(clock_now_ns() - t0) / 1e6;
	}
	redisFree(c);
	if (n == 0)
		return NAN;
	qsort(t, (size_t)n, sizeof(t[0]), storehost_cmp);
	return t[n / 2];
}

int storehost_link(struct storehost *s, const struct scenario *sc, const char *addr, unsigned port, char *err,
		   size_t errlen)
{
	struct hosts_link l = { .delay_ns = sc->hosts.store_rtt_ns / 2, .jitter_ns = sc->hosts.store_jitter_ns,
				.loss = sc->hosts.store_loss };
	char why[512];

	if (!s->hosts)
		return 0;
	if ((l.delay_ns || l.jitter_ns || l.loss > 0) && hosts_set_link(s->hosts, s->host, &l, why, sizeof(why)) < 0)
		return log_seterr(err, errlen, "hosts.store_rtt: could not set the store's link: %s", why);
	s->ping_ms = storehost_ping(addr, port);
	return 0;
}

void storehost_fill(const struct storehost *s, const struct scenario *sc, struct results *res)
{
	if (!s->hosts)
		return;
	snprintf(res->hosts.store, sizeof(res->hosts.store), "own");
	snprintf(res->hosts.store_addr, sizeof(res->hosts.store_addr), "%s", hosts_addr(s->hosts, s->host));
	res->hosts.store_rtt_ms = (double)sc->hosts.store_rtt_ns / 1e6;
	res->hosts.store_jitter_ms = (double)sc->hosts.store_jitter_ns / 1e6;
	res->hosts.store_loss = sc->hosts.store_loss;
	res->hosts.store_ping_ms = s->ping_ms;
}

void storehost_free(struct storehost *s)
{
	s->hosts = NULL; /* the run's: it removes every host */
	s->host = -1;
}
