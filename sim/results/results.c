/* results.c — struct results: its summary.json writer (json_pack) and the one loader of a run folder. */
#include "results/results.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/scenario.h"
#include "results/csv.h"

static void results_nan(double *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		v[i] = NAN;
}

#define RESULTS_NAN(x) results_nan((double *)&(x), sizeof(x) / sizeof(double))

void results_init(struct results *r)
{
	memset(r, 0, sizeof(*r));
	/* the runs of doubles between the strings, as laid out in results.h */
	results_nan(&r->messages, 5);
	results_nan(&r->deliveries, 9 + EVENTS_KINDS);
	results_nan(&r->miss.estimate, 9);
	r->miss.independent_low = r->miss.independent_high = NAN;
	RESULTS_NAN(r->misses_by_cause);
	results_nan(&r->predicted.duplicate_rate, 4);
	results_nan(&r->predicted.ahead, 6);
	RESULTS_NAN(r->dlq);
	RESULTS_NAN(r->cluster);
	results_nan(&r->faults.frames_dropped, 6);
	results_nan(&r->faults.commit_ok_dropped, 4);
	RESULTS_NAN(r->throughput);
	RESULTS_NAN(r->latency_ms);
	RESULTS_NAN(r->gap_ms);
	RESULTS_NAN(r->app.n);
	results_nan(&r->dedup.lookups, 5);
	r->dedup.ttl_ms = NAN;
	RESULTS_NAN(r->store);
	results_nan(&r->hosts.store_rtt_ms, 4);
	results_nan(&r->hosts.consumer_rtt_ms, 3);
	r->invariants.violations = r->invariants.foreign_deliveries = NAN;
	r->curve_min = NAN;
}

struct results_rule *results_rule(struct results *r, const char *text)
{
	for (size_t i = 0; i < r->faults.rule_count; i++)
		if (strcmp(r->faults.rules[i].text, text) == 0)
			return &r->faults.rules[i];
	return results_rule_add(r, text);
}

struct results_rule *results_rule_add(struct results *r, const char *text)
{
	struct results_rule *ru;

	if (r->faults.rule_count == RESULTS_RULES_MAX)
		return NULL;
	ru = &r->faults.rules[r->faults.rule_count++];
	*ru = (struct results_rule){ .matched = NAN, .fired = NAN };
	snprintf(ru->text, sizeof(ru->text), "%s", text);
	return ru;
}

void results_minpos(double *m, double v)
{
	if (isfinite(v) && v > 0 && (!isfinite(*m) || v < *m))
		*m = v;
}

/* ---- summary.json ---- */

/* A real, or null when unknown or not finite. */
static json_t *results_real(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

/* A count, or null when unknown. */
static json_t *results_count(double v)
{
	return isfinite(v) ? json_integer((json_int_t)v) : json_null();
}

static json_t *results_json_miss(const struct results *r)
{
	return json_pack("{s:o, s:o, s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:s, s:{s:o, s:o, s:s, s:s}}",
			 "estimate", results_real(r->miss.estimate), "ci_low", results_real(r->miss.ci_low), "ci_high",
			 results_real(r->miss.ci_high), "method", r->miss.method, "confidence",
			 results_real(r->miss.confidence), "misses", results_count(r->miss.misses), "trials",
			 results_count(r->miss.trials), "events", results_count(r->miss.events), "design_effect",
			 results_real(r->miss.design_effect), "effective_trials", results_real(r->miss.effective_trials),
			 "reason", r->miss.reason, "independent_trials", "ci_low", results_real(r->miss.independent_low),
			 "ci_high", results_real(r->miss.independent_high), "method", r->miss.independent_method, "note",
			 "treats every duplicate delivery as an independent trial; too narrow when duplicates come in "
			 "bursts");
}

#define RESULTS_BAND_BY_AHEAD                                                                                    \
	"compound Poisson over fault events: var = sum of squared event sizes, a lost ack's at k + ahead with "    \
	"ahead's spread over every ack the proxy saw"

/* The model's 95 % band for one run's duplicate rate; null without a spread. */
static json_t *results_json_predicted_band(const struct results *r)
{
	double rate = r->predicted.duplicate_rate, sd = r->predicted.duplicate_rate_sd, lo;

	if (!isfinite(rate) || !isfinite(sd))
		return json_null();
	lo = rate - 1.959964 * sd;
	return json_pack("{s:o, s:o, s:o, s:f, s:s}", "low", results_real(lo > 0 ? lo : 0), "high",
			 results_real(rate + 1.959964 * sd), "sd", results_real(sd), "confidence", 0.95, "method",
			 "where one run's rate falls if the model holds: compound binomial over the fault draws, "
			 "event sizes from the proxy's ahead (mean and square) at every ack");
}

static json_t *results_json_predicted(const struct results *r)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:s, s:s, s:{s:o, s:o, s:o, s:o}}", "duplicate_rate",
			 results_real(r->predicted.duplicate_rate), "duplicate_rate_band", results_json_predicted_band(r),
			 "duplicate_rate_given_faults",
			 results_real(r->predicted.duplicate_rate_given_faults), "excess_copies_per_message",
			 results_real(r->predicted.excess_copies_per_message), "excess_copies",
			 results_real(r->predicted.excess_copies), "duplicates_per_lost_ack",
			 results_real(r->predicted.duplicates_per_lost_ack), "why_not", r->predicted.why_not, "assumes",
			 r->predicted.assumes, "measured_inputs", "deliveries_ahead_of_an_ack",
			 results_real(r->predicted.ahead), "acks_sampled", results_count(r->predicted.acks_sampled),
			 "confirms_per_publish", results_real(r->predicted.confirms_per_publish),
			 "deliveries_ahead_of_a_lost_ack", results_real(r->predicted.ahead_at_faults));
}

static json_t *results_json_faults(const struct results *r)
{
	json_t *rules = json_array();

	for (size_t i = 0; i < r->faults.rule_count; i++) {
		const struct results_rule *ru = &r->faults.rules[i];

		if (ru->in_summary)
			json_array_append_new(rules, json_pack("{s:s, s:o, s:o}", "rule", ru->text, "matched",
							       results_count(ru->matched), "fired",
							       results_count(ru->fired)));
	}
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "frames_dropped",
			 results_count(r->faults.frames_dropped), "connections_cut", results_count(r->faults.connections_cut),
			 "proxy_connections", results_count(r->faults.proxy_connections), "reconnects",
			 results_count(r->faults.reconnects), "consumer_crashes", results_count(r->faults.consumer_crashes),
			 "broker_crashes", results_count(r->faults.broker_crashes), "rules", rules, "commit_ok_dropped",
			 results_count(r->faults.commit_ok_dropped), "confirms_dropped",
			 results_count(r->faults.confirms_dropped), "acks_dropped", results_count(r->faults.acks_dropped),
			 "duplicates_per_lost_ack", results_real(r->faults.duplicates_per_lost_ack));
}

/* The app's own counts (DESIGN.md, "Your own application"); the keys of results_app_keys. */
#define RESULTS_APP_KEYS(X)                                                                                  \
	X(instances) X(kills) X(exits) X(restarts) X(connections) X(connections_unmapped) X(deliveries)       \
	X(redelivered) X(acks) X(nacks) X(abandoned) X(judged_late) X(effect_lines) X(effects_foreign)         \
	X(effects_unmatched)

static json_t *results_json_app(const struct results *r)
{
	json_t *o = json_pack("{s:s}", "command", r->app.command);

#define RESULTS_APP_SET(k) json_object_set_new(o, #k, results_count(r->app.n.k));
	RESULTS_APP_KEYS(RESULTS_APP_SET)
#undef RESULTS_APP_SET
	return o;
}

/* issue 13: the store's own faults, into the dedup object (absent when unknown). */
static void results_json_store(const struct results *r, json_t *d)
{
	const struct {
		const char *key;
		double v;
		bool real;
	} f[] = {
		{ "store_restarts", r->store.restarts, false }, { "store_down_ms", r->store.down_ms, true },
		{ "stalls", r->store.stalls, false },		 { "stalled_ms", r->store.stalled_ms, true },
		{ "redis_evicted_keys", r->store.redis_evicted_keys, false },
	};

	for (size_t i = 0; d && i < sizeof(f) / sizeof(f[0]); i++)
		if (!isnan(f[i].v))
			json_object_set_new(d, f[i].key, f[i].real ? results_real(f[i].v) : results_count(f[i].v));
}
/* issue 14: summary.json's hosts object: the store's host and/or each consumer's. */
static json_t *results_hosts_json(const struct results *r)
{
	json_t *h = json_object();

	if (r->hosts.store[0])
		json_object_update_new(h, json_pack("{s:s, s:s, s:o, s:o, s:o, s:o}", "store", r->hosts.store,
						    "store_addr", r->hosts.store_addr, "store_rtt_ms",
						    results_real(r->hosts.store_rtt_ms), "store_jitter_ms",
						    results_real(r->hosts.store_jitter_ms), "store_loss",
						    results_real(r->hosts.store_loss), "store_ping_ms",
						    results_real(r->hosts.store_ping_ms)));
	if (r->hosts.consumers[0]) {
		json_t *list = json_array();

		for (size_t i = 0; i < r->hosts.nconsumer_hosts; i++)
			json_array_append_new(list, json_pack("{s:s, s:o}", "addr", r->hosts.consumer_addr[i],
							      "connections", results_count(r->hosts.consumer_conns[i])));
		json_object_update_new(h, json_pack("{s:s, s:o, s:o, s:o, s:o}", "consumers", r->hosts.consumers,
						    "consumer_rtt_ms", results_real(r->hosts.consumer_rtt_ms),
						    "consumer_jitter_ms", results_real(r->hosts.consumer_jitter_ms),
						    "consumer_loss", results_real(r->hosts.consumer_loss),
						    "consumer_hosts", list));
	}
	return h;
}


/* The figures and the rest of summary.json around them. */
static json_t *results_json_perf(const struct results *r, json_t *root)
{
	json_object_set_new(root, "throughput",
			    json_pack("{s:o, s:o, s:o, s:o, s:o}", "duration_s", results_real(r->throughput.duration_s),
				      "publish_s", results_real(r->throughput.publish_s), "published_per_s",
				      results_real(r->throughput.published_per_s), "process_s",
				      results_real(r->throughput.process_s), "processed_per_s",
				      results_real(r->throughput.processed_per_s)));
	json_object_set_new(root, "latency_ms",
			    json_pack("{s:o, s:o, s:o, s:o, s:o}", "p50", results_real(r->latency_ms.p50), "p90",
				      results_real(r->latency_ms.p90), "p99", results_real(r->latency_ms.p99), "p999",
				      results_real(r->latency_ms.p999), "max", results_real(r->latency_ms.max)));
	json_object_set_new(root, "gap_ms",
			    json_pack("{s:o, s:o, s:o, s:o}", "count", results_count(r->gap_ms.count), "p50",
				      results_real(r->gap_ms.p50), "p99", results_real(r->gap_ms.p99), "max",
				      results_real(r->gap_ms.max)));
	json_object_set_new(root, "dedup",
			    json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o}", "store", r->dedup.store, "scope",
				      r->dedup.scope, "mark", r->dedup.mark, "lookups", results_count(r->dedup.lookups),
				      "inserts", results_count(r->dedup.inserts), "errors", results_count(r->dedup.errors),
				      "store_latency_us_p50", results_real(r->dedup.store_latency_us_p50),
				      "store_latency_us_p99", results_real(r->dedup.store_latency_us_p99)));
	results_json_store(r, json_object_get(root, "dedup"));
	json_object_set_new(root, "invariants",
			    json_pack("{s:o, s:s, s:o}", "violations", results_count(r->invariants.violations), "detail",
				      r->invariants.detail, "foreign_deliveries",
				      results_count(r->invariants.foreign_deliveries)));
	if (r->app.on)
		json_object_set_new(root, "app", results_json_app(r));
	if (isfinite(r->cluster.nodes)) {
		json_t *conns = json_array();

		for (size_t i = 0; i < 8 && i < (size_t)r->cluster.nodes; i++)
			json_array_append_new(conns, results_count(r->cluster.connections[i]));
		json_object_set_new(root, "cluster",
				    json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "nodes", results_count(r->cluster.nodes),
					      "leader_kills", results_count(r->cluster.leader_kills), "partitions",
					      results_count(r->cluster.partitions), "leader_killed",
					      results_count(r->cluster.leader_killed), "leader_after",
					      results_count(r->cluster.leader_after), "connections", conns));
	}
	if (r->hosts.store[0] || r->hosts.consumers[0]) /* issue 14 */
		json_object_set_new(root, "hosts", results_hosts_json(r));
	return root;
}

/* issue 13: the dead-letter counts at the top level, only for a run with a DLQ (dead_lettered not NaN). */
static json_t *results_json_dlq(const struct results *r, json_t *j)
{
	if (!j || !isfinite(r->dlq.dead_lettered))
		return j;
	json_object_set_new(j, "dead_lettered", results_count(r->dlq.dead_lettered));
	json_object_set_new(j, "dlq_replayed", results_count(r->dlq.replayed));
	json_object_set_new(j, "dead_lettered_left", results_count(r->dlq.left));
	json_object_set_new(j, "lost_in_dlq", results_count(r->dlq.lost_in_dlq));
	return j;
}

static json_t *results_json(const struct results *r)
{
	json_t *kinds = json_object(), *causes = json_object(), *band = json_null();

	for (int k = 1; k < EVENTS_KINDS; k++)
		json_object_set_new(kinds, events_kind_name(k), results_count(r->fault_events_by_kind[k]));
	for (int c = 0; c < LEDGER_CAUSES; c++)
		json_object_set_new(causes, ledger_cause_name(c), results_count(r->misses_by_cause[c]));
	if (isfinite(r->duplicate_rate_low) && isfinite(r->duplicate_rate_high))
		band = json_pack("{s:f, s:f, s:f, s:s}", "low", r->duplicate_rate_low, "high", r->duplicate_rate_high,
				 "confidence", 0.95, "method",
				 r->band_by_ahead ? RESULTS_BAND_BY_AHEAD
						  : "compound Poisson over fault events: var = sum of squared event sizes");
	return results_json_perf(
		r, results_json_dlq(r, json_pack("{s:s, s:o, s:s, s:b, s:b, s:o, s:o, s:o, s:o, s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o, "
			     "s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
			     "scenario", r->scenario, "seed", r->seed_known ? json_integer((json_int_t)r->seed) : json_null(), "status", r->status, "interrupted",
			     r->interrupted, "drained", r->drained, "messages", results_count(r->messages), "published",
			     results_count(r->published), "committed", results_count(r->committed), "publish_attempts",
			     results_count(r->publish_attempts), "excess_copies", results_count(r->excess_copies),
			     "excess_copies_from", r->excess_copies_from, "deliveries", results_count(r->deliveries),
			     "duplicate_deliveries", results_count(r->duplicate_deliveries), "duplicates_processed",
			     results_count(r->duplicates_processed), "lost", results_count(r->lost), "wrongly_suppressed",
			     results_count(r->wrongly_suppressed), "duplicate_rate", results_real(r->duplicate_rate),
			     "duplicate_rate_band", band, "fault_events", results_count(r->fault_events),
			     "fault_events_by_kind", kinds, "miss_probability", results_json_miss(r), "misses_by_cause",
			     causes, "predicted", results_json_predicted(r), "faults", results_json_faults(r))));
}

int results_write_summary(const struct results *r, FILE *f)
{
	json_t *j = results_json(r);
	int rc;

	if (!j)
		return -1;
	rc = json_dumpf(j, f, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
	fputc('\n', f);
	json_decref(j);
	return rc == 0 && !ferror(f) ? 0 : -1;
}

/* ---- the loader ---- */

/* The one JSON getter: the number at o.key (o may be NULL); NaN when absent or not a number. */
static double results_num(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_number(v) ? json_number_value(v) : NAN;
}

/* The string at o.key into buf; "" when absent. */
static void results_str(json_t *o, const char *key, char *buf, size_t len)
{
	const char *s = json_string_value(json_object_get(o, key));

	snprintf(buf, len, "%s", s ? s : "");
}

static void results_load_miss(struct results *r, json_t *m)
{
	json_t *it = json_object_get(m, "independent_trials");

	r->miss.estimate = results_num(m, "estimate");
	r->miss.ci_low = results_num(m, "ci_low");
	r->miss.ci_high = results_num(m, "ci_high");
	r->miss.confidence = results_num(m, "confidence");
	r->miss.misses = results_num(m, "misses");
	r->miss.trials = results_num(m, "trials");
	r->miss.events = results_num(m, "events");
	r->miss.design_effect = results_num(m, "design_effect");
	r->miss.effective_trials = results_num(m, "effective_trials");
	results_str(m, "method", r->miss.method, sizeof(r->miss.method));
	results_str(m, "reason", r->miss.reason, sizeof(r->miss.reason));
	r->miss.independent_low = results_num(it, "ci_low");
	r->miss.independent_high = results_num(it, "ci_high");
	results_str(it, "method", r->miss.independent_method, sizeof(r->miss.independent_method));
}

static void results_load_predicted(struct results *r, json_t *p)
{
	json_t *mi = json_object_get(p, "measured_inputs");

	r->predicted.duplicate_rate = results_num(p, "duplicate_rate");
	r->predicted.excess_copies_per_message = results_num(p, "excess_copies_per_message");
	r->predicted.excess_copies = results_num(p, "excess_copies");
	r->predicted.duplicates_per_lost_ack = results_num(p, "duplicates_per_lost_ack");
	results_str(p, "why_not", r->predicted.why_not, sizeof(r->predicted.why_not));
	results_str(p, "assumes", r->predicted.assumes, sizeof(r->predicted.assumes));
	r->predicted.ahead = results_num(mi, "deliveries_ahead_of_an_ack");
	r->predicted.acks_sampled = results_num(mi, "acks_sampled");
	r->predicted.confirms_per_publish = results_num(mi, "confirms_per_publish");
	r->predicted.duplicate_rate_given_faults = results_num(p, "duplicate_rate_given_faults");
	r->predicted.duplicate_rate_sd = results_num(json_object_get(p, "duplicate_rate_band"), "sd");
	r->predicted.ahead_at_faults = results_num(mi, "deliveries_ahead_of_a_lost_ack");
}

static void results_load_faults(struct results *r, json_t *f)
{
	json_t *rules = json_object_get(f, "rules"), *rj;
	size_t i;

	r->faults.frames_dropped = results_num(f, "frames_dropped");
	r->faults.connections_cut = results_num(f, "connections_cut");
	r->faults.proxy_connections = results_num(f, "proxy_connections");
	r->faults.reconnects = results_num(f, "reconnects");
	r->faults.consumer_crashes = results_num(f, "consumer_crashes");
	r->faults.broker_crashes = results_num(f, "broker_crashes");
	r->faults.commit_ok_dropped = results_num(f, "commit_ok_dropped");
	r->faults.confirms_dropped = results_num(f, "confirms_dropped");
	r->faults.acks_dropped = results_num(f, "acks_dropped");
	r->faults.duplicates_per_lost_ack = results_num(f, "duplicates_per_lost_ack");
	json_array_foreach(rules, i, rj) {
		const char *t = json_string_value(json_object_get(rj, "rule"));
		struct results_rule *ru = t ? results_rule_add(r, t) : NULL;

		if (ru) {
			ru->in_summary = true;
			ru->matched = results_num(rj, "matched");
			ru->fired = results_num(rj, "fired");
		}
	}
}

/* issue 14: the store's host, when the run had one; each consumer's, when they had theirs. */
static void results_load_hosts(struct results *r, json_t *h)
{
	json_t *ch;

	if (!json_is_object(h))
		return;
	results_str(h, "consumers", r->hosts.consumers, sizeof(r->hosts.consumers));
	r->hosts.consumer_rtt_ms = results_num(h, "consumer_rtt_ms");
	r->hosts.consumer_jitter_ms = results_num(h, "consumer_jitter_ms");
	r->hosts.consumer_loss = results_num(h, "consumer_loss");
	ch = json_object_get(h, "consumer_hosts");
	for (size_t i = 0; json_is_array(ch) && i < json_array_size(ch) && i < RESULTS_HOSTS_MAX; i++) {
		json_t *e = json_array_get(ch, i);

		results_str(e, "addr", r->hosts.consumer_addr[i], sizeof(r->hosts.consumer_addr[i]));
		r->hosts.consumer_conns[i] = results_num(e, "connections");
		r->hosts.nconsumer_hosts = i + 1;
	}
	if (!json_is_string(json_object_get(h, "store")))
		return;
	results_str(h, "store", r->hosts.store, sizeof(r->hosts.store));
	results_str(h, "store_addr", r->hosts.store_addr, sizeof(r->hosts.store_addr));
	r->hosts.store_rtt_ms = results_num(h, "store_rtt_ms");
	r->hosts.store_jitter_ms = results_num(h, "store_jitter_ms");
	r->hosts.store_loss = results_num(h, "store_loss");
	r->hosts.store_ping_ms = results_num(h, "store_ping_ms");
}

static void results_load_perf(struct results *r, json_t *s)
{
	json_t *t = json_object_get(s, "throughput"), *l = json_object_get(s, "latency_ms");
	json_t *g = json_object_get(s, "gap_ms"), *d = json_object_get(s, "dedup");
	json_t *inv = json_object_get(s, "invariants");

	r->throughput.duration_s = results_num(t, "duration_s");
	r->throughput.publish_s = results_num(t, "publish_s");
	r->throughput.published_per_s = results_num(t, "published_per_s");
	r->throughput.process_s = results_num(t, "process_s");
	r->throughput.processed_per_s = results_num(t, "processed_per_s");
	r->latency_ms.p50 = results_num(l, "p50");
	r->latency_ms.p90 = results_num(l, "p90");
	r->latency_ms.p99 = results_num(l, "p99");
	r->latency_ms.p999 = results_num(l, "p999");
	r->latency_ms.max = results_num(l, "max");
	r->gap_ms.count = results_num(g, "count");
	r->gap_ms.p50 = results_num(g, "p50");
	r->gap_ms.p99 = results_num(g, "p99");
	r->gap_ms.max = results_num(g, "max");
	r->dedup.known = d != NULL;
	results_str(d, "store", r->dedup.store, sizeof(r->dedup.store));
	results_str(d, "scope", r->dedup.scope, sizeof(r->dedup.scope));
	results_str(d, "mark", r->dedup.mark, sizeof(r->dedup.mark));
	r->dedup.lookups = results_num(d, "lookups");
	r->dedup.inserts = results_num(d, "inserts");
	r->dedup.errors = results_num(d, "errors");
	r->dedup.store_latency_us_p50 = results_num(d, "store_latency_us_p50");
	r->dedup.store_latency_us_p99 = results_num(d, "store_latency_us_p99");
	r->store.restarts = results_num(d, "store_restarts");
	r->store.down_ms = results_num(d, "store_down_ms");
	r->store.stalls = results_num(d, "stalls");
	r->store.stalled_ms = results_num(d, "stalled_ms");
	r->store.redis_evicted_keys = results_num(d, "redis_evicted_keys");
	r->invariants.violations = results_num(inv, "violations");
	results_str(inv, "detail", r->invariants.detail, sizeof(r->invariants.detail));
	r->invariants.foreign_deliveries = results_num(inv, "foreign_deliveries");
	results_load_hosts(r, json_object_get(s, "hosts"));
}

/* The top level of summary.json. */
static void results_load_app(struct results *r, json_t *a)
{
	json_t *cmd = json_object_get(a, "command");

	if (!json_is_object(a))
		return;
	r->app.on = true;
	if (json_is_string(cmd))
		snprintf(r->app.command, sizeof(r->app.command), "%s", json_string_value(cmd));
#define RESULTS_APP_GET(k) r->app.n.k = results_num(a, #k);
	RESULTS_APP_KEYS(RESULTS_APP_GET)
#undef RESULTS_APP_GET
}

static void results_load_json(struct results *r, json_t *s)
{
	results_load_app(r, json_object_get(s, "app"));
	{
		json_t *c = json_object_get(s, "cluster");

		r->cluster.nodes = results_num(c, "nodes");
		r->cluster.leader_kills = results_num(c, "leader_kills");
		r->cluster.partitions = results_num(c, "partitions");
		r->cluster.leader_killed = results_num(c, "leader_killed");
		r->cluster.leader_after = results_num(c, "leader_after");
		for (size_t i = 0; i < 8; i++)
			r->cluster.connections[i] = json_is_number(json_array_get(json_object_get(c, "connections"), i))
							    ? json_number_value(json_array_get(json_object_get(c, "connections"), i))
							    : NAN;
	}
	json_t *band = json_object_get(s, "duplicate_rate_band"), *kinds = json_object_get(s, "fault_events_by_kind");
	json_t *causes = json_object_get(s, "misses_by_cause");

	results_str(s, "scenario", r->scenario, sizeof(r->scenario));
	r->seed_known = json_is_integer(json_object_get(s, "seed"));
	r->seed = (uint64_t)json_integer_value(json_object_get(s, "seed"));
	results_str(s, "status", r->status, sizeof(r->status));
	r->interrupted = json_is_true(json_object_get(s, "interrupted"));
	r->drained = json_is_true(json_object_get(s, "drained"));
	r->messages = results_num(s, "messages");
	r->published = results_num(s, "published");
	r->committed = results_num(s, "committed");
	r->publish_attempts = results_num(s, "publish_attempts");
	r->excess_copies = results_num(s, "excess_copies");
	results_str(s, "excess_copies_from", r->excess_copies_from, sizeof(r->excess_copies_from));
	r->deliveries = results_num(s, "deliveries");
	r->duplicate_deliveries = results_num(s, "duplicate_deliveries");
	r->duplicates_processed = results_num(s, "duplicates_processed");
	r->lost = results_num(s, "lost");
	r->wrongly_suppressed = results_num(s, "wrongly_suppressed");
	r->dlq.dead_lettered = results_num(s, "dead_lettered");
	r->dlq.replayed = results_num(s, "dlq_replayed");
	r->dlq.left = results_num(s, "dead_lettered_left");
	r->dlq.lost_in_dlq = results_num(s, "lost_in_dlq");
	r->duplicate_rate = results_num(s, "duplicate_rate");
	r->duplicate_rate_low = results_num(band, "low");
	r->band_by_ahead = json_is_string(json_object_get(band, "method")) &&
			   strcmp(json_string_value(json_object_get(band, "method")), RESULTS_BAND_BY_AHEAD) == 0;
	r->duplicate_rate_high = results_num(band, "high");
	r->fault_events = results_num(s, "fault_events");
	for (int k = 1; k < EVENTS_KINDS; k++)
		r->fault_events_by_kind[k] = results_num(kinds, events_kind_name(k));
	for (int c = 0; c < LEDGER_CAUSES; c++)
		r->misses_by_cause[c] = results_num(causes, ledger_cause_name(c));
	results_load_miss(r, json_object_get(s, "miss_probability"));
	results_load_predicted(r, json_object_get(s, "predicted"));
	results_load_faults(r, json_object_get(s, "faults"));
	results_load_perf(r, s);
}

/* The TTL and capacity the run used, from its effective scenario.ini. */
static void results_load_scenario(struct results *r, const char *dir)
{
	static struct scenario sc; /* large; the loader is not reentrant anyway (one per command) */
	char path[PATH_MAX], err[512];

	snprintf(path, sizeof(path), "%s/scenario.ini", dir);
	if (access(path, R_OK) != 0)
		return;
	scenario_init_defaults(&sc, path);
	if (scenario_load(&sc, path, err, sizeof(err)) == 0) {
		clock_fmt_duration(sc.dedup.ttl_ns, r->dedup.ttl, sizeof(r->dedup.ttl));
		snprintf(r->dedup.capacity, sizeof(r->dedup.capacity), "%" PRIu64, sc.dedup.capacity);
		r->dedup.ttl_ms = (double)sc.dedup.ttl_ns / 1e6;
	}
	scenario_release(&sc);
}

/* faults.csv's rows per rule, and which data files have rows (and curve.csv's smallest probability). */
static void results_load_csv(struct results *r, const char *dir)
{
	static const char *const files[RESULTS_DATA_COUNT] = { "timeseries.csv", "gaps.csv", "curve.csv", "copies.csv" };
	char path[PATH_MAX];
	struct csv t;

	snprintf(path, sizeof(path), "%s/faults.csv", dir);
	if (csv_read(path, &t) == 0) {
		int col = csv_col(&t, "rule");

		for (size_t i = 0; i < t.nrows; i++) {
			struct results_rule *ru = results_rule(r, csv_cell(&t, i, col));

			if (ru)
				ru->rows++;
		}
		csv_free(&t);
	}
	for (int i = 0; i < RESULTS_DATA_COUNT; i++)
		r->has_rows[i] = csv_rows(dir, files[i]) > 0;
	snprintf(path, sizeof(path), "%s/curve.csv", dir);
	if (csv_read(path, &t) == 0) {
		for (size_t i = 0; i < t.nrows; i++)
			for (int k = 1; k <= 3; k++)
				results_minpos(&r->curve_min, csv_num(&t, i, k));
		csv_free(&t);
	}
}

int results_load(struct results *r, const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	json_error_t je;
	json_t *s;
	int rc = 0;

	results_init(r);
	snprintf(path, sizeof(path), "%s/summary.json", dir);
	s = json_load_file(path, 0, &je);
	if (s)
		results_load_json(r, s);
	else
		rc = log_seterr(err, errlen, "cannot read %s: %s", path, access(path, F_OK) < 0 ? strerror(errno) : je.text);
	json_decref(s);
	results_load_scenario(r, dir);
	results_load_csv(r, dir);
	return rc;
}
