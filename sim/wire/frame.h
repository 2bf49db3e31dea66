/* frame.h — incremental AMQP 0-9-1 frame parser: no I/O, any split of the stream parses the same. */
#ifndef DUPSIM_FRAME_H
#define DUPSIM_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* Frame types on the wire, plus a pseudo type for the 8-byte protocol header. */
enum frame_type {
	FRAME_PROTOCOL_HEADER = 0,
	FRAME_METHOD = 1,
	FRAME_HEADER = 2,
	FRAME_BODY = 3,
	FRAME_HEARTBEAT = 8,
};

#define FRAME_HEADER_SIZE 7		/* type(1) channel(2) size(4) */
#define FRAME_OVERHEAD 8		/* header + frame-end octet */
#define FRAME_END 0xCE
#define FRAME_MIN_MAX 4096		/* AMQP's frame-min-size */
#define FRAME_DEFAULT_MAX 131072	/* RabbitMQ's and librabbitmq-c's frame_max */
#define FRAME_PROTOCOL_HEADER_SIZE 8	/* "AMQP" 0 0 9 1 */

/* Parse errors (negative return values of frame_parser_feed). */
enum frame_error {
	FRAME_ERR_PROTOCOL_HEADER = -1, /* stream does not start with AMQP 0-9-1's header */
	FRAME_ERR_TYPE = -2,		/* unknown frame type */
	FRAME_ERR_OVERSIZE = -3,	/* payload larger than the limit allows */
	FRAME_ERR_UNDERSIZE = -4,	/* payload too short for its type */
	FRAME_ERR_FRAME_END = -5,	/* last octet is not 0xCE */
	FRAME_ERR_HEARTBEAT = -6,	/* heartbeat on a channel other than 0 */
	FRAME_ERR_STATE = -7,		/* fed again after an error */
};

/* What a complete frame was: filled when frame_parser_feed reports one. */
struct frame_info {
	enum frame_type type;
	uint16_t channel;
	uint32_t payload_size;
	uint16_t class_id;  /* method frames: class id; header frames: class id */
	uint16_t method_id; /* method frames only */
	uint64_t length;    /* bytes on the wire, header and frame end included */
};

/* Method number as librabbitmq-c spells it: class << 16 | method. */
static inline uint32_t frame_method_number(const struct frame_info *f)
{
	return (uint32_t)f->class_id << 16 | f->method_id;
}

struct frame_parser {
	int state;
	uint32_t max_frame;  /* largest frame in bytes, header and end included */
	uint32_t need;	     /* bytes still wanted in the current state */
	uint8_t hdr[8];	     /* protocol header or frame header as it arrives */
	uint8_t ids[4];	     /* first payload octets of a method/header frame */
	uint32_t have;	     /* bytes gathered into hdr or ids */
	int error;	     /* sticky: the first error */
	struct frame_info cur;
};

/*
 * Starts a parser. max_frame is the largest whole frame accepted (frame_max
 * as negotiated; at least FRAME_MIN_MAX). expect_protocol_header: the client
 * side of a connection starts with "AMQP\0\0\x09\x01"; the broker side may
 * start with one (a version mismatch reply), which is accepted as a frame of
 * type FRAME_PROTOCOL_HEADER only as the very first thing in the stream.
 */
void frame_parser_init(struct frame_parser *p, uint32_t max_frame, int expect_protocol_header);

/*
 * Consumes bytes from data[0..len). Stops right after the end of a frame.
 * Returns the number of bytes consumed (0..len); when that completes a frame,
 * *done is set to 1 and *out describes it, else *done is 0. On malformed
 * input returns an enum frame_error (< 0); the parser then stays failed.
 * Validates sizes before any arithmetic on them.
 */
long frame_parser_feed(struct frame_parser *p, const uint8_t *data, size_t len, struct frame_info *out,
		       int *done);

/* A human-readable reason for a frame_error. */
const char *frame_strerror(int err);

/*
 * Method names as in DESIGN.md: librabbitmq-c's method table, lower case,
 * class and method joined by '.', words by '-' ("tx.commit-ok").
 * frame_method_name returns NULL for an unknown number.
 * frame_method_lookup returns 0 and sets *number, or -1 for an unknown name.
 */
const char *frame_method_name(uint32_t number);
int frame_method_lookup(const char *name, uint32_t *number);
/* Number of known methods, and the i-th (0 <= i < count); for listing and counters. */
size_t frame_method_count(void);
uint32_t frame_method_at(size_t i);
/* Index of a method number in 0..count-1, or count for an unknown number. */
size_t frame_method_index(uint32_t number);

#endif
