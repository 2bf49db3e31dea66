/* rule.h — fault rules: `ACTION METHOD [from=..] [p=..] [then=..] [after=N]` and their seeded decisions. */
#ifndef DUPSIM_RULE_H
#define DUPSIM_RULE_H

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

struct rule {
	enum rule_action action;
	uint32_t method; /* class << 16 | method */
	enum rule_from from;
	double p;	/* probability of firing on a matching frame */
	enum rule_then then;
	uint64_t after; /* fire only from the after-th matching frame on (1 = first) */
	char text[RULE_TEXT_MAX]; /* canonical text, for messages and reports */
};

/*
 * Parses one rule. Returns 0, or -1 with one line in err naming the bad word
 * and what is allowed (e.g. the nearest method name for a typo).
 */
int rule_parse(const char *text, struct rule *r, char *err, size_t errlen);

/*
 * Decisions are made per connection: each rule has, on each connection, its
 * own generator, seeded from the run seed, the rule's index and the
 * connection's ordinal (rule_seed), and its own count of matching frames
 * (after=N counts that connection's frames). The same seed then gives the
 * same decisions on each connection, whatever the interleaving of the
 * connections' frames and whoever else is connected.
 */

/* The rules and their counters over all connections. */
struct rule_set {
	struct rule *rules;
	size_t count;
	uint64_t seed;
	uint64_t *matched; /* matching frames seen, per rule, over all connections */
	uint64_t *fired;   /* times fired, per rule, over all connections */
};

/* One connection's decision state for a rule set. */
struct rule_conn {
	size_t count;	   /* rules covered (the set's count when made) */
	struct rng *rng; /* per rule */
	uint64_t *matched;    /* per rule: matching frames on this connection */
};

/* Copies the rules; 0 or -1 (out of memory). */
int rule_set_init(struct rule_set *s, const struct rule *rules, size_t count, uint64_t seed);
void rule_set_release(struct rule_set *s);

/* The seed of rule number `rule` on connection ordinal `conn` (a splitmix64 hash of the three). */
uint64_t rule_seed(uint64_t seed, size_t rule, uint64_t conn);

/* Makes connection ordinal conn's decision state for s; 0 or -1 (out of memory). */
int rule_conn_init(struct rule_conn *rc, const struct rule_set *s, uint64_t conn);
/* NULL ok; rc is left empty. */
void rule_conn_release(struct rule_conn *rc);

/*
 * Decides for one complete method frame sent by `from` on the connection
 * whose state is rc (made by rule_conn_init for this s). Returns the index
 * of the first rule that fires, or -1 when none does. Every matching rule
 * counts the frame (on the connection and in the set) and draws from the
 * connection's generator, fired or not, so a connection's decisions depend
 * only on the seed, its ordinal and its own frames.
 */
int rule_set_decide(struct rule_set *s, struct rule_conn *rc, uint32_t method, enum rule_from from);

const char *rule_from_name(enum rule_from f);

#endif
