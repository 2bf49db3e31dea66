/* results.h — every figure of one run in one struct: filled by the run or loaded from a results folder; summary.json is its serialisation. */
#ifndef DUPSIM_RESULTS_H
#define DUPSIM_RESULTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "truth/events.h"
#include "truth/ledger.h"

/*
 * The fields follow summary.json's keys. Every number is a double and NaN
 * when unknown: a summary written by another version, or by hand, may lack
 * a key (or hold null), and every renderer shows that as "–" rather than a
 * made-up 0. Counts are exact below 2^53. Strings are "" when unknown.
 */

/* One fault rule: the proxy's counters, and the rows of faults.csv naming it. */
struct results_rule {
	char text[256];
	double matched, fired; /* NaN: not a rule of the summary (e.g. "broker crash (kill -9)") */
	bool in_summary;       /* listed under faults.rules */
	uint64_t rows;	       /* faults.csv rows with this rule */
};

/* The data files the plots read; has_rows says which have rows beside their header. */
enum results_data { RESULTS_TIMESERIES, RESULTS_GAPS, RESULTS_CURVE, RESULTS_COPIES, RESULTS_DATA_COUNT };

#define RESULTS_RULES_MAX 64 /* rules kept (the raster shows 12) */
#define RESULTS_HOSTS_MAX 8  /* consumers on test hosts of their own (hosts.consumers = own) */

struct results {
	char scenario[128];
	uint64_t seed; /* exact: a seed may exceed 2^53 */
	bool seed_known;
	char status[32];
	bool interrupted, drained;
	bool band_by_ahead; /* the duplicate-rate band counts lost acks at the spread of ahead */
	double messages, published, committed, publish_attempts, excess_copies;
	char excess_copies_from[32];
	double deliveries, duplicate_deliveries, duplicates_processed, lost, wrongly_suppressed;
	double duplicate_rate;
	double duplicate_rate_low, duplicate_rate_high; /* the band over fault events; NaN: none */
	double fault_events;
	double fault_events_by_kind[EVENTS_KINDS]; /* [0] unused, as in events.h */
	struct {
		double estimate, ci_low, ci_high, confidence, misses, trials, events;
		double design_effect, effective_trials;
		char method[32], reason[256];
		double independent_low, independent_high; /* duplicates as independent trials */
		char independent_method[32];
	} miss;
	double misses_by_cause[LEDGER_CAUSES];
	struct {
		double duplicate_rate, excess_copies_per_message, excess_copies, duplicates_per_lost_ack;
		char why_not[256];
		char assumes[1024];
		double ahead, acks_sampled, confirms_per_publish; /* measured_inputs */
		double duplicate_rate_given_faults; /* the model at the fraction of frames each rule hit */
		double duplicate_rate_sd; /* a run's spread if the model holds: its band is the rate ± 1.96 of it */
		double ahead_at_faults;	  /* ahead at the acks the rules hit (measured_inputs) */
	} predicted;
	struct {
		double frames_dropped, connections_cut, proxy_connections, reconnects, consumer_crashes, broker_crashes;
		struct results_rule rules[RESULTS_RULES_MAX];
		size_t rule_count;
		double commit_ok_dropped, confirms_dropped, acks_dropped, duplicates_per_lost_ack;
	} faults;
	struct {
		double duration_s, publish_s, published_per_s, process_s, processed_per_s;
	} throughput;
	struct {
		double p50, p90, p99, p999, max;
	} latency_ms;
	struct {
		double count, p50, p99, max;
	} gap_ms;
	struct {
		bool known; /* the summary has a dedup object */
		char store[16], scope[16], mark[16];
		double lookups, inserts, errors, store_latency_us_p50, store_latency_us_p99;
		/* from the scenario, as scenario.ini writes them ("" unknown) */
		char ttl[32], capacity[32];
		double ttl_ms; /* NaN unknown, 0 none */
	} dedup;
	/* issue 13, the dedup store's own faults (summary.json's dedup object); NaN unknown */
	struct {
		double restarts;	   /* dedup.store_restarts: kill -9s of the store without persistence */
		double down_ms;		   /* dedup.store_down_ms: how long the store was stopped (SIGSTOP) */
		double stalls, stalled_ms; /* dedup.stalls, dedup.stalled_ms: on_error = closed waits, summed over consumers */
		double redis_evicted_keys; /* dedup.redis_evicted_keys: redis's own INFO evicted_keys */
	} store;
	struct {
		double violations;
		char detail[1024];
		double foreign_deliveries;
	} invariants;
	struct {
		bool on; /* the run's consumers were the user's app ([app]): summary.json has "app" */
		char command[192];
		struct results_app_counts {
			double instances, kills, exits, restarts, connections, connections_unmapped, deliveries,
				redelivered, acks, nacks, abandoned, judged_late, effect_lines, effects_foreign,
				effects_unmatched;
		} n;
	} app;

	/* issue 13: dead-lettering (broker.dead_letter); NaN when the run had no DLQ */
	struct {
		double dead_lettered; /* messages that reached the DLQ: replayed + left in it at the end */
		double replayed;      /* moved back into the queue by faults.dlq_replay_after */
		double left;	      /* in the DLQ when the run ended */
		double lost_in_dlq;   /* of those, committed and never executed: lost to the app unless replayed
				       * (not in `lost`, which counts what vanished) */
	} dlq;

	/* issue 14: a cluster (broker.nodes > 1, or several broker.url); NaN for one broker */
	struct {
		double nodes;
		double leader_kills;  /* faults.leader_kill done */
		double partitions;    /* faults.partition and faults.bridge done */
		double leader_killed; /* the node (from 1) that led the queue when it was killed */
		double leader_after;  /* the node that led it after the kill, before the restart */
		double connections[8]; /* through the proxy, per node (NaN past nodes) */
	} cluster;
	/* issue 14: where the dedup store and the consumers ran (summary.json's hosts object, only with hosts.store = own) */
	struct {
		char store[16];	     /* "own"; "" = on this host (no hosts object) */
		char store_addr[24]; /* the store's test host */
		double store_rtt_ms, store_jitter_ms, store_loss; /* its link, as the scenario set it */
		double store_ping_ms;	/* median redis PING over the link at the start; NaN unknown */
		/* hosts.consumers = own: each consumer (or app instance) on a test host of its own */
		char consumers[16];	/* "own"; "" = on this host */
		double consumer_rtt_ms, consumer_jitter_ms, consumer_loss; /* each one's link, as set */
		size_t nconsumer_hosts;
		char consumer_addr[RESULTS_HOSTS_MAX][24];
		double consumer_conns[RESULTS_HOSTS_MAX]; /* connections the proxy took from that address */
	} hosts;

	/* beside summary.json, for the plots */
	bool has_rows[RESULTS_DATA_COUNT];
	double curve_min; /* smallest positive probability of curve.csv (estimate or bound); NaN: none */
};

/* Every number NaN, every string "", no rule: the state of a summary that says nothing. */
void results_init(struct results *r);

/* Appends a rule; NULL when RESULTS_RULES_MAX are kept. */
struct results_rule *results_rule_add(struct results *r, const char *text);
/* The first rule with this text, appended when there is none; NULL when full. */
struct results_rule *results_rule(struct results *r, const char *text);

/* The smallest positive value among v, and *m; for curve_min. */
void results_minpos(double *m, double v);

/* Writes summary.json: the struct with json_pack, indented, reals to 10 digits. 0 or -1 (the stream failed). */
int results_write_summary(const struct results *r, FILE *f);

/*
 * The one reader of a run folder: DIR/summary.json into r (the only place
 * that parses it), the TTL and capacity from DIR/scenario.ini (through the
 * scenario module; "" when missing), faults.csv's rows per rule, and which
 * data files have rows. 0, or -1 with one line in err (summary.json missing
 * or not JSON); r then holds what the other files say.
 */
int results_load(struct results *r, const char *dir, char *err, size_t errlen);

#endif
