/*
 * pool_store.h — token and money pools in leaky.db (schema.sql migration 3):
 * the SQL adapter around quota/pool.h.
 *
 * Every write function is a writer operation: it runs on the writer's
 * connection inside the SAVEPOINT the writer opens for it
 * (lt_writer_run(&srv->writer, fn, arg) with fn calling these), so the pool
 * rows, their ledger rows and the reservations change together or not at
 * all, and group commit batches them.  Each loads the pool rows, applies
 * the pure operation, and writes back the pools and one ledger row per
 * movement (window rolls write a "window_reset" row with zero deltas).
 *
 * Reading never writes: lt_pool_store_get shows the window as it is now
 * (rolled in memory if it has ended) without touching the database.
 *
 * A reservation id (a UUID chosen by the caller) may hold several pools at
 * once — the provider token pool and the money budget of one call — and is
 * reserved, settled or released as a whole.
 *
 * Ownership: no allocation survives a call; strings are copied into the
 * fixed-size fields.  Times are Unix milliseconds.
 */
#ifndef LT_QUOTA_POOL_STORE_H
#define LT_QUOTA_POOL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quota/pool.h"
#include "util/err.h"

struct sqlite3;

#define LT_POOL_MONEY "$" /* provider name of a money budget (micro-dollars) */
#define LT_POOL_MAX_ITEMS 4

enum lt_owner_kind { LT_OWNER_USER, LT_OWNER_ORG };

struct lt_pool_key {
	enum lt_owner_kind kind;
	char owner_id[40]; /* canonical UUID */
	char provider[32]; /* lower-case provider name or LT_POOL_MONEY */
};

struct lt_pool_row {
	int64_t id;
	struct lt_pool_key key;
	struct lt_pool pool;
	int64_t created_ms, updated_ms;
};

/* The pool as of now_ms (window rolled in memory when it has ended).
 * LT_ENOTFOUND when there is none. */
enum lt_err lt_pool_store_get(struct sqlite3 *db, const struct lt_pool_key *key, int64_t now_ms,
			      struct lt_pool_row *out);

/* Who did it and why, copied into the ledger rows (any may be NULL). */
struct lt_ledger_note {
	const char *actor;
	const char *reason;
	const char *correlation_id;
};

/* Grant (amount >= 1) or adjust (any non-zero delta) a pool, creating it
 * when absent (window and window_cap then come from the arguments; on an
 * existing pool a window other than the pool's changes it and restarts its
 * window, and window_cap replaces the old cap).  out: the pool after.
 * LT_ERANGE for an adjust that would drive remaining below zero (nothing
 * written), LT_EINVAL for amount 0. */
struct lt_pool_change {
	struct lt_pool_key key;
	bool adjust; /* false: grant of amount; true: adjust by amount */
	int64_t amount;
	enum lt_window window; /* for a new pool, or to change an existing one */
	bool set_window;       /* false: keep an existing pool's window and cap */
	int64_t window_cap;    /* -1: none */
	int64_t now_ms;
	struct lt_ledger_note note;
	struct lt_pool_row out;
};
enum lt_err lt_pool_store_change(struct sqlite3 *db, struct lt_pool_change *c);

/* Hold items[i].amount on each pool for reservation `id`, all or none.
 * LT_ENOTFOUND (*failed = the item) when a pool that is not optional does
 * not exist (an optional one is skipped: held = false; when every item is
 * skipped nothing is written and the reservation does not exist),
 * LT_EDENIED (*failed = the item) when one has not enough available; in
 * both cases nothing is written.  LT_EEXIST if `id` is already in use. */
struct lt_reserve_item {
	struct lt_pool_key key;
	int64_t amount;		/* >= 1 */
	bool optional;		/* a pool that does not exist is skipped, not LT_ENOTFOUND
			   (a money budget applies only to owners that have one) */
	struct lt_pool_row out; /* the pool after (or as found, when refused) */
	bool held;		/* out: this item holds its amount (false: skipped) */
};
struct lt_reservation {
	char id[40];
	struct lt_reserve_item items[LT_POOL_MAX_ITEMS];
	size_t n;
	int64_t now_ms;
	struct lt_ledger_note note;
	size_t failed; /* out: index of the item that failed */
};
enum lt_err lt_pool_store_reserve(struct sqlite3 *db, struct lt_reservation *r);

/* Settle reservation `id`: for each pool it holds, actual[i] is the real
 * use for the pool of items[i] of the reservation, matched by key (pools
 * the reservation holds but `actual` does not name are settled at 0).
 * LT_ENOTFOUND if the reservation does not exist (already settled or
 * released: the caller must not double-bill).  out: charged and unbilled
 * per item. */
struct lt_settlement {
	char id[40];
	struct lt_pool_key keys[LT_POOL_MAX_ITEMS];
	int64_t actual[LT_POOL_MAX_ITEMS];
	size_t n;
	int64_t now_ms;
	struct lt_ledger_note note;
	int64_t charged[LT_POOL_MAX_ITEMS];  /* out */
	int64_t unbilled[LT_POOL_MAX_ITEMS]; /* out */
};
enum lt_err lt_pool_store_settle(struct sqlite3 *db, struct lt_settlement *s);

/* Give back everything reservation `id` holds.  LT_ENOTFOUND if none. */
enum lt_err lt_pool_store_release(struct sqlite3 *db, const char *id, int64_t now_ms,
				  const struct lt_ledger_note *note);

/* Release every open reservation (at start: no call survives a restart);
 * *released counts the reservations.  A writer operation too. */
enum lt_err lt_pool_store_recover(struct sqlite3 *db, int64_t now_ms, size_t *released);

/* The n (1..100) pools that have spent the most (total − remaining,
 * reservations included), most first, for the metrics (bounded
 * cardinality); fn is told of each.  Read-only; a full scan of pools. */
enum lt_err lt_pool_store_top(struct sqlite3 *db, size_t n,
			      void (*fn)(void *arg, const struct lt_pool_row *row), void *arg);

/* Verify every pool against its ledger (remaining == sum d_remaining,
 * reserved == sum d_reserved == sum of its open reservations' held,
 * lt_pool_valid).  Read-only.  *bad counts the pools that fail; fn (may be
 * NULL) is told of each with a one-line explanation. */
enum lt_err lt_pool_store_check(struct sqlite3 *db, size_t *pools, size_t *bad,
				void (*fn)(void *arg, const struct lt_pool_row *row,
					   const char *problem),
				void *arg);

#endif
