/* frame.c — incremental AMQP 0-9-1 frame parser: no I/O, any split of the stream parses the same. */
#include "wire/frame.h"

#include <amqp.h>
#include <amqp_framing.h>
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/*
 * Parser states. Each state gathers `need` more bytes; hdr/ids collect the
 * bytes the parser must look at, the rest of a payload is only counted.
 */
enum {
	ST_PROTO,   /* collecting the 8-byte protocol header into hdr */
	ST_START,   /* at a frame boundary: a frame header comes next (only ST_FIRST may see a protocol header) */
	ST_HEADER,  /* collecting the 7-byte frame header into hdr */
	ST_IDS,	    /* collecting the first 4 payload octets into ids */
	ST_PAYLOAD, /* skipping the rest of the payload */
	ST_END,	    /* expecting 0xCE */
	ST_FAILED,
	ST_FIRST,   /* nothing seen yet, protocol header optional */
};

static const uint8_t protocol_header[FRAME_PROTOCOL_HEADER_SIZE] = { 'A', 'M', 'Q', 'P', 0, 0, 9, 1 };

void frame_parser_init(struct frame_parser *p, uint32_t max_frame, int expect_protocol_header)
{
	memset(p, 0, sizeof(*p));
	p->max_frame = max_frame < FRAME_MIN_MAX ? FRAME_MIN_MAX : max_frame;
	p->state = expect_protocol_header ? ST_PROTO : ST_FIRST;
	p->need = expect_protocol_header ? FRAME_PROTOCOL_HEADER_SIZE : 0;
}

static long fail(struct frame_parser *p, int err)
{
	p->state = ST_FAILED;
	p->error = err;
	return err;
}

static uint32_t be32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static uint16_t be16(const uint8_t *b)
{
	return (uint16_t)(b[0] << 8 | b[1]);
}

/* The frame header is complete: check it and choose what comes next. */
static int frame_header_done(struct frame_parser *p)
{
	struct frame_info *f = &p->cur;
	uint32_t size = be32(p->hdr + 3);
	uint32_t min;

	memset(f, 0, sizeof(*f));
	f->type = p->hdr[0];
	f->channel = be16(p->hdr + 1);
	switch (f->type) {
	case FRAME_METHOD:
		min = 4; /* class id + method id */
		break;
	case FRAME_HEADER:
		min = 14; /* class, weight, body size, property flags */
		break;
	case FRAME_BODY:
		min = 0;
		break;
	case FRAME_HEARTBEAT:
		if (f->channel != 0)
			return FRAME_ERR_HEARTBEAT;
		min = 0;
		break;
	default:
		return FRAME_ERR_TYPE;
	}
	/* max_frame >= FRAME_MIN_MAX > FRAME_OVERHEAD: no underflow */
	if (size > p->max_frame - FRAME_OVERHEAD)
		return FRAME_ERR_OVERSIZE;
	if (size < min)
		return FRAME_ERR_UNDERSIZE;
	f->payload_size = size;
	f->length = (uint64_t)size + FRAME_OVERHEAD;
	p->have = 0;
	if (f->type == FRAME_METHOD || f->type == FRAME_HEADER) {
		p->state = ST_IDS;
		p->need = 4;
	} else if (size > 0) {
		p->state = ST_PAYLOAD;
		p->need = size;
	} else {
		p->state = ST_END;
		p->need = 1;
	}
	return 0;
}

/* One switch over the states, kept whole (longer than the house's 80 lines) so that every
 * transition reads in one place, as in amqp_handle_input. */
long frame_parser_feed(struct frame_parser *p, const uint8_t *data, size_t len, struct frame_info *out,
		       int *done)
{
	size_t used = 0;

	*done = 0;
	while (used < len) {
		size_t avail = len - used;
		size_t take;
		int rc;

		switch (p->state) {
		case ST_FAILED:
			return FRAME_ERR_STATE;
		case ST_FIRST:
			if (data[used] == 'A') {
				p->state = ST_PROTO;
				p->need = FRAME_PROTOCOL_HEADER_SIZE;
				p->have = 0;
			} else {
				p->state = ST_START;
			}
			continue;
		case ST_START:
			p->state = ST_HEADER;
			p->need = FRAME_HEADER_SIZE;
			p->have = 0;
			continue;
		case ST_PROTO:
		case ST_HEADER:
		case ST_IDS: {
			uint8_t *dst = p->state == ST_IDS ? p->ids : p->hdr;

			take = avail < p->need ? avail : p->need;
			memcpy(dst + p->have, data + used, take);
			p->have += (uint32_t)take;
			p->need -= (uint32_t)take;
			used += take;
			if (p->need > 0)
				break;
			if (p->state == ST_PROTO) {
				if (memcmp(p->hdr, protocol_header, sizeof(protocol_header)) != 0)
					return fail(p, FRAME_ERR_PROTOCOL_HEADER);
				memset(&p->cur, 0, sizeof(p->cur));
				p->cur.type = FRAME_PROTOCOL_HEADER;
				p->cur.length = FRAME_PROTOCOL_HEADER_SIZE;
				p->state = ST_START;
				*out = p->cur;
				*done = 1;
				return (long)used;
			}
			if (p->state == ST_HEADER) {
				rc = frame_header_done(p);
				if (rc < 0)
					return fail(p, rc);
				break;
			}
			/* ST_IDS */
			p->cur.class_id = be16(p->ids);
			if (p->cur.type == FRAME_METHOD)
				p->cur.method_id = be16(p->ids + 2);
			if (p->cur.payload_size > 4) {
				p->state = ST_PAYLOAD;
				p->need = p->cur.payload_size - 4;
			} else {
				p->state = ST_END;
				p->need = 1;
			}
			break;
		}
		case ST_PAYLOAD:
			take = avail < p->need ? avail : p->need;
			p->need -= (uint32_t)take;
			used += take;
			if (p->need == 0) {
				p->state = ST_END;
				p->need = 1;
			}
			break;
		case ST_END:
			if (data[used] != FRAME_END)
				return fail(p, FRAME_ERR_FRAME_END);
			used++;
			p->state = ST_START;
			*out = p->cur;
			*done = 1;
			return (long)used;
		}
	}
	return (long)used;
}

const char *frame_strerror(int err)
{
	switch (err) {
	case FRAME_ERR_PROTOCOL_HEADER:
		return "stream does not start with the AMQP 0-9-1 protocol header";
	case FRAME_ERR_TYPE:
		return "unknown frame type";
	case FRAME_ERR_OVERSIZE:
		return "frame larger than frame_max";
	case FRAME_ERR_UNDERSIZE:
		return "frame payload too short for its type";
	case FRAME_ERR_FRAME_END:
		return "frame does not end with 0xCE";
	case FRAME_ERR_HEARTBEAT:
		return "heartbeat frame on a channel other than 0";
	case FRAME_ERR_STATE:
		return "parser already failed";
	default:
		return "unknown frame error";
	}
}

/* The method table, built once from librabbitmq-c's amqp_method_name(). */
#define METHODS_MAX 96

struct method_entry {
	uint32_t number;
	char name[40];
};

static struct method_entry methods[METHODS_MAX];
static size_t methods_count;
static pthread_once_t methods_once = PTHREAD_ONCE_INIT;

/* "AMQP_TX_COMMIT_OK_METHOD" -> "tx.commit-ok" */
static void method_name_convert(const char *amqp, char *out, size_t len)
{
	const char *s = amqp + 5; /* "AMQP_" */
	size_t n = strlen(s) - 7; /* "_METHOD" */
	size_t o = 0;
	int dot = 0;

	for (size_t i = 0; i < n && o + 1 < len; i++) {
		char c = s[i];

		if (c == '_')
			c = dot++ ? '-' : '.';
		out[o++] = (char)tolower((unsigned char)c);
	}
	out[o] = '\0';
}

static void methods_build(void)
{
	static const uint16_t classes[] = { 10, 20, 30, 40, 50, 60, 85, 90 };

	for (size_t c = 0; c < sizeof(classes) / sizeof(classes[0]); c++) {
		for (uint32_t m = 0; m < 256; m++) {
			uint32_t number = (uint32_t)classes[c] << 16 | m;
			const char *name = amqp_method_name(number);

			if (!name || strncmp(name, "AMQP_", 5) != 0 || strlen(name) < 13 ||
			    methods_count == METHODS_MAX)
				continue;
			methods[methods_count].number = number;
			method_name_convert(name, methods[methods_count].name, sizeof(methods[0].name));
			methods_count++;
		}
	}
}

size_t frame_method_count(void)
{
	pthread_once(&methods_once, methods_build);
	return methods_count;
}

uint32_t frame_method_at(size_t i)
{
	pthread_once(&methods_once, methods_build);
	return i < methods_count ? methods[i].number : 0;
}

size_t frame_method_index(uint32_t number)
{
	size_t lo = 0, hi;

	pthread_once(&methods_once, methods_build);
	/* the table is built in ascending number order */
	hi = methods_count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (methods[mid].number < number)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < methods_count && methods[lo].number == number ? lo : methods_count;
}

const char *frame_method_name(uint32_t number)
{
	size_t i = frame_method_index(number);

	return i < methods_count ? methods[i].name : NULL;
}

int frame_method_lookup(const char *name, uint32_t *number)
{
	pthread_once(&methods_once, methods_build);
	for (size_t i = 0; i < methods_count; i++) {
		if (strcmp(methods[i].name, name) == 0) {
			*number = methods[i].number;
			return 0;
		}
	}
	return -1;
}
