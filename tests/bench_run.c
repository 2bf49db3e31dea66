/* bench_run.c — `make bench`: dupsim run's own publish+consume throughput next to a bare librabbitmq-c loop. */
#include <amqp.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nodes/node.h"
#include "nodes/proc.h"
#include "nodes/rabbitmq.h"
#include "truth/ledger.h"
#include "workload/mq.h"
#include "core/clock.h"
#include "core/files.h"

#define MESSAGES 40000
#define PUBLISHERS 2
#define CONSUMERS 2
#define BATCH 10
#define BODY 128
#define ROUNDS 3

extern char **environ;

static uint16_t port;
static const char *queue;
static atomic_int consumed;
static atomic_bool bare_stop;
static _Atomic uint64_t last_ns;

static void die(const char *what, const char *err)
{
	fprintf(stderr, "bench_run: %s: %s\n", what, err);
	proc_cleanup_signal();
	exit(1);
}

/* The same work as dupsim's tx publisher: batches of BATCH, tx.commit, persistent, a header. */
static void *bare_publisher(void *arg)
{
	int id = (int)(intptr_t)arg;
	char err[256], body[BODY], mid[32];
	amqp_connection_state_t c = mq_open_local(port, 5000, err, sizeof(err));
	amqp_basic_properties_t p = { 0 };
	amqp_table_entry_t h;

	if (!c)
		die("bare publisher", err);
	memset(body, 'x', sizeof(body));
	if (!amqp_tx_select(c, 1))
		die("bare publisher", "tx.select");
	h.key = amqp_cstring_bytes("x-republish-count");
	h.value.kind = AMQP_FIELD_KIND_I32;
	h.value.value.i32 = 0;
	p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_HEADERS_FLAG;
	p.delivery_mode = 2;
	p.headers.num_entries = 1;
	p.headers.entries = &h;
	for (int i = 0; i < MESSAGES / PUBLISHERS; i++) {
		snprintf(mid, sizeof(mid), "%d", id * (MESSAGES / PUBLISHERS) + i);
		p.message_id = amqp_cstring_bytes(mid);
		amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(queue), 0, 0, &p,
				   (amqp_bytes_t){ sizeof(body), body });
		if ((i + 1) % BATCH == 0 && !amqp_tx_commit(c, 1))
			die("bare publisher", "tx.commit");
	}
	amqp_tx_commit(c, 1);
	mq_close(c);
	return NULL;
}

static void *bare_consumer(void *arg)
{
	char err[256];
	amqp_connection_state_t c = mq_open_local(port, 5000, err, sizeof(err));

	(void)arg;
	if (!c)
		die("bare consumer", err);
	amqp_basic_qos(c, 1, 0, 100, 0);
	amqp_basic_consume(c, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
	while (!atomic_load(&bare_stop)) {
		amqp_envelope_t e;
		struct timeval tv = { .tv_usec = 100000 };

		amqp_maybe_release_buffers(c);
		if (!mq_ok(amqp_consume_message(c, &e, &tv, 0)))
			continue;
		amqp_basic_ack(c, 1, e.delivery_tag, 0);
		amqp_destroy_envelope(&e);
		if (atomic_fetch_add(&consumed, 1) + 1 == MESSAGES)
			atomic_store(&last_ns, clock_now_ns());
	}
	mq_close(c);
	return NULL;
}

static double bare_round(void)
{
	pthread_t p[PUBLISHERS], c[CONSUMERS];
	char err[256];
	amqp_connection_state_t d = mq_open_local(port, 5000, err, sizeof(err));
	uint64_t t0;

	if (!d)
		die("bare", err);
	queue = "bench-bare";
	amqp_queue_declare(d, 1, amqp_cstring_bytes(queue), 0, 1, 0, 0, amqp_empty_table);
	amqp_queue_purge(d, 1, amqp_cstring_bytes(queue));
	atomic_store(&consumed, 0);
	atomic_store(&bare_stop, false);
	for (int i = 0; i < CONSUMERS; i++)
		pthread_create(&c[i], NULL, bare_consumer, NULL);
	clock_sleep_ns(200 * NS_PER_MS);
	t0 = clock_now_ns();
	for (int i = 0; i < PUBLISHERS; i++)
		pthread_create(&p[i], NULL, bare_publisher, (void *)(intptr_t)i);
	for (int i = 0; i < PUBLISHERS; i++)
		pthread_join(p[i], NULL);
	while (atomic_load(&consumed) < MESSAGES)
		clock_sleep_ns(10 * NS_PER_MS);
	atomic_store(&bare_stop, true);
	for (int i = 0; i < CONSUMERS; i++)
		pthread_join(c[i], NULL);
	amqp_queue_delete(d, 1, amqp_cstring_bytes(queue), 0, 0);
	mq_close(d);
	return MESSAGES / ((double)(atomic_load(&last_ns) - t0) / NS_PER_S);
}

/* dupsim run with the same workload, no faults, store none; its processed_per_s. */
static double dupsim_round(const char *bin, const char *url, int r)
{
	char dir[64], urlset[300], msgs[64], pubs[64], cons[64], batch[64], path[128];
	pid_t pid;
	int status;
	json_t *j;
	double v;
	char *argv[] = { (char *)bin, "run", "scenarios/default.ini", "--quiet", "--out", dir,
			 "--set", urlset, "--set", msgs, "--set", pubs, "--set", cons, "--set", batch,
			 "--set", "faults.commit_ok_loss=0", "--set", "faults.ack_loss=0",
			 "--set", "dedup.store=none", "--set", "broker.queue=bench-dupsim", NULL };
	posix_spawn_file_actions_t fa;

	snprintf(dir, sizeof(dir), "/tmp/dupsim-bench-%d-%d", (int)getpid(), r);
	snprintf(urlset, sizeof(urlset), "broker.url=%s", url);
	snprintf(msgs, sizeof(msgs), "run.messages=%d", MESSAGES);
	snprintf(pubs, sizeof(pubs), "publishers.count=%d", PUBLISHERS);
	snprintf(cons, sizeof(cons), "consumers.count=%d", CONSUMERS);
	snprintf(batch, sizeof(batch), "publishers.batch=%d", BATCH);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", 1, 0);
	if (posix_spawn(&pid, bin, &fa, NULL, argv, environ) != 0)
		die("dupsim", "cannot start");
	posix_spawn_file_actions_destroy(&fa);
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("dupsim run", "failed");
	snprintf(path, sizeof(path), "%s/summary.json", dir);
	j = json_load_file(path, 0, NULL);
	if (!j)
		die("dupsim run", "no summary.json");
	v = json_number_value(json_object_get(json_object_get(j, "throughput"), "processed_per_s"));
	json_decref(j);
	files_rm_rf(dir);
	return v;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void on_signal(int sig)
{
	proc_cleanup_signal();
	signal(sig, SIG_DFL);
	raise(sig);
}

int main(void)
{
	struct node *b = NULL;
	struct node_opts o = { .quiet = true };
	const char *bin = getenv("DUPSIM_BIN");
	char err[1024];
	double bare[ROUNDS], dup[ROUNDS];

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (!bin)
		bin = "build/dupsim";
	printf("\n== bench_run: %d x %d-byte messages, %d tx publishers (batch %d), %d consumers acking each, "
	       "no faults, store none ==\n",
	       MESSAGES, BODY, PUBLISHERS, BATCH, CONSUMERS);
	fflush(stdout);
	if (node_new(&b, &rabbitmq_ops, &o, err, sizeof(err)) < 0)
		die("broker", err);
	port = node_port(b);
	for (int r = 0; r < ROUNDS; r++) {
		if (r % 2 == 0) {
			bare[r] = bare_round();
			dup[r] = dupsim_round(bin, node_url(b), r);
		} else {
			dup[r] = dupsim_round(bin, node_url(b), r);
			bare[r] = bare_round();
		}
		printf("round %d: bare librabbitmq-c %.0f msg/s, dupsim run %.0f msg/s\n", r + 1, bare[r], dup[r]);
		fflush(stdout);
	}
	qsort(bare, ROUNDS, sizeof(double), cmp_d);
	qsort(dup, ROUNDS, sizeof(double), cmp_d);
	printf("median: bare %.0f msg/s, dupsim %.0f msg/s: dupsim / bare = %.3f (target >= 0.9: %s)\n",
	       bare[ROUNDS / 2], dup[ROUNDS / 2], dup[ROUNDS / 2] / bare[ROUNDS / 2],
	       dup[ROUNDS / 2] / bare[ROUNDS / 2] >= 0.9 ? "met" : "NOT met");
	printf("(dupsim's figure includes its fault proxy in the path, the ledger and the dedup decision)\n");
	printf("ledger: %zu bytes per message (the publishers keep no per-message state of their own)\n",
	       sizeof(struct ledger_msg));
	node_free(b);
	return 0;
}
