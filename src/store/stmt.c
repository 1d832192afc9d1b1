/*
 * stmt.c — cached prepared statements and step helpers.  See stmt.h.
 */
#include <string.h>

#include "store/stmt.h"

enum lt_err lt_sqlite_err(int rc)
{
	switch (rc & 0xFF) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW: return LT_OK;
	case SQLITE_BUSY:
	case SQLITE_LOCKED: return LT_EBUSY;
	case SQLITE_CONSTRAINT:
	case SQLITE_CORRUPT: return LT_ECORRUPT;
	case SQLITE_NOMEM: return LT_ENOMEM;
	default: return LT_EIO;
	}
}

enum lt_err lt_stmt_prep(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
	for (sqlite3_stmt *s = sqlite3_next_stmt(db, NULL); s; s = sqlite3_next_stmt(db, s)) {
		const char *text = sqlite3_sql(s);
		if (!sqlite3_stmt_busy(s) && text && strcmp(text, sql) == 0) {
			sqlite3_reset(s);
			sqlite3_clear_bindings(s);
			*st = s;
			return LT_OK;
		}
	}
	*st = NULL;
	return lt_sqlite_err(sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL));
}

void lt_stmt_put(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

int lt_stmt_bind_str(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

enum lt_err lt_stmt_run(sqlite3 *db, sqlite3_stmt *st, int *changes)
{
	int rc = sqlite3_step(st);
	if (rc == SQLITE_DONE && changes)
		*changes = sqlite3_changes(db);
	lt_stmt_put(st);
	return rc == SQLITE_DONE ? LT_OK : lt_sqlite_err(rc) ? lt_sqlite_err(rc) : LT_EIO;
}

enum lt_err lt_stmt_each(sqlite3_stmt *st, enum lt_err (*row)(sqlite3_stmt *st, void *arg),
			 void *arg)
{
	int rc = SQLITE_DONE;
	enum lt_err e = LT_OK;
	while (!e && (rc = sqlite3_step(st)) == SQLITE_ROW)
		e = row(st, arg);
	lt_stmt_put(st);
	if (e)
		return e;
	return rc == SQLITE_DONE ? LT_OK : lt_sqlite_err(rc) ? lt_sqlite_err(rc) : LT_EIO;
}

void lt_stmt_copy_col(sqlite3_stmt *st, int col, char *out, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	size_t n = t ? (size_t)sqlite3_column_bytes(st, col) : 0;
	if (n >= cap)
		n = cap - 1;
	if (n)
		memcpy(out, t, n);
	out[n] = '\0';
}
