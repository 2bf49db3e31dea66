/* evidence.h — intervals whose sampling unit is the fault event: miss probability, duplicate-rate band, validate's looks. */
#ifndef DUPSIM_EVIDENCE_H
#define DUPSIM_EVIDENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Why: the duplicates of one fault event (a cut consumer connection, a
 * republished batch, a broker crash) share their fate: the same gap, the same
 * consumer, the same cache. They are not independent trials, so every interval
 * here treats the event as the unit: a cluster of `dups` duplicate deliveries
 * of which `misses` were processed again.
 */
struct evidence_event {
	uint64_t dups;
	uint64_t misses;
};

/* Fewer events than this with a duplicate: no interval is honest; none is given. */
#define EVIDENCE_MIN_EVENTS 20

struct evidence_interval {
	double estimate;    /* Σ misses / Σ dups (0 without duplicates) */
	double low, high;   /* the interval; NAN when has_interval is false */
	bool has_interval;
	double confidence;  /* two-sided */
	uint64_t events;    /* events with at least one duplicate */
	uint64_t dups, misses;
	double deff;	    /* design effect: variance over events / the binomial one; NAN when undefined */
	double n_eff;	    /* duplicates the evidence is worth as independent trials; NAN when undefined */
	const char *method; /* "events-kg", "events-zero", "events-all", or "none" */
	const char *reason; /* "" or why there is no interval (one sentence, no trailing period) */
};

/*
 * The ratio Σx / Σd over n events with a two-sided interval at `confidence`
 * (see evidence.c for the method: Korn–Graubard's effective-sample-size
 * Clopper–Pearson with a cluster-robust variance and a t correction; with
 * zero misses, or all missed, a bound that holds however the duplicates of an
 * event are correlated). Events with d = 0 are ignored. Fewer than
 * EVIDENCE_MIN_EVENTS events with duplicates: no interval, and `reason` says so.
 */
void evidence_ratio(const struct evidence_event *ev, size_t n, double confidence, struct evidence_interval *out);

/*
 * The same ratio from per-event arrays (x[i] of d[i]); for callers that keep
 * their counts apart (the miss-vs-TTL curve, validate's pooled runs).
 */
void evidence_ratio2(const uint64_t *x, const uint64_t *d, size_t n, double confidence,
		     struct evidence_interval *out);

/*
 * A band on the total Σd of duplicates that came in n events, the events a
 * Poisson process: Var(Σd) = Σd² (compound Poisson), normal quantile.
 * Returns false (lo, hi NAN) with fewer than EVIDENCE_MIN_EVENTS events.
 */
bool evidence_count_band(const struct evidence_event *ev, size_t n, double confidence, double *lo, double *hi);

/*
 * The same, with the events marked in `sized` (may be NULL) counted at the
 * squared size `size_sq` expected of them instead of their own: for lost
 * acks, whose size (k + the deliveries ahead of the ack) the proxy saw the
 * distribution of at every ack, while a run's hundred-odd lost acks mostly
 * miss its rare large values, and a band from their own sizes is then too
 * narrow exactly when the count came out low.
 */
bool evidence_count_band_sized(const struct evidence_event *ev, size_t n, const bool *sized, double size_sq,
			       double confidence, double *lo, double *hi);

/* Student t quantile: P(T <= t) = p with df degrees of freedom (df >= 1). */
double evidence_t_quantile(double p, double df);

/*
 * validate's plan: looks after runs 1, 2, 4, ... up to max_runs (and after
 * max_runs itself), the error split evenly over them (Bonferroni), so the
 * chance that any look PASSes a strategy whose true miss probability is at
 * or above the target stays below 1 - confidence. Each look tests one-sided
 * at 1 - (1 - confidence) / looks.
 */
struct evidence_plan {
	unsigned max_runs;
	unsigned looks;
	double confidence;	  /* overall, one-sided */
	double look_confidence;	  /* per look, one-sided */
};
void evidence_plan_init(struct evidence_plan *p, unsigned max_runs, double confidence);
/* True when the plan looks after `runs` runs. */
bool evidence_plan_is_look(const struct evidence_plan *p, unsigned runs);

enum evidence_verdict { EVIDENCE_CONTINUE, EVIDENCE_PASS, EVIDENCE_FAIL };
/*
 * One look: PASS when the one-sided upper bound (at look_confidence) over the
 * pooled events is below target, FAIL when the lower bound is above it, else
 * CONTINUE. With too few events, CONTINUE. iv receives the interval used.
 */
enum evidence_verdict evidence_look(const struct evidence_plan *p, const uint64_t *x, const uint64_t *d, size_t n,
				    double target, struct evidence_interval *iv);

#endif
