/*
 * ops.c — operations endpoints: liveness, readiness (ours and Spring
 * Actuator's shapes), Prometheus metrics, the OpenAPI document.
 * None needs authentication; none touches storage beyond stat calls.
 */
#include <string.h>

#include "api/handlers.h"
#include "api/spend.h"
#include "http/request.h"
#include "observe.h"
#include "server.h"
#include "util/buf.h"
#include "util/timefmt.h"

extern const char lt_openapi_json[];

void lt_api_healthz(struct lt_req *req)
{
	static const char body[] = "{\"status\":\"ok\"}";
	lt_reply(req, 200, "application/json", NULL, body, sizeof body - 1);
}

struct check {
	unsigned bit;
	const char *name;
	const char *reason;
};

static const struct check checks[] = {
	{LT_READY_STORAGE, "storage", "leaky.db is not open yet"},
	{LT_READY_MIGRATED, "migrations", "schema migrations have not finished"},
	{LT_READY_BUCKETS, "buckets", "the LMDB bucket store is not open yet"},
	{LT_READY_WRITER, "writer", "the writer thread is not running"},
	{LT_READY_AUTH, "auth", "signing keys and the admin user are not ready"},
};

void lt_api_readyz(struct lt_req *req)
{
	unsigned r = atomic_load(&req->srv->ready);
	bool ready = lt_server_is_ready(req->srv);
	char stack[1024];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 8192);
	lt_buf_printf(&b, "{\"status\":\"%s\",\"checks\":{", ready ? "ready" : "not ready");
	for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
		lt_buf_printf(&b, "%s\"%s\":\"%s\"", i ? "," : "", checks[i].name,
			      (r & checks[i].bit) ? "up" : "down");
	lt_buf_puts(&b, "},\"reasons\":[");
	bool first = true;
	if (r & LT_READY_DRAINING) {
		lt_buf_puts(&b, "\"shutting down\"");
		first = false;
	}
	for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
		if (r & checks[i].bit)
			continue;
		lt_buf_printf(&b, "%s\"%s\"", first ? "" : ",", checks[i].reason);
		first = false;
	}
	lt_buf_puts(&b, "]}");
	lt_reply_json(req, ready ? 200 : 503, &b, ready ? NULL : "Retry-After: 1\r\n");
	lt_buf_release(&b);
}

/* Spring Boot Actuator shapes, for clients of the Java reference. */
void lt_api_actuator_health(struct lt_req *req)
{
	bool ready = lt_server_is_ready(req->srv);
	char stack[512];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 4096);
	const char *st = ready ? "UP" : "DOWN";
	lt_buf_printf(&b,
		      "{\"status\":\"%s\",\"components\":{\"livenessState\":{\"status\":\"UP\"},"
		      "\"readinessState\":{\"status\":\"%s\"},\"db\":{\"status\":\"%s\"}}}",
		      st, ready ? "UP" : "OUT_OF_SERVICE",
		      (atomic_load(&req->srv->ready) & LT_READY_MIGRATED) ? "UP" : "DOWN");
	lt_reply_json(req, ready ? 200 : 503, &b, NULL);
	lt_buf_release(&b);
}

void lt_api_actuator_liveness(struct lt_req *req)
{
	static const char body[] = "{\"status\":\"UP\"}";
	lt_reply(req, 200, "application/json", NULL, body, sizeof body - 1);
}

void lt_api_actuator_readiness(struct lt_req *req)
{
	bool ready = lt_server_is_ready(req->srv);
	const char *body = ready ? "{\"status\":\"UP\"}" : "{\"status\":\"OUT_OF_SERVICE\"}";
	lt_reply(req, ready ? 200 : 503, "application/json", NULL, body, strlen(body));
}

void lt_api_metrics(struct lt_req *req)
{
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 16u << 20);
	lt_observe_collect(req->srv);
	enum lt_err e = lt_metrics_render(&req->srv->metrics, &b);
	if (!e)
		lt_spend_metrics_render_pools(req->srv, &b);
	if (!e && b.err)
		e = b.err;
	if (e)
		lt_reply_error(req, 500, "metrics too large to render");
	else
		lt_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, b.data, b.len);
	lt_buf_release(&b);
}

void lt_api_openapi(struct lt_req *req)
{
	lt_reply(req, 200, "application/json", NULL, lt_openapi_json, strlen(lt_openapi_json));
}
