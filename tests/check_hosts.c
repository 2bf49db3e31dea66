/* check_hosts.c — test hosts: namespaces that reach each other, a link's delay and loss measured, partitions and healing, cleanup, the refusal without root. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests.h"
#include "core/clock.h"
#include "hosts/hosts.h"
#include "nodes/proc.h"

/* A listener on addr:port on host i (made from a thread that enters it, then goes home). */
static int listen_on(struct hosts *h, int i, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd, one = 1;

	ck_assert_int_eq(hosts_enter(h, i), 0);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(hosts_enter(h, HOSTS_ROOT), 0);
	ck_assert_int_ge(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	inet_pton(AF_INET, hosts_addr(h, i), &a.sin_addr);
	ck_assert_msg(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "bind %s: %s", hosts_addr(h, i), strerror(errno));
	ck_assert_int_eq(listen(fd, 8), 0);
	return fd;
}

/* Connect from host `from` to addr:port; the handshake's time in ns, or 0 when it failed within timeout_ms. */
static uint64_t connect_time(struct hosts *h, int from, const char *addr, uint16_t port, int timeout_ms)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	uint64_t t0;
	int fd, rc;

	ck_assert_int_eq(hosts_enter(h, from), 0);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(hosts_enter(h, HOSTS_ROOT), 0);
	ck_assert_int_ge(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	inet_pton(AF_INET, addr, &a.sin_addr);
	t0 = clock_now_ns();
	rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
	t0 = clock_now_ns() - t0;
	close(fd);
	return rc == 0 ? (t0 ? t0 : 1) : 0;
}

START_TEST(test_hosts_reach_delay_cut)
{
	struct hosts *h;
	char err[512];
	int a, b, la, lb;
	uint64_t t;
	struct hosts_link l = { .delay_ns = 10 * NS_PER_MS };

	if (hosts_check("the hosts test", err, sizeof(err)) < 0) {
		fprintf(stderr, "check_hosts: skipped (%s)\n", err);
		return;
	}
	ck_assert_msg(hosts_new(&h, err, sizeof(err)) == 0, "%s", err);
	a = hosts_add(h, "a", err, sizeof(err));
	ck_assert_msg(a == 0, "%s", err);
	b = hosts_add(h, "b", err, sizeof(err));
	ck_assert_msg(b == 1, "%s", err);
	ck_assert_int_eq(hosts_add(h, "a", err, sizeof(err)), -1); /* one name, one host */
	ck_assert_ptr_nonnull(strstr(err, "two test hosts"));
	ck_assert_int_eq(hosts_add(h, "bad name", err, sizeof(err)), -1);
	ck_assert_str_ne(hosts_addr(h, a), hosts_addr(h, b));
	la = listen_on(h, a, 7000);
	lb = listen_on(h, b, 7000);
	/* the root reaches both, a reaches b; without a link delay a handshake takes well under 5 ms */
	ck_assert_uint_gt(connect_time(h, HOSTS_ROOT, hosts_addr(h, a), 7000, 2000), 0);
	t = connect_time(h, a, hosts_addr(h, b), 7000, 2000);
	ck_assert_msg(t > 0 && t < 5 * NS_PER_MS, "a -> b: %llu ns", (unsigned long long)t);
	/* the listener is on b's host only: the same port on the root's own address is closed */
	ck_assert_uint_eq(connect_time(h, HOSTS_ROOT, hosts_addr(h, HOSTS_ROOT), 7000, 500), 0);
	/* 10 ms each way on b's link: a handshake from the root to b takes one round trip, 20 ms */
	ck_assert_msg(hosts_set_link(h, b, &l, err, sizeof(err)) == 0, "%s", err);
	t = connect_time(h, HOSTS_ROOT, hosts_addr(h, b), 7000, 2000);
	ck_assert_msg(t >= 19 * NS_PER_MS && t < 60 * NS_PER_MS, "root -> b with 2 x 10 ms: %.2f ms", t / 1e6);
	ck_assert_int_eq(hosts_set_link(h, b, NULL, err, sizeof(err)), 0);
	t = connect_time(h, HOSTS_ROOT, hosts_addr(h, b), 7000, 2000);
	ck_assert_msg(t > 0 && t < 5 * NS_PER_MS, "delay removed: %.2f ms", t / 1e6);
	/* cut: a and b can't reach each other, the root still reaches both; healed: they can */
	ck_assert_msg(hosts_cut(h, a, b, true, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(connect_time(h, a, hosts_addr(h, b), 7000, 300), 0);
	ck_assert_uint_eq(connect_time(h, b, hosts_addr(h, a), 7000, 300), 0);
	ck_assert_uint_gt(connect_time(h, HOSTS_ROOT, hosts_addr(h, b), 7000, 2000), 0);
	ck_assert_int_eq(hosts_cut(h, a, b, true, err, sizeof(err)), 0); /* twice is once */
	ck_assert_int_eq(hosts_cut(h, a, b, false, err, sizeof(err)), 0);
	ck_assert_uint_gt(connect_time(h, a, hosts_addr(h, b), 7000, 2000), 0);
	ck_assert_int_eq(hosts_cut(h, a, HOSTS_ROOT, true, err, sizeof(err)), -1);
	close(la);
	close(lb);
	{
		char ns[64];

		snprintf(ns, sizeof(ns), "/run/netns/%s", hosts_netns(h, a));
		ck_assert_int_eq(access(ns, F_OK), 0);
		hosts_free(h);
		ck_assert_int_eq(access(ns, F_OK), -1); /* nothing left behind */
	}
}
END_TEST

/* A connected TCP socket from host `from` to addr:port (fails the test otherwise). */
static int connect_to(struct hosts *h, int from, const char *addr, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timeval tv = { 30, 0 }; /* a lossy link's retransmissions back off to seconds */
	int fd, one = 1;

	ck_assert_int_eq(hosts_enter(h, from), 0);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(hosts_enter(h, HOSTS_ROOT), 0);
	ck_assert_int_ge(fd, 0);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	inet_pton(AF_INET, addr, &a.sin_addr);
	ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect %s: %s", addr, strerror(errno));
	return fd;
}

/* A child that accepts one connection on lfd and echoes each message of `size` bytes back, till EOF. */
static pid_t echo_server(int lfd, size_t size)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char buf[256];
		int fd = accept(lfd, NULL, NULL), one = 1;

		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		for (;;) {
			size_t got = 0;

			while (got < size) {
				ssize_t n = read(fd, buf + got, size - got);

				if (n <= 0)
					_exit(n == 0 && got == 0 ? 0 : 1);
				got += (size_t)n;
			}
			if (write(fd, buf, size) != (ssize_t)size)
				_exit(1);
		}
	}
	return pid;
}

/* One request of `size` bytes and its echo; the round trip in ns. */
static uint64_t exchange(int fd, size_t size, unsigned k)
{
	char out[256], in[256];
	uint64_t t0 = clock_now_ns();
	size_t got = 0;

	memset(out, 'a' + (int)(k % 26), size);
	ck_assert_int_eq(write(fd, out, size), (ssize_t)size);
	while (got < size) {
		ssize_t n = read(fd, in + got, size - got);

		ck_assert_msg(n > 0, "exchange %u: %s", k, n < 0 ? strerror(errno) : "EOF");
		got += (size_t)n;
	}
	ck_assert_int_eq(memcmp(in, out, size), 0);
	return clock_now_ns() - t0;
}

/* n exchanges; their total time in ns. */
static uint64_t exchanges(int fd, unsigned n)
{
	uint64_t sum = 0;

	for (unsigned k = 0; k < n; k++)
		sum += exchange(fd, 64, k);
	return sum;
}

static struct hosts *hosts_two(void)
{
	struct hosts *h;
	char err[512];

	ck_assert_msg(hosts_new(&h, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(hosts_add(h, "a", err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(hosts_add(h, "b", err, sizeof(err)) == 1, "%s", err);
	return h;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* 1 ms each way: a request/response over an open connection takes one round trip, 2 ms; jitter spreads it. */
START_TEST(test_hosts_link_rtt)
{
	struct hosts_link l = { .delay_ns = NS_PER_MS };
	uint64_t t[50];
	struct hosts *h;
	char err[512];
	int lfd, fd, status;
	double mean;
	pid_t pid;

	if (hosts_check("the hosts test", err, sizeof(err)) < 0)
		return;
	h = hosts_two();
	lfd = listen_on(h, 1, 7001);
	pid = echo_server(lfd, 64);
	fd = connect_to(h, HOSTS_ROOT, hosts_addr(h, 1), 7001);
	mean = exchanges(fd, 20) / 20 / 1e6;
	ck_assert_msg(mean < 1, "no delay yet: %.3f ms", mean);
	ck_assert_msg(hosts_set_link(h, 1, &l, err, sizeof(err)) == 0, "%s", err);
	mean = exchanges(fd, 100) / 100 / 1e6;
	ck_assert_msg(mean >= 1.8 && mean <= 4, "2 x 1 ms: a mean round trip of %.3f ms", mean);
	/*
	 * 3 ms +- 2 ms: a round trip is two uniform draws from 1..5 ms, 2..10
	 * ms, median 6; never below 2 (a verdict early is a bug); spread out.
	 * Not the maximum: this VM stalls for 10-30 ms now and then.
	 */
	l = (struct hosts_link){ .delay_ns = 3 * NS_PER_MS, .jitter_ns = 2 * NS_PER_MS };
	ck_assert_msg(hosts_set_link(h, 1, &l, err, sizeof(err)) == 0, "%s", err);
	exchange(fd, 64, 0); /* the packets still held at the old delay */
	for (unsigned k = 0; k < 50; k++)
		t[k] = exchange(fd, 64, k);
	qsort(t, 50, sizeof(t[0]), cmp_u64);
	ck_assert_msg(t[0] >= 1900 * 1000 && t[25] >= 4 * NS_PER_MS && t[25] <= 9 * NS_PER_MS &&
			      t[45] - t[5] >= 2 * NS_PER_MS,
		      "3 +- 2 ms: min %.3f, p10 %.3f, median %.3f, p90 %.3f ms", t[0] / 1e6, t[5] / 1e6, t[25] / 1e6,
		      t[45] / 1e6);
	close(fd);
	waitpid(pid, &status, 0);
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	close(lfd);
	hosts_free(h);
}
END_TEST

/* Datagrams from the root to host b's port; how many of n arrived. */
static unsigned udp_through(struct hosts *h, unsigned n)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(7002) };
	struct timeval tv = { 0, 300 * 1000 };
	int rx, tx, room = 8 << 20; /* all n wait there: 1-byte datagrams cost ~1 KB each */
	unsigned got = 0;
	char c = 'x';

	ck_assert_int_eq(hosts_enter(h, 1), 0);
	rx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(hosts_enter(h, HOSTS_ROOT), 0);
	inet_pton(AF_INET, hosts_addr(h, 1), &a.sin_addr);
	ck_assert_int_eq(bind(rx, (struct sockaddr *)&a, sizeof(a)), 0);
	setsockopt(rx, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ck_assert_int_eq(setsockopt(rx, SOL_SOCKET, SO_RCVBUFFORCE, &room, sizeof(room)), 0);
	tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	for (unsigned k = 0; k < n; k++) {
		ck_assert_int_eq(sendto(tx, &c, 1, 0, (struct sockaddr *)&a, sizeof(a)), 1);
		if (k % 50 == 49)
			usleep(1000); /* well under the receive buffer */
	}
	while (recv(rx, &c, 1, 0) == 1)
		got++;
	close(tx);
	close(rx);
	return got;
}

/* 30 % loss each way: about 70 % of datagrams arrive; TCP still gets every byte through, only later. */
START_TEST(test_hosts_link_loss)
{
	struct hosts_link l = { .loss = 0.3 };
	uint64_t clean, lossy;
	struct hosts *h;
	char err[512];
	int lfd, fd, status;
	unsigned got;
	pid_t pid;

	if (hosts_check("the hosts test", err, sizeof(err)) < 0)
		return;
	h = hosts_two();
	l.loss = 1.5;
	ck_assert_int_eq(hosts_set_link(h, 1, &l, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "loss 1.5") != NULL, "%s", err);
	l.loss = 0.3;
	ck_assert_uint_eq(udp_through(h, 1000), 1000);
	lfd = listen_on(h, 1, 7001);
	pid = echo_server(lfd, 64);
	fd = connect_to(h, HOSTS_ROOT, hosts_addr(h, 1), 7001);
	clean = exchanges(fd, 10);
	ck_assert_msg(hosts_set_link(h, 1, &l, err, sizeof(err)) == 0, "%s", err);
	got = udp_through(h, 1000);
	/* binomial(1000, 0.7): 700 +- 14.5; +- 5 sigma */
	ck_assert_msg(got >= 628 && got <= 772, "30 %% loss: %u of 1000 datagrams arrived", got);
	/* each lost segment waits for a retransmission timer (>= 200 ms): 20 segments, ~6 lost */
	lossy = exchanges(fd, 10);
	ck_assert_msg(lossy > 50 * NS_PER_MS && lossy > 20 * clean, "10 exchanges: %.2f ms clean, %.2f ms at 30 %% loss",
		      clean / 1e6, lossy / 1e6);
	ck_assert_int_eq(hosts_set_link(h, 1, NULL, err, sizeof(err)), 0);
	ck_assert_uint_eq(udp_through(h, 1000), 1000);
	close(fd);
	waitpid(pid, &status, 0);
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	close(lfd);
	hosts_free(h);
}
END_TEST

/* A datagram's arrival: its number and how long after it was sent. */
struct arrival {
	uint32_t seq;
	uint64_t took;
};

struct udp_rx {
	int fd;
	unsigned want, got;
	struct arrival a[400];
};

/* Receives datagrams {seq, sent at} till `want` came or 3 s passed with none. */
static void *udp_rx_main(void *arg)
{
	struct udp_rx *r = arg;
	struct timeval tv = { 3, 0 };
	uint64_t msg[2];

	setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (r->got < r->want && recv(r->fd, msg, sizeof(msg), 0) == sizeof(msg)) {
		r->a[r->got].seq = (uint32_t)msg[0];
		r->a[r->got++].took = clock_now_ns() - msg[1];
	}
	return NULL;
}

/* Datagrams from..to-1 from the root to host 1's port 7004, gap_ns apart. */
static void udp_send(struct hosts *h, int tx, unsigned from, unsigned to, uint64_t gap_ns)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(7004) };

	inet_pton(AF_INET, hosts_addr(h, 1), &a.sin_addr);
	for (unsigned k = from; k < to; k++) {
		uint64_t msg[2] = { k, clock_now_ns() };

		ck_assert_int_eq(sendto(tx, msg, sizeof(msg), 0, (struct sockaddr *)&a, sizeof(a)), sizeof(msg));
		if (gap_ns)
			clock_sleep_ns(gap_ns);
	}
}

static void udp_start(struct hosts *h, struct udp_rx *r, pthread_t *t, unsigned want)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(7004) };

	ck_assert_int_eq(hosts_enter(h, 1), 0);
	r->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(hosts_enter(h, HOSTS_ROOT), 0);
	inet_pton(AF_INET, hosts_addr(h, 1), &a.sin_addr);
	ck_assert_int_eq(bind(r->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	r->want = want;
	r->got = 0;
	ck_assert_int_eq(pthread_create(t, NULL, udp_rx_main, r), 0);
}

static void udp_stop(struct udp_rx *r, pthread_t t)
{
	pthread_join(t, NULL);
	close(r->fd);
}

/*
 * Without jitter each direction keeps its order and no packet leaves early;
 * after a shorter delay is set the new packets overtake the ones held (as
 * with netem), and those still wait their full time; with jitter packets
 * pass one another.
 */
START_TEST(test_hosts_link_order)
{
	static struct udp_rx r;
	struct hosts_link l = { .delay_ns = 2 * NS_PER_MS };
	unsigned inversions = 0;
	struct hosts *h;
	char err[512];
	pthread_t t;
	int tx;

	if (hosts_check("the hosts test", err, sizeof(err)) < 0)
		return;
	h = hosts_two();
	tx = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ck_assert_msg(hosts_set_link(h, 1, &l, err, sizeof(err)) == 0, "%s", err);
	udp_start(h, &r, &t, 300);
	udp_send(h, tx, 0, 300, 20 * 1000);
	udp_stop(&r, t);
	ck_assert_uint_eq(r.got, 300);
	for (unsigned k = 0; k < r.got; k++) {
		ck_assert_msg(r.a[k].seq == k, "2 ms: datagram %u arrived as the %u-th", r.a[k].seq, k);
		ck_assert_msg(r.a[k].took >= 2 * NS_PER_MS, "2 ms: datagram %u took %.3f ms", k, r.a[k].took / 1e6);
	}
	/* 30 held at 100 ms, then 30 sent at 1 ms: those arrive first, the 30 still after 100 ms */
	l.delay_ns = 100 * NS_PER_MS;
	ck_assert_msg(hosts_set_link(h, 1, &l, err, sizeof(err)) == 0, "%s", err);
	udp_start(h, &r, &t, 60);
	udp_send(h, tx, 0, 30, 0);
	l.delay_ns = NS_PER_MS;
	ck_assert_msg(hosts_set_link(h, 1, &l, err, sizeof(err)) == 0, "%s", err);
	udp_send(h, tx, 30, 60, 0);
	udp_stop(&r, t);
	ck_assert_uint_eq(r.got, 60);
	for (unsigned k = 0; k < r.got; k++)
		ck_assert_msg(r.a[k].took >= (r.a[k].seq < 30 ? 100 : 1) * NS_PER_MS, "datagram %u took %.3f ms",
			      r.a[k].seq, r.a[k].took / 1e6);
	for (unsigned k = 0; k < r.got; k++)
		ck_assert_msg(r.a[k].seq == (k < 30 ? 30 + k : k - 30),
			      "100 ms then 1 ms: datagram %u arrived as the %u-th (after %.3f ms)", r.a[k].seq, k,
			      r.a[k].took / 1e6);
	/* 3 +- 2 ms, 20 us apart: many overtake */
	l = (struct hosts_link){ .delay_ns = 3 * NS_PER_MS, .jitter_ns = 2 * NS_PER_MS };
	ck_assert_msg(hosts_set_link(h, 1, &l, err, sizeof(err)) == 0, "%s", err);
	udp_start(h, &r, &t, 300);
	udp_send(h, tx, 0, 300, 20 * 1000);
	udp_stop(&r, t);
	ck_assert_uint_eq(r.got, 300);
	for (unsigned k = 1; k < r.got; k++) {
		inversions += r.a[k].seq < r.a[k - 1].seq;
		ck_assert_msg(r.a[k].took >= NS_PER_MS, "3 +- 2 ms: datagram %u took %.3f ms", r.a[k].seq,
			      r.a[k].took / 1e6);
	}
	ck_assert_msg(inversions > 30, "3 +- 2 ms: %u of 300 datagrams overtaken", inversions);
	close(tx);
	hosts_free(h);
}
END_TEST

static unsigned thread_count(void)
{
	DIR *d = opendir("/proc/self/task");
	unsigned n = 0;

	ck_assert_ptr_nonnull(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n - 2; /* . and .. */
}

/* Host i's NFQUEUE rules (iptables -S lines) and bound queues (/proc/net/netfilter/nfnetlink_queue lines). */
static void queue_state(struct hosts *h, int i, unsigned *rules, unsigned *queues)
{
	char cmd[256], line[512];
	const char *ipt = getenv("DUPSIM_IPTABLES");
	FILE *f;

	snprintf(cmd, sizeof(cmd), "ip netns exec %s %s -w -t mangle -S 2>&1", hosts_netns(h, i),
		 ipt && *ipt ? ipt : "iptables-legacy");
	f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	for (*rules = 0; fgets(line, sizeof(line), f);)
		*rules += strstr(line, "NFQUEUE") != NULL;
	ck_assert_int_eq(pclose(f), 0);
	ck_assert_int_eq(hosts_enter(h, i), 0);
	f = fopen("/proc/thread-self/net/netfilter/nfnetlink_queue", "r");
	ck_assert_int_eq(hosts_enter(h, HOSTS_ROOT), 0);
	*queues = 0;
	if (!f)
		return; /* no queue bound there ever: the file may not exist */
	while (fgets(line, sizeof(line), f))
		(*queues)++;
	fclose(f);
}

/* Settings removed: no rule, no queue, no thread; hosts_free with links set: the threads end too. */
START_TEST(test_hosts_link_cleanup)
{
	struct hosts_link l = { .delay_ns = 100 * 1000, .loss = 0.01 };
	unsigned threads = thread_count(), rules, queues;
	struct hosts *h;
	char err[512];

	if (hosts_check("the hosts test", err, sizeof(err)) < 0)
		return;
	h = hosts_two();
	ck_assert_msg(hosts_set_link(h, 0, &l, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(hosts_set_link(h, 1, &l, err, sizeof(err)) == 0, "%s", err);
	l.delay_ns *= 2;
	ck_assert_msg(hosts_set_link(h, 1, &l, err, sizeof(err)) == 0, "%s", err); /* a change: the same thread */
	ck_assert_uint_eq(thread_count(), threads + 2);
	queue_state(h, 1, &rules, &queues);
	ck_assert_uint_eq(rules, 2);
	ck_assert_uint_eq(queues, 2);
	(void)connect_time(h, HOSTS_ROOT, hosts_addr(h, 1), 7003, 2000); /* packets held and released (refused) */
	l = (struct hosts_link){ 0 };
	ck_assert_int_eq(hosts_set_link(h, 1, &l, err, sizeof(err)), 0);
	queue_state(h, 1, &rules, &queues);
	ck_assert_uint_eq(rules, 0);
	ck_assert_uint_eq(queues, 0);
	ck_assert_uint_eq(thread_count(), threads + 1);
	queue_state(h, 0, &rules, &queues);
	ck_assert_uint_eq(rules, 2);
	hosts_free(h);
	ck_assert_uint_eq(thread_count(), threads);
}
END_TEST

/* The owner of a client's socket on a test host: looked up in the client's own namespace (issue 12's app lookup). */
START_TEST(test_socket_owner_on_host)
{
	struct hosts *h;
	char err[512];
	int a, lfd, cfd, one = 1;
	struct sockaddr_in sa = { .sin_family = AF_INET }, peer;
	socklen_t sl = sizeof(sa);
	pid_t child;

	if (hosts_check("the hosts test", err, sizeof(err)) < 0)
		return;
	ck_assert_msg(hosts_new(&h, err, sizeof(err)) == 0, "%s", err);
	a = hosts_add(h, "app", err, sizeof(err));
	ck_assert_msg(a >= 0, "%s", err);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	inet_pton(AF_INET, hosts_addr(h, HOSTS_ROOT), &sa.sin_addr);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	getsockname(lfd, (struct sockaddr *)&sa, &sl);
	child = fork();
	if (child == 0) {
		int fd;

		setpgid(0, 0);
		if (hosts_enter(h, a) < 0 || (fd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
		    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			_exit(1);
		pause();
		_exit(0);
	}
	setpgid(child, child);
	sl = sizeof(peer);
	cfd = accept(lfd, (struct sockaddr *)&peer, &sl);
	ck_assert_int_ge(cfd, 0);
	ck_assert_int_eq(proc_socket_owner(ntohs(peer.sin_port), ntohs(sa.sin_port), &child, 1), child);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	close(cfd);
	close(lfd);
	hosts_free(h);
}
END_TEST

/* A normal user gets one line that names what needs root. */
START_TEST(test_hosts_refused_without_root)
{
	int fds[2], status;
	char buf[512] = "";
	pid_t pid;
	ssize_t n;

	if (geteuid() != 0)
		return; /* we are the normal user: hosts_check's own message is asserted below all the same */
	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	if (pid == 0) {
		char err[512];

		close(fds[0]);
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(2);
		if (hosts_check("broker.nodes = 3", err, sizeof(err)) == 0)
			_exit(1);
		(void)!write(fds[1], err, strlen(err));
		_exit(0);
	}
	close(fds[1]);
	n = read(fds[0], buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(fds[0]);
	waitpid(pid, &status, 0);
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert_msg(strstr(buf, "broker.nodes = 3 needs root") && strstr(buf, "network namespaces"), "%s", buf);
}
END_TEST

Suite *hosts_suite(void)
{
	Suite *s = suite_create("hosts");
	TCase *tc = tcase_create("hosts");

	tcase_add_test(tc, test_hosts_reach_delay_cut);
	tcase_add_test(tc, test_hosts_refused_without_root);
	tcase_add_test(tc, test_socket_owner_on_host);
	tcase_add_test(tc, test_hosts_link_loss);
	tcase_add_test(tc, test_hosts_link_order);
	tcase_add_test(tc, test_hosts_link_cleanup);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	/* round trips held to a 2 ms band: alone, not beside the other shard */
	tc = tcase_create("hosts_rtt");
	tcase_add_test(tc, test_hosts_link_rtt);
	tcase_set_timeout(tc, 60);
	tcase_set_tags(tc, "serial");
	suite_add_tcase(s, tc);
	return s;
}
