/*
 * auth.c — the authentication service.  See auth.h.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/apikey.h"
#include "auth/auth.h"
#include "auth/jwt.h"
#include "auth/secret_file.h"
#include "conf/config.h"
#include "store/kv.h"
#include "store/writer.h"
#include "util/clock.h"
#include "util/json.h"
#include "util/log.h"
#include "util/uuid.h"

#define READERS 8
#define READER_WAIT_MS 2000
#define KEY_NEVER_S LT_JSON_INT_MAX

uint64_t lt_auth_generation(struct lt_auth *a)
{
	uint64_t g = 0;
	if (lt_kv_counter_get(a->kv, LT_IDENTITY_GEN, &g) != LT_OK)
		g = UINT64_MAX; /* unreadable: match no cache entry */
	return g;
}

void lt_auth_changed(struct lt_auth *a)
{
	if (lt_kv_counter_bump(a->kv, LT_IDENTITY_GEN, NULL) != LT_OK) {
		/* Without the bump, caches could serve a revoked credential. */
		lt_log_error(a->log, "identity generation bump failed; clearing caches");
		lt_token_cache_clear(&a->tokens);
		lt_token_cache_clear(&a->apikeys);
	}
}

void lt_auth_tier(const struct lt_tiers *t, const struct lt_user *u, char out[LT_TIER_MAX + 1])
{
	lt_tiers_effective(t, u->roles, u->tier, out);
}

/* ---- keyring ---- */

static const struct lt_jwt_key *lookup_kid(void *arg, const char *kid, size_t kid_len)
{
	struct lt_auth *a = arg;
	for (size_t i = 0; i < a->nkeys; i++)
		if (strlen(a->keys[i].kid) == kid_len && memcmp(a->keys[i].kid, kid, kid_len) == 0)
			return &a->keys[i];
	return NULL;
}

struct load_ctx {
	struct lt_jwt_key *keys; /* LT_AUTH_MAX_KEYS */
	size_t *nkeys;
	const char *data_dir;
	enum lt_err err;
	char *msg;
};

static bool load_key(void *arg, const struct lt_signing_key_row *k)
{
	struct load_ctx *c = arg;
	char path[1024];
	if (*c->nkeys == LT_AUTH_MAX_KEYS)
		return false;
	snprintf(path, sizeof path, "%s/%s", c->data_dir, k->file);
	enum lt_err e = lt_jwt_key_load(&c->keys[*c->nkeys], path);
	if (e) {
		snprintf(c->msg, LT_AUTH_ERR_MAX, "signing key %s (%s): %s", k->kid, path,
			 lt_strerror(e));
		c->err = e;
		return false;
	}
	if (strcmp(c->keys[*c->nkeys].kid, k->kid) != 0) {
		snprintf(c->msg, LT_AUTH_ERR_MAX, "signing key file %s does not hold key %s", path,
			 k->kid);
		lt_jwt_key_release(&c->keys[*c->nkeys]);
		c->err = LT_ECORRUPT;
		return false;
	}
	(*c->nkeys)++;
	return true;
}

/* Load the active key and keys retired within a token lifetime into keys
 * (LT_AUTH_MAX_KEYS); *n counts them.  On error nothing is left loaded. */
static enum lt_err load_ring(struct lt_auth *a, struct sqlite3 *db, struct lt_jwt_key *keys,
			     size_t *n, char *err)
{
	int64_t since = lt_clock_now_ns(a->clock) / LT_NS_PER_MS - (a->ttl_s + 60) * 1000;
	struct load_ctx c = {keys, n, a->data_dir, LT_OK, err};
	*n = 0;
	enum lt_err e = lt_ident_signing_key_list(db, since, load_key, &c);
	if (!e)
		e = c.err;
	if (e) {
		for (size_t i = 0; i < *n; i++)
			lt_jwt_key_release(&keys[i]);
		*n = 0;
	}
	return e;
}

/* After the generation moved: reload the ring if signing_keys changed. */
static void refresh_ring(struct lt_auth *a, uint64_t gen)
{
	if (atomic_load(&a->keys_gen) == gen || pthread_mutex_trylock(&a->reload_lock) != 0)
		return;
	struct sqlite3 *db;
	int64_t fp[3];
	struct lt_jwt_key *fresh = NULL;
	size_t n = 0;
	if (lt_dbpool_acquire(&a->readers, READER_WAIT_MS, &db) != LT_OK)
		goto out;
	enum lt_err e = lt_ident_signing_key_fingerprint(db, fp);
	if (!e && memcmp(fp, a->keys_fp, sizeof fp) != 0) {
		char err[LT_AUTH_ERR_MAX];
		fresh = calloc(LT_AUTH_MAX_KEYS, sizeof *fresh);
		e = fresh ? load_ring(a, db, fresh, &n, err) : LT_ENOMEM;
		if (e || n == 0) {
			lt_log_error(a->log, "signing keys changed but could not be loaded: %s",
				     e ? err : "no key");
			lt_dbpool_release(&a->readers, db);
			goto out;
		}
	}
	lt_dbpool_release(&a->readers, db);
	if (e)
		goto out;
	if (fresh) {
		struct lt_jwt_key old[LT_AUTH_MAX_KEYS];
		size_t nold;
		pthread_rwlock_wrlock(&a->keys_lock);
		memcpy(old, a->keys, sizeof old);
		nold = a->nkeys;
		memcpy(a->keys, fresh, sizeof a->keys);
		a->nkeys = n;
		pthread_rwlock_unlock(&a->keys_lock);
		for (size_t i = 0; i < nold; i++)
			lt_jwt_key_release(&old[i]);
		memcpy(a->keys_fp, fp, sizeof fp);
		lt_log_info(a->log, "signing keys reloaded: %zu key(s), signing with %s", n,
			    a->keys[0].kid);
	}
	atomic_store(&a->keys_gen, gen);
out:
	free(fresh);
	pthread_mutex_unlock(&a->reload_lock);
}

struct new_key {
	const char *kid, *jwk, *file;
	int64_t now_ms;
};

static enum lt_err insert_key(struct sqlite3 *db, void *arg)
{
	struct new_key *k = arg;
	enum lt_err e = lt_ident_signing_key_insert(db, k->kid, k->jwk, k->file, k->now_ms);
	if (!e)
		e = lt_ident_audit(db, k->now_ms, "system", "key.created", k->kid, NULL);
	return e;
}

static enum lt_err make_first_key(struct lt_auth *a, const char *data_dir, char *err)
{
	struct lt_jwt_key *key = &a->keys[0];
	enum lt_err e = lt_jwt_key_generate(key, LT_JWT_KEY_BITS);
	if (e) {
		snprintf(err, LT_AUTH_ERR_MAX, "generating the signing key: %s", lt_strerror(e));
		return e;
	}
	char file[128], path[1024];
	snprintf(file, sizeof file, "secrets/jwt-%s.pem", key->kid);
	snprintf(path, sizeof path, "%s/%s", data_dir, file);
	e = lt_jwt_key_save(key, path);
	struct lt_buf jwk;
	lt_buf_init(&jwk, NULL, 0, 8192);
	if (!e)
		e = lt_jwt_key_jwk(key, &jwk);
	if (!e) {
		struct new_key nk = {key->kid, jwk.data, file,
				     lt_clock_now_ns(a->clock) / LT_NS_PER_MS};
		e = lt_writer_run(a->writer, insert_key, &nk);
	}
	lt_buf_release(&jwk);
	if (e) {
		snprintf(err, LT_AUTH_ERR_MAX, "storing the signing key %s: %s", path,
			 lt_strerror(e));
		lt_jwt_key_release(key);
		return e;
	}
	a->nkeys = 1;
	lt_log_info(a->log, "created signing key %s", key->kid);
	return LT_OK;
}

/* ---- bootstrap admin ---- */

static enum lt_err bootstrap_admin(struct lt_auth *a, const char *data_dir, char *err)
{
	struct sqlite3 *db;
	int64_t count = 0;
	enum lt_err e = lt_dbpool_acquire(&a->readers, READER_WAIT_MS, &db);
	if (e)
		return e;
	e = lt_ident_user_count(db, &count);
	lt_dbpool_release(&a->readers, db);
	if (e || count)
		return e;

	char pw[LT_PASSWORD_MAX + 1];
	const char *env = getenv("LEAKYD_ADMIN_PASSWORD");
	bool generated = !(env && *env);
	if (!generated) {
		size_t n = strlen(env);
		if (n < LT_PASSWORD_MIN || n > LT_PASSWORD_MAX) {
			snprintf(err, LT_AUTH_ERR_MAX,
				 "LEAKYD_ADMIN_PASSWORD must be %d-%d characters", LT_PASSWORD_MIN,
				 LT_PASSWORD_MAX);
			return LT_ECONFIG;
		}
		memcpy(pw, env, n + 1);
	} else {
		unsigned char rnd[LT_APIKEY_SECRET_BYTES];
		char enc[LT_APIKEY_SECRET_LEN];
		randombytes_buf(rnd, sizeof rnd);
		lt_apikey_base62_encode(rnd, enc);
		memcpy(pw, enc, 24);
		pw[24] = '\0';
		sodium_memzero(rnd, sizeof rnd);
		sodium_memzero(enc, sizeof enc);
	}
	struct lt_ident_new_user *n = calloc(1, sizeof *n);
	if (!n)
		return LT_ENOMEM;
	lt_uuid_v4(n->u.id);
	snprintf(n->u.username, sizeof n->u.username, "admin");
	snprintf(n->u.email, sizeof n->u.email, "admin@localhost");
	n->u.roles = LT_ROLE_ADMIN | LT_ROLE_USER;
	n->u.created_ms = lt_clock_now_ns(a->clock) / LT_NS_PER_MS;
	n->only_if_empty = true;
	n->actor = "system";
	n->action = "user.created";
	n->detail_json = "{\"username\":\"admin\"}";
	char path[1024];
	snprintf(path, sizeof path, "%s/secrets/initial-admin", data_dir);
	e = lt_password_hash(pw, strlen(pw), n->hash);
	if (!e && generated) {
		/* The file first: a user whose password was never written down
		 * would be locked out for good. */
		char serr[LT_SECRET_ERR_MAX], text[LT_PASSWORD_MAX + 2];
		snprintf(text, sizeof text, "%s\n", pw);
		e = lt_secret_file_write_text(path, text, serr);
		sodium_memzero(text, sizeof text);
		if (e)
			snprintf(err, LT_AUTH_ERR_MAX, "writing the initial admin password: %s",
				 serr);
	}
	if (!e)
		e = lt_writer_run(a->writer, lt_ident_user_create, n);
	if (generated && (e || n->skipped))
		unlink(path); /* not the password of any user */
	if (!e && !n->skipped && generated)
		lt_log_warn(a->log,
			    "created user 'admin'; its generated password is in %s "
			    "(read it, then delete the file)",
			    path);
	else if (!e && !n->skipped)
		lt_log_info(a->log,
			    "created user 'admin' with the password from LEAKYD_ADMIN_PASSWORD");
	if (e && !err[0])
		snprintf(err, LT_AUTH_ERR_MAX, "creating the admin user: %s", lt_strerror(e));
	sodium_memzero(pw, sizeof pw);
	sodium_memzero(n->hash, sizeof n->hash);
	free(n);
	return e;
}

/* ---- open / close ---- */

enum lt_err lt_auth_open(struct lt_auth *a, const struct lt_config *cfg, const char *data_dir,
			 const char *db_path, struct lt_kv *kv, struct lt_writer *writer,
			 struct lt_clock *clock, struct lt_log *log, char *err)
{
	char path[1024], serr[LT_SECRET_ERR_MAX];
	bool created;
	memset(a, 0, sizeof *a);
	err[0] = '\0';
	a->kv = kv;
	a->writer = writer;
	a->clock = clock;
	a->log = log;
	snprintf(a->issuer, sizeof a->issuer, "%.128s", cfg->auth_issuer);
	snprintf(a->audience, sizeof a->audience, "%.128s", cfg->auth_audience);
	a->ttl_s = cfg->auth_token_ttl_s;
	char why[256];
	enum lt_err e = lt_tiers_parse(cfg->auth_tiers, &a->tiers, why, sizeof why);
	if (e) {
		snprintf(err, LT_AUTH_ERR_MAX, "[auth] tiers: %s", why);
		return e;
	}
	snprintf(a->data_dir, sizeof a->data_dir, "%s", data_dir);
	pthread_rwlock_init(&a->keys_lock, NULL);
	pthread_mutex_init(&a->reload_lock, NULL);

	snprintf(path, sizeof path, "%s/secrets/apikey-pepper", data_dir);
	e = lt_secret_file_load_or_create(path, sizeof a->pepper, a->pepper, &created, serr);
	if (e) {
		snprintf(err, LT_AUTH_ERR_MAX, "API key pepper: %s", serr);
		return e;
	}
	/* An address may hold many users (a proxy, an office): it gets four
	 * times the per-user allowance before it is locked out. */
	struct lt_throttle_policy ip_policy;
	lt_throttle_policy_default(&ip_policy);
	ip_policy.max_failures *= 4;
	e = lt_dbpool_open(&a->readers, db_path, READERS, (int)cfg->storage_busy_timeout_ms, err);
	if (e)
		return e;
	a->opened = true;
	if ((e = lt_token_cache_init(&a->tokens, (size_t)cfg->auth_cache_size)) ||
	    (e = lt_token_cache_init(&a->apikeys, (size_t)cfg->auth_cache_size)) ||
	    (e = lt_pwhash_gate_init(&a->gate, (int)cfg->auth_hash_concurrency,
				     (int)cfg->auth_hash_queue)) ||
	    (e = lt_password_dummy_init(&a->dummy)) ||
	    (e = lt_throttle_init(&a->by_user, NULL, 8192)) ||
	    (e = lt_throttle_init(&a->by_ip, &ip_policy, 8192))) {
		snprintf(err, LT_AUTH_ERR_MAX, "auth caches: %s", lt_strerror(e));
		lt_auth_close(a);
		return e;
	}

	/* Keyring: the active key and keys retired within a token lifetime. */
	struct sqlite3 *db;
	atomic_store(&a->keys_gen, lt_auth_generation(a));
	e = lt_dbpool_acquire(&a->readers, READER_WAIT_MS, &db);
	if (!e) {
		e = load_ring(a, db, a->keys, &a->nkeys, err);
		lt_dbpool_release(&a->readers, db);
	}
	if (!e && a->nkeys == 0)
		e = make_first_key(a, data_dir, err);
	if (!e && lt_dbpool_acquire(&a->readers, READER_WAIT_MS, &db) == LT_OK) {
		lt_ident_signing_key_fingerprint(db, a->keys_fp);
		lt_dbpool_release(&a->readers, db);
	}
	if (!e)
		e = bootstrap_admin(a, data_dir, err);
	if (e) {
		if (!err[0])
			snprintf(err, LT_AUTH_ERR_MAX, "auth: %s", lt_strerror(e));
		lt_auth_close(a);
	}
	return e;
}

void lt_auth_close(struct lt_auth *a)
{
	if (!a->opened)
		return;
	for (size_t i = 0; i < a->nkeys; i++)
		lt_jwt_key_release(&a->keys[i]);
	a->nkeys = 0;
	if (a->tokens.slots)
		lt_token_cache_release(&a->tokens);
	if (a->apikeys.slots)
		lt_token_cache_release(&a->apikeys);
	lt_throttle_release(&a->by_user);
	lt_throttle_release(&a->by_ip);
	lt_pwhash_gate_release(&a->gate);
	lt_dbpool_close(&a->readers);
	sodium_memzero(a->pepper, sizeof a->pepper);
	pthread_rwlock_destroy(&a->keys_lock);
	pthread_mutex_destroy(&a->reload_lock);
	a->opened = false;
}

/* ---- authentication ---- */

static void claims_roles(struct lt_jwt_claims *c, unsigned roles)
{
	static const unsigned order[] = {LT_ROLE_ADMIN, LT_ROLE_ORG_ADMIN, LT_ROLE_USER};
	c->n_roles = 0;
	for (size_t i = 0; i < 3; i++) /* sorted: ADMIN < ORG_ADMIN < USER */
		if (roles & order[i])
			snprintf(c->roles[c->n_roles++], sizeof c->roles[0], "%s",
				 lt_role_name(order[i]));
}

static void principal_from(const struct lt_jwt_claims *c, struct lt_principal *p, bool via_key)
{
	memset(p, 0, sizeof *p);
	snprintf(p->user_id, sizeof p->user_id, "%.36s", c->sub);
	for (size_t i = 0; i < c->n_roles; i++)
		p->roles |= lt_role_parse(c->roles[i]);
	snprintf(p->tier, sizeof p->tier, "%s", c->tier);
	p->via_api_key = via_key;
	if (via_key) {
		snprintf(p->key_id, sizeof p->key_id, "%s", c->jti);
		p->key_expires_ms = c->exp == KEY_NEVER_S ? 0 : c->exp * 1000;
	}
}

/* Current roles and tier of user `id` into c; DISABLED if gone or off. */
static enum lt_err refresh_user(const struct lt_tiers *t, struct sqlite3 *db, const char *id,
				struct lt_jwt_claims *c, enum lt_auth_fail *why)
{
	struct lt_user u;
	enum lt_err e = lt_ident_user_by_id(db, id, &u);
	if (e == LT_ENOTFOUND || (!e && u.disabled)) {
		*why = LT_AUTH_FAIL_DISABLED;
		return LT_EDENIED;
	}
	if (e)
		return e;
	claims_roles(c, u.roles);
	lt_auth_tier(t, &u, c->tier);
	return LT_OK;
}

#define TOUCH_EVERY_S 60

struct touch {
	const char *id;
	int64_t now_ms;
};

static enum lt_err do_touch(struct sqlite3 *db, void *arg)
{
	struct touch *t = arg;
	return lt_ident_key_touch(db, t->id, t->now_ms);
}

/* Record lastUsedAt at most once a minute per key; the cached claims' nbf
 * holds the last time it was written. */
static void maybe_touch(struct lt_auth *a, const unsigned char d[LT_TOKEN_DIGEST_LEN],
			struct lt_jwt_claims *c, int64_t now_ms, uint64_t gen)
{
	if (now_ms / 1000 - c->nbf < TOUCH_EVERY_S)
		return;
	struct touch t = {c->jti, now_ms};
	if (lt_writer_run(a->writer, do_touch, &t) != LT_OK)
		return; /* best effort: the next request tries again */
	c->nbf = now_ms / 1000;
	lt_token_cache_insert(&a->apikeys, d, c, now_ms / 1000, gen);
}

static enum lt_err auth_key(struct lt_auth *a, const char *key, size_t n, uint64_t gen,
			    int64_t now_ms, struct lt_principal *out, enum lt_auth_fail *why)
{
	struct lt_apikey_parts parts;
	unsigned char d[LT_TOKEN_DIGEST_LEN];
	struct lt_jwt_claims c;
	*why = LT_AUTH_FAIL_BAD_KEY;
	if (lt_apikey_parse(key, n, &parts) != LT_OK)
		return LT_EDENIED;
	lt_token_cache_digest(key, n, d);
	if (lt_token_cache_lookup(&a->apikeys, d, now_ms / 1000, gen, &c) == LT_OK) {
		lt_apikey_parts_wipe(&parts);
		maybe_touch(a, d, &c, now_ms, gen);
		principal_from(&c, out, true);
		*why = LT_AUTH_FAIL_NONE;
		return LT_OK;
	}
	struct sqlite3 *db;
	enum lt_err e = lt_dbpool_acquire(&a->readers, READER_WAIT_MS, &db);
	if (e) {
		lt_apikey_parts_wipe(&parts);
		return e;
	}
	struct lt_api_key_row row;
	unsigned char digest[LT_APIKEY_DIGEST_LEN];
	e = lt_ident_key_by_public(db, parts.id, &row);
	if (e == LT_ENOTFOUND) {
		e = LT_EDENIED;
		goto out;
	}
	if (e)
		goto out;
	lt_apikey_digest(a->pepper, parts.secret, LT_APIKEY_SECRET_LEN, digest);
	if (row.revoked_ms || !lt_apikey_digest_equal(digest, row.digest)) {
		e = LT_EDENIED;
		goto out;
	}
	if (row.expires_ms && now_ms >= row.expires_ms) {
		*why = LT_AUTH_FAIL_KEY_EXPIRED;
		e = LT_EDENIED;
		goto out;
	}
	memset(&c, 0, sizeof c);
	e = refresh_user(&a->tiers, db, row.user_id, &c, why);
	if (e)
		goto out;
	snprintf(c.sub, sizeof c.sub, "%s", row.user_id);
	snprintf(c.jti, sizeof c.jti, "%s", row.id);
	c.iat = now_ms / 1000;
	c.nbf = row.last_used_ms / 1000;
	c.exp = row.expires_ms ? row.expires_ms / 1000
			       : KEY_NEVER_S; /* floor: the DB decides the last second */
	lt_dbpool_release(&a->readers, db);
	db = NULL;
	lt_token_cache_insert(&a->apikeys, d, &c, now_ms / 1000, gen);
	maybe_touch(a, d, &c, now_ms, gen);
	principal_from(&c, out, true);
	*why = LT_AUTH_FAIL_NONE;
out:
	if (db)
		lt_dbpool_release(&a->readers, db);
	lt_apikey_parts_wipe(&parts);
	sodium_memzero(digest, sizeof digest);
	return e;
}

static enum lt_err auth_jwt(struct lt_auth *a, const char *tok, size_t n, uint64_t gen,
			    int64_t now_s, struct lt_principal *out, enum lt_auth_fail *why)
{
	unsigned char d[LT_TOKEN_DIGEST_LEN];
	struct lt_jwt_claims c;
	enum lt_jwt_fail jf;
	lt_token_cache_digest(tok, n, d);
	/* The cache checks exp; nbf matters only if the clock stepped back. */
	if (lt_token_cache_lookup(&a->tokens, d, now_s, gen, &c) == LT_OK &&
	    c.nbf <= now_s + LT_JWT_DEFAULT_SKEW) {
		principal_from(&c, out, false);
		*why = LT_AUTH_FAIL_NONE;
		return LT_OK;
	}
	refresh_ring(a, gen);
	pthread_rwlock_rdlock(&a->keys_lock);
	enum lt_err e = lt_jwt_verify(tok, n, lookup_kid, a, now_s, LT_JWT_DEFAULT_SKEW, a->issuer,
				      a->audience, &c, &jf);
	pthread_rwlock_unlock(&a->keys_lock);
	if (e) {
		*why = LT_AUTH_FAIL_BAD_TOKEN;
		lt_log_debug(a->log, "token refused: %s", lt_jwt_fail_str(jf));
		return e == LT_ENOMEM ? e : LT_EDENIED;
	}
	struct sqlite3 *db;
	e = lt_dbpool_acquire(&a->readers, READER_WAIT_MS, &db);
	if (e)
		return e;
	e = refresh_user(&a->tiers, db, c.sub, &c, why);
	lt_dbpool_release(&a->readers, db);
	if (e)
		return e;
	lt_token_cache_insert(&a->tokens, d, &c, now_s, gen);
	principal_from(&c, out, false);
	*why = LT_AUTH_FAIL_NONE;
	return LT_OK;
}

enum lt_err lt_auth_authenticate(struct lt_auth *a, const char *authorization,
				 const char *x_api_key, struct lt_principal *out,
				 enum lt_auth_fail *why)
{
	/* Read the generation first: a change landing while we look things up
	 * leaves what we cache already stale, never wrongly fresh. */
	uint64_t gen = lt_auth_generation(a);
	int64_t now_ns = lt_clock_now_ns(a->clock);
	if (x_api_key && *x_api_key)
		return auth_key(a, x_api_key, strlen(x_api_key), gen, now_ns / LT_NS_PER_MS, out,
				why);
	if (!authorization || !*authorization) {
		*why = LT_AUTH_FAIL_MISSING;
		return LT_EDENIED;
	}
	if (strncasecmp(authorization, "Bearer ", 7) != 0) {
		*why = LT_AUTH_FAIL_BAD_TOKEN;
		return LT_EDENIED;
	}
	const char *cred = authorization + 7;
	while (*cred == ' ')
		cred++;
	size_t n = strlen(cred);
	while (n && cred[n - 1] == ' ')
		n--;
	if (n >= 3 && memcmp(cred, "lt_", 3) == 0)
		return auth_key(a, cred, n, gen, now_ns / LT_NS_PER_MS, out, why);
	return auth_jwt(a, cred, n, gen, now_ns / LT_NS_PER_S, out, why);
}

/* ---- tokens out ---- */

enum lt_err lt_auth_issue(struct lt_auth *a, const struct lt_user *u, struct lt_buf *token,
			  int64_t *iat_s, int64_t *exp_s)
{
	struct lt_jwt_claims c;
	memset(&c, 0, sizeof c);
	int64_t now = lt_clock_now_ns(a->clock) / LT_NS_PER_S;
	snprintf(c.sub, sizeof c.sub, "%s", u->id);
	snprintf(c.iss, sizeof c.iss, "%s", a->issuer);
	snprintf(c.aud, sizeof c.aud, "%s", a->audience);
	claims_roles(&c, u->roles);
	lt_auth_tier(&a->tiers, u, c.tier);
	c.iat = c.nbf = now;
	c.exp = now + a->ttl_s;
	*iat_s = c.iat;
	*exp_s = c.exp;
	refresh_ring(a, lt_auth_generation(a));
	pthread_rwlock_rdlock(&a->keys_lock);
	enum lt_err e = lt_jwt_sign(&a->keys[0], &c, token);
	pthread_rwlock_unlock(&a->keys_lock);
	return e;
}

enum lt_err lt_auth_jwks(struct lt_auth *a, struct lt_buf *out)
{
	refresh_ring(a, lt_auth_generation(a));
	pthread_rwlock_rdlock(&a->keys_lock);
	lt_buf_puts(out, "{\"keys\":[");
	for (size_t i = 0; i < a->nkeys; i++) {
		if (i)
			lt_buf_putc(out, ',');
		lt_jwt_key_jwk(&a->keys[i], out);
	}
	pthread_rwlock_unlock(&a->keys_lock);
	return lt_buf_puts(out, "]}");
}
