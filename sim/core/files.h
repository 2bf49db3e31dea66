/* files.h — folders and files: mkdir -p, rm -rf, results folders, atomic writes, whole-file reads. */
#ifndef DUPSIM_CORE_FILES_H
#define DUPSIM_CORE_FILES_H

#include <stddef.h>

/* mkdir -p; 0 or -1 with errno set. */
int files_mkdir_p(const char *path, unsigned mode);
/* rm -rf of a folder tree (does not follow symlinks); 0 or -1. */
int files_rm_rf(const char *path);
/*
 * The results folder of a run, sweep or validation: out when given, else
 * results/<name>[-<kind>]-<UTC time>. Creates it and checks it is writable,
 * so a bad folder fails before minutes of work. 0, or -1 with errno set.
 */
int files_results_dir(char *buf, size_t len, const char *out, const char *name, const char *kind);
/* Writes len bytes to path atomically: path.tmp, fsync, rename. 0 or -1. */
int files_write_atomic(const char *path, const void *data, size_t len);
/* Reads a whole small file into a NUL-terminated malloc'd buffer; NULL on error. */
char *files_read(const char *path, size_t *len);

#endif
