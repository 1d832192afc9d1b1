/*
 * v1.c — the OpenAI-compatible API: POST /v1/chat/completions (streamed and
 * not), POST /v1/embeddings, GET /v1/models and GET /v1/models/{model}.
 *
 * Parsing and rendering: the model picks the provider (lt_registry_resolve),
 * provider/translate.c shapes the bodies, api/spend.c admits and bills,
 * api/chat.c makes the call.  Errors use OpenAI's envelope (API.md §4).
 *
 * Billing: the payer is the caller, or the org its OpenAI-Organization
 * header names.  Admission charges the buckets, the payer's token pool
 * holds prompt estimate + output cap and its money budget (if any) the
 * price of that; after the call both are settled to the real usage (a
 * stream cut by the client is billed for what it produced), and a call
 * that failed before producing anything gives everything back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/chat.h"
#include "api/handlers.h"
#include "api/spend.h"
#include "auth/identity_store.h"
#include "http/request.h"
#include "limit/headers.h"
#include "server.h"
#include "util/buf.h"
#include "util/uuid.h"

/* Errors found before admission on the spending routes still count
 * against the request limit (spend.h: lt_spend_reply_early). */
static void model_not_found(struct lt_req *req, const char *model, bool early)
{
	char msg[256];
	snprintf(msg, sizeof msg,
		 "The model `%.150s` does not exist or you do not have access to it.", model);
	if (early)
		lt_spend_reply_early_openai(req, 404, "invalid_request_error", "model_not_found",
					    "model", msg, NULL);
	else
		lt_reply_openai_error(req, 404, "invalid_request_error", "model_not_found", "model",
				      msg, NULL);
}

static void bad_request(struct lt_req *req, const char *param, const char *why)
{
	lt_spend_reply_early_openai(req, 400, "invalid_request_error", NULL,
				    param[0] ? param : NULL, why, NULL);
}

static void finish(struct lt_req *req, struct lt_chat_result *r)
{
	if (!r->replied) {
		if (r->status == 200) {
			char hdr[64 + LT_CORRELATION_MAX];
			snprintf(hdr, sizeof hdr, "x-request-id: %s\r\n", req->correlation_id);
			lt_reply(req, 200, "application/json", hdr, r->body, r->body_len);
		} else {
			lt_chat_reply_error(req, r);
		}
	}
	lt_chat_result_free(r);
}

/* Who pays: the caller, or the org named by the OpenAI-Organization
 * header (its UUID; the caller must be a member, an ADMIN may name any
 * org).  false: answered. */
static bool payer(struct lt_req *req, struct lt_spend *sp)
{
	const char *org = lt_req_header(req, "OpenAI-Organization");
	sp->user_id = req->principal.user_id;
	sp->tier = req->principal.tier[0] ? req->principal.tier : NULL;
	sp->org_id = NULL;
	sp->owner_kind = LT_OWNER_USER;
	snprintf(sp->owner_id, sizeof sp->owner_id, "%s", req->principal.user_id);
	if (!org || !org[0])
		return true;
	if (!lt_uuid_canonical(org, strlen(org), sp->owner_id)) {
		lt_spend_reply_early_openai(req, 400, "invalid_request_error",
					    "invalid_organization", NULL,
					    "OpenAI-Organization must be an org id (a UUID)", NULL);
		return false;
	}
	sp->owner_kind = LT_OWNER_ORG;
	sp->org_id = sp->owner_id;
	if (req->principal.roles & LT_ROLE_ADMIN)
		return true;
	struct sqlite3 *db;
	if (lt_dbpool_acquire(&req->srv->auth.readers, 2000, &db)) {
		lt_spend_reply_early_openai(req, 503, "server_error", NULL, NULL,
					    "storage busy; retry shortly", "Retry-After: 1\r\n");
		return false;
	}
	struct lt_membership m;
	enum lt_err e = lt_ident_member_get(db, sp->owner_id, req->principal.user_id, &m);
	lt_dbpool_release(&req->srv->auth.readers, db);
	if (e == LT_ENOTFOUND)
		lt_spend_reply_early_openai(req, 403, "permission_error", "not_org_member", NULL,
					    "you are not a member of the organization in "
					    "OpenAI-Organization",
					    NULL);
	else if (e)
		lt_spend_reply_early_openai(req, 503, "server_error", NULL, NULL, "storage error",
					    NULL);
	return e == LT_OK;
}

/* Admit and reserve (API.md §4).  false: answered (the spend holds
 * nothing). */
static bool admit(struct lt_req *req, struct lt_spend *sp)
{
	bool allowed;
	int item;
	char msg[512];
	enum lt_err e = lt_spend_admit(req, sp, &allowed, &item);
	if (e == LT_ERANGE) {
		const struct lt_admit_item *it = &sp->plan.items[item];
		snprintf(msg, sizeof msg,
			 "Request too large for %s: the %s limit is %lld, this request needs "
			 "%lld (the prompt estimate plus max_tokens). Send less or lower "
			 "max_tokens.",
			 sp->model ? sp->model : sp->provider, sp->plan.name[item],
			 (long long)it->decision.limit, (long long)it->cost);
		lt_reply_openai_error(req, 400, "invalid_request_error", "request_too_large", NULL,
				      msg, NULL);
		return false;
	}
	if (e) {
		lt_reply_openai_error(req, e == LT_ETOOBIG ? 500 : 503, "server_error", NULL, NULL,
				      e == LT_ETOOBIG ? "rate-limit key too long"
						      : "rate-limit store unavailable",
				      e == LT_ETOOBIG ? NULL : "Retry-After: 1\r\n");
		return false;
	}
	if (!allowed) {
		lt_spend_reply_limited(req, sp);
		return false;
	}
	e = lt_spend_reserve(req, sp);
	if (e == LT_ENOTFOUND || e == LT_EDENIED) {
		if (e == LT_ENOTFOUND)
			snprintf(msg, sizeof msg,
				 "You exceeded your current quota: there is no %s token quota for "
				 "%s. "
				 "Ask an administrator for a grant.",
				 sp->provider,
				 sp->owner_kind == LT_OWNER_ORG ? "the organization" : "you");
		else
			snprintf(msg, sizeof msg,
				 "You exceeded your current quota: the %s %s does not cover this "
				 "request (it holds the prompt estimate plus max_tokens).",
				 sp->owner_kind == LT_OWNER_ORG ? "organization's" : "your",
				 sp->money_refused ? "money budget" : "token quota");
		lt_reply_openai_error(req, 429, "insufficient_quota", "insufficient_quota", NULL,
				      msg, "x-should-retry: false\r\n");
		return false;
	}
	if (e) {
		lt_reply_openai_error(req, 503, "server_error", NULL, NULL,
				      "quota store unavailable", "Retry-After: 1\r\n");
		return false;
	}
	return true;
}

/* The call is over: bill what it used, or give everything back when it
 * failed before producing anything. */
static void bill(struct lt_req *req, struct lt_spend *sp, const struct lt_chat_result *r)
{
	if (r->status != 200 && !r->replied) {
		lt_spend_release(req, sp, "provider call failed", &r->usage);
		return;
	}
	lt_spend_settle(req, sp, &r->usage);
}

static void spend_init(struct lt_spend *sp, const struct lt_target *t, const char *reason)
{
	memset(sp, 0, sizeof *sp);
	snprintf(sp->provider, sizeof sp->provider, "%s", t->provider->name);
	sp->model = t->model ? t->model->name : NULL;
	sp->openai = true;
	sp->reason = sp->endpoint = reason;
}

void lt_api_v1_chat(struct lt_req *req)
{
	char param[64] = "", why[LT_TR_WHY_MAX] = "";
	struct lt_chat_req rq;
	if (!cJSON_IsObject(req->json)) {
		bad_request(req, "", "the request body must be a JSON object");
		return;
	}
	if (lt_chat_req_parse(req->json, &rq, param, sizeof param, why, sizeof why)) {
		bad_request(req, param, why);
		return;
	}
	struct lt_target t;
	if (lt_registry_resolve(req->cfg, rq.model, &t)) {
		model_not_found(req, rq.model, true);
		return;
	}
	if (t.kind != LT_MODEL_CHAT) {
		snprintf(why, sizeof why, "%.100s is an embedding model; use /v1/embeddings",
			 rq.model);
		bad_request(req, "model", why);
		return;
	}
	int64_t prompt = lt_token_estimate(NULL, rq.prompt_bytes);
	if (rq.max_tokens > t.max_output) {
		snprintf(why, sizeof why,
			 "max_tokens is too large: %lld. This model supports at most %lld "
			 "completion tokens.",
			 (long long)rq.max_tokens, (long long)t.max_output);
		bad_request(req, "max_tokens", why);
		return;
	}
	bool asked = rq.max_tokens > 0;
	if (prompt + (asked ? rq.max_tokens : 1) > t.context_window) {
		char msg[256];
		snprintf(msg, sizeof msg,
			 "This model's maximum context length is %lld tokens; the messages hold "
			 "about %lld%s.",
			 (long long)t.context_window, (long long)prompt,
			 asked ? " plus the max_tokens asked for" : "");
		lt_spend_reply_early_openai(req, 400, "invalid_request_error",
					    "context_length_exceeded", "messages", msg, NULL);
		return;
	}
	int64_t out_cap = asked ? rq.max_tokens : t.max_output;
	if (!asked && out_cap > t.context_window - prompt)
		out_cap = t.context_window - prompt;
	struct lt_spend sp;
	spend_init(&sp, &t, "chat");
	if (!payer(req, &sp))
		return;
	/* The pools hold the worst case, prompt + the output cap; the
	 * buckets are charged what OpenAI counts (prompt + an explicit
	 * max_tokens) and settled to the real use (spend.h). */
	struct lt_tokens worst = {.input = prompt, .output = out_cap};
	sp.bucket_tokens = prompt + (asked ? rq.max_tokens : 0);
	sp.pool_tokens = prompt + out_cap > 0 ? prompt + out_cap : 1;
	sp.money_micros = lt_cost_micros(&t.price, &worst);
	if (!asked) {
		/* No cap asked: the model's max_output (within what the context
		 * leaves) is the cap, sent upstream, so the reservation bounds
		 * what the call can cost. */
		const char *field =
			t.format == LT_FMT_QWEN ? "max_tokens" : "max_completion_tokens";
		if (!cJSON_AddNumberToObject(req->json, field, (double)out_cap) ||
		    lt_chat_req_parse(req->json, &rq, param, sizeof param, why, sizeof why)) {
			lt_spend_reply_early_openai(req, 500, "server_error", NULL, NULL,
						    "out of memory", NULL);
			return;
		}
	}
	char *body = NULL;
	size_t body_len = 0;
	if (lt_tr_chat_request(t.format, &rq, t.upstream_model, &body, &body_len, param,
			       sizeof param, why, sizeof why)) {
		free(body);
		bad_request(req, param, why);
		return;
	}
	char path[512];
	if (lt_tr_chat_path(t.format, t.upstream_model, rq.stream, path, sizeof path)) {
		free(body);
		bad_request(req, "model", "the model id cannot be used in an upstream path");
		return;
	}
	if (!admit(req, &sp)) {
		free(body);
		return;
	}
	struct lt_chat_call call = {
		.target = &t,
		.kind = LT_CHAT_COMPLETION,
		.endpoint = "chat",
		.path_suffix = path,
		.body = body,
		.body_len = body_len,
		.stream = rq.stream,
		.include_usage = rq.include_usage,
		.prompt_estimate = prompt,
	};
	struct lt_chat_result r;
	lt_chat_run(req, &call, &r);
	free(body);
	bill(req, &sp, &r);
	finish(req, &r);
}

void lt_api_v1_embeddings(struct lt_req *req)
{
	char param[64] = "", why[LT_TR_WHY_MAX] = "";
	if (!cJSON_IsObject(req->json)) {
		bad_request(req, "", "the request body must be a JSON object");
		return;
	}
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(req->json, "model");
	if (!cJSON_IsString(m) || !m->valuestring[0]) {
		bad_request(req, "model", "model is required");
		return;
	}
	struct lt_target t;
	if (lt_registry_resolve(req->cfg, m->valuestring, &t)) {
		model_not_found(req, m->valuestring, true);
		return;
	}
	if (t.kind != LT_MODEL_EMBEDDING) {
		snprintf(why, sizeof why, "%.100s is not an embedding model", m->valuestring);
		bad_request(req, "model", why);
		return;
	}
	char *body = NULL;
	size_t body_len = 0, input_bytes = 0;
	if (lt_tr_embeddings_request(t.format, req->json, t.upstream_model, &body, &body_len,
				     &input_bytes, param, sizeof param, why, sizeof why)) {
		free(body);
		bad_request(req, param, why);
		return;
	}
	int64_t prompt = lt_token_estimate(NULL, input_bytes);
	struct lt_spend sp;
	spend_init(&sp, &t, "embeddings");
	struct lt_tokens worst = {.input = prompt};
	sp.bucket_tokens = prompt;
	sp.pool_tokens = prompt > 0 ? prompt : 1;
	sp.money_micros = lt_cost_micros(&t.price, &worst);
	if (!payer(req, &sp) || !admit(req, &sp)) {
		free(body);
		return;
	}
	struct lt_chat_call call = {
		.target = &t,
		.kind = LT_CHAT_EMBEDDINGS,
		.endpoint = "embeddings",
		.path_suffix = "/embeddings",
		.body = body,
		.body_len = body_len,
		.prompt_estimate = prompt,
	};
	struct lt_chat_result r;
	lt_chat_run(req, &call, &r);
	free(body);
	bill(req, &sp, &r);
	finish(req, &r);
}

static void put_model(struct lt_buf *b, const char *id, const char *owner, int64_t created)
{
	lt_buf_puts(b, "{\"id\":");
	lt_buf_put_json_str(b, id, strlen(id));
	lt_buf_printf(b,
		      ",\"object\":\"model\",\"created\":%lld,\"owned_by\":", (long long)created);
	lt_buf_put_json_str(b, owner, strlen(owner));
	lt_buf_putc(b, '}');
}

void lt_api_v1_models(struct lt_req *req)
{
	char stack[4096];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 1u << 20);
	int64_t created = req->srv->start_ns / LT_NS_PER_S;
	lt_buf_puts(&b, "{\"object\":\"list\",\"data\":[");
	for (size_t i = 0; i < req->cfg->nmodels; i++) {
		if (i)
			lt_buf_putc(&b, ',');
		put_model(&b, req->cfg->models[i].name, req->cfg->models[i].provider, created);
	}
	lt_buf_puts(&b, "]}");
	char hdr[64 + LT_CORRELATION_MAX];
	snprintf(hdr, sizeof hdr, "x-request-id: %s\r\n", req->correlation_id);
	lt_reply_json(req, 200, &b, hdr);
	lt_buf_release(&b);
}

void lt_api_v1_model_get(struct lt_req *req)
{
	const char *v;
	size_t n;
	char model[LT_CFG_MODEL_NAME_MAX + LT_CFG_PROVIDER_NAME_MAX + 2];
	if (lt_req_param(req, "model", &v, &n) || n >= sizeof model) {
		model_not_found(req, "", false);
		return;
	}
	memcpy(model, v, n);
	model[n] = '\0';
	struct lt_target t;
	if (lt_registry_resolve(req->cfg, model, &t)) {
		model_not_found(req, model, false);
		return;
	}
	char stack[512];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 4096);
	put_model(&b, model, t.provider->name, req->srv->start_ns / LT_NS_PER_S);
	char hdr[64 + LT_CORRELATION_MAX];
	snprintf(hdr, sizeof hdr, "x-request-id: %s\r\n", req->correlation_id);
	lt_reply_json(req, 200, &b, hdr);
	lt_buf_release(&b);
}
