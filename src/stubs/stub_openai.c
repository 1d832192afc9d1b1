/*
 * stub_openai.c — OpenAI's Chat Completions and Embeddings, and Qwen's
 * (DashScope compatible mode), which share the OpenAI wire format.
 *
 * Differences kept between the two: OpenAI answers carry a
 * system_fingerprint and always both usage detail objects; Qwen has no
 * fingerprint and reports prompt_tokens_details only when tokens were
 * cached.  Streams: a role frame, one frame per token (4 bytes of
 * content), a frame with finish_reason, with stream_options.include_usage a
 * final frame with "choices":[] and usage (every other frame then carries
 * "usage":null), and "data: [DONE]".
 *
 * Content and usage come from stub_text.c; ids are derived from the
 * request hash, so the same request gives the same bytes except "created".
 */
#include <stdio.h>
#include <string.h>

#include "provider/usage.h"
#include "stubs/stub_int.h"
#include "util/json.h"

#define MAX_TOKENS_LIMIT (INT64_C(1) << 31)

static void put_str(struct lt_buf *b, const char *s)
{
	lt_buf_put_json_str(b, s, strlen(s));
}

/* Required model string; false after answering 400. */
static bool get_model(struct lt_stub_req *r, const char **model)
{
	enum lt_err e = lt_json_get_str(r->json, "model", model);
	if (e == LT_ENOTFOUND || (e == LT_OK && !(*model)[0])) {
		lt_stub_reply_error(r, 400, "you must provide a model parameter", NULL);
		return false;
	}
	if (e || strlen(*model) >= LT_STUB_MODEL_MAX) {
		lt_stub_reply_error(r, 400, "model must be a string of at most 127 bytes", NULL);
		return false;
	}
	return true;
}

/* Message content: a string, null, or an array of parts whose "text"
 * parts count.  LT_EINVAL on any other shape. */
static enum lt_err add_content(struct lt_stub_prompt *p, const char *role, const cJSON *c)
{
	if (!c || cJSON_IsNull(c))
		return LT_OK;
	if (cJSON_IsString(c))
		return lt_stub_prompt_add(p, role, c->valuestring, strlen(c->valuestring));
	if (!cJSON_IsArray(c))
		return LT_EINVAL;
	for (const cJSON *part = c->child; part; part = part->next) {
		if (!cJSON_IsObject(part))
			return LT_EINVAL;
		const char *type = NULL, *text = NULL;
		if (lt_json_get_str(part, "type", &type))
			return LT_EINVAL;
		if (strcmp(type, "text") != 0)
			continue;
		if (lt_json_get_str(part, "text", &text))
			return LT_EINVAL;
		enum lt_err e = lt_stub_prompt_add(p, role, text, strlen(text));
		if (e)
			return e;
	}
	return LT_OK;
}

static bool collect_messages(struct lt_stub_req *r, struct lt_stub_prompt *p)
{
	const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(r->json, "messages");
	if (!cJSON_IsArray(msgs) || !msgs->child) {
		lt_stub_reply_error(r, 400, "messages must be a non-empty array", NULL);
		return false;
	}
	int i = 0;
	for (const cJSON *m = msgs->child; m; m = m->next, i++) {
		const char *role = NULL;
		char msg[96];
		if (!cJSON_IsObject(m) || lt_json_get_str(m, "role", &role)) {
			snprintf(msg, sizeof msg, "messages[%d] must be an object with a role", i);
			lt_stub_reply_error(r, 400, msg, NULL);
			return false;
		}
		enum lt_err e =
			add_content(p, role, cJSON_GetObjectItemCaseSensitive(m, "content"));
		if (e == LT_EINVAL) {
			snprintf(msg, sizeof msg,
				 "messages[%d].content must be a string or an array of parts", i);
			lt_stub_reply_error(r, 400, msg, NULL);
			return false;
		}
		if (e) {
			lt_stub_reply_error(r, 413, "prompt too large", NULL);
			return false;
		}
	}
	return true;
}

/* max_completion_tokens, else max_tokens; 0 when neither. */
static bool get_max_tokens(struct lt_stub_req *r, int64_t *out)
{
	static const char *const names[] = {"max_completion_tokens", "max_tokens"};
	*out = 0;
	for (size_t i = 0; i < 2; i++) {
		enum lt_err e = lt_json_get_i64(r->json, names[i], 1, MAX_TOKENS_LIMIT, out);
		if (e == LT_OK)
			return true;
		if (e != LT_ENOTFOUND) {
			char msg[96];
			snprintf(msg, sizeof msg, "%s must be an integer >= 1", names[i]);
			lt_stub_reply_error(r, 400, msg, NULL);
			return false;
		}
	}
	return true;
}

static void put_usage(struct lt_buf *b, enum lt_stub_provider p, const struct lt_stub_usage *u)
{
	int64_t completion = u->output + u->reasoning;
	lt_buf_printf(b, "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld",
		      (long long)u->prompt, (long long)completion,
		      (long long)(u->prompt + completion));
	if (p == LT_STUB_OPENAI)
		lt_buf_printf(b,
			      ",\"prompt_tokens_details\":{\"cached_tokens\":%lld},"
			      "\"completion_tokens_details\":{\"reasoning_tokens\":%lld}",
			      (long long)u->cached, (long long)u->reasoning);
	else if (u->cached > 0)
		lt_buf_printf(b, ",\"prompt_tokens_details\":{\"cached_tokens\":%lld}",
			      (long long)u->cached);
	lt_buf_putc(b, '}');
}

struct chat {
	enum lt_stub_provider p;
	const char *model;
	char id[48];
	char fingerprint[24];
	long long created;
	struct lt_stub_usage u;
	bool include_usage;
};

/* The members every chunk starts with, up to "choices". */
static void chunk_open(struct lt_buf *b, const struct chat *c)
{
	lt_buf_printf(b, "{\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%lld,",
		      c->id, c->created);
	lt_buf_puts(b, "\"model\":");
	put_str(b, c->model);
	if (c->p == LT_STUB_OPENAI)
		lt_buf_printf(b, ",\"system_fingerprint\":\"%s\"", c->fingerprint);
	lt_buf_puts(b, ",\"choices\":");
}

static void chunk_close(struct lt_buf *b, const struct chat *c)
{
	lt_buf_puts(b, c->include_usage ? ",\"usage\":null}" : "}");
}

static bool send_chunk(struct lt_stub_req *r, struct lt_buf *b)
{
	if (b->err) {
		lt_buf_reset(b);
		return false;
	}
	bool ok = lt_stub_stream_event(r, b->data, b->len, "\n\n");
	lt_buf_reset(b);
	return ok;
}

static void stream_chat(struct lt_stub_req *r, const struct chat *c, const char *content,
			size_t len)
{
	r->malformed_frame = 1;
	if (!lt_stub_stream_begin(r))
		return;
	char stack[1024];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 64 * 1024);
	chunk_open(&b, c);
	lt_buf_puts(&b, "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\","
			"\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}]");
	chunk_close(&b, c);
	if (!send_chunk(r, &b))
		goto out;
	for (size_t off = 0; off < len; off += 4) {
		size_t n = len - off < 4 ? len - off : 4;
		if (!lt_stub_sleep(r->s, r->knobs.token_delay_ms)) {
			lt_stub_stream_abort(r);
			goto out;
		}
		chunk_open(&b, c);
		lt_buf_puts(&b, "[{\"index\":0,\"delta\":{\"content\":");
		lt_buf_put_json_str(&b, content + off, n);
		lt_buf_puts(&b, "},\"logprobs\":null,\"finish_reason\":null}]");
		chunk_close(&b, c);
		if (!send_chunk(r, &b))
			goto out;
	}
	chunk_open(&b, c);
	lt_buf_printf(&b, "[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"%s\"}]",
		      c->u.cut ? "length" : "stop");
	chunk_close(&b, c);
	if (!send_chunk(r, &b))
		goto out;
	if (c->include_usage) {
		chunk_open(&b, c);
		lt_buf_puts(&b, "[],\"usage\":");
		put_usage(&b, c->p, &c->u);
		lt_buf_putc(&b, '}');
		if (!send_chunk(r, &b))
			goto out;
	}
	if (!lt_stub_stream_event(r, "[DONE]", 6, "\n\n"))
		goto out;
	lt_stub_stream_end(r);
out:
	lt_buf_release(&b);
}

void lt_stub_openai_chat(struct lt_stub_req *r, enum lt_stub_provider p)
{
	if (!cJSON_IsObject(r->json)) {
		lt_stub_reply_error(r, 400, "the request body must be a JSON object", NULL);
		return;
	}
	struct chat c;
	memset(&c, 0, sizeof c);
	c.p = p;
	if (!get_model(r, &c.model))
		return;
	int64_t max_tokens = 0;
	bool stream = false;
	if (!get_max_tokens(r, &max_tokens))
		return;
	if (lt_json_get_bool(r->json, "stream", &stream) == LT_EINVAL) {
		lt_stub_reply_error(r, 400, "stream must be a boolean", NULL);
		return;
	}
	const cJSON *so = cJSON_GetObjectItemCaseSensitive(r->json, "stream_options");
	if (so && !cJSON_IsNull(so) &&
	    (!cJSON_IsObject(so) ||
	     lt_json_get_bool(so, "include_usage", &c.include_usage) == LT_EINVAL)) {
		lt_stub_reply_error(r, 400, "stream_options.include_usage must be a boolean", NULL);
		return;
	}
	if (!stream)
		c.include_usage = false;

	struct lt_stub_prompt prompt;
	lt_stub_prompt_init(&prompt, c.model);
	char stack[2048];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, LT_STUB_RESP_MAX);
	struct lt_buf content;
	char cstack[256];
	lt_buf_init(&content, cstack, sizeof cstack, 64 * 1024);
	if (!collect_messages(r, &prompt))
		goto out;
	lt_stub_usage_compute(p, c.model, &prompt, max_tokens, &c.u);
	if (lt_stub_text_generate(p, prompt.hash, c.u.output, &content)) {
		lt_stub_reply_error(r, 500, "out of memory generating the answer", NULL);
		goto out;
	}
	snprintf(c.id, sizeof c.id, "chatcmpl-%016llx",
		 (unsigned long long)lt_stub_fnv1a(prompt.hash, "id", 2));
	snprintf(c.fingerprint, sizeof c.fingerprint, "fp_%010llx",
		 (unsigned long long)(lt_stub_fnv1a(LT_STUB_FNV_BASIS, c.model, strlen(c.model)) &
				      UINT64_C(0xffffffffff)));
	c.created = (long long)lt_stub_now_s();
	if (stream) {
		stream_chat(r, &c, content.data, content.len);
		goto out;
	}
	lt_buf_printf(&b, "{\"id\":\"%s\",\"object\":\"chat.completion\",\"created\":%lld,", c.id,
		      c.created);
	lt_buf_puts(&b, "\"model\":");
	put_str(&b, c.model);
	lt_buf_puts(&b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
			"\"content\":");
	lt_buf_put_json_str(&b, content.data, content.len);
	lt_buf_printf(&b, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"%s\"}],",
		      c.u.cut ? "length" : "stop");
	lt_buf_puts(&b, "\"usage\":");
	put_usage(&b, p, &c.u);
	if (p == LT_STUB_OPENAI)
		lt_buf_printf(&b, ",\"system_fingerprint\":\"%s\"", c.fingerprint);
	lt_buf_putc(&b, '}');
	lt_stub_reply_json(r, 200, &b, NULL);
out:
	lt_buf_release(&content);
	lt_buf_release(&b);
	lt_stub_prompt_release(&prompt);
}

static void put_base64(struct lt_buf *b, const unsigned char *p, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	lt_buf_putc(b, '"');
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16;
		if (i + 1 < n)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		char q[4] = {tab[(v >> 18) & 63], tab[(v >> 12) & 63],
			     i + 1 < n ? tab[(v >> 6) & 63] : '=', i + 2 < n ? tab[v & 63] : '='};
		lt_buf_append(b, q, 4);
	}
	lt_buf_putc(b, '"');
}

static void put_vector(struct lt_buf *b, const float *v, size_t dims, bool base64)
{
	if (base64) {
		unsigned char raw[LT_STUB_EMBED_DIMS_MAX * 4];
		for (size_t i = 0; i < dims; i++) {
			uint32_t u;
			memcpy(&u, &v[i], 4);
			raw[i * 4] = (unsigned char)u;
			raw[i * 4 + 1] = (unsigned char)(u >> 8);
			raw[i * 4 + 2] = (unsigned char)(u >> 16);
			raw[i * 4 + 3] = (unsigned char)(u >> 24);
		}
		put_base64(b, raw, dims * 4);
		return;
	}
	lt_buf_putc(b, '[');
	for (size_t i = 0; i < dims; i++)
		lt_buf_printf(b, "%s%.8g", i ? "," : "", (double)v[i]);
	lt_buf_putc(b, ']');
}

void lt_stub_openai_embeddings(struct lt_stub_req *r, enum lt_stub_provider p)
{
	if (!cJSON_IsObject(r->json)) {
		lt_stub_reply_error(r, 400, "the request body must be a JSON object", NULL);
		return;
	}
	const char *model = NULL;
	if (!get_model(r, &model))
		return;
	const cJSON *in = cJSON_GetObjectItemCaseSensitive(r->json, "input");
	bool ok = cJSON_IsString(in) || (cJSON_IsArray(in) && in->child);
	for (const cJSON *it = cJSON_IsArray(in) ? in->child : NULL; ok && it; it = it->next)
		ok = cJSON_IsString(it);
	if (!ok) {
		lt_stub_reply_error(r, 400,
				    "input must be a string or a non-empty array of strings", NULL);
		return;
	}
	int64_t dims = LT_STUB_EMBED_DIMS_DEFAULT;
	enum lt_err de = lt_json_get_i64(r->json, "dimensions", 1, LT_STUB_EMBED_DIMS_MAX, &dims);
	if (de && de != LT_ENOTFOUND) {
		lt_stub_reply_error(r, 400, "dimensions must be an integer in 1..4096", NULL);
		return;
	}
	const char *fmt = "float";
	if (lt_json_get_str(r->json, "encoding_format", &fmt) == LT_EINVAL ||
	    (strcmp(fmt, "float") != 0 && strcmp(fmt, "base64") != 0)) {
		lt_stub_reply_error(r, 400, "encoding_format must be \"float\" or \"base64\"",
				    NULL);
		return;
	}
	bool base64 = strcmp(fmt, "base64") == 0;
	float vec[LT_STUB_EMBED_DIMS_MAX];
	char stack[4096];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, LT_STUB_RESP_MAX);
	lt_buf_puts(&b, "{\"object\":\"list\",\"data\":[");
	int64_t tokens = 0;
	int index = 0;
	const cJSON *first = cJSON_IsString(in) ? in : in->child;
	for (const cJSON *it = first; it; it = cJSON_IsString(in) ? NULL : it->next, index++) {
		const char *s = it->valuestring;
		size_t n = strlen(s);
		tokens += lt_token_estimate(s, n);
		uint64_t seed = lt_stub_fnv1a(LT_STUB_FNV_BASIS, model, strlen(model) + 1);
		seed = lt_stub_fnv1a(seed, s, n);
		lt_stub_embedding(seed, vec, (size_t)dims);
		lt_buf_printf(&b, "%s{\"object\":\"embedding\",\"index\":%d,\"embedding\":",
			      index ? "," : "", index);
		put_vector(&b, vec, (size_t)dims, base64);
		lt_buf_putc(&b, '}');
	}
	lt_buf_puts(&b, "],\"model\":");
	put_str(&b, model);
	lt_buf_printf(&b, ",\"usage\":{\"prompt_tokens\":%lld,\"total_tokens\":%lld}}",
		      (long long)tokens, (long long)tokens);
	(void)p;
	lt_stub_reply_json(r, 200, &b, NULL);
	lt_buf_release(&b);
}
