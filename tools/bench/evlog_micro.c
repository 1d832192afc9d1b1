/*
 * evlog_micro.c — in-process cost of the event log (src/events/evlog.h):
 * appends, reads and the scan at open, on real files.
 *
 * Built and run by tools/bench/evlog.sh; by hand:
 *   cc -O2 -std=c11 -D_DEFAULT_SOURCE -Isrc tools/bench/evlog_micro.c \
 *      build/rel/libleaky.a -lpthread -o /tmp/evlog_micro && /tmp/evlog_micro /tmp/empty-dir
 *
 * Opens DIR with lt_evlog_open (default options: 64 MiB segments) and
 * times, each row on its own topic:
 *
 *   raw pwrite B, sync on|off  the floor: one pwrite of B records' bytes
 *                            appended to a plain file (O_CLOEXEC, 0640),
 *                            plus one fdatasync when on
 *   append B, fsync on|off   lt_evlog_append of B records (B = 1, 16, 256)
 *                            per call, 200-byte payloads (plus a 10-byte
 *                            type, a 12-byte key and the topic: ~280-byte
 *                            records);
 *                            with opts.fsync on, every call ends with one
 *                            fdatasync (the real cost); off, the page cache
 *   read all                 lt_evlog_read of the largest topic from 0,
 *                            max 0, a callback that sums payload bytes
 *   read 256 at random       lt_evlog_read(max 256) from spread-out offsets
 *                            (the sparse index finds each start)
 *   open (scan)              lt_evlog_close + lt_evlog_open of everything
 *                            written: recovery reads and checks every byte
 *
 * Each append row: REPS runs after one unrecorded warm-up run; a run
 * appends for SECONDS (at least 20 calls).  Median and best records/s, the
 * median's calls/s and µs per call.  Read rows: REPS runs, median and best.
 * Wall clock (CLOCK_MONOTONIC); other load on the machine shows up as the
 * spread between median and best.
 *
 * Usage: evlog_micro DIR [SECONDS=0.5] [REPS=5]
 * DIR should be empty or missing; it is left behind (the script removes
 * its temp dir).
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "events/evlog.h"

#define MAX_REPS 51
#define MAX_BATCH 256
#define PAYLOAD 200

static int64_t mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void die(const char *what, enum lt_err e)
{
	fprintf(stderr, "evlog_micro: %s: %s\n", what, lt_strerror(e));
	exit(1);
}

/* One run of raw appends: pwrite n * rec bytes (+ fdatasync) at the end of
 * fd for at least ns.  Returns records per second. */
static double raw_run(int fd, const char *buf, size_t n, size_t rec, bool sync, int64_t ns,
		      off_t *pos)
{
	int64_t t0 = mono(), t;
	long c = 0;
	do {
		if (pwrite(fd, buf, n * rec, *pos) != (ssize_t)(n * rec) ||
		    (sync && fdatasync(fd))) {
			perror("evlog_micro: raw pwrite");
			exit(1);
		}
		*pos += (off_t)(n * rec);
		c++;
		t = mono();
	} while (t - t0 < ns || c < 20);
	return (double)c * (double)n * 1e9 / (double)(t - t0);
}

static void raw_row(const char *dir, bool sync, size_t n, size_t rec, int64_t ns, int reps)
{
	static char buf[MAX_BATCH * 512];
	char path[4200];
	double v[MAX_REPS];
	off_t pos = 0;
	snprintf(path, sizeof path, "%s-raw.bin", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0) {
		perror(path);
		exit(1);
	}
	memset(buf, 'x', sizeof buf);
	raw_run(fd, buf, n, rec, sync, ns / 4, &pos);
	for (int i = 0; i < reps; i++)
		v[i] = raw_run(fd, buf, n, rec, sync, ns, &pos);
	close(fd);
	unlink(path);
	qsort(v, (size_t)reps, sizeof v[0], cmp_double);
	char name[64];
	snprintf(name, sizeof name, "raw pwrite %3zu, sync %s", n, sync ? "on" : "off");
	printf("%-30s %12.0f %12.0f %10.0f %10.1f\n", name, v[reps / 2], v[reps - 1],
	       v[reps / 2] / (double)n, 1e6 * (double)n / v[reps / 2]);
}

struct appender {
	struct lt_event ev[MAX_BATCH];
	char payload[MAX_BATCH][PAYLOAD];
	uint64_t id;
};

/* One run: append batches of n to topic for at least ns nanoseconds.
 * Returns records per second; *calls gets the number of calls. */
static double append_run(struct lt_evlog *l, struct appender *a, const char *topic, size_t n,
			 int64_t ns, long *calls)
{
	int64_t t0 = mono(), t;
	long c = 0;
	do {
		for (size_t i = 0; i < n; i++) {
			a->ev[i].topic = topic;
			a->ev[i].topic_len = strlen(topic);
			a->ev[i].time_ms = 1700000000000;
			a->ev[i].event_id = ++a->id;
		}
		enum lt_err e = lt_evlog_append(l, a->ev, n);
		if (e != LT_OK)
			die("lt_evlog_append", e);
		c++;
		t = mono();
	} while (t - t0 < ns || c < 20);
	*calls = c;
	return (double)c * (double)n * 1e9 / (double)(t - t0);
}

static void append_row(struct lt_evlog *l, struct appender *a, bool fsync, size_t n, int64_t ns,
		       int reps)
{
	char topic[32];
	double v[MAX_REPS], calls_s[MAX_REPS];
	long calls;
	snprintf(topic, sizeof topic, "bench-%s-%zu", fsync ? "sync" : "nosync", n);
	append_run(l, a, topic, n, ns / 4, &calls); /* warm-up */
	for (int i = 0; i < reps; i++) {
		v[i] = append_run(l, a, topic, n, ns, &calls);
		calls_s[i] = v[i] / (double)n;
	}
	qsort(v, (size_t)reps, sizeof v[0], cmp_double);
	qsort(calls_s, (size_t)reps, sizeof calls_s[0], cmp_double);
	double med = v[reps / 2];
	char name[64];
	snprintf(name, sizeof name, "append %3zu/call, fsync %s", n, fsync ? "on" : "off");
	printf("%-30s %12.0f %12.0f %10.0f %10.1f\n", name, med, v[reps - 1], calls_s[reps / 2],
	       1e6 / calls_s[reps / 2]);
}

static void add_bytes(void *arg, const struct lt_evlog_topic_stat *st)
{
	*(uint64_t *)arg += st->bytes;
}

struct sum {
	uint64_t records, bytes;
};

static enum lt_err count(void *arg, const struct lt_event *ev)
{
	struct sum *s = arg;
	s->records++;
	s->bytes += ev->payload_len;
	return LT_OK;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: evlog_micro DIR [SECONDS=0.5] [REPS=5]\n");
		return 2;
	}
	double secs = argc > 2 ? strtod(argv[2], NULL) : 0.5;
	int reps = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 5;
	if (!(secs > 0 && secs <= 60) || reps < 1 || reps > MAX_REPS) {
		fprintf(stderr, "evlog_micro: 0 < SECONDS <= 60, 1 <= REPS <= %d\n", MAX_REPS);
		return 2;
	}
	int64_t ns = (int64_t)(secs * 1e9);
	struct lt_evlog_opts o;
	lt_evlog_opts_default(&o);
	struct lt_evlog *l[2];
	char why[512];
	enum lt_err e;
	/* Two handles on one directory would fight; one log per fsync mode. */
	char dir[2][4096];
	for (int s = 0; s < 2; s++) {
		snprintf(dir[s], sizeof dir[s], "%s%s", argv[1], s ? "-sync" : "");
		o.fsync = s == 1;
		if ((e = lt_evlog_open(dir[s], &o, &l[s], NULL, why, sizeof why)) != LT_OK) {
			fprintf(stderr, "evlog_micro: %s\n", why);
			return 1;
		}
	}
	const double rec_big = 44 + 16 + 10 + 12 + PAYLOAD; /* a record of "bench-nosync-256" */
	struct appender *a = calloc(1, sizeof *a);
	if (!a)
		return 1;
	for (size_t i = 0; i < MAX_BATCH; i++) {
		memset(a->payload[i], 'x', PAYLOAD);
		memcpy(a->payload[i], "{\"n\":1,\"pad\":\"", 14);
		memcpy(a->payload[i] + PAYLOAD - 2, "\"}", 2);
		a->ev[i].type = "token-used";
		a->ev[i].type_len = 10;
		a->ev[i].key = "user:0000042";
		a->ev[i].key_len = 12;
		a->ev[i].payload = a->payload[i];
		a->ev[i].payload_len = PAYLOAD;
	}
	printf("# evlog_micro: lt_evlog_open(64 MiB segments), %d-byte payloads (%.0f-byte"
	       " records), runs of %.2f s, median of %d runs\n",
	       PAYLOAD, rec_big, secs, reps);
	printf("%-30s %12s %12s %10s %10s\n", "operation", "median rec/s", "best rec/s", "calls/s",
	       "us/call");
	const size_t batches[] = {1, 16, 256};
	for (int s = 1; s >= 0; s--) {
		for (size_t i = 0; i < 3; i++)
			raw_row(argv[1], s == 1, batches[i], (size_t)rec_big, ns, reps);
		for (size_t i = 0; i < 3; i++)
			append_row(l[s], a, s == 1, batches[i], ns, reps);
	}

	/* Reads, on the biggest topic of the fsync-off log. */
	const char *big = "bench-nosync-256";
	uint64_t start, end;
	if ((e = lt_evlog_range(l[0], big, &start, &end)) != LT_OK)
		die("lt_evlog_range", e);
	double v[MAX_REPS];
	for (int i = 0; i < reps; i++) {
		struct sum sm = {0, 0};
		int64_t t0 = mono();
		if ((e = lt_evlog_read(l[0], big, 0, 0, count, &sm, NULL)) != LT_OK)
			die("lt_evlog_read", e);
		double sec = (double)(mono() - t0) / 1e9;
		if (sm.records != end)
			die("lt_evlog_read: short", LT_EIO);
		v[i] = (double)sm.records / sec;
	}
	qsort(v, (size_t)reps, sizeof v[0], cmp_double);
	printf("%-30s %12.0f %12.0f %10s %10s  (%" PRIu64 " records, %.0f MiB/s)\n", "read all",
	       v[reps / 2], v[reps - 1], "-", "-", end, v[reps / 2] * rec_big / (1 << 20));
	for (int i = 0; i < reps; i++) {
		uint64_t recs = 0, x = 88172645463325252u;
		int64_t t0 = mono();
		do {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			struct sum sm = {0, 0};
			uint64_t from = end > 256 ? x % (end - 256) : 0;
			if ((e = lt_evlog_read(l[0], big, from, 256, count, &sm, NULL)) != LT_OK)
				die("lt_evlog_read", e);
			recs += sm.records;
		} while (mono() - t0 < ns);
		double sec = (double)(mono() - t0) / 1e9;
		v[i] = (double)recs / sec;
	}
	qsort(v, (size_t)reps, sizeof v[0], cmp_double);
	printf("%-30s %12.0f %12.0f %10.0f %10.1f\n", "read 256 at random", v[reps / 2],
	       v[reps - 1], v[reps / 2] / 256, 1e6 * 256 / v[reps / 2]);

	/* Open: recovery reads and checks every byte of the fsync-off log. */
	uint64_t bytes = 0;
	if ((e = lt_evlog_stat(l[0], add_bytes, &bytes)) != LT_OK)
		die("lt_evlog_stat", e);
	for (int s = 0; s < 2; s++)
		lt_evlog_close(l[s]);
	struct lt_evlog_recovery rec;
	o.fsync = false;
	for (int i = 0; i < reps; i++) {
		int64_t t0 = mono();
		if ((e = lt_evlog_open(dir[0], &o, &l[0], &rec, why, sizeof why)) != LT_OK) {
			fprintf(stderr, "evlog_micro: %s\n", why);
			return 1;
		}
		v[i] = (double)rec.records / ((double)(mono() - t0) / 1e9);
		lt_evlog_close(l[0]);
	}
	qsort(v, (size_t)reps, sizeof v[0], cmp_double);
	printf("%-30s %12.0f %12.0f %10s %10s  (%" PRIu64 " records, %zu segments, %.0f MiB/s)\n",
	       "open (scan, page cache)", v[reps / 2], v[reps - 1], "-", "-", rec.records,
	       rec.segments, v[reps / 2] * ((double)bytes / (double)rec.records) / (1 << 20));
	free(a);
	return 0;
}
