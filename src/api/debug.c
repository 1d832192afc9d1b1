/*
 * debug.c — test-only endpoints: the manual clock and a slow request.
 *
 * /admin/v1/clock moves time when [debug] manual_clock is on, and is refused
 * (403) otherwise.  /admin/v1/debug/sleep exists only for the graceful
 * shutdown test and answers 404 unless [debug] test_endpoints is on.  Both
 * are served to loopback clients only (route auth LT_AUTH_DEBUG).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/handlers.h"
#include "http/request.h"
#include "server.h"
#include "util/json.h"
#include "util/timefmt.h"

static void reply_clock(struct lt_req *req)
{
	char ts[LT_ISO_LEN], stack[256];
	struct lt_buf b;
	int64_t now = lt_clock_now_ns(&req->srv->clock);
	lt_time_iso(now, ts);
	lt_buf_init(&b, stack, sizeof stack, 1024);
	lt_buf_printf(&b, "{\"manual\":%s,\"now\":\"%s\",\"nowMs\":%lld}",
		      atomic_load(&req->srv->clock.manual) ? "true" : "false", ts,
		      (long long)(now / LT_NS_PER_MS));
	lt_reply_json(req, 200, &b, NULL);
	lt_buf_release(&b);
}

void lt_api_clock_get(struct lt_req *req)
{
	reply_clock(req);
}

void lt_api_clock_post(struct lt_req *req)
{
	struct lt_clock *clock = &req->srv->clock;
	if (!atomic_load(&clock->manual)) {
		lt_reply_error(req, 403, "manual clock is disabled ([debug] manual_clock = no)");
		return;
	}
	int64_t advance = 0;
	const char *set = NULL;
	enum lt_err ea = lt_json_get_i64(req->json, "advanceMs", -LT_JSON_INT_MAX, LT_JSON_INT_MAX,
					 &advance);
	enum lt_err es = lt_json_get_str(req->json, "set", &set);
	if ((ea && ea != LT_ENOTFOUND) || (es && es != LT_ENOTFOUND)) {
		lt_reply_error(req, 400,
			       ea && ea != LT_ENOTFOUND ? "advanceMs must be an integer"
							: "set must be an ISO-8601 string");
		return;
	}
	if ((ea == LT_OK) == (es == LT_OK)) {
		lt_reply_error(req, 400, "give exactly one of advanceMs or set");
		return;
	}
	enum lt_err e;
	if (es == LT_OK) {
		int64_t ns;
		e = lt_time_parse_iso(set, strlen(set), &ns);
		if (e) {
			lt_reply_error(
				req, 400,
				"set must be an ISO-8601 UTC time like 2026-01-01T00:00:00Z");
			return;
		}
		e = lt_clock_set(clock, ns);
	} else {
		if (advance > INT64_MAX / LT_NS_PER_MS || advance < INT64_MIN / LT_NS_PER_MS)
			e = LT_ERANGE;
		else
			e = lt_clock_advance(clock, advance * LT_NS_PER_MS);
	}
	if (e) {
		lt_reply_error(req, 400, "the clock cannot move outside 1970..2262");
		return;
	}
	/* API.md §0: every log line of a request carries its correlation id. */
	char store[2 * LT_CORRELATION_MAX + 32];
	struct lt_buf extra;
	lt_buf_init(&extra, store, sizeof store, sizeof store - 1);
	lt_buf_puts(&extra, ",\"correlationId\":");
	lt_buf_put_json_str(&extra, req->correlation_id, strlen(req->correlation_id));
	lt_log_msg(&req->srv->log, LT_LOG_INFO, extra.err ? NULL : extra.data,
		   "manual clock moved");
	lt_buf_release(&extra);
	reply_clock(req);
}

void lt_api_debug_sleep(struct lt_req *req)
{
	if (!req->cfg->debug_test_endpoints) {
		lt_reply_error(req, 404, "no such endpoint");
		return;
	}
	char v[32];
	long long ms = 100;
	if (lt_req_query(req, "ms", v, sizeof v) == LT_OK) {
		char *end;
		ms = strtoll(v, &end, 10);
		if (*end || ms < 0 || ms > 60000) {
			lt_reply_error(req, 400, "ms must be 0-60000");
			return;
		}
	}
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
	char stack[64];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 64);
	lt_buf_printf(&b, "{\"sleptMs\":%lld}", ms);
	lt_reply_json(req, 200, &b, NULL);
	lt_buf_release(&b);
}
