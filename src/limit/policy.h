/*
 * policy.h — which buckets apply to a request, from the configuration
 * ([limits] and [model.NAME] rpm/tpm): pure, no I/O.
 *
 * lt_limit_plan turns the facts of one request into the list of admission
 * items (key, policy, cost) that bucket_store.h admits atomically:
 *
 *   request limit   "rq|<client>|<route-class>"  FIXED (default) window per
 *                   client: [limits] request_limit per request_window_ms,
 *                   or a route override (request_routes, longest prefix
 *                   wins).  Whitelisted paths get no item at all.
 *   token bucket    "tb|<owner>|<provider>|<tier>" per (user or org,
 *                   provider): [limits] token_capacity / token_rate per
 *                   token_period_ms × the tier's multiplier, algorithm
 *                   token_algorithm (leaky by default).  The tier is in the
 *                   key so a tier change starts a fresh bucket instead of
 *                   showing a negative remaining.  cost = tokens.
 *   org bucket      "ob|<org>|<provider>" when [limits] org_capacity > 0 and
 *                   the request spends for an org.
 *   model RPM/TPM   "rpm|<model>" cost 1 and "tpm|<model>" cost = tokens,
 *                   per minute (GCRA with burst = the limit − 1, so a
 *                   minute's allowance may be used at once), when the
 *                   model's rpm / tpm are > 0.
 *
 * Client key strategy ([limits] client_key): api_key (the key id), user
 * (the user id), ip (the address without the port), auto (the first
 * present of those, in that order).
 *
 * Keys are at most LT_BUCKET_KEY_MAX bytes; ids are UUIDs and names are
 * bounded by the config, so they always fit (asserted by the tests).
 */
#ifndef LT_LIMIT_POLICY_H
#define LT_LIMIT_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"
#include "limit/bucket_store.h"
#include "util/err.h"

struct lt_limit_facts {
	const char *path;     /* request path, for whitelist and route overrides */
	const char *key_id;   /* API key id, or NULL */
	const char *user_id;  /* authenticated user, or NULL */
	const char *ip;	      /* client address without port, or NULL */
	const char *tier;     /* the principal's tier ("USER", "ADMIN", ...), or NULL */
	const char *org_id;   /* spending for this org, or NULL */
	const char *provider; /* lower-case provider, or NULL when no tokens are spent */
	const char *model;    /* configured model name, or NULL */
	int64_t tokens;	      /* tokens the request will spend (estimate), 0 if none */
};

/* What each item is, for headers and metrics. */
enum lt_limit_scope {
	LT_SCOPE_REQUESTS,
	LT_SCOPE_TOKENS,
	LT_SCOPE_ORG,
	LT_SCOPE_MODEL_RPM,
	LT_SCOPE_MODEL_TPM
};
const char *lt_limit_scope_name(enum lt_limit_scope s); /* "requests", "tokens", ... */

struct lt_limit_plan {
	struct lt_admit_item items[LT_ADMIT_MAX];
	enum lt_limit_scope scope[LT_ADMIT_MAX];
	char name[LT_ADMIT_MAX][48]; /* policy name for RateLimit-Policy, e.g. "tokens-openai" */
	size_t n;
	bool whitelisted; /* the path is exempt from request limits */
};

/* Build the plan for one request.  LT_OK (n may be 0); LT_ETOOBIG if a key
 * would not fit (a bug: the tests show it cannot happen with valid ids). */
enum lt_err lt_limit_plan(const struct lt_config *cfg, const struct lt_limit_facts *f,
			  struct lt_limit_plan *out);

/* Validate the [limits] string keys (for config.c's check hooks):
 * "TIER:MULT,..." multipliers (1..1000), "PREFIX=LIMIT,..." route
 * overrides (a path that is exact, or ends in a "/" followed by two
 * asterisks to match everything below it; limit 1..10^9), "PATH,..."
 * whitelist entries (the same path syntax). */
bool lt_limit_check_multipliers(const char *v, char *why, size_t why_cap);
bool lt_limit_check_routes(const char *v, char *why, size_t why_cap);
bool lt_limit_check_whitelist(const char *v, char *why, size_t why_cap);

/* The multiplier of a tier (1 when the tier is not listed). */
int64_t lt_limit_tier_multiplier(const struct lt_config *cfg, const char *tier);

#endif
