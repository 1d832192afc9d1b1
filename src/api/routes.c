/*
 * routes.c — the route table: every endpoint leakyd serves, with what it
 * requires.  The OpenAPI document (src/api/openapi.json) must list exactly
 * these (method, path) pairs; tests/unit/test_openapi.c checks it.
 */
#include "api/handlers.h"

#define PUB LT_AUTH_PUBLIC
#define DBG LT_AUTH_DEBUG
#define USR LT_AUTH_USER

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
