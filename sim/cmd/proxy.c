/* proxy.c — `dupsim proxy`: the fault proxy standalone, in front of any AMQP application. */
#include "cmd/proxy.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "core/log.h"
#include "core/parse.h"
#include "proxy/api.h"
#include "proxy/proxy.h"
#include "wire/frame.h"

static struct proxy *proxy_cmd_running; /* what a signal stops */

/* The addresses on the command line. */
struct proxy_cmd_hosts {
	char listen[256], upstream[256], api[256]; /* api: "" when there is no --api */
	uint16_t api_port;
};

static void proxy_cmd_stop(void)
{
	if (proxy_cmd_running)
		proxy_stop_signal(proxy_cmd_running);
}

static void proxy_cmd_usage(FILE *f)
{
	fprintf(f,
		"usage: dupsim proxy --listen HOST:PORT --upstream HOST:PORT [--rule RULE]... [--seed N]\n"
		"                    [--max-frame BYTES] [--max-conns N] [--log-faults] [--quiet] [--api [HOST:]PORT]\n"
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
		"  --quiet               no line per failed or malformed connection\n"
		"  --api [HOST:]PORT     an HTTP + JSON control API: GET/POST /rules, GET/PATCH/DELETE /rules/ID,\n"
		"                        POST /cut, GET /stats (see the README). A bare PORT listens on\n"
		"                        127.0.0.1; another host only when given. No auth: whoever reaches\n"
		"                        it can change the faults. PORT 0: any free port, printed\n",
		FRAME_DEFAULT_MAX);
}

/* --api's argument: HOST:PORT, or a bare PORT on 127.0.0.1. 0, or -1 (the line is logged). */
static int proxy_cmd_parse_api(const char *arg, struct proxy_cmd_hosts *h)
{
	if (parse_listen_addr(arg, h->api, sizeof(h->api), &h->api_port) == 0)
		return 0;
	log_line("proxy: --api '%s': expected [HOST:]PORT, e.g. 127.0.0.1:8474 or 8474", arg);
	return -1;
}

/* The command line into cfg, rules (room for argc) and h. -1 to go on, else an exit code.
 * A getopt table and its switch: longer than 80 lines, one case per option. */
static int proxy_cmd_parse(int argc, char **argv, struct proxy_config *cfg, struct rule *rules,
			   struct proxy_cmd_hosts *h)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },   { "upstream", required_argument, NULL, 'u' },
		{ "rule", required_argument, NULL, 'r' },     { "seed", required_argument, NULL, 's' },
		{ "max-frame", required_argument, NULL, 'f' }, { "max-conns", required_argument, NULL, 'c' },
		{ "log-faults", no_argument, NULL, 'L' },     { "quiet", no_argument, NULL, 'q' },
		{ "api", required_argument, NULL, 'a' },      { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char err[512];
	uint64_t v;
	int opt;

	cfg->seed = 1;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			if (parse_hostport(optarg, h->listen, sizeof(h->listen), &cfg->listen_port, true) < 0) {
				log_line("proxy: --listen '%s': expected HOST:PORT, e.g. 127.0.0.1:5673", optarg);
				return 2;
			}
			break;
		case 'u':
			if (parse_hostport(optarg, h->upstream, sizeof(h->upstream), &cfg->upstream_port, false) < 0) {
				log_line("proxy: --upstream '%s': expected HOST:PORT with a port 1-65535, e.g. "
					 "127.0.0.1:5672",
					 optarg);
				return 2;
			}
			break;
		case 'r':
			if (rule_parse(optarg, &rules[cfg->rule_count], err, sizeof(err)) < 0) {
				log_line("proxy: --rule: %s", err);
				return 2;
			}
			cfg->rule_count++;
			break;
		case 's':
			if (parse_u64(optarg, &cfg->seed) < 0) {
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
			cfg->max_frame = (uint32_t)v;
			break;
		case 'c':
			if (parse_u64(optarg, &v) < 0 || v < 1 || v > 1000000) {
				log_line("proxy: --max-conns '%s': expected 1 to 1000000", optarg);
				return 2;
			}
			cfg->max_conns = (size_t)v;
			break;
		case 'L':
			cfg->log_faults = true;
			break;
		case 'q':
			cfg->quiet = true;
			break;
		case 'a':
			if (proxy_cmd_parse_api(optarg, h) < 0)
				return 2;
			break;
		case 'h':
			proxy_cmd_usage(stdout);
			return 0;
		default:
			proxy_cmd_usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		log_line("proxy: unexpected argument '%s' (rules go after --rule, quoted)", argv[optind]);
		return 2;
	}
	if (!*h->listen || !*h->upstream) {
		log_line("proxy: --listen and --upstream are required; see dupsim proxy --help");
		return 2;
	}
	cfg->rules = rules;
	return -1;
}

/* Whether host names this machine's loopback (by its usual spellings; anything else gets a warning). */
static bool proxy_cmd_is_loopback(const char *host)
{
	return strncmp(host, "127.", 4) == 0 || strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0;
}

/*
 * Every rule the proxy had, by id, with its counts: as it reads now (the API
 * may have changed its p), marked when the API added it, and the ones it
 * deleted with their counts up to then.
 */
static void proxy_cmd_print_rules(struct proxy *px, const struct proxy_stats *st, const struct rule *configured,
				  size_t nconfigured)
{
	struct proxy_rule *now = NULL;
	size_t n = 0, j = 0;

	if (proxy_rules_get(px, &now, &n) < 0)
		n = 0; /* out of memory: the deleted-or-not marks are left out, the counts stay */
	for (size_t i = 0; i < st->rule_count; i++) {
		uint64_t id = i + 1;

		while (j < n && now[j].id < id)
			j++;
		if (j < n && now[j].id == id)
			printf("rule %llu '%s'%s: matched %llu, fired %llu\n", (unsigned long long)id, now[j].rule.text,
			       id > nconfigured ? " (added through the API)" : "", (unsigned long long)st->rule_matched[i],
			       (unsigned long long)st->rule_fired[i]);
		else
			printf("rule %llu%s%s%s (deleted): matched %llu, fired %llu\n", (unsigned long long)id,
			       i < nconfigured ? " '" : "", i < nconfigured ? configured[i].text : "",
			       i < nconfigured ? "'" : "", (unsigned long long)st->rule_matched[i],
			       (unsigned long long)st->rule_fired[i]);
	}
	free(now);
}

/* proxy_cmd's work; rules has room for argc rules (each --rule takes at least one argument). */
static int proxy_cmd_run(int argc, char **argv, struct rule *rules)
{
	struct proxy_config cfg = { 0 };
	struct proxy_cmd_hosts h = { 0 };
	char err[512];
	struct proxy *px;
	struct api *api = NULL;
	struct proxy_stats st;
	int rc = proxy_cmd_parse(argc, argv, &cfg, rules, &h);

	if (rc >= 0)
		return rc;
	cfg.listen_host = h.listen;
	cfg.upstream_host = h.upstream;
	if (proxy_new(&px, &cfg, err, sizeof(err)) < 0) {
		log_line("proxy: %s", err);
		return 1;
	}
	if (*h.api && api_new(&api, px, h.api, h.api_port, err, sizeof(err)) < 0) {
		log_line("proxy: %s", err);
		proxy_free(px);
		return 1;
	}
	proxy_cmd_running = px;
	cli_catch_signals(false, proxy_cmd_stop);
	signal(SIGPIPE, SIG_IGN);
	printf("dupsim proxy: listening on %s:%u, upstream %s:%u, %zu rule%s, seed %llu\n", h.listen, proxy_port(px),
	       h.upstream, cfg.upstream_port, cfg.rule_count, cfg.rule_count == 1 ? "" : "s",
	       (unsigned long long)cfg.seed);
	for (size_t i = 0; i < cfg.rule_count; i++)
		printf("  rule %zu: %s\n", i + 1, rules[i].text);
	if (api)
		printf("dupsim proxy: control API on http://%s:%u/ (GET /rules, /stats; no auth)\n", h.api, api_port(api));
	if (api && !proxy_cmd_is_loopback(h.api))
		log_line("proxy: warning: the control API listens on %s, beyond loopback, with no auth: whoever "
			 "reaches it can change the faults",
			 h.api);
	fflush(stdout);
	rc = proxy_run(px);
	api_free(api); /* first: its requests use px */
	if (proxy_stats_get(px, &st) < 0)
		log_line("proxy: out of memory for the rule counters; they are left out");
	printf("dupsim proxy: stopped\n");
	proxy_stats_print(&st, stdout);
	proxy_cmd_print_rules(px, &st, rules, cfg.rule_count);
	proxy_stats_release(&st);
	proxy_cmd_running = NULL;
	proxy_free(px);
	return rc < 0 ? 1 : 0;
}

int proxy_cmd(int argc, char **argv)
{
	struct rule *rules = calloc((size_t)argc, sizeof(*rules));
	int code;

	if (!rules) {
		log_line("proxy: out of memory");
		return 1;
	}
	code = proxy_cmd_run(argc, argv, rules);
	free(rules);
	return code;
}
