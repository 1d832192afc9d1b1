/*
 * fuzz_translate_response.c — arbitrary bytes as an upstream's non-streamed
 * body, for chat responses in all three formats, for embeddings, and as an
 * upstream error body.
 *
 * Checks, beyond "no crash and no sanitizer report":
 *   - a refusal is LT_EPROTO (or LT_ENOMEM) with no output and zero usage;
 *   - an accepted body becomes a JSON object that parses strictly, whose
 *     "model" is the client's and whose length is the one reported;
 *   - usage is consistent (0 <= cached <= input, 0 <= reasoning <= output),
 *     zero when the upstream reported none, and for chat the output's usage
 *     object carries exactly the numbers handed to the caller;
 *   - lt_tr_error_message always gives a NUL-terminated, valid UTF-8 line
 *     without control characters that fits its buffer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider/translate.h"
#include "util/json.h"
#include "util/utf8.h"

#include "fuzz_check.h"

#define MODEL "fuzz-model"

static void check_tokens(const struct lt_tokens *t, bool found)
{
	CHECK(t->input >= 0 && t->output >= 0 && t->cached_input >= 0 && t->reasoning >= 0);
	CHECK(t->cached_input <= t->input);
	CHECK(t->reasoning <= t->output);
	if (!found)
		CHECK(!t->input && !t->output && !t->cached_input && !t->reasoning);
}

static double num_at(const cJSON *o, const char *a, const char *b)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, a);
	if (b)
		it = cJSON_GetObjectItemCaseSensitive(it, b);
	CHECK(cJSON_IsNumber(it));
	return it->valuedouble;
}

/* Parse an output strictly; check it is an object naming the client model. */
static cJSON *check_output(const char *out, size_t out_len)
{
	CHECK(out != NULL);
	CHECK(strlen(out) == out_len);
	cJSON *j;
	size_t pos;
	if (lt_json_parse(out, out_len, &j, &pos) != LT_OK) {
		fprintf(stderr, "output does not parse at %zu: %s\n", pos, out);
		abort();
	}
	CHECK(cJSON_IsObject(j));
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
	CHECK(cJSON_IsString(m) && !strcmp(m->valuestring, MODEL));
	return j;
}

static void check_chat(enum lt_wire_format f, const char *data, size_t size)
{
	char *out = (char *)&out;
	size_t out_len = 7;
	struct lt_tokens t;
	bool found = true;
	enum lt_err e = lt_tr_chat_response(f, data, size, MODEL, "chatcmpl-fuzz", 1700000000, &out,
					    &out_len, &t, &found);
	if (e != LT_OK) {
		CHECK(e == LT_EPROTO || e == LT_ENOMEM);
		CHECK(out == NULL && out_len == 0 && !found);
		check_tokens(&t, false);
		return;
	}
	check_tokens(&t, found);
	cJSON *j = check_output(out, out_len);
	CHECK(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "choices")));
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usage");
	if (found) {
		CHECK(cJSON_IsObject(u));
		CHECK(num_at(j, "usage", "prompt_tokens") == (double)t.input);
		CHECK(num_at(j, "usage", "completion_tokens") == (double)t.output);
		CHECK(num_at(j, "usage", "total_tokens") == (double)(t.input + t.output));
		const cJSON *pd = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens_details");
		const cJSON *cd = cJSON_GetObjectItemCaseSensitive(u, "completion_tokens_details");
		CHECK(num_at(pd, "cached_tokens", NULL) == (double)t.cached_input);
		CHECK(num_at(cd, "reasoning_tokens", NULL) == (double)t.reasoning);
	} else if (f == LT_FMT_GEMINI) {
		CHECK(u == NULL);
	}
	if (f == LT_FMT_GEMINI) {
		const cJSON *ch;
		CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "choices")) >= 1);
		cJSON_ArrayForEach(ch, cJSON_GetObjectItemCaseSensitive(j, "choices"))
		{
			const cJSON *fr = cJSON_GetObjectItemCaseSensitive(ch, "finish_reason");
			CHECK(cJSON_IsString(fr));
			CHECK(!strcmp(fr->valuestring, "stop") ||
			      !strcmp(fr->valuestring, "length") ||
			      !strcmp(fr->valuestring, "content_filter"));
			const cJSON *msg = cJSON_GetObjectItemCaseSensitive(ch, "message");
			CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(msg, "content")));
		}
	}
	cJSON_Delete(j);
	free(out);
}

static void check_embeddings(enum lt_wire_format f, const char *data, size_t size)
{
	char *out = (char *)&out;
	size_t out_len = 7;
	struct lt_tokens t;
	bool found = true;
	enum lt_err e = lt_tr_embeddings_response(f, data, size, MODEL, &out, &out_len, &t, &found);
	if (e != LT_OK) {
		CHECK(e == (f == LT_FMT_GEMINI ? LT_EINVAL : LT_EPROTO) || e == LT_ENOMEM);
		CHECK(out == NULL && !found);
		return;
	}
	CHECK(f != LT_FMT_GEMINI);
	check_tokens(&t, found);
	CHECK(t.output == 0);
	cJSON *j = check_output(out, out_len);
	CHECK(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "data")));
	cJSON_Delete(j);
	free(out);
}

static void check_error_message(const char *data, size_t size)
{
	char m[64];
	memset(m, 'Z', sizeof m);
	lt_tr_error_message(data, size, 502, m, sizeof m);
	size_t n = strnlen(m, sizeof m);
	CHECK(n > 0 && n < sizeof m);
	CHECK(lt_utf8_valid(m, n, NULL));
	for (size_t i = 0; i < n; i++)
		CHECK((unsigned char)m[i] >= 0x20 && m[i] != 0x7F);
	char tiny[1] = {'Z'};
	lt_tr_error_message(data, size, 502, tiny, sizeof tiny);
	CHECK(tiny[0] == '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	static const enum lt_wire_format fmts[] = {LT_FMT_OPENAI, LT_FMT_GEMINI, LT_FMT_QWEN};
	for (size_t i = 0; i < 3; i++) {
		check_chat(fmts[i], s, size);
		check_embeddings(fmts[i], s, size);
	}
	check_error_message(s, size);
	return 0;
}
