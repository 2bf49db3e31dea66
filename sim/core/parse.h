/* parse.h — value parsers for scenario files and command lines, and the edit distance behind "did you mean". */
#ifndef DUPSIM_CORE_PARSE_H
#define DUPSIM_CORE_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Each parser returns 0 on success and -1 when the text is not a
 * well-formed value; on -1 *out is untouched. Surrounding blanks are not
 * accepted (the caller trims).
 */
/* "0", "250us", "500ms", "2s", "1.5s", "5m", "1h" -> nanoseconds. A bare
 * number other than 0 is rejected: a duration needs a unit. */
int parse_duration(const char *s, uint64_t *out_ns);
/* "0.01" or "1%" -> 0.01; must lie in [0, 1]. */
int parse_prob(const char *s, double *out);
/* Decimal unsigned integer, no sign, no trailing junk. */
int parse_u64(const char *s, uint64_t *out);
/* "true/false/yes/no/on/off/1/0". */
int parse_bool(const char *s, bool *out);
/* "HOST:PORT" with a numeric port 0..65535 (0 allowed only if allow_zero). */
int parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port, bool allow_zero);
/* A listening address given by a user: HOST:PORT, or a bare PORT on 127.0.0.1 (loopback unless
 * another host is named); port 0 = any free one. 0 or -1. */
int parse_listen_addr(const char *s, char *host, size_t hostlen, uint16_t *port);
/* Levenshtein distance between two short strings (for "did you mean"). */
size_t parse_edit_distance(const char *a, const char *b);

#endif
