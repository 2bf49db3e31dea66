/* consumerhosts.h — issue 14, hosts.consumers = own: each consumer thread, or each app instance, on a test host of its own behind a link. */
#ifndef DUPSIM_CMD_CONSUMERHOSTS_H
#define DUPSIM_CMD_CONSUMERHOSTS_H

#include <stddef.h>

#include "core/scenario.h"
#include "hosts/hosts.h"
#include "proxy/proxy.h"
#include "results/results.h"
#include "workload/app.h"

/*
 * One test host per consumer: "c0", "c1"… for dupsim's consumer threads,
 * "app0"… for the app's instances, each behind a link of
 * hosts.consumer_rtt / 2 each way (with consumer_jitter and consumer_loss).
 * Their traffic to the broker (through the proxy) and to the dedup store
 * both cross it, so the proxy and the store listen on dupsim's own end of
 * the hub (hosts_addr(HOSTS_ROOT)) instead of loopback.
 *
 * dupsim's consumers are threads of this process, each on its host's
 * network namespace (a thread created on a host stays there, sockets and
 * reconnects included): the ledger that classifies every miss is in this
 * process, and on the network a thread on a namespace is a host like any
 * other. The app's instances are processes, started on their hosts.
 */
struct consumerhosts {
	struct hosts *hosts; /* the run's; NULL with hosts.consumers = local */
	int host[RESULTS_HOSTS_MAX];
	const char *netns[RESULTS_HOSTS_MAX]; /* host[i]'s namespace: app instance i's DUPSIM_NETNS */
	size_t n;
};

/*
 * With hosts.consumers = own, adds a host per consumer (or app instance) to
 * h and sets its link. 0 (nothing done with local), or -1 with one line in
 * err.
 */
int consumerhosts_new(struct consumerhosts *ch, struct hosts *h, const struct scenario *sc, char *err,
		      size_t errlen);
/* Where servers the consumers reach must listen: dupsim's end of the hub, or NULL (loopback). */
const char *consumerhosts_serve_addr(const struct consumerhosts *ch);
/* Puts the calling thread on consumer i's host (HOSTS_ROOT-like -1: back home); 0 with local. 0 or -1 (errno). */
int consumerhosts_enter(const struct consumerhosts *ch, long i);
/* summary.json's hosts object: the links and the connections the proxy took from each host. */
void consumerhosts_fill(const struct consumerhosts *ch, const struct scenario *sc, const struct proxy_stats *px,
			struct results *res);

#endif
