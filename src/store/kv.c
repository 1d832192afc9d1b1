/*
 * kv.c — LMDB environment for buckets/.  See kv.h.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/kv.h"
#include "store/kv_int.h"

struct lt_kv {
	MDB_env *env;
	MDB_dbi buckets;
	MDB_dbi meta;
	bool readonly;
};

static enum lt_err map_rc(int rc)
{
	switch (rc) {
	case 0: return LT_OK;
	case ENOMEM: return LT_ENOMEM;
	case MDB_MAP_FULL: return LT_EBUSY;
	case MDB_INVALID:
	case MDB_CORRUPTED:
	case MDB_VERSION_MISMATCH:
	case MDB_PAGE_NOTFOUND: return LT_ECORRUPT;
	case MDB_NOTFOUND: return LT_ENOTFOUND;
	default: return LT_EIO;
	}
}

enum lt_err lt_kv_open(const char *dir, uint64_t map_size, bool readonly, struct lt_kv **out,
		       char *err)
{
	*out = NULL;
	if (!readonly && mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, LT_KV_ERR_MAX, "mkdir %s: %s", dir, strerror(errno));
		return LT_EIO;
	}
	struct lt_kv *kv = calloc(1, sizeof *kv);
	if (!kv)
		return LT_ENOMEM;
	kv->readonly = readonly;
	int rc = mdb_env_create(&kv->env);
	const char *step = "mdb_env_create";
	if (!rc) {
		step = "mdb_env_set_mapsize";
		rc = mdb_env_set_mapsize(kv->env, (size_t)map_size);
	}
	if (!rc) {
		step = "mdb_env_set_maxdbs";
		rc = mdb_env_set_maxdbs(kv->env, 8);
	}
	if (!rc) {
		step = "mdb_env_set_maxreaders";
		rc = mdb_env_set_maxreaders(kv->env, 1024);
	}
	if (!rc) {
		step = "mdb_env_open";
		unsigned flags = MDB_NOTLS | (readonly ? MDB_RDONLY : MDB_NOSYNC);
		rc = mdb_env_open(kv->env, dir, flags, 0600);
	}
	if (!rc) {
		int dead = 0;
		step = "mdb_reader_check";
		rc = mdb_reader_check(kv->env, &dead);
	}
	if (!rc) {
		MDB_txn *txn;
		step = "open buckets database";
		rc = mdb_txn_begin(kv->env, NULL, readonly ? MDB_RDONLY : 0, &txn);
		if (!rc) {
			rc = mdb_dbi_open(txn, "buckets", readonly ? 0 : MDB_CREATE, &kv->buckets);
			if (!rc)
				rc = mdb_dbi_open(txn, "meta", readonly ? 0 : MDB_CREATE,
						  &kv->meta);
			if (rc)
				mdb_txn_abort(txn);
			else
				rc = mdb_txn_commit(txn);
		}
	}
	if (rc) {
		snprintf(err, LT_KV_ERR_MAX, "%s %s: %s", step, dir, mdb_strerror(rc));
		if (kv->env)
			mdb_env_close(kv->env);
		free(kv);
		return map_rc(rc);
	}
	*out = kv;
	return LT_OK;
}

void lt_kv_close(struct lt_kv *kv)
{
	if (!kv)
		return;
	if (!kv->readonly)
		mdb_env_sync(kv->env, 1);
	mdb_env_close(kv->env);
	free(kv);
}

enum lt_err lt_kv_sync(struct lt_kv *kv)
{
	return kv->readonly ? LT_OK : map_rc(mdb_env_sync(kv->env, 1));
}

enum lt_err lt_kv_reader_check(struct lt_kv *kv, int *dead)
{
	*dead = 0;
	return map_rc(mdb_reader_check(kv->env, dead));
}

enum lt_err lt_kv_stat(struct lt_kv *kv, struct lt_kv_stat *out)
{
	MDB_envinfo info;
	MDB_stat st;
	MDB_txn *txn;
	int rc = mdb_env_info(kv->env, &info);
	if (rc)
		return map_rc(rc);
	rc = mdb_txn_begin(kv->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return map_rc(rc);
	rc = mdb_stat(txn, kv->buckets, &st);
	mdb_txn_abort(txn);
	if (rc)
		return map_rc(rc);
	out->entries = st.ms_entries;
	out->map_size = info.me_mapsize;
	out->page_size = st.ms_psize;
	out->used_bytes = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	out->depth = st.ms_depth;
	out->max_readers = info.me_maxreaders;
	out->readers = info.me_numreaders;
	return LT_OK;
}

enum lt_err lt_kv_counter_get(struct lt_kv *kv, const char *name, uint64_t *out)
{
	MDB_txn *txn;
	MDB_val k = {strlen(name), (void *)name}, v;
	int rc = mdb_txn_begin(kv->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return map_rc(rc);
	rc = mdb_get(txn, kv->meta, &k, &v);
	*out = 0;
	if (rc == 0 && v.mv_size == sizeof *out)
		memcpy(out, v.mv_data, sizeof *out);
	mdb_txn_abort(txn);
	return rc == 0 || rc == MDB_NOTFOUND ? LT_OK : map_rc(rc);
}

enum lt_err lt_kv_counter_bump(struct lt_kv *kv, const char *name, uint64_t *out)
{
	if (kv->readonly)
		return LT_EDENIED;
	MDB_txn *txn;
	MDB_val k = {strlen(name), (void *)name}, v;
	uint64_t cur = 0;
	int rc = mdb_txn_begin(kv->env, NULL, 0, &txn);
	if (rc)
		return map_rc(rc);
	rc = mdb_get(txn, kv->meta, &k, &v);
	if (rc == 0 && v.mv_size == sizeof cur)
		memcpy(&cur, v.mv_data, sizeof cur);
	cur++;
	v.mv_size = sizeof cur;
	v.mv_data = &cur;
	rc = mdb_put(txn, kv->meta, &k, &v, 0);
	if (rc) {
		mdb_txn_abort(txn);
		return map_rc(rc);
	}
	rc = mdb_txn_commit(txn);
	if (rc)
		return map_rc(rc);
	/* Other processes see the commit at once (shared map); make it durable
	 * too, since a lost bump could resurrect a revoked key's cache entry
	 * after a machine crash. */
	mdb_env_sync(kv->env, 1);
	if (out)
		*out = cur;
	return LT_OK;
}

void lt_kv_handles(struct lt_kv *kv, MDB_env **env, MDB_dbi *buckets)
{
	*env = kv->env;
	*buckets = kv->buckets;
}
