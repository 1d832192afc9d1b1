/*
 * cmd_usage.c — leakyctl usage report|top|cost|anomalies and leakyctl
 * analytics rebuild: analytics.db (analytics/schema.h) offline.
 *
 * The usage commands open DATA_DIR/analytics.db read-only (lt_an_db_open)
 * and answer with analytics/query.h, the same functions and the same
 * parameter defaults and clamps (analytics/window.h) as the HTTP API
 * (API.md §3, src/api/analytics.c), so they are safe beside a running
 * leakyd.  Output is an aligned table with a header line, or with --json
 * the JSON object the API answers for the same parameters (top: the
 * report's provider, window and topUsers only).  "Now" is the wall clock
 * unless --now gives it (leakyd's manual clock is not visible from here).
 *
 * Restriction: --user USER (username or user id) reads what the API shows
 * that user as a USER: its own rows and its orgs' (memberships read from
 * leaky.db); --org ORG (id or name) reads only that org's rows.  Without
 * either, everything (an ADMIN's view).
 *
 * analytics rebuild takes the event log's writer lock (an exclusive flock
 * on DATA_DIR/events, as events/recover.c takes it) without blocking, so it
 * refuses (EX_TEMPFAIL) while leakyd runs and keeps leakyd from starting
 * while it works; then lt_an_rebuild empties analytics.db and an ingest on
 * this thread (lt_an_ingest_drain) re-applies the whole token-usage topic.
 *
 * Exit status: 0; EX_USAGE bad arguments; EX_NOINPUT no analytics.db (or
 * no leaky.db for --user/--org); EX_TEMPFAIL (rebuild) leakyd holds the
 * log; 1 anything else (no such user or org, storage errors).
 *
 * Ownership: every allocation (the table's cells, output buffers, the log
 * and databases) is freed before the command returns.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "analytics/ingest.h"
#include "analytics/query.h"
#include "analytics/render.h"
#include "analytics/schema.h"
#include "analytics/store.h"
#include "analytics/window.h"
#include "auth/identity_store.h"
#include "cli/cli.h"
#include "events/evlog.h"
#include "store/datadir.h"
#include "store/db.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/timefmt.h"
#include "util/uuid.h"

#define EX_OTHER 1
#define PATH_MAX_ 4096
#define PROVIDER_MAX 63
#define RANGE_MAX_DAYS 366   /* cost, as the API */
#define REPORT_MAX_DAYS 30   /* report --from/--to (the day tables read) */
#define REPORT_SAMPLE 1000   /* the API's sampleLimit default */
#define COST_ROWS_MAX 100000 /* as the API */
#define OUT_MAX (64u << 20)
/* No stored user id is this long (facts cap ids at LT_AN_ID_MAX), so an
 * --org scope's user id matches no row by itself. */
#define NO_USER_LEN (LT_AN_ID_MAX + 1)

/* ---- arguments ---- */

static int usage_err(const char *cmd, const char *msg)
{
	fprintf(stderr, "leakyctl %s: %s\n", cmd, msg);
	return EX_USAGE;
}

/* A whole number (optional sign) into *v. */
static bool parse_i64(const char *s, int64_t *v)
{
	if (!s || !*s)
		return false;
	char *end = NULL;
	errno = 0;
	long long x = strtoll(s, &end, 10);
	if (*end || errno == ERANGE)
		return false;
	*v = x;
	return true;
}

/* A time: Unix milliseconds, or ISO-8601 UTC (as the API's from/to). */
static bool parse_time(const char *s, int64_t *ms)
{
	size_t n = strlen(s), digits = strspn(s, "0123456789");
	if (n && digits == n && n <= 15) {
		*ms = strtoll(s, NULL, 10);
		return true;
	}
	int64_t ns;
	if (n && lt_time_parse_iso(s, n, &ns) == LT_OK && ns >= 0) {
		*ms = ns / LT_NS_PER_MS;
		return true;
	}
	return false;
}

static int opt_time(const char *cmd, const char *name, const char *s, int64_t *ms)
{
	if (s && !parse_time(s, ms)) {
		fprintf(stderr,
			"leakyctl %s: %s must be an ISO-8601 UTC time (2026-02-05T10:00:00Z) or "
			"Unix milliseconds\n",
			cmd, name);
		return EX_USAGE;
	}
	return 0;
}

/* An integer option through a clamp (window.h's, like the API). */
static int opt_int(const char *cmd, const char *name, const char *s,
		   int64_t (*clamp)(bool, int64_t), int64_t *out)
{
	int64_t v = 0;
	if (s && !parse_i64(s, &v)) {
		fprintf(stderr, "leakyctl %s: %s must be an integer\n", cmd, name);
		return EX_USAGE;
	}
	*out = clamp(s != NULL, v);
	return 0;
}

/* The provider, lower-cased, checked as the API checks it. */
static int opt_provider(const char *cmd, const char *s, bool required, char out[PROVIDER_MAX + 1])
{
	out[0] = '\0';
	if (!s || !*s)
		return required ? usage_err(cmd, "--provider is required") : 0;
	if (strlen(s) > PROVIDER_MAX)
		return usage_err(cmd, "invalid provider");
	size_t i = 0;
	for (; s[i]; i++) {
		char c = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.'))
			return usage_err(cmd, "invalid provider");
		out[i] = c;
	}
	out[i] = '\0';
	return 0;
}

/* A helper's exit code as this file's: usage and "no input" stay, the
 * rest is 1. */
static int other(int rc)
{
	return rc == 0 || rc == EX_USAGE || rc == EX_NOINPUT ? rc : EX_OTHER;
}

/* ---- the restriction ---- */

struct scope {
	struct lt_aq_scope sc;
	bool restricted;
	char user_id[NO_USER_LEN + 1];
	char ids[LT_AQ_ORGS_MAX][LT_ID_LEN + 1];
	const char *ptrs[LT_AQ_ORGS_MAX];
	bool full;
};

static bool add_org(void *arg, const struct lt_membership *m)
{
	struct scope *s = arg;
	if (s->sc.norgs == LT_AQ_ORGS_MAX) {
		s->full = true;
		return false;
	}
	memcpy(s->ids[s->sc.norgs], m->org_id, sizeof s->ids[0]);
	s->ptrs[s->sc.norgs] = s->ids[s->sc.norgs];
	s->sc.norgs++;
	return true;
}

/* --user and --org into s (leaky.db read only when one is given). */
static int scope_of(struct lt_cli *cli, const char *cmd, const char *user, const char *org,
		    struct scope *s)
{
	memset(&s->sc, 0, sizeof s->sc);
	s->restricted = false;
	s->full = false;
	if (!user && !org)
		return 0;
	if (user && org)
		return usage_err(cmd, "give --user or --org, not both");
	if ((user && !*user) || (org && !*org))
		return usage_err(cmd, user ? "--user needs a username or user id"
					   : "--org needs an org id or name");
	struct sqlite3 *db;
	int rc = lt_cli_db_open(cli, cmd, false, &db);
	if (rc)
		return other(rc);
	s->restricted = true;
	s->sc.org_ids = s->ptrs;
	if (user) {
		struct lt_user u;
		enum lt_err e = LT_ENOTFOUND;
		if (lt_uuid_valid(user, strlen(user))) {
			char id[LT_ID_LEN + 1];
			for (size_t i = 0; i <= LT_ID_LEN; i++)
				id[i] = (char)(user[i] >= 'A' && user[i] <= 'F'
						       ? user[i] - 'A' + 'a'
						       : user[i]);
			e = lt_ident_user_by_id(db, id, &u);
		}
		if (e == LT_ENOTFOUND)
			e = lt_ident_user_by_name(db, user, &u, NULL);
		if (e == LT_ENOTFOUND) {
			fprintf(stderr, "leakyctl %s: no such user '%s'\n", cmd, user);
			rc = EX_OTHER;
		} else if (e) {
			rc = other(lt_cli_fail(cmd, e, "reading the user"));
		} else {
			snprintf(s->user_id, sizeof s->user_id, "%s", u.id);
			s->sc.user_id = s->user_id;
			e = lt_ident_member_list(db, NULL, u.id, add_org, s);
			if (e)
				rc = other(lt_cli_fail(cmd, e, "reading the user's orgs"));
			else if (s->full)
				fprintf(stderr,
					"leakyctl %s: note: the user belongs to more than %d orgs; "
					"only the first %d are included\n",
					cmd, LT_AQ_ORGS_MAX, LT_AQ_ORGS_MAX);
		}
	} else {
		struct lt_org o;
		rc = lt_cli_org(db, cmd, org, &o);
		if (!rc) {
			memset(s->user_id, 'x', NO_USER_LEN);
			s->user_id[NO_USER_LEN] = '\0';
			s->sc.user_id = s->user_id;
			memcpy(s->ids[0], o.id, sizeof s->ids[0]);
			s->ptrs[0] = s->ids[0];
			s->sc.norgs = 1;
		}
		rc = other(rc);
	}
	lt_db_close(db);
	return rc;
}

/* ---- analytics.db ---- */

static int open_analytics(struct lt_cli *cli, const char *cmd, struct sqlite3 **db)
{
	char path[PATH_MAX_], err[LT_DB_ERR_MAX] = "";
	struct stat st;
	*db = NULL;
	if (lt_datadir_path(cli->data_dir, LT_ANALYTICS_DB, path, sizeof path))
		return usage_err(cmd, "data directory path too long");
	if (stat(path, &st) != 0) {
		fprintf(stderr, "leakyctl %s: no analytics database at %s (leakyd creates it)\n",
			cmd, path);
		return EX_NOINPUT;
	}
	enum lt_err e = lt_an_db_open(cli->data_dir, true, (int)cli->cfg.storage_sqlite_synchronous,
				      (int)cli->cfg.storage_busy_timeout_ms, db, err);
	if (e) {
		fprintf(stderr, "leakyctl %s: %s: %s\n", cmd, path, err[0] ? err : lt_strerror(e));
		return EX_OTHER;
	}
	return 0;
}

static int query_fail(const char *cmd, struct sqlite3 *db, enum lt_err e)
{
	lt_db_close(db);
	if (e == LT_ETOOBIG)
		fprintf(stderr,
			"leakyctl %s: result too large: use a coarser bucket or a shorter range\n",
			cmd);
	else
		fprintf(stderr, "leakyctl %s: reading analytics.db: %s\n", cmd, lt_strerror(e));
	return EX_OTHER;
}

/* ---- output ---- */

static void iso(int64_t ms, char out[LT_ISO_LEN])
{
	lt_time_iso(ms * LT_NS_PER_MS, out);
}

/* Write b (and a newline when json) to stdout; releases b. */
static int emit(const char *cmd, struct lt_buf *b, bool json)
{
	int rc = 0;
	if (json)
		lt_buf_putc(b, '\n');
	if (b->err)
		rc = other(lt_cli_fail(cmd, b->err, "rendering"));
	else if (fwrite(b->data, 1, b->len, stdout) != b->len || fflush(stdout) != 0)
		rc = other(lt_cli_fail(cmd, LT_EIO, "writing"));
	lt_buf_release(b);
	return rc;
}

/* An aligned table: a header row, then rows of strings; columns flagged
 * numeric are right-aligned.  Cells are copied (freed by tab_release). */
#define TAB_COLS 8

struct tab {
	size_t ncol, nrow, cap;
	bool right[TAB_COLS];
	char **cells; /* nrow * ncol, the header first */
	bool oom;
};

static void tab_init(struct tab *t, size_t ncol, const char *const *head, const char *right)
{
	memset(t, 0, sizeof *t);
	t->ncol = ncol;
	for (size_t i = 0; i < ncol; i++)
		t->right[i] = right[i] == 'r';
	t->cap = 16;
	t->cells = calloc(t->cap * ncol, sizeof *t->cells);
	if (!t->cells) {
		t->oom = true;
		return;
	}
	for (size_t i = 0; i < ncol; i++) /* the header row */
		if (!(t->cells[i] = strdup(head[i])))
			t->oom = true;
	t->nrow = 1;
}

static void tab_row(struct tab *t, const char *const *row)
{
	if (t->oom)
		return;
	if (t->nrow == t->cap) {
		char **c = realloc(t->cells, t->cap * 2 * t->ncol * sizeof *c);
		if (!c) {
			t->oom = true;
			return;
		}
		t->cells = c;
		t->cap *= 2;
	}
	for (size_t i = 0; i < t->ncol; i++) {
		char *d = strdup(row[i]);
		t->cells[t->nrow * t->ncol + i] = d;
		if (!d)
			t->oom = true;
	}
	t->nrow++;
}

static void tab_release(struct tab *t)
{
	for (size_t i = 0; t->cells && i < t->nrow * t->ncol; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
}

/* Render into b: columns separated by two spaces, no trailing blanks. */
static void tab_render(struct tab *t, struct lt_buf *b)
{
	if (t->oom) {
		b->err = LT_ENOMEM;
		return;
	}
	size_t w[TAB_COLS] = {0};
	for (size_t r = 0; r < t->nrow; r++)
		for (size_t c = 0; c < t->ncol; c++) {
			const char *s = t->cells[r * t->ncol + c];
			size_t n = s ? strlen(s) : 0;
			if (n > w[c])
				w[c] = n;
		}
	for (size_t r = 0; r < t->nrow; r++) {
		for (size_t c = 0; c < t->ncol; c++) {
			const char *s = t->cells[r * t->ncol + c];
			s = s ? s : "";
			bool last = c + 1 == t->ncol;
			if (c)
				lt_buf_puts(b, "  ");
			if (t->right[c])
				lt_buf_printf(b, "%*s", (int)w[c], s);
			else if (last)
				lt_buf_puts(b, s);
			else
				lt_buf_printf(b, "%-*s", (int)w[c], s);
		}
		lt_buf_putc(b, '\n');
	}
}

static void num(char out[32], int64_t v)
{
	snprintf(out, 32, "%lld", (long long)v);
}

/* ---- report and top ---- */

struct report_args {
	const char *provider_s, *window_s, *from_s, *to_s, *now_s, *limit_s, *user, *org;
	bool json;
};

/* Run the report query over the window the options give; *w = it. */
static int run_report(struct lt_cli *cli, const char *cmd, const struct report_args *a,
		      char provider[PROVIDER_MAX + 1], struct lt_an_window *w,
		      struct lt_aq_report *r)
{
	int64_t minutes, now = lt_cli_now_ms(), from = 0, to = 0;
	int rc;
	if ((rc = opt_provider(cmd, a->provider_s, true, provider)) ||
	    (rc = opt_int(cmd, "--window", a->window_s, lt_an_window_minutes, &minutes)) ||
	    (rc = opt_time(cmd, "--now", a->now_s, &now)) ||
	    (rc = opt_time(cmd, "--from", a->from_s, &from)) ||
	    (rc = opt_time(cmd, "--to", a->to_s, &to)))
		return rc;
	if (a->from_s || a->to_s) {
		if (a->window_s || a->now_s)
			return usage_err(cmd, "--from/--to replace --window and --now");
		if (!a->from_s || !a->to_s)
			return usage_err(cmd, "--from and --to go together");
		if (from >= to)
			return usage_err(cmd, "--from must be before --to");
		if (to - from > REPORT_MAX_DAYS * LT_AN_MS_DAY)
			return usage_err(cmd, "the range --from..--to must not exceed 30 days");
		w->start_ms = from;
		w->end_ms = to;
	} else {
		lt_an_report_window(now, minutes, w);
	}
	struct scope *s = malloc(sizeof *s);
	if (!s)
		return other(lt_cli_fail(cmd, LT_ENOMEM, "scope"));
	struct sqlite3 *db = NULL;
	if ((rc = scope_of(cli, cmd, a->user, a->org, s)) || (rc = open_analytics(cli, cmd, &db))) {
		free(s);
		return rc;
	}
	enum lt_err e = lt_aq_report(db, &s->sc, provider, w->start_ms, w->end_ms, r);
	free(s);
	if (e)
		return query_fail(cmd, db, e);
	lt_db_close(db);
	return 0;
}

static void top_table(const struct lt_aq_report *r, size_t n, struct lt_buf *b)
{
	static const char *const head[] = {"RANK", "USER", "TOKENS", "EVENTS"};
	struct tab t;
	tab_init(&t, 4, head, "rlrr");
	for (size_t i = 0; i < n; i++) {
		char rank[32], tok[32], ev[32];
		num(rank, (int64_t)i + 1);
		num(tok, r->top[i].tokens);
		num(ev, r->top[i].events);
		const char *row[] = {rank, r->top[i].user_id[0] ? r->top[i].user_id : "-", tok, ev};
		tab_row(&t, row);
	}
	tab_render(&t, b);
	tab_release(&t);
}

int lt_cmd_usage_report(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "usage report";
	struct report_args a = {0};
	const struct lt_cli_opt opts[] = {{"--provider", NULL, &a.provider_s},
					  {"--window", NULL, &a.window_s},
					  {"--from", NULL, &a.from_s},
					  {"--to", NULL, &a.to_s},
					  {"--now", NULL, &a.now_s},
					  {"--user", NULL, &a.user},
					  {"--org", NULL, &a.org},
					  {"--json", &a.json, NULL},
					  {NULL, NULL, NULL}};
	char *pos[1], provider[PROVIDER_MAX + 1];
	int npos, rc = lt_cli_args(cmd, argc, argv, opts, 0, 0, pos, &npos);
	struct lt_an_window w;
	struct lt_aq_report r;
	if (rc || (rc = run_report(cli, cmd, &a, provider, &w, &r)))
		return rc;
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, OUT_MAX);
	char ws[LT_ISO_LEN], we[LT_ISO_LEN];
	iso(w.start_ms, ws);
	iso(w.end_ms, we);
	if (a.json) {
		lt_an_json_report(&b, provider, w.start_ms, w.end_ms, &r, REPORT_SAMPLE);
		return emit(cmd, &b, true);
	}
	static const char *const head[] = {"PROVIDER", "WINDOW_START", "WINDOW_END", "EVENTS",
					   "ALLOWED",  "DENIED",       "TOKENS",     "USERS"};
	struct tab t;
	tab_init(&t, 8, head, "llrrrrrr");
	char ev[32], al[32], de[32], tok[32], us[32];
	num(ev, r.events);
	num(al, r.allowed);
	num(de, r.denied);
	num(tok, r.tokens);
	num(us, r.unique_users);
	const char *row[] = {provider, ws, we, ev, al, de, tok, us};
	tab_row(&t, row);
	tab_render(&t, &b);
	tab_release(&t);
	lt_buf_printf(&b, "average tokens per event: %.2f\n", r.average_tokens);
	if (r.ntop) {
		lt_buf_puts(&b, "\ntop users:\n");
		top_table(&r, r.ntop, &b);
	}
	return emit(cmd, &b, false);
}

int lt_cmd_usage_top(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "usage top";
	struct report_args a = {0};
	const struct lt_cli_opt opts[] = {
		{"--provider", NULL, &a.provider_s}, {"--window", NULL, &a.window_s},
		{"--from", NULL, &a.from_s},	     {"--to", NULL, &a.to_s},
		{"--now", NULL, &a.now_s},	     {"--limit", NULL, &a.limit_s},
		{"--user", NULL, &a.user},	     {"--org", NULL, &a.org},
		{"--json", &a.json, NULL},	     {NULL, NULL, NULL}};
	char *pos[1], provider[PROVIDER_MAX + 1];
	int npos, rc = lt_cli_args(cmd, argc, argv, opts, 0, 0, pos, &npos);
	int64_t limit = LT_AQ_TOP;
	if (!rc && a.limit_s && (!parse_i64(a.limit_s, &limit) || limit < 1 || limit > LT_AQ_TOP)) {
		fprintf(stderr, "leakyctl %s: --limit must be 1-%d\n", cmd, LT_AQ_TOP);
		rc = EX_USAGE;
	}
	struct lt_an_window w;
	struct lt_aq_report r;
	if (rc || (rc = run_report(cli, cmd, &a, provider, &w, &r)))
		return rc;
	size_t n = r.ntop < (size_t)limit ? r.ntop : (size_t)limit;
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, OUT_MAX);
	if (a.json) {
		lt_buf_puts(&b, "{\"provider\":");
		lt_buf_put_json_str(&b, provider, strlen(provider));
		lt_buf_putc(&b, ',');
		lt_an_json_time(&b, "windowStart", w.start_ms);
		lt_buf_putc(&b, ',');
		lt_an_json_time(&b, "windowEnd", w.end_ms);
		lt_buf_putc(&b, ',');
		lt_an_json_top(&b, &r, n);
		lt_buf_putc(&b, '}');
		return emit(cmd, &b, true);
	}
	top_table(&r, n, &b);
	return emit(cmd, &b, false);
}

/* ---- anomalies ---- */

int lt_cmd_usage_anomalies(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "usage anomalies";
	const char *provider_s = NULL, *window_s = NULL, *base_s = NULL, *thr_s = NULL,
		   *now_s = NULL, *user = NULL, *org = NULL;
	bool json = false;
	const struct lt_cli_opt opts[] = {{"--provider", NULL, &provider_s},
					  {"--window", NULL, &window_s},
					  {"--baselines", NULL, &base_s},
					  {"--threshold", NULL, &thr_s},
					  {"--now", NULL, &now_s},
					  {"--user", NULL, &user},
					  {"--org", NULL, &org},
					  {"--json", &json, NULL},
					  {NULL, NULL, NULL}};
	char *pos[1], provider[PROVIDER_MAX + 1];
	int64_t minutes, nb, now = lt_cli_now_ms();
	double threshold = 0;
	int npos, rc = lt_cli_args(cmd, argc, argv, opts, 0, 0, pos, &npos);
	if (rc || (rc = opt_provider(cmd, provider_s, true, provider)) ||
	    (rc = opt_int(cmd, "--window", window_s, lt_an_window_minutes, &minutes)) ||
	    (rc = opt_int(cmd, "--baselines", base_s, lt_an_baseline_windows, &nb)) ||
	    (rc = opt_time(cmd, "--now", now_s, &now)))
		return rc;
	if (thr_s) {
		char *end = NULL;
		errno = 0;
		threshold = strtod(thr_s, &end);
		if (!*thr_s || *end || errno == ERANGE || !isfinite(threshold))
			return usage_err(cmd, "--threshold must be a number");
	}
	threshold = lt_an_threshold(thr_s != NULL, threshold);
	struct scope *s = malloc(sizeof *s);
	if (!s)
		return other(lt_cli_fail(cmd, LT_ENOMEM, "scope"));
	struct sqlite3 *db = NULL;
	if ((rc = scope_of(cli, cmd, user, org, s)) || (rc = open_analytics(cli, cmd, &db))) {
		free(s);
		return rc;
	}
	struct lt_aq_anomaly a;
	enum lt_err e = lt_aq_anomalies(db, &s->sc, provider, now, minutes, nb, threshold, &a);
	free(s);
	if (e)
		return query_fail(cmd, db, e);
	lt_db_close(db);
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, OUT_MAX);
	if (json) {
		lt_an_json_anomaly(&b, provider, &a);
		return emit(cmd, &b, true);
	}
	static const char *const head[] = {"PROVIDER", "WINDOW_START", "WINDOW_END", "BASELINES",
					   "CURRENT",  "BASELINE_AVG", "RATIO",	     "ANOMALY"};
	struct tab t;
	tab_init(&t, 8, head, "llrrrrrl");
	char ws[LT_ISO_LEN], we[LT_ISO_LEN], bw[32], cur[32], avg[64], ratio[64], an[64];
	iso(a.start, ws);
	iso(a.end, we);
	num(bw, a.baseline_windows);
	num(cur, a.a.current);
	snprintf(avg, sizeof avg, "%.2f", a.a.baseline_avg);
	if (a.a.has_ratio)
		snprintf(ratio, sizeof ratio, "%.2f", a.a.ratio);
	else
		snprintf(ratio, sizeof ratio, "-");
	snprintf(an, sizeof an, "%s (threshold %.2f)", a.a.anomaly ? "yes" : "no", a.a.threshold);
	const char *row[] = {provider, ws, we, bw, cur, avg, ratio, an};
	tab_row(&t, row);
	tab_render(&t, &b);
	tab_release(&t);
	return emit(cmd, &b, false);
}

/* ---- cost ---- */

struct cost_ctx {
	struct lt_buf *b; /* json */
	struct tab *t;	  /* table */
	size_t n;
	int64_t total, requests, tokens;
};

static int cost_row(void *arg, const struct lt_aq_cost_row *r)
{
	struct cost_ctx *c = arg;
	c->total += r->cost_micros;
	c->requests += r->requests;
	c->tokens += r->tokens;
	if (c->b) {
		lt_an_json_cost_row(c->b, c->n++, r);
		return c->b->err ? 1 : 0;
	}
	char bs[LT_ISO_LEN], cost[32], req[32], tok[32];
	iso(r->bucket_start, bs);
	num(cost, r->cost_micros);
	num(req, r->requests);
	num(tok, r->tokens);
	const char *row[] = {bs, r->group[0] ? r->group : "-", cost, req, tok};
	tab_row(c->t, row);
	c->n++;
	return c->t->oom ? 1 : 0;
}

int lt_cmd_usage_cost(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "usage cost";
	const char *from_s = NULL, *to_s = NULL, *now_s = NULL, *group_s = NULL, *bucket_s = NULL,
		   *provider_s = NULL, *user = NULL, *org = NULL;
	bool json = false;
	const struct lt_cli_opt opts[] = {
		{"--from", NULL, &from_s},     {"--to", NULL, &to_s},
		{"--now", NULL, &now_s},       {"--group-by", NULL, &group_s},
		{"--bucket", NULL, &bucket_s}, {"--provider", NULL, &provider_s},
		{"--user", NULL, &user},       {"--org", NULL, &org},
		{"--json", &json, NULL},       {NULL, NULL, NULL}};
	char *pos[1], provider[PROVIDER_MAX + 1];
	int64_t from = 0, to = 0, now = lt_cli_now_ms();
	int npos, rc = lt_cli_args(cmd, argc, argv, opts, 0, 0, pos, &npos);
	if (rc || (rc = opt_provider(cmd, provider_s, false, provider)) ||
	    (rc = opt_time(cmd, "--from", from_s, &from)) ||
	    (rc = opt_time(cmd, "--to", to_s, &to)) || (rc = opt_time(cmd, "--now", now_s, &now)))
		return rc;
	enum lt_aq_group g;
	enum lt_aq_bucket bk;
	if (lt_aq_group_parse(group_s ? group_s : "provider", &g))
		return usage_err(cmd, "--group-by must be one of user, org, provider, model");
	if (lt_aq_bucket_parse(bucket_s ? bucket_s : "hour", &bk))
		return usage_err(cmd, "--bucket must be one of minute, hour, day");
	if (!to_s)
		to = now;
	if (!from_s)
		from = to - LT_AN_MS_DAY;
	if (from < 0 || from >= to)
		return usage_err(cmd, "--from must be before --to");
	if (to - from > RANGE_MAX_DAYS * LT_AN_MS_DAY)
		return usage_err(cmd, "the range --from..--to must not exceed 366 days");
	int64_t rf, rt;
	lt_aq_cost_range(from, to, &rf, &rt);
	struct scope *s = malloc(sizeof *s);
	if (!s)
		return other(lt_cli_fail(cmd, LT_ENOMEM, "scope"));
	struct sqlite3 *db = NULL;
	if ((rc = scope_of(cli, cmd, user, org, s)) || (rc = open_analytics(cli, cmd, &db))) {
		free(s);
		return rc;
	}
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, OUT_MAX);
	struct tab t;
	static const char *const head[] = {"BUCKET", "GROUP", "COST_MICROS", "REQUESTS", "TOKENS"};
	tab_init(&t, 5, head, "llrrr");
	struct cost_ctx c = {json ? &b : NULL, &t, 0, 0, 0, 0};
	if (json)
		lt_an_json_cost_open(&b, rf, rt, g, bk, provider[0] ? provider : NULL);
	enum lt_err e = lt_aq_cost(db, &s->sc, rf, rt, g, bk, provider[0] ? provider : NULL,
				   COST_ROWS_MAX, cost_row, &c);
	free(s);
	if (e == LT_ETOOBIG && t.oom)
		e = LT_ENOMEM;
	if (e) {
		tab_release(&t);
		lt_buf_release(&b);
		return query_fail(cmd, db, e);
	}
	lt_db_close(db);
	if (json) {
		tab_release(&t);
		lt_an_json_cost_close(&b, c.n, c.total);
		return emit(cmd, &b, true);
	}
	char total[32], req[32], tok[32], fs[LT_ISO_LEN], ts[LT_ISO_LEN];
	num(total, c.total);
	num(req, c.requests);
	num(tok, c.tokens);
	const char *sum[] = {"total", "", total, req, tok};
	tab_row(&t, sum);
	iso(rf, fs);
	iso(rt, ts);
	lt_buf_printf(&b, "cost by %s per %s from %s to %s%s%s (micro-USD)\n", lt_aq_group_name(g),
		      lt_aq_bucket_name(bk), fs, ts, provider[0] ? ", provider " : "", provider);
	tab_render(&t, &b);
	tab_release(&t);
	return emit(cmd, &b, false);
}

/* ---- analytics rebuild ---- */

int lt_cmd_analytics_rebuild(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "analytics rebuild";
	char *pos[1];
	int npos, rc = lt_cli_args(cmd, argc, argv, NULL, 0, 0, pos, &npos);
	if (rc)
		return rc;
	char events[PATH_MAX_], path[PATH_MAX_], err[LT_DB_ERR_MAX] = "", why[256] = "";
	struct stat st;
	if (lt_datadir_path(cli->data_dir, "events", events, sizeof events) ||
	    lt_datadir_path(cli->data_dir, LT_ANALYTICS_DB, path, sizeof path))
		return usage_err(cmd, "data directory path too long");
	if (stat(cli->data_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "leakyctl %s: no data directory %s\n", cmd, cli->data_dir);
		return EX_NOINPUT;
	}
	/* The log's writer lock: leakyd holds it while it runs. */
	int dfd = open(events, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 && errno != ENOENT) {
		fprintf(stderr, "leakyctl %s: %s: %s\n", cmd, events, strerror(errno));
		return EX_OTHER;
	}
	if (dfd >= 0 && flock(dfd, LOCK_EX | LOCK_NB) != 0) {
		bool held = errno == EWOULDBLOCK;
		if (held)
			fprintf(stderr,
				"leakyctl %s: leakyd is running (it holds the event log %s): stop "
				"it first\n",
				cmd, events);
		else
			fprintf(stderr, "leakyctl %s: locking %s: %s\n", cmd, events,
				strerror(errno));
		close(dfd);
		return held ? EX_TEMPFAIL : EX_OTHER;
	}
	struct sqlite3 *db = NULL;
	struct lt_evlog *log = NULL;
	struct lt_an_ingest *g = NULL;
	enum lt_err e =
		lt_an_db_open(cli->data_dir, false, (int)cli->cfg.storage_sqlite_synchronous,
			      (int)cli->cfg.storage_busy_timeout_ms, &db, err);
	if (e) {
		fprintf(stderr, "leakyctl %s: %s: %s\n", cmd, path, err[0] ? err : lt_strerror(e));
		rc = e == LT_EBUSY ? EX_TEMPFAIL : EX_OTHER;
		goto out;
	}
	if ((e = lt_an_rebuild(db, err)) != LT_OK) {
		fprintf(stderr, "leakyctl %s: emptying %s: %s\n", cmd, path,
			err[0] ? err : lt_strerror(e));
		rc = e == LT_EBUSY ? EX_TEMPFAIL : EX_OTHER;
		goto out;
	}
	printf("%s: emptied (day tables, rollups and the ingest's offset)\n", path);
	if (dfd >= 0) {
		struct lt_evlog_opts o;
		lt_evlog_opts_default(&o);
		o.read_only = true; /* the lock above is ours: nothing else writes */
		e = lt_evlog_open(events, &o, &log, NULL, why, sizeof why);
		if (e && e != LT_ENOTFOUND) {
			fprintf(stderr, "leakyctl %s: event log %s: %s%s%s\n", cmd, events,
				lt_strerror(e), why[0] ? ": " : "", why);
			log = NULL;
			rc = EX_OTHER;
			goto out;
		}
		if (e)
			log = NULL;
	}
	uint64_t consumed = 0;
	if (log) {
		g = calloc(1, sizeof *g);
		if (!g) {
			rc = other(lt_cli_fail(cmd, LT_ENOMEM, "the ingest"));
			goto out;
		}
		g->evlog = log;
		g->db = db;
		/* [analytics] ingest_batch allows more than one transaction takes */
		g->batch = cli->cfg.analytics_ingest_batch > LT_AN_BATCH_MAX
				   ? LT_AN_BATCH_MAX
				   : (size_t)cli->cfg.analytics_ingest_batch;
		if ((e = lt_an_ingest_init(g)) != LT_OK) {
			free(g);
			g = NULL;
			rc = other(lt_cli_fail(cmd, e, "starting the ingest"));
			goto out;
		}
		e = lt_an_ingest_drain(g, &consumed);
		if (e) {
			fprintf(stderr,
				"leakyctl %s: ingesting the event log: %s (what was committed "
				"stays; run it again)\n",
				cmd, lt_strerror(e));
			rc = EX_OTHER;
			goto out;
		}
	}
	struct lt_an_ingest_stats zero = {0};
	const struct lt_an_ingest_stats *s = g ? &g->stats : &zero;
	printf("ingested %llu events from topic token-usage (duplicates %llu, bad %llu, deleted "
	       "by retention %llu) in %llu batches, %llu rollup rows; next offset %llu\n",
	       (unsigned long long)atomic_load(&s->events),
	       (unsigned long long)atomic_load(&s->duplicates),
	       (unsigned long long)atomic_load(&s->bad),
	       (unsigned long long)atomic_load(&s->skipped),
	       (unsigned long long)atomic_load(&s->batches),
	       (unsigned long long)atomic_load(&s->rollup_rows),
	       (unsigned long long)atomic_load(&s->next_offset));
	if (fflush(stdout) != 0)
		rc = other(lt_cli_fail(cmd, LT_EIO, "writing"));
out:
	if (g) {
		lt_an_ingest_release(g);
		free(g);
	}
	lt_evlog_close(log);
	lt_db_close(db);
	if (dfd >= 0)
		close(dfd); /* drops the lock */
	return rc;
}
