/*
 * evlog.c — the event log: topic names and lookups, reading, ranges and
 * stats, retention, close.  Open and recovery are in recover.c, appending
 * in append.c, the on-disk segment helpers in segment.c; the shared state
 * and the locking rule in log_int.h.
 *
 * Reading copies what it needs from the lists under mu, then opens and
 * preads the segment files without any lock, one segment at a time, and
 * calls fn without any lock.  Retention takes segments out of the lists
 * under mu, then unlinks them without it.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "events/log_int.h"
#include "events/segment.h"

void lt_evlog_opts_default(struct lt_evlog_opts *o)
{
	memset(o, 0, sizeof *o);
	o->segment_bytes = INT64_C(64) << 20;
	o->fsync = true;
}

bool lt_evlog_topic_ok(const char *s, size_t n)
{
	if (!s || n == 0 || n > LT_EV_TOPIC_MAX)
		return false;
	if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

static int name_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);
	return c ? c : (an > bn) - (an < bn);
}

/* Index in l->topics where s[0..n) is or would go; *found. */
static size_t topic_pos(struct lt_evlog *l, const char *s, size_t n, bool *found)
{
	size_t lo = 0, hi = l->ntopics;
	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct lt_evtopic *t = l->topics[mid];
		int c = name_cmp(t->name, t->name_len, s, n);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct lt_evtopic *lt_evlog_find(struct lt_evlog *l, const char *s, size_t n)
{
	bool found;
	size_t i = topic_pos(l, s, n, &found);
	return found ? l->topics[i] : NULL;
}

enum lt_err lt_evlog_reserve(void **arr, size_t *cap, size_t need, size_t sz)
{
	if (need <= *cap)
		return LT_OK;
	size_t n = *cap ? *cap : 4;
	while (n < need) {
		if (n > SIZE_MAX / 2 / sz)
			return LT_ENOMEM;
		n *= 2;
	}
	void *p = realloc(*arr, n * sz);
	if (!p)
		return LT_ENOMEM;
	*arr = p;
	*cap = n;
	return LT_OK;
}

void lt_evlog_seg_free(struct lt_evseg *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s->idx);
	free(s);
}

void lt_evlog_topic_free(struct lt_evtopic *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nsegs; i++)
		lt_evlog_seg_free(t->segs[i]);
	free(t->segs);
	free(t);
}

void lt_evlog_close(struct lt_evlog *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->ntopics; i++)
		lt_evlog_topic_free(l->topics[i]);
	free(l->topics);
	free(l->wbuf);
	free(l->slot_of);
	free(l->order);
	free(l->slots);
	free(l->touch);
	free(l->istage);
	close(l->dirfd);
	pthread_mutex_destroy(&l->mu);
	pthread_mutex_destroy(&l->amu);
	free(l);
}

/* ---- queries ---- */

enum lt_err lt_evlog_range(struct lt_evlog *l, const char *topic, uint64_t *start, uint64_t *end)
{
	if (!l || !topic || !lt_evlog_topic_ok(topic, strlen(topic)))
		return LT_EINVAL;
	pthread_mutex_lock(&l->mu);
	struct lt_evtopic *t = lt_evlog_find(l, topic, strlen(topic));
	if (t) {
		if (start)
			*start = t->segs[0]->base;
		if (end)
			*end = t->end;
	}
	pthread_mutex_unlock(&l->mu);
	return t ? LT_OK : LT_ENOTFOUND;
}

uint64_t lt_evlog_max_event_id(struct lt_evlog *l)
{
	pthread_mutex_lock(&l->mu);
	uint64_t v = l->max_event_id;
	pthread_mutex_unlock(&l->mu);
	return v;
}

enum lt_err lt_evlog_stat(struct lt_evlog *l,
			  void (*fn)(void *arg, const struct lt_evlog_topic_stat *st), void *arg)
{
	if (!l || !fn)
		return LT_EINVAL;
	pthread_mutex_lock(&l->mu);
	size_t n = l->ntopics;
	struct lt_evlog_topic_stat *v = n ? calloc(n, sizeof *v) : NULL;
	if (v) {
		for (size_t i = 0; i < n; i++) {
			const struct lt_evtopic *t = l->topics[i];
			v[i] = (struct lt_evlog_topic_stat){t->name, t->segs[0]->base, t->end,
							    t->bytes, t->nsegs};
		}
	}
	pthread_mutex_unlock(&l->mu);
	if (n && !v)
		return LT_ENOMEM;
	for (size_t i = 0; i < n; i++)
		fn(arg, &v[i]);
	free(v);
	return LT_OK;
}

/* ---- reading ---- */

/* The listed segment holding offset off (start <= off < t->end), and the
 * file position and offset of the index entry at or before off.  mu held. */
static const struct lt_evseg *seg_for(const struct lt_evtopic *t, uint64_t off, int64_t *pos,
				      uint64_t *idx_off)
{
	size_t lo = 0, hi = t->nsegs;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->segs[mid]->base <= off)
			lo = mid;
		else
			hi = mid;
	}
	const struct lt_evseg *s = t->segs[lo];
	size_t a = 0, b = s->nidx;
	*pos = 0;
	*idx_off = s->base;
	while (a < b) { /* last entry with off <= off */
		size_t mid = a + (b - a) / 2;
		if (s->idx[mid].off <= off)
			a = mid + 1;
		else
			b = mid;
	}
	if (a > 0) {
		*pos = s->idx[a - 1].pos;
		*idx_off = s->idx[a - 1].off;
	}
	return s;
}

enum lt_err lt_evlog_read(struct lt_evlog *l, const char *topic, uint64_t from, size_t max,
			  lt_evlog_fn fn, void *arg, uint64_t *next)
{
	if (next)
		*next = from;
	if (!l || !topic || !fn || !lt_evlog_topic_ok(topic, strlen(topic)))
		return LT_EINVAL;
	size_t tlen = strlen(topic);
	pthread_mutex_lock(&l->mu);
	struct lt_evtopic *t = lt_evlog_find(l, topic, tlen);
	if (!t) {
		pthread_mutex_unlock(&l->mu);
		return LT_ENOTFOUND;
	}
	uint64_t start = t->segs[0]->base, end = t->end;
	pthread_mutex_unlock(&l->mu);
	if (from < start) {
		if (next)
			*next = start;
		return LT_ERANGE;
	}
	uint64_t limit = end;
	if (max > 0 && from < end && max < end - from)
		limit = from + max;
	if (from >= limit)
		return LT_OK;

	struct lt_evseg_rd rd;
	enum lt_err e = lt_evseg_rd_init(&rd);
	uint64_t cur = from;
	while (e == LT_OK && cur < limit) {
		int64_t pos, size;
		uint64_t expect, base, send;
		pthread_mutex_lock(&l->mu);
		start = t->segs[0]->base;
		if (cur < start) {
			pthread_mutex_unlock(&l->mu);
			cur = start;
			e = LT_ERANGE;
			break;
		}
		const struct lt_evseg *s = seg_for(t, cur, &pos, &expect);
		base = s->base;
		send = s->end;
		size = s->size;
		pthread_mutex_unlock(&l->mu);

		char path[LT_EVSEG_PATH_MAX];
		lt_evseg_path(path, t->name, base);
		int fd = openat(l->dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			e = LT_EIO;
			if (errno == ENOENT) { /* retention got there first? */
				pthread_mutex_lock(&l->mu);
				if (t->segs[0]->base > cur) {
					cur = t->segs[0]->base;
					e = LT_ERANGE;
				}
				pthread_mutex_unlock(&l->mu);
			}
			break;
		}
		lt_evseg_rd_reset(&rd, fd, pos, size);
		while (cur < limit && cur < send) {
			struct lt_event ev;
			int64_t at;
			size_t len;
			e = lt_evseg_rd_next(&rd, &ev, &at, &len);
			if (e == LT_EAGAIN || e == LT_ENOTFOUND) /* published bytes missing */
				e = LT_ECORRUPT;
			if (e == LT_OK && (ev.offset != expect || ev.topic_len != tlen ||
					   memcmp(ev.topic, topic, tlen) != 0))
				e = LT_ECORRUPT;
			if (e != LT_OK)
				break;
			expect++;
			if (ev.offset < cur)
				continue;
			if ((e = fn(arg, &ev)) != LT_OK)
				break;
			cur = ev.offset + 1;
		}
		close(fd);
	}
	lt_evseg_rd_release(&rd);
	if (next)
		*next = cur;
	return e;
}

/* ---- retention ---- */

struct victim {
	struct lt_evtopic *t;
	struct lt_evseg *s;
};

/* now - t > keep, without overflow. */
static bool older_than(int64_t t, int64_t now, int64_t keep)
{
	if (t == INT64_MIN)
		return false;
	if (t >= now)
		return false;
	uint64_t age = (uint64_t)now - (uint64_t)t; /* two's complement difference, > 0 */
	return age > (uint64_t)keep;
}

enum lt_err lt_evlog_retain(struct lt_evlog *l, int64_t now_ms, size_t *removed)
{
	if (removed)
		*removed = 0;
	if (!l)
		return LT_EINVAL;
	if (l->o.read_only)
		return LT_EDENIED;
	if (l->o.retention_ms == 0 && l->o.retention_bytes == 0)
		return LT_OK;
	struct victim *v = NULL;
	size_t nv = 0, cap = 0;
	enum lt_err e = LT_OK;
	pthread_mutex_lock(&l->mu);
	for (size_t i = 0; i < l->ntopics && e == LT_OK; i++) {
		struct lt_evtopic *t = l->topics[i];
		size_t k = 0;
		uint64_t bytes = t->bytes;
		while (t->nsegs - k > 1) {
			struct lt_evseg *s = t->segs[k];
			bool old = l->o.retention_ms > 0 &&
				   older_than(s->max_time, now_ms, l->o.retention_ms);
			bool big =
				l->o.retention_bytes > 0 && bytes > (uint64_t)l->o.retention_bytes;
			if (!old && !big)
				break;
			if ((e = lt_evlog_reserve((void **)&v, &cap, nv + 1, sizeof *v)) != LT_OK)
				break;
			v[nv++] = (struct victim){t, s};
			bytes -= (uint64_t)s->size;
			k++;
		}
		if (k > 0) {
			memmove(t->segs, t->segs + k, (t->nsegs - k) * sizeof *t->segs);
			t->nsegs -= k;
			t->bytes = bytes;
		}
	}
	pthread_mutex_unlock(&l->mu);

	/* Oldest first, the directory synced after each, so a crash leaves a
	 * contiguous run of segments.  After a failure, the topic's later
	 * victims stay on disk: out of this log, back in at the next open. */
	const struct lt_evtopic *failed = NULL;
	for (size_t i = 0; i < nv; i++) {
		char path[LT_EVSEG_PATH_MAX];
		if (v[i].t != failed) {
			lt_evseg_path(path, v[i].t->name, v[i].s->base);
			if (unlinkat(l->dirfd, path, 0) != 0 && errno != ENOENT) {
				failed = v[i].t;
				e = LT_EIO;
			} else {
				if (removed)
					(*removed)++;
				if (l->o.fsync &&
				    lt_evseg_sync_dir(l->dirfd, v[i].t->name) != LT_OK) {
					failed = v[i].t;
					e = LT_EIO;
				}
			}
		}
		lt_evlog_seg_free(v[i].s);
	}
	free(v);
	return e;
}
