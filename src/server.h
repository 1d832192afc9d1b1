/*
 * server.h — struct lt_server: the one state struct of leakyd.
 *
 * Created in leakyd.c (main), passed to every subsystem; there are no other
 * globals (ARCHITECTURE.md).  What lives here and who may touch it:
 *
 *   config     the current configuration snapshot.  Readers take a
 *              reference with lt_server_config_acquire() and drop it with
 *              lt_server_config_release(); SIGHUP swaps in a new snapshot
 *              under cfg_lock and the old one is freed by its last reader.
 *   features   runtime overrides of the [features] switches (PUT
 *              /admin/v1/features/{feature}).  A snapshot always carries the
 *              effective values: every install applies the overrides to the
 *              copy it installs, so readers only ever look at the snapshot
 *              (cfg->features_*), an override survives a SIGHUP reload, and it
 *              ends at restart or when cleared.  Guarded by cfg_lock.
 *   clock      the time source (manual in tests).
 *   log        the JSON-lines logger.
 *   metrics    the registry, plus the handles of leakyd's own families.
 *   db/writer  leaky.db: the writer thread owns the write connection.
 *   kv         the LMDB environment (buckets/).
 *   providers  provider registry: breakers, bulkheads, upstream pools.
 *   stubs      the built-in provider stubs when [stubs] enabled.
 *   ready      bit set of LT_READY_* conditions; /readyz is 200 when all
 *              required bits are set and LT_READY_DRAINING is not.
 *   inflight   requests being handled now (admission uses it).
 */
#ifndef LT_SERVER_H
#define LT_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"
#include "conf/config.h"
#include "analytics/ingest.h"
#include "events/relay.h"
#include "provider/registry.h"
#include "store/dbpool.h"
#include "store/writer.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/metrics.h"

struct sqlite3;
struct lt_kv;
struct mg_context;
struct lt_route;
struct lt_stubs;

enum {
	LT_READY_STORAGE = 1 << 0,   /* leaky.db open */
	LT_READY_MIGRATED = 1 << 1,  /* schema up to date */
	LT_READY_BUCKETS = 1 << 2,   /* LMDB open */
	LT_READY_WRITER = 1 << 3,    /* writer thread running */
	LT_READY_AUTH = 1 << 4,	     /* signing keys loaded, admin bootstrapped */
	LT_READY_DRAINING = 1 << 16, /* shutting down: not ready */
};
#define LT_READY_ALL                                                                               \
	(LT_READY_STORAGE | LT_READY_MIGRATED | LT_READY_BUCKETS | LT_READY_WRITER | LT_READY_AUTH)

/* The [features] switches that can be overridden at runtime.  Append-only. */
enum lt_feature {
	LT_FEATURE_RATE_LIMITING,
	LT_FEATURE_QUOTA_ENFORCEMENT,
	LT_FEATURE_SAGA_PURCHASES,
	LT_FEATURE_COUNT
};

/* One feature as the admin API shows it. */
struct lt_feature_state {
	bool configured; /* what the configuration file says */
	int override;	 /* -1 none, 0 off, 1 on */
	bool effective;	 /* what requests see: the override, else configured */
};

struct lt_config_snap {
	struct lt_config cfg;
	atomic_int refs;
};

struct lt_server_metrics {
	struct lt_metric_family *requests; /* route, method, status */
	struct lt_metric_family *duration; /* route */
	struct lt_metric_family *inflight;
	struct lt_metric_family *rejected;   /* reason */
	struct lt_metric_family *build_info; /* version */
	struct lt_metric_family *start_time;
	struct lt_metric_family *db_bytes; /* file */
	struct lt_metric_family *kv_bytes; /* kind */
	struct lt_metric_family *kv_entries;
	struct lt_metric_family *writer_commits;
	struct lt_metric_family *writer_writes; /* outcome */
	struct lt_metric_family *writer_depth;
	struct lt_metric_family *writer_group;
	struct lt_metric_family *reloads; /* outcome */
	struct lt_series *inflight_s;
	/* provider usage (usage_hook.c) */
	struct lt_metric_family *prov_requests; /* provider, model, outcome */
	struct lt_metric_family *prov_tokens;	/* provider, model, kind */
	struct lt_metric_family *prov_cost;	/* provider, model */
	struct lt_metric_family *prov_latency;	/* provider */
	struct lt_metric_family *prov_ttft;	/* provider */
	struct lt_metric_family *prov_disconnects;
	/* admission and quotas (api/spend_metrics.c) */
	struct lt_metric_family *limit_decisions;    /* scope, outcome */
	struct lt_metric_family *quota_reservations; /* outcome */
	struct lt_metric_family *quota_unbilled;     /* provider */
	/* outbox, relay, event log (observe.c, at scrape) */
	struct lt_metric_family *outbox_pending;
	struct lt_metric_family *outbox_oldest_age;
	struct lt_metric_family *events_published;
	struct lt_metric_family *relay_failures;
	struct lt_metric_family *relay_lag;
	struct lt_metric_family *relay_event_lag; /* histogram */
	struct lt_metric_family *events_end;	  /* topic */
	struct lt_metric_family *sagas;
	struct lt_metric_family *an_events; /* outcome: ingested, duplicate, bad, skipped */
	struct lt_metric_family *an_lag;
	struct lt_metric_family *an_failures; /* status */
};

struct lt_server {
	pthread_mutex_t cfg_lock;
	struct lt_config_snap *config; /* guarded by cfg_lock */
	/* [features] overrides, guarded by cfg_lock.  Zero (the memset struct
	 * of main) means no override.  feature_configured is the value of the
	 * last configuration installed from the file, before any override. */
	bool feature_pinned[LT_FEATURE_COUNT]; /* an override is set */
	bool feature_value[LT_FEATURE_COUNT];  /* its value, when pinned */
	bool feature_configured[LT_FEATURE_COUNT];

	struct lt_clock clock;
	struct lt_log log;
	struct lt_metrics metrics;
	struct lt_server_metrics m;

	char db_path[LT_CFG_STR_MAX + 32];
	char kv_path[LT_CFG_STR_MAX + 32];
	char wal_path[LT_CFG_STR_MAX + 40]; /* leaky.db-wal (the relay syncs it) */
	struct sqlite3 *db;		    /* the writer's connection */
	struct lt_writer writer;
	struct lt_kv *kv;
	struct lt_auth auth;		    /* valid once LT_READY_AUTH is set */
	struct lt_registry providers;	    /* provider state and the resilient call */
	struct lt_stubs *stubs;		    /* the built-in stubs, NULL when off */
	struct lt_evlog *evlog;		    /* the event log (events/log.h) */
	struct lt_relay relay;		    /* outbox → event log (events/relay.h) */
	struct lt_sagas *sagas;		    /* purchase sagas (saga/runner.h), NULL until started */
	struct sqlite3 *analytics_db;	    /* the ingest's analytics.db connection */
	struct lt_an_ingest ingest;	    /* token-usage → analytics.db (analytics/ingest.h) */
	struct lt_dbpool analytics_readers; /* analytics.db readers (api/analytics.c) */
	bool analytics_open;		    /* the three above exist */

	atomic_uint ready;
	atomic_int inflight;
	int64_t start_ns; /* real wall time at start */

	struct mg_context *http;
	int http_port;		       /* the port actually bound */
	const struct lt_route *routes; /* the route table (static, api/routes.c) */
	size_t nroutes;
};

/* Take a reference to the current configuration; never NULL. */
const struct lt_config *lt_server_config_acquire(struct lt_server *srv);
void lt_server_config_release(struct lt_server *srv, const struct lt_config *cfg);

/* Put the configured (file) values of the features back into cfg, a copy
 * of a snapshot, so a reload compares the file with the file and does not
 * report an override as a change. */
void lt_server_config_unpin(struct lt_server *srv, struct lt_config *cfg);

/* Make `cfg` (copied) the current snapshot.  cfg holds what the file says:
 * its [features] values become the configured ones, and the copy installed
 * has the runtime overrides applied. */
enum lt_err lt_server_config_install(struct lt_server *srv, const struct lt_config *cfg);

/* "rate-limiting", "quota-enforcement"; NULL for a value out of range. */
const char *lt_feature_name(enum lt_feature f);
/* The feature named by <s, n>: its exact lower-case name or the config
 * key's spelling ("quota_enforcement").  LT_ENOTFOUND otherwise. */
enum lt_err lt_feature_parse(const char *s, size_t n, enum lt_feature *out);

/* The feature's configured, override and effective values, read together. */
enum lt_err lt_server_feature_get(struct lt_server *srv, enum lt_feature f,
				  struct lt_feature_state *out);

/* Override feature f (value 0 off, 1 on) or clear its override (-1, back
 * to the configured value): installs a copy of the current snapshot with
 * the change applied, so requests that start afterwards see it.  The
 * override lasts until cleared or restart; reloads keep it. */
enum lt_err lt_server_feature_set(struct lt_server *srv, enum lt_feature f, int value);

/* lt_server_feature_set, also reporting the state just before and just
 * after the change (either may be NULL), both read under the same lock
 * hold as the change itself. */
enum lt_err lt_server_feature_swap(struct lt_server *srv, enum lt_feature f, int value,
				   struct lt_feature_state *before, struct lt_feature_state *after);

bool lt_server_is_ready(const struct lt_server *srv);

#endif
