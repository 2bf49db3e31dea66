/* cluster.c — a private RabbitMQ cluster on test hosts: started one member at a time, each joining those before it. */
#include "nodes/cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/rng.h"

#define CTL_TIMEOUT_MS 20000

struct cluster {
	struct hosts *h;
	size_t n;
	struct node *node[CLUSTER_MAX];
	int host[CLUSTER_MAX];
	char name[CLUSTER_MAX][128]; /* Erlang node names */
	bool isolated[CLUSTER_MAX];  /* cut off from the others: its view of the queue is stale */
};

/* A cookie for this cluster only: random letters. */
static void make_cookie(char *buf, size_t len)
{
	struct rng r;

	rng_seed(&r, clock_now_ns() ^ ((uint64_t)getpid() << 32));
	for (size_t i = 0; i + 1 < len; i++)
		buf[i] = (char)('A' + rng_next(&r) % 26);
	buf[len - 1] = '\0';
}

/* Every member names all the others in cluster_status's running nodes. */
static int cluster_check(struct cluster *c, char *err, size_t errlen)
{
	static const char *const args[] = { "cluster_status", "--formatter", "json", NULL };
	char out[8192], why[512];

	for (int attempt = 0; attempt < 10; attempt++) {
		bool whole = rabbitmq_ctl_run(c->node[c->n - 1], args, CTL_TIMEOUT_MS, out, sizeof(out), why,
					      sizeof(why)) == 0;
		const char *running = whole ? strstr(out, "\"running_nodes\"") : NULL;

		for (size_t i = 0; running && i < c->n; i++)
			if (!strstr(running, c->name[i]))
				running = NULL;
		if (running)
			return 0;
		clock_sleep_ns(500 * NS_PER_MS);
	}
	return log_seterr(err, errlen, "the %zu RabbitMQ nodes did not form one cluster; cluster_status of %s: %.300s",
			  c->n, c->name[c->n - 1], out);
}

int cluster_new(struct cluster **out, struct hosts *h, size_t count, const struct node_opts *opts,
		const struct rabbitmq_conf *conf, char *err, size_t errlen)
{
	struct cluster *c = calloc(1, sizeof(*c));
	char cookie[33], why[1024];

	*out = NULL;
	if (!c)
		return log_seterr(err, errlen, "out of memory");
	if (count < 2 || count > CLUSTER_MAX || count > RABBITMQ_PEERS_MAX) {
		free(c);
		return log_seterr(err, errlen, "a cluster of %zu nodes: 2 to %d", count, CLUSTER_MAX);
	}
	c->h = h;
	make_cookie(cookie, sizeof(cookie));
	for (size_t i = 0; i < count; i++) {
		struct rabbitmq_conf rc = conf ? *conf : (struct rabbitmq_conf){ 0 };
		struct node_opts o = opts ? *opts : (struct node_opts){ 0 };
		char hname[8];

		snprintf(hname, sizeof(hname), "n%zu", i + 1);
		c->host[i] = hosts_add(h, hname, why, sizeof(why));
		if (c->host[i] < 0) {
			log_seterr(err, errlen, "test host for RabbitMQ node %zu: %s", i + 1, why);
			goto fail;
		}
		rc.cookie = cookie;
		if (i > 0)
			rc.epmd_port = rabbitmq_port(c->node[0], RABBITMQ_PORT_EPMD);
		for (size_t j = 0; j < i; j++)
			rc.peers[j] = c->name[j];
		rc.peers[i] = NULL;
		o.netns = hosts_netns(h, c->host[i]);
		o.addr = hosts_addr(h, c->host[i]);
		if (rabbitmq_new(&c->node[i], &o, &rc, why, sizeof(why)) < 0) {
			log_seterr(err, errlen, "RabbitMQ node %zu of %zu: %s", i + 1, count, why);
			goto fail;
		}
		c->n = i + 1;
		snprintf(c->name[i], sizeof(c->name[i]), "%s", rabbitmq_node_name(c->node[i]));
	}
	if (cluster_check(c, err, errlen) < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	cluster_free(c);
	return -1;
}

void cluster_free(struct cluster *c)
{
	if (!c)
		return;
	for (size_t i = c->n; i-- > 0;)
		node_free(c->node[i]);
	free(c);
}

size_t cluster_size(const struct cluster *c)
{
	return c->n;
}

struct node *cluster_node(const struct cluster *c, size_t i)
{
	return c->node[i];
}

int cluster_host(const struct cluster *c, size_t i)
{
	return c->host[i];
}

/* The member whose node name the text holds, or -1. */
static int cluster_named(const struct cluster *c, const char *text)
{
	for (size_t j = 0; j < c->n; j++)
		if (strstr(text, c->name[j]))
			return (int)j;
	return -1;
}

/*
 * The leader as the queue's record has it: one rpc call (rabbitmqctl eval).
 * list_queues would stream its rows back from every member to the CLI's
 * own Erlang node, which the members can't reach by name on a test host.
 */
int cluster_leader(struct cluster *c, const char *queue, int timeout_ms, char *err, size_t errlen)
{
	uint64_t deadline = clock_now_ns() + (uint64_t)timeout_ms * NS_PER_MS;
	char expr[512], out[2048], why[512] = "no member is running";
	const char *args[] = { "eval", expr, NULL };

	snprintf(expr, sizeof(expr),
		 "case rabbit_amqqueue:lookup(rabbit_misc:r(<<\"/\">>, queue, <<\"%s\">>)) of "
		 "{ok, Q} -> amqqueue:get_pid(Q); E -> E end.",
		 queue);
	do {
		for (size_t i = 0; i < c->n; i++) {
			int j;

			if (!node_running(c->node[i]) || c->isolated[i] ||
			    rabbitmq_ctl_run(c->node[i], args, timeout_ms, out, sizeof(out), why, sizeof(why)) < 0)
				continue;
			j = cluster_named(c, out);
			if (j >= 0 && node_running(c->node[j]))
				return j;
			if (j >= 0) /* killed: the record names it until the others have elected a leader */
				snprintf(why, sizeof(why), "%s still names %s, which is down, as the leader of %s",
					 c->name[i], c->name[j], queue);
			else
				snprintf(why, sizeof(why), "%s names no member as the leader of %s: %.200s", c->name[i],
					 queue, out);
		}
		clock_sleep_ns(300 * NS_PER_MS);
	} while (clock_now_ns() < deadline);
	log_seterr(err, errlen, "the leader of %s: %s", queue, why);
	return -1;
}

int cluster_kill(struct cluster *c, size_t i)
{
	return node_kill(c->node[i]);
}

int cluster_restart(struct cluster *c, size_t i, char *err, size_t errlen)
{
	return node_restart(c->node[i], err, errlen);
}

int cluster_isolate(struct cluster *c, size_t i, bool cut, char *err, size_t errlen)
{
	for (size_t j = 0; j < c->n; j++)
		if (j != i && hosts_cut(c->h, c->host[i], c->host[j], cut, err, errlen) < 0)
			return -1;
	c->isolated[i] = cut;
	return 0;
}

int cluster_bridge(struct cluster *c, size_t a, size_t b, bool cut, char *err, size_t errlen)
{
	return hosts_cut(c->h, c->host[a], c->host[b], cut, err, errlen);
}

int cluster_heal(struct cluster *c, char *err, size_t errlen)
{
	for (size_t i = 0; i < c->n; i++)
		for (size_t j = i + 1; j < c->n; j++)
			if (hosts_cut(c->h, c->host[i], c->host[j], false, err, errlen) < 0)
				return -1;
	memset(c->isolated, 0, sizeof(c->isolated));
	return 0;
}
