/* policy.h — the dedup policy: which copies are looked up, how the key goes in, and whether the mark precedes the side effect. */
#ifndef DUPSIM_DEDUP_POLICY_H
#define DUPSIM_DEDUP_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "core/scenario.h"

struct dedup_policy {
	enum scenario_check check;
	enum scenario_mark mark;
};

/* The steps after the decision, in the order the policy takes them. */
enum dedup_step { DEDUP_STEP_MARK, DEDUP_STEP_PROCESS };

/*
 * How a copy is handled before its side effect:
 *   DEDUP_ASSUME_FIRST  no lookup: the copy is taken as the first (check =
 *                       republish-count or flagged, count 0, not redelivered)
 *   DEDUP_LOOKUP        a lookup now, the insert later (mark = after, or a
 *                       crash is due between the two)
 *   DEDUP_CHECK_AND_PUT one atomic check-and-insert (mark = before)
 */
enum dedup_decision { DEDUP_ASSUME_FIRST, DEDUP_LOOKUP, DEDUP_CHECK_AND_PUT };

/* split_mark: the caller needs the lookup and the insert apart (a crash
 * point falls between them). */
enum dedup_decision dedup_policy_decide(const struct dedup_policy *p, int64_t republish_count, bool redelivered,
					bool split_mark);

/* True when an assumed-first copy's insert may be pipelined (republish-count)
 * rather than made at once (flagged). */
bool dedup_policy_defers(const struct dedup_policy *p);

/* The two steps after the decision, in order: mark then process (before),
 * or process then mark (after). */
const enum dedup_step *dedup_policy_steps(const struct dedup_policy *p);

#endif
