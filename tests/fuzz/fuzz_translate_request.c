/*
 * fuzz_translate_request.c — arbitrary JSON as a client's chat body:
 * lt_chat_req_parse, then lt_tr_chat_request for each format; the same
 * body as an embeddings request; its "model" as a chat path.
 *
 * Checks, beyond "no crash and no sanitizer report":
 *   - a refusal is LT_EINVAL with a non-empty reason (or LT_ENOMEM);
 *   - an accepted request has the bounds lt_chat_req_parse promises
 *     (model 1..95 bytes, 1..4096 messages, max_tokens -1 or 1..1000000,
 *     include_usage only with stream);
 *   - every LT_OK output is a strict JSON object: openai/qwen name the
 *     upstream model and, when streaming, ask for usage; gemini has a
 *     non-empty contents[] whose roles are user or model, and no "model";
 *   - chat paths hold only the allowed characters and fit their buffer.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider/translate.h"
#include "util/json.h"

#include "fuzz_check.h"

#define UPSTREAM "up-model"

static cJSON *parse_output(const char *body, size_t len)
{
	CHECK(body != NULL && strlen(body) == len);
	cJSON *j;
	size_t pos;
	if (lt_json_parse(body, len, &j, &pos) != LT_OK) {
		fprintf(stderr, "output does not parse at %zu: %s\n", pos, body);
		abort();
	}
	CHECK(cJSON_IsObject(j));
	return j;
}

static void check_chat(enum lt_wire_format f, const struct lt_chat_req *rq)
{
	char *body = (char *)&body;
	size_t len = 3;
	char param[64], why[LT_TR_WHY_MAX];
	enum lt_err e = lt_tr_chat_request(f, rq, UPSTREAM, &body, &len, param, sizeof param, why,
					   sizeof why);
	if (e != LT_OK) {
		CHECK(e == LT_EINVAL || e == LT_ENOMEM);
		CHECK(body == NULL);
		if (e == LT_EINVAL)
			CHECK(why[0] != '\0' && f == LT_FMT_GEMINI);
		return;
	}
	cJSON *j = parse_output(body, len);
	if (f == LT_FMT_GEMINI) {
		CHECK(cJSON_GetObjectItemCaseSensitive(j, "model") == NULL);
		const cJSON *contents = cJSON_GetObjectItemCaseSensitive(j, "contents");
		CHECK(cJSON_IsArray(contents) && contents->child);
		const cJSON *c;
		cJSON_ArrayForEach(c, contents)
		{
			const cJSON *role = cJSON_GetObjectItemCaseSensitive(c, "role");
			CHECK(cJSON_IsString(role));
			CHECK(!strcmp(role->valuestring, "user") ||
			      !strcmp(role->valuestring, "model"));
			CHECK(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(c, "parts")));
		}
	} else {
		const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
		CHECK(cJSON_IsString(m) && !strcmp(m->valuestring, UPSTREAM));
		int models = 0;
		const cJSON *it;
		cJSON_ArrayForEach(it, j)
		{
			models += it->string && !strcmp(it->string, "model");
		}
		CHECK(models == 1);
		if (rq->stream) {
			const cJSON *so = cJSON_GetObjectItemCaseSensitive(j, "stream_options");
			CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage")));
		}
	}
	cJSON_Delete(j);
	free(body);
}

static void check_embeddings(const cJSON *body)
{
	char *out = (char *)&out;
	size_t len = 3, bytes = 99;
	char param[64], why[LT_TR_WHY_MAX];
	enum lt_err e = lt_tr_embeddings_request(LT_FMT_OPENAI, body, UPSTREAM, &out, &len, &bytes,
						 param, sizeof param, why, sizeof why);
	if (e != LT_OK) {
		CHECK(e == LT_EINVAL || e == LT_ENOMEM);
		CHECK(out == NULL && bytes == 0);
		if (e == LT_EINVAL)
			CHECK(why[0] != '\0');
		return;
	}
	CHECK(bytes > 0);
	cJSON *j = parse_output(out, len);
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
	CHECK(cJSON_IsString(m) && !strcmp(m->valuestring, UPSTREAM));
	cJSON_Delete(j);
	free(out);
}

static void check_path(const cJSON *body)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(body, "model");
	if (!cJSON_IsString(m))
		return;
	static const enum lt_wire_format fmts[] = {LT_FMT_OPENAI, LT_FMT_GEMINI, LT_FMT_QWEN};
	for (size_t i = 0; i < 3; i++) {
		char p[96];
		memset(p, 'Z', sizeof p);
		enum lt_err e = lt_tr_chat_path(fmts[i], m->valuestring, i & 1, p, sizeof p);
		CHECK(e == LT_OK || e == LT_EINVAL || e == LT_ETOOBIG);
		size_t n = strnlen(p, sizeof p);
		CHECK(n < sizeof p);
		if (e != LT_OK) {
			CHECK(n == 0);
			continue;
		}
		CHECK(p[0] == '/');
		for (size_t k = 0; k < n; k++)
			CHECK(p[k] > 0x20 && p[k] < 0x7F && p[k] != '%' && p[k] != '#');
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *body;
	size_t pos;
	if (lt_json_parse((const char *)data, size, &body, &pos) != LT_OK)
		return 0;
	struct lt_chat_req rq;
	char param[64], why[LT_TR_WHY_MAX];
	enum lt_err e = lt_chat_req_parse(body, &rq, param, sizeof param, why, sizeof why);
	if (e != LT_OK) {
		CHECK(e == LT_EINVAL);
		CHECK(why[0] != '\0');
	} else {
		CHECK(rq.json == body);
		CHECK(rq.model && rq.model[0] && strlen(rq.model) <= 95);
		CHECK(rq.nmessages >= 1 && rq.nmessages <= 4096);
		CHECK(rq.max_tokens == -1 || (rq.max_tokens >= 1 && rq.max_tokens <= 1000000));
		CHECK(!rq.include_usage || rq.stream);
		CHECK(rq.prompt_bytes <= size);
		check_chat(LT_FMT_OPENAI, &rq);
		check_chat(LT_FMT_GEMINI, &rq);
		check_chat(LT_FMT_QWEN, &rq);
	}
	check_embeddings(body);
	check_path(body);
	cJSON_Delete(body);
	return 0;
}
