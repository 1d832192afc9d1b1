/*
 * stubs.h — the built-in provider stubs: OpenAI, Gemini, Qwen (DashScope
 * compatible mode), the Java reference's /api/v1/{provider}/chat, and a
 * payment service for the purchase saga, on their own civetweb listener.
 *
 * They let leakyd run offline (`make run`, tests, benchmarks): each speaks
 * its provider's real wire format, computes usage deterministically from the
 * input, streams SSE in the provider's own framing, and injects faults —
 * from [stubs] rates, from a per-request X-Stub-Fault header, or from fault
 * plans queued through the stub control API (/_stub/...).  Routes and
 * formats are documented in man/leakyd.8 (STUBS) and API.md §9.
 *
 * Ownership: lt_stubs_start allocates the struct lt_stubs and starts the
 * listener threads; lt_stubs_stop stops them and frees everything.
 * lt_stubs_reload may be called from any thread (SIGHUP) and changes the
 * reloadable [stubs] knobs (latency, jitter, rates) atomically.
 */
#ifndef LT_STUBS_STUBS_H
#define LT_STUBS_STUBS_H

#include <stddef.h>

#include "conf/config.h"
#include "util/err.h"
#include "util/log.h"

struct lt_stubs;

/* Listen on cfg->stubs_listen (and cfg->stubs_tls_listen with
 * cfg->stubs_tls_cert when set).  log is borrowed and must outlive the
 * stubs.  LT_EIO with `why` if a listener cannot start. */
enum lt_err lt_stubs_start(const struct lt_config *cfg, struct lt_log *log, struct lt_stubs **out,
			   char *why, size_t why_cap);

/* Ports actually bound (0 when that listener is off). */
int lt_stubs_port(const struct lt_stubs *s);
int lt_stubs_tls_port(const struct lt_stubs *s);

/* Apply the reloadable [stubs] keys of cfg. */
void lt_stubs_reload(struct lt_stubs *s, const struct lt_config *cfg);

/* Stop the listeners (in-flight delays are cut short) and free s. */
void lt_stubs_stop(struct lt_stubs *s);

#endif
