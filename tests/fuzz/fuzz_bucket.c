/*
 * fuzz_bucket.c — src/limit/bucket.c driven by arbitrary bytes: the input
 * is read as segments, each a policy (any of the four algorithms, values
 * small, huge or out of bounds), a start time (ordinary, near INT64_MAX,
 * before the epoch) and a run of operations (admit, refund, peek, a policy
 * reloaded under a live state, a forced charge, an admission settled later
 * to its real use by a refund or a charge) at times that step forward,
 * jump, or step back.  An operation byte in [0x80, 0xE0) picks one of the
 * last two (even: a charge, odd: an admission and its settlement); any
 * other byte one of the first four by op % 8 (the layout the older seeds
 * were written for: none of them uses that range).
 *
 * Checks, beyond "no crash and no sanitizer report":
 *   - an invalid policy (lt_bucket_policy_check) is LT_EINVAL for admit, and
 *     the functions that cannot fail still give decisions within bounds;
 *   - every decision: 0 <= remaining <= limit, used = limit - remaining,
 *     0 <= reset_ns, retry_ns <= INT64_MAX - now; limit is capacity (GCRA
 *     burst + 1); a negative cost is LT_EINVAL, a cost above limit
 *     LT_ERANGE, anything else LT_OK, admitted exactly when cost <= the
 *     remaining of a peek just before; an admission has retry 0;
 *   - a refusal leaves the state bit-identical, and its retry_ns is exact:
 *     one ns earlier the same cost is refused, at retry_ns it passes;
 *   - lt_bucket_expired agrees with reset_ns == 0 and first holds at
 *     now + reset_ns;
 *   - every state written (admitted, refunded, charged) is in normal form
 *     and within the debt bound of bucket.h (LEAKY/FIXED level <= 2 ×
 *     capacity, TOKEN >= -capacity, GCRA TAT <= last + 2 × (burst + 1) × T);
 *     a bucket in debt peeks remaining 0, used = limit, not expired;
 *   - a charge is exactly the state advanced to now plus the cost, up to
 *     that bound (the excess forgiven); when nothing was forgiven a refund
 *     of the same cost at the same now restores the advanced state bit for
 *     bit; a charge never raises remaining nor shortens reset_ns; cost <= 0
 *     changes nothing;
 *   - until the policy is reloaded, what was admitted net of refunds never
 *     exceeds capacity + rate × elapsed (LEAKY, TOKEN from full), capacity
 *     per window (FIXED), burst + 1 + rate × elapsed (GCRA) — forced
 *     charges only lower what is admitted, so the bound holds with them;
 *   - a shadow state that never sees cost-0 admissions or peeks makes the
 *     same decisions and ends bit-identical while the clock runs forward
 *     (the carried fraction loses nothing).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limit/bucket.h"

#include "fuzz_check.h"

#define MS INT64_C(1000000)
#define S INT64_C(1000000000)
#define TEN_YEARS INT64_C(315576000000000000)
#define TOKENS_MAX INT64_C(1000000000000)

typedef __int128 i128;

struct rd {
	const uint8_t *p;
	size_t n;
};

static uint8_t u8(struct rd *r)
{
	if (!r->n)
		return 0;
	r->n--;
	return *r->p++;
}

static uint16_t u16(struct rd *r)
{
	uint16_t hi = u8(r);
	return (uint16_t)(hi << 8 | u8(r));
}

static int64_t i64(struct rd *r)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | u8(r);
	return (int64_t)v;
}

static int64_t sat(i128 v)
{
	return v > INT64_MAX ? INT64_MAX : v < INT64_MIN ? INT64_MIN : (int64_t)v;
}

static int64_t dur_max(int64_t now)
{
	i128 m = (i128)INT64_MAX - now;
	return m > INT64_MAX ? INT64_MAX : (int64_t)m;
}

static int64_t tokens(struct rd *r)
{
	uint8_t sel = u8(r);
	switch (sel % 4) {
	case 0: return 1 + sel / 4 % 16;
	case 1: return 1 + (int64_t)u16(r);
	case 2: return TOKENS_MAX - u8(r);
	default: return i64(r);
	}
}

static void read_policy(struct rd *r, struct lt_bucket_policy *p)
{
	uint8_t a = u8(r);
	p->algo = (enum lt_bucket_algo)(a % 4);
	if (a >= 252)
		p->algo = (enum lt_bucket_algo)(a - 240); /* out of range */
	p->capacity = tokens(r);
	p->rate = tokens(r);
	uint8_t sel = u8(r);
	switch (sel % 4) {
	case 0: p->period_ns = MS * (1 + u8(r)) + (sel & 4 ? 7 : 0); break;
	case 1: p->period_ns = S * (1 + u8(r) % 60); break;
	case 2: p->period_ns = TEN_YEARS - u8(r); break;
	default: p->period_ns = i64(r); break;
	}
	sel = u8(r);
	switch (sel % 4) {
	case 0: p->burst = sel / 4 % 8; break;
	case 1: p->burst = u16(r); break;
	case 2: p->burst = TOKENS_MAX - 1 - u8(r); break;
	default: p->burst = i64(r); break;
	}
}

static int64_t start_time(struct rd *r)
{
	uint8_t sel = u8(r);
	int64_t b = u8(r);
	switch (sel % 5) {
	case 0: return b * S;
	case 1: return 1700000000 * S + b * 7919 * MS;
	case 2: return INT64_MAX / 2 - b;
	case 3: return INT64_MAX - b * (sel & 8 ? S : 1);
	default: return -b * S;
	}
}

static int64_t next_time(struct rd *r, int64_t t, int64_t period)
{
	uint8_t sel = u8(r);
	int64_t b = u8(r);
	switch (sel % 8) {
	case 0: return t;
	case 1: return sat((i128)t + b);
	case 2: return sat((i128)t + b * 1000);
	case 3: return sat((i128)t + b * MS);
	case 4: return sat((i128)t + (i128)period * b / 64);
	case 5: return sat((i128)t + (i64(r) & ((INT64_C(1) << 44) - 1)));
	case 6: return sat((i128)t - b * MS);
	default: return sel & 8 ? INT64_MAX - b : sel & 16 ? b : -b;
	}
}

static int64_t read_cost(struct rd *r, int64_t limit)
{
	uint8_t sel = u8(r);
	switch (sel % 8) {
	case 0: return 0;
	case 1: return 1;
	case 2: return limit;
	case 3: return limit + 1;
	case 4: return -(int64_t)u8(r) - 1;
	case 5: return i64(r);
	default: return 1 + u16(r) % (limit < 65536 ? limit : 65536);
	}
}

static int64_t limit_of(const struct lt_bucket_policy *p)
{
	return p->algo == LT_ALGO_GCRA ? p->burst + 1 : p->capacity;
}

/* A fresh bucket admits its limit, except a GCRA key so close to INT64_MAX
 * that the TAT of a full burst would not be representable. */
static int64_t fresh_remaining(const struct lt_bucket_policy *p, int64_t now)
{
	if (p->algo != LT_ALGO_GCRA)
		return p->capacity;
	i128 now_r = (i128)(now < 0 ? 0 : now) * p->rate;
	i128 fit = (((i128)INT64_MAX + 1) * p->rate - 1 - now_r) / p->period_ns;
	return fit < limit_of(p) ? (int64_t)fit : limit_of(p);
}

static void check_fields(const struct lt_bucket_decision *d, int64_t now)
{
	CHECK(d->limit >= 1 && d->limit <= TOKENS_MAX);
	CHECK(d->remaining >= 0 && d->remaining <= d->limit);
	CHECK(d->used == d->limit - d->remaining);
	CHECK(d->reset_ns >= 0 && d->reset_ns <= dur_max(now));
	CHECK(d->retry_ns >= 0 && d->retry_ns <= dur_max(now));
	if (d->allowed)
		CHECK(d->retry_ns == 0);
}

/* retry_ns is exact unless saturated ("never") or now is the last instant. */
static void check_retry(const struct lt_bucket_policy *p, const struct lt_bucket_state *st,
			int64_t now, int64_t cost, int64_t retry)
{
	struct lt_bucket_state a = *st, b = *st;
	struct lt_bucket_decision d;
	if (now == INT64_MAX) {
		CHECK(retry == 0);
		return;
	}
	CHECK(retry > 0);
	if (retry == dur_max(now))
		return;
	CHECK(lt_bucket_admit(p, &a, now + retry - 1, cost, &d) == LT_OK && !d.allowed);
	CHECK(lt_bucket_admit(p, &b, now + retry, cost, &d) == LT_OK && d.allowed);
}

/* The admission bound of the algorithm, from a fresh state at t0. */
struct account {
	bool on;
	int64_t t0, tmax;
	i128 net;	/* admitted - refunded, tokens */
	int64_t window; /* FIXED: window index of the last update */
	i128 in_window; /* FIXED: net in that window */
};

static void account_check(const struct lt_bucket_policy *p, const struct lt_bucket_state *st,
			  struct account *ac, int64_t delta)
{
	if (!ac->on)
		return;
	i128 P = p->period_ns, el = (i128)ac->tmax - ac->t0;
	ac->net += delta;
	switch (p->algo) {
	case LT_ALGO_LEAKY:
	case LT_ALGO_TOKEN: CHECK(ac->net * P <= (i128)p->capacity * P + (i128)p->rate * el); break;
	case LT_ALGO_GCRA: CHECK(ac->net * P <= (i128)limit_of(p) * P + (i128)p->rate * el); break;
	case LT_ALGO_FIXED: {
		int64_t w = st->last_ns / p->period_ns;
		if (w != ac->window) {
			ac->window = w;
			ac->in_window = 0;
		}
		ac->in_window += delta;
		CHECK(ac->in_window <= p->capacity);
		break;
	}
	}
}

static void run_invalid(const struct lt_bucket_policy *p, int64_t t)
{
	struct lt_bucket_state st;
	struct lt_bucket_decision d;
	lt_bucket_fresh(p, t, &st);
	CHECK(lt_bucket_admit(p, &st, t, 1, &d) == LT_EINVAL);
	CHECK(!d.allowed);
	lt_bucket_peek(p, &st, t, &d);
	check_fields(&d, t);
	lt_bucket_refund(p, &st, t, 1);
	lt_bucket_charge(p, &st, t, INT64_MAX);
	lt_bucket_peek(p, &st, t, &d);
	check_fields(&d, t);
	(void)lt_bucket_expired(p, &st, t);
}

/* One segment: a policy, its live state, a shadow that never sees cost-0
 * admissions or peeks, the admission account and the clock. */
struct seg {
	struct lt_bucket_policy p;
	struct lt_bucket_state st, shadow;
	struct account ac;
	int64_t prev;
};

/* The next time of the sequence; *forward when it did not step back. */
static int64_t tick(struct seg *g, struct rd *r, int64_t t, bool *forward)
{
	t = next_time(r, t, g->p.period_ns);
	*forward = t >= g->prev;
	g->prev = t;
	if (t > g->ac.tmax)
		g->ac.tmax = t;
	return t;
}

/* After an operation at a time that stepped back the shadow starts over. */
static void resync(struct seg *g, bool forward)
{
	if (!forward)
		g->shadow = g->st;
}

/* The state as the functions of bucket.c see it at now: advanced (a cost-0
 * admission is always admitted and changes nothing but the leak). */
static struct lt_bucket_state advanced(const struct lt_bucket_policy *p,
				       const struct lt_bucket_state *st, int64_t now)
{
	struct lt_bucket_state s = *st;
	struct lt_bucket_decision d;
	CHECK(lt_bucket_admit(p, &s, now, 0, &d) == LT_OK && d.allowed);
	return s;
}

static i128 gcra_tat(const struct lt_bucket_state *s, int64_t rate)
{
	return (i128)s->level * rate + s->carry;
}

static i128 gcra_tat_max(int64_t rate)
{
	return ((i128)INT64_MAX + 1) * rate - 1;
}

/* The farthest TAT of a state written at t: t + 2 × (burst + 1) × T. */
static i128 gcra_debt_max(const struct lt_bucket_policy *p, int64_t t)
{
	i128 m = (i128)t * p->rate + 2 * (i128)limit_of(p) * p->period_ns;
	return m > gcra_tat_max(p->rate) ? gcra_tat_max(p->rate) : m;
}

/* A state written by bucket.c is in its normal form: at most one capacity
 * beyond full (the debt bound of bucket.h), never below empty. */
static void check_bound(const struct lt_bucket_policy *p, const struct lt_bucket_state *st)
{
	i128 cap_m = (i128)limit_of(p) * LT_MICRO;
	CHECK(st->last_ns >= 0);
	switch (p->algo) {
	case LT_ALGO_LEAKY:
		CHECK(st->level >= 0 && st->level <= 2 * cap_m);
		CHECK(st->carry >= 0 && st->carry < p->period_ns);
		CHECK(st->level != 0 || st->carry == 0);
		break;
	case LT_ALGO_TOKEN:
		CHECK(st->level >= -cap_m && st->level <= cap_m);
		CHECK(st->carry >= 0 && st->carry < p->period_ns);
		CHECK(st->level != cap_m || st->carry == 0);
		break;
	case LT_ALGO_FIXED:
		CHECK(st->level >= 0 && st->level <= 2 * cap_m);
		CHECK(st->carry == 0 && st->window % p->period_ns == 0);
		CHECK(st->window <= st->last_ns && st->last_ns - st->window < p->period_ns);
		break;
	case LT_ALGO_GCRA:
		CHECK(st->carry >= 0 && st->carry < p->rate);
		CHECK(gcra_tat(st, p->rate) >= (i128)st->last_ns * p->rate);
		CHECK(gcra_tat(st, p->rate) <= gcra_debt_max(p, st->last_ns));
		break;
	}
}

/* Beyond full, as advanced to now. */
static bool in_debt(const struct lt_bucket_policy *p, const struct lt_bucket_state *adv)
{
	i128 cap_m = (i128)limit_of(p) * LT_MICRO;
	switch (p->algo) {
	case LT_ALGO_LEAKY:
	case LT_ALGO_FIXED: return adv->level > cap_m;
	case LT_ALGO_TOKEN: return adv->level < 0;
	case LT_ALGO_GCRA:
		return gcra_tat(adv, p->rate) - (i128)adv->last_ns * p->rate >
		       (i128)limit_of(p) * p->period_ns;
	}
	return false;
}

/* expired agrees with reset_ns, and first holds at now + reset_ns; a
 * bucket in debt has nothing left, is used up to its limit (not beyond)
 * and is not expired. */
static void check_peek(const struct lt_bucket_policy *p, const struct lt_bucket_state *st,
		       int64_t now, struct lt_bucket_decision *d)
{
	struct lt_bucket_state before = *st;
	lt_bucket_peek(p, st, now, d);
	CHECK(memcmp(&before, st, sizeof before) == 0);
	check_fields(d, now);
	CHECK(d->allowed);
	struct lt_bucket_state adv = advanced(p, st, now);
	if (in_debt(p, &adv)) {
		CHECK(d->remaining == 0 && d->used == d->limit);
		CHECK(!lt_bucket_expired(p, st, now));
	}
	if (now == INT64_MAX)
		return;
	bool exp = lt_bucket_expired(p, st, now);
	CHECK(exp == (d->reset_ns == 0));
	if (d->reset_ns > 0 && d->reset_ns < dur_max(now)) {
		CHECK(!lt_bucket_expired(p, st, now + d->reset_ns - 1));
		CHECK(lt_bucket_expired(p, st, now + d->reset_ns));
	}
}

/* Admit cost at t; returns whether it was admitted. */
static bool do_admit(struct seg *g, int64_t t, bool forward, int64_t cost)
{
	const struct lt_bucket_policy *p = &g->p;
	struct lt_bucket_decision d, pk;
	int64_t limit = limit_of(p);
	struct lt_bucket_state before = g->st;
	check_peek(p, &g->st, t, &pk);
	enum lt_err e = lt_bucket_admit(p, &g->st, t, cost, &d);
	check_fields(&d, t);
	CHECK(d.limit == limit);
	CHECK(d.allowed ? d.remaining == pk.remaining - cost : d.remaining == pk.remaining);
	if (cost < 0)
		CHECK(e == LT_EINVAL && !d.allowed);
	else if (cost > limit)
		CHECK(e == LT_ERANGE && !d.allowed && d.retry_ns == 0);
	else
		CHECK(e == LT_OK && d.allowed == (cost <= pk.remaining));
	if (!d.allowed) {
		CHECK(memcmp(&before, &g->st, sizeof g->st) == 0);
		if (e == LT_OK)
			check_retry(p, &g->st, t, cost, d.retry_ns);
	} else {
		if (cost == 0)
			CHECK(d.reset_ns == pk.reset_ns);
		check_bound(p, &g->st);
		account_check(p, &g->st, &g->ac, cost);
	}
	if (cost > 0 && e == LT_OK) {
		struct lt_bucket_decision ds;
		CHECK(lt_bucket_admit(p, &g->shadow, t, cost, &ds) == LT_OK);
		if (forward) {
			CHECK(ds.allowed == d.allowed && ds.remaining == d.remaining &&
			      ds.reset_ns == d.reset_ns && ds.retry_ns == d.retry_ns);
			if (d.allowed)
				CHECK(memcmp(&g->shadow, &g->st, sizeof g->st) == 0);
		}
	}
	return d.allowed;
}

static void do_refund(struct seg *g, int64_t t, bool forward, int64_t cost)
{
	const struct lt_bucket_policy *p = &g->p;
	struct lt_bucket_decision pk;
	int64_t limit = limit_of(p);
	struct lt_bucket_state before = g->st;
	lt_bucket_refund(p, &g->st, t, cost);
	lt_bucket_refund(p, &g->shadow, t, cost);
	if (cost <= 0) {
		CHECK(memcmp(&before, &g->st, sizeof g->st) == 0);
	} else {
		if (forward)
			CHECK(memcmp(&g->shadow, &g->st, sizeof g->st) == 0);
		check_bound(p, &g->st);
		/* a refund gives back at most the whole span, 2 × limit */
		account_check(p, &g->st, &g->ac, -(cost < 2 * limit ? cost : 2 * limit));
	}
	check_peek(p, &g->st, t, &pk);
}

/*
 * A forced charge is exactly the state advanced to t plus cost, up to the
 * debt bound; unless the bound forgave part of it, a refund of the same
 * cost at the same t gives the advanced state back bit for bit.  It never
 * counts as an admission: the account bounds what was admitted, and a
 * charge only lowers that.
 */
static void do_charge(struct seg *g, int64_t t, bool forward, int64_t cost)
{
	const struct lt_bucket_policy *p = &g->p;
	struct lt_bucket_decision pk;
	int64_t limit = limit_of(p);
	struct lt_bucket_state before = g->st, adv = advanced(p, &g->st, t);
	lt_bucket_charge(p, &g->st, t, cost);
	lt_bucket_charge(p, &g->shadow, t, cost);
	if (cost <= 0) {
		CHECK(memcmp(&before, &g->st, sizeof g->st) == 0);
		check_peek(p, &g->st, t, &pk);
		return;
	}
	i128 c = cost < 2 * limit ? cost : 2 * limit;
	i128 cap_m = (i128)limit * LT_MICRO;
	bool forgiven = c != cost;
	struct lt_bucket_state want = adv;
	switch (p->algo) {
	case LT_ALGO_LEAKY:
	case LT_ALGO_FIXED: {
		i128 v = adv.level + c * LT_MICRO;
		forgiven |= v > 2 * cap_m;
		want.level = (int64_t)(v > 2 * cap_m ? 2 * cap_m : v);
		break;
	}
	case LT_ALGO_TOKEN: {
		i128 v = adv.level - c * LT_MICRO;
		forgiven |= v < -cap_m;
		want.level = (int64_t)(v < -cap_m ? -cap_m : v);
		break;
	}
	case LT_ALGO_GCRA: {
		i128 tat = gcra_tat(&adv, p->rate) + c * p->period_ns;
		i128 max = gcra_debt_max(p, adv.last_ns);
		forgiven |= tat > max;
		if (tat > max)
			tat = max;
		want.level = (int64_t)(tat / p->rate);
		want.carry = (int64_t)(tat % p->rate);
		break;
	}
	}
	CHECK(memcmp(&want, &g->st, sizeof want) == 0);
	check_bound(p, &g->st);
	if (!forgiven) {
		struct lt_bucket_state back = g->st;
		lt_bucket_refund(p, &back, t, cost);
		CHECK(memcmp(&back, &adv, sizeof adv) == 0);
	}
	if (forward)
		CHECK(memcmp(&g->shadow, &g->st, sizeof g->st) == 0);
	check_peek(p, &g->st, t, &pk);
	/* a charge never makes room */
	struct lt_bucket_decision pb;
	lt_bucket_peek(p, &before, t, &pb);
	CHECK(pk.remaining <= pb.remaining && pk.reset_ns >= pb.reset_ns);
}

/* What a forced charge costs: small, about the limit, far beyond it, or
 * anything (negative, huge). */
static int64_t read_charge(struct rd *r, int64_t limit)
{
	uint8_t sel = u8(r);
	switch (sel % 4) {
	case 0: return read_cost(r, limit);
	case 1: return 1 + u16(r);
	case 2: return limit * (1 + sel / 4 % 3) + (int64_t)u8(r) - 128;
	default: return 2 * limit + (sel & 4 ? 1 : -1);
	}
}

/* The real use of an admitted cost: the same, less, or more. */
static int64_t read_actual(struct rd *r, int64_t cost, int64_t limit)
{
	uint8_t sel = u8(r);
	switch (sel % 4) {
	case 0: return cost;
	case 1: return cost - u16(r) % (cost + 1);
	case 2: return cost + 1 + u16(r);
	default: return cost + limit * (1 + sel / 4 % 4);
	}
}

static void run_segment(struct rd *r)
{
	struct seg g;
	read_policy(r, &g.p);
	int64_t t = start_time(r);
	char why[128];
	if (lt_bucket_policy_check(&g.p, why, sizeof why) != LT_OK) {
		CHECK(why[0] != '\0');
		run_invalid(&g.p, t);
		return;
	}
	CHECK(strlen(why) == 0);

	struct lt_bucket_decision pk;
	lt_bucket_fresh(&g.p, t, &g.st);
	g.shadow = g.st;
	check_peek(&g.p, &g.st, t, &pk);
	CHECK(pk.remaining == fresh_remaining(&g.p, t) && pk.reset_ns == 0);

	struct account ac = {true, t < 0 ? 0 : t, t < 0 ? 0 : t, 0, g.st.last_ns / g.p.period_ns,
			     0};
	g.ac = ac;
	g.prev = t;
	unsigned nops = 1 + u8(r) % 64;
	for (unsigned i = 0; i < nops && r->n; i++) {
		uint8_t op = u8(r);
		bool forward;
		t = tick(&g, r, t, &forward);
		int64_t limit = limit_of(&g.p);
		bool debt_op = op >= 0x80 && op < 0xE0;
		if (debt_op && (op & 1) == 0) { /* a forced charge */
			do_charge(&g, t, forward, read_charge(r, limit));
		} else if (debt_op) { /* admit, then settle to the real use later */
			int64_t cost = read_cost(r, limit);
			if (do_admit(&g, t, forward, cost)) {
				resync(&g, forward);
				int64_t actual = read_actual(r, cost, limit);
				t = tick(&g, r, t, &forward);
				if (actual < cost)
					do_refund(&g, t, forward, cost - actual);
				else if (actual > cost)
					do_charge(&g, t, forward, actual - cost);
			}
		} else {
			switch (op % 8) {
			case 0:
			case 1:
			case 2:
			case 3: do_admit(&g, t, forward, read_cost(r, limit)); break;
			case 4:
			case 5: do_refund(&g, t, forward, read_cost(r, limit)); break;
			case 6: check_peek(&g.p, &g.st, t, &pk); break;
			default: { /* the policy reloaded under a live state */
				struct lt_bucket_policy q;
				read_policy(r, &q);
				if (lt_bucket_policy_check(&q, NULL, 0) != LT_OK) {
					run_invalid(&q, t);
					break;
				}
				g.p = q;
				g.ac.on = false;
				g.shadow = g.st;
				check_peek(&g.p, &g.st, t, &pk);
				break;
			}
			}
		}
		resync(&g, forward);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rd r = {data, size};
	for (int seg = 0; seg < 16 && r.n; seg++)
		run_segment(&r);
	return 0;
}
