/*
 * headers.h — rate-limit response headers from admission decisions (pure).
 *
 * /api/v1 (API.md §6), for the item that binds (the lowest remaining share):
 *   X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Used,
 *   X-RateLimit-Reset (whole seconds, rounded up: until the request would
 *   pass when refused, until the bucket is back to full when admitted),
 *   RateLimit-Policy: "<name>";q=<limit>;w=<window seconds>
 *   RateLimit: "<name>";r=<remaining>;t=<reset seconds>
 *   and, when refused, Retry-After (seconds, rounded up).
 * /v1 (API.md §4), OpenAI's names, from the request-scope and token-scope
 * items (each family omitted when no such item applies):
 *   x-ratelimit-limit-requests, x-ratelimit-remaining-requests,
 *   x-ratelimit-reset-requests, x-ratelimit-limit-tokens,
 *   x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens — resets as Go
 *   durations ("1s", "6m0s", "250ms", "1h2m3s") — and, when refused,
 *   retry-after (seconds, rounded up) and retry-after-ms.
 *
 * Output: complete header lines ending "\r\n", appended to an lt_buf.
 */
#ifndef LT_LIMIT_HEADERS_H
#define LT_LIMIT_HEADERS_H

#include <stdbool.h>
#include <stdint.h>

#include "limit/policy.h"
#include "util/buf.h"

/* Go's time.Duration.String() of ns rounded to whole milliseconds: "0s",
 * "250ms", "1s", "1.5s", "6m0s", "1h0m0s".  out holds at least 32 bytes. */
void lt_duration_go(int64_t ns, char *out, size_t cap);

/* Seconds, rounded up, of a non-negative ns (0 → 0). */
int64_t lt_ceil_seconds(int64_t ns);

/* Index of the binding item of a plan (the refused one with the longest
 * retry when refused, else the lowest remaining/limit share); -1 if n = 0. */
int lt_limit_binding(const struct lt_limit_plan *p, bool allowed);

/* Append the /api/v1 headers for the plan's decisions. */
void lt_limit_headers_api(const struct lt_limit_plan *p, bool allowed, struct lt_buf *out);

/* Append the /v1 headers for the plan's decisions. */
void lt_limit_headers_openai(const struct lt_limit_plan *p, bool allowed, struct lt_buf *out);

#endif
