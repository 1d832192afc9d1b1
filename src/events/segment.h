/*
 * segment.h — internal to src/events: one segment file of the event log on
 * disk (its name, reading its records in order, writing and syncing).
 *
 * A segment is <topic>/<base offset as 20 decimal digits>.log under the
 * log's directory, opened relative to the log's directory fd.  Nothing here
 * knows about topics' state or locks; log.c and append.c do.
 *
 * struct lt_evseg_rd reads records sequentially from an fd with pread (no
 * file position is shared, so several readers may use one fd), through its
 * own buffer that grows to the largest record it meets (at most
 * LT_EVSEG_RD_MAX bytes).  Events it returns point into that buffer and are
 * valid until the next call.  Ownership: lt_evseg_rd_init allocates the
 * buffer, lt_evseg_rd_release frees it; the fd stays the caller's.
 */
#ifndef LT_EVENTS_SEGMENT_H
#define LT_EVENTS_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "events/frame.h"
#include "util/err.h"

/* "<topic>/<20 digits>.log" and its NUL. */
#define LT_EVSEG_PATH_MAX (LT_EV_TOPIC_MAX + 1 + 24 + 1)
#define LT_EVSEG_NAME_LEN 24 /* "<20 digits>.log" */
#define LT_EVSEG_RD_MAX (2u << 20)

/* "<topic>/<base>.log" into out (LT_EVSEG_PATH_MAX bytes). */
void lt_evseg_path(char *out, const char *topic, uint64_t base);

/* LT_OK and *base when name is exactly 20 digits + ".log" with a value
 * that fits in 64 bits; LT_EINVAL otherwise. */
enum lt_err lt_evseg_parse_name(const char *name, uint64_t *base);

struct lt_evseg_rd {
	int fd;
	int64_t limit; /* read no byte at or past this file position */
	int64_t next;  /* file position of buf[len] (the next byte to read) */
	uint8_t *buf;
	size_t cap, len, off; /* buf[off..len) is unread */
};

/* LT_ENOMEM or LT_OK with an empty buffer; then lt_evseg_rd_reset. */
enum lt_err lt_evseg_rd_init(struct lt_evseg_rd *rd);
void lt_evseg_rd_release(struct lt_evseg_rd *rd);

/* Start reading fd at file position pos, stopping at limit. */
void lt_evseg_rd_reset(struct lt_evseg_rd *rd, int fd, int64_t pos, int64_t limit);

/* The next record: LT_OK (*ev, *at = its file position, *len = its size);
 * LT_ENOTFOUND: clean end (exactly at limit, or where the file ends);
 * LT_EAGAIN: the bytes left before the end are less than the record they
 * start (a torn tail), *at = where; LT_ECORRUPT: not a record at *at;
 * LT_EIO: pread failed; LT_ENOMEM. */
enum lt_err lt_evseg_rd_next(struct lt_evseg_rd *rd, struct lt_event *ev, int64_t *at, size_t *len);

/* pwrite all n bytes at pos, retrying short writes and EINTR: LT_OK or
 * LT_EIO (errno kept). */
enum lt_err lt_evseg_pwrite(int fd, const void *p, size_t n, int64_t pos);

/* fsync the directory path (relative to dirfd; "." for dirfd itself). */
enum lt_err lt_evseg_sync_dir(int dirfd, const char *path);

#endif
