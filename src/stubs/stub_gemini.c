/*
 * stub_gemini.c — Gemini's generateContent and streamGenerateContent
 * (v1beta REST).
 *
 * Request: contents[].parts[].text, systemInstruction.parts[].text,
 * generationConfig.maxOutputTokens (the snake_case spellings the REST API
 * also accepts work too).  Answer: a GenerateContentResponse with one
 * candidate (role "model", finishReason "STOP" or "MAX_TOKENS", index 0),
 * usageMetadata (promptTokenCount, candidatesTokenCount, totalTokenCount,
 * and cachedContentTokenCount / thoughtsTokenCount when non-zero; thoughts
 * are not part of candidatesTokenCount but are of totalTokenCount),
 * modelVersion and responseId.
 *
 * Streams with ?alt=sse: frames "data: <json>\r\n\r\n" (Gemini's own
 * framing), each holding up to four tokens of text and the cumulative
 * usageMetadata; the last carries finishReason.  Without alt=sse the
 * same responses come as one JSON array, as the REST API sends them.
 */
#include <stdio.h>
#include <string.h>

#include "stubs/stub_int.h"
#include "util/json.h"

#define PIECE_BYTES 16 /* four tokens per stream frame */

static const cJSON *member2(const cJSON *o, const char *camel, const char *snake)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, camel);
	if (!it || cJSON_IsNull(it))
		it = cJSON_GetObjectItemCaseSensitive(o, snake);
	return it && !cJSON_IsNull(it) ? it : NULL;
}

/* parts[].text of a Content; LT_EINVAL on a bad shape. */
static enum lt_err add_parts(struct lt_stub_prompt *p, const char *role, const cJSON *content)
{
	if (!cJSON_IsObject(content))
		return LT_EINVAL;
	const cJSON *parts = cJSON_GetObjectItemCaseSensitive(content, "parts");
	if (!cJSON_IsArray(parts))
		return LT_EINVAL;
	for (const cJSON *part = parts->child; part; part = part->next) {
		if (!cJSON_IsObject(part))
			return LT_EINVAL;
		const char *text = NULL;
		enum lt_err e = lt_json_get_str(part, "text", &text);
		if (e == LT_ENOTFOUND)
			continue; /* inlineData, functionCall, ...: no text */
		if (e)
			return LT_EINVAL;
		e = lt_stub_prompt_add(p, role, text, strlen(text));
		if (e)
			return e;
	}
	return LT_OK;
}

struct gen {
	const char *model;
	struct lt_stub_usage u;
	char response_id[24];
};

static void put_response(struct lt_buf *b, const struct gen *g, const char *text, size_t len,
			 int64_t output_so_far, bool last)
{
	lt_buf_puts(b, "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":");
	lt_buf_put_json_str(b, text, len);
	lt_buf_puts(b, "}],\"role\":\"model\"}");
	if (last)
		lt_buf_printf(b, ",\"finishReason\":\"%s\"", g->u.cut ? "MAX_TOKENS" : "STOP");
	lt_buf_printf(b,
		      ",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":%lld,"
		      "\"candidatesTokenCount\":%lld,\"totalTokenCount\":%lld",
		      (long long)g->u.prompt, (long long)output_so_far,
		      (long long)(g->u.prompt + output_so_far + g->u.reasoning));
	if (g->u.cached)
		lt_buf_printf(b, ",\"cachedContentTokenCount\":%lld", (long long)g->u.cached);
	if (g->u.reasoning)
		lt_buf_printf(b, ",\"thoughtsTokenCount\":%lld", (long long)g->u.reasoning);
	lt_buf_puts(b, "},\"modelVersion\":");
	lt_buf_put_json_str(b, g->model, strlen(g->model));
	lt_buf_printf(b, ",\"responseId\":\"%s\"}", g->response_id);
}

static void stream_sse(struct lt_stub_req *r, const struct gen *g, const char *content, size_t len)
{
	r->malformed_frame = 0;
	if (!lt_stub_stream_begin(r))
		return;
	char stack[1024];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 64 * 1024);
	size_t off = 0;
	do {
		size_t n = len - off < PIECE_BYTES ? len - off : PIECE_BYTES;
		int64_t tokens = (int64_t)(n + 3) / 4;
		if (!lt_stub_sleep(r->s, r->knobs.token_delay_ms * tokens)) {
			lt_stub_stream_abort(r);
			goto out;
		}
		off += n;
		lt_buf_reset(&b);
		put_response(&b, g, content + off - n, n, (int64_t)(off + 3) / 4, off >= len);
		if (b.err || !lt_stub_stream_event(r, b.data, b.len, "\r\n\r\n")) {
			lt_stub_stream_abort(r);
			goto out;
		}
	} while (off < len);
	lt_stub_stream_end(r);
out:
	lt_buf_release(&b);
}

/* streamGenerateContent without alt=sse: a JSON array of the responses. */
static void stream_array(struct lt_stub_req *r, const struct gen *g, const char *content,
			 size_t len)
{
	char stack[2048];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, LT_STUB_RESP_MAX);
	lt_buf_putc(&b, '[');
	size_t off = 0;
	do {
		size_t n = len - off < PIECE_BYTES ? len - off : PIECE_BYTES;
		off += n;
		if (off > n)
			lt_buf_puts(&b, ",\r\n");
		put_response(&b, g, content + off - n, n, (int64_t)(off + 3) / 4, off >= len);
	} while (off < len);
	lt_buf_putc(&b, ']');
	lt_stub_reply_json(r, 200, &b, NULL);
	lt_buf_release(&b);
}

static bool alt_sse(const struct lt_stub_req *r)
{
	const char *q = r->query;
	while (q && *q) {
		size_t n = strcspn(q, "&");
		if (n == 7 && strncmp(q, "alt=sse", 7) == 0)
			return true;
		q += n;
		if (*q == '&')
			q++;
	}
	return false;
}

void lt_stub_gemini_generate(struct lt_stub_req *r, bool stream)
{
	char model[LT_STUB_MODEL_MAX];
	if (lt_stub_param(r, "model", model, sizeof model)) {
		lt_stub_reply_error(r, 400, "model name too long", NULL);
		return;
	}
	if (!cJSON_IsObject(r->json)) {
		lt_stub_reply_error(r, 400, "Invalid JSON payload: expected an object", NULL);
		return;
	}
	struct gen g;
	memset(&g, 0, sizeof g);
	g.model = model;
	struct lt_stub_prompt prompt;
	lt_stub_prompt_init(&prompt, model);
	char cstack[256];
	struct lt_buf content;
	lt_buf_init(&content, cstack, sizeof cstack, 64 * 1024);
	char msg[96];
	enum lt_err e;

	const cJSON *sys = member2(r->json, "systemInstruction", "system_instruction");
	if (sys && (e = add_parts(&prompt, "system", sys))) {
		lt_stub_reply_error(r, e == LT_EINVAL ? 400 : 413,
				    e == LT_EINVAL
					    ? "systemInstruction must be a Content with parts"
					    : "prompt too large",
				    NULL);
		goto out;
	}
	const cJSON *contents = cJSON_GetObjectItemCaseSensitive(r->json, "contents");
	if (!cJSON_IsArray(contents) || !contents->child) {
		lt_stub_reply_error(r, 400, "contents is not specified", NULL);
		goto out;
	}
	int i = 0;
	for (const cJSON *c = contents->child; c; c = c->next, i++) {
		const char *role = "user";
		if (cJSON_IsObject(c) && lt_json_get_str(c, "role", &role) == LT_EINVAL)
			role = NULL;
		e = role ? add_parts(&prompt, role, c) : LT_EINVAL;
		if (e) {
			snprintf(msg, sizeof msg, "contents[%d] must be a Content with parts", i);
			lt_stub_reply_error(r, e == LT_EINVAL ? 400 : 413,
					    e == LT_EINVAL ? msg : "prompt too large", NULL);
			goto out;
		}
	}
	int64_t max_tokens = 0;
	const cJSON *gc = member2(r->json, "generationConfig", "generation_config");
	if (gc) {
		e = LT_EINVAL;
		if (cJSON_IsObject(gc)) {
			e = lt_json_get_i64(gc, "maxOutputTokens", 1, INT64_C(1) << 31,
					    &max_tokens);
			if (e == LT_ENOTFOUND)
				e = lt_json_get_i64(gc, "max_output_tokens", 1, INT64_C(1) << 31,
						    &max_tokens);
		}
		if (e && e != LT_ENOTFOUND) {
			lt_stub_reply_error(
				r, 400, "generationConfig.maxOutputTokens must be an integer >= 1",
				NULL);
			goto out;
		}
	}
	lt_stub_usage_compute(LT_STUB_GEMINI, model, &prompt, max_tokens, &g.u);
	if (lt_stub_text_generate(LT_STUB_GEMINI, prompt.hash, g.u.output, &content)) {
		lt_stub_reply_error(r, 500, "out of memory generating the answer", NULL);
		goto out;
	}
	struct lt_stub_rng rng;
	lt_stub_rng_seed(&rng, lt_stub_fnv1a(prompt.hash, "responseId", 10));
	static const char alnum[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	for (size_t k = 0; k < 22; k++)
		g.response_id[k] = alnum[lt_stub_rng_below(&rng, sizeof alnum - 1)];
	g.response_id[22] = '\0';

	if (stream && alt_sse(r)) {
		stream_sse(r, &g, content.data, content.len);
	} else if (stream) {
		stream_array(r, &g, content.data, content.len);
	} else {
		char stack[2048];
		struct lt_buf b;
		lt_buf_init(&b, stack, sizeof stack, LT_STUB_RESP_MAX);
		put_response(&b, &g, content.data, content.len, g.u.output, true);
		lt_stub_reply_json(r, 200, &b, NULL);
		lt_buf_release(&b);
	}
out:
	lt_buf_release(&content);
	lt_stub_prompt_release(&prompt);
}
