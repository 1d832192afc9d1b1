/*
 * test_clock.c — src/util/clock.c: the manual clock (advance, set, bounds,
 * refusal when real) and the real clocks' basic sanity.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>

#include "util/clock.h"

static void test_real_clock(void **state)
{
	(void)state;
	struct lt_clock c;
	lt_clock_init(&c, false);
	int64_t a = lt_clock_now_ns(&c);
	int64_t b = lt_clock_real_ns();
	/* after 2020-01-01 and moving forward (or standing still) */
	assert_true(a > INT64_C(1577836800) * LT_NS_PER_S);
	assert_true(b >= a);
	int64_t m1 = lt_clock_mono_ns();
	int64_t m2 = lt_clock_mono_ns();
	assert_true(m1 > 0);
	assert_true(m2 >= m1);
	/* a real clock cannot be moved */
	assert_int_equal(lt_clock_advance(&c, LT_NS_PER_S), LT_EDENIED);
	assert_int_equal(lt_clock_set(&c, 0), LT_EDENIED);
	assert_true(lt_clock_now_ns(&c) >= a);
}

static void test_manual_starts_at_now(void **state)
{
	(void)state;
	struct lt_clock c;
	int64_t before = lt_clock_real_ns();
	lt_clock_init(&c, true);
	int64_t after = lt_clock_real_ns();
	int64_t t = lt_clock_now_ns(&c);
	assert_true(t >= before);
	assert_true(t <= after);
	/* frozen: reading again gives the same value however much real time passes */
	for (int i = 0; i < 1000; i++)
		assert_int_equal(lt_clock_now_ns(&c), t);
}

static void test_manual_advance_set(void **state)
{
	(void)state;
	struct lt_clock c;
	lt_clock_init(&c, true);
	assert_int_equal(lt_clock_set(&c, 1000), LT_OK);
	assert_int_equal(lt_clock_now_ns(&c), 1000);
	assert_int_equal(lt_clock_advance(&c, 500), LT_OK);
	assert_int_equal(lt_clock_now_ns(&c), 1500);
	assert_int_equal(lt_clock_advance(&c, -1500), LT_OK); /* backwards, to 0 */
	assert_int_equal(lt_clock_now_ns(&c), 0);
	assert_int_equal(lt_clock_advance(&c, 0), LT_OK);
	assert_int_equal(lt_clock_now_ns(&c), 0);

	/* below zero is refused and changes nothing */
	assert_int_equal(lt_clock_advance(&c, -1), LT_ERANGE);
	assert_int_equal(lt_clock_now_ns(&c), 0);
	assert_int_equal(lt_clock_set(&c, -1), LT_ERANGE);
	assert_int_equal(lt_clock_now_ns(&c), 0);
	assert_int_equal(lt_clock_advance(&c, INT64_MIN), LT_ERANGE);

	/* up to INT64_MAX, and not one past it */
	assert_int_equal(lt_clock_set(&c, INT64_MAX - 10), LT_OK);
	assert_int_equal(lt_clock_advance(&c, 10), LT_OK);
	assert_int_equal(lt_clock_now_ns(&c), INT64_MAX);
	assert_int_equal(lt_clock_advance(&c, 1), LT_ERANGE);
	assert_int_equal(lt_clock_advance(&c, INT64_MAX), LT_ERANGE);
	assert_int_equal(lt_clock_now_ns(&c), INT64_MAX);
	assert_int_equal(lt_clock_advance(&c, INT64_MIN), LT_ERANGE); /* MAX + MIN = -1 */
	assert_int_equal(lt_clock_now_ns(&c), INT64_MAX);
	assert_int_equal(lt_clock_advance(&c, -INT64_MAX), LT_OK);
	assert_int_equal(lt_clock_now_ns(&c), 0);

	/* switching to real mode refuses further moves */
	atomic_store(&c.manual, false);
	assert_int_equal(lt_clock_advance(&c, 1), LT_EDENIED);
	assert_true(lt_clock_now_ns(&c) > 0);
}

#define THREADS 4
#define STEPS 20000

static void *advancer(void *arg)
{
	struct lt_clock *c = arg;
	for (int i = 0; i < STEPS; i++)
		if (lt_clock_advance(c, 3) != LT_OK)
			return (void *)1;
	return NULL;
}

/* Concurrent advances are never lost. */
static void test_manual_concurrent(void **state)
{
	(void)state;
	struct lt_clock c;
	lt_clock_init(&c, true);
	assert_int_equal(lt_clock_set(&c, 7), LT_OK);
	pthread_t th[THREADS];
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, advancer, &c), 0);
	int failures = 0;
	for (int i = 0; i < THREADS; i++) {
		void *ret;
		pthread_join(th[i], &ret);
		failures += ret != NULL;
	}
	assert_int_equal(failures, 0);
	assert_int_equal(lt_clock_now_ns(&c), 7 + INT64_C(3) * THREADS * STEPS);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_clock),
		cmocka_unit_test(test_manual_starts_at_now),
		cmocka_unit_test(test_manual_advance_set),
		cmocka_unit_test(test_manual_concurrent),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
