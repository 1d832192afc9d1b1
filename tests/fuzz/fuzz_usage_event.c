/*
 * fuzz_usage_event.c — lt_an_fact_parse (src/analytics/ingest.c), the
 * strict parser of a token-usage payload, on arbitrary bytes.
 *
 * Checks, beyond "no crash and no sanitizer report":
 *   - the result is LT_OK or one of the documented errors; on an error the
 *     fact is all zero;
 *   - on LT_OK: the event id is the one passed; every token count and cost
 *     and latency is within its bound; cached <= input, reasoning <= output,
 *     total == input + output; every string is NUL-terminated within its
 *     cap; the time formats back (lt_time_iso) to a string that parses to
 *     the same millisecond, and lies in the day the day name says;
 *   - re-serialising the fact with lt_usage_event_json and parsing that
 *     gives the same fact (the parser accepts what the producer writes and
 *     loses nothing it stores).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/ingest.h"
#include "analytics/window.h"
#include "events/usage_event.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/timefmt.h"

#include "fuzz_check.h"

static bool all_zero(const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		if (c[i])
			return false;
	return true;
}

static bool str_ok(const char *s, size_t cap)
{
	return memchr(s, '\0', cap) != NULL;
}

static const char *or_null(const char *s)
{
	return s[0] ? s : NULL;
}

static void check_fact(const struct lt_an_fact *f)
{
	CHECK(f->event_id == 77);
	CHECK(f->input >= 0 && f->input <= LT_AN_TOKENS_MAX);
	CHECK(f->output >= 0 && f->output <= LT_AN_TOKENS_MAX);
	CHECK(f->cached_input >= 0 && f->cached_input <= f->input);
	CHECK(f->reasoning >= 0 && f->reasoning <= f->output);
	CHECK(f->total == f->input + f->output);
	CHECK(f->cost_micros >= 0 && f->cost_micros <= LT_AN_COST_MAX);
	CHECK(f->latency_ms >= 0 && f->latency_ms <= LT_AN_LATENCY_MAX);
	CHECK(str_ok(f->user_id, sizeof f->user_id) && str_ok(f->org_id, sizeof f->org_id) &&
	      str_ok(f->key_id, sizeof f->key_id) && str_ok(f->provider, sizeof f->provider) &&
	      str_ok(f->model, sizeof f->model) && str_ok(f->endpoint, sizeof f->endpoint) &&
	      str_ok(f->reason, sizeof f->reason) && str_ok(f->outcome, sizeof f->outcome) &&
	      str_ok(f->correlation_id, sizeof f->correlation_id));
	/* the time parses back */
	CHECK(f->at_ms >= 0);
	char iso[LT_ISO_LEN];
	lt_time_iso(f->at_ms * LT_NS_PER_MS, iso);
	int64_t ns = -1;
	CHECK(lt_time_parse_iso(iso, strlen(iso), &ns) == LT_OK);
	CHECK(ns == f->at_ms * LT_NS_PER_MS);
	char day[LT_AN_DAY_LEN];
	int64_t start = -1;
	lt_an_day_name(f->at_ms, day);
	CHECK(lt_an_day_parse(day, &start) == LT_OK);
	CHECK(start <= f->at_ms && f->at_ms < start + LT_AN_MS_DAY);
}

/* Write f back as the producer would and parse it again. */
static void check_roundtrip(const struct lt_an_fact *f)
{
	struct lt_usage_event ev = {0};
	ev.time_ms = f->at_ms;
	ev.correlation_id = or_null(f->correlation_id);
	ev.user_id = or_null(f->user_id);
	ev.org_id = or_null(f->org_id);
	ev.key_id = or_null(f->key_id);
	ev.provider = or_null(f->provider);
	ev.model = or_null(f->model);
	ev.endpoint = or_null(f->endpoint);
	ev.allowed = f->allowed;
	ev.reason = or_null(f->reason);
	ev.outcome = or_null(f->outcome);
	ev.tokens.input = f->input;
	ev.tokens.cached_input = f->cached_input;
	ev.tokens.output = f->output;
	ev.tokens.reasoning = f->reasoning;
	ev.cost_micros = f->cost_micros;
	ev.latency_ms = f->latency_ms;
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 1 << 20);
	lt_usage_event_json(&ev, &b);
	CHECK(b.err == LT_OK);
	struct lt_an_fact *g = malloc(sizeof *g);
	CHECK(g != NULL);
	enum lt_err e = lt_an_fact_parse(b.data, b.len, f->event_id, g);
	CHECK(e == LT_OK);
	CHECK(memcmp(f, g, sizeof *f) == 0); /* both zeroed first: padding too */
	free(g);
	lt_buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lt_an_fact *f = malloc(sizeof *f);
	CHECK(f != NULL);
	memset(f, 0xab, sizeof *f);
	enum lt_err e = lt_an_fact_parse((const char *)data, size, 77, f);
	CHECK(e == LT_OK || e == LT_ESYNTAX || e == LT_EINVAL || e == LT_ERANGE ||
	      e == LT_ETOOBIG || e == LT_ENOMEM);
	if (e) {
		CHECK(all_zero(f, sizeof *f));
	} else {
		check_fact(f);
		check_roundtrip(f);
	}
	free(f);
	return 0;
}
