/*
 * test_retry.c — src/provider/retry.c: which failures are retried, backoff
 * doubling up to its cap, equal-jitter bounds, Retry-After winning when
 * longer, the deadline and the attempt budget.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "provider/retry.h"

#define MS INT64_C(1000000)
#define S INT64_C(1000000000)

/* The reference's policy: 3 attempts, 250 ms first backoff, 2 s cap. */
static const struct lt_retry_policy ref = {.attempts = 3, .base_ns = 250 * MS, .max_ns = 2 * S};

static void test_retryable(void **state)
{
	(void)state;
	static const struct {
		enum lt_err err;
		int status;
		bool want;
	} cases[] = {
		{LT_ECONNECT, 0, true},	   {LT_OK, 429, true},	    {LT_OK, 502, true},
		{LT_OK, 503, true},	   {LT_OK, 504, true},	    {LT_OK, 500, false},
		{LT_OK, 501, false},	   {LT_OK, 400, false},	    {LT_OK, 401, false},
		{LT_OK, 403, false},	   {LT_OK, 404, false},	    {LT_OK, 200, false},
		{LT_OK, 0, false},	   {LT_ETLS, 0, false},	    {LT_ETIMEOUT, 0, false},
		{LT_EPROTO, 0, false},	   {LT_ECLOSED, 0, false},  {LT_ETOOBIG, 0, false},
		{LT_ETIMEOUT, 503, false}, {LT_EPROTO, 502, false}, {LT_ECONNECT, 500, true},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		if (lt_retry_retryable(cases[i].err, cases[i].status) != cases[i].want)
			fail_msg("case %zu: err %d status %d: want %d", i, (int)cases[i].err,
				 cases[i].status, cases[i].want);
}

static void test_backoff_doubles_and_caps(void **state)
{
	(void)state;
	static const int64_t full[] = {250 * MS,  500 * MS,  1000 * MS,
				       2000 * MS, 2000 * MS, 2000 * MS};
	for (int k = 1; k <= 6; k++) {
		assert_int_equal(lt_retry_backoff_ns(&ref, k, UINT64_MAX, -1), full[k - 1]);
		assert_int_equal(lt_retry_backoff_ns(&ref, k, 0, -1), full[k - 1] / 2);
	}
	/* far past the cap, without overflow */
	assert_int_equal(lt_retry_backoff_ns(&ref, 1000, UINT64_MAX, -1), 2 * S);
	assert_int_equal(lt_retry_backoff_ns(&ref, 1000000, 0, -1), 1 * S);
	const struct lt_retry_policy huge = {.attempts = 10, .base_ns = 1, .max_ns = INT64_MAX};
	assert_int_equal(lt_retry_backoff_ns(&huge, 63, UINT64_MAX, -1), INT64_C(1) << 62);
	assert_int_equal(lt_retry_backoff_ns(&huge, 64, UINT64_MAX, -1), INT64_MAX);
	assert_int_equal(lt_retry_backoff_ns(&huge, 1000, UINT64_MAX, -1), INT64_MAX);
	/* a base above the cap is the cap */
	const struct lt_retry_policy capped = {.attempts = 3, .base_ns = 5 * S, .max_ns = S};
	assert_int_equal(lt_retry_backoff_ns(&capped, 1, UINT64_MAX, -1), S);
}

/* A fixed xorshift sequence, so the test is repeatable. */
static uint64_t next_rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void test_jitter_bounds(void **state)
{
	(void)state;
	uint64_t x = 0x9E3779B97F4A7C15u;
	for (int k = 1; k <= 6; k++) {
		int64_t step = lt_retry_backoff_ns(&ref, k, UINT64_MAX, -1);
		int64_t lo = INT64_MAX, hi = 0;
		for (int i = 0; i < 2000; i++) {
			int64_t w = lt_retry_backoff_ns(&ref, k, next_rnd(&x), -1);
			if (w < step / 2 || w > step)
				fail_msg("retry %d: wait %lld outside [%lld, %lld]", k,
					 (long long)w, (long long)(step / 2), (long long)step);
			lo = w < lo ? w : lo;
			hi = w > hi ? w : hi;
		}
		/* the random half is really used: spread over most of it */
		assert_true(lo < step / 2 + step / 20);
		assert_true(hi > step - step / 20);
	}
	/* the middle of the range of rnd lands in the middle */
	int64_t mid = lt_retry_backoff_ns(&ref, 1, UINT64_C(1) << 63, -1);
	assert_int_equal(mid, 125 * MS + 62500 * 1000);
	/* odd steps: the half is rounded down, the full step still reachable */
	const struct lt_retry_policy odd = {.attempts = 2, .base_ns = 7, .max_ns = 7};
	assert_int_equal(lt_retry_backoff_ns(&odd, 1, 0, -1), 3);
	assert_int_equal(lt_retry_backoff_ns(&odd, 1, UINT64_MAX, -1), 7);
}

static void test_retry_after(void **state)
{
	(void)state;
	/* longer than the backoff: it wins */
	assert_int_equal(lt_retry_backoff_ns(&ref, 1, UINT64_MAX, 5), 5 * S);
	assert_int_equal(lt_retry_backoff_ns(&ref, 3, 0, 1), 1 * S);
	/* shorter: the computed wait stays */
	assert_int_equal(lt_retry_backoff_ns(&ref, 1, UINT64_MAX, 0), 250 * MS);
	assert_int_equal(lt_retry_backoff_ns(&ref, 4, UINT64_MAX, 1), 2 * S);
	/* absent */
	assert_int_equal(lt_retry_backoff_ns(&ref, 1, 0, -1), 125 * MS);
	/* enormous: saturates instead of overflowing */
	assert_int_equal(lt_retry_backoff_ns(&ref, 1, 0, INT64_MAX), INT64_MAX);
	assert_int_equal(lt_retry_backoff_ns(&ref, 1, 0, INT64_MAX / S + 1), INT64_MAX);
}

static void test_next(void **state)
{
	(void)state;
	int64_t wait = -1;
	/* a 503 after the first attempt, plenty of time */
	assert_true(lt_retry_next(&ref, 1, LT_OK, 503, -1, UINT64_MAX, 0, 10 * S, &wait));
	assert_int_equal(wait, 250 * MS);
	/* the attempt number is the retry number: the second retry waits twice as long */
	assert_true(lt_retry_next(&ref, 2, LT_OK, 503, -1, UINT64_MAX, 0, 10 * S, &wait));
	assert_int_equal(wait, 500 * MS);
	/* attempts exhausted */
	assert_false(lt_retry_next(&ref, 3, LT_OK, 503, -1, UINT64_MAX, 0, 10 * S, &wait));
	assert_int_equal(wait, 0);
	assert_false(lt_retry_next(&ref, 7, LT_ECONNECT, 0, -1, 0, 0, 10 * S, &wait));
	const struct lt_retry_policy once = {.attempts = 1, .base_ns = MS, .max_ns = MS};
	assert_false(lt_retry_next(&once, 1, LT_ECONNECT, 0, -1, 0, 0, 10 * S, &wait));
	/* not retryable */
	wait = -1;
	assert_false(lt_retry_next(&ref, 1, LT_OK, 500, -1, 0, 0, 10 * S, &wait));
	assert_int_equal(wait, 0);
	assert_false(lt_retry_next(&ref, 1, LT_ETIMEOUT, 0, -1, 0, 0, 10 * S, &wait));
	assert_false(lt_retry_next(&ref, 1, LT_ETLS, 0, -1, 0, 0, 10 * S, &wait));
	/* connect errors are */
	assert_true(lt_retry_next(&ref, 1, LT_ECONNECT, 0, -1, 0, 5 * S, 10 * S, &wait));
	assert_int_equal(wait, 125 * MS);
	/* Retry-After longer than the backoff is the wait... */
	assert_true(lt_retry_next(&ref, 1, LT_OK, 429, 3, 0, 100 * S, 104 * S, &wait));
	assert_int_equal(wait, 3 * S);
	/* ...unless it passes the deadline: then no retry at all */
	wait = -1;
	assert_false(lt_retry_next(&ref, 1, LT_OK, 429, 30, 0, 100 * S, 104 * S, &wait));
	assert_int_equal(wait, 0);
	/* the wait must end strictly before the deadline */
	assert_false(lt_retry_next(&ref, 1, LT_OK, 429, 4, 0, 100 * S, 104 * S, &wait));
	assert_true(lt_retry_next(&ref, 1, LT_OK, 429, 4, 0, 100 * S, 104 * S + 1, &wait));
	/* the computed backoff alone can pass it too */
	assert_false(lt_retry_next(&ref, 1, LT_OK, 502, -1, UINT64_MAX, 0, 250 * MS, &wait));
	assert_true(lt_retry_next(&ref, 1, LT_OK, 502, -1, 0, 0, 250 * MS, &wait));
	/* a deadline already passed */
	assert_false(lt_retry_next(&ref, 1, LT_OK, 502, -1, 0, 20 * S, 10 * S, &wait));
	/* extreme times do not overflow */
	assert_true(lt_retry_next(&ref, 1, LT_OK, 502, -1, 0, INT64_MIN, INT64_MAX, &wait));
	assert_false(lt_retry_next(&ref, 1, LT_OK, 502, INT64_MAX, 0, 0, INT64_MAX, &wait));
	/* wait_ns may be NULL */
	assert_true(lt_retry_next(&ref, 1, LT_OK, 503, -1, 0, 0, 10 * S, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_retryable),
		cmocka_unit_test(test_backoff_doubles_and_caps),
		cmocka_unit_test(test_jitter_bounds),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_next),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
