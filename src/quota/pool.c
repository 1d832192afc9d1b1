/*
 * pool.c — token/money pool arithmetic: UTC calendar windows and the
 * reserve → settle → release cycle.  See pool.h for the model.
 *
 * Owns: nothing but the struct lt_pool it is handed; no allocation, no
 * I/O, no clock, no locking (the caller serialises access to a pool, in
 * practice inside one SQLite write transaction).
 *
 * Invariants kept by every operation (and checked by lt_pool_valid):
 *   remaining, reserved, window_used >= 0;  remaining + reserved <= total;
 *   reserved <= window_used (open reservations count in their window).
 * Every operation computes its new values with overflow checks first and
 * only then stores them, so an error leaves the pool exactly as it was.
 *
 * Choices the header leaves open:
 *   - LT_WINDOW_NONE has no window, so window_cap is ignored for it (a cap
 *     that never resets would lock purchased tokens forever, the bug the
 *     windows exist to avoid).  window_used is still kept (it then counts
 *     everything settled or reserved since the pool started).
 *   - A negative window_cap means no cap (-1 is the documented value).
 *   - lt_pool_roll only moves forward: a now_ms before the pool's window
 *     (a clock stepped back) leaves it alone, so window_used cannot be
 *     reset twice by a wobbling clock.
 *   - A settle that charges more than was held may push window_used past
 *     the cap: the usage happened; the cap limits new reservations only.
 *   - Overflow anywhere returns LT_ERANGE (not listed in the header for
 *     settle/release; it cannot happen on a valid pool with amounts that
 *     fit the ledger).
 */
#include <stddef.h>
#include <strings.h>

#include "quota/pool.h"
#include "util/timefmt.h"

#define MS_PER_HOUR INT64_C(3600000)
#define MS_PER_DAY INT64_C(86400000)

static const char *const window_names[] = {"none", "hour", "day", "month"};

const char *lt_window_name(enum lt_window w)
{
	if ((unsigned)w < sizeof window_names / sizeof window_names[0])
		return window_names[w];
	return "unknown";
}

enum lt_err lt_window_parse(const char *s, enum lt_window *out)
{
	if (!s || !out)
		return LT_EINVAL;
	for (size_t i = 0; i < sizeof window_names / sizeof window_names[0]; i++) {
		if (strcasecmp(s, window_names[i]) == 0) {
			*out = (enum lt_window)i;
			return LT_OK;
		}
	}
	return LT_EINVAL;
}

static int64_t floordiv(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if (a % b != 0 && (a < 0) != (b < 0))
		q--;
	return q;
}

/* n * unit (unit > 0), clamped to the int64 range. */
static int64_t mul_clamp(int64_t n, int64_t unit)
{
	int64_t ms;
	if (__builtin_mul_overflow(n, unit, &ms))
		return n < 0 ? INT64_MIN : INT64_MAX;
	return ms;
}

/* a + b, clamped to INT64_MAX (b > 0). */
static int64_t add_clamp(int64_t a, int64_t b)
{
	int64_t r;
	if (__builtin_add_overflow(a, b, &r))
		return INT64_MAX;
	return r;
}

int64_t lt_window_start(enum lt_window w, int64_t t_ms)
{
	switch (w) {
	case LT_WINDOW_HOUR: return mul_clamp(floordiv(t_ms, MS_PER_HOUR), MS_PER_HOUR);
	case LT_WINDOW_DAY: return mul_clamp(floordiv(t_ms, MS_PER_DAY), MS_PER_DAY);
	case LT_WINDOW_MONTH: {
		int64_t y;
		unsigned m, d;
		lt_civil_from_days(floordiv(t_ms, MS_PER_DAY), &y, &m, &d);
		return mul_clamp(lt_days_from_civil(y, m, 1), MS_PER_DAY);
	}
	case LT_WINDOW_NONE:
	default: return 0;
	}
}

int64_t lt_window_end(enum lt_window w, int64_t t_ms)
{
	switch (w) {
	case LT_WINDOW_HOUR: return add_clamp(lt_window_start(w, t_ms), MS_PER_HOUR);
	case LT_WINDOW_DAY: return add_clamp(lt_window_start(w, t_ms), MS_PER_DAY);
	case LT_WINDOW_MONTH: {
		int64_t y;
		unsigned m, d;
		lt_civil_from_days(floordiv(t_ms, MS_PER_DAY), &y, &m, &d);
		if (m == 12) {
			y++;
			m = 1;
		} else {
			m++;
		}
		return mul_clamp(lt_days_from_civil(y, m, 1), MS_PER_DAY);
	}
	case LT_WINDOW_NONE:
	default: return -1;
	}
}

void lt_pool_init(struct lt_pool *p, enum lt_window w, int64_t window_cap, int64_t now_ms)
{
	p->total = 0;
	p->remaining = 0;
	p->reserved = 0;
	p->window = w;
	p->window_start_ms = lt_window_start(w, now_ms);
	p->window_cap = window_cap;
	p->window_used = 0;
}

bool lt_pool_roll(struct lt_pool *p, int64_t now_ms)
{
	if (p->window == LT_WINDOW_NONE)
		return false;
	int64_t end = lt_window_end(p->window, p->window_start_ms);
	if (now_ms < end)
		return false;
	p->window_start_ms = lt_window_start(p->window, now_ms);
	p->window_used = p->reserved;
	return true;
}

static bool capped(const struct lt_pool *p)
{
	return p->window != LT_WINDOW_NONE && p->window_cap >= 0;
}

int64_t lt_pool_available(const struct lt_pool *p)
{
	int64_t avail = p->remaining;
	if (capped(p)) {
		int64_t left;
		if (__builtin_sub_overflow(p->window_cap, p->window_used, &left))
			left = p->window_used < 0 ? INT64_MAX : INT64_MIN;
		if (left < avail)
			avail = left;
	}
	return avail < 0 ? 0 : avail;
}

enum lt_err lt_pool_reserve(struct lt_pool *p, int64_t amount)
{
	if (amount < 1)
		return LT_EINVAL;
	if (amount > lt_pool_available(p))
		return LT_EDENIED;
	int64_t reserved, used;
	if (__builtin_add_overflow(p->reserved, amount, &reserved) ||
	    __builtin_add_overflow(p->window_used, amount, &used))
		return LT_ERANGE;
	p->remaining -= amount; /* amount <= available <= remaining */
	p->reserved = reserved;
	p->window_used = used;
	return LT_OK;
}

enum lt_err lt_pool_settle(struct lt_pool *p, int64_t held, int64_t actual, int64_t *charged,
			   int64_t *unbilled, int64_t *d_remaining, int64_t *d_reserved)
{
	if (held < 0 || actual < 0 || held > p->reserved)
		return LT_EINVAL;
	/* The hold pays first; anything beyond it comes out of remaining, as
	 * far as remaining goes. */
	int64_t d_rem, paid, unpaid = 0;
	if (actual <= held) {
		d_rem = held - actual; /* refund */
		paid = actual;
	} else {
		int64_t extra = actual - held; /* no overflow: held >= 0 */
		int64_t from_remaining = extra <= p->remaining ? extra : p->remaining;
		unpaid = extra - from_remaining;
		d_rem = -from_remaining;
		if (__builtin_add_overflow(held, from_remaining, &paid)) /* <= actual */
			return LT_ERANGE;
	}
	int64_t remaining, used;
	if (__builtin_add_overflow(p->remaining, d_rem, &remaining) ||
	    __builtin_sub_overflow(p->window_used, held, &used) ||
	    __builtin_add_overflow(used, paid, &used))
		return LT_ERANGE;
	p->remaining = remaining;
	p->reserved -= held;
	p->window_used = used;
	if (charged)
		*charged = paid;
	if (unbilled)
		*unbilled = unpaid;
	if (d_remaining)
		*d_remaining = d_rem;
	if (d_reserved)
		*d_reserved = -held;
	return LT_OK;
}

enum lt_err lt_pool_release(struct lt_pool *p, int64_t held)
{
	if (held < 0 || held > p->reserved)
		return LT_EINVAL;
	int64_t remaining, used;
	if (__builtin_add_overflow(p->remaining, held, &remaining) ||
	    __builtin_sub_overflow(p->window_used, held, &used))
		return LT_ERANGE;
	p->remaining = remaining;
	p->reserved -= held;
	p->window_used = used;
	return LT_OK;
}

enum lt_err lt_pool_grant(struct lt_pool *p, int64_t amount)
{
	if (amount < 1)
		return LT_EINVAL;
	int64_t total, remaining;
	if (__builtin_add_overflow(p->total, amount, &total) ||
	    __builtin_add_overflow(p->remaining, amount, &remaining))
		return LT_ERANGE;
	p->total = total;
	p->remaining = remaining;
	return LT_OK;
}

enum lt_err lt_pool_adjust(struct lt_pool *p, int64_t delta)
{
	int64_t remaining, total = p->total;
	if (__builtin_add_overflow(p->remaining, delta, &remaining) || remaining < 0)
		return LT_ERANGE;
	if (delta > 0 && __builtin_add_overflow(p->total, delta, &total))
		return LT_ERANGE;
	p->remaining = remaining;
	p->total = total;
	return LT_OK;
}

bool lt_pool_valid(const struct lt_pool *p)
{
	if (p->total < 0 || p->remaining < 0 || p->reserved < 0 || p->window_used < 0 ||
	    p->window_cap < -1)
		return false;
	int64_t held;
	if (__builtin_add_overflow(p->remaining, p->reserved, &held) || held > p->total)
		return false;
	switch (p->window) {
	case LT_WINDOW_NONE: return p->window_start_ms == 0;
	case LT_WINDOW_HOUR:
	case LT_WINDOW_DAY:
	case LT_WINDOW_MONTH:
		return p->reserved <= p->window_used && p->window_start_ms >= 0 &&
		       lt_window_start(p->window, p->window_start_ms) == p->window_start_ms;
	default: return false;
	}
}
