/* cli.c — what the commands share: Ctrl-C and SIGTERM. */
#include "cmd/cli.h"

#include <unistd.h>

#include "nodes/proc.h"

volatile sig_atomic_t cli_signals;
static volatile sig_atomic_t cli_second_exits;
static void (*volatile cli_then)(void);

static void cli_on_signal(int sig)
{
	(void)sig;
	if (cli_then)
		cli_then();
	if (++cli_signals >= 2 && cli_second_exits) {
		/* a second Ctrl-C: no more waiting; at least leave no broker behind */
		proc_cleanup_signal();
		_exit(130);
	}
}

void cli_catch_signals(bool second_exits, void (*then)(void))
{
	struct sigaction sa = { .sa_handler = cli_on_signal };

	cli_second_exits = second_exits;
	cli_then = then;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}
