/* check_main.c — the test runner: starts one private broker, runs every suite, stops the broker. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "tests.h"

/* Weak so a module's suite can be added without touching this file first. */
#pragma weak util_suite
#pragma weak frame_suite
#pragma weak rule_suite
#pragma weak proxy_suite
#pragma weak broker_suite
#pragma weak scenario_suite
#pragma weak ledger_suite
#pragma weak dedup_suite
#pragma weak stats_suite
#pragma weak run_suite
#pragma weak batch_suite

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

static void on_signal(int sig)
{
	broker_cleanup_signal();
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
		util_suite, frame_suite, rule_suite, broker_suite, proxy_suite, scenario_suite,
		ledger_suite, dedup_suite, stats_suite, run_suite, batch_suite,
	};
	struct broker *b = NULL;
	struct redis_node *rn = NULL;
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
		struct broker_opts o = { 0 };
		char err[1024];

		fprintf(stderr, "check_dupsim: starting a private RabbitMQ node for the tests\n");
		if (broker_start(&b, &o, err, sizeof(err)) < 0) {
			fprintf(stderr, "check_dupsim: %s\n", err);
			return 1;
		}
		snprintf(broker_url_buf, sizeof(broker_url_buf), "%s", broker_url(b));
		broker_port = broker_amqp_port(b);
		fprintf(stderr, "check_dupsim: broker at %s\n", broker_url_buf);
	}

	{
		struct broker_opts o = { .quiet = true };
		char err[1024];

		if (redis_node_start(&rn, &o, err, sizeof(err)) < 0) {
			fprintf(stderr, "check_dupsim: %s\n", err);
			broker_free(b);
			return 1;
		}
		snprintf(redis_url_buf, sizeof(redis_url_buf), "%s", redis_node_url(rn));
	}

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (!all[i])
			continue;
		if (!sr)
			sr = srunner_create(all[i]());
		else
			srunner_add_suite(sr, all[i]());
	}
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	redis_node_free(rn);
	broker_free(b);
	return failed == 0 ? 0 : 1;
}
