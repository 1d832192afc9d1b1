/*
 * stub_reference.c — the Java reference's provider stubs:
 * POST /api/v1/{qwen|gemini|openai}/chat with {prompt} answers
 * {id (UUID v4), provider, received (the request object as sent), created
 * (ISO-8601 UTC), message: "Stubbed <Provider> response"} (API.md §5, §9).
 * lt_uuid_v4 needs sodium_init() to have run (leakyd's main does it).
 */
#include <string.h>

#include "stubs/stub_int.h"
#include "util/clock.h"
#include "util/timefmt.h"
#include "util/uuid.h"

void lt_stub_reference_chat(struct lt_stub_req *r)
{
	static const struct {
		const char *name;
		enum lt_stub_provider p;
	} known[] = {
		{"qwen", LT_STUB_QWEN}, {"gemini", LT_STUB_GEMINI}, {"openai", LT_STUB_OPENAI}};
	char provider[16];
	const char *label = NULL;
	if (lt_stub_param(r, "provider", provider, sizeof provider) == LT_OK)
		for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
			if (strcmp(provider, known[i].name) == 0)
				label = lt_stub_provider_label(known[i].p);
	if (!label) {
		lt_stub_reply_error(r, 404, "unknown provider (qwen, gemini, openai)", NULL);
		return;
	}
	if (!cJSON_IsObject(r->json)) {
		lt_stub_reply_error(r, 400, "the request body must be a JSON object", NULL);
		return;
	}
	char id[LT_UUID_LEN], created[LT_ISO_LEN];
	lt_uuid_v4(id);
	lt_time_iso(lt_clock_real_ns(), created);
	char stack[1024];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, LT_STUB_RESP_MAX);
	lt_buf_printf(&b, "{\"id\":\"%s\",\"provider\":\"%s\",\"received\":", id, provider);
	lt_buf_append(&b, r->body, r->body_len); /* validated JSON, exactly as sent */
	lt_buf_printf(&b, ",\"created\":\"%s\",\"message\":\"Stubbed %s response\"}", created,
		      label);
	lt_stub_reply_json(r, 200, &b, NULL);
	lt_buf_release(&b);
}
