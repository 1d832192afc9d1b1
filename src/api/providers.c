/*
 * providers.c — the reference passthrough POST /api/v1/{provider}/chat and
 * the admin views of providers and prices.
 *
 * The passthrough turns {prompt} into a one-message chat completion on the
 * provider's default_model, through the same call path as /v1, and answers
 * in the reference stubs' shape: {id, provider, received, created, message}.
 * It is admitted and billed to the caller's pools like /v1 (ledger reason
 * "reference"); refusals in the Leaky Tokens API's words: 429 with
 * retryAfterSeconds, 402 "insufficient token quota".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/chat.h"
#include "auth/identity_store.h"
#include "api/handlers.h"
#include "api/spend.h"
#include "http/request.h"
#include "server.h"
#include "util/buf.h"
#include "util/timefmt.h"
#include "util/uuid.h"

enum lt_err lt_reference_call(struct lt_req *req, const struct lt_cfg_provider *p,
			      const char *prompt, const cJSON *received, int64_t max_tokens,
			      cJSON **out, struct lt_usage_record *used, int *status,
			      const char **message, int64_t *retry_after_s)
{
	static const struct lt_usage_record none;
	if (used)
		*used = none;
	*out = NULL;
	*retry_after_s = -1;
	*status = 503;
	*message = "provider has no default_model configured";
	struct lt_target t;
	if (!p->default_model[0] || lt_registry_resolve(req->cfg, p->default_model, &t))
		return LT_ECONFIG;
	/* {model, messages:[{role:user, content:prompt}]} through the /v1 path */
	cJSON *chat = cJSON_CreateObject();
	cJSON *msgs = cJSON_AddArrayToObject(chat, "messages");
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "role", "user");
	cJSON_AddStringToObject(m, "content", prompt);
	cJSON_AddItemToArray(msgs, m);
	cJSON_AddStringToObject(chat, "model", p->default_model);
	if (max_tokens > 0)
		cJSON_AddNumberToObject(
			chat, t.format == LT_FMT_QWEN ? "max_tokens" : "max_completion_tokens",
			(double)max_tokens);
	struct lt_chat_req rq;
	char param[64], why[LT_TR_WHY_MAX];
	char *body = NULL;
	size_t body_len = 0;
	char path[512];
	if (!msgs || !m || lt_chat_req_parse(chat, &rq, param, sizeof param, why, sizeof why) ||
	    lt_tr_chat_request(t.format, &rq, t.upstream_model, &body, &body_len, param,
			       sizeof param, why, sizeof why) ||
	    lt_tr_chat_path(t.format, t.upstream_model, false, path, sizeof path)) {
		free(body);
		cJSON_Delete(chat);
		*status = 400;
		*message = "invalid prompt";
		return LT_EINVAL;
	}
	struct lt_chat_call call = {
		.target = &t,
		.kind = LT_CHAT_COMPLETION,
		.endpoint = "reference",
		.path_suffix = path,
		.body = body,
		.body_len = body_len,
		.prompt_estimate = lt_token_estimate(NULL, rq.prompt_bytes),
	};
	struct lt_chat_result r;
	lt_chat_run(req, &call, &r);
	free(body);
	cJSON_Delete(chat);
	if (used)
		*used = r.usage;
	if (r.status != 200) {
		*message = r.status == 504   ? "provider call timed out"
			   : r.status == 503 ? "provider unavailable"
					     : "provider call failed";
		*status = r.status == 504 || r.status == 503 ? r.status : 502;
		*retry_after_s =
			r.retry_after_s >= 0 ? r.retry_after_s : (r.status == 503 ? 1 : -1);
		lt_chat_result_free(&r);
		return LT_EIO;
	}
	cJSON *resp = cJSON_ParseWithLength(r.body, r.body_len);
	const cJSON *choices = cJSON_GetObjectItemCaseSensitive(resp, "choices");
	const cJSON *c0 = cJSON_GetArrayItem(choices, 0);
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(c0, "message"), "content");
	cJSON *o = cJSON_CreateObject();
	char id[LT_UUID_LEN], ts[LT_ISO_LEN];
	lt_uuid_v4(id);
	lt_time_iso(lt_clock_now_ns(&req->srv->clock), ts);
	cJSON_AddStringToObject(o, "id", id);
	cJSON_AddStringToObject(o, "provider", p->name);
	cJSON_AddItemToObject(o, "received", cJSON_Duplicate(received, true));
	cJSON_AddStringToObject(o, "created", ts);
	cJSON_AddStringToObject(o, "message", cJSON_IsString(msg) ? msg->valuestring : "");
	cJSON_Delete(resp);
	lt_chat_result_free(&r);
	*status = 200;
	*message = NULL;
	*out = o;
	return LT_OK;
}

/* The provider named by the {provider} path parameter, or NULL. */
bool lt_api_provider_name(const struct lt_config *cfg, const char *s, size_t n,
			  char out[LT_CFG_PROVIDER_NAME_MAX])
{
	if (!s || n == 0 || n >= LT_CFG_PROVIDER_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] - 'A' + 'a' : s[i]);
	out[n] = '\0';
	return lt_config_provider(cfg, out) != NULL;
}

const struct lt_cfg_provider *lt_api_provider_param(struct lt_req *req)
{
	const char *pv;
	size_t pn;
	char pname[LT_CFG_PROVIDER_NAME_MAX];
	if (lt_req_param(req, "provider", &pv, &pn) ||
	    !lt_api_provider_name(req->cfg, pv, pn, pname))
		return NULL;
	return lt_config_provider(req->cfg, pname);
}

void lt_api_provider_chat(struct lt_req *req)
{
	const struct lt_cfg_provider *p = lt_api_provider_param(req);
	if (!p) {
		lt_spend_reply_early(req, 400, "unknown provider", NULL);
		return;
	}
	const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(req->json, "prompt");
	if (!cJSON_IsString(prompt) || !prompt->valuestring[0]) {
		lt_spend_reply_early(req, 400, "prompt is required", NULL);
		return;
	}
	struct lt_target t;
	if (!p->default_model[0] || lt_registry_resolve(req->cfg, p->default_model, &t)) {
		lt_spend_reply_early(req, 503, "provider has no default_model configured",
				     "Retry-After: 1\r\n");
		return;
	}
	/* Billed like /v1 (spend.h): the pool holds prompt + output cap (the
	 * cap is sent upstream), the buckets are charged the prompt, both
	 * settle to the real usage. */
	int64_t est = lt_token_estimate(prompt->valuestring, strlen(prompt->valuestring));
	int64_t cap = t.context_window - est < t.max_output ? t.context_window - est : t.max_output;
	if (cap < 1) {
		lt_spend_reply_early(req, 400, "prompt exceeds the model's context window", NULL);
		return;
	}
	struct lt_spend sp;
	memset(&sp, 0, sizeof sp);
	sp.owner_kind = LT_OWNER_USER;
	snprintf(sp.owner_id, sizeof sp.owner_id, "%s", req->principal.user_id);
	sp.user_id = req->principal.user_id;
	sp.tier = req->principal.tier[0] ? req->principal.tier : NULL;
	snprintf(sp.provider, sizeof sp.provider, "%s", p->name);
	sp.model = t.model ? t.model->name : NULL;
	struct lt_tokens worst = {.input = est, .output = cap};
	sp.bucket_tokens = est;
	sp.pool_tokens = est + cap;
	sp.money_micros = lt_cost_micros(&t.price, &worst);
	sp.reason = sp.endpoint = "reference";
	bool allowed;
	int item;
	enum lt_err e = lt_spend_admit(req, &sp, &allowed, &item);
	if (e) {
		lt_spend_reply_admit_error(req, e);
		return;
	}
	if (!allowed) {
		lt_spend_reply_limited(req, &sp);
		return;
	}
	e = lt_spend_reserve(req, &sp);
	if (e) {
		lt_reply_error(req, e == LT_EDENIED || e == LT_ENOTFOUND ? 402 : 503,
			       e == LT_EDENIED || e == LT_ENOTFOUND ? "insufficient token quota"
								    : "quota store unavailable");
		return;
	}
	cJSON *out;
	struct lt_usage_record used;
	int status;
	const char *msg;
	int64_t retry;
	e = lt_reference_call(req, p, prompt->valuestring, req->json, cap, &out, &used, &status,
			      &msg, &retry);
	if (e) {
		lt_spend_release(req, &sp, "provider call failed", &used);
		char hdr[64] = "";
		if (retry >= 0)
			snprintf(hdr, sizeof hdr, "Retry-After: %lld\r\n", (long long)retry);
		lt_reply_error_h(req, status, msg, hdr[0] ? hdr : NULL);
		return;
	}
	lt_spend_settle(req, &sp, &used);
	lt_reply_cjson(req, 200, out, NULL);
	cJSON_Delete(out);
}

void lt_api_admin_providers(struct lt_req *req)
{
	char stack[8192];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 4u << 20);
	lt_buf_puts(&b, "{\"providers\":");
	lt_registry_render(&req->srv->providers, req->cfg, &b);
	lt_buf_putc(&b, '}');
	lt_reply_json(req, 200, &b, NULL);
	lt_buf_release(&b);
}

void lt_api_admin_prices(struct lt_req *req)
{
	char stack[8192];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 4u << 20);
	lt_buf_puts(&b, "{\"unit\":\"micro-dollars per 1M tokens\",\"models\":[");
	for (size_t i = 0; i < req->cfg->nmodels; i++) {
		const struct lt_cfg_model *m = &req->cfg->models[i];
		if (i)
			lt_buf_putc(&b, ',');
		lt_buf_puts(&b, "{\"model\":");
		lt_buf_put_json_str(&b, m->name, strlen(m->name));
		lt_buf_puts(&b, ",\"provider\":");
		lt_buf_put_json_str(&b, m->provider, strlen(m->provider));
		lt_buf_puts(&b, ",\"upstream\":");
		const char *up = m->upstream[0] ? m->upstream : m->name;
		lt_buf_put_json_str(&b, up, strlen(up));
		lt_buf_printf(
			&b,
			",\"kind\":\"%s\",\"input\":%lld,\"cachedInput\":%lld,\"output\":%lld,"
			"\"contextWindow\":%lld,\"maxOutput\":%lld}",
			m->kind == LT_MODEL_EMBEDDING ? "embedding" : "chat",
			(long long)m->price_input, (long long)m->price_cached_input,
			(long long)m->price_output, (long long)m->context_window,
			(long long)m->max_output);
	}
	lt_buf_puts(&b, "]}");
	lt_reply_json(req, 200, &b, NULL);
	lt_buf_release(&b);
}

struct audit_op {
	int64_t at_ms;
	const char *actor, *action, *target;
};

static enum lt_err do_audit(struct sqlite3 *db, void *arg)
{
	struct audit_op *op = arg;
	return lt_ident_audit(db, op->at_ms, op->actor, op->action, op->target, NULL);
}

void lt_api_admin_provider_reset(struct lt_req *req)
{
	const struct lt_cfg_provider *p = lt_api_provider_param(req);
	struct lt_provider_rt *rt = p ? lt_registry_provider(&req->srv->providers, p->name) : NULL;
	if (!rt) {
		lt_reply_error(req, 404, "provider not found");
		return;
	}
	pthread_mutex_lock(&rt->lock);
	uint64_t opens = rt->breaker.opens;
	lt_breaker_init(&rt->breaker);
	rt->breaker.opens = opens;
	pthread_mutex_unlock(&rt->lock);
	lt_log_info(&req->srv->log, "provider %s: circuit breaker reset by %s", p->name,
		    req->principal.user_id);
	struct audit_op op = {lt_clock_now_ns(&req->srv->clock) / LT_NS_PER_MS,
			      req->principal.user_id, "provider.circuit.reset", p->name};
	enum lt_err e = lt_writer_run(&req->srv->writer, do_audit, &op);
	if (e) {
		lt_reply_error(req, lt_err_http_status(e), "could not record the audit event");
		return;
	}
	lt_reply(req, 204, NULL, NULL, NULL, 0);
}
