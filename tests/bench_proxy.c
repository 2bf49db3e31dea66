/* bench_proxy.c — `make bench`: throughput, CPU per message and per-frame latency, direct vs dupsim proxy vs socat. */
#include <amqp.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nodes/node.h"
#include "nodes/proc.h"
#include "nodes/rabbitmq.h"
#include "workload/mq.h"
#include "core/clock.h"
#include "core/net.h"

#define MESSAGES 100000
#define ROUNDS 3
#define BODY 128
#define PINGS 3000

enum { M_DIRECT, M_PROXY, M_SOCAT, M_COUNT };
static const char *const mode_name[M_COUNT] = { "direct", "dupsim proxy", "socat" };

extern char **environ;

static void die(const char *what, const char *err)
{
	fprintf(stderr, "bench_proxy: %s: %s\n", what, err);
	proc_cleanup_signal();
	exit(1);
}

static pid_t spawn(char *const argv[])
{
	pid_t pid;
	posix_spawn_file_actions_t fa;
	int rc;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		die(argv[0], strerror(rc));
	return pid;
}

static void wait_port(uint16_t port)
{
	for (int i = 0; i < 200; i++) {
		if (net_port_open(port))
			return;
		clock_sleep_ns(25 * NS_PER_MS);
	}
	die("relay", "did not start listening");
}

struct run {
	uint16_t port;
	char queue[32];
	uint64_t start_ns, end_ns;
	int received;
	char err[256];
};

static void *consumer(void *arg)
{
	struct run *r = arg;
	amqp_connection_state_t c = mq_open_local(r->port, 5000, r->err, sizeof(r->err));

	if (!c)
		return NULL;
	amqp_basic_qos(c, 1, 0, 500, 0);
	amqp_basic_consume(c, 1, amqp_cstring_bytes(r->queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
	if (!mq_ok(amqp_get_rpc_reply(c))) {
		snprintf(r->err, sizeof(r->err), "basic.consume failed");
		mq_abandon(c);
		return NULL;
	}
	while (r->received < MESSAGES) {
		amqp_envelope_t e;

		amqp_maybe_release_buffers(c);
		if (!mq_ok(amqp_consume_message(c, &e, NULL, 0))) {
			snprintf(r->err, sizeof(r->err), "consume failed after %d", r->received);
			break;
		}
		amqp_basic_ack(c, 1, e.delivery_tag, 0);
		amqp_destroy_envelope(&e);
		r->received++;
	}
	r->end_ns = clock_now_ns();
	mq_close(c);
	return NULL;
}

/* One publisher, one consumer, MESSAGES 128-byte bodies, no confirms: messages/s. */
static double throughput(uint16_t port, int round, int mode)
{
	struct run r = { .port = port };
	char err[256], body[BODY];
	amqp_connection_state_t c = mq_open_local(port, 5000, err, sizeof(err));
	pthread_t t;

	if (!c)
		die(mode_name[mode], err);
	snprintf(r.queue, sizeof(r.queue), "bench-%d-%d", round, mode);
	amqp_queue_declare(c, 1, amqp_cstring_bytes(r.queue), 0, 0, 0, 1, amqp_empty_table);
	if (!mq_ok(amqp_get_rpc_reply(c)))
		die(mode_name[mode], "queue.declare failed");
	memset(body, 'b', sizeof(body));
	pthread_create(&t, NULL, consumer, &r);
	clock_sleep_ns(100 * NS_PER_MS); /* consumer attached */
	r.start_ns = clock_now_ns();
	for (int i = 0; i < MESSAGES; i++) {
		if (amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(r.queue), 0, 0, NULL,
				       (amqp_bytes_t){ sizeof(body), body }) != AMQP_STATUS_OK)
			die(mode_name[mode], "publish failed");
	}
	pthread_join(t, NULL);
	if (r.received < MESSAGES)
		die(mode_name[mode], r.err);
	amqp_queue_delete(c, 1, amqp_cstring_bytes(r.queue), 0, 0);
	mq_close(c);
	return MESSAGES / ((double)(r.end_ns - r.start_ns) / NS_PER_S);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Round trips of a small RPC (basic.qos / qos-ok): each crosses a relay twice, one frame each way. */
static void rtts(uint16_t port, uint64_t *out, int n)
{
	char err[256];
	amqp_connection_state_t c = mq_open_local(port, 5000, err, sizeof(err));

	if (!c)
		die("latency", err);
	for (int i = 0; i < n; i++) {
		uint64_t t0 = clock_now_ns();

		if (!amqp_basic_qos(c, 1, 0, 10, 0))
			die("latency", "basic.qos failed");
		out[i] = clock_now_ns() - t0;
	}
	mq_close(c);
}

static double pct(const uint64_t *sorted, int n, double p)
{
	return sorted[(int)(p * (n - 1))] / 1000.0;
}

static void on_signal(int sig)
{
	proc_cleanup_signal();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* The two relays, started afresh for each round so that each one's own rusage covers that round only. */
struct relays {
	pid_t pid[M_COUNT]; /* M_PROXY and M_SOCAT */
	uint16_t port[M_COUNT];
};

static void relays_start(struct relays *rl, const char *bin, uint16_t bport)
{
	char up[64], lis[64], socat_l[96], socat_r[64];
	uint16_t pport, sport;

	if (net_free_port(&pport) < 0 || net_free_port(&sport) < 0 || pport == sport)
		die("ports", "no free port");
	snprintf(up, sizeof(up), "127.0.0.1:%u", bport);
	snprintf(lis, sizeof(lis), "127.0.0.1:%u", pport);
	snprintf(socat_l, sizeof(socat_l), "TCP-LISTEN:%u,bind=127.0.0.1,reuseaddr,fork,nodelay", sport);
	snprintf(socat_r, sizeof(socat_r), "TCP:127.0.0.1:%u,nodelay", bport);
	{
		char *pa[] = { (char *)bin, "proxy", "--listen", lis, "--upstream", up, "--quiet", NULL };
		char *sa[] = { "socat", socat_l, socat_r, NULL };

		rl->pid[M_PROXY] = spawn(pa);
		rl->pid[M_SOCAT] = spawn(sa);
	}
	wait_port(pport);
	wait_port(sport);
	rl->port[M_DIRECT] = bport;
	rl->port[M_PROXY] = pport;
	rl->port[M_SOCAT] = sport;
}

/* socat forks a child per connection: wait until it reaped them all, so their CPU is in its rusage. */
static void socat_wait_children(pid_t pid)
{
	char path[64], line[64];

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	for (int i = 0; i < 400; i++) {
		FILE *f = fopen(path, "r");
		bool some = f && fgets(line, sizeof(line), f) && line[0] >= '0' && line[0] <= '9';

		if (f)
			fclose(f);
		if (!some)
			return;
		clock_sleep_ns(25 * NS_PER_MS);
	}
	die("socat", "its connection children did not finish");
}

/* Stops both relays; cpu_s[m], sys_s[m]: the CPU seconds (user + system; system) of relay m over its life, from wait4. */
static void relays_stop(struct relays *rl, double cpu_s[M_COUNT], double sys_s[M_COUNT])
{
	socat_wait_children(rl->pid[M_SOCAT]);
	cpu_s[M_DIRECT] = sys_s[M_DIRECT] = 0;
	for (int m = M_PROXY; m <= M_SOCAT; m++) {
		struct rusage ru;
		int st;

		kill(rl->pid[m], SIGTERM);
		if (wait4(rl->pid[m], &st, 0, &ru) < 0)
			die(mode_name[m], strerror(errno));
		sys_s[m] = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
		cpu_s[m] = sys_s[m] + (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
	}
}

static void print_ratio(const char *what, double v, double target, bool at_most)
{
	bool met = at_most ? v <= target : v >= target;

	printf("%-30s = %.3f (target %s %.2f: %s)\n", what, v, at_most ? "<=" : ">=", target, met ? "met" : "NOT met");
}

int main(void)
{
	struct node *b = NULL;
	struct node_opts o = { .quiet = true };
	char err[1024];
	const char *bin = getenv("DUPSIM_BIN");
	uint16_t bport;
	struct relays rl;
	double mps[M_COUNT][ROUNDS], med[M_COUNT], cpu[M_COUNT][ROUNDS], cpu_med[M_COUNT];
	double cpu_ratio[ROUNDS];
	static uint64_t lat[M_COUNT][PINGS];
	double p50[M_COUNT], p99[M_COUNT];

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (!bin)
		bin = "build/dupsim";
	printf("== bench_proxy: one publisher + one consumer, %d rounds x %d x %d-byte messages, no confirms, "
	       "acks each ==\n",
	       ROUNDS, MESSAGES, BODY);
	printf("(CPU per message: each relay's own rusage, user + system, from wait4 of its process: `dupsim "
	       "proxy` and socat with its per-connection children, both started afresh each round)\n");
	fflush(stdout);
	if (getenv("DUPSIM_BENCH_URL")) { /* an existing broker, e.g. from `dupsim broker start` */
		struct mq_target t;

		if (mq_parse_url(getenv("DUPSIM_BENCH_URL"), &t, err, sizeof(err)) < 0)
			die("DUPSIM_BENCH_URL", err);
		bport = t.port;
	} else {
		if (node_new(&b, &rabbitmq_ops, &o, err, sizeof(err)) < 0)
			die("broker", err);
		bport = node_port(b);
	}

	throughput(bport, 99, M_DIRECT); /* warm-up */
	for (int r = 0; r < ROUNDS; r++) {
		double cpu_s[M_COUNT], sys_s[M_COUNT];

		relays_start(&rl, bin, bport);
		for (int k = 0; k < M_COUNT; k++) {
			int m = (k + r) % M_COUNT; /* alternate the order round by round */

			mps[m][r] = throughput(rl.port[m], r, m);
		}
		relays_stop(&rl, cpu_s, sys_s);
		for (int m = 0; m < M_COUNT; m++)
			cpu[m][r] = cpu_s[m] * 1e6 / MESSAGES;
		cpu_ratio[r] = cpu[M_PROXY][r] / cpu[M_SOCAT][r];
		printf("round %d: direct %.0f  proxy %.0f  socat %.0f msg/s;  CPU per message: proxy %.2f us (%.2f "
		       "system), socat %.2f us (%.2f system), proxy/socat %.3f\n",
		       r + 1, mps[M_DIRECT][r], mps[M_PROXY][r], mps[M_SOCAT][r], cpu[M_PROXY][r],
		       sys_s[M_PROXY] * 1e6 / MESSAGES, cpu[M_SOCAT][r], sys_s[M_SOCAT] * 1e6 / MESSAGES, cpu_ratio[r]);
		fflush(stdout);
	}
	for (int m = 0; m < M_COUNT; m++) {
		qsort(mps[m], ROUNDS, sizeof(double), cmp_d);
		med[m] = mps[m][ROUNDS / 2];
		qsort(cpu[m], ROUNDS, sizeof(double), cmp_d);
		cpu_med[m] = cpu[m][ROUNDS / 2];
	}
	qsort(cpu_ratio, ROUNDS, sizeof(double), cmp_d);

	relays_start(&rl, bin, bport);
	for (int k = 0; k < 3; k++) /* interleave the latency runs too */
		for (int m = 0; m < M_COUNT; m++)
			rtts(rl.port[m], lat[m] + k * (PINGS / 3), PINGS / 3);
	{
		double unused[M_COUNT], unused_sys[M_COUNT];

		relays_stop(&rl, unused, unused_sys);
	}
	for (int m = 0; m < M_COUNT; m++) {
		qsort(lat[m], PINGS, sizeof(uint64_t), cmp_u64);
		p50[m] = pct(lat[m], PINGS, 0.50);
		p99[m] = pct(lat[m], PINGS, 0.99);
	}

	printf("\n%-14s %12s %10s %12s %14s %14s\n", "path", "msg/s (med)", "x direct", "CPU/msg (us)",
	       "rtt p50 (us)", "rtt p99 (us)");
	for (int m = 0; m < M_COUNT; m++) {
		char cpus[16] = "-";

		if (m != M_DIRECT)
			snprintf(cpus, sizeof(cpus), "%.2f", cpu_med[m]);
		printf("%-14s %12.0f %10.3f %12s %14.1f %14.1f\n", mode_name[m], med[m], med[m] / med[M_DIRECT], cpus,
		       p50[m], p99[m]);
	}
	printf("\n");
	print_ratio("proxy / direct throughput", med[M_PROXY] / med[M_DIRECT], 0.95, false);
	print_ratio("proxy / socat throughput", med[M_PROXY] / med[M_SOCAT], 1.00, false);
	print_ratio("proxy / socat CPU per message", cpu_ratio[ROUNDS / 2], 0.70, true);
	printf("(medians over the rounds; the CPU ratio is the median of the per-round ratios, both relays measured "
	       "in the same round)\n");
	printf("proxy added latency per frame: p50 %.1f us, p99 %.1f us (socat: p50 %.1f us, p99 %.1f us)\n",
	       (p50[M_PROXY] - p50[M_DIRECT]) / 2, (p99[M_PROXY] - p99[M_DIRECT]) / 2,
	       (p50[M_SOCAT] - p50[M_DIRECT]) / 2, (p99[M_SOCAT] - p99[M_DIRECT]) / 2);
	printf("(added latency = (relay RTT - direct RTT) / 2 at each percentile; an RTT carries one frame each "
	       "way)\n");
	node_free(b);
	return 0;
}
