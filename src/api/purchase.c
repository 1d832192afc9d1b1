/*
 * purchase.c — token purchases (API.md §2) and the admin API of their
 * sagas (§7): POST /api/v1/tokens/purchase, GET /api/v1/tokens/purchase/
 * {sagaId}, GET /admin/v1/sagas[?status=&limit=], GET /admin/v1/sagas/{id},
 * POST /admin/v1/sagas/{id}/retry and .../compensate.
 *
 * Parsing, authorization and rendering only: the saga itself is
 * saga/machine.h (what happens), saga/saga_store.h (leaky.db) and
 * saga/runner.h (the workers that run it).
 *
 * A purchase: feature saga-purchases (503 when off) → Idempotency-Key
 * (trimmed; at most LT_SAGA_KEY_CHARS characters, else 400) → body → who may buy
 * for whom (a USER for itself and its orgs, an ADMIN for any existing user
 * and org) → insert-or-get the saga in one writer operation (a key the user
 * already used with another payload is 409; with the same payload it names
 * the same saga and nothing new happens) → queue it and wait up to [saga]
 * wait_ms for a final state → 202 {sagaId, status, createdAt} with the
 * state reached.  The saga goes on in the background either way.
 *
 * Admin retry and compensate set the saga's marks (saga_store.h) with an
 * audit row in one writer operation, queue it now and wait like a
 * purchase; a final saga is 409 (so is compensating a captured payment).
 *
 * Ownership: nothing here outlives the request.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/chat.h"
#include "api/handlers.h"
#include "auth/identity_store.h"
#include "http/request.h"
#include "saga/runner.h"
#include "saga/saga_json.h"
#include "saga/saga_store.h"
#include "server.h"
#include "store/dbpool.h"
#include "util/buf.h"
#include "util/timefmt.h"
#include "util/uuid.h"

#define READER_WAIT_MS 2000
#define LIST_DEFAULT 50
#define KEY_TOO_LONG "idempotency key too long"
#define KEY_REUSED "Idempotency key reuse with different payload"

static int64_t now_ms(const struct lt_req *req)
{
	return lt_clock_now_ns(&req->srv->clock) / LT_NS_PER_MS;
}

static bool is_admin(const struct lt_req *req)
{
	return (req->principal.roles & LT_ROLE_ADMIN) != 0;
}

static bool reader(struct lt_req *req, struct sqlite3 **db)
{
	if (lt_dbpool_acquire(&req->srv->auth.readers, READER_WAIT_MS, db) == LT_OK)
		return true;
	lt_reply_error_h(req, 503, "storage busy; retry shortly", "Retry-After: 1\r\n");
	return false;
}

static void reader_done(struct lt_req *req, struct sqlite3 *db)
{
	lt_dbpool_release(&req->srv->auth.readers, db);
}

/* The {sagaId} path parameter; answers 400 itself when it is not an id. */
static bool saga_param(struct lt_req *req, char out[LT_UUID_LEN])
{
	const char *v = NULL;
	size_t n = 0;
	if (lt_req_param(req, "sagaId", &v, &n) == LT_OK && lt_uuid_canonical(v, n, out))
		return true;
	lt_reply_error(req, 400, "invalid sagaId");
	return false;
}

/* ---- rendering ---- */

static void put_time(struct lt_buf *b, const char *name, int64_t ms)
{
	char ts[LT_ISO_LEN];
	lt_time_iso(ms * LT_NS_PER_MS, ts);
	lt_buf_printf(b, ",\"%s\":\"%s\"", name, ts);
}

/* The saga with its steps, read on db, answered with `status`. */
static void reply_saga(struct lt_req *req, struct sqlite3 *db, const struct lt_saga *s, int status,
		       bool admin)
{
	char stack[2048];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 1u << 20);
	enum lt_err e = lt_saga_json(&b, db, s, admin);
	if (e && !b.err)
		lt_reply_error(req, 503, "storage error");
	else
		lt_reply_json(req, status, &b, NULL);
	lt_buf_release(&b);
}

/* Read saga id and answer it (404 when unknown or, for a non-admin view,
 * not the caller's). */
static void answer_saga(struct lt_req *req, const char *id, int status, bool admin)
{
	struct sqlite3 *db;
	if (!reader(req, &db))
		return;
	struct lt_saga s;
	enum lt_err e = lt_saga_store_get(db, id, &s);
	if (e == LT_OK && !admin && !is_admin(req) && strcmp(s.user_id, req->principal.user_id))
		e = LT_ENOTFOUND; /* another user's: not theirs to know about */
	if (e == LT_ENOTFOUND)
		lt_reply_error(req, 404, admin ? "saga not found" : "purchase not found");
	else if (e)
		lt_reply_error(req, 503, "storage error");
	else
		reply_saga(req, db, &s, status, admin);
	reader_done(req, db);
}

/* ---- POST /api/v1/tokens/purchase ---- */

struct purchase {
	struct lt_saga s; /* the fields of the request */
	int64_t now_ms;
	bool created;
};

static enum lt_err op_create(struct sqlite3 *db, void *arg)
{
	struct purchase *p = arg;
	return lt_saga_store_create(db, &p->s, p->now_ms, &p->created);
}

/* The trimmed Idempotency-Key into s; false when answered (too long). */
static bool idempotency_key(struct lt_req *req, struct lt_saga *s)
{
	const char *h = lt_req_header(req, "Idempotency-Key");
	s->has_key = false;
	if (!h)
		return true;
	while (*h == ' ' || *h == '\t')
		h++;
	size_t n = strlen(h), chars = 0;
	while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
		n--;
	for (size_t i = 0; i < n; i++) /* UTF-8: count all but continuation bytes */
		chars += ((unsigned char)h[i] & 0xC0) != 0x80;
	if (chars > LT_SAGA_KEY_CHARS || n > LT_SAGA_KEY_MAX) {
		lt_reply_error(req, 400, KEY_TOO_LONG);
		return false;
	}
	if (n) {
		memcpy(s->idem_key, h, n);
		s->idem_key[n] = '\0';
		s->has_key = true;
	}
	return true;
}

/* The body into s; false when answered. */
static bool purchase_parse(struct lt_req *req, struct lt_saga *s)
{
	const cJSON *j = req->json;
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "userId");
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "orgId");
	const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "provider");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "tokens");
	if (!cJSON_IsObject(j)) {
		lt_reply_error(req, 400, "a JSON object is required");
		return false;
	}
	if (!cJSON_IsString(u) || !u->valuestring[0]) {
		lt_reply_error(req, 400, "userId is required");
		return false;
	}
	if (!cJSON_IsString(p) || !p->valuestring[0]) {
		lt_reply_error(req, 400, "provider is required");
		return false;
	}
	if (!cJSON_IsNumber(t) || t->valuedouble < 1 || t->valuedouble > 1e15 ||
	    t->valuedouble != (double)(int64_t)t->valuedouble) {
		lt_reply_error(req, 400, "tokens must be positive");
		return false;
	}
	if (t->valuedouble > LT_SAGA_TOKENS_MAX) {
		lt_reply_error(req, 400, "tokens must be at most 10000000");
		return false;
	}
	s->tokens = (int64_t)t->valuedouble;
	bool has_org = o && !cJSON_IsNull(o);
	if (!lt_uuid_canonical(u->valuestring, strlen(u->valuestring), s->user_id) ||
	    (has_org && (!cJSON_IsString(o) ||
			 !lt_uuid_canonical(o->valuestring, strlen(o->valuestring), s->org_id)))) {
		lt_reply_error(req, 400, "invalid userId or orgId");
		return false;
	}
	if (!has_org)
		s->org_id[0] = '\0';
	if (!lt_api_provider_name(req->cfg, p->valuestring, strlen(p->valuestring), s->provider)) {
		lt_reply_error(req, 400, "unknown provider");
		return false;
	}
	return true;
}

/* May the principal buy for s->user_id (and s->org_id)?  A USER: itself
 * and its orgs (403 otherwise); an ADMIN: any user and org that exist
 * (404 otherwise).  Answers itself when not. */
static bool may_buy(struct lt_req *req, const struct lt_saga *s)
{
	bool admin = is_admin(req);
	if (!admin && strcmp(s->user_id, req->principal.user_id) != 0) {
		lt_reply_error(req, 403, "not allowed to act for another user");
		return false;
	}
	if (!admin && !s->org_id[0])
		return true;
	struct sqlite3 *db;
	if (!reader(req, &db))
		return false;
	enum lt_err e = LT_OK;
	const char *missing = NULL;
	if (admin) {
		struct lt_user u;
		e = lt_ident_user_by_id(db, s->user_id, &u);
		missing = "user not found";
		if (!e && s->org_id[0]) {
			struct lt_org org;
			e = lt_ident_org_by_id(db, s->org_id, &org);
			missing = "org not found";
		}
	} else {
		struct lt_membership m;
		e = lt_ident_member_get(db, s->org_id, req->principal.user_id, &m);
	}
	reader_done(req, db);
	if (e == LT_ENOTFOUND && !admin)
		lt_reply_error(req, 403, "not a member of this org");
	else if (e == LT_ENOTFOUND)
		lt_reply_error(req, 404, missing);
	else if (e)
		lt_reply_error(req, 503, "storage error");
	return e == LT_OK;
}

/* The status the saga has now (after waiting), read back; `fallback`
 * when it cannot be read. */
static enum lt_saga_state status_now(struct lt_req *req, const char *id,
				     enum lt_saga_state fallback)
{
	struct sqlite3 *db;
	if (lt_dbpool_acquire(&req->srv->auth.readers, READER_WAIT_MS, &db) != LT_OK)
		return fallback;
	struct lt_saga s;
	enum lt_err e = lt_saga_store_get(db, id, &s);
	lt_dbpool_release(&req->srv->auth.readers, db);
	return e ? fallback : s.sm.state;
}

void lt_api_purchase_create(struct lt_req *req)
{
	if (!req->cfg->features_saga_purchases) {
		lt_reply_error(req, 503,
			       "token purchases are disabled (feature saga-purchases is off)");
		return;
	}
	struct lt_sagas *r = lt_sagas_get(req->srv);
	if (!r) {
		lt_reply_error_h(req, 503, "token purchases are not available yet; retry shortly",
				 "Retry-After: 1\r\n");
		return;
	}
	struct purchase p;
	memset(&p, 0, sizeof p);
	if (!idempotency_key(req, &p.s) || !purchase_parse(req, &p.s) || !may_buy(req, &p.s))
		return;
	if (lt_saga_amount(p.s.tokens, req->cfg->payment_price_per_1m_tokens, &p.s.amount_micros)) {
		lt_reply_error(req, 400, "the purchase amount is out of range");
		return;
	}
	lt_saga_payload_hash(p.s.user_id, p.s.org_id, p.s.provider, p.s.tokens, p.s.payload_hash);
	lt_uuid_v4(p.s.id);
	p.now_ms = now_ms(req);
	enum lt_err e = lt_writer_run(&req->srv->writer, op_create, &p);
	if (e == LT_EEXIST) {
		lt_reply_error(req, 409, KEY_REUSED);
		return;
	}
	if (e) {
		lt_reply_error(req, lt_err_http_status(e) >= 500 ? lt_err_http_status(e) : 503,
			       "could not record the purchase");
		return;
	}
	enum lt_saga_state state = p.s.sm.state;
	if (!lt_saga_state_final(state)) {
		bool final = false;
		lt_sagas_run_wait(r, p.s.id, req->cfg->saga_wait_ms, &final, &state);
		state = status_now(req, p.s.id, state);
	}
	char stack[256];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 4096);
	lt_buf_printf(&b, "{\"sagaId\":\"%s\",\"status\":\"%s\"", p.s.id,
		      lt_saga_state_name(state));
	put_time(&b, "createdAt", p.s.created_ms);
	lt_buf_putc(&b, '}');
	lt_reply_json(req, 202, &b, NULL);
	lt_buf_release(&b);
}

void lt_api_purchase_get(struct lt_req *req)
{
	char id[LT_UUID_LEN];
	if (saga_param(req, id))
		answer_saga(req, id, 200, false);
}

/* ---- admin ---- */

struct list_out {
	struct lt_buf *b;
	size_t n;
};

static enum lt_err list_one(void *arg, const struct lt_saga *s)
{
	struct list_out *o = arg;
	if (o->n++)
		lt_buf_putc(o->b, ',');
	lt_saga_json_fields(o->b, s, true);
	lt_buf_putc(o->b, '}');
	return o->b->err;
}

void lt_api_admin_saga_list(struct lt_req *req)
{
	char raw[32], lim[32];
	enum lt_saga_state st;
	bool by_status = false;
	enum lt_err e = lt_req_query(req, "status", raw, sizeof raw);
	if (e == LT_ETOOBIG || (e == LT_OK && raw[0] && lt_saga_state_parse(raw, &st))) {
		lt_reply_error(req, 400,
			       "status must be one of STARTED, PAYMENT_RESERVED, TOKENS_ALLOCATED, "
			       "COMPLETED, COMPENSATING, FAILED");
		return;
	}
	by_status = e == LT_OK && raw[0];
	long long limit = LIST_DEFAULT;
	e = lt_req_query(req, "limit", lim, sizeof lim);
	if (e == LT_ETOOBIG || (e == LT_OK && lim[0])) {
		char *end = NULL;
		errno = 0;
		limit = strtoll(lim, &end, 10);
		if (e || errno || end == lim || *end || lim[0] == '+' || lim[0] == ' ' ||
		    limit < 1 || limit > LT_SAGA_LIST_MAX) {
			lt_reply_error(req, 400, "limit must be an integer between 1 and 1000");
			return;
		}
	}
	struct sqlite3 *db;
	if (!reader(req, &db))
		return;
	char stack[4096];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 8u << 20);
	lt_buf_puts(&b, "{\"items\":[");
	struct list_out o = {&b, 0};
	e = lt_saga_store_list(db, by_status ? &st : NULL, (size_t)limit, list_one, &o);
	reader_done(req, db);
	lt_buf_printf(&b, "],\"count\":%zu}", o.n);
	if (e && !b.err)
		lt_reply_error(req, 503, "storage error");
	else
		lt_reply_json(req, 200, &b, NULL);
	lt_buf_release(&b);
}

void lt_api_admin_saga_get(struct lt_req *req)
{
	char id[LT_UUID_LEN];
	if (saga_param(req, id))
		answer_saga(req, id, 200, true);
}

struct mark_op {
	const char *id;
	bool compensate;
	const char *actor;
	int64_t now_ms;
	struct lt_saga s; /* out */
};

static enum lt_err op_mark(struct sqlite3 *db, void *arg)
{
	struct mark_op *m = arg;
	enum lt_err e = lt_saga_store_mark(db, m->id, m->compensate, &m->s);
	if (e)
		return e;
	char detail[128];
	snprintf(detail, sizeof detail, "{\"status\":\"%s\"}", lt_saga_state_name(m->s.sm.state));
	return lt_ident_audit(db, m->now_ms, m->actor,
			      m->compensate ? "saga.compensate" : "saga.retry", m->id, detail);
}

static void admin_mark(struct lt_req *req, bool compensate)
{
	char id[LT_UUID_LEN];
	if (!saga_param(req, id))
		return;
	struct lt_sagas *r = lt_sagas_get(req->srv);
	if (!r) {
		lt_reply_error_h(req, 503, "sagas are not running yet; retry shortly",
				 "Retry-After: 1\r\n");
		return;
	}
	struct mark_op m;
	memset(&m, 0, sizeof m);
	m.id = id;
	m.compensate = compensate;
	m.actor = req->principal.user_id;
	m.now_ms = now_ms(req);
	enum lt_err e = lt_writer_run(&req->srv->writer, op_mark, &m);
	if (e == LT_ENOTFOUND) {
		lt_reply_error(req, 404, "saga not found");
		return;
	}
	if (e == LT_EINVAL || e == LT_EDENIED) {
		/* read it again for the message: the mark wrote nothing */
		struct sqlite3 *db;
		struct lt_saga s;
		const char *st = "final";
		if (e == LT_EINVAL &&
		    lt_dbpool_acquire(&req->srv->auth.readers, READER_WAIT_MS, &db) == LT_OK) {
			if (lt_saga_store_get(db, id, &s) == LT_OK)
				st = lt_saga_state_name(s.sm.state);
			lt_dbpool_release(&req->srv->auth.readers, db);
		}
		char msg[128];
		if (e == LT_EDENIED)
			snprintf(msg, sizeof msg,
				 "the payment is already captured: the purchase can only complete");
		else
			snprintf(msg, sizeof msg, "saga is %s: nothing to %s", st,
				 compensate ? "compensate" : "retry");
		lt_reply_error(req, 409, msg);
		return;
	}
	if (e) {
		lt_reply_error(req, lt_err_http_status(e) >= 500 ? lt_err_http_status(e) : 503,
			       "could not mark the saga");
		return;
	}
	bool final = false;
	lt_sagas_run_wait(r, id, req->cfg->saga_wait_ms, &final, NULL);
	answer_saga(req, id, 202, true);
}

void lt_api_admin_saga_retry(struct lt_req *req)
{
	admin_mark(req, false);
}

void lt_api_admin_saga_compensate(struct lt_req *req)
{
	admin_mark(req, true);
}
