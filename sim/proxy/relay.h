/* relay.h — the epoll relay under the fault proxy: accepts clients, connects each to the upstream, pumps whole frames both ways. */
#ifndef DUPSIM_RELAY_H
#define DUPSIM_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/frame.h"

/*
 * One connection is a client socket, an upstream socket and a buffer per
 * direction. One pump moves one direction (nginx's ngx_stream_proxy_process):
 * it writes what was decided, reads while the buffer has room, has every whole
 * frame judged, and passes a FIN on once the source said EOF and everything
 * decided went out. The judge (the proxy's rules) sees each whole frame in
 * place and returns a verdict; the relay never looks inside a frame.
 *
 * A connection's life: relaying; then, once a verdict cuts it or one side
 * fails, closing: nothing more is judged or forwarded, what was decided is
 * written, each side gets a FIN after its last byte, and what the peers still
 * send is read and discarded until their own FIN; then the sockets are closed,
 * or after a grace of 2 s whatever the peers did. Closing a socket with
 * unread input would make the kernel send an RST, which throws away what the
 * kernel still had to send (the frame a cut forwarded, say): hence the drain.
 */

/* Directions; buffer d is read from side d and written to side 1 - d. */
enum relay_dir {
	RELAY_TO_UPSTREAM = 0, /* sent by the client */
	RELAY_TO_CLIENT = 1,   /* sent by the upstream */
};

/* What the judge decides for one whole frame. */
enum relay_verdict {
	RELAY_FORWARD,	   /* pass it on */
	RELAY_SWALLOW,	   /* take it out of the stream; the connection goes on */
	RELAY_FORWARD_CUT, /* pass it on, then cut: nothing after it is forwarded */
	RELAY_CUT,	   /* cut before it: neither it nor what follows is forwarded */
	RELAY_ABORT,	   /* close both sides at once, no drain (the judge ran out of memory) */
};

/* What the judge is told of a new connection. */
struct relay_peer {
	uint64_t id;	    /* the connection's ordinal, from 1 */
	uint16_t port;	    /* the client's TCP port (0: not IPv4) */
	const char *name;   /* "ip:port", for log lines */
};

/*
 * The judge, called from the relay's thread with the stats lock held.
 * conn_open returns the connection's judge state, or NULL to refuse it (out
 * of memory); conn_frame gets each whole frame in place, frame[0..fi->length);
 * conn_close is called once for every state conn_open returned; conn_ending,
 * when set, once before it.
 */
struct relay_judge {
	void *(*conn_open)(void *arg, const struct relay_peer *peer);
	enum relay_verdict (*conn_frame)(void *arg, void *conn, enum relay_dir d, const struct frame_info *fi,
					 const uint8_t *frame);
	void (*conn_close)(void *arg, void *conn);
	/* optional: the connection began to end (a side's EOF or failure, a cut); at most once, before
	 * conn_close, which may come up to the drain's grace later */
	void (*conn_ending)(void *arg, void *conn);
	void *arg;
};

#define RELAY_LISTEN_MAX 8

/* One more upstream (a cluster's other nodes): a listener of its own on listen_host, any free port. */
struct relay_upstream {
	const char *host;
	uint16_t port;
};

struct relay_config {
	const char *listen_host;   /* e.g. "127.0.0.1" */
	uint16_t listen_port;	   /* 0: any free port (see relay_port) */
	const char *upstream_host;
	uint16_t upstream_port;
	const struct relay_upstream *more; /* listener k (1..nmore) relays to more[k - 1] */
	size_t nmore;			   /* at most RELAY_LISTEN_MAX - 1 */
	uint32_t max_frame;	   /* largest frame accepted, at least FRAME_MIN_MAX */
	size_t max_conns;
	bool quiet;		   /* no line per malformed or failed connection */
	struct relay_judge judge;
};

/* Connections accepted from one client IPv4 address (network order), e.g. a test host's. */
#define RELAY_PEER_ADDRS 16
struct relay_peer_addr {
	uint32_t ip;
	uint64_t conns;
};

/* The relay's own counters. */
struct relay_stats {
	uint64_t conns_accepted;
	uint64_t conns_by_listener[RELAY_LISTEN_MAX]; /* accepted, per listener (a cluster's node) */
	struct relay_peer_addr by_addr[RELAY_PEER_ADDRS]; /* accepted, per client address: the first 16 seen */
	size_t naddrs;
	uint64_t conns_active;
	uint64_t conns_refused;	    /* over max_conns */
	uint64_t upstream_failures; /* upstream connect failed */
	uint64_t malformed;	    /* connections closed for malformed AMQP */
	uint64_t bytes[2];	    /* per direction, bytes forwarded */
	uint64_t loop_wakeups;	    /* epoll_wait returns: a relay with nothing to do must not wake */
	uint64_t conns_cut_all;	    /* connections cut by relay_cut_all */
};

struct relay;

/* Binds the listening socket and prepares the loop; 0 or -1 with one line in err. */
int relay_new(struct relay **out, const struct relay_config *cfg, char *err, size_t errlen);
/* The port listener k (0: the first; k <= nmore) listens on. */
uint16_t relay_port_of(const struct relay *r, size_t k);
/* The port actually listened on. */
uint16_t relay_port(const struct relay *r);
/* Runs the event loop in the calling thread until relay_stop (or relay_stop_signal). 0 or -1. */
int relay_run(struct relay *r);
/* Runs the loop in a thread of its own. 0 or -1. */
int relay_start(struct relay *r);
/* Makes the loop return (async-signal-safe), and joins the thread if relay_start made one. */
void relay_stop(struct relay *r);
/* Only wakes the loop to return; safe from a signal handler. */
void relay_stop_signal(struct relay *r);
/*
 * Cuts every open connection that is not closing already, as a RELAY_CUT
 * verdict would: nothing more is judged, what was decided still goes out,
 * then a FIN to each side. Callable from any thread (it takes the lock, so
 * not from the judge). each, when not NULL, gets the judge's state of every
 * connection it cuts, first (the lock held). Returns how many it cut.
 */
size_t relay_cut_all(struct relay *r, void (*each)(void *arg, void *conn), void *arg);
/*
 * The lock the loop holds while it works (and calls the judge): hold it to
 * read the relay's counters, or the judge's own, from another thread.
 */
void relay_lock(struct relay *r);
void relay_unlock(struct relay *r);
/* The counters; read them under relay_lock from another thread. */
const struct relay_stats *relay_stats(const struct relay *r);
/* A log line about a connection, "relay: connection ID from PEER: ...", unless quiet. */
void relay_log(const struct relay *r, const struct relay_peer *peer, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Closes every connection (calling the judge's conn_close) and frees. NULL ok. */
void relay_free(struct relay *r);

#endif
