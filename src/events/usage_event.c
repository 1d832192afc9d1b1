/*
 * usage_event.c — the token-usage event's JSON.  See usage_event.h.
 */
#include <string.h>

#include "events/usage_event.h"
#include "util/clock.h"
#include "util/timefmt.h"

static void put_str_or_null(struct lt_buf *b, const char *name, const char *v)
{
	lt_buf_printf(b, ",\"%s\":", name);
	if (v && v[0])
		lt_buf_put_json_str(b, v, strlen(v));
	else
		lt_buf_puts(b, "null");
}

void lt_usage_event_json(const struct lt_usage_event *ev, struct lt_buf *out)
{
	char ts[LT_ISO_LEN];
	lt_time_iso(ev->time_ms * LT_NS_PER_MS, ts);
	struct lt_tokens t = ev->tokens;
	lt_tokens_clamp(&t);
	lt_buf_printf(out, "{\"type\":\"%s\",\"time\":\"%s\"", LT_USAGE_EVENT_TYPE, ts);
	put_str_or_null(out, "correlationId", ev->correlation_id);
	put_str_or_null(out, "userId", ev->user_id);
	put_str_or_null(out, "orgId", ev->org_id);
	put_str_or_null(out, "keyId", ev->key_id);
	put_str_or_null(out, "provider", ev->provider);
	put_str_or_null(out, "model", ev->model);
	put_str_or_null(out, "endpoint", ev->endpoint);
	lt_buf_printf(out, ",\"allowed\":%s", ev->allowed ? "true" : "false");
	put_str_or_null(out, "reason", ev->reason);
	put_str_or_null(out, "outcome", ev->outcome);
	lt_buf_printf(out,
		      ",\"stream\":%s,\"tokens\":{\"input\":%lld,\"cachedInput\":%lld,"
		      "\"output\":%lld,\"reasoning\":%lld,\"total\":%lld},\"estimated\":%s,"
		      "\"costMicros\":%lld,\"requestedTokens\":%lld,\"latencyMs\":%lld}",
		      ev->stream ? "true" : "false", (long long)t.input, (long long)t.cached_input,
		      (long long)t.output, (long long)t.reasoning, (long long)(t.input + t.output),
		      ev->estimated ? "true" : "false", (long long)ev->cost_micros,
		      (long long)ev->requested_tokens,
		      (long long)(ev->latency_ms < 0 ? 0 : ev->latency_ms));
}
