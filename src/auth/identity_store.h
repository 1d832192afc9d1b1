/*
 * identity_store.h — users, roles, orgs, members, API keys, signing keys and
 * the audit trail in leaky.db (schema.sql migration 2).
 *
 * Thin SQL adapters: every function takes the sqlite3 handle it runs on.
 * Reads may use any connection; writes run on the writer's connection inside
 * its transaction (lt_writer_run) or, in leakyctl, inside the caller's own
 * BEGIN IMMEDIATE.  Nothing here caches; callers that cache bump the identity
 * generation after a change (see auth/ident_gen.h).
 * Times are Unix milliseconds.  Strings in out-structs are copied (bounded);
 * nothing returned points into SQLite memory.
 */
#ifndef LT_AUTH_IDENTITY_STORE_H
#define LT_AUTH_IDENTITY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct sqlite3;

#define LT_ID_LEN 36
#define LT_USERNAME_MAX 50
#define LT_EMAIL_MAX 100
#define LT_TIER_MAX 32
#define LT_NAME_MAX 100
#define LT_PWHASH_MAX 128

enum lt_role { LT_ROLE_USER = 1u << 0, LT_ROLE_ORG_ADMIN = 1u << 1, LT_ROLE_ADMIN = 1u << 2 };
#define LT_ROLE_ALL (LT_ROLE_USER | LT_ROLE_ORG_ADMIN | LT_ROLE_ADMIN)

/* "ADMIN" etc. for one role bit; NULL for anything else. */
const char *lt_role_name(unsigned role);
/* The bit for a role name (exact, upper case); 0 if unknown. */
unsigned lt_role_parse(const char *s);

struct lt_user {
	char id[LT_ID_LEN + 1];
	char username[LT_USERNAME_MAX + 1];
	char email[LT_EMAIL_MAX + 1];
	char tier[LT_TIER_MAX + 1]; /* "" when derived from roles */
	unsigned roles;		    /* enum lt_role bits */
	bool disabled;
	int64_t created_ms, updated_ms;
};

struct lt_api_key_row {
	char id[LT_ID_LEN + 1];
	char public_id[16];
	char user_id[LT_ID_LEN + 1];
	char name[LT_NAME_MAX + 1];
	unsigned char digest[32];
	int64_t created_ms;
	int64_t expires_ms;   /* 0: never */
	int64_t last_used_ms; /* 0: never */
	int64_t revoked_ms;   /* 0: live */
};

struct lt_org {
	char id[LT_ID_LEN + 1];
	char name[LT_NAME_MAX + 1];
	int64_t created_ms;
};

struct lt_membership {
	char org_id[LT_ID_LEN + 1];
	char user_id[LT_ID_LEN + 1];
	unsigned role; /* LT_ROLE_ORG_ADMIN or LT_ROLE_USER */
	int64_t created_ms;
};

/* Which unique field a failed insert collided with. */
enum lt_conflict { LT_CONFLICT_NONE, LT_CONFLICT_USERNAME, LT_CONFLICT_EMAIL, LT_CONFLICT_NAME };

/* Users.  Insert writes the user and its role rows; LT_EEXIST + *conflict on
 * a duplicate username or email (case-insensitive). */
enum lt_err lt_ident_user_insert(struct sqlite3 *db, const struct lt_user *u, const char *pw_hash,
				 enum lt_conflict *conflict);
enum lt_err lt_ident_user_by_id(struct sqlite3 *db, const char *id, struct lt_user *out);
/* By username; pw_hash (LT_PWHASH_MAX + 1 bytes) may be NULL. */
enum lt_err lt_ident_user_by_name(struct sqlite3 *db, const char *username, struct lt_user *out,
				  char *pw_hash);
enum lt_err lt_ident_user_set_password(struct sqlite3 *db, const char *id, const char *pw_hash,
				       int64_t now_ms);
enum lt_err lt_ident_user_set_disabled(struct sqlite3 *db, const char *id, bool disabled,
				       int64_t now_ms);
enum lt_err lt_ident_user_set_roles(struct sqlite3 *db, const char *id, unsigned roles,
				    int64_t now_ms);
/* tier NULL or "" clears the explicit tier. */
enum lt_err lt_ident_user_set_tier(struct sqlite3 *db, const char *id, const char *tier,
				   int64_t now_ms);
enum lt_err lt_ident_user_count(struct sqlite3 *db, int64_t *out);
/* Calls fn for each user ordered by created time then id, from offset, at
 * most limit; fn returning false stops. */
enum lt_err lt_ident_user_list(struct sqlite3 *db, int64_t offset, int64_t limit,
			       bool (*fn)(void *arg, const struct lt_user *u), void *arg);

/* API keys. */
enum lt_err lt_ident_key_insert(struct sqlite3 *db, const struct lt_api_key_row *k);
enum lt_err lt_ident_key_by_public(struct sqlite3 *db, const char *public_id,
				   struct lt_api_key_row *out);
enum lt_err lt_ident_key_list(struct sqlite3 *db, const char *user_id,
			      bool (*fn)(void *arg, const struct lt_api_key_row *k), void *arg);
/* Revoke key `id` of `user_id`; LT_ENOTFOUND if no such live key. */
enum lt_err lt_ident_key_revoke(struct sqlite3 *db, const char *user_id, const char *id,
				int64_t now_ms);
enum lt_err lt_ident_key_touch(struct sqlite3 *db, const char *id, int64_t now_ms);

/* Orgs and members. */
enum lt_err lt_ident_org_insert(struct sqlite3 *db, const struct lt_org *o,
				enum lt_conflict *conflict);
enum lt_err lt_ident_org_by_id(struct sqlite3 *db, const char *id, struct lt_org *out);
enum lt_err lt_ident_org_list(struct sqlite3 *db, bool (*fn)(void *arg, const struct lt_org *o),
			      void *arg);
/* Add or change a member; LT_ENOTFOUND if the org or user does not exist. */
enum lt_err lt_ident_member_put(struct sqlite3 *db, const struct lt_membership *m);
enum lt_err lt_ident_member_remove(struct sqlite3 *db, const char *org_id, const char *user_id);
/* Memberships of a user (fn per org) or of an org (org_id set, user_id NULL). */
enum lt_err lt_ident_member_list(struct sqlite3 *db, const char *org_id, const char *user_id,
				 bool (*fn)(void *arg, const struct lt_membership *m), void *arg);

/* One membership, or LT_ENOTFOUND if user_id is not a member of org_id. */
enum lt_err lt_ident_member_get(struct sqlite3 *db, const char *org_id, const char *user_id,
				struct lt_membership *out);
/* Members of an org with their usernames, ordered by join time then user id. */
enum lt_err lt_ident_member_list_named(struct sqlite3 *db, const char *org_id,
				       bool (*fn)(void *arg, const struct lt_membership *m,
						  const char *username),
				       void *arg);

/* Explicit tiers in use (users.tier not NULL), distinct, in name order. */
enum lt_err lt_ident_tier_list(struct sqlite3 *db, bool (*fn)(void *arg, const char *tier),
			       void *arg);

/* Checks shared by registration and the admin API (API.md §1): username
 * 3-50 of [A-Za-z0-9._-]; email at most 100 bytes, one '@', a dot in the
 * domain, no spaces or controls; tier 1-32 of [A-Z0-9_]. */
bool lt_ident_valid_username(const char *s);
bool lt_ident_valid_email(const char *s);
bool lt_ident_valid_tier(const char *s);

/* Signing keys: the public JWK and the private key's file (relative to the
 * data dir).  List calls fn for the active key first, then retired keys
 * retired after `retired_since_ms`, newest first. */
struct lt_signing_key_row {
	char kid[64];
	char file[128];
	int64_t created_ms, retired_ms; /* retired_ms 0: active */
};
enum lt_err lt_ident_signing_key_insert(struct sqlite3 *db, const char *kid, const char *jwk_json,
					const char *file, int64_t now_ms);
/* Retire the active key (if any) at now_ms. */
enum lt_err lt_ident_signing_key_retire(struct sqlite3 *db, int64_t now_ms);
/* A cheap fingerprint of the signing_keys table (row count, latest
 * created_at, latest retired_at): it changes whenever a key is added or
 * retired. */
enum lt_err lt_ident_signing_key_fingerprint(struct sqlite3 *db, int64_t out[3]);
enum lt_err lt_ident_signing_key_list(struct sqlite3 *db, int64_t retired_since_ms,
				      bool (*fn)(void *arg, const struct lt_signing_key_row *k),
				      void *arg);

/* Creating a user as one write: the user row, its roles and its audit row
 * (actor NULL means the new user itself).  With only_if_empty the user is
 * created only when there are no users at all (the bootstrap admin), and
 * skipped says whether it was.  Its signature is an lt_write_fn, so it runs
 * on the writer as lt_writer_run(w, lt_ident_user_create, &new_user). */
struct lt_ident_new_user {
	struct lt_user u;
	char hash[LT_PWHASH_MAX + 1]; /* Argon2id string */
	const char *actor;	      /* NULL: u.id */
	const char *action;	      /* e.g. "user.created" */
	const char *detail_json;      /* NULL or a JSON object */
	bool only_if_empty;
	enum lt_conflict conflict; /* out: on LT_EEXIST */
	bool skipped;		   /* out: only_if_empty found users */
};
enum lt_err lt_ident_user_create(struct sqlite3 *db, void *new_user);

/* Audit: detail_json is NULL or a JSON object (never secrets). */
enum lt_err lt_ident_audit(struct sqlite3 *db, int64_t at_ms, const char *actor, const char *action,
			   const char *target, const char *detail_json);

#define LT_AUDIT_FIELD_MAX 64
#define LT_AUDIT_DETAIL_MAX 1024

/* One audit row; detail is "" when NULL (a longer one is cut: callers that
 * parse it treat an unparsable detail as absent). */
struct lt_audit_row {
	int64_t id, at_ms;
	char actor[LT_AUDIT_FIELD_MAX + 1];
	char action[LT_AUDIT_FIELD_MAX + 1];
	char target[LT_AUDIT_FIELD_MAX + 1];
	char detail[LT_AUDIT_DETAIL_MAX + 1];
};

/* Audit rows with at >= since_ms, newest first (by time, then id), at most
 * limit; fn returning false stops. */
enum lt_err lt_ident_audit_list(struct sqlite3 *db, int64_t since_ms, int64_t limit,
				bool (*fn)(void *arg, const struct lt_audit_row *r), void *arg);

#endif
