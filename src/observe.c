/*
 * observe.c — registering and refreshing leakyd's metrics.  See observe.h.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "observe.h"
#include "server.h"
#include "events/evlog.h"
#include "events/outbox.h"
#include "store/kv.h"
#include "store/stmt.h"

static const double duration_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
					 0.01,	 0.025,	  0.05,	  0.1,	 0.25,	 0.5,
					 1,	 2.5,	  5,	  10,	 30};
static const double group_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

#define REG(type, name, help, nl, labels, nb, bounds, max, out)                                    \
	do {                                                                                       \
		enum lt_err e_ = lt_metrics_register(&srv->metrics, type, name, help, nl, labels,  \
						     nb, bounds, max, out);                        \
		if (e_)                                                                            \
			return e_;                                                                 \
	} while (0)

enum lt_err lt_observe_register(struct lt_server *srv, const char *version)
{
	static const char *const rms[] = {"route", "method", "status"};
	static const char *const route[] = {"route", "method", "status"};
	static const char *const reason[] = {"reason"};
	static const char *const ver[] = {"version"};
	static const char *const file[] = {"file"};
	static const char *const kind[] = {"kind"};
	static const char *const outcome[] = {"outcome"};
	struct lt_server_metrics *m = &srv->m;
	REG(LT_METRIC_COUNTER, "leaky_http_requests_total",
	    "HTTP requests by route pattern, method and status.", 3, rms, 0, NULL, 2048,
	    &m->requests);
	REG(LT_METRIC_HISTOGRAM, "leaky_http_request_duration_seconds",
	    "Time from request start to response written, by route pattern, method and status.", 3,
	    route, sizeof duration_bounds / sizeof duration_bounds[0], duration_bounds, 2048,
	    &m->duration);
	REG(LT_METRIC_GAUGE, "leaky_http_inflight_requests", "Requests being handled now.", 0, NULL,
	    0, NULL, 1, &m->inflight);
	REG(LT_METRIC_COUNTER, "leaky_http_rejected_total",
	    "Requests refused before routing (draining, in-flight limit).", 1, reason, 0, NULL, 16,
	    &m->rejected);
	REG(LT_METRIC_GAUGE, "leaky_build_info", "Build information; the value is always 1.", 1,
	    ver, 0, NULL, 1, &m->build_info);
	REG(LT_METRIC_GAUGE, "process_start_time_seconds",
	    "Start time of the process since the Unix epoch.", 0, NULL, 0, NULL, 1, &m->start_time);
	REG(LT_METRIC_GAUGE, "leaky_sqlite_file_bytes", "Size of leaky.db and its WAL file.", 1,
	    file, 0, NULL, 4, &m->db_bytes);
	REG(LT_METRIC_GAUGE, "leaky_lmdb_bytes", "LMDB bucket store: map size and bytes in use.", 1,
	    kind, 0, NULL, 4, &m->kv_bytes);
	REG(LT_METRIC_GAUGE, "leaky_lmdb_entries", "Records in the LMDB bucket store.", 0, NULL, 0,
	    NULL, 1, &m->kv_entries);
	REG(LT_METRIC_COUNTER, "leaky_writer_commits_total",
	    "Transactions committed by the writer thread.", 0, NULL, 0, NULL, 1,
	    &m->writer_commits);
	REG(LT_METRIC_COUNTER, "leaky_writer_writes_total",
	    "Writes handled by the writer thread, by outcome.", 1, outcome, 0, NULL, 4,
	    &m->writer_writes);
	REG(LT_METRIC_GAUGE, "leaky_writer_queue_depth", "Writes waiting for the writer thread.", 0,
	    NULL, 0, NULL, 1, &m->writer_depth);
	REG(LT_METRIC_HISTOGRAM, "leaky_writer_group_size",
	    "Writes committed per transaction (group commit).", 0, NULL,
	    sizeof group_bounds / sizeof group_bounds[0], group_bounds, 1, &m->writer_group);
	REG(LT_METRIC_COUNTER, "leaky_config_reloads_total",
	    "SIGHUP configuration reloads, by outcome.", 1, outcome, 0, NULL, 4, &m->reloads);
	static const char *const topic[] = {"topic"};
	REG(LT_METRIC_GAUGE, "leaky_outbox_pending", "Outbox rows not yet in the event log.", 0,
	    NULL, 0, NULL, 1, &m->outbox_pending);
	REG(LT_METRIC_GAUGE, "leaky_outbox_oldest_pending_seconds",
	    "Age of the oldest outbox row not yet in the event log (0 when none).", 0, NULL, 0,
	    NULL, 1, &m->outbox_oldest_age);
	REG(LT_METRIC_COUNTER, "leaky_events_published_total",
	    "Events the relay appended to the event log.", 0, NULL, 0, NULL, 1,
	    &m->events_published);
	REG(LT_METRIC_COUNTER, "leaky_relay_failures_total",
	    "Relay appends or publish marks that failed (retried).", 0, NULL, 0, NULL, 1,
	    &m->relay_failures);
	REG(LT_METRIC_GAUGE, "leaky_relay_lag_seconds",
	    "Commit-to-log delay of the relay's last batch (its oldest row).", 0, NULL, 0, NULL, 1,
	    &m->relay_lag);
	static const double lag_bounds[] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
					    0.2,   0.5,	  1,	 2,    5,    10};
	REG(LT_METRIC_HISTOGRAM, "leaky_relay_event_lag_seconds",
	    "Commit-to-log delay of each event the relay appended (ms resolution).", 0, NULL,
	    sizeof lag_bounds / sizeof lag_bounds[0], lag_bounds, 1, &m->relay_event_lag);
	static const char *const status[] = {"status"};
	REG(LT_METRIC_GAUGE, "leaky_sagas", "Purchase sagas by status (all, final ones included).",
	    1, status, 0, NULL, 8, &m->sagas);
	REG(LT_METRIC_COUNTER, "leaky_analytics_events_total",
	    "Usage events the analytics ingest consumed, by outcome (ingested, duplicate, bad, "
	    "skipped by retention).",
	    1, outcome, 0, NULL, 4, &m->an_events);
	REG(LT_METRIC_GAUGE, "leaky_analytics_lag_events",
	    "Usage events in the log not yet in analytics.db.", 0, NULL, 0, NULL, 1, &m->an_lag);
	REG(LT_METRIC_COUNTER, "leaky_analytics_failures_total",
	    "Analytics ingest batches rolled back (retried).", 0, NULL, 0, NULL, 1,
	    &m->an_failures);
	REG(LT_METRIC_GAUGE, "leaky_events_end_offset", "Next offset of each event log topic.", 1,
	    topic, 0, NULL, 64, &m->events_end);

	const char *v[] = {version};
	lt_gauge_set(lt_metric_series(&srv->metrics, m->build_info, v), 1);
	lt_gauge_set(lt_metric_series(&srv->metrics, m->start_time, NULL),
		     (double)srv->start_ns / 1e9);
	m->inflight_s = lt_metric_series(&srv->metrics, m->inflight, NULL);
	lt_gauge_set(m->inflight_s, 0);
	return LT_OK;
}

static double file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (double)st.st_size : 0.0;
}

static void observe_topic(void *arg, const struct lt_evlog_topic_stat *st)
{
	struct lt_server *srv = arg;
	const char *l[] = {st->name};
	lt_gauge_set(lt_metric_series(&srv->metrics, srv->m.events_end, l), (double)st->end);
}

/* Outbox depth and age (a reader connection), relay counters, topic ends. */
static void store_counter(struct lt_server *srv, struct lt_metric_family *f, const char *label,
			  uint64_t v)
{
	const char *l[] = {label};
	struct lt_series *c = lt_metric_series(&srv->metrics, f, label ? l : NULL);
	if (c)
		atomic_store(&c->value, v);
}

/* The analytics ingest's counters (atomics, any thread). */
static void observe_analytics(struct lt_server *srv)
{
	struct lt_server_metrics *m = &srv->m;
	if (!srv->analytics_open)
		return;
	const struct lt_an_ingest_stats *st = &srv->ingest.stats;
	store_counter(srv, m->an_events, "ingested", atomic_load(&st->events));
	store_counter(srv, m->an_events, "duplicate", atomic_load(&st->duplicates));
	store_counter(srv, m->an_events, "bad", atomic_load(&st->bad));
	store_counter(srv, m->an_events, "skipped", atomic_load(&st->skipped));
	store_counter(srv, m->an_failures, NULL, atomic_load(&st->failures));
	lt_gauge_set(lt_metric_series(&srv->metrics, m->an_lag, NULL),
		     (double)lt_an_ingest_lag(&srv->ingest));
}

static void observe_events(struct lt_server *srv)
{
	struct lt_server_metrics *m = &srv->m;
	observe_analytics(srv);
	struct lt_series *c = lt_metric_series(&srv->metrics, m->events_published, NULL);
	if (c)
		atomic_store(&c->value, atomic_load(&srv->relay.published));
	c = lt_metric_series(&srv->metrics, m->relay_failures, NULL);
	if (c)
		atomic_store(&c->value, atomic_load(&srv->relay.failures));
	lt_gauge_set(lt_metric_series(&srv->metrics, m->relay_lag, NULL),
		     (double)atomic_load(&srv->relay.lag_ms) / 1000.0);
	if (!lt_server_is_ready(srv))
		return;
	if (srv->evlog)
		(void)lt_evlog_stat(srv->evlog, observe_topic, srv);
	struct sqlite3 *db;
	if (lt_dbpool_acquire(&srv->auth.readers, 1000, &db))
		return;
	/* every status, so one that emptied reads 0, not its last count */
	static const char *const statuses[] = {"STARTED",   "PAYMENT_RESERVED", "TOKENS_ALLOCATED",
					       "COMPLETED", "COMPENSATING",	"FAILED"};
	int64_t counts[6] = {0};
	sqlite3_stmt *st;
	if (lt_stmt_prep(db, "SELECT status, count(*) FROM sagas GROUP BY status", &st) == LT_OK) {
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *name = (const char *)sqlite3_column_text(st, 0);
			for (size_t i = 0; name && i < 6; i++)
				if (!strcmp(name, statuses[i]))
					counts[i] = sqlite3_column_int64(st, 1);
		}
		lt_stmt_put(st);
		for (size_t i = 0; i < 6; i++) {
			const char *l[] = {statuses[i]};
			lt_gauge_set(lt_metric_series(&srv->metrics, m->sagas, l),
				     (double)counts[i]);
		}
	}
	struct lt_outbox_stat os;
	if (lt_outbox_stat(db, &os) == LT_OK) {
		int64_t now = lt_clock_now_ns(&srv->clock) / LT_NS_PER_MS;
		lt_gauge_set(lt_metric_series(&srv->metrics, m->outbox_pending, NULL),
			     (double)os.pending);
		lt_gauge_set(lt_metric_series(&srv->metrics, m->outbox_oldest_age, NULL),
			     os.pending && now > os.oldest_pending_ms
				     ? (double)(now - os.oldest_pending_ms) / 1000.0
				     : 0.0);
	}
	lt_dbpool_release(&srv->auth.readers, db);
}

void lt_observe_collect(struct lt_server *srv)
{
	struct lt_server_metrics *m = &srv->m;
	observe_events(srv);
	if (srv->providers.log) {
		const struct lt_config *cfg = lt_server_config_acquire(srv);
		lt_registry_observe(&srv->providers, cfg);
		lt_server_config_release(srv, cfg);
	}
	/* Workers set the gauge as they start and end requests, but two racing
	 * workers can store their counts out of order; at scrape time read the
	 * counter itself so the rendered value is exact. */
	lt_gauge_set(m->inflight_s, atomic_load(&srv->inflight));
	char wal[sizeof srv->db_path + 8];
	const char *db[] = {"leaky.db"}, *dbw[] = {"leaky.db-wal"};
	snprintf(wal, sizeof wal, "%s-wal", srv->db_path);
	lt_gauge_set(lt_metric_series(&srv->metrics, m->db_bytes, db), file_size(srv->db_path));
	lt_gauge_set(lt_metric_series(&srv->metrics, m->db_bytes, dbw), file_size(wal));
	if (srv->kv) {
		struct lt_kv_stat ks;
		if (lt_kv_stat(srv->kv, &ks) == LT_OK) {
			const char *ms[] = {"map_size"}, *used[] = {"used"};
			lt_gauge_set(lt_metric_series(&srv->metrics, m->kv_bytes, ms),
				     (double)ks.map_size);
			lt_gauge_set(lt_metric_series(&srv->metrics, m->kv_bytes, used),
				     (double)ks.used_bytes);
			lt_gauge_set(lt_metric_series(&srv->metrics, m->kv_entries, NULL),
				     (double)ks.entries);
		}
	}
	struct lt_writer_stats ws = {0};
	lt_writer_get_stats(&srv->writer, &ws);
	/* Counters mirror the writer's own atomics: set, not add. */
	struct lt_series *c = lt_metric_series(&srv->metrics, m->writer_commits, NULL);
	if (c)
		atomic_store(&c->value, ws.commits);
	const char *okl[] = {"ok"}, *fl[] = {"failed"};
	struct lt_series *ok = lt_metric_series(&srv->metrics, m->writer_writes, okl);
	struct lt_series *fail = lt_metric_series(&srv->metrics, m->writer_writes, fl);
	if (ok)
		atomic_store(&ok->value, ws.writes);
	if (fail)
		atomic_store(&fail->value, ws.failed);
	lt_gauge_set(lt_metric_series(&srv->metrics, m->writer_depth, NULL), (double)ws.depth);
}
