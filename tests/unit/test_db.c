/*
 * test_db.c — src/store/db.c on real SQLite files in a temporary directory:
 * pragmas after open, the embedded schema's migrations, refusing a newer
 * database, malformed migration headers, and all-or-nothing application.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "conf/config.h"
#include "store/db.h"
#include "testutil.h"

struct fixture {
	char dir[TU_PATH_MAX];
	char path[TU_PATH_MAX]; /* <dir>/leaky.db */
	sqlite3 *db;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	tu_tmpdir(f->dir);
	tu_path(f->path, f->dir, "leaky.db");
	char err[LT_DB_ERR_MAX] = "";
	if (lt_db_open(f->path, true, false, LT_SYNC_NORMAL, 5000, &f->db, err) != LT_OK) {
		fprintf(stderr, "open: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	lt_db_close(f->db);
	tu_rmtree(f->dir);
	free(f);
	return 0;
}

/* One integer from a query, or fail. */
static int64_t query_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void query_text(sqlite3 *db, const char *sql, char *out, size_t cap)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	const unsigned char *t = sqlite3_column_text(st, 0);
	snprintf(out, cap, "%s", t ? (const char *)t : "(null)");
	sqlite3_finalize(st);
}

static bool table_exists(sqlite3 *db, const char *name)
{
	char sql[256];
	snprintf(sql, sizeof sql,
		 "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '%s'", name);
	return query_int(db, sql) == 1;
}

static int user_version(sqlite3 *db)
{
	int v = -1;
	assert_int_equal(lt_db_user_version(db, &v), LT_OK);
	return v;
}

static void test_open_pragmas(void **state)
{
	struct fixture *f = *state;
	char mode[32];
	query_text(f->db, "PRAGMA journal_mode", mode, sizeof mode);
	assert_string_equal(mode, "wal");
	assert_int_equal(query_int(f->db, "PRAGMA synchronous"), 1); /* NORMAL */
	assert_int_equal(query_int(f->db, "PRAGMA foreign_keys"), 1);
	assert_int_equal(query_int(f->db, "PRAGMA busy_timeout"), 5000);

	/* FULL, and OFF, are set when asked */
	char p2[TU_PATH_MAX], err[LT_DB_ERR_MAX];
	sqlite3 *db;
	assert_int_equal(
		lt_db_open(tu_path(p2, f->dir, "full.db"), true, false, LT_SYNC_FULL, 10, &db, err),
		LT_OK);
	assert_int_equal(query_int(db, "PRAGMA synchronous"), 2);
	assert_int_equal(query_int(db, "PRAGMA busy_timeout"), 10);
	lt_db_close(db);
	assert_int_equal(lt_db_open(p2, false, false, LT_SYNC_OFF, 10, &db, err), LT_OK);
	assert_int_equal(query_int(db, "PRAGMA synchronous"), 0);
	query_text(db, "PRAGMA journal_mode", mode, sizeof mode);
	assert_string_equal(mode, "wal"); /* persistent, and set again anyway */
	lt_db_close(db);
}

static void test_open_errors(void **state)
{
	struct fixture *f = *state;
	char p[TU_PATH_MAX], err[LT_DB_ERR_MAX] = "";
	sqlite3 *db = (sqlite3 *)&db;
	/* not created unless asked */
	assert_int_equal(lt_db_open(tu_path(p, f->dir, "absent.db"), false, false, 1, 10, &db, err),
			 LT_EIO);
	assert_null(db);
	assert_non_null(strstr(err, "absent.db"));
	assert_int_equal(access(p, F_OK), -1);
	/* a directory that does not exist */
	assert_int_equal(
		lt_db_open(tu_path(p, f->dir, "no/such/dir.db"), true, false, 1, 10, &db, err),
		LT_EIO);
	assert_null(db);
	/* read-only opening of a missing file */
	assert_int_equal(lt_db_open(tu_path(p, f->dir, "absent.db"), false, true, 1, 10, &db, err),
			 LT_EIO);
	assert_null(db);
	lt_db_close(NULL); /* harmless */
}

static void test_schema_latest(void **state)
{
	(void)state;
	int latest = -1;
	assert_int_equal(lt_schema_latest(lt_schema_sql, &latest), LT_OK);
	assert_true(latest >= 1);

	static const struct {
		const char *schema;
		enum lt_err err;
		int latest;
	} cases[] = {
		{"-- migration 1: a\nSELECT 1;\n", LT_OK, 1},
		{"-- comment\n-- migration 1: a\nSELECT 1;\n-- migration 2: b\nSELECT 2;\n", LT_OK,
		 2},
		{"-- migration 1: a", LT_OK, 1}, /* header alone, no newline */
		/* a tag that does not start a line is part of the SQL */
		{"-- migration 1: a\nSELECT '-- migration 7: x';\n", LT_OK, 1},
		{"", LT_ESYNTAX, 0},
		{"CREATE TABLE t(x);\n", LT_ESYNTAX, 0},		       /* no headers */
		{"-- migration 2: a\nSELECT 1;\n", LT_ESYNTAX, 0},	       /* not from 1 */
		{"-- migration 1: a\n-- migration 3: c\n", LT_ESYNTAX, 0},     /* gap */
		{"-- migration 1: a\n-- migration 1: again\n", LT_ESYNTAX, 0}, /* repeat */
		{"-- migration 1: a\n-- migration 2 b\n", LT_ESYNTAX, 0},      /* no colon */
		{"-- migration x: a\n", LT_ESYNTAX, 0},
		{"-- migration 0: a\n", LT_ESYNTAX, 0},
		{"-- migration 1: a\n-- migration 2: b\n-- migration 4: d\n", LT_ESYNTAX, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		latest = -1;
		enum lt_err e = lt_schema_latest(cases[i].schema, &latest);
		if (e != cases[i].err || (e == LT_OK && latest != cases[i].latest))
			fail_msg("case %zu: got %d latest %d", i, (int)e, latest);
	}
}

static void test_migrate_fresh_and_again(void **state)
{
	struct fixture *f = *state;
	int latest, from = -1, to = -1;
	char err[LT_DB_ERR_MAX] = "";
	assert_int_equal(lt_schema_latest(lt_schema_sql, &latest), LT_OK);
	assert_int_equal(user_version(f->db), 0);

	assert_int_equal(lt_db_migrate(f->db, lt_schema_sql, &from, &to, err), LT_OK);
	assert_int_equal(from, 0);
	assert_int_equal(to, latest);
	assert_int_equal(user_version(f->db), latest);
	assert_true(table_exists(f->db, "meta"));
	char id[128], id2[128];
	query_text(f->db, "SELECT value FROM meta WHERE key = 'instance_id'", id, sizeof id);
	assert_int_equal(strlen(id), 32);
	int64_t rows = query_int(f->db, "SELECT count(*) FROM meta");

	/* a second run is a no-op */
	from = to = -1;
	assert_int_equal(lt_db_migrate(f->db, lt_schema_sql, &from, &to, err), LT_OK);
	assert_int_equal(from, latest);
	assert_int_equal(to, latest);
	assert_int_equal(user_version(f->db), latest);
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM meta"), rows);
	query_text(f->db, "SELECT value FROM meta WHERE key = 'instance_id'", id2, sizeof id2);
	assert_string_equal(id, id2);

	/* and survives closing and reopening the file */
	lt_db_close(f->db);
	f->db = NULL;
	assert_int_equal(lt_db_open(f->path, false, false, 1, 5000, &f->db, err), LT_OK);
	assert_int_equal(user_version(f->db), latest);
	assert_int_equal(lt_db_migrate(f->db, lt_schema_sql, &from, &to, err), LT_OK);
	assert_int_equal(from, latest);

	bool ok = false;
	assert_int_equal(lt_db_integrity(f->db, &ok, err), LT_OK);
	assert_true(ok);
	int log = -1, ckpt = -1;
	assert_int_equal(lt_db_checkpoint(f->db, &log, &ckpt), LT_OK);
	assert_true(log >= 0);

	/* a read-only handle sees the same schema */
	sqlite3 *ro;
	assert_int_equal(lt_db_open(f->path, false, true, 1, 5000, &ro, err), LT_OK);
	assert_int_equal(user_version(ro), latest);
	lt_db_close(ro);
}

static void test_migrate_refuses_newer(void **state)
{
	struct fixture *f = *state;
	int latest, from = -1, to = -1;
	char err[LT_DB_ERR_MAX] = "", sql[128], want[LT_DB_ERR_MAX];
	assert_int_equal(lt_schema_latest(lt_schema_sql, &latest), LT_OK);
	assert_int_equal(lt_db_exec(f->db,
				    "CREATE TABLE future (x TEXT); "
				    "INSERT INTO future VALUES ('keep me')",
				    err),
			 LT_OK);
	snprintf(sql, sizeof sql, "PRAGMA user_version = %d", latest + 1);
	assert_int_equal(lt_db_exec(f->db, sql, err), LT_OK);

	assert_int_equal(lt_db_migrate(f->db, lt_schema_sql, &from, &to, err), LT_ESCHEMA);
	assert_int_equal(from, latest + 1);
	assert_int_equal(to, latest + 1);
	snprintf(want, sizeof want,
		 "database schema version %d is newer than this build knows (%d); upgrade leakyd",
		 latest + 1, latest);
	assert_string_equal(err, want);
	/* untouched */
	assert_int_equal(user_version(f->db), latest + 1);
	assert_false(table_exists(f->db, "meta"));
	assert_int_equal(query_int(f->db, "SELECT count(*) FROM future WHERE x = 'keep me'"), 1);
	/* and no transaction was left open */
	assert_true(sqlite3_get_autocommit(f->db));
}

static void test_migrate_malformed_schema(void **state)
{
	struct fixture *f = *state;
	int from = -1, to = -1;
	char err[LT_DB_ERR_MAX] = "";
	const char *gap = "-- migration 1: a\nCREATE TABLE a (x);\n"
			  "-- migration 3: c\nCREATE TABLE c (x);\n";
	assert_int_equal(lt_db_migrate(f->db, gap, &from, &to, err), LT_ESYNTAX);
	assert_string_equal(err, "embedded schema has malformed migration headers");
	assert_int_equal(user_version(f->db), 0);
	assert_false(table_exists(f->db, "a"));
	assert_false(table_exists(f->db, "c"));
	assert_true(sqlite3_get_autocommit(f->db));
}

static void test_migrate_failure_rolls_back(void **state)
{
	struct fixture *f = *state;
	int from = -1, to = -1;
	char err[LT_DB_ERR_MAX] = "";
	const char *bad = "-- migration 1: fine\n"
			  "CREATE TABLE a (x INTEGER);\n"
			  "INSERT INTO a VALUES (1);\n"
			  "-- migration 2: fails half-way\n"
			  "CREATE TABLE b (x INTEGER);\n"
			  "INSERT INTO no_such_table VALUES (1);\n"
			  "-- migration 3: never reached\n"
			  "CREATE TABLE c (x INTEGER);\n";
	assert_int_equal(lt_db_migrate(f->db, bad, &from, &to, err), LT_EIO);
	assert_int_equal(from, 0);
	assert_int_equal(to, 0);
	assert_string_equal(err, "migration 2: no such table: no_such_table");
	/* nothing of migrations 1 or 2 remains */
	assert_int_equal(user_version(f->db), 0);
	assert_false(table_exists(f->db, "a"));
	assert_false(table_exists(f->db, "b"));
	assert_false(table_exists(f->db, "c"));
	assert_true(sqlite3_get_autocommit(f->db));

	/* the same database then migrates cleanly */
	const char *good = "-- migration 1: fine\nCREATE TABLE a (x INTEGER);\n";
	assert_int_equal(lt_db_migrate(f->db, good, &from, &to, err), LT_OK);
	assert_int_equal(to, 1);
	assert_true(table_exists(f->db, "a"));
}

/* Only migrations above user_version run: migration 1 is not idempotent, so
 * running it again would fail. */
static void test_migrate_incremental(void **state)
{
	struct fixture *f = *state;
	int from = -1, to = -1;
	char err[LT_DB_ERR_MAX] = "";
	const char *v1 = "-- migration 1: a\nCREATE TABLE a (x INTEGER);\n";
	const char *v3 = "-- migration 1: a\nCREATE TABLE a (x INTEGER);\n"
			 "-- migration 2: b\nCREATE TABLE b (x INTEGER);\n"
			 "-- migration 3: c\nINSERT INTO b VALUES (3);\n";
	assert_int_equal(lt_db_migrate(f->db, v1, &from, &to, err), LT_OK);
	assert_int_equal(from, 0);
	assert_int_equal(to, 1);
	assert_int_equal(lt_db_migrate(f->db, v3, &from, &to, err), LT_OK);
	assert_int_equal(from, 1);
	assert_int_equal(to, 3);
	assert_int_equal(user_version(f->db), 3);
	assert_int_equal(query_int(f->db, "SELECT x FROM b"), 3);
	/* an older build's schema now refuses this database */
	assert_int_equal(lt_db_migrate(f->db, v1, &from, &to, err), LT_ESCHEMA);
	assert_int_equal(user_version(f->db), 3);
}

static void test_exec_errors(void **state)
{
	struct fixture *f = *state;
	char err[LT_DB_ERR_MAX] = "";
	assert_int_equal(lt_db_exec(f->db, "SELEC 1", err), LT_EIO);
	assert_non_null(strstr(err, "syntax error"));
	assert_int_equal(lt_db_exec(f->db, "SELECT 1", NULL), LT_OK);
	assert_int_equal(lt_db_exec(f->db, "SELEC 1", NULL), LT_EIO); /* err may be NULL */
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		T(test_open_pragmas),
		T(test_open_errors),
		cmocka_unit_test(test_schema_latest),
		T(test_migrate_fresh_and_again),
		T(test_migrate_refuses_newer),
		T(test_migrate_malformed_schema),
		T(test_migrate_failure_rolls_back),
		T(test_migrate_incremental),
		T(test_exec_errors),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
