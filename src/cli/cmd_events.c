/*
 * cmd_events.c — leakyctl events tail|show|stat|replay: the event log
 * (events/log.h), the outbox and the consumers' offsets, offline.
 *
 * The log under DATA_DIR/events is opened read-only (no recovery writes:
 * a torn tail is only skipped), so these commands run safely beside
 * leakyd.  A read-only open sees the log as of the open; tail --follow
 * reopens it when a file of the topic changed (checked every 200 ms)
 * and prints what was appended since.  stat and replay also open
 * leaky.db (the outbox and consumer_offsets); replay writes one row in a
 * BEGIN IMMEDIATE transaction.
 *
 * Output: tail prints one JSON object per event and line (payload is the
 * event's own JSON object, embedded); show prints one event with its
 * payload indented; stat prints lines or, with --json, one object shaped
 * like GET /admin/v1/events (without the relay's counters).
 *
 * Exit status: 0; 1 no such topic (or no event at the offset shown);
 * EX_USAGE for bad arguments; EX_DATAERR for a replay offset past the end
 * or a damaged log; EX_NOINPUT without leaky.db (stat, replay); EX_IOERR.
 *
 * Ownership: every allocation is freed before the command returns.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>

#include "cli/cli.h"
#include "events/consumer.h"
#include "events/evlog.h"
#include "events/outbox.h"
#include "store/datadir.h"
#include "store/db.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/json.h"
#include "util/timefmt.h"

#define EX_NOTOPIC 1 /* no such topic, no such event */
#define TAIL_DEFAULT 10
#define TAIL_MAX 1000000
#define FOLLOW_MS 200
#define EVENTS_PATH_MAX 4096

/* ---- arguments ---- */

/* A whole number 0..INT64_MAX. */
static bool parse_u64(const char *s, uint64_t *out)
{
	if (!s || !*s)
		return false;
	uint64_t v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		unsigned d = (unsigned)(*p - '0');
		if (v > ((uint64_t)INT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* The log's rule for topic names (log.h); the consumer's for names. */
static int check_topic(const char *cmd, const char *topic)
{
	if (!topic) {
		fprintf(stderr, "leakyctl %s: --topic is required\n", cmd);
		return EX_USAGE;
	}
	size_t n = strlen(topic);
	bool ok = n >= 1 && n <= LT_EV_TOPIC_MAX && strcmp(topic, ".") && strcmp(topic, "..");
	for (size_t i = 0; ok && i < n; i++) {
		char c = topic[i];
		ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		     c == '-';
	}
	if (!ok) {
		fprintf(stderr,
			"leakyctl %s: invalid topic '%s' (1 to %d of a-z, 0-9, '.', '_', '-')\n",
			cmd, topic, LT_EV_TOPIC_MAX);
		return EX_USAGE;
	}
	return 0;
}

/* ---- the log ---- */

static int events_dir(struct lt_cli *cli, const char *cmd, char out[EVENTS_PATH_MAX])
{
	if (lt_datadir_path(cli->data_dir, "events", out, EVENTS_PATH_MAX)) {
		fprintf(stderr, "leakyctl %s: data directory path too long\n", cmd);
		return EX_USAGE;
	}
	return 0;
}

/* Open the log read-only.  *l = NULL (and 0) when there is no events
 * directory yet: no topic exists. */
static int open_log(struct lt_cli *cli, const char *cmd, struct lt_evlog **l,
		    struct lt_evlog_recovery *rec)
{
	char dir[EVENTS_PATH_MAX], why[256] = "";
	int rc = events_dir(cli, cmd, dir);
	*l = NULL;
	if (rc)
		return rc;
	struct lt_evlog_opts o;
	lt_evlog_opts_default(&o);
	o.read_only = true;
	enum lt_err e = lt_evlog_open(dir, &o, l, rec, why, sizeof why);
	if (e == LT_ENOTFOUND)
		return 0;
	if (e) {
		*l = NULL;
		fprintf(stderr, "leakyctl %s: event log %s: %s%s%s\n", cmd, dir, lt_strerror(e),
			why[0] ? ": " : "", why);
		return e == LT_ECORRUPT || e == LT_EINVAL ? EX_DATAERR
		       : e == LT_ENOMEM			  ? EX_OSERR
							  : EX_IOERR;
	}
	return 0;
}

/* The topic's range; EX_NOTOPIC with "no such topic" when it has none. */
static int topic_range(struct lt_evlog *l, const char *cmd, const char *topic, uint64_t *start,
		       uint64_t *end)
{
	enum lt_err e = l ? lt_evlog_range(l, topic, start, end) : LT_ENOTFOUND;
	if (e == LT_ENOTFOUND) {
		fprintf(stderr, "leakyctl %s: no such topic '%s'\n", cmd, topic);
		return EX_NOTOPIC;
	}
	return e ? lt_cli_fail(cmd, e, "reading the event log") : 0;
}

static int read_fail(const char *cmd, enum lt_err e)
{
	return e == LT_ECORRUPT ? lt_cli_fail(cmd, e, "the event log is damaged")
				: lt_cli_fail(cmd, e, "reading the event log");
}

/* Append the payload: the JSON itself when it is JSON, else as a string
 * (never produced by leakyd, but the output stays JSON). */
static void put_payload(struct lt_buf *b, const struct lt_event *ev)
{
	cJSON *j = NULL;
	size_t pos;
	if (ev->payload_len && lt_json_parse(ev->payload, ev->payload_len, &j, &pos) == LT_OK)
		lt_buf_append(b, ev->payload, ev->payload_len);
	else
		lt_buf_put_json_str(b, ev->payload, ev->payload_len);
	cJSON_Delete(j);
}

/* One event as one JSON line. */
static enum lt_err print_line(void *arg, const struct lt_event *ev)
{
	uint64_t *printed = arg;
	char stack[2048], iso[LT_ISO_LEN];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 2 * LT_EV_RECORD_MAX);
	lt_time_iso(ev->time_ms * LT_NS_PER_MS, iso);
	lt_buf_puts(&b, "{\"topic\":");
	lt_buf_put_json_str(&b, ev->topic, ev->topic_len);
	lt_buf_printf(&b,
		      ",\"offset\":%llu,\"time\":\"%s\",\"key\":", (unsigned long long)ev->offset,
		      iso);
	lt_buf_put_json_str(&b, ev->key, ev->key_len);
	lt_buf_puts(&b, ",\"type\":");
	lt_buf_put_json_str(&b, ev->type, ev->type_len);
	lt_buf_printf(&b, ",\"eventId\":%llu,\"payload\":", (unsigned long long)ev->event_id);
	put_payload(&b, ev);
	lt_buf_puts(&b, "}\n");
	enum lt_err e = b.err;
	if (!e && fwrite(b.data, 1, b.len, stdout) != b.len)
		e = LT_EIO;
	lt_buf_release(&b);
	if (!e)
		(*printed)++;
	return e;
}

/* ---- tail ---- */

/* What the topic's files look like now: a change means appends or
 * retention happened since. */
struct topic_sig {
	size_t files;
	uint64_t bytes;
	char last[256];
};

static void topic_sig_of(const char *events, const char *topic, struct topic_sig *s)
{
	char dir[EVENTS_PATH_MAX], path[EVENTS_PATH_MAX];
	memset(s, 0, sizeof *s);
	if (lt_datadir_path(events, topic, dir, sizeof dir))
		return;
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	struct stat st;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || lt_datadir_path(dir, de->d_name, path, sizeof path) ||
		    stat(path, &st) != 0)
			continue;
		s->files++;
		s->bytes += (uint64_t)st.st_size;
		if (strcmp(de->d_name, s->last) > 0)
			snprintf(s->last, sizeof s->last, "%s", de->d_name);
	}
	closedir(d);
}

/* Wait up to ms for SIGINT or SIGTERM (blocked by the caller); true when
 * one came. */
static bool wait_signal(const sigset_t *set, int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	for (;;) {
		int sig = sigtimedwait(set, NULL, &ts);
		if (sig > 0)
			return true;
		if (errno != EINTR)
			return false;
	}
}

/* Print from *next on, skipping (with a note) what retention deleted. */
static int tail_from(struct lt_evlog *l, const char *cmd, const char *topic, uint64_t *next,
		     uint64_t max, uint64_t *printed)
{
	for (int round = 0; round < 8; round++) {
		uint64_t n = *next, before = *printed;
		enum lt_err e =
			lt_evlog_read(l, topic, *next, (size_t)max, print_line, printed, &n);
		if (e == LT_ERANGE && n > *next) {
			fprintf(stderr,
				"leakyctl %s: offsets %llu to %llu of '%s' were deleted by "
				"retention; going on at %llu\n",
				cmd, (unsigned long long)*next, (unsigned long long)(n - 1), topic,
				(unsigned long long)n);
			*next = n;
			if (max) {
				uint64_t got = *printed - before;
				if (got >= max)
					return 0;
				max -= got;
			}
			continue;
		}
		*next = n;
		return e ? read_fail(cmd, e) : 0;
	}
	return read_fail(cmd, LT_ERANGE);
}

int lt_cmd_events_tail(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "events tail";
	const char *topic = NULL, *from_s = NULL, *limit_s = NULL;
	bool follow = false;
	const struct lt_cli_opt opts[] = {{"--topic", NULL, &topic},
					  {"--from", NULL, &from_s},
					  {"--limit", NULL, &limit_s},
					  {"--follow", &follow, NULL},
					  {NULL, NULL, NULL}};
	char *pos[1];
	int npos, rc = lt_cli_args(cmd, argc, argv, opts, 0, 0, pos, &npos);
	if (rc || (rc = check_topic(cmd, topic)))
		return rc;
	uint64_t from = 0, limit = 0;
	if (from_s && !parse_u64(from_s, &from)) {
		fprintf(stderr, "leakyctl %s: --from must be an offset (0 or more)\n", cmd);
		return EX_USAGE;
	}
	if (limit_s && (!parse_u64(limit_s, &limit) || limit < 1 || limit > TAIL_MAX)) {
		fprintf(stderr, "leakyctl %s: --limit must be 1-%d\n", cmd, TAIL_MAX);
		return EX_USAGE;
	}
	/* --follow: SIGINT and SIGTERM end it (exit 0), taken with
	 * sigtimedwait, so no handler and no global flag; blocked from the
	 * start, so one that comes during the first read ends it cleanly too */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (follow && sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return lt_cli_fail(cmd, LT_EIO, "blocking signals");
	char events[EVENTS_PATH_MAX];
	struct lt_evlog *l;
	uint64_t start = 0, end = 0, printed = 0;
	struct topic_sig sig; /* before the open: a change after it is seen */
	if ((rc = events_dir(cli, cmd, events)))
		return rc;
	topic_sig_of(events, topic, &sig);
	if ((rc = open_log(cli, cmd, &l, NULL)))
		return rc;
	if ((rc = topic_range(l, cmd, topic, &start, &end))) {
		lt_evlog_close(l);
		return rc;
	}
	if (!from_s) { /* the last events */
		uint64_t n = limit ? limit : TAIL_DEFAULT;
		from = end - start > n ? end - n : start;
	}
	/* with --from, --limit caps the events printed (none: all) */
	uint64_t left = from_s ? limit : 0;
	uint64_t next = from;
	rc = tail_from(l, cmd, topic, &next, left, &printed);
	lt_evlog_close(l);
	if (fflush(stdout) != 0 && !rc)
		rc = lt_cli_fail(cmd, LT_EIO, "writing");
	if (rc || !follow)
		return rc;
	while (!rc && !(left && printed >= left) && !wait_signal(&set, FOLLOW_MS)) {
		struct topic_sig now;
		topic_sig_of(events, topic, &now);
		if (now.files == sig.files && now.bytes == sig.bytes && !strcmp(now.last, sig.last))
			continue;
		sig = now;
		if ((rc = open_log(cli, cmd, &l, NULL)))
			break;
		if (l && lt_evlog_range(l, topic, &start, &end) == LT_OK && next < end)
			rc = tail_from(l, cmd, topic, &next, left ? left - printed : 0, &printed);
		lt_evlog_close(l);
		if (fflush(stdout) != 0 && !rc)
			rc = lt_cli_fail(cmd, LT_EIO, "writing");
	}
	return rc;
}

/* ---- show ---- */

struct show_ctx {
	bool found;
	int rc;
};

static enum lt_err show_one(void *arg, const struct lt_event *ev)
{
	struct show_ctx *c = arg;
	char iso[LT_ISO_LEN];
	lt_time_iso(ev->time_ms * LT_NS_PER_MS, iso);
	c->found = true;
	printf("topic:   %.*s\noffset:  %llu\ntime:    %s\nkey:     %.*s\ntype:    %.*s\n"
	       "eventId: %llu\nbytes:   %zu\npayload:\n",
	       (int)ev->topic_len, ev->topic, (unsigned long long)ev->offset, iso, (int)ev->key_len,
	       ev->key, (int)ev->type_len, ev->type, (unsigned long long)ev->event_id,
	       ev->payload_len);
	cJSON *j = NULL;
	size_t pos;
	char *pretty = NULL;
	if (ev->payload_len && lt_json_parse(ev->payload, ev->payload_len, &j, &pos) == LT_OK)
		pretty = cJSON_Print(j);
	if (pretty)
		printf("%s\n", pretty);
	else
		printf("%.*s\n", (int)ev->payload_len, ev->payload);
	cJSON_free(pretty);
	cJSON_Delete(j);
	return LT_OK;
}

int lt_cmd_events_show(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "events show";
	const char *topic = NULL;
	const struct lt_cli_opt opts[] = {{"--topic", NULL, &topic}, {NULL, NULL, NULL}};
	char *pos[1];
	int npos, rc = lt_cli_args(cmd, argc, argv, opts, 0, 1, pos, &npos);
	if (!rc && npos != 1) {
		fprintf(stderr, "leakyctl %s: OFFSET is required\n", cmd);
		rc = EX_USAGE;
	}
	if (rc || (rc = check_topic(cmd, topic)))
		return rc;
	uint64_t off;
	if (!parse_u64(pos[0], &off)) {
		fprintf(stderr, "leakyctl %s: invalid offset '%s' (0 or more)\n", cmd, pos[0]);
		return EX_USAGE;
	}
	struct lt_evlog *l;
	uint64_t start, end;
	if ((rc = open_log(cli, cmd, &l, NULL)))
		return rc;
	if ((rc = topic_range(l, cmd, topic, &start, &end))) {
		lt_evlog_close(l);
		return rc;
	}
	struct show_ctx c = {false, 0};
	enum lt_err e = LT_OK;
	if (off < start) {
		fprintf(stderr,
			"leakyctl %s: offset %llu of '%s' was deleted by retention (the first "
			"retained is %llu)\n",
			cmd, (unsigned long long)off, topic, (unsigned long long)start);
		rc = EX_NOTOPIC;
	} else if (off >= end) {
		fprintf(stderr, "leakyctl %s: no event at offset %llu of '%s' (its end is %llu)\n",
			cmd, (unsigned long long)off, topic, (unsigned long long)end);
		rc = EX_NOTOPIC;
	} else {
		e = lt_evlog_read(l, topic, off, 1, show_one, &c, NULL);
		if (e)
			rc = read_fail(cmd, e);
		else if (!c.found) /* deleted since the range was read */
			rc = EX_NOTOPIC;
	}
	lt_evlog_close(l);
	if (!rc && fflush(stdout) != 0)
		rc = lt_cli_fail(cmd, LT_EIO, "writing");
	return rc;
}

/* ---- stat ---- */

struct stat_topics {
	struct lt_buf *b;
	bool json;
	size_t n;
};

static void stat_topic(void *arg, const struct lt_evlog_topic_stat *st)
{
	struct stat_topics *c = arg;
	if (c->json) {
		lt_buf_puts(c->b, c->n ? ",{\"name\":" : "{\"name\":");
		lt_buf_put_json_str(c->b, st->name, strlen(st->name));
		lt_buf_printf(
			c->b,
			",\"startOffset\":%llu,\"endOffset\":%llu,\"bytes\":%llu,\"segments\":%zu}",
			(unsigned long long)st->start, (unsigned long long)st->end,
			(unsigned long long)st->bytes, st->segments);
	} else {
		lt_buf_printf(c->b, "topic %s start=%llu end=%llu bytes=%llu segments=%zu\n",
			      st->name, (unsigned long long)st->start, (unsigned long long)st->end,
			      (unsigned long long)st->bytes, st->segments);
	}
	c->n++;
}

struct stat_consumers {
	struct lt_buf *b;
	struct lt_evlog *log;
	bool json;
	size_t n;
};

static enum lt_err stat_consumer(void *arg, const struct lt_consumer_row *r)
{
	struct stat_consumers *c = arg;
	uint64_t start = 0, end = 0;
	if (!c->log || lt_evlog_range(c->log, r->topic, &start, &end))
		end = 0;
	unsigned long long lag = end > r->next ? (unsigned long long)(end - r->next) : 0;
	if (c->json) {
		lt_buf_puts(c->b, c->n ? ",{\"name\":" : "{\"name\":");
		lt_buf_put_json_str(c->b, r->name, strlen(r->name));
		lt_buf_puts(c->b, ",\"topic\":");
		lt_buf_put_json_str(c->b, r->topic, strlen(r->topic));
		lt_buf_printf(c->b, ",\"nextOffset\":%llu,\"lag\":%llu}",
			      (unsigned long long)r->next, lag);
	} else {
		lt_buf_printf(c->b, "consumer %s topic=%s next=%llu lag=%llu\n", r->name, r->topic,
			      (unsigned long long)r->next, lag);
	}
	c->n++;
	return c->b->err;
}

int lt_cmd_events_stat(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "events stat";
	bool json = false;
	const struct lt_cli_opt opts[] = {{"--json", &json, NULL}, {NULL, NULL, NULL}};
	char *pos[1];
	int npos, rc = lt_cli_args(cmd, argc, argv, opts, 0, 0, pos, &npos);
	if (rc)
		return rc;
	struct sqlite3 *db;
	if ((rc = lt_cli_db_open(cli, cmd, false, &db)))
		return rc;
	struct lt_evlog *l;
	struct lt_evlog_recovery rec = {0};
	if ((rc = open_log(cli, cmd, &l, &rec))) {
		lt_db_close(db);
		return rc;
	}
	struct lt_outbox_stat os;
	enum lt_err e = lt_outbox_stat(db, &os);
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 16u << 20);
	lt_buf_puts(&b, json ? "{\"topics\":[" : "");
	struct stat_topics tc = {&b, json, 0};
	if (!e && l)
		e = lt_evlog_stat(l, stat_topic, &tc);
	int64_t now = lt_cli_now_ms();
	long long age = os.pending && now > os.oldest_pending_ms ? now - os.oldest_pending_ms : 0;
	if (json)
		lt_buf_printf(&b,
			      "],\"outbox\":{\"pending\":%lld,\"oldestPendingAgeMs\":%lld,"
			      "\"lastEventId\":%lld,\"publishedRetained\":%lld},\"consumers\":[",
			      (long long)os.pending, age, (long long)os.max_id,
			      (long long)os.published_retained);
	else
		lt_buf_printf(&b,
			      "outbox pending=%lld oldest_pending_age_ms=%lld last_event_id=%lld "
			      "published_retained=%lld\n",
			      (long long)os.pending, age, (long long)os.max_id,
			      (long long)os.published_retained);
	struct stat_consumers cc = {&b, l, json, 0};
	if (!e)
		e = lt_consumer_list(db, stat_consumer, &cc);
	if (json)
		lt_buf_puts(&b, "]}\n");
	if (!e)
		e = b.err;
	lt_evlog_close(l);
	lt_db_close(db);
	if (e) {
		lt_buf_release(&b);
		return lt_cli_fail(cmd, e, "reading the event log status");
	}
	if (fwrite(b.data, 1, b.len, stdout) != b.len || fflush(stdout) != 0)
		rc = lt_cli_fail(cmd, LT_EIO, "writing");
	lt_buf_release(&b);
	if (rec.truncated_bytes)
		fprintf(stderr,
			"leakyctl %s: note: %llu byte(s) after the last whole record of %zu "
			"topic(s) were skipped (an append in progress, or a torn tail leakyd "
			"cuts at its next start)\n",
			cmd, (unsigned long long)rec.truncated_bytes, rec.truncated_topics);
	return rc;
}

/* ---- replay ---- */

int lt_cmd_events_replay(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "events replay";
	const char *name = NULL, *topic = NULL, *from_s = NULL;
	const struct lt_cli_opt opts[] = {{"--consumer", NULL, &name},
					  {"--topic", NULL, &topic},
					  {"--from", NULL, &from_s},
					  {NULL, NULL, NULL}};
	char *pos[1];
	int npos, rc = lt_cli_args(cmd, argc, argv, opts, 0, 0, pos, &npos);
	if (rc)
		return rc;
	if (!name || !lt_consumer_name_ok(name)) {
		fprintf(stderr,
			name ? "leakyctl %s: invalid consumer name (1 to %d of a-z, 0-9, '.', '_', "
			       "'-')\n"
			     : "leakyctl %s: --consumer is required\n",
			cmd, LT_CONSUMER_NAME_MAX);
		return EX_USAGE;
	}
	if ((rc = check_topic(cmd, topic)))
		return rc;
	uint64_t from;
	if (!from_s || !parse_u64(from_s, &from)) {
		fprintf(stderr, "leakyctl %s: --from OFFSET is required (0 or more)\n", cmd);
		return EX_USAGE;
	}
	struct lt_evlog *l;
	uint64_t start, end;
	if ((rc = open_log(cli, cmd, &l, NULL)))
		return rc;
	rc = topic_range(l, cmd, topic, &start, &end);
	lt_evlog_close(l);
	if (rc)
		return rc;
	if (from > end) {
		fprintf(stderr,
			"leakyctl %s: offset %llu is past the end of '%s' (%llu); nothing "
			"changed\n",
			cmd, (unsigned long long)from, topic, (unsigned long long)end);
		return EX_DATAERR;
	}
	struct sqlite3 *db;
	if ((rc = lt_cli_db_open(cli, cmd, false, &db)))
		return rc;
	uint64_t old = 0;
	enum lt_err ge = LT_OK;
	if (!(rc = lt_cli_begin(db, cmd))) {
		ge = lt_consumer_get(db, name, topic, &old);
		enum lt_err e = ge == LT_OK || ge == LT_ENOTFOUND
					? lt_consumer_set(db, name, topic, from, lt_cli_now_ms())
					: ge;
		if (e) {
			lt_cli_rollback(db);
			rc = lt_cli_fail(cmd, e, "setting the offset");
		} else {
			rc = lt_cli_commit(db, cmd);
		}
	}
	lt_db_close(db);
	if (rc)
		return rc;
	if (ge == LT_ENOTFOUND)
		printf("consumer %s topic %s: next offset %llu (new)\n", name, topic,
		       (unsigned long long)from);
	else
		printf("consumer %s topic %s: next offset %llu -> %llu\n", name, topic,
		       (unsigned long long)old, (unsigned long long)from);
	if (from < start)
		printf("offsets below %llu were deleted by retention: the consumer starts there\n",
		       (unsigned long long)start);
	return 0;
}
