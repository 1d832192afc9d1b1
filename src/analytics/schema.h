/*
 * schema.h — analytics.db (issue 7): what the ingest writes and the
 * queries read.  Shared contract of src/analytics/store.c (creates and
 * appends) and src/analytics/query.c (reads).  Nothing here is ever
 * UPDATEd: facts and rollups are appended; retention drops whole day
 * tables.  Times are Unix milliseconds (UTC).
 *
 * analytics.db (SQLite, WAL; <data_dir>/analytics.db), migration 1:
 *
 *   meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT
 *   consumer_offsets                 as in leaky.db (events/consumer.h):
 *                                    the ingest's next offset of topic
 *                                    "token-usage", consumer "analytics",
 *                                    advanced in the same transaction as
 *                                    the rows it appended (exactly once)
 *   days (day TEXT PRIMARY KEY,      "YYYYMMDD" of every usage_ table
 *         created_at INTEGER NOT NULL) STRICT
 *
 *   usage_YYYYMMDD                   one per UTC day of the event's time,
 *                                    created on demand:
 *     event_id     INTEGER PRIMARY KEY   the event id (outbox id): a replay
 *                                        of the same event is a conflict,
 *                                        ignored (INSERT OR IGNORE)
 *     at           INTEGER NOT NULL      the event's "time"
 *     user_id      TEXT NOT NULL DEFAULT ''
 *     org_id       TEXT NOT NULL DEFAULT ''
 *     key_id       TEXT NOT NULL DEFAULT ''
 *     provider     TEXT NOT NULL
 *     model        TEXT NOT NULL DEFAULT ''
 *     endpoint     TEXT NOT NULL DEFAULT ''
 *     allowed      INTEGER NOT NULL      0 or 1
 *     reason       TEXT NOT NULL DEFAULT ''   the refusal reason, '' if none
 *     input, cached_input, output, reasoning, total, cost_micros, latency_ms
 *                  INTEGER NOT NULL DEFAULT 0
 *     correlation_id TEXT NOT NULL DEFAULT ''
 *     STRICT; index usage_YYYYMMDD_pt ON (provider, at)
 *
 *   rollup_minute                    appended per ingest batch: one row per
 *                                    (minute, user, org, provider, model) the
 *                                    batch touched, holding that batch's
 *                                    sums; a minute's totals are the SUM over
 *                                    its rows (several batches may add rows
 *                                    for one minute)
 *     minute       INTEGER NOT NULL      start of the UTC minute (ms)
 *     user_id, org_id, provider, model   TEXT NOT NULL DEFAULT ''
 *     requests, allowed, refused_rate, refused_quota, refused_other,
 *     input, cached_input, output, total, cost_micros, latency_sum
 *                  INTEGER NOT NULL DEFAULT 0
 *     latency_max  INTEGER NOT NULL DEFAULT 0    (MAX over rows)
 *     STRICT; index rollup_minute_t ON (minute, provider)
 *
 * refused_rate counts reason "rate_limited" and "request_too_large",
 * refused_quota "insufficient_quota", refused_other anything else that is
 * not allowed; a "provider_failed" event is allowed (it was admitted) with
 * zero tokens.
 */
#ifndef LT_ANALYTICS_SCHEMA_H
#define LT_ANALYTICS_SCHEMA_H

#define LT_ANALYTICS_CONSUMER "analytics"
#define LT_ANALYTICS_DB "analytics.db"

#endif
