/* check_model.c — the duplicate model: its algebra against a Monte Carlo of the same mechanics, rules read into it, edges. */
#include <amqp.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "analysis/model.h"
#include "tests.h"
#include "core/rng.h"

#define close_to(got, want, rel) ck_assert_msg(fabs((got) - (want)) <= (rel) * fabs(want) + 1e-15, \
					       "%s = %.12g, want %.12g", #got, (double)(got), (double)(want))

/*
 * The mechanics the model sums, simulated: batches of `batch` commit until
 * their CommitOk arrives (each commit adds a copy of every message); every
 * copy is delivered; every k deliveries one ack frame, dropped with q (a cut)
 * or cut after forwarding with qc. After a cut the client executes the next
 * `ahead` deliveries it already holds, whose acks go nowhere (no frames); a
 * dropped frame brings back its k messages and those `ahead`, a cut only the
 * `ahead`; they are delivered (and acked) again. Returns duplicate deliveries
 * per message.
 */
static double mc_duplicates(double p, double q, double qc, unsigned k, unsigned ahead, unsigned batch,
			    unsigned batches, uint64_t seed, double *excess)
{
	struct rng r;
	uint64_t copies = 0, todo, deliveries = 0, silent = 0;
	unsigned since_ack = 0;

	rng_seed(&r, seed);
	for (unsigned b = 0; b < batches; b++) {
		copies += batch;
		while (rng_unit(&r) < p)
			copies += batch;
	}
	for (todo = copies; todo > 0; todo--) {
		deliveries++;
		if (silent) { /* executed on a cut connection: its ack goes nowhere */
			silent--;
			continue;
		}
		if (++since_ack < k)
			continue;
		since_ack = 0;
		if (rng_unit(&r) < q) {
			todo += k + ahead;
			silent = ahead;
		} else if (rng_unit(&r) < qc) {
			todo += ahead;
			silent = ahead;
		}
	}
	*excess = (double)(copies - (uint64_t)batches * batch) / ((double)batches * batch);
	return (double)(deliveries - (uint64_t)batches * batch) / ((double)batches * batch);
}

START_TEST(test_model_vs_monte_carlo)
{
	static const struct {
		double p, q, qc;
		unsigned k, ahead;
	} cases[] = {
		{ 0, 0, 0, 1, 0 },	 { 0.05, 0, 0, 1, 0 },	  { 0, 0.1, 0, 1, 0 },	  { 0.05, 0.1, 0, 1, 0 },
		{ 0.01, 0.005, 0, 1, 11 }, { 0.02, 0.01, 0, 4, 20 }, { 0, 0.01, 0.01, 1, 30 }, { 0.1, 0.02, 0, 10, 5 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct model_in in = { .batch = 10, .consumers = 2, .ack_every = cases[i].k,
				       .commit_ok_lost = cases[i].p, .ack_dropped = cases[i].q, .ack_cut = cases[i].qc,
				       .ahead = cases[i].ahead, .confirms_per_msg = NAN };
		struct model_out out;
		double excess, dup = mc_duplicates(cases[i].p, cases[i].q, cases[i].qc, cases[i].k, cases[i].ahead, 10,
						   200000, 100 + i, &excess);

		model_predict(&in, &out);
		ck_assert(out.predicted);
		/* 2e6 messages: the Monte Carlo's own spread is well under 2 % of these rates */
		ck_assert_msg(fabs(dup - out.duplicate_rate) <= 0.03 * out.duplicate_rate + 2e-4,
			      "case %zu: duplicate rate MC %.5f, model %.5f", i, dup, out.duplicate_rate);
		ck_assert_msg(fabs(excess - out.excess_copies_per_msg) <= 0.03 * out.excess_copies_per_msg + 2e-4,
			      "case %zu: excess MC %.5f, model %.5f", i, excess, out.excess_copies_per_msg);
		if (cases[i].q > 0)
			close_to(out.dups_per_lost_ack, (double)(cases[i].k + cases[i].ahead), 1e-12);
	}
}
END_TEST

/*
 * A skewed ahead, as the proxy sees it: most acks find 0-2 deliveries beyond
 * them, one in twenty a whole prefetch window (mean 3.85, E[a²] = 180.8).
 */
static unsigned skewed_ahead(struct rng *r)
{
	double u = rng_unit(r);

	return u < 0.5 ? 0 : u < 0.75 ? 1 : u < 0.95 ? 2 : 65;
}

/*
 * One run of the mechanics above with ahead drawn per lost ack; *bandsq: the
 * sum of squared event sizes a run would build its own band from.
 */
static double mc_skewed_run(double p, double q, unsigned k, unsigned batch, unsigned batches, struct rng *r,
			    double *bandsq)
{
	uint64_t copies = 0, todo, deliveries = 0, silent = 0, n = (uint64_t)batches * batch;
	unsigned since_ack = 0;

	*bandsq = 0;
	for (unsigned b = 0; b < batches; b++) {
		copies += batch;
		while (rng_unit(r) < p) {
			copies += batch;
			*bandsq += (double)batch * batch;
		}
	}
	for (todo = copies; todo > 0; todo--) {
		deliveries++;
		if (silent) {
			silent--;
			continue;
		}
		if (++since_ack < k)
			continue;
		since_ack = 0;
		if (rng_unit(r) < q) {
			unsigned a = skewed_ahead(r);

			todo += k + a;
			silent = a;
			*bandsq += (double)(k + a) * (k + a);
		}
	}
	return (double)(deliveries - n) / (double)n;
}

/*
 * The model's spread against 600 simulated runs of 20000 messages with a
 * skewed ahead: its sd within 12 % of theirs, and its 95 % band around the
 * prediction holding 95 % of their rates. A band built from the sizes each
 * run drew (what the summary's duplicate_rate_band does) holds the
 * prediction less often: printed, for the note.
 */
START_TEST(test_model_spread_vs_monte_carlo)
{
	static const struct {
		double p, q;
		unsigned k;
	} cases[] = { { 0.02, 0.005, 1 }, { 0.02, 0, 1 }, { 0, 0.01, 4 }, { 0.005, 0.02, 1 } };
	enum { RUNS = 600, BATCHES = 2000 };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct model_in in = { .batch = 10, .consumers = 2, .ack_every = cases[i].k,
				       .commit_ok_lost = cases[i].p, .ack_dropped = cases[i].q, .ahead = 3.85,
				       .ahead_sq = 0.25 + 0.2 * 4 + 0.05 * 65 * 65, .committed = 10.0 * BATCHES,
				       .confirms_per_msg = NAN };
		struct model_out out;
		struct rng r;
		double sum = 0, sq = 0, sd, inside = 0, own = 0;

		model_predict(&in, &out);
		ck_assert(out.predicted && isfinite(out.duplicate_rate_sd));
		rng_seed(&r, 7 + i);
		for (int run = 0; run < RUNS; run++) {
			double bandsq, rate = mc_skewed_run(cases[i].p, cases[i].q, cases[i].k, 10, BATCHES, &r, &bandsq);
			double half = 1.959964 * sqrt(bandsq) / (10.0 * BATCHES);

			sum += rate;
			sq += rate * rate;
			inside += fabs(rate - out.duplicate_rate) <= 1.959964 * out.duplicate_rate_sd;
			own += fabs(rate - out.duplicate_rate) <= half;
		}
		sd = sqrt((sq - sum * sum / RUNS) / (RUNS - 1));
		fprintf(stderr, "spread case %zu: rate %.4f, sd MC %.5f model %.5f; model band holds %.3f, "
				"the run's own band %.3f\n",
			i, out.duplicate_rate, sd, out.duplicate_rate_sd, inside / RUNS, own / RUNS);
		ck_assert_msg(fabs(sum / RUNS - out.duplicate_rate) <= 0.03 * out.duplicate_rate, "case %zu: mean", i);
		ck_assert_msg(fabs(sd - out.duplicate_rate_sd) <= 0.12 * sd, "case %zu: sd MC %g, model %g", i, sd,
			      out.duplicate_rate_sd);
		/* 600 runs: 95 % ± 2.7 % is three binomial sds */
		ck_assert_msg(inside / RUNS >= 0.923 && inside / RUNS <= 0.977, "case %zu: the band holds %.3f", i,
			      inside / RUNS);
	}
}
END_TEST

/* The old model counted one duplicate per lost ack: with a window ahead of the ack it is 4-5x too low. */
START_TEST(test_model_counts_the_window)
{
	struct model_in in = { .batch = 10, .consumers = 2, .ack_every = 1, .commit_ok_lost = 0.01,
			       .ack_dropped = 0.005, .ahead = 11, .confirms_per_msg = NAN };
	struct model_out out;
	double old = (0.01 + 0.005 - 0.01 * 0.005) / (0.99 * 0.995);

	model_predict(&in, &out);
	close_to(out.duplicate_rate, (1 + 0.01 / 0.99) * (1 + 0.005 * 11) / (1 - 0.005) - 1, 1e-12);
	ck_assert_double_gt(out.duplicate_rate, 4 * old);
	/* a hanging ack makes none while the connection lives; a cut after the ack only `ahead` */
	in.ack_dropped = 0;
	in.ack_hung = 0.005;
	model_predict(&in, &out);
	close_to(out.duplicate_rate, 0.01 / 0.99, 1e-12);
	in.ack_hung = 0;
	in.ack_cut = 0.005;
	model_predict(&in, &out);
	close_to(out.duplicate_rate, (1 + 0.01 / 0.99) * (1 + 0.005 * 11) - 1, 1e-12);
}
END_TEST

static void rules_into(struct model_in *in, const char *const *texts)
{
	struct rule rules[8];
	size_t n = 0;
	char err[256];

	for (; texts[n]; n++)
		ck_assert_msg(rule_parse(texts[n], &rules[n], err, sizeof(err)) == 0, "%s: %s", texts[n], err);
	model_in_from_rules(in, rules, n);
}

START_TEST(test_rules_read)
{
	struct model_in in = { .batch = 10, .ack_every = 1, .consumers = 2, .ahead = 3, .confirms_per_msg = NAN };
	struct model_out out;

	/* the shortcut keys' rules, an extra rule on the same frame (independent draws), a hang, a cut */
	rules_into(&in, (const char *const[]){ "drop tx.commit-ok from=broker p=0.01", "drop tx.commit-ok p=0.01",
					       "drop basic.nack from=broker p=0.3",
					       "drop basic.ack from=client p=0.02", "drop basic.ack from=client p=0.1 then=hang",
					       "cut basic.ack from=client p=0.03", "cut tx.commit-ok from=broker p=0.5",
					       NULL });
	close_to(in.commit_ok_lost, 1 - 0.99 * 0.99, 1e-12);
	close_to(in.ack_dropped, 0.02, 1e-12);
	close_to(in.ack_hung, 0.1, 1e-12);
	close_to(in.ack_cut, 0.03, 1e-12);
	ck_assert_str_eq(in.unmodelled, "");
	model_predict(&in, &out);
	ck_assert(out.predicted);
	/* a rule it does not know: no prediction, and why */
	memset(&in, 0, sizeof(in));
	in.ahead = 3;
	rules_into(&in, (const char *const[]){ "drop basic.ack from=client p=0.02", "drop basic.deliver p=0.01", NULL });
	model_predict(&in, &out);
	ck_assert(!out.predicted);
	ck_assert(isnan(out.duplicate_rate));
	ck_assert_ptr_nonnull(strstr(out.why, "drop basic.deliver"));
	memset(&in, 0, sizeof(in));
	rules_into(&in, (const char *const[]){ "drop basic.ack from=client p=0.02 after=100", NULL });
	ck_assert_ptr_nonnull(strstr(in.unmodelled, "after=100"));
}
END_TEST

/*
 * Given the faults applied: commit-ok-loss at seed 1 drew 27 drops in 2027
 * CommitOks where p = 2 % expects 40.5. Each drop republishes one batch of
 * 10, so 270 excess copies of 20000: the realized inputs predict exactly
 * that, the nominal ones 2.04 %.
 */
START_TEST(test_realized_faults)
{
	struct model_in nominal = { .batch = 10, .ack_every = 1, .consumers = 2, .ahead = 3, .confirms_per_msg = NAN }, in;
	struct rule rules[2];
	uint64_t matched[2] = { 2027, 0 }, fired[2] = { 27, 0 };
	struct model_out out;
	char err[256];

	ck_assert_int_eq(rule_parse("drop tx.commit-ok from=broker p=0.02", &rules[0], err, sizeof(err)), 0);
	ck_assert_int_eq(rule_parse("drop basic.ack from=client p=0.01", &rules[1], err, sizeof(err)), 0);
	model_in_from_rules(&nominal, rules, 1);
	model_predict(&nominal, &out);
	close_to(out.duplicate_rate, 0.02 / 0.98, 1e-12);
	ck_assert_int_eq(model_in_realized(&in, &nominal, rules, 1, matched, fired), 0);
	close_to(in.commit_ok_lost, 27.0 / 2027.0, 1e-12);
	model_predict(&in, &out);
	close_to(out.duplicate_rate, 270.0 / 20000.0, 1e-12);
	/* a rule that matched nothing keeps its p; the nominal inputs are left alone */
	ck_assert_int_eq(model_in_realized(&in, &nominal, rules, 2, matched, fired), 0);
	close_to(in.ack_dropped, 0.01, 1e-12);
	close_to(nominal.commit_ok_lost, 0.02, 1e-12);
	/* no counts: the rules' own p */
	ck_assert_int_eq(model_in_realized(&in, &nominal, rules, 1, NULL, NULL), 0);
	close_to(in.commit_ok_lost, 0.02, 1e-12);
}
END_TEST

START_TEST(test_edges)
{
	struct model_in in = { .batch = 10, .ack_every = 1, .consumers = 2, .ahead = NAN, .confirms_per_msg = NAN };
	struct model_out out;

	/* nothing lost: nothing predicted but zeros */
	model_predict(&in, &out);
	ck_assert(out.predicted && out.duplicate_rate == 0 && out.excess_copies_per_msg == 0);
	/* ack loss without a measured ahead: no prediction */
	in.ack_dropped = 0.01;
	model_predict(&in, &out);
	ck_assert(!out.predicted);
	ck_assert_ptr_nonnull(strstr(out.why, "ahead"));
	/* confirm mode: each lost frame republishes the window; frames per publish measured */
	in = (struct model_in){ .confirm_mode = true, .batch = 10, .ack_every = 1, .consumers = 0,
				.confirm_lost = 0.02, .ahead = NAN, .confirms_per_msg = 0.12 };
	model_predict(&in, &out);
	close_to(out.excess_copies_per_msg, 0.024 / (1 - 0.024), 1e-12);
	ck_assert(out.duplicate_rate == 0); /* no consumers */
	/* every ack lost: no end */
	in = (struct model_in){ .batch = 10, .ack_every = 1, .consumers = 1, .ack_dropped = 1, .ahead = 20,
				.confirms_per_msg = NAN };
	model_predict(&in, &out);
	ck_assert(isinf(out.duplicate_rate));
	in = (struct model_in){ .batch = 10, .ack_every = 1, .consumers = 1, .commit_ok_lost = 1,
				.confirms_per_msg = NAN, .ahead = NAN };
	model_predict(&in, &out);
	ck_assert(isinf(out.excess_copies_per_msg) && isinf(out.duplicate_rate));
	/* tiny rates don't cancel */
	in = (struct model_in){ .batch = 10, .ack_every = 1, .consumers = 1, .commit_ok_lost = 1e-12,
				.confirms_per_msg = NAN, .ahead = NAN };
	model_predict(&in, &out);
	close_to(out.duplicate_rate, 1e-12, 1e-6);
}
END_TEST

Suite *model_suite(void)
{
	Suite *s = suite_create("model");
	TCase *tc = tcase_create("model");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_model_vs_monte_carlo);
	tcase_add_test(tc, test_model_spread_vs_monte_carlo);
	tcase_add_test(tc, test_model_counts_the_window);
	tcase_add_test(tc, test_rules_read);
	tcase_add_test(tc, test_edges);
	tcase_add_test(tc, test_realized_faults);
	suite_add_tcase(s, tc);
	return s;
}
