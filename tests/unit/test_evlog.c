/*
 * test_evlog.c — src/events/{log,append,segment}.c on real files in a
 * temporary directory: append and read across topics and segments (small
 * segment_bytes), offsets per topic, reopen and continue, a torn or
 * garbage tail cut at every byte of the last record (and nothing earlier),
 * reads from the middle and with max, retention by bytes and by age (an
 * explicit now_ms), LT_ERANGE below the start, a read-only open that
 * changes no byte, damage before the last segment refused (LT_ECORRUPT,
 * files untouched), a failed write rolled back (RLIMIT_FSIZE makes the
 * disk "full"), retention during a read, and one appender with two
 * readers tailing the log in threads.
 *
 * Payloads carry a per-topic sequence number ("seq=N;") that every read
 * checks against the offset.  No timing: threads wait on conditions only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "events/evlog.h"
#include "testutil.h"

#define PAYLOAD 200
#define BATCH 64
#define REC (44 + 1 + 4 + 1 + PAYLOAD) /* a record of append_seq in a 1-byte topic */
#define PER (4096 / REC)	       /* such records in a 4096-byte segment: 16 */

struct fixture {
	char dir[TU_PATH_MAX];
	char ev[TU_PATH_MAX]; /* the events directory */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	tu_tmpdir(f->dir);
	tu_path(f->ev, f->dir, "events");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	tu_rmtree(f->dir);
	free(f);
	return 0;
}

static struct lt_evlog *open_log(const char *dir, int64_t seg, bool fsync, bool ro,
				 struct lt_evlog_recovery *rec)
{
	struct lt_evlog_opts o;
	struct lt_evlog *l = NULL;
	char why[256] = "";
	lt_evlog_opts_default(&o);
	o.segment_bytes = seg;
	o.fsync = fsync;
	o.read_only = ro;
	enum lt_err e = lt_evlog_open(dir, &o, &l, rec, why, sizeof why);
	if (e != LT_OK)
		fail_msg("lt_evlog_open: %s: %s", lt_strerror(e), why);
	return l;
}

/* The payload of seq n in topic: "seq=N;topic=T;" padded with 'x' to size. */
static size_t fill_payload(char *out, size_t size, const char *topic, uint64_t n)
{
	int k = snprintf(out, size + 1, "seq=%" PRIu64 ";topic=%s;", n, topic);
	assert_true(k > 0 && (size_t)k <= size);
	memset(out + k, 'x', size - (size_t)k);
	return size;
}

/* The seq of a payload; UINT64_MAX when it has none (no assert: threads
 * call it). */
static uint64_t payload_seq(const struct lt_event *ev)
{
	char tmp[32];
	size_t n = ev->payload_len < sizeof tmp - 1 ? ev->payload_len : sizeof tmp - 1;
	memcpy(tmp, ev->payload, n);
	tmp[n] = '\0';
	if (strncmp(tmp, "seq=", 4) != 0)
		return UINT64_MAX;
	return strtoull(tmp + 4, NULL, 10);
}

/* Append count events to topic with seqs first.. in batches of at most
 * batch, time_ms = t0 + seq, event_id = id0 + seq; checks the offsets are
 * the seqs (the topic's records are exactly these, in order). */
static void append_seq(struct lt_evlog *l, const char *topic, uint64_t first, size_t count,
		       size_t batch, size_t psize, int64_t t0, uint64_t id0)
{
	static char pay[BATCH][2 * PAYLOAD + 64];
	struct lt_event ev[BATCH];
	assert_true(batch <= BATCH && psize <= sizeof pay[0] - 1);
	for (size_t done = 0; done < count;) {
		size_t n = count - done < batch ? count - done : batch;
		for (size_t i = 0; i < n; i++) {
			uint64_t seq = first + done + i;
			memset(&ev[i], 0, sizeof ev[i]);
			ev[i].topic = topic;
			ev[i].topic_len = strlen(topic);
			ev[i].type = "test";
			ev[i].type_len = 4;
			ev[i].key = "k";
			ev[i].key_len = 1;
			ev[i].payload = pay[i];
			ev[i].payload_len = fill_payload(pay[i], psize, topic, seq);
			ev[i].time_ms = t0 + (int64_t)seq;
			ev[i].event_id = id0 + seq;
			ev[i].offset = 999999;
		}
		assert_int_equal(lt_evlog_append(l, ev, n), LT_OK);
		for (size_t i = 0; i < n; i++)
			assert_true(ev[i].offset == first + done + i);
		done += n;
	}
}

struct got {
	const char *topic;
	uint64_t next; /* expected offset */
	size_t count;
	uint64_t first;
	int64_t stop_at; /* return LT_EBUSY at this offset (-1: never) */
};

static enum lt_err collect(void *arg, const struct lt_event *ev)
{
	struct got *g = arg;
	if ((int64_t)ev->offset == g->stop_at)
		return LT_EBUSY;
	if (g->count == 0)
		g->first = ev->offset;
	else
		assert_true(ev->offset == g->next);
	assert_int_equal(ev->topic_len, strlen(g->topic));
	assert_memory_equal(ev->topic, g->topic, ev->topic_len);
	assert_true(payload_seq(ev) == ev->offset);
	assert_int_equal(ev->type_len, 4);
	assert_memory_equal(ev->type, "test", 4);
	g->next = ev->offset + 1;
	g->count++;
	return LT_OK;
}

/* Read [from, from+max) and check it is exactly [want_first, want_next). */
static void read_check(struct lt_evlog *l, const char *topic, uint64_t from, size_t max,
		       uint64_t want_first, uint64_t want_next)
{
	struct got g = {topic, 0, 0, 0, -1};
	uint64_t next = 12345;
	assert_int_equal(lt_evlog_read(l, topic, from, max, collect, &g, &next), LT_OK);
	assert_true(next == want_next);
	assert_int_equal(g.count, want_next - want_first);
	if (g.count)
		assert_true(g.first == want_first && g.next == want_next);
}

static void seg_file(char out[TU_PATH_MAX], const char *evdir, const char *topic, uint64_t base)
{
	int n = snprintf(out, TU_PATH_MAX, "%s/%s/%020" PRIu64 ".log", evdir, topic, base);
	assert_true(n > 0 && n < TU_PATH_MAX);
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static off_t file_size(const char *path)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

struct stats {
	size_t n;
	char names[8][LT_EV_TOPIC_MAX + 1];
	struct lt_evlog_topic_stat st[8];
};

static void stat_fn(void *arg, const struct lt_evlog_topic_stat *st)
{
	struct stats *s = arg;
	assert_true(s->n < 8);
	snprintf(s->names[s->n], sizeof s->names[0], "%s", st->name);
	s->st[s->n] = *st;
	s->n++;
}

static struct lt_evlog_topic_stat topic_stat(struct lt_evlog *l, const char *topic)
{
	struct stats s = {0};
	assert_int_equal(lt_evlog_stat(l, stat_fn, &s), LT_OK);
	for (size_t i = 0; i < s.n; i++)
		if (!strcmp(s.names[i], topic))
			return s.st[i];
	fail_msg("no topic %s", topic);
	return s.st[0];
}

/* ---- tests ---- */

static void test_round_trip_topics_segments(void **state)
{
	struct fixture *f = *state;
	struct lt_evlog *l = open_log(f->ev, 4096, false, false, NULL);
	const char *topics[] = {"usage", "saga.purchase", "audit-log_1"};
	uint64_t n[3] = {0, 0, 0};
	/* Interleave topics inside batches: offsets are per topic. */
	static char pay[3 * 40][PAYLOAD + 1];
	uint64_t maxid = 0;
	for (int round = 0; round < 20; round++) {
		struct lt_event ev[3 * 40];
		size_t k = 0;
		for (int i = 0; i < 40; i++)
			for (int t = 0; t < 3; t++) {
				if ((round + i + t) % 3 == 0 && t != 0)
					continue;
				memset(&ev[k], 0, sizeof ev[k]);
				ev[k].topic = topics[t];
				ev[k].topic_len = strlen(topics[t]);
				ev[k].type = "test";
				ev[k].type_len = 4;
				ev[k].payload = pay[k];
				ev[k].payload_len = fill_payload(pay[k], PAYLOAD, topics[t], n[t]);
				ev[k].event_id = (uint64_t)(round * 1000 + k);
				if (ev[k].event_id > maxid)
					maxid = ev[k].event_id;
				ev[k].offset = n[t]++; /* what we expect back */
				k++;
			}
		uint64_t want[3 * 40];
		for (size_t i = 0; i < k; i++)
			want[i] = ev[i].offset;
		assert_int_equal(lt_evlog_append(l, ev, k), LT_OK);
		for (size_t i = 0; i < k; i++)
			assert_true(ev[i].offset == want[i]);
	}
	for (int t = 0; t < 3; t++) {
		uint64_t start = 9, end = 9;
		assert_int_equal(lt_evlog_range(l, topics[t], &start, &end), LT_OK);
		assert_true(start == 0 && end == n[t]);
		read_check(l, topics[t], 0, 0, 0, n[t]);
		struct lt_evlog_topic_stat st = topic_stat(l, topics[t]);
		assert_true(st.segments > 3);
		assert_true(st.start == 0 && st.end == n[t]);
	}
	/* Segment files: consecutive bases, none past segment_bytes. */
	char path[TU_PATH_MAX];
	seg_file(path, f->ev, "usage", 0);
	assert_true(exists(path));
	assert_true(file_size(path) <= 4096);
	assert_true(lt_evlog_max_event_id(l) == maxid);
	/* stat lists topics sorted. */
	struct stats s = {0};
	assert_int_equal(lt_evlog_stat(l, stat_fn, &s), LT_OK);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.names[0], "audit-log_1");
	assert_string_equal(s.names[1], "saga.purchase");
	assert_string_equal(s.names[2], "usage");
	lt_evlog_close(l);
}

static void test_reopen_continue(void **state)
{
	struct fixture *f = *state;
	struct lt_evlog_recovery rec;
	struct lt_evlog *l = open_log(f->ev, 4096, true, false, &rec);
	assert_int_equal(rec.topics, 0);
	assert_true(lt_evlog_max_event_id(l) == 0);
	append_seq(l, "a", 0, 100, 7, PAYLOAD, 1000, 500);
	append_seq(l, "b", 0, 30, 30, 50, 1000, 100);
	lt_evlog_close(l);

	l = open_log(f->ev, 4096, true, false, &rec);
	assert_int_equal(rec.topics, 2);
	assert_true(rec.records == 130);
	assert_true(rec.truncated_bytes == 0 && rec.truncated_topics == 0);
	assert_true(rec.segments > 2);
	assert_true(lt_evlog_max_event_id(l) == 500 + 99);
	uint64_t start, end;
	assert_int_equal(lt_evlog_range(l, "a", &start, &end), LT_OK);
	assert_true(start == 0 && end == 100);
	append_seq(l, "a", 100, 50, 16, PAYLOAD, 1000, 500);
	append_seq(l, "c", 0, 1, 1, 0 + 20, 1000, 10);
	read_check(l, "a", 0, 0, 0, 150);
	read_check(l, "b", 0, 0, 0, 30);
	assert_true(lt_evlog_max_event_id(l) == 500 + 149);
	lt_evlog_close(l);

	l = open_log(f->ev, 1 << 20, false, false, &rec); /* another segment size is fine */
	assert_true(rec.records == 181 && rec.topics == 3);
	read_check(l, "a", 0, 0, 0, 150);
	read_check(l, "c", 0, 0, 0, 1);
	lt_evlog_close(l);
}

/* The bytes of the topic's last segment file and its base. */
static char *last_segment(const char *evdir, const char *topic, uint64_t *base, size_t *len,
			  char path[TU_PATH_MAX])
{
	char tdir[TU_PATH_MAX];
	tu_path(tdir, evdir, topic);
	DIR *d = opendir(tdir);
	assert_non_null(d);
	struct dirent *e;
	uint64_t best = 0;
	bool any = false;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		uint64_t b = strtoull(e->d_name, NULL, 10);
		if (!any || b > best)
			best = b;
		any = true;
	}
	closedir(d);
	assert_true(any);
	*base = best;
	seg_file(path, evdir, topic, best);
	return tu_read_file(path, len);
}

static void test_torn_tail_every_byte(void **state)
{
	struct fixture *f = *state;
	struct lt_evlog *l = open_log(f->ev, 4096, false, false, NULL);
	append_seq(l, "t", 0, 40, 8, PAYLOAD, 0, 0); /* several segments */
	uint64_t start, end;
	assert_int_equal(lt_evlog_range(l, "t", &start, &end), LT_OK);
	lt_evlog_close(l);
	assert_true(end == 40);

	uint64_t base;
	size_t full;
	char path[TU_PATH_MAX];
	char *orig = last_segment(f->ev, "t", &base, &full, path);
	assert_true(base > 0);
	size_t rec_len = full / (size_t)(end - base); /* all records have one size */
	assert_int_equal(rec_len * (end - base), full);
	size_t last_start = full - rec_len;
	const char garbage[] = "\xde\xad\xbe\xef garbage after a crash";
	char *buf = malloc(full + sizeof garbage);
	assert_non_null(buf);

	for (int with_garbage = 0; with_garbage < 2; with_garbage++)
		for (size_t cut = last_start; cut < full; cut++) {
			size_t n = cut;
			memcpy(buf, orig, cut);
			if (with_garbage) {
				memcpy(buf + cut, garbage, sizeof garbage);
				n += sizeof garbage;
			}
			tu_write_file(path, buf, n);
			struct lt_evlog_recovery rec;
			l = open_log(f->ev, 4096, false, false, &rec);
			assert_true(rec.truncated_bytes == n - last_start);
			assert_int_equal(rec.truncated_topics, n > last_start ? 1 : 0);
			if (with_garbage && cut == last_start)
				assert_int_equal(rec.garbage_topics, 1); /* bad magic */
			if (!with_garbage && cut > last_start)
				assert_int_equal(rec.garbage_topics, 0); /* cut short */
			assert_true(file_size(path) == (off_t)last_start);
			assert_int_equal(lt_evlog_range(l, "t", &start, &end), LT_OK);
			assert_true(start == 0 && end == 39);
			assert_true(lt_evlog_max_event_id(l) == 38);
			read_check(l, "t", 0, 0, 0, 39);
			/* Appends continue with the right offset, in the same file. */
			append_seq(l, "t", 39, 1, 1, PAYLOAD, 0, 0);
			read_check(l, "t", 30, 0, 30, 40);
			lt_evlog_close(l);
			size_t now;
			char *again = tu_read_file(path, &now);
			assert_int_equal(now, full);
			assert_memory_equal(again, orig, full);
			free(again);
		}

	/* Garbage after the whole last record: nothing valid is lost. */
	memcpy(buf, orig, full);
	memset(buf + full, 0, sizeof garbage); /* zeros, as a crash may leave */
	tu_write_file(path, buf, full + sizeof garbage);
	struct lt_evlog_recovery rec;
	l = open_log(f->ev, 4096, true, false, &rec);
	assert_true(rec.truncated_bytes == sizeof garbage && rec.garbage_topics == 1);
	read_check(l, "t", 0, 0, 0, 40);
	lt_evlog_close(l);
	assert_true(file_size(path) == (off_t)full);
	free(buf);
	free(orig);
}

static void test_read_only_changes_nothing(void **state)
{
	struct fixture *f = *state;
	struct lt_evlog *l = open_log(f->ev, 4096, false, false, NULL);
	append_seq(l, "t", 0, 30, 30, PAYLOAD, 0, 7);
	lt_evlog_close(l);
	uint64_t base;
	size_t full, len;
	char path[TU_PATH_MAX];
	char *orig = last_segment(f->ev, "t", &base, &full, path);
	tu_write_file(path, orig, full - 5); /* a torn tail */
	char *torn = tu_read_file(path, &len);

	struct lt_evlog_recovery rec;
	l = open_log(f->ev, 4096, false, true, &rec);
	assert_true(rec.truncated_topics == 1 && rec.truncated_bytes > 0);
	uint64_t start, end;
	assert_int_equal(lt_evlog_range(l, "t", &start, &end), LT_OK);
	assert_true(end == 29);
	read_check(l, "t", 0, 0, 0, 29);
	struct lt_event ev = {0};
	ev.topic = "t";
	ev.topic_len = 1;
	assert_int_equal(lt_evlog_append(l, &ev, 1), LT_EDENIED);
	size_t removed = 9;
	assert_int_equal(lt_evlog_retain(l, INT64_MAX, &removed), LT_EDENIED);
	lt_evlog_close(l);

	char *after = tu_read_file(path, &len);
	assert_int_equal(len, full - 5);
	assert_memory_equal(after, torn, len);
	free(after);
	free(torn);
	free(orig);

	/* A read-only open of a missing directory creates nothing. */
	char missing[TU_PATH_MAX];
	struct lt_evlog_opts o;
	lt_evlog_opts_default(&o);
	o.read_only = true;
	char why[128];
	assert_int_equal(
		lt_evlog_open(tu_path(missing, f->dir, "nope"), &o, &l, NULL, why, sizeof why),
		LT_ENOTFOUND);
	assert_null(l);
	assert_false(exists(missing));
}

static void test_read_middle_and_max(void **state)
{
	struct fixture *f = *state;
	/* One big segment: the index (every 64 KiB) is what finds the middle. */
	struct lt_evlog *l = open_log(f->ev, 4 << 20, false, false, NULL);
	append_seq(l, "m", 0, 3000, BATCH, PAYLOAD, 0, 0);
	const uint64_t froms[] = {0, 1, 299, 300, 301, 1234, 2047, 2999};
	for (size_t i = 0; i < sizeof froms / sizeof froms[0]; i++) {
		uint64_t from = froms[i];
		read_check(l, "m", from, 0, from, 3000);
		read_check(l, "m", from, 1, from, from + 1);
		uint64_t to = from + 17 < 3000 ? from + 17 : 3000;
		read_check(l, "m", from, 17, from, to);
	}
	read_check(l, "m", 3000, 0, 3000, 3000); /* at the end */
	read_check(l, "m", 5000, 0, 5000, 5000); /* past it */
	struct got g = {"m", 0, 0, 0, -1};
	assert_int_equal(lt_evlog_read(l, "nothere", 0, 0, collect, &g, NULL), LT_ENOTFOUND);
	assert_int_equal(lt_evlog_range(l, "nothere", NULL, NULL), LT_ENOTFOUND);
	/* fn stops the read: that record is not delivered, next points at it. */
	g = (struct got){"m", 0, 0, 0, 1500};
	uint64_t next = 0;
	assert_int_equal(lt_evlog_read(l, "m", 1000, 0, collect, &g, &next), LT_EBUSY);
	assert_true(next == 1500 && g.count == 500);
	/* Across segments too, from the middle of each. */
	lt_evlog_close(l);
	l = open_log(f->ev, 4096, false, false, NULL);
	read_check(l, "m", 1777, 100, 1777, 1877);
	append_seq(l, "m", 3000, 100, 10, PAYLOAD, 0, 0);
	read_check(l, "m", 2990, 50, 2990, 3040);
	read_check(l, "m", 3033, 0, 3033, 3100);
	lt_evlog_close(l);
}

static void test_big_record_own_segment(void **state)
{
	struct fixture *f = *state;
	struct lt_evlog *l = open_log(f->ev, 4096, false, false, NULL);
	append_seq(l, "b", 0, 3, 3, 100, 0, 0);
	append_seq(l, "b", 3, 1, 1, 2 * PAYLOAD + 60, 0, 0); /* fits */
	static char big[10000];
	memset(big, 'x', sizeof big);
	memcpy(big, "seq=4;", 6);
	struct lt_event ev[2] = {{0}};
	ev[0].topic = ev[1].topic = "b";
	ev[0].topic_len = ev[1].topic_len = 1;
	ev[0].type = ev[1].type = "test";
	ev[0].type_len = ev[1].type_len = 4;
	ev[0].payload = big;
	ev[0].payload_len = sizeof big;
	ev[1].payload = "seq=5;";
	ev[1].payload_len = 6;
	assert_int_equal(lt_evlog_append(l, ev, 2), LT_OK);
	assert_true(ev[0].offset == 4 && ev[1].offset == 5);
	char path[TU_PATH_MAX];
	seg_file(path, f->ev, "b", 4);
	assert_true(file_size(path) > 4096);
	assert_true(file_size(path) == (off_t)(44 + 1 + 4 + sizeof big));
	seg_file(path, f->ev, "b", 5);
	assert_true(exists(path));
	read_check(l, "b", 0, 0, 0, 6);
	lt_evlog_close(l);
	l = open_log(f->ev, 4096, false, false, NULL);
	read_check(l, "b", 4, 1, 4, 5);
	assert_int_equal(topic_stat(l, "b").segments, 3);
	lt_evlog_close(l);
}

static void test_retention(void **state)
{
	struct fixture *f = *state;
	struct lt_evlog_opts o;
	lt_evlog_opts_default(&o);
	o.segment_bytes = 4096;
	o.fsync = false;
	o.retention_ms = 1000;
	struct lt_evlog *l;
	char why[256];
	assert_int_equal(lt_evlog_open(f->ev, &o, &l, NULL, why, sizeof why), LT_OK);
	/* time_ms = 10000 + seq; each segment holds PER records of REC bytes. */
	append_seq(l, "r", 0, 100, 10, PAYLOAD, 10000, 0);
	append_seq(l, "keep", 0, 5, 5, PAYLOAD, 10000, 0);
	struct lt_evlog_topic_stat st = topic_stat(l, "r");
	size_t segs = st.segments;
	assert_true(segs >= 6);
	size_t removed = 99;
	/* Nothing is older than 1000 ms when the first segment's newest record
	 * (seq PER - 1) is exactly 1000 ms old. */
	assert_int_equal(lt_evlog_retain(l, 10000 + PER - 1 + 1000, &removed), LT_OK);
	assert_int_equal(removed, 0);
	assert_int_equal(lt_evlog_retain(l, 10000 + PER - 1 + 1001, &removed), LT_OK);
	assert_int_equal(removed, 1);
	uint64_t start, end;
	assert_int_equal(lt_evlog_range(l, "r", &start, &end), LT_OK);
	assert_true(start == PER && end == 100);
	char path[TU_PATH_MAX];
	seg_file(path, f->ev, "r", 0);
	assert_false(exists(path));
	struct got g = {"r", 0, 0, 0, -1};
	uint64_t next = 0;
	assert_int_equal(lt_evlog_read(l, "r", 3, 0, collect, &g, &next), LT_ERANGE);
	assert_true(next == PER && g.count == 0);
	read_check(l, "r", PER, 0, PER, 100);
	/* Far in the future: everything but the active segment goes, in every topic. */
	assert_int_equal(lt_evlog_retain(l, INT64_MAX, &removed), LT_OK);
	assert_int_equal(removed, segs - 2);
	st = topic_stat(l, "r");
	assert_int_equal(st.segments, 1);
	assert_true(st.end == 100 && st.start > PER);
	assert_true(st.bytes == (uint64_t)(st.end - st.start) * REC);
	read_check(l, "r", st.start, 0, st.start, 100);
	assert_int_equal(topic_stat(l, "keep").segments, 1);
	assert_true(lt_evlog_max_event_id(l) == 99); /* what was deleted still counts */
	append_seq(l, "r", 100, 1, 1, PAYLOAD, 10000, 0);
	lt_evlog_close(l);

	/* By size: keep at most 3 full segments' worth. */
	o.retention_ms = 0;
	o.retention_bytes = 3 * PER * REC;
	assert_int_equal(lt_evlog_open(f->ev, &o, &l, NULL, why, sizeof why), LT_OK);
	append_seq(l, "s", 0, 10 * PER, PER, PAYLOAD, 0, 0); /* 10 full segments */
	assert_int_equal(topic_stat(l, "s").segments, 10);
	assert_int_equal(lt_evlog_retain(l, 0, &removed), LT_OK);
	assert_int_equal(removed, 7);
	st = topic_stat(l, "s");
	assert_true(st.segments == 3 && st.start == 7 * PER && st.bytes == 3 * PER * REC);
	assert_int_equal(lt_evlog_read(l, "s", 7 * PER - 1, 0, collect, &g, &next), LT_ERANGE);
	assert_true(next == 7 * PER);
	lt_evlog_close(l);
	/* Reopen: what retention left is what loads. */
	l = open_log(f->ev, 4096, false, false, NULL);
	assert_int_equal(lt_evlog_range(l, "s", &start, &end), LT_OK);
	assert_true(start == 7 * PER && end == 10 * PER);
	assert_int_equal(lt_evlog_range(l, "r", &start, &end), LT_OK);
	assert_true(end == 101);
	lt_evlog_close(l);
}

struct retain_ctx {
	struct lt_evlog *l;
	struct got g;
	bool done;
};

static enum lt_err retain_in_read(void *arg, const struct lt_event *ev)
{
	struct retain_ctx *c = arg;
	if (!c->done) {
		size_t removed = 0;
		c->done = true;
		assert_int_equal(lt_evlog_retain(c->l, INT64_MAX, &removed), LT_OK);
		assert_true(removed > 0);
	}
	return collect(&c->g, ev);
}

static void test_retention_during_read(void **state)
{
	struct fixture *f = *state;
	struct lt_evlog_opts o;
	lt_evlog_opts_default(&o);
	o.segment_bytes = 4096;
	o.fsync = false;
	o.retention_ms = 1;
	struct lt_evlog *l;
	assert_int_equal(lt_evlog_open(f->ev, &o, &l, NULL, NULL, 0), LT_OK);
	append_seq(l, "r", 0, 3 * PER + 5, PER, PAYLOAD, 0, 0); /* 4 segments */
	struct retain_ctx c = {l, {"r", 0, 0, 0, -1}, false};
	uint64_t next = 0;
	/* The segment being read was deleted: the reader finishes its file,
	 * then finds the next one gone. */
	assert_int_equal(lt_evlog_read(l, "r", 0, 0, retain_in_read, &c, &next), LT_ERANGE);
	assert_true(c.g.count == PER && next == 3 * PER);
	read_check(l, "r", next, 0, 3 * PER, 3 * PER + 5);
	lt_evlog_close(l);
}

static void test_damage_before_last_refused(void **state)
{
	struct fixture *f = *state;
	struct lt_evlog *l = open_log(f->ev, 4096, false, false, NULL);
	append_seq(l, "d", 0, 60, PER, PAYLOAD, 0, 0); /* segments 0, PER, 2 PER, 3 PER */
	lt_evlog_close(l);
	char p15[TU_PATH_MAX], p30[TU_PATH_MAX];
	seg_file(p15, f->ev, "d", PER);
	seg_file(p30, f->ev, "d", 2 * PER);
	size_t len15 = 0, len30 = 0;
	char *s15 = tu_read_file(p15, &len15);
	char *s30 = tu_read_file(p30, &len30);

	/* A flipped byte in a middle segment. */
	s15[500] ^= 1;
	tu_write_file(p15, s15, len15);
	struct lt_evlog_opts o;
	lt_evlog_opts_default(&o);
	o.segment_bytes = 4096;
	char why[256] = "";
	assert_int_equal(lt_evlog_open(f->ev, &o, &l, NULL, why, sizeof why), LT_ECORRUPT);
	assert_non_null(strstr(why, "not the topic's last"));
	size_t n;
	char *now = tu_read_file(p15, &n);
	assert_int_equal(n, len15);
	assert_memory_equal(now, s15, n);
	free(now);
	s15[500] ^= 1;
	/* A torn middle segment. */
	tu_write_file(p15, s15, len15 - 3);
	assert_int_equal(lt_evlog_open(f->ev, &o, &l, NULL, why, sizeof why), LT_ECORRUPT);
	assert_true(file_size(p15) == (off_t)len15 - 3);
	tu_write_file(p15, s15, len15);
	/* A missing middle segment: a gap. */
	assert_int_equal(unlink(p30), 0);
	assert_int_equal(lt_evlog_open(f->ev, &o, &l, NULL, why, sizeof why), LT_ECORRUPT);
	assert_non_null(strstr(why, "gap"));
	tu_write_file(p30, s30, len30);
	/* A file that is not ours. */
	char stray[TU_PATH_MAX];
	int k = snprintf(stray, sizeof stray, "%s/d/notes.txt", f->ev);
	assert_true(k > 0 && k < (int)sizeof stray);
	tu_write_file(stray, "hi", 2);
	assert_int_equal(lt_evlog_open(f->ev, &o, &l, NULL, why, sizeof why), LT_ECORRUPT);
	assert_non_null(strstr(why, "notes.txt"));
	unlink(stray);
	/* An empty topic directory (crash before its first segment) is ignored. */
	assert_int_equal(mkdir(tu_path(stray, f->ev, "empty"), 0750), 0);
	struct lt_evlog_recovery rec;
	l = open_log(f->ev, 4096, false, false, &rec);
	assert_int_equal(rec.topics, 1);
	assert_int_equal(lt_evlog_range(l, "empty", NULL, NULL), LT_ENOTFOUND);
	read_check(l, "d", 0, 0, 0, 60);
	append_seq(l, "empty", 0, 2, 2, 30, 0, 0); /* and can be used */
	lt_evlog_close(l);
	free(s15);
	free(s30);
}

static void test_bad_arguments(void **state)
{
	struct fixture *f = *state;
	struct lt_evlog_opts o;
	lt_evlog_opts_default(&o);
	assert_true(o.segment_bytes == 64 << 20 && o.fsync && !o.read_only);
	struct lt_evlog *l = NULL;
	o.segment_bytes = 4095;
	assert_int_equal(lt_evlog_open(f->ev, &o, &l, NULL, NULL, 0), LT_EINVAL);
	o.segment_bytes = 4096;
	o.retention_ms = -1;
	assert_int_equal(lt_evlog_open(f->ev, &o, &l, NULL, NULL, 0), LT_EINVAL);
	assert_null(l);
	l = open_log(f->ev, 4096, false, false, NULL);
	append_seq(l, "ok", 0, 1, 1, 30, 0, 0);
	/* One writer at a time; readers (leakyctl) alongside. */
	struct lt_evlog *l2 = NULL;
	char why[256] = "";
	o.retention_ms = 0;
	assert_int_equal(lt_evlog_open(f->ev, &o, &l2, NULL, why, sizeof why), LT_EBUSY);
	assert_null(l2);
	assert_non_null(strstr(why, "another writer"));
	o.read_only = true;
	assert_int_equal(lt_evlog_open(f->ev, &o, &l2, NULL, why, sizeof why), LT_OK);
	read_check(l2, "ok", 0, 0, 0, 1);
	lt_evlog_close(l2);

	char s65[66];
	memset(s65, 'a', 65);
	s65[65] = '\0';
	const char *bad[] = {"", "A", "a/b", "..", ".", "a b", "é", s65};
	struct got g = {"ok", 0, 0, 0, -1};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct lt_event ev = {0};
		ev.topic = bad[i];
		ev.topic_len = strlen(bad[i]);
		assert_int_equal(lt_evlog_append(l, &ev, 1), LT_EINVAL);
		assert_int_equal(lt_evlog_range(l, bad[i], NULL, NULL), LT_EINVAL);
		assert_int_equal(lt_evlog_read(l, bad[i], 0, 0, collect, &g, NULL), LT_EINVAL);
	}
	s65[64] = '\0'; /* 64 is the maximum */
	append_seq(l, s65, 0, 1, 1, 100, 0, 0);

	/* One bad event in a batch: nothing of the batch is written. */
	char path[TU_PATH_MAX];
	seg_file(path, f->ev, "ok", 0);
	off_t before = file_size(path);
	struct lt_event ev[3] = {{0}};
	for (int i = 0; i < 3; i++) {
		ev[i].topic = "ok";
		ev[i].topic_len = 2;
		ev[i].payload = "seq=1;";
		ev[i].payload_len = 6;
	}
	ev[2].key = "k\0";
	ev[2].key_len = 2;
	assert_int_equal(lt_evlog_append(l, ev, 3), LT_EINVAL);
	ev[2].key_len = 1;
	ev[1].topic = "new-topic";
	ev[1].topic_len = 9;
	ev[1].payload_len = LT_EV_PAYLOAD_MAX + 1;
	assert_int_equal(lt_evlog_append(l, ev, 3), LT_EINVAL);
	assert_true(file_size(path) == before);
	assert_int_equal(lt_evlog_range(l, "new-topic", NULL, NULL), LT_ENOTFOUND);
	assert_int_equal(lt_evlog_append(l, ev, 0), LT_EINVAL);
	assert_int_equal(lt_evlog_append(l, ev, LT_EVLOG_BATCH_MAX + 1), LT_EINVAL);
	assert_int_equal(lt_evlog_read(l, "ok", 0, 0, NULL, NULL, NULL), LT_EINVAL);
	uint64_t end;
	assert_int_equal(lt_evlog_range(l, "ok", NULL, &end), LT_OK);
	assert_true(end == 1);
	lt_evlog_close(l);
}

static void test_batch_max(void **state)
{
	struct fixture *f = *state;
	struct lt_evlog *l = open_log(f->ev, 64 << 10, false, false, NULL);
	struct lt_event *ev = calloc(LT_EVLOG_BATCH_MAX, sizeof *ev);
	char(*pay)[24] = calloc(LT_EVLOG_BATCH_MAX, sizeof *pay);
	assert_non_null(ev);
	assert_non_null(pay);
	for (size_t i = 0; i < LT_EVLOG_BATCH_MAX; i++) {
		const char *t = i % 2 ? "odd" : "even";
		ev[i].topic = t;
		ev[i].topic_len = strlen(t);
		ev[i].type = "test";
		ev[i].type_len = 4;
		ev[i].payload = pay[i];
		ev[i].payload_len = (size_t)snprintf(pay[i], sizeof pay[i], "seq=%zu;", i / 2);
		ev[i].event_id = i + 1;
	}
	assert_int_equal(lt_evlog_append(l, ev, LT_EVLOG_BATCH_MAX), LT_OK);
	for (size_t i = 0; i < LT_EVLOG_BATCH_MAX; i++)
		assert_true(ev[i].offset == i / 2);
	read_check(l, "odd", 0, 0, 0, LT_EVLOG_BATCH_MAX / 2);
	read_check(l, "even", 1000, 0, 1000, LT_EVLOG_BATCH_MAX / 2);
	assert_true(lt_evlog_max_event_id(l) == LT_EVLOG_BATCH_MAX);
	lt_evlog_close(l);
	free(ev);
	free(pay);
}

/* Writes past limit bytes in any file fail (EFBIG) while this is set. */
static void file_limit(rlim_t limit)
{
	struct rlimit r;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &r), 0);
	r.rlim_cur = limit;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &r), 0);
}

static void test_failed_write_rolls_back(void **state)
{
	struct fixture *f = *state;
	signal(SIGXFSZ, SIG_IGN);
	struct rlimit saved;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	struct lt_evlog *l = open_log(f->ev, 4096, true, false, NULL);
	/* 246-byte records: 44 + 1 + 4 + 1 + 196. */
	append_seq(l, "t", 0, 10, 10, 196, 0, 0);
	char a[TU_PATH_MAX], b[TU_PATH_MAX];
	seg_file(a, f->ev, "t", 0);
	assert_true(file_size(a) == 2460);

	/* Inside one segment: a short write, then EFBIG. */
	file_limit(2460 + 2 * 246 + 100);
	struct lt_event ev[5];
	static char pay[5][200];
	for (int i = 0; i < 5; i++) {
		memset(&ev[i], 0, sizeof ev[i]);
		ev[i].topic = "t";
		ev[i].topic_len = 1;
		ev[i].type = "test";
		ev[i].type_len = 4;
		ev[i].key = "k";
		ev[i].key_len = 1;
		ev[i].payload = pay[i];
		ev[i].payload_len = fill_payload(pay[i], 196, "t", (uint64_t)(10 + i));
	}
	assert_int_equal(lt_evlog_append(l, ev, 5), LT_EIO);
	file_limit(saved.rlim_cur);
	assert_true(file_size(a) == 2460);
	uint64_t start, end;
	assert_int_equal(lt_evlog_range(l, "t", &start, &end), LT_OK);
	assert_true(end == 10);
	read_check(l, "t", 0, 0, 0, 10);
	append_seq(l, "t", 10, 5, 5, 196, 0, 0); /* the log goes on */
	assert_true(file_size(a) == 15 * 246);

	/* Across a roll: the new segment's write fails after the old one was
	 * written and synced; the new file goes, the old one is cut back. */
	static char big[3780]; /* a 3830-byte record: with the one before, 4076 bytes */
	memset(big, 'x', sizeof big);
	memcpy(big, "seq=17;", 7);
	ev[0].payload_len = fill_payload(pay[0], 196, "t", 15); /* fits segment 0 */
	ev[1].payload_len = fill_payload(pay[1], 196, "t", 16); /* rolls */
	ev[2].payload = big;					/* too big for the limit */
	ev[2].payload_len = sizeof big;
	file_limit(4000);
	assert_int_equal(lt_evlog_append(l, ev, 3), LT_EIO);
	file_limit(saved.rlim_cur);
	seg_file(b, f->ev, "t", 16);
	assert_false(exists(b));
	assert_true(file_size(a) == 15 * 246);
	assert_int_equal(lt_evlog_range(l, "t", &start, &end), LT_OK);
	assert_true(end == 15);
	assert_int_equal(topic_stat(l, "t").segments, 1);
	/* Same batch without the limit. */
	assert_int_equal(lt_evlog_append(l, ev, 3), LT_OK);
	assert_true(ev[0].offset == 15 && ev[1].offset == 16 && ev[2].offset == 17);
	assert_true(exists(b));
	lt_evlog_close(l);
	struct lt_evlog_recovery rec;
	l = open_log(f->ev, 4096, true, false, &rec);
	assert_true(rec.truncated_bytes == 0 && rec.records == 18);
	struct got g = {"t", 0, 0, 0, -1};
	assert_int_equal(lt_evlog_read(l, "t", 0, 0, collect, &g, NULL), LT_OK);
	assert_int_equal(g.count, 18);
	lt_evlog_close(l);
	signal(SIGXFSZ, SIG_DFL);
}

/* ---- one appender, two readers ---- */

#define CONC_TOTAL 20000

struct conc {
	struct lt_evlog *l;
	_Atomic bool failed;
	_Atomic bool done;
};

struct reader {
	struct conc *c;
	size_t max; /* per read */
	uint64_t next;
	uint64_t reads;
	bool bad;
};

static enum lt_err tail_fn(void *arg, const struct lt_event *ev)
{
	struct reader *r = arg;
	if (ev->offset != r->next || payload_seq(ev) != ev->offset || ev->topic_len != 4 ||
	    memcmp(ev->topic, "tail", 4) != 0) {
		r->bad = true;
		return LT_ECORRUPT;
	}
	r->next++;
	return LT_OK;
}

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	const struct timespec pause = {0, 50000};
	/* Bounded: a hang fails instead of blocking the suite. */
	for (long spins = 0; r->next < CONC_TOTAL && spins < 2000000; spins++) {
		uint64_t next = r->next;
		enum lt_err e = lt_evlog_read(r->c->l, "tail", r->next, r->max, tail_fn, r, &next);
		r->reads++;
		if (e == LT_ENOTFOUND && !r->c->done) {
			nanosleep(&pause, NULL);
			continue;
		}
		if (e != LT_OK || next != r->next || r->bad) {
			r->bad = true;
			break;
		}
		if (r->c->failed)
			break;
		if (r->next < CONC_TOTAL)
			nanosleep(&pause, NULL);
	}
	return NULL;
}

static void *appender_main(void *arg)
{
	struct conc *c = arg;
	static char pay[BATCH][PAYLOAD + 1];
	struct lt_event ev[BATCH];
	uint64_t seq = 0;
	for (size_t round = 0; seq < CONC_TOTAL; round++) {
		size_t n = 1 + (round * 7) % BATCH;
		if (n > CONC_TOTAL - seq)
			n = CONC_TOTAL - seq;
		for (size_t i = 0; i < n; i++) {
			memset(&ev[i], 0, sizeof ev[i]);
			ev[i].topic = "tail";
			ev[i].topic_len = 4;
			ev[i].payload = pay[i];
			ev[i].payload_len = fill_payload(pay[i], 40 + (seq + i) % (PAYLOAD - 40),
							 "tail", seq + i);
			ev[i].event_id = seq + i + 1;
		}
		if (lt_evlog_append(c->l, ev, n) != LT_OK) {
			c->failed = true;
			break;
		}
		for (size_t i = 0; i < n; i++)
			if (ev[i].offset != seq + i)
				c->failed = true;
		seq += n;
	}
	c->done = true;
	return NULL;
}

static void test_concurrent_tail(void **state)
{
	struct fixture *f = *state;
	/* fsync on: the appender waits for the disk while readers run. */
	struct conc c = {open_log(f->ev, 64 << 10, true, false, NULL), false, false};
	struct reader r[2] = {{&c, 0, 0, 0, false}, {&c, 37, 0, 0, false}};
	pthread_t th[3];
	assert_int_equal(pthread_create(&th[0], NULL, reader_main, &r[0]), 0);
	assert_int_equal(pthread_create(&th[1], NULL, reader_main, &r[1]), 0);
	assert_int_equal(pthread_create(&th[2], NULL, appender_main, &c), 0);
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	assert_false(c.failed);
	for (int i = 0; i < 2; i++) {
		assert_false(r[i].bad);
		assert_true(r[i].next == CONC_TOTAL);
	}
	assert_true(topic_stat(c.l, "tail").segments > 10);
	assert_true(lt_evlog_max_event_id(c.l) == CONC_TOTAL);
	lt_evlog_close(c.l);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_round_trip_topics_segments),
		T(test_reopen_continue),
		T(test_torn_tail_every_byte),
		T(test_read_only_changes_nothing),
		T(test_read_middle_and_max),
		T(test_big_record_own_segment),
		T(test_retention),
		T(test_retention_during_read),
		T(test_damage_before_last_refused),
		T(test_bad_arguments),
		T(test_batch_max),
		T(test_failed_write_rolls_back),
		T(test_concurrent_tail),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
