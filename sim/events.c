/* events.c — fault events: sessions, the rule or crash that ended each, duplicates and misses charged to them. */
#include "events.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[EVENTS_KINDS] = {
	[EVENTS_NONE] = "none",
	[EVENTS_LOST_ACK] = "lost_ack",
	[EVENTS_LOST_COMMIT_OK] = "lost_commit_ok",
	[EVENTS_LOST_CONFIRM] = "lost_confirm",
	[EVENTS_RULE] = "rule",
	[EVENTS_CONSUMER_CRASH] = "consumer_crash",
	[EVENTS_BROKER_CRASH] = "broker_crash",
	[EVENTS_CONNECTION_LOST] = "connection_lost",
	[EVENTS_UNATTRIBUTED] = "unattributed",
};

const char *events_kind_name(enum events_kind k)
{
	return (unsigned)k < EVENTS_KINDS ? kind_names[k] : "?";
}

struct events_entry *events_get(struct events *ev, events_id id)
{
	uint32_t n = atomic_load_explicit(&ev->count, memory_order_acquire);

	if (id == 0 || id > n)
		return NULL;
	return &ev->chunk[(id - 1) / EVENTS_CHUNK][(id - 1) % EVENTS_CHUNK];
}

/* A new entry, lock held. */
static events_id new_entry(struct events *ev, enum events_role role, enum events_kind kind, uint64_t now_ns)
{
	uint32_t n = atomic_load_explicit(&ev->count, memory_order_relaxed);
	struct events_entry *e;

	if (n / EVENTS_CHUNK >= EVENTS_CHUNKS) {
		ev->oom = true;
		return 0;
	}
	if (!ev->chunk[n / EVENTS_CHUNK]) {
		ev->chunk[n / EVENTS_CHUNK] = calloc(EVENTS_CHUNK, sizeof(struct events_entry));
		if (!ev->chunk[n / EVENTS_CHUNK]) {
			ev->oom = true;
			return 0;
		}
	}
	e = &ev->chunk[n / EVENTS_CHUNK][n % EVENTS_CHUNK];
	memset(e, 0, sizeof(*e));
	e->open_ns = now_ns;
	e->rule = -1;
	e->kind = (uint8_t)kind;
	e->role = (uint8_t)role;
	/* published after it is whole: readers index only below count */
	atomic_store_explicit(&ev->count, n + 1, memory_order_release);
	return n + 1;
}

int events_init(struct events *ev)
{
	memset(ev, 0, sizeof(*ev));
	pthread_mutex_init(&ev->lock, NULL);
	pthread_mutex_lock(&ev->lock);
	ev->unattributed = new_entry(ev, EVENTS_BROKER, EVENTS_UNATTRIBUTED, 0);
	pthread_mutex_unlock(&ev->lock);
	return ev->unattributed ? 0 : -1;
}

void events_release(struct events *ev)
{
	if (!ev)
		return;
	for (size_t i = 0; i < EVENTS_CHUNKS && ev->chunk[i]; i++)
		free(ev->chunk[i]);
	free(ev->dups);
	pthread_mutex_destroy(&ev->lock);
	memset(ev->chunk, 0, sizeof(ev->chunk));
	ev->dups = NULL;
	atomic_store(&ev->count, 0);
}

events_id events_open(struct events *ev, enum events_role role, unsigned worker, uint32_t session, uint16_t port,
		      uint64_t now_ns)
{
	events_id id;

	pthread_mutex_lock(&ev->lock);
	id = new_entry(ev, role, EVENTS_NONE, now_ns);
	if (id) {
		struct events_entry *e = events_get(ev, id);

		e->worker = (uint16_t)(worker > UINT16_MAX ? UINT16_MAX : worker);
		e->session = session;
	}
	pthread_mutex_unlock(&ev->lock);
	if (id && port)
		atomic_store(&ev->by_port[port], id);
	return id;
}

void events_close(struct events *ev, events_id id, enum events_kind kind, uint64_t now_ns)
{
	struct events_entry *e = events_get(ev, id);

	if (!e)
		return;
	pthread_mutex_lock(&ev->lock);
	if (e->kind == EVENTS_NONE) {
		e->kind = (uint8_t)kind;
		e->end_ns = now_ns;
	}
	pthread_mutex_unlock(&ev->lock);
}

void events_note_rule(struct events *ev, uint16_t port, int32_t rule, enum events_kind kind, uint64_t now_ns)
{
	struct events_entry *e = events_get(ev, port ? atomic_load(&ev->by_port[port]) : 0);

	if (!e)
		return;
	pthread_mutex_lock(&ev->lock);
	/* the first rule that fired on a connection is what ended it (a hang keeps it, then a timeout ends it) */
	if (e->rule < 0 && !e->crash && (e->kind == EVENTS_NONE || e->kind == EVENTS_CONNECTION_LOST)) {
		e->rule = rule;
		e->kind = (uint8_t)kind;
		e->end_ns = now_ns;
	}
	pthread_mutex_unlock(&ev->lock);
}

events_id events_note_crash(struct events *ev, const _Atomic events_id *open, size_t n, uint64_t now_ns)
{
	events_id crash;

	pthread_mutex_lock(&ev->lock);
	crash = new_entry(ev, EVENTS_BROKER, EVENTS_BROKER_CRASH, now_ns);
	if (crash) {
		events_get(ev, crash)->end_ns = now_ns;
		for (size_t i = 0; i < n; i++) {
			struct events_entry *e = events_get(ev, atomic_load(&open[i]));

			if (e && e->kind == EVENTS_NONE) {
				e->crash = crash;
				e->kind = EVENTS_BROKER_CRASH;
				e->end_ns = now_ns;
			}
		}
	}
	pthread_mutex_unlock(&ev->lock);
	return crash;
}

void events_note_dup(struct events *ev, events_id id, uint64_t gap_ns)
{
	struct events_entry *e = events_get(ev, id);
	uint64_t us = gap_ns / 1000;

	if (!e) {
		id = ev->unattributed;
		e = events_get(ev, id);
	}
	atomic_fetch_add_explicit(&e->dups, 1, memory_order_relaxed);
	pthread_mutex_lock(&ev->lock);
	if (ev->ndups == ev->capdups) {
		size_t cap = ev->capdups ? ev->capdups * 2 : 4096;
		struct events_dup *nd = realloc(ev->dups, cap * sizeof(*nd));

		if (nd) {
			ev->dups = nd;
			ev->capdups = cap;
		}
	}
	if (ev->ndups < ev->capdups)
		ev->dups[ev->ndups++] = (struct events_dup){ id, us > UINT32_MAX ? UINT32_MAX : (uint32_t)us };
	else
		ev->oom = true;
	pthread_mutex_unlock(&ev->lock);
}

void events_note_miss(struct events *ev, events_id id)
{
	struct events_entry *e = events_get(ev, id);

	if (!e)
		e = events_get(ev, ev->unattributed);
	atomic_fetch_add_explicit(&e->misses, 1, memory_order_relaxed);
}

events_id events_unit(struct events *ev, events_id id)
{
	struct events_entry *e = events_get(ev, id);

	if (!e)
		return ev->unattributed;
	return e->crash ? e->crash : id;
}

static int cmp_dup(const void *a, const void *b)
{
	const struct events_dup *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->gap_us < y->gap_us ? -1 : x->gap_us > y->gap_us;
}

/* Does a unit belong in the summary: it caused duplicates, or a fault of the run's ended it. */
static bool unit_listed(const struct events_entry *e, uint64_t dups)
{
	return dups > 0 || (e->kind != EVENTS_NONE && e->kind != EVENTS_CONNECTION_LOST &&
			    e->kind != EVENTS_UNATTRIBUTED);
}

int events_summarise(struct events *ev, struct events_summary *s)
{
	uint32_t count = atomic_load(&ev->count);
	uint64_t *dups = calloc((size_t)count + 1, sizeof(*dups)), *misses = calloc((size_t)count + 1, sizeof(*misses));
	int rc = -1;

	memset(s, 0, sizeof(*s));
	if (!dups || !misses)
		goto out;
	/* fold sessions into their units */
	for (events_id id = 1; id <= count; id++) {
		struct events_entry *e = events_get(ev, id);
		events_id u = events_unit(ev, id);

		dups[u] += atomic_load(&e->dups);
		misses[u] += atomic_load(&e->misses);
	}
	for (events_id id = 1; id <= count; id++)
		if (events_unit(ev, id) == id && unit_listed(events_get(ev, id), dups[id]))
			s->n++;
	s->unit = calloc(s->n ? s->n : 1, sizeof(*s->unit));
	s->ev = calloc(s->n ? s->n : 1, sizeof(*s->ev));
	s->gap_start = calloc(s->n + 1, sizeof(*s->gap_start));
	s->gaps_us = malloc((ev->ndups ? ev->ndups : 1) * sizeof(*s->gaps_us));
	if (!s->unit || !s->ev || !s->gap_start || !s->gaps_us)
		goto out;
	s->n = 0;
	for (events_id id = 1; id <= count; id++) {
		struct events_entry *e = events_get(ev, id);

		if (events_unit(ev, id) != id || !unit_listed(e, dups[id]))
			continue;
		s->unit[s->n] = id;
		s->ev[s->n] = (struct evidence_event){ .dups = dups[id], .misses = misses[id] };
		s->dups += dups[id];
		s->misses += misses[id];
		if (dups[id]) {
			s->with_dups++;
			s->by_kind[e->kind]++;
		}
		s->n++;
	}
	/* the gaps, grouped by unit and sorted within it */
	pthread_mutex_lock(&ev->lock);
	for (size_t i = 0; i < ev->ndups; i++)
		ev->dups[i].id = events_unit(ev, ev->dups[i].id);
	qsort(ev->dups, ev->ndups, sizeof(*ev->dups), cmp_dup);
	{
		size_t j = 0;

		for (size_t i = 0; i < s->n; i++) {
			while (j < ev->ndups && ev->dups[j].id < s->unit[i])
				j++; /* a unit not listed: cannot happen, a unit with a dup is listed */
			s->gap_start[i] = j;
			while (j < ev->ndups && ev->dups[j].id == s->unit[i]) {
				s->gaps_us[j] = ev->dups[j].gap_us;
				j++;
			}
		}
		s->gap_start[s->n] = j;
	}
	pthread_mutex_unlock(&ev->lock);
	rc = 0;
out:
	free(dups);
	free(misses);
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

void events_write_csv(struct events *ev, const struct events_summary *s, FILE *f, uint64_t t0_ns,
		      const char *(*rule_text)(void *arg, int32_t rule), void *arg)
{
	static const char *const roles[] = { "consumer", "publisher", "broker" };

	fprintf(f, "t_s,kind,rule,connection,duplicates,misses\n");
	for (size_t i = 0; i < s->n; i++) {
		struct events_entry *e = events_get(ev, s->unit[i]);
		uint64_t t = e->end_ns ? e->end_ns : e->open_ns;
		char conn[64];

		if (e->role == EVENTS_BROKER)
			snprintf(conn, sizeof(conn), "all");
		else
			snprintf(conn, sizeof(conn), "%s %u #%u", roles[e->role], e->worker, e->session);
		fprintf(f, "%.6f,%s,\"%s\",%s,%" PRIu64 ",%" PRIu64 "\n", t > t0_ns ? (double)(t - t0_ns) / 1e9 : 0.0,
			events_kind_name(e->kind), e->rule >= 0 && rule_text ? rule_text(arg, e->rule) : "", conn,
			s->ev[i].dups, s->ev[i].misses);
	}
}
