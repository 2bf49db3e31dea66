/* proxy.c — the AMQP fault proxy: the relay's judge (rules, content, counters) and `dupsim proxy`. */
#include "proxy/proxy.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "core/clock.h"
#include "core/log.h"
#include "proxy/relay.h"
#include "wire/frame.h"

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

/* Contents in flight, one direction, whose method a rule hit. */
struct pcontents {
	struct pcontent *at;
	size_t n, cap;
};

/* On one channel of a connection: the highest delivery tag forwarded to the client in a basic.deliver. */
struct ptag {
	uint16_t channel;
	uint64_t max_tag;
};

/* A basic.deliver sent to the client whose content header has not come yet (for the tap). */
struct pdeliver {
	uint16_t channel;
	bool redelivered;
	uint64_t tag;
};

/* The judge's state for one connection. */
struct pconn {
	struct proxy *px;
	const struct relay_peer *peer; /* the relay's, valid until conn_close */
	struct rule_conn rules;	       /* the rules' decision state on this connection, seeded by its id */
	struct pcontents content[2];   /* per direction */
	struct ptag *tags;	       /* per channel that had deliveries (for the acks' "ahead") */
	size_t ntags, tags_cap;
	struct pdeliver *pending;      /* the tap's deliveries waiting for their header */
	size_t npending, pending_cap;
	uint64_t last_ahead; /* at the client's latest basic.ack */
};

struct proxy {
	struct proxy_config cfg;
	struct rule_set rules;
	struct relay *relay;
	amqp_pool_t pool;	 /* librabbitmq-c's method decoding; recycled for every frame decoded */
	struct proxy_stats stats; /* the judge's counters; the relay's are its own (relay_stats) */
	uint64_t base_ns, warmup_ns; /* the timetable: scheduled windows count from base_ns (under the lock) */
	bool faults_off;	     /* no rule in force (under the lock) */
};

static const enum rule_from dir_from[2] = { RULE_FROM_CLIENT, RULE_FROM_BROKER };
static const char *const dir_sender[2] = { "client", "broker" };

/* Remembers that the content of a method on channel ch shares its fate; 0 or -1 (out of memory). */
static int pcontents_add(struct pcontents *l, uint16_t ch, enum pcontent_fate fate)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 4;
		struct pcontent *n = realloc(l->at, cap * sizeof(*n));

		if (!n)
			return -1;
		l->at = n;
		l->cap = cap;
	}
	l->at[l->n++] = (struct pcontent){ .channel = ch, .fate = fate };
	return 0;
}

static struct pcontent *pcontents_find(struct pcontents *l, uint16_t ch)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->at[i].channel == ch)
			return &l->at[i];
	return NULL;
}

static void pcontents_remove(struct pcontents *l, struct pcontent *pc)
{
	*pc = l->at[--l->n];
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

static void pconn_tap_header(struct pconn *c, const struct frame_info *fi, const uint8_t *frame, bool forwarded);

/*
 * A frame on a channel whose content shares a hit method's fate. Returns
 * true and the verdict when it was judged here (swallowed, or forwarded as
 * part of the content), false when the content is over and the frame goes
 * through the usual path.
 */
static bool pconn_content_frame(struct pconn *c, struct pcontents *l, struct pcontent *pc,
				const struct frame_info *fi, const uint8_t *frame, enum relay_verdict *v)
{
	enum pcontent_fate fate = pc->fate;
	bool done;

	if (fi->type == FRAME_HEADER && !pc->header_seen) {
		pc->header_seen = true;
		pc->remaining = pcontent_body_size(frame);
		if (c->npending > 0)
			pconn_tap_header(c, fi, frame, fate == PCONTENT_CUT);
	} else if (fi->type == FRAME_BODY && pc->header_seen && pc->remaining > 0) {
		pc->remaining -= fi->payload_size < pc->remaining ? fi->payload_size : pc->remaining;
	} else { /* a method, or a frame out of order: the content ended early */
		pcontents_remove(l, pc);
		if (fate == PCONTENT_CUT) { /* the cut falls before this frame */
			*v = RELAY_CUT;
			return true;
		}
		return false;
	}
	done = pc->remaining == 0;
	if (done)
		pcontents_remove(l, pc);
	if (fate == PCONTENT_DROP) {
		c->px->stats.content_dropped++;
		*v = RELAY_SWALLOW;
	} else {
		*v = done ? RELAY_FORWARD_CUT : RELAY_FORWARD; /* the whole message went through: now the cut */
	}
	return true;
}

/*
 * Decodes the arguments of a method frame with librabbitmq-c. Returns 0 and
 * *decoded (valid until the next decode), or -1 when they do not decode (the
 * frame is relayed all the same: the proxy is not the judge of AMQP).
 */
static int pconn_decode(struct pconn *c, const struct frame_info *fi, const uint8_t *frame, void **decoded)
{
	amqp_bytes_t args = { fi->payload_size - 4, (void *)(frame + FRAME_HEADER_SIZE + 4) };

	recycle_amqp_pool(&c->px->pool);
	return amqp_decode_method(frame_method_number(fi), &c->px->pool, args, decoded) == AMQP_STATUS_OK ? 0 : -1;
}

/* The channel's slot for delivery tags, made when missing; NULL only when out of memory. */
static struct ptag *pconn_tag_slot(struct pconn *c, uint16_t ch)
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
static void pconn_sample_ack(struct pconn *c, uint16_t ch, const amqp_basic_ack_t *ack)
{
	struct proxy_stats *st = &c->px->stats;
	uint64_t max = 0, ahead;

	for (size_t i = 0; i < c->ntags; i++)
		if (c->tags[i].channel == ch)
			max = c->tags[i].max_tag;
	/* multiple with tag 0 acks everything outstanding: nothing is beyond it */
	ahead = (ack->multiple && ack->delivery_tag == 0) || max <= ack->delivery_tag ? 0 : max - ack->delivery_tag;
	c->last_ahead = ahead;
	st->acks_sampled++;
	st->ahead_sum += ahead;
	st->ahead_sq_sum += ahead * ahead;
}

/* The tap: a basic.deliver went by on channel ch; its header comes next on that channel. */
static void pconn_pending_add(struct pconn *c, uint16_t ch, const amqp_basic_deliver_t *dm)
{
	if (c->npending == c->pending_cap) {
		size_t cap = c->pending_cap ? 2 * c->pending_cap : 4;
		struct pdeliver *n = realloc(c->pending, cap * sizeof(*n));

		if (!n)
			return; /* out of memory: the tap misses this delivery (the ledger says foreign/unsettled) */
		c->pending = n;
		c->pending_cap = cap;
	}
	c->pending[c->npending++] =
		(struct pdeliver){ .channel = ch, .redelivered = dm->redelivered, .tag = dm->delivery_tag };
}

/*
 * A content header on channel ch: when it belongs to a basic.deliver the tap
 * waits for, it is taken off the list; told to the tap when `forwarded` (the
 * client gets it), else only forgotten (a rule swallowed the message).
 */
static void pconn_tap_header(struct pconn *c, const struct frame_info *fi, const uint8_t *frame, bool forwarded)
{
	struct proxy *px = c->px;
	struct pdeliver pd;
	size_t i;
	void *props = NULL;

	for (i = 0; i < c->npending && c->pending[i].channel != fi->channel; i++)
		;
	if (i == c->npending)
		return;
	pd = c->pending[i];
	c->pending[i] = c->pending[--c->npending];
	if (!forwarded || fi->payload_size < 12)
		return;
	recycle_amqp_pool(&px->pool);
	if (amqp_decode_properties(fi->class_id, &px->pool,
				   (amqp_bytes_t){ fi->payload_size - 12, (void *)(frame + FRAME_HEADER_SIZE + 12) },
				   &props) != AMQP_STATUS_OK)
		props = NULL;
	px->cfg.tap.delivery(px->cfg.tap.arg, &(struct proxy_delivery){
		.time_ns = clock_now_ns(), .conn_id = c->peer->id, .channel = fi->channel,
		.redelivered = pd.redelivered, .delivery_tag = pd.tag, .props = props });
}

/* The tap: the client settled deliveries on channel ch, or the channel closed. */
static void pconn_tap_settle(struct pconn *c, uint16_t ch, enum proxy_settle_kind kind, uint64_t tag, bool multiple)
{
	struct proxy *px = c->px;

	if (!px->cfg.tap.settle)
		return;
	if (kind == PROXY_SETTLE_CHANNEL) { /* what was on its way is given back with it */
		for (size_t i = 0; i < c->npending;) {
			if (c->pending[i].channel == ch)
				c->pending[i] = c->pending[--c->npending];
			else
				i++;
		}
	}
	px->cfg.tap.settle(px->cfg.tap.arg, &(struct proxy_settle){ .time_ns = clock_now_ns(), .conn_id = c->peer->id,
								    .channel = ch, .kind = kind,
								    .delivery_tag = tag, .multiple = multiple });
}

/* What the judge learns from a method frame before the rules see it; *deliver_tag: a basic.deliver's tag, else 0. */
static void pconn_observe(struct pconn *c, int d, const struct frame_info *fi, const uint8_t *frame,
			  uint64_t *deliver_tag)
{
	uint32_t number = frame_method_number(fi);
	void *m;

	*deliver_tag = 0;
	if (d == PROXY_TO_CLIENT && number == AMQP_BASIC_DELIVER_METHOD) {
		if (pconn_decode(c, fi, frame, &m) == 0) {
			*deliver_tag = ((amqp_basic_deliver_t *)m)->delivery_tag;
			if (c->px->cfg.tap.delivery)
				pconn_pending_add(c, fi->channel, m);
		}
	} else if (d == PROXY_TO_BROKER && number == AMQP_BASIC_ACK_METHOD) {
		if (pconn_decode(c, fi, frame, &m) == 0) {
			pconn_sample_ack(c, fi->channel, m);
			pconn_tap_settle(c, fi->channel, PROXY_SETTLE_ACK, ((amqp_basic_ack_t *)m)->delivery_tag,
					 ((amqp_basic_ack_t *)m)->multiple);
		}
	} else if (d == PROXY_TO_BROKER && number == AMQP_BASIC_NACK_METHOD) {
		if (pconn_decode(c, fi, frame, &m) == 0)
			pconn_tap_settle(c, fi->channel, PROXY_SETTLE_NACK, ((amqp_basic_nack_t *)m)->delivery_tag,
					 ((amqp_basic_nack_t *)m)->multiple);
	} else if (d == PROXY_TO_BROKER && number == AMQP_BASIC_REJECT_METHOD) {
		if (pconn_decode(c, fi, frame, &m) == 0)
			pconn_tap_settle(c, fi->channel, PROXY_SETTLE_NACK, ((amqp_basic_reject_t *)m)->delivery_tag,
					 false);
	} else if (number == AMQP_CHANNEL_CLOSE_METHOD) {
		pconn_tap_settle(c, fi->channel, PROXY_SETTLE_CHANNEL, 0, true);
	} else if (d == PROXY_TO_BROKER && number == AMQP_CHANNEL_OPEN_METHOD) {
		/* a reopened channel numbers its deliveries from 1 again */
		for (size_t i = 0; i < c->ntags; i++)
			if (c->tags[i].channel == fi->channel)
				c->tags[i].max_tag = 0;
	}
}

/* A basic.deliver with this tag went to the client on channel ch. */
static void pconn_note_deliver(struct pconn *c, uint16_t ch, uint64_t tag)
{
	struct ptag *t;

	if (tag == 0 || !(t = pconn_tag_slot(c, ch)))
		return; /* out of memory: this channel's acks read as ahead 0 */
	if (tag > t->max_tag)
		t->max_tag = tag;
}

/* Rule hit fired on a frame of direction d: the run's callback and the log hear of it. */
static void proxy_tell_fault(struct pconn *c, int d, int hit, uint64_t now)
{
	struct proxy *px = c->px;
	const struct rule *r = &px->rules.rules[hit];

	if (px->cfg.on_fault) {
		struct proxy_fault f = { .time_ns = now, .rule = (size_t)px->rules.id[hit] - 1, .r = r,
					 .method = r->method, .dir = d, .conn_id = c->peer->id,
					 .peer_port = c->peer->port };

		px->cfg.on_fault(px->cfg.on_fault_arg, &f);
	}
	if (px->cfg.log_faults)
		relay_log(px->relay, c->peer, "rule fired: %s", r->text);
}

/* A rule fired on a method frame of direction d: tell, then decide what becomes of the frame. */
static enum relay_verdict pconn_fire(struct pconn *c, int d, const struct frame_info *fi, int hit, uint64_t deliver_tag,
				     uint64_t now)
{
	struct proxy *px = c->px;
	const struct rule *r = &px->rules.rules[hit];
	bool content = amqp_method_has_content(frame_method_number(fi));

	proxy_tell_fault(c, d, hit, now);
	if (d == PROXY_TO_BROKER && frame_method_number(fi) == AMQP_BASIC_ACK_METHOD) {
		px->stats.acks_hit++;
		px->stats.ahead_hit_sum += c->last_ahead;
		px->stats.ahead_hit_sq_sum += c->last_ahead * c->last_ahead;
	}
	if (r->action == RULE_CUT) {
		pconn_note_deliver(c, fi->channel, deliver_tag);
		px->stats.cuts++;
		/* a method with content is cut after its content: the whole message went through */
		if (content && pcontents_add(&c->content[d], fi->channel, PCONTENT_CUT) == 0)
			return RELAY_FORWARD;
		return RELAY_FORWARD_CUT;
	}
	px->stats.drops++;
	px->stats.method_dropped[d][frame_method_index(frame_method_number(fi))]++;
	if (r->then == RULE_THEN_CLOSE) {
		px->stats.cuts++;
		return RELAY_CUT; /* the frame and what followed */
	}
	/* hang: take the frame out of the stream, and its content with it; keep the connection */
	if (content && pcontents_add(&c->content[d], fi->channel, PCONTENT_DROP) < 0) {
		relay_log(px->relay, c->peer, "out of memory tracking a dropped message's content; connection closed");
		return RELAY_ABORT;
	}
	return RELAY_SWALLOW;
}

/*
 * The rules' decision on a method frame, at the time on the timetable: the
 * fault's time (*now) is the one the windows were judged at, so a fault
 * reported never lies outside its rule's window. -1: none fires.
 */
static int proxy_decide(struct proxy *px, struct pconn *c, uint32_t method, int d, uint64_t *now)
{
	uint64_t t;

	if (px->faults_off || px->rules.count == 0)
		return -1;
	*now = clock_now_ns();
	t = *now > px->base_ns ? *now - px->base_ns : 0;
	if (t < px->warmup_ns)
		return -1;
	return rule_set_decide_at(&px->rules, &c->rules, method, dir_from[d], t);
}

/*
 * A heartbeat frame: rules on METHOD heartbeat apply as to a method without
 * content. A hang swallows it and keeps the connection: the peer closes
 * after its heartbeat timeout unless other frames keep it alive.
 */
static enum relay_verdict proxy_judge_heartbeat(struct proxy *px, struct pconn *c, int d)
{
	uint64_t now = 0;
	int hit = proxy_decide(px, c, RULE_METHOD_HEARTBEAT, d, &now);
	const struct rule *r;

	if (hit < 0)
		return RELAY_FORWARD;
	r = &px->rules.rules[hit];
	proxy_tell_fault(c, d, hit, now);
	if (r->action == RULE_CUT) {
		px->stats.cuts++;
		return RELAY_FORWARD_CUT;
	}
	px->stats.drops++;
	if (r->then == RULE_THEN_CLOSE) {
		px->stats.cuts++;
		return RELAY_CUT;
	}
	return RELAY_SWALLOW;
}

/* The relay's judge: a whole frame arrived on direction d; count it, apply the rules. */
static enum relay_verdict proxy_judge_frame(void *arg, void *conn, enum relay_dir d, const struct frame_info *fi,
					    const uint8_t *frame)
{
	struct proxy *px = arg;
	struct pconn *c = conn;
	struct pcontents *l = &c->content[d];
	enum relay_verdict v;
	uint64_t deliver_tag, now = 0;
	int hit;

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
	if (l->n > 0 && (fi->type == FRAME_METHOD || fi->type == FRAME_HEADER || fi->type == FRAME_BODY)) {
		struct pcontent *pc = pcontents_find(l, fi->channel);

		if (pc && pconn_content_frame(c, l, pc, fi, frame, &v))
			return v;
	}
	if (fi->type == FRAME_HEADER && c->npending > 0 && d == RELAY_TO_CLIENT)
		pconn_tap_header(c, fi, frame, true);
	if (fi->type == FRAME_HEARTBEAT)
		return proxy_judge_heartbeat(px, c, d);
	if (fi->type != FRAME_METHOD)
		return RELAY_FORWARD;
	px->stats.method_seen[d][frame_method_index(frame_method_number(fi))]++;
	pconn_observe(c, d, fi, frame, &deliver_tag);
	hit = proxy_decide(px, c, frame_method_number(fi), d, &now);
	if (hit >= 0)
		return pconn_fire(c, d, fi, hit, deliver_tag, now);
	pconn_note_deliver(c, fi->channel, deliver_tag);
	return RELAY_FORWARD;
}

static void *proxy_judge_open(void *arg, const struct relay_peer *peer)
{
	struct proxy *px = arg;
	struct pconn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->px = px;
	c->peer = peer;
	if (rule_conn_init(&c->rules, &px->rules, peer->id) < 0) {
		free(c);
		return NULL;
	}
	if (px->cfg.tap.conn_open)
		px->cfg.tap.conn_open(px->cfg.tap.arg, peer->id, peer->port);
	return c;
}

/* The connection began to end (relay.h): for the tap, what it had unsettled goes back now. */
static void proxy_judge_ending(void *arg, void *conn)
{
	struct proxy *px = arg;
	struct pconn *c = conn;

	if (px->cfg.tap.conn_close)
		px->cfg.tap.conn_close(px->cfg.tap.arg, c->peer->id);
}

static void proxy_judge_close(void *arg, void *conn)
{
	struct pconn *c = conn;

	(void)arg;
	rule_conn_release(&c->rules);
	free(c->tags);
	free(c->pending);
	for (int d = 0; d < 2; d++)
		free(c->content[d].at);
	free(c);
}

int proxy_new(struct proxy **out, const struct proxy_config *cfg, char *err, size_t errlen)
{
	struct proxy *px = calloc(1, sizeof(*px));
	struct relay_config rc;

	*out = NULL;
	if (!px)
		return log_seterr(err, errlen, "out of memory");
	px->cfg = *cfg;
	px->cfg.rules = NULL;
	px->base_ns = clock_now_ns();
	if (!px->cfg.max_frame)
		px->cfg.max_frame = FRAME_DEFAULT_MAX;
	if (!px->cfg.max_conns)
		px->cfg.max_conns = 4096;
	init_amqp_pool(&px->pool, 4096);
	if (px->cfg.max_frame < FRAME_MIN_MAX) {
		log_seterr(err, errlen, "max frame %u is below AMQP's minimum of %u", px->cfg.max_frame, FRAME_MIN_MAX);
		goto fail;
	}
	if (rule_set_init(&px->rules, cfg->rules, cfg->rule_count, cfg->seed) < 0) {
		log_seterr(err, errlen, "out of memory");
		goto fail;
	}
	rc = (struct relay_config){
		.listen_host = cfg->listen_host, .listen_port = cfg->listen_port,
		.upstream_host = cfg->upstream_host, .upstream_port = cfg->upstream_port,
		.more = cfg->more, .nmore = cfg->nmore,
		.max_frame = px->cfg.max_frame, .max_conns = px->cfg.max_conns, .quiet = cfg->quiet,
		.judge = { .conn_open = proxy_judge_open, .conn_frame = proxy_judge_frame,
			   .conn_close = proxy_judge_close, .conn_ending = proxy_judge_ending, .arg = px },
	};
	if (relay_new(&px->relay, &rc, err, errlen) < 0)
		goto fail;
	*out = px;
	return 0;
fail:
	proxy_free(px);
	return -1;
}

uint16_t proxy_port(const struct proxy *px)
{
	return relay_port(px->relay);
}

uint16_t proxy_port_of(const struct proxy *px, size_t k)
{
	return relay_port_of(px->relay, k);
}

int proxy_run(struct proxy *px)
{
	return relay_run(px->relay);
}

int proxy_start(struct proxy *px)
{
	return relay_start(px->relay);
}

void proxy_stop_signal(struct proxy *px)
{
	relay_stop_signal(px->relay);
}

void proxy_stop(struct proxy *px)
{
	relay_stop(px->relay);
}

uint64_t proxy_conns_from(const struct proxy_stats *st, const char *ip)
{
	struct in_addr a;

	if (inet_pton(AF_INET, ip, &a) != 1)
		return 0;
	for (size_t i = 0; i < st->naddrs; i++)
		if (st->by_addr[i].ip == a.s_addr)
			return st->by_addr[i].conns;
	return 0;
}

int proxy_stats_get(struct proxy *px, struct proxy_stats *out)
{
	const struct relay_stats *rs;
	int rc = 0;

	relay_lock(px->relay);
	rs = relay_stats(px->relay);
	*out = px->stats;
	out->conns_accepted = rs->conns_accepted;
	memcpy(out->conns_by_listener, rs->conns_by_listener, sizeof(out->conns_by_listener));
	memcpy(out->by_addr, rs->by_addr, sizeof(out->by_addr));
	out->naddrs = rs->naddrs;
	out->conns_active = rs->conns_active;
	out->conns_refused = rs->conns_refused;
	out->upstream_failures = rs->upstream_failures;
	out->malformed = rs->malformed;
	out->bytes[0] = rs->bytes[0];
	out->bytes[1] = rs->bytes[1];
	out->loop_wakeups = rs->loop_wakeups;
	out->cuts_requested = rs->conns_cut_all;
	out->rule_count = px->rules.ids;
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
	relay_unlock(px->relay);
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
	relay_free(px->relay); /* first: it hands every connection's state back to the judge */
	rule_set_release(&px->rules);
	empty_amqp_pool(&px->pool);
	free(px);
}

void proxy_set_time_base(struct proxy *px, uint64_t base_ns, uint64_t warmup_ns)
{
	relay_lock(px->relay);
	px->base_ns = base_ns;
	px->warmup_ns = warmup_ns;
	relay_unlock(px->relay);
}

void proxy_faults_off(struct proxy *px, bool off)
{
	relay_lock(px->relay);
	px->faults_off = off;
	relay_unlock(px->relay);
}

/* The rule at index i of the rules in force, as proxy_rule; under the lock. */
static void proxy_rule_copy(const struct proxy *px, int i, struct proxy_rule *out)
{
	const struct rule_set *s = &px->rules;
	uint64_t id = s->id[i];

	*out = (struct proxy_rule){ .id = id, .rule = s->rules[i], .matched = s->matched[id - 1],
				    .fired = s->fired[id - 1] };
}

int proxy_rules_get(struct proxy *px, struct proxy_rule **out, size_t *n)
{
	int rc = 0;

	relay_lock(px->relay);
	*out = NULL;
	*n = px->rules.count;
	if (*n > 0 && !(*out = malloc(*n * sizeof(**out)))) {
		*n = 0;
		rc = -1;
	}
	for (size_t i = 0; i < *n; i++)
		proxy_rule_copy(px, (int)i, &(*out)[i]);
	relay_unlock(px->relay);
	return rc;
}

int proxy_rule_get(struct proxy *px, uint64_t id, struct proxy_rule *out)
{
	int i;

	relay_lock(px->relay);
	i = rule_set_find(&px->rules, id);
	if (i >= 0)
		proxy_rule_copy(px, i, out);
	relay_unlock(px->relay);
	return i >= 0 ? 0 : -1;
}

int proxy_rule_add(struct proxy *px, const struct rule *r, struct proxy_rule *out)
{
	uint64_t id;
	int rc;

	relay_lock(px->relay);
	rc = rule_set_add(&px->rules, r, &id);
	if (rc == 0)
		proxy_rule_copy(px, (int)px->rules.count - 1, out);
	relay_unlock(px->relay);
	return rc;
}

int proxy_rule_set_p(struct proxy *px, uint64_t id, double p, struct proxy_rule *out)
{
	int i;

	relay_lock(px->relay);
	i = rule_set_find(&px->rules, id);
	if (i >= 0) {
		rule_change_p(&px->rules.rules[i], p);
		proxy_rule_copy(px, i, out);
	}
	relay_unlock(px->relay);
	return i >= 0 ? 0 : -1;
}

int proxy_rule_remove(struct proxy *px, uint64_t id)
{
	int rc;

	relay_lock(px->relay);
	rc = rule_set_remove(&px->rules, id);
	relay_unlock(px->relay);
	return rc;
}

/* proxy_cut_all cuts this connection: a fault of its own for the run (relay's lock held). */
static void proxy_cut_one(void *arg, void *conn)
{
	struct proxy *px = arg;
	struct pconn *c = conn;
	struct proxy_fault f = { .time_ns = clock_now_ns(), .rule = PROXY_FAULT_CUT_ALL, .dir = PROXY_TO_CLIENT,
				 .conn_id = c->peer->id, .peer_port = c->peer->port };

	px->cfg.on_fault(px->cfg.on_fault_arg, &f);
}

size_t proxy_cut_all(struct proxy *px)
{
	return relay_cut_all(px->relay, px->cfg.on_fault ? proxy_cut_one : NULL, px);
}

void proxy_stats_print(const struct proxy_stats *s, FILE *f)
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
	if (s->cuts_requested)
		fprintf(f, "cut on request (POST /cut): %llu connections\n", (unsigned long long)s->cuts_requested);
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
}
