/* mq.h — thin helpers over librabbitmq-c: open a logged-in connection, say what a reply meant. */
#ifndef DUPSIM_MQ_H
#define DUPSIM_MQ_H

#include <amqp.h>
#include <stddef.h>
#include <stdint.h>

/* Where to connect: parsed from amqp://user:pass@host:port/vhost. */
struct mq_target {
	char host[128];
	uint16_t port;
	char user[64];
	char pass[64];
	char vhost[64];
};

/* The amqp:// URL of t, user, password and vhost percent-encoded (what a user's client library parses). */
void mq_format_url(const struct mq_target *t, char *buf, size_t len);

/* Parses an amqp:// URL (librabbitmq's amqp_parse_url rules). 0 or -1 with err. */
int mq_parse_url(const char *url, struct mq_target *t, char *err, size_t errlen);

/*
 * Opens a connection, logs in and opens channel 1. timeout_ms bounds the TCP
 * connect and the login (0: 5000). Returns the connection, or NULL with one
 * line in err naming the peer and what went wrong. The caller owns the
 * connection: mq_close() it.
 */
amqp_connection_state_t mq_open(const struct mq_target *t, int timeout_ms, char *err, size_t errlen);
/*
 * Same, asking for an AMQP heartbeat of heartbeat_s seconds (0: none).
 * librabbitmq-c sends heartbeats only while the caller is inside one of its
 * calls: a caller away longer than the broker's timeout loses the connection.
 */
amqp_connection_state_t mq_open_heartbeat(const struct mq_target *t, int timeout_ms, int heartbeat_s, char *err,
					  size_t errlen);
/* Same, host and port given, guest/guest on vhost "/". */
amqp_connection_state_t mq_open_local(uint16_t port, int timeout_ms, char *err, size_t errlen);

/* Closes politely if still usable, then destroys. NULL ok. */
void mq_close(amqp_connection_state_t c);
/* Destroys without the closing handshake (after a cut or an error). NULL ok. */
void mq_abandon(amqp_connection_state_t c);

/* The connection's local TCP port (what the proxy sees as the peer's), 0 when unknown. */
uint16_t mq_local_port(amqp_connection_state_t c);

/* Describes a reply ("ok", "connection closed", "channel closed by broker: 404 NOT_FOUND ..."). */
const char *mq_reply_str(amqp_rpc_reply_t r, char *buf, size_t len);
/* An integer header of a message's properties (any integer field kind), or dflt when absent or not an integer. */
int64_t mq_header_int(const amqp_basic_properties_t *p, const char *key, int64_t dflt);

/* True for a normal reply. */
static inline int mq_ok(amqp_rpc_reply_t r)
{
	return r.reply_type == AMQP_RESPONSE_NORMAL;
}

#endif
