/*
 * evlog.h — the event log (Kafka's job, in-process): append-only segment
 * files under <data_dir>/events/, one directory per topic.
 *
 *   events/<topic>/<base offset, 20 digits>.log
 *
 * Each segment holds whole records (frame.h) with consecutive offsets,
 * starting at its base offset.  A topic's offsets start at 0 and never
 * repeat; retention deletes whole segments from the front, so a topic's
 * first retained offset (start) may be above 0.  Topic names are 1 to
 * LT_EV_TOPIC_MAX bytes of [a-z0-9._-], except "." and "..".  Files are
 * opened O_CLOEXEC; segments are created mode 0640, directories 0750.
 *
 * Appending: lt_evlog_append writes a batch of events (any topics, at most
 * LT_EVLOG_BATCH_MAX), one pwrite per topic and segment where the batch
 * fits the write buffer, then fdatasyncs every segment it touched, once
 * (when opts.fsync) before it returns: an event is acknowledged only once
 * it is on disk, and only then do readers see it.  A new segment starts
 * when the active one would pass opts.segment_bytes (a record larger than
 * that gets a segment of its own); the old one is synced before the new
 * one is created, and the directory is synced after, so only a topic's
 * last segment can ever hold a torn record.  One appender at a time (the
 * relay thread); appends are serialised by the log's append lock, which
 * readers never wait for.  After a failed fdatasync or a failed rollback
 * the log refuses further appends (LT_EIO) until it is reopened: the page
 * cache can no longer be trusted to match the disk.
 *
 * Recovery (lt_evlog_open): every segment of every topic is read once and
 * checked (CRC, offsets consecutive within a segment and across segments,
 * the record's topic), which builds the index and finds max_event_id.  A
 * topic's last segment is truncated at the first record that is not valid
 * (a torn tail from a crash mid-append, or garbage), so nothing after a
 * gap survives and nothing acknowledged is lost (it was synced); the
 * truncation is synced.  An invalid record in any earlier segment, or a
 * gap between segments, is LT_ECORRUPT: recovery never deletes or cuts an
 * earlier segment.  What was cut is reported in *rec.  A read-only open
 * (leakyctl) never writes: it stops at the first invalid record and
 * reports what it would have cut; it sees the log as it was at the open
 * (records appended later by another process are not read).  A writable
 * open holds an exclusive flock on the directory until close, so a second
 * writer (another process, or another handle in this one) gets LT_EBUSY.
 * Open reads the whole log, so its cost grows with the retained bytes.
 *
 * Reading: lt_evlog_read delivers a topic's records in offset order from
 * any retained offset, up to the end as of the call, in any thread, while
 * appends and retention go on.  Each call opens the segment files it reads
 * (its own fds, pread), so retention may delete a segment a reader is in:
 * the reader finishes the file it has open and gets LT_ERANGE for the
 * next one that is gone.  A sparse in-memory index (one entry per segment
 * and every ~64 KiB within it) finds an offset without scanning a segment.
 * Every record read is checked again (CRC, offset, topic): damage found
 * after open is LT_ECORRUPT.
 *
 * Retention: lt_evlog_retain deletes a topic's oldest segments (never the
 * active one) while the newest record of the oldest segment is older than
 * opts.retention_ms, or while the topic is larger than
 * opts.retention_bytes.
 *
 * Locking: one mutex guards the topic list, the segment lists, the index,
 * every topic's published end and max_event_id; it is never held across
 * I/O that waits for the disk (writes, syncs, reads, unlinks) nor across a
 * callback.  A second mutex serialises appends.  Every function may be
 * called from any thread, except lt_evlog_close.
 *
 * Ownership: struct lt_evlog is opaque, created by lt_evlog_open and freed
 * by lt_evlog_close (no call may be running then); events passed to
 * callbacks point into buffers owned by the call, valid during the
 * callback only.
 */
#ifndef LT_EVENTS_EVLOG_H
#define LT_EVENTS_EVLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "events/frame.h"
#include "util/err.h"

struct lt_evlog;

#define LT_EVLOG_BATCH_MAX 4096	  /* events per lt_evlog_append */
#define LT_EVLOG_TOPICS_MAX 1024  /* topics per log */
#define LT_EVLOG_SEGMENT_MIN 4096 /* smallest opts.segment_bytes */

struct lt_evlog_opts {
	int64_t segment_bytes;	 /* roll past this size; >= 4096 (default 64 MiB) */
	int64_t retention_ms;	 /* 0: keep forever */
	int64_t retention_bytes; /* per topic; 0: no size limit */
	bool fsync;		 /* fdatasync each batch (default true; tests may turn it off) */
	bool read_only;		 /* open without recovery writes (leakyctl) */
};

/* A valid topic name: 1..LT_EV_TOPIC_MAX bytes of [a-z0-9._-], not "."
 * nor ".." (also the rule for consumer names, events/consumer.h). */
bool lt_evlog_topic_ok(const char *s, size_t n);

/* The defaults above. */
void lt_evlog_opts_default(struct lt_evlog_opts *o);

/* In a read-only open, "truncated" means ignored: the bytes stay. */
struct lt_evlog_recovery {
	size_t topics;		  /* topic directories found (with a segment) */
	size_t segments;	  /* segment files found */
	uint64_t records;	  /* valid records in all segments */
	uint64_t truncated_bytes; /* bytes cut from the last segments (0 normally) */
	size_t truncated_topics;  /* topics whose last segment was cut */
	size_t garbage_topics;	  /* of those, the ones cut at an invalid record
				   * (LT_ECORRUPT: bad magic, length, CRC, or an
				   * offset or topic out of sequence) rather than at
				   * a record cut short (LT_EAGAIN) */
};

/* Open dir (the events directory itself, e.g. <data_dir>/events; created
 * with its missing last component when not read-only) and recover.  rec
 * may be NULL; why may be NULL (why_cap 0).  LT_EINVAL: bad options
 * (segment_bytes below LT_EVLOG_SEGMENT_MIN, a negative retention) or a
 * path too long; LT_ENOTFOUND: read-only and dir does not exist; LT_EBUSY:
 * another writable handle has dir open; LT_EIO;
 * LT_ECORRUPT (an entry, segment name or sequence that is not ours, an
 * invalid record before the last segment, a gap of offsets between
 * segments); LT_ETOOBIG: more than LT_EVLOG_TOPICS_MAX topics; LT_ENOMEM.
 * A message is in why for every error.  An empty topic directory (a
 * crash between its mkdir and its first segment) is ignored. */
enum lt_err lt_evlog_open(const char *dir, const struct lt_evlog_opts *o, struct lt_evlog **out,
			  struct lt_evlog_recovery *rec, char *why, size_t why_cap);
void lt_evlog_close(struct lt_evlog *l);

/* Append n (1..LT_EVLOG_BATCH_MAX) events.  In: topic, type, key, payload,
 * time_ms, event_id of each; out: ev[i].offset (set only on LT_OK).
 * Offsets are assigned per topic in the order the events come.  All
 * records are written, then synced; on any failure the segments are
 * truncated back to where the batch started and segments it created are
 * deleted (nothing of it stays visible) and an error returned (LT_EINVAL:
 * n out of range or an event out of frame.h's bounds or a bad topic name,
 * nothing written; LT_EDENIED: a read-only log; LT_EBUSY: the batch would
 * make more than LT_EVLOG_TOPICS_MAX topics; LT_ENOMEM; LT_EIO: the disk,
 * or a log that refuses appends after a failed sync).  Callers must not
 * hold pointers into ev's strings that change while it runs. */
enum lt_err lt_evlog_append(struct lt_evlog *l, struct lt_event *ev, size_t n);

/* A topic's retained range: [*start, *end) (end = the next offset to be
 * assigned, as published to readers).  LT_ENOTFOUND for a topic never
 * written; LT_EINVAL for a bad topic name. */
enum lt_err lt_evlog_range(struct lt_evlog *l, const char *topic, uint64_t *start, uint64_t *end);

/* The largest event_id of any record in the log (0 if none): the relay
 * marks outbox rows up to it as published after a crash.  It counts every
 * record read at open or appended since, including records retention has
 * deleted since open. */
uint64_t lt_evlog_max_event_id(struct lt_evlog *l);

/* The topics, sorted by name; fn is called for each with its range and
 * size in bytes and segment count (a snapshot: fn runs without the lock
 * and may call the log; st->name lives as long as the log).  LT_ENOMEM. */
struct lt_evlog_topic_stat {
	const char *name;
	uint64_t start, end;
	uint64_t bytes;
	size_t segments;
};
enum lt_err lt_evlog_stat(struct lt_evlog *l,
			  void (*fn)(void *arg, const struct lt_evlog_topic_stat *st), void *arg);

/* Deliver topic's records with offsets in [from, end-as-of-now), at most
 * max (0: no limit), in order.  fn returning anything but LT_OK stops the
 * read and is returned; that record does not count as delivered.  *next
 * (may be NULL) = the offset after the last record delivered (from when
 * none).  from at or past the end: LT_OK, nothing delivered.  from below
 * the retained start: LT_ERANGE (*next = start) — the caller decides
 * whether to skip ahead; the same when retention deletes the next segment
 * during the read.  A topic never written: LT_ENOTFOUND; a bad topic name
 * or a NULL fn: LT_EINVAL; a record that fails its checks: LT_ECORRUPT;
 * LT_EIO; LT_ENOMEM.  fn runs without the log's locks and may call the
 * log (even append). */
typedef enum lt_err (*lt_evlog_fn)(void *arg, const struct lt_event *ev);
enum lt_err lt_evlog_read(struct lt_evlog *l, const char *topic, uint64_t from, size_t max,
			  lt_evlog_fn fn, void *arg, uint64_t *next);

/* Apply retention at now_ms; *removed (may be NULL) counts deleted
 * segments.  LT_EDENIED on a read-only log; LT_EIO when a file could not
 * be deleted (it is no longer part of the log; a later open finds it
 * again and takes it back). */
enum lt_err lt_evlog_retain(struct lt_evlog *l, int64_t now_ms, size_t *removed);

#endif
