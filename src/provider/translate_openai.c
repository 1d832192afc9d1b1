/*
 * translate_openai.c — the OpenAI wire format, also spoken by Qwen's
 * DashScope compatible mode: chat request rewrite, chat.completion
 * normalisation, embeddings, and stream chunk handling.  See translate.h.
 *
 * Invariants: the client's body is copied, never modified; everything the
 * gateway does not rewrite ("model", stream_options.include_usage) passes
 * through untouched.  Output usage always carries
 * prompt_tokens_details.cached_tokens and completion_tokens_details.
 * reasoning_tokens, clamped so cached <= prompt and reasoning <= completion.
 * A stream forwards at most one chunk with a usage object, and only when the
 * client asked for it.  Trees parsed here are freed on every path.
 */
#include <stdlib.h>
#include <string.h>

#include "provider/translate_int.h"
#include "util/json.h"

#define MAX_EMBED_INPUTS 2048

enum lt_err lt_tr_openai_request(const struct lt_chat_req *rq, const char *upstream_model,
				 char **body, size_t *body_len)
{
	cJSON *b = cJSON_Duplicate(rq->json, 1);
	if (!b)
		return LT_ENOMEM;
	enum lt_err e = lt_tr_set(b, "model", cJSON_CreateString(upstream_model));
	if (!e && rq->stream) {
		/* the gateway bills from the upstream's usage, so always ask */
		cJSON *so = cJSON_GetObjectItemCaseSensitive(b, "stream_options");
		if (!cJSON_IsObject(so)) {
			e = lt_tr_set(b, "stream_options", cJSON_CreateObject());
			so = cJSON_GetObjectItemCaseSensitive(b, "stream_options");
		}
		if (!e)
			e = lt_tr_set(so, "include_usage", cJSON_CreateTrue());
	}
	if (!e)
		e = lt_tr_print(b, body, body_len);
	cJSON_Delete(b);
	return e;
}

/* obj[name] must be a string when present; set to dflt when absent. */
static enum lt_err default_str(cJSON *obj, const char *name, const char *dflt)
{
	const cJSON *it = lt_tr_get(obj, name);
	if (it)
		return cJSON_IsString(it) ? LT_OK : LT_EPROTO;
	return lt_tr_set(obj, name, cJSON_CreateString(dflt));
}

static enum lt_err default_num(cJSON *obj, const char *name, int64_t dflt)
{
	const cJSON *it = lt_tr_get(obj, name);
	if (it)
		return cJSON_IsNumber(it) ? LT_OK : LT_EPROTO;
	return lt_tr_set(obj, name, cJSON_CreateNumber((double)dflt));
}

enum lt_err lt_tr_openai_response(const char *body, size_t len, const char *client_model,
				  const char *id, int64_t created, char **out, size_t *out_len,
				  struct lt_tokens *usage, bool *usage_found)
{
	cJSON *root;
	enum lt_err e = lt_tr_parse_object(body, len, &root);
	if (e)
		return e;
	struct lt_tokens t = {0};
	bool found = false;
	cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage");
	if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "choices"))) {
		e = LT_EPROTO;
		goto out;
	}
	if (u && !cJSON_IsNull(u)) {
		if ((e = lt_tr_usage_read(u, &t)) || (e = lt_tr_usage_write(u, &t)))
			goto out;
		found = true;
	}
	if ((e = lt_tr_set(root, "model", cJSON_CreateString(client_model))) ||
	    (e = default_str(root, "id", id)) || (e = default_num(root, "created", created)))
		goto out;
	e = lt_tr_print(root, out, out_len);
	if (!e) {
		*usage = t;
		*usage_found = found;
	}
out:
	cJSON_Delete(root);
	return e;
}

/* ---- embeddings ---- */

enum lt_err lt_tr_embeddings_request(enum lt_wire_format f, const cJSON *client_body,
				     const char *upstream_model, char **body, size_t *body_len,
				     size_t *input_bytes, char *param, size_t param_cap, char *why,
				     size_t why_cap)
{
	*body = NULL;
	*body_len = 0;
	*input_bytes = 0;
	if (param && param_cap)
		param[0] = '\0';
	if (why && why_cap)
		why[0] = '\0';
	if (f != LT_FMT_OPENAI && f != LT_FMT_QWEN)
		return lt_tr_fail(param, param_cap, "model", why, why_cap,
				  "embeddings are not supported for %s models", lt_format_name(f));
	if (!cJSON_IsObject(client_body))
		return lt_tr_fail(param, param_cap, "", why, why_cap,
				  "the request body must be a JSON object");
	static const char *const once[] = {"model", "input"};
	for (size_t k = 0; k < 2; k++) {
		int seen = 0;
		const cJSON *it;
		cJSON_ArrayForEach(it, client_body)
		{
			if (it->string && !strcmp(it->string, once[k]))
				seen++;
		}
		if (seen > 1)
			return lt_tr_fail(param, param_cap, once[k], why, why_cap,
					  "%s must not appear more than once", once[k]);
	}
	const cJSON *model = lt_tr_get(client_body, "model");
	if (!model)
		return lt_tr_fail(param, param_cap, "model", why, why_cap, "model is required");
	if (!cJSON_IsString(model) || !model->valuestring[0] ||
	    strlen(model->valuestring) > LT_TR_MODEL_MAX)
		return lt_tr_fail(param, param_cap, "model", why, why_cap,
				  "model must be a non-empty string of at most %d bytes",
				  LT_TR_MODEL_MAX);
	const cJSON *input = lt_tr_get(client_body, "input");
	if (!input)
		return lt_tr_fail(param, param_cap, "input", why, why_cap, "input is required");
	size_t bytes = 0;
	if (cJSON_IsString(input)) {
		bytes = strlen(input->valuestring);
		if (!bytes)
			return lt_tr_fail(param, param_cap, "input", why, why_cap,
					  "input must not be an empty string");
	} else {
		bool ok = cJSON_IsArray(input) && input->child;
		int n = 0;
		const cJSON *s;
		cJSON_ArrayForEach(s, input)
		{
			if (!ok)
				break;
			if (!cJSON_IsString(s) || !s->valuestring[0] || ++n > MAX_EMBED_INPUTS)
				ok = false;
			else
				bytes += strlen(s->valuestring);
		}
		if (!ok)
			return lt_tr_fail(param, param_cap, "input", why, why_cap,
					  "input must be a non-empty string or an array of 1 to "
					  "%d non-empty strings",
					  MAX_EMBED_INPUTS);
	}
	if (!upstream_model || !upstream_model[0])
		return lt_tr_fail(param, param_cap, "model", why, why_cap,
				  "no upstream model is configured for this model");
	cJSON *b = cJSON_Duplicate(client_body, 1);
	if (!b)
		return LT_ENOMEM;
	enum lt_err e = lt_tr_set(b, "model", cJSON_CreateString(upstream_model));
	if (!e)
		e = lt_tr_print(b, body, body_len);
	cJSON_Delete(b);
	if (!e)
		*input_bytes = bytes;
	return e;
}

enum lt_err lt_tr_embeddings_response(enum lt_wire_format f, const char *body, size_t len,
				      const char *client_model, char **out, size_t *out_len,
				      struct lt_tokens *usage, bool *usage_found)
{
	*out = NULL;
	*out_len = 0;
	memset(usage, 0, sizeof *usage);
	*usage_found = false;
	if (f != LT_FMT_OPENAI && f != LT_FMT_QWEN)
		return LT_EINVAL;
	cJSON *root;
	enum lt_err e = lt_tr_parse_object(body, len, &root);
	if (e)
		return e;
	struct lt_tokens t = {0};
	bool found = false;
	if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "data"))) {
		e = LT_EPROTO;
		goto out;
	}
	const cJSON *u = lt_tr_get(root, "usage");
	if (u) {
		if (!cJSON_IsObject(u)) {
			e = LT_EPROTO;
			goto out;
		}
		if ((e = lt_tr_get_count(u, "prompt_tokens", &t.input)))
			goto out;
		found = true;
	}
	if ((e = lt_tr_set(root, "model", cJSON_CreateString(client_model ? client_model : ""))))
		goto out;
	e = lt_tr_print(root, out, out_len);
	if (!e) {
		*usage = t;
		*usage_found = found;
	}
out:
	cJSON_Delete(root);
	return e;
}

/* ---- streams ---- */

static void add_len(uint64_t *n, const cJSON *s)
{
	if (cJSON_IsString(s))
		*n += strlen(s->valuestring);
}

/* Check one streamed choice's types; count its text and note its finish. */
static enum lt_err scan_choice(const cJSON *ch, uint64_t *bytes, const char **finish)
{
	if (!cJSON_IsObject(ch))
		return LT_EPROTO;
	const cJSON *fr = lt_tr_get(ch, "finish_reason");
	if (fr) {
		if (!cJSON_IsString(fr))
			return LT_EPROTO;
		*finish = fr->valuestring;
	}
	const cJSON *d = lt_tr_get(ch, "delta");
	if (!d)
		return LT_OK;
	if (!cJSON_IsObject(d))
		return LT_EPROTO;
	static const char *const texts[] = {"content", "reasoning_content", "refusal"};
	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		const cJSON *s = lt_tr_get(d, texts[i]);
		if (s && !cJSON_IsString(s))
			return LT_EPROTO;
		add_len(bytes, s);
	}
	const cJSON *calls = lt_tr_get(d, "tool_calls");
	const cJSON *c;
	cJSON_ArrayForEach(c, calls)
	{
		add_len(bytes, lt_tr_get(lt_tr_get(c, "function"), "arguments"));
	}
	return LT_OK;
}

enum lt_err lt_tr_openai_stream_event(struct lt_tr_stream *st, const char *data, size_t len,
				      lt_tr_emit_fn emit, void *arg)
{
	if (st->done || lt_tr_data_blank(data, len))
		return LT_OK; /* nothing after [DONE]; keep-alive blanks */
	if (lt_tr_data_done(data, len)) {
		st->done = true;
		return LT_OK;
	}
	cJSON *root;
	enum lt_err e = lt_tr_parse_object(data, len, &root);
	if (e)
		return e;

	/* validate everything before emitting anything */
	const cJSON *choices = lt_tr_get(root, "choices");
	if ((choices && !cJSON_IsArray(choices)) || (!choices && lt_tr_get(root, "error"))) {
		e = LT_EPROTO; /* an error object in the stream: the caller reports it */
		goto out;
	}
	uint64_t bytes = 0;
	const char *finish = NULL;
	const cJSON *ch;
	cJSON_ArrayForEach(ch, choices)
	{
		if ((e = scan_choice(ch, &bytes, &finish)))
			goto out;
	}
	cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage");
	bool has_usage = u && !cJSON_IsNull(u);
	struct lt_tokens t;
	if (has_usage && (e = lt_tr_usage_read(u, &t)))
		goto out;

	st->content_bytes += bytes;
	if (finish) {
		st->finish_sent = true;
		lt_tr_copy(st->finish_reason, sizeof st->finish_reason, finish);
	}
	if (has_usage) {
		st->usage = t;
		st->usage_found = true;
	}
	if ((e = lt_tr_set(root, "model", cJSON_CreateString(st->model))))
		goto out;

	bool forward_usage = has_usage && st->include_usage && !st->usage_sent;
	if (forward_usage) {
		if ((e = lt_tr_usage_write(u, &t)))
			goto out;
	} else if (u && st->include_usage) {
		if ((e = lt_tr_set(root, "usage", cJSON_CreateNull())))
			goto out;
	} else if (u) {
		lt_tr_remove(root, "usage");
	}
	/* a usage-only chunk that is not forwarded is dropped */
	if (has_usage && !forward_usage && !(choices && choices->child))
		goto out;
	e = lt_tr_emit_json(st, root, emit, arg);
	if (!e && forward_usage)
		st->usage_sent = true;
out:
	cJSON_Delete(root);
	return e;
}
