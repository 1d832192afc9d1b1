/*
 * test_json.c — src/util/json.c: strict parsing (error offsets, trailing
 * garbage, embedded NUL, invalid UTF-8) and the typed getters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "util/json.h"
#include "util/json_check.h"

/* Parse a literal (which may hold NULs); the tree, or NULL with *pos. */
static enum lt_err parse(const char *s, size_t n, cJSON **out, size_t *pos)
{
	*pos = 777;
	return lt_json_parse(s, n, out, pos);
}

#define PARSE(lit, out, pos) parse((lit), sizeof(lit) - 1, (out), (pos))

static void test_parse_ok(void **state)
{
	(void)state;
	cJSON *j;
	size_t pos;
	assert_int_equal(PARSE("{}", &j, &pos), LT_OK);
	assert_true(cJSON_IsObject(j));
	cJSON_Delete(j);
	assert_int_equal(PARSE(" \t\r\n[1, \"x\", null, true]\n\n", &j, &pos), LT_OK);
	assert_true(cJSON_IsArray(j));
	assert_int_equal(cJSON_GetArraySize(j), 4);
	cJSON_Delete(j);
	assert_int_equal(PARSE("\"caf\xC3\xA9\"", &j, &pos), LT_OK);
	assert_string_equal(j->valuestring, "caf\xC3\xA9");
	cJSON_Delete(j);
	assert_int_equal(PARSE("42", &j, &pos), LT_OK);
	assert_true(cJSON_IsNumber(j));
	cJSON_Delete(j);
	/* the text need not be NUL-terminated: only n bytes are read */
	const char unterminated[] = {'[', '1', ']', 'x'};
	assert_int_equal(lt_json_parse(unterminated, 3, &j, &pos), LT_OK);
	cJSON_Delete(j);
}

static void test_parse_errors(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		size_t n;
		size_t pos;
	} cases[] = {
#define C(lit, pos) {(lit), sizeof(lit) - 1, (pos)}
		C("", 0),
		C("   ", 3), /* nothing but space: error at the end */
		C("{", 1),   /* truncated: error at the end */
		C("[1,2", 4),
		C("{\"a\":", 5),
		C("{\"a\":}", 5), /* the '}' is the error */
		C("[1,2,]", 5),
		C("{\"a\" 1}", 5),
		C("[1,\n2,\n x]", 8),
		C("nul", 0),  /* a bad literal: at its first byte */
		C("{} x", 3), /* trailing garbage */
		C("{}{}", 2),
		C("[1] ,", 4),
		C("{}\t\v", 3), /* only JSON's four spaces are space */
		C("1e", 2),	/* the exponent needs a digit */
		C("01", 1),	/* leading zero */
		C("-", 1),
		C("[1.]", 3),
		C("\"a\tb\"", 2),	    /* raw control character in a string */
		C("\"\\udc00\"", 1),	    /* lone low surrogate: at its escape */
		C("\"\\ud800x\"", 1),	    /* high surrogate without a low one */
		C("\"\\ud800\\u0041\"", 7), /* high surrogate, then not a low one */
		C("{\"a\"}", 4),
		C("{1:2}", 1),
		C("[1 2]", 3),
		C("tru", 0),
		C("nulL", 0),
		C("{}\0", 2),	    /* NUL after the value */
		C("{\"a\":\0}", 5), /* NUL inside: error at the NUL */
		C("[1,\0 2]", 3),
		C("\0", 0),
		C("\"ab\xFF\"", 3), /* invalid UTF-8: its offset */
		C("[\"\xC3\"]", 2),
		C("{\"k\":\"\xED\xA0\x80\"}", 6), /* encoded surrogate */
		C("{\"\xC0\xAF\":1}", 2),	  /* overlong in a key */
		C("[1]\xFF", 3),		  /* invalid UTF-8 after the value */
#undef C
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		cJSON *j = (cJSON *)&j; /* must be reset to NULL */
		size_t pos;
		enum lt_err e = parse(cases[i].s, cases[i].n, &j, &pos);
		if (e != LT_ESYNTAX || pos != cases[i].pos || j != NULL)
			fail_msg("case %zu: got %d at %zu, want %d at %zu", i, (int)e, pos,
				 (int)LT_ESYNTAX, cases[i].pos);
	}
}

/* String errors land inside the string or at its unterminated end. */
static void test_parse_string_errors(void **state)
{
	(void)state;
	static const char *const bad[] = {"\"abc", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"",
					  "[\"ok\", \"bad\\q\"]"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cJSON *j;
		size_t pos;
		size_t n = strlen(bad[i]);
		assert_int_equal(parse(bad[i], n, &j, &pos), LT_ESYNTAX);
		assert_null(j);
		assert_true(pos <= n);
	}
	/* a NUL inside a string cuts the text there: the error is not after it */
	cJSON *j;
	size_t pos;
	assert_int_equal(PARSE("[\"ab\0c\"]", &j, &pos), LT_ESYNTAX);
	assert_null(j);
	assert_true(pos <= 4);
}

/* Nesting is bounded (iterative scanner; cJSON never sees deep input). */
static void test_depth_limit(void **state)
{
	(void)state;
	char buf[2 * (LT_JSON_MAX_DEPTH + 1)];
	cJSON *j;
	size_t pos;
	for (size_t depth = LT_JSON_MAX_DEPTH; depth <= LT_JSON_MAX_DEPTH + 1; depth++) {
		for (size_t i = 0; i < depth; i++) {
			buf[i] = '[';
			buf[2 * depth - 1 - i] = ']';
		}
		enum lt_err e = lt_json_parse(buf, 2 * depth, &j, &pos);
		if (depth == LT_JSON_MAX_DEPTH) {
			assert_int_equal(e, LT_OK);
			cJSON_Delete(j);
		} else {
			assert_int_equal(e, LT_ETOOBIG);
			assert_int_equal(pos, LT_JSON_MAX_DEPTH);
			assert_null(j);
		}
	}
}

/* Valid text is accepted exactly as RFC 8259 writes it. */
static void test_strict_accepts(void **state)
{
	(void)state;
	static const char *const good[] = {"0",
					   "-0",
					   "-0.5e-3",
					   "1E+9",
					   "\"\\ud83d\\ude00\"",
					   "{\"a\":[true,false,null,{}]}",
					   " [ ] ",
					   "\"\\/\\b\\f\""};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		cJSON *j;
		size_t pos;
		assert_int_equal(lt_json_parse(good[i], strlen(good[i]), &j, &pos), LT_OK);
		assert_non_null(j);
		cJSON_Delete(j);
	}
}

static void test_get_str(void **state)
{
	(void)state;
	cJSON *j;
	size_t pos;
	const char *s = "unchanged";
	assert_int_equal(
		PARSE("{\"s\":\"v\",\"e\":\"\",\"n\":null,\"i\":1,\"a\":[],\"o\":{}}", &j, &pos),
		LT_OK);
	assert_int_equal(lt_json_get_str(j, "s", &s), LT_OK);
	assert_string_equal(s, "v");
	assert_int_equal(lt_json_get_str(j, "e", &s), LT_OK);
	assert_string_equal(s, "");
	s = "unchanged";
	assert_int_equal(lt_json_get_str(j, "missing", &s), LT_ENOTFOUND);
	assert_int_equal(lt_json_get_str(j, "n", &s), LT_ENOTFOUND); /* null is absent */
	assert_int_equal(lt_json_get_str(j, "i", &s), LT_EINVAL);
	assert_int_equal(lt_json_get_str(j, "a", &s), LT_EINVAL);
	assert_int_equal(lt_json_get_str(j, "o", &s), LT_EINVAL);
	assert_int_equal(lt_json_get_str(j, "S", &s), LT_ENOTFOUND); /* case-sensitive */
	assert_string_equal(s, "unchanged");
	/* not an object: nothing is found */
	cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "a");
	assert_int_equal(lt_json_get_str(arr, "s", &s), LT_ENOTFOUND);
	assert_int_equal(lt_json_get_str(NULL, "s", &s), LT_ENOTFOUND);
	cJSON_Delete(j);
}

static void test_get_i64(void **state)
{
	(void)state;
	cJSON *j;
	size_t pos;
	const char text[] = "{\"zero\":0,\"neg\":-5,\"big\":9007199254740991,"
			    "\"toobig\":9007199254740992,\"negbig\":-9007199254740991,"
			    "\"half\":1.5,\"exp\":1e3,\"fexp\":1.5e1,\"huge\":1e400,"
			    "\"tiny\":1e-400,\"s\":\"1\",\"t\":true,\"n\":null,\"frac\":2.0000001}";
	assert_int_equal(PARSE(text, &j, &pos), LT_OK);
	int64_t v = -1;
	assert_int_equal(lt_json_get_i64(j, "zero", 0, 10, &v), LT_OK);
	assert_int_equal(v, 0);
	assert_int_equal(lt_json_get_i64(j, "neg", -10, 10, &v), LT_OK);
	assert_int_equal(v, -5);
	assert_int_equal(lt_json_get_i64(j, "big", 0, INT64_MAX, &v), LT_OK);
	assert_int_equal(v, LT_JSON_INT_MAX);
	assert_int_equal(lt_json_get_i64(j, "negbig", INT64_MIN, 0, &v), LT_OK);
	assert_int_equal(v, -LT_JSON_INT_MAX);
	assert_int_equal(lt_json_get_i64(j, "exp", 0, 1000, &v), LT_OK);
	assert_int_equal(v, 1000);
	assert_int_equal(lt_json_get_i64(j, "fexp", 0, 100, &v), LT_OK);
	assert_int_equal(v, 15);
	assert_int_equal(lt_json_get_i64(j, "tiny", -1, 1, &v), LT_OK); /* underflows to 0 */
	assert_int_equal(v, 0);

	v = 12345;
	assert_int_equal(lt_json_get_i64(j, "toobig", 0, INT64_MAX, &v), LT_ERANGE);
	assert_int_equal(lt_json_get_i64(j, "neg", 0, 10, &v), LT_ERANGE);  /* below min */
	assert_int_equal(lt_json_get_i64(j, "exp", 0, 999, &v), LT_ERANGE); /* above max */
	assert_int_equal(lt_json_get_i64(j, "half", 0, 10, &v), LT_EINVAL); /* not integral */
	assert_int_equal(lt_json_get_i64(j, "frac", 0, 10, &v), LT_EINVAL);
	assert_int_not_equal(lt_json_get_i64(j, "huge", 0, INT64_MAX, &v), LT_OK); /* inf */
	assert_int_equal(lt_json_get_i64(j, "s", 0, 10, &v), LT_EINVAL);	   /* wrong type */
	assert_int_equal(lt_json_get_i64(j, "t", 0, 10, &v), LT_EINVAL);
	assert_int_equal(lt_json_get_i64(j, "n", 0, 10, &v), LT_ENOTFOUND);
	assert_int_equal(lt_json_get_i64(j, "missing", 0, 10, &v), LT_ENOTFOUND);
	assert_int_equal(v, 12345); /* never written on error */
	cJSON_Delete(j);
}

static void test_get_bool(void **state)
{
	(void)state;
	cJSON *j;
	size_t pos;
	assert_int_equal(
		PARSE("{\"t\":true,\"f\":false,\"n\":null,\"i\":1,\"s\":\"true\"}", &j, &pos),
		LT_OK);
	bool b = false;
	assert_int_equal(lt_json_get_bool(j, "t", &b), LT_OK);
	assert_true(b);
	assert_int_equal(lt_json_get_bool(j, "f", &b), LT_OK);
	assert_false(b);
	b = true;
	assert_int_equal(lt_json_get_bool(j, "n", &b), LT_ENOTFOUND);
	assert_int_equal(lt_json_get_bool(j, "missing", &b), LT_ENOTFOUND);
	assert_int_equal(lt_json_get_bool(j, "i", &b), LT_EINVAL);
	assert_int_equal(lt_json_get_bool(j, "s", &b), LT_EINVAL);
	assert_true(b);
	cJSON_Delete(j);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_string_errors),
		cmocka_unit_test(test_depth_limit),
		cmocka_unit_test(test_strict_accepts),
		cmocka_unit_test(test_get_str),
		cmocka_unit_test(test_get_i64),
		cmocka_unit_test(test_get_bool),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
