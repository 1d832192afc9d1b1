/*
 * kv_int.h — internal access to the LMDB handles behind struct lt_kv, for
 * the bucket store (src/limit/bucket_store.c) and its tests only.  Every
 * other module goes through kv.h and never sees lmdb.h.
 *
 * The handles belong to the struct lt_kv: valid until lt_kv_close, never
 * closed by the caller.
 */
#ifndef LT_STORE_KV_INT_H
#define LT_STORE_KV_INT_H

#include <lmdb.h>

#include "store/kv.h"

/* The environment and the "buckets" database handle of an open kv. */
void lt_kv_handles(struct lt_kv *kv, MDB_env **env, MDB_dbi *buckets);

#endif
