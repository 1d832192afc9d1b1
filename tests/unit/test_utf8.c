/*
 * test_utf8.c — src/util/utf8.c: RFC 3629 validation, boundaries of every
 * sequence length, overlongs, surrogates, truncation, and bad_at offsets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "util/utf8.h"

#define SEQ(lit) lt_utf8_seq((const unsigned char *)(lit), sizeof(lit) - 1)

static void test_seq_valid_boundaries(void **state)
{
	(void)state;
	assert_int_equal(SEQ("\x00"), 1);
	assert_int_equal(SEQ("A"), 1);
	assert_int_equal(SEQ("\x7F"), 1);
	assert_int_equal(SEQ("\xC2\x80"), 2);	      /* U+0080 */
	assert_int_equal(SEQ("\xDF\xBF"), 2);	      /* U+07FF */
	assert_int_equal(SEQ("\xE0\xA0\x80"), 3);     /* U+0800 */
	assert_int_equal(SEQ("\xED\x9F\xBF"), 3);     /* U+D7FF */
	assert_int_equal(SEQ("\xEE\x80\x80"), 3);     /* U+E000 */
	assert_int_equal(SEQ("\xEF\xBF\xBF"), 3);     /* U+FFFF */
	assert_int_equal(SEQ("\xF0\x90\x80\x80"), 4); /* U+10000 */
	assert_int_equal(SEQ("\xF4\x8F\xBF\xBF"), 4); /* U+10FFFF */
	/* only the first sequence counts */
	assert_int_equal(SEQ("\xC3\xA9xyz"), 2);
}

static void test_seq_invalid(void **state)
{
	(void)state;
	assert_int_equal(SEQ("\x80"), 0); /* lone continuation */
	assert_int_equal(SEQ("\xBF"), 0);
	assert_int_equal(SEQ("\xC0\x80"), 0);	      /* overlong NUL */
	assert_int_equal(SEQ("\xC1\xBF"), 0);	      /* overlong */
	assert_int_equal(SEQ("\xE0\x9F\xBF"), 0);     /* overlong U+07FF */
	assert_int_equal(SEQ("\xF0\x8F\xBF\xBF"), 0); /* overlong U+FFFF */
	assert_int_equal(SEQ("\xED\xA0\x80"), 0);     /* U+D800 */
	assert_int_equal(SEQ("\xED\xBF\xBF"), 0);     /* U+DFFF */
	assert_int_equal(SEQ("\xF4\x90\x80\x80"), 0); /* U+110000 */
	assert_int_equal(SEQ("\xF5\x80\x80\x80"), 0);
	assert_int_equal(SEQ("\xF8\x88\x80\x80\x80"), 0);
	assert_int_equal(SEQ("\xFE"), 0);
	assert_int_equal(SEQ("\xFF"), 0);
	assert_int_equal(SEQ("\xC3\x28"), 0); /* bad continuation */
	assert_int_equal(SEQ("\xE2\x28\xA1"), 0);
	assert_int_equal(SEQ("\xE2\x82\x28"), 0);
	assert_int_equal(SEQ("\xF0\x9F\x98\x28"), 0);
	/* truncated: fewer bytes available than the lead byte announces */
	assert_int_equal(SEQ("\xC3"), 0);
	assert_int_equal(SEQ("\xE2\x82"), 0);
	assert_int_equal(SEQ("\xF0\x9F\x98"), 0);
	const unsigned char four[] = {0xF0, 0x9F, 0x98, 0x80};
	assert_int_equal(lt_utf8_seq(four, 3), 0); /* n, not the array, bounds it */
	assert_int_equal(lt_utf8_seq(four, 4), 4);
}

static void test_valid(void **state)
{
	(void)state;
	size_t bad = 12345;
	assert_true(lt_utf8_valid("", 0, &bad));
	assert_int_equal(bad, 12345); /* untouched on success */
	assert_true(lt_utf8_valid("hello", 5, NULL));
	const char ok[] = "na\xC3\xAFve \xE2\x82\xAC\xF0\x9F\x98\x80";
	assert_true(lt_utf8_valid(ok, sizeof ok - 1, &bad));
	/* embedded NUL is valid UTF-8 */
	assert_true(lt_utf8_valid("a\0b", 3, &bad));

	static const struct {
		const char *s;
		size_t n;
		size_t bad_at;
	} cases[] = {
		{"\xFF", 1, 0},
		{"abc\x80", 4, 3},
		{"ab\xC3\xA9\xC3", 5, 4},	      /* truncated at the end */
		{"\xE2\x82\xAC\xED\xA0\x80ok", 8, 3}, /* surrogate after a valid char */
		{"x\xC0\x80", 3, 1},
		{"12345678\xF4\x90\x80\x80", 12, 8},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		bad = 999;
		assert_false(lt_utf8_valid(cases[i].s, cases[i].n, &bad));
		assert_int_equal(bad, cases[i].bad_at);
		assert_false(lt_utf8_valid(cases[i].s, cases[i].n, NULL));
	}
	/* a valid prefix is valid when cut before the bad byte */
	assert_true(lt_utf8_valid("abc\x80", 3, NULL));
}

/* Every 1- and 2-byte sequence agrees with a straightforward decoder. */
static void test_exhaustive_two_bytes(void **state)
{
	(void)state;
	for (unsigned a = 0; a < 256; a++) {
		for (unsigned b = 0; b < 256; b++) {
			unsigned char s[2] = {(unsigned char)a, (unsigned char)b};
			size_t want;
			if (a < 0x80)
				want = 1;
			else if (a >= 0xC2 && a <= 0xDF && (b & 0xC0) == 0x80)
				want = 2;
			else
				want = 0;
			if (lt_utf8_seq(s, 2) != want)
				fail_msg("%02x %02x: got %zu want %zu", a, b, lt_utf8_seq(s, 2),
					 want);
		}
	}
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seq_valid_boundaries),
		cmocka_unit_test(test_seq_invalid),
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_exhaustive_two_bytes),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
