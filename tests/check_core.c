/* check_util.c — value parsers, edit distance, atomic writes, folder removal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests.h"
#include "core/clock.h"
#include "core/files.h"
#include "core/net.h"
#include "core/parse.h"
#include "core/rng.h"

START_TEST(test_durations)
{
	uint64_t ns = 7;

	ck_assert_int_eq(parse_duration("0", &ns), 0);
	ck_assert_uint_eq(ns, 0);
	ck_assert_int_eq(parse_duration("500ms", &ns), 0);
	ck_assert_uint_eq(ns, 500 * NS_PER_MS);
	ck_assert_int_eq(parse_duration("1.5s", &ns), 0);
	ck_assert_uint_eq(ns, 1500 * NS_PER_MS);
	ck_assert_int_eq(parse_duration("5m", &ns), 0);
	ck_assert_uint_eq(ns, 300 * NS_PER_S);
	ck_assert_int_eq(parse_duration("250us", &ns), 0);
	ck_assert_uint_eq(ns, 250000);
	ns = 7;
	ck_assert_int_eq(parse_duration("5", &ns), -1); /* a unit is needed */
	ck_assert_int_eq(parse_duration("5 s", &ns), -1);
	ck_assert_int_eq(parse_duration("-1s", &ns), -1);
	ck_assert_int_eq(parse_duration("2d", &ns), -1);
	ck_assert_int_eq(parse_duration("", &ns), -1);
	ck_assert_int_eq(parse_duration("1e30h", &ns), -1);
	ck_assert_uint_eq(ns, 7);
}
END_TEST

START_TEST(test_probs_and_numbers)
{
	double p;
	uint64_t v;
	bool b;
	char host[64];
	uint16_t port;

	ck_assert_int_eq(parse_prob("0.01", &p), 0);
	ck_assert(p == 0.01);
	ck_assert_int_eq(parse_prob("1%", &p), 0);
	ck_assert(p == 0.01);
	ck_assert_int_eq(parse_prob("100%", &p), 0);
	ck_assert(p == 1.0);
	ck_assert_int_eq(parse_prob("1.01", &p), -1);
	ck_assert_int_eq(parse_prob("1%%", &p), -1);
	ck_assert_int_eq(parse_prob("nan", &p), -1);
	ck_assert_int_eq(parse_u64("42", &v), 0);
	ck_assert_uint_eq(v, 42);
	ck_assert_int_eq(parse_u64("-1", &v), -1);
	ck_assert_int_eq(parse_u64("4x", &v), -1);
	ck_assert_int_eq(parse_u64("99999999999999999999999", &v), -1);
	ck_assert_int_eq(parse_bool("Yes", &b), 0);
	ck_assert(b);
	ck_assert_int_eq(parse_bool("off", &b), 0);
	ck_assert(!b);
	ck_assert_int_eq(parse_bool("maybe", &b), -1);
	ck_assert_int_eq(parse_hostport("127.0.0.1:5672", host, sizeof(host), &port, false), 0);
	ck_assert_str_eq(host, "127.0.0.1");
	ck_assert_uint_eq(port, 5672);
	ck_assert_int_eq(parse_hostport("127.0.0.1:0", host, sizeof(host), &port, false), -1);
	ck_assert_int_eq(parse_hostport("127.0.0.1:0", host, sizeof(host), &port, true), 0);
	ck_assert_int_eq(parse_hostport("127.0.0.1:65536", host, sizeof(host), &port, true), -1);
	ck_assert_int_eq(parse_hostport("localhost", host, sizeof(host), &port, true), -1);
	ck_assert_int_eq(parse_hostport(":5672", host, sizeof(host), &port, true), -1);
}
END_TEST

START_TEST(test_edit_distance)
{
	ck_assert_uint_eq(parse_edit_distance("commit_ok_loss", "comit_ok_loss"), 1);
	ck_assert_uint_eq(parse_edit_distance("abc", "abc"), 0);
	ck_assert_uint_eq(parse_edit_distance("", "abc"), 3);
	ck_assert_uint_eq(parse_edit_distance("kitten", "sitting"), 3);
}
END_TEST

START_TEST(test_files)
{
	char dir[] = "/tmp/dupsim-test-XXXXXX";
	char path[256], sub[256];
	size_t len;
	char *s;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/a/b/c", dir);
	ck_assert_int_eq(files_mkdir_p(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/a/file.txt", dir);
	ck_assert_int_eq(files_write_atomic(path, "hello", 5), 0);
	ck_assert_int_eq(files_write_atomic(path, "hello world", 11), 0);
	s = files_read(path, &len);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(len, 11);
	ck_assert_str_eq(s, "hello world");
	free(s);
	snprintf(sub, sizeof(sub), "%s/a/file.txt.tmp", dir);
	ck_assert_int_ne(access(sub, F_OK), 0); /* no temp left behind */
	snprintf(sub, sizeof(sub), "%s/link", dir);
	ck_assert_int_eq(symlink("/etc", sub), 0); /* must not be followed */
	ck_assert_int_eq(files_rm_rf(dir), 0);
	ck_assert_int_ne(access(dir, F_OK), 0);
	ck_assert_int_eq(access("/etc/hostname", F_OK) == 0 || access("/etc/passwd", F_OK) == 0, 1);
	ck_assert_int_eq(files_rm_rf("/tmp/dupsim-test-does-not-exist"), 0);
}
END_TEST

START_TEST(test_rng_and_ports)
{
	struct rng a, b;
	uint16_t port;

	rng_seed(&a, 5);
	rng_seed(&b, 5);
	for (int i = 0; i < 100; i++) {
		double u = rng_unit(&a);

		ck_assert(u >= 0 && u < 1);
		ck_assert(u == rng_unit(&b));
	}
	ck_assert_int_eq(net_free_port(&port), 0);
	ck_assert_uint_gt(port, 0);
	ck_assert(!net_port_open(port));
}
END_TEST

Suite *core_suite(void)
{
	Suite *s = suite_create("core");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_durations);
	tcase_add_test(tc, test_probs_and_numbers);
	tcase_add_test(tc, test_edit_distance);
	tcase_add_test(tc, test_files);
	tcase_add_test(tc, test_rng_and_ports);
	suite_add_tcase(s, tc);
	return s;
}
