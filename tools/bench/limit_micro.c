/*
 * limit_micro.c — in-process cost of a rate-limit admission in LMDB.
 *
 * Built and run by tools/bench/limit.sh; by hand:
 *   cc -O2 -std=c11 -D_DEFAULT_SOURCE -Isrc -Ibuild/rel/gen $(pkg-config --cflags \
 *      sqlite3 lmdb libsodium libcjson inih) tools/bench/limit_micro.c build/rel/libleaky.a \
 *      $(pkg-config --libs sqlite3 lmdb libsodium libcjson inih) -lcivetweb -lbearssl \
 *      -lpthread -lm -o /tmp/limit_micro && /tmp/limit_micro /tmp/some-empty-dir
 *
 * Opens DIR with lt_kv_open (what leakyd does: MDB_NOSYNC | MDB_NOTLS, a
 * 64 MiB map) and times, on 1 and on 2 threads:
 *
 *   raw txn      mdb_txn_begin + one mdb_put of a 48-byte value +
 *                mdb_txn_commit, one key per thread: LMDB's floor for one
 *                write transaction on this machine
 *   admit 1      lt_bucket_admit_all with 1 item (leaky bucket, cost 1)
 *   admit 3      lt_bucket_admit_all with 3 items (user, org, route)
 *
 * Every admission is allowed (capacity 10^12 tokens), so every one writes
 * and commits.  All threads use the same bucket keys, as concurrent
 * requests of one user do; LMDB serialises the writers anyway.  now_ns is
 * CLOCK_MONOTONIC, read once per admission as leakyd reads its clock.
 *
 * Each row: REPS runs of OPS operations in total (split over the threads),
 * after one unrecorded warm-up run; median and best ops/s, and the median's
 * µs per operation.  Wall clock; other load on the machine shows up as the
 * spread between median and best.
 *
 * Usage: limit_micro DIR [OPS=200000] [REPS=5]
 * DIR should be empty or missing; it is left behind (the script removes
 * its temp dir).
 */
#define _POSIX_C_SOURCE 200809L
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "limit/bucket_store.h"
#include "store/kv.h"
#include "store/kv_int.h"

#define MAX_THREADS 2
#define MAX_REPS 51

enum kind { RAW, ADMIT1, ADMIT3 };

struct run {
	struct lt_kv *kv;
	enum kind kind;
	long ops; /* per thread */
	int id;
	int failed;
};

static int64_t mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *worker(void *arg)
{
	struct run *r = arg;
	static const char *const keys[] = {"tb|user:bench|openai|USER", "tb|org:bench|openai|ORG",
					   "rt|POST /v1/chat/completions"};
	struct lt_bucket_policy p = {LT_ALGO_LEAKY, INT64_C(1000000000000), INT64_C(1000000000000),
				     1000000000, 0};
	struct lt_admit_item items[3];
	MDB_env *env;
	MDB_dbi dbi;
	char rawkey[32];
	unsigned char val[48];

	lt_kv_handles(r->kv, &env, &dbi);
	snprintf(rawkey, sizeof rawkey, "bench|raw|%d", r->id);
	memset(val, 0x5A, sizeof val);
	memset(items, 0, sizeof items);
	for (int i = 0; i < 3; i++) {
		snprintf(items[i].key, sizeof items[i].key, "%s", keys[i]);
		items[i].policy = p;
		items[i].cost = 1;
	}
	for (long i = 0; i < r->ops; i++) {
		if (r->kind == RAW) {
			MDB_txn *txn;
			MDB_val k = {strlen(rawkey), rawkey}, v = {sizeof val, val};
			val[0] = (unsigned char)i;
			if (mdb_txn_begin(env, NULL, 0, &txn) || mdb_put(txn, dbi, &k, &v, 0)) {
				r->failed = 1;
				return NULL;
			}
			if (mdb_txn_commit(txn)) {
				r->failed = 1;
				return NULL;
			}
		} else {
			bool ok = false;
			size_t n = r->kind == ADMIT1 ? 1 : 3;
			if (lt_bucket_admit_all(r->kv, items, n, mono(), &ok) != LT_OK || !ok) {
				r->failed = 1;
				return NULL;
			}
		}
	}
	return NULL;
}

/* One timed run of ops operations over nthreads threads: ops per second. */
static double run_once(struct lt_kv *kv, enum kind kind, int nthreads, long ops)
{
	pthread_t th[MAX_THREADS];
	struct run runs[MAX_THREADS];
	int64_t t0 = mono();
	for (int i = 0; i < nthreads; i++) {
		runs[i] = (struct run){kv, kind, ops / nthreads, i, 0};
		if (pthread_create(&th[i], NULL, worker, &runs[i]) != 0) {
			perror("pthread_create");
			exit(1);
		}
	}
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	int64_t ns = mono() - t0;
	for (int i = 0; i < nthreads; i++)
		if (runs[i].failed) {
			fprintf(stderr, "limit_micro: an operation failed\n");
			exit(1);
		}
	return (double)(ops / nthreads * nthreads) * 1e9 / (double)ns;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Time one row and print it; returns its median ops/s.  raw_median 0: this
 * is the raw row itself. */
static double row(struct lt_kv *kv, const char *name, enum kind kind, int nthreads, long ops,
		  int reps, double raw_median)
{
	double v[MAX_REPS] = {0};
	run_once(kv, kind, nthreads, ops / 4); /* warm-up */
	for (int i = 0; i < reps; i++)
		v[i] = run_once(kv, kind, nthreads, ops);
	qsort(v, (size_t)reps, sizeof v[0], cmp_double);
	double med = v[reps / 2];
	printf("%-34s %7d %11.0f %11.0f %8.2f %10.2f\n", name, nthreads, med, v[reps - 1],
	       1e6 / med, med / (raw_median > 0 ? raw_median : med));
	return med;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: limit_micro DIR [OPS=200000] [REPS=5]\n");
		return 2;
	}
	long ops = argc > 2 ? strtol(argv[2], NULL, 10) : 200000;
	int reps = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 5;
	if (ops < MAX_THREADS * 4 || reps < 1 || reps > MAX_REPS) {
		fprintf(stderr, "limit_micro: OPS >= 8, 1 <= REPS <= %d\n", MAX_REPS);
		return 2;
	}
	struct lt_kv *kv;
	char err[LT_KV_ERR_MAX];
	if (lt_kv_open(argv[1], 64u << 20, false, &kv, err) != LT_OK) {
		fprintf(stderr, "limit_micro: %s\n", err);
		return 1;
	}
	printf("# limit_micro: lt_kv_open(MDB_NOSYNC | MDB_NOTLS, 64 MiB map), %ld ops per run,"
	       " median of %d runs\n",
	       ops, reps);
	printf("%-34s %7s %11s %11s %8s %10s\n", "operation", "threads", "median/s", "best/s",
	       "us/op", "vs raw txn");
	for (int t = 1; t <= MAX_THREADS; t++) {
		double raw = row(kv, "raw txn: begin+put(48 B)+commit", RAW, t, ops, reps, 0);
		row(kv, "lt_bucket_admit_all, 1 item", ADMIT1, t, ops, reps, raw);
		row(kv, "lt_bucket_admit_all, 3 items", ADMIT3, t, ops, reps, raw);
	}
	lt_kv_close(kv);
	return 0;
}
