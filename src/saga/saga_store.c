/*
 * saga_store.c — purchase sagas in leaky.db.  See saga_store.h.
 *
 * The database actions of lt_saga_store_advance run their pool change
 * inside a SAVEPOINT of their own, so that a refused or failed change is
 * rolled back alone and its outcome is still recorded in the saga's row,
 * step log and events (the caller's transaction then commits the record
 * without the change).
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "events/outbox.h"
#include "quota/pool_store.h"
#include "saga/saga_store.h"
#include "store/stmt.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/timefmt.h"

#define SAGA_COLS                                                                                  \
	"id, user_id, org_id, provider, tokens, amount_micros, idempotency_key, payload_hash, "    \
	"status, done, payment_id, failure_reason, attempts, next_attempt_at, compensate, "        \
	"version, created_at, updated_at"

#define STEP_START "start"
#define STEP_COMPENSATE "compensate"
#define EV_STARTED "TOKEN_PURCHASE_STARTED"

/* ---- helpers ---- */

void lt_saga_payload_hash(const char *user_id, const char *org_id, const char *provider,
			  int64_t tokens, char out[LT_SAGA_HASH_LEN + 1])
{
	char text[256];
	int n = snprintf(text, sizeof text, "%s\n%s\n%s\n%lld", user_id ? user_id : "",
			 org_id ? org_id : "", provider ? provider : "", (long long)tokens);
	if (n < 0 || (size_t)n >= sizeof text)
		n = (int)sizeof text - 1;
	unsigned char h[LT_SAGA_HASH_LEN / 2];
	crypto_generichash(h, sizeof h, (const unsigned char *)text, (size_t)n, NULL, 0);
	sodium_bin2hex(out, LT_SAGA_HASH_LEN + 1, h, sizeof h);
}

enum lt_err lt_saga_amount(int64_t tokens, int64_t price_per_1m, int64_t *out)
{
	if (tokens < 0 || price_per_1m < 0 || tokens > LT_SAGA_TOKENS_MAX)
		return LT_ERANGE;
	const int64_t m = 1000000;
	if (tokens && price_per_1m / m > INT64_MAX / tokens / 2)
		return LT_ERANGE;
	int64_t whole = tokens * (price_per_1m / m); /* < INT64_MAX / 2 */
	int64_t part = tokens * (price_per_1m % m);  /* < 1e7 * 1e6 */
	*out = whole + part / m + (part % m ? 1 : 0);
	return LT_OK;
}

/* The done column holds six bits (schema.sql: CHECK done BETWEEN 0 AND
 * 63).  LT_SAGA_DONE_CAPTURE_TRIED (bit 6) is kept in a bit its state
 * never uses otherwise: RELEASED in TOKENS_ALLOCATED and COMPLETED,
 * CAPTURED in COMPENSATING and FAILED (lt_saga_sm_valid).  Rows written
 * before the bit existed never have those, so they read as before. */
static unsigned capture_tried_slot(enum lt_saga_state st)
{
	switch (st) {
	case LT_SAGA_TOKENS_ALLOCATED:
	case LT_SAGA_COMPLETED: return LT_SAGA_DONE_RELEASED;
	case LT_SAGA_COMPENSATING:
	case LT_SAGA_FAILED: return LT_SAGA_DONE_CAPTURED;
	default: return 0;
	}
}

static int64_t done_to_column(const struct lt_saga_sm *sm)
{
	unsigned d = sm->done & ~(unsigned)LT_SAGA_DONE_CAPTURE_TRIED;
	if (sm->done & LT_SAGA_DONE_CAPTURE_TRIED)
		d |= capture_tried_slot(sm->state); /* valid: never 0 here */
	return d;
}

static unsigned done_from_column(enum lt_saga_state st, unsigned col)
{
	unsigned slot = capture_tried_slot(st);
	if (slot && (col & slot))
		return (col & ~slot) | LT_SAGA_DONE_CAPTURE_TRIED;
	return col;
}

static bool id_ok(const char *s)
{
	return s && strlen(s) == LT_UUID_LEN - 1 && lt_uuid_valid(s, LT_UUID_LEN - 1);
}

static bool fits(const char *s, size_t cap)
{
	return s && strlen(s) < cap;
}

static enum lt_err step_err(int rc)
{
	enum lt_err e = lt_sqlite_err(rc);
	return e ? e : LT_EIO;
}

/* ---- reading ---- */

static enum lt_err read_saga(sqlite3_stmt *st, struct lt_saga *s)
{
	memset(s, 0, sizeof *s);
	lt_stmt_copy_col(st, 0, s->id, sizeof s->id);
	lt_stmt_copy_col(st, 1, s->user_id, sizeof s->user_id);
	lt_stmt_copy_col(st, 2, s->org_id, sizeof s->org_id);
	lt_stmt_copy_col(st, 3, s->provider, sizeof s->provider);
	s->tokens = sqlite3_column_int64(st, 4);
	s->amount_micros = sqlite3_column_int64(st, 5);
	s->has_key = sqlite3_column_type(st, 6) != SQLITE_NULL;
	lt_stmt_copy_col(st, 6, s->idem_key, sizeof s->idem_key);
	lt_stmt_copy_col(st, 7, s->payload_hash, sizeof s->payload_hash);
	const char *status = (const char *)sqlite3_column_text(st, 8);
	if (!status || lt_saga_state_parse(status, &s->sm.state))
		return LT_ECORRUPT;
	int64_t done = sqlite3_column_int64(st, 9), attempts = sqlite3_column_int64(st, 12);
	if (done < 0 || done > 63 || attempts < 0 || attempts > 1000000000)
		return LT_ECORRUPT;
	s->sm.done = done_from_column(s->sm.state, (unsigned)done);
	s->sm.attempts = (int)attempts;
	lt_stmt_copy_col(st, 10, s->payment_id, sizeof s->payment_id);
	lt_stmt_copy_col(st, 11, s->failure_reason, sizeof s->failure_reason);
	s->next_attempt_ms = sqlite3_column_int64(st, 13);
	s->compensate = sqlite3_column_int64(st, 14) != 0;
	s->version = sqlite3_column_int64(st, 15);
	s->created_ms = sqlite3_column_int64(st, 16);
	s->updated_ms = sqlite3_column_int64(st, 17);
	if (!lt_saga_sm_valid(&s->sm) || !id_ok(s->id))
		return LT_ECORRUPT;
	return LT_OK;
}

enum lt_err lt_saga_store_get(sqlite3 *db, const char *id, struct lt_saga *out)
{
	if (!id_ok(id))
		return LT_ENOTFOUND;
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(db, "SELECT " SAGA_COLS " FROM sagas WHERE id = ?1", &st);
	if (e)
		return e;
	lt_stmt_bind_str(st, 1, id);
	int rc = sqlite3_step(st);
	e = rc == SQLITE_ROW ? read_saga(st, out) : rc == SQLITE_DONE ? LT_ENOTFOUND : step_err(rc);
	lt_stmt_put(st);
	return e;
}

struct step_ctx {
	enum lt_err (*fn)(void *arg, const struct lt_saga_step_row *row);
	void *arg;
};

static enum lt_err step_row(sqlite3_stmt *st, void *arg)
{
	struct step_ctx *c = arg;
	struct lt_saga_step_row r;
	memset(&r, 0, sizeof r);
	r.seq = sqlite3_column_int64(st, 0);
	lt_stmt_copy_col(st, 1, r.name, sizeof r.name);
	lt_stmt_copy_col(st, 2, r.status, sizeof r.status);
	r.at_ms = sqlite3_column_int64(st, 3);
	r.tries = sqlite3_column_int64(st, 4);
	lt_stmt_copy_col(st, 5, r.detail, sizeof r.detail);
	return c->fn(c->arg, &r);
}

enum lt_err lt_saga_store_steps(sqlite3 *db, const char *id,
				enum lt_err (*fn)(void *arg, const struct lt_saga_step_row *row),
				void *arg)
{
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(db,
				     "SELECT seq, name, status, at, tries, detail FROM saga_steps "
				     "WHERE saga_id = ?1 ORDER BY seq",
				     &st);
	if (e)
		return e;
	lt_stmt_bind_str(st, 1, id);
	struct step_ctx c = {fn, arg};
	return lt_stmt_each(st, step_row, &c);
}

struct list_ctx {
	enum lt_err (*fn)(void *arg, const struct lt_saga *s);
	void *arg;
};

static enum lt_err list_row(sqlite3_stmt *st, void *arg)
{
	struct list_ctx *c = arg;
	struct lt_saga s;
	enum lt_err e = read_saga(st, &s);
	return e ? e : c->fn(c->arg, &s);
}

enum lt_err lt_saga_store_list(sqlite3 *db, const enum lt_saga_state *status, size_t limit,
			       enum lt_err (*fn)(void *arg, const struct lt_saga *s), void *arg)
{
	if (limit < 1 || limit > LT_SAGA_LIST_MAX || (status && !lt_saga_state_name(*status)))
		return LT_EINVAL;
	sqlite3_stmt *st;
	enum lt_err e =
		lt_stmt_prep(db,
			     status ? "SELECT " SAGA_COLS " FROM sagas WHERE status = ?1 "
				      "ORDER BY created_at DESC, id DESC LIMIT ?2"
				    : "SELECT " SAGA_COLS
				      " FROM sagas ORDER BY created_at DESC, id DESC LIMIT ?2",
			     &st);
	if (e)
		return e;
	if (status)
		lt_stmt_bind_str(st, 1, lt_saga_state_name(*status));
	sqlite3_bind_int64(st, 2, (int64_t)limit);
	struct list_ctx c = {fn, arg};
	return lt_stmt_each(st, list_row, &c);
}

struct due_ctx {
	enum lt_err (*fn)(void *arg, const char *id);
	void *arg;
};

static enum lt_err due_row(sqlite3_stmt *st, void *arg)
{
	struct due_ctx *c = arg;
	char id[LT_UUID_LEN];
	lt_stmt_copy_col(st, 0, id, sizeof id);
	return c->fn(c->arg, id);
}

enum lt_err lt_saga_store_due(sqlite3 *db, int64_t idle_before_ms, size_t max,
			      enum lt_err (*fn)(void *arg, const char *id), void *arg)
{
	sqlite3_stmt *st;
	enum lt_err e =
		lt_stmt_prep(db,
			     "SELECT id FROM sagas WHERE status NOT IN ('COMPLETED', 'FAILED') "
			     "AND (next_attempt_at = 0 OR updated_at <= ?1) "
			     "ORDER BY updated_at, id LIMIT ?2",
			     &st);
	if (e)
		return e;
	sqlite3_bind_int64(st, 1, idle_before_ms);
	sqlite3_bind_int64(st, 2, (int64_t)(max > INT64_MAX ? INT64_MAX : max));
	struct due_ctx c = {fn, arg};
	return lt_stmt_each(st, due_row, &c);
}

/* ---- writing ---- */

/* Append a step row, or fold it into the last one when that is the same
 * step with the same status (a retry): bounded growth under retries. */
static enum lt_err step_put(sqlite3 *db, const char *id, const char *name, const char *status,
			    int64_t at, const char *detail)
{
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(db,
				     "SELECT seq, name, status FROM saga_steps WHERE saga_id = ?1 "
				     "ORDER BY seq DESC LIMIT 1",
				     &st);
	if (e)
		return e;
	lt_stmt_bind_str(st, 1, id);
	int rc = sqlite3_step(st);
	int64_t seq = 0;
	bool same = false;
	if (rc == SQLITE_ROW) {
		seq = sqlite3_column_int64(st, 0);
		const char *n = (const char *)sqlite3_column_text(st, 1);
		const char *s = (const char *)sqlite3_column_text(st, 2);
		same = n && s && !strcmp(n, name) && !strcmp(s, status);
	}
	lt_stmt_put(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return step_err(rc);
	if (same) {
		e = lt_stmt_prep(db,
				 "UPDATE saga_steps SET at = ?3, detail = ?4, tries = tries + 1 "
				 "WHERE saga_id = ?1 AND seq = ?2",
				 &st);
	} else {
		seq++;
		e = lt_stmt_prep(db,
				 "INSERT INTO saga_steps (saga_id, seq, at, detail, name, status) "
				 "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
				 &st);
	}
	if (e)
		return e;
	lt_stmt_bind_str(st, 1, id);
	sqlite3_bind_int64(st, 2, seq);
	sqlite3_bind_int64(st, 3, at);
	lt_stmt_bind_str(st, 4, detail && detail[0] ? detail : NULL);
	if (!same) {
		lt_stmt_bind_str(st, 5, name);
		lt_stmt_bind_str(st, 6, status);
	}
	return lt_stmt_run(db, st, NULL);
}

/* One event of the saga into the outbox. */
static enum lt_err event_add(sqlite3 *db, const struct lt_saga *s, const char *type,
			     const char *detail, int64_t now_ms)
{
	char stack[1024], at[LT_ISO_LEN];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 8192);
	lt_time_iso(now_ms * LT_NS_PER_MS, at);
	lt_buf_printf(&b, "{\"type\":\"%s\",\"sagaId\":\"%s\",\"userId\":\"%s\",\"orgId\":", type,
		      s->id, s->user_id);
	if (s->org_id[0])
		lt_buf_printf(&b, "\"%s\"", s->org_id);
	else
		lt_buf_puts(&b, "null");
	lt_buf_puts(&b, ",\"provider\":");
	lt_buf_put_json_str(&b, s->provider, strlen(s->provider));
	lt_buf_printf(&b, ",\"tokens\":%lld,\"amountMicros\":%lld,\"status\":\"%s\",\"paymentId\":",
		      (long long)s->tokens, (long long)s->amount_micros,
		      lt_saga_state_name(s->sm.state));
	if (s->payment_id[0])
		lt_buf_put_json_str(&b, s->payment_id, strlen(s->payment_id));
	else
		lt_buf_puts(&b, "null");
	lt_buf_puts(&b, ",\"detail\":");
	if (detail && detail[0])
		lt_buf_put_json_str(&b, detail, strlen(detail));
	else
		lt_buf_puts(&b, "null");
	lt_buf_printf(&b, ",\"at\":\"%s\"}", at);
	enum lt_err e =
		b.err ? b.err
		      : lt_outbox_add(db, LT_TOPIC_PURCHASE, s->id, type, b.data, now_ms, NULL);
	lt_buf_release(&b);
	return e;
}

static enum lt_err create_validate(const struct lt_saga *s)
{
	if (!id_ok(s->id) || !id_ok(s->user_id) || (s->org_id[0] && !id_ok(s->org_id)) ||
	    !s->provider[0] || !fits(s->provider, sizeof s->provider) || s->tokens < 1 ||
	    s->tokens > LT_SAGA_TOKENS_MAX || s->amount_micros < 0 ||
	    strlen(s->payload_hash) != LT_SAGA_HASH_LEN ||
	    (s->has_key && (!s->idem_key[0] || !fits(s->idem_key, sizeof s->idem_key))))
		return LT_EINVAL;
	return LT_OK;
}

/* The saga the user's key names, if any. */
static enum lt_err by_key(sqlite3 *db, const char *user_id, const char *key, struct lt_saga *out)
{
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(db,
				     "SELECT " SAGA_COLS " FROM sagas WHERE user_id = ?1 AND "
				     "idempotency_key = ?2",
				     &st);
	if (e)
		return e;
	lt_stmt_bind_str(st, 1, user_id);
	lt_stmt_bind_str(st, 2, key);
	int rc = sqlite3_step(st);
	e = rc == SQLITE_ROW ? read_saga(st, out) : rc == SQLITE_DONE ? LT_ENOTFOUND : step_err(rc);
	lt_stmt_put(st);
	return e;
}

enum lt_err lt_saga_store_create(sqlite3 *db, struct lt_saga *s, int64_t now_ms, bool *created)
{
	*created = false;
	enum lt_err e = create_validate(s);
	if (e)
		return e;
	if (s->has_key) {
		struct lt_saga old;
		e = by_key(db, s->user_id, s->idem_key, &old);
		if (e == LT_OK) {
			bool same = strcmp(old.payload_hash, s->payload_hash) == 0;
			*s = old;
			return same ? LT_OK : LT_EEXIST;
		}
		if (e != LT_ENOTFOUND)
			return e;
	}
	sqlite3_stmt *st;
	e = lt_stmt_prep(
		db,
		"INSERT INTO sagas (id, user_id, org_id, provider, tokens, amount_micros, "
		"idempotency_key, payload_hash, status, done, attempts, next_attempt_at, "
		"compensate, version, created_at, updated_at) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'STARTED', 0, 0, ?9, 0, 1, ?9, ?9)",
		&st);
	if (e)
		return e;
	lt_stmt_bind_str(st, 1, s->id);
	lt_stmt_bind_str(st, 2, s->user_id);
	lt_stmt_bind_str(st, 3, s->org_id[0] ? s->org_id : NULL);
	lt_stmt_bind_str(st, 4, s->provider);
	sqlite3_bind_int64(st, 5, s->tokens);
	sqlite3_bind_int64(st, 6, s->amount_micros);
	lt_stmt_bind_str(st, 7, s->has_key ? s->idem_key : NULL);
	lt_stmt_bind_str(st, 8, s->payload_hash);
	sqlite3_bind_int64(st, 9, now_ms);
	e = lt_stmt_run(db, st, NULL);
	if (e)
		return e;
	s->sm = (struct lt_saga_sm){LT_SAGA_STARTED, 0, 0};
	s->payment_id[0] = s->failure_reason[0] = '\0';
	s->compensate = false;
	s->next_attempt_ms = s->created_ms = s->updated_ms = now_ms;
	s->version = 1;
	e = step_put(db, s->id, STEP_START, lt_saga_step_status_name(LT_STEP_SUCCEEDED), now_ms,
		     NULL);
	if (!e)
		e = event_add(db, s, EV_STARTED, NULL, now_ms);
	if (!e)
		*created = true;
	return e;
}

enum lt_err lt_saga_store_mark(sqlite3 *db, const char *id, bool compensate, struct lt_saga *out)
{
	struct lt_saga s;
	enum lt_err e = lt_saga_store_get(db, id, &s);
	if (e)
		return e;
	if (lt_saga_state_final(s.sm.state))
		return LT_EINVAL;
	if (compensate && (s.sm.done & LT_SAGA_DONE_CAPTURED))
		return LT_EDENIED;
	sqlite3_stmt *st;
	e = lt_stmt_prep(db,
			 "UPDATE sagas SET next_attempt_at = 0, compensate = max(compensate, ?2) "
			 "WHERE id = ?1",
			 &st);
	if (e)
		return e;
	lt_stmt_bind_str(st, 1, id);
	sqlite3_bind_int64(st, 2, compensate ? 1 : 0);
	e = lt_stmt_run(db, st, NULL);
	if (e)
		return e;
	s.next_attempt_ms = 0;
	s.compensate = s.compensate || compensate;
	if (out)
		*out = s;
	return LT_OK;
}

/* Write the saga's state columns (not its flags: those belong to mark),
 * checking the version it was read at. */
static enum lt_err saga_write(sqlite3 *db, struct lt_saga *s, int64_t read_version,
			      bool clear_compensate)
{
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(
		db,
		"UPDATE sagas SET status = ?3, done = ?4, attempts = ?5, next_attempt_at = ?6, "
		"payment_id = ?7, failure_reason = ?8, updated_at = ?9, version = version + 1, "
		"compensate = CASE WHEN ?10 THEN 0 ELSE compensate END "
		"WHERE id = ?1 AND version = ?2",
		&st);
	if (e)
		return e;
	lt_stmt_bind_str(st, 1, s->id);
	sqlite3_bind_int64(st, 2, read_version);
	lt_stmt_bind_str(st, 3, lt_saga_state_name(s->sm.state));
	sqlite3_bind_int64(st, 4, done_to_column(&s->sm));
	sqlite3_bind_int64(st, 5, s->sm.attempts);
	sqlite3_bind_int64(st, 6, s->next_attempt_ms);
	lt_stmt_bind_str(st, 7, s->payment_id[0] ? s->payment_id : NULL);
	lt_stmt_bind_str(st, 8, s->failure_reason[0] ? s->failure_reason : NULL);
	sqlite3_bind_int64(st, 9, s->updated_ms);
	sqlite3_bind_int(st, 10, clear_compensate ? 1 : 0);
	int changes = 0;
	e = lt_stmt_run(db, st, &changes);
	if (!e && changes != 1)
		return LT_EEXIST;
	if (!e) {
		s->version = read_version + 1;
		if (clear_compensate)
			s->compensate = false;
	}
	return e;
}

static enum lt_err savepoint(sqlite3 *db, const char *sql)
{
	return lt_sqlite_err(sqlite3_exec(db, sql, NULL, NULL, NULL));
}

static enum lt_saga_outcome db_outcome(enum lt_err e)
{
	switch (e) {
	case LT_OK: return LT_SAGA_OK;
	case LT_EINVAL:
	case LT_ERANGE:
	case LT_ECORRUPT: return LT_SAGA_REFUSED;
	default: return LT_SAGA_RETRY;
	}
}

static void pool_key(const struct lt_saga *s, struct lt_pool_key *k)
{
	memset(k, 0, sizeof *k);
	k->kind = s->org_id[0] ? LT_OWNER_ORG : LT_OWNER_USER;
	snprintf(k->owner_id, sizeof k->owner_id, "%s", s->org_id[0] ? s->org_id : s->user_id);
	snprintf(k->provider, sizeof k->provider, "%s", s->provider);
}

/* Allocate or reverse the saga's tokens inside a savepoint of their own;
 * the outcome and a detail for the step log. */
static enum lt_saga_outcome pool_action(sqlite3 *db, const struct lt_saga *s, bool reverse,
					const struct lt_saga_advance *a, char *detail, size_t cap)
{
	enum lt_err e = savepoint(db, "SAVEPOINT saga_pool");
	if (e) {
		snprintf(detail, cap, "cannot start the pool change: %s", lt_strerror(e));
		return LT_SAGA_RETRY;
	}
	char reason[64];
	struct lt_pool_change c;
	memset(&c, 0, sizeof c);
	pool_key(s, &c.key);
	c.window = LT_WINDOW_NONE;
	c.window_cap = -1;
	c.now_ms = a->now_ms;
	c.note.actor = LT_SAGA_ACTOR;
	c.note.reason = reason;
	c.note.correlation_id = a->correlation_id;
	const char *owner = c.key.kind == LT_OWNER_ORG ? "org" : "user";
	if (!reverse) {
		snprintf(reason, sizeof reason, "purchase %s", s->id);
		c.amount = s->tokens;
		e = lt_pool_store_change(db, &c);
		if (!e)
			snprintf(detail, cap,
				 "granted %lld tokens to the %s's %s pool (remaining %lld)",
				 (long long)s->tokens, owner, s->provider,
				 (long long)c.out.pool.remaining);
	} else {
		snprintf(reason, sizeof reason, "purchase %s compensated", s->id);
		struct lt_pool_row row;
		e = lt_pool_store_get(db, &c.key, a->now_ms, &row);
		int64_t take = 0;
		if (e == LT_OK) {
			take = row.pool.remaining < s->tokens ? row.pool.remaining : s->tokens;
			if (take > 0) {
				c.adjust = true;
				c.amount = -take;
				e = lt_pool_store_change(db, &c);
			}
		} else if (e == LT_ENOTFOUND) {
			e = LT_OK; /* nothing to take back */
		}
		if (!e && take == s->tokens)
			snprintf(detail, cap, "removed %lld tokens from the %s's %s pool",
				 (long long)take, owner, s->provider);
		else if (!e)
			snprintf(detail, cap,
				 "removed %lld of %lld tokens from the %s's %s pool: the rest was "
				 "already spent",
				 (long long)take, (long long)s->tokens, owner, s->provider);
	}
	if (e) {
		snprintf(detail, cap, "%s the tokens failed: %s", reverse ? "removing" : "granting",
			 lt_strerror(e));
		savepoint(db, "ROLLBACK TO saga_pool");
	}
	enum lt_err r = savepoint(db, "RELEASE saga_pool");
	if (r && !e) {
		snprintf(detail, cap, "the pool change failed: %s", lt_strerror(r));
		return LT_SAGA_RETRY;
	}
	return db_outcome(e);
}

static enum lt_err advance_validate(const struct lt_saga_advance *a)
{
	if (!id_ok(a->id) || (a->payment_id && strlen(a->payment_id) > LT_PAY_ID_MAX))
		return LT_EINVAL;
	return LT_OK;
}

/* The flag: compensate now, unless the saga cannot be (then just clear it
 * and say why in the step log). */
static enum lt_err apply_compensate(sqlite3 *db, struct lt_saga_advance *a, struct lt_saga *s)
{
	enum lt_err e = lt_saga_compensate(&s->sm, &a->move);
	const char *detail = a->detail && a->detail[0] ? a->detail : "compensation requested";
	int64_t read_version = s->version;
	if (e == LT_EDENIED || e == LT_EEXIST || e == LT_EINVAL) {
		/* captured (it can only complete), already compensating, or final */
		a->changed = false;
		s->updated_ms = a->now_ms;
		bool captured = e == LT_EDENIED;
		e = saga_write(db, s, read_version, true);
		if (!e && captured)
			e = step_put(db, s->id, STEP_COMPENSATE,
				     lt_saga_step_status_name(LT_STEP_FAILED), a->now_ms,
				     "refused: the payment is already captured");
		return e;
	}
	if (e)
		return e;
	s->sm = a->move.next;
	s->updated_ms = s->next_attempt_ms = a->now_ms;
	snprintf(s->failure_reason, sizeof s->failure_reason, "%s", detail);
	e = saga_write(db, s, read_version, true);
	if (!e)
		e = step_put(db, s->id, STEP_COMPENSATE,
			     lt_saga_step_status_name(LT_STEP_SUCCEEDED), a->now_ms, detail);
	for (size_t i = 0; !e && i < a->move.nevents; i++)
		e = event_add(db, s, a->move.events[i], detail, a->now_ms);
	a->changed = true;
	return e;
}

enum lt_err lt_saga_store_advance(sqlite3 *db, void *arg)
{
	struct lt_saga_advance *a = arg;
	struct lt_saga *s = &a->saga;
	a->changed = false;
	memset(&a->move, 0, sizeof a->move);
	enum lt_err e = advance_validate(a);
	if (!e)
		e = lt_saga_store_get(db, a->id, s);
	if (e)
		return e;
	if (s->version != a->version)
		return LT_EEXIST;
	if (a->compensate)
		return apply_compensate(db, a, s);
	if (a->action != lt_saga_action(&s->sm))
		return LT_EINVAL;
	int64_t read_version = s->version;
	char detail[LT_SAGA_TEXT_MAX + 1] = "";
	enum lt_saga_outcome o = a->outcome;
	switch (a->action) {
	case LT_SAGA_ACT_ALLOCATE: o = pool_action(db, s, false, a, detail, sizeof detail); break;
	case LT_SAGA_ACT_REVERSE_ALLOCATION:
		o = pool_action(db, s, true, a, detail, sizeof detail);
		break;
	case LT_SAGA_ACT_COMPLETE:
	case LT_SAGA_ACT_FAIL: o = LT_SAGA_OK; break;
	default: snprintf(detail, sizeof detail, "%s", a->detail ? a->detail : ""); break;
	}
	e = lt_saga_advance(&s->sm, a->action, o, &a->move);
	if (e)
		return e;
	if (a->payment_id && a->payment_id[0])
		snprintf(s->payment_id, sizeof s->payment_id, "%s", a->payment_id);
	s->sm = a->move.next;
	s->updated_ms = a->now_ms;
	s->next_attempt_ms =
		a->now_ms +
		(a->move.retry ? lt_saga_backoff_ms(s->sm.attempts, a->retry_max_ms) : 0);
	if (a->move.compensating)
		snprintf(s->failure_reason, sizeof s->failure_reason, "%s failed: %.220s",
			 lt_saga_action_name(a->action), detail[0] ? detail : "no detail");
	e = saga_write(db, s, read_version, false);
	if (!e)
		e = step_put(db, s->id, lt_saga_action_name(a->action),
			     lt_saga_step_status_name(a->move.step), a->now_ms, detail);
	for (size_t i = 0; !e && i < a->move.nevents; i++)
		e = event_add(db, s, a->move.events[i], detail, a->now_ms);
	a->changed = true;
	return e;
}

struct check_ctx {
	size_t sagas, bad;
	void (*fn)(void *arg, const char *id, const char *problem);
	void *arg;
};

static enum lt_err check_row(sqlite3_stmt *st, void *arg)
{
	struct check_ctx *c = arg;
	char id[LT_UUID_LEN], status[32], why[160] = "";
	lt_stmt_copy_col(st, 0, id, sizeof id);
	lt_stmt_copy_col(st, 1, status, sizeof status);
	int64_t tokens = sqlite3_column_int64(st, 2), granted = sqlite3_column_int64(st, 3);
	int64_t reversed = sqlite3_column_int64(st, 4), grants = sqlite3_column_int64(st, 5);
	c->sagas++;
	if (!strcmp(status, "COMPLETED")) {
		if (grants != 1 || granted != tokens || reversed != 0)
			snprintf(why, sizeof why,
				 "COMPLETED but the ledger has %lld grant(s) of %lld and %lld "
				 "reversed (want one grant of %lld, nothing reversed)",
				 (long long)grants, (long long)granted, (long long)reversed,
				 (long long)tokens);
	} else if (grants > 1 || granted + reversed < 0 || granted + reversed > tokens ||
		   (grants == 0 && reversed != 0)) {
		snprintf(why, sizeof why,
			 "FAILED with %lld grant(s) of %lld and %lld reversed (tokens %lld)",
			 (long long)grants, (long long)granted, (long long)reversed,
			 (long long)tokens);
	}
	if (why[0]) {
		c->bad++;
		if (c->fn)
			c->fn(c->arg, id, why);
	}
	return LT_OK;
}

enum lt_err lt_saga_store_check(sqlite3 *db, size_t *sagas, size_t *bad,
				void (*fn)(void *arg, const char *id, const char *problem),
				void *arg)
{
	if (!db || !sagas || !bad)
		return LT_EINVAL;
	sqlite3_stmt *st;
	/* reasons are "purchase <uuid>" and "purchase <uuid> compensated":
	 * the id is the 36 characters after "purchase " */
	enum lt_err e = lt_stmt_prep(
		db,
		"WITH p AS (SELECT substr(reason, 10, 36) AS sid, "
		"sum(CASE WHEN kind = 'grant' THEN d_remaining ELSE 0 END) AS g, "
		"sum(CASE WHEN kind = 'adjust' THEN d_remaining ELSE 0 END) AS r, "
		"sum(kind = 'grant') AS n FROM ledger "
		"WHERE reason LIKE 'purchase %' AND (kind = 'grant' OR kind = 'adjust') "
		"GROUP BY sid) "
		"SELECT s.id, s.status, s.tokens, coalesce(p.g, 0), coalesce(p.r, 0), "
		"coalesce(p.n, 0) FROM sagas s LEFT JOIN p ON p.sid = s.id "
		"WHERE s.status IN ('COMPLETED', 'FAILED') ORDER BY s.created_at, s.id",
		&st);
	if (e)
		return e;
	struct check_ctx c = {0, 0, fn, arg};
	e = lt_stmt_each(st, check_row, &c);
	*sagas = c.sagas;
	*bad = c.bad;
	return e;
}
