/*
 * bucket.c — the four rate-limit algorithms of bucket.h as pure functions:
 * no I/O, no clock, no allocation, no globals.  The state is a plain
 * struct lt_bucket_state the caller stores; every function works on a local
 * copy and writes it back only when the contract says so (an admission that
 * passed, a refund).
 *
 * Units: levels in micro-tokens (µT), time in ns.  A policy leaks (LEAKY)
 * or refills (TOKEN) rM = rate × 10^6 µT per period_ns, so over dt ns the
 * amount is (rM × dt + carry) / period_ns and the remainder becomes the new
 * carry, in [0, period_ns).  Splitting an interval in two gives exactly the
 * same total as one step, so polling with cost 0 changes nothing.  GCRA
 * keeps its TAT as a rational number of ns with denominator `rate`:
 * TAT = level + carry / rate, carry in [0, rate), and each token moves it by
 * T = period_ns / rate exactly (bucket.h names carry for LEAKY/TOKEN only;
 * GCRA uses it for this fraction).  Every product is computed in 128 bits;
 * with the bounds of lt_bucket_policy_check none of them can overflow.
 *
 * Debt: lt_bucket_charge forces a charge that is never refused, so a state
 * may lie beyond "full" — by at most one capacity (bucket.h).  Every
 * function reads such a state as it is: nothing is admitted (but cost 0)
 * until enough has leaked or refilled, remaining is 0 and used the limit
 * (never beyond), reset_ns and retry_ns count the debt, a refund pays it
 * off first.  Nothing in this file assumes a state at most full.
 *
 * Invariants of a state written by this file (the "normal form"):
 *   LEAKY  0 <= level <= 2·cap·10^6, 0 <= carry < period, level == 0 => carry == 0
 *   TOKEN  -cap·10^6 <= level <= cap·10^6, 0 <= carry < period, level == cap => carry == 0
 *   FIXED  0 <= level <= 2·cap·10^6, window = a multiple of period <= last_ns, carry == 0
 *   GCRA   0 <= carry < rate, TAT <= last_ns + 2 × (burst + 1) × T
 * (beyond full only after a forced charge, or a reload to a smaller
 * capacity or burst).  A stored state outside its normal form (a policy
 * reloaded with other values, a damaged record) is first brought into it,
 * conservatively: a bucket beyond the debt bound is read at the bound (an
 * over-full bucket under a smaller capacity is a bucket in debt: the state
 * cannot tell the two apart), a stray carry as 0, a window that is not the
 * current one as a new window, a TAT too far ahead as the farthest one
 * reachable at last_ns.  This depends on the record alone, not on now, so
 * such a state then behaves exactly like its normal form.  A state in
 * normal form is never changed by it.
 *
 * Bounds: 2·cap·10^6 <= 2·10^18 < INT64_MAX, so a level, a level plus a
 * cost of at most 2·cap, and cap_m - level all fit in 64 bits; a GCRA TAT is
 * capped at INT64_MAX (in 1/rate ns, gcra_tat_max).
 *
 * Time: a now_ns before the epoch is read as the epoch, then clamped to at
 * least last_ns for the computation.  reset_ns and retry_ns still count
 * from the caller's now_ns, so after the clock stepped back (or before the
 * epoch) they include the wait until it catches up with last_ns.  retry_ns
 * is exact (one ns earlier the same cost is refused), and the first
 * instant at which lt_bucket_expired holds is now_ns + reset_ns.  Both are
 * at most INT64_MAX - now_ns, so now_ns + either never overflows; that
 * largest value means "not within representable time" (and at now_ns ==
 * INT64_MAX, the last instant, both are 0).  A GCRA admission whose TAT
 * would pass INT64_MAX (the year 2262) is refused; a forced charge stops
 * there.
 *
 * Policies outside their bounds: lt_bucket_admit returns LT_EINVAL; the
 * functions that cannot fail use the policy with each value clamped into
 * its bounds, so bad input cannot overflow anything.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "limit/bucket.h"

typedef __int128 i128;

#define TOKENS_MAX INT64_C(1000000000000)      /* 10^12 */
#define PERIOD_MIN INT64_C(1000000)	       /* 1 ms */
#define PERIOD_MAX INT64_C(315576000000000000) /* 10 Julian years (365.25 d) */
#define GCRA_SPAN_MAX ((INT64_C(1) << 62))     /* (burst + 1) × T, ~146 years */

/* A policy in internal form: bounds checked (or clamped), derived values. */
struct pol {
	enum lt_bucket_algo algo;
	int64_t cap;   /* tokens; GCRA: burst + 1 */
	int64_t cap_m; /* µT */
	int64_t rate;
	int64_t rate_m; /* µT per period */
	int64_t period;
	int64_t burst;
};

static const char *const algo_names[] = {"leaky", "token", "fixed", "gcra"};

const char *lt_bucket_algo_name(enum lt_bucket_algo a)
{
	if ((unsigned)a < sizeof algo_names / sizeof algo_names[0])
		return algo_names[a];
	return "unknown";
}

enum lt_err lt_bucket_algo_parse(const char *s, enum lt_bucket_algo *out)
{
	if (!s || !out)
		return LT_EINVAL;
	for (unsigned i = 0; i < sizeof algo_names / sizeof algo_names[0]; i++) {
		if (strcasecmp(s, algo_names[i]) == 0) {
			*out = (enum lt_bucket_algo)i;
			return LT_OK;
		}
	}
	return LT_EINVAL;
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* Largest burst whose (burst + 1) × period / rate stays within GCRA_SPAN_MAX. */
static int64_t gcra_burst_max(int64_t rate, int64_t period)
{
	i128 n = (i128)GCRA_SPAN_MAX * rate / period - 1;
	return n > TOKENS_MAX - 1 ? TOKENS_MAX - 1 : (int64_t)n;
}

static bool fail(char *why, size_t why_cap, const char *msg)
{
	if (why && why_cap)
		snprintf(why, why_cap, "%s", msg);
	return false;
}

static bool check(const struct lt_bucket_policy *p, char *why, size_t why_cap)
{
	if (!p)
		return fail(why, why_cap, "no policy");
	if ((unsigned)p->algo > LT_ALGO_GCRA)
		return fail(why, why_cap, "unknown algorithm");
	if (p->algo != LT_ALGO_GCRA && (p->capacity < 1 || p->capacity > TOKENS_MAX))
		return fail(why, why_cap, "capacity must be 1..10^12 tokens");
	if (p->algo != LT_ALGO_FIXED && (p->rate < 1 || p->rate > TOKENS_MAX))
		return fail(why, why_cap, "rate must be 1..10^12 tokens per period");
	if (p->period_ns < PERIOD_MIN || p->period_ns > PERIOD_MAX)
		return fail(why, why_cap, "period must be 1 ms..10 years");
	if (p->algo == LT_ALGO_GCRA) {
		if (p->burst < 0 || p->burst > TOKENS_MAX - 1)
			return fail(why, why_cap, "burst must be 0..10^12-1");
		if (p->burst > gcra_burst_max(p->rate, p->period_ns))
			return fail(
				why, why_cap,
				"(burst + 1) x period / rate must stay under 2^62 ns (146 years)");
	}
	return true;
}

enum lt_err lt_bucket_policy_check(const struct lt_bucket_policy *p, char *why, size_t why_cap)
{
	if (why && why_cap)
		why[0] = '\0';
	return check(p, why, why_cap) ? LT_OK : LT_EINVAL;
}

/* The internal form of *p, every value clamped into its bounds; returns
 * whether it was valid as given. */
static bool pol_load(const struct lt_bucket_policy *p, struct pol *q)
{
	static const struct lt_bucket_policy none = {LT_ALGO_LEAKY, 1, 1, PERIOD_MIN, 0};
	bool ok = check(p, NULL, 0);
	if (!p)
		p = &none;
	q->algo = (unsigned)p->algo > LT_ALGO_GCRA ? LT_ALGO_LEAKY : p->algo;
	q->rate = clamp64(p->rate, 1, TOKENS_MAX);
	q->period = clamp64(p->period_ns, PERIOD_MIN, PERIOD_MAX);
	q->burst = clamp64(p->burst, 0, gcra_burst_max(q->rate, q->period));
	q->cap = q->algo == LT_ALGO_GCRA ? q->burst + 1 : clamp64(p->capacity, 1, TOKENS_MAX);
	q->cap_m = q->cap * LT_MICRO;
	q->rate_m = q->rate * LT_MICRO;
	return ok;
}

static int64_t clamp_now(int64_t now)
{
	return now < 0 ? 0 : now;
}

/* ceil(a / b) for a >= 0, b > 0. */
static i128 ceil_div(i128 a, i128 b)
{
	return (a + b - 1) / b;
}

/*
 * A duration v >= 0 counted from `now` (the time the state was advanced
 * to), as seen from the caller's clock `asked` (<= now, not clamped at
 * the epoch): 0 stays 0, anything else first waits for the caller's clock
 * to reach the state's, and is saturated so that asked + it never
 * overflows.
 */
static int64_t dur(i128 v, int64_t now, int64_t asked)
{
	if (v <= 0)
		return 0;
	v += (i128)now - asked;
	i128 max = (i128)INT64_MAX - asked;
	if (max > INT64_MAX)
		max = INT64_MAX;
	return (int64_t)(v > max ? max : v);
}

static int64_t window_of(const struct pol *q, int64_t now)
{
	return now - now % q->period; /* now >= 0 */
}

static i128 gcra_tat(const struct pol *q, const struct lt_bucket_state *s)
{
	return (i128)s->level * q->rate + s->carry;
}

static void gcra_set_tat(const struct pol *q, struct lt_bucket_state *s, i128 tat)
{
	s->level = (int64_t)(tat / q->rate);
	s->carry = (int64_t)(tat % q->rate);
}

/* The largest representable TAT, in 1/rate ns. */
static i128 gcra_tat_max(const struct pol *q)
{
	return ((i128)INT64_MAX + 1) * q->rate - 1;
}

/* The farthest TAT a state written at t may hold: t + 2·(burst + 1)·T (one
 * burst admitted, one more in debt), at most the largest representable. */
static i128 gcra_debt_max(const struct pol *q, int64_t t)
{
	i128 max = (i128)t * q->rate + 2 * (i128)q->cap * q->period;
	return max > gcra_tat_max(q) ? gcra_tat_max(q) : max;
}

/*
 * Bring a stored state into normal form and advance it to *now (which is
 * clamped to [max(0, last_ns), INT64_MAX]): apply the leak or refill, roll the
 * window, lift a past TAT to now.  Works on the caller's copy.
 */
static void advance(const struct pol *q, struct lt_bucket_state *s, int64_t *now)
{
	int64_t last = clamp_now(s->last_ns);
	int64_t t = clamp_now(*now);
	if (t < last)
		t = last;
	*now = t;
	s->last_ns = t;

	switch (q->algo) {
	case LT_ALGO_LEAKY:
	case LT_ALGO_TOKEN: {
		s->window = 0;
		if (q->algo == LT_ALGO_LEAKY)
			s->level = clamp64(s->level, 0, 2 * q->cap_m);
		else
			s->level = clamp64(s->level, -q->cap_m, q->cap_m);
		if (s->carry < 0 || s->carry >= q->period)
			s->carry = 0;
		i128 total = (i128)q->rate_m * (t - last) + s->carry;
		i128 moved = total / q->period;
		if (q->algo == LT_ALGO_LEAKY) {
			if (moved >= s->level) {
				s->level = 0;
				s->carry = 0;
			} else {
				s->level -= (int64_t)moved;
				s->carry = (int64_t)(total % q->period);
			}
		} else {
			if (moved >= q->cap_m - s->level) {
				s->level = q->cap_m;
				s->carry = 0;
			} else {
				s->level += (int64_t)moved;
				s->carry = (int64_t)(total % q->period);
			}
		}
		break;
	}
	case LT_ALGO_FIXED: {
		int64_t w = window_of(q, t);
		s->carry = 0;
		if (s->window != w) {
			s->window = w;
			s->level = 0;
		}
		s->level = clamp64(s->level, 0, 2 * q->cap_m);
		break;
	}
	case LT_ALGO_GCRA: {
		s->window = 0;
		if (s->carry < 0 || s->carry >= q->rate)
			s->carry = 0;
		/* Written at last_ns, a TAT is at most last_ns + 2·(burst + 1)·T
		 * (in debt); the bound counts from last_ns, not now, so that a
		 * state brought back into normal form is the same at every now. */
		i128 max = gcra_debt_max(q, last);
		i128 now_r = (i128)t * q->rate;
		i128 tat = gcra_tat(q, s);
		if (tat > max)
			tat = max;
		if (tat < now_r)
			tat = now_r;
		gcra_set_tat(q, s, tat);
		break;
	}
	}
}

/* Whole tokens admissible now (advanced state): 0 in debt, never negative
 * (C division truncates toward zero, so a negative quotient is clamped
 * explicitly rather than relied on). */
static int64_t remaining(const struct pol *q, const struct lt_bucket_state *s, int64_t now)
{
	i128 n = 0;
	switch (q->algo) {
	case LT_ALGO_LEAKY:
	case LT_ALGO_FIXED: n = (q->cap_m - s->level) / LT_MICRO; break;
	case LT_ALGO_TOKEN: n = s->level / LT_MICRO; break;
	case LT_ALGO_GCRA: {
		/* n such that TAT + n·T - now <= (burst + 1)·T and TAT + n·T
		 * stays representable; TAT >= now after advance(). */
		i128 tat = gcra_tat(q, s);
		i128 ahead = tat - (i128)now * q->rate;
		i128 fit = (gcra_tat_max(q) - tat) / q->period;
		n = q->cap - ceil_div(ahead, q->period);
		if (fit < n)
			n = fit;
		break;
	}
	}
	return n > 0 ? (int64_t)n : 0;
}

/* Until the advanced state is indistinguishable from a fresh one (from now). */
static i128 reset_in(const struct pol *q, const struct lt_bucket_state *s, int64_t now)
{
	switch (q->algo) {
	case LT_ALGO_LEAKY:
		if (s->level == 0)
			return 0;
		return ceil_div((i128)s->level * q->period - s->carry, q->rate_m);
	case LT_ALGO_TOKEN:
		if (s->level == q->cap_m)
			return 0;
		return ceil_div((i128)(q->cap_m - s->level) * q->period - s->carry, q->rate_m);
	case LT_ALGO_FIXED:
		if (s->level == 0)
			return 0;
		return (i128)s->window + q->period - now;
	case LT_ALGO_GCRA: return ceil_div(gcra_tat(q, s) - (i128)now * q->rate, q->rate);
	}
	return 0;
}

/* Until `cost` (which does not fit now, and is <= cap) would be admitted
 * (from now, > 0). */
static i128 retry_in(const struct pol *q, const struct lt_bucket_state *s, int64_t now,
		     int64_t cost)
{
	i128 cost_m = (i128)cost * LT_MICRO;
	switch (q->algo) {
	case LT_ALGO_LEAKY: {
		i128 need = s->level + cost_m - q->cap_m;
		return ceil_div(need * q->period - s->carry, q->rate_m);
	}
	case LT_ALGO_TOKEN: {
		i128 need = cost_m - s->level;
		return ceil_div(need * q->period - s->carry, q->rate_m);
	}
	case LT_ALGO_FIXED: return (i128)s->window + q->period - now;
	case LT_ALGO_GCRA: {
		/* Until the first t with TAT + cost·T - t <= (burst + 1)·T; while
		 * t <= TAT the new TAT would be TAT + cost·T, so if that is not
		 * representable the request never passes. */
		i128 tat = gcra_tat(q, s);
		i128 add = (i128)cost * q->period;
		if (tat + add > gcra_tat_max(q))
			return (i128)INT64_MAX; /* saturates */
		i128 t = tat + add - (i128)q->cap * q->period;
		return ceil_div(t, q->rate) - now;
	}
	}
	return 0;
}

/* Whether cost (<= cap) passes now; cost 0 always does, even in debt. */
static bool fits(const struct pol *q, const struct lt_bucket_state *s, int64_t now, int64_t cost)
{
	i128 cost_m = (i128)cost * LT_MICRO;
	if (cost == 0)
		return true;
	switch (q->algo) {
	case LT_ALGO_LEAKY:
	case LT_ALGO_FIXED: return s->level + cost_m <= q->cap_m;
	case LT_ALGO_TOKEN: return s->level >= cost_m;
	case LT_ALGO_GCRA: {
		i128 tat = gcra_tat(q, s) + (i128)cost * q->period;
		return tat - (i128)now * q->rate <= (i128)q->cap * q->period &&
		       tat <= gcra_tat_max(q);
	}
	}
	return false;
}

static void charge(const struct pol *q, struct lt_bucket_state *s, int64_t cost)
{
	switch (q->algo) {
	case LT_ALGO_LEAKY:
	case LT_ALGO_FIXED: s->level += cost * LT_MICRO; break;
	case LT_ALGO_TOKEN: s->level -= cost * LT_MICRO; break;
	case LT_ALGO_GCRA: gcra_set_tat(q, s, gcra_tat(q, s) + (i128)cost * q->period); break;
	}
}

static void fill(const struct pol *q, const struct lt_bucket_state *s, int64_t now, int64_t asked,
		 struct lt_bucket_decision *d)
{
	d->limit = q->cap;
	d->remaining = remaining(q, s, now);
	d->used = q->cap - d->remaining;
	d->reset_ns = dur(reset_in(q, s, now), now, asked);
	d->retry_ns = 0;
}

void lt_bucket_fresh(const struct lt_bucket_policy *p, int64_t now_ns, struct lt_bucket_state *st)
{
	struct pol q;
	pol_load(p, &q);
	int64_t now = clamp_now(now_ns);
	memset(st, 0, sizeof *st);
	st->last_ns = now;
	switch (q.algo) {
	case LT_ALGO_LEAKY: break;
	case LT_ALGO_TOKEN: st->level = q.cap_m; break;
	case LT_ALGO_FIXED: st->window = window_of(&q, now); break;
	case LT_ALGO_GCRA: st->level = now; break;
	}
}

enum lt_err lt_bucket_admit(const struct lt_bucket_policy *p, struct lt_bucket_state *st,
			    int64_t now_ns, int64_t cost, struct lt_bucket_decision *d)
{
	struct pol q;
	if (!d)
		return LT_EINVAL;
	memset(d, 0, sizeof *d);
	if (!pol_load(p, &q) || !st)
		return LT_EINVAL;

	struct lt_bucket_state s = *st;
	int64_t now = now_ns;
	advance(&q, &s, &now);
	fill(&q, &s, now, now_ns, d);
	if (cost < 0)
		return LT_EINVAL;
	if (cost > q.cap)
		return LT_ERANGE;
	if (!fits(&q, &s, now, cost)) {
		d->retry_ns = dur(retry_in(&q, &s, now, cost), now, now_ns);
		return LT_OK;
	}
	charge(&q, &s, cost);
	*st = s;
	fill(&q, &s, now, now_ns, d);
	d->allowed = true;
	return LT_OK;
}

/* The largest cost a refund or a forced charge can mean: the whole span of
 * the state, from fresh to the debt bound (2·cap; 2·10^12 at most, so
 * cost·10^6 fits in 64 bits). */
static int64_t span_cost(const struct pol *q, int64_t cost)
{
	return cost > 2 * q->cap ? 2 * q->cap : cost;
}

void lt_bucket_refund(const struct lt_bucket_policy *p, struct lt_bucket_state *st, int64_t now_ns,
		      int64_t cost)
{
	struct pol q;
	pol_load(p, &q);
	if (cost <= 0)
		return;
	cost = span_cost(&q, cost);
	int64_t now = now_ns;
	advance(&q, st, &now);
	int64_t cost_m = cost * LT_MICRO;
	switch (q.algo) {
	case LT_ALGO_LEAKY:
	case LT_ALGO_FIXED:
		/* FIXED: advance() started a new window if the charge belonged
		 * to an earlier one, and a new window has nothing to give back.
		 * In debt the refund pays the debt off first. */
		st->level = st->level > cost_m ? st->level - cost_m : 0;
		if (st->level == 0)
			st->carry = 0;
		break;
	case LT_ALGO_TOKEN:
		/* level >= -cap_m and cost_m <= 2·cap_m: no overflow */
		if (st->level >= q.cap_m - cost_m) {
			st->level = q.cap_m;
			st->carry = 0;
		} else {
			st->level += cost_m;
		}
		break;
	case LT_ALGO_GCRA: {
		i128 tat = gcra_tat(&q, st) - (i128)cost * q.period;
		i128 now_r = (i128)now * q.rate;
		gcra_set_tat(&q, st, tat < now_r ? now_r : tat);
		break;
	}
	}
}

void lt_bucket_charge(const struct lt_bucket_policy *p, struct lt_bucket_state *st, int64_t now_ns,
		      int64_t cost)
{
	struct pol q;
	pol_load(p, &q);
	if (cost <= 0)
		return;
	cost = span_cost(&q, cost);
	int64_t now = now_ns;
	advance(&q, st, &now);
	int64_t cost_m = cost * LT_MICRO;
	switch (q.algo) {
	case LT_ALGO_LEAKY:
	case LT_ALGO_FIXED:
		/* FIXED: in the window of now (advance() rolled it). level <=
		 * 2·cap_m and cost_m <= 2·cap_m: the sum fits.  The carry of a
		 * LEAKY level that was 0 is 0, so the normal form holds. */
		st->level = st->level > 2 * q.cap_m - cost_m ? 2 * q.cap_m : st->level + cost_m;
		break;
	case LT_ALGO_TOKEN:
		/* a bucket that was full has carry 0; below full any carry is
		 * the refill's progress and stays */
		st->level = st->level < cost_m - q.cap_m ? -q.cap_m : st->level - cost_m;
		break;
	case LT_ALGO_GCRA: {
		i128 tat = gcra_tat(&q, st) + (i128)cost * q.period;
		i128 max = gcra_debt_max(&q, now);
		gcra_set_tat(&q, st, tat > max ? max : tat);
		break;
	}
	}
}

void lt_bucket_peek(const struct lt_bucket_policy *p, const struct lt_bucket_state *st,
		    int64_t now_ns, struct lt_bucket_decision *d)
{
	struct pol q;
	pol_load(p, &q);
	memset(d, 0, sizeof *d);
	struct lt_bucket_state s = *st;
	int64_t now = now_ns;
	advance(&q, &s, &now);
	fill(&q, &s, now, now_ns, d);
	d->allowed = true;
}

bool lt_bucket_expired(const struct lt_bucket_policy *p, const struct lt_bucket_state *st,
		       int64_t now_ns)
{
	struct pol q;
	pol_load(p, &q);
	struct lt_bucket_state s = *st;
	int64_t now = now_ns;
	advance(&q, &s, &now);
	switch (q.algo) {
	case LT_ALGO_LEAKY:
	case LT_ALGO_FIXED: return s.level == 0;
	case LT_ALGO_TOKEN: return s.level == q.cap_m;
	case LT_ALGO_GCRA: return gcra_tat(&q, &s) == (i128)now * q.rate;
	}
	return true;
}
