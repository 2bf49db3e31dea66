/* rule.h — fault rules: `ACTION METHOD [from=..] [p=..] [then=..] [after=N]` and their seeded decisions. */
#ifndef DUPSIM_RULE_H
#define DUPSIM_RULE_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

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

/* Rule set with its decision state: one seeded generator per rule, so the
 * same seed and the same sequence of frames give the same decisions. */
struct rule_set {
	struct rule *rules;
	size_t count;
	uint64_t *matched; /* matching frames seen, per rule */
	uint64_t *fired;   /* times fired, per rule */
	struct util_rng *rng;
};

/* Copies the rules; 0 or -1 (out of memory). */
int rule_set_init(struct rule_set *s, const struct rule *rules, size_t count, uint64_t seed);
void rule_set_release(struct rule_set *s);

/*
 * Decides for one complete method frame sent by `from`. Returns the index of
 * the first rule that fires, or -1 when none does. Every matching rule counts
 * the frame and draws from its generator, fired or not, so decisions depend
 * only on the seed and the frame sequence.
 */
int rule_set_decide(struct rule_set *s, uint32_t method, enum rule_from from);

const char *rule_from_name(enum rule_from f);

#endif
