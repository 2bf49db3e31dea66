/* bench_hosts.c — `make bench`: a test host link's round trips at several delays, and how many packets/s its thread passes at what CPU. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "hosts/hosts.h"

#define EXCHANGES 200
#define MSG 64
#define FLOOD_NS (2 * NS_PER_S)

static struct hosts *h;

static void die(const char *what, const char *err)
{
	fprintf(stderr, "bench_hosts: %s: %s\n", what, err);
	hosts_free(h);
	exit(1);
}

/* A socket of the given type made on host i. */
static int socket_on(int i, int type)
{
	int fd;

	if (hosts_enter(h, i) < 0)
		die("setns", strerror(errno));
	fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	hosts_enter(h, HOSTS_ROOT);
	if (fd < 0)
		die("socket", strerror(errno));
	return fd;
}

static struct sockaddr_in addr_of(int i, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

	inet_pton(AF_INET, hosts_addr(h, i), &a.sin_addr);
	return a;
}

/* A child on host 0 echoing MSG-byte messages of one connection. */
static pid_t echo_child(int lfd)
{
	pid_t pid = fork();

	if (pid == 0) {
		char buf[MSG];
		int fd = accept(lfd, NULL, NULL), one = 1;
		ssize_t n;

		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		while ((n = recv(fd, buf, MSG, MSG_WAITALL)) == MSG)
			if (write(fd, buf, MSG) != MSG)
				break;
		_exit(0);
	}
	return pid;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static atomic_int receiver_tid;
static double other_threads_cpu(void);

static void rtt(int fd, uint64_t delay_ns)
{
	struct hosts_link l = { .delay_ns = delay_ns };
	uint64_t t[EXCHANGES], sum = 0;
	char buf[MSG] = "x", err[512];
	double cpu;

	if (hosts_set_link(h, 0, &l, err, sizeof(err)) < 0)
		die("set link", err);
	for (int k = 0; k < 5; k++) /* warm up, and out of the old settings */
		if (write(fd, buf, MSG) != MSG || recv(fd, buf, MSG, MSG_WAITALL) != MSG)
			die("exchange", strerror(errno));
	cpu = other_threads_cpu();
	for (int k = 0; k < EXCHANGES; k++) {
		uint64_t t0 = clock_now_ns();

		if (write(fd, buf, MSG) != MSG || recv(fd, buf, MSG, MSG_WAITALL) != MSG)
			die("exchange", strerror(errno));
		t[k] = clock_now_ns() - t0;
		sum += t[k];
	}
	cpu = other_threads_cpu() - cpu;
	qsort(t, EXCHANGES, sizeof(t[0]), cmp_u64);
	printf("  one way %6.3f ms: rtt mean %7.3f ms, p50 %7.3f, p99 %7.3f, max %7.3f (ideal %.3f); link thread CPU %3.0f %%\n",
	       delay_ns / 1e6, sum / 1e6 / EXCHANGES, t[EXCHANGES / 2] / 1e6, t[EXCHANGES * 99 / 100] / 1e6,
	       t[EXCHANGES - 1] / 1e6, 2 * delay_ns / 1e6, 100 * cpu / (sum / 1e9));
}

static atomic_ulong received;
static atomic_bool flood_done;

static void *receiver(void *arg)
{
	int fd = *(int *)arg;
	char buf[MSG];

	atomic_store(&receiver_tid, (int)gettid());
	while (!atomic_load(&flood_done))
		if (recv(fd, buf, sizeof(buf), 0) > 0)
			atomic_fetch_add(&received, 1);
	return NULL;
}

/* CPU seconds of this process's threads but the main one and the receiver: the link's (schedstat: ns). */
static double other_threads_cpu(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	double s = 0;

	while (d && (e = readdir(d))) {
		unsigned long long ns;
		char path[300];
		FILE *f;

		if (e->d_name[0] == '.' || atoi(e->d_name) == getpid() || atoi(e->d_name) == atomic_load(&receiver_tid))
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/schedstat", e->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		if (fscanf(f, "%llu", &ns) == 1)
			s += ns / 1e9;
		fclose(f);
	}
	if (d)
		closedir(d);
	return s;
}

/* The host's queues' drop counters (/proc/net/netfilter/nfnetlink_queue, summed): queue full, and messages userspace never got. */
static void queue_drops(unsigned long *queue_full, unsigned long *unread)
{
	unsigned long q, u;
	char line[256];
	FILE *f;

	*queue_full = *unread = 0;
	hosts_enter(h, 0);
	f = fopen("/proc/thread-self/net/netfilter/nfnetlink_queue", "r");
	hosts_enter(h, HOSTS_ROOT);
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "%*u %*u %*u %*u %*u %lu %lu", &q, &u) == 2) {
			*queue_full += q;
			*unread += u;
		}
	if (f)
		fclose(f);
}

/* UDP from the root to host 0 as fast as one thread sends, for FLOOD_NS: packets/s through, CPU of the link thread. */
static void flood(const struct hosts_link *l, const char *what)
{
	struct sockaddr_in a = addr_of(0, 7101);
	int rx = socket_on(0, SOCK_DGRAM), tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), room = 8 << 20;
	struct timeval tv = { 0, 100 * 1000 };
	char buf[MSG] = "y", err[512];
	unsigned long sent = 0;
	uint64_t t0, el;
	double cpu0, cpu;
	unsigned long qd, ud;
	pthread_t thr;

	if (hosts_set_link(h, 0, l, err, sizeof(err)) < 0)
		die("set link", err);
	if (bind(rx, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("bind", strerror(errno));
	setsockopt(rx, SOL_SOCKET, SO_RCVBUFFORCE, &room, sizeof(room));
	setsockopt(rx, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	atomic_store(&received, 0);
	atomic_store(&flood_done, false);
	pthread_create(&thr, NULL, receiver, &rx);
	usleep(10 * 1000); /* its tid known */
	cpu0 = other_threads_cpu();
	t0 = clock_now_ns();
	while ((el = clock_now_ns() - t0) < FLOOD_NS)
		if (sendto(tx, buf, MSG, 0, (struct sockaddr *)&a, sizeof(a)) == MSG)
			sent++;
	usleep(200 * 1000);
	cpu = other_threads_cpu() - cpu0;
	atomic_store(&flood_done, true);
	pthread_join(thr, NULL);
	queue_drops(&qd, &ud);
	printf("  %-26s sent %8.0f/s, received %8.0f/s (%5.1f %%), link thread CPU %.2f s of %.2f s", what,
	       sent / (el / 1e9), atomic_load(&received) / (el / 1e9), 100.0 * atomic_load(&received) / (double)sent, cpu,
	       el / 1e9);
	if (l)
		printf("; dropped by the kernel's queue: %lu full, %lu unread", qd, ud);
	printf("\n");
	close(tx);
	close(rx);
}

int main(void)
{
	char err[512];
	struct sockaddr_in a;
	int lfd, fd, one = 1, status;
	pid_t pid;

	if (hosts_check("bench_hosts", err, sizeof(err)) < 0) {
		printf("bench_hosts: skipped (%s)\n", err);
		return 0;
	}
	if (hosts_new(&h, err, sizeof(err)) < 0 || hosts_add(h, "b", err, sizeof(err)) < 0)
		die("hosts", err);
	lfd = socket_on(0, SOCK_STREAM);
	a = addr_of(0, 7100);
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 1) < 0)
		die("listen", strerror(errno));
	pid = echo_child(lfd);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("connect", strerror(errno));
	printf("bench_hosts: %d exchanges of %d bytes over TCP, the root <-> a host with a delay on its link\n",
	       EXCHANGES, MSG);
	rtt(fd, 0);
	rtt(fd, 50 * 1000);
	rtt(fd, 500 * 1000);
	rtt(fd, 5 * NS_PER_MS);
	close(fd);
	waitpid(pid, &status, 0);
	close(lfd);
	printf("bench_hosts: UDP of %d bytes, the root -> the host, one sender\n", MSG);
	flood(NULL, "no link settings:");
	flood(&(struct hosts_link){ .delay_ns = 1000 }, "1 us each way:");
	flood(&(struct hosts_link){ .delay_ns = NS_PER_MS }, "1 ms each way:");
	flood(&(struct hosts_link){ .delay_ns = 100 * 1000, .jitter_ns = 50 * 1000 }, "0.1 ms +- 0.05 each way:");
	hosts_free(h);
	return 0;
}
