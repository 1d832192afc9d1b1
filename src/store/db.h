/*
 * db.h — opening leaky.db (SQLite, WAL) and migrating its schema.
 *
 * lt_db_open sets every pragma explicitly (journal_mode=WAL, synchronous,
 * busy_timeout, foreign_keys) rather than trusting build defaults (Debian's
 * synchronous default is FULL).  lt_db_migrate applies the migrations in
 * schema.sql (embedded in the binary at build time) above PRAGMA user_version
 * in one IMMEDIATE transaction, and refuses a database newer than it knows.
 *
 * Ownership: the caller closes the handle with lt_db_close.  A handle is used
 * by one thread at a time (SQLITE_OPEN_NOMUTEX is not set, but our rule is one
 * owner: the writer thread, or a reader per thread).
 */
#ifndef LT_STORE_DB_H
#define LT_STORE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

struct sqlite3;

#define LT_DB_ERR_MAX 512

/* The embedded schema.sql text (generated from schema.sql by the build). */
extern const char lt_schema_sql[];

/* Open (creating if asked) the database at path.  sync is enum
 * lt_sync_mode.  On error, err (LT_DB_ERR_MAX bytes) says why. */
enum lt_err lt_db_open(const char *path, bool create, bool readonly, int sync, int busy_timeout_ms,
		       struct sqlite3 **out, char *err);
void lt_db_close(struct sqlite3 *db);

/* The highest migration number in schema.sql text `schema`; LT_ESYNTAX if
 * its migration headers are missing, out of order or have gaps. */
enum lt_err lt_schema_latest(const char *schema, int *out);

/* Bring the schema up to date.  *from and *to receive the versions before
 * and after.  LT_ESCHEMA if the database is newer than this build. */
enum lt_err lt_db_migrate(struct sqlite3 *db, const char *schema, int *from, int *to, char *err);

/* Current PRAGMA user_version. */
enum lt_err lt_db_user_version(struct sqlite3 *db, int *out);

/* PRAGMA integrity_check; *ok false and the first problem in err if not. */
enum lt_err lt_db_integrity(struct sqlite3 *db, bool *ok, char *err);

/* Run a passive WAL checkpoint; frames counts what was copied. */
enum lt_err lt_db_checkpoint(struct sqlite3 *db, int *log_frames, int *ckpt_frames);

/* Execute SQL text with no results (DDL, BEGIN/COMMIT). */
enum lt_err lt_db_exec(struct sqlite3 *db, const char *sql, char *err);

#endif
