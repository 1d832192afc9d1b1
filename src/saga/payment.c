/*
 * payment.c — the payment service client of the purchase saga.  See
 * payment.h.
 *
 * The pool: `cur` is the upstream for the base URL last used, with one
 * reference for the client and one per call in progress; a call with
 * another base URL (after a reload) builds a new one and drops the
 * client's reference to the old, which is freed by its last call.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider/upstream.h"
#include "saga/payment.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/json.h"

#define POOL_IDLE 4
#define IDLE_TIMEOUT_NS (30 * LT_NS_PER_S)
#define HEADER_MAX (16 * 1024)

struct pool_ref {
	struct lt_upstream *u;
	atomic_int refs;
	char base_url[512];
	struct lt_url url;
};

struct lt_payment {
	pthread_mutex_t lock;
	struct pool_ref *cur;		/* guarded by lock */
	struct lt_tls_anchors *anchors; /* loaded at the first https:// URL; guarded by lock */
};

const char *lt_pay_op_name(enum lt_pay_op op)
{
	switch (op) {
	case LT_PAY_AUTHORIZE: return "authorize";
	case LT_PAY_CAPTURE: return "capture";
	case LT_PAY_RELEASE: return "release";
	}
	return "unknown";
}

/* ---- answers (pure) ---- */

static const char *const status_names[] = {"AUTHORIZED", "CAPTURED", "RELEASED"};

/* The member `name` of obj, refusing a second one: LT_ENOTFOUND when
 * absent, LT_EINVAL when repeated. */
static enum lt_err only_member(const cJSON *obj, const char *name, const cJSON **out)
{
	const cJSON *it, *found = NULL;
	cJSON_ArrayForEach(it, obj)
	{
		if (it->string && strcmp(it->string, name) == 0) {
			if (found)
				return LT_EINVAL;
			found = it;
		}
	}
	*out = found;
	return found ? LT_OK : LT_ENOTFOUND;
}

/* A string member of 1..max bytes (0..max with empty_ok) into out. */
static enum lt_err str_member(const cJSON *obj, const char *name, size_t max, bool empty_ok,
			      char *out)
{
	const cJSON *it;
	enum lt_err e = only_member(obj, name, &it);
	if (e)
		return e;
	if (!cJSON_IsString(it) || !it->valuestring)
		return LT_EINVAL;
	size_t n = strlen(it->valuestring);
	if (n > max || (!n && !empty_ok))
		return LT_EINVAL;
	memcpy(out, it->valuestring, n + 1);
	return LT_OK;
}

enum lt_err lt_payment_parse_answer(const char *body, size_t n, struct lt_pay_answer *out)
{
	memset(out, 0, sizeof *out);
	if (!body)
		return LT_ESYNTAX;
	cJSON *j = NULL;
	size_t pos;
	if (lt_json_parse(body, n, &j, &pos) != LT_OK)
		return LT_ESYNTAX;
	enum lt_err e = LT_OK;
	const cJSON *it;
	char status[16];
	if (!cJSON_IsObject(j)) {
		e = LT_ESYNTAX;
		goto out;
	}
	if (str_member(j, "paymentId", LT_PAY_ID_MAX, false, out->payment_id) ||
	    str_member(j, "status", sizeof status - 1, false, status) ||
	    str_member(j, "currency", LT_PAY_CURRENCY_MAX, false, out->currency)) {
		e = LT_EINVAL;
		goto out;
	}
	for (const char *p = out->payment_id; *p; p++) {
		if (*p < 0x21 || *p > 0x7E) {
			e = LT_EINVAL;
			goto out;
		}
	}
	size_t k = 0;
	while (k < 3 && strcmp(status, status_names[k]) != 0)
		k++;
	if (k == 3) {
		e = LT_EINVAL;
		goto out;
	}
	out->status = (enum lt_pay_status)k;
	if (only_member(j, "amountMicros", &it) != LT_OK ||
	    lt_json_get_i64(j, "amountMicros", 0, LT_JSON_INT_MAX, &out->amount_micros) != LT_OK) {
		e = LT_EINVAL;
		goto out;
	}
	e = only_member(j, "reference", &it);
	if (e == LT_ENOTFOUND || (e == LT_OK && cJSON_IsNull(it))) {
		e = LT_OK;
	} else if (e == LT_OK) {
		e = str_member(j, "reference", LT_PAY_REFERENCE_MAX, true, out->reference);
		out->has_reference = e == LT_OK;
	}
	if (e)
		e = LT_EINVAL;
out:
	cJSON_Delete(j);
	if (e) {
		memset(out, 0, sizeof *out);
		return e;
	}
	return LT_OK;
}

enum lt_saga_outcome lt_payment_outcome(enum lt_pay_op op, enum lt_err err, int status)
{
	/* Only a connect error says the request never left: upstream reports a
	 * resend whose connect failed as LT_ECLOSED (the first copy went out).
	 * LT_ETLS may come after the request was written: it may have
	 * happened. */
	if (err == LT_ECONNECT)
		return LT_SAGA_UNSENT;
	if (err != LT_OK)
		return LT_SAGA_RETRY; /* no answer: it may or may not have happened */
	if (status >= 200 && status <= 299)
		return LT_SAGA_OK;
	if (status == 408 || status == 425 || status == 429 || (status >= 500 && status <= 599))
		return LT_SAGA_RETRY;
	if (op != LT_PAY_AUTHORIZE && status == 409)
		return LT_SAGA_CONFLICT;
	if (op != LT_PAY_AUTHORIZE && status == 404)
		return LT_SAGA_GONE;
	if (op == LT_PAY_AUTHORIZE && status == 409) /* the key is busy: a twin in flight */
		return LT_SAGA_RETRY;
	return LT_SAGA_REFUSED;
}

/* ---- the client ---- */

enum lt_err lt_payment_new(struct lt_payment **out)
{
	struct lt_payment *p = calloc(1, sizeof *p);
	if (!p)
		return LT_ENOMEM;
	if (pthread_mutex_init(&p->lock, NULL) != 0) {
		free(p);
		return LT_ENOMEM;
	}
	*out = p;
	return LT_OK;
}

static void ref_put(struct pool_ref *r)
{
	if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
		lt_upstream_free(r->u);
		free(r);
	}
}

void lt_payment_free(struct lt_payment *p)
{
	if (!p)
		return;
	ref_put(p->cur);
	lt_tls_anchors_free(p->anchors);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* The pool for base_url with a reference for the caller, or NULL (why). */
static struct pool_ref *pool_get(struct lt_payment *p, const char *base_url, char *why,
				 size_t why_cap)
{
	struct pool_ref *r = NULL;
	pthread_mutex_lock(&p->lock);
	if (p->cur && strcmp(p->cur->base_url, base_url) == 0) {
		r = p->cur;
		atomic_fetch_add(&r->refs, 1);
		goto out;
	}
	struct lt_upstream_opts o = {0};
	if (strlen(base_url) >= sizeof r->base_url) {
		snprintf(why, why_cap, "payment base_url is too long");
		goto out;
	}
	if (lt_url_parse(base_url, &o.url, why, why_cap) != LT_OK)
		goto out;
	if (o.url.tls) {
		if (!p->anchors &&
		    lt_tls_anchors_load(LT_PAY_CA_BUNDLE, &p->anchors, why, why_cap) != LT_OK)
			goto out;
		o.anchors = p->anchors;
	}
	o.pool_max = POOL_IDLE;
	o.idle_timeout_ns = IDLE_TIMEOUT_NS;
	r = calloc(1, sizeof *r);
	if (!r || lt_upstream_new(&o, &r->u) != LT_OK) {
		free(r);
		r = NULL;
		snprintf(why, why_cap, "out of memory");
		goto out;
	}
	atomic_init(&r->refs, 2); /* the client's and the caller's */
	snprintf(r->base_url, sizeof r->base_url, "%s", base_url);
	r->url = o.url;
	ref_put(p->cur);
	p->cur = r;
out:
	pthread_mutex_unlock(&p->lock);
	return r;
}

static void request_body(const struct lt_pay_call *c, struct lt_buf *b)
{
	if (c->op == LT_PAY_AUTHORIZE) {
		lt_buf_printf(b, "{\"amountMicros\":%lld,\"currency\":\"USD\",\"reference\":",
			      (long long)c->amount_micros);
		lt_buf_put_json_str(b, c->saga_id, strlen(c->saga_id));
		lt_buf_putc(b, '}');
	} else {
		lt_buf_puts(b, "{\"paymentId\":");
		lt_buf_put_json_str(b, c->payment_id, strlen(c->payment_id));
		lt_buf_putc(b, '}');
	}
}

/* A 2xx answer: does it say what was asked?  NULL if so, else why not. */
static const char *answer_mismatch(const struct lt_pay_call *c, const struct lt_pay_answer *a)
{
	switch (c->op) {
	case LT_PAY_AUTHORIZE:
		if (a->amount_micros != c->amount_micros)
			return "authorized another amount";
		if (a->has_reference && strcmp(a->reference, c->saga_id) != 0)
			return "authorized for another reference";
		return NULL;
	case LT_PAY_CAPTURE:
		if (strcmp(a->payment_id, c->payment_id) != 0)
			return "answered for another payment";
		return a->status == LT_PAY_CAPTURED ? NULL : "payment not captured";
	case LT_PAY_RELEASE:
		if (strcmp(a->payment_id, c->payment_id) != 0)
			return "answered for another payment";
		return a->status == LT_PAY_RELEASED ? NULL : "payment not released";
	}
	return "unknown operation";
}

/* The "message" of an error body, if it has one, into out. */
static void error_message(const char *body, size_t n, char *out, size_t cap)
{
	out[0] = '\0';
	cJSON *j = NULL;
	size_t pos;
	if (!body || lt_json_parse(body, n, &j, &pos) != LT_OK)
		return;
	const char *m = NULL;
	if (lt_json_get_str(j, "message", &m) == LT_OK)
		snprintf(out, cap, "%s", m);
	cJSON_Delete(j);
}

void lt_payment_call(struct lt_payment *p, struct lt_pay_call *c)
{
	c->outcome = LT_SAGA_RETRY;
	c->status = 0;
	c->why[0] = '\0';
	memset(&c->answer, 0, sizeof c->answer);
	const char *op = lt_pay_op_name(c->op);
	if (c->op != LT_PAY_AUTHORIZE && (!c->payment_id || !c->payment_id[0])) {
		c->outcome = LT_SAGA_GONE;
		snprintf(c->why, sizeof c->why, "%s: no payment id", op);
		return;
	}
	char why[256] = "";
	struct pool_ref *r = pool_get(p, c->base_url, why, sizeof why);
	if (!r) {
		c->outcome = LT_SAGA_UNSENT;
		snprintf(c->why, sizeof c->why, "%s: payment service unusable: %.200s", op, why);
		return;
	}
	char path[600], headers[256], stack[512];
	snprintf(path, sizeof path, "%s/%s", r->url.path, op);
	snprintf(headers, sizeof headers,
		 "Content-Type: application/json\r\nAccept: application/json\r\n"
		 "Idempotency-Key: %s:%s\r\n",
		 c->saga_id, op);
	struct lt_buf body;
	lt_buf_init(&body, stack, sizeof stack, 4096);
	request_body(c, &body);
	int64_t now = lt_clock_mono_ns();
	int64_t deadline = now + (c->timeout_ms > 0 ? c->timeout_ms : 1) * LT_NS_PER_MS;
	struct lt_upstream_req rq = {
		.method = "POST",
		.path = path,
		.headers = headers,
		.body = body.data,
		.body_len = body.len,
		.connect_deadline_ns = deadline,
		.first_byte_deadline_ns = deadline,
		.deadline_ns = deadline,
		.max_header = HEADER_MAX,
		.max_body = LT_PAY_ANSWER_MAX,
	};
	if (body.err) {
		c->outcome = LT_SAGA_UNSENT;
		lt_buf_release(&body);
		ref_put(r);
		snprintf(c->why, sizeof c->why, "%s: %s", op, lt_strerror(body.err));
		return;
	}
	struct lt_upstream_resp resp;
	enum lt_err e = lt_upstream_do(r->u, &rq, &resp, NULL, NULL);
	lt_buf_release(&body);
	if (e) {
		c->outcome = lt_payment_outcome(c->op, e, 0);
		snprintf(c->why, sizeof c->why, "%s: %s%s%.200s", op, lt_strerror(e),
			 resp.why[0] ? ": " : "", resp.why);
		lt_upstream_resp_free(&resp);
		ref_put(r);
		return;
	}
	c->status = resp.status;
	c->outcome = lt_payment_outcome(c->op, LT_OK, resp.status);
	if (c->outcome == LT_SAGA_OK) {
		const char *bad = NULL;
		if (lt_payment_parse_answer(resp.body, resp.body_len, &c->answer) != LT_OK)
			bad = "malformed answer";
		else
			bad = answer_mismatch(c, &c->answer);
		if (bad) {
			c->outcome = LT_SAGA_RETRY;
			snprintf(c->why, sizeof c->why, "%s: %d but %s", op, resp.status, bad);
		} else {
			snprintf(c->why, sizeof c->why, "%s: %d %s", op, resp.status,
				 status_names[c->answer.status]);
		}
	} else {
		char msg[160];
		error_message(resp.body, resp.body_len, msg, sizeof msg);
		snprintf(c->why, sizeof c->why, "%s: %d%s%s", op, resp.status, msg[0] ? " " : "",
			 msg);
	}
	lt_upstream_resp_free(&resp);
	ref_put(r);
}
