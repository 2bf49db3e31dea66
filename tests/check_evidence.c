/* check_evidence.c — intervals over fault events: Monte Carlo coverage on synthetic clustered runs, validate's error rates. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/evidence.h"
#include "analysis/stats.h"
#include "tests.h"
#include "core/rng.h"

/* ---- a synthetic run: events of geometric size (mean 10), each with its own miss probability ---- */

static double rng_gamma(struct rng *r, double shape)
{
	/* Marsaglia–Tsang; shape < 1 through the boost u^(1/shape) */
	double d, c, x, v, u;

	if (shape < 1) {
		u = rng_unit(r);
		return rng_gamma(r, shape + 1) * pow(u > 0 ? u : 1e-300, 1 / shape);
	}
	d = shape - 1.0 / 3;
	c = 1 / sqrt(9 * d);
	for (;;) {
		double u1 = rng_unit(r), u2 = rng_unit(r);

		/* Box–Muller for the normal draw */
		x = sqrt(-2 * log(u1 > 0 ? u1 : 1e-300)) * cos(2 * M_PI * u2);
		v = 1 + c * x;
		if (v <= 0)
			continue;
		v = v * v * v;
		u = rng_unit(r);
		if (u < 1 - 0.0331 * x * x * x * x || log(u > 0 ? u : 1e-300) < 0.5 * x * x + d * (1 - v + log(v)))
			return d * v;
	}
}

static double rng_beta(struct rng *r, double a, double b)
{
	double x = rng_gamma(r, a), y = rng_gamma(r, b);

	return x + y > 0 ? x / (x + y) : 0;
}

/*
 * One run of n events. Event sizes: geometric with mean `mean` (>= 1).
 * Each event's miss probability is Beta with mean p and intra-event
 * correlation rho (rho = 1: all or nothing; 0: independent duplicates).
 */
struct synth {
	double p, rho, mean;
	size_t events;
};

static void synth_run(const struct synth *s, struct rng *r, uint64_t *x, uint64_t *d)
{
	double q = 1 / s->mean;

	for (size_t i = 0; i < s->events; i++) {
		uint64_t k = 1;
		double pi;

		while (rng_unit(r) >= q)
			k++;
		if (s->rho >= 1)
			pi = rng_unit(r) < s->p ? 1 : 0;
		else if (s->rho <= 0)
			pi = s->p;
		else
			pi = rng_beta(r, s->p * (1 - s->rho) / s->rho, (1 - s->p) * (1 - s->rho) / s->rho);
		d[i] = k;
		x[i] = 0;
		for (uint64_t j = 0; j < k; j++)
			x[i] += rng_unit(r) < pi;
	}
}

/* Coverage of the event interval and of the independent-trials one (Clopper–Pearson over duplicates). */
static void coverage(const struct synth *s, unsigned runs, uint64_t seed, double *cov_events, double *cov_indep,
		     double *no_interval)
{
	uint64_t *x = malloc(s->events * sizeof(*x)), *d = malloc(s->events * sizeof(*d));
	struct rng r;
	unsigned ok_e = 0, ok_i = 0, none = 0;

	ck_assert_ptr_nonnull(x);
	ck_assert_ptr_nonnull(d);
	rng_seed(&r, seed);
	for (unsigned k = 0; k < runs; k++) {
		struct evidence_interval iv;
		struct stats_interval bi;

		synth_run(s, &r, x, d);
		evidence_ratio2(x, d, s->events, 0.95, &iv);
		stats_clopper_pearson(iv.misses, iv.dups, 0.95, &bi);
		if (!iv.has_interval) {
			none++;
			continue;
		}
		ok_e += iv.low <= s->p && s->p <= iv.high;
		ok_i += bi.low <= s->p && s->p <= bi.high;
	}
	*cov_events = (double)ok_e / (runs - none);
	*cov_indep = (double)ok_i / (runs - none);
	*no_interval = (double)none / runs;
	free(x);
	free(d);
}

#define MC_RUNS 2000

/* 95 % intervals over events cover the truth 93–98 % of the time; the independent-trials interval does not. */
static const struct synth coverage_cases[] = {
	/* the four p at a moderate random effect; p = 0.001 needs many events to see misses at all */
	{ .p = 0.001, .rho = 0.3, .mean = 10, .events = 5000 },
	{ .p = 0.05, .rho = 0.3, .mean = 10, .events = 300 },
	{ .p = 0.5, .rho = 0.3, .mean = 10, .events = 300 },
	{ .p = 0.9, .rho = 0.3, .mean = 10, .events = 300 },
	/* like the real runs: ~40 lost acks of ~11 redeliveries, misses strongly shared within an event */
	{ .p = 0.74, .rho = 0.5, .mean = 11, .events = 40 },
	{ .p = 0.5, .rho = 0.8, .mean = 10, .events = 40 },
};

START_TEST(test_coverage)
{
	const struct synth *s = &coverage_cases[_i];
	double ce, ci, none;

	coverage(s, MC_RUNS, 1000 + (uint64_t)_i, &ce, &ci, &none);
	fprintf(stderr, "evidence coverage p=%g rho=%g events=%zu: over events %.3f, independent trials %.3f\n", s->p,
		s->rho, s->events, ce, ci);
	ck_assert_msg(ce >= 0.93 && ce <= 0.98, "p=%g rho=%g: coverage over events %.3f outside [0.93, 0.98]", s->p,
		      s->rho, ce);
	/* the test can fail: the interval that treats duplicates as independent covers far less */
	ck_assert_msg(ci < 0.90, "p=%g: the independent-trials interval covered %.3f", s->p, ci);
	ck_assert(none == 0);
}
END_TEST

/*
 * Zero misses: the bound over events holds whatever the correlation. With
 * all-or-nothing events at p just above the bound's typical value, the
 * runs with zero misses that claim "below the bound" while the truth is above
 * it are at most 2.5 % (the one-sided error of a two-sided 95 % interval);
 * the rule of three over duplicates claims it in most of them.
 */
START_TEST(test_zero_miss_bound)
{
	struct synth s = { .p = 0.012, .rho = 1, .mean = 10, .events = 300 };
	uint64_t *x = malloc(s.events * sizeof(*x)), *d = malloc(s.events * sizeof(*d));
	unsigned zero = 0, wrong_events = 0, wrong_dups = 0, covered = 0;
	struct rng r;

	rng_seed(&r, 77);
	for (unsigned k = 0; k < MC_RUNS; k++) {
		struct evidence_interval iv;
		struct stats_interval bi;

		synth_run(&s, &r, x, d);
		evidence_ratio2(x, d, s.events, 0.95, &iv);
		ck_assert(iv.has_interval);
		covered += iv.low <= s.p && s.p <= iv.high;
		if (iv.misses)
			continue;
		zero++;
		ck_assert_str_eq(iv.method, "events-zero");
		stats_clopper_pearson(0, iv.dups, 0.95, &bi);
		wrong_events += iv.high < s.p;
		wrong_dups += bi.high < s.p;
	}
	fprintf(stderr, "evidence zero-miss: %u of %u runs had no miss; bound over events wrong in %u (%.3f), "
			"over duplicates wrong in %u; overall coverage %.3f\n",
		zero, MC_RUNS, wrong_events, (double)wrong_events / MC_RUNS, wrong_dups, (double)covered / MC_RUNS);
	ck_assert_msg(zero > MC_RUNS / 100, "the case must produce zero-miss runs (%u)", zero);
	ck_assert_msg((double)wrong_events / MC_RUNS <= 0.025, "zero-miss bound wrong in %u of %u", wrong_events,
		      MC_RUNS);
	ck_assert_msg(wrong_dups == zero, "the bound over duplicates should be wrong in every zero-miss run here");
	ck_assert_msg((double)covered / MC_RUNS >= 0.93, "coverage %.3f", (double)covered / MC_RUNS);
	free(x);
	free(d);
}
END_TEST

START_TEST(test_small_and_degenerate)
{
	uint64_t x[30] = { 0 }, d[30];
	struct evidence_interval iv;

	for (int i = 0; i < 30; i++)
		d[i] = 10;
	/* fewer than 20 events: an estimate, no interval, a reason */
	evidence_ratio2(x, d, 19, 0.95, &iv);
	ck_assert(!iv.has_interval);
	ck_assert(isnan(iv.high));
	ck_assert_ptr_nonnull(strstr(iv.reason, "20 fault events"));
	ck_assert_uint_eq(iv.events, 19);
	/* events without duplicates don't count */
	d[0] = 0;
	evidence_ratio2(x, d, 20, 0.95, &iv);
	ck_assert(!iv.has_interval);
	d[0] = 10;
	/* zero misses in 30 events of 10: 1 - 0.025^(1/30), not 1 - 0.025^(1/300) */
	evidence_ratio2(x, d, 30, 0.95, &iv);
	ck_assert(iv.has_interval);
	ck_assert_str_eq(iv.method, "events-zero");
	ck_assert_double_eq_tol(iv.high, 1 - pow(0.025, 1.0 / 30), 1e-12);
	/* all missed: the mirror image */
	for (int i = 0; i < 30; i++)
		x[i] = 10;
	evidence_ratio2(x, d, 30, 0.95, &iv);
	ck_assert_str_eq(iv.method, "events-all");
	ck_assert_double_eq_tol(iv.low, pow(0.025, 1.0 / 30), 1e-12);
	ck_assert(iv.high == 1);
	/* misses that come whole events at a time are worth about one trial per event */
	for (int i = 0; i < 30; i++)
		x[i] = i % 3 == 0 ? 10 : 0;
	evidence_ratio2(x, d, 30, 0.95, &iv);
	ck_assert_str_eq(iv.method, "events-kg");
	ck_assert_double_eq_tol(iv.estimate, 1.0 / 3, 1e-12);
	ck_assert_msg(iv.deff > 8 && iv.deff < 12, "deff %g", iv.deff);
	ck_assert_msg(iv.n_eff < 35, "n_eff %g", iv.n_eff);
	ck_assert(iv.low < 1.0 / 3 && iv.high > 1.0 / 3);
	/* misses spread evenly: the design effect is below one, clamped: worth all 300 duplicates */
	for (int i = 0; i < 30; i++)
		x[i] = 4;
	evidence_ratio2(x, d, 30, 0.95, &iv);
	ck_assert(iv.n_eff <= 300 && iv.n_eff > 250);
}
END_TEST

START_TEST(test_t_quantile)
{
	/* tabulated values */
	ck_assert_double_eq_tol(evidence_t_quantile(0.975, 1), 12.7062, 1e-3);
	ck_assert_double_eq_tol(evidence_t_quantile(0.975, 10), 2.22814, 1e-4);
	ck_assert_double_eq_tol(evidence_t_quantile(0.975, 39), 2.02269, 1e-4);
	ck_assert_double_eq_tol(evidence_t_quantile(0.995, 5), 4.03214, 1e-4);
	ck_assert_double_eq_tol(evidence_t_quantile(0.025, 10), -2.22814, 1e-4);
	ck_assert_double_eq_tol(evidence_t_quantile(0.975, 1e6), 1.95996, 1e-4);
	ck_assert(evidence_t_quantile(0.5, 7) == 0);
}
END_TEST

START_TEST(test_count_band)
{
	struct evidence_event ev[40];
	double lo, hi;

	for (int i = 0; i < 40; i++)
		ev[i] = (struct evidence_event){ .dups = 10 };
	ck_assert(evidence_count_band(ev, 40, 0.95, &lo, &hi));
	/* 400 duplicates in 40 events: ±1.96·√(40·100), not ±1.96·√400 */
	ck_assert_double_eq_tol(hi - 400, 1.959964 * sqrt(4000), 1e-3);
	ck_assert(!evidence_count_band(ev, 19, 0.95, &lo, &hi));
	ck_assert(isnan(lo));
}
END_TEST

/* Lost acks at the squared size expected of them: 20 of size 10 counted at 400 each, the others at their own. */
START_TEST(test_count_band_sized)
{
	struct evidence_event ev[40];
	bool sized[40];
	double lo, hi;

	for (int i = 0; i < 40; i++) {
		ev[i] = (struct evidence_event){ .dups = i == 39 ? 0 : 10 };
		sized[i] = i % 2 == 0;
	}
	ck_assert(evidence_count_band_sized(ev, 40, sized, 400, 0.95, &lo, &hi));
	/* 390 duplicates; the 20 sized events at 400, the 19 others with duplicates at 100; the empty one not at all */
	ck_assert_double_eq_tol(hi - 390, 1.959964 * sqrt(20 * 400 + 19 * 100), 1e-3);
	ck_assert_double_eq_tol(390 - lo, hi - 390, 1e-9);
	/* no size (NAN) or no marks: each event's own */
	ck_assert(evidence_count_band_sized(ev, 40, sized, NAN, 0.95, &lo, &hi));
	ck_assert_double_eq_tol(hi - 390, 1.959964 * sqrt(39 * 100), 1e-3);
	ck_assert(evidence_count_band_sized(ev, 40, NULL, 400, 0.95, &lo, &hi));
	ck_assert_double_eq_tol(hi - 390, 1.959964 * sqrt(39 * 100), 1e-3);
}
END_TEST

/*
 * validate's plan on synthetic runs: the chance of a PASS at a true miss
 * probability 1.5× the target stays at or below 5 %; the power at a quarter
 * of the target is reported and must be useful.
 */
static double validate_pass_rate(double p, double target, unsigned trials, uint64_t seed, double *mean_runs)
{
	struct synth s = { .p = p, .rho = 0.3, .mean = 10, .events = 40 };
	struct evidence_plan plan;
	size_t cap = 32 * s.events;
	uint64_t *x = malloc(cap * sizeof(*x)), *d = malloc(cap * sizeof(*d));
	struct rng r;
	unsigned pass = 0;
	double runs_sum = 0;

	evidence_plan_init(&plan, 32, 0.95);
	rng_seed(&r, seed);
	for (unsigned t = 0; t < trials; t++) {
		unsigned runs;

		for (runs = 1; runs <= plan.max_runs; runs++) {
			struct evidence_interval iv;
			enum evidence_verdict v;

			synth_run(&s, &r, x + (runs - 1) * s.events, d + (runs - 1) * s.events);
			if (!evidence_plan_is_look(&plan, runs))
				continue;
			v = evidence_look(&plan, x, d, runs * s.events, target, &iv);
			if (v == EVIDENCE_PASS)
				pass++;
			if (v != EVIDENCE_CONTINUE)
				break;
		}
		runs_sum += runs > plan.max_runs ? plan.max_runs : runs;
	}
	free(x);
	free(d);
	*mean_runs = runs_sum / trials;
	return (double)pass / trials;
}

START_TEST(test_validate_error_rates)
{
	struct evidence_plan plan;
	double target = 0.02, runs_bad, runs_good;
	double false_pass = validate_pass_rate(1.5 * target, target, 1000, 5, &runs_bad);
	double power = validate_pass_rate(target / 4, target, 1000, 6, &runs_good);

	evidence_plan_init(&plan, 32, 0.95);
	ck_assert_uint_eq(plan.looks, 6);
	ck_assert(evidence_plan_is_look(&plan, 1) && evidence_plan_is_look(&plan, 16) &&
		  !evidence_plan_is_look(&plan, 3) && !evidence_plan_is_look(&plan, 33));
	evidence_plan_init(&plan, 20, 0.95);
	ck_assert_uint_eq(plan.looks, 6); /* 1 2 4 8 16 20 */
	ck_assert(evidence_plan_is_look(&plan, 20));
	fprintf(stderr, "validate synthetic: false PASS at p = 1.5 x target: %.3f (mean %.1f runs); "
			"power at target/4: %.3f (mean %.1f runs)\n",
		false_pass, runs_bad, power, runs_good);
	ck_assert_msg(false_pass <= 0.05, "false PASS rate %.3f", false_pass);
	ck_assert_msg(power >= 0.5, "power %.3f", power);
}
END_TEST

Suite *evidence_suite(void)
{
	Suite *s = suite_create("evidence");
	TCase *tc = tcase_create("evidence");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_t_quantile);
	tcase_add_test(tc, test_small_and_degenerate);
	tcase_add_test(tc, test_count_band);
	tcase_add_test(tc, test_count_band_sized);
	tcase_add_loop_test(tc, test_coverage, 0, (int)(sizeof(coverage_cases) / sizeof(coverage_cases[0])));
	tcase_add_test(tc, test_zero_miss_bound);
	tcase_add_test(tc, test_validate_error_rates);
	suite_add_tcase(s, tc);
	return s;
}
