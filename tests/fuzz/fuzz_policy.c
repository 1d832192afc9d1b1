/*
 * fuzz_policy.c — the [limits] list check hooks (lt_limit_check_multipliers,
 * lt_limit_check_routes, lt_limit_check_whitelist) on arbitrary text, and
 * lt_limit_plan with every list they accept.
 *
 * Input: the first byte picks the hook (byte % 3: multipliers, routes,
 * whitelist); the rest, at most VALUE_MAX bytes cut at the first NUL, is the
 * value.  Checks, beyond "no crash and no sanitizer report":
 *   - a rejection fills a non-empty, NUL-terminated reason, and
 *     lt_config_set rejects the same value with a non-empty message;
 *   - an accepted value that the config file can hold (at most
 *     LT_CFG_LIMITS_STR_MAX characters, no control characters, no
 *     leading/trailing space, no ';' first or after a space) is accepted by
 *     lt_config_set too, which runs the same hook;
 *   - with that config, lt_limit_plan for fixed facts (a path taken from the
 *     value, a UUID user, provider "openai", 1 token, the value's first tier)
 *     is LT_OK, every key is NUL-terminated and at most LT_BUCKET_KEY_MAX
 *     bytes, every policy passes lt_bucket_policy_check; a whitelisted path
 *     is reported as such with no request item, an exact route override
 *     names the route class, and a listed tier's multiplier is used;
 *   - lt_limit_plan stays LT_OK with valid keys and policies when the raw
 *     value, accepted or not, is put straight into the config struct
 *     (policy.c skips entries that do not parse, it never trusts them).
 * No state survives a call; nothing is allocated.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "limit/bucket.h"
#include "limit/policy.h"

#include "fuzz_check.h"

#define VALUE_MAX 1024
#define WHY_CAP 384 /* what config.c gives the hooks */
#define USER_ID "0b5e7c1a-3f4d-4e8a-9b2c-6d7e8f9a0b1c"

enum hook { HOOK_MULT, HOOK_ROUTES, HOOK_WHITELIST };

static const char *const hook_name[3] = {"tier_multipliers", "request_routes", "whitelist"};

static bool run_hook(enum hook h, const char *v, char *why, size_t cap)
{
	switch (h) {
	case HOOK_MULT: return lt_limit_check_multipliers(v, why, cap);
	case HOOK_ROUTES: return lt_limit_check_routes(v, why, cap);
	case HOOK_WHITELIST: return lt_limit_check_whitelist(v, why, cap);
	}
	abort();
}

static char *field(struct lt_config *cfg, enum hook h)
{
	switch (h) {
	case HOOK_MULT: return cfg->limits_tier_multipliers;
	case HOOK_ROUTES: return cfg->limits_request_routes;
	case HOOK_WHITELIST: return cfg->limits_whitelist;
	}
	abort();
}

/* Can a [limits] string key hold v at all (config.c's length and INI rules)? */
static bool config_can_hold(const char *v)
{
	size_t n = strlen(v);
	if (n > LT_CFG_LIMITS_STR_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c < 0x20 || c == 0x7F)
			return false;
		if (c == ';' && (i == 0 || v[i - 1] == ' '))
			return false;
	}
	return !(n && (v[0] == ' ' || v[n - 1] == ' '));
}

static size_t skip_blanks(const char *v, size_t i)
{
	while (v[i] == ' ' || v[i] == '\t')
		i++;
	return i;
}

/* The first item's key (before ',' and, if sep, before sep), trimmed, into
 * out (cap bytes, always terminated). */
static void first_key(const char *v, char sep, char *out, size_t cap)
{
	size_t i = skip_blanks(v, 0), n = 0;
	while (v[i] && v[i] != ',' && v[i] != sep && n + 1 < cap)
		out[n++] = v[i++];
	while (n && (out[n - 1] == ' ' || out[n - 1] == '\t'))
		n--;
	out[n] = '\0';
}

/* The request path: the first item's PATH, with a final "/" + "**" made "/x"
 * so a prefix matches it; "/v1/chat/completions" when there is none. */
static void derive_path(enum hook h, const char *v, char *out, size_t cap)
{
	first_key(v, h == HOOK_ROUTES ? '=' : (h == HOOK_MULT ? ':' : 0), out, cap);
	size_t n = strlen(out);
	if (h == HOOK_MULT || out[0] != '/') {
		snprintf(out, cap, "/v1/chat/completions");
		return;
	}
	if (n >= 3 && memcmp(out + n - 3, "/**", 3) == 0) {
		out[n - 2] = 'x';
		out[n - 1] = '\0';
	}
}

static void check_plan(const struct lt_limit_plan *p)
{
	CHECK(p->n <= LT_ADMIT_MAX);
	for (size_t i = 0; i < p->n; i++) {
		const struct lt_admit_item *it = &p->items[i];
		size_t klen = strnlen(it->key, sizeof it->key);
		CHECK(klen < sizeof it->key);
		CHECK(klen > 0 && klen <= LT_BUCKET_KEY_MAX);
		CHECK(memchr(p->name[i], '\0', sizeof p->name[i]) != NULL);
		char why[256];
		enum lt_err e = lt_bucket_policy_check(&it->policy, why, sizeof why);
		if (e != LT_OK)
			fprintf(stderr, "item %zu key %s: policy rejected: %s\n", i, it->key, why);
		CHECK(e == LT_OK);
		CHECK(it->cost >= 0);
	}
}

static const struct lt_admit_item *find_scope(const struct lt_limit_plan *p, enum lt_limit_scope s)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->scope[i] == s)
			return &p->items[i];
	return NULL;
}

/* The multiplier of the first item of an accepted list (1..1000). */
static int64_t first_multiplier(const char *v)
{
	const char *colon = strchr(v, ':');
	CHECK(colon != NULL);
	size_t i = skip_blanks(colon + 1, 0);
	int64_t m = 0;
	while (colon[1 + i] >= '0' && colon[1 + i] <= '9')
		m = m * 10 + (colon[1 + i++] - '0');
	CHECK(m >= 1 && m <= 1000);
	return m;
}

static void plan_accepted(enum hook h, const char *v, const struct lt_config *cfg)
{
	char path[VALUE_MAX + 32], tier[VALUE_MAX + 1];
	derive_path(h, v, path, sizeof path);
	first_key(v, ':', tier, sizeof tier);
	struct lt_limit_facts f = {
		.path = path,
		.user_id = USER_ID,
		.tier = h == HOOK_MULT && tier[0] ? tier : "USER",
		.provider = "openai",
		.tokens = 1,
	};
	struct lt_limit_plan plan;
	enum lt_err e = lt_limit_plan(cfg, &f, &plan);
	CHECK(e == LT_OK);
	check_plan(&plan);
	if (!cfg->features_rate_limiting)
		return;

	const struct lt_admit_item *rq = find_scope(&plan, LT_SCOPE_REQUESTS);
	CHECK(plan.whitelisted == (rq == NULL));
	char first[VALUE_MAX + 1];
	first_key(v, 0, first, sizeof first);
	if (h == HOOK_WHITELIST && first[0]) /* the first entry matches path */
		CHECK(plan.whitelisted);
	if (h == HOOK_ROUTES && rq && strchr(v, '=')) {
		char pat[VALUE_MAX + 1];
		first_key(v, '=', pat, sizeof pat);
		size_t n = strlen(pat);
		bool prefix = n >= 3 && memcmp(pat + n - 3, "/**", 3) == 0;
		if (!prefix) { /* an exact route beats every other override */
			char want[VALUE_MAX + 64];
			snprintf(want, sizeof want, "rq|user:%s|%s", USER_ID, pat);
			if (strcmp(rq->key, want) != 0)
				fprintf(stderr, "key %s, want %s\n", rq->key, want);
			CHECK(strcmp(rq->key, want) == 0);
		}
	}
	if (h == HOOK_MULT && tier[0]) {
		int64_t m = first_multiplier(v);
		CHECK(lt_limit_tier_multiplier(cfg, tier) == m);
		const struct lt_admit_item *tb = find_scope(&plan, LT_SCOPE_TOKENS);
		CHECK(tb != NULL);
		CHECK(tb->policy.capacity == cfg->limits_token_capacity * m);
		CHECK(tb->policy.rate == cfg->limits_token_rate * m);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	enum hook h = (enum hook)(data[0] % 3);
	char v[VALUE_MAX + 1];
	size_t n = size - 1 > VALUE_MAX ? VALUE_MAX : size - 1;
	memcpy(v, data + 1, n);
	v[n] = '\0';

	char why[WHY_CAP];
	memset(why, 'X', sizeof why);
	bool ok = run_hook(h, v, why, sizeof why);

	struct lt_config cfg;
	char err[LT_CFG_ERR_MAX];
	lt_config_defaults(&cfg);
	err[0] = '\0';
	enum lt_err e = lt_config_set(&cfg, "limits", hook_name[h], v, "fuzz", err);
	if (!ok) {
		CHECK(memchr(why, '\0', sizeof why) != NULL);
		CHECK(why[0] != '\0');
		CHECK(e == LT_ECONFIG);
		CHECK(err[0] != '\0');
	} else if (config_can_hold(v)) {
		if (e != LT_OK)
			fprintf(stderr, "hook accepted, lt_config_set refused: %s\n", err);
		CHECK(e == LT_OK);
		CHECK(strcmp(field(&cfg, h), v) == 0);
		plan_accepted(h, v, &cfg);
	} else {
		CHECK(e == LT_ECONFIG && err[0] != '\0');
	}

	/* The raw value straight into the struct: a plan must cope with it. */
	struct lt_config raw;
	lt_config_defaults(&raw);
	char *dst = field(&raw, h);
	size_t m = n < LT_CFG_STR_MAX - 1 ? n : LT_CFG_STR_MAX - 1;
	memcpy(dst, v, m);
	dst[m] = '\0';
	char path[VALUE_MAX + 32];
	derive_path(h, v, path, sizeof path);
	struct lt_limit_facts f = {
		.path = path,
		.user_id = USER_ID,
		.tier = "ADMIN",
		.provider = "openai",
		.tokens = 1,
	};
	struct lt_limit_plan plan;
	CHECK(lt_limit_plan(&raw, &f, &plan) == LT_OK);
	check_plan(&plan);
	return 0;
}
