/* check_hosts.c — test hosts: namespaces that reach each other, netem delay measured, partitions and healing, the refusal without root. */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
	/* the root reaches both, a reaches b; without netem a handshake takes well under 5 ms */
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
	ck_assert_msg(t > 0 && t < 5 * NS_PER_MS, "netem removed: %.2f ms", t / 1e6);
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
	/* the root's own view of that port pair is the accepted socket's reverse: not the child's */
	ck_assert_int_eq(proc_socket_owner(ntohs(sa.sin_port), ntohs(peer.sin_port), &child, 1), 0);
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
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}
