/*
 * test_policy.c — src/limit/policy.c: the admission plan of typical
 * requests (consume with an API key, /v1 chat with model rpm/tpm, org
 * spending, whitelisted paths, route overrides), each client_key strategy,
 * tier multipliers, [features] rate_limiting, keys that always fit
 * LT_BUCKET_KEY_MAX, policies that bucket.h accepts, and the check hooks
 * that config.c runs on the [limits] lists.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "conf/config.h"
#include "limit/policy.h"

#define NS_MS INT64_C(1000000)
#define NS_S (1000 * NS_MS)

#define KEY_ID "0b6f4c1e-4a51-4d0e-9a3b-5c2d8e7f6a10"
#define USER_ID "3f0c2a9e-1b7d-4c55-8e21-6a4b9d0f7c32"
#define ORG_ID "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"

static void set(struct lt_config *cfg, const char *section, const char *name, const char *value)
{
	char err[LT_CFG_ERR_MAX];
	if (lt_config_set(cfg, section, name, value, "test", err) != LT_OK)
		fail_msg("set [%s] %s = %s: %s", section, name, value, err);
}

/* A configured model (as the [model.NAME] parser would leave it). */
static void add_model(struct lt_config *cfg, const char *name, int64_t rpm, int64_t tpm)
{
	assert_true(cfg->nmodels < LT_CFG_MAX_MODELS);
	struct lt_cfg_model *m = &cfg->models[cfg->nmodels++];
	memset(m, 0, sizeof *m);
	snprintf(m->name, sizeof m->name, "%s", name);
	snprintf(m->provider, sizeof m->provider, "openai");
	m->context_window = 128000;
	m->max_output = 4096;
	m->rpm = rpm;
	m->tpm = tpm;
}

static struct lt_limit_plan plan_of(const struct lt_config *cfg, const struct lt_limit_facts *f)
{
	struct lt_limit_plan p;
	memset(&p, 0x5A, sizeof p);
	enum lt_err e = lt_limit_plan(cfg, f, &p);
	if (e != LT_OK)
		fail_msg("lt_limit_plan: %d", (int)e);
	return p;
}

/* The index of the item with this key, failing when there is none. */
static size_t find(const struct lt_limit_plan *p, const char *key)
{
	for (size_t i = 0; i < p->n; i++)
		if (!strcmp(p->items[i].key, key))
			return i;
	char have[2048] = "";
	for (size_t i = 0; i < p->n; i++) {
		size_t l = strlen(have);
		snprintf(have + l, sizeof have - l, " '%s'", p->items[i].key);
	}
	fail_msg("no item '%s'; have:%s", key, have);
	return 0;
}

static void assert_item(const struct lt_limit_plan *p, const char *key, enum lt_limit_scope scope,
			const char *name, enum lt_bucket_algo algo, int64_t capacity, int64_t rate,
			int64_t period_ns, int64_t cost)
{
	size_t i = find(p, key);
	const struct lt_admit_item *it = &p->items[i];
	assert_int_equal(p->scope[i], scope);
	assert_string_equal(p->name[i], name);
	assert_int_equal(it->policy.algo, algo);
	assert_int_equal(it->policy.capacity, capacity);
	assert_int_equal(it->policy.rate, rate);
	assert_int_equal(it->policy.period_ns, period_ns);
	assert_int_equal(it->cost, cost);
	if (algo == LT_ALGO_GCRA)
		assert_int_equal(it->policy.burst, capacity - 1);
	/* outputs start cleared */
	assert_int_equal(it->err, LT_OK);
	assert_false(it->decision.allowed);
	assert_int_equal(it->decision.limit, 0);
	char why[128];
	if (lt_bucket_policy_check(&it->policy, why, sizeof why) != LT_OK)
		fail_msg("item '%s': policy refused by bucket.h: %s", key, why);
}

/* POST /api/v1/tokens/consume with an API key: the request limit counts
 * the key under the tokens route override; the token bucket is the user's
 * for the provider, scaled by the tier. */
static void test_consume_with_api_key(void **state)
{
	(void)state;
	struct lt_config cfg;
	lt_config_defaults(&cfg);
	struct lt_limit_facts f = {.path = "/api/v1/tokens/consume",
				   .key_id = KEY_ID,
				   .user_id = USER_ID,
				   .ip = "192.0.2.7",
				   .tier = "ADMIN",
				   .provider = "openai",
				   .tokens = 50};
	struct lt_limit_plan p = plan_of(&cfg, &f);
	assert_int_equal(p.n, 2);
	assert_false(p.whitelisted);
	assert_item(&p, "rq|key:" KEY_ID "|/api/v1/tokens/**", LT_SCOPE_REQUESTS, "requests",
		    LT_ALGO_FIXED, 200, 200, 60 * NS_S, 1);
	assert_item(&p, "tb|user:" USER_ID "|openai|ADMIN", LT_SCOPE_TOKENS, "tokens-openai",
		    LT_ALGO_LEAKY, 2000, 20, NS_S, 50);
	assert_int_equal(p.scope[0], LT_SCOPE_REQUESTS); /* requests first */

	/* a USER gets the plain capacity, in a bucket of its own tier */
	f.tier = "USER";
	p = plan_of(&cfg, &f);
	assert_item(&p, "tb|user:" USER_ID "|openai|USER", LT_SCOPE_TOKENS, "tokens-openai",
		    LT_ALGO_LEAKY, 1000, 10, NS_S, 50);

	/* a route without an override shares the "*" window at request_limit */
	f.path = "/api/v1/analytics/usage";
	f.provider = NULL;
	f.tokens = 0;
	p = plan_of(&cfg, &f);
	assert_int_equal(p.n, 1);
	assert_item(&p, "rq|key:" KEY_ID "|*", LT_SCOPE_REQUESTS, "requests", LT_ALGO_FIXED, 120,
		    120, 60 * NS_S, 1);
}

/* /v1/chat/completions for a model with rpm and tpm: both model items,
 * per model (whatever case the client wrote), GCRA per minute with a burst
 * of the whole minute. */
static void test_chat_model_rpm_tpm(void **state)
{
	(void)state;
	struct lt_config cfg;
	lt_config_defaults(&cfg);
	add_model(&cfg, "gpt-4o-mini", 60, 10000);
	add_model(&cfg, "o4-mini", 0, 0);
	add_model(&cfg, "gpt-4.1", 0, 500);
	struct lt_limit_facts f = {.path = "/v1/chat/completions",
				   .user_id = USER_ID,
				   .ip = "192.0.2.7",
				   .tier = "USER",
				   .provider = "openai",
				   .model = "GPT-4o-Mini",
				   .tokens = 300};
	struct lt_limit_plan p = plan_of(&cfg, &f);
	assert_int_equal(p.n, 4);
	assert_item(&p, "rq|user:" USER_ID "|*", LT_SCOPE_REQUESTS, "requests", LT_ALGO_FIXED, 120,
		    120, 60 * NS_S, 1);
	assert_item(&p, "tb|user:" USER_ID "|openai|USER", LT_SCOPE_TOKENS, "tokens-openai",
		    LT_ALGO_LEAKY, 1000, 10, NS_S, 300);
	assert_item(&p, "rpm|gpt-4o-mini", LT_SCOPE_MODEL_RPM, "rpm-gpt-4o-mini", LT_ALGO_GCRA, 60,
		    60, 60 * NS_S, 1);
	assert_item(&p, "tpm|gpt-4o-mini", LT_SCOPE_MODEL_TPM, "tpm-gpt-4o-mini", LT_ALGO_GCRA,
		    10000, 10000, 60 * NS_S, 300);

	/* a model without limits, one with tpm only, one not configured */
	f.model = "o4-mini";
	assert_int_equal(plan_of(&cfg, &f).n, 2);
	f.model = "gpt-4.1";
	p = plan_of(&cfg, &f);
	assert_int_equal(p.n, 3);
	assert_item(&p, "tpm|gpt-4.1", LT_SCOPE_MODEL_TPM, "tpm-gpt-4.1", LT_ALGO_GCRA, 500, 500,
		    60 * NS_S, 300);
	f.model = "openai/some-passthrough-id";
	assert_int_equal(plan_of(&cfg, &f).n, 2);
	f.model = "";
	assert_int_equal(plan_of(&cfg, &f).n, 2);
}

/* Spending for an org: the org bucket when org_capacity > 0, next to the
 * member's own token bucket; org_rate 0 means org_capacity per period. */
static void test_org_spending(void **state)
{
	(void)state;
	struct lt_config cfg;
	lt_config_defaults(&cfg);
	struct lt_limit_facts f = {.path = "/api/v1/tokens/consume",
				   .user_id = USER_ID,
				   .tier = "USER",
				   .org_id = ORG_ID,
				   .provider = "gemini",
				   .tokens = 70};
	/* default org_capacity 0: no org bucket */
	struct lt_limit_plan p = plan_of(&cfg, &f);
	assert_int_equal(p.n, 2);
	for (size_t i = 0; i < p.n; i++)
		assert_int_not_equal(p.scope[i], LT_SCOPE_ORG);

	set(&cfg, "limits", "org_capacity", "5000");
	p = plan_of(&cfg, &f);
	assert_int_equal(p.n, 3);
	assert_item(&p, "tb|user:" USER_ID "|gemini|USER", LT_SCOPE_TOKENS, "tokens-gemini",
		    LT_ALGO_LEAKY, 1000, 10, NS_S, 70);
	assert_item(&p, "ob|" ORG_ID "|gemini", LT_SCOPE_ORG, "org-gemini", LT_ALGO_LEAKY, 5000,
		    5000, NS_S, 70);

	set(&cfg, "limits", "org_rate", "25");
	set(&cfg, "limits", "token_algorithm", "token");
	set(&cfg, "limits", "token_period_ms", "60000");
	p = plan_of(&cfg, &f);
	assert_item(&p, "ob|" ORG_ID "|gemini", LT_SCOPE_ORG, "org-gemini", LT_ALGO_TOKEN, 5000, 25,
		    60 * NS_S, 70);
	assert_item(&p, "tb|user:" USER_ID "|gemini|USER", LT_SCOPE_TOKENS, "tokens-gemini",
		    LT_ALGO_TOKEN, 1000, 10, 60 * NS_S, 70);

	/* no org in the request: no org item even with org_capacity */
	f.org_id = NULL;
	assert_int_equal(plan_of(&cfg, &f).n, 2);

	/* an org without a user (no principal user): the token bucket is the org's */
	f.org_id = ORG_ID;
	f.user_id = NULL;
	f.ip = "198.51.100.4";
	f.tier = NULL;
	p = plan_of(&cfg, &f);
	assert_int_equal(p.n, 3);
	assert_item(&p, "tb|org:" ORG_ID "|gemini|-", LT_SCOPE_TOKENS, "tokens-gemini",
		    LT_ALGO_TOKEN, 1000, 10, 60 * NS_S, 70);
	find(&p, "rq|ip:198.51.100.4|/api/v1/tokens/**");

	/* no provider: nothing is spent, no token or org item */
	f.provider = NULL;
	f.tokens = 0;
	p = plan_of(&cfg, &f);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.scope[0], LT_SCOPE_REQUESTS);
}

/* Whitelisted paths have no request item (token items still apply). */
static void test_whitelist(void **state)
{
	(void)state;
	struct lt_config cfg;
	lt_config_defaults(&cfg);
	static const struct {
		const char *path;
		bool white;
	} cases[] = {
		{"/actuator", true},
		{"/actuator/health", true},
		{"/actuator/health/liveness", true},
		{"/actuatorx", false},
		{"/healthz", true},
		{"/healthz/", false},
		{"/healthzz", false},
		{"/readyz", true},
		{"/metrics", true},
		{"/openapi.json", true},
		{"/openapi.jsonx", false},
		{"/api/v1/tokens", false},
		{"/", false},
		{"", false},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct lt_limit_facts f = {.path = cases[i].path, .ip = "127.0.0.1"};
		struct lt_limit_plan p = plan_of(&cfg, &f);
		if (p.whitelisted != cases[i].white || p.n != (cases[i].white ? 0u : 1u))
			fail_msg("path '%s': whitelisted %d, %zu items", cases[i].path,
				 p.whitelisted, p.n);
	}
	/* a NULL path is never whitelisted */
	struct lt_limit_facts f = {.ip = "127.0.0.1"};
	struct lt_limit_plan p = plan_of(&cfg, &f);
	assert_false(p.whitelisted);
	find(&p, "rq|ip:127.0.0.1|*");

	/* whitelisted but spending: the token bucket remains */
	f = (struct lt_limit_facts){.path = "/metrics",
				    .user_id = USER_ID,
				    .provider = "qwen",
				    .tier = "USER",
				    .tokens = 3};
	p = plan_of(&cfg, &f);
	assert_true(p.whitelisted);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.scope[0], LT_SCOPE_TOKENS);

	/* an empty whitelist exempts nothing; the root prefix exempts everything */
	set(&cfg, "limits", "whitelist", "");
	f = (struct lt_limit_facts){.path = "/healthz", .ip = "127.0.0.1"};
	assert_false(plan_of(&cfg, &f).whitelisted);
	set(&cfg, "limits", "whitelist", "/**");
	assert_true(plan_of(&cfg, &f).whitelisted);
	f.path = "/api/v1/anything";
	assert_true(plan_of(&cfg, &f).whitelisted);
}

/* Route overrides: exact beats prefix, the longest prefix wins, in any
 * order of the list. */
static void test_route_overrides(void **state)
{
	(void)state;
	static const char *const lists[] = {
		"/api/**=10,/api/v1/tokens/**=200,/api/v1/tokens/consume=5,/api/v1/tokens=9",
		"/api/v1/tokens=9,/api/v1/tokens/consume=5, /api/v1/tokens/** = 200 ,/api/**=10",
	};
	static const struct {
		const char *path, *cls;
		int64_t limit;
	} cases[] = {
		{"/api/v1/tokens/consume", "/api/v1/tokens/consume", 5},
		{"/api/v1/tokens/consume/x", "/api/v1/tokens/**", 200},
		{"/api/v1/tokens", "/api/v1/tokens", 9}, /* exact beats the same stem */
		{"/api/v1/tokens/", "/api/v1/tokens/**", 200},
		{"/api/v1/tokens/status", "/api/v1/tokens/**", 200},
		{"/api/v1/tokensx", "/api/**", 10},
		{"/api", "/api/**", 10},
		{"/api/v1", "/api/**", 10},
		{"/apix", "*", 120},
		{"/v1/chat/completions", "*", 120},
	};
	for (size_t l = 0; l < sizeof lists / sizeof lists[0]; l++) {
		struct lt_config cfg;
		lt_config_defaults(&cfg);
		set(&cfg, "limits", "request_routes", lists[l]);
		for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
			struct lt_limit_facts f = {.path = cases[i].path, .user_id = USER_ID};
			struct lt_limit_plan p = plan_of(&cfg, &f);
			char key[256];
			snprintf(key, sizeof key, "rq|user:" USER_ID "|%s", cases[i].cls);
			assert_int_equal(p.n, 1);
			if (strcmp(p.items[0].key, key) ||
			    p.items[0].policy.capacity != cases[i].limit)
				fail_msg("list %zu, path %s: got %s limit %lld, want %s limit %lld",
					 l, cases[i].path, p.items[0].key,
					 (long long)p.items[0].policy.capacity, key,
					 (long long)cases[i].limit);
		}
	}

	/* the default override, and every request algorithm */
	struct lt_config cfg;
	lt_config_defaults(&cfg);
	struct lt_limit_facts f = {.path = "/api/v1/tokens/consume", .ip = "10.1.2.3"};
	static const struct {
		const char *name;
		enum lt_bucket_algo algo;
	} algos[] = {{"leaky", LT_ALGO_LEAKY},
		     {"token", LT_ALGO_TOKEN},
		     {"fixed", LT_ALGO_FIXED},
		     {"gcra", LT_ALGO_GCRA}};
	set(&cfg, "limits", "request_window_ms", "1000");
	for (size_t i = 0; i < 4; i++) {
		set(&cfg, "limits", "request_algorithm", algos[i].name);
		struct lt_limit_plan p = plan_of(&cfg, &f);
		assert_item(&p, "rq|ip:10.1.2.3|/api/v1/tokens/**", LT_SCOPE_REQUESTS, "requests",
			    algos[i].algo, 200, 200, NS_S, 1);
	}
	/* no overrides at all */
	set(&cfg, "limits", "request_routes", "");
	struct lt_limit_plan p = plan_of(&cfg, &f);
	find(&p, "rq|ip:10.1.2.3|*");
	assert_int_equal(p.items[0].policy.capacity, 120);
}

/* client_key: each strategy, the auto order, and the fallback when the
 * chosen identity is absent ("" counts as absent). */
static void test_client_key(void **state)
{
	(void)state;
	static const struct {
		const char *strategy;
		const char *key_id, *user_id, *ip;
		const char *want; /* client part of the key, NULL: no request item */
	} cases[] = {
		{"auto", KEY_ID, USER_ID, "10.0.0.1", "key:" KEY_ID},
		{"auto", NULL, USER_ID, "10.0.0.1", "user:" USER_ID},
		{"auto", "", USER_ID, "10.0.0.1", "user:" USER_ID},
		{"auto", NULL, NULL, "10.0.0.1", "ip:10.0.0.1"},
		{"auto", "", "", "2001:db8::1", "ip:2001:db8::1"},
		{"auto", NULL, NULL, NULL, NULL},
		{"auto", "", "", "", NULL},
		{"api_key", KEY_ID, USER_ID, "10.0.0.1", "key:" KEY_ID},
		{"api_key", NULL, USER_ID, "10.0.0.1", "user:" USER_ID},
		{"api_key", NULL, NULL, "10.0.0.1", "ip:10.0.0.1"},
		{"user", KEY_ID, USER_ID, "10.0.0.1", "user:" USER_ID},
		{"user", KEY_ID, NULL, "10.0.0.1", "key:" KEY_ID},
		{"user", NULL, NULL, "10.0.0.1", "ip:10.0.0.1"},
		{"ip", KEY_ID, USER_ID, "10.0.0.1", "ip:10.0.0.1"},
		{"ip", KEY_ID, USER_ID, NULL, "key:" KEY_ID},
		{"ip", NULL, USER_ID, "", "user:" USER_ID},
		{"ip", NULL, NULL, NULL, NULL},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct lt_config cfg;
		lt_config_defaults(&cfg);
		set(&cfg, "limits", "client_key", cases[i].strategy);
		struct lt_limit_facts f = {.path = "/api/v1/auth/me",
					   .key_id = cases[i].key_id,
					   .user_id = cases[i].user_id,
					   .ip = cases[i].ip};
		struct lt_limit_plan p = plan_of(&cfg, &f);
		if (!cases[i].want) {
			if (p.n != 0)
				fail_msg("case %zu: want no item, got '%s'", i, p.items[0].key);
			continue;
		}
		char key[256];
		snprintf(key, sizeof key, "rq|%s|*", cases[i].want);
		if (p.n != 1 || strcmp(p.items[0].key, key) != 0)
			fail_msg("case %zu (%s): got %zu items '%s', want '%s'", i,
				 cases[i].strategy, p.n, p.n ? p.items[0].key : "", key);
	}
}

/* Tier multipliers: listed tiers scale capacity and rate; others get 1. */
static void test_tier_multiplier(void **state)
{
	(void)state;
	struct lt_config cfg;
	lt_config_defaults(&cfg);
	assert_int_equal(lt_limit_tier_multiplier(&cfg, "USER"), 1);
	assert_int_equal(lt_limit_tier_multiplier(&cfg, "ADMIN"), 2);
	assert_int_equal(lt_limit_tier_multiplier(&cfg, "ORG_ADMIN"), 1);
	assert_int_equal(lt_limit_tier_multiplier(&cfg, "GOLD"), 1);
	assert_int_equal(lt_limit_tier_multiplier(&cfg, "admin"), 1); /* names are exact */
	assert_int_equal(lt_limit_tier_multiplier(&cfg, "ADMI"), 1);
	assert_int_equal(lt_limit_tier_multiplier(&cfg, "ADMINX"), 1);
	assert_int_equal(lt_limit_tier_multiplier(&cfg, ""), 1);
	assert_int_equal(lt_limit_tier_multiplier(&cfg, NULL), 1);

	set(&cfg, "limits", "tier_multipliers", "USER:3, GOLD : 7 ,ADMIN:1000");
	assert_int_equal(lt_limit_tier_multiplier(&cfg, "USER"), 3);
	assert_int_equal(lt_limit_tier_multiplier(&cfg, "GOLD"), 7);
	assert_int_equal(lt_limit_tier_multiplier(&cfg, "ADMIN"), 1000);
	set(&cfg, "limits", "tier_multipliers", "");
	assert_int_equal(lt_limit_tier_multiplier(&cfg, "ADMIN"), 1);

	/* an unknown tier in a plan: multiplier 1, its own bucket */
	lt_config_defaults(&cfg);
	struct lt_limit_facts f = {
		.user_id = USER_ID, .tier = "PLATINUM", .provider = "openai", .tokens = 1};
	struct lt_limit_plan p = plan_of(&cfg, &f);
	assert_item(&p, "tb|user:" USER_ID "|openai|PLATINUM", LT_SCOPE_TOKENS, "tokens-openai",
		    LT_ALGO_LEAKY, 1000, 10, NS_S, 1);
	f.tier = NULL;
	p = plan_of(&cfg, &f);
	assert_item(&p, "tb|user:" USER_ID "|openai|-", LT_SCOPE_TOKENS, "tokens-openai",
		    LT_ALGO_LEAKY, 1000, 10, NS_S, 1);
}

/* [features] rate_limiting = no: the plan is empty, whatever the request. */
static void test_rate_limiting_off(void **state)
{
	(void)state;
	struct lt_config cfg;
	lt_config_defaults(&cfg);
	add_model(&cfg, "m", 10, 10);
	set(&cfg, "limits", "org_capacity", "10");
	set(&cfg, "features", "rate_limiting", "no");
	struct lt_limit_facts f = {.path = "/api/v1/tokens/consume",
				   .key_id = KEY_ID,
				   .user_id = USER_ID,
				   .ip = "10.0.0.1",
				   .tier = "USER",
				   .org_id = ORG_ID,
				   .provider = "openai",
				   .model = "m",
				   .tokens = 5};
	struct lt_limit_plan p = plan_of(&cfg, &f);
	assert_int_equal(p.n, 0);
	assert_false(p.whitelisted);
	f.path = "/healthz";
	p = plan_of(&cfg, &f);
	assert_int_equal(p.n, 0);

	set(&cfg, "features", "rate_limiting", "yes");
	f.path = "/api/v1/tokens/consume";
	assert_int_equal(plan_of(&cfg, &f).n, 5);
}

static void fill(char *s, char c, size_t n)
{
	memset(s, c, n);
	s[n] = '\0';
}

/* The longest ids and names the rest of the system allows still give keys
 * that fit, policies bucket.h accepts and names truncated to 47 bytes. */
static void test_longest_keys_fit(void **state)
{
	(void)state;
	struct lt_config cfg;
	lt_config_defaults(&cfg);
	char model[LT_CFG_MODEL_NAME_MAX], provider[LT_CFG_PROVIDER_NAME_MAX], tier[33];
	char route[LT_CFG_ROUTE_MAX + 1], routes[LT_CFG_LIMITS_STR_MAX + 1], path[300];
	fill(model, 'M', sizeof model - 1);	  /* 95 */
	fill(provider, 'p', sizeof provider - 1); /* 31 */
	fill(tier, 'T', 32);
	fill(route, 'r', LT_CFG_ROUTE_MAX);
	route[0] = '/';
	memcpy(route + LT_CFG_ROUTE_MAX - 3, "/**", 3);
	snprintf(routes, sizeof routes, "%s=1000000000", route);
	set(&cfg, "limits", "request_routes", routes);
	snprintf(path, sizeof path, "%.*s/deeper/still", LT_CFG_ROUTE_MAX - 3, route);
	add_model(&cfg, model, 100000000, INT64_C(10000000000));
	set(&cfg, "limits", "org_capacity", "1000000000000");
	char multipliers[64];
	snprintf(multipliers, sizeof multipliers, "%s:1000", tier);
	set(&cfg, "limits", "tier_multipliers", multipliers);
	/* IPv4-mapped IPv6 is the longest address text (45 characters) */
	const char *ip = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
	assert_int_equal(strlen(ip), 45);

	/* even rounds: the largest capacity with the slowest rate and longest
	 * period; odd rounds: the reverse */
	static const char *const algos[] = {"leaky", "token", "gcra", "fixed"};
	static const char *const strategies[] = {"ip", "api_key", "user", "auto"};
	for (size_t a = 0; a < 4; a++) {
		set(&cfg, "limits", "token_algorithm", algos[a]);
		set(&cfg, "limits", "request_algorithm", algos[a]);
		/* extremes of the bounds, both ways */
		set(&cfg, "limits", "token_capacity", a % 2 ? "1" : "1000000000");
		set(&cfg, "limits", "token_rate", a % 2 ? "1000000000" : "1");
		set(&cfg, "limits", "token_period_ms", a % 2 ? "1" : "86400000");
		set(&cfg, "limits", "org_rate", a % 2 ? "1" : "0");
		set(&cfg, "limits", "request_window_ms", a % 2 ? "86400000" : "1");
		set(&cfg, "limits", "client_key", strategies[a]);
		struct lt_limit_facts f = {.path = path,
					   .key_id = KEY_ID,
					   .user_id = USER_ID,
					   .ip = ip,
					   .tier = tier,
					   .org_id = ORG_ID,
					   .provider = provider,
					   .model = model,
					   .tokens = 1};
		struct lt_limit_plan p = plan_of(&cfg, &f);
		assert_int_equal(p.n, 5);
		for (size_t i = 0; i < p.n; i++) {
			const struct lt_admit_item *it = &p.items[i];
			assert_true(strlen(it->key) <= LT_BUCKET_KEY_MAX);
			assert_true(strlen(p.name[i]) <= 47);
			char why[128];
			if (lt_bucket_policy_check(&it->policy, why, sizeof why) != LT_OK)
				fail_msg("%s %s: %s", algos[a], it->key, why);
		}
		char want[512];
		snprintf(want, sizeof want, "rq|%s%s|%s",
			 a == 0	  ? "ip:"
			 : a == 1 ? "key:"
			 : a == 2 ? "user:"
				  : "key:",
			 a == 0	  ? ip
			 : a == 2 ? USER_ID
				  : KEY_ID,
			 route);
		find(&p, want);
		snprintf(want, sizeof want, "tb|user:%s|%s|%s", USER_ID, provider, tier);
		size_t t = find(&p, want);
		assert_int_equal(p.items[t].policy.capacity,
				 a % 2 ? INT64_C(1000) : INT64_C(1000000000000));
		snprintf(want, sizeof want, "tpm|%s", model);
		size_t m = find(&p, want);
		/* "tpm-" + 95 characters, cut to 47 */
		assert_int_equal(strlen(p.name[m]), 47);
		assert_memory_equal(p.name[m], "tpm-MMMM", 8);
		snprintf(want, sizeof want, "ob|%s|%s", ORG_ID, provider);
		size_t o = find(&p, want);
		snprintf(want, sizeof want, "org-%s", provider);
		assert_string_equal(p.name[o], want);
		if (a == 2) {
			/* GCRA: bursts as long as bucket.h allows, else capacity - 1 */
			assert_int_equal(p.items[m].policy.burst, INT64_C(10000000000) - 1);
			assert_true(p.items[t].policy.burst < p.items[t].policy.capacity - 1);
		}
	}

	/* a fact longer than anything the system produces: LT_ETOOBIG, no items */
	char huge[400];
	fill(huge, 'x', sizeof huge - 1);
	struct lt_limit_facts f = {.path = "/x", .ip = huge};
	struct lt_limit_plan p;
	assert_int_equal(lt_limit_plan(&cfg, &f, &p), LT_ETOOBIG);
	assert_int_equal(p.n, 0);
	f = (struct lt_limit_facts){.user_id = USER_ID, .provider = huge, .tokens = 1};
	assert_int_equal(lt_limit_plan(&cfg, &f, &p), LT_ETOOBIG);
	assert_int_equal(p.n, 0);
}

static void test_bad_arguments(void **state)
{
	(void)state;
	struct lt_config cfg;
	lt_config_defaults(&cfg);
	struct lt_limit_facts f = {.user_id = USER_ID, .provider = "openai", .tokens = -1};
	struct lt_limit_plan p;
	p.n = 3;
	assert_int_equal(lt_limit_plan(&cfg, &f, &p), LT_EINVAL);
	assert_int_equal(p.n, 0);
	f.tokens = 0;
	assert_int_equal(lt_limit_plan(NULL, &f, &p), LT_EINVAL);
	assert_int_equal(lt_limit_plan(&cfg, NULL, &p), LT_EINVAL);
	assert_int_equal(lt_limit_plan(&cfg, &f, NULL), LT_EINVAL);
	/* cost 0 with a provider: a peek of the token bucket */
	p = plan_of(&cfg, &f);
	assert_int_equal(p.n, 2);
	assert_int_equal(p.items[find(&p, "tb|user:" USER_ID "|openai|-")].cost, 0);
}

static void test_scope_names(void **state)
{
	(void)state;
	assert_string_equal(lt_limit_scope_name(LT_SCOPE_REQUESTS), "requests");
	assert_string_equal(lt_limit_scope_name(LT_SCOPE_TOKENS), "tokens");
	assert_string_equal(lt_limit_scope_name(LT_SCOPE_ORG), "org");
	assert_string_equal(lt_limit_scope_name(LT_SCOPE_MODEL_RPM), "rpm");
	assert_string_equal(lt_limit_scope_name(LT_SCOPE_MODEL_TPM), "tpm");
	assert_string_equal(lt_limit_scope_name((enum lt_limit_scope)99), "unknown");
}

struct hook_case {
	const char *value;
	const char *why; /* NULL: accepted */
};

static void run_hook(bool (*hook)(const char *, char *, size_t), const char *what,
		     const struct hook_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char why[384] = "";
		bool ok = hook(c[i].value, why, sizeof why);
		if (ok != !c[i].why || (c[i].why && strcmp(why, c[i].why) != 0))
			fail_msg("%s case %zu '%s': got %s '%s', want %s '%s'", what, i, c[i].value,
				 ok ? "ok" : "refused", why, c[i].why ? "refused" : "ok",
				 c[i].why ? c[i].why : "");
		/* a NULL message buffer is fine */
		assert_int_equal(hook(c[i].value, NULL, 0), ok);
	}
}

static void test_check_multipliers(void **state)
{
	(void)state;
	static const struct hook_case cases[] = {
		{"USER:1,ADMIN:2", NULL},
		{"", NULL},
		{"  ", NULL},
		{"USER:1000", NULL},
		{" USER : 1 ,\tGOLD_2:7 ", NULL},
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345:1", NULL}, /* 32 characters */
		{"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456:1",
		 "tier name 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456' must be 1-32 characters of A-Z, "
		 "0-9 or _"},
		{"USER:0", "multiplier of USER must be a whole number 1-1000, got '0'"},
		{"USER:1001", "multiplier of USER must be a whole number 1-1000, got '1001'"},
		{"USER:-1", "multiplier of USER must be a whole number 1-1000, got '-1'"},
		{"USER:+2", "multiplier of USER must be a whole number 1-1000, got '+2'"},
		{"USER:1.5", "multiplier of USER must be a whole number 1-1000, got '1.5'"},
		{"USER:", "multiplier of USER must be a whole number 1-1000, got ''"},
		{"USER:99999999999999999999999",
		 "multiplier of USER must be a whole number 1-1000, got '99999999999999999999999'"},
		{"USER", "expected TIER:MULTIPLIER, got 'USER'"},
		{"user:1", "tier name 'user' must be 1-32 characters of A-Z, 0-9 or _"},
		{":1", "tier name '' must be 1-32 characters of A-Z, 0-9 or _"},
		{"USER:1,,ADMIN:2", "empty item"},
		{"USER:1,", "empty item"},
		{",USER:1", "empty item"},
		{"USER:1,ADMIN:2,USER:3", "tier USER is listed twice"},
		{"USER:1:2", "multiplier of USER must be a whole number 1-1000, got '1:2'"},
	};
	run_hook(lt_limit_check_multipliers, "multipliers", cases, sizeof cases / sizeof cases[0]);
}

static void test_check_routes(void **state)
{
	(void)state;
	static const struct hook_case cases[] = {
		{"/api/v1/tokens/**=200", NULL},
		{"", NULL},
		{"/**=5", NULL},
		{"/a=1, /a/** = 1000000000 ,/b/c.d-e_f~g:h@i=3", NULL},
		{"/a=0", "limit of /a must be a whole number 1-1000000000, got '0'"},
		{"/a=1000000001",
		 "limit of /a must be a whole number 1-1000000000, got '1000000001'"},
		{"/a=x", "limit of /a must be a whole number 1-1000000000, got 'x'"},
		{"/a=", "limit of /a must be a whole number 1-1000000000, got ''"},
		{"/a", "expected PATH=LIMIT, got '/a'"},
		{"=5", "empty path"},
		{"a/b=5", "path 'a/b' must start with '/'"},
		{"/a/*=5", "path '/a/*': '*' is allowed only as a final /**"},
		{"/a**=5", "path '/a**': '*' is allowed only as a final /**"},
		{"/a/**/b=5", "path '/a/**/b': '*' is allowed only as a final /**"},
		{"/**/**=5", "path '/**/**': '*' is allowed only as a final /**"},
		{"/a//b=5", "path '/a//b' has an empty segment (//)"},
		{"//**=5", "path '//**' has an empty segment (//)"},
		{"/a|b=5", "path '/a|b' holds a character not allowed in a path"},
		{"/a b=5", "path '/a b' holds a character not allowed in a path"},
		{"/a\xc3\xa9=5", "path '/a\xc3\xa9' holds a character not allowed in a path"},
		{"/a=1,,/b=2", "empty item"},
		{"/a=1,", "empty item"},
		{"/a/**=1,/b=2,/a/**=3", "route /a/** is listed twice"},
		{"/a=1=2", "limit of /a must be a whole number 1-1000000000, got '1=2'"},
	};
	run_hook(lt_limit_check_routes, "routes", cases, sizeof cases / sizeof cases[0]);

	/* the longest path allowed, and one more */
	char v[LT_CFG_ROUTE_MAX + 16], want[128];
	fill(v, 'x', LT_CFG_ROUTE_MAX);
	v[0] = '/';
	memcpy(v + LT_CFG_ROUTE_MAX, "=1", 3);
	assert_true(lt_limit_check_routes(v, NULL, 0));
	fill(v, 'x', LT_CFG_ROUTE_MAX + 1);
	v[0] = '/';
	memcpy(v + LT_CFG_ROUTE_MAX + 1, "=1", 3);
	char why[256];
	assert_false(lt_limit_check_routes(v, why, sizeof why));
	snprintf(want, sizeof want, "path '/%.31s...' is longer than %d characters", v + 1,
		 LT_CFG_ROUTE_MAX);
	assert_string_equal(why, want);
}

static void test_check_whitelist(void **state)
{
	(void)state;
	static const struct hook_case cases[] = {
		{"/actuator/**,/healthz,/readyz,/metrics,/openapi.json", NULL},
		{"", NULL},
		{"/", NULL},
		{"/**", NULL},
		{" /a , /b/** ", NULL},
		{"/a=1", "path '/a=1' holds a character not allowed in a path"},
		{"healthz", "path 'healthz' must start with '/'"},
		{"/a/*", "path '/a/*': '*' is allowed only as a final /**"},
		{"/a,,/b", "empty item"},
		{"/a,/b,/a", "path /a is listed twice"},
		{"/a//", "path '/a//' has an empty segment (//)"},
	};
	run_hook(lt_limit_check_whitelist, "whitelist", cases, sizeof cases / sizeof cases[0]);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_consume_with_api_key),
		cmocka_unit_test(test_chat_model_rpm_tpm),
		cmocka_unit_test(test_org_spending),
		cmocka_unit_test(test_whitelist),
		cmocka_unit_test(test_route_overrides),
		cmocka_unit_test(test_client_key),
		cmocka_unit_test(test_tier_multiplier),
		cmocka_unit_test(test_rate_limiting_off),
		cmocka_unit_test(test_longest_keys_fit),
		cmocka_unit_test(test_bad_arguments),
		cmocka_unit_test(test_scope_names),
		cmocka_unit_test(test_check_multipliers),
		cmocka_unit_test(test_check_routes),
		cmocka_unit_test(test_check_whitelist),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
