/*
 * stmt.h — cached prepared statements and the small step helpers every
 * SQLite adapter shares (quota/pool_store.c, events/outbox.c, ...).
 *
 * lt_stmt_prep returns the statement for a SQL text on a connection: one
 * prepared earlier on the same connection (same text, not running), reset,
 * or a new one prepared SQLITE_PREPARE_PERSISTENT and kept.  The connection
 * owns every statement (lt_db_close finalizes them); callers hand one back
 * with lt_stmt_put (or a helper that does), never finalize it.
 */
#ifndef LT_STORE_STMT_H
#define LT_STORE_STMT_H

#include <sqlite3.h>

#include "util/err.h"

/* An SQLite result code as an lt_err (OK, DONE and ROW are LT_OK; BUSY and
 * LOCKED LT_EBUSY; CONSTRAINT and CORRUPT LT_ECORRUPT; NOMEM LT_ENOMEM;
 * anything else LT_EIO). */
enum lt_err lt_sqlite_err(int rc);

enum lt_err lt_stmt_prep(sqlite3 *db, const char *sql, sqlite3_stmt **st);

/* Done with a statement: reset it (ending its read) and clear its
 * bindings. */
void lt_stmt_put(sqlite3_stmt *st);

/* Bind a string, or NULL when s is NULL (SQLITE_STATIC: s must outlive
 * the step). */
int lt_stmt_bind_str(sqlite3_stmt *st, int i, const char *s);

/* Step a statement that returns no rows and put it back; *changes (may be
 * NULL) = rows it changed. */
enum lt_err lt_stmt_run(sqlite3 *db, sqlite3_stmt *st, int *changes);

/* Step st to its end, handing each row to row(st, arg) until it returns
 * an error (returned); puts st back. */
enum lt_err lt_stmt_each(sqlite3_stmt *st, enum lt_err (*row)(sqlite3_stmt *st, void *arg),
			 void *arg);

/* Copy a text column into out (cap bytes, truncated, NUL-terminated; ""
 * for NULL). */
void lt_stmt_copy_col(sqlite3_stmt *st, int col, char *out, size_t cap);

#endif
