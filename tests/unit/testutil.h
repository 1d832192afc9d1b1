/*
 * testutil.h — small helpers shared by the unit tests (header-only, static).
 *
 * Temporary directories: tu_tmpdir() makes a fresh directory with mkdtemp
 * under $TMPDIR (or /tmp); tu_rmtree() removes it and everything inside.
 * Files: tu_write_file() writes a whole file, tu_read_file() reads one into a
 * malloc'd NUL-terminated buffer the caller frees.
 * Waiting: tu_wait_until() polls a predicate with short pauses, up to a
 * generous deadline, for tests that must wait for another thread to reach a
 * state.  It never asserts anything about how long that took.
 *
 * These helpers abort() on setup failures that are not what a test checks.
 */
#ifndef LT_TESTS_TESTUTIL_H
#define LT_TESTS_TESTUTIL_H

#include <errno.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TU_PATH_MAX 4096

static inline void tu_tmpdir(char out[TU_PATH_MAX])
{
	const char *base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	int n = snprintf(out, TU_PATH_MAX, "%s/leaky-unit-XXXXXX", base);
	if (n < 0 || n >= TU_PATH_MAX || !mkdtemp(out)) {
		perror("mkdtemp");
		abort();
	}
}

static inline void tu_rmtree(const char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		char sub[TU_PATH_MAX];
		while ((e = readdir(d)) != NULL) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			int n = snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
			if (n < 0 || n >= (int)sizeof sub)
				continue;
			struct stat st;
			if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
				tu_rmtree(sub);
			else
				unlink(sub);
		}
		closedir(d);
	}
	rmdir(dir);
}

/* dir + "/" + name into out (TU_PATH_MAX bytes). */
static inline const char *tu_path(char out[TU_PATH_MAX], const char *dir, const char *name)
{
	int n = snprintf(out, TU_PATH_MAX, "%s/%s", dir, name);
	if (n < 0 || n >= TU_PATH_MAX)
		abort();
	return out;
}

static inline void tu_write_file(const char *path, const char *data, size_t len)
{
	FILE *fp = fopen(path, "wb");
	if (!fp || fwrite(data, 1, len, fp) != len || fclose(fp) != 0) {
		perror(path);
		abort();
	}
}

static inline char *tu_read_file(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return NULL;
	size_t cap = 4096, n = 0;
	char *p = malloc(cap);
	for (;;) {
		if (!p)
			abort();
		n += fread(p + n, 1, cap - n - 1, fp);
		if (n < cap - 1)
			break;
		cap *= 2;
		p = realloc(p, cap);
	}
	fclose(fp);
	p[n] = '\0';
	if (len)
		*len = n;
	return p;
}

/* Poll pred(arg) every millisecond until it is true or 30 s have passed;
 * returns its last value.  For waiting on other threads, not for timing. */
static inline bool tu_wait_until(bool (*pred)(void *arg), void *arg)
{
	const struct timespec pause = {0, 1000000};
	for (int i = 0; i < 30000; i++) {
		if (pred(arg))
			return true;
		nanosleep(&pause, NULL);
	}
	return pred(arg);
}

#endif
