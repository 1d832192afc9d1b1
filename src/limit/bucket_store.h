/*
 * bucket_store.h — rate-limit buckets in LMDB (buckets/, the "buckets"
 * database of store/kv.h): atomic multi-bucket admission, refunds,
 * settlement to the real use, the TTL sweep and read-only peeks.
 *
 * One record per bucket key.  Value (48 bytes, native byte order: the file
 * never leaves the machine): struct lt_bucket_state, then the time at which
 * the bucket is back to its fresh state (`expires_ns`, what the sweep
 * compares), then a format version.  A value of another size is treated as
 * absent (fresh) and overwritten.
 *
 * Admission: lt_bucket_admit_all evaluates every item in ONE write
 * transaction and commits all of them or none: if any item is refused,
 * nothing is written and every item's decision is still filled (so the
 * caller can render headers for the tightest bucket).  Keys are sorted
 * first so concurrent admissions touch pages in the same order.
 *
 * Settlement: after the call, lt_bucket_settle_all moves each bucket from
 * what admission charged to the real use — a refund of the surplus or a
 * forced charge of the shortfall (bucket.h: "Debt") — in one transaction.
 *
 * MDB_MAP_FULL: the transaction is aborted, expired records are swept, and
 * the admission is tried once more; if the map is still full the result is
 * LT_EBUSY (the caller answers 503) — never a crash, never a partial write.
 *
 * Threads: any worker may call any function; LMDB serialises writers.
 * Time is supplied by the caller (the server clock, manual in tests).
 */
#ifndef LT_LIMIT_BUCKET_STORE_H
#define LT_LIMIT_BUCKET_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limit/bucket.h"
#include "util/err.h"

struct lt_kv;

#define LT_BUCKET_KEY_MAX 200 /* bytes; LMDB's default key limit is 511 */
#define LT_ADMIT_MAX 16	      /* items per admission */

struct lt_admit_item {
	/* in */
	char key[LT_BUCKET_KEY_MAX + 1]; /* NUL-terminated, e.g. "tb|user:<id>|openai|USER" */
	struct lt_bucket_policy policy;
	int64_t cost;
	/* out */
	struct lt_bucket_decision decision;
	enum lt_err err; /* LT_ERANGE when this item's cost can never pass */
};

/* Admit all n (1..LT_ADMIT_MAX) items or none.  *allowed is true only if
 * every item was admitted (and then all were written).  Returns LT_OK when
 * a decision was reached (allowed or not); LT_ERANGE if some item's cost
 * exceeds what its bucket can ever admit (nothing written); LT_EBUSY when
 * the map stays full; LT_EIO on other LMDB errors; LT_EINVAL for bad
 * arguments (n out of range, empty or long key, invalid policy). */
enum lt_err lt_bucket_admit_all(struct lt_kv *kv, struct lt_admit_item *items, size_t n,
				int64_t now_ns, bool *allowed);

/* Give back what an earlier successful lt_bucket_admit_all charged (same
 * items, same costs), in one write transaction.  Missing records are
 * ignored (already swept: nothing to give back). */
enum lt_err lt_bucket_refund_all(struct lt_kv *kv, const struct lt_admit_item *items, size_t n,
				 int64_t now_ns);

/* Settle what an earlier successful lt_bucket_admit_all charged (same
 * items, same costs) to what was really used, actual[i] for items[i], in
 * ONE write transaction: actual < cost gives the surplus back
 * (lt_bucket_refund; a missing record is skipped: nothing to give back),
 * actual > cost force-charges the shortfall (lt_bucket_charge: never
 * refused, may put the bucket in debt up to one capacity beyond full, the
 * rest forgiven; a missing record starts from the fresh state), actual ==
 * cost leaves the record untouched.  Records are written with the
 * expires_ns of their new state (a debt delays the sweep).  The items'
 * decision and err fields are neither read nor written.  Returns LT_OK,
 * LT_EBUSY when the map stays full (after one sweep and one retry, as for
 * admission), LT_EIO on other LMDB errors, LT_EINVAL for bad arguments
 * (NULL pointers, n out of range, empty or long or repeated key, invalid
 * policy, a negative cost or actual) with nothing written. */
enum lt_err lt_bucket_settle_all(struct lt_kv *kv, const struct lt_admit_item *items, size_t n,
				 const int64_t *actual, int64_t now_ns);

/* The current decision of one bucket for cost 0, read-only. */
enum lt_err lt_bucket_store_peek(struct lt_kv *kv, const char *key,
				 const struct lt_bucket_policy *policy, int64_t now_ns,
				 struct lt_bucket_decision *d);

/* Delete up to max records whose expires_ns <= now_ns (0 = no limit), in
 * write transactions of at most 1000 deletions; *removed counts them. */
enum lt_err lt_bucket_sweep(struct lt_kv *kv, int64_t now_ns, size_t max, size_t *removed);

#endif
