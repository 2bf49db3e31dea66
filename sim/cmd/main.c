/* main.c — the dupsim command: dispatches to run, proxy and broker. */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "cmd/batch.h"
#include "cmd/broker.h"
#include "cmd/plot.h"
#include "cmd/proxy.h"
#include "cmd/run.h"

#define DUPSIM_VERSION "0.1.0"

static void usage(FILE *f)
{
	fprintf(f, "usage: dupsim COMMAND [ARGS]\n"
		   "\n"
		   "Measures duplicate delivery in RabbitMQ against a real broker with real faults.\n"
		   "\n"
		   "commands:\n"
		   "  run      run a scenario file: publishers, consumers, faults, dedup; writes results/\n"
		   "  sweep    run a scenario over a grid of values (--vary section.key=v1,v2,...)\n"
		   "  validate run a scenario until the miss probability is shown below a target\n"
		   "  coverage run a scenario N times: does the interval cover the pooled estimate?\n"
		   "  plot     draw the plots and report.md of a run or sweep folder\n"
		   "  proxy    AMQP fault proxy between any client and a broker (drops/cuts frames by rule)\n"
		   "  broker   start|stop|status a private RabbitMQ node kept up across runs\n"
		   "  help     this text; `dupsim COMMAND --help` for a command's own\n"
		   "  version  print the version\n");
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	/*
	 * Frame buffers (proxy, librabbitmq) are large and come and go with every
	 * reconnection. glibc raises its mmap threshold after the first such free,
	 * and from then on serves them from the heap, which fragments and never
	 * shrinks: a long run's memory creeps. A fixed threshold keeps them mmapped.
	 */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);

	if (!cmd || strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(cmd ? stdout : stderr);
		return cmd ? 0 : 2;
	}
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("dupsim %s\n", DUPSIM_VERSION);
		return 0;
	}
	if (strcmp(cmd, "run") == 0)
		return run_cli(argc - 1, argv + 1);
	if (strcmp(cmd, "sweep") == 0)
		return batch_sweep_cli(argc - 1, argv + 1);
	if (strcmp(cmd, "validate") == 0)
		return batch_validate_cli(argc - 1, argv + 1);
	if (strcmp(cmd, "coverage") == 0)
		return batch_coverage_cli(argc - 1, argv + 1);
	if (strcmp(cmd, "plot") == 0)
		return plot_cli(argc - 1, argv + 1);
	if (strcmp(cmd, "proxy") == 0)
		return proxy_cmd(argc - 1, argv + 1);
	if (strcmp(cmd, "broker") == 0)
		return broker_cli(argc - 1, argv + 1);
	fprintf(stderr, "dupsim: unknown command '%s'; commands: run, sweep, validate, coverage, plot, proxy, broker, help, version\n", cmd);
	return 2;
}
