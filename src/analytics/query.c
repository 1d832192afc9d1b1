/*
 * query.c — the read side of analytics.db: usage, report, anomalies, cost
 * and a user's day (see query.h; the tables are schema.h's, the window
 * arithmetic window.h's).
 *
 * Why the report reads the day tables and not the rollups: uniqueUsers and
 * the top users need the events of the exact window, and the window ends
 * at `now` (not on a minute boundary), so the day tables are needed anyway;
 * one GROUP BY user_id over the (provider, at) index range yields every
 * figure of the report in one pass, from one source, exactly.  The window
 * is at most 1440 minutes, so at most two day tables are read.  Cost and
 * the daily summary are minute-resolution by nature and read the rollups
 * (fewer rows, kept longer than the day tables).
 *
 * Day tables: the tables of the days a window touches are named from the
 * window (window.h's day names) and checked in sqlite_master inside the
 * read transaction; a statement naming one is built in a bounded buffer,
 * prepared for the call and finalized.  The restriction (query.h) is the
 * same SQL fragment everywhere, bound as ?10 (user id or NULL) and ?11 (a
 * JSON array of org ids, read with json_each).
 */
#include <stdio.h>
#include <string.h>

#include <sqlite3.h>

#include "analytics/query.h"
#include "store/stmt.h"
#include "util/buf.h"

/* The restriction fragment: ?10 user id (NULL: none), ?11 org ids (JSON). */
#define SCOPE_SQL "(?10 IS NULL OR user_id = ?10 OR org_id IN (SELECT value FROM json_each(?11)))"

#define TABLE_EXISTS_SQL "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1"
#define DAY_TABLES_SQL                                                                             \
	"SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB "                       \
	"'usage_[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]' ORDER BY name DESC"

#define TABLE_NAME_LEN 16 /* "usage_YYYYMMDD" + NUL */
#define MAX_DAYS 32	  /* days one report or anomaly query may touch (26 needed) */
#define SQL_MAX 16384

/* ---- shared helpers ---- */

/* A read transaction around one query: one snapshot of every table. */
static enum lt_err begin_read(sqlite3 *db)
{
	return lt_sqlite_err(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL));
}

static void end_read(sqlite3 *db)
{
	/* A read transaction: COMMIT only ends it; if that fails, ROLLBACK. */
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

/* The scope's org ids as a JSON array into orgs (caller releases). */
static enum lt_err scope_orgs(const struct lt_aq_scope *sc, struct lt_buf *orgs)
{
	lt_buf_putc(orgs, '[');
	if (sc && sc->user_id) {
		if (sc->norgs > LT_AQ_ORGS_MAX || (sc->norgs && !sc->org_ids))
			return LT_EINVAL;
		for (size_t i = 0; i < sc->norgs; i++) {
			if (i)
				lt_buf_putc(orgs, ',');
			const char *o = sc->org_ids[i] ? sc->org_ids[i] : "";
			lt_buf_put_json_str(orgs, o, strlen(o));
		}
	}
	lt_buf_putc(orgs, ']');
	return orgs->err;
}

/* Bind ?10 and ?11 (orgs: scope_orgs' text, alive until the statement is
 * put back). */
static enum lt_err bind_scope(sqlite3_stmt *st, const struct lt_aq_scope *sc,
			      const struct lt_buf *orgs)
{
	int rc = lt_stmt_bind_str(st, 10, sc ? sc->user_id : NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 11, orgs->data, (int)orgs->len, SQLITE_STATIC);
	return lt_sqlite_err(rc);
}

/* Does table `name` exist (in the current snapshot)? */
static enum lt_err table_exists(sqlite3 *db, const char *name, bool *yes)
{
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(db, TABLE_EXISTS_SQL, &st);
	if (e)
		return e;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	*yes = rc == SQLITE_ROW;
	lt_stmt_put(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? LT_OK : lt_sqlite_err(rc);
}

/* The existing day tables of the days [start, end) touches, oldest first:
 * names[0..*n).  LT_ERANGE if more than MAX_DAYS days. */
static enum lt_err window_tables(sqlite3 *db, int64_t start, int64_t end,
				 char names[MAX_DAYS][TABLE_NAME_LEN], size_t *n)
{
	*n = 0;
	if (end <= start)
		return LT_OK;
	int64_t first = lt_an_day_start(start), last = lt_an_day_start(end - 1);
	if ((last - first) / LT_AN_MS_DAY >= MAX_DAYS)
		return LT_ERANGE;
	for (int64_t d = first; d <= last; d += LT_AN_MS_DAY) {
		char day[LT_AN_DAY_LEN];
		lt_an_day_name(d, day);
		char *name = names[*n];
		snprintf(name, TABLE_NAME_LEN, "usage_%s", day);
		bool yes = false;
		enum lt_err e = table_exists(db, name, &yes);
		if (e)
			return e;
		if (yes)
			(*n)++;
	}
	return LT_OK;
}

/* Prepare a one-off statement (day tables: not cached). */
static enum lt_err prep_once(sqlite3 *db, const struct lt_buf *sql, sqlite3_stmt **st)
{
	*st = NULL;
	if (sql->err)
		return sql->err;
	return lt_sqlite_err(sqlite3_prepare_v2(db, sql->data, (int)sql->len + 1, st, NULL));
}

static enum lt_err step_err(int rc)
{
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? LT_OK
	       : lt_sqlite_err(rc)		     ? lt_sqlite_err(rc)
						     : LT_EIO;
}

/* ---- usage ---- */

enum lt_err lt_aq_usage(sqlite3 *db, const struct lt_aq_scope *sc, const char *provider, int limit,
			struct lt_aq_event *out, size_t *n)
{
	*n = 0;
	if (!provider || limit < 1 || limit > LT_AQ_USAGE_MAX)
		return LT_EINVAL;
	char ostack[1024];
	struct lt_buf orgs;
	lt_buf_init(&orgs, ostack, sizeof ostack, 1u << 16);
	enum lt_err e = scope_orgs(sc, &orgs);
	if (e) {
		lt_buf_release(&orgs);
		return e;
	}
	e = begin_read(db);
	if (e) {
		lt_buf_release(&orgs);
		return e;
	}
	sqlite3_stmt *tables = NULL;
	e = lt_stmt_prep(db, DAY_TABLES_SQL, &tables);
	int trc = SQLITE_DONE;
	/* Newest day first: a newer day table holds only later events, so the
	 * newest rows of each table, in turn, are the newest overall. */
	while (!e && (size_t)limit > *n && (trc = sqlite3_step(tables)) == SQLITE_ROW) {
		char name[TABLE_NAME_LEN];
		lt_stmt_copy_col(tables, 0, name, sizeof name);
		char sstack[512];
		struct lt_buf sql;
		lt_buf_init(&sql, sstack, sizeof sstack, SQL_MAX);
		lt_buf_printf(&sql,
			      "SELECT event_id, at, user_id, total, allowed FROM \"%s\" "
			      "WHERE provider = ?1 AND " SCOPE_SQL
			      " ORDER BY at DESC, event_id DESC LIMIT ?2",
			      name);
		sqlite3_stmt *st;
		e = prep_once(db, &sql, &st);
		lt_buf_release(&sql);
		if (e)
			break;
		sqlite3_bind_text(st, 1, provider, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)((size_t)limit - *n));
		e = bind_scope(st, sc, &orgs);
		int rc = SQLITE_DONE;
		while (!e && (size_t)limit > *n && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			struct lt_aq_event *ev = &out[(*n)++];
			ev->event_id = sqlite3_column_int64(st, 0);
			ev->at = sqlite3_column_int64(st, 1);
			lt_stmt_copy_col(st, 2, ev->user_id, sizeof ev->user_id);
			ev->tokens = sqlite3_column_int64(st, 3);
			ev->allowed = sqlite3_column_int64(st, 4) != 0;
		}
		if (!e)
			e = step_err(rc);
		sqlite3_finalize(st);
	}
	if (!e && trc != SQLITE_ROW)
		e = step_err(trc);
	if (tables)
		lt_stmt_put(tables);
	end_read(db);
	lt_buf_release(&orgs);
	return e;
}

/* ---- report ---- */

/* Does a rank above b (tokens desc, events desc, user id asc)? */
static bool ranks_above(const struct lt_aq_user_total *a, const struct lt_aq_user_total *b)
{
	if (a->tokens != b->tokens)
		return a->tokens > b->tokens;
	if (a->events != b->events)
		return a->events > b->events;
	return strcmp(a->user_id, b->user_id) < 0;
}

static void top_offer(struct lt_aq_report *r, const struct lt_aq_user_total *u)
{
	size_t i = r->ntop;
	if (i == LT_AQ_TOP) {
		if (!ranks_above(u, &r->top[LT_AQ_TOP - 1]))
			return;
		i = LT_AQ_TOP - 1;
	} else {
		r->ntop++;
	}
	while (i > 0 && ranks_above(u, &r->top[i - 1])) {
		r->top[i] = r->top[i - 1];
		i--;
	}
	r->top[i] = *u;
}

enum lt_err lt_aq_report(sqlite3 *db, const struct lt_aq_scope *sc, const char *provider,
			 int64_t start, int64_t end, struct lt_aq_report *out)
{
	*out = (struct lt_aq_report){.start = start, .end = end};
	if (!provider || end <= start)
		return LT_EINVAL;
	char ostack[1024], sstack[2048];
	struct lt_buf orgs, sql;
	lt_buf_init(&orgs, ostack, sizeof ostack, 1u << 16);
	lt_buf_init(&sql, sstack, sizeof sstack, SQL_MAX);
	sqlite3_stmt *st = NULL;
	enum lt_err e = scope_orgs(sc, &orgs);
	if (e)
		goto out;
	e = begin_read(db);
	if (e)
		goto out;
	char names[MAX_DAYS][TABLE_NAME_LEN];
	size_t ntables = 0;
	e = window_tables(db, start, end, names, &ntables);
	if (e || ntables == 0)
		goto out_read;
	/* Per user over the window: each day table's part, then summed. */
	lt_buf_puts(&sql, "SELECT user_id, SUM(n), SUM(a), SUM(t) FROM (");
	for (size_t i = 0; i < ntables; i++)
		lt_buf_printf(&sql,
			      "%sSELECT user_id, COUNT(*) AS n, SUM(allowed) AS a, SUM(total) AS t "
			      "FROM \"%s\" WHERE provider = ?1 AND at >= ?2 AND at < ?3 "
			      "AND " SCOPE_SQL " GROUP BY user_id",
			      i ? " UNION ALL " : "", names[i]);
	lt_buf_puts(&sql, ") GROUP BY user_id");
	e = prep_once(db, &sql, &st);
	if (e)
		goto out_read;
	sqlite3_bind_text(st, 1, provider, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, start);
	sqlite3_bind_int64(st, 3, end);
	e = bind_scope(st, sc, &orgs);
	int rc = SQLITE_DONE;
	while (!e && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct lt_aq_user_total u;
		lt_stmt_copy_col(st, 0, u.user_id, sizeof u.user_id);
		u.events = sqlite3_column_int64(st, 1);
		u.tokens = sqlite3_column_int64(st, 3);
		out->events += u.events;
		out->allowed += sqlite3_column_int64(st, 2);
		out->tokens += u.tokens;
		if (u.user_id[0]) {
			out->unique_users++;
			top_offer(out, &u);
		}
	}
	if (!e)
		e = step_err(rc);
	out->denied = out->events - out->allowed;
	out->average_tokens = out->events ? (double)out->tokens / (double)out->events : 0.0;
out_read:
	sqlite3_finalize(st);
	end_read(db);
out:
	lt_buf_release(&sql);
	lt_buf_release(&orgs);
	return e;
}

/* ---- anomalies ---- */

enum lt_err lt_aq_anomalies(sqlite3 *db, const struct lt_aq_scope *sc, const char *provider,
			    int64_t now, int64_t window_minutes, int64_t baseline, double threshold,
			    struct lt_aq_anomaly *out)
{
	*out = (struct lt_aq_anomaly){0};
	if (!provider)
		return LT_EINVAL;
	struct lt_an_window cur, base[LT_AN_BASELINE_MAX];
	size_t nb = 0;
	lt_an_anomaly_windows(now, window_minutes, baseline, &cur, base, &nb);
	int64_t w = cur.end_ms - cur.start_ms;
	int64_t from = base[nb - 1].start_ms; /* the oldest baseline's start */
	out->start = cur.start_ms;
	out->end = cur.end_ms;
	out->baseline_windows = (int64_t)nb;
	/* sums[k]: window k, 0 = current, k = baseline k (window.h's k). */
	int64_t sums[LT_AN_BASELINE_MAX + 1] = {0};

	char ostack[1024];
	struct lt_buf orgs;
	lt_buf_init(&orgs, ostack, sizeof ostack, 1u << 16);
	enum lt_err e = scope_orgs(sc, &orgs);
	if (e)
		goto out;
	e = begin_read(db);
	if (e)
		goto out;
	char names[MAX_DAYS][TABLE_NAME_LEN];
	size_t ntables = 0;
	e = window_tables(db, from, now, names, &ntables);
	for (size_t i = 0; !e && i < ntables; i++) {
		/* k = (now - 1 - at) / W: at in [now - (k+1)W, now - kW). */
		char sstack[512];
		struct lt_buf sql;
		lt_buf_init(&sql, sstack, sizeof sstack, SQL_MAX);
		lt_buf_printf(&sql,
			      "SELECT (?3 - 1 - at) / ?4 AS k, SUM(total) FROM \"%s\" "
			      "WHERE provider = ?1 AND at >= ?2 AND at < ?3 AND " SCOPE_SQL
			      " GROUP BY k",
			      names[i]);
		sqlite3_stmt *st;
		e = prep_once(db, &sql, &st);
		lt_buf_release(&sql);
		if (e)
			break;
		sqlite3_bind_text(st, 1, provider, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, from);
		sqlite3_bind_int64(st, 3, now);
		sqlite3_bind_int64(st, 4, w);
		e = bind_scope(st, sc, &orgs);
		int rc = SQLITE_DONE;
		while (!e && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			int64_t k = sqlite3_column_int64(st, 0);
			if (k < 0 || k > (int64_t)nb) {
				e = LT_ECORRUPT; /* cannot happen: the WHERE bounds at */
				break;
			}
			sums[k] += sqlite3_column_int64(st, 1);
		}
		if (!e)
			e = step_err(rc);
		sqlite3_finalize(st);
	}
	end_read(db);
	if (!e)
		e = lt_an_anomaly_eval(sums[0], sums + 1, nb, threshold, &out->a);
out:
	lt_buf_release(&orgs);
	return e;
}

/* ---- cost ---- */

static const char *const group_names[] = {"user", "org", "provider", "model"};
static const char *const bucket_names[] = {"minute", "hour", "day"};

enum lt_err lt_aq_group_parse(const char *s, enum lt_aq_group *out)
{
	for (size_t i = 0; s && i < sizeof group_names / sizeof group_names[0]; i++)
		if (!strcmp(s, group_names[i])) {
			*out = (enum lt_aq_group)i;
			return LT_OK;
		}
	return LT_EINVAL;
}

enum lt_err lt_aq_bucket_parse(const char *s, enum lt_aq_bucket *out)
{
	for (size_t i = 0; s && i < sizeof bucket_names / sizeof bucket_names[0]; i++)
		if (!strcmp(s, bucket_names[i])) {
			*out = (enum lt_aq_bucket)i;
			return LT_OK;
		}
	return LT_EINVAL;
}

const char *lt_aq_group_name(enum lt_aq_group g)
{
	return (unsigned)g < 4 ? group_names[g] : "?";
}

const char *lt_aq_bucket_name(enum lt_aq_bucket b)
{
	return (unsigned)b < 3 ? bucket_names[b] : "?";
}

int64_t lt_aq_bucket_ms(enum lt_aq_bucket b)
{
	return b == LT_AQ_DAY ? LT_AN_MS_DAY : b == LT_AQ_HOUR ? LT_AN_MS_HOUR : LT_AN_MS_MINUTE;
}

void lt_aq_cost_range(int64_t from, int64_t to, int64_t *rfrom, int64_t *rto)
{
	*rfrom = lt_an_minute_start(from);
	int64_t t = lt_an_minute_start(to);
	*rto = t == to ? t : t + LT_AN_MS_MINUTE;
}

#define COST_SQL(col)                                                                              \
	"SELECT (minute / ?3) * ?3 AS b, " col " AS g, SUM(cost_micros), SUM(requests), "          \
	"SUM(total) FROM rollup_minute WHERE minute >= ?1 AND minute < ?2 "                        \
	"AND (?4 IS NULL OR provider = ?4) AND " SCOPE_SQL " GROUP BY b, g ORDER BY b, g"

static const char *const cost_sql[] = {COST_SQL("user_id"), COST_SQL("org_id"),
				       COST_SQL("provider"), COST_SQL("model")};

enum lt_err lt_aq_cost(sqlite3 *db, const struct lt_aq_scope *sc, int64_t from, int64_t to,
		       enum lt_aq_group g, enum lt_aq_bucket b, const char *provider,
		       size_t max_rows, int (*row)(void *arg, const struct lt_aq_cost_row *r),
		       void *arg)
{
	if ((unsigned)g > LT_AQ_BY_MODEL || (unsigned)b > LT_AQ_DAY || to <= from || from < 0)
		return LT_EINVAL;
	char ostack[1024];
	struct lt_buf orgs;
	lt_buf_init(&orgs, ostack, sizeof ostack, 1u << 16);
	sqlite3_stmt *st = NULL;
	enum lt_err e = scope_orgs(sc, &orgs);
	if (!e)
		e = begin_read(db);
	if (e) {
		lt_buf_release(&orgs);
		return e;
	}
	e = lt_stmt_prep(db, cost_sql[g], &st);
	if (!e) {
		sqlite3_bind_int64(st, 1, from);
		sqlite3_bind_int64(st, 2, to);
		sqlite3_bind_int64(st, 3, lt_aq_bucket_ms(b));
		lt_stmt_bind_str(st, 4, provider);
		e = bind_scope(st, sc, &orgs);
	}
	size_t n = 0;
	int rc = SQLITE_DONE;
	while (!e && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (++n > max_rows) {
			e = LT_ETOOBIG;
			break;
		}
		struct lt_aq_cost_row r;
		r.bucket_start = sqlite3_column_int64(st, 0);
		lt_stmt_copy_col(st, 1, r.group, sizeof r.group);
		r.cost_micros = sqlite3_column_int64(st, 2);
		r.requests = sqlite3_column_int64(st, 3);
		r.tokens = sqlite3_column_int64(st, 4);
		if (row(arg, &r))
			e = LT_ETOOBIG;
	}
	if (!e)
		e = step_err(rc);
	if (st)
		lt_stmt_put(st);
	end_read(db);
	lt_buf_release(&orgs);
	return e;
}

/* ---- one user's day ---- */

#define DAILY_SQL                                                                                  \
	"SELECT SUM(requests), SUM(allowed), SUM(refused_rate), SUM(refused_quota), "              \
	"SUM(refused_other), SUM(input), SUM(cached_input), SUM(output), SUM(total), "             \
	"SUM(cost_micros), SUM(latency_sum), MAX(latency_max) FROM rollup_minute "                 \
	"WHERE minute >= ?1 AND minute < ?2 AND user_id = ?3 AND " SCOPE_SQL

enum lt_err lt_aq_user_daily(sqlite3 *db, const struct lt_aq_scope *sc, const char *user_id,
			     int64_t day_start, struct lt_aq_daily *out)
{
	*out = (struct lt_aq_daily){0};
	if (!user_id || lt_an_day_start(day_start) != day_start)
		return LT_EINVAL;
	char ostack[1024];
	struct lt_buf orgs;
	lt_buf_init(&orgs, ostack, sizeof ostack, 1u << 16);
	sqlite3_stmt *st = NULL;
	enum lt_err e = scope_orgs(sc, &orgs);
	if (!e)
		e = lt_stmt_prep(db, DAILY_SQL, &st);
	if (!e) {
		sqlite3_bind_int64(st, 1, day_start);
		sqlite3_bind_int64(st, 2, day_start + LT_AN_MS_DAY);
		sqlite3_bind_text(st, 3, user_id, -1, SQLITE_STATIC);
		e = bind_scope(st, sc, &orgs);
	}
	if (!e) {
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			int64_t *f[] = {
				&out->requests,	     &out->allowed,	  &out->refused_rate,
				&out->refused_quota, &out->refused_other, &out->input,
				&out->cached_input,  &out->output,	  &out->total,
				&out->cost_micros,   &out->latency_sum,	  &out->latency_max};
			for (int i = 0; i < 12; i++)
				*f[i] = sqlite3_column_int64(st, i);
		}
		e = step_err(rc);
	}
	if (st)
		lt_stmt_put(st);
	lt_buf_release(&orgs);
	return e;
}
