/* console.c — the summary `dupsim run` prints when it is done, rendered from struct results. */
#include "results/console.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>

static void console_store(FILE *f, const struct results *r);

static const char *console_pct(char *buf, size_t len, double v)
{
	snprintf(buf, len, "%.4g%%", v * 100);
	return buf;
}

/* The headline claim, phrased in events. */
static void console_miss(FILE *f, const struct results *r)
{
	bool has_interval = isfinite(r->miss.ci_low) && isfinite(r->miss.ci_high);

	if (!(r->miss.trials > 0)) {
		fprintf(f, "  %-28s %18s   no duplicate delivery: nothing to miss\n", "miss probability", "-");
		return;
	}
	if (!has_interval)
		fprintf(f, "  %-28s %18.4g   no interval: %s (%.0f)\n", "miss probability", r->miss.estimate, r->miss.reason,
			r->miss.events);
	else if (!(r->miss.misses > 0))
		fprintf(f, "  %-28s %18.4g   0 misses in %.0f duplicate deliveries from %.0f fault events: below %.3g at 95%%\n",
			"miss probability", r->miss.estimate, r->miss.trials, r->miss.events, r->miss.ci_high);
	else
		fprintf(f, "  %-28s %18.4g   95%% [%.3g, %.3g] over %.0f fault events (%s, design effect %.3g)\n",
			"miss probability", r->miss.estimate, r->miss.ci_low, r->miss.ci_high, r->miss.events, r->miss.method,
			r->miss.design_effect);
	fprintf(f, "  %-28s %18s   [%.3g, %.3g] %s, if duplicates were independent (they are not)\n", "", "",
		r->miss.independent_low, r->miss.independent_high, r->miss.independent_method);
}

/*
 * Does the measured rate fit the model: within the model's band for one run
 * (from the loss rates; the measured band where the model has no spread), or
 * else with the prediction given the faults applied inside the measured band.
 */
static const char *console_verdict(const struct results *r, double pred)
{
	double lo = r->duplicate_rate_low, hi = r->duplicate_rate_high, g = r->predicted.duplicate_rate_given_faults;
	double sd = r->predicted.duplicate_rate_sd, rate = r->duplicate_deliveries / r->committed;

	if (isfinite(sd) ? fabs(rate - pred) <= 1.959964 * sd : pred >= lo && pred <= hi)
		return ": the model fits";
	if (g >= lo && g <= hi)
		return ": outside the model's band, inside given the faults applied";
	return ": OUTSIDE the model's band";
}

/* Committed to duplicates processed, measured beside predicted, with the rate's band. */
static void console_counts(FILE *f, const struct results *r, bool predicted)
{
	double committed = r->committed;
	double rate = committed > 0 ? r->duplicate_deliveries / committed : 0;
	double excess = committed > 0 ? r->excess_copies / committed : 0, pred = r->predicted.duplicate_rate;
	char a[64], b[64];

	fprintf(f, "  %-28s %18s %18s\n", "", "measured", "predicted");
	fprintf(f, "  %-28s %18.0f\n", "committed messages", committed);
	fprintf(f, "  %-28s %18.0f\n", "publish attempts", r->publish_attempts);
	fprintf(f, "  %-28s %11.0f %6s %18s\n", "excess copies (per msg)", r->excess_copies,
		console_pct(a, sizeof(a), excess),
		predicted ? console_pct(b, sizeof(b), r->predicted.excess_copies_per_message) : "-");
	fprintf(f, "  %-28s %18.0f\n", "deliveries", r->deliveries);
	fprintf(f, "  %-28s %18.0f\n", "duplicate deliveries", r->duplicate_deliveries);
	fprintf(f, "  %-28s %18s %18s\n", "duplicate rate", console_pct(a, sizeof(a), rate),
		predicted ? console_pct(b, sizeof(b), pred) : "-");
	if (predicted && isfinite(r->predicted.duplicate_rate_sd))
		fprintf(f, "  %-28s %18s   model's 95%% band for a run: %.4g%% - %.4g%%\n", "", "",
			fmax(pred - 1.959964 * r->predicted.duplicate_rate_sd, 0) * 100,
			(pred + 1.959964 * r->predicted.duplicate_rate_sd) * 100);
	if (isfinite(r->duplicate_rate_low) && committed > 0)
		fprintf(f, "  %-28s %18s   95%% band %.4g%% - %.4g%% over %.0f fault events%s\n", "", "",
			r->duplicate_rate_low * 100, r->duplicate_rate_high * 100, r->fault_events,
			!predicted ? "" : console_verdict(r, pred));
	if (predicted && isfinite(r->predicted.duplicate_rate_given_faults))
		fprintf(f, "  %-28s %18s %18s\n", "  given the faults applied", "",
			console_pct(b, sizeof(b), r->predicted.duplicate_rate_given_faults));
	fprintf(f, "  %-28s %18.0f\n", "duplicates processed", r->duplicates_processed);
	fprintf(f, "  %-28s %18.0f\n", "fault events (with dups)", r->fault_events);
}

/* Throughput, latency, the gaps, the rules, the crashes, the invariants. */
static void console_run(FILE *f, const struct results *r)
{
	fprintf(f, "  %-28s %18.0f msg/s published, %.0f processed\n", "throughput", r->throughput.published_per_s,
		r->throughput.processed_per_s);
	fprintf(f, "  %-28s p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", "latency publish->processed", r->latency_ms.p50,
		r->latency_ms.p99, r->latency_ms.max);
	if (r->gap_ms.count > 0)
		fprintf(f, "  %-28s p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", "duplicate gap", r->gap_ms.p50, r->gap_ms.p99,
			r->gap_ms.max);
	for (size_t i = 0; i < r->faults.rule_count; i++)
		if (r->faults.rules[i].in_summary)
			fprintf(f, "  fault '%s': fired %.0f of %.0f\n", r->faults.rules[i].text, r->faults.rules[i].fired,
				r->faults.rules[i].matched);
	if (r->faults.broker_crashes > 0)
		fprintf(f, "  broker crashes (kill -9)     %18.0f\n", r->faults.broker_crashes);
	console_store(f, r);
	if (r->app.on)
		fprintf(f, "  app: %.0f kill -9s, %.0f exits, %.0f restarts; %.0f deliveries abandoned; report.md "
			   "says how the app's fates are read\n",
			r->app.n.kills, r->app.n.exits, r->app.n.restarts, r->app.n.abandoned);
	else if (r->faults.consumer_crashes > 0)
		fprintf(f, "  consumer crashes             %18.0f\n", r->faults.consumer_crashes);
	if (r->invariants.violations > 0)
		fprintf(f, "  INVARIANTS VIOLATED (%.0f): %s\n", r->invariants.violations, r->invariants.detail);
	else
		fprintf(f, "  ledger invariants hold\n");
}

/* issue 13: the dedup store's own faults, the lines that apply. */
static void console_store(FILE *f, const struct results *r)
{
	if (r->store.restarts > 0)
		fprintf(f, "  store restarts (no persistence) %15.0f\n", r->store.restarts);
	if (r->store.down_ms > 0)
		fprintf(f, "  store down (SIGSTOP)         %15.0f ms\n", r->store.down_ms);
	if (r->store.stalls > 0)
		fprintf(f, "  consumers stalled (on_error = closed) %6.0f times, %.0f ms in all\n", r->store.stalls,
			r->store.stalled_ms);
	if (r->store.redis_evicted_keys > 0)
		fprintf(f, "  keys redis evicted (maxmemory) %16.0f\n", r->store.redis_evicted_keys);
}

void console_print(FILE *f, const struct results *r, const char *out_dir, const char *notes)
{
	bool predicted = isfinite(r->predicted.duplicate_rate);

	fprintf(f, "\ndupsim run '%s' (seed %" PRIu64 "): %s in %.1f s -> %s\n", r->scenario, r->seed, r->status,
		r->throughput.duration_s, out_dir);
	console_counts(f, r, predicted);
	console_miss(f, r);
	for (int c = 0; c < LEDGER_CAUSES; c++)
		if (r->misses_by_cause[c] > 0)
			fprintf(f, "  %-28s %18.0f\n", ledger_cause_name(c), r->misses_by_cause[c]);
	fprintf(f, "  %-28s %18.0f\n", "lost", r->lost);
	fprintf(f, "  %-28s %18.0f\n", "wrongly suppressed", r->wrongly_suppressed);
	if (isfinite(r->dlq.dead_lettered))
		fprintf(f, "  %-28s %18.0f   replayed %.0f, left %.0f, of which never processed %.0f\n", "dead-lettered",
			r->dlq.dead_lettered, r->dlq.replayed, r->dlq.left, r->dlq.lost_in_dlq);
	console_run(f, r);
	fputs(notes, f);
	if (isfinite(r->faults.duplicates_per_lost_ack))
		fprintf(f, "  %-28s %18.2f %18.2f\n", "duplicates per lost ack", r->faults.duplicates_per_lost_ack,
			r->predicted.duplicates_per_lost_ack);
	if (isfinite(r->predicted.ahead))
		fprintf(f, "  measured for the model: %.2f deliveries ahead of an ack (mean of %.0f acks)\n",
			r->predicted.ahead, r->predicted.acks_sampled);
	if (!predicted)
		fprintf(f, "  no prediction: %s\n", r->predicted.why_not);
	fprintf(f, "  the model and its assumptions: sim/analysis/model.c\n");
	fflush(f);
}
