/*
 * config.h — leakyd's configuration: one table drives everything.
 *
 * Each row of the table (config.c) names a key: section, name, type, where it
 * lives in struct lt_config, default, bounds, whether SIGHUP may change it,
 * and a one-line help.  The same table parses the INI file, applies
 * command-line and environment overrides, renders the commented sample
 * (`leakyctl config dump`), and is checked against the man page by a test.
 *
 * A struct lt_config is a plain value (fixed-size strings, no pointers), so a
 * snapshot is a copy.  Parsing is pure apart from reading the named file.
 *
 * Errors are reported as "file:line: message" (or "--flag: message",
 * "ENV_VAR: message") in a caller-provided buffer.
 */
#ifndef LT_CONF_CONFIG_H
#define LT_CONF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

#define LT_CFG_STR_MAX 512
#define LT_CFG_ERR_MAX 1024

enum lt_sync_mode { LT_SYNC_OFF, LT_SYNC_NORMAL, LT_SYNC_FULL };

/* [limits] client_key: what identifies the client of the request limit
 * (limit/policy.h).  AUTO takes the first present of key, user, address. */
enum lt_client_key { LT_CLIENT_AUTO, LT_CLIENT_API_KEY, LT_CLIENT_USER, LT_CLIENT_IP };

/* [limits] tier_multipliers, request_routes and whitelist: at most this
 * many characters, so that "name = value" fits one line of the file (inih
 * reads 198 characters a line) and a rendered config always loads back. */
#define LT_CFG_LIMITS_STR_MAX 176
/* A route override's or whitelist entry's path, wildcard included: bounded so
 * that the request-limit key "rq|<client>|<route>" fits LT_BUCKET_KEY_MAX. */
#define LT_CFG_ROUTE_MAX 128

/* Providers and models are named sections, [provider.NAME] and
 * [model.NAME], parsed by their own key tables (lt_config_provider_keys,
 * lt_config_model_keys) into fixed arrays. */
#define LT_CFG_MAX_PROVIDERS 16
#define LT_CFG_MAX_MODELS 64
#define LT_CFG_PROVIDER_NAME_MAX 32 /* [a-z0-9_-], stored lower-case */
#define LT_CFG_MODEL_NAME_MAX 96    /* [A-Za-z0-9._:-] */

enum lt_provider_format { LT_PFMT_OPENAI, LT_PFMT_GEMINI, LT_PFMT_QWEN };
enum lt_model_kind { LT_MODEL_CHAT, LT_MODEL_EMBEDDING };

struct lt_cfg_provider {
	char name[LT_CFG_PROVIDER_NAME_MAX];
	char base_url[LT_CFG_STR_MAX];
	int64_t format;			 /* enum lt_provider_format */
	char credential[LT_CFG_STR_MAX]; /* "none", "env:VAR" or "secret" */
	char ca_file[LT_CFG_STR_MAX];
	char default_model[LT_CFG_MODEL_NAME_MAX];
	bool passthrough_models; /* provider/ANY-ID allowed, billed at the price_* below */
	int64_t price_input, price_cached_input, price_output;
	int64_t connect_timeout_ms;
	int64_t timeout_ms;
	int64_t stream_timeout_ms;
	int64_t retry_attempts;
	int64_t retry_backoff_ms;
	int64_t retry_max_backoff_ms;
	int64_t breaker_window;
	int64_t breaker_min_calls;
	int64_t breaker_failure_pct;
	int64_t breaker_open_ms;
	int64_t breaker_probes;
	int64_t bulkhead;
	int64_t pool_size;
	int64_t max_response;
};

struct lt_cfg_model {
	char name[LT_CFG_MODEL_NAME_MAX];
	char provider[LT_CFG_PROVIDER_NAME_MAX];
	char upstream[128];  /* the provider's model id; "" = the name */
	int64_t kind;	     /* enum lt_model_kind */
	int64_t price_input; /* micro-dollars per 1M tokens */
	int64_t price_cached_input;
	int64_t price_output;
	int64_t context_window; /* tokens */
	int64_t max_output;	/* output cap and default max_tokens */
	int64_t rpm;		/* requests per minute, 0 = no limit */
	int64_t tpm;		/* tokens per minute, 0 = no limit */
};

struct lt_config {
	/* [http] */
	char http_listen[LT_CFG_STR_MAX];
	int64_t http_threads;
	int64_t http_max_inflight;
	int64_t http_max_body;
	int64_t http_max_header;
	int64_t http_request_timeout_ms;
	bool http_keep_alive;
	int64_t http_keep_alive_timeout_ms;
	int64_t http_drain_timeout_ms;
	/* [storage] */
	char storage_data_dir[LT_CFG_STR_MAX];
	int64_t storage_sqlite_synchronous; /* enum lt_sync_mode */
	int64_t storage_busy_timeout_ms;
	int64_t storage_writer_batch;
	int64_t storage_writer_queue;
	int64_t storage_lmdb_map_size;
	int64_t storage_lmdb_sync_interval_ms;
	int64_t storage_checkpoint_interval_ms;
	/* [auth] */
	char auth_issuer[LT_CFG_STR_MAX];
	char auth_audience[LT_CFG_STR_MAX];
	int64_t auth_token_ttl_s;
	int64_t auth_cache_size;
	int64_t auth_hash_concurrency;
	int64_t auth_hash_queue;
	char auth_tiers[LT_CFG_STR_MAX]; /* "NAME:PRIORITY,...", see auth/tiers.h */
	/* [limits]: see limit/policy.h */
	int64_t limits_token_algorithm; /* enum lt_bucket_algo */
	int64_t limits_token_capacity;
	int64_t limits_token_rate;
	int64_t limits_token_period_ms;
	char limits_tier_multipliers[LT_CFG_STR_MAX]; /* "TIER:MULT,..." */
	int64_t limits_request_algorithm;	      /* enum lt_bucket_algo */
	int64_t limits_request_limit;
	int64_t limits_request_window_ms;
	char limits_request_routes[LT_CFG_STR_MAX]; /* "PREFIX=LIMIT,..." */
	char limits_whitelist[LT_CFG_STR_MAX];	    /* "PATH,..." */
	int64_t limits_client_key;		    /* enum lt_client_key */
	int64_t limits_org_capacity;		    /* 0 = no org buckets */
	int64_t limits_org_rate;		    /* 0 = org_capacity per period */
	/* [features] */
	bool features_rate_limiting;
	bool features_quota_enforcement;
	bool features_saga_purchases;
	/* [events]: see events/log.h, events/relay.h */
	int64_t events_segment_bytes;
	int64_t events_retention_hours; /* 0 = forever */
	int64_t events_retention_bytes; /* per topic; 0 = no limit */
	bool events_fsync;
	int64_t events_relay_poll_ms;
	int64_t events_relay_batch;
	int64_t events_outbox_retention_hours;
	/* [analytics]: see analytics/schema.h */
	int64_t analytics_retention_days;
	int64_t analytics_ingest_poll_ms;
	int64_t analytics_ingest_batch;
	int64_t analytics_readers;
	/* [payment]: the payment service the purchase saga calls */
	char payment_base_url[LT_CFG_STR_MAX];
	int64_t payment_timeout_ms;
	int64_t payment_price_per_1m_tokens; /* micro-dollars */
	/* [saga]: see saga/orchestrator.h */
	int64_t saga_wait_ms;
	int64_t saga_workers;
	int64_t saga_recovery_interval_ms;
	int64_t saga_recovery_idle_ms;
	int64_t saga_retry_max_ms;
	/* [log] */
	int64_t log_level; /* enum lt_log_level */
	bool log_access;
	char log_file[LT_CFG_STR_MAX];
	/* [stubs] */
	bool stubs_enabled;
	char stubs_listen[LT_CFG_STR_MAX];
	char stubs_tls_listen[LT_CFG_STR_MAX]; /* "" = no TLS listener */
	char stubs_tls_cert[LT_CFG_STR_MAX];   /* PEM: certificate then key */
	int64_t stubs_threads;
	int64_t stubs_latency_ms;
	int64_t stubs_jitter_ms;
	int64_t stubs_token_delay_ms;
	int64_t stubs_error_rate_pct;
	int64_t stubs_error_status;
	int64_t stubs_retry_after_s;
	int64_t stubs_spike_rate_pct;
	int64_t stubs_spike_ms;
	int64_t stubs_drop_rate_pct;
	int64_t stubs_malformed_rate_pct;
	/* [debug] */
	bool debug_manual_clock;
	bool debug_test_endpoints;

	/* [provider.NAME], [model.NAME]: the first nproviders / nmodels used */
	size_t nproviders;
	struct lt_cfg_provider providers[LT_CFG_MAX_PROVIDERS];
	size_t nmodels;
	struct lt_cfg_model models[LT_CFG_MAX_MODELS];

	char source[LT_CFG_STR_MAX]; /* file it came from, "" for defaults */
};

enum lt_cfg_type { LT_CFG_INT, LT_CFG_SIZE, LT_CFG_BOOL, LT_CFG_ENUM, LT_CFG_STR, LT_CFG_HOSTPORT };

struct lt_config_key {
	const char *section;
	const char *name;
	enum lt_cfg_type type;
	size_t offset;
	const char *def;	    /* default, written as in the file */
	int64_t min, max;	    /* INT and SIZE bounds; STR max length */
	const char *const *choices; /* ENUM: NULL-terminated, index stored */
	bool reloadable;
	const char *help;
	/* Optional, STR keys: a further check after the type's own; false with
	 * a message in why (written without the key name, which is prefixed). */
	bool (*check)(const char *value, char *why, size_t whylen);
};

/* The table, in file order. */
const struct lt_config_key *lt_config_keys(size_t *n);

/* The keys of a [provider.NAME] / [model.NAME] section; offsets are into
 * struct lt_cfg_provider / struct lt_cfg_model.  All are reloadable. */
const struct lt_config_key *lt_config_provider_keys(size_t *n);
const struct lt_config_key *lt_config_model_keys(size_t *n);

/* Lookups in a config (names compared case-insensitively); NULL if absent. */
const struct lt_cfg_provider *lt_config_provider(const struct lt_config *cfg, const char *name);
const struct lt_cfg_model *lt_config_model(const struct lt_config *cfg, const char *name);

/* Fill cfg with every default.  Cannot fail (the defaults are tested). */
void lt_config_defaults(struct lt_config *cfg);

/* Defaults, then the file at path.  LT_ECONFIG with "path:line: msg" in err
 * (LT_CFG_ERR_MAX bytes) on any unknown section or key, duplicate key, bad
 * value or out-of-range number; LT_EIO if the file cannot be read. */
enum lt_err lt_config_load(const char *path, struct lt_config *cfg, char *err);

/* Set one key from text (a flag or environment override); `origin` names
 * the source in the error message, e.g. "--listen". */
enum lt_err lt_config_set(struct lt_config *cfg, const char *section, const char *name,
			  const char *value, const char *origin, char *err);

/* Render a key's current value as it would be written in the file. */
/* obj is the struct lt_config (or, for provider and model keys, the struct
 * lt_cfg_provider / lt_cfg_model) the key's offset is into. */
void lt_config_value_str(const void *obj, const struct lt_config_key *k, char *out, size_t out_len);

/* The commented INI rendering of cfg: every key with its help, bounds and
 * whether it reloads.  Used for `leakyctl config dump` and the sample. */
void lt_config_render(const struct lt_config *cfg, struct lt_buf *out);

/* Called by lt_config_merge_reload for each key that differs. */
typedef void (*lt_config_diff_fn)(void *arg, const struct lt_config_key *k, const char *old_value,
				  const char *new_value, bool applied);

/* Prepare a reload: in `next`, keys that may not be reloaded are reset to
 * their value in `cur`; `fn` is told of every difference and whether it was
 * applied.  Returns the number of differences. */
size_t lt_config_merge_reload(const struct lt_config *cur, struct lt_config *next,
			      lt_config_diff_fn fn, void *arg);

#endif
