/* proc.c — child processes: spawn, exit checks, kill -9 by group and marker, the registry and its signal-safe cleanup. */
#include "nodes/proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/files.h"
#include "core/log.h"

/* ---------- async-signal-safe /proc and folder primitives ---------- */

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

/* True when /proc/<name>/environ holds marker (or, with family, marker-...). Zombies and other users' processes read as empty. */
static bool marker_at(int procfd, const char *name, const char *marker, bool family)
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
			if ((buf[i] == '\0' || (family && buf[i] == '-')) && pos == (long)mlen) {
				close(fd);
				return true;
			}
			if (buf[i] == '\0')
				pos = 0;
			else if (pos >= 0)
				pos = (size_t)pos < mlen && buf[i] == marker[pos] ? pos + 1 : -1;
		}
	}
	close(fd);
	return false;
}

/* Counts live processes carrying marker, sending them sig when non-zero. Only raw syscalls. */
static int scan(const char *marker, bool family, int sig)
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
			if (pid <= 0 || pid == self || !marker_at(procfd, e->d_name, marker, family))
				continue;
			found++;
			if (sig)
				kill(pid, sig);
		}
	}
	close(procfd);
	return found;
}

int proc_count(const char *marker, bool family)
{
	return scan(marker, family, 0);
}

bool proc_has_marker(pid_t pid, const char *marker)
{
	char name[16];
	int procfd;
	bool ok;

	if (pid <= 0)
		return false;
	procfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (procfd < 0)
		return false;
	snprintf(name, sizeof(name), "%d", (int)pid);
	ok = marker_at(procfd, name, marker, false);
	close(procfd);
	return ok;
}

static void sleep_ms_sigsafe(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

void proc_kill_marked(const char *marker, bool family)
{
	if (!marker[0])
		return;
	for (int i = 0; i < 500; i++) {
		if (scan(marker, family, SIGKILL) <= 0)
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

/* ---------- the registry ---------- */

/*
 * Read by the signal handler. A slot is published by storing owner last
 * (fields first), and pids are taken with atomic_exchange so a signal racing
 * a normal stop kills once. owner is the pid that claimed the slot.
 */
#define SLOTS 64

struct proc_slot {
	atomic_int owner; /* 0: free */
	atomic_int pid[PROC_SLOT_PIDS]; /* leaders of their own process groups; 0: none */
	atomic_bool rm_dir;
	char marker[PROC_MARKER_MAX];
	char dir[PATH_MAX];
};

static struct proc_slot slots[SLOTS];
static pthread_mutex_t slots_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t slots_once = PTHREAD_ONCE_INIT;

static void slot_kill(struct proc_slot *s)
{
	pid_t pid[PROC_SLOT_PIDS];

	for (int i = 0; i < PROC_SLOT_PIDS; i++)
		pid[i] = atomic_exchange(&s->pid[i], 0);
	/* Kill the groups before reaping their leaders, so their ids can't be reused meanwhile. */
	for (int i = 0; i < PROC_SLOT_PIDS; i++)
		if (pid[i] > 0)
			kill(-pid[i], SIGKILL);
	proc_kill_marked(s->marker, true);
	for (int i = 0; i < PROC_SLOT_PIDS; i++)
		if (pid[i] > 0)
			waitpid(pid[i], NULL, 0);
}

void proc_cleanup_signal(void)
{
	int saved = errno;
	pid_t self = getpid();

	for (int i = 0; i < SLOTS; i++) {
		struct proc_slot *s = &slots[i];

		if (atomic_load(&s->owner) != self)
			continue;
		slot_kill(s);
		if (atomic_exchange(&s->rm_dir, false))
			rm_tree_sigsafe(AT_FDCWD, s->dir, 0);
	}
	errno = saved;
}

static void slots_atexit(void)
{
	pid_t self = getpid();

	for (int i = 0; i < SLOTS; i++) {
		struct proc_slot *s = &slots[i];

		if (atomic_load(&s->owner) != self)
			continue;
		slot_kill(s);
		if (atomic_exchange(&s->rm_dir, false))
			files_rm_rf(s->dir);
		atomic_store(&s->owner, 0);
	}
}

static void slots_init(void)
{
	atexit(slots_atexit);
}

struct proc_slot *proc_slot_claim(const char *marker, const char *dir, bool rm_dir)
{
	struct proc_slot *found = NULL;

	pthread_once(&slots_once, slots_init);
	pthread_mutex_lock(&slots_lock);
	for (int i = 0; i < SLOTS && !found; i++) {
		struct proc_slot *s = &slots[i];

		/* A slot owned by another pid is the parent's copy after fork(): leave it alone. */
		if (atomic_load(&s->owner) != 0)
			continue;
		for (int j = 0; j < PROC_SLOT_PIDS; j++)
			atomic_store(&s->pid[j], 0);
		snprintf(s->marker, sizeof(s->marker), "%s", marker);
		snprintf(s->dir, sizeof(s->dir), "%s", dir);
		atomic_store(&s->rm_dir, rm_dir);
		atomic_store(&s->owner, getpid());
		found = s;
	}
	pthread_mutex_unlock(&slots_lock);
	return found;
}

void proc_slot_set_pid(struct proc_slot *s, int i, pid_t pid)
{
	if (s && i >= 0 && i < PROC_SLOT_PIDS)
		atomic_store(&s->pid[i], pid);
}

void proc_slot_keep_dir(struct proc_slot *s)
{
	if (s)
		atomic_store(&s->rm_dir, false);
}

void proc_slot_release(struct proc_slot *s)
{
	if (s)
		atomic_store(&s->owner, 0);
}

/* ---------- spawning, waiting, killing ---------- */

/* Only async-signal-safe calls between fork and exec: the parent may have threads. */
/*
 * DUPSIM_NETNS=<name> in envp: the child runs on that test host (its
 * network namespace, /run/netns/<name>, made by hosts/hosts.h) and exits
 * 126 when it can't enter it, before anything could listen on the wrong host.
 */
static void child_netns(char *const *envp)
{
	static const char key[] = "DUPSIM_NETNS=", pre[] = "/run/netns/";
	static const char fail[] = "dupsim: cannot enter the test host's network namespace\n";
	char path[128];
	int fd;

	for (size_t i = 0; envp[i]; i++) {
		size_t n;

		if (strncmp(envp[i], key, sizeof(key) - 1) != 0)
			continue;
		n = strlen(envp[i] + sizeof(key) - 1);
		if (n == 0)
			return;
		if (n + sizeof(pre) > sizeof(path))
			_exit(126);
		memcpy(path, pre, sizeof(pre) - 1);
		memcpy(path + sizeof(pre) - 1, envp[i] + sizeof(key) - 1, n + 1);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) {
			(void)!write(2, fail, sizeof(fail) - 1);
			_exit(126);
		}
		close(fd);
		return;
	}
}

static __attribute__((noreturn)) void child_exec(char *const *argv, char *const *envp, const char *cwd, int logfd,
						   bool persistent, pid_t parent)
{
	static const char nodir[] = "dupsim: cannot chdir to the node folder\n", noexec[] = "dupsim: exec failed: ";
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
	child_netns(envp);
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
		(void)!write(2, nodir, sizeof(nodir) - 1);
		_exit(127);
	}
	execve(argv[0], argv, envp);
	(void)!write(2, noexec, sizeof(noexec) - 1);
	(void)!write(2, argv[0], strlen(argv[0]));
	(void)!write(2, "\n", 1);
	_exit(127);
}

int proc_spawn(char *const *argv, char *const *envp, const char *cwd, const char *log, bool persistent,
	       pid_t *out, char *err, size_t errlen)
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

bool proc_exited(pid_t pid, int *code)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
		if (code)
			*code = -1;
		return true;
	}
	if (si.si_pid == 0)
		return false;
	if (code)
		*code = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
	return true;
}

void proc_kill(pid_t pid, const char *marker)
{
	if (pid > 0)
		kill(-pid, SIGKILL);
	proc_kill_marked(marker, false);
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
}

unsigned long long proc_start_time(pid_t pid)
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
	/* field 22, starttime */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu", &t) != 1)
		return 0;
	return t;
}

/* Joins the lines from start on into out as "a | b | c". */
static void join_lines(char *start, char *out, size_t len)
{
	char *save;
	size_t o = 0;

	for (char *line = strtok_r(start, "\n", &save); line && o + 1 < len; line = strtok_r(NULL, "\n", &save)) {
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

void proc_log_tail(const char *path, int lines, char *out, size_t len)
{
	char buf[4096], *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t size;
	ssize_t n;

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
	join_lines(p, out, len);
}

/* The inode of the socket 127.0.0.1:port -> 127.0.0.1:peer, from /proc/net/tcp; 0 when there is none. */
/*
 * The inode of the TCP socket port -> peer as process pid sees its network
 * namespace (/proc/PID/net/tcp): an app instance on a test host has a table
 * of its own. Any addresses: on loopback both are 127.0.0.1, from a test host
 * the host's and dupsim's; the two ports tell it from the proxy's own sockets.
 */
static unsigned long proc_socket_inode(const char *pid, uint16_t port, uint16_t peer)
{
	char path[64];
	FILE *f;
	char line[512];
	unsigned long inode = 0;

	snprintf(path, sizeof(path), "/proc/%s/net/tcp", pid);
	if (!(f = fopen(path, "r")))
		return 0;
	if (!fgets(line, sizeof(line), f)) { /* the header */
		fclose(f);
		return 0;
	}
	while (!inode && fgets(line, sizeof(line), f)) {
		unsigned addr, lport, raddr, rport, st;
		unsigned long ino;

		/* "  0: 0100007F:9C40 0100007F:1628 01 00000000:00000000 00:00000000 00000000  0  0 12345 ..." */
		if (sscanf(line, " %*u: %X:%X %X:%X %X %*X:%*X %*X:%*X %*X %*u %*u %lu", &addr, &lport, &raddr,
			   &rport, &st, &ino) == 6 &&
		    lport == port && rport == peer && ino != 0)
			inode = ino;
	}
	fclose(f);
	return inode;
}

/* True when one of pid's open files is socket:[inode]. */
static bool proc_holds_socket(const char *pid, unsigned long inode)
{
	char path[64], link[64], want[40];
	struct dirent *e;
	DIR *d;
	bool found = false;

	snprintf(path, sizeof(path), "/proc/%s/fd", pid);
	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	if (!(d = opendir(path)))
		return false;
	while (!found && (e = readdir(d))) {
		char fd[sizeof(path) + sizeof(e->d_name) + 2];
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(fd, sizeof(fd), "%s/%s", path, e->d_name);
		n = readlink(fd, link, sizeof(link) - 1);
		if (n > 0) {
			link[n] = '\0';
			found = strcmp(link, want) == 0;
		}
	}
	closedir(d);
	return found;
}

/* True when pid (a /proc name) leads or belongs to one of the groups. */
static bool proc_in_groups(const char *name, const pid_t *groups, size_t ngroups)
{
	pid_t g = getpgid((pid_t)atoi(name));

	for (size_t i = 0; g > 0 && i < ngroups; i++)
		if (groups[i] == g)
			return true;
	return false;
}

pid_t proc_socket_owner(uint16_t port, uint16_t peer, const pid_t *groups, size_t ngroups)
{
	unsigned long inode = proc_socket_inode("self", port, peer), in_ns;
	struct dirent *e;
	pid_t owner = 0;
	DIR *d;

	if (inode && proc_holds_socket("self", inode)) /* our own (a publisher's): the quick answer */
		return getpid();
	if (!(d = opendir("/proc")))
		return 0;
	while (!owner && (e = readdir(d))) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9' || !proc_in_groups(e->d_name, groups, ngroups))
			continue;
		/* the socket as the process's own namespace has it (a test host's, or this one's) */
		in_ns = proc_socket_inode(e->d_name, port, peer);
		if (in_ns && proc_holds_socket(e->d_name, in_ns))
			owner = (pid_t)atoi(e->d_name);
	}
	closedir(d);
	return owner;
}

bool proc_alive(pid_t pid)
{
	char path[32], buf[256], *paren;
	FILE *f;
	size_t n;

	if (pid <= 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* "pid (comm) S ...": the state follows the last ')' (comm may hold one) */
	paren = strrchr(buf, ')');
	return paren && paren[1] == ' ' && paren[2] != 'Z' && paren[2] != 'X' && paren[2] != '\0';
}
