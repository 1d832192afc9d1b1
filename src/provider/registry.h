/*
 * registry.h — the providers at run time: model resolution, per-provider
 * state (circuit breaker, bulkhead, upstream connection pool, credential,
 * recent errors) and the resilient call.
 *
 * Settings come from the configuration snapshot the caller holds ([provider.
 * NAME], [model.NAME]); state lives here, keyed by provider name, so a
 * SIGHUP that changes a timeout keeps the breaker and the pool, and one that
 * changes base_url, ca_file or pool_size swaps the upstream (calls in flight
 * finish on the old one, which is freed by its last user).
 *
 * The call (lt_provider_call) is the resilience chain of ARCHITECTURE.md:
 * bulkhead (refuse at once when full) → circuit breaker → deadline → retry
 * with backoff and jitter (connect errors, 429, 502, 503, 504; honouring
 * Retry-After; never after the first streamed byte) → upstream client.
 *
 * Ownership: struct lt_registry is embedded in struct lt_server; init/
 * release pair up.  Threads: every function may be called from any worker.
 */
#ifndef LT_PROVIDER_REGISTRY_H
#define LT_PROVIDER_REGISTRY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf/config.h"
#include "provider/breaker.h"
#include "provider/credential.h"
#include "provider/translate.h"
#include "provider/upstream.h"
#include "provider/usage.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/metrics.h"

#define LT_PROVIDER_ERRORS 8				/* recent errors kept per provider */
#define LT_CREDENTIAL_MAX (LT_CREDENTIAL_VALUE_MAX + 1) /* a stored or env key, NUL */

struct lt_upstream_ref; /* a refcounted upstream (registry.c) */

struct lt_provider_error {
	int64_t at_ns; /* wall clock */
	int status;
	char message[200];
};

struct lt_provider_rt {
	char name[LT_CFG_PROVIDER_NAME_MAX];
	pthread_mutex_t lock; /* breaker, errors, upstream swap, credential */
	struct lt_breaker breaker;
	atomic_int inflight;
	struct lt_upstream_ref *up;	    /* current upstream, NULL until first use */
	char credential[LT_CREDENTIAL_MAX]; /* from env or secret, "" if none */
	char credential_err[160];	    /* why a configured credential is missing */
	struct lt_provider_error errors[LT_PROVIDER_ERRORS];
	unsigned nerrors; /* total recorded; ring index = nerrors % LT_PROVIDER_ERRORS */
	uint64_t calls, failures, rejected_open, rejected_full, retries;
	/* metrics series (may be NULL when a family is full) */
	struct lt_series *m_state, *m_inflight, *m_limit, *m_retries, *m_opens;
};

struct lt_anchor_cache {
	char path[LT_CFG_STR_MAX];
	struct lt_tls_anchors *anchors; /* NULL with err set when loading failed */
	char err[200];
};

struct lt_registry {
	pthread_mutex_t lock; /* slots and the anchor cache */
	struct lt_provider_rt *slots[LT_CFG_MAX_PROVIDERS * 2];
	size_t nslots;
	struct lt_anchor_cache anchors[8];
	size_t nanchors;
	const struct lt_clock *clock;
	struct lt_log *log;
	struct lt_metrics *metrics;
	char secrets_dir[LT_CFG_STR_MAX + 16]; /* data_dir/secrets, for "secret" credentials */
	/* metric families */
	struct lt_metric_family *f_state, *f_inflight, *f_limit, *f_retries, *f_opens;
};

/* The families are registered in `metrics`.  secrets_dir may be "" (no
 * secret credentials, e.g. in --stubs-only). */
enum lt_err lt_registry_init(struct lt_registry *r, const struct lt_clock *clock,
			     struct lt_log *log, struct lt_metrics *metrics,
			     const char *secrets_dir);
void lt_registry_release(struct lt_registry *r);

/* Load credentials and report configuration problems (missing env var,
 * unreadable secret, bad CA bundle) as warnings; called at start and after
 * each reload with the new snapshot. */
void lt_registry_configure(struct lt_registry *r, const struct lt_config *cfg);

/* What a model name resolves to.  Points into cfg (valid while the caller
 * holds the snapshot). */
struct lt_target {
	const struct lt_cfg_provider *provider;
	const struct lt_cfg_model *model; /* NULL for a passthrough model */
	enum lt_wire_format format;
	char client_model[LT_CFG_MODEL_NAME_MAX + LT_CFG_PROVIDER_NAME_MAX + 2];
	char upstream_model[128];
	struct lt_price price;
	int64_t max_output;
	int64_t context_window;
	enum lt_model_kind kind;
};

/* A configured model by name, "provider/model" for a configured model of
 * that provider, or "provider/ANY-ID" when the provider has
 * passthrough_models.  LT_ENOTFOUND otherwise. */
enum lt_err lt_registry_resolve(const struct lt_config *cfg, const char *model,
				struct lt_target *out);

/* The state of a provider (created on first use); never NULL for a name
 * that fits, NULL only when LT_CFG_MAX_PROVIDERS * 2 names were seen. */
struct lt_provider_rt *lt_registry_provider(struct lt_registry *r, const char *name);

struct lt_call_req {
	const char *path_suffix; /* appended to the base URL's path */
	const char *body;
	size_t body_len;
	bool stream; /* deadlines: first byte within timeout_ms, whole call stream_timeout_ms */
	/* Streamed 2xx body bytes go here; NULL buffers the body. */
	lt_http_body_fn on_body;
	void *arg;
};

struct lt_call_result {
	enum lt_err err; /* LT_OK when an HTTP response was read in full */
	enum lt_outcome outcome;
	int status;	   /* last upstream status, 0 if none */
	int client_status; /* what the client should get when not 2xx */
	int attempts;
	int64_t retry_after_s; /* from the last upstream answer, -1 if none */
	int64_t started_ns;    /* mono */
	int64_t first_byte_ns; /* mono, 0 if none */
	char *body;	       /* buffered body (owned; lt_call_result_free) */
	size_t body_len;
	char why[256]; /* human explanation when not OK */
};

/* Make the call with the provider's resilience settings.  Always fills res
 * (free it with lt_call_result_free). */
void lt_provider_call(struct lt_registry *r, const struct lt_cfg_provider *p,
		      const struct lt_call_req *rq, struct lt_call_result *res);
void lt_call_result_free(struct lt_call_result *res);

/* JSON object describing each configured provider: state, breaker, bulkhead,
 * pool, last errors.  Appended to out (an lt_buf) as an array. */
struct lt_buf;
void lt_registry_render(struct lt_registry *r, const struct lt_config *cfg, struct lt_buf *out);

/* Refresh the gauges (circuit state, bulkhead) for the configured providers. */
void lt_registry_observe(struct lt_registry *r, const struct lt_config *cfg);

#endif
