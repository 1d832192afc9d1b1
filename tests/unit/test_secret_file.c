/*
 * test_secret_file.c — src/auth/secret_file.c: create-or-load, modes,
 * refusals (permissions, size, symlink, unsafe directory), atomic text
 * writes, and concurrent creators agreeing on one secret.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "auth/secret_file.h"
#include "testutil.h"

static int mode_of(const char *path)
{
	struct stat st;
	assert_int_equal(lstat(path, &st), 0);
	return (int)(st.st_mode & 07777);
}

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Only `expect` entries in dir: no temporary files left behind. */
static void expect_entries(const char *dir, int expect)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	assert_int_equal(n, expect);
}

static void test_create_then_load(void **state)
{
	(void)state;
	char tmp[TU_PATH_MAX], var[TU_PATH_MAX], dir[TU_PATH_MAX], path[TU_PATH_MAX];
	char err[LT_SECRET_ERR_MAX] = "";
	unsigned char a[32], b[32];
	bool created = false;
	tu_tmpdir(tmp);
	tu_path(var, tmp, "var");
	tu_path(dir, var, "secrets");
	tu_path(path, dir, "apikey-pepper");

	/* var/ and var/secrets/ do not exist yet */
	assert_int_equal(lt_secret_file_load_or_create(path, 32, a, &created, err), LT_OK);
	assert_true(created);
	assert_false(all_zero(a, 32));
	assert_int_equal(mode_of(dir), 0700);
	assert_int_equal(mode_of(var), 0700);
	assert_int_equal(mode_of(path), 0600);
	expect_entries(dir, 1);
	size_t len;
	char *raw = tu_read_file(path, &len);
	assert_int_equal(len, 32);
	assert_memory_equal(raw, a, 32);
	free(raw);

	assert_int_equal(lt_secret_file_load_or_create(path, 32, b, &created, err), LT_OK);
	assert_false(created);
	assert_memory_equal(a, b, 32);

	/* a second secret in the same directory is independent */
	char path2[TU_PATH_MAX];
	tu_path(path2, dir, "other");
	assert_int_equal(lt_secret_file_load_or_create(path2, 32, b, &created, err), LT_OK);
	assert_true(created);
	assert_memory_not_equal(a, b, 32);
	tu_rmtree(tmp);
}

static void test_refusals(void **state)
{
	(void)state;
	char tmp[TU_PATH_MAX], path[TU_PATH_MAX], lnk[TU_PATH_MAX];
	char err[LT_SECRET_ERR_MAX];
	unsigned char a[32], b[64]; /* b: room for the 33-byte attempt */
	bool created;
	tu_tmpdir(tmp);
	tu_path(path, tmp, "pepper");
	assert_int_equal(lt_secret_file_load_or_create(path, 32, a, &created, err), LT_OK);

	/* group or other bits, however few */
	static const int bad_modes[] = {0640, 0604, 0620, 0601, 0610, 0660, 0644};
	for (size_t i = 0; i < sizeof bad_modes / sizeof bad_modes[0]; i++) {
		assert_int_equal(chmod(path, (mode_t)bad_modes[i]), 0);
		memset(b, 0xaa, sizeof b);
		err[0] = '\0';
		assert_int_equal(lt_secret_file_load_or_create(path, 32, b, &created, err),
				 LT_EDENIED);
		assert_false(created);
		assert_true(all_zero(b, 32));
		assert_non_null(strstr(err, "group or others"));
		assert_non_null(strstr(err, path));
	}
	/* 0400 is fine (owner read only) */
	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(lt_secret_file_load_or_create(path, 32, b, &created, err), LT_OK);
	assert_memory_equal(a, b, 32);
	assert_int_equal(chmod(path, 0600), 0);

	/* wrong size, both ways; the file is left alone */
	assert_int_equal(lt_secret_file_load_or_create(path, 31, b, &created, err), LT_ECORRUPT);
	assert_non_null(strstr(err, "wrong size"));
	assert_true(all_zero(b, 31));
	assert_int_equal(lt_secret_file_load_or_create(path, 33, b, &created, err), LT_ECORRUPT);
	size_t len;
	char *raw = tu_read_file(path, &len);
	assert_int_equal(len, 32);
	assert_memory_equal(raw, a, 32);
	free(raw);
	char shortp[TU_PATH_MAX];
	tu_path(shortp, tmp, "short");
	tu_write_file(shortp, "abc", 3);
	chmod(shortp, 0600);
	assert_int_equal(lt_secret_file_load_or_create(shortp, 32, b, &created, err), LT_ECORRUPT);
	char emptyp[TU_PATH_MAX];
	tu_path(emptyp, tmp, "empty");
	tu_write_file(emptyp, "", 0);
	chmod(emptyp, 0600);
	assert_int_equal(lt_secret_file_load_or_create(emptyp, 32, b, &created, err), LT_ECORRUPT);

	/* a symbolic link, even to a good file */
	tu_path(lnk, tmp, "link");
	assert_int_equal(symlink(path, lnk), 0);
	assert_int_equal(lt_secret_file_load_or_create(lnk, 32, b, &created, err), LT_EDENIED);
	assert_non_null(strstr(err, "symbolic link"));

	/* a directory where the file should be */
	char sub[TU_PATH_MAX];
	tu_path(sub, tmp, "sub");
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(lt_secret_file_load_or_create(sub, 32, b, &created, err), LT_EDENIED);

	/* bad sizes and paths */
	assert_int_equal(lt_secret_file_load_or_create(path, 0, b, &created, err), LT_EINVAL);
	assert_int_equal(lt_secret_file_load_or_create("", 32, b, &created, err), LT_EINVAL);

	/* a directory others may write to */
	assert_int_equal(chmod(tmp, 0770), 0);
	assert_int_equal(lt_secret_file_load_or_create(path, 32, b, &created, err), LT_EDENIED);
	assert_non_null(strstr(err, "directory"));
	assert_int_equal(chmod(tmp, 0700), 0);
	tu_rmtree(tmp);
}

static void test_text_and_read(void **state)
{
	(void)state;
	char tmp[TU_PATH_MAX], dir[TU_PATH_MAX], path[TU_PATH_MAX];
	char err[LT_SECRET_ERR_MAX];
	char buf[64];
	size_t len;
	tu_tmpdir(tmp);
	tu_path(dir, tmp, "secrets");
	tu_path(path, dir, "initial-admin");

	assert_int_equal(lt_secret_file_read(path, buf, sizeof buf, &len, err), LT_ENOTFOUND);
	assert_int_equal(lt_secret_file_write_text(path, "Tr0ub4dor&3-first\n", err), LT_OK);
	assert_int_equal(mode_of(dir), 0700);
	assert_int_equal(mode_of(path), 0600);
	assert_int_equal(lt_secret_file_read(path, buf, sizeof buf, &len, err), LT_OK);
	assert_int_equal(len, 18);
	assert_memory_equal(buf, "Tr0ub4dor&3-first\n", 18);

	/* text writes replace atomically */
	assert_int_equal(lt_secret_file_write_text(path, "second", err), LT_OK);
	assert_int_equal(lt_secret_file_read(path, buf, sizeof buf, &len, err), LT_OK);
	assert_int_equal(len, 6);
	assert_memory_equal(buf, "second", 6);
	expect_entries(dir, 1);
	assert_int_equal(mode_of(path), 0600);

	/* create-only writes refuse an existing file and leave no temporary */
	assert_int_equal(lt_secret_file_write(path, "x", 1, false, err), LT_EEXIST);
	expect_entries(dir, 1);

	/* bounded reads; errors never quote the content */
	assert_int_equal(lt_secret_file_read(path, buf, 5, &len, err), LT_ETOOBIG);
	assert_null(strstr(err, "second"));
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(lt_secret_file_read(path, buf, sizeof buf, &len, err), LT_EDENIED);
	assert_null(strstr(err, "second"));
	assert_int_equal(len, 0);
	tu_rmtree(tmp);
}

/* ---- concurrent creators ---- */

struct creator {
	const char *path;
	unsigned char out[32];
	bool created;
	enum lt_err e;
	pthread_barrier_t *start;
};

static void *creator_main(void *arg)
{
	struct creator *c = arg;
	char err[LT_SECRET_ERR_MAX];
	pthread_barrier_wait(c->start);
	c->e = lt_secret_file_load_or_create(c->path, sizeof c->out, c->out, &c->created, err);
	return NULL;
}

static void test_concurrent_create(void **state)
{
	(void)state;
	enum { N = 8 };
	for (int round = 0; round < 20; round++) {
		char tmp[TU_PATH_MAX], path[TU_PATH_MAX];
		tu_tmpdir(tmp);
		tu_path(path, tmp, "var/secrets/pepper");
		pthread_barrier_t start;
		pthread_barrier_init(&start, NULL, N);
		struct creator c[N];
		pthread_t th[N];
		for (int i = 0; i < N; i++) {
			c[i] = (struct creator){.path = path, .start = &start};
			assert_int_equal(pthread_create(&th[i], NULL, creator_main, &c[i]), 0);
		}
		int created = 0;
		for (int i = 0; i < N; i++) {
			pthread_join(th[i], NULL);
			assert_int_equal(c[i].e, LT_OK);
			created += c[i].created;
			assert_memory_equal(c[i].out, c[0].out, 32);
		}
		assert_int_equal(created, 1);
		char dir[TU_PATH_MAX];
		tu_path(dir, tmp, "var/secrets");
		expect_entries(dir, 1);
		pthread_barrier_destroy(&start);
		tu_rmtree(tmp);
	}
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	umask(022);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_then_load),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_text_and_read),
		cmocka_unit_test(test_concurrent_create),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
