/* fuzz_frame.c — libFuzzer target: the frame parser on arbitrary bytes, split arbitrarily. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/frame.h"

/*
 * Byte 0 picks the side and a frame limit, byte 1 seeds the split sizes; the
 * rest is the stream. Whatever the split, the parser must report the same
 * frames (or the same error) as when fed the stream in one piece, and never
 * consume more than it was given.
 */
struct result {
	uint64_t frames, bytes;
	long err;
	uint32_t checksum;
};

static void run(const uint8_t *d, size_t len, int client, uint32_t max, uint8_t split_seed, struct result *r)
{
	struct frame_parser p;
	size_t off = 0;
	uint32_t x = split_seed | 1u;

	memset(r, 0, sizeof(*r));
	frame_parser_init(&p, max, client);
	while (off < len) {
		size_t chunk = len - off;
		struct frame_info fi;
		int done;
		long n;

		if (split_seed) {
			x = x * 1103515245u + 12345u;
			chunk = 1 + (x >> 16) % 17;
			if (chunk > len - off)
				chunk = len - off;
		}
		n = frame_parser_feed(&p, d + off, chunk, &fi, &done);
		if (n < 0) {
			r->err = n;
			return;
		}
		if ((size_t)n > chunk)
			abort();
		off += (size_t)n;
		if (done) {
			r->frames++;
			r->bytes += fi.length;
			r->checksum = r->checksum * 31 + fi.type * 7 + fi.channel + fi.class_id * 3 + fi.method_id;
		}
	}
	/* the frames reported tile the consumed stream, except a frame still in progress */
	if (r->bytes > off)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct result whole, split;
	int client;
	uint32_t max;

	if (size < 2)
		return 0;
	client = data[0] & 1;
	max = (data[0] & 2) ? FRAME_MIN_MAX : FRAME_DEFAULT_MAX;
	run(data + 2, size - 2, client, max, 0, &whole);
	run(data + 2, size - 2, client, max, data[1] ? data[1] : 1, &split);
	if (whole.frames != split.frames || whole.bytes != split.bytes || whole.err != split.err ||
	    whole.checksum != split.checksum)
		abort();
	return 0;
}
