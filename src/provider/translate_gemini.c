/*
 * translate_gemini.c — Google's generateContent wire format: the request
 * built from an OpenAI chat request, a GenerateContentResponse turned into
 * a chat.completion, and a streamGenerateContent?alt=sse stream turned into
 * OpenAI chunks.  See translate.h.
 *
 * Mapping: user → "user", assistant → "model", system and developer →
 * systemInstruction.parts (one part per text, in order); max_tokens →
 * maxOutputTokens, temperature, top_p → topP, stop → stopSequences,
 * n → candidateCount (only 1).  Parts marked "thought": true are reasoning:
 * never content, but counted in a stream's content_bytes.  Only the first
 * candidate of a streamed response is translated (the request asks for one).
 * Usage: input = promptTokenCount, cached = cachedContentTokenCount,
 * output = candidatesTokenCount + thoughtsTokenCount, reasoning =
 * thoughtsTokenCount.  Trees built here are freed on every path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider/translate_int.h"
#include "util/buf.h"
#include "util/json.h"

/* ---- request ---- */

/* Append {"text": s} to the parts array. */
static enum lt_err add_text(cJSON *parts, const char *s)
{
	cJSON *p = cJSON_CreateObject();
	if (!p || !cJSON_AddStringToObject(p, "text", s) || !cJSON_AddItemToArray(parts, p)) {
		cJSON_Delete(p);
		return LT_ENOMEM;
	}
	return LT_OK;
}

/* The text parts of message i's content into parts. */
static enum lt_err message_parts(const cJSON *m, size_t i, cJSON *parts, char *param,
				 size_t param_cap, char *why, size_t why_cap)
{
	char p[64];
	const cJSON *c = lt_tr_get(m, "content");
	if (cJSON_IsString(c))
		return add_text(parts, c->valuestring);
	snprintf(p, sizeof p, "messages[%zu].content", i);
	if (!cJSON_IsArray(c))
		return lt_tr_fail(param, param_cap, p, why, why_cap,
				  "%s must be text for gemini models", p);
	size_t j = 0;
	const cJSON *part;
	cJSON_ArrayForEach(part, c)
	{
		const cJSON *type = lt_tr_get(part, "type");
		const cJSON *text = lt_tr_get(part, "text");
		if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") != 0 ||
		    !cJSON_IsString(text)) {
			char got[33];
			lt_tr_copy(got, sizeof got, cJSON_IsString(type) ? type->valuestring : "");
			snprintf(p, sizeof p, "messages[%zu].content[%zu].type", i, j);
			return lt_tr_fail(param, param_cap, p, why, why_cap,
					  "only text content parts are supported for gemini "
					  "models (%s is \"%s\")",
					  p, got);
		}
		enum lt_err e = add_text(parts, text->valuestring);
		if (e)
			return e;
		j++;
	}
	return LT_OK;
}

static enum lt_err build_contents(const cJSON *msgs, cJSON *contents, cJSON *sys_parts, char *param,
				  size_t param_cap, char *why, size_t why_cap)
{
	char p[64];
	size_t i = 0;
	const cJSON *m;
	cJSON_ArrayForEach(m, msgs)
	{
		const cJSON *role = lt_tr_get(m, "role");
		snprintf(p, sizeof p, "messages[%zu].role", i);
		if (!cJSON_IsString(role))
			return lt_tr_fail(param, param_cap, p, why, why_cap, "%s must be a string",
					  p);
		const char *r = role->valuestring;
		const cJSON *calls = lt_tr_get(m, "tool_calls");
		if ((calls && cJSON_GetArraySize(calls) > 0) || lt_tr_get(m, "function_call")) {
			snprintf(p, sizeof p, "messages[%zu].tool_calls", i);
			return lt_tr_fail(param, param_cap, p, why, why_cap,
					  "tool calls are not supported for gemini models");
		}
		enum lt_err e;
		if (!strcmp(r, "system") || !strcmp(r, "developer")) {
			e = message_parts(m, i, sys_parts, param, param_cap, why, why_cap);
		} else if (!strcmp(r, "user") || !strcmp(r, "assistant")) {
			cJSON *entry = cJSON_CreateObject();
			if (!entry || !cJSON_AddItemToArray(contents, entry)) {
				cJSON_Delete(entry);
				return LT_ENOMEM;
			}
			/* entry belongs to contents from here on */
			cJSON *parts = NULL;
			if (!cJSON_AddStringToObject(entry, "role",
						     r[0] == 'u' ? "user" : "model") ||
			    !(parts = cJSON_AddArrayToObject(entry, "parts")))
				return LT_ENOMEM;
			e = message_parts(m, i, parts, param, param_cap, why, why_cap);
		} else {
			char got[33];
			lt_tr_copy(got, sizeof got, r);
			return lt_tr_fail(param, param_cap, p, why, why_cap,
					  "%s \"%s\" is not supported for gemini models", p, got);
		}
		if (e)
			return e;
		i++;
	}
	if (!contents->child)
		return lt_tr_fail(param, param_cap, "messages", why, why_cap,
				  "gemini models need at least one user or assistant message");
	return LT_OK;
}

static enum lt_err build_config(const struct lt_chat_req *rq, cJSON *cfg, char *param,
				size_t param_cap, char *why, size_t why_cap)
{
	const cJSON *body = rq->json;
	int64_t n = 1;
	bool has_n = false;
	enum lt_err e = lt_json_get_i64(body, "n", 1, 8, &n);
	if (e == LT_OK)
		has_n = true;
	else if (e != LT_ENOTFOUND)
		return lt_tr_fail(param, param_cap, "n", why, why_cap,
				  "n must be an integer between 1 and 8");
	if (n > 1)
		return lt_tr_fail(param, param_cap, "n", why, why_cap,
				  "n greater than 1 is not supported for gemini models");
	const cJSON *tools = lt_tr_get(body, "tools");
	if (tools && cJSON_GetArraySize(tools) > 0)
		return lt_tr_fail(param, param_cap, "tools", why, why_cap,
				  "tools are not supported for gemini models");

	if (rq->max_tokens > 0 &&
	    !cJSON_AddNumberToObject(cfg, "maxOutputTokens", (double)rq->max_tokens))
		return LT_ENOMEM;
	const cJSON *v = lt_tr_get(body, "temperature");
	if (cJSON_IsNumber(v) && !cJSON_AddNumberToObject(cfg, "temperature", v->valuedouble))
		return LT_ENOMEM;
	v = lt_tr_get(body, "top_p");
	if (cJSON_IsNumber(v) && !cJSON_AddNumberToObject(cfg, "topP", v->valuedouble))
		return LT_ENOMEM;
	v = lt_tr_get(body, "stop");
	if (cJSON_IsString(v) || cJSON_IsArray(v)) {
		cJSON *seq = cJSON_AddArrayToObject(cfg, "stopSequences");
		if (!seq)
			return LT_ENOMEM;
		const cJSON *s;
		if (cJSON_IsString(v)) {
			if (!cJSON_AddItemToArray(seq, cJSON_CreateString(v->valuestring)))
				return LT_ENOMEM;
		} else {
			cJSON_ArrayForEach(s, v)
			{
				if (!cJSON_IsString(s))
					return lt_tr_fail(param, param_cap, "stop", why, why_cap,
							  "stop must be a string or an array of "
							  "strings");
				cJSON *c = cJSON_CreateString(s->valuestring);
				if (!c || !cJSON_AddItemToArray(seq, c)) {
					cJSON_Delete(c);
					return LT_ENOMEM;
				}
			}
		}
	}
	if (has_n && !cJSON_AddNumberToObject(cfg, "candidateCount", (double)n))
		return LT_ENOMEM;
	return LT_OK;
}

enum lt_err lt_tr_gemini_request(const struct lt_chat_req *rq, char **body, size_t *body_len,
				 char *param, size_t param_cap, char *why, size_t why_cap)
{
	const cJSON *msgs = lt_tr_get(rq->json, "messages");
	if (!cJSON_IsArray(msgs))
		return lt_tr_fail(param, param_cap, "messages", why, why_cap,
				  "messages must be a non-empty array");
	enum lt_err e = LT_ENOMEM;
	cJSON *root = cJSON_CreateObject();
	cJSON *sys_parts = cJSON_CreateArray();
	cJSON *cfg = cJSON_CreateObject();
	cJSON *contents = root ? cJSON_AddArrayToObject(root, "contents") : NULL;
	if (!contents || !sys_parts || !cfg)
		goto out;
	if ((e = build_contents(msgs, contents, sys_parts, param, param_cap, why, why_cap)) ||
	    (e = build_config(rq, cfg, param, param_cap, why, why_cap)))
		goto out;
	if (sys_parts->child) {
		cJSON *si = cJSON_AddObjectToObject(root, "systemInstruction");
		if (!si || !cJSON_AddItemToObject(si, "parts", sys_parts)) {
			e = LT_ENOMEM;
			goto out;
		}
		sys_parts = NULL;
	}
	if (cfg->child) {
		if (!cJSON_AddItemToObject(root, "generationConfig", cfg)) {
			e = LT_ENOMEM;
			goto out;
		}
		cfg = NULL;
	}
	e = lt_tr_print(root, body, body_len);
out:
	cJSON_Delete(root);
	cJSON_Delete(sys_parts);
	cJSON_Delete(cfg);
	return e;
}

/* ---- responses ---- */

static const char *map_finish(const char *r)
{
	static const char *const filtered[] = {
		"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"};
	if (!strcmp(r, "MAX_TOKENS"))
		return "length";
	for (size_t i = 0; i < sizeof filtered / sizeof filtered[0]; i++)
		if (!strcmp(r, filtered[i]))
			return "content_filter";
	return "stop";
}

static enum lt_err read_usage(const cJSON *root, struct lt_tokens *t, bool *found)
{
	memset(t, 0, sizeof *t);
	*found = false;
	const cJSON *um = lt_tr_get(root, "usageMetadata");
	if (!um)
		return LT_OK;
	if (!cJSON_IsObject(um))
		return LT_EPROTO;
	int64_t prompt, cand, cached, thoughts;
	enum lt_err e;
	if ((e = lt_tr_get_count(um, "promptTokenCount", &prompt)) ||
	    (e = lt_tr_get_count(um, "candidatesTokenCount", &cand)) ||
	    (e = lt_tr_get_count(um, "cachedContentTokenCount", &cached)) ||
	    (e = lt_tr_get_count(um, "thoughtsTokenCount", &thoughts)))
		return e;
	t->input = prompt;
	t->cached_input = cached;
	t->output = cand + thoughts;
	t->reasoning = thoughts;
	lt_tokens_clamp(t);
	*found = true;
	return LT_OK;
}

/* Check a candidate's types.  *parts is its parts array (or NULL), *finish
 * its finishReason (or NULL). */
static enum lt_err scan_candidate(const cJSON *cand, const cJSON **parts, const char **finish)
{
	*parts = NULL;
	*finish = NULL;
	if (!cJSON_IsObject(cand))
		return LT_EPROTO;
	const cJSON *fr = lt_tr_get(cand, "finishReason");
	if (fr) {
		if (!cJSON_IsString(fr))
			return LT_EPROTO;
		*finish = fr->valuestring;
	}
	const cJSON *content = lt_tr_get(cand, "content");
	if (!content)
		return LT_OK;
	if (!cJSON_IsObject(content))
		return LT_EPROTO;
	const cJSON *ps = lt_tr_get(content, "parts");
	if (!ps)
		return LT_OK;
	if (!cJSON_IsArray(ps))
		return LT_EPROTO;
	const cJSON *p;
	cJSON_ArrayForEach(p, ps)
	{
		if (!cJSON_IsObject(p))
			return LT_EPROTO;
		const cJSON *text = lt_tr_get(p, "text");
		if (text && !cJSON_IsString(text))
			return LT_EPROTO;
	}
	*parts = ps;
	return LT_OK;
}

/* A part's answer text (NULL for none), and whether it is reasoning. */
static const char *part_text(const cJSON *p, bool *thought)
{
	*thought = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "thought"));
	const cJSON *text = lt_tr_get(p, "text");
	return cJSON_IsString(text) ? text->valuestring : NULL;
}

/* The candidates array (NULL when absent); LT_EPROTO when it has the wrong
 * type or the body is an error object instead of a response. */
static enum lt_err get_candidates(const cJSON *root, const cJSON **out)
{
	const cJSON *c = lt_tr_get(root, "candidates");
	*out = c;
	if (c && !cJSON_IsArray(c))
		return LT_EPROTO;
	if (!c && lt_tr_get(root, "error"))
		return LT_EPROTO;
	return LT_OK;
}

/* Finish reason when the prompt itself was blocked (no candidates). */
static const char *blocked_reason(const cJSON *root)
{
	const cJSON *pf = lt_tr_get(root, "promptFeedback");
	return lt_tr_get(pf, "blockReason") ? "content_filter" : "stop";
}

static enum lt_err add_choice(cJSON *choices, int64_t index, const char *content,
			      const char *finish)
{
	cJSON *ch = cJSON_CreateObject();
	cJSON *msg = ch ? cJSON_CreateObject() : NULL;
	bool ok = msg && cJSON_AddNumberToObject(ch, "index", (double)index) &&
		  cJSON_AddItemToObject(ch, "message", msg);
	if (!ok)
		cJSON_Delete(msg);
	ok = ok && cJSON_AddStringToObject(msg, "role", "assistant") &&
	     cJSON_AddStringToObject(msg, "content", content) &&
	     cJSON_AddNullToObject(msg, "refusal") && cJSON_AddNullToObject(ch, "logprobs") &&
	     cJSON_AddStringToObject(ch, "finish_reason", finish);
	if (!ok || !cJSON_AddItemToArray(choices, ch)) {
		cJSON_Delete(ch);
		return LT_ENOMEM;
	}
	return LT_OK;
}

static enum lt_err translate_candidate(const cJSON *cand, int64_t pos, cJSON *choices)
{
	const cJSON *parts;
	const char *finish;
	enum lt_err e = scan_candidate(cand, &parts, &finish);
	if (e)
		return e;
	int64_t index = pos;
	if (lt_json_get_i64(cand, "index", 0, LT_JSON_INT_MAX, &index) == LT_EINVAL)
		return LT_EPROTO;
	struct lt_buf text;
	lt_buf_init(&text, NULL, 0, SIZE_MAX / 2);
	const cJSON *p;
	cJSON_ArrayForEach(p, parts)
	{
		bool thought;
		const char *s = part_text(p, &thought);
		if (s && !thought)
			lt_buf_puts(&text, s);
	}
	e = text.err;
	if (!e)
		e = add_choice(choices, index, text.data ? text.data : "",
			       finish ? map_finish(finish) : "stop");
	lt_buf_release(&text);
	return e;
}

enum lt_err lt_tr_gemini_response(const char *body, size_t len, const char *client_model,
				  const char *id, int64_t created, char **out, size_t *out_len,
				  struct lt_tokens *usage, bool *usage_found)
{
	cJSON *root, *res = NULL;
	enum lt_err e = lt_tr_parse_object(body, len, &root);
	if (e)
		return e;
	const cJSON *cands;
	struct lt_tokens t;
	bool found;
	if ((e = get_candidates(root, &cands)) || (e = read_usage(root, &t, &found)))
		goto out;
	char idbuf[160];
	const cJSON *rid = lt_tr_get(root, "responseId");
	if (rid && !cJSON_IsString(rid)) {
		e = LT_EPROTO;
		goto out;
	}
	if (rid && rid->valuestring[0]) {
		char rbuf[120];
		lt_tr_copy(rbuf, sizeof rbuf, rid->valuestring); /* cut on a UTF-8 boundary */
		snprintf(idbuf, sizeof idbuf, "chatcmpl-%s", rbuf);
		id = idbuf;
	}

	e = LT_ENOMEM;
	res = cJSON_CreateObject();
	if (!res || !cJSON_AddStringToObject(res, "id", id) ||
	    !cJSON_AddStringToObject(res, "object", "chat.completion") ||
	    !cJSON_AddNumberToObject(res, "created", (double)created) ||
	    !cJSON_AddStringToObject(res, "model", client_model))
		goto out;
	cJSON *choices = cJSON_AddArrayToObject(res, "choices");
	if (!choices)
		goto out;
	int64_t pos = 0;
	const cJSON *cand;
	cJSON_ArrayForEach(cand, cands)
	{
		if ((e = translate_candidate(cand, pos++, choices)))
			goto out;
	}
	if (!choices->child && (e = add_choice(choices, 0, "", blocked_reason(root))))
		goto out;
	if (found && (e = lt_tr_set(res, "usage", lt_tr_usage_new(&t))))
		goto out;
	e = lt_tr_print(res, out, out_len);
	if (!e) {
		*usage = t;
		*usage_found = found;
	}
out:
	cJSON_Delete(root);
	cJSON_Delete(res);
	return e;
}

/* ---- streams ---- */

/* Emit one chunk with a single choice: delta (adopted) and finish_reason
 * (NULL → null). */
static enum lt_err emit_choice(struct lt_tr_stream *st, cJSON *delta, const char *finish,
			       lt_tr_emit_fn emit, void *arg)
{
	cJSON *c = lt_tr_chunk_new(st);
	cJSON *choices = c ? cJSON_AddArrayToObject(c, "choices") : NULL;
	cJSON *ch = choices ? cJSON_CreateObject() : NULL;
	bool ok = ch && cJSON_AddItemToArray(choices, ch);
	if (!ok)
		cJSON_Delete(ch);
	ok = ok && cJSON_AddNumberToObject(ch, "index", 0) && delta &&
	     cJSON_AddItemToObject(ch, "delta", delta);
	if (!ok)
		cJSON_Delete(delta);
	ok = ok && cJSON_AddNullToObject(ch, "logprobs") &&
	     (finish ? cJSON_AddStringToObject(ch, "finish_reason", finish)
		     : cJSON_AddNullToObject(ch, "finish_reason")) &&
	     (!st->include_usage || cJSON_AddNullToObject(c, "usage"));
	enum lt_err e = ok ? lt_tr_emit_json(st, c, emit, arg) : LT_ENOMEM;
	cJSON_Delete(c);
	return e;
}

enum lt_err lt_tr_gemini_role_chunk(struct lt_tr_stream *st, lt_tr_emit_fn emit, void *arg)
{
	cJSON *d = cJSON_CreateObject();
	if (d && (!cJSON_AddStringToObject(d, "role", "assistant") ||
		  !cJSON_AddStringToObject(d, "content", ""))) {
		cJSON_Delete(d);
		d = NULL;
	}
	enum lt_err e = emit_choice(st, d, NULL, emit, arg);
	if (!e)
		st->role_sent = true;
	return e;
}

enum lt_err lt_tr_gemini_finish_chunk(struct lt_tr_stream *st, const char *reason,
				      lt_tr_emit_fn emit, void *arg)
{
	enum lt_err e = emit_choice(st, cJSON_CreateObject(), reason, emit, arg);
	if (!e) {
		st->finish_sent = true;
		lt_tr_copy(st->finish_reason, sizeof st->finish_reason, reason);
	}
	return e;
}

enum lt_err lt_tr_gemini_stream_event(struct lt_tr_stream *st, const char *data, size_t len,
				      lt_tr_emit_fn emit, void *arg)
{
	if (lt_tr_data_blank(data, len) || lt_tr_data_done(data, len))
		return LT_OK; /* Gemini sends no [DONE]; tolerate one */
	cJSON *root;
	enum lt_err e = lt_tr_parse_object(data, len, &root);
	if (e)
		return e;

	/* validate everything before emitting anything */
	const cJSON *cands, *parts = NULL;
	const char *finish = NULL;
	struct lt_tokens t;
	bool found;
	if ((e = get_candidates(root, &cands)) || (e = read_usage(root, &t, &found)))
		goto out;
	const cJSON *cand;
	cJSON_ArrayForEach(cand, cands)
	{
		const cJSON *ps;
		const char *fr;
		if ((e = scan_candidate(cand, &ps, &fr)))
			goto out;
		if (cand == cands->child) {
			parts = ps;
			finish = fr;
		}
	}
	if ((!cands || !cands->child) &&
	    lt_tr_get(lt_tr_get(root, "promptFeedback"), "blockReason"))
		finish = "SAFETY"; /* the prompt was blocked: no candidates come */

	if (found) {
		st->usage = t; /* the last report wins */
		st->usage_found = true;
	}
	if (st->done)
		goto out; /* after the finish, only usage is taken */
	if (!st->role_sent && (e = lt_tr_gemini_role_chunk(st, emit, arg)))
		goto out;
	const cJSON *p;
	cJSON_ArrayForEach(p, parts)
	{
		bool thought;
		const char *s = part_text(p, &thought);
		size_t n = s ? strlen(s) : 0;
		st->content_bytes += n;
		if (!n || thought)
			continue;
		cJSON *d = cJSON_CreateObject();
		if (d && !cJSON_AddStringToObject(d, "content", s)) {
			cJSON_Delete(d);
			d = NULL;
		}
		if ((e = emit_choice(st, d, NULL, emit, arg)))
			goto out;
	}
	if (finish) {
		st->done = true;
		e = lt_tr_gemini_finish_chunk(st, map_finish(finish), emit, arg);
	}
out:
	cJSON_Delete(root);
	return e;
}
