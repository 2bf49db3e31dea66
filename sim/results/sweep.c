/* sweep.c — a sweep in memory, sweep.csv written from it and read back. */
#include "results/sweep.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "results/csv.h"

const char *const sweep_col_name[SWEEP_COLS] = {
	"committed",	    "publish_attempts",		"excess_copies",      "deliveries",
	"duplicate_deliveries", "duplicates_processed", "lost",	      "wrongly_suppressed",
	"duplicate_rate",	    "predicted_duplicate_rate", "miss_probability", "miss_ci_low",
	"miss_ci_high",	    "faults_fired",		"fault_events",	      "duplicate_rate_low",
	"duplicate_rate_high",
	"processed_per_s",	    "misses_race",		"store_latency_us_p50", "store_ping_ms",
};

void sweep_init(struct sweep *s, const char *const *keys, size_t nvaried)
{
	memset(s, 0, sizeof(*s));
	s->nvaried = nvaried < SWEEP_VARY_MAX ? nvaried : SWEEP_VARY_MAX;
	for (size_t k = 0; k < s->nvaried; k++)
		snprintf(s->keys[k], sizeof(s->keys[k]), "%s", keys[k]);
	for (int c = 0; c < SWEEP_COLS; c++)
		s->has[c] = true;
}

void sweep_release(struct sweep *s)
{
	free(s->rows);
	memset(s, 0, sizeof(*s));
}

static struct sweep_row *sweep_new_row(struct sweep *s, const char *name)
{
	struct sweep_row *w;

	if (s->nrows == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		struct sweep_row *nr = realloc(s->rows, cap * sizeof(*nr));

		if (!nr)
			return NULL;
		s->rows = nr;
		s->cap = cap;
	}
	w = &s->rows[s->nrows++];
	memset(w, 0, sizeof(*w));
	snprintf(w->name, sizeof(w->name), "%s", name);
	for (int c = 0; c < SWEEP_COLS; c++)
		w->v[c] = NAN;
	return w;
}

int sweep_add(struct sweep *s, const char *name, const char *const *values, const struct results *res)
{
	struct sweep_row *w = sweep_new_row(s, name);
	double fired = 0;

	if (!w)
		return -1;
	for (size_t k = 0; k < s->nvaried; k++)
		snprintf(w->values[k], sizeof(w->values[k]), "%s", values[k]);
	if (!res) {
		snprintf(w->status, sizeof(w->status), "failed");
		return 0;
	}
	for (size_t i = 0; i < res->faults.rule_count; i++)
		if (res->faults.rules[i].in_summary)
			fired += res->faults.rules[i].fired;
	memcpy(w->v, (const double[SWEEP_COLS]){ res->committed, res->publish_attempts, res->excess_copies,
						  res->deliveries, res->duplicate_deliveries, res->duplicates_processed,
						  res->lost, res->wrongly_suppressed, res->duplicate_rate,
						  res->predicted.duplicate_rate, res->miss.estimate, res->miss.ci_low,
						  res->miss.ci_high, fired, res->fault_events, res->duplicate_rate_low,
						  res->duplicate_rate_high, res->throughput.processed_per_s,
						  res->misses_by_cause[LEDGER_CAUSE_RACE], res->dedup.store_latency_us_p50,
						  res->hosts.store_ping_ms },
	       sizeof(w->v));
	snprintf(w->status, sizeof(w->status), "%s", *res->status ? res->status : "?");
	return 0;
}

/* Counts are whole numbers; rates and intervals keep 8 digits. */
static bool sweep_col_is_count(int c)
{
	return c <= SWEEP_WRONGLY_SUPPRESSED || c == SWEEP_FAULTS_FIRED || c == SWEEP_FAULT_EVENTS ||
	       c == SWEEP_MISSES_RACE;
}

void sweep_write_csv(const struct sweep *s, FILE *f)
{
	fputs("run", f);
	for (size_t k = 0; k < s->nvaried; k++)
		fprintf(f, ",%s", s->keys[k]);
	for (int c = 0; c < SWEEP_COLS; c++)
		if (s->has[c])
			fprintf(f, ",%s", sweep_col_name[c]);
	fputs(",status\n", f);
	for (size_t i = 0; i < s->nrows; i++) {
		const struct sweep_row *w = &s->rows[i];
		bool failed = strcmp(w->status, "failed") == 0;

		fputs(w->name, f);
		for (size_t k = 0; k < s->nvaried; k++)
			fprintf(f, ",%s", w->values[k]);
		/* a failed run: empty cells; a run's unknown figure: nan */
		for (int c = 0; c < SWEEP_COLS; c++)
			if (!s->has[c])
				continue;
			else if (failed)
				fputc(',', f);
			else
				fprintf(f, sweep_col_is_count(c) ? ",%.0f" : ",%.8g", w->v[c]);
		fprintf(f, ",%s\n", w->status);
	}
}

int sweep_load(struct sweep *s, const char *dir, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int cols[SWEEP_COLS], ccommitted, cstatus;
	struct csv t;

	memset(s, 0, sizeof(*s));
	snprintf(path, sizeof(path), "%s/sweep.csv", dir);
	if (csv_read(path, &t) < 0)
		return log_seterr(err, errlen, "cannot read %s: %s", path,
				  errno == EINVAL ? "it has no header line" : strerror(errno));
	ccommitted = csv_col(&t, "committed");
	if (csv_col(&t, "run") != 0 || ccommitted < 1 || (size_t)ccommitted - 1 > SWEEP_VARY_MAX) {
		csv_free(&t);
		return log_seterr(err, errlen, "%s: expected the columns run, <varied keys (at most %d)>, committed, ...",
				  path, SWEEP_VARY_MAX);
	}
	sweep_init(s, (const char *const *)t.head + 1, (size_t)ccommitted - 1);
	for (int c = 0; c < SWEEP_COLS; c++) {
		cols[c] = csv_col(&t, sweep_col_name[c]);
		s->has[c] = cols[c] >= 0;
	}
	cstatus = csv_col(&t, "status");
	for (size_t i = 0; i < t.nrows; i++) {
		struct sweep_row *w = sweep_new_row(s, csv_cell(&t, i, 0));

		if (!w) {
			csv_free(&t);
			sweep_release(s);
			return log_seterr(err, errlen, "out of memory for %s", path);
		}
		for (size_t k = 0; k < s->nvaried; k++)
			snprintf(w->values[k], sizeof(w->values[k]), "%s", csv_cell(&t, i, (int)k + 1));
		for (int c = 0; c < SWEEP_COLS; c++)
			w->v[c] = csv_num(&t, i, cols[c]);
		snprintf(w->status, sizeof(w->status), "%s", csv_cell(&t, i, cstatus));
	}
	csv_free(&t);
	return 0;
}
