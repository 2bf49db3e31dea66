/* sweep.h — node folders left behind by a dupsim that was SIGKILLed: an owner file in each, and a sweep that removes the orphans. */
#ifndef DUPSIM_NODES_SWEEP_H
#define DUPSIM_NODES_SWEEP_H

#include <stdbool.h>

/*
 * Writes dir/dupsim.owner naming this process (pid and start time) and the
 * marker of the node that lives in dir. 0, or -1 with errno set.
 */
int sweep_own(const char *dir, const char *marker);

/*
 * Removes every base/dupsim-XXXXXX folder of this user whose owner file
 * names a process that is gone and a marker no live process carries (the
 * node and its helpers). A dupsim killed with SIGKILL (a check test past its
 * timeout, Ctrl-C under libcheck, which SIGKILLs the test's process group)
 * can't remove its folders itself. Once per process and base; one line on
 * stderr per folder removed unless quiet.
 */
void sweep_once(const char *base, bool quiet);

#endif
