/* parse.c — value parsers for scenario files and command lines, and the edit distance behind "did you mean". */
#include "core/parse.h"
#include "core/clock.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

/* A finite, non-negative decimal at the start of s (no sign, no blanks); *end after it. */
static int parse_number(const char *s, double *v, char **end)
{
	if (!s || ((*s < '0' || *s > '9') && *s != '.'))
		return -1;
	errno = 0;
	*v = strtod(s, end);
	return errno || *end == s || !isfinite(*v) ? -1 : 0;
}

int parse_duration(const char *s, uint64_t *out_ns)
{
	static const struct {
		const char *unit;
		double ns;
	} units[] = {
		{ "us", 1e3 }, { "ms", 1e6 }, { "s", 1e9 }, { "m", 60e9 }, { "h", 3600e9 },
	};
	char *end;
	double v;

	if (parse_number(s, &v, &end) < 0)
		return -1;
	if (*end == '\0') {
		if (v != 0)
			return -1;
		*out_ns = 0;
		return 0;
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].unit) == 0) {
			double ns = v * units[i].ns;

			if (ns > 1e18)
				return -1;
			*out_ns = (uint64_t)llround(ns);
			return 0;
		}
	}
	return -1;
}

int parse_prob(const char *s, double *out)
{
	char *end;
	double v;

	if (parse_number(s, &v, &end) < 0)
		return -1;
	if (*end == '%') {
		if (end[1] != '\0')
			return -1;
		v /= 100.0;
	} else if (*end != '\0') {
		return -1;
	}
	if (v < 0 || v > 1)
		return -1;
	*out = v;
	return 0;
}

int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	if (!s)
		return -1;
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

int parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port, bool allow_zero)
{
	const char *colon;
	uint64_t p;
	size_t n;

	if (!s || !(colon = strrchr(s, ':')))
		return -1;
	n = (size_t)(colon - s);
	if (n == 0 || n >= hostlen)
		return -1;
	if (parse_u64(colon + 1, &p) || p > 65535 || (p == 0 && !allow_zero))
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	*port = (uint16_t)p;
	return 0;
}

int parse_listen_addr(const char *s, char *host, size_t hostlen, uint16_t *port)
{
	uint64_t v;

	if (s && !strchr(s, ':') && parse_u64(s, &v) == 0 && v <= 65535) {
		if (hostlen < sizeof("127.0.0.1"))
			return -1;
		snprintf(host, hostlen, "127.0.0.1");
		*port = (uint16_t)v;
		return 0;
	}
	return parse_hostport(s, host, hostlen, port, true);
}

size_t parse_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t row[64];

	if (lb >= sizeof(row) / sizeof(row[0]) || la >= 64)
		return la > lb ? la : lb;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}
