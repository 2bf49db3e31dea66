/* check_main.c — the test runner: starts one private broker, runs every suite, stops the broker. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nodes/node.h"
#include "nodes/proc.h"
#include "nodes/rabbitmq.h"
#include "nodes/redis.h"
#include "tests.h"
#include "workload/mq.h"

/* ---- a minimal HTTP/1.1 client: one request per connection ---- */

/* Sends req[0..len) to the API, reads the whole answer into resp; returns its status (-1: none). */
int test_http_raw(uint16_t port, const char *req, size_t len, char *resp, size_t resplen)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { .tv_sec = 10 };
	int fd = socket(AF_INET, SOCK_STREAM, 0), status = -1;
	size_t got = 0;
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	for (size_t off = 0; off < len; off += (size_t)n) {
		n = send(fd, req + off, len - off, MSG_NOSIGNAL);
		ck_assert_int_gt(n, 0);
	}
	while (got + 1 < resplen && (n = read(fd, resp + got, resplen - 1 - got)) > 0)
		got += (size_t)n;
	resp[got] = '\0';
	close(fd);
	sscanf(resp, "HTTP/1.1 %d", &status);
	return status;
}

/* METHOD path with body (NULL: none); the answer's body into out (at most outlen). Returns the status. */
int test_http(uint16_t port, const char *method, const char *path, const char *body, char *out, size_t outlen)
{
	static char req[8192], resp[1 << 16];
	size_t blen = body ? strlen(body) : 0;
	int n = snprintf(req, sizeof(req),
			 "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
			 "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
			 method, path, blen, body ? body : "");
	int status;
	const char *at;

	ck_assert_int_lt(n, (int)sizeof(req));
	status = test_http_raw(port, req, (size_t)n, resp, sizeof(resp));
	at = strstr(resp, "\r\n\r\n");
	snprintf(out, outlen, "%s", at ? at + 4 : "");
	return status;
}

/* Weak so a module's suite can be added without touching this file first. */
#pragma weak core_suite
#pragma weak frame_suite
#pragma weak rule_suite
#pragma weak proxy_suite
#pragma weak api_suite
#pragma weak nodes_suite
#pragma weak scenario_suite
#pragma weak ledger_suite
#pragma weak workload_suite
#pragma weak dedup_suite
#pragma weak stats_suite
#pragma weak evidence_suite
#pragma weak events_suite
#pragma weak model_suite
#pragma weak run_suite
#pragma weak batch_suite
#pragma weak plot_suite
#pragma weak hosts_suite
#pragma weak cluster_suite

static char broker_url_buf[256];
static char redis_url_buf[128];
static uint16_t broker_port;

const char *test_broker_url(void)
{
	return broker_url_buf;
}

uint16_t test_broker_port(void)
{
	return broker_port;
}

const char *test_redis_url(void)
{
	return redis_url_buf;
}

const char *test_dupsim_bin(void)
{
	const char *b = getenv("DUPSIM_BIN");

	return b && *b ? b : "build/dupsim";
}

amqp_connection_state_t test_open(uint16_t port)
{
	char err[256];
	amqp_connection_state_t c = mq_open_local(port, 5000, err, sizeof(err));

	ck_assert_msg(c != NULL, "%s", err);
	return c;
}

uint32_t test_queue_depth(const char *q)
{
	amqp_connection_state_t c = test_open(test_broker_port());
	amqp_queue_declare_ok_t *ok = amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 1, 0, 0, 0, amqp_empty_table);
	uint32_t n;

	ck_assert_ptr_nonnull(ok);
	n = ok->message_count;
	mq_close(c);
	return n;
}

int test_dupsim(const char *const *args, char *out, size_t outlen, void (*during)(pid_t pid, void *arg), void *arg)
{
	extern char **environ;
	char *argv[128];
	int argc = 0, pipefd[2], st;
	posix_spawn_file_actions_t fa;
	pid_t pid;
	size_t n = 0;

	argv[argc++] = "dupsim";
	for (size_t i = 0; args[i] && argc < 127; i++)
		argv[argc++] = (char *)args[i];
	argv[argc] = NULL;
	ck_assert_int_eq(pipe(pipefd), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	posix_spawn_file_actions_addclose(&fa, pipefd[0]);
	ck_assert_int_eq(posix_spawn(&pid, test_dupsim_bin(), &fa, NULL, argv, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (during)
		during(pid, arg);
	for (;;) { /* once out is full, the rest is read and dropped: a child must never block on the pipe */
		char sink[4096];
		ssize_t k = n + 1 < outlen ? read(pipefd[0], out + n, outlen - n - 1) : read(pipefd[0], sink, sizeof(sink));

		if (k <= 0)
			break;
		if (n + 1 < outlen)
			n += (size_t)k;
	}
	out[n] = '\0';
	close(pipefd[0]);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void on_signal(int sig)
{
	proc_cleanup_signal();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int port_of(const char *url)
{
	const char *at = strrchr(url, ':');

	return at ? atoi(at + 1) : 0;
}

int main(void)
{
	Suite *(*const all[])(void) = {
		core_suite, frame_suite, rule_suite, nodes_suite, proxy_suite, api_suite, scenario_suite,
		ledger_suite, workload_suite, dedup_suite, stats_suite, evidence_suite, events_suite, model_suite, run_suite, batch_suite, plot_suite,
		hosts_suite, cluster_suite,
	};
	struct node *b = NULL;
	struct node *rn = NULL;
	const char *ext = getenv("DUPSIM_TEST_URL");
	SRunner *sr = NULL;
	int failed;

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);

	if (ext && *ext) {
		snprintf(broker_url_buf, sizeof(broker_url_buf), "%s", ext);
		broker_port = (uint16_t)port_of(ext);
	} else {
		struct node_opts o = { 0 };
		char err[1024];

		fprintf(stderr, "check_dupsim: starting a private RabbitMQ node for the tests\n");
		if (node_new(&b, &rabbitmq_ops, &o, err, sizeof(err)) < 0) {
			fprintf(stderr, "check_dupsim: %s\n", err);
			return 1;
		}
		snprintf(broker_url_buf, sizeof(broker_url_buf), "%s", node_url(b));
		broker_port = node_port(b);
		fprintf(stderr, "check_dupsim: broker at %s\n", broker_url_buf);
	}

	{
		struct node_opts o = { .quiet = true };
		char err[1024];

		if (node_new(&rn, &redis_ops, &o, err, sizeof(err)) < 0) {
			fprintf(stderr, "check_dupsim: %s\n", err);
			node_free(b);
			return 1;
		}
		snprintf(redis_url_buf, sizeof(redis_url_buf), "%s", node_url(rn));
	}

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (!all[i])
			continue;
		if (!sr)
			sr = srunner_create(all[i]());
		else
			srunner_add_suite(sr, all[i]());
	}
	/*
	 * DUPSIM_TEST_SHARD (tools/test-shards): 1 runs the test cases tagged
	 * "shard1", 0 the untagged ones, so that two processes, each with a
	 * broker of its own, share the work; "serial" runs the ones tagged
	 * serial, which measure timing-dependent figures against the model and
	 * run alone afterwards; unset, everything.
	 */
	if (getenv("DUPSIM_TEST_SHARD") && strcmp(getenv("DUPSIM_TEST_SHARD"), "1") == 0)
		srunner_run_tagged(sr, NULL, NULL, "shard1", NULL, CK_NORMAL);
	else if (getenv("DUPSIM_TEST_SHARD") && strcmp(getenv("DUPSIM_TEST_SHARD"), "0") == 0)
		srunner_run_tagged(sr, NULL, NULL, NULL, "shard1 serial", CK_NORMAL);
	else if (getenv("DUPSIM_TEST_SHARD") && strcmp(getenv("DUPSIM_TEST_SHARD"), "serial") == 0)
		srunner_run_tagged(sr, NULL, NULL, "serial", NULL, CK_NORMAL);
	else
		srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	node_free(rn);
	node_free(b);
	return failed == 0 ? 0 : 1;
}
