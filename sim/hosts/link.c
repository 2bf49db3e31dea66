/* link.c — a host link's delay, jitter and loss: one thread per link gives NFQUEUE verdicts on time (libnetfilter_queue). */
#include "hosts/link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libnetfilter_queue/libnetfilter_queue.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/rng.h"

#define QUEUE_MAXLEN 16384	/* packets held per direction before the kernel drops (netem's limit is 1000) */
#define RCVBUF (4u << 20)	/* room for a burst of queued packets' messages the thread hasn't read yet */
#define RECV_BATCH 64		/* messages read before the due packets are looked at again */

enum { DIR_OUT, DIR_IN };

/* A packet the kernel holds for us: its verdict is due at `due`. */
struct held {
	uint64_t due, seq; /* seq: arrival order, so that equal times keep FIFO */
	uint32_t id;
	uint8_t dir;
};

struct link_dir {
	struct link_emu *e;
	struct nfq_q_handle *q;
	int dir;
};

struct link_emu {
	const struct hosts *h;
	int host;
	pthread_t thread;
	int stop_fd; /* eventfd: written once by link_stop */
	pthread_mutex_t mu;
	struct hosts_link cfg; /* under mu: link_set writes it, the thread copies it */
	sem_t ready;	       /* the thread's setup is done, rc and err say how */
	int rc;
	char err[256];
	/* the thread's own */
	struct nfq_handle *nfq;
	struct link_dir d[2];
	struct hosts_link now_cfg;
	uint64_t now, seq;
	struct held *heap;
	size_t n, cap;
	struct rng rng;
	atomic_uint_fast64_t passed, dropped;
};

static bool held_before(const struct held *a, const struct held *b)
{
	return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static int heap_push(struct link_emu *e, struct held x)
{
	size_t i;

	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 256;
		struct held *p = realloc(e->heap, cap * sizeof(*p));

		if (!p)
			return -1;
		e->heap = p;
		e->cap = cap;
	}
	for (i = e->n++; i > 0 && held_before(&x, &e->heap[(i - 1) / 2]); i = (i - 1) / 2)
		e->heap[i] = e->heap[(i - 1) / 2];
	e->heap[i] = x;
	return 0;
}

static struct held heap_pop(struct link_emu *e)
{
	struct held top = e->heap[0], last = e->heap[--e->n];
	size_t i = 0, c;

	while ((c = 2 * i + 1) < e->n) {
		if (c + 1 < e->n && held_before(&e->heap[c + 1], &e->heap[c]))
			c++;
		if (!held_before(&e->heap[c], &last))
			break;
		e->heap[i] = e->heap[c];
		i = c;
	}
	if (e->n)
		e->heap[i] = last;
	return top;
}

static void verdict(struct link_emu *e, int dir, uint32_t id, uint32_t v)
{
	nfq_set_verdict(e->d[dir].q, id, v, 0, NULL);
	atomic_fetch_add_explicit(v == NF_ACCEPT ? &e->passed : &e->dropped, 1, memory_order_relaxed);
}

/* delay +- jitter, uniform, never below 0. */
static uint64_t hold_for(struct link_emu *e)
{
	const struct hosts_link *l = &e->now_cfg;
	double d;

	if (!l->jitter_ns)
		return l->delay_ns;
	d = (double)l->delay_ns + (2 * rng_unit(&e->rng) - 1) * (double)l->jitter_ns;
	return d > 0 ? (uint64_t)d : 0;
}

/* libnetfilter_queue's callback, one per queued packet: drop it now or hold it. */
static int on_packet(struct nfq_q_handle *q, struct nfgenmsg *msg, struct nfq_data *nfa, void *data)
{
	struct link_dir *d = data;
	struct link_emu *e = d->e;
	struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
	struct held x;

	(void)q;
	(void)msg;
	if (!ph)
		return 0;
	x.id = ntohl(ph->packet_id);
	x.dir = (uint8_t)d->dir;
	if (e->now_cfg.loss > 0 && rng_unit(&e->rng) < e->now_cfg.loss) {
		verdict(e, d->dir, x.id, NF_DROP);
		return 0;
	}
	x.due = e->now + hold_for(e);
	x.seq = e->seq++;
	if (heap_push(e, x) < 0)
		verdict(e, d->dir, x.id, NF_ACCEPT); /* out of memory: late is worse than undelayed */
	return 0;
}

static void release_due(struct link_emu *e, uint64_t now)
{
	while (e->n && e->heap[0].due <= now) {
		struct held x = heap_pop(e);

		verdict(e, x.dir, x.id, NF_ACCEPT);
	}
}

static int bind_queue(struct link_emu *e, int dir, uint16_t num)
{
	struct link_dir *d = &e->d[dir];

	d->e = e;
	d->dir = dir;
	d->q = nfq_create_queue(e->nfq, num, on_packet, d);
	if (!d->q)
		return log_seterr(e->err, sizeof(e->err), "cannot bind netfilter queue %u: %s", num, strerror(errno));
	if (nfq_set_mode(d->q, NFQNL_COPY_META, 0) < 0 || nfq_set_queue_maxlen(d->q, QUEUE_MAXLEN) < 0)
		return log_seterr(e->err, sizeof(e->err), "cannot set up netfilter queue %u: %s", num, strerror(errno));
	/* GSO packets whole: we never look inside, so there is nothing to segment them for */
	nfq_set_queue_flags(d->q, NFQA_CFG_F_GSO, NFQA_CFG_F_GSO);
	return 0;
}

/* On the thread: the netlink socket is made in host's namespace, then the thread goes home. */
static int link_open(struct link_emu *e)
{
	int rc = -1;

	if (hosts_enter(e->h, e->host) < 0)
		return log_seterr(e->err, sizeof(e->err), "cannot enter test host %s's namespace: %s",
				  hosts_name(e->h, e->host), strerror(errno));
	e->nfq = nfq_open();
	if (!e->nfq)
		log_seterr(e->err, sizeof(e->err), "cannot open a netfilter queue socket: %s", strerror(errno));
	else if (bind_queue(e, DIR_OUT, LINK_QUEUE_OUT) == 0 && bind_queue(e, DIR_IN, LINK_QUEUE_IN) == 0)
		rc = 0;
	if (hosts_enter(e->h, HOSTS_ROOT) < 0 && rc == 0)
		rc = log_seterr(e->err, sizeof(e->err), "cannot go back to dupsim's namespace: %s", strerror(errno));
	if (rc == 0)
		nfnl_rcvbufsiz(nfq_nfnlh(e->nfq), RCVBUF);
	return rc;
}

static void link_close(struct link_emu *e)
{
	release_due(e, UINT64_MAX);
	for (int dir = DIR_OUT; dir <= DIR_IN; dir++)
		if (e->d[dir].q)
			nfq_destroy_queue(e->d[dir].q);
	if (e->nfq)
		nfq_close(e->nfq);
	free(e->heap);
}

/* Reads what the socket has (up to a batch): each message is one queued packet. */
static void link_read(struct link_emu *e, int fd)
{
	char buf[4096] __attribute__((aligned));

	pthread_mutex_lock(&e->mu);
	e->now_cfg = e->cfg;
	pthread_mutex_unlock(&e->mu);
	for (int k = 0; k < RECV_BATCH; k++) {
		ssize_t got = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (got < 0 && errno == ENOBUFS)
			continue; /* messages lost to a full buffer: their packets were dropped, as a full link does */
		if (got <= 0)
			return;
		e->now = clock_now_ns();
		nfq_handle_packet(e->nfq, buf, (int)got);
	}
}

static void *link_main(void *arg)
{
	struct link_emu *e = arg;
	struct pollfd p[2];

	prctl(PR_SET_TIMERSLACK, 1UL); /* wake on the ns, not 50 us late */
	e->rc = link_open(e);
	sem_post(&e->ready);
	if (e->rc < 0) {
		link_close(e);
		return NULL;
	}
	p[0] = (struct pollfd){ .fd = nfq_fd(e->nfq), .events = POLLIN };
	p[1] = (struct pollfd){ .fd = e->stop_fd, .events = POLLIN };
	for (;;) {
		uint64_t now = clock_now_ns(), wait;
		struct timespec ts;

		release_due(e, now);
		wait = e->n ? e->heap[0].due - now : 0;
		ts = (struct timespec){ (time_t)(wait / NS_PER_S), (long)(wait % NS_PER_S) };
		if (ppoll(p, 2, e->n ? &ts : NULL, NULL) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (p[0].revents)
			link_read(e, p[0].fd);
	}
	link_close(e);
	return NULL;
}

int link_start(struct link_emu **out, const struct hosts *h, int i, const struct hosts_link *l, char *err,
	       size_t errlen)
{
	struct link_emu *e = calloc(1, sizeof(*e));

	*out = NULL;
	if (!e)
		return log_seterr(err, errlen, "out of memory");
	e->h = h;
	e->host = i;
	e->cfg = *l;
	rng_seed(&e->rng, clock_now_ns() ^ ((uint64_t)getpid() << 20) ^ (uint64_t)i);
	pthread_mutex_init(&e->mu, NULL);
	sem_init(&e->ready, 0, 0);
	e->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (e->stop_fd < 0 || pthread_create(&e->thread, NULL, link_main, e) != 0) {
		log_seterr(err, errlen, "cannot start the link thread for test host %s: %s", hosts_name(h, i),
			   strerror(errno));
		goto fail;
	}
	while (sem_wait(&e->ready) < 0 && errno == EINTR)
		;
	if (e->rc < 0) {
		pthread_join(e->thread, NULL);
		log_seterr(err, errlen, "test host %s's link: %s", hosts_name(h, i), e->err);
		goto fail;
	}
	*out = e;
	return 0;
fail:
	if (e->stop_fd >= 0)
		close(e->stop_fd);
	sem_destroy(&e->ready);
	pthread_mutex_destroy(&e->mu);
	free(e);
	return -1;
}

void link_set(struct link_emu *e, const struct hosts_link *l)
{
	pthread_mutex_lock(&e->mu);
	e->cfg = *l;
	pthread_mutex_unlock(&e->mu);
}

void link_counts(struct link_emu *e, uint64_t *passed, uint64_t *dropped)
{
	*passed = atomic_load(&e->passed);
	*dropped = atomic_load(&e->dropped);
}

void link_stop(struct link_emu *e)
{
	uint64_t one = 1;

	if (!e)
		return;
	(void)!write(e->stop_fd, &one, sizeof(one));
	pthread_join(e->thread, NULL);
	close(e->stop_fd);
	sem_destroy(&e->ready);
	pthread_mutex_destroy(&e->mu);
	free(e);
}
