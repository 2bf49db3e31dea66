/* proxy.h — the AMQP fault proxy: an epoll relay that forwards whole frames and drops or cuts by rule. */
#ifndef DUPSIM_PROXY_H
#define DUPSIM_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <amqp.h>

#include "proxy/relay.h"
#include "wire/rule.h"

/*
 * What a rule that fires does (DESIGN.md, "Fault semantics"). Rules decide on
 * whole method frames:
 *   drop ... then=close  the frame is swallowed and both sides are cut;
 *   drop ... then=hang   the frame is swallowed and the connection stays; a
 *                        method that carries content (basic.publish,
 *                        basic.deliver, basic.get-ok, basic.return) takes its
 *                        header and body frames on that channel with it, so
 *                        the peer never sees content without its method;
 *   cut                  the frame is forwarded, with its content if it has
 *                        some (the whole message arrives), then both sides
 *                        are cut.
 * A cut is a FIN to each side after the last byte forwarded to it, never an
 * RST that would throw those bytes away; what the peers send after the cut
 * is read and discarded until they close (or 2 s pass; proxy/relay.h).
 * A side that fails (reset, write error) gets the same treatment for the
 * other side: what was already decided for it still arrives.
 */

/* Directions: frames read from the client and sent to the broker, and back. */
enum proxy_dir {
	PROXY_TO_BROKER = 0, /* sent by the client */
	PROXY_TO_CLIENT = 1, /* sent by the broker */
};

/* One slot per known method, plus one for unknown method numbers. */
#define PROXY_METHOD_SLOTS 97

struct proxy_stats {
	uint64_t conns_accepted;
	uint64_t conns_by_listener[RELAY_LISTEN_MAX]; /* per listener: the connections each node of a cluster got */
	struct relay_peer_addr by_addr[RELAY_PEER_ADDRS]; /* per client address (test hosts): the first 16 seen */
	size_t naddrs;
	uint64_t conns_active;
	uint64_t conns_refused;	     /* over max_conns */
	uint64_t upstream_failures;  /* upstream connect failed */
	uint64_t malformed;	     /* connections closed for malformed AMQP */
	uint64_t drops;		     /* method frames swallowed by a drop rule */
	uint64_t content_dropped;    /* header and body frames swallowed with their method (then=hang) */
	uint64_t cuts;		     /* connections cut by a rule (drop+close or cut) */
	uint64_t cuts_requested;     /* connections cut by proxy_cut_all (the control API's POST /cut) */
	uint64_t bytes[2];	     /* per direction, bytes forwarded */
	uint64_t frames[2][4];	     /* per direction: method, header, body, heartbeat */
	uint64_t method_seen[2][PROXY_METHOD_SLOTS];
	uint64_t method_dropped[2][PROXY_METHOD_SLOTS];
	uint64_t loop_wakeups;	     /* epoll_wait returns: a relay with nothing to do must not wake */
	/*
	 * For the duplicate model: at every basic.ack a client sends (forwarded
	 * or dropped), ahead = the highest delivery tag of a basic.deliver the
	 * proxy forwarded to that client on that channel, minus the ack's tag,
	 * at least 0 (0 for multiple with tag 0: "everything"). That is, the
	 * deliveries the broker had already handed to the client beyond the one
	 * an ack covers, sampled at every ack during normal operation: when an
	 * ack is lost with its connection, these come back too, so the mean and
	 * spread of ahead say how many duplicates one lost ack causes. Over all
	 * connections; mean = ahead_sum / acks_sampled, variance from
	 * ahead_sq_sum. (ahead is at most the prefetch window while one is set:
	 * the squares' sum lasts 4e9 acks at a window of 65535.)
	 */
	uint64_t acks_sampled;
	uint64_t ahead_sum;
	uint64_t ahead_sq_sum;
	/* the same at the client acks a rule fired on (dropped, or cut after): the sizes the faults drew */
	uint64_t acks_hit;
	uint64_t ahead_hit_sum;
	uint64_t ahead_hit_sq_sum;
	/*
	 * Per rule id - 1, every id given so far (the configured rules are ids
	 * 1..rule_count of the config, so entry i is configured rule i; a rule
	 * the control API removed keeps its counts): rule_count entries each,
	 * owned by whoever called proxy_stats_get.
	 */
	size_t rule_count;
	uint64_t *rule_matched;	     /* matching frames, over all connections */
	uint64_t *rule_fired;	     /* times fired, over all connections */
};

/* proxy_fault.rule of a connection that proxy_cut_all (the control API's POST /cut) cut. */
#define PROXY_FAULT_CUT_ALL SIZE_MAX

/*
 * A rule fired: handed to the on_fault callback from the proxy's thread (or,
 * for a cut asked for, from the caller of proxy_cut_all, the relay's lock
 * held as always).
 */
struct proxy_fault {
	uint64_t time_ns;  /* clock_now_ns() when it fired */
	size_t rule;	   /* the rule's id - 1: for the configured rules, their index in the config;
			    * PROXY_FAULT_CUT_ALL for a cut asked for */
	const struct rule *r; /* the rule as it reads now (valid during the call); NULL for a cut asked for */
	uint32_t method;
	enum proxy_dir dir;
	uint64_t conn_id;
	uint16_t peer_port; /* the client's TCP port: tells the run whose connection it was */
};

/*
 * The tap: what the proxy learns of a consumer's traffic, so that a run can
 * keep the ledger of an app it cannot see inside (DESIGN.md, "Your own
 * application"). Every callback runs on the proxy's thread with the relay's
 * lock held; none may call back into the proxy. Pointers are valid only
 * during the call.
 */
struct proxy_delivery {
	uint64_t time_ns;      /* clock_now_ns() when its content header went to the client */
	uint64_t conn_id;
	uint16_t channel;
	bool redelivered;
	uint64_t delivery_tag;
	const amqp_basic_properties_t *props; /* decoded content header; NULL when it did not decode */
};

enum proxy_settle_kind {
	PROXY_SETTLE_ACK,     /* basic.ack from the client */
	PROXY_SETTLE_NACK,    /* basic.nack or basic.reject: the client gave it back (requeue or not) */
	PROXY_SETTLE_CHANNEL, /* the channel closed (either side): the broker takes back what is unsettled */
};

struct proxy_settle {
	uint64_t time_ns;
	uint64_t conn_id;
	uint16_t channel;
	enum proxy_settle_kind kind;
	uint64_t delivery_tag; /* ack/nack: the tag; 0 with multiple: everything outstanding */
	bool multiple;	       /* ack/nack: every tag up to delivery_tag; CHANNEL: always true */
};

struct proxy_tap {
	void (*conn_open)(void *arg, uint64_t conn_id, uint16_t peer_port);
	/* a basic.deliver and its content header reached the client (a cut after it included) */
	void (*delivery)(void *arg, const struct proxy_delivery *d);
	/* the client settled deliveries, or their channel closed; told before the rules judge the frame
	 * (a dropped ack was sent all the same) */
	void (*settle)(void *arg, const struct proxy_settle *s);
	/* the connection began to end (an EOF, a failure, a cut): whatever it had unsettled goes back
	 * to the queue; nothing more of it reaches the tap */
	void (*conn_close)(void *arg, uint64_t conn_id);
	void *arg;
};

struct proxy_config {
	const char *listen_host;   /* e.g. "127.0.0.1" */
	uint16_t listen_port;	   /* 0: any free port (see proxy_port) */
	const char *upstream_host;
	uint16_t upstream_port;
	/* A cluster: one more listener per other node (any free port), relaying to it; the rules,
	 * the tap and the counters are shared by all. See relay.h. */
	const struct relay_upstream *more;
	size_t nmore;
	const struct rule *rules;  /* copied */
	size_t rule_count;
	uint64_t seed;
	uint32_t max_frame;	   /* largest frame accepted; 0: FRAME_DEFAULT_MAX */
	size_t max_conns;	   /* 0: 4096 */
	bool log_faults;	   /* a line on stderr per fired rule */
	bool quiet;		   /* no line per malformed/failed connection */
	void (*on_fault)(void *arg, const struct proxy_fault *f);
	void *on_fault_arg;
	struct proxy_tap tap;	   /* all NULL: no tap (no content header is decoded) */
};

struct proxy;

/* Binds the listening socket and prepares the loop; 0 or -1 with one line in err. */
int proxy_new(struct proxy **out, const struct proxy_config *cfg, char *err, size_t errlen);
/* The port actually listened on. */
uint16_t proxy_port(const struct proxy *px);
/* Connections accepted from client address ip ("10.77.3.11"): 0 for one never seen or not IPv4. */
uint64_t proxy_conns_from(const struct proxy_stats *st, const char *ip);
/* Listener k's port (0: proxy_port; k <= nmore), 0 when there is none. */
uint16_t proxy_port_of(const struct proxy *px, size_t k);
/* Runs the event loop in the calling thread until proxy_stop (or proxy_stop_signal). 0 or -1. */
int proxy_run(struct proxy *px);
/* Runs the loop in a thread of its own. 0 or -1. */
int proxy_start(struct proxy *px);
/* Makes the loop return (async-signal-safe), and joins the thread if proxy_start made one. */
void proxy_stop(struct proxy *px);
/* Only wakes the loop to return; safe from a signal handler. */
void proxy_stop_signal(struct proxy *px);
/*
 * A consistent copy of the counters; callable from any thread. The rule
 * arrays are allocated for the caller: free them with proxy_stats_release.
 * Returns 0, or -1 when they could not be allocated (then they are NULL,
 * rule_count is 0, and every other counter is filled all the same).
 */
int proxy_stats_get(struct proxy *px, struct proxy_stats *out);
/* Frees what proxy_stats_get allocated in s (not s itself). NULL ok; s is left empty. */
void proxy_stats_release(struct proxy_stats *s);
/* Closes every connection and frees. NULL ok. */
void proxy_free(struct proxy *px);

/*
 * Changing the rules while the proxy runs (the control API, proxy/api.h).
 * Each call takes the relay's lock, so it may come from any thread but the
 * relay's own (not from on_fault). A change applies from the next frame the
 * relay judges on, on open connections too; ids are rule_set's (wire/rule.h):
 * the configured rules are 1..rule_count, each rule added takes the next id,
 * and no id is reused.
 */
struct proxy_rule {
	uint64_t id;
	struct rule rule;
	uint64_t matched, fired; /* over all connections */
};

/* Copies of the rules in force, in id order: *out (free() it; NULL when none) and *n. 0 or -1 (out of memory). */
int proxy_rules_get(struct proxy *px, struct proxy_rule **out, size_t *n);
/* The rule in force with this id into *out; 0, or -1 when there is none. */
int proxy_rule_get(struct proxy *px, uint64_t id, struct proxy_rule *out);
/* Adds r (from rule_parse) after the others; 0 and the new rule in *out, or -1 (out of memory). */
int proxy_rule_add(struct proxy *px, const struct rule *r, struct proxy_rule *out);
/* Sets a rule's probability, p in [0, 1] (the caller checks); 0 and the rule in *out, or -1 when no rule has the id. */
int proxy_rule_set_p(struct proxy *px, uint64_t id, double p, struct proxy_rule *out);
/* Removes a rule; 0, or -1 when no rule has the id. */
int proxy_rule_remove(struct proxy *px, uint64_t id);
/*
 * A run's timetable (wire/rule.h: scheduled rules). Scheduled rules'
 * windows count from base_ns (clock_now_ns() at proxy_new until this is
 * called), and no rule is in force before warmup_ns from it: a frame then is
 * not even matched. Takes the lock, as the calls above.
 */
void proxy_set_time_base(struct proxy *px, uint64_t base_ns, uint64_t warmup_ns);
/*
 * Switches every rule off (off = true: frames are relayed as if there were
 * no rules, not matched, nothing drawn) or back on. When it returns, every
 * fault decided before has been handed to on_fault. A run's cool-down.
 */
void proxy_faults_off(struct proxy *px, bool off);

/* Cuts every open connection now (relay_cut_all: what was decided still arrives, then a FIN); returns how many.
 * Each one cut is told to on_fault, rule PROXY_FAULT_CUT_ALL. */
size_t proxy_cut_all(struct proxy *px);

/* Prints the counters as a table: connections, bytes, frames and drops per method and direction
 * (not the rules: their texts can change while the proxy runs; see cmd/proxy.c). */
void proxy_stats_print(const struct proxy_stats *s, FILE *f);

#endif
