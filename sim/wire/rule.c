/* rule.c — fault rules: parsing the grammar and deciding, reproducibly, which frames they hit. */
#include "wire/rule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/frame.h"
#include "core/clock.h"
#include "core/parse.h"
#include "core/log.h"
#include "core/rng.h"

const char *rule_from_name(enum rule_from f)
{
	switch (f) {
	case RULE_FROM_CLIENT:
		return "client";
	case RULE_FROM_BROKER:
		return "broker";
	default:
		return "any";
	}
}

const char *rule_method_name(uint32_t method)
{
	return method == RULE_METHOD_HEARTBEAT ? "heartbeat" : frame_method_name(method);
}

/* METHOD: an AMQP method name, or `heartbeat`. 0, or -1 for an unknown name. */
static int rule_method_lookup(const char *name, uint32_t *method)
{
	if (strcmp(name, "heartbeat") == 0) {
		*method = RULE_METHOD_HEARTBEAT;
		return 0;
	}
	return frame_method_lookup(name, method);
}

/* The method name closest to a misspelt one, or NULL when nothing is close. */
static const char *rule_nearest_method(const char *name)
{
	const char *best = NULL;
	size_t best_d = 4;

	for (size_t i = 0; i <= frame_method_count(); i++) {
		const char *m = i < frame_method_count() ? frame_method_name(frame_method_at(i)) : "heartbeat";
		size_t d = parse_edit_distance(name, m);

		if (d < best_d) {
			best_d = d;
			best = m;
		}
	}
	return best;
}

static void rule_canonical(struct rule *r)
{
	int n = 0;

	if (r->until_ns) {
		char a[32], b[32];

		n = snprintf(r->text, sizeof(r->text), "%s-%s ", clock_fmt_duration(r->from_ns, a, sizeof(a)),
			     clock_fmt_duration(r->until_ns, b, sizeof(b)));
	}
	n += snprintf(r->text + n, sizeof(r->text) - (size_t)n, "%s %s", r->action == RULE_DROP ? "drop" : "cut",
		      rule_method_name(r->method));

	if (r->from != RULE_FROM_ANY)
		n += snprintf(r->text + n, sizeof(r->text) - (size_t)n, " from=%s", rule_from_name(r->from));
	if (r->p != 1.0) {
		/* the shortest text that reads back to the same double */
		int prec = 1;
		char num[40];

		do
			snprintf(num, sizeof(num), "%.*g", prec, r->p);
		while (strtod(num, NULL) != r->p && ++prec <= 17);
		n += snprintf(r->text + n, sizeof(r->text) - (size_t)n, " p=%s", num);
	}
	if (r->action == RULE_DROP && r->then == RULE_THEN_HANG)
		n += snprintf(r->text + n, sizeof(r->text) - (size_t)n, " then=hang");
	if (r->after > 1)
		snprintf(r->text + n, sizeof(r->text) - (size_t)n, " after=%llu", (unsigned long long)r->after);
}

/* One `key=value` option of a rule's text into r; *seen_then when it was then=. 0, or -1 with err. */
static int rule_parse_option(const char *text, char *tok, struct rule *r, int *seen_then, char *err, size_t errlen)
{
	char *eq = strchr(tok, '=');
	const char *val;

	if (!eq)
		return log_seterr(err, errlen,
				"rule '%s': '%s' is not an option; options are from=, p=, then=, after=", text,
				tok);
	*eq = '\0';
	val = eq + 1;
	if (strcmp(tok, "from") == 0) {
		if (strcmp(val, "client") == 0)
			r->from = RULE_FROM_CLIENT;
		else if (strcmp(val, "broker") == 0)
			r->from = RULE_FROM_BROKER;
		else
			return log_seterr(err, errlen, "rule '%s': from=%s; allowed: from=client, from=broker",
					text, val);
	} else if (strcmp(tok, "p") == 0) {
		if (parse_prob(val, &r->p) < 0)
			return log_seterr(err, errlen,
					"rule '%s': p=%s; a probability is a fraction in [0, 1] (0.01) or "
					"a percentage (1%%)",
					text, val);
	} else if (strcmp(tok, "then") == 0) {
		if (strcmp(val, "close") == 0)
			r->then = RULE_THEN_CLOSE;
		else if (strcmp(val, "hang") == 0)
			r->then = RULE_THEN_HANG;
		else
			return log_seterr(err, errlen, "rule '%s': then=%s; allowed: then=close, then=hang",
					text, val);
		*seen_then = 1;
	} else if (strcmp(tok, "after") == 0) {
		if (parse_u64(val, &r->after) < 0 || r->after < 1)
			return log_seterr(err, errlen,
					"rule '%s': after=%s; after takes a whole number N >= 1 (fire from "
					"the N-th matching frame on)",
					text, val);
	} else {
		return log_seterr(err, errlen, "rule '%s': unknown option '%s'; options are from=, p=, then=, after=",
				text, tok);
	}
	return 0;
}

int rule_parse(const char *text, struct rule *r, char *err, size_t errlen)
{
	char buf[512];
	char *save = NULL, *tok;
	int seen_then = 0;

	if (strlen(text) >= sizeof(buf))
		return log_seterr(err, errlen, "rule too long (at most %zu characters)", sizeof(buf) - 1);
	memcpy(buf, text, strlen(text) + 1);
	memset(r, 0, sizeof(*r));
	r->p = 1.0;
	r->after = 1;

	tok = strtok_r(buf, " \t", &save);
	if (!tok)
		return log_seterr(err, errlen,
				"empty rule; expected: drop|cut METHOD [from=client|broker] [p=PROB] "
				"[then=close|hang] [after=N]");
	if (strcmp(tok, "drop") == 0)
		r->action = RULE_DROP;
	else if (strcmp(tok, "cut") == 0)
		r->action = RULE_CUT;
	else if (strchr(tok, '-') && strchr("0123456789.", tok[0]))
		return log_seterr(err, errlen,
				"rule '%s': '%s' looks like a time window; a rule on a timetable is a schedule "
				"([faults] schedule = START-END RULE), a plain rule starts with drop or cut",
				text, tok);
	else
		return log_seterr(err, errlen, "rule '%s': unknown action '%s'; allowed: drop, cut", text, tok);

	tok = strtok_r(NULL, " \t", &save);
	if (!tok)
		return log_seterr(err, errlen, "rule '%s': missing METHOD after '%s' (e.g. tx.commit-ok, basic.ack)",
				text, r->action == RULE_DROP ? "drop" : "cut");
	if (rule_method_lookup(tok, &r->method) < 0) {
		const char *near = rule_nearest_method(tok);

		if (near)
			return log_seterr(err, errlen, "rule '%s': unknown method '%s'; did you mean '%s'?", text,
					tok, near);
		return log_seterr(err, errlen,
				"rule '%s': unknown method '%s'; methods are AMQP names like tx.commit-ok, "
				"basic.ack, basic.nack, confirm.select-ok, or heartbeat",
				text, tok);
	}

	while ((tok = strtok_r(NULL, " \t", &save)))
		if (rule_parse_option(text, tok, r, &seen_then, err, errlen) < 0)
			return -1;
	if (seen_then && r->action == RULE_CUT)
		return log_seterr(err, errlen,
				"rule '%s': then= applies to drop only (cut always forwards the frame and closes)",
				text);
	rule_canonical(r);
	return 0;
}

/* One bound of a window: a duration with a unit, rounded to 1 us as scenario durations are. 0 or -1. */
static int rule_parse_bound(const char *s, uint64_t *ns)
{
	uint64_t t;

	if (!*s || parse_duration(s, &t) < 0)
		return -1;
	*ns = (t + 500) / 1000 * 1000; /* clock_fmt_duration prints whole microseconds back exactly */
	return 0;
}

int rule_parse_scheduled(const char *text, struct rule *r, char *err, size_t errlen)
{
	char win[64], *dash;
	const char *rest = text + strspn(text, " \t");
	size_t n = strcspn(rest, " \t");
	uint64_t from, until;

	if (n == 0 || n >= sizeof(win) || !memchr(rest, '-', n))
		return log_seterr(err, errlen,
				"schedule '%s': expected START-END RULE, a time window then a rule "
				"(e.g. 10s-20s drop basic.ack from=client p=5%%)",
				text);
	memcpy(win, rest, n);
	win[n] = '\0';
	dash = strchr(win + 1, '-'); /* not the first character: "-1s" is no start */
	if (!dash)
		dash = win;
	*dash = '\0';
	if (rule_parse_bound(win, &from) < 0 || rule_parse_bound(dash + 1, &until) < 0)
		return log_seterr(err, errlen,
				"schedule '%s': '%.*s' is not a time window; START-END are durations from the "
				"run's start with a unit (500ms, 2s, 5m), e.g. 10s-20s",
				text, (int)n, rest);
	if (until <= from)
		return log_seterr(err, errlen, "schedule '%s': the window %.*s ends before it starts; END must be "
				"after START (e.g. 10s-20s)", text, (int)n, rest);
	if (rule_parse(rest + n + strspn(rest + n, " \t"), r, err, errlen) < 0)
		return -1;
	r->from_ns = from;
	r->until_ns = until;
	rule_canonical(r);
	return 0;
}

bool rule_in_force(const struct rule *r, uint64_t t_ns)
{
	return r->until_ns == 0 || (t_ns >= r->from_ns && t_ns < r->until_ns);
}

void rule_change_p(struct rule *r, double p)
{
	r->p = p;
	rule_canonical(r);
}

/* Room for n rules in force and n ids' counters; 0 or -1 (out of memory: what was grown stays, s is intact). */
static int rule_set_grow(struct rule_set *s, size_t n)
{
	struct rule *rules;
	uint64_t *id, *matched, *fired;
	size_t cap = s->cap ? s->cap : 4;

	while (cap < n)
		cap *= 2;
	if (cap == s->cap)
		return 0;
	/* each realloc that succeeds is kept, so a failure part way leaves s consistent */
	if (!(rules = realloc(s->rules, cap * sizeof(*rules))))
		return -1;
	s->rules = rules;
	if (!(id = realloc(s->id, cap * sizeof(*id))))
		return -1;
	s->id = id;
	if (!(matched = realloc(s->matched, cap * sizeof(*matched))))
		return -1;
	s->matched = matched;
	if (!(fired = realloc(s->fired, cap * sizeof(*fired))))
		return -1;
	s->fired = fired;
	s->cap = cap;
	return 0;
}

int rule_set_init(struct rule_set *s, const struct rule *rules, size_t count, uint64_t seed)
{
	memset(s, 0, sizeof(*s));
	s->seed = seed;
	for (size_t i = 0; i < count; i++) {
		uint64_t id;

		if (rule_set_add(s, &rules[i], &id) < 0) {
			rule_set_release(s);
			return -1;
		}
	}
	return 0;
}

void rule_set_release(struct rule_set *s)
{
	free(s->rules);
	free(s->id);
	free(s->matched);
	free(s->fired);
	memset(s, 0, sizeof(*s));
}

/*
 * The counters are indexed by id - 1 and the rules in force are at most the
 * ids given, so cap covers both: both arrays grow together.
 */
int rule_set_add(struct rule_set *s, const struct rule *r, uint64_t *id)
{
	if (rule_set_grow(s, s->ids + 1) < 0)
		return -1;
	s->matched[s->ids] = s->fired[s->ids] = 0;
	s->ids++;
	s->rules[s->count] = *r;
	s->id[s->count] = s->ids;
	s->count++;
	*id = s->ids;
	return 0;
}

int rule_set_find(const struct rule_set *s, uint64_t id)
{
	for (size_t i = 0; i < s->count; i++)
		if (s->id[i] == id)
			return (int)i;
	return -1;
}

int rule_set_remove(struct rule_set *s, uint64_t id)
{
	int i = rule_set_find(s, id);

	if (i < 0)
		return -1;
	/* keep id order: the first rule that fires is the earliest added */
	memmove(&s->rules[i], &s->rules[i + 1], (s->count - (size_t)i - 1) * sizeof(*s->rules));
	memmove(&s->id[i], &s->id[i + 1], (s->count - (size_t)i - 1) * sizeof(*s->id));
	s->count--;
	return 0;
}

/* splitmix64's finaliser: every input bit moves every output bit. */
static uint64_t rule_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t rule_seed(uint64_t seed, size_t rule, uint64_t conn)
{
	const uint64_t golden = 0x9e3779b97f4a7c15ull; /* splitmix64's increment */
	uint64_t h = rule_mix(seed + golden);

	h = rule_mix(h + golden * ((uint64_t)rule + 1));
	return rule_mix(h + golden * (conn + 1));
}

/* Covers ids up to `ids`: generators and counters for the ones rc lacks; 0 or -1 (out of memory, rc unchanged). */
static int rule_conn_grow(struct rule_conn *rc, uint64_t seed, size_t ids)
{
	struct rng *rng;
	uint64_t *matched;

	if (ids <= rc->count)
		return 0;
	if (!(rng = realloc(rc->rng, ids * sizeof(*rng))))
		return -1;
	rc->rng = rng;
	if (!(matched = realloc(rc->matched, ids * sizeof(*matched))))
		return -1;
	rc->matched = matched;
	for (size_t k = rc->count; k < ids; k++) {
		rng_seed(&rc->rng[k], rule_seed(seed, k, rc->conn));
		rc->matched[k] = 0;
	}
	rc->count = ids;
	return 0;
}

int rule_conn_init(struct rule_conn *rc, const struct rule_set *s, uint64_t conn)
{
	memset(rc, 0, sizeof(*rc));
	rc->conn = conn;
	if (rule_conn_grow(rc, s->seed, s->ids) < 0) {
		rule_conn_release(rc);
		return -1;
	}
	return 0;
}

void rule_conn_release(struct rule_conn *rc)
{
	if (!rc)
		return;
	free(rc->rng);
	free(rc->matched);
	memset(rc, 0, sizeof(*rc));
}

int rule_set_decide(struct rule_set *s, struct rule_conn *rc, uint32_t method, enum rule_from from)
{
	return rule_set_decide_at(s, rc, method, from, 0);
}

int rule_set_decide_at(struct rule_set *s, struct rule_conn *rc, uint32_t method, enum rule_from from,
		       uint64_t t_ns)
{
	int hit = -1;

	if (rc->count < s->ids)
		(void)rule_conn_grow(rc, s->seed, s->ids); /* on failure the newer ids are skipped below */
	for (size_t i = 0; i < s->count; i++) {
		const struct rule *r = &s->rules[i];
		size_t k = (size_t)s->id[i] - 1;
		double u;

		if (k >= rc->count || r->method != method || (r->from != RULE_FROM_ANY && r->from != from) ||
		    !rule_in_force(r, t_ns))
			continue;
		s->matched[k]++;
		rc->matched[k]++;
		u = rng_unit(&rc->rng[k]);
		if (rc->matched[k] < r->after || u >= r->p || hit >= 0)
			continue;
		s->fired[k]++;
		hit = (int)i;
	}
	return hit;
}
