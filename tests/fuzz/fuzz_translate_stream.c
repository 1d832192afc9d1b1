/*
 * fuzz_translate_stream.c — the input split at '\n' into SSE data events,
 * fed to a translating stream of each format, with and without
 * include_usage; then the stream is finished (or, on a copy, failed).
 *
 * Checks, beyond "no crash and no sanitizer report":
 *   - every emitted frame is "data: " + payload + "\n\n", and the payload
 *     is strict JSON (an object) or "[DONE]";
 *   - "[DONE]" goes out exactly once, and only from lt_tr_stream_finish;
 *   - chunks name the client's model; without include_usage no frame has a
 *     "usage" member; with it exactly one frame carries a usage object,
 *     consistent (cached <= prompt, reasoning <= completion);
 *   - a gemini stream sends its role chunk first and exactly one chunk with
 *     a finish_reason;
 *   - event errors are only LT_EPROTO; st->chunks counts the frames; the
 *     usage the stream reports is consistent.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider/translate.h"
#include "util/json.h"

#include "fuzz_check.h"

#define MODEL "client-model"

struct watch {
	enum lt_wire_format f;
	bool include_usage;
	bool in_finish;
	bool error_frame_expected;
	unsigned frames, done, usage_objects, finishes, errors;
};

static enum lt_err watch_emit(void *arg, const char *frame, size_t len)
{
	struct watch *w = arg;
	CHECK(len >= 8 && strlen(frame) == len);
	CHECK(!memcmp(frame, "data: ", 6));
	CHECK(!memcmp(frame + len - 2, "\n\n", 2));
	const char *p = frame + 6;
	size_t n = len - 8;
	w->frames++;
	CHECK(w->done == 0); /* nothing after [DONE] */
	if (n == 6 && !memcmp(p, "[DONE]", 6)) {
		CHECK(w->in_finish);
		w->done++;
		return LT_OK;
	}
	cJSON *j;
	size_t pos;
	if (lt_json_parse(p, n, &j, &pos) != LT_OK) {
		fprintf(stderr, "frame payload does not parse at %zu: %.*s\n", pos, (int)n, p);
		abort();
	}
	CHECK(cJSON_IsObject(j));
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
	if (w->error_frame_expected) {
		CHECK(cJSON_IsObject(err));
		w->errors++;
		cJSON_Delete(j);
		return LT_OK;
	}
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
	CHECK(cJSON_IsString(m) && !strcmp(m->valuestring, MODEL));
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usage");
	if (!w->include_usage)
		CHECK(u == NULL);
	if (cJSON_IsObject(u)) {
		w->usage_objects++;
		const cJSON *pt = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens");
		const cJSON *ct = cJSON_GetObjectItemCaseSensitive(u, "completion_tokens");
		const cJSON *cached = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens_details"),
			"cached_tokens");
		const cJSON *reas = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(u, "completion_tokens_details"),
			"reasoning_tokens");
		CHECK(cJSON_IsNumber(pt) && cJSON_IsNumber(ct) && cJSON_IsNumber(cached) &&
		      cJSON_IsNumber(reas));
		CHECK(cached->valuedouble >= 0 && cached->valuedouble <= pt->valuedouble);
		CHECK(reas->valuedouble >= 0 && reas->valuedouble <= ct->valuedouble);
	} else if (u) {
		CHECK(cJSON_IsNull(u));
	}
	if (w->f == LT_FMT_GEMINI) {
		const cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
		CHECK(cJSON_IsArray(choices));
		const cJSON *ch = cJSON_GetArrayItem(choices, 0);
		if (ch) {
			const cJSON *d = cJSON_GetObjectItemCaseSensitive(ch, "delta");
			bool role = cJSON_GetObjectItemCaseSensitive(d, "role") != NULL;
			CHECK(role == (w->frames == 1)); /* the role chunk comes first, once */
			const cJSON *fr = cJSON_GetObjectItemCaseSensitive(ch, "finish_reason");
			if (cJSON_IsString(fr))
				w->finishes++;
			else
				CHECK(cJSON_IsNull(fr));
		} else {
			CHECK(cJSON_IsObject(u)); /* only the usage chunk has no choice */
		}
	}
	cJSON_Delete(j);
	return LT_OK;
}

static void run(enum lt_wire_format f, bool include_usage, const char *data, size_t size)
{
	struct watch w = {.f = f, .include_usage = include_usage};
	struct lt_tr_stream st;
	lt_tr_stream_init(&st, f, MODEL, "chatcmpl-fuzz", 1700000000, include_usage);
	size_t start = 0;
	for (size_t i = 0; i <= size; i++) {
		if (i < size && data[i] != '\n')
			continue;
		/* a copy with its exact length, so over-reads are caught */
		size_t n = i - start;
		char *ev = malloc(n + 1);
		CHECK(ev != NULL);
		memcpy(ev, data + start, n);
		ev[n] = '\0';
		enum lt_err e = lt_tr_stream_event(&st, ev, n, watch_emit, &w);
		CHECK(e == LT_OK || e == LT_EPROTO || e == LT_ENOMEM);
		free(ev);
		start = i + 1;
	}
	CHECK(st.chunks == w.frames);

	/* the upstream failing now: one error frame, no [DONE] */
	struct lt_tr_stream failed = st;
	struct watch wf = w;
	wf.error_frame_expected = true;
	CHECK(lt_tr_stream_error(&failed, "upstream_error", "cut", watch_emit, &wf) == LT_OK);
	CHECK(wf.errors == 1 && wf.done == 0);

	w.in_finish = true;
	CHECK(lt_tr_stream_finish(&st, watch_emit, &w) == LT_OK);
	CHECK(w.done == 1);
	CHECK(st.chunks == w.frames);
	CHECK(w.usage_objects == (include_usage ? 1u : 0u));
	CHECK(st.usage_sent == include_usage);
	if (f == LT_FMT_GEMINI) {
		CHECK(w.finishes == 1);
		CHECK(st.role_sent && st.finish_sent);
	}
	struct lt_tokens t;
	bool est;
	lt_tr_stream_usage(&st, 10, &t, &est);
	CHECK(est == !st.usage_found);
	CHECK(t.cached_input >= 0 && t.cached_input <= t.input);
	CHECK(t.reasoning >= 0 && t.reasoning <= t.output);
	if (est)
		CHECK(t.input == 10 && t.output == (int64_t)((st.content_bytes + 3) / 4));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum lt_wire_format fmts[] = {LT_FMT_OPENAI, LT_FMT_GEMINI, LT_FMT_QWEN};
	for (size_t i = 0; i < 3; i++) {
		run(fmts[i], false, (const char *)data, size);
		run(fmts[i], true, (const char *)data, size);
	}
	return 0;
}
