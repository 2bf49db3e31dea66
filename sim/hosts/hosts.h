/* hosts.h — test hosts: network namespaces on one hub bridge, a veth link each, delay and loss per link, partitions; root only. */
#ifndef DUPSIM_HOSTS_HOSTS_H
#define DUPSIM_HOSTS_HOSTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A run's hosts: a hub namespace holding a bridge, dupsim's own namespace
 * (the root one, where the proxy, the publishers and the ledger live) linked
 * to it by one veth pair, and each host a namespace of its own, linked to the
 * hub by another. Everything is named after this process: the namespaces
 * dupsim-PID-NAME, the root's veth end dsvPID. Addresses come from one /24
 * of 10.77.0.0/16 that no interface of the root namespace uses: the root's
 * end is .1, host i is .(10 + i). Nothing outside these is touched: a
 * partition is a blackhole route inside the hosts' own namespaces, a link's
 * delay, jitter and loss two NFQUEUE rules in the host's namespace and a
 * dupsim thread that holds its packets (link.h: this kernel has no netem).
 *
 * Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN), iproute2's ip and
 * iptables-legacy (DUPSIM_IP, DUPSIM_IPTABLES name others). Not thread-safe:
 * one thread drives it.
 */
#define HOSTS_MAX 16
#define HOSTS_ROOT (-1) /* dupsim's own end, for hosts_cut */

struct hosts;

/* What each direction of a link does to an IP packet (both directions alike). */
struct hosts_link {
	uint64_t delay_ns;  /* one way; a round trip over the link costs twice this */
	uint64_t jitter_ns; /* each packet's delay uniform in delay +- jitter (then it may overtake) */
	double loss;	    /* probability a packet is lost, 0..1, each direction */
};

/* 0 when this process can make hosts; else -1 with one line naming what needs root and why. */
int hosts_check(const char *what, char *err, size_t errlen);
/* The hub and the root's link. 0, or -1 with err (every part made so far removed). */
int hosts_new(struct hosts **out, char *err, size_t errlen);
/* A new host called name (letters, digits, '-'; at most 12): its index, or -1 with err. */
int hosts_add(struct hosts *h, const char *name, char *err, size_t errlen);
size_t hosts_count(const struct hosts *h);
/* The namespace's name (dupsim-PID-NAME), for DUPSIM_NETNS and `ip netns exec`. */
const char *hosts_netns(const struct hosts *h, int i);
/* Host i's address ("10.77.K.N"); HOSTS_ROOT: dupsim's own end. */
const char *hosts_addr(const struct hosts *h, int i);
const char *hosts_name(const struct hosts *h, int i);
/*
 * Delay, jitter and loss on host i's link, both directions alike (NULL or all
 * zero: none, and its thread stops); a change applies to the packets sent
 * after it. 0, or -1 with err.
 */
int hosts_set_link(struct hosts *h, int i, const struct hosts_link *l, char *err, size_t errlen);
/* Cuts (or heals) the path between hosts a and b, both ways; neither may be HOSTS_ROOT. 0, or -1 with err. */
int hosts_cut(struct hosts *h, int a, int b, bool cut, char *err, size_t errlen);
/* Puts the calling thread on host i (its new sockets are there); HOSTS_ROOT: back home. 0 or -1 (errno). */
int hosts_enter(const struct hosts *h, int i);
/* Stops the links' threads and removes every namespace and link it made. NULL ok. */
void hosts_free(struct hosts *h);
/* Removes the namespaces left by dupsim processes that are gone (a SIGKILLed run). Quiet; root only. */
void hosts_sweep(void);

#endif
