/*
 * test_breaker.c — src/provider/breaker.c: closed → open at failure_pct once
 * min_calls outcomes are in (never before), the ring forgetting old
 * outcomes, open refusing with retry_in, half-open letting exactly `probes`
 * calls through, closing with a cleared ring, reopening on a probe failure,
 * lt_breaker_cancel, stale outcomes, a clock stepped back, and the
 * reference defaults.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "provider/breaker.h"

#define S INT64_C(1000000000)

/* The reference's defaults: window 20, min_calls 10, 50 %, 10 s, 3 probes. */
static const struct lt_breaker_policy defaults = {
	.window = 20, .min_calls = 10, .failure_pct = 50, .open_ns = 10 * S, .probes = 3};

/* Allow then record one call at time t. */
static void call(struct lt_breaker *b, const struct lt_breaker_policy *p, int64_t t, bool failure)
{
	int64_t retry_in = -1;
	assert_true(lt_breaker_allow(b, p, t, &retry_in));
	assert_int_equal(retry_in, 0);
	lt_breaker_record(b, p, t, failure);
}

/* Trip a default breaker at time t. */
static void trip(struct lt_breaker *b, int64_t t)
{
	for (int i = 0; i < 10; i++)
		call(b, &defaults, t, true);
	assert_int_equal(b->state, LT_BREAKER_OPEN);
	assert_int_equal(b->opened_at, t);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(lt_breaker_state_name(LT_BREAKER_CLOSED), "closed");
	assert_string_equal(lt_breaker_state_name(LT_BREAKER_OPEN), "open");
	assert_string_equal(lt_breaker_state_name(LT_BREAKER_HALF_OPEN), "half_open");
	struct lt_breaker b;
	lt_breaker_init(&b);
	assert_int_equal(b.state, LT_BREAKER_CLOSED);
	assert_int_equal(lt_breaker_failure_pct(&b), 0);
	assert_int_equal(b.opens, 0);
}

static void test_defaults_min_calls(void **state)
{
	(void)state;
	struct lt_breaker b;
	lt_breaker_init(&b);
	/* nine failures are not enough evidence */
	for (int i = 0; i < 9; i++) {
		call(&b, &defaults, 1 * S, true);
		assert_int_equal(b.state, LT_BREAKER_CLOSED);
	}
	assert_int_equal(lt_breaker_failure_pct(&b), 100);
	/* the tenth is */
	call(&b, &defaults, 2 * S, true);
	assert_int_equal(b.state, LT_BREAKER_OPEN);
	assert_int_equal(b.opens, 1);
	assert_int_equal(b.opened_at, 2 * S);
}

static void test_defaults_failure_pct(void **state)
{
	(void)state;
	struct lt_breaker b;
	lt_breaker_init(&b);
	/* 10 successes then 9 failures: 9/19 = 47 % stays closed */
	for (int i = 0; i < 10; i++)
		call(&b, &defaults, S, false);
	for (int i = 0; i < 9; i++)
		call(&b, &defaults, S, true);
	assert_int_equal(b.state, LT_BREAKER_CLOSED);
	assert_int_equal(lt_breaker_failure_pct(&b), 47);
	/* the 10th failure makes 10/20 = 50 %: open */
	call(&b, &defaults, S, true);
	assert_int_equal(b.state, LT_BREAKER_OPEN);

	/* 4 failures in 10 calls: 40 % stays closed; at 5 of 10 it opens */
	lt_breaker_init(&b);
	for (int i = 0; i < 4; i++)
		call(&b, &defaults, S, true);
	for (int i = 0; i < 6; i++)
		call(&b, &defaults, S, false);
	assert_int_equal(b.state, LT_BREAKER_CLOSED);
	assert_int_equal(lt_breaker_failure_pct(&b), 40);
	lt_breaker_init(&b);
	for (int i = 0; i < 5; i++)
		call(&b, &defaults, S, true);
	for (int i = 0; i < 4; i++)
		call(&b, &defaults, S, false);
	assert_int_equal(b.state, LT_BREAKER_CLOSED); /* 9 calls: below min_calls */
	call(&b, &defaults, S, false);
	assert_int_equal(b.state, LT_BREAKER_OPEN); /* 5 of 10 */
}

static void test_ring_forgets(void **state)
{
	(void)state;
	const struct lt_breaker_policy p = {
		.window = 10, .min_calls = 10, .failure_pct = 50, .open_ns = S, .probes = 1};
	struct lt_breaker b;
	lt_breaker_init(&b);
	for (int i = 0; i < 4; i++)
		call(&b, &p, 0, true);
	for (int i = 0; i < 10; i++)
		call(&b, &p, 0, false);
	/* the four failures have left the window */
	assert_int_equal(b.ring_len, 10);
	assert_int_equal(lt_breaker_failure_pct(&b), 0);
	for (int i = 0; i < 4; i++)
		call(&b, &p, 0, true);
	assert_int_equal(lt_breaker_failure_pct(&b), 40);
	assert_int_equal(b.state, LT_BREAKER_CLOSED);
	call(&b, &p, 0, true);
	assert_int_equal(lt_breaker_failure_pct(&b), 50);
	assert_int_equal(b.state, LT_BREAKER_OPEN);

	/* over many windows the share is of the last `window` calls only */
	lt_breaker_init(&b);
	for (int i = 0; i < 1000; i++) {
		call(&b, &p, 0, i % 5 == 0); /* 20 % failures */
		assert_int_equal(b.state, LT_BREAKER_CLOSED);
	}
	assert_int_equal(lt_breaker_failure_pct(&b), 20);
}

static void test_open_refuses(void **state)
{
	(void)state;
	struct lt_breaker b;
	lt_breaker_init(&b);
	trip(&b, 100 * S);
	int64_t retry_in = -1;
	assert_false(lt_breaker_allow(&b, &defaults, 100 * S, &retry_in));
	assert_int_equal(retry_in, 10 * S);
	assert_false(lt_breaker_allow(&b, &defaults, 103 * S, &retry_in));
	assert_int_equal(retry_in, 7 * S);
	assert_false(lt_breaker_allow(&b, &defaults, 110 * S - 1, &retry_in));
	assert_int_equal(retry_in, 1);
	assert_false(lt_breaker_allow(&b, &defaults, 105 * S, NULL));
	assert_int_equal(b.state, LT_BREAKER_OPEN);
	/* refusals are not outcomes */
	assert_int_equal(b.opens, 1);
	assert_int_equal(b.opened_at, 100 * S);
}

static void test_half_open_probes(void **state)
{
	(void)state;
	struct lt_breaker b;
	lt_breaker_init(&b);
	trip(&b, 100 * S);
	int64_t retry_in = -1;
	/* after open_ns exactly three calls go through at once */
	for (int i = 0; i < 3; i++) {
		assert_true(lt_breaker_allow(&b, &defaults, 110 * S, &retry_in));
		assert_int_equal(retry_in, 0);
		assert_int_equal(b.state, LT_BREAKER_HALF_OPEN);
	}
	assert_false(lt_breaker_allow(&b, &defaults, 110 * S, &retry_in));
	assert_int_equal(retry_in, 0);
	assert_false(lt_breaker_allow(&b, &defaults, 200 * S, &retry_in));
	assert_int_equal(b.probes_inflight, 3);
	/* two succeed: still half-open, and no new probe slot (3 per period) */
	lt_breaker_record(&b, &defaults, 111 * S, false);
	lt_breaker_record(&b, &defaults, 111 * S, false);
	assert_int_equal(b.state, LT_BREAKER_HALF_OPEN);
	assert_false(lt_breaker_allow(&b, &defaults, 111 * S, NULL));
	/* the third closes it, with a cleared ring */
	lt_breaker_record(&b, &defaults, 112 * S, false);
	assert_int_equal(b.state, LT_BREAKER_CLOSED);
	assert_int_equal(b.ring_len, 0);
	assert_int_equal(b.failures, 0);
	assert_int_equal(lt_breaker_failure_pct(&b), 0);
	/* so it needs min_calls fresh outcomes to open again */
	for (int i = 0; i < 9; i++)
		call(&b, &defaults, 113 * S, true);
	assert_int_equal(b.state, LT_BREAKER_CLOSED);
	call(&b, &defaults, 113 * S, true);
	assert_int_equal(b.state, LT_BREAKER_OPEN);
	assert_int_equal(b.opens, 2);

	/* probes one after the other: three in all close it */
	lt_breaker_init(&b);
	trip(&b, 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(b.state, i ? LT_BREAKER_HALF_OPEN : LT_BREAKER_OPEN);
		call(&b, &defaults, 10 * S + i, false);
	}
	assert_int_equal(b.state, LT_BREAKER_CLOSED);
}

static void test_probe_failure_reopens(void **state)
{
	(void)state;
	struct lt_breaker b;
	lt_breaker_init(&b);
	trip(&b, 0);
	assert_true(lt_breaker_allow(&b, &defaults, 10 * S, NULL));
	assert_true(lt_breaker_allow(&b, &defaults, 10 * S, NULL));
	lt_breaker_record(&b, &defaults, 11 * S, false);
	lt_breaker_record(&b, &defaults, 12 * S, true);
	assert_int_equal(b.state, LT_BREAKER_OPEN);
	assert_int_equal(b.opens, 2);
	assert_int_equal(b.opened_at, 12 * S);
	int64_t retry_in;
	assert_false(lt_breaker_allow(&b, &defaults, 13 * S, &retry_in));
	assert_int_equal(retry_in, 9 * S);
	/* a fresh half-open period with fresh probe slots */
	for (int i = 0; i < 3; i++)
		assert_true(lt_breaker_allow(&b, &defaults, 22 * S, NULL));
	assert_false(lt_breaker_allow(&b, &defaults, 22 * S, NULL));
}

static void test_stale_outcomes(void **state)
{
	(void)state;
	struct lt_breaker b;
	lt_breaker_init(&b);
	/* five calls let through while closed are still running when it opens */
	for (int i = 0; i < 5; i++)
		assert_true(lt_breaker_allow(&b, &defaults, 0, NULL));
	trip(&b, S);
	/* their late failures do not push the open period */
	for (int i = 0; i < 3; i++)
		lt_breaker_record(&b, &defaults, 5 * S, true);
	assert_int_equal(b.state, LT_BREAKER_OPEN);
	assert_int_equal(b.opened_at, S);
	assert_int_equal(b.opens, 1);
	/* nor, with no probe out, count as probes in half-open */
	assert_true(lt_breaker_allow(&b, &defaults, 11 * S, NULL));
	lt_breaker_cancel(&b);
	assert_int_equal(b.probes_inflight, 0);
	lt_breaker_record(&b, &defaults, 11 * S, true);
	assert_int_equal(b.state, LT_BREAKER_HALF_OPEN);
	lt_breaker_record(&b, &defaults, 11 * S, false);
	assert_int_equal(b.probes_ok, 0);
}

static void test_cancel(void **state)
{
	(void)state;
	struct lt_breaker b;
	lt_breaker_init(&b);
	trip(&b, 0);
	for (int i = 0; i < 3; i++)
		assert_true(lt_breaker_allow(&b, &defaults, 10 * S, NULL));
	assert_false(lt_breaker_allow(&b, &defaults, 10 * S, NULL));
	lt_breaker_cancel(&b);
	assert_int_equal(b.probes_inflight, 2);
	assert_true(lt_breaker_allow(&b, &defaults, 10 * S, NULL));
	assert_false(lt_breaker_allow(&b, &defaults, 10 * S, NULL));
	/* cancelling more than were let through does not make extra slots */
	for (int i = 0; i < 5; i++)
		lt_breaker_cancel(&b);
	assert_int_equal(b.probes_inflight, 0);
	for (int i = 0; i < 3; i++)
		assert_true(lt_breaker_allow(&b, &defaults, 10 * S, NULL));
	assert_false(lt_breaker_allow(&b, &defaults, 10 * S, NULL));
	/* closed: nothing to give back, nothing recorded */
	lt_breaker_init(&b);
	assert_true(lt_breaker_allow(&b, &defaults, 0, NULL));
	lt_breaker_cancel(&b);
	assert_int_equal(b.state, LT_BREAKER_CLOSED);
	assert_int_equal(b.ring_len, 0);
}

static void test_clock_back(void **state)
{
	(void)state;
	struct lt_breaker b;
	lt_breaker_init(&b);
	trip(&b, 1000 * S);
	/* the clock steps back an hour: open for at most open_ns from there */
	int64_t retry_in;
	assert_false(lt_breaker_allow(&b, &defaults, 1000 * S - 3600 * S, &retry_in));
	assert_int_equal(retry_in, 10 * S);
	assert_true(lt_breaker_allow(&b, &defaults, 1000 * S - 3590 * S, &retry_in));
	assert_int_equal(b.state, LT_BREAKER_HALF_OPEN);
}

static void test_policy_edges(void **state)
{
	(void)state;
	/* min_calls above the window acts as the window */
	const struct lt_breaker_policy p = {
		.window = 4, .min_calls = 50, .failure_pct = 100, .open_ns = S, .probes = 1};
	struct lt_breaker b;
	lt_breaker_init(&b);
	for (int i = 0; i < 3; i++)
		call(&b, &p, 0, true);
	assert_int_equal(b.state, LT_BREAKER_CLOSED);
	call(&b, &p, 0, true);
	assert_int_equal(b.state, LT_BREAKER_OPEN);
	/* a single probe */
	call(&b, &p, S, false);
	assert_int_equal(b.state, LT_BREAKER_CLOSED);

	/* the window changing under a live breaker restarts the ring */
	const struct lt_breaker_policy wide = {
		.window = 8, .min_calls = 8, .failure_pct = 50, .open_ns = S, .probes = 1};
	const struct lt_breaker_policy narrow = {
		.window = 3, .min_calls = 3, .failure_pct = 50, .open_ns = S, .probes = 1};
	lt_breaker_init(&b);
	for (int i = 0; i < 8; i++)
		call(&b, &wide, 0, false);
	call(&b, &narrow, 0, true);
	assert_int_equal(b.ring_len, 1);
	assert_int_equal(b.failures, 1);
	call(&b, &narrow, 0, false);
	call(&b, &narrow, 0, true);
	assert_int_equal(b.state, LT_BREAKER_OPEN); /* 2 of 3 */
	lt_breaker_init(&b);
	for (int i = 0; i < 6; i++)
		call(&b, &narrow, 0, i == 0);
	call(&b, &wide, 0, false);
	assert_true(b.ring_len <= 8);
	assert_true(b.failures >= 0 && b.failures <= b.ring_len);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_defaults_min_calls),
		cmocka_unit_test(test_defaults_failure_pct),
		cmocka_unit_test(test_ring_forgets),
		cmocka_unit_test(test_open_refuses),
		cmocka_unit_test(test_half_open_probes),
		cmocka_unit_test(test_probe_failure_reopens),
		cmocka_unit_test(test_stale_outcomes),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_clock_back),
		cmocka_unit_test(test_policy_edges),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
