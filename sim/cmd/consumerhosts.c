/* consumerhosts.c — issue 14, hosts.consumers = own: a test host per consumer, its link, and what the proxy saw of it. */
#include "cmd/consumerhosts.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"

/* app_config.netns is this array */
_Static_assert(RESULTS_HOSTS_MAX <= APP_HOSTS_MAX, "an app instance per consumer host");

int consumerhosts_new(struct consumerhosts *ch, struct hosts *h, const struct scenario *sc, char *err,
		      size_t errlen)
{
	bool app = scenario_has_app(sc);
	size_t n = app ? sc->app.instances : sc->consumers.count;
	struct hosts_link l = { .delay_ns = sc->hosts.consumer_rtt_ns / 2, .jitter_ns = sc->hosts.consumer_jitter_ns,
				.loss = sc->hosts.consumer_loss };
	char why[512], name[16];

	memset(ch, 0, sizeof(*ch));
	if (sc->hosts.consumers != SCENARIO_HOSTS_CONSUMERS_OWN)
		return 0;
	if (n > RESULTS_HOSTS_MAX) /* scenario.c refused it */
		return log_seterr(err, errlen, "hosts.consumers = own: at most %d consumers", RESULTS_HOSTS_MAX);
	ch->hosts = h;
	for (size_t i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%s%zu", app ? "app" : "c", i);
		ch->host[i] = hosts_add(h, name, why, sizeof(why));
		if (ch->host[i] < 0)
			return log_seterr(err, errlen, "hosts.consumers = own: could not make host %s: %s", name, why);
		ch->netns[i] = hosts_netns(h, ch->host[i]);
		ch->n = i + 1;
		if ((l.delay_ns || l.jitter_ns || l.loss > 0) && hosts_set_link(h, ch->host[i], &l, why, sizeof(why)) < 0)
			return log_seterr(err, errlen, "hosts.consumer_rtt: could not set host %s's link: %s", name, why);
	}
	return 0;
}

const char *consumerhosts_serve_addr(const struct consumerhosts *ch)
{
	return ch->hosts ? hosts_addr(ch->hosts, HOSTS_ROOT) : NULL;
}

int consumerhosts_enter(const struct consumerhosts *ch, long i)
{
	if (!ch->hosts)
		return 0;
	if (i < 0)
		return hosts_enter(ch->hosts, HOSTS_ROOT);
	return (size_t)i < ch->n ? hosts_enter(ch->hosts, ch->host[i]) : -1;
}

void consumerhosts_fill(const struct consumerhosts *ch, const struct scenario *sc, const struct proxy_stats *px,
			struct results *res)
{
	if (!ch->hosts)
		return;
	snprintf(res->hosts.consumers, sizeof(res->hosts.consumers), "own");
	res->hosts.consumer_rtt_ms = (double)sc->hosts.consumer_rtt_ns / 1e6;
	res->hosts.consumer_jitter_ms = (double)sc->hosts.consumer_jitter_ns / 1e6;
	res->hosts.consumer_loss = sc->hosts.consumer_loss;
	res->hosts.nconsumer_hosts = ch->n;
	for (size_t i = 0; i < ch->n; i++) {
		const char *addr = hosts_addr(ch->hosts, ch->host[i]);

		snprintf(res->hosts.consumer_addr[i], sizeof(res->hosts.consumer_addr[i]), "%s", addr);
		res->hosts.consumer_conns[i] = px ? (double)proxy_conns_from(px, addr) : NAN;
	}
}
