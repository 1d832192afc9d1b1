/*
 * identity_store.c — SQL for users, roles, orgs, members, API keys and the
 * audit trail.  See identity_store.h.  Statements are prepared per call:
 * these run on cache misses and admin writes, never per request.
 */
#include <ctype.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "auth/identity_store.h"
#include "events/outbox.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/json.h"
#include "util/timefmt.h"

static const char *const role_names[] = {"USER", "ORG_ADMIN", "ADMIN"};

const char *lt_role_name(unsigned role)
{
	for (unsigned i = 0; i < 3; i++)
		if (role == (1u << i))
			return role_names[i];
	return NULL;
}

unsigned lt_role_parse(const char *s)
{
	for (unsigned i = 0; i < 3; i++)
		if (s && strcmp(s, role_names[i]) == 0)
			return 1u << i;
	return 0;
}

static enum lt_err rc_err(int rc)
{
	switch (rc & 0xFF) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW: return LT_OK;
	case SQLITE_BUSY:
	case SQLITE_LOCKED: return LT_EBUSY;
	case SQLITE_CONSTRAINT: return LT_EEXIST;
	case SQLITE_NOMEM: return LT_ENOMEM;
	default: return LT_EIO;
	}
}

/* Prepare sql and bind the NUL-terminated strings in args (NULL binds
 * NULL) to ?1..?n. */
static enum lt_err prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, int n,
			const char *const *args)
{
	int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
	if (rc != SQLITE_OK)
		return rc_err(rc);
	for (int i = 0; i < n; i++) {
		rc = args[i] ? sqlite3_bind_text(*st, i + 1, args[i], -1, SQLITE_STATIC)
			     : sqlite3_bind_null(*st, i + 1);
		if (rc != SQLITE_OK) {
			sqlite3_finalize(*st);
			*st = NULL;
			return rc_err(rc);
		}
	}
	return LT_OK;
}

static void copy_col(sqlite3_stmt *st, int col, char *out, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	size_t n = t ? (size_t)sqlite3_column_bytes(st, col) : 0;
	if (n >= cap)
		n = cap - 1;
	if (n)
		memcpy(out, t, n);
	out[n] = '\0';
}

static int64_t col_i64(sqlite3_stmt *st, int col)
{
	return sqlite3_column_type(st, col) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, col);
}

/* Run a statement that returns no rows. *changes gets sqlite3_changes. */
static enum lt_err exec_changes(sqlite3 *db, sqlite3_stmt *st, int *changes)
{
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return rc_err(rc) ? rc_err(rc) : LT_EIO;
	if (changes)
		*changes = sqlite3_changes(db);
	return LT_OK;
}

static enum lt_err write_roles(sqlite3 *db, const char *id, unsigned roles)
{
	sqlite3_stmt *st;
	const char *a[] = {id};
	enum lt_err e = prep(db, "DELETE FROM user_roles WHERE user_id = ?1", &st, 1, a);
	if (!e)
		e = exec_changes(db, st, NULL);
	for (unsigned i = 0; !e && i < 3; i++) {
		if (!(roles & (1u << i)))
			continue;
		const char *b[] = {id, role_names[i]};
		e = prep(db, "INSERT INTO user_roles (user_id, role) VALUES (?1, ?2)", &st, 2, b);
		if (!e)
			e = exec_changes(db, st, NULL);
	}
	return e;
}

enum lt_err lt_ident_user_insert(sqlite3 *db, const struct lt_user *u, const char *pw_hash,
				 enum lt_conflict *conflict)
{
	sqlite3_stmt *st;
	*conflict = LT_CONFLICT_NONE;
	/* Find which unique field collides first, for the right message. */
	const char *chk[] = {u->username, u->email};
	enum lt_err e = prep(db,
			     "SELECT (SELECT 1 FROM users WHERE username = ?1), "
			     "(SELECT 1 FROM users WHERE email = ?2)",
			     &st, 2, chk);
	if (e)
		return e;
	if (sqlite3_step(st) == SQLITE_ROW) {
		if (sqlite3_column_type(st, 0) != SQLITE_NULL)
			*conflict = LT_CONFLICT_USERNAME;
		else if (sqlite3_column_type(st, 1) != SQLITE_NULL)
			*conflict = LT_CONFLICT_EMAIL;
	}
	sqlite3_finalize(st);
	if (*conflict)
		return LT_EEXIST;
	const char *a[] = {u->id, u->username, u->email, pw_hash, u->tier[0] ? u->tier : NULL};
	e = prep(db,
		 "INSERT INTO users (id, username, email, password_hash, tier, disabled, "
		 "created_at, "
		 "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
		 &st, 5, a);
	if (e)
		return e;
	sqlite3_bind_int(st, 6, u->disabled ? 1 : 0);
	sqlite3_bind_int64(st, 7, u->created_ms);
	e = exec_changes(db, st, NULL);
	if (!e)
		e = write_roles(db, u->id, u->roles);
	return e;
}

#define USER_COLS                                                                                  \
	"u.id, u.username, u.email, coalesce(u.tier, ''), u.disabled, u.created_at, "              \
	"u.updated_at, (SELECT coalesce(sum(CASE r.role WHEN 'USER' THEN 1 WHEN "                  \
	"'ORG_ADMIN' THEN 2 WHEN 'ADMIN' THEN 4 END), 0) FROM user_roles r WHERE r.user_id "       \
	"= u.id), u.password_hash"

/* A caller's row callback, carried through each_row (its type is restored
 * by the row reader that knows it). */
struct rows {
	void (*fn)(void);
	void *arg;
};

/* Step st to its end, handing each row to row() until it returns false;
 * finalizes st.  The one loop every listing shares. */
static enum lt_err each_row(sqlite3_stmt *st, bool (*row)(sqlite3_stmt *st, const struct rows *r),
			    const struct rows *r)
{
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (!row(st, r))
			break;
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? LT_OK : rc_err(rc);
}

static void read_user(sqlite3_stmt *st, struct lt_user *out, char *pw_hash)
{
	copy_col(st, 0, out->id, sizeof out->id);
	copy_col(st, 1, out->username, sizeof out->username);
	copy_col(st, 2, out->email, sizeof out->email);
	copy_col(st, 3, out->tier, sizeof out->tier);
	out->disabled = sqlite3_column_int(st, 4) != 0;
	out->created_ms = col_i64(st, 5);
	out->updated_ms = col_i64(st, 6);
	out->roles = (unsigned)sqlite3_column_int(st, 7);
	if (pw_hash)
		copy_col(st, 8, pw_hash, LT_PWHASH_MAX + 1);
}

static enum lt_err user_query(sqlite3 *db, const char *where, const char *arg, struct lt_user *out,
			      char *pw_hash)
{
	char sql[512];
	snprintf(sql, sizeof sql, "SELECT " USER_COLS " FROM users u WHERE %s", where);
	sqlite3_stmt *st;
	const char *a[] = {arg};
	enum lt_err e = prep(db, sql, &st, 1, a);
	if (e)
		return e;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		read_user(st, out, pw_hash);
	else
		e = rc == SQLITE_DONE ? LT_ENOTFOUND : rc_err(rc);
	sqlite3_finalize(st);
	return e;
}

enum lt_err lt_ident_user_create(sqlite3 *db, void *new_user)
{
	struct lt_ident_new_user *n = new_user;
	if (n->only_if_empty) {
		int64_t count = 0;
		enum lt_err e = lt_ident_user_count(db, &count);
		if (e || count) {
			n->skipped = !e;
			return e;
		}
	}
	enum lt_err e = lt_ident_user_insert(db, &n->u, n->hash, &n->conflict);
	if (!e)
		e = lt_ident_audit(db, n->u.created_ms, n->actor ? n->actor : n->u.id, n->action,
				   n->u.id, n->detail_json);
	return e;
}

enum lt_err lt_ident_user_by_id(sqlite3 *db, const char *id, struct lt_user *out)
{
	return user_query(db, "u.id = ?1", id, out, NULL);
}

enum lt_err lt_ident_user_by_name(sqlite3 *db, const char *username, struct lt_user *out,
				  char *pw_hash)
{
	return user_query(db, "u.username = ?1", username, out, pw_hash);
}

/* UPDATE users SET <set> , updated_at = ?2 WHERE id = ?1, with ?3 bound by
 * the caller through `bind`; LT_ENOTFOUND if no such user. */
static enum lt_err user_update(sqlite3 *db, const char *set, const char *id, int64_t now_ms,
			       const char *text3, int int3, bool use_int)
{
	char sql[256];
	snprintf(sql, sizeof sql, "UPDATE users SET %s, updated_at = ?2 WHERE id = ?1", set);
	sqlite3_stmt *st;
	const char *a[] = {id};
	enum lt_err e = prep(db, sql, &st, 1, a);
	if (e)
		return e;
	sqlite3_bind_int64(st, 2, now_ms);
	if (use_int)
		sqlite3_bind_int(st, 3, int3);
	else if (text3)
		sqlite3_bind_text(st, 3, text3, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 3);
	int changes = 0;
	e = exec_changes(db, st, &changes);
	return e ? e : changes ? LT_OK : LT_ENOTFOUND;
}

enum lt_err lt_ident_user_set_password(sqlite3 *db, const char *id, const char *pw_hash,
				       int64_t now_ms)
{
	return user_update(db, "password_hash = ?3", id, now_ms, pw_hash, 0, false);
}

enum lt_err lt_ident_user_set_disabled(sqlite3 *db, const char *id, bool disabled, int64_t now_ms)
{
	return user_update(db, "disabled = ?3", id, now_ms, NULL, disabled ? 1 : 0, true);
}

enum lt_err lt_ident_user_set_tier(sqlite3 *db, const char *id, const char *tier, int64_t now_ms)
{
	return user_update(db, "tier = ?3", id, now_ms, tier && *tier ? tier : NULL, 0, false);
}

enum lt_err lt_ident_user_set_roles(sqlite3 *db, const char *id, unsigned roles, int64_t now_ms)
{
	enum lt_err e = user_update(db, "updated_at = updated_at", id, now_ms, NULL, 0, false);
	return e ? e : write_roles(db, id, roles);
}

enum lt_err lt_ident_user_count(sqlite3 *db, int64_t *out)
{
	sqlite3_stmt *st;
	enum lt_err e = prep(db, "SELECT count(*) FROM users", &st, 0, NULL);
	if (e)
		return e;
	if (sqlite3_step(st) == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	else
		e = LT_EIO;
	sqlite3_finalize(st);
	return e;
}

static bool user_list_row(sqlite3_stmt *st, const struct rows *cb)
{
	struct lt_user u;
	read_user(st, &u, NULL);
	return ((bool (*)(void *arg, const struct lt_user *u))cb->fn)(cb->arg, &u);
}

enum lt_err lt_ident_user_list(sqlite3 *db, int64_t offset, int64_t limit,
			       bool (*fn)(void *arg, const struct lt_user *u), void *arg)
{
	sqlite3_stmt *st;
	enum lt_err e = prep(db,
			     "SELECT " USER_COLS " FROM users u ORDER BY u.created_at, u.id "
			     "LIMIT ?2 OFFSET ?1",
			     &st, 0, NULL);
	if (e)
		return e;
	sqlite3_bind_int64(st, 1, offset);
	sqlite3_bind_int64(st, 2, limit);
	return each_row(st, user_list_row, &(struct rows){(void (*)(void))fn, arg});
}

/* ---- API keys ---- */

static void bind_opt_i64(sqlite3_stmt *st, int i, int64_t v)
{
	if (v)
		sqlite3_bind_int64(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

enum lt_err lt_ident_key_insert(sqlite3 *db, const struct lt_api_key_row *k)
{
	sqlite3_stmt *st;
	const char *a[] = {k->id, k->public_id, k->user_id, k->name[0] ? k->name : NULL};
	enum lt_err e =
		prep(db,
		     "INSERT INTO api_keys (id, public_id, user_id, name, digest, created_at, "
		     "expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
		     &st, 4, a);
	if (e)
		return e;
	sqlite3_bind_blob(st, 5, k->digest, sizeof k->digest, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, k->created_ms);
	bind_opt_i64(st, 7, k->expires_ms);
	return exec_changes(db, st, NULL);
}

#define KEY_COLS                                                                                   \
	"id, public_id, user_id, coalesce(name, ''), digest, created_at, expires_at, "             \
	"last_used_at, "                                                                           \
	"revoked_at"

static void read_key(sqlite3_stmt *st, struct lt_api_key_row *k)
{
	copy_col(st, 0, k->id, sizeof k->id);
	copy_col(st, 1, k->public_id, sizeof k->public_id);
	copy_col(st, 2, k->user_id, sizeof k->user_id);
	copy_col(st, 3, k->name, sizeof k->name);
	memset(k->digest, 0, sizeof k->digest);
	if (sqlite3_column_bytes(st, 4) == (int)sizeof k->digest)
		memcpy(k->digest, sqlite3_column_blob(st, 4), sizeof k->digest);
	k->created_ms = col_i64(st, 5);
	k->expires_ms = col_i64(st, 6);
	k->last_used_ms = col_i64(st, 7);
	k->revoked_ms = col_i64(st, 8);
}

enum lt_err lt_ident_key_by_public(sqlite3 *db, const char *public_id, struct lt_api_key_row *out)
{
	sqlite3_stmt *st;
	const char *a[] = {public_id};
	enum lt_err e =
		prep(db, "SELECT " KEY_COLS " FROM api_keys WHERE public_id = ?1", &st, 1, a);
	if (e)
		return e;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		read_key(st, out);
	else
		e = rc == SQLITE_DONE ? LT_ENOTFOUND : rc_err(rc);
	sqlite3_finalize(st);
	return e;
}

static bool key_list_row(sqlite3_stmt *st, const struct rows *cb)
{
	struct lt_api_key_row k;
	read_key(st, &k);
	return ((bool (*)(void *arg, const struct lt_api_key_row *k))cb->fn)(cb->arg, &k);
}

enum lt_err lt_ident_key_list(sqlite3 *db, const char *user_id,
			      bool (*fn)(void *arg, const struct lt_api_key_row *k), void *arg)
{
	sqlite3_stmt *st;
	const char *a[] = {user_id};
	enum lt_err e = prep(db,
			     "SELECT " KEY_COLS " FROM api_keys WHERE user_id = ?1 AND revoked_at "
			     "IS NULL ORDER BY created_at, id",
			     &st, 1, a);
	if (e)
		return e;
	return each_row(st, key_list_row, &(struct rows){(void (*)(void))fn, arg});
}

enum lt_err lt_ident_key_revoke(sqlite3 *db, const char *user_id, const char *id, int64_t now_ms)
{
	sqlite3_stmt *st;
	const char *a[] = {id, user_id};
	enum lt_err e =
		prep(db,
		     "UPDATE api_keys SET revoked_at = ?3 WHERE id = ?1 AND user_id = ?2 AND "
		     "revoked_at IS NULL",
		     &st, 2, a);
	if (e)
		return e;
	sqlite3_bind_int64(st, 3, now_ms);
	int changes = 0;
	e = exec_changes(db, st, &changes);
	return e ? e : changes ? LT_OK : LT_ENOTFOUND;
}

enum lt_err lt_ident_key_touch(sqlite3 *db, const char *id, int64_t now_ms)
{
	sqlite3_stmt *st;
	const char *a[] = {id};
	enum lt_err e = prep(db, "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1", &st, 1, a);
	if (e)
		return e;
	sqlite3_bind_int64(st, 2, now_ms);
	return exec_changes(db, st, NULL);
}

/* ---- orgs and members ---- */

enum lt_err lt_ident_org_insert(sqlite3 *db, const struct lt_org *o, enum lt_conflict *conflict)
{
	sqlite3_stmt *st;
	*conflict = LT_CONFLICT_NONE;
	const char *a[] = {o->id, o->name};
	enum lt_err e =
		prep(db, "INSERT INTO orgs (id, name, created_at) VALUES (?1, ?2, ?3)", &st, 2, a);
	if (e)
		return e;
	sqlite3_bind_int64(st, 3, o->created_ms);
	e = exec_changes(db, st, NULL);
	if (e == LT_EEXIST)
		*conflict = LT_CONFLICT_NAME;
	return e;
}

enum lt_err lt_ident_org_by_id(sqlite3 *db, const char *id, struct lt_org *out)
{
	sqlite3_stmt *st;
	const char *a[] = {id};
	enum lt_err e = prep(db, "SELECT id, name, created_at FROM orgs WHERE id = ?1", &st, 1, a);
	if (e)
		return e;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		copy_col(st, 0, out->id, sizeof out->id);
		copy_col(st, 1, out->name, sizeof out->name);
		out->created_ms = col_i64(st, 2);
	} else {
		e = rc == SQLITE_DONE ? LT_ENOTFOUND : rc_err(rc);
	}
	sqlite3_finalize(st);
	return e;
}

static bool org_list_row(sqlite3_stmt *st, const struct rows *cb)
{
	struct lt_org o;
	copy_col(st, 0, o.id, sizeof o.id);
	copy_col(st, 1, o.name, sizeof o.name);
	o.created_ms = col_i64(st, 2);
	return ((bool (*)(void *arg, const struct lt_org *o))cb->fn)(cb->arg, &o);
}

enum lt_err lt_ident_org_list(sqlite3 *db, bool (*fn)(void *arg, const struct lt_org *o), void *arg)
{
	sqlite3_stmt *st;
	enum lt_err e = prep(db, "SELECT id, name, created_at FROM orgs ORDER BY created_at, id",
			     &st, 0, NULL);
	if (e)
		return e;
	return each_row(st, org_list_row, &(struct rows){(void (*)(void))fn, arg});
}

enum lt_err lt_ident_member_put(sqlite3 *db, const struct lt_membership *m)
{
	const char *role = lt_role_name(m->role);
	if (m->role != LT_ROLE_ORG_ADMIN && m->role != LT_ROLE_USER)
		return LT_EINVAL;
	sqlite3_stmt *st;
	const char *a[] = {m->org_id, m->user_id, role};
	enum lt_err e =
		prep(db,
		     "INSERT INTO org_members (org_id, user_id, role, created_at) "
		     "SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM orgs WHERE id = ?1) "
		     "AND EXISTS (SELECT 1 FROM users WHERE id = ?2) "
		     "ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role",
		     &st, 3, a);
	if (e)
		return e;
	sqlite3_bind_int64(st, 4, m->created_ms);
	int changes = 0;
	e = exec_changes(db, st, &changes);
	return e ? e : changes ? LT_OK : LT_ENOTFOUND;
}

enum lt_err lt_ident_member_remove(sqlite3 *db, const char *org_id, const char *user_id)
{
	sqlite3_stmt *st;
	const char *a[] = {org_id, user_id};
	enum lt_err e =
		prep(db, "DELETE FROM org_members WHERE org_id = ?1 AND user_id = ?2", &st, 2, a);
	if (e)
		return e;
	int changes = 0;
	e = exec_changes(db, st, &changes);
	return e ? e : changes ? LT_OK : LT_ENOTFOUND;
}

static bool member_list_row(sqlite3_stmt *st, const struct rows *cb)
{
	struct lt_membership m;
	char role[16];
	copy_col(st, 0, m.org_id, sizeof m.org_id);
	copy_col(st, 1, m.user_id, sizeof m.user_id);
	copy_col(st, 2, role, sizeof role);
	m.role = lt_role_parse(role);
	m.created_ms = col_i64(st, 3);
	return ((bool (*)(void *arg, const struct lt_membership *m))cb->fn)(cb->arg, &m);
}

enum lt_err lt_ident_member_list(sqlite3 *db, const char *org_id, const char *user_id,
				 bool (*fn)(void *arg, const struct lt_membership *m), void *arg)
{
	sqlite3_stmt *st;
	const char *a[] = {org_id ? org_id : user_id};
	enum lt_err e = prep(db,
			     org_id ? "SELECT org_id, user_id, role, created_at FROM org_members "
				      "WHERE org_id = ?1 ORDER BY created_at, user_id"
				    : "SELECT org_id, user_id, role, created_at FROM org_members "
				      "WHERE user_id = ?1 ORDER BY created_at, org_id",
			     &st, 1, a);
	if (e)
		return e;
	return each_row(st, member_list_row, &(struct rows){(void (*)(void))fn, arg});
}

static void read_member(sqlite3_stmt *st, struct lt_membership *m)
{
	char role[16];
	copy_col(st, 0, m->org_id, sizeof m->org_id);
	copy_col(st, 1, m->user_id, sizeof m->user_id);
	copy_col(st, 2, role, sizeof role);
	m->role = lt_role_parse(role);
	m->created_ms = col_i64(st, 3);
}

enum lt_err lt_ident_member_get(sqlite3 *db, const char *org_id, const char *user_id,
				struct lt_membership *out)
{
	sqlite3_stmt *st;
	const char *a[] = {org_id, user_id};
	enum lt_err e = prep(db,
			     "SELECT org_id, user_id, role, created_at FROM org_members "
			     "WHERE org_id = ?1 AND user_id = ?2",
			     &st, 2, a);
	if (e)
		return e;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		read_member(st, out);
	else
		e = rc == SQLITE_DONE ? LT_ENOTFOUND : rc_err(rc);
	sqlite3_finalize(st);
	return e;
}

static bool member_list_named_row(sqlite3_stmt *st, const struct rows *cb)
{
	struct lt_membership m;
	char name[LT_USERNAME_MAX + 1];
	read_member(st, &m);
	copy_col(st, 4, name, sizeof name);
	return ((bool (*)(void *arg, const struct lt_membership *m, const char *username))cb->fn)(
		cb->arg, &m, name);
}

enum lt_err lt_ident_member_list_named(sqlite3 *db, const char *org_id,
				       bool (*fn)(void *arg, const struct lt_membership *m,
						  const char *username),
				       void *arg)
{
	sqlite3_stmt *st;
	const char *a[] = {org_id};
	enum lt_err e = prep(db,
			     "SELECT m.org_id, m.user_id, m.role, m.created_at, u.username "
			     "FROM org_members m JOIN users u ON u.id = m.user_id "
			     "WHERE m.org_id = ?1 ORDER BY m.created_at, m.user_id",
			     &st, 1, a);
	if (e)
		return e;
	return each_row(st, member_list_named_row, &(struct rows){(void (*)(void))fn, arg});
}

static bool tier_list_row(sqlite3_stmt *st, const struct rows *cb)
{
	char t[LT_TIER_MAX + 1];
	copy_col(st, 0, t, sizeof t);
	return ((bool (*)(void *arg, const char *tier))cb->fn)(cb->arg, t);
}

enum lt_err lt_ident_tier_list(sqlite3 *db, bool (*fn)(void *arg, const char *tier), void *arg)
{
	sqlite3_stmt *st;
	enum lt_err e = prep(db,
			     "SELECT DISTINCT tier FROM users WHERE tier IS NOT NULL "
			     "ORDER BY tier",
			     &st, 0, NULL);
	if (e)
		return e;
	return each_row(st, tier_list_row, &(struct rows){(void (*)(void))fn, arg});
}

/* ---- validation ---- */

bool lt_ident_valid_username(const char *s)
{
	size_t n = strlen(s);
	if (n < 3 || n > LT_USERNAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

bool lt_ident_valid_email(const char *s)
{
	size_t n = strlen(s);
	const char *at = strchr(s, '@');
	if (n < 3 || n > LT_EMAIL_MAX || !at || at == s || strchr(at + 1, '@'))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7F)
			return false;
	const char *dot = strrchr(at + 1, '.');
	return dot && dot > at + 1 && dot[1] != '\0';
}

bool lt_ident_valid_tier(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > LT_TIER_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] >= 'A' && s[i] <= 'Z') && !(s[i] >= '0' && s[i] <= '9') && s[i] != '_')
			return false;
	return true;
}

/* ---- audit ---- */

/* The row and its "audit" event (events/outbox.h), in the caller's
 * transaction: key = target (empty when longer than an event key may be),
 * type = action, payload {id, at, actor, action, target, detail} with the
 * detail object itself (a detail that is not a JSON object goes as a
 * string, so the payload is always JSON). */
enum lt_err lt_ident_audit(sqlite3 *db, int64_t at_ms, const char *actor, const char *action,
			   const char *target, const char *detail_json)
{
	sqlite3_stmt *st;
	const char *a[] = {actor, action, target, detail_json};
	enum lt_err e = prep(db,
			     "INSERT INTO audit (at, actor, action, target, detail) "
			     "VALUES (?5, ?1, ?2, ?3, ?4)",
			     &st, 4, a);
	if (e)
		return e;
	sqlite3_bind_int64(st, 5, at_ms);
	if ((e = exec_changes(db, st, NULL)))
		return e;
	int64_t id = sqlite3_last_insert_rowid(db);
	char stack[1024], iso[LT_ISO_LEN], type[LT_EV_TYPE_MAX + 1];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, LT_EV_PAYLOAD_MAX);
	lt_time_iso(at_ms * LT_NS_PER_MS, iso);
	lt_buf_printf(&b, "{\"id\":%lld,\"at\":\"%s\"", (long long)id, iso);
	const char *const field[] = {"actor", "action", "target"};
	for (size_t i = 0; i < 3; i++) {
		lt_buf_printf(&b, ",\"%s\":", field[i]);
		if (a[i])
			lt_buf_put_json_str(&b, a[i], strlen(a[i]));
		else
			lt_buf_puts(&b, "null");
	}
	lt_buf_puts(&b, ",\"detail\":");
	cJSON *d = NULL;
	size_t n = detail_json ? strlen(detail_json) : 0, pos;
	if (!n)
		lt_buf_puts(&b, "null");
	else if (lt_json_parse(detail_json, n, &d, &pos) == LT_OK && cJSON_IsObject(d))
		lt_buf_append(&b, detail_json, n);
	else
		lt_buf_put_json_str(&b, detail_json, n);
	cJSON_Delete(d);
	lt_buf_putc(&b, '}');
	snprintf(type, sizeof type, "%s", action ? action : "");
	const char *key = target && strlen(target) <= LT_EV_KEY_MAX ? target : "";
	e = b.err ? b.err : lt_outbox_add(db, LT_TOPIC_AUDIT, key, type, b.data, at_ms, NULL);
	lt_buf_release(&b);
	return e;
}

static bool audit_list_row(sqlite3_stmt *st, const struct rows *cb)
{
	struct lt_audit_row r;
	r.id = sqlite3_column_int64(st, 0);
	r.at_ms = col_i64(st, 1);
	copy_col(st, 2, r.actor, sizeof r.actor);
	copy_col(st, 3, r.action, sizeof r.action);
	copy_col(st, 4, r.target, sizeof r.target);
	copy_col(st, 5, r.detail, sizeof r.detail);
	return ((bool (*)(void *arg, const struct lt_audit_row *r))cb->fn)(cb->arg, &r);
}

enum lt_err lt_ident_audit_list(sqlite3 *db, int64_t since_ms, int64_t limit,
				bool (*fn)(void *arg, const struct lt_audit_row *r), void *arg)
{
	sqlite3_stmt *st;
	enum lt_err e = prep(db,
			     "SELECT id, at, coalesce(actor, ''), action, coalesce(target, ''), "
			     "coalesce(detail, '') FROM audit WHERE at >= ?1 "
			     "ORDER BY at DESC, id DESC LIMIT ?2",
			     &st, 0, NULL);
	if (e)
		return e;
	sqlite3_bind_int64(st, 1, since_ms);
	sqlite3_bind_int64(st, 2, limit);
	return each_row(st, audit_list_row, &(struct rows){(void (*)(void))fn, arg});
}

/* ---- signing keys ---- */

enum lt_err lt_ident_signing_key_insert(sqlite3 *db, const char *kid, const char *jwk_json,
					const char *file, int64_t now_ms)
{
	sqlite3_stmt *st;
	const char *a[] = {kid, jwk_json, file};
	enum lt_err e = prep(db,
			     "INSERT INTO signing_keys (kid, alg, public_jwk, file, created_at) "
			     "VALUES (?1, 'RS256', ?2, ?3, ?4)",
			     &st, 3, a);
	if (e)
		return e;
	sqlite3_bind_int64(st, 4, now_ms);
	return exec_changes(db, st, NULL);
}

enum lt_err lt_ident_signing_key_retire(sqlite3 *db, int64_t now_ms)
{
	sqlite3_stmt *st;
	enum lt_err e = prep(db, "UPDATE signing_keys SET retired_at = ?1 WHERE retired_at IS NULL",
			     &st, 0, NULL);
	if (e)
		return e;
	sqlite3_bind_int64(st, 1, now_ms);
	return exec_changes(db, st, NULL);
}

enum lt_err lt_ident_signing_key_fingerprint(sqlite3 *db, int64_t out[3])
{
	sqlite3_stmt *st;
	enum lt_err e = prep(db,
			     "SELECT count(*), coalesce(max(created_at), 0), "
			     "coalesce(max(retired_at), 0) FROM signing_keys",
			     &st, 0, NULL);
	if (e)
		return e;
	if (sqlite3_step(st) == SQLITE_ROW) {
		for (int i = 0; i < 3; i++)
			out[i] = sqlite3_column_int64(st, i);
	} else {
		e = LT_EIO;
	}
	sqlite3_finalize(st);
	return e;
}

static bool signing_key_list_row(sqlite3_stmt *st, const struct rows *cb)
{
	struct lt_signing_key_row k;
	copy_col(st, 0, k.kid, sizeof k.kid);
	copy_col(st, 1, k.file, sizeof k.file);
	k.created_ms = col_i64(st, 2);
	k.retired_ms = col_i64(st, 3);
	return ((bool (*)(void *arg, const struct lt_signing_key_row *k))cb->fn)(cb->arg, &k);
}

enum lt_err lt_ident_signing_key_list(sqlite3 *db, int64_t retired_since_ms,
				      bool (*fn)(void *arg, const struct lt_signing_key_row *k),
				      void *arg)
{
	sqlite3_stmt *st;
	enum lt_err e = prep(db,
			     "SELECT kid, file, created_at, retired_at FROM signing_keys "
			     "WHERE retired_at IS NULL OR retired_at > ?1 "
			     "ORDER BY retired_at IS NOT NULL, created_at DESC",
			     &st, 0, NULL);
	if (e)
		return e;
	sqlite3_bind_int64(st, 1, retired_since_ms);
	return each_row(st, signing_key_list_row, &(struct rows){(void (*)(void))fn, arg});
}
