/*
 * clock.h — the one time source.
 *
 * All code that needs "now" reads it through a struct lt_clock, so tests can
 * switch it to a manual clock ([debug] manual_clock) and move time with the
 * admin endpoint instead of sleeping.  Wall time is Unix nanoseconds.
 * Durations (request latency, deadlines) use lt_clock_mono_ns(), which is
 * never manual: a test moving the calendar must not make requests look slow.
 *
 * Thread safety: every function may be called from any thread; state is
 * atomic.  The struct is owned by struct lt_server.
 */
#ifndef LT_UTIL_CLOCK_H
#define LT_UTIL_CLOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

#define LT_NS_PER_MS INT64_C(1000000)
#define LT_NS_PER_S INT64_C(1000000000)

struct lt_clock {
	atomic_bool manual;
	atomic_int_least64_t manual_ns; /* current time while manual */
};

/* Start in real mode, or in manual mode frozen at the current real time. */
void lt_clock_init(struct lt_clock *clock, bool manual);

/* Wall-clock Unix time in nanoseconds (manual value when manual). */
int64_t lt_clock_now_ns(const struct lt_clock *clock);

/* Real monotonic nanoseconds, for durations only. */
int64_t lt_clock_mono_ns(void);

/* Real wall time, ignoring any manual setting (logs use it). */
int64_t lt_clock_real_ns(void);

/* Manual clock only: move time by delta_ns (may be negative, to test
 * backwards steps).  LT_EDENIED if the clock is real, LT_ERANGE if the
 * result would leave [0, INT64_MAX]. */
enum lt_err lt_clock_advance(struct lt_clock *clock, int64_t delta_ns);

/* Manual clock only: set the absolute time.  LT_EDENIED if real. */
enum lt_err lt_clock_set(struct lt_clock *clock, int64_t now_ns);

#endif
