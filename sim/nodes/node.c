/* node.c — the life cycle every kind of private server shares: name, folder, ports, spawn, readiness, stop, kill -9, restart. */
#include "nodes/node.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/files.h"
#include "core/log.h"
#include "core/net.h"
#include "nodes/sweep.h"

#define MARKER_PREFIX "DUPSIM_NODE="
#define POLL_NS (100 * NS_PER_MS)
#define DEFAULT_START_MS 60000
#define TAIL_LINES 4

/* The cleanup's slot: 0 is the server, 1 the kind's helper. */
#define SLOT_SERVER 0
#define SLOT_HELPER 1

static atomic_uint node_seq;

const char *node_strerror(int code)
{
	switch (code) {
	case 0:
		return "ok";
	case NODE_ESYS:
		return "a folder, file, fork or allocation failed";
	case NODE_EBIN:
		return "the server's binary is missing";
	case NODE_EFULL:
		return "too many nodes in one process";
	case NODE_EEXIT:
		return "the server exited while starting";
	case NODE_ETIMEOUT:
		return "the server was not ready in time";
	case NODE_EPORT:
		return "a port was taken meanwhile";
	case NODE_EKILLED:
		return "the server did not stop in time and was killed";
	default:
		return "unknown node error";
	}
}

/* ---------- helpers for the kinds ---------- */

void node_helper_marker(const struct node *n, const char *suffix, char *buf, size_t len)
{
	snprintf(buf, len, "%s-%s", n->marker, suffix);
}

void node_watch_helper(struct node *n, pid_t pid)
{
	proc_slot_set_pid(n->slot, SLOT_HELPER, pid);
}

const char *node_exe(const char *envname, const char *dflt)
{
	const char *v = getenv(envname);

	return v && *v ? v : dflt;
}

int node_write_file(const struct node *n, const char *name, const char *text, char *err, size_t errlen)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", n->dir, name);
	if (files_write_atomic(path, text, strlen(text)) < 0) {
		log_seterr(err, errlen, "cannot write %s: %s", path, strerror(errno));
		return NODE_ESYS;
	}
	return 0;
}

/* ---------- name, folder, ports ---------- */

static void make_name(char *buf, size_t len, const char *tag)
{
	unsigned short rnd;

	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (unsigned short)(clock_now_ns() ^ (uint64_t)getpid());
	/* The random part keeps a recycled pid from naming a node like an old persistent one. */
	snprintf(buf, len, "dupsim%s-%d-%u-%04x", tag, (int)getpid(), atomic_fetch_add(&node_seq, 1), rnd);
}

/* A fresh TMPDIR/dupsim-XXXXXX folder with an owner file; sweeps the orphans of that TMPDIR first. */
static int make_tmp_dir(struct node *n, char *err, size_t errlen)
{
	const char *env = getenv("TMPDIR"), *tmp = env && *env ? env : "/tmp";

	if (asprintf(&n->dir, "%s/dupsim-XXXXXX", tmp) < 0) {
		n->dir = NULL;
		log_seterr(err, errlen, "out of memory");
		return NODE_ESYS;
	}
	if (!mkdtemp(n->dir)) {
		int e = errno;

		free(n->dir);
		n->dir = NULL;
		log_seterr(err, errlen, "cannot create a folder under %s: %s (set TMPDIR)", tmp, strerror(e));
		return NODE_ESYS;
	}
	sweep_once(tmp, n->quiet);
	if (sweep_own(n->dir, n->marker) < 0) {
		log_seterr(err, errlen, "cannot write %s/dupsim.owner: %s", n->dir, strerror(errno));
		return NODE_ESYS;
	}
	return 0;
}

/* Options, name, marker, folder and log paths. */
static int node_init(struct node *n, const struct node_opts *opts, char *err, size_t errlen)
{
	const char *keep = getenv("DUPSIM_KEEP");
	int rc;

	n->persistent = opts->persistent;
	n->keep_dir = opts->keep_dir || (keep && *keep && strcmp(keep, "0") != 0);
	n->quiet = opts->quiet;
	snprintf(n->addr, sizeof(n->addr), "%s", opts->addr ? opts->addr : "127.0.0.1");
	if (opts->netns && *opts->netns)
		snprintf(n->netns_env, sizeof(n->netns_env), "DUPSIM_NETNS=%s", opts->netns);
	n->start_timeout_ns = (uint64_t)(opts->start_timeout_ms > 0 ? opts->start_timeout_ms : DEFAULT_START_MS) *
			      NS_PER_MS;
	make_name(n->name, sizeof(n->name), n->ops->tag);
	snprintf(n->marker, sizeof(n->marker), MARKER_PREFIX "%s", n->name);
	if (!opts->dir) {
		if ((rc = make_tmp_dir(n, err, errlen)) < 0)
			return rc;
	} else if (!(n->dir = strdup(opts->dir))) {
		log_seterr(err, errlen, "out of memory");
		return NODE_ESYS;
	} else if (files_mkdir_p(n->dir, 0700) < 0) {
		log_seterr(err, errlen, "cannot create %s: %s", n->dir, strerror(errno));
		return NODE_ESYS;
	}
	snprintf(n->log, sizeof(n->log), "%s/%s", n->dir, n->ops->log_name);
	if (n->ops->detail_log_name)
		snprintf(n->detail_log, sizeof(n->detail_log), "%s/%s", n->dir, n->ops->detail_log_name);
	n->slot = proc_slot_claim(n->marker, n->dir, !n->keep_dir);
	if (!n->slot) {
		log_seterr(err, errlen, "too many nodes in one process");
		return NODE_EFULL;
	}
	return 0;
}

/* The kind's count of distinct free loopback ports. */
static int pick_ports(struct node *n, char *err, size_t errlen)
{
	for (int i = 0; i < n->ops->nports; i++) {
		for (int tries = 0;; tries++) {
			bool dup = false;

			if (net_free_port(&n->ports[i]) < 0) {
				log_seterr(err, errlen, "no free port on 127.0.0.1: %s", strerror(errno));
				return NODE_ESYS;
			}
			for (int j = 0; j < i; j++)
				dup |= n->ports[j] == n->ports[i];
			if (!dup)
				break;
			if (tries > 20) {
				log_seterr(err, errlen, "no distinct free ports on 127.0.0.1");
				return NODE_ESYS;
			}
		}
	}
	return 0;
}

/* ---------- spawn, readiness, boot ---------- */

static bool file_nonempty(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && st.st_size > 0;
}

/* True when the last 64 KiB of a file contain needle. */
static bool file_contains(const char *path, const char *needle)
{
	char *buf = malloc(65536 + 1);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = -1;
	bool found = false;

	if (buf && fd >= 0) {
		off_t size = lseek(fd, 0, SEEK_END);

		lseek(fd, size > 65536 ? size - 65536 : 0, SEEK_SET);
		n = read(fd, buf, 65536);
	}
	if (n > 0)
		found = memmem(buf, (size_t)n, needle, strlen(needle)) != NULL;
	if (fd >= 0)
		close(fd);
	free(buf);
	return found;
}

static int node_spawn(struct node *n, char *err, size_t errlen)
{
	if (n->pid > 0) { /* died on its own: reap what is left */
		proc_kill(n->pid, n->marker);
		n->pid = 0;
	}
	if (proc_spawn(n->argv.v, n->envp.v, n->dir, n->log, n->persistent, &n->pid, err, errlen) < 0)
		return NODE_ESYS;
	proc_slot_set_pid(n->slot, SLOT_SERVER, n->pid);
	return 0;
}

/* Kills what is left of a failed start and says why in err, with the most telling log's last lines. */
static int start_failed(struct node *n, int code, int status, char *err, size_t errlen)
{
	const char *hint = n->detail_log[0] ? n->detail_log : n->log, *log;
	char tail[640], tf[32];

	/* The server's own log says more once it exists; a quick death usually shows on stdout. */
	if (code == NODE_EEXIT)
		log = file_nonempty(n->log) ? n->log : hint;
	else
		log = file_nonempty(hint) ? hint : n->log;
	proc_log_tail(log, TAIL_LINES, tail, sizeof(tail));
	node_kill(n);
	if (code == NODE_EEXIT)
		log_seterr(err, errlen, "%s %s exited with status %d while starting; log %s: %s", n->ops->title,
			   n->name, status, log, tail[0] ? tail : "(empty)");
	else
		log_seterr(err, errlen, "%s %s not ready after %s; log %s: %s", n->ops->title, n->name,
			   clock_fmt_duration(n->start_timeout_ns, tf, sizeof(tf)), log, tail[0] ? tail : "(empty)");
	return code;
}

/* Polls the kind's ready() every 100 ms until it holds; fails at once if the server exits. */
static int node_wait_ready(struct node *n, char *err, size_t errlen)
{
	uint64_t t0 = clock_now_ns(), deadline = t0 + n->start_timeout_ns;
	int status;

	for (;;) {
		if (proc_exited(n->pid, &status))
			return start_failed(n, NODE_EEXIT, status, err, errlen);
		if (n->ops->ready(n))
			break;
		if (clock_now_ns() >= deadline)
			return start_failed(n, NODE_ETIMEOUT, 0, err, errlen);
		clock_sleep_ns(POLL_NS);
	}
	n->start_ns = clock_now_ns() - t0;
	return 0;
}

/* Helpers, server, readiness: 0, NODE_EPORT when a port was taken (the helpers', or the server's), or another code. */
static int node_boot(struct node *n, const char *verb, char *err, size_t errlen)
{
	const struct node_ops *k = n->ops;
	int rc;

	if (!n->quiet)
		log_line("%s %s %s on %s:%u (folder %s)", verb, k->title, n->name, n->addr, n->ports[0], n->dir);
	if (k->start_helpers && k->start_helpers(n, err, errlen) < 0)
		return NODE_EPORT;
	if ((rc = node_spawn(n, err, errlen)) < 0)
		return rc;
	if ((rc = node_wait_ready(n, err, errlen)) < 0)
		return k->port_taken && file_contains(n->log, k->port_taken) ? NODE_EPORT : rc;
	if (!n->quiet)
		log_line("%s %s ready in %.*fs", k->title, n->name, k->ready_digits, (double)n->start_ns / NS_PER_S);
	return 0;
}

/* A free port can be taken between the probe and the server's bind: one more try with new ports. */
static int node_first_boot(struct node *n, char *err, size_t errlen)
{
	for (int attempt = 0;; attempt++) {
		int rc = pick_ports(n, err, errlen);

		if (rc < 0)
			return rc;
		strv_release(&n->argv);
		strv_release(&n->envp);
		if ((rc = n->ops->configure(n, err, errlen)) < 0 ||
		    (n->netns_env[0] && (rc = strv_addf(&n->envp, "%s", n->netns_env)) < 0))
			return rc;
		rc = node_boot(n, "starting", err, errlen);
		if (rc != NODE_EPORT || attempt > 0)
			return rc;
		if (n->ops->stop_helpers)
			n->ops->stop_helpers(n);
		if (!n->quiet)
			log_line("%s: a port was taken meanwhile; trying other ports", n->name);
	}
}

int node_new(struct node **out, const struct node_ops *kind, const struct node_opts *opts, char *err,
	     size_t errlen)
{
	static const struct node_opts dflt = { 0 };
	struct node *n = calloc(1, kind->size);
	int rc;

	*out = NULL;
	if (!n) {
		log_seterr(err, errlen, "out of memory");
		return NODE_ESYS;
	}
	n->ops = kind;
	if ((rc = kind->check(n, err, errlen)) < 0 || (rc = node_init(n, opts ? opts : &dflt, err, errlen)) < 0 ||
	    (rc = node_first_boot(n, err, errlen)) < 0) {
		node_free(n);
		return rc;
	}
	*out = n;
	return 0;
}

/* ---------- the running node ---------- */

const char *node_url(const struct node *n)
{
	return n->url;
}

const char *node_addr(const struct node *n)
{
	return n->addr;
}

uint16_t node_port(const struct node *n)
{
	return n->ports[0];
}

const char *node_dir(const struct node *n)
{
	return n->dir;
}

const char *node_name(const struct node *n)
{
	return n->name;
}

pid_t node_pid(const struct node *n)
{
	return n->pid;
}

uint64_t node_last_start_ns(const struct node *n)
{
	return n->start_ns;
}

bool node_running(const struct node *n)
{
	return n->pid > 0 && !proc_exited(n->pid, NULL);
}

int node_kill(struct node *n)
{
	if (n->pid <= 0)
		return 0;
	proc_slot_set_pid(n->slot, SLOT_SERVER, 0);
	proc_kill(n->pid, n->marker);
	n->pid = 0;
	return 0;
}

int node_stop(struct node *n)
{
	uint64_t deadline = clock_now_ns() + NODE_STOP_TIMEOUT_NS;
	int rc = 0;

	if (n->pid <= 0)
		return 0;
	if (!proc_exited(n->pid, NULL)) {
		kill(n->pid, n->ops->stop_signal ? n->ops->stop_signal : SIGTERM);
		while (!proc_exited(n->pid, NULL) && clock_now_ns() < deadline)
			clock_sleep_ns(20 * NS_PER_MS);
		if (!proc_exited(n->pid, NULL)) {
			if (!n->quiet)
				log_line("%s did not stop within %llus; killing it", n->name,
					 (unsigned long long)(NODE_STOP_TIMEOUT_NS / NS_PER_S));
			rc = NODE_EKILLED;
		}
	}
	/* Helpers that outlive the VM for a moment (erl_child_setup, df) go too. */
	node_kill(n);
	return rc;
}

int node_restart(struct node *n, char *err, size_t errlen)
{
	if (node_running(n))
		node_stop(n);
	return node_boot(n, "restarting", err, errlen);
}

void node_detach(struct node *n)
{
	if (!n)
		return;
	proc_slot_release(n->slot);
	if (n->ops->release)
		n->ops->release(n);
	strv_release(&n->argv);
	strv_release(&n->envp);
	free(n->dir);
	free(n);
}

void node_free(struct node *n)
{
	if (!n)
		return;
	node_stop(n);
	if (n->ops->stop_helpers)
		n->ops->stop_helpers(n);
	proc_slot_keep_dir(n->slot);
	if (n->dir && !n->keep_dir)
		files_rm_rf(n->dir);
	node_detach(n);
}

/* ---------- by name ---------- */

int node_procs_alive(const char *name)
{
	char m[PROC_MARKER_MAX];

	snprintf(m, sizeof(m), MARKER_PREFIX "%s", name);
	return proc_count(m, true);
}

bool node_pid_is(pid_t pid, const char *name)
{
	char m[PROC_MARKER_MAX];

	snprintf(m, sizeof(m), MARKER_PREFIX "%s", name);
	return proc_has_marker(pid, m);
}

void node_kill_named(const char *name)
{
	char m[PROC_MARKER_MAX];

	snprintf(m, sizeof(m), MARKER_PREFIX "%s", name);
	proc_kill_marked(m, true);
}
