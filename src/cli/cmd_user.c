/*
 * cmd_user.c — leakyctl user add | list | show | disable | enable | roles |
 * tier | passwd, and the helpers every identity command shares (argument
 * splitting, opening leaky.db, the write transaction, the identity
 * generation bump).
 *
 * Invariants: every change is one BEGIN IMMEDIATE transaction holding the
 * change and its audit row (actor "leakyctl"); LT_IDENTITY_GEN is bumped
 * only after the commit, so a leakyd request that reads the new generation
 * also reads the committed rows.  Passwords (read from stdin or generated)
 * live in stack buffers that are wiped before return; a generated one is
 * printed once and never stored in clear.
 * Ownership: each command opens and closes its own database handle.
 */
#define _POSIX_C_SOURCE 200809L
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>

#include "auth/apikey.h"
#include "auth/auth.h"
#include "auth/identity_store.h"
#include "auth/password.h"
#include "cli/cli.h"
#include "store/datadir.h"
#include "store/db.h"
#include "store/kv.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/timefmt.h"
#include "util/utf8.h"
#include "util/uuid.h"

#define ACTOR "leakyctl"

/* The configured tiers ([auth] tiers of the configuration leakyctl read;
 * lt_config_load has already checked them).  EX_CONFIG if they do not parse. */
static int cli_tiers(struct lt_cli *cli, const char *cmd, struct lt_tiers *t)
{
	char why[256];
	if (lt_tiers_parse(cli->cfg.auth_tiers, t, why, sizeof why) != LT_OK) {
		fprintf(stderr, "leakyctl %s: [auth] tiers: %s\n", cmd, why);
		return EX_CONFIG;
	}
	return 0;
}

/* ---- shared helpers ---- */

int lt_cli_args(const char *cmd, int argc, char **argv, const struct lt_cli_opt *opts, int min,
		int max, char **pos, int *npos)
{
	bool only_pos = false;
	*npos = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!only_pos && strcmp(a, "--") == 0) {
			only_pos = true;
			continue;
		}
		if (only_pos || a[0] != '-' || a[1] == '\0') {
			if (*npos == max) {
				fprintf(stderr, "leakyctl %s: unexpected argument '%s'\n", cmd, a);
				return EX_USAGE;
			}
			pos[(*npos)++] = argv[i];
			continue;
		}
		const struct lt_cli_opt *o = opts;
		size_t n = strcspn(a, "=");
		for (; o && o->name; o++)
			if (strlen(o->name) == n && strncmp(o->name, a, n) == 0)
				break;
		if (!o || !o->name) {
			fprintf(stderr, "leakyctl %s: unknown option '%s'\n", cmd, a);
			return EX_USAGE;
		}
		if (!o->value) {
			if (a[n] == '=') {
				fprintf(stderr, "leakyctl %s: %s takes no value\n", cmd, o->name);
				return EX_USAGE;
			}
			*o->set = true;
		} else if (a[n] == '=') {
			*o->value = a + n + 1;
		} else if (i + 1 < argc) {
			*o->value = argv[++i];
		} else {
			fprintf(stderr, "leakyctl %s: %s needs a value\n", cmd, o->name);
			return EX_USAGE;
		}
	}
	if (*npos < min) {
		fprintf(stderr, "leakyctl %s: missing argument (see leakyctl help)\n", cmd);
		return EX_USAGE;
	}
	return 0;
}

int lt_cli_fail(const char *cmd, enum lt_err e, const char *what)
{
	switch (e) {
	case LT_EBUSY:
		fprintf(stderr,
			"leakyctl %s: %s: the database stayed locked for busy_timeout_ms; try "
			"again\n",
			cmd, what);
		return EX_TEMPFAIL;
	case LT_ENOMEM:
		fprintf(stderr, "leakyctl %s: %s: out of memory\n", cmd, what);
		return EX_OSERR;
	case LT_EDENIED:
		fprintf(stderr, "leakyctl %s: %s: %s\n", cmd, what, lt_strerror(e));
		return EX_NOPERM;
	case LT_EEXIST:
	case LT_EINVAL:
	case LT_ENOTFOUND:
	case LT_ESCHEMA:
	case LT_ECORRUPT:
		fprintf(stderr, "leakyctl %s: %s: %s\n", cmd, what, lt_strerror(e));
		return EX_DATAERR;
	default:
		fprintf(stderr, "leakyctl %s: %s: %s\n", cmd, what, lt_strerror(e));
		return EX_IOERR;
	}
}

int lt_cli_db_open(struct lt_cli *cli, const char *cmd, bool create, struct sqlite3 **db)
{
	char path[4096],
		err[LT_DB_ERR_MAX > LT_DATADIR_ERR_MAX ? LT_DB_ERR_MAX : LT_DATADIR_ERR_MAX] = "";
	struct stat st;
	int from, to;
	*db = NULL;
	if (sodium_init() < 0) {
		fprintf(stderr, "leakyctl %s: libsodium failed to initialise\n", cmd);
		return EX_SOFTWARE;
	}
	if (lt_datadir_path(cli->data_dir, "leaky.db", path, sizeof path)) {
		fprintf(stderr, "leakyctl %s: data directory path too long\n", cmd);
		return EX_USAGE;
	}
	if (stat(path, &st) != 0) {
		if (!create) {
			fprintf(stderr, "leakyctl %s: no database at %s (run leakyctl init)\n", cmd,
				path);
			return EX_NOINPUT;
		}
		if (lt_datadir_prepare(cli->data_dir, err)) {
			fprintf(stderr, "leakyctl %s: %s\n", cmd, err);
			return EX_CANTCREAT;
		}
	}
	enum lt_err e =
		lt_storage_open_db(cli->data_dir, (int)cli->cfg.storage_sqlite_synchronous,
				   (int)cli->cfg.storage_busy_timeout_ms, db, &from, &to, err);
	if (e) {
		fprintf(stderr, "leakyctl %s: leaky.db: %s\n", cmd, err);
		return e == LT_ESCHEMA ? EX_DATAERR : e == LT_EBUSY ? EX_TEMPFAIL : EX_IOERR;
	}
	return 0;
}

int lt_cli_begin(struct sqlite3 *db, const char *cmd)
{
	char err[LT_DB_ERR_MAX];
	enum lt_err e = lt_db_exec(db, "BEGIN IMMEDIATE", err);
	return e ? lt_cli_fail(cmd, e, "begin transaction") : 0;
}

void lt_cli_rollback(struct sqlite3 *db)
{
	lt_db_exec(db, "ROLLBACK", NULL);
}

int lt_cli_commit(struct sqlite3 *db, const char *cmd)
{
	char err[LT_DB_ERR_MAX];
	enum lt_err e = lt_db_exec(db, "COMMIT", err);
	if (e) {
		lt_cli_rollback(db);
		return lt_cli_fail(cmd, e, "commit");
	}
	return 0;
}

int lt_cli_changed(struct lt_cli *cli, const char *cmd)
{
	char path[4096], err[LT_KV_ERR_MAX] = "data directory path too long";
	struct lt_kv *kv = NULL;
	enum lt_err e = LT_ETOOBIG;
	if (!lt_datadir_path(cli->data_dir, "buckets", path, sizeof path) &&
	    !lt_kv_open(path, (uint64_t)cli->cfg.storage_lmdb_map_size, false, &kv, err)) {
		e = lt_kv_counter_bump(kv, LT_IDENTITY_GEN, NULL);
		if (e)
			snprintf(err, sizeof err, "%s", lt_strerror(e));
		lt_kv_close(kv);
	}
	if (e) {
		/* The change is committed; only the cache invalidation failed. */
		fprintf(stderr,
			"leakyctl %s: saved, but the identity generation could not be bumped "
			"(%s): restart leakyd for the change to reach its caches\n",
			cmd, err);
		return EX_IOERR;
	}
	return 0;
}

int lt_cli_user(struct sqlite3 *db, const char *cmd, const char *username, struct lt_user *out)
{
	enum lt_err e = lt_ident_user_by_name(db, username, out, NULL);
	if (e == LT_ENOTFOUND) {
		fprintf(stderr, "leakyctl %s: no such user '%s'\n", cmd, username);
		return EX_NOUSER;
	}
	return e ? lt_cli_fail(cmd, e, "reading the user") : 0;
}

int64_t lt_cli_now_ms(void)
{
	return lt_clock_real_ns() / LT_NS_PER_MS;
}

void lt_cli_iso(int64_t ms, const char *zero, char out[32])
{
	if (!ms) {
		snprintf(out, 32, "%s", zero);
		return;
	}
	char iso[LT_ISO_LEN];
	lt_time_iso(ms * LT_NS_PER_MS, iso);
	snprintf(out, 32, "%s", iso);
}

void lt_cli_roles(unsigned roles, char out[32])
{
	static const unsigned order[] = {LT_ROLE_ADMIN, LT_ROLE_ORG_ADMIN, LT_ROLE_USER};
	size_t n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < 3; i++)
		if (roles & order[i])
			n += (size_t)snprintf(out + n, 32 - n, "%s%s", n ? "," : "",
					      lt_role_name(order[i]));
}

/* ---- passwords ---- */

/* The first line of stdin into pw (without the line end); checks length
 * (LT_PASSWORD_MIN..LT_PASSWORD_MAX characters, at most LT_PASSWORD_MAX
 * bytes) and UTF-8. */
static int read_password(const char *cmd, char pw[LT_PASSWORD_MAX + 2])
{
	if (!fgets(pw, LT_PASSWORD_MAX + 2, stdin)) {
		fprintf(stderr, "leakyctl %s: no password on standard input\n", cmd);
		return EX_DATAERR;
	}
	size_t n = strcspn(pw, "\r\n");
	bool whole = pw[n] != '\0' || feof(stdin);
	pw[n] = '\0';
	size_t chars = 0;
	for (size_t i = 0; i < n; i++)
		chars += ((unsigned char)pw[i] & 0xC0) != 0x80;
	if (!whole || n > LT_PASSWORD_MAX || chars < LT_PASSWORD_MIN ||
	    !lt_utf8_valid(pw, n, NULL)) {
		sodium_memzero(pw, LT_PASSWORD_MAX + 2);
		fprintf(stderr, "leakyctl %s: the password must be %d-%d characters of UTF-8\n",
			cmd, LT_PASSWORD_MIN, LT_PASSWORD_MAX);
		return EX_DATAERR;
	}
	return 0;
}

/* 24 random base-62 characters, as leakyd's bootstrap admin password. */
static void generate_password(char pw[LT_PASSWORD_MAX + 2])
{
	unsigned char rnd[LT_APIKEY_SECRET_BYTES];
	char enc[LT_APIKEY_SECRET_LEN];
	randombytes_buf(rnd, sizeof rnd);
	lt_apikey_base62_encode(rnd, enc);
	memcpy(pw, enc + LT_APIKEY_SECRET_LEN - 24, 24);
	pw[24] = '\0';
	sodium_memzero(rnd, sizeof rnd);
	sodium_memzero(enc, sizeof enc);
}

/* ---- user add ---- */

static void detail_username(struct lt_buf *b, const char *username)
{
	lt_buf_puts(b, "{\"username\":");
	lt_buf_put_json_str(b, username, strlen(username));
	lt_buf_putc(b, '}');
}

int lt_cmd_user_add(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "user add";
	bool admin = false, from_stdin = false, json = false;
	const struct lt_cli_opt opts[] = {{"--admin", &admin, NULL},
					  {"--password-stdin", &from_stdin, NULL},
					  {"--json", &json, NULL},
					  {NULL, NULL, NULL}};
	char *pos[2];
	int npos, rc = lt_cli_args(cmd, argc, argv, opts, 2, 2, pos, &npos);
	if (rc)
		return rc;
	if (!lt_ident_valid_username(pos[0])) {
		fprintf(stderr, "leakyctl %s: a username is 3-50 characters of A-Z a-z 0-9 . _ -\n",
			cmd);
		return EX_DATAERR;
	}
	if (!lt_ident_valid_email(pos[1])) {
		fprintf(stderr, "leakyctl %s: invalid email '%s'\n", cmd, pos[1]);
		return EX_DATAERR;
	}
	char pw[LT_PASSWORD_MAX + 2], hash[LT_PASSWORD_HASH_LEN];
	struct sqlite3 *db = NULL;
	struct lt_user u;
	struct lt_buf detail;
	lt_buf_init(&detail, NULL, 0, 1024);
	if (sodium_init() < 0)
		return EX_SOFTWARE;
	if (from_stdin) {
		if ((rc = read_password(cmd, pw)))
			return rc;
	} else {
		generate_password(pw);
	}
	memset(&u, 0, sizeof u);
	lt_uuid_v4(u.id);
	snprintf(u.username, sizeof u.username, "%s", pos[0]);
	snprintf(u.email, sizeof u.email, "%s", pos[1]);
	u.roles = LT_ROLE_USER | (admin ? LT_ROLE_ADMIN : 0);
	/* Hash before taking the write lock: ~80 ms leakyd need not wait. */
	enum lt_err e = lt_password_hash(pw, strlen(pw), hash);
	if (e) {
		rc = lt_cli_fail(cmd, e, "hashing the password");
		goto out;
	}
	if ((rc = lt_cli_db_open(cli, cmd, true, &db)) || (rc = lt_cli_begin(db, cmd)))
		goto out;
	u.created_ms = u.updated_ms = lt_cli_now_ms();
	enum lt_conflict conflict = LT_CONFLICT_NONE;
	e = lt_ident_user_insert(db, &u, hash, &conflict);
	if (!e) {
		detail_username(&detail, u.username);
		e = detail.err ? detail.err
			       : lt_ident_audit(db, u.created_ms, ACTOR, "user.created", u.id,
						detail.data);
	}
	if (e) {
		lt_cli_rollback(db);
		if (conflict == LT_CONFLICT_USERNAME || conflict == LT_CONFLICT_EMAIL) {
			fprintf(stderr, "leakyctl %s: %s already exists\n", cmd,
				conflict == LT_CONFLICT_USERNAME ? "username" : "email");
			rc = EX_DATAERR;
		} else {
			rc = lt_cli_fail(cmd, e, "creating the user");
		}
		goto out;
	}
	if ((rc = lt_cli_commit(db, cmd)))
		goto out;
	rc = lt_cli_changed(cli, cmd);
	char roles[32];
	lt_cli_roles(u.roles, roles);
	if (json) {
		struct lt_buf b;
		lt_buf_init(&b, NULL, 0, 4096);
		lt_buf_printf(&b, "{\"id\":\"%s\",\"username\":", u.id);
		lt_buf_put_json_str(&b, u.username, strlen(u.username));
		lt_buf_puts(&b, ",\"email\":");
		lt_buf_put_json_str(&b, u.email, strlen(u.email));
		lt_buf_printf(&b, ",\"roles\":[\"%s\"%s]", admin ? "ADMIN" : "USER",
			      admin ? ",\"USER\"" : "");
		if (!from_stdin) {
			lt_buf_puts(&b, ",\"password\":");
			lt_buf_put_json_str(&b, pw, strlen(pw));
		}
		lt_buf_puts(&b, "}\n");
		fwrite(b.data, 1, b.len, stdout);
		sodium_memzero(b.data, b.len);
		lt_buf_release(&b);
	} else {
		printf("created user %s (%s), roles %s\n", u.username, u.id, roles);
		if (!from_stdin)
			printf("password: %s\n", pw);
	}
out:
	if (db)
		lt_db_close(db);
	lt_buf_release(&detail);
	sodium_memzero(pw, sizeof pw);
	sodium_memzero(hash, sizeof hash);
	return rc;
}

/* ---- user list / show ---- */

static void print_user(const struct lt_tiers *t, const struct lt_user *u)
{
	char roles[32], tier[LT_TIER_MAX + 1], created[32];
	lt_cli_roles(u->roles, roles);
	lt_auth_tier(t, u, tier);
	lt_cli_iso(u->created_ms, "-", created);
	printf("%s %s %s roles=%s tier=%s %s created=%s\n", u->id, u->username, u->email,
	       roles[0] ? roles : "-", tier, u->disabled ? "disabled" : "enabled", created);
}

static bool list_one(void *arg, const struct lt_user *u)
{
	print_user(arg, u);
	return true;
}

int lt_cmd_user_list(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "user list";
	char *pos[1];
	int npos, rc = lt_cli_args(cmd, argc, argv, NULL, 0, 0, pos, &npos);
	struct lt_tiers tiers;
	struct sqlite3 *db;
	if (rc || (rc = cli_tiers(cli, cmd, &tiers)) || (rc = lt_cli_db_open(cli, cmd, false, &db)))
		return rc;
	enum lt_err e = lt_ident_user_list(db, 0, INT64_MAX, list_one, &tiers);
	lt_db_close(db);
	return e ? lt_cli_fail(cmd, e, "listing users") : 0;
}

struct show_ctx {
	struct sqlite3 *db;
	struct lt_buf *b;
	bool json;
	int n;
};

static bool show_org(void *arg, const struct lt_membership *m)
{
	struct show_ctx *c = arg;
	struct lt_org o;
	if (lt_ident_org_by_id(c->db, m->org_id, &o))
		snprintf(o.name, sizeof o.name, "%s", m->org_id);
	const char *role = lt_role_name(m->role) ? lt_role_name(m->role) : "?";
	if (c->json) {
		lt_buf_printf(c->b, "%s{\"orgId\":\"%s\",\"name\":", c->n ? "," : "", m->org_id);
		lt_buf_put_json_str(c->b, o.name, strlen(o.name));
		lt_buf_printf(c->b, ",\"role\":\"%s\"}", role);
	} else {
		lt_buf_printf(c->b, "%s%s:%s", c->n ? "," : "", o.name, role);
	}
	c->n++;
	return true;
}

static bool count_key(void *arg, const struct lt_api_key_row *k)
{
	(void)k;
	(*(int *)arg)++;
	return true;
}

int lt_cmd_user_show(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "user show";
	bool json = false;
	const struct lt_cli_opt opts[] = {{"--json", &json, NULL}, {NULL, NULL, NULL}};
	char *pos[1];
	int npos, rc = lt_cli_args(cmd, argc, argv, opts, 1, 1, pos, &npos);
	struct lt_tiers tiers;
	struct sqlite3 *db;
	if (rc || (rc = cli_tiers(cli, cmd, &tiers)) || (rc = lt_cli_db_open(cli, cmd, false, &db)))
		return rc;
	struct lt_user u;
	struct lt_buf orgs;
	int keys = 0;
	lt_buf_init(&orgs, NULL, 0, 1u << 20);
	if ((rc = lt_cli_user(db, cmd, pos[0], &u)))
		goto out;
	struct show_ctx c = {db, &orgs, json, 0};
	enum lt_err e = lt_ident_member_list(db, NULL, u.id, show_org, &c);
	if (!e)
		e = lt_ident_key_list(db, u.id, count_key, &keys);
	if (!e)
		e = orgs.err;
	if (e) {
		rc = lt_cli_fail(cmd, e, "reading the user");
		goto out;
	}
	char roles[32], tier[LT_TIER_MAX + 1], created[32], updated[32];
	lt_cli_roles(u.roles, roles);
	lt_auth_tier(&tiers, &u, tier);
	lt_cli_iso(u.created_ms, "-", created);
	lt_cli_iso(u.updated_ms, "-", updated);
	if (json) {
		struct lt_buf b;
		lt_buf_init(&b, NULL, 0, 2u << 20);
		lt_buf_printf(&b, "{\"id\":\"%s\",\"username\":", u.id);
		lt_buf_put_json_str(&b, u.username, strlen(u.username));
		lt_buf_puts(&b, ",\"email\":");
		lt_buf_put_json_str(&b, u.email, strlen(u.email));
		lt_buf_puts(&b, ",\"roles\":[");
		for (char *r = roles, *comma; *r; r = comma ? comma + 1 : r + strlen(r)) {
			comma = strchr(r, ',');
			lt_buf_printf(&b, "%s\"%.*s\"", r == roles ? "" : ",",
				      (int)(comma ? (size_t)(comma - r) : strlen(r)), r);
		}
		lt_buf_printf(&b, "],\"tier\":\"%s\",\"explicitTier\":", tier);
		if (u.tier[0])
			lt_buf_printf(&b, "\"%s\"", u.tier);
		else
			lt_buf_puts(&b, "null");
		lt_buf_printf(&b,
			      ",\"disabled\":%s,\"createdAt\":\"%s\",\"updatedAt\":\"%s\","
			      "\"apiKeys\":%d,\"orgs\":[%s]}\n",
			      u.disabled ? "true" : "false", created, updated, keys,
			      orgs.data ? orgs.data : "");
		if (b.err)
			rc = lt_cli_fail(cmd, b.err, "rendering");
		else
			fwrite(b.data, 1, b.len, stdout);
		lt_buf_release(&b);
	} else {
		printf("id: %s\nusername: %s\nemail: %s\nroles: %s\ntier: %s%s\nstatus: %s\n"
		       "created: %s\nupdated: %s\napi keys: %d\norgs: %s\n",
		       u.id, u.username, u.email, roles[0] ? roles : "-", tier,
		       u.tier[0] ? " (explicit)" : "", u.disabled ? "disabled" : "enabled", created,
		       updated, keys, c.n ? orgs.data : "-");
	}
out:
	lt_buf_release(&orgs);
	lt_db_close(db);
	return rc;
}

/* ---- changes to one user ---- */

enum user_change { CH_DISABLE, CH_ENABLE, CH_ROLES, CH_TIER, CH_PASSWD };

/* Look the user up, apply the change and its audit row in one transaction,
 * commit, bump the generation. */
static int change_user(struct lt_cli *cli, const char *cmd, const char *username,
		       enum user_change ch, unsigned roles, const char *tier, const char *hash,
		       struct lt_user *u)
{
	struct sqlite3 *db;
	int rc = lt_cli_db_open(cli, cmd, false, &db);
	if (rc)
		return rc;
	if ((rc = lt_cli_begin(db, cmd)))
		goto out;
	if ((rc = lt_cli_user(db, cmd, username, u))) {
		lt_cli_rollback(db);
		goto out;
	}
	int64_t now = lt_cli_now_ms();
	struct lt_buf d;
	char roles_s[32];
	const char *action = "";
	enum lt_err e = LT_OK;
	lt_buf_init(&d, NULL, 0, 1024);
	lt_buf_puts(&d, "{\"username\":");
	lt_buf_put_json_str(&d, u->username, strlen(u->username));
	switch (ch) {
	case CH_DISABLE:
	case CH_ENABLE:
		action = ch == CH_DISABLE ? "user.disabled" : "user.enabled";
		e = lt_ident_user_set_disabled(db, u->id, ch == CH_DISABLE, now);
		u->disabled = ch == CH_DISABLE;
		break;
	case CH_ROLES:
		action = "user.roles";
		lt_cli_roles(u->roles, roles_s);
		lt_buf_printf(&d, ",\"from\":\"%s\"", roles_s);
		lt_cli_roles(roles, roles_s);
		lt_buf_printf(&d, ",\"to\":\"%s\"", roles_s);
		e = lt_ident_user_set_roles(db, u->id, roles, now);
		u->roles = roles;
		break;
	case CH_TIER:
		action = "user.tier";
		lt_buf_printf(&d, ",\"from\":\"%s\",\"to\":\"%s\"", u->tier, tier ? tier : "");
		e = lt_ident_user_set_tier(db, u->id, tier, now);
		snprintf(u->tier, sizeof u->tier, "%s", tier ? tier : "");
		break;
	case CH_PASSWD:
		action = "user.password";
		e = lt_ident_user_set_password(db, u->id, hash, now);
		break;
	}
	lt_buf_putc(&d, '}');
	if (!e)
		e = d.err;
	if (!e)
		e = lt_ident_audit(db, now, ACTOR, action, u->id, d.data);
	lt_buf_release(&d);
	if (e) {
		lt_cli_rollback(db);
		rc = lt_cli_fail(cmd, e, "updating the user");
		goto out;
	}
	if (!(rc = lt_cli_commit(db, cmd)))
		rc = lt_cli_changed(cli, cmd);
out:
	lt_db_close(db);
	return rc;
}

static int enable_disable(struct lt_cli *cli, int argc, char **argv, bool disable)
{
	const char *cmd = disable ? "user disable" : "user enable";
	char *pos[1];
	struct lt_user u;
	int npos, rc = lt_cli_args(cmd, argc, argv, NULL, 1, 1, pos, &npos);
	if (rc || (rc = change_user(cli, cmd, pos[0], disable ? CH_DISABLE : CH_ENABLE, 0, NULL,
				    NULL, &u)))
		return rc;
	printf("%s %s\n", disable ? "disabled" : "enabled", u.username);
	return 0;
}

int lt_cmd_user_disable(struct lt_cli *cli, int argc, char **argv)
{
	return enable_disable(cli, argc, argv, true);
}

int lt_cmd_user_enable(struct lt_cli *cli, int argc, char **argv)
{
	return enable_disable(cli, argc, argv, false);
}

int lt_cmd_user_roles(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "user roles";
	char *pos[2];
	int npos, rc = lt_cli_args(cmd, argc, argv, NULL, 2, 2, pos, &npos);
	if (rc)
		return rc;
	unsigned roles = 0;
	char list[64];
	if (strlen(pos[1]) >= sizeof list) {
		fprintf(stderr, "leakyctl %s: roles list too long\n", cmd);
		return EX_USAGE;
	}
	snprintf(list, sizeof list, "%s", pos[1]);
	for (char *r = list, *comma; r; r = comma ? comma + 1 : NULL) {
		comma = strchr(r, ',');
		if (comma)
			*comma = '\0';
		for (char *p = r; *p; p++)
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 'a' + 'A');
		unsigned bit = lt_role_parse(r);
		if (!bit) {
			fprintf(stderr,
				"leakyctl %s: unknown role '%s' (roles: ADMIN, ORG_ADMIN, USER)\n",
				cmd, r);
			return EX_USAGE;
		}
		roles |= bit;
	}
	struct lt_user u;
	if ((rc = change_user(cli, cmd, pos[0], CH_ROLES, roles, NULL, NULL, &u)))
		return rc;
	char s[32];
	lt_cli_roles(u.roles, s);
	printf("%s: roles %s\n", u.username, s);
	return 0;
}

int lt_cmd_user_tier(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "user tier";
	char *pos[2];
	int npos, rc = lt_cli_args(cmd, argc, argv, NULL, 2, 2, pos, &npos);
	if (rc)
		return rc;
	const char *tier = strcmp(pos[1], "-") == 0 ? NULL : pos[1];
	struct lt_tiers tiers;
	if ((rc = cli_tiers(cli, cmd, &tiers)))
		return rc;
	if (tier && lt_tiers_find(&tiers, tier) < 0) {
		fprintf(stderr,
			"leakyctl %s: unknown tier '%s' (configured in [auth] tiers; - clears)\n",
			cmd, tier);
		return EX_DATAERR;
	}
	struct lt_user u;
	if ((rc = change_user(cli, cmd, pos[0], CH_TIER, 0, tier, NULL, &u)))
		return rc;
	char eff[LT_TIER_MAX + 1];
	lt_auth_tier(&tiers, &u, eff);
	printf("%s: tier %s%s\n", u.username, eff, tier ? "" : " (from roles)");
	return 0;
}

int lt_cmd_user_passwd(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "user passwd";
	bool from_stdin = false;
	const struct lt_cli_opt opts[] = {{"--password-stdin", &from_stdin, NULL},
					  {NULL, NULL, NULL}};
	char *pos[1];
	int npos, rc = lt_cli_args(cmd, argc, argv, opts, 1, 1, pos, &npos);
	if (rc)
		return rc;
	char pw[LT_PASSWORD_MAX + 2], hash[LT_PASSWORD_HASH_LEN];
	if (sodium_init() < 0)
		return EX_SOFTWARE;
	if (from_stdin) {
		if ((rc = read_password(cmd, pw)))
			return rc;
	} else {
		generate_password(pw);
	}
	enum lt_err e = lt_password_hash(pw, strlen(pw), hash);
	struct lt_user u;
	if (e)
		rc = lt_cli_fail(cmd, e, "hashing the password");
	else
		rc = change_user(cli, cmd, pos[0], CH_PASSWD, 0, NULL, hash, &u);
	if (!rc) {
		printf("password of %s changed\n", u.username);
		if (!from_stdin)
			printf("password: %s\n", pw);
	}
	sodium_memzero(pw, sizeof pw);
	sodium_memzero(hash, sizeof hash);
	return rc;
}
