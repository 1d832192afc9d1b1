/*
 * usage_hook.h — where every provider call's usage record goes.
 *
 * The API handlers build one struct lt_usage_record per completed or aborted
 * provider call (client disconnects included) and hand it to
 * lt_usage_emit.  Today it feeds the provider metrics and a debug log line;
 * it is the seam where quota settlement and the token-usage event (issues 5
 * and 6) plug in, so the handlers do not change when they do.
 *
 * Threads: called from any worker; metrics are atomic.
 */
#ifndef LT_USAGE_HOOK_H
#define LT_USAGE_HOOK_H

#include "provider/usage.h"
#include "util/err.h"

struct lt_server;

/* Register the provider usage families in srv->metrics. */
enum lt_err lt_usage_hook_init(struct lt_server *srv);

void lt_usage_emit(struct lt_server *srv, const struct lt_usage_record *rec);

#endif
