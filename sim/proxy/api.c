/* api.c — the fault proxy's control API: HTTP requests (libmicrohttpd) routed to the proxy's rule calls, answers in JSON (jansson). */
#include "proxy/api.h"

#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <jansson.h>
#include <microhttpd.h>

#include "core/log.h"
#include "core/parse.h"
#include "wire/frame.h"

struct api {
	struct proxy *px;
	struct MHD_Daemon *daemon;
	uint16_t port;
	atomic_bool started; /* libmicrohttpd's messages go to stderr from now on, not into last_log */
	char last_log[256];  /* libmicrohttpd's last message while starting: why it did not start */
};

/* An answer: its status, a JSON body (NULL: none) and, for a 405, the methods the path takes. */
struct api_reply {
	unsigned status;
	json_t *body;
	const char *allow;
};

/* One request's body, gathered as it arrives. */
struct api_req {
	char *body;
	size_t len;
	bool too_big; /* over API_BODY_MAX: answered 413, the rest thrown away */
};

static const char rule_example[] = "{\"rule\": \"drop basic.ack from=client p=0.01\"}";
static const char p_example[] = "{\"p\": 0.05}";

/* ---- the answers: routing and JSON, no HTTP ---- */

static struct api_reply api_error(unsigned status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static struct api_reply api_error(unsigned status, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return (struct api_reply){ .status = status, .body = json_pack("{s:s}", "error", msg) };
}

static struct api_reply api_no_rule(uint64_t id)
{
	return api_error(404, "rule %llu: no such rule (GET /rules lists the rules in force)", (unsigned long long)id);
}

static struct api_reply api_not_allowed(const char *method, const char *url, const char *allow)
{
	struct api_reply rep = api_error(405, "%s %s: method not allowed; %s takes %s", method, url, url, allow);

	rep.allow = allow;
	return rep;
}

static json_t *api_rule_json(const struct proxy_rule *r)
{
	return json_pack("{s:I, s:s, s:I, s:I, s:f}", "id", (json_int_t)r->id, "rule", r->rule.text, "matched",
			 (json_int_t)r->matched, "fired", (json_int_t)r->fired, "p", r->rule.p);
}

/* The request's body as a JSON object holding only the keys in `keys` (NULL-ended); NULL and *rep (a 400) if not. */
static json_t *api_body_object(const struct api_req *q, const char *const *keys, const char *example,
			       struct api_reply *rep)
{
	json_error_t je;
	json_t *o, *v;
	const char *k;

	if (q->len == 0) {
		*rep = api_error(400, "body: empty; expected a JSON object such as %s", example);
		return NULL;
	}
	if (!(o = json_loadb(q->body, q->len, 0, &je))) {
		*rep = api_error(400, "body: not JSON (%s, at character %d); expected e.g. %s", je.text, je.position,
				 example);
		return NULL;
	}
	if (!json_is_object(o)) {
		*rep = api_error(400, "body: expected a JSON object such as %s", example);
		json_decref(o);
		return NULL;
	}
	json_object_foreach(o, k, v) {
		size_t i = 0;

		while (keys[i] && strcmp(keys[i], k) != 0)
			i++;
		if (!keys[i]) {
			*rep = api_error(400, "%s: unknown field; expected a JSON object such as %s", k, example);
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

static struct api_reply api_rules_list(struct api *a)
{
	struct proxy_rule *rules;
	size_t n;
	json_t *list;

	if (proxy_rules_get(a->px, &rules, &n) < 0 || !(list = json_array())) {
		free(rules);
		return api_error(500, "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, api_rule_json(&rules[i]));
	free(rules);
	return (struct api_reply){ .status = 200, .body = list };
}

static struct api_reply api_rules_post(struct api *a, const struct api_req *q)
{
	static const char *const keys[] = { "rule", NULL };
	struct api_reply rep;
	json_t *o = api_body_object(q, keys, rule_example, &rep), *text;
	struct proxy_rule pr;
	struct rule r;
	char err[512];

	if (!o)
		return rep;
	text = json_object_get(o, "rule");
	if (!json_is_string(text))
		rep = api_error(400, "rule: %s; expected a string in the rule grammar, e.g. %s",
				text ? "not a string" : "missing", rule_example);
	else if (rule_parse(json_string_value(text), &r, err, sizeof(err)) < 0)
		rep = api_error(400, "%s", err); /* rule_parse names the word at fault and what is allowed */
	else if (proxy_rule_add(a->px, &r, &pr) < 0)
		rep = api_error(500, "out of memory");
	else
		rep = (struct api_reply){ .status = 201, .body = api_rule_json(&pr) };
	json_decref(o);
	return rep;
}

/* A probability from JSON: a number in [0, 1], or a string as in the rule grammar ("5%", "0.05"). */
static bool api_prob(const json_t *p, double *v)
{
	if (json_is_number(p)) {
		*v = json_number_value(p);
		return *v >= 0 && *v <= 1;
	}
	return json_is_string(p) && parse_prob(json_string_value(p), v) == 0;
}

static struct api_reply api_rule_patch(struct api *a, uint64_t id, const struct api_req *q)
{
	static const char *const keys[] = { "p", NULL };
	struct api_reply rep;
	json_t *o = api_body_object(q, keys, p_example, &rep);
	struct proxy_rule pr;
	double p;

	if (!o)
		return rep;
	if (!api_prob(json_object_get(o, "p"), &p))
		rep = api_error(400, "p: %s; expected a number in [0, 1] (or a string such as \"5%%\"), e.g. %s",
				json_object_get(o, "p") ? "out of range or not a number" : "missing", p_example);
	else if (proxy_rule_set_p(a->px, id, p, &pr) < 0)
		rep = api_no_rule(id);
	else
		rep = (struct api_reply){ .status = 200, .body = api_rule_json(&pr) };
	json_decref(o);
	return rep;
}

static struct api_reply api_rule_one(struct api *a, const char *method, const char *url, const struct api_req *q)
{
	struct proxy_rule pr;
	uint64_t id;

	if (parse_u64(url + strlen("/rules/"), &id) < 0)
		return api_error(404, "%s: no such rule; a rule's path is /rules/ID, with an id GET /rules shows", url);
	if (strcmp(method, "GET") == 0)
		return proxy_rule_get(a->px, id, &pr) < 0 ? api_no_rule(id)
							   : (struct api_reply){ .status = 200, .body = api_rule_json(&pr) };
	if (strcmp(method, "PATCH") == 0)
		return api_rule_patch(a, id, q);
	if (strcmp(method, "DELETE") == 0)
		return proxy_rule_remove(a->px, id) < 0 ? api_no_rule(id) : (struct api_reply){ .status = 204 };
	return api_not_allowed(method, url, "GET, PATCH, DELETE");
}

static json_t *api_stats_json(const struct proxy_stats *s)
{
	static const char *const from[2] = { "from_client", "from_broker" };
	static const char *const sender[2] = { "client", "broker" };
	json_t *o = json_object(), *bytes = json_object(), *frames = json_object(), *methods = json_array();

	json_object_set_new(o, "connections",
			    json_pack("{s:I, s:I, s:I, s:I, s:I}", "accepted", (json_int_t)s->conns_accepted, "open",
				      (json_int_t)s->conns_active, "refused", (json_int_t)s->conns_refused,
				      "upstream_failures", (json_int_t)s->upstream_failures, "malformed",
				      (json_int_t)s->malformed));
	for (int d = 0; d < 2; d++) {
		json_object_set_new(bytes, from[d], json_integer((json_int_t)s->bytes[d]));
		json_object_set_new(frames, from[d],
				    json_pack("{s:I, s:I, s:I, s:I}", "method", (json_int_t)s->frames[d][0], "header",
					      (json_int_t)s->frames[d][1], "body", (json_int_t)s->frames[d][2],
					      "heartbeat", (json_int_t)s->frames[d][3]));
	}
	json_object_set_new(o, "bytes", bytes);
	json_object_set_new(o, "frames", frames);
	for (size_t m = 0; m < PROXY_METHOD_SLOTS; m++)
		for (int d = 0; d < 2; d++)
			if (s->method_seen[d][m])
				json_array_append_new(
					methods,
					json_pack("{s:s, s:s, s:I, s:I}", "method",
						  m < frame_method_count() ? frame_method_name(frame_method_at(m))
									   : "(unknown)",
						  "from", sender[d], "seen", (json_int_t)s->method_seen[d][m], "dropped",
						  (json_int_t)s->method_dropped[d][m]));
	json_object_set_new(o, "methods", methods);
	json_object_set_new(o, "faults",
			    json_pack("{s:I, s:I, s:I, s:I}", "drops", (json_int_t)s->drops, "content_dropped",
				      (json_int_t)s->content_dropped, "cuts", (json_int_t)s->cuts, "cuts_requested",
				      (json_int_t)s->cuts_requested));
	json_object_set_new(o, "acks",
			    json_pack("{s:I, s:I, s:I}", "sampled", (json_int_t)s->acks_sampled, "ahead_sum",
				      (json_int_t)s->ahead_sum, "ahead_sq_sum", (json_int_t)s->ahead_sq_sum));
	return o;
}

static struct api_reply api_stats(struct api *a)
{
	struct proxy_stats st;
	struct api_reply rep = { .status = 200 };

	proxy_stats_get(a->px, &st); /* the per-rule arrays may be missing (out of memory): they are not shown */
	rep.body = api_stats_json(&st);
	proxy_stats_release(&st);
	return rep;
}

/* What a request gets; never NULL-bodied except for a 204. */
static struct api_reply api_route(struct api *a, const char *method, const char *url, const struct api_req *q)
{
	if (strcmp(url, "/rules") == 0) {
		if (strcmp(method, "GET") == 0)
			return api_rules_list(a);
		if (strcmp(method, "POST") == 0)
			return api_rules_post(a, q);
		return api_not_allowed(method, url, "GET, POST");
	}
	if (strncmp(url, "/rules/", strlen("/rules/")) == 0)
		return api_rule_one(a, method, url, q);
	if (strcmp(url, "/cut") == 0) {
		if (strcmp(method, "POST") == 0)
			return (struct api_reply){ .status = 200,
						   .body = json_pack("{s:I}", "cut", (json_int_t)proxy_cut_all(a->px)) };
		return api_not_allowed(method, url, "POST");
	}
	if (strcmp(url, "/stats") == 0) {
		if (strcmp(method, "GET") == 0)
			return api_stats(a);
		return api_not_allowed(method, url, "GET");
	}
	return api_error(404, "%s: no such endpoint; the endpoints are /rules, /rules/ID, /cut and /stats", url);
}

/* ---- HTTP: libmicrohttpd's callbacks ---- */

static enum MHD_Result api_send(struct MHD_Connection *conn, struct api_reply *rep)
{
	static const char oom[] = "{\"error\": \"out of memory\"}\n";
	char *text = rep->body ? json_dumps(rep->body, JSON_REAL_PRECISION(15)) : NULL;
	char *buf = NULL;
	size_t len = 0;
	struct MHD_Response *res;
	enum MHD_Result ret;

	json_decref(rep->body);
	if (text && (buf = malloc(strlen(text) + 2))) {
		len = strlen(text);
		memcpy(buf, text, len);
		buf[len++] = '\n'; /* curl's output then ends its line */
	}
	free(text);
	if (rep->status != 204 && !buf) {
		rep->status = 500;
		res = MHD_create_response_from_buffer(strlen(oom), (void *)oom, MHD_RESPMEM_PERSISTENT);
	} else {
		res = MHD_create_response_from_buffer(len, buf, buf ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	}
	if (!res) {
		free(buf);
		return MHD_NO;
	}
	if (len > 0 || rep->status == 500)
		MHD_add_response_header(res, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (rep->allow)
		MHD_add_response_header(res, MHD_HTTP_HEADER_ALLOW, rep->allow);
	ret = MHD_queue_response(conn, rep->status, res);
	MHD_destroy_response(res);
	return ret;
}

static struct api_reply api_too_big(void)
{
	return api_error(413, "body: over %d bytes", API_BODY_MAX);
}

/* Keeps a piece of the body, unless the body grew past API_BODY_MAX (then none of it is kept). */
static void api_req_append(struct api_req *q, const char *data, size_t n)
{
	char *body;

	if (q->too_big)
		return;
	if (q->len + n > API_BODY_MAX || !(body = realloc(q->body, q->len + n))) {
		q->too_big = true; /* out of memory for 64 KiB is answered the same way */
		free(q->body);
		q->body = NULL;
		q->len = 0;
		return;
	}
	memcpy(body + q->len, data, n);
	q->body = body;
	q->len += n;
}

/*
 * libmicrohttpd calls this once when the headers are in, once per piece of
 * the body, and once more when the body is complete: the answer goes then,
 * or at once when the declared length is over the limit.
 */
static enum MHD_Result api_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size, void **state)
{
	struct api_req *q = *state;
	struct api_reply rep;

	(void)version;
	if (!q) {
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		uint64_t n;

		if (!(q = calloc(1, sizeof(*q))))
			return MHD_NO;
		*state = q;
		if (cl && parse_u64(cl, &n) == 0 && n > API_BODY_MAX) {
			q->too_big = true;
			rep = api_too_big();
			return api_send(conn, &rep);
		}
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		api_req_append(q, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	rep = q->too_big ? api_too_big() : api_route(cls, method, url, q);
	return api_send(conn, &rep);
}

static void api_completed(void *cls, struct MHD_Connection *conn, void **state, enum MHD_RequestTerminationCode why)
{
	struct api_req *q = *state;

	(void)cls;
	(void)conn;
	(void)why;
	if (q) {
		free(q->body);
		free(q);
		*state = NULL;
	}
}

/* libmicrohttpd's messages: while starting, kept for api_new's err (its thread is not serving yet); then logged. */
static void api_log(void *cls, const char *fmt, va_list ap)
{
	struct api *a = cls;
	char msg[256];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '.'))
		msg[--n] = '\0';
	if (atomic_load(&a->started))
		log_line("proxy api: %s", msg);
	else
		memcpy(a->last_log, msg, n + 1);
}

int api_new(struct api **out, struct proxy *px, const char *host, uint16_t port, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct api *a = calloc(1, sizeof(*a));
	struct addrinfo *ai;
	const union MHD_DaemonInfo *info;
	sigset_t all, old;
	char ps[8];
	int rc;

	*out = NULL;
	if (!a)
		return log_seterr(err, errlen, "out of memory");
	a->px = px;
	snprintf(ps, sizeof(ps), "%u", port);
	if ((rc = getaddrinfo(host, ps, &hints, &ai)) != 0) {
		free(a);
		return log_seterr(err, errlen, "api: cannot resolve '%s': %s", host, gai_strerror(rc));
	}
	/* signals belong to the main thread: the daemon's thread inherits this mask */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	a->daemon = MHD_start_daemon(MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
					     (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0),
				     port, NULL, NULL, api_access, a, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
				     MHD_OPTION_NOTIFY_COMPLETED, api_completed, a, MHD_OPTION_EXTERNAL_LOGGER, api_log,
				     a, MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	freeaddrinfo(ai);
	if (!a->daemon) {
		log_seterr(err, errlen, "api: cannot serve on %s:%u: %s", host, port,
			   a->last_log[0] ? a->last_log : "libmicrohttpd would not start");
		free(a);
		return -1;
	}
	atomic_store(&a->started, true);
	info = MHD_get_daemon_info(a->daemon, MHD_DAEMON_INFO_BIND_PORT);
	a->port = info && info->port ? info->port : port;
	*out = a;
	return 0;
}

uint16_t api_port(const struct api *a)
{
	return a->port;
}

void api_free(struct api *a)
{
	if (!a)
		return;
	MHD_stop_daemon(a->daemon);
	free(a);
}
