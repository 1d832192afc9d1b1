/*
 * translate_common.c — the translator's front: format names, validation of
 * a client's chat request (lt_chat_req_parse), chat paths, upstream error
 * messages, the public entry points that dispatch on the wire format, the
 * stream functions shared by every format (init, finish, error, usage) and
 * the JSON helpers of translate_int.h.  See translate.h for the contract.
 *
 * Streams: lt_tr_stream_finish is called once per stream (it sends the only
 * "[DONE]"); when the client asked for usage and the upstream never sent
 * any, its usage chunk carries the estimate of lt_tr_stream_usage with an
 * input of 0 (the prompt estimate is the caller's).  An event that is an
 * upstream error object gives LT_EPROTO and emits nothing; the caller may
 * read its message with lt_tr_error_message and send lt_tr_stream_error.
 * Blank events and a "[DONE]" in a Gemini stream are ignored.
 *
 * Requests: beyond translate.h, lt_chat_req_parse refuses a body naming a
 * member it reads (model, stream, messages, ...) twice, so the gateway and
 * an upstream that takes the last duplicate never disagree on the model.
 *
 * Pure: no I/O, no globals.  Every cJSON tree built here is freed on every
 * path; strings handed out are malloc'd and owned by the caller.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider/translate_int.h"
#include "util/json.h"
#include "util/utf8.h"

const char *lt_format_name(enum lt_wire_format f)
{
	switch (f) {
	case LT_FMT_OPENAI: return "openai";
	case LT_FMT_GEMINI: return "gemini";
	case LT_FMT_QWEN: return "qwen";
	}
	return "unknown";
}

/* ---- helpers (translate_int.h) ---- */

void lt_tr_copy(char *dst, size_t cap, const char *src)
{
	if (!cap)
		return;
	size_t n = src ? strlen(src) : 0;
	if (n >= cap) {
		n = cap - 1;
		/* back off to the start of a UTF-8 sequence */
		while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
			n--;
	}
	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

enum lt_err lt_tr_fail(char *param, size_t param_cap, const char *p, char *why, size_t why_cap,
		       const char *fmt, ...)
{
	if (param && param_cap)
		lt_tr_copy(param, param_cap, p);
	if (why && why_cap) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(why, why_cap, fmt, ap);
		va_end(ap);
		size_t bad;
		if (n < 0)
			why[0] = '\0';
		else if (!lt_utf8_valid(why, strlen(why), &bad))
			why[bad] = '\0'; /* a cut through a UTF-8 sequence */
	}
	return LT_EINVAL;
}

enum lt_err lt_tr_parse_object(const char *body, size_t len, cJSON **out)
{
	*out = NULL;
	if (!body)
		return LT_EPROTO;
	cJSON *j = NULL;
	size_t pos;
	enum lt_err e = lt_json_parse(body, len, &j, &pos);
	if (e == LT_ENOMEM)
		return e;
	if (e)
		return LT_EPROTO;
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return LT_EPROTO;
	}
	*out = j;
	return LT_OK;
}

enum lt_err lt_tr_print(const cJSON *j, char **out, size_t *out_len)
{
	char *s = cJSON_PrintUnformatted(j);
	if (!s)
		return LT_ENOMEM;
	*out = s;
	if (out_len)
		*out_len = strlen(s);
	return LT_OK;
}

void lt_tr_remove(cJSON *obj, const char *name)
{
	while (cJSON_GetObjectItemCaseSensitive(obj, name))
		cJSON_DeleteItemFromObjectCaseSensitive(obj, name);
}

enum lt_err lt_tr_set(cJSON *obj, const char *name, cJSON *item)
{
	if (!item)
		return LT_ENOMEM;
	cJSON *first = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (first) {
		/* drop duplicates after the first, then replace it in place */
		for (cJSON *it = first->next; it;) {
			cJSON *next = it->next;
			if (it->string && !strcmp(it->string, name))
				cJSON_Delete(cJSON_DetachItemViaPointer(obj, it));
			it = next;
		}
		if (!cJSON_ReplaceItemInObjectCaseSensitive(obj, name, item)) {
			cJSON_Delete(item);
			return LT_ENOMEM;
		}
		return LT_OK;
	}
	if (!cJSON_AddItemToObject(obj, name, item)) {
		cJSON_Delete(item);
		return LT_ENOMEM;
	}
	return LT_OK;
}

const cJSON *lt_tr_get(const cJSON *obj, const char *name)
{
	if (!cJSON_IsObject(obj))
		return NULL;
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
	return (it && !cJSON_IsNull(it)) ? it : NULL;
}

enum lt_err lt_tr_get_count(const cJSON *obj, const char *name, int64_t *out)
{
	*out = 0;
	enum lt_err e = lt_json_get_i64(obj, name, 0, LT_JSON_INT_MAX, out);
	if (e == LT_ENOTFOUND) {
		*out = 0;
		return LT_OK;
	}
	return e ? LT_EPROTO : LT_OK;
}

enum lt_err lt_tr_usage_read(const cJSON *usage, struct lt_tokens *t)
{
	memset(t, 0, sizeof *t);
	if (!cJSON_IsObject(usage))
		return LT_EPROTO;
	enum lt_err e = lt_tr_get_count(usage, "prompt_tokens", &t->input);
	if (!e)
		e = lt_tr_get_count(usage, "completion_tokens", &t->output);
	if (e)
		return e;
	const cJSON *pd = lt_tr_get(usage, "prompt_tokens_details");
	if (pd) {
		if (!cJSON_IsObject(pd))
			return LT_EPROTO;
		e = lt_tr_get_count(pd, "cached_tokens", &t->cached_input);
		if (e)
			return e;
	}
	const cJSON *cd = lt_tr_get(usage, "completion_tokens_details");
	if (cd) {
		if (!cJSON_IsObject(cd))
			return LT_EPROTO;
		e = lt_tr_get_count(cd, "reasoning_tokens", &t->reasoning);
		if (e)
			return e;
	}
	lt_tokens_clamp(t);
	return LT_OK;
}

/* usage[outer] is an object (made one if it is not) with key = v. */
static enum lt_err set_detail(cJSON *usage, const char *outer, const char *key, int64_t v)
{
	cJSON *d = cJSON_GetObjectItemCaseSensitive(usage, outer);
	if (!cJSON_IsObject(d)) {
		enum lt_err e = lt_tr_set(usage, outer, cJSON_CreateObject());
		if (e)
			return e;
		d = cJSON_GetObjectItemCaseSensitive(usage, outer);
	}
	return lt_tr_set(d, key, cJSON_CreateNumber((double)v));
}

enum lt_err lt_tr_usage_write(cJSON *usage, const struct lt_tokens *t)
{
	enum lt_err e = lt_tr_set(usage, "prompt_tokens", cJSON_CreateNumber((double)t->input));
	if (!e)
		e = lt_tr_set(usage, "completion_tokens", cJSON_CreateNumber((double)t->output));
	if (!e)
		e = lt_tr_set(usage, "total_tokens",
			      cJSON_CreateNumber((double)(t->input + t->output)));
	if (!e)
		e = set_detail(usage, "prompt_tokens_details", "cached_tokens", t->cached_input);
	if (!e)
		e = set_detail(usage, "completion_tokens_details", "reasoning_tokens",
			       t->reasoning);
	return e;
}

cJSON *lt_tr_usage_new(const struct lt_tokens *t)
{
	cJSON *u = cJSON_CreateObject();
	if (u && lt_tr_usage_write(u, t) != LT_OK) {
		cJSON_Delete(u);
		u = NULL;
	}
	return u;
}

cJSON *lt_tr_chunk_new(const struct lt_tr_stream *st)
{
	cJSON *c = cJSON_CreateObject();
	if (!c)
		return NULL;
	if (!cJSON_AddStringToObject(c, "id", st->id) ||
	    !cJSON_AddStringToObject(c, "object", "chat.completion.chunk") ||
	    !cJSON_AddNumberToObject(c, "created", (double)st->created) ||
	    !cJSON_AddStringToObject(c, "model", st->model)) {
		cJSON_Delete(c);
		return NULL;
	}
	return c;
}

enum lt_err lt_tr_emit_raw(struct lt_tr_stream *st, const char *payload, lt_tr_emit_fn emit,
			   void *arg)
{
	size_t n = strlen(payload);
	size_t len = 6 + n + 2;
	char *frame = malloc(len + 1);
	if (!frame)
		return LT_ENOMEM;
	memcpy(frame, "data: ", 6);
	memcpy(frame + 6, payload, n);
	memcpy(frame + 6 + n, "\n\n", 3);
	enum lt_err e = emit(arg, frame, len);
	free(frame);
	if (!e)
		st->chunks++;
	return e;
}

enum lt_err lt_tr_emit_json(struct lt_tr_stream *st, const cJSON *j, lt_tr_emit_fn emit, void *arg)
{
	char *s = cJSON_PrintUnformatted(j);
	if (!s)
		return LT_ENOMEM;
	enum lt_err e = lt_tr_emit_raw(st, s, emit, arg);
	free(s);
	return e;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool lt_tr_data_blank(const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!is_space(data[i]))
			return false;
	return true;
}

bool lt_tr_data_done(const char *data, size_t len)
{
	while (len && is_space(data[len - 1]))
		len--;
	while (len && is_space(*data)) {
		data++;
		len--;
	}
	return len == 6 && !memcmp(data, "[DONE]", 6);
}

/* ---- request validation ---- */

#define MAX_MESSAGES 4096
#define MAX_STOP 4

/* Top-level members this module reads or rewrites: a body naming one of
 * them twice is refused, so the gateway and the upstream (which may take
 * the last of duplicates) can never disagree on model or stream. */
static const char *const known_keys[] = {
	"model", "messages",	"stream", "stream_options", "max_tokens", "max_completion_tokens",
	"n",	 "temperature", "top_p",  "stop",	    "tools",
};
#define NKNOWN (sizeof known_keys / sizeof known_keys[0])

static enum lt_err check_duplicates(const cJSON *body, char *param, size_t param_cap, char *why,
				    size_t why_cap)
{
	unsigned seen[NKNOWN] = {0};
	const cJSON *it;
	cJSON_ArrayForEach(it, body)
	{
		if (!it->string)
			continue;
		for (size_t k = 0; k < NKNOWN; k++) {
			if (strcmp(it->string, known_keys[k]) != 0)
				continue;
			if (seen[k]++)
				return lt_tr_fail(param, param_cap, known_keys[k], why, why_cap,
						  "%s must not appear more than once",
						  known_keys[k]);
			break;
		}
	}
	return LT_OK;
}

static bool role_known(const char *r)
{
	static const char *const roles[] = {"system", "developer", "user", "assistant", "tool"};
	for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
		if (!strcmp(r, roles[i]))
			return true;
	return false;
}

static enum lt_err check_message(const cJSON *m, size_t i, size_t *bytes, char *param,
				 size_t param_cap, char *why, size_t why_cap)
{
	char p[64];
	snprintf(p, sizeof p, "messages[%zu]", i);
	if (!cJSON_IsObject(m))
		return lt_tr_fail(param, param_cap, p, why, why_cap, "%s must be an object", p);

	snprintf(p, sizeof p, "messages[%zu].role", i);
	const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
	if (!cJSON_IsString(role) || !role_known(role->valuestring))
		return lt_tr_fail(param, param_cap, p, why, why_cap,
				  "%s must be one of system, developer, user, assistant, tool", p);
	bool assistant = !strcmp(role->valuestring, "assistant");

	const cJSON *calls = lt_tr_get(m, "tool_calls");
	if (calls && (!assistant || !cJSON_IsArray(calls))) {
		snprintf(p, sizeof p, "messages[%zu].tool_calls", i);
		return lt_tr_fail(param, param_cap, p, why, why_cap,
				  "%s is only allowed as an array on assistant messages", p);
	}
	bool may_be_null = assistant && (calls || lt_tr_get(m, "function_call"));

	snprintf(p, sizeof p, "messages[%zu].content", i);
	const cJSON *c = lt_tr_get(m, "content");
	if (!c) {
		if (may_be_null)
			return LT_OK;
		return lt_tr_fail(param, param_cap, p, why, why_cap,
				  "%s is required (it may be null only on an assistant message "
				  "with tool_calls)",
				  p);
	}
	if (cJSON_IsString(c)) {
		*bytes += strlen(c->valuestring);
		return LT_OK;
	}
	if (!cJSON_IsArray(c))
		return lt_tr_fail(param, param_cap, p, why, why_cap,
				  "%s must be a string or an array of content parts", p);
	if (!c->child)
		return lt_tr_fail(param, param_cap, p, why, why_cap,
				  "%s must not be an empty array", p);
	size_t j = 0;
	const cJSON *part;
	cJSON_ArrayForEach(part, c)
	{
		const cJSON *type = lt_tr_get(part, "type");
		if (!cJSON_IsString(type) || !type->valuestring[0]) {
			snprintf(p, sizeof p, "messages[%zu].content[%zu].type", i, j);
			return lt_tr_fail(param, param_cap, p, why, why_cap,
					  "messages[%zu].content[%zu] must be an object with a "
					  "string \"type\"",
					  i, j);
		}
		if (!strcmp(type->valuestring, "text")) {
			const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
			if (!cJSON_IsString(text)) {
				snprintf(p, sizeof p, "messages[%zu].content[%zu].text", i, j);
				return lt_tr_fail(param, param_cap, p, why, why_cap,
						  "%s must be a string", p);
			}
			*bytes += strlen(text->valuestring);
		}
		j++;
	}
	return LT_OK;
}

static enum lt_err check_number(const cJSON *body, const char *name, double max, char *param,
				size_t param_cap, char *why, size_t why_cap)
{
	const cJSON *v = lt_tr_get(body, name);
	if (!v)
		return LT_OK;
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
	    v->valuedouble > max)
		return lt_tr_fail(param, param_cap, name, why, why_cap,
				  "%s must be a number between 0 and %g", name, max);
	return LT_OK;
}

static enum lt_err check_int(const cJSON *body, const char *name, int64_t min, int64_t max,
			     int64_t *out, char *param, size_t param_cap, char *why, size_t why_cap)
{
	enum lt_err e = lt_json_get_i64(body, name, min, max, out);
	if (e == LT_OK || e == LT_ENOTFOUND)
		return LT_OK;
	return lt_tr_fail(param, param_cap, name, why, why_cap,
			  "%s must be an integer between %lld and %lld", name, (long long)min,
			  (long long)max);
}

static enum lt_err check_stop(const cJSON *body, char *param, size_t param_cap, char *why,
			      size_t why_cap)
{
	const cJSON *stop = lt_tr_get(body, "stop");
	if (!stop || cJSON_IsString(stop))
		return LT_OK;
	bool ok = cJSON_IsArray(stop) && cJSON_GetArraySize(stop) <= MAX_STOP;
	const cJSON *s;
	cJSON_ArrayForEach(s, stop)
	{
		if (!cJSON_IsString(s))
			ok = false;
	}
	if (!ok)
		return lt_tr_fail(param, param_cap, "stop", why, why_cap,
				  "stop must be a string or an array of at most %d strings",
				  MAX_STOP);
	return LT_OK;
}

enum lt_err lt_chat_req_parse(const cJSON *body, struct lt_chat_req *out, char *param,
			      size_t param_cap, char *why, size_t why_cap)
{
	memset(out, 0, sizeof *out);
	out->max_tokens = -1;
	if (param && param_cap)
		param[0] = '\0';
	if (why && why_cap)
		why[0] = '\0';
	if (!cJSON_IsObject(body))
		return lt_tr_fail(param, param_cap, "", why, why_cap,
				  "the request body must be a JSON object");
	enum lt_err e = check_duplicates(body, param, param_cap, why, why_cap);
	if (e)
		return e;

	const cJSON *model = lt_tr_get(body, "model");
	if (!model)
		return lt_tr_fail(param, param_cap, "model", why, why_cap, "model is required");
	if (!cJSON_IsString(model) || !model->valuestring[0])
		return lt_tr_fail(param, param_cap, "model", why, why_cap,
				  "model must be a non-empty string");
	if (strlen(model->valuestring) > LT_TR_MODEL_MAX)
		return lt_tr_fail(param, param_cap, "model", why, why_cap,
				  "model must be at most %d bytes", LT_TR_MODEL_MAX);

	const cJSON *msgs = lt_tr_get(body, "messages");
	if (!msgs)
		return lt_tr_fail(param, param_cap, "messages", why, why_cap,
				  "messages is required");
	if (!cJSON_IsArray(msgs) || !msgs->child)
		return lt_tr_fail(param, param_cap, "messages", why, why_cap,
				  "messages must be a non-empty array");
	size_t n = 0, bytes = 0;
	const cJSON *m;
	cJSON_ArrayForEach(m, msgs)
	{
		if (n == MAX_MESSAGES)
			return lt_tr_fail(param, param_cap, "messages", why, why_cap,
					  "messages must hold at most %d entries", MAX_MESSAGES);
		e = check_message(m, n, &bytes, param, param_cap, why, why_cap);
		if (e)
			return e;
		n++;
	}

	bool stream = false;
	e = lt_json_get_bool(body, "stream", &stream);
	if (e && e != LT_ENOTFOUND)
		return lt_tr_fail(param, param_cap, "stream", why, why_cap,
				  "stream must be a boolean");
	bool include_usage = false;
	const cJSON *so = lt_tr_get(body, "stream_options");
	if (so) {
		if (!cJSON_IsObject(so))
			return lt_tr_fail(param, param_cap, "stream_options", why, why_cap,
					  "stream_options must be an object");
		if (!stream)
			return lt_tr_fail(param, param_cap, "stream_options", why, why_cap,
					  "stream_options is only allowed when stream is true");
		e = lt_json_get_bool(so, "include_usage", &include_usage);
		if (e && e != LT_ENOTFOUND)
			return lt_tr_fail(param, param_cap, "stream_options.include_usage", why,
					  why_cap,
					  "stream_options.include_usage must be a boolean");
	}

	int64_t mt = -1, mct = -1, nn = 1;
	if ((e = check_int(body, "max_tokens", 1, 1000000, &mt, param, param_cap, why, why_cap)) ||
	    (e = check_int(body, "max_completion_tokens", 1, 1000000, &mct, param, param_cap, why,
			   why_cap)) ||
	    (e = check_int(body, "n", 1, 8, &nn, param, param_cap, why, why_cap)) ||
	    (e = check_number(body, "temperature", 2, param, param_cap, why, why_cap)) ||
	    (e = check_number(body, "top_p", 1, param, param_cap, why, why_cap)) ||
	    (e = check_stop(body, param, param_cap, why, why_cap)))
		return e;

	out->json = body;
	out->model = model->valuestring;
	out->stream = stream;
	out->include_usage = include_usage;
	out->max_tokens = mct > 0 ? mct : mt;
	out->prompt_bytes = bytes;
	out->nmessages = n;
	return LT_OK;
}

/* ---- paths ---- */

static bool model_char_ok(char c, bool slash)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == ':' || c == '-' || (slash && c == '/');
}

enum lt_err lt_tr_chat_path(enum lt_wire_format f, const char *upstream_model, bool stream,
			    char *out, size_t cap)
{
	if (cap)
		out[0] = '\0';
	if (!upstream_model || !upstream_model[0])
		return LT_EINVAL;
	for (const char *p = upstream_model; *p; p++)
		if (!model_char_ok(*p, f == LT_FMT_OPENAI))
			return LT_EINVAL;
	int n;
	switch (f) {
	case LT_FMT_OPENAI:
	case LT_FMT_QWEN: n = snprintf(out, cap, "/chat/completions"); break;
	case LT_FMT_GEMINI:
		n = snprintf(out, cap, "/models/%s:%s", upstream_model,
			     stream ? "streamGenerateContent?alt=sse" : "generateContent");
		break;
	default: return LT_EINVAL;
	}
	if (n < 0 || (size_t)n >= cap) {
		if (cap)
			out[0] = '\0';
		return LT_ETOOBIG;
	}
	return LT_OK;
}

/* ---- dispatch ---- */

enum lt_err lt_tr_chat_request(enum lt_wire_format f, const struct lt_chat_req *rq,
			       const char *upstream_model, char **body, size_t *body_len,
			       char *param, size_t param_cap, char *why, size_t why_cap)
{
	*body = NULL;
	*body_len = 0;
	if (param && param_cap)
		param[0] = '\0';
	if (why && why_cap)
		why[0] = '\0';
	if (!rq || !cJSON_IsObject(rq->json))
		return lt_tr_fail(param, param_cap, "", why, why_cap,
				  "the request body must be a JSON object");
	if (!upstream_model || !upstream_model[0])
		return lt_tr_fail(param, param_cap, "model", why, why_cap,
				  "no upstream model is configured for this model");
	switch (f) {
	case LT_FMT_OPENAI:
	case LT_FMT_QWEN: return lt_tr_openai_request(rq, upstream_model, body, body_len);
	case LT_FMT_GEMINI:
		return lt_tr_gemini_request(rq, body, body_len, param, param_cap, why, why_cap);
	}
	return lt_tr_fail(param, param_cap, "", why, why_cap, "unknown wire format");
}

enum lt_err lt_tr_chat_response(enum lt_wire_format f, const char *body, size_t len,
				const char *client_model, const char *id, int64_t created,
				char **out, size_t *out_len, struct lt_tokens *usage,
				bool *usage_found)
{
	*out = NULL;
	*out_len = 0;
	memset(usage, 0, sizeof *usage);
	*usage_found = false;
	if (!client_model)
		client_model = "";
	if (!id)
		id = "chatcmpl-leakyd";
	switch (f) {
	case LT_FMT_OPENAI:
	case LT_FMT_QWEN:
		return lt_tr_openai_response(body, len, client_model, id, created, out, out_len,
					     usage, usage_found);
	case LT_FMT_GEMINI:
		return lt_tr_gemini_response(body, len, client_model, id, created, out, out_len,
					     usage, usage_found);
	}
	return LT_EINVAL;
}

/* ---- upstream error bodies ---- */

/* Copy s into out[cap]: control characters become spaces, whitespace runs
 * collapse, and truncation falls on a UTF-8 boundary. */
static void copy_message(char *out, size_t cap, const char *s)
{
	size_t o = 0, n = strlen(s);
	bool space = true; /* drops leading whitespace */
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7F || c == ' ') {
			if (!space && o + 1 < cap)
				out[o++] = ' ';
			space = true;
			i++;
			continue;
		}
		size_t seq = c < 0x80 ? 1 : lt_utf8_seq((const unsigned char *)s + i, n - i);
		if (!seq)
			seq = 1; /* cannot happen for parsed JSON; copied as is */
		if (o + seq >= cap)
			break;
		memcpy(out + o, s + i, seq);
		o += seq;
		i += seq;
		space = false;
	}
	while (o && out[o - 1] == ' ')
		o--;
	out[o] = '\0';
}

/* The message of {"error":{"message"}}, {"error":"..."}, {"message"} or a
 * one-element array of those (Gemini sometimes wraps its error). */
static const char *find_message(const cJSON *j)
{
	if (cJSON_IsArray(j))
		j = cJSON_GetArrayItem(j, 0);
	if (!cJSON_IsObject(j))
		return NULL;
	const cJSON *err = lt_tr_get(j, "error");
	const cJSON *msg = NULL;
	if (cJSON_IsObject(err))
		msg = lt_tr_get(err, "message");
	else if (cJSON_IsString(err))
		msg = err;
	if (!msg)
		msg = lt_tr_get(j, "message");
	if (cJSON_IsString(msg) && msg->valuestring[0])
		return msg->valuestring;
	return NULL;
}

void lt_tr_error_message(const char *body, size_t len, int status, char *out, size_t cap)
{
	if (!out || !cap)
		return;
	out[0] = '\0';
	cJSON *j = NULL;
	size_t pos;
	if (body && len && lt_json_parse(body, len, &j, &pos) == LT_OK) {
		const char *m = find_message(j);
		if (m)
			copy_message(out, cap, m);
		cJSON_Delete(j);
	}
	if (!out[0])
		snprintf(out, cap, "the upstream provider returned HTTP %d", status);
}

/* ---- streams ---- */

void lt_tr_stream_init(struct lt_tr_stream *st, enum lt_wire_format f, const char *client_model,
		       const char *id, int64_t created, bool include_usage)
{
	memset(st, 0, sizeof *st);
	st->f = f;
	lt_tr_copy(st->model, sizeof st->model, client_model ? client_model : "");
	lt_tr_copy(st->id, sizeof st->id, id && id[0] ? id : "chatcmpl-leakyd");
	st->created = created;
	st->include_usage = include_usage;
}

enum lt_err lt_tr_stream_event(struct lt_tr_stream *st, const char *data, size_t len,
			       lt_tr_emit_fn emit, void *arg)
{
	if (!data)
		return LT_EPROTO;
	switch (st->f) {
	case LT_FMT_OPENAI:
	case LT_FMT_QWEN: return lt_tr_openai_stream_event(st, data, len, emit, arg);
	case LT_FMT_GEMINI: return lt_tr_gemini_stream_event(st, data, len, emit, arg);
	}
	return LT_EINVAL;
}

enum lt_err lt_tr_stream_finish(struct lt_tr_stream *st, lt_tr_emit_fn emit, void *arg)
{
	enum lt_err e;
	if (st->f == LT_FMT_GEMINI && !st->finish_sent) {
		if (!st->role_sent && (e = lt_tr_gemini_role_chunk(st, emit, arg)))
			return e;
		e = lt_tr_gemini_finish_chunk(st, "stop", emit, arg);
		if (e)
			return e;
	}
	if (st->include_usage && !st->usage_sent) {
		struct lt_tokens t;
		bool estimated;
		lt_tr_stream_usage(st, 0, &t, &estimated);
		cJSON *c = lt_tr_chunk_new(st);
		cJSON *choices = c ? cJSON_AddArrayToObject(c, "choices") : NULL;
		if (!choices || lt_tr_set(c, "usage", lt_tr_usage_new(&t))) {
			cJSON_Delete(c);
			return LT_ENOMEM;
		}
		e = lt_tr_emit_json(st, c, emit, arg);
		cJSON_Delete(c);
		if (e)
			return e;
		st->usage_sent = true;
	}
	return lt_tr_emit_raw(st, "[DONE]", emit, arg);
}

enum lt_err lt_tr_stream_error(struct lt_tr_stream *st, const char *code, const char *message,
			       lt_tr_emit_fn emit, void *arg)
{
	cJSON *frame = cJSON_CreateObject();
	cJSON *err = frame ? cJSON_AddObjectToObject(frame, "error") : NULL;
	if (!err ||
	    !cJSON_AddStringToObject(err, "message",
				     message && message[0] ? message : "upstream error") ||
	    !cJSON_AddStringToObject(err, "type", "server_error") ||
	    !cJSON_AddNullToObject(err, "param") ||
	    !(code ? cJSON_AddStringToObject(err, "code", code)
		   : cJSON_AddNullToObject(err, "code"))) {
		cJSON_Delete(frame);
		return LT_ENOMEM;
	}
	enum lt_err e = lt_tr_emit_json(st, frame, emit, arg);
	cJSON_Delete(frame);
	return e;
}

void lt_tr_stream_usage(const struct lt_tr_stream *st, int64_t prompt_estimate,
			struct lt_tokens *out, bool *estimated)
{
	if (st->usage_found) {
		*out = st->usage;
		*estimated = false;
	} else {
		memset(out, 0, sizeof *out);
		out->input = prompt_estimate > 0 ? prompt_estimate : 0;
		/* lt_token_estimate counts bytes only (usage.h); the text itself
		 * is not kept, so only its length is passed. */
		out->output = lt_token_estimate(NULL, (size_t)st->content_bytes);
		*estimated = true;
	}
	lt_tokens_clamp(out);
}
