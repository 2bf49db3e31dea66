/* ledger.c — ground truth per message: lock-free counters, miss classification, totals and invariants. */
#include "truth/ledger.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"

_Static_assert(sizeof(struct ledger_msg) == 48, "struct ledger_msg must stay 48 bytes");

#define STATE_K(s) ((s) & 0xffffu)
#define STATE_CLAIMS(s) ((s) >> 16)
#define STATE_CLAIM (1u << 16)

#define RLX memory_order_relaxed

static const char *const cause_names[LEDGER_CAUSES] = {
	[LEDGER_CAUSE_EXPIRED] = "expired",
	[LEDGER_CAUSE_EVICTED] = "evicted",
	[LEDGER_CAUSE_UNCHECKED] = "unchecked",
	[LEDGER_CAUSE_NOT_INSERTED] = "not_inserted",
	[LEDGER_CAUSE_OTHER_CACHE] = "other_cache",
	[LEDGER_CAUSE_RACE] = "race",
	[LEDGER_CAUSE_LOST_IN_CRASH] = "lost_in_crash",
	[LEDGER_CAUSE_STORE_ERROR] = "store_error",
	[LEDGER_CAUSE_STORE_LOST] = "store_lost",
	[LEDGER_CAUSE_UNKNOWN_APP] = "unknown_app",
	[LEDGER_CAUSE_UNEXPLAINED] = "unexplained",
};

const char *ledger_cause_name(enum ledger_cause c)
{
	return (unsigned)c < LEDGER_CAUSES ? cause_names[c] : "?";
}

int ledger_init(struct ledger *l, size_t messages, const struct ledger_setup *setup)
{
	memset(l, 0, sizeof(*l));
	if (messages > (SIZE_MAX - 63) / sizeof(struct ledger_msg))
		return -1;
	if (messages) {
		/* from a 64-byte boundary */
		size_t bytes = (messages * sizeof(struct ledger_msg) + 63) & ~(size_t)63;

		l->msgs = aligned_alloc(64, bytes);
		if (!l->msgs)
			return -1;
		memset(l->msgs, 0, bytes);
	}
	l->count = messages;
	if (setup)
		l->setup = *setup;
	l->t0_ns = clock_now_ns();
	stats_hist_init(&l->gaps);
	stats_hist_init(&l->latency);
	return 0;
}

void ledger_release(struct ledger *l)
{
	if (!l)
		return;
	free(l->msgs);
	l->msgs = NULL;
	l->count = 0;
}

/*
 * The message, or NULL for an index outside the run: that is a caller bug,
 * counted as a foreign delivery so that ledger_check reports it.
 */
static struct ledger_msg *msg_at(struct ledger *l, size_t m)
{
	if (m < l->count)
		return &l->msgs[m];
	atomic_fetch_add_explicit(&l->foreign, 1, RLX);
	return NULL;
}

static void set_flag(struct ledger_msg *e, uint8_t f)
{
	if (!(atomic_load_explicit(&e->flags, RLX) & f))
		atomic_fetch_or_explicit(&e->flags, f, RLX);
}

/* Saturating increments and a decrement that stops at 0; each returns the value before. */
static uint16_t inc16(struct ledger_msg *e, _Atomic uint16_t *c)
{
	uint16_t v = atomic_load_explicit(c, RLX);

	do {
		if (v == UINT16_MAX) {
			set_flag(e, LEDGER_F_SATURATED);
			return v;
		}
	} while (!atomic_compare_exchange_weak_explicit(c, &v, (uint16_t)(v + 1), RLX, RLX));
	return v;
}

static uint8_t inc8(struct ledger_msg *e, _Atomic uint8_t *c)
{
	uint8_t v = atomic_load_explicit(c, RLX);

	do {
		if (v == UINT8_MAX) {
			set_flag(e, LEDGER_F_SATURATED);
			return v;
		}
	} while (!atomic_compare_exchange_weak_explicit(c, &v, (uint8_t)(v + 1), RLX, RLX));
	return v;
}

static uint8_t dec8(_Atomic uint8_t *c)
{
	uint8_t v = atomic_load_explicit(c, RLX);

	while (v && !atomic_compare_exchange_weak_explicit(c, &v, (uint8_t)(v - 1), RLX, RLX))
		;
	return v;
}

/* now_ns on the run clock + 1, so that 0 stays "never". */
static uint64_t run_clock1(const struct ledger *l, uint64_t now_ns)
{
	return (now_ns > l->t0_ns ? now_ns - l->t0_ns : 0) + 1;
}

/* now − the first accepted delivery, or false when nothing was accepted yet. */
static bool since_first_accept(const struct ledger *l, const struct ledger_msg *e, uint64_t now_ns, uint64_t *gap)
{
	uint64_t first = atomic_load_explicit(&e->first_accept_ns, RLX);
	uint64_t now1 = run_clock1(l, now_ns);

	if (!first)
		return false;
	*gap = now1 > first ? now1 - first : 0;
	return true;
}

unsigned ledger_note_publish(struct ledger *l, size_t m)
{
	struct ledger_msg *e = msg_at(l, m);

	return e ? inc16(e, &e->attempts) : 0;
}

void ledger_note_confirm(struct ledger *l, size_t m)
{
	struct ledger_msg *e = msg_at(l, m);

	if (e)
		set_flag(e, LEDGER_F_CONFIRMED);
}

events_id ledger_note_delivery(struct ledger *l, size_t m, unsigned republish_count, events_id session,
			       events_id cause)
{
	return ledger_note_delivery_from(l, m, republish_count, session, cause, 0);
}

events_id ledger_note_delivery_from(struct ledger *l, size_t m, unsigned republish_count, events_id session,
				    events_id cause, events_id from)
{
	struct ledger_msg *e = msg_at(l, m);
	events_id prev;
	uint32_t bit, before;

	if (!e)
		return 0;
	inc16(e, &e->deliveries);
	if (republish_count >= 31) {
		bit = 1u << 31;
		set_flag(e, LEDGER_F_COPY_OVERFLOW);
	} else {
		bit = 1u << republish_count;
	}
	before = atomic_fetch_or_explicit(&e->copies, bit, RLX);
	prev = atomic_exchange_explicit(&e->last_session, session, RLX);
	/* this copy came before: it is back because the session that held it ended */
	if (before & bit)
		return prev;
	/* an older copy after a newer one: it was stuck (a blocked connection read late); the session that
	 * sent it, given up, is why both exist */
	if (from && bit != 1u << 31 && (before & ~(bit | (bit - 1))))
		return from;
	/* a new copy of a message seen before: its publisher's failed session made it */
	if (cause)
		return cause;
	return prev;
}

void ledger_note_handover(struct ledger *l, size_t m, events_id event)
{
	struct ledger_msg *e = msg_at(l, m);

	if (e)
		atomic_store_explicit(&e->last_session, event, RLX);
}

void ledger_note_dead_lettered(struct ledger *l, size_t m)
{
	struct ledger_msg *e = msg_at(l, m);

	if (e)
		set_flag(e, LEDGER_F_DEAD_LETTERED);
}

/* Takes a claim on m; returns the state before. */
static uint32_t claim(struct ledger_msg *e)
{
	uint32_t v = atomic_load_explicit(&e->state, memory_order_acquire), n;

	do {
		if (STATE_CLAIMS(v) == 0xffffu) {
			set_flag(e, LEDGER_F_SATURATED);
			return v;
		}
		n = v + STATE_CLAIM;
	} while (!atomic_compare_exchange_weak_explicit(&e->state, &v, n, memory_order_acq_rel, memory_order_acquire));
	return v;
}

/* Gives a claim back, executing the side effect when `execute`; returns the state before. */
static uint32_t unclaim(struct ledger_msg *e, bool execute)
{
	uint32_t v = atomic_load_explicit(&e->state, memory_order_acquire), n;

	do {
		n = v;
		if (STATE_CLAIMS(n))
			n -= STATE_CLAIM;
		if (execute) {
			if (STATE_K(n) == 0xffffu)
				set_flag(e, LEDGER_F_SATURATED);
			else
				n++;
		}
	} while (!atomic_compare_exchange_weak_explicit(&e->state, &v, n, memory_order_acq_rel, memory_order_acquire));
	return v;
}

unsigned ledger_note_decision(struct ledger *l, size_t m, uint64_t now_ns, events_id charge)
{
	struct ledger_msg *e = msg_at(l, m);
	uint64_t gap = 0;
	uint32_t before;
	unsigned seen = LEDGER_SEEN_DUP;

	if (!e)
		return 0;
	inc16(e, &e->decided);
	before = claim(e);
	if (STATE_K(before) == 0 && STATE_CLAIMS(before) == 0)
		return 0;
	/* seen now, before the store is asked: what the store's answer will be judged by */
	if (STATE_CLAIMS(before))
		seen |= LEDGER_SEEN_INFLIGHT;
	if (!(atomic_load_explicit(&e->flags, memory_order_acquire) & LEDGER_F_MARKED))
		seen |= LEDGER_SEEN_UNMARKED;
	inc16(e, &e->dups);
	/* A concurrent first delivery may not have been accepted yet: then there is no gap to record. */
	if (since_first_accept(l, e, now_ns, &gap))
		stats_hist_add(&l->gaps, gap);
	atomic_store_explicit(&e->dup_charge, charge, RLX);
	if (l->events)
		events_note_dup(l->events, charge, gap);
	return seen;
}

/* The key was inserted or found: it is the most recently used. */
static void touch(struct ledger *l, struct ledger_msg *e)
{
	atomic_store_explicit(&e->touched, atomic_fetch_add_explicit(&l->touches, 1, RLX) + 1, RLX);
}

void ledger_note_rejected(struct ledger *l, size_t m)
{
	struct ledger_msg *e = msg_at(l, m);
	uint32_t before;

	if (!e)
		return;
	before = unclaim(e, false);
	touch(l, e); /* a hit refreshes the key's recency */
	if (STATE_K(before) != 0)
		return;
	set_flag(e, LEDGER_F_REJECTED_K0);
	/* nothing executed, and no claim but this one: the dedup suppressed m wrongly */
	if (STATE_CLAIMS(before) <= 1)
		inc16(e, &e->suppressed);
}

/*
 * The race rule. An accept made while another copy is in flight (inflight > 0
 * before this one) leaves a token in e->raced: that pair of copies will execute
 * twice. The next duplicate execution takes the token and is classified `race`,
 * whichever of the two finishes last. An abandoned copy takes a token back
 * (the pair no longer executes twice). This is exact for overlapping pairs and
 * chains of overlapping copies; it never looks at copies that were accepted
 * after the earlier one had completed (those are a cache's business: expired,
 * evicted, other_cache, ...).
 */
unsigned ledger_note_accept(struct ledger *l, size_t m, unsigned consumer, uint64_t now_ns, unsigned seen)
{
	struct ledger_msg *e = msg_at(l, m);
	uint64_t zero = 0;
	unsigned flags = 0;

	if (!e)
		return 0;
	if ((seen & LEDGER_SEEN_UNMARKED) || (atomic_load_explicit(&e->first_accept_ns, RLX) &&
					      !(atomic_load_explicit(&e->flags, RLX) & LEDGER_F_MARKED)))
		flags |= LEDGER_ACCEPT_UNMARKED;
	if (inc8(e, &e->inflight) > 0 || (seen & LEDGER_SEEN_INFLIGHT))
		inc8(e, &e->raced);
	if (atomic_compare_exchange_strong_explicit(&e->first_accept_ns, &zero, run_clock1(l, now_ns), RLX, RLX))
		atomic_store_explicit(&e->first_consumer, (uint16_t)(consumer > UINT16_MAX ? UINT16_MAX : consumer),
				      RLX);
	return flags;
}

void ledger_note_marked(struct ledger *l, size_t m)
{
	ledger_note_marked_at(l, m, ledger_store_epoch(l));
}

void ledger_note_marked_at(struct ledger *l, size_t m, uint32_t epoch)
{
	struct ledger_msg *e = msg_at(l, m);

	if (!e)
		return;
	touch(l, e);
	atomic_store_explicit(&e->mark_epoch, (uint16_t)epoch, RLX);
	set_flag(e, LEDGER_F_MARKED);
}

void ledger_note_store_restart(struct ledger *l)
{
	atomic_fetch_add_explicit(&l->store_epoch, 1, memory_order_seq_cst);
}

uint32_t ledger_store_epoch(const struct ledger *l)
{
	return atomic_load_explicit((_Atomic uint32_t *)&l->store_epoch, memory_order_seq_cst);
}

/* The key went in before a store restart that has begun since (16 bits: 65536 restarts wrap). */
static bool lost_in_restart(const struct ledger *l, struct ledger_msg *e)
{
	return (atomic_load_explicit(&e->flags, RLX) & LEDGER_F_MARKED) &&
	       atomic_load_explicit(&e->mark_epoch, RLX) != (uint16_t)ledger_store_epoch(l);
}

void ledger_note_mark_failed(struct ledger *l, size_t m)
{
	struct ledger_msg *e = msg_at(l, m);

	if (e)
		set_flag(e, LEDGER_F_MARK_FAILED);
}

/* Takes one race token if there is one. */
static bool take_race_token(struct ledger_msg *e)
{
	return dec8(&e->raced) > 0;
}

/*
 * Why a duplicate was executed, from what the ledger saw; first match wins:
 *   unchecked     no store, or the policy skipped this copy's lookup
 *   store_error   this copy's lookup failed, or the first copy's mark did
 *                 (the policy went on without the store: fail-open)
 *   race          another copy was in flight when this one was decided or
 *                 accepted (a race token, see ledger_note_accept)
 *   not_inserted  another copy came first but its key was not visible yet
 *                 when this one was decided
 *   other_cache   scope = local and the first copy went to another consumer
 *   expired       ttl > 0 and now − the first accepted delivery > ttl
 *   store_lost    the store is restarted without persistence and a restart
 *                 began after the key's latest mark was sent
 *   evicted       capacity > 0 and at least `capacity` keys were inserted or
 *                 found since this key last was (so LRU can have pushed it out);
 *                 or the store evicts by memory (redis maxmemory, allkeys-lru:
 *                 which keys it dropped is redis's choice, not seen here)
 *   lost_in_crash consumers crash with a local memory store (the key died with it)
 *   unknown_app   the consumer is the user's own app: its store and policy are out of sight
 *   unexplained   none of these: a store or a policy lost a key it should have kept
 * Expiry is judged from the first accept, while a store's ttl runs from its
 * insert (later with mark = after): a duplicate within the processing time of
 * the ttl boundary can land on either side.
 */
static enum ledger_cause ledger_classify(const struct ledger *l, struct ledger_msg *e, unsigned consumer, uint64_t now_ns,
				  unsigned accept_flags, bool looked_up)
{
	const struct ledger_setup *p = &l->setup;
	bool raced = take_race_token(e); /* taken whatever the verdict, so tokens never pile up */
	uint64_t since;

	if (p->app) /* never a guess at what happened inside someone else's code */
		return LEDGER_CAUSE_UNKNOWN_APP;
	if (p->store_none || !looked_up)
		return LEDGER_CAUSE_UNCHECKED;
	if ((accept_flags & LEDGER_ACCEPT_STORE_ERROR) || (atomic_load_explicit(&e->flags, RLX) & LEDGER_F_MARK_FAILED))
		return LEDGER_CAUSE_STORE_ERROR;
	if (raced)
		return LEDGER_CAUSE_RACE;
	if (accept_flags & LEDGER_ACCEPT_UNMARKED)
		return LEDGER_CAUSE_NOT_INSERTED;
	if (p->scope_local && atomic_load_explicit(&e->first_accept_ns, RLX) &&
	    atomic_load_explicit(&e->first_consumer, RLX) != (consumer > UINT16_MAX ? UINT16_MAX : consumer))
		return LEDGER_CAUSE_OTHER_CACHE;
	if (p->ttl_ns && since_first_accept(l, e, now_ns, &since) && since > p->ttl_ns)
		return LEDGER_CAUSE_EXPIRED;
	if (p->store_restarts && lost_in_restart(l, e))
		return LEDGER_CAUSE_STORE_LOST;
	if (p->store_evicts)
		return LEDGER_CAUSE_EVICTED;
	if (p->capacity &&
	    (uint32_t)(atomic_load_explicit((_Atomic uint32_t *)&l->touches, RLX) -
		       atomic_load_explicit(&e->touched, RLX)) >= p->capacity)
		return LEDGER_CAUSE_EVICTED;
	if (p->crash_wipes_cache)
		return LEDGER_CAUSE_LOST_IN_CRASH;
	return LEDGER_CAUSE_UNEXPLAINED;
}

void ledger_note_executed(struct ledger *l, size_t m, unsigned consumer, uint64_t now_ns, uint64_t published_ns,
			  unsigned accept_flags, bool looked_up, events_id charge)
{
	struct ledger_msg *e = msg_at(l, m);
	uint16_t k;

	if (!e)
		return;
	k = (uint16_t)STATE_K(unclaim(e, true));
	dec8(&e->inflight);
	if (k == 0) {
		if (published_ns && now_ns >= published_ns)
			stats_hist_add(&l->latency, now_ns - published_ns);
		return;
	}
	/* K was >= 1: this execution is a duplicate processed, a miss of the dedup. */
	atomic_fetch_add_explicit(&l->misses[ledger_classify(l, e, consumer, now_ns, accept_flags, looked_up)], 1, RLX);
	if (l->events)
		events_note_miss(l->events, charge ? charge : atomic_load_explicit(&e->dup_charge, RLX));
}

void ledger_note_abandoned(struct ledger *l, size_t m)
{
	struct ledger_msg *e = msg_at(l, m);

	if (!e)
		return;
	unclaim(e, false);
	dec8(&e->inflight);
	take_race_token(e);
}

void ledger_note_foreign(struct ledger *l)
{
	atomic_fetch_add_explicit(&l->foreign, 1, RLX);
}

/* A plain snapshot of one entry. */
struct snap {
	uint32_t copies;
	unsigned attempts, deliveries, decided, dups, executions, claims, suppressed, inflight, flags, ncopies;
};

static void snap_of(const struct ledger_msg *e, struct snap *s)
{
	/* atomic_load_explicit takes a non-const pointer in some C libraries' <stdatomic.h> */
	struct ledger_msg *x = (struct ledger_msg *)e;

	s->copies = atomic_load_explicit(&x->copies, RLX);
	s->attempts = atomic_load_explicit(&x->attempts, RLX);
	s->deliveries = atomic_load_explicit(&x->deliveries, RLX);
	s->decided = atomic_load_explicit(&x->decided, RLX);
	{
		uint32_t st = atomic_load_explicit(&x->state, RLX);

		s->executions = STATE_K(st);
		s->claims = STATE_CLAIMS(st);
	}
	s->dups = atomic_load_explicit(&x->dups, RLX);
	s->suppressed = atomic_load_explicit(&x->suppressed, RLX);
	s->inflight = atomic_load_explicit(&x->inflight, RLX);
	s->flags = atomic_load_explicit(&x->flags, RLX);
	s->ncopies = (unsigned)__builtin_popcount(s->copies);
}

static uint64_t load_u64(const _Atomic uint64_t *p)
{
	return atomic_load_explicit((_Atomic uint64_t *)p, RLX);
}

bool ledger_all_processed(const struct ledger *l)
{
	for (size_t i = 0; i < l->count; i++) {
		struct ledger_msg *e = (struct ledger_msg *)&l->msgs[i];

		if ((atomic_load_explicit(&e->flags, RLX) & LEDGER_F_CONFIRMED) &&
		    STATE_K(atomic_load_explicit(&e->state, RLX)) == 0)
			return false;
	}
	return true;
}

void ledger_totals(const struct ledger *l, struct ledger_totals *t)
{
	struct snap s;

	memset(t, 0, sizeof(*t));
	t->messages = l->count;
	for (size_t i = 0; i < l->count; i++) {
		snap_of(&l->msgs[i], &s);
		t->published += s.attempts > 0;
		t->committed += (s.flags & LEDGER_F_CONFIRMED) != 0;
		t->publish_attempts += s.attempts;
		t->excess_copies += s.ncopies > 1 ? s.ncopies - 1 : 0;
		t->deliveries += s.deliveries;
		t->decisions += s.decided;
		t->executions += s.executions;
		t->duplicate_deliveries += s.dups;
		t->duplicates_processed += s.executions > 1 ? s.executions - 1 : 0;
		t->lost += (s.flags & LEDGER_F_CONFIRMED) && s.executions == 0 && !(s.flags & LEDGER_F_DEAD_LETTERED);
		t->lost_in_dlq += (s.flags & LEDGER_F_CONFIRMED) && s.executions == 0 && (s.flags & LEDGER_F_DEAD_LETTERED);
		t->wrongly_suppressed += s.suppressed;
		t->processed_messages += s.executions > 0;
		t->saturated += (s.flags & LEDGER_F_SATURATED) != 0;
		t->copy_overflow += (s.flags & LEDGER_F_COPY_OVERFLOW) != 0;
		t->copies_hist[s.ncopies]++;
	}
	for (int c = 0; c < LEDGER_CAUSES; c++)
		t->misses[c] = load_u64(&l->misses[c]);
	t->foreign = load_u64(&l->foreign);
}

/* Collects violations: counts all, writes the first few into the caller's buffer. */
struct ledger_violations {
	size_t count;
	char *buf;
	size_t len, used;
};

#define VIOLATION_LINES 8

static void violations_append(struct ledger_violations *r, const char *fmt, va_list ap)
{
	int n;

	if (!r->buf || r->used + 1 >= r->len)
		return;
	n = vsnprintf(r->buf + r->used, r->len - r->used, fmt, ap);
	if (n < 0)
		return;
	r->used += (size_t)n;
	if (r->used + 1 < r->len) {
		r->buf[r->used++] = '\n';
		r->buf[r->used] = '\0';
	} else {
		r->used = r->len - 1; /* truncated */
	}
}

static void __attribute__((format(printf, 2, 3))) violations_add(struct ledger_violations *r, const char *fmt, ...)
{
	va_list ap;

	if (r->count++ >= VIOLATION_LINES)
		return;
	va_start(ap, fmt);
	violations_append(r, fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 2, 3))) violations_note(struct ledger_violations *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	violations_append(r, fmt, ap);
	va_end(ap);
}

size_t ledger_check(const struct ledger *l, bool drained, char *msg, size_t msglen)
{
	struct ledger_violations r = { .buf = msg, .len = msglen };
	struct ledger_totals t;
	uint64_t misses = 0;
	struct snap s;

	if (msg && msglen)
		msg[0] = '\0';
	for (size_t i = 0; i < l->count; i++) {
		snap_of(&l->msgs[i], &s);
		if (s.executions > s.decided)
			violations_add(&r, "message %zu: executions %u > decided %u", i, s.executions, s.decided);
		if (s.decided > s.deliveries)
			violations_add(&r, "message %zu: decided %u > deliveries %u", i, s.decided, s.deliveries);
		if (s.deliveries && !s.attempts)
			violations_add(&r, "message %zu: %u deliveries but never published", i, s.deliveries);
		if ((s.flags & LEDGER_F_CONFIRMED) && !s.attempts)
			violations_add(&r, "message %zu: confirmed but never published", i);
		if (s.ncopies > s.attempts)
			violations_add(&r, "message %zu: %u distinct copies delivered > %u publish attempts", i, s.ncopies,
				  s.attempts);
		if (drained && (s.inflight || s.claims))
			violations_add(&r, "message %zu: %u deliveries still in flight (%u claims) after the drain", i,
				  s.inflight, s.claims);
		if (s.decided && s.dups > s.decided - 1)
			violations_add(&r, "message %zu: %u duplicate deliveries of %u decided", i, s.dups, s.decided);
		if (s.executions > 1 && s.executions - 1 > s.dups && !(s.flags & LEDGER_F_SATURATED))
			violations_add(&r, "message %zu: executed %u times with %u duplicate deliveries", i, s.executions,
				  s.dups);
		if (s.suppressed && !(s.flags & LEDGER_F_REJECTED_K0))
			violations_add(&r, "message %zu: wrongly suppressed without a rejection", i);
		if (drained && (s.flags & LEDGER_F_CONFIRMED) && s.deliveries && !s.executions &&
		    !(s.flags & (LEDGER_F_REJECTED_K0 | LEDGER_F_DEAD_LETTERED)))
			violations_add(&r, "message %zu: lost, but no delivery was rejected while it was unexecuted", i);
	}
	ledger_totals(l, &t);
	for (int c = 0; c < LEDGER_CAUSES; c++)
		misses += t.misses[c];
	/* A saturated K stops counting while misses go on: then only >= can hold. */
	if (t.saturated ? misses < t.duplicates_processed : misses != t.duplicates_processed)
		violations_add(&r, "misses by cause add up to %llu, duplicates processed %llu", (unsigned long long)misses,
			  (unsigned long long)t.duplicates_processed);
	if (t.foreign)
		violations_add(&r, "%llu foreign deliveries (message ids not of this run)", (unsigned long long)t.foreign);
	if (r.count > VIOLATION_LINES)
		violations_note(&r, "... and %zu more", r.count - VIOLATION_LINES);
	return r.count;
}
