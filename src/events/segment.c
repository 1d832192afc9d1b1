/*
 * segment.c — one segment file of the event log: its name, a sequential
 * record reader over pread, and the write and directory-sync helpers.  See
 * segment.h.  No state beyond the caller's structs; no locks.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "events/segment.h"

#define RD_FIRST (64u << 10) /* first buffer size; doubles up to LT_EVSEG_RD_MAX */

void lt_evseg_path(char *out, const char *topic, uint64_t base)
{
	snprintf(out, LT_EVSEG_PATH_MAX, "%s/%020" PRIu64 ".log", topic, base);
}

enum lt_err lt_evseg_parse_name(const char *name, uint64_t *base)
{
	if (strlen(name) != LT_EVSEG_NAME_LEN || strcmp(name + 20, ".log") != 0)
		return LT_EINVAL;
	uint64_t v = 0;
	for (int i = 0; i < 20; i++) {
		unsigned d = (unsigned)(name[i] - '0');
		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return LT_EINVAL;
		v = v * 10 + d;
	}
	*base = v;
	return LT_OK;
}

enum lt_err lt_evseg_rd_init(struct lt_evseg_rd *rd)
{
	memset(rd, 0, sizeof *rd);
	rd->fd = -1;
	rd->buf = malloc(RD_FIRST);
	if (!rd->buf)
		return LT_ENOMEM;
	rd->cap = RD_FIRST;
	return LT_OK;
}

void lt_evseg_rd_release(struct lt_evseg_rd *rd)
{
	free(rd->buf);
	rd->buf = NULL;
	rd->cap = 0;
}

void lt_evseg_rd_reset(struct lt_evseg_rd *rd, int fd, int64_t pos, int64_t limit)
{
	rd->fd = fd;
	rd->next = pos;
	rd->limit = limit < pos ? pos : limit;
	rd->len = rd->off = 0;
}

enum lt_err lt_evseg_rd_next(struct lt_evseg_rd *rd, struct lt_event *ev, int64_t *at, size_t *len)
{
	for (;;) {
		size_t avail = rd->len - rd->off;
		*at = rd->next - (int64_t)avail;
		enum lt_err e = lt_ev_decode(rd->buf + rd->off, avail, ev, len);
		if (e == LT_OK) {
			rd->off += *len;
			return LT_OK;
		}
		if (e != LT_EAGAIN)
			return e;
		if (rd->next >= rd->limit)
			return avail == 0 ? LT_ENOTFOUND : LT_EAGAIN;
		/* Keep the partial record and read more after it. */
		memmove(rd->buf, rd->buf + rd->off, avail);
		rd->off = 0;
		rd->len = avail;
		if (rd->len == rd->cap) {
			/* Cannot happen: a header announcing more than LT_EV_RECORD_MAX is
			 * LT_ECORRUPT, and the buffer grows past that. */
			if (rd->cap >= LT_EVSEG_RD_MAX)
				return LT_ECORRUPT;
			uint8_t *nb = realloc(rd->buf, rd->cap * 2);
			if (!nb)
				return LT_ENOMEM;
			rd->buf = nb;
			rd->cap *= 2;
		}
		size_t want = rd->cap - rd->len;
		if ((int64_t)want > rd->limit - rd->next)
			want = (size_t)(rd->limit - rd->next);
		ssize_t r = pread(rd->fd, rd->buf + rd->len, want, (off_t)rd->next);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return LT_EIO;
		}
		if (r == 0) {
			rd->limit = rd->next; /* the file is shorter than we were told */
			continue;
		}
		rd->len += (size_t)r;
		rd->next += r;
	}
}

enum lt_err lt_evseg_pwrite(int fd, const void *p, size_t n, int64_t pos)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t w = pwrite(fd, b, n, (off_t)pos);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return LT_EIO;
		}
		if (w == 0) {
			errno = EIO;
			return LT_EIO;
		}
		b += w;
		n -= (size_t)w;
		pos += w;
	}
	return LT_OK;
}

enum lt_err lt_evseg_sync_dir(int dirfd, const char *path)
{
	int fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return LT_EIO;
	int rc;
	do
		rc = fsync(fd);
	while (rc != 0 && errno == EINTR);
	int saved = errno;
	close(fd);
	errno = saved;
	return rc == 0 ? LT_OK : LT_EIO;
}
