/*
 * test_bucket.c — src/limit/bucket.c: the four rate-limit algorithms (leaky,
 * token, fixed window, GCRA) as pure functions over (state, now, cost).
 *
 * Every refusal is checked to leave the state bit-identical and to carry an
 * exact retry_ns (one ns earlier the same cost is still refused, at retry_ns
 * it passes).  Beyond the per-algorithm tables: the fractional carry, idle
 * buckets returning to fresh, clocks stepping back, cost bounds, refunds,
 * window alignment, values at the edges of int64, the nginx limit_req table
 * for GCRA, the Java reference's defaults, debt (a forced charge beyond
 * full: refused until paid off, exact retry, its bound, refunds from it,
 * expiry after it), and a property test over seeded random sequences (own
 * xorshift PRNG) bounding what any bucket admits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "limit/bucket.h"

#define NS INT64_C(1)
#define MS INT64_C(1000000)
#define S INT64_C(1000000000)
#define TEN_YEARS INT64_C(315576000000000000)
#define TOKENS_MAX INT64_C(1000000000000)

static const enum lt_bucket_algo all_algos[] = {LT_ALGO_LEAKY, LT_ALGO_TOKEN, LT_ALGO_FIXED,
						LT_ALGO_GCRA};

static struct lt_bucket_policy pol(enum lt_bucket_algo a, int64_t cap, int64_t rate, int64_t period,
				   int64_t burst)
{
	struct lt_bucket_policy p = {a, cap, rate, period, burst};
	return p;
}

/* The largest duration from now: now + it is at most INT64_MAX. */
static int64_t dur_max(int64_t now)
{
	__int128 m = (__int128)INT64_MAX - now;
	return m > INT64_MAX ? INT64_MAX : (int64_t)m;
}

static void fields_ok(const struct lt_bucket_decision *d, int64_t now)
{
	assert_true(d->limit >= 1);
	assert_true(d->remaining >= 0 && d->remaining <= d->limit);
	assert_int_equal(d->used, d->limit - d->remaining);
	assert_true(d->reset_ns >= 0 && d->reset_ns <= dur_max(now));
	assert_true(d->retry_ns >= 0 && d->retry_ns <= dur_max(now));
	if (d->allowed)
		assert_int_equal(d->retry_ns, 0);
}

/* Admit `cost` at now and insist it passes. */
static struct lt_bucket_decision yes(const struct lt_bucket_policy *p, struct lt_bucket_state *st,
				     int64_t now, int64_t cost)
{
	struct lt_bucket_decision d;
	assert_int_equal(lt_bucket_admit(p, st, now, cost, &d), LT_OK);
	if (!d.allowed)
		fail_msg("%s: cost %lld at %lld refused (retry %lld)", lt_bucket_algo_name(p->algo),
			 (long long)cost, (long long)now, (long long)d.retry_ns);
	fields_ok(&d, now);
	return d;
}

/* retry is exact: one ns earlier the same cost is refused, at retry it
 * passes; a saturated retry (now + retry == INT64_MAX) means "never". */
static void retry_exact(const struct lt_bucket_policy *p, const struct lt_bucket_state *st,
			int64_t now, int64_t cost, int64_t retry)
{
	struct lt_bucket_state a = *st, b = *st;
	struct lt_bucket_decision d;
	if (now == INT64_MAX) {
		assert_int_equal(retry, 0); /* the last instant */
		return;
	}
	assert_true(retry > 0);
	if (retry == dur_max(now)) {
		assert_int_equal(lt_bucket_admit(p, &a, INT64_MAX, cost, &d), LT_OK);
		assert_false(d.allowed);
		return;
	}
	assert_int_equal(lt_bucket_admit(p, &a, now + retry - 1, cost, &d), LT_OK);
	if (d.allowed)
		fail_msg("%s: cost %lld passed at retry - 1", lt_bucket_algo_name(p->algo),
			 (long long)cost);
	assert_int_equal(lt_bucket_admit(p, &b, now + retry, cost, &d), LT_OK);
	if (!d.allowed)
		fail_msg("%s: cost %lld refused at retry", lt_bucket_algo_name(p->algo),
			 (long long)cost);
}

/* Admit `cost` at now and insist it is refused with exactly want_retry
 * (want_retry < 0: any), the state untouched; returns the decision. */
static struct lt_bucket_decision no(const struct lt_bucket_policy *p, struct lt_bucket_state *st,
				    int64_t now, int64_t cost, int64_t want_retry)
{
	struct lt_bucket_state before = *st;
	struct lt_bucket_decision d;
	assert_int_equal(lt_bucket_admit(p, st, now, cost, &d), LT_OK);
	if (d.allowed)
		fail_msg("%s: cost %lld at %lld admitted", lt_bucket_algo_name(p->algo),
			 (long long)cost, (long long)now);
	assert_memory_equal(&before, st, sizeof before);
	fields_ok(&d, now);
	if (want_retry >= 0 && d.retry_ns != want_retry)
		fail_msg("%s: retry %lld, want %lld", lt_bucket_algo_name(p->algo),
			 (long long)d.retry_ns, (long long)want_retry);
	assert_true(cost > d.remaining);
	retry_exact(p, st, now, cost, d.retry_ns);
	return d;
}

static struct lt_bucket_decision peek(const struct lt_bucket_policy *p,
				      const struct lt_bucket_state *st, int64_t now)
{
	struct lt_bucket_decision d;
	memset(&d, 0x5A, sizeof d);
	lt_bucket_peek(p, st, now, &d);
	fields_ok(&d, now);
	assert_true(d.allowed);
	assert_int_equal(d.reset_ns == 0, lt_bucket_expired(p, st, now));
	return d;
}

static void test_names(void **state)
{
	(void)state;
	enum lt_bucket_algo a;
	for (size_t i = 0; i < 4; i++) {
		const char *n = lt_bucket_algo_name(all_algos[i]);
		assert_int_equal(lt_bucket_algo_parse(n, &a), LT_OK);
		assert_int_equal(a, all_algos[i]);
	}
	assert_string_equal(lt_bucket_algo_name(LT_ALGO_LEAKY), "leaky");
	assert_string_equal(lt_bucket_algo_name(LT_ALGO_TOKEN), "token");
	assert_string_equal(lt_bucket_algo_name(LT_ALGO_FIXED), "fixed");
	assert_string_equal(lt_bucket_algo_name(LT_ALGO_GCRA), "gcra");
	assert_int_equal(lt_bucket_algo_parse("GCRA", &a), LT_OK);
	assert_int_equal(a, LT_ALGO_GCRA);
	assert_int_equal(lt_bucket_algo_parse("Leaky", &a), LT_OK);
	assert_int_equal(a, LT_ALGO_LEAKY);
	static const char *const bad[] = {"",	    "leak",	    "leaky ", " token",
					  "tokens", "fixed_window", "gcr",    "gcraa"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		a = LT_ALGO_TOKEN;
		assert_int_equal(lt_bucket_algo_parse(bad[i], &a), LT_EINVAL);
		assert_int_equal(a, LT_ALGO_TOKEN);
	}
	assert_int_equal(lt_bucket_algo_parse(NULL, &a), LT_EINVAL);
	assert_non_null(lt_bucket_algo_name((enum lt_bucket_algo)42));
}

static void expect_bad(struct lt_bucket_policy p)
{
	char why[128] = "";
	assert_int_equal(lt_bucket_policy_check(&p, why, sizeof why), LT_EINVAL);
	assert_true(why[0] != '\0');
	/* admission refuses a policy the check refuses */
	struct lt_bucket_state st;
	struct lt_bucket_decision d;
	memset(&st, 0, sizeof st);
	assert_int_equal(lt_bucket_admit(&p, &st, S, 1, &d), LT_EINVAL);
	assert_false(d.allowed);
}

static void expect_good(struct lt_bucket_policy p)
{
	char why[128] = "x";
	if (lt_bucket_policy_check(&p, why, sizeof why) != LT_OK)
		fail_msg("%s policy refused: %s", lt_bucket_algo_name(p.algo), why);
}

static void test_policy_check(void **state)
{
	(void)state;
	for (size_t i = 0; i < 4; i++) {
		enum lt_bucket_algo a = all_algos[i];
		expect_good(pol(a, 1, 1, MS, 0));
		expect_good(pol(a, TOKENS_MAX, TOKENS_MAX, TEN_YEARS, 0));
		expect_bad(pol(a, 1, 1, MS - 1, 0));
		expect_bad(pol(a, 1, 1, TEN_YEARS + 1, 0));
		expect_bad(pol(a, 1, 1, -S, 0));
		if (a != LT_ALGO_GCRA) {
			expect_bad(pol(a, 0, 1, S, 0));
			expect_bad(pol(a, -1, 1, S, 0));
			expect_bad(pol(a, TOKENS_MAX + 1, 1, S, 0));
		}
		if (a != LT_ALGO_FIXED) {
			expect_bad(pol(a, 1, 0, S, 0));
			expect_bad(pol(a, 1, TOKENS_MAX + 1, S, 0));
		}
	}
	/* unused fields are not checked */
	expect_good(pol(LT_ALGO_FIXED, 10, 0, S, -5));
	expect_good(pol(LT_ALGO_GCRA, 0, 1, S, 4));
	expect_good(pol(LT_ALGO_LEAKY, 10, 1, S, -1));
	/* GCRA burst: 0..10^12-1, and (burst + 1) × period / rate under 2^62 ns */
	expect_bad(pol(LT_ALGO_GCRA, 0, 1, S, -1));
	expect_bad(pol(LT_ALGO_GCRA, 0, TOKENS_MAX, MS, TOKENS_MAX));
	expect_good(pol(LT_ALGO_GCRA, 0, TOKENS_MAX, TEN_YEARS, TOKENS_MAX - 1));
	expect_bad(pol(LT_ALGO_GCRA, 0, 1, TEN_YEARS, TOKENS_MAX - 1));
	expect_good(pol(LT_ALGO_GCRA, 0, 1, TEN_YEARS, 13)); /* 140 years */
	expect_bad(pol(LT_ALGO_GCRA, 0, 1, TEN_YEARS, 14));  /* 150 years */
	expect_bad(pol((enum lt_bucket_algo)7, 1, 1, S, 0));
	char why[4];
	struct lt_bucket_policy p = pol(LT_ALGO_LEAKY, 0, 1, S, 0);
	assert_int_equal(lt_bucket_policy_check(&p, why, sizeof why), LT_EINVAL);
	assert_int_equal(strlen(why), 3); /* truncated, terminated */
	assert_int_equal(lt_bucket_policy_check(NULL, NULL, 0), LT_EINVAL);
}

static void test_fresh(void **state)
{
	(void)state;
	const int64_t now = 1000 * S + 123;
	struct lt_bucket_state st;
	struct lt_bucket_policy p;

	p = pol(LT_ALGO_LEAKY, 7, 1, S, 0);
	lt_bucket_fresh(&p, now, &st);
	assert_int_equal(st.level, 0);
	assert_int_equal(st.last_ns, now);
	assert_int_equal(st.carry, 0);
	struct lt_bucket_decision d = peek(&p, &st, now);
	assert_int_equal(d.limit, 7);
	assert_int_equal(d.remaining, 7);
	assert_int_equal(d.used, 0);
	assert_int_equal(d.reset_ns, 0);
	assert_true(lt_bucket_expired(&p, &st, now));

	/* the token bucket starts FULL (the reference started it empty) */
	p = pol(LT_ALGO_TOKEN, 7, 1, S, 0);
	lt_bucket_fresh(&p, now, &st);
	assert_int_equal(st.level, 7 * LT_MICRO);
	d = peek(&p, &st, now);
	assert_int_equal(d.remaining, 7);
	assert_int_equal(d.reset_ns, 0);

	p = pol(LT_ALGO_FIXED, 7, 0, 60 * S, 0);
	lt_bucket_fresh(&p, now, &st);
	assert_int_equal(st.level, 0);
	assert_int_equal(st.window, 960 * S);
	d = peek(&p, &st, now);
	assert_int_equal(d.remaining, 7);
	assert_int_equal(d.reset_ns, 0);

	p = pol(LT_ALGO_GCRA, 0, 1, S, 4);
	lt_bucket_fresh(&p, now, &st);
	assert_int_equal(st.level, now); /* TAT = now */
	assert_int_equal(st.carry, 0);
	d = peek(&p, &st, now);
	assert_int_equal(d.limit, 5);
	assert_int_equal(d.remaining, 5);
	assert_int_equal(d.used, 0);
	assert_int_equal(d.reset_ns, 0);

	/* an all-zero record (what a caller may hold before its first write)
	 * behaves like a fresh bucket for the algorithms whose fresh level is 0 */
	for (size_t i = 0; i < 4; i++) {
		if (all_algos[i] == LT_ALGO_TOKEN)
			continue;
		p = pol(all_algos[i], 3, 1, S, 2);
		memset(&st, 0, sizeof st);
		assert_true(lt_bucket_expired(&p, &st, now));
		assert_int_equal(peek(&p, &st, now).remaining, 3);
	}
}

static void test_leaky(void **state)
{
	(void)state;
	struct lt_bucket_policy p = pol(LT_ALGO_LEAKY, 5, 1, S, 0);
	struct lt_bucket_state st;
	int64_t t = 100 * S;
	lt_bucket_fresh(&p, t, &st);
	for (int64_t i = 1; i <= 5; i++) {
		struct lt_bucket_decision d = yes(&p, &st, t, 1);
		assert_int_equal(d.remaining, 5 - i);
		assert_int_equal(d.used, i);
		assert_int_equal(d.reset_ns, i * S);
	}
	assert_int_equal(st.level, 5 * LT_MICRO);
	struct lt_bucket_decision d = no(&p, &st, t, 1, S);
	assert_int_equal(d.remaining, 0);
	assert_int_equal(d.used, 5);
	assert_int_equal(d.reset_ns, 5 * S);
	no(&p, &st, t, 5, 5 * S);
	no(&p, &st, t + S / 2, 1, S / 2);
	no(&p, &st, t + S / 2, 2, 3 * S / 2);
	d = yes(&p, &st, t + S, 1);
	assert_int_equal(d.remaining, 0);
	/* half a token has leaked: remaining is whole tokens (floor) */
	d = peek(&p, &st, t + 3 * S / 2);
	assert_int_equal(d.remaining, 0);
	assert_int_equal(d.used, 5);
	assert_int_equal(d.reset_ns, 9 * S / 2);
	d = peek(&p, &st, t + 2 * S);
	assert_int_equal(d.remaining, 1);
	assert_int_equal(d.reset_ns, 4 * S);
	/* cost 0 passes on a full bucket */
	yes(&p, &st, t + S, 0);
}

static void test_token(void **state)
{
	(void)state;
	struct lt_bucket_policy p = pol(LT_ALGO_TOKEN, 5, 1, S, 0);
	struct lt_bucket_state st;
	int64_t t = 100 * S;
	lt_bucket_fresh(&p, t, &st);
	for (int64_t i = 1; i <= 5; i++) {
		struct lt_bucket_decision d = yes(&p, &st, t, 1);
		assert_int_equal(d.remaining, 5 - i);
		assert_int_equal(d.reset_ns, i * S); /* until full again */
	}
	assert_int_equal(st.level, 0);
	no(&p, &st, t, 1, S);
	no(&p, &st, t, 3, 3 * S);
	no(&p, &st, t + 2 * S + 1, 3, S - 1);
	yes(&p, &st, t + 3 * S, 3);
	/* refills stop at capacity */
	struct lt_bucket_decision d = peek(&p, &st, t + 1000 * S);
	assert_int_equal(d.remaining, 5);
	assert_int_equal(d.reset_ns, 0);
	for (int i = 0; i < 5; i++)
		yes(&p, &st, t + 1000 * S, 1);
	no(&p, &st, t + 1000 * S, 1, S);
	yes(&p, &st, t + 1000 * S, 0);
}

static void test_fixed(void **state)
{
	(void)state;
	struct lt_bucket_policy p = pol(LT_ALGO_FIXED, 5, 0, 60 * S, 0);
	struct lt_bucket_state st;
	int64_t t = 90 * S; /* window [60 s, 120 s) */
	lt_bucket_fresh(&p, t, &st);
	for (int64_t i = 1; i <= 5; i++) {
		struct lt_bucket_decision d = yes(&p, &st, t, 1);
		assert_int_equal(d.remaining, 5 - i);
		assert_int_equal(d.reset_ns, 30 * S);
	}
	no(&p, &st, t, 1, 30 * S);
	no(&p, &st, 120 * S - 1, 1, 1);
	no(&p, &st, 120 * S - 1, 5, 1);
	/* the next calendar window: all five again */
	for (int i = 0; i < 5; i++)
		yes(&p, &st, 120 * S, 1);
	assert_int_equal(st.window, 120 * S);
	no(&p, &st, 150 * S, 1, 30 * S);
	yes(&p, &st, 150 * S, 0);
	/* cost larger than what is left, smaller than capacity: next window */
	yes(&p, &st, 181 * S, 3);
	no(&p, &st, 181 * S, 3, 59 * S);
}

/* The table of bucket.h: rate 1 per 1 s, burst 4. */
static void test_gcra_table(void **state)
{
	(void)state;
	struct lt_bucket_policy p = pol(LT_ALGO_GCRA, 0, 1, S, 4);
	struct lt_bucket_state st;
	lt_bucket_fresh(&p, 0, &st);
	for (int64_t i = 1; i <= 5; i++) {
		struct lt_bucket_decision d = yes(&p, &st, 0, 1);
		assert_int_equal(d.limit, 5);
		assert_int_equal(d.remaining, 5 - i);
		assert_int_equal(d.reset_ns, i * S); /* TAT - now */
	}
	assert_int_equal(st.level, 5 * S); /* TAT */
	/* sixth at t=0: refused, retry exactly TAT - tolerance - now = 5 - 4 - 0 */
	no(&p, &st, 0, 1, S);
	no(&p, &st, S / 2, 1, S / 2);
	no(&p, &st, 0, 2, 2 * S);
	/* t = 3 s: TAT 5 s, TAT - now = 2 s <= tolerance 4 s: admitted, TAT 6 s */
	struct lt_bucket_decision d = yes(&p, &st, 3 * S, 1);
	assert_int_equal(st.level, 6 * S);
	assert_int_equal(d.remaining, 2); /* ceil((TAT - now) / T) = 3 used */
	/* t = 3.1 s: TAT - now = 2.9 s: admitted, TAT 7 s */
	d = yes(&p, &st, 3100 * MS, 1);
	assert_int_equal(st.level, 7 * S);
	assert_int_equal(d.remaining, 1);
	/* again at 3.1 s: TAT - now = 3.9 s: admitted, TAT 8 s */
	d = yes(&p, &st, 3100 * MS, 1);
	assert_int_equal(d.remaining, 0);
	/* again: TAT - now = 4.9 s > 4 s: refused until 8 - 4 = 4 s */
	no(&p, &st, 3100 * MS, 1, 900 * MS);
	yes(&p, &st, 4 * S, 1);
	no(&p, &st, 4 * S, 1, S);
	/* the whole burst is back once TAT has passed */
	d = peek(&p, &st, 9 * S);
	assert_int_equal(d.remaining, 5);
	assert_int_equal(d.reset_ns, 0);
	for (int i = 0; i < 5; i++)
		yes(&p, &st, 9 * S, 1);
	no(&p, &st, 9 * S, 1, S);
	/* cost 5 = burst + 1 fits a fresh key, cost 6 never fits */
	lt_bucket_fresh(&p, 0, &st);
	yes(&p, &st, 0, 5);
	no(&p, &st, 0, 5, 5 * S);
	d.limit = 0;
	assert_int_equal(lt_bucket_admit(&p, &st, 0, 6, &d), LT_ERANGE);
	assert_int_equal(d.limit, 5);
}

/* nginx limit_req: excess = excess - rate × elapsed + 1, refused when > burst. */
static void test_gcra_matches_nginx(void **state)
{
	(void)state;
	struct lt_bucket_policy p = pol(LT_ALGO_GCRA, 0, 10, S, 3); /* rate=10r/s burst=3 */
	struct lt_bucket_state st;
	uint64_t x = 0x9E3779B97F4A7C15u;
	int64_t t = 0, excess = -1; /* milli-requests; -1: no node yet */
	int64_t last = 0;
	lt_bucket_fresh(&p, t, &st);
	for (int i = 0; i < 5000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		t += (int64_t)(x % 250) * MS;
		bool nginx;
		int64_t e = 0;
		if (excess < 0) {
			nginx = true;
		} else {
			e = excess - 10 * ((t - last) / MS) + 1000;
			if (e < 0)
				e = 0;
			nginx = e <= 3000;
		}
		struct lt_bucket_decision d;
		assert_int_equal(lt_bucket_admit(&p, &st, t, 1, &d), LT_OK);
		if (d.allowed != nginx)
			fail_msg("step %d at %lld ms: nginx %d, gcra %d", i, (long long)(t / MS),
				 nginx, d.allowed);
		if (nginx) {
			excess = e;
			last = t;
		}
	}
}

/* Exact TAT with a fractional emission interval: T = 1/3 s. */
static void test_gcra_fraction(void **state)
{
	(void)state;
	struct lt_bucket_policy p = pol(LT_ALGO_GCRA, 0, 3, S, 2);
	struct lt_bucket_state st;
	lt_bucket_fresh(&p, 0, &st);
	yes(&p, &st, 0, 1);
	assert_int_equal(st.level, 333333333); /* TAT = 333333333 + 1/3 ns */
	assert_int_equal(st.carry, 1);
	yes(&p, &st, 0, 1);
	assert_int_equal(st.level, 666666666);
	assert_int_equal(st.carry, 2);
	yes(&p, &st, 0, 1);
	assert_int_equal(st.level, S); /* exactly 1 s: nothing lost */
	assert_int_equal(st.carry, 0);
	/* fourth: passes once TAT + T - now <= 3T, at now >= T: 333333333.33 ns */
	no(&p, &st, 0, 1, 333333334);
	/* 3 s of back-to-back demand every ms: exactly 3 + 3 × 3 = 12 admitted */
	lt_bucket_fresh(&p, 0, &st);
	int n = 0;
	for (int64_t t = 0; t <= 3 * S; t += MS) {
		struct lt_bucket_decision d;
		assert_int_equal(lt_bucket_admit(&p, &st, t, 1, &d), LT_OK);
		n += d.allowed;
	}
	assert_int_equal(n, 12);
}

/* The Java reference's defaults: leaky, capacity 1000, leaking 10 tokens/s. */
static void test_reference_defaults(void **state)
{
	(void)state;
	struct lt_bucket_policy p = pol(LT_ALGO_LEAKY, 1000, 10, S, 0);
	char why[64];
	assert_int_equal(lt_bucket_policy_check(&p, why, sizeof why), LT_OK);
	struct lt_bucket_state st;
	int64_t t = 1700000000 * S;
	lt_bucket_fresh(&p, t, &st);
	struct lt_bucket_decision d = yes(&p, &st, t, 1000);
	assert_int_equal(d.remaining, 0);
	assert_int_equal(d.used, 1000);
	assert_int_equal(d.reset_ns, 100 * S);
	/* the next 10 tokens: refused, retry exactly 1 s (10 tokens at 10/s) */
	d = no(&p, &st, t, 10, S);
	assert_int_equal(d.remaining, 0);
	/* one token would wait 100 ms (the reference rounded to 1 s) */
	no(&p, &st, t, 1, 100 * MS);
	/* a request larger than the bucket: never a misleading wait */
	assert_int_equal(lt_bucket_admit(&p, &st, t, 1001, &d), LT_ERANGE);
	assert_int_equal(d.limit, 1000);
	assert_false(d.allowed);
	assert_int_equal(d.retry_ns, 0);
	/* after 1 s, 10 tokens pass, then the bucket is full again */
	d = yes(&p, &st, t + S, 10);
	assert_int_equal(d.remaining, 0);
	no(&p, &st, t + S, 1, 100 * MS);
}

/*
 * The fractional leak is carried, never dropped.  Capacity 10, 10 tokens/s,
 * polled every 1 ms with cost 0 for 1 s: exactly 10 tokens leak (the
 * reference leaked floor(10 × 0.001) = 0 per poll and reset its clock, so
 * it leaked nothing at all).
 */
static void test_carry_ms_polls(void **state)
{
	(void)state;
	struct lt_bucket_policy p = pol(LT_ALGO_LEAKY, 10, 10, S, 0);
	struct lt_bucket_state st;
	lt_bucket_fresh(&p, 0, &st);
	yes(&p, &st, 0, 10);
	for (int64_t ms = 1; ms <= 1000; ms++) {
		struct lt_bucket_decision d = yes(&p, &st, ms * MS, 0);
		assert_int_equal(st.level, 10 * LT_MICRO - ms * 10000);
		assert_int_equal(d.remaining, ms / 100);
	}
	assert_int_equal(st.level, 0);
	assert_true(lt_bucket_expired(&p, &st, S));
	for (int i = 0; i < 10; i++)
		yes(&p, &st, S, 1);
	no(&p, &st, S, 1, 100 * MS);
}

/*
 * Below one micro-token per poll: rate 1 token per 7 s leaks 1 µT per 7000
 * ns, so polling every ns moves the level only through the carry.  The
 * polled state ends bit-identical to one advanced in a single step.
 */
static void test_carry_sub_micro(void **state)
{
	(void)state;
	for (int k = 0; k < 2; k++) {
		enum lt_bucket_algo a = k ? LT_ALGO_TOKEN : LT_ALGO_LEAKY;
		struct lt_bucket_policy p = pol(a, 1, 1, 7 * S, 0);
		struct lt_bucket_state st, once;
		lt_bucket_fresh(&p, 0, &st);
		yes(&p, &st, 0, 1); /* leaky: full; token: empty */
		once = st;
		for (int64_t t = 1; t <= 7000; t++)
			yes(&p, &st, t, 0);
		assert_int_equal(st.level, k ? 1 : LT_MICRO - 1);
		yes(&p, &once, 7000, 0);
		assert_memory_equal(&st, &once, sizeof st);
		for (int64_t t = 7001; t <= 7 * S; t += 999983) /* a prime stride */
			yes(&p, &st, t, 0);
		yes(&p, &st, 7 * S, 0);
		assert_int_equal(st.level, k ? LT_MICRO : 0);
		assert_int_equal(st.carry, 0);
	}
}

static uint64_t xorshift(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Polling with cost 0 between requests changes no decision and no state. */
static void test_poll_invariance(void **state)
{
	(void)state;
	uint64_t x = 12345;
	for (size_t i = 0; i < 4; i++) {
		struct lt_bucket_policy p = pol(all_algos[i], 7, 3, 700 * MS + 1, 2);
		struct lt_bucket_state polled, plain;
		int64_t t = 5 * S;
		lt_bucket_fresh(&p, t, &polled);
		plain = polled;
		for (int step = 0; step < 3000; step++) {
			t += (int64_t)(xorshift(&x) % (300 * MS));
			int64_t cost = (int64_t)(xorshift(&x) % 4);
			if (cost == 0) {
				yes(&p, &polled, t, 0);
				continue;
			}
			struct lt_bucket_decision d1, d2;
			assert_int_equal(lt_bucket_admit(&p, &polled, t, cost, &d1), LT_OK);
			assert_int_equal(lt_bucket_admit(&p, &plain, t, cost, &d2), LT_OK);
			assert_memory_equal(&d1, &d2, sizeof d1);
			if (d1.allowed)
				assert_memory_equal(&polled, &plain, sizeof polled);
		}
	}
}

/* Load a bucket, then let it idle: expired exactly when reset_ns reaches 0,
 * and then it admits exactly what a fresh bucket admits. */
static void test_idle_returns_fresh(void **state)
{
	(void)state;
	for (size_t i = 0; i < 4; i++) {
		struct lt_bucket_policy p = pol(all_algos[i], 9, 2, 3 * S + 7, 8);
		struct lt_bucket_state st, fresh;
		int64_t t = 77 * S + 5;
		lt_bucket_fresh(&p, t, &st);
		yes(&p, &st, t, 4);
		yes(&p, &st, t + 10 * MS, 3);
		t += 20 * MS;
		struct lt_bucket_decision d = peek(&p, &st, t);
		int64_t r = d.reset_ns;
		assert_true(r > 0);
		assert_false(lt_bucket_expired(&p, &st, t));
		assert_false(lt_bucket_expired(&p, &st, t + r - 1));
		assert_int_equal(peek(&p, &st, t + r - 1).reset_ns, 1);
		assert_true(lt_bucket_expired(&p, &st, t + r));
		assert_int_equal(peek(&p, &st, t + r).reset_ns, 0);
		assert_true(lt_bucket_expired(&p, &st, t + r + 1000 * S));
		/* from here on it behaves exactly like a fresh bucket */
		int64_t u = t + r + 1234;
		lt_bucket_fresh(&p, u, &fresh);
		for (int64_t c = 9; c >= 0; c--) {
			struct lt_bucket_decision a, b;
			assert_int_equal(lt_bucket_admit(&p, &st, u, c, &a), LT_OK);
			assert_int_equal(lt_bucket_admit(&p, &fresh, u, c, &b), LT_OK);
			assert_memory_equal(&a, &b, sizeof a);
			assert_memory_equal(&st, &fresh, sizeof st);
			u += 333 * MS;
		}
	}
}

/* A clock stepping backwards is clamped: no negative leak, no extra admits. */
static void test_clock_backwards(void **state)
{
	(void)state;
	for (size_t i = 0; i < 4; i++) {
		struct lt_bucket_policy p = pol(all_algos[i], 4, 1, S, 3);
		struct lt_bucket_state st;
		int64_t t = 61 * S;
		lt_bucket_fresh(&p, t, &st);
		yes(&p, &st, t, 4);
		struct lt_bucket_decision at = no(&p, &st, t, 1, -1);
		/* 5 s earlier: the same state, the wait counted on the caller's clock */
		struct lt_bucket_decision back = no(&p, &st, t - 5 * S, 1, at.retry_ns + 5 * S);
		assert_int_equal(back.remaining, at.remaining);
		assert_int_equal(back.reset_ns, at.reset_ns + 5 * S);
		/* a cost-0 admission in the past moves nothing backwards */
		struct lt_bucket_state before = st;
		yes(&p, &st, t - 5 * S, 0);
		assert_memory_equal(&before, &st, sizeof st);
		/* a clock before the epoch is read as the epoch */
		no(&p, &st, -S, 1, at.retry_ns + t + S);
		/* forward again: exactly as if the clock had never stepped */
		yes(&p, &st, t + at.retry_ns, 1);
	}
	/* a window never reopens because the clock went back into the last one */
	struct lt_bucket_policy p = pol(LT_ALGO_FIXED, 2, 0, 60 * S, 0);
	struct lt_bucket_state st;
	lt_bucket_fresh(&p, 61 * S, &st);
	yes(&p, &st, 61 * S, 2);
	no(&p, &st, 59 * S, 1, 61 * S);
	no(&p, &st, 0, 1, 120 * S);
	/* leaky: the level after a step back is the level at the last update */
	p = pol(LT_ALGO_LEAKY, 10, 1, S, 0);
	lt_bucket_fresh(&p, 10 * S, &st);
	yes(&p, &st, 10 * S, 10);
	assert_int_equal(peek(&p, &st, 3 * S).remaining, 0);
	assert_int_equal(peek(&p, &st, 12 * S).remaining, 2);
}

static void test_cost_bounds(void **state)
{
	(void)state;
	for (size_t i = 0; i < 4; i++) {
		struct lt_bucket_policy p = pol(all_algos[i], 6, 1, S, 5);
		struct lt_bucket_state st, before;
		struct lt_bucket_decision d;
		lt_bucket_fresh(&p, S, &st);
		before = st;
		static const int64_t huge[] = {7, 8, 1000, INT64_MAX / LT_MICRO + 1, INT64_MAX};
		for (size_t k = 0; k < sizeof huge / sizeof huge[0]; k++) {
			memset(&d, 0x5A, sizeof d);
			assert_int_equal(lt_bucket_admit(&p, &st, S, huge[k], &d), LT_ERANGE);
			assert_int_equal(d.limit, 6);
			assert_false(d.allowed);
			assert_int_equal(d.retry_ns, 0);
			assert_int_equal(d.remaining, 6);
			assert_memory_equal(&before, &st, sizeof st);
		}
		assert_int_equal(lt_bucket_admit(&p, &st, S, -1, &d), LT_EINVAL);
		assert_false(d.allowed);
		assert_int_equal(lt_bucket_admit(&p, &st, S, INT64_MIN, &d), LT_EINVAL);
		assert_memory_equal(&before, &st, sizeof st);
		/* cost == limit on a fresh bucket passes; then cost 0 still does */
		yes(&p, &st, S, 6);
		struct lt_bucket_decision z = yes(&p, &st, S, 0);
		assert_int_equal(z.remaining, 0);
		/* ERANGE even when the bucket is full: it could never pass */
		assert_int_equal(lt_bucket_admit(&p, &st, S, 7, &d), LT_ERANGE);
		assert_int_equal(d.remaining, 0);
		assert_int_equal(lt_bucket_admit(&p, NULL, S, 1, &d), LT_EINVAL);
		assert_int_equal(lt_bucket_admit(&p, &st, S, 1, NULL), LT_EINVAL);
		assert_int_equal(lt_bucket_admit(NULL, &st, S, 1, &d), LT_EINVAL);
	}
}

static void test_refunds(void **state)
{
	(void)state;
	struct lt_bucket_state st;
	struct lt_bucket_policy p = pol(LT_ALGO_LEAKY, 10, 1, S, 0);
	lt_bucket_fresh(&p, 0, &st);
	yes(&p, &st, 0, 8);
	lt_bucket_refund(&p, &st, 0, 3);
	assert_int_equal(st.level, 5 * LT_MICRO);
	lt_bucket_refund(&p, &st, S / 2, 0);
	lt_bucket_refund(&p, &st, S / 2, -4);
	assert_int_equal(st.level, 5 * LT_MICRO); /* nothing, not even the leak */
	lt_bucket_refund(&p, &st, S / 2, 1);
	assert_int_equal(st.level, 7 * LT_MICRO / 2); /* leaked 0.5, refunded 1 */
	lt_bucket_refund(&p, &st, S / 2, 9);
	assert_int_equal(st.level, 0); /* never below 0 */
	assert_int_equal(st.carry, 0);
	assert_true(lt_bucket_expired(&p, &st, S / 2));
	lt_bucket_refund(&p, &st, S / 2, INT64_MAX);
	assert_int_equal(st.level, 0);

	p = pol(LT_ALGO_TOKEN, 10, 1, S, 0);
	lt_bucket_fresh(&p, 0, &st);
	yes(&p, &st, 0, 8);
	lt_bucket_refund(&p, &st, 0, 3);
	assert_int_equal(st.level, 5 * LT_MICRO);
	lt_bucket_refund(&p, &st, S, 7);
	assert_int_equal(st.level, 10 * LT_MICRO); /* never above capacity */
	assert_true(lt_bucket_expired(&p, &st, S));
	lt_bucket_refund(&p, &st, S, INT64_MAX);
	assert_int_equal(st.level, 10 * LT_MICRO);

	/* FIXED: only within the window that was charged */
	p = pol(LT_ALGO_FIXED, 10, 0, 60 * S, 0);
	lt_bucket_fresh(&p, 61 * S, &st);
	yes(&p, &st, 61 * S, 8);
	lt_bucket_refund(&p, &st, 62 * S, 3);
	assert_int_equal(st.level, 5 * LT_MICRO);
	assert_int_equal(peek(&p, &st, 62 * S).remaining, 5);
	lt_bucket_refund(&p, &st, 62 * S, 30);
	assert_int_equal(st.level, 0);
	yes(&p, &st, 119 * S, 9);
	lt_bucket_refund(&p, &st, 121 * S, 9); /* the window rolled: nothing to give */
	assert_int_equal(st.window, 120 * S);
	assert_int_equal(st.level, 0);
	assert_int_equal(peek(&p, &st, 121 * S).remaining, 10);
	yes(&p, &st, 121 * S, 10);
	no(&p, &st, 121 * S, 1, 59 * S);

	/* GCRA: TAT back by cost × T, not before now */
	p = pol(LT_ALGO_GCRA, 0, 1, S, 4);
	lt_bucket_fresh(&p, 0, &st);
	yes(&p, &st, 0, 5);
	no(&p, &st, 0, 1, S);
	lt_bucket_refund(&p, &st, 0, 2);
	assert_int_equal(st.level, 3 * S);
	yes(&p, &st, 0, 2);
	no(&p, &st, 0, 1, S);
	lt_bucket_refund(&p, &st, S / 2, 7);
	assert_int_equal(st.level, S / 2); /* not before now */
	assert_true(lt_bucket_expired(&p, &st, S / 2));
	assert_int_equal(peek(&p, &st, S / 2).remaining, 5);

	/* a refund with the clock stepped back does not move time back */
	p = pol(LT_ALGO_LEAKY, 10, 1, S, 0);
	lt_bucket_fresh(&p, 10 * S, &st);
	yes(&p, &st, 10 * S, 10);
	lt_bucket_refund(&p, &st, 5 * S, 1);
	assert_int_equal(st.last_ns, 10 * S);
	assert_int_equal(st.level, 9 * LT_MICRO);
}

/* Windows start at multiples of period_ns since the epoch. */
static void test_fixed_alignment(void **state)
{
	(void)state;
	static const int64_t periods[] = {MS, 7 * MS, S, 60 * S, 3600 * S, 86400 * S, TEN_YEARS};
	static const int64_t nows[] = {
		0, 1, 59 * S, 1700000000 * S + 987654321, INT64_MAX / 2, INT64_MAX - 2};
	for (size_t i = 0; i < sizeof periods / sizeof periods[0]; i++) {
		for (size_t j = 0; j < sizeof nows / sizeof nows[0]; j++) {
			int64_t P = periods[i], now = nows[j];
			struct lt_bucket_policy p = pol(LT_ALGO_FIXED, 3, 0, P, 0);
			struct lt_bucket_state st;
			lt_bucket_fresh(&p, now, &st);
			int64_t w = now - now % P;
			assert_int_equal(st.window, w);
			yes(&p, &st, now, 3);
			assert_int_equal(st.window, w);
			int64_t end = w > INT64_MAX - P ? INT64_MAX : w + P;
			struct lt_bucket_decision d = no(&p, &st, now, 1, end - now);
			assert_int_equal(d.reset_ns, end - now);
			if (end - now > 1)
				no(&p, &st, end - 1, 1, 1);
		}
	}
	/* a per-minute window is the calendar minute */
	struct lt_bucket_policy p = pol(LT_ALGO_FIXED, 1, 0, 60 * S, 0);
	struct lt_bucket_state st;
	lt_bucket_fresh(&p, 0, &st);
	yes(&p, &st, 59 * S + 999999999, 1);
	yes(&p, &st, 60 * S, 1);
	no(&p, &st, 60 * S, 1, 60 * S);
}

/* Capacity 10^12, a 10-year period, a clock at INT64_MAX / 2: no overflow. */
static void test_huge_values(void **state)
{
	(void)state;
	const int64_t now = INT64_MAX / 2;
	struct lt_bucket_state st;
	struct lt_bucket_decision d;

	/* leaky: 1 token per 10 years; draining 10^12 takes past the end of
	 * int64 time, so reset saturates at INT64_MAX - now */
	struct lt_bucket_policy p = pol(LT_ALGO_LEAKY, TOKENS_MAX, 1, TEN_YEARS, 0);
	lt_bucket_fresh(&p, now, &st);
	d = yes(&p, &st, now, TOKENS_MAX);
	assert_int_equal(d.remaining, 0);
	assert_int_equal(d.used, TOKENS_MAX);
	assert_int_equal(d.reset_ns, INT64_MAX - now);
	assert_int_equal(st.level, TOKENS_MAX * LT_MICRO);
	no(&p, &st, now, 1, TEN_YEARS);
	no(&p, &st, now + TEN_YEARS / 2, 1, TEN_YEARS / 2);
	yes(&p, &st, now + TEN_YEARS, 1);
	/* a retry beyond the end of time saturates */
	d = no(&p, &st, now + TEN_YEARS, 1000, -1);
	assert_int_equal(d.retry_ns, INT64_MAX - now - TEN_YEARS);

	/* leaky at 10^12 tokens per 10 years: 1 token per 315576 ns */
	p = pol(LT_ALGO_LEAKY, TOKENS_MAX, TOKENS_MAX, TEN_YEARS, 0);
	lt_bucket_fresh(&p, now, &st);
	d = yes(&p, &st, now, TOKENS_MAX);
	assert_int_equal(d.reset_ns, TEN_YEARS);
	no(&p, &st, now, 1, 315576);
	d = peek(&p, &st, now + TEN_YEARS / 2);
	assert_int_equal(d.remaining, TOKENS_MAX / 2);
	assert_true(lt_bucket_expired(&p, &st, now + TEN_YEARS));

	/* token: from full, 10^12 at once, refilled over 10 years */
	p = pol(LT_ALGO_TOKEN, TOKENS_MAX, TOKENS_MAX, TEN_YEARS, 0);
	lt_bucket_fresh(&p, now, &st);
	d = yes(&p, &st, now, TOKENS_MAX);
	assert_int_equal(d.reset_ns, TEN_YEARS);
	no(&p, &st, now, TOKENS_MAX, TEN_YEARS);
	no(&p, &st, now, 3, 3 * 315576);
	p = pol(LT_ALGO_TOKEN, TOKENS_MAX, 1, TEN_YEARS, 0);
	lt_bucket_fresh(&p, now, &st);
	yes(&p, &st, now, TOKENS_MAX);
	d = no(&p, &st, now, 1, TEN_YEARS);
	assert_int_equal(d.reset_ns, INT64_MAX - now);
	/* a bucket idle for all of int64 time refills without overflow */
	lt_bucket_fresh(&p, 0, &st);
	yes(&p, &st, 0, TOKENS_MAX);
	d = peek(&p, &st, INT64_MAX - 1);
	assert_int_equal(d.remaining, (INT64_MAX - 1) / TEN_YEARS);
	assert_int_equal(d.reset_ns, 1); /* saturated */

	/* fixed: 10^12 per 10-year window */
	p = pol(LT_ALGO_FIXED, TOKENS_MAX, 0, TEN_YEARS, 0);
	lt_bucket_fresh(&p, now, &st);
	yes(&p, &st, now, TOKENS_MAX);
	int64_t end = now - now % TEN_YEARS + TEN_YEARS;
	no(&p, &st, now, 1, end - now);
	yes(&p, &st, end, TOKENS_MAX);

	/* gcra: burst 10^12 - 1 at 10^12 per 10 years */
	p = pol(LT_ALGO_GCRA, 0, TOKENS_MAX, TEN_YEARS, TOKENS_MAX - 1);
	lt_bucket_fresh(&p, now, &st);
	d = yes(&p, &st, now, TOKENS_MAX);
	assert_int_equal(d.limit, TOKENS_MAX);
	assert_int_equal(d.remaining, 0);
	assert_int_equal(d.reset_ns, TEN_YEARS);
	no(&p, &st, now, 1, 315576);
	no(&p, &st, now, TOKENS_MAX, TEN_YEARS);
	/* the longest GCRA span the check allows, 14 × 10 years */
	const int64_t today = 1700000000 * S;
	p = pol(LT_ALGO_GCRA, 0, 1, TEN_YEARS, 13);
	lt_bucket_fresh(&p, today, &st);
	yes(&p, &st, today, 14);
	no(&p, &st, today, 1, TEN_YEARS);
	/* from INT64_MAX / 2 the next TAT would pass INT64_MAX: never */
	lt_bucket_fresh(&p, now, &st);
	yes(&p, &st, now, 14);
	d = no(&p, &st, now + TEN_YEARS, 1, -1);
	assert_int_equal(d.retry_ns, INT64_MAX - now - TEN_YEARS);
	assert_int_equal(d.remaining, 0);

	/* the end of int64 time: now + any duration stays <= INT64_MAX */
	for (size_t i = 0; i < 4; i++) {
		p = pol(all_algos[i], 5, 1, S, 4);
		int64_t t = INT64_MAX - 10;
		lt_bucket_fresh(&p, t, &st);
		struct lt_bucket_decision e;
		if (all_algos[i] == LT_ALGO_GCRA) {
			/* the TAT would pass INT64_MAX: refused, "never" */
			e = no(&p, &st, t, 1, 10);
			assert_int_equal(e.remaining, 0);
			continue;
		}
		e = yes(&p, &st, t, 5);
		assert_int_equal(e.reset_ns, 10); /* saturated */
		e = no(&p, &st, t, 1, 10);
		/* at INT64_MAX itself every duration is 0 */
		assert_int_equal(lt_bucket_admit(&p, &st, INT64_MAX, 1, &e), LT_OK);
		fields_ok(&e, INT64_MAX);
		assert_false(e.allowed);
		assert_int_equal(e.retry_ns, 0);
		assert_int_equal(e.reset_ns, 0);
		assert_int_equal(e.remaining, 0);
	}
}

/*
 * A policy reloaded under a live state: an over-full bucket reads as a
 * bucket in debt up to one capacity beyond full (the state cannot tell a
 * smaller capacity from a forced charge), a GCRA TAT beyond the new debt
 * bound as the farthest one reachable when it was written — the same at
 * every later now, so reset and retry stay exact.
 */
static void test_policy_reload(void **state)
{
	(void)state;
	struct lt_bucket_state st;
	struct lt_bucket_policy p = pol(LT_ALGO_LEAKY, 10, 1, S, 0);
	lt_bucket_fresh(&p, 0, &st);
	yes(&p, &st, 0, 10);
	p.capacity = 4; /* level 10 reads as 8: 4 in debt */
	struct lt_bucket_decision d = peek(&p, &st, 0);
	assert_int_equal(d.limit, 4);
	assert_int_equal(d.remaining, 0);
	assert_int_equal(d.used, 4);
	assert_int_equal(d.reset_ns, 8 * S);
	no(&p, &st, 0, 1, 5 * S);
	no(&p, &st, 4 * S, 1, S);
	yes(&p, &st, 5 * S, 1);
	/* within the bound the level is kept as it is */
	p.capacity = 6;
	lt_bucket_fresh(&p, 0, &st);
	st.level = 10 * LT_MICRO;
	assert_int_equal(peek(&p, &st, 0).reset_ns, 10 * S);

	p = pol(LT_ALGO_TOKEN, 10, 1, S, 0);
	lt_bucket_fresh(&p, 0, &st);
	p.capacity = 3;
	d = peek(&p, &st, 0);
	assert_int_equal(d.remaining, 3);
	assert_int_equal(d.reset_ns, 0);
	yes(&p, &st, 0, 3);
	no(&p, &st, 0, 1, S);

	p = pol(LT_ALGO_GCRA, 0, 1, S, 9);
	lt_bucket_fresh(&p, 0, &st);
	yes(&p, &st, 0, 10); /* TAT 10 s */
	p.burst = 1;	     /* the farthest TAT reachable at 0 is now 2 × 2 s */
	d = peek(&p, &st, 0);
	assert_int_equal(d.limit, 2);
	assert_int_equal(d.remaining, 0);
	assert_int_equal(d.used, 2);
	assert_int_equal(d.reset_ns, 4 * S);
	assert_false(lt_bucket_expired(&p, &st, 4 * S - 1));
	assert_true(lt_bucket_expired(&p, &st, 4 * S));
	d = peek(&p, &st, S);
	assert_int_equal(d.reset_ns, 3 * S);
	assert_int_equal(d.remaining, 0);
	d = peek(&p, &st, 3 * S);
	assert_int_equal(d.remaining, 1);
	no(&p, &st, 0, 1, 3 * S);
	no(&p, &st, 0, 2, 4 * S);

	p = pol(LT_ALGO_FIXED, 3, 0, 60 * S, 0);
	lt_bucket_fresh(&p, 61 * S, &st);
	yes(&p, &st, 61 * S, 3);
	p.period_ns = 7 * S; /* windows now start at 56 s, 63 s, ... */
	d = peek(&p, &st, 61 * S);
	assert_int_equal(d.remaining, 3);
	yes(&p, &st, 61 * S, 3);
	assert_int_equal(st.window, 56 * S);
	no(&p, &st, 61 * S, 1, 2 * S);
}

/* A state written by bucket.c is at most one capacity beyond full. */
static void in_debt_bound(const struct lt_bucket_policy *p, const struct lt_bucket_state *st)
{
	__int128 cap_m = (__int128)p->capacity * LT_MICRO;
	switch (p->algo) {
	case LT_ALGO_LEAKY:
	case LT_ALGO_FIXED: assert_true(st->level >= 0 && st->level <= 2 * cap_m); break;
	case LT_ALGO_TOKEN: assert_true(st->level >= -cap_m && st->level <= cap_m); break;
	case LT_ALGO_GCRA: {
		__int128 tat = (__int128)st->level * p->rate + st->carry;
		__int128 max = (__int128)st->last_ns * p->rate +
			       2 * (__int128)(p->burst + 1) * p->period_ns;
		assert_true(st->carry >= 0 && st->carry < p->rate);
		assert_true(tat >= (__int128)st->last_ns * p->rate && tat <= max);
		break;
	}
	}
}

/*
 * Debt, the same numbers for LEAKY, TOKEN and GCRA: capacity 1000 (GCRA
 * burst 999), 10 tokens/s.  Admit 100 at t = 0, then force a charge of 1500
 * (the call used 1600): the bucket is 600 beyond full.  A cost of 1 waits
 * until 601 tokens have leaked or refilled, (1600 - 999) / 10 s = 60.1 s.
 */
static void test_debt(void **state)
{
	(void)state;
	static const enum lt_bucket_algo algos[] = {LT_ALGO_LEAKY, LT_ALGO_TOKEN, LT_ALGO_GCRA};
	for (size_t i = 0; i < sizeof algos / sizeof algos[0]; i++) {
		enum lt_bucket_algo a = algos[i];
		struct lt_bucket_policy p = pol(a, 1000, 10, S, 999);
		struct lt_bucket_state st, st0, c;
		struct lt_bucket_decision d;
		lt_bucket_fresh(&p, 0, &st);
		yes(&p, &st, 0, 100);
		lt_bucket_charge(&p, &st, 0, 1500);
		in_debt_bound(&p, &st);
		switch (a) {
		case LT_ALGO_LEAKY: assert_int_equal(st.level, 1600 * LT_MICRO); break;
		case LT_ALGO_TOKEN: assert_int_equal(st.level, -600 * LT_MICRO); break;
		default: assert_int_equal(st.level, 160 * S); break; /* TAT */
		}
		st0 = st;
		d = peek(&p, &st, 0);
		assert_int_equal(d.limit, 1000);
		assert_int_equal(d.remaining, 0);
		assert_int_equal(d.used, 1000);
		assert_int_equal(d.reset_ns, 160 * S); /* longer with debt */
		assert_false(lt_bucket_expired(&p, &st, 160 * S - 1));
		assert_true(lt_bucket_expired(&p, &st, 160 * S));
		/* refused while in debt, retry exact (no() checks +-1 ns) */
		d = no(&p, &st, 0, 1, 60100 * MS);
		assert_int_equal(d.used, 1000);
		no(&p, &st, 0, 1000, 160 * S);
		no(&p, &st, 10 * S, 1, 50100 * MS);
		c = st;
		no(&p, &c, 60100 * MS - 1, 1, 1);
		/* cost 0 still passes, and changes nothing but the leak */
		d = yes(&p, &st, 0, 0);
		assert_int_equal(d.remaining, 0);
		assert_int_equal(d.reset_ns, 160 * S);
		assert_memory_equal(&st, &st0, sizeof st);
		/* 60.1 s: exactly one token fits, then none */
		c = st;
		d = yes(&p, &c, 60100 * MS, 1);
		assert_int_equal(d.remaining, 0);
		assert_int_equal(d.reset_ns, 100 * S);
		/* 100 s: 1000 leaked, 600 left: remaining 400 */
		assert_int_equal(peek(&p, &st, 100 * S).remaining, 400);
		assert_int_equal(peek(&p, &st, 100 * S).reset_ns, 60 * S);

		/* a refund from debt pays the debt off first */
		c = st;
		lt_bucket_refund(&p, &c, 0, 300); /* 1300: still 300 beyond full */
		d = peek(&p, &c, 0);
		assert_int_equal(d.remaining, 0);
		assert_int_equal(d.reset_ns, 130 * S);
		no(&p, &c, 0, 1, 30100 * MS);
		lt_bucket_refund(&p, &c, 0, 400); /* 900: 100 left */
		d = peek(&p, &c, 0);
		assert_int_equal(d.remaining, 100);
		assert_int_equal(d.used, 900);
		assert_int_equal(d.reset_ns, 90 * S);
		yes(&p, &c, 0, 100);
		lt_bucket_refund(&p, &c, 0, INT64_MAX);
		assert_true(lt_bucket_expired(&p, &c, 0));
		/* charge then refund of the same amount: the state advanced to now */
		c = st;
		lt_bucket_charge(&p, &c, 5 * S, 250);
		lt_bucket_refund(&p, &c, 5 * S, 250);
		struct lt_bucket_state adv = st;
		yes(&p, &adv, 5 * S, 0);
		assert_memory_equal(&c, &adv, sizeof c);
		/* cost <= 0: nothing at all, not even the leak */
		c = st;
		lt_bucket_charge(&p, &c, 50 * S, 0);
		lt_bucket_charge(&p, &c, 50 * S, -7);
		lt_bucket_charge(&p, &c, 50 * S, INT64_MIN);
		assert_memory_equal(&c, &st, sizeof c);

		/* the bound: at most one capacity beyond full, the rest forgiven */
		lt_bucket_fresh(&p, 0, &st);
		lt_bucket_charge(&p, &st, 0, 1000000);
		in_debt_bound(&p, &st);
		switch (a) {
		case LT_ALGO_LEAKY: assert_int_equal(st.level, 2000 * LT_MICRO); break;
		case LT_ALGO_TOKEN: assert_int_equal(st.level, -1000 * LT_MICRO); break;
		default: assert_int_equal(st.level, 200 * S); break;
		}
		c = st;
		lt_bucket_charge(&p, &st, 0, 1);
		lt_bucket_charge(&p, &st, 0, INT64_MAX);
		assert_memory_equal(&c, &st, sizeof c);
		d = peek(&p, &st, 0);
		assert_int_equal(d.remaining, 0);
		assert_int_equal(d.used, 1000);
		assert_int_equal(d.reset_ns, 200 * S);
		no(&p, &st, 0, 1, 100100 * MS);
		no(&p, &st, 0, 1000, 200 * S);
		/* expiry only once the whole debt has leaked: 200 s */
		assert_false(lt_bucket_expired(&p, &st, 200 * S - 1));
		assert_true(lt_bucket_expired(&p, &st, 200 * S));
		/* a refund of the whole span brings it back */
		c = st;
		lt_bucket_refund(&p, &c, 0, 2000);
		assert_true(lt_bucket_expired(&p, &c, 0));
		/* the bound counts from now: 150 s later 1500 have leaked, and a
		 * second huge charge fills it back to 2000 */
		lt_bucket_charge(&p, &st, 150 * S, 1000000);
		assert_int_equal(peek(&p, &st, 150 * S).reset_ns, 200 * S);
	}
}

/* Fixed window: a debt lasts until the end of its window, the new window
 * starts fresh (the debt is dropped), and a charge after the window of the
 * admission lands in the window of now. */
static void test_debt_fixed(void **state)
{
	(void)state;
	struct lt_bucket_policy p = pol(LT_ALGO_FIXED, 1000, 0, 60 * S, 0);
	struct lt_bucket_state st, c;
	struct lt_bucket_decision d;
	lt_bucket_fresh(&p, 61 * S, &st); /* window [60 s, 120 s) */
	yes(&p, &st, 61 * S, 100);
	lt_bucket_charge(&p, &st, 62 * S, 1500);
	assert_int_equal(st.level, 1600 * LT_MICRO);
	assert_int_equal(st.window, 60 * S);
	d = peek(&p, &st, 62 * S);
	assert_int_equal(d.remaining, 0);
	assert_int_equal(d.used, 1000);
	assert_int_equal(d.reset_ns, 58 * S);
	no(&p, &st, 62 * S, 1, 58 * S);
	no(&p, &st, 62 * S, 1000, 58 * S);
	yes(&p, &st, 62 * S, 0);
	assert_false(lt_bucket_expired(&p, &st, 120 * S - 1));
	/* the next window: the debt is gone */
	assert_true(lt_bucket_expired(&p, &st, 120 * S));
	d = peek(&p, &st, 120 * S);
	assert_int_equal(d.remaining, 1000);
	c = st;
	yes(&p, &c, 120 * S, 1000);
	/* a refund from debt */
	c = st;
	lt_bucket_refund(&p, &c, 63 * S, 700);
	assert_int_equal(c.level, 900 * LT_MICRO);
	assert_int_equal(peek(&p, &c, 63 * S).remaining, 100);
	/* the bound: 2 × capacity */
	c = st;
	lt_bucket_charge(&p, &c, 63 * S, 1000000);
	assert_int_equal(c.level, 2000 * LT_MICRO);
	assert_int_equal(peek(&p, &c, 63 * S).used, 1000);
	lt_bucket_refund(&p, &c, 63 * S, 1500);
	assert_int_equal(c.level, 500 * LT_MICRO);
	/* admitted in [60, 120), settled at 125 s: charged to [120, 180) */
	lt_bucket_fresh(&p, 61 * S, &st);
	yes(&p, &st, 61 * S, 100);
	lt_bucket_charge(&p, &st, 125 * S, 50);
	assert_int_equal(st.window, 120 * S);
	assert_int_equal(st.level, 50 * LT_MICRO);
	assert_int_equal(peek(&p, &st, 125 * S).remaining, 950);
}

/* Debt at the edges: the largest capacity, a charge of INT64_MAX, a clock
 * stepped back, a GCRA bound past the end of int64 time. */
static void test_debt_edges(void **state)
{
	(void)state;
	const int64_t now = INT64_MAX / 2;
	struct lt_bucket_state st;
	struct lt_bucket_decision d;
	for (size_t i = 0; i < 4; i++) {
		struct lt_bucket_policy p =
			pol(all_algos[i], TOKENS_MAX, TOKENS_MAX, TEN_YEARS, TOKENS_MAX - 1);
		lt_bucket_fresh(&p, now, &st);
		lt_bucket_charge(&p, &st, now, INT64_MAX);
		in_debt_bound(&p, &st);
		d = peek(&p, &st, now);
		assert_int_equal(d.remaining, 0);
		assert_int_equal(d.used, TOKENS_MAX);
		switch (all_algos[i]) {
		case LT_ALGO_LEAKY: assert_int_equal(st.level, 2 * TOKENS_MAX * LT_MICRO); break;
		case LT_ALGO_TOKEN: assert_int_equal(st.level, -TOKENS_MAX * LT_MICRO); break;
		case LT_ALGO_FIXED: assert_int_equal(st.level, 2 * TOKENS_MAX * LT_MICRO); break;
		case LT_ALGO_GCRA: assert_int_equal(st.level, now + 2 * TEN_YEARS); break;
		}
		if (all_algos[i] != LT_ALGO_FIXED)
			assert_int_equal(d.reset_ns, 2 * TEN_YEARS);
		no(&p, &st, now, 1, -1);
		no(&p, &st, now, TOKENS_MAX, -1);
		lt_bucket_refund(&p, &st, now, INT64_MAX);
		assert_true(lt_bucket_expired(&p, &st, now));
	}
	/* GCRA with the longest span: 2 × 140 years from today passes the end
	 * of int64 time; the TAT stops at the largest representable */
	const int64_t today = 1700000000 * S;
	struct lt_bucket_policy g = pol(LT_ALGO_GCRA, 0, 1, TEN_YEARS, 13);
	lt_bucket_fresh(&g, today, &st);
	lt_bucket_charge(&g, &st, today, 28);
	assert_int_equal(st.level, INT64_MAX);
	assert_int_equal(st.carry, 0);
	d = peek(&g, &st, today);
	assert_int_equal(d.remaining, 0);
	assert_int_equal(d.reset_ns, INT64_MAX - today);
	d = no(&g, &st, today, 1, -1);
	assert_int_equal(d.retry_ns, INT64_MAX - today); /* never */
	/* a charge with the clock stepped back lands at the last update */
	struct lt_bucket_policy p = pol(LT_ALGO_LEAKY, 10, 1, S, 0);
	lt_bucket_fresh(&p, 10 * S, &st);
	yes(&p, &st, 10 * S, 10);
	lt_bucket_charge(&p, &st, 5 * S, 5);
	assert_int_equal(st.last_ns, 10 * S);
	assert_int_equal(st.level, 15 * LT_MICRO);
	d = no(&p, &st, 5 * S, 1, 11 * S); /* 5 s until 10 s, then 6 s to leak */
	assert_int_equal(d.reset_ns, 20 * S);
	/* an invalid policy is clamped, never UB */
	struct lt_bucket_policy bad = pol(LT_ALGO_TOKEN, -5, 0, 0, -1);
	lt_bucket_charge(&bad, &st, S, INT64_MAX);
	lt_bucket_charge(NULL, &st, S, 3);
	lt_bucket_refund(NULL, &st, S, 3);
	lt_bucket_peek(&bad, &st, S, &d);
	fields_ok(&d, S);
}

/* Greedy demand gets exactly capacity + rate × elapsed, no more, no less. */
static void test_greedy_rate(void **state)
{
	(void)state;
	for (size_t i = 0; i < 4; i++) {
		/* 10 per second; GCRA burst 9 = limit 10; FIXED windows of 1 s */
		struct lt_bucket_policy p = pol(all_algos[i], 10, 10, S, 9);
		struct lt_bucket_state st;
		lt_bucket_fresh(&p, 0, &st);
		int64_t n = 0;
		for (int64_t t = 0; t <= 10 * S; t += MS) {
			struct lt_bucket_decision d;
			do {
				assert_int_equal(lt_bucket_admit(&p, &st, t, 1, &d), LT_OK);
				n += d.allowed;
			} while (d.allowed);
		}
		if (n != 110)
			fail_msg("%s: %lld admitted in 10 s, want 110", lt_bucket_algo_name(p.algo),
				 (long long)n);
	}
}

/*
 * Property: seeded random sequences of (time step, cost) never admit more
 * than the algorithm's bound — LEAKY and TOKEN (from full): capacity +
 * rate × elapsed; FIXED: capacity per window; GCRA: burst + 1 + rate ×
 * elapsed — and refused calls never change the state.  Forced charges
 * (debt) are mixed in: they only lower what is admitted, and leave the
 * state within the debt bound.  Retry is exact, peek agrees with a cost-0
 * admission, expired agrees with reset_ns.
 */
static void test_property(void **state)
{
	(void)state;
	uint64_t x = 0xC0FFEE123456789u;
	static const int64_t periods[] = {MS, 7 * MS + 3, S, 3 * S + 1, 60 * S};
	for (size_t a = 0; a < 4; a++) {
		for (int trial = 0; trial < 150; trial++) {
			int64_t P = periods[xorshift(&x) % 5];
			struct lt_bucket_policy p = pol(
				all_algos[a], 1 + (int64_t)(xorshift(&x) % 20),
				1 + (int64_t)(xorshift(&x) % 10), P, (int64_t)(xorshift(&x) % 10));
			int64_t limit = p.algo == LT_ALGO_GCRA ? p.burst + 1 : p.capacity;
			int64_t t0 = (int64_t)(xorshift(&x) % (INT64_C(1) << 50));
			int64_t t = t0, tmax = t0, admitted = 0, win = t0 / P, in_win = 0;
			struct lt_bucket_state st;
			lt_bucket_fresh(&p, t, &st);
			for (int step = 0; step < 300; step++) {
				uint64_t r = xorshift(&x);
				switch (r % 5) {
				case 0: break;
				case 1: t += (int64_t)(r >> 8) % 1000; break;
				case 2: t += (int64_t)(r >> 8) % (P / p.rate + 1); break;
				case 3: t += (int64_t)(r >> 8) % (3 * P); break;
				case 4: t -= (int64_t)(r >> 8) % P; break; /* clock steps back */
				}
				tmax = t > tmax ? t : tmax;
				uint64_t k = xorshift(&x);
				if (k % 8 == 0) {
					/* a forced charge (the call used more): only ever
					 * fewer admissions, and the state stays bounded */
					lt_bucket_charge(
						&p, &st, t,
						(int64_t)((k >> 8) % (uint64_t)(3 * limit)));
					in_debt_bound(&p, &st);
					continue;
				}
				int64_t cost = (int64_t)(xorshift(&x) % (uint64_t)(limit + 2));
				struct lt_bucket_state before = st;
				struct lt_bucket_decision d, pk;
				lt_bucket_peek(&p, &st, t, &pk);
				assert_int_equal(pk.reset_ns == 0, lt_bucket_expired(&p, &st, t));
				enum lt_err e = lt_bucket_admit(&p, &st, t, cost, &d);
				fields_ok(&d, t);
				assert_int_equal(d.limit, limit);
				assert_int_equal(d.allowed ? pk.remaining - cost : pk.remaining,
						 d.remaining);
				if (e == LT_ERANGE) {
					assert_true(cost > limit);
					assert_false(d.allowed);
				} else {
					assert_int_equal(e, LT_OK);
					assert_int_equal(d.allowed, cost <= pk.remaining);
				}
				if (!d.allowed) {
					assert_memory_equal(&before, &st, sizeof st);
					if (e == LT_OK)
						retry_exact(&p, &st, t, cost, d.retry_ns);
					continue;
				}
				if (cost == 0) {
					assert_int_equal(d.remaining, pk.remaining);
					assert_int_equal(d.reset_ns, pk.reset_ns);
				}
				admitted += cost;
				__int128 el = (__int128)(tmax - t0);
				switch (p.algo) {
				case LT_ALGO_LEAKY:
				case LT_ALGO_TOKEN:
					assert_true((__int128)admitted * P <=
						    (__int128)p.capacity * P +
							    (__int128)p.rate * el);
					break;
				case LT_ALGO_FIXED: {
					int64_t w = (t > st.last_ns ? t : st.last_ns) / P;
					if (w != win) {
						win = w;
						in_win = 0;
					}
					in_win += cost;
					assert_true(in_win <= p.capacity);
					break;
				}
				case LT_ALGO_GCRA:
					assert_true((__int128)admitted * P <=
						    (__int128)limit * P + (__int128)p.rate * el);
					break;
				}
			}
		}
	}
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_policy_check),
		cmocka_unit_test(test_fresh),
		cmocka_unit_test(test_leaky),
		cmocka_unit_test(test_token),
		cmocka_unit_test(test_fixed),
		cmocka_unit_test(test_gcra_table),
		cmocka_unit_test(test_gcra_matches_nginx),
		cmocka_unit_test(test_gcra_fraction),
		cmocka_unit_test(test_reference_defaults),
		cmocka_unit_test(test_carry_ms_polls),
		cmocka_unit_test(test_carry_sub_micro),
		cmocka_unit_test(test_poll_invariance),
		cmocka_unit_test(test_idle_returns_fresh),
		cmocka_unit_test(test_clock_backwards),
		cmocka_unit_test(test_cost_bounds),
		cmocka_unit_test(test_refunds),
		cmocka_unit_test(test_fixed_alignment),
		cmocka_unit_test(test_huge_values),
		cmocka_unit_test(test_policy_reload),
		cmocka_unit_test(test_debt),
		cmocka_unit_test(test_debt_fixed),
		cmocka_unit_test(test_debt_edges),
		cmocka_unit_test(test_greedy_rate),
		cmocka_unit_test(test_property),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
