/*
 * credential.c — provider API keys encrypted with libsodium secretbox.
 * See credential.h.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "provider/credential.h"

static enum lt_err paths(const char *dir, const char *name, char *key_path, char *cred_path,
			 size_t cap, char err[LT_SECRET_ERR_MAX])
{
	int a = snprintf(key_path, cap, "%s/master.key", dir);
	int b = snprintf(cred_path, cap, "%s/provider-%s.cred", dir, name);
	if (a < 0 || b < 0 || (size_t)a >= cap || (size_t)b >= cap) {
		snprintf(err, LT_SECRET_ERR_MAX, "secrets directory path too long");
		return LT_ETOOBIG;
	}
	return LT_OK;
}

static enum lt_err master_key(const char *key_path, unsigned char key[crypto_secretbox_KEYBYTES],
			      char err[LT_SECRET_ERR_MAX])
{
	bool created;
	return lt_secret_file_load_or_create(key_path, crypto_secretbox_KEYBYTES, key, &created,
					     err);
}

enum lt_err lt_credential_store(const char *secrets_dir, const char *name, const char *value,
				char err[LT_SECRET_ERR_MAX])
{
	size_t n = strlen(value);
	if (n == 0 || n > LT_CREDENTIAL_VALUE_MAX) {
		snprintf(err, LT_SECRET_ERR_MAX, "a credential must be 1 to %d bytes long",
			 LT_CREDENTIAL_VALUE_MAX);
		return LT_EINVAL;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)value[i] < 0x20 || value[i] == 0x7F) {
			snprintf(err, LT_SECRET_ERR_MAX,
				 "a credential must not contain control characters");
			return LT_EINVAL;
		}
	char kp[1024], cp[1024];
	enum lt_err e = paths(secrets_dir, name, kp, cp, sizeof kp, err);
	if (e)
		return e;
	unsigned char key[crypto_secretbox_KEYBYTES];
	if ((e = master_key(kp, key, err)))
		return e;
	unsigned char box[crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES +
			  LT_CREDENTIAL_VALUE_MAX];
	randombytes_buf(box, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(box + crypto_secretbox_NONCEBYTES, (const unsigned char *)value, n,
			      box, key);
	sodium_memzero(key, sizeof key);
	e = lt_secret_file_write(
		cp, box, crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + n, true, err);
	sodium_memzero(box, sizeof box);
	return e;
}

enum lt_err lt_credential_load(const char *secrets_dir, const char *name, char *out, size_t cap,
			       char err[LT_SECRET_ERR_MAX])
{
	char kp[1024], cp[1024];
	if (cap)
		out[0] = '\0';
	enum lt_err e = paths(secrets_dir, name, kp, cp, sizeof kp, err);
	if (e)
		return e;
	unsigned char box[crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES +
			  LT_CREDENTIAL_VALUE_MAX];
	size_t len;
	if ((e = lt_secret_file_read(cp, box, sizeof box, &len, err))) {
		if (e == LT_ENOTFOUND)
			snprintf(err, LT_SECRET_ERR_MAX,
				 "no stored credential for provider %s (leakyctl provider "
				 "set-credential %s)",
				 name, name);
		return e;
	}
	if (len <= crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) {
		snprintf(err, LT_SECRET_ERR_MAX, "%.300s: too short to hold a credential", cp);
		return LT_ECORRUPT;
	}
	size_t plen = len - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
	if (plen + 1 > cap) {
		snprintf(err, LT_SECRET_ERR_MAX, "%.300s: credential longer than %zu bytes", cp,
			 cap - 1);
		return LT_ETOOBIG;
	}
	unsigned char key[crypto_secretbox_KEYBYTES];
	if ((e = master_key(kp, key, err)))
		return e;
	int rc = crypto_secretbox_open_easy((unsigned char *)out, box + crypto_secretbox_NONCEBYTES,
					    len - crypto_secretbox_NONCEBYTES, box, key);
	sodium_memzero(key, sizeof key);
	sodium_memzero(box, sizeof box);
	if (rc != 0) {
		out[0] = '\0';
		snprintf(err, LT_SECRET_ERR_MAX,
			 "%.200s does not decrypt with %.200s (damaged, or the master key changed)",
			 cp, kp);
		return LT_ECORRUPT;
	}
	out[plen] = '\0';
	return LT_OK;
}

enum lt_err lt_credential_delete(const char *secrets_dir, const char *name,
				 char err[LT_SECRET_ERR_MAX])
{
	char kp[1024], cp[1024];
	enum lt_err e = paths(secrets_dir, name, kp, cp, sizeof kp, err);
	if (e)
		return e;
	if (unlink(cp) != 0) {
		snprintf(err, LT_SECRET_ERR_MAX, "%.300s: %s", cp, strerror(errno));
		return errno == ENOENT ? LT_ENOTFOUND : LT_EIO;
	}
	return LT_OK;
}
