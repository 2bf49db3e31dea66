/* net.h — loopback ports: a free one, and whether one accepts connections. */
#ifndef DUPSIM_CORE_NET_H
#define DUPSIM_CORE_NET_H

#include <stdbool.h>
#include <stdint.h>

/* A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0). */
int net_free_port(uint16_t *port);
/* True when something accepts TCP connections on 127.0.0.1:port. */
bool net_port_open(uint16_t port);
/* The same on addr (dotted IPv4) instead of 127.0.0.1. */
bool net_port_open_at(const char *addr, uint16_t port);

#endif
