/* check_proxy.c — the fault proxy against the run's private broker: relaying, drops, cuts, hangs, bad peers. */
#include <amqp.h>
#include <amqp_framing.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wire/frame.h"
#include "workload/mq.h"
#include "proxy/proxy.h"
#include "tests.h"
#include "core/clock.h"
#include "core/files.h"
#include "core/net.h"
#include "core/rng.h"

#define COMMIT_OK (90u << 16 | 21)
#define BASIC_ACK (60u << 16 | 80)
#define BASIC_DELIVER (60u << 16 | 60)
#define BASIC_PUBLISH (60u << 16 | 40)

static struct proxy *start_proxy(const char *const *rules, size_t n, uint16_t upstream)
{
	struct rule r[32];
	struct proxy_config cfg = { .listen_host = "127.0.0.1", .upstream_host = "127.0.0.1",
				    .upstream_port = upstream ? upstream : test_broker_port(),
				    .rules = r, .rule_count = n, .seed = 1, .quiet = true };
	struct proxy *px;
	char err[256];

	for (size_t i = 0; i < n; i++)
		ck_assert_msg(rule_parse(rules[i], &r[i], err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(proxy_new(&px, &cfg, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(proxy_start(px), 0);
	return px;
}

static void declare_fresh(amqp_connection_state_t c, const char *q)
{
	char why[256];

	amqp_queue_delete(c, 1, amqp_cstring_bytes(q), 0, 0);
	ck_assert_msg(mq_ok(amqp_get_rpc_reply(c)), "%s", mq_reply_str(amqp_get_rpc_reply(c), why, sizeof(why)));
	amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 0, 1, 0, 0, amqp_empty_table);
	ck_assert_msg(mq_ok(amqp_get_rpc_reply(c)), "%s", mq_reply_str(amqp_get_rpc_reply(c), why, sizeof(why)));
}

static int publish(amqp_connection_state_t c, const char *q, const char *id, const void *body, size_t len)
{
	amqp_basic_properties_t p = { 0 };

	p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
	p.delivery_mode = 2;
	p.message_id = amqp_cstring_bytes(id);
	return amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(q), 0, 0, &p,
				  (amqp_bytes_t){ len, (void *)body });
}

/* basic.get on a direct connection, retried for up to wait_ms; 1 found, 0 empty. */
static int direct_get(const char *q, int wait_ms, char *id, size_t idlen, int *redelivered)
{
	amqp_connection_state_t c = test_open(test_broker_port());
	uint64_t deadline = clock_now_ns() + (uint64_t)wait_ms * NS_PER_MS;
	int found = 0;

	for (;;) {
		amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(q), 1);

		ck_assert(mq_ok(r));
		if (r.reply.id == AMQP_BASIC_GET_OK_METHOD) {
			amqp_basic_get_ok_t *ok = r.reply.decoded;
			amqp_message_t m;

			*redelivered = ok->redelivered;
			ck_assert(mq_ok(amqp_read_message(c, 1, &m, 0)));
			snprintf(id, idlen, "%.*s", (int)m.properties.message_id.len,
				 (const char *)m.properties.message_id.bytes);
			amqp_destroy_message(&m);
			found = 1;
			break;
		}
		if (clock_now_ns() > deadline)
			break;
		clock_sleep_ns(50 * NS_PER_MS);
	}
	mq_close(c);
	return found;
}

/* (1) no rules: random bodies, some spanning several body frames, arrive byte-identical. */
struct relay_job {
	uint16_t port;
	int idx, messages;
	size_t max_body;
	int errors;
};

static void *relay_worker(void *arg)
{
	struct relay_job *j = arg;
	char q[32], id[32];
	struct rng rng;
	amqp_connection_state_t c = test_open(j->port);
	uint8_t *body = malloc(j->max_body + 1);
	uint64_t *sums = calloc((size_t)j->messages, sizeof(*sums));
	size_t *lens = calloc((size_t)j->messages, sizeof(*lens));

	snprintf(q, sizeof(q), "relay-%d", j->idx);
	declare_fresh(c, q);
	rng_seed(&rng, (uint64_t)j->idx + 100);
	for (int i = 0; i < j->messages; i++) {
		size_t len = rng_next(&rng) % (j->max_body + 1);
		uint64_t h = 1469598103934665603ull;

		for (size_t k = 0; k < len; k++) {
			body[k] = (uint8_t)rng_next(&rng);
			h = (h ^ body[k]) * 1099511628211ull;
		}
		sums[i] = h;
		lens[i] = len;
		snprintf(id, sizeof(id), "%d", i);
		if (publish(c, q, id, body, len) != AMQP_STATUS_OK)
			j->errors++;
	}
	amqp_basic_consume(c, 1, amqp_cstring_bytes(q), amqp_empty_bytes, 0, 1, 0, amqp_empty_table);
	ck_assert(mq_ok(amqp_get_rpc_reply(c)));
	for (int i = 0; i < j->messages; i++) {
		amqp_envelope_t e;
		uint64_t h = 1469598103934665603ull;
		int n;

		amqp_maybe_release_buffers(c);
		if (!mq_ok(amqp_consume_message(c, &e, NULL, 0))) {
			j->errors++;
			break;
		}
		n = atoi((const char *)e.message.properties.message_id.bytes);
		for (size_t k = 0; k < e.message.body.len; k++)
			h = (h ^ ((uint8_t *)e.message.body.bytes)[k]) * 1099511628211ull;
		if (n != i || e.message.body.len != lens[i] || h != sums[i])
			j->errors++;
		amqp_destroy_envelope(&e);
	}
	amqp_queue_delete(c, 1, amqp_cstring_bytes(q), 0, 0);
	mq_close(c);
	free(body);
	free(sums);
	free(lens);
	return NULL;
}

START_TEST(test_relay_identical)
{
	struct proxy *px = start_proxy(NULL, 0, 0);
	enum { CONNS = 12 };
	pthread_t t[CONNS];
	struct relay_job jobs[CONNS];
	struct proxy_stats st;

	for (int i = 0; i < CONNS; i++) {
		/* two connections carry bodies up to 3 frames long */
		jobs[i] = (struct relay_job){ .port = proxy_port(px), .idx = i, .messages = i < 2 ? 60 : 200,
					      .max_body = i < 2 ? 3 * FRAME_DEFAULT_MAX : 2048 };
		pthread_create(&t[i], NULL, relay_worker, &jobs[i]);
	}
	for (int i = 0; i < CONNS; i++) {
		pthread_join(t[i], NULL);
		ck_assert_msg(jobs[i].errors == 0, "connection %d: %d errors", i, jobs[i].errors);
	}
	proxy_stats_get(px, &st);
	ck_assert_uint_eq(st.conns_accepted, CONNS);
	ck_assert_uint_eq(st.method_seen[PROXY_TO_BROKER][frame_method_index(60u << 16 | 40)], 2 * 60 + 10 * 200);
	ck_assert_uint_eq(st.method_seen[PROXY_TO_CLIENT][frame_method_index(60u << 16 | 60)], 2 * 60 + 10 * 200);
	ck_assert_uint_gt(st.frames[PROXY_TO_CLIENT][2], st.method_seen[PROXY_TO_CLIENT][frame_method_index(60u << 16 | 60)]);
	ck_assert_uint_eq(st.drops, 0);
	ck_assert_uint_eq(st.malformed, 0);
	proxy_stats_release(&st);
	proxy_free(px);
}
END_TEST

/* (2) CommitOk lost after the broker committed: the commit fails, the message is in the queue. */
START_TEST(test_drop_commit_ok)
{
	const char *rules[] = { "drop tx.commit-ok from=broker p=1 then=close" };
	struct proxy *px = start_proxy(rules, 1, 0);
	amqp_connection_state_t c = test_open(proxy_port(px));
	char id[64];
	int redelivered;
	struct proxy_stats st;

	declare_fresh(c, "commit-ok");
	amqp_tx_select(c, 1);
	ck_assert(mq_ok(amqp_get_rpc_reply(c))); /* tx.select-ok passes */
	ck_assert_int_eq(publish(c, "commit-ok", "m-1", "x", 1), AMQP_STATUS_OK);
	ck_assert_ptr_null(amqp_tx_commit(c, 1));
	ck_assert_int_eq(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_LIBRARY_EXCEPTION);
	ck_assert_int_ne(amqp_get_rpc_reply(c).library_error, AMQP_STATUS_TIMEOUT); /* cut, not hung */
	mq_abandon(c);
	/* the duplicate-maker: the publisher never heard, yet the message is there */
	ck_assert_int_eq(direct_get("commit-ok", 2000, id, sizeof(id), &redelivered), 1);
	ck_assert_str_eq(id, "m-1");
	ck_assert_int_eq(redelivered, 0);
	proxy_stats_get(px, &st);
	ck_assert_uint_eq(st.drops, 1);
	ck_assert_uint_eq(st.cuts, 1);
	ck_assert_uint_eq(st.method_dropped[PROXY_TO_CLIENT][frame_method_index(COMMIT_OK)], 1);
	ck_assert_uint_eq(st.method_dropped[PROXY_TO_BROKER][frame_method_index(COMMIT_OK)], 0);
	ck_assert_uint_eq(st.rule_fired[0], 1);
	proxy_stats_release(&st);
	proxy_free(px);
}
END_TEST

/* Rule counters cover every rule, not the first 16: twenty rules, the last one fires. */
START_TEST(test_many_rule_counters)
{
	const char *rules[20];
	struct proxy *px;
	amqp_connection_state_t c;
	struct proxy_stats st;

	for (int i = 0; i < 19; i++)
		rules[i] = "drop basic.publish from=client p=0";
	rules[19] = "drop tx.commit-ok from=broker then=close";
	px = start_proxy(rules, 20, 0);
	c = test_open(proxy_port(px));
	declare_fresh(c, "many-rules");
	amqp_tx_select(c, 1);
	ck_assert(mq_ok(amqp_get_rpc_reply(c)));
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(publish(c, "many-rules", "r", "x", 1), AMQP_STATUS_OK);
	ck_assert_ptr_null(amqp_tx_commit(c, 1)); /* rule 20 cut it */
	mq_abandon(c);
	ck_assert_int_eq(proxy_stats_get(px, &st), 0);
	ck_assert_uint_eq(st.rule_count, 20);
	for (int i = 0; i < 19; i++) {
		ck_assert_uint_eq(st.rule_matched[i], 3);
		ck_assert_uint_eq(st.rule_fired[i], 0);
	}
	ck_assert_uint_eq(st.rule_matched[19], 1);
	ck_assert_uint_eq(st.rule_fired[19], 1);
	ck_assert_uint_eq(st.cuts, 1);
	proxy_stats_release(&st);
	ck_assert_ptr_null(st.rule_matched);
	proxy_stats_release(&st); /* twice is fine */
	proxy_free(px);
}
END_TEST

/*
 * Consumes one message through port and acks it; *ack_status is the ack's
 * send status, *after the library error of the next RPC on that connection
 * (0 when it succeeded): a cut shows there as a closed connection.
 */
static void consume_one_and_ack(uint16_t port, const char *q, int *ack_status, int *after)
{
	amqp_rpc_reply_t r;
	uint64_t t0;

	amqp_connection_state_t c = test_open(port);
	amqp_envelope_t e;

	amqp_basic_qos(c, 1, 0, 10, 0);
	ck_assert(mq_ok(amqp_get_rpc_reply(c)));
	amqp_basic_consume(c, 1, amqp_cstring_bytes(q), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
	ck_assert(mq_ok(amqp_get_rpc_reply(c)));
	ck_assert(mq_ok(amqp_consume_message(c, &e, NULL, 0)));
	ck_assert_int_eq(e.message.body.len, 5);
	ck_assert_int_eq(e.redelivered, 0);
	*ack_status = amqp_basic_ack(c, 1, e.delivery_tag, 0);
	amqp_destroy_envelope(&e);
	t0 = clock_now_ns();
	amqp_basic_qos(c, 1, 0, 10, 0);
	r = amqp_get_rpc_reply(c);
	*after = r.reply_type == AMQP_RESPONSE_NORMAL ? 0 : r.library_error;
	/* a cut is seen at once, not after the 5 s RPC timeout */
	ck_assert_uint_lt(clock_now_ns() - t0, 2 * NS_PER_S);
	mq_abandon(c);
}

static void put_one(const char *q, const char *id)
{
	amqp_connection_state_t c = test_open(test_broker_port());

	declare_fresh(c, q);
	ck_assert_int_eq(publish(c, q, id, "hello", 5), AMQP_STATUS_OK);
	mq_close(c);
}

/* (3) a consumer's ack lost with the connection: the message comes back, redelivered. */
START_TEST(test_drop_ack)
{
	const char *rules[] = { "drop basic.ack from=client then=close" };
	struct proxy *px = start_proxy(rules, 1, 0);
	char id[64];
	int redelivered = 0, st_ack, after;
	struct proxy_stats st;

	put_one("ack-loss", "a-1");
	consume_one_and_ack(proxy_port(px), "ack-loss", &st_ack, &after);
	ck_assert_msg(after == AMQP_STATUS_CONNECTION_CLOSED || after == AMQP_STATUS_SOCKET_ERROR, "%d", after);
	ck_assert_int_eq(direct_get("ack-loss", 5000, id, sizeof(id), &redelivered), 1);
	ck_assert_str_eq(id, "a-1");
	ck_assert_int_eq(redelivered, 1);
	proxy_stats_get(px, &st);
	ck_assert_uint_eq(st.method_dropped[PROXY_TO_BROKER][frame_method_index(BASIC_ACK)], 1);
	proxy_stats_release(&st);
	proxy_free(px);
}
END_TEST

/* What the tap told, in order (from the proxy's thread). */
struct tap_log {
	pthread_mutex_t lock;
	int opens, closes, acks;
	int deliveries;
	char ids[8][32];
	bool redelivered[8];
	uint64_t tags[8], acked[8];
};

static void tap_open_cb(void *arg, uint64_t conn, uint16_t port)
{
	struct tap_log *t = arg;

	(void)conn;
	ck_assert_uint_ne(port, 0);
	pthread_mutex_lock(&t->lock);
	t->opens++;
	pthread_mutex_unlock(&t->lock);
}

static void tap_delivery_cb(void *arg, const struct proxy_delivery *d)
{
	struct tap_log *t = arg;

	pthread_mutex_lock(&t->lock);
	if (t->deliveries < 8 && d->props && (d->props->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)) {
		snprintf(t->ids[t->deliveries], sizeof(t->ids[0]), "%.*s", (int)d->props->message_id.len,
			 (const char *)d->props->message_id.bytes);
		t->redelivered[t->deliveries] = d->redelivered;
		t->tags[t->deliveries++] = d->delivery_tag;
	}
	pthread_mutex_unlock(&t->lock);
}

static void tap_settle_cb(void *arg, const struct proxy_settle *s)
{
	struct tap_log *t = arg;

	pthread_mutex_lock(&t->lock);
	if (s->kind == PROXY_SETTLE_ACK && t->acks < 8)
		t->acked[t->acks++] = s->delivery_tag;
	pthread_mutex_unlock(&t->lock);
}

static void tap_close_cb(void *arg, uint64_t conn)
{
	struct tap_log *t = arg;

	(void)conn;
	pthread_mutex_lock(&t->lock);
	t->closes++;
	pthread_mutex_unlock(&t->lock);
}

/*
 * The tap (for a user's app): each basic.deliver with its decoded content
 * header, each ack the client sends (a dropped one too), each connection's
 * end. The ack is lost, so the message comes back, flagged redelivered.
 */
START_TEST(test_tap_deliveries_and_acks)
{
	struct tap_log t = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct rule r;
	struct proxy_config cfg = { .listen_host = "127.0.0.1", .upstream_host = "127.0.0.1",
				    .upstream_port = test_broker_port(), .rules = &r, .rule_count = 1, .seed = 1,
				    .quiet = true, .tap = { .conn_open = tap_open_cb, .delivery = tap_delivery_cb,
							    .settle = tap_settle_cb, .conn_close = tap_close_cb,
							    .arg = &t } };
	struct proxy *px;
	char err[256];
	int st_ack, after;
	amqp_connection_state_t c;
	amqp_envelope_t e;

	ck_assert(rule_parse("drop basic.ack from=client then=close", &r, err, sizeof(err)) == 0);
	ck_assert_msg(proxy_new(&px, &cfg, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(proxy_start(px), 0);
	put_one("tap", "tap-7");
	consume_one_and_ack(proxy_port(px), "tap", &st_ack, &after); /* the ack is dropped, the connection cut */
	c = test_open(proxy_port(px));
	amqp_basic_consume(c, 1, amqp_cstring_bytes("tap"), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
	ck_assert(mq_ok(amqp_get_rpc_reply(c)));
	ck_assert(mq_ok(amqp_consume_message(c, &e, NULL, 0)));
	amqp_destroy_envelope(&e);
	mq_close(c); /* unacked: the broker takes it back */
	for (int i = 0; i < 100; i++) { /* the relay tells the end as it reads it */
		pthread_mutex_lock(&t.lock);
		bool done = t.closes == 2;
		pthread_mutex_unlock(&t.lock);
		if (done)
			break;
		clock_sleep_ns(20 * NS_PER_MS);
	}
	pthread_mutex_lock(&t.lock);
	ck_assert_int_eq(t.opens, 2);
	ck_assert_int_eq(t.closes, 2);
	ck_assert_int_eq(t.deliveries, 2);
	ck_assert_str_eq(t.ids[0], "tap-7");
	ck_assert_str_eq(t.ids[1], "tap-7");
	ck_assert(!t.redelivered[0] && t.redelivered[1]);
	ck_assert_int_eq(t.acks, 1); /* the dropped one: the client did send it */
	ck_assert_uint_eq(t.acked[0], t.tags[0]);
	pthread_mutex_unlock(&t.lock);
	proxy_free(px);
}
END_TEST

/* (4) the control case: the ack arrived, then the cut; nothing comes back. */
START_TEST(test_cut_ack)
{
	const char *rules[] = { "cut basic.ack from=client" };
	struct proxy *px = start_proxy(rules, 1, 0);
	char id[64];
	int redelivered, st_ack, after;
	struct proxy_stats st;

	put_one("ack-cut", "c-1");
	consume_one_and_ack(proxy_port(px), "ack-cut", &st_ack, &after);
	ck_assert_int_eq(st_ack, AMQP_STATUS_OK);
	ck_assert_msg(after == AMQP_STATUS_CONNECTION_CLOSED || after == AMQP_STATUS_SOCKET_ERROR, "%d", after);
	/* long enough for the broker to requeue if it had not seen the ack */
	ck_assert_int_eq(direct_get("ack-cut", 1500, id, sizeof(id), &redelivered), 0);
	ck_assert_uint_eq(test_queue_depth("ack-cut"), 0);
	proxy_stats_get(px, &st);
	ck_assert_uint_eq(st.cuts, 1);
	ck_assert_uint_eq(st.drops, 0);
	ck_assert_uint_eq(st.method_seen[PROXY_TO_BROKER][frame_method_index(BASIC_ACK)], 1);
	proxy_stats_release(&st);
	proxy_free(px);
}
END_TEST

/* then=hang: the frame is swallowed, the connection stays; the client times out. */
START_TEST(test_hang_commit_ok)
{
	const char *rules[] = { "drop tx.commit-ok from=broker then=hang after=2" };
	struct proxy *px = start_proxy(rules, 1, 0);
	amqp_connection_state_t c = test_open(proxy_port(px));
	struct timeval tv = { .tv_sec = 1 };
	char id[64];
	int redelivered;

	declare_fresh(c, "hang");
	amqp_tx_select(c, 1);
	ck_assert(mq_ok(amqp_get_rpc_reply(c)));
	/* the first commit passes (after=2), the second one hangs */
	ck_assert_int_eq(publish(c, "hang", "h-1", "x", 1), AMQP_STATUS_OK);
	ck_assert_ptr_nonnull(amqp_tx_commit(c, 1));
	ck_assert_int_eq(publish(c, "hang", "h-2", "x", 1), AMQP_STATUS_OK);
	amqp_set_rpc_timeout(c, &tv);
	ck_assert_ptr_null(amqp_tx_commit(c, 1));
	ck_assert_int_eq(amqp_get_rpc_reply(c).library_error, AMQP_STATUS_TIMEOUT);
	mq_abandon(c);
	ck_assert_int_eq(direct_get("hang", 1000, id, sizeof(id), &redelivered), 1);
	ck_assert_str_eq(id, "h-1");
	ck_assert_int_eq(direct_get("hang", 1000, id, sizeof(id), &redelivered), 1);
	ck_assert_str_eq(id, "h-2");
	proxy_free(px);
}
END_TEST

static int raw_connect(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct timeval tv = { .tv_sec = 5 };

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/*
 * A relay whose two peers are both the test's raw sockets: the frames each
 * side sends and receives are exact, so the relay's own decisions show
 * byte for byte. (The broker tests above show the same with RabbitMQ.)
 */
struct raw_relay {
	struct proxy *px;
	int listen_fd;
	int client;   /* connected to the proxy; the protocol header is sent */
	int upstream; /* the proxy's connection to "the broker", accepted */
};

/* Socket buffer sizes for the test's two ends, set before the connection exists; 0: the kernel's default. */
struct raw_bufs {
	int client_sndbuf, client_rcvbuf, upstream_rcvbuf;
	int upstream_mss; /* the MSS the upstream announces: the proxy sizes its send buffer to it */
};

/* One more connection through rr's proxy: the client connected, the protocol header sent, the upstream accepted. */
static void raw_relay_connect(struct raw_relay *rr, const struct raw_bufs *bufs, int *client, int *upstream)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(proxy_port(rr->px)),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { .tv_sec = 5 };
	struct pollfd pfd = { .fd = rr->listen_fd, .events = POLLIN };
	uint8_t hdr[8];
	int one = 1;

	*client = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(*client, 0);
	if (bufs->client_sndbuf > 0)
		setsockopt(*client, SOL_SOCKET, SO_SNDBUF, &bufs->client_sndbuf, sizeof(bufs->client_sndbuf));
	if (bufs->client_rcvbuf > 0)
		setsockopt(*client, SOL_SOCKET, SO_RCVBUF, &bufs->client_rcvbuf, sizeof(bufs->client_rcvbuf));
	ck_assert_int_eq(connect(*client, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(*client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(*client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ck_assert_int_eq(write(*client, "AMQP\0\0\x09\x01", 8), 8);
	ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
	*upstream = accept(rr->listen_fd, NULL, NULL);
	ck_assert_int_ge(*upstream, 0);
	setsockopt(*upstream, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(*upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ck_assert_int_eq(recv(*upstream, hdr, sizeof(hdr), MSG_WAITALL), 8);
	ck_assert(memcmp(hdr, "AMQP\0\0\x09\x01", 8) == 0);
}

static void raw_relay_open(struct raw_relay *rr, const char *const *rules, size_t n, const struct raw_bufs *bufs)
{
	const struct raw_bufs none = { 0 };
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int one = 1;

	rr->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(rr->listen_fd, 0);
	setsockopt(rr->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (!bufs)
		bufs = &none;
	if (bufs->upstream_rcvbuf > 0)
		setsockopt(rr->listen_fd, SOL_SOCKET, SO_RCVBUF, &bufs->upstream_rcvbuf, sizeof(bufs->upstream_rcvbuf));
	if (bufs->upstream_mss > 0)
		setsockopt(rr->listen_fd, IPPROTO_TCP, TCP_MAXSEG, &bufs->upstream_mss, sizeof(bufs->upstream_mss));
	ck_assert_int_eq(bind(rr->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(rr->listen_fd, 4), 0);
	ck_assert_int_eq(getsockname(rr->listen_fd, (struct sockaddr *)&sa, &sl), 0);
	rr->px = start_proxy(rules, n, ntohs(sa.sin_port));
	raw_relay_connect(rr, bufs, &rr->client, &rr->upstream);
}

static void raw_relay_close(struct raw_relay *rr)
{
	if (rr->client >= 0)
		close(rr->client);
	if (rr->upstream >= 0)
		close(rr->upstream);
	close(rr->listen_fd);
	proxy_free(rr->px);
}

/* Reads until len bytes came, or EOF, or nothing for timeout_ms; the count, and -errno on an error. */
static ssize_t read_upto(int fd, uint8_t *buf, size_t len, int timeout_ms)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, timeout_ms) != 1)
			break;
		n = read(fd, buf + got, len - got);
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* True when fd has nothing to read for ms (no data, no EOF). */
static int quiet_for(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, ms) == 0;
}

/* Writes everything; false when the connection failed (no check assertion: threads use it too). */
static bool send_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static void write_all(int fd, const uint8_t *p, size_t len)
{
	ck_assert(send_all(fd, p, len));
}

/* Frame builders: each appends one frame at out and returns its length. */
static size_t put_frame(uint8_t *out, uint8_t type, uint16_t ch, const void *payload, uint32_t len)
{
	out[0] = type;
	out[1] = (uint8_t)(ch >> 8);
	out[2] = (uint8_t)ch;
	for (int i = 0; i < 4; i++)
		out[3 + i] = (uint8_t)(len >> (24 - 8 * i));
	if (len)
		memcpy(out + 7, payload, len);
	out[7 + len] = FRAME_END;
	return (size_t)len + FRAME_OVERHEAD;
}

/* A method frame, its arguments encoded by librabbitmq-c. */
static size_t put_method(uint8_t *out, uint16_t ch, uint32_t number, void *decoded)
{
	uint8_t payload[512];
	int n;

	payload[0] = (uint8_t)(number >> 24);
	payload[1] = (uint8_t)(number >> 16);
	payload[2] = (uint8_t)(number >> 8);
	payload[3] = (uint8_t)number;
	n = amqp_encode_method(number, decoded, (amqp_bytes_t){ sizeof(payload) - 4, payload + 4 });
	ck_assert_int_ge(n, 0);
	return put_frame(out, FRAME_METHOD, ch, payload, (uint32_t)n + 4);
}

static size_t put_deliver(uint8_t *out, uint16_t ch, uint64_t tag)
{
	amqp_basic_deliver_t m = { .consumer_tag = amqp_cstring_bytes("ct"), .delivery_tag = tag,
				   .exchange = amqp_empty_bytes, .routing_key = amqp_cstring_bytes("q") };

	return put_method(out, ch, AMQP_BASIC_DELIVER_METHOD, &m);
}

static size_t put_ack(uint8_t *out, uint16_t ch, uint64_t tag, int multiple)
{
	amqp_basic_ack_t m = { .delivery_tag = tag, .multiple = multiple };

	return put_method(out, ch, AMQP_BASIC_ACK_METHOD, &m);
}

static size_t put_qos_ok(uint8_t *out, uint16_t ch)
{
	amqp_basic_qos_ok_t m = { .dummy = 0 };

	return put_method(out, ch, AMQP_BASIC_QOS_OK_METHOD, &m);
}

/* A content header of class basic with no properties. */
static size_t put_header(uint8_t *out, uint16_t ch, uint64_t body_size)
{
	uint8_t p[14] = { 0, 60, 0, 0 };

	for (int i = 0; i < 8; i++)
		p[4 + i] = (uint8_t)(body_size >> (56 - 8 * i));
	return put_frame(out, FRAME_HEADER, ch, p, sizeof(p));
}

static size_t put_body(uint8_t *out, uint16_t ch, const char *text)
{
	return put_frame(out, FRAME_BODY, ch, text, (uint32_t)strlen(text));
}

static size_t put_heartbeat(uint8_t *out)
{
	return put_frame(out, FRAME_HEARTBEAT, 0, NULL, 0);
}

/*
 * drop basic.deliver ... then=hang: the header and body frames of the
 * dropped deliveries go with them, on their channel only, whether the body
 * is split, empty, or interleaved with another channel's frames.
 */
START_TEST(test_hang_drops_content_raw)
{
	const char *rules[] = { "drop basic.deliver from=broker then=hang after=2" };
	struct raw_relay rr;
	uint8_t in[1024], want[1024], got[1024];
	size_t n = 0, w = 0, k;
	struct proxy_stats st;

	raw_relay_open(&rr, rules, 1, NULL);
	/* the first delivery passes (after=2) */
	k = put_deliver(in + n, 1, 1);
	k += put_header(in + n + k, 1, 5);
	k += put_body(in + n + k, 1, "hello");
	memcpy(want + w, in + n, k);
	n += k;
	w += k;
	/* the second is dropped: method, header, two bodies; channel 2's frame between them goes through */
	n += put_deliver(in + n, 1, 2);
	n += put_header(in + n, 1, 10);
	k = put_ack(in + n, 2, 7, 0);
	memcpy(want + w, in + n, k);
	n += k;
	w += k;
	n += put_body(in + n, 1, "01234");
	n += put_body(in + n, 1, "56789");
	/* the third, on channel 3, has an empty body: no body frame follows its header */
	n += put_deliver(in + n, 3, 1);
	n += put_header(in + n, 3, 0);
	/* what comes after the contents is not theirs */
	k = put_heartbeat(in + n);
	k += put_qos_ok(in + n + k, 3);
	k += put_qos_ok(in + n + k, 1);
	memcpy(want + w, in + n, k);
	n += k;
	w += k;
	write_all(rr.upstream, in, n);
	ck_assert_int_eq(read_upto(rr.client, got, w, 2000), (ssize_t)w);
	ck_assert(memcmp(got, want, w) == 0);
	ck_assert(quiet_for(rr.client, 200)); /* nothing else, and the connection stays */
	proxy_stats_get(rr.px, &st);
	ck_assert_uint_eq(st.drops, 2);
	ck_assert_uint_eq(st.content_dropped, 4);
	ck_assert_uint_eq(st.method_dropped[PROXY_TO_CLIENT][frame_method_index(BASIC_DELIVER)], 2);
	ck_assert_uint_eq(st.cuts, 0);
	proxy_stats_release(&st);
	raw_relay_close(&rr);
}
END_TEST

/*
 * drop heartbeat from=client then=hang: the client's heartbeats vanish, its
 * method frames and the broker's heartbeats pass, the connection stays (the
 * broker must time out). then=close cuts at the first heartbeat.
 */
START_TEST(test_heartbeat_rule_raw)
{
	const char *hang[] = { "drop heartbeat from=client then=hang" };
	const char *cut[] = { "drop heartbeat from=client" };
	struct raw_relay rr;
	uint8_t in[256], got[256];
	size_t n = 0, k;
	struct proxy_stats st;

	raw_relay_open(&rr, hang, 1, NULL);
	n = put_heartbeat(in);
	k = put_ack(in + n, 1, 3, 0);
	put_heartbeat(in + n + k);
	write_all(rr.client, in, 2 * n + k);
	ck_assert_int_eq(read_upto(rr.upstream, got, sizeof(got), 500), (ssize_t)k); /* the ack only */
	ck_assert(memcmp(got, in + n, k) == 0);
	n = put_heartbeat(in);
	write_all(rr.upstream, in, n); /* the broker's heartbeat is not the rule's */
	ck_assert_int_eq(read_upto(rr.client, got, n, 2000), (ssize_t)n);
	ck_assert(memcmp(got, in, n) == 0);
	ck_assert(quiet_for(rr.client, 200) && quiet_for(rr.upstream, 10)); /* the connection stays */
	proxy_stats_get(rr.px, &st);
	ck_assert_uint_eq(st.drops, 2);
	ck_assert_uint_eq(st.cuts, 0);
	ck_assert_uint_eq(st.frames[PROXY_TO_BROKER][3], 2);
	proxy_stats_release(&st);
	raw_relay_close(&rr);

	raw_relay_open(&rr, cut, 1, NULL);
	n = put_heartbeat(in);
	write_all(rr.client, in, n);
	ck_assert_int_eq(read_upto(rr.upstream, got, sizeof(got), 2000), 0); /* nothing, then EOF */
	proxy_stats_get(rr.px, &st);
	ck_assert_uint_eq(st.cuts, 1);
	proxy_stats_release(&st);
	raw_relay_close(&rr);
}
END_TEST

/* cut basic.deliver: the message goes through whole (its header and bodies), then the cut; nothing after it. */
START_TEST(test_cut_forwards_content_raw)
{
	const char *rules[] = { "cut basic.deliver from=broker after=2" };
	struct raw_relay rr;
	uint8_t in[1024], got[1024];
	size_t n = 0, w;

	raw_relay_open(&rr, rules, 1, NULL);
	n += put_deliver(in + n, 1, 1);
	n += put_header(in + n, 1, 5);
	n += put_body(in + n, 1, "hello");
	n += put_deliver(in + n, 1, 2); /* cut after this message */
	n += put_header(in + n, 1, 10);
	n += put_ack(in + n, 2, 7, 0); /* before the cut on the wire: goes through */
	n += put_body(in + n, 1, "01234");
	n += put_body(in + n, 1, "56789");
	w = n;
	n += put_qos_ok(in + n, 1); /* after the cut: never arrives */
	write_all(rr.upstream, in, n);
	ck_assert_int_eq(read_upto(rr.client, got, sizeof(got), 2000), (ssize_t)w); /* then EOF */
	ck_assert(memcmp(got, in, w) == 0);
	raw_relay_close(&rr);
}
END_TEST

/* Writes n body frames of 64 KiB, then a basic.qos-ok, on the upstream; then reads it until EOF. */
struct raw_writer {
	int fd;
	int frames;
};

static void *raw_writer_run(void *arg)
{
	struct raw_writer *w = arg;
	static uint8_t frame[65536 + FRAME_OVERHEAD];
	static char payload[65537];
	uint8_t end[16], junk[4096];
	size_t n;

	memset(payload, 'b', sizeof(payload) - 1);
	n = put_body(frame, 1, payload);
	for (int i = 0; i < w->frames; i++)
		if (!send_all(w->fd, frame, n))
			return NULL;
	if (!send_all(w->fd, end, put_qos_ok(end, 1)))
		return NULL;
	while (read(w->fd, junk, sizeof(junk)) > 0)
		;
	return NULL;
}

/*
 * cut: the frame it forwarded, and everything before it, reach the peer
 * before the connection goes. The client here is slow and keeps talking
 * while the proxy drains: closing a socket with unread input sends an RST,
 * which throws away what the kernel still had to send.
 */
START_TEST(test_cut_drains_before_close)
{
	const char *rules[] = { "cut basic.qos-ok from=broker" };
	struct raw_relay rr;
	struct raw_writer w;
	pthread_t t;
	uint8_t buf[16384], tail[12], hb[8], qos_ok[16];
	uint64_t got = 0, want;
	uint64_t deadline = clock_now_ns() + 20 * NS_PER_S;
	ssize_t last = 0;

	/* a fixed, small receive buffer and a slow reader keep the pipe full up to the cut */
	raw_relay_open(&rr, rules, 1, &(struct raw_bufs){ .client_rcvbuf = 65536 });
	w = (struct raw_writer){ .fd = rr.upstream, .frames = 128 }; /* 8 MiB: more than the kernel buffers hold */
	want = (uint64_t)w.frames * (65536 + FRAME_OVERHEAD) + put_qos_ok(qos_ok, 1);
	ck_assert_int_eq(pthread_create(&t, NULL, raw_writer_run, &w), 0);
	clock_sleep_ns(200 * NS_PER_MS); /* the pipe fills up */
	put_heartbeat(hb);
	while (clock_now_ns() < deadline) {
		struct pollfd pfd = { .fd = rr.client, .events = POLLIN };

		send_all(rr.client, hb, sizeof(hb)); /* unread by a proxy that only waits to close */
		if (poll(&pfd, 1, 1000) != 1)
			continue;
		last = read(rr.client, buf, sizeof(buf));
		if (last <= 0)
			break;
		if (last >= (ssize_t)sizeof(tail))
			memcpy(tail, buf + last - sizeof(tail), sizeof(tail));
		got += (uint64_t)last;
		clock_sleep_ns(NS_PER_MS);
	}
	ck_assert_msg(last == 0, "the read ended with %s after %llu of %llu bytes", last < 0 ? strerror(errno) : "a timeout",
		      (unsigned long long)got, (unsigned long long)want);
	ck_assert_uint_eq(got, want);
	ck_assert(memcmp(tail, qos_ok, sizeof(tail)) == 0);
	close(rr.client);
	rr.client = -1;
	pthread_join(t, NULL);
	raw_relay_close(&rr);
}
END_TEST

/* CPU time of every thread of this process but the calling one, in seconds: the proxy's, here. */
static double cpu_of_other_threads(void)
{
	struct rusage all, self;

	getrusage(RUSAGE_SELF, &all);
	getrusage(RUSAGE_THREAD, &self);
	return (double)(all.ru_utime.tv_sec + all.ru_stime.tv_sec - self.ru_utime.tv_sec - self.ru_stime.tv_sec) +
	       (double)(all.ru_utime.tv_usec + all.ru_stime.tv_usec - self.ru_utime.tv_usec - self.ru_stime.tv_usec) / 1e6;
}

/*
 * A client that sends a lot, stops reading and half-closes, while the
 * broker is slow: the client's socket is shut both ways (its FIN in, ours
 * out) with bytes still waiting in the kernel behind a full buffer. epoll
 * reports such a socket (EPOLLHUP) whatever the mask; the loop must not wake
 * for it over and over, and what the client sent must still all arrive.
 */
/* The writer side of test_backpressure_exact: sends the whole stream, then a FIN. */
struct raw_stream {
	int fd;
	const uint8_t *data;
	size_t len;
};

static void *raw_stream_run(void *arg)
{
	struct raw_stream *w = arg;
	size_t off = 0;

	while (off < w->len) {
		ssize_t n = write(w->fd, w->data + off, w->len - off);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	shutdown(w->fd, SHUT_WR);
	return NULL;
}

/*
 * Frames of many sizes (1 byte to 40 KiB of payload) into an upstream that
 * does not read for a while and has a small receive buffer: the relay's
 * buffer fills, its writes come back short, it stops reading the client, and
 * frames straddle its reads and its compactions. Every byte arrives, in
 * order, and the client's FIN follows the last one (half-close once drained).
 */
START_TEST(test_backpressure_exact)
{
	enum { FRAMES = 400 };
	const struct raw_bufs bufs = { .upstream_rcvbuf = 4096, .client_sndbuf = 8192 };
	struct raw_relay rr;
	struct raw_stream w;
	struct rng rng;
	uint8_t *stream = malloc((size_t)FRAMES * (40960 + FRAME_OVERHEAD)), *got;
	size_t len = 0;
	ssize_t n;
	pthread_t t;
	struct proxy_stats st;

	ck_assert_ptr_nonnull(stream);
	rng_seed(&rng, 11);
	for (int i = 0; i < FRAMES; i++) {
		uint32_t size = 1 + (uint32_t)(rng_next(&rng) % 40960);

		stream[len] = FRAME_BODY;
		stream[len + 1] = 0;
		stream[len + 2] = 1;
		for (int k = 0; k < 4; k++)
			stream[len + 3 + k] = (uint8_t)(size >> (24 - 8 * k));
		for (uint32_t k = 0; k < size; k++)
			stream[len + FRAME_HEADER_SIZE + k] = (uint8_t)(i + k);
		stream[len + FRAME_HEADER_SIZE + size] = FRAME_END;
		len += size + FRAME_OVERHEAD;
	}
	got = malloc(len + 1);
	ck_assert_ptr_nonnull(got);
	raw_relay_open(&rr, NULL, 0, &bufs);
	w = (struct raw_stream){ .fd = rr.client, .data = stream, .len = len };
	ck_assert_int_eq(pthread_create(&t, NULL, raw_stream_run, &w), 0);
	clock_sleep_ns(300 * NS_PER_MS); /* the upstream reads nothing yet: everything backs up */
	n = read_upto(rr.upstream, got, len + 1, 3000);
	pthread_join(t, NULL);
	ck_assert_int_eq(n, (ssize_t)len);
	ck_assert(memcmp(got, stream, len) == 0);
	ck_assert_int_eq(read(rr.upstream, got, 1), 0); /* the FIN, after the last byte */
	proxy_stats_get(rr.px, &st);
	ck_assert_uint_eq(st.bytes[PROXY_TO_BROKER], len + 8);
	ck_assert_uint_eq(st.frames[PROXY_TO_BROKER][2], FRAMES);
	proxy_stats_release(&st);
	raw_relay_close(&rr);
	free(got);
	free(stream);
}
END_TEST

START_TEST(test_hangup_with_full_buffer_is_quiet)
{
	enum { PAYLOAD = 65536 - FRAME_OVERHEAD, FRAME = PAYLOAD + FRAME_OVERHEAD, FRAMES = 256 };
	struct raw_relay rr;
	uint8_t *stream = malloc((size_t)FRAME * FRAMES), buf[16384];
	char *payload = malloc(PAYLOAD + 1);
	size_t sent = 0, whole, received = 0;
	struct proxy_stats st0, st1;
	double cpu0, cpu1;
	int outq = 1;
	ssize_t n;

	ck_assert_ptr_nonnull(stream);
	memset(payload, 'c', PAYLOAD);
	payload[PAYLOAD] = '\0';
	for (int i = 0; i < FRAMES; i++)
		put_body(stream + (size_t)i * FRAME, 1, payload);
	/* small buffers at the test's ends, so the proxy's own buffers are what fills */
	raw_relay_open(&rr, NULL, 0,
		       &(struct raw_bufs){ .client_sndbuf = 16384, .upstream_rcvbuf = 4096, .upstream_mss = 1024 });
	fcntl(rr.client, F_SETFL, O_NONBLOCK);
	/* send until the client stays unwritable: every buffer on the way to the broker is full */
	for (;;) {
		struct pollfd pfd = { .fd = rr.client, .events = POLLOUT };

		n = send(rr.client, stream + sent, (size_t)FRAME * FRAMES - sent, MSG_NOSIGNAL);
		if (n > 0) {
			sent += (size_t)n;
			ck_assert_uint_lt(sent, (size_t)FRAME * FRAMES);
			continue;
		}
		ck_assert_int_eq(errno, EAGAIN);
		if (poll(&pfd, 1, 200) == 0)
			break;
	}
	ck_assert_int_eq(shutdown(rr.client, SHUT_WR), 0);
	/* the broker reads a little at a time until the client's last byte and FIN are in the proxy */
	for (int i = 0; i < 2000 && outq > 0; i++) {
		n = recv(rr.upstream, buf, sizeof(buf), 0);
		ck_assert_int_gt(n, 0);
		received += (size_t)n;
		clock_sleep_ns(NS_PER_MS);
		ck_assert_int_eq(ioctl(rr.client, SIOCOUTQ, &outq), 0);
	}
	ck_assert_int_eq(outq, 0);
	whole = sent / FRAME * FRAME; /* a frame cut short by the half-close is dropped */
	proxy_stats_get(rr.px, &st0);
	ck_assert_msg(st0.bytes[PROXY_TO_BROKER] < whole, "set-up: the proxy should still hold some of the client's bytes");
	/* the broker half-closes: the proxy passes the FIN on, the client's socket is shut both ways */
	ck_assert_int_eq(shutdown(rr.upstream, SHUT_WR), 0);
	ck_assert_int_eq(read_upto(rr.client, buf, sizeof(buf), 2000), 0); /* EOF at the client */
	clock_sleep_ns(100 * NS_PER_MS);
	proxy_stats_get(rr.px, &st0);
	cpu0 = cpu_of_other_threads();
	clock_sleep_ns(NS_PER_S);
	proxy_stats_get(rr.px, &st1);
	cpu1 = cpu_of_other_threads();
	ck_assert_msg(st1.loop_wakeups - st0.loop_wakeups < 50, "the loop woke %llu times in 1 s",
		      (unsigned long long)(st1.loop_wakeups - st0.loop_wakeups));
	ck_assert_msg(cpu1 - cpu0 < 0.1, "the proxy used %.3f s of CPU in 1 s", cpu1 - cpu0);
	ck_assert_uint_eq(st1.conns_active, 1);
	ck_assert_uint_lt(received, sent); /* the relay really was blocked on the broker */
	/* the broker reads again: everything whole arrives, then EOF, and the connection is gone */
	while ((n = recv(rr.upstream, buf, sizeof(buf), 0)) > 0)
		received += (size_t)n;
	ck_assert_int_eq(n, 0);
	ck_assert_uint_eq(received, whole);
	for (int i = 0; i < 100; i++) {
		proxy_stats_get(rr.px, &st1);
		if (st1.conns_active == 0)
			break;
		clock_sleep_ns(20 * NS_PER_MS);
	}
	ck_assert_uint_eq(st1.conns_active, 0);
	free(stream);
	free(payload);
	raw_relay_close(&rr);
}
END_TEST

/*
 * Reads frames at an upstream until the basic.qos marker: which acks' delivery
 * tags got through. Returns how many; tags[] gets them.
 */
static int acks_through(int upstream, uint64_t *tags, int max)
{
	uint8_t f[64];
	int n = 0;

	for (;;) {
		uint32_t size;

		ck_assert_int_eq(recv(upstream, f, FRAME_HEADER_SIZE, MSG_WAITALL), FRAME_HEADER_SIZE);
		size = (uint32_t)f[3] << 24 | (uint32_t)f[4] << 16 | (uint32_t)f[5] << 8 | f[6];
		ck_assert_uint_le(size + 1, sizeof(f) - FRAME_HEADER_SIZE);
		ck_assert_int_eq(recv(upstream, f + FRAME_HEADER_SIZE, size + 1, MSG_WAITALL), (ssize_t)size + 1);
		if (f[7] == 0 && f[8] == 60 && f[9] == 0 && f[10] == 10) /* basic.qos: the end */
			return n;
		if (!(f[7] == 0 && f[8] == 60 && f[9] == 0 && f[10] == 80)) /* not an ack */
			continue;
		ck_assert_int_lt(n, max);
		tags[n] = 0;
		for (int i = 0; i < 8; i++)
			tags[n] = tags[n] << 8 | f[11 + i];
		n++;
	}
}

/* Sends acks first..last on channel 1 (each in its own write), and the marker after the last one when asked. */
static void send_acks(int client, uint64_t first, uint64_t last, int marker)
{
	uint8_t f[64];

	for (uint64_t t = first; t <= last; t++)
		write_all(client, f, put_ack(f, 1, t, 0));
	if (marker) {
		amqp_basic_qos_t q = { .prefetch_count = 1 };

		write_all(client, f, put_method(f, 1, AMQP_BASIC_QOS_METHOD, &q));
	}
}

/*
 * Through the proxy, each connection's decisions are its own: the n-th
 * connection's acks are dropped exactly as rule_set_decide predicts for
 * ordinal n and the seed, whether the two connections send one after the
 * other or interleaved.
 */
START_TEST(test_decisions_per_connection)
{
	const char *text = "drop basic.ack from=client p=0.5 then=hang";
	enum { ACKS = 200 };
	struct rule r;
	struct rule_set s;
	struct rule_conn rc[2];
	uint64_t want[2][ACKS], got[2][ACKS];
	int nwant[2] = { 0, 0 };

	ck_assert_int_eq(rule_parse(text, &r, NULL, 0), 0);
	ck_assert_int_eq(rule_set_init(&s, &r, 1, 1), 0); /* start_proxy's seed */
	for (int c = 0; c < 2; c++) {
		ck_assert_int_eq(rule_conn_init(&rc[c], &s, (uint64_t)c + 1), 0);
		for (uint64_t t = 1; t <= ACKS; t++)
			if (rule_set_decide(&s, &rc[c], BASIC_ACK, RULE_FROM_CLIENT) < 0)
				want[c][nwant[c]++] = t;
		rule_conn_release(&rc[c]);
	}
	rule_set_release(&s);
	ck_assert_int_gt(nwant[0], 0);
	ck_assert_int_lt(nwant[0], ACKS);
	for (int order = 0; order < 2; order++) {
		struct raw_relay rr;
		int client2, upstream2;

		raw_relay_open(&rr, &text, 1, NULL);			      /* ordinal 1 */
		raw_relay_connect(&rr, &(struct raw_bufs){ 0 }, &client2, &upstream2); /* ordinal 2 */
		if (order == 0) { /* the second connection first, then the first */
			send_acks(client2, 1, ACKS, 1);
			ck_assert_int_eq(acks_through(upstream2, got[1], ACKS), nwant[1]);
			send_acks(rr.client, 1, ACKS, 1);
			ck_assert_int_eq(acks_through(rr.upstream, got[0], ACKS), nwant[0]);
		} else { /* interleaved, ten at a time, each batch through before the next */
			for (uint64_t t = 1; t <= ACKS; t += 10) {
				send_acks(rr.client, t, t + 9, 1);
				send_acks(client2, t, t + 9, 1);
				clock_sleep_ns(2 * NS_PER_MS);
			}
			for (int c = 0; c < 2; c++) {
				int n = 0;

				for (uint64_t t = 1; t <= ACKS; t += 10)
					n += acks_through(c ? upstream2 : rr.upstream, got[c] + n, ACKS - n);
				ck_assert_int_eq(n, nwant[c]);
			}
		}
		for (int c = 0; c < 2; c++)
			ck_assert_msg(memcmp(got[c], want[c], (size_t)nwant[c] * sizeof(want[c][0])) == 0,
				      "order %d, connection %d: other acks dropped than its seed says", order, c + 1);
		close(client2);
		close(upstream2);
		raw_relay_close(&rr);
	}
}
END_TEST

static void send_qos_marker(int client)
{
	uint8_t f[64];
	amqp_basic_qos_t q = { .prefetch_count = 1 };

	write_all(client, f, put_method(f, 1, AMQP_BASIC_QOS_METHOD, &q));
}

/*
 * ahead, exactly: per channel, the highest delivery tag forwarded (a dropped
 * delivery does not count) minus the ack's tag; every ack counts, dropped or
 * not; a reopened channel starts again.
 */
START_TEST(test_ahead_raw)
{
	const char *rules[] = { "drop basic.deliver from=broker then=hang after=9",
				"drop basic.ack from=client then=hang after=5" };
	struct raw_relay rr;
	uint8_t in[1024], got[1024], out[1024];
	size_t n = 0, k;
	uint64_t tags[16];
	struct proxy_stats st;
	amqp_channel_open_t open = { .out_of_band = amqp_empty_bytes };

	raw_relay_open(&rr, rules, 2, NULL);
	for (uint64_t t = 1; t <= 5; t++)
		n += put_deliver(in + n, 1, t);
	n += put_deliver(in + n, 2, 1);
	n += put_deliver(in + n, 2, 2);
	write_all(rr.upstream, in, n);
	ck_assert_int_eq(read_upto(rr.client, got, n, 2000), (ssize_t)n);
	n = 0;
	n += put_ack(out + n, 1, 2, 0); /* 5 - 2 = 3 */
	n += put_ack(out + n, 1, 5, 1); /* 0 */
	n += put_ack(out + n, 2, 1, 0); /* 2 - 1 = 1 */
	n += put_ack(out + n, 7, 3, 0); /* no deliveries on channel 7: 0 */
	n += put_ack(out + n, 1, 0, 1); /* everything outstanding: 0; the 5th ack, dropped, still sampled */
	n += put_method(out + n, 2, AMQP_CHANNEL_OPEN_METHOD, &open); /* channel 2 again: tags from 1 */
	write_all(rr.client, out, n);
	send_qos_marker(rr.client);
	ck_assert_int_eq(acks_through(rr.upstream, tags, 16), 4);
	n = put_deliver(in, 2, 1);
	k = n;
	n += put_deliver(in + n, 1, 6); /* the 9th delivery: dropped, so the client never had it */
	write_all(rr.upstream, in, n);
	ck_assert_int_eq(read_upto(rr.client, got, k, 2000), (ssize_t)k);
	ck_assert(quiet_for(rr.client, 100));
	n = 0;
	n += put_ack(out + n, 2, 1, 0); /* 1 - 1 = 0 on the reopened channel, not 2 - 1 */
	n += put_ack(out + n, 1, 2, 0); /* still 5 - 2 = 3: tag 6 never went out */
	write_all(rr.client, out, n);
	send_qos_marker(rr.client);
	ck_assert_int_eq(acks_through(rr.upstream, tags, 16), 0); /* dropped (p=1 from the 5th on), sampled */
	proxy_stats_get(rr.px, &st);
	ck_assert_uint_eq(st.acks_sampled, 7);
	ck_assert_uint_eq(st.ahead_sum, 3 + 1 + 3);
	ck_assert_uint_eq(st.ahead_sq_sum, 9 + 1 + 9);
	/* the rule hit the 5th, 6th and 7th acks: ahead 0, 0 and 3 (the sizes its faults drew) */
	ck_assert_uint_eq(st.acks_hit, 3);
	ck_assert_uint_eq(st.ahead_hit_sum, 3);
	ck_assert_uint_eq(st.ahead_hit_sq_sum, 9);
	proxy_stats_release(&st);
	raw_relay_close(&rr);
}
END_TEST

/* Consumes `messages` through port with this prefetch, working work_ms on each and acking each. */
static void consume_and_ack(uint16_t port, const char *q, uint16_t prefetch, int messages, int work_ms)
{
	amqp_connection_state_t c = test_open(port);

	amqp_basic_qos(c, 1, 0, prefetch, 0);
	ck_assert(mq_ok(amqp_get_rpc_reply(c)));
	amqp_basic_consume(c, 1, amqp_cstring_bytes(q), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
	ck_assert(mq_ok(amqp_get_rpc_reply(c)));
	for (int i = 0; i < messages; i++) {
		amqp_envelope_t e;

		amqp_maybe_release_buffers(c);
		ck_assert(mq_ok(amqp_consume_message(c, &e, NULL, 0)));
		clock_sleep_ns((uint64_t)work_ms * NS_PER_MS);
		ck_assert_int_eq(amqp_basic_ack(c, 1, e.delivery_tag, 0), AMQP_STATUS_OK);
		amqp_destroy_envelope(&e);
	}
	mq_close(c);
}

/*
 * ahead through the broker: a slow consumer with prefetch 50 has deliveries
 * waiting beyond each ack (a lost ack brings those back too); with prefetch
 * 1 the broker hands out nothing before the ack, so ahead is always 0.
 */
START_TEST(test_ahead_prefetch)
{
	static const uint16_t prefetch[2] = { 50, 1 };
	enum { MESSAGES = 200 };
	double mean[2];

	for (int k = 0; k < 2; k++) {
		struct proxy *px = start_proxy(NULL, 0, 0);
		amqp_connection_state_t d = test_open(test_broker_port());
		struct proxy_stats st;

		declare_fresh(d, "ahead");
		for (int i = 0; i < MESSAGES; i++)
			ck_assert_int_eq(publish(d, "ahead", "m", "x", 1), AMQP_STATUS_OK);
		mq_close(d);
		consume_and_ack(proxy_port(px), "ahead", prefetch[k], MESSAGES, 2);
		proxy_stats_get(px, &st);
		ck_assert_uint_eq(st.acks_sampled, MESSAGES);
		mean[k] = (double)st.ahead_sum / (double)st.acks_sampled;
		proxy_stats_release(&st);
		proxy_free(px);
	}
	ck_assert_msg(mean[0] > 10, "prefetch 50: mean ahead %.2f", mean[0]);
	ck_assert_msg(mean[0] <= 49, "prefetch 50: mean ahead %.2f beyond the window", mean[0]);
	ck_assert_msg(mean[1] == 0, "prefetch 1: mean ahead %.2f", mean[1]);
}
END_TEST

/* Through the broker: a consumer whose deliveries are dropped with then=hang sees no stray header or body. */
START_TEST(test_hang_drops_deliver_content)
{
	const char *rules[] = { "drop basic.deliver from=broker then=hang after=2" };
	struct proxy *px = start_proxy(rules, 1, 0);
	amqp_connection_state_t d = test_open(test_broker_port()), c;
	struct timeval tv = { .tv_sec = 1 };
	amqp_envelope_t e;
	amqp_rpc_reply_t r;
	struct proxy_stats st;

	declare_fresh(d, "hang-deliver");
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(publish(d, "hang-deliver", "m", "hello", 5), AMQP_STATUS_OK);
	mq_close(d);
	c = test_open(proxy_port(px));
	amqp_basic_consume(c, 1, amqp_cstring_bytes("hang-deliver"), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
	ck_assert(mq_ok(amqp_get_rpc_reply(c)));
	ck_assert(mq_ok(amqp_consume_message(c, &e, NULL, 0)));
	ck_assert_int_eq(e.message.body.len, 5);
	amqp_destroy_envelope(&e);
	/* the other two are swallowed whole: the consumer waits, it does not see a header without its method */
	r = amqp_consume_message(c, &e, &tv, 0);
	ck_assert_int_eq(r.reply_type, AMQP_RESPONSE_LIBRARY_EXCEPTION);
	ck_assert_msg(r.library_error == AMQP_STATUS_TIMEOUT, "%s", amqp_error_string2(r.library_error));
	amqp_basic_qos(c, 1, 0, 10, 0); /* and the connection still works */
	ck_assert(mq_ok(amqp_get_rpc_reply(c)));
	mq_abandon(c);
	proxy_stats_get(px, &st);
	ck_assert_uint_eq(st.method_dropped[PROXY_TO_CLIENT][frame_method_index(BASIC_DELIVER)], 2);
	ck_assert_uint_eq(st.content_dropped, 4);
	proxy_stats_release(&st);
	proxy_free(px);
}
END_TEST

/* A publish dropped with then=hang takes its content along: the broker sees no stray header and keeps the connection. */
START_TEST(test_hang_drops_publish_content)
{
	const char *rules[] = { "drop basic.publish from=client then=hang after=2" };
	struct proxy *px = start_proxy(rules, 1, 0);
	amqp_connection_state_t c = test_open(proxy_port(px));
	char id[64];
	int redelivered;

	declare_fresh(c, "hang-publish");
	ck_assert_int_eq(publish(c, "hang-publish", "p-1", "hello", 5), AMQP_STATUS_OK);
	ck_assert_int_eq(publish(c, "hang-publish", "p-2", "hello", 5), AMQP_STATUS_OK); /* dropped */
	/* a stray header would make RabbitMQ close the connection (505 UNEXPECTED_FRAME) */
	ck_assert_ptr_nonnull(amqp_queue_declare(c, 1, amqp_cstring_bytes("hang-publish"), 1, 0, 0, 0,
						 amqp_empty_table));
	ck_assert_int_eq(publish(c, "hang-publish", "p-3", "hello", 5), AMQP_STATUS_OK); /* dropped too */
	amqp_queue_declare(c, 1, amqp_cstring_bytes("hang-publish"), 1, 0, 0, 0, amqp_empty_table);
	ck_assert(mq_ok(amqp_get_rpc_reply(c)));
	mq_close(c);
	ck_assert_int_eq(direct_get("hang-publish", 1000, id, sizeof(id), &redelivered), 1);
	ck_assert_str_eq(id, "p-1");
	ck_assert_uint_eq(test_queue_depth("hang-publish"), 0);
	proxy_free(px);
}
END_TEST

/* cut basic.deliver through the broker: the consumer gets the whole message, then the connection closes. */
START_TEST(test_cut_deliver)
{
	const char *rules[] = { "cut basic.deliver from=broker" };
	struct proxy *px = start_proxy(rules, 1, 0);
	amqp_connection_state_t c;
	amqp_envelope_t e;
	amqp_rpc_reply_t r;

	put_one("cut-deliver", "d-1");
	c = test_open(proxy_port(px));
	amqp_basic_consume(c, 1, amqp_cstring_bytes("cut-deliver"), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
	ck_assert(mq_ok(amqp_get_rpc_reply(c)));
	r = amqp_consume_message(c, &e, NULL, 0);
	ck_assert_msg(mq_ok(r), "%s", amqp_error_string2(r.library_error));
	ck_assert_int_eq(e.message.body.len, 5);
	ck_assert(memcmp(e.message.body.bytes, "hello", 5) == 0);
	amqp_destroy_envelope(&e);
	amqp_basic_qos(c, 1, 0, 10, 0);
	ck_assert_int_eq(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_LIBRARY_EXCEPTION);
	mq_abandon(c);
	proxy_free(px);
}
END_TEST

/* Malformed AMQP closes that connection only; the others keep working. */
START_TEST(test_malformed_peer)
{
	struct proxy *px = start_proxy(NULL, 0, 0);
	amqp_connection_state_t good = test_open(proxy_port(px));
	static const uint8_t bad_end[] = { 'A', 'M', 'Q', 'P', 0, 0, 9, 1, 8, 0, 0, 0, 0, 0, 0, 0x00 };
	const char *garbage = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	struct proxy_stats st;
	char buf[64];
	int fd;

	fd = raw_connect(proxy_port(px));
	ck_assert_int_eq(write(fd, garbage, strlen(garbage)), (ssize_t)strlen(garbage));
	ck_assert_int_eq(read(fd, buf, sizeof(buf)), 0); /* closed, nothing forwarded back */
	close(fd);
	fd = raw_connect(proxy_port(px));
	ck_assert_int_eq(write(fd, bad_end, sizeof(bad_end)), (ssize_t)sizeof(bad_end));
	/* the broker's connection.start may come first; then the close */
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
	declare_fresh(good, "still-good");
	amqp_queue_delete(good, 1, amqp_cstring_bytes("still-good"), 0, 0);
	ck_assert(mq_ok(amqp_get_rpc_reply(good)));
	mq_close(good);
	proxy_stats_get(px, &st);
	ck_assert_uint_eq(st.malformed, 2);
	proxy_stats_release(&st);
	proxy_free(px);
}
END_TEST

/*
 * Hostile clients: fuzzed bytes (random, and valid streams with bytes
 * flipped) on many connections, while a real client keeps publishing and
 * consuming through the same proxy.
 */
START_TEST(test_fuzzed_clients)
{
	struct proxy *px = start_proxy(NULL, 0, 0);
	amqp_connection_state_t good = test_open(proxy_port(px));
	struct rng rng;
	size_t len;
	uint8_t *rec = (uint8_t *)files_read("tests/corpus/frame/session-client.bin", &len);
	struct proxy_stats st;

	ck_assert_ptr_nonnull(rec);
	rng_seed(&rng, 2024);
	declare_fresh(good, "fuzz-good");
	for (int i = 0; i < 200; i++) {
		uint8_t buf[4096];
		size_t n;
		int fd = raw_connect(proxy_port(px));

		if (i % 2 == 0) { /* random bytes, sometimes after a valid protocol header */
			n = 1 + rng_next(&rng) % sizeof(buf);
			for (size_t k = 0; k < n; k++)
				buf[k] = (uint8_t)rng_next(&rng);
			if (i % 4 == 0)
				memcpy(buf, "AMQP\0\0\x09\x01", n < 8 ? n : 8);
		} else { /* the recorded session with a few bytes flipped */
			n = len < sizeof(buf) ? len : sizeof(buf);
			memcpy(buf, rec, n);
			for (int k = 0; k < 3; k++)
				buf[rng_next(&rng) % n] ^= (uint8_t)(1 + rng_next(&rng) % 255);
		}
		if (write(fd, buf, n) < 0) {
			/* the proxy may have closed already: fine */
		}
		close(fd);
		if (i % 20 == 0) { /* the real client still works */
			ck_assert_int_eq(publish(good, "fuzz-good", "g", "x", 1), AMQP_STATUS_OK);
			ck_assert(direct_get("fuzz-good", 2000, (char[64]){ 0 }, 64, &(int){ 0 }) == 1);
		}
	}
	mq_close(good);
	/*
	 * A stream the parser accepted so far reached the broker; RabbitMQ
	 * closes such a half-done handshake within its 10 s handshake timeout,
	 * and the proxy follows. Nothing may stay open after that.
	 */
	for (int i = 0; i < 300; i++) {
		proxy_stats_get(px, &st);
		if (st.conns_active == 0)
			break;
		clock_sleep_ns(50 * NS_PER_MS);
	}
	ck_assert_uint_gt(st.malformed, 50); /* most fuzzed streams were caught by the parser */
	ck_assert_uint_eq(st.conns_active, 0);
	free(rec);
	proxy_stats_release(&st);
	proxy_free(px);
}
END_TEST

/* A bounded flood: 400 connections opened and dropped in bursts of 100, none left open, the proxy still serves. */
START_TEST(test_connection_flood)
{
	struct proxy *px = start_proxy(NULL, 0, 0);
	struct proxy_stats st;
	uint64_t deadline = clock_now_ns() + 20 * NS_PER_S;
	amqp_connection_state_t c;

	for (int burst = 0; burst < 4 && clock_now_ns() < deadline; burst++) {
		int fds[100];

		for (int i = 0; i < 100; i++) {
			fds[i] = raw_connect(proxy_port(px));
			if (i % 3 == 0 && write(fds[i], "AMQP\0\0\x09\x01", 8) < 0) {
				/* ignored */
			}
		}
		for (int i = 0; i < 100; i++)
			close(fds[i]);
	}
	c = test_open(proxy_port(px));
	declare_fresh(c, "after-flood");
	mq_close(c);
	/* everything the flood opened is closed again (the broker notices the FINs) */
	for (int i = 0; i < 100; i++) {
		proxy_stats_get(px, &st);
		if (st.conns_active == 0)
			break;
		clock_sleep_ns(50 * NS_PER_MS);
	}
	ck_assert_uint_eq(st.conns_accepted, 401);
	ck_assert_uint_eq(st.conns_active, 0);
	proxy_stats_release(&st);
	proxy_free(px);
}
END_TEST

START_TEST(test_upstream_down)
{
	uint16_t dead;
	struct proxy *px;
	struct proxy_stats st;
	char err[256];

	ck_assert_int_eq(net_free_port(&dead), 0);
	px = start_proxy(NULL, 0, dead);
	ck_assert_ptr_null(mq_open_local(proxy_port(px), 2000, err, sizeof(err)));
	proxy_stats_get(px, &st);
	ck_assert_uint_eq(st.upstream_failures, 1);
	ck_assert_uint_eq(st.conns_active, 0);
	proxy_stats_release(&st);
	proxy_free(px);
}
END_TEST

/* While `dupsim proxy` runs: a commit through it (its CommitOk dropped), then Ctrl-C. */
static void use_then_stop(pid_t pid, void *arg)
{
	uint16_t port = *(uint16_t *)arg;
	amqp_connection_state_t c = NULL;
	char err[256];

	for (int i = 0; i < 100 && !c; i++) {
		c = mq_open_local(port, 1000, err, sizeof(err));
		if (!c)
			clock_sleep_ns(50 * NS_PER_MS);
	}
	ck_assert_msg(c != NULL, "%s", err);
	amqp_tx_select(c, 1);
	ck_assert(mq_ok(amqp_get_rpc_reply(c)));
	amqp_tx_commit(c, 1);
	ck_assert_int_eq(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_LIBRARY_EXCEPTION);
	mq_abandon(c);
	kill(pid, SIGINT);
}

static int run_cli(const char *const *args, char *out, size_t outlen, uint16_t port_to_use, int stop_after_use)
{
	return test_dupsim(args, out, outlen, stop_after_use ? use_then_stop : NULL, &port_to_use);
}

START_TEST(test_cli)
{
	char out[16384], listen[64], upstream[64];
	uint16_t port;

	snprintf(upstream, sizeof(upstream), "127.0.0.1:%u", test_broker_port());
	{
		const char *argv[] = { "proxy", "--listen", "127.0.0.1:0", "--upstream", upstream, "--rule",
				 "drop tx.comit-ok from=broker", NULL };

		ck_assert_int_eq(run_cli(argv, out, sizeof(out), 0, 0), 2);
		ck_assert_msg(strstr(out, "did you mean 'tx.commit-ok'") != NULL, "%s", out);
		ck_assert_ptr_null(strchr(strchr(out, '\n') + 1, '\n')); /* one line */
	}
	{
		const char *argv[] = { "proxy", "--listen", "localhost", "--upstream", upstream, NULL };

		ck_assert_int_eq(run_cli(argv, out, sizeof(out), 0, 0), 2);
		ck_assert_msg(strstr(out, "--listen 'localhost': expected HOST:PORT") != NULL, "%s", out);
	}
	{
		const char *argv[] = { "proxy", "--listen", "127.0.0.1:0", NULL };

		ck_assert_int_eq(run_cli(argv, out, sizeof(out), 0, 0), 2);
		ck_assert_msg(strstr(out, "--upstream are required") != NULL, "%s", out);
	}
	{
		const char *argv[] = { "proxy", "--help", NULL };

		ck_assert_int_eq(run_cli(argv, out, sizeof(out), 0, 0), 0);
		ck_assert_ptr_nonnull(strstr(out, "drop|cut METHOD"));
	}
	ck_assert_int_eq(net_free_port(&port), 0);
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
	{
		/* twenty rules: the first fires, the 20th matches too and is counted */
		const char *argv[64] = { "proxy", "--listen", listen, "--upstream", upstream, "--rule",
					 "drop tx.commit-ok from=broker", "--seed", "9" };
		int n = 9;

		for (int i = 0; i < 18; i++) {
			argv[n++] = "--rule";
			argv[n++] = "drop basic.qos from=client p=0";
		}
		argv[n++] = "--rule";
		argv[n++] = "cut tx.commit-ok from=broker";
		argv[n] = NULL;
		ck_assert_int_eq(run_cli(argv, out, sizeof(out), port, 1), 0);
		ck_assert_msg(strstr(out, "rule 20 'cut tx.commit-ok from=broker': matched 1, fired 0") != NULL, "%s",
			      out);
		ck_assert_msg(strstr(out, "rule 1 'drop tx.commit-ok from=broker': matched 1, fired 1") != NULL, "%s",
			      out);
		ck_assert_msg(strstr(out, "tx.commit-ok               broker             1          1") != NULL,
			      "%s", out);
		ck_assert_msg(strstr(out, "1 frames dropped") != NULL, "%s", out);
	}
}
END_TEST

Suite *proxy_suite(void)
{
	Suite *s = suite_create("proxy");
	TCase *tc = tcase_create("broker");

	tcase_add_test(tc, test_relay_identical);
	tcase_add_test(tc, test_drop_commit_ok);
	tcase_add_test(tc, test_many_rule_counters);
	tcase_add_test(tc, test_drop_ack);
	tcase_add_test(tc, test_tap_deliveries_and_acks);
	tcase_add_test(tc, test_cut_ack);
	tcase_add_test(tc, test_hang_commit_ok);
	tcase_add_test(tc, test_hang_drops_content_raw);
	tcase_add_test(tc, test_cut_forwards_content_raw);
	tcase_add_test(tc, test_heartbeat_rule_raw);
	tcase_add_test(tc, test_cut_drains_before_close);
	tcase_add_test(tc, test_hangup_with_full_buffer_is_quiet);
	tcase_add_test(tc, test_backpressure_exact);
	tcase_add_test(tc, test_decisions_per_connection);
	tcase_add_test(tc, test_ahead_raw);
	tcase_add_test(tc, test_ahead_prefetch);
	tcase_add_test(tc, test_hang_drops_deliver_content);
	tcase_add_test(tc, test_hang_drops_publish_content);
	tcase_add_test(tc, test_cut_deliver);
	tcase_add_test(tc, test_malformed_peer);
	tcase_add_test(tc, test_upstream_down);
	tcase_add_test(tc, test_fuzzed_clients);
	tcase_add_test(tc, test_connection_flood);
	tcase_add_test(tc, test_cli);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}
