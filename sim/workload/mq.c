/* mq.c — thin helpers over librabbitmq-c: open a logged-in connection, say what a reply meant. */
#include "workload/mq.h"

#include <amqp_tcp_socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "core/log.h"

int mq_parse_url(const char *url, struct mq_target *t, char *err, size_t errlen)
{
	struct amqp_connection_info ci;
	char *copy = strdup(url);
	int rc;

	if (!copy)
		return log_seterr(err, errlen, "out of memory");
	amqp_default_connection_info(&ci);
	rc = amqp_parse_url(copy, &ci);
	if (rc != AMQP_STATUS_OK || ci.ssl) {
		free(copy);
		return log_seterr(err, errlen, "'%s' is not an amqp:// URL (amqp://user:pass@host:port/vhost)%s", url,
				rc == AMQP_STATUS_OK ? "; amqps is not supported" : "");
	}
	snprintf(t->host, sizeof(t->host), "%s", ci.host);
	t->port = (uint16_t)ci.port;
	snprintf(t->user, sizeof(t->user), "%s", ci.user);
	snprintf(t->pass, sizeof(t->pass), "%s", ci.password);
	/* "amqp://host:port/" names the empty vhost, which RabbitMQ never has: take "/" */
	snprintf(t->vhost, sizeof(t->vhost), "%s", ci.vhost && *ci.vhost ? ci.vhost : "/");
	free(copy);
	return 0;
}

const char *mq_reply_str(amqp_rpc_reply_t r, char *buf, size_t len)
{
	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL:
		snprintf(buf, len, "ok");
		break;
	case AMQP_RESPONSE_NONE:
		snprintf(buf, len, "no reply");
		break;
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		snprintf(buf, len, "%s", amqp_error_string2(r.library_error));
		break;
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
			amqp_connection_close_t *m = r.reply.decoded;

			snprintf(buf, len, "connection closed by broker: %u %.*s", m->reply_code,
				 (int)m->reply_text.len, (const char *)m->reply_text.bytes);
		} else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
			amqp_channel_close_t *m = r.reply.decoded;

			snprintf(buf, len, "channel closed by broker: %u %.*s", m->reply_code,
				 (int)m->reply_text.len, (const char *)m->reply_text.bytes);
		} else {
			snprintf(buf, len, "unexpected method 0x%08x from broker", r.reply.id);
		}
		break;
	}
	return buf;
}

amqp_connection_state_t mq_open(const struct mq_target *t, int timeout_ms, char *err, size_t errlen)
{
	return mq_open_heartbeat(t, timeout_ms, 0, err, errlen);
}

amqp_connection_state_t mq_open_heartbeat(const struct mq_target *t, int timeout_ms, int heartbeat_s, char *err,
					  size_t errlen)
{
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s;
	struct timeval tv;
	amqp_rpc_reply_t r;
	char why[256];
	int rc;

	if (!timeout_ms)
		timeout_ms = 5000;
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	if (!c || !(s = amqp_tcp_socket_new(c))) {
		log_seterr(err, errlen, "out of memory");
		goto fail;
	}
	rc = amqp_socket_open_noblock(s, t->host, t->port, &tv);
	if (rc != AMQP_STATUS_OK) {
		log_seterr(err, errlen, "cannot connect to %s:%u: %s", t->host, t->port, amqp_error_string2(rc));
		goto fail;
	}
	amqp_set_handshake_timeout(c, &tv);
	amqp_set_rpc_timeout(c, &tv);
	r = amqp_login(c, t->vhost, 0, 131072, heartbeat_s, AMQP_SASL_METHOD_PLAIN, t->user, t->pass);
	if (!mq_ok(r)) {
		log_seterr(err, errlen, "login as '%s' at %s:%u failed: %s", t->user, t->host, t->port,
			 mq_reply_str(r, why, sizeof(why)));
		goto fail;
	}
	amqp_channel_open(c, 1);
	r = amqp_get_rpc_reply(c);
	if (!mq_ok(r)) {
		log_seterr(err, errlen, "opening a channel at %s:%u failed: %s", t->host, t->port,
			 mq_reply_str(r, why, sizeof(why)));
		goto fail;
	}
	return c;
fail:
	mq_abandon(c);
	return NULL;
}

amqp_connection_state_t mq_open_local(uint16_t port, int timeout_ms, char *err, size_t errlen)
{
	struct mq_target t = { .host = "127.0.0.1", .port = port, .user = "guest", .pass = "guest", .vhost = "/" };

	return mq_open(&t, timeout_ms, err, errlen);
}

void mq_close(amqp_connection_state_t c)
{
	if (!c)
		return;
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
}

void mq_abandon(amqp_connection_state_t c)
{
	if (c)
		amqp_destroy_connection(c);
}

uint16_t mq_local_port(amqp_connection_state_t c)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = c ? amqp_get_sockfd(c) : -1;

	if (fd < 0 || getsockname(fd, (struct sockaddr *)&sa, &len) < 0 || sa.sin_family != AF_INET)
		return 0;
	return ntohs(sa.sin_port);
}

int64_t mq_header_int(const amqp_basic_properties_t *p, const char *key, int64_t dflt)
{
	if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
		return dflt;
	for (int i = 0; i < p->headers.num_entries; i++) {
		const amqp_table_entry_t *e = &p->headers.entries[i];

		if (e->key.len != strlen(key) || memcmp(e->key.bytes, key, e->key.len) != 0)
			continue;
		switch (e->value.kind) {
		case AMQP_FIELD_KIND_I8:
			return e->value.value.i8;
		case AMQP_FIELD_KIND_U8:
			return e->value.value.u8;
		case AMQP_FIELD_KIND_I16:
			return e->value.value.i16;
		case AMQP_FIELD_KIND_U16:
			return e->value.value.u16;
		case AMQP_FIELD_KIND_I32:
			return e->value.value.i32;
		case AMQP_FIELD_KIND_U32:
			return e->value.value.u32;
		case AMQP_FIELD_KIND_I64:
			return e->value.value.i64;
		case AMQP_FIELD_KIND_U64:
			return (int64_t)e->value.value.u64;
		default:
			return dflt;
		}
	}
	return dflt;
}

/* s percent-encoded into out (RFC 3986: what is not unreserved is escaped). */
static void mq_escape(const char *s, char *out, size_t len)
{
	size_t o = 0;

	for (; *s && o + 4 < len; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("-._~", c))
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, len - o, "%%%02X", c);
	}
	out[o] = '\0';
}

void mq_format_url(const struct mq_target *t, char *buf, size_t len)
{
	char user[200], pass[200], vhost[200];

	mq_escape(t->user, user, sizeof(user));
	mq_escape(t->pass, pass, sizeof(pass));
	mq_escape(t->vhost, vhost, sizeof(vhost));
	snprintf(buf, len, "amqp://%s:%s@%s:%u/%s", user, pass, t->host, t->port, vhost);
}
