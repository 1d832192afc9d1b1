/*
 * cmd_store.c — leakyctl init, check and version: the data directory.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>

#include "cli/cli.h"
#include "store/datadir.h"
#include "quota/pool_store.h"
#include "saga/saga_store.h"
#include "store/db.h"
#include "store/kv.h"
#include "version.h"

static int no_args(const char *cmd, int argc, char **argv)
{
	if (argc > 0) {
		fprintf(stderr, "leakyctl %s: unexpected argument '%s'\n", cmd, argv[0]);
		return EX_USAGE;
	}
	return 0;
}

int lt_cmd_init(struct lt_cli *cli, int argc, char **argv)
{
	int rc = no_args("init", argc, argv);
	if (rc)
		return rc;
	char err[LT_DATADIR_ERR_MAX], path[4096];
	if (lt_datadir_prepare(cli->data_dir, err)) {
		fprintf(stderr, "leakyctl init: %s\n", err);
		return EX_CANTCREAT;
	}
	struct sqlite3 *db;
	int from, to;
	enum lt_err e =
		lt_storage_open_db(cli->data_dir, (int)cli->cfg.storage_sqlite_synchronous,
				   (int)cli->cfg.storage_busy_timeout_ms, &db, &from, &to, err);
	if (e) {
		fprintf(stderr, "leakyctl init: leaky.db: %s\n", err);
		return e == LT_ESCHEMA ? EX_DATAERR : EX_IOERR;
	}
	lt_db_close(db);
	struct lt_kv *kv;
	char kerr[LT_KV_ERR_MAX] = "data directory path too long";
	if (lt_datadir_path(cli->data_dir, "buckets", path, sizeof path) ||
	    lt_kv_open(path, (uint64_t)cli->cfg.storage_lmdb_map_size, false, &kv, kerr)) {
		fprintf(stderr, "leakyctl init: bucket store: %s\n", kerr);
		return EX_IOERR;
	}
	lt_kv_close(kv);
	if (from == to)
		printf("%s: already initialised (schema %d)\n", cli->data_dir, to);
	else
		printf("%s: initialised (schema %d -> %d)\n", cli->data_dir, from, to);
	return 0;
}

static void print_bad_pool(void *arg, const struct lt_pool_row *row, const char *problem)
{
	(void)arg;
	printf("quota ledger: pool %lld (%s %s, %s): %s\n", (long long)row->id,
	       row->key.kind == LT_OWNER_ORG ? "org" : "user", row->key.owner_id, row->key.provider,
	       problem);
}

static void print_bad_saga(void *arg, const char *id, const char *problem)
{
	(void)arg;
	printf("sagas: %s: %s\n", id, problem);
}

int lt_cmd_check(struct lt_cli *cli, int argc, char **argv)
{
	int rc = no_args("check", argc, argv);
	if (rc)
		return rc;
	char path[4096], err[LT_DB_ERR_MAX];
	struct stat st;
	if (lt_datadir_path(cli->data_dir, "leaky.db", path, sizeof path) || stat(path, &st) != 0) {
		fprintf(stderr, "leakyctl check: no database at %s/leaky.db (run leakyctl init)\n",
			cli->data_dir);
		return EX_NOINPUT;
	}
	struct sqlite3 *db;
	if (lt_db_open(path, false, true, (int)cli->cfg.storage_sqlite_synchronous,
		       (int)cli->cfg.storage_busy_timeout_ms, &db, err)) {
		fprintf(stderr, "leakyctl check: %s\n", err);
		return EX_IOERR;
	}
	int failures = 0, version = 0, latest = 0;
	lt_schema_latest(lt_schema_sql, &latest);
	if (lt_db_user_version(db, &version)) {
		printf("schema: cannot read user_version\n");
		failures++;
	} else if (version > latest) {
		printf("schema: version %d is newer than this build (%d): FAIL\n", version, latest);
		failures++;
	} else if (version < latest) {
		printf("schema: version %d, this build has %d: run leakyd or leakyctl init to "
		       "migrate\n",
		       version, latest);
		failures++;
	} else {
		printf("schema: version %d: ok\n", version);
	}
	bool ok = false;
	if (lt_db_integrity(db, &ok, err) || !ok) {
		printf("leaky.db integrity_check: FAIL: %s\n", err);
		failures++;
	} else {
		printf("leaky.db integrity_check: ok\n");
	}
	if (version == latest) {
		size_t pools = 0, bad = 0;
		if (lt_pool_store_check(db, &pools, &bad, print_bad_pool, NULL)) {
			printf("quota ledger: FAIL: cannot read the pools\n");
			failures++;
		} else if (bad) {
			printf("quota ledger: %zu of %zu pool%s disagree with the ledger: FAIL\n",
			       bad, pools, pools == 1 ? "" : "s");
			failures++;
		} else {
			printf("quota ledger: %zu pool%s, each equal to the sum of its ledger: "
			       "ok\n",
			       pools, pools == 1 ? "" : "s");
		}
		size_t sagas = 0, sbad = 0;
		if (lt_saga_store_check(db, &sagas, &sbad, print_bad_saga, NULL)) {
			printf("sagas: FAIL: cannot read the sagas\n");
			failures++;
		} else if (sbad) {
			printf("sagas: %zu of %zu final saga%s disagree with the ledger: FAIL\n",
			       sbad, sagas, sagas == 1 ? "" : "s");
			failures++;
		} else {
			printf("sagas: %zu final saga%s, each matching its ledger rows: ok\n",
			       sagas, sagas == 1 ? "" : "s");
		}
	}
	lt_db_close(db);

	struct lt_kv *kv;
	char kerr[LT_KV_ERR_MAX] = "data directory path too long";
	struct lt_kv_stat ks;
	if (lt_datadir_path(cli->data_dir, "buckets", path, sizeof path) ||
	    lt_kv_open(path, (uint64_t)cli->cfg.storage_lmdb_map_size, true, &kv, kerr)) {
		printf("bucket store: FAIL: %s\n", kerr);
		failures++;
	} else {
		if (lt_kv_stat(kv, &ks)) {
			printf("bucket store: FAIL: stat\n");
			failures++;
		} else {
			printf("bucket store: %llu entries, %llu of %llu bytes used, depth %u, "
			       "%u/%u readers: ok\n",
			       (unsigned long long)ks.entries, (unsigned long long)ks.used_bytes,
			       (unsigned long long)ks.map_size, ks.depth, ks.readers,
			       ks.max_readers);
		}
		lt_kv_close(kv);
	}
	if (failures) {
		printf("check: %d problem%s\n", failures, failures == 1 ? "" : "s");
		return EX_DATAERR;
	}
	printf("check: ok\n");
	return 0;
}

int lt_cmd_version(struct lt_cli *cli, int argc, char **argv)
{
	(void)cli;
	int rc = no_args("version", argc, argv);
	if (rc)
		return rc;
	int latest = 0;
	lt_schema_latest(lt_schema_sql, &latest);
	printf("leakyctl %s (%s), schema %d\n", LT_VERSION, LT_GIT_REV, latest);
	return 0;
}
