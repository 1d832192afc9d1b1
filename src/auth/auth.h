/*
 * auth.h — the authentication service: who is calling.
 *
 * Owns the signing keyring (RS256; keys[0] signs, the rest still verify),
 * the API-key pepper, the verified-token and API-key caches, the
 * password-hash gate and the failed-login throttles, a pool of read
 * connections for cache misses, and the configured tiers ([auth] tiers,
 * parsed at open, read-only after).
 *
 * Caches are keyed by SHA-256 of the credential and tagged with the identity
 * generation (an LMDB counter shared with leakyctl, store/kv.h) read before
 * the lookup: every identity change bumps it, so revocation, disabling and
 * role changes take effect on the next request, in any process.
 *
 * Keyring: loaded at open and again when the identity generation moves and
 * the signing_keys table changed (`leakyctl keys rotate` in any process):
 * new tokens are then signed with the new key, and the old public keys stay
 * in the JWKS and keep verifying for one token lifetime.  keys_lock (rwlock)
 * guards keys/nkeys: readers while signing, verifying or rendering JWKS; the
 * writer only to swap in a freshly loaded ring.
 *
 * Thread safety: lt_auth_authenticate and the other calls after open are
 * safe from any thread.
 * Ownership: struct lt_auth is embedded in struct lt_server; open fills it,
 * close releases everything it holds.  kv, writer, clock, log are borrowed.
 */
#ifndef LT_AUTH_AUTH_H
#define LT_AUTH_AUTH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth/identity_store.h"
#include "auth/jwt_key.h"
#include "auth/password.h"
#include "auth/tiers.h"
#include "auth/throttle.h"
#include "auth/token_cache.h"
#include "store/dbpool.h"
#include "util/buf.h"
#include "util/err.h"

struct lt_config;
struct lt_kv;
struct lt_writer;
struct lt_clock;
struct lt_log;

#define LT_AUTH_MAX_KEYS 8
#define LT_AUTH_ERR_MAX 2048
#define LT_IDENTITY_GEN "identity_gen"

struct lt_principal {
	char user_id[LT_ID_LEN + 1];
	unsigned roles; /* enum lt_role bits, current (from leaky.db) */
	char tier[LT_TIER_MAX + 1];
	bool via_api_key;
	char key_id[LT_ID_LEN + 1]; /* the API key's id when via_api_key */
	int64_t key_expires_ms;	    /* 0: never */
};

enum lt_auth_fail {
	LT_AUTH_FAIL_NONE,
	LT_AUTH_FAIL_MISSING,	  /* no credential */
	LT_AUTH_FAIL_BAD_TOKEN,	  /* JWT malformed, bad signature, expired, wrong iss/aud */
	LT_AUTH_FAIL_BAD_KEY,	  /* API key malformed, unknown, revoked, wrong secret */
	LT_AUTH_FAIL_KEY_EXPIRED, /* API key past its expiresAt */
	LT_AUTH_FAIL_DISABLED,	  /* the user is disabled or gone */
};

struct lt_auth {
	struct lt_kv *kv;
	struct lt_writer *writer;
	struct lt_clock *clock;
	struct lt_log *log;
	struct lt_dbpool readers;
	char issuer[129], audience[129];
	int64_t ttl_s;
	struct lt_tiers tiers; /* [auth] tiers; read-only after open */
	unsigned char pepper[32];
	struct lt_jwt_key keys[LT_AUTH_MAX_KEYS]; /* guarded by keys_lock */
	size_t nkeys;
	pthread_rwlock_t keys_lock;
	pthread_mutex_t reload_lock; /* one reload at a time */
	_Atomic uint64_t keys_gen;   /* generation the ring was last checked at */
	int64_t keys_fp[3];	     /* signing_keys fingerprint; reload_lock */
	char data_dir[512];
	struct lt_token_cache tokens;  /* JWTs */
	struct lt_token_cache apikeys; /* API keys (sub = user, jti = key id) */
	struct lt_pwhash_gate gate;
	struct lt_password_dummy dummy;
	struct lt_throttle by_user, by_ip;
	bool opened;
};

/* Open: pepper, keyring (creating the first signing key if there is none),
 * caches, gate, throttles, reader pool; then create the bootstrap admin if
 * the users table is empty (password from LEAKYD_ADMIN_PASSWORD, or
 * generated into secrets/initial-admin).  err: LT_AUTH_ERR_MAX bytes. */
enum lt_err lt_auth_open(struct lt_auth *a, const struct lt_config *cfg, const char *data_dir,
			 const char *db_path, struct lt_kv *kv, struct lt_writer *writer,
			 struct lt_clock *clock, struct lt_log *log, char *err);
void lt_auth_close(struct lt_auth *a);

/* From the request's Authorization and X-Api-Key headers (either may be
 * NULL).  LT_OK with *out, or LT_EDENIED with *why; LT_EBUSY if no read
 * connection could be had. */
enum lt_err lt_auth_authenticate(struct lt_auth *a, const char *authorization,
				 const char *x_api_key, struct lt_principal *out,
				 enum lt_auth_fail *why);

/* The current identity generation, and a bump after any identity change. */
uint64_t lt_auth_generation(struct lt_auth *a);
void lt_auth_changed(struct lt_auth *a);

/* The tier of a user under the configured tiers: its explicit tier, else the
 * highest-priority tier named after one of its roles, else USER
 * (lt_tiers_effective). */
void lt_auth_tier(const struct lt_tiers *t, const struct lt_user *u, char out[LT_TIER_MAX + 1]);

/* Sign a token for u (roles and tier as now).  *exp_s is its expiry. */
enum lt_err lt_auth_issue(struct lt_auth *a, const struct lt_user *u, struct lt_buf *token,
			  int64_t *iat_s, int64_t *exp_s);

/* {"keys":[...]} for /oauth2/jwks. */
enum lt_err lt_auth_jwks(struct lt_auth *a, struct lt_buf *out);

#endif
