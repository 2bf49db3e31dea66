/* link.c — a host link's delay, jitter and loss: one thread per link gives NFQUEUE verdicts on time (libnetfilter_queue). */
#include "hosts/link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libnetfilter_queue/libnetfilter_queue.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/rng.h"

#define QUEUE_MAXLEN 16384	/* packets held per direction before the kernel drops (netem's limit is 1000) */
#define RCVBUF (16u << 20)	/* ~100 ms of a flood the thread, starved of CPU, hasn't read yet */
#define RECV_BATCH 32		/* messages read by one recvmmsg, before the due packets are looked at again */
#define MSG_ROOM 2048		/* one message: the packet's metadata, a few hundred bytes (NFQNL_COPY_META) */
/*
 * A sleeping thread wakes 40-500 us after its timer here (a VM's halted
 * vCPU, more under load), so the thread sleeps till twice its recent
 * lateness before a verdict is due and polls the rest, within a budget of
 * a quarter of a CPU: beyond that (a stream of packets, tiny delays) it
 * sleeps and is late. SPIN_BUDGET_NS=0 at build time: never polls.
 */
#define SPIN_MIN_NS (20 * 1000ull)
#define SPIN_MAX_NS (500 * 1000ull)
#define SPIN_WINDOW_NS (100 * NS_PER_MS)
#ifndef SPIN_BUDGET_NS
#define SPIN_BUDGET_NS (25 * NS_PER_MS)
#endif

enum { DIR_OUT, DIR_IN };

/* A packet the kernel holds for us: its verdict is due at `due`. */
struct held {
	uint64_t due, seq; /* seq: arrival order, so that equal times keep FIFO */
	uint32_t id;
	uint8_t dir;
	bool ordered; /* due no sooner than any packet before it in its direction */
};

/* How the thread waits for the next verdict due (see SPIN_*). */
struct waker {
	uint64_t late;		   /* a moving average of how late a timed sleep wakes */
	uint64_t window, spent;	   /* the budget's window began at `window`; polled so far in it */
	uint64_t last, asked;	   /* the last plan's time, the wake-up that plan's sleep asked for (0: no sleep) */
	bool polling;
};

struct link_dir {
	struct link_emu *e;
	struct nfq_q_handle *q;
	int dir;
	uint64_t max_due;  /* the latest due of a packet held so far */
	size_t unordered;  /* packets held that are not `ordered` (jitter, a shorter new delay) */
};

struct link_emu {
	const struct hosts *h;
	int host;
	pthread_t thread;
	int ctl_fd; /* eventfd: link_set and link_stop wake the thread with it */
	pthread_mutex_t mu;
	pthread_cond_t applied_cond;
	/* under mu: link_set writes cfg and bumps gen, the thread takes it and sets applied = gen */
	struct hosts_link cfg;
	unsigned gen, applied;
	bool stopping;
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
	struct waker w;
	char (*bufs)[MSG_ROOM]; /* RECV_BATCH of them */
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
	x.ordered = x.due >= d->max_due;
	if (heap_push(e, x) < 0) {
		verdict(e, d->dir, x.id, NF_ACCEPT); /* out of memory: late is worse than undelayed */
		return 0;
	}
	if (x.ordered)
		d->max_due = x.due;
	else
		d->unordered++;
	return 0;
}

/*
 * Accepts the packets due by now. While every packet a direction holds is
 * `ordered`, their ids and dues rise together, so those due are the ones
 * with the lowest ids and one batch verdict ("all up to id") takes them.
 */
static void release_due(struct link_emu *e, uint64_t now)
{
	bool batch[2] = { e->d[DIR_OUT].unordered == 0, e->d[DIR_IN].unordered == 0 };
	uint64_t count[2] = { 0, 0 };
	uint32_t last[2] = { 0, 0 };

	while (e->n && e->heap[0].due <= now) {
		struct held x = heap_pop(e);

		if (!x.ordered)
			e->d[x.dir].unordered--;
		if (batch[x.dir]) {
			last[x.dir] = x.id;
			count[x.dir]++;
		} else {
			verdict(e, x.dir, x.id, NF_ACCEPT);
		}
	}
	for (int dir = DIR_OUT; dir <= DIR_IN; dir++) {
		if (!count[dir])
			continue;
		nfq_set_verdict_batch(e->d[dir].q, last[dir], NF_ACCEPT);
		atomic_fetch_add_explicit(&e->passed, count[dir], memory_order_relaxed);
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
	free(e->bufs);
}

/* Reads what the socket has, one batch: each message is one queued packet. How many. */
static int link_read(struct link_emu *e, int fd)
{
	struct mmsghdr m[RECV_BATCH];
	struct iovec iov[RECV_BATCH];
	int got;

	for (int k = 0; k < RECV_BATCH; k++) {
		iov[k] = (struct iovec){ e->bufs[k], MSG_ROOM };
		m[k] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[k], .msg_iovlen = 1 } };
	}
	got = recvmmsg(fd, m, RECV_BATCH, MSG_DONTWAIT, NULL);
	/* ENOBUFS: messages lost to a full buffer; their packets were dropped, as a full link does */
	e->now = clock_now_ns();
	for (int k = 0; k < got; k++)
		nfq_handle_packet(e->nfq, e->bufs[k], (int)m[k].msg_len);
	return got;
}

/*
 * link_set or link_stop woke the thread. New settings apply to the packets
 * queued after link_set was called: those already waiting in the socket
 * are read first, under the old ones (else a burst sent just before a
 * change would take the new delay). false: stop.
 */
static bool link_ctl(struct link_emu *e, int fd)
{
	uint64_t v;
	unsigned gen;

	(void)!read(e->ctl_fd, &v, sizeof(v));
	pthread_mutex_lock(&e->mu);
	gen = e->gen;
	if (e->stopping) {
		pthread_mutex_unlock(&e->mu);
		return false;
	}
	pthread_mutex_unlock(&e->mu);
	for (int k = 0; k < 64 && link_read(e, fd) == RECV_BATCH; k++)
		;
	pthread_mutex_lock(&e->mu);
	e->now_cfg = e->cfg;
	e->applied = gen;
	pthread_cond_broadcast(&e->applied_cond);
	pthread_mutex_unlock(&e->mu);
	return true;
}

/* The next ppoll's timeout in ns (UINT64_MAX: none): a sleep till the poll margin before the first due, or 0. */
static uint64_t waker_plan(struct waker *w, const struct link_emu *e, uint64_t now)
{
	uint64_t left, margin;

	if (w->polling)
		w->spent += now - w->last;
	if (now - w->window >= SPIN_WINDOW_NS) {
		w->window = now;
		w->spent = 0;
	}
	w->last = now;
	w->polling = false;
	w->asked = 0;
	if (!e->n)
		return UINT64_MAX;
	left = e->heap[0].due - now; /* > 0: release_due ran */
	margin = 2 * w->late;
	margin = margin < SPIN_MIN_NS ? SPIN_MIN_NS : margin > SPIN_MAX_NS ? SPIN_MAX_NS : margin;
	if (w->spent >= SPIN_BUDGET_NS)
		margin = 0;
	if (left > margin) {
		w->asked = now + left - margin;
		return left - margin;
	}
	w->polling = true;
	return 0;
}

/* A timed sleep ended by its timer: how late, into the average. */
static void waker_woke(struct waker *w, uint64_t now)
{
	uint64_t late = now > w->asked ? now - w->asked : 0;

	w->late = (7 * w->late + late) / 8;
}

/*
 * netem holds packets in softirq context, ahead of every task; this thread
 * stands in for it, so it runs ahead of them too (the lowest real-time
 * priority): on a machine busy with brokers a plain thread waits 10-100 ms
 * for a CPU. What it spends is bounded by the packets it passes plus its
 * polling budget; the kernel's real-time throttling keeps 5 % for the rest.
 * Without the right to (not root), a high nice level.
 */
static void link_priority(void)
{
	struct sched_param sp = { .sched_priority = 1 };

	if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) != 0)
		setpriority(PRIO_PROCESS, (id_t)gettid(), -10);
}

static void *link_main(void *arg)
{
	struct link_emu *e = arg;
	struct pollfd p[2];

	prctl(PR_SET_TIMERSLACK, 1UL); /* the timer on the ns, not 50 us late */
	link_priority();
	e->bufs = malloc(RECV_BATCH * sizeof(*e->bufs));
	e->rc = e->bufs ? link_open(e) : log_seterr(e->err, sizeof(e->err), "out of memory");
	sem_post(&e->ready);
	if (e->rc < 0) {
		link_close(e);
		return NULL;
	}
	p[0] = (struct pollfd){ .fd = nfq_fd(e->nfq), .events = POLLIN };
	p[1] = (struct pollfd){ .fd = e->ctl_fd, .events = POLLIN };
	e->w.late = 50 * 1000;
	for (;;) {
		uint64_t now = clock_now_ns(), wait;
		struct timespec ts;
		int rc;

		release_due(e, now);
		wait = waker_plan(&e->w, e, now);
		ts = (struct timespec){ (time_t)(wait / NS_PER_S), (long)(wait % NS_PER_S) };
		rc = ppoll(p, 2, wait == UINT64_MAX ? NULL : &ts, NULL);
		if (rc < 0 && errno != EINTR)
			break;
		if (rc == 0 && e->w.asked)
			waker_woke(&e->w, clock_now_ns());
		if (rc > 0 && p[1].revents && !link_ctl(e, p[0].fd))
			break;
		if (rc > 0 && p[0].revents)
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
	e->cfg = e->now_cfg = *l;
	rng_seed(&e->rng, clock_now_ns() ^ ((uint64_t)getpid() << 20) ^ (uint64_t)i);
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->applied_cond, NULL);
	sem_init(&e->ready, 0, 0);
	e->ctl_fd = eventfd(0, EFD_CLOEXEC);
	if (e->ctl_fd < 0 || pthread_create(&e->thread, NULL, link_main, e) != 0) {
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
	if (e->ctl_fd >= 0)
		close(e->ctl_fd);
	sem_destroy(&e->ready);
	pthread_cond_destroy(&e->applied_cond);
	pthread_mutex_destroy(&e->mu);
	free(e);
	return -1;
}

/* Waits for the thread to take them: till then it reads the packets queued before. */
void link_set(struct link_emu *e, const struct hosts_link *l)
{
	uint64_t one = 1;
	unsigned gen;

	pthread_mutex_lock(&e->mu);
	e->cfg = *l;
	gen = ++e->gen;
	pthread_mutex_unlock(&e->mu);
	(void)!write(e->ctl_fd, &one, sizeof(one));
	pthread_mutex_lock(&e->mu);
	while ((int)(e->applied - gen) < 0)
		pthread_cond_wait(&e->applied_cond, &e->mu);
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
	pthread_mutex_lock(&e->mu);
	e->stopping = true;
	pthread_mutex_unlock(&e->mu);
	(void)!write(e->ctl_fd, &one, sizeof(one));
	pthread_join(e->thread, NULL);
	close(e->ctl_fd);
	sem_destroy(&e->ready);
	pthread_cond_destroy(&e->applied_cond);
	pthread_mutex_destroy(&e->mu);
	free(e);
}
