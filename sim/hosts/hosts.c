/* hosts.c — test hosts from network namespaces: iproute2's ip for the parts, iptables for the links' queues, setns for threads. */
#include "hosts/hosts.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "hosts/link.h"

#define NETNS_DIR "/run/netns"
#define LOCK_FILE "/run/dupsim-hosts.lock"
#define NAME_MAX_LEN 12
#define ARGS_MAX 24

struct host {
	char name[NAME_MAX_LEN + 1];
	char netns[48];
	char addr[24];
	char hub_end[16]; /* its veth end in the hub */
	struct link_emu *link; /* its delay, jitter and loss; NULL: none */
	bool cut[HOSTS_MAX];
};

struct hosts {
	char prefix[32]; /* dupsim-PID */
	char hub[48];	 /* the hub's namespace */
	char root_end[16], root_addr[24];
	unsigned subnet; /* K of 10.77.K.0/24 */
	int root_fd;	 /* the root namespace, for hosts_enter(HOSTS_ROOT) */
	bool hub_made, root_link_made;
	struct host h[HOSTS_MAX];
	size_t n;
};

static const char *tool(const char *env, const char *a, const char *b)
{
	const char *e = getenv(env);

	if (e && *e)
		return e;
	return access(a, X_OK) == 0 ? a : b;
}

static const char *ip_bin(void)
{
	return tool("DUPSIM_IP", "/usr/sbin/ip", "/sbin/ip");
}

/*
 * iptables-legacy: the nf_tables variant (Debian's default `iptables`) can't
 * queue packets on this kernel (no nft_queue).
 */
static const char *iptables_bin(void)
{
	return tool("DUPSIM_IPTABLES", "/usr/sbin/iptables-legacy", "/sbin/iptables-legacy");
}

/*
 * Runs argv (split from fmt on spaces: no argument here has one) and waits.
 * 0 when it exited 0; else -1 with err holding the command and the first
 * line it printed on stderr.
 */
static int sh_run(char *err, size_t errlen, const char *bin, const char *fmt, ...)
{
	char line[512], *argv[ARGS_MAX + 2], *save = NULL, out[256] = "";
	int pipefd[2], status = 0;
	size_t n = 0;
	ssize_t got;
	va_list ap;
	pid_t pid;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	argv[n++] = (char *)bin;
	for (char *t = strtok_r(line, " ", &save); t && n <= ARGS_MAX; t = strtok_r(NULL, " ", &save))
		argv[n++] = t;
	argv[n] = NULL;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return log_seterr(err, errlen, "pipe: %s", strerror(errno));
	pid = fork();
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);

		dup2(nul, 0);
		dup2(nul, 1);
		dup2(pipefd[1], 2);
		execv(bin, argv);
		_exit(127);
	}
	close(pipefd[1]);
	if (pid < 0) {
		close(pipefd[0]);
		return log_seterr(err, errlen, "fork: %s", strerror(errno));
	}
	got = read(pipefd[0], out, sizeof(out) - 1);
	out[got > 0 ? got : 0] = '\0';
	while (read(pipefd[0], line, sizeof(line)) > 0)
		;
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	out[strcspn(out, "\n")] = '\0';
	if (err) {
		/* the command line again, for the message (strtok cut it) */
		va_start(ap, fmt);
		vsnprintf(line, sizeof(line), fmt, ap);
		va_end(ap);
		log_seterr(err, errlen, "%s %s: %s", bin, line,
			   WIFEXITED(status) && WEXITSTATUS(status) == 127 ? "cannot run it (install iproute2)"
			   : out[0]					      ? out
									      : "failed");
	}
	return -1;
}

/* The nf_tables variant, by its binary's name (Debian's iptables is a link to xtables-nft-multi). */
static bool iptables_is_nft(const char *bin)
{
	char real[512];

	if (!realpath(bin, real))
		return false;
	return strstr(real, "nft") != NULL;
}

int hosts_check(const char *what, char *err, size_t errlen)
{
	const char *ipt = iptables_bin();

	if (geteuid() != 0)
		return log_seterr(err, errlen,
				  "%s needs root: dupsim makes its test hosts from network namespaces, veth links and "
				  "netfilter queues (ip netns add, ip link, iptables), which only root may do; run as "
				  "root, or leave it out",
				  what);
	if (access(ip_bin(), X_OK) < 0)
		return log_seterr(err, errlen, "%s needs iproute2's ip (%s): install iproute2", what, ip_bin());
	if (access(ipt, X_OK) < 0 || iptables_is_nft(ipt))
		return log_seterr(err, errlen,
				  "%s needs iptables-legacy (%s %s) for the links' delay and loss (NFQUEUE; the nf_tables "
				  "variant can't queue on this kernel): install iptables, or set DUPSIM_IPTABLES",
				  what, ipt, access(ipt, X_OK) < 0 ? "is missing" : "is the nf_tables variant");
	return 0;
}

/* The K of a 10.77.K.0/24 that no interface of this namespace has an address in; -1 when all are taken. */
static int free_subnet(void)
{
	struct ifaddrs *ifs, *i;
	bool used[256] = { false };

	if (getifaddrs(&ifs) < 0)
		return -1;
	for (i = ifs; i; i = i->ifa_next) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)i->ifa_addr;
		uint32_t v;

		if (!a || a->sin_family != AF_INET)
			continue;
		v = ntohl(a->sin_addr.s_addr);
		if ((v >> 16) == ((10u << 8) | 77u))
			used[(v >> 8) & 0xff] = true;
	}
	freeifaddrs(ifs);
	for (int k = 1; k < 255; k++)
		if (!used[k])
			return k;
	return -1;
}

static int netns_add(const char *name, char *err, size_t errlen)
{
	if (sh_run(err, errlen, ip_bin(), "netns add %s", name) < 0)
		return -1;
	return sh_run(err, errlen, ip_bin(), "-n %s link set lo up", name);
}

/* The hub's bridge and the root's veth pair, its address taken under a lock so that two runs pick two /24s. */
static int hosts_root_link(struct hosts *h, char *err, size_t errlen)
{
	int lock = open(LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0600), k, rc = -1;

	if (lock < 0 || flock(lock, LOCK_EX) < 0) {
		log_seterr(err, errlen, "cannot lock %s: %s", LOCK_FILE, strerror(errno));
		goto out;
	}
	k = free_subnet();
	if (k < 0) {
		log_seterr(err, errlen, "no free /24 in 10.77.0.0/16 for the test hosts");
		goto out;
	}
	h->subnet = (unsigned)k;
	snprintf(h->root_addr, sizeof(h->root_addr), "10.77.%u.1", h->subnet);
	if (sh_run(err, errlen, ip_bin(), "link add %s type veth peer name root netns %s", h->root_end, h->hub) < 0)
		goto out;
	h->root_link_made = true;
	if (sh_run(err, errlen, ip_bin(), "addr add %s/24 dev %s", h->root_addr, h->root_end) < 0 ||
	    sh_run(err, errlen, ip_bin(), "link set %s up", h->root_end) < 0 ||
	    sh_run(err, errlen, ip_bin(), "-n %s link set root master br0 up", h->hub) < 0)
		goto out;
	rc = 0;
out:
	if (lock >= 0)
		close(lock); /* and the lock with it */
	return rc;
}

int hosts_new(struct hosts **out, char *err, size_t errlen)
{
	struct hosts *h;

	*out = NULL;
	if (hosts_check("test hosts", err, errlen) < 0)
		return -1;
	hosts_sweep();
	h = calloc(1, sizeof(*h));
	if (!h)
		return log_seterr(err, errlen, "out of memory");
	h->root_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	snprintf(h->prefix, sizeof(h->prefix), "dupsim-%d", (int)getpid());
	snprintf(h->hub, sizeof(h->hub), "%s-hub", h->prefix);
	snprintf(h->root_end, sizeof(h->root_end), "dsv%d", (int)getpid() % 10000000);
	if (h->root_fd < 0) {
		log_seterr(err, errlen, "cannot open /proc/self/ns/net: %s", strerror(errno));
		goto fail;
	}
	if (netns_add(h->hub, err, errlen) < 0)
		goto fail;
	h->hub_made = true;
	if (sh_run(err, errlen, ip_bin(), "-n %s link add br0 type bridge", h->hub) < 0 ||
	    sh_run(err, errlen, ip_bin(), "-n %s link set br0 up", h->hub) < 0 || hosts_root_link(h, err, errlen) < 0)
		goto fail;
	*out = h;
	return 0;
fail:
	hosts_free(h);
	return -1;
}

static bool name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
		      (name[i] >= '0' && name[i] <= '9') || name[i] == '-'))
			return false;
	return true;
}

int hosts_add(struct hosts *h, const char *name, char *err, size_t errlen)
{
	struct host *x;
	int i = (int)h->n;

	if (h->n >= HOSTS_MAX)
		return log_seterr(err, errlen, "more than %d test hosts", HOSTS_MAX);
	if (!name_ok(name))
		return log_seterr(err, errlen, "test host name '%s': letters, digits and '-', at most %d", name,
				  NAME_MAX_LEN);
	for (size_t j = 0; j < h->n; j++)
		if (strcmp(h->h[j].name, name) == 0)
			return log_seterr(err, errlen, "two test hosts named '%s'", name);
	x = &h->h[i];
	memset(x, 0, sizeof(*x));
	memcpy(x->name, name, strlen(name) + 1);
	{
		char ns[sizeof(x->netns)];

		snprintf(ns, sizeof(ns), "dupsim-%d-%s", (int)getpid(), name);
		memcpy(x->netns, ns, sizeof(ns));
	}
	snprintf(x->addr, sizeof(x->addr), "10.77.%u.%d", h->subnet, 10 + i);
	snprintf(x->hub_end, sizeof(x->hub_end), "h%d", i);
	if (netns_add(x->netns, err, errlen) < 0) {
		sh_run(NULL, 0, ip_bin(), "netns del %s", x->netns);
		return -1;
	}
	h->n++; /* from here hosts_free removes it */
	if (sh_run(err, errlen, ip_bin(), "-n %s link add %s type veth peer name eth0 netns %s", h->hub, x->hub_end,
		   x->netns) < 0 ||
	    sh_run(err, errlen, ip_bin(), "-n %s link set %s master br0 up", h->hub, x->hub_end) < 0 ||
	    sh_run(err, errlen, ip_bin(), "-n %s addr add %s/24 dev eth0", x->netns, x->addr) < 0 ||
	    sh_run(err, errlen, ip_bin(), "-n %s link set eth0 up", x->netns) < 0)
		return -1;
	return i;
}

size_t hosts_count(const struct hosts *h)
{
	return h ? h->n : 0;
}

const char *hosts_netns(const struct hosts *h, int i)
{
	return i == HOSTS_ROOT ? "" : h->h[i].netns;
}

const char *hosts_addr(const struct hosts *h, int i)
{
	return i == HOSTS_ROOT ? h->root_addr : h->h[i].addr;
}

const char *hosts_name(const struct hosts *h, int i)
{
	return i == HOSTS_ROOT ? "dupsim" : h->h[i].name;
}

/* The two rules that queue host i's packets on eth0 to its link's thread, one per direction. */
static int queue_rules(struct hosts *h, int i, bool add, char *err, size_t errlen)
{
	const char *op = add ? "-A" : "-D", *ns = h->h[i].netns;

	if (sh_run(err, errlen, ip_bin(), "netns exec %s %s -w -t mangle %s POSTROUTING -o eth0 -j NFQUEUE --queue-num %d",
		   ns, iptables_bin(), op, LINK_QUEUE_OUT) < 0 && add)
		return -1;
	if (sh_run(err, errlen, ip_bin(), "netns exec %s %s -w -t mangle %s PREROUTING -i eth0 -j NFQUEUE --queue-num %d",
		   ns, iptables_bin(), op, LINK_QUEUE_IN) < 0 && add)
		return -1;
	return 0;
}

static void link_remove(struct hosts *h, int i)
{
	struct host *x = &h->h[i];

	if (!x->link)
		return;
	queue_rules(h, i, false, NULL, 0); /* first: no packet queued to a thread that is gone */
	link_stop(x->link);
	x->link = NULL;
}

int hosts_set_link(struct hosts *h, int i, const struct hosts_link *l, char *err, size_t errlen)
{
	struct host *x;

	if (i < 0 || (size_t)i >= h->n)
		return log_seterr(err, errlen, "no test host %d", i);
	x = &h->h[i];
	if (!l || (!l->delay_ns && !l->jitter_ns && l->loss <= 0)) {
		link_remove(h, i);
		return 0;
	}
	if (!(l->loss >= 0 && l->loss <= 1))
		return log_seterr(err, errlen, "test host %s's link: loss %g is not a probability (0..1)", x->name,
				  l->loss);
	if (x->link) {
		link_set(x->link, l);
		return 0;
	}
	if (link_start(&x->link, h, i, l, err, errlen) < 0)
		return -1;
	if (queue_rules(h, i, true, err, errlen) < 0) {
		link_remove(h, i);
		return -1;
	}
	return 0;
}

static int blackhole(struct hosts *h, int from, int to, bool cut, char *err, size_t errlen)
{
	return sh_run(err, errlen, ip_bin(), "-n %s route %s blackhole %s/32", h->h[from].netns, cut ? "add" : "del",
		      h->h[to].addr);
}

int hosts_cut(struct hosts *h, int a, int b, bool cut, char *err, size_t errlen)
{
	if (a < 0 || b < 0 || (size_t)a >= h->n || (size_t)b >= h->n || a == b)
		return log_seterr(err, errlen, "no path between test hosts %d and %d to cut", a, b);
	if (h->h[a].cut[b] == cut)
		return 0;
	if (blackhole(h, a, b, cut, err, errlen) < 0)
		return -1;
	if (blackhole(h, b, a, cut, err, errlen) < 0) {
		blackhole(h, a, b, !cut, NULL, 0);
		return -1;
	}
	h->h[a].cut[b] = h->h[b].cut[a] = cut;
	return 0;
}

int hosts_enter(const struct hosts *h, int i)
{
	char path[128];
	int fd, rc;

	if (i == HOSTS_ROOT)
		return setns(h->root_fd, CLONE_NEWNET);
	snprintf(path, sizeof(path), NETNS_DIR "/%s", h->h[i].netns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = setns(fd, CLONE_NEWNET);
	close(fd);
	return rc;
}

void hosts_free(struct hosts *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++)
		link_stop(h->h[i].link); /* the rules go with the namespace */
	for (size_t i = 0; i < h->n; i++)
		sh_run(NULL, 0, ip_bin(), "netns del %s", h->h[i].netns);
	if (h->root_link_made)
		sh_run(NULL, 0, ip_bin(), "link del %s", h->root_end); /* its peer in the hub goes with it */
	if (h->hub_made)
		sh_run(NULL, 0, ip_bin(), "netns del %s", h->hub);
	if (h->root_fd >= 0)
		close(h->root_fd);
	free(h);
}

void hosts_sweep(void)
{
	DIR *d;
	struct dirent *e;

	if (geteuid() != 0 || !(d = opendir(NETNS_DIR)))
		return;
	while ((e = readdir(d))) {
		char *end;
		long pid;

		if (strncmp(e->d_name, "dupsim-", 7) != 0)
			continue;
		pid = strtol(e->d_name + 7, &end, 10);
		if (end == e->d_name + 7 || *end != '-' || pid <= 0 || pid == (long)getpid())
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno == EPERM)
			continue; /* its dupsim still runs */
		sh_run(NULL, 0, ip_bin(), "netns del %s", e->d_name);
	}
	closedir(d);
	/* a root veth end whose hub is gone went with it; one whose hub was deleted first is gone too */
}
