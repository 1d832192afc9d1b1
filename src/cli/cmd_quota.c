/*
 * cmd_quota.c — leakyctl quota show | grant | adjust: the token pools and
 * money budgets (provider "$", micro-dollars) of a user or an org.
 *
 * show reads the pool as of now (quota/pool_store.h: the window rolled in
 * memory, nothing written).  grant and adjust run lt_pool_store_change (its
 * ledger row carries actor "leakyctl" and the --reason) together with an
 * audit row (quota.granted, quota.adjusted) in one BEGIN IMMEDIATE
 * transaction, so both land or neither.  leakyd reads pools from leaky.db
 * on every reservation, so no cache needs telling.
 *
 * An ORG argument is an org id or its name (case-insensitive), ids first,
 * as in cmd_org.c.  A negative DELTA ("-500") is a positional, not an
 * option: options are split from positionals before lt_cli_args sees them.
 * Nothing here allocates beyond the lt_buf it releases.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "auth/identity_store.h"
#include "cli/cli.h"
#include "quota/pool_store.h"
#include "store/db.h"
#include "util/buf.h"
#include "util/uuid.h"

#define ACTOR "leakyctl"
#define REASON_MAX 200 /* bytes; keeps the audit detail under its cap */
#define ARGS_MAX 32

/* Whom a pool belongs to, for messages. */
struct owner {
	enum lt_owner_kind kind;
	char id[LT_ID_LEN + 1];
	char name[LT_NAME_MAX + 1]; /* username or org name */
};

static const char *kind_name(enum lt_owner_kind k)
{
	return k == LT_OWNER_ORG ? "org" : "user";
}

/* ---- arguments ---- */

static bool negative_number(const char *s)
{
	return s[0] == '-' && s[1] >= '0' && s[1] <= '9';
}

/* lt_cli_args, but a negative number is a positional: argv is rewritten
 * as the options (with their values), "--", then the positionals in order.
 * pos[] points into argv. */
static int quota_args(const char *cmd, int argc, char **argv, const struct lt_cli_opt *opts,
		      int min, int max, char **pos, int *npos)
{
	char *opt[ARGS_MAX + 1], *ps[ARGS_MAX];
	int no = 0, np = 0;
	if (argc > ARGS_MAX) {
		fprintf(stderr, "leakyctl %s: too many arguments\n", cmd);
		return EX_USAGE;
	}
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			while (++i < argc)
				ps[np++] = argv[i];
			break;
		}
		if (a[0] != '-' || a[1] == '\0' || negative_number(a)) {
			ps[np++] = argv[i];
			continue;
		}
		opt[no++] = argv[i];
		size_t n = strcspn(a, "=");
		for (const struct lt_cli_opt *o = opts; o && o->name; o++) {
			if (!o->value || a[n] != '\0' || strcmp(o->name, a) != 0)
				continue;
			if (i + 1 == argc) {
				fprintf(stderr, "leakyctl %s: %s needs a value\n", cmd, o->name);
				return EX_USAGE;
			}
			opt[no++] = argv[++i];
			break;
		}
	}
	char *all[ARGS_MAX + 1];
	int n = 0;
	for (int i = 0; i < no; i++)
		all[n++] = opt[i];
	all[n++] = "--";
	for (int i = 0; i < np; i++)
		all[n++] = ps[i];
	return lt_cli_args(cmd, n, all, opts, min, max, pos, npos);
}

/* PROVIDER lower-cased into out: "$" or 1-31 of [a-z0-9_-]; EX_DATAERR. */
static int provider_arg(const char *cmd, const char *arg, char out[32])
{
	size_t n = strlen(arg);
	if (strcmp(arg, LT_POOL_MONEY) == 0) {
		snprintf(out, 32, "%s", LT_POOL_MONEY);
		return 0;
	}
	bool ok = n >= 1 && n <= 31;
	for (size_t i = 0; ok && i < n; i++) {
		char c = arg[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
		out[i] = c;
	}
	if (!ok) {
		fprintf(stderr,
			"leakyctl %s: invalid provider '%.64s' (1 to 31 letters, digits, '_' or "
			"'-', or '$' for the money budget)\n",
			cmd, arg);
		return EX_DATAERR;
	}
	out[n] = '\0';
	return 0;
}

/* A whole decimal int64; false on anything else. */
static bool parse_i64(const char *s, int64_t *out)
{
	if (!*s || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
		return false;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

/* Exactly one of --user / --org: EX_USAGE otherwise. */
static int owner_flags(const char *cmd, const char *user, const char *org)
{
	if (!user == !org) {
		fprintf(stderr, "leakyctl %s: give exactly one of --user USERNAME or --org ORG\n",
			cmd);
		return EX_USAGE;
	}
	return 0;
}

/* ---- owners ---- */

/* The owner named by --user or --org (one is set) and the pool key of
 * `provider`.  EX_NOUSER / EX_DATAERR when there is no such owner. */
static int find_owner(struct sqlite3 *db, const char *cmd, const char *user, const char *org,
		      const char *provider, struct owner *ow, struct lt_pool_key *key)
{
	int rc;
	memset(ow, 0, sizeof *ow);
	if (user) {
		struct lt_user u;
		if ((rc = lt_cli_user(db, cmd, user, &u)))
			return rc;
		ow->kind = LT_OWNER_USER;
		snprintf(ow->id, sizeof ow->id, "%s", u.id);
		snprintf(ow->name, sizeof ow->name, "%s", u.username);
	} else {
		struct lt_org o;
		if ((rc = lt_cli_org(db, cmd, org, &o)))
			return rc;
		ow->kind = LT_OWNER_ORG;
		snprintf(ow->id, sizeof ow->id, "%s", o.id);
		snprintf(ow->name, sizeof ow->name, "%s", o.name);
	}
	memset(key, 0, sizeof *key);
	key->kind = ow->kind;
	snprintf(key->owner_id, sizeof key->owner_id, "%s", ow->id);
	snprintf(key->provider, sizeof key->provider, "%s", provider);
	return 0;
}

/* ---- quota show ---- */

static void show_json(struct lt_buf *b, const struct owner *ow, const struct lt_pool_row *r)
{
	const struct lt_pool *p = &r->pool;
	int64_t end = lt_window_end(p->window, p->window_start_ms);
	char reset[32], updated[32];
	lt_cli_iso(end > 0 ? end : 0, "", reset);
	lt_cli_iso(r->updated_ms, "", updated);
	lt_buf_printf(b, "{\"owner\":{\"kind\":\"%s\",\"id\":\"%s\",\"name\":", kind_name(ow->kind),
		      ow->id);
	lt_buf_put_json_str(b, ow->name, strlen(ow->name));
	lt_buf_puts(b, "},\"provider\":");
	lt_buf_put_json_str(b, r->key.provider, strlen(r->key.provider));
	lt_buf_printf(b,
		      ",\"unit\":\"%s\",\"total\":%lld,\"remaining\":%lld,\"reserved\":%lld,"
		      "\"available\":%lld,\"window\":\"%s\",\"windowCap\":",
		      strcmp(r->key.provider, LT_POOL_MONEY) ? "tokens" : "micro-dollars",
		      (long long)p->total, (long long)p->remaining, (long long)p->reserved,
		      (long long)lt_pool_available(p), lt_window_name(p->window));
	if (p->window_cap < 0)
		lt_buf_puts(b, "null");
	else
		lt_buf_printf(b, "%lld", (long long)p->window_cap);
	lt_buf_printf(b, ",\"windowUsed\":%lld,\"resetsAt\":", (long long)p->window_used);
	if (end > 0)
		lt_buf_printf(b, "\"%s\"", reset);
	else
		lt_buf_puts(b, "null");
	lt_buf_printf(b, ",\"updatedAt\":\"%s\"}\n", updated);
}

static void show_text(struct lt_buf *b, const struct owner *ow, const struct lt_pool_row *r)
{
	const struct lt_pool *p = &r->pool;
	int64_t end = lt_window_end(p->window, p->window_start_ms);
	char reset[32], updated[32], cap[24];
	lt_cli_iso(end > 0 ? end : 0, "never", reset);
	lt_cli_iso(r->updated_ms, "-", updated);
	if (p->window_cap < 0)
		snprintf(cap, sizeof cap, "none");
	else
		snprintf(cap, sizeof cap, "%lld", (long long)p->window_cap);
	lt_buf_printf(b,
		      "owner: %s %s (%s)\nprovider: %s\nunit: %s\ntotal: %lld\nremaining: %lld\n"
		      "reserved: %lld\navailable: %lld\nwindow: %s\nwindow_cap: %s\n"
		      "window_used: %lld\nresets: %s\nupdated: %s\n",
		      kind_name(ow->kind), ow->name, ow->id, r->key.provider,
		      strcmp(r->key.provider, LT_POOL_MONEY) ? "tokens" : "micro-dollars",
		      (long long)p->total, (long long)p->remaining, (long long)p->reserved,
		      (long long)lt_pool_available(p), lt_window_name(p->window), cap,
		      (long long)p->window_used, reset, updated);
}

int lt_cmd_quota_show(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "quota show";
	const char *user = NULL, *org = NULL;
	bool json = false;
	const struct lt_cli_opt opts[] = {{"--user", NULL, &user},
					  {"--org", NULL, &org},
					  {"--json", &json, NULL},
					  {NULL, NULL, NULL}};
	char *pos[1], provider[32];
	int npos, rc = quota_args(cmd, argc, argv, opts, 1, 1, pos, &npos);
	if (rc || (rc = owner_flags(cmd, user, org)) || (rc = provider_arg(cmd, pos[0], provider)))
		return rc;
	struct sqlite3 *db;
	if ((rc = lt_cli_db_open(cli, cmd, false, &db)))
		return rc;
	struct owner ow;
	struct lt_pool_key key;
	struct lt_pool_row r;
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 4096);
	if ((rc = find_owner(db, cmd, user, org, provider, &ow, &key)))
		goto out;
	enum lt_err e = lt_pool_store_get(db, &key, lt_cli_now_ms(), &r);
	if (e == LT_ENOTFOUND) {
		fprintf(stderr, "leakyctl %s: %s %s has no %s pool\n", cmd, kind_name(ow.kind),
			ow.name, provider);
		rc = EX_NOINPUT;
		goto out;
	}
	if (e) {
		rc = lt_cli_fail(cmd, e, "reading the pool");
		goto out;
	}
	if (json)
		show_json(&b, &ow, &r);
	else
		show_text(&b, &ow, &r);
	if (b.err) {
		rc = lt_cli_fail(cmd, b.err, "rendering");
		goto out;
	}
	fwrite(b.data, 1, b.len, stdout);
out:
	lt_buf_release(&b);
	lt_db_close(db);
	return rc;
}

/* ---- quota grant / adjust ---- */

struct change_args {
	const char *user, *org, *reason, *window, *window_cap;
	char provider[32];
	int64_t amount;
	bool adjust;
	enum lt_window w;
	int64_t cap; /* -1: none; valid when window_cap is set */
};

/* --reason: 1 to REASON_MAX bytes, no control characters. */
static int reason_ok(const char *cmd, const char *reason)
{
	size_t n = reason ? strlen(reason) : 0;
	bool ok = n >= 1 && n <= REASON_MAX;
	for (size_t i = 0; ok && i < n; i++)
		ok = (unsigned char)reason[i] >= ' ' && reason[i] != 0x7F;
	if (!ok) {
		fprintf(stderr,
			"leakyctl %s: --reason TEXT is required: 1 to %d characters, no control "
			"characters\n",
			cmd, REASON_MAX);
		return EX_USAGE;
	}
	return 0;
}

static int window_opts(const char *cmd, struct change_args *a)
{
	if (a->window && lt_window_parse(a->window, &a->w)) {
		fprintf(stderr, "leakyctl %s: --window is none, hour, day or month\n", cmd);
		return EX_USAGE;
	}
	if (a->window_cap) {
		if (strcasecmp(a->window_cap, "none") == 0)
			a->cap = -1;
		else if (!parse_i64(a->window_cap, &a->cap) || a->cap < 0) {
			fprintf(stderr,
				"leakyctl %s: --window-cap is a number >= 0 or 'none' (not "
				"'%.32s')\n",
				cmd, a->window_cap);
			return EX_USAGE;
		}
	}
	return 0;
}

/* The audit detail of a change (a JSON object) into d. */
static void audit_detail(struct lt_buf *d, const struct owner *ow, const struct change_args *a,
			 const struct lt_pool_row *r)
{
	lt_buf_printf(d,
		      "{\"ownerKind\":\"%s\",\"ownerId\":\"%s\",\"provider\":", kind_name(ow->kind),
		      ow->id);
	lt_buf_put_json_str(d, a->provider, strlen(a->provider));
	lt_buf_printf(d, ",\"amount\":%lld,\"reason\":", (long long)a->amount);
	lt_buf_put_json_str(d, a->reason, strlen(a->reason));
	lt_buf_printf(d, ",\"total\":%lld,\"remaining\":%lld,\"window\":\"%s\",\"windowCap\":",
		      (long long)r->pool.total, (long long)r->pool.remaining,
		      lt_window_name(r->pool.window));
	if (r->pool.window_cap < 0)
		lt_buf_puts(d, "null}");
	else
		lt_buf_printf(d, "%lld}", (long long)r->pool.window_cap);
}

static int change(struct lt_cli *cli, const char *cmd, struct change_args *a)
{
	struct sqlite3 *db;
	int rc = lt_cli_db_open(cli, cmd, false, &db);
	if (rc)
		return rc;
	struct owner ow;
	struct lt_pool_change c;
	struct lt_pool_row before;
	struct lt_buf d;
	memset(&c, 0, sizeof c);
	lt_buf_init(&d, NULL, 0, 2048);
	if ((rc = lt_cli_begin(db, cmd)))
		goto out;
	if ((rc = find_owner(db, cmd, a->user, a->org, a->provider, &ow, &c.key)))
		goto rollback;
	c.now_ms = lt_cli_now_ms();
	enum lt_err e = lt_pool_store_get(db, &c.key, c.now_ms, &before);
	bool exists = e == LT_OK;
	if (e && e != LT_ENOTFOUND) {
		rc = lt_cli_fail(cmd, e, "reading the pool");
		goto rollback;
	}
	/* The window and cap: as given, else the pool's (a new pool: none, no
	 * cap; a cap only makes sense with a window). */
	c.adjust = a->adjust;
	c.amount = a->amount;
	c.set_window = a->window || a->window_cap;
	c.window = a->window ? a->w : exists ? before.pool.window : LT_WINDOW_NONE;
	c.window_cap = a->window_cap ? a->cap : -1;
	if (!a->window_cap && exists && c.window != LT_WINDOW_NONE)
		c.window_cap = before.pool.window_cap;
	if (c.window == LT_WINDOW_NONE && c.window_cap >= 0) {
		fprintf(stderr,
			"leakyctl %s: --window-cap needs a window (--window hour|day|month)\n",
			cmd);
		rc = EX_USAGE;
		goto rollback;
	}
	c.note.actor = ACTOR;
	c.note.reason = a->reason;
	e = lt_pool_store_change(db, &c);
	if (e == LT_ERANGE) {
		if (a->adjust && a->amount < 0)
			fprintf(stderr,
				"leakyctl %s: refused: adjusting by %lld would take %s %s's %s "
				"pool "
				"below zero (remaining %lld); nothing changed\n",
				cmd, (long long)a->amount, kind_name(ow.kind), ow.name, a->provider,
				exists ? (long long)before.pool.remaining : 0LL);
		else
			fprintf(stderr, "leakyctl %s: refused: %s %s's %s pool would overflow\n",
				cmd, kind_name(ow.kind), ow.name, a->provider);
		rc = EX_DATAERR;
		goto rollback;
	}
	if (e) {
		rc = lt_cli_fail(cmd, e, "changing the pool");
		goto rollback;
	}
	audit_detail(&d, &ow, a, &c.out);
	e = d.err ? d.err
		  : lt_ident_audit(db, c.now_ms, ACTOR,
				   a->adjust ? "quota.adjusted" : "quota.granted", ow.id, d.data);
	if (e) {
		rc = lt_cli_fail(cmd, e, "writing the audit row");
		goto rollback;
	}
	if ((rc = lt_cli_commit(db, cmd)))
		goto out;
	const struct lt_pool *p = &c.out.pool;
	printf("%s %s%lld: %s %s %s: total=%lld remaining=%lld reserved=%lld window=%s\n",
	       a->adjust ? "adjusted by" : "granted", a->adjust && a->amount > 0 ? "+" : "",
	       (long long)a->amount, kind_name(ow.kind), ow.name, a->provider, (long long)p->total,
	       (long long)p->remaining, (long long)p->reserved, lt_window_name(p->window));
	goto out;
rollback:
	lt_cli_rollback(db);
out:
	lt_buf_release(&d);
	lt_db_close(db);
	return rc;
}

int lt_cmd_quota_grant(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "quota grant";
	struct change_args a;
	memset(&a, 0, sizeof a);
	const struct lt_cli_opt opts[] = {{"--user", NULL, &a.user},
					  {"--org", NULL, &a.org},
					  {"--reason", NULL, &a.reason},
					  {"--window", NULL, &a.window},
					  {"--window-cap", NULL, &a.window_cap},
					  {NULL, NULL, NULL}};
	char *pos[2];
	int npos, rc = quota_args(cmd, argc, argv, opts, 2, 2, pos, &npos);
	if (rc || (rc = owner_flags(cmd, a.user, a.org)) || (rc = reason_ok(cmd, a.reason)) ||
	    (rc = window_opts(cmd, &a)) || (rc = provider_arg(cmd, pos[0], a.provider)))
		return rc;
	if (!parse_i64(pos[1], &a.amount) || a.amount < 1) {
		fprintf(stderr, "leakyctl %s: TOKENS is a whole number >= 1 (not '%.32s')\n", cmd,
			pos[1]);
		return EX_USAGE;
	}
	return change(cli, cmd, &a);
}

int lt_cmd_quota_adjust(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "quota adjust";
	struct change_args a;
	memset(&a, 0, sizeof a);
	a.adjust = true;
	const struct lt_cli_opt opts[] = {{"--user", NULL, &a.user},
					  {"--org", NULL, &a.org},
					  {"--reason", NULL, &a.reason},
					  {NULL, NULL, NULL}};
	char *pos[2];
	int npos, rc = quota_args(cmd, argc, argv, opts, 2, 2, pos, &npos);
	if (rc || (rc = owner_flags(cmd, a.user, a.org)) || (rc = reason_ok(cmd, a.reason)) ||
	    (rc = provider_arg(cmd, pos[0], a.provider)))
		return rc;
	if (!parse_i64(pos[1], &a.amount) || a.amount == 0) {
		fprintf(stderr, "leakyctl %s: DELTA is a non-zero whole number (not '%.32s')\n",
			cmd, pos[1]);
		return EX_USAGE;
	}
	return change(cli, cmd, &a);
}
