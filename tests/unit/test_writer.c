/*
 * test_writer.c — src/store/writer.c on a real SQLite file: many threads
 * writing at once all commit exactly once; a failing write rolls back alone
 * inside its group; a failed COMMIT fails the whole group; a full queue is
 * LT_EBUSY at once; stop drains what is queued, then refuses with
 * LT_ESTOPPED.
 *
 * To hold the writer still, a "blocker" write waits on a semaphore the test
 * posts; the test waits for queue depth with tu_wait_until (a condition, not
 * a timing assertion).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <semaphore.h>
#include <sqlite3.h>

#include "conf/config.h"
#include "store/db.h"
#include "store/writer.h"
#include "testutil.h"

#define MAX_GROUPS 64

struct fixture {
	char dir[TU_PATH_MAX];
	sqlite3 *db;
	struct lt_writer w;
	pthread_mutex_t glock; /* guards groups, written on the writer thread */
	size_t ngroups;
	size_t groups[MAX_GROUPS];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	char path[TU_PATH_MAX], err[LT_DB_ERR_MAX] = "";
	if (!f)
		return -1;
	tu_tmpdir(f->dir);
	if (lt_db_open(tu_path(path, f->dir, "leaky.db"), true, false, LT_SYNC_NORMAL, 5000, &f->db,
		       err) ||
	    lt_db_exec(f->db,
		       "CREATE TABLE t (id INTEGER PRIMARY KEY, who INTEGER NOT NULL);"
		       "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
		       "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL "
		       " REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);",
		       err)) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	pthread_mutex_init(&f->glock, NULL);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	lt_writer_release(&f->w); /* stops it first, unless the test did */
	lt_db_close(f->db);
	pthread_mutex_destroy(&f->glock);
	tu_rmtree(f->dir);
	free(f);
	return 0;
}

static void on_group(void *arg, size_t n)
{
	struct fixture *f = arg;
	pthread_mutex_lock(&f->glock);
	if (f->ngroups < MAX_GROUPS)
		f->groups[f->ngroups] = n;
	f->ngroups++;
	pthread_mutex_unlock(&f->glock);
}

static void start(struct fixture *f, size_t queue, size_t batch)
{
	assert_int_equal(lt_writer_start(&f->w, f->db, queue, batch, on_group, f), LT_OK);
}

/* ---- write functions (run on the writer thread) ---- */

struct row {
	int64_t id, who;
	enum lt_err then; /* returned after the insert */
};

static enum lt_err insert_row(sqlite3 *db, void *arg)
{
	struct row *r = arg;
	sqlite3_stmt *st = NULL;
	enum lt_err e = LT_EIO;
	if (sqlite3_prepare_v2(db, "INSERT INTO t (id, who) VALUES (?1, ?2)", -1, &st, NULL) ==
		    SQLITE_OK &&
	    sqlite3_bind_int64(st, 1, r->id) == SQLITE_OK &&
	    sqlite3_bind_int64(st, 2, r->who) == SQLITE_OK && sqlite3_step(st) == SQLITE_DONE)
		e = r->then;
	sqlite3_finalize(st);
	return e;
}

/* Inserts a child whose parent does not exist: fine until COMMIT. */
static enum lt_err insert_orphan(sqlite3 *db, void *arg)
{
	(void)arg;
	return lt_db_exec(db, "INSERT INTO child (id, parent_id) VALUES (1, 999)", NULL);
}

struct blocker {
	sem_t started, release;
	struct row row;
};

static enum lt_err block(sqlite3 *db, void *arg)
{
	struct blocker *b = arg;
	sem_post(&b->started);
	while (sem_wait(&b->release) != 0)
		;
	return insert_row(db, &b->row);
}

/* ---- submitting from threads ---- */

struct submit {
	struct lt_writer *w;
	lt_write_fn fn;
	void *arg;
	enum lt_err result;
	pthread_t th;
};

static void *submit_main(void *arg)
{
	struct submit *s = arg;
	s->result = lt_writer_run(s->w, s->fn, s->arg);
	return NULL;
}

static void submit_start(struct submit *s, struct lt_writer *w, lt_write_fn fn, void *arg)
{
	s->w = w;
	s->fn = fn;
	s->arg = arg;
	s->result = (enum lt_err) - 1;
	assert_int_equal(pthread_create(&s->th, NULL, submit_main, s), 0);
}

struct depth_wait {
	struct lt_writer *w;
	size_t depth;
};

static bool depth_reached(void *arg)
{
	struct depth_wait *d = arg;
	struct lt_writer_stats st;
	lt_writer_get_stats(d->w, &st);
	return st.depth >= d->depth;
}

static void wait_depth(struct lt_writer *w, size_t depth)
{
	struct depth_wait d = {w, depth};
	assert_true(tu_wait_until(depth_reached, &d));
}

/* Submit a blocker from a thread and wait until the writer is running it. */
static void hold_writer(struct fixture *f, struct blocker *b, struct submit *s, int64_t id)
{
	sem_init(&b->started, 0, 0);
	sem_init(&b->release, 0, 0);
	b->row = (struct row){id, -1, LT_OK};
	submit_start(s, &f->w, block, b);
	while (sem_wait(&b->started) != 0)
		;
}

static void release_writer(struct blocker *b, struct submit *s)
{
	sem_post(&b->release);
	pthread_join(s->th, NULL);
	assert_int_equal(s->result, LT_OK);
	sem_destroy(&b->started);
	sem_destroy(&b->release);
}

static int64_t count_rows(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* ---- tests ---- */

#define THREADS 16
#define PER_THREAD 500

struct hammer {
	struct lt_writer *w;
	int who;
	int failures;
	pthread_t th;
};

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	for (int i = 0; i < PER_THREAD; i++) {
		struct row r = {(int64_t)h->who * PER_THREAD + i, h->who, LT_OK};
		if (lt_writer_run(h->w, insert_row, &r) != LT_OK)
			h->failures++;
	}
	return NULL;
}

static void test_concurrent_writes(void **state)
{
	struct fixture *f = *state;
	start(f, 64, 32);
	struct hammer h[THREADS];
	for (int i = 0; i < THREADS; i++) {
		h[i] = (struct hammer){.w = &f->w, .who = i};
		assert_int_equal(pthread_create(&h[i].th, NULL, hammer_main, &h[i]), 0);
	}
	int failures = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(h[i].th, NULL);
		failures += h[i].failures;
	}
	assert_int_equal(failures, 0);

	struct lt_writer_stats st;
	lt_writer_get_stats(&f->w, &st);
	lt_writer_stop(&f->w);

	const int64_t total = THREADS * PER_THREAD;
	assert_int_equal(count_rows(f->db, "SELECT count(*) FROM t"), total);
	assert_int_equal(count_rows(f->db, "SELECT count(DISTINCT id) FROM t"), total);
	assert_int_equal(count_rows(f->db, "SELECT min(id) FROM t"), 0);
	assert_int_equal(count_rows(f->db, "SELECT max(id) FROM t"), total - 1);
	/* every row is where its writer put it */
	assert_int_equal(count_rows(f->db, "SELECT count(*) FROM t WHERE who != id / 500"), 0);
	for (int i = 0; i < THREADS; i++) {
		char sql[128];
		snprintf(sql, sizeof sql, "SELECT count(*) FROM t WHERE who = %d", i);
		assert_int_equal(count_rows(f->db, sql), PER_THREAD);
	}

	assert_int_equal(st.writes, (uint64_t)total);
	assert_int_equal(st.failed, 0);
	assert_int_equal(st.depth, 0);
	assert_true(st.commits >= 1 && st.commits <= (uint64_t)total);
	assert_true(st.max_group >= 1 && st.max_group <= 32);
	/* on_group saw every commit, and the groups add up */
	assert_int_equal(f->ngroups, st.commits);
}

static void test_failed_write_rolls_back_alone(void **state)
{
	struct fixture *f = *state;
	start(f, 16, 16);
	struct blocker b;
	struct submit hold, s[3];
	hold_writer(f, &b, &hold, 1000);

	struct row good1 = {1, 0, LT_OK}, bad = {2, 0, LT_EINVAL}, good2 = {3, 0, LT_OK};
	submit_start(&s[0], &f->w, insert_row, &good1);
	submit_start(&s[1], &f->w, insert_row, &bad);
	submit_start(&s[2], &f->w, insert_row, &good2);
	wait_depth(&f->w, 3);
	release_writer(&b, &hold);
	for (int i = 0; i < 3; i++)
		pthread_join(s[i].th, NULL);

	assert_int_equal(s[0].result, LT_OK);
	assert_int_equal(s[1].result, LT_EINVAL); /* fn's own error comes back */
	assert_int_equal(s[2].result, LT_OK);
	assert_int_equal(count_rows(f->db, "SELECT count(*) FROM t WHERE id IN (1, 3, 1000)"), 3);
	assert_int_equal(count_rows(f->db, "SELECT count(*) FROM t WHERE id = 2"), 0);

	/* the blocker alone, then the three together in one transaction */
	assert_int_equal(f->ngroups, 2);
	assert_int_equal(f->groups[0], 1);
	assert_int_equal(f->groups[1], 3);
	struct lt_writer_stats st;
	lt_writer_get_stats(&f->w, &st);
	assert_int_equal(st.commits, 2);
	assert_int_equal(st.writes, 3);
	assert_int_equal(st.failed, 1);
	assert_int_equal(st.max_group, 3);
}

static void test_failed_commit_fails_group(void **state)
{
	struct fixture *f = *state;
	start(f, 16, 16);
	struct blocker b;
	struct submit hold, s[2];
	hold_writer(f, &b, &hold, 1000);
	struct row good = {1, 0, LT_OK};
	submit_start(&s[0], &f->w, insert_row, &good);
	submit_start(&s[1], &f->w, insert_orphan, NULL);
	wait_depth(&f->w, 2);
	release_writer(&b, &hold);
	pthread_join(s[0].th, NULL);
	pthread_join(s[1].th, NULL);

	/* the deferred foreign key fails COMMIT: both writes of the group fail */
	assert_int_equal(s[0].result, LT_EIO);
	assert_int_equal(s[1].result, LT_EIO);
	assert_int_equal(count_rows(f->db, "SELECT count(*) FROM t WHERE id = 1"), 0);
	assert_int_equal(count_rows(f->db, "SELECT count(*) FROM child"), 0);
	assert_int_equal(count_rows(f->db, "SELECT count(*) FROM t WHERE id = 1000"), 1);
	struct lt_writer_stats st;
	lt_writer_get_stats(&f->w, &st);
	assert_int_equal(st.failed, 2);
	assert_int_equal(st.commits, 1);

	/* and the writer carries on */
	struct row after = {2, 0, LT_OK};
	assert_int_equal(lt_writer_run(&f->w, insert_row, &after), LT_OK);
	assert_int_equal(count_rows(f->db, "SELECT count(*) FROM t WHERE id = 2"), 1);
}

static void test_queue_full(void **state)
{
	struct fixture *f = *state;
	start(f, 2, 8);
	struct blocker b;
	struct submit hold, s[2];
	hold_writer(f, &b, &hold, 1000); /* taken off the queue: depth 0 */
	struct row r1 = {1, 0, LT_OK}, r2 = {2, 0, LT_OK}, r3 = {3, 0, LT_OK};
	submit_start(&s[0], &f->w, insert_row, &r1);
	submit_start(&s[1], &f->w, insert_row, &r2);
	wait_depth(&f->w, 2);

	/* full: refused at once, without waiting */
	assert_int_equal(lt_writer_run(&f->w, insert_row, &r3), LT_EBUSY);
	assert_int_equal(lt_writer_run(&f->w, insert_row, &r3), LT_EBUSY);

	release_writer(&b, &hold);
	pthread_join(s[0].th, NULL);
	pthread_join(s[1].th, NULL);
	assert_int_equal(s[0].result, LT_OK);
	assert_int_equal(s[1].result, LT_OK);
	assert_int_equal(count_rows(f->db, "SELECT count(*) FROM t WHERE id = 3"), 0);
	/* room again */
	assert_int_equal(lt_writer_run(&f->w, insert_row, &r3), LT_OK);
	assert_int_equal(count_rows(f->db, "SELECT count(*) FROM t"), 4);
}

static bool is_stopping(void *arg)
{
	struct lt_writer *w = arg;
	pthread_mutex_lock(&w->lock);
	bool s = w->stopping;
	pthread_mutex_unlock(&w->lock);
	return s;
}

static void *stop_main(void *arg)
{
	lt_writer_stop(arg);
	return NULL;
}

static void test_stop_drains_then_refuses(void **state)
{
	struct fixture *f = *state;
	start(f, 16, 2); /* small batch: the drain takes several groups */
	struct blocker b;
	struct submit hold, s[5];
	struct row rows[5];
	hold_writer(f, &b, &hold, 1000);
	for (int i = 0; i < 5; i++) {
		rows[i] = (struct row){i + 1, 0, LT_OK};
		submit_start(&s[i], &f->w, insert_row, &rows[i]);
	}
	wait_depth(&f->w, 5);

	pthread_t stopper;
	assert_int_equal(pthread_create(&stopper, NULL, stop_main, &f->w), 0);
	assert_true(tu_wait_until(is_stopping, &f->w));
	/* while stopping: refused */
	struct row late = {99, 0, LT_OK};
	assert_int_equal(lt_writer_run(&f->w, insert_row, &late), LT_ESTOPPED);

	release_writer(&b, &hold);
	for (int i = 0; i < 5; i++) {
		pthread_join(s[i].th, NULL);
		assert_int_equal(s[i].result, LT_OK);
	}
	pthread_join(stopper, NULL);
	assert_int_equal(count_rows(f->db, "SELECT count(*) FROM t"), 6);
	assert_int_equal(count_rows(f->db, "SELECT count(*) FROM t WHERE id = 99"), 0);
	assert_int_equal(f->ngroups, 4); /* 1, then 2 + 2 + 1 */

	/* after stop: refused; stopping again is harmless */
	assert_int_equal(lt_writer_run(&f->w, insert_row, &late), LT_ESTOPPED);
	lt_writer_stop(&f->w);
	assert_int_equal(lt_writer_run(&f->w, insert_row, &late), LT_ESTOPPED);
	struct lt_writer_stats st;
	lt_writer_get_stats(&f->w, &st);
	assert_int_equal(st.depth, 0);
	assert_int_equal(st.writes, 6);

	/* released: still refused, and releasing again is harmless */
	lt_writer_release(&f->w);
	assert_int_equal(lt_writer_run(&f->w, insert_row, &late), LT_ESTOPPED);
	lt_writer_release(&f->w);
}

static void test_never_started(void **state)
{
	struct fixture *f = *state;
	struct row r = {1, 0, LT_OK};
	/* a zeroed writer refuses writes; stop and release do nothing */
	assert_int_equal(lt_writer_run(&f->w, insert_row, &r), LT_ESTOPPED);
	lt_writer_stop(&f->w);
	lt_writer_release(&f->w);
	struct lt_writer_stats st;
	lt_writer_get_stats(&f->w, &st);
	assert_int_equal(st.depth, 0);
	assert_int_equal(st.writes, 0);
	assert_int_equal(count_rows(f->db, "SELECT count(*) FROM t"), 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		T(test_concurrent_writes),
		T(test_failed_write_rolls_back_alone),
		T(test_failed_commit_fails_group),
		T(test_queue_full),
		T(test_stop_drains_then_refuses),
		T(test_never_started),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
