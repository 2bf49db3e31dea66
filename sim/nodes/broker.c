/* broker.c — private RabbitMQ nodes and redis servers: spawn, readiness, stop, kill -9, restart, cleanup, `dupsim broker`. */
#include "nodes/broker.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/files.h"
#include "core/log.h"
#include "core/net.h"

#define RABBITMQ_SERVER "/usr/lib/rabbitmq/bin/rabbitmq-server"
#define NODE_PATH "/usr/bin:/bin"
#define POLL_NS (100 * NS_PER_MS)
#define STOP_TIMEOUT_NS (30 * NS_PER_S)
#define GONE_TIMEOUT_NS (5 * NS_PER_S)
#define EPMD_TIMEOUT_NS (5 * NS_PER_S)
#define DEFAULT_START_MS 60000
#define TAIL_LINES 4

/*
 * Registry of the processes this dupsim started, read by the signal handler.
 * A slot is published by storing owner last (fields first), and pids are
 * taken with atomic_exchange so a signal racing broker_free kills once. owner
 * is the pid of the process that started the node: a fork()ed child (a check
 * test) inherits the table but must not kill its parent's nodes.
 */
#define REG_SLOTS 64
#define MARKER_MAX 96

struct reg_slot {
	atomic_int owner;	 /* 0: free */
	atomic_int pid;		 /* the node's main process, leader of its own group; 0: none */
	atomic_int epmd;	 /* its private epmd; 0: none */
	atomic_bool persistent;	 /* outlives this process: never killed by the cleanup */
	atomic_bool rm_dir;	 /* the cleanup removes dir */
	char marker[2][MARKER_MAX]; /* "DUPSIM_NODE=<name>" of the node and of its epmd */
	char dir[PATH_MAX];
};

static struct reg_slot reg_slots[REG_SLOTS];
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;
static atomic_uint node_seq;

/* What a RabbitMQ node and a redis server have in common. */
struct node {
	char name[64];
	char marker[MARKER_MAX];
	char *dir;
	bool keep_dir, persistent, quiet;
	uint64_t start_timeout_ns;
	struct reg_slot *slot;
	pid_t pid;		/* 0: not running (reaped) */
	char **argv, **envp;
	char log[PATH_MAX];	/* the process's stdout and stderr */
	uint64_t start_ns;	/* duration of the last start until ready */
};

struct broker {
	struct node n;
	uint16_t amqp_port, dist_port, epmd_port;
	char url[96];
	char node_log[PATH_MAX];
	pid_t epmd_pid;
	char epmd_marker[MARKER_MAX];
	char epmd_log[PATH_MAX];
	char **epmd_argv, **epmd_envp;
};

struct redis_node {
	struct node n;
	uint16_t port;
	char url[64];
};

/* ---------- string vectors (argv, envp) ---------- */

struct strv {
	char **v;
	size_t n, cap;
};

__attribute__((format(printf, 2, 3))) static int strv_addf(struct strv *s, const char *fmt, ...)
{
	va_list ap;
	char *str;
	int rc;

	if (s->n + 2 > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		char **nv = realloc(s->v, cap * sizeof(*nv));

		if (!nv)
			return -1;
		s->v = nv;
		s->cap = cap;
	}
	va_start(ap, fmt);
	rc = vasprintf(&str, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return -1;
	s->v[s->n++] = str;
	s->v[s->n] = NULL;
	return 0;
}

static void strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/* ---------- async-signal-safe process and folder primitives ---------- */

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static long sys_getdents(int fd, char *buf, size_t len)
{
	return syscall(SYS_getdents64, fd, buf, len);
}

static pid_t parse_pid(const char *s)
{
	long v = 0;

	if (!*s)
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > INT_MAX / 10)
			return 0;
		v = v * 10 + (*s - '0');
	}
	return (pid_t)v;
}

/* True when /proc/<name>/environ holds the entry marker. Zombies and other users' processes read as empty. */
static bool proc_has_marker_at(int procfd, const char *name, const char *marker)
{
	char path[32], buf[2048];
	size_t nl = strlen(name), mlen = strlen(marker);
	long pos = 0; /* chars of marker matched in the current entry; -1: entry differs */
	ssize_t n;
	int fd;

	if (nl + sizeof("/environ") > sizeof(path))
		return false;
	memcpy(path, name, nl);
	memcpy(path + nl, "/environ", sizeof("/environ"));
	fd = openat(procfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\0') {
				if (pos == (long)mlen) {
					close(fd);
					return true;
				}
				pos = 0;
			} else if (pos >= 0) {
				pos = (size_t)pos < mlen && buf[i] == marker[pos] ? pos + 1 : -1;
			}
		}
	}
	close(fd);
	return false;
}

/*
 * Counts live processes whose environment holds marker, sending them sig
 * when non-zero. Every process of a node inherits its marker, including the
 * ones that leave its process group (erl_child_setup and the port programs
 * it starts call setsid). Only raw syscalls: callable from a signal handler.
 */
static int proc_scan(const char *marker, int sig)
{
	char buf[4096];
	pid_t self = getpid();
	int found = 0, procfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	long n;

	if (procfd < 0)
		return -1;
	while ((n = sys_getdents(procfd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n;) {
			struct linux_dirent64 *e = (struct linux_dirent64 *)(buf + off);
			pid_t pid = parse_pid(e->d_name);

			off += e->d_reclen;
			if (pid <= 0 || pid == self || !proc_has_marker_at(procfd, e->d_name, marker))
				continue;
			found++;
			if (sig)
				kill(pid, sig);
		}
	}
	close(procfd);
	return found;
}

static void sleep_ms_sigsafe(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* SIGKILL every process carrying marker until none is left (or ~5 s passed). */
static void proc_kill_marked(const char *marker)
{
	if (!marker[0])
		return;
	for (int i = 0; i < 500; i++) {
		if (proc_scan(marker, SIGKILL) <= 0)
			return;
		sleep_ms_sigsafe(10);
	}
}

static bool is_dot(const char *s)
{
	return s[0] == '.' && (s[1] == '\0' || (s[1] == '.' && s[2] == '\0'));
}

/* rm -rf with raw syscalls only, for the signal handler; files_rm_rf everywhere else. */
static void rm_tree_sigsafe(int parent, const char *name, int depth)
{
	char buf[1024];
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0) {
		unlinkat(parent, name, 0);
		return;
	}
	/* Entries removed while reading may shift the offsets: read again until empty. */
	for (int pass = 0; pass < 16 && depth < 48; pass++) {
		bool any = false;
		long n;

		lseek(fd, 0, SEEK_SET);
		while ((n = sys_getdents(fd, buf, sizeof(buf))) > 0) {
			for (long off = 0; off < n;) {
				struct linux_dirent64 *e = (struct linux_dirent64 *)(buf + off);

				off += e->d_reclen;
				if (is_dot(e->d_name))
					continue;
				any = true;
				if (e->d_type == DT_DIR ||
				    (unlinkat(fd, e->d_name, 0) < 0 && errno == EISDIR))
					rm_tree_sigsafe(fd, e->d_name, depth + 1);
			}
		}
		if (!any)
			break;
	}
	close(fd);
	unlinkat(parent, name, AT_REMOVEDIR);
}

static void reg_kill_slot(struct reg_slot *s)
{
	pid_t pid = atomic_exchange(&s->pid, 0), epmd = atomic_exchange(&s->epmd, 0);

	/* Kill the groups before reaping their leaders, so their ids can't be reused meanwhile. */
	if (pid > 0)
		kill(-pid, SIGKILL);
	if (epmd > 0)
		kill(-epmd, SIGKILL);
	proc_kill_marked(s->marker[0]);
	proc_kill_marked(s->marker[1]);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	if (epmd > 0)
		waitpid(epmd, NULL, 0);
}

void broker_cleanup_signal(void)
{
	int saved = errno;
	pid_t self = getpid();

	for (int i = 0; i < REG_SLOTS; i++) {
		struct reg_slot *s = &reg_slots[i];

		if (atomic_load(&s->owner) != self || atomic_load(&s->persistent))
			continue;
		reg_kill_slot(s);
		if (atomic_exchange(&s->rm_dir, false))
			rm_tree_sigsafe(AT_FDCWD, s->dir, 0);
	}
	errno = saved;
}

static void reg_atexit(void)
{
	pid_t self = getpid();

	for (int i = 0; i < REG_SLOTS; i++) {
		struct reg_slot *s = &reg_slots[i];

		if (atomic_load(&s->owner) != self || atomic_load(&s->persistent))
			continue;
		reg_kill_slot(s);
		if (atomic_exchange(&s->rm_dir, false))
			files_rm_rf(s->dir);
		atomic_store(&s->owner, 0);
	}
}

static void reg_init(void)
{
	atexit(reg_atexit);
}

static struct reg_slot *reg_claim(const char *marker, const char *epmd_marker, const char *dir, bool rm_dir)
{
	struct reg_slot *found = NULL;

	pthread_once(&reg_once, reg_init);
	pthread_mutex_lock(&reg_lock);
	for (int i = 0; i < REG_SLOTS && !found; i++) {
		struct reg_slot *s = &reg_slots[i];
		int owner = atomic_load(&s->owner);

		/* A slot owned by another pid is the parent's copy after fork(): leave it alone. */
		if (owner != 0)
			continue;
		atomic_store(&s->pid, 0);
		atomic_store(&s->epmd, 0);
		atomic_store(&s->persistent, false);
		snprintf(s->marker[0], sizeof(s->marker[0]), "%s", marker);
		snprintf(s->marker[1], sizeof(s->marker[1]), "%s", epmd_marker ? epmd_marker : "");
		snprintf(s->dir, sizeof(s->dir), "%s", dir);
		atomic_store(&s->rm_dir, rm_dir);
		atomic_store(&s->owner, getpid());
		found = s;
	}
	pthread_mutex_unlock(&reg_lock);
	return found;
}

static void reg_release(struct reg_slot *s)
{
	if (s)
		atomic_store(&s->owner, 0);
}

/* ---------- spawning and waiting ---------- */

/* Only async-signal-safe calls between fork and exec: the parent may have threads. */
static __attribute__((noreturn)) void child_exec(char **argv, char **envp, const char *cwd, int logfd,
						   bool persistent, pid_t parent)
{
	sigset_t none;
	struct sigaction dfl;
	int nul;

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		sigaction(s, &dfl, NULL); /* ignored signals stay ignored across exec otherwise */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
	if (!persistent) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent) /* the parent died before prctl */
			_exit(126);
	}
	nul = open("/dev/null", O_RDONLY);
	if (nul >= 0 && nul != 0) {
		dup2(nul, 0);
		close(nul);
	}
	dup2(logfd, 1);
	dup2(logfd, 2);
	if (syscall(SYS_close_range, 3u, ~0u, 0) < 0)
		for (int fd = 3; fd < 4096; fd++)
			close(fd);
	if (chdir(cwd) < 0) {
		static const char m[] = "dupsim: cannot chdir to the node folder\n";

		(void)!write(2, m, sizeof(m) - 1);
		_exit(127);
	}
	execve(argv[0], argv, envp);
	{
		static const char m[] = "dupsim: exec failed: ";

		(void)!write(2, m, sizeof(m) - 1);
		(void)!write(2, argv[0], strlen(argv[0]));
		(void)!write(2, "\n", 1);
	}
	_exit(127);
}

static int proc_spawn(char **argv, char **envp, const char *cwd, const char *log, bool persistent, pid_t *out,
		      char *err, size_t errlen)
{
	pid_t parent = getpid(), pid;
	int e, logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	if (logfd < 0)
		return log_seterr(err, errlen, "cannot create %s: %s", log, strerror(errno));
	if (logfd <= 2) { /* dup2 onto itself would keep O_CLOEXEC */
		int hi = fcntl(logfd, F_DUPFD_CLOEXEC, 3);

		close(logfd);
		if (hi < 0)
			return log_seterr(err, errlen, "dup: %s", strerror(errno));
		logfd = hi;
	}
	pid = fork();
	if (pid == 0)
		child_exec(argv, envp, cwd, logfd, persistent, parent);
	e = errno;
	close(logfd);
	if (pid < 0)
		return log_seterr(err, errlen, "fork: %s", strerror(e));
	*out = pid;
	return 0;
}

/* 1: exited (not reaped yet, exit status in *code), 0: running. A pid that is not our child counts as exited. */
static int proc_exited(pid_t pid, int *code)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
		if (code)
			*code = -1;
		return 1;
	}
	if (si.si_pid == 0)
		return 0;
	if (code)
		*code = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
	return 1;
}

/* SIGKILL the group, every marked straggler, then reap the leader. */
static void proc_kill_all(pid_t pid, const char *marker)
{
	if (pid > 0)
		kill(-pid, SIGKILL);
	proc_kill_marked(marker);
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
}

/* Reads the last lines of a log into out as "a | b | c"; "" when unreadable. */
static void log_tail(const char *path, int lines, char *out, size_t len)
{
	char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t size;
	ssize_t n;
	char *p, *start;
	size_t o = 0;

	out[0] = '\0';
	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	lseek(fd, size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0, SEEK_SET);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	/* Walk back over `lines` non-blank lines. */
	p = buf + n;
	for (int got = 0; p > buf && got < lines;) {
		char *end = p;

		while (p > buf && p[-1] != '\n')
			p--;
		for (char *q = p; q < end; q++)
			if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
				got++;
				break;
			}
		if (got < lines && p > buf)
			p--;
	}
	start = p;
	for (char *line = strtok_r(start, "\n", &p); line && o + 1 < len; line = strtok_r(NULL, "\n", &p)) {
		while (*line == ' ' || *line == '\t')
			line++;
		if (!*line)
			continue;
		if (o && o + 3 < len) {
			memcpy(out + o, " | ", 3);
			o += 3;
		}
		for (; *line && o + 1 < len; line++)
			out[o++] = (unsigned char)*line < 0x20 ? ' ' : *line;
	}
	out[o] = '\0';
}

/* True when the last 64 KiB of a file contain needle. */
static bool file_contains(const char *path, const char *needle)
{
	char *buf = malloc(65536 + 1);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t size;
	ssize_t n = -1;
	bool found = false;

	if (buf && fd >= 0) {
		size = lseek(fd, 0, SEEK_END);
		lseek(fd, size > 65536 ? size - 65536 : 0, SEEK_SET);
		n = read(fd, buf, 65536);
	}
	if (n > 0) {
		buf[n] = '\0';
		found = memmem(buf, (size_t)n, needle, strlen(needle)) != NULL;
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	return found;
}

static bool file_nonempty(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && st.st_size > 0;
}

/* ---------- the shared life cycle ---------- */

static void make_name(char *buf, size_t len, const char *kind)
{
	unsigned short tag;

	if (getrandom(&tag, sizeof(tag), GRND_NONBLOCK) != sizeof(tag))
		tag = (unsigned short)(clock_now_ns() ^ (uint64_t)getpid());
	/* The random tag keeps a recycled pid from naming a node like an old persistent one. */
	snprintf(buf, len, "dupsim%s-%d-%u-%04x", kind, (int)getpid(), atomic_fetch_add(&node_seq, 1), tag);
}

#define OWNER_FILE "dupsim.owner"

/* Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat); 0 when it is gone. */
static unsigned long long proc_start_time(pid_t pid)
{
	char path[32], buf[1024], *p;
	unsigned long long t = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* the command name may hold blanks and parentheses */
	if (!p || p[1] != ' ' || p[2] == 'Z')
		return 0;
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu", &t) != 1)
		return 0;
	return t;
}

/*
 * A temporary node folder names its owner (pid, start time, marker). A
 * dupsim killed with SIGKILL (a check test past its timeout, Ctrl-C under
 * libcheck, which SIGKILLs the test's process group) can't remove its
 * folders; the next dupsim of the same user removes those whose owner is
 * gone and whose node has no live process left.
 */
static void sweep_stale_dirs(const char *base, bool quiet)
{
	DIR *d = opendir(base);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char dir[PATH_MAX], *text, marker[MARKER_MAX], epmd[MARKER_MAX + 8];
		unsigned long long start;
		struct stat st;
		int pid;

		if (strncmp(e->d_name, "dupsim-", 7) != 0 || strlen(e->d_name) != 13)
			continue;
		if (snprintf(dir, sizeof(dir), "%s/%s/" OWNER_FILE, base, e->d_name) >= (int)sizeof(dir))
			continue;
		if (lstat(dir, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid())
			continue;
		text = files_read(dir, NULL);
		if (!text)
			continue;
		if (sscanf(text, "%d %llu %95s", &pid, &start, marker) == 3 && pid > 0 &&
		    proc_start_time(pid) != start && proc_scan(marker, 0) == 0 &&
		    snprintf(epmd, sizeof(epmd), "%s-epmd", marker) > 0 && proc_scan(epmd, 0) == 0) {
			dir[strlen(dir) - sizeof(OWNER_FILE)] = '\0';
			if (files_rm_rf(dir) == 0 && !quiet)
				log_line("removed %s, left behind by a dupsim that was killed", dir);
		}
		free(text);
	}
	closedir(d);
}

static pthread_mutex_t sweep_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t sweep_pid;
static char sweep_base[PATH_MAX];

/* Once per process and folder. */
static void sweep_tmp(const char *base, bool quiet)
{
	bool todo;

	pthread_mutex_lock(&sweep_lock);
	todo = sweep_pid != getpid() || strcmp(sweep_base, base) != 0;
	if (todo) {
		sweep_pid = getpid();
		snprintf(sweep_base, sizeof(sweep_base), "%s", base);
	}
	pthread_mutex_unlock(&sweep_lock);
	if (todo)
		sweep_stale_dirs(base, quiet);
}

static int node_init(struct node *n, const struct broker_opts *opts, const char *kind, char *err, size_t errlen)
{
	const char *keep = getenv("DUPSIM_KEEP");
	char owner[PATH_MAX], text[160];

	n->persistent = opts->persistent;
	n->keep_dir = opts->keep_dir || (keep && *keep && strcmp(keep, "0") != 0);
	n->quiet = opts->quiet;
	n->start_timeout_ns = (uint64_t)(opts->start_timeout_ms > 0 ? opts->start_timeout_ms : DEFAULT_START_MS) *
			      NS_PER_MS;
	make_name(n->name, sizeof(n->name), kind);
	snprintf(n->marker, sizeof(n->marker), "DUPSIM_NODE=%s", n->name);
	if (opts->dir) {
		n->dir = strdup(opts->dir);
		if (!n->dir)
			return log_seterr(err, errlen, "out of memory");
		if (files_mkdir_p(n->dir, 0700) < 0)
			return log_seterr(err, errlen, "cannot create %s: %s", n->dir, strerror(errno));
	} else {
		const char *tmp = getenv("TMPDIR");

		if (asprintf(&n->dir, "%s/dupsim-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0) {
			n->dir = NULL;
			return log_seterr(err, errlen, "out of memory");
		}
		if (!mkdtemp(n->dir)) {
			int e = errno;

			free(n->dir);
			n->dir = NULL;
			return log_seterr(err, errlen, "cannot create a folder under %s: %s (set TMPDIR)",
					tmp && *tmp ? tmp : "/tmp", strerror(e));
		}
		sweep_tmp(tmp && *tmp ? tmp : "/tmp", n->quiet);
		snprintf(text, sizeof(text), "%d %llu %s\n", (int)getpid(), proc_start_time(getpid()), n->marker);
		if (snprintf(owner, sizeof(owner), "%s/" OWNER_FILE, n->dir) >= (int)sizeof(owner) ||
		    files_write_atomic(owner, text, strlen(text)) < 0)
			return log_seterr(err, errlen, "cannot write %s: %s", owner, strerror(errno));
	}
	return 0;
}

static int node_spawn(struct node *n, char *err, size_t errlen)
{
	if (n->pid > 0) { /* died on its own: reap what is left */
		proc_kill_all(n->pid, n->marker);
		n->pid = 0;
	}
	if (proc_spawn(n->argv, n->envp, n->dir, n->log, n->persistent, &n->pid, err, errlen) < 0)
		return -1;
	if (n->slot)
		atomic_store(&n->slot->pid, n->pid);
	return 0;
}

static bool node_running(const struct node *n)
{
	return n->pid > 0 && !proc_exited(n->pid, NULL);
}

static int node_kill(struct node *n)
{
	if (n->pid <= 0)
		return 0;
	if (n->slot)
		atomic_store(&n->slot->pid, 0);
	proc_kill_all(n->pid, n->marker);
	n->pid = 0;
	return 0;
}

/* SIGTERM, wait up to 30 s, then SIGKILL. 0 when it stopped by itself, -1 when it had to be killed. */
static int node_stop(struct node *n)
{
	uint64_t deadline = clock_now_ns() + STOP_TIMEOUT_NS;
	int rc = 0;

	if (n->pid <= 0)
		return 0;
	if (!proc_exited(n->pid, NULL)) {
		kill(n->pid, SIGTERM);
		while (!proc_exited(n->pid, NULL) && clock_now_ns() < deadline)
			clock_sleep_ns(20 * NS_PER_MS);
		if (!proc_exited(n->pid, NULL)) {
			if (!n->quiet)
				log_line("%s did not stop within %llus; killing it", n->name,
					 (unsigned long long)(STOP_TIMEOUT_NS / NS_PER_S));
			rc = -1;
		}
	}
	/* Helpers that outlive the VM for a moment (erl_child_setup, df) go too. */
	node_kill(n);
	return rc;
}

typedef bool (*ready_fn)(void *ctx);

/* Polls ready() every 100 ms until it holds; fails at once if the process exits. */
static int node_wait_ready(struct node *n, ready_fn ready, void *ctx, const char *what, const char *log_hint,
			   char *err, size_t errlen)
{
	uint64_t t0 = clock_now_ns(), deadline = t0 + n->start_timeout_ns;
	char tail[640], tf[32];
	const char *log;
	int code;

	for (;;) {
		if (proc_exited(n->pid, &code)) {
			log = file_nonempty(n->log) ? n->log : log_hint;
			log_tail(log, TAIL_LINES, tail, sizeof(tail));
			node_kill(n);
			return log_seterr(err, errlen, "%s %s exited with status %d while starting; log %s: %s",
					what, n->name, code, log, tail[0] ? tail : "(empty)");
		}
		if (ready(ctx))
			break;
		if (clock_now_ns() >= deadline) {
			log = file_nonempty(log_hint) ? log_hint : n->log;
			log_tail(log, TAIL_LINES, tail, sizeof(tail));
			node_kill(n);
			return log_seterr(err, errlen, "%s %s not ready after %s; log %s: %s", what, n->name,
					clock_fmt_duration(n->start_timeout_ns, tf, sizeof(tf)), log,
					tail[0] ? tail : "(empty)");
		}
		clock_sleep_ns(POLL_NS);
	}
	n->start_ns = clock_now_ns() - t0;
	return 0;
}

static void node_release(struct node *n)
{
	strv_free(n->argv);
	strv_free(n->envp);
	free(n->dir);
}

/* Stops (or kills), removes the folder unless kept, frees the strings. */
static void node_free(struct node *n)
{
	if (node_stop(n) < 0)
		node_kill(n);
	if (n->slot)
		atomic_store(&n->slot->rm_dir, false);
	if (n->dir && !n->keep_dir)
		files_rm_rf(n->dir);
	reg_release(n->slot);
	node_release(n);
}

static int write_text(const char *dir, const char *name, const char *text, char *err, size_t errlen)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (files_write_atomic(path, text, strlen(text)) < 0)
		return log_seterr(err, errlen, "cannot write %s: %s", path, strerror(errno));
	return 0;
}

/* Three distinct free loopback ports. */
static int free_ports(uint16_t *ports, int n, char *err, size_t errlen)
{
	for (int i = 0; i < n; i++) {
		for (int tries = 0;; tries++) {
			bool dup = false;

			if (net_free_port(&ports[i]) < 0)
				return log_seterr(err, errlen, "no free port on 127.0.0.1: %s", strerror(errno));
			for (int j = 0; j < i; j++)
				dup |= ports[j] == ports[i];
			if (!dup)
				break;
			if (tries > 20)
				return log_seterr(err, errlen, "no distinct free ports on 127.0.0.1");
		}
	}
	return 0;
}

static const char *exe_or_env(const char *envname, const char *dflt)
{
	const char *v = getenv(envname);

	return v && *v ? v : dflt;
}

/* ---------- RabbitMQ ---------- */

struct login_ctx {
	uint16_t port;
};

/* True when 127.0.0.1:port accepts an AMQP login as guest. */
static bool rmq_can_login(uint16_t port)
{
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s;
	struct timeval open_tv = { 0, 500000 }, hs_tv = { 2, 0 };
	amqp_rpc_reply_t r;
	bool ok = false;

	if (!c)
		return false;
	s = amqp_tcp_socket_new(c);
	if (!s || amqp_socket_open_noblock(s, "127.0.0.1", port, &open_tv) != AMQP_STATUS_OK)
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

static bool rmq_ready(void *ctx)
{
	return rmq_can_login(((struct login_ctx *)ctx)->port);
}

static int epmd_start(struct broker *b, char *err, size_t errlen)
{
	uint64_t deadline = clock_now_ns() + EPMD_TIMEOUT_NS;
	char tail[400];
	int code;

	if (b->epmd_pid > 0) {
		if (!proc_exited(b->epmd_pid, NULL))
			return 0;
		proc_kill_all(b->epmd_pid, b->epmd_marker);
		b->epmd_pid = 0;
	}
	if (proc_spawn(b->epmd_argv, b->epmd_envp, b->n.dir, b->epmd_log, b->n.persistent, &b->epmd_pid, err,
		       errlen) < 0)
		return -1;
	if (b->n.slot)
		atomic_store(&b->n.slot->epmd, b->epmd_pid);
	while (!net_port_open(b->epmd_port)) {
		if (proc_exited(b->epmd_pid, &code) || clock_now_ns() >= deadline) {
			log_tail(b->epmd_log, TAIL_LINES, tail, sizeof(tail));
			if (b->n.slot)
				atomic_store(&b->n.slot->epmd, 0);
			proc_kill_all(b->epmd_pid, b->epmd_marker);
			b->epmd_pid = 0;
			return log_seterr(err, errlen, "epmd on 127.0.0.1:%u did not come up; log %s: %s",
					b->epmd_port, b->epmd_log, tail[0] ? tail : "(empty)");
		}
		clock_sleep_ns(10 * NS_PER_MS);
	}
	return 0;
}

static void epmd_stop(struct broker *b)
{
	if (b->n.slot)
		atomic_store(&b->n.slot->epmd, 0);
	if (b->epmd_pid > 0 || b->epmd_marker[0])
		proc_kill_all(b->epmd_pid, b->epmd_marker);
	b->epmd_pid = 0;
}

static int rmq_files(struct broker *b, char *err, size_t errlen)
{
	static const char *const sub[] = { "etc", "etc/conf.d", "home", "log", "mnesia" };
	char path[PATH_MAX], conf[256];

	for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", b->n.dir, sub[i]);
		if (files_mkdir_p(path, 0700) < 0)
			return log_seterr(err, errlen, "cannot create %s: %s", path, strerror(errno));
	}
	snprintf(conf, sizeof(conf),
		 "# written by dupsim for a private node\n"
		 "listeners.tcp.default = 127.0.0.1:%u\n"
		 "log.console = false\n"
		 "log.file.level = info\n",
		 b->amqp_port);
	if (write_text(b->n.dir, "etc/rabbitmq.conf", conf, err, errlen) < 0 ||
	    write_text(b->n.dir, "etc/enabled_plugins", "[].\n", err, errlen) < 0 ||
	    write_text(b->n.dir, "etc/rabbitmq-env.conf", "", err, errlen) < 0)
		return -1;
	return 0;
}

static int rmq_env(struct broker *b, const char *server, const char *epmd, char *err, size_t errlen)
{
	struct strv a = { 0 }, e = { 0 }, pa = { 0 }, pe = { 0 };
	const char *d = b->n.dir, *nm = b->n.name;
	bool custom = getenv("DUPSIM_RABBITMQ_SERVER") && *getenv("DUPSIM_RABBITMQ_SERVER");
	const char *path = custom && getenv("PATH") ? getenv("PATH") : NODE_PATH;
	int rc = 0;

	rc |= strv_addf(&a, "%s", server);
	rc |= strv_addf(&e, "PATH=%s", path);
	rc |= strv_addf(&e, "LANG=C.UTF-8");
	rc |= strv_addf(&e, "LC_ALL=C.UTF-8");
	rc |= strv_addf(&e, "HOME=%s/home", d); /* the Erlang cookie lives there */
	rc |= strv_addf(&e, "%s", b->n.marker);
	/* Makes the script exec erl (and erl exec beam.smp) instead of running it
	 * under a signal-forwarding sh: our child is then the VM itself, keeps the
	 * death signal, and SIGTERM reaches it directly (a graceful stop). */
	rc |= strv_addf(&e, "detached=1");
	rc |= strv_addf(&e, "RABBITMQ_NODENAME=%s@localhost", nm);
	rc |= strv_addf(&e, "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1");
	rc |= strv_addf(&e, "RABBITMQ_NODE_PORT=%u", b->amqp_port);
	rc |= strv_addf(&e, "RABBITMQ_DIST_PORT=%u", b->dist_port);
	rc |= strv_addf(&e, "ERL_EPMD_PORT=%u", b->epmd_port);
	rc |= strv_addf(&e, "ERL_EPMD_ADDRESS=127.0.0.1");
	rc |= strv_addf(&e, "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1} +B i");
	rc |= strv_addf(&e, "RABBITMQ_CONF_ENV_FILE=%s/etc/rabbitmq-env.conf", d);
	rc |= strv_addf(&e, "RABBITMQ_CONFIG_FILE=%s/etc/rabbitmq.conf", d);
	rc |= strv_addf(&e, "RABBITMQ_CONFIG_FILES=%s/etc/conf.d", d);
	rc |= strv_addf(&e, "RABBITMQ_ADVANCED_CONFIG_FILE=%s/etc/advanced.config", d);
	rc |= strv_addf(&e, "RABBITMQ_ENABLED_PLUGINS_FILE=%s/etc/enabled_plugins", d);
	rc |= strv_addf(&e, "RABBITMQ_MOTD_FILE=%s/etc/motd", d);
	rc |= strv_addf(&e, "RABBITMQ_MNESIA_BASE=%s/mnesia", d);
	rc |= strv_addf(&e, "RABBITMQ_MNESIA_DIR=%s/mnesia/%s", d, nm);
	rc |= strv_addf(&e, "RABBITMQ_PID_FILE=%s/mnesia/%s.pid", d, nm);
	rc |= strv_addf(&e, "RABBITMQ_LOG_BASE=%s/log", d);
	rc |= strv_addf(&e, "RABBITMQ_LOGS=%s/log/rabbit.log", d);
	rc |= strv_addf(&e, "ERL_CRASH_DUMP=%s/log/erl_crash.dump", d);

	rc |= strv_addf(&pa, "%s", epmd);
	rc |= strv_addf(&pa, "-port");
	rc |= strv_addf(&pa, "%u", b->epmd_port);
	rc |= strv_addf(&pa, "-address");
	rc |= strv_addf(&pa, "127.0.0.1");
	rc |= strv_addf(&pe, "PATH=%s", path);
	rc |= strv_addf(&pe, "HOME=%s/home", d);
	rc |= strv_addf(&pe, "%s", b->epmd_marker);
	rc |= strv_addf(&pe, "ERL_EPMD_PORT=%u", b->epmd_port);
	rc |= strv_addf(&pe, "ERL_EPMD_ADDRESS=127.0.0.1");
	b->n.argv = a.v;
	b->n.envp = e.v;
	b->epmd_argv = pa.v;
	b->epmd_envp = pe.v;
	if (rc)
		return log_seterr(err, errlen, "out of memory");
	return 0;
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

/* 0; -2 when a port was taken (epmd's, or the node's: eaddrinuse); -1 otherwise. */
static int broker_boot(struct broker *b, const char *verb, char *err, size_t errlen)
{
	struct login_ctx ctx = { b->amqp_port };

	if (!b->n.quiet)
		log_line("%s RabbitMQ node %s on 127.0.0.1:%u (folder %s)", verb, b->n.name, b->amqp_port, b->n.dir);
	if (epmd_start(b, err, errlen) < 0)
		return -2;
	if (node_spawn(&b->n, err, errlen) < 0)
		return -1;
	if (node_wait_ready(&b->n, rmq_ready, &ctx, "rabbitmq node", b->node_log, err, errlen) < 0)
		return file_contains(b->n.log, "eaddrinuse") ? -2 : -1;
	if (!b->n.quiet)
		log_line("RabbitMQ node %s ready in %.1fs", b->n.name, (double)b->n.start_ns / NS_PER_S);
	return 0;
}

int broker_start(struct broker **out, const struct broker_opts *opts, char *err, size_t errlen)
{
	static const struct broker_opts dflt = { 0 };
	struct broker *b = calloc(1, sizeof(*b));
	const char *server = exe_or_env("DUPSIM_RABBITMQ_SERVER", RABBITMQ_SERVER), *epmd;
	char epmd_buf[PATH_MAX];
	uint16_t ports[3];
	int rc;

	*out = NULL;
	if (!opts)
		opts = &dflt;
	if (!b)
		return log_seterr(err, errlen, "out of memory");
	if (access(server, X_OK) < 0) {
		log_seterr(err, errlen, "cannot run %s: %s (install rabbitmq-server, or set DUPSIM_RABBITMQ_SERVER)",
			 server, strerror(errno));
		goto fail;
	}
	epmd = find_epmd(epmd_buf, sizeof(epmd_buf));
	if (!epmd) {
		log_seterr(err, errlen, "epmd not found in /usr/bin or PATH (install erlang-base, or set DUPSIM_EPMD)");
		goto fail;
	}
	if (node_init(&b->n, opts, "", err, errlen) < 0)
		goto fail;
	snprintf(b->epmd_marker, sizeof(b->epmd_marker), "DUPSIM_NODE=%s-epmd", b->n.name);
	snprintf(b->n.log, sizeof(b->n.log), "%s/log/console.log", b->n.dir);
	snprintf(b->node_log, sizeof(b->node_log), "%s/log/rabbit.log", b->n.dir);
	snprintf(b->epmd_log, sizeof(b->epmd_log), "%s/log/epmd.log", b->n.dir);
	b->n.slot = reg_claim(b->n.marker, b->epmd_marker, b->n.dir, !b->n.keep_dir);
	if (!b->n.slot) {
		log_seterr(err, errlen, "too many nodes in one process (%d)", REG_SLOTS);
		goto fail;
	}
	/* A free port can be taken between the probe and the node's bind: one more try with new ports. */
	for (int attempt = 0;; attempt++) {
		if (free_ports(ports, 3, err, errlen) < 0)
			goto fail;
		b->amqp_port = ports[0];
		b->dist_port = ports[1];
		b->epmd_port = ports[2];
		snprintf(b->url, sizeof(b->url), "amqp://guest:guest@127.0.0.1:%u/", b->amqp_port);
		strv_free(b->n.argv);
		strv_free(b->n.envp);
		strv_free(b->epmd_argv);
		strv_free(b->epmd_envp);
		b->n.argv = b->n.envp = b->epmd_argv = b->epmd_envp = NULL;
		if (rmq_files(b, err, errlen) < 0 || rmq_env(b, server, epmd, err, errlen) < 0)
			goto fail;
		rc = broker_boot(b, "starting", err, errlen);
		if (rc == 0)
			break;
		if (attempt > 0 || rc != -2)
			goto fail;
		epmd_stop(b);
		if (!b->n.quiet)
			log_line("%s: a port was taken meanwhile; trying other ports", b->n.name);
	}
	atomic_store(&b->n.slot->persistent, b->n.persistent);
	*out = b;
	return 0;
fail:
	broker_free(b);
	return -1;
}

const char *broker_url(const struct broker *b)
{
	return b->url;
}

uint16_t broker_amqp_port(const struct broker *b)
{
	return b->amqp_port;
}

const char *broker_dir(const struct broker *b)
{
	return b->n.dir;
}

const char *broker_node_name(const struct broker *b)
{
	return b->n.name;
}

int broker_pid(const struct broker *b)
{
	return b->n.pid;
}

uint64_t broker_last_start_ns(const struct broker *b)
{
	return b->n.start_ns;
}

bool broker_running(const struct broker *b)
{
	return node_running(&b->n);
}

int broker_stop(struct broker *b)
{
	return node_stop(&b->n);
}

int broker_kill(struct broker *b)
{
	return node_kill(&b->n);
}

int broker_restart(struct broker *b, char *err, size_t errlen)
{
	if (node_running(&b->n))
		node_stop(&b->n);
	return broker_boot(b, "restarting", err, errlen) < 0 ? -1 : 0;
}

void broker_free(struct broker *b)
{
	if (!b)
		return;
	if (b->n.slot)
		atomic_store(&b->n.slot->persistent, false);
	node_stop(&b->n);
	epmd_stop(b);
	node_free(&b->n);
	strv_free(b->epmd_argv);
	strv_free(b->epmd_envp);
	free(b);
}

/* Forgets a node without stopping it (a persistent node outlives this process). */
static void broker_detach(struct broker *b)
{
	reg_release(b->n.slot);
	node_release(&b->n);
	strv_free(b->epmd_argv);
	strv_free(b->epmd_envp);
	free(b);
}

int broker_procs_alive(const char *node_name)
{
	char m[MARKER_MAX];
	int a, e;

	snprintf(m, sizeof(m), "DUPSIM_NODE=%s", node_name);
	a = proc_scan(m, 0);
	snprintf(m, sizeof(m), "DUPSIM_NODE=%s-epmd", node_name);
	e = proc_scan(m, 0);
	return a < 0 || e < 0 ? -1 : a + e;
}

/* ---------- redis ---------- */

/* True when redis on 127.0.0.1:port answers PING with PONG (not -LOADING). */
static bool redis_ready(void *ctx)
{
	uint16_t port = *(uint16_t *)ctx;
	struct timeval tv = { 0, 500000 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *r;
	bool ok = false;

	if (!c || c->err)
		goto out;
	redisSetTimeout(c, tv);
	r = redisCommand(c, "PING");
	ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
	freeReplyObject(r);
out:
	redisFree(c);
	return ok;
}

static int redis_boot(struct redis_node *r, const char *verb, char *err, size_t errlen)
{
	if (!r->n.quiet)
		log_line("%s redis-server %s on 127.0.0.1:%u (folder %s)", verb, r->n.name, r->port, r->n.dir);
	if (node_spawn(&r->n, err, errlen) < 0 ||
	    node_wait_ready(&r->n, redis_ready, &r->port, "redis-server", r->n.log, err, errlen) < 0)
		return -1;
	if (!r->n.quiet)
		log_line("redis-server %s ready in %.2fs", r->n.name, (double)r->n.start_ns / NS_PER_S);
	return 0;
}

int redis_node_start(struct redis_node **out, const struct broker_opts *opts, char *err, size_t errlen)
{
	static const struct broker_opts dflt = { 0 };
	struct redis_node *r = calloc(1, sizeof(*r));
	const char *server = exe_or_env("DUPSIM_REDIS_SERVER", "/usr/bin/redis-server");
	struct strv a = { 0 }, e = { 0 };
	int rc = 0;

	*out = NULL;
	if (!opts)
		opts = &dflt;
	if (!r)
		return log_seterr(err, errlen, "out of memory");
	if (access(server, X_OK) < 0) {
		log_seterr(err, errlen, "cannot run %s: %s (install redis-server, or set DUPSIM_REDIS_SERVER)", server,
			 strerror(errno));
		goto fail;
	}
	if (node_init(&r->n, opts, "-redis", err, errlen) < 0 || free_ports(&r->port, 1, err, errlen) < 0)
		goto fail;
	snprintf(r->url, sizeof(r->url), "redis://127.0.0.1:%u", r->port);
	snprintf(r->n.log, sizeof(r->n.log), "%s/redis.log", r->n.dir);
	r->n.slot = reg_claim(r->n.marker, NULL, r->n.dir, !r->n.keep_dir);
	if (!r->n.slot) {
		log_seterr(err, errlen, "too many nodes in one process (%d)", REG_SLOTS);
		goto fail;
	}
	/* No RDB snapshots; an append-only file written to the OS before every
	 * reply, so whatever redis acknowledged survives a kill -9. Not
	 * everysec: while a background fsync is slow (a loaded machine) redis
	 * postpones those writes for up to 2 s and still replies, and a kill -9
	 * then loses acknowledged keys. fsync is left to the OS: a machine
	 * crash is not what dupsim simulates. */
	rc |= strv_addf(&a, "%s", server);
	rc |= strv_addf(&a, "--port");
	rc |= strv_addf(&a, "%u", r->port);
	rc |= strv_addf(&a, "--bind");
	rc |= strv_addf(&a, "127.0.0.1");
	rc |= strv_addf(&a, "--dir");
	rc |= strv_addf(&a, "%s", r->n.dir);
	rc |= strv_addf(&a, "--save");
	rc |= strv_addf(&a, "%s", "");
	rc |= strv_addf(&a, "--appendonly");
	rc |= strv_addf(&a, "yes");
	rc |= strv_addf(&a, "--appendfsync");
	rc |= strv_addf(&a, "no");
	rc |= strv_addf(&a, "--daemonize");
	rc |= strv_addf(&a, "no");
	rc |= strv_addf(&a, "--logfile");
	rc |= strv_addf(&a, "%s", "");
	rc |= strv_addf(&e, "PATH=%s", NODE_PATH);
	rc |= strv_addf(&e, "HOME=%s", r->n.dir);
	rc |= strv_addf(&e, "LANG=C.UTF-8");
	rc |= strv_addf(&e, "%s", r->n.marker);
	r->n.argv = a.v;
	r->n.envp = e.v;
	if (rc) {
		log_seterr(err, errlen, "out of memory");
		goto fail;
	}
	if (redis_boot(r, "starting", err, errlen) < 0)
		goto fail;
	atomic_store(&r->n.slot->persistent, r->n.persistent);
	*out = r;
	return 0;
fail:
	redis_node_free(r);
	return -1;
}

const char *redis_node_url(const struct redis_node *r)
{
	return r->url;
}

uint16_t redis_node_port(const struct redis_node *r)
{
	return r->port;
}

const char *redis_node_name(const struct redis_node *r)
{
	return r->n.name;
}

const char *redis_node_dir(const struct redis_node *r)
{
	return r->n.dir;
}

int redis_node_pid(const struct redis_node *r)
{
	return r->n.pid;
}

bool redis_node_running(const struct redis_node *r)
{
	return node_running(&r->n);
}

int redis_node_stop(struct redis_node *r)
{
	return node_stop(&r->n);
}

int redis_node_kill(struct redis_node *r)
{
	return node_kill(&r->n);
}

int redis_node_restart(struct redis_node *r, char *err, size_t errlen)
{
	if (node_running(&r->n))
		node_stop(&r->n);
	return redis_boot(r, "restarting", err, errlen);
}

void redis_node_free(struct redis_node *r)
{
	if (!r)
		return;
	if (r->n.slot)
		atomic_store(&r->n.slot->persistent, false);
	node_free(&r->n);
	free(r);
}

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

static bool pid_has_marker(int pid, const char *marker)
{
	char name[16];
	int procfd;
	bool ok;

	if (pid <= 0)
		return false;
	procfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (procfd < 0)
		return false;
	snprintf(name, sizeof(name), "%d", pid);
	ok = proc_has_marker_at(procfd, name, marker);
	close(procfd);
	return ok;
}

static void pstate_markers(const struct pstate *st, char *node, char *epmd)
{
	snprintf(node, MARKER_MAX, "DUPSIM_NODE=%s", st->node);
	snprintf(epmd, MARKER_MAX, "DUPSIM_NODE=%s-epmd", st->node);
}

/* Its process is still this node (not a recycled pid, not a zombie) and it takes connections. */
static bool pstate_alive(const struct pstate *st)
{
	char m[MARKER_MAX], me[MARKER_MAX];

	pstate_markers(st, m, me);
	return pid_has_marker(st->pid, m) && st->amqp_port < 65536 && net_port_open((uint16_t)st->amqp_port);
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
	char m[MARKER_MAX], me[MARKER_MAX], path[PATH_MAX];
	uint64_t deadline = clock_now_ns() + STOP_TIMEOUT_NS;
	int rc = 0;

	pstate_markers(st, m, me);
	if (pid_has_marker(st->pid, m)) {
		kill(st->pid, SIGTERM);
		while (pid_has_marker(st->pid, m) && clock_now_ns() < deadline)
			clock_sleep_ns(50 * NS_PER_MS);
		if (pid_has_marker(st->pid, m)) {
			if (!quiet)
				log_line("%s did not stop within 30s; killing it", st->node);
			kill(-st->pid, SIGKILL);
			rc = -1;
		}
	}
	proc_kill_marked(m);
	proc_kill_marked(me);
	if (st->dir[0] && dir_inside(st->dir, sdir))
		files_rm_rf(st->dir);
	if (state_path(path, sizeof(path), sdir) == 0)
		unlink(path);
	return rc;
}

static void cli_on_signal(int sig)
{
	broker_cleanup_signal();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int cli_start(void)
{
	char sdir[PATH_MAX], dir[PATH_MAX], err[1024], text[1024 + PATH_MAX], path[PATH_MAX];
	struct broker_opts o = { .dir = dir, .keep_dir = true, .persistent = true };
	struct broker *b = NULL;
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
	signal(SIGINT, cli_on_signal);
	signal(SIGTERM, cli_on_signal);
	signal(SIGHUP, cli_on_signal);
	if (broker_start(&b, &o, err, sizeof(err)) < 0) {
		log_line("broker start: %s", err);
		files_rm_rf(dir);
		close(lock);
		return 1;
	}
	atomic_store(&b->n.slot->persistent, false);
	snprintf(text, sizeof(text),
		 "pid=%d\nepmd_pid=%d\nnode=%s\namqp_port=%u\ndist_port=%u\nepmd_port=%u\nurl=%s\ndir=%s\n",
		 (int)b->n.pid, (int)b->epmd_pid, b->n.name, b->amqp_port, b->dist_port, b->epmd_port, b->url,
		 b->n.dir);
	if (state_path(path, sizeof(path), sdir) < 0 || files_write_atomic(path, text, strlen(text)) < 0) {
		log_line("broker start: cannot write %s: %s", path, strerror(errno));
		broker_free(b);
		files_rm_rf(dir);
		close(lock);
		return 1;
	}
	atomic_store(&b->n.slot->persistent, true);
	printf("%s\n", b->url);
	fflush(stdout);
	broker_detach(b);
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
