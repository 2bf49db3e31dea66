/* check_frame.c — the frame parser: every split of a stream, size limits, malformed frames, method names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/frame.h"
#include "tests.h"
#include "core/files.h"
#include "core/rng.h"

#define MAX_FRAMES 512

struct stream {
	uint8_t *data;
	size_t len, cap;
};

struct parsed {
	struct frame_info f[MAX_FRAMES];
	size_t n;
	long err;
};

static void put(struct stream *s, const void *p, size_t n)
{
	if (s->len + n > s->cap) {
		s->cap = (s->len + n) * 2;
		s->data = realloc(s->data, s->cap);
		ck_assert_ptr_nonnull(s->data);
	}
	memcpy(s->data + s->len, p, n);
	s->len += n;
}

static void put_frame(struct stream *s, uint8_t type, uint16_t ch, const uint8_t *payload, uint32_t size, uint8_t end)
{
	uint8_t h[7] = { type, (uint8_t)(ch >> 8), (uint8_t)ch, (uint8_t)(size >> 24), (uint8_t)(size >> 16),
			 (uint8_t)(size >> 8), (uint8_t)size };

	put(s, h, 7);
	if (size)
		put(s, payload, size);
	put(s, &end, 1);
}

static void put_method(struct stream *s, uint16_t ch, uint16_t cls, uint16_t meth, size_t args)
{
	uint8_t p[512] = { (uint8_t)(cls >> 8), (uint8_t)cls, (uint8_t)(meth >> 8), (uint8_t)meth };

	for (size_t i = 4; i < 4 + args; i++)
		p[i] = (uint8_t)(i * 7);
	put_frame(s, FRAME_METHOD, ch, p, (uint32_t)(4 + args), FRAME_END);
}

static const uint8_t proto[8] = { 'A', 'M', 'Q', 'P', 0, 0, 9, 1 };

/* A client-side stream: protocol header, then a publish (method, header, body in pieces), heartbeats. */
static void make_stream(struct stream *s, struct rng *rng, int messages)
{
	uint8_t payload[2048];

	put(s, proto, sizeof(proto));
	put_method(s, 0, 10, 11, 60);  /* connection.start-ok */
	put_method(s, 0, 10, 31, 8);   /* connection.tune-ok */
	put_method(s, 0, 10, 40, 5);   /* connection.open */
	put_method(s, 1, 20, 10, 1);   /* channel.open */
	put_method(s, 1, 90, 10, 0);   /* tx.select */
	for (int m = 0; m < messages; m++) {
		uint32_t body = (uint32_t)(rng_next(rng) % sizeof(payload));

		for (size_t i = 0; i < sizeof(payload); i++)
			payload[i] = (uint8_t)rng_next(rng);
		put_method(s, 1, 60, 40, 10); /* basic.publish */
		payload[0] = 0;
		payload[1] = 60;
		put_frame(s, FRAME_HEADER, 1, payload, 14 + (uint32_t)(rng_next(rng) % 64), FRAME_END);
		put_frame(s, FRAME_BODY, 1, payload, body / 2, FRAME_END);
		put_frame(s, FRAME_BODY, 1, payload, body - body / 2, FRAME_END);
		if (m % 3 == 0)
			put_frame(s, FRAME_HEARTBEAT, 0, NULL, 0, FRAME_END);
		if (m % 5 == 4)
			put_method(s, 1, 90, 20, 0); /* tx.commit */
	}
}

/* Parses data fed in chunks chosen by chunk(i) (0 = whole rest). */
static void parse_chunks(const uint8_t *data, size_t len, int client, size_t (*chunk)(size_t, void *), void *arg,
			 struct parsed *out)
{
	struct frame_parser p;
	size_t off = 0, k = 0;

	memset(out, 0, sizeof(*out));
	frame_parser_init(&p, FRAME_DEFAULT_MAX, client);
	while (off < len) {
		size_t want = chunk(k++, arg);
		size_t end = want == 0 || off + want > len ? len : off + want;

		while (off < end) {
			struct frame_info fi;
			int done;
			long n = frame_parser_feed(&p, data + off, end - off, &fi, &done);

			if (n < 0) {
				out->err = n;
				return;
			}
			ck_assert_int_le(n, (long)(end - off));
			off += (size_t)n;
			if (done) {
				ck_assert_uint_lt(out->n, MAX_FRAMES);
				out->f[out->n++] = fi;
			}
		}
	}
}

static size_t chunk_all(size_t i, void *arg)
{
	(void)i;
	(void)arg;
	return 0;
}

static size_t chunk_one(size_t i, void *arg)
{
	(void)i;
	(void)arg;
	return 1;
}

static size_t chunk_random(size_t i, void *arg)
{
	(void)i;
	return 1 + rng_next(arg) % 300;
}

static void assert_same(const struct parsed *a, const struct parsed *b)
{
	ck_assert_int_eq(a->err, b->err);
	ck_assert_uint_eq(a->n, b->n);
	for (size_t i = 0; i < a->n; i++)
		ck_assert(memcmp(&a->f[i], &b->f[i], sizeof(a->f[i])) == 0);
}

START_TEST(test_every_split)
{
	struct stream s = { 0 };
	struct rng rng;
	struct parsed whole, bytes, rnd;
	uint64_t total = 0;

	rng_seed(&rng, 42);
	make_stream(&s, &rng, 40);
	parse_chunks(s.data, s.len, 1, chunk_all, NULL, &whole);
	ck_assert_int_eq(whole.err, 0);
	/* 1 protocol header + 5 set-up methods + 40 * 4 + 14 heartbeats + 8 commits */
	ck_assert_uint_eq(whole.n, 1 + 5 + 160 + 14 + 8);
	ck_assert_int_eq(whole.f[0].type, FRAME_PROTOCOL_HEADER);
	ck_assert_int_eq(whole.f[5].type, FRAME_METHOD);
	ck_assert_uint_eq(frame_method_number(&whole.f[5]), 90u << 16 | 10);
	ck_assert_uint_eq(whole.f[6].class_id, 60);
	ck_assert_uint_eq(whole.f[6].method_id, 40);
	ck_assert_uint_eq(whole.f[6].channel, 1);
	ck_assert_int_eq(whole.f[7].type, FRAME_HEADER);
	ck_assert_uint_eq(whole.f[7].class_id, 60);
	ck_assert_int_eq(whole.f[10].type, FRAME_HEARTBEAT);
	for (size_t i = 0; i < whole.n; i++)
		total += whole.f[i].length;
	ck_assert_uint_eq(total, s.len); /* frames tile the stream exactly */

	parse_chunks(s.data, s.len, 1, chunk_one, NULL, &bytes);
	assert_same(&whole, &bytes);
	for (uint64_t seed = 1; seed <= 50; seed++) {
		rng_seed(&rng, seed);
		parse_chunks(s.data, s.len, 1, chunk_random, &rng, &rnd);
		assert_same(&whole, &rnd);
	}
	free(s.data);
}
END_TEST

/* Every split point of a short stream into two pieces. */
START_TEST(test_two_piece_splits)
{
	struct stream s = { 0 };
	struct rng rng;
	struct parsed whole;

	rng_seed(&rng, 7);
	make_stream(&s, &rng, 3);
	parse_chunks(s.data, s.len, 1, chunk_all, NULL, &whole);
	for (size_t cut = 1; cut < s.len; cut++) {
		struct frame_parser p;
		struct parsed two = { 0 };
		size_t off = 0;

		frame_parser_init(&p, FRAME_DEFAULT_MAX, 1);
		while (off < s.len) {
			size_t end = off < cut ? cut : s.len;
			struct frame_info fi;
			int done;
			long n = frame_parser_feed(&p, s.data + off, end - off, &fi, &done);

			ck_assert_int_ge(n, 0);
			off += (size_t)n;
			if (done)
				two.f[two.n++] = fi;
		}
		assert_same(&whole, &two);
	}
	free(s.data);
}
END_TEST

START_TEST(test_broker_side_optional_header)
{
	struct stream s = { 0 };
	struct parsed out;

	put_method(&s, 0, 10, 10, 30); /* connection.start, no protocol header */
	put_frame(&s, FRAME_HEARTBEAT, 0, NULL, 0, FRAME_END);
	parse_chunks(s.data, s.len, 0, chunk_one, NULL, &out);
	ck_assert_int_eq(out.err, 0);
	ck_assert_uint_eq(out.n, 2);
	ck_assert_uint_eq(frame_method_number(&out.f[0]), 10u << 16 | 10);

	/* a broker refusing our version answers with its own protocol header */
	s.len = 0;
	put(&s, proto, sizeof(proto));
	parse_chunks(s.data, s.len, 0, chunk_one, NULL, &out);
	ck_assert_int_eq(out.err, 0);
	ck_assert_uint_eq(out.n, 1);
	ck_assert_int_eq(out.f[0].type, FRAME_PROTOCOL_HEADER);
	free(s.data);
}
END_TEST

static long feed_all(struct frame_parser *p, const uint8_t *d, size_t len, int *frames)
{
	size_t off = 0;

	*frames = 0;
	while (off < len) {
		struct frame_info fi;
		int done;
		long n = frame_parser_feed(p, d + off, len - off, &fi, &done);

		if (n < 0)
			return n;
		off += (size_t)n;
		*frames += done;
	}
	return 0;
}

START_TEST(test_largest_frame)
{
	const uint32_t max = 4096 * 4;
	struct stream s = { 0 };
	uint8_t *payload = calloc(1, max);
	struct frame_parser p;
	int frames;

	put_frame(&s, FRAME_BODY, 1, payload, max - FRAME_OVERHEAD, FRAME_END);
	frame_parser_init(&p, max, 0);
	ck_assert_int_eq(feed_all(&p, s.data, s.len, &frames), 0);
	ck_assert_int_eq(frames, 1);

	/* one byte more: rejected as soon as the 7-byte header is in, before the payload */
	s.len = 0;
	put_frame(&s, FRAME_BODY, 1, payload, max - FRAME_OVERHEAD + 1, FRAME_END);
	frame_parser_init(&p, max, 0);
	ck_assert_int_eq(feed_all(&p, s.data, 7, &frames), FRAME_ERR_OVERSIZE);
	free(payload);
	free(s.data);
}
END_TEST

START_TEST(test_huge_size_no_overflow)
{
	const uint8_t h[7] = { FRAME_BODY, 0, 1, 0xff, 0xff, 0xff, 0xff };
	const uint8_t h2[7] = { FRAME_METHOD, 0, 1, 0xff, 0xff, 0xff, 0xf9 };
	struct frame_parser p;
	int frames;

	frame_parser_init(&p, 0xffffffffu, 0); /* even with no practical limit */
	ck_assert_int_eq(feed_all(&p, h, 7, &frames), FRAME_ERR_OVERSIZE);
	frame_parser_init(&p, 0xffffffffu, 0);
	ck_assert_int_eq(feed_all(&p, h2, 7, &frames), FRAME_ERR_OVERSIZE);
}
END_TEST

START_TEST(test_min_limit)
{
	struct frame_parser p;

	frame_parser_init(&p, 10, 0); /* below frame-min-size: raised to 4096 */
	ck_assert_uint_eq(p.max_frame, FRAME_MIN_MAX);
}
END_TEST

struct bad_case {
	const char *what;
	uint8_t bytes[32];
	size_t len;
	int client;
	long err;
};

static const struct bad_case bad[] = {
	{ "undersize method", { 1, 0, 1, 0, 0, 0, 3, 0, 60, 0, 0xCE }, 11, 0, FRAME_ERR_UNDERSIZE },
	{ "undersize header", { 2, 0, 1, 0, 0, 0, 13 }, 7, 0, FRAME_ERR_UNDERSIZE },
	{ "bad frame end", { 8, 0, 0, 0, 0, 0, 0, 0xCD }, 8, 0, FRAME_ERR_FRAME_END },
	{ "bad frame end after payload", { 1, 0, 1, 0, 0, 0, 4, 0, 90, 0, 21, 0x00 }, 12, 0, FRAME_ERR_FRAME_END },
	{ "unknown type", { 5, 0, 1, 0, 0, 0, 0, 0xCE }, 8, 0, FRAME_ERR_TYPE },
	{ "type zero", { 0, 0, 1, 0, 0, 0, 0, 0xCE }, 8, 0, FRAME_ERR_TYPE },
	{ "heartbeat on channel 1", { 8, 0, 1, 0, 0, 0, 0, 0xCE }, 8, 0, FRAME_ERR_HEARTBEAT },
	{ "wrong protocol version", { 'A', 'M', 'Q', 'P', 0, 0, 9, 2 }, 8, 1, FRAME_ERR_PROTOCOL_HEADER },
	{ "http instead of amqp", { 'G', 'E', 'T', ' ', '/', ' ', 'H', 'T' }, 8, 1, FRAME_ERR_PROTOCOL_HEADER },
	{ "broker side bad header", { 'A', 'M', 'Q', 'X', 0, 0, 9, 1 }, 8, 0, FRAME_ERR_PROTOCOL_HEADER },
};

START_TEST(test_malformed)
{
	const struct bad_case *c = &bad[_i];
	struct frame_parser p;
	struct frame_info fi;
	int frames, done;
	uint8_t more = 0xCE;

	frame_parser_init(&p, FRAME_DEFAULT_MAX, c->client);
	ck_assert_msg(feed_all(&p, c->bytes, c->len, &frames) == c->err, "%s", c->what);
	ck_assert_int_eq(frames, 0);
	/* the parser stays failed */
	ck_assert_int_eq(frame_parser_feed(&p, &more, 1, &fi, &done), FRAME_ERR_STATE);
	ck_assert_str_ne(frame_strerror((int)c->err), "unknown frame error");
}
END_TEST

START_TEST(test_method_names)
{
	uint32_t n;

	ck_assert_uint_ge(frame_method_count(), 60);
	ck_assert_str_eq(frame_method_name(90u << 16 | 21), "tx.commit-ok");
	ck_assert_str_eq(frame_method_name(60u << 16 | 80), "basic.ack");
	ck_assert_str_eq(frame_method_name(60u << 16 | 120), "basic.nack");
	ck_assert_str_eq(frame_method_name(85u << 16 | 11), "confirm.select-ok");
	ck_assert_str_eq(frame_method_name(60u << 16 | 100), "basic.recover-async");
	ck_assert_ptr_null(frame_method_name(60u << 16 | 81));
	ck_assert_int_eq(frame_method_lookup("tx.commit", &n), 0);
	ck_assert_uint_eq(n, 90u << 16 | 20);
	ck_assert_int_eq(frame_method_lookup("tx.commitok", &n), -1);
	ck_assert_int_eq(frame_method_lookup("TX.COMMIT-OK", &n), -1);
	for (size_t i = 0; i < frame_method_count(); i++) {
		uint32_t m = frame_method_at(i);

		ck_assert_uint_eq(frame_method_index(m), i);
		ck_assert_int_eq(frame_method_lookup(frame_method_name(m), &n), 0);
		ck_assert_uint_eq(n, m);
	}
	ck_assert_uint_eq(frame_method_index(12345), frame_method_count());
}
END_TEST

/* Streams recorded from a real librabbitmq-c session with RabbitMQ (tests/corpus/frame/). */
START_TEST(test_recorded)
{
	static const struct {
		const char *path;
		int client;
		size_t min_frames;
	} files[] = {
		{ "tests/corpus/frame/session-client.bin", 1, 20 },
		{ "tests/corpus/frame/session-broker.bin", 0, 20 },
	};

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		size_t len;
		uint8_t *d = (uint8_t *)files_read(files[i].path, &len);
		struct parsed whole, bytes, rnd;
		struct rng rng;
		uint64_t total = 0;

		ck_assert_msg(d != NULL, "missing %s", files[i].path);
		parse_chunks(d, len, files[i].client, chunk_all, NULL, &whole);
		ck_assert_int_eq(whole.err, 0);
		ck_assert_uint_ge(whole.n, files[i].min_frames);
		for (size_t k = 0; k < whole.n; k++)
			total += whole.f[k].length;
		ck_assert_uint_eq(total, len);
		parse_chunks(d, len, files[i].client, chunk_one, NULL, &bytes);
		assert_same(&whole, &bytes);
		rng_seed(&rng, 99);
		parse_chunks(d, len, files[i].client, chunk_random, &rng, &rnd);
		assert_same(&whole, &rnd);
		free(d);
	}
}
END_TEST

Suite *frame_suite(void)
{
	Suite *s = suite_create("frame");
	TCase *tc = tcase_create("parser");

	tcase_add_test(tc, test_every_split);
	tcase_add_test(tc, test_two_piece_splits);
	tcase_add_test(tc, test_broker_side_optional_header);
	tcase_add_test(tc, test_largest_frame);
	tcase_add_test(tc, test_huge_size_no_overflow);
	tcase_add_test(tc, test_min_limit);
	tcase_add_loop_test(tc, test_malformed, 0, sizeof(bad) / sizeof(bad[0]));
	tcase_add_test(tc, test_method_names);
	tcase_add_test(tc, test_recorded);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}
