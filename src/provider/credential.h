/*
 * credential.h — provider API keys stored encrypted at rest.
 *
 * A "secret" credential ([provider.NAME] credential = secret) lives in
 * SECRETS/provider-NAME.cred as nonce ‖ crypto_secretbox(key) under the
 * master key SECRETS/master.key (32 random bytes, created on first use, mode
 * 0600).  The files follow secret_file.h's rules (0700 directory, 0600
 * files, atomic replace, no contents in messages).  `leakyctl provider
 * set-credential NAME` writes one; leakyd reads it at start and on SIGHUP.
 *
 * err: LT_SECRET_ERR_MAX bytes, set on every error.
 */
#ifndef LT_PROVIDER_CREDENTIAL_H
#define LT_PROVIDER_CREDENTIAL_H

#include <stddef.h>

#include "auth/secret_file.h"
#include "util/err.h"

#define LT_CREDENTIAL_VALUE_MAX 4096

/* Encrypt value (1..LT_CREDENTIAL_VALUE_MAX bytes, no control characters)
 * and store it for provider `name`, replacing any previous one. */
enum lt_err lt_credential_store(const char *secrets_dir, const char *name, const char *value,
				char err[LT_SECRET_ERR_MAX]);

/* Decrypt the stored credential of `name` into out (cap bytes, NUL-
 * terminated).  LT_ENOTFOUND if none is stored, LT_ECORRUPT if it does not
 * decrypt (wrong master key or damaged file), LT_ETOOBIG if cap is short. */
enum lt_err lt_credential_load(const char *secrets_dir, const char *name, char *out, size_t cap,
			       char err[LT_SECRET_ERR_MAX]);

/* Remove the stored credential; LT_ENOTFOUND if there was none. */
enum lt_err lt_credential_delete(const char *secrets_dir, const char *name,
				 char err[LT_SECRET_ERR_MAX]);

#endif
