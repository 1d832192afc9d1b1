/*
 * cmd_key.c — leakyctl key create | list | revoke (API keys of a user) and
 * keys rotate | list (JWT signing keys).
 *
 * API keys are made as leakyd makes them (api/identity.c): a random
 * lt_<public id>_<secret>, of which only the keyed BLAKE2b digest is stored,
 * with the pepper from secrets/apikey-pepper (created, race-free, if
 * leakyd never ran).  The key is printed once and wiped.
 *
 * Signing keys are laid out as leakyd's first key (auth/auth.c): the private
 * key in secrets/jwt-<kid>.pem (0600, never replaced), the row in
 * signing_keys with its public JWK and that relative path.  A rotation
 * retires the active key and inserts the new one in one transaction; the old
 * public key stays in the table, so leakyd keeps verifying its tokens.
 * Every change bumps the identity generation after the commit.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <unistd.h>

#include "auth/apikey.h"
#include "auth/identity_store.h"
#include "auth/jwt_key.h"
#include "auth/secret_file.h"
#include "cli/cli.h"
#include "store/datadir.h"
#include "store/db.h"
#include "util/buf.h"
#include "util/timefmt.h"
#include "util/uuid.h"

#define ACTOR "leakyctl"

/* ---- key create ---- */

int lt_cmd_key_create(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "key create";
	const char *name = NULL, *expires = NULL;
	bool json = false;
	const struct lt_cli_opt opts[] = {{"--name", NULL, &name},
					  {"--expires", NULL, &expires},
					  {"--json", &json, NULL},
					  {NULL, NULL, NULL}};
	char *pos[1];
	int npos, rc = lt_cli_args(cmd, argc, argv, opts, 1, 1, pos, &npos);
	if (rc)
		return rc;
	if (name && (strlen(name) > LT_NAME_MAX)) {
		fprintf(stderr, "leakyctl %s: a key name is at most %d characters\n", cmd,
			LT_NAME_MAX);
		return EX_DATAERR;
	}
	struct lt_api_key_row k;
	memset(&k, 0, sizeof k);
	k.created_ms = lt_cli_now_ms();
	if (expires) {
		int64_t ns;
		if (lt_time_parse_iso(expires, strlen(expires), &ns)) {
			fprintf(stderr,
				"leakyctl %s: invalid --expires '%s' (YYYY-MM-DDTHH:MM:SSZ)\n", cmd,
				expires);
			return EX_DATAERR;
		}
		k.expires_ms = ns / 1000000;
		if (k.expires_ms <= k.created_ms) {
			fprintf(stderr, "leakyctl %s: --expires must be in the future\n", cmd);
			return EX_DATAERR;
		}
	}
	struct sqlite3 *db;
	if ((rc = lt_cli_db_open(cli, cmd, false, &db)))
		return rc;
	char path[4096], serr[LT_SECRET_ERR_MAX];
	unsigned char pepper[LT_APIKEY_PEPPER_LEN];
	char key[LT_APIKEY_LEN + 1] = "", id[LT_APIKEY_ID_LEN + 1];
	bool created;
	struct lt_user u;
	if (lt_datadir_path(cli->data_dir, "secrets/apikey-pepper", path, sizeof path)) {
		fprintf(stderr, "leakyctl %s: data directory path too long\n", cmd);
		rc = EX_USAGE;
		goto out;
	}
	enum lt_err e = lt_secret_file_load_or_create(path, sizeof pepper, pepper, &created, serr);
	if (e) {
		fprintf(stderr, "leakyctl %s: API key pepper: %s\n", cmd, serr);
		rc = e == LT_EDENIED ? EX_NOPERM : EX_IOERR;
		goto out;
	}
	struct lt_apikey_parts parts;
	lt_apikey_generate(key, id);
	lt_apikey_parse(key, LT_APIKEY_LEN, &parts);
	lt_uuid_v4(k.id);
	memcpy(k.public_id, id, sizeof id);
	snprintf(k.name, sizeof k.name, "%s", name ? name : "");
	lt_apikey_digest(pepper, parts.secret, LT_APIKEY_SECRET_LEN, k.digest);
	lt_apikey_parts_wipe(&parts);
	sodium_memzero(pepper, sizeof pepper);
	if ((rc = lt_cli_begin(db, cmd)))
		goto out;
	if ((rc = lt_cli_user(db, cmd, pos[0], &u))) {
		lt_cli_rollback(db);
		goto out;
	}
	memcpy(k.user_id, u.id, sizeof k.user_id);
	char detail[128];
	snprintf(detail, sizeof detail, "{\"userId\":\"%s\",\"prefix\":\"lt_%s\"}", u.id,
		 k.public_id);
	e = lt_ident_key_insert(db, &k);
	if (!e)
		e = lt_ident_audit(db, k.created_ms, ACTOR, "key.created", k.id, detail);
	if (e) {
		lt_cli_rollback(db);
		rc = lt_cli_fail(cmd, e, "creating the key");
		goto out;
	}
	if ((rc = lt_cli_commit(db, cmd)) || (rc = lt_cli_changed(cli, cmd)))
		goto out;
	char exp[32];
	lt_cli_iso(k.expires_ms, "never", exp);
	if (json) {
		struct lt_buf b;
		lt_buf_init(&b, NULL, 0, 4096);
		lt_buf_printf(&b, "{\"id\":\"%s\",\"userId\":\"%s\",\"prefix\":\"lt_%s\",\"name\":",
			      k.id, u.id, k.public_id);
		if (k.name[0])
			lt_buf_put_json_str(&b, k.name, strlen(k.name));
		else
			lt_buf_puts(&b, "null");
		if (k.expires_ms)
			lt_buf_printf(&b, ",\"expiresAt\":\"%s\"", exp);
		else
			lt_buf_puts(&b, ",\"expiresAt\":null");
		lt_buf_printf(&b, ",\"apiKey\":\"%s\"}\n", key);
		fwrite(b.data, 1, b.len, stdout);
		sodium_memzero(b.data, b.len);
		lt_buf_release(&b);
	} else {
		printf("id: %s\nuser: %s\nprefix: lt_%s\nname: %s\nexpires: %s\nkey: %s\n", k.id,
		       u.username, k.public_id, k.name[0] ? k.name : "-", exp, key);
	}
out:
	sodium_memzero(key, sizeof key);
	lt_db_close(db);
	return rc;
}

/* ---- key list / revoke ---- */

static bool print_key(void *arg, const struct lt_api_key_row *k)
{
	(void)arg;
	char created[32], exp[32], used[32];
	lt_cli_iso(k->created_ms, "-", created);
	lt_cli_iso(k->expires_ms, "never", exp);
	lt_cli_iso(k->last_used_ms, "never", used);
	printf("%s lt_%s name=%s created=%s expires=%s last_used=%s\n", k->id, k->public_id,
	       k->name[0] ? k->name : "-", created, exp, used);
	return true;
}

int lt_cmd_key_list(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "key list";
	char *pos[1];
	int npos, rc = lt_cli_args(cmd, argc, argv, NULL, 1, 1, pos, &npos);
	struct sqlite3 *db;
	if (rc || (rc = lt_cli_db_open(cli, cmd, false, &db)))
		return rc;
	struct lt_user u;
	if (!(rc = lt_cli_user(db, cmd, pos[0], &u))) {
		enum lt_err e = lt_ident_key_list(db, u.id, print_key, NULL);
		if (e)
			rc = lt_cli_fail(cmd, e, "listing keys");
	}
	lt_db_close(db);
	return rc;
}

int lt_cmd_key_revoke(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "key revoke";
	char *pos[2];
	int npos, rc = lt_cli_args(cmd, argc, argv, NULL, 2, 2, pos, &npos);
	if (rc)
		return rc;
	/* KEY_ID: the key's id, or its prefix "lt_<public id>". */
	const char *ref = pos[1];
	bool by_prefix = strncmp(ref, LT_APIKEY_TAG, LT_APIKEY_TAG_LEN) == 0 &&
			 strlen(ref) == LT_APIKEY_PREFIX_LEN;
	if (!by_prefix && !lt_uuid_valid(ref, strlen(ref))) {
		fprintf(stderr, "leakyctl %s: KEY_ID is a key id (a UUID) or its prefix lt_...\n",
			cmd);
		return EX_USAGE;
	}
	struct sqlite3 *db;
	if ((rc = lt_cli_db_open(cli, cmd, false, &db)))
		return rc;
	struct lt_user u;
	char id[LT_ID_LEN + 1];
	if ((rc = lt_cli_begin(db, cmd)))
		goto out;
	if ((rc = lt_cli_user(db, cmd, pos[0], &u))) {
		lt_cli_rollback(db);
		goto out;
	}
	enum lt_err e = LT_OK;
	if (by_prefix) {
		struct lt_api_key_row k;
		e = lt_ident_key_by_public(db, ref + LT_APIKEY_TAG_LEN, &k);
		if (!e)
			memcpy(id, k.id, sizeof id);
	} else {
		for (size_t i = 0; i <= LT_ID_LEN; i++)
			id[i] = (char)(ref[i] >= 'A' && ref[i] <= 'F' ? ref[i] - 'A' + 'a'
								      : ref[i]);
	}
	int64_t now = lt_cli_now_ms();
	if (!e)
		e = lt_ident_key_revoke(db, u.id, id, now);
	if (!e) {
		char detail[96];
		snprintf(detail, sizeof detail, "{\"userId\":\"%s\"}", u.id);
		e = lt_ident_audit(db, now, ACTOR, "key.revoked", id, detail);
	}
	if (e) {
		lt_cli_rollback(db);
		if (e == LT_ENOTFOUND) {
			fprintf(stderr, "leakyctl %s: %s has no live key %s\n", cmd, u.username,
				ref);
			rc = EX_DATAERR;
		} else {
			rc = lt_cli_fail(cmd, e, "revoking the key");
		}
		goto out;
	}
	if (!(rc = lt_cli_commit(db, cmd)) && !(rc = lt_cli_changed(cli, cmd)))
		printf("revoked key %s of %s\n", id, u.username);
out:
	lt_db_close(db);
	return rc;
}

/* ---- signing keys ---- */

static bool active_kid(void *arg, const struct lt_signing_key_row *k)
{
	if (!k->retired_ms)
		snprintf(arg, 64, "%s", k->kid);
	return false; /* the active key, if any, comes first */
}

int lt_cmd_keys_rotate(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "keys rotate";
	char *pos[1];
	int npos, rc = lt_cli_args(cmd, argc, argv, NULL, 0, 0, pos, &npos);
	struct sqlite3 *db;
	if (rc || (rc = lt_cli_db_open(cli, cmd, true, &db)))
		return rc;
	struct lt_jwt_key key;
	struct lt_buf jwk, d;
	char file[128], path[4096], old[64] = "";
	bool made_file = false;
	memset(&key, 0, sizeof key);
	lt_buf_init(&jwk, NULL, 0, 8192);
	lt_buf_init(&d, NULL, 0, 512);
	enum lt_err e = lt_jwt_key_generate(&key, LT_JWT_KEY_BITS);
	if (e) {
		rc = lt_cli_fail(cmd, e, "generating the key");
		goto out;
	}
	snprintf(file, sizeof file, "secrets/jwt-%s.pem", key.kid);
	if (lt_datadir_path(cli->data_dir, "secrets", path, sizeof path) ||
	    (mkdir(path, 0700) != 0 && errno != EEXIST) ||
	    lt_datadir_path(cli->data_dir, file, path, sizeof path)) {
		fprintf(stderr, "leakyctl %s: cannot make %s/secrets\n", cmd, cli->data_dir);
		rc = EX_CANTCREAT;
		goto out;
	}
	e = lt_jwt_key_create(&key, path);
	if (e) {
		rc = lt_cli_fail(cmd, e, path);
		goto out;
	}
	made_file = true;
	if ((e = lt_jwt_key_jwk(&key, &jwk))) {
		rc = lt_cli_fail(cmd, e, "rendering the JWK");
		goto out;
	}
	if ((rc = lt_cli_begin(db, cmd)))
		goto out;
	int64_t now = lt_cli_now_ms();
	e = lt_ident_signing_key_list(db, 0, active_kid, old);
	if (!e)
		e = lt_ident_signing_key_retire(db, now);
	if (!e)
		e = lt_ident_signing_key_insert(db, key.kid, jwk.data, file, now);
	lt_buf_printf(&d, "{\"kid\":\"%s\",\"retired\":", key.kid);
	lt_buf_puts(&d, old[0] ? "\"" : "null");
	if (old[0])
		lt_buf_printf(&d, "%s\"", old);
	lt_buf_putc(&d, '}');
	if (!e)
		e = d.err ? d.err : lt_ident_audit(db, now, ACTOR, "key.rotated", key.kid, d.data);
	if (e) {
		lt_cli_rollback(db);
		rc = lt_cli_fail(cmd, e, "storing the key");
		goto out;
	}
	if ((rc = lt_cli_commit(db, cmd)))
		goto out;
	made_file = false; /* committed: the file is the key's now */
	rc = lt_cli_changed(cli, cmd);
	printf("new signing key %s (%s)\n", key.kid, file);
	if (old[0])
		printf("retired %s (still verifies its tokens until they expire)\n", old);
out:
	if (made_file)
		unlink(path);
	lt_jwt_key_release(&key);
	lt_buf_release(&jwk);
	lt_buf_release(&d);
	lt_db_close(db);
	return rc;
}

static bool print_signing_key(void *arg, const struct lt_signing_key_row *k)
{
	(void)arg;
	char created[32], retired[32];
	lt_cli_iso(k->created_ms, "-", created);
	lt_cli_iso(k->retired_ms, "-", retired);
	printf("%s created=%s retired=%s %s\n", k->kid, created, retired,
	       k->retired_ms ? "retired" : "active");
	return true;
}

int lt_cmd_keys_list(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "keys list";
	char *pos[1];
	int npos, rc = lt_cli_args(cmd, argc, argv, NULL, 0, 0, pos, &npos);
	struct sqlite3 *db;
	if (rc || (rc = lt_cli_db_open(cli, cmd, false, &db)))
		return rc;
	enum lt_err e = lt_ident_signing_key_list(db, 0, print_signing_key, NULL);
	lt_db_close(db);
	return e ? lt_cli_fail(cmd, e, "listing signing keys") : 0;
}
