/*
 * pool_store.c — token and money pools in leaky.db: the SQL adapter around
 * quota/pool.h.  See pool_store.h for the contract.
 *
 * Owns: the rows of pools, ledger and reservations (schema.sql migration
 * 3).  Nothing else writes them.
 *
 * Invariants every write keeps (lt_pool_store_check verifies them):
 *   pools.remaining == sum(ledger.d_remaining) and
 *   pools.reserved  == sum(ledger.d_reserved) == sum(reservations.held)
 *   for each pool, and remaining >= 0 (also a CHECK in the schema).
 * Each write function first loads what it needs, computes every new pool
 * with the pure arithmetic on copies, and only then writes: a refusal
 * (LT_EINVAL, LT_ERANGE, LT_ENOTFOUND, LT_EEXIST, LT_EDENIED) writes
 * nothing.  The ledger deltas are the differences between the pool as
 * loaded and as written, so they cannot disagree with the pool row.
 *
 * Locking: none here.  Writes run on the writer thread inside the SAVEPOINT
 * it opens for each operation; a storage error in the middle of a write
 * (LT_EIO, LT_EBUSY, LT_ECORRUPT, LT_ENOMEM) may leave part of it written,
 * and the writer rolls the savepoint back because the operation returned
 * an error.  After such an error sqlite3_errmsg(db) still says why (nothing
 * runs on db after the failing statement), for the caller to log.
 *
 * Error mapping: SQLITE_CONSTRAINT (a CHECK, UNIQUE or foreign key this
 * code should never violate) and SQLITE_CORRUPT → LT_ECORRUPT; BUSY and
 * LOCKED → LT_EBUSY; NOMEM → LT_ENOMEM; anything else → LT_EIO.  Stored rows
 * that contradict themselves (a reservation holding more than its pool's
 * reserved) are LT_ECORRUPT too.
 *
 * Prepared statements are cached by the connection itself, without global
 * state: lt_stmt_prep() finds one this file prepared earlier on the same handle
 * (sqlite3_next_stmt, same SQL text, not running) or prepares it with
 * SQLITE_PREPARE_PERSISTENT; lt_stmt_put() resets it after each use.  They stay
 * with the connection until lt_db_close, which finalizes whatever is left
 * prepared (every connection in leakyd and leakyctl is closed with it).
 * Preparing costs 11-15 us a statement here against ~1 us for a lookup.
 *
 * Choices the header leaves open:
 *   - window_reset rows carry the operation's actor and correlation id, no
 *     reason and no amount; one row even when a window both rolled and was
 *     changed by the same lt_pool_store_change.
 *   - grant/adjust/release rows leave `amount` NULL (the deltas say it all);
 *     reserve rows hold the amount held, settle rows the actual usage.
 *   - A settlement naming a pool the reservation does not hold, or the
 *     same pool twice, is LT_EINVAL (nothing written).
 *   - A provider with an upper-case letter, an empty or unterminated id,
 *     a window_cap below -1 or a negative now_ms is LT_EINVAL.
 *   - lt_pool_store_check also checks total == the sum of grants and
 *     positive adjusts, and reports ledger or reservation rows whose pool
 *     does not exist (counted in *bad, not in *pools).
 */
#include <ctype.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "quota/pool_store.h"
#include "store/stmt.h"

#define RELEASE_AT_START "released at start: the call did not survive a restart"
#define ID_CAP sizeof((struct lt_settlement){.n = 0}.id) /* reservation id, with its NUL */

static const char *const owner_names[] = {"user", "org"};

/* Bind key to ?i, ?i+1, ?i+2 (owner_kind, owner_id, provider). */
static int bind_key(sqlite3_stmt *st, int i, const struct lt_pool_key *k)
{
	int rc = lt_stmt_bind_str(st, i, owner_names[k->kind]);
	if (rc == SQLITE_OK)
		rc = lt_stmt_bind_str(st, i + 1, k->owner_id);
	if (rc == SQLITE_OK)
		rc = lt_stmt_bind_str(st, i + 2, k->provider);
	return rc;
}

/* ---- validation --------------------------------------------------------- */

static bool str_ok(const char *s, size_t cap)
{
	return s[0] != '\0' && memchr(s, '\0', cap) != NULL;
}

static bool key_ok(const struct lt_pool_key *k)
{
	if ((unsigned)k->kind > LT_OWNER_ORG || !str_ok(k->owner_id, sizeof k->owner_id) ||
	    !str_ok(k->provider, sizeof k->provider))
		return false;
	for (const char *p = k->provider; *p; p++)
		if (isupper((unsigned char)*p))
			return false;
	return true;
}

static bool key_eq(const struct lt_pool_key *a, const struct lt_pool_key *b)
{
	return a->kind == b->kind && strcmp(a->owner_id, b->owner_id) == 0 &&
	       strcmp(a->provider, b->provider) == 0;
}

/* ---- pool rows ---------------------------------------------------------- */

#define POOL_COLS                                                                                  \
	"id, owner_kind, owner_id, provider, total, remaining, reserved, window, window_start, "   \
	"window_cap, window_used, created_at, updated_at"

static enum lt_err read_pool(sqlite3_stmt *st, struct lt_pool_row *r)
{
	const char *kind = (const char *)sqlite3_column_text(st, 1);
	const char *win = (const char *)sqlite3_column_text(st, 7);
	memset(r, 0, sizeof *r);
	r->id = sqlite3_column_int64(st, 0);
	if (!kind || (strcmp(kind, "user") != 0 && strcmp(kind, "org") != 0))
		return LT_ECORRUPT;
	r->key.kind = kind[0] == 'u' ? LT_OWNER_USER : LT_OWNER_ORG;
	lt_stmt_copy_col(st, 2, r->key.owner_id, sizeof r->key.owner_id);
	lt_stmt_copy_col(st, 3, r->key.provider, sizeof r->key.provider);
	r->pool.total = sqlite3_column_int64(st, 4);
	r->pool.remaining = sqlite3_column_int64(st, 5);
	r->pool.reserved = sqlite3_column_int64(st, 6);
	if (!win || lt_window_parse(win, &r->pool.window))
		return LT_ECORRUPT;
	r->pool.window_start_ms = sqlite3_column_int64(st, 8);
	r->pool.window_cap = sqlite3_column_int64(st, 9);
	r->pool.window_used = sqlite3_column_int64(st, 10);
	r->created_ms = sqlite3_column_int64(st, 11);
	r->updated_ms = sqlite3_column_int64(st, 12);
	return LT_OK;
}

/* Step a pool query expected to give at most one row. */
static enum lt_err load_one(sqlite3_stmt *st, struct lt_pool_row *out)
{
	int rc = sqlite3_step(st);
	enum lt_err e = rc == SQLITE_ROW    ? read_pool(st, out)
			: rc == SQLITE_DONE ? LT_ENOTFOUND
			: lt_sqlite_err(rc) ? lt_sqlite_err(rc)
					    : LT_EIO;
	lt_stmt_put(st);
	return e;
}

static enum lt_err load_by_key(sqlite3 *db, const struct lt_pool_key *k, struct lt_pool_row *out)
{
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(db,
				     "SELECT " POOL_COLS " FROM pools "
				     "WHERE owner_kind = ?1 AND owner_id = ?2 AND provider = ?3",
				     &st);
	if (e)
		return e;
	int rc = bind_key(st, 1, k);
	if (rc != SQLITE_OK) {
		lt_stmt_put(st);
		return lt_sqlite_err(rc);
	}
	return load_one(st, out);
}

struct top_ctx {
	void (*fn)(void *arg, const struct lt_pool_row *row);
	void *arg;
};

static enum lt_err top_row(sqlite3_stmt *st, void *arg)
{
	struct top_ctx *c = arg;
	struct lt_pool_row r;
	enum lt_err e = read_pool(st, &r);
	if (!e)
		c->fn(c->arg, &r);
	return e;
}

enum lt_err lt_pool_store_top(sqlite3 *db, size_t n,
			      void (*fn)(void *arg, const struct lt_pool_row *row), void *arg)
{
	if (!db || !fn || n < 1 || n > 100)
		return LT_EINVAL;
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(db,
				     "SELECT " POOL_COLS " FROM pools "
				     "ORDER BY total - remaining DESC, id LIMIT ?1",
				     &st);
	if (e)
		return e;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)n);
	struct top_ctx c = {fn, arg};
	return lt_stmt_each(st, top_row, &c);
}

static enum lt_err load_by_id(sqlite3 *db, int64_t id, struct lt_pool_row *out)
{
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(db, "SELECT " POOL_COLS " FROM pools WHERE id = ?1", &st);
	if (e)
		return e;
	sqlite3_bind_int64(st, 1, id);
	return load_one(st, out);
}

/* Bind the pool's mutable columns to ?1..?8 (updated_at = now_ms). */
static int bind_pool(sqlite3_stmt *st, const struct lt_pool *p, int64_t now_ms)
{
	int rc = sqlite3_bind_int64(st, 1, p->total);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, p->remaining);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 3, p->reserved);
	if (rc == SQLITE_OK)
		rc = lt_stmt_bind_str(st, 4, lt_window_name(p->window));
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 5, p->window_start_ms);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 6, p->window_cap);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 7, p->window_used);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 8, now_ms);
	return rc;
}

static enum lt_err insert_pool(sqlite3 *db, struct lt_pool_row *r)
{
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(
		db,
		"INSERT INTO pools (total, remaining, reserved, window, window_start, "
		"window_cap, window_used, updated_at, created_at, owner_kind, owner_id, "
		"provider) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?11)",
		&st);
	if (e)
		return e;
	int rc = bind_pool(st, &r->pool, r->created_ms);
	if (rc == SQLITE_OK)
		rc = bind_key(st, 9, &r->key);
	if (rc != SQLITE_OK) {
		lt_stmt_put(st);
		return lt_sqlite_err(rc);
	}
	e = lt_stmt_run(db, st, NULL);
	if (!e)
		r->id = sqlite3_last_insert_rowid(db);
	return e;
}

static enum lt_err update_pool(sqlite3 *db, struct lt_pool_row *r, int64_t now_ms)
{
	sqlite3_stmt *st;
	enum lt_err e =
		lt_stmt_prep(db,
			     "UPDATE pools SET total = ?1, remaining = ?2, reserved = ?3, "
			     "window = ?4, window_start = ?5, window_cap = ?6, window_used = ?7, "
			     "updated_at = ?8 WHERE id = ?9",
			     &st);
	if (e)
		return e;
	int rc = bind_pool(st, &r->pool, now_ms);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 9, r->id);
	if (rc != SQLITE_OK) {
		lt_stmt_put(st);
		return lt_sqlite_err(rc);
	}
	int changes = 0;
	e = lt_stmt_run(db, st, &changes);
	if (!e && changes != 1)
		return LT_ECORRUPT; /* loaded in this same transaction */
	r->updated_ms = now_ms;
	return e;
}

/* ---- ledger ------------------------------------------------------------- */

/* One movement of one pool, as the ledger records it. */
struct move {
	const char *kind;
	const char *reservation; /* NULL outside reserve/settle/release */
	bool has_amount;
	int64_t amount;
	int64_t unbilled;
	int64_t now_ms;
	const struct lt_ledger_note *note; /* may be NULL */
};

static enum lt_err ledger_add(sqlite3 *db, int64_t pool_id, const struct move *m, int64_t d_rem,
			      int64_t d_res, bool reset)
{
	static const struct lt_ledger_note none;
	const struct lt_ledger_note *n = m->note ? m->note : &none;
	sqlite3_stmt *st;
	enum lt_err e =
		lt_stmt_prep(db,
			     "INSERT INTO ledger (pool_id, at, kind, d_remaining, d_reserved, "
			     "reservation, amount, unbilled, actor, reason, correlation_id) "
			     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
			     &st);
	if (e)
		return e;
	sqlite3_bind_int64(st, 1, pool_id);
	sqlite3_bind_int64(st, 2, m->now_ms);
	lt_stmt_bind_str(st, 3, reset ? "window_reset" : m->kind);
	sqlite3_bind_int64(st, 4, d_rem);
	sqlite3_bind_int64(st, 5, d_res);
	lt_stmt_bind_str(st, 6, reset ? NULL : m->reservation);
	if (m->has_amount && !reset)
		sqlite3_bind_int64(st, 7, m->amount);
	sqlite3_bind_int64(st, 8, reset ? 0 : m->unbilled);
	lt_stmt_bind_str(st, 9, n->actor);
	lt_stmt_bind_str(st, 10, reset ? NULL : n->reason);
	lt_stmt_bind_str(st, 11, n->correlation_id);
	return lt_stmt_run(db, st, NULL);
}

/* Write a pool that was loaded as `before` and is now r: the window_reset
 * row first when reset, the pool row, then the movement's ledger row with
 * the deltas between the two. */
static enum lt_err save(sqlite3 *db, struct lt_pool_row *r, const struct lt_pool *before,
			bool reset, const struct move *m)
{
	enum lt_err e = reset ? ledger_add(db, r->id, m, 0, 0, true) : LT_OK;
	if (!e)
		e = update_pool(db, r, m->now_ms);
	if (!e)
		e = ledger_add(db, r->id, m, r->pool.remaining - before->remaining,
			       r->pool.reserved - before->reserved, false);
	return e;
}

/* ---- get and change ----------------------------------------------------- */

enum lt_err lt_pool_store_get(sqlite3 *db, const struct lt_pool_key *key, int64_t now_ms,
			      struct lt_pool_row *out)
{
	if (!db || !key || !out || !key_ok(key) || now_ms < 0)
		return LT_EINVAL;
	enum lt_err e = load_by_key(db, key, out);
	if (!e)
		lt_pool_roll(&out->pool, now_ms);
	return e;
}

static bool change_ok(const struct lt_pool_change *c)
{
	return key_ok(&c->key) && c->amount != 0 && c->now_ms >= 0 && c->window_cap >= -1 &&
	       (unsigned)c->window <= LT_WINDOW_MONTH;
}

/* Apply a new window and cap to an existing pool; true when the window
 * itself changed (restarted at now_ms, open reservations counted in it). */
static bool set_window(struct lt_pool *p, enum lt_window w, int64_t cap, int64_t now_ms)
{
	p->window_cap = cap;
	if (p->window == w)
		return false;
	p->window = w;
	p->window_start_ms = lt_window_start(w, now_ms);
	p->window_used = p->reserved;
	return true;
}

enum lt_err lt_pool_store_change(sqlite3 *db, struct lt_pool_change *c)
{
	if (!db || !c || !change_ok(c))
		return LT_EINVAL;
	struct lt_pool_row r;
	enum lt_err e = load_by_key(db, &c->key, &r);
	bool fresh = e == LT_ENOTFOUND, reset = false;
	if (e && !fresh)
		return e;
	if (fresh) {
		memset(&r, 0, sizeof r);
		r.key = c->key;
		lt_pool_init(&r.pool, c->window, c->window_cap, c->now_ms);
		r.created_ms = r.updated_ms = c->now_ms;
	}
	struct lt_pool before = r.pool;
	if (!fresh) {
		reset = lt_pool_roll(&r.pool, c->now_ms);
		if (c->set_window && set_window(&r.pool, c->window, c->window_cap, c->now_ms))
			reset = true;
	}
	e = c->adjust ? lt_pool_adjust(&r.pool, c->amount) : lt_pool_grant(&r.pool, c->amount);
	if (e)
		return e;
	struct move m = {
		.kind = c->adjust ? "adjust" : "grant", .now_ms = c->now_ms, .note = &c->note};
	e = fresh ? insert_pool(db, &r) : LT_OK;
	if (!e)
		e = save(db, &r, &before, reset, &m);
	if (!e)
		c->out = r;
	return e;
}

/* ---- reserve ------------------------------------------------------------ */

/* A pool as loaded, and whether rolling it to now started a new window. */
struct loaded {
	struct lt_pool before;
	bool reset;
};

static enum lt_err reservation_exists(sqlite3 *db, const char *id, bool *exists)
{
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(db, "SELECT 1 FROM reservations WHERE id = ?1 LIMIT 1", &st);
	if (e)
		return e;
	lt_stmt_bind_str(st, 1, id);
	int rc = sqlite3_step(st);
	lt_stmt_put(st);
	*exists = rc == SQLITE_ROW;
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? LT_OK
	       : lt_sqlite_err(rc)		     ? lt_sqlite_err(rc)
						     : LT_EIO;
}

static enum lt_err reserve_validate(const struct lt_reservation *r)
{
	if (!str_ok(r->id, sizeof r->id) || r->n < 1 || r->n > LT_POOL_MAX_ITEMS || r->now_ms < 0)
		return LT_EINVAL;
	for (size_t i = 0; i < r->n; i++) {
		if (!key_ok(&r->items[i].key) || r->items[i].amount < 1)
			return LT_EINVAL;
		for (size_t j = 0; j < i; j++)
			if (key_eq(&r->items[i].key, &r->items[j].key))
				return LT_EINVAL;
	}
	return LT_OK;
}

/* Load every pool into items[].out, rolled to now in memory (an item not
 * loaded keeps a zero row with its key). */
static enum lt_err reserve_load(sqlite3 *db, struct lt_reservation *r, struct loaded *l)
{
	for (size_t i = 0; i < r->n; i++) {
		memset(&r->items[i].out, 0, sizeof r->items[i].out);
		r->items[i].out.key = r->items[i].key;
	}
	for (size_t i = 0; i < r->n; i++) {
		struct lt_reserve_item *it = &r->items[i];
		it->held = false;
		enum lt_err e = load_by_key(db, &it->key, &it->out);
		if (e == LT_ENOTFOUND && it->optional) {
			it->out.key = it->key; /* skipped: a zero row with its key */
			continue;
		}
		if (e == LT_ENOTFOUND)
			r->failed = i;
		if (e)
			return e;
		it->held = true;
		l[i].before = it->out.pool;
		l[i].reset = lt_pool_roll(&it->out.pool, r->now_ms);
	}
	return LT_OK;
}

/* Hold each amount on the loaded copies; on a refusal put every item back
 * as found (rolled) and say which failed. */
static enum lt_err reserve_apply(struct lt_reservation *r)
{
	struct lt_pool found[LT_POOL_MAX_ITEMS];
	for (size_t i = 0; i < r->n; i++)
		found[i] = r->items[i].out.pool;
	for (size_t i = 0; i < r->n; i++) {
		if (!r->items[i].held)
			continue;
		enum lt_err e = lt_pool_reserve(&r->items[i].out.pool, r->items[i].amount);
		if (e) {
			for (size_t j = 0; j < r->n; j++)
				r->items[j].out.pool = found[j];
			for (size_t j = 0; j < r->n; j++)
				r->items[j].held = false;
			r->failed = i;
			return e;
		}
	}
	return LT_OK;
}

static enum lt_err hold_add(sqlite3 *db, const char *id, int64_t pool_id, int64_t held,
			    int64_t now_ms)
{
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(db,
				     "INSERT INTO reservations (id, pool_id, held, created_at) "
				     "VALUES (?1, ?2, ?3, ?4)",
				     &st);
	if (e)
		return e;
	lt_stmt_bind_str(st, 1, id);
	sqlite3_bind_int64(st, 2, pool_id);
	sqlite3_bind_int64(st, 3, held);
	sqlite3_bind_int64(st, 4, now_ms);
	return lt_stmt_run(db, st, NULL);
}

static enum lt_err reserve_write(sqlite3 *db, struct lt_reservation *r, const struct loaded *l)
{
	enum lt_err e = LT_OK;
	for (size_t i = 0; !e && i < r->n; i++) {
		struct lt_reserve_item *it = &r->items[i];
		if (!it->held)
			continue;
		struct move m = {.kind = "reserve",
				 .reservation = r->id,
				 .has_amount = true,
				 .amount = it->amount,
				 .now_ms = r->now_ms,
				 .note = &r->note};
		e = save(db, &it->out, &l[i].before, l[i].reset, &m);
		if (!e)
			e = hold_add(db, r->id, it->out.id, it->amount, r->now_ms);
	}
	return e;
}

enum lt_err lt_pool_store_reserve(sqlite3 *db, struct lt_reservation *r)
{
	if (!db || !r)
		return LT_EINVAL;
	enum lt_err e = reserve_validate(r);
	bool exists = false;
	if (!e)
		e = reservation_exists(db, r->id, &exists);
	if (!e && exists)
		e = LT_EEXIST;
	struct loaded l[LT_POOL_MAX_ITEMS];
	if (!e)
		e = reserve_load(db, r, l);
	if (!e)
		e = reserve_apply(r);
	if (!e)
		e = reserve_write(db, r, l);
	return e;
}

/* ---- settle and release ------------------------------------------------- */

/* One pool a reservation holds. */
struct hold {
	struct lt_pool_row row;
	struct loaded l;
	int64_t held;
	int64_t actual; /* settle only */
};

struct holds {
	struct hold h[LT_POOL_MAX_ITEMS];
	size_t n;
	int64_t ids[LT_POOL_MAX_ITEMS]; /* pool ids, while reading */
};

static enum lt_err hold_row(sqlite3_stmt *st, void *arg)
{
	struct holds *hs = arg;
	if (hs->n == LT_POOL_MAX_ITEMS)
		return LT_ECORRUPT; /* reserve holds at most that many */
	hs->ids[hs->n] = sqlite3_column_int64(st, 0);
	hs->h[hs->n].held = sqlite3_column_int64(st, 1);
	hs->n++;
	return LT_OK;
}

/* Load the pools reservation id holds, rolled to now in memory. */
static enum lt_err holds_load(sqlite3 *db, const char *id, int64_t now_ms, struct holds *hs)
{
	sqlite3_stmt *st;
	memset(hs, 0, sizeof *hs);
	enum lt_err e = lt_stmt_prep(
		db, "SELECT pool_id, held FROM reservations WHERE id = ?1 ORDER BY pool_id", &st);
	if (e)
		return e;
	lt_stmt_bind_str(st, 1, id);
	e = lt_stmt_each(st, hold_row, hs);
	if (!e && hs->n == 0)
		e = LT_ENOTFOUND;
	for (size_t i = 0; !e && i < hs->n; i++) {
		struct hold *h = &hs->h[i];
		e = load_by_id(db, hs->ids[i], &h->row);
		if (e == LT_ENOTFOUND)
			e = LT_ECORRUPT; /* the foreign key forbids it */
		h->l.before = h->row.pool;
		h->l.reset = lt_pool_roll(&h->row.pool, now_ms);
	}
	return e;
}

/* Match the settlement's keys to the held pools: each key names one held
 * pool, at most once. */
static enum lt_err settle_match(const struct lt_settlement *s, struct holds *hs)
{
	for (size_t i = 0; i < s->n; i++) {
		size_t j = 0;
		while (j < hs->n && !key_eq(&s->keys[i], &hs->h[j].row.key))
			j++;
		if (j == hs->n || hs->h[j].actual >= 0)
			return LT_EINVAL;
		hs->h[j].actual = s->actual[i];
	}
	for (size_t j = 0; j < hs->n; j++)
		if (hs->h[j].actual < 0)
			hs->h[j].actual = 0;
	return LT_OK;
}

static enum lt_err holds_delete(sqlite3 *db, const char *id, size_t n)
{
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(db, "DELETE FROM reservations WHERE id = ?1", &st);
	if (e)
		return e;
	lt_stmt_bind_str(st, 1, id);
	int changes = 0;
	e = lt_stmt_run(db, st, &changes);
	return !e && (size_t)changes != n ? LT_ECORRUPT : e;
}

/* Apply the pure operation to every held pool: settle (charged[] and
 * unbilled[] per held pool) or release. */
static enum lt_err holds_apply(struct holds *hs, bool settle, int64_t *charged, int64_t *unbilled)
{
	for (size_t i = 0; i < hs->n; i++) {
		struct hold *h = &hs->h[i];
		enum lt_err e = settle ? lt_pool_settle(&h->row.pool, h->held, h->actual,
							&charged[i], &unbilled[i], NULL, NULL)
				       : lt_pool_release(&h->row.pool, h->held);
		if (e == LT_EINVAL)
			return LT_ECORRUPT; /* held more than the pool's reserved */
		if (e)
			return e;
	}
	return LT_OK;
}

/* Write every held pool with its settle or release row. */
static enum lt_err holds_save(sqlite3 *db, const char *id, int64_t now_ms,
			      const struct lt_ledger_note *note, struct holds *hs, bool settle,
			      const int64_t *unbilled)
{
	enum lt_err e = LT_OK;
	for (size_t i = 0; !e && i < hs->n; i++) {
		struct hold *h = &hs->h[i];
		struct move m = {.kind = settle ? "settle" : "release",
				 .reservation = id,
				 .has_amount = settle,
				 .amount = h->actual,
				 .unbilled = unbilled[i],
				 .now_ms = now_ms,
				 .note = note};
		e = save(db, &h->row, &h->l.before, h->l.reset, &m);
	}
	return e;
}

/* Copy what each held pool was charged into the settlement's order. */
static void settle_report(struct lt_settlement *s, const struct holds *hs, const int64_t *charged,
			  const int64_t *unbilled)
{
	for (size_t i = 0; i < s->n; i++) {
		size_t j = 0;
		while (!key_eq(&s->keys[i], &hs->h[j].row.key))
			j++; /* settle_match found each key */
		s->charged[i] = charged[j];
		s->unbilled[i] = unbilled[j];
	}
}

/* Close reservation id: settle it (s non-NULL) or release it. */
static enum lt_err finish(sqlite3 *db, const char *id, int64_t now_ms,
			  const struct lt_ledger_note *note, struct lt_settlement *s)
{
	struct holds hs;
	int64_t charged[LT_POOL_MAX_ITEMS] = {0}, unbilled[LT_POOL_MAX_ITEMS] = {0};
	enum lt_err e = holds_load(db, id, now_ms, &hs);
	for (size_t i = 0; i < hs.n; i++)
		hs.h[i].actual = -1; /* not named yet */
	if (!e && s)
		e = settle_match(s, &hs);
	if (!e)
		e = holds_apply(&hs, s != NULL, charged, unbilled);
	if (!e)
		e = holds_save(db, id, now_ms, note, &hs, s != NULL, unbilled);
	if (!e)
		e = holds_delete(db, id, hs.n);
	if (!e && s)
		settle_report(s, &hs, charged, unbilled);
	return e;
}

enum lt_err lt_pool_store_settle(sqlite3 *db, struct lt_settlement *s)
{
	if (!db || !s || !str_ok(s->id, sizeof s->id) || s->n > LT_POOL_MAX_ITEMS || s->now_ms < 0)
		return LT_EINVAL;
	for (size_t i = 0; i < s->n; i++)
		if (!key_ok(&s->keys[i]) || s->actual[i] < 0)
			return LT_EINVAL;
	return finish(db, s->id, s->now_ms, &s->note, s);
}

enum lt_err lt_pool_store_release(sqlite3 *db, const char *id, int64_t now_ms,
				  const struct lt_ledger_note *note)
{
	if (!db || !id || !id[0] || strnlen(id, ID_CAP) == ID_CAP || now_ms < 0)
		return LT_EINVAL;
	return finish(db, id, now_ms, note, NULL);
}

/* The id of some open reservation into id (40 bytes); LT_ENOTFOUND if none. */
static enum lt_err any_reservation(sqlite3 *db, char *id, size_t cap)
{
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(db, "SELECT id FROM reservations LIMIT 1", &st);
	if (e)
		return e;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		lt_stmt_copy_col(st, 0, id, cap);
	lt_stmt_put(st);
	return rc == SQLITE_ROW ? LT_OK : rc == SQLITE_DONE ? LT_ENOTFOUND : lt_sqlite_err(rc);
}

enum lt_err lt_pool_store_recover(sqlite3 *db, int64_t now_ms, size_t *released)
{
	static const struct lt_ledger_note note = {.actor = "system", .reason = RELEASE_AT_START};
	char id[ID_CAP];
	if (!db || !released || now_ms < 0)
		return LT_EINVAL;
	*released = 0;
	enum lt_err e;
	/* Each round deletes every row of one id, so this ends. */
	while ((e = any_reservation(db, id, sizeof id)) == LT_OK) {
		e = finish(db, id, now_ms, &note, NULL);
		if (e)
			return e == LT_ENOTFOUND ? LT_ECORRUPT : e;
		(*released)++;
	}
	return e == LT_ENOTFOUND ? LT_OK : e;
}

/* ---- check -------------------------------------------------------------- */

typedef void (*check_fn)(void *arg, const struct lt_pool_row *row, const char *problem);

struct check {
	size_t pools, bad;
	check_fn fn;
	void *arg;
};

/* Append "<what> <a> but <than> <b>" to a one-line explanation. */
static void add_problem(char *buf, size_t cap, const char *what, int64_t a, const char *than,
			int64_t b)
{
	size_t len = strlen(buf);
	if (len + 3 >= cap)
		return;
	if (len) {
		memcpy(buf + len, "; ", 3);
		len += 2;
	}
	snprintf(buf + len, cap - len, "%s %lld but %s %lld", what, (long long)a, than,
		 (long long)b);
}

static void report(struct check *c, const struct lt_pool_row *row, const char *problem)
{
	c->bad++;
	if (c->fn)
		c->fn(c->arg, row, problem);
}

#define CHECK_SQL                                                                                  \
	"SELECT " POOL_COLS ", coalesce(l.rem, 0), coalesce(l.res, 0), coalesce(l.tot, 0), "       \
	"coalesce(h.held, 0) FROM pools "                                                          \
	"LEFT JOIN (SELECT pool_id, sum(d_remaining) AS rem, sum(d_reserved) AS res, "             \
	"  sum(CASE WHEN kind = 'grant' OR (kind = 'adjust' AND d_remaining > 0) "                 \
	"      THEN d_remaining ELSE 0 END) AS tot FROM ledger GROUP BY pool_id) AS l "            \
	"  ON l.pool_id = pools.id "                                                               \
	"LEFT JOIN (SELECT pool_id, sum(held) AS held FROM reservations GROUP BY pool_id) AS h "   \
	"  ON h.pool_id = pools.id "                                                               \
	"ORDER BY pools.id"

static enum lt_err check_row(sqlite3_stmt *st, void *arg)
{
	struct check *c = arg;
	struct lt_pool_row row;
	char why[256] = "";
	c->pools++;
	if (read_pool(st, &row)) {
		report(c, &row, "unknown owner kind or window");
		return LT_OK;
	}
	const struct lt_pool *p = &row.pool;
	int64_t rem = sqlite3_column_int64(st, 13), res = sqlite3_column_int64(st, 14);
	int64_t tot = sqlite3_column_int64(st, 15), held = sqlite3_column_int64(st, 16);
	if (p->remaining != rem)
		add_problem(why, sizeof why, "remaining", p->remaining, "the ledger sums to", rem);
	if (p->reserved != res)
		add_problem(why, sizeof why, "reserved", p->reserved, "the ledger sums to", res);
	if (p->reserved != held)
		add_problem(why, sizeof why, "reserved", p->reserved, "open reservations hold",
			    held);
	if (p->total != tot)
		add_problem(why, sizeof why, "total", p->total, "grants and adjusts sum to", tot);
	if (!lt_pool_valid(p))
		add_problem(why, sizeof why, "inconsistent pool: remaining", p->remaining,
			    "reserved", p->reserved);
	if (why[0])
		report(c, &row, why);
	return LT_OK;
}

static enum lt_err orphan_row(sqlite3_stmt *st, void *arg)
{
	struct lt_pool_row row;
	memset(&row, 0, sizeof row);
	row.id = sqlite3_column_int64(st, 0);
	report(arg, &row, "ledger or reservation rows name a pool that does not exist");
	return LT_OK;
}

static enum lt_err check_all(sqlite3 *db, struct check *c)
{
	sqlite3_stmt *st;
	enum lt_err e = lt_stmt_prep(db, CHECK_SQL, &st);
	if (!e)
		e = lt_stmt_each(st, check_row, c);
	if (!e)
		e = lt_stmt_prep(
			db,
			"SELECT pool_id FROM ledger WHERE pool_id NOT IN (SELECT id FROM pools) "
			"UNION SELECT pool_id FROM reservations "
			"WHERE pool_id NOT IN (SELECT id FROM pools) ORDER BY 1",
			&st);
	if (!e)
		e = lt_stmt_each(st, orphan_row, c);
	return e;
}

enum lt_err lt_pool_store_check(sqlite3 *db, size_t *pools, size_t *bad, check_fn fn, void *arg)
{
	if (!db || !pools || !bad)
		return LT_EINVAL;
	struct check c = {.fn = fn, .arg = arg};
	/* One read transaction (or a nested savepoint) so both queries see
	 * the same state. */
	enum lt_err e = lt_sqlite_err(sqlite3_exec(db, "SAVEPOINT pool_check", NULL, NULL, NULL));
	if (e)
		return e;
	e = check_all(db, &c);
	sqlite3_exec(db, "RELEASE pool_check", NULL, NULL, NULL);
	*pools = c.pools;
	*bad = c.bad;
	return e;
}
