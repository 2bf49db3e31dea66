/* check_plot.c — plots and reports of hand-made run and sweep folders, the CSV reader, `dupsim plot`. */
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "results/plot.h"
#include "results/report.h"
#include "results/csv.h"
#include "results/results.h"
#include "results/sweep.h"
#include "cmd/plot.h"
#include "tests.h"
#include "core/files.h"

static char tmp_dir[PATH_MAX];

static void plot_setup(void)
{
	char tools[PATH_MAX];

	/* the tests run from the repository root */
	ck_assert_ptr_nonnull(realpath("tools", tools));
	setenv("DUPSIM_TOOLS", tools, 1);
	snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/check_plot.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmp_dir));
}

static void plot_teardown(void)
{
	files_rm_rf(tmp_dir);
	unsetenv("DUPSIM_TOOLS");
}

/* tmp_dir/sub/name := text */
static void put(const char *sub, const char *name, const char *text)
{
	char path[PATH_MAX * 2];

	snprintf(path, sizeof(path), "%s/%s", tmp_dir, sub);
	ck_assert_int_eq(files_mkdir_p(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/%s/%s", tmp_dir, sub, name);
	ck_assert_int_eq(files_write_atomic(path, text, strlen(text)), 0);
}

static char *path_of(const char *sub, const char *name)
{
	static char path[PATH_MAX * 2];

	snprintf(path, sizeof(path), "%s/%s/%s", tmp_dir, sub, name);
	return path;
}

/* A plot exists, is not empty, and starts like a PNG / an SVG. */
static void assert_image(const char *sub, const char *name)
{
	static const unsigned char png_sig[8] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
	char file[128];
	size_t len = 0;
	char *data;

	snprintf(file, sizeof(file), "plots/%s.png", name);
	data = files_read(path_of(sub, file), &len);
	ck_assert_msg(data != NULL, "%s missing", file);
	ck_assert_uint_gt(len, 1000);
	ck_assert_mem_eq(data, png_sig, sizeof(png_sig));
	free(data);
	snprintf(file, sizeof(file), "plots/%s.svg", name);
	data = files_read(path_of(sub, file), &len);
	ck_assert_msg(data != NULL, "%s missing", file);
	ck_assert_uint_gt(len, 1000);
	ck_assert_ptr_nonnull(strstr(data, "<svg"));
	free(data);
}

static void assert_no_image(const char *sub, const char *name)
{
	char file[128];

	snprintf(file, sizeof(file), "plots/%s.png", name);
	ck_assert_msg(access(path_of(sub, file), F_OK) != 0, "%s should not exist", file);
	snprintf(file, sizeof(file), "plots/%s.svg", name);
	ck_assert_msg(access(path_of(sub, file), F_OK) != 0, "%s should not exist", file);
}

static const char summary_json[] =
	"{\"scenario\": \"hand-made\", \"seed\": 7, \"status\": \"ok\", \"committed\": 12345,\n"
	" \"publish_attempts\": 12500, \"excess_copies\": 155, \"deliveries\": 12777,\n"
	" \"duplicate_deliveries\": 432, \"duplicates_processed\": 0, \"lost\": 0, \"wrongly_suppressed\": 0,\n"
	" \"duplicate_rate\": 0.035, \"miss_probability\": {\"estimate\": 0.0, \"ci_low\": 0.0,\n"
	"   \"ci_high\": 0.0851, \"method\": \"events-zero\", \"misses\": 0, \"trials\": 432, \"events\": 42,\n"
	"   \"design_effect\": null, \"effective_trials\": null, \"reason\": \"\",\n"
	"   \"independent_trials\": {\"ci_low\": 0.0, \"ci_high\": 0.00851, \"method\": \"clopper-pearson\"}},\n"
	" \"duplicate_rate_band\": {\"low\": 0.027, \"high\": 0.043},\n"
	" \"fault_events\": 42, \"fault_events_by_kind\": {\"lost_ack\": 30, \"lost_commit_ok\": 12},\n"
	" \"misses_by_cause\": {\"expired\": 0, \"race\": 0},\n"
	" \"predicted\": {\"duplicate_rate\": 0.0151, \"excess_copies_per_message\": 0.0101,\n"
	"   \"excess_copies\": 124.7, \"assumes\": \"independent losses (test text)\"},\n"
	" \"faults\": {\"frames_dropped\": 9, \"connections_cut\": 9, \"reconnects\": 9, \"consumer_crashes\": 0,\n"
	"   \"duplicates_per_lost_ack\": 6.5, \"rules\": [\n"
	"   {\"rule\": \"drop tx.commit-ok from=broker p=0.01\", \"matched\": 1250, \"fired\": 3},\n"
	"   {\"rule\": \"drop basic.ack from=client p=0.005\", \"matched\": 12700, \"fired\": 6},\n"
	"   {\"rule\": \"cut basic.nack\", \"matched\": 0, \"fired\": 0}]},\n"
	" \"throughput\": {\"duration_s\": 3.5, \"published_per_s\": 3571.4, \"processed_per_s\": 3650.0},\n"
	" \"latency_ms\": {\"p50\": 1.9, \"p90\": 36.2, \"p99\": 76.5, \"p999\": 82.8, \"max\": 86.4},\n"
	" \"gap_ms\": {\"count\": 432, \"p50\": 15.9, \"p99\": 47.7, \"max\": 48.5},\n"
	" \"dedup\": {\"store\": \"memory\", \"scope\": \"shared\", \"mark\": \"after\", \"lookups\": 12777,\n"
	"   \"inserts\": 12345, \"errors\": 0},\n"
	" \"invariants\": {\"violations\": 0, \"detail\": \"\"}}\n";

static const char timeseries_csv[] = "t_s,published,committed,deliveries,duplicate_deliveries,processed,faults,reconnects\n"
				     "1.004,4000,3950,4100,140,3960,3,3\n"
				     "2.007,8100,8000,8300,290,8010,6,6\n"
				     "3.010,12500,12345,12777,432,12345,9,9\n";

static const char faults_csv[] = "t_s,rule,from\n"
				 "0.210000,\"drop basic.ack from=client p=0.005\",client\n"
				 "0.530000,\"drop tx.commit-ok from=broker p=0.01\",broker\n"
				 "1.100000,\"drop basic.ack from=client p=0.005\",client\n"
				 "1.500000,\"drop basic.ack from=client p=0.005\",client\n"
				 "2.200000,\"drop tx.commit-ok from=broker p=0.01\",broker\n"
				 "2.900000,\"drop basic.ack from=client p=0.005\",client\n";

static const char gaps_csv[] = "low_ms,high_ms,count,cumulative_fraction\n"
			       "0.8,1.0,10,0.023\n"
			       "2.0,2.5,50,0.139\n"
			       "8.0,10.0,120,0.417\n"
			       "15.0,20.0,200,0.880\n"
			       "40.0,50.0,52,1\n";

static const char copies_csv[] = "copies,messages\n1,12190\n2,150\n3,5\n";

static const char curve_csv[] = "ttl_ms,miss_probability,ci_low,ci_high,duplicates\n"
				"0.5,1,0.991,1,432\n"
				"1,0.977,0.957,0.988,432\n"
				"5,0.86,0.824,0.89,432\n"
				"20,0.12,0.093,0.154,432\n"
				"50,0,0,0.00851,432\n"
				"100,0,0,0.00851,432\n";

static void make_run(const char *sub)
{
	put(sub, "summary.json", summary_json);
	put(sub, "timeseries.csv", timeseries_csv);
	put(sub, "faults.csv", faults_csv);
	put(sub, "gaps.csv", gaps_csv);
	put(sub, "copies.csv", copies_csv);
	put(sub, "curve.csv", curve_csv);
	put(sub, "scenario.ini", "[run]\nname = hand-made\n[dedup]\nstore = memory\nttl = 10ms ; a comment\n");
}

START_TEST(test_csv_reader)
{
	struct csv t;

	put("csv", "a.csv", "a,b,c\r\n1,\"x, \"\"y\"\"\",3\r\n\n4\n5,6,7,8\n");
	ck_assert_int_eq(csv_read(path_of("csv", "a.csv"), &t), 0);
	ck_assert_uint_eq(t.ncols, 3);
	ck_assert_uint_eq(t.nrows, 3);
	ck_assert_int_eq(csv_col(&t, "c"), 2);
	ck_assert_int_eq(csv_col(&t, "d"), -1);
	ck_assert_str_eq(csv_cell(&t, 0, 1), "x, \"y\"");
	ck_assert_str_eq(csv_cell(&t, 0, 2), "3");
	ck_assert_str_eq(csv_cell(&t, 1, 0), "4");
	ck_assert_str_eq(csv_cell(&t, 1, 2), ""); /* a short row */
	ck_assert_str_eq(csv_cell(&t, 2, 2), "7"); /* the extra field is dropped */
	ck_assert_str_eq(csv_cell(&t, 9, 0), "");
	ck_assert_str_eq(csv_cell(&t, 0, -1), "");
	csv_free(&t);
	csv_free(&t); /* twice is harmless */

	put("csv", "empty.csv", "");
	ck_assert_int_eq(csv_read(path_of("csv", "empty.csv"), &t), -1);
	ck_assert_int_eq(csv_read(path_of("csv", "missing.csv"), &t), -1);
	put("csv", "head.csv", "x,y\n");
	ck_assert_int_eq(csv_read(path_of("csv", "head.csv"), &t), 0);
	ck_assert_uint_eq(t.nrows, 0);
	csv_free(&t);
}
END_TEST

START_TEST(test_run_plots_and_report)
{
	char err[1024] = "";
	char *md;

	make_run("run");
	ck_assert_msg(plot_run(path_of("run", ""), err, sizeof(err)) == 0, "plot_run: %s", err);
	assert_image("run", "timeseries");
	assert_image("run", "gaps-cdf");
	assert_image("run", "miss-vs-ttl");
	assert_image("run", "copies");
	ck_assert_msg(report_write(path_of("run", ""), err, sizeof(err)) == 0, "report_write: %s", err);
	md = files_read(path_of("run", "report.md"), NULL);
	ck_assert_ptr_nonnull(md);
	ck_assert_ptr_nonnull(strstr(md, "# dupsim run `hand-made`, seed 7"));
	ck_assert_ptr_nonnull(strstr(md, "| committed messages | 12345 |"));
	ck_assert_ptr_nonnull(strstr(md, "| duplicate deliveries | 432 |"));
	ck_assert_ptr_nonnull(strstr(md, "3.5 %"));   /* duplicate rate */
	ck_assert_ptr_nonnull(strstr(md, "1.51 %"));  /* the model's */
	/* the claim of zero misses, in events, with what the independent-trials bound would have said */
	ck_assert_ptr_nonnull(strstr(md, "0 misses in 432 duplicate deliveries from 42 fault events: miss probability "
					 "below 0.0851 at 95 %"));
	ck_assert_ptr_nonnull(strstr(md, "would claim 0.00851"));
	ck_assert_ptr_nonnull(strstr(md, "events-zero"));
	ck_assert_ptr_nonnull(strstr(md, "band 2.7 % – 4.3 % over 42 fault events"));
	ck_assert_ptr_nonnull(strstr(md, "| `lost_ack` | 30 |"));
	ck_assert_ptr_nonnull(strstr(md, "independent losses (test text)"));
	ck_assert_ptr_nonnull(strstr(md, "`drop basic.ack from=client p=0.005` | 12700 | 6 |"));
	ck_assert_ptr_nonnull(strstr(md, "TTL 10ms"));
	ck_assert_ptr_nonnull(strstr(md, "p99 76.5 ms"));
	ck_assert_ptr_nonnull(strstr(md, "invariants held"));
	ck_assert_ptr_nonnull(strstr(md, "![Messages per second and faults over time](plots/timeseries.png)"));
	ck_assert_ptr_nonnull(strstr(md, "(plots/gaps-cdf.png)"));
	ck_assert_ptr_nonnull(strstr(md, "(plots/miss-vs-ttl.png)"));
	ck_assert_ptr_nonnull(strstr(md, "(plots/copies.png)"));
	free(md);
}
END_TEST

/* Data files without rows (or missing) mean no plot, no error, and no stale image of an earlier call. */
START_TEST(test_run_without_gaps)
{
	char err[1024] = "";
	char *md;

	make_run("nogaps");
	put("nogaps", "gaps.csv", "low_ms,high_ms,count,cumulative_fraction\n");
	put("nogaps/plots", "gaps-cdf.png", "stale");
	put("nogaps/plots", "miss-vs-ttl.svg", "stale");
	ck_assert_int_eq(unlink(path_of("nogaps", "curve.csv")), 0);
	ck_assert_int_eq(unlink(path_of("nogaps", "faults.csv")), 0);
	ck_assert_msg(plot_run(path_of("nogaps", ""), err, sizeof(err)) == 0, "plot_run: %s", err);
	assert_image("nogaps", "timeseries");
	assert_image("nogaps", "copies");
	assert_no_image("nogaps", "gaps-cdf");
	assert_no_image("nogaps", "miss-vs-ttl");
	ck_assert_int_eq(report_write(path_of("nogaps", ""), err, sizeof(err)), 0);
	md = files_read(path_of("nogaps", "report.md"), NULL);
	ck_assert_ptr_nonnull(md);
	ck_assert_ptr_null(strstr(md, "gaps-cdf.png"));
	ck_assert_ptr_nonnull(strstr(md, "timeseries.png"));
	free(md);

	/* a run with nothing but a summary: no plot at all, still fine */
	put("bare", "summary.json", "{\"scenario\": \"bare\", \"seed\": 1, \"committed\": 0}");
	ck_assert_msg(plot_run(path_of("bare", ""), err, sizeof(err)) == 0, "plot_run: %s", err);
	assert_no_image("bare", "timeseries");
	ck_assert_int_eq(report_write(path_of("bare", ""), err, sizeof(err)), 0);
}
END_TEST

/* periods.csv: what csv_write_periods writes, csv_read reads back; the timeseries plot labels each period. */
START_TEST(test_run_periods)
{
	static const struct csv_period periods[] = {
		{ 0, 0.5, "warmup" },
		{ 1, 2, "1s-2s drop basic.ack from=client p=0.05" },
		{ 2.5, 9, "say \"hi\", twice" }, /* past the end of the time series: cut at its end */
		{ 2.75, 3.5, "cooldown" },
	};
	char err[1024] = "", *buf = NULL, *svg;
	size_t len = 0;
	struct csv t;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(f);
	csv_write_periods(f, periods, 4);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_str_eq(buf, "start_s,end_s,label\n"
			      "0.000000,0.500000,\"warmup\"\n"
			      "1.000000,2.000000,\"1s-2s drop basic.ack from=client p=0.05\"\n"
			      "2.500000,9.000000,\"say \"\"hi\"\", twice\"\n"
			      "2.750000,3.500000,\"cooldown\"\n");
	make_run("periods");
	put("periods", "periods.csv", buf);
	free(buf);
	ck_assert_int_eq(csv_read(path_of("periods", "periods.csv"), &t), 0);
	ck_assert_uint_eq(t.nrows, 4);
	ck_assert_str_eq(csv_cell(&t, 2, csv_col(&t, "label")), "say \"hi\", twice");
	ck_assert(csv_num(&t, 1, csv_col(&t, "end_s")) == 2.0);
	csv_free(&t);

	ck_assert_msg(plot_run(path_of("periods", ""), err, sizeof(err)) == 0, "plot_run: %s", err);
	assert_image("periods", "timeseries");
	svg = files_read(path_of("periods", "plots/timeseries.svg"), NULL);
	ck_assert_ptr_nonnull(svg);
	ck_assert_ptr_nonnull(strstr(svg, "1s-2s drop basic.ack from=client p=0.05"));
	ck_assert_ptr_nonnull(strstr(svg, "warm-up"));
	ck_assert_ptr_nonnull(strstr(svg, "cool-down"));
	free(svg);

	/* no periods (a header only, or no file): the plot as before, without them */
	put("periods", "periods.csv", "start_s,end_s,label\n");
	ck_assert_msg(plot_run(path_of("periods", ""), err, sizeof(err)) == 0, "plot_run: %s", err);
	assert_image("periods", "timeseries");
	svg = files_read(path_of("periods", "plots/timeseries.svg"), NULL);
	ck_assert_ptr_null(strstr(svg, "warm-up"));
	free(svg);
	ck_assert_int_eq(unlink(path_of("periods", "periods.csv")), 0);
	ck_assert_msg(plot_run(path_of("periods", ""), err, sizeof(err)) == 0, "plot_run: %s", err);
	assert_image("periods", "timeseries");
}
END_TEST

static const char sweep_csv[] =
	"run,dedup.ttl,faults.ack_loss,committed,publish_attempts,excess_copies,deliveries,duplicate_deliveries,"
	"duplicates_processed,lost,wrongly_suppressed,duplicate_rate,predicted_duplicate_rate,miss_probability,"
	"miss_ci_low,miss_ci_high,faults_fired,fault_events,duplicate_rate_low,duplicate_rate_high,status\n"
	"r01,10ms,0.5%,20000,20190,190,20908,908,600,0,0,0.0454,0.01517,0.6608,0.63,0.69,119,100,0.04,0.051,ok\n"
	"r02,1ms,0.5%,20000,20190,190,20950,950,940,0,0,0.0475,0.01517,0.9895,0.98,0.995,119,100,0.042,0.053,ok\n"
	"r03,1s,0.5%,20000,20190,190,20870,870,0,0,0,0.0435,0.01517,0,0,0.0042,119,100,0.039,0.048,ok\n"
	"r04,1ms,1%,20000,20300,300,21900,1900,1880,0,0,0.095,0.0301,0.989,0.983,0.993,230,200,0.088,0.102,ok\n"
	"r05,10ms,1%,,,,,,,,,,,,,,,,,,failed\n"
	"r06,1s,1%,20000,20300,300,21850,1850,0,0,0,0.0925,0.0301,0,0,0.002,230,15,nan,nan,ok\n";

START_TEST(test_sweep)
{
	char err[1024] = "";
	char *md, *dat;

	put("sweep", "sweep.csv", sweep_csv);
	put("sweep/r01", "report.md", "# r01\n");
	ck_assert_msg(plot_sweep(path_of("sweep", ""), err, sizeof(err)) == 0, "plot_sweep: %s", err);
	assert_image("sweep", "sweep-duprate");
	assert_image("sweep", "sweep-miss");
	dat = files_read(path_of("sweep", "plots/sweep.dat"), NULL);
	ck_assert_ptr_nonnull(dat);
	/* durations in ms, sorted by x within the group of the other key; the failed run left out */
	ck_assert_ptr_nonnull(strstr(dat, "# group 1: faults.ack_loss=0.5%\n1 \"1ms\" 0.0475"));
	ck_assert_ptr_nonnull(strstr(dat, "\n10 \"10ms\" 0.0454 0.04 0.051 ")); /* the run's own band over events */
	ck_assert_ptr_nonnull(strstr(dat, "\n1000 \"1s\" 0.0435"));
	ck_assert_ptr_nonnull(strstr(dat, "# group 2: faults.ack_loss=1%\n1 \"1ms\""));
	ck_assert_ptr_null(strstr(dat, "\n10 \"10ms\" nan"));
	free(dat);
	ck_assert_msg(report_write_sweep(path_of("sweep", ""), err, sizeof(err)) == 0, "report: %s", err);
	md = files_read(path_of("sweep", "report.md"), NULL);
	ck_assert_ptr_nonnull(md);
	ck_assert_ptr_nonnull(strstr(md, "6 runs (1 failed), varying `dedup.ttl` and `faults.ack_loss`"));
	ck_assert_ptr_nonnull(strstr(md, "| [r01](r01/report.md) | 10ms | 0.5% | 20000 | 908 | 4.54 % | 1.517 % |"));
	ck_assert_ptr_nonnull(strstr(md, "| r02 | 1ms |"));
	ck_assert_ptr_nonnull(strstr(md, "0.6608 [0.63, 0.69]"));
	ck_assert_ptr_nonnull(strstr(md, "| failed |"));
	ck_assert_ptr_nonnull(strstr(md, "(plots/sweep-duprate.png)"));
	ck_assert_ptr_nonnull(strstr(md, "(plots/sweep-miss.png)"));
	free(md);

	/* no run saw a duplicate: the rate plot only; categories on the x axis */
	put("quiet", "sweep.csv",
	    "run,dedup.store,committed,publish_attempts,excess_copies,deliveries,duplicate_deliveries,"
	    "duplicates_processed,lost,wrongly_suppressed,duplicate_rate,predicted_duplicate_rate,miss_probability,"
	    "miss_ci_low,miss_ci_high,faults_fired,status\n"
	    "a,memory,1000,1000,0,1000,0,0,0,0,0,0,0,0,1,0,ok\n"
	    "b,redis,1000,1000,0,1000,0,0,0,0,0,0,0,0,1,0,ok\n");
	ck_assert_msg(plot_sweep(path_of("quiet", ""), err, sizeof(err)) == 0, "plot_sweep: %s", err);
	assert_image("quiet", "sweep-duprate");
	assert_no_image("quiet", "sweep-miss");

	/* only failed runs: one clear line */
	put("failed", "sweep.csv",
	    "run,x,committed,publish_attempts,excess_copies,deliveries,duplicate_deliveries,duplicates_processed,"
	    "lost,wrongly_suppressed,duplicate_rate,predicted_duplicate_rate,miss_probability,miss_ci_low,"
	    "miss_ci_high,faults_fired,status\nr1,1,,,,,,,,,,,,,,,failed\n");
	ck_assert_int_eq(plot_sweep(path_of("failed", ""), err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "no run with committed messages"));
	ck_assert_int_eq(report_write_sweep(path_of("failed", ""), err, sizeof(err)), 0);
}
END_TEST

/* results_init says nothing: every figure of summary.json is null (none made up as 0), every string empty. */
START_TEST(test_results_unknown)
{
	static struct results r;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	json_t *j, *o;
	const char *k, *k2;
	json_t *v, *v2;

	results_init(&r);
	ck_assert_int_eq(results_write_summary(&r, f), 0);
	fclose(f);
	j = json_loads(buf, 0, NULL);
	ck_assert_ptr_nonnull(j);
	json_object_foreach(j, k, v) {
		if (json_is_object(v)) {
			json_object_foreach(v, k2, v2)
				ck_assert_msg(!json_is_number(v2), "%s.%s is a number", k, k2);
		} else {
			ck_assert_msg(!json_is_number(v), "%s is a number", k);
		}
	}
	o = json_object_get(json_object_get(j, "miss_probability"), "independent_trials");
	ck_assert(json_is_null(json_object_get(o, "ci_low")));
	ck_assert(json_is_null(json_object_get(j, "duplicate_rate_band")));
	ck_assert_uint_eq(json_array_size(json_object_get(json_object_get(j, "faults"), "rules")), 0);
	json_decref(j);
	free(buf);
}
END_TEST

/* A run folder loaded, written as summary.json and loaded again renders the same report. */
START_TEST(test_results_round_trip)
{
	static struct results a, b;
	char err[1024] = "", *buf = NULL, *md1, *md2;
	size_t len = 0;
	FILE *f;

	make_run("rt1");
	ck_assert_msg(results_load(&a, path_of("rt1", ""), err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(a.seed, 7);
	ck_assert(a.seed_known);
	ck_assert(a.committed == 12345);
	ck_assert(isnan(a.messages)); /* not in the hand-made summary */
	ck_assert_str_eq(a.dedup.ttl, "10ms");
	ck_assert(a.dedup.ttl_ms == 10);
	ck_assert_uint_eq(a.faults.rule_count, 3);
	ck_assert_uint_eq(a.faults.rules[1].rows, 4); /* faults.csv rows of the ack rule */
	ck_assert(a.has_rows[RESULTS_CURVE] && a.has_rows[RESULTS_GAPS]);
	ck_assert(a.curve_min == 0.00851);
	f = open_memstream(&buf, &len);
	ck_assert_int_eq(results_write_summary(&a, f), 0);
	fclose(f);
	make_run("rt2");
	put("rt2", "summary.json", buf);
	free(buf);
	ck_assert_int_eq(results_load(&b, path_of("rt2", ""), err, sizeof(err)), 0);
	ck_assert_int_eq(report_run(path_of("rt1", ""), &a, err, sizeof(err)), 0);
	ck_assert_int_eq(report_run(path_of("rt2", ""), &b, err, sizeof(err)), 0);
	md1 = files_read(path_of("rt1", "report.md"), NULL);
	md2 = files_read(path_of("rt2", "report.md"), NULL);
	ck_assert_ptr_nonnull(md1);
	ck_assert_ptr_nonnull(md2);
	ck_assert_str_eq(md1, md2);
	free(md1);
	free(md2);

	/* no summary: an error naming it, and the other files still read */
	ck_assert_int_eq(unlink(path_of("rt2", "summary.json")), 0);
	ck_assert_int_eq(results_load(&b, path_of("rt2", ""), err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "summary.json"));
	ck_assert(b.has_rows[RESULTS_TIMESERIES]);
}
END_TEST

/* issue 14: a sweep of the store's RTT draws throughput and race misses against it, on a log x axis. */
static const char store_sweep_csv[] =
	"run,hosts.store_rtt,committed,publish_attempts,excess_copies,deliveries,duplicate_deliveries,"
	"duplicates_processed,lost,wrongly_suppressed,duplicate_rate,predicted_duplicate_rate,miss_probability,"
	"miss_ci_low,miss_ci_high,faults_fired,fault_events,duplicate_rate_low,duplicate_rate_high,processed_per_s,"
	"misses_race,store_latency_us_p50,store_ping_ms,status\n"
	"r01,100us,3000,3100,100,3300,300,12,0,0,0.1,0.03,0.04,0.02,0.07,40,40,0.08,0.12,1900.5,12,180.2,0.11,ok\n"
	"r02,10ms,3000,3100,100,3300,300,240,0,0,0.1,0.03,0.8,0.7,0.9,40,40,0.08,0.12,170.25,240,10150,10.2,ok\n"
	"r03,1ms,3000,3100,100,3300,300,90,0,0,0.1,0.03,0.3,0.2,0.4,40,40,0.08,0.12,1200,90,1100,1.05,ok\n";

START_TEST(test_sweep_store)
{
	char err[1024] = "";
	char *md, *dat;

	put("store", "sweep.csv", store_sweep_csv);
	ck_assert_msg(plot_sweep(path_of("store", ""), err, sizeof(err)) == 0, "plot_sweep: %s", err);
	assert_image("store", "sweep-throughput");
	assert_image("store", "sweep-race");
	dat = files_read(path_of("store", "plots/sweep.dat"), NULL);
	ck_assert_ptr_nonnull(dat);
	/* RTT in ms, sorted; throughput, race misses, the dedup call's p50 in ms and the PING at the end */
	ck_assert_msg(strstr(dat, "\n0.1 \"100us\" 0.1 0.08 0.12 0.03 0.04 0.02 0.07 1900.5 12 0.1802 0.11\n1 \"1ms\""),
		      "%s", dat);
	ck_assert_ptr_nonnull(strstr(dat, "\n10 \"10ms\" 0.1 0.08 0.12 0.03 0.8 0.7 0.9 170.25 240 10.15 10.2\n"));
	free(dat);
	ck_assert_msg(report_write_sweep(path_of("store", ""), err, sizeof(err)) == 0, "report: %s", err);
	md = files_read(path_of("store", "report.md"), NULL);
	ck_assert_ptr_nonnull(md);
	ck_assert_ptr_nonnull(strstr(md, "| processed msg/s | race misses | store latency p50 (µs) | status |"));
	ck_assert_msg(strstr(md, "| 0 | 0 | 40 | 170.2 | 240 | 10150 | ok |"), "%s", md);
	ck_assert_ptr_nonnull(strstr(md, "(plots/sweep-throughput.png)"));
	ck_assert_ptr_nonnull(strstr(md, "(plots/sweep-race.png)"));
	free(md);
	/* a sweep.csv of before issue 14 (no such columns) draws neither, and reads back the same */
	put("old", "sweep.csv", sweep_csv);
	ck_assert_msg(plot_sweep(path_of("old", ""), err, sizeof(err)) == 0, "plot_sweep: %s", err);
	assert_image("old", "sweep-duprate");
	assert_no_image("old", "sweep-throughput");
	assert_no_image("old", "sweep-race");
}
END_TEST

/* sweep.csv read into struct sweep and written back is the same file. */
START_TEST(test_sweep_round_trip)
{
	struct sweep s;
	char err[1024] = "", *buf = NULL;
	size_t len = 0;
	FILE *f;

	put("swrt", "sweep.csv", sweep_csv);
	ck_assert_msg(sweep_load(&s, path_of("swrt", ""), err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(s.nvaried, 2);
	ck_assert_uint_eq(s.nrows, 6);
	ck_assert_str_eq(s.rows[4].status, "failed");
	ck_assert(isnan(s.rows[4].v[SWEEP_COMMITTED]));
	f = open_memstream(&buf, &len);
	sweep_write_csv(&s, f);
	fclose(f);
	ck_assert_str_eq(buf, sweep_csv);
	free(buf);
	sweep_release(&s);
}
END_TEST

START_TEST(test_errors)
{
	char err[1024] = "", missing[PATH_MAX + 16], tools[PATH_MAX];
	const char *path = getenv("PATH");
	char *saved = path ? strdup(path) : NULL;

	snprintf(missing, sizeof(missing), "%s/nope", tmp_dir);
	ck_assert_int_eq(plot_run(missing, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "nope"));
	ck_assert_ptr_null(strchr(err, '\n'));
	ck_assert_int_eq(plot_sweep(missing, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "nope"));
	ck_assert_int_eq(report_write(missing, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "summary.json"));
	ck_assert_int_eq(report_write_sweep(missing, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "sweep.csv"));

	make_run("run");
	setenv("DUPSIM_TOOLS", "/nonexistent-tools", 1);
	ck_assert_int_eq(plot_run(path_of("run", ""), err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "DUPSIM_TOOLS"));

	/* no gnuplot on PATH */
	ck_assert_ptr_nonnull(realpath("tools", tools));
	setenv("DUPSIM_TOOLS", tools, 1);
	setenv("PATH", tmp_dir, 1);
	ck_assert_int_eq(plot_run(path_of("run", ""), err, sizeof(err)), -1);
	if (saved)
		setenv("PATH", saved, 1);
	free(saved);
	ck_assert_ptr_nonnull(strstr(err, "gnuplot is not installed"));

	/* a script gnuplot rejects: its complaint comes back in one line */
	put("badtools", "plot-run.gp", "plot no_such_function(x)\n");
	setenv("DUPSIM_TOOLS", path_of("badtools", ""), 1);
	ck_assert_int_eq(plot_run(path_of("run", ""), err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "gnuplot failed"));
	ck_assert_ptr_nonnull(strstr(err, "undefined function"));
	ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

START_TEST(test_cli)
{
	char *argv[4] = { "plot", NULL, NULL, NULL };
	char *md;

	ck_assert_int_eq(plot_cli(1, argv), 2);
	argv[1] = "--help";
	ck_assert_int_eq(plot_cli(2, argv), 0);
	argv[1] = tmp_dir; /* neither a run nor a sweep */
	ck_assert_int_eq(plot_cli(2, argv), 2);
	argv[1] = "/nonexistent-dupsim-results";
	ck_assert_int_eq(plot_cli(2, argv), 2);
	argv[1] = "--bogus";
	ck_assert_int_eq(plot_cli(2, argv), 2);

	make_run("run");
	argv[1] = path_of("run", "");
	ck_assert_int_eq(plot_cli(2, argv), 0);
	assert_image("run", "copies");
	md = files_read(path_of("run", "report.md"), NULL);
	ck_assert_ptr_nonnull(md);
	free(md);

	put("sweep", "sweep.csv", sweep_csv);
	argv[1] = path_of("sweep", "");
	ck_assert_int_eq(plot_cli(2, argv), 0);
	assert_image("sweep", "sweep-duprate");
}
END_TEST

Suite *plot_suite(void)
{
	Suite *s = suite_create("plot");
	TCase *tc = tcase_create("plot");

	tcase_add_checked_fixture(tc, plot_setup, plot_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_csv_reader);
	tcase_add_test(tc, test_run_plots_and_report);
	tcase_add_test(tc, test_run_without_gaps);
	tcase_add_test(tc, test_run_periods);
	tcase_add_test(tc, test_sweep);
	tcase_add_test(tc, test_results_unknown);
	tcase_add_test(tc, test_results_round_trip);
	tcase_add_test(tc, test_sweep_round_trip);
	tcase_add_test(tc, test_sweep_store); /* issue 14 */
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_cli);
	suite_add_tcase(s, tc);
	return s;
}
