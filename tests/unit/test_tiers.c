/*
 * test_tiers.c — src/auth/tiers.c: parsing [auth] tiers (whitespace, every
 * error with its message, the limits), lookup, sorting, and the effective
 * tier of a user (explicit, highest-priority role tier, USER fallback).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "auth/tiers.h"

static struct lt_tiers parse_ok(const char *spec)
{
	struct lt_tiers t;
	char why[256] = "";
	if (lt_tiers_parse(spec, &t, why, sizeof why) != LT_OK)
		fail_msg("'%s' refused: %s", spec, why);
	return t;
}

static char *effective(const struct lt_tiers *t, unsigned roles, const char *explicit_tier,
		       char out[LT_TIER_MAX + 1])
{
	memset(out, 'x', LT_TIER_MAX + 1);
	lt_tiers_effective(t, roles, explicit_tier, out);
	return out;
}

static void test_parse_ok(void **state)
{
	(void)state;
	struct lt_tiers t = parse_ok(LT_TIERS_DEFAULT);
	assert_int_equal(t.n, 3);
	assert_string_equal(t.t[0].name, "USER");
	assert_int_equal(t.t[0].priority, 0);
	assert_string_equal(t.t[1].name, "ORG_ADMIN");
	assert_int_equal(t.t[1].priority, 1);
	assert_string_equal(t.t[2].name, "ADMIN");
	assert_int_equal(t.t[2].priority, 2);

	t = parse_ok("USER:1000");
	assert_int_equal(t.n, 1);
	assert_int_equal(t.t[0].priority, 1000);

	/* a name of the maximum length, digits and '_' */
	t = parse_ok("USER:0,ABCDEFGHIJKLMNOPQRSTUVWXYZ_01234:7,007:007");
	assert_int_equal(t.n, 3);
	assert_string_equal(t.t[1].name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_01234");
	assert_string_equal(t.t[2].name, "007");
	assert_int_equal(t.t[2].priority, 7);

	/* exactly LT_TIERS_MAX */
	char spec[512] = "USER:0";
	for (int i = 1; i < LT_TIERS_MAX; i++) {
		char item[32];
		snprintf(item, sizeof item, ",T%d:%d", i, i);
		strncat(spec, item, sizeof spec - strlen(spec) - 1);
	}
	t = parse_ok(spec);
	assert_int_equal(t.n, LT_TIERS_MAX);
	assert_string_equal(t.t[LT_TIERS_MAX - 1].name, "T15");
}

static void test_parse_whitespace(void **state)
{
	(void)state;
	struct lt_tiers t = parse_ok("  USER:0 ,\tGOLD : 5,  ADMIN:\t2\t");
	assert_int_equal(t.n, 3);
	assert_string_equal(t.t[0].name, "USER");
	assert_string_equal(t.t[1].name, "GOLD");
	assert_int_equal(t.t[1].priority, 5);
	assert_string_equal(t.t[2].name, "ADMIN");
	assert_int_equal(t.t[2].priority, 2);
}

struct bad {
	const char *spec;
	const char *why;
};

static const struct bad bad[] = {
	{"", "item 1 is empty (expected NAME:PRIORITY,...)"},
	{"   ", "item 1 is empty (expected NAME:PRIORITY,...)"},
	{"USER:0,", "item 2 is empty (expected NAME:PRIORITY,...)"},
	{"USER:0,,ADMIN:1", "item 2 is empty (expected NAME:PRIORITY,...)"},
	{"USER:0, GOLD ", "'GOLD' is not NAME:PRIORITY"},
	{"USER", "'USER' is not NAME:PRIORITY"},
	{"user:0", "tier name 'user' must be 1-32 characters of A-Z, 0-9 or _"},
	{"USER:0,GO-LD:1", "tier name 'GO-LD' must be 1-32 characters of A-Z, 0-9 or _"},
	{"USER:0,GO LD:1", "tier name 'GO LD' must be 1-32 characters of A-Z, 0-9 or _"},
	{"USER:0,:1", "tier name '' must be 1-32 characters of A-Z, 0-9 or _"},
	{"USER:0,ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456:1",
	 "tier name 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456' must be 1-32 characters of A-Z, 0-9 or _"},
	{"USER:", "priority of USER must be a whole number 0-1000, got ''"},
	{"USER:x", "priority of USER must be a whole number 0-1000, got 'x'"},
	{"USER:-1", "priority of USER must be a whole number 0-1000, got '-1'"},
	{"USER:+1", "priority of USER must be a whole number 0-1000, got '+1'"},
	{"USER:1001", "priority of USER must be a whole number 0-1000, got '1001'"},
	{"USER:99999999999", "priority of USER must be a whole number 0-1000, got '99999999999'"},
	{"USER:1.5", "priority of USER must be a whole number 0-1000, got '1.5'"},
	{"USER:1:2", "priority of USER must be a whole number 0-1000, got '1:2'"},
	{"USER:1 2", "priority of USER must be a whole number 0-1000, got '1 2'"},
	{"USER:0,GOLD:1,GOLD:2", "tier GOLD is listed twice"},
	{"USER:0,USER:0", "tier USER is listed twice"},
	{"GOLD:1,ADMIN:2", "USER must be one of the tiers"},
	{"USER:0,T1:1,T2:2,T3:3,T4:4,T5:5,T6:6,T7:7,T8:8,T9:9,T10:10,T11:11,T12:12,T13:13,"
	 "T14:14,T15:15,T16:16",
	 "at most 16 tiers may be configured"},
};

static void test_parse_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct lt_tiers t;
		char why[256] = "";
		enum lt_err e = lt_tiers_parse(bad[i].spec, &t, why, sizeof why);
		if (e != LT_EINVAL || strcmp(why, bad[i].why) != 0)
			fail_msg("case %zu '%s':\n got  %d '%s'\n want %d '%s'", i, bad[i].spec,
				 (int)e, why, (int)LT_EINVAL, bad[i].why);
	}
	/* a short why buffer is truncated, not overrun */
	struct lt_tiers t;
	char why[8];
	assert_int_equal(lt_tiers_parse("GOLD:1", &t, why, sizeof why), LT_EINVAL);
	assert_string_equal(why, "USER mu");
}

static void test_find_and_sort(void **state)
{
	(void)state;
	struct lt_tiers t = parse_ok("USER:0,ORG_ADMIN:1,ADMIN:2,GOLD:5,B:5,PLATINUM_2:7");
	assert_int_equal(lt_tiers_find(&t, "USER"), 0);
	assert_int_equal(lt_tiers_find(&t, "PLATINUM_2"), 5);
	assert_int_equal(lt_tiers_find(&t, "gold"), -1);
	assert_int_equal(lt_tiers_find(&t, "SILVER"), -1);
	assert_int_equal(lt_tiers_find(&t, ""), -1);
	lt_tiers_sort(&t);
	static const char *const want[] = {"PLATINUM_2", "B", "GOLD", "ADMIN", "ORG_ADMIN", "USER"};
	static const int prio[] = {7, 5, 5, 2, 1, 0};
	assert_int_equal(t.n, 6);
	for (size_t i = 0; i < t.n; i++) {
		assert_string_equal(t.t[i].name, want[i]);
		assert_int_equal(t.t[i].priority, prio[i]);
	}
}

static void test_effective(void **state)
{
	(void)state;
	char out[LT_TIER_MAX + 1];
	struct lt_tiers def = parse_ok(LT_TIERS_DEFAULT);
	assert_string_equal(effective(&def, LT_ROLE_USER, "", out), "USER");
	assert_string_equal(effective(&def, LT_ROLE_USER | LT_ROLE_ORG_ADMIN, "", out),
			    "ORG_ADMIN");
	assert_string_equal(effective(&def, LT_ROLE_ALL, "", out), "ADMIN");
	assert_string_equal(effective(&def, LT_ROLE_ADMIN, NULL, out), "ADMIN");
	assert_string_equal(effective(&def, 0, "", out), "USER"); /* no roles at all */

	/* The reference: USER x1 and ADMIN with a higher priority; ORG_ADMIN
	 * is not a tier, so an ORG_ADMIN gets USER. */
	struct lt_tiers ref = parse_ok("USER:1,ADMIN:10");
	assert_string_equal(effective(&ref, LT_ROLE_ADMIN | LT_ROLE_USER, "", out), "ADMIN");
	assert_string_equal(effective(&ref, LT_ROLE_ORG_ADMIN | LT_ROLE_USER, "", out), "USER");
	assert_string_equal(effective(&ref, LT_ROLE_ORG_ADMIN, "", out), "USER");

	/* Priority decides, not the role's rank. */
	struct lt_tiers inv = parse_ok("USER:9,ORG_ADMIN:5,ADMIN:1");
	assert_string_equal(effective(&inv, LT_ROLE_ALL, "", out), "USER");
	assert_string_equal(effective(&inv, LT_ROLE_ADMIN | LT_ROLE_ORG_ADMIN, "", out),
			    "ORG_ADMIN");
	/* On a tie, the higher role wins. */
	struct lt_tiers tie = parse_ok("USER:3,ORG_ADMIN:3,ADMIN:3");
	assert_string_equal(effective(&tie, LT_ROLE_ALL, "", out), "ADMIN");
	assert_string_equal(effective(&tie, LT_ROLE_ORG_ADMIN | LT_ROLE_USER, "", out),
			    "ORG_ADMIN");

	/* An explicit tier wins over any role, configured or not. */
	struct lt_tiers gold = parse_ok("USER:0,ADMIN:2,GOLD:5");
	assert_string_equal(effective(&gold, LT_ROLE_ADMIN | LT_ROLE_USER, "GOLD", out), "GOLD");
	assert_string_equal(effective(&gold, LT_ROLE_USER, "USER", out), "USER");
	assert_string_equal(effective(&gold, LT_ROLE_ADMIN, "DROPPED", out), "DROPPED");
	/* Non-role tiers are never derived from roles. */
	assert_string_equal(effective(&gold, LT_ROLE_USER, "", out), "USER");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok),     cmocka_unit_test(test_parse_whitespace),
		cmocka_unit_test(test_parse_errors), cmocka_unit_test(test_find_and_sort),
		cmocka_unit_test(test_effective),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
