/*
 * tokens.c — the Leaky Tokens API's token routes (API.md §2): status, quota
 * reads, consume; and the admin quota writes (§7): grant and adjust.
 *
 * Consume, in the contract's order: validate → admit (every bucket that
 * applies, one LMDB transaction, limit/bucket_store.h) → reserve quota
 * (the org pool when orgId is given, else the user's; one writer
 * operation, quota/pool_store.h) → call the provider (the reference call)
 * → settle.  A later failure undoes what the earlier steps charged: the
 * reservation is released and the buckets refunded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/chat.h"
#include "api/handlers.h"
#include "api/spend.h"
#include "auth/identity_store.h"
#include "http/request.h"
#include "limit/bucket_store.h"
#include "limit/headers.h"
#include "limit/policy.h"
#include "quota/pool_store.h"
#include "server.h"
#include "util/buf.h"
#include "util/json.h"
#include "util/timefmt.h"
#include "util/uuid.h"
#include "version.h"

#define READER_WAIT_MS 2000
#define TOKENS_MAX 1000000
#define PROMPT_MAX 32768

static int64_t now_ms(const struct lt_req *req)
{
	return lt_clock_now_ns(&req->srv->clock) / LT_NS_PER_MS;
}

static void put_time(struct lt_buf *b, const char *name, int64_t ms)
{
	char ts[LT_ISO_LEN];
	lt_time_iso(ms * LT_NS_PER_MS, ts);
	lt_buf_printf(b, ",\"%s\":\"%s\"", name, ts);
}

void lt_api_tokens_status(struct lt_req *req)
{
	char stack[256];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 1024);
	lt_buf_puts(&b, "{\"service\":\"token-service\",\"status\":\"ok\"");
	put_time(&b, "timestamp", now_ms(req));
	lt_buf_printf(&b, ",\"version\":\"%s\"}", LT_VERSION);
	lt_reply_json(req, 200, &b, NULL);
	lt_buf_release(&b);
}

/* ---- shared checks ---- */

static bool is_admin(const struct lt_req *req)
{
	return (req->principal.roles & LT_ROLE_ADMIN) != 0;
}

/* May the principal act for user_id (and org_id when set)?  Answers 403
 * (or 503) itself when not. */
/* An error answer; `early`: on consume, before its admission, so the
 * request still counts against the request limit (spend.h). */
static void answer(struct lt_req *req, bool early, int status, const char *msg, const char *hdr)
{
	if (early)
		lt_spend_reply_early(req, status, msg, hdr);
	else
		lt_reply_error_h(req, status, msg, hdr);
}

static bool may_act(struct lt_req *req, const char *user_id, const char *org_id, bool early)
{
	if (is_admin(req))
		return true;
	if (user_id && strcmp(user_id, req->principal.user_id) != 0) {
		answer(req, early, 403, "not allowed to act for another user", NULL);
		return false;
	}
	if (!org_id)
		return true;
	struct sqlite3 *db;
	if (lt_dbpool_acquire(&req->srv->auth.readers, READER_WAIT_MS, &db)) {
		answer(req, early, 503, "storage busy; retry shortly", "Retry-After: 1\r\n");
		return false;
	}
	struct lt_membership m;
	enum lt_err e = lt_ident_member_get(db, org_id, req->principal.user_id, &m);
	lt_dbpool_release(&req->srv->auth.readers, db);
	if (e == LT_OK)
		return true;
	if (e == LT_ENOTFOUND)
		answer(req, early, 403, "not a member of this org", NULL);
	else
		answer(req, early, 503, "storage error", NULL);
	return false;
}

/* The tier of user `id` into out; answers 404/503 itself when it cannot. */
static bool user_tier(struct lt_req *req, const char *id, char out[LT_TIER_MAX + 1])
{
	struct sqlite3 *db;
	if (lt_dbpool_acquire(&req->srv->auth.readers, READER_WAIT_MS, &db)) {
		lt_spend_reply_early(req, 503, "storage busy; retry shortly", "Retry-After: 1\r\n");
		return false;
	}
	struct lt_user u;
	enum lt_err e = lt_ident_user_by_id(db, id, &u);
	lt_dbpool_release(&req->srv->auth.readers, db);
	if (e) {
		lt_spend_reply_early(req, e == LT_ENOTFOUND ? 404 : 503,
				     e == LT_ENOTFOUND ? "user not found" : "storage error", NULL);
		return false;
	}
	lt_auth_tier(&req->srv->auth.tiers, &u, out);
	return true;
}

/* The owner of a pool exists (admin writes must not create orphans). */
static bool owner_exists(struct lt_req *req, const struct lt_pool_key *k)
{
	struct sqlite3 *db;
	if (lt_dbpool_acquire(&req->srv->auth.readers, READER_WAIT_MS, &db)) {
		lt_reply_error_h(req, 503, "storage busy; retry shortly", "Retry-After: 1\r\n");
		return false;
	}
	enum lt_err e;
	if (k->kind == LT_OWNER_ORG) {
		struct lt_org o;
		e = lt_ident_org_by_id(db, k->owner_id, &o);
	} else {
		struct lt_user u;
		e = lt_ident_user_by_id(db, k->owner_id, &u);
	}
	lt_dbpool_release(&req->srv->auth.readers, db);
	if (e == LT_ENOTFOUND)
		lt_reply_error(req, 404,
			       k->kind == LT_OWNER_ORG ? "org not found" : "user not found");
	else if (e)
		lt_reply_error(req, 503, "storage error");
	return e == LT_OK;
}

/* ---- quota reads ---- */

static void put_pool(struct lt_buf *b, const char *id_field, const struct lt_pool_row *row,
		     int64_t now)
{
	const struct lt_pool *p = &row->pool;
	lt_buf_printf(b, "{\"%s\":\"%s\",\"provider\":", id_field, row->key.owner_id);
	lt_buf_put_json_str(b, row->key.provider, strlen(row->key.provider));
	lt_buf_printf(b,
		      ",\"totalTokens\":%lld,\"remainingTokens\":%lld,\"reservedTokens\":%lld,"
		      "\"window\":\"%s\"",
		      (long long)p->total, (long long)lt_pool_available(p), (long long)p->reserved,
		      lt_window_name(p->window));
	int64_t end = lt_window_end(p->window, now);
	if (end >= 0)
		put_time(b, "resetTime", end);
	else
		lt_buf_puts(b, ",\"resetTime\":null");
	put_time(b, "updatedAt", row->updated_ms);
	lt_buf_putc(b, '}');
}

static void reply_pool(struct lt_req *req, int status, const char *id_field,
		       const struct lt_pool_row *row)
{
	char stack[1024];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 8192);
	put_pool(&b, id_field, row, now_ms(req));
	lt_reply_json(req, status, &b, NULL);
	lt_buf_release(&b);
}

static void quota_get(struct lt_req *req, bool org)
{
	const char *id_name = org ? "orgId" : "userId";
	char raw[64], id[40], prov_raw[64], prov[32];
	enum lt_err e = lt_req_query(req, id_name, raw, sizeof raw);
	if (e == LT_ENOTFOUND || (e == LT_OK && !raw[0])) {
		lt_reply_error(req, 400, org ? "orgId is required" : "userId is required");
		return;
	}
	e = lt_req_query(req, "provider", prov_raw, sizeof prov_raw);
	if (e == LT_ENOTFOUND || (e == LT_OK && !prov_raw[0])) {
		lt_reply_error(req, 400, "provider is required");
		return;
	}
	if (!lt_uuid_canonical(raw, strlen(raw), id)) {
		lt_reply_error(req, 400, org ? "invalid orgId" : "invalid userId");
		return;
	}
	if (e || !lt_api_provider_name(req->cfg, prov_raw, strlen(prov_raw), prov)) {
		lt_reply_error(req, 400, "unknown provider");
		return;
	}
	if (!may_act(req, org ? NULL : id, org ? id : NULL, false))
		return;
	struct lt_pool_key key = {org ? LT_OWNER_ORG : LT_OWNER_USER, "", ""};
	memcpy(key.owner_id, id, sizeof key.owner_id);
	memcpy(key.provider, prov, sizeof key.provider);
	struct sqlite3 *db;
	if (lt_dbpool_acquire(&req->srv->auth.readers, READER_WAIT_MS, &db)) {
		lt_reply_error_h(req, 503, "storage busy; retry shortly", "Retry-After: 1\r\n");
		return;
	}
	struct lt_pool_row row;
	e = lt_pool_store_get(db, &key, now_ms(req), &row);
	lt_dbpool_release(&req->srv->auth.readers, db);
	if (e == LT_ENOTFOUND) {
		lt_reply_error(req, 404, "quota not found");
		return;
	}
	if (e) {
		lt_reply_error(req, 503, "storage error");
		return;
	}
	reply_pool(req, 200, id_name, &row);
}

void lt_api_tokens_quota(struct lt_req *req)
{
	quota_get(req, false);
}

void lt_api_tokens_quota_org(struct lt_req *req)
{
	quota_get(req, true);
}

/* ---- writer operations ---- */

/* The change and its audit row, in one transaction. */
static enum lt_err op_change(struct sqlite3 *db, void *arg)
{
	struct lt_pool_change *c = arg;
	enum lt_err e = lt_pool_store_change(db, c);
	if (e)
		return e;
	char stack[1024];
	struct lt_buf d;
	lt_buf_init(&d, stack, sizeof stack, 4096);
	lt_buf_puts(&d, "{\"provider\":");
	lt_buf_put_json_str(&d, c->key.provider, strlen(c->key.provider));
	lt_buf_printf(&d, ",\"ownerKind\":\"%s\",\"%s\":%lld,\"reason\":",
		      c->key.kind == LT_OWNER_ORG ? "org" : "user", c->adjust ? "delta" : "tokens",
		      (long long)c->amount);
	lt_buf_put_json_str(&d, c->note.reason, strlen(c->note.reason));
	lt_buf_putc(&d, '}');
	e = d.err ? d.err
		  : lt_ident_audit(db, c->now_ms, c->note.actor,
				   c->adjust ? "quota.adjusted" : "quota.granted", c->key.owner_id,
				   d.data);
	lt_buf_release(&d);
	return e;
}

/* ---- consume ---- */

struct consume {
	char user_id[40], org_id[40], provider[32];
	bool has_org;
	int64_t tokens;
	const char *prompt;
};

/* Validation in the reference's order and words.  false: answered. */
static bool consume_parse(struct lt_req *req, struct consume *c)
{
	const cJSON *j = req->json;
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "userId");
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "provider");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "tokens");
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "orgId");
	const cJSON *pr = cJSON_GetObjectItemCaseSensitive(j, "prompt");
	if (!cJSON_IsString(u) || !u->valuestring[0]) {
		lt_spend_reply_early(req, 400, "userId is required", NULL);
		return false;
	}
	if (!cJSON_IsString(p) || !p->valuestring[0]) {
		lt_spend_reply_early(req, 400, "provider is required", NULL);
		return false;
	}
	if (!cJSON_IsNumber(t) || t->valuedouble < 1 ||
	    t->valuedouble != (double)(int64_t)t->valuedouble) {
		lt_spend_reply_early(req, 400, "tokens must be positive", NULL);
		return false;
	}
	if (t->valuedouble > TOKENS_MAX) {
		lt_spend_reply_early(req, 400, "tokens must be at most 1000000", NULL);
		return false;
	}
	c->tokens = (int64_t)t->valuedouble;
	if (!lt_uuid_canonical(u->valuestring, strlen(u->valuestring), c->user_id)) {
		lt_spend_reply_early(req, 400, "invalid userId", NULL);
		return false;
	}
	c->has_org = o && !cJSON_IsNull(o);
	if (c->has_org && (!cJSON_IsString(o) ||
			   !lt_uuid_canonical(o->valuestring, strlen(o->valuestring), c->org_id))) {
		lt_spend_reply_early(req, 400, "invalid orgId", NULL);
		return false;
	}
	if (!lt_api_provider_name(req->cfg, p->valuestring, strlen(p->valuestring), c->provider)) {
		lt_spend_reply_early(req, 400, "unknown provider", NULL);
		return false;
	}
	c->prompt = NULL;
	if (pr && !cJSON_IsNull(pr)) {
		if (!cJSON_IsString(pr) || strlen(pr->valuestring) > PROMPT_MAX) {
			lt_spend_reply_early(
				req, 400, "prompt must be a string of at most 32768 bytes", NULL);
			return false;
		}
		c->prompt = pr->valuestring;
	}
	return true;
}

/* The token bucket's decision (the consume response reports it). */
static const struct lt_bucket_decision *token_decision(const struct lt_limit_plan *plan)
{
	for (size_t i = 0; i < plan->n; i++)
		if (plan->scope[i] == LT_SCOPE_TOKENS)
			return &plan->items[i].decision;
	return plan->n ? &plan->items[0].decision : NULL;
}

static void consume_body(struct lt_buf *b, bool allowed, const struct lt_limit_plan *plan,
			 int64_t now, int64_t wait_s)
{
	const struct lt_bucket_decision *d = token_decision(plan);
	lt_buf_printf(b,
		      "{\"allowed\":%s,\"capacity\":%lld,\"used\":%lld,\"remaining\":%lld,"
		      "\"waitSeconds\":%lld",
		      allowed ? "true" : "false", (long long)(d ? d->limit : 0),
		      (long long)(d ? d->used : 0), (long long)(d ? d->remaining : 0),
		      (long long)wait_s);
	put_time(b, "timestamp", now);
}

void lt_api_tokens_consume(struct lt_req *req)
{
	struct consume c;
	if (!consume_parse(req, &c) || !may_act(req, c.user_id, c.has_org ? c.org_id : NULL, true))
		return;

	/* admit */
	char tier_buf[LT_TIER_MAX + 1];
	const char *tier = req->principal.tier[0] ? req->principal.tier : NULL;
	if (strcmp(c.user_id, req->principal.user_id) != 0) {
		/* an admin spending for someone: that user's bucket and tier */
		if (!user_tier(req, c.user_id, tier_buf))
			return;
		tier = tier_buf;
	}
	struct lt_spend sp;
	memset(&sp, 0, sizeof sp);
	sp.owner_kind = c.has_org ? LT_OWNER_ORG : LT_OWNER_USER;
	memcpy(sp.owner_id, c.has_org ? c.org_id : c.user_id, sizeof sp.owner_id);
	sp.user_id = c.user_id;
	sp.tier = tier;
	sp.org_id = c.has_org ? c.org_id : NULL;
	memcpy(sp.provider, c.provider, sizeof sp.provider);
	sp.bucket_tokens = sp.pool_tokens = c.tokens;
	sp.reason = sp.endpoint = "consume";
	bool allowed;
	int item;
	enum lt_err e = lt_spend_admit(req, &sp, &allowed, &item);
	if (e) {
		lt_spend_reply_admit_error(req, e);
		return;
	}
	int64_t now_ms = sp.now_ns / LT_NS_PER_MS;
	char body_stack[2048];
	struct lt_buf body;
	lt_buf_init(&body, body_stack, sizeof body_stack, 1u << 20);
	if (!allowed) {
		enum lt_limit_scope sc;
		int64_t retry;
		lt_spend_refusal(&sp, &sc, &retry);
		int64_t wait = lt_ceil_seconds(retry);
		consume_body(&body, false, &sp.plan, now_ms, wait);
		lt_buf_printf(&body, ",\"retryAfterSeconds\":%lld}", (long long)wait);
		lt_reply_json(req, 429, &body, NULL);
		goto out;
	}

	/* reserve */
	e = lt_spend_reserve(req, &sp);
	if (e == LT_EDENIED || e == LT_ENOTFOUND) {
		lt_reply_error(req, 402, "insufficient token quota");
		goto out;
	}
	if (e) {
		lt_reply_error(req, lt_err_http_status(e), "quota store unavailable");
		goto out;
	}

	/* call the provider */
	const struct lt_cfg_provider *p = lt_config_provider(req->cfg, c.provider);
	char prompt[96];
	snprintf(prompt, sizeof prompt, "Consume %lld tokens.", (long long)c.tokens);
	cJSON *resp = NULL;
	int status;
	const char *msg;
	int64_t retry;
	struct lt_usage_record used;
	if (lt_reference_call(req, p, c.prompt ? c.prompt : prompt, req->json, 0, &resp, &used,
			      &status, &msg, &retry)) {
		lt_spend_release(req, &sp, "provider call failed", &used);
		/* 503 (circuit open, bulkhead full) and 504 keep their status and
		 * Retry-After (API.md §0); anything else is 502. */
		char hdr[64] = "";
		if (retry >= 0)
			snprintf(hdr, sizeof hdr, "Retry-After: %lld\r\n", (long long)retry);
		lt_reply_error_h(req, status == 503 || status == 504 ? status : 502,
				 status == 503 || status == 504 ? msg : "provider call failed",
				 hdr[0] ? hdr : NULL);
		goto out;
	}

	/* settle exactly what was asked: consume spends `tokens`, whatever
	 * the reference call itself used */
	used.tokens = (struct lt_tokens){.input = c.tokens};
	used.cost_micros = 0;
	used.tokens_estimated = false;
	lt_spend_settle(req, &sp, &used);
	consume_body(&body, true, &sp.plan, now_ms, 0);
	char *pr = cJSON_PrintUnformatted(resp);
	lt_buf_puts(&body, ",\"providerResponse\":");
	lt_buf_puts(&body, pr ? pr : "null");
	lt_buf_putc(&body, '}');
	cJSON_free(pr);
	cJSON_Delete(resp);
	lt_reply_json(req, 200, &body, NULL);
out:
	lt_buf_release(&body);
}

/* ---- admin: grant and adjust ---- */

static void quota_change(struct lt_req *req, bool adjust)
{
	const cJSON *j = req->json;
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "userId");
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "orgId");
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "provider");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, adjust ? "delta" : "tokens");
	const cJSON *w = cJSON_GetObjectItemCaseSensitive(j, "window");
	const cJSON *cap = cJSON_GetObjectItemCaseSensitive(j, "windowCap");
	const cJSON *reason = cJSON_GetObjectItemCaseSensitive(j, "reason");
	struct lt_pool_change ch;
	memset(&ch, 0, sizeof ch);
	bool has_u = u && !cJSON_IsNull(u), has_o = o && !cJSON_IsNull(o);
	if (has_u == has_o) {
		lt_reply_error(req, 400, "exactly one of userId and orgId is required");
		return;
	}
	const cJSON *id = has_u ? u : o;
	if (!cJSON_IsString(id) ||
	    !lt_uuid_canonical(id->valuestring, strlen(id->valuestring), ch.key.owner_id)) {
		lt_reply_error(req, 400, has_u ? "invalid userId" : "invalid orgId");
		return;
	}
	ch.key.kind = has_u ? LT_OWNER_USER : LT_OWNER_ORG;
	if (!cJSON_IsString(p) || !p->valuestring[0]) {
		lt_reply_error(req, 400, "provider is required");
		return;
	}
	if (!strcmp(p->valuestring, LT_POOL_MONEY))
		memcpy(ch.key.provider, LT_POOL_MONEY, sizeof LT_POOL_MONEY);
	else if (!lt_api_provider_name(req->cfg, p->valuestring, strlen(p->valuestring),
				       ch.key.provider)) {
		lt_reply_error(req, 400, "unknown provider");
		return;
	}
	double lim = 1e15;
	if (!cJSON_IsNumber(t) || t->valuedouble != (double)(int64_t)t->valuedouble ||
	    t->valuedouble > lim || t->valuedouble < -lim ||
	    (adjust ? t->valuedouble == 0 : t->valuedouble < 1)) {
		lt_reply_error(req, 400,
			       adjust ? "delta must be a non-zero whole number"
				      : "tokens must be positive");
		return;
	}
	if (!cJSON_IsString(reason) || !reason->valuestring[0] ||
	    strlen(reason->valuestring) > 500) {
		lt_reply_error(req, 400, "reason is required (at most 500 characters)");
		return;
	}
	ch.window = LT_WINDOW_NONE;
	ch.window_cap = -1;
	if (w && !cJSON_IsNull(w)) {
		if (!cJSON_IsString(w) || lt_window_parse(w->valuestring, &ch.window)) {
			lt_reply_error(req, 400, "window must be none, hour, day or month");
			return;
		}
		ch.set_window = true;
	}
	if (cap && !cJSON_IsNull(cap)) {
		if (!cJSON_IsNumber(cap) || cap->valuedouble < -1 || cap->valuedouble > lim ||
		    cap->valuedouble != (double)(int64_t)cap->valuedouble) {
			lt_reply_error(req, 400, "windowCap must be -1 (none) or a whole number");
			return;
		}
		ch.window_cap = (int64_t)cap->valuedouble;
		ch.set_window = true;
	}
	if (!owner_exists(req, &ch.key))
		return;
	ch.adjust = adjust;
	ch.amount = (int64_t)t->valuedouble;
	ch.now_ms = now_ms(req);
	ch.note.actor = req->principal.user_id;
	ch.note.reason = reason->valuestring;
	ch.note.correlation_id = req->correlation_id;
	enum lt_err e = lt_writer_run(&req->srv->writer, op_change, &ch);
	if (e == LT_ERANGE) {
		lt_reply_error(req, 409, "adjustment would make the pool negative");
		return;
	}
	if (e) {
		lt_reply_error(req, lt_err_http_status(e), "quota store error");
		return;
	}
	reply_pool(req, 200, has_u ? "userId" : "orgId", &ch.out);
}

void lt_api_admin_quota_grant(struct lt_req *req)
{
	quota_change(req, false);
}

void lt_api_admin_quota_adjust(struct lt_req *req)
{
	quota_change(req, true);
}
