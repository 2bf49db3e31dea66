/* link.h — a host link's delay, jitter and loss: its packets queued to dupsim by NFQUEUE, released on time. */
#ifndef DUPSIM_HOSTS_LINK_H
#define DUPSIM_HOSTS_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "hosts/hosts.h"

/*
 * This kernel has no sch_netem, so a link is emulated one level up: in the
 * host's namespace two iptables rules (hosts.c adds them) queue every IP
 * packet leaving by eth0 (LINK_QUEUE_OUT, host -> hub) and every one coming
 * in by eth0 (LINK_QUEUE_IN, hub -> host) to userspace, and one thread per
 * link receives them (libnetfilter_queue, metadata only: the packet stays in
 * the kernel) and gives each its verdict: NF_DROP with probability loss at
 * once, else NF_ACCEPT when its time comes, delay plus a jitter uniform in
 * [-jitter, +jitter] (netem's default, clamped at 0) after it arrived.
 * Without jitter each direction stays in order, as with netem; with it
 * packets may pass one another. Queue numbers are per namespace, so every
 * host uses the same two.
 */
#define LINK_QUEUE_OUT 7700
#define LINK_QUEUE_IN 7701

struct link_emu;

/*
 * Binds host i's two queues (the thread's netlink socket is made inside the
 * host's namespace) and starts the thread. Packets queued before the rules
 * exist there are none; after link_stop they are released at once. 0, or -1
 * with err.
 */
int link_start(struct link_emu **out, const struct hosts *h, int i, const struct hosts_link *l, char *err,
	       size_t errlen);
/* New settings for the packets that arrive from now on (those held keep their time). */
void link_set(struct link_emu *e, const struct hosts_link *l);
/* Packets passed and dropped so far. */
void link_counts(struct link_emu *e, uint64_t *passed, uint64_t *dropped);
/* Stops the thread, accepting every packet still held, and unbinds the queues. NULL ok. */
void link_stop(struct link_emu *e);

#endif
