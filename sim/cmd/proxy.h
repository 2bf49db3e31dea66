/* proxy.h — `dupsim proxy`: the fault proxy standalone, in front of any AMQP application. */
#ifndef DUPSIM_CMD_PROXY_H
#define DUPSIM_CMD_PROXY_H

/* `dupsim proxy ...`; argv[0] is "proxy". Returns an exit code: 0, 1 (could not run), 2 (bad command line). */
int proxy_cmd(int argc, char **argv);

#endif
