/*
 * test_limit_headers.c — src/limit/headers.c: Go durations, the binding
 * item, and the /api/v1 and /v1 header sets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "limit/headers.h"

#define MS INT64_C(1000000)
#define S INT64_C(1000000000)

static void test_duration(void **state)
{
	(void)state;
	static const struct {
		int64_t ns;
		const char *want;
	} cases[] = {
		{0, "0s"},
		{-5, "0s"},
		{400000, "0s"}, /* rounds to whole ms */
		{600000, "1ms"},
		{250 * MS, "250ms"},
		{999 * MS, "999ms"},
		{1 * S, "1s"},
		{1500 * MS, "1.5s"},
		{1250 * MS, "1.25s"},
		{1125 * MS, "1.125s"},
		{59 * S, "59s"},
		{60 * S, "1m0s"},
		{360 * S, "6m0s"},
		{3600 * S, "1h0m0s"},
		{3723 * S, "1h2m3s"},
		{3723 * S + 500 * MS, "1h2m3.5s"},
	};
	char out[32];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		lt_duration_go(cases[i].ns, out, sizeof out);
		if (strcmp(out, cases[i].want))
			fail_msg("%lld ns: got %s, want %s", (long long)cases[i].ns, out,
				 cases[i].want);
	}
	assert_int_equal(lt_ceil_seconds(0), 0);
	assert_int_equal(lt_ceil_seconds(1), 1);
	assert_int_equal(lt_ceil_seconds(S), 1);
	assert_int_equal(lt_ceil_seconds(S + 1), 2);
	assert_int_equal(lt_ceil_seconds(-3), 0);
}

static void item(struct lt_limit_plan *p, enum lt_limit_scope scope, const char *name,
		 int64_t limit, int64_t remaining, bool allowed, int64_t reset, int64_t retry)
{
	size_t i = p->n++;
	memset(&p->items[i], 0, sizeof p->items[i]);
	p->scope[i] = scope;
	snprintf(p->name[i], sizeof p->name[i], "%s", name);
	p->items[i].policy.algo = LT_ALGO_LEAKY;
	p->items[i].policy.capacity = limit;
	p->items[i].policy.rate = 10;
	p->items[i].policy.period_ns = S;
	struct lt_bucket_decision *d = &p->items[i].decision;
	d->allowed = allowed;
	d->limit = limit;
	d->remaining = remaining;
	d->used = limit - remaining;
	d->reset_ns = reset;
	d->retry_ns = retry;
}

static void render(const struct lt_limit_plan *p, bool allowed, bool openai, char *out, size_t cap)
{
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 1 << 16);
	if (openai)
		lt_limit_headers_openai(p, allowed, &b);
	else
		lt_limit_headers_api(p, allowed, &b);
	assert_int_equal(b.err, LT_OK);
	snprintf(out, cap, "%.*s", (int)b.len, b.len ? b.data : "");
	lt_buf_release(&b);
}

static void test_api_headers(void **state)
{
	(void)state;
	struct lt_limit_plan p;
	memset(&p, 0, sizeof p);
	char h[2048];
	render(&p, true, false, h, sizeof h);
	assert_string_equal(h, ""); /* no item, no header */

	item(&p, LT_SCOPE_REQUESTS, "requests", 120, 100, true, 20 * S, 0);
	item(&p, LT_SCOPE_TOKENS, "tokens-openai", 1000, 100, true, 90 * S, 0);
	assert_int_equal(lt_limit_binding(&p, true), 1); /* 10 % left beats 83 % */
	render(&p, true, false, h, sizeof h);
	assert_non_null(strstr(h, "X-RateLimit-Limit: 1000\r\n"));
	assert_non_null(strstr(h, "X-RateLimit-Remaining: 100\r\n"));
	assert_non_null(strstr(h, "X-RateLimit-Used: 900\r\n"));
	assert_non_null(strstr(h, "X-RateLimit-Reset: 90\r\n"));
	/* leaky 1000 tokens at 10/s: 100 s window */
	assert_non_null(strstr(h, "RateLimit-Policy: \"tokens-openai\";q=1000;w=100\r\n"));
	assert_non_null(strstr(h, "RateLimit: \"tokens-openai\";r=100;t=90\r\n"));
	assert_null(strstr(h, "Retry-After"));

	/* refused: the refused item with the longest wait binds; Retry-After */
	memset(&p, 0, sizeof p);
	item(&p, LT_SCOPE_REQUESTS, "requests", 120, 0, false, 30 * S, 2500 * MS);
	item(&p, LT_SCOPE_TOKENS, "tokens-openai", 1000, 5, false, 99 * S, 1 * S);
	item(&p, LT_SCOPE_MODEL_RPM, "rpm-x", 10, 9, true, 6 * S, 0);
	assert_int_equal(lt_limit_binding(&p, false), 0);
	render(&p, false, false, h, sizeof h);
	assert_non_null(strstr(h, "X-RateLimit-Reset: 3\r\n"));
	assert_non_null(strstr(h, "Retry-After: 3\r\n"));
	assert_non_null(strstr(h, "RateLimit: \"requests\";r=0;t=3\r\n"));
}

static void test_openai_headers(void **state)
{
	(void)state;
	struct lt_limit_plan p;
	memset(&p, 0, sizeof p);
	char h[2048];
	item(&p, LT_SCOPE_REQUESTS, "requests", 120, 119, true, 500 * MS, 0);
	item(&p, LT_SCOPE_MODEL_RPM, "rpm-m", 60, 10, true, 50 * S, 0);
	item(&p, LT_SCOPE_TOKENS, "tokens-openai", 1000, 900, true, 10 * S, 0);
	item(&p, LT_SCOPE_MODEL_TPM, "tpm-m", 90000, 1000, true, 360 * S, 0);
	render(&p, true, true, h, sizeof h);
	assert_non_null(strstr(h, "x-ratelimit-limit-requests: 60\r\n"));
	assert_non_null(strstr(h, "x-ratelimit-remaining-requests: 10\r\n"));
	assert_non_null(strstr(h, "x-ratelimit-reset-requests: 50s\r\n"));
	assert_non_null(strstr(h, "x-ratelimit-limit-tokens: 90000\r\n"));
	assert_non_null(strstr(h, "x-ratelimit-remaining-tokens: 1000\r\n"));
	assert_non_null(strstr(h, "x-ratelimit-reset-tokens: 6m0s\r\n"));
	assert_null(strstr(h, "retry-after"));

	memset(&p, 0, sizeof p);
	item(&p, LT_SCOPE_TOKENS, "tokens-openai", 1000, 3, false, 99 * S, 1200 * MS);
	render(&p, false, true, h, sizeof h);
	assert_null(strstr(h, "-requests:")); /* no request item: family omitted */
	assert_non_null(strstr(h, "x-ratelimit-reset-tokens: 1.2s\r\n"));
	assert_non_null(strstr(h, "retry-after: 2\r\n"));
	assert_non_null(strstr(h, "retry-after-ms: 1200\r\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_api_headers),
		cmocka_unit_test(test_openai_headers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
