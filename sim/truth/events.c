/* events.c — fault events: open sessions in memory, everything else as records in a spill file; the summary at the end. */
#include "truth/events.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

static const char *const kind_names[EVENTS_KINDS] = {
	[EVENTS_NONE] = "none",
	[EVENTS_LOST_ACK] = "lost_ack",
	[EVENTS_LOST_COMMIT_OK] = "lost_commit_ok",
	[EVENTS_LOST_CONFIRM] = "lost_confirm",
	[EVENTS_RULE] = "rule",
	[EVENTS_CONSUMER_CRASH] = "consumer_crash",
	[EVENTS_BROKER_CRASH] = "broker_crash",
	[EVENTS_CONNECTION_LOST] = "connection_lost",
	[EVENTS_APP_CRASH] = "app_crash",
	[EVENTS_APP_EXIT] = "app_exit",
	[EVENTS_CONSUMER_TIMEOUT] = "consumer_timeout",
	[EVENTS_HEARTBEAT_TIMEOUT] = "heartbeat_timeout",
	[EVENTS_MEMORY_ALARM] = "memory_alarm",
	[EVENTS_NACK_REQUEUE] = "nack_requeue",
	[EVENTS_DLQ_REPLAY] = "dlq_replay",
	[EVENTS_LEADER_KILL] = "leader_kill",
	[EVENTS_PARTITION] = "partition",
	[EVENTS_UNATTRIBUTED] = "unattributed",
};

const char *events_kind_name(enum events_kind k)
{
	return (unsigned)k < EVENTS_KINDS ? kind_names[k] : "?";
}

/* One record of the spill file: a session as it ended, a duplicate, or a miss. */
enum { REC_SESSION = 1, REC_DUP = 2, REC_MISS = 3 };
struct rec {
	uint8_t type, kind, role, pad;
	events_id id;
	int32_t rule;	  /* REC_SESSION */
	uint32_t a;	  /* REC_SESSION: the crash that ended it; REC_DUP: the gap in µs */
	uint32_t session; /* REC_SESSION */
	uint16_t worker, pad2;
	uint64_t end_ns; /* REC_SESSION */
};
_Static_assert(sizeof(struct rec) == 32, "spill records are 32 bytes");

#define BUF_BYTES (64 * 1024)

/* Writes what waits in the buffer; lock held. */
static void flush_locked(struct events *ev)
{
	if (ev->used && fwrite(ev->buf, 1, ev->used, ev->spill) != ev->used)
		ev->failed = true;
	ev->used = 0;
}

static void put_locked(struct events *ev, const struct rec *r)
{
	if (ev->used + sizeof(*r) > BUF_BYTES)
		flush_locked(ev);
	memcpy(ev->buf + ev->used, r, sizeof(*r));
	ev->used += sizeof(*r);
}

static void put_session_locked(struct events *ev, const struct events_entry *e)
{
	struct rec r = { .type = REC_SESSION, .kind = e->kind, .role = e->role, .id = e->id, .rule = e->rule,
			 .a = e->crash, .session = e->session, .worker = e->worker, .end_ns = e->end_ns };

	put_locked(ev, &r);
}

int events_init(struct events *ev, char *err, size_t errlen)
{
	struct events_entry un = { .id = EVENTS_UNATTRIBUTED_ID, .rule = -1, .kind = EVENTS_UNATTRIBUTED,
				   .role = EVENTS_BROKER };

	memset(ev, 0, sizeof(*ev));
	pthread_mutex_init(&ev->lock, NULL);
	ev->buf = malloc(BUF_BYTES);
	if (!ev->buf)
		return log_seterr(err, errlen, "out of memory for the fault events");
	ev->spill = tmpfile();
	if (!ev->spill) {
		log_seterr(err, errlen, "cannot create the fault events' spill file in $TMPDIR: %s", strerror(errno));
		free(ev->buf);
		ev->buf = NULL;
		return -1;
	}
	atomic_store(&ev->count, EVENTS_UNATTRIBUTED_ID);
	put_session_locked(ev, &un);
	return 0;
}

void events_release(struct events *ev)
{
	if (!ev || !ev->buf)
		return;
	if (ev->spill)
		fclose(ev->spill);
	free(ev->buf);
	free(ev->open);
	pthread_mutex_destroy(&ev->lock);
	ev->spill = NULL;
	ev->buf = NULL;
	ev->open = NULL;
}

/* The open session with this id, or NULL; lock held. */
static struct events_entry *find_open(struct events *ev, events_id id)
{
	for (size_t i = 0; id && i < ev->nopen; i++)
		if (ev->open[i].id == id)
			return &ev->open[i];
	return NULL;
}

events_id events_open(struct events *ev, enum events_role role, unsigned worker, uint32_t session, uint16_t port)
{
	events_id id = 0;

	pthread_mutex_lock(&ev->lock);
	if (ev->nopen == ev->capopen) {
		size_t cap = ev->capopen ? ev->capopen * 2 : 16;
		struct events_entry *no = realloc(ev->open, cap * sizeof(*no));

		if (no) {
			ev->open = no;
			ev->capopen = cap;
		}
	}
	if (ev->nopen < ev->capopen) {
		id = atomic_fetch_add(&ev->count, 1) + 1;
		ev->open[ev->nopen++] = (struct events_entry){
			.id = id,
			.rule = -1,
			.kind = EVENTS_NONE,
			.role = (uint8_t)role,
			.worker = (uint16_t)(worker > UINT16_MAX ? UINT16_MAX : worker),
			.session = session,
			.port = port,
		};
	} else {
		ev->failed = true;
	}
	pthread_mutex_unlock(&ev->lock);
	return id;
}

/* A publisher's connection lost while the alarm blocks it (or just after): the alarm's doing. Lock held. */
static enum events_kind alarm_kind_locked(const struct events *ev, const struct events_entry *e,
					  enum events_kind kind, uint64_t now_ns)
{
	if (kind != EVENTS_CONNECTION_LOST || e->role != EVENTS_PUBLISHER)
		return kind;
	return ev->alarm_on || now_ns < ev->alarm_grace_until ? EVENTS_MEMORY_ALARM : kind;
}

void events_close(struct events *ev, events_id id, enum events_kind kind, uint64_t now_ns)
{
	struct events_entry *e;

	pthread_mutex_lock(&ev->lock);
	e = find_open(ev, id);
	if (e) {
		kind = alarm_kind_locked(ev, e, kind, now_ns);
		if (e->kind == EVENTS_NONE && kind == EVENTS_CONNECTION_LOST && ev->outage &&
		    now_ns < ev->outage_grace_until) {
			e->crash = ev->outage;
			kind = (enum events_kind)ev->outage_kind;
		}
		if (e->kind == EVENTS_NONE && kind != EVENTS_NONE) {
			e->kind = (uint8_t)kind;
			e->end_ns = now_ns;
		}
		put_session_locked(ev, e);
		*e = ev->open[--ev->nopen];
	}
	pthread_mutex_unlock(&ev->lock);
}

void events_note_rule(struct events *ev, uint16_t port, int32_t rule, enum events_kind kind, uint64_t now_ns)
{
	struct events_entry *e = NULL;

	pthread_mutex_lock(&ev->lock);
	/* by the open sessions' ports, not a table of every port: a port closed
	 * and reused names the session open on it now, and memory stays flat */
	for (size_t i = 0; port && i < ev->nopen && !e; i++)
		if (ev->open[i].port == port)
			e = &ev->open[i];
	/* the first rule that fired on a connection is what ended it (a hang keeps it, then a timeout ends it) */
	if (e && e->rule < 0 && e->kind == EVENTS_NONE) {
		e->rule = rule;
		e->kind = (uint8_t)kind;
		e->end_ns = now_ns;
	}
	pthread_mutex_unlock(&ev->lock);
}

/* A fault of the broker side: a new event, ending every open session nothing ended yet that `nodes` covers. */
static events_id note_broker_fault(struct events *ev, enum events_kind kind, uint32_t nodes, bool all,
				   uint64_t now_ns)
{
	struct events_entry c = { .rule = -1, .kind = (uint8_t)kind, .role = EVENTS_BROKER, .end_ns = now_ns };

	pthread_mutex_lock(&ev->lock);
	c.id = atomic_fetch_add(&ev->count, 1) + 1;
	put_session_locked(ev, &c);
	for (size_t i = 0; i < ev->nopen; i++) {
		struct events_entry *e = &ev->open[i];

		if (e->kind != EVENTS_NONE)
			continue;
		if (!all && (e->node == 0 || !(nodes & (1u << (e->node - 1)))))
			continue;
		e->crash = c.id;
		e->kind = (uint8_t)kind;
		e->end_ns = now_ns;
	}
	pthread_mutex_unlock(&ev->lock);
	return c.id;
}

events_id events_note_crash(struct events *ev, uint64_t now_ns)
{
	return note_broker_fault(ev, EVENTS_BROKER_CRASH, 0, true, now_ns);
}

events_id events_note_nodes(struct events *ev, enum events_kind kind, uint32_t nodes, uint64_t now_ns)
{
	return note_broker_fault(ev, kind, nodes, false, now_ns);
}

void events_set_node(struct events *ev, events_id id, unsigned node)
{
	pthread_mutex_lock(&ev->lock);
	for (size_t i = 0; i < ev->nopen; i++)
		if (ev->open[i].id == id)
			ev->open[i].node = (uint8_t)(node > UINT8_MAX ? UINT8_MAX : node);
	pthread_mutex_unlock(&ev->lock);
}

events_id events_note_instant(struct events *ev, enum events_kind kind, enum events_role role, unsigned worker,
			      uint32_t session, uint64_t now_ns)
{
	struct events_entry e = { .rule = -1, .kind = (uint8_t)kind, .role = (uint8_t)role, .end_ns = now_ns,
				  .worker = (uint16_t)(worker > UINT16_MAX ? UINT16_MAX : worker), .session = session };

	pthread_mutex_lock(&ev->lock);
	e.id = atomic_fetch_add(&ev->count, 1) + 1;
	put_session_locked(ev, &e);
	pthread_mutex_unlock(&ev->lock);
	return e.id;
}

void events_note_alarm(struct events *ev, bool on, uint64_t grace_ns, uint64_t now_ns)
{
	pthread_mutex_lock(&ev->lock);
	ev->alarm_on = on;
	if (!on)
		ev->alarm_grace_until = now_ns + grace_ns;
	pthread_mutex_unlock(&ev->lock);
}

void events_note_outage(struct events *ev, events_id id, enum events_kind kind, bool on, uint64_t grace_ns,
			uint64_t now_ns)
{
	pthread_mutex_lock(&ev->lock);
	if (on) {
		ev->outage = id;
		ev->outage_kind = (uint8_t)kind;
		ev->outage_grace_until = UINT64_MAX;
	} else if (ev->outage == id) {
		ev->outage_grace_until = now_ns + grace_ns;
	}
	pthread_mutex_unlock(&ev->lock);
}

bool events_peek(struct events *ev, events_id id, struct events_entry *out)
{
	struct events_entry *e;

	pthread_mutex_lock(&ev->lock);
	e = find_open(ev, id);
	if (e)
		*out = *e;
	pthread_mutex_unlock(&ev->lock);
	return e != NULL;
}

/* An id issued so far, or the unattributed entry. */
static events_id known(struct events *ev, events_id id)
{
	return id && id <= atomic_load(&ev->count) ? id : EVENTS_UNATTRIBUTED_ID;
}

void events_note_dup(struct events *ev, events_id id, uint64_t gap_ns)
{
	uint64_t us = gap_ns / 1000;
	struct rec r = { .type = REC_DUP, .id = known(ev, id), .a = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us };

	pthread_mutex_lock(&ev->lock);
	put_locked(ev, &r);
	ev->dups++;
	pthread_mutex_unlock(&ev->lock);
}

void events_note_miss(struct events *ev, events_id id)
{
	struct rec r = { .type = REC_MISS, .id = known(ev, id) };

	pthread_mutex_lock(&ev->lock);
	put_locked(ev, &r);
	ev->misses++;
	pthread_mutex_unlock(&ev->lock);
}

/* ---- the summary ---- */

struct gap_rec {
	events_id unit;
	uint32_t gap_us;
};

static int cmp_gap(const void *a, const void *b)
{
	const struct gap_rec *x = a, *y = b;

	if (x->unit != y->unit)
		return x->unit < y->unit ? -1 : 1;
	return x->gap_us < y->gap_us ? -1 : x->gap_us > y->gap_us;
}

/* Does a unit belong in the summary: it caused duplicates, or a fault of the run's ended it. */
static bool unit_listed(const struct events_entry *e, uint64_t dups)
{
	return dups > 0 || (e->kind != EVENTS_NONE && e->kind != EVENTS_CONNECTION_LOST &&
			    e->kind != EVENTS_UNATTRIBUTED);
}

/* Reads the spill into per-id tables: what each session was, its duplicates and misses, the gaps. */
static int read_spill(struct events *ev, uint32_t count, struct events_entry *meta, uint64_t *dups,
		      uint64_t *misses, struct gap_rec *gaps, size_t ngaps_max, size_t *ngaps)
{
	struct rec r;

	*ngaps = 0;
	if (fflush(ev->spill) != 0 || fseek(ev->spill, 0, SEEK_SET) != 0)
		return -1;
	while (fread(&r, sizeof(r), 1, ev->spill) == 1) {
		if (r.id == 0 || r.id > count)
			return -1;
		switch (r.type) {
		case REC_SESSION:
			meta[r.id] = (struct events_entry){ .id = r.id, .end_ns = r.end_ns, .rule = r.rule, .crash = r.a,
							    .kind = r.kind, .role = r.role, .worker = r.worker,
							    .session = r.session };
			break;
		case REC_DUP:
			dups[r.id]++;
			if (*ngaps < ngaps_max)
				gaps[(*ngaps)++] = (struct gap_rec){ r.id, r.a };
			break;
		case REC_MISS:
			misses[r.id]++;
			break;
		default:
			return -1;
		}
	}
	if (ferror(ev->spill) || fseek(ev->spill, 0, SEEK_END) != 0)
		return -1;
	return 0;
}

/* Everything the spill holds, by event id (1..count), read back at the end. */
struct events_tally {
	uint32_t count;
	struct events_entry *meta;
	uint64_t *dups, *misses;
	struct gap_rec *gaps;
	size_t ngaps;
};

static void events_tally_release(struct events_tally *t)
{
	free(t->meta);
	free(t->dups);
	free(t->misses);
	free(t->gaps);
}

/* Ends the sessions still open (as they are) and reads the spill back. 0 or -1. */
static int events_tally_read(struct events *ev, struct events_tally *t)
{
	int rc = -1;

	memset(t, 0, sizeof(*t));
	pthread_mutex_lock(&ev->lock);
	for (size_t i = 0; i < ev->nopen; i++)
		put_session_locked(ev, &ev->open[i]);
	ev->nopen = 0;
	flush_locked(ev);
	t->count = atomic_load(&ev->count);
	t->meta = calloc((size_t)t->count + 1, sizeof(*t->meta));
	t->dups = calloc((size_t)t->count + 1, sizeof(*t->dups));
	t->misses = calloc((size_t)t->count + 1, sizeof(*t->misses));
	t->gaps = malloc((ev->dups ? ev->dups : 1) * sizeof(*t->gaps));
	if (t->meta && t->dups && t->misses && t->gaps && !ev->failed)
		rc = read_spill(ev, t->count, t->meta, t->dups, t->misses, t->gaps, ev->dups, &t->ngaps);
	pthread_mutex_unlock(&ev->lock);
	return rc;
}

/* Folds the sessions a broker crash ended into the crash, with their gaps; then sorts the gaps. */
static void events_tally_fold(struct events_tally *t)
{
	for (events_id id = 1; id <= t->count; id++) {
		events_id u = t->meta[id].crash && t->meta[id].crash <= t->count ? t->meta[id].crash : id;

		if (u != id) {
			t->dups[u] += t->dups[id];
			t->misses[u] += t->misses[id];
			t->dups[id] = t->misses[id] = 0;
		}
	}
	for (size_t i = 0; i < t->ngaps; i++) {
		events_id id = t->gaps[i].unit;

		if (t->meta[id].crash && t->meta[id].crash <= t->count)
			t->gaps[i].unit = t->meta[id].crash;
	}
	qsort(t->gaps, t->ngaps, sizeof(*t->gaps), cmp_gap);
}

static bool events_tally_listed(const struct events_tally *t, events_id id)
{
	return !t->meta[id].crash && unit_listed(&t->meta[id], t->dups[id]);
}

/* The units of the summary, in id order, and their gaps grouped the same way. 0 or -1. */
static int events_summary_fill(struct events_summary *s, const struct events_tally *t)
{
	size_t j = 0;

	for (events_id id = 1; id <= t->count; id++)
		s->n += events_tally_listed(t, id);
	s->unit = calloc(s->n ? s->n : 1, sizeof(*s->unit));
	s->ev = calloc(s->n ? s->n : 1, sizeof(*s->ev));
	s->gap_start = calloc(s->n + 1, sizeof(*s->gap_start));
	s->gaps_us = malloc((t->ngaps ? t->ngaps : 1) * sizeof(*s->gaps_us));
	if (!s->unit || !s->ev || !s->gap_start || !s->gaps_us)
		return -1;
	s->n = 0;
	for (events_id id = 1; id <= t->count; id++) {
		const struct events_entry *m = &t->meta[id];

		if (!events_tally_listed(t, id))
			continue;
		s->unit[s->n] = *m;
		s->ev[s->n] = (struct evidence_event){ .dups = t->dups[id], .misses = t->misses[id] };
		s->dups += t->dups[id];
		s->misses += t->misses[id];
		if (t->dups[id]) {
			s->with_dups++;
			s->by_kind[m->kind < EVENTS_KINDS ? m->kind : EVENTS_NONE]++;
		}
		s->gap_start[s->n] = j;
		while (j < t->ngaps && t->gaps[j].unit == id) {
			s->gaps_us[j] = t->gaps[j].gap_us;
			j++;
		}
		s->n++;
	}
	s->gap_start[s->n] = j;
	return 0;
}

int events_summarise(struct events *ev, struct events_summary *s)
{
	struct events_tally t;
	int rc = -1;

	memset(s, 0, sizeof(*s));
	if (events_tally_read(ev, &t) == 0) {
		events_tally_fold(&t);
		rc = events_summary_fill(s, &t);
	}
	events_tally_release(&t);
	if (rc < 0)
		events_summary_release(s);
	return rc;
}

void events_summary_release(struct events_summary *s)
{
	free(s->unit);
	free(s->ev);
	free(s->gaps_us);
	free(s->gap_start);
	memset(s, 0, sizeof(*s));
}

void events_summary_above(const struct events_summary *s, double ttl_us, uint64_t *x, uint64_t *d)
{
	for (size_t i = 0; i < s->n; i++) {
		size_t lo = s->gap_start[i], hi = s->gap_start[i + 1], a = lo, b = hi;

		/* first gap > ttl: binary search in the sorted run */
		while (a < b) {
			size_t mid = a + (b - a) / 2;

			if ((double)s->gaps_us[mid] > ttl_us)
				b = mid;
			else
				a = mid + 1;
		}
		x[i] = hi - a;
		d[i] = hi - lo;
	}
}

void events_write_csv(const struct events_summary *s, FILE *f, uint64_t t0_ns,
		      const char *(*rule_text)(void *arg, int32_t rule), void *arg)
{
	static const char *const roles[] = { "consumer", "publisher", "broker" };

	fprintf(f, "t_s,kind,rule,connection,duplicates,misses\n");
	for (size_t i = 0; i < s->n; i++) {
		const struct events_entry *e = &s->unit[i];
		char conn[64];

		if (e->role == EVENTS_BROKER)
			snprintf(conn, sizeof(conn), "all");
		else
			snprintf(conn, sizeof(conn), "%s %u #%u", roles[e->role < 3 ? e->role : 2], e->worker,
				 e->session);
		fprintf(f, "%.6f,%s,\"%s\",%s,%" PRIu64 ",%" PRIu64 "\n",
			e->end_ns > t0_ns ? (double)(e->end_ns - t0_ns) / 1e9 : 0.0, events_kind_name(e->kind),
			e->rule >= 0 && rule_text ? rule_text(arg, e->rule) : "", conn, s->ev[i].dups, s->ev[i].misses);
	}
}
