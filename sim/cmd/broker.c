/* broker.c — `dupsim broker start|stop|status`: the persistent RabbitMQ node and its state file. */
#include "cmd/broker.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/files.h"
#include "core/log.h"
#include "core/net.h"
#include "nodes/node.h"
#include "nodes/proc.h"
#include "nodes/rabbitmq.h"

/* ---------- the persistent node: state file and `dupsim broker` ---------- */

struct pstate {
	int pid, epmd_pid;
	char node[64];
	unsigned amqp_port, dist_port, epmd_port;
	char url[96];
	char dir[PATH_MAX];
};

static int state_dir(char *buf, size_t len, char *err, size_t errlen)
{
	const char *s = getenv("DUPSIM_STATE_DIR"), *x = getenv("XDG_STATE_HOME"), *h = getenv("HOME");
	int n;

	if (s && *s)
		n = snprintf(buf, len, "%s", s);
	else if (x && *x)
		n = snprintf(buf, len, "%s/dupsim", x);
	else if (h && *h)
		n = snprintf(buf, len, "%s/.local/state/dupsim", h);
	else
		return log_seterr(err, errlen, "no state folder: set DUPSIM_STATE_DIR (or HOME)");
	if (n < 0 || (size_t)n >= len)
		return log_seterr(err, errlen, "state folder path too long");
	return 0;
}

/* 0, or -1 when the path does not fit. */
static int state_path(char *buf, size_t len, const char *sdir)
{
	return snprintf(buf, len, "%s/broker.state", sdir) < (int)len ? 0 : -1;
}

static int state_read(const char *sdir, struct pstate *st)
{
	char path[PATH_MAX], *text, *save = NULL;
	int have = 0;

	memset(st, 0, sizeof(*st));
	if (state_path(path, sizeof(path), sdir) < 0)
		return -1;
	text = files_read(path, NULL);
	if (!text)
		return -1;
	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(l, '=');
		const char *v;

		if (!eq)
			continue;
		*eq = '\0';
		v = eq + 1;
		if (strcmp(l, "pid") == 0)
			have |= (st->pid = atoi(v)) > 0;
		else if (strcmp(l, "epmd_pid") == 0)
			st->epmd_pid = atoi(v);
		else if (strcmp(l, "node") == 0)
			have |= (snprintf(st->node, sizeof(st->node), "%s", v) > 0) << 1;
		else if (strcmp(l, "amqp_port") == 0)
			have |= ((st->amqp_port = (unsigned)atoi(v)) > 0) << 2;
		else if (strcmp(l, "dist_port") == 0)
			st->dist_port = (unsigned)atoi(v);
		else if (strcmp(l, "epmd_port") == 0)
			st->epmd_port = (unsigned)atoi(v);
		else if (strcmp(l, "url") == 0)
			have |= (snprintf(st->url, sizeof(st->url), "%s", v) > 0) << 3;
		else if (strcmp(l, "dir") == 0)
			snprintf(st->dir, sizeof(st->dir), "%s", v);
	}
	free(text);
	return have == 15 ? 0 : -1;
}

/* Its process is still this node (not a recycled pid, not a zombie) and it takes connections. */
static bool pstate_alive(const struct pstate *st)
{
	return node_pid_is(st->pid, st->node) && st->amqp_port < 65536 && net_port_open((uint16_t)st->amqp_port);
}

int broker_find_persistent(char *url, size_t len)
{
	char sdir[PATH_MAX];
	struct pstate st;

	if (state_dir(sdir, sizeof(sdir), NULL, 0) < 0 || state_read(sdir, &st) < 0 || !pstate_alive(&st))
		return -1;
	if (snprintf(url, len, "%s", st.url) >= (int)len)
		return -1;
	return 0;
}

/* Exclusive lock on the state folder for start/stop; -1 with err. */
static int state_lock(const char *sdir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int fd;

	if (files_mkdir_p(sdir, 0700) < 0)
		return log_seterr(err, errlen, "cannot create %s: %s", sdir, strerror(errno));
	snprintf(path, sizeof(path), "%s/lock", sdir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return log_seterr(err, errlen, "cannot open %s: %s", path, strerror(errno));
	if (flock(fd, LOCK_EX) < 0) {
		int e = errno;

		close(fd);
		return log_seterr(err, errlen, "cannot lock %s: %s", path, strerror(e));
	}
	return fd;
}

/* The node folder recorded in a state file, only if it lies inside sdir (never rm -rf elsewhere). */
static bool dir_inside(const char *dir, const char *sdir)
{
	size_t n = strlen(sdir);

	return dir[0] == '/' && strncmp(dir, sdir, n) == 0 && dir[n] == '/' && !strstr(dir, "/..");
}

/* Stops the recorded node (SIGTERM, then SIGKILL), its epmd, removes its folder and the state file. */
static int pstate_stop(const char *sdir, const struct pstate *st, bool quiet)
{
	uint64_t deadline = clock_now_ns() + NODE_STOP_TIMEOUT_NS;
	char path[PATH_MAX];
	int rc = 0;

	if (node_pid_is(st->pid, st->node)) {
		kill(st->pid, SIGTERM);
		while (node_pid_is(st->pid, st->node) && clock_now_ns() < deadline)
			clock_sleep_ns(50 * NS_PER_MS);
		if (node_pid_is(st->pid, st->node)) {
			if (!quiet)
				log_line("%s did not stop within 30s; killing it", st->node);
			kill(-st->pid, SIGKILL);
			rc = -1;
		}
	}
	node_kill_named(st->node);
	if (st->dir[0] && dir_inside(st->dir, sdir))
		files_rm_rf(st->dir);
	if (state_path(path, sizeof(path), sdir) == 0)
		unlink(path);
	return rc;
}

static void broker_on_signal(int sig)
{
	proc_cleanup_signal();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Records a started node in the state file; 0 or -1 with errno. */
static int pstate_write(const char *sdir, const struct node *b)
{
	char text[1024 + PATH_MAX], path[PATH_MAX];

	snprintf(text, sizeof(text),
		 "pid=%d\nepmd_pid=%d\nnode=%s\namqp_port=%u\ndist_port=%u\nepmd_port=%u\nurl=%s\ndir=%s\n",
		 (int)node_pid(b), (int)rabbitmq_epmd_pid(b), node_name(b), node_port(b),
		 rabbitmq_port(b, RABBITMQ_PORT_DIST), rabbitmq_port(b, RABBITMQ_PORT_EPMD), node_url(b), node_dir(b));
	if (state_path(path, sizeof(path), sdir) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return files_write_atomic(path, text, strlen(text));
}

static int cli_start(void)
{
	char sdir[PATH_MAX], dir[PATH_MAX], err[1024];
	struct node_opts o = { .dir = dir, .keep_dir = true, .persistent = true };
	struct node *b = NULL;
	struct pstate st;
	int lock;

	if (state_dir(sdir, sizeof(sdir), err, sizeof(err)) < 0 || (lock = state_lock(sdir, err, sizeof(err))) < 0) {
		log_line("broker start: %s", err);
		return 1;
	}
	if (state_read(sdir, &st) == 0) {
		if (pstate_alive(&st)) {
			log_line("a broker is already running (pid %d, folder %s)", st.pid, st.dir);
			printf("%s\n", st.url);
			close(lock);
			return 0;
		}
		pstate_stop(sdir, &st, true); /* stale: whatever is left of it goes */
	}
	if (snprintf(dir, sizeof(dir), "%s/rabbitmq", sdir) >= (int)sizeof(dir)) {
		log_line("broker start: state folder path too long: %s", sdir);
		close(lock);
		return 1;
	}
	files_rm_rf(dir);
	/* Until the state file exists, Ctrl-C must not leave a half-started node behind. */
	signal(SIGINT, broker_on_signal);
	signal(SIGTERM, broker_on_signal);
	signal(SIGHUP, broker_on_signal);
	if (node_new(&b, &rabbitmq_ops, &o, err, sizeof(err)) < 0) {
		log_line("broker start: %s", err);
		files_rm_rf(dir);
		close(lock);
		return 1;
	}
	if (pstate_write(sdir, b) < 0) {
		log_line("broker start: cannot write %s/broker.state: %s", sdir, strerror(errno));
		node_free(b);
		files_rm_rf(dir);
		close(lock);
		return 1;
	}
	printf("%s\n", node_url(b));
	fflush(stdout);
	node_detach(b);
	close(lock);
	return 0;
}

static int cli_stop(void)
{
	char sdir[PATH_MAX], err[512];
	struct pstate st;
	int lock, rc;

	if (state_dir(sdir, sizeof(sdir), err, sizeof(err)) < 0 || (lock = state_lock(sdir, err, sizeof(err))) < 0) {
		log_line("broker stop: %s", err);
		return 1;
	}
	if (state_read(sdir, &st) < 0) {
		char dir[PATH_MAX];

		/* What an interrupted `start` may have left. */
		if (snprintf(dir, sizeof(dir), "%s/rabbitmq", sdir) < (int)sizeof(dir))
			files_rm_rf(dir);
		log_line("no broker running (no state in %s)", sdir);
		close(lock);
		return 0;
	}
	rc = pstate_stop(sdir, &st, false);
	log_line("broker %s stopped%s", st.node, rc < 0 ? " (killed)" : "");
	close(lock);
	return 0;
}

static int cli_status(void)
{
	char sdir[PATH_MAX], err[512];
	struct pstate st;

	if (state_dir(sdir, sizeof(sdir), err, sizeof(err)) < 0) {
		log_line("broker status: %s", err);
		return 3;
	}
	if (state_read(sdir, &st) == 0 && pstate_alive(&st)) {
		printf("running %s (pid %d, folder %s)\n", st.url, st.pid, st.dir);
		return 0;
	}
	printf("not running\n");
	return 3;
}

static const char cli_usage[] =
	"usage: dupsim broker start|stop|status [--help]\n"
	"\n"
	"Keeps one private RabbitMQ node up across runs; `url = embedded` runs use it.\n"
	"State: $DUPSIM_STATE_DIR, else $XDG_STATE_HOME/dupsim, else ~/.local/state/dupsim.\n";

static const char *const cli_help[] = {
	"usage: dupsim broker start\n"
	"Starts the persistent node (127.0.0.1 only, guest/guest) unless one is\n"
	"running, and prints its amqp:// URL on stdout. Exit 0, or 1 on failure.\n",
	"usage: dupsim broker stop\n"
	"Stops the persistent node and removes its folder. Exit 0 (also when none runs).\n",
	"usage: dupsim broker status\n"
	"Prints `running URL ...` and exits 0, or prints `not running` and exits 3.\n",
};

int broker_cli(int argc, char **argv)
{
	static const char *const cmds[] = { "start", "stop", "status" };
	int (*const run[])(void) = { cli_start, cli_stop, cli_status };

	if (argc < 2) {
		fputs(cli_usage, stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		fputs(cli_usage, stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i]) != 0)
			continue;
		for (int j = 2; j < argc; j++) {
			if (strcmp(argv[j], "--help") == 0 || strcmp(argv[j], "-h") == 0) {
				fputs(cli_help[i], stdout);
				return 0;
			}
			log_line("broker %s: unknown argument '%s'", cmds[i], argv[j]);
			fputs(cli_help[i], stderr);
			return 2;
		}
		return run[i]();
	}
	log_line("broker: unknown command '%s'", argv[1]);
	fputs(cli_usage, stderr);
	return 2;
}
