/*
 * fuzz_config.c — lt_config_load on arbitrary file contents.
 *
 * The input is written to an in-memory file (memfd) opened by its
 * /proc/self/fd path, so nothing touches the disk.  Checks, beyond "no crash
 * and no sanitizer report":
 *   - a rejection is LT_ECONFIG with "PATH:LINE: message" (LINE >= 1);
 *   - an accepted file renders (lt_config_render) to text that loads back
 *     to the same values and renders identically, whenever every rendered
 *     line fits inih's 198-character line limit.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conf/config.h"

#define INI_LINE_MAX 198

struct memfile {
	int fd;
	char path[64];
};

static void memfile_init(struct memfile *m, const char *name)
{
	m->fd = memfd_create(name, 0);
	if (m->fd < 0) {
		perror("memfd_create");
		abort();
	}
	snprintf(m->path, sizeof m->path, "/proc/self/fd/%d", m->fd);
}

static void memfile_put(struct memfile *m, const void *data, size_t size)
{
	if (ftruncate(m->fd, 0) != 0)
		abort();
	const char *p = data;
	size_t done = 0;
	while (done < size) {
		ssize_t w = pwrite(m->fd, p + done, size - done, (off_t)done);
		if (w <= 0)
			abort();
		done += (size_t)w;
	}
}

static void check_error(const char *path, const char *err)
{
	size_t n = strlen(path);
	if (strncmp(err, path, n) != 0 || err[n] != ':' || err[n + 1] < '1' || err[n + 1] > '9') {
		fprintf(stderr, "bad error format: %s\n", err);
		abort();
	}
	const char *p = err + n + 1;
	while (*p >= '0' && *p <= '9')
		p++;
	if (p[0] != ':' || p[1] != ' ' || !p[2]) {
		fprintf(stderr, "bad error format: %s\n", err);
		abort();
	}
}

static bool lines_fit(const char *text)
{
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (len > INI_LINE_MAX)
			return false;
		p += len + (nl ? 1 : 0);
	}
	return true;
}

static void values(const struct lt_config *cfg, struct lt_buf *out)
{
	size_t n;
	const struct lt_config_key *keys = lt_config_keys(&n);
	char val[LT_CFG_STR_MAX];
	for (size_t i = 0; i < n; i++) {
		lt_config_value_str(cfg, &keys[i], val, sizeof val);
		lt_buf_printf(out, "%s.%s=%s\n", keys[i].section, keys[i].name, val);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct memfile in, again;
	static bool ready;
	if (!ready) {
		memfile_init(&in, "fuzz_config_in");
		memfile_init(&again, "fuzz_config_again");
		ready = true;
	}
	memfile_put(&in, data, size);

	struct lt_config cfg;
	char err[LT_CFG_ERR_MAX];
	err[0] = '\0';
	enum lt_err e = lt_config_load(in.path, &cfg, err);
	if (e == LT_ECONFIG) {
		check_error(in.path, err);
		return 0;
	}
	if (e != LT_OK) {
		fprintf(stderr, "unexpected %d: %s\n", (int)e, err);
		abort();
	}

	struct lt_buf text, text2, v1, v2;
	lt_buf_init(&text, NULL, 0, 1 << 20);
	lt_buf_init(&text2, NULL, 0, 1 << 20);
	lt_buf_init(&v1, NULL, 0, 1 << 20);
	lt_buf_init(&v2, NULL, 0, 1 << 20);
	lt_config_render(&cfg, &text);
	if (text.err)
		abort();
	if (lines_fit(text.data)) {
		struct lt_config back;
		memfile_put(&again, text.data, text.len);
		if (lt_config_load(again.path, &back, err) != LT_OK) {
			fprintf(stderr, "rendered config does not load: %s\n%s\n", err, text.data);
			abort();
		}
		values(&cfg, &v1);
		values(&back, &v2);
		lt_config_render(&back, &text2);
		if (strcmp(v1.data, v2.data) != 0 || strcmp(text.data, text2.data) != 0) {
			fprintf(stderr, "render round trip differs:\n%s\n---\n%s\n", v1.data,
				v2.data);
			abort();
		}
	}
	lt_buf_release(&text);
	lt_buf_release(&text2);
	lt_buf_release(&v1);
	lt_buf_release(&v2);
	return 0;
}
