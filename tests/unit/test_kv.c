/*
 * test_kv.c — src/store/kv.c: the LMDB environment for buckets/ opened in a
 * temporary directory: creation mode, stat, sync, reader check, read-only
 * reopening, and clean failures for missing directories.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/kv.h"
#include "testutil.h"

#define MIB (UINT64_C(1) << 20)

struct fixture {
	char dir[TU_PATH_MAX];
	char env[TU_PATH_MAX]; /* <dir>/buckets, not created yet */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	tu_tmpdir(f->dir);
	tu_path(f->env, f->dir, "buckets");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	tu_rmtree(f->dir);
	free(f);
	return 0;
}

static void test_open_stat_sync(void **state)
{
	struct fixture *f = *state;
	struct lt_kv *kv = NULL;
	char err[LT_KV_ERR_MAX] = "";
	assert_int_equal(lt_kv_open(f->env, 4 * MIB, false, &kv, err), LT_OK);
	assert_non_null(kv);

	struct stat st;
	assert_int_equal(stat(f->env, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	char p[TU_PATH_MAX];
	assert_int_equal(access(tu_path(p, f->env, "data.mdb"), F_OK), 0);
	assert_int_equal(access(tu_path(p, f->env, "lock.mdb"), F_OK), 0);

	struct lt_kv_stat ks;
	memset(&ks, 0xFF, sizeof ks);
	assert_int_equal(lt_kv_stat(kv, &ks), LT_OK);
	assert_int_equal(ks.entries, 0);
	assert_int_equal(ks.map_size, 4 * MIB);
	assert_true(ks.page_size >= 512);
	assert_true(ks.used_bytes >= ks.page_size);
	assert_true(ks.used_bytes <= ks.map_size);
	assert_int_equal(ks.depth, 0);
	assert_true(ks.max_readers >= 1024);
	assert_true(ks.readers <= ks.max_readers);

	assert_int_equal(lt_kv_sync(kv), LT_OK);
	int dead = -1;
	assert_int_equal(lt_kv_reader_check(kv, &dead), LT_OK);
	assert_int_equal(dead, 0);
	lt_kv_close(kv);
	lt_kv_close(NULL); /* harmless */

	/* reopen read-only: same numbers, sync is a no-op */
	assert_int_equal(lt_kv_open(f->env, 4 * MIB, true, &kv, err), LT_OK);
	assert_int_equal(lt_kv_stat(kv, &ks), LT_OK);
	assert_int_equal(ks.entries, 0);
	assert_int_equal(lt_kv_sync(kv), LT_OK);
	assert_int_equal(lt_kv_reader_check(kv, &dead), LT_OK);
	lt_kv_close(kv);

	/* reopen read-write in an existing directory */
	assert_int_equal(lt_kv_open(f->env, 4 * MIB, false, &kv, err), LT_OK);
	lt_kv_close(kv);
}

static void test_readonly_missing(void **state)
{
	struct fixture *f = *state;
	struct lt_kv *kv = (struct lt_kv *)&kv;
	char err[LT_KV_ERR_MAX] = "";
	enum lt_err e = lt_kv_open(f->env, 4 * MIB, true, &kv, err);
	assert_int_not_equal(e, LT_OK);
	assert_null(kv);
	assert_non_null(strstr(err, f->env));
	assert_non_null(strstr(err, "mdb_env_open"));
	/* and nothing was created */
	assert_int_equal(access(f->env, F_OK), -1);
}

static void test_readonly_empty_dir(void **state)
{
	struct fixture *f = *state;
	struct lt_kv *kv = (struct lt_kv *)&kv;
	char err[LT_KV_ERR_MAX] = "";
	assert_int_equal(mkdir(f->env, 0700), 0);
	assert_int_not_equal(lt_kv_open(f->env, 4 * MIB, true, &kv, err), LT_OK);
	assert_null(kv);
	assert_true(strlen(err) > 0);
}

static void test_create_missing_parent(void **state)
{
	struct fixture *f = *state;
	struct lt_kv *kv = (struct lt_kv *)&kv;
	char err[LT_KV_ERR_MAX] = "", p[TU_PATH_MAX];
	assert_int_equal(
		lt_kv_open(tu_path(p, f->dir, "no/such/buckets"), 4 * MIB, false, &kv, err),
		LT_EIO);
	assert_null(kv);
	assert_non_null(strstr(err, "mkdir"));
}

/* Counters are shared between two handles on one environment (as leakyd
 * and leakyctl share it) and survive reopening. */
static void test_counters(void **state)
{
	struct fixture *f = *state;
	struct lt_kv *a, *b;
	char err[LT_KV_ERR_MAX];
	uint64_t v = 99;
	assert_int_equal(lt_kv_open(f->env, 4 * MIB, false, &a, err), LT_OK);
	assert_int_equal(lt_kv_counter_get(a, "identity_gen", &v), LT_OK);
	assert_int_equal(v, 0);
	assert_int_equal(lt_kv_counter_bump(a, "identity_gen", &v), LT_OK);
	assert_int_equal(v, 1);
	assert_int_equal(lt_kv_open(f->env, 4 * MIB, true, &b, err), LT_OK);
	assert_int_equal(lt_kv_counter_get(b, "identity_gen", &v), LT_OK);
	assert_int_equal(v, 1);
	assert_int_equal(lt_kv_counter_bump(b, "identity_gen", &v), LT_EDENIED);
	assert_int_equal(lt_kv_counter_bump(a, "identity_gen", &v), LT_OK);
	assert_int_equal(lt_kv_counter_get(b, "identity_gen", &v), LT_OK);
	assert_int_equal(v, 2);
	assert_int_equal(lt_kv_counter_get(b, "other", &v), LT_OK);
	assert_int_equal(v, 0);
	lt_kv_close(b);
	lt_kv_close(a);
	assert_int_equal(lt_kv_open(f->env, 4 * MIB, false, &a, err), LT_OK);
	assert_int_equal(lt_kv_counter_get(a, "identity_gen", &v), LT_OK);
	assert_int_equal(v, 2);
	lt_kv_close(a);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		T(test_open_stat_sync),
		T(test_counters),
		T(test_readonly_missing),
		T(test_readonly_empty_dir),
		T(test_create_missing_parent),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
