/*
 * kv.h — the LMDB environment that holds rate-limit buckets (buckets/).
 *
 * One environment per process, opened once at start with the configured map
 * size, MDB_NOSYNC (flushed by lt_kv_sync from the scheduler and at
 * shutdown: a crash of leakyd loses nothing, a crash of the machine may lose
 * the last second of rate state, which is soft state) and MDB_NOTLS (read
 * transactions are not tied to threads).  mdb_reader_check runs at open and
 * from the scheduler, because leakyctl is a second process.
 * lmdb.h is included only by this file's .c and the bucket store.
 *
 * Ownership: lt_kv_open allocates; lt_kv_close syncs, closes and frees.
 */
#ifndef LT_STORE_KV_H
#define LT_STORE_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define LT_KV_ERR_MAX 256

struct lt_kv;

struct lt_kv_stat {
	uint64_t entries;    /* records in the buckets database */
	uint64_t map_size;   /* configured map size, bytes */
	uint64_t used_bytes; /* pages in use × page size */
	uint64_t page_size;
	uint32_t depth; /* B-tree depth */
	uint32_t max_readers, readers;
};

/* Open or create the environment in directory `dir` (created 0700).
 * readonly opens for inspection (leakyctl check) without creating. */
enum lt_err lt_kv_open(const char *dir, uint64_t map_size, bool readonly, struct lt_kv **out,
		       char *err);
void lt_kv_close(struct lt_kv *kv);

enum lt_err lt_kv_sync(struct lt_kv *kv);
/* Clear stale reader slots left by dead processes; *dead counts them. */
enum lt_err lt_kv_reader_check(struct lt_kv *kv, int *dead);
enum lt_err lt_kv_stat(struct lt_kv *kv, struct lt_kv_stat *out);

/* Named 64-bit counters in the "meta" database, shared by every process
 * that opens the environment (leakyd and leakyctl).  The identity
 * generation lives here: any change to users, roles or keys bumps it, and
 * each cache entry remembers the generation it was made under, so a change
 * made by leakyctl invalidates leakyd's caches on its next request.
 * lt_kv_counter_get reads 0 for a counter never bumped. */
enum lt_err lt_kv_counter_get(struct lt_kv *kv, const char *name, uint64_t *out);
enum lt_err lt_kv_counter_bump(struct lt_kv *kv, const char *name, uint64_t *out);

#endif
