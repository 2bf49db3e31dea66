/* proxy.c — the AMQP fault proxy: an epoll relay that forwards whole frames and drops or cuts by rule. */
#include "proxy/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "wire/frame.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/parse.h"

enum { IO_OK, IO_AGAIN, IO_EOF, IO_ERR };

#define CLOSING_GRACE_NS (2 * NS_PER_S) /* how long a closing connection may take to drain and say goodbye */

/*
 * The content (header and body frames) of a content-carrying method that a
 * rule hit, on one channel: it shares the method's fate, so a peer never sees
 * a header or body without its method, and a cut falls after the whole message.
 */
enum pcontent_fate {
	PCONTENT_DROP, /* swallowed with its method (drop ... then=hang) */
	PCONTENT_CUT,  /* forwarded with its method, then the connection is cut */
};

struct pcontent {
	uint16_t channel;
	enum pcontent_fate fate;
	bool header_seen;
	uint64_t remaining; /* body bytes still to come, once the header said how many */
};

/*
 * Bytes read from one side, waiting to go to the other:
 *   [wr, fwd)   decided: forward these (whole frames)
 *   [fwd, end)  read but not yet a whole frame; the parser has seen [fwd, scan)
 */
struct pbuf {
	uint8_t *data;
	size_t cap, wr, fwd, scan, end;
	struct frame_parser parser;
	struct pcontent *content; /* contents in flight whose method a rule hit */
	size_t ncontent, content_cap;
	bool eof;  /* the source side sent FIN */
	bool shut; /* FIN passed on to the destination */
};

/* On one channel of a connection: the highest delivery tag forwarded to the client in a basic.deliver. */
struct ptag {
	uint16_t channel;
	uint64_t max_tag;
};

struct pconn;

/* What epoll hands back: one per socket of a connection. */
struct pside {
	struct pconn *conn;
	int idx; /* 0 client, 1 upstream */
	uint32_t mask;
	bool registered; /* in the epoll set */
	bool hup;	 /* epoll said EPOLLHUP: the socket is shut both ways (or reset), for good */
};

/*
 * A connection's life: relaying; then, once a rule cuts it or one side fails,
 * closing: nothing more is parsed or forwarded, what was decided is written,
 * each side gets a FIN after its last byte, and what the peers still send is
 * read and discarded until their own FIN; then the sockets are closed, or at
 * CLOSING_GRACE_NS whatever the peers did. A side whose socket failed or
 * finished is closed at once (its fd is -1 from then on).
 */

struct pconn {
	struct proxy *px;
	uint64_t id;
	int fd[2];
	struct pside side[2];
	struct pbuf buf[2]; /* buf[d]: read from fd[d], written to fd[1 - d] */
	struct rule_conn rules; /* the rules' decision state on this connection, seeded by its id */
	struct ptag *tags;	/* per channel that had deliveries (for the acks' "ahead") */
	size_t ntags, tags_cap;
	bool connecting;
	bool closing;	    /* forward nothing more: drain, FIN, discard until the peers' FIN, close */
	bool dead;	    /* closed; freed after the current batch of events */
	uint64_t closing_since;
	uint16_t peer_port; /* the client's port (0: not IPv4) */
	char peer[64];
	struct pconn *prev, *next;
};

struct proxy {
	struct proxy_config cfg;
	struct rule_set rules;
	struct sockaddr_storage upstream;
	socklen_t upstream_len;
	char upstream_name[128];
	int listen_fd, epoll_fd, stop_fd;
	uint16_t port;
	uint64_t next_id;
	struct pconn *conns;	 /* open connections */
	struct pconn *graveyard; /* closed during this batch */
	size_t closing;		 /* connections in the closing state */
	pthread_mutex_t lock;	 /* guards stats against proxy_stats_get */
	amqp_pool_t pool;	 /* librabbitmq-c's method decoding; recycled for every frame decoded */
	struct proxy_stats stats;
	pthread_t thread;
	bool threaded;
};

static int listen_tag, stop_tag; /* epoll data for the listening socket and the stop eventfd */

static const enum rule_from dir_from[2] = { RULE_FROM_CLIENT, RULE_FROM_BROKER };
static const char *const dir_sender[2] = { "client", "broker" };

static int resolve(const char *host, uint16_t port, struct sockaddr_storage *ss, socklen_t *len, char *err,
		   size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai;
	char ps[8];
	int rc;

	snprintf(ps, sizeof(ps), "%u", port);
	rc = getaddrinfo(host, ps, &hints, &ai);
	if (rc != 0)
		return log_seterr(err, errlen, "cannot resolve '%s': %s", host, gai_strerror(rc));
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static void set_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int proxy_new(struct proxy **out, const struct proxy_config *cfg, char *err, size_t errlen)
{
	struct proxy *px = calloc(1, sizeof(*px));
	struct sockaddr_storage ss;
	socklen_t sl;
	struct epoll_event ev = { .events = EPOLLIN };
	int one = 1;

	*out = NULL;
	if (!px)
		return log_seterr(err, errlen, "out of memory");
	px->listen_fd = px->epoll_fd = px->stop_fd = -1;
	px->cfg = *cfg;
	px->cfg.rules = NULL;
	if (!px->cfg.max_frame)
		px->cfg.max_frame = FRAME_DEFAULT_MAX;
	if (px->cfg.max_frame < FRAME_MIN_MAX) {
		log_seterr(err, errlen, "max frame %u is below AMQP's minimum of %u", px->cfg.max_frame, FRAME_MIN_MAX);
		goto fail;
	}
	if (!px->cfg.max_conns)
		px->cfg.max_conns = 4096;
	pthread_mutex_init(&px->lock, NULL);
	init_amqp_pool(&px->pool, 4096);
	if (rule_set_init(&px->rules, cfg->rules, cfg->rule_count, cfg->seed) < 0) {
		log_seterr(err, errlen, "out of memory");
		goto fail;
	}
	if (resolve(cfg->upstream_host, cfg->upstream_port, &px->upstream, &px->upstream_len, err, errlen) < 0)
		goto fail;
	snprintf(px->upstream_name, sizeof(px->upstream_name), "%s:%u", cfg->upstream_host, cfg->upstream_port);
	if (resolve(cfg->listen_host, cfg->listen_port, &ss, &sl, err, errlen) < 0)
		goto fail;
	px->listen_fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (px->listen_fd < 0) {
		log_seterr(err, errlen, "socket: %s", strerror(errno));
		goto fail;
	}
	setsockopt(px->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(px->listen_fd, (struct sockaddr *)&ss, sl) < 0 || listen(px->listen_fd, 512) < 0) {
		log_seterr(err, errlen, "cannot listen on %s:%u: %s", cfg->listen_host, cfg->listen_port,
			 strerror(errno));
		goto fail;
	}
	sl = sizeof(ss);
	getsockname(px->listen_fd, (struct sockaddr *)&ss, &sl);
	px->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						 : ((struct sockaddr_in6 *)&ss)->sin6_port);
	px->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	px->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (px->epoll_fd < 0 || px->stop_fd < 0) {
		log_seterr(err, errlen, "epoll/eventfd: %s", strerror(errno));
		goto fail;
	}
	ev.data.ptr = &listen_tag;
	epoll_ctl(px->epoll_fd, EPOLL_CTL_ADD, px->listen_fd, &ev);
	ev.data.ptr = &stop_tag;
	epoll_ctl(px->epoll_fd, EPOLL_CTL_ADD, px->stop_fd, &ev);
	*out = px;
	return 0;
fail:
	proxy_free(px);
	return -1;
}

uint16_t proxy_port(const struct proxy *px)
{
	return px->port;
}

static size_t pbuf_room(const struct pbuf *b)
{
	return b->cap - (b->end - b->wr);
}

static void pbuf_compact(struct pbuf *b)
{
	if (b->wr == 0)
		return;
	memmove(b->data, b->data + b->wr, b->end - b->wr);
	b->fwd -= b->wr;
	b->scan -= b->wr;
	b->end -= b->wr;
	b->wr = 0;
}

static void conn_close(struct pconn *c)
{
	struct proxy *px = c->px;

	if (c->dead)
		return;
	c->dead = true;
	for (int i = 0; i < 2; i++) {
		if (c->fd[i] >= 0) {
			epoll_ctl(px->epoll_fd, EPOLL_CTL_DEL, c->fd[i], NULL);
			close(c->fd[i]);
			c->fd[i] = -1;
		}
	}
	if (c->closing)
		px->closing--;
	if (c->prev)
		c->prev->next = c->next;
	else
		px->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = NULL;
	c->next = px->graveyard;
	px->graveyard = c;
	px->stats.conns_active--;
}

static void conn_free(struct pconn *c)
{
	rule_conn_release(&c->rules);
	free(c->tags);
	for (int d = 0; d < 2; d++) {
		free(c->buf[d].data);
		free(c->buf[d].content);
	}
	free(c);
}

/* Side i is done with (failed, or finished while closing): its socket goes now, so epoll stops reporting it. */
static void conn_side_close(struct pconn *c, int i)
{
	if (c->fd[i] < 0)
		return;
	epoll_ctl(c->px->epoll_fd, EPOLL_CTL_DEL, c->fd[i], NULL);
	close(c->fd[i]);
	c->fd[i] = -1;
	c->side[i].mask = 0;
	c->side[i].registered = false;
}

/* Forward nothing more; drain what was decided, then close (see "A connection's life"). */
static void conn_begin_closing(struct pconn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	c->closing_since = clock_now_ns();
	c->px->closing++;
	for (int d = 0; d < 2; d++) /* drop undecided bytes */
		c->buf[d].end = c->buf[d].scan = c->buf[d].fwd;
}

static void conn_log(struct pconn *c, const char *fmt, const char *a, const char *b)
{
	char msg[256];

	if (c->px->cfg.quiet)
		return;
	snprintf(msg, sizeof(msg), fmt, a, b);
	log_line("proxy: connection %llu from %s: %s", (unsigned long long)c->id, c->peer, msg);
}

static void conn_update(struct pconn *c)
{
	if (c->dead)
		return;
	for (int i = 0; i < 2; i++) {
		const struct pbuf *in = &c->buf[i], *out = &c->buf[1 - i];
		uint32_t mask = 0;
		struct epoll_event ev;

		if (c->fd[i] < 0)
			continue;
		if (i == 1 && c->connecting) {
			mask = EPOLLOUT;
		} else {
			/* closing reads (to discard) whatever comes, until the peer's FIN */
			if (!in->eof && (c->closing || pbuf_room(in) > 0))
				mask |= EPOLLIN;
			if (out->fwd > out->wr)
				mask |= EPOLLOUT;
		}
		if (mask == 0 && c->side[i].hup) {
			/*
			 * epoll reports EPOLLHUP whatever the mask, and a hung-up
			 * socket stays hung up: with nothing to wait for on it (its
			 * bytes wait behind a full buffer, or it said all it had),
			 * it leaves the set, or the loop would wake for it forever.
			 * It comes back once there is something to wait for.
			 */
			if (c->side[i].registered)
				epoll_ctl(c->px->epoll_fd, EPOLL_CTL_DEL, c->fd[i], NULL);
			c->side[i].registered = false;
			c->side[i].mask = 0;
			continue;
		}
		if (c->side[i].registered && mask == c->side[i].mask)
			continue;
		ev.events = mask;
		ev.data.ptr = &c->side[i];
		epoll_ctl(c->px->epoll_fd, c->side[i].registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd[i], &ev);
		c->side[i].registered = true;
		c->side[i].mask = mask;
	}
}

/* Takes the whole frame [fwd, scan) out of the stream; the connection goes on. */
static void pbuf_swallow(struct pbuf *b)
{
	memmove(b->data + b->fwd, b->data + b->scan, b->end - b->scan);
	b->end -= b->scan - b->fwd;
	b->scan = b->fwd;
}

/* Remembers that the content of a method on channel ch shares its fate; 0 or -1 (out of memory). */
static int pbuf_content_add(struct pbuf *b, uint16_t ch, enum pcontent_fate fate)
{
	if (b->ncontent == b->content_cap) {
		size_t cap = b->content_cap ? 2 * b->content_cap : 4;
		struct pcontent *n = realloc(b->content, cap * sizeof(*n));

		if (!n)
			return -1;
		b->content = n;
		b->content_cap = cap;
	}
	b->content[b->ncontent++] = (struct pcontent){ .channel = ch, .fate = fate };
	return 0;
}

static struct pcontent *pbuf_content_find(struct pbuf *b, uint16_t ch)
{
	for (size_t i = 0; i < b->ncontent; i++)
		if (b->content[i].channel == ch)
			return &b->content[i];
	return NULL;
}

static void pbuf_content_remove(struct pbuf *b, struct pcontent *pc)
{
	*pc = b->content[--b->ncontent];
}

/* A content header frame's body size: the 8 octets after class id and weight (frame.c checked the size). */
static uint64_t pcontent_body_size(const uint8_t *frame)
{
	const uint8_t *p = frame + FRAME_HEADER_SIZE + 4;
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/*
 * A frame on a channel whose content shares a hit method's fate. Returns 1
 * when it was handled here (swallowed, or forwarded as part of the content),
 * 0 when the content is over and the frame goes through the usual path.
 */
static int conn_content_frame(struct pconn *c, int d, struct pcontent *pc, const struct frame_info *fi)
{
	struct pbuf *b = &c->buf[d];
	enum pcontent_fate fate = pc->fate;
	bool done;

	if (fi->type == FRAME_HEADER && !pc->header_seen) {
		pc->header_seen = true;
		pc->remaining = pcontent_body_size(b->data + b->fwd);
	} else if (fi->type == FRAME_BODY && pc->header_seen && pc->remaining > 0) {
		pc->remaining -= fi->payload_size < pc->remaining ? fi->payload_size : pc->remaining;
	} else { /* a method, or a frame out of order: the content ended early */
		pbuf_content_remove(b, pc);
		if (fate == PCONTENT_CUT) { /* the cut falls before this frame */
			conn_begin_closing(c);
			return 1;
		}
		return 0;
	}
	done = pc->remaining == 0;
	if (done)
		pbuf_content_remove(b, pc);
	if (fate == PCONTENT_DROP) {
		c->px->stats.content_dropped++;
		pbuf_swallow(b);
		return 1;
	}
	b->fwd = b->scan;
	if (done)
		conn_begin_closing(c); /* the whole message went through: now the cut */
	return 1;
}

/*
 * Decodes the arguments of the method frame [fwd, scan) with librabbitmq-c.
 * Returns 0 and *decoded (valid until the next decode), or -1 when they do
 * not decode (the frame is relayed all the same: the proxy is not the judge).
 */
static int conn_decode(struct pconn *c, int d, const struct frame_info *fi, void **decoded)
{
	const struct pbuf *b = &c->buf[d];
	amqp_bytes_t args = { fi->payload_size - 4, b->data + b->fwd + FRAME_HEADER_SIZE + 4 };

	recycle_amqp_pool(&c->px->pool);
	return amqp_decode_method(frame_method_number(fi), &c->px->pool, args, decoded) == AMQP_STATUS_OK ? 0 : -1;
}

/* The channel's slot for delivery tags, made when missing; NULL only when out of memory. */
static struct ptag *conn_tag_slot(struct pconn *c, uint16_t ch)
{
	for (size_t i = 0; i < c->ntags; i++)
		if (c->tags[i].channel == ch)
			return &c->tags[i];
	if (c->ntags == c->tags_cap) {
		size_t cap = c->tags_cap ? 2 * c->tags_cap : 4;
		struct ptag *n = realloc(c->tags, cap * sizeof(*n));

		if (!n)
			return NULL;
		c->tags = n;
		c->tags_cap = cap;
	}
	c->tags[c->ntags] = (struct ptag){ .channel = ch };
	return &c->tags[c->ntags++];
}

/*
 * The client sent this basic.ack on channel ch: how far beyond its tag the
 * broker had already gone (proxy.h, "ahead"). Sampled for every basic.ack
 * the client sends, whatever a rule then does with it.
 */
static void conn_sample_ack(struct pconn *c, uint16_t ch, const amqp_basic_ack_t *ack)
{
	struct proxy_stats *st = &c->px->stats;
	uint64_t max = 0, ahead;

	for (size_t i = 0; i < c->ntags; i++)
		if (c->tags[i].channel == ch)
			max = c->tags[i].max_tag;
	/* multiple with tag 0 acks everything outstanding: nothing is beyond it */
	ahead = (ack->multiple && ack->delivery_tag == 0) || max <= ack->delivery_tag ? 0 : max - ack->delivery_tag;
	st->acks_sampled++;
	st->ahead_sum += ahead;
	st->ahead_sq_sum += ahead * ahead;
}

/* What the relay learns from a method frame before the rules see it; *deliver_tag: a basic.deliver's tag, else 0. */
static void conn_observe(struct pconn *c, int d, const struct frame_info *fi, uint64_t *deliver_tag)
{
	uint32_t number = frame_method_number(fi);
	void *m;

	*deliver_tag = 0;
	if (d == PROXY_TO_CLIENT && number == AMQP_BASIC_DELIVER_METHOD) {
		if (conn_decode(c, d, fi, &m) == 0)
			*deliver_tag = ((amqp_basic_deliver_t *)m)->delivery_tag;
	} else if (d == PROXY_TO_BROKER && number == AMQP_BASIC_ACK_METHOD) {
		if (conn_decode(c, d, fi, &m) == 0)
			conn_sample_ack(c, fi->channel, m);
	} else if (d == PROXY_TO_BROKER && number == AMQP_CHANNEL_OPEN_METHOD) {
		/* a reopened channel numbers its deliveries from 1 again */
		for (size_t i = 0; i < c->ntags; i++)
			if (c->tags[i].channel == fi->channel)
				c->tags[i].max_tag = 0;
	}
}

/* A basic.deliver with this tag went to the client on channel ch. */
static void conn_note_deliver(struct pconn *c, uint16_t ch, uint64_t tag)
{
	struct ptag *t;

	if (tag == 0 || !(t = conn_tag_slot(c, ch)))
		return; /* out of memory: this channel's acks read as ahead 0 */
	if (tag > t->max_tag)
		t->max_tag = tag;
}

/* A whole frame [fwd, scan) arrived on direction d: count it, apply the rules. */
static void conn_frame(struct pconn *c, int d, const struct frame_info *fi)
{
	struct proxy *px = c->px;
	struct pbuf *b = &c->buf[d];
	size_t slot;
	int hit;
	const struct rule *r;
	bool content;
	uint64_t deliver_tag;

	switch (fi->type) {
	case FRAME_METHOD:
		px->stats.frames[d][0]++;
		break;
	case FRAME_HEADER:
		px->stats.frames[d][1]++;
		break;
	case FRAME_BODY:
		px->stats.frames[d][2]++;
		break;
	case FRAME_HEARTBEAT:
		px->stats.frames[d][3]++;
		break;
	default:
		break;
	}
	if (b->ncontent > 0 && (fi->type == FRAME_METHOD || fi->type == FRAME_HEADER || fi->type == FRAME_BODY)) {
		struct pcontent *pc = pbuf_content_find(b, fi->channel);

		if (pc && conn_content_frame(c, d, pc, fi))
			return;
	}
	if (fi->type != FRAME_METHOD) {
		b->fwd = b->scan;
		return;
	}
	slot = frame_method_index(frame_method_number(fi));
	px->stats.method_seen[d][slot]++;
	conn_observe(c, d, fi, &deliver_tag);
	hit = rule_set_decide(&px->rules, &c->rules, frame_method_number(fi), dir_from[d]);
	if (hit < 0) {
		conn_note_deliver(c, fi->channel, deliver_tag);
		b->fwd = b->scan;
		return;
	}
	r = &px->rules.rules[hit];
	if (px->cfg.on_fault) {
		struct proxy_fault f = { .time_ns = clock_now_ns(), .rule = (size_t)hit,
					 .method = r->method, .dir = d, .conn_id = c->id,
					 .peer_port = c->peer_port };

		px->cfg.on_fault(px->cfg.on_fault_arg, &f);
	}
	if (px->cfg.log_faults)
		conn_log(c, "rule fired: %s%s", r->text, "");
	content = amqp_method_has_content(frame_method_number(fi));
	if (r->action == RULE_CUT) {
		conn_note_deliver(c, fi->channel, deliver_tag);
		b->fwd = b->scan;
		px->stats.cuts++;
		/* a method with content is cut after its content: the whole message went through */
		if (!content || pbuf_content_add(b, fi->channel, PCONTENT_CUT) < 0)
			conn_begin_closing(c);
		return;
	}
	px->stats.drops++;
	px->stats.method_dropped[d][slot]++;
	if (r->then == RULE_THEN_CLOSE) {
		px->stats.cuts++;
		conn_begin_closing(c); /* drops [fwd, end): the frame and what followed */
		return;
	}
	/* hang: take the frame out of the stream, and its content with it; keep the connection */
	if (content && pbuf_content_add(b, fi->channel, PCONTENT_DROP) < 0) {
		conn_log(c, "out of memory tracking a dropped message's content; %s%s", "connection closed", "");
		conn_close(c);
		return;
	}
	pbuf_swallow(b);
}

/* Parses what was read on direction d; 0, or -1 when the connection was closed. */
static int conn_parse(struct pconn *c, int d)
{
	struct pbuf *b = &c->buf[d];

	while (b->scan < b->end && !c->closing && !c->dead) {
		struct frame_info fi;
		int done;
		long n = frame_parser_feed(&b->parser, b->data + b->scan, b->end - b->scan, &fi, &done);

		if (n < 0) {
			c->px->stats.malformed++;
			conn_log(c, "malformed AMQP from %s: %s; connection closed", dir_sender[d],
				 frame_strerror((int)n));
			conn_close(c);
			return -1;
		}
		b->scan += (size_t)n;
		if (done)
			conn_frame(c, d, &fi);
	}
	return c->dead ? -1 : 0;
}

static int io_read(int fd, struct pbuf *b, size_t *got)
{
	ssize_t n;

	if (b->cap - b->end < 4096)
		pbuf_compact(b);
	for (;;) {
		n = read(fd, b->data + b->end, b->cap - b->end);
		if (n > 0) {
			b->end += (size_t)n;
			*got = (size_t)n;
			return IO_OK;
		}
		if (n == 0)
			return IO_EOF;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? IO_AGAIN : IO_ERR;
	}
}

static int io_write(int fd, struct pbuf *b, uint64_t *bytes)
{
	while (b->fwd > b->wr) {
		ssize_t n = send(fd, b->data + b->wr, b->fwd - b->wr, MSG_NOSIGNAL);

		if (n > 0) {
			b->wr += (size_t)n;
			*bytes += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? IO_AGAIN : IO_ERR;
	}
	if (b->wr == b->end) /* everything written: start over at the front */
		b->wr = b->fwd = b->scan = b->end = 0;
	return IO_OK;
}

/* Moves direction d: write what is decided, pass on a FIN once drained. */
static int conn_flush(struct pconn *c, int d)
{
	struct pbuf *b = &c->buf[d];
	int dst = 1 - d;

	if (c->dead || c->fd[dst] < 0 || (dst == 1 && c->connecting))
		return 0;
	if (io_write(c->fd[dst], b, &c->px->stats.bytes[d]) == IO_ERR) {
		conn_side_close(c, dst);
		conn_begin_closing(c); /* the other direction still gets what was decided for it */
		return -1;
	}
	if (b->eof && !b->shut && b->wr == b->fwd) {
		if (b->end > b->fwd)
			conn_log(c, "%s closed in the middle of a frame; %s dropped", dir_sender[d],
				 "the partial frame");
		shutdown(c->fd[dst], SHUT_WR);
		b->shut = true;
	}
	return 0;
}

/* Reads from side i as long as the buffer has room and data comes, parsing and flushing as it goes. */
static void conn_pump_read(struct pconn *c, int i)
{
	struct pbuf *b = &c->buf[i];

	for (int rounds = 0; rounds < 8 && !c->dead && !c->closing && !b->eof && pbuf_room(b) > 0; rounds++) {
		size_t got = 0;
		int rc = io_read(c->fd[i], b, &got);

		if (rc == IO_AGAIN)
			break;
		if (rc == IO_ERR) {
			conn_side_close(c, i);
			conn_begin_closing(c);
			return;
		}
		if (rc == IO_EOF) {
			b->eof = true;
		} else if (conn_parse(c, i) < 0) {
			return;
		}
		if (conn_flush(c, i) < 0)
			return;
		if (got < 4096)
			break; /* the socket is probably empty */
	}
}

/*
 * Closing, side i: what was decided for it goes out, then our FIN; what it
 * still sends is read and thrown away. Closing a socket with unread input
 * makes the kernel send an RST instead of a FIN, and an RST throws away what
 * the kernel still had to send: the frame a cut forwarded, say. The side is
 * closed once both FINs went.
 */
static void conn_drain_side(struct pconn *c, int i)
{
	struct pbuf *out = &c->buf[1 - i], *in = &c->buf[i];

	if (c->fd[i] < 0)
		return;
	if (i == 1 && c->connecting) { /* nothing reached the broker: nothing to drain */
		conn_side_close(c, 1);
		return;
	}
	if (!out->shut) {
		if (io_write(c->fd[i], out, &c->px->stats.bytes[1 - i]) == IO_ERR) {
			conn_side_close(c, i);
			return;
		}
		if (out->wr == out->fwd) {
			shutdown(c->fd[i], SHUT_WR);
			out->shut = true;
		}
	}
	for (int rounds = 0; rounds < 8 && !in->eof; rounds++) {
		uint8_t junk[16384];
		ssize_t n = read(c->fd[i], junk, sizeof(junk));

		if (n > 0)
			continue;
		if (n == 0) {
			in->eof = true;
		} else if (errno == EINTR) {
			continue;
		} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
			conn_side_close(c, i);
			return;
		}
		break;
	}
	if (in->eof && out->shut)
		conn_side_close(c, i);
}

/* Closes c once both directions are finished; while closing, moves the drain on first. */
static void conn_check_done(struct pconn *c)
{
	if (c->dead)
		return;
	if (c->closing) {
		conn_drain_side(c, 0);
		conn_drain_side(c, 1);
		if ((c->fd[0] < 0 && c->fd[1] < 0) || clock_now_ns() - c->closing_since > CLOSING_GRACE_NS)
			conn_close(c);
		return;
	}
	/* both directions finished: FIN seen and passed on */
	if (c->buf[0].shut && c->buf[1].shut)
		conn_close(c);
	/* one side is gone and the other has nothing to say: a peer that shut
	 * down writing after its peer closed fully gets ECONNRESET on its next
	 * write, which closes us too */
}

static void conn_connected(struct pconn *c)
{
	int e = 0;
	socklen_t l = sizeof(e);

	getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &e, &l);
	if (e != 0) {
		c->px->stats.upstream_failures++;
		conn_log(c, "cannot reach the broker at %s: %s; connection closed", c->px->upstream_name,
			 strerror(e));
		conn_close(c);
		return;
	}
	c->connecting = false;
	set_nodelay(c->fd[1]);
	if (conn_parse(c, 0) == 0)
		conn_flush(c, 0);
}

static void proxy_accept(struct proxy *px)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(px->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct pconn *c;
		struct epoll_event ev = { 0 };
		int ufd;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK && !px->cfg.quiet)
				log_line("proxy: accept: %s", strerror(errno));
			return;
		}
		if (px->stats.conns_active >= px->cfg.max_conns) {
			px->stats.conns_refused++;
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		ufd = socket(px->upstream.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c) {
			c->buf[0].cap = c->buf[1].cap = (size_t)px->cfg.max_frame + 65536;
			c->buf[0].data = malloc(c->buf[0].cap);
			c->buf[1].data = malloc(c->buf[1].cap);
		}
		if (c)
			c->id = ++px->next_id; /* the connection's ordinal: its rules' seeds derive from it */
		if (!c || ufd < 0 || !c->buf[0].data || !c->buf[1].data || rule_conn_init(&c->rules, &px->rules, c->id) < 0) {
			if (!px->cfg.quiet)
				log_line("proxy: cannot take a connection: %s", ufd < 0 ? strerror(errno) : "out of memory");
			if (c)
				conn_free(c);
			if (ufd >= 0)
				close(ufd);
			close(fd);
			continue;
		}
		c->px = px;
		c->fd[0] = fd;
		c->fd[1] = ufd;
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *sa = (struct sockaddr_in *)&ss;
			char ip[INET_ADDRSTRLEN];

			inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof(ip));
			snprintf(c->peer, sizeof(c->peer), "%s:%u", ip, ntohs(sa->sin_port));
			c->peer_port = ntohs(sa->sin_port);
		} else {
			snprintf(c->peer, sizeof(c->peer), "ipv6 peer");
		}
		frame_parser_init(&c->buf[0].parser, px->cfg.max_frame, 1);
		frame_parser_init(&c->buf[1].parser, px->cfg.max_frame, 0);
		set_nodelay(fd);
		c->connecting = true;
		if (connect(ufd, (struct sockaddr *)&px->upstream, px->upstream_len) == 0)
			c->connecting = false;
		else if (errno != EINPROGRESS) {
			int e = errno;

			if (!px->cfg.quiet)
				log_line("proxy: connection from %s: cannot reach the broker at %s: %s", c->peer,
					 px->upstream_name, strerror(e));
			px->stats.upstream_failures++;
			close(fd);
			close(ufd);
			conn_free(c);
			continue;
		}
		for (int i = 0; i < 2; i++) {
			c->side[i].conn = c;
			c->side[i].idx = i;
			c->side[i].mask = 0;
			c->side[i].registered = true;
			ev.events = 0;
			ev.data.ptr = &c->side[i];
			epoll_ctl(px->epoll_fd, EPOLL_CTL_ADD, c->fd[i], &ev);
		}
		c->next = px->conns;
		if (px->conns)
			px->conns->prev = c;
		px->conns = c;
		px->stats.conns_accepted++;
		px->stats.conns_active++;
		if (!c->connecting)
			set_nodelay(ufd);
		conn_update(c);
	}
}

static void proxy_handle(struct pside *s, uint32_t events)
{
	struct pconn *c = s->conn;
	int i = s->idx;

	if (c->dead)
		return;
	if (events & EPOLLHUP)
		s->hup = true;
	if (c->closing) {
		/* whatever the event, the drain reads or writes side i and sees what happened */
	} else if (i == 1 && c->connecting) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			conn_connected(c);
	} else {
		if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
			conn_pump_read(c, i);
		if (!c->dead && (events & (EPOLLOUT | EPOLLERR)))
			conn_flush(c, 1 - i);
		if (!c->dead && !c->closing && (events & EPOLLERR) && !(events & EPOLLIN)) {
			conn_side_close(c, i); /* an error on a side we were not reading: it failed */
			conn_begin_closing(c);
		}
	}
	conn_check_done(c);
	conn_update(c);
}

int proxy_run(struct proxy *px)
{
	struct epoll_event evs[128];

	for (;;) {
		int timeout = px->closing ? 100 : -1;
		int n = epoll_wait(px->epoll_fd, evs, 128, timeout);
		bool stop = false;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_line("proxy: epoll_wait: %s", strerror(errno));
			return -1;
		}
		pthread_mutex_lock(&px->lock);
		px->stats.loop_wakeups++;
		for (int k = 0; k < n; k++) {
			void *tag = evs[k].data.ptr;

			if (tag == &stop_tag)
				stop = true;
			else if (tag == &listen_tag)
				proxy_accept(px);
			else
				proxy_handle(tag, evs[k].events);
		}
		if (px->closing) {
			for (struct pconn *c = px->conns, *next; c; c = next) {
				next = c->next;
				if (c->closing) {
					conn_check_done(c);
					conn_update(c);
				}
			}
		}
		while (px->graveyard) {
			struct pconn *c = px->graveyard;

			px->graveyard = c->next;
			conn_free(c);
		}
		pthread_mutex_unlock(&px->lock);
		if (stop)
			return 0;
	}
}

static void *proxy_thread(void *arg)
{
	proxy_run(arg);
	return NULL;
}

int proxy_start(struct proxy *px)
{
	sigset_t all, old;
	int rc;

	/* signals belong to the main thread */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&px->thread, NULL, proxy_thread, px);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return -1;
	px->threaded = true;
	return 0;
}

void proxy_stop_signal(struct proxy *px)
{
	uint64_t one = 1;

	if (write(px->stop_fd, &one, sizeof(one)) < 0) {
		/* the counter is already non-zero: the loop will stop */
	}
}

void proxy_stop(struct proxy *px)
{
	proxy_stop_signal(px);
	if (px->threaded) {
		pthread_join(px->thread, NULL);
		px->threaded = false;
	}
}

int proxy_stats_get(struct proxy *px, struct proxy_stats *out)
{
	int rc = 0;

	pthread_mutex_lock(&px->lock);
	*out = px->stats;
	out->rule_count = px->rules.count;
	out->rule_matched = out->rule_fired = NULL;
	if (out->rule_count > 0) {
		out->rule_matched = malloc(out->rule_count * sizeof(*out->rule_matched));
		out->rule_fired = malloc(out->rule_count * sizeof(*out->rule_fired));
		if (out->rule_matched && out->rule_fired) {
			memcpy(out->rule_matched, px->rules.matched, out->rule_count * sizeof(*out->rule_matched));
			memcpy(out->rule_fired, px->rules.fired, out->rule_count * sizeof(*out->rule_fired));
		} else {
			proxy_stats_release(out);
			rc = -1;
		}
	}
	pthread_mutex_unlock(&px->lock);
	return rc;
}

void proxy_stats_release(struct proxy_stats *s)
{
	if (!s)
		return;
	free(s->rule_matched);
	free(s->rule_fired);
	s->rule_matched = s->rule_fired = NULL;
	s->rule_count = 0;
}

void proxy_free(struct proxy *px)
{
	if (!px)
		return;
	if (px->threaded)
		proxy_stop(px);
	while (px->conns)
		conn_close(px->conns);
	while (px->graveyard) {
		struct pconn *c = px->graveyard;

		px->graveyard = c->next;
		conn_free(c);
	}
	if (px->listen_fd >= 0)
		close(px->listen_fd);
	if (px->epoll_fd >= 0)
		close(px->epoll_fd);
	if (px->stop_fd >= 0)
		close(px->stop_fd);
	rule_set_release(&px->rules);
	empty_amqp_pool(&px->pool);
	pthread_mutex_destroy(&px->lock);
	free(px);
}

void proxy_stats_print(const struct proxy_stats *s, const struct rule *rules, size_t rule_count, FILE *f)
{
	static const char *const types[4] = { "method", "header", "body", "heartbeat" };

	fprintf(f, "connections: %llu accepted, %llu open, %llu refused (limit), %llu upstream failures, "
		   "%llu malformed\n",
		(unsigned long long)s->conns_accepted, (unsigned long long)s->conns_active,
		(unsigned long long)s->conns_refused, (unsigned long long)s->upstream_failures,
		(unsigned long long)s->malformed);
	fprintf(f, "bytes: %llu client->broker, %llu broker->client\n", (unsigned long long)s->bytes[0],
		(unsigned long long)s->bytes[1]);
	fprintf(f, "faults: %llu frames dropped, %llu connections cut\n", (unsigned long long)s->drops,
		(unsigned long long)s->cuts);
	if (s->acks_sampled) {
		double n = (double)s->acks_sampled, mean = (double)s->ahead_sum / n;
		double var = (double)s->ahead_sq_sum / n - mean * mean;

		fprintf(f, "client acks: %llu, deliveries ahead of each: mean %.2f, sd %.2f\n",
			(unsigned long long)s->acks_sampled, mean, sqrt(var > 0 ? var : 0));
	}
	for (int d = 0; d < 2; d++) {
		fprintf(f, "frames from %s:", dir_sender[d]);
		for (int t = 0; t < 4; t++)
			fprintf(f, " %s %llu", types[t], (unsigned long long)s->frames[d][t]);
		fprintf(f, "\n");
	}
	fprintf(f, "%-26s %-7s %12s %10s\n", "method", "from", "seen", "dropped");
	for (size_t m = 0; m < PROXY_METHOD_SLOTS; m++) {
		for (int d = 0; d < 2; d++) {
			const char *name;

			if (!s->method_seen[d][m])
				continue;
			name = m < frame_method_count() ? frame_method_name(frame_method_at(m)) : "(unknown)";
			fprintf(f, "%-26s %-7s %12llu %10llu\n", name, dir_sender[d],
				(unsigned long long)s->method_seen[d][m], (unsigned long long)s->method_dropped[d][m]);
		}
	}
	for (size_t i = 0; i < rule_count && i < s->rule_count; i++)
		fprintf(f, "rule %zu '%s': matched %llu, fired %llu\n", i + 1, rules[i].text,
			(unsigned long long)s->rule_matched[i], (unsigned long long)s->rule_fired[i]);
}

static struct proxy *cli_proxy;

static void cli_on_signal(int sig)
{
	(void)sig;
	if (cli_proxy)
		proxy_stop_signal(cli_proxy);
}

static void proxy_usage(FILE *f)
{
	fprintf(f,
		"usage: dupsim proxy --listen HOST:PORT --upstream HOST:PORT [--rule RULE]... [--seed N]\n"
		"                    [--max-frame BYTES] [--max-conns N] [--log-faults] [--quiet]\n"
		"\n"
		"An AMQP 0-9-1 relay that forwards whole frames and injects faults by rule.\n"
		"Serves any AMQP client; counters are printed when it stops (Ctrl-C).\n"
		"\n"
		"  --listen HOST:PORT    where clients connect (PORT 0: any free port, printed)\n"
		"  --upstream HOST:PORT  the RabbitMQ broker\n"
		"  --rule RULE           repeatable; RULE is\n"
		"                          drop|cut METHOD [from=client|broker] [p=PROB] [then=close|hang] [after=N]\n"
		"                        METHOD is an AMQP name such as tx.commit-ok, basic.ack, basic.nack\n"
		"                        e.g. --rule 'drop tx.commit-ok from=broker p=0.01'\n"
		"  --seed N              seeds the rules' generators (default 1), one per rule and connection:\n"
		"                        the n-th connection's decisions depend on the seed and its own frames\n"
		"                        only; after=N counts a connection's own matching frames\n"
		"  --max-frame BYTES     largest frame accepted (default %u)\n"
		"  --max-conns N         most connections at once (default 4096)\n"
		"  --log-faults          a line on stderr each time a rule fires\n"
		"  --quiet               no line per failed or malformed connection\n",
		FRAME_DEFAULT_MAX);
}

/* proxy_cli's work; rules has room for argc rules (each --rule takes at least one argument). */
static int proxy_cli_run(int argc, char **argv, struct rule *rules)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },   { "upstream", required_argument, NULL, 'u' },
		{ "rule", required_argument, NULL, 'r' },     { "seed", required_argument, NULL, 's' },
		{ "max-frame", required_argument, NULL, 'f' }, { "max-conns", required_argument, NULL, 'c' },
		{ "log-faults", no_argument, NULL, 'L' },     { "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },	      { NULL, 0, NULL, 0 },
	};
	struct proxy_config cfg = { 0 };
	size_t nrules = 0;
	char lhost[256] = "", uhost[256] = "", err[512];
	uint64_t v;
	struct proxy *px;
	struct proxy_stats st;
	struct sigaction sa = { .sa_handler = cli_on_signal };
	int opt, rc;

	cfg.seed = 1;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			if (parse_hostport(optarg, lhost, sizeof(lhost), &cfg.listen_port, true) < 0) {
				log_line("proxy: --listen '%s': expected HOST:PORT, e.g. 127.0.0.1:5673", optarg);
				return 2;
			}
			break;
		case 'u':
			if (parse_hostport(optarg, uhost, sizeof(uhost), &cfg.upstream_port, false) < 0) {
				log_line("proxy: --upstream '%s': expected HOST:PORT with a port 1-65535, e.g. "
					 "127.0.0.1:5672",
					 optarg);
				return 2;
			}
			break;
		case 'r':
			if (rule_parse(optarg, &rules[nrules], err, sizeof(err)) < 0) {
				log_line("proxy: --rule: %s", err);
				return 2;
			}
			nrules++;
			break;
		case 's':
			if (parse_u64(optarg, &cfg.seed) < 0) {
				log_line("proxy: --seed '%s': expected a whole number", optarg);
				return 2;
			}
			break;
		case 'f':
			if (parse_u64(optarg, &v) < 0 || v < FRAME_MIN_MAX || v > (1u << 30)) {
				log_line("proxy: --max-frame '%s': expected bytes between %u and %u", optarg,
					 FRAME_MIN_MAX, 1u << 30);
				return 2;
			}
			cfg.max_frame = (uint32_t)v;
			break;
		case 'c':
			if (parse_u64(optarg, &v) < 0 || v < 1 || v > 1000000) {
				log_line("proxy: --max-conns '%s': expected 1 to 1000000", optarg);
				return 2;
			}
			cfg.max_conns = (size_t)v;
			break;
		case 'L':
			cfg.log_faults = true;
			break;
		case 'q':
			cfg.quiet = true;
			break;
		case 'h':
			proxy_usage(stdout);
			return 0;
		default:
			proxy_usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		log_line("proxy: unexpected argument '%s' (rules go after --rule, quoted)", argv[optind]);
		return 2;
	}
	if (!*lhost || !*uhost) {
		log_line("proxy: --listen and --upstream are required; see dupsim proxy --help");
		return 2;
	}
	cfg.listen_host = lhost;
	cfg.upstream_host = uhost;
	cfg.rules = rules;
	cfg.rule_count = nrules;
	if (proxy_new(&px, &cfg, err, sizeof(err)) < 0) {
		log_line("proxy: %s", err);
		return 1;
	}
	cli_proxy = px;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	printf("dupsim proxy: listening on %s:%u, upstream %s:%u, %zu rule%s, seed %llu\n", lhost, proxy_port(px),
	       uhost, cfg.upstream_port, nrules, nrules == 1 ? "" : "s", (unsigned long long)cfg.seed);
	for (size_t i = 0; i < nrules; i++)
		printf("  rule %zu: %s\n", i + 1, rules[i].text);
	fflush(stdout);
	rc = proxy_run(px);
	if (proxy_stats_get(px, &st) < 0)
		log_line("proxy: out of memory for the rule counters; they are left out");
	printf("dupsim proxy: stopped\n");
	proxy_stats_print(&st, rules, nrules, stdout);
	proxy_stats_release(&st);
	cli_proxy = NULL;
	proxy_free(px);
	return rc < 0 ? 1 : 0;
}

int proxy_cli(int argc, char **argv)
{
	struct rule *rules = calloc((size_t)argc, sizeof(*rules));
	int code;

	if (!rules) {
		log_line("proxy: out of memory");
		return 1;
	}
	code = proxy_cli_run(argc, argv, rules);
	free(rules);
	return code;
}
