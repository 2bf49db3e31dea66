/* fuzz_scenario.c — libFuzzer target: arbitrary bytes as a scenario file, and as a --set argument. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/scenario.h"

/*
 * Whatever the bytes, scenario_load either fails with exactly one line, or
 * loads a scenario whose effective file (scenario_write) loads back to the
 * same values. The same bytes as one --set argument must not crash either.
 */

static void one_line(const char *err)
{
	if (!err[0] || strchr(err, '\n'))
		abort();
}

static void same(const struct scenario *a, const struct scenario *b)
{
	if (strcmp(a->run.name, b->run.name) || a->run.messages != b->run.messages || a->run.seed != b->run.seed ||
	    a->run.drain_timeout_ns != b->run.drain_timeout_ns || strcmp(a->broker.url, b->broker.url) ||
	    strcmp(a->broker.queue, b->broker.queue) || a->broker.queue_type != b->broker.queue_type ||
	    a->broker.keep_queue != b->broker.keep_queue || a->publishers.count != b->publishers.count ||
	    a->publishers.mode != b->publishers.mode || a->publishers.batch != b->publishers.batch ||
	    a->publishers.rate != b->publishers.rate || a->publishers.size != b->publishers.size ||
	    a->publishers.timeout_ns != b->publishers.timeout_ns || a->consumers.count != b->consumers.count ||
	    a->consumers.prefetch != b->consumers.prefetch || a->consumers.ack_every != b->consumers.ack_every ||
	    a->consumers.work_ns != b->consumers.work_ns || a->faults.commit_ok_loss != b->faults.commit_ok_loss ||
	    a->faults.confirm_loss != b->faults.confirm_loss || a->faults.ack_loss != b->faults.ack_loss ||
	    a->faults.on_loss != b->faults.on_loss || a->faults.rule_count != b->faults.rule_count ||
	    a->faults.broker_crash_every_ns != b->faults.broker_crash_every_ns ||
	    a->faults.broker_down_ns != b->faults.broker_down_ns ||
	    a->faults.consumer_crash != b->faults.consumer_crash ||
	    a->faults.consumer_crash_at != b->faults.consumer_crash_at || a->dedup.store != b->dedup.store ||
	    a->dedup.scope != b->dedup.scope || a->dedup.ttl_ns != b->dedup.ttl_ns ||
	    a->dedup.capacity != b->dedup.capacity || a->dedup.check != b->dedup.check ||
	    a->dedup.mark != b->dedup.mark || strcmp(a->dedup.url, b->dedup.url) || a->dedup.sync != b->dedup.sync)
		abort();
	for (size_t i = 0; i < a->faults.rule_count; i++)
		if (strcmp(a->faults.rules[i].text, b->faults.rules[i].text))
			abort();
}

static void round_trip(const struct scenario *sc)
{
	struct scenario back;
	char *text = NULL, err[1024];
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f || scenario_write(sc, f) < 0)
		abort();
	fclose(f);
	f = fmemopen(text, len, "r");
	if (!f)
		abort();
	scenario_init_defaults(&back, NULL);
	if (scenario_load_file(&back, f, "effective.ini", err, sizeof(err)) < 0)
		abort();
	fclose(f);
	same(sc, &back);
	scenario_release(&back);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct scenario sc;
	char err[1024];
	char *copy = malloc(size + 1);
	FILE *f;

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';

	scenario_init_defaults(&sc, "fuzz.ini");
	/* fmemopen refuses a zero-length buffer; an empty file is the same as one blank byte */
	f = size ? fmemopen(copy, size, "r") : fmemopen((char[]){ '\n' }, 1, "r");
	if (f) {
		err[0] = '\0';
		if (scenario_load_file(&sc, f, "fuzz.ini", err, sizeof(err)) == 0) {
			struct rule *rules;
			size_t n;

			if (scenario_check(&sc, err, sizeof(err)) < 0)
				one_line(err);
			if (scenario_rules(&sc, &rules, &n, err, sizeof(err)) < 0)
				abort();
			free(rules);
			round_trip(&sc);
		} else {
			one_line(err);
		}
		fclose(f);
	}
	scenario_release(&sc);

	/* the bytes up to the first NUL as one --set argument */
	scenario_init_defaults(&sc, NULL);
	err[0] = '\0';
	if (scenario_set(&sc, copy, err, sizeof(err)) == 0)
		round_trip(&sc);
	else
		one_line(err);
	scenario_release(&sc);
	free(copy);
	return 0;
}
