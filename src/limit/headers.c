/*
 * headers.c — rate-limit response headers.  See headers.h.
 */
#include <stdio.h>
#include <string.h>

#include "limit/headers.h"

#define NS_MS INT64_C(1000000)
#define NS_S INT64_C(1000000000)

int64_t lt_ceil_seconds(int64_t ns)
{
	if (ns <= 0)
		return 0;
	return ns / NS_S + (ns % NS_S != 0);
}

void lt_duration_go(int64_t ns, char *out, size_t cap)
{
	if (ns < 0)
		ns = 0;
	int64_t ms = (ns + NS_MS / 2) / NS_MS;
	if (ms == 0) {
		snprintf(out, cap, "0s");
		return;
	}
	if (ms < 1000) {
		snprintf(out, cap, "%lldms", (long long)ms);
		return;
	}
	int64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, frac = ms % 1000;
	char sec[24];
	if (frac == 0)
		snprintf(sec, sizeof sec, "%llds", (long long)s);
	else {
		/* Go prints the fraction without trailing zeros: 1.5s, 1.25s, 1.125s */
		char f[8];
		snprintf(f, sizeof f, "%03lld", (long long)frac);
		for (int i = 2; i > 0 && f[i] == '0'; i--)
			f[i] = '\0';
		snprintf(sec, sizeof sec, "%lld.%ss", (long long)s, f);
	}
	if (h)
		snprintf(out, cap, "%lldh%lldm%s", (long long)h, (long long)m, sec);
	else if (m)
		snprintf(out, cap, "%lldm%s", (long long)m, sec);
	else
		snprintf(out, cap, "%s", sec);
}

/* remaining/limit as a comparable fraction: a*d < c*b without division. */
static bool tighter(const struct lt_bucket_decision *a, const struct lt_bucket_decision *b)
{
	__int128 l = (__int128)a->remaining * (b->limit > 0 ? b->limit : 1);
	__int128 r = (__int128)b->remaining * (a->limit > 0 ? a->limit : 1);
	return l < r;
}

/* Does decision d bind more than b?  Refused: the refused item that makes
 * the client wait longest; admitted: the lowest remaining share. */
static bool binds_more(const struct lt_bucket_decision *d, const struct lt_bucket_decision *b,
		       bool allowed)
{
	if (!allowed)
		return (!d->allowed && b->allowed) ||
		       (!d->allowed && !b->allowed && d->retry_ns > b->retry_ns);
	return tighter(d, b);
}

static bool is_token_scope(enum lt_limit_scope s)
{
	return s == LT_SCOPE_TOKENS || s == LT_SCOPE_ORG || s == LT_SCOPE_MODEL_TPM;
}

/* The binding item, among all (family < 0) or one family (0 requests,
 * 1 tokens). */
static int binding(const struct lt_limit_plan *p, int family, bool allowed)
{
	int best = -1;
	for (size_t i = 0; i < p->n; i++) {
		if (family >= 0 && is_token_scope(p->scope[i]) != (family == 1))
			continue;
		if (best < 0 ||
		    binds_more(&p->items[i].decision, &p->items[best].decision, allowed))
			best = (int)i;
	}
	return best;
}

int lt_limit_binding(const struct lt_limit_plan *p, bool allowed)
{
	return binding(p, -1, allowed);
}

/* The policy's window in seconds: FIXED its period; the others the time to
 * go from empty to full (or full to empty) at the policy's rate. */
static int64_t window_seconds(const struct lt_bucket_policy *p, int64_t limit)
{
	if (p->algo == LT_ALGO_FIXED || p->rate <= 0)
		return lt_ceil_seconds(p->period_ns);
	__int128 ns = (__int128)p->period_ns * limit / p->rate;
	if (ns > INT64_MAX)
		ns = INT64_MAX;
	return lt_ceil_seconds((int64_t)ns);
}

static int64_t reset_of(const struct lt_bucket_decision *d)
{
	return d->allowed ? d->reset_ns : d->retry_ns;
}

void lt_limit_headers_api(const struct lt_limit_plan *p, bool allowed, struct lt_buf *out)
{
	int i = lt_limit_binding(p, allowed);
	if (i < 0)
		return;
	const struct lt_admit_item *it = &p->items[i];
	const struct lt_bucket_decision *d = &it->decision;
	int64_t reset = lt_ceil_seconds(reset_of(d));
	lt_buf_printf(out,
		      "X-RateLimit-Limit: %lld\r\nX-RateLimit-Remaining: %lld\r\n"
		      "X-RateLimit-Used: %lld\r\nX-RateLimit-Reset: %lld\r\n",
		      (long long)d->limit, (long long)d->remaining, (long long)d->used,
		      (long long)reset);
	lt_buf_printf(out, "RateLimit-Policy: \"%s\";q=%lld;w=%lld\r\n", p->name[i],
		      (long long)d->limit, (long long)window_seconds(&it->policy, d->limit));
	lt_buf_printf(out, "RateLimit: \"%s\";r=%lld;t=%lld\r\n", p->name[i],
		      (long long)d->remaining, (long long)reset);
	if (!allowed)
		lt_buf_printf(out, "Retry-After: %lld\r\n", (long long)(reset > 0 ? reset : 1));
}

void lt_limit_headers_openai(const struct lt_limit_plan *p, bool allowed, struct lt_buf *out)
{
	static const char *const fam[2] = {"requests", "tokens"};
	int64_t retry = 0;
	for (int k = 0; k < 2; k++) {
		int i = binding(p, k, allowed);
		if (i < 0)
			continue;
		const struct lt_bucket_decision *d = &p->items[i].decision;
		char dur[32];
		lt_duration_go(reset_of(d), dur, sizeof dur);
		lt_buf_printf(out,
			      "x-ratelimit-limit-%s: %lld\r\nx-ratelimit-remaining-%s: %lld\r\n"
			      "x-ratelimit-reset-%s: %s\r\n",
			      fam[k], (long long)d->limit, fam[k], (long long)d->remaining, fam[k],
			      dur);
		if (!d->allowed && d->retry_ns > retry)
			retry = d->retry_ns;
	}
	if (!allowed) {
		int64_t s = lt_ceil_seconds(retry);
		int64_t ms = retry / NS_MS + (retry % NS_MS != 0);
		lt_buf_printf(out, "retry-after: %lld\r\nretry-after-ms: %lld\r\n",
			      (long long)(s > 0 ? s : 1), (long long)(ms > 0 ? ms : 1));
	}
}
