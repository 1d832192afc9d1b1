/*
 * secret_file.c — checked reads and atomic writes of secret files.  See
 * secret_file.h.  No state; every descriptor is closed on every path.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "auth/secret_file.h"

#define PATH_CAP 4096

/* Messages quote at most 400 bytes of a path so the reason always fits. */
#define ERR(...) snprintf(err, LT_SECRET_ERR_MAX, __VA_ARGS__)

/* The directory part of path into dir (PATH_CAP bytes). */
static enum lt_err dir_of(const char *path, char dir[PATH_CAP], char *err)
{
	size_t n = strlen(path);
	if (n == 0 || n >= PATH_CAP - 32) {
		ERR("secret file path is empty or too long");
		return n == 0 ? LT_EINVAL : LT_ETOOBIG;
	}
	const char *slash = strrchr(path, '/');
	if (!slash) {
		memcpy(dir, ".", 2);
	} else if (slash == path) {
		memcpy(dir, "/", 2);
	} else {
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
	}
	if (slash && slash[1] == '\0') {
		ERR("secret file path %.400s names a directory", path);
		return LT_EINVAL;
	}
	return LT_OK;
}

static enum lt_err fsync_dir(const char *dir, char *err)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0) {
		ERR("fsync directory %.400s: %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return LT_EIO;
	}
	close(fd);
	return LT_OK;
}

/* mkdir -p dir with mode 0700, fsync'ing the parent of each directory made;
 * then refuse it unless it is a directory that only its owner may write. */
static enum lt_err prepare_dir(const char *dir, bool create, char *err)
{
	char p[PATH_CAP];
	size_t n = strlen(dir);
	memcpy(p, dir, n + 1);
	for (size_t i = 1; create && i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		char saved = p[i];
		p[i] = '\0';
		if (mkdir(p, 0700) == 0) {
			char parent[PATH_CAP];
			enum lt_err e = dir_of(p, parent, err);
			if (e == LT_OK)
				e = fsync_dir(parent, err);
			if (e != LT_OK)
				return e;
		} else if (errno != EEXIST) {
			ERR("mkdir %.400s: %s", p, strerror(errno));
			return LT_EIO;
		}
		p[i] = saved;
	}
	struct stat st;
	if (stat(dir, &st) != 0) {
		if (errno == ENOENT)
			return LT_ENOTFOUND;
		ERR("stat %.400s: %s", dir, strerror(errno));
		return LT_EIO;
	}
	if (!S_ISDIR(st.st_mode)) {
		ERR("%.400s is not a directory", dir);
		return LT_EIO;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		ERR("secrets directory %.400s is writable by group or others (mode %04o); "
		    "chmod 700 it",
		    dir, (unsigned)(st.st_mode & 07777));
		return LT_EDENIED;
	}
	return LT_OK;
}

static enum lt_err write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return LT_EIO;
		p += w;
		n -= (size_t)w;
	}
	return LT_OK;
}

enum lt_err lt_secret_file_read(const char *path, void *buf, size_t cap, size_t *len,
				char err[LT_SECRET_ERR_MAX])
{
	char dir[PATH_CAP];
	unsigned char *out = buf;
	size_t got = 0;
	int fd = -1;
	struct stat st;

	*len = 0;
	enum lt_err e = dir_of(path, dir, err);
	if (e != LT_OK)
		goto out;
	e = prepare_dir(dir, false, err);
	if (e == LT_ENOTFOUND)
		ERR("%.400s does not exist", path);
	if (e != LT_OK)
		goto out;
	/* O_NONBLOCK: a FIFO planted here must not hang the open. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) {
			ERR("%.400s does not exist", path);
			e = LT_ENOTFOUND;
		} else if (errno == ELOOP) {
			ERR("secret file %.400s is a symbolic link; refusing it", path);
			e = LT_EDENIED;
		} else {
			ERR("open %.400s: %s", path, strerror(errno));
			e = errno == EACCES ? LT_EDENIED : LT_EIO;
		}
		goto out;
	}
	e = LT_EDENIED;
	if (fstat(fd, &st) != 0) {
		ERR("stat %.400s: %s", path, strerror(errno));
		e = LT_EIO;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ERR("secret file %.400s is not a regular file", path);
		goto out;
	}
	if (st.st_uid != geteuid()) {
		ERR("secret file %.400s is owned by uid %u, not by this user (uid %u)", path,
		    (unsigned)st.st_uid, (unsigned)geteuid());
		goto out;
	}
	if (st.st_mode & 077) {
		ERR("secret file %.400s is accessible by group or others (mode %04o); "
		    "chmod 600 it",
		    path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if ((uint64_t)st.st_size > cap) {
		ERR("secret file %.400s is too large (%lld bytes, at most %zu)", path,
		    (long long)st.st_size, cap);
		e = LT_ETOOBIG;
		goto out;
	}
	/* Read to EOF: the size may change under us, the cap may not. */
	for (;;) {
		unsigned char extra = 0;
		unsigned char *dst = got < cap ? out + got : &extra;
		size_t want = got < cap ? cap - got : 1;
		ssize_t r = read(fd, dst, want);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ERR("read %.400s: %s", path, strerror(errno));
			e = LT_EIO;
			goto out;
		}
		if (r == 0)
			break;
		if (got >= cap) {
			sodium_memzero(&extra, 1);
			ERR("secret file %.400s grew past %zu bytes while read", path, cap);
			e = LT_ETOOBIG;
			goto out;
		}
		got += (size_t)r;
	}
	*len = got;
	e = LT_OK;
out:
	if (fd >= 0)
		close(fd);
	if (e != LT_OK && cap > 0)
		sodium_memzero(buf, cap);
	return e;
}

enum lt_err lt_secret_file_write(const char *path, const void *data, size_t len, bool replace,
				 char err[LT_SECRET_ERR_MAX])
{
	char dir[PATH_CAP], tmp[PATH_CAP];
	unsigned char rnd[8];
	int fd = -1;
	bool tmp_made = false;

	enum lt_err e = dir_of(path, dir, err);
	if (e != LT_OK)
		return e;
	if (len > LT_SECRET_FILE_MAX) {
		ERR("secret for %.400s is too large", path);
		return LT_ETOOBIG;
	}
	e = prepare_dir(dir, true, err);
	if (e != LT_OK)
		return e;

	randombytes_buf(rnd, sizeof rnd);
	char hex[2 * sizeof rnd + 1];
	sodium_bin2hex(hex, sizeof hex, rnd, sizeof rnd);
	int n = snprintf(tmp, sizeof tmp, "%s.tmp-%s", path, hex);
	if (n < 0 || (size_t)n >= sizeof tmp) {
		ERR("secret file path %.400s is too long", path);
		return LT_ETOOBIG;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		ERR("create %.400s: %s", tmp, strerror(errno));
		e = LT_EIO;
		goto out;
	}
	tmp_made = true;
	e = LT_EIO;
	/* The umask may only have removed bits; make it exactly 0600. */
	if (fchmod(fd, 0600) != 0) {
		ERR("chmod %.400s: %s", tmp, strerror(errno));
		goto out;
	}
	if (write_all(fd, data, len) != LT_OK || fsync(fd) != 0) {
		ERR("write %.400s: %s", tmp, strerror(errno));
		goto out;
	}
	int rc = close(fd);
	fd = -1;
	if (rc != 0) {
		ERR("close %.400s: %s", tmp, strerror(errno));
		goto out;
	}
	if (replace) {
		if (rename(tmp, path) != 0) {
			ERR("rename %.400s: %s", path, strerror(errno));
			goto out;
		}
		tmp_made = false;
	} else if (link(tmp, path) != 0) {
		if (errno == EEXIST) {
			ERR("%.400s already exists", path);
			e = LT_EEXIST;
		} else {
			ERR("link %.400s: %s", path, strerror(errno));
		}
		goto out;
	}
	e = fsync_dir(dir, err);
out:
	if (fd >= 0)
		close(fd);
	if (tmp_made)
		unlink(tmp);
	return e;
}

enum lt_err lt_secret_file_write_text(const char *path, const char *text,
				      char err[LT_SECRET_ERR_MAX])
{
	return lt_secret_file_write(path, text, strlen(text), true, err);
}

enum lt_err lt_secret_file_load_or_create(const char *path, size_t len, unsigned char *out,
					  bool *created, char err[LT_SECRET_ERR_MAX])
{
	char dir[PATH_CAP];
	size_t got = 0;

	*created = false;
	if (len == 0 || len > LT_SECRET_FILE_MAX) {
		ERR("secret size %zu is outside 1..%u", len, LT_SECRET_FILE_MAX);
		return LT_EINVAL;
	}
	memset(out, 0, len);
	enum lt_err e = dir_of(path, dir, err);
	if (e == LT_OK)
		e = prepare_dir(dir, true, err);
	if (e != LT_OK)
		goto out;
	for (int attempt = 0; attempt < 2; attempt++) {
		e = lt_secret_file_read(path, out, len, &got, err);
		if (e == LT_ETOOBIG || (e == LT_OK && got != len)) {
			ERR("secret file %.400s has the wrong size (expected %zu bytes); "
			    "refusing to use or replace it",
			    path, len);
			e = LT_ECORRUPT;
		}
		if (e != LT_ENOTFOUND)
			goto out;
		randombytes_buf(out, len);
		e = lt_secret_file_write(path, out, len, false, err);
		if (e == LT_OK) {
			*created = true;
			goto out;
		}
		/* LT_EEXIST: another process created it first; read theirs. */
		if (e != LT_EEXIST)
			goto out;
	}
out:
	if (e != LT_OK) {
		*created = false;
		sodium_memzero(out, len);
	}
	return e;
}
