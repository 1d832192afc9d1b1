/*
 * auth_micro.c — in-process cost of lt_auth_authenticate and of Argon2id.
 *
 * Built and run by tools/bench/auth.sh (MICRO=1, the default); by hand:
 *   cc -O2 -std=c11 -D_DEFAULT_SOURCE -Isrc -Ibuild/rel/gen $(pkg-config --cflags \
 *      sqlite3 lmdb libsodium libcjson inih) tools/bench/auth_micro.c build/rel/libleaky.a \
 *      $(pkg-config --libs sqlite3 lmdb libsodium libcjson inih) -lcivetweb -lbearssl \
 *      -lpthread -lm -o /tmp/auth_micro && /tmp/auth_micro /tmp/some-empty-dir
 *
 * Opens DATADIR the way leakyd's open_storage does (data dir, leaky.db with
 * migrations, LMDB, writer thread, lt_auth_open with lt_config_defaults:
 * cache_size 4096, hash_concurrency 2), creates one user and NKEYS API keys
 * straight through identity_store on the writer (lastUsedAt set to now, so no
 * request below triggers the once-a-minute touch write), signs JWTs with
 * lt_auth_issue, warms every key once, then times, single-threaded:
 *
 *   apikey hit          lt_auth_authenticate(X-Api-Key) with the same key
 *   apikey miss         round-robin over NKEYS (8 x cache_size) distinct
 *                       keys: nearly every call misses (the cache counters
 *                       are printed): one api_keys + one users read through
 *                       the reader pool, keyed BLAKE2b, a cache insert
 *   jwt hit             Authorization: Bearer <JWT>, the same token
 *   jwt miss            100 x REPS distinct tokens (lt_auth_issue), each used
 *                       once: RS256 verify + one users read + insert
 *   components          the pieces: identity generation bump (what every
 *                       identity change costs: LMDB write txn + env sync),
 *                       generation read (LMDB read txn, on every call),
 *                       SHA-256 cache key, keyed BLAKE2b, lt_jwt_verify,
 *                       lt_auth_issue (RS256 sign, one per login)
 *   argon2id            lt_password_hash and lt_password_verify, ms/op
 *
 * Each row: REPS repetitions of a batch sized to ~0.2 s (argon2id: fixed
 * count), median and minimum ns per call.  Wall clock, one thread; the
 * machine's other load shows up in the spread between min and median.
 *
 * Usage: auth_micro DATADIR [NKEYS=32768] [REPS=7] [ARGON_N=10]
 * DATADIR should be empty or missing; it is left behind (the script removes
 * its temp dir).
 */
#define _POSIX_C_SOURCE 200809L
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "auth/apikey.h"
#include "auth/auth.h"
#include "auth/identity_store.h"
#include "auth/jwt.h"
#include "auth/password.h"
#include "auth/token_cache.h"
#include "conf/config.h"
#include "store/datadir.h"
#include "store/dbpool.h"
#include "store/db.h"
#include "store/kv.h"
#include "store/writer.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/uuid.h"

#define PASSWORD "bench-password-123"

static struct lt_auth A;
static char (*keys)[LT_APIKEY_LEN + 1];
static size_t nkeys;
static char *jwt;
static size_t jwt_len;
static char (*bearers)[1024]; /* "Bearer <JWT>", each a distinct token */
static size_t njwts;
static int reps = 7;
static size_t cursor; /* op index; round-robin and one-shot benches read it */
static volatile unsigned sink;

static int64_t mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what, enum lt_err e)
{
	fprintf(stderr, "auth_micro: %s: %s\n", what, lt_strerror(e));
	exit(1);
}

/* ---- setup ---- */

struct seed {
	struct lt_user u;
	char hash[LT_PASSWORD_HASH_LEN];
	struct lt_api_key_row *rows;
	size_t n;
	int64_t now_ms;
};

static enum lt_err do_seed(struct sqlite3 *db, void *arg)
{
	struct seed *s = arg;
	enum lt_conflict conflict;
	enum lt_err e = lt_ident_user_insert(db, &s->u, s->hash, &conflict);
	for (size_t i = 0; !e && i < s->n; i++) {
		e = lt_ident_key_insert(db, &s->rows[i]);
		if (!e)
			e = lt_ident_key_touch(db, s->rows[i].id, s->now_ms);
	}
	return e;
}

/* ---- timing ---- */

typedef void (*op_fn)(size_t i);

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Median and min ns/op over `reps` batches of n calls (n calibrated to
 * ~target_ns per batch unless fixed_n). */
static void bench(op_fn fn, size_t fixed_n, int64_t target_ns, double *med, double *min)
{
	size_t n = fixed_n;
	if (!n) {
		n = 1;
		for (;;) {
			int64_t t0 = mono();
			for (size_t i = 0; i < n; i++)
				fn(cursor++);
			int64_t dt = mono() - t0;
			if (dt > target_ns / 10 || n > (1u << 26)) {
				n = (size_t)((double)n * (double)target_ns / (double)(dt ? dt : 1));
				break;
			}
			n *= 4;
		}
		if (n < 10)
			n = 10;
	}
	int64_t per[64];
	int r = reps > 64 ? 64 : reps;
	for (int k = 0; k < r; k++) {
		int64_t t0 = mono();
		for (size_t i = 0; i < n; i++)
			fn(cursor++);
		per[k] = mono() - t0;
	}
	qsort(per, (size_t)r, sizeof per[0], cmp_i64);
	*med = (double)per[(r - 1) / 2] / (double)n;
	*min = (double)per[0] / (double)n;
}

static void row(const char *name, double med, double min, const char *note)
{
	if (med >= 1e6)
		printf("%-34s %12.2f ms %12.2f ms  %s\n", name, med / 1e6, min / 1e6, note);
	else
		printf("%-34s %12.0f ns %12.0f ns  %s\n", name, med, min, note);
	fflush(stdout);
}

static void must_ok(enum lt_err e, const struct lt_principal *p, enum lt_auth_fail why)
{
	if (e || !p->user_id[0]) {
		fprintf(stderr, "auth_micro: authentication failed: %s (why %d)\n", lt_strerror(e),
			(int)why);
		exit(1);
	}
	sink += (unsigned)p->user_id[0];
}

static void op_key_hit(size_t i)
{
	(void)i;
	struct lt_principal p;
	enum lt_auth_fail why = LT_AUTH_FAIL_NONE;
	enum lt_err e = lt_auth_authenticate(&A, NULL, keys[0], &p, &why);
	must_ok(e, &p, why);
}

static void op_key_rr(size_t i)
{
	struct lt_principal p;
	enum lt_auth_fail why = LT_AUTH_FAIL_NONE;
	enum lt_err e = lt_auth_authenticate(&A, NULL, keys[i % nkeys], &p, &why);
	must_ok(e, &p, why);
}

static void op_bump(size_t i)
{
	(void)i;
	lt_auth_changed(&A);
}

static char bearer[16384];

static void op_jwt_hit(size_t i)
{
	(void)i;
	struct lt_principal p;
	enum lt_auth_fail why = LT_AUTH_FAIL_NONE;
	enum lt_err e = lt_auth_authenticate(&A, bearer, NULL, &p, &why);
	must_ok(e, &p, why);
}

static void op_jwt_distinct(size_t i)
{
	struct lt_principal p;
	enum lt_auth_fail why = LT_AUTH_FAIL_NONE;
	enum lt_err e = lt_auth_authenticate(&A, bearers[i % njwts], NULL, &p, &why);
	must_ok(e, &p, why);
}

static void op_gen(size_t i)
{
	(void)i;
	sink += (unsigned)lt_auth_generation(&A);
}

static void op_sha(size_t i)
{
	unsigned char d[LT_TOKEN_DIGEST_LEN];
	lt_token_cache_digest(keys[i % 16], LT_APIKEY_LEN, d);
	sink += d[0];
}

static void op_blake(size_t i)
{
	unsigned char d[LT_APIKEY_DIGEST_LEN];
	lt_apikey_digest(A.pepper, keys[i % 16] + LT_APIKEY_PREFIX_LEN + 1, LT_APIKEY_SECRET_LEN,
			 d);
	sink += d[0];
}

static struct lt_user bench_user;
static struct sqlite3 *rdb; /* a pooled reader, held for the DB components */

static void op_pool(size_t i)
{
	(void)i;
	struct sqlite3 *db;
	if (lt_dbpool_acquire(&A.readers, 2000, &db))
		die("lt_dbpool_acquire", LT_EBUSY);
	lt_dbpool_release(&A.readers, db);
}

static void op_key_row(size_t i)
{
	char pub[LT_APIKEY_ID_LEN + 1];
	struct lt_api_key_row r;
	memcpy(pub, keys[i % nkeys] + LT_APIKEY_TAG_LEN, LT_APIKEY_ID_LEN);
	pub[LT_APIKEY_ID_LEN] = '\0';
	if (lt_ident_key_by_public(rdb, pub, &r))
		die("lt_ident_key_by_public", LT_ENOTFOUND);
	sink += r.digest[0];
}

static void op_user_row(size_t i)
{
	(void)i;
	struct lt_user u;
	if (lt_ident_user_by_id(rdb, bench_user.id, &u))
		die("lt_ident_user_by_id", LT_ENOTFOUND);
	sink += (unsigned)u.roles;
}

static void op_prepare(size_t i)
{
	(void)i;
	sqlite3_stmt *st;
	/* the text of lt_ident_key_by_public's statement */
	if (sqlite3_prepare_v2(rdb,
			       "SELECT id, public_id, user_id, coalesce(name, ''), digest, "
			       "created_at, expires_at, last_used_at, revoked_at FROM api_keys "
			       "WHERE public_id = ?1",
			       -1, &st, NULL) != SQLITE_OK)
		die("sqlite3_prepare_v2", LT_EINVAL);
	sqlite3_finalize(st);
}

static const struct lt_jwt_key *lookup0(void *arg, const char *kid, size_t kid_len)
{
	(void)arg;
	(void)kid;
	(void)kid_len;
	return &A.keys[0];
}

static void op_jwt_verify(size_t i)
{
	(void)i;
	struct lt_jwt_claims c;
	enum lt_jwt_fail jf;
	int64_t now = lt_clock_now_ns(A.clock) / LT_NS_PER_S;
	if (lt_jwt_verify(jwt, jwt_len, lookup0, NULL, now, LT_JWT_DEFAULT_SKEW, A.issuer,
			  A.audience, &c, &jf))
		die("lt_jwt_verify", LT_EDENIED);
	sink += (unsigned)c.sub[0];
}

static void op_issue(size_t i)
{
	(void)i;
	struct lt_buf b;
	int64_t iat, exp;
	lt_buf_init(&b, NULL, 0, 16384);
	if (lt_auth_issue(&A, &bench_user, &b, &iat, &exp))
		die("lt_auth_issue", LT_EINVAL);
	sink += (unsigned)b.len;
	lt_buf_release(&b);
}

static char stored_hash[LT_PASSWORD_HASH_LEN];

static void op_hash(size_t i)
{
	(void)i;
	char h[LT_PASSWORD_HASH_LEN];
	if (lt_password_hash(PASSWORD, strlen(PASSWORD), h))
		die("lt_password_hash", LT_ENOMEM);
	sink += (unsigned)h[20];
}

static void op_verify(size_t i)
{
	(void)i;
	bool ok = false, rehash = false;
	if (lt_password_verify(stored_hash, PASSWORD, strlen(PASSWORD), &ok, &rehash) || !ok)
		die("lt_password_verify", LT_EDENIED);
}

static void cache_delta(const struct lt_token_cache_stats *s0,
			const struct lt_token_cache_stats *s1, char *out, size_t cap)
{
	uint64_t h = s1->hits - s0->hits, m = s1->misses - s0->misses;
	snprintf(out, cap, "cache: %llu hits, %llu misses (%.1f%% hits)", (unsigned long long)h,
		 (unsigned long long)m, h + m ? 100.0 * (double)h / (double)(h + m) : 0.0);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: auth_micro DATADIR [NKEYS=32768] [REPS=7] [ARGON_N=10]\n");
		return 64;
	}
	const char *dir = argv[1];
	nkeys = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 32768;
	reps = argc > 3 ? atoi(argv[3]) : 7;
	size_t argon_n = argc > 4 ? (size_t)strtoul(argv[4], NULL, 10) : 10;
	if (nkeys < 16 || reps < 1 || argon_n < 1) {
		fprintf(stderr, "auth_micro: NKEYS >= 16, REPS >= 1, ARGON_N >= 1\n");
		return 64;
	}
	if (sodium_init() < 0)
		return 1;
	umask(077);
	setenv("LEAKYD_ADMIN_PASSWORD", "bench-admin-password", 0);

	/* ---- open storage like leakyd's open_storage ---- */
	static struct lt_config cfg;
	char err[LT_AUTH_ERR_MAX], db_path[1024], kv_path[1024];
	lt_config_defaults(&cfg);
	enum lt_err e = lt_config_set(&cfg, "storage", "data_dir", dir, "argv", err);
	if (e) {
		fprintf(stderr, "auth_micro: %s\n", err);
		return 1;
	}
	static struct lt_clock clock;
	static struct lt_log log;
	static struct lt_writer writer;
	struct sqlite3 *db = NULL;
	struct lt_kv *kv = NULL;
	lt_clock_init(&clock, false);
	lt_log_init(&log, 2, LT_LOG_WARN, false);
	if ((e = lt_datadir_prepare(dir, err)) ||
	    (e = lt_datadir_path(dir, "leaky.db", db_path, sizeof db_path)) ||
	    (e = lt_datadir_path(dir, "buckets", kv_path, sizeof kv_path)))
		die("data dir", e);
	int from = 0, to = 0;
	if ((e = lt_storage_open_db(dir, (int)cfg.storage_sqlite_synchronous,
				    (int)cfg.storage_busy_timeout_ms, &db, &from, &to, err)))
		die(err, e);
	if ((e = lt_kv_open(kv_path, (uint64_t)cfg.storage_lmdb_map_size, false, &kv, err)))
		die(err, e);
	if ((e = lt_writer_start(&writer, db, (size_t)cfg.storage_writer_queue,
				 (size_t)cfg.storage_writer_batch, NULL, NULL)))
		die("writer", e);
	if ((e = lt_auth_open(&A, &cfg, dir, db_path, kv, &writer, &clock, &log, err)))
		die(err, e);

	/* ---- one user, nkeys keys ---- */
	struct seed *s = calloc(1, sizeof *s);
	s->rows = calloc(nkeys, sizeof *s->rows);
	keys = calloc(nkeys, sizeof *keys);
	if (!s || !s->rows || !keys)
		die("calloc", LT_ENOMEM);
	s->now_ms = lt_clock_now_ns(&clock) / LT_NS_PER_MS;
	lt_uuid_v4(s->u.id);
	snprintf(s->u.username, sizeof s->u.username, "bench");
	snprintf(s->u.email, sizeof s->u.email, "bench@example.com");
	s->u.roles = LT_ROLE_USER;
	s->u.created_ms = s->now_ms;
	double hash_med, hash_min;
	/* (d) first, while nothing else is warm: Argon2id hash; keep one result */
	if ((e = lt_password_hash(PASSWORD, strlen(PASSWORD), s->hash)))
		die("lt_password_hash", e);
	memcpy(stored_hash, s->hash, sizeof stored_hash);
	for (size_t i = 0; i < nkeys; i++) {
		struct lt_api_key_row *r = &s->rows[i];
		char id[LT_APIKEY_ID_LEN + 1];
		struct lt_apikey_parts parts;
		lt_apikey_generate(keys[i], id);
		if (lt_apikey_parse(keys[i], LT_APIKEY_LEN, &parts))
			die("lt_apikey_parse", LT_EINVAL);
		lt_uuid_v4(r->id);
		memcpy(r->public_id, id, sizeof id);
		memcpy(r->user_id, s->u.id, sizeof r->user_id);
		lt_apikey_digest(A.pepper, parts.secret, LT_APIKEY_SECRET_LEN, r->digest);
		lt_apikey_parts_wipe(&parts);
		r->created_ms = s->now_ms;
	}
	s->n = nkeys;
	if ((e = lt_writer_run(&writer, do_seed, s)))
		die("seeding users and keys", e);
	bench_user = s->u;
	struct lt_buf tok;
	int64_t iat, exp;
	lt_buf_init(&tok, NULL, 0, 16384);
	if ((e = lt_auth_issue(&A, &s->u, &tok, &iat, &exp)))
		die("lt_auth_issue", e);
	jwt = strdup(tok.data);
	jwt_len = tok.len;
	snprintf(bearer, sizeof bearer, "Bearer %s", jwt);
	lt_buf_release(&tok);
	njwts = (size_t)reps * 100; /* ~3 ms to sign each */
	bearers = calloc(njwts, sizeof *bearers);
	if (!bearers)
		die("calloc", LT_ENOMEM);
	for (size_t i = 0; i < njwts; i++) {
		lt_buf_init(&tok, NULL, 0, 16384);
		if ((e = lt_auth_issue(&A, &s->u, &tok, &iat, &exp)))
			die("lt_auth_issue", e);
		snprintf(bearers[i], sizeof bearers[i], "Bearer %s", tok.data);
		lt_buf_release(&tok);
	}

	printf("# auth_micro: %zu API keys, cache_size %lld, hash_concurrency %lld, JWT %zu bytes, "
	       "%d reps, median and min per call, 1 thread\n",
	       nkeys, (long long)cfg.auth_cache_size, (long long)cfg.auth_hash_concurrency, jwt_len,
	       reps);
	printf("%-34s %15s %15s  %s\n", "operation", "median", "min", "note");

	const int64_t T = 200 * 1000000LL;
	double med, min;
	struct lt_token_cache_stats s0, s1;
	char note[160];

	/* warm: the SQLite page cache, the reader pool, the LMDB pages */
	for (size_t i = 0; i < nkeys; i++)
		op_key_rr(i);
	op_key_hit(0);
	op_jwt_hit(0);

	/* (a) API key, cache hit */
	lt_token_cache_stats(&A.apikeys, &s0);
	bench(op_key_hit, 0, T, &med, &min);
	lt_token_cache_stats(&A.apikeys, &s1);
	cache_delta(&s0, &s1, note, sizeof note);
	row("apikey hit", med, min, note);

	/* (b) API key, cache miss: distinct keys round-robin */
	lt_token_cache_stats(&A.apikeys, &s0);
	bench(op_key_rr, 0, T, &med, &min);
	lt_token_cache_stats(&A.apikeys, &s1);
	cache_delta(&s0, &s1, note, sizeof note);
	row("apikey miss (distinct keys)", med, min, note);

	/* (c) JWT: hit = the same token; miss = distinct tokens, each used once */
	op_jwt_hit(0);
	lt_token_cache_stats(&A.tokens, &s0);
	bench(op_jwt_hit, 0, T, &med, &min);
	lt_token_cache_stats(&A.tokens, &s1);
	cache_delta(&s0, &s1, note, sizeof note);
	row("jwt hit", med, min, note);
	cursor = 0;
	lt_token_cache_stats(&A.tokens, &s0);
	bench(op_jwt_distinct, njwts / (size_t)reps, 0, &med, &min);
	lt_token_cache_stats(&A.tokens, &s1);
	cache_delta(&s0, &s1, note, sizeof note);
	row("jwt miss (distinct tokens)", med, min, note);

	/* components */
	bench(op_bump, 0, T, &med, &min);
	row("  generation bump (identity change)", med, min,
	    "lt_auth_changed: LMDB write txn + mdb_env_sync");
	bench(op_gen, 0, T, &med, &min);
	row("  identity generation read", med, min, "lt_auth_generation: LMDB read txn");
	bench(op_sha, 0, T, &med, &min);
	row("  SHA-256 of the key (cache key)", med, min, "lt_token_cache_digest, 59 bytes");
	bench(op_blake, 0, T, &med, &min);
	row("  keyed BLAKE2b of the secret", med, min, "lt_apikey_digest, 43 bytes");
	bench(op_pool, 0, T, &med, &min);
	row("  reader pool acquire + release", med, min, "lt_dbpool, 8 connections");
	if (lt_dbpool_acquire(&A.readers, 2000, &rdb))
		die("lt_dbpool_acquire", LT_EBUSY);
	bench(op_key_row, 0, T, &med, &min);
	row("  api_keys row by public id", med, min, "lt_ident_key_by_public, round-robin");
	bench(op_user_row, 0, T, &med, &min);
	row("  users row by id (+ roles)", med, min, "lt_ident_user_by_id");
	bench(op_prepare, 0, T, &med, &min);
	row("  of which prepare + finalize", med, min,
	    "sqlite3_prepare_v2 of the api_keys SELECT (every call)");
	lt_dbpool_release(&A.readers, rdb);
	bench(op_jwt_verify, 0, T, &med, &min);
	row("  lt_jwt_verify (RS256)", med, min, "signature + claims, no DB");
	bench(op_issue, 0, T, &med, &min);
	row("  lt_auth_issue (RS256 sign)", med, min, "one per login");

	/* (d) Argon2id */
	bench(op_hash, argon_n, 0, &hash_med, &hash_min);
	row("argon2id hash", hash_med, hash_min, "lt_password_hash, interactive limits");
	bench(op_verify, argon_n, 0, &med, &min);
	row("argon2id verify", med, min, "lt_password_verify, one per login");

	lt_auth_close(&A);
	lt_writer_stop(&writer);
	lt_kv_close(kv);
	lt_db_close(db);
	lt_writer_release(&writer);
	free(s->rows);
	free(s);
	free(keys);
	free(jwt);
	free(bearers);
	return 0;
}
