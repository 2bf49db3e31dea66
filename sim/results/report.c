/* report.c — report.md of a run or sweep folder, rendered from struct results / struct sweep. */
#include "results/report.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "results/results.h"
#include "results/sweep.h"
#include "core/files.h"
#include "core/log.h"

/* The causes of a duplicate processed, in the ledger's words (DESIGN.md, Vocabulary). */
static const struct {
	const char *key, *meaning;
} report_causes[] = {
	{ "expired", "the key's TTL had passed" },
	{ "evicted", "the key was evicted for capacity (dedup.capacity, or redis's maxmemory)" },
	{ "unchecked", "the policy skipped the lookup" },
	{ "not_inserted", "the first copy's mark was not yet visible" },
	{ "other_cache", "another consumer's local cache had the key" },
	{ "race", "two consumers had the message in flight at once" },
	{ "lost_in_crash", "the store lost the key in a crash" },
	{ "store_error", "the store failed and the policy went on without it" },
	{ "store_lost", "the store lost the key in a restart without persistence" },
	{ "unknown_app", "the app executed it again; dupsim can't see inside the app to say why" },
	{ "unexplained", "no cause found (a harness bug to report)" },
};
/* one row per cause of the ledger (a row twice, or one missing, showed in report.md) */
_Static_assert(sizeof(report_causes) / sizeof(report_causes[0]) == LEDGER_CAUSES, "a row per ledger cause");

/* The count of the cause named key; NaN when unknown. */
static double report_cause(const struct results *s, const char *key)
{
	for (int c = 0; c < LEDGER_CAUSES; c++)
		if (strcmp(ledger_cause_name(c), key) == 0)
			return s->misses_by_cause[c];
	return NAN;
}

/* v in fmt ("–" when unknown). Buffers rotate so one printf can hold several. */
static const char *report_fmt(const char *fmt, double v)
{
	static char b[8][48];
	static unsigned i;
	char *o = b[i++ % 8];

	if (!isfinite(v))
		return "–";
	snprintf(o, 48, fmt, v);
	return o;
}

/* A count. */
static const char *report_count(double v)
{
	return report_fmt("%.0f", v);
}

/* A value with 4 significant digits. */
static const char *report_g(double v)
{
	return report_fmt("%.4g", v);
}

/* A fraction as a percentage. */
static const char *report_pct(double v)
{
	return report_fmt("%.4g %%", v * 100);
}

/* Writes text into a table cell: '|' would end the cell, a newline the row. */
static void report_cell(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '|')
			fputs("\\|", f);
		else
			fputc(*s == '\n' || *s == '\r' ? ' ' : *s, f);
	}
}

static bool report_file_exists(const char *dir, const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return false;
	return stat(path, &st) == 0 && st.st_size > 0;
}

/* Embeds plots/NAME.png if it was drawn, with a caption and a link to the SVG. */
static void report_image(FILE *f, const char *dir, const char *name, const char *alt, const char *caption)
{
	char file[128];

	snprintf(file, sizeof(file), "plots/%s.png", name);
	if (!report_file_exists(dir, file))
		return;
	fprintf(f, "### %s\n\n![%s](plots/%s.png)\n\n%s", alt, alt, name, caption);
	snprintf(file, sizeof(file), "plots/%s.svg", name);
	if (report_file_exists(dir, file))
		fprintf(f, " ([SVG](plots/%s.svg))", name);
	fputs("\n\n", f);
}

/* The causes, most frequent first: the index of the top one, its count in *top (-1 with none). */
static size_t report_top_cause(const struct results *s, double *topv)
{
	size_t top = 0;

	*topv = -1;
	for (size_t i = 0; i < sizeof(report_causes) / sizeof(report_causes[0]); i++) {
		double v = report_cause(s, report_causes[i].key);

		if (v > *topv) {
			*topv = v;
			top = i;
		}
	}
	return top;
}

/* The dedup miss probability, phrased in fault events. */
static void report_claim_miss(FILE *f, const struct results *s)
{
	double n = s->miss.trials, k = s->miss.misses, p = s->miss.estimate, lo = s->miss.ci_low, hi = s->miss.ci_high;
	double ev = s->miss.events, topv;
	const char *method = *s->miss.method ? s->miss.method : "?";
	size_t top;

	if (!isfinite(n)) {
		fputs("- The summary holds no miss probability.\n", f);
	} else if (n == 0) {
		fputs("- **Miss probability: no claim.** No duplicate was delivered, so this run says nothing about "
		      "how often the dedup would let one through.\n",
		      f);
	} else if (!isfinite(lo) || !isfinite(hi)) {
		fprintf(f,
			"- **Miss probability %s, no interval**: %s of %s duplicate deliveries were processed again, "
			"but they came from only %s fault events (%s). Make faults smaller and more frequent, or run "
			"longer, to get at least 20.\n",
			report_g(p), report_count(k), report_count(n), report_count(ev), s->miss.reason);
	} else if (k == 0) {
		double target = hi > 1e-6 ? 1e-6 : pow(10, floor(log10(hi)) - 1);

		fprintf(f,
			"- **0 misses in %s duplicate deliveries from %s fault events: miss probability below %s at "
			"95 %%** (%s). The duplicates of one event share their fate, so the bound counts events, not "
			"duplicates; treating them as independent would claim %s. Showing a miss probability below %g "
			"takes about %s fault events without a miss.\n",
			report_count(n), report_count(ev), report_g(hi), method, report_g(s->miss.independent_high), target,
			report_count(ceil(-log(0.025) / -log1p(-target))));
	} else {
		top = report_top_cause(s, &topv);
		fprintf(f,
			"- **Miss probability %s** (95 %% interval %s – %s over %s fault events, %s): %s of %s duplicate "
			"deliveries were processed again.",
			report_g(p), report_g(lo), report_g(hi), report_count(ev), method, report_count(k), report_count(n));
		if (isfinite(s->miss.design_effect))
			fprintf(f, " Misses cluster within events (design effect %s): the evidence is worth about %s "
				   "independent duplicates, not %s.",
				report_g(s->miss.design_effect), report_count(round(s->miss.effective_trials)),
				report_count(n));
		if (p < 0.1)
			fprintf(f, " About one duplicate in %.0f gets through this dedup.", 1 / p);
		if (topv > 0)
			fprintf(f, " Main cause: `%s` (%s), %s of %s.", report_causes[top].key, report_causes[top].meaning,
				report_count(topv), report_count(k));
		fputc('\n', f);
	}
}

/*
 * The model against the run. From the scenario's loss rates the model says
 * where one run's rate falls (its band, from the spread of the fault draws);
 * without a spread, the prediction against the measured band. Given the
 * faults the proxy applied (each rule at the share of its frames it hit, the
 * lost acks at the sizes they had) only the mechanism is left: inside the
 * measured band when it holds.
 */
static void report_claim_model(FILE *f, const struct results *s, double r)
{
	double pred = s->predicted.duplicate_rate, given = s->predicted.duplicate_rate_given_faults;
	double sd = s->predicted.duplicate_rate_sd, rlo = s->duplicate_rate_low, rhi = s->duplicate_rate_high;
	bool banded = isfinite(sd), in = banded ? fabs(r - pred) <= 1.959964 * sd : pred >= rlo && pred <= rhi;
	bool gin = isfinite(given) && given >= rlo && given <= rhi;
	char band[128] = "";

	if (banded)
		snprintf(band, sizeof(band), " (where 95 %% of runs like this one fall: %s – %s)",
			 report_pct(fmax(pred - 1.959964 * sd, 0)), report_pct(pred + 1.959964 * sd));
	if (in)
		fprintf(f, " The model predicts %s%s, and this run %s: its assumptions hold well enough here.",
			report_pct(pred), band, banded ? "falls inside" : "lies inside the measured band");
	else if (gin)
		fprintf(f, " From the loss rates the model predicts %s%s, and this run falls outside; given the faults "
			   "the proxy applied (each rule at the share of its frames it hit, each lost ack at the "
			   "deliveries it had ahead) it predicts %s, inside the measured band: this run drew %s than "
			   "its rates expect, and the model's mechanism holds.",
			report_pct(pred), band, report_pct(given), given < pred ? "fewer or smaller faults" : "more or larger faults");
	else if (pred > 0)
		fprintf(f, " The model predicts %s%s (%s given the faults the proxy applied); the measured rate is %s× "
			   "that, outside: the model's assumptions (below) do not hold for this run.",
			report_pct(pred), band, isfinite(given) ? report_pct(given) : "–", report_g(r / pred));
}

/* The duplicate rate against the model. */
static void report_claim_rate(FILE *f, const struct results *s)
{
	double committed = s->committed, d = s->duplicate_deliveries, pred = s->predicted.duplicate_rate;
	double r, rlo = s->duplicate_rate_low, rhi = s->duplicate_rate_high, dpla = s->faults.duplicates_per_lost_ack;

	if (!(committed > 0) || !isfinite(d))
		return;
	r = d / committed;
	if (isfinite(rlo))
		fprintf(f, "- **Duplicate rate %s** (95 %% band %s – %s over %s fault events): %s duplicate "
			   "deliveries for %s committed messages.",
			report_pct(r), report_pct(rlo), report_pct(rhi), report_count(s->fault_events), report_count(d),
			report_count(committed));
	else
		fprintf(f, "- **Duplicate rate %s** (no band: fewer than 20 fault events caused duplicates): %s "
			   "duplicate deliveries for %s committed messages.",
			report_pct(r), report_count(d), report_count(committed));
	if (isfinite(rlo) && isfinite(pred))
		report_claim_model(f, s, r);
	if (!isfinite(pred) && *s->predicted.why_not)
		fprintf(f, " No prediction: %s.", s->predicted.why_not);
	if (isfinite(dpla))
		fprintf(f, " Each lost consumer ack caused %s duplicate deliveries on average (the model: %s).",
			report_g(dpla), report_g(s->predicted.duplicates_per_lost_ack));
	fputc('\n', f);
}

/* Loss, wrong suppression, the invariants. */
static void report_claim_loss(FILE *f, const struct results *s)
{
	double committed = s->committed, lost = s->lost, ws = s->wrongly_suppressed, ev = s->miss.events;
	double viol = s->invariants.violations;

	if (committed > 0 && lost == 0 && ev >= 20)
		fprintf(f, "- **No committed message was lost** (0 of %s, through %s fault events): the chance that a "
			   "fault event loses a message is below %s at 95 %%.\n",
			report_count(committed), report_count(ev), report_g(-expm1(log(0.05) / ev)));
	else if (committed > 0 && lost == 0)
		fprintf(f, "- **No committed message was lost** (0 of %s).\n", report_count(committed));
	else if (lost > 0)
		fprintf(f, "- **%s committed message%s lost** (never processed); %s deliver%s wrongly suppressed as "
			   "duplicates.\n",
			report_count(lost), lost == 1 ? " was" : "s were", report_count(ws), ws == 1 ? "y was" : "ies were");
	if (ws > 0 && !(lost > 0))
		fprintf(f, "- %s deliver%s wrongly suppressed as duplicates (processed later by a redelivery).\n",
			report_count(ws), ws == 1 ? "y was" : "ies were");
	if (viol > 0)
		fprintf(f, "- **The ledger's invariants were violated** (%s: %s): treat every number here as suspect.\n",
			report_count(viol), s->invariants.detail);
	else if (viol == 0)
		fputs("- The ledger's invariants held: every delivery and execution is accounted for.\n", f);
}

/* "What this run can claim": each number with the confidence it deserves. */
static void report_claims(FILE *f, const struct results *s)
{
	fputs("## What this run can claim\n\n", f);
	if (*s->status && strcmp(s->status, "ok") != 0)
		fprintf(f, "- The run ended with status **%s**: the numbers cover what happened until then.\n", s->status);
	report_claim_miss(f, s);
	report_claim_rate(f, s);
	report_claim_loss(f, s);
	fputc('\n', f);
}

/* The inputs the model took from the proxy, when it measured any. */
static void report_measured_inputs(FILE *f, const struct results *s)
{
	double ahead = s->predicted.ahead, cpp = s->predicted.confirms_per_publish;

	if (!isfinite(ahead) && !isfinite(cpp))
		return;
	fputs("**Inputs measured during normal operation** (timing decides them, so the model takes them "
	      "from the proxy rather than from the scenario):",
	      f);
	if (isfinite(ahead))
		fprintf(f, " %s deliveries the broker had handed the client beyond each ack (mean over %s "
			   "acks);",
			report_g(ahead), report_count(s->predicted.acks_sampled));
	if (isfinite(s->predicted.ahead_at_faults))
		fprintf(f, " %s at the acks the rules hit (the prediction given the faults uses these);",
			report_g(s->predicted.ahead_at_faults));
	if (isfinite(cpp))
		fprintf(f, " %s confirm frames per publish;", report_g(cpp));
	fputs(" everything else comes from the scenario's keys and the rules applied.\n\n", f);
}

/* The miss probability's rows of the summary table. */
static void report_table_miss(FILE *f, const struct results *s)
{
	double n = s->miss.trials;

	if (n > 0 && isfinite(s->miss.ci_low))
		fprintf(f, "| miss probability (duplicates processed / duplicate deliveries) | %s, 95 %% [%s, %s] over %s "
			   "fault events (%s) | |\n",
			report_g(s->miss.estimate), report_g(s->miss.ci_low), report_g(s->miss.ci_high),
			report_count(s->miss.events), *s->miss.method ? s->miss.method : "?");
	else if (n > 0)
		fprintf(f, "| miss probability (duplicates processed / duplicate deliveries) | %s, no interval (%s fault "
			   "events) | |\n",
			report_g(s->miss.estimate), report_count(s->miss.events));
	if (n > 0)
		fprintf(f, "| *secondary:* the same if every duplicate were an independent trial (it is not) | [%s, %s] "
			   "(%s, n = %s) | |\n",
			report_g(s->miss.independent_low), report_g(s->miss.independent_high), s->miss.independent_method,
			report_count(n));
	else
		fputs("| miss probability | no duplicate delivered | |\n", f);
}

/* The summary table, measured beside predicted. */
static void report_table(FILE *f, const struct results *s)
{
	double committed = s->committed, excess = s->excess_copies;
	bool any = false;

	fputs("## Measured beside predicted\n\n"
	      "| | measured | predicted by the model |\n"
	      "|---|---:|---:|\n",
	      f);
	fprintf(f, "| committed messages | %s | |\n", report_count(committed));
	fprintf(f, "| publish attempts | %s | |\n", report_count(s->publish_attempts));
	fprintf(f, "| excess copies (per committed message) | %s (%s) | %s (%s) |\n", report_count(excess),
		report_pct(committed > 0 ? excess / committed : NAN), report_g(s->predicted.excess_copies),
		report_pct(s->predicted.excess_copies_per_message));
	fprintf(f, "| deliveries | %s | |\n", report_count(s->deliveries));
	fprintf(f, "| duplicate deliveries | %s | |\n", report_count(s->duplicate_deliveries));
	fprintf(f, "| duplicate rate (duplicate deliveries / committed) | %s | %s |\n", report_pct(s->duplicate_rate),
		report_pct(s->predicted.duplicate_rate));
	fprintf(f, "| duplicates processed (dedup misses) | %s | |\n", report_count(s->duplicates_processed));
	report_table_miss(f, s);
	fprintf(f, "| lost (committed, never processed) | %s | 0 |\n", report_count(s->lost));
	fprintf(f, "| wrongly suppressed | %s | 0 |\n", report_count(s->wrongly_suppressed));
	if (isfinite(s->dlq.dead_lettered))
		fprintf(f, "| dead-lettered (replayed %s, left in the DLQ %s) | %s | |\n"
			"| in the DLQ, never processed (lost to the app unless replayed) | %s | 0 |\n",
			report_count(s->dlq.replayed), report_count(s->dlq.left), report_count(s->dlq.dead_lettered),
			report_count(s->dlq.lost_in_dlq));
	if (isfinite(s->cluster.nodes)) {
		fprintf(f, "| cluster: nodes, leader kills, partitions (the first kill: node %s, then node %s led) | "
			"%s, %s, %s | |\n",
			report_count(s->cluster.leader_killed), report_count(s->cluster.leader_after),
			report_count(s->cluster.nodes), report_count(s->cluster.leader_kills),
			report_count(s->cluster.partitions));
		fputs("| connections through the proxy, per node |", f);
		for (size_t i = 0; i < 8 && i < (size_t)s->cluster.nodes; i++)
			fprintf(f, "%s %s", i ? " /" : "", report_count(s->cluster.connections[i]));
		fputs(" | |\n", f);
	}
	fputc('\n', f);
	if (*s->predicted.assumes)
		fprintf(f, "**The model assumes** %s. Its derivation: sim/analysis/model.c.\n\n", s->predicted.assumes);
	report_measured_inputs(f, s);

	fputs("### Misses by cause\n\n", f);
	for (size_t i = 0; i < sizeof(report_causes) / sizeof(report_causes[0]); i++) {
		double v = report_cause(s, report_causes[i].key);

		if (!(v > 0))
			continue;
		if (!any)
			fputs("| cause | meaning | duplicates processed |\n|---|---|---:|\n", f);
		any = true;
		fprintf(f, "| `%s` | %s | %s |\n", report_causes[i].key, report_causes[i].meaning, report_count(v));
	}
	fputs(any ? "\n" : "No duplicate was processed: every duplicate delivery was caught.\n\n", f);
}

/* issue 13: the store's own faults, when it had any. */
static void report_store(FILE *f, const struct results *s)
{
	if (!(s->store.restarts > 0 || s->store.down_ms > 0 || s->store.stalls > 0 || s->store.redis_evicted_keys > 0))
		return;
	fprintf(f, "| dedup store faults | %s restarts without persistence, down (SIGSTOP) %s ms; consumers stalled "
		   "%s times, %s ms in all (on_error = closed); keys redis evicted %s |\n",
		report_count(s->store.restarts), report_g(s->store.down_ms), report_count(s->store.stalls),
		report_g(s->store.stalled_ms), report_count(s->store.redis_evicted_keys));
}

/* The fault events by kind, and how the intervals count them. */
static void report_events(FILE *f, const struct results *s)
{
	fprintf(f, "### Fault events\n\n"
		   "Every duplicate delivery belongs to the one fault event that caused it: the end of the consumer "
		   "connection that held it unacked (a lost ack, a cut, a crash), or the failed publisher connection "
		   "whose batch was republished; all connections a broker crash ended are one event. "
		   "%s events caused duplicates ([events.csv](events.csv) lists each, with its duplicates and misses).\n\n",
		report_count(s->fault_events));
	fputs("| kind | events with duplicates |\n|---|---:|\n", f);
	for (int k = 1; k < EVENTS_KINDS; k++)
		if (s->fault_events_by_kind[k] > 0)
			fprintf(f, "| `%s` | %s |\n", events_kind_name(k), report_count(s->fault_events_by_kind[k]));
	fputs("\n**How the intervals count evidence.** The duplicates of one event share their fate (the same gap, "
	      "consumer and cache), so the event is the sampling unit: the miss probability is the ratio of misses "
	      "to duplicates over events, its variance the delete-one-event jackknife's, turned into an interval by "
	      "Korn and Graubard's effective-sample-size Clopper–Pearson with a t correction (method `events-kg`). "
	      "With zero misses the bound assumes an event's duplicates all share one fate: 1 − 0.025^(1/events) "
	      "(`events-zero`). With fewer than 20 events no interval is given. The duplicate-rate band treats events "
	      "as a Poisson process (variance: the sum of squared event sizes). Details: sim/evidence.c.\n\n",
	      f);
}

static void report_faults(FILE *f, const struct results *s)
{
	size_t listed = 0;

	fputs("## Faults injected\n\n", f);
	for (size_t i = 0; i < s->faults.rule_count; i++) {
		const struct results_rule *ru = &s->faults.rules[i];

		if (!ru->in_summary)
			continue;
		if (!listed++)
			fputs("| rule | frames matched | fired |\n|---|---:|---:|\n", f);
		fputs("| `", f);
		report_cell(f, ru->text);
		fprintf(f, "` | %s | %s |\n", report_count(ru->matched), report_count(ru->fired));
	}
	fputs(listed ? "\n" : "No fault rule was active.\n\n", f);
	fprintf(f, "Frames dropped %s, connections cut %s, reconnects %s, consumer crashes %s.",
		report_count(s->faults.frames_dropped), report_count(s->faults.connections_cut),
		report_count(s->faults.reconnects), report_count(s->faults.consumer_crashes));
	if (isfinite(s->faults.duplicates_per_lost_ack))
		fprintf(f, " Duplicate deliveries per lost consumer ack: %s (the model: %s).",
			report_g(s->faults.duplicates_per_lost_ack), report_g(s->predicted.duplicates_per_lost_ack));
	fputs("\n\n", f);
	report_events(f, s);
}

static void report_perf(FILE *f, const struct results *s)
{
	const char *ttl = s->dedup.ttl, *cap = s->dedup.capacity;

	fputs("## Throughput, latency, dedup store\n\n| | |\n|---|---|\n", f);
	fprintf(f, "| run duration | %s s |\n", report_g(s->throughput.duration_s));
	fprintf(f, "| published | %s msg/s |\n", report_g(s->throughput.published_per_s));
	fprintf(f, "| processed | %s msg/s |\n", report_g(s->throughput.processed_per_s));
	fprintf(f, "| latency publish → processed | p50 %s ms · p90 %s ms · p99 %s ms · p99.9 %s ms · max %s ms |\n",
		report_g(s->latency_ms.p50), report_g(s->latency_ms.p90), report_g(s->latency_ms.p99),
		report_g(s->latency_ms.p999), report_g(s->latency_ms.max));
	if (s->gap_ms.count > 0)
		fprintf(f, "| duplicate gap (first accepted delivery → duplicate) | n %s · p50 %s ms · p99 %s ms · max %s ms |\n",
			report_count(s->gap_ms.count), report_g(s->gap_ms.p50), report_g(s->gap_ms.p99),
			report_g(s->gap_ms.max));
	if (s->dedup.known) {
		fprintf(f, "| dedup store | %s, scope %s, mark %s, TTL %s, capacity %s |\n", s->dedup.store, s->dedup.scope,
			s->dedup.mark, !*ttl ? "?" : strcmp(ttl, "0") == 0 ? "none" : ttl,
			!*cap ? "?" : strcmp(cap, "0") == 0 ? "unbounded" : cap);
		fprintf(f, "| dedup operations | %s lookups, %s inserts, %s errors; store latency p50 %s µs, p99 %s µs |\n",
			report_count(s->dedup.lookups), report_count(s->dedup.inserts), report_count(s->dedup.errors),
			report_g(s->dedup.store_latency_us_p50), report_g(s->dedup.store_latency_us_p99));
		report_store(f, s);
	}
	if (s->hosts.store[0]) /* issue 14 */
		fprintf(f, "| dedup store's host | its own test host %s, link round trip %s ms (jitter %s ms, loss %s); "
			   "PING over it p50 %s ms |\n", s->hosts.store_addr, report_g(s->hosts.store_rtt_ms),
			report_g(s->hosts.store_jitter_ms), report_g(s->hosts.store_loss), report_g(s->hosts.store_ping_ms));
	if (s->hosts.consumers[0]) {
		fprintf(f, "| consumers' hosts | one test host each, link round trip %s ms (jitter %s ms, loss %s); "
			   "connections through the proxy:", report_g(s->hosts.consumer_rtt_ms),
			report_g(s->hosts.consumer_jitter_ms), report_g(s->hosts.consumer_loss));
		for (size_t i = 0; i < s->hosts.nconsumer_hosts; i++)
			fprintf(f, "%s %s from %s", i ? "," : "", report_count(s->hosts.consumer_conns[i]),
				s->hosts.consumer_addr[i]);
		fprintf(f, " |\n");
	}
	fputc('\n', f);
}

/* [app]: how the user's consumer was run, and how its ledger was read off the wire and its effects file. */
static void report_app(FILE *f, const struct results *s)
{
	const struct results_app_counts *n = &s->app.n;

	if (!s->app.on)
		return;
	fputs("## Your app\n\nThe consumers of this run were your own: `", f);
	report_cell(f, s->app.command);
	fprintf(f, "`, %s instance%s behind the fault proxy (logs: app-N.log). dupsim killed instances with kill -9 "
		   "%s times; they exited on their own %s times; restarts %s.\n\n",
		report_count(n->instances), n->instances == 1 ? "" : "s", report_count(n->kills), report_count(n->exits),
		report_count(n->restarts));
	fputs("dupsim can't see inside the app, so each delivery's fate is read off what it can see: the proxy "
	      "decodes every `basic.deliver` with its content header (message id, copy, connection) and every "
	      "ack, nack or reject the app sends (dropped or not); the instance's effects file (effects-N.txt, one "
	      "line per side effect, written before the ack) says what it executed. A delivery whose ack came with a "
	      "new effect line was executed; one acked without was rejected by the app's dedup; one its connection "
	      "took back unsettled and without a new effect line was abandoned (as a crash before the decision, so "
	      "not a duplicate delivery even if the app had looked it up). Every duplicate processed has the cause "
	      "`unknown_app`: dupsim does not guess what happened inside.\n\n| | |\n|---|---:|\n", f);
	fprintf(f, "| connections through the proxy | %s (%s not tied to an instance) |\n", report_count(n->connections),
		report_count(n->connections_unmapped));
	fprintf(f, "| deliveries seen by the proxy | %s (%s with the redelivered flag) |\n", report_count(n->deliveries),
		report_count(n->redelivered));
	fprintf(f, "| acks / nacks and rejects sent by the app | %s / %s |\n", report_count(n->acks),
		report_count(n->nacks));
	fprintf(f, "| deliveries abandoned (no settle, no effect) | %s |\n", report_count(n->abandoned));
	fprintf(f, "| effect lines | %s (%s not of this run's ids, %s that no delivery explains) |\n\n",
		report_count(n->effect_lines), report_count(n->effects_foreign), report_count(n->effects_unmatched));
}

/* Writes the buffer to DIR/report.md; 0 or -1 with err. */
static int report_save(const char *dir, FILE *f, char **buf, size_t *len, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int rc = 0;

	if (fclose(f) != 0) {
		free(*buf);
		return log_seterr(err, errlen, "out of memory");
	}
	snprintf(path, sizeof(path), "%s/report.md", dir);
	if (files_write_atomic(path, *buf, *len) < 0)
		rc = log_seterr(err, errlen, "cannot write %s: %s", path, strerror(errno));
	free(*buf);
	return rc;
}

static void report_run_plots(FILE *f, const char *dir)
{
	fputs("## Plots\n\n", f);
	report_image(f, dir, "timeseries", "Messages per second and faults over time",
		     "Published and processed messages per second (left axis), duplicate deliveries per second (right "
		     "axis), and below them a tick for every fault the proxy injected, one row per rule.");
	report_image(f, dir, "gaps-cdf", "Duplicate gap distribution",
		     "For each duplicate delivery, the time since the first accepted delivery of its message: a dedup "
		     "key must live at least this long to catch it.");
	report_image(f, dir, "miss-vs-ttl", "Predicted miss probability against cache TTL",
		     "An exact cache whose keys expire TTL after the first accepted delivery misses exactly the "
		     "duplicates with a longer gap; the band is the 95 % interval over fault events (absent with fewer than 20). A red point, when present, is this "
		     "run's own TTL and its measured miss probability.");
	report_image(f, dir, "copies", "Copies delivered per message",
		     "How many distinct copies (publish attempts) of each message reached a consumer; more than one "
		     "means the publisher republished after a lost CommitOk or confirm.");
}

int report_run(const char *dir, const struct results *s, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return log_seterr(err, errlen, "out of memory");
	if (s->seed_known)
		fprintf(f, "# dupsim run `%s`, seed %" PRIu64 "\n\n", s->scenario, s->seed);
	else
		fprintf(f, "# dupsim run `%s`, seed –\n\n", s->scenario);
	fprintf(f, "Status **%s**: %s messages committed in %s s. The scenario as run: [scenario.ini](scenario.ini); "
		   "every number comes from [summary.json](summary.json), the plots from the CSV files beside it. "
		   "The words are defined in dupsim's DESIGN.md (Vocabulary).\n\n",
		*s->status ? s->status : "?", report_count(s->committed), report_g(s->throughput.duration_s));
	report_claims(f, s);
	report_table(f, s);
	report_app(f, s);
	report_faults(f, s);
	report_perf(f, s);
	report_run_plots(f, dir);
	return report_save(dir, f, &buf, &len, err, errlen);
}

int report_write(const char *dir, char *err, size_t errlen)
{
	static struct results s; /* large; one report at a time */

	if (results_load(&s, dir, err, errlen) < 0)
		return -1;
	return report_run(dir, &s, err, errlen);
}

/* The sweep table's head: the run, the varied keys, the figures. */
static void report_sweep_head(FILE *f, const struct sweep *t, const char *const *heads, size_t nheads)
{
	fputs("| run", f);
	for (size_t c = 0; c < t->nvaried; c++) {
		fputs(" | ", f);
		report_cell(f, t->keys[c]);
	}
	for (size_t c = 0; c < nheads; c++)
		fprintf(f, " | %s", heads[c]);
	fputs(" |\n|---", f);
	for (size_t c = 0; c < t->nvaried; c++)
		fputs("|---", f);
	for (size_t c = 0; c < nheads; c++)
		fputs(c + 1 == nheads ? "|---" : "|---:", f);
	fputs("|\n", f);
}

/* One row of the sweep table. */
static void report_sweep_row(FILE *f, const char *dir, const struct sweep *t, const struct sweep_row *w,
			     const int *cols, size_t ncols)
{
	char rel[PATH_MAX];

	snprintf(rel, sizeof(rel), "%s/report.md", w->name);
	fputs("| ", f);
	if (*w->name && !strchr(w->name, '/') && report_file_exists(dir, rel))
		fprintf(f, "[%s](%s/report.md)", w->name, w->name);
	else
		report_cell(f, w->name);
	for (size_t c = 0; c < t->nvaried; c++) {
		fputs(" | ", f);
		report_cell(f, w->values[c]);
	}
	for (size_t c = 0; c < ncols; c++) {
		double v = w->v[cols[c]];

		fputs(" | ", f);
		if (!isfinite(v))
			fputs("–", f);
		else if (cols[c] == SWEEP_DUPLICATE_RATE || cols[c] == SWEEP_PREDICTED_DUPLICATE_RATE)
			fputs(report_pct(v), f);
		else if (cols[c] == SWEEP_MISS_PROBABILITY && w->v[SWEEP_DUPLICATE_DELIVERIES] > 0)
			fprintf(f, "%s [%s, %s]", report_g(v), report_g(w->v[SWEEP_MISS_CI_LOW]),
				report_g(w->v[SWEEP_MISS_CI_HIGH]));
		else if (cols[c] == SWEEP_MISS_PROBABILITY)
			fputs("no duplicates", f);
		else
			fputs(v == floor(v) ? report_count(v) : report_g(v), f);
	}
	fputs(" | ", f);
	report_cell(f, *w->status ? w->status : "–");
	fputs(" |\n", f);
}

static void report_sweep_plots(FILE *f, const char *dir, const struct sweep *t)
{
	char alt[400];

	fputs("\n## Plots\n\n", f);
	snprintf(alt, sizeof(alt), "Duplicate rate against %s", t->nvaried ? t->keys[0] : "the run");
	report_image(f, dir, "sweep-duprate", alt,
		     "Measured duplicate deliveries per committed message with a 95 % band over each run's fault events, and the model's "
		     "prediction (open circles) for the same settings.");
	snprintf(alt, sizeof(alt), "Miss probability against %s", t->nvaried ? t->keys[0] : "the run");
	report_image(f, dir, "sweep-miss", alt,
		     "Duplicates processed per duplicate delivery, with each run's 95 % interval; a triangle marks "
		     "the 95 % upper bound of a run that saw no miss.");
	/* issue 14: the shared store's trade-off */
	snprintf(alt, sizeof(alt), "Throughput against %s", t->nvaried ? t->keys[0] : "the run");
	report_image(f, dir, "sweep-throughput", alt,
		     "Messages the consumers processed per second (left), and the dedup store's latency as they saw it "
		     "(p50 of a dedup call) beside a PING over the store's link (right, ms).");
	snprintf(alt, sizeof(alt), "Race misses against %s", t->nvaried ? t->keys[0] : "the run");
	report_image(f, dir, "sweep-race", alt,
		     "Duplicates processed because two consumers had copies of one message in flight at once (cause "
		     "`race`, left), and each run's miss probability with its 95 % interval (right).");
}

int report_sweep(const char *dir, const struct sweep *t, char *err, size_t errlen)
{
	static const int cols[] = { SWEEP_COMMITTED,	    SWEEP_DUPLICATE_DELIVERIES, SWEEP_DUPLICATE_RATE,
				    SWEEP_PREDICTED_DUPLICATE_RATE, SWEEP_DUPLICATES_PROCESSED, SWEEP_MISS_PROBABILITY,
				    SWEEP_LOST,		    SWEEP_WRONGLY_SUPPRESSED,	SWEEP_FAULTS_FIRED,
				    SWEEP_PROCESSED_PER_S,  SWEEP_MISSES_RACE,		SWEEP_STORE_LATENCY_US_P50 };
	static const char *const heads[] = { "committed", "duplicate deliveries", "duplicate rate", "predicted",
					     "duplicates processed", "miss probability (95 %)", "lost",
					     "wrongly suppressed", "faults fired", "processed msg/s", "race misses",
					     "store latency p50 (µs)", "status" };
	char name[PATH_MAX], *buf = NULL;
	size_t len = 0, failed = 0, nv = t->nvaried;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return log_seterr(err, errlen, "out of memory");
	snprintf(name, sizeof(name), "%s", dir);
	while (strlen(name) > 1 && name[strlen(name) - 1] == '/')
		name[strlen(name) - 1] = '\0';
	fprintf(f, "# dupsim sweep `%s`\n\n", strrchr(name, '/') ? strrchr(name, '/') + 1 : name);
	for (size_t i = 0; i < t->nrows; i++)
		failed += strcmp(t->rows[i].status, "failed") == 0;
	fprintf(f, "%zu run%s", t->nrows, t->nrows == 1 ? "" : "s");
	if (failed)
		fprintf(f, " (%zu failed)", failed);
	for (size_t c = 0; c < nv; c++)
		fprintf(f, "%s`%s`", c == 0 ? ", varying " : c + 1 == nv ? " and " : ", ", t->keys[c]);
	fputs(". All numbers: [sweep.csv](sweep.csv); each run's folder holds its own report.md. The duplicate "
	      "rate's band and the miss probability's interval are each run's own, over its fault events (fewer than 20: none).\n\n",
	      f);
	report_sweep_head(f, t, heads, sizeof(heads) / sizeof(heads[0]));
	for (size_t i = 0; i < t->nrows; i++)
		report_sweep_row(f, dir, t, &t->rows[i], cols, sizeof(cols) / sizeof(cols[0]));
	report_sweep_plots(f, dir, t);
	return report_save(dir, f, &buf, &len, err, errlen);
}

int report_write_sweep(const char *dir, char *err, size_t errlen)
{
	struct sweep t;
	int rc;

	if (sweep_load(&t, dir, err, errlen) < 0)
		return -1;
	rc = report_sweep(dir, &t, err, errlen);
	sweep_release(&t);
	return rc;
}
