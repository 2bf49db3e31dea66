/* check_nodes.c — private nodes (RabbitMQ, redis, PostgreSQL): start, login, kill -9, restart, cleanup, `dupsim broker`. */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <dirent.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd/broker.h"
#include "nodes/node.h"
#include "nodes/proc.h"
#include "nodes/rabbitmq.h"
#include "nodes/postgres.h"
#include "nodes/redis.h"
#include "tests.h"
#include "core/clock.h"
#include "core/files.h"
#include "core/net.h"

#define QUEUE "dupsim-check-persist"

static const struct node_opts quiet_opts = { .quiet = true };

/* ---------- AMQP helpers (plain librabbitmq, no dupsim code under test) ---------- */

static amqp_connection_state_t amqp_open(uint16_t port)
{
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s = amqp_tcp_socket_new(c);
	struct timeval tv = { 5, 0 };
	amqp_rpc_reply_t r;

	if (!s || amqp_socket_open_noblock(s, "127.0.0.1", port, &tv) != AMQP_STATUS_OK)
		goto fail;
	amqp_set_rpc_timeout(c, &tv);
	r = amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		goto fail;
	amqp_channel_open(c, 1);
	if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
		goto fail;
	return c;
fail:
	amqp_destroy_connection(c);
	return NULL;
}

static void amqp_done(amqp_connection_state_t c)
{
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
}

static bool can_login(uint16_t port)
{
	amqp_connection_state_t c = amqp_open(port);

	if (!c)
		return false;
	amqp_done(c);
	return true;
}

/* A persistent message to a durable queue inside a transaction: on disk once CommitOk arrives. */
static bool publish_tx(uint16_t port, const char *body)
{
	amqp_connection_state_t c = amqp_open(port);
	amqp_basic_properties_t p = { ._flags = AMQP_BASIC_DELIVERY_MODE_FLAG, .delivery_mode = 2 };
	bool ok = false;

	if (!c)
		return false;
	amqp_queue_declare(c, 1, amqp_cstring_bytes(QUEUE), 0, 1, 0, 0, amqp_empty_table);
	if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
		goto out;
	amqp_tx_select(c, 1);
	if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
		goto out;
	if (amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(QUEUE), 0, 0, &p,
			       amqp_cstring_bytes(body)) != AMQP_STATUS_OK)
		goto out;
	amqp_tx_commit(c, 1);
	ok = amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL;
out:
	amqp_done(c);
	return ok;
}

/* basic.get with auto-ack once; copies the body into buf. False when the queue is empty or on error. */
static bool get_one_now(uint16_t port, char *buf, size_t len)
{
	amqp_connection_state_t c = amqp_open(port);
	amqp_rpc_reply_t r;
	amqp_message_t m;
	bool ok = false;

	if (!c)
		return false;
	r = amqp_basic_get(c, 1, amqp_cstring_bytes(QUEUE), 1);
	if (r.reply_type == AMQP_RESPONSE_NORMAL && r.reply.id == AMQP_BASIC_GET_OK_METHOD &&
	    amqp_read_message(c, 1, &m, 0).reply_type == AMQP_RESPONSE_NORMAL) {
		snprintf(buf, len, "%.*s", (int)m.body.len, (const char *)m.body.bytes);
		amqp_destroy_message(&m);
		ok = true;
	}
	amqp_done(c);
	return ok;
}

/*
 * The same, retried for up to 30 s: right after a restart on a loaded
 * machine the first login or basic.get can come before the node is fully
 * back (a durable queue recovering after kill -9 took over 10 s once, with
 * two test shards and other brokers on 2 cores). A message that is really
 * gone still fails.
 */
static bool get_one(uint16_t port, char *buf, size_t len)
{
	for (int i = 0; i < 150; i++) {
		if (get_one_now(port, buf, len))
			return true;
		clock_sleep_ns(200 * NS_PER_MS);
	}
	return false;
}

/* Listeners on port bound to anything but loopback, from /proc/net/tcp{,6}. */
static int non_loopback_listeners(uint16_t port)
{
	static const char *const files[] = { "/proc/net/tcp", "/proc/net/tcp6" };
	int bad = 0;

	for (int i = 0; i < 2; i++) {
		FILE *f = fopen(files[i], "r");
		char line[512], addr[64];
		unsigned p, st;

		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line, " %*d: %63[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x", addr, &p, &st) != 3)
				continue;
			if (p != port || st != 0x0A)
				continue;
			if (strcmp(addr, "0100007F") != 0 && strcmp(addr, "00000000000000000000000001000000") != 0)
				bad++;
		}
		fclose(f);
	}
	return bad;
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* Waits up to 5 s for every process of a node to be gone. */
static int procs_after(const char *name)
{
	int n = node_procs_alive(name);

	for (int i = 0; i < 100 && n != 0; i++) {
		clock_sleep_ns(50 * NS_PER_MS);
		n = node_procs_alive(name);
	}
	return n;
}

/* ---------- tests ---------- */

START_TEST(test_shared_node_login)
{
	ck_assert_msg(strstr(test_broker_url(), "127.0.0.1") || getenv("DUPSIM_TEST_URL"), "url %s",
		      test_broker_url());
	ck_assert_msg(can_login(test_broker_port()), "no guest login at %s", test_broker_url());
}
END_TEST

START_TEST(test_node_lifecycle)
{
	struct node *b;
	char err[1024], body[64], name[64], dir[PATH_MAX];
	uint16_t port;
	int pid;

	ck_assert_msg(node_new(&b, &rabbitmq_ops, &quiet_opts, err, sizeof(err)) == 0, "%s", err);
	port = node_port(b);
	fprintf(stderr, "check_nodes: own node started in %.1fs\n", (double)node_last_start_ns(b) / NS_PER_S);
	snprintf(name, sizeof(name), "%s", node_name(b));
	snprintf(dir, sizeof(dir), "%s", node_dir(b));
	ck_assert_ptr_nonnull(strstr(node_url(b), "@127.0.0.1:"));
	ck_assert(node_running(b));
	ck_assert(can_login(port));
	ck_assert_int_eq(non_loopback_listeners(port), 0);
	ck_assert(exists(dir));
	ck_assert_int_ge(node_procs_alive(name), 2); /* the VM and its epmd, at least */

	/* kill -9 + restart: a committed persistent message survives. */
	ck_assert(publish_tx(port, "before-kill"));
	pid = node_pid(b);
	ck_assert_int_eq(node_kill(b), 0);
	ck_assert(!node_running(b));
	ck_assert_int_eq(node_pid(b), 0);
	ck_assert(!net_port_open(port));
	ck_assert_int_eq(procs_after(name), 1); /* only the private epmd, kept for the restart */
	ck_assert_int_eq(kill(-pid, 0), -1);
	ck_assert_int_eq(errno, ESRCH);
	ck_assert_msg(node_restart(b, err, sizeof(err)) == 0, "%s", err);
	fprintf(stderr, "check_nodes: restart after kill -9 took %.1fs\n",
		(double)node_last_start_ns(b) / NS_PER_S);
	ck_assert_int_eq(node_port(b), port);
	ck_assert(get_one(port, body, sizeof(body)));
	ck_assert_str_eq(body, "before-kill");

	/* Clean stop + restart on the same data. */
	ck_assert(publish_tx(port, "before-stop"));
	ck_assert_int_eq(node_stop(b), 0);
	ck_assert(!node_running(b));
	ck_assert_int_eq(procs_after(name), 1);
	ck_assert_msg(node_restart(b, err, sizeof(err)) == 0, "%s", err);
	ck_assert(get_one(port, body, sizeof(body)));
	ck_assert_str_eq(body, "before-stop");
	ck_assert(!get_one_now(port, body, sizeof(body))); /* it was the only one */

	/* Nothing of it is left after node_free. */
	pid = node_pid(b);
	node_free(b);
	ck_assert_int_eq(procs_after(name), 0);
	ck_assert_int_eq(kill(-pid, 0), -1);
	ck_assert(!exists(dir));
}
END_TEST

START_TEST(test_start_failure_names_log)
{
	char tmp[] = "/tmp/dupsim-check-XXXXXX", script[PATH_MAX], err[1024];
	const char *old_tmp = getenv("TMPDIR");
	char *saved = old_tmp ? strdup(old_tmp) : NULL;
	struct node *b = (struct node *)1;
	uint64_t t0;
	FILE *f;
	int rc;

	ck_assert_ptr_nonnull(mkdtemp(tmp));
	snprintf(script, sizeof(script), "%s/fake-rabbitmq-server", tmp);
	f = fopen(script, "w");
	ck_assert_ptr_nonnull(f);
	fputs("#!/bin/sh\necho starting\necho 'BOOT FAILED: boom-marker' >&2\nexit 3\n", f);
	fclose(f);
	chmod(script, 0755);
	setenv("DUPSIM_RABBITMQ_SERVER", script, 1);
	setenv("TMPDIR", tmp, 1);
	t0 = clock_now_ns();
	rc = node_new(&b, &rabbitmq_ops, &quiet_opts, err, sizeof(err));
	unsetenv("DUPSIM_RABBITMQ_SERVER");
	if (saved)
		setenv("TMPDIR", saved, 1);
	else
		unsetenv("TMPDIR");
	free(saved);
	ck_assert_int_eq(rc, NODE_EEXIT);
	ck_assert_str_eq(node_strerror(rc), "the server exited while starting");
	ck_assert_ptr_null(b);
	ck_assert_msg(clock_now_ns() - t0 < 5 * NS_PER_S, "a dead node must fail at once");
	ck_assert_msg(strstr(err, "boom-marker") && strstr(err, "console.log") && strstr(err, "status 3"), "%s",
		      err);
	ck_assert_ptr_null(strchr(err, '\n'));
	/* Its folder is gone: only the script is left in TMPDIR. */
	ck_assert_int_eq(unlink(script), 0);
	ck_assert_int_eq(rmdir(tmp), 0);
}
END_TEST

/* Like check_main.c's: clean up, then die of the signal. */
static void on_sigint(int sig)
{
	proc_cleanup_signal();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Runs a dupsim node in a child process, then signals the child: nothing of the node may survive. */
/* The kind run_and_signal starts (the postgres cleanup tests set it). */
static const struct node_ops *signal_kind = &rabbitmq_ops;

/*
 * Live processes whose working folder is inside dir: PostgreSQL's backends
 * overwrite their environ with their process titles, so the marker finds
 * only the postmaster; they all work in the data folder.
 */
static int procs_in(const char *dir)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d))) {
		char link[300], cwd[PATH_MAX];
		ssize_t len;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(link, sizeof(link), "/proc/%s/cwd", e->d_name);
		len = readlink(link, cwd, sizeof(cwd) - 1);
		if (len <= 0)
			continue;
		cwd[len] = '\0';
		n += strncmp(cwd, dir, strlen(dir)) == 0;
	}
	closedir(d);
	return n;
}

static void run_and_signal(int sig)
{
	int fds[2], status;
	char line[PATH_MAX + 128] = "", name[64], dir[PATH_MAX];
	pid_t child;
	ssize_t n;

	ck_assert_int_eq(pipe(fds), 0);
	child = fork();
	ck_assert_int_ge(child, 0);
	if (child == 0) {
		struct node *b;
		char err[1024];

		close(fds[0]);
		signal(SIGINT, SIG_DFL);
		if (node_new(&b, signal_kind, &quiet_opts, err, sizeof(err)) < 0) {
			dprintf(fds[1], "ERR %s\n", err);
			_exit(1);
		}
		signal(SIGINT, on_sigint);
		dprintf(fds[1], "%s %s\n", node_name(b), node_dir(b));
		for (;;)
			pause();
	}
	close(fds[1]);
	n = read(fds[0], line, sizeof(line) - 1);
	close(fds[0]);
	ck_assert_int_gt(n, 0);
	line[n] = '\0';
	ck_assert_msg(strncmp(line, "ERR", 3) != 0, "%s", line);
	ck_assert_int_eq(sscanf(line, "%63s %4095s", name, dir), 2);
	ck_assert_int_ge(node_procs_alive(name), signal_kind == &postgres_ops ? 1 : 2);
	if (signal_kind == &postgres_ops)
		ck_assert_int_ge(procs_in(dir), 3); /* the postmaster and its helpers */
	kill(child, sig);
	ck_assert_int_eq(waitpid(child, &status, 0), child);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == sig);
	ck_assert_int_eq(procs_after(name), 0);
	if (signal_kind == &postgres_ops) {
		for (int i = 0; i < 50 && procs_in(dir) > 0; i++)
			clock_sleep_ns(100 * NS_PER_MS); /* a SIGKILLed group is reaped by init */
		ck_assert_int_eq(procs_in(dir), 0);
	}
	if (sig == SIGINT) {
		ck_assert_msg(!exists(dir), "%s left behind", dir);
	} else {
		/* A crash can't remove its folder: the next start in that TMPDIR does. */
		struct node *r;
		char err[1024];

		ck_assert(exists(dir));
		ck_assert_msg(node_new(&r, &redis_ops, &quiet_opts, err, sizeof(err)) == 0, "%s", err);
		ck_assert_msg(!exists(dir), "%s not swept", dir);
		node_free(r);
	}
}

/* Runs run_and_signal with TMPDIR set to a fresh folder, which must be empty afterwards. */
static void in_private_tmpdir(int sig)
{
	char tmp[] = "/tmp/dupsim-check-XXXXXX";
	const char *old = getenv("TMPDIR");
	char *saved = old ? strdup(old) : NULL;

	ck_assert_ptr_nonnull(mkdtemp(tmp));
	ck_assert_int_eq(chmod(tmp, 0711), 0); /* as root, PostgreSQL runs as nobody, who must pass */
	setenv("TMPDIR", tmp, 1);
	run_and_signal(sig);
	if (saved)
		setenv("TMPDIR", saved, 1);
	else
		unsetenv("TMPDIR");
	free(saved);
	ck_assert_int_eq(rmdir(tmp), 0);
}

START_TEST(test_sigint_cleans_up)
{
	in_private_tmpdir(SIGINT);
}
END_TEST

START_TEST(test_crashed_parent_kills_node)
{
	in_private_tmpdir(SIGKILL);
}
END_TEST

static bool redis_cmd(uint16_t port, const char *cmd, const char *arg1, const char *arg2, char *out, size_t len)
{
	struct timeval tv = { 2, 0 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *r = NULL;
	bool ok = false;

	if (!c || c->err)
		goto out;
	if (arg2)
		r = redisCommand(c, "%s %s %s", cmd, arg1, arg2);
	else if (arg1)
		r = redisCommand(c, "%s %s", cmd, arg1);
	else
		r = redisCommand(c, "%s", cmd);
	if (r && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING)) {
		snprintf(out, len, "%s", r->str);
		ok = true;
	}
out:
	if (r)
		freeReplyObject(r);
	redisFree(c);
	return ok;
}

START_TEST(test_redis_lifecycle)
{
	struct node *r;
	char err[1024], out[64], name[64], dir[PATH_MAX];
	uint16_t port;

	ck_assert_msg(node_new(&r, &redis_ops, &quiet_opts, err, sizeof(err)) == 0, "%s", err);
	port = node_port(r);
	snprintf(name, sizeof(name), "%s", node_name(r));
	snprintf(dir, sizeof(dir), "%s", node_dir(r));
	ck_assert_ptr_nonnull(strstr(node_url(r), "redis://127.0.0.1:"));
	ck_assert(node_running(r));
	ck_assert_int_eq(non_loopback_listeners(port), 0);
	ck_assert(redis_cmd(port, "PING", NULL, NULL, out, sizeof(out)));
	ck_assert_str_eq(out, "PONG");
	ck_assert(redis_cmd(port, "SET", "dupsim:k", "v1", out, sizeof(out)));

	ck_assert_int_eq(node_kill(r), 0);
	ck_assert(!node_running(r));
	ck_assert(!net_port_open(port));
	ck_assert_int_eq(procs_after(name), 0);
	ck_assert_msg(node_restart(r, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(node_port(r), port);
	ck_assert(redis_cmd(port, "GET", "dupsim:k", NULL, out, sizeof(out)));
	ck_assert_str_eq(out, "v1"); /* acknowledged writes survive kill -9 (appendonly) */

	ck_assert_int_eq(node_stop(r), 0);
	ck_assert(!node_running(r));
	ck_assert_msg(node_restart(r, err, sizeof(err)) == 0, "%s", err);
	ck_assert(redis_cmd(port, "GET", "dupsim:k", NULL, out, sizeof(out)));
	ck_assert_str_eq(out, "v1");
	node_free(r);
	ck_assert_int_eq(procs_after(name), 0);
	ck_assert(!exists(dir));
}
END_TEST

/* ---------- the PostgreSQL kind ---------- */

/* One statement on database dupsim; the first value of its result into out (may be NULL). */
static bool pg_sql(uint16_t port, const char *sql, char *out, size_t len)
{
	char info[128];
	PGconn *c;
	PGresult *r;
	bool ok;

	snprintf(info, sizeof(info), "host=127.0.0.1 port=%u user=" POSTGRES_USER " dbname=" POSTGRES_DB, port);
	c = PQconnectdb(info);
	r = PQexec(c, sql);
	ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
	if (ok && out)
		snprintf(out, len, "%s", PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	PQfinish(c);
	return ok;
}

START_TEST(test_pg_lifecycle)
{
	struct node *n;
	char err[1024], out[64], name[64], dir[PATH_MAX], data[PATH_MAX + 8], info[128];
	struct stat st;
	uint16_t port;
	PGconn *idle;

	ck_assert_msg(node_new(&n, &postgres_ops, &quiet_opts, err, sizeof(err)) == 0, "%s", err);
	port = node_port(n);
	snprintf(name, sizeof(name), "%s", node_name(n));
	snprintf(dir, sizeof(dir), "%s", node_dir(n));
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(out, sizeof(out), "postgresql://dupsim@127.0.0.1:%u/dupsim", port);
	ck_assert_str_eq(node_url(n), out);
	ck_assert_int_eq(non_loopback_listeners(port), 0);
	/* as root the cluster belongs to nobody (postgres refuses root), else to us */
	ck_assert_int_eq(stat(data, &st), 0);
	ck_assert_uint_eq(st.st_uid, geteuid() == 0 ? getpwnam("nobody")->pw_uid : geteuid());
	ck_assert(pg_sql(port, "CREATE TABLE t (v text); INSERT INTO t VALUES ('v1')", NULL, 0));

	/* kill -9: a committed row survives (fsync on) */
	ck_assert_int_eq(node_kill(n), 0);
	ck_assert(!node_running(n));
	ck_assert_int_eq(procs_after(name), 0);
	ck_assert_msg(node_restart(n, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(node_port(n), port);
	ck_assert(pg_sql(port, "SELECT v FROM t", out, sizeof(out)));
	ck_assert_str_eq(out, "v1");

	/* a stop does not wait for an idle client (fast shutdown, not smart) */
	snprintf(info, sizeof(info), "host=127.0.0.1 port=%u user=dupsim dbname=dupsim", port);
	idle = PQconnectdb(info);
	ck_assert_int_eq(PQstatus(idle), CONNECTION_OK);
	ck_assert_int_eq(node_stop(n), 0);
	PQfinish(idle);
	ck_assert(!node_running(n));
	node_free(n);
	ck_assert_int_eq(procs_after(name), 0);
	ck_assert(!exists(dir));
}
END_TEST

START_TEST(test_pg_sigint_cleans_up)
{
	signal_kind = &postgres_ops;
	in_private_tmpdir(_i ? SIGKILL : SIGINT);
}
END_TEST

/* ---------- `dupsim broker` through the built binary ---------- */

static char cli_state[PATH_MAX];

/* Runs `dupsim broker ARGS` with DUPSIM_STATE_DIR=cli_state; stdout into out; returns the exit code. */
static int dupsim_broker(const char *args, char *out, size_t len)
{
	char cmd[PATH_MAX * 2];
	size_t o = 0;
	FILE *p;
	int st;

	snprintf(cmd, sizeof(cmd), "DUPSIM_STATE_DIR='%s' '%s' broker %s", cli_state, test_dupsim_bin(), args);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	out[0] = '\0';
	while (o + 1 < len && fgets(out + o, (int)(len - o), p))
		o += strlen(out + o);
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void cli_cleanup(void)
{
	char out[512];

	if (cli_state[0]) {
		dupsim_broker("stop 2>/dev/null", out, sizeof(out));
		files_rm_rf(cli_state);
		cli_state[0] = '\0';
	}
}

static void state_value(const char *key, char *out, size_t len)
{
	char path[PATH_MAX + 32], *text, *p;
	size_t kl = strlen(key);

	snprintf(path, sizeof(path), "%s/broker.state", cli_state);
	text = files_read(path, NULL);
	ck_assert_msg(text != NULL, "no %s", path);
	out[0] = '\0';
	for (p = strtok(text, "\n"); p; p = strtok(NULL, "\n"))
		if (strncmp(p, key, kl) == 0 && p[kl] == '=')
			snprintf(out, len, "%s", p + kl + 1);
	free(text);
}

START_TEST(test_cli_start_status_stop)
{
	char tmpl[] = "/tmp/dupsim-check-state-XXXXXX", out[1024], url[256], again[256], found[256], node[64];
	char nodedir[PATH_MAX + 16];
	const char *old = getenv("DUPSIM_STATE_DIR");
	char *saved = old ? strdup(old) : NULL;
	int port;

	ck_assert_msg(access(test_dupsim_bin(), X_OK) == 0, "no dupsim binary at %s (build it, or set DUPSIM_BIN)",
		      test_dupsim_bin());
	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	snprintf(cli_state, sizeof(cli_state), "%s/state", tmpl);
	atexit(cli_cleanup); /* a failed check exits this (forked) test: don't leave the node up */

	ck_assert_int_eq(dupsim_broker("--help", out, sizeof(out)), 0);
	ck_assert_int_eq(dupsim_broker("start --help", out, sizeof(out)), 0);
	ck_assert_int_eq(dupsim_broker("stop --help", out, sizeof(out)), 0);
	ck_assert_int_eq(dupsim_broker("status --help", out, sizeof(out)), 0);
	ck_assert_int_eq(dupsim_broker("bogus 2>/dev/null", out, sizeof(out)), 2);

	ck_assert_int_eq(dupsim_broker("status", out, sizeof(out)), 3);
	ck_assert_ptr_nonnull(strstr(out, "not running"));

	ck_assert_int_eq(dupsim_broker("start 2>/dev/null", url, sizeof(url)), 0);
	url[strcspn(url, "\n")] = '\0';
	ck_assert_msg(strncmp(url, "amqp://guest:guest@127.0.0.1:", 29) == 0, "start printed '%s'", url);
	port = atoi(url + 29);
	ck_assert(can_login((uint16_t)port));
	state_value("node", node, sizeof(node));
	state_value("dir", nodedir, sizeof(nodedir));
	ck_assert_int_ge(node_procs_alive(node), 2);

	ck_assert_int_eq(dupsim_broker("status", out, sizeof(out)), 0);
	ck_assert_ptr_nonnull(strstr(out, url));
	ck_assert_int_eq(dupsim_broker("start 2>/dev/null", again, sizeof(again)), 0);
	again[strcspn(again, "\n")] = '\0';
	ck_assert_str_eq(again, url);

	setenv("DUPSIM_STATE_DIR", cli_state, 1);
	ck_assert_int_eq(broker_find_persistent(found, sizeof(found)), 0);
	ck_assert_str_eq(found, url);

	ck_assert_int_eq(dupsim_broker("stop 2>/dev/null", out, sizeof(out)), 0);
	ck_assert_int_eq(dupsim_broker("status", out, sizeof(out)), 3);
	ck_assert_int_eq(broker_find_persistent(found, sizeof(found)), -1);
	ck_assert_int_eq(procs_after(node), 0);
	ck_assert(!exists(nodedir));
	ck_assert_int_eq(dupsim_broker("stop 2>/dev/null", out, sizeof(out)), 0); /* idempotent */

	if (saved)
		setenv("DUPSIM_STATE_DIR", saved, 1);
	else
		unsetenv("DUPSIM_STATE_DIR");
	free(saved);
	files_rm_rf(tmpl);
	cli_state[0] = '\0';
}
END_TEST

/*
 * A node's helpers carry "<marker>-<suffix>": counted and killed with the
 * node's family (cleanup, sweep, `dupsim broker stop`), but not by a kill -9
 * of the node alone, which keeps its epmd for the restart.
 */
/* A listening socket on 127.0.0.1, any port; its port into *port. */
static int listen_any(uint16_t *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* A client socket from 127.0.0.1:local (0: any) to 127.0.0.1:to; its local port into *local. */
static int connect_from(uint16_t *local, uint16_t to)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				  .sin_port = htons(*local) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	ck_assert_int_ge(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	sa.sin_port = htons(to);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*local = ntohs(sa.sin_port);
	return fd;
}

/*
 * The owner of a connection is found by both its ends: one local port can
 * serve connections to two peers (the proxy's upstream sockets share ports
 * with its clients), and the lookup took the first socket with that local
 * port, so an app's connection could read as dupsim's own.
 */
START_TEST(test_socket_owner_by_both_ends)
{
	uint16_t a, b, local = 0;
	int la = listen_any(&a), lb = listen_any(&b), sync[2], mine;
	char go;
	pid_t child;

	ck_assert_int_eq(pipe(sync), 0);
	mine = connect_from(&local, b); /* ours: local -> b */
	child = fork();
	if (child == 0) { /* the child's: the same local port -> a */
		uint16_t same = local;
		int fd = connect_from(&same, a);

		(void)fd;
		if (write(sync[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	ck_assert_int_eq(read(sync[0], &go, 1), 1);
	{
		pid_t groups[] = { getpgid(child) };

		ck_assert_int_eq(proc_socket_owner(local, a, groups, 1), child);
		ck_assert_int_eq(proc_socket_owner(local, b, groups, 1), getpid());
		ck_assert_int_eq(proc_socket_owner(local, 1, groups, 1), 0); /* no such connection */
		ck_assert_int_eq(proc_socket_owner(local, a, NULL, 0), 0); /* not in a group looked at */
	}
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	close(mine);
	close(la);
	close(lb);
	close(sync[0]);
	close(sync[1]);
}
END_TEST

START_TEST(test_proc_marker_family)
{
	char *argv[] = { "/bin/sleep", "60", NULL };
	char *env_node[] = { "DUPSIM_NODE=dupsim-check-fam", NULL }, *env_helper[] = { "DUPSIM_NODE=dupsim-check-fam-epmd", NULL };
	char *env_other[] = { "DUPSIM_NODE=dupsim-check-famx", NULL };
	char err[256], log[] = "/tmp/dupsim-check-fam-XXXXXX";
	pid_t node, helper, other;
	int fd = mkstemp(log);

	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_msg(proc_spawn(argv, env_node, "/", log, false, &node, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(proc_spawn(argv, env_helper, "/", log, false, &helper, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(proc_spawn(argv, env_other, "/", log, false, &other, err, sizeof(err)) == 0, "%s", err);
	for (int i = 0; i < 100 && proc_count("DUPSIM_NODE=dupsim-check-fam", true) < 2; i++)
		clock_sleep_ns(20 * NS_PER_MS); /* until both have exec'd */
	ck_assert_int_eq(proc_count("DUPSIM_NODE=dupsim-check-fam", false), 1);
	ck_assert_int_eq(proc_count("DUPSIM_NODE=dupsim-check-fam", true), 2);
	ck_assert_int_eq(node_procs_alive("dupsim-check-fam"), 2);
	ck_assert(node_pid_is(node, "dupsim-check-fam"));
	ck_assert(!node_pid_is(helper, "dupsim-check-fam"));
	ck_assert(!proc_exited(node, NULL));

	proc_kill(node, "DUPSIM_NODE=dupsim-check-fam");
	ck_assert_int_eq(node_procs_alive("dupsim-check-fam"), 1);
	ck_assert(!proc_exited(helper, NULL));
	node_kill_named("dupsim-check-fam");
	ck_assert_int_eq(node_procs_alive("dupsim-check-fam"), 0);
	ck_assert(proc_exited(helper, NULL));
	ck_assert_int_eq(proc_count("DUPSIM_NODE=dupsim-check-famx", false), 1); /* not of the family */
	proc_kill(helper, "");
	proc_kill(other, "DUPSIM_NODE=dupsim-check-famx");
	ck_assert_int_eq(proc_count("DUPSIM_NODE=dupsim-check-famx", true), 0);
	unlink(log);
}
END_TEST

/* ---------- issue 13, broker timeouts ---------- */

/* file of node n contains text */
static bool node_file_has(const struct node *n, const char *name, const char *text)
{
	char path[PATH_MAX], buf[4096];
	FILE *f;
	size_t got;

	snprintf(path, sizeof(path), "%s/%s", node_dir(n), name);
	if (!(f = fopen(path, "r")))
		return false;
	got = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[got] = '\0';
	return strstr(buf, text) != NULL;
}

/*
 * rabbitmq_new with a 1 s consumer_timeout: the node ticks every 250 ms
 * (RabbitMQ's default tick, 60 s, would let the timeout fire up to a minute
 * late), so a delivery held unacked has its channel closed with 406 between
 * 1 s and about 1.25 s after it was delivered.
 */
START_TEST(test_consumer_timeout_fires_on_time)
{
	struct rabbitmq_conf rc = { .consumer_timeout_ms = 1000 };
	struct node *b;
	amqp_connection_state_t c;
	amqp_envelope_t e;
	amqp_frame_t f;
	struct timeval tv = { 5, 0 };
	char err[1024];
	uint64_t t0, waited;

	ck_assert_uint_eq(rabbitmq_tick_ms(0), 0);
	ck_assert_uint_eq(rabbitmq_tick_ms(1000), 250);
	ck_assert_uint_eq(rabbitmq_tick_ms(200), 100);
	ck_assert_uint_eq(rabbitmq_tick_ms(1800000), 60000);
	ck_assert_msg(rabbitmq_new(&b, &quiet_opts, &rc, err, sizeof(err)) == 0, "%s", err);
	ck_assert(node_file_has(b, "etc/rabbitmq.conf", "consumer_timeout = 1000\n"));
	ck_assert(node_file_has(b, "etc/advanced.config", "{channel_tick_interval, 250}"));
	ck_assert(publish_tx(node_port(b), "held"));
	c = amqp_open(node_port(b));
	ck_assert_ptr_nonnull(c);
	amqp_basic_consume(c, 1, amqp_cstring_bytes(QUEUE), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
	ck_assert_int_eq(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
	ck_assert_int_eq(amqp_consume_message(c, &e, &tv, 0).reply_type, AMQP_RESPONSE_NORMAL);
	t0 = clock_now_ns();
	amqp_destroy_envelope(&e);
	do /* never acked: the next method is the broker's channel.close */
		ck_assert_int_eq(amqp_simple_wait_frame_noblock(c, &f, &tv), AMQP_STATUS_OK);
	while (f.frame_type != AMQP_FRAME_METHOD);
	waited = clock_now_ns() - t0;
	ck_assert_uint_eq(f.payload.method.id, AMQP_CHANNEL_CLOSE_METHOD);
	ck_assert_uint_eq(((amqp_channel_close_t *)f.payload.method.decoded)->reply_code, AMQP_PRECONDITION_FAILED);
	ck_assert_msg(waited >= 950 * NS_PER_MS && waited <= 1600 * NS_PER_MS, "fired after %.2fs",
		      (double)waited / NS_PER_S);
	fprintf(stderr, "check_nodes: consumer_timeout 1s fired after %.2fs\n", (double)waited / NS_PER_S);
	amqp_destroy_connection(c);
	node_free(b);
}
END_TEST

Suite *nodes_suite(void)
{
	Suite *s = suite_create("nodes");
	TCase *tc;

	tc = tcase_create("shared");
	tcase_set_tags(tc, "shard1");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_shared_node_login);
	suite_add_tcase(s, tc);

	tc = tcase_create("proc");
	tcase_set_tags(tc, "shard1");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_proc_marker_family);
	tcase_add_test(tc, test_socket_owner_by_both_ends);
	suite_add_tcase(s, tc);

	tc = tcase_create("node");
	tcase_set_tags(tc, "shard1");
	tcase_set_timeout(tc, 150);
	tcase_add_test(tc, test_node_lifecycle);
	tcase_add_test(tc, test_start_failure_names_log);
	suite_add_tcase(s, tc);

	tc = tcase_create("cleanup");
	tcase_set_tags(tc, "shard1");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_sigint_cleans_up);
	tcase_add_test(tc, test_crashed_parent_kills_node);
	suite_add_tcase(s, tc);

	tc = tcase_create("redis");
	tcase_set_tags(tc, "shard1");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_redis_lifecycle);
	suite_add_tcase(s, tc);

	tc = tcase_create("timeouts"); /* issue 13, broker timeouts */
	tcase_set_tags(tc, "shard1");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_consumer_timeout_fires_on_time);
	suite_add_tcase(s, tc);
	tc = tcase_create("postgres");
	tcase_set_tags(tc, "shard1");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_pg_lifecycle);
	tcase_add_loop_test(tc, test_pg_sigint_cleans_up, 0, 2); /* SIGINT, then a SIGKILLed parent */
	suite_add_tcase(s, tc);

	tc = tcase_create("cli");
	tcase_set_tags(tc, "shard1");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_cli_start_status_stop);
	suite_add_tcase(s, tc);
	return s;
}
