/* strv.h — a NULL-terminated vector of malloc'd strings, built with printf formats: a child's argv and envp. */
#ifndef DUPSIM_NODES_STRV_H
#define DUPSIM_NODES_STRV_H

#include <stddef.h>

/* Embedded; { 0 } is an empty vector. v stays NULL-terminated after every add. */
struct strv {
	char **v;
	size_t n, cap;
};

/* Appends one formatted string; 0, or -1 when out of memory (the vector is unchanged). */
int strv_addf(struct strv *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Frees the strings and the vector; s is empty again. */
void strv_release(struct strv *s);

#endif
