/*
 * handlers.h — every HTTP handler, and the route table that names them.
 * Handlers parse and render only; domain logic lives in its own module.
 */
#ifndef LT_API_HANDLERS_H
#define LT_API_HANDLERS_H

#include <stdbool.h>
#include <stddef.h>

#include "auth/password.h"
#include "http/router.h"

struct lt_req;

/* The route table (api/routes.c): static, in match order. */
const struct lt_route *lt_api_routes(size_t *n);

/* v1.c: the OpenAI-compatible API */
void lt_api_v1_chat(struct lt_req *req);
void lt_api_v1_embeddings(struct lt_req *req);
void lt_api_v1_models(struct lt_req *req);
void lt_api_v1_model_get(struct lt_req *req);

/* tokens.c */
void lt_api_tokens_status(struct lt_req *req);
void lt_api_tokens_quota(struct lt_req *req);
void lt_api_tokens_quota_org(struct lt_req *req);
void lt_api_tokens_consume(struct lt_req *req);
void lt_api_admin_quota_grant(struct lt_req *req);
void lt_api_admin_quota_adjust(struct lt_req *req);

/* providers.c */
void lt_api_provider_chat(struct lt_req *req);
void lt_api_admin_providers(struct lt_req *req);
void lt_api_admin_prices(struct lt_req *req);
void lt_api_admin_features_list(struct lt_req *req);
void lt_api_purchase_create(struct lt_req *req);
void lt_api_purchase_get(struct lt_req *req);
void lt_api_admin_saga_list(struct lt_req *req);
void lt_api_admin_saga_get(struct lt_req *req);
void lt_api_admin_saga_retry(struct lt_req *req);
void lt_api_admin_saga_compensate(struct lt_req *req);
void lt_api_admin_events(struct lt_req *req);
void lt_api_analytics_health(struct lt_req *req);
void lt_api_analytics_usage(struct lt_req *req);
void lt_api_analytics_report(struct lt_req *req);
void lt_api_analytics_anomalies(struct lt_req *req);
void lt_api_analytics_cost(struct lt_req *req);
void lt_api_analytics_user_daily(struct lt_req *req);
void lt_api_admin_feature_set(struct lt_req *req);
void lt_api_admin_provider_reset(struct lt_req *req);

/* ops.c */
void lt_api_healthz(struct lt_req *req);
void lt_api_readyz(struct lt_req *req);
void lt_api_actuator_health(struct lt_req *req);
void lt_api_actuator_liveness(struct lt_req *req);
void lt_api_actuator_readiness(struct lt_req *req);
void lt_api_metrics(struct lt_req *req);
void lt_api_openapi(struct lt_req *req);

/* identity.c */
/* Hash pw inside the password-hash gate (auth/password.h); on a full gate
 * or a failed hash, answers 503 and returns false.  Shared by registration
 * and the admin API. */
bool lt_api_hash_gated(struct lt_req *req, const char *pw, char out[LT_PASSWORD_HASH_LEN]);
void lt_api_register(struct lt_req *req);
void lt_api_login(struct lt_req *req);
void lt_api_jwks(struct lt_req *req);
void lt_api_me(struct lt_req *req);
void lt_api_keys_create(struct lt_req *req);
void lt_api_keys_list(struct lt_req *req);
void lt_api_keys_delete(struct lt_req *req);
void lt_api_keys_validate(struct lt_req *req);

/* admin_identity.c */
void lt_api_admin_user_create(struct lt_req *req);
void lt_api_admin_user_list(struct lt_req *req);
void lt_api_admin_user_get(struct lt_req *req);
void lt_api_admin_user_disable(struct lt_req *req);
void lt_api_admin_user_enable(struct lt_req *req);
void lt_api_admin_user_roles(struct lt_req *req);
void lt_api_admin_user_tier(struct lt_req *req);
void lt_api_admin_org_create(struct lt_req *req);
void lt_api_admin_org_list(struct lt_req *req);
void lt_api_admin_member_add(struct lt_req *req);
void lt_api_admin_member_list(struct lt_req *req);
void lt_api_admin_member_remove(struct lt_req *req);
void lt_api_admin_tier_list(struct lt_req *req);
void lt_api_admin_audit_list(struct lt_req *req);

/* debug.c */
void lt_api_clock_get(struct lt_req *req);
void lt_api_clock_post(struct lt_req *req);
void lt_api_debug_sleep(struct lt_req *req);

#endif
