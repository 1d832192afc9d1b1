/*
 * features.c — the admin API of the [features] switches (API.md §7):
 * GET /admin/v1/features and PUT /admin/v1/features/{feature}.
 *
 * Parsing, rendering and the audit row only; the overrides themselves live
 * in struct lt_server (server.c), which installs a new configuration
 * snapshot for every change: requests that start afterwards see it through
 * req->cfg, requests under way keep the snapshot they started with.
 *
 * A change and its audit row ("feature.set") happen in one writer closure,
 * so changes are applied and recorded in the same order and the row's
 * "previous" is the value the change replaced.  If the row cannot be
 * written the change is undone: an override is never in effect without its
 * audit row (API.md §7, "every admin write is recorded").
 *
 * Ownership: nothing here outlives the request.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "api/handlers.h"
#include "auth/identity_store.h"
#include "http/request.h"
#include "server.h"
#include "util/buf.h"

static const char *json_bool(bool b)
{
	return b ? "true" : "false";
}

static const char *json_tristate(int v)
{
	return v < 0 ? "null" : json_bool(v == 1);
}

static void render_feature(struct lt_buf *b, enum lt_feature f, const struct lt_feature_state *s)
{
	lt_buf_printf(b, "{\"name\":\"%s\",\"enabled\":%s,\"configured\":%s,\"override\":%s}",
		      lt_feature_name(f), json_bool(s->effective), json_bool(s->configured),
		      json_tristate(s->override));
}

void lt_api_admin_features_list(struct lt_req *req)
{
	char stack[1024];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 64u << 10);
	lt_buf_puts(&b, "{\"features\":[");
	for (unsigned i = 0; i < LT_FEATURE_COUNT; i++) {
		struct lt_feature_state s;
		enum lt_err e = lt_server_feature_get(req->srv, (enum lt_feature)i, &s);
		if (e) {
			lt_buf_release(&b);
			lt_reply_error(req, lt_err_http_status(e), "could not read the features");
			return;
		}
		if (i)
			lt_buf_putc(&b, ',');
		render_feature(&b, (enum lt_feature)i, &s);
	}
	lt_buf_puts(&b, "]}");
	lt_reply_json(req, 200, &b, NULL);
	lt_buf_release(&b);
}

struct feature_change {
	struct lt_server *srv;
	enum lt_feature f;
	int value; /* -1 clear, 0 off, 1 on */
	int64_t at_ms;
	const char *actor;
	struct lt_feature_state before, after;
	bool applied; /* the change is in effect (undo it if not committed) */
	bool audited; /* the closure got as far as writing the audit row */
};

/* Runs on the writer thread: the change, then its audit row; the change is
 * undone if the row fails. */
static enum lt_err op_feature_set(struct sqlite3 *db, void *arg)
{
	struct feature_change *c = arg;
	enum lt_err e = lt_server_feature_swap(c->srv, c->f, c->value, &c->before, &c->after);
	if (e)
		return e;
	c->applied = true;
	c->audited = true;
	const char *name = lt_feature_name(c->f);
	char detail[160];
	snprintf(detail, sizeof detail,
		 "{\"name\":\"%s\",\"enabled\":%s,\"effective\":%s,\"previous\":%s}", name,
		 json_tristate(c->value), json_bool(c->after.effective),
		 json_bool(c->before.effective));
	e = lt_ident_audit(db, c->at_ms, c->actor, "feature.set", name, detail);
	if (e) {
		(void)lt_server_feature_swap(c->srv, c->f, c->before.override, NULL, NULL);
		c->applied = false;
	}
	return e;
}

void lt_api_admin_feature_set(struct lt_req *req)
{
	const char *pv;
	size_t pn;
	enum lt_feature f;
	if (lt_req_param(req, "feature", &pv, &pn) || lt_feature_parse(pv, pn, &f)) {
		lt_reply_error(req, 404, "unknown feature");
		return;
	}
	const cJSON *en = cJSON_IsObject(req->json)
				  ? cJSON_GetObjectItemCaseSensitive(req->json, "enabled")
				  : NULL;
	if (!en || !(cJSON_IsBool(en) || cJSON_IsNull(en))) {
		lt_reply_error(req, 400, "enabled must be true, false or null");
		return;
	}
	struct feature_change c = {
		.srv = req->srv,
		.f = f,
		.value = cJSON_IsNull(en) ? -1 : (cJSON_IsTrue(en) ? 1 : 0),
		.at_ms = lt_clock_now_ns(&req->srv->clock) / LT_NS_PER_MS,
		.actor = req->principal.user_id,
	};
	enum lt_err e = lt_writer_run(&req->srv->writer, op_feature_set, &c);
	if (e && c.applied) {
		/* The closure ran but its commit failed: undo here.  (A change
		 * another admin made in between would be overwritten; both
		 * answers are errors then.) */
		(void)lt_server_feature_swap(req->srv, f, c.before.override, NULL, NULL);
	}
	/* API.md §0: every log line of a request carries its correlation id. */
	char store[2 * LT_CORRELATION_MAX + 96];
	struct lt_buf extra;
	lt_buf_init(&extra, store, sizeof store, sizeof store - 1);
	lt_buf_puts(&extra, ",\"correlationId\":");
	lt_buf_put_json_str(&extra, req->correlation_id, strlen(req->correlation_id));
	lt_buf_printf(&extra, ",\"feature\":\"%s\"", lt_feature_name(f));
	const char *x = extra.err ? NULL : extra.data;
	if (e) {
		lt_log_msg(&req->srv->log, LT_LOG_WARN, x, "feature %s: not changed: %s",
			   lt_feature_name(f), lt_strerror(e));
		lt_buf_release(&extra);
		int status = lt_err_http_status(e);
		lt_reply_error_h(req, status,
				 e == LT_ENOMEM && !c.audited ? "could not change the feature"
							      : "could not record the audit event",
				 status == 503 ? "Retry-After: 1\r\n" : NULL);
		return;
	}
	if (c.value < 0)
		lt_log_msg(&req->srv->log, LT_LOG_INFO, x,
			   "feature %s: override cleared by %s, back to the configured %s (was %s)",
			   lt_feature_name(f), c.actor, c.after.effective ? "on" : "off",
			   c.before.effective ? "on" : "off");
	else
		lt_log_msg(&req->srv->log, LT_LOG_INFO, x,
			   "feature %s: turned %s by %s (was %s, configured %s)",
			   lt_feature_name(f), c.after.effective ? "on" : "off", c.actor,
			   c.before.effective ? "on" : "off", c.after.configured ? "on" : "off");
	lt_buf_release(&extra);
	char stack[256];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 4096);
	render_feature(&b, f, &c.after);
	lt_reply_json(req, 200, &b, NULL);
	lt_buf_release(&b);
}
