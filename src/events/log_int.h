/*
 * log_int.h — internal to src/events: the event log's state, shared by
 * recover.c (open), log.c (read, stat, retention, close) and append.c
 * (lt_evlog_append).
 *
 * Locking (see evlog.h): l->mu guards every field marked [mu]: the topic
 * list, each topic's segment list, each segment's published fields and
 * index, and max_event_id.  Readers take it only to look things up, never
 * across I/O.  l->amu is held for a whole append; fields marked [amu] are
 * the appender's alone (it reads [mu] fields it alone writes without mu).
 * Lock order: amu, then mu.
 *
 * A segment in a topic's list is published: its records below end are
 * whole and synced.  The active segment (the last in the list) of a
 * writable log keeps an O_RDWR fd; sealed segments keep none (readers open
 * files themselves).  Segments and topics are freed by lt_evlog_close,
 * except segments retention removes (freed by it once out of the list) and
 * segments or topics an append created and rolled back (never listed).
 */
#ifndef LT_EVENTS_LOG_INT_H
#define LT_EVENTS_LOG_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "events/evlog.h"

#define LT_EVLOG_INDEX_BYTES (64 << 10) /* an index entry every this many bytes */

struct lt_evidx {
	uint64_t off; /* a record's offset */
	int64_t pos;  /* its file position */
};

struct lt_evseg {
	uint64_t base;
	uint64_t end;	      /* [mu] offset after the last record */
	int64_t size;	      /* [mu] bytes of whole records */
	int64_t max_time;     /* [mu] newest time_ms (INT64_MIN: empty) */
	struct lt_evidx *idx; /* [mu] sorted; idx[0] is (base, 0) once non-empty */
	size_t nidx, idx_cap; /* [mu] */
	int fd;		      /* [amu] O_RDWR when active in a writable log, else -1 */
};

struct lt_evtopic {
	char name[LT_EV_TOPIC_MAX + 1];
	size_t name_len;
	struct lt_evseg **segs;	 /* [mu] by base; never empty once listed */
	size_t nsegs, segs_cap;	 /* [mu] */
	uint64_t end;		 /* [mu] next offset (published) */
	uint64_t bytes;		 /* [mu] sum of the segments' sizes */
	struct lt_evseg *active; /* [amu] the last segment (writable log) */
	uint64_t batch_gen;	 /* [amu] the append that last mapped it to a slot */
	size_t batch_slot;	 /* [amu] that slot */
};

struct lt_evslot;
struct lt_evtouch;

struct lt_evlog {
	pthread_mutex_t mu;
	pthread_mutex_t amu;
	struct lt_evlog_opts o;
	int dirfd;		    /* the events directory */
	struct lt_evtopic **topics; /* [mu] sorted by name */
	size_t ntopics, topics_cap; /* [mu] */
	uint64_t max_event_id;	    /* [mu] */
	bool broken;		    /* [amu] refuse appends (a sync or rollback failed) */

	/* [amu] the append's reusable scratch, grown as needed. */
	uint64_t gen;
	uint8_t *wbuf;
	size_t wcap;
	size_t scratch_cap; /* events the arrays below hold */
	uint32_t *slot_of;  /* per event */
	uint32_t *order;    /* event indices grouped by slot */
	struct lt_evslot *slots;
	struct lt_evtouch *touch; /* 2 * scratch_cap */
	struct lt_evidx *istage;  /* scratch_cap: index entries, in touch order */
};

/* The listed topic named s[0..n), or NULL.  Caller holds mu, or is the
 * appender (holding amu: the list changes only under amu). */
struct lt_evtopic *lt_evlog_find(struct lt_evlog *l, const char *s, size_t n);

/* Make room in an array of *cap elements of size sz for need elements
 * (amortised doubling).  LT_ENOMEM leaves it as it was. */
enum lt_err lt_evlog_reserve(void **arr, size_t *cap, size_t need, size_t sz);

/* Close s's fd and free s and its index. */
void lt_evlog_seg_free(struct lt_evseg *s);

/* Free t and every segment in its list. */
void lt_evlog_topic_free(struct lt_evtopic *t);

#endif
