/* report.c — report.md of a run or sweep folder, written from summary.json / sweep.csv. */
#include "results/report.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "results/plot.h"
#include "analysis/stats.h"
#include "core/files.h"
#include "core/log.h"

/* The causes of a duplicate processed, in the ledger's words (DESIGN.md, Vocabulary). */
static const struct {
	const char *key, *meaning;
} report_causes[] = {
	{ "expired", "the key's TTL had passed" },
	{ "evicted", "the key was evicted for capacity" },
	{ "unchecked", "the policy skipped the lookup" },
	{ "not_inserted", "the first copy's mark was not yet visible" },
	{ "other_cache", "another consumer's local cache had the key" },
	{ "race", "two consumers had the message in flight at once" },
	{ "lost_in_crash", "the store lost the key in a crash" },
	{ "store_error", "the store failed and the policy went on without it" },
	{ "unexplained", "no cause found (a harness bug to report)" },
};

/* A number at root.k1.k2 (k2 may be NULL); NaN when absent. */
static double report_num(json_t *root, const char *k1, const char *k2)
{
	json_t *v = json_object_get(root, k1);

	if (k2)
		v = json_object_get(v, k2);
	return json_is_number(v) ? json_number_value(v) : NAN;
}

/* A string at root.k1.k2; "" when absent. */
static const char *report_str(json_t *root, const char *k1, const char *k2)
{
	json_t *v = json_object_get(root, k1);
	const char *s;

	if (k2)
		v = json_object_get(v, k2);
	s = json_string_value(v);
	return s ? s : "";
}

/* A count as text ("–" when unknown). Buffers rotate so a printf can hold several. */
static const char *report_count(double v)
{
	static char b[8][48];
	static unsigned i;
	char *o = b[i++ % 8];

	if (!isfinite(v))
		return "–";
	snprintf(o, 48, "%.0f", v);
	return o;
}

/* A value with 4 significant digits ("–" when unknown). */
static const char *report_g(double v)
{
	static char b[8][48];
	static unsigned i;
	char *o = b[i++ % 8];

	if (!isfinite(v))
		return "–";
	snprintf(o, 48, "%.4g", v);
	return o;
}

/* A fraction as a percentage ("–" when unknown). */
static const char *report_pct(double v)
{
	static char b[8][48];
	static unsigned i;
	char *o = b[i++ % 8];

	if (!isfinite(v))
		return "–";
	snprintf(o, 48, "%.4g %%", v * 100);
	return o;
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

/* The value of section.key in the run's scenario.ini as written there ("" when absent). */
static void report_scenario_value(const char *dir, const char *section, const char *key, char *out, size_t len)
{
	char path[PATH_MAX], line[512], head[64];
	bool in = false;
	FILE *f;

	out[0] = '\0';
	snprintf(path, sizeof(path), "%s/scenario.ini", dir);
	snprintf(head, sizeof(head), "[%s]", section);
	f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *p = line + strspn(line, " \t"), *v, *end;
		size_t klen = strlen(key);

		if (*p == '[') {
			in = strncmp(p, head, strlen(head)) == 0;
			continue;
		}
		if (!in || strncmp(p, key, klen) != 0)
			continue;
		v = p + klen + strspn(p + klen, " \t");
		if (*v != '=')
			continue;
		v++;
		v += strspn(v, " \t");
		end = v + strcspn(v, ";#\r\n");
		while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		snprintf(out, len, "%.*s", (int)(end - v), v);
	}
	fclose(f);
}

/* "What this run can claim": each number with the confidence it deserves. */
static void report_claims(FILE *f, json_t *s)
{
	double committed = report_num(s, "committed", NULL), d = report_num(s, "duplicate_deliveries", NULL);
	double n = report_num(s, "miss_probability", "trials"), k = report_num(s, "miss_probability", "misses");
	double p = report_num(s, "miss_probability", "estimate"), lo = report_num(s, "miss_probability", "ci_low");
	double hi = report_num(s, "miss_probability", "ci_high"), pred = report_num(s, "predicted", "duplicate_rate");
	double lost = report_num(s, "lost", NULL), ws = report_num(s, "wrongly_suppressed", NULL);
	double viol = report_num(s, "invariants", "violations"), dpla = report_num(s, "faults", "duplicates_per_lost_ack");
	const char *method = report_str(s, "miss_probability", "method"), *status = report_str(s, "status", NULL);
	double ev = report_num(s, "miss_probability", "events"), deff = report_num(s, "miss_probability", "design_effect");
	double neff = report_num(s, "miss_probability", "effective_trials");
	double ilo_hi = report_num(json_object_get(s, "miss_probability"), "independent_trials", "ci_high");

	fputs("## What this run can claim\n\n", f);
	if (*status && strcmp(status, "ok") != 0)
		fprintf(f, "- The run ended with status **%s**: the numbers cover what happened until then.\n", status);

	/* the dedup miss probability, phrased in fault events */
	if (!isfinite(n))
		fputs("- The summary holds no miss probability.\n", f);
	else if (n == 0)
		fputs("- **Miss probability: no claim.** No duplicate was delivered, so this run says nothing about "
		      "how often the dedup would let one through.\n",
		      f);
	else if (!isfinite(lo) || !isfinite(hi))
		fprintf(f,
			"- **Miss probability %s, no interval**: %s of %s duplicate deliveries were processed again, "
			"but they came from only %s fault events (%s). Make faults smaller and more frequent, or run "
			"longer, to get at least 20.\n",
			report_g(p), report_count(k), report_count(n), report_count(ev),
			report_str(s, "miss_probability", "reason"));
	else if (k == 0) {
		double target = hi > 1e-6 ? 1e-6 : pow(10, floor(log10(hi)) - 1);

		fprintf(f,
			"- **0 misses in %s duplicate deliveries from %s fault events: miss probability below %s at "
			"95 %%** (%s). The duplicates of one event share their fate, so the bound counts events, not "
			"duplicates; treating them as independent would claim %s. Showing a miss probability below %g "
			"takes about %s fault events without a miss.\n",
			report_count(n), report_count(ev), report_g(hi), *method ? method : "?", report_g(ilo_hi),
			target, report_count(ceil(-log(0.025) / -log1p(-target))));
	} else {
		size_t top = 0;
		double topv = -1;

		for (size_t i = 0; i < sizeof(report_causes) / sizeof(report_causes[0]); i++) {
			double v = report_num(json_object_get(s, "misses_by_cause"), report_causes[i].key, NULL);

			if (v > topv) {
				topv = v;
				top = i;
			}
		}
		fprintf(f,
			"- **Miss probability %s** (95 %% interval %s – %s over %s fault events, %s): %s of %s duplicate "
			"deliveries were processed again.",
			report_g(p), report_g(lo), report_g(hi), report_count(ev), *method ? method : "?", report_count(k),
			report_count(n));
		if (isfinite(deff))
			fprintf(f, " Misses cluster within events (design effect %s): the evidence is worth about %s "
				   "independent duplicates, not %s.",
				report_g(deff), report_count(round(neff)), report_count(n));
		if (p < 0.1)
			fprintf(f, " About one duplicate in %.0f gets through this dedup.", 1 / p);
		if (topv > 0)
			fprintf(f, " Main cause: `%s` (%s), %s of %s.", report_causes[top].key, report_causes[top].meaning,
				report_count(topv), report_count(k));
		fputc('\n', f);
	}

	/* the duplicate rate against the model */
	if (committed > 0 && isfinite(d)) {
		double r = d / committed, rlo = report_num(s, "duplicate_rate_band", "low");
		double rhi = report_num(s, "duplicate_rate_band", "high");

		if (isfinite(rlo))
			fprintf(f, "- **Duplicate rate %s** (95 %% band %s – %s over %s fault events): %s duplicate "
				   "deliveries for %s committed messages.",
				report_pct(r), report_pct(rlo), report_pct(rhi),
				report_count(report_num(s, "fault_events", NULL)), report_count(d), report_count(committed));
		else
			fprintf(f, "- **Duplicate rate %s** (no band: fewer than 20 fault events caused duplicates): %s "
				   "duplicate deliveries for %s committed messages.",
				report_pct(r), report_count(d), report_count(committed));
		if (!isfinite(rlo))
			;
		else if (isfinite(pred) && pred >= rlo && pred <= rhi)
			fprintf(f, " The model's %s lies inside the band: its assumptions hold well enough here.", report_pct(pred));
		else if (isfinite(pred) && pred > 0)
			fprintf(f, " The model predicts %s; the measured rate is %s× that, outside the band: the model's "
				   "assumptions (below) do not hold for this run.",
				report_pct(pred), report_g(r / pred));
		if (!isfinite(pred) && *report_str(s, "predicted", "why_not"))
			fprintf(f, " No prediction: %s.", report_str(s, "predicted", "why_not"));
		if (isfinite(dpla))
			fprintf(f, " Each lost consumer ack caused %s duplicate deliveries on average (the model: %s).",
				report_g(dpla), report_g(report_num(s, "predicted", "duplicates_per_lost_ack")));
		fputc('\n', f);
	}

	/* loss */
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
			report_count(viol), report_str(s, "invariants", "detail"));
	else if (viol == 0)
		fputs("- The ledger's invariants held: every delivery and execution is accounted for.\n", f);
	fputc('\n', f);
}

/* The summary table, measured beside predicted. */
static void report_table(FILE *f, json_t *s)
{
	double committed = report_num(s, "committed", NULL), excess = report_num(s, "excess_copies", NULL);
	double n = report_num(s, "miss_probability", "trials");
	json_t *causes = json_object_get(s, "misses_by_cause");
	const char *method = report_str(s, "miss_probability", "method");
	bool any = false;

	fputs("## Measured beside predicted\n\n"
	      "| | measured | predicted by the model |\n"
	      "|---|---:|---:|\n",
	      f);
	fprintf(f, "| committed messages | %s | |\n", report_count(committed));
	fprintf(f, "| publish attempts | %s | |\n", report_count(report_num(s, "publish_attempts", NULL)));
	fprintf(f, "| excess copies (per committed message) | %s (%s) | %s (%s) |\n", report_count(excess),
		report_pct(committed > 0 ? excess / committed : NAN), report_g(report_num(s, "predicted", "excess_copies")),
		report_pct(report_num(s, "predicted", "excess_copies_per_message")));
	fprintf(f, "| deliveries | %s | |\n", report_count(report_num(s, "deliveries", NULL)));
	fprintf(f, "| duplicate deliveries | %s | |\n", report_count(report_num(s, "duplicate_deliveries", NULL)));
	fprintf(f, "| duplicate rate (duplicate deliveries / committed) | %s | %s |\n",
		report_pct(report_num(s, "duplicate_rate", NULL)), report_pct(report_num(s, "predicted", "duplicate_rate")));
	fprintf(f, "| duplicates processed (dedup misses) | %s | |\n",
		report_count(report_num(s, "duplicates_processed", NULL)));
	if (n > 0 && isfinite(report_num(s, "miss_probability", "ci_low")))
		fprintf(f, "| miss probability (duplicates processed / duplicate deliveries) | %s, 95 %% [%s, %s] over %s "
			   "fault events (%s) | |\n",
			report_g(report_num(s, "miss_probability", "estimate")),
			report_g(report_num(s, "miss_probability", "ci_low")),
			report_g(report_num(s, "miss_probability", "ci_high")),
			report_count(report_num(s, "miss_probability", "events")), *method ? method : "?");
	else if (n > 0)
		fprintf(f, "| miss probability (duplicates processed / duplicate deliveries) | %s, no interval (%s fault "
			   "events) | |\n",
			report_g(report_num(s, "miss_probability", "estimate")),
			report_count(report_num(s, "miss_probability", "events")));
	if (n > 0) {
		json_t *it = json_object_get(json_object_get(s, "miss_probability"), "independent_trials");

		fprintf(f, "| *secondary:* the same if every duplicate were an independent trial (it is not) | [%s, %s] "
			   "(%s, n = %s) | |\n",
			report_g(report_num(it, "ci_low", NULL)), report_g(report_num(it, "ci_high", NULL)),
			report_str(it, "method", NULL), report_count(n));
	} else {
		fputs("| miss probability | no duplicate delivered | |\n", f);
	}
	fprintf(f, "| lost (committed, never processed) | %s | 0 |\n", report_count(report_num(s, "lost", NULL)));
	fprintf(f, "| wrongly suppressed | %s | 0 |\n\n", report_count(report_num(s, "wrongly_suppressed", NULL)));
	if (*report_str(s, "predicted", "assumes"))
		fprintf(f, "**The model assumes** %s. Its derivation: sim/model.c.\n\n", report_str(s, "predicted", "assumes"));
	{
		json_t *mi = json_object_get(json_object_get(s, "predicted"), "measured_inputs");
		double ahead = report_num(mi, "deliveries_ahead_of_an_ack", NULL);
		double cpp = report_num(mi, "confirms_per_publish", NULL);

		if (isfinite(ahead) || isfinite(cpp)) {
			fputs("**Inputs measured during normal operation** (timing decides them, so the model takes them "
			      "from the proxy rather than from the scenario):",
			      f);
			if (isfinite(ahead))
				fprintf(f, " %s deliveries the broker had handed the client beyond each ack (mean over %s "
					   "acks);",
					report_g(ahead), report_count(report_num(mi, "acks_sampled", NULL)));
			if (isfinite(cpp))
				fprintf(f, " %s confirm frames per publish;", report_g(cpp));
			fputs(" everything else comes from the scenario's keys and the rules applied.\n\n", f);
		}
	}

	fputs("### Misses by cause\n\n", f);
	for (size_t i = 0; i < sizeof(report_causes) / sizeof(report_causes[0]); i++) {
		double v = report_num(causes, report_causes[i].key, NULL);

		if (!(v > 0))
			continue;
		if (!any)
			fputs("| cause | meaning | duplicates processed |\n|---|---|---:|\n", f);
		any = true;
		fprintf(f, "| `%s` | %s | %s |\n", report_causes[i].key, report_causes[i].meaning, report_count(v));
	}
	fputs(any ? "\n" : "No duplicate was processed: every duplicate delivery was caught.\n\n", f);
}

/* The fault events by kind, and how the intervals count them. */
static void report_events(FILE *f, json_t *s)
{
	json_t *kinds = json_object_get(s, "fault_events_by_kind");
	const char *k;
	json_t *v;

	fprintf(f, "### Fault events\n\n"
		   "Every duplicate delivery belongs to the one fault event that caused it: the end of the consumer "
		   "connection that held it unacked (a lost ack, a cut, a crash), or the failed publisher connection "
		   "whose batch was republished; all connections a broker crash ended are one event. "
		   "%s events caused duplicates ([events.csv](events.csv) lists each, with its duplicates and misses).\n\n",
		report_count(report_num(s, "fault_events", NULL)));
	fputs("| kind | events with duplicates |\n|---|---:|\n", f);
	json_object_foreach(kinds, k, v)
		if (json_number_value(v) > 0)
			fprintf(f, "| `%s` | %s |\n", k, report_count(json_number_value(v)));
	fputs("\n**How the intervals count evidence.** The duplicates of one event share their fate (the same gap, "
	      "consumer and cache), so the event is the sampling unit: the miss probability is the ratio of misses "
	      "to duplicates over events, its variance the delete-one-event jackknife's, turned into an interval by "
	      "Korn and Graubard's effective-sample-size Clopper–Pearson with a t correction (method `events-kg`). "
	      "With zero misses the bound assumes an event's duplicates all share one fate: 1 − 0.025^(1/events) "
	      "(`events-zero`). With fewer than 20 events no interval is given. The duplicate-rate band treats events "
	      "as a Poisson process (variance: the sum of squared event sizes). Details: sim/evidence.c.\n\n",
	      f);
}

static void report_faults(FILE *f, json_t *s)
{
	json_t *fl = json_object_get(s, "faults"), *rules = json_object_get(fl, "rules");
	double dpla = report_num(fl, "duplicates_per_lost_ack", NULL);

	fputs("## Faults injected\n\n", f);
	if (json_array_size(rules) == 0) {
		fputs("No fault rule was active.\n\n", f);
	} else {
		fputs("| rule | frames matched | fired |\n|---|---:|---:|\n", f);
		for (size_t i = 0; i < json_array_size(rules); i++) {
			json_t *r = json_array_get(rules, i);

			fputs("| `", f);
			report_cell(f, report_str(r, "rule", NULL));
			fprintf(f, "` | %s | %s |\n", report_count(report_num(r, "matched", NULL)),
				report_count(report_num(r, "fired", NULL)));
		}
		fputc('\n', f);
	}
	fprintf(f, "Frames dropped %s, connections cut %s, reconnects %s, consumer crashes %s.",
		report_count(report_num(fl, "frames_dropped", NULL)), report_count(report_num(fl, "connections_cut", NULL)),
		report_count(report_num(fl, "reconnects", NULL)), report_count(report_num(fl, "consumer_crashes", NULL)));
	if (isfinite(dpla))
		fprintf(f, " Duplicate deliveries per lost consumer ack: %s (the model: %s).", report_g(dpla),
			report_g(report_num(s, "predicted", "duplicates_per_lost_ack")));
	fputs("\n\n", f);
	report_events(f, s);
}

static void report_perf(FILE *f, const char *dir, json_t *s)
{
	json_t *d = json_object_get(s, "dedup");
	char ttl[64], cap[64];

	fputs("## Throughput, latency, dedup store\n\n| | |\n|---|---|\n", f);
	fprintf(f, "| run duration | %s s |\n", report_g(report_num(s, "throughput", "duration_s")));
	fprintf(f, "| published | %s msg/s |\n", report_g(report_num(s, "throughput", "published_per_s")));
	fprintf(f, "| processed | %s msg/s |\n", report_g(report_num(s, "throughput", "processed_per_s")));
	fprintf(f, "| latency publish → processed | p50 %s ms · p90 %s ms · p99 %s ms · p99.9 %s ms · max %s ms |\n",
		report_g(report_num(s, "latency_ms", "p50")), report_g(report_num(s, "latency_ms", "p90")),
		report_g(report_num(s, "latency_ms", "p99")), report_g(report_num(s, "latency_ms", "p999")),
		report_g(report_num(s, "latency_ms", "max")));
	if (report_num(s, "gap_ms", "count") > 0)
		fprintf(f, "| duplicate gap (first accepted delivery → duplicate) | n %s · p50 %s ms · p99 %s ms · max %s ms |\n",
			report_count(report_num(s, "gap_ms", "count")), report_g(report_num(s, "gap_ms", "p50")),
			report_g(report_num(s, "gap_ms", "p99")), report_g(report_num(s, "gap_ms", "max")));
	if (d) {
		report_scenario_value(dir, "dedup", "ttl", ttl, sizeof(ttl));
		report_scenario_value(dir, "dedup", "capacity", cap, sizeof(cap));
		fprintf(f, "| dedup store | %s, scope %s, mark %s, TTL %s, capacity %s |\n", report_str(d, "store", NULL),
			report_str(d, "scope", NULL), report_str(d, "mark", NULL),
			!*ttl ? "?" : strcmp(ttl, "0") == 0 ? "none" : ttl, !*cap ? "?" : strcmp(cap, "0") == 0 ? "unbounded" : cap);
		fprintf(f, "| dedup operations | %s lookups, %s inserts, %s errors; store latency p50 %s µs, p99 %s µs |\n",
			report_count(report_num(d, "lookups", NULL)), report_count(report_num(d, "inserts", NULL)),
			report_count(report_num(d, "errors", NULL)), report_g(report_num(d, "store_latency_us_p50", NULL)),
			report_g(report_num(d, "store_latency_us_p99", NULL)));
	}
	fputc('\n', f);
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

int report_write(const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	char *buf = NULL;
	size_t len = 0;
	json_error_t je;
	json_t *s;
	FILE *f;

	snprintf(path, sizeof(path), "%s/summary.json", dir);
	s = json_load_file(path, 0, &je);
	if (!s)
		return log_seterr(err, errlen, "cannot read %s: %s", path, access(path, F_OK) < 0 ? strerror(errno) : je.text);
	f = open_memstream(&buf, &len);
	if (!f) {
		json_decref(s);
		return log_seterr(err, errlen, "out of memory");
	}
	fprintf(f, "# dupsim run `%s`, seed %s\n\n", report_str(s, "scenario", NULL), report_count(report_num(s, "seed", NULL)));
	fprintf(f, "Status **%s**: %s messages committed in %s s. The scenario as run: [scenario.ini](scenario.ini); "
		   "every number comes from [summary.json](summary.json), the plots from the CSV files beside it. "
		   "The words are defined in dupsim's DESIGN.md (Vocabulary).\n\n",
		*report_str(s, "status", NULL) ? report_str(s, "status", NULL) : "?",
		report_count(report_num(s, "committed", NULL)), report_g(report_num(s, "throughput", "duration_s")));
	report_claims(f, s);
	report_table(f, s);
	report_faults(f, s);
	report_perf(f, dir, s);
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
	json_decref(s);
	return report_save(dir, f, &buf, &len, err, errlen);
}

int report_write_sweep(const char *dir, char *err, size_t errlen)
{
	static const char *const cols[] = { "committed", "duplicate_deliveries", "duplicate_rate", "predicted_duplicate_rate",
					    "duplicates_processed", "miss_probability", "lost", "wrongly_suppressed",
					    "faults_fired", "status" };
	static const char *const heads[] = { "committed", "duplicate deliveries", "duplicate rate", "predicted",
					     "duplicates processed", "miss probability (95 %)", "lost",
					     "wrongly suppressed", "faults fired", "status" };
	char path[PATH_MAX], name[PATH_MAX];
	struct plot_csv t;
	char *buf = NULL;
	size_t len = 0, nvaried, failed = 0;
	int ccommitted;
	FILE *f;

	snprintf(path, sizeof(path), "%s/sweep.csv", dir);
	if (plot_csv_read(path, &t) < 0)
		return log_seterr(err, errlen, "cannot read %s: %s", path,
				errno == EINVAL ? "it has no header line" : strerror(errno));
	ccommitted = plot_csv_col(&t, "committed");
	if (plot_csv_col(&t, "run") != 0 || ccommitted < 1) {
		plot_csv_free(&t);
		return log_seterr(err, errlen, "%s: expected the columns run, <varied keys>, committed, ...", path);
	}
	nvaried = (size_t)ccommitted - 1;
	f = open_memstream(&buf, &len);
	if (!f) {
		plot_csv_free(&t);
		return log_seterr(err, errlen, "out of memory");
	}
	snprintf(name, sizeof(name), "%s", dir);
	while (strlen(name) > 1 && name[strlen(name) - 1] == '/')
		name[strlen(name) - 1] = '\0';
	fprintf(f, "# dupsim sweep `%s`\n\n", strrchr(name, '/') ? strrchr(name, '/') + 1 : name);
	for (size_t i = 0; i < t.nrows; i++)
		failed += strcmp(plot_csv_cell(&t, i, plot_csv_col(&t, "status")), "failed") == 0;
	fprintf(f, "%zu run%s", t.nrows, t.nrows == 1 ? "" : "s");
	if (failed)
		fprintf(f, " (%zu failed)", failed);
	if (nvaried) {
		fputs(", varying ", f);
		for (size_t c = 1; c <= nvaried; c++)
			fprintf(f, "%s`%s`", c == 1 ? "" : c == nvaried ? " and " : ", ", t.head[c]);
	}
	fputs(". All numbers: [sweep.csv](sweep.csv); each run's folder holds its own report.md. The duplicate "
	      "rate's band and the miss probability's interval are each run's own, over its fault events (fewer than 20: none).\n\n",
	      f);

	/* the table */
	fputs("| run", f);
	for (size_t c = 1; c <= nvaried; c++) {
		fputs(" | ", f);
		report_cell(f, t.head[c]);
	}
	for (size_t c = 0; c < sizeof(heads) / sizeof(heads[0]); c++)
		fprintf(f, " | %s", heads[c]);
	fputs(" |\n|---", f);
	for (size_t c = 1; c <= nvaried; c++)
		fputs("|---", f);
	for (size_t c = 0; c < sizeof(heads) / sizeof(heads[0]); c++)
		fputs(c + 1 == sizeof(heads) / sizeof(heads[0]) ? "|---" : "|---:", f);
	fputs("|\n", f);
	for (size_t i = 0; i < t.nrows; i++) {
		const char *run = plot_csv_cell(&t, i, 0);
		char rel[PATH_MAX];

		snprintf(rel, sizeof(rel), "%s/report.md", run);
		fputs("| ", f);
		if (*run && !strchr(run, '/') && report_file_exists(dir, rel))
			fprintf(f, "[%s](%s/report.md)", run, run);
		else
			report_cell(f, run);
		for (size_t c = 1; c <= nvaried; c++) {
			fputs(" | ", f);
			report_cell(f, plot_csv_cell(&t, i, (int)c));
		}
		for (size_t c = 0; c < sizeof(cols) / sizeof(cols[0]); c++) {
			int k = plot_csv_col(&t, cols[c]);
			const char *cell = plot_csv_cell(&t, i, k);
			char *end;
			double v = strtod(cell, &end);
			bool num = *cell && !*end;

			fputs(" | ", f);
			if (!num) {
				report_cell(f, *cell ? cell : "–");
			} else if (strcmp(cols[c], "duplicate_rate") == 0 || strcmp(cols[c], "predicted_duplicate_rate") == 0) {
				fputs(report_pct(v), f);
			} else if (strcmp(cols[c], "miss_probability") == 0) {
				double lo = strtod(plot_csv_cell(&t, i, plot_csv_col(&t, "miss_ci_low")), NULL);
				double hi = strtod(plot_csv_cell(&t, i, plot_csv_col(&t, "miss_ci_high")), NULL);
				double d = strtod(plot_csv_cell(&t, i, plot_csv_col(&t, "duplicate_deliveries")), NULL);

				if (d > 0)
					fprintf(f, "%s [%s, %s]", report_g(v), report_g(lo), report_g(hi));
				else
					fputs("no duplicates", f);
			} else {
				fputs(v == floor(v) ? report_count(v) : report_g(v), f);
			}
		}
		fputs(" |\n", f);
	}
	fputs("\n## Plots\n\n", f);
	{
		char alt[400];

		snprintf(alt, sizeof(alt), "Duplicate rate against %s", nvaried ? t.head[1] : "the run");
		report_image(f, dir, "sweep-duprate", alt,
			     "Measured duplicate deliveries per committed message with a 95 % band over each run's fault events, and the model's "
			     "prediction (open circles) for the same settings.");
		snprintf(alt, sizeof(alt), "Miss probability against %s", nvaried ? t.head[1] : "the run");
		report_image(f, dir, "sweep-miss", alt,
			     "Duplicates processed per duplicate delivery, with each run's 95 % interval; a triangle marks "
			     "the 95 % upper bound of a run that saw no miss.");
	}
	plot_csv_free(&t);
	return report_save(dir, f, &buf, &len, err, errlen);
}
