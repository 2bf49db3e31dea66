/* model.h — the analytic duplicate model: expected excess copies and duplicate deliveries from the faults a run applies. */
#ifndef DUPSIM_MODEL_H
#define DUPSIM_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/rule.h"

/*
 * What the model needs, from the scenario's keys and the rules the proxy
 * actually applies (model_in_from_rules), plus figures measured during
 * normal operation where a quantity depends on timing (NAN: not measured,
 * then no prediction that needs them).
 */
struct model_in {
	bool confirm_mode;
	unsigned batch;	    /* tx: messages per commit; confirm: most unconfirmed */
	unsigned ack_every; /* messages per consumer ack frame */
	unsigned consumers; /* 0: nothing is delivered */
	/* per frame: the probability that the proxy drops (or cuts after) it */
	double commit_ok_lost;	/* tx.commit-ok dropped, then=close or hang: the publisher republishes */
	double confirm_lost;	/* a confirm (basic.ack/nack from the broker) dropped, close or hang */
	double ack_dropped;	/* a consumer basic.ack dropped, then=close */
	double ack_hung;	/* a consumer basic.ack dropped, then=hang: redelivered only when the connection ends */
	double ack_cut;		/* a consumer basic.ack forwarded, then the connection cut */
	/* measured during normal operation */
	double ahead;		 /* deliveries the broker had handed the client beyond the one an ack covers,
				  * at every ack (the proxy's acks_sampled / ahead_sum) */
	double ahead_sq;	 /* the mean of its square (ahead_sq_sum / acks_sampled): the spread of event sizes */
	double confirms_per_msg; /* confirm frames the broker sent per publish (multiple-confirms cover several) */
	double committed;	 /* messages the band is for (0 or NAN: no band) */
	char unmodelled[RULE_TEXT_MAX + 64]; /* the first fault the model does not cover; "" none */
};

struct model_out {
	bool predicted;		      /* false: a fault is not covered, or a measured input is missing */
	double excess_copies_per_msg; /* enqueued copies beyond the first, per committed message */
	double duplicate_rate;	      /* duplicate deliveries / committed */
	double dups_per_lost_ack;     /* duplicate deliveries one dropped consumer ack frame causes */
	double duplicate_rate_sd;     /* the spread of a run's duplicate rate over committed messages if the model
				       * holds (NAN: unknown); its 95 % band is duplicate_rate ± 1.96 of it */
	char why[256];		      /* when not predicted: what is missing */
};

/*
 * Fills in from the run's rules (the shortcut keys are rules too): each
 * rule's probability, combined per frame as independent draws. Any rule the
 * model does not cover, a consumer or broker crash, or an `after=N` rule
 * goes into in->unmodelled. Scenario values (batch, ack_every, ...) and the
 * measured figures are the caller's.
 */
void model_in_from_rules(struct model_in *in, const struct rule *rules, size_t count);

/*
 * The same inputs with each rule's probability replaced by the fraction of
 * its frames it actually hit (fired / matched; a rule that matched nothing
 * keeps its p). The prediction from these is the model given the faults the
 * proxy applied: it tests the mechanism (duplicates per fault) without the
 * luck of how many faults a seed draws, which the band also covers.
 * 0, or -1 when out of memory (out is then a copy of nominal).
 */
int model_in_realized(struct model_in *out, const struct model_in *nominal, const struct rule *rules, size_t count,
		      const uint64_t *matched, const uint64_t *fired);

/* The prediction; see model.c for the derivation and its assumptions. */
void model_predict(const struct model_in *in, struct model_out *out);

/* One sentence: what the model assumes (for summary.json and report.md). */
extern const char model_assumptions[];

#endif
