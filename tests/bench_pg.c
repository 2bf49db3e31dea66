/* bench_pg.c — `make bench`: the postgres inbox on a private PostgreSQL: transactions (id + effect row, one COMMIT) per second, one at a time. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/clock.h"
#include "dedup/dedup.h"
#include "nodes/postgres.h"

#define N 5000

static enum dedup_tx_step nothing(void *arg, enum dedup_tx_stage stage)
{
	(void)arg;
	(void)stage;
	return DEDUP_TX_GO;
}

/* n transactions one after another: new ids (DONE), or the same ids again (SEEN). Per second. */
static double bench(struct dedup_store *s, uint64_t first, int expect, unsigned *wrong)
{
	struct dedup_effect fx = { .at = nothing };
	uint64_t t0 = clock_now_ns();

	for (uint64_t i = 0; i < N; i++)
		*wrong += dedup_execute_once(s, first + i, 0, &fx) != expect;
	return N / ((double)(clock_now_ns() - t0) / NS_PER_S);
}

int main(void)
{
	struct node_opts o = { .quiet = true };
	struct node *n;
	struct dedup_store *s;
	char err[1024];
	unsigned wrong = 0;
	double done, seen;

	signal(SIGPIPE, SIG_IGN);
	if (node_new(&n, &postgres_ops, &o, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_pg: %s\n", err);
		return 1;
	}
	s = dedup_pg_new(node_url(n), "bench", 0, err, sizeof(err));
	if (!s) {
		fprintf(stderr, "bench_pg: %s\n", err);
		node_free(n);
		return 1;
	}
	printf("\n== bench_pg: the inbox on a private PostgreSQL (fsync on), one connection, one at a time ==\n");
	done = bench(s, 1, DEDUP_TX_DONE, &wrong);
	seen = bench(s, 1, DEDUP_TX_SEEN, &wrong);
	printf("new id (INSERT inbox + effect row + COMMIT)  %8.0f tx/s\n", done);
	printf("duplicate (INSERT finds the row, ROLLBACK)   %8.0f tx/s%s\n", seen,
	       wrong ? "   (WRONG: an unexpected result)" : "");
	dedup_free(s);
	node_free(n);
	return wrong != 0;
}
