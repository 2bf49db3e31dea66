/* check_api.c — the proxy's control API over real HTTP, with real AMQP clients through the proxy to the run's broker. */
#include <amqp.h>
#include <amqp_framing.h>
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/net.h"
#include "proxy/api.h"
#include "proxy/proxy.h"
#include "tests.h"
#include "wire/frame.h"
#include "workload/mq.h"

#define BASIC_ACK (60u << 16 | 80)
#define BASIC_PUBLISH (60u << 16 | 40)

struct fixture {
	struct proxy *px;
	struct api *api;
	uint16_t port; /* the API's */
};

/* A proxy in front of the run's broker with the given rules, and its API on a free loopback port. */
static void fixture_start(struct fixture *f, const char *const *rules, size_t n)
{
	struct rule r[8];
	struct proxy_config cfg = { .listen_host = "127.0.0.1", .upstream_host = "127.0.0.1",
				    .upstream_port = test_broker_port(), .rules = r, .rule_count = n,
				    .seed = 1, .quiet = true };
	char err[256];

	for (size_t i = 0; i < n; i++)
		ck_assert_msg(rule_parse(rules[i], &r[i], err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(proxy_new(&f->px, &cfg, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(proxy_start(f->px), 0);
	ck_assert_msg(api_new(&f->api, f->px, "127.0.0.1", 0, err, sizeof(err)) == 0, "%s", err);
	f->port = api_port(f->api);
	ck_assert_uint_ne(f->port, 0);
}

static void fixture_stop(struct fixture *f)
{
	api_free(f->api);
	proxy_free(f->px);
}

/* The answer's body as JSON; fails the test when it is not. */
static json_t *http_json(uint16_t port, const char *method, const char *path, const char *body, int want_status)
{
	char out[1 << 16];
	json_error_t je;
	int status = test_http(port, method, path, body, out, sizeof(out));
	json_t *j;

	ck_assert_msg(status == want_status, "%s %s: %d, wanted %d: %s", method, path, status, want_status, out);
	j = json_loads(out, 0, &je);
	ck_assert_msg(j != NULL, "%s %s: not JSON: %s", method, path, out);
	return j;
}

/* The error message of a 4xx answer, which must be JSON {"error": "..."}. */
static void expect_error(uint16_t port, const char *method, const char *path, const char *body, int want_status,
			 const char *needle)
{
	json_t *j = http_json(port, method, path, body, want_status);
	const char *msg = json_string_value(json_object_get(j, "error"));

	ck_assert_msg(msg && strstr(msg, needle), "%s %s: error '%s' lacks '%s'", method, path, msg ? msg : "(none)",
		      needle);
	json_decref(j);
}

static json_int_t jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	ck_assert_msg(json_is_integer(v), "no integer '%s'", key);
	return json_integer_value(v);
}

/* ---- AMQP ---- */

/* A fresh, empty queue q on the broker. */
static void queue_fresh(const char *q)
{
	amqp_connection_state_t c = test_open(test_broker_port());

	amqp_queue_delete(c, 1, amqp_cstring_bytes(q), 0, 0);
	ck_assert(mq_ok(amqp_get_rpc_reply(c)));
	amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 0, 0, 0, 0, amqp_empty_table);
	ck_assert(mq_ok(amqp_get_rpc_reply(c)));
	mq_close(c);
}

/* The messages ids[0..n) into q, published directly. */
static void publish_ids(const char *q, const char *const *ids, int n)
{
	amqp_connection_state_t c = test_open(test_broker_port());

	for (int i = 0; i < n; i++) {
		amqp_basic_properties_t p = { ._flags = AMQP_BASIC_MESSAGE_ID_FLAG, .message_id = amqp_cstring_bytes(ids[i]) };

		ck_assert_int_eq(amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(q), 0, 0, &p,
						    amqp_cstring_bytes("hello")),
				 AMQP_STATUS_OK);
	}
	mq_close(c);
}

/* A consumer through port on q, manual acks, not yet given a message. */
static amqp_connection_state_t consumer(uint16_t port, const char *q)
{
	amqp_connection_state_t c = test_open(port);

	amqp_basic_qos(c, 1, 0, 10, 0);
	ck_assert(mq_ok(amqp_get_rpc_reply(c)));
	amqp_basic_consume(c, 1, amqp_cstring_bytes(q), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
	ck_assert(mq_ok(amqp_get_rpc_reply(c)));
	return c;
}

/*
 * Takes one message on c and acks it; then an RPC on the connection. Returns
 * 1 when the connection survived the ack, 0 when it was cut; *redelivered is
 * the message's flag.
 */
static int take_and_ack(amqp_connection_state_t c, int *redelivered)
{
	struct timeval tv = { .tv_sec = 5 };
	amqp_envelope_t e;

	ck_assert(mq_ok(amqp_consume_message(c, &e, &tv, 0)));
	*redelivered = e.redelivered;
	ck_assert_int_eq(amqp_basic_ack(c, 1, e.delivery_tag, 0), AMQP_STATUS_OK);
	amqp_destroy_envelope(&e);
	amqp_basic_qos(c, 1, 0, 10, 0);
	return amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL;
}

/* The rule with this id in GET /rules; fails when it is not there. */
static json_t *listed_rule(uint16_t port, json_int_t id)
{
	json_t *list = http_json(port, "GET", "/rules", NULL, 200), *r = NULL, *v;
	size_t i;

	ck_assert(json_is_array(list));
	json_array_foreach(list, i, v)
		if (jint(v, "id") == id)
			r = json_incref(v);
	json_decref(list);
	ck_assert_msg(r != NULL, "rule %lld not in GET /rules", (long long)id);
	return r;
}

/*
 * A rule added through the API while a consumer is connected fires on that
 * connection (its generator made then); PATCH p=0 stops it; DELETE removes
 * it; ids are not reused.
 */
START_TEST(test_rule_lifecycle)
{
	const char *ids[] = { "m-1" };
	struct fixture f;
	amqp_connection_state_t c;
	json_t *j;
	char out[4096];
	int redelivered;

	fixture_start(&f, NULL, 0);
	queue_fresh("api-ack");
	c = consumer(proxy_port(f.px), "api-ack"); /* open before the rule exists */
	j = http_json(f.port, "POST", "/rules", "{\"rule\": \"drop basic.ack from=client p=1\"}", 201);
	ck_assert_int_eq(jint(j, "id"), 1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "rule")), "drop basic.ack from=client");
	json_decref(j);
	publish_ids("api-ack", ids, 1);
	ck_assert_int_eq(take_and_ack(c, &redelivered), 0); /* the ack dropped, the connection cut */
	ck_assert_int_eq(redelivered, 0);
	mq_abandon(c);
	j = listed_rule(f.port, 1);
	ck_assert_int_eq(jint(j, "matched"), 1);
	ck_assert_int_eq(jint(j, "fired"), 1);
	json_decref(j);

	/* p = 0: the redelivered message is acked through the proxy this time */
	j = http_json(f.port, "PATCH", "/rules/1", "{\"p\": 0}", 200);
	ck_assert_str_eq(json_string_value(json_object_get(j, "rule")), "drop basic.ack from=client p=0");
	ck_assert(json_real_value(json_object_get(j, "p")) == 0 || json_integer_value(json_object_get(j, "p")) == 0);
	json_decref(j);
	c = consumer(proxy_port(f.px), "api-ack");
	ck_assert_int_eq(take_and_ack(c, &redelivered), 1);
	ck_assert_int_eq(redelivered, 1);
	mq_close(c);
	ck_assert_uint_eq(test_queue_depth("api-ack"), 0);
	j = listed_rule(f.port, 1);
	ck_assert_int_eq(jint(j, "matched"), 2);
	ck_assert_int_eq(jint(j, "fired"), 1);
	json_decref(j);

	/* DELETE: gone, and a second DELETE or PATCH finds nothing */
	ck_assert_int_eq(test_http(f.port, "DELETE", "/rules/1", NULL, out, sizeof(out)), 204);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(test_http(f.port, "GET", "/rules", NULL, out, sizeof(out)), 200);
	ck_assert_str_eq(out, "[]\n");
	expect_error(f.port, "DELETE", "/rules/1", NULL, 404, "rule 1: no such rule");
	expect_error(f.port, "PATCH", "/rules/1", "{\"p\": 0.5}", 404, "rule 1: no such rule");
	expect_error(f.port, "GET", "/rules/1", NULL, 404, "rule 1: no such rule");
	j = http_json(f.port, "POST", "/rules", "{\"rule\": \"cut tx.commit-ok\"}", 201);
	ck_assert_int_eq(jint(j, "id"), 2);
	json_decref(j);
	fixture_stop(&f);
}
END_TEST

/* Ids stay with their rules when an earlier one is deleted; PATCH takes "5%" and reports the new text. */
START_TEST(test_ids_stable)
{
	const char *rules[] = { "drop basic.ack from=client p=0.01", "cut tx.commit-ok from=broker" };
	struct fixture f;
	json_t *j, *list;

	fixture_start(&f, rules, 2);
	list = http_json(f.port, "GET", "/rules", NULL, 200);
	ck_assert_uint_eq(json_array_size(list), 2);
	ck_assert_int_eq(jint(json_array_get(list, 0), "id"), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "rule")),
			 "drop basic.ack from=client p=0.01");
	json_decref(list);
	ck_assert_int_eq(test_http(f.port, "DELETE", "/rules/1", NULL, (char[64]){ 0 }, 64), 204);
	j = http_json(f.port, "PATCH", "/rules/2", "{\"p\": \"5%\"}", 200);
	ck_assert_int_eq(jint(j, "id"), 2);
	ck_assert_str_eq(json_string_value(json_object_get(j, "rule")), "cut tx.commit-ok from=broker p=0.05");
	json_decref(j);
	j = http_json(f.port, "GET", "/rules/2", NULL, 200);
	ck_assert(json_real_value(json_object_get(j, "p")) == 0.05);
	json_decref(j);
	fixture_stop(&f);
}
END_TEST

/* Bad requests: a 4xx with a JSON error naming what is wrong. */
START_TEST(test_bad_requests)
{
	static char req[1 << 17], resp[4096];
	struct fixture f;
	int n;

	fixture_start(&f, NULL, 0);
	expect_error(f.port, "POST", "/rules", "{\"rule\": \"drop basic.ak from=client\"}", 400,
		     "unknown method 'basic.ak'; did you mean 'basic.ack'?");
	expect_error(f.port, "POST", "/rules", "{\"rule\": \"drop basic.ack p=2\"}", 400, "p=2");
	expect_error(f.port, "POST", "/rules", "{\"rules\": \"drop basic.ack\"}", 400, "rules: unknown field");
	expect_error(f.port, "POST", "/rules", "{}", 400, "rule: missing");
	expect_error(f.port, "POST", "/rules", "{\"rule\": 5}", 400, "rule: not a string");
	expect_error(f.port, "POST", "/rules", "drop basic.ack", 400, "body: not JSON");
	expect_error(f.port, "POST", "/rules", NULL, 400, "body: empty");
	expect_error(f.port, "POST", "/rules", "[\"drop basic.ack\"]", 400, "body: expected a JSON object");
	json_decref(http_json(f.port, "POST", "/rules", "{\"rule\": \"drop basic.ack\"}", 201));
	expect_error(f.port, "PATCH", "/rules/1", "{\"p\": 1.5}", 400, "p: out of range or not a number");
	expect_error(f.port, "PATCH", "/rules/1", "{\"p\": \"often\"}", 400, "p: ");
	expect_error(f.port, "PATCH", "/rules/1", "{}", 400, "p: missing");
	expect_error(f.port, "PATCH", "/rules/1", "{\"p\": 0.5, \"then\": \"hang\"}", 400, "then: unknown field");
	expect_error(f.port, "GET", "/rules/one", NULL, 404, "/rules/one: no such rule");
	expect_error(f.port, "GET", "/toxics", NULL, 404, "/toxics: no such endpoint");
	expect_error(f.port, "PUT", "/rules", NULL, 405, "PUT /rules: method not allowed");
	expect_error(f.port, "GET", "/cut", NULL, 405, "/cut takes POST");
	expect_error(f.port, "POST", "/stats", NULL, 405, "/stats takes GET");
	expect_error(f.port, "POST", "/rules/1", NULL, 405, "takes GET, PATCH, DELETE");
	/* 405 says what is allowed */
	n = snprintf(req, sizeof(req), "PUT /rules HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
	ck_assert_int_eq(test_http_raw(f.port, req, (size_t)n, resp, sizeof(resp)), 405);
	ck_assert_msg(strstr(resp, "\r\nAllow: GET, POST\r\n") != NULL, "%s", resp);
	/* too big: declared (answered before the body), and sent in chunks with no length */
	n = snprintf(req, sizeof(req), "POST /rules HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n",
		     API_BODY_MAX + 1);
	ck_assert_int_eq(test_http_raw(f.port, req, (size_t)n, resp, sizeof(resp)), 413);
	ck_assert_msg(strstr(resp, "\"error\": \"body: over 65536 bytes\"") != NULL, "%s", resp);
	n = snprintf(req, sizeof(req), "POST /rules HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
				       "Transfer-Encoding: chunked\r\n\r\n");
	for (int k = 0; k < 3; k++) {
		n += snprintf(req + n, sizeof(req) - (size_t)n, "8000\r\n");
		memset(req + n, ' ', 0x8000);
		n += 0x8000;
		n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
	}
	n += snprintf(req + n, sizeof(req) - (size_t)n, "0\r\n\r\n");
	ck_assert_int_eq(test_http_raw(f.port, req, (size_t)n, resp, sizeof(resp)), 413);
	/* and the API still answers, the one rule still there */
	ck_assert_int_eq(test_http(f.port, "GET", "/rules/1", NULL, resp, sizeof(resp)), 200);
	fixture_stop(&f);
}
END_TEST

/* POST /cut cuts every open connection, counts them, and the clients see it at once. */
START_TEST(test_cut)
{
	struct fixture f;
	amqp_connection_state_t c[3];
	json_t *j;
	uint64_t t0;

	fixture_start(&f, NULL, 0);
	for (int i = 0; i < 3; i++)
		c[i] = test_open(proxy_port(f.px));
	j = http_json(f.port, "POST", "/cut", NULL, 200);
	ck_assert_int_eq(jint(j, "cut"), 3);
	json_decref(j);
	t0 = clock_now_ns();
	for (int i = 0; i < 3; i++) {
		amqp_basic_qos(c[i], 1, 0, 10, 0);
		ck_assert_int_ne(amqp_get_rpc_reply(c[i]).reply_type, AMQP_RESPONSE_NORMAL);
		mq_abandon(c[i]);
	}
	ck_assert_uint_lt(clock_now_ns() - t0, 2 * NS_PER_S); /* a cut, not the RPC timeout */
	j = http_json(f.port, "POST", "/cut", NULL, 200); /* nothing left to cut */
	ck_assert_int_eq(jint(j, "cut"), 0);
	json_decref(j);
	j = http_json(f.port, "GET", "/stats", NULL, 200);
	ck_assert_int_eq(jint(json_object_get(j, "faults"), "cuts_requested"), 3);
	ck_assert_int_eq(jint(json_object_get(j, "connections"), "accepted"), 3);
	json_decref(j);
	/* new connections go through as before */
	c[0] = test_open(proxy_port(f.px));
	amqp_basic_qos(c[0], 1, 0, 10, 0);
	ck_assert(mq_ok(amqp_get_rpc_reply(c[0])));
	mq_close(c[0]);
	fixture_stop(&f);
}
END_TEST

/* GET /stats: the counters proxy_stats_get gives, frames per method and direction among them. */
START_TEST(test_stats)
{
	const char *ids[] = { "s-1", "s-2", "s-3" };
	struct fixture f;
	amqp_connection_state_t c;
	struct proxy_stats st;
	json_t *j, *m;
	size_t i;
	int publishes = 0, redelivered;

	fixture_start(&f, NULL, 0);
	queue_fresh("api-stats");
	publish_ids("api-stats", ids, 3);
	c = consumer(proxy_port(f.px), "api-stats");
	for (int k = 0; k < 3; k++)
		ck_assert_int_eq(take_and_ack(c, &redelivered), 1);
	amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes("api-stats-nowhere"), 0, 0, NULL,
			   amqp_cstring_bytes("x"));
	amqp_basic_qos(c, 1, 0, 10, 0);
	ck_assert(mq_ok(amqp_get_rpc_reply(c)));
	j = http_json(f.port, "GET", "/stats", NULL, 200);
	ck_assert_int_eq(proxy_stats_get(f.px, &st), 0);
	ck_assert_int_eq(jint(json_object_get(j, "connections"), "accepted"), 1);
	ck_assert_int_eq(jint(json_object_get(j, "connections"), "open"), 1);
	ck_assert_int_eq(jint(json_object_get(j, "bytes"), "from_client"), (json_int_t)st.bytes[PROXY_TO_BROKER]);
	ck_assert_int_gt(jint(json_object_get(j, "bytes"), "from_broker"), 0);
	ck_assert_int_eq(jint(json_object_get(json_object_get(j, "frames"), "from_client"), "method"),
			 (json_int_t)st.frames[PROXY_TO_BROKER][0]);
	ck_assert_int_eq(jint(json_object_get(json_object_get(j, "frames"), "from_broker"), "body"), 3);
	json_array_foreach(json_object_get(j, "methods"), i, m) {
		const char *name = json_string_value(json_object_get(m, "method"));
		const char *from = json_string_value(json_object_get(m, "from"));

		if (strcmp(name, "basic.ack") == 0)
			ck_assert_str_eq(from, "client");
		if (strcmp(name, "basic.ack") == 0)
			ck_assert_int_eq(jint(m, "seen"), 3);
		if (strcmp(name, "basic.deliver") == 0)
			ck_assert_int_eq(jint(m, "seen"), 3);
		if (strcmp(name, "basic.publish") == 0) {
			ck_assert_int_eq(jint(m, "seen"), 1);
			publishes++;
		}
		ck_assert_int_eq(jint(m, "dropped"), 0);
	}
	ck_assert_int_eq(publishes, 1);
	ck_assert_int_eq(jint(json_object_get(j, "acks"), "sampled"), 3);
	proxy_stats_release(&st);
	json_decref(j);
	mq_close(c);
	fixture_stop(&f);
}
END_TEST

/* An API that cannot listen says where and why, once. */
START_TEST(test_port_taken)
{
	struct fixture f;
	struct api *again = (struct api *)&f;
	char err[512], want[64];

	fixture_start(&f, NULL, 0);
	ck_assert_int_eq(api_new(&again, f.px, "127.0.0.1", f.port, err, sizeof(err)), -1);
	ck_assert_ptr_null(again);
	snprintf(want, sizeof(want), "api: cannot serve on 127.0.0.1:%u: ", f.port);
	ck_assert_msg(strstr(err, want) == err && strlen(err) > strlen(want), "%s", err);
	ck_assert_int_eq(api_new(&again, f.px, "no-such-host.invalid", 0, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "cannot resolve 'no-such-host.invalid'") != NULL, "%s", err);
	fixture_stop(&f);
}
END_TEST

/* `dupsim proxy --api`: rules added, changed and deleted with curl's requests while it runs,
 * listed as they ended when it stops. */
static void add_rule_then_stop(pid_t pid, void *arg)
{
	uint16_t port = *(uint16_t *)arg;
	char out[4096];
	int status = -1;

	for (int i = 0; i < 100 && status != 201; i++) {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
					  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		int up = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;

		close(fd);
		if (up)
			status = test_http(port, "POST", "/rules", "{\"rule\": \"drop basic.nack p=0.5\"}", out, sizeof(out));
		else
			clock_sleep_ns(50 * NS_PER_MS);
	}
	ck_assert_msg(status == 201, "%d %s", status, out);
	ck_assert_int_eq(test_http(port, "PATCH", "/rules/1", "{\"p\": 0.25}", out, sizeof(out)), 200);
	ck_assert_int_eq(test_http(port, "POST", "/rules", "{\"rule\": \"cut basic.ack\"}", out, sizeof(out)), 201);
	ck_assert_int_eq(test_http(port, "DELETE", "/rules/2", NULL, out, sizeof(out)), 204);
	kill(pid, SIGINT);
}

START_TEST(test_cli)
{
	char out[16384], upstream[64], api[64];
	uint16_t port;

	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", test_broker_port());
	{
		const char *argv[] = { "proxy", "--help", NULL };

		ck_assert_int_eq(test_dupsim(argv, out, sizeof(out), NULL, NULL), 0);
		ck_assert_ptr_nonnull(strstr(out, "--api [HOST:]PORT"));
	}
	{
		const char *argv[] = { "proxy", "--listen", "127.0.0.1:0", "--upstream", upstream, "--api", "here", NULL };

		ck_assert_int_eq(test_dupsim(argv, out, sizeof(out), NULL, NULL), 2);
		ck_assert_msg(strstr(out, "--api 'here': expected [HOST:]PORT") != NULL, "%s", out);
	}
	ck_assert_int_eq(net_free_port(&port), 0);
	snprintf(api, sizeof(api), "%u", port); /* a bare port: loopback */
	{
		const char *argv[] = { "proxy", "--listen", "127.0.0.1:0", "--upstream", upstream, "--api", api, NULL };

		ck_assert_int_eq(test_dupsim(argv, out, sizeof(out), add_rule_then_stop, &port), 0);
		snprintf(api, sizeof(api), "control API on http://127.0.0.1:%u/", port);
		ck_assert_msg(strstr(out, api) != NULL, "%s", out);
		ck_assert_msg(strstr(out, "warning") == NULL, "%s", out);
		/* the text as it reads now (it used to print the one it started with), and the deleted one marked */
		ck_assert_msg(strstr(out, "rule 1 'drop basic.nack p=0.25' (added through the API): matched 0, fired 0"),
			      "%s", out);
		ck_assert_msg(strstr(out, "rule 2 (deleted): matched 0, fired 0"), "%s", out);
	}
}
END_TEST

Suite *api_suite(void)
{
	Suite *s = suite_create("api");
	TCase *tc = tcase_create("http");

	tcase_add_test(tc, test_rule_lifecycle);
	tcase_add_test(tc, test_ids_stable);
	tcase_add_test(tc, test_bad_requests);
	tcase_add_test(tc, test_cut);
	tcase_add_test(tc, test_stats);
	tcase_add_test(tc, test_port_taken);
	tcase_add_test(tc, test_cli);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}
