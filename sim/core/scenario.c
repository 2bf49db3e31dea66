/* scenario.c — scenario files for `dupsim run`: INI keys, defaults, --set, validation, the effective file. */
#include "core/scenario.h"

#include <amqp.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/parse.h"

/* The keys, in the order of DESIGN.md's table; the index is the origin slot. */
enum scenario_key_id {
	K_RUN_NAME,
	K_RUN_MESSAGES,
	K_RUN_SEED,
	K_RUN_DRAIN_TIMEOUT,
	K_BROKER_URL,
	K_BROKER_QUEUE,
	K_BROKER_QUEUE_TYPE,
	K_BROKER_KEEP_QUEUE,
	K_PUB_COUNT,
	K_PUB_MODE,
	K_PUB_BATCH,
	K_PUB_RATE,
	K_PUB_SIZE,
	K_PUB_TIMEOUT,
	K_CONS_COUNT,
	K_CONS_PREFETCH,
	K_CONS_ACK_EVERY,
	K_CONS_WORK,
	K_FAULT_COMMIT_OK_LOSS,
	K_FAULT_CONFIRM_LOSS,
	K_FAULT_ACK_LOSS,
	K_FAULT_ON_LOSS,
	K_FAULT_RULE,
	K_FAULT_BROKER_CRASH_EVERY,
	K_FAULT_BROKER_DOWN,
	K_FAULT_CONSUMER_CRASH,
	K_FAULT_CONSUMER_CRASH_AT,
	K_FAULT_SCHEDULE,
	K_FAULT_WARMUP,
	K_FAULT_COOLDOWN,
	K_DEDUP_STORE,
	K_DEDUP_SCOPE,
	K_DEDUP_TTL,
	K_DEDUP_CAPACITY,
	K_DEDUP_CHECK,
	K_DEDUP_MARK,
	K_DEDUP_URL,
	K_DEDUP_SYNC,
	K_APP_CONSUMER,
	K_APP_INSTANCES,
	K_APP_CRASH_EVERY,
	K_APP_RESTART_DELAY,
	K_PROXY_API,
	/* issue 13, broker timeouts */
	K_BROKER_CONSUMER_TIMEOUT,
	K_CONS_SLOW,
	K_CONS_SLOW_WORK,
	K_CONS_HEARTBEAT,
	/* issue 13, alarms, requeues and delivery limits */
	K_BROKER_DELIVERY_LIMIT,
	K_BROKER_DEAD_LETTER,
	K_CONS_NACK_REQUEUE,
	K_FAULT_MEMORY_ALARM,
	K_FAULT_DLQ_REPLAY_AFTER,
	/* issue 13, faults of the dedup store itself */
	K_FAULT_STORE_RESTART_EVERY,
	K_FAULT_STORE_DOWN,
	K_DEDUP_REDIS_MAXMEMORY,
	K_DEDUP_ON_ERROR,
	K_DEDUP_TIMEOUT,
	/* issue 14: a cluster */
	K_BROKER_NODES,
	K_FAULT_LEADER_KILL,
	K_FAULT_PARTITION,
	K_FAULT_BRIDGE,
	/* issue 14: hosts */
	K_HOSTS_STORE,
	K_HOSTS_STORE_RTT,
	K_HOSTS_STORE_JITTER,
	K_HOSTS_STORE_LOSS,
	K_HOSTS_CONSUMERS,
	K_HOSTS_CONSUMER_RTT,
	K_HOSTS_CONSUMER_JITTER,
	K_HOSTS_CONSUMER_LOSS,
	K_COUNT
};

_Static_assert(K_COUNT == SCENARIO_KEY_COUNT, "SCENARIO_KEY_COUNT must match the key table");

enum scenario_kind {
	KIND_U64,
	KIND_DURATION,
	KIND_PROB,
	KIND_BOOL,
	KIND_ENUM,
	KIND_NAME,
	KIND_QUEUE,
	KIND_AMQP_URL,
	KIND_REDIS_URL,
	KIND_RULE,
	KIND_SCHEDULE,
	KIND_COMMAND,  /* free text for /bin/sh -c: printable, may be empty */
	KIND_HOSTPORT, /* "" or [HOST:]PORT */
	KIND_WINDOW,   /* "none" or START-END from the run's start: two uint64_t ns, END 0 = none */
	KIND_BYTES,    /* a size: bytes, or with kb, mb, gb (1024-based, as redis reads them) */
};

/* Enum fields are written through an int lvalue (their compatible type's
 * signed variant); make sure no enum of the struct is narrower. */
_Static_assert(sizeof(enum scenario_mode) == sizeof(int), "enums must be int-sized");
_Static_assert(sizeof(enum rule_then) == sizeof(int), "enums must be int-sized");

struct scenario_key {
	const char *section;
	const char *name;
	enum scenario_kind kind;
	size_t off;		    /* offset of the field in struct scenario */
	size_t len;		    /* string fields: size of the array */
	uint64_t min, max;	    /* KIND_U64 and KIND_DURATION (ns) */
	bool zero_ok;		    /* 0 is allowed below min ("0 = never") */
	bool below_one;		    /* KIND_PROB: 1 itself is refused */
	const char *const *choices; /* KIND_ENUM: names in enum order, NULL-terminated */
	const char *allowed;	    /* range as shown in messages and in scenarios/README.md */
};

static const char *const queue_types[] = { "classic", "quorum", NULL };
static const char *const modes[] = { "tx", "confirm", NULL };
static const char *const on_loss_names[] = { "close", "hang", NULL };
static const char *const crash_points[] = { "before-mark", "after-mark", "after-process", NULL };
static const char *const stores[] = { "none", "memory", "redis", "tokyocabinet", "postgres", NULL };
static const char *const scopes[] = { "local", "shared", NULL };
static const char *const checks[] = { "always", "republish-count", "flagged", NULL };
static const char *const marks[] = { "before", "after", NULL };
static const char *const on_errors[] = { "open", "closed", NULL };
static const char *const hosts_stores[] = { "local", "own", NULL };
static const char *const hosts_consumers[] = { "local", "own", NULL };

#define S(f) offsetof(struct scenario, f)
#define SLEN(f) sizeof(((struct scenario *)0)->f)
#define MS NS_PER_MS
#define SEC NS_PER_S
#define MIN (60 * NS_PER_S)
#define HOUR (3600 * NS_PER_S)

static const struct scenario_key scenario_keys[K_COUNT] = {
	[K_RUN_NAME] = { "run", "name", KIND_NAME, S(run.name), SLEN(run.name), .allowed =
			 "1 to 64 of A-Z a-z 0-9 . _ - , not starting with '.' or '-'" },
	[K_RUN_MESSAGES] = { "run", "messages", KIND_U64, S(run.messages), .min = 1, .max = 1000000000,
			     .allowed = "1..1000000000" },
	[K_RUN_SEED] = { "run", "seed", KIND_U64, S(run.seed), .min = 0, .max = UINT64_MAX,
			 .allowed = "0..18446744073709551615" },
	[K_RUN_DRAIN_TIMEOUT] = { "run", "drain_timeout", KIND_DURATION, S(run.drain_timeout_ns), .min = MS,
				  .max = 24 * HOUR, .allowed = "1ms..24h" },
	[K_BROKER_URL] = { "broker", "url", KIND_AMQP_URL, S(broker.url), SLEN(broker.url),
			   .allowed = "embedded, amqp://user:pass@host:port/vhost, or several of one cluster, comma-separated" },
	[K_BROKER_QUEUE] = { "broker", "queue", KIND_QUEUE, S(broker.queue), SLEN(broker.queue),
			     .allowed = "1 to 180 of A-Z a-z 0-9 . _ : - , not starting with 'amq.'" },
	[K_BROKER_QUEUE_TYPE] = { "broker", "queue_type", KIND_ENUM, S(broker.queue_type), .choices = queue_types },
	[K_BROKER_KEEP_QUEUE] = { "broker", "keep_queue", KIND_BOOL, S(broker.keep_queue), .allowed = "true, false" },
	[K_PUB_COUNT] = { "publishers", "count", KIND_U64, S(publishers.count), .min = 1, .max = 1000,
			  .allowed = "1..1000" },
	[K_PUB_MODE] = { "publishers", "mode", KIND_ENUM, S(publishers.mode), .choices = modes },
	[K_PUB_BATCH] = { "publishers", "batch", KIND_U64, S(publishers.batch), .min = 1, .max = 100000,
			  .allowed = "1..100000" },
	[K_PUB_RATE] = { "publishers", "rate", KIND_U64, S(publishers.rate), .min = 0, .max = 1000000,
			 .allowed = "0..1000000 messages/s (0 = as fast as possible)" },
	[K_PUB_SIZE] = { "publishers", "size", KIND_U64, S(publishers.size), .min = 0, .max = 134217728,
			 .allowed = "0..134217728 bytes (RabbitMQ's default max_message_size, 128 MiB)" },
	[K_PUB_TIMEOUT] = { "publishers", "timeout", KIND_DURATION, S(publishers.timeout_ns), .min = MS,
			    .max = 10 * MIN, .allowed = "1ms..10m" },
	[K_CONS_COUNT] = { "consumers", "count", KIND_U64, S(consumers.count), .min = 0, .max = 1000,
			   .allowed = "0..1000 (0 = publish only)" },
	[K_CONS_PREFETCH] = { "consumers", "prefetch", KIND_U64, S(consumers.prefetch), .min = 0, .max = 65535,
			      .allowed = "0..65535 (0 = no limit)" },
	[K_CONS_ACK_EVERY] = { "consumers", "ack_every", KIND_U64, S(consumers.ack_every), .min = 1,
			       .max = 65535, .allowed = "1..65535, and at most prefetch when prefetch > 0" },
	[K_CONS_WORK] = { "consumers", "work", KIND_DURATION, S(consumers.work_ns), .min = 0, .max = MIN,
			  .allowed = "0..1m" },
	[K_FAULT_COMMIT_OK_LOSS] = { "faults", "commit_ok_loss", KIND_PROB, S(faults.commit_ok_loss),
				     .below_one = true },
	[K_FAULT_CONFIRM_LOSS] = { "faults", "confirm_loss", KIND_PROB, S(faults.confirm_loss), .below_one = true },
	[K_FAULT_ACK_LOSS] = { "faults", "ack_loss", KIND_PROB, S(faults.ack_loss), .below_one = true },
	[K_FAULT_ON_LOSS] = { "faults", "on_loss", KIND_ENUM, S(faults.on_loss), .choices = on_loss_names },
	[K_FAULT_RULE] = { "faults", "rule", KIND_RULE, 0,
			   .allowed = "drop|cut METHOD [from=client|broker] [p=PROB] [then=close|hang] [after=N]" },
	[K_FAULT_BROKER_CRASH_EVERY] = { "faults", "broker_crash_every", KIND_DURATION,
					 S(faults.broker_crash_every_ns), .min = SEC, .max = 24 * HOUR,
					 .zero_ok = true, .allowed = "0 (never) or 1s..24h" },
	[K_FAULT_BROKER_DOWN] = { "faults", "broker_down", KIND_DURATION, S(faults.broker_down_ns), .min = 0,
				  .max = 10 * MIN, .allowed = "0..10m" },
	[K_FAULT_CONSUMER_CRASH] = { "faults", "consumer_crash", KIND_PROB, S(faults.consumer_crash),
				     .below_one = true },
	[K_FAULT_CONSUMER_CRASH_AT] = { "faults", "consumer_crash_at", KIND_ENUM, S(faults.consumer_crash_at),
					.choices = crash_points },
	[K_FAULT_SCHEDULE] = { "faults", "schedule", KIND_SCHEDULE, 0,
			       .allowed = "START-END RULE, e.g. 10s-20s drop basic.ack from=client p=5%" },
	[K_FAULT_WARMUP] = { "faults", "warmup", KIND_DURATION, S(faults.warmup_ns), .min = 0, .max = 24 * HOUR,
			     .allowed = "0..24h" },
	[K_FAULT_COOLDOWN] = { "faults", "cooldown", KIND_DURATION, S(faults.cooldown_ns), .min = 0,
			       .max = 24 * HOUR, .allowed = "0..24h, and below run.drain_timeout" },
	[K_DEDUP_STORE] = { "dedup", "store", KIND_ENUM, S(dedup.store), .choices = stores },
	[K_DEDUP_SCOPE] = { "dedup", "scope", KIND_ENUM, S(dedup.scope), .choices = scopes },
	[K_DEDUP_TTL] = { "dedup", "ttl", KIND_DURATION, S(dedup.ttl_ns), .min = 0, .max = 1000 * HOUR,
			  .allowed = "0..1000h (0 = never)" },
	[K_DEDUP_CAPACITY] = { "dedup", "capacity", KIND_U64, S(dedup.capacity), .min = 0, .max = 1000000000,
			       .allowed = "0..1000000000 keys (0 = no bound)" },
	[K_DEDUP_CHECK] = { "dedup", "check", KIND_ENUM, S(dedup.check), .choices = checks },
	[K_DEDUP_MARK] = { "dedup", "mark", KIND_ENUM, S(dedup.mark), .choices = marks },
	[K_DEDUP_URL] = { "dedup", "url", KIND_REDIS_URL, S(dedup.url), SLEN(dedup.url),
			  .allowed = "embedded or redis://host:port" },
	[K_DEDUP_SYNC] = { "dedup", "sync", KIND_BOOL, S(dedup.sync), .allowed = "true, false" },
	[K_APP_CONSUMER] = { "app", "consumer", KIND_COMMAND, S(app.consumer), SLEN(app.consumer),
			     .allowed = "a command for /bin/sh -c, up to 180 printable characters" },
	[K_APP_INSTANCES] = { "app", "instances", KIND_U64, S(app.instances), .min = 1, .max = 64,
			      .allowed = "1..64" },
	[K_APP_CRASH_EVERY] = { "app", "crash_every", KIND_DURATION, S(app.crash_every_ns), .min = 100 * MS,
				.max = 24 * HOUR, .zero_ok = true, .allowed = "0 (never) or 100ms..24h" },
	[K_APP_RESTART_DELAY] = { "app", "restart_delay", KIND_DURATION, S(app.restart_delay_ns), .min = 0,
				  .max = 10 * MIN, .allowed = "0..10m" },
	[K_PROXY_API] = { "proxy", "api", KIND_HOSTPORT, S(proxy.api), SLEN(proxy.api),
			  .allowed = "empty (no API), PORT (on 127.0.0.1) or HOST:PORT" },
	/* issue 13, broker timeouts */
	[K_BROKER_CONSUMER_TIMEOUT] = { "broker", "consumer_timeout", KIND_DURATION, S(broker.consumer_timeout_ns),
					.min = 100 * MS, .max = 24 * HOUR, .zero_ok = true,
					.allowed = "0 (the broker's default, 30m) or 100ms..24h" },
	[K_CONS_SLOW] = { "consumers", "slow", KIND_PROB, S(consumers.slow) },
	[K_CONS_SLOW_WORK] = { "consumers", "slow_work", KIND_DURATION, S(consumers.slow_work_ns), .min = 0,
			       .max = 10 * MIN, .allowed = "0..10m" },
	[K_CONS_HEARTBEAT] = { "consumers", "heartbeat", KIND_DURATION, S(consumers.heartbeat_ns), .min = SEC,
			       .max = 65535 * SEC, .zero_ok = true,
			       .allowed = "0 (none) or whole seconds 1s..65535s" },
	/* issue 13, alarms, requeues and delivery limits */
	[K_BROKER_DELIVERY_LIMIT] = { "broker", "delivery_limit", KIND_U64, S(broker.delivery_limit), .min = 0,
				      .max = 1000000, .allowed = "0..1000000 (0 = none; queue_type = quorum only)" },
	[K_BROKER_DEAD_LETTER] = { "broker", "dead_letter", KIND_BOOL, S(broker.dead_letter),
				   .allowed = "true, false" },
	[K_CONS_NACK_REQUEUE] = { "consumers", "nack_requeue", KIND_PROB, S(consumers.nack_requeue),
				  .below_one = true },
	[K_FAULT_MEMORY_ALARM] = { "faults", "memory_alarm", KIND_WINDOW, S(faults.memory_alarm_from_ns),
				   .allowed = "none, or START-END from the run's start, e.g. 3s-6s" },
	[K_FAULT_DLQ_REPLAY_AFTER] = { "faults", "dlq_replay_after", KIND_DURATION, S(faults.dlq_replay_after_ns),
				       .min = 0, .max = 24 * HOUR, .allowed = "0 (never) or up to 24h" },
	/* issue 13, faults of the dedup store itself */
	[K_FAULT_STORE_RESTART_EVERY] = { "faults", "store_restart_every", KIND_DURATION, S(store.restart_every_ns),
					  .min = 100 * MS, .max = 24 * HOUR, .zero_ok = true,
					  .allowed = "0 (never) or 100ms..24h; needs dedup.store = redis, url = embedded" },
	[K_FAULT_STORE_DOWN] = { "faults", "store_down", KIND_WINDOW, S(store.down_from_ns), .max = 24 * HOUR,
				 .allowed = "none, or START-END from the run's start with units, e.g. 3s-5s; needs "
					    "dedup.store = redis, url = embedded" },
	[K_DEDUP_REDIS_MAXMEMORY] = { "dedup", "redis_maxmemory", KIND_BYTES, S(store.redis_maxmemory),
				      .min = 1024 * 1024, .max = 1024ull * 1024 * 1024 * 1024, .zero_ok = true,
				      .allowed = "0 (no limit) or 1mb..1024gb (bytes, kb, mb, gb); needs dedup.store = "
						 "redis, url = embedded" },
	[K_DEDUP_ON_ERROR] = { "dedup", "on_error", KIND_ENUM, S(store.on_error), .choices = on_errors },
	[K_DEDUP_TIMEOUT] = { "dedup", "timeout", KIND_DURATION, S(store.timeout_ns), .min = MS, .max = MIN,
			      .allowed = "1ms..1m; redis only" },
	/* issue 14: a cluster */
	[K_BROKER_NODES] = { "broker", "nodes", KIND_U64, S(cluster.nodes), .min = 1, .max = 3,
			     .allowed = "1..3: 1 = one private node, 3 = a private cluster on test hosts (root)" },
	[K_FAULT_LEADER_KILL] = { "faults", "leader_kill", KIND_DURATION, S(cluster.leader_kill_ns), .min = 0,
				  .max = 24 * HOUR,
				  .allowed = "0 (never) or a time from the run's start, e.g. 5s; broker.nodes = 3" },
	[K_FAULT_PARTITION] = { "faults", "partition", KIND_WINDOW, S(cluster.partition_from_ns), .max = 24 * HOUR,
				.allowed = "none, or START-END from the run's start, e.g. 8s-14s; broker.nodes = 3" },
	[K_FAULT_BRIDGE] = { "faults", "bridge", KIND_WINDOW, S(cluster.bridge_from_ns), .max = 24 * HOUR,
			     .allowed = "none, or START-END from the run's start, e.g. 8s-14s; broker.nodes = 3" },
	/* issue 14: hosts */
	[K_HOSTS_STORE] = { "hosts", "store", KIND_ENUM, S(hosts.store), .choices = hosts_stores },
	[K_HOSTS_STORE_RTT] = { "hosts", "store_rtt", KIND_DURATION, S(hosts.store_rtt_ns), .min = 0, .max = 10 * SEC,
				.allowed = "0..10s (a round trip); needs hosts.store = own" },
	[K_HOSTS_STORE_JITTER] = { "hosts", "store_jitter", KIND_DURATION, S(hosts.store_jitter_ns), .min = 0,
				   .max = 5 * SEC, .allowed = "0..5s, at most store_rtt / 2; needs hosts.store = own" },
	[K_HOSTS_STORE_LOSS] = { "hosts", "store_loss", KIND_PROB, S(hosts.store_loss), .below_one = true },
	[K_HOSTS_CONSUMERS] = { "hosts", "consumers", KIND_ENUM, S(hosts.consumers), .choices = hosts_consumers },
	[K_HOSTS_CONSUMER_RTT] = { "hosts", "consumer_rtt", KIND_DURATION, S(hosts.consumer_rtt_ns), .min = 0,
				   .max = 10 * SEC, .allowed = "0..10s (a round trip); needs hosts.consumers = own" },
	[K_HOSTS_CONSUMER_JITTER] = { "hosts", "consumer_jitter", KIND_DURATION, S(hosts.consumer_jitter_ns),
				      .min = 0, .max = 5 * SEC,
				      .allowed = "0..5s, at most consumer_rtt / 2; needs hosts.consumers = own" },
	[K_HOSTS_CONSUMER_LOSS] = { "hosts", "consumer_loss", KIND_PROB, S(hosts.consumer_loss), .below_one = true },
};

static const char *const scenario_sections[] = { "run",   "broker", "publishers", "consumers", "faults",
						 "dedup", "app",    "proxy",	  "hosts" };
#define SECTION_COUNT (sizeof(scenario_sections) / sizeof(scenario_sections[0]))

/* ---- small helpers ---------------------------------------------------- */

static bool scenario_section_known(const char *name)
{
	for (size_t i = 0; i < SECTION_COUNT; i++)
		if (strcmp(scenario_sections[i], name) == 0)
			return true;
	return false;
}

static int scenario_key_find(const char *section, const char *name)
{
	for (int k = 0; k < K_COUNT; k++)
		if (strcmp(scenario_keys[k].section, section) == 0 && strcmp(scenario_keys[k].name, name) == 0)
			return k;
	return -1;
}

/* Case-insensitive edit distance, so `Commit_OK_Loss` still finds its key. */
static size_t scenario_distance(const char *a, const char *b)
{
	char la[64], lb[64];
	size_t i;

	for (i = 0; a[i] && i < sizeof(la) - 1; i++)
		la[i] = (char)tolower((unsigned char)a[i]);
	la[i] = '\0';
	for (i = 0; b[i] && i < sizeof(lb) - 1; i++)
		lb[i] = (char)tolower((unsigned char)b[i]);
	lb[i] = '\0';
	return parse_edit_distance(la, lb);
}

/* Close enough to suggest: a typo or two, or the start of the real name. */
static bool scenario_close(const char *typed, const char *cand, size_t *best)
{
	size_t n = strlen(typed);
	size_t d = scenario_distance(typed, cand);
	size_t limit = n < 5 ? 1 : n < 9 ? 2 : 3;

	if (n >= 3 && strncasecmp(cand, typed, n) == 0 && d > 0)
		d = limit; /* a prefix: suggest, but after real typos */
	if (d > limit || d >= *best)
		return false;
	*best = d;
	return true;
}

static const char *scenario_nearest_section(const char *typed)
{
	const char *near = NULL;
	size_t best = SIZE_MAX;

	for (size_t i = 0; i < SECTION_COUNT; i++)
		if (scenario_close(typed, scenario_sections[i], &best))
			near = scenario_sections[i];
	return near;
}

/* Nearest key in section (or anywhere when section is NULL); -1 when none is close. */
static int scenario_nearest_key(const char *section, const char *typed)
{
	size_t best = SIZE_MAX;
	int near = -1;

	for (int k = 0; k < K_COUNT; k++) {
		if (section && strcmp(scenario_keys[k].section, section) != 0)
			continue;
		if (scenario_close(typed, scenario_keys[k].name, &best))
			near = k;
	}
	return near;
}

/* Appends "a, b, c" to buf. */
static void scenario_join(char *buf, size_t len, const char *const *items, size_t n, const char *open,
			  const char *close)
{
	size_t used = strlen(buf);

	for (size_t i = 0; i < n && items[i] && used < len; i++) {
		used += (size_t)snprintf(buf + used, len - used, "%s%s%s%s", i ? ", " : "", open, items[i], close);
	}
}

static void scenario_section_keys(const char *section, char *buf, size_t len)
{
	const char *names[K_COUNT];
	size_t n = 0;

	for (int k = 0; k < K_COUNT; k++)
		if (strcmp(scenario_keys[k].section, section) == 0)
			names[n++] = scenario_keys[k].name;
	scenario_join(buf, len, names, n, "", "");
}

static int *scenario_enum_field(struct scenario *sc, const struct scenario_key *k)
{
	return (int *)((char *)sc + k->off);
}

static int scenario_enum_get(const struct scenario *sc, const struct scenario_key *k)
{
	return *(const int *)((const char *)sc + k->off);
}

/* Shortest %g text that strtod reads back to v exactly. */
static void scenario_fmt_double(double v, char *buf, size_t len)
{
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return;
	}
}

/* Printable, blanks allowed (a command line); tabs and control characters are not. */
static bool scenario_printable_text(const char *s)
{
	for (; *s; s++)
		if (*s < ' ' || *s >= 0x7f)
			return false;
	return true;
}

static bool scenario_printable(const char *s)
{
	for (; *s; s++)
		if (*s <= ' ' || *s >= 0x7f)
			return false;
	return true;
}

/* ---- values ----------------------------------------------------------- */

/* What key k accepts, as messages show it. */
static const char *scenario_allowed(const struct scenario_key *k, char *buf, size_t len)
{
	switch (k->kind) {
	case KIND_ENUM:
		buf[0] = '\0';
		scenario_join(buf, len, k->choices, SIZE_MAX, "", "");
		return buf;
	case KIND_BOOL:
		return "true, false (or yes/no, on/off, 1/0)";
	case KIND_PROB:
		return "0, or a fraction in [1e-12, 1) (0.01) or a percentage (1%)";
	default:
		return k->allowed;
	}
}

static int scenario_parse_duration(const char *v, uint64_t *ns)
{
	uint64_t t;

	if (parse_duration(v, &t) < 0)
		return -1;
	*ns = (t + 500) / 1000 * 1000; /* 1 us resolution: scenario_write prints it exactly */
	return 0;
}

static bool scenario_is_number(const char *v)
{
	char *end;

	if ((*v < '0' || *v > '9') && *v != '.')
		return false;
	strtod(v, &end);
	return *end == '\0';
}

static int scenario_check_name(const char *v, char *msg, size_t msglen, const struct scenario_key *k)
{
	size_t n = strlen(v);

	if (n == 0 || n > SCENARIO_NAME_MAX || v[0] == '.' || v[0] == '-' ||
	    strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != n)
		return log_seterr(msg, msglen, "'%s' is not a valid run name; allowed: %s", v, k->allowed);
	return 0;
}

static int scenario_check_queue(const char *v, char *msg, size_t msglen, const struct scenario_key *k)
{
	size_t n = strlen(v);

	if (strncmp(v, "amq.", 4) == 0)
		return log_seterr(msg, msglen, "'%s': queue names starting with 'amq.' are reserved by RabbitMQ; "
				"allowed: %s", v, k->allowed);
	if (n == 0 || n > SCENARIO_STR_MAX ||
	    strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-") != n)
		return log_seterr(msg, msglen, "'%s' is not a valid queue name; allowed: %s", v, k->allowed);
	return 0;
}

static int scenario_check_amqp_url(const char *v, char *msg, size_t msglen, const struct scenario_key *k);

/* "amqp://a,amqp://b,…": at most SCENARIO_URLS_MAX, each a URL (not "embedded"). */
static int scenario_check_amqp_urls(const char *v, char *msg, size_t msglen, const struct scenario_key *k)
{
	char buf[SCENARIO_STR_MAX + 1], *save = NULL;
	size_t n = 0;

	if (strlen(v) > SCENARIO_STR_MAX)
		return log_seterr(msg, msglen, "'%s' is longer than %d characters; allowed: %s", v, SCENARIO_STR_MAX,
				  k->allowed);
	snprintf(buf, sizeof(buf), "%s", v);
	for (char *u = strtok_r(buf, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
		while (*u == ' ')
			u++;
		if (strcmp(u, "embedded") == 0 || ++n > SCENARIO_URLS_MAX)
			return log_seterr(msg, msglen, "'%s': a list is up to %d amqp:// URLs of one cluster; allowed: %s",
					  v, SCENARIO_URLS_MAX, k->allowed);
		if (scenario_check_amqp_url(u, msg, msglen, k) < 0)
			return -1;
	}
	if (n < 2)
		return log_seterr(msg, msglen, "'%s' is not a list of broker URLs; allowed: %s", v, k->allowed);
	return 0;
}

static int scenario_check_amqp_url(const char *v, char *msg, size_t msglen, const struct scenario_key *k)
{
	struct amqp_connection_info info;
	char buf[SCENARIO_STR_MAX + 1];
	size_t n = strlen(v);

	if (strcmp(v, "embedded") == 0)
		return 0;
	if (strchr(v, ',')) /* a cluster of the user's: each URL on its own */
		return scenario_check_amqp_urls(v, msg, msglen, k);
	if (strncmp(v, "amqps://", 8) == 0)
		return log_seterr(msg, msglen, "'%s': TLS (amqps://) is not supported; allowed: %s", v, k->allowed);
	if (strncmp(v, "amqp://", 7) != 0 || n > SCENARIO_STR_MAX || !scenario_printable(v))
		return log_seterr(msg, msglen, "'%s' is not a broker URL; allowed: %s", v, k->allowed);
	memcpy(buf, v, n + 1);
	if (amqp_parse_url(buf, &info) != AMQP_STATUS_OK)
		return log_seterr(msg, msglen, "'%s' is not a valid AMQP URL; allowed: %s", v, k->allowed);
	return 0;
}

static int scenario_check_redis_url(const char *v, char *msg, size_t msglen, const struct scenario_key *k)
{
	char host[SCENARIO_STR_MAX + 1];
	uint16_t port;

	if (strcmp(v, "embedded") == 0)
		return 0;
	if (strncmp(v, "redis://", 8) != 0 || strlen(v) > SCENARIO_STR_MAX || !scenario_printable(v) ||
	    strchr(v + 8, '/') || parse_hostport(v + 8, host, sizeof(host), &port, false) < 0)
		return log_seterr(msg, msglen, "'%s' is not a redis URL; allowed: %s", v, k->allowed);
	return 0;
}

/* A `rule =` line, or a `schedule =` line (scheduled: START-END RULE), appended to its list. */
static int scenario_add_rule(struct scenario *sc, const char *v, bool scheduled, char *msg, size_t msglen)
{
	int (*parse)(const char *, struct rule *, char *, size_t) = scheduled ? rule_parse_scheduled : rule_parse;
	struct rule **list = scheduled ? &sc->faults.schedules : &sc->faults.rules;
	size_t *count = scheduled ? &sc->faults.schedule_count : &sc->faults.rule_count;
	struct rule r, back, *grown;

	if (*count >= SCENARIO_RULES_MAX)
		return log_seterr(msg, msglen, "too many %s; at most %d", scheduled ? "schedules" : "rules",
				SCENARIO_RULES_MAX);
	if (parse(v, &r, msg, msglen) < 0)
		return -1;
	/* scenario_write prints the canonical text: it must read back to the same rule */
	if (parse(r.text, &back, msg, msglen) < 0 || strcmp(back.text, r.text) != 0)
		return log_seterr(msg, msglen, "rule '%s' does not survive being written back as '%s'; "
				"use a plainer probability", v, r.text);
	grown = realloc(*list, (*count + 1) * sizeof(*grown));
	if (!grown)
		return log_seterr(msg, msglen, "out of memory");
	grown[(*count)++] = r;
	*list = grown;
	return 0;
}

/*
 * Parses v into key k of sc. Returns 0, or -1 with the part of the message
 * after the `WHERE section.key: ` prefix in msg. The field is changed only
 * when the whole value is good.
 */
static int scenario_apply_duration(char *field, const struct scenario_key *k, const char *v, char *msg,
				   size_t msglen)
{
	uint64_t u;

	if (scenario_parse_duration(v, &u) < 0) {
		if (scenario_is_number(v))
			return log_seterr(msg, msglen,
					"'%s' needs a unit (250us, 500ms, 2s, 5m, 1h); allowed: %s", v,
					k->allowed);
		return log_seterr(msg, msglen,
				"'%s' is not a duration (a number and a unit: 250us, 500ms, 2s, 5m, 1h); "
				"allowed: %s",
				v, k->allowed);
	}
	if ((u < k->min && !(u == 0 && k->zero_ok)) || u > k->max)
		return log_seterr(msg, msglen, "'%s' is out of range; allowed: %s", v, k->allowed);
	memcpy(field, &u, sizeof(u));
	return 0;
}

static int scenario_apply_prob(char *field, const struct scenario_key *k, const char *v, char *msg, size_t msglen)
{
	char list[256];
	double p;

	if (parse_prob(v, &p) < 0)
		return log_seterr(msg, msglen, "'%s' is not a probability; allowed: %s", v,
				scenario_allowed(k, list, sizeof(list)));
	if (k->below_one && p >= 1.0)
		return log_seterr(msg, msglen,
				"'%s' is out of range: at 1 every frame is lost and the run could never "
				"finish; allowed: %s",
				v, scenario_allowed(k, list, sizeof(list)));
	if (p > 0 && p < 1e-12) /* no run is long enough to see it; and tiny doubles don't print back */
		return log_seterr(msg, msglen, "'%s' is out of range; allowed: %s", v,
				scenario_allowed(k, list, sizeof(list)));
	memcpy(field, &p, sizeof(p));
	return 0;
}

static int scenario_apply_enum(struct scenario *sc, const struct scenario_key *k, const char *v, char *msg,
			       size_t msglen)
{
	char list[256];
	size_t best = SIZE_MAX;
	const char *near = NULL;

	for (int i = 0; k->choices[i]; i++) {
		if (strcmp(k->choices[i], v) == 0) {
			*scenario_enum_field(sc, k) = i;
			return 0;
		}
		if (scenario_close(v, k->choices[i], &best))
			near = k->choices[i];
	}
	scenario_allowed(k, list, sizeof(list));
	if (near)
		return log_seterr(msg, msglen, "'%s' is not allowed; did you mean '%s'? (allowed: %s)", v, near,
				list);
	return log_seterr(msg, msglen, "'%s' is not allowed; allowed: %s", v, list);
}

/* A window: "none", or START-END (durations from the run's start, END after START). */
static int scenario_apply_window(char *field, const struct scenario_key *k, const char *v, char *msg,
				 size_t msglen)
{
	char buf[64], *dash;
	uint64_t w[2] = { 0, 0 };

	if (strcmp(v, "none") != 0) {
		if (strlen(v) >= sizeof(buf) || !strchr(v + 1, '-'))
			return log_seterr(msg, msglen, "'%s' is not a window; allowed: %s", v, k->allowed);
		snprintf(buf, sizeof(buf), "%s", v);
		dash = strchr(buf + 1, '-');
		*dash = '\0';
		if (parse_duration(buf, &w[0]) < 0 || parse_duration(dash + 1, &w[1]) < 0)
			return log_seterr(msg, msglen, "'%s': START and END are durations with a unit (500ms, 2s); "
					"allowed: %s", v, k->allowed);
		if (w[1] <= w[0] || w[1] > 24 * HOUR)
			return log_seterr(msg, msglen, "'%s': END must be after START and at most 24h; allowed: %s", v,
					k->allowed);
		w[0] = w[0] / 1000 * 1000; /* whole microseconds, as every duration */
		w[1] = w[1] / 1000 * 1000;
	}
	memcpy(field, w, sizeof(w));
	return 0;
}

/* A size in bytes: a whole number, optionally with b, kb, mb or gb (1024-based, as redis reads them). */
static int scenario_apply_bytes(char *field, const struct scenario_key *k, const char *v, char *msg,
				size_t msglen)
{
	static const struct {
		const char *unit;
		uint64_t mult;
	} units[] = { { "", 1 }, { "b", 1 }, { "kb", 1024 }, { "mb", 1024 * 1024 }, { "gb", 1024 * 1024 * 1024 } };
	size_t digits = strspn(v, "0123456789");
	char num[32];
	uint64_t u;

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (digits == 0 || digits >= sizeof(num) || strcasecmp(v + digits, units[i].unit) != 0)
			continue;
		snprintf(num, sizeof(num), "%.*s", (int)digits, v);
		if (parse_u64(num, &u) < 0 || u > k->max / units[i].mult)
			break;
		u *= units[i].mult;
		if ((u < k->min && u != 0) || u > k->max)
			break;
		memcpy(field, &u, sizeof(u));
		return 0;
	}
	return log_seterr(msg, msglen, "'%s' is not an allowed size; allowed: %s", v, k->allowed);
}

static int scenario_apply(struct scenario *sc, const struct scenario_key *k, const char *v, char *msg,
			  size_t msglen)
{
	char *field = (char *)sc + k->off;
	char list[256];
	uint64_t u;
	bool b;

	if (!*v && k->kind != KIND_RULE && k->kind != KIND_SCHEDULE)
		return log_seterr(msg, msglen, "missing value; allowed: %s", scenario_allowed(k, list, sizeof(list)));
	switch (k->kind) {
	case KIND_U64:
		if (parse_u64(v, &u) < 0)
			return log_seterr(msg, msglen, "'%s' is not a whole number; allowed: %s", v, k->allowed);
		if (u < k->min || u > k->max)
			return log_seterr(msg, msglen, "'%s' is out of range; allowed: %s", v, k->allowed);
		memcpy(field, &u, sizeof(u));
		return 0;
	case KIND_DURATION:
		return scenario_apply_duration(field, k, v, msg, msglen);
	case KIND_PROB:
		return scenario_apply_prob(field, k, v, msg, msglen);
	case KIND_BOOL:
		if (parse_bool(v, &b) < 0)
			return log_seterr(msg, msglen, "'%s' is not a boolean; allowed: %s", v,
					scenario_allowed(k, list, sizeof(list)));
		memcpy(field, &b, sizeof(b));
		return 0;
	case KIND_ENUM:
		return scenario_apply_enum(sc, k, v, msg, msglen);
	case KIND_NAME:
	case KIND_QUEUE:
	case KIND_AMQP_URL:
	case KIND_REDIS_URL: {
		int rc = k->kind == KIND_NAME	   ? scenario_check_name(v, msg, msglen, k)
			 : k->kind == KIND_QUEUE   ? scenario_check_queue(v, msg, msglen, k)
			 : k->kind == KIND_AMQP_URL ? scenario_check_amqp_url(v, msg, msglen, k)
						    : scenario_check_redis_url(v, msg, msglen, k);

		if (rc < 0)
			return -1;
		if (strlen(v) >= k->len) /* every check above bounds the length */
			abort();
		memcpy(field, v, strlen(v) + 1);
		return 0;
	}
	case KIND_RULE:
	case KIND_SCHEDULE:
		return scenario_add_rule(sc, v, k->kind == KIND_SCHEDULE, msg, msglen);
	case KIND_COMMAND:
	case KIND_HOSTPORT: {
		char host[SCENARIO_STR_MAX + 1];
		uint16_t port;

		if (strlen(v) >= k->len || !(k->kind == KIND_COMMAND ? scenario_printable_text(v) : scenario_printable(v)))
			return log_seterr(msg, msglen, "'%.40s...' is too long or not printable; allowed: %s", v,
					k->allowed);
		if (k->kind == KIND_HOSTPORT && v[0] && parse_listen_addr(v, host, sizeof(host), &port) < 0)
			return log_seterr(msg, msglen, "'%s' is not [HOST:]PORT; allowed: %s", v, k->allowed);
		memcpy(field, v, strlen(v) + 1);
		return 0;
	}
	case KIND_WINDOW:
		return scenario_apply_window(field, k, v, msg, msglen);
	case KIND_BYTES:
		return scenario_apply_bytes(field, k, v, msg, msglen);
	}
	abort();
}

/* ---- defaults --------------------------------------------------------- */

static void scenario_name_from_path(char *name, const char *path)
{
	const char *base = path ? strrchr(path, '/') : NULL;
	const char *dot;
	size_t n;

	base = base ? base + 1 : path;
	if (!base || !*base) {
		strcpy(name, "scenario");
		return;
	}
	dot = strrchr(base, '.');
	n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
	if (n > SCENARIO_NAME_MAX)
		n = SCENARIO_NAME_MAX;
	for (size_t i = 0; i < n; i++) {
		char c = base[i];

		name[i] = (isalnum((unsigned char)c) && !(c & 0x80)) || c == '_' || c == '-' || c == '.' ? c : '_';
	}
	name[n] = '\0';
	if (name[0] == '.' || name[0] == '-')
		name[0] = '_';
}

void scenario_init_defaults(struct scenario *sc, const char *path)
{
	memset(sc, 0, sizeof(*sc));
	scenario_name_from_path(sc->run.name, path);
	sc->run.messages = 10000;
	sc->run.seed = 1;
	sc->run.drain_timeout_ns = 60 * SEC;
	strcpy(sc->broker.url, "embedded");
	strcpy(sc->broker.queue, "dupsim");
	sc->broker.queue_type = SCENARIO_QUEUE_CLASSIC;
	sc->cluster.nodes = 1;
	sc->broker.keep_queue = false;
	sc->publishers.count = 2;
	sc->publishers.mode = SCENARIO_MODE_TX;
	sc->publishers.batch = 10;
	sc->publishers.rate = 0;
	sc->publishers.size = 128;
	sc->publishers.timeout_ns = 2 * SEC;
	sc->consumers.count = 2;
	sc->consumers.prefetch = 100;
	sc->consumers.ack_every = 1;
	sc->consumers.work_ns = 0;
	sc->faults.on_loss = RULE_THEN_CLOSE;
	sc->faults.broker_down_ns = 2 * SEC;
	sc->faults.consumer_crash_at = SCENARIO_CRASH_AFTER_MARK;
	sc->dedup.store = SCENARIO_STORE_MEMORY;
	sc->dedup.scope = SCENARIO_SCOPE_SHARED;
	sc->dedup.check = SCENARIO_CHECK_ALWAYS;
	sc->dedup.mark = SCENARIO_MARK_AFTER;
	strcpy(sc->dedup.url, "embedded");
	sc->dedup.sync = false;
	sc->app.instances = 1;
	sc->app.restart_delay_ns = 500 * MS;
	sc->store.on_error = SCENARIO_ON_ERROR_OPEN;
	sc->store.timeout_ns = 2 * SEC;
}

void scenario_release(struct scenario *sc)
{
	free(sc->faults.rules);
	sc->faults.rules = NULL;
	sc->faults.rule_count = 0;
	free(sc->faults.schedules);
	sc->faults.schedules = NULL;
	sc->faults.schedule_count = 0;
}

/* ---- reading files ---------------------------------------------------- */

/*
 * inih (r55, as Debian builds it) gives the handler no line number, folds an
 * indented line into the previous key (multi-line values), and splits lines
 * longer than its buffer. So we feed it whole lines ourselves, count them,
 * and classify each line the way inih will, from the same runtime options
 * ini.h exports: that gives every message its line, catches an unknown
 * section even when it has no keys, and tells a continuation from a key.
 */
struct scenario_parse {
	struct scenario *sc;
	FILE *f;
	const char *path;
	int lineno;
	bool ini_has_prev_name; /* inih's prev_name is set: an indented line continues it */
	bool continuation;	/* the current line is one */
	bool failed;
	int read_errno; /* errno of a failed read, saved before anything can clobber it */
	uint32_t seen[K_COUNT]; /* line each key was set on, for duplicates */
	char *err;
	size_t errlen;
};

static int scenario_fail(struct scenario_parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int scenario_fail(struct scenario_parse *p, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!p->failed)
		log_seterr(p->err, p->errlen, "%s:%d: %s", p->path, p->lineno, msg);
	p->failed = true;
	return 0;
}

/* inih's ini_find_chars_or_comment: the first of chars, or an inline comment. */
static const char *scenario_ini_find(const char *s, const char *chars)
{
	bool was_space = false;

	while (*s && (!chars || !strchr(chars, *s)) &&
	       !(ini_allow_inline_comments && was_space && strchr(ini_inline_comment_prefixes, *s))) {
		was_space = isspace((unsigned char)*s);
		s++;
	}
	return s;
}

static void scenario_unknown_section(struct scenario_parse *p, const char *name)
{
	const char *near = scenario_nearest_section(name);
	char list[256] = "";

	if (near) {
		scenario_fail(p, "unknown section [%s]; did you mean [%s]?", name, near);
		return;
	}
	scenario_join(list, sizeof(list), scenario_sections, SECTION_COUNT, "[", "]");
	scenario_fail(p, "unknown section [%s]; sections: %s", name, list);
}

static void scenario_classify(struct scenario_parse *p, char *line)
{
	char *s = line, *end;

	p->continuation = false;
	if (p->lineno == 1 && ini_allow_bom && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB &&
	    (unsigned char)s[2] == 0xBF)
		s += 3;
	while (*s && isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	if (s == end || strchr(ini_start_comment_prefixes, *s))
		return;
	if (ini_allow_multiline && p->ini_has_prev_name && s > line) {
		p->continuation = true;
		return;
	}
	if (*s == '[') {
		const char *close = scenario_ini_find(s + 1, "]");
		char name[256];
		size_t n = (size_t)(close - (s + 1));

		if (*close != ']') {
			scenario_fail(p, "'[' without a closing ']'; a section header is [name]");
			return;
		}
		p->ini_has_prev_name = false;
		if (n >= sizeof(name))
			n = sizeof(name) - 1;
		memcpy(name, s + 1, n);
		name[n] = '\0';
		if (!scenario_section_known(name))
			scenario_unknown_section(p, name);
		return;
	}
	{
		const char *eq = scenario_ini_find(s, "=:");
		const char *name_end = eq;

		if (*eq != '=' && *eq != ':') {
			scenario_fail(p, "expected 'key = value', a [section] or a comment (; or #)");
			return;
		}
		while (name_end > s && isspace((unsigned char)name_end[-1]))
			name_end--;
		p->ini_has_prev_name = name_end > s;
	}
}

/* ini_reader: one whole line per call, or NULL to stop (end of file or an error found). */
static char *scenario_reader(char *str, int num, void *stream)
{
	struct scenario_parse *p = stream;
	size_t n = 0, room = num > 1 ? (size_t)num - 1 : 0;
	bool nul = false;
	int c;

	if (p->failed)
		return NULL;
	while ((c = getc(p->f)) != EOF) {
		if (n < room)
			str[n] = (char)c;
		n++;
		if (c == '\0')
			nul = true;
		if (c == '\n')
			break;
	}
	if (c == EOF && ferror(p->f))
		p->read_errno = errno;
	if (n == 0)
		return NULL;
	p->lineno++;
	if (n > room) {
		scenario_fail(p, "line longer than %d characters", num > 2 ? num - 2 : 0);
		return NULL;
	}
	if (nul) {
		scenario_fail(p, "NUL byte in the line; a scenario is a text file");
		return NULL;
	}
	str[n] = '\0';
	scenario_classify(p, str);
	return p->failed ? NULL : str;
}

static void scenario_unknown_key(struct scenario_parse *p, const char *section, const char *name)
{
	const char *homes[SECTION_COUNT];
	char list[512] = "";
	size_t nhomes = 0;
	int near;

	for (int k = 0; k < K_COUNT; k++)
		if (strcmp(scenario_keys[k].name, name) == 0 && nhomes < SECTION_COUNT)
			homes[nhomes++] = scenario_keys[k].section;
	if (!*section) {
		if (nhomes) {
			scenario_join(list, sizeof(list), homes, nhomes, "[", "]");
			scenario_fail(p, "key '%s' before any [section]; it belongs in %s", name, list);
		} else {
			scenario_join(list, sizeof(list), scenario_sections, SECTION_COUNT, "[", "]");
			scenario_fail(p, "unknown key '%s' before any [section]; sections: %s", name, list);
		}
		return;
	}
	if (nhomes) {
		scenario_join(list, sizeof(list), homes, nhomes, "[", "]");
		scenario_fail(p, "unknown key '%s' in [%s]; '%s' belongs in %s", name, section, name, list);
		return;
	}
	if ((near = scenario_nearest_key(section, name)) >= 0) {
		scenario_fail(p, "unknown key '%s' in [%s]; did you mean '%s'?", name, section,
			      scenario_keys[near].name);
		return;
	}
	if ((near = scenario_nearest_key(NULL, name)) >= 0) {
		scenario_fail(p, "unknown key '%s' in [%s]; did you mean '%s' in [%s]?", name, section,
			      scenario_keys[near].name, scenario_keys[near].section);
		return;
	}
	scenario_section_keys(section, list, sizeof(list));
	scenario_fail(p, "unknown key '%s' in [%s]; keys in [%s]: %s", name, section, section, list);
}

static int scenario_ini_handler(void *user, const char *section, const char *name, const char *value)
{
	struct scenario_parse *p = user;
	char msg[640];
	int k;

	if (p->continuation)
		return scenario_fail(p,
				     "indented line continues '%s' from a line above (multi-line values are "
				     "not supported); remove the leading blanks",
				     name);
	if (!*name)
		return scenario_fail(p, "missing key name before '='");
	/* scenario_classify refused unknown sections at their header */
	k = *section ? scenario_key_find(section, name) : -1;
	if (k < 0) {
		scenario_unknown_key(p, section, name);
		return 0;
	}
	if (p->seen[k] && k != K_FAULT_RULE && k != K_FAULT_SCHEDULE)
		return scenario_fail(p, "duplicate key '%s' in [%s]: first set on line %u; keep one of the two "
				     "(only 'rule' and 'schedule' may repeat)",
				     name, section, p->seen[k]);
	if (scenario_apply(p->sc, &scenario_keys[k], value, msg, sizeof(msg)) < 0)
		return scenario_fail(p, "%s.%s: %s", section, name, msg);
	p->seen[k] = (uint32_t)p->lineno;
	p->sc->origin[k] = (uint32_t)p->lineno;
	return 1;
}

int scenario_load_file(struct scenario *sc, FILE *f, const char *path, char *err, size_t errlen)
{
	struct scenario_parse p = { .sc = sc, .f = f, .path = path, .err = err, .errlen = errlen };
	int rc;

	if (snprintf(sc->path, sizeof(sc->path), "%s", path) >= (int)sizeof(sc->path))
		return log_seterr(err, errlen, "%.200s...: path too long", path);
	if (sc->origin[K_RUN_NAME] == 0)
		scenario_name_from_path(sc->run.name, path);
	rc = ini_parse_stream(scenario_reader, &p, scenario_ini_handler, &p);
	if (p.failed)
		return -1;
	if (ferror(f))
		return log_seterr(err, errlen, "%s: read error: %s", path, strerror(p.read_errno ? p.read_errno : EIO));
	if (rc != 0) /* scenario_classify refuses every line inih would: only if the two disagree */
		return log_seterr(err, errlen, "%s:%d: not a 'key = value' line, a [section] or a comment", path,
				rc);
	return 0;
}

int scenario_load(struct scenario *sc, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	int rc;

	if (!f)
		return log_seterr(err, errlen, "%s: cannot open: %s", path, strerror(errno));
	rc = scenario_load_file(sc, f, path, err, errlen);
	fclose(f);
	return rc;
}

/* ---- --set ------------------------------------------------------------ */

static void scenario_trim(char *s)
{
	char *a = s, *e;

	while (*a && isspace((unsigned char)*a))
		a++;
	e = a + strlen(a);
	while (e > a && isspace((unsigned char)e[-1]))
		e--;
	memmove(s, a, (size_t)(e - a));
	s[e - a] = '\0';
}

int scenario_set(struct scenario *sc, const char *assignment, char *err, size_t errlen)
{
	char buf[1024], msg[640];
	char *eq, *dot, *section, *name, *value;
	int k;

	if (strlen(assignment) >= sizeof(buf))
		return log_seterr(err, errlen, "--set: too long (at most %zu characters)", sizeof(buf) - 1);
	for (const char *c = assignment; *c; c++)
		if ((*c < ' ' && *c != '\t') || *c == 0x7f)
			return log_seterr(err, errlen, "--set: control character 0x%02x in the argument",
					(unsigned)(unsigned char)*c);
	memcpy(buf, assignment, strlen(assignment) + 1);
	eq = strchr(buf, '=');
	if (!eq)
		return log_seterr(err, errlen, "--set %s: expected section.key=value (e.g. faults.ack_loss=1%%)",
				assignment);
	*eq = '\0';
	value = eq + 1;
	scenario_trim(buf);
	scenario_trim(value);
	dot = strchr(buf, '.');
	if (!dot || dot == buf || !dot[1])
		return log_seterr(err, errlen, "--set %s: expected section.key=value (e.g. faults.ack_loss=1%%)",
				assignment);
	*dot = '\0';
	section = buf;
	name = dot + 1;
	if (!scenario_section_known(section)) {
		const char *near = scenario_nearest_section(section);
		char list[256] = "";

		if (near)
			return log_seterr(err, errlen, "--set %s.%s: unknown section [%s]; did you mean [%s]?", section,
					name, section, near);
		scenario_join(list, sizeof(list), scenario_sections, SECTION_COUNT, "[", "]");
		return log_seterr(err, errlen, "--set %s.%s: unknown section [%s]; sections: %s", section, name,
				section, list);
	}
	k = scenario_key_find(section, name);
	if (k < 0) {
		int near = scenario_nearest_key(section, name);
		char list[512] = "";

		if (near >= 0)
			return log_seterr(err, errlen, "--set %s.%s: unknown key '%s' in [%s]; did you mean '%s'?",
					section, name, name, section, scenario_keys[near].name);
		scenario_section_keys(section, list, sizeof(list));
		return log_seterr(err, errlen, "--set %s.%s: unknown key '%s' in [%s]; keys in [%s]: %s", section,
				name, name, section, section, list);
	}
	if (scenario_apply(sc, &scenario_keys[k], value, msg, sizeof(msg)) < 0)
		return log_seterr(err, errlen, "--set %s.%s: %s", section, name, msg);
	sc->origin[k] = SCENARIO_ORIGIN_SET;
	return 0;
}

/* ---- impossible combinations ------------------------------------------ */

/* "FILE:LINE: " or "--set section.key: " for key k (where it was last set). */
static void scenario_where(const struct scenario *sc, int k, char *buf, size_t len)
{
	uint32_t o = sc->origin[k];

	if (o == SCENARIO_ORIGIN_SET)
		snprintf(buf, len, "--set %s.%s: ", scenario_keys[k].section, scenario_keys[k].name);
	else if (o > 0)
		snprintf(buf, len, "%s:%u: ", sc->path, o);
	else
		snprintf(buf, len, "%s: ", sc->path[0] ? sc->path : "scenario");
}

/* How the other key got its value, as " (line 7)", " (--set)", " (default)". */
static void scenario_how(const struct scenario *sc, int k, char *buf, size_t len)
{
	uint32_t o = sc->origin[k];

	if (o == SCENARIO_ORIGIN_SET)
		snprintf(buf, len, " (--set)");
	else if (o > 0)
		snprintf(buf, len, " (line %u)", o);
	else
		snprintf(buf, len, " (the default)");
}

/* Of two conflicting keys, the one set last: it completed the conflict. */
static int scenario_later(const struct scenario *sc, int a, int b)
{
	return sc->origin[b] > sc->origin[a] ? b : a;
}

static int scenario_conflict(const struct scenario *sc, char *err, size_t errlen, int a, int b, const char *fmt,
			     ...) __attribute__((format(printf, 6, 7)));

/* One line: where the later of a and b was set, then the message. */
static int scenario_conflict(const struct scenario *sc, char *err, size_t errlen, int a, int b, const char *fmt,
			     ...)
{
	char where[4200], msg[768];
	va_list ap;

	scenario_where(sc, scenario_later(sc, a, b), where, sizeof(where));
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return log_seterr(err, errlen, "%s%s", where, msg);
}

/*
 * Keys that contradict each other. Each entry: the key blamed, the key it
 * conflicts with, when they do, and the message (how: where each was set,
 * " (line 12)", " (--set)" or " (the default)"). The first match is reported.
 */
struct scenario_conflict_rule {
	int key, other;
	bool (*broken)(const struct scenario *sc);
	void (*say)(const struct scenario *sc, const char *how_key, const char *how_other, char *buf, size_t len);
};

#define ULL(x) ((unsigned long long)(x))

static bool ack_every_broken(const struct scenario *sc)
{
	return sc->consumers.prefetch > 0 && sc->consumers.ack_every > sc->consumers.prefetch;
}

static void ack_every_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	snprintf(buf, len,
		 "consumers.ack_every = %llu%s exceeds consumers.prefetch = %llu%s: with at most %llu unacked "
		 "messages the multiple-ack every %llu would never be sent and the consumers would stall; allowed: "
		 "ack_every <= prefetch, or prefetch = 0 (no limit)",
		 ULL(sc->consumers.ack_every), hk, ULL(sc->consumers.prefetch), ho, ULL(sc->consumers.prefetch),
		 ULL(sc->consumers.ack_every));
}

static bool commit_ok_broken(const struct scenario *sc)
{
	return sc->faults.commit_ok_loss > 0 && sc->publishers.mode != SCENARIO_MODE_TX;
}

static void commit_ok_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)sc, (void)hk;
	snprintf(buf, len,
		 "faults.commit_ok_loss needs publishers.mode = tx (mode is confirm%s, which sends no Tx.CommitOk); "
		 "use faults.confirm_loss for confirm mode",
		 ho);
}

static bool confirm_broken(const struct scenario *sc)
{
	return sc->faults.confirm_loss > 0 && sc->publishers.mode != SCENARIO_MODE_CONFIRM;
}

static void confirm_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)sc, (void)hk;
	snprintf(buf, len,
		 "faults.confirm_loss needs publishers.mode = confirm (mode is tx%s, which gets no confirms); use "
		 "faults.commit_ok_loss for tx mode",
		 ho);
}

static bool ack_loss_broken(const struct scenario *sc)
{
	return sc->faults.ack_loss > 0 && sc->consumers.count == 0;
}

static void ack_loss_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)sc, (void)hk;
	snprintf(buf, len,
		 "faults.ack_loss needs consumers (consumers.count is 0%s, so no ack is ever sent); set "
		 "consumers.count >= 1 or ack_loss = 0",
		 ho);
}

static bool crash_broken(const struct scenario *sc)
{
	return sc->faults.consumer_crash > 0 && sc->consumers.count == 0;
}

static void crash_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)sc, (void)hk;
	snprintf(buf, len,
		 "faults.consumer_crash needs consumers (consumers.count is 0%s); set consumers.count >= 1 or "
		 "consumer_crash = 0",
		 ho);
}

static bool broker_crash_broken(const struct scenario *sc)
{
	return sc->faults.broker_crash_every_ns > 0 && strcmp(sc->broker.url, "embedded") != 0;
}

static void broker_crash_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)hk;
	snprintf(buf, len,
		 "faults.broker_crash_every needs broker.url = embedded (url is %s%s): dupsim can kill -9 only a "
		 "node it started",
		 sc->broker.url, ho);
}

static bool broker_down_broken(const struct scenario *sc)
{
	return sc->faults.broker_crash_every_ns > 0 && sc->faults.broker_crash_every_ns <= sc->faults.broker_down_ns;
}

static void broker_down_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	char d1[32], d2[32];

	(void)hk;
	snprintf(buf, len,
		 "faults.broker_crash_every = %s is not longer than faults.broker_down = %s%s: the broker would be "
		 "killed again before it is back; allowed: broker_crash_every > broker_down",
		 clock_fmt_duration(sc->faults.broker_crash_every_ns, d1, sizeof(d1)),
		 clock_fmt_duration(sc->faults.broker_down_ns, d2, sizeof(d2)), ho);
}

static bool capacity_broken(const struct scenario *sc)
{
	return sc->dedup.capacity > 0 &&
	       (sc->dedup.store == SCENARIO_STORE_REDIS || sc->dedup.store == SCENARIO_STORE_TOKYOCABINET ||
		sc->dedup.store == SCENARIO_STORE_POSTGRES);
}

static void capacity_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)hk;
	snprintf(buf, len,
		 "dedup.capacity bounds the memory store only (store is %s%s): redis evicts by memory, not by key "
		 "count, and tokyocabinet and postgres keep every key; set capacity = 0 or store = memory",
		 stores[sc->dedup.store], ho);
}

static bool sync_broken(const struct scenario *sc)
{
	return sc->dedup.sync && sc->dedup.store != SCENARIO_STORE_TOKYOCABINET;
}

static void sync_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)hk;
	snprintf(buf, len, "dedup.sync = true applies to store = tokyocabinet only (store is %s%s)",
		 stores[sc->dedup.store], ho);
}

static bool url_broken(const struct scenario *sc)
{
	return strcmp(sc->dedup.url, "embedded") != 0 && sc->dedup.store != SCENARIO_STORE_REDIS;
}

static void url_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)hk;
	snprintf(buf, len, "dedup.url = %s applies to store = redis only (store is %s%s)", sc->dedup.url,
		 stores[sc->dedup.store], ho);
}

static bool cooldown_broken(const struct scenario *sc)
{
	return sc->faults.cooldown_ns > 0 && sc->faults.cooldown_ns >= sc->run.drain_timeout_ns;
}

static void cooldown_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	char d1[32], d2[32];

	(void)hk;
	snprintf(buf, len,
		 "faults.cooldown = %s is not shorter than run.drain_timeout = %s%s: the drain would time out "
		 "before the cool-down is over; allowed: cooldown < drain_timeout",
		 clock_fmt_duration(sc->faults.cooldown_ns, d1, sizeof(d1)),
		 clock_fmt_duration(sc->run.drain_timeout_ns, d2, sizeof(d2)), ho);
}

/* The first schedule whose window closes before the warm-up is over, or NULL. */
static const struct rule *scenario_schedule_in_warmup(const struct scenario *sc)
{
	for (size_t i = 0; i < sc->faults.schedule_count; i++)
		if (sc->faults.schedules[i].until_ns <= sc->faults.warmup_ns)
			return &sc->faults.schedules[i];
	return NULL;
}

static bool warmup_broken(const struct scenario *sc)
{
	return scenario_schedule_in_warmup(sc) != NULL;
}

static void warmup_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	char d[32];

	(void)ho;
	snprintf(buf, len,
		 "faults.schedule '%s' is over before faults.warmup = %s%s ends, so it could never fire; allowed: "
		 "END after the warm-up",
		 scenario_schedule_in_warmup(sc)->text, clock_fmt_duration(sc->faults.warmup_ns, d, sizeof(d)), hk);
}

/* issue 13, broker timeouts: consumer_timeout is set on a node dupsim starts, never on another broker */
static bool consumer_timeout_broken(const struct scenario *sc)
{
	return sc->broker.consumer_timeout_ns > 0 && strcmp(sc->broker.url, "embedded") != 0;
}

static void consumer_timeout_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)hk;
	snprintf(buf, len,
		 "broker.consumer_timeout needs broker.url = embedded (url is %s%s): dupsim sets it in the config "
		 "of a node it starts; set it on your broker (consumer_timeout in rabbitmq.conf) and drop the key",
		 sc->broker.url, ho);
}

static bool slow_broken(const struct scenario *sc)
{
	return sc->consumers.slow > 0 && sc->consumers.slow_work_ns == 0;
}

static void slow_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)sc, (void)hk;
	snprintf(buf, len, "consumers.slow needs consumers.slow_work, how long a slow delivery takes (it is 0%s); "
		 "set slow_work, e.g. 3s, or slow = 0", ho);
}

static bool heartbeat_broken(const struct scenario *sc)
{
	return sc->consumers.heartbeat_ns % SEC != 0;
}

static void heartbeat_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	char d[32];

	(void)ho, (void)hk;
	snprintf(buf, len, "consumers.heartbeat = %s is not whole seconds: AMQP negotiates the heartbeat in seconds; "
		 "allowed: 0 (none) or 1s, 2s, ...", clock_fmt_duration(sc->consumers.heartbeat_ns, d, sizeof(d)));
}

/* issue 13, alarms, requeues and delivery limits: what each key needs */
static bool delivery_limit_broken(const struct scenario *sc)
{
	return sc->broker.delivery_limit > 0 && sc->broker.queue_type != SCENARIO_QUEUE_QUORUM;
}

static void delivery_limit_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)sc;
	(void)hk;
	snprintf(buf, len, "broker.delivery_limit needs broker.queue_type = quorum (x-delivery-limit is a quorum "
		 "queue's argument; queue_type is classic%s); set queue_type = quorum or drop delivery_limit", ho);
}

static bool dlq_replay_broken(const struct scenario *sc)
{
	return sc->faults.dlq_replay_after_ns > 0 && !sc->broker.dead_letter;
}

static void dlq_replay_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)sc;
	(void)hk;
	snprintf(buf, len, "faults.dlq_replay_after replays the dead-letter queue, but broker.dead_letter is "
		 "false%s; set dead_letter = true", ho);
}

static bool memory_alarm_broken(const struct scenario *sc)
{
	return sc->faults.memory_alarm_until_ns > 0 && strcmp(sc->broker.url, "embedded") != 0;
}

static void memory_alarm_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)hk;
	snprintf(buf, len, "faults.memory_alarm needs broker.url = embedded (url is %s%s): dupsim raises the alarm "
		 "only on a node it started", sc->broker.url, ho);
}

/* ---- issue 14: a cluster ---- */

static bool nodes_url_broken(const struct scenario *sc)
{
	return sc->cluster.nodes > 1 && strcmp(sc->broker.url, "embedded") != 0;
}

static void nodes_url_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)hk;
	snprintf(buf, len, "broker.nodes = %llu starts a private cluster, but broker.url is %s%s; for a cluster of "
		 "yours, list its nodes in broker.url (amqp://a,amqp://b,...) and leave nodes = 1",
		 (unsigned long long)sc->cluster.nodes, sc->broker.url, ho);
}

static bool nodes_quorum_broken(const struct scenario *sc)
{
	return sc->cluster.nodes > 1 && sc->broker.queue_type != SCENARIO_QUEUE_QUORUM;
}

static void nodes_quorum_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)hk;
	snprintf(buf, len, "broker.nodes = %llu needs broker.queue_type = quorum%s: a classic queue lives on one "
		 "node, a quorum queue is replicated on all of them",
		 (unsigned long long)sc->cluster.nodes, ho);
}

static bool nodes_crash_broken(const struct scenario *sc)
{
	return sc->cluster.nodes > 1 && sc->faults.broker_crash_every_ns > 0;
}

static void nodes_crash_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)sc;
	(void)hk;
	snprintf(buf, len, "faults.broker_crash_every kills the one private node%s; in a cluster use "
		 "faults.leader_kill (kill -9 of the queue's leader)", ho);
}

static bool nodes_alarm_broken(const struct scenario *sc)
{
	return sc->cluster.nodes > 1 && sc->faults.memory_alarm_until_ns > 0;
}

static void nodes_alarm_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)sc;
	(void)hk;
	snprintf(buf, len, "faults.memory_alarm is raised on one private node%s, not yet on a cluster; leave it out "
		 "with broker.nodes = 3", ho);
}

static bool leader_kill_broken(const struct scenario *sc)
{
	return sc->cluster.leader_kill_ns > 0 && sc->cluster.nodes < 2;
}

static bool partition_broken(const struct scenario *sc)
{
	return sc->cluster.partition_until_ns > 0 && sc->cluster.nodes < 2;
}

static bool bridge_broken(const struct scenario *sc)
{
	return sc->cluster.bridge_until_ns > 0 && sc->cluster.nodes < 2;
}

static void cluster_fault_text(const char *key, const struct scenario *sc, const char *hk, char *buf, size_t len)
{
	bool own = strcmp(sc->broker.url, "embedded") != 0;

	snprintf(buf, len, "%s%s needs a private cluster (broker.nodes = 3)%s", key, hk,
		 own ? ": it kills or cuts off nodes, which needs root on their hosts, and dupsim has that only on "
		       "the test hosts it makes; against your own cluster leave it out"
		     : "; set broker.nodes = 3 (as root)");
}

static void leader_kill_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)ho;
	cluster_fault_text("faults.leader_kill", sc, hk, buf, len);
}

static void partition_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)ho;
	cluster_fault_text("faults.partition", sc, hk, buf, len);
}

static void bridge_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)ho;
	cluster_fault_text("faults.bridge", sc, hk, buf, len);
}

static bool partitions_overlap(const struct scenario *sc)
{
	const struct scenario_cluster *c = &sc->cluster;

	return c->partition_until_ns > 0 && c->bridge_until_ns > 0 && c->partition_from_ns < c->bridge_until_ns &&
	       c->bridge_from_ns < c->partition_until_ns;
}

static void partitions_overlap_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)sc;
	snprintf(buf, len, "faults.partition%s overlaps faults.bridge%s; give them windows apart", hk, ho);
}

static bool nack_app_broken(const struct scenario *sc)
{
	return sc->consumers.nack_requeue > 0 && scenario_has_app(sc);
}

static void nack_app_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)sc;
	(void)hk;
	snprintf(buf, len, "consumers.nack_requeue is for dupsim's own consumers, but app.consumer%s makes your app "
		 "consume instead; remove it (your app nacks as it does)", ho);
}

/* issue 13: the store's own faults need a redis that dupsim started (it kills, stops and configures it). */
static bool store_private_redis(const struct scenario *sc)
{
	return sc->dedup.store == SCENARIO_STORE_REDIS && strcmp(sc->dedup.url, "embedded") == 0;
}

static void store_redis_say(const char *key, const struct scenario *sc, const char *ho, char *buf, size_t len)
{
	snprintf(buf, len,
		 "%s needs dupsim's own redis: dedup.store = redis and dedup.url = embedded (store is %s, url %s%s); "
		 "dupsim can restart, stop or configure only a redis it started",
		 key, stores[sc->dedup.store], sc->dedup.url, ho);
}

static bool store_restart_broken(const struct scenario *sc)
{
	return sc->store.restart_every_ns && !store_private_redis(sc);
}

static void store_restart_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)hk;
	store_redis_say("faults.store_restart_every", sc, ho, buf, len);
}

static bool store_down_broken(const struct scenario *sc)
{
	return sc->store.down_until_ns && !store_private_redis(sc);
}

static void store_down_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)hk;
	store_redis_say("faults.store_down", sc, ho, buf, len);
}

static bool maxmemory_broken(const struct scenario *sc)
{
	return sc->store.redis_maxmemory && !store_private_redis(sc);
}

static void maxmemory_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)hk;
	store_redis_say("dedup.redis_maxmemory", sc, ho, buf, len);
}

static bool store_timeout_broken(const struct scenario *sc)
{
	return sc->store.timeout_ns != 2 * SEC && sc->dedup.store != SCENARIO_STORE_REDIS;
}

static void store_timeout_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)hk;
	snprintf(buf, len, "dedup.timeout applies to store = redis only (store is %s%s)", stores[sc->dedup.store], ho);
}

static bool on_error_broken(const struct scenario *sc)
{
	return sc->store.on_error != SCENARIO_ON_ERROR_OPEN && sc->dedup.store == SCENARIO_STORE_NONE;
}

static void on_error_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)sc, (void)hk;
	snprintf(buf, len, "dedup.on_error = closed describes a dedup store, but dedup.store = none%s", ho);
}

static bool store_down_warmup_broken(const struct scenario *sc)
{
	return sc->store.down_until_ns && sc->store.down_until_ns <= sc->faults.warmup_ns;
}

static void store_down_warmup_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	char d[32];

	(void)hk;
	snprintf(buf, len, "faults.store_down ends before faults.warmup = %s%s is over, so the store would never go "
		 "down; allowed: END after the warm-up", clock_fmt_duration(sc->faults.warmup_ns, d, sizeof(d)), ho);
}

/* issue 14: hosts.store = own moves dupsim's own redis; the store keys of the link need that host. */
static bool hosts_store_broken(const struct scenario *sc)
{
	return sc->hosts.store == SCENARIO_HOSTS_STORE_OWN && !store_private_redis(sc);
}

static void hosts_store_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)hk;
	snprintf(buf, len,
		 "hosts.store = own needs dupsim's own redis: dedup.store = redis and dedup.url = embedded (store is "
		 "%s, url %s%s); dupsim can move only a redis it starts onto a test host", stores[sc->dedup.store],
		 sc->dedup.url, ho);
}

static bool hosts_link_needs_own(const struct scenario *sc, bool set)
{
	return set && sc->hosts.store != SCENARIO_HOSTS_STORE_OWN;
}

static void hosts_link_say(const char *key, const char *ho, char *buf, size_t len)
{
	snprintf(buf, len, "hosts.%s describes the link to the store's own test host, but hosts.store = local%s; set "
		 "hosts.store = own (root; dedup.store = redis, dedup.url = embedded), or drop hosts.%s", key, ho, key);
}

static bool hosts_rtt_broken(const struct scenario *sc)
{
	return hosts_link_needs_own(sc, sc->hosts.store_rtt_ns > 0);
}

static void hosts_rtt_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)sc, (void)hk;
	hosts_link_say("store_rtt", ho, buf, len);
}

static bool hosts_jitter_broken(const struct scenario *sc)
{
	return hosts_link_needs_own(sc, sc->hosts.store_jitter_ns > 0);
}

static void hosts_jitter_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)sc, (void)hk;
	hosts_link_say("store_jitter", ho, buf, len);
}

static bool hosts_loss_broken(const struct scenario *sc)
{
	return hosts_link_needs_own(sc, sc->hosts.store_loss > 0);
}

static void hosts_loss_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)sc, (void)hk;
	hosts_link_say("store_loss", ho, buf, len);
}

/* Jitter varies each way's delay (rtt / 2) by up to itself: more would ask for a delay below zero. */
static bool hosts_jitter_rtt_broken(const struct scenario *sc)
{
	return sc->hosts.store_jitter_ns > sc->hosts.store_rtt_ns / 2;
}

/* A link's jitter over half its RTT (link: "store" or "consumer"). */
static void hosts_jitter_over(const char *link, uint64_t jitter_ns, uint64_t rtt_ns, const char *hk, const char *ho,
			      char *buf, size_t len)
{
	char j[32], r[32];

	snprintf(buf, len, "hosts.%s_jitter = %s%s is more than half of hosts.%s_rtt = %s%s: jitter varies each "
		 "way's delay (rtt / 2), which cannot go below zero; allowed: %s_jitter <= %s_rtt / 2", link,
		 clock_fmt_duration(jitter_ns, j, sizeof(j)), hk, link, clock_fmt_duration(rtt_ns, r, sizeof(r)), ho,
		 link, link);
}

static void hosts_jitter_rtt_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	hosts_jitter_over("store", sc->hosts.store_jitter_ns, sc->hosts.store_rtt_ns, hk, ho, buf, len);
}

/* issue 14: hosts.consumers = own puts each consumer on a test host; what it needs, and its link's keys. */
#define HOSTS_CONSUMERS_MAX 8 /* test hosts left beside a cluster's 3 and the store's */

static uint64_t hosts_consumer_count(const struct scenario *sc)
{
	return scenario_has_app(sc) ? sc->app.instances : sc->consumers.count;
}

static bool hosts_consumers_own(const struct scenario *sc)
{
	return sc->hosts.consumers == SCENARIO_HOSTS_CONSUMERS_OWN;
}

static bool hosts_consumers_many_broken(const struct scenario *sc)
{
	return hosts_consumers_own(sc) && hosts_consumer_count(sc) > HOSTS_CONSUMERS_MAX;
}

static void hosts_consumers_many_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)ho;
	snprintf(buf, len, "hosts.consumers = own%s makes a test host for each of %llu %s; allowed: at most %d", hk,
		 ULL(hosts_consumer_count(sc)), scenario_has_app(sc) ? "app instances (app.instances)" : "consumers "
		 "(consumers.count)", HOSTS_CONSUMERS_MAX);
}

/* A store in dupsim's memory (or its file) can't be shared by consumers on other hosts. */
static bool hosts_consumers_shared_broken(const struct scenario *sc)
{
	return hosts_consumers_own(sc) && !scenario_has_app(sc) && sc->dedup.scope == SCENARIO_SCOPE_SHARED &&
	       (sc->dedup.store == SCENARIO_STORE_MEMORY || sc->dedup.store == SCENARIO_STORE_TOKYOCABINET);
}

static void hosts_consumers_shared_say(const struct scenario *sc, const char *hk, const char *ho, char *buf,
				       size_t len)
{
	snprintf(buf, len, "hosts.consumers = own%s puts each consumer on a host of its own, but dedup.store = %s with "
		 "scope = shared%s lives in dupsim's process, which no other host can reach; share a store over the "
		 "network (dedup.store = redis or postgres), or use dedup.scope = local", hk, stores[sc->dedup.store], ho);
}

/* Loopback on a test host is the host's own: only a store dupsim starts is put where the hosts reach it. */
static bool hosts_consumers_url_broken(const struct scenario *sc)
{
	return hosts_consumers_own(sc) && sc->dedup.store == SCENARIO_STORE_REDIS && strcmp(sc->dedup.url, "embedded");
}

static void hosts_consumers_url_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	snprintf(buf, len, "hosts.consumers = own%s needs dupsim's own redis (dedup.url = embedded), not %s%s: dupsim "
		 "serves its redis to the test hosts, while a redis of yours may not be reachable from them",
		 hk, sc->dedup.url, ho);
}

static bool hosts_consumer_link_needs_own(const struct scenario *sc, bool set)
{
	return set && !hosts_consumers_own(sc);
}

static void hosts_consumer_link_say(const char *key, const char *ho, char *buf, size_t len)
{
	snprintf(buf, len, "hosts.%s describes the link of each consumer's own test host, but hosts.consumers = "
		 "local%s; set hosts.consumers = own (root), or drop hosts.%s", key, ho, key);
}

static bool hosts_consumer_rtt_broken(const struct scenario *sc)
{
	return hosts_consumer_link_needs_own(sc, sc->hosts.consumer_rtt_ns > 0);
}

static void hosts_consumer_rtt_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)sc, (void)hk;
	hosts_consumer_link_say("consumer_rtt", ho, buf, len);
}

static bool hosts_consumer_jitter_own_broken(const struct scenario *sc)
{
	return hosts_consumer_link_needs_own(sc, sc->hosts.consumer_jitter_ns > 0);
}

static void hosts_consumer_jitter_own_say(const struct scenario *sc, const char *hk, const char *ho, char *buf,
					  size_t len)
{
	(void)sc, (void)hk;
	hosts_consumer_link_say("consumer_jitter", ho, buf, len);
}

static bool hosts_consumer_loss_broken(const struct scenario *sc)
{
	return hosts_consumer_link_needs_own(sc, sc->hosts.consumer_loss > 0);
}

static void hosts_consumer_loss_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	(void)sc, (void)hk;
	hosts_consumer_link_say("consumer_loss", ho, buf, len);
}

static bool hosts_consumer_jitter_broken(const struct scenario *sc)
{
	return sc->hosts.consumer_jitter_ns > sc->hosts.consumer_rtt_ns / 2;
}

static void hosts_consumer_jitter_say(const struct scenario *sc, const char *hk, const char *ho, char *buf, size_t len)
{
	hosts_jitter_over("consumer", sc->hosts.consumer_jitter_ns, sc->hosts.consumer_rtt_ns, hk, ho, buf, len);
}

static const struct scenario_conflict_rule scenario_conflicts[] = {
	/* issue 13, faults of the dedup store itself */
	{ K_FAULT_STORE_RESTART_EVERY, K_DEDUP_STORE, store_restart_broken, store_restart_say },
	{ K_FAULT_STORE_DOWN, K_DEDUP_STORE, store_down_broken, store_down_say },
	{ K_DEDUP_REDIS_MAXMEMORY, K_DEDUP_STORE, maxmemory_broken, maxmemory_say },
	{ K_DEDUP_TIMEOUT, K_DEDUP_STORE, store_timeout_broken, store_timeout_say },
	{ K_DEDUP_ON_ERROR, K_DEDUP_STORE, on_error_broken, on_error_say },
	{ K_FAULT_STORE_DOWN, K_FAULT_WARMUP, store_down_warmup_broken, store_down_warmup_say },
	/* the keys before issue 13 */
	{ K_CONS_ACK_EVERY, K_CONS_PREFETCH, ack_every_broken, ack_every_say },
	{ K_FAULT_COMMIT_OK_LOSS, K_PUB_MODE, commit_ok_broken, commit_ok_say },
	{ K_FAULT_CONFIRM_LOSS, K_PUB_MODE, confirm_broken, confirm_say },
	{ K_FAULT_ACK_LOSS, K_CONS_COUNT, ack_loss_broken, ack_loss_say },
	{ K_FAULT_CONSUMER_CRASH, K_CONS_COUNT, crash_broken, crash_say },
	{ K_FAULT_BROKER_CRASH_EVERY, K_BROKER_URL, broker_crash_broken, broker_crash_say },
	{ K_FAULT_BROKER_CRASH_EVERY, K_FAULT_BROKER_DOWN, broker_down_broken, broker_down_say },
	{ K_DEDUP_CAPACITY, K_DEDUP_STORE, capacity_broken, capacity_say },
	{ K_DEDUP_SYNC, K_DEDUP_STORE, sync_broken, sync_say },
	{ K_DEDUP_URL, K_DEDUP_STORE, url_broken, url_say },
	{ K_FAULT_COOLDOWN, K_RUN_DRAIN_TIMEOUT, cooldown_broken, cooldown_say },
	{ K_FAULT_WARMUP, K_FAULT_SCHEDULE, warmup_broken, warmup_say },
	/* issue 13, broker timeouts */
	{ K_BROKER_CONSUMER_TIMEOUT, K_BROKER_URL, consumer_timeout_broken, consumer_timeout_say },
	{ K_CONS_SLOW, K_CONS_SLOW_WORK, slow_broken, slow_say },
	{ K_CONS_HEARTBEAT, K_CONS_HEARTBEAT, heartbeat_broken, heartbeat_say },
	/* issue 13, alarms, requeues and delivery limits */
	{ K_BROKER_DELIVERY_LIMIT, K_BROKER_QUEUE_TYPE, delivery_limit_broken, delivery_limit_say },
	{ K_FAULT_DLQ_REPLAY_AFTER, K_BROKER_DEAD_LETTER, dlq_replay_broken, dlq_replay_say },
	{ K_FAULT_MEMORY_ALARM, K_BROKER_URL, memory_alarm_broken, memory_alarm_say },
	{ K_CONS_NACK_REQUEUE, K_APP_CONSUMER, nack_app_broken, nack_app_say },
	/* issue 14: a cluster */
	{ K_BROKER_NODES, K_BROKER_URL, nodes_url_broken, nodes_url_say },
	{ K_BROKER_NODES, K_BROKER_QUEUE_TYPE, nodes_quorum_broken, nodes_quorum_say },
	{ K_BROKER_NODES, K_FAULT_BROKER_CRASH_EVERY, nodes_crash_broken, nodes_crash_say },
	{ K_BROKER_NODES, K_FAULT_MEMORY_ALARM, nodes_alarm_broken, nodes_alarm_say },
	{ K_FAULT_LEADER_KILL, K_BROKER_NODES, leader_kill_broken, leader_kill_say },
	{ K_FAULT_PARTITION, K_BROKER_NODES, partition_broken, partition_say },
	{ K_FAULT_BRIDGE, K_BROKER_NODES, bridge_broken, bridge_say },
	{ K_FAULT_PARTITION, K_FAULT_BRIDGE, partitions_overlap, partitions_overlap_say },
	/* issue 14: hosts */
	{ K_HOSTS_STORE, K_DEDUP_STORE, hosts_store_broken, hosts_store_say },
	{ K_HOSTS_STORE_RTT, K_HOSTS_STORE, hosts_rtt_broken, hosts_rtt_say },
	{ K_HOSTS_STORE_JITTER, K_HOSTS_STORE, hosts_jitter_broken, hosts_jitter_say },
	{ K_HOSTS_STORE_LOSS, K_HOSTS_STORE, hosts_loss_broken, hosts_loss_say },
	{ K_HOSTS_STORE_JITTER, K_HOSTS_STORE_RTT, hosts_jitter_rtt_broken, hosts_jitter_rtt_say },
	{ K_HOSTS_CONSUMERS, K_CONS_COUNT, hosts_consumers_many_broken, hosts_consumers_many_say },
	{ K_HOSTS_CONSUMERS, K_DEDUP_SCOPE, hosts_consumers_shared_broken, hosts_consumers_shared_say },
	{ K_HOSTS_CONSUMERS, K_DEDUP_URL, hosts_consumers_url_broken, hosts_consumers_url_say },
	{ K_HOSTS_CONSUMER_RTT, K_HOSTS_CONSUMERS, hosts_consumer_rtt_broken, hosts_consumer_rtt_say },
	{ K_HOSTS_CONSUMER_JITTER, K_HOSTS_CONSUMERS, hosts_consumer_jitter_own_broken, hosts_consumer_jitter_own_say },
	{ K_HOSTS_CONSUMER_LOSS, K_HOSTS_CONSUMERS, hosts_consumer_loss_broken, hosts_consumer_loss_say },
	{ K_HOSTS_CONSUMER_JITTER, K_HOSTS_CONSUMER_RTT, hosts_consumer_jitter_broken, hosts_consumer_jitter_say },
};

/* store = none with a key that describes a store: the first such key set away from its default. */
static int scenario_check_store_none(const struct scenario *sc, char *err, size_t errlen)
{
	static const int store_keys[] = { K_DEDUP_SCOPE, K_DEDUP_TTL, K_DEDUP_CAPACITY, K_DEDUP_CHECK, K_DEDUP_MARK };
	struct scenario def;
	char how[64];

	if (sc->dedup.store != SCENARIO_STORE_NONE)
		return 0;
	scenario_init_defaults(&def, NULL);
	for (size_t i = 0; i < sizeof(store_keys) / sizeof(store_keys[0]); i++) {
		const struct scenario_key *k = &scenario_keys[store_keys[i]];

		if (memcmp((const char *)sc + k->off, (const char *)&def + k->off,
			   k->kind == KIND_ENUM ? sizeof(int) : sizeof(uint64_t)) == 0)
			continue;
		scenario_how(sc, K_DEDUP_STORE, how, sizeof(how));
		return scenario_conflict(sc, err, errlen, store_keys[i], K_DEDUP_STORE,
					 "dedup.%s describes a dedup store, but dedup.store = none%s; set store = "
					 "memory, redis or tokyocabinet, or drop dedup.%s",
					 k->name, how, k->name);
	}
	return 0;
}

/* Keys only dupsim's own consumer threads use: refused with [app], which replaces them. */
static const int app_refused[] = {
	K_CONS_COUNT, K_CONS_PREFETCH, K_CONS_ACK_EVERY, K_CONS_WORK, K_FAULT_CONSUMER_CRASH, K_FAULT_CONSUMER_CRASH_AT,
	K_DEDUP_SCOPE, K_DEDUP_TTL, K_DEDUP_CAPACITY, K_DEDUP_CHECK, K_DEDUP_MARK, K_DEDUP_SYNC,
	K_CONS_SLOW, K_CONS_SLOW_WORK, K_CONS_HEARTBEAT, /* issue 13, broker timeouts */
	K_DEDUP_ON_ERROR, K_DEDUP_TIMEOUT, /* issue 13: how dupsim's consumers treat a failing store */
};
/* Keys that mean something only with [app] consumer. */
static const int app_only[] = { K_APP_INSTANCES, K_APP_CRASH_EVERY, K_APP_RESTART_DELAY };

/* [app] (DESIGN.md, "Your own application"): what it replaces, and what needs it. */
static int scenario_check_app(const struct scenario *sc, char *err, size_t errlen)
{
	char where[4200], how[64];

	if (!scenario_has_app(sc)) {
		for (size_t i = 0; i < sizeof(app_only) / sizeof(app_only[0]); i++) {
			if (!sc->origin[app_only[i]])
				continue;
			scenario_where(sc, app_only[i], where, sizeof(where));
			return log_seterr(err, errlen, "%sapp.%s needs app.consumer (the command of your consumer); "
					"set it, or remove app.%s to run dupsim's own consumers", where,
					scenario_keys[app_only[i]].name, scenario_keys[app_only[i]].name);
		}
		return 0;
	}
	scenario_how(sc, K_APP_CONSUMER, how, sizeof(how));
	for (size_t i = 0; i < sizeof(app_refused) / sizeof(app_refused[0]); i++) {
		const struct scenario_key *k = &scenario_keys[app_refused[i]];

		if (!sc->origin[app_refused[i]])
			continue;
		scenario_where(sc, app_refused[i], where, sizeof(where));
		return log_seterr(err, errlen, "%s%s.%s is for dupsim's own consumers, but app.consumer%s makes your "
				"app consume instead; remove it (the app's own settings are its own; "
				"app.instances and app.crash_every are dupsim's)", where, k->section, k->name, how);
	}
	if (sc->origin[K_DEDUP_STORE] && sc->dedup.store != SCENARIO_STORE_NONE &&
	    sc->dedup.store != SCENARIO_STORE_REDIS && sc->dedup.store != SCENARIO_STORE_POSTGRES) {
		scenario_where(sc, K_DEDUP_STORE, where, sizeof(where));
		return log_seterr(err, errlen, "%sdedup.store = %s with app.consumer%s: your app has its own store; "
				"allowed: none, or redis (dupsim starts a private redis and hands it over "
				"in DUPSIM_REDIS_URL), or postgres (a private PostgreSQL, in DUPSIM_PG_URL)", where,
				stores[sc->dedup.store], how);
	}
	return 0;
}

int scenario_check(const struct scenario *sc, char *err, size_t errlen)
{
	if (scenario_check_app(sc, err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(scenario_conflicts) / sizeof(scenario_conflicts[0]); i++) {
		const struct scenario_conflict_rule *c = &scenario_conflicts[i];
		char hk[64], ho[64], msg[768];

		if (c->key == K_DEDUP_CAPACITY && scenario_check_store_none(sc, err, errlen) < 0)
			return -1; /* in the order the checks always had */
		if (!c->broken(sc))
			continue;
		scenario_how(sc, c->key, hk, sizeof(hk));
		scenario_how(sc, c->other, ho, sizeof(ho));
		c->say(sc, hk, ho, msg, sizeof(msg));
		return scenario_conflict(sc, err, errlen, c->key, c->other, "%s", msg);
	}
	return 0;
}

/* ---- rules for the proxy ---------------------------------------------- */

int scenario_rules(const struct scenario *sc, struct rule **out, size_t *count, char *err, size_t errlen)
{
	const struct {
		double p;
		const char *what;
	} shortcuts[] = {
		{ sc->faults.commit_ok_loss, "drop tx.commit-ok from=broker" },
		{ sc->faults.confirm_loss, "drop basic.ack from=broker" },
		{ sc->faults.confirm_loss, "drop basic.nack from=broker" },
		{ sc->faults.ack_loss, "drop basic.ack from=client" },
	};
	size_t n = 0, cap = sizeof(shortcuts) / sizeof(shortcuts[0]) + sc->faults.rule_count + sc->faults.schedule_count;
	struct rule *rules = malloc(cap * sizeof(*rules));

	*out = NULL;
	*count = 0;
	if (!rules)
		return log_seterr(err, errlen, "out of memory");
	for (size_t i = 0; i < sizeof(shortcuts) / sizeof(shortcuts[0]); i++) {
		char text[160], p[32], msg[512];

		if (shortcuts[i].p <= 0)
			continue;
		scenario_fmt_double(shortcuts[i].p, p, sizeof(p));
		snprintf(text, sizeof(text), "%s p=%s then=%s", shortcuts[i].what, p,
			 on_loss_names[sc->faults.on_loss]);
		if (rule_parse(text, &rules[n++], msg, sizeof(msg)) < 0) /* our own text: a broken invariant */
			abort();
	}
	for (size_t i = 0; i < sc->faults.rule_count; i++)
		rules[n++] = sc->faults.rules[i];
	for (size_t i = 0; i < sc->faults.schedule_count; i++)
		rules[n++] = sc->faults.schedules[i];
	if (n == 0) {
		free(rules);
		return 0;
	}
	*out = rules;
	*count = n;
	return 0;
}

/* ---- the effective file ----------------------------------------------- */

/* Keys the effective file leaves out, so that it reads back: [app]'s without an app, and with one, the keys it refuses. */
static bool scenario_write_skips(const struct scenario *sc, int k)
{
	bool app = scenario_has_app(sc);

	if (k == K_APP_CONSUMER)
		return !app;
	if (k == K_PROXY_API) /* "no API" has no spelling: the key is left out */
		return !sc->proxy.api[0];
	if (k == K_FAULT_STORE_DOWN)
		return !sc->store.down_until_ns;
	if (k == K_DEDUP_STORE && app) /* the default, memory, means nothing to an app */
		return sc->dedup.store != SCENARIO_STORE_NONE && sc->dedup.store != SCENARIO_STORE_REDIS &&
		       sc->dedup.store != SCENARIO_STORE_POSTGRES;
	for (size_t i = 0; i < sizeof(app_only) / sizeof(app_only[0]); i++)
		if (app_only[i] == k)
			return !app;
	for (size_t i = 0; i < sizeof(app_refused) / sizeof(app_refused[0]); i++)
		if (app_refused[i] == k)
			return app;
	return false;
}

int scenario_write(const struct scenario *sc, FILE *f)
{
	const char *section = "";

	fputs("; effective scenario: every key with the value the run used (dupsim run reads it back)\n", f);
	for (int i = 0; i < K_COUNT; i++) {
		const struct scenario_key *k = &scenario_keys[i];
		const char *field = (const char *)sc + k->off;
		char buf[64];
		uint64_t u;
		double p;
		bool b;

		if (scenario_write_skips(sc, i))
			continue;
		if (strcmp(section, k->section) != 0) {
			section = k->section;
			fprintf(f, "\n[%s]\n", section);
		}
		switch (k->kind) {
		case KIND_U64:
			memcpy(&u, field, sizeof(u));
			fprintf(f, "%s = %llu\n", k->name, (unsigned long long)u);
			break;
		case KIND_DURATION:
			memcpy(&u, field, sizeof(u));
			fprintf(f, "%s = %s\n", k->name, clock_fmt_duration(u, buf, sizeof(buf)));
			break;
		case KIND_PROB:
			memcpy(&p, field, sizeof(p));
			scenario_fmt_double(p, buf, sizeof(buf));
			fprintf(f, "%s = %s\n", k->name, buf);
			break;
		case KIND_BOOL:
			memcpy(&b, field, sizeof(b));
			fprintf(f, "%s = %s\n", k->name, b ? "true" : "false");
			break;
		case KIND_ENUM:
			fprintf(f, "%s = %s\n", k->name, k->choices[scenario_enum_get(sc, k)]);
			break;
		case KIND_NAME:
		case KIND_QUEUE:
		case KIND_AMQP_URL:
		case KIND_REDIS_URL:
		case KIND_COMMAND:
		case KIND_HOSTPORT:
			fprintf(f, "%s = %s\n", k->name, field);
			break;
		case KIND_RULE:
			for (size_t r = 0; r < sc->faults.rule_count; r++)
				fprintf(f, "rule = %s\n", sc->faults.rules[r].text);
			break;
		case KIND_SCHEDULE:
			for (size_t r = 0; r < sc->faults.schedule_count; r++)
				fprintf(f, "schedule = %s\n", sc->faults.schedules[r].text);
			break;
		case KIND_WINDOW: {
			uint64_t w[2];
			char b2[32];

			memcpy(w, field, sizeof(w));
			if (!w[1])
				fprintf(f, "%s = none\n", k->name);
			else
				fprintf(f, "%s = %s-%s\n", k->name, clock_fmt_duration(w[0], buf, sizeof(buf)),
					clock_fmt_duration(w[1], b2, sizeof(b2)));
			break;
		}
		case KIND_BYTES:
			memcpy(&u, field, sizeof(u));
			if (u && u % (1024 * 1024) == 0)
				fprintf(f, "%s = %llumb\n", k->name, (unsigned long long)(u / (1024 * 1024)));
			else
				fprintf(f, "%s = %llu\n", k->name, (unsigned long long)u);
			break;
		}
	}
	fflush(f);
	return ferror(f) ? -1 : 0;
}
