/*
 * test_buf.c — src/util/buf.c: bounds, sticky errors, storage hand-over,
 * detach, integer formatting and JSON string escaping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

static void test_empty_and_grow(void **state)
{
	(void)state;
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 100000);
	assert_int_equal(b.len, 0);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(lt_buf_putc(&b, (char)('a' + i % 26)), LT_OK);
	assert_int_equal(b.len, 10000);
	assert_true(b.heap);
	assert_true(b.cap > b.len);
	assert_int_equal(b.data[b.len], '\0');
	assert_int_equal(b.data[9999], 'a' + 9999 % 26);
	lt_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	lt_buf_release(&b);
	assert_null(b.data);
	assert_int_equal(b.cap, 0);
}

static void test_caller_storage(void **state)
{
	(void)state;
	char store[8];
	struct lt_buf b;
	lt_buf_init(&b, store, sizeof store, 64);
	assert_int_equal(lt_buf_puts(&b, "abcdefg"), LT_OK); /* 7 + NUL fits */
	assert_ptr_equal(b.data, store);
	assert_false(b.heap);
	assert_string_equal(store, "abcdefg");
	assert_int_equal(lt_buf_putc(&b, 'h'), LT_OK); /* moves to the heap */
	assert_true(b.heap);
	assert_ptr_not_equal(b.data, store);
	assert_string_equal(b.data, "abcdefgh");
	lt_buf_release(&b);
}

static void test_max_and_sticky(void **state)
{
	(void)state;
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 10);
	assert_int_equal(lt_buf_puts(&b, "0123456789"), LT_OK); /* exactly max */
	assert_int_equal(b.len, 10);
	assert_true(b.cap <= 11);
	assert_int_equal(lt_buf_putc(&b, 'x'), LT_ETOOBIG);
	assert_int_equal(b.len, 10); /* unchanged */
	assert_string_equal(b.data, "0123456789");
	assert_int_equal(b.err, LT_ETOOBIG);
	/* sticky: even an empty append fails now */
	assert_int_equal(lt_buf_append(&b, "", 0), LT_ETOOBIG);
	assert_int_equal(lt_buf_printf(&b, "%d", 1), LT_ETOOBIG);
	assert_int_equal(lt_buf_put_u64(&b, 1), LT_ETOOBIG);
	char *p;
	size_t n;
	assert_int_equal(lt_buf_detach(&b, &p, &n), LT_ETOOBIG);
	/* reset clears the error */
	lt_buf_reset(&b);
	assert_int_equal(b.err, LT_OK);
	assert_int_equal(lt_buf_puts(&b, "ok"), LT_OK);
	assert_string_equal(b.data, "ok");
	lt_buf_release(&b);

	/* an append larger than the room left fails whole, not partly */
	lt_buf_init(&b, NULL, 0, 10);
	assert_int_equal(lt_buf_puts(&b, "abcde"), LT_OK);
	assert_int_equal(lt_buf_puts(&b, "fghijk"), LT_ETOOBIG);
	assert_string_equal(b.data, "abcde");
	lt_buf_release(&b);

	/* a huge size cannot wrap the bound check */
	lt_buf_init(&b, NULL, 0, 10);
	assert_int_equal(lt_buf_puts(&b, "abc"), LT_OK);
	assert_int_equal(lt_buf_append(&b, "x", SIZE_MAX), LT_ETOOBIG);
	lt_buf_release(&b);

	/* max 0: nothing fits, but the buffer is still a valid empty string */
	char one[1];
	lt_buf_init(&b, one, sizeof one, 0);
	assert_string_equal(b.data, "");
	assert_int_equal(lt_buf_putc(&b, 'a'), LT_ETOOBIG);
	lt_buf_release(&b);
}

static void test_printf(void **state)
{
	(void)state;
	struct lt_buf b;
	char store[16];
	lt_buf_init(&b, store, sizeof store, 4096);
	assert_int_equal(lt_buf_printf(&b, "%s=%d;", "a", 42), LT_OK);
	assert_string_equal(b.data, "a=42;");
	/* longer than printf's 256-byte scratch: the direct path */
	char big[1001];
	memset(big, 'z', 1000);
	big[1000] = '\0';
	assert_int_equal(lt_buf_printf(&b, "<%s>", big), LT_OK);
	assert_int_equal(b.len, 5 + 1002);
	assert_int_equal(b.data[5], '<');
	assert_int_equal(b.data[b.len - 1], '>');
	assert_int_equal(b.data[b.len], '\0');
	assert_int_equal(strlen(b.data), b.len);
	lt_buf_release(&b);

	lt_buf_init(&b, NULL, 0, 500);
	assert_int_equal(lt_buf_printf(&b, "%s", big), LT_ETOOBIG);
	assert_int_equal(b.len, 0);
	lt_buf_release(&b);
}

static void test_integers(void **state)
{
	(void)state;
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 1024);
	lt_buf_put_u64(&b, 0);
	lt_buf_putc(&b, ' ');
	lt_buf_put_u64(&b, UINT64_MAX);
	lt_buf_putc(&b, ' ');
	lt_buf_put_i64(&b, -1);
	lt_buf_putc(&b, ' ');
	lt_buf_put_i64(&b, INT64_MIN);
	lt_buf_putc(&b, ' ');
	lt_buf_put_i64(&b, INT64_MAX);
	assert_int_equal(b.err, LT_OK);
	assert_string_equal(b.data, "0 18446744073709551615 -1 -9223372036854775808 "
				    "9223372036854775807");
	lt_buf_release(&b);
}

static void test_detach(void **state)
{
	(void)state;
	struct lt_buf b;
	char *p;
	size_t n;

	/* from caller storage: a heap copy */
	char store[32];
	lt_buf_init(&b, store, sizeof store, 100);
	lt_buf_puts(&b, "hello");
	assert_int_equal(lt_buf_detach(&b, &p, &n), LT_OK);
	assert_ptr_not_equal(p, store);
	assert_int_equal(n, 5);
	assert_string_equal(p, "hello");
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	free(p);

	/* from the heap: the same pointer, the buffer is left empty and reusable */
	lt_buf_init(&b, NULL, 0, 100);
	lt_buf_puts(&b, "world");
	char *data = b.data;
	assert_int_equal(lt_buf_detach(&b, &p, &n), LT_OK);
	assert_ptr_equal(p, data);
	assert_string_equal(p, "world");
	free(p);
	assert_int_equal(lt_buf_puts(&b, "again"), LT_OK);
	assert_string_equal(b.data, "again");
	lt_buf_release(&b);

	/* an empty buffer with no storage detaches as "" */
	lt_buf_init(&b, NULL, 0, 100);
	assert_int_equal(lt_buf_detach(&b, &p, &n), LT_OK);
	assert_int_equal(n, 0);
	assert_string_equal(p, "");
	free(p);
}

/* Escape s[0..n) and compare with want. */
static void check_json(const char *s, size_t n, const char *want)
{
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 4096);
	assert_int_equal(lt_buf_put_json_str(&b, s, n), LT_OK);
	assert_string_equal(b.data, want);
	assert_int_equal(b.len, strlen(want));
	lt_buf_release(&b);
}

#define CHECK_JSON(lit, want) check_json((lit), sizeof(lit) - 1, (want))

static void test_json_escape(void **state)
{
	(void)state;
	CHECK_JSON("", "\"\"");
	CHECK_JSON("plain text", "\"plain text\"");
	CHECK_JSON("q\"b\\s/", "\"q\\\"b\\\\s/\"");
	CHECK_JSON("\n\r\t", "\"\\n\\r\\t\"");
	CHECK_JSON("\x01\x08\x0c\x1f\x7f", "\"\\u0001\\u0008\\u000c\\u001f\\u007f\"");
	CHECK_JSON("a\0b", "\"a\\u0000b\"");
	/* valid UTF-8 passes through untouched */
	CHECK_JSON("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", "\"caf\xC3\xA9 \xE2\x82\xAC "
								"\xF0\x9F\x98\x80\"");
	/* each invalid byte becomes U+FFFD */
	CHECK_JSON("a\xFFz", "\"a\xEF\xBF\xBDz\"");
	CHECK_JSON("\xC3", "\"\xEF\xBF\xBD\"");					/* truncated */
	CHECK_JSON("\xE2\x82", "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");			/* truncated */
	CHECK_JSON("\xC0\xAF", "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");			/* overlong */
	CHECK_JSON("\xED\xA0\x80", "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""); /* surrogate */
	CHECK_JSON("\x80\"", "\"\xEF\xBF\xBD\\\"\"");
	CHECK_JSON("\xF4\x90\x80\x80", "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
}

static void test_json_escape_bounded(void **state)
{
	(void)state;
	struct lt_buf b;
	/* room for the prefix but not the whole literal: nothing is half-written */
	lt_buf_init(&b, NULL, 0, 12);
	assert_int_equal(lt_buf_puts(&b, "k:"), LT_OK);
	assert_int_equal(lt_buf_put_json_str(&b, "0123456789", 10), LT_ETOOBIG);
	assert_int_equal(b.len, 2);
	assert_string_equal(b.data, "k:");
	assert_int_equal(b.err, LT_ETOOBIG); /* and the error stays */
	assert_int_equal(lt_buf_puts(&b, "x"), LT_ETOOBIG);
	lt_buf_release(&b);

	/* fits exactly */
	lt_buf_init(&b, NULL, 0, 12);
	assert_int_equal(lt_buf_put_json_str(&b, "a\nb\"c\\d", 7), LT_OK);
	assert_string_equal(b.data, "\"a\\nb\\\"c\\\\d\"");
	assert_int_equal(b.len, 12);
	lt_buf_release(&b);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_and_grow),
		cmocka_unit_test(test_caller_storage),
		cmocka_unit_test(test_max_and_sticky),
		cmocka_unit_test(test_printf),
		cmocka_unit_test(test_integers),
		cmocka_unit_test(test_detach),
		cmocka_unit_test(test_json_escape),
		cmocka_unit_test(test_json_escape_bounded),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
