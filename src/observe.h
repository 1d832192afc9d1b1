/*
 * observe.h — leakyd's own metrics: registration at start-up and the
 * gauges refreshed when /metrics is scraped (file sizes, LMDB use, writer
 * queue).  Families and their labels are fixed here; label values come from
 * bounded sets (route patterns, known methods, status codes, fixed names).
 */
#ifndef LT_OBSERVE_H
#define LT_OBSERVE_H

#include "util/err.h"

struct lt_server;

enum lt_err lt_observe_register(struct lt_server *srv, const char *version);
void lt_observe_collect(struct lt_server *srv);

#endif
