/*
 * ingest.c — token-usage events to analytics.db, exactly once.  See
 * ingest.h.
 *
 * One poll: BEGIN IMMEDIATE; the stored offset; lt_evlog_read hands each
 * event to `deliver` (without the log's locks), which parses it, makes
 * sure its day table exists (once per day per batch), inserts its fact and
 * adds it to the batch's rollup table in memory; then the rollup rows are
 * appended, the offset stored, COMMIT.  Any failure rolls it all back.
 *
 * The scratch (rollup entries and their hash slots, sized for `batch`) is
 * owned by the ingest and used by one poll at a time: the thread's, or the
 * caller's when there is no thread.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "analytics/ingest.h"
#include "events/consumer.h"
#include "events/evlog.h"
#include "events/outbox.h"
#include "events/usage_event.h"
#include "store/db.h"
#include "util/clock.h"
#include "util/json.h"
#include "util/log.h"
#include "util/timefmt.h"

#define BACKOFF_MAX_MS 5000
#define SKIP_ROUNDS 8	  /* as in consumer.c: retention moving under a read */
#define BATCH_DAYS_MAX 16 /* distinct days remembered per batch */

/* ---- parsing ---- */

/* A string member: absent or null gives "", a string is copied (cap is the
 * buffer size), anything else is refused. */
static enum lt_err get_str(const cJSON *o, const char *name, char *out, size_t cap)
{
	const char *s;
	out[0] = '\0';
	enum lt_err e = lt_json_get_str(o, name, &s);
	if (e == LT_ENOTFOUND)
		return LT_OK;
	if (e)
		return e;
	size_t n = strlen(s);
	if (n >= cap)
		return LT_ETOOBIG;
	memcpy(out, s, n + 1);
	return LT_OK;
}

/* An integer member in [0, max]; absent or null gives 0 unless required. */
static enum lt_err get_int(const cJSON *o, const char *name, int64_t max, bool required,
			   int64_t *out)
{
	*out = 0;
	enum lt_err e = lt_json_get_i64(o, name, 0, max, out);
	if (e == LT_ENOTFOUND)
		return required ? LT_EINVAL : LT_OK;
	return e;
}

static enum lt_err get_flag(const cJSON *o, const char *name, bool required, bool *out)
{
	*out = false;
	enum lt_err e = lt_json_get_bool(o, name, out);
	if (e == LT_ENOTFOUND)
		return required ? LT_EINVAL : LT_OK;
	return e;
}

/* "time": exactly the 24 bytes lt_time_iso writes. */
static enum lt_err get_time(const cJSON *o, int64_t *at_ms)
{
	const char *s;
	enum lt_err e = lt_json_get_str(o, "time", &s);
	if (e)
		return e == LT_ENOTFOUND ? LT_EINVAL : e;
	size_t n = strlen(s);
	if (n != 24 || s[19] != '.' || s[23] != 'Z')
		return LT_ESYNTAX;
	int64_t ns;
	e = lt_time_parse_iso(s, n, &ns);
	if (e)
		return e;
	char back[LT_ISO_LEN];
	lt_time_iso(ns, back);
	if (memcmp(back, s, 24) != 0)
		return LT_ESYNTAX;
	*at_ms = ns / LT_NS_PER_MS;
	return LT_OK;
}

static enum lt_err parse_tokens(const cJSON *root, struct lt_an_fact *f)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "tokens");
	if (!t || !cJSON_IsObject(t))
		return LT_EINVAL;
	int64_t total;
	bool has_total = cJSON_GetObjectItemCaseSensitive(t, "total") &&
			 !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(t, "total"));
	enum lt_err e;
	if ((e = get_int(t, "input", LT_AN_TOKENS_MAX, true, &f->input)) ||
	    (e = get_int(t, "output", LT_AN_TOKENS_MAX, true, &f->output)) ||
	    (e = get_int(t, "cachedInput", LT_AN_TOKENS_MAX, false, &f->cached_input)) ||
	    (e = get_int(t, "reasoning", LT_AN_TOKENS_MAX, false, &f->reasoning)) ||
	    (e = get_int(t, "total", 2 * LT_AN_TOKENS_MAX, false, &total)))
		return e;
	if (f->cached_input > f->input || f->reasoning > f->output)
		return LT_ERANGE;
	f->total = f->input + f->output;
	if (has_total && total != f->total)
		return LT_ERANGE;
	return LT_OK;
}

static enum lt_err parse_root(const cJSON *root, struct lt_an_fact *f)
{
	if (!cJSON_IsObject(root))
		return LT_ESYNTAX;
	const char *type;
	enum lt_err e = lt_json_get_str(root, "type", &type);
	if (e)
		return e == LT_ENOTFOUND ? LT_EINVAL : e;
	if (strcmp(type, LT_USAGE_EVENT_TYPE) != 0)
		return LT_EINVAL;
	int64_t ignored;
	bool flag;
	if ((e = get_time(root, &f->at_ms)) || (e = get_flag(root, "allowed", true, &f->allowed)) ||
	    (e = get_str(root, "userId", f->user_id, sizeof f->user_id)) ||
	    (e = get_str(root, "orgId", f->org_id, sizeof f->org_id)) ||
	    (e = get_str(root, "keyId", f->key_id, sizeof f->key_id)) ||
	    (e = get_str(root, "provider", f->provider, sizeof f->provider)) ||
	    (e = get_str(root, "model", f->model, sizeof f->model)) ||
	    (e = get_str(root, "endpoint", f->endpoint, sizeof f->endpoint)) ||
	    (e = get_str(root, "reason", f->reason, sizeof f->reason)) ||
	    (e = get_str(root, "outcome", f->outcome, sizeof f->outcome)) ||
	    (e = get_str(root, "correlationId", f->correlation_id, sizeof f->correlation_id)) ||
	    (e = parse_tokens(root, f)) ||
	    (e = get_int(root, "costMicros", LT_AN_COST_MAX, false, &f->cost_micros)) ||
	    (e = get_int(root, "latencyMs", LT_AN_LATENCY_MAX, false, &f->latency_ms)) ||
	    (e = get_int(root, "requestedTokens", LT_JSON_INT_MAX, false, &ignored)) ||
	    (e = get_flag(root, "stream", false, &flag)) ||
	    (e = get_flag(root, "estimated", false, &flag)))
		return e;
	return LT_OK;
}

enum lt_err lt_an_fact_parse(const char *json, size_t n, uint64_t event_id, struct lt_an_fact *out)
{
	memset(out, 0, sizeof *out);
	if (n > LT_AN_PAYLOAD_MAX)
		return LT_ETOOBIG;
	cJSON *root = NULL;
	size_t pos;
	enum lt_err e = lt_json_parse(json, n, &root, &pos);
	if (e)
		return e == LT_ETOOBIG ? LT_ESYNTAX : e;
	e = parse_root(root, out);
	cJSON_Delete(root);
	if (e) {
		memset(out, 0, sizeof *out);
		return e;
	}
	out->event_id = event_id;
	return LT_OK;
}

/* ---- the batch's rollups ---- */

struct lt_an_scratch {
	struct lt_an_rollup *roll; /* cap entries */
	size_t n, cap;
	int32_t *slot; /* nslot (a power of two >= 2 cap) indexes into roll, -1 free */
	size_t nslot;
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * UINT64_C(0x100000001b3);
	return h;
}

static uint64_t key_hash(int64_t minute, const struct lt_an_fact *f)
{
	uint64_t h = fnv(UINT64_C(0xcbf29ce484222325), &minute, sizeof minute);
	h = fnv(h, f->user_id, strlen(f->user_id) + 1);
	h = fnv(h, f->org_id, strlen(f->org_id) + 1);
	h = fnv(h, f->provider, strlen(f->provider) + 1);
	return fnv(h, f->model, strlen(f->model) + 1);
}

static bool key_eq(const struct lt_an_rollup *r, int64_t minute, const struct lt_an_fact *f)
{
	return r->minute == minute && !strcmp(r->user_id, f->user_id) &&
	       !strcmp(r->org_id, f->org_id) && !strcmp(r->provider, f->provider) &&
	       !strcmp(r->model, f->model);
}

static void scratch_clear(struct lt_an_scratch *s)
{
	s->n = 0;
	memset(s->slot, 0xff, s->nslot * sizeof *s->slot);
}

/* Add f to its rollup.  At most one new entry per fact, and a batch has at
 * most cap facts, so the table never fills. */
static void scratch_add(struct lt_an_scratch *s, const struct lt_an_fact *f)
{
	int64_t minute = lt_an_minute_start(f->at_ms);
	size_t mask = s->nslot - 1, i = (size_t)key_hash(minute, f) & mask;
	while (s->slot[i] >= 0) {
		struct lt_an_rollup *r = &s->roll[s->slot[i]];
		if (key_eq(r, minute, f)) {
			lt_an_rollup_add(r, f);
			return;
		}
		i = (i + 1) & mask;
	}
	s->slot[i] = (int32_t)s->n;
	lt_an_rollup_init(&s->roll[s->n++], f);
}

/* ---- one poll ---- */

struct batch {
	struct lt_an_ingest *g;
	uint64_t next; /* offset of the next event expected */
	size_t consumed, facts, dups, bad;
	enum lt_err first_bad;
	uint64_t first_bad_offset;
	char days[BATCH_DAYS_MAX][LT_AN_DAY_LEN];
	size_t ndays;
	int64_t now_ms;
	enum lt_err fail;
	struct lt_an_fact fact;
};

static enum lt_err batch_day(struct batch *b, int64_t at_ms)
{
	char day[LT_AN_DAY_LEN];
	lt_an_day_name(at_ms, day);
	for (size_t i = 0; i < b->ndays; i++)
		if (!memcmp(b->days[i], day, LT_AN_DAY_LEN))
			return LT_OK;
	enum lt_err e = lt_an_ensure_day(b->g->db, day, b->now_ms);
	if (!e && b->ndays < BATCH_DAYS_MAX)
		memcpy(b->days[b->ndays++], day, LT_AN_DAY_LEN);
	return e;
}

static enum lt_err deliver(void *arg, const struct lt_event *ev)
{
	struct batch *b = arg;
	if (ev->offset != b->next)
		return b->fail = LT_ECORRUPT;
	struct lt_an_fact *f = &b->fact;
	enum lt_err pe = ev->event_id < 1 || ev->event_id > (uint64_t)INT64_MAX
				 ? LT_ERANGE
				 : lt_an_fact_parse(ev->payload, ev->payload_len, ev->event_id, f);
	if (pe == LT_ENOMEM)
		return b->fail = pe;
	if (pe) {
		if (!b->bad++) {
			b->first_bad = pe;
			b->first_bad_offset = ev->offset;
		}
	} else {
		bool inserted = false;
		enum lt_err e = batch_day(b, f->at_ms);
		if (!e)
			e = lt_an_append_fact(b->g->db, f, &inserted);
		if (e)
			return b->fail = e;
		if (inserted) {
			b->facts++;
			scratch_add(b->g->scratch, f);
		} else {
			b->dups++;
		}
	}
	b->next = ev->offset + 1;
	b->consumed++;
	return LT_OK;
}

/* Read and apply from b->next inside the open transaction. */
static enum lt_err read_batch(struct batch *b, size_t max, uint64_t *skip)
{
	for (int round = 0;; round++) {
		uint64_t next = b->next;
		enum lt_err e = lt_evlog_read(b->g->evlog, LT_TOPIC_USAGE, b->next,
					      max - b->consumed, deliver, b, &next);
		if (b->fail)
			return b->fail;
		if (e == LT_ENOTFOUND)
			return LT_OK;
		if (e != LT_ERANGE)
			return e;
		if (next <= b->next || round == SKIP_ROUNDS)
			return LT_ERANGE;
		*skip += next - b->next;
		b->next = next;
		if (b->consumed == max)
			return LT_OK;
	}
}

static int64_t now_ms(const struct lt_an_ingest *g)
{
	return (g->clock ? lt_clock_now_ns(g->clock) : lt_clock_real_ns()) / LT_NS_PER_MS;
}

static void update_lag(struct lt_an_ingest *g)
{
	atomic_store(&g->stats.lag, lt_an_ingest_lag(g));
}

enum lt_err lt_an_ingest_poll(struct lt_an_ingest *g, size_t *consumed)
{
	if (consumed)
		*consumed = 0;
	if (!g || !g->scratch)
		return LT_EINVAL;
	sqlite3 *db = g->db;
	/* Idle check without the write lock: nothing past the stored offset. */
	uint64_t start, end, stored = 0;
	enum lt_err e = lt_evlog_range(g->evlog, LT_TOPIC_USAGE, &start, &end);
	if (e == LT_ENOTFOUND) {
		atomic_store(&g->stats.lag, 0);
		return LT_OK;
	}
	if (e)
		return e;
	e = lt_consumer_get(db, LT_ANALYTICS_CONSUMER, LT_TOPIC_USAGE, &stored);
	if (e && e != LT_ENOTFOUND)
		return e;
	if (stored >= end && stored >= start) {
		atomic_store(&g->stats.next_offset, stored);
		atomic_store(&g->stats.lag, 0);
		return LT_OK;
	}

	struct batch *b = calloc(1, sizeof *b);
	if (!b)
		return LT_ENOMEM;
	b->g = g;
	b->now_ms = now_ms(g);
	scratch_clear(g->scratch);
	uint64_t from = 0, skip = 0;
	e = lt_db_exec(db, "BEGIN IMMEDIATE", NULL);
	if (e)
		goto out;
	e = lt_consumer_get(db, LT_ANALYTICS_CONSUMER, LT_TOPIC_USAGE, &from);
	if (e == LT_ENOTFOUND)
		e = LT_OK;
	b->next = from;
	if (!e)
		e = read_batch(b, g->batch, &skip);
	for (size_t i = 0; !e && i < g->scratch->n; i++)
		e = lt_an_append_rollup(db, &g->scratch->roll[i]);
	if (!e && b->next != from)
		e = lt_consumer_set(db, LT_ANALYTICS_CONSUMER, LT_TOPIC_USAGE, b->next, b->now_ms);
	if (!e && g->before_commit)
		e = g->before_commit(g->before_commit_arg);
	if (!e)
		e = lt_db_exec(db, "COMMIT", NULL);
out:
	if (e) {
		if (!sqlite3_get_autocommit(db))
			lt_db_exec(db, "ROLLBACK", NULL);
		atomic_fetch_add(&g->stats.failures, 1);
		free(b);
		return e;
	}
	atomic_store(&g->stats.next_offset, b->next);
	atomic_fetch_add(&g->stats.events, b->facts);
	atomic_fetch_add(&g->stats.duplicates, b->dups);
	atomic_fetch_add(&g->stats.bad, b->bad);
	atomic_fetch_add(&g->stats.skipped, skip);
	atomic_fetch_add(&g->stats.rollup_rows, g->scratch->n);
	if (b->consumed) {
		atomic_fetch_add(&g->stats.batches, 1);
		atomic_store(&g->stats.last_batch_ms, lt_clock_real_ns() / LT_NS_PER_MS);
	}
	if (b->bad && g->log)
		lt_log_warn(g->log,
			    "analytics: skipped %zu token-usage event(s) that do not parse; the "
			    "first at offset %llu: %s",
			    b->bad, (unsigned long long)b->first_bad_offset,
			    lt_strerror(b->first_bad));
	if (skip && g->log)
		lt_log_warn(g->log,
			    "analytics: %llu token-usage event(s) were deleted by retention "
			    "before they were counted",
			    (unsigned long long)skip);
	if (consumed)
		*consumed = b->consumed;
	free(b);
	update_lag(g);
	return LT_OK;
}

enum lt_err lt_an_ingest_drain(struct lt_an_ingest *g, uint64_t *consumed)
{
	if (consumed)
		*consumed = 0;
	for (;;) {
		size_t n = 0;
		enum lt_err e = lt_an_ingest_poll(g, &n);
		if (consumed)
			*consumed += n;
		if (e || n < g->batch)
			return e;
	}
}

uint64_t lt_an_ingest_lag(struct lt_an_ingest *g)
{
	uint64_t start, end, next = atomic_load(&g->stats.next_offset);
	if (lt_evlog_range(g->evlog, LT_TOPIC_USAGE, &start, &end))
		return 0;
	if (next < start)
		next = start;
	return end > next ? end - next : 0;
}

/* ---- lifecycle ---- */

enum lt_err lt_an_ingest_init(struct lt_an_ingest *g)
{
	if (!g->poll_ms)
		g->poll_ms = LT_AN_POLL_DEFAULT_MS;
	if (!g->batch)
		g->batch = LT_AN_BATCH_DEFAULT;
	if (!g->evlog || !g->db || g->poll_ms < 1 || g->batch > LT_AN_BATCH_MAX)
		return LT_EINVAL;
	struct lt_an_scratch *s = calloc(1, sizeof *s);
	if (!s)
		return LT_ENOMEM;
	s->cap = g->batch;
	s->nslot = 16;
	while (s->nslot < 2 * s->cap)
		s->nslot *= 2;
	s->roll = calloc(s->cap, sizeof *s->roll);
	s->slot = calloc(s->nslot, sizeof *s->slot);
	if (!s->roll || !s->slot) {
		free(s->roll);
		free(s->slot);
		free(s);
		return LT_ENOMEM;
	}
	g->scratch = s;
	atomic_store(&g->worker.started, false);
	uint64_t next = 0;
	enum lt_err e = lt_consumer_get(g->db, LT_ANALYTICS_CONSUMER, LT_TOPIC_USAGE, &next);
	if (e && e != LT_ENOTFOUND) {
		lt_an_ingest_release(g);
		return e;
	}
	atomic_store(&g->stats.next_offset, next);
	update_lag(g);
	return LT_OK;
}

void lt_an_ingest_release(struct lt_an_ingest *g)
{
	if (!g->scratch)
		return;
	free(g->scratch->roll);
	free(g->scratch->slot);
	free(g->scratch);
	g->scratch = NULL;
}

static void *ingest_main(void *arg)
{
	struct lt_an_ingest *g = arg;
	int64_t backoff = 0;
	for (;;) {
		enum lt_err e = LT_OK;
		size_t n = g->batch;
		while (!e && n == g->batch && !lt_worker_stopping(&g->worker))
			e = lt_an_ingest_poll(g, &n);
		if (e) {
			backoff = backoff ? backoff * 2 : g->poll_ms;
			if (backoff > BACKOFF_MAX_MS)
				backoff = BACKOFF_MAX_MS;
			if (e != LT_EBUSY && g->log)
				lt_log_error(g->log,
					     "analytics: ingest failed (%s); retrying in %lld ms",
					     lt_strerror(e), (long long)backoff);
		} else {
			backoff = 0;
		}
		if (lt_worker_wait(&g->worker, backoff ? backoff : g->poll_ms))
			break;
	}
	return NULL;
}

enum lt_err lt_an_ingest_start(struct lt_an_ingest *g)
{
	if (!g->scratch || atomic_load(&g->worker.started))
		return LT_EINVAL;
	return lt_worker_start(&g->worker, ingest_main, g);
}

void lt_an_ingest_kick(struct lt_an_ingest *g)
{
	lt_worker_kick(&g->worker);
}

void lt_an_ingest_stop(struct lt_an_ingest *g)
{
	lt_worker_stop(&g->worker);
}
