/*
 * config.c — the configuration table, INI parsing (inih) and rendering.
 * See config.h.  Adding a key: one field in struct lt_config, one row here,
 * one entry in man/leakyd.conf.5 and etc/leakyd.conf (a test checks both).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/tiers.h"
#include "conf/config.h"
#include "limit/bucket.h"
#include "limit/policy.h"
#include "provider/upstream.h"

static const char *const sync_choices[] = {"off", "normal", "full", NULL};
static const char *const level_choices[] = {"debug", "info", "warn", "error", NULL};
static const char *const format_choices[] = {"openai", "gemini", "qwen", NULL};
static const char *const kind_choices[] = {"chat", "embedding", NULL};
/* In the order of enum lt_bucket_algo and enum lt_client_key. */
static const char *const algo_choices[] = {"leaky", "token", "fixed", "gcra", NULL};
static const char *const client_key_choices[] = {"auto", "api_key", "user", "ip", NULL};
_Static_assert(LT_ALGO_LEAKY == 0 && LT_ALGO_TOKEN == 1 && LT_ALGO_FIXED == 2 && LT_ALGO_GCRA == 3,
	       "algo_choices follows enum lt_bucket_algo");
_Static_assert(LT_CLIENT_AUTO == 0 && LT_CLIENT_API_KEY == 1 && LT_CLIENT_USER == 2 &&
		       LT_CLIENT_IP == 3,
	       "client_key_choices follows enum lt_client_key");

static bool check_tiers(const char *value, char *why, size_t whylen)
{
	struct lt_tiers t;
	return lt_tiers_parse(value, &t, why, whylen) == LT_OK;
}

static bool check_url(const char *value, char *why, size_t whylen)
{
	struct lt_url u;
	return lt_url_parse(value, &u, why, whylen) == LT_OK;
}

static bool check_credential(const char *value, char *why, size_t whylen)
{
	if (!strcmp(value, "none") || !strcmp(value, "secret"))
		return true;
	if (!strncmp(value, "env:", 4) && value[4]) {
		for (const char *p = value + 4; *p; p++)
			if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			      (*p >= '0' && *p <= '9') || *p == '_')) {
				snprintf(why, whylen, "invalid environment variable name in '%s'",
					 value);
				return false;
			}
		return true;
	}
	snprintf(why, whylen, "expected none, secret or env:VARIABLE, got '%s'", value);
	return false;
}

static bool parse_hostport(const char *v, char *why, size_t whylen);
static bool check_hostport_or_empty(const char *value, char *why, size_t whylen);

#define OFF(f) offsetof(struct lt_config, f)
#define KIB INT64_C(1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

static const struct lt_config_key keys[] = {
	{"http", "listen", LT_CFG_HOSTPORT, OFF(http_listen), "127.0.0.1:8080", 0, 0, NULL, false,
	 "Address and port of the API listener (IPv4-ADDRESS:PORT or localhost:PORT; port 0 picks "
	 "a free one)."},
	{"http", "threads", LT_CFG_INT, OFF(http_threads), "128", 2, 4096, NULL, false,
	 "Worker threads. Each open keep-alive connection holds one: size for peak connections."},
	{"http", "max_inflight", LT_CFG_INT, OFF(http_max_inflight), "512", 1, 100000, NULL, true,
	 "Requests handled at once; more are answered 503 with Retry-After instead of queueing."},
	{"http", "max_body", LT_CFG_SIZE, OFF(http_max_body), "1M", 1 * KIB, 64 * MIB, NULL, true,
	 "Largest request body accepted (bytes, K/M/G suffixes); larger ones get 413."},
	{"http", "max_header", LT_CFG_SIZE, OFF(http_max_header), "16K", 1 * KIB, 1 * MIB, NULL,
	 false, "Largest request line plus headers (bytes); larger requests get 431."},
	{"http", "request_timeout_ms", LT_CFG_INT, OFF(http_request_timeout_ms), "30000", 100,
	 3600000, NULL, false,
	 "Time allowed to read a request and write its response (milliseconds)."},
	{"http", "keep_alive", LT_CFG_BOOL, OFF(http_keep_alive), "yes", 0, 0, NULL, false,
	 "Keep connections open between requests."},
	{"http", "keep_alive_timeout_ms", LT_CFG_INT, OFF(http_keep_alive_timeout_ms), "5000", 0,
	 600000, NULL, false,
	 "How long an idle keep-alive connection may hold its worker (milliseconds)."},
	{"http", "drain_timeout_ms", LT_CFG_INT, OFF(http_drain_timeout_ms), "10000", 0, 600000,
	 NULL, true, "On SIGTERM, how long in-flight requests may take to finish (milliseconds)."},

	{"storage", "data_dir", LT_CFG_STR, OFF(storage_data_dir), "./var", 1, LT_CFG_STR_MAX - 64,
	 NULL, false, "Directory holding leaky.db, buckets/, events/ and secrets/ (created 0700)."},
	{"storage", "sqlite_synchronous", LT_CFG_ENUM, OFF(storage_sqlite_synchronous), "normal", 0,
	 0, sync_choices, false,
	 "SQLite synchronous mode for leaky.db (off, normal, full). normal is durable in WAL "
	 "except on power loss."},
	{"storage", "busy_timeout_ms", LT_CFG_INT, OFF(storage_busy_timeout_ms), "5000", 0, 600000,
	 NULL, false,
	 "How long SQLite waits for a lock held by another process, e.g. leakyctl (milliseconds)."},
	{"storage", "writer_batch", LT_CFG_INT, OFF(storage_writer_batch), "256", 1, 65536, NULL,
	 false, "Most writes the writer thread commits in one transaction (group commit)."},
	{"storage", "writer_queue", LT_CFG_INT, OFF(storage_writer_queue), "8192", 16, 1048576,
	 NULL, false, "Writes that may wait for the writer; more are refused with 503."},
	{"storage", "lmdb_map_size", LT_CFG_SIZE, OFF(storage_lmdb_map_size), "256M", 1 * MIB,
	 1024 * GIB, NULL, false,
	 "Size of the LMDB map holding rate-limit buckets (bytes, K/M/G suffixes)."},
	{"storage", "lmdb_sync_interval_ms", LT_CFG_INT, OFF(storage_lmdb_sync_interval_ms), "1000",
	 10, 3600000, NULL, true, "How often LMDB bucket state is flushed to disk (milliseconds)."},
	{"storage", "checkpoint_interval_ms", LT_CFG_INT, OFF(storage_checkpoint_interval_ms),
	 "30000", 100, 3600000, NULL, true,
	 "How often the SQLite WAL is checkpointed in the background (milliseconds)."},

	{"auth", "issuer", LT_CFG_STR, OFF(auth_issuer), "leaky-tokens-auth", 1, 128, NULL, false,
	 "JWT issuer (iss) written into tokens and required when verifying them."},
	{"auth", "audience", LT_CFG_STR, OFF(auth_audience), "leaky-tokens", 1, 128, NULL, false,
	 "JWT audience (aud) written into tokens and required when verifying them."},
	{"auth", "token_ttl_s", LT_CFG_INT, OFF(auth_token_ttl_s), "3600", 60, 604800, NULL, false,
	 "Lifetime of tokens issued at login and registration (seconds)."},
	{"auth", "cache_size", LT_CFG_INT, OFF(auth_cache_size), "4096", 8, 1048576, NULL, false,
	 "Verified tokens, and separately API keys, remembered so they are checked once."},
	{"auth", "hash_concurrency", LT_CFG_INT, OFF(auth_hash_concurrency), "2", 1, 64, NULL,
	 false, "Password hashes computed at once (each takes 64 MiB and about 80 ms)."},
	{"auth", "hash_queue", LT_CFG_INT, OFF(auth_hash_queue), "32", 0, 4096, NULL, false,
	 "Logins that may wait for a hash slot; more are answered 503 at once."},
	{"auth", "tiers", LT_CFG_STR, OFF(auth_tiers), LT_TIERS_DEFAULT, 1, LT_CFG_STR_MAX - 1,
	 NULL, false,
	 "Tiers and their priorities (NAME:PRIORITY,...); a user's tier is its explicit tier, else "
	 "the highest-priority tier named after one of its roles.",
	 check_tiers},

	{"limits", "token_algorithm", LT_CFG_ENUM, OFF(limits_token_algorithm), "leaky", 0, 0,
	 algo_choices, true,
	 "Algorithm of the token bucket per user (or org) and provider: leaky, token, fixed or "
	 "gcra (the reference: leaky)."},
	{"limits", "token_capacity", LT_CFG_INT, OFF(limits_token_capacity), "1000", 1,
	 INT64_C(1000000000), NULL, true,
	 "Tokens the bucket holds before the tier multiplier: the most one request may spend, "
	 "and the burst (the reference: 1000)."},
	{"limits", "token_rate", LT_CFG_INT, OFF(limits_token_rate), "10", 1, INT64_C(1000000000),
	 NULL, true,
	 "Tokens the bucket leaks (or refills) per token_period_ms, before the tier multiplier "
	 "(the reference: 10)."},
	{"limits", "token_period_ms", LT_CFG_INT, OFF(limits_token_period_ms), "1000", 1, 86400000,
	 NULL, true,
	 "Period of token_rate and org_rate, and the window of the fixed algorithm "
	 "(milliseconds; the reference: 1000)."},
	{"limits", "tier_multipliers", LT_CFG_STR, OFF(limits_tier_multipliers), "USER:1,ADMIN:2",
	 0, LT_CFG_LIMITS_STR_MAX, NULL, true,
	 "TIER:MULTIPLIER,... (1-1000) scaling token_capacity and token_rate; unlisted tiers get "
	 "1 (the reference: USER:1,ADMIN:2).",
	 lt_limit_check_multipliers},
	{"limits", "request_algorithm", LT_CFG_ENUM, OFF(limits_request_algorithm), "fixed", 0, 0,
	 algo_choices, true,
	 "Algorithm of the request limit per client: leaky, token, fixed or gcra (the reference: "
	 "fixed)."},
	{"limits", "request_limit", LT_CFG_INT, OFF(limits_request_limit), "120", 1,
	 INT64_C(1000000000), NULL, true,
	 "Requests a client may make per request_window_ms on routes without an override "
	 "(the reference: 120)."},
	{"limits", "request_window_ms", LT_CFG_INT, OFF(limits_request_window_ms), "60000", 1,
	 86400000, NULL, true,
	 "Window of the request limits (milliseconds; the reference: 60000)."},
	{"limits", "request_routes", LT_CFG_STR, OFF(limits_request_routes),
	 "/api/v1/tokens/**=200", 0, LT_CFG_LIMITS_STR_MAX, NULL, true,
	 "Route overrides PATH=LIMIT,... (PATH exact or ending in /**, at most 128 characters; "
	 "LIMIT 1-10^9); the longest match wins.",
	 lt_limit_check_routes},
	{"limits", "whitelist", LT_CFG_STR, OFF(limits_whitelist),
	 "/actuator/**,/healthz,/readyz,/metrics,/openapi.json", 0, LT_CFG_LIMITS_STR_MAX, NULL,
	 true, "Paths exempt from the request limits (PATH,...; each exact or ending in /**).",
	 lt_limit_check_whitelist},
	{"limits", "client_key", LT_CFG_ENUM, OFF(limits_client_key), "auto", 0, 0,
	 client_key_choices, true,
	 "Who a request limit counts: api_key, user, ip (address without port), or auto (the "
	 "first present of those)."},
	{"limits", "org_capacity", LT_CFG_INT, OFF(limits_org_capacity), "0", 0,
	 INT64_C(1000000000000), NULL, true,
	 "Tokens of a bucket per org and provider shared by its members; 0 means no org "
	 "buckets."},
	{"limits", "org_rate", LT_CFG_INT, OFF(limits_org_rate), "0", 0, INT64_C(1000000000000),
	 NULL, true,
	 "Tokens the org bucket leaks (or refills) per token_period_ms; 0 means "
	 "org_capacity."},

	{"features", "rate_limiting", LT_CFG_BOOL, OFF(features_rate_limiting), "yes", 0, 0, NULL,
	 true, "Apply the [limits] buckets; no means no request is rate limited."},
	{"features", "quota_enforcement", LT_CFG_BOOL, OFF(features_quota_enforcement), "yes", 0, 0,
	 NULL, true, "Refuse spending beyond a token pool's balance."},
	{"features", "saga_purchases", LT_CFG_BOOL, OFF(features_saga_purchases), "yes", 0, 0, NULL,
	 true, "Serve POST /api/v1/tokens/purchase; no answers 503."},

	{"events", "segment_bytes", LT_CFG_SIZE, OFF(events_segment_bytes), "64M", 64 * KIB,
	 1 * GIB, NULL, false, "Size past which a topic's event log starts a new segment file."},
	{"events", "retention_hours", LT_CFG_INT, OFF(events_retention_hours), "168", 0, 87600,
	 NULL, true,
	 "Delete a topic's oldest segments once their newest event is older; 0 keeps them."},
	{"events", "retention_bytes", LT_CFG_SIZE, OFF(events_retention_bytes), "1G", 0,
	 INT64_C(1) << 50, NULL, true,
	 "Delete a topic's oldest segments while the topic is larger; 0 means no limit."},
	{"events", "fsync", LT_CFG_BOOL, OFF(events_fsync), "yes", 0, 0, NULL, false,
	 "fdatasync every appended batch before it counts as published (no only for tests)."},
	{"events", "relay_poll_ms", LT_CFG_INT, OFF(events_relay_poll_ms), "200", 1, 60000, NULL,
	 false, "Longest time a committed outbox row waits for the relay when no commit wakes it."},
	{"events", "relay_batch", LT_CFG_INT, OFF(events_relay_batch), "512", 1, 4096, NULL, false,
	 "Outbox rows the relay appends per batch (one fsync each)."},
	{"events", "outbox_retention_hours", LT_CFG_INT, OFF(events_outbox_retention_hours), "24",
	 1, 87600, NULL, true, "Published outbox rows are deleted after this long."},

	{"analytics", "retention_days", LT_CFG_INT, OFF(analytics_retention_days), "90", 1, 36600,
	 NULL, true,
	 "Days of per-event usage tables kept in analytics.db (whole day tables are dropped)."},
	{"analytics", "ingest_poll_ms", LT_CFG_INT, OFF(analytics_ingest_poll_ms), "200", 1, 60000,
	 NULL, false, "Longest time a usage event waits before the analytics ingest reads it."},
	{"analytics", "ingest_batch", LT_CFG_INT, OFF(analytics_ingest_batch), "1000", 1, 4096,
	 NULL, false, "Usage events appended to analytics.db per transaction."},
	{"analytics", "readers", LT_CFG_INT, OFF(analytics_readers), "4", 1, 64, NULL, false,
	 "Read connections to analytics.db for the analytics queries."},

	{"payment", "base_url", LT_CFG_STR, OFF(payment_base_url),
	 "http://127.0.0.1:8090/payment/v1", 0, LT_CFG_STR_MAX - 1, NULL, true,
	 "The payment service of the purchase saga (authorize, capture, release)."},
	{"payment", "timeout_ms", LT_CFG_INT, OFF(payment_timeout_ms), "2000", 1, 600000, NULL,
	 true, "Deadline of one call to the payment service."},
	{"payment", "price_per_1m_tokens", LT_CFG_INT, OFF(payment_price_per_1m_tokens), "2000000",
	 0, INT64_C(1000000000000), NULL, true,
	 "What a purchase costs per 1M tokens, in micro-dollars (rounded up per purchase)."},

	{"saga", "wait_ms", LT_CFG_INT, OFF(saga_wait_ms), "2000", 0, 60000, NULL, true,
	 "How long POST /api/v1/tokens/purchase waits for its saga before answering 202."},
	{"saga", "workers", LT_CFG_INT, OFF(saga_workers), "4", 1, 64, NULL, false,
	 "Threads that run sagas."},
	{"saga", "recovery_interval_ms", LT_CFG_INT, OFF(saga_recovery_interval_ms), "60000", 100,
	 86400000, NULL, true, "How often unfinished sagas are looked for (the reference: 60 s)."},
	{"saga", "recovery_idle_ms", LT_CFG_INT, OFF(saga_recovery_idle_ms), "600000", 0, 86400000,
	 NULL, true,
	 "A saga not final and untouched this long is resumed or compensated (the reference: 10 "
	 "min)."},
	{"saga", "retry_max_ms", LT_CFG_INT, OFF(saga_retry_max_ms), "30000", 10, 3600000, NULL,
	 true, "Longest backoff between retries of a failing step or compensation."},

	{"log", "level", LT_CFG_ENUM, OFF(log_level), "info", 0, 0, level_choices, true,
	 "Least severe level written (debug, info, warn, error)."},
	{"log", "access", LT_CFG_BOOL, OFF(log_access), "yes", 0, 0, NULL, true,
	 "Write one line per HTTP request."},
	{"log", "file", LT_CFG_STR, OFF(log_file), "", 0, LT_CFG_STR_MAX - 1, NULL, false,
	 "Append log lines to this file; empty means standard error."},

	{"stubs", "enabled", LT_CFG_BOOL, OFF(stubs_enabled), "no", 0, 0, NULL, false,
	 "Serve the built-in provider stubs on their own listener."},
	{"stubs", "listen", LT_CFG_HOSTPORT, OFF(stubs_listen), "127.0.0.1:8090", 0, 0, NULL, false,
	 "Address and port of the provider stubs listener."},
	{"stubs", "tls_listen", LT_CFG_STR, OFF(stubs_tls_listen), "", 0, 255, NULL, false,
	 "Also serve the stubs over HTTPS on this HOST:PORT (needs tls_cert); empty means no.",
	 check_hostport_or_empty},
	{"stubs", "tls_cert", LT_CFG_STR, OFF(stubs_tls_cert), "", 0, LT_CFG_STR_MAX - 1, NULL,
	 false, "PEM file with the stubs' TLS certificate followed by its private key."},
	{"stubs", "threads", LT_CFG_INT, OFF(stubs_threads), "128", 2, 4096, NULL, false,
	 "Worker threads of the stubs listener (one per open connection)."},
	{"stubs", "latency_ms", LT_CFG_INT, OFF(stubs_latency_ms), "0", 0, 600000, NULL, true,
	 "Fixed delay before each stub answer (milliseconds)."},
	{"stubs", "jitter_ms", LT_CFG_INT, OFF(stubs_jitter_ms), "0", 0, 600000, NULL, true,
	 "Random extra delay, uniform in 0..jitter_ms, added to latency_ms."},
	{"stubs", "token_delay_ms", LT_CFG_INT, OFF(stubs_token_delay_ms), "0", 0, 60000, NULL,
	 true, "Delay between streamed tokens (milliseconds)."},
	{"stubs", "error_rate_pct", LT_CFG_INT, OFF(stubs_error_rate_pct), "0", 0, 100, NULL, true,
	 "Share of stub calls answered with error_status (percent)."},
	{"stubs", "error_status", LT_CFG_INT, OFF(stubs_error_status), "503", 400, 599, NULL, true,
	 "Status of injected errors (429 and 503 carry Retry-After)."},
	{"stubs", "retry_after_s", LT_CFG_INT, OFF(stubs_retry_after_s), "1", 0, 3600, NULL, true,
	 "Retry-After sent with injected 429 and 503 answers (seconds)."},
	{"stubs", "spike_rate_pct", LT_CFG_INT, OFF(stubs_spike_rate_pct), "0", 0, 100, NULL, true,
	 "Share of stub calls delayed by a latency spike (percent)."},
	{"stubs", "spike_ms", LT_CFG_INT, OFF(stubs_spike_ms), "2000", 0, 600000, NULL, true,
	 "Length of a latency spike (milliseconds)."},
	{"stubs", "drop_rate_pct", LT_CFG_INT, OFF(stubs_drop_rate_pct), "0", 0, 100, NULL, true,
	 "Share of stub calls whose connection is dropped mid-response (percent)."},
	{"stubs", "malformed_rate_pct", LT_CFG_INT, OFF(stubs_malformed_rate_pct), "0", 0, 100,
	 NULL, true, "Share of stub calls answered with a malformed body (percent)."},

	{"debug", "manual_clock", LT_CFG_BOOL, OFF(debug_manual_clock), "no", 0, 0, NULL, false,
	 "Freeze time and let POST /admin/v1/clock move it. For tests only; never in production."},
	{"debug", "test_endpoints", LT_CFG_BOOL, OFF(debug_test_endpoints), "no", 0, 0, NULL, false,
	 "Serve /admin/v1/debug/* endpoints to loopback clients. For tests only."},
};

#define POFF(f) offsetof(struct lt_cfg_provider, f)
static const struct lt_config_key provider_keys[] = {
	{"provider", "base_url", LT_CFG_STR, POFF(base_url), "", 1, LT_CFG_STR_MAX - 1, NULL, true,
	 "Base URL of the provider's API (http:// or https://); paths are appended to it.",
	 check_url},
	{"provider", "format", LT_CFG_ENUM, POFF(format), "openai", 0, 0, format_choices, true,
	 "Wire format the provider speaks (openai, gemini, qwen)."},
	{"provider", "credential", LT_CFG_STR, POFF(credential), "none", 1, 128, NULL, true,
	 "Where the API key comes from: none, env:VARIABLE, or secret (set with leakyctl "
	 "provider set-credential; stored encrypted under secrets/).",
	 check_credential},
	{"provider", "ca_file", LT_CFG_STR, POFF(ca_file), "/etc/ssl/certs/ca-certificates.crt", 1,
	 LT_CFG_STR_MAX - 1, NULL, true,
	 "PEM bundle of certificate authorities trusted for https:// base URLs."},
	{"provider", "default_model", LT_CFG_STR, POFF(default_model), "", 0,
	 LT_CFG_MODEL_NAME_MAX - 1, NULL, true,
	 "Model used by POST /api/v1/PROVIDER/chat (a [model.NAME] of this provider)."},
	{"provider", "passthrough_models", LT_CFG_BOOL, POFF(passthrough_models), "no", 0, 0, NULL,
	 true, "Accept PROVIDER/MODEL-ID for models not configured, billed at the price_* below."},
	{"provider", "price_input", LT_CFG_INT, POFF(price_input), "0", 0, INT64_C(1000000000000),
	 NULL, true, "Passthrough models: micro-dollars per 1M input tokens."},
	{"provider", "price_cached_input", LT_CFG_INT, POFF(price_cached_input), "0", 0,
	 INT64_C(1000000000000), NULL, true,
	 "Passthrough models: micro-dollars per 1M cached input tokens."},
	{"provider", "price_output", LT_CFG_INT, POFF(price_output), "0", 0, INT64_C(1000000000000),
	 NULL, true, "Passthrough models: micro-dollars per 1M output tokens."},
	{"provider", "connect_timeout_ms", LT_CFG_INT, POFF(connect_timeout_ms), "1000", 10, 60000,
	 NULL, true, "Time allowed to connect (and finish the TLS handshake) (milliseconds)."},
	{"provider", "timeout_ms", LT_CFG_INT, POFF(timeout_ms), "2000", 10, 3600000, NULL, true,
	 "Deadline of a whole non-streamed call, retries included; past it the client gets 504. "
	 "Streamed calls must send their first byte within it."},
	{"provider", "stream_timeout_ms", LT_CFG_INT, POFF(stream_timeout_ms), "600000", 10,
	 86400000, NULL, true, "Deadline of a whole streamed call (milliseconds)."},
	{"provider", "retry_attempts", LT_CFG_INT, POFF(retry_attempts), "3", 1, 10, NULL, true,
	 "Attempts per call, the first included, for connect errors and 429, 502, 503, 504."},
	{"provider", "retry_backoff_ms", LT_CFG_INT, POFF(retry_backoff_ms), "250", 1, 60000, NULL,
	 true, "First retry backoff; doubles per retry, with jitter (milliseconds)."},
	{"provider", "retry_max_backoff_ms", LT_CFG_INT, POFF(retry_max_backoff_ms), "2000", 1,
	 600000, NULL, true, "Longest single backoff (milliseconds)."},
	{"provider", "breaker_window", LT_CFG_INT, POFF(breaker_window), "20", 1, 256, NULL, true,
	 "Circuit breaker: calls remembered."},
	{"provider", "breaker_min_calls", LT_CFG_INT, POFF(breaker_min_calls), "10", 1, 256, NULL,
	 true, "Circuit breaker: calls needed before it may open."},
	{"provider", "breaker_failure_pct", LT_CFG_INT, POFF(breaker_failure_pct), "50", 1, 100,
	 NULL, true, "Circuit breaker: failure share that opens it (percent)."},
	{"provider", "breaker_open_ms", LT_CFG_INT, POFF(breaker_open_ms), "10000", 1, 3600000,
	 NULL, true, "Circuit breaker: how long it stays open before probing (milliseconds)."},
	{"provider", "breaker_probes", LT_CFG_INT, POFF(breaker_probes), "3", 1, 100, NULL, true,
	 "Circuit breaker: probe calls let through when half-open; all must succeed to close."},
	{"provider", "bulkhead", LT_CFG_INT, POFF(bulkhead), "20", 1, 100000, NULL, true,
	 "Calls to this provider at once; more are refused at once with 503."},
	{"provider", "pool_size", LT_CFG_INT, POFF(pool_size), "32", 0, 4096, NULL, true,
	 "Idle keep-alive connections kept open to the provider."},
	{"provider", "max_response", LT_CFG_SIZE, POFF(max_response), "8M", 4 * KIB, 1 * GIB, NULL,
	 true, "Largest response body accepted from the provider (bytes, K/M/G suffixes)."},
};

#define MOFF(f) offsetof(struct lt_cfg_model, f)
static const struct lt_config_key model_keys[] = {
	{"model", "provider", LT_CFG_STR, MOFF(provider), "", 1, LT_CFG_PROVIDER_NAME_MAX - 1, NULL,
	 true, "Name of the [provider.NAME] that serves this model (required)."},
	{"model", "upstream", LT_CFG_STR, MOFF(upstream), "", 0, 127, NULL, true,
	 "The provider's id for the model; empty means the model's own name."},
	{"model", "kind", LT_CFG_ENUM, MOFF(kind), "chat", 0, 0, kind_choices, true,
	 "What the model does (chat, embedding)."},
	{"model", "price_input", LT_CFG_INT, MOFF(price_input), "0", 0, INT64_C(1000000000000),
	 NULL, true, "Micro-dollars per 1M input tokens."},
	{"model", "price_cached_input", LT_CFG_INT, MOFF(price_cached_input), "0", 0,
	 INT64_C(1000000000000), NULL, true, "Micro-dollars per 1M cached input tokens."},
	{"model", "price_output", LT_CFG_INT, MOFF(price_output), "0", 0, INT64_C(1000000000000),
	 NULL, true, "Micro-dollars per 1M output tokens."},
	{"model", "context_window", LT_CFG_INT, MOFF(context_window), "128000", 1, 100000000, NULL,
	 true, "Tokens of prompt plus output the model accepts."},
	{"model", "max_output", LT_CFG_INT, MOFF(max_output), "4096", 1, 10000000, NULL, true,
	 "Largest max_tokens accepted, and the default when a request sets none."},
	{"model", "rpm", LT_CFG_INT, MOFF(rpm), "0", 0, 100000000, NULL, true,
	 "Requests per minute to this model from all clients together; 0 means no limit."},
	{"model", "tpm", LT_CFG_INT, MOFF(tpm), "0", 0, INT64_C(10000000000), NULL, true,
	 "Tokens per minute to this model from all clients together; 0 means no limit."},
};

const struct lt_config_key *lt_config_keys(size_t *n)
{
	*n = sizeof keys / sizeof keys[0];
	return keys;
}

const struct lt_config_key *lt_config_provider_keys(size_t *n)
{
	*n = sizeof provider_keys / sizeof provider_keys[0];
	return provider_keys;
}

const struct lt_config_key *lt_config_model_keys(size_t *n)
{
	*n = sizeof model_keys / sizeof model_keys[0];
	return model_keys;
}

const struct lt_cfg_provider *lt_config_provider(const struct lt_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nproviders; i++)
		if (!strcasecmp(cfg->providers[i].name, name))
			return &cfg->providers[i];
	return NULL;
}

const struct lt_cfg_model *lt_config_model(const struct lt_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nmodels; i++)
		if (!strcasecmp(cfg->models[i].name, name))
			return &cfg->models[i];
	return NULL;
}

static const struct lt_config_key *find_in(const struct lt_config_key *t, size_t n,
					   const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(t[i].name, name) == 0)
			return &t[i];
	return NULL;
}

static const struct lt_config_key *find_key(const char *section, const char *name)
{
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (strcasecmp(keys[i].section, section) == 0 &&
		    strcasecmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static bool check_hostport_or_empty(const char *value, char *why, size_t whylen)
{
	return !*value || parse_hostport(value, why, whylen);
}

enum dyn_kind { DYN_NONE, DYN_PROVIDER, DYN_MODEL };

/* "provider.NAME" / "model.NAME": the kind, and *name points at NAME. */
static enum dyn_kind dyn_section(const char *section, const char **name)
{
	if (!strncasecmp(section, "provider.", 9)) {
		*name = section + 9;
		return DYN_PROVIDER;
	}
	if (!strncasecmp(section, "model.", 6)) {
		*name = section + 6;
		return DYN_MODEL;
	}
	return DYN_NONE;
}

static bool valid_dyn_name(enum dyn_kind kind, const char *name, char *why, size_t whylen)
{
	size_t n = strlen(name);
	size_t max =
		kind == DYN_PROVIDER ? LT_CFG_PROVIDER_NAME_MAX - 1 : LT_CFG_MODEL_NAME_MAX - 1;
	if (n == 0 || n > max) {
		snprintf(why, whylen, "%s name must be 1 to %zu characters long",
			 kind == DYN_PROVIDER ? "provider" : "model", max);
		return false;
	}
	for (const char *p = name; *p; p++) {
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
			  c == '-' ||
			  (kind == DYN_MODEL && ((c >= 'A' && c <= 'Z') || c == '.' || c == ':'));
		if (kind == DYN_PROVIDER && c >= 'A' && c <= 'Z')
			ok = true; /* stored lower-case */
		if (!ok) {
			snprintf(why, whylen,
				 kind == DYN_PROVIDER ? "provider name '%s' may hold only letters, "
							"digits, '_' and '-'"
						      : "model name '%s' may hold only letters, "
							"digits and . _ : -",
				 name);
			return false;
		}
	}
	return true;
}

static bool known_section(const char *section)
{
	const char *dn;
	if (dyn_section(section, &dn) != DYN_NONE)
		return true;
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (strcasecmp(keys[i].section, section) == 0)
			return true;
	return false;
}

static bool parse_i64(const char *s, int64_t *out, const char **rest)
{
	errno = 0;
	char *end;
	if (!*s || !(*s == '-' || (*s >= '0' && *s <= '9')))
		return false;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s)
		return false;
	*out = v;
	*rest = end;
	return true;
}

static bool parse_hostport(const char *v, char *why, size_t whylen)
{
	const char *colon;
	if (v[0] == '[') {
		/* Debian's civetweb 1.15 is built without IPv6. */
		snprintf(why, whylen, "IPv6 addresses are not supported, got '%s'", v);
		return false;
	} else {
		colon = strrchr(v, ':');
		if (!colon || colon == v || memchr(v, ':', (size_t)(colon - v))) {
			snprintf(why, whylen, "expected HOST:PORT, got '%s'", v);
			return false;
		}
		for (const char *p = v; p < colon; p++) {
			char c = *p;
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '.' || c == '-')) {
				snprintf(why, whylen, "invalid host in '%s'", v);
				return false;
			}
		}
	}
	int64_t port;
	const char *rest;
	if (!parse_i64(colon + 1, &port, &rest) || *rest || port < 0 || port > 65535) {
		snprintf(why, whylen, "port must be 0-65535 in '%s'", v);
		return false;
	}
	return true;
}

/* A string value must read back the same after lt_config_render writes it
 * as "name = value": no control characters (a newline would start a new
 * line), no space at either end (inih strips it), and no ';' at the start
 * or after a space (inih takes it for an inline comment). */
static bool ini_safe(const struct lt_config_key *k, const char *v, char *why, size_t whylen)
{
	size_t n = strlen(v);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c < 0x20 || c == 0x7F) {
			snprintf(why, whylen, "%s must not contain control characters", k->name);
			return false;
		}
		if (c == ';' && (i == 0 || v[i - 1] == ' ')) {
			snprintf(why, whylen, "%s must not have ';' at its start or after a space",
				 k->name);
			return false;
		}
	}
	if (n && (v[0] == ' ' || v[n - 1] == ' ')) {
		snprintf(why, whylen, "%s must not start or end with a space", k->name);
		return false;
	}
	return true;
}

/* Parse `value` for key k into cfg.  On failure, why explains. */
static bool set_value(void *obj, const struct lt_config_key *k, const char *value, char *why,
		      size_t whylen)
{
	char *base = (char *)obj + k->offset;
	switch (k->type) {
	case LT_CFG_INT:
	case LT_CFG_SIZE: {
		int64_t v, mult = 1;
		const char *rest;
		if (!parse_i64(value, &v, &rest)) {
			snprintf(why, whylen, "'%s' is not a number", value);
			return false;
		}
		if (k->type == LT_CFG_SIZE && *rest) {
			switch (*rest) {
			case 'k':
			case 'K': mult = KIB; break;
			case 'm':
			case 'M': mult = MIB; break;
			case 'g':
			case 'G': mult = GIB; break;
			default: mult = 0; break;
			}
			rest++;
		}
		if (*rest || mult == 0) {
			snprintf(why, whylen, "'%s' is not a %s", value,
				 k->type == LT_CFG_SIZE ? "size (number with optional K, M or G)"
							: "whole number");
			return false;
		}
		if (__builtin_mul_overflow(v, mult, &v) || v < k->min || v > k->max) {
			snprintf(why, whylen, "%s must be between %lld and %lld, got '%s'", k->name,
				 (long long)k->min, (long long)k->max, value);
			return false;
		}
		memcpy(base, &v, sizeof v);
		return true;
	}
	case LT_CFG_BOOL: {
		bool b;
		if (!strcasecmp(value, "yes") || !strcasecmp(value, "true") ||
		    !strcasecmp(value, "on") || !strcmp(value, "1"))
			b = true;
		else if (!strcasecmp(value, "no") || !strcasecmp(value, "false") ||
			 !strcasecmp(value, "off") || !strcmp(value, "0"))
			b = false;
		else {
			snprintf(why, whylen, "%s must be yes or no, got '%s'", k->name, value);
			return false;
		}
		memcpy(base, &b, sizeof b);
		return true;
	}
	case LT_CFG_ENUM:
		for (int64_t i = 0; k->choices[i]; i++) {
			if (!strcasecmp(value, k->choices[i])) {
				memcpy(base, &i, sizeof i);
				return true;
			}
		}
		{
			char list[256] = "";
			for (size_t i = 0; k->choices[i]; i++) {
				if (i)
					strncat(list, ", ", sizeof list - strlen(list) - 1);
				strncat(list, k->choices[i], sizeof list - strlen(list) - 1);
			}
			snprintf(why, whylen, "%s must be one of %s, got '%s'", k->name, list,
				 value);
		}
		return false;
	case LT_CFG_HOSTPORT:
		if (!parse_hostport(value, why, whylen))
			return false;
		/* fall through */
	case LT_CFG_STR: {
		size_t len = strlen(value);
		int64_t max = k->type == LT_CFG_STR ? k->max : 255;
		if (!ini_safe(k, value, why, whylen))
			return false;
		if ((int64_t)len > max || (int64_t)len < k->min) {
			snprintf(why, whylen, "%s must be %lld to %lld characters long", k->name,
				 (long long)k->min, (long long)max);
			return false;
		}
		if (k->check) {
			char sub[384];
			if (!k->check(value, sub, sizeof sub)) {
				snprintf(why, whylen, "%s: %s", k->name, sub);
				return false;
			}
		}
		memcpy(base, value, len + 1);
		return true;
	}
	}
	snprintf(why, whylen, "internal: bad key type");
	return false;
}

void lt_config_defaults(struct lt_config *cfg)
{
	char why[256];
	memset(cfg, 0, sizeof *cfg);
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (!set_value(cfg, &keys[i], keys[i].def, why, sizeof why))
			abort(); /* a bad default is our bug; the unit test catches it */
}

enum lt_err lt_config_set(struct lt_config *cfg, const char *section, const char *name,
			  const char *value, const char *origin, char *err)
{
	char why[512];
	const struct lt_config_key *k = find_key(section, name);
	if (!k) {
		snprintf(err, LT_CFG_ERR_MAX, "%s: unknown key [%s] %s", origin, section, name);
		return LT_ECONFIG;
	}
	if (!set_value(cfg, k, value, why, sizeof why)) {
		snprintf(err, LT_CFG_ERR_MAX, "%s: %s", origin, why);
		return LT_ECONFIG;
	}
	return LT_OK;
}

/* ---- INI file parsing ---- */

struct parse_state {
	FILE *fp;
	const char *path;
	int line;	/* line the reader handed out last */
	bool long_line; /* a line exceeded inih's buffer */
	int err_line;	/* first error we found, 0 if none */
	char err[LT_CFG_ERR_MAX];
	struct lt_config *cfg;
	unsigned char seen[sizeof keys / sizeof keys[0]];
	int seen_line[sizeof keys / sizeof keys[0]];
	/* named sections: line of first key, keys seen */
	int provider_line[LT_CFG_MAX_PROVIDERS];
	unsigned char provider_seen[LT_CFG_MAX_PROVIDERS]
				   [sizeof provider_keys / sizeof provider_keys[0]];
	int model_line[LT_CFG_MAX_MODELS];
	unsigned char model_seen[LT_CFG_MAX_MODELS][sizeof model_keys / sizeof model_keys[0]];
};

static void fail(struct parse_state *st, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void fail(struct parse_state *st, const char *fmt, ...)
{
	if (st->err_line)
		return;
	st->err_line = st->line;
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(st->err, sizeof st->err, "%s:%d: %s", st->path, st->line, msg);
}

/* ini_reader: fgets that counts lines and notices lines too long. */
static char *reader(char *str, int num, void *stream)
{
	struct parse_state *st = stream;
	if (!fgets(str, num, st->fp))
		return NULL;
	st->line++;
	size_t len = strlen(str);
	/* inih only reports a section through its keys: check headers here so
	 * an unknown section is an error even when it is empty. */
	const char *p = str;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '[') {
		const char *close = strchr(p, ']');
		if (close) {
			char name[64];
			size_t n = (size_t)(close - p - 1);
			if (n < sizeof name) {
				memcpy(name, p + 1, n);
				name[n] = '\0';
				if (!known_section(name))
					fail(st, "unknown section [%s]", name);
			} else {
				fail(st, "section name too long");
			}
		}
	}
	if (len == (size_t)num - 1 && str[len - 1] != '\n' && !feof(st->fp)) {
		int c;
		while ((c = fgetc(st->fp)) != EOF && c != '\n')
			;
		if (!st->long_line)
			fail(st, "line longer than %d characters", num - 2);
		st->long_line = true;
	}
	return str;
}

static void dyn_defaults(void *obj, const struct lt_config_key *t, size_t n)
{
	char why[256];
	for (size_t i = 0; i < n; i++)
		if (t[i].def[0] && !set_value(obj, &t[i], t[i].def, why, sizeof why))
			abort(); /* a bad default is our bug; the unit test catches it */
}

/* A key of [provider.NAME] or [model.NAME]: find or make the slot. */
static int dyn_handler(struct parse_state *st, enum dyn_kind dk, const char *section,
		       const char *dname, const char *name, const char *value)
{
	char why[512];
	if (!valid_dyn_name(dk, dname, why, sizeof why)) {
		fail(st, "[%s] %s", section, why);
		return 0;
	}
	struct lt_config *cfg = st->cfg;
	const struct lt_config_key *t = dk == DYN_PROVIDER ? provider_keys : model_keys;
	size_t nt = dk == DYN_PROVIDER ? sizeof provider_keys / sizeof provider_keys[0]
				       : sizeof model_keys / sizeof model_keys[0];
	size_t slot, count = dk == DYN_PROVIDER ? cfg->nproviders : cfg->nmodels;
	for (slot = 0; slot < count; slot++) {
		const char *have =
			dk == DYN_PROVIDER ? cfg->providers[slot].name : cfg->models[slot].name;
		if (!strcasecmp(have, dname))
			break;
	}
	void *obj;
	if (slot == count) {
		size_t max = dk == DYN_PROVIDER ? LT_CFG_MAX_PROVIDERS : LT_CFG_MAX_MODELS;
		if (count == max) {
			fail(st, "too many [%s.*] sections (at most %zu)",
			     dk == DYN_PROVIDER ? "provider" : "model", max);
			return 0;
		}
		if (dk == DYN_PROVIDER) {
			struct lt_cfg_provider *p = &cfg->providers[cfg->nproviders++];
			memset(p, 0, sizeof *p);
			dyn_defaults(p, t, nt);
			size_t i = 0;
			for (; dname[i]; i++)
				p->name[i] = (char)((dname[i] >= 'A' && dname[i] <= 'Z')
							    ? dname[i] - 'A' + 'a'
							    : dname[i]);
			p->name[i] = '\0';
			st->provider_line[slot] = st->line;
		} else {
			struct lt_cfg_model *m = &cfg->models[cfg->nmodels++];
			memset(m, 0, sizeof *m);
			dyn_defaults(m, t, nt);
			snprintf(m->name, sizeof m->name, "%s", dname);
			st->model_line[slot] = st->line;
		}
	}
	obj = dk == DYN_PROVIDER ? (void *)&cfg->providers[slot] : (void *)&cfg->models[slot];
	const struct lt_config_key *k = find_in(t, nt, name);
	if (!k) {
		fail(st, "unknown key '%s' in section [%s]", name, section);
		return 0;
	}
	size_t idx = (size_t)(k - t);
	unsigned char *seen =
		dk == DYN_PROVIDER ? &st->provider_seen[slot][idx] : &st->model_seen[slot][idx];
	if (*seen) {
		fail(st, "duplicate key '%s' in section [%s]", name, section);
		return 0;
	}
	*seen = 1;
	if (!set_value(obj, k, value, why, sizeof why)) {
		fail(st, "[%s] %s", section, why);
		return 0;
	}
	return 1;
}

/* After the file: required keys and references between sections. */
static void dyn_validate(struct parse_state *st)
{
	struct lt_config *cfg = st->cfg;
	for (size_t i = 0; i < cfg->nproviders && !st->err_line; i++) {
		const struct lt_cfg_provider *p = &cfg->providers[i];
		st->line = st->provider_line[i];
		if (!p->base_url[0])
			fail(st, "[provider.%s] base_url is required", p->name);
		else if (p->default_model[0]) {
			const struct lt_cfg_model *m = lt_config_model(cfg, p->default_model);
			if (!m || strcasecmp(m->provider, p->name))
				fail(st,
				     "[provider.%s] default_model '%s' is not a [model.NAME] of "
				     "this provider",
				     p->name, p->default_model);
		}
	}
	for (size_t i = 0; i < cfg->nmodels && !st->err_line; i++) {
		struct lt_cfg_model *m = &cfg->models[i];
		st->line = st->model_line[i];
		if (!m->provider[0])
			fail(st, "[model.%s] provider is required", m->name);
		else if (!lt_config_provider(cfg, m->provider))
			fail(st, "[model.%s] provider '%s' has no [provider.%s] section", m->name,
			     m->provider, m->provider);
		else
			for (char *c = m->provider; *c; c++)
				if (*c >= 'A' && *c <= 'Z')
					*c = (char)(*c - 'A' + 'a');
	}
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *st = user;
	char why[512];
	if (!name) /* a section header with no keys yet (INI_CALL_HANDLER_ON_NEW_SECTION) */
		return 1;
	if (!section[0]) {
		fail(st, "key '%s' outside any section", name);
		return 0;
	}
	const char *dname;
	enum dyn_kind dk = dyn_section(section, &dname);
	if (dk != DYN_NONE)
		return dyn_handler(st, dk, section, dname, name, value);
	const struct lt_config_key *k = find_key(section, name);
	if (!k) {
		fail(st, "unknown key '%s' in section [%s]", name, section);
		return 0;
	}
	size_t idx = (size_t)(k - keys);
	if (st->seen[idx]) {
		fail(st, "duplicate key '%s' (first set on line %d)", name, st->seen_line[idx]);
		return 0;
	}
	st->seen[idx] = 1;
	st->seen_line[idx] = st->line;
	if (!set_value(st->cfg, k, value, why, sizeof why)) {
		fail(st, "[%s] %s", section, why);
		return 0;
	}
	return 1;
}

enum lt_err lt_config_load(const char *path, struct lt_config *cfg, char *err)
{
	lt_config_defaults(cfg);
	struct parse_state *st = calloc(1, sizeof *st);
	if (!st) {
		snprintf(err, LT_CFG_ERR_MAX, "%s: out of memory", path);
		return LT_ENOMEM;
	}
	st->fp = fopen(path, "r");
	if (!st->fp) {
		snprintf(err, LT_CFG_ERR_MAX, "%s: cannot open: %s", path, strerror(errno));
		free(st);
		return LT_EIO;
	}
	st->path = path;
	st->cfg = cfg;
	/* An indented line would continue the previous value: refuse it. */
	ini_allow_multiline = false;
	int rc = ini_parse_stream(reader, st, handler, st);
	if (rc == 0 && !st->err_line && !ferror(st->fp))
		dyn_validate(st);
	enum lt_err res = LT_OK;
	if (ferror(st->fp)) {
		snprintf(err, LT_CFG_ERR_MAX, "%s: read error", path);
		res = LT_EIO;
	} else if (st->err_line && (rc <= 0 || st->err_line <= rc)) {
		snprintf(err, LT_CFG_ERR_MAX, "%s", st->err);
		res = LT_ECONFIG;
	} else if (rc != 0) {
		snprintf(err, LT_CFG_ERR_MAX,
			 "%s:%d: syntax error (expected [section] or key = value)", path, rc);
		res = LT_ECONFIG;
	} else if (strlen(path) < sizeof cfg->source) {
		memcpy(cfg->source, path, strlen(path) + 1);
	}
	fclose(st->fp);
	free(st);
	return res;
}

/* ---- rendering ---- */

void lt_config_value_str(const void *obj, const struct lt_config_key *k, char *out, size_t out_len)
{
	const char *base = (const char *)obj + k->offset;
	int64_t v;
	bool b;
	switch (k->type) {
	case LT_CFG_INT:
		memcpy(&v, base, sizeof v);
		snprintf(out, out_len, "%lld", (long long)v);
		return;
	case LT_CFG_SIZE:
		memcpy(&v, base, sizeof v);
		if (v && v % GIB == 0)
			snprintf(out, out_len, "%lldG", (long long)(v / GIB));
		else if (v && v % MIB == 0)
			snprintf(out, out_len, "%lldM", (long long)(v / MIB));
		else if (v && v % KIB == 0)
			snprintf(out, out_len, "%lldK", (long long)(v / KIB));
		else
			snprintf(out, out_len, "%lld", (long long)v);
		return;
	case LT_CFG_BOOL:
		memcpy(&b, base, sizeof b);
		snprintf(out, out_len, "%s", b ? "yes" : "no");
		return;
	case LT_CFG_ENUM:
		memcpy(&v, base, sizeof v);
		snprintf(out, out_len, "%s", k->choices[v]);
		return;
	case LT_CFG_STR:
	case LT_CFG_HOSTPORT: snprintf(out, out_len, "%s", base); return;
	}
}

static void render_dyn(struct lt_buf *out, const char *kind, const char *name, const void *obj,
		       const struct lt_config_key *t, size_t n)
{
	char val[LT_CFG_STR_MAX];
	lt_buf_printf(out, "\n[%s.%s]\n", kind, name);
	for (size_t i = 0; i < n; i++) {
		lt_config_value_str(obj, &t[i], val, sizeof val);
		lt_buf_printf(out, "# %s\n%s = %s\n", t[i].help, t[i].name, val);
	}
}

void lt_config_render(const struct lt_config *cfg, struct lt_buf *out)
{
	const char *section = "";
	char val[LT_CFG_STR_MAX];
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		const struct lt_config_key *k = &keys[i];
		if (strcmp(section, k->section) != 0) {
			lt_buf_printf(out, "%s[%s]\n", i ? "\n" : "", k->section);
			section = k->section;
		}
		lt_buf_printf(out, "# %s\n", k->help);
		switch (k->type) {
		case LT_CFG_INT:
		case LT_CFG_SIZE:
			lt_buf_printf(out, "# Range %lld-%lld. Default %s.", (long long)k->min,
				      (long long)k->max, k->def);
			break;
		case LT_CFG_ENUM:
		case LT_CFG_BOOL:
		case LT_CFG_STR:
		case LT_CFG_HOSTPORT: lt_buf_printf(out, "# Default \"%s\".", k->def); break;
		}
		lt_buf_printf(out, " %s\n",
			      k->reloadable ? "Reloaded on SIGHUP." : "Needs a restart.");
		lt_config_value_str(cfg, k, val, sizeof val);
		lt_buf_printf(out, "%s = %s\n", k->name, val);
	}
	for (size_t i = 0; i < cfg->nproviders; i++)
		render_dyn(out, "provider", cfg->providers[i].name, &cfg->providers[i],
			   provider_keys, sizeof provider_keys / sizeof provider_keys[0]);
	for (size_t i = 0; i < cfg->nmodels; i++)
		render_dyn(out, "model", cfg->models[i].name, &cfg->models[i], model_keys,
			   sizeof model_keys / sizeof model_keys[0]);
}

/* Differences in [provider.*] or [model.*]: one report per changed key,
 * added or removed section (value "" for the side that lacks it). */
static size_t dyn_diff(const char *kind, const struct lt_config *cur, const struct lt_config *next,
		       lt_config_diff_fn fn, void *arg)
{
	bool prov = kind[0] == 'p';
	const struct lt_config_key *t = prov ? provider_keys : model_keys;
	size_t nt = prov ? sizeof provider_keys / sizeof provider_keys[0]
			 : sizeof model_keys / sizeof model_keys[0];
	size_t n = 0;
	char a[LT_CFG_STR_MAX], b[LT_CFG_STR_MAX];
	for (int side = 0; side < 2; side++) {
		const struct lt_config *x = side ? next : cur, *y = side ? cur : next;
		size_t cnt = prov ? x->nproviders : x->nmodels;
		for (size_t i = 0; i < cnt; i++) {
			const char *name = prov ? x->providers[i].name : x->models[i].name;
			const void *ox =
				prov ? (const void *)&x->providers[i] : (const void *)&x->models[i];
			const void *oy = prov ? (const void *)lt_config_provider(y, name)
					      : (const void *)lt_config_model(y, name);
			if (side && oy)
				continue; /* present in both: compared on side 0 */
			for (size_t j = 0; j < nt; j++) {
				lt_config_value_str(ox, &t[j], a, sizeof a);
				if (oy)
					lt_config_value_str(oy, &t[j], b, sizeof b);
				else
					b[0] = '\0';
				if (strcmp(a, b) == 0)
					continue;
				n++;
				if (fn)
					fn(arg, &t[j], side ? b : a, side ? a : b, true);
				if (!oy)
					break; /* one report for a whole added/removed section */
			}
		}
	}
	return n;
}

size_t lt_config_merge_reload(const struct lt_config *cur, struct lt_config *next,
			      lt_config_diff_fn fn, void *arg)
{
	size_t n = 0;
	char a[LT_CFG_STR_MAX], b[LT_CFG_STR_MAX];
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		const struct lt_config_key *k = &keys[i];
		lt_config_value_str(cur, k, a, sizeof a);
		lt_config_value_str(next, k, b, sizeof b);
		if (strcmp(a, b) == 0)
			continue;
		n++;
		if (!k->reloadable) {
			size_t sz =
				(k->type == LT_CFG_STR || k->type == LT_CFG_HOSTPORT)
					? LT_CFG_STR_MAX
					: (k->type == LT_CFG_BOOL ? sizeof(bool) : sizeof(int64_t));
			memcpy((char *)next + k->offset, (const char *)cur + k->offset, sz);
		}
		if (fn)
			fn(arg, k, a, b, k->reloadable);
	}
	n += dyn_diff("provider", cur, next, fn, arg);
	n += dyn_diff("model", cur, next, fn, arg);
	return n;
}
