/* run.h — one `dupsim run`: the shared state of its publishers and consumers, and the command itself. */
#ifndef DUPSIM_RUN_H
#define DUPSIM_RUN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "workload/consumer.h"
#include "workload/publisher.h"
#include "workload/workload.h"

/* `dupsim run FILE [--set section.key=value]... [--out DIR] [--seed N] [--quiet]`; returns an exit code. */
int run_cli(int argc, char **argv);

#endif
