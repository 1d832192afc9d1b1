/*
 * spend.c — admit, reserve, settle, release for one spending request.
 * See spend.h.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api/spend.h"
#include "events/outbox.h"
#include "events/usage_event.h"
#include "http/request.h"
#include "limit/bucket_store.h"
#include "limit/headers.h"
#include "server.h"
#include "util/buf.h"
#include "util/timefmt.h"
#include "util/uuid.h"

/* ---- metrics ---- */

enum lt_err lt_spend_metrics_init(struct lt_server *srv)
{
	static const char *const so[] = {"scope", "outcome"};
	static const char *const outcome[] = {"outcome"};
	static const char *const provider[] = {"provider"};
	struct lt_server_metrics *m = &srv->m;
	enum lt_err e = lt_metrics_register(
		&srv->metrics, LT_METRIC_COUNTER, "leaky_ratelimit_decisions_total",
		"Rate-limit bucket decisions by scope (requests, tokens, org, model_rpm, "
		"model_tpm) and outcome (allowed, refused, too_large).",
		2, so, 0, NULL, 32, &m->limit_decisions);
	if (!e)
		e = lt_metrics_register(&srv->metrics, LT_METRIC_COUNTER,
					"leaky_quota_reservations_total",
					"Quota reservations by outcome (reserved, no_pool, denied, "
					"money_denied, error, settled, released).",
					1, outcome, 0, NULL, 16, &m->quota_reservations);
	if (!e)
		e = lt_metrics_register(&srv->metrics, LT_METRIC_COUNTER,
					"leaky_quota_unbilled_tokens_total",
					"Tokens a call used beyond what its pool could pay (the "
					"pool was charged what it had).",
					1, provider, 0, NULL, 64, &m->quota_unbilled);
	return e;
}

static void count_resv(struct lt_server *srv, const char *outcome)
{
	const char *l[] = {outcome};
	lt_counter_add(lt_metric_series(&srv->metrics, srv->m.quota_reservations, l), 1);
}

static void count_decisions(struct lt_server *srv, const struct lt_limit_plan *p, bool allowed)
{
	for (size_t i = 0; i < p->n; i++) {
		const struct lt_admit_item *it = &p->items[i];
		const char *o = it->err == LT_ERANGE		  ? "too_large"
				: allowed || it->decision.allowed ? "allowed"
								  : "refused";
		/* when refused as a whole, an item that would have passed is
		 * not charged either: it counts as allowed (it did not bind) */
		const char *l[] = {lt_limit_scope_name(p->scope[i]), o};
		lt_counter_add(lt_metric_series(&srv->metrics, srv->m.limit_decisions, l), 1);
	}
}

struct top_pools {
	struct lt_pool_row rows[LT_SPEND_TOP_POOLS];
	size_t n;
};

static void top_one(void *arg, const struct lt_pool_row *row)
{
	struct top_pools *t = arg;
	if (t->n < LT_SPEND_TOP_POOLS)
		t->rows[t->n++] = *row;
}

static void render_family(struct lt_buf *out, const struct top_pools *t, const char *name,
			  const char *help, bool reserved)
{
	lt_buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
	for (size_t i = 0; i < t->n; i++) {
		const struct lt_pool_row *r = &t->rows[i];
		/* ids are UUIDs and providers config names or "$": nothing to
		 * escape */
		lt_buf_printf(out, "%s{owner_kind=\"%s\",owner_id=\"%s\",provider=\"%s\"} %lld\n",
			      name, r->key.kind == LT_OWNER_ORG ? "org" : "user", r->key.owner_id,
			      r->key.provider,
			      (long long)(reserved ? r->pool.reserved : r->pool.remaining));
	}
}

void lt_spend_metrics_render_pools(struct lt_server *srv, struct lt_buf *out)
{
	static const struct top_pools empty;
	struct top_pools t = empty;
	struct sqlite3 *db;
	if (!lt_server_is_ready(srv) || lt_dbpool_acquire(&srv->auth.readers, 1000, &db))
		return;
	enum lt_err e = lt_pool_store_top(db, LT_SPEND_TOP_POOLS, top_one, &t);
	lt_dbpool_release(&srv->auth.readers, db);
	if (e)
		return;
	render_family(out, &t, "leaky_quota_pool_remaining",
		      "Remaining (tokens; micro-dollars for provider \"$\") of the pools that "
		      "spent the most.",
		      false);
	render_family(out, &t, "leaky_quota_pool_reserved",
		      "Held by open reservations, for the same pools.", true);
}

/* ---- headers ---- */

static void set_headers(struct lt_req *req, const struct lt_spend *sp, bool allowed)
{
	char stack[LT_RL_HEADERS_MAX];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, sizeof stack);
	if (sp->openai)
		lt_limit_headers_openai(&sp->plan, allowed, &b);
	else
		lt_limit_headers_api(&sp->plan, allowed, &b);
	lt_req_set_rl_headers(req, b.err ? NULL : b.data);
	lt_buf_release(&b);
}

/* Refund what admission charged and show the buckets as they are after. */
static void refund(struct lt_req *req, struct lt_spend *sp)
{
	if (!sp->admitted)
		return;
	struct lt_server *srv = req->srv;
	int64_t now = lt_clock_now_ns(&srv->clock);
	if (now < sp->now_ns)
		now = sp->now_ns;
	enum lt_err e = lt_bucket_refund_all(srv->kv, sp->plan.items, sp->plan.n, now);
	if (e)
		lt_log_error(&srv->log, "spend: refunding %zu buckets failed: %s", sp->plan.n,
			     lt_strerror(e));
	sp->admitted = false;
	for (size_t i = 0; i < sp->plan.n; i++)
		(void)lt_bucket_store_peek(srv->kv, sp->plan.items[i].key,
					   &sp->plan.items[i].policy, now,
					   &sp->plan.items[i].decision);
	set_headers(req, sp, true);
}

/* A refusal's usage event (below). */
static void refusal_event(struct lt_req *req, const struct lt_spend *sp, const char *reason);

/* ---- admission ---- */

enum lt_err lt_spend_admit(struct lt_req *req, struct lt_spend *sp, bool *allowed, int *item)
{
	struct lt_server *srv = req->srv;
	*allowed = false;
	*item = -1;
	sp->admitted = sp->reserved = sp->money_refused = false;
	struct lt_limit_facts f = {
		.path = req->path,
		.key_id = req->principal.via_api_key ? req->principal.key_id : NULL,
		.user_id = sp->user_id,
		.ip = lt_req_remote_addr(req),
		.tier = sp->tier,
		.org_id = sp->org_id,
		.provider = sp->provider,
		.model = sp->model,
		.tokens = sp->bucket_tokens,
	};
	enum lt_err e = lt_limit_plan(req->cfg, &f, &sp->plan);
	if (e)
		return e;
	sp->now_ns = lt_clock_now_ns(&srv->clock);
	if (!sp->plan.n) {
		*allowed = true; /* rate limiting off (or nothing applies) */
		return LT_OK;
	}
	e = lt_bucket_admit_all(srv->kv, sp->plan.items, sp->plan.n, sp->now_ns, allowed);
	if (e == LT_ERANGE) {
		for (size_t i = 0; i < sp->plan.n; i++)
			if (sp->plan.items[i].err == LT_ERANGE && *item < 0)
				*item = (int)i;
		count_decisions(srv, &sp->plan, false);
		set_headers(req, sp, true); /* nothing charged; no Retry-After: waiting
					       cannot help */
		refusal_event(req, sp, "request_too_large");
		return e;
	}
	if (e)
		return e;
	count_decisions(srv, &sp->plan, *allowed);
	sp->admitted = *allowed;
	set_headers(req, sp, *allowed);
	if (!*allowed)
		refusal_event(req, sp, "rate_limited");
	return LT_OK;
}

bool lt_spend_admit_request(struct lt_req *req)
{
	struct lt_spend sp;
	memset(&sp, 0, sizeof sp);
	sp.openai = req->openai;
	sp.user_id = req->authed ? req->principal.user_id : NULL;
	sp.tier = req->authed && req->principal.tier[0] ? req->principal.tier : NULL;
	bool allowed = false;
	/* no provider: the plan holds the request limit only */
	struct lt_limit_facts f = {
		.path = req->path,
		.key_id = req->authed && req->principal.via_api_key ? req->principal.key_id : NULL,
		.user_id = sp.user_id,
		.ip = lt_req_remote_addr(req),
	};
	enum lt_err e = lt_limit_plan(req->cfg, &f, &sp.plan);
	if (!e && !sp.plan.n)
		return true;
	sp.now_ns = lt_clock_now_ns(&req->srv->clock);
	if (!e)
		e = lt_bucket_admit_all(req->srv->kv, sp.plan.items, sp.plan.n, sp.now_ns,
					&allowed);
	if (e) {
		if (req->openai)
			lt_reply_openai_error(req, 503, "server_error", NULL, NULL,
					      "rate-limit store unavailable", "Retry-After: 1\r\n");
		else
			lt_reply_error_h(req, 503, "rate-limit store unavailable",
					 "Retry-After: 1\r\n");
		return false;
	}
	count_decisions(req->srv, &sp.plan, allowed);
	set_headers(req, &sp, allowed);
	if (allowed)
		return true;
	lt_spend_reply_limited(req, &sp);
	return false;
}

void lt_spend_reply_early(struct lt_req *req, int status, const char *message,
			  const char *extra_headers)
{
	if (lt_spend_admit_request(req))
		lt_reply_error_h(req, status, message, extra_headers);
}

void lt_spend_reply_early_openai(struct lt_req *req, int status, const char *type, const char *code,
				 const char *param, const char *message, const char *extra_headers)
{
	if (lt_spend_admit_request(req))
		lt_reply_openai_error(req, status, type, code, param, message, extra_headers);
}

void lt_spend_reply_admit_error(struct lt_req *req, enum lt_err e)
{
	if (e == LT_ERANGE)
		lt_reply_error(req, 400, "tokens exceed bucket capacity");
	else if (e == LT_ETOOBIG)
		lt_reply_error(req, 500, "rate-limit key too long");
	else
		lt_reply_error_h(req, 503, "rate-limit store unavailable", "Retry-After: 1\r\n");
}

void lt_spend_reply_limited(struct lt_req *req, const struct lt_spend *sp)
{
	enum lt_limit_scope sc;
	int64_t retry;
	lt_spend_refusal(sp, &sc, &retry);
	int b = lt_limit_binding(&sp->plan, false);
	const char *name = b >= 0 ? sp->plan.name[b] : "requests";
	if (sp->openai) {
		bool rq = sc == LT_SCOPE_REQUESTS || sc == LT_SCOPE_MODEL_RPM;
		const char *what = sp->model ? sp->model : sp->provider[0] ? sp->provider : NULL;
		char msg[384], wait[32];
		lt_duration_go(retry, wait, sizeof wait);
		snprintf(msg, sizeof msg,
			 "Rate limit reached%s%s on %s (%s). Please try again in %s.",
			 what ? " for " : "", what ? what : "", rq ? "requests" : "tokens", name,
			 wait);
		lt_reply_openai_error(req, 429, rq ? "requests" : "tokens", "rate_limit_exceeded",
				      NULL, msg, NULL);
		return;
	}
	/* the error envelope (API.md §0) with retryAfterSeconds (§6) */
	char stack[1024], ts[LT_ISO_LEN];
	struct lt_buf buf;
	lt_buf_init(&buf, stack, sizeof stack, 8192);
	lt_time_iso(sp->now_ns, ts);
	lt_buf_printf(&buf,
		      "{\"message\":\"rate limit exceeded\",\"timestamp\":\"%s\",\"status\":429,"
		      "\"path\":",
		      ts);
	lt_buf_put_json_str(&buf, req->path, strlen(req->path));
	lt_buf_puts(&buf, ",\"correlationId\":");
	lt_buf_put_json_str(&buf, req->correlation_id, strlen(req->correlation_id));
	lt_buf_printf(&buf, ",\"retryAfterSeconds\":%lld}", (long long)lt_ceil_seconds(retry));
	lt_reply_json(req, 429, &buf, NULL);
	lt_buf_release(&buf);
}

void lt_spend_refusal(const struct lt_spend *sp, enum lt_limit_scope *scope, int64_t *retry_ns)
{
	int b = lt_limit_binding(&sp->plan, false);
	*scope = b >= 0 ? sp->plan.scope[b] : LT_SCOPE_REQUESTS;
	*retry_ns = b >= 0 ? sp->plan.items[b].decision.retry_ns : LT_NS_PER_S;
}

/* ---- quota ---- */

static enum lt_err op_reserve(struct sqlite3 *db, void *arg)
{
	return lt_pool_store_reserve(db, arg);
}

struct release_op {
	const char *id;
	int64_t now_ms;
	struct lt_ledger_note note;
};

static enum lt_err op_release(struct sqlite3 *db, void *arg)
{
	struct release_op *r = arg;
	return lt_pool_store_release(db, r->id, r->now_ms, &r->note);
}

enum lt_err lt_spend_reserve(struct lt_req *req, struct lt_spend *sp)
{
	struct lt_server *srv = req->srv;
	if (!req->cfg->features_quota_enforcement)
		return LT_OK;
	struct lt_reservation *r = &sp->resv;
	memset(r, 0, sizeof *r);
	lt_uuid_v4(r->id);
	struct lt_reserve_item *it = &r->items[r->n++];
	it->key.kind = sp->owner_kind;
	memcpy(it->key.owner_id, sp->owner_id, sizeof it->key.owner_id);
	memcpy(it->key.provider, sp->provider, sizeof it->key.provider);
	it->amount = sp->pool_tokens;
	if (sp->money_micros > 0) {
		it = &r->items[r->n++];
		it->key.kind = sp->owner_kind;
		memcpy(it->key.owner_id, sp->owner_id, sizeof it->key.owner_id);
		memcpy(it->key.provider, LT_POOL_MONEY, sizeof LT_POOL_MONEY);
		it->amount = sp->money_micros;
		it->optional = true;
	}
	r->now_ms = lt_clock_now_ns(&srv->clock) / LT_NS_PER_MS;
	r->note.actor = req->principal.user_id;
	r->note.reason = sp->reason;
	r->note.correlation_id = req->correlation_id;
	enum lt_err e = lt_writer_run(&srv->writer, op_reserve, r);
	if (e == LT_OK) {
		sp->reserved = true;
		count_resv(srv, "reserved");
		return LT_OK;
	}
	if (e == LT_EDENIED && r->failed == 1)
		sp->money_refused = true;
	count_resv(srv, e == LT_ENOTFOUND ? "no_pool"
			: e == LT_EDENIED ? (sp->money_refused ? "money_denied" : "denied")
					  : "error");
	refund(req, sp);
	if (e == LT_ENOTFOUND || e == LT_EDENIED)
		refusal_event(req, sp, "insufficient_quota");
	return e;
}

/* ---- usage events ---- */

#define RUN_EVENT_TRIES 5 /* 10, 20, 40, 80 ms between them */

/* The event of this spend: from rec when there was a call, else from the
 * admission alone. */
static void event_of(const struct lt_req *req, const struct lt_spend *sp,
		     const struct lt_usage_record *rec, bool allowed, const char *reason,
		     struct lt_usage_event *ev)
{
	memset(ev, 0, sizeof *ev);
	ev->time_ms = lt_clock_now_ns(&req->srv->clock) / LT_NS_PER_MS;
	ev->correlation_id = req->correlation_id;
	ev->user_id = sp->user_id;
	ev->org_id = sp->owner_kind == LT_OWNER_ORG ? sp->owner_id : NULL;
	ev->key_id = req->principal.via_api_key ? req->principal.key_id : NULL;
	ev->provider = sp->provider;
	ev->model = sp->model;
	ev->endpoint = sp->endpoint ? sp->endpoint : sp->reason;
	ev->allowed = allowed;
	ev->reason = reason;
	ev->requested_tokens = sp->pool_tokens;
	ev->latency_ms = (lt_clock_mono_ns() - req->t0_mono) / LT_NS_PER_MS;
	if (rec) {
		ev->outcome = rec->attempts || rec->outcome != LT_OUTCOME_OK
				      ? lt_outcome_name(rec->outcome)
				      : NULL;
		ev->stream = rec->stream;
		ev->estimated = rec->tokens_estimated;
		if (allowed && !reason) {
			ev->tokens = rec->tokens;
			ev->cost_micros = rec->cost_micros;
		}
	}
}

/* The settle or release (or nothing) and the event, in one transaction. */
struct event_op {
	struct lt_settlement *settle; /* or NULL */
	struct release_op *release;   /* or NULL */
	const char *key, *payload;
	int64_t now_ms;
};

static enum lt_err op_event(struct sqlite3 *db, void *arg)
{
	struct event_op *o = arg;
	enum lt_err e = LT_OK;
	if (o->settle)
		e = lt_pool_store_settle(db, o->settle);
	else if (o->release)
		e = op_release(db, o->release);
	if (!e && o->payload)
		e = lt_outbox_add(db, LT_TOPIC_USAGE, o->key, LT_USAGE_EVENT_TYPE, o->payload,
				  o->now_ms, NULL);
	return e;
}

/* Run op with ev as its payload. */
static enum lt_err run_event(struct lt_req *req, struct event_op *op,
			     const struct lt_usage_event *ev)
{
	char stack[1024];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 64 * 1024);
	lt_usage_event_json(ev, &b);
	op->key = ev->user_id;
	op->payload = b.err ? NULL : b.data;
	op->now_ms = ev->time_ms;
	if (b.err)
		lt_log_error(&req->srv->log,
			     "spend: the usage event of %s could not be built (%s); the change is "
			     "written without it",
			     req->correlation_id, lt_strerror(b.err));
	/* The change (a settle, a release) must not be dropped for a passing
	 * reason: a full writer queue, or a commit that failed (it rolled
	 * everything back, so running it again is safe). */
	enum lt_err e = LT_OK;
	for (int attempt = 0; attempt < RUN_EVENT_TRIES; attempt++) {
		if (attempt) {
			struct timespec ts = {0, (long)(10L << attempt) * 1000000L};
			nanosleep(&ts, NULL);
		}
		e = lt_writer_run(&req->srv->writer, op_event, op);
		if (e != LT_EBUSY && e != LT_EIO)
			break;
	}
	lt_buf_release(&b);
	return e;
}

/* A refusal's event, alone in its transaction. */
static void refusal_event(struct lt_req *req, const struct lt_spend *sp, const char *reason)
{
	struct lt_usage_event ev;
	event_of(req, sp, NULL, false, reason, &ev);
	struct event_op op = {0};
	enum lt_err e = run_event(req, &op, &ev);
	if (e)
		lt_log_error(&req->srv->log, "spend: the usage event of a refusal was lost: %s",
			     lt_strerror(e));
}

void lt_spend_settle(struct lt_req *req, struct lt_spend *sp, const struct lt_usage_record *rec)
{
	struct lt_server *srv = req->srv;
	int64_t tokens = rec->tokens.input + rec->tokens.output;
	int64_t money_micros = rec->cost_micros;
	if (tokens < 0)
		tokens = 0;
	if (money_micros < 0)
		money_micros = 0;
	struct lt_usage_event ev;
	event_of(req, sp, rec, true, NULL, &ev);
	struct lt_settlement s;
	memset(&s, 0, sizeof s);
	struct event_op op = {0};
	if (sp->reserved) {
		memcpy(s.id, sp->resv.id, sizeof s.id);
		for (size_t i = 0; i < sp->resv.n; i++) {
			if (!sp->resv.items[i].held)
				continue;
			s.keys[s.n] = sp->resv.items[i].key;
			s.actual[s.n] =
				strcmp(s.keys[s.n].provider, LT_POOL_MONEY) ? tokens : money_micros;
			s.n++;
		}
		s.now_ms = ev.time_ms;
		s.note = sp->resv.note;
		op.settle = &s;
	}
	enum lt_err e = run_event(req, &op, &ev);
	if (e)
		lt_log_error(&srv->log, "spend: settling reservation %s failed: %s",
			     sp->reserved ? sp->resv.id : "(none)", lt_strerror(e));
	if (sp->reserved) {
		count_resv(srv, e ? "error" : "settled");
		for (size_t i = 0; !e && i < s.n; i++) {
			if (!s.unbilled[i])
				continue;
			const char *l[] = {s.keys[i].provider};
			lt_counter_add(lt_metric_series(&srv->metrics, srv->m.quota_unbilled, l),
				       (uint64_t)s.unbilled[i]);
			lt_log_warn(
				&srv->log,
				"spend: reservation %s used %lld more than pool %s/%s could pay",
				sp->resv.id, (long long)s.unbilled[i], s.keys[i].owner_id,
				s.keys[i].provider);
		}
		sp->reserved = false;
	}
	if (!sp->admitted)
		return;
	/* the token-scope buckets, from what admission charged to the real use */
	int64_t actual[LT_ADMIT_MAX];
	bool differs = false;
	for (size_t i = 0; i < sp->plan.n; i++) {
		enum lt_limit_scope sc = sp->plan.scope[i];
		bool tok = sc == LT_SCOPE_TOKENS || sc == LT_SCOPE_ORG || sc == LT_SCOPE_MODEL_TPM;
		actual[i] = tok ? tokens : sp->plan.items[i].cost;
		differs |= actual[i] != sp->plan.items[i].cost;
	}
	if (differs) {
		int64_t now = lt_clock_now_ns(&srv->clock);
		e = lt_bucket_settle_all(srv->kv, sp->plan.items, sp->plan.n, actual,
					 now < sp->now_ns ? sp->now_ns : now);
		if (e)
			lt_log_error(&srv->log, "spend: settling %zu buckets failed: %s",
				     sp->plan.n, lt_strerror(e));
	}
	sp->admitted = false;
}

void lt_spend_release(struct lt_req *req, struct lt_spend *sp, const char *why,
		      const struct lt_usage_record *rec)
{
	struct lt_server *srv = req->srv;
	struct lt_usage_event ev;
	event_of(req, sp, rec, true, "provider_failed", &ev);
	struct release_op rel = {
		sp->resv.id, ev.time_ms, {req->principal.user_id, why, req->correlation_id}};
	struct event_op op = {0};
	if (sp->reserved)
		op.release = &rel;
	enum lt_err e = run_event(req, &op, &ev);
	if (e)
		lt_log_error(&srv->log, "spend: releasing reservation %s failed: %s",
			     sp->reserved ? sp->resv.id : "(none)", lt_strerror(e));
	if (sp->reserved) {
		count_resv(srv, e ? "error" : "released");
		sp->reserved = false;
	}
	refund(req, sp);
}
