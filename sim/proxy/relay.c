/* relay.c — the epoll relay under the fault proxy: accepts clients, connects each to the upstream, pumps whole frames both ways. */
#include "proxy/relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"

/* What the I/O wrappers say; they only do I/O (EINTR is retried, EAGAIN is IO_AGAIN). */
enum { IO_OK, IO_AGAIN, IO_EOF, IO_ERR };

#define CLOSING_GRACE_NS (2 * NS_PER_S) /* how long a closing connection may take to drain */
#define READ_ROUNDS 16	      /* reads per pump at most: a flooding peer must not starve the others */
#define COMPACT_BELOW 16384   /* tail room under which the buffer's live bytes move to its front */

/*
 * Bytes read from one side, waiting to go to the other:
 *   [wr, fwd)   decided: forward these (whole frames)
 *   [fwd, end)  read but not yet a whole frame; the parser has seen [fwd, scan)
 * Frames are judged in place; the buffer starts over at its front whenever
 * everything read was written, and moves its live bytes to the front only
 * when the room behind them runs short (a frame never exceeds max_frame, and
 * cap is max_frame + 64 KiB, so a frame always fits).
 */
struct rbuf {
	uint8_t *data;
	size_t cap, wr, fwd, scan, end;
	struct frame_parser parser;
	bool readable; /* the source may have bytes: epoll said so, and no read came back short since */
	bool blocked;  /* the destination took less than offered: wait for EPOLLOUT */
	bool eof;      /* the source sent FIN */
	bool shut;     /* FIN passed on to the destination */
};

struct rconn;

/* What epoll hands back: one per socket of a connection. */
struct rside {
	struct rconn *conn;
	int idx; /* 0 client, 1 upstream */
	uint32_t mask;
	bool registered; /* in the epoll set */
	bool hup;	 /* epoll said EPOLLHUP: the socket is shut both ways (or reset), for good */
};

struct rconn {
	struct relay *r;
	const struct rlisten *via; /* the listener it came through: its upstream */
	struct relay_peer peer;
	char peer_name[64];
	void *judged; /* the judge's state for this connection */
	int fd[2];    /* -1 once that side is closed */
	struct rside side[2];
	struct rbuf buf[2]; /* buf[d]: read from fd[d], written to fd[1 - d] */
	bool connecting;    /* the upstream connect is in progress */
	bool closing;	    /* judge and forward nothing more: drain, FIN, discard until the peers' FIN, close */
	bool ending_told;   /* the judge heard conn_ending */
	bool dead;	    /* closed; freed after the current batch of events */
	uint64_t closing_since;
	struct rconn *prev, *next;
};

/* A listening socket and the upstream its connections go to. */
struct rlisten {
	int fd;
	uint16_t port;
	struct sockaddr_storage upstream;
	socklen_t upstream_len;
	char upstream_name[128];
};

struct relay {
	struct relay_config cfg;
	struct rlisten lis[RELAY_LISTEN_MAX];
	size_t nlis;
	int epoll_fd, stop_fd, wake_fd; /* wake_fd: relay_cut_all has the loop move the cut on */
	uint64_t next_id;
	struct rconn *conns;	 /* open connections */
	struct rconn *graveyard; /* closed during this batch */
	size_t closing;		 /* connections in the closing state */
	pthread_mutex_t lock;	 /* held by the loop while it works; guards the counters */
	struct relay_stats stats;
	pthread_t thread;
	bool threaded;
};

static int stop_tag, wake_tag; /* epoll data for the eventfds (a listener's is its struct rlisten) */

static const char *const dir_sender[2] = { "client", "broker" };

static int io_read(int fd, uint8_t *p, size_t len, size_t *got)
{
	for (;;) {
		ssize_t n = read(fd, p, len);

		if (n > 0) {
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

/* One send; *put may be short of len (the socket buffer is full). */
static int io_write(int fd, const uint8_t *p, size_t len, size_t *put)
{
	for (;;) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n >= 0) {
			*put = (size_t)n;
			return IO_OK;
		}
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? IO_AGAIN : IO_ERR;
	}
}

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

/* Listener l's socket on listen_host (port: the configured one for the first, any for the others). */
static int relay_listen_one(struct relay *r, struct rlisten *l, uint16_t port, char *err, size_t errlen)
{
	const struct relay_config *cfg = &r->cfg;
	struct sockaddr_storage ss;
	socklen_t sl;
	int one = 1;

	if (resolve(cfg->listen_host, port, &ss, &sl, err, errlen) < 0)
		return -1;
	l->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0)
		return log_seterr(err, errlen, "socket: %s", strerror(errno));
	setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l->fd, (struct sockaddr *)&ss, sl) < 0 || listen(l->fd, 512) < 0)
		return log_seterr(err, errlen, "cannot listen on %s:%u: %s", cfg->listen_host, port, strerror(errno));
	sl = sizeof(ss);
	getsockname(l->fd, (struct sockaddr *)&ss, &sl);
	l->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						: ((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

/* The listening sockets and the loop's descriptors; 0 or -1 with err. */
static int relay_listen(struct relay *r, char *err, size_t errlen)
{
	struct epoll_event ev = { .events = EPOLLIN };

	for (size_t k = 0; k < r->nlis; k++)
		if (relay_listen_one(r, &r->lis[k], k ? 0 : r->cfg.listen_port, err, errlen) < 0)
			return -1;
	r->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	r->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	r->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->epoll_fd < 0 || r->stop_fd < 0 || r->wake_fd < 0)
		return log_seterr(err, errlen, "epoll/eventfd: %s", strerror(errno));
	for (size_t k = 0; k < r->nlis; k++) {
		ev.data.ptr = &r->lis[k];
		epoll_ctl(r->epoll_fd, EPOLL_CTL_ADD, r->lis[k].fd, &ev);
	}
	ev.data.ptr = &stop_tag;
	epoll_ctl(r->epoll_fd, EPOLL_CTL_ADD, r->stop_fd, &ev);
	ev.data.ptr = &wake_tag;
	epoll_ctl(r->epoll_fd, EPOLL_CTL_ADD, r->wake_fd, &ev);
	return 0;
}

int relay_new(struct relay **out, const struct relay_config *cfg, char *err, size_t errlen)
{
	struct relay *r = calloc(1, sizeof(*r));

	*out = NULL;
	if (!r)
		return log_seterr(err, errlen, "out of memory");
	r->epoll_fd = r->stop_fd = r->wake_fd = -1;
	for (size_t k = 0; k < RELAY_LISTEN_MAX; k++)
		r->lis[k].fd = -1;
	r->cfg = *cfg;
	r->cfg.more = NULL;
	pthread_mutex_init(&r->lock, NULL);
	if (cfg->nmore >= RELAY_LISTEN_MAX) {
		log_seterr(err, errlen, "%zu upstreams: at most %d", cfg->nmore + 1, RELAY_LISTEN_MAX);
		relay_free(r);
		return -1;
	}
	r->nlis = cfg->nmore + 1;
	for (size_t k = 0; k < r->nlis; k++) {
		struct rlisten *l = &r->lis[k];
		const char *host = k ? cfg->more[k - 1].host : cfg->upstream_host;
		uint16_t port = k ? cfg->more[k - 1].port : cfg->upstream_port;

		if (resolve(host, port, &l->upstream, &l->upstream_len, err, errlen) < 0) {
			relay_free(r);
			return -1;
		}
		snprintf(l->upstream_name, sizeof(l->upstream_name), "%s:%u", host, port);
	}
	if (relay_listen(r, err, errlen) < 0) {
		relay_free(r);
		return -1;
	}
	*out = r;
	return 0;
}

uint16_t relay_port(const struct relay *r)
{
	return r->lis[0].port;
}

uint16_t relay_port_of(const struct relay *r, size_t k)
{
	return k < r->nlis ? r->lis[k].port : 0;
}

void relay_lock(struct relay *r)
{
	pthread_mutex_lock(&r->lock);
}

void relay_unlock(struct relay *r)
{
	pthread_mutex_unlock(&r->lock);
}

const struct relay_stats *relay_stats(const struct relay *r)
{
	return &r->stats;
}

void relay_log(const struct relay *r, const struct relay_peer *peer, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (r->cfg.quiet)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_line("proxy: connection %llu from %s: %s", (unsigned long long)peer->id, peer->name, msg);
}

static size_t rbuf_room(const struct rbuf *b)
{
	return b->cap - (b->end - b->wr);
}

/* Side i is done with (failed, or finished while closing): its socket goes now, so epoll stops reporting it. */
static void rconn_side_close(struct rconn *c, int i)
{
	if (c->fd[i] < 0)
		return;
	if (c->side[i].registered)
		epoll_ctl(c->r->epoll_fd, EPOLL_CTL_DEL, c->fd[i], NULL);
	close(c->fd[i]);
	c->fd[i] = -1;
	c->side[i].mask = 0;
	c->side[i].registered = false;
}

/* The connection began to end: tell the judge, once. */
static void rconn_ending(struct rconn *c)
{
	if (c->ending_told || !c->judged)
		return;
	c->ending_told = true;
	if (c->r->cfg.judge.conn_ending)
		c->r->cfg.judge.conn_ending(c->r->cfg.judge.arg, c->judged);
}

static void rconn_close(struct rconn *c)
{
	struct relay *r = c->r;

	if (c->dead)
		return;
	rconn_ending(c);
	c->dead = true;
	rconn_side_close(c, 0);
	rconn_side_close(c, 1);
	if (c->closing)
		r->closing--;
	if (c->prev)
		c->prev->next = c->next;
	else
		r->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = NULL;
	c->next = r->graveyard;
	r->graveyard = c;
	r->stats.conns_active--;
}

static void rconn_free(struct rconn *c)
{
	if (c->judged)
		c->r->cfg.judge.conn_close(c->r->cfg.judge.arg, c->judged);
	for (int d = 0; d < 2; d++)
		free(c->buf[d].data);
	free(c);
}

/* Judge and forward nothing more; drain what was decided, then close (relay.h, "A connection's life"). */
static void rconn_begin_closing(struct rconn *c)
{
	if (c->closing)
		return;
	rconn_ending(c);
	c->closing = true;
	c->closing_since = clock_now_ns();
	c->r->closing++;
	for (int d = 0; d < 2; d++) /* drop undecided bytes */
		c->buf[d].end = c->buf[d].scan = c->buf[d].fwd;
}

/* Side i failed (reset, write error): the other side still gets what was decided for it. */
static void rconn_side_fail(struct rconn *c, int i)
{
	rconn_side_close(c, i);
	rconn_begin_closing(c);
}

/* Applies the judge's verdict on the whole frame [fwd, scan) of direction d. */
static void rconn_apply(struct rconn *c, struct rbuf *b, enum relay_verdict v)
{
	switch (v) {
	case RELAY_FORWARD:
		b->fwd = b->scan;
		break;
	case RELAY_SWALLOW: /* rare (a rule hit): moving the rest down is fine */
		memmove(b->data + b->fwd, b->data + b->scan, b->end - b->scan);
		b->end -= b->scan - b->fwd;
		b->scan = b->fwd;
		break;
	case RELAY_FORWARD_CUT:
		b->fwd = b->scan;
		rconn_begin_closing(c);
		break;
	case RELAY_CUT:
		rconn_begin_closing(c); /* drops [fwd, end): the frame and what followed */
		break;
	case RELAY_ABORT:
		rconn_close(c);
		break;
	}
}

/* Judges the whole frames among the bytes read on direction d, in place; 0, or -1 when c was closed. */
static int rconn_parse(struct rconn *c, int d)
{
	struct rbuf *b = &c->buf[d];
	const struct relay_judge *j = &c->r->cfg.judge;

	while (b->scan < b->end && !c->closing) {
		struct frame_info fi;
		int done;
		long n = frame_parser_feed(&b->parser, b->data + b->scan, b->end - b->scan, &fi, &done);

		if (n < 0) {
			c->r->stats.malformed++;
			relay_log(c->r, &c->peer, "malformed AMQP from %s: %s; connection closed", dir_sender[d],
				  frame_strerror((int)n));
			rconn_close(c);
			return -1;
		}
		b->scan += (size_t)n;
		if (done) {
			rconn_apply(c, b, j->conn_frame(j->arg, c->judged, (enum relay_dir)d, &fi, b->data + b->fwd));
			if (c->dead)
				return -1;
		}
	}
	return 0;
}

/*
 * Where the next read of direction d goes, and how much: behind the bytes
 * read so far; while closing, into a scratch buffer, since what comes then is
 * only read to be thrown away. 0 when there is no room.
 */
static size_t rbuf_read_room(struct rconn *c, struct rbuf *b, uint8_t **at, uint8_t *scratch, size_t scratch_len)
{
	if (c->closing) {
		*at = scratch;
		return scratch_len;
	}
	if (b->wr == b->end) { /* everything read went out: start over at the front */
		b->wr = b->fwd = b->scan = b->end = 0;
	} else if (b->cap - b->end < COMPACT_BELOW && b->wr > 0) {
		memmove(b->data, b->data + b->wr, b->end - b->wr);
		b->fwd -= b->wr;
		b->scan -= b->wr;
		b->end -= b->wr;
		b->wr = 0;
	}
	*at = b->data + b->end;
	return b->cap - b->end;
}

/* Writes what is decided on direction d to its destination; 0, or -1 when that side failed. */
static int rconn_write(struct rconn *c, struct rbuf *b, int dst)
{
	size_t put = 0;
	int rc = io_write(c->fd[dst], b->data + b->wr, b->fwd - b->wr, &put);

	if (rc == IO_ERR) {
		rconn_side_fail(c, dst);
		return -1;
	}
	b->wr += put;
	c->r->stats.bytes[1 - dst] += put;
	if (b->wr < b->fwd)
		b->blocked = true; /* the socket is full: EPOLLOUT says when it has room */
	return 0;
}

/* Reads once on direction d and judges what came; 0 to go on, -1 to stop pumping. */
static int rconn_read(struct rconn *c, struct rbuf *b, int src)
{
	uint8_t scratch[16384], *at;
	size_t want = rbuf_read_room(c, b, &at, scratch, sizeof(scratch)), got = 0;
	int rc = io_read(c->fd[src], at, want, &got);

	if (rc == IO_AGAIN) {
		b->readable = false;
		return -1;
	}
	if (rc == IO_EOF) {
		b->eof = true;
		rconn_ending(c);
		return -1;
	}
	if (rc == IO_ERR) {
		rconn_side_fail(c, src);
		return -1;
	}
	if (got < want)
		b->readable = false; /* the socket is empty, most likely: epoll says when it is not */
	if (c->closing)
		return b->readable ? 0 : -1;
	b->end += got;
	if (rconn_parse(c, src) < 0)
		return -1;
	return 0;
}

/*
 * Moves direction d as far as it goes now (nginx's ngx_stream_proxy_process):
 * write what is decided, read while the buffer has room and the source has
 * bytes, judge the whole frames, write again; then pass on the source's FIN
 * (or, closing, ours) once everything decided went out. In the common case a
 * pump is one read and one write of everything that read brought.
 */
static void rconn_pump(struct rconn *c, int d)
{
	struct rbuf *b = &c->buf[d];
	int src = d, dst = 1 - d;

	for (int rounds = 0; !c->dead; rounds++) {
		bool dst_ok = c->fd[dst] >= 0 && !(dst == 1 && c->connecting);

		if (dst_ok && !b->blocked && b->fwd > b->wr && rconn_write(c, b, dst) < 0)
			continue; /* dst failed: now closing, src still drains */
		if (rounds < READ_ROUNDS && c->fd[src] >= 0 && b->readable && !b->eof &&
		    (c->closing || rbuf_room(b) > 0) && rconn_read(c, b, src) == 0)
			continue;
		break;
	}
	if (c->dead || b->shut || !(b->eof || c->closing) || b->wr != b->fwd)
		return;
	if (c->fd[dst] < 0 || (dst == 1 && c->connecting)) {
		if (c->closing) /* nobody to tell */
			b->shut = true;
		return;
	}
	if (b->end > b->fwd)
		relay_log(c->r, &c->peer, "%s closed in the middle of a frame; the partial frame dropped",
			  dir_sender[d]);
	shutdown(c->fd[dst], SHUT_WR);
	b->shut = true;
}

/* The epoll mask of each side follows from the buffers (EPOLLOUT only while bytes wait, EPOLLIN only with room). */
static void rconn_update(struct rconn *c)
{
	if (c->dead)
		return;
	for (int i = 0; i < 2; i++) {
		const struct rbuf *in = &c->buf[i], *out = &c->buf[1 - i];
		struct rside *s = &c->side[i];
		uint32_t mask = 0;
		struct epoll_event ev;

		if (c->fd[i] < 0)
			continue;
		if (i == 1 && c->connecting) {
			mask = EPOLLOUT;
		} else {
			/* closing reads (to discard) whatever comes, until the peer's FIN */
			if (!in->eof && (c->closing || rbuf_room(in) > 0))
				mask |= EPOLLIN;
			if (out->fwd > out->wr)
				mask |= EPOLLOUT;
		}
		if (mask == 0 && s->hup) {
			/*
			 * epoll reports EPOLLHUP whatever the mask, and a hung-up
			 * socket stays hung up: with nothing to wait for on it (its
			 * bytes wait behind a full buffer, or it said all it had),
			 * it leaves the set, or the loop would wake for it forever.
			 * It comes back once there is something to wait for.
			 */
			if (s->registered)
				epoll_ctl(c->r->epoll_fd, EPOLL_CTL_DEL, c->fd[i], NULL);
			s->registered = false;
			s->mask = 0;
			continue;
		}
		if (s->registered && mask == s->mask)
			continue;
		ev.events = mask;
		ev.data.ptr = s;
		epoll_ctl(c->r->epoll_fd, s->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd[i], &ev);
		s->registered = true;
		s->mask = mask;
	}
}

/* Closes c once both directions are finished; while closing, moves the drain on first. */
static void rconn_check_done(struct rconn *c)
{
	if (c->dead)
		return;
	if (!c->closing) {
		if (c->buf[0].shut && c->buf[1].shut) /* both directions finished: FIN seen and passed on */
			rconn_close(c);
		return;
	}
	if (c->fd[1] >= 0 && c->connecting) /* nothing reached the upstream: nothing to drain */
		rconn_side_close(c, 1);
	rconn_pump(c, 0);
	rconn_pump(c, 1);
	for (int i = 0; i < 2; i++) /* side i said all it had, and got all it was owed */
		if (c->buf[i].eof && c->buf[1 - i].shut)
			rconn_side_close(c, i);
	if ((c->fd[0] < 0 && c->fd[1] < 0) || clock_now_ns() - c->closing_since > CLOSING_GRACE_NS)
		rconn_close(c);
}

static void rconn_connected(struct rconn *c)
{
	int e = 0;
	socklen_t l = sizeof(e);

	getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &e, &l);
	if (e != 0) {
		c->r->stats.upstream_failures++;
		relay_log(c->r, &c->peer, "cannot reach the broker at %s: %s; connection closed", c->via->upstream_name,
			  strerror(e));
		rconn_close(c);
		return;
	}
	c->connecting = false;
	set_nodelay(c->fd[1]);
	rconn_pump(c, 0); /* what the client sent meanwhile */
}

static void relay_handle(struct rside *s, uint32_t events)
{
	struct rconn *c = s->conn;
	int i = s->idx;

	if (c->dead)
		return;
	if (events & EPOLLHUP)
		s->hup = true;
	if (i == 1 && c->connecting) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			rconn_connected(c);
	} else {
		if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
			c->buf[i].readable = true;
			rconn_pump(c, i);
		}
		if (!c->dead && (events & (EPOLLOUT | EPOLLERR))) {
			c->buf[1 - i].blocked = false;
			rconn_pump(c, 1 - i);
		}
		if (!c->dead && !c->closing && (events & EPOLLERR) && !(events & EPOLLIN))
			rconn_side_fail(c, i); /* an error on a side we were not reading: it failed */
	}
	rconn_check_done(c);
	rconn_update(c);
}

/* A new connection from fd: its buffers, the judge's state, the upstream connect; NULL when it cannot be taken. */
static struct rconn *rconn_new(struct relay *r, const struct rlisten *via, int fd, const struct sockaddr_storage *ss)
{
	struct rconn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->r = r;
	c->via = via;
	c->fd[0] = fd;
	c->fd[1] = -1;
	c->peer.id = ++r->next_id; /* the connection's ordinal: its rules' seeds derive from it */
	c->peer.name = c->peer_name;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sa = (const struct sockaddr_in *)ss;
		char ip[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof(ip));
		snprintf(c->peer_name, sizeof(c->peer_name), "%s:%u", ip, ntohs(sa->sin_port));
		c->peer.port = ntohs(sa->sin_port);
	} else {
		snprintf(c->peer_name, sizeof(c->peer_name), "ipv6 peer");
	}
	for (int d = 0; d < 2; d++) {
		c->buf[d].cap = (size_t)r->cfg.max_frame + 65536;
		c->buf[d].data = malloc(c->buf[d].cap);
		frame_parser_init(&c->buf[d].parser, r->cfg.max_frame, d == RELAY_TO_UPSTREAM);
		c->side[d] = (struct rside){ .conn = c, .idx = d };
	}
	if (!c->buf[0].data || !c->buf[1].data)
		goto fail;
	c->judged = r->cfg.judge.conn_open(r->cfg.judge.arg, &c->peer);
	if (!c->judged)
		goto fail;
	c->fd[1] = socket(via->upstream.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd[1] < 0)
		goto fail;
	return c;
fail:
	if (!r->cfg.quiet)
		log_line("proxy: cannot take a connection: %s", c->judged ? strerror(errno) : "out of memory");
	c->fd[0] = -1; /* the caller's */
	rconn_free(c);
	return NULL;
}

/* Connects c's upstream socket; 0, or -1 when that failed at once (c is freed, fd closed). */
static int rconn_connect(struct rconn *c)
{
	struct relay *r = c->r;

	c->connecting = true;
	if (connect(c->fd[1], (struct sockaddr *)&c->via->upstream, c->via->upstream_len) == 0) {
		c->connecting = false;
		set_nodelay(c->fd[1]);
	} else if (errno != EINPROGRESS) {
		if (!r->cfg.quiet)
			log_line("proxy: connection from %s: cannot reach the broker at %s: %s", c->peer_name,
				 c->via->upstream_name, strerror(errno));
		r->stats.upstream_failures++;
		close(c->fd[0]);
		close(c->fd[1]);
		rconn_free(c);
		return -1;
	}
	return 0;
}

/* Counts a connection from the client address in ss (the first RELAY_PEER_ADDRS addresses seen). */
static void relay_count_addr(struct relay_stats *st, const struct sockaddr_storage *ss)
{
	uint32_t ip;

	if (ss->ss_family != AF_INET)
		return;
	ip = ((const struct sockaddr_in *)ss)->sin_addr.s_addr;
	for (size_t i = 0; i < st->naddrs; i++)
		if (st->by_addr[i].ip == ip) {
			st->by_addr[i].conns++;
			return;
		}
	if (st->naddrs < RELAY_PEER_ADDRS)
		st->by_addr[st->naddrs++] = (struct relay_peer_addr){ .ip = ip, .conns = 1 };
}

static void relay_accept(struct relay *r, const struct rlisten *l)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct rconn *c;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK && !r->cfg.quiet)
				log_line("proxy: accept: %s", strerror(errno));
			return;
		}
		if (r->stats.conns_active >= r->cfg.max_conns) {
			r->stats.conns_refused++;
			close(fd);
			continue;
		}
		c = rconn_new(r, l, fd, &ss);
		if (!c) {
			close(fd);
			continue;
		}
		set_nodelay(fd);
		if (rconn_connect(c) < 0)
			continue;
		c->next = r->conns;
		if (r->conns)
			r->conns->prev = c;
		r->conns = c;
		r->stats.conns_accepted++;
		r->stats.conns_by_listener[l - r->lis]++;
		relay_count_addr(&r->stats, &ss);
		r->stats.conns_active++;
		rconn_update(c);
	}
}

/* One batch of epoll events, under the lock; returns true when the stop eventfd fired. */
static bool relay_batch(struct relay *r, const struct epoll_event *evs, int n)
{
	bool stop = false;

	r->stats.loop_wakeups++;
	for (int k = 0; k < n; k++) {
		void *tag = evs[k].data.ptr;

		if (tag == &stop_tag) {
			stop = true;
		} else if (tag == &wake_tag) {
			uint64_t count;

			/* only to reset the eventfd; the closing connections move on below */
			if (read(r->wake_fd, &count, sizeof(count)) < 0) {
				/* already reset */
			}
		} else if ((const char *)tag >= (const char *)r->lis && (const char *)tag < (const char *)(r->lis + r->nlis)) {
			relay_accept(r, tag);
		} else {
			relay_handle(tag, evs[k].events);
		}
	}
	if (r->closing) { /* the grace period runs out even for connections whose peers went quiet */
		for (struct rconn *c = r->conns, *next; c; c = next) {
			next = c->next;
			if (c->closing) {
				rconn_check_done(c);
				rconn_update(c);
			}
		}
	}
	while (r->graveyard) {
		struct rconn *c = r->graveyard;

		r->graveyard = c->next;
		rconn_free(c);
	}
	return stop;
}

int relay_run(struct relay *r)
{
	struct epoll_event evs[128];

	for (;;) {
		int n = epoll_wait(r->epoll_fd, evs, 128, r->closing ? 100 : -1);
		bool stop;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_line("proxy: epoll_wait: %s", strerror(errno));
			return -1;
		}
		pthread_mutex_lock(&r->lock);
		stop = relay_batch(r, evs, n);
		pthread_mutex_unlock(&r->lock);
		if (stop)
			return 0;
	}
}

static void *relay_thread(void *arg)
{
	relay_run(arg);
	return NULL;
}

int relay_start(struct relay *r)
{
	sigset_t all, old;
	int rc;

	/* signals belong to the main thread */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&r->thread, NULL, relay_thread, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return -1;
	r->threaded = true;
	return 0;
}

size_t relay_cut_all(struct relay *r, void (*each)(void *arg, void *conn), void *arg)
{
	uint64_t one = 1;
	size_t n = 0;

	pthread_mutex_lock(&r->lock);
	for (struct rconn *c = r->conns; c; c = c->next) {
		if (c->closing)
			continue;
		if (each && c->judged)
			each(arg, c->judged);
		rconn_begin_closing(c);
		n++;
	}
	r->stats.conns_cut_all += n;
	pthread_mutex_unlock(&r->lock);
	/* the loop may sleep with no timeout: the closing connections need it for their drain and grace */
	if (n > 0 && write(r->wake_fd, &one, sizeof(one)) < 0) {
		/* the counter is already non-zero: the loop will wake */
	}
	return n;
}

void relay_stop_signal(struct relay *r)
{
	uint64_t one = 1;

	if (write(r->stop_fd, &one, sizeof(one)) < 0) {
		/* the counter is already non-zero: the loop will stop */
	}
}

void relay_stop(struct relay *r)
{
	relay_stop_signal(r);
	if (r->threaded) {
		pthread_join(r->thread, NULL);
		r->threaded = false;
	}
}

void relay_free(struct relay *r)
{
	if (!r)
		return;
	if (r->threaded)
		relay_stop(r);
	while (r->conns)
		rconn_close(r->conns);
	while (r->graveyard) {
		struct rconn *c = r->graveyard;

		r->graveyard = c->next;
		rconn_free(c);
	}
	for (size_t k = 0; k < RELAY_LISTEN_MAX; k++)
		if (r->lis[k].fd >= 0)
			close(r->lis[k].fd);
	if (r->epoll_fd >= 0)
		close(r->epoll_fd);
	if (r->stop_fd >= 0)
		close(r->stop_fd);
	if (r->wake_fd >= 0)
		close(r->wake_fd);
	pthread_mutex_destroy(&r->lock);
	free(r);
}
