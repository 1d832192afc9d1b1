/*
 * usage_event.h — the token-usage event: the full normalised record of one
 * spending request, as the JSON payload of a "token-usage" event (pure: no
 * I/O).
 *
 * One event per spending request that reached admission (consume, /v1
 * chat and embeddings, the reference chat), written to the outbox in the
 * same transaction as its settle or release, or alone for a refusal:
 *
 *   {"type":"TOKEN_USAGE","time":"<ISO>","correlationId":"...",
 *    "userId":"...","orgId":null|"...","keyId":null|"...",
 *    "provider":"openai","model":null|"gpt-4o-mini","endpoint":"chat",
 *    "allowed":true|false,"reason":null|"rate_limited"|"insufficient_quota"|
 *      "request_too_large"|"provider_failed",
 *    "outcome":null|"ok"|"timeout"|...,            (the provider call's, lt_outcome_name)
 *    "stream":false,"tokens":{"input":N,"cachedInput":N,"output":N,
 *      "reasoning":N,"total":N},"estimated":false,
 *    "costMicros":N,"requestedTokens":N,"latencyMs":N}
 *
 * The reference's TOKEN_USAGE carried {userId, provider, tokens, allowed};
 * these fields keep those names (tokens became an object: total is the
 * old number).
 */
#ifndef LT_EVENTS_USAGE_EVENT_H
#define LT_EVENTS_USAGE_EVENT_H

#include <stdbool.h>
#include <stdint.h>

#include "provider/usage.h"
#include "util/buf.h"

#define LT_USAGE_EVENT_TYPE "TOKEN_USAGE"

struct lt_usage_event {
	int64_t time_ms;
	const char *correlation_id;
	const char *user_id;
	const char *org_id; /* NULL: none */
	const char *key_id; /* NULL: not an API key */
	const char *provider;
	const char *model;    /* NULL: none (consume) */
	const char *endpoint; /* "consume", "chat", "embeddings", "reference" */
	bool allowed;
	const char *reason;  /* NULL when allowed and billed */
	const char *outcome; /* NULL when no provider call was made */
	bool stream;
	struct lt_tokens tokens;
	bool estimated;
	int64_t cost_micros;
	int64_t requested_tokens; /* what admission held (consume: tokens asked) */
	int64_t latency_ms;
};

/* Append the event's JSON object to out (out->err on failure). */
void lt_usage_event_json(const struct lt_usage_event *ev, struct lt_buf *out);

#endif
