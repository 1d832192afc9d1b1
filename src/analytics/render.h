/*
 * render.h — the JSON of the analytics answers (API.md §3), from the
 * query results of query.h (pure: no I/O).  One rendering for the HTTP
 * API (api/analytics.c) and `leakyctl usage --json` (cli/cmd_usage.c), so
 * the two print the same bytes.
 *
 * Each function appends to b (b->err on failure).  Times are Unix ms,
 * written as ISO-8601 UTC with milliseconds.
 */
#ifndef LT_ANALYTICS_RENDER_H
#define LT_ANALYTICS_RENDER_H

#include <stddef.h>
#include <stdint.h>

#include "analytics/query.h"
#include "util/buf.h"

/* "name":"<ISO time>" */
void lt_an_json_time(struct lt_buf *b, const char *name, int64_t ms);

/* {provider, count, items:[{key:{provider, timestamp}, userId, tokens, allowed}]} */
void lt_an_json_usage(struct lt_buf *b, const char *provider, const struct lt_aq_event *items,
		      size_t n);

/* {provider, windowStart, windowEnd, totalEvents, allowedEvents, deniedEvents, totalTokens,
 * averageTokensPerEvent, uniqueUsers, sampleLimit, topUsers} */
void lt_an_json_report(struct lt_buf *b, const char *provider, int64_t start_ms, int64_t end_ms,
		       const struct lt_aq_report *r, int64_t sample_limit);

/* "topUsers":[{userId, totalTokens, events}] of the first n of r's top users. */
void lt_an_json_top(struct lt_buf *b, const struct lt_aq_report *r, size_t n);

/* {provider, windowStart, windowEnd, baselineWindows, currentTokens,
 * baselineAverageTokens, ratio (null without a baseline), thresholdMultiplier, anomaly} */
void lt_an_json_anomaly(struct lt_buf *b, const char *provider, const struct lt_aq_anomaly *a);

/* The cost answer, written as its rows arrive: open, then one row each
 * (index = rows written before it), then close with the count and total.
 * {from, to, groupBy, bucket, provider (null: all), unit, items:[{bucketStart, group,
 * costMicros, requests, totalTokens}], count, totalCostMicros} */
void lt_an_json_cost_open(struct lt_buf *b, int64_t from_ms, int64_t to_ms, enum lt_aq_group g,
			  enum lt_aq_bucket bk, const char *provider);
void lt_an_json_cost_row(struct lt_buf *b, size_t index, const struct lt_aq_cost_row *r);
void lt_an_json_cost_close(struct lt_buf *b, size_t count, int64_t total_micros);

/* {userId, day (YYYY-MM-DD), dayStart, requests, allowedRequests, refused, tokens,
 * costMicros, latencyMs} */
void lt_an_json_daily(struct lt_buf *b, const char *user_id, const char *day, int64_t day_start_ms,
		      const struct lt_aq_daily *d);

#endif
