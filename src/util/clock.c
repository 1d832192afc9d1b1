/*
 * clock.c — real and manual time.  See clock.h.
 */
#define _POSIX_C_SOURCE 200809L
#include <time.h>

#include "util/clock.h"

static int64_t read_clock(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * LT_NS_PER_S + ts.tv_nsec;
}

int64_t lt_clock_real_ns(void)
{
	return read_clock(CLOCK_REALTIME);
}

int64_t lt_clock_mono_ns(void)
{
	return read_clock(CLOCK_MONOTONIC);
}

void lt_clock_init(struct lt_clock *clock, bool manual)
{
	atomic_init(&clock->manual_ns, lt_clock_real_ns());
	atomic_init(&clock->manual, manual);
}

int64_t lt_clock_now_ns(const struct lt_clock *clock)
{
	if (atomic_load_explicit(&clock->manual, memory_order_relaxed))
		return atomic_load(&clock->manual_ns);
	return lt_clock_real_ns();
}

enum lt_err lt_clock_advance(struct lt_clock *clock, int64_t delta_ns)
{
	if (!atomic_load(&clock->manual))
		return LT_EDENIED;
	int_least64_t cur = atomic_load(&clock->manual_ns);
	int64_t next;
	do {
		if (__builtin_add_overflow(cur, delta_ns, &next) || next < 0)
			return LT_ERANGE;
	} while (!atomic_compare_exchange_weak(&clock->manual_ns, &cur, next));
	return LT_OK;
}

enum lt_err lt_clock_set(struct lt_clock *clock, int64_t now_ns)
{
	if (!atomic_load(&clock->manual))
		return LT_EDENIED;
	if (now_ns < 0)
		return LT_ERANGE;
	atomic_store(&clock->manual_ns, now_ns);
	return LT_OK;
}
