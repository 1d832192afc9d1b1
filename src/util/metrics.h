/*
 * metrics.h — a Prometheus metrics registry: counters, gauges, histograms.
 *
 * A family has a fixed list of label names, declared when it is registered
 * (at start-up, before any thread uses the registry).  Each distinct tuple of
 * label values is a series, created on first use; a family holds at most
 * `max_series` series, and lookups past that return NULL and count in
 * leaky_metrics_series_dropped_total — cardinality is bounded by design.
 *
 * Thread safety: registration is single-threaded (start-up).  Series lookup
 * is lock-free for existing series (atomic slots); creating a series takes
 * the family's mutex.  Updates are atomic.  Rendering may run concurrently
 * with updates and sees each value atomically (not a global snapshot).
 *
 * Ownership: the registry owns families and series; pointers returned stay
 * valid until lt_metrics_release().
 */
#ifndef LT_UTIL_METRICS_H
#define LT_UTIL_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

#define LT_METRIC_MAX_LABELS 4
#define LT_METRIC_MAX_BUCKETS 24
#define LT_METRIC_MAX_FAMILIES 128

enum lt_metric_type { LT_METRIC_COUNTER, LT_METRIC_GAUGE, LT_METRIC_HISTOGRAM };

struct lt_series {
	uint32_t hash;
	char *labels[LT_METRIC_MAX_LABELS]; /* values; one allocation owned here */
	atomic_uint_least64_t value;	    /* counter: count; gauge: double bits */
	atomic_uint_least64_t sum;	    /* histogram: double bits */
	atomic_uint_least64_t count;	    /* histogram: observations */
	atomic_uint_least64_t buckets[LT_METRIC_MAX_BUCKETS];
};

struct lt_metric_family {
	const char *name; /* static strings */
	const char *help;
	enum lt_metric_type type;
	size_t nlabels;
	const char *label_names[LT_METRIC_MAX_LABELS];
	size_t nbuckets;
	double bounds[LT_METRIC_MAX_BUCKETS]; /* histogram upper bounds, ascending */
	size_t max_series;
	size_t slot_mask; /* hash table size - 1 */
	_Atomic(struct lt_series *) *slots;
	_Atomic(struct lt_series *) *order; /* insertion order, for rendering */
	atomic_size_t nseries;
	pthread_mutex_t lock; /* held only to create a series */
};

struct lt_metrics {
	struct lt_metric_family *families[LT_METRIC_MAX_FAMILIES];
	size_t nfamilies;
	atomic_uint_least64_t dropped; /* series refused by a full family */
};

void lt_metrics_init(struct lt_metrics *m);
void lt_metrics_release(struct lt_metrics *m);

/* Register a family.  label_names has nlabels entries; for histograms,
 * bounds has nbuckets ascending finite values (+Inf is implicit).  Names
 * must be valid Prometheus names.  LT_EINVAL on bad arguments, LT_EBUSY if
 * the registry is full. */
enum lt_err lt_metrics_register(struct lt_metrics *m, enum lt_metric_type type, const char *name,
				const char *help, size_t nlabels, const char *const *label_names,
				size_t nbuckets, const double *bounds, size_t max_series,
				struct lt_metric_family **out);

/* Find or create the series for these label values (nlabels strings).
 * NULL if the family is full or memory ran out. */
struct lt_series *lt_metric_series(struct lt_metrics *m, struct lt_metric_family *f,
				   const char *const *values);

void lt_counter_add(struct lt_series *s, uint64_t n);
void lt_gauge_set(struct lt_series *s, double v);
void lt_gauge_add(struct lt_series *s, double d);
double lt_gauge_get(const struct lt_series *s);
void lt_histogram_observe(const struct lt_metric_family *f, struct lt_series *s, double v);

/* Render every family in Prometheus text format 0.0.4. */
enum lt_err lt_metrics_render(struct lt_metrics *m, struct lt_buf *out);

#endif
