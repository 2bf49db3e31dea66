/* tests.h — the suites of check_dupsim and what they share: the private broker of the test run. */
#ifndef DUPSIM_TESTS_H
#define DUPSIM_TESTS_H

#include <amqp.h>
#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* One suite per module, each in tests/check_<module>.c. */
Suite *core_suite(void);
Suite *frame_suite(void);
Suite *rule_suite(void);
Suite *proxy_suite(void);
Suite *api_suite(void);
Suite *nodes_suite(void);
Suite *scenario_suite(void);
Suite *ledger_suite(void);
Suite *dedup_suite(void);
Suite *stats_suite(void);
Suite *evidence_suite(void);
Suite *events_suite(void);
Suite *workload_suite(void);
Suite *model_suite(void);
Suite *run_suite(void);
Suite *batch_suite(void);
Suite *plot_suite(void);
Suite *hosts_suite(void);
Suite *cluster_suite(void);

/*
 * The private RabbitMQ node started once by the runner (or named by
 * DUPSIM_TEST_URL): its amqp:// URL and AMQP port. Valid in every test.
 */
const char *test_broker_url(void);
uint16_t test_broker_port(void);
/* The private redis-server of the test run: redis://127.0.0.1:PORT. */
const char *test_redis_url(void);
/* A logged-in AMQP connection to 127.0.0.1:port (the broker, or a proxy in front of it); fails the test otherwise. */
amqp_connection_state_t test_open(uint16_t port);
/* Messages ready in queue q on the test broker (a passive declare: q must exist). */
uint32_t test_queue_depth(const char *q);
/* Path of the dupsim binary under test ($DUPSIM_BIN, default build/dupsim). */
const char *test_dupsim_bin(void);
/* A minimal HTTP/1.1 client to 127.0.0.1:port, one request per connection: req[0..len) sent, the
 * whole answer into resp; its status (-1: none). test_http: METHOD path with body (NULL: none),
 * the answer's body into out. */
int test_http_raw(uint16_t port, const char *req, size_t len, char *resp, size_t resplen);
int test_http(uint16_t port, const char *method, const char *path, const char *body, char *out, size_t outlen);

/*
 * Runs the dupsim binary with args (NULL-terminated, argv[0] left out);
 * its stdout and stderr go into out (NUL-terminated, cut at outlen - 1).
 * during(pid, arg), when given, runs while it does: to talk to it, to send
 * it SIGINT. Returns the exit status, 128 + the signal when killed.
 */
int test_dupsim(const char *const *args, char *out, size_t outlen, void (*during)(pid_t pid, void *arg), void *arg);

#endif
