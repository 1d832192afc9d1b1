/*
 * leakyd.c — main(): configuration, start-up order, signals, shutdown.
 *
 * Start-up: flags and environment → config (exit 78 on any error) → logger
 * and metrics → HTTP listener (so /healthz answers and /readyz explains what
 * is missing) → data dir, leaky.db + migrations, LMDB, writer, scheduler →
 * ready.  Then the main thread waits for signals:
 *   SIGHUP          reload the config file; apply reloadable keys, log the
 *                   ones that need a restart.
 *   SIGTERM/SIGINT  drain: refuse new requests (503, Connection: close),
 *                   wait for in-flight ones up to [http] drain_timeout_ms (a
 *                   second signal cuts the wait), stop the listener, flush
 *                   the writer, sync LMDB, close.
 * The struct lt_server lives on main's stack; it is the only shared state.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "analytics/schema.h"
#include "analytics/store.h"
#include "api/handlers.h"
#include "conf/config.h"
#include "events/evlog.h"
#include "http/listener.h"
#include "observe.h"
#include "quota/pool_store.h"
#include "saga/runner.h"
#include "stubs/stubs.h"
#include "api/spend.h"
#include "usage_hook.h"
#include "scheduler.h"
#include "server.h"
#include "store/datadir.h"
#include "store/db.h"
#include "store/kv.h"
#include "version.h"

struct overrides { /* what flags and environment said, re-applied on reload */
	const char *config_path;
	const char *env_data_dir, *env_listen;
	const char *data_dir, *listen, *stubs_listen;
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: leakyd [options]\n"
		"  -c, --config FILE        configuration file (env LEAKYD_CONFIG)\n"
		"  -d, --data-dir DIR       data directory (env LEAKYD_DATA_DIR; default ./var)\n"
		"  -l, --listen HOST:PORT   API listener (env LEAKYD_LISTEN; default "
		"127.0.0.1:8080)\n"
		"      --stubs-listen HOST:PORT  provider stubs listener (default 127.0.0.1:8090)\n"
		"      --stubs-only         serve only the provider stubs (no storage, no API)\n"
		"      --check-config       validate the configuration and exit\n"
		"      --version            print the version and exit\n"
		"  -h, --help               this text\n"
		"Flags win over environment, environment over the file. See leakyd(8).\n");
}

/* Defaults → file → environment → flags. */
static enum lt_err build_config(const struct overrides *o, struct lt_config *cfg, char *err)
{
	enum lt_err e;
	if (o->config_path) {
		e = lt_config_load(o->config_path, cfg, err);
		if (e)
			return e;
	} else {
		lt_config_defaults(cfg);
	}
	/* An environment value is only looked at when no flag replaces it. */
	if (o->env_data_dir && !o->data_dir &&
	    (e = lt_config_set(cfg, "storage", "data_dir", o->env_data_dir, "LEAKYD_DATA_DIR",
			       err)))
		return e;
	if (o->env_listen && !o->listen &&
	    (e = lt_config_set(cfg, "http", "listen", o->env_listen, "LEAKYD_LISTEN", err)))
		return e;
	if (o->data_dir &&
	    (e = lt_config_set(cfg, "storage", "data_dir", o->data_dir, "--data-dir", err)))
		return e;
	if (o->listen && (e = lt_config_set(cfg, "http", "listen", o->listen, "--listen", err)))
		return e;
	if (o->stubs_listen &&
	    (e = lt_config_set(cfg, "stubs", "listen", o->stubs_listen, "--stubs-listen", err)))
		return e;
	return LT_OK;
}

static void on_group(void *arg, size_t n)
{
	struct lt_server *srv = arg;
	lt_histogram_observe(srv->m.writer_group,
			     lt_metric_series(&srv->metrics, srv->m.writer_group, NULL), (double)n);
	lt_relay_kick(&srv->relay); /* the group may have added outbox rows */
}

/* The event log under <data_dir>/events, recovered. */
static int open_events(struct lt_server *srv, const struct lt_config *cfg)
{
	char path[LT_CFG_STR_MAX + 16], why[256] = "";
	if (lt_datadir_path(cfg->storage_data_dir, "events", path, sizeof path)) {
		lt_log_error(&srv->log, "data directory path too long");
		return EX_CONFIG;
	}
	struct lt_evlog_opts o;
	lt_evlog_opts_default(&o);
	o.segment_bytes = cfg->events_segment_bytes;
	o.retention_ms = cfg->events_retention_hours * 3600 * INT64_C(1000);
	o.retention_bytes = cfg->events_retention_bytes;
	o.fsync = cfg->events_fsync;
	struct lt_evlog_recovery rec = {0};
	enum lt_err e = lt_evlog_open(path, &o, &srv->evlog, &rec, why, sizeof why);
	if (e) {
		lt_log_error(&srv->log, "event log %s: %s%s%s", path, lt_strerror(e),
			     why[0] ? ": " : "", why);
		return EX_IOERR;
	}
	if (rec.truncated_bytes)
		lt_log_warn(&srv->log,
			    "event log: cut %llu byte(s) of torn tail from %zu topic(s) (a crash "
			    "mid-append; nothing acknowledged was lost)",
			    (unsigned long long)rec.truncated_bytes, rec.truncated_topics);
	return 0;
}

static void observe_event_lag(void *arg, int64_t lag_ms)
{
	struct lt_server *srv = arg;
	lt_histogram_observe(srv->m.relay_event_lag,
			     lt_metric_series(&srv->metrics, srv->m.relay_event_lag, NULL),
			     (double)(lag_ms < 0 ? 0 : lag_ms) / 1000.0);
}

/* analytics.db (migrated), its ingest thread and its reader pool. */
static int start_analytics(struct lt_server *srv, const struct lt_config *cfg)
{
	char err[LT_DB_ERR_MAX] = "";
	const char *dir = cfg->storage_data_dir;
	enum lt_err e = lt_an_db_open(dir, false, (int)cfg->storage_sqlite_synchronous,
				      (int)cfg->storage_busy_timeout_ms, &srv->analytics_db, err);
	if (e) {
		lt_log_error(&srv->log, "analytics.db: %s", err[0] ? err : lt_strerror(e));
		return e == LT_ESCHEMA ? EX_DATAERR : EX_IOERR;
	}
	struct lt_an_ingest *g = &srv->ingest;
	g->evlog = srv->evlog;
	g->db = srv->analytics_db;
	g->clock = &srv->clock;
	g->log = &srv->log;
	g->poll_ms = cfg->analytics_ingest_poll_ms;
	g->batch = (size_t)cfg->analytics_ingest_batch;
	char path[LT_CFG_STR_MAX + 32];
	if ((e = lt_an_ingest_init(g)) != LT_OK) {
		lt_log_error(&srv->log, "analytics ingest: %s", lt_strerror(e));
		lt_db_close(srv->analytics_db);
		srv->analytics_db = NULL;
		return EX_SOFTWARE;
	}
	if (lt_datadir_path(dir, LT_ANALYTICS_DB, path, sizeof path) ||
	    lt_dbpool_open(&srv->analytics_readers, path, (size_t)cfg->analytics_readers,
			   (int)cfg->storage_busy_timeout_ms, err)) {
		lt_log_error(&srv->log, "analytics.db readers: %s", err);
		lt_an_ingest_release(g);
		lt_db_close(srv->analytics_db);
		srv->analytics_db = NULL;
		return EX_IOERR;
	}
	if ((e = lt_an_ingest_start(g)) != LT_OK) {
		lt_log_error(&srv->log, "analytics ingest thread: %s", lt_strerror(e));
		lt_dbpool_close(&srv->analytics_readers);
		lt_an_ingest_release(g);
		lt_db_close(srv->analytics_db);
		srv->analytics_db = NULL;
		return EX_OSERR;
	}
	srv->analytics_open = true;
	return 0;
}

/* The relay, once the readers exist (after auth). */
static int start_relay(struct lt_server *srv, const struct lt_config *cfg)
{
	struct lt_relay *r = &srv->relay;
	r->evlog = srv->evlog;
	r->writer = &srv->writer;
	r->readers = &srv->auth.readers;
	r->clock = &srv->clock;
	r->log = &srv->log;
	snprintf(srv->wal_path, sizeof srv->wal_path, "%s-wal", srv->db_path);
	r->wal_path = srv->wal_path;
	r->poll_ms = cfg->events_relay_poll_ms;
	r->batch = (size_t)cfg->events_relay_batch;
	r->observe = observe_event_lag;
	r->observe_arg = srv;
	enum lt_err e = lt_relay_start(r);
	if (e) {
		lt_log_error(&srv->log, "event relay: %s", lt_strerror(e));
		return EX_SOFTWARE;
	}
	return 0;
}

struct recover_op {
	int64_t now_ms;
	size_t released;
};

static enum lt_err op_recover(struct sqlite3 *db, void *arg)
{
	struct recover_op *r = arg;
	return lt_pool_store_recover(db, r->now_ms, &r->released);
}

static int open_storage(struct lt_server *srv, const struct lt_config *cfg)
{
	char err[LT_DATADIR_ERR_MAX > LT_KV_ERR_MAX ? LT_DATADIR_ERR_MAX : LT_KV_ERR_MAX];
	const char *dir = cfg->storage_data_dir;
	if (lt_datadir_prepare(dir, err)) {
		lt_log_error(&srv->log, "data directory: %s", err);
		return EX_CANTCREAT;
	}
	if (lt_datadir_path(dir, "leaky.db", srv->db_path, sizeof srv->db_path) ||
	    lt_datadir_path(dir, "buckets", srv->kv_path, sizeof srv->kv_path)) {
		lt_log_error(&srv->log, "data directory path too long");
		return EX_CONFIG;
	}
	int from = 0, to = 0;
	enum lt_err e =
		lt_storage_open_db(dir, (int)cfg->storage_sqlite_synchronous,
				   (int)cfg->storage_busy_timeout_ms, &srv->db, &from, &to, err);
	if (e) {
		lt_log_error(&srv->log, "leaky.db: %s", err);
		return e == LT_ESCHEMA ? EX_DATAERR : EX_IOERR;
	}
	atomic_fetch_or(&srv->ready, LT_READY_STORAGE | LT_READY_MIGRATED);
	if (from != to)
		lt_log_info(&srv->log, "leaky.db migrated from schema %d to %d", from, to);
	e = lt_kv_open(srv->kv_path, (uint64_t)cfg->storage_lmdb_map_size, false, &srv->kv, err);
	if (e == LT_ECORRUPT) {
		/* Rate-limit state is soft: keep the damaged copy aside, start empty. */
		char aside[sizeof srv->kv_path + 32];
		snprintf(aside, sizeof aside, "%s.corrupt-%lld", srv->kv_path,
			 (long long)(lt_clock_real_ns() / LT_NS_PER_S));
		lt_log_error(&srv->log, "bucket store damaged (%s); moved to %s, starting empty",
			     err, aside);
		if (rename(srv->kv_path, aside) == 0)
			e = lt_kv_open(srv->kv_path, (uint64_t)cfg->storage_lmdb_map_size, false,
				       &srv->kv, err);
	}
	if (e) {
		lt_log_error(&srv->log, "bucket store: %s", err);
		return EX_IOERR;
	}
	atomic_fetch_or(&srv->ready, LT_READY_BUCKETS);
	e = lt_writer_start(&srv->writer, srv->db, (size_t)cfg->storage_writer_queue,
			    (size_t)cfg->storage_writer_batch, on_group, srv);
	if (e) {
		lt_log_error(&srv->log, "writer thread: %s", lt_strerror(e));
		return EX_OSERR;
	}
	atomic_fetch_or(&srv->ready, LT_READY_WRITER);
	/* No call survives a restart: give back what open reservations hold. */
	struct recover_op rec = {lt_clock_now_ns(&srv->clock) / LT_NS_PER_MS, 0};
	e = lt_writer_run(&srv->writer, op_recover, &rec);
	if (e) {
		lt_log_error(&srv->log, "releasing open reservations: %s", lt_strerror(e));
		return EX_IOERR;
	}
	if (rec.released)
		lt_log_warn(&srv->log, "released %zu reservation(s) left open by the last run",
			    rec.released);
	char aerr[LT_AUTH_ERR_MAX];
	e = lt_auth_open(&srv->auth, cfg, dir, srv->db_path, srv->kv, &srv->writer, &srv->clock,
			 &srv->log, aerr);
	if (e) {
		lt_log_error(&srv->log, "%s", aerr);
		return e == LT_ECONFIG ? EX_CONFIG : EX_SOFTWARE;
	}
	int rc = open_events(srv, cfg);
	if (!rc)
		rc = start_relay(srv, cfg);
	if (!rc)
		rc = start_analytics(srv, cfg);
	if (rc)
		return rc;
	/* the purchase sagas' workers, resuming what the last run left */
	if (lt_sagas_start(srv) != LT_OK)
		return EX_SOFTWARE;
	atomic_fetch_or(&srv->ready, LT_READY_AUTH);
	return 0;
}

struct reload_log {
	struct lt_server *srv;
};

static void log_diff(void *arg, const struct lt_config_key *k, const char *old_value,
		     const char *new_value, bool applied)
{
	struct reload_log *rl = arg;
	if (applied)
		lt_log_info(&rl->srv->log, "reload: [%s] %s changed from '%s' to '%s'", k->section,
			    k->name, old_value, new_value);
	else
		lt_log_warn(&rl->srv->log,
			    "reload: [%s] %s changed from '%s' to '%s' but needs a restart; "
			    "keeping '%s'",
			    k->section, k->name, old_value, new_value, old_value);
}

static void reload(struct lt_server *srv, const struct overrides *o);

static void apply_runtime(struct lt_server *srv, const struct lt_config *cfg)
{
	atomic_store(&srv->log.level, (int)cfg->log_level);
	atomic_store(&srv->log.access, cfg->log_access);
	if (srv->stubs)
		lt_stubs_reload(srv->stubs, cfg);
	if (srv->providers.log)
		lt_registry_configure(&srv->providers, cfg);
}

static enum lt_err start_stubs(struct lt_server *srv, const struct lt_config *cfg)
{
	char why[512];
	enum lt_err e = lt_stubs_start(cfg, &srv->log, &srv->stubs, why, sizeof why);
	if (e) {
		lt_log_error(&srv->log, "provider stubs: %s", why);
		return e;
	}
	char extra[128];
	snprintf(extra, sizeof extra, ",\"stubs_port\":%d,\"stubs_tls_port\":%d",
		 lt_stubs_port(srv->stubs), lt_stubs_tls_port(srv->stubs));
	lt_log_msg(&srv->log, LT_LOG_INFO, extra, "provider stubs listening on %s (port %d)",
		   cfg->stubs_listen, lt_stubs_port(srv->stubs));
	return LT_OK;
}

/* --stubs-only: the stubs and nothing else, until SIGTERM or SIGINT. */
static int run_stubs_only(struct lt_server *srv, const struct overrides *o, sigset_t *sigs)
{
	const struct lt_config *cfg = lt_server_config_acquire(srv);
	enum lt_err e = start_stubs(srv, cfg);
	lt_server_config_release(srv, cfg);
	if (e)
		return EX_UNAVAILABLE;
	for (;;) {
		int sig = 0;
		if (sigwait(sigs, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			reload(srv, o);
			continue;
		}
		break;
	}
	lt_stubs_stop(srv->stubs);
	srv->stubs = NULL;
	lt_log_info(&srv->log, "stopped");
	return 0;
}

static void reload(struct lt_server *srv, const struct overrides *o)
{
	struct lt_config *next = malloc(sizeof *next);
	char err[LT_CFG_ERR_MAX];
	const char *outcome = "ok";
	if (!next) {
		lt_log_error(&srv->log, "reload: out of memory");
		return;
	}
	if (build_config(o, next, err)) {
		lt_log_error(&srv->log, "reload failed, configuration unchanged: %s", err);
		outcome = "error";
	} else {
		/* compare the file with the file: runtime feature overrides are
		 * not changes of the configuration */
		struct lt_config *was = malloc(sizeof *was);
		const struct lt_config *cur = lt_server_config_acquire(srv);
		if (was) {
			*was = *cur;
			lt_server_config_unpin(srv, was);
		}
		struct reload_log rl = {srv};
		size_t n = lt_config_merge_reload(was ? was : cur, next, log_diff, &rl);
		lt_server_config_release(srv, cur);
		free(was);
		if (lt_server_config_install(srv, next)) {
			lt_log_error(&srv->log, "reload: out of memory");
			outcome = "error";
		} else {
			apply_runtime(srv, next);
			lt_log_info(&srv->log, "reload: configuration reloaded (%zu change%s)", n,
				    n == 1 ? "" : "s");
		}
	}
	const char *labels[] = {outcome};
	lt_counter_add(lt_metric_series(&srv->metrics, srv->m.reloads, labels), 1);
	free(next);
}

static void drain(struct lt_server *srv, sigset_t *sigs)
{
	const struct lt_config *cfg = lt_server_config_acquire(srv);
	int64_t deadline = lt_clock_mono_ns() + cfg->http_drain_timeout_ms * LT_NS_PER_MS;
	lt_server_config_release(srv, cfg);
	atomic_fetch_or(&srv->ready, LT_READY_DRAINING);
	lt_log_info(&srv->log, "draining: %d request(s) in flight", atomic_load(&srv->inflight));
	while (atomic_load(&srv->inflight) > 0 && lt_clock_mono_ns() < deadline) {
		struct timespec ts = {0, 10 * 1000000L};
		int sig = sigtimedwait(sigs, NULL, &ts);
		if (sig == SIGTERM || sig == SIGINT) {
			lt_log_warn(&srv->log, "second signal: not waiting for in-flight requests");
			break;
		}
	}
	int left = atomic_load(&srv->inflight);
	if (left == 0)
		lt_http_stop(srv);
	else
		lt_log_warn(&srv->log, "leaving with %d request(s) still in flight", left);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"data-dir", required_argument, NULL, 'd'},
		{"listen", required_argument, NULL, 'l'},
		{"stubs-listen", required_argument, NULL, 'S'},
		{"stubs-only", no_argument, NULL, 'O'},
		{"check-config", no_argument, NULL, 'C'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct overrides o = {0};
	bool check_only = false, stubs_only = false;
	int c;
	while ((c = getopt_long(argc, argv, "c:d:l:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': o.config_path = optarg; break;
		case 'd': o.data_dir = optarg; break;
		case 'l': o.listen = optarg; break;
		case 'S': o.stubs_listen = optarg; break;
		case 'C': check_only = true; break;
		case 'O': stubs_only = true; break;
		case 'V': printf("leakyd %s (%s)\n", LT_VERSION, LT_GIT_REV); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EX_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "leakyd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EX_USAGE;
	}
	if (!o.config_path) {
		const char *env = getenv("LEAKYD_CONFIG");
		if (env && *env)
			o.config_path = env;
	}
	o.env_data_dir = getenv("LEAKYD_DATA_DIR");
	o.env_listen = getenv("LEAKYD_LISTEN");
	if (o.env_data_dir && !*o.env_data_dir)
		o.env_data_dir = NULL;
	if (o.env_listen && !*o.env_listen)
		o.env_listen = NULL;

	struct lt_config *cfg = malloc(sizeof *cfg);
	char err[LT_CFG_ERR_MAX];
	if (!cfg)
		return EX_OSERR;
	if (build_config(&o, cfg, err)) {
		fprintf(stderr, "leakyd: %s\n", err);
		free(cfg);
		return EX_CONFIG;
	}
	if (check_only) {
		printf("leakyd: configuration OK (%s)\n",
		       o.config_path ? o.config_path : "built-in defaults");
		free(cfg);
		return 0;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "leakyd: libsodium failed to initialise\n");
		free(cfg);
		return EX_SOFTWARE;
	}

	/* Everything leakyd creates (data dir, databases, secrets, logs) is
	 * for its own user only. */
	umask(077);

	/* Signals go to the main thread only: block them before any thread. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct lt_server srv;
	memset(&srv, 0, sizeof srv);
	pthread_mutex_init(&srv.cfg_lock, NULL);
	srv.start_ns = lt_clock_real_ns();
	lt_clock_init(&srv.clock, cfg->debug_manual_clock);
	lt_log_init(&srv.log, STDERR_FILENO, (enum lt_log_level)cfg->log_level, cfg->log_access);
	if (cfg->log_file[0] && lt_log_open(&srv.log, cfg->log_file)) {
		fprintf(stderr, "leakyd: cannot open log file %s: %s\n", cfg->log_file,
			strerror(errno));
		free(cfg);
		return EX_CANTCREAT;
	}
	lt_metrics_init(&srv.metrics);
	if (lt_server_config_install(&srv, cfg) || lt_observe_register(&srv, LT_VERSION)) {
		fprintf(stderr, "leakyd: out of memory\n");
		free(cfg);
		return EX_OSERR;
	}
	if (stubs_only) {
		free(cfg);
		int src = run_stubs_only(&srv, &o, &sigs);
		lt_metrics_release(&srv.metrics);
		lt_server_config_release(&srv, &srv.config->cfg);
		lt_log_release(&srv.log);
		pthread_mutex_destroy(&srv.cfg_lock);
		return src;
	}
	{
		char sdir[LT_CFG_STR_MAX + 16];
		snprintf(sdir, sizeof sdir, "%s/secrets", cfg->storage_data_dir);
		if (lt_usage_hook_init(&srv) || lt_spend_metrics_init(&srv) ||
		    lt_registry_init(&srv.providers, &srv.clock, &srv.log, &srv.metrics, sdir)) {
			fprintf(stderr, "leakyd: out of memory\n");
			free(cfg);
			return EX_OSERR;
		}
	}
	srv.routes = lt_api_routes(&srv.nroutes);
	if (cfg->debug_manual_clock)
		lt_log_warn(&srv.log, "manual clock is on ([debug] manual_clock): for tests only");
	if (cfg->stubs_enabled && start_stubs(&srv, cfg)) {
		free(cfg);
		lt_registry_release(&srv.providers);
		lt_metrics_release(&srv.metrics);
		lt_server_config_release(&srv, &srv.config->cfg);
		lt_log_release(&srv.log);
		pthread_mutex_destroy(&srv.cfg_lock);
		return EX_UNAVAILABLE;
	}

	char herr[LT_HTTP_ERR_MAX];
	if (lt_http_start(&srv, herr)) {
		lt_log_error(&srv.log, "%s", herr);
		free(cfg);
		/* Nothing else has started: release what main owns (LSan). */
		if (srv.stubs)
			lt_stubs_stop(srv.stubs);
		lt_registry_release(&srv.providers);
		lt_metrics_release(&srv.metrics);
		lt_server_config_release(&srv, &srv.config->cfg);
		lt_log_release(&srv.log);
		pthread_mutex_destroy(&srv.cfg_lock);
		return EX_UNAVAILABLE;
	}
	{
		char extra[128];
		snprintf(extra, sizeof extra, ",\"port\":%d", srv.http_port);
		lt_log_msg(&srv.log, LT_LOG_INFO, extra, "leakyd %s listening on %s (port %d)",
			   LT_VERSION, cfg->http_listen, srv.http_port);
	}
	struct lt_scheduler sched = {0};
	int rc = open_storage(&srv, cfg);
	if (!rc)
		lt_registry_configure(&srv.providers, cfg);
	if (!rc && lt_scheduler_start(&sched, &srv)) {
		lt_log_error(&srv.log, "cannot start the scheduler thread");
		rc = EX_OSERR;
	}
	free(cfg);
	cfg = NULL;
	if (!rc) {
		lt_log_info(&srv.log, "ready");
		for (;;) {
			int sig = 0;
			if (sigwait(&sigs, &sig) != 0)
				continue;
			if (sig == SIGHUP) {
				lt_log_info(&srv.log, "SIGHUP: reloading configuration");
				reload(&srv, &o);
				continue;
			}
			lt_log_info(&srv.log, "%s: shutting down",
				    sig == SIGTERM ? "SIGTERM" : "SIGINT");
			break;
		}
		drain(&srv, &sigs);
	} else {
		atomic_fetch_or(&srv.ready, LT_READY_DRAINING);
		lt_http_stop(&srv);
	}
	lt_scheduler_stop(&sched);
	lt_sagas_stop(&srv); /* after the scheduler (it ticks them), before the relay */
	if (srv.stubs) {
		lt_stubs_stop(srv.stubs);
		srv.stubs = NULL;
	}
	/* the last outbox rows, while the writer and the readers still run */
	lt_relay_stop(&srv.relay);
	if (srv.analytics_open) {
		lt_an_ingest_stop(&srv.ingest);
		if (atomic_load(&srv.inflight) == 0) { /* else handlers may still read */
			lt_dbpool_close(&srv.analytics_readers);
			lt_an_ingest_release(&srv.ingest);
			lt_db_close(srv.analytics_db);
			srv.analytics_db = NULL;
			srv.analytics_open = false;
		}
	}
	if (atomic_load(&srv.inflight) == 0) /* else handlers may still use it */
		lt_auth_close(&srv.auth);
	lt_writer_stop(&srv.writer);
	if (atomic_load(&srv.inflight) == 0) {
		lt_evlog_close(srv.evlog);
		srv.evlog = NULL;
	}
	if (atomic_load(&srv.inflight) == 0) { /* else a late handler may still settle buckets */
		lt_kv_close(srv.kv);
		srv.kv = NULL;
	} else {
		(void)lt_kv_sync(srv.kv);
	}
	lt_db_close(srv.db);
	srv.db = NULL;
	lt_log_info(&srv.log, "stopped");
	if (atomic_load(&srv.inflight) > 0) {
		/* Workers are still inside handlers; the stores are closed and
		 * flushed, so leave without joining them. */
		_exit(rc);
	}
	lt_writer_release(&srv.writer);
	lt_registry_release(&srv.providers);
	lt_metrics_release(&srv.metrics);
	lt_server_config_release(&srv, &srv.config->cfg);
	lt_log_release(&srv.log);
	pthread_mutex_destroy(&srv.cfg_lock);
	return rc;
}
