/*
 * stub_control.c — the stubs' control API and their request log.
 *
 *   POST   /_stub/faults    {"match":"/openai", "status"?, "retry_after_s"?,
 *                           "delay_ms"?, "drop_after"?, "malformed"?,
 *                           "count"? (default 1)} queue a fault plan
 *   GET    /_stub/faults    the queued plans
 *   DELETE /_stub/faults    drop every plan
 *   GET    /_stub/requests  {"requests":[{seq, method, path, received_ms,
 *                           fault, credential, body_bytes}]}, oldest first
 *   DELETE /_stub/requests  forget them
 *   GET    /_stub/health    {"status":"ok"}
 *
 * Control requests are never faulted, delayed or logged.  The request log
 * is a ring of the last LT_STUB_REQLOG_MAX provider/payment requests, under
 * its own mutex; entries are fixed-size copies (long values truncated).
 * It records the credential each request carried, so tests can check what
 * the gateway forwarded: the stubs are a test fixture, not a service.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stubs/stub_int.h"
#include "util/json.h"

enum lt_err lt_stub_reqlog_init(struct lt_stub_reqlog *l)
{
	memset(l, 0, sizeof *l);
	l->v = calloc(LT_STUB_REQLOG_MAX, sizeof *l->v);
	if (!l->v)
		return LT_ENOMEM;
	if (pthread_mutex_init(&l->mu, NULL) != 0) {
		free(l->v);
		l->v = NULL;
		return LT_ENOMEM;
	}
	return LT_OK;
}

void lt_stub_reqlog_release(struct lt_stub_reqlog *l)
{
	if (!l->v)
		return;
	pthread_mutex_destroy(&l->mu);
	free(l->v);
	l->v = NULL;
}

void lt_stub_reqlog_add(struct lt_stub_reqlog *l, const struct lt_stub_reqlog_entry *e)
{
	pthread_mutex_lock(&l->mu);
	struct lt_stub_reqlog_entry *slot = &l->v[l->head];
	*slot = *e;
	slot->seq = ++l->seq;
	l->head = (l->head + 1) % LT_STUB_REQLOG_MAX;
	if (l->n < LT_STUB_REQLOG_MAX)
		l->n++;
	pthread_mutex_unlock(&l->mu);
}

static void put_str(struct lt_buf *b, const char *s)
{
	lt_buf_put_json_str(b, s, strlen(s));
}

static void render_requests(struct lt_stub_reqlog *l, struct lt_buf *b)
{
	lt_buf_puts(b, "{\"requests\":[");
	pthread_mutex_lock(&l->mu);
	size_t first = (l->head + LT_STUB_REQLOG_MAX - l->n) % LT_STUB_REQLOG_MAX;
	for (size_t i = 0; i < l->n; i++) {
		const struct lt_stub_reqlog_entry *e = &l->v[(first + i) % LT_STUB_REQLOG_MAX];
		lt_buf_printf(b, "%s{\"seq\":%llu,\"method\":", i ? "," : "",
			      (unsigned long long)e->seq);
		put_str(b, e->method);
		lt_buf_puts(b, ",\"path\":");
		put_str(b, e->path);
		lt_buf_printf(b, ",\"received_ms\":%lld,\"fault\":", (long long)e->received_ms);
		if (e->fault[0])
			put_str(b, e->fault);
		else
			lt_buf_puts(b, "null");
		lt_buf_puts(b, ",\"credential\":");
		put_str(b, e->credential);
		lt_buf_printf(b, ",\"body_bytes\":%lld}", (long long)e->body_bytes);
	}
	pthread_mutex_unlock(&l->mu);
	lt_buf_puts(b, "]}");
}

static size_t clear_requests(struct lt_stub_reqlog *l)
{
	pthread_mutex_lock(&l->mu);
	size_t n = l->n;
	l->n = 0;
	l->head = 0;
	pthread_mutex_unlock(&l->mu);
	return n;
}

/* Optional integer member in [min, max]; false after answering 400. */
static bool opt_int(struct lt_stub_req *r, const char *name, int64_t min, int64_t max, int64_t *out)
{
	enum lt_err e = lt_json_get_i64(r->json, name, min, max, out);
	if (e == LT_OK || e == LT_ENOTFOUND)
		return true;
	char msg[128];
	snprintf(msg, sizeof msg, "%s must be an integer in %lld..%lld", name, (long long)min,
		 (long long)max);
	lt_stub_reply_error(r, 400, msg, NULL);
	return false;
}

static void add_plan(struct lt_stub_req *r)
{
	static const char *const known[] = {"match",	  "status",    "retry_after_s", "delay_ms",
					    "drop_after", "malformed", "count"};
	char msg[160];
	if (!cJSON_IsObject(r->json)) {
		lt_stub_reply_error(r, 400, "the fault plan must be a JSON object", NULL);
		return;
	}
	for (const cJSON *it = r->json->child; it; it = it->next) {
		bool ok = false;
		for (size_t i = 0; i < sizeof known / sizeof known[0] && !ok; i++)
			ok = it->string && strcmp(it->string, known[i]) == 0;
		if (!ok) {
			snprintf(msg, sizeof msg,
				 "unknown field \"%.40s\" (match, status, retry_after_s, delay_ms, "
				 "drop_after, malformed, count)",
				 it->string ? it->string : "");
			lt_stub_reply_error(r, 400, msg, NULL);
			return;
		}
	}
	struct lt_stub_plan p;
	memset(&p, 0, sizeof p);
	lt_stub_fault_none(&p.fault);
	const char *match = NULL;
	if (lt_json_get_str(r->json, "match", &match) || match[0] != '/' ||
	    strlen(match) >= sizeof p.match) {
		lt_stub_reply_error(r, 400,
				    "match is required: a path prefix starting with '/' (at most "
				    "255 bytes)",
				    NULL);
		return;
	}
	snprintf(p.match, sizeof p.match, "%s", match);
	int64_t status = 0, retry = -1, delay = 0, drop = -1, count = 1;
	if (!opt_int(r, "status", 100, 599, &status) ||
	    !opt_int(r, "retry_after_s", 0, 3600, &retry) ||
	    !opt_int(r, "delay_ms", 0, 600000, &delay) ||
	    !opt_int(r, "drop_after", 0, 1000000, &drop) ||
	    !opt_int(r, "count", 1, 1000000, &count))
		return;
	bool malformed = false;
	if (lt_json_get_bool(r->json, "malformed", &malformed) == LT_EINVAL) {
		lt_stub_reply_error(r, 400, "malformed must be a boolean", NULL);
		return;
	}
	p.fault.status = (int)status;
	p.fault.retry_after_s = (int)retry;
	p.fault.delay_ms = delay;
	p.fault.drop_after = drop;
	p.fault.malformed = malformed;
	p.count = count;
	if (lt_stub_plans_push(&r->s->plans, &p)) {
		snprintf(msg, sizeof msg, "too many queued fault plans (at most %d)",
			 LT_STUB_PLANS_MAX);
		lt_stub_reply_error(r, 409, msg, NULL);
		return;
	}
	char desc[LT_STUB_FAULT_DESC_MAX];
	lt_stub_fault_describe(&p.fault, desc, sizeof desc);
	char stack[512];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 4096);
	lt_buf_puts(&b, "{\"queued\":true,\"match\":");
	put_str(&b, p.match);
	lt_buf_puts(&b, ",\"fault\":");
	put_str(&b, desc);
	lt_buf_printf(&b, ",\"count\":%lld}", (long long)p.count);
	lt_stub_reply_json(r, 200, &b, NULL);
	lt_buf_release(&b);
}

void lt_stub_control(struct lt_stub_req *r, enum lt_stub_ctl op)
{
	r->shape = LT_STUB_SHAPE_PLAIN;
	char stack[1024];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, LT_STUB_RESP_MAX);
	switch (op) {
	case LT_STUB_CTL_FAULTS_ADD: add_plan(r); break;
	case LT_STUB_CTL_FAULTS_LIST:
		lt_stub_plans_render(&r->s->plans, &b);
		lt_stub_reply_json(r, 200, &b, NULL);
		break;
	case LT_STUB_CTL_FAULTS_CLEAR:
		lt_buf_printf(&b, "{\"cleared\":%zu}", lt_stub_plans_clear(&r->s->plans));
		lt_stub_reply_json(r, 200, &b, NULL);
		break;
	case LT_STUB_CTL_REQUESTS_LIST:
		render_requests(&r->s->reqlog, &b);
		lt_stub_reply_json(r, 200, &b, NULL);
		break;
	case LT_STUB_CTL_REQUESTS_CLEAR:
		lt_buf_printf(&b, "{\"cleared\":%zu}", clear_requests(&r->s->reqlog));
		lt_stub_reply_json(r, 200, &b, NULL);
		break;
	case LT_STUB_CTL_HEALTH:
		lt_buf_puts(&b, "{\"status\":\"ok\"}");
		lt_stub_reply_json(r, 200, &b, NULL);
		break;
	}
	lt_buf_release(&b);
}
