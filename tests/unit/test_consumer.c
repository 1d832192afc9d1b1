/*
 * test_consumer.c — src/events/consumer.c against a real event log in a
 * temp directory and a real SQLite file that is NOT leaky.db (the consumer
 * creates consumer_offsets there itself).
 *
 * The apply function inserts one row per event into a `facts` table of the
 * same database (offset, event id, payload), so "exactly once" is checked
 * by counting rows.  Covered: batches and resumption; a failure mid-batch
 * (nothing of the batch stays, the offset does not move, the retry
 * applies every event once; apply's own LT_ERANGE is not taken for
 * retention); resumption after closing and reopening both the log and the
 * database; a child process SIGKILLed inside apply mid-batch (the batch
 * before it stays, the killed one is redone once); two threads polling one
 * consumer on two connections (every event applied once); retention that
 * deleted unread events (skipped and reported, stored with the batch);
 * get/set/list; argument checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conf/config.h"
#include "events/consumer.h"
#include "events/evlog.h"
#include "store/db.h"
#include "testutil.h"

#define TOPIC "token-usage"
#define NAME "analytics"

struct fx {
	char dir[TU_PATH_MAX];
	char events[TU_PATH_MAX];
	char dbpath[TU_PATH_MAX];
	struct lt_evlog *log;
	sqlite3 *db;
};

static sqlite3 *open_db(const char *path)
{
	char err[LT_DB_ERR_MAX] = "";
	sqlite3 *db = NULL;
	if (lt_db_open(path, true, false, LT_SYNC_NORMAL, 10000, &db, err)) {
		fprintf(stderr, "open %s: %s\n", path, err);
		return NULL;
	}
	if (lt_db_exec(db,
		       "CREATE TABLE IF NOT EXISTS facts (off INTEGER NOT NULL, "
		       "event_id INTEGER NOT NULL, payload TEXT NOT NULL)",
		       err)) {
		fprintf(stderr, "create facts: %s\n", err);
		lt_db_close(db);
		return NULL;
	}
	return db;
}

static struct lt_evlog *open_log(const char *dir, int64_t segment_bytes, int64_t retention_bytes)
{
	struct lt_evlog_opts o;
	lt_evlog_opts_default(&o);
	o.fsync = false; /* speed: durability of the log is test_log's subject */
	if (segment_bytes)
		o.segment_bytes = segment_bytes;
	o.retention_bytes = retention_bytes;
	struct lt_evlog *l = NULL;
	char why[256] = "";
	if (lt_evlog_open(dir, &o, &l, NULL, why, sizeof why)) {
		fprintf(stderr, "evlog open: %s\n", why);
		return NULL;
	}
	return l;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	tu_tmpdir(f->dir);
	tu_path(f->events, f->dir, "events");
	tu_path(f->dbpath, f->dir, "analytics.db");
	f->log = open_log(f->events, 0, 0);
	f->db = open_db(f->dbpath);
	if (!f->log || !f->db) {
		lt_evlog_close(f->log);
		lt_db_close(f->db);
		tu_rmtree(f->dir);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	lt_evlog_close(f->log);
	lt_db_close(f->db);
	tu_rmtree(f->dir);
	free(f);
	return 0;
}

/* ---- helpers ---- */

/* Append n events to topic, with event ids first_id.. and payloads
 * {"n":id} padded to at least pad bytes. */
static void append_n(struct lt_evlog *l, const char *topic, uint64_t first_id, size_t n, size_t pad)
{
	for (size_t i = 0; i < n; i++) {
		char payload[4096];
		uint64_t id = first_id + i;
		int len = snprintf(payload, sizeof payload, "{\"n\":%llu,\"pad\":\"%*s\"}",
				   (unsigned long long)id, (int)(pad > 3000 ? 3000 : pad), "");
		struct lt_event ev = {0};
		ev.time_ms = 1700000000000 + (int64_t)id;
		ev.event_id = id;
		ev.topic = topic;
		ev.topic_len = strlen(topic);
		ev.type = "TEST";
		ev.type_len = 4;
		ev.key = "k";
		ev.key_len = 1;
		ev.payload = payload;
		ev.payload_len = (size_t)len;
		assert_int_equal(lt_evlog_append(l, &ev, 1), LT_OK);
	}
}

static int64_t q64(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int64_t facts(sqlite3 *db)
{
	return q64(db, "SELECT count(*) FROM facts");
}

/* Every offset in [lo, hi) has exactly one fact, and nothing else. */
static void assert_once(sqlite3 *db, uint64_t lo, uint64_t hi)
{
	assert_int_equal(facts(db), (int64_t)(hi - lo));
	assert_int_equal(q64(db, "SELECT count(DISTINCT off) FROM facts"), (int64_t)(hi - lo));
	if (hi > lo) {
		assert_int_equal(q64(db, "SELECT min(off) FROM facts"), (int64_t)lo);
		assert_int_equal(q64(db, "SELECT max(off) FROM facts"), (int64_t)(hi - 1));
	}
}

static uint64_t next_of(sqlite3 *db, const char *name)
{
	uint64_t n = 99;
	enum lt_err e = lt_consumer_get(db, name, TOPIC, &n);
	if (e == LT_ENOTFOUND) {
		assert_int_equal(n, 0);
		return 0;
	}
	assert_int_equal(e, LT_OK);
	return n;
}

/* The apply under test: one fact per event; fails (with fail_err) at
 * offset fail_at while fail_left > 0; raises SIGKILL at kill_at. */
struct applier {
	uint64_t fail_at;
	int fail_left;
	enum lt_err fail_err;
	uint64_t kill_at;
	size_t calls;
	uint64_t last_offset;
};

static enum lt_err apply(void *arg, sqlite3 *db, const struct lt_event *ev)
{
	struct applier *a = arg;
	a->calls++;
	a->last_offset = ev->offset;
	if (ev->offset == a->kill_at)
		raise(SIGKILL);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "INSERT INTO facts (off, event_id, payload) VALUES (?1, ?2, ?3)",
			       -1, &st, NULL) != SQLITE_OK)
		return LT_EIO;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)ev->offset);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)ev->event_id);
	sqlite3_bind_text(st, 3, ev->payload, (int)ev->payload_len, SQLITE_TRANSIENT);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return LT_EIO;
	/* fail after the insert: the rollback must take it away */
	if (ev->offset == a->fail_at && a->fail_left > 0) {
		a->fail_left--;
		return a->fail_err;
	}
	return LT_OK;
}

static struct applier plain(void)
{
	struct applier a = {UINT64_MAX, 0, LT_OK, UINT64_MAX, 0, 0};
	return a;
}

static enum lt_err poll(struct fx *f, size_t max, struct applier *a, size_t *applied,
			uint64_t *skipped)
{
	return lt_consumer_poll(f->log, f->db, NAME, TOPIC, max, apply, a, applied, skipped);
}

/* ---- tests ---- */

static void test_batches(void **state)
{
	struct fx *f = *state;
	struct applier a = plain();
	size_t n = 99;
	uint64_t skipped = 99;
	/* nothing written yet: no topic, nothing applied, nothing stored */
	assert_int_equal(poll(f, 10, &a, &n, &skipped), LT_OK);
	assert_int_equal(n, 0);
	assert_int_equal(skipped, 0);
	uint64_t next = 7;
	assert_int_equal(lt_consumer_get(f->db, NAME, TOPIC, &next), LT_ENOTFOUND);
	assert_int_equal(next, 0);

	append_n(f->log, TOPIC, 100, 10, 0);
	append_n(f->log, "audit", 500, 3, 0); /* another topic: not seen */
	assert_int_equal(poll(f, 4, &a, &n, &skipped), LT_OK);
	assert_int_equal(n, 4);
	assert_int_equal(next_of(f->db, NAME), 4);
	assert_once(f->db, 0, 4);
	assert_int_equal(poll(f, 4, &a, &n, NULL), LT_OK);
	assert_int_equal(n, 4);
	assert_int_equal(poll(f, 4, &a, &n, NULL), LT_OK);
	assert_int_equal(n, 2);
	assert_int_equal(poll(f, 4, &a, &n, NULL), LT_OK);
	assert_int_equal(n, 0);
	assert_int_equal(next_of(f->db, NAME), 10);
	assert_once(f->db, 0, 10);
	/* the event ids and payloads arrived with their offsets */
	assert_int_equal(q64(f->db, "SELECT count(*) FROM facts WHERE event_id = off + 100"), 10);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM facts WHERE payload LIKE "
				    "'{\"n\":' || (off + 100) || ',%'"),
			 10);
	assert_int_equal(a.calls, 10);

	/* a second consumer of the same topic has its own offset */
	struct applier b = plain();
	assert_int_equal(
		lt_consumer_poll(f->log, f->db, "audit-sink", TOPIC, 100, apply, &b, &n, NULL),
		LT_OK);
	assert_int_equal(n, 10);
	assert_int_equal(next_of(f->db, "audit-sink"), 10);
	assert_int_equal(next_of(f->db, NAME), 10);
}

static void test_fail_mid_batch(void **state)
{
	struct fx *f = *state;
	append_n(f->log, TOPIC, 1, 20, 0);
	struct applier a = plain();
	size_t n = 0;
	/* a first batch commits */
	assert_int_equal(poll(f, 5, &a, &n, NULL), LT_OK);
	assert_int_equal(n, 5);
	/* the second fails at offset 8 (after inserting its row): nothing of
	 * 5..8 stays and the offset does not move */
	a.fail_at = 8;
	a.fail_left = 1;
	a.fail_err = LT_EIO;
	n = 99;
	assert_int_equal(poll(f, 10, &a, &n, NULL), LT_EIO);
	assert_int_equal(n, 0);
	assert_int_equal(next_of(f->db, NAME), 5);
	assert_once(f->db, 0, 5);
	assert_int_equal(a.last_offset, 8);
	/* the transaction is over: the connection is usable as is */
	assert_true(sqlite3_get_autocommit(f->db));

	/* apply's own LT_ERANGE is apply's error, not retention */
	a.fail_at = 6;
	a.fail_left = 1;
	a.fail_err = LT_ERANGE;
	uint64_t skipped = 99;
	assert_int_equal(poll(f, 10, &a, &n, &skipped), LT_ERANGE);
	assert_int_equal(skipped, 0);
	assert_int_equal(next_of(f->db, NAME), 5);
	assert_once(f->db, 0, 5);

	/* the retry applies every event once */
	while (poll(f, 7, &a, &n, NULL) == LT_OK && n)
		;
	assert_int_equal(next_of(f->db, NAME), 20);
	assert_once(f->db, 0, 20);
}

static void test_resume_after_reopen(void **state)
{
	struct fx *f = *state;
	append_n(f->log, TOPIC, 1, 6, 0);
	struct applier a = plain();
	size_t n;
	assert_int_equal(poll(f, 4, &a, &n, NULL), LT_OK);
	assert_int_equal(n, 4);
	lt_evlog_close(f->log);
	lt_db_close(f->db);
	f->log = open_log(f->events, 0, 0);
	f->db = open_db(f->dbpath);
	assert_non_null(f->log);
	assert_non_null(f->db);
	assert_int_equal(next_of(f->db, NAME), 4);
	append_n(f->log, TOPIC, 7, 3, 0);
	a = plain();
	assert_int_equal(poll(f, 100, &a, &n, NULL), LT_OK);
	assert_int_equal(n, 5); /* 4..8 */
	assert_int_equal(a.calls, 5);
	assert_once(f->db, 0, 9);
	/* the offsets table is the schema.sql one: a negative offset is refused */
	assert_int_not_equal(
		lt_db_exec(f->db, "UPDATE consumer_offsets SET next_offset = -1", NULL), LT_OK);
}

/* A child polls with its own connections and is SIGKILLed inside apply in
 * its second batch. */
static void test_crash_mid_batch(void **state)
{
	struct fx *f = *state;
	append_n(f->log, TOPIC, 1, 30, 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct lt_evlog_opts o;
		lt_evlog_opts_default(&o);
		o.read_only = true;
		struct lt_evlog *l = NULL;
		sqlite3 *db = open_db(f->dbpath);
		if (!db || lt_evlog_open(f->events, &o, &l, NULL, NULL, 0))
			_exit(2);
		struct applier a = plain();
		a.kill_at = 17;
		size_t n;
		lt_consumer_poll(l, db, NAME, TOPIC, 10, apply, &a, &n, NULL); /* 0..9 */
		lt_consumer_poll(l, db, NAME, TOPIC, 10, apply, &a, &n, NULL); /* killed */
		_exit(3);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	/* the first batch survived the crash, the second left nothing */
	assert_int_equal(next_of(f->db, NAME), 10);
	assert_once(f->db, 0, 10);
	struct applier a = plain();
	size_t n;
	assert_int_equal(poll(f, 100, &a, &n, NULL), LT_OK);
	assert_int_equal(n, 20);
	assert_once(f->db, 0, 30);
}

struct racer {
	const char *events, *dbpath;
	struct lt_evlog *log;
	size_t applied;
	enum lt_err err;
};

static void *race_main(void *arg)
{
	struct racer *r = arg;
	sqlite3 *db = open_db(r->dbpath);
	if (!db) {
		r->err = LT_EIO;
		return NULL;
	}
	struct applier a = plain();
	for (;;) {
		size_t n = 0;
		enum lt_err e = lt_consumer_poll(r->log, db, NAME, TOPIC, 3, apply, &a, &n, NULL);
		if (e == LT_EBUSY)
			continue;
		if (e) {
			r->err = e;
			break;
		}
		if (!n)
			break;
		r->applied += n;
	}
	lt_db_close(db);
	return NULL;
}

static void test_two_pollers(void **state)
{
	struct fx *f = *state;
	append_n(f->log, TOPIC, 1, 300, 0);
	struct racer r[2] = {{f->events, f->dbpath, f->log, 0, LT_OK},
			     {f->events, f->dbpath, f->log, 0, LT_OK}};
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, race_main, &r[i]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	assert_int_equal(r[0].err, LT_OK);
	assert_int_equal(r[1].err, LT_OK);
	assert_int_equal(r[0].applied + r[1].applied, 300);
	assert_once(f->db, 0, 300);
	assert_int_equal(next_of(f->db, NAME), 300);
}

static void test_retention_skip(void **state)
{
	struct fx *f = *state;
	lt_evlog_close(f->log);
	/* ~1 KiB records in 4 KiB segments; keep about 8 KiB per topic */
	f->log = open_log(f->events, 4096, 8192);
	assert_non_null(f->log);
	append_n(f->log, TOPIC, 1, 5, 1000);
	struct applier a = plain();
	size_t n;
	uint64_t skipped = 99;
	assert_int_equal(poll(f, 2, &a, &n, &skipped), LT_OK);
	assert_int_equal(n, 2);
	assert_int_equal(skipped, 0);
	append_n(f->log, TOPIC, 6, 25, 1000);
	size_t removed = 0;
	assert_int_equal(lt_evlog_retain(f->log, 1800000000000, &removed), LT_OK);
	assert_true(removed > 0);
	uint64_t start = 0, end = 0;
	assert_int_equal(lt_evlog_range(f->log, TOPIC, &start, &end), LT_OK);
	assert_int_equal(end, 30);
	assert_true(start > 2 && start < end);

	/* a failing batch does not store the skip either */
	a.fail_at = start;
	a.fail_left = 1;
	a.fail_err = LT_EIO;
	assert_int_equal(poll(f, 3, &a, &n, &skipped), LT_EIO);
	assert_int_equal(skipped, 0);
	assert_int_equal(next_of(f->db, NAME), 2);

	assert_int_equal(poll(f, 3, &a, &n, &skipped), LT_OK);
	assert_int_equal(n, 3);
	assert_int_equal(skipped, start - 2);
	assert_int_equal(next_of(f->db, NAME), start + 3);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM facts WHERE off >= 2 AND off < (SELECT "
				    "min(off) FROM facts WHERE off >= 2)"),
			 0);
	/* the rest, with no further skip */
	while (poll(f, 100, &a, &n, &skipped) == LT_OK && n)
		assert_int_equal(skipped, 0);
	assert_int_equal(next_of(f->db, NAME), 30);
	assert_int_equal(facts(f->db), (int64_t)(2 + (30 - start)));

	/* a consumer set below the start by hand skips to the start */
	assert_int_equal(lt_consumer_set(f->db, "late", TOPIC, 1, 1), LT_OK);
	struct applier b = plain();
	assert_int_equal(lt_consumer_poll(f->log, f->db, "late", TOPIC, 1, apply, &b, &n, &skipped),
			 LT_OK);
	assert_int_equal(n, 1);
	assert_int_equal(skipped, start - 1);
	assert_int_equal(next_of(f->db, "late"), start + 1);
}

static enum lt_err collect(void *arg, const struct lt_consumer_row *r)
{
	char *out = arg;
	size_t len = strlen(out);
	snprintf(out + len, 512 - len, "%s/%s=%llu;", r->name, r->topic,
		 (unsigned long long)r->next);
	return LT_OK;
}

static void test_get_set_list(void **state)
{
	struct fx *f = *state;
	char out[512] = "";
	/* no table yet: list is empty and get creates nothing */
	uint64_t next;
	assert_int_equal(lt_consumer_get(f->db, NAME, TOPIC, &next), LT_ENOTFOUND);
	assert_int_equal(lt_consumer_list(f->db, collect, out), LT_OK);
	assert_string_equal(out, "");
	assert_int_equal(q64(f->db, "SELECT count(*) FROM sqlite_master WHERE name = "
				    "'consumer_offsets'"),
			 0);
	assert_int_equal(lt_consumer_set(f->db, "b", "audit", 5, 1000), LT_OK);
	assert_int_equal(lt_consumer_set(f->db, "a", TOPIC, 3, 1000), LT_OK);
	assert_int_equal(lt_consumer_set(f->db, "a", TOPIC, 9, 2000), LT_OK);
	assert_int_equal(lt_consumer_get(f->db, "a", TOPIC, &next), LT_OK);
	assert_int_equal(next, 9);
	assert_int_equal(lt_consumer_list(f->db, collect, out), LT_OK);
	assert_string_equal(out, "a/token-usage=9;b/audit=5;");
	assert_int_equal(q64(f->db, "SELECT updated_at FROM consumer_offsets WHERE consumer = 'a'"),
			 2000);
	/* a set inside the caller's transaction rolls back with it */
	assert_int_equal(lt_db_exec(f->db, "BEGIN", NULL), LT_OK);
	assert_int_equal(lt_consumer_set(f->db, "a", TOPIC, 1, 3000), LT_OK);
	assert_int_equal(lt_db_exec(f->db, "ROLLBACK", NULL), LT_OK);
	assert_int_equal(lt_consumer_get(f->db, "a", TOPIC, &next), LT_OK);
	assert_int_equal(next, 9);
}

static void test_args(void **state)
{
	struct fx *f = *state;
	struct applier a = plain();
	size_t n = 5;
	uint64_t s = 5, next;
	append_n(f->log, TOPIC, 1, 2, 0);
	char long_name[LT_CONSUMER_NAME_MAX + 2];
	memset(long_name, 'a', sizeof long_name - 1);
	long_name[sizeof long_name - 1] = '\0';
	const char *bad_names[] = {"", "Upper", "a b", ".", "..", "x/y", long_name, NULL};
	for (size_t i = 0; bad_names[i]; i++) {
		assert_false(lt_consumer_name_ok(bad_names[i]));
		assert_int_equal(
			lt_consumer_poll(f->log, f->db, bad_names[i], TOPIC, 1, apply, &a, &n, &s),
			LT_EINVAL);
		assert_int_equal(lt_consumer_set(f->db, bad_names[i], TOPIC, 0, 0), LT_EINVAL);
		assert_int_equal(lt_consumer_get(f->db, bad_names[i], TOPIC, &next), LT_EINVAL);
	}
	long_name[LT_CONSUMER_NAME_MAX] = '\0';
	assert_true(lt_consumer_name_ok(long_name));
	assert_true(lt_consumer_name_ok("analytics.v2_x-1"));
	assert_int_equal(n, 0);
	assert_int_equal(s, 0);
	assert_int_equal(poll(f, 0, &a, &n, NULL), LT_EINVAL);
	assert_int_equal(poll(f, LT_CONSUMER_BATCH_MAX + 1, &a, &n, NULL), LT_EINVAL);
	assert_int_equal(poll(f, LT_CONSUMER_BATCH_MAX, &a, &n, NULL), LT_OK);
	assert_int_equal(n, 2);
	assert_int_equal(lt_consumer_poll(f->log, f->db, NAME, "Bad Topic", 1, apply, &a, &n, NULL),
			 LT_EINVAL);
	assert_int_equal(lt_consumer_poll(NULL, f->db, NAME, TOPIC, 1, apply, &a, &n, NULL),
			 LT_EINVAL);
	assert_int_equal(lt_consumer_poll(f->log, NULL, NAME, TOPIC, 1, apply, &a, &n, NULL),
			 LT_EINVAL);
	assert_int_equal(lt_consumer_poll(f->log, f->db, NAME, TOPIC, 1, NULL, &a, &n, NULL),
			 LT_EINVAL);
	assert_int_equal(lt_consumer_set(f->db, NAME, TOPIC, (uint64_t)INT64_MAX + 1, 0),
			 LT_EINVAL);
	/* the caller's open transaction is refused, and left open */
	assert_int_equal(lt_db_exec(f->db, "BEGIN", NULL), LT_OK);
	assert_int_equal(poll(f, 1, &a, &n, NULL), LT_EINVAL);
	assert_false(sqlite3_get_autocommit(f->db));
	assert_int_equal(lt_db_exec(f->db, "ROLLBACK", NULL), LT_OK);
	/* an offset past the end (a log that was reset) applies nothing */
	assert_int_equal(lt_consumer_set(f->db, NAME, TOPIC, 50, 0), LT_OK);
	assert_int_equal(poll(f, 10, &a, &n, NULL), LT_OK);
	assert_int_equal(n, 0);
	assert_int_equal(next_of(f->db, NAME), 50);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fail_mid_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resume_after_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_mid_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_pollers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_skip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_set_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_args, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
