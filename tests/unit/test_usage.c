/*
 * test_usage.c — src/provider/usage.c: exact cost rounding, token estimates,
 * clamping of inconsistent counts; and lt_registry_resolve's model lookup.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "provider/registry.h"
#include "provider/usage.h"

static void test_cost(void **state)
{
	(void)state;
	struct lt_price p = {150000, 75000, 600000}; /* gpt-4o-mini: $0.15 / $0.075 / $0.60 */
	struct lt_tokens t = {0};
	assert_int_equal(lt_cost_micros(&p, &t), 0);
	/* 1M input tokens cost exactly the input price */
	t.input = 1000000;
	assert_int_equal(lt_cost_micros(&p, &t), 150000);
	/* cached tokens are a subset of input, billed at the cached price */
	t.cached_input = 1000000;
	assert_int_equal(lt_cost_micros(&p, &t), 75000);
	t.cached_input = 500000;
	assert_int_equal(lt_cost_micros(&p, &t), 75000 + 37500);
	/* one token: 0.15 micro-dollars, rounded up to 1 */
	struct lt_tokens one = {1, 0, 0, 0};
	assert_int_equal(lt_cost_micros(&p, &one), 1);
	/* exact multiples are not rounded up */
	struct lt_tokens x = {20, 0, 10, 5}; /* 20*0.15 + 10*0.6 = 3 + 6 = 9 */
	assert_int_equal(lt_cost_micros(&p, &x), 9);
	/* reasoning is part of output, not added again */
	struct lt_tokens r = {0, 0, 1000000, 400000};
	assert_int_equal(lt_cost_micros(&p, &r), 600000);
	/* large values do not overflow */
	struct lt_price big = {INT64_C(1000000000000), 0, INT64_C(1000000000000)};
	struct lt_tokens huge = {INT64_MAX / 2, 0, INT64_MAX / 2, 0};
	assert_int_equal(lt_cost_micros(&big, &huge), INT64_MAX);
	/* inconsistent counts are clamped: cached > input, negatives */
	struct lt_tokens bad = {10, 50, -3, 7};
	struct lt_tokens c = bad;
	lt_tokens_clamp(&c);
	assert_int_equal(c.cached_input, 10);
	assert_int_equal(c.output, 0);
	assert_int_equal(c.reasoning, 0);
	assert_int_equal(lt_cost_micros(&p, &bad), 1); /* 10 cached * 0.075 = 0.75 -> 1 */
	/* negative prices count as zero */
	struct lt_price neg = {-5, -5, -5};
	assert_int_equal(lt_cost_micros(&neg, &x), 0);
}

static void test_estimate(void **state)
{
	(void)state;
	assert_int_equal(lt_token_estimate("", 0), 0);
	assert_int_equal(lt_token_estimate("a", 1), 1);
	assert_int_equal(lt_token_estimate("abcd", 4), 1);
	assert_int_equal(lt_token_estimate("abcde", 5), 2);
	assert_int_equal(lt_token_estimate(NULL, 4000), 1000);
}

static void test_outcome_names(void **state)
{
	(void)state;
	for (int o = 0; o < LT_OUTCOME_COUNT; o++) {
		const char *n = lt_outcome_name((enum lt_outcome)o);
		assert_non_null(n);
		assert_string_not_equal(n, "unknown");
		for (int k = 0; k < o; k++)
			assert_string_not_equal(n, lt_outcome_name((enum lt_outcome)k));
	}
	assert_string_equal(lt_outcome_name(LT_OUTCOME_COUNT), "unknown");
}

static void test_resolve(void **state)
{
	(void)state;
	static struct lt_config cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.nproviders = 2;
	snprintf(cfg.providers[0].name, sizeof cfg.providers[0].name, "%s", "openai");
	cfg.providers[0].format = LT_PFMT_OPENAI;
	snprintf(cfg.providers[1].name, sizeof cfg.providers[1].name, "%s", "gemini");
	cfg.providers[1].format = LT_PFMT_GEMINI;
	cfg.providers[1].passthrough_models = true;
	cfg.providers[1].price_input = 7;
	cfg.nmodels = 2;
	snprintf(cfg.models[0].name, sizeof cfg.models[0].name, "%s", "gpt-4o-mini");
	snprintf(cfg.models[0].provider, sizeof cfg.models[0].provider, "%s", "openai");
	cfg.models[0].price_output = 600000;
	cfg.models[0].max_output = 100;
	snprintf(cfg.models[1].name, sizeof cfg.models[1].name, "%s", "flash");
	snprintf(cfg.models[1].provider, sizeof cfg.models[1].provider, "%s", "gemini");
	snprintf(cfg.models[1].upstream, sizeof cfg.models[1].upstream, "%s", "gemini-2.0-flash");

	struct lt_target t;
	assert_int_equal(lt_registry_resolve(&cfg, "gpt-4o-mini", &t), LT_OK);
	assert_string_equal(t.provider->name, "openai");
	assert_string_equal(t.upstream_model, "gpt-4o-mini");
	assert_int_equal(t.format, LT_FMT_OPENAI);
	assert_int_equal(t.price.output_per_m, 600000);
	assert_int_equal(t.max_output, 100);
	assert_ptr_equal(t.model, &cfg.models[0]);
	/* configured upstream id; provider/model of the same provider */
	assert_int_equal(lt_registry_resolve(&cfg, "gemini/flash", &t), LT_OK);
	assert_string_equal(t.upstream_model, "gemini-2.0-flash");
	assert_string_equal(t.client_model, "gemini/flash");
	/* provider/model of another provider is not that model */
	assert_int_equal(lt_registry_resolve(&cfg, "openai/flash", &t), LT_ENOTFOUND);
	/* passthrough ids only where allowed, billed at the provider's prices */
	assert_int_equal(lt_registry_resolve(&cfg, "gemini/gemini-9-pro", &t), LT_OK);
	assert_null(t.model);
	assert_string_equal(t.upstream_model, "gemini-9-pro");
	assert_int_equal(t.price.input_per_m, 7);
	assert_int_equal(lt_registry_resolve(&cfg, "openai/gpt-9", &t), LT_ENOTFOUND);
	assert_int_equal(lt_registry_resolve(&cfg, "gemini/bad id", &t), LT_ENOTFOUND);
	assert_int_equal(lt_registry_resolve(&cfg, "gemini/a/b", &t), LT_ENOTFOUND);
	/* unknown, empty, malformed */
	assert_int_equal(lt_registry_resolve(&cfg, "nope", &t), LT_ENOTFOUND);
	assert_int_equal(lt_registry_resolve(&cfg, "", &t), LT_ENOTFOUND);
	assert_int_equal(lt_registry_resolve(&cfg, "/x", &t), LT_ENOTFOUND);
	assert_int_equal(lt_registry_resolve(&cfg, "ghost/x", &t), LT_ENOTFOUND);
	assert_int_equal(lt_registry_resolve(&cfg, "gemini/", &t), LT_ENOTFOUND);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cost),
		cmocka_unit_test(test_estimate),
		cmocka_unit_test(test_outcome_names),
		cmocka_unit_test(test_resolve),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
