/* util.h — small shared helpers: clocks, value parsing, ports, folders, logging. */
#ifndef DUPSIM_UTIL_H
#define DUPSIM_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull

/* Monotonic clock in nanoseconds. */
uint64_t util_now_ns(void);
/* Wall clock (CLOCK_REALTIME) in nanoseconds since the epoch. */
uint64_t util_wall_ns(void);
/* Sleeps for ns nanoseconds, resuming after signals. */
void util_sleep_ns(uint64_t ns);

/*
 * Value parsers for scenario files and command lines. Each returns 0 on
 * success and -1 when the text is not a well-formed value; on -1 *out is
 * untouched. Surrounding blanks are not accepted (the caller trims).
 */
/* "0", "250us", "500ms", "2s", "1.5s", "5m", "1h" -> nanoseconds. A bare
 * number other than 0 is rejected: a duration needs a unit. */
int util_parse_duration(const char *s, uint64_t *out_ns);
/* "0.01" or "1%" -> 0.01; must lie in [0, 1]. */
int util_parse_prob(const char *s, double *out);
/* Decimal unsigned integer, no sign, no trailing junk. */
int util_parse_u64(const char *s, uint64_t *out);
/* "true/false/yes/no/on/off/1/0". */
int util_parse_bool(const char *s, bool *out);
/* "HOST:PORT" with a numeric port 0..65535 (0 allowed only if allow_zero). */
int util_parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port, bool allow_zero);

/* Formats ns as "1.5s", "250ms", ... into buf (at least 32 bytes). */
const char *util_fmt_duration(uint64_t ns, char *buf, size_t len);

/* A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0). */
int util_free_port(uint16_t *port);
/* True when something accepts TCP connections on 127.0.0.1:port. */
bool util_port_open(uint16_t port);

/* mkdir -p; 0 or -1 with errno set. */
int util_mkdir_p(const char *path, unsigned mode);
/* rm -rf of a folder tree (does not follow symlinks); 0 or -1. */
int util_rm_rf(const char *path);
/*
 * The results folder of a run, sweep or validation: out when given, else
 * results/<name>[-<kind>]-<UTC time>. Creates it and checks it is writable,
 * so a bad folder fails before minutes of work. 0, or -1 with errno set.
 */
int util_results_dir(char *buf, size_t len, const char *out, const char *name, const char *kind);
/* Writes len bytes to path atomically: path.tmp, fsync, rename. 0 or -1. */
int util_write_file_atomic(const char *path, const void *data, size_t len);
/* Reads a whole small file into a NUL-terminated malloc'd buffer; NULL on error. */
char *util_read_file(const char *path, size_t *len);

/* "dupsim: " + message + newline on stderr, one write so threads don't interleave. */
void util_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* snprintf into err (if non-NULL) and return -1: `return util_err(err, len, "...")`. */
int util_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Levenshtein distance between two short strings (for "did you mean"). */
size_t util_edit_distance(const char *a, const char *b);

/* splitmix64: a seeded, reproducible generator shared by every random decision. */
struct util_rng {
	uint64_t state;
};
void util_rng_seed(struct util_rng *r, uint64_t seed);
uint64_t util_rng_next(struct util_rng *r);
/* Uniform in [0, 1). */
double util_rng_unit(struct util_rng *r);

#endif
