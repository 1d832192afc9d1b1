/*
 * test_metrics.c — src/util/metrics.c: registration checks, the exact
 * Prometheus text rendering of counters, gauges and histograms, label and
 * help escaping, the cardinality cap, and concurrent updates from threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/metrics.h"

struct fixture {
	struct lt_metrics m;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	lt_metrics_init(&f->m);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	lt_metrics_release(&f->m);
	free(f);
	return 0;
}

static const char dropped_head[] =
	"# HELP leaky_metrics_series_dropped_total Series not created because their family "
	"reached its cardinality cap.\n"
	"# TYPE leaky_metrics_series_dropped_total counter\n"
	"leaky_metrics_series_dropped_total ";

/* Render m and compare with want exactly. */
static void assert_render(struct lt_metrics *m, const char *want)
{
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 1 << 20);
	assert_int_equal(lt_metrics_render(m, &b), LT_OK);
	if (strcmp(b.data, want) != 0)
		fail_msg("rendered:\n%s\nwanted:\n%s", b.data, want);
	lt_buf_release(&b);
}

static void test_register_checks(void **state)
{
	struct fixture *f = *state;
	struct lt_metric_family *fam;
	const char *const ok_labels[] = {"route"};
	const char *const le[] = {"le"};
	const char *const bad_label[] = {"bad-label"};
	const double bounds[] = {0.1, 1};
	const double unsorted[] = {1, 0.1};
	const double dup[] = {1, 1};
	const double nan_bound[] = {NAN};
	const double inf_bound[] = {INFINITY};

	assert_int_equal(lt_metrics_register(&f->m, LT_METRIC_COUNTER, "1abc", "h", 0, NULL, 0,
					     NULL, 1, &fam),
			 LT_EINVAL);
	assert_int_equal(lt_metrics_register(&f->m, LT_METRIC_COUNTER, "a-b", "h", 0, NULL, 0, NULL,
					     1, &fam),
			 LT_EINVAL);
	assert_int_equal(
		lt_metrics_register(&f->m, LT_METRIC_COUNTER, "", "h", 0, NULL, 0, NULL, 1, &fam),
		LT_EINVAL);
	assert_int_equal(
		lt_metrics_register(&f->m, LT_METRIC_COUNTER, "ok", "h", 1, le, 0, NULL, 1, &fam),
		LT_EINVAL);
	assert_int_equal(lt_metrics_register(&f->m, LT_METRIC_COUNTER, "ok", "h", 1, bad_label, 0,
					     NULL, 1, &fam),
			 LT_EINVAL);
	assert_int_equal(lt_metrics_register(&f->m, LT_METRIC_COUNTER, "ok", "h",
					     LT_METRIC_MAX_LABELS + 1, ok_labels, 0, NULL, 1, &fam),
			 LT_EINVAL);
	assert_int_equal(
		lt_metrics_register(&f->m, LT_METRIC_COUNTER, "ok", "h", 0, NULL, 0, NULL, 0, &fam),
		LT_EINVAL); /* max_series 0 */
	assert_int_equal(lt_metrics_register(&f->m, LT_METRIC_HISTOGRAM, "ok", "h", 0, NULL, 0,
					     NULL, 1, &fam),
			 LT_EINVAL); /* a histogram needs buckets */
	assert_int_equal(lt_metrics_register(&f->m, LT_METRIC_HISTOGRAM, "ok", "h", 0, NULL, 2,
					     unsorted, 1, &fam),
			 LT_EINVAL);
	assert_int_equal(lt_metrics_register(&f->m, LT_METRIC_HISTOGRAM, "ok", "h", 0, NULL, 2, dup,
					     1, &fam),
			 LT_EINVAL);
	assert_int_equal(lt_metrics_register(&f->m, LT_METRIC_HISTOGRAM, "ok", "h", 0, NULL, 1,
					     nan_bound, 1, &fam),
			 LT_EINVAL);
	assert_int_equal(lt_metrics_register(&f->m, LT_METRIC_HISTOGRAM, "ok", "h", 0, NULL, 1,
					     inf_bound, 1, &fam),
			 LT_EINVAL);
	assert_int_equal(f->m.nfamilies, 0);

	assert_int_equal(lt_metrics_register(&f->m, LT_METRIC_HISTOGRAM, "ns:ok_1", "h", 1,
					     ok_labels, 2, bounds, 1, &fam),
			 LT_OK);
	assert_int_equal(f->m.nfamilies, 1);

	/* the registry is bounded too */
	for (size_t i = 1; i < LT_METRIC_MAX_FAMILIES; i++)
		assert_int_equal(lt_metrics_register(&f->m, LT_METRIC_GAUGE, "g", "h", 0, NULL, 0,
						     NULL, 1, &fam),
				 LT_OK);
	assert_int_equal(
		lt_metrics_register(&f->m, LT_METRIC_GAUGE, "g", "h", 0, NULL, 0, NULL, 1, &fam),
		LT_EBUSY);
}

static void test_render_exact(void **state)
{
	struct fixture *f = *state;
	struct lt_metric_family *req, *inflight, *dur, *plain;
	const char *const req_labels[] = {"route", "method", "status"};
	const char *const route[] = {"route"};
	const double bounds[] = {0.005, 0.1, 1, 2.5};
	const double one_bound[] = {10};

	assert_int_equal(lt_metrics_register(&f->m, LT_METRIC_COUNTER, "leaky_http_requests_total",
					     "Requests.", 3, req_labels, 0, NULL, 8, &req),
			 LT_OK);
	assert_int_equal(lt_metrics_register(&f->m, LT_METRIC_GAUGE, "leaky_inflight", "In flight.",
					     0, NULL, 0, NULL, 1, &inflight),
			 LT_OK);
	assert_int_equal(lt_metrics_register(&f->m, LT_METRIC_HISTOGRAM, "leaky_duration_seconds",
					     "Duration\\ with \"quotes\"\nand newline.", 1, route,
					     4, bounds, 8, &dur),
			 LT_OK);
	assert_int_equal(lt_metrics_register(&f->m, LT_METRIC_HISTOGRAM, "plain", "P.", 0, NULL, 1,
					     one_bound, 1, &plain),
			 LT_OK);

	const char *const healthz[] = {"/healthz", "GET", "200"};
	const char *const metrics[] = {"/metrics", "GET", "200"};
	struct lt_series *s1 = lt_metric_series(&f->m, req, healthz);
	struct lt_series *s2 = lt_metric_series(&f->m, req, metrics);
	assert_non_null(s1);
	assert_non_null(s2);
	assert_ptr_not_equal(s1, s2);
	lt_counter_add(s1, 3);
	lt_counter_add(s2, 1);
	/* the same labels find the same series, even from a different array */
	char route_copy[] = "/healthz";
	const char *const again[] = {route_copy, "GET", "200"};
	assert_ptr_equal(lt_metric_series(&f->m, req, again), s1);
	lt_counter_add(s1, 2);

	struct lt_series *g = lt_metric_series(&f->m, inflight, NULL);
	assert_non_null(g);
	lt_gauge_set(g, 2);
	lt_gauge_add(g, 0.5);
	lt_gauge_add(g, -1);
	assert_true(lt_gauge_get(g) == 1.5);

	const char *const hz[] = {"/healthz"};
	struct lt_series *h = lt_metric_series(&f->m, dur, hz);
	assert_non_null(h);
	lt_histogram_observe(dur, h, 0.00390625); /* le 0.005 */
	lt_histogram_observe(dur, h, 0.0625);	  /* le 0.1 */
	lt_histogram_observe(dur, h, 0.5);	  /* le 1 */
	lt_histogram_observe(dur, h, 2.5);	  /* on a bound: le is inclusive */
	lt_histogram_observe(dur, h, 4);	  /* only +Inf */

	struct lt_series *p = lt_metric_series(&f->m, plain, NULL);
	lt_histogram_observe(plain, p, 3);

	char want[4096];
	snprintf(want, sizeof want,
		 "# HELP leaky_http_requests_total Requests.\n"
		 "# TYPE leaky_http_requests_total counter\n"
		 "leaky_http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 5\n"
		 "leaky_http_requests_total{route=\"/metrics\",method=\"GET\",status=\"200\"} 1\n"
		 "# HELP leaky_inflight In flight.\n"
		 "# TYPE leaky_inflight gauge\n"
		 "leaky_inflight 1.5\n"
		 "# HELP leaky_duration_seconds Duration\\\\ with \"quotes\"\\nand newline.\n"
		 "# TYPE leaky_duration_seconds histogram\n"
		 "leaky_duration_seconds_bucket{route=\"/healthz\",le=\"0.005\"} 1\n"
		 "leaky_duration_seconds_bucket{route=\"/healthz\",le=\"0.1\"} 2\n"
		 "leaky_duration_seconds_bucket{route=\"/healthz\",le=\"1\"} 3\n"
		 "leaky_duration_seconds_bucket{route=\"/healthz\",le=\"2.5\"} 4\n"
		 "leaky_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"} 5\n"
		 "leaky_duration_seconds_sum{route=\"/healthz\"} 7.06640625\n"
		 "leaky_duration_seconds_count{route=\"/healthz\"} 5\n"
		 "# HELP plain P.\n"
		 "# TYPE plain histogram\n"
		 "plain_bucket{le=\"10\"} 1\n"
		 "plain_bucket{le=\"+Inf\"} 1\n"
		 "plain_sum 3\n"
		 "plain_count 1\n"
		 "%s0\n",
		 dropped_head);
	assert_render(&f->m, want);
}

static void test_empty_registry(void **state)
{
	struct fixture *f = *state;
	char want[512];
	snprintf(want, sizeof want, "%s0\n", dropped_head);
	assert_render(&f->m, want);

	/* a family with no series yet renders its header only */
	struct lt_metric_family *c;
	assert_int_equal(lt_metrics_register(&f->m, LT_METRIC_COUNTER, "c_total", "C.", 0, NULL, 0,
					     NULL, 1, &c),
			 LT_OK);
	snprintf(want, sizeof want, "# HELP c_total C.\n# TYPE c_total counter\n%s0\n",
		 dropped_head);
	assert_render(&f->m, want);
}

static void test_gauge_values(void **state)
{
	struct fixture *f = *state;
	struct lt_metric_family *g;
	const char *const k[] = {"k"};
	assert_int_equal(
		lt_metrics_register(&f->m, LT_METRIC_GAUGE, "g", "G.", 1, k, 0, NULL, 16, &g),
		LT_OK);
	static const struct {
		const char *label;
		double v;
	} vals[] = {
		{"zero", 0},	     {"neg", -0.25},	       {"int", 1234567}, {"big", 1e20},
		{"tenth", 0.1},	     {"third", 1.0 / 3},       {"nan", NAN},	 {"inf", INFINITY},
		{"ninf", -INFINITY}, {"time", 1770285600.123},
	};
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
		const char *const lv[] = {vals[i].label};
		lt_gauge_set(lt_metric_series(&f->m, g, lv), vals[i].v);
	}
	char want[2048];
	snprintf(want, sizeof want,
		 "# HELP g G.\n# TYPE g gauge\n"
		 "g{k=\"zero\"} 0\n"
		 "g{k=\"neg\"} -0.25\n"
		 "g{k=\"int\"} 1234567\n"
		 "g{k=\"big\"} 1e+20\n"
		 "g{k=\"tenth\"} 0.1\n"
		 "g{k=\"third\"} 0.3333333333333333\n"
		 "g{k=\"nan\"} NaN\n"
		 "g{k=\"inf\"} +Inf\n"
		 "g{k=\"ninf\"} -Inf\n"
		 "g{k=\"time\"} 1770285600.123\n"
		 "%s0\n",
		 dropped_head);
	assert_render(&f->m, want);
}

static void test_label_escaping(void **state)
{
	struct fixture *f = *state;
	struct lt_metric_family *c;
	const char *const names[] = {"path", "note"};
	assert_int_equal(lt_metrics_register(&f->m, LT_METRIC_COUNTER, "esc_total", "E.", 2, names,
					     0, NULL, 4, &c),
			 LT_OK);
	const char *const v[] = {"a\\b\"c\nd", ""};
	lt_counter_add(lt_metric_series(&f->m, c, v), 1);
	/* label tuples are distinct even when the joined text is the same */
	const char *const v1[] = {"ab", "c"};
	const char *const v2[] = {"a", "bc"};
	struct lt_series *s1 = lt_metric_series(&f->m, c, v1);
	struct lt_series *s2 = lt_metric_series(&f->m, c, v2);
	assert_ptr_not_equal(s1, s2);
	lt_counter_add(s2, 2);
	char want[1024];
	snprintf(want, sizeof want,
		 "# HELP esc_total E.\n# TYPE esc_total counter\n"
		 "esc_total{path=\"a\\\\b\\\"c\\nd\",note=\"\"} 1\n"
		 "esc_total{path=\"ab\",note=\"c\"} 0\n"
		 "esc_total{path=\"a\",note=\"bc\"} 2\n"
		 "%s0\n",
		 dropped_head);
	assert_render(&f->m, want);
}

static void test_cardinality_cap(void **state)
{
	struct fixture *f = *state;
	struct lt_metric_family *c;
	const char *const names[] = {"user"};
	assert_int_equal(lt_metrics_register(&f->m, LT_METRIC_COUNTER, "cap_total", "C.", 1, names,
					     0, NULL, 2, &c),
			 LT_OK);
	const char *const a[] = {"a"}, *const b[] = {"b"}, *const x[] = {"x"}, *const y[] = {"y"};
	struct lt_series *sa = lt_metric_series(&f->m, c, a);
	struct lt_series *sb = lt_metric_series(&f->m, c, b);
	assert_non_null(sa);
	assert_non_null(sb);
	assert_null(lt_metric_series(&f->m, c, x));
	assert_null(lt_metric_series(&f->m, c, y));
	assert_null(lt_metric_series(&f->m, c, x)); /* refused each time, counted each time */
	/* existing series are still found */
	assert_ptr_equal(lt_metric_series(&f->m, c, a), sa);
	assert_ptr_equal(lt_metric_series(&f->m, c, b), sb);
	/* updates through NULL are no-ops, so callers need not check */
	lt_counter_add(NULL, 1);
	lt_gauge_set(NULL, 1);
	lt_gauge_add(NULL, 1);
	lt_histogram_observe(c, NULL, 1);
	assert_true(lt_gauge_get(NULL) == 0.0);
	lt_counter_add(sa, 1);
	char want[1024];
	snprintf(want, sizeof want,
		 "# HELP cap_total C.\n# TYPE cap_total counter\n"
		 "cap_total{user=\"a\"} 1\n"
		 "cap_total{user=\"b\"} 0\n"
		 "%s3\n",
		 dropped_head);
	assert_render(&f->m, want);
}

/* ---- concurrency ---- */

#define THREADS 8
#define ITERS 40000
#define LABELSETS 5

struct conc {
	struct lt_metrics *m;
	struct lt_metric_family *c, *g, *h;
	atomic_bool stop;
	int renders;
};

static void *worker(void *arg)
{
	struct conc *cc = arg;
	static const char *const routes[LABELSETS] = {"/a", "/b", "/c", "/d", "/e"};
	for (int i = 0; i < ITERS; i++) {
		/* series are created concurrently on first use */
		const char *const lv[] = {routes[i % LABELSETS], "GET"};
		struct lt_series *s = lt_metric_series(cc->m, cc->c, lv);
		if (!s)
			return (void *)1;
		lt_counter_add(s, 1);
		lt_gauge_add(lt_metric_series(cc->m, cc->g, NULL), 1.0);
		const char *const hv[] = {routes[i % 2]};
		lt_histogram_observe(cc->h, lt_metric_series(cc->m, cc->h, hv), (i % 4) * 0.5);
	}
	return NULL;
}

static void *renderer(void *arg)
{
	struct conc *cc = arg;
	while (!atomic_load(&cc->stop)) {
		struct lt_buf b;
		lt_buf_init(&b, NULL, 0, 1 << 20);
		if (lt_metrics_render(cc->m, &b) != LT_OK) {
			lt_buf_release(&b);
			return (void *)1;
		}
		lt_buf_release(&b);
		cc->renders++;
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	struct fixture *f = *state;
	struct conc cc = {.m = &f->m};
	const char *const names[] = {"route", "method"};
	const char *const route[] = {"route"};
	const double bounds[] = {0.25, 0.75};
	atomic_init(&cc.stop, false);
	assert_int_equal(lt_metrics_register(&f->m, LT_METRIC_COUNTER, "c_total", "C.", 2, names, 0,
					     NULL, 64, &cc.c),
			 LT_OK);
	assert_int_equal(
		lt_metrics_register(&f->m, LT_METRIC_GAUGE, "g", "G.", 0, NULL, 0, NULL, 1, &cc.g),
		LT_OK);
	assert_int_equal(lt_metrics_register(&f->m, LT_METRIC_HISTOGRAM, "h", "H.", 1, route, 2,
					     bounds, 4, &cc.h),
			 LT_OK);

	pthread_t th[THREADS], rt;
	assert_int_equal(pthread_create(&rt, NULL, renderer, &cc), 0);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, worker, &cc), 0);
	int failures = 0;
	for (int i = 0; i < THREADS; i++) {
		void *ret;
		pthread_join(th[i], &ret);
		failures += ret != NULL;
	}
	atomic_store(&cc.stop, true);
	void *ret;
	pthread_join(rt, &ret);
	assert_null(ret);
	assert_int_equal(failures, 0);

	/* every increment landed, in exactly LABELSETS series */
	assert_int_equal(atomic_load(&cc.c->nseries), LABELSETS);
	uint64_t total = 0;
	for (size_t i = 0; i < LABELSETS; i++) {
		struct lt_series *s = atomic_load(&cc.c->order[i]);
		uint64_t v = atomic_load(&s->value);
		assert_int_equal(v, (uint64_t)THREADS * ITERS / LABELSETS);
		total += v;
	}
	assert_int_equal(total, (uint64_t)THREADS * ITERS);
	assert_true(lt_gauge_get(lt_metric_series(&f->m, cc.g, NULL)) == (double)THREADS * ITERS);
	/* histogram: per route, values 0, .5, 1, 1.5 in turn (i % 4), route i % 2 */
	for (size_t r = 0; r < 2; r++) {
		struct lt_series *s = atomic_load(&cc.h->order[r]);
		const uint64_t per = (uint64_t)THREADS * ITERS / 2;
		assert_int_equal(atomic_load(&s->count), per);
		uint64_t b0 = atomic_load(&s->buckets[0]), b1 = atomic_load(&s->buckets[1]);
		/* route "/a" sees i%4 in {0, 2} (values 0 and 1); "/b" sees {1, 3} (.5, 1.5) */
		if (!strcmp(s->labels[0], "/a")) {
			assert_int_equal(b0, per / 2); /* 0 <= 0.25 */
			assert_int_equal(b1, 0);
		} else {
			assert_int_equal(b0, 0);
			assert_int_equal(b1, per / 2); /* 0.5 <= 0.75 */
		}
	}
	assert_int_equal(atomic_load(&f->m.dropped), 0);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_register_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_render_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_registry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gauge_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_label_escaping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cardinality_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
