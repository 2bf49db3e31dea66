/* rule.h — fault rules: `ACTION METHOD [from=..] [p=..] [then=..] [after=N]` and their seeded decisions. */
#ifndef DUPSIM_RULE_H
#define DUPSIM_RULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"

enum rule_action {
	RULE_DROP, /* swallow the frame, then `then` */
	RULE_CUT,  /* forward the frame, then cut the connection */
};

enum rule_then {
	RULE_THEN_CLOSE, /* cut both sides at once */
	RULE_THEN_HANG,	 /* keep the connection; the peer must time out */
};

/* Who sent the frame. RULE_FROM_ANY only in a rule. */
enum rule_from {
	RULE_FROM_ANY = 0,
	RULE_FROM_CLIENT = 1,
	RULE_FROM_BROKER = 2,
};

#define RULE_TEXT_MAX 160

/*
 * METHOD `heartbeat`: heartbeat frames (type 8), which have no class and
 * method. No AMQP class is numbered 8, so this number names no method.
 */
#define RULE_METHOD_HEARTBEAT ((uint32_t)8 << 16)

/* The rule name of a method number (`basic.ack`, `heartbeat`), NULL for an unknown number. */
const char *rule_method_name(uint32_t method);

struct rule {
	enum rule_action action;
	uint32_t method; /* class << 16 | method */
	enum rule_from from;
	double p;	/* probability of firing on a matching frame */
	enum rule_then then;
	uint64_t after; /* fire only from the after-th matching frame on (1 = first) */
	/*
	 * A scheduled rule is in force only while from_ns <= t < until_ns, t
	 * counted from a time base its user chooses (the run's start). until_ns
	 * 0: no window, always in force (so a zeroed rule has none).
	 */
	uint64_t from_ns, until_ns;
	char text[RULE_TEXT_MAX]; /* canonical text, for messages and reports; a window comes first */
};

/*
 * Parses one rule. Returns 0, or -1 with one line in err naming the bad word
 * and what is allowed (e.g. the nearest method name for a typo).
 */
int rule_parse(const char *text, struct rule *r, char *err, size_t errlen);

/*
 * Parses a rule on a timetable, `START-END RULE` (`10s-20s drop basic.ack
 * from=client p=5%`): durations with a unit (500ms, 2s, 5m; rounded to whole
 * microseconds), END after START. Returns 0, or -1 with one line in err that
 * says what is wrong and what is allowed. r->text reads back the same.
 */
int rule_parse_scheduled(const char *text, struct rule *r, char *err, size_t errlen);

/* Whether r is in force at t_ns from the time base: always for a rule without a window. */
bool rule_in_force(const struct rule *r, uint64_t t_ns);

/* Sets r's probability and rewrites its canonical text to match (p in [0, 1]). */
void rule_change_p(struct rule *r, double p);

/*
 * Decisions are made per connection: each rule has, on each connection, its
 * own generator, seeded from the run seed, the rule's id and the
 * connection's ordinal (rule_seed), and its own count of matching frames
 * (after=N counts that connection's frames). The same seed then gives the
 * same decisions on each connection, whatever the interleaving of the
 * connections' frames and whoever else is connected.
 *
 * A set's rules can change while connections are open (the proxy's control
 * API): each rule has an id, 1, 2, ... in the order rules were added (the
 * rules given to rule_set_init are ids 1..count), never reused; removing a
 * rule leaves the others' ids, generators and counters as they were. A
 * connection opened before a rule was added gets that rule's generator when
 * it first decides after the addition, seeded the same way from the id: the
 * n-th connection's decisions for a rule do not depend on when it was added.
 */

/* The rules and their counters over all connections. */
struct rule_set {
	struct rule *rules; /* the rules in force, in id order (ids ascending) */
	uint64_t *id;	    /* per rule in force: its id */
	size_t count, cap;  /* rules in force, room */
	uint64_t seed;
	size_t ids;	   /* ids given so far: the next rule added gets ids + 1 */
	uint64_t *matched; /* per id - 1, every id given (a removed rule keeps its counts): matching frames */
	uint64_t *fired;   /* per id - 1: times fired, over all connections */
};

/* One connection's decision state for a rule set. */
struct rule_conn {
	uint64_t conn;	   /* the connection's ordinal: later rules' generators are seeded from it */
	size_t count;	   /* ids covered: rng and matched have an entry per id - 1 below it */
	struct rng *rng;   /* per id - 1 */
	uint64_t *matched; /* per id - 1: matching frames on this connection */
};

/* Copies the rules, ids 1..count; 0 or -1 (out of memory). */
int rule_set_init(struct rule_set *s, const struct rule *rules, size_t count, uint64_t seed);
void rule_set_release(struct rule_set *s);
/* Adds a copy of r after the others, with the next id (into *id); 0 or -1 (out of memory, s unchanged). */
int rule_set_add(struct rule_set *s, const struct rule *r, uint64_t *id);
/* The index among the rules in force of the rule with this id, or -1 when there is none (removed, never given). */
int rule_set_find(const struct rule_set *s, uint64_t id);
/* Removes the rule with this id; its counters stay under its id. 0, or -1 when no rule has it. */
int rule_set_remove(struct rule_set *s, uint64_t id);

/* The seed of rule number `rule` (its id - 1) on connection ordinal `conn` (a splitmix64 hash of the three). */
uint64_t rule_seed(uint64_t seed, size_t rule, uint64_t conn);

/* Makes connection ordinal conn's decision state for s; 0 or -1 (out of memory). */
int rule_conn_init(struct rule_conn *rc, const struct rule_set *s, uint64_t conn);
/* NULL ok; rc is left empty. */
void rule_conn_release(struct rule_conn *rc);

/*
 * Decides for one complete method frame sent by `from` on the connection
 * whose state is rc (made by rule_conn_init for this s). Returns the index
 * among the rules in force (s->rules, s->id) of the first rule that fires,
 * or -1 when none does. Every matching rule counts the frame (on the
 * connection and in the set) and draws from the connection's generator,
 * fired or not, so a connection's decisions depend only on the seed, its
 * ordinal and its own frames. A rule added since rc last grew gets its
 * generator here; when that cannot be allocated, the rules added since are
 * not applied to this connection (the proxy goes on relaying).
 */
int rule_set_decide(struct rule_set *s, struct rule_conn *rc, uint32_t method, enum rule_from from);

/*
 * The same at t_ns from the time base: a rule outside its window (see
 * rule_in_force) does not see the frame at all; it is not counted as
 * matched, draws nothing and does not advance after=N. So the n-th frame a
 * scheduled rule sees on a connection inside its window gets the same
 * decision whatever came outside it. rule_set_decide decides at t_ns = 0.
 */
int rule_set_decide_at(struct rule_set *s, struct rule_conn *rc, uint32_t method, enum rule_from from,
		       uint64_t t_ns);

const char *rule_from_name(enum rule_from f);

#endif
