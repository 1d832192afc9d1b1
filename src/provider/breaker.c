/*
 * breaker.c — the circuit breaker state machine (pure; contract in
 * breaker.h).  The caller holds the lock and supplies the time.
 *
 * Invariants: ring_len ≤ window, ring_pos < window, ring_pos == ring_len
 * until the ring is full, and `failures` is the number of 1s among the
 * recorded slots.  If the policy's window changes under a live breaker (a
 * reload), the ring is cleared rather than reinterpreted.  Policy values outside their documented ranges are clamped
 * (min_calls to the window, the rest to 1..max) so bad input cannot index
 * past the ring.
 *
 * Half-open accounting: probes_inflight + probes_ok ≤ probes, so exactly
 * `probes` trial calls are made per half-open period (a cancelled one is
 * given back).  An outcome reported while OPEN, or while HALF_OPEN with no
 * probe in flight, belongs to a call let through before the breaker opened:
 * it is ignored, so a slow stale failure cannot extend the open period.
 *
 * Clock: the wall clock may be stepped back (manual clock); if now is before
 * opened_at, opened_at moves to now, so the breaker stays open at most
 * open_ns from the step.
 */
#include <string.h>

#include "provider/breaker.h"

struct policy {
	int window, min_calls, failure_pct, probes;
	int64_t open_ns;
};

static int clamp(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static struct policy sane(const struct lt_breaker_policy *p)
{
	struct policy q;
	q.window = clamp(p->window, 1, LT_BREAKER_WINDOW_MAX);
	q.min_calls = clamp(p->min_calls, 1, q.window);
	q.failure_pct = clamp(p->failure_pct, 1, 100);
	q.probes = clamp(p->probes, 1, 100);
	q.open_ns = p->open_ns > 0 ? p->open_ns : 1;
	return q;
}

const char *lt_breaker_state_name(enum lt_breaker_state s)
{
	switch (s) {
	case LT_BREAKER_CLOSED: return "closed";
	case LT_BREAKER_OPEN: return "open";
	case LT_BREAKER_HALF_OPEN: return "half_open";
	}
	return "unknown";
}

static void ring_clear(struct lt_breaker *b)
{
	memset(b->ring, 0, sizeof b->ring);
	b->ring_len = 0;
	b->ring_pos = 0;
	b->failures = 0;
}

void lt_breaker_init(struct lt_breaker *b)
{
	memset(b, 0, sizeof *b);
	b->state = LT_BREAKER_CLOSED;
}

static void trip(struct lt_breaker *b, int64_t now)
{
	b->state = LT_BREAKER_OPEN;
	b->opened_at = now;
	b->probes_inflight = 0;
	b->probes_ok = 0;
	b->opens++;
}

bool lt_breaker_allow(struct lt_breaker *b, const struct lt_breaker_policy *p, int64_t now,
		      int64_t *retry_in_ns)
{
	struct policy q = sane(p);
	int64_t wait = 0;
	bool ok = false;
	switch (b->state) {
	case LT_BREAKER_CLOSED: ok = true; break;
	case LT_BREAKER_OPEN:
		if (now < b->opened_at)
			b->opened_at = now;
		if (now - b->opened_at < q.open_ns) {
			wait = q.open_ns - (now - b->opened_at);
			break;
		}
		b->state = LT_BREAKER_HALF_OPEN;
		b->probes_inflight = 0;
		b->probes_ok = 0;
		/* fall through */
	case LT_BREAKER_HALF_OPEN:
		if (b->probes_inflight + b->probes_ok < q.probes) {
			b->probes_inflight++;
			ok = true;
		}
		break;
	}
	if (retry_in_ns)
		*retry_in_ns = ok ? 0 : wait;
	return ok;
}

void lt_breaker_record(struct lt_breaker *b, const struct lt_breaker_policy *p, int64_t now,
		       bool failure)
{
	struct policy q = sane(p);
	switch (b->state) {
	case LT_BREAKER_CLOSED:
		/* While not full the ring fills in order (ring_pos == ring_len);
		 * anything else means the window changed: start afresh. */
		if (b->ring_len > q.window || b->ring_pos >= q.window ||
		    (b->ring_len < q.window && b->ring_pos != b->ring_len))
			ring_clear(b);
		if (b->ring_len == q.window)
			b->failures -= b->ring[b->ring_pos];
		else
			b->ring_len++;
		b->ring[b->ring_pos] = failure ? 1 : 0;
		b->failures += failure ? 1 : 0;
		b->ring_pos = (b->ring_pos + 1) % q.window;
		if (b->ring_len >= q.min_calls && b->failures * 100 >= q.failure_pct * b->ring_len)
			trip(b, now);
		break;
	case LT_BREAKER_OPEN: break; /* a call from before it opened */
	case LT_BREAKER_HALF_OPEN:
		if (b->probes_inflight == 0)
			break; /* a call from before it opened */
		b->probes_inflight--;
		if (failure) {
			trip(b, now);
		} else if (++b->probes_ok >= q.probes) {
			b->state = LT_BREAKER_CLOSED;
			b->probes_inflight = 0;
			b->probes_ok = 0;
			ring_clear(b);
		}
		break;
	}
}

void lt_breaker_cancel(struct lt_breaker *b)
{
	if (b->state == LT_BREAKER_HALF_OPEN && b->probes_inflight > 0)
		b->probes_inflight--;
}

int lt_breaker_failure_pct(const struct lt_breaker *b)
{
	return b->ring_len ? b->failures * 100 / b->ring_len : 0;
}
