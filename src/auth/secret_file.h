/*
 * secret_file.h — small secret files under var/secrets/: the API-key pepper,
 * the generated admin password, key material.
 *
 * Rules every function here keeps:
 *   - the directory holding the file is created mode 0700 (with any missing
 *     parents) when missing, and is refused (LT_EDENIED) if group or others
 *     may write to it, since they could then swap the file;
 *   - a file is read only if it is a regular file (not a symbolic link, not
 *     a FIFO), owned by the effective user, and has no group or other
 *     permission bits; otherwise LT_EDENIED with the reason in err;
 *   - a file is written atomically: a fresh PATH.tmp-<random> is created
 *     with O_CREAT|O_EXCL|O_NOFOLLOW mode 0600, written, fsync'd, then moved
 *     into place and the directory fsync'd; on failure the temporary is
 *     removed.  Creating without replacing uses link(2), not rename(2), so
 *     two processes (leakyd and leakyctl) racing to create the same secret
 *     agree on one: the loser gets LT_EEXIST and reads the winner's;
 *   - contents never appear in err, logs or messages; buffers that held
 *     them are wiped on failure.
 *
 * err: a caller buffer of LT_SECRET_ERR_MAX bytes, set on every error to a
 * message naming the path and the reason.
 *
 * Thread safety: no shared state; concurrent calls on the same path are
 * safe as described above (one creator wins).
 */
#ifndef LT_AUTH_SECRET_FILE_H
#define LT_AUTH_SECRET_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

#define LT_SECRET_ERR_MAX 512
#define LT_SECRET_FILE_MAX (64u * 1024) /* largest secret file accepted */

/* Load exactly len bytes (1..LT_SECRET_FILE_MAX) from path into out, or if
 * path does not exist, create it with len fresh random bytes (and the
 * directory, 0700, if missing) and return those.  *created says which.
 * LT_ECORRUPT if the file exists with another size; LT_EDENIED for unsafe
 * permissions, ownership or file type; LT_EIO, LT_EINVAL, LT_ETOOBIG (path).
 * On error out is zeroed. */
enum lt_err lt_secret_file_load_or_create(const char *path, size_t len, unsigned char *out,
					  bool *created, char err[LT_SECRET_ERR_MAX]);

/* Read the whole file into buf[0..cap), with the checks above; *len gets its
 * size.  LT_ENOTFOUND if it does not exist; LT_ETOOBIG if larger than cap.
 * On error buf is zeroed. */
enum lt_err lt_secret_file_read(const char *path, void *buf, size_t cap, size_t *len,
				char err[LT_SECRET_ERR_MAX]);

/* Write data[0..len) (len <= LT_SECRET_FILE_MAX) to path atomically, mode
 * 0600.  replace: move over an existing file (rename); otherwise LT_EEXIST
 * if path exists (link). */
enum lt_err lt_secret_file_write(const char *path, const void *data, size_t len, bool replace,
				 char err[LT_SECRET_ERR_MAX]);

/* A NUL-terminated text secret, replacing any existing file: for
 * var/secrets/initial-admin. */
enum lt_err lt_secret_file_write_text(const char *path, const char *text,
				      char err[LT_SECRET_ERR_MAX]);

#endif
