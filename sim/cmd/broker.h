/* broker.h — `dupsim broker start|stop|status`: one private RabbitMQ node kept up across runs, found again through a state file. */
#ifndef DUPSIM_CMD_BROKER_H
#define DUPSIM_CMD_BROKER_H

#include <stddef.h>

/*
 * The node kept up by `dupsim broker start`, if it is alive: copies its URL
 * into url and returns 0; -1 when there is none. The state lives in
 * $DUPSIM_STATE_DIR, else $XDG_STATE_HOME/dupsim, else ~/.local/state/dupsim.
 */
int broker_find_persistent(char *url, size_t len);

/* `dupsim broker start|stop|status`; argv[0] is "broker". Returns an exit code. */
int broker_cli(int argc, char **argv);

#endif
