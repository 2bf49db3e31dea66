/* log.h — one-line messages on stderr, and error text into a caller's buffer. */
#ifndef DUPSIM_CORE_LOG_H
#define DUPSIM_CORE_LOG_H

#include <stddef.h>

/* "dupsim: " + message + newline on stderr, one write so threads don't interleave. */
void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* snprintf into err (if non-NULL) and return -1: `return log_seterr(err, len, "...")`. */
int log_seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
