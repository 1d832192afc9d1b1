/*
 * metrics.c — the metrics registry and its text rendering.  See metrics.h.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/metrics.h"

void lt_metrics_init(struct lt_metrics *m)
{
	memset(m->families, 0, sizeof m->families);
	m->nfamilies = 0;
	atomic_init(&m->dropped, 0);
}

void lt_metrics_release(struct lt_metrics *m)
{
	for (size_t i = 0; i < m->nfamilies; i++) {
		struct lt_metric_family *f = m->families[i];
		size_t n = atomic_load(&f->nseries);
		for (size_t k = 0; k < n; k++) {
			struct lt_series *s = atomic_load(&f->order[k]);
			if (s) {
				free(s->labels[0]);
				free(s);
			}
		}
		free((void *)f->slots);
		free((void *)f->order);
		pthread_mutex_destroy(&f->lock);
		free(f);
	}
	m->nfamilies = 0;
}

static bool valid_name(const char *s)
{
	if (!s || !*s)
		return false;
	for (const char *p = s; *p; p++) {
		bool alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
			     *p == ':';
		if (!alpha && !(p > s && *p >= '0' && *p <= '9'))
			return false;
	}
	return true;
}

enum lt_err lt_metrics_register(struct lt_metrics *m, enum lt_metric_type type, const char *name,
				const char *help, size_t nlabels, const char *const *label_names,
				size_t nbuckets, const double *bounds, size_t max_series,
				struct lt_metric_family **out)
{
	if (!valid_name(name) || nlabels > LT_METRIC_MAX_LABELS || max_series == 0 ||
	    max_series > 65536 || nbuckets > LT_METRIC_MAX_BUCKETS ||
	    (type == LT_METRIC_HISTOGRAM && nbuckets == 0))
		return LT_EINVAL;
	for (size_t i = 0; i < nlabels; i++)
		if (!valid_name(label_names[i]) || strcmp(label_names[i], "le") == 0)
			return LT_EINVAL;
	for (size_t i = 0; i < nbuckets; i++)
		if (!isfinite(bounds[i]) || (i && bounds[i] <= bounds[i - 1]))
			return LT_EINVAL;
	if (m->nfamilies == LT_METRIC_MAX_FAMILIES)
		return LT_EBUSY;
	struct lt_metric_family *f = calloc(1, sizeof *f);
	if (!f)
		return LT_ENOMEM;
	size_t slots = 16;
	while (slots < max_series * 2)
		slots *= 2;
	f->slots = calloc(slots, sizeof *f->slots);
	f->order = calloc(max_series, sizeof *f->order);
	if (!f->slots || !f->order) {
		free((void *)f->slots);
		free((void *)f->order);
		free(f);
		return LT_ENOMEM;
	}
	f->name = name;
	f->help = help;
	f->type = type;
	f->nlabels = nlabels;
	for (size_t i = 0; i < nlabels; i++)
		f->label_names[i] = label_names[i];
	f->nbuckets = type == LT_METRIC_HISTOGRAM ? nbuckets : 0;
	for (size_t i = 0; i < f->nbuckets; i++)
		f->bounds[i] = bounds[i];
	f->max_series = max_series;
	f->slot_mask = slots - 1;
	atomic_init(&f->nseries, 0);
	pthread_mutex_init(&f->lock, NULL);
	m->families[m->nfamilies++] = f;
	*out = f;
	return LT_OK;
}

static uint32_t hash_labels(size_t n, const char *const *values)
{
	uint32_t h = 2166136261u; /* FNV-1a, with a separator between values */
	for (size_t i = 0; i < n; i++) {
		for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++)
			h = (h ^ *p) * 16777619u;
		h = (h ^ 0xFF) * 16777619u;
	}
	return h;
}

static bool same_labels(const struct lt_series *s, size_t n, const char *const *values)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s->labels[i], values[i]) != 0)
			return false;
	return true;
}

static struct lt_series *new_series(size_t n, const char *const *values, uint32_t h)
{
	struct lt_series *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	size_t total = 1;
	for (size_t i = 0; i < n; i++)
		total += strlen(values[i]) + 1;
	char *mem = malloc(total);
	if (!mem) {
		free(s);
		return NULL;
	}
	char *p = mem;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(values[i]);
		memcpy(p, values[i], len + 1);
		s->labels[i] = p;
		p += len + 1;
	}
	if (n == 0) {
		mem[0] = '\0';
		s->labels[0] = mem;
	}
	s->hash = h;
	return s;
}

struct lt_series *lt_metric_series(struct lt_metrics *m, struct lt_metric_family *f,
				   const char *const *values)
{
	uint32_t h = hash_labels(f->nlabels, values);
	size_t i = h & f->slot_mask;
	for (;;) { /* lock-free probe for an existing series */
		struct lt_series *s = atomic_load_explicit(&f->slots[i], memory_order_acquire);
		if (!s)
			break;
		if (s->hash == h && same_labels(s, f->nlabels, values))
			return s;
		i = (i + 1) & f->slot_mask;
	}
	pthread_mutex_lock(&f->lock);
	struct lt_series *found = NULL;
	i = h & f->slot_mask;
	for (;;) { /* again under the lock: another thread may have added it */
		struct lt_series *s = atomic_load_explicit(&f->slots[i], memory_order_acquire);
		if (!s)
			break;
		if (s->hash == h && same_labels(s, f->nlabels, values)) {
			found = s;
			break;
		}
		i = (i + 1) & f->slot_mask;
	}
	if (!found) {
		size_t n = atomic_load(&f->nseries);
		if (n < f->max_series && (found = new_series(f->nlabels, values, h))) {
			atomic_store_explicit(&f->order[n], found, memory_order_release);
			atomic_store_explicit(&f->slots[i], found, memory_order_release);
			atomic_store(&f->nseries, n + 1);
		} else {
			atomic_fetch_add(&m->dropped, 1);
		}
	}
	pthread_mutex_unlock(&f->lock);
	return found;
}

static uint64_t dbits(double v)
{
	uint64_t u;
	memcpy(&u, &v, sizeof u);
	return u;
}

static double bitsd(uint64_t u)
{
	double v;
	memcpy(&v, &u, sizeof v);
	return v;
}

void lt_counter_add(struct lt_series *s, uint64_t n)
{
	if (s)
		atomic_fetch_add_explicit(&s->value, n, memory_order_relaxed);
}

void lt_gauge_set(struct lt_series *s, double v)
{
	if (s)
		atomic_store_explicit(&s->value, dbits(v), memory_order_relaxed);
}

static void add_double(atomic_uint_least64_t *a, double d)
{
	uint_least64_t cur = atomic_load_explicit(a, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(a, &cur, dbits(bitsd(cur) + d),
						      memory_order_relaxed, memory_order_relaxed))
		;
}

void lt_gauge_add(struct lt_series *s, double d)
{
	if (s)
		add_double(&s->value, d);
}

double lt_gauge_get(const struct lt_series *s)
{
	return s ? bitsd(atomic_load(&s->value)) : 0.0;
}

void lt_histogram_observe(const struct lt_metric_family *f, struct lt_series *s, double v)
{
	if (!s)
		return;
	size_t b = 0;
	while (b < f->nbuckets && v > f->bounds[b])
		b++;
	if (b < f->nbuckets) /* buckets hold per-bucket counts; cumulated at render */
		atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
	add_double(&s->sum, v);
}

static void put_escaped(struct lt_buf *b, const char *s, bool help)
{
	for (; *s; s++) {
		if (*s == '\\')
			lt_buf_puts(b, "\\\\");
		else if (*s == '\n')
			lt_buf_puts(b, "\\n");
		else if (*s == '"' && !help)
			lt_buf_puts(b, "\\\"");
		else
			lt_buf_putc(b, *s);
	}
}

static void put_double(struct lt_buf *b, double v)
{
	if (isnan(v))
		lt_buf_puts(b, "NaN");
	else if (isinf(v))
		lt_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 1e15)
		lt_buf_printf(b, "%.0f", v);
	else {
		/* Shortest of %.15g..%.17g that reads back exactly. */
		char tmp[40];
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(tmp, sizeof tmp, "%.*g", prec, v);
			if (prec == 17 || strtod(tmp, NULL) == v)
				break;
		}
		lt_buf_puts(b, tmp);
	}
}

/* name{l1="v1",...[,le="x"]} */
static void put_series_name(struct lt_buf *b, const struct lt_metric_family *f,
			    const struct lt_series *s, const char *suffix, const char *le)
{
	lt_buf_puts(b, f->name);
	lt_buf_puts(b, suffix);
	if (f->nlabels == 0 && !le)
		return;
	lt_buf_putc(b, '{');
	for (size_t i = 0; i < f->nlabels; i++) {
		if (i)
			lt_buf_putc(b, ',');
		lt_buf_puts(b, f->label_names[i]);
		lt_buf_puts(b, "=\"");
		put_escaped(b, s->labels[i], false);
		lt_buf_putc(b, '"');
	}
	if (le) {
		if (f->nlabels)
			lt_buf_putc(b, ',');
		lt_buf_printf(b, "le=\"%s\"", le);
	}
	lt_buf_putc(b, '}');
}

static void render_family(struct lt_buf *b, const struct lt_metric_family *f)
{
	static const char *const types[] = {"counter", "gauge", "histogram"};
	lt_buf_printf(b, "# HELP %s ", f->name);
	put_escaped(b, f->help, true);
	lt_buf_printf(b, "\n# TYPE %s %s\n", f->name, types[f->type]);
	size_t n = atomic_load(&f->nseries);
	for (size_t k = 0; k < n; k++) {
		const struct lt_series *s =
			atomic_load_explicit(&f->order[k], memory_order_acquire);
		if (!s)
			continue;
		if (f->type == LT_METRIC_COUNTER) {
			put_series_name(b, f, s, "", NULL);
			lt_buf_putc(b, ' ');
			lt_buf_put_u64(b, atomic_load(&s->value));
			lt_buf_putc(b, '\n');
		} else if (f->type == LT_METRIC_GAUGE) {
			put_series_name(b, f, s, "", NULL);
			lt_buf_putc(b, ' ');
			put_double(b, bitsd(atomic_load(&s->value)));
			lt_buf_putc(b, '\n');
		} else {
			uint64_t cum = 0;
			uint64_t count = atomic_load(&s->count);
			for (size_t i = 0; i < f->nbuckets; i++) {
				char le[40];
				struct lt_buf lb;
				lt_buf_init(&lb, le, sizeof le, sizeof le - 1);
				put_double(&lb, f->bounds[i]);
				cum += atomic_load(&s->buckets[i]);
				if (cum > count) /* an observation in flight */
					cum = count;
				put_series_name(b, f, s, "_bucket", le);
				lt_buf_putc(b, ' ');
				lt_buf_put_u64(b, cum);
				lt_buf_putc(b, '\n');
			}
			put_series_name(b, f, s, "_bucket", "+Inf");
			lt_buf_putc(b, ' ');
			lt_buf_put_u64(b, count);
			lt_buf_putc(b, '\n');
			put_series_name(b, f, s, "_sum", NULL);
			lt_buf_putc(b, ' ');
			put_double(b, bitsd(atomic_load(&s->sum)));
			lt_buf_putc(b, '\n');
			put_series_name(b, f, s, "_count", NULL);
			lt_buf_putc(b, ' ');
			lt_buf_put_u64(b, count);
			lt_buf_putc(b, '\n');
		}
	}
}

enum lt_err lt_metrics_render(struct lt_metrics *m, struct lt_buf *out)
{
	for (size_t i = 0; i < m->nfamilies; i++)
		render_family(out, m->families[i]);
	lt_buf_puts(out, "# HELP leaky_metrics_series_dropped_total Series not created "
			 "because their family reached its cardinality cap.\n"
			 "# TYPE leaky_metrics_series_dropped_total counter\n"
			 "leaky_metrics_series_dropped_total ");
	lt_buf_put_u64(out, atomic_load(&m->dropped));
	return lt_buf_puts(out, "\n");
}
