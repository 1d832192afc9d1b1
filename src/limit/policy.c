/*
 * policy.c — which buckets apply to a request: the admission plan built
 * from [limits], [features] and [model.NAME] rpm/tpm.  See policy.h.
 *
 * Pure: no I/O, no allocation, no clock, no state; the configuration is
 * only read, so any thread may plan with the config snapshot it holds.
 * The [limits] lists are parsed where they are used (each is at most
 * LT_CFG_LIMITS_STR_MAX characters); the same parser backs the check hooks
 * that config.c runs at load, so a plan only sees lists that passed them
 * (an entry that does not parse anyway is skipped, never trusted).
 *
 * Choices policy.h leaves open, made here:
 *   - "" counts as absent for every fact (a principal's key_id is "" when
 *     it did not come with an API key).
 *   - client_key api_key, user or ip uses that identity when the request
 *     has it, else falls back to the auto order (key, user, address), so a
 *     request without the chosen identity is still limited; with none of
 *     the three there is no request item.  Keys name the kind:
 *     "rq|key:<id>|...", "rq|user:<id>|...", "rq|ip:<address>|...".
 *   - Route classes: the override's PATH as written, or "*" for every
 *     route without an override (one window per client across them).  A
 *     PATH is exact, or a prefix: it ends in "/" and "**" and matches its
 *     stem ("/a") and everything below it ("/a/b", not "/ab").  An exact
 *     PATH beats a prefix; among prefixes the longest wins.
 *   - The token bucket's owner is "user:<id>", else "org:<id>" when the
 *     request has no user; with neither, or no provider, there is no token
 *     item.  The tier multiplier scales capacity and rate; a missing tier
 *     is "-" in the key and has multiplier 1.
 *   - The org bucket uses token_algorithm and token_period_ms; org_rate 0
 *     means org_capacity per period.
 *   - Leaky and token request limits leak (refill) the limit per window.
 *   - GCRA bursts are capacity - 1 (a full capacity may pass at once),
 *     lowered only where (burst + 1) x period / rate would pass the 2^62 ns
 *     bucket.h accepts (a burst that would take 146 years to drain).
 *   - Negative tokens, or a NULL argument, is LT_EINVAL (a caller's bug).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "auth/identity_store.h" /* LT_TIER_MAX */
#include "limit/policy.h"

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_MIN (INT64_C(60000) * NS_PER_MS)
#define MULT_MAX 1000
#define ROUTE_LIMIT_MAX INT64_C(1000000000)
#define GCRA_SPAN_MAX ((__int128)1 << 62)    /* bucket.c: (burst + 1) x T at most */
#define GCRA_BURST_MAX INT64_C(999999999999) /* bucket.h: burst 0..10^12 - 1 */

/* ---- lists: "item,item,..."; blanks (space, tab) around items ignored ---- */

struct span {
	const char *p;
	size_t n;
};

static struct span trim(const char *p, size_t n)
{
	while (n && (p[0] == ' ' || p[0] == '\t'))
		p++, n--;
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	return (struct span){p, n};
}

struct list {
	const char *cur;
	bool done;
};

/* A NULL, empty or blank list has no items; otherwise every comma
 * separates two items, which may be empty (the checks refuse those). */
static void list_init(struct list *l, const char *v)
{
	l->cur = v;
	l->done = !v || trim(v, strlen(v)).n == 0;
}

static bool list_next(struct list *l, struct span *item)
{
	if (l->done)
		return false;
	const char *comma = strchr(l->cur, ',');
	size_t n = comma ? (size_t)(comma - l->cur) : strlen(l->cur);
	*item = trim(l->cur, n);
	if (comma)
		l->cur = comma + 1;
	else
		l->done = true;
	return true;
}

/* Split item at the first sep into trimmed halves; false if there is none. */
static bool split(struct span item, char sep, struct span *a, struct span *b)
{
	const char *at = memchr(item.p, sep, item.n);
	if (!at)
		return false;
	size_t left = (size_t)(at - item.p);
	*a = trim(item.p, left);
	*b = trim(at + 1, item.n - left - 1);
	return true;
}

static bool span_eq(struct span a, struct span b)
{
	return a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

/* A whole number lo..hi (hi < 10^18) in decimal digits, nothing else. */
static bool parse_num(struct span s, int64_t lo, int64_t hi, int64_t *out)
{
	if (s.n == 0)
		return false;
	int64_t v = 0;
	for (size_t i = 0; i < s.n; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return false;
		v = v * 10 + (s.p[i] - '0');
		if (v > hi)
			return false;
	}
	if (v < lo)
		return false;
	*out = v;
	return true;
}

static void say(char *why, size_t why_cap, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say(char *why, size_t why_cap, const char *fmt, ...)
{
	if (!why || !why_cap)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, why_cap, fmt, ap);
	va_end(ap);
}

/* ---- paths: exact, or a prefix (ending in "/" and "**") ---- */

static bool is_prefix_pattern(struct span pat)
{
	return pat.n >= 3 && memcmp(pat.p + pat.n - 3, "/**", 3) == 0;
}

/* A whitelist or route PATH: starts with '/', at most LT_CFG_ROUTE_MAX
 * characters of printable ASCII without blanks, ',' '=' '|' or '*' (but for
 * the final two of a prefix), and no empty segment. */
static bool check_path(struct span pat, char *why, size_t why_cap)
{
	int n = (int)(pat.n > 200 ? 200 : pat.n);
	if (pat.n == 0) {
		say(why, why_cap, "empty path");
		return false;
	}
	if (pat.n > LT_CFG_ROUTE_MAX) {
		say(why, why_cap, "path '%.*s...' is longer than %d characters", 32, pat.p,
		    LT_CFG_ROUTE_MAX);
		return false;
	}
	if (pat.p[0] != '/') {
		say(why, why_cap, "path '%.*s' must start with '/'", n, pat.p);
		return false;
	}
	size_t body = is_prefix_pattern(pat) ? pat.n - 2 : pat.n; /* keep the last '/' */
	for (size_t i = 0; i < body; i++) {
		unsigned char c = (unsigned char)pat.p[i];
		if (c == '*') {
			say(why, why_cap, "path '%.*s': '*' is allowed only as a final /**", n,
			    pat.p);
			return false;
		}
		if (c <= 0x20 || c >= 0x7F || c == ',' || c == '=' || c == '|') {
			say(why, why_cap, "path '%.*s' holds a character not allowed in a path", n,
			    pat.p);
			return false;
		}
		if (c == '/' && i + 1 < pat.n && pat.p[i + 1] == '/') {
			say(why, why_cap, "path '%.*s' has an empty segment (//)", n, pat.p);
			return false;
		}
	}
	return true;
}

/* How specifically pat matches path: -1 if it does not; otherwise larger is
 * more specific: an exact PATH beats the prefix with the same stem, and a
 * longer stem beats a shorter one. */
static long match_rank(struct span pat, const char *path)
{
	size_t len = strlen(path);
	if (is_prefix_pattern(pat)) {
		size_t b = pat.n - 3;
		if (len < b || memcmp(path, pat.p, b) != 0 || (path[b] && path[b] != '/'))
			return -1;
		return (long)(2 * b);
	}
	if (len != pat.n || memcmp(path, pat.p, len) != 0)
		return -1;
	return (long)(2 * pat.n + 1);
}

/* ---- the check hooks ---- */

static bool tier_name_ok(struct span s)
{
	if (s.n == 0 || s.n > LT_TIER_MAX)
		return false;
	for (size_t i = 0; i < s.n; i++) {
		char c = s.p[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return true;
}

/* Is item (the k-th) the same key as an earlier item of the list? keyed by
 * the part before sep (0: the whole item). */
static bool listed_before(const char *v, size_t k, struct span key, char sep)
{
	struct list l;
	struct span it, a, b;
	list_init(&l, v);
	for (size_t i = 0; i < k && list_next(&l, &it); i++) {
		if (sep && !split(it, sep, &a, &b))
			continue;
		if (span_eq(sep ? a : it, key))
			return true;
	}
	return false;
}

bool lt_limit_check_multipliers(const char *v, char *why, size_t why_cap)
{
	struct list l;
	struct span it, name, mult;
	int64_t m;
	list_init(&l, v);
	for (size_t k = 0; list_next(&l, &it); k++) {
		if (it.n == 0) {
			say(why, why_cap, "empty item");
			return false;
		}
		if (!split(it, ':', &name, &mult)) {
			say(why, why_cap, "expected TIER:MULTIPLIER, got '%.*s'", (int)it.n, it.p);
			return false;
		}
		if (!tier_name_ok(name)) {
			say(why, why_cap,
			    "tier name '%.*s' must be 1-32 characters of A-Z, 0-9 or _",
			    (int)name.n, name.p);
			return false;
		}
		if (!parse_num(mult, 1, MULT_MAX, &m)) {
			say(why, why_cap,
			    "multiplier of %.*s must be a whole number 1-%d, got '%.*s'",
			    (int)name.n, name.p, MULT_MAX, (int)mult.n, mult.p);
			return false;
		}
		if (listed_before(v, k, name, ':')) {
			say(why, why_cap, "tier %.*s is listed twice", (int)name.n, name.p);
			return false;
		}
	}
	return true;
}

bool lt_limit_check_routes(const char *v, char *why, size_t why_cap)
{
	struct list l;
	struct span it, path, lim;
	int64_t n;
	list_init(&l, v);
	for (size_t k = 0; list_next(&l, &it); k++) {
		if (it.n == 0) {
			say(why, why_cap, "empty item");
			return false;
		}
		if (!split(it, '=', &path, &lim)) {
			say(why, why_cap, "expected PATH=LIMIT, got '%.*s'", (int)it.n, it.p);
			return false;
		}
		if (!check_path(path, why, why_cap))
			return false;
		if (!parse_num(lim, 1, ROUTE_LIMIT_MAX, &n)) {
			say(why, why_cap, "limit of %.*s must be a whole number 1-%lld, got '%.*s'",
			    (int)path.n, path.p, (long long)ROUTE_LIMIT_MAX, (int)lim.n, lim.p);
			return false;
		}
		if (listed_before(v, k, path, '=')) {
			say(why, why_cap, "route %.*s is listed twice", (int)path.n, path.p);
			return false;
		}
	}
	return true;
}

bool lt_limit_check_whitelist(const char *v, char *why, size_t why_cap)
{
	struct list l;
	struct span it;
	list_init(&l, v);
	for (size_t k = 0; list_next(&l, &it); k++) {
		if (it.n == 0) {
			say(why, why_cap, "empty item");
			return false;
		}
		if (!check_path(it, why, why_cap))
			return false;
		if (listed_before(v, k, it, 0)) {
			say(why, why_cap, "path %.*s is listed twice", (int)it.n, it.p);
			return false;
		}
	}
	return true;
}

/* ---- lookups ---- */

static bool present(const char *s)
{
	return s && *s;
}

int64_t lt_limit_tier_multiplier(const struct lt_config *cfg, const char *tier)
{
	struct list l;
	struct span it, name, mult;
	int64_t m;
	if (!cfg || !present(tier))
		return 1;
	list_init(&l, cfg->limits_tier_multipliers);
	while (list_next(&l, &it))
		if (split(it, ':', &name, &mult) && tier_name_ok(name) &&
		    span_eq(name, (struct span){tier, strlen(tier)}) &&
		    parse_num(mult, 1, MULT_MAX, &m))
			return m;
	return 1;
}

static bool whitelisted(const struct lt_config *cfg, const char *path)
{
	struct list l;
	struct span it;
	list_init(&l, cfg->limits_whitelist);
	while (list_next(&l, &it))
		if (check_path(it, NULL, 0) && match_rank(it, path) >= 0)
			return true;
	return false;
}

/* The route override for path: its PATH (*cls) and limit; false if none. */
static bool route_override(const struct lt_config *cfg, const char *path, struct span *cls,
			   int64_t *limit)
{
	struct list l;
	struct span it, pat, lim;
	long best = -1;
	int64_t n;
	list_init(&l, cfg->limits_request_routes);
	while (list_next(&l, &it)) {
		if (!split(it, '=', &pat, &lim) || !check_path(pat, NULL, 0) ||
		    !parse_num(lim, 1, ROUTE_LIMIT_MAX, &n))
			continue;
		long r = match_rank(pat, path);
		if (r > best) {
			best = r;
			*cls = pat;
			*limit = n;
		}
	}
	return best >= 0;
}

const char *lt_limit_scope_name(enum lt_limit_scope s)
{
	switch (s) {
	case LT_SCOPE_REQUESTS: return "requests";
	case LT_SCOPE_TOKENS: return "tokens";
	case LT_SCOPE_ORG: return "org";
	case LT_SCOPE_MODEL_RPM: return "rpm";
	case LT_SCOPE_MODEL_TPM: return "tpm";
	}
	return "unknown";
}

/* ---- the plan ---- */

/* The GCRA burst for a limit: limit - 1, lowered to what bucket.h accepts
 * for this rate and period. */
static int64_t gcra_burst(int64_t limit, int64_t rate, int64_t period_ns)
{
	int64_t b = limit > 0 ? limit - 1 : 0;
	__int128 max = GCRA_SPAN_MAX * rate / period_ns - 1;
	if (max > GCRA_BURST_MAX)
		max = GCRA_BURST_MAX;
	if (max < 0)
		max = 0;
	return b > max ? (int64_t)max : b;
}

static struct lt_bucket_policy make_policy(int64_t algo, int64_t limit, int64_t rate,
					   int64_t period_ns)
{
	struct lt_bucket_policy p = {
		.algo = (enum lt_bucket_algo)algo,
		.capacity = limit,
		.rate = rate,
		.period_ns = period_ns,
		.burst = 0,
	};
	if (p.algo == LT_ALGO_GCRA)
		p.burst = gcra_burst(limit, rate, period_ns);
	return p;
}

/* Append an item; LT_ETOOBIG if its key does not fit.  The key is
 * formatted from fmt; the policy name from name_fmt (truncated to 47). */
static enum lt_err add(struct lt_limit_plan *out, enum lt_limit_scope scope,
		       struct lt_bucket_policy pol, int64_t cost, const char *name_a,
		       const char *name_b, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));

static enum lt_err add(struct lt_limit_plan *out, enum lt_limit_scope scope,
		       struct lt_bucket_policy pol, int64_t cost, const char *name_a,
		       const char *name_b, const char *fmt, ...)
{
	if (out->n >= LT_ADMIT_MAX)
		return LT_ETOOBIG; /* cannot happen: a plan has at most 5 items */
	struct lt_admit_item *it = &out->items[out->n];
	va_list ap;
	va_start(ap, fmt);
	int len = vsnprintf(it->key, sizeof it->key, fmt, ap);
	va_end(ap);
	if (len < 0 || len > LT_BUCKET_KEY_MAX)
		return LT_ETOOBIG;
	it->policy = pol;
	it->cost = cost;
	out->scope[out->n] = scope;
	char *name = out->name[out->n];
	size_t cap = sizeof out->name[0];
	size_t a = strlen(name_a), b = name_b ? strlen(name_b) : 0;
	if (a > cap - 1)
		a = cap - 1;
	memcpy(name, name_a, a);
	if (b > cap - 1 - a)
		b = cap - 1 - a;
	if (b)
		memcpy(name + a, name_b, b);
	name[a + b] = '\0';
	out->n++;
	return LT_OK;
}

/* The client of the request limit: "key:<id>", "user:<id>" or "ip:<addr>"
 * as kind and id; false when the request has none of them. */
static bool client_of(const struct lt_config *cfg, const struct lt_limit_facts *f,
		      const char **kind, const char **id)
{
	const char *ids[3] = {f->key_id, f->user_id, f->ip};
	static const char *const kinds[3] = {"key", "user", "ip"};
	int want = -1;
	switch ((enum lt_client_key)cfg->limits_client_key) {
	case LT_CLIENT_API_KEY: want = 0; break;
	case LT_CLIENT_USER: want = 1; break;
	case LT_CLIENT_IP: want = 2; break;
	case LT_CLIENT_AUTO: break;
	}
	if (want >= 0 && present(ids[want])) {
		*kind = kinds[want];
		*id = ids[want];
		return true;
	}
	for (int i = 0; i < 3; i++)
		if (present(ids[i])) {
			*kind = kinds[i];
			*id = ids[i];
			return true;
		}
	return false;
}

static enum lt_err plan_requests(const struct lt_config *cfg, const struct lt_limit_facts *f,
				 struct lt_limit_plan *out)
{
	const char *path = present(f->path) ? f->path : NULL;
	if (path && whitelisted(cfg, path)) {
		out->whitelisted = true;
		return LT_OK;
	}
	const char *kind, *id;
	if (!client_of(cfg, f, &kind, &id))
		return LT_OK;
	struct span cls = {"*", 1};
	int64_t limit = cfg->limits_request_limit;
	if (path)
		route_override(cfg, path, &cls, &limit);
	int64_t period = cfg->limits_request_window_ms * NS_PER_MS;
	struct lt_bucket_policy pol =
		make_policy(cfg->limits_request_algorithm, limit, limit, period);
	return add(out, LT_SCOPE_REQUESTS, pol, 1, "requests", NULL, "rq|%s:%s|%.*s", kind, id,
		   (int)cls.n, cls.p);
}

static enum lt_err plan_tokens(const struct lt_config *cfg, const struct lt_limit_facts *f,
			       struct lt_limit_plan *out)
{
	if (!present(f->provider))
		return LT_OK;
	int64_t period = cfg->limits_token_period_ms * NS_PER_MS;
	enum lt_err e = LT_OK;
	const char *owner_kind = present(f->user_id) ? "user" : "org";
	const char *owner = present(f->user_id) ? f->user_id : f->org_id;
	if (present(owner)) {
		int64_t mult = lt_limit_tier_multiplier(cfg, f->tier);
		int64_t cap = cfg->limits_token_capacity * mult;
		int64_t rate = cfg->limits_token_rate * mult;
		struct lt_bucket_policy pol =
			make_policy(cfg->limits_token_algorithm, cap, rate, period);
		e = add(out, LT_SCOPE_TOKENS, pol, f->tokens, "tokens-", f->provider,
			"tb|%s:%s|%s|%s", owner_kind, owner, f->provider,
			present(f->tier) ? f->tier : "-");
		if (e != LT_OK)
			return e;
	}
	if (cfg->limits_org_capacity > 0 && present(f->org_id)) {
		int64_t cap = cfg->limits_org_capacity;
		int64_t rate = cfg->limits_org_rate > 0 ? cfg->limits_org_rate : cap;
		struct lt_bucket_policy pol =
			make_policy(cfg->limits_token_algorithm, cap, rate, period);
		e = add(out, LT_SCOPE_ORG, pol, f->tokens, "org-", f->provider, "ob|%s|%s",
			f->org_id, f->provider);
	}
	return e;
}

static enum lt_err plan_model(const struct lt_config *cfg, const struct lt_limit_facts *f,
			      struct lt_limit_plan *out)
{
	const struct lt_cfg_model *m = present(f->model) ? lt_config_model(cfg, f->model) : NULL;
	if (!m)
		return LT_OK;
	enum lt_err e = LT_OK;
	if (m->rpm > 0) {
		struct lt_bucket_policy pol = make_policy(LT_ALGO_GCRA, m->rpm, m->rpm, NS_PER_MIN);
		e = add(out, LT_SCOPE_MODEL_RPM, pol, 1, "rpm-", m->name, "rpm|%s", m->name);
		if (e != LT_OK)
			return e;
	}
	if (m->tpm > 0) {
		struct lt_bucket_policy pol = make_policy(LT_ALGO_GCRA, m->tpm, m->tpm, NS_PER_MIN);
		e = add(out, LT_SCOPE_MODEL_TPM, pol, f->tokens, "tpm-", m->name, "tpm|%s",
			m->name);
	}
	return e;
}

enum lt_err lt_limit_plan(const struct lt_config *cfg, const struct lt_limit_facts *f,
			  struct lt_limit_plan *out)
{
	if (!out)
		return LT_EINVAL;
	memset(out, 0, sizeof *out);
	if (!cfg || !f || f->tokens < 0)
		return LT_EINVAL;
	if (!cfg->features_rate_limiting)
		return LT_OK;
	enum lt_err e = plan_requests(cfg, f, out);
	if (e == LT_OK)
		e = plan_tokens(cfg, f, out);
	if (e == LT_OK)
		e = plan_model(cfg, f, out);
	if (e != LT_OK) {
		memset(out, 0, sizeof *out); /* never a partial plan */
		return e;
	}
	return LT_OK;
}
