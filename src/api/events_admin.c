/*
 * events_admin.c — GET /admin/v1/events: the event log and outbox status
 * (API.md §7): per topic its retained range, size and segments; the
 * outbox's pending rows and the age of the oldest; the relay's counters
 * and last lag; every consumer's next offset and lag per topic.
 */
#include <stdio.h>
#include <string.h>

#include "api/handlers.h"
#include "events/evlog.h"
#include "events/outbox.h"
#include "http/request.h"
#include "server.h"
#include "store/stmt.h"
#include "util/buf.h"
#include "util/timefmt.h"

#define READER_WAIT_MS 2000

struct topics_ctx {
	struct lt_buf *b;
	size_t n;
};

static void put_topic(void *arg, const struct lt_evlog_topic_stat *st)
{
	struct topics_ctx *c = arg;
	lt_buf_puts(c->b, c->n++ ? ",{\"name\":" : "{\"name\":");
	lt_buf_put_json_str(c->b, st->name, strlen(st->name));
	lt_buf_printf(c->b,
		      ",\"startOffset\":%llu,\"endOffset\":%llu,\"bytes\":%llu,\"segments\":%zu}",
		      (unsigned long long)st->start, (unsigned long long)st->end,
		      (unsigned long long)st->bytes, st->segments);
}

struct consumers_ctx {
	struct lt_buf *b;
	struct lt_evlog *log;
	size_t n;
};

static enum lt_err put_consumer(sqlite3_stmt *st, void *arg)
{
	struct consumers_ctx *c = arg;
	char name[128], topic[LT_EV_TOPIC_MAX + 1];
	lt_stmt_copy_col(st, 0, name, sizeof name);
	lt_stmt_copy_col(st, 1, topic, sizeof topic);
	int64_t next = sqlite3_column_int64(st, 2);
	uint64_t start = 0, end = 0;
	(void)lt_evlog_range(c->log, topic, &start, &end);
	lt_buf_puts(c->b, c->n++ ? ",{\"name\":" : "{\"name\":");
	lt_buf_put_json_str(c->b, name, strlen(name));
	lt_buf_puts(c->b, ",\"topic\":");
	lt_buf_put_json_str(c->b, topic, strlen(topic));
	lt_buf_printf(c->b, ",\"nextOffset\":%lld,\"lag\":%lld}", (long long)next,
		      (long long)((int64_t)end > next ? (int64_t)end - next : 0));
	return LT_OK;
}

void lt_api_admin_events(struct lt_req *req)
{
	struct lt_server *srv = req->srv;
	char stack[4096];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 1u << 20);
	struct sqlite3 *db;
	if (lt_dbpool_acquire(&srv->auth.readers, READER_WAIT_MS, &db)) {
		lt_reply_error_h(req, 503, "storage busy; retry shortly", "Retry-After: 1\r\n");
		return;
	}
	struct lt_outbox_stat os;
	enum lt_err e = lt_outbox_stat(db, &os);
	lt_buf_puts(&b, "{\"topics\":[");
	struct topics_ctx tc = {&b, 0};
	if (!e)
		e = lt_evlog_stat(srv->evlog, put_topic, &tc);
	lt_buf_puts(&b, "],\"consumers\":[");
	struct consumers_ctx cc = {&b, srv->evlog, 0};
	sqlite3_stmt *st = NULL;
	if (!e)
		e = lt_stmt_prep(db,
				 "SELECT consumer, topic, next_offset FROM consumer_offsets "
				 "ORDER BY consumer, topic",
				 &st);
	if (!e)
		e = lt_stmt_each(st, put_consumer, &cc);
	lt_dbpool_release(&srv->auth.readers, db);
	if (e) {
		lt_buf_release(&b);
		lt_reply_error(req, 503, "storage error");
		return;
	}
	int64_t now = lt_clock_now_ns(&srv->clock) / LT_NS_PER_MS;
	lt_buf_printf(
		&b,
		"],\"outbox\":{\"pending\":%lld,\"oldestPendingAgeMs\":%lld,\"lastEventId\":%lld,"
		"\"publishedRetained\":%lld}",
		(long long)os.pending,
		(long long)(os.pending && now > os.oldest_pending_ms ? now - os.oldest_pending_ms
								     : 0),
		(long long)os.max_id, (long long)os.published_retained);
	lt_buf_printf(&b,
		      ",\"relay\":{\"published\":%llu,\"batches\":%llu,\"failures\":%llu,"
		      "\"lastLagMs\":%lld}}",
		      (unsigned long long)atomic_load(&srv->relay.published),
		      (unsigned long long)atomic_load(&srv->relay.batches),
		      (unsigned long long)atomic_load(&srv->relay.failures),
		      (long long)atomic_load(&srv->relay.lag_ms));
	lt_reply_json(req, 200, &b, NULL);
	lt_buf_release(&b);
}
