/*
 * test_stub_text.c — the pure parts of the provider stubs: FNV-1a, the PRNG,
 * deterministic answer text (exactly 4n bytes, so lt_token_estimate agrees),
 * the usage rules (max_tokens cut, cached and reasoning tokens), embedding
 * vectors, the X-Stub-Fault parser, rate-based fault rolls and the fault
 * plan queue (src/stubs/stub_text.c, src/stubs/stub_fault.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "provider/usage.h"
#include "stubs/stub_int.h"

static void test_fnv1a_vectors(void **state)
{
	(void)state;
	/* Published FNV-1a 64 test vectors. */
	assert_true(lt_stub_fnv1a(LT_STUB_FNV_BASIS, "", 0) == UINT64_C(0xcbf29ce484222325));
	assert_true(lt_stub_fnv1a(LT_STUB_FNV_BASIS, "a", 1) == UINT64_C(0xaf63dc4c8601ec8c));
	assert_true(lt_stub_fnv1a(LT_STUB_FNV_BASIS, "foobar", 6) == UINT64_C(0x85944171f73967e8));
	/* Incremental equals one-shot. */
	uint64_t h = lt_stub_fnv1a(LT_STUB_FNV_BASIS, "foo", 3);
	assert_true(lt_stub_fnv1a(h, "bar", 3) == UINT64_C(0x85944171f73967e8));
}

static void test_rng(void **state)
{
	(void)state;
	struct lt_stub_rng a, b;
	lt_stub_rng_seed(&a, 42);
	lt_stub_rng_seed(&b, 42);
	for (int i = 0; i < 100; i++)
		assert_true(lt_stub_rng_next(&a) == lt_stub_rng_next(&b));
	lt_stub_rng_seed(&a, 0); /* a zero seed still yields a working generator */
	assert_true(a.s != 0);
	unsigned seen[7] = {0};
	for (int i = 0; i < 7000; i++) {
		uint64_t v = lt_stub_rng_below(&a, 7);
		assert_true(v < 7);
		seen[v]++;
	}
	for (int i = 0; i < 7; i++)
		assert_true(seen[i] > 0);
	assert_true(lt_stub_rng_below(&a, 0) == 0);
	for (int i = 0; i < 200; i++) {
		assert_false(lt_stub_rng_pct(&a, 0));
		assert_false(lt_stub_rng_pct(&a, -5));
		assert_true(lt_stub_rng_pct(&a, 100));
		assert_true(lt_stub_rng_pct(&a, 250));
	}
	int hits = 0;
	for (int i = 0; i < 1000; i++)
		hits += lt_stub_rng_pct(&a, 50);
	assert_true(hits > 0 && hits < 1000);
}

static uint64_t prompt_hash(const char *model, const char *role, const char *text)
{
	struct lt_stub_prompt p;
	lt_stub_prompt_init(&p, model);
	assert_int_equal(lt_stub_prompt_add(&p, role, text, strlen(text)), LT_OK);
	uint64_t h = p.hash;
	lt_stub_prompt_release(&p);
	return h;
}

static void test_prompt_hash_and_text(void **state)
{
	(void)state;
	uint64_t a = prompt_hash("gpt-4o-mini", "user", "hello");
	assert_true(a == prompt_hash("gpt-4o-mini", "user", "hello"));
	assert_true(a != prompt_hash("gpt-4o", "user", "hello"));
	assert_true(a != prompt_hash("gpt-4o-mini", "system", "hello"));
	assert_true(a != prompt_hash("gpt-4o-mini", "user", "hello!"));

	/* Prompt text is every piece concatenated; tokens are its estimate. */
	struct lt_stub_prompt p;
	lt_stub_prompt_init(&p, "m");
	assert_int_equal(lt_stub_prompt_add(&p, "system", "abc", 3), LT_OK);
	assert_int_equal(lt_stub_prompt_add(&p, "user", "defgh", 5), LT_OK);
	assert_int_equal(p.text.len, 8);
	assert_memory_equal(p.text.data, "abcdefgh", 8);
	struct lt_stub_usage u;
	lt_stub_usage_compute(LT_STUB_OPENAI, "m", &p, 0, &u);
	assert_int_equal(u.prompt, lt_token_estimate("abcdefgh", 8));
	assert_int_equal(u.prompt, 2);
	lt_stub_prompt_release(&p);
}

static void check_text(enum lt_stub_provider prov, uint64_t hash, int64_t n)
{
	char store[64];
	struct lt_buf b;
	lt_buf_init(&b, store, sizeof store, 1 << 16);
	assert_int_equal(lt_stub_text_generate(prov, hash, n, &b), LT_OK);
	assert_int_equal(b.len, (size_t)(4 * n));
	assert_int_equal(lt_token_estimate(b.data, b.len), n);
	assert_int_equal(strlen(b.data), b.len);
	for (size_t i = 0; i < b.len; i++)
		assert_true(b.data[i] >= 0x20 && b.data[i] < 0x7F);
	if (b.len)
		assert_true(b.data[b.len - 1] != ' ');
	char prefix[64];
	snprintf(prefix, sizeof prefix, "Stubbed %s response", lt_stub_provider_label(prov));
	/* The prefix, cut like the rest (a final space becomes '.'). */
	size_t pl = strlen(prefix) < b.len ? strlen(prefix) : b.len;
	if (pl)
		assert_memory_equal(b.data, prefix, pl - 1);
	/* deterministic */
	struct lt_buf c;
	lt_buf_init(&c, NULL, 0, 1 << 16);
	assert_int_equal(lt_stub_text_generate(prov, hash, n, &c), LT_OK);
	assert_int_equal(c.len, b.len);
	if (b.len)
		assert_memory_equal(c.data, b.data, b.len);
	lt_buf_release(&c);
	lt_buf_release(&b);
}

static void test_text_is_4n_bytes(void **state)
{
	(void)state;
	for (int64_t n = 0; n <= 64; n++) {
		check_text(LT_STUB_OPENAI, 12345u + (uint64_t)n, n);
		check_text(LT_STUB_QWEN, 999u * (uint64_t)n, n);
		check_text(LT_STUB_GEMINI, UINT64_MAX - (uint64_t)n, n);
	}
	/* Different hashes pick different words. */
	struct lt_buf a, b;
	lt_buf_init(&a, NULL, 0, 4096);
	lt_buf_init(&b, NULL, 0, 4096);
	lt_stub_text_generate(LT_STUB_OPENAI, 1, 32, &a);
	lt_stub_text_generate(LT_STUB_OPENAI, 2, 32, &b);
	assert_int_equal(a.len, b.len);
	assert_true(memcmp(a.data, b.data, a.len) != 0);
	lt_buf_release(&a);
	lt_buf_release(&b);
}

static void test_output_length_and_cut(void **state)
{
	(void)state;
	for (uint64_t seed = 0; seed < 200; seed++) {
		struct lt_stub_prompt p;
		char text[32];
		snprintf(text, sizeof text, "prompt %llu", (unsigned long long)seed);
		lt_stub_prompt_init(&p, "gpt-4o-mini");
		lt_stub_prompt_add(&p, "user", text, strlen(text));
		int64_t natural = lt_stub_natural_tokens(p.hash);
		assert_true(natural >= 8 && natural <= 32);
		assert_int_equal(natural, 8 + (int64_t)(p.hash % 25));
		struct lt_stub_usage u;
		lt_stub_usage_compute(LT_STUB_OPENAI, "gpt-4o-mini", &p, 0, &u);
		assert_int_equal(u.output, natural);
		assert_false(u.cut);
		lt_stub_usage_compute(LT_STUB_OPENAI, "gpt-4o-mini", &p, natural, &u);
		assert_int_equal(u.output, natural);
		assert_false(u.cut);
		lt_stub_usage_compute(LT_STUB_OPENAI, "gpt-4o-mini", &p, 1000, &u);
		assert_int_equal(u.output, natural);
		assert_false(u.cut);
		lt_stub_usage_compute(LT_STUB_OPENAI, "gpt-4o-mini", &p, natural - 1, &u);
		assert_int_equal(u.output, natural - 1);
		assert_true(u.cut);
		lt_stub_usage_compute(LT_STUB_OPENAI, "gpt-4o-mini", &p, 1, &u);
		assert_int_equal(u.output, 1);
		assert_true(u.cut);
		lt_stub_prompt_release(&p);
	}
}

static void test_cached_tokens(void **state)
{
	(void)state;
	assert_int_equal(lt_stub_cached_tokens(0), 0);
	assert_int_equal(lt_stub_cached_tokens(1023), 0);
	assert_int_equal(lt_stub_cached_tokens(1024), 512);
	assert_int_equal(lt_stub_cached_tokens(1300), 640);
	assert_int_equal(lt_stub_cached_tokens(2000), 896);
	assert_int_equal(lt_stub_cached_tokens(4096), 2048);
	for (int64_t in = 1024; in < 10000; in += 37) {
		int64_t c = lt_stub_cached_tokens(in);
		assert_int_equal(c % 128, 0);
		assert_true(c <= in / 2 && c > in / 2 - 128);
	}
	/* Through the usage computation: a prompt of 4096 bytes is 1024 tokens. */
	static char big[4096];
	memset(big, 'x', sizeof big);
	struct lt_stub_prompt p;
	lt_stub_prompt_init(&p, "m");
	lt_stub_prompt_add(&p, "user", big, sizeof big);
	struct lt_stub_usage u;
	lt_stub_usage_compute(LT_STUB_QWEN, "m", &p, 0, &u);
	assert_int_equal(u.prompt, 1024);
	assert_int_equal(u.cached, 512);
	lt_stub_prompt_release(&p);
}

static void test_reasoning_rules(void **state)
{
	(void)state;
	const int64_t R = LT_STUB_REASONING_TOKENS;
	assert_int_equal(R, 16);
	assert_int_equal(lt_stub_reasoning_tokens(LT_STUB_OPENAI, "o1"), R);
	assert_int_equal(lt_stub_reasoning_tokens(LT_STUB_OPENAI, "o3-mini"), R);
	assert_int_equal(lt_stub_reasoning_tokens(LT_STUB_OPENAI, "o4-mini"), R);
	assert_int_equal(lt_stub_reasoning_tokens(LT_STUB_OPENAI, "gpt-4o"), 0);
	assert_int_equal(lt_stub_reasoning_tokens(LT_STUB_OPENAI, "omni"), 0);
	assert_int_equal(lt_stub_reasoning_tokens(LT_STUB_OPENAI, "o"), 0);
	assert_int_equal(lt_stub_reasoning_tokens(LT_STUB_OPENAI, ""), 0);
	assert_int_equal(lt_stub_reasoning_tokens(LT_STUB_OPENAI, "gpt-o1"), 0);
	assert_int_equal(lt_stub_reasoning_tokens(LT_STUB_GEMINI, "gemini-2.5-flash"), R);
	assert_int_equal(lt_stub_reasoning_tokens(LT_STUB_GEMINI, "gemini-2.5-pro"), R);
	assert_int_equal(lt_stub_reasoning_tokens(LT_STUB_GEMINI, "gemini-2.0-flash"), 0);
	assert_int_equal(lt_stub_reasoning_tokens(LT_STUB_QWEN, "o3"), 0);
	/* Reasoning does not change the visible output. */
	struct lt_stub_prompt p;
	lt_stub_prompt_init(&p, "o3-mini");
	lt_stub_prompt_add(&p, "user", "hi", 2);
	struct lt_stub_usage u;
	lt_stub_usage_compute(LT_STUB_OPENAI, "o3-mini", &p, 0, &u);
	assert_int_equal(u.reasoning, R);
	assert_int_equal(u.output, lt_stub_natural_tokens(p.hash));
	lt_stub_prompt_release(&p);
}

static void test_embedding(void **state)
{
	(void)state;
	float a[64], b[64];
	for (size_t dims = 1; dims <= 64; dims++) {
		lt_stub_embedding(77, a, dims);
		lt_stub_embedding(77, b, dims);
		double sum = 0;
		for (size_t i = 0; i < dims; i++) {
			assert_true(a[i] == b[i]);
			assert_true(isfinite(a[i]) && a[i] >= -1.0001f && a[i] <= 1.0001f);
			sum += (double)a[i] * a[i];
		}
		assert_true(fabs(sum - 1.0) < 1e-5);
	}
	lt_stub_embedding(78, b, 8);
	lt_stub_embedding(77, a, 8);
	assert_true(memcmp(a, b, sizeof(float) * 8) != 0);
}

static void test_fault_parse(void **state)
{
	(void)state;
	struct lt_stub_fault f;
	char why[256], desc[LT_STUB_FAULT_DESC_MAX];
	assert_int_equal(lt_stub_fault_parse("status=503; retry-after=2; delay=500; drop-after=3; "
					     "malformed",
					     &f, why, sizeof why),
			 LT_OK);
	assert_int_equal(f.status, 503);
	assert_int_equal(f.retry_after_s, 2);
	assert_int_equal(f.delay_ms, 500);
	assert_int_equal(f.drop_after, 3);
	assert_true(f.malformed);
	lt_stub_fault_describe(&f, desc, sizeof desc);
	assert_string_equal(desc, "status=503; retry-after=2; delay=500; drop-after=3; malformed");

	assert_int_equal(lt_stub_fault_parse("  Drop-After = 0 ;;", &f, why, sizeof why), LT_OK);
	assert_int_equal(f.status, 0);
	assert_int_equal(f.retry_after_s, -1);
	assert_int_equal(f.drop_after, 0);
	assert_false(f.malformed);
	assert_true(lt_stub_fault_active(&f));
	lt_stub_fault_describe(&f, desc, sizeof desc);
	assert_string_equal(desc, "drop-after=0");

	assert_int_equal(lt_stub_fault_parse("", &f, why, sizeof why), LT_OK);
	assert_false(lt_stub_fault_active(&f));
	lt_stub_fault_describe(&f, desc, sizeof desc);
	assert_string_equal(desc, "");
	assert_int_equal(lt_stub_fault_parse("malformed", &f, why, sizeof why), LT_OK);
	assert_true(f.malformed && lt_stub_fault_active(&f));

	static const char *const bad[] = {
		"status=abc",	  "status=600",	     "status=",	      "status",
		"retry-after=-1", "delay=1e3",	     "drop-after=x",  "malformed=1",
		"bogus=1",	  "status=503 junk", "delay=9999999",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		why[0] = '\0';
		if (lt_stub_fault_parse(bad[i], &f, why, sizeof why) != LT_ESYNTAX)
			fail_msg("accepted %s", bad[i]);
		assert_true(strncmp(why, "X-Stub-Fault", 12) == 0);
	}
}

static void test_fault_roll(void **state)
{
	(void)state;
	struct lt_stub_knobs k;
	memset(&k, 0, sizeof k);
	struct lt_stub_rng rng;
	lt_stub_rng_seed(&rng, 5);
	struct lt_stub_fault f;
	for (int i = 0; i < 100; i++) {
		lt_stub_fault_roll(&k, &rng, &f);
		assert_false(lt_stub_fault_active(&f));
	}
	k.error_rate_pct = 100;
	k.error_status = 429;
	k.retry_after_s = 9;
	k.spike_rate_pct = 100;
	k.spike_ms = 1234;
	lt_stub_fault_roll(&k, &rng, &f);
	assert_int_equal(f.status, 429);
	assert_int_equal(f.retry_after_s, 9);
	assert_int_equal(f.delay_ms, 1234);
	assert_int_equal(f.drop_after, -1);
	k.error_rate_pct = 0;
	k.spike_rate_pct = 0;
	k.drop_rate_pct = 100;
	for (int i = 0; i < 50; i++) {
		lt_stub_fault_roll(&k, &rng, &f);
		assert_int_equal(f.status, 0);
		assert_true(f.drop_after >= 1 && f.drop_after <= 4);
	}
	k.drop_rate_pct = 0;
	k.malformed_rate_pct = 100;
	lt_stub_fault_roll(&k, &rng, &f);
	assert_true(f.malformed);
	assert_int_equal(f.drop_after, -1);
}

static void test_plans(void **state)
{
	(void)state;
	struct lt_stub_plans q;
	assert_int_equal(lt_stub_plans_init(&q), LT_OK);
	struct lt_stub_plan p;
	memset(&p, 0, sizeof p);
	lt_stub_fault_none(&p.fault);
	snprintf(p.match, sizeof p.match, "/openai");
	p.fault.status = 503;
	p.count = 2;
	assert_int_equal(lt_stub_plans_push(&q, &p), LT_OK);
	snprintf(p.match, sizeof p.match, "/gemini");
	p.fault.status = 429;
	p.count = 1;
	assert_int_equal(lt_stub_plans_push(&q, &p), LT_OK);
	snprintf(p.match, sizeof p.match, "/openai/v1");
	p.fault.status = 500;
	assert_int_equal(lt_stub_plans_push(&q, &p), LT_OK);

	struct lt_stub_fault f;
	assert_false(lt_stub_plans_take(&q, "/qwen/x", &f));
	assert_true(lt_stub_plans_take(&q, "/openai/v1/chat/completions", &f));
	assert_int_equal(f.status, 503);
	assert_true(lt_stub_plans_take(&q, "/gemini/v1beta/x", &f));
	assert_int_equal(f.status, 429);
	assert_false(lt_stub_plans_take(&q, "/gemini/v1beta/x", &f));
	assert_true(lt_stub_plans_take(&q, "/openai/v1/embeddings", &f));
	assert_int_equal(f.status, 503); /* the first plan's second use, in order */
	assert_true(lt_stub_plans_take(&q, "/openai/v1/embeddings", &f));
	assert_int_equal(f.status, 500);
	assert_false(lt_stub_plans_take(&q, "/openai/v1/embeddings", &f));

	char store[256];
	struct lt_buf b;
	lt_buf_init(&b, store, sizeof store, 1 << 20);
	lt_stub_plans_render(&q, &b);
	assert_string_equal(b.data, "{\"plans\":[]}");
	for (int i = 0; i < LT_STUB_PLANS_MAX; i++)
		assert_int_equal(lt_stub_plans_push(&q, &p), LT_OK);
	assert_int_equal(lt_stub_plans_push(&q, &p), LT_EBUSY);
	assert_int_equal(lt_stub_plans_clear(&q), LT_STUB_PLANS_MAX);
	lt_buf_reset(&b);
	lt_stub_plans_render(&q, &b);
	assert_string_equal(b.data, "{\"plans\":[]}");
	assert_int_equal(lt_stub_plans_push(&q, &p), LT_OK);
	lt_buf_reset(&b);
	lt_stub_plans_render(&q, &b);
	assert_string_equal(
		b.data,
		"{\"plans\":[{\"match\":\"/openai/v1\",\"fault\":\"status=500\",\"count\":1}]}");
	lt_buf_release(&b);
	lt_stub_plans_release(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fnv1a_vectors),
		cmocka_unit_test(test_rng),
		cmocka_unit_test(test_prompt_hash_and_text),
		cmocka_unit_test(test_text_is_4n_bytes),
		cmocka_unit_test(test_output_length_and_cut),
		cmocka_unit_test(test_cached_tokens),
		cmocka_unit_test(test_reasoning_rules),
		cmocka_unit_test(test_embedding),
		cmocka_unit_test(test_fault_parse),
		cmocka_unit_test(test_fault_roll),
		cmocka_unit_test(test_plans),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
