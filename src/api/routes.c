/*
 * routes.c — the route table: every endpoint leakyd serves, with what it
 * requires.  The OpenAPI document (src/api/openapi.json) must list exactly
 * these (method, path) pairs; tests/unit/test_openapi.c checks it.
 */
#include "api/handlers.h"

#define PUB LT_AUTH_PUBLIC
#define DBG LT_AUTH_DEBUG
#define USR LT_AUTH_USER
#define ADM LT_AUTH_ADMIN

static const struct lt_route routes[] = {
	{"POST", "/api/v1/auth/register", lt_api_register, PUB, LT_BODY_JSON, true,
	 "Register a user"},
	{"POST", "/api/v1/auth/login", lt_api_login, PUB, LT_BODY_JSON, true, "Log in"},
	{"GET", "/oauth2/jwks", lt_api_jwks, PUB, LT_BODY_NONE, true, "Public signing keys"},
	{"GET", "/api/v1/auth/me", lt_api_me, USR, LT_BODY_NONE, true, "The caller"},
	{"POST", "/api/v1/auth/api-keys", lt_api_keys_create, USR, LT_BODY_JSON, true,
	 "Create an API key"},
	{"GET", "/api/v1/auth/api-keys", lt_api_keys_list, USR, LT_BODY_NONE, true,
	 "List API keys"},
	{"DELETE", "/api/v1/auth/api-keys", lt_api_keys_delete, USR, LT_BODY_NONE, true,
	 "Revoke an API key"},
	{"GET", "/api/v1/auth/api-keys/validate", lt_api_keys_validate, PUB, LT_BODY_NONE, true,
	 "Validate an API key"},
	{"POST", "/admin/v1/users", lt_api_admin_user_create, ADM, LT_BODY_JSON, true,
	 "Create a user"},
	{"GET", "/admin/v1/users", lt_api_admin_user_list, ADM, LT_BODY_NONE, true, "List users"},
	{"GET", "/admin/v1/users/{userId}", lt_api_admin_user_get, ADM, LT_BODY_NONE, true,
	 "Get a user"},
	{"POST", "/admin/v1/users/{userId}/disable", lt_api_admin_user_disable, ADM, LT_BODY_NONE,
	 true, "Disable a user"},
	{"POST", "/admin/v1/users/{userId}/enable", lt_api_admin_user_enable, ADM, LT_BODY_NONE,
	 true, "Enable a user"},
	{"PUT", "/admin/v1/users/{userId}/roles", lt_api_admin_user_roles, ADM, LT_BODY_JSON, true,
	 "Set a user's roles"},
	{"PUT", "/admin/v1/users/{userId}/tier", lt_api_admin_user_tier, ADM, LT_BODY_JSON, true,
	 "Set or clear a user's tier"},
	{"POST", "/admin/v1/orgs", lt_api_admin_org_create, ADM, LT_BODY_JSON, true,
	 "Create an org"},
	{"GET", "/admin/v1/orgs", lt_api_admin_org_list, ADM, LT_BODY_NONE, true, "List orgs"},
	{"POST", "/admin/v1/orgs/{orgId}/members", lt_api_admin_member_add, USR, LT_BODY_JSON, true,
	 "Add or change an org member"},
	{"GET", "/admin/v1/orgs/{orgId}/members", lt_api_admin_member_list, USR, LT_BODY_NONE, true,
	 "List an org's members"},
	{"DELETE", "/admin/v1/orgs/{orgId}/members/{userId}", lt_api_admin_member_remove, USR,
	 LT_BODY_NONE, true, "Remove an org member"},
	{"GET", "/admin/v1/tiers", lt_api_admin_tier_list, ADM, LT_BODY_NONE, true, "List tiers"},
	{"GET", "/admin/v1/audit", lt_api_admin_audit_list, ADM, LT_BODY_NONE, true,
	 "Read the audit trail"},
	{"GET", "/api/v1/tokens/status", lt_api_tokens_status, PUB, LT_BODY_NONE, false,
	 "Token service status"},
	{"GET", "/api/v1/tokens/quota", lt_api_tokens_quota, USR, LT_BODY_NONE, true,
	 "A user's quota for a provider"},
	{"GET", "/api/v1/tokens/quota/org", lt_api_tokens_quota_org, USR, LT_BODY_NONE, true,
	 "An org's quota for a provider"},
	{"POST", "/api/v1/tokens/consume", lt_api_tokens_consume, USR, LT_BODY_JSON, true,
	 "Admit, reserve, call the provider, settle"},
	{"POST", "/admin/v1/quotas/grant", lt_api_admin_quota_grant, ADM, LT_BODY_JSON, true,
	 "Grant tokens to a pool"},
	{"POST", "/admin/v1/quotas/adjust", lt_api_admin_quota_adjust, ADM, LT_BODY_JSON, true,
	 "Adjust a pool, with a reason"},
	{"POST", "/v1/chat/completions", lt_api_v1_chat, USR, LT_BODY_JSON, true,
	 "OpenAI-compatible chat completion (streamed with stream: true)"},
	{"POST", "/v1/embeddings", lt_api_v1_embeddings, USR, LT_BODY_JSON, true,
	 "OpenAI-compatible embeddings"},
	{"GET", "/v1/models", lt_api_v1_models, USR, LT_BODY_NONE, true, "Configured models"},
	{"GET", "/v1/models/{model}", lt_api_v1_model_get, USR, LT_BODY_NONE, true, "One model"},
	{"POST", "/api/v1/{provider}/chat", lt_api_provider_chat, USR, LT_BODY_JSON, true,
	 "Reference chat passthrough"},
	{"GET", "/admin/v1/providers", lt_api_admin_providers, ADM, LT_BODY_NONE, true,
	 "Providers: circuit, bulkhead, pool, last errors"},
	{"POST", "/admin/v1/providers/{provider}/reset", lt_api_admin_provider_reset, ADM,
	 LT_BODY_NONE, true, "Close a provider's circuit breaker"},
	{"GET", "/admin/v1/prices", lt_api_admin_prices, ADM, LT_BODY_NONE, true, "Model prices"},
	{"GET", "/healthz", lt_api_healthz, PUB, LT_BODY_NONE, false, "Liveness", true},
	{"GET", "/readyz", lt_api_readyz, PUB, LT_BODY_NONE, false, "Readiness with reasons", true},
	{"GET", "/actuator/health", lt_api_actuator_health, PUB, LT_BODY_NONE, false,
	 "Actuator health", true},
	{"GET", "/actuator/health/liveness", lt_api_actuator_liveness, PUB, LT_BODY_NONE, false,
	 "Actuator liveness", true},
	{"GET", "/actuator/health/readiness", lt_api_actuator_readiness, PUB, LT_BODY_NONE, false,
	 "Actuator readiness", true},
	{"GET", "/metrics", lt_api_metrics, PUB, LT_BODY_NONE, false, "Prometheus metrics"},
	{"GET", "/actuator/prometheus", lt_api_metrics, PUB, LT_BODY_NONE, false,
	 "Prometheus metrics"},
	{"GET", "/openapi.json", lt_api_openapi, PUB, LT_BODY_NONE, false,
	 "This API as OpenAPI 3.1"},
	{"GET", "/admin/v1/clock", lt_api_clock_get, DBG, LT_BODY_NONE, false, "Read the clock"},
	{"POST", "/admin/v1/clock", lt_api_clock_post, DBG, LT_BODY_JSON, false,
	 "Move the manual clock"},
	{"POST", "/admin/v1/debug/sleep", lt_api_debug_sleep, DBG, LT_BODY_NONE, false,
	 "Hold a worker (test_endpoints only)"},
};

const struct lt_route *lt_api_routes(size_t *n)
{
	*n = sizeof routes / sizeof routes[0];
	return routes;
}
