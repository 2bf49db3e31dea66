/* storehost.h — issue 14, hosts.store = own: the dedup store's private redis on a test host of its own, behind a link with delay, jitter and loss. */
#ifndef DUPSIM_CMD_STOREHOST_H
#define DUPSIM_CMD_STOREHOST_H

#include <stdbool.h>
#include <stddef.h>

#include "core/scenario.h"
#include "nodes/node.h"
#include "results/results.h"

/*
 * The run makes the store's host before it starts the redis (storehost_new
 * puts the host's namespace and address into the node's options), sets the
 * link once the redis answers (so its start is not slowed by the delay),
 * and frees the host after the redis is stopped. With hosts.store = local
 * every call does nothing.
 */
struct storehost {
	struct hosts *hosts; /* the run's (not owned); NULL: the store runs on this host */
	int host;	     /* the store's host in hosts */
	double ping_ms;	     /* median PING round trip once the link is set; NaN: not measured */
};

/*
 * hosts.store = own: adds the host "store" to the run's hosts h, and points
 * o->netns and o->addr at it (the strings live as long as h). 0, or -1 with
 * one line in err.
 */
int storehost_new(struct storehost *s, struct hosts *h, const struct scenario *sc, struct node_opts *o, char *err,
		  size_t errlen);
/*
 * Sets the link of the store's host to hosts.store_rtt / 2 each way (with
 * store_jitter and store_loss), then times a few PINGs of the redis at
 * addr:port over it. 0, or -1 with err.
 */
int storehost_link(struct storehost *s, const struct scenario *sc, const char *addr, unsigned port, char *err,
		   size_t errlen);
/* Where the store was: summary.json's hosts object (left unknown with hosts.store = local). */
void storehost_fill(const struct storehost *s, const struct scenario *sc, struct results *res);
/* Forgets the host (the run's hosts_free removes it, after the redis on it is stopped). */
void storehost_free(struct storehost *s);

#endif
