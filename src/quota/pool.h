/*
 * pool.h — the arithmetic of a token (or money) pool: calendar windows,
 * reserve → settle → release, grants and adjustments.  Pure: no I/O, no
 * clock; the SQLite adapter (quota/pool_store, next) loads a struct
 * lt_pool, applies one of these, and writes the pool and its ledger row in
 * the same transaction.
 *
 * Amounts are integers: tokens, or micro-dollars for money budgets.
 *
 *   total      everything ever granted (grants, purchases, positive adjusts)
 *   remaining  what is left to spend: total − settled − reserved; never < 0
 *   reserved   held by open reservations
 *
 * so a reservation moves an amount from remaining to reserved, a settle
 * turns a reservation into spending (refunding or charging the
 * difference), a release gives it all back.  The ledger row of each
 * operation carries (delta of remaining, delta of reserved), so remaining
 * and reserved always equal the sums of the ledger.
 *
 * Windows (none, hour, day, month; UTC calendar-aligned) do not destroy
 * tokens: a window only caps what may be SPENT within it (window_cap, from
 * the tier; -1 = no cap), counting settled and reserved amounts in
 * window_used.  When a window ends, window_used starts again at 0 (the
 * reference instead truncated the balance to the tier cap permanently,
 * losing purchased tokens).  resetTime is the end of the current window.
 *
 * A settle never drives remaining below zero: if the real usage exceeds
 * the reservation by more than what remains, the pool is charged what
 * remains and the rest is reported as `unbilled` (the caller records it;
 * the max_tokens cap sent upstream makes this rare).
 */
#ifndef LT_QUOTA_POOL_H
#define LT_QUOTA_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

enum lt_window { LT_WINDOW_NONE, LT_WINDOW_HOUR, LT_WINDOW_DAY, LT_WINDOW_MONTH };

/* "none", "hour", "day", "month"; parse is case-insensitive (LT_EINVAL). */
const char *lt_window_name(enum lt_window w);
enum lt_err lt_window_parse(const char *s, enum lt_window *out);

/* Start of the UTC window holding t_ms (Unix ms; t_ms >= 0).  NONE → 0. */
int64_t lt_window_start(enum lt_window w, int64_t t_ms);
/* Start of the following window (the reset time).  NONE → -1 (never). */
int64_t lt_window_end(enum lt_window w, int64_t t_ms);

struct lt_pool {
	int64_t total;
	int64_t remaining;
	int64_t reserved;
	enum lt_window window;
	int64_t window_start_ms; /* start of the window window_used counts; 0 for NONE */
	int64_t window_cap;	 /* most spendable per window; -1 = no cap */
	int64_t window_used;	 /* settled + reserved within the window */
};

/* A new empty pool at now_ms. */
void lt_pool_init(struct lt_pool *p, enum lt_window w, int64_t window_cap, int64_t now_ms);

/* If now_ms is past the pool's window, start the current one (window_used
 * = 0 plus what is still reserved, since open reservations belong to the
 * window they will be settled in).  True when it rolled (the caller writes
 * a "window_reset" ledger row with zero deltas). */
bool lt_pool_roll(struct lt_pool *p, int64_t now_ms);

/* What may be spent now: remaining, limited by the window cap. */
int64_t lt_pool_available(const struct lt_pool *p);

/* Hold `amount` (>= 1).  LT_EDENIED (nothing changed) when it exceeds
 * lt_pool_available; LT_EINVAL for amount < 1. */
enum lt_err lt_pool_reserve(struct lt_pool *p, int64_t amount);

/* Turn a reservation of `held` into a spend of `actual` (>= 0).
 * *charged is what the pool paid in the end (≤ actual), *unbilled the part
 * of actual it could not pay (0 normally).  *d_remaining and *d_reserved
 * are the ledger deltas.  LT_EINVAL if held > reserved or an amount is
 * negative (nothing changed). */
enum lt_err lt_pool_settle(struct lt_pool *p, int64_t held, int64_t actual, int64_t *charged,
			   int64_t *unbilled, int64_t *d_remaining, int64_t *d_reserved);

/* Give a whole reservation back.  LT_EINVAL if held > reserved. */
enum lt_err lt_pool_release(struct lt_pool *p, int64_t held);

/* Add `amount` (>= 1) to total and remaining (grant, purchase). */
enum lt_err lt_pool_grant(struct lt_pool *p, int64_t amount);

/* Admin adjustment by delta (may be negative): remaining + delta must stay
 * >= 0 (LT_ERANGE otherwise, nothing changed); a positive delta also adds
 * to total.  Removing purchased tokens (saga compensation) is an adjust. */
enum lt_err lt_pool_adjust(struct lt_pool *p, int64_t delta);

/* The pool is consistent: no negative amount, remaining + reserved <=
 * total, reserved <= window_used when windowed, window_start_ms aligned to
 * its window (for leakyctl check and tests).  window_used may exceed a
 * cap that was lowered later. */
bool lt_pool_valid(const struct lt_pool *p);

#endif
