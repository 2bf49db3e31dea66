/* evidence.c — intervals over fault events (Korn–Graubard on a cluster-robust variance), count bands, validate's looks. */
#include "analysis/evidence.h"

#include <math.h>
#include <stdlib.h>

#include "analysis/stats.h"

double evidence_t_quantile(double p, double df)
{
	double q, x;

	if (!(df >= 1) || !(p > 0 && p < 1))
		return p <= 0 ? -INFINITY : p >= 1 ? INFINITY : NAN;
	if (p < 0.5)
		return -evidence_t_quantile(1 - p, df);
	if (p == 0.5)
		return 0;
	/* P(|T| > t) = I_{df/(df+t²)}(df/2, 1/2) */
	q = 2 * (1 - p);
	x = stats_beta_inc_inv(df / 2, 0.5, q);
	if (!(x > 0))
		return INFINITY;
	return sqrt(df * (1 - x) / x);
}

/*
 * The delete-one-event jackknife variance of the ratio X / D: the leave-one-out
 * estimates (X - x_i) / (D - d_i) spread as (n - 1)/n Σ (p̂_(-i) - mean)².
 * Unlike the plain sandwich variance it does not shrink when a few large
 * events dominate (their leverage), which is the real runs' case: a cut
 * consumer's burst can be 8x the median one.
 */
static double jackknife_variance(const uint64_t *x, const uint64_t *d, size_t n, uint64_t X, uint64_t D,
				 uint64_t events)
{
	double mean = 0, ss = 0, ne = (double)events;

	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i++) {
			double xi, pi;

			if (!d[i])
				continue;
			xi = (double)(x[i] < d[i] ? x[i] : d[i]);
			pi = D > d[i] ? ((double)X - xi) / (double)(D - d[i]) : (double)X / (double)D;
			if (pass == 0)
				mean += pi / ne;
			else
				ss += (pi - mean) * (pi - mean);
		}
	}
	return (ne - 1) / ne * ss;
}

static void no_interval(struct evidence_interval *out, const char *method, const char *reason)
{
	out->low = out->high = NAN;
	out->has_interval = false;
	out->method = method;
	out->reason = reason;
}

/*
 * The method, in full (report.md points here).
 *
 * Each event i contributed d_i duplicate deliveries and x_i misses; the
 * estimate is the ratio p̂ = Σx / Σd = X / D. Its variance over events is the
 * delete-one-event jackknife's (see jackknife_variance): right whatever the
 * correlation inside an event, and, unlike the plain sandwich variance
 * n/(n−1)·Σ(x_i − p̂ d_i)²/D², not shrunk by a few large events. Korn &
 * Graubard (1998) turn it into an interval with the coverage of an exact one:
 * the effective number of independent duplicates is n* = p̂(1 − p̂) / V (at
 * most D: clustering never adds information), scaled by (z / t_df)² so that
 * little evidence widens the interval as a t quantile would. df is the number
 * of events less one, but no more than the events with a miss, nor the events
 * with a caught duplicate: with few of either the variance rests on those few
 * (without this, sparse clustered misses covered 86 % instead of 95 %). The
 * interval is then Clopper–Pearson's at x* = p̂ n* successes of n*, with the
 * beta quantiles taken at real arguments. It stays inside [0, 1] and keeps
 * its width for small p, where a Wald interval (p̂ ± t √V) collapses.
 *
 * With zero misses V is 0 and says nothing about how misses would cluster,
 * so the bound assumes the worst: all duplicates of an event share one fate.
 * Then "no event had a miss" is n Bernoulli trials each missing with
 * probability at least p, and 1 − (α/2)^{1/n} bounds p: the Clopper–Pearson
 * bound over events, not over duplicates (that one would be 1 − (α/2)^{1/D},
 * about D / n times too small). All missed is the mirror image.
 *
 * With fewer than EVIDENCE_MIN_EVENTS events the variance estimate is itself
 * too noisy for any of this: no interval.
 */
void evidence_ratio2(const uint64_t *x, const uint64_t *d, size_t n, double confidence,
		     struct evidence_interval *out)
{
	double alpha2 = (1 - confidence) / 2, p, v, nd, df, z, t, neff, xeff;
	uint64_t X = 0, D = 0, events = 0, with_miss = 0, with_catch = 0;

	for (size_t i = 0; i < n; i++) {
		if (!d[i])
			continue;
		events++;
		D += d[i];
		X += x[i] < d[i] ? x[i] : d[i];
		with_miss += x[i] > 0;
		with_catch += x[i] < d[i];
	}
	out->confidence = confidence;
	out->events = events;
	out->dups = D;
	out->misses = X;
	out->estimate = D ? (double)X / (double)D : 0;
	out->deff = out->n_eff = NAN;
	out->reason = "";
	if (!(confidence > 0 && confidence < 1)) {
		no_interval(out, "none", "the confidence is not between 0 and 1");
		return;
	}
	if (events == 0) {
		no_interval(out, "none", "no duplicate delivery, so nothing to miss");
		return;
	}
	if (events < EVIDENCE_MIN_EVENTS) {
		no_interval(out, "none", "fewer than 20 fault events caused duplicates; their spread can't be estimated");
		return;
	}
	nd = (double)events;
	out->has_interval = true;
	if (X == 0 || X == D) {
		double bound = -expm1(log(alpha2) / nd);

		out->low = X == 0 ? 0 : 1 - bound;
		out->high = X == 0 ? bound : 1;
		out->method = X == 0 ? "events-zero" : "events-all";
		return;
	}
	p = out->estimate;
	v = jackknife_variance(x, d, n, X, D, events);
	out->method = "events-kg";
	out->deff = v / (p * (1 - p) / (double)D);
	neff = v > 0 ? p * (1 - p) / v : (double)D;
	if (neff > (double)D)
		neff = (double)D;
	z = stats_normal_quantile(1 - alpha2);
	df = nd - 1;
	if ((double)with_miss < df)
		df = (double)with_miss;
	if ((double)with_catch < df)
		df = (double)with_catch;
	t = evidence_t_quantile(1 - alpha2, df);
	neff *= (z / t) * (z / t);
	out->n_eff = neff;
	xeff = p * neff;
	out->low = stats_beta_inc_inv(xeff, neff - xeff + 1, alpha2);
	out->high = stats_beta_inc_inv(xeff + 1, neff - xeff, 1 - alpha2);
}

void evidence_ratio(const struct evidence_event *ev, size_t n, double confidence, struct evidence_interval *out)
{
	uint64_t *x = malloc((n ? n : 1) * sizeof(*x)), *d = malloc((n ? n : 1) * sizeof(*d));

	if (!x || !d) {
		free(x);
		free(d);
		out->estimate = 0;
		out->events = out->dups = out->misses = 0;
		out->deff = out->n_eff = NAN;
		out->confidence = confidence;
		no_interval(out, "none", "out of memory");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		x[i] = ev[i].misses;
		d[i] = ev[i].dups;
	}
	evidence_ratio2(x, d, n, confidence, out);
	free(x);
	free(d);
}

bool evidence_count_band(const struct evidence_event *ev, size_t n, double confidence, double *lo, double *hi)
{
	return evidence_count_band_sized(ev, n, NULL, NAN, confidence, lo, hi);
}

bool evidence_count_band_sized(const struct evidence_event *ev, size_t n, const bool *sized, double size_sq,
			       double confidence, double *lo, double *hi)
{
	double sum = 0, sq = 0, z, half;
	size_t events = 0;

	for (size_t i = 0; i < n; i++) {
		if (!ev[i].dups)
			continue;
		events++;
		sum += (double)ev[i].dups;
		sq += sized && sized[i] && isfinite(size_sq) ? size_sq : (double)ev[i].dups * (double)ev[i].dups;
	}
	if (events < EVIDENCE_MIN_EVENTS || !(confidence > 0 && confidence < 1)) {
		*lo = *hi = NAN;
		return false;
	}
	z = stats_normal_quantile(1 - (1 - confidence) / 2);
	half = z * sqrt(sq);
	*lo = sum - half > 0 ? sum - half : 0;
	*hi = sum + half;
	return true;
}

void evidence_plan_init(struct evidence_plan *p, unsigned max_runs, double confidence)
{
	unsigned looks = 0;

	if (max_runs < 1)
		max_runs = 1;
	for (unsigned r = 1; r <= max_runs; r *= 2)
		looks++;
	if ((max_runs & (max_runs - 1)) != 0)
		looks++; /* max_runs itself, when not a power of two */
	p->max_runs = max_runs;
	p->looks = looks;
	p->confidence = confidence;
	p->look_confidence = 1 - (1 - confidence) / looks;
}

bool evidence_plan_is_look(const struct evidence_plan *p, unsigned runs)
{
	if (runs < 1 || runs > p->max_runs)
		return false;
	return runs == p->max_runs || (runs & (runs - 1)) == 0;
}

enum evidence_verdict evidence_look(const struct evidence_plan *p, const uint64_t *x, const uint64_t *d, size_t n,
				    double target, struct evidence_interval *iv)
{
	/* a one-sided bound at c is the two-sided interval's end at 2c - 1 */
	evidence_ratio2(x, d, n, 2 * p->look_confidence - 1, iv);
	if (!iv->has_interval)
		return EVIDENCE_CONTINUE;
	if (iv->high < target)
		return EVIDENCE_PASS;
	if (iv->low > target)
		return EVIDENCE_FAIL;
	return EVIDENCE_CONTINUE;
}
