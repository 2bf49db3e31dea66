/* cli.h — what the commands share: Ctrl-C and SIGTERM. */
#ifndef DUPSIM_CLI_H
#define DUPSIM_CLI_H

#include <signal.h>
#include <stdbool.h>

/* SIGINT and SIGTERM received since cli_catch_signals: the commands poll it and wind down. */
extern volatile sig_atomic_t cli_signals;

/*
 * Counts SIGINT and SIGTERM into cli_signals, and calls then (if not NULL;
 * it must be async-signal-safe) on each. With second_exits, a second one
 * stops waiting: the nodes this process started are killed and it exits 130
 * at once.
 */
void cli_catch_signals(bool second_exits, void (*then)(void));

#endif
