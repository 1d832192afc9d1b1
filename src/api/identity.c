/*
 * identity.c — the /api/v1/auth endpoints and /oauth2/jwks (API.md §1): registration,
 * login, API keys, the caller's identity, the public signing keys.
 * Parsing, validation and rendering only; storage is auth/identity_store.c,
 * credentials and caches are auth/auth.c.  Messages are the reference's.
 */
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/handlers.h"
#include "auth/apikey.h"
#include "auth/auth.h"
#include "auth/identity_store.h"
#include "http/request.h"
#include "server.h"
#include "store/dbpool.h"
#include "store/writer.h"
#include "util/json.h"
#include "util/timefmt.h"
#include "util/uuid.h"

#define HASH_WAIT_NS (5 * LT_NS_PER_S)
#define READER_WAIT_MS 2000

static int64_t now_ms(struct lt_req *req)
{
	return lt_clock_now_ns(&req->srv->clock) / LT_NS_PER_MS;
}

static void iso_ms(int64_t ms, char out[LT_ISO_LEN])
{
	lt_time_iso(ms * LT_NS_PER_MS, out);
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

static void add_time(cJSON *o, const char *name, int64_t ms)
{
	char ts[LT_ISO_LEN];
	if (!ms) {
		cJSON_AddNullToObject(o, name);
		return;
	}
	iso_ms(ms, ts);
	cJSON_AddStringToObject(o, name, ts);
}

static void reply_obj(struct lt_req *req, int status, cJSON *o)
{
	if (!o) {
		lt_reply_error(req, 503, "out of memory");
		return;
	}
	lt_reply_cjson(req, status, o, NULL);
	cJSON_Delete(o);
}

/* ---- validation ---- */

/* Password length in characters (UTF-8 already validated). */
static size_t chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

/* A required string field: NULL if absent, null, empty or not a string. */
static const char *field(const cJSON *body, const char *name, bool *wrong_type)
{
	const char *v = NULL;
	enum lt_err e = lt_json_get_str(body, name, &v);
	if (e == LT_EINVAL)
		*wrong_type = true;
	return e == LT_OK && *v ? v : NULL;
}

/* ---- register ---- */

bool lt_api_hash_gated(struct lt_req *req, const char *pw, char out[LT_PASSWORD_HASH_LEN])
{
	struct lt_auth *a = &req->srv->auth;
	if (lt_pwhash_gate_enter(&a->gate, HASH_WAIT_NS)) {
		lt_reply_error_h(req, 503, "too many password checks in progress; retry shortly",
				 "Retry-After: 1\r\n");
		return false;
	}
	enum lt_err e = lt_password_hash(pw, strlen(pw), out);
	lt_pwhash_gate_leave(&a->gate);
	if (e) {
		lt_reply_error(req, 503, "password hashing failed");
		return false;
	}
	return true;
}

void lt_api_register(struct lt_req *req)
{
	bool wrong = false;
	const char *username = field(req->json, "username", &wrong);
	const char *email = field(req->json, "email", &wrong);
	const char *password = field(req->json, "password", &wrong);
	if (!username || !email || !password) {
		lt_reply_error(req, 400, "username, email, and password are required");
		return;
	}
	cJSON *errors = cJSON_CreateArray();
	const char *first = NULL;
	struct {
		bool bad;
		const char *field, *msg;
	} checks[] = {
		{!lt_ident_valid_username(username), "username",
		 "username must be 3-50 characters of letters, digits, '.', '_' or '-'"},
		{!lt_ident_valid_email(email), "email",
		 "email must be a valid address of at most 100 characters"},
		{chars(password) < LT_PASSWORD_MIN || strlen(password) > LT_PASSWORD_MAX,
		 "password", "password must be 8-256 characters (at most 256 bytes)"},
	};
	for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
		if (!checks[i].bad)
			continue;
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "field", checks[i].field);
		cJSON_AddStringToObject(e, "message", checks[i].msg);
		cJSON_AddItemToArray(errors, e);
		if (!first)
			first = checks[i].msg;
	}
	if (first) {
		cJSON *o = cJSON_CreateObject();
		char ts[LT_ISO_LEN];
		lt_time_iso(lt_clock_now_ns(&req->srv->clock), ts);
		cJSON_AddStringToObject(o, "message", first);
		cJSON_AddStringToObject(o, "timestamp", ts);
		cJSON_AddNumberToObject(o, "status", 400);
		cJSON_AddStringToObject(o, "path", req->path);
		cJSON_AddStringToObject(o, "correlationId", req->correlation_id);
		cJSON_AddItemToObject(o, "errors", errors);
		reply_obj(req, 400, o);
		return;
	}
	cJSON_Delete(errors);

	struct lt_ident_new_user *n = calloc(1, sizeof *n);
	if (!n) {
		lt_reply_error(req, 503, "out of memory");
		return;
	}
	lt_uuid_v4(n->u.id);
	snprintf(n->u.username, sizeof n->u.username, "%s", username);
	snprintf(n->u.email, sizeof n->u.email, "%s", email);
	n->u.roles = LT_ROLE_USER;
	n->u.created_ms = now_ms(req);
	n->action = "user.registered";
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
	struct lt_buf tok;
	int64_t iat, exp;
	lt_buf_init(&tok, NULL, 0, 16384);
	e = lt_auth_issue(&req->srv->auth, &n->u, &tok, &iat, &exp);
	if (e) {
		lt_buf_release(&tok);
		lt_reply_error(req, 500, "could not sign a token");
		goto out;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "userId", n->u.id);
	cJSON_AddStringToObject(o, "username", n->u.username);
	cJSON_AddStringToObject(o, "email", n->u.email);
	cJSON_AddStringToObject(o, "token", tok.data);
	cJSON_AddItemToObject(o, "roles", roles_json(n->u.roles));
	add_time(o, "createdAt", n->u.created_ms);
	add_time(o, "expiresAt", exp * 1000);
	lt_buf_release(&tok);
	reply_obj(req, 201, o);
out:
	sodium_memzero(n->hash, sizeof n->hash);
	free(n);
}

/* ---- login ---- */

struct rehash {
	const char *id;
	const char *hash;
	int64_t now_ms;
};

static enum lt_err do_rehash(struct sqlite3 *db, void *arg)
{
	struct rehash *r = arg;
	return lt_ident_user_set_password(db, r->id, r->hash, r->now_ms);
}

static void login_refused(struct lt_req *req, const char *ukey, size_t ulen, int64_t now)
{
	struct lt_auth *a = &req->srv->auth;
	lt_throttle_fail(&a->by_user, ukey, ulen, now);
	lt_throttle_fail(&a->by_ip, lt_req_remote_addr(req), strlen(lt_req_remote_addr(req)), now);
	lt_reply_error_h(req, 401, "invalid credentials", "WWW-Authenticate: Bearer\r\n");
}

void lt_api_login(struct lt_req *req)
{
	struct lt_auth *a = &req->srv->auth;
	bool wrong = false;
	const char *username = field(req->json, "username", &wrong);
	const char *password = field(req->json, "password", &wrong);
	if (!username || !password) {
		lt_reply_error_h(req, 401, "username and password are required",
				 "WWW-Authenticate: Bearer\r\n");
		return;
	}
	/* Throttle by the case-folded name (usernames are unique ignoring case). */
	char ukey[LT_USERNAME_MAX + 1];
	size_t ulen = 0;
	for (; ulen < LT_USERNAME_MAX && username[ulen]; ulen++)
		ukey[ulen] = (char)tolower((unsigned char)username[ulen]);
	ukey[ulen] = '\0';
	int64_t mono = lt_clock_mono_ns(), wait_u = 0, wait_i = 0;
	const char *ip = lt_req_remote_addr(req);
	bool by_user = lt_throttle_check(&a->by_user, ukey, ulen, mono, &wait_u) != LT_OK;
	bool by_ip = lt_throttle_check(&a->by_ip, ip, strlen(ip), mono, &wait_i) != LT_OK;
	if (by_user || by_ip) {
		int64_t wait = wait_u > wait_i ? wait_u : wait_i;
		char hdr[64];
		snprintf(hdr, sizeof hdr, "Retry-After: %lld\r\n",
			 (long long)((wait + LT_NS_PER_S - 1) / LT_NS_PER_S));
		lt_reply_error_h(req, 429, "too many failed logins; retry later", hdr);
		return;
	}
	struct lt_user u;
	char hash[LT_PWHASH_MAX + 1] = "";
	struct sqlite3 *db;
	enum lt_err e = lt_dbpool_acquire(&a->readers, READER_WAIT_MS, &db);
	if (e) {
		lt_reply_error_h(req, 503, "storage busy; retry shortly", "Retry-After: 1\r\n");
		return;
	}
	enum lt_err found = lt_ident_user_by_name(db, username, &u, hash);
	lt_dbpool_release(&a->readers, db);
	if (found && found != LT_ENOTFOUND) {
		lt_reply_error(req, 503, "storage error");
		return;
	}
	if (lt_pwhash_gate_enter(&a->gate, HASH_WAIT_NS)) {
		lt_reply_error_h(req, 503, "too many password checks in progress; retry shortly",
				 "Retry-After: 1\r\n");
		return;
	}
	bool ok = false, rehash = false;
	size_t plen = strlen(password);
	if (found == LT_ENOTFOUND || plen > 4 * LT_PASSWORD_MAX)
		lt_password_dummy_verify(&a->dummy, password, plen > 1024 ? 1024 : plen);
	else if (lt_password_verify(hash, password, plen, &ok, &rehash) != LT_OK)
		ok = false;
	lt_pwhash_gate_leave(&a->gate);
	if (!ok || u.disabled) {
		login_refused(req, ukey, ulen, mono);
		return;
	}
	lt_throttle_success(&a->by_user, ukey, ulen);
	lt_throttle_success(&a->by_ip, ip, strlen(ip));
	if (rehash) {
		char fresh[LT_PASSWORD_HASH_LEN];
		if (lt_password_hash(password, plen, fresh) == LT_OK) {
			struct rehash r = {u.id, fresh, now_ms(req)};
			if (lt_writer_run(&req->srv->writer, do_rehash, &r) == LT_OK)
				lt_log_info(&req->srv->log, "rehashed the password of user %s",
					    u.id);
		}
		sodium_memzero(fresh, sizeof fresh);
	}
	sodium_memzero(hash, sizeof hash);
	struct lt_buf tok;
	int64_t iat, exp;
	lt_buf_init(&tok, NULL, 0, 16384);
	if (lt_auth_issue(a, &u, &tok, &iat, &exp)) {
		lt_buf_release(&tok);
		lt_reply_error(req, 500, "could not sign a token");
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "userId", u.id);
	cJSON_AddStringToObject(o, "username", u.username);
	cJSON_AddStringToObject(o, "token", tok.data);
	cJSON_AddItemToObject(o, "roles", roles_json(u.roles));
	add_time(o, "expiresAt", exp * 1000);
	lt_buf_release(&tok);
	reply_obj(req, 200, o);
}

/* ---- JWKS, me ---- */

void lt_api_jwks(struct lt_req *req)
{
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 1u << 20);
	lt_auth_jwks(&req->srv->auth, &b);
	lt_reply_json(req, 200, &b, NULL);
	lt_buf_release(&b);
}

static bool add_org(void *arg, const struct lt_membership *m)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "orgId", m->org_id);
	cJSON_AddStringToObject(o, "role", lt_role_name(m->role));
	cJSON_AddItemToArray(arg, o);
	return true;
}

void lt_api_me(struct lt_req *req)
{
	struct lt_auth *a = &req->srv->auth;
	struct sqlite3 *db;
	struct lt_user u;
	if (lt_dbpool_acquire(&a->readers, READER_WAIT_MS, &db)) {
		lt_reply_error_h(req, 503, "storage busy; retry shortly", "Retry-After: 1\r\n");
		return;
	}
	cJSON *orgs = cJSON_CreateArray();
	enum lt_err e = lt_ident_user_by_id(db, req->principal.user_id, &u);
	if (!e)
		e = lt_ident_member_list(db, NULL, u.id, add_org, orgs);
	lt_dbpool_release(&a->readers, db);
	if (e) {
		cJSON_Delete(orgs);
		if (e == LT_ENOTFOUND)
			lt_reply_error_h(req, 401, "account disabled",
					 "WWW-Authenticate: Bearer\r\n");
		else
			lt_reply_error(req, 503, "storage error");
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "userId", u.id);
	cJSON_AddStringToObject(o, "username", u.username);
	cJSON_AddItemToObject(o, "roles", roles_json(req->principal.roles));
	cJSON_AddStringToObject(o, "tier", req->principal.tier);
	cJSON_AddItemToObject(o, "orgs", orgs);
	reply_obj(req, 200, o);
}

/* ---- API keys ---- */

/* The target user of a key request: from the body or query, validated and
 * checked against the principal.  Answers and returns false on error. */
static bool target_user(struct lt_req *req, const char *id, char out[LT_ID_LEN + 1])
{
	if (!id || !*id) {
		lt_reply_error(req, 400, "userId is required");
		return false;
	}
	if (!lt_uuid_valid(id, strlen(id))) {
		lt_reply_error(req, 400, "invalid userId");
		return false;
	}
	for (size_t i = 0; i <= LT_ID_LEN; i++)
		out[i] = (char)tolower((unsigned char)id[i]);
	if (strcmp(out, req->principal.user_id) != 0 && !(req->principal.roles & LT_ROLE_ADMIN)) {
		lt_reply_error(req, 403, "not allowed to act for this user");
		return false;
	}
	return true;
}

struct new_key {
	struct lt_api_key_row row;
	const char *actor;
	bool user_missing;
};

static enum lt_err do_insert_key(struct sqlite3 *db, void *arg)
{
	struct new_key *k = arg;
	struct lt_user u;
	enum lt_err e = lt_ident_user_by_id(db, k->row.user_id, &u);
	if (e == LT_ENOTFOUND)
		k->user_missing = true;
	if (!e)
		e = lt_ident_key_insert(db, &k->row);
	if (!e)
		e = lt_ident_audit(db, k->row.created_ms, k->actor, "key.created", k->row.id, NULL);
	return e;
}

static void key_json(cJSON *o, const struct lt_api_key_row *k)
{
	char prefix[LT_APIKEY_PREFIX_LEN + 1];
	lt_apikey_prefix(k->public_id, prefix);
	cJSON_AddStringToObject(o, "id", k->id);
	if (k->name[0])
		cJSON_AddStringToObject(o, "name", k->name);
	else
		cJSON_AddNullToObject(o, "name");
	cJSON_AddStringToObject(o, "prefix", prefix);
	add_time(o, "createdAt", k->created_ms);
	add_time(o, "expiresAt", k->expires_ms);
}

void lt_api_keys_create(struct lt_req *req)
{
	const char *uid = NULL, *name = NULL, *exp = NULL;
	char user[LT_ID_LEN + 1];
	enum lt_err eu = lt_json_get_str(req->json, "userId", &uid);
	if (eu == LT_EINVAL) {
		lt_reply_error(req, 400, "invalid userId");
		return;
	}
	if (!target_user(req, uid, user))
		return;
	if (lt_json_get_str(req->json, "name", &name) == LT_EINVAL ||
	    (name && strlen(name) > LT_NAME_MAX)) {
		lt_reply_error(req, 400, "name must be a string of at most 100 characters");
		return;
	}
	struct new_key *k = calloc(1, sizeof *k);
	if (!k) {
		lt_reply_error(req, 503, "out of memory");
		return;
	}
	k->row.created_ms = now_ms(req);
	enum lt_err ee = lt_json_get_str(req->json, "expiresAt", &exp);
	if (ee == LT_EINVAL) {
		lt_reply_error(req, 400, "invalid expiresAt");
		goto out;
	}
	if (ee == LT_OK) {
		int64_t ns;
		if (lt_time_parse_iso(exp, strlen(exp), &ns)) {
			lt_reply_error(req, 400, "invalid expiresAt");
			goto out;
		}
		k->row.expires_ms = ns / LT_NS_PER_MS;
		if (k->row.expires_ms <= k->row.created_ms) {
			lt_reply_error(req, 400, "expiresAt must be in the future");
			goto out;
		}
	}
	char key[LT_APIKEY_LEN + 1], id[LT_APIKEY_ID_LEN + 1];
	struct lt_apikey_parts parts;
	lt_apikey_generate(key, id);
	lt_apikey_parse(key, LT_APIKEY_LEN, &parts);
	lt_uuid_v4(k->row.id);
	memcpy(k->row.public_id, id, sizeof id);
	memcpy(k->row.user_id, user, sizeof user);
	snprintf(k->row.name, sizeof k->row.name, "%s", name ? name : "");
	lt_apikey_digest(req->srv->auth.pepper, parts.secret, LT_APIKEY_SECRET_LEN, k->row.digest);
	lt_apikey_parts_wipe(&parts);
	k->actor = req->principal.user_id;
	enum lt_err e = lt_writer_run(&req->srv->writer, do_insert_key, k);
	if (e) {
		sodium_memzero(key, sizeof key);
		if (k->user_missing)
			lt_reply_error(req, 404, "user not found");
		else
			lt_reply_error(req, lt_err_http_status(e), "could not create the api key");
		goto out;
	}
	cJSON *o = cJSON_CreateObject();
	key_json(o, &k->row);
	cJSON_AddStringToObject(o, "userId", k->row.user_id);
	cJSON_AddStringToObject(o, "apiKey", key);
	sodium_memzero(key, sizeof key);
	reply_obj(req, 201, o);
out:
	free(k);
}

static bool add_key(void *arg, const struct lt_api_key_row *k)
{
	cJSON *o = cJSON_CreateObject();
	key_json(o, k);
	add_time(o, "lastUsedAt", k->last_used_ms);
	cJSON_AddItemToArray(arg, o);
	return true;
}

void lt_api_keys_list(struct lt_req *req)
{
	char uid[64] = "", user[LT_ID_LEN + 1];
	if (lt_req_query(req, "userId", uid, sizeof uid) == LT_ETOOBIG) {
		lt_reply_error(req, 400, "invalid userId");
		return;
	}
	if (!target_user(req, uid, user))
		return;
	struct lt_auth *a = &req->srv->auth;
	struct sqlite3 *db;
	if (lt_dbpool_acquire(&a->readers, READER_WAIT_MS, &db)) {
		lt_reply_error_h(req, 503, "storage busy; retry shortly", "Retry-After: 1\r\n");
		return;
	}
	cJSON *arr = cJSON_CreateArray();
	enum lt_err e = lt_ident_key_list(db, user, add_key, arr);
	lt_dbpool_release(&a->readers, db);
	if (e) {
		cJSON_Delete(arr);
		lt_reply_error(req, 503, "storage error");
		return;
	}
	reply_obj(req, 200, arr);
}

struct revoke {
	const char *user, *id, *actor;
	int64_t now_ms;
};

static enum lt_err do_revoke(struct sqlite3 *db, void *arg)
{
	struct revoke *r = arg;
	enum lt_err e = lt_ident_key_revoke(db, r->user, r->id, r->now_ms);
	if (!e)
		e = lt_ident_audit(db, r->now_ms, r->actor, "key.revoked", r->id, NULL);
	return e;
}

void lt_api_keys_delete(struct lt_req *req)
{
	char uid[64] = "", kid[64] = "", user[LT_ID_LEN + 1];
	if (lt_req_query(req, "userId", uid, sizeof uid) == LT_ETOOBIG) {
		lt_reply_error(req, 400, "invalid userId");
		return;
	}
	if (!target_user(req, uid, user))
		return;
	enum lt_err q = lt_req_query(req, "apiKeyId", kid, sizeof kid);
	if (q == LT_ENOTFOUND || !kid[0]) {
		lt_reply_error(req, 400, "apiKeyId is required");
		return;
	}
	if (q || !lt_uuid_valid(kid, strlen(kid))) {
		lt_reply_error(req, 400, "invalid apiKeyId");
		return;
	}
	for (char *p = kid; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	struct revoke r = {user, kid, req->principal.user_id, now_ms(req)};
	enum lt_err e = lt_writer_run(&req->srv->writer, do_revoke, &r);
	if (e == LT_ENOTFOUND) {
		lt_reply_error(req, 404, "api key not found");
		return;
	}
	if (e) {
		lt_reply_error(req, lt_err_http_status(e), "could not revoke the api key");
		return;
	}
	lt_auth_changed(&req->srv->auth);
	lt_reply(req, 204, NULL, NULL, NULL, 0);
}

void lt_api_keys_validate(struct lt_req *req)
{
	const char *key = lt_req_header(req, "X-Api-Key");
	if (!key || !*key) {
		lt_reply_error_h(req, 401, "api key is required", "WWW-Authenticate: Bearer\r\n");
		return;
	}
	struct lt_principal p;
	enum lt_auth_fail why;
	enum lt_err e = lt_auth_authenticate(&req->srv->auth, NULL, key, &p, &why);
	if (e == LT_EDENIED) {
		lt_reply_error_h(req, 401,
				 why == LT_AUTH_FAIL_KEY_EXPIRED ? "api key expired"
								 : "invalid api key",
				 "WWW-Authenticate: Bearer\r\n");
		return;
	}
	if (e) {
		lt_reply_error_h(req, 503, "authentication is temporarily unavailable",
				 "Retry-After: 1\r\n");
		return;
	}
	struct lt_apikey_parts parts;
	struct lt_api_key_row row;
	struct sqlite3 *db;
	memset(&row, 0, sizeof row);
	if (lt_apikey_parse(key, strlen(key), &parts) == LT_OK &&
	    lt_dbpool_acquire(&req->srv->auth.readers, READER_WAIT_MS, &db) == LT_OK) {
		lt_ident_key_by_public(db, parts.id, &row);
		lt_dbpool_release(&req->srv->auth.readers, db);
	}
	lt_apikey_parts_wipe(&parts);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "userId", p.user_id);
	if (row.name[0])
		cJSON_AddStringToObject(o, "name", row.name);
	else
		cJSON_AddNullToObject(o, "name");
	add_time(o, "expiresAt", row.id[0] ? row.expires_ms : p.key_expires_ms);
	cJSON_AddItemToObject(o, "roles", roles_json(p.roles));
	reply_obj(req, 200, o);
}
