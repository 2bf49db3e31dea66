/* tests.h — the suites of check_dupsim and what they share: the private broker of the test run. */
#ifndef DUPSIM_TESTS_H
#define DUPSIM_TESTS_H

#include <check.h>
#include <stdint.h>

/* One suite per module, each in tests/check_<module>.c. */
Suite *util_suite(void);
Suite *frame_suite(void);
Suite *rule_suite(void);
Suite *proxy_suite(void);
Suite *broker_suite(void);
Suite *scenario_suite(void);
Suite *ledger_suite(void);
Suite *dedup_suite(void);
Suite *stats_suite(void);
Suite *run_suite(void);
Suite *batch_suite(void);

/*
 * The private RabbitMQ node started once by the runner (or named by
 * DUPSIM_TEST_URL): its amqp:// URL and AMQP port. Valid in every test.
 */
const char *test_broker_url(void);
uint16_t test_broker_port(void);
/* The private redis-server of the test run: redis://127.0.0.1:PORT. */
const char *test_redis_url(void);
/* Path of the dupsim binary under test ($DUPSIM_BIN, default build/dupsim). */
const char *test_dupsim_bin(void);

#endif
