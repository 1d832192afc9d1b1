/*
 * admin_identity.c — the identity part of the admin API (API.md §7): users
 * (create, list, get, disable, enable, roles, tier), orgs (create, list),
 * org members (add, list, remove), tiers (list) and the audit trail (list).
 *
 * Parsing, validation, authorization beyond the route table and rendering
 * only; SQL is auth/identity_store.c.  Rules every handler here keeps:
 *   - a write runs in one writer closure (lt_writer_run) that changes the
 *     rows, records an audit row (actor = the principal's user id) and reads
 *     back what the response shows, so the three commit or roll back together;
 *   - every change to a user's roles, disabled flag or tier, or to an org's
 *     members, calls lt_auth_changed() after the commit, so the credential
 *     caches drop the old principal on the next request (in any process);
 *   - routes marked ADMIN are refused to others by the listener; the member
 *     routes are USER routes and let in an ADMIN or an ORG_ADMIN member of
 *     that org (checked here: 403 "not allowed for this org").
 * Ownership: cJSON trees built here are freed here; nothing outlives the
 * request.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "auth/auth.h"
#include "auth/identity_store.h"
#include "auth/password.h"
#include "http/request.h"
#include "server.h"
#include "store/dbpool.h"
#include "store/writer.h"
#include "util/json.h"
#include "util/timefmt.h"
#include "util/uuid.h"

#define HASH_WAIT_NS (5 * LT_NS_PER_S)
#define READER_WAIT_MS 2000

#define USERS_LIMIT_DEFAULT 50
#define USERS_LIMIT_MAX 500
#define AUDIT_LIMIT_DEFAULT 100
#define AUDIT_LIMIT_MAX 1000

#define MSG_REQUIRED "username, email, and password are required"
#define MSG_USERNAME "username must be 3-50 characters of letters, digits, '.', '_' or '-'"
#define MSG_EMAIL "email must be a valid address of at most 100 characters"
#define MSG_PASSWORD "password must be 8-256 characters (at most 256 bytes)"
#define MSG_ROLES "roles must be a list of ADMIN, ORG_ADMIN, USER"
#define MSG_TIER "tier must be one of the configured tiers"
#define MSG_ORG_FORBIDDEN "not allowed for this org"

/* ---- small helpers ---- */

static int64_t now_ms(struct lt_req *req)
{
	return lt_clock_now_ns(&req->srv->clock) / LT_NS_PER_MS;
}

static void add_time(cJSON *o, const char *name, int64_t ms)
{
	char ts[LT_ISO_LEN];
	if (!ms) {
		cJSON_AddNullToObject(o, name);
		return;
	}
	lt_time_iso(ms * LT_NS_PER_MS, ts);
	cJSON_AddStringToObject(o, name, ts);
}

static cJSON *roles_json(unsigned roles)
{
	static const unsigned order[] = {LT_ROLE_ADMIN, LT_ROLE_ORG_ADMIN, LT_ROLE_USER};
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; arr && i < 3; i++)
		if (roles & order[i])
			cJSON_AddItemToArray(arr, cJSON_CreateString(lt_role_name(order[i])));
	return arr;
}

static cJSON *user_json(const struct lt_user *u)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "userId", u->id);
	cJSON_AddStringToObject(o, "username", u->username);
	cJSON_AddStringToObject(o, "email", u->email);
	cJSON_AddItemToObject(o, "roles", roles_json(u->roles));
	if (u->tier[0])
		cJSON_AddStringToObject(o, "tier", u->tier);
	else
		cJSON_AddNullToObject(o, "tier");
	cJSON_AddBoolToObject(o, "disabled", u->disabled);
	add_time(o, "createdAt", u->created_ms);
	return o;
}

static cJSON *member_json(const struct lt_membership *m, const char *username)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "orgId", m->org_id);
	cJSON_AddStringToObject(o, "userId", m->user_id);
	if (username)
		cJSON_AddStringToObject(o, "username", username);
	cJSON_AddStringToObject(o, "role", lt_role_name(m->role));
	add_time(o, "createdAt", m->created_ms);
	return o;
}

/* Append o to arr; a failed add does not adopt o, so it is freed here. */
static bool push(cJSON *arr, cJSON *o)
{
	if (o && cJSON_AddItemToArray(arr, o))
		return true;
	cJSON_Delete(o);
	return false;
}

/* Reply with o (which may be NULL after an allocation failure) and free it. */
static void reply_obj(struct lt_req *req, int status, cJSON *o)
{
	if (!o) {
		lt_reply_error(req, 503, "out of memory");
		return;
	}
	lt_reply_cjson(req, status, o, NULL);
	cJSON_Delete(o);
}

/* Compact JSON text of o for an audit detail; frees o.  NULL on failure
 * (the audit row then has no detail). */
static char *detail_text(cJSON *o)
{
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	return s;
}

static bool reader(struct lt_req *req, struct sqlite3 **db)
{
	if (lt_dbpool_acquire(&req->srv->auth.readers, READER_WAIT_MS, db) == LT_OK)
		return true;
	lt_reply_error_h(req, 503, "storage busy; retry shortly", "Retry-After: 1\r\n");
	return false;
}

static void reader_done(struct lt_req *req, struct sqlite3 *db)
{
	lt_dbpool_release(&req->srv->auth.readers, db);
}

/* A canonical UUID from s into out (lower-cased); false if s is not one. */
static bool parse_id(const char *s, size_t n, char out[LT_ID_LEN + 1])
{
	if (!s || n != LT_ID_LEN || !lt_uuid_valid(s, n))
		return false;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] - 'A' + 'a' : s[i]);
	out[n] = '\0';
	return true;
}

/* Path parameter `name` as an id; answers 400 "invalid <name>" if it is not. */
static bool path_id(struct lt_req *req, const char *name, char out[LT_ID_LEN + 1])
{
	const char *v = NULL;
	size_t n = 0;
	if (lt_req_param(req, name, &v, &n) == LT_OK && parse_id(v, n, out))
		return true;
	char msg[64];
	snprintf(msg, sizeof msg, "invalid %s", name);
	lt_reply_error(req, 400, msg);
	return false;
}

/* Integer query parameter in [min, max], def when absent or empty; answers
 * 400 with msg otherwise. */
static bool query_int(struct lt_req *req, const char *name, int64_t def, int64_t min, int64_t max,
		      const char *msg, int64_t *out)
{
	char buf[32];
	enum lt_err e = lt_req_query(req, name, buf, sizeof buf);
	*out = def;
	if (e == LT_ENOTFOUND || (e == LT_OK && !buf[0]))
		return true;
	if (e == LT_OK) {
		char *end = NULL;
		errno = 0;
		long long v = strtoll(buf, &end, 10);
		if (!errno && end != buf && !*end && buf[0] != '+' && buf[0] != ' ' && v >= min &&
		    v <= max) {
			*out = v;
			return true;
		}
	}
	lt_reply_error(req, 400, msg);
	return false;
}

/* roles: an array of role names -> bits (USER always set); false if it is
 * not an array of known names. */
static bool parse_roles(const cJSON *arr, unsigned *out)
{
	unsigned roles = LT_ROLE_USER;
	const cJSON *it;
	if (!cJSON_IsArray(arr))
		return false;
	cJSON_ArrayForEach(it, arr)
	{
		unsigned r = cJSON_IsString(it) ? lt_role_parse(it->valuestring) : 0;
		if (!r)
			return false;
		roles |= r;
	}
	*out = roles;
	return true;
}

/* A 400 with the ValidationError envelope (API.md §0): "errors" lists every
 * invalid field, "message" is the first one's. */
struct field_errors {
	cJSON *list;
	const char *first;
};

static void field_error(struct field_errors *fe, const char *field, const char *msg)
{
	cJSON *e = cJSON_CreateObject();
	if (e) {
		cJSON_AddStringToObject(e, "field", field);
		cJSON_AddStringToObject(e, "message", msg);
		cJSON_AddItemToArray(fe->list, e);
	}
	if (!fe->first)
		fe->first = msg;
}

static void reply_field_errors(struct lt_req *req, struct field_errors *fe)
{
	cJSON *o = cJSON_CreateObject();
	char ts[LT_ISO_LEN];
	if (!o) {
		cJSON_Delete(fe->list);
		lt_reply_error(req, 503, "out of memory");
		return;
	}
	lt_time_iso(lt_clock_now_ns(&req->srv->clock), ts);
	cJSON_AddStringToObject(o, "message", fe->first);
	cJSON_AddStringToObject(o, "timestamp", ts);
	cJSON_AddNumberToObject(o, "status", 400);
	cJSON_AddStringToObject(o, "path", req->path);
	cJSON_AddStringToObject(o, "correlationId", req->correlation_id);
	cJSON_AddItemToObject(o, "errors", fe->list);
	reply_obj(req, 400, o);
}

/* A required string field: NULL if absent, null, empty or not a string. */
static const char *str_field(const cJSON *body, const char *name)
{
	const char *v = NULL;
	return lt_json_get_str(body, name, &v) == LT_OK && *v ? v : NULL;
}

/* Password length in characters (the body is valid UTF-8). */
static size_t chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

/* ---- users: create ---- */

void lt_api_admin_user_create(struct lt_req *req)
{
	const char *username = str_field(req->json, "username");
	const char *email = str_field(req->json, "email");
	const char *password = str_field(req->json, "password");
	if (!username || !email || !password) {
		lt_reply_error(req, 400, MSG_REQUIRED);
		return;
	}
	struct field_errors fe = {cJSON_CreateArray(), NULL};
	if (!fe.list) {
		lt_reply_error(req, 503, "out of memory");
		return;
	}
	if (!lt_ident_valid_username(username))
		field_error(&fe, "username", MSG_USERNAME);
	if (!lt_ident_valid_email(email))
		field_error(&fe, "email", MSG_EMAIL);
	if (chars(password) < LT_PASSWORD_MIN || strlen(password) > LT_PASSWORD_MAX)
		field_error(&fe, "password", MSG_PASSWORD);
	unsigned roles = LT_ROLE_USER;
	const cJSON *jr = cJSON_GetObjectItemCaseSensitive(req->json, "roles");
	if (jr && !cJSON_IsNull(jr) && !parse_roles(jr, &roles))
		field_error(&fe, "roles", MSG_ROLES);
	const cJSON *jt = cJSON_GetObjectItemCaseSensitive(req->json, "tier");
	const char *tier = NULL;
	if (jt && !cJSON_IsNull(jt)) {
		if (cJSON_IsString(jt) &&
		    lt_tiers_find(&req->srv->auth.tiers, jt->valuestring) >= 0)
			tier = jt->valuestring;
		else
			field_error(&fe, "tier", MSG_TIER);
	}
	if (fe.first) {
		reply_field_errors(req, &fe);
		return;
	}
	cJSON_Delete(fe.list);

	struct lt_ident_new_user *n = calloc(1, sizeof *n);
	if (!n) {
		lt_reply_error(req, 503, "out of memory");
		return;
	}
	lt_uuid_v4(n->u.id);
	snprintf(n->u.username, sizeof n->u.username, "%s", username);
	snprintf(n->u.email, sizeof n->u.email, "%s", email);
	snprintf(n->u.tier, sizeof n->u.tier, "%s", tier ? tier : "");
	n->u.roles = roles;
	n->u.created_ms = n->u.updated_ms = now_ms(req);
	n->actor = req->principal.user_id;
	n->action = "user.created";
	cJSON *d = cJSON_CreateObject();
	if (d) {
		cJSON_AddStringToObject(d, "username", n->u.username);
		cJSON_AddItemToObject(d, "roles", roles_json(roles));
		if (tier)
			cJSON_AddStringToObject(d, "tier", tier);
	}
	char *detail = detail_text(d);
	n->detail_json = detail;
	if (!lt_api_hash_gated(req, password, n->hash))
		goto out;
	enum lt_err e = lt_writer_run(&req->srv->writer, lt_ident_user_create, n);
	if (e == LT_EEXIST) {
		lt_reply_error(req, 409,
			       n->conflict == LT_CONFLICT_EMAIL ? "email already exists"
								: "username already exists");
		goto out;
	}
	if (e) {
		lt_reply_error(req, lt_err_http_status(e), "could not create the user");
		goto out;
	}
	reply_obj(req, 201, user_json(&n->u));
out:
	sodium_memzero(n->hash, sizeof n->hash);
	cJSON_free(detail);
	free(n);
}

/* ---- users: list, get ---- */

static bool add_user(void *arg, const struct lt_user *u)
{
	cJSON *o = user_json(u);
	return push(arg, o);
}

void lt_api_admin_user_list(struct lt_req *req)
{
	int64_t offset, limit, total = 0;
	if (!query_int(req, "offset", 0, 0, INT32_MAX, "offset must be a non-negative integer",
		       &offset) ||
	    !query_int(req, "limit", USERS_LIMIT_DEFAULT, 1, USERS_LIMIT_MAX,
		       "limit must be an integer between 1 and 500", &limit))
		return;
	struct sqlite3 *db;
	if (!reader(req, &db))
		return;
	cJSON *items = cJSON_CreateArray();
	enum lt_err e = items ? lt_ident_user_count(db, &total) : LT_ENOMEM;
	if (!e)
		e = lt_ident_user_list(db, offset, limit, add_user, items);
	reader_done(req, db);
	if (e) {
		cJSON_Delete(items);
		lt_reply_error(req, 503, "storage error");
		return;
	}
	cJSON *o = cJSON_CreateObject();
	if (!o) {
		cJSON_Delete(items);
		lt_reply_error(req, 503, "out of memory");
		return;
	}
	cJSON_AddItemToObject(o, "items", items);
	cJSON_AddNumberToObject(o, "offset", (double)offset);
	cJSON_AddNumberToObject(o, "limit", (double)limit);
	cJSON_AddNumberToObject(o, "total", (double)total);
	reply_obj(req, 200, o);
}

void lt_api_admin_user_get(struct lt_req *req)
{
	char id[LT_ID_LEN + 1];
	struct sqlite3 *db;
	struct lt_user u;
	if (!path_id(req, "userId", id) || !reader(req, &db))
		return;
	enum lt_err e = lt_ident_user_by_id(db, id, &u);
	reader_done(req, db);
	if (e == LT_ENOTFOUND)
		lt_reply_error(req, 404, "user not found");
	else if (e)
		lt_reply_error(req, 503, "storage error");
	else
		reply_obj(req, 200, user_json(&u));
}

/* ---- users: disable, enable, roles, tier ---- */

enum user_change_kind { CHANGE_DISABLED, CHANGE_ROLES, CHANGE_TIER };

struct user_change {
	enum user_change_kind kind;
	const char *id, *actor, *action;
	bool disabled;
	unsigned roles;
	const char *tier; /* NULL clears */
	char *detail;
	int64_t now_ms;
	struct lt_user out; /* the user after the change */
};

static enum lt_err do_user_change(struct sqlite3 *db, void *arg)
{
	struct user_change *c = arg;
	enum lt_err e;
	switch (c->kind) {
	case CHANGE_DISABLED:
		e = lt_ident_user_set_disabled(db, c->id, c->disabled, c->now_ms);
		break;
	case CHANGE_ROLES: e = lt_ident_user_set_roles(db, c->id, c->roles, c->now_ms); break;
	default: e = lt_ident_user_set_tier(db, c->id, c->tier, c->now_ms); break;
	}
	if (!e)
		e = lt_ident_audit(db, c->now_ms, c->actor, c->action, c->id, c->detail);
	if (!e)
		e = lt_ident_user_by_id(db, c->id, &c->out);
	return e;
}

/* Run a change on user `id`, reply with the user, drop the caches. */
static void user_change(struct lt_req *req, struct user_change *c, cJSON *detail)
{
	c->actor = req->principal.user_id;
	c->now_ms = now_ms(req);
	c->detail = detail_text(detail);
	enum lt_err e = lt_writer_run(&req->srv->writer, do_user_change, c);
	cJSON_free(c->detail);
	if (e == LT_ENOTFOUND) {
		lt_reply_error(req, 404, "user not found");
		return;
	}
	if (e) {
		lt_reply_error(req, lt_err_http_status(e), "could not update the user");
		return;
	}
	lt_auth_changed(&req->srv->auth);
	reply_obj(req, 200, user_json(&c->out));
}

static void set_disabled(struct lt_req *req, bool disabled)
{
	char id[LT_ID_LEN + 1];
	if (!path_id(req, "userId", id))
		return;
	if (disabled && strcmp(id, req->principal.user_id) == 0) {
		lt_reply_error(req, 409, "cannot disable your own account");
		return;
	}
	struct user_change c = {.kind = CHANGE_DISABLED, .id = id, .disabled = disabled};
	c.action = disabled ? "user.disabled" : "user.enabled";
	user_change(req, &c, NULL);
}

void lt_api_admin_user_disable(struct lt_req *req)
{
	set_disabled(req, true);
}

void lt_api_admin_user_enable(struct lt_req *req)
{
	set_disabled(req, false);
}

void lt_api_admin_user_roles(struct lt_req *req)
{
	char id[LT_ID_LEN + 1];
	unsigned roles;
	if (!path_id(req, "userId", id))
		return;
	if (!parse_roles(cJSON_GetObjectItemCaseSensitive(req->json, "roles"), &roles)) {
		lt_reply_error(req, 400, MSG_ROLES);
		return;
	}
	if (!(roles & LT_ROLE_ADMIN) && strcmp(id, req->principal.user_id) == 0) {
		lt_reply_error(req, 409, "cannot remove your own ADMIN role");
		return;
	}
	struct user_change c = {.kind = CHANGE_ROLES, .id = id, .roles = roles};
	c.action = "user.roles";
	cJSON *d = cJSON_CreateObject();
	if (d)
		cJSON_AddItemToObject(d, "roles", roles_json(roles));
	user_change(req, &c, d);
}

void lt_api_admin_user_tier(struct lt_req *req)
{
	char id[LT_ID_LEN + 1];
	if (!path_id(req, "userId", id))
		return;
	const cJSON *t = cJSON_IsObject(req->json)
				 ? cJSON_GetObjectItemCaseSensitive(req->json, "tier")
				 : NULL;
	if (!t) {
		lt_reply_error(req, 400, "tier is required (a string or null)");
		return;
	}
	/* Only a configured tier may be set (a number or list is not one). */
	if (!cJSON_IsNull(t) &&
	    !(cJSON_IsString(t) && lt_tiers_find(&req->srv->auth.tiers, t->valuestring) >= 0)) {
		lt_reply_error(req, 400, "unknown tier");
		return;
	}
	struct user_change c = {.kind = CHANGE_TIER, .id = id};
	c.tier = cJSON_IsNull(t) ? NULL : t->valuestring;
	c.action = "user.tier";
	cJSON *d = cJSON_CreateObject();
	if (d) {
		if (c.tier)
			cJSON_AddStringToObject(d, "tier", c.tier);
		else
			cJSON_AddNullToObject(d, "tier");
	}
	user_change(req, &c, d);
}

/* ---- orgs ---- */

struct new_org {
	struct lt_org o;
	enum lt_conflict conflict;
	const char *actor;
	char *detail;
};

static enum lt_err do_create_org(struct sqlite3 *db, void *arg)
{
	struct new_org *n = arg;
	enum lt_err e = lt_ident_org_insert(db, &n->o, &n->conflict);
	if (!e)
		e = lt_ident_audit(db, n->o.created_ms, n->actor, "org.created", n->o.id,
				   n->detail);
	return e;
}

static cJSON *org_json(const struct lt_org *o)
{
	cJSON *j = cJSON_CreateObject();
	if (!j)
		return NULL;
	cJSON_AddStringToObject(j, "orgId", o->id);
	cJSON_AddStringToObject(j, "name", o->name);
	add_time(j, "createdAt", o->created_ms);
	return j;
}

/* An org name: 1-100 bytes, no control characters, not blank. */
static bool valid_org_name(const char *s)
{
	size_t n = strlen(s);
	bool blank = true;
	if (n < 1 || n > LT_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < ' ' || c == 0x7F)
			return false;
		blank = blank && c == ' ';
	}
	return !blank;
}

void lt_api_admin_org_create(struct lt_req *req)
{
	const char *name = NULL;
	enum lt_err e = lt_json_get_str(req->json, "name", &name);
	if (e == LT_ENOTFOUND || (e == LT_OK && !*name)) {
		lt_reply_error(req, 400, "name is required");
		return;
	}
	if (e || !valid_org_name(name)) {
		lt_reply_error(req, 400,
			       "name must be 1-100 characters without control characters");
		return;
	}
	struct new_org n = {.actor = req->principal.user_id};
	lt_uuid_v4(n.o.id);
	snprintf(n.o.name, sizeof n.o.name, "%s", name);
	n.o.created_ms = now_ms(req);
	cJSON *d = cJSON_CreateObject();
	if (d)
		cJSON_AddStringToObject(d, "name", n.o.name);
	n.detail = detail_text(d);
	e = lt_writer_run(&req->srv->writer, do_create_org, &n);
	cJSON_free(n.detail);
	if (e == LT_EEXIST)
		lt_reply_error(req, 409, "org already exists");
	else if (e)
		lt_reply_error(req, lt_err_http_status(e), "could not create the org");
	else
		reply_obj(req, 201, org_json(&n.o));
}

static bool add_org(void *arg, const struct lt_org *o)
{
	cJSON *j = org_json(o);
	return push(arg, j);
}

void lt_api_admin_org_list(struct lt_req *req)
{
	struct sqlite3 *db;
	if (!reader(req, &db))
		return;
	cJSON *arr = cJSON_CreateArray();
	enum lt_err e = arr ? lt_ident_org_list(db, add_org, arr) : LT_ENOMEM;
	reader_done(req, db);
	if (e) {
		cJSON_Delete(arr);
		lt_reply_error(req, 503, "storage error");
		return;
	}
	reply_obj(req, 200, arr);
}

/* ---- org members ---- */

/* The org of a member route: a valid id, and the caller is an ADMIN or an
 * ORG_ADMIN member of it.  For an ADMIN, a missing org is 404; for anyone
 * else it is 403 like any org they do not administer.  Answers and returns
 * false on refusal. */
static bool org_access(struct lt_req *req, char org[LT_ID_LEN + 1])
{
	struct sqlite3 *db;
	if (!path_id(req, "orgId", org) || !reader(req, &db))
		return false;
	enum lt_err e;
	bool ok;
	if (req->principal.roles & LT_ROLE_ADMIN) {
		struct lt_org o;
		e = lt_ident_org_by_id(db, org, &o);
		ok = e == LT_OK;
	} else {
		struct lt_membership m;
		e = lt_ident_member_get(db, org, req->principal.user_id, &m);
		ok = e == LT_OK && m.role == LT_ROLE_ORG_ADMIN;
	}
	reader_done(req, db);
	if (ok)
		return true;
	if (e && e != LT_ENOTFOUND)
		lt_reply_error(req, 503, "storage error");
	else if (req->principal.roles & LT_ROLE_ADMIN)
		lt_reply_error(req, 404, "org not found");
	else
		lt_reply_error(req, 403, MSG_ORG_FORBIDDEN);
	return false;
}

struct member_op {
	struct lt_membership m; /* in: org, user, role; out: the stored row */
	const char *actor;
	char *detail;
	int64_t now_ms;
	bool org_missing, user_missing;
};

static enum lt_err do_member_put(struct sqlite3 *db, void *arg)
{
	struct member_op *op = arg;
	struct lt_org o;
	struct lt_user u;
	enum lt_err e = lt_ident_org_by_id(db, op->m.org_id, &o);
	op->org_missing = e == LT_ENOTFOUND;
	if (!e) {
		e = lt_ident_user_by_id(db, op->m.user_id, &u);
		op->user_missing = e == LT_ENOTFOUND;
	}
	if (!e)
		e = lt_ident_member_put(db, &op->m);
	if (!e)
		e = lt_ident_audit(db, op->now_ms, op->actor, "org.member.added", op->m.org_id,
				   op->detail);
	if (!e)
		e = lt_ident_member_get(db, op->m.org_id, op->m.user_id, &op->m);
	return e;
}

void lt_api_admin_member_add(struct lt_req *req)
{
	struct member_op op = {.actor = req->principal.user_id};
	if (!org_access(req, op.m.org_id))
		return;
	const char *uid = NULL, *role = NULL;
	enum lt_err e = lt_json_get_str(req->json, "userId", &uid);
	if (e == LT_ENOTFOUND || (e == LT_OK && !*uid)) {
		lt_reply_error(req, 400, "userId is required");
		return;
	}
	if (e || !parse_id(uid, strlen(uid), op.m.user_id)) {
		lt_reply_error(req, 400, "invalid userId");
		return;
	}
	if (lt_json_get_str(req->json, "role", &role) != LT_OK ||
	    (op.m.role = lt_role_parse(role)) == 0 || op.m.role == LT_ROLE_ADMIN) {
		lt_reply_error(req, 400, "role must be ORG_ADMIN or USER");
		return;
	}
	op.now_ms = op.m.created_ms = now_ms(req);
	cJSON *d = cJSON_CreateObject();
	if (d) {
		cJSON_AddStringToObject(d, "userId", op.m.user_id);
		cJSON_AddStringToObject(d, "role", role);
	}
	op.detail = detail_text(d);
	e = lt_writer_run(&req->srv->writer, do_member_put, &op);
	cJSON_free(op.detail);
	if (op.org_missing)
		lt_reply_error(req, 404, "org not found");
	else if (op.user_missing)
		lt_reply_error(req, 404, "user not found");
	else if (e)
		lt_reply_error(req, lt_err_http_status(e), "could not add the member");
	else {
		lt_auth_changed(&req->srv->auth);
		reply_obj(req, 201, member_json(&op.m, NULL));
	}
}

static bool add_member(void *arg, const struct lt_membership *m, const char *username)
{
	cJSON *o = member_json(m, username);
	return push(arg, o);
}

void lt_api_admin_member_list(struct lt_req *req)
{
	char org[LT_ID_LEN + 1];
	struct sqlite3 *db;
	if (!org_access(req, org) || !reader(req, &db))
		return;
	cJSON *arr = cJSON_CreateArray();
	enum lt_err e = arr ? lt_ident_member_list_named(db, org, add_member, arr) : LT_ENOMEM;
	reader_done(req, db);
	if (e) {
		cJSON_Delete(arr);
		lt_reply_error(req, 503, "storage error");
		return;
	}
	reply_obj(req, 200, arr);
}

static enum lt_err do_member_remove(struct sqlite3 *db, void *arg)
{
	struct member_op *op = arg;
	enum lt_err e = lt_ident_member_remove(db, op->m.org_id, op->m.user_id);
	if (!e)
		e = lt_ident_audit(db, op->now_ms, op->actor, "org.member.removed", op->m.org_id,
				   op->detail);
	return e;
}

void lt_api_admin_member_remove(struct lt_req *req)
{
	struct member_op op = {.actor = req->principal.user_id};
	if (!org_access(req, op.m.org_id) || !path_id(req, "userId", op.m.user_id))
		return;
	op.now_ms = now_ms(req);
	cJSON *d = cJSON_CreateObject();
	if (d)
		cJSON_AddStringToObject(d, "userId", op.m.user_id);
	op.detail = detail_text(d);
	enum lt_err e = lt_writer_run(&req->srv->writer, do_member_remove, &op);
	cJSON_free(op.detail);
	if (e == LT_ENOTFOUND) {
		lt_reply_error(req, 404, "member not found");
		return;
	}
	if (e) {
		lt_reply_error(req, lt_err_http_status(e), "could not remove the member");
		return;
	}
	lt_auth_changed(&req->srv->auth);
	lt_reply(req, 204, NULL, NULL, NULL, 0);
}

/* ---- tiers ---- */

/* The configured tiers ([auth] tiers), highest priority first, then by
 * name.  A tier set on a user is always one of them when it was set; one
 * dropped from the configuration since is not listed. */
void lt_api_admin_tier_list(struct lt_req *req)
{
	struct lt_tiers t = req->srv->auth.tiers;
	lt_tiers_sort(&t);
	cJSON *arr = cJSON_CreateArray();
	for (size_t i = 0; arr && i < t.n; i++) {
		cJSON *o = cJSON_CreateObject();
		if (o) {
			cJSON_AddStringToObject(o, "name", t.t[i].name);
			cJSON_AddNumberToObject(o, "priority", t.t[i].priority);
		}
		if (!push(arr, o)) {
			cJSON_Delete(arr);
			arr = NULL;
		}
	}
	reply_obj(req, 200, arr);
}

/* ---- audit ---- */

static bool add_audit(void *arg, const struct lt_audit_row *r)
{
	cJSON *o = cJSON_CreateObject(), *detail = NULL;
	size_t pos;
	if (!o)
		return false;
	cJSON_AddNumberToObject(o, "id", (double)r->id);
	add_time(o, "at", r->at_ms);
	cJSON_AddStringToObject(o, "actor", r->actor);
	cJSON_AddStringToObject(o, "action", r->action);
	if (r->target[0])
		cJSON_AddStringToObject(o, "target", r->target);
	else
		cJSON_AddNullToObject(o, "target");
	if (r->detail[0] && lt_json_parse(r->detail, strlen(r->detail), &detail, &pos) == LT_OK &&
	    cJSON_IsObject(detail))
		cJSON_AddItemToObject(o, "detail", detail);
	else {
		cJSON_Delete(detail);
		cJSON_AddNullToObject(o, "detail");
	}
	return push(arg, o);
}

void lt_api_admin_audit_list(struct lt_req *req)
{
	char since[64];
	int64_t since_ms = 0, limit;
	enum lt_err e = lt_req_query(req, "since", since, sizeof since);
	if (e == LT_OK && since[0]) {
		int64_t ns;
		if (lt_time_parse_iso(since, strlen(since), &ns)) {
			lt_reply_error(req, 400, "invalid since: an ISO-8601 time is required");
			return;
		}
		since_ms = ns / LT_NS_PER_MS;
	} else if (e == LT_ETOOBIG) {
		lt_reply_error(req, 400, "invalid since: an ISO-8601 time is required");
		return;
	}
	if (!query_int(req, "limit", AUDIT_LIMIT_DEFAULT, 1, AUDIT_LIMIT_MAX,
		       "limit must be an integer between 1 and 1000", &limit))
		return;
	struct sqlite3 *db;
	if (!reader(req, &db))
		return;
	cJSON *items = cJSON_CreateArray();
	e = items ? lt_ident_audit_list(db, since_ms, limit, add_audit, items) : LT_ENOMEM;
	reader_done(req, db);
	if (e) {
		cJSON_Delete(items);
		lt_reply_error(req, 503, "storage error");
		return;
	}
	cJSON *o = cJSON_CreateObject();
	if (!o) {
		cJSON_Delete(items);
		lt_reply_error(req, 503, "out of memory");
		return;
	}
	cJSON_AddItemToObject(o, "items", items);
	reply_obj(req, 200, o);
}
