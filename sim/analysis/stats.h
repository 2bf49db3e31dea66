/* stats.h — statistics for the report: binomial intervals, log-bucket histograms. */
#ifndef DUPSIM_STATS_H
#define DUPSIM_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A binomial proportion x/n with a two-sided interval. */
struct stats_interval {
	double estimate; /* x / n, or 0 when n == 0 */
	double low, high;
	const char *method; /* "wilson", "clopper-pearson", "rule-of-three" or "none" (n == 0) */
};

/* Wilson score interval at the given confidence (e.g. 0.95). */
void stats_wilson(uint64_t x, uint64_t n, double confidence, struct stats_interval *out);
/* Exact Clopper–Pearson interval (beta quantiles). */
void stats_clopper_pearson(uint64_t x, uint64_t n, double confidence, struct stats_interval *out);
/* Rule of three: x == 0 → [0, 3/n] (95 %). */
void stats_rule_of_three(uint64_t n, struct stats_interval *out);
/*
 * What dupsim reports for a miss probability: Wilson when both x and n - x
 * are at least 5, Clopper–Pearson when a count is smaller (x == 0 included;
 * its upper bound is close to the rule of three's 3/n for large n).
 * n == 0: estimate 0, interval [0, 1], method "none".
 */
void stats_proportion(uint64_t x, uint64_t n, double confidence, struct stats_interval *out);

/* Inverse of the standard normal CDF (for z at a confidence level). */
double stats_normal_quantile(double p);
/* Regularised incomplete beta I_x(a, b) and its inverse in x. */
double stats_beta_inc(double a, double b, double x);
double stats_beta_inc_inv(double a, double b, double p);

/*
 * Histogram of non-negative values (nanoseconds, counts) in log-spaced
 * buckets: relative error of a percentile under ~2 %. Thread-safe adds
 * (atomic counters); no allocation after init.
 */
#define STATS_HIST_BUCKETS 2048
struct stats_hist {
	uint64_t buckets[STATS_HIST_BUCKETS]; /* updated atomically */
	uint64_t count, sum, min, max;	      /* min/max/sum also atomically */
};
void stats_hist_init(struct stats_hist *h);
void stats_hist_add(struct stats_hist *h, uint64_t v);
/* Value at quantile q in [0, 1] (bucket midpoint); 0 when empty. */
uint64_t stats_hist_quantile(const struct stats_hist *h, double q);
/* Fraction of values strictly greater than v. */
double stats_hist_frac_above(const struct stats_hist *h, uint64_t v);
/* Bucket index of a value and a bucket's [low, high) range. */
size_t stats_hist_bucket(uint64_t v);
void stats_hist_bucket_range(size_t b, uint64_t *low, uint64_t *high);
/* Writes non-empty buckets as CSV rows "low,high,count,cumulative_fraction" with a header line
 * naming the unit (scale divides values, e.g. 1e6 for ms). */
int stats_hist_write_csv(const struct stats_hist *h, FILE *f, const char *unit, double scale);


#endif
