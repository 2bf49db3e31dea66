/* dedup_pg.c — the postgres dedup store: the transactional inbox (the key and the effect in one COMMIT), on one libpq connection. */
#include "dedup/dedup.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/clock.h"
#include "core/log.h"

/*
 * Rows. inbox(owner, id, at): one per key, primary key (owner, id); owner is
 * the scope (stores with one owner share keys). effects(owner, id, consumer,
 * token, at): one per executed side effect, on purpose without a unique key,
 * so that a broken inbox would show as two rows for one id.
 *
 * Round trips. execute_once takes two: "BEGIN; INSERT INTO inbox ..." (the
 * reply of the last statement says whether the key went in), then, after
 * the work, "INSERT INTO effects ...; COMMIT". The owner is escaped once
 * into the statements' text and keys are integers, so the text needs no
 * parameters and several statements can go in one PQexec.
 *
 * A COMMIT whose reply never came (the connection died) may or may not
 * have happened: the store reconnects and looks the effect's row up by its
 * token, a number drawn for each attempt. Only a row found is DONE.
 *
 * Connection loss otherwise: the call that meets it fails; the next call
 * reconnects once. One object belongs to one thread.
 */

#define INBOX_LOCK "7242001" /* pg_advisory_xact_lock key: one table creation at a time */
#define SQL_MAX 768

struct pg_store {
	struct dedup_store base;
	PGconn *c;
	char *conninfo;
	char *owner;	    /* escaped literal, quotes included */
	char on_conflict[192]; /* ON CONFLICT clause of the key's insert */
	char fresh[96];	    /* the lookup's condition on `at` ("" without ttl) */
	uint64_t token;	    /* the next effect row's token */
};

static struct pg_store *pg_of(struct dedup_store *base)
{
	return (struct pg_store *)base;
}

/* libpq's message for c, its first line only. */
static const char *pg_errline(const PGconn *c, char *buf, size_t len)
{
	snprintf(buf, len, "%s", c ? PQerrorMessage(c) : "out of memory");
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

static void pg_quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message; /* "relation already exists, skipping" and the like */
}

static PGconn *pg_connect(const char *conninfo)
{
	PGconn *c = PQconnectdb(conninfo);

	if (c && PQstatus(c) == CONNECTION_OK)
		PQsetNoticeProcessor(c, pg_quiet, NULL);
	return c;
}

/* A usable connection: reconnects once when it broke. 0 or -1. */
static int pg_ready(struct pg_store *s)
{
	if (s->c && PQstatus(s->c) == CONNECTION_OK)
		return 0;
	PQfinish(s->c);
	s->c = pg_connect(s->conninfo);
	return PQstatus(s->c) == CONNECTION_OK ? 0 : -1;
}

/* Runs sql (one or more statements); the last one's result, or NULL when it failed (the result cleared). */
static PGresult *pg_exec(struct pg_store *s, const char *sql)
{
	PGresult *r;
	ExecStatusType st;

	if (pg_ready(s) < 0)
		return NULL;
	r = PQexec(s->c, sql);
	st = PQresultStatus(r);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return r;
	PQclear(r);
	return NULL;
}

/* Rows the last statement of sql touched (its command tag's count), or -1. */
static long pg_exec_rows(struct pg_store *s, const char *sql)
{
	PGresult *r = pg_exec(s, sql);
	long n;

	if (!r)
		return -1;
	n = strtol(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return n;
}

/* The first column of the first row as a number, 0 when no row, -1 on error. */
static long pg_exec_value(struct pg_store *s, const char *sql)
{
	PGresult *r = pg_exec(s, sql);
	long n;

	if (!r)
		return -1;
	n = PQntuples(r) > 0 ? strtol(PQgetvalue(r, 0, 0), NULL, 10) : 0;
	PQclear(r);
	return n;
}

/* Leaves a failed or unwanted transaction; the connection stays usable. */
static void pg_rollback(struct pg_store *s)
{
	if (s->c && PQstatus(s->c) == CONNECTION_OK)
		PQclear(PQexec(s->c, "ROLLBACK"));
}

static void pg_insert_sql(struct pg_store *s, char *sql, size_t len, const char *before, uint64_t key)
{
	snprintf(sql, len, "%sINSERT INTO inbox(owner, id) VALUES (%s, %" PRId64 ") %s", before, s->owner,
		 (int64_t)key, s->on_conflict);
}

static int pg_check_and_put(struct dedup_store *base, uint64_t key, uint64_t now_ns)
{
	struct pg_store *s = pg_of(base);
	char sql[SQL_MAX];
	long n;

	(void)now_ns;
	pg_insert_sql(s, sql, sizeof(sql), "", key);
	n = pg_exec_rows(s, sql);
	return n < 0 ? -1 : n == 0;
}

static int pg_lookup(struct dedup_store *base, uint64_t key, uint64_t now_ns)
{
	struct pg_store *s = pg_of(base);
	char sql[SQL_MAX];

	(void)now_ns;
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM inbox WHERE owner = %s AND id = %" PRId64 "%s", s->owner,
		 (int64_t)key, s->fresh);
	return (int)pg_exec_value(s, sql);
}

static int pg_put(struct dedup_store *base, uint64_t key, uint64_t now_ns)
{
	struct pg_store *s = pg_of(base);
	char sql[SQL_MAX];

	(void)now_ns;
	snprintf(sql, sizeof(sql),
		 "INSERT INTO inbox(owner, id) VALUES (%s, %" PRId64 ") ON CONFLICT (owner, id) DO UPDATE SET at = now()",
		 s->owner, (int64_t)key);
	return pg_exec_rows(s, sql) < 0 ? -1 : 0;
}

/* The COMMIT's reply was lost: on a new connection, is the effect's row there? DONE, or -1. */
static int pg_commit_outcome(struct pg_store *s, uint64_t token)
{
	char sql[SQL_MAX];

	PQfinish(s->c);
	s->c = NULL;
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM effects WHERE owner = %s AND token = %" PRId64, s->owner,
		 (int64_t)token);
	return pg_exec_value(s, sql) > 0 ? DEDUP_TX_DONE : -1;
}

/* The effect's row and the COMMIT. DONE, or -1 (rolled back or unknown). */
static int pg_commit(struct pg_store *s, uint64_t key, uint32_t consumer)
{
	uint64_t token = s->token++;
	char sql[SQL_MAX];
	PGresult *r;
	bool ok;

	snprintf(sql, sizeof(sql),
		 "INSERT INTO effects(owner, id, consumer, token) VALUES (%s, %" PRId64 ", %u, %" PRId64 "); COMMIT",
		 s->owner, (int64_t)key, (unsigned)consumer, (int64_t)token);
	r = PQexec(s->c, sql);
	/* a COMMIT of a failed transaction answers ROLLBACK */
	ok = PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0;
	PQclear(r);
	if (ok)
		return DEDUP_TX_DONE;
	if (PQstatus(s->c) != CONNECTION_OK)
		return pg_commit_outcome(s, token);
	pg_rollback(s);
	return -1;
}

static int pg_execute_once(struct dedup_store *base, uint64_t key, uint64_t now_ns, const struct dedup_effect *fx)
{
	struct pg_store *s = pg_of(base);
	char sql[SQL_MAX];
	long n;

	(void)now_ns;
	pg_insert_sql(s, sql, sizeof(sql), "BEGIN; ", key);
	n = pg_exec_rows(s, sql);
	if (n != 1) {
		pg_rollback(s); /* nothing to keep: the key was there (0), or the insert failed */
		return n == 0 ? DEDUP_TX_SEEN : -1;
	}
	for (int stage = DEDUP_TX_INSERTED; stage <= DEDUP_TX_EFFECT; stage++) {
		/* at EFFECT, the effect's row is not sent yet: it goes with the COMMIT */
		switch (fx->at(fx->arg, (enum dedup_tx_stage)stage)) {
		case DEDUP_TX_GO:
			break;
		case DEDUP_TX_DIE:
			return DEDUP_TX_DIED;
		case DEDUP_TX_FAIL:
			pg_rollback(s); /* a lost connection rolls it back too */
			return DEDUP_TX_FAILED;
		}
	}
	return pg_commit(s, key, fx->consumer);
}

static size_t pg_size(struct dedup_store *base)
{
	struct pg_store *s = pg_of(base);
	char sql[SQL_MAX];
	long n;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM inbox WHERE owner = %s", s->owner);
	n = pg_exec_value(s, sql);
	return n < 0 ? 0 : (size_t)n;
}

/* Closing the connection rolls back whatever transaction is open, as a crash would. */
static void pg_free(struct dedup_store *base)
{
	struct pg_store *s = pg_of(base);

	PQfinish(s->c);
	PQfreemem(s->owner);
	free(s->conninfo);
	free(s);
}

static const struct dedup_store_ops dedup_pg_ops = {
	.name = "postgres",
	.check_and_put = pg_check_and_put,
	.lookup = pg_lookup,
	.put = pg_put,
	.execute_once = pg_execute_once,
	.size = pg_size,
	.free = pg_free,
};

/* The tables, once: several stores may open at the same instant. 0 or -1. */
static int pg_tables(struct pg_store *s)
{
	static const char sql[] =
		"BEGIN; SELECT pg_advisory_xact_lock(" INBOX_LOCK "); "
		"CREATE TABLE IF NOT EXISTS inbox (owner text NOT NULL, id bigint NOT NULL, "
		"at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (owner, id)); "
		"CREATE TABLE IF NOT EXISTS effects (owner text NOT NULL, id bigint NOT NULL, consumer integer NOT NULL, "
		"token bigint NOT NULL, at timestamptz NOT NULL DEFAULT now()); COMMIT";

	if (pg_exec_rows(s, sql) < 0) {
		pg_rollback(s);
		return -1;
	}
	return 0;
}

/* The ttl's clauses: an expired row is taken over by the insert, and a lookup doesn't see it. */
static void pg_ttl(struct pg_store *s, uint64_t ttl_ns)
{
	uint64_t us = ttl_ns / 1000 + (ttl_ns % 1000 != 0);

	if (!ttl_ns) {
		snprintf(s->on_conflict, sizeof(s->on_conflict), "ON CONFLICT DO NOTHING");
		return;
	}
	snprintf(s->on_conflict, sizeof(s->on_conflict),
		 "ON CONFLICT (owner, id) DO UPDATE SET at = now() WHERE inbox.at < now() - interval '%" PRIu64
		 " microseconds'",
		 us);
	snprintf(s->fresh, sizeof(s->fresh), " AND at >= now() - interval '%" PRIu64 " microseconds'", us);
}

struct dedup_store *dedup_pg_new(const char *url, const char *owner, uint64_t ttl_ns, char *err, size_t errlen)
{
	struct pg_store *s = calloc(1, sizeof(*s));
	char why[256];

	if (!s || !(s->conninfo = strdup(url ? url : ""))) {
		free(s);
		log_seterr(err, errlen, "out of memory");
		return NULL;
	}
	s->base.ops = &dedup_pg_ops;
	if (getrandom(&s->token, sizeof(s->token), 0) != sizeof(s->token))
		s->token = clock_wall_ns();
	s->token &= INT64_MAX >> 1; /* stays positive as it counts up */
	pg_ttl(s, ttl_ns);
	s->c = pg_connect(s->conninfo);
	if (PQstatus(s->c) != CONNECTION_OK) {
		log_seterr(err, errlen, "cannot reach PostgreSQL at %s: %s", url ? url : "(none)",
			   pg_errline(s->c, why, sizeof(why)));
		goto fail;
	}
	s->owner = PQescapeLiteral(s->c, owner ? owner : "", strlen(owner ? owner : ""));
	if (!s->owner || pg_tables(s) < 0) {
		log_seterr(err, errlen, "PostgreSQL at %s: cannot create the inbox tables: %s", url,
			   pg_errline(s->c, why, sizeof(why)));
		goto fail;
	}
	return &s->base;
fail:
	pg_free(&s->base);
	return NULL;
}
