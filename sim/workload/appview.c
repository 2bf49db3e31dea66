/* appview.c — the ledger of the user's own app: deliveries and settles from the proxy's tap, executions from its effects files. */
#include "workload/appview.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "nodes/proc.h"
#include "workload/mq.h"

#define LIMBO_NS (10 * NS_PER_S) /* longest a cut connection's unsettled deliveries wait for their instance */
#define NO_MSG UINT32_MAX	 /* a delivery whose id is not this run's: settled, never judged */

/* A delivery to the app not settled yet. */
struct avdel {
	uint64_t tag;
	uint64_t t_ns;	       /* when it reached the app: its decision time */
	uint64_t published_ns; /* x-published-ns on the run clock, 0 unknown */
	events_id charge;      /* what ledger_note_delivery returned */
	uint32_t m;
};

struct avchan {
	uint16_t ch;
	struct avdel *d;
	size_t n, cap;
};

struct avconn {
	uint64_t id;
	int inst;	   /* -1: no owner found */
	pid_t pid;	   /* the owner process */
	uint64_t open_ns;
	events_id session;
	struct avchan *ch;
	size_t nch;
};

/* An unsettled delivery of a cut connection whose instance may still be working on it. */
struct avlimbo {
	struct avdel d;
	int inst;
	pid_t pid;
	uint64_t since_ns;
};

/* Instance i's effects file, read as it grows. */
struct aveff {
	char path[PATH_MAX];
	int fd;
	char part[256]; /* the start of a line not ended yet */
	size_t plen;
	bool overlong;	/* the line being read is longer than part: its id was taken already */
};

/* Effects of message m by one instance, and how many of them deliveries have explained. */
struct avcount {
	uint64_t key; /* (instance + 1) << 40 | m; 0 = empty */
	uint32_t effects, used;
};

struct avinst {
	uint64_t killed_ns; /* dupsim's latest kill -9 of it; 0 none */
	uint32_t sessions;
};

struct appview {
	struct appview_config cfg;
	pthread_mutex_t lock;
	struct avconn *conns;
	size_t nconns, capconns;
	struct avlimbo *limbo;
	size_t nlimbo, caplimbo;
	struct avlimbo *gone; /* judged abandoned lately: an effect that comes late is theirs */
	size_t ngone, capgone;
	struct aveff *eff;
	struct avinst *inst;
	struct avcount *h;
	size_t hcap, hn;
	events_id *alt;	/* per message: the latest nonzero charge of a delivery of it (see charge_of) */
	struct appview_totals t;
};

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
	size_t c;
	void *q;

	if (n < *cap)
		return 0;
	c = *cap ? 2 * *cap : 8;
	if (!(q = realloc(*p, c * size)))
		return -1;
	*p = q;
	*cap = c;
	return 0;
}

/* ---- effects ---------------------------------------------------------- */

static uint64_t count_hash(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	return k ^ (k >> 33);
}

/* The count of (inst, m), made when missing and make; NULL when absent (or out of memory). */
static struct avcount *count_at(struct appview *v, int inst, uint32_t m, bool make)
{
	uint64_t key = ((uint64_t)(inst + 1) << 40) | m;
	size_t i;

	if (make && (v->hn + 1) * 2 > v->hcap) {
		size_t cap = v->hcap ? 2 * v->hcap : 1024;
		struct avcount *n = calloc(cap, sizeof(*n));

		if (!n)
			return NULL;
		for (size_t j = 0; j < v->hcap; j++) {
			if (!v->h[j].key)
				continue;
			for (i = count_hash(v->h[j].key) & (cap - 1); n[i].key; i = (i + 1) & (cap - 1))
				;
			n[i] = v->h[j];
		}
		free(v->h);
		v->h = n;
		v->hcap = cap;
	}
	if (!v->hcap)
		return NULL;
	for (i = count_hash(key) & (v->hcap - 1); v->h[i].key; i = (i + 1) & (v->hcap - 1))
		if (v->h[i].key == key)
			return &v->h[i];
	if (!make)
		return NULL;
	v->hn++;
	v->h[i].key = key;
	return &v->h[i];
}

/* One effects line of instance i (len bytes so far; its id is at the start). */
static void effect_line(struct appview *v, unsigned i, const char *line, size_t len)
{
	struct avcount *c;
	size_t digits = 0, m;

	while (digits < len && line[digits] >= '0' && line[digits] <= '9')
		digits++;
	v->t.effect_lines++;
	if (msgid_parse(&v->cfg.ids, line, digits, &m) < 0) {
		v->t.effects_foreign++;
		return;
	}
	if ((c = count_at(v, (int)i, (uint32_t)m, true)))
		c->effects++;
}

/* Reads instance i's effects file to its end. */
static void effects_read(struct appview *v, unsigned i)
{
	struct aveff *e = &v->eff[i];
	char buf[8192];
	ssize_t n;

	if (e->fd < 0 && (e->fd = open(e->path, O_RDONLY | O_CLOEXEC)) < 0)
		return; /* removed by the app: nothing to read */
	while ((n = read(e->fd, buf, sizeof(buf))) > 0) {
		for (ssize_t k = 0; k < n; k++) {
			if (buf[k] == '\n') {
				if (!e->overlong || e->plen)
					effect_line(v, i, e->part, e->plen);
				e->plen = 0;
				e->overlong = false;
			} else if (e->plen < sizeof(e->part)) {
				e->part[e->plen++] = buf[k];
			} else if (!e->overlong) { /* the id is in part already: count the line now */
				effect_line(v, i, e->part, e->plen);
				e->overlong = true;
				e->plen = 0;
			}
		}
	}
}

/* Takes one unexplained effect of m by instance inst (any instance when -1); true when there was one. */
static bool effect_take(struct appview *v, int inst, uint32_t m)
{
	struct avcount *c;

	if (inst >= 0) {
		c = count_at(v, inst, m, false);
		if (!c || c->effects <= c->used)
			return false;
		c->used++;
		return true;
	}
	for (unsigned i = 0; i < v->cfg.instances; i++)
		if (effect_take(v, (int)i, m))
			return true;
	return false;
}

static void effects_read_for(struct appview *v, int inst)
{
	if (inst >= 0) {
		effects_read(v, (unsigned)inst);
		return;
	}
	for (unsigned i = 0; i < v->cfg.instances; i++)
		effects_read(v, i);
}

/* ---- judging a delivery ----------------------------------------------- */

static void limbo_judge_message(struct appview *v, uint32_t m, int inst);
static bool pending_at(const struct appview *v, int inst, uint32_t m);

/*
 * The fault event d is charged to, should it be a duplicate. A first copy's
 * first delivery has none (nothing made it); with the app it may still be
 * judged after another delivery of its message (decisions are made at the
 * settle, not at the delivery), and then it is the duplicate the fault that
 * made the other delivery caused.
 */
static events_id charge_of(const struct appview *v, const struct avdel *d)
{
	return d->charge ? d->charge : v->alt[d->m];
}

/* Delivery d of instance inst was executed: decided, accepted, done. */
static void judge_executed(struct appview *v, int inst, const struct avdel *d)
{
	struct ledger *l = v->cfg.ledger;
	unsigned who = inst < 0 ? UINT16_MAX : (unsigned)inst;
	events_id charge = charge_of(v, d);
	unsigned seen = ledger_note_decision(l, d->m, d->t_ns, charge);
	unsigned acc = ledger_note_accept(l, d->m, who, d->t_ns, seen);

	ledger_note_executed(l, d->m, who, clock_now_ns(), d->published_ns, acc, true, charge);
	atomic_fetch_add(&v->cfg.w->executions, 1);
	if (seen)
		atomic_fetch_add(&v->cfg.w->duplicate_deliveries, 1);
}

/*
 * Delivery d of instance inst is over: settled by an ack (acked), or lost
 * unsettled. Its fate goes into the ledger (appview.h). may_take: an effect
 * line of m may be its own (false for an unsettled one while a later
 * delivery of m to the same instance may have written it).
 */
static void judge(struct appview *v, int inst, const struct avdel *d, bool acked, bool may_take)
{
	struct ledger *l = v->cfg.ledger;

	if (d->m == NO_MSG)
		return;
	limbo_judge_message(v, d->m, inst); /* an earlier delivery of m, still in limbo, goes first */
	effects_read_for(v, inst);
	if (may_take && effect_take(v, inst, d->m)) {
		judge_executed(v, inst, d);
	} else if (acked) {
		if (ledger_note_decision(l, d->m, d->t_ns, charge_of(v, d)))
			atomic_fetch_add(&v->cfg.w->duplicate_deliveries, 1);
		ledger_note_rejected(l, d->m);
	} else { /* no decision: as a crash before the side effect; kept a while for a late effect */
		v->t.abandoned++;
		if (grow((void **)&v->gone, &v->capgone, v->ngone, sizeof(*v->gone)) == 0)
			v->gone[v->ngone++] = (struct avlimbo){ .d = *d, .inst = inst, .since_ns = clock_now_ns() };
	}
}

/* True when a live connection of instance inst holds a delivery of m not settled yet. */
static bool pending_at(const struct appview *v, int inst, uint32_t m)
{
	for (size_t i = 0; i < v->nconns; i++) {
		const struct avconn *c = &v->conns[i];

		if (c->inst != inst)
			continue;
		for (size_t k = 0; k < c->nch; k++)
			for (size_t j = 0; j < c->ch[k].n; j++)
				if (c->ch[k].d[j].m == m)
					return true;
	}
	return false;
}

/*
 * An abandoned delivery whose instance wrote its effect after all (it was
 * mid-work when its connection was cut): executed, late; unless a delivery
 * of m the instance still holds can explain that effect. Entries older than
 * keep_ns are forgotten (keep_ns 0: none).
 */
static void gone_recheck(struct appview *v, uint64_t now, uint64_t keep_ns)
{
	for (size_t i = 0; i < v->ngone;) {
		struct avlimbo *g = &v->gone[i];

		effects_read_for(v, g->inst);
		if (!pending_at(v, g->inst, g->d.m) && effect_take(v, g->inst, g->d.m)) {
			v->t.abandoned--;
			v->t.judged_late++;
			judge_executed(v, g->inst, &g->d);
		} else if (keep_ns && now - g->since_ns <= keep_ns) {
			i++;
			continue;
		}
		*g = v->gone[--v->ngone];
	}
}

/* Judges limbo entry i; an effect line of its message is its own only when may_take (see judge). */
static void limbo_take(struct appview *v, size_t i, bool may_take)
{
	struct avlimbo z = v->limbo[i];

	memmove(&v->limbo[i], &v->limbo[i + 1], (v->nlimbo - i - 1) * sizeof(z));
	v->nlimbo--;
	v->t.judged_late++;
	judge(v, z.inst, &z.d, false, may_take && !pending_at(v, z.inst, z.d.m));
}

/*
 * Before a delivery of m to instance inst is judged: the deliveries of m in
 * limbo go first. One of the same instance leaves the effect lines to the
 * later delivery (the instance moved on to it); a late effect beyond those
 * still finds it (gone_recheck).
 */
static void limbo_judge_message(struct appview *v, uint32_t m, int inst)
{
	for (size_t i = 0; i < v->nlimbo;)
		if (v->limbo[i].d.m == m)
			limbo_take(v, i, v->limbo[i].inst != inst);
		else
			i++;
}

/* An unsettled delivery of a connection that ended: judged now when its owner is gone, else later. */
static void lost_unsettled(struct appview *v, const struct avconn *c, const struct avdel *d, uint64_t now, bool alive)
{
	if (d->m == NO_MSG)
		return;
	if (alive &&
	    grow((void **)&v->limbo, &v->caplimbo, v->nlimbo, sizeof(*v->limbo)) == 0) {
		v->limbo[v->nlimbo++] = (struct avlimbo){ .d = *d, .inst = c->inst, .pid = c->pid, .since_ns = now };
		return;
	}
	judge(v, c->inst, d, false, true);
}

/* ---- the tap ---------------------------------------------------------- */

static struct avconn *conn_find(struct appview *v, uint64_t id)
{
	for (size_t i = 0; i < v->nconns; i++)
		if (v->conns[i].id == id)
			return &v->conns[i];
	return NULL;
}

static struct avchan *chan_find(struct avconn *c, uint16_t ch, bool make)
{
	struct avchan *n;

	for (size_t i = 0; i < c->nch; i++)
		if (c->ch[i].ch == ch)
			return &c->ch[i];
	if (!make || !(n = realloc(c->ch, (c->nch + 1) * sizeof(*n))))
		return NULL;
	c->ch = n;
	c->ch[c->nch] = (struct avchan){ .ch = ch };
	return &c->ch[c->nch++];
}

static void tap_open(void *arg, uint64_t conn_id, uint16_t port)
{
	struct appview *v = arg;
	pid_t pid = 0;
	int inst = v->cfg.owner ? v->cfg.owner(v->cfg.owner_arg, port, &pid) : -1;

	if (inst == -2) /* dupsim's own publisher: its sessions are its own */
		return;
	pthread_mutex_lock(&v->lock);
	v->t.conns++;
	if (inst < 0 || (unsigned)inst >= v->cfg.instances) {
		inst = -1;
		v->t.conns_unmapped++;
	}
	if (grow((void **)&v->conns, &v->capconns, v->nconns, sizeof(*v->conns)) == 0) {
		struct avconn *c = &v->conns[v->nconns++];
		uint32_t n = inst >= 0 ? ++v->inst[inst].sessions : 0;

		*c = (struct avconn){ .id = conn_id, .inst = inst, .pid = pid, .open_ns = clock_now_ns() };
		c->session = events_open(v->cfg.events, EVENTS_CONSUMER, inst >= 0 ? (unsigned)inst : UINT16_MAX, n,
					 port);
	}
	/* an instance that connects again is done with what its last connection left unsettled */
	for (size_t i = 0; inst >= 0 && i < v->nlimbo;)
		if (v->limbo[i].inst == inst)
			limbo_take(v, i, true);
		else
			i++;
	pthread_mutex_unlock(&v->lock);
}

static void tap_delivery(void *arg, const struct proxy_delivery *d)
{
	struct appview *v = arg;
	struct workload *w = v->cfg.w;
	struct avdel del = { .tag = d->delivery_tag, .t_ns = d->time_ns, .m = NO_MSG };
	const amqp_basic_properties_t *p = d->props;
	struct avconn *c;
	struct avchan *ch;
	size_t m;

	pthread_mutex_lock(&v->lock);
	if (!(c = conn_find(v, d->conn_id)))
		goto out; /* not the app's */
	v->t.deliveries++;
	v->t.redelivered += d->redelivered;
	atomic_fetch_add(&w->deliveries, 1);
	atomic_store(&w->last_delivery_ns, d->time_ns);
	if (!(ch = chan_find(c, d->channel, true)) || grow((void **)&ch->d, &ch->cap, ch->n, sizeof(*ch->d)) < 0)
		goto out; /* out of memory: this delivery goes unjudged (the ledger's check will say so) */
	if (p && (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) &&
	    msgid_parse(&v->cfg.ids, p->message_id.bytes, p->message_id.len, &m) == 0) {
		int64_t copy = mq_header_int(p, "x-republish-count", 0);
		int64_t published = mq_header_int(p, "x-published-ns", -1);

		del.m = (uint32_t)m;
		del.published_ns = published >= 0 ? v->cfg.ledger->t0_ns + (uint64_t)published : 0;
		del.charge = ledger_note_delivery(v->cfg.ledger, m, copy < 0 ? 0 : (unsigned)copy, c->session,
						  (events_id)mq_header_int(p, "x-dupsim-event", 0));
		if (del.charge)
			v->alt[m] = del.charge;
	} else {
		v->t.foreign++;
		ledger_note_foreign(v->cfg.ledger);
	}
	ch->d[ch->n++] = del;
out:
	pthread_mutex_unlock(&v->lock);
}

/* Does a settle of (tag, multiple) cover delivery tag t? */
static bool covers(const struct proxy_settle *s, uint64_t t)
{
	if (s->kind == PROXY_SETTLE_CHANNEL)
		return true;
	return s->multiple ? s->delivery_tag == 0 || t <= s->delivery_tag : t == s->delivery_tag;
}

static void tap_settle(void *arg, const struct proxy_settle *s)
{
	struct appview *v = arg;
	struct avconn *c;
	struct avchan *ch;
	size_t kept = 0;
	bool alive = true;

	pthread_mutex_lock(&v->lock);
	if (!(c = conn_find(v, s->conn_id)))
		goto out;
	if (s->kind == PROXY_SETTLE_ACK)
		v->t.acks++;
	else if (s->kind == PROXY_SETTLE_NACK)
		v->t.nacks++;
	if (!(ch = chan_find(c, s->channel, false)))
		goto out;
	if (s->kind == PROXY_SETTLE_CHANNEL)
		alive = c->pid > 0 && proc_alive(c->pid);
	for (size_t i = 0; i < ch->n; i++) {
		if (!covers(s, ch->d[i].tag))
			ch->d[kept++] = ch->d[i];
		else if (s->kind == PROXY_SETTLE_CHANNEL) /* given back unsettled: the app may still be on it */
			lost_unsettled(v, c, &ch->d[i], s->time_ns, alive);
		else /* a nack or reject: the app is done with it, whatever it did */
			judge(v, c->inst, &ch->d[i], s->kind == PROXY_SETTLE_ACK, true);
	}
	ch->n = kept;
out:
	pthread_mutex_unlock(&v->lock);
}

/* How the session of a connection that ended ended, unless a rule or a crash said so first. */
static enum events_kind conn_end_kind(const struct appview *v, const struct avconn *c, bool alive)
{
	if (c->inst < 0 || alive)
		return EVENTS_CONNECTION_LOST;
	return v->inst[c->inst].killed_ns >= c->open_ns ? EVENTS_APP_CRASH : EVENTS_APP_EXIT;
}

static void tap_close(void *arg, uint64_t conn_id)
{
	struct appview *v = arg;
	uint64_t now = clock_now_ns();
	struct avconn *c;

	pthread_mutex_lock(&v->lock);
	if ((c = conn_find(v, conn_id))) {
		bool alive = c->pid > 0 && proc_alive(c->pid);

		for (size_t i = 0; i < c->nch; i++) {
			for (size_t k = 0; k < c->ch[i].n; k++)
				lost_unsettled(v, c, &c->ch[i].d[k], now, alive);
			free(c->ch[i].d);
		}
		free(c->ch);
		events_close(v->cfg.events, c->session, conn_end_kind(v, c, alive), now);
		*c = v->conns[--v->nconns];
	}
	pthread_mutex_unlock(&v->lock);
}

struct proxy_tap appview_tap(struct appview *v)
{
	return (struct proxy_tap){ .conn_open = tap_open, .delivery = tap_delivery, .settle = tap_settle,
				   .conn_close = tap_close, .arg = v };
}

/* ---- the run's side --------------------------------------------------- */

int appview_new(struct appview **out, const struct appview_config *cfg, char *err, size_t errlen)
{
	struct appview *v = calloc(1, sizeof(*v));

	*out = NULL;
	if (!v || !(v->eff = calloc(cfg->instances, sizeof(*v->eff))) ||
	    !(v->inst = calloc(cfg->instances, sizeof(*v->inst))) ||
	    !(v->alt = calloc(cfg->ids.messages ? cfg->ids.messages : 1, sizeof(*v->alt)))) {
		if (v) {
			free(v->eff);
			free(v->inst);
		}
		free(v);
		return log_seterr(err, errlen, "out of memory");
	}
	v->cfg = *cfg;
	pthread_mutex_init(&v->lock, NULL);
	for (unsigned i = 0; i < cfg->instances; i++)
		v->eff[i].fd = -1;
	for (unsigned i = 0; i < cfg->instances; i++) {
		struct aveff *e = &v->eff[i];
		int fd;

		snprintf(e->path, sizeof(e->path), "%s/effects-%u.txt", cfg->dir, i);
		if ((fd = open(e->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
			log_seterr(err, errlen, "cannot create the app's effects file %s: %s", e->path, strerror(errno));
			appview_free(v);
			return -1;
		}
		close(fd);
		e->fd = open(e->path, O_RDONLY | O_CLOEXEC);
	}
	*out = v;
	return 0;
}

const char *appview_effects_path(const struct appview *v, unsigned i)
{
	return v->eff[i].path;
}

void appview_note_killing(struct appview *v, unsigned i, uint64_t now_ns)
{
	pthread_mutex_lock(&v->lock);
	if (i < v->cfg.instances)
		v->inst[i].killed_ns = now_ns;
	pthread_mutex_unlock(&v->lock);
}

size_t appview_unsettled(struct appview *v)
{
	size_t n = 0;

	pthread_mutex_lock(&v->lock);
	for (size_t i = 0; i < v->nconns; i++)
		for (size_t k = 0; k < v->conns[i].nch; k++)
			n += v->conns[i].ch[k].n;
	pthread_mutex_unlock(&v->lock);
	return n;
}

void appview_poll(struct appview *v, uint64_t now_ns)
{
	pthread_mutex_lock(&v->lock);
	for (size_t i = 0; i < v->nlimbo;)
		if (now_ns - v->limbo[i].since_ns > LIMBO_NS || !proc_alive(v->limbo[i].pid))
			limbo_take(v, i, true);
		else
			i++;
	gone_recheck(v, now_ns, LIMBO_NS);
	pthread_mutex_unlock(&v->lock);
}

void appview_finish(struct appview *v, struct appview_totals *t)
{
	uint64_t deadline = clock_now_ns() + 2 * NS_PER_S;

	pthread_mutex_lock(&v->lock);
	while (v->nconns > 0 && clock_now_ns() < deadline) { /* the proxy is still reading their ends */
		pthread_mutex_unlock(&v->lock);
		clock_sleep_ns(10 * NS_PER_MS);
		pthread_mutex_lock(&v->lock);
	}
	while (v->nconns > 0) { /* the proxy saw them all end, unless it was stopped first */
		pthread_mutex_unlock(&v->lock);
		tap_close(v, v->conns[0].id);
		pthread_mutex_lock(&v->lock);
	}
	while (v->nlimbo > 0)
		limbo_take(v, 0, true);
	for (unsigned i = 0; i < v->cfg.instances; i++)
		effects_read(v, i);
	gone_recheck(v, clock_now_ns(), 0);
	for (size_t i = 0; i < v->hcap; i++)
		if (v->h[i].key && v->h[i].effects > v->h[i].used)
			v->t.effects_unmatched += v->h[i].effects - v->h[i].used;
	*t = v->t;
	pthread_mutex_unlock(&v->lock);
}

void appview_free(struct appview *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->nconns; i++) {
		for (size_t k = 0; k < v->conns[i].nch; k++)
			free(v->conns[i].ch[k].d);
		free(v->conns[i].ch);
	}
	for (unsigned i = 0; i < v->cfg.instances; i++)
		if (v->eff[i].fd >= 0)
			close(v->eff[i].fd);
	pthread_mutex_destroy(&v->lock);
	free(v->conns);
	free(v->limbo);
	free(v->gone);
	free(v->eff);
	free(v->inst);
	free(v->h);
	free(v->alt);
	free(v);
}
