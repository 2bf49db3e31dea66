/* run.c — `dupsim run`: broker, proxy, publishers, consumers, drain, invariants; fills struct results for its renderers. */
#include "cmd/run.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "cmd/crashes.h"
#include "cmd/alarm.h"
#include "cmd/dlq.h"
#include "cmd/storefaults.h"
#include "cmd/storehost.h"
#include "cmd/consumerhosts.h"
#include "cmd/broker.h"
#include "dedup/factory.h"
#include "nodes/node.h"
#include "nodes/proc.h"
#include "nodes/rabbitmq.h"
#include "nodes/postgres.h"
#include "nodes/redis.h"
#include "workload/app.h"
#include "workload/appview.h"
#include "workload/msgid.h"
#include "truth/events.h"
#include "analysis/evidence.h"
#include "analysis/model.h"
#include "wire/frame.h"
#include "results/console.h"
#include "results/csv.h"
#include "results/plot.h"
#include "results/report.h"
#include "results/results.h"
#include "cmd/clusterfaults.h"
#include "hosts/hosts.h"
#include "nodes/cluster.h"
#include "proxy/api.h"
#include "proxy/proxy.h"
#include "core/parse.h"
#include "core/clock.h"
#include "core/files.h"
#include "core/log.h"

#define SETS_MAX 64

enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,	     /* could not run: broker, proxy, results folder */
	EXIT_USAGE = 2,	     /* command line or scenario file */
	EXIT_INVARIANT = 3,  /* the ledger's invariants do not hold */
	EXIT_INTERRUPTED = 130,
};

/* A window the run's own faults made (a broker or a member down, a partition, the alarm, the store down): periods.csv. */
enum run_period_kind { RUN_PERIOD_BROKER, RUN_PERIOD_MEMBER, RUN_PERIOD_CUT, RUN_PERIOD_ALARM, RUN_PERIOD_STORE };
struct run_period {
	enum run_period_kind kind;
	uint64_t from_ns, until_ns; /* clock_now_ns; until 0: still on */
	char label[96];
};

struct run {
	struct scenario sc;
	struct workload rc;
	struct ledger ledger;
	struct events events;
	struct node *broker; /* a private node started for this run, or NULL */
	char broker_url[256];
	struct mq_target target;
	/* issue 14: every node of a cluster (targets[0] = target), a private one's hosts and faults */
	struct mq_target targets[WORKLOAD_VIA_MAX];
	size_t ntargets;
	struct hosts *hosts;
	struct cluster *cluster;
	struct cluster_faults cfaults;
	struct proxy *proxy;
	struct rule *rules;
	size_t rule_count;
	struct publisher *pubs;
	struct consumer *cons;
	pthread_t *pub_threads, *cons_threads;
	size_t pubs_started, cons_started;
	struct node *redis; /* a private redis-server started for this run, or NULL */
	struct app app;	    /* [app]: the user's consumer, instead of consumer threads */
	struct appview *view; /* [app]: its ledger, from the proxy's tap and its effects files */
	struct appview_totals app_totals;
	char app_redis_url[256]; /* DUPSIM_REDIS_URL, "" none */
	amqp_connection_state_t lock; /* holds the queue's lock (run_lock_queue) for the whole run */
	struct node *postgres;	 /* a private PostgreSQL for store = postgres, or NULL */
	char app_pg_url[256];	 /* DUPSIM_PG_URL, "" none */
	struct dedup_factory stores; /* how consumers open their dedup stores */

	pthread_mutex_t fault_lock;
	FILE *fault_spill; /* faults.csv's rows as they happen (unlinked temp file: memory stays flat) */
	struct run_source *sources; /* what faults.csv's rows name; [i] is configured rule i (under fault_lock) */
	size_t nsources, capsources;
	struct api *api;	    /* [proxy] api: the control API during the run, or NULL */
	_Atomic uint64_t faults_fired;

	struct run_period *periods; /* the run's own faults' windows, in the order they began */
	size_t nperiods, capperiods;

	struct csv_tick *ticks;
	size_t tick_count, tick_cap;
	struct csv_curve_point *curve; /* curve.csv */
	size_t curve_count;

	struct crashes crashes;
	struct alarm alarm; /* faults.memory_alarm */
	struct dlq dlq;	    /* broker.delivery_limit, broker.dead_letter, faults.dlq_replay_after */
	struct store_faults store_faults; /* issue 13: the private redis restarted, stopped */
	struct redis_kind redis_kind;	  /* its settings (no persistence, maxmemory) */
	struct storehost storehost;	  /* issue 14: hosts.store = own, the redis's test host */
	struct consumerhosts chosts;	  /* issue 14: hosts.consumers = own, a test host per consumer */
	uint64_t start_ns, publish_done_ns, end_ns;
	bool drained, interrupted, drain_timed_out;
	char out_dir[PATH_MAX];
	bool quiet, progress;
};

static void run_usage(FILE *f)
{
	fprintf(f, "usage: dupsim run FILE [--set section.key=value]... [--out DIR] [--seed N] [--quiet]\n"
		   "\n"
		   "Runs a scenario against a real RabbitMQ broker through the fault proxy and\n"
		   "writes results/<name>-<UTC time>/ (summary.json, timeseries.csv, gaps.csv,\n"
		   "copies.csv, faults.csv, scenario.ini); results/latest points at the newest.\n"
		   "\n"
		   "  --set section.key=value  override a scenario key (repeatable), e.g. --set faults.ack_loss=1%%\n"
		   "  --out DIR                write the results into DIR instead\n"
		   "  --seed N                 same as --set run.seed=N\n"
		   "  --quiet                  no progress line\n"
		   "\n"
		   "Scenario keys: scenarios/README.md. Exit codes: 0 ok, 1 could not run (or the\n"
		   "broker was lost mid-run: results are written, summary.json's status says why:\n"
		   "broker_restart_failed, publisher_gave_up), 2 bad command line or scenario,\n"
		   "3 ledger invariant violated, 130 interrupted.\n");
}

/* What a row of faults.csv names: a rule (by id - 1), or one of the sentinels below. */
struct run_source {
	size_t rule;
	char text[256];
	uint64_t rows;
};
#define RUN_FAULT_BROKER_CRASH (SIZE_MAX - 1) /* proxy_fault.rule of a kill -9 of the broker */
#define RUN_FAULT_APP_KILL (SIZE_MAX - 2)     /* ... of an app instance ([app] crash_every) */
#define RUN_FAULT_ALARM_ON (SIZE_MAX - 3)    /* the memory alarm took effect (faults.memory_alarm) */
#define RUN_FAULT_ALARM_OFF (SIZE_MAX - 4)   /* ... and was cleared */
#define RUN_FAULT_DLQ_REPLAY (SIZE_MAX - 5)  /* the dead-letter queue moved back (faults.dlq_replay_after) */
#define RUN_FAULT_STORE (SIZE_MAX - 10)	     /* + enum store_fault: the dedup store's own faults */
#define RUN_FAULT_CLUSTER (SIZE_MAX - 20)    /* + enum cluster_fault: a private cluster's faults */

/* A cluster's fault (clusterfaults.h): its faults.csv text, or NULL for any other fault. */
static const char *run_cluster_fault_text(size_t rule)
{
	if (rule <= RUN_FAULT_CLUSTER || rule > RUN_FAULT_CLUSTER + CLUSTER_FAULT_FAILED)
		return NULL;
	return cluster_fault_text((enum cluster_fault)(rule - RUN_FAULT_CLUSTER));
}

/* A fault of the dedup store itself (storefaults.h): its faults.csv text, or NULL for any other fault. */
static const char *run_store_fault_text(size_t rule)
{
	if (rule <= RUN_FAULT_STORE || rule > RUN_FAULT_STORE + STORE_FAULT_UP)
		return NULL;
	return store_fault_text((enum store_fault)(rule - RUN_FAULT_STORE));
}

/* A fault the run itself made (not the proxy's, nor the control API's): its own event, or none. */
static bool run_own_fault(size_t rule)
{
	return rule == RUN_FAULT_BROKER_CRASH || rule == RUN_FAULT_APP_KILL || rule == RUN_FAULT_ALARM_ON ||
	       rule == RUN_FAULT_ALARM_OFF || rule == RUN_FAULT_DLQ_REPLAY || run_store_fault_text(rule) ||
	       run_cluster_fault_text(rule);
}

/* The sources of faults.csv rows the run's own faults made. */
static size_t run_own_sources(const struct run *r)
{
	size_t n = 0;

	for (size_t i = 0; i < r->nsources; i++)
		n += run_own_fault(r->sources[i].rule);
	return n;
}

/* Who consumes: dupsim's consumer threads, or the app's instances. */
static uint64_t run_consumers(const struct run *r)
{
	return scenario_has_app(&r->sc) ? r->sc.app.instances : r->sc.consumers.count;
}

/* What kind of fault event a rule makes of the connection it fires on. */
static enum events_kind run_fault_kind(const struct rule *rule, enum proxy_dir d)
{
	if (rule->method == RULE_METHOD_HEARTBEAT) /* issue 13: a lost heartbeat ends its connection by a timeout */
		return EVENTS_HEARTBEAT_TIMEOUT;
	if (rule->action == RULE_CUT)
		return EVENTS_RULE;
	switch (rule->method) {
	case AMQP_TX_COMMIT_OK_METHOD:
		return EVENTS_LOST_COMMIT_OK;
	case AMQP_BASIC_ACK_METHOD:
		return d == PROXY_TO_BROKER ? EVENTS_LOST_ACK : EVENTS_LOST_CONFIRM;
	case AMQP_BASIC_NACK_METHOD:
		return d == PROXY_TO_BROKER ? EVENTS_RULE : EVENTS_LOST_CONFIRM;
	default:
		return EVENTS_RULE;
	}
}

/* The source of faults with this rule id - 1 (or sentinel), added with text when new; its index, -1 out of memory. */
static int32_t run_source(struct run *r, size_t rule, const char *text)
{
	for (size_t i = 0; i < r->nsources; i++)
		if (r->sources[i].rule == rule)
			return (int32_t)i;
	if (r->nsources == r->capsources) {
		size_t cap = r->capsources ? 2 * r->capsources : 16;
		struct run_source *n = realloc(r->sources, cap * sizeof(*n));

		if (!n)
			return -1;
		r->sources = n;
		r->capsources = cap;
	}
	r->sources[r->nsources] = (struct run_source){ .rule = rule };
	snprintf(r->sources[r->nsources].text, sizeof(r->sources[r->nsources].text), "%s", text);
	return (int32_t)r->nsources++;
}

/*
 * A fault: a configured rule, one the control API added, a cut it asked
 * for (POST /cut), or a broker crash. Each makes a row of faults.csv; the
 * proxy's also end the session of the connection they hit.
 */
static void run_on_fault(void *arg, const struct proxy_fault *f)
{
	struct run *r = arg;
	enum events_kind kind = EVENTS_RULE;
	const char *text = "?";
	int32_t src;

	atomic_fetch_add(&r->faults_fired, 1);
	if (f->rule == PROXY_FAULT_CUT_ALL) {
		text = "POST /cut (control API)";
	} else if (f->rule == RUN_FAULT_BROKER_CRASH) {
		text = "broker crash (kill -9)";
	} else if (f->rule == RUN_FAULT_APP_KILL) {
		text = "app instance killed (kill -9)";
	} else if (f->rule == RUN_FAULT_ALARM_ON) {
		text = "memory alarm raised (publishers blocked)";
	} else if (f->rule == RUN_FAULT_ALARM_OFF) {
		text = "memory alarm cleared";
	} else if (f->rule == RUN_FAULT_DLQ_REPLAY) {
		text = "dead-letter queue replayed into the queue";
	} else if (run_store_fault_text(f->rule)) {
		text = run_store_fault_text(f->rule);
	} else if (run_cluster_fault_text(f->rule)) {
		text = run_cluster_fault_text(f->rule);
	} else if (f->rule < r->rule_count) {
		text = r->rules[f->rule].text;
		kind = run_fault_kind(&r->rules[f->rule], f->dir);
	} else if (f->r) { /* added by the control API */
		text = f->r->text;
		kind = run_fault_kind(f->r, f->dir);
	}
	pthread_mutex_lock(&r->fault_lock);
	src = run_source(r, f->rule, text);
	if (src >= 0) {
		r->sources[src].rows++;
		if (f->rule >= r->rule_count) /* the API may have PATCHed it: the text as it reads now */
			snprintf(r->sources[src].text, sizeof(r->sources[src].text), "%s", text);
	}
	if (r->fault_spill)
		fprintf(r->fault_spill, "%.6f,\"%s\",%s\n", (double)(f->time_ns - r->start_ns) / NS_PER_S,
			run_cluster_fault_text(f->rule) && r->cfaults.text[0] ? r->cfaults.text : text,
			f->dir == PROXY_TO_BROKER ? "client" : "broker");
	pthread_mutex_unlock(&r->fault_lock);
	/* a crash is its own event (crashes.c); a killed app's connections end as app_crash (appview.c);
	 * the store's faults make no duplicates (storefaults.h) */
	if (!run_own_fault(f->rule)) /* a cluster's faults and the alarm are events of their own (clusterfaults.c, alarm.c) */
		events_note_rule(&r->events, f->peer_port, src, kind, f->time_ns);
}

/* A fault the run itself injected (a broker crash), beside the proxy's. */
static void run_note_fault(struct run *r, size_t rule_index)
{
	struct proxy_fault f = { .time_ns = clock_now_ns(), .rule = rule_index, .dir = PROXY_TO_CLIENT };

	run_on_fault(r, &f);
}

/*
 * issue 14: the run's test hosts, one hub for all that need them: a cluster's
 * nodes, the store's host, the consumers' hosts. Made first, so that the
 * servers the consumers reach know where to listen. 0 or -1 with err.
 */
static int run_hosts(struct run *r, char *err, size_t errlen)
{
	const struct scenario *sc = &r->sc;
	const char *what = sc->cluster.nodes > 1			     ? "broker.nodes = 3"
			   : sc->hosts.store == SCENARIO_HOSTS_STORE_OWN	     ? "hosts.store = own"
			   : sc->hosts.consumers == SCENARIO_HOSTS_CONSUMERS_OWN ? "hosts.consumers = own"
										     : NULL;
	char why[512];

	if (!what)
		return 0;
	if (hosts_check(what, err, errlen) < 0)
		return -1;
	if (hosts_new(&r->hosts, why, sizeof(why)) < 0)
		return log_seterr(err, errlen, "%s: could not make the test hosts: %s", what, why);
	if (consumerhosts_new(&r->chosts, r->hosts, sc, err, errlen) < 0)
		return -1;
	if (r->chosts.n && !r->quiet)
		log_line("%zu consumer%s on test hosts of their own (%s…), link round trip %.3g ms each",
			 r->chosts.n, r->chosts.n == 1 ? "" : "s", hosts_addr(r->hosts, r->chosts.host[0]),
			 (double)sc->hosts.consumer_rtt_ns / 1e6);
	return 0;
}

/* store = postgres: the private PostgreSQL of the inbox; its URL in *url. 0 or -1 with err. */
static int run_postgres(struct run *r, const char **url, char *err, size_t errlen)
{
	struct node_opts o = { .quiet = r->quiet, .addr = consumerhosts_serve_addr(&r->chosts) };
	char why[512];

	if (node_new(&r->postgres, &postgres_ops, &o, why, sizeof(why)) < 0)
		return log_seterr(err, errlen, "could not start a private PostgreSQL: %s", why);
	*url = node_url(r->postgres);
	if (scenario_has_app(&r->sc))
		snprintf(r->app_pg_url, sizeof(r->app_pg_url), "%s", *url);
	return 0;
}

/* Sets up the dedup store(s): a private redis or PostgreSQL when asked, the shared store, the file folder. */
static int run_stores(struct run *r, char *err, size_t errlen)
{
	const struct scenario *sc = &r->sc;
	const char *redis_url = sc->dedup.url;
	char why[512];

	if (sc->dedup.store == SCENARIO_STORE_POSTGRES && run_postgres(r, &redis_url, err, errlen) < 0)
		return -1;
	if (sc->dedup.store == SCENARIO_STORE_REDIS && strcmp(sc->dedup.url, "embedded") == 0) {
		/* consumers on test hosts reach it on dupsim's end of the hub, unless it has a host itself */
		struct node_opts o = { .quiet = r->quiet, .addr = consumerhosts_serve_addr(&r->chosts) };
		struct redis_config rc = { .volatile_data = sc->store.restart_every_ns > 0,
					   .maxmemory = sc->store.redis_maxmemory };

		redis_kind_init(&r->redis_kind, &rc);
		if (storehost_new(&r->storehost, r->hosts, sc, &o, err, errlen) < 0)
			return -1;
		if (node_new(&r->redis, &r->redis_kind.ops, &o, why, sizeof(why)) < 0)
			return log_seterr(err, errlen, "could not start a private redis-server: %s", why);
		if (storehost_link(&r->storehost, sc, node_addr(r->redis), node_port(r->redis), err, errlen) < 0)
			return -1;
		redis_url = node_url(r->redis);
	}
	if (scenario_has_app(sc)) { /* the app has its own store: dupsim only hands redis over */
		if (sc->dedup.store == SCENARIO_STORE_REDIS)
			snprintf(r->app_redis_url, sizeof(r->app_redis_url), "%s", redis_url);
		return 0;
	}
	if (dedup_factory_init(&r->stores, sc, redis_url, err, errlen) < 0)
		return -1;
	r->rc.stores = &r->stores;
	if (dedup_factory_one_for_all(&r->stores)) {
		r->rc.shared_store = dedup_factory_open(&r->stores, 0, why, sizeof(why));
		if (!r->rc.shared_store)
			return log_seterr(err, errlen, "dedup store: %s", why);
	} else if (sc->dedup.store == SCENARIO_STORE_REDIS || sc->dedup.store == SCENARIO_STORE_POSTGRES) {
		/* fail before the run if the server can't be reached (postgres: and make its tables) */
		struct dedup_store *probe = dedup_factory_open(&r->stores, 0, why, sizeof(why));

		if (!probe)
			return log_seterr(err, errlen, "dedup store: %s; check dedup.url", why);
		dedup_free(probe);
	}
	return 0;
}

/* A direct (not proxied) connection to the broker, for set-up, depth checks and clean-up. */
static amqp_connection_state_t run_direct(struct run *r, char *err, size_t errlen)
{
	return mq_open(&r->target, 5000, err, errlen);
}

/*
 * Two runs on one queue of one broker (a shared `dupsim broker start` node)
 * would consume each other's messages: every number of both would be wrong.
 * A run holds an exclusive queue `<queue>.dupsim-lock` on a connection of its
 * own until it ends; a second run finds it locked and stops. 0 or -1 with err.
 */
static int run_lock_queue(struct run *r, char *err, size_t errlen)
{
	char name[SCENARIO_STR_MAX + 16], why[256];
	amqp_rpc_reply_t rep;
	bool locked;

	if (!(r->lock = run_direct(r, err, errlen)))
		return -1;
	snprintf(name, sizeof(name), "%s.dupsim-lock", r->sc.broker.queue);
	amqp_queue_declare(r->lock, 1, amqp_cstring_bytes(name), 0, 0, 1, 1, amqp_empty_table);
	rep = amqp_get_rpc_reply(r->lock);
	if (mq_ok(rep))
		return 0;
	/* read the reply before the connection (which owns it) goes */
	locked = rep.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && rep.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
		 ((amqp_channel_close_t *)rep.reply.decoded)->reply_code == AMQP_RESOURCE_LOCKED;
	mq_reply_str(rep, why, sizeof(why));
	mq_abandon(r->lock);
	r->lock = NULL;
	if (locked)
		return log_seterr(err, errlen,
				"another dupsim run is using queue '%s' at %s right now (it holds '%s'); wait for it "
				"to end, or give this run another broker.queue", r->sc.broker.queue, r->broker_url, name);
	return log_seterr(err, errlen, "declaring the lock queue '%s' failed: %s", name, why);
}

static int run_setup_queue(struct run *r, char *err, size_t errlen)
{
	const struct scenario *sc = &r->sc;
	amqp_connection_state_t c = run_direct(r, err, errlen);
	amqp_table_entry_t arg[2 + DLQ_ARGS_MAX];
	amqp_table_t args = { .num_entries = 0, .entries = arg };
	char why[256];

	if (!c || run_lock_queue(r, err, errlen) < 0) {
		mq_abandon(c);
		return -1;
	}
	if (sc->broker.queue_type == SCENARIO_QUEUE_QUORUM) {
		arg[0].key = amqp_cstring_bytes("x-queue-type");
		arg[0].value.kind = AMQP_FIELD_KIND_UTF8;
		arg[0].value.value.bytes = amqp_cstring_bytes("quorum");
		args.num_entries = 1;
		if (sc->cluster.nodes > 1) { /* a member on every node */
			arg[1].key = amqp_cstring_bytes("x-quorum-initial-group-size");
			arg[1].value.kind = AMQP_FIELD_KIND_I32;
			arg[1].value.value.i32 = (int32_t)sc->cluster.nodes;
			args.num_entries = 2;
		}
	}
	dlq_init(&r->dlq, sc, &r->target);
	if (dlq_setup(&r->dlq, c, &args, err, errlen) < 0) {
		mq_abandon(c);
		return -1;
	}
	amqp_queue_declare(c, 1, amqp_cstring_bytes(sc->broker.queue), 0, 1, 0, 0, args);
	if (!mq_ok(amqp_get_rpc_reply(c))) {
		log_seterr(err, errlen,
			 "declaring queue '%s' at %s failed: %s (a queue of that name with other arguments? "
			 "delete it or set broker.queue)",
			 sc->broker.queue, r->broker_url, mq_reply_str(amqp_get_rpc_reply(c), why, sizeof(why)));
		mq_abandon(c);
		return -1;
	}
	amqp_queue_purge(c, 1, amqp_cstring_bytes(sc->broker.queue));
	if (!mq_ok(amqp_get_rpc_reply(c))) {
		log_seterr(err, errlen, "purging queue '%s' failed: %s", sc->broker.queue,
			 mq_reply_str(amqp_get_rpc_reply(c), why, sizeof(why)));
		mq_abandon(c);
		return -1;
	}
	mq_close(c);
	return 0;
}

/*
 * Messages ready in the queue (not counting unacked ones), or -1. A failed
 * passive declare closes the channel (and a dead broker the connection): the
 * connection is then dropped, and the next call opens a new one.
 */
static int64_t run_queue_depth(struct run *r, amqp_connection_state_t *c, const char *queue)
{
	amqp_queue_declare_ok_t *ok;
	char err[256];

	if (!*c)
		*c = run_direct(r, err, sizeof(err));
	if (!*c)
		return -1;
	ok = amqp_queue_declare(*c, 1, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
	if (!ok || !mq_ok(amqp_get_rpc_reply(*c))) {
		mq_abandon(*c);
		*c = NULL;
		return -1;
	}
	return (int64_t)ok->message_count;
}

static void run_tick(struct run *r, uint64_t now)
{
	struct workload *rc = &r->rc;
	struct csv_tick t = {
		.t = (double)(now - r->start_ns) / NS_PER_S,
		.published = atomic_load(&rc->published),
		.confirmed = atomic_load(&rc->confirmed),
		.deliveries = atomic_load(&rc->deliveries),
		.duplicates = atomic_load(&rc->duplicate_deliveries),
		.executions = atomic_load(&rc->executions),
		.faults = atomic_load(&r->faults_fired),
		.reconnects = atomic_load(&rc->reconnects),
	};

	if (r->tick_count == r->tick_cap) {
		size_t cap = r->tick_cap ? r->tick_cap * 2 : 256;
		struct csv_tick *nt = realloc(r->ticks, cap * sizeof(*nt));

		if (!nt)
			return;
		r->ticks = nt;
		r->tick_cap = cap;
	}
	r->ticks[r->tick_count++] = t;
	if (r->progress) {
		const struct csv_tick *prev = r->tick_count > 1 ? &r->ticks[r->tick_count - 2] : NULL;
		double dt = t.t - (prev ? prev->t : 0);
		double rate = dt > 0 ? (double)(t.executions - (prev ? prev->executions : 0)) / dt : 0;

		fprintf(stderr,
			"\r[%5.0fs] published %" PRIu64 "/%" PRIu64 " (committed %" PRIu64 ")  processed %" PRIu64
			"  duplicates %" PRIu64 "  faults %" PRIu64 "  %.0f msg/s   ",
			t.t, t.published, r->sc.run.messages, t.confirmed, t.executions, t.duplicates, t.faults, rate);
		fflush(stderr);
	}
}

/*
 * The publishers are done: with a cool-down, the proxy's rules go off (the
 * crashes stop anyway once publishing is over). Returns the time the
 * cool-down starts, read after the switch, so that every fault lies before it.
 */
static uint64_t run_cool_down(struct run *r, uint64_t now)
{
	if (!r->sc.faults.cooldown_ns)
		return now;
	proxy_faults_off(r->proxy, true);
	return clock_now_ns();
}

/*
 * faults.dlq_replay_after: the operator replays the DLQ when its time has
 * come, or when the run is quiet before that (the replay's copies are then
 * drained too). True when it replayed just now: the run is not over.
 */
static bool run_replay_dlq(struct run *r, uint64_t now, bool quiet)
{
	if (!dlq_replay_due(&r->dlq, now, quiet))
		return false;
	if (dlq_replay(&r->dlq) > 0)
		run_note_fault(r, RUN_FAULT_DLQ_REPLAY);
	atomic_store(&r->rc.last_delivery_ns, clock_now_ns()); /* wait for the replayed copies again */
	return true;
}

/* A window of kind begins now, labelled; dropped (said nowhere) when memory is out. */
static void run_period_open(struct run *r, enum run_period_kind kind, const char *label)
{
	if (r->nperiods == r->capperiods) {
		size_t cap = r->capperiods ? 2 * r->capperiods : 16;
		struct run_period *n = realloc(r->periods, cap * sizeof(*n));

		if (!n)
			return;
		r->periods = n;
		r->capperiods = cap;
	}
	r->periods[r->nperiods] = (struct run_period){ .kind = kind, .from_ns = clock_now_ns() };
	snprintf(r->periods[r->nperiods].label, sizeof(r->periods[0].label), "%s", label);
	r->nperiods++;
}

/* The open window of kind ends now. */
static void run_period_close(struct run *r, enum run_period_kind kind)
{
	for (size_t i = r->nperiods; i-- > 0;)
		if (r->periods[i].kind == kind && !r->periods[i].until_ns) {
			r->periods[i].until_ns = clock_now_ns();
			return;
		}
}

/* faults.broker_crash_every: each kill a row of faults.csv, each time down a window of periods.csv. */
static void run_crash_step(struct run *r, uint64_t now)
{
	if (crashes_step(&r->crashes, now, !r->publish_done_ns)) {
		run_note_fault(r, RUN_FAULT_BROKER_CRASH);
		run_period_open(r, RUN_PERIOD_BROKER, "broker down (kill -9)");
	}
	if (!crashes_down(&r->crashes))
		run_period_close(r, RUN_PERIOD_BROKER); /* the window of the last kill, if still open */
}

/* faults.memory_alarm: its raise and its clearing, each a row of faults.csv. */
static void run_alarm_step(struct run *r, uint64_t now)
{
	bool raised = r->alarm.raised_ns != 0, cleared = r->alarm.cleared_ns != 0;

	alarm_step(&r->alarm, now);
	if (!raised && r->alarm.raised_ns) {
		run_note_fault(r, RUN_FAULT_ALARM_ON);
		run_period_open(r, RUN_PERIOD_ALARM, "memory alarm");
	}
	if (!cleared && r->alarm.cleared_ns) {
		run_note_fault(r, RUN_FAULT_ALARM_OFF);
		run_period_close(r, RUN_PERIOD_ALARM);
	}
}

/* issue 13: the dedup store's own faults, each a row of faults.csv. */
static void run_store_step(struct run *r, uint64_t now)
{
	enum store_fault what = store_faults_step(&r->store_faults, now, !r->publish_done_ns,
						  r->publish_done_ns && r->sc.faults.cooldown_ns);

	if (what != STORE_FAULT_NONE)
		run_note_fault(r, RUN_FAULT_STORE + what);
	if (what == STORE_FAULT_DOWN)
		run_period_open(r, RUN_PERIOD_STORE, "dedup store down");
	if (what == STORE_FAULT_UP)
		run_period_close(r, RUN_PERIOD_STORE);
}

/* issue 14: a cluster's faults, each a row of faults.csv; true when one happened. */
static bool run_cluster_step(struct run *r, uint64_t now)
{
	enum cluster_fault what = cluster_faults_step(&r->cfaults, now);

	if (what == CLUSTER_FAULT_NONE)
		return false;
	run_note_fault(r, RUN_FAULT_CLUSTER + what);
	if (what == CLUSTER_FAULT_LEADER_KILL)
		run_period_open(r, RUN_PERIOD_MEMBER, r->cfaults.text);
	else if (what == CLUSTER_FAULT_RESTART)
		run_period_close(r, RUN_PERIOD_MEMBER);
	else if (what == CLUSTER_FAULT_PARTITION || what == CLUSTER_FAULT_BRIDGE)
		run_period_open(r, RUN_PERIOD_CUT, r->cfaults.text);
	else if (what == CLUSTER_FAULT_HEAL)
		run_period_close(r, RUN_PERIOD_CUT);
	return true;
}

/* Publishing, then draining, with a tick a second; returns when done or interrupted. */
static void run_monitor(struct run *r)
{
	struct workload *rc = &r->rc;
	const struct scenario *sc = &r->sc;
	uint64_t next_tick = r->start_ns + NS_PER_S;
	amqp_connection_state_t direct = NULL;

	run_tick(r, r->start_ns); /* a row at t = 0: the time series starts from nothing */
	for (;;) {
		uint64_t now = clock_now_ns();

		if (cli_signals) {
			r->interrupted = true;
			break;
		}
		if (now >= next_tick) {
			run_tick(r, now);
			next_tick += NS_PER_S;
		}
		run_crash_step(r, now);
		run_alarm_step(r, now);
		if (run_cluster_step(r, now))
			now = clock_now_ns(); /* a step may take seconds (a restart) */
		run_replay_dlq(r, now, false);
		run_store_step(r, now);
		if (r->view) {
			/* the app is killed while there is work for it (publishing, or committed messages not
			 * done), outside the warm-up and the cool-down */
			bool due = app_kill_due(&r->app, now) && now - r->start_ns >= sc->faults.warmup_ns;

			if (app_step(&r->app, now,
				     due && (!r->publish_done_ns ||
					     (!sc->faults.cooldown_ns && !ledger_all_processed(&r->ledger)))))
				run_note_fault(r, RUN_FAULT_APP_KILL);
			appview_poll(r->view, now);
			if (app_failure(&r->app))
				break;
		}
		if (r->crashes.lost || r->cfaults.lost)
			break;
		if (!r->publish_done_ns && atomic_load(&rc->publishers_running) == 0)
			r->publish_done_ns = now = run_cool_down(r, now);
		if (r->publish_done_ns && !crashes_down(&r->crashes) && !alarm_pending(&r->alarm) &&
		    !store_faults_down(&r->store_faults) && !cluster_faults_pending(&r->cfaults) &&
		    now - r->publish_done_ns >= sc->faults.cooldown_ns) {
			if (run_consumers(r) == 0) {
				r->drained = true;
				break;
			}
			if (now - r->publish_done_ns > sc->run.drain_timeout_ns) {
				r->drain_timed_out = true;
				break;
			}
			/*
			 * Quiet for a moment, nothing left ready, and every committed
			 * message done; or quiet for long, since a wrongly suppressed
			 * message (lost) is never done and waiting for it is pointless.
			 */
			uint64_t idle = now - atomic_load(&rc->last_delivery_ns);

			if ((idle > 500 * NS_PER_MS && ledger_all_processed(&r->ledger)) || idle > 3 * NS_PER_S) {
				/* the app may still hold deliveries it was given: they are not done yet */
				if (run_queue_depth(r, &direct, sc->broker.queue) == 0 &&
				    (!r->view || appview_unsettled(r->view) == 0) && !run_replay_dlq(r, now, true)) {
					r->drained = true;
					break;
				}
			}
		}
		clock_sleep_ns(50 * NS_PER_MS);
	}
	mq_close(direct);
	run_tick(r, clock_now_ns());
	if (r->progress)
		fputc('\n', stderr);
}

static void run_stop_threads(struct run *r)
{
	atomic_store(&r->rc.stop_publishing, true);
	atomic_store(&r->rc.stop, true);
	for (size_t i = 0; i < r->pubs_started; i++)
		pthread_join(r->pub_threads[i], NULL);
	for (size_t i = 0; i < r->cons_started; i++)
		pthread_join(r->cons_threads[i], NULL);
	r->pubs_started = r->cons_started = 0;
}

/* Consumer c's store (its own, or the shared one) and its thread. 0 or -1 with err. */
static int run_start_consumer(struct run *r, struct consumer *c, char *err, size_t errlen)
{
	const struct scenario *sc = &r->sc;
	struct workload *rc = &r->rc;

	if (rc->shared_store) {
		c->store = rc->shared_store;
	} else if (sc->dedup.store != SCENARIO_STORE_NONE) {
		char why[512];

		c->store = dedup_factory_open(rc->stores, c->id, why, sizeof(why));
		if (!c->store)
			return log_seterr(err, errlen, "dedup store for consumer %u: %s", c->id, why);
		c->own_store = true;
	}
	if (pthread_create(&r->cons_threads[c->id], NULL, consumer_main, c) != 0)
		return log_seterr(err, errlen, "cannot start consumer thread: %s", strerror(errno));
	r->cons_started++;
	return 0;
}

static int run_start_threads(struct run *r, char *err, size_t errlen)
{
	const struct scenario *sc = &r->sc;
	struct workload *rc = &r->rc;
	size_t np = sc->publishers.count, nc = scenario_has_app(sc) ? 0 : sc->consumers.count;

	r->pubs = calloc(np, sizeof(*r->pubs));
	r->pub_threads = calloc(np, sizeof(*r->pub_threads));
	r->cons = calloc(nc ? nc : 1, sizeof(*r->cons));
	r->cons_threads = calloc(nc ? nc : 1, sizeof(*r->cons_threads));
	if (!r->pubs || !r->pub_threads || !r->cons || !r->cons_threads)
		return log_seterr(err, errlen, "out of memory");
	for (size_t i = 0; i < nc; i++) {
		struct consumer *c = &r->cons[i];

		c->w = rc;
		c->id = (unsigned)i;
		/* on its own host: the thread made there stays there, and so do the sockets it and its store open */
		if (consumerhosts_enter(&r->chosts, (long)i) < 0)
			return log_seterr(err, errlen, "consumer %zu: cannot enter its test host: %s", i, strerror(errno));
		if (run_start_consumer(r, c, err, errlen) < 0) {
			consumerhosts_enter(&r->chosts, -1);
			return -1;
		}
		if (consumerhosts_enter(&r->chosts, -1) < 0)
			return log_seterr(err, errlen, "cannot return from a test host: %s", strerror(errno));
	}
	atomic_store(&rc->publishers_running, (int)np);
	for (size_t i = 0; i < np; i++) {
		struct publisher *p = &r->pubs[i];

		p->w = rc;
		p->id = (unsigned)i;
		p->first = i * rc->per_publisher;
		p->end = p->first + rc->per_publisher < sc->run.messages ? p->first + rc->per_publisher
									  : sc->run.messages;
		if (p->first > p->end)
			p->first = p->end;
		if (pthread_create(&r->pub_threads[i], NULL, publisher_main, p) != 0) {
			atomic_store(&rc->publishers_running, (int)i);
			return log_seterr(err, errlen, "cannot start publisher thread: %s", strerror(errno));
		}
		r->pubs_started++;
	}
	return 0;
}

/* broker.nodes = 3: the test hosts and the cluster on them; its node 1 is the run's broker URL. */
static int run_cluster(struct run *r, char *err, size_t errlen)
{
	const struct scenario *sc = &r->sc;
	struct node_opts o = { .quiet = r->quiet };
	struct rabbitmq_conf rc = { .consumer_timeout_ms = sc->broker.consumer_timeout_ns / NS_PER_MS };
	char why[1024];

	if (!r->quiet)
		log_line("starting a private RabbitMQ cluster of %llu nodes, each on a test host of its own",
			 (unsigned long long)sc->cluster.nodes);
	if (cluster_new(&r->cluster, r->hosts, sc->cluster.nodes, &o, &rc, why, sizeof(why)) < 0)
		return log_seterr(err, errlen, "could not start the cluster: %s", why);
	r->ntargets = cluster_size(r->cluster);
	for (size_t i = 0; i < r->ntargets; i++)
		if (mq_parse_url(node_url(cluster_node(r->cluster, i)), &r->targets[i], why, sizeof(why)) < 0)
			return log_seterr(err, errlen, "cluster node %zu: %s", i + 1, why);
	snprintf(r->broker_url, sizeof(r->broker_url), "%s", node_url(cluster_node(r->cluster, 0)));
	return 0;
}

/* broker.url = amqp://a,amqp://b,...: the user's cluster, one target per node. */
static int run_url_list(struct run *r, char *err, size_t errlen)
{
	char buf[SCENARIO_STR_MAX + 1], why[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", r->sc.broker.url);
	for (char *u = strtok_r(buf, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
		while (*u == ' ')
			u++;
		if (r->ntargets == WORKLOAD_VIA_MAX)
			return log_seterr(err, errlen, "%s: broker.url: more than %d URLs", r->sc.path, WORKLOAD_VIA_MAX);
		if (mq_parse_url(u, &r->targets[r->ntargets], why, sizeof(why)) < 0)
			return log_seterr(err, errlen, "%s: broker.url '%s': %s", r->sc.path, u, why);
		r->ntargets++;
	}
	snprintf(r->broker_url, sizeof(r->broker_url), "%.*s", (int)strcspn(r->sc.broker.url, ","), r->sc.broker.url);
	return 0;
}

/* Every node of a cluster takes a login (the first one was checked as the broker). */
static int run_check_targets(struct run *r, char *err, size_t errlen)
{
	for (size_t i = 1; i < r->ntargets; i++) {
		char why[512], url[300];
		amqp_connection_state_t c = mq_open(&r->targets[i], 5000, why, sizeof(why));

		if (!c) {
			mq_format_url(&r->targets[i], url, sizeof(url));
			return log_seterr(err, errlen, "cluster node %zu of %zu (%s): %s; check broker.url", i + 1,
					  r->ntargets, url, why);
		}
		mq_close(c);
	}
	return 0;
}

static int run_broker(struct run *r, char *err, size_t errlen)
{
	const struct scenario *sc = &r->sc;
	amqp_connection_state_t c;
	char why[512];

	if (sc->cluster.nodes > 1) {
		if (run_cluster(r, err, errlen) < 0)
			return -1;
	} else if (strchr(sc->broker.url, ',')) {
		if (run_url_list(r, err, errlen) < 0)
			return -1;
	} else if (strcmp(sc->broker.url, "embedded") == 0) {
		/* a run that kills its broker, configures it (consumer_timeout) or alarms it gets a node of its own,
		 * never the shared one */
		if (!sc->faults.broker_crash_every_ns && !sc->broker.consumer_timeout_ns && !sc->faults.memory_alarm_until_ns &&
		    broker_find_persistent(r->broker_url, sizeof(r->broker_url)) == 0) {
			if (!r->quiet)
				log_line("using the node of `dupsim broker start` at %s", r->broker_url);
		} else {
			struct node_opts o = { .quiet = r->quiet };
			struct rabbitmq_conf rc = { .consumer_timeout_ms = sc->broker.consumer_timeout_ns / NS_PER_MS };

			if (!r->quiet)
				log_line("starting a private RabbitMQ node (dupsim broker start keeps one up between runs)");
			if (rabbitmq_new(&r->broker, &o, &rc, why, sizeof(why)) < 0)
				return log_seterr(err, errlen, "could not start a private RabbitMQ node: %s", why);
			snprintf(r->broker_url, sizeof(r->broker_url), "%s", node_url(r->broker));
		}
	} else {
		snprintf(r->broker_url, sizeof(r->broker_url), "%s", sc->broker.url);
	}
	if (mq_parse_url(r->broker_url, &r->target, why, sizeof(why)) < 0)
		return log_seterr(err, errlen, "%s: broker.url: %s", sc->path, why);
	c = mq_open(&r->target, 5000, why, sizeof(why));
	if (!c)
		return log_seterr(err, errlen,
				"broker %s: %s; check broker.url, or use broker.url = embedded for a private node",
				r->broker_url, why);
	mq_close(c);
	if (r->ntargets == 0)
		r->targets[r->ntargets++] = r->target;
	return run_check_targets(r, err, errlen);
}

/* [proxy] api: the control API on the run's proxy (proxy/api.h), loopback unless a host is named. */
static int run_api(struct run *r, char *err, size_t errlen)
{
	char host[SCENARIO_STR_MAX + 1], why[256];
	uint16_t port;

	if (parse_listen_addr(r->sc.proxy.api, host, sizeof(host), &port) < 0) /* scenario.c checked it */
		return log_seterr(err, errlen, "proxy.api '%s': expected [HOST:]PORT", r->sc.proxy.api);
	if (api_new(&r->api, r->proxy, host, port, why, sizeof(why)) < 0)
		return log_seterr(err, errlen, "control API on %s: %s; choose another proxy.api", r->sc.proxy.api, why);
	if (!r->quiet)
		log_line("control API at http://%s:%u/ (GET /rules, POST /rules, POST /cut, GET /stats; no auth)", host,
			 api_port(r->api));
	return 0;
}

static int run_proxy(struct run *r, char *err, size_t errlen)
{
	/* consumers on test hosts reach it on dupsim's end of the hub */
	const char *hub = consumerhosts_serve_addr(&r->chosts), *listen = hub ? hub : "127.0.0.1";
	struct proxy_config cfg = {
		.listen_host = listen,
		.upstream_host = r->target.host,
		.upstream_port = r->target.port,
		.seed = r->sc.run.seed,
		.quiet = true,
		.on_fault = run_on_fault,
		.on_fault_arg = r,
	};
	struct relay_upstream more[WORKLOAD_VIA_MAX];
	char why[256];

	for (size_t i = 1; i < r->ntargets; i++) /* a listener per other node of a cluster */
		more[i - 1] = (struct relay_upstream){ .host = r->targets[i].host, .port = r->targets[i].port };
	cfg.more = more;
	cfg.nmore = r->ntargets ? r->ntargets - 1 : 0;
	if (scenario_rules(&r->sc, &r->rules, &r->rule_count, why, sizeof(why)) < 0)
		return log_seterr(err, errlen, "%s", why);
	for (size_t i = 0; i < r->rule_count; i++) /* configured rule i is source i */
		if (run_source(r, i, r->rules[i].text) != (int32_t)i)
			return log_seterr(err, errlen, "out of memory");
	cfg.rules = r->rules;
	cfg.rule_count = r->rule_count;
	if (scenario_has_app(&r->sc)) {
		struct appview_config vc = {
			.ledger = &r->ledger, .events = &r->events, .w = &r->rc,
			.ids = { .messages = r->sc.run.messages }, .instances = (unsigned)r->sc.app.instances,
			.dir = r->out_dir, .owner = app_owner, .owner_arg = &r->app,
		};

		if (appview_new(&r->view, &vc, err, errlen) < 0)
			return -1;
		cfg.tap = appview_tap(r->view);
	}
	if (proxy_new(&r->proxy, &cfg, why, sizeof(why)) < 0 || proxy_start(r->proxy) < 0)
		return log_seterr(err, errlen, "fault proxy: %s", why);
	if (r->sc.proxy.api[0] && run_api(r, err, errlen) < 0)
		return -1;
	r->rc.via = r->target;
	snprintf(r->rc.via.host, sizeof(r->rc.via.host), "%s", listen);
	r->rc.via.port = proxy_port(r->proxy);
	if (r->ntargets > 1) {
		for (size_t i = 0; i < r->ntargets; i++) {
			r->rc.vias[i] = r->targets[i];
			snprintf(r->rc.vias[i].host, sizeof(r->rc.vias[i].host), "%s", listen);
			r->rc.vias[i].port = proxy_port_of(r->proxy, i);
		}
		r->rc.nvia = r->ntargets;
	}
	return 0;
}

/* ---- results ---- */

struct run_report {
	struct ledger_totals t;
	struct events_summary ev;      /* the fault events and what each caused */
	struct evidence_interval miss; /* the headline: over fault events */
	struct stats_interval miss_indep; /* secondary: duplicates as independent trials (too narrow) */
	bool has_dup_band, dup_band_by_ahead; /* by_ahead: lost acks counted at the spread of ahead */
	double dup_lo, dup_hi;	       /* band on duplicate deliveries, over fault events */
	const char *excess_source;     /* where excess_copies comes from: "deliveries" or "queue" */
	uint64_t queue_copies;	       /* publish-only: copies found in the queue */
	struct model_in model_in;
	struct model_out model;
	struct model_out model_given; /* the same model at the loss fractions the proxy applied */
	struct proxy_stats px;
	size_t violations;
	char violation_text[1024];
	double duration_s, publish_s;
	double process_s; /* start to the last delivery: the active time of the consumers */
	uint64_t acks_dropped;	/* consumer Basic.Acks the proxy swallowed */
	double dup_per_lost_ack; /* duplicate deliveries beyond the excess copies, per lost ack; NAN: none lost */
};

/*
 * Whether a lost ack here makes k + ahead duplicates, ahead as the proxy
 * samples it: acks dropped with their connection or cut after, on a classic
 * queue, by dupsim's consumers. A hanging ack, a quorum queue's settles or a
 * user's app break that.
 */
static bool run_acks_sized_by_ahead(const struct run *r, const struct run_report *rep)
{
	if (!rep->px.acks_sampled || !rep->px.acks_hit || scenario_has_app(&r->sc) ||
	    r->sc.broker.queue_type == SCENARIO_QUEUE_QUORUM)
		return false;
	for (size_t i = 0; i < r->rule_count; i++)
		if (r->rules[i].method == AMQP_BASIC_ACK_METHOD && r->rules[i].from != RULE_FROM_BROKER &&
		    r->rules[i].action == RULE_DROP && r->rules[i].then == RULE_THEN_HANG)
			return false;
	return true;
}

/*
 * The band on duplicate deliveries: compound Poisson over the events, a lost
 * ack's squared size from the spread of ahead over every ack where that
 * makes its size (evidence.h): E[(c + a)²] = c² + 2c·E[a] + E[a²], c the
 * lost acks' duplicates beyond their ahead, on average.
 */
static void run_dup_band(const struct run *r, struct run_report *rep)
{
	bool *ack = NULL;
	double size_sq = NAN, dups = 0, a1, a2, c;

	if (run_acks_sized_by_ahead(r, rep) && (ack = calloc(rep->ev.n ? rep->ev.n : 1, sizeof(*ack)))) {
		for (size_t i = 0; i < rep->ev.n; i++)
			if ((ack[i] = rep->ev.unit[i].kind == EVENTS_LOST_ACK))
				dups += (double)rep->ev.ev[i].dups;
		a1 = (double)rep->px.ahead_sum / (double)rep->px.acks_sampled;
		a2 = (double)rep->px.ahead_sq_sum / (double)rep->px.acks_sampled;
		c = (dups - (double)rep->px.ahead_hit_sum) / (double)rep->px.acks_hit;
		c = c > 0 ? c : 0;
		size_sq = c * c + 2 * c * a1 + a2;
	}
	rep->dup_band_by_ahead = isfinite(size_sq);
	rep->has_dup_band =
		evidence_count_band_sized(rep->ev.ev, rep->ev.n, ack, size_sq, 0.95, &rep->dup_lo, &rep->dup_hi);
	free(ack);
}

/*
 * The fault events and every interval over them. Every duplicate delivery
 * belongs to exactly one event, and every miss to the event of its
 * duplicate: both are invariants, checked here beside the ledger's.
 */
static void run_evidence(struct run *r, struct run_report *rep)
{
	size_t used = strlen(rep->violation_text);

	if (events_summarise(&r->events, &rep->ev) < 0) {
		rep->violations++;
		snprintf(rep->violation_text + used, sizeof(rep->violation_text) - used,
			 "the fault events could not be kept or read back (memory, or the spill file in $TMPDIR): "
			 "the intervals are incomplete\n");
	} else if (!rep->t.saturated &&
		   (rep->ev.dups != rep->t.duplicate_deliveries || rep->ev.misses != rep->t.duplicates_processed)) {
		rep->violations++;
		snprintf(rep->violation_text + used, sizeof(rep->violation_text) - used,
			 "fault events hold %" PRIu64 " duplicates and %" PRIu64 " misses, the ledger %" PRIu64
			 " and %" PRIu64 "\n",
			 rep->ev.dups, rep->ev.misses, rep->t.duplicate_deliveries, rep->t.duplicates_processed);
	}
	evidence_ratio(rep->ev.ev, rep->ev.n, 0.95, &rep->miss);
	stats_proportion(rep->t.duplicates_processed, rep->t.duplicate_deliveries, 0.95, &rep->miss_indep);
	run_dup_band(r, rep);
}

static bool run_publishers_gave_up(const struct run *r)
{
	for (size_t i = 0; r->pubs && i < r->sc.publishers.count; i++)
		if (r->pubs[i].gave_up)
			return true;
	return false;
}

/*
 * Publish-only runs: nobody delivered anything, so the copies are counted in
 * the queue itself (the truth after lost CommitOks, lost confirms and broker
 * crashes alike). Consumes everything without acking, counts the copies of
 * each message, then closes: unacked messages go back to the queue, so
 * keep_queue keeps them. excess_copies = Σ (copies − 1).
 */
static void run_count_queue(struct run *r, struct run_report *rep)
{
	uint16_t *copies = calloc(r->ledger.count ? r->ledger.count : 1, sizeof(*copies));
	struct msgid_space ids = workload_ids(&r->rc);
	amqp_connection_state_t c;
	uint64_t seen = 0, excess = 0;
	char err[256];

	rep->excess_source = "queue: not counted";
	c = copies ? run_direct(r, err, sizeof(err)) : NULL;
	if (!c)
		goto out;
	if (!amqp_basic_qos(c, 1, 0, 0, 0)) /* no prefetch bound: nothing is acked, all must come */
		goto out;
	amqp_basic_consume(c, 1, amqp_cstring_bytes(r->sc.broker.queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
	if (!mq_ok(amqp_get_rpc_reply(c)))
		goto out;
	for (;;) {
		struct timeval tv = { .tv_sec = 0, .tv_usec = 500000 };
		amqp_envelope_t e;
		amqp_rpc_reply_t rr;
		size_t m;

		amqp_maybe_release_buffers(c);
		rr = amqp_consume_message(c, &e, &tv, 0);
		if (!mq_ok(rr))
			break; /* idle for 0.5 s: the queue is read */
		if ((e.message.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) &&
		    msgid_parse(&ids, e.message.properties.message_id.bytes, e.message.properties.message_id.len,
				&m) == 0) {
			if (copies[m] < UINT16_MAX)
				copies[m]++;
			seen++;
		}
		amqp_destroy_envelope(&e);
	}
	for (size_t i = 0; i < r->ledger.count; i++)
		excess += copies[i] > 1 ? copies[i] - 1u : 0;
	rep->t.excess_copies = excess;
	rep->queue_copies = seen;
	rep->excess_source = "queue";
out:
	mq_close(c);
	free(copies);
}

/* issue 13: slow deliveries end sessions by the broker's timeouts, which the model does not predict. */
static void run_model_timeouts(const struct scenario *sc, struct model_in *mi)
{
	if (scenario_has_app(sc) || sc->consumers.slow <= 0)
		return;
	if (sc->broker.consumer_timeout_ns && sc->consumers.slow_work_ns > sc->broker.consumer_timeout_ns)
		snprintf(mi->unmodelled, sizeof(mi->unmodelled),
			 "slow deliveries past the consumer timeout (consumers.slow, broker.consumer_timeout)");
	else if (sc->consumers.heartbeat_ns && sc->consumers.slow_work_ns >= 2 * sc->consumers.heartbeat_ns)
		snprintf(mi->unmodelled, sizeof(mi->unmodelled),
			 "slow deliveries that miss heartbeats (consumers.slow, consumers.heartbeat)");
}

/* issue 13: the application's nacks, the memory alarm and DLQ replays are not modelled. */
static void run_model_requeue(const struct scenario *sc, struct model_in *mi)
{
	if (sc->consumers.nack_requeue > 0)
		snprintf(mi->unmodelled, sizeof(mi->unmodelled), "nacks with requeue (consumers.nack_requeue)");
	if (sc->faults.memory_alarm_until_ns)
		snprintf(mi->unmodelled, sizeof(mi->unmodelled), "the memory alarm (faults.memory_alarm)");
	if (sc->faults.dlq_replay_after_ns)
		snprintf(mi->unmodelled, sizeof(mi->unmodelled), "DLQ replays (faults.dlq_replay_after)");
}

/*
 * The model's prediction for this run (sim/analysis/model.c): the scenario's keys, the
 * rules the proxy applied, and two figures the proxy measured during normal
 * operation (deliveries ahead of each ack, confirm frames per publish).
 */
static void run_model(const struct run *r, struct run_report *rep)
{
	const struct scenario *sc = &r->sc;
	struct model_in *mi = &rep->model_in;
	uint64_t confirms = rep->px.method_seen[PROXY_TO_CLIENT][frame_method_index(AMQP_BASIC_ACK_METHOD)] +
			    rep->px.method_seen[PROXY_TO_CLIENT][frame_method_index(AMQP_BASIC_NACK_METHOD)];

	*mi = (struct model_in){
		.confirm_mode = sc->publishers.mode == SCENARIO_MODE_CONFIRM,
		.batch = (unsigned)sc->publishers.batch,
		.ack_every = scenario_has_app(sc) ? 1 : (unsigned)sc->consumers.ack_every,
		.consumers = (unsigned)run_consumers(r),
		.ahead = rep->px.acks_sampled ? (double)rep->px.ahead_sum / (double)rep->px.acks_sampled : NAN,
		.ahead_sq = rep->px.acks_sampled ? (double)rep->px.ahead_sq_sum / (double)rep->px.acks_sampled : NAN,
		.committed = (double)rep->t.committed,
		.confirms_per_msg = confirms && rep->t.publish_attempts
					    ? (double)confirms / (double)rep->t.publish_attempts
					    : NAN,
	};
	model_in_from_rules(mi, r->rules, r->rule_count);
	if (sc->broker.queue_type == SCENARIO_QUEUE_QUORUM && mi->consumers && (mi->ack_dropped > 0 || mi->ack_cut > 0))
		snprintf(mi->unmodelled, sizeof(mi->unmodelled),
			 "ack loss on a quorum queue (its settles go through its log: acks in flight at a cut are "
			 "redelivered too)");
	if (sc->faults.consumer_crash > 0)
		snprintf(mi->unmodelled, sizeof(mi->unmodelled), "consumer crashes (faults.consumer_crash)");
	if (scenario_has_app(sc) && sc->app.crash_every_ns)
		snprintf(mi->unmodelled, sizeof(mi->unmodelled), "app crashes (app.crash_every)");
	if (r->nsources > r->rule_count + run_own_sources(r))
		snprintf(mi->unmodelled, sizeof(mi->unmodelled), "faults the control API made (its rules, POST /cut)");
	if (sc->faults.broker_crash_every_ns)
		snprintf(mi->unmodelled, sizeof(mi->unmodelled), "broker crashes (faults.broker_crash_every)");
	if (sc->cluster.leader_kill_ns || sc->cluster.partition_until_ns || sc->cluster.bridge_until_ns)
		snprintf(mi->unmodelled, sizeof(mi->unmodelled),
			 "a cluster's failovers (faults.leader_kill, faults.partition, faults.bridge)");
	run_model_timeouts(sc, mi);
	run_model_requeue(sc, mi);
	model_predict(mi, &rep->model);
	{
		struct model_in given;

		if (model_in_realized(&given, mi, r->rules, r->rule_count, rep->px.rule_matched, rep->px.rule_fired) == 0) {
			/* the acks the faults hit: how far ahead the broker was at those, not on average */
			if (rep->px.acks_hit) {
				given.ahead = (double)rep->px.ahead_hit_sum / (double)rep->px.acks_hit;
				given.ahead_sq = (double)rep->px.ahead_hit_sq_sum / (double)rep->px.acks_hit;
			}
			model_predict(&given, &rep->model_given);
		} else {
			rep->model_given = (struct model_out){ .duplicate_rate = NAN };
		}
	}
}

/* Measured: the mean duplicates of the fault events a dropped consumer ack made; NAN: none. */
static double run_dups_per_lost_ack(const struct run_report *rep)
{
	uint64_t n = 0, d = 0;

	for (size_t i = 0; i < rep->ev.n; i++)
		if (rep->ev.unit[i].kind == EVENTS_LOST_ACK) {
			n++;
			d += rep->ev.ev[i].dups;
		}
	return n ? (double)d / (double)n : NAN;
}

static const char *run_status(const struct run *r, const struct run_report *rep)
{
	if (r->interrupted)
		return "interrupted";
	if (r->view && app_failure(&r->app))
		return "app_failed";
	if (rep->violations)
		return "invariant_violation";
	if (r->crashes.lost)
		return "broker_restart_failed";
	if (run_publishers_gave_up(r))
		return "publisher_gave_up";
	if (r->drain_timed_out)
		return "drain_timeout";
	return "ok";
}

/* issue 13: what reached the dead-letter queue, only when there is one. */
static void run_fill_cluster(struct results *res, const struct run *r, const struct run_report *rep)
{
	const struct cluster_faults *f = &r->cfaults;

	if (r->ntargets < 2)
		return;
	for (size_t i = 0; i < r->ntargets && i < 8; i++)
		res->cluster.connections[i] = (double)rep->px.conns_by_listener[i];
	res->cluster.nodes = (double)r->ntargets;
	res->cluster.leader_kills = (double)f->kills;
	res->cluster.partitions = (double)f->partitions;
	res->cluster.leader_killed = f->leader_at_kill >= 0 ? f->leader_at_kill + 1 : NAN;
	res->cluster.leader_after = f->leader_after_kill >= 0 ? f->leader_after_kill + 1 : NAN;
}

static void run_fill_dlq(struct results *res, const struct run *r, const struct run_report *rep)
{
	if (!r->dlq.name[0])
		return;
	res->dlq.dead_lettered = (double)(r->dlq.moved + r->dlq.left);
	res->dlq.replayed = (double)r->dlq.moved;
	res->dlq.left = (double)r->dlq.left;
	res->dlq.lost_in_dlq = (double)rep->t.lost_in_dlq;
}

/* The top level of the results: what was published, delivered, duplicated, lost. */
static void run_fill_counts(struct results *res, const struct run *r, const struct run_report *rep)
{
	const struct ledger_totals *t = &rep->t;
	double committed = (double)t->committed;

	snprintf(res->scenario, sizeof(res->scenario), "%s", r->sc.run.name);
	res->seed = r->sc.run.seed;
	res->seed_known = true;
	snprintf(res->status, sizeof(res->status), "%s", run_status(r, rep));
	res->interrupted = r->interrupted;
	res->drained = r->drained;
	res->messages = (double)t->messages;
	res->published = (double)t->published;
	res->committed = committed;
	res->publish_attempts = (double)t->publish_attempts;
	res->excess_copies = (double)t->excess_copies;
	snprintf(res->excess_copies_from, sizeof(res->excess_copies_from), "%s", rep->excess_source);
	res->deliveries = (double)t->deliveries;
	res->duplicate_deliveries = (double)t->duplicate_deliveries;
	res->duplicates_processed = (double)t->duplicates_processed;
	res->lost = (double)t->lost;
	res->wrongly_suppressed = (double)t->wrongly_suppressed;
	res->duplicate_rate = committed > 0 ? (double)t->duplicate_deliveries / committed : 0;
	if (rep->has_dup_band && committed > 0) {
		res->duplicate_rate_low = rep->dup_lo / committed;
		res->duplicate_rate_high = rep->dup_hi / committed;
		res->band_by_ahead = rep->dup_band_by_ahead;
	}
	res->fault_events = (double)rep->ev.with_dups;
	for (int k = 1; k < EVENTS_KINDS; k++)
		res->fault_events_by_kind[k] = (double)rep->ev.by_kind[k];
	for (int c = 0; c < LEDGER_CAUSES; c++)
		res->misses_by_cause[c] = (double)t->misses[c];
	run_fill_dlq(res, r, rep);
	run_fill_cluster(res, r, rep);
}

/* The miss probability over fault events, and the too-narrow one over duplicates. */
static void run_fill_miss(struct results *res, const struct run_report *rep)
{
	const struct evidence_interval *iv = &rep->miss;

	res->miss.estimate = iv->estimate;
	res->miss.ci_low = iv->has_interval ? iv->low : NAN;
	res->miss.ci_high = iv->has_interval ? iv->high : NAN;
	snprintf(res->miss.method, sizeof(res->miss.method), "%s", iv->method);
	res->miss.confidence = iv->confidence;
	res->miss.misses = (double)iv->misses;
	res->miss.trials = (double)iv->dups;
	res->miss.events = (double)iv->events;
	res->miss.design_effect = iv->deff;
	res->miss.effective_trials = iv->n_eff;
	snprintf(res->miss.reason, sizeof(res->miss.reason), "%s", iv->reason);
	res->miss.independent_low = rep->miss_indep.low;
	res->miss.independent_high = rep->miss_indep.high;
	snprintf(res->miss.independent_method, sizeof(res->miss.independent_method), "%s", rep->miss_indep.method);
}

/* The model's prediction; NaN where it has none. */
static void run_fill_predicted(struct results *res, const struct run_report *rep)
{
	bool p = rep->model.predicted;

	res->predicted.duplicate_rate = p ? rep->model.duplicate_rate : NAN;
	res->predicted.duplicate_rate_sd = p ? rep->model.duplicate_rate_sd : NAN;
	res->predicted.ahead_at_faults =
		rep->px.acks_hit ? (double)rep->px.ahead_hit_sum / (double)rep->px.acks_hit : NAN;
	res->predicted.duplicate_rate_given_faults = rep->model_given.predicted ? rep->model_given.duplicate_rate : NAN;
	res->predicted.excess_copies_per_message = p ? rep->model.excess_copies_per_msg : NAN;
	res->predicted.excess_copies = p ? rep->model.excess_copies_per_msg * (double)rep->t.committed : NAN;
	res->predicted.duplicates_per_lost_ack = p && rep->model_in.ack_dropped > 0 ? rep->model.dups_per_lost_ack : NAN;
	snprintf(res->predicted.why_not, sizeof(res->predicted.why_not), "%s", rep->model.why);
	snprintf(res->predicted.assumes, sizeof(res->predicted.assumes), "%s", model_assumptions);
	res->predicted.ahead = rep->model_in.ahead;
	res->predicted.acks_sampled = (double)rep->px.acks_sampled;
	res->predicted.confirms_per_publish = rep->model_in.confirms_per_msg;
}

/* The faults: the proxy's counters per rule, faults.csv's rows per rule, the crashes. */
static void run_fill_faults(struct results *res, const struct run *r, const struct run_report *rep)
{
	const struct proxy_stats *px = &rep->px;

	res->faults.frames_dropped = (double)px->drops;
	res->faults.connections_cut = (double)px->cuts;
	res->faults.proxy_connections = (double)px->conns_accepted;
	res->faults.reconnects = (double)atomic_load(&r->rc.reconnects);
	res->faults.consumer_crashes = (double)atomic_load(&r->rc.consumer_crashes);
	res->faults.broker_crashes = (double)r->crashes.count;
	for (size_t i = 0; i < r->rule_count && i < px->rule_count; i++) {
		struct results_rule *ru = results_rule_add(res, r->rules[i].text);

		if (ru) {
			ru->in_summary = true;
			ru->matched = (double)px->rule_matched[i];
			ru->fired = (double)px->rule_fired[i];
		}
	}
	for (size_t i = r->rule_count; i < r->nsources; i++) { /* the control API's rules, once they fired */
		struct run_source *so = &r->sources[i];
		struct results_rule *ru;

		if (so->rule >= px->rule_count || !(ru = results_rule_add(res, so->text)))
			continue;
		ru->in_summary = true;
		ru->matched = (double)px->rule_matched[so->rule];
		ru->fired = (double)px->rule_fired[so->rule];
	}
	for (size_t i = 0; i < r->nsources; i++) {
		struct results_rule *ru = r->sources[i].rows ? results_rule(res, r->sources[i].text) : NULL;

		if (ru)
			ru->rows += r->sources[i].rows;
	}
	res->faults.commit_ok_dropped =
		(double)px->method_dropped[PROXY_TO_CLIENT][frame_method_index(AMQP_TX_COMMIT_OK_METHOD)];
	res->faults.confirms_dropped =
		(double)(px->method_dropped[PROXY_TO_CLIENT][frame_method_index(AMQP_BASIC_ACK_METHOD)] +
			 px->method_dropped[PROXY_TO_CLIENT][frame_method_index(AMQP_BASIC_NACK_METHOD)]);
	res->faults.acks_dropped = (double)rep->acks_dropped;
	res->faults.duplicates_per_lost_ack = rep->dup_per_lost_ack;
}

/* issue 13: the store's own faults and how the consumers bore them. */
static void run_fill_store(struct results *res, const struct run *r)
{
	const struct store_faults *f = &r->store_faults;
	long long ev = r->redis ? redis_info_number(r->redis, "evicted_keys") : -1;

	if (scenario_has_app(&r->sc) || r->sc.dedup.store == SCENARIO_STORE_NONE)
		return;
	res->store.stalls = (double)atomic_load(&r->rc.store_stalls);
	res->store.stalled_ms = (double)atomic_load(&r->rc.store_stalled_ns) / 1e6;
	if (!r->redis)
		return;
	res->store.restarts = (double)f->restarts;
	res->store.down_ms = (double)f->down_ns / 1e6;
	if (ev >= 0)
		res->store.redis_evicted_keys = (double)ev;
}

/* Throughput, latency, gaps, the dedup store, the invariants, and what the plots need. */
static void run_fill_perf(struct results *res, const struct run *r, const struct run_report *rep)
{
	static const char *const stores[] = { "none", "memory", "redis", "tokyocabinet", "postgres" };
	const struct scenario *sc = &r->sc;
	const struct stats_hist *lat = &r->ledger.latency, *gaps = &r->ledger.gaps;
	double executions = (double)rep->t.executions;

	res->throughput.duration_s = rep->duration_s;
	res->throughput.publish_s = rep->publish_s;
	res->throughput.published_per_s = rep->publish_s > 0 ? (double)rep->t.publish_attempts / rep->publish_s : 0;
	res->throughput.process_s = rep->process_s;
	res->throughput.processed_per_s = rep->process_s > 0 ? executions / rep->process_s : 0;
	res->latency_ms.p50 = stats_hist_quantile(lat, 0.50) / 1e6;
	res->latency_ms.p90 = stats_hist_quantile(lat, 0.90) / 1e6;
	res->latency_ms.p99 = stats_hist_quantile(lat, 0.99) / 1e6;
	res->latency_ms.p999 = stats_hist_quantile(lat, 0.999) / 1e6;
	res->latency_ms.max = lat->max / 1e6;
	res->gap_ms.count = (double)gaps->count;
	res->gap_ms.p50 = stats_hist_quantile(gaps, 0.50) / 1e6;
	res->gap_ms.p99 = stats_hist_quantile(gaps, 0.99) / 1e6;
	res->gap_ms.max = gaps->max / 1e6;
	res->dedup.known = true;
	snprintf(res->dedup.store, sizeof(res->dedup.store), "%s", stores[sc->dedup.store]);
	snprintf(res->dedup.scope, sizeof(res->dedup.scope), "%s", sc->dedup.scope == SCENARIO_SCOPE_SHARED ? "shared" : "local");
	snprintf(res->dedup.mark, sizeof(res->dedup.mark), "%s", sc->dedup.mark == SCENARIO_MARK_BEFORE ? "before" : "after");
	res->dedup.lookups = (double)atomic_load(&r->rc.lookups);
	res->dedup.inserts = (double)atomic_load(&r->rc.inserts);
	res->dedup.errors = (double)atomic_load(&r->rc.store_errors);
	res->dedup.store_latency_us_p50 = stats_hist_quantile(&r->rc.store_latency, 0.5) / 1e3;
	res->dedup.store_latency_us_p99 = stats_hist_quantile(&r->rc.store_latency, 0.99) / 1e3;
	clock_fmt_duration(sc->dedup.ttl_ns, res->dedup.ttl, sizeof(res->dedup.ttl)); /* as scenario.ini has them */
	snprintf(res->dedup.capacity, sizeof(res->dedup.capacity), "%" PRIu64, sc->dedup.capacity);
	res->dedup.ttl_ms = (double)sc->dedup.ttl_ns / 1e6;
	run_fill_store(res, r);
	res->invariants.violations = (double)rep->violations;
	snprintf(res->invariants.detail, sizeof(res->invariants.detail), "%s", rep->violation_text);
	res->invariants.foreign_deliveries = (double)rep->t.foreign;
	res->has_rows[RESULTS_TIMESERIES] = r->tick_count > 0;
	res->has_rows[RESULTS_GAPS] = gaps->count > 0;
	res->has_rows[RESULTS_CURVE] = r->curve_count > 0;
	for (int c = 0; c < 34; c++)
		res->has_rows[RESULTS_COPIES] |= rep->t.copies_hist[c] > 0;
	for (size_t i = 0; i < r->curve_count; i++) {
		results_minpos(&res->curve_min, r->curve[i].estimate);
		results_minpos(&res->curve_min, r->curve[i].low);
		results_minpos(&res->curve_min, r->curve[i].high);
	}
}

/* [app]: the app's own counts; its dedup is out of sight, so the dedup figures say "unknown" (NaN). */
static void run_fill_app(struct results *res, const struct run *r)
{
	const struct appview_totals *t = &r->app_totals;

	if (!r->view)
		return;
	res->app.on = true;
	snprintf(res->app.command, sizeof(res->app.command), "%s", r->sc.app.consumer);
	res->app.n = (struct results_app_counts){
		.instances = (double)r->sc.app.instances, .kills = (double)r->app.kills, .exits = (double)r->app.exits,
		.restarts = (double)r->app.restarts, .connections = (double)t->conns,
		.connections_unmapped = (double)t->conns_unmapped, .deliveries = (double)t->deliveries,
		.redelivered = (double)t->redelivered, .acks = (double)t->acks, .nacks = (double)t->nacks,
		.abandoned = (double)t->abandoned, .judged_late = (double)t->judged_late,
		.effect_lines = (double)t->effect_lines, .effects_foreign = (double)t->effects_foreign,
		.effects_unmatched = (double)t->effects_unmatched,
	};
	snprintf(res->dedup.store, sizeof(res->dedup.store), "%s",
		 r->sc.dedup.store == SCENARIO_STORE_REDIS      ? "app+redis"
		 : r->sc.dedup.store == SCENARIO_STORE_POSTGRES ? "app+postgres"
								: "app");
	res->dedup.scope[0] = res->dedup.mark[0] = res->dedup.ttl[0] = res->dedup.capacity[0] = '\0';
	res->dedup.lookups = res->dedup.inserts = res->dedup.errors = NAN;
	res->dedup.store_latency_us_p50 = res->dedup.store_latency_us_p99 = res->dedup.ttl_ms = NAN;
	res->faults.consumer_crashes = (double)r->app.kills;
}

/*
 * The miss-probability-vs-TTL curve predicted from the duplicate gaps: an
 * exact cache whose keys live TTL after the first accepted copy misses a
 * duplicate exactly when its gap exceeds TTL, so P(miss | TTL) = P(gap > TTL),
 * with a 95 % interval over fault events (the duplicates of one event share
 * their gaps). Log-spaced TTLs from 0.1 ms to twice the longest gap. No
 * interval (NaN bounds) with fewer than 20 events. Into r->curve.
 */
static void run_curve(struct run *r, const struct run_report *rep)
{
	const struct events_summary *s = &rep->ev;
	uint64_t *x = malloc((s->n ? s->n : 1) * sizeof(*x)), *d = malloc((s->n ? s->n : 1) * sizeof(*d));
	uint32_t max_us = 0;
	double hi_ms;
	size_t cap = 0;

	if (!s->gap_start || !x || !d || s->dups == 0)
		goto out;
	for (size_t i = 0; i < s->gap_start[s->n]; i++)
		if (s->gaps_us[i] > max_us)
			max_us = s->gaps_us[i];
	hi_ms = 2.0 * max_us / 1e3;
	if (hi_ms < 1)
		hi_ms = 1;
	for (double ttl_ms = 0.1; ttl_ms <= hi_ms * 1.0001; ttl_ms *= 1.1892071150027210667) { /* 4 per octave */
		struct evidence_interval iv;

		if (r->curve_count == cap) {
			struct csv_curve_point *np = realloc(r->curve, (cap ? cap * 2 : 64) * sizeof(*np));

			if (!np)
				break;
			r->curve = np;
			cap = cap ? cap * 2 : 64;
		}
		events_summary_above(s, ttl_ms * 1e3, x, d);
		evidence_ratio2(x, d, s->n, 0.95, &iv);
		r->curve[r->curve_count++] = (struct csv_curve_point){
			.ttl_ms = ttl_ms,
			.estimate = iv.estimate,
			.low = iv.has_interval ? iv.low : NAN,
			.high = iv.has_interval ? iv.high : NAN,
			.dups = iv.dups,
			.events = iv.events,
		};
	}
out:
	free(x);
	free(d);
}

/* What the results files are written from. */
struct run_out {
	const struct run *r;
	const struct run_report *rep;
	const struct results *res;
};

static const char *run_rule_text(void *arg, int32_t rule)
{
	const struct run *r = arg;

	return rule >= 0 && (size_t)rule < r->nsources ? r->sources[rule].text : "";
}

static void run_write_scenario(FILE *f, const struct run_out *o)
{
	scenario_write(&o->r->sc, f);
}

static void run_write_timeseries(FILE *f, const struct run_out *o)
{
	csv_write_timeseries(f, o->r->ticks, o->r->tick_count);
}

static void run_write_gaps(FILE *f, const struct run_out *o)
{
	stats_hist_write_csv(&o->r->ledger.gaps, f, "ms", 1e6);
}

static void run_write_curve(FILE *f, const struct run_out *o)
{
	csv_write_curve(f, o->r->curve, o->r->curve_count);
}

static void run_write_copies(FILE *f, const struct run_out *o)
{
	csv_write_copies(f, o->rep->t.copies_hist);
}

static void run_write_events(FILE *f, const struct run_out *o)
{
	events_write_csv(&o->rep->ev, f, o->r->start_ns, run_rule_text, (void *)o->r);
}

/* faults.csv: the rows run_on_fault spilled as the faults happened. */
static void run_write_faults(FILE *f, const struct run_out *o)
{
	FILE *spill = o->r->fault_spill;

	fprintf(f, "t_s,rule,from\n");
	if (spill && fflush(spill) == 0 && fseek(spill, 0, SEEK_SET) == 0) {
		char buf[8192];
		size_t n;

		while ((n = fread(buf, 1, sizeof(buf), spill)) > 0)
			fwrite(buf, 1, n, f);
		fseek(spill, 0, SEEK_END);
	}
}

/*
 * periods.csv: the warm-up, each scheduled rule's window, the windows of the
 * run's own faults (a broker or a member down, a partition, the memory
 * alarm, the store down; one still on at the end ends there), the cool-down
 * (from the publishers' end to the run's).
 */
static void run_write_periods(FILE *f, const struct run_out *o)
{
	const struct run *r = o->r;
	const struct scenario *sc = &r->sc;
	struct csv_period *p = calloc(r->rule_count + r->nperiods + 2, sizeof(*p));
	size_t n = 0;

	if (!p) {
		fputs("start_s,end_s,label\n", f);
		return;
	}
	if (sc->faults.warmup_ns)
		p[n++] = (struct csv_period){ 0, (double)sc->faults.warmup_ns / NS_PER_S, "warmup" };
	for (size_t i = 0; i < r->rule_count; i++)
		if (r->rules[i].until_ns)
			p[n++] = (struct csv_period){ (double)r->rules[i].from_ns / NS_PER_S,
						      (double)r->rules[i].until_ns / NS_PER_S, r->rules[i].text };
	for (size_t i = 0; i < r->nperiods; i++) {
		const struct run_period *w = &r->periods[i];
		uint64_t until = w->until_ns ? w->until_ns : r->end_ns;

		p[n++] = (struct csv_period){ (double)(w->from_ns - r->start_ns) / NS_PER_S,
					      (double)(until - r->start_ns) / NS_PER_S, w->label };
	}
	if (sc->faults.cooldown_ns && r->publish_done_ns)
		p[n++] = (struct csv_period){ (double)(r->publish_done_ns - r->start_ns) / NS_PER_S,
					      (double)(r->end_ns - r->start_ns) / NS_PER_S, "cooldown" };
	csv_write_periods(f, p, n);
	free(p);
}

static void run_write_summary(FILE *f, const struct run_out *o)
{
	results_write_summary(o->res, f);
}

/*
 * Writes every results file, each through a memory stream and then
 * atomically (temp + rename). A file that can't be written (a full disk)
 * does not stop the others: what fits is kept. summary.json goes last, so
 * its presence means the rest was attempted. 0, or -1 naming the first
 * file that failed.
 */
static int run_write_results(struct run *r, const struct run_out *o, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		void (*write)(FILE *f, const struct run_out *o);
	} files[] = {
		{ "scenario.ini", run_write_scenario }, { "timeseries.csv", run_write_timeseries },
		{ "gaps.csv", run_write_gaps },		{ "curve.csv", run_write_curve },
		{ "copies.csv", run_write_copies },	{ "faults.csv", run_write_faults },
		{ "events.csv", run_write_events },	{ "periods.csv", run_write_periods },
		{ "summary.json", run_write_summary },
	};
	const char *failed = NULL;
	int failed_errno = 0;

	if (files_mkdir_p(r->out_dir, 0755) < 0)
		return log_seterr(err, errlen, "cannot create %s: %s", r->out_dir, strerror(errno));
	pthread_mutex_lock(&r->fault_lock);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char *buf = NULL, path[PATH_MAX + 64];
		size_t len = 0;
		FILE *f = open_memstream(&buf, &len);
		int ok = 0;

		if (f) {
			files[i].write(f, o);
			if (fclose(f) == 0) {
				snprintf(path, sizeof(path), "%s/%s", r->out_dir, files[i].name);
				ok = files_write_atomic(path, buf, len) == 0;
			}
		}
		if (!ok && !failed) {
			failed = files[i].name;
			failed_errno = errno;
		}
		free(buf);
	}
	pthread_mutex_unlock(&r->fault_lock);
	if (failed)
		return log_seterr(err, errlen, "writing %s/%s failed: %s (disk full?); the files before it are kept",
				  r->out_dir, failed, strerror(failed_errno));
	return 0;
}

/* results/latest -> the newest run folder, replaced atomically. */
static void run_link_latest(const char *dir)
{
	const char *slash = strrchr(dir, '/');
	char parent[PATH_MAX], tmp[PATH_MAX + 32], link[PATH_MAX + 16];

	if (!slash)
		return;
	snprintf(parent, sizeof(parent), "%.*s", (int)(slash - dir), dir);
	snprintf(tmp, sizeof(tmp), "%s/.latest.%d", parent, (int)getpid());
	snprintf(link, sizeof(link), "%s/latest", parent);
	unlink(tmp);
	if (symlink(slash + 1, tmp) == 0 && rename(tmp, link) < 0)
		unlink(tmp);
}

/* The console's lines about how the run ended that summary.json holds only as its status. */
static void run_notes(const struct run *r, FILE *f)
{
	if (r->crashes.lost)
		fprintf(f, "  the killed broker could not be restarted (%d tries): the run ended early\n",
			CRASHES_RESTART_TRIES);
	for (size_t i = 0; r->pubs && i < r->sc.publishers.count; i++)
		if (r->pubs[i].gave_up)
			fprintf(f, "  publisher %zu found no broker for run.drain_timeout and gave up: %s\n", i,
				r->pubs[i].error);
	if (r->drain_timed_out)
		fprintf(f, "  the queue did not drain within run.drain_timeout\n");
}

static void run_print_summary(const struct run *r, const struct results *res)
{
	char *notes = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&notes, &len);

	if (f) {
		run_notes(r, f);
		if (fclose(f) != 0) {
			free(notes);
			notes = NULL;
		}
	}
	console_print(stdout, res, r->out_dir, notes ? notes : "");
	free(notes);
}

static void run_release(struct run *r)
{
	app_stop(&r->app);
	api_free(r->api); /* first: its requests use the proxy */
	if (r->proxy)
		proxy_free(r->proxy);
	app_release(&r->app);
	appview_free(r->view);
	for (size_t i = 0; r->cons && !scenario_has_app(&r->sc) && i < r->sc.consumers.count; i++)
		if (r->cons[i].own_store)
			dedup_free(r->cons[i].store);
	dedup_free(r->rc.shared_store);
	node_free(r->redis);
	storehost_free(&r->storehost); /* after the redis on it */
	node_free(r->postgres);
	dedup_factory_release(&r->stores);
	free(r->pubs);
	free(r->cons);
	free(r->pub_threads);
	free(r->cons_threads);
	free(r->rules);
	if (r->fault_spill)
		fclose(r->fault_spill);
	free(r->ticks);
	free(r->curve);
	free(r->sources);
	free(r->periods);
	ledger_release(&r->ledger);
	events_release(&r->events);
	mq_abandon(r->lock); /* the lock queue goes with its connection */
	node_free(r->broker);
	cluster_free(r->cluster);
	hosts_free(r->hosts); /* after every node on them */
	scenario_release(&r->sc);
	pthread_mutex_destroy(&r->fault_lock);
}

static void run_cleanup_queue(struct run *r)
{
	char err[256];
	amqp_connection_state_t c;

	if (r->sc.broker.keep_queue || r->broker)
		return; /* a private node goes away with its queue */
	c = run_direct(r, err, sizeof(err));
	if (!c)
		return;
	amqp_queue_delete(c, 1, amqp_cstring_bytes(r->sc.broker.queue), 0, 0);
	if (r->dlq.name[0])
		amqp_queue_delete(c, 1, amqp_cstring_bytes(r->dlq.name), 0, 0);
	mq_close(c);
}

/* The command line and the scenario into r; -1 to go on, else the exit code. *out is --out or NULL. */
static int run_parse(struct run *r, int argc, char **argv, const char **out)
{
	static const struct option opts[] = {
		{ "set", required_argument, NULL, 's' }, { "out", required_argument, NULL, 'o' },
		{ "seed", required_argument, NULL, 'S' }, { "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },	  { NULL, 0, NULL, 0 },
	};
	const char *sets[SETS_MAX], *seed = NULL;
	size_t nsets = 0;
	char err[1024], seedset[64];
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "hq", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			if (nsets == SETS_MAX) {
				log_line("run: at most %d --set options", SETS_MAX);
				return EXIT_USAGE;
			}
			sets[nsets++] = optarg;
			break;
		case 'o':
			*out = optarg;
			break;
		case 'S':
			seed = optarg;
			break;
		case 'q':
			r->quiet = true;
			break;
		case 'h':
			run_usage(stdout);
			return EXIT_OK;
		default:
			run_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		log_line("run: expected one scenario FILE (e.g. scenarios/default.ini); see dupsim run --help");
		return EXIT_USAGE;
	}
	scenario_init_defaults(&r->sc, argv[optind]);
	if (scenario_load(&r->sc, argv[optind], err, sizeof(err)) < 0)
		goto usage_error;
	for (size_t i = 0; i < nsets; i++)
		if (scenario_set(&r->sc, sets[i], err, sizeof(err)) < 0)
			goto usage_error;
	if (seed) {
		snprintf(seedset, sizeof(seedset), "run.seed=%s", seed);
		if (scenario_set(&r->sc, seedset, err, sizeof(err)) < 0)
			goto usage_error;
	}
	if (scenario_check(&r->sc, err, sizeof(err)) < 0)
		goto usage_error;
	return -1;
usage_error:
	log_line("%s", err);
	scenario_release(&r->sc);
	return EXIT_USAGE;
}

/* The ledger (with the policy it judges by), the fault spill and the fault events. 0 or -1 with err. */
static int run_truth(struct run *r, char *err, size_t errlen)
{
	const struct scenario *sc = &r->sc;
	struct ledger_setup pol = {
		.store_none = sc->dedup.store == SCENARIO_STORE_NONE,
		.scope_local = sc->dedup.scope == SCENARIO_SCOPE_LOCAL,
		.ttl_ns = sc->dedup.ttl_ns,
		.capacity = sc->dedup.capacity,
		.crash_wipes_cache = sc->faults.consumer_crash > 0 && sc->dedup.store == SCENARIO_STORE_MEMORY &&
				     sc->dedup.scope == SCENARIO_SCOPE_LOCAL,
		.app = scenario_has_app(sc),
		.store_restarts = sc->store.restart_every_ns > 0,
		.store_evicts = sc->store.redis_maxmemory > 0,
	};

	if (ledger_init(&r->ledger, sc->run.messages, &pol) < 0)
		return log_seterr(err, errlen, "out of memory for a ledger of %" PRIu64 " messages", sc->run.messages);
	r->fault_spill = tmpfile();
	if (!r->fault_spill)
		return log_seterr(err, errlen, "cannot create a temporary file for faults.csv in $TMPDIR: %s",
				  strerror(errno));
	if (events_init(&r->events, err, errlen) < 0)
		return -1;
	r->ledger.events = &r->events;
	r->rc.events = &r->events;
	return 0;
}

/* [app]: the user's consumer instances, behind the proxy. 0 or -1 with err. */
static int run_start_app(struct run *r, char *err, size_t errlen)
{
	char url[512];
	struct app_config ac = { .sc = &r->sc, .dir = r->out_dir, .amqp_url = url,
				 .redis_url = r->app_redis_url[0] ? r->app_redis_url : NULL,
				 .pg_url = r->app_pg_url[0] ? r->app_pg_url : NULL, .view = r->view,
				 .proxy_port = r->rc.via.port,
				 .netns = r->chosts.n ? r->chosts.netns : NULL };

	mq_format_url(&r->rc.via, url, sizeof(url));
	if (!r->quiet)
		log_line("app: %" PRIu64 " instance%s of `%s`, through the proxy at %s; logs in %s/app-N.log",
			 r->sc.app.instances, r->sc.app.instances == 1 ? "" : "s", r->sc.app.consumer, url, r->out_dir);
	return app_start(&r->app, &ac, err, errlen);
}

/* Everything up to the first publish: stores, broker, queue, proxy, ledger, threads. 0 or -1 (said). */
static int run_setup(struct run *r)
{
	char err[1024];

	r->rc.sc = &r->sc;
	r->rc.ledger = &r->ledger;
	r->rc.per_publisher = (r->sc.run.messages + r->sc.publishers.count - 1) / r->sc.publishers.count;
	stats_hist_init(&r->rc.store_latency);
	if (run_hosts(r, err, sizeof(err)) < 0 || run_stores(r, err, sizeof(err)) < 0 ||
	    run_broker(r, err, sizeof(err)) < 0 || run_setup_queue(r, err, sizeof(err)) < 0 ||
	    run_proxy(r, err, sizeof(err)) < 0)
		goto fail;
	if (!r->quiet)
		log_line("run '%s': %" PRIu64 " messages, %" PRIu64 " publishers (%s), %" PRIu64
			 " consumers, %zu fault rule%s, broker %s, proxy %s:%u",
			 r->sc.run.name, r->sc.run.messages, r->sc.publishers.count,
			 r->sc.publishers.mode == SCENARIO_MODE_TX ? "tx" : "confirm", run_consumers(r),
			 r->rule_count, r->rule_count == 1 ? "" : "s", r->broker_url, r->rc.via.host, proxy_port(r->proxy));
	if (run_truth(r, err, sizeof(err)) < 0)
		goto fail;
	r->start_ns = r->ledger.t0_ns;
	crashes_init(&r->crashes, r->broker, &r->events, r->sc.faults.broker_crash_every_ns, r->sc.faults.broker_down_ns,
		     r->start_ns, r->sc.faults.warmup_ns);
	proxy_set_time_base(r->proxy, r->start_ns, r->sc.faults.warmup_ns); /* the timetable counts from here */
	alarm_init(&r->alarm, r->broker, &r->events, r->start_ns, r->sc.faults.memory_alarm_from_ns,
		   r->sc.faults.memory_alarm_until_ns, r->sc.publishers.timeout_ns + NS_PER_S);
	dlq_start(&r->dlq, &r->ledger, &r->events, workload_ids(&r->rc), r->start_ns);
	store_faults_init(&r->store_faults, r->redis, &r->ledger, &r->sc, r->start_ns);
	cluster_faults_init(&r->cfaults, r->cluster, &r->events, &r->sc, r->start_ns);
	atomic_store(&r->rc.last_delivery_ns, r->start_ns);
	if (scenario_has_app(&r->sc) && run_start_app(r, err, sizeof(err)) < 0)
		goto fail;
	if (run_start_threads(r, err, sizeof(err)) < 0) {
		run_stop_threads(r);
		goto fail;
	}
	return 0;
fail:
	log_line("run: %s", err);
	return -1;
}

/* After the drain: the ledger's totals, the evidence, the model, into rep. */
static void run_measure(struct run *r, struct run_report *rep)
{
	memset(rep, 0, sizeof(*rep));
	rep->excess_source = "deliveries";
	if (proxy_stats_get(r->proxy, &rep->px) < 0)
		log_line("run: out of memory for the proxy's rule counters; summary.json leaves them out");
	ledger_totals(&r->ledger, &rep->t);
	if (run_consumers(r) == 0 && !r->interrupted)
		run_count_queue(r, rep);
	rep->violations = ledger_check(&r->ledger, r->drained, rep->violation_text, sizeof(rep->violation_text));
	if (r->view && r->app_totals.effects_unmatched) {
		size_t used = strlen(rep->violation_text);

		rep->violations++;
		snprintf(rep->violation_text + used, sizeof(rep->violation_text) - used,
			 "%s%" PRIu64 " lines of the app's effects files match no delivery of their message to their "
			 "instance: the app wrote an effect after its ack, twice for one delivery, or for a message "
			 "it was not given\n", used ? "" : "", r->app_totals.effects_unmatched);
	}
	run_evidence(r, rep);
	run_model(r, rep);
	rep->duration_s = (double)(r->end_ns - r->start_ns) / NS_PER_S;
	rep->publish_s = (double)(r->publish_done_ns - r->start_ns) / NS_PER_S;
	rep->process_s = (double)(atomic_load(&r->rc.last_delivery_ns) - r->start_ns) / NS_PER_S;
	rep->acks_dropped = rep->px.method_dropped[PROXY_TO_BROKER][frame_method_index(AMQP_BASIC_ACK_METHOD)];
	rep->dup_per_lost_ack = run_dups_per_lost_ack(rep);
	run_curve(r, rep);
}

/* The results in memory, then every renderer of them: the files, the plots, report.md, the console. */
static int run_results(struct run *r, const struct run_report *rep, bool link_latest)
{
	static struct results res; /* large; one per process */
	struct run_out o = { .r = r, .rep = rep, .res = &res };
	char err[1024];
	int code = EXIT_OK;

	results_init(&res);
	run_fill_counts(&res, r, rep);
	run_fill_miss(&res, rep);
	run_fill_predicted(&res, rep);
	run_fill_faults(&res, r, rep);
	run_fill_perf(&res, r, rep);
	run_fill_app(&res, r);
	storehost_fill(&r->storehost, &r->sc, &res);
	consumerhosts_fill(&r->chosts, &r->sc, &rep->px, &res);
	if (run_write_results(r, &o, err, sizeof(err)) < 0) {
		log_line("run: %s", err);
		code = EXIT_FAIL;
	} else {
		/* plots and the report are a reading aid: a failure is reported, the run stands */
		if (plot_draw_run(r->out_dir, &res, err, sizeof(err)) < 0)
			log_line("run: plots: %s", err);
		if (report_run(r->out_dir, &res, err, sizeof(err)) < 0)
			log_line("run: report: %s", err);
		if (link_latest)
			run_link_latest(r->out_dir);
	}
	run_print_summary(r, &res);
	return code;
}

int run_cli(int argc, char **argv)
{
	static struct run r; /* large; one per process */
	const char *out = NULL;
	struct run_report rep;
	int code;

	memset(&r, 0, sizeof(r));
	pthread_mutex_init(&r.fault_lock, NULL);
	code = run_parse(&r, argc, argv, &out);
	if (code >= 0)
		return code;
	code = EXIT_OK;
	/* fail early, before minutes of work, if the results can't be written */
	if (files_results_dir(r.out_dir, sizeof(r.out_dir), out, r.sc.run.name, NULL) < 0) {
		log_line("run: cannot write results into %s: %s; choose another folder with --out", r.out_dir,
			 strerror(errno));
		code = EXIT_FAIL;
		goto out;
	}
	r.progress = !r.quiet && isatty(STDERR_FILENO);
	cli_catch_signals(true, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN); /* a file size limit: writes fail with EFBIG, reported, instead of a kill */
	if (run_setup(&r) < 0) {
		code = EXIT_FAIL;
		goto out;
	}
	run_monitor(&r);
	store_faults_end(&r.store_faults, clock_now_ns());
	if (r.view && app_failure(&r.app))
		log_line("run: %s", app_failure(&r.app));
	run_stop_threads(&r);
	alarm_finish(&r.alarm);
	cluster_faults_finish(&r.cfaults);
	if (!r.interrupted)
		dlq_count_left(&r.dlq);
	if (r.view) {
		/* the app goes first, so that the proxy sees its connections end and the view judges them */
		app_stop(&r.app);
		appview_finish(r.view, &r.app_totals);
	}
	r.end_ns = clock_now_ns();
	if (!r.publish_done_ns)
		r.publish_done_ns = r.end_ns;
	run_measure(&r, &rep);
	code = run_results(&r, &rep, !out);
	events_summary_release(&rep.ev);
	proxy_stats_release(&rep.px);
	if (code == EXIT_OK)
		code = r.interrupted	 ? EXIT_INTERRUPTED
		       : rep.violations ? EXIT_INVARIANT
		       : r.crashes.lost || r.cfaults.lost || run_publishers_gave_up(&r) || (r.view && app_failure(&r.app)) ? EXIT_FAIL
														 : EXIT_OK;
	if (!r.interrupted)
		run_cleanup_queue(&r);
out:
	if (code == EXIT_FAIL && r.out_dir[0])
		rmdir(r.out_dir); /* only if nothing was written into it */
	run_release(&r);
	return code;
}
