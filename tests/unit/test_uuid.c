/*
 * test_uuid.c — src/util/uuid.c: v4 UUIDs (canonical form, version and
 * variant bits, uniqueness) and the canonical-form checker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "util/uuid.h"

static int setup_sodium(void **state)
{
	(void)state;
	return sodium_init() < 0 ? -1 : 0;
}

#define N 2000

static int cmp(const void *a, const void *b)
{
	return memcmp(a, b, LT_UUID_LEN);
}

static void test_v4_format(void **state)
{
	(void)state;
	static char ids[N][LT_UUID_LEN];
	unsigned variants[4] = {0};
	for (int i = 0; i < N; i++) {
		char *u = ids[i];
		memset(u, 'Z', LT_UUID_LEN);
		lt_uuid_v4(u);
		assert_int_equal(strlen(u), 36);
		assert_true(lt_uuid_valid(u, 36));
		for (int k = 0; k < 36; k++) {
			if (k == 8 || k == 13 || k == 18 || k == 23)
				assert_int_equal(u[k], '-');
			else if (!((u[k] >= '0' && u[k] <= '9') || (u[k] >= 'a' && u[k] <= 'f')))
				fail_msg("%s: not lowercase hex at %d", u, k);
		}
		assert_int_equal(u[14], '4');	       /* version 4 */
		const char *v = strchr("89ab", u[19]); /* variant 10xx */
		if (!v)
			fail_msg("%s: bad variant", u);
		variants[v - "89ab"]++;
	}
	/* all four variant nibbles occur: the low bits are random */
	for (int i = 0; i < 4; i++)
		assert_true(variants[i] > 0);
	qsort(ids, N, LT_UUID_LEN, cmp);
	for (int i = 1; i < N; i++)
		assert_true(memcmp(ids[i - 1], ids[i], LT_UUID_LEN) != 0);
}

static void test_valid(void **state)
{
	(void)state;
	assert_true(lt_uuid_valid("123e4567-e89b-12d3-a456-426614174000", 36));
	assert_true(lt_uuid_valid("123E4567-E89B-12D3-A456-426614174000", 36));
	assert_true(lt_uuid_valid("00000000-0000-0000-0000-000000000000", 36));
	/* n bounds the check: trailing bytes are not looked at */
	assert_true(lt_uuid_valid("123e4567-e89b-12d3-a456-426614174000xyz", 36));

	static const char *const bad[] = {
		"",
		"123e4567-e89b-12d3-a456-42661417400",	 /* 35 */
		"123e4567-e89b-12d3-a456-4266141740000", /* 37 */
		"123e4567e89b-12d3-a456-4266141740000",	 /* dash missing */
		"123e4567-e89b-12d3-a456_426614174000",
		"123e456-7e89b-12d3-a456-426614174000", /* dash misplaced */
		"123g4567-e89b-12d3-a456-426614174000", /* not hex */
		"123e4567-e89b-12d3-a456-42661417400 ",
		"{23e4567-e89b-12d3-a456-426614174000",
		"123e4567-e89b-12d3-a456-4266141740-0",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (lt_uuid_valid(bad[i], strlen(bad[i])))
			fail_msg("accepted '%s'", bad[i]);
	/* an embedded NUL is not hex */
	assert_false(lt_uuid_valid("123e4567-e89b-12d3-a456-42661417\0000", 36));
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v4_format),
		cmocka_unit_test(test_valid),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, setup_sodium, NULL);
}
