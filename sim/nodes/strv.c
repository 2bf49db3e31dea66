/* strv.c — a NULL-terminated vector of malloc'd strings, built with printf formats. */
#include "nodes/strv.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int strv_addf(struct strv *s, const char *fmt, ...)
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

void strv_release(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}
