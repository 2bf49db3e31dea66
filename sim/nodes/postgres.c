/* postgres.c — the PostgreSQL kind of node: the binaries, initdb (as nobody when root), the command line, the readiness check that creates the database. */
#include "nodes/postgres.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"

#define PG_LIB "/usr/lib/postgresql"
#define NODE_PATH "/usr/bin:/bin"
#define SETPRIV "/usr/bin/setpriv"
#define RUN_AS "nobody"
#define INITDB_TIMEOUT_NS (120 * NS_PER_S)
#define TAIL_LINES 4

struct postgres {
	struct node n;
	char bin[PATH_MAX];  /* the folder of initdb and postgres */
	char data[PATH_MAX]; /* the cluster: n->dir/data */
	bool as_root;	     /* run the programs as RUN_AS */
	uid_t uid;
	gid_t gid;
	bool initialized;
};

static struct postgres *pg(struct node *n)
{
	return (struct postgres *)n;
}

/* The newest version under PG_LIB with a bin/postgres: "15" beats "9.6" by number. 0 or -1. */
static int pg_find_bin(char *out, size_t len)
{
	DIR *d = opendir(PG_LIB);
	struct dirent *e;
	double best = -1;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[PATH_MAX];
		double v = strtod(e->d_name, NULL);

		if (e->d_name[0] < '0' || e->d_name[0] > '9' || v <= best)
			continue;
		snprintf(path, sizeof(path), "%s/%s/bin/postgres", PG_LIB, e->d_name);
		if (access(path, X_OK) == 0) {
			best = v;
			snprintf(out, len, "%s/%s/bin", PG_LIB, e->d_name);
		}
	}
	closedir(d);
	return best < 0 ? -1 : 0;
}

static int pg_check(struct node *n, char *err, size_t errlen)
{
	struct postgres *p = pg(n);
	const char *env = getenv("DUPSIM_PG_BIN");
	char path[PATH_MAX + 16];
	struct passwd *pw;

	if (env && *env)
		snprintf(p->bin, sizeof(p->bin), "%s", env);
	else if (pg_find_bin(p->bin, sizeof(p->bin)) < 0) {
		log_seterr(err, errlen, "no PostgreSQL in %s/<version>/bin (install postgresql, or set "
			   "DUPSIM_PG_BIN to the folder of initdb and postgres)", PG_LIB);
		return NODE_EBIN;
	}
	snprintf(path, sizeof(path), "%s/initdb", p->bin);
	if (access(path, X_OK) < 0) {
		log_seterr(err, errlen, "cannot run %s: %s (install postgresql, or set DUPSIM_PG_BIN)", path,
			   strerror(errno));
		return NODE_EBIN;
	}
	p->as_root = geteuid() == 0;
	if (!p->as_root)
		return 0;
	pw = getpwnam(RUN_AS);
	if (!pw || pw->pw_uid == 0) {
		log_seterr(err, errlen, "running as root, PostgreSQL needs an unprivileged user: no user '%s'",
			   RUN_AS);
		return NODE_EBIN;
	}
	if (access(SETPRIV, X_OK) < 0) {
		log_seterr(err, errlen, "running as root, PostgreSQL runs as %s through %s: %s (install "
			   "util-linux)", RUN_AS, SETPRIV, strerror(errno));
		return NODE_EBIN;
	}
	p->uid = pw->pw_uid;
	p->gid = pw->pw_gid;
	return 0;
}

/* argv's start: the program itself, or setpriv dropping root first. */
static int pg_argv0(const struct postgres *p, struct strv *a, const char *prog)
{
	int rc = 0;

	if (p->as_root) {
		rc |= strv_addf(a, "%s", SETPRIV);
		rc |= strv_addf(a, "--reuid=%u", (unsigned)p->uid);
		rc |= strv_addf(a, "--regid=%u", (unsigned)p->gid);
		rc |= strv_addf(a, "--clear-groups");
		if (!p->n.persistent)
			rc |= strv_addf(a, "--pdeathsig=KILL");
		rc |= strv_addf(a, "--");
	}
	rc |= strv_addf(a, "%s/%s", p->bin, prog);
	return rc;
}

static int pg_env(const struct node *n, struct strv *e, const char *marker)
{
	int rc = 0;

	rc |= strv_addf(e, "PATH=%s", NODE_PATH);
	rc |= strv_addf(e, "HOME=%s", n->dir);
	rc |= strv_addf(e, "LANG=C.UTF-8");
	rc |= strv_addf(e, "LC_ALL=C.UTF-8");
	rc |= strv_addf(e, "%s", marker);
	return rc;
}

/* As root: every folder above the node's must let RUN_AS pass (a 0700 TMPDIR would not). 0 or NODE_ESYS. */
static int pg_reachable(const struct postgres *p, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s", p->n.dir);
	for (char *slash = strrchr(path, '/'); slash && slash > path; slash = strrchr(path, '/')) {
		*slash = '\0';
		if (stat(path, &st) == 0 && !(st.st_mode & S_IXOTH) && st.st_uid != p->uid) {
			log_seterr(err, errlen, "PostgreSQL runs as %s, which cannot enter %s (mode %03o): set TMPDIR to "
				   "a folder others can pass, e.g. /tmp", RUN_AS, path, (unsigned)(st.st_mode & 0777));
			return NODE_ESYS;
		}
	}
	return 0;
}

/* The data folder, owned by whoever runs postgres; the node's folder passable for it. 0 or NODE_ESYS. */
static int pg_data_dir(struct postgres *p, char *err, size_t errlen)
{
	snprintf(p->data, sizeof(p->data), "%s/data", p->n.dir);
	if (mkdir(p->data, 0700) < 0 && errno != EEXIST) {
		log_seterr(err, errlen, "cannot create %s: %s", p->data, strerror(errno));
		return NODE_ESYS;
	}
	if (!p->as_root)
		return 0;
	if (chmod(p->n.dir, 0711) < 0 || chown(p->data, p->uid, p->gid) < 0) {
		log_seterr(err, errlen, "cannot hand %s to user %s: %s", p->data, RUN_AS, strerror(errno));
		return NODE_ESYS;
	}
	return pg_reachable(p, err, errlen);
}

/* Waits for initdb; 0, or NODE_EEXIT / NODE_ETIMEOUT with its log's tail. */
static int pg_initdb_wait(struct postgres *p, pid_t pid, const char *marker, const char *log, char *err,
			  size_t errlen)
{
	uint64_t deadline = clock_now_ns() + INITDB_TIMEOUT_NS;
	char tail[640];
	int code = 0;

	while (!proc_exited(pid, &code) && clock_now_ns() < deadline)
		clock_sleep_ns(50 * NS_PER_MS);
	if (!proc_exited(pid, NULL))
		code = -1;
	proc_kill(pid, marker); /* reaps it */
	if (code == 0)
		return 0;
	proc_log_tail(log, TAIL_LINES, tail, sizeof(tail));
	log_seterr(err, errlen, "initdb for %s %s (log %s): %s", p->n.name,
		   code < 0 ? "timed out" : "failed", log, tail[0] ? tail : "(empty)");
	return code < 0 ? NODE_ETIMEOUT : NODE_EEXIT;
}

/*
 * Listening on a test hosts' address as well (node_opts.addr), the server lets
 * that /24 in as initdb's --auth=trust lets loopback in: those addresses are
 * the run's own namespaces (hosts/hosts.h). 0, or NODE_ESYS with err.
 */
static int pg_hba_hosts(struct postgres *p, char *err, size_t errlen)
{
	char path[PATH_MAX + 16], net[INET_ADDRSTRLEN];
	struct in_addr a;
	FILE *f;

	if (strcmp(p->n.addr, "127.0.0.1") == 0)
		return 0;
	if (inet_pton(AF_INET, p->n.addr, &a) != 1) {
		log_seterr(err, errlen, "PostgreSQL: '%s' is not an IPv4 address", p->n.addr);
		return NODE_ESYS;
	}
	a.s_addr &= htonl(0xffffff00u);
	inet_ntop(AF_INET, &a, net, sizeof(net));
	snprintf(path, sizeof(path), "%s/pg_hba.conf", p->data);
	f = fopen(path, "a");
	if (!f || fprintf(f, "host all all %s/24 trust\n", net) < 0 || fclose(f) != 0) {
		log_seterr(err, errlen, "%s: %s", path, strerror(errno));
		if (f)
			fclose(f);
		return NODE_ESYS;
	}
	return 0;
}

/* initdb into n->dir/data, once per node. */
static int pg_initdb(struct postgres *p, char *err, size_t errlen)
{
	struct strv a = { 0 }, e = { 0 };
	char marker[PROC_MARKER_MAX], log[PATH_MAX];
	pid_t pid;
	int rc;

	if (p->initialized)
		return 0;
	if ((rc = pg_data_dir(p, err, errlen)) < 0)
		return rc;
	node_helper_marker(&p->n, "initdb", marker, sizeof(marker));
	snprintf(log, sizeof(log), "%s/initdb.log", p->n.dir);
	rc = pg_argv0(p, &a, "initdb");
	rc |= strv_addf(&a, "--pgdata=%s", p->data);
	rc |= strv_addf(&a, "--username=" POSTGRES_USER);
	rc |= strv_addf(&a, "--auth=trust");
	rc |= strv_addf(&a, "--encoding=UTF8");
	rc |= strv_addf(&a, "--locale=C");
	rc |= strv_addf(&a, "--no-sync"); /* the server fsyncs its own writes; a fresh cluster needs no flush */
	rc |= pg_env(&p->n, &e, marker);
	if (rc) {
		rc = NODE_ESYS;
		log_seterr(err, errlen, "out of memory");
	} else if (proc_spawn(a.v, e.v, p->data, log, false, &pid, err, errlen) < 0) {
		rc = NODE_ESYS;
	} else if ((rc = pg_initdb_wait(p, pid, marker, log, err, errlen)) == 0 &&
		   (rc = pg_hba_hosts(p, err, errlen)) == 0) {
		p->initialized = true;
	}
	strv_release(&a);
	strv_release(&e);
	return rc;
}

static int pg_configure(struct node *n, char *err, size_t errlen)
{
	struct postgres *p = pg(n);
	struct strv *a = &n->argv;
	int rc;

	if ((rc = pg_initdb(p, err, errlen)) < 0)
		return rc;
	snprintf(n->url, sizeof(n->url), "postgresql://" POSTGRES_USER "@%s:%u/" POSTGRES_DB, n->addr, n->ports[0]);
	rc = pg_argv0(p, a, "postgres");
	rc |= strv_addf(a, "-D");
	rc |= strv_addf(a, "%s", p->data);
	rc |= strv_addf(a, "-k");
	rc |= strv_addf(a, "%s", p->data); /* the unix socket, beside the data: nothing in /var/run */
	rc |= strv_addf(a, "-h"); /* loopback for the readiness check, and a test hosts' address when given */
	if (strcmp(n->addr, "127.0.0.1") == 0)
		rc |= strv_addf(a, "127.0.0.1");
	else
		rc |= strv_addf(a, "127.0.0.1,%s", n->addr);
	rc |= strv_addf(a, "-p");
	rc |= strv_addf(a, "%u", n->ports[0]);
	rc |= strv_addf(a, "-c");
	rc |= strv_addf(a, "logging_collector=off");
	rc |= strv_addf(a, "-c");
	rc |= strv_addf(a, "update_process_title=off"); /* the title overwrites environ, where the marker is */
	rc |= pg_env(n, &n->envp, n->marker);
	if (rc) {
		log_seterr(err, errlen, "out of memory");
		return NODE_ESYS;
	}
	return 0;
}

static PGconn *pg_connect(uint16_t port, const char *db)
{
	char info[160];

	snprintf(info, sizeof(info), "host=127.0.0.1 port=%u user=" POSTGRES_USER " dbname=%s connect_timeout=2",
		 port, db);
	return PQconnectdb(info);
}

/* True once database dupsim takes connections; creates it (from database postgres) when it is missing. */
static bool pg_ready(const struct node *n)
{
	PGconn *c = pg_connect(n->ports[0], POSTGRES_DB);
	bool ok = PQstatus(c) == CONNECTION_OK;

	if (!ok && strstr(PQerrorMessage(c), "does not exist")) {
		PGconn *admin = pg_connect(n->ports[0], "postgres");

		if (PQstatus(admin) == CONNECTION_OK)
			PQclear(PQexec(admin, "CREATE DATABASE " POSTGRES_DB));
		PQfinish(admin); /* the next poll connects to it */
	}
	PQfinish(c);
	return ok;
}

const struct node_ops postgres_ops = {
	.title = "PostgreSQL",
	.tag = "-pg",
	.log_name = "postgres.log",
	.port_taken = "could not bind IPv4 address",
	.size = sizeof(struct postgres),
	.nports = 1,
	.ready_digits = 2,
	.stop_signal = SIGINT,
	.check = pg_check,
	.configure = pg_configure,
	.ready = pg_ready,
};
