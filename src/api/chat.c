/*
 * chat.c — a provider call for an HTTP request: call, translate or stream,
 * usage record.  See chat.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/chat.h"
#include "http/request.h"
#include "provider/sse.h"
#include "server.h"
#include "usage_hook.h"
#include "util/clock.h"

#define SSE_EVENT_MAX (4u << 20)

struct stream_ctx {
	struct lt_req *req;
	const struct lt_chat_call *call;
	struct lt_sse sse;
	struct lt_tr_stream tr;
	bool started;
	bool client_gone;
	int64_t ttft_mono; /* 0 until content reached the client */
};

static enum lt_err emit(void *arg, const char *frame, size_t len)
{
	struct stream_ctx *c = arg;
	enum lt_err e = lt_reply_stream_write(c->req, frame, len);
	if (e)
		c->client_gone = true;
	return e;
}

static enum lt_err start_stream(struct stream_ctx *c)
{
	if (c->started)
		return LT_OK;
	c->started = true;
	char hdr[64 + LT_CORRELATION_MAX];
	snprintf(hdr, sizeof hdr, "x-request-id: %s\r\n", c->req->correlation_id);
	enum lt_err e = lt_reply_stream_begin(c->req, 200, "text/event-stream; charset=utf-8", hdr);
	if (e)
		c->client_gone = true;
	return e;
}

static enum lt_err on_event(void *arg, const char *event, const char *data, size_t len)
{
	(void)event;
	struct stream_ctx *c = arg;
	uint64_t before = c->tr.content_bytes;
	enum lt_err e = lt_tr_stream_event(&c->tr, data, len, emit, c);
	if (!c->ttft_mono && c->tr.content_bytes > before)
		c->ttft_mono = lt_clock_mono_ns();
	return e;
}

static enum lt_err on_body(void *arg, const char *data, size_t len)
{
	struct stream_ctx *c = arg;
	enum lt_err e = start_stream(c);
	if (e)
		return e;
	return lt_sse_feed(&c->sse, data, len, on_event, c);
}

static void set_error(struct lt_chat_result *out, int status, const char *type, const char *code,
		      const char *msg)
{
	out->status = status;
	out->error_type = type;
	out->error_code = code;
	snprintf(out->message, sizeof out->message, "%s", msg);
}

/* The client-facing error of a failed call. */
static void call_error(const struct lt_call_result *res, const struct lt_target *t,
		       struct lt_chat_result *out)
{
	char msg[512];
	out->retry_after_s = res->retry_after_s;
	switch (res->outcome) {
	case LT_OUTCOME_CIRCUIT_OPEN:
		set_error(out, 503, "server_error", "circuit_open", res->why);
		return;
	case LT_OUTCOME_BULKHEAD_FULL:
		set_error(out, 503, "server_error", "overloaded", res->why);
		return;
	case LT_OUTCOME_TIMEOUT:
		snprintf(msg, sizeof msg, "provider %s did not answer in time: %s",
			 t->provider->name, res->why);
		set_error(out, 504, "server_error", "timeout", msg);
		return;
	case LT_OUTCOME_RATE_LIMITED:
		lt_tr_error_message(res->body, res->body_len, res->status, msg, sizeof msg);
		set_error(out, 429, "rate_limit_error", "rate_limit_exceeded", msg);
		return;
	case LT_OUTCOME_CLIENT_ERROR:
		lt_tr_error_message(res->body, res->body_len, res->status, msg, sizeof msg);
		set_error(out, res->client_status, "invalid_request_error", NULL, msg);
		return;
	default: break;
	}
	if (res->err == LT_OK && res->status) {
		char up[256];
		lt_tr_error_message(res->body, res->body_len, res->status, up, sizeof up);
		snprintf(msg, sizeof msg, "provider %s failed (HTTP %d): %s", t->provider->name,
			 res->status, up);
	} else {
		snprintf(msg, sizeof msg, "provider %s failed: %s", t->provider->name,
			 res->why[0] ? res->why : lt_strerror(res->err));
	}
	set_error(out, 502, "server_error", "upstream_error", msg);
}

void lt_chat_run(struct lt_req *req, const struct lt_chat_call *call, struct lt_chat_result *out)
{
	memset(out, 0, sizeof *out);
	out->retry_after_s = -1;
	const struct lt_target *t = call->target;
	struct lt_server *srv = req->srv;
	struct lt_usage_record rec;
	memset(&rec, 0, sizeof rec);
	snprintf(rec.provider, sizeof rec.provider, "%s", t->provider->name);
	snprintf(rec.model, sizeof rec.model, "%s", t->client_model);
	snprintf(rec.upstream_model, sizeof rec.upstream_model, "%s", t->upstream_model);
	snprintf(rec.correlation_id, sizeof rec.correlation_id, "%s", req->correlation_id);
	if (req->authed)
		snprintf(rec.user_id, sizeof rec.user_id, "%s", req->principal.user_id);
	rec.endpoint = call->endpoint;
	rec.stream = call->stream;
	rec.ttft_ns = -1;

	struct stream_ctx sc;
	memset(&sc, 0, sizeof sc);
	sc.req = req;
	sc.call = call;
	if (call->stream) {
		if (lt_sse_init(&sc.sse, SSE_EVENT_MAX)) {
			set_error(out, 500, "server_error", NULL, "out of memory");
			return;
		}
		char id[96];
		snprintf(id, sizeof id, "chatcmpl-%.80s", req->correlation_id);
		lt_tr_stream_init(&sc.tr, t->format, t->client_model, id,
				  lt_clock_now_ns(&srv->clock) / LT_NS_PER_S, call->include_usage);
	}
	struct lt_call_req cr = {
		.path_suffix = call->path_suffix,
		.body = call->body,
		.body_len = call->body_len,
		.stream = call->stream,
		.on_body = call->stream ? on_body : NULL,
		.arg = &sc,
	};
	struct lt_call_result res;
	lt_provider_call(&srv->providers, t->provider, &cr, &res);
	rec.attempts = res.attempts;
	rec.upstream_status = res.status;
	rec.outcome = res.outcome;

	if (call->stream) {
		bool estimated = false, synthesized = false;
		if (sc.client_gone || res.outcome == LT_OUTCOME_CLIENT_GONE) {
			rec.outcome = LT_OUTCOME_CLIENT_GONE;
			rec.client_disconnected = true;
		} else if (res.outcome == LT_OUTCOME_OK) {
			(void)start_stream(&sc); /* an empty 2xx body still gets a stream */
			if (lt_sse_finish(&sc.sse) && !sc.tr.done)
				rec.outcome = LT_OUTCOME_ABORTED;
			if (rec.outcome == LT_OUTCOME_OK &&
			    (sc.tr.f == LT_FMT_GEMINI || sc.tr.done)) {
				if (!sc.tr.usage_found) {
					/* no upstream usage: bill (and show) the estimate,
					 * with the prompt counted */
					lt_tr_stream_usage(&sc.tr, call->prompt_estimate,
							   &sc.tr.usage, &synthesized);
					sc.tr.usage_found = true;
				}
				(void)lt_tr_stream_finish(&sc.tr, emit, &sc);
			} else if (rec.outcome == LT_OUTCOME_OK) {
				/* an OpenAI-shaped stream that ended without [DONE] */
				rec.outcome = LT_OUTCOME_ABORTED;
			}
			if (rec.outcome == LT_OUTCOME_ABORTED)
				(void)lt_tr_stream_error(&sc.tr, "upstream_disconnected",
							 "the provider's stream ended early", emit,
							 &sc);
			if (sc.client_gone) {
				rec.outcome = LT_OUTCOME_CLIENT_GONE;
				rec.client_disconnected = true;
			}
			lt_reply_stream_end(req);
		} else if (sc.started) {
			/* failed after the stream began: end it cleanly with an error frame */
			if (res.outcome == LT_OUTCOME_UPSTREAM_ERROR)
				rec.outcome = LT_OUTCOME_ABORTED;
			(void)lt_tr_stream_error(&sc.tr,
						 res.outcome == LT_OUTCOME_TIMEOUT
							 ? "timeout"
							 : "upstream_disconnected",
						 res.outcome == LT_OUTCOME_TIMEOUT
							 ? "the provider's stream timed out"
							 : "the provider's stream ended early",
						 emit, &sc);
			lt_reply_stream_end(req);
			if (sc.client_gone) {
				rec.outcome = LT_OUTCOME_CLIENT_GONE;
				rec.client_disconnected = true;
			}
		}
		out->replied = sc.started;
		if (sc.started)
			lt_tr_stream_usage(&sc.tr, call->prompt_estimate, &rec.tokens, &estimated);
		rec.tokens_estimated = sc.started && (estimated || synthesized);
		if (sc.ttft_mono)
			rec.ttft_ns = sc.ttft_mono - res.started_ns;
		if (!sc.started)
			call_error(&res, t, out);
		else
			out->status = 200;
		lt_sse_free(&sc.sse);
	} else if (res.outcome == LT_OUTCOME_OK) {
		bool found = false;
		enum lt_err e;
		char id[96];
		snprintf(id, sizeof id, "chatcmpl-%.80s", req->correlation_id);
		if (call->kind == LT_CHAT_EMBEDDINGS)
			e = lt_tr_embeddings_response(t->format, res.body, res.body_len,
						      t->client_model, &out->body, &out->body_len,
						      &rec.tokens, &found);
		else
			e = lt_tr_chat_response(t->format, res.body, res.body_len, t->client_model,
						id, lt_clock_now_ns(&srv->clock) / LT_NS_PER_S,
						&out->body, &out->body_len, &rec.tokens, &found);
		if (e) {
			rec.outcome = LT_OUTCOME_UPSTREAM_ERROR;
			char msg[256];
			snprintf(msg, sizeof msg,
				 "provider %s returned a body that is not valid %s %s JSON",
				 t->provider->name, lt_format_name(t->format),
				 call->kind == LT_CHAT_EMBEDDINGS ? "embeddings" : "chat");
			set_error(out, 502, "server_error", "upstream_error", msg);
		} else {
			out->status = 200;
			if (!found) {
				rec.tokens.input = call->prompt_estimate;
				rec.tokens_estimated = true;
			}
		}
	} else {
		call_error(&res, t, out);
	}
	lt_tokens_clamp(&rec.tokens);
	out->tokens = rec.tokens;
	rec.cost_micros = lt_cost_micros(&t->price, &rec.tokens);
	int64_t end = lt_clock_mono_ns();
	rec.latency_ns = end - res.started_ns;
	lt_call_result_free(&res);
	lt_usage_emit(srv, &rec);
	out->usage = rec;
}

void lt_chat_result_free(struct lt_chat_result *out)
{
	free(out->body);
	out->body = NULL;
}

void lt_chat_reply_error(struct lt_req *req, const struct lt_chat_result *r)
{
	char hdr[128] = "";
	if (r->retry_after_s >= 0)
		snprintf(hdr, sizeof hdr, "Retry-After: %lld\r\nretry-after-ms: %lld\r\n",
			 (long long)r->retry_after_s, (long long)r->retry_after_s * 1000);
	if (r->status == 503 && r->retry_after_s < 0)
		snprintf(hdr, sizeof hdr, "Retry-After: 1\r\n");
	lt_reply_openai_error(req, r->status, r->error_type ? r->error_type : "server_error",
			      r->error_code, NULL, r->message, hdr[0] ? hdr : NULL);
}
