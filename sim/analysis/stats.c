/* stats.c — binomial intervals, the special functions under them, lock-free log histograms. */
#include "analysis/stats.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

/* ---------- special functions ---------- */

/*
 * Acklam's rational approximation (relative error 1.15e-9) for the lower
 * half, then one Halley step on erfc, which brings it to ~1e-15. Only the
 * lower half is computed directly: 1 - p is exact for p in [0.5, 1]
 * (Sterbenz), and erfc of a positive argument keeps full relative accuracy
 * deep into the tail, where 1 - erfc would be all rounding.
 */
double stats_normal_quantile(double p)
{
	static const double a[] = { -3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
				    1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00 };
	static const double b[] = { -5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
				    6.680131188771972e+01, -1.328068155288572e+01 };
	static const double c[] = { -7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
				    -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00 };
	static const double d[] = { 7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
				    3.754408661907416e+00 };
	double x, pdf;

	if (isnan(p))
		return NAN;
	if (p <= 0)
		return -INFINITY;
	if (p >= 1)
		return INFINITY;
	if (p > 0.5)
		return -stats_normal_quantile(1 - p);

	if (p < 0.02425) {
		double t = sqrt(-2 * log(p));

		x = (((((c[0] * t + c[1]) * t + c[2]) * t + c[3]) * t + c[4]) * t + c[5]) /
		    ((((d[0] * t + d[1]) * t + d[2]) * t + d[3]) * t + 1);
	} else {
		double t = p - 0.5, r = t * t;

		x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * t /
		    (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
	}

	/* Below p ~ 1e-308 the density is subnormal and the step would only add noise. */
	pdf = exp(-0.5 * x * x) / sqrt(2 * M_PI);
	if (pdf >= DBL_MIN) {
		double u = (0.5 * erfc(-x / M_SQRT2) - p) / pdf;

		x -= u / (1 + 0.5 * x * u);
	}
	return x;
}

/* ln Γ(z) minus its Stirling approximation (z - ½) ln z - z + ½ ln 2π; for z >= 10 the
 * truncated series is good to ~2e-14. */
static double stirling_rest(double z)
{
	double r = 1 / z, r2 = r * r;

	return r * (1.0 / 12 - r2 * (1.0 / 360 - r2 * (1.0 / 1260 - r2 * (1.0 / 1680 - r2 / 1188))));
}

/*
 * ln B(a, b). lgamma(a) + lgamma(b) - lgamma(a + b) cancels catastrophically
 * when an argument is large (n = 1e9: two terms of 2e10 leave ~20, losing 10
 * digits), so large arguments go through Stirling with the differences of
 * logarithms taken as log1p of a ratio.
 */
static double log_beta(double a, double b)
{
	double lo = fmin(a, b), hi = fmax(a, b), s = a + b;

	if (hi < 10)
		return lgamma(a) + lgamma(b) - lgamma(s);
	if (lo < 10) /* lnΓ(hi) - lnΓ(s) by Stirling, lnΓ(lo) directly */
		return lgamma(lo) - (hi - 0.5) * log1p(lo / hi) - lo * log(s) + lo + stirling_rest(hi) -
		       stirling_rest(s);
	return 0.5 * log(2 * M_PI) - 0.5 * log(s) + (lo - 0.5) * log(lo / s) - (hi - 0.5) * log1p(lo / hi) +
	       stirling_rest(lo) + stirling_rest(hi) - stirling_rest(s);
}

/*
 * The continued fraction of I_x(a, b) (Numerical Recipes' betacf), evaluated
 * by the modified Lentz method. It converges fast for x < (a + 1) / (a + b + 2);
 * near the mode of a huge (a, b) it needs more terms (5 for (3, 5), 526 for
 * a = b = 1e6, 3838 for 5e8), hence the generous cap. y = 1 - x is passed
 * exactly by the caller: the first term is 1 - (a + b)x/(a + 1), which for
 * x near 1 and a huge a is all cancellation, so it is formed from y instead
 * (that alone took I_x(1, 4e8) near x = 2/b from 7e-10 to 1e-13 relative).
 */
static double beta_cf(double a, double b, double x, double y)
{
	const double tiny = 1e-300, eps = DBL_EPSILON;
	double qab = a + b, qap = a + 1, qam = a - 1;
	double c = 1, d = ((a + 1) * y - (b - 1) * x) / qap, h;

	if (fabs(d) < tiny)
		d = tiny;
	d = 1 / d;
	h = d;
	for (double m = 1; m <= 1e7; m++) {
		double m2 = 2 * m, aa, del;

		aa = m * (b - m) * x / ((qam + m2) * (a + m2));
		d = 1 + aa * d;
		if (fabs(d) < tiny)
			d = tiny;
		c = 1 + aa / c;
		if (fabs(c) < tiny)
			c = tiny;
		d = 1 / d;
		h *= d * c;
		aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
		d = 1 + aa * d;
		if (fabs(d) < tiny)
			d = tiny;
		c = 1 + aa / c;
		if (fabs(c) < tiny)
			c = tiny;
		d = 1 / d;
		del = d * c;
		h *= del;
		if (fabs(del - 1) < eps)
			break;
	}
	return h;
}

double stats_beta_inc(double a, double b, double x)
{
	double front;

	if (!(a > 0 && b > 0) || isnan(x))
		return NAN;
	if (x <= 0)
		return 0;
	if (x >= 1)
		return 1;
	/* x^a (1-x)^b / B(a, b) in logs; log1p keeps b·ln(1-x) exact for x ~ 1/n. Near the mode of a
	 * huge (a, b) these logs are ~a in size and cancel, so I_x is good to ~1e-16·a there (1e-7 at
	 * a = 5e8): harmless for the inverse, where it moves x by ~1e-11 relative. */
	front = exp(a * log(x) + b * log1p(-x) - log_beta(a, b));
	if (x < (a + 1) / (a + b + 2))
		return front * beta_cf(a, b, x, 1 - x) / a;
	return 1 - front * beta_cf(b, a, 1 - x, x) / b;
}

/*
 * Newton on I_x(a, b) - p, kept inside a bracket that every evaluation
 * shrinks; a step leaving the bracket becomes a bisection. Bisecting from
 * [0, 1] halves the distance to a tiny root each time, so even roots near
 * 1e-9 (n = 1e9) are reached in ~30 steps before Newton takes over.
 */
double stats_beta_inc_inv(double a, double b, double p)
{
	double lo = 0, hi = 1, x, lb, mean, sd;

	if (!(a > 0 && b > 0) || isnan(p))
		return NAN;
	if (p <= 0)
		return 0;
	if (p >= 1)
		return 1;
	lb = log_beta(a, b);

	/* Start from the normal approximation of the beta distribution. */
	mean = a / (a + b);
	sd = sqrt(a * b / ((a + b) * (a + b) * (a + b + 1)));
	x = mean + stats_normal_quantile(p) * sd;
	if (!(x > 0 && x < 1))
		x = mean;

	for (int i = 0; i < 2000; i++) {
		double f = stats_beta_inc(a, b, x) - p, dens, nx;

		if (f == 0)
			return x;
		if (f < 0)
			lo = x;
		else
			hi = x;
		dens = exp((a - 1) * log(x) + (b - 1) * log1p(-x) - lb);
		nx = x - f / dens;
		if (!(nx > lo && nx < hi) || !isfinite(dens) || dens <= 0)
			nx = 0.5 * (lo + hi);
		if (fabs(nx - x) <= 1e-15 * nx)
			return nx;
		x = nx;
	}
	return x;
}

/* ---------- binomial intervals ---------- */

/* A confidence outside (0, 1) claims nothing: those callers get [0, 1]. */
static bool confidence_ok(double confidence)
{
	return confidence > 0 && confidence < 1;
}

/* The common start: the estimate, [0, 1], and whether there is anything to compute. x > n is
 * clamped to n (a caller's counting bug must not produce NaN in a report). */
static bool interval_start(uint64_t *x, uint64_t n, const char *method, struct stats_interval *out)
{
	if (*x > n)
		*x = n;
	out->estimate = n ? (double)*x / (double)n : 0;
	out->low = 0;
	out->high = 1;
	out->method = n ? method : "none";
	return n > 0;
}

void stats_wilson(uint64_t x, uint64_t n, double confidence, struct stats_interval *out)
{
	double z, z2, nd, xd, denom, center, half;

	if (!interval_start(&x, n, "wilson", out) || !confidence_ok(confidence))
		return;
	z = -stats_normal_quantile((1 - confidence) / 2);
	z2 = z * z;
	nd = (double)n;
	xd = (double)x;
	denom = nd + z2;
	center = (xd + z2 / 2) / denom;
	half = z * sqrt(xd * (nd - xd) / nd + z2 / 4) / denom;
	/* At x == 0 (x == n) the bound is 0 (1) exactly; don't let rounding say otherwise. */
	out->low = x == 0 ? 0 : fmax(0, center - half);
	out->high = x == n ? 1 : fmin(1, center + half);
}

void stats_clopper_pearson(uint64_t x, uint64_t n, double confidence, struct stats_interval *out)
{
	double alpha2, nd, xd;

	if (!interval_start(&x, n, "clopper-pearson", out) || !confidence_ok(confidence))
		return;
	alpha2 = (1 - confidence) / 2;
	nd = (double)n;
	xd = (double)x;
	/* The beta quantiles have closed forms at the ends: (1 - u)^n = alpha/2 and u^n = alpha/2. */
	if (x == 0)
		out->high = -expm1(log(alpha2) / nd);
	else if (x == n)
		out->low = exp(log(alpha2) / nd);
	if (x > 0 && x < n) {
		out->low = stats_beta_inc_inv(xd, nd - xd + 1, alpha2);
		out->high = stats_beta_inc_inv(xd + 1, nd - xd, 1 - alpha2);
	}
}

void stats_rule_of_three(uint64_t n, struct stats_interval *out)
{
	out->estimate = 0;
	out->low = 0;
	out->high = n ? fmin(1, 3.0 / (double)n) : 1;
	out->method = n ? "rule-of-three" : "none";
}

void stats_proportion(uint64_t x, uint64_t n, double confidence, struct stats_interval *out)
{
	if (x > n)
		x = n;
	/* Wilson's coverage is good once both counts are at least ~5; below, only the exact interval
	 * keeps its promise. */
	if (x >= 5 && n - x >= 5)
		stats_wilson(x, n, confidence, out);
	else
		stats_clopper_pearson(x, n, confidence, out);
}

/* ---------- histogram ---------- */

/*
 * Bucket layout (HDR-like, 5 significant bits after the leading one):
 *   v < 64:  bucket v, exact.
 *   v >= 64: with e = floor(log2 v) in 6..63 and s = the 5 bits below the
 *            leading one, bucket 32·(e − 4) + s, spanning
 *            [(32 + s)·2^(e−5), (33 + s)·2^(e−5)).
 * The second formula gives bucket v for 32 <= v < 64 too, so the exact range
 * joins the log range without a gap. The largest bucket is 32·59 + 31 = 1919
 * (it holds UINT64_MAX), so all of uint64 fits in STATS_HIST_BUCKETS = 2048
 * and buckets 1920.. stay empty. A bucket is 2^(e−5) wide and starts at
 * >= 32·2^(e−5): its midpoint is within 1/64 (1.6 %) of every value in it.
 */
#define HIST_SUB_BITS 5
#define HIST_EXACT 64
#define HIST_LAST 1919

size_t stats_hist_bucket(uint64_t v)
{
	unsigned e;

	if (v < HIST_EXACT)
		return (size_t)v;
	e = 63 - (unsigned)__builtin_clzll(v);
	return ((size_t)(e - 4) << HIST_SUB_BITS) + ((v >> (e - HIST_SUB_BITS)) & 31);
}

/* The last bucket's end, 2^64, is not a uint64: its high is UINT64_MAX and it includes
 * UINT64_MAX itself. Unused buckets (> 1919) report the empty [UINT64_MAX, UINT64_MAX). */
void stats_hist_bucket_range(size_t b, uint64_t *low, uint64_t *high)
{
	unsigned e, s;

	if (b < HIST_EXACT) {
		*low = b;
		*high = b + 1;
		return;
	}
	if (b > HIST_LAST) {
		*low = *high = UINT64_MAX;
		return;
	}
	e = (unsigned)(b >> HIST_SUB_BITS) + 4;
	s = (unsigned)(b & 31);
	*low = (uint64_t)(32 + s) << (e - HIST_SUB_BITS);
	*high = b == HIST_LAST ? UINT64_MAX : *low + ((uint64_t)1 << (e - HIST_SUB_BITS));
}

/* The largest value a bucket holds (its range is [low, high) except for the last bucket). */
static uint64_t bucket_last(size_t b, uint64_t high)
{
	return b == HIST_LAST ? high : high - 1;
}

void stats_hist_init(struct stats_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

/* Relaxed order is enough: every field is an independent counter, and readers only need each
 * load to be untorn. sum wraps modulo 2^64. */
void stats_hist_add(struct stats_hist *h, uint64_t v)
{
	uint64_t cur;

	__atomic_fetch_add(&h->buckets[stats_hist_bucket(v)], 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->count, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&h->sum, v, __ATOMIC_RELAXED);
	cur = __atomic_load_n(&h->min, __ATOMIC_RELAXED);
	while (v < cur && !__atomic_compare_exchange_n(&h->min, &cur, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	cur = __atomic_load_n(&h->max, __ATOMIC_RELAXED);
	while (v > cur && !__atomic_compare_exchange_n(&h->max, &cur, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/* Readers total the buckets instead of trusting count: with adds in flight the two can differ,
 * and the buckets are what the walk below sees. */
static uint64_t hist_total(const struct stats_hist *h)
{
	uint64_t t = 0;

	for (size_t b = 0; b < STATS_HIST_BUCKETS; b++)
		t += __atomic_load_n(&h->buckets[b], __ATOMIC_RELAXED);
	return t;
}

uint64_t stats_hist_quantile(const struct stats_hist *h, double q)
{
	uint64_t total = hist_total(h), rank, cum = 0;
	uint64_t mn = __atomic_load_n(&h->min, __ATOMIC_RELAXED), mx = __atomic_load_n(&h->max, __ATOMIC_RELAXED);

	if (total == 0)
		return 0;
	if (!(q > 0))
		q = 0;
	if (q > 1)
		q = 1;
	/* The value of rank ceil(q·total) (1-based); the first and last ranks are known exactly. */
	rank = (uint64_t)ceil(q * (double)total);
	if (rank <= 1)
		return mn;
	if (rank >= total)
		return mx;
	for (size_t b = 0; b < STATS_HIST_BUCKETS; b++) {
		uint64_t low, high, mid;

		cum += __atomic_load_n(&h->buckets[b], __ATOMIC_RELAXED);
		if (cum < rank)
			continue;
		stats_hist_bucket_range(b, &low, &high);
		mid = low + (high - low) / 2;
		if (mid < mn)
			mid = mn;
		if (mid > mx)
			mid = mx;
		return mid;
	}
	return mx;
}

/*
 * Buckets wholly above v count fully; in v's own bucket the values are taken
 * as spread evenly over the part of it inside [min, max], which makes small
 * values exact and v >= max give exactly 0.
 */
double stats_hist_frac_above(const struct stats_hist *h, uint64_t v)
{
	uint64_t total = hist_total(h), above = 0, low, high, first, last, in;
	uint64_t mn = __atomic_load_n(&h->min, __ATOMIC_RELAXED), mx = __atomic_load_n(&h->max, __ATOMIC_RELAXED);
	size_t bv = stats_hist_bucket(v);
	double part = 0;

	if (total == 0 || v >= mx)
		return 0;
	if (v < mn)
		return 1;
	for (size_t b = bv + 1; b < STATS_HIST_BUCKETS; b++)
		above += __atomic_load_n(&h->buckets[b], __ATOMIC_RELAXED);
	in = __atomic_load_n(&h->buckets[bv], __ATOMIC_RELAXED);
	if (in) {
		stats_hist_bucket_range(bv, &low, &high);
		first = low > mn ? low : mn;
		last = bucket_last(bv, high);
		if (last > mx)
			last = mx;
		if (v < last)
			part = (double)in * (double)(last - v) / ((double)(last - first) + 1);
	}
	return fmin(1, ((double)above + part) / (double)total);
}

/* Returns 0, or -1 with errno set (EINVAL for a bad argument, else the stream's error). */
int stats_hist_write_csv(const struct stats_hist *h, FILE *f, const char *unit, double scale)
{
	uint64_t total = hist_total(h), cum = 0;
	const char *sep = unit && *unit ? "_" : "";

	if (!f || !(scale > 0) || !isfinite(scale)) {
		errno = EINVAL;
		return -1;
	}
	if (!unit)
		unit = "";
	if (fprintf(f, "low%s%s,high%s%s,count,cumulative_fraction\n", sep, unit, sep, unit) < 0)
		return -1;
	for (size_t b = 0; b < STATS_HIST_BUCKETS; b++) {
		uint64_t c = __atomic_load_n(&h->buckets[b], __ATOMIC_RELAXED), low, high;

		if (!c)
			continue;
		cum += c;
		stats_hist_bucket_range(b, &low, &high);
		/* %.12g keeps integers below 1e12 exact and shows ns as ms without float noise. */
		if (fprintf(f, "%.12g,%.12g,%" PRIu64 ",%.9g\n", (double)low / scale, (double)high / scale, c,
			    (double)cum / (double)total) < 0)
			return -1;
	}
	return fflush(f) == 0 && !ferror(f) ? 0 : -1;
}

