/* rabbitmq.c — the RabbitMQ kind of node: binaries, config files, environment, the private epmd, the login check. */
#include "nodes/rabbitmq.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/files.h"
#include "core/log.h"
#include "core/net.h"
#include "nodes/proc.h"

#define RABBITMQ_SERVER "/usr/lib/rabbitmq/bin/rabbitmq-server"
#define RABBITMQCTL "/usr/lib/rabbitmq/bin/rabbitmqctl"
#define NODE_PATH "/usr/bin:/bin"
#define EPMD_TIMEOUT_NS (5 * NS_PER_S)
#define TAIL_LINES 4

struct rabbitmq {
	struct node n;
	const char *server, *epmd;
	char epmd_buf[PATH_MAX];
	pid_t epmd_pid;
	char epmd_marker[PROC_MARKER_MAX];
	char epmd_log[PATH_MAX];
	struct strv epmd_argv, epmd_envp;
	struct rabbitmq_conf conf;
	char cookie[64];
	char peers[RABBITMQ_PEERS_MAX][96];
	char erl_name[128]; /* NAME@localhost, or NAME@ADDR on a test host */
};

/* rabbitmq_new's settings on their way into configure (node_new has no slot for a kind's options). */
static _Thread_local const struct rabbitmq_conf *rmq_pending;

static struct rabbitmq *rmq(struct node *n)
{
	return (struct rabbitmq *)n;
}

uint16_t rabbitmq_port(const struct node *n, enum rabbitmq_port which)
{
	return n->ports[which];
}

const char *rabbitmq_node_name(const struct node *n)
{
	return ((const struct rabbitmq *)n)->erl_name;
}

/* On a test host the node has a host of its own: long names, by address. */
static bool rmq_on_host(const struct node *n)
{
	return n->netns_env[0] != '\0';
}

pid_t rabbitmq_epmd_pid(const struct node *n)
{
	return ((const struct rabbitmq *)n)->epmd_pid;
}

/* epmd next to rabbitmq-server's erl: on PATH, or the Debian location. */
static const char *find_epmd(char *buf, size_t len)
{
	const char *path = getenv("PATH");
	char *copy, *save = NULL;

	if (getenv("DUPSIM_EPMD") && *getenv("DUPSIM_EPMD"))
		return getenv("DUPSIM_EPMD");
	if (access("/usr/bin/epmd", X_OK) == 0)
		return "/usr/bin/epmd";
	copy = strdup(path ? path : "");
	for (char *dir = copy ? strtok_r(copy, ":", &save) : NULL; dir; dir = strtok_r(NULL, ":", &save)) {
		snprintf(buf, len, "%s/epmd", dir);
		if (access(buf, X_OK) == 0) {
			free(copy);
			return buf;
		}
	}
	free(copy);
	return NULL;
}

static int rmq_check(struct node *n, char *err, size_t errlen)
{
	struct rabbitmq *r = rmq(n);

	r->server = node_exe("DUPSIM_RABBITMQ_SERVER", RABBITMQ_SERVER);
	if (access(r->server, X_OK) < 0) {
		log_seterr(err, errlen, "cannot run %s: %s (install rabbitmq-server, or set DUPSIM_RABBITMQ_SERVER)",
			   r->server, strerror(errno));
		return NODE_EBIN;
	}
	r->epmd = find_epmd(r->epmd_buf, sizeof(r->epmd_buf));
	if (!r->epmd) {
		log_seterr(err, errlen, "epmd not found in /usr/bin or PATH (install erlang-base, or set DUPSIM_EPMD)");
		return NODE_EBIN;
	}
	return 0;
}

uint64_t rabbitmq_tick_ms(uint64_t consumer_timeout_ms)
{
	uint64_t t = consumer_timeout_ms / 4;

	if (!consumer_timeout_ms)
		return 0;
	return t < 100 ? 100 : t > 60000 ? 60000 : t;
}

/* The tick that checks consumer_timeout: advanced.config, as the schema of rabbitmq.conf has no key for it. */
static int rmq_timeout_files(struct node *n, char *err, size_t errlen)
{
	uint64_t ms = rmq(n)->conf.consumer_timeout_ms;
	char text[256] = "[";

	if (!ms && !rmq_on_host(n))
		return 0;
	if (ms)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "{rabbit, [{channel_tick_interval, %llu}]}%s",
			 (unsigned long long)rabbitmq_tick_ms(ms), rmq_on_host(n) ? ", " : "");
	/* A member on a test host notices a cut peer within 10 s (net_ticktime), not the default 60 s:
	 * a partition of a test's length is then seen by every member. */
	if (rmq_on_host(n))
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "{kernel, [{net_ticktime, 10}]}");
	snprintf(text + strlen(text), sizeof(text) - strlen(text), "].\n");
	if (node_write_file(n, "etc/advanced.config", text, err, errlen) < 0)
		return NODE_ESYS;
	return 0;
}

int rabbitmq_new(struct node **out, const struct node_opts *opts, const struct rabbitmq_conf *conf, char *err,
		 size_t errlen)
{
	int rc;

	rmq_pending = conf;
	rc = node_new(out, &rabbitmq_ops, opts, err, errlen);
	rmq_pending = NULL;
	return rc;
}

/* The cluster's shared Erlang cookie in HOME, readable by its owner only (erl refuses any other mode). */
static int rmq_cookie(struct node *n, char *err, size_t errlen)
{
	char path[PATH_MAX];

	if (node_write_file(n, "home/.erlang.cookie", rmq(n)->cookie, err, errlen) < 0)
		return NODE_ESYS;
	snprintf(path, sizeof(path), "%s/home/.erlang.cookie", n->dir);
	if (chmod(path, 0400) < 0)
		return log_seterr(err, errlen, "chmod %s: %s", path, strerror(errno));
	return 0;
}

static int rmq_files(struct node *n, char *err, size_t errlen)
{
	static const char *const sub[] = { "etc", "etc/conf.d", "home", "log", "mnesia" };
	char path[PATH_MAX], conf[1536];

	for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", n->dir, sub[i]);
		if (files_mkdir_p(path, 0700) < 0) {
			log_seterr(err, errlen, "cannot create %s: %s", path, strerror(errno));
			return NODE_ESYS;
		}
	}
	snprintf(conf, sizeof(conf),
		 "# written by dupsim for a private node\n"
		 "listeners.tcp.default = %s:%u\n"
		 "log.console = false\n"
		 "log.file.level = info\n",
		 n->addr, n->ports[RABBITMQ_PORT_AMQP]);
	if (rmq_on_host(n)) /* dupsim reaches it from its own host, not through loopback */
		snprintf(conf + strlen(conf), sizeof(conf) - strlen(conf), "loopback_users = none\n");
	if (rmq(n)->peers[0][0]) {
		snprintf(conf + strlen(conf), sizeof(conf) - strlen(conf),
			 "cluster_formation.peer_discovery_backend = classic_config\n");
		for (int i = 0; i < RABBITMQ_PEERS_MAX && rmq(n)->peers[i][0]; i++)
			snprintf(conf + strlen(conf), sizeof(conf) - strlen(conf),
				 "cluster_formation.classic_config.nodes.%d = %s\n", i + 1, rmq(n)->peers[i]);
	}
	if (rmq(n)->conf.consumer_timeout_ms)
		snprintf(conf + strlen(conf), sizeof(conf) - strlen(conf), "consumer_timeout = %llu\n",
			 (unsigned long long)rmq(n)->conf.consumer_timeout_ms);
	if (rmq(n)->cookie[0] && rmq_cookie(n, err, errlen) < 0)
		return NODE_ESYS;
	if (node_write_file(n, "etc/rabbitmq.conf", conf, err, errlen) < 0 ||
	    node_write_file(n, "etc/enabled_plugins", "[].\n", err, errlen) < 0 ||
	    node_write_file(n, "etc/rabbitmq-env.conf", "", err, errlen) < 0)
		return NODE_ESYS;
	return rmq_timeout_files(n, err, errlen);
}

/* PATH for the node and its epmd: the caller's with a custom server (a test's fake), else a fixed one. */
static const char *rmq_path(void)
{
	const char *custom = getenv("DUPSIM_RABBITMQ_SERVER");

	return custom && *custom && getenv("PATH") ? getenv("PATH") : NODE_PATH;
}

/* epmd listens on loopback, and on its host's address for the other members. */
static const char *rmq_epmd_addresses(const struct node *n)
{
	static _Thread_local char buf[64];

	if (!rmq_on_host(n))
		return "127.0.0.1";
	snprintf(buf, sizeof(buf), "127.0.0.1,%s", n->addr);
	return buf;
}

/* n->addr as an Erlang tuple's insides: 10,77,1,10 */
static const char *rmq_erl_ip(const struct node *n)
{
	static _Thread_local char buf[32];
	char *p;

	snprintf(buf, sizeof(buf), "%s", n->addr);
	for (p = buf; *p; p++)
		if (*p == '.')
			*p = ',';
	return buf;
}

static int rmq_env(struct node *n)
{
	struct strv *e = &n->envp;
	const char *d = n->dir, *nm = n->name;
	int rc = 0;

	rc |= strv_addf(&n->argv, "%s", rmq(n)->server);
	rc |= strv_addf(e, "PATH=%s", rmq_path());
	rc |= strv_addf(e, "LANG=C.UTF-8");
	rc |= strv_addf(e, "LC_ALL=C.UTF-8");
	rc |= strv_addf(e, "HOME=%s/home", d); /* the Erlang cookie lives there */
	rc |= strv_addf(e, "%s", n->marker);
	/* Makes the script exec erl (and erl exec beam.smp) instead of running it
	 * under a signal-forwarding sh: our child is then the VM itself, keeps the
	 * death signal, and SIGTERM reaches it directly (a graceful stop). */
	rc |= strv_addf(e, "detached=1");
	rc |= strv_addf(e, "RABBITMQ_NODENAME=%s", rmq(n)->erl_name);
	if (rmq_on_host(n))
		rc |= strv_addf(e, "RABBITMQ_USE_LONGNAME=true");
	rc |= strv_addf(e, "RABBITMQ_NODE_IP_ADDRESS=%s", n->addr);
	rc |= strv_addf(e, "RABBITMQ_NODE_PORT=%u", n->ports[RABBITMQ_PORT_AMQP]);
	rc |= strv_addf(e, "RABBITMQ_DIST_PORT=%u", n->ports[RABBITMQ_PORT_DIST]);
	rc |= strv_addf(e, "ERL_EPMD_PORT=%u", n->ports[RABBITMQ_PORT_EPMD]);
	rc |= strv_addf(e, "ERL_EPMD_ADDRESS=%s", rmq_epmd_addresses(n));
	rc |= strv_addf(e, "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {%s} +B i",
			rmq_erl_ip(n));
	rc |= strv_addf(e, "RABBITMQ_CONF_ENV_FILE=%s/etc/rabbitmq-env.conf", d);
	rc |= strv_addf(e, "RABBITMQ_CONFIG_FILE=%s/etc/rabbitmq.conf", d);
	rc |= strv_addf(e, "RABBITMQ_CONFIG_FILES=%s/etc/conf.d", d);
	rc |= strv_addf(e, "RABBITMQ_ADVANCED_CONFIG_FILE=%s/etc/advanced.config", d);
	rc |= strv_addf(e, "RABBITMQ_ENABLED_PLUGINS_FILE=%s/etc/enabled_plugins", d);
	rc |= strv_addf(e, "RABBITMQ_MOTD_FILE=%s/etc/motd", d);
	rc |= strv_addf(e, "RABBITMQ_MNESIA_BASE=%s/mnesia", d);
	rc |= strv_addf(e, "RABBITMQ_MNESIA_DIR=%s/mnesia/%s", d, nm);
	rc |= strv_addf(e, "RABBITMQ_PID_FILE=%s/mnesia/%s.pid", d, nm);
	rc |= strv_addf(e, "RABBITMQ_LOG_BASE=%s/log", d);
	rc |= strv_addf(e, "RABBITMQ_LOGS=%s/log/rabbit.log", d);
	rc |= strv_addf(e, "ERL_CRASH_DUMP=%s/log/erl_crash.dump", d);
	return rc;
}

static int rmq_epmd_env(struct rabbitmq *r)
{
	struct strv *a = &r->epmd_argv, *e = &r->epmd_envp;
	unsigned port = r->n.ports[RABBITMQ_PORT_EPMD];
	int rc = 0;

	strv_release(a);
	strv_release(e);
	rc |= strv_addf(a, "%s", r->epmd);
	rc |= strv_addf(a, "-port");
	rc |= strv_addf(a, "%u", port);
	rc |= strv_addf(a, "-address");
	rc |= strv_addf(a, "%s", rmq_epmd_addresses(&r->n));
	rc |= strv_addf(e, "PATH=%s", rmq_path());
	rc |= strv_addf(e, "HOME=%s/home", r->n.dir);
	rc |= strv_addf(e, "%s", r->epmd_marker);
	rc |= strv_addf(e, "ERL_EPMD_PORT=%u", port);
	rc |= strv_addf(e, "ERL_EPMD_ADDRESS=%s", rmq_epmd_addresses(&r->n));
	if (r->n.netns_env[0])
		rc |= strv_addf(e, "%s", r->n.netns_env);
	return rc;
}

static int rmq_configure(struct node *n, char *err, size_t errlen)
{
	struct rabbitmq *r = rmq(n);
	int rc;

	if (rmq_pending) {
		r->conf = *rmq_pending;
		snprintf(r->cookie, sizeof(r->cookie), "%s", rmq_pending->cookie ? rmq_pending->cookie : "");
		for (int i = 0; i < RABBITMQ_PEERS_MAX && rmq_pending->peers[i]; i++)
			snprintf(r->peers[i], sizeof(r->peers[i]), "%s", rmq_pending->peers[i]);
		r->conf.cookie = NULL; /* the copies above are what counts */
		memset(r->conf.peers, 0, sizeof(r->conf.peers));
	}
	if (r->conf.epmd_port)
		n->ports[RABBITMQ_PORT_EPMD] = r->conf.epmd_port;
	snprintf(r->erl_name, sizeof(r->erl_name), "%s@%s", n->name, rmq_on_host(n) ? n->addr : "localhost");
	node_helper_marker(n, "epmd", r->epmd_marker, sizeof(r->epmd_marker));
	snprintf(r->epmd_log, sizeof(r->epmd_log), "%s/log/epmd.log", n->dir);
	snprintf(n->url, sizeof(n->url), "amqp://guest:guest@%s:%u/", n->addr, n->ports[RABBITMQ_PORT_AMQP]);
	if ((rc = rmq_files(n, err, errlen)) < 0)
		return rc;
	if (rmq_env(n) || rmq_epmd_env(r)) {
		log_seterr(err, errlen, "out of memory");
		return NODE_ESYS;
	}
	return 0;
}

static void epmd_stop(struct node *n)
{
	struct rabbitmq *r = rmq(n);

	node_watch_helper(n, 0);
	if (r->epmd_pid > 0 || r->epmd_marker[0])
		proc_kill(r->epmd_pid, r->epmd_marker);
	r->epmd_pid = 0;
}

/* Starts the private epmd unless it runs, and waits until its port takes connections. */
static int epmd_start(struct node *n, char *err, size_t errlen)
{
	struct rabbitmq *r = rmq(n);
	uint64_t deadline = clock_now_ns() + EPMD_TIMEOUT_NS;
	uint16_t port = n->ports[RABBITMQ_PORT_EPMD];
	char tail[400];
	int code;

	if (r->epmd_pid > 0) {
		if (!proc_exited(r->epmd_pid, NULL))
			return 0;
		proc_kill(r->epmd_pid, r->epmd_marker);
		r->epmd_pid = 0;
	}
	if (proc_spawn(r->epmd_argv.v, r->epmd_envp.v, n->dir, r->epmd_log, n->persistent, &r->epmd_pid, err,
		       errlen) < 0)
		return NODE_ESYS;
	node_watch_helper(n, r->epmd_pid);
	while (!net_port_open_at(rmq_on_host(n) ? n->addr : "127.0.0.1", port)) {
		if (proc_exited(r->epmd_pid, &code) || clock_now_ns() >= deadline) {
			proc_log_tail(r->epmd_log, TAIL_LINES, tail, sizeof(tail));
			epmd_stop(n);
			log_seterr(err, errlen, "epmd on %s:%u did not come up; log %s: %s", n->addr, port, r->epmd_log,
				   tail[0] ? tail : "(empty)");
			return NODE_EPORT;
		}
		clock_sleep_ns(10 * NS_PER_MS);
	}
	return 0;
}

static void rmq_release(struct node *n)
{
	strv_release(&rmq(n)->epmd_argv);
	strv_release(&rmq(n)->epmd_envp);
}

/* True when the node accepts an AMQP login as guest. */
static bool rmq_ready(const struct node *n)
{
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s;
	struct timeval open_tv = { 0, 500000 }, hs_tv = { 2, 0 };
	amqp_rpc_reply_t r;
	bool ok = false;

	if (!c)
		return false;
	s = amqp_tcp_socket_new(c);
	if (!s || amqp_socket_open_noblock(s, n->addr, n->ports[RABBITMQ_PORT_AMQP], &open_tv) != AMQP_STATUS_OK)
		goto out;
	amqp_set_handshake_timeout(c, &hs_tv);
	amqp_set_rpc_timeout(c, &hs_tv);
	r = amqp_login(c, "/", 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
	ok = r.reply_type == AMQP_RESPONSE_NORMAL;
	if (ok)
		amqp_connection_close(c, AMQP_REPLY_SUCCESS);
out:
	amqp_destroy_connection(c);
	return ok;
}

/* rabbitmqctl's environment: the node's cookie (HOME), its epmd, no system-wide rabbitmq-env.conf. */
static int rmq_ctl_env(struct node *n, struct strv *e, const char *marker)
{
	int rc = 0;

	rc |= strv_addf(e, "PATH=%s", rmq_path());
	rc |= strv_addf(e, "LANG=C.UTF-8");
	rc |= strv_addf(e, "LC_ALL=C.UTF-8");
	rc |= strv_addf(e, "HOME=%s/home", n->dir);
	rc |= strv_addf(e, "%s", marker);
	rc |= strv_addf(e, "ERL_EPMD_PORT=%u", n->ports[RABBITMQ_PORT_EPMD]);
	if (rmq_on_host(n)) { /* on the node's own host, with its long names */
		rc |= strv_addf(e, "%s", n->netns_env);
		rc |= strv_addf(e, "RABBITMQ_USE_LONGNAME=true");
	}
	rc |= strv_addf(e, "RABBITMQ_CONF_ENV_FILE=%s/etc/rabbitmq-env.conf", n->dir);
	rc |= strv_addf(e, "RABBITMQ_CONFIG_FILE=%s/etc/rabbitmq.conf", n->dir);
	return rc;
}

static int ctl_spawn_to(struct node *n, const char *const *args, const char *log, pid_t *pid, char *err,
			size_t errlen)
{
	const char *ctl = node_exe("DUPSIM_RABBITMQCTL", RABBITMQCTL);
	struct strv argv = { 0 }, envp = { 0 };
	char marker[PROC_MARKER_MAX];
	int rc = 0;

	node_helper_marker(n, "ctl", marker, sizeof(marker));
	rc |= strv_addf(&argv, "%s", ctl);
	rc |= strv_addf(&argv, "-n");
	rc |= strv_addf(&argv, "%s", rmq(n)->erl_name);
	for (size_t i = 0; args[i]; i++)
		rc |= strv_addf(&argv, "%s", args[i]);
	rc |= rmq_ctl_env(n, &envp, marker);
	if (rc)
		rc = log_seterr(err, errlen, "out of memory");
	else if (proc_spawn(argv.v, envp.v, n->dir, log, false, pid, err, errlen) < 0)
		rc = NODE_ESYS;
	strv_release(&argv);
	strv_release(&envp);
	return rc;
}

int rabbitmq_ctl_spawn(struct node *n, const char *const *args, pid_t *pid, char *err, size_t errlen)
{
	char log[PATH_MAX];

	snprintf(log, sizeof(log), "%s/log/rabbitmqctl.log", n->dir);
	return ctl_spawn_to(n, args, log, pid, err, errlen);
}

int rabbitmq_ctl_run(struct node *n, const char *const *args, int timeout_ms, char *out, size_t outlen, char *err,
		     size_t errlen)
{
	static _Atomic unsigned seq;
	uint64_t deadline = clock_now_ns() + (uint64_t)timeout_ms * NS_PER_MS;
	char path[PATH_MAX];
	pid_t pid;
	int code = 0, rc;
	FILE *f;
	size_t got = 0;

	snprintf(path, sizeof(path), "%s/log/ctl-%u.out", n->dir, atomic_fetch_add(&seq, 1));
	unlink(path);
	if ((rc = ctl_spawn_to(n, args, path, &pid, err, errlen)) < 0)
		return rc;
	while (!proc_exited(pid, &code)) {
		if (clock_now_ns() >= deadline) {
			proc_kill(pid, "");
			unlink(path);
			return log_seterr(err, errlen, "rabbitmqctl %s on %s: no answer within %d ms", args[0],
					  n->name, timeout_ms);
		}
		clock_sleep_ns(20 * NS_PER_MS);
	}
	proc_kill(pid, ""); /* reaps it */
	f = fopen(path, "r");
	if (f) {
		got = fread(out, 1, outlen ? outlen - 1 : 0, f);
		fclose(f);
	}
	if (outlen)
		out[got] = '\0';
	unlink(path);
	if (code != 0)
		return log_seterr(err, errlen, "rabbitmqctl %s on %s exited with %d: %.200s", args[0], n->name, code,
				  outlen ? out : "");
	return 0;
}

const struct node_ops rabbitmq_ops = {
	.title = "RabbitMQ node",
	.tag = "",
	.log_name = "log/console.log",
	.detail_log_name = "log/rabbit.log",
	.port_taken = "eaddrinuse",
	.size = sizeof(struct rabbitmq),
	.nports = 3,
	.ready_digits = 1,
	.check = rmq_check,
	.configure = rmq_configure,
	.start_helpers = epmd_start,
	.stop_helpers = epmd_stop,
	.release = rmq_release,
	.ready = rmq_ready,
};
