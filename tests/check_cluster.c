/* check_cluster.c — a private three-node RabbitMQ cluster on test hosts: formed, a quorum queue on all three, leader kill and failover, partitions healed. */
#include <amqp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests.h"
#include "core/clock.h"
#include "hosts/hosts.h"
#include "nodes/cluster.h"
#include "workload/mq.h"

static amqp_connection_state_t open_member(struct cluster *c, size_t i)
{
	struct mq_target t;
	char err[512];
	amqp_connection_state_t conn;

	ck_assert_int_eq(mq_parse_url(node_url(cluster_node(c, i)), &t, err, sizeof(err)), 0);
	conn = mq_open(&t, 5000, err, sizeof(err));
	ck_assert_msg(conn != NULL, "member %zu: %s", i, err);
	return conn;
}

/* Declares quorum queue q through conn and returns its message count. */
static uint32_t declare_quorum(amqp_connection_state_t conn, const char *q)
{
	amqp_table_entry_t e = { .key = amqp_cstring_bytes("x-queue-type"),
				 .value = { .kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes("quorum") } };
	amqp_table_t args = { .num_entries = 1, .entries = &e };
	amqp_queue_declare_ok_t *ok = amqp_queue_declare(conn, 1, amqp_cstring_bytes(q), 0, 1, 0, 0, args);

	ck_assert_msg(ok != NULL, "queue.declare %s failed", q);
	return ok->message_count;
}

START_TEST(test_cluster_failover)
{
	struct hosts *h;
	struct cluster *c;
	char err[1024];
	amqp_connection_state_t conn;
	int leader, again;
	uint32_t count;

	if (hosts_check("the cluster test", err, sizeof(err)) < 0) {
		fprintf(stderr, "check_cluster: skipped (%s)\n", err);
		return;
	}
	ck_assert_msg(hosts_new(&h, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(cluster_new(&c, h, 3, NULL, NULL, err, sizeof(err)) == 0, "%s", err);
	conn = open_member(c, 0);
	declare_quorum(conn, "t-cluster");
	amqp_confirm_select(conn, 1);
	for (int i = 0; i < 50; i++)
		ck_assert_int_eq(amqp_basic_publish(conn, 1, amqp_empty_bytes, amqp_cstring_bytes("t-cluster"), 0, 0,
						    NULL, amqp_cstring_bytes("m")), 0);
	{
		/* wait for the confirms: a confirmed message is on a majority */
		amqp_frame_t f;
		int acked = 0;

		while (acked < 50 && amqp_simple_wait_frame(conn, &f) == AMQP_STATUS_OK)
			if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
				amqp_basic_ack_t *a = f.payload.method.decoded;

				acked = a->multiple ? (int)a->delivery_tag : acked + 1;
			}
		ck_assert_int_eq(acked, 50);
	}
	mq_close(conn);
	leader = cluster_leader(c, "t-cluster", 20000, err, sizeof(err));
	ck_assert_msg(leader == 0, "leader %d: %s", leader, err); /* declared through member 0 */
	ck_assert_int_eq(cluster_kill(c, (size_t)leader), 0);
	again = cluster_leader(c, "t-cluster", 30000, err, sizeof(err));
	ck_assert_msg(again >= 0 && again != leader, "after the kill: %d (%s)", again, err);
	conn = open_member(c, (size_t)again);
	count = declare_quorum(conn, "t-cluster");
	ck_assert_uint_eq(count, 50); /* nothing confirmed was lost */
	mq_close(conn);
	ck_assert_msg(cluster_restart(c, (size_t)leader, err, sizeof(err)) == 0, "%s", err);
	/* the killed member is back: a client of it sees the queue */
	conn = open_member(c, (size_t)leader);
	ck_assert_uint_eq(declare_quorum(conn, "t-cluster"), 50);
	mq_close(conn);
	/* isolate the leader: the other two elect one of them */
	ck_assert_int_eq(cluster_isolate(c, (size_t)again, true, err, sizeof(err)), 0);
	{
		int third = -1;
		uint64_t deadline = clock_now_ns() + 40 * NS_PER_S;

		while (clock_now_ns() < deadline) {
			third = cluster_leader(c, "t-cluster", 5000, err, sizeof(err));
			if (third >= 0 && third != again)
				break;
			clock_sleep_ns(500 * NS_PER_MS);
		}
		ck_assert_msg(third >= 0 && third != again, "after isolating %d: leader %d (%s)", again, third, err);
	}
	ck_assert_int_eq(cluster_heal(c, err, sizeof(err)), 0);
	cluster_free(c);
	hosts_free(h);
}
END_TEST

Suite *cluster_suite(void)
{
	Suite *s = suite_create("cluster");
	TCase *tc = tcase_create("cluster");

	tcase_add_test(tc, test_cluster_failover);
	tcase_set_timeout(tc, 240);
	tcase_set_tags(tc, "shard1");
	suite_add_tcase(s, tc);
	return s;
}
