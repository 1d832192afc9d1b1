/*
 * recover.c — lt_evlog_open: create or open the events directory, take the
 * writer's lock, and read every segment of every topic once (CRC, offsets
 * in sequence within and across segments, the record's topic), building
 * the index, the published ends and max_event_id.  Only a topic's last
 * segment may be cut (at its first invalid record; synced); anything wrong
 * earlier is LT_ECORRUPT with the file and byte in why.  See evlog.h for the
 * contract and log_int.h for the state.  Runs before the log is shared, so
 * it takes no lock.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "events/log_int.h"
#include "events/segment.h"

__attribute__((format(printf, 3, 4))) static void say(char *why, size_t cap, const char *fmt, ...)
{
	if (!why || cap == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, cap, fmt, ap);
	va_end(ap);
}

struct scan {
	struct lt_evlog *l;
	struct lt_evlog_recovery *rec;
	struct lt_evseg_rd rd;
	const char *dir;
	char *why;
	size_t why_cap;
};

static enum lt_err idx_add(struct lt_evseg *s, uint64_t off, int64_t pos)
{
	if (s->nidx > 0 && pos - s->idx[s->nidx - 1].pos < LT_EVLOG_INDEX_BYTES)
		return LT_OK;
	enum lt_err e =
		lt_evlog_reserve((void **)&s->idx, &s->idx_cap, s->nidx + 1, sizeof *s->idx);
	if (e != LT_OK)
		return e;
	s->idx[s->nidx++] = (struct lt_evidx){off, pos};
	return LT_OK;
}

/* Read segment s of topic t (the topic's last when last) and fill its
 * fields; cut its invalid tail when last (truncating the file when the log
 * is writable).  Keeps the fd in s->fd when last and writable. */
static enum lt_err scan_seg(struct scan *sc, struct lt_evtopic *t, struct lt_evseg *s, bool last)
{
	struct lt_evlog *l = sc->l;
	bool rw = last && !l->o.read_only;
	char path[LT_EVSEG_PATH_MAX];
	lt_evseg_path(path, t->name, s->base);
	int fd = openat(l->dirfd, path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		say(sc->why, sc->why_cap, "%s/%s: %s", sc->dir, path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return LT_EIO;
	}
	if (!S_ISREG(st.st_mode)) {
		say(sc->why, sc->why_cap, "%s/%s: not a regular file", sc->dir, path);
		close(fd);
		return LT_ECORRUPT;
	}
	lt_evseg_rd_reset(&sc->rd, fd, 0, st.st_size);
	struct lt_event ev;
	int64_t at = 0;
	size_t len;
	enum lt_err e;
	const char *what = NULL;
	for (;;) {
		e = lt_evseg_rd_next(&sc->rd, &ev, &at, &len);
		if (e == LT_OK && (ev.offset != s->end || ev.topic_len != t->name_len ||
				   memcmp(ev.topic, t->name, t->name_len) != 0)) {
			what = ev.offset != s->end ? "a record out of sequence"
						   : "a record of another topic";
			e = LT_ECORRUPT;
		}
		if (e != LT_OK)
			break;
		if ((e = idx_add(s, ev.offset, at)) != LT_OK)
			goto fail;
		s->end++;
		s->size = at + (int64_t)len;
		if (ev.time_ms > s->max_time)
			s->max_time = ev.time_ms;
		if (ev.event_id > l->max_event_id)
			l->max_event_id = ev.event_id;
		if (sc->rec)
			sc->rec->records++;
	}
	if (e == LT_ENOTFOUND) {
		e = LT_OK;
	} else if (e == LT_EAGAIN || e == LT_ECORRUPT) {
		if (!what)
			what = e == LT_EAGAIN ? "a record cut short" : "an invalid record";
		if (!last) {
			say(sc->why, sc->why_cap,
			    "%s/%s: %s at byte %" PRId64
			    " in a segment that is not the topic's last",
			    sc->dir, path, what, at);
			e = LT_ECORRUPT;
			goto fail;
		}
		if (sc->rec) {
			sc->rec->truncated_bytes += (uint64_t)(st.st_size - at);
			sc->rec->truncated_topics++;
			sc->rec->garbage_topics += e == LT_ECORRUPT;
		}
		if (rw && (ftruncate(fd, at) != 0 || (l->o.fsync && fdatasync(fd) != 0))) {
			say(sc->why, sc->why_cap, "%s/%s: truncate at %" PRId64 ": %s", sc->dir,
			    path, at, strerror(errno));
			e = LT_EIO;
			goto fail;
		}
		e = LT_OK;
	} else {
		say(sc->why, sc->why_cap, "%s/%s: %s", sc->dir, path,
		    e == LT_EIO ? strerror(errno) : lt_strerror(e));
		goto fail;
	}
	if (rw) {
		s->fd = fd;
		return LT_OK;
	}
fail:
	close(fd);
	return e;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Load topic directory name; *out = NULL when it holds no segment. */
static enum lt_err load_topic(struct scan *sc, const char *name, struct lt_evtopic **out)
{
	struct lt_evlog *l = sc->l;
	uint64_t *bases = NULL;
	size_t nb = 0, cap = 0;
	struct lt_evtopic *t = NULL;
	enum lt_err e = LT_OK;
	*out = NULL;

	int fd = openat(l->dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		say(sc->why, sc->why_cap, "%s/%s: %s", sc->dir, name, strerror(errno));
		if (fd >= 0)
			close(fd);
		return LT_EIO;
	}
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		uint64_t base;
		struct stat st;
		if (lt_evseg_parse_name(de->d_name, &base) != LT_OK ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(st.st_mode)) {
			say(sc->why, sc->why_cap, "%s/%s/%s: not a segment of the event log",
			    sc->dir, name, de->d_name);
			e = LT_ECORRUPT;
			goto out;
		}
		if ((e = lt_evlog_reserve((void **)&bases, &cap, nb + 1, sizeof *bases)) != LT_OK)
			goto out;
		bases[nb++] = base;
		errno = 0;
	}
	if (errno != 0) {
		say(sc->why, sc->why_cap, "%s/%s: %s", sc->dir, name, strerror(errno));
		e = LT_EIO;
		goto out;
	}
	if (nb == 0)
		goto out;
	qsort(bases, nb, sizeof *bases, cmp_u64);
	t = calloc(1, sizeof *t);
	if (!t || (e = lt_evlog_reserve((void **)&t->segs, &t->segs_cap, nb, sizeof *t->segs))) {
		e = LT_ENOMEM;
		goto out;
	}
	t->name_len = strlen(name);
	memcpy(t->name, name, t->name_len + 1);
	for (size_t i = 0; i < nb; i++) {
		struct lt_evseg *s = calloc(1, sizeof *s);
		if (!s) {
			e = LT_ENOMEM;
			goto out;
		}
		s->base = s->end = bases[i];
		s->max_time = INT64_MIN;
		s->fd = -1;
		t->segs[t->nsegs++] = s;
		if (sc->rec)
			sc->rec->segments++;
		if (i > 0 && s->base != t->segs[i - 1]->end) {
			say(sc->why, sc->why_cap,
			    "%s/%s: segment %020" PRIu64 " follows one that ends at offset %" PRIu64
			    " (a %s of offsets)",
			    sc->dir, name, s->base, t->segs[i - 1]->end,
			    s->base > t->segs[i - 1]->end ? "gap" : "overlap");
			e = LT_ECORRUPT;
			goto out;
		}
		if ((e = scan_seg(sc, t, s, i == nb - 1)) != LT_OK)
			goto out;
		t->bytes += (uint64_t)s->size;
	}
	t->end = t->segs[nb - 1]->end;
	t->active = t->segs[nb - 1];
	*out = t;
	t = NULL;
out:
	lt_evlog_topic_free(t);
	free(bases);
	closedir(d);
	return e;
}

static int cmp_topic(const void *a, const void *b)
{
	const struct lt_evtopic *x = *(struct lt_evtopic *const *)a;
	const struct lt_evtopic *y = *(struct lt_evtopic *const *)b;
	return strcmp(x->name, y->name);
}

static enum lt_err load_all(struct scan *sc)
{
	struct lt_evlog *l = sc->l;
	int fd = dup(l->dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	enum lt_err e = LT_OK;
	if (!d) {
		say(sc->why, sc->why_cap, "%s: %s", sc->dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return LT_EIO;
	}
	rewinddir(d);
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		if (!strcmp(n, ".") || !strcmp(n, ".."))
			continue;
		struct stat st;
		if (!lt_evlog_topic_ok(n, strlen(n)) ||
		    fstatat(l->dirfd, n, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) {
			say(sc->why, sc->why_cap, "%s/%s: not a topic directory of the event log",
			    sc->dir, n);
			e = LT_ECORRUPT;
			break;
		}
		struct lt_evtopic *t;
		if ((e = load_topic(sc, n, &t)) != LT_OK)
			break;
		if (!t) {
			errno = 0;
			continue;
		}
		if (l->ntopics >= LT_EVLOG_TOPICS_MAX) {
			lt_evlog_topic_free(t);
			say(sc->why, sc->why_cap, "%s: more than %d topics", sc->dir,
			    LT_EVLOG_TOPICS_MAX);
			e = LT_ETOOBIG;
			break;
		}
		if ((e = lt_evlog_reserve((void **)&l->topics, &l->topics_cap, l->ntopics + 1,
					  sizeof *l->topics)) != LT_OK) {
			lt_evlog_topic_free(t);
			break;
		}
		l->topics[l->ntopics++] = t;
		if (sc->rec)
			sc->rec->topics++;
		errno = 0;
	}
	if (e == LT_OK && errno != 0) {
		say(sc->why, sc->why_cap, "%s: %s", sc->dir, strerror(errno));
		e = LT_EIO;
	}
	closedir(d);
	if (e == LT_OK && l->ntopics > 1)
		qsort(l->topics, l->ntopics, sizeof *l->topics, cmp_topic);
	if (e == LT_ENOMEM)
		say(sc->why, sc->why_cap, "%s: out of memory", sc->dir);
	return e;
}

/* mkdir dir (its last component) and sync its parent when it was made. */
static enum lt_err make_dir(const char *dir, bool sync, char *why, size_t why_cap)
{
	if (mkdir(dir, 0750) != 0) {
		if (errno == EEXIST)
			return LT_OK;
		say(why, why_cap, "mkdir %s: %s", dir, strerror(errno));
		return LT_EIO;
	}
	if (!sync)
		return LT_OK;
	char parent[4096];
	const char *slash = strrchr(dir, '/');
	if (!slash)
		snprintf(parent, sizeof parent, ".");
	else if (slash == dir)
		snprintf(parent, sizeof parent, "/");
	else
		snprintf(parent, sizeof parent, "%.*s", (int)(slash - dir), dir);
	if (lt_evseg_sync_dir(AT_FDCWD, parent) != LT_OK) {
		say(why, why_cap, "fsync %s: %s", parent, strerror(errno));
		return LT_EIO;
	}
	return LT_OK;
}

enum lt_err lt_evlog_open(const char *dir, const struct lt_evlog_opts *o, struct lt_evlog **out,
			  struct lt_evlog_recovery *rec, char *why, size_t why_cap)
{
	struct lt_evlog_opts def;
	if (!o) {
		lt_evlog_opts_default(&def);
		o = &def;
	}
	if (why && why_cap)
		why[0] = '\0';
	if (rec)
		memset(rec, 0, sizeof *rec);
	if (!out)
		return LT_EINVAL;
	*out = NULL;
	if (!dir || !*dir || strlen(dir) >= 4000) {
		say(why, why_cap, "event log directory: empty or too long");
		return LT_EINVAL;
	}
	if (o->segment_bytes < LT_EVLOG_SEGMENT_MIN || o->retention_ms < 0 ||
	    o->retention_bytes < 0) {
		say(why, why_cap,
		    "event log: segment_bytes must be >= %d and retentions >= 0 (got %" PRId64
		    ", %" PRId64 ", %" PRId64 ")",
		    LT_EVLOG_SEGMENT_MIN, o->segment_bytes, o->retention_ms, o->retention_bytes);
		return LT_EINVAL;
	}
	if (!o->read_only) {
		enum lt_err e = make_dir(dir, o->fsync, why, why_cap);
		if (e != LT_OK)
			return e;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		say(why, why_cap, "%s: %s", dir, strerror(errno));
		return errno == ENOENT ? LT_ENOTFOUND : LT_EIO;
	}
	if (!o->read_only && flock(dfd, LOCK_EX | LOCK_NB) != 0) {
		bool held = errno == EWOULDBLOCK;
		say(why, why_cap, "%s: %s", dir,
		    held ? "another writer has the event log open" : strerror(errno));
		close(dfd);
		return held ? LT_EBUSY : LT_EIO;
	}
	struct lt_evlog *l = calloc(1, sizeof *l);
	if (!l) {
		close(dfd);
		say(why, why_cap, "event log: out of memory");
		return LT_ENOMEM;
	}
	l->o = *o;
	l->dirfd = dfd;
	if (pthread_mutex_init(&l->mu, NULL) != 0) {
		close(dfd);
		free(l);
		return LT_ENOMEM;
	}
	if (pthread_mutex_init(&l->amu, NULL) != 0) {
		pthread_mutex_destroy(&l->mu);
		close(dfd);
		free(l);
		return LT_ENOMEM;
	}
	struct scan sc = {l, rec, {0}, dir, why, why_cap};
	enum lt_err e = lt_evseg_rd_init(&sc.rd);
	if (e == LT_OK)
		e = load_all(&sc);
	lt_evseg_rd_release(&sc.rd);
	if (e != LT_OK) {
		lt_evlog_close(l);
		return e;
	}
	*out = l;
	return LT_OK;
}
