/*
 * render.c — the analytics answers as JSON.  See render.h.
 */
#include <math.h>
#include <string.h>

#include "analytics/render.h"
#include "util/clock.h"
#include "util/timefmt.h"

void lt_an_json_time(struct lt_buf *b, const char *name, int64_t ms)
{
	char ts[LT_ISO_LEN];
	lt_time_iso(ms * LT_NS_PER_MS, ts);
	lt_buf_printf(b, "\"%s\":\"%s\"", name, ts);
}

/* A double as a JSON number (always finite here). */
static void put_double(struct lt_buf *b, double v)
{
	lt_buf_printf(b, "%.17g", isfinite(v) ? v : 0.0);
}

static void put_str(struct lt_buf *b, const char *s)
{
	lt_buf_put_json_str(b, s, strlen(s));
}

void lt_an_json_usage(struct lt_buf *b, const char *provider, const struct lt_aq_event *items,
		      size_t n)
{
	lt_buf_puts(b, "{\"provider\":");
	put_str(b, provider);
	lt_buf_printf(b, ",\"count\":%zu,\"items\":[", n);
	for (size_t i = 0; i < n; i++) {
		lt_buf_puts(b, i ? ",{\"key\":{\"provider\":" : "{\"key\":{\"provider\":");
		put_str(b, provider);
		lt_buf_putc(b, ',');
		lt_an_json_time(b, "timestamp", items[i].at);
		lt_buf_puts(b, "},\"userId\":");
		put_str(b, items[i].user_id);
		lt_buf_printf(b, ",\"tokens\":%lld,\"allowed\":%s}", (long long)items[i].tokens,
			      items[i].allowed ? "true" : "false");
	}
	lt_buf_puts(b, "]}");
}

void lt_an_json_top(struct lt_buf *b, const struct lt_aq_report *r, size_t n)
{
	lt_buf_puts(b, "\"topUsers\":[");
	for (size_t i = 0; i < n && i < r->ntop; i++) {
		lt_buf_puts(b, i ? ",{\"userId\":" : "{\"userId\":");
		put_str(b, r->top[i].user_id);
		lt_buf_printf(b, ",\"totalTokens\":%lld,\"events\":%lld}",
			      (long long)r->top[i].tokens, (long long)r->top[i].events);
	}
	lt_buf_putc(b, ']');
}

void lt_an_json_report(struct lt_buf *b, const char *provider, int64_t start_ms, int64_t end_ms,
		       const struct lt_aq_report *r, int64_t sample_limit)
{
	lt_buf_puts(b, "{\"provider\":");
	put_str(b, provider);
	lt_buf_putc(b, ',');
	lt_an_json_time(b, "windowStart", start_ms);
	lt_buf_putc(b, ',');
	lt_an_json_time(b, "windowEnd", end_ms);
	lt_buf_printf(b,
		      ",\"totalEvents\":%lld,\"allowedEvents\":%lld,\"deniedEvents\":%lld,"
		      "\"totalTokens\":%lld,\"averageTokensPerEvent\":",
		      (long long)r->events, (long long)r->allowed, (long long)r->denied,
		      (long long)r->tokens);
	put_double(b, r->average_tokens);
	lt_buf_printf(b, ",\"uniqueUsers\":%lld,\"sampleLimit\":%lld,", (long long)r->unique_users,
		      (long long)sample_limit);
	lt_an_json_top(b, r, r->ntop);
	lt_buf_putc(b, '}');
}

void lt_an_json_anomaly(struct lt_buf *b, const char *provider, const struct lt_aq_anomaly *a)
{
	lt_buf_puts(b, "{\"provider\":");
	put_str(b, provider);
	lt_buf_putc(b, ',');
	lt_an_json_time(b, "windowStart", a->start);
	lt_buf_putc(b, ',');
	lt_an_json_time(b, "windowEnd", a->end);
	lt_buf_printf(b,
		      ",\"baselineWindows\":%lld,\"currentTokens\":%lld,"
		      "\"baselineAverageTokens\":",
		      (long long)a->baseline_windows, (long long)a->a.current);
	put_double(b, a->a.baseline_avg);
	lt_buf_puts(b, ",\"ratio\":");
	if (a->a.has_ratio)
		put_double(b, a->a.ratio);
	else
		lt_buf_puts(b, "null");
	lt_buf_puts(b, ",\"thresholdMultiplier\":");
	put_double(b, a->a.threshold);
	lt_buf_printf(b, ",\"anomaly\":%s}", a->a.anomaly ? "true" : "false");
}

void lt_an_json_cost_open(struct lt_buf *b, int64_t from_ms, int64_t to_ms, enum lt_aq_group g,
			  enum lt_aq_bucket bk, const char *provider)
{
	lt_buf_putc(b, '{');
	lt_an_json_time(b, "from", from_ms);
	lt_buf_putc(b, ',');
	lt_an_json_time(b, "to", to_ms);
	lt_buf_printf(b, ",\"groupBy\":\"%s\",\"bucket\":\"%s\",\"provider\":", lt_aq_group_name(g),
		      lt_aq_bucket_name(bk));
	if (provider)
		put_str(b, provider);
	else
		lt_buf_puts(b, "null");
	lt_buf_puts(b, ",\"unit\":\"micro-USD\",\"items\":[");
}

void lt_an_json_cost_row(struct lt_buf *b, size_t index, const struct lt_aq_cost_row *r)
{
	lt_buf_puts(b, index ? ",{" : "{");
	lt_an_json_time(b, "bucketStart", r->bucket_start);
	lt_buf_puts(b, ",\"group\":");
	put_str(b, r->group);
	lt_buf_printf(b, ",\"costMicros\":%lld,\"requests\":%lld,\"totalTokens\":%lld}",
		      (long long)r->cost_micros, (long long)r->requests, (long long)r->tokens);
}

void lt_an_json_cost_close(struct lt_buf *b, size_t count, int64_t total_micros)
{
	lt_buf_printf(b, "],\"count\":%zu,\"totalCostMicros\":%lld}", count,
		      (long long)total_micros);
}

void lt_an_json_daily(struct lt_buf *b, const char *user_id, const char *day, int64_t day_start_ms,
		      const struct lt_aq_daily *d)
{
	lt_buf_puts(b, "{\"userId\":");
	put_str(b, user_id);
	lt_buf_printf(b, ",\"day\":\"%.10s\",", day);
	lt_an_json_time(b, "dayStart", day_start_ms);
	lt_buf_printf(
		b,
		",\"requests\":%lld,\"allowedRequests\":%lld,\"refused\":{\"rateLimited\":%lld,"
		"\"insufficientQuota\":%lld,\"other\":%lld},\"tokens\":{\"input\":%lld,"
		"\"cachedInput\":%lld,\"output\":%lld,\"total\":%lld},\"costMicros\":%lld,"
		"\"latencyMs\":{\"sum\":%lld,\"max\":%lld}}",
		(long long)d->requests, (long long)d->allowed, (long long)d->refused_rate,
		(long long)d->refused_quota, (long long)d->refused_other, (long long)d->input,
		(long long)d->cached_input, (long long)d->output, (long long)d->total,
		(long long)d->cost_micros, (long long)d->latency_sum, (long long)d->latency_max);
}
