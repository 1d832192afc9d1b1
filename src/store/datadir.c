/*
 * datadir.c — data directory creation and store opening.  See datadir.h.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "store/datadir.h"
#include "store/db.h"

enum lt_err lt_datadir_prepare(const char *dir, char *err)
{
	char path[4096];
	size_t n = strlen(dir);
	if (n == 0 || n >= sizeof path) {
		snprintf(err, LT_DATADIR_ERR_MAX, "data directory path is empty or too long");
		return LT_EINVAL;
	}
	memcpy(path, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		char saved = path[i];
		path[i] = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST) {
			/* Bounded so the errno text survives a long path (and so
			 * -Wformat-truncation, on at -O1, has nothing to say). */
			snprintf(err, LT_DATADIR_ERR_MAX, "mkdir %.400s: %s", path,
				 strerror(errno));
			return LT_EIO;
		}
		path[i] = saved;
	}
	struct stat st;
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, LT_DATADIR_ERR_MAX, "%s is not a directory", dir);
		return LT_EIO;
	}
	return LT_OK;
}

enum lt_err lt_datadir_path(const char *dir, const char *name, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s", dir, name);
	return n < 0 || (size_t)n >= cap ? LT_ETOOBIG : LT_OK;
}

enum lt_err lt_storage_open_db(const char *dir, int sync, int busy_ms, struct sqlite3 **out,
			       int *from, int *to, char *err)
{
	char path[4096];
	*out = NULL;
	if (lt_datadir_path(dir, "leaky.db", path, sizeof path)) {
		snprintf(err, LT_DATADIR_ERR_MAX, "data directory path too long");
		return LT_EINVAL;
	}
	struct sqlite3 *db;
	enum lt_err e = lt_db_open(path, true, false, sync, busy_ms, &db, err);
	if (e)
		return e;
	e = lt_db_migrate(db, lt_schema_sql, from, to, err);
	if (e) {
		lt_db_close(db);
		return e;
	}
	*out = db;
	return LT_OK;
}
