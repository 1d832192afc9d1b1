/*
 * append.c — lt_evlog_append: write a batch, sync it, publish it, or undo
 * it.  State and locking in log_int.h; the contract in evlog.h.
 *
 * One append runs under l->amu, in five steps:
 *   1. check every event (nothing is written when one is bad) and group
 *      the events by topic ("slots", in order of first appearance; new
 *      topics get a struct that is not listed yet);
 *   2. per slot, encode its records into l->wbuf and pwrite them to the
 *      topic's active segment, one pwrite per segment while they fit the
 *      buffer; rolling to a new segment syncs the old one first, creates
 *      the new file (O_EXCL, 0640) and syncs the topic directory.  Every
 *      segment written is a "touch" that remembers its size at the start;
 *   3. fdatasync every touched segment not synced yet;
 *   4. under l->mu: make room in the lists (the only step that can fail
 *      there), then publish sizes, ends, index entries, new segments and
 *      new topics at once — readers see the whole batch or nothing;
 *   5. on a failure in 2-4, undo: delete the segments the batch created
 *      (directory synced before anything else is cut, so a crash cannot
 *      leave a gap) and truncate the others to their start.  A failed
 *      sync or undo makes the log refuse appends (l->broken).
 * Allocation: the scratch arrays and write buffer grow and are kept; per
 * batch only a new topic or segment allocates (nothing per record).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "events/log_int.h"
#include "events/segment.h"

#define WBUF_MIN (64u << 10)
#define WBUF_MAX (4u << 20) /* beyond this a topic's batch takes several pwrites */

struct lt_evslot {
	struct lt_evtopic *t;
	bool is_new;	/* t was made for this batch and is not listed */
	bool dir_made;	/* this batch created t's directory */
	size_t count;	/* its events */
	size_t first;	/* its run in l->order */
	size_t fill;	/* (grouping) */
	size_t bytes;	/* encoded size of its events */
	uint64_t start; /* t->end before the batch */
};

struct lt_evtouch {
	struct lt_evtopic *t;
	struct lt_evseg *s;
	bool is_new;		 /* created by this batch (not listed) */
	bool synced;		 /* already fdatasynced in this batch */
	int64_t start;		 /* file size when the batch began */
	int64_t wpos;		 /* file size after what was encoded so far */
	uint64_t end;		 /* offset after the last record encoded */
	int64_t max_time;	 /* newest time_ms of the batch's records */
	int64_t last_idx;	 /* file position of the last index entry (-1: none) */
	size_t idx_first, idx_n; /* its entries in l->istage */
};

struct batch {
	struct lt_evlog *l;
	struct lt_event *ev;
	size_t n;
	size_t nslots, ntouch, nistage;
	size_t pend; /* bytes in l->wbuf not written yet (they end at the touch's wpos) */
	uint64_t max_event_id;
};

static enum lt_err scratch(struct lt_evlog *l, size_t n)
{
	if (n <= l->scratch_cap)
		return LT_OK;
	size_t c = l->scratch_cap ? l->scratch_cap : 64;
	while (c < n)
		c *= 2;
	void *p;
	if (!(p = realloc(l->slot_of, c * sizeof *l->slot_of)))
		return LT_ENOMEM;
	l->slot_of = p;
	if (!(p = realloc(l->order, c * sizeof *l->order)))
		return LT_ENOMEM;
	l->order = p;
	if (!(p = realloc(l->slots, c * sizeof *l->slots)))
		return LT_ENOMEM;
	l->slots = p;
	if (!(p = realloc(l->touch, 2 * c * sizeof *l->touch)))
		return LT_ENOMEM;
	l->touch = p;
	if (!(p = realloc(l->istage, c * sizeof *l->istage)))
		return LT_ENOMEM;
	l->istage = p;
	l->scratch_cap = c;
	return LT_OK;
}

static void free_new_topics(struct batch *b)
{
	for (size_t k = 0; k < b->nslots; k++) {
		struct lt_evslot *sl = &b->l->slots[k];
		if (!sl->is_new)
			continue;
		free(sl->t->segs);
		free(sl->t);
		sl->t = NULL;
	}
}

/* Step 1: slots, l->slot_of and l->order. */
static enum lt_err group(struct batch *b)
{
	struct lt_evlog *l = b->l;
	size_t nnew = 0;
	l->gen++;
	for (size_t i = 0; i < b->n; i++) {
		const struct lt_event *ev = &b->ev[i];
		struct lt_evtopic *t = lt_evlog_find(l, ev->topic, ev->topic_len);
		size_t k;
		if (t && t->batch_gen == l->gen) {
			k = t->batch_slot;
		} else if (t) {
			k = b->nslots++;
			l->slots[k] = (struct lt_evslot){t, false, false, 0, 0, 0, 0, t->end};
			t->batch_gen = l->gen;
			t->batch_slot = k;
		} else {
			for (k = 0; k < b->nslots; k++) {
				const struct lt_evtopic *u = l->slots[k].t;
				if (l->slots[k].is_new && u->name_len == ev->topic_len &&
				    !memcmp(u->name, ev->topic, ev->topic_len))
					break;
			}
			if (k == b->nslots) {
				if (l->ntopics + nnew >= LT_EVLOG_TOPICS_MAX)
					return LT_EBUSY;
				t = calloc(1, sizeof *t);
				if (!t)
					return LT_ENOMEM;
				memcpy(t->name, ev->topic, ev->topic_len);
				t->name_len = ev->topic_len;
				nnew++;
				b->nslots++;
				l->slots[k] = (struct lt_evslot){t, true, false, 0, 0, 0, 0, 0};
			}
		}
		l->slot_of[i] = (uint32_t)k;
		l->slots[k].count++;
		l->slots[k].bytes += lt_ev_size(ev);
	}
	size_t at = 0;
	for (size_t k = 0; k < b->nslots; k++) {
		l->slots[k].first = at;
		at += l->slots[k].count;
	}
	for (size_t i = 0; i < b->n; i++) {
		struct lt_evslot *sl = &l->slots[l->slot_of[i]];
		l->order[sl->first + sl->fill++] = (uint32_t)i;
	}
	return LT_OK;
}

/* The write buffer holds a slot's whole batch when it can (<= WBUF_MAX) and
 * always the largest record. */
static enum lt_err size_wbuf(struct batch *b)
{
	struct lt_evlog *l = b->l;
	size_t need = WBUF_MIN;
	for (size_t k = 0; k < b->nslots; k++) {
		size_t s = l->slots[k].bytes < WBUF_MAX ? l->slots[k].bytes : WBUF_MAX;
		if (s > need)
			need = s;
	}
	for (size_t i = 0; i < b->n; i++) {
		size_t s = lt_ev_size(&b->ev[i]);
		if (s > need)
			need = s;
	}
	if (need <= l->wcap)
		return LT_OK;
	uint8_t *p = realloc(l->wbuf, need);
	if (!p)
		return LT_ENOMEM;
	l->wbuf = p;
	l->wcap = need;
	return LT_OK;
}

static enum lt_err flush(struct batch *b, struct lt_evtouch *tc)
{
	if (b->pend == 0)
		return LT_OK;
	enum lt_err e =
		lt_evseg_pwrite(tc->s->fd, b->l->wbuf, b->pend, tc->wpos - (int64_t)b->pend);
	b->pend = 0;
	return e;
}

/* A new segment of t starting at base: its file, and a touch for it. */
static enum lt_err new_segment(struct batch *b, struct lt_evtopic *t, uint64_t base,
			       struct lt_evtouch **out)
{
	struct lt_evlog *l = b->l;
	struct lt_evseg *s = calloc(1, sizeof *s);
	if (!s)
		return LT_ENOMEM;
	s->base = s->end = base;
	s->max_time = INT64_MIN;
	char path[LT_EVSEG_PATH_MAX];
	lt_evseg_path(path, t->name, base);
	s->fd = openat(l->dirfd, path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (s->fd < 0) {
		free(s);
		return LT_EIO;
	}
	struct lt_evtouch *tc = &l->touch[b->ntouch++];
	*tc = (struct lt_evtouch){t, NULL, true, false, 0, 0, base, INT64_MIN, -1, b->nistage, 0};
	tc->s = s; /* the touch owns s now: rollback() or publish() takes it */
	*out = tc;
	if (l->o.fsync)
		return lt_evseg_sync_dir(l->dirfd, t->name);
	return LT_OK;
}

/* Step 2 for one slot. */
static enum lt_err write_slot(struct batch *b, struct lt_evslot *sl)
{
	struct lt_evlog *l = b->l;
	struct lt_evtopic *t = sl->t;
	struct lt_evtouch *tc;
	enum lt_err e;
	if (sl->is_new) {
		if (mkdirat(l->dirfd, t->name, 0750) == 0)
			sl->dir_made = true;
		else if (errno != EEXIST) /* EEXIST: left empty by a crash */
			return LT_EIO;
		if (l->o.fsync && sl->dir_made && (e = lt_evseg_sync_dir(l->dirfd, ".")) != LT_OK)
			return e;
		if ((e = new_segment(b, t, 0, &tc)) != LT_OK)
			return e;
	} else {
		struct lt_evseg *s = t->active;
		tc = &l->touch[b->ntouch++];
		*tc = (struct lt_evtouch){t,	  s,	     false, false,	s->size, s->size,
					  t->end, INT64_MIN, -1,    b->nistage, 0};
		if (s->nidx > 0)
			tc->last_idx = s->idx[s->nidx - 1].pos;
	}
	b->pend = 0;
	for (size_t j = 0; j < sl->count; j++) {
		struct lt_event rec = b->ev[l->order[sl->first + j]];
		size_t rs = lt_ev_size(&rec), got;
		if (tc->wpos > 0 && tc->wpos + (int64_t)rs > l->o.segment_bytes) {
			if ((e = flush(b, tc)) != LT_OK)
				return e;
			if (l->o.fsync && tc->wpos > tc->start) {
				if (fdatasync(tc->s->fd) != 0) {
					l->broken = true;
					return LT_EIO;
				}
				tc->synced = true;
			}
			if ((e = new_segment(b, t, tc->end, &tc)) != LT_OK)
				return e;
		}
		if (b->pend + rs > l->wcap && (e = flush(b, tc)) != LT_OK)
			return e;
		rec.offset = tc->end;
		if ((e = lt_ev_encode(&rec, l->wbuf + b->pend, l->wcap - b->pend, &got)) != LT_OK)
			return e; /* cannot happen: checked and sized */
		if (tc->last_idx < 0 || tc->wpos - tc->last_idx >= LT_EVLOG_INDEX_BYTES) {
			l->istage[b->nistage++] = (struct lt_evidx){tc->end, tc->wpos};
			tc->idx_n++;
			tc->last_idx = tc->wpos;
		}
		b->pend += got;
		tc->wpos += (int64_t)got;
		tc->end++;
		if (rec.time_ms > tc->max_time)
			tc->max_time = rec.time_ms;
		if (rec.event_id > b->max_event_id)
			b->max_event_id = rec.event_id;
	}
	return flush(b, tc);
}

/* Step 3. */
static enum lt_err sync_all(struct batch *b)
{
	struct lt_evlog *l = b->l;
	if (!l->o.fsync)
		return LT_OK;
	for (size_t i = 0; i < b->ntouch; i++) {
		struct lt_evtouch *tc = &l->touch[i];
		if (tc->synced || tc->wpos == tc->start)
			continue;
		if (fdatasync(tc->s->fd) != 0) {
			l->broken = true;
			return LT_EIO;
		}
		tc->synced = true;
	}
	return LT_OK;
}

/* Step 4, first half (mu held): room for everything publish() adds. */
static enum lt_err reserve(struct batch *b)
{
	struct lt_evlog *l = b->l;
	size_t nnew = 0;
	enum lt_err e;
	for (size_t k = 0; k < b->nslots; k++)
		nnew += l->slots[k].is_new;
	if ((e = lt_evlog_reserve((void **)&l->topics, &l->topics_cap, l->ntopics + nnew,
				  sizeof *l->topics)) != LT_OK)
		return e;
	const struct lt_evtopic *prev = NULL;
	size_t segs_new = 0;
	for (size_t i = 0; i < b->ntouch; i++) {
		struct lt_evtouch *tc = &l->touch[i];
		if (tc->t != prev) { /* a slot's touches are consecutive */
			prev = tc->t;
			segs_new = 0;
		}
		segs_new += tc->is_new;
		if ((e = lt_evlog_reserve((void **)&tc->t->segs, &tc->t->segs_cap,
					  tc->t->nsegs + segs_new, sizeof *tc->t->segs)) != LT_OK)
			return e;
		if ((e = lt_evlog_reserve((void **)&tc->s->idx, &tc->s->idx_cap,
					  tc->s->nidx + tc->idx_n, sizeof *tc->s->idx)) != LT_OK)
			return e;
	}
	return LT_OK;
}

/* Step 4, second half (mu held): cannot fail. */
static void publish(struct batch *b)
{
	struct lt_evlog *l = b->l;
	for (size_t i = 0; i < b->ntouch; i++) {
		struct lt_evtouch *tc = &l->touch[i];
		struct lt_evseg *s = tc->s;
		struct lt_evtopic *t = tc->t;
		if (tc->idx_n > 0) {
			memcpy(s->idx + s->nidx, l->istage + tc->idx_first,
			       tc->idx_n * sizeof *s->idx);
			s->nidx += tc->idx_n;
		}
		s->end = tc->end;
		s->size = tc->wpos;
		if (tc->max_time > s->max_time)
			s->max_time = tc->max_time;
		if (tc->is_new)
			t->segs[t->nsegs++] = s;
		t->bytes += (uint64_t)(tc->wpos - tc->start);
		t->end = tc->end;
	}
	for (size_t k = 0; k < b->nslots; k++) {
		struct lt_evslot *sl = &l->slots[k];
		if (!sl->is_new)
			continue;
		size_t lo = 0, hi = l->ntopics;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (strcmp(l->topics[mid]->name, sl->t->name) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		memmove(l->topics + lo + 1, l->topics + lo, (l->ntopics - lo) * sizeof *l->topics);
		l->topics[lo] = sl->t;
		l->ntopics++;
		sl->is_new = false; /* listed now: not freed on the way out */
	}
	if (b->max_event_id > l->max_event_id)
		l->max_event_id = b->max_event_id;
}

/* Step 5.  Later touches first: a topic's new segments go (and the
 * directory is synced) before its older segment is cut back. */
static void rollback(struct batch *b)
{
	struct lt_evlog *l = b->l;
	for (size_t i = b->ntouch; i-- > 0;) {
		struct lt_evtouch *tc = &l->touch[i];
		struct lt_evseg *s = tc->s;
		if (tc->is_new) {
			char path[LT_EVSEG_PATH_MAX];
			lt_evseg_path(path, tc->t->name, s->base);
			if (unlinkat(l->dirfd, path, 0) != 0 ||
			    (l->o.fsync && lt_evseg_sync_dir(l->dirfd, tc->t->name) != LT_OK))
				l->broken = true;
			lt_evlog_seg_free(s);
		} else if (tc->wpos > tc->start) {
			if (ftruncate(s->fd, tc->start) != 0 ||
			    (l->o.fsync && fdatasync(s->fd) != 0))
				l->broken = true;
		}
	}
	for (size_t k = 0; k < b->nslots; k++) {
		struct lt_evslot *sl = &l->slots[k];
		if (sl->is_new && sl->dir_made)
			(void)unlinkat(l->dirfd, sl->t->name, AT_REMOVEDIR);
	}
}

enum lt_err lt_evlog_append(struct lt_evlog *l, struct lt_event *ev, size_t n)
{
	if (!l || !ev || n == 0 || n > LT_EVLOG_BATCH_MAX)
		return LT_EINVAL;
	if (l->o.read_only)
		return LT_EDENIED;
	for (size_t i = 0; i < n; i++)
		if (lt_ev_check(&ev[i]) != LT_OK ||
		    !lt_evlog_topic_ok(ev[i].topic, ev[i].topic_len))
			return LT_EINVAL;

	pthread_mutex_lock(&l->amu);
	struct batch b = {l, ev, n, 0, 0, 0, 0, 0};
	enum lt_err e = l->broken ? LT_EIO : scratch(l, n);
	if (e == LT_OK)
		e = group(&b);
	if (e == LT_OK)
		e = size_wbuf(&b);
	for (size_t k = 0; e == LT_OK && k < b.nslots; k++)
		e = write_slot(&b, &l->slots[k]);
	if (e == LT_OK)
		e = sync_all(&b);
	if (e == LT_OK) {
		pthread_mutex_lock(&l->mu);
		e = reserve(&b);
		if (e == LT_OK) {
			publish(&b);
			/* Segments no longer active give up their fds, under mu:
			 * once published, retention (which holds only mu) may
			 * free a sealed segment. */
			for (size_t i = 0; i < b.ntouch; i++) {
				struct lt_evtouch *tc = &l->touch[i];
				if (i + 1 == b.ntouch || l->touch[i + 1].t != tc->t) {
					tc->t->active = tc->s;
				} else if (tc->s->fd >= 0) {
					close(tc->s->fd);
					tc->s->fd = -1;
				}
			}
		}
		pthread_mutex_unlock(&l->mu);
	}
	if (e != LT_OK) {
		rollback(&b);
		free_new_topics(&b);
		pthread_mutex_unlock(&l->amu);
		return e;
	}
	/* Offsets out. */
	for (size_t k = 0; k < b.nslots; k++) {
		const struct lt_evslot *sl = &l->slots[k];
		for (size_t j = 0; j < sl->count; j++)
			ev[l->order[sl->first + j]].offset = sl->start + j;
	}
	pthread_mutex_unlock(&l->amu);
	return LT_OK;
}
