/* api.h — the fault proxy's control API: HTTP + JSON over the proxy's rules, connections and counters. */
#ifndef DUPSIM_API_H
#define DUPSIM_API_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/proxy.h"

/*
 * The endpoints (DESIGN.md, "Control API"; Toxiproxy's API is the model):
 *   GET    /rules     the rules in force: [{"id", "rule", "p", "matched", "fired"}, ...]
 *   POST   /rules     {"rule": "drop basic.ack from=client p=0.01"} -> 201 and the rule
 *   GET    /rules/N   one rule
 *   PATCH  /rules/N   {"p": 0.05} (or "5%") -> the rule with its new probability
 *   DELETE /rules/N   204
 *   POST   /cut       cuts every open connection -> {"cut": K}
 *   GET    /stats     connections, bytes, frames and faults per method and direction
 * Errors are {"error": "..."} naming the field or word at fault: 400 for a
 * bad body or rule, 404 for an unknown path or rule id, 405 (with Allow) for
 * a method the path does not take, 413 for a body over 64 KiB.
 *
 * There is no authentication: whoever reaches the address can change the
 * faults. Bind it to loopback (what dupsim proxy does unless told a host).
 */

#define API_BODY_MAX 65536

struct api;

/*
 * Serves the API for px on host:port (port 0: any free one; see api_port),
 * in a thread of its own, until api_free. px must outlive it. Returns 0, or
 * -1 with one line in err.
 */
int api_new(struct api **out, struct proxy *px, const char *host, uint16_t port, char *err, size_t errlen);
/* The port actually listened on. */
uint16_t api_port(const struct api *a);
/* Stops serving (waits for the request being answered) and frees. NULL ok. */
void api_free(struct api *a);

#endif
