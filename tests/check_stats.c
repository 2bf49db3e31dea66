/* check_stats.c — intervals against high-precision references, special functions, histograms, the model vs Monte Carlo. */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/stats.h"
#include "tests.h"

/*
 * Reference values below were computed with mpmath at 40–60 digits
 * (betainc(regularized=True), bisection on it for the quantiles, erfc for
 * the normal quantile), then rounded; the textbook values quoted in the
 * comments agree with them.
 */

#define ck_assert_close(got, want, rel)                                                                   \
	do {                                                                                              \
		double g_ = (got), w_ = (want);                                                           \
		ck_assert_msg(fabs(g_ - w_) <= (rel) * fabs(w_), "%s = %.17g, want %.17g (rel %g)", #got, \
			      g_, w_, (double)(rel));                                                     \
	} while (0)

/* ---------- special functions ---------- */

START_TEST(test_normal_quantile)
{
	static const struct {
		double p, z;
	} ref[] = {
		{ 0.975, 1.959963984540054 },	{ 0.5, 0 },
		{ 0.001, -3.090232306167814 },	{ 0.02425, -1.972961051311885 }, /* Acklam's region edge */
		{ 0.97575, 1.972961051311885 }, { 1e-10, -6.361340902404056 },
		{ 1e-20, -9.262340089798408 },	{ 1e-300, -37.0470962993612 },
	};
	double prev = -INFINITY;

	for (size_t i = 0; i < sizeof(ref) / sizeof(ref[0]); i++) {
		if (ref[i].z == 0)
			ck_assert(fabs(stats_normal_quantile(ref[i].p)) < 1e-15);
		else
			ck_assert_close(stats_normal_quantile(ref[i].p), ref[i].z, 1e-12);
	}
	ck_assert(stats_normal_quantile(0) == -INFINITY);
	ck_assert(stats_normal_quantile(1) == INFINITY);
	ck_assert(isnan(stats_normal_quantile(NAN)));
	/* Round trip through erfc, symmetry and monotonicity over a grid from the deep tail to 1. */
	for (double lp = -300; lp < 0; lp += 0.37) {
		double p = pow(10, lp), z = stats_normal_quantile(p);

		ck_assert_close(0.5 * erfc(-z / M_SQRT2), p, 1e-12);
	}
	for (double p = 0.001; p < 1; p += 0.001) {
		double z = stats_normal_quantile(p);

		ck_assert(z > prev);
		ck_assert(fabs(z + stats_normal_quantile(1 - p)) < 1e-12);
		prev = z;
	}
}
END_TEST

START_TEST(test_beta_inc)
{
	static const struct {
		double a, b, x, want;
	} ref[] = {
		{ 2, 3, 0.4, 0.5248 }, /* 1 - 0.6^4 - 4·0.4·0.6^3 */
		{ 0.5, 0.5, 0.2, 0.29516723530086655 }, /* (2/π) asin(sqrt(0.2)) */
		{ 10, 20, 0.3, 0.36400408107194428 },
		{ 1000, 2000, 0.34, 0.78121509116064189 },
		{ 5, 1e9, 5e-9, 0.55950671888280341 }, /* Poisson(5) tail: needs log1p and a careful ln B */
	};

	for (size_t i = 0; i < sizeof(ref) / sizeof(ref[0]); i++)
		ck_assert_close(stats_beta_inc(ref[i].a, ref[i].b, ref[i].x), ref[i].want, 1e-10);
	ck_assert(stats_beta_inc(3, 4, 0) == 0);
	ck_assert(stats_beta_inc(3, 4, 1) == 1);
	ck_assert(stats_beta_inc(3, 4, -1) == 0);
	ck_assert(isnan(stats_beta_inc(0, 4, 0.5)));
	ck_assert(isnan(stats_beta_inc(3, 4, NAN)));
	/* I_x(1, b) = 1 - (1 - x)^b, and I_x(a, b) = 1 - I_{1-x}(b, a). */
	for (double b = 1; b <= 1e9; b *= 7.3) {
		double x = 2 / b < 0.5 ? 2 / b : 0.3;

		ck_assert_close(stats_beta_inc(1, b, x), -expm1(b * log1p(-x)), 1e-13);
	}
	for (double x = 0.05; x < 1; x += 0.05)
		ck_assert_close(stats_beta_inc(3.5, 7, x), 1 - stats_beta_inc(7, 3.5, 1 - x), 1e-12);
}
END_TEST

START_TEST(test_beta_inc_inv)
{
	static const double ab[][2] = { { 0.5, 0.5 }, { 1, 1 },	    { 1, 3e6 },	    { 2, 99 },	     { 5, 6 },
					{ 50, 3 },    { 1e3, 1e3 }, { 3, 1e9 - 2 }, { 5e8, 5e8 + 1 } };
	static const double ps[] = { 1e-6, 0.025, 0.3, 0.5, 0.975, 1 - 1e-6 };

	for (size_t i = 0; i < sizeof(ab) / sizeof(ab[0]); i++)
		for (size_t j = 0; j < sizeof(ps) / sizeof(ps[0]); j++) {
			double x = stats_beta_inc_inv(ab[i][0], ab[i][1], ps[j]);

			ck_assert(x > 0 && x < 1);
			/* Near the mode of huge (a, b), I_x itself is only good to ~1e-16·a (see stats.c). */
			ck_assert_close(stats_beta_inc(ab[i][0], ab[i][1], x), ps[j], ab[i][1] > 1e6 ? 1e-6 : 1e-9);
		}
	/* (1 - x)^n = 0.025: the Clopper–Pearson upper bound at x = 0, n = 3e6. */
	ck_assert_close(stats_beta_inc_inv(1, 3e6, 0.975), 1.22962572871e-6, 1e-9);
	ck_assert(stats_beta_inc_inv(2, 3, 0) == 0);
	ck_assert(stats_beta_inc_inv(2, 3, 1) == 1);
	ck_assert(isnan(stats_beta_inc_inv(-2, 3, 0.5)));
}
END_TEST

/* ---------- binomial intervals ---------- */

static void check_interval(const struct stats_interval *ci, double low, double high, double rel)
{
	if (low == 0)
		ck_assert(ci->low == 0);
	else
		ck_assert_close(ci->low, low, rel);
	if (high == 1)
		ck_assert(ci->high == 1);
	else
		ck_assert_close(ci->high, high, rel);
}

START_TEST(test_wilson)
{
	struct stats_interval ci;

	stats_wilson(0, 10, 0.95, &ci);
	ck_assert_str_eq(ci.method, "wilson");
	ck_assert(ci.estimate == 0);
	check_interval(&ci, 0, 0.2775327999, 1e-9);
	stats_wilson(5, 10, 0.95, &ci);
	ck_assert(ci.estimate == 0.5);
	check_interval(&ci, 0.2365930905, 0.7634069095, 1e-9);
	stats_wilson(1, 100, 0.95, &ci);
	check_interval(&ci, 0.001767432064, 0.05448619618, 1e-9);
	stats_wilson(7, 50, 0.95, &ci);
	check_interval(&ci, 0.06950833427, 0.2618619371, 1e-9);
	stats_wilson(10, 10, 0.95, &ci);
	check_interval(&ci, 0.7224672001, 1, 1e-9);
	stats_wilson(0, 1, 0.95, &ci);
	check_interval(&ci, 0, 0.7934506856, 1e-9);
	stats_wilson(1, 1, 0.95, &ci);
	check_interval(&ci, 0.2065493144, 1, 1e-9);
	stats_wilson(3, 0, 0.95, &ci);
	ck_assert_str_eq(ci.method, "none");
	ck_assert(ci.estimate == 0 && ci.low == 0 && ci.high == 1);
}
END_TEST

START_TEST(test_clopper_pearson)
{
	struct stats_interval ci;

	stats_clopper_pearson(0, 10, 0.95, &ci);
	ck_assert_str_eq(ci.method, "clopper-pearson");
	check_interval(&ci, 0, 0.3084971078, 1e-9);
	stats_clopper_pearson(5, 10, 0.95, &ci);
	check_interval(&ci, 0.1870860284, 0.8129139716, 1e-9);
	stats_clopper_pearson(1, 100, 0.95, &ci);
	check_interval(&ci, 0.000253146033, 0.05445938539, 1e-8);
	stats_clopper_pearson(7, 50, 0.95, &ci);
	check_interval(&ci, 0.05819170034, 0.2673960025, 1e-9);
	stats_clopper_pearson(3, 1000, 0.95, &ci);
	check_interval(&ci, 0.0006190999316, 0.008742023238, 1e-9);
	stats_clopper_pearson(10, 10, 0.95, &ci);
	check_interval(&ci, 0.6915028922, 1, 1e-9);
	stats_clopper_pearson(0, 1, 0.95, &ci);
	check_interval(&ci, 0, 0.975, 1e-12);
	stats_clopper_pearson(1, 1, 0.95, &ci);
	check_interval(&ci, 0.025, 1, 1e-12);
	/* Zero misses in 3e6 duplicates: -ln(0.025)/n, a little above the rule of three's 3/n. */
	stats_clopper_pearson(0, 3000000, 0.95, &ci);
	check_interval(&ci, 0, 1.22962572871e-6, 1e-9);
	stats_clopper_pearson(0, 1000000000, 0.95, &ci);
	check_interval(&ci, 0, 3.68887944731e-9, 1e-9);
	/* One event in 1e9: B^-1 deep in the tail of a huge beta (references via the binomial sums). */
	stats_clopper_pearson(1, 1000000000, 0.95, &ci);
	check_interval(&ci, 2.5317807984e-11, 5.5716433782e-9, 1e-8);
	stats_clopper_pearson(3, 17, 0.99, &ci);
	check_interval(&ci, 0.0209243443004, 0.510403750495, 1e-10);
	stats_clopper_pearson(0, 0, 0.95, &ci);
	ck_assert_str_eq(ci.method, "none");
	ck_assert(ci.low == 0 && ci.high == 1);
}
END_TEST

START_TEST(test_rule_of_three_and_choice)
{
	struct stats_interval ci;

	stats_rule_of_three(1000, &ci);
	ck_assert_str_eq(ci.method, "rule-of-three");
	ck_assert(ci.estimate == 0 && ci.low == 0);
	ck_assert_close(ci.high, 0.003, 1e-15);
	stats_rule_of_three(2, &ci);
	ck_assert(ci.high == 1);
	stats_rule_of_three(0, &ci);
	ck_assert_str_eq(ci.method, "none");

	stats_proportion(5, 10, 0.95, &ci);
	ck_assert_str_eq(ci.method, "wilson");
	stats_proportion(4, 10, 0.95, &ci);
	ck_assert_str_eq(ci.method, "clopper-pearson");
	stats_proportion(6, 10, 0.95, &ci);
	ck_assert_str_eq(ci.method, "clopper-pearson");
	stats_proportion(0, 3000000, 0.95, &ci);
	ck_assert_str_eq(ci.method, "clopper-pearson");
	ck_assert_close(ci.high, 1.22962572871e-6, 1e-9);
	stats_proportion(0, 0, 0.95, &ci);
	ck_assert_str_eq(ci.method, "none");
	ck_assert(ci.estimate == 0 && ci.low == 0 && ci.high == 1);
	/* Counting bugs upstream (x > n) must not turn into NaN in a report. */
	stats_proportion(12, 10, 0.95, &ci);
	ck_assert(ci.estimate == 1 && ci.high == 1 && ci.low > 0.6);
}
END_TEST

static void check_sane(const struct stats_interval *ci)
{
	ck_assert(isfinite(ci->low) && isfinite(ci->high));
	ck_assert(0 <= ci->low && ci->low <= ci->estimate && ci->estimate <= ci->high && ci->high <= 1);
}

START_TEST(test_intervals_monotone_and_huge)
{
	static const uint64_t xs[] = { 0, 1, 2, 5, 1000, 500000000, 999999995, 999999999, 1000000000 };
	const uint64_t n = 1000000000;
	struct stats_interval w, c, pw = { 0 }, pc = { 0 };

	/* Every x of a small n: bounds rise with x, and the exact interval holds the estimate. */
	for (uint64_t x = 0; x <= 40; x++) {
		stats_wilson(x, 40, 0.95, &w);
		stats_clopper_pearson(x, 40, 0.95, &c);
		check_sane(&w);
		check_sane(&c);
		if (x > 0) {
			ck_assert(w.low > pw.low && w.high > pw.high);
			ck_assert(c.low > pc.low && c.high > pc.high);
		}
		pw = w;
		pc = c;
	}
	/* Zero successes: the upper bound falls as n grows. */
	for (uint64_t m = 1; m < 2000000000ull; m = m * 3 + 1) {
		double prev = c.high;

		stats_clopper_pearson(0, m, 0.95, &c);
		ck_assert(m == 1 || c.high < prev);
	}
	/* n = 1e9 at both ends and the middle: finite, ordered, and CP ≈ Wilson where both are normal. */
	for (size_t i = 0; i < sizeof(xs) / sizeof(xs[0]); i++) {
		stats_wilson(xs[i], n, 0.95, &w);
		stats_clopper_pearson(xs[i], n, 0.95, &c);
		check_sane(&w);
		check_sane(&c);
		stats_proportion(xs[i], n, 0.99, &pw);
		check_sane(&pw);
	}
	stats_wilson(n / 2, n, 0.95, &w);
	stats_clopper_pearson(n / 2, n, 0.95, &c);
	ck_assert_close(c.high - c.low, w.high - w.low, 1e-3);
	ck_assert_close(w.high - 0.5, 1.959963984540054 * sqrt(0.25 / 1e9), 1e-6);
	/* n == 1 */
	stats_proportion(1, 1, 0.95, &c);
	check_interval(&c, 0.025, 1, 1e-12);
}
END_TEST

/* ---------- histogram ---------- */

START_TEST(test_hist_buckets)
{
	uint64_t low, high, prev_high = 0;

	/* Contiguous, each range maps back to its own bucket, width <= low/32 once past the exact part. */
	for (size_t b = 0; b <= 1919; b++) {
		stats_hist_bucket_range(b, &low, &high);
		ck_assert_uint_eq(low, prev_high);
		ck_assert_uint_gt(high, low);
		ck_assert_uint_eq(stats_hist_bucket(low), b);
		ck_assert_uint_eq(stats_hist_bucket(high - 1), b);
		if (b >= 64)
			ck_assert_uint_le(high - low, low / 32 + (b == 1919));
		prev_high = high;
	}
	ck_assert_uint_eq(prev_high, UINT64_MAX);
	ck_assert_uint_eq(stats_hist_bucket(UINT64_MAX), 1919);
	ck_assert_uint_lt(stats_hist_bucket(UINT64_MAX), STATS_HIST_BUCKETS);
	stats_hist_bucket_range(STATS_HIST_BUCKETS - 1, &low, &high);
	ck_assert(low == high);
	ck_assert_uint_eq(stats_hist_bucket(63), 63);
	ck_assert_uint_eq(stats_hist_bucket(64), 64);
	ck_assert_uint_eq(stats_hist_bucket(65), 64);
	ck_assert_uint_eq(stats_hist_bucket(66), 65);
}
END_TEST

START_TEST(test_hist_exact_small)
{
	struct stats_hist h;

	stats_hist_init(&h);
	ck_assert_uint_eq(stats_hist_quantile(&h, 0.5), 0);
	ck_assert(stats_hist_frac_above(&h, 3) == 0);
	for (uint64_t v = 1; v <= 10; v++)
		stats_hist_add(&h, v);
	ck_assert_uint_eq(h.count, 10);
	ck_assert_uint_eq(h.sum, 55);
	ck_assert_uint_eq(h.min, 1);
	ck_assert_uint_eq(h.max, 10);
	ck_assert_uint_eq(stats_hist_quantile(&h, 0), 1);
	ck_assert_uint_eq(stats_hist_quantile(&h, 0.5), 5);
	ck_assert_uint_eq(stats_hist_quantile(&h, 0.9), 9);
	ck_assert_uint_eq(stats_hist_quantile(&h, 0.91), 10);
	ck_assert_uint_eq(stats_hist_quantile(&h, 1), 10);
	ck_assert(stats_hist_frac_above(&h, 0) == 1);
	ck_assert(stats_hist_frac_above(&h, 3) == 0.7);
	ck_assert(stats_hist_frac_above(&h, 10) == 0);
	/* One big value: the midpoint is clamped to what was really seen. */
	stats_hist_init(&h);
	stats_hist_add(&h, 1000003);
	ck_assert_uint_eq(stats_hist_quantile(&h, 0.5), 1000003);
	ck_assert(stats_hist_frac_above(&h, 1000002) == 1);
	ck_assert(stats_hist_frac_above(&h, 1000003) == 0);
	stats_hist_add(&h, UINT64_MAX);
	ck_assert_uint_eq(stats_hist_quantile(&h, 0), 1000003);
	ck_assert_uint_eq(stats_hist_quantile(&h, 1), UINT64_MAX);
	ck_assert(stats_hist_frac_above(&h, 1000002) == 1);
	ck_assert(stats_hist_frac_above(&h, (uint64_t)1 << 62) == 0.5);
	ck_assert(stats_hist_frac_above(&h, UINT64_MAX) == 0);
}
END_TEST

START_TEST(test_hist_uniform)
{
	static const double qs[] = { 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999 };
	struct stats_hist *h = malloc(sizeof(*h));

	ck_assert_ptr_nonnull(h);
	stats_hist_init(h);
	for (uint64_t v = 1; v <= 1000000; v++)
		stats_hist_add(h, v);
	for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++)
		ck_assert_close((double)stats_hist_quantile(h, qs[i]), qs[i] * 1e6, 0.03);
	ck_assert_uint_eq(stats_hist_quantile(h, 0), 1);
	ck_assert_uint_eq(stats_hist_quantile(h, 1), 1000000);
	for (uint64_t v = 1000; v < 1000000; v += 7919)
		ck_assert(fabs(stats_hist_frac_above(h, v) - (1e6 - (double)v) / 1e6) < 1e-3);
	free(h);
}
END_TEST

#define HIST_THREADS 4
#define HIST_PER_THREAD 1000000

static void *hist_adder(void *arg)
{
	struct stats_hist *h = arg;

	for (uint64_t i = 0; i < HIST_PER_THREAD; i++)
		stats_hist_add(h, i * 2654435761u % 100000000u + 5);
	return NULL;
}

START_TEST(test_hist_threads)
{
	struct stats_hist *h = malloc(sizeof(*h));
	pthread_t t[HIST_THREADS];
	uint64_t total = 0, want_sum = 0;

	ck_assert_ptr_nonnull(h);
	stats_hist_init(h);
	for (int i = 0; i < HIST_THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, hist_adder, h), 0);
	for (int i = 0; i < HIST_THREADS; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	for (size_t b = 0; b < STATS_HIST_BUCKETS; b++)
		total += h->buckets[b];
	for (uint64_t i = 0; i < HIST_PER_THREAD; i++)
		want_sum += i * 2654435761u % 100000000u + 5;
	ck_assert_uint_eq(h->count, (uint64_t)HIST_THREADS * HIST_PER_THREAD);
	ck_assert_uint_eq(total, h->count);
	ck_assert_uint_eq(h->sum, want_sum * HIST_THREADS);
	ck_assert_uint_eq(h->min, 5);
	ck_assert_uint_le(h->max, 100000004);
	free(h);
}
END_TEST

static char *hist_csv(const struct stats_hist *h, const char *unit, double scale, int *rc)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(f);
	*rc = stats_hist_write_csv(h, f, unit, scale);
	fclose(f);
	return buf;
}

START_TEST(test_hist_csv)
{
	struct stats_hist h;
	char *s;
	int rc;

	stats_hist_init(&h);
	s = hist_csv(&h, "ns", 1, &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(s, "low_ns,high_ns,count,cumulative_fraction\n");
	free(s);
	stats_hist_add(&h, 1);
	stats_hist_add(&h, 1);
	stats_hist_add(&h, 2);
	stats_hist_add(&h, 100); /* e = 6, s = 50 & 31 = 18: [100, 102) */
	s = hist_csv(&h, "ns", 1, &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(s, "low_ns,high_ns,count,cumulative_fraction\n"
			    "1,2,2,0.5\n"
			    "2,3,1,0.75\n"
			    "100,102,1,1\n");
	free(s);
	s = hist_csv(&h, "us", 1e3, &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(s, "low_us,high_us,count,cumulative_fraction\n"
			    "0.001,0.002,2,0.5\n"
			    "0.002,0.003,1,0.75\n"
			    "0.1,0.102,1,1\n");
	free(s);
	s = hist_csv(&h, "", 1, &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert(strncmp(s, "low,high,count,cumulative_fraction\n", 35) == 0);
	free(s);
	s = hist_csv(&h, "ms", 0, &rc);
	ck_assert_int_eq(rc, -1);
	free(s);
}
END_TEST

Suite *stats_suite(void)
{
	Suite *s = suite_create("stats");
	TCase *tc = tcase_create("stats");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_normal_quantile);
	tcase_add_test(tc, test_beta_inc);
	tcase_add_test(tc, test_beta_inc_inv);
	tcase_add_test(tc, test_wilson);
	tcase_add_test(tc, test_clopper_pearson);
	tcase_add_test(tc, test_rule_of_three_and_choice);
	tcase_add_test(tc, test_intervals_monotone_and_huge);
	tcase_add_test(tc, test_hist_buckets);
	tcase_add_test(tc, test_hist_exact_small);
	tcase_add_test(tc, test_hist_uniform);
	tcase_add_test(tc, test_hist_threads);
	tcase_add_test(tc, test_hist_csv);
	suite_add_tcase(s, tc);
	return s;
}
