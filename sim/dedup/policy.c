/* policy.c — the dedup policy: which copies are looked up, how the key goes in, and whether the mark precedes the side effect. */
#include "dedup/policy.h"

enum dedup_decision dedup_policy_decide(const struct dedup_policy *p, int64_t republish_count, bool redelivered,
					bool split_mark)
{
	/* the shortcut: a first publish that was never delivered before is
	 * assumed new; the races this misses are what dupsim measures */
	if (p->check != SCENARIO_CHECK_ALWAYS && republish_count <= 0 && !redelivered)
		return DEDUP_ASSUME_FIRST;
	if (p->mark != SCENARIO_MARK_BEFORE || split_mark)
		return DEDUP_LOOKUP;
	return DEDUP_CHECK_AND_PUT;
}

bool dedup_policy_defers(const struct dedup_policy *p)
{
	return p->check == SCENARIO_CHECK_REPUBLISH_COUNT;
}

const enum dedup_step *dedup_policy_steps(const struct dedup_policy *p)
{
	static const enum dedup_step mark_first[2] = { DEDUP_STEP_MARK, DEDUP_STEP_PROCESS };
	static const enum dedup_step process_first[2] = { DEDUP_STEP_PROCESS, DEDUP_STEP_MARK };

	return p->mark == SCENARIO_MARK_BEFORE ? mark_first : process_first;
}
