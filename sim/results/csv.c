/* csv.c — the CSV files of a results folder: one reader for all of them, the writers of the run's tables. */
#include "results/csv.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/files.h"


/*
 * Copies the field at src[*pos] into dst, NUL-terminated, and moves *pos past
 * its terminator. Returns what ended it: ',', '\n', or 0 at the end of input.
 */
static int csv_field(const char *src, size_t len, size_t *pos, char *dst, size_t *dlen)
{
	size_t i = *pos, n = 0;
	bool quoted = false;
	int end;

	while (i < len) {
		char c = src[i];

		if (quoted) {
			if (c == '"' && i + 1 < len && src[i + 1] == '"') {
				dst[n++] = '"';
				i += 2;
				continue;
			}
			if (c == '"')
				quoted = false;
			else
				dst[n++] = c;
			i++;
			continue;
		}
		if (c == '"')
			quoted = true;
		else if (c == ',' || c == '\n')
			break;
		else if (c != '\r')
			dst[n++] = c;
		i++;
	}
	dst[n] = '\0';
	*dlen = n;
	end = i < len ? src[i] : 0;
	*pos = i < len ? i + 1 : len;
	return end;
}

/* Appends p to a growing array of strings; 0 or -1. */
static int csv_push(char ***v, size_t *n, size_t *cap, char *p)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		char **nv = realloc(*v, nc * sizeof(*nv));

		if (!nv)
			return -1;
		*v = nv;
		*cap = nc;
	}
	(*v)[(*n)++] = p;
	return 0;
}

int csv_read(const char *path, struct csv *t)
{
	size_t len = 0, pos = 0, out = 1, hcap = 0, ccap = 0, ncells = 0, nhead = 0;
	char *src, *empty;

	memset(t, 0, sizeof(*t));
	src = files_read(path, &len);
	if (!src)
		return -1;
	/* every field costs at least its bytes plus a terminator or the end of input */
	t->buf = malloc(2 * len + 2);
	if (!t->buf)
		goto fail;
	t->buf[0] = '\0';
	empty = t->buf;
	while (pos < len) {
		size_t fi = 0, n;
		int end;

		do {
			char *dst = t->buf + out;

			end = csv_field(src, len, &pos, dst, &n);
			out += n + 1;
			if (fi == 0 && n == 0 && end != ',')
				break; /* a blank line */
			if (t->ncols == 0) {
				if (csv_push(&t->head, &nhead, &hcap, dst) < 0)
					goto fail;
			} else if (fi < t->ncols) {
				if (fi == 0) {
					for (size_t k = 0; k < t->ncols; k++)
						if (csv_push(&t->cells, &ncells, &ccap, empty) < 0)
							goto fail;
					t->nrows++;
				}
				t->cells[(t->nrows - 1) * t->ncols + fi] = dst;
			}
			fi++;
		} while (end == ',');
		if (t->ncols == 0 && nhead > 0)
			t->ncols = nhead;
	}
	free(src);
	if (t->ncols == 0) {
		csv_free(t);
		errno = EINVAL;
		return -1;
	}
	return 0;
fail:
	free(src);
	csv_free(t);
	errno = ENOMEM;
	return -1;
}

void csv_free(struct csv *t)
{
	free(t->head);
	free(t->cells);
	free(t->buf);
	memset(t, 0, sizeof(*t));
}

int csv_col(const struct csv *t, const char *name)
{
	for (size_t i = 0; i < t->ncols; i++)
		if (strcmp(t->head[i], name) == 0)
			return (int)i;
	return -1;
}

const char *csv_cell(const struct csv *t, size_t row, int col)
{
	if (col < 0 || (size_t)col >= t->ncols || row >= t->nrows)
		return "";
	return t->cells[row * t->ncols + (size_t)col];
}

double csv_num(const struct csv *t, size_t row, int col)
{
	const char *s = csv_cell(t, row, col);
	char *end;
	double v;

	if (!*s)
		return NAN;
	errno = 0;
	v = strtod(s, &end);
	return *end || errno ? NAN : v;
}

size_t csv_rows(const char *dir, const char *name)
{
	char path[PATH_MAX];
	struct csv t;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (csv_read(path, &t) < 0)
		return 0;
	n = t.nrows;
	csv_free(&t);
	return n;
}

void csv_write_timeseries(FILE *f, const struct csv_tick *ticks, size_t n)
{
	fprintf(f, "t_s,published,committed,deliveries,duplicate_deliveries,processed,faults,reconnects\n");
	for (size_t i = 0; i < n; i++) {
		const struct csv_tick *t = &ticks[i];

		fprintf(f, "%.3f,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 "\n", t->t,
			t->published, t->confirmed, t->deliveries, t->duplicates, t->executions, t->faults, t->reconnects);
	}
}

void csv_write_copies(FILE *f, const uint64_t hist[34])
{
	fprintf(f, "copies,messages\n");
	for (int c = 0; c < 34; c++)
		if (hist[c])
			fprintf(f, "%s%d,%" PRIu64 "\n", c == 33 ? ">" : "", c == 33 ? 32 : c, hist[c]);
}

void csv_write_curve(FILE *f, const struct csv_curve_point *pts, size_t n)
{
	fprintf(f, "ttl_ms,miss_probability,ci_low,ci_high,duplicates,events\n");
	for (size_t i = 0; i < n; i++) {
		const struct csv_curve_point *p = &pts[i];

		if (isfinite(p->low) && isfinite(p->high))
			fprintf(f, "%.6g,%.6g,%.6g,%.6g,%" PRIu64 ",%" PRIu64 "\n", p->ttl_ms, p->estimate, p->low, p->high,
				p->dups, p->events);
		else
			fprintf(f, "%.6g,%.6g,,,%" PRIu64 ",%" PRIu64 "\n", p->ttl_ms, p->estimate, p->dups, p->events);
	}
}

void csv_write_periods(FILE *f, const struct csv_period *p, size_t n)
{
	fprintf(f, "start_s,end_s,label\n");
	for (size_t i = 0; i < n; i++) {
		fprintf(f, "%.6f,%.6f,\"", p[i].start_s, p[i].end_s);
		for (const char *c = p[i].label; *c; c++) {
			if (*c == '"')
				fputc('"', f); /* a quote inside a quoted field is doubled */
			fputc(*c, f);
		}
		fputs("\"\n", f);
	}
}
