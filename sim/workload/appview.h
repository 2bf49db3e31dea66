/* appview.h — the ledger of the user's own app: what the proxy saw it get and settle, and what its effects file says it did. */
#ifndef DUPSIM_APPVIEW_H
#define DUPSIM_APPVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proxy/proxy.h"
#include "truth/events.h"
#include "truth/ledger.h"
#include "workload/msgid.h"
#include "workload/workload.h"

/*
 * dupsim can't see inside the app, so each delivery's fate is read off what
 * it can see (DESIGN.md, "Your own application"):
 *   - the proxy's tap: every basic.deliver with its content header (message
 *     id, copy, connection) and every basic.ack / nack / reject the app sends,
 *     dropped or not, and the end of each channel and connection;
 *   - instance i's effects file: one line per side effect it executed,
 *     starting with the message id, written before the ack (the contract).
 * When the app settles a delivery of m, or loses it unsettled (its channel or
 * connection ended), instance i's effects file is read to its end first: the
 * delivery was executed when the file names m more often than the
 * deliveries of m to i already found executed. An executed delivery goes
 * into the ledger as decided, accepted and executed; one acked without a new
 * effect as decided and rejected (the app's dedup said "seen"); one lost
 * unsettled without a new effect as abandoned (no decision: a crash before
 * the side effect). So the ledger's usual rules give duplicate deliveries,
 * duplicates processed (every cause `unknown_app`), gaps and the fault
 * events: an app instance's connections are sessions, ended by the proxy's
 * rules, by dupsim's kill -9 of the instance (app_crash), by the instance's
 * own exit (app_exit), or otherwise (connection_lost).
 *
 * A connection cut while its instance lives may still be mid-work: what it
 * had unsettled waits (in limbo) until the instance dies, until another
 * delivery of the same message is judged, or 10 s, and is judged then.
 * Effects are matched per instance, by the connection's owner (the process
 * holding the client's TCP port); when no owner is found, over all
 * instances (counted as unmapped).
 */
struct appview_config {
	struct ledger *ledger;
	struct events *events;
	struct workload *w;	/* live counters: deliveries, duplicate_deliveries, executions, last_delivery_ns */
	struct msgid_space ids;
	unsigned instances;
	const char *dir;	/* effects-<i>.txt are made here */
	/* The instance holding the client's TCP port, and its process (*pid); -1 when none, -2 for
	 * dupsim's own connections (left alone). Called from the proxy's thread, outside the lock. */
	int (*owner)(void *arg, uint16_t port, pid_t *pid);
	void *owner_arg;
};

struct appview_totals {
	uint64_t conns;		    /* the app's connections through the proxy */
	uint64_t conns_unmapped;    /* of those, with no owner found */
	uint64_t deliveries;	    /* basic.deliver to the app */
	uint64_t redelivered;	    /* of those, with the redelivered flag */
	uint64_t foreign;	    /* deliveries whose message id is not this run's */
	uint64_t acks, nacks;	    /* settles by the app (acks include the ones a rule dropped) */
	uint64_t abandoned;	    /* lost unsettled with no new effect */
	uint64_t judged_late;	    /* of the unsettled ones, judged out of limbo */
	uint64_t effect_lines;	    /* lines read from the effects files */
	uint64_t effects_foreign;   /* lines that do not start with one of this run's ids */
	uint64_t effects_unmatched; /* effects no delivery of theirs to their instance explains */
};

struct appview;

/* Makes dir/effects-<i>.txt (empty) for every instance. 0, or -1 with one line in err. */
int appview_new(struct appview **out, const struct appview_config *cfg, char *err, size_t errlen);
/* Instance i's effects file: DUPSIM_EFFECTS. */
const char *appview_effects_path(const struct appview *v, unsigned i);
/* The proxy's tap, to put into proxy_config.tap. */
struct proxy_tap appview_tap(struct appview *v);
/* dupsim is about to kill -9 instance i: its connections that end from now on end as app_crash. */
void appview_note_killing(struct appview *v, unsigned i, uint64_t now_ns);
/* Deliveries the app holds, not settled yet: the run is not drained while there are any. */
size_t appview_unsettled(struct appview *v);
/* Judges what waited too long in limbo, or whose instance is gone; call now and then. */
void appview_poll(struct appview *v, uint64_t now_ns);
/* Once the app is stopped and the proxy saw its connections end: judges the rest, reads every effect. */
void appview_finish(struct appview *v, struct appview_totals *t);
void appview_free(struct appview *v);

#endif
