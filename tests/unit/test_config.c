/*
 * test_config.c — src/conf/config.c: the key table, INI loading with its
 * "path:line: message" errors, overrides, rendering and reload merging.
 * Each test writes its files into a fresh temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "conf/config.h"
#include "limit/bucket.h"
#include "testutil.h"

#define KIB INT64_C(1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
#define PAD                                                                                        \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"    \
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

struct fixture {
	char dir[TU_PATH_MAX];
	char path[TU_PATH_MAX]; /* <dir>/leakyd.conf */
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	tu_tmpdir(f->dir);
	tu_path(f->path, f->dir, "leakyd.conf");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	tu_rmtree(f->dir);
	free(f);
	return 0;
}

/* Write text as the config file and load it. */
static enum lt_err load_text(struct fixture *f, const char *text, struct lt_config *cfg, char *err)
{
	tu_write_file(f->path, text, strlen(text));
	err[0] = '\0';
	return lt_config_load(f->path, cfg, err);
}

static const struct lt_config_key *key(const char *section, const char *name)
{
	size_t n;
	const struct lt_config_key *keys = lt_config_keys(&n);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(keys[i].section, section) && !strcmp(keys[i].name, name))
			return &keys[i];
	fail_msg("no key [%s] %s", section, name);
	return NULL;
}

static void test_defaults(void **state)
{
	(void)state;
	struct lt_config cfg;
	memset(&cfg, 0xA5, sizeof cfg);
	lt_config_defaults(&cfg);
	assert_string_equal(cfg.http_listen, "127.0.0.1:8080");
	assert_int_equal(cfg.http_threads, 128);
	assert_int_equal(cfg.http_max_inflight, 512);
	assert_int_equal(cfg.http_max_body, MIB);
	assert_int_equal(cfg.http_max_header, 16 * KIB);
	assert_true(cfg.http_keep_alive);
	assert_string_equal(cfg.storage_data_dir, "./var");
	assert_int_equal(cfg.storage_sqlite_synchronous, LT_SYNC_NORMAL);
	assert_int_equal(cfg.storage_lmdb_map_size, 256 * MIB);
	assert_int_equal(cfg.log_level, 1); /* info */
	assert_true(cfg.log_access);
	assert_string_equal(cfg.log_file, "");
	assert_false(cfg.stubs_enabled);
	assert_string_equal(cfg.stubs_listen, "127.0.0.1:8090");
	assert_false(cfg.debug_manual_clock);
	assert_false(cfg.debug_test_endpoints);
	assert_string_equal(cfg.auth_tiers, "USER:0,ORG_ADMIN:1,ADMIN:2");
	assert_string_equal(cfg.source, "");
	/* [limits] and [features] */
	assert_int_equal(cfg.limits_token_algorithm, LT_ALGO_LEAKY);
	assert_int_equal(cfg.limits_token_capacity, 1000);
	assert_int_equal(cfg.limits_token_rate, 10);
	assert_int_equal(cfg.limits_token_period_ms, 1000);
	assert_string_equal(cfg.limits_tier_multipliers, "USER:1,ADMIN:2");
	assert_int_equal(cfg.limits_request_algorithm, LT_ALGO_FIXED);
	assert_int_equal(cfg.limits_request_limit, 120);
	assert_int_equal(cfg.limits_request_window_ms, 60000);
	assert_string_equal(cfg.limits_request_routes, "/api/v1/tokens/**=200");
	assert_string_equal(cfg.limits_whitelist,
			    "/actuator/**,/healthz,/readyz,/metrics,/openapi.json");
	assert_int_equal(cfg.limits_client_key, LT_CLIENT_AUTO);
	assert_int_equal(cfg.limits_org_capacity, 0);
	assert_int_equal(cfg.limits_org_rate, 0);
	assert_true(cfg.features_rate_limiting);
	assert_true(cfg.features_quota_enforcement);
}

/* The table itself: well-formed rows, unique names, and every default parses
 * through the same path a flag would take and renders back as written. */
static void test_table_defaults_parse(void **state)
{
	(void)state;
	size_t n;
	const struct lt_config_key *keys = lt_config_keys(&n);
	assert_true(n >= 20);
	struct lt_config cfg;
	lt_config_defaults(&cfg);
	for (size_t i = 0; i < n; i++) {
		const struct lt_config_key *k = &keys[i];
		char err[LT_CFG_ERR_MAX] = "", val[LT_CFG_STR_MAX];
		assert_non_null(k->section);
		assert_non_null(k->name);
		assert_non_null(k->def);
		assert_non_null(k->help);
		assert_true(strlen(k->help) > 0);
		assert_true(k->min <= k->max || k->type == LT_CFG_HOSTPORT ||
			    k->type == LT_CFG_BOOL || k->type == LT_CFG_ENUM);
		if (k->type == LT_CFG_ENUM)
			assert_non_null(k->choices);
		for (size_t j = 0; j < i; j++)
			assert_false(!strcmp(keys[j].section, k->section) &&
				     !strcmp(keys[j].name, k->name));
		if (lt_config_set(&cfg, k->section, k->name, k->def, "default", err) != LT_OK)
			fail_msg("default of [%s] %s does not parse: %s", k->section, k->name, err);
		lt_config_value_str(&cfg, k, val, sizeof val);
		if (strcmp(val, k->def) != 0)
			fail_msg("[%s] %s: default '%s' renders as '%s'", k->section, k->name,
				 k->def, val);
	}
}

static void test_load_good(void **state)
{
	struct fixture *f = *state;
	struct lt_config cfg;
	char err[LT_CFG_ERR_MAX];
	const char *text = "; a comment\n"
			   "# another comment\n"
			   "\n"
			   "[http]\n"
			   "listen = localhost:9000\n"
			   "threads=16\n"
			   "max_body = 2K ; inline comment\n"
			   "Keep_Alive = NO\n"
			   "\n"
			   "[Storage]\n"
			   "data_dir = /srv/leaky data\n"
			   "sqlite_synchronous = FULL\n"
			   "lmdb_map_size = 1G\n"
			   "writer_queue = 16\n"
			   "[log]\n"
			   "level = warn\n"
			   "access = off\n"
			   "file = /var/log/leaky;d.log\n"
			   "[debug]\n"
			   "manual_clock = true\n"
			   "test_endpoints = 1\n"
			   "[auth]\n"
			   "tiers = USER:0, GOLD:5 ,ADMIN:9\n";
	assert_int_equal(load_text(f, text, &cfg, err), LT_OK);
	assert_string_equal(err, "");
	assert_string_equal(cfg.http_listen, "localhost:9000");
	assert_int_equal(cfg.http_threads, 16);
	assert_int_equal(cfg.http_max_body, 2048);
	assert_false(cfg.http_keep_alive);
	assert_string_equal(cfg.storage_data_dir, "/srv/leaky data");
	assert_int_equal(cfg.storage_sqlite_synchronous, LT_SYNC_FULL);
	assert_int_equal(cfg.storage_lmdb_map_size, GIB);
	assert_int_equal(cfg.storage_writer_queue, 16);
	assert_int_equal(cfg.log_level, 2);
	assert_false(cfg.log_access);
	assert_string_equal(cfg.log_file, "/var/log/leaky;d.log");
	assert_true(cfg.debug_manual_clock);
	assert_true(cfg.debug_test_endpoints);
	assert_string_equal(cfg.auth_tiers, "USER:0, GOLD:5 ,ADMIN:9");
	/* untouched keys keep their defaults */
	assert_int_equal(cfg.http_max_inflight, 512);
	assert_string_equal(cfg.stubs_listen, "127.0.0.1:8090");
	assert_string_equal(cfg.source, f->path);
}

static void test_load_empty_file(void **state)
{
	struct fixture *f = *state;
	struct lt_config cfg, def;
	char err[LT_CFG_ERR_MAX];
	assert_int_equal(load_text(f, "", &cfg, err), LT_OK);
	lt_config_defaults(&def);
	assert_int_equal(cfg.http_threads, def.http_threads);
	assert_string_equal(cfg.http_listen, def.http_listen);
}

static void test_load_missing_file(void **state)
{
	struct fixture *f = *state;
	struct lt_config cfg;
	char err[LT_CFG_ERR_MAX], want[LT_CFG_ERR_MAX + TU_PATH_MAX];
	char path[TU_PATH_MAX];
	tu_path(path, f->dir, "absent.conf");
	assert_int_equal(lt_config_load(path, &cfg, err), LT_EIO);
	snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
	assert_string_equal(err, want);
}

struct reject {
	const char *text;
	const char *msg; /* expected after "<path>:" */
};

static const struct reject rejects[] = {
	{"[nope]\nx = 1\n", "1: unknown section [nope]"},
	{"[http]\nthreads = 4\n[nope]\n", "3: unknown section [nope]"}, /* even when empty */
	{"[Https]\n", "1: unknown section [Https]"},
	{"[xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	 "x]\n",
	 "1: section name too long"},
	{"[http]\nbogus = 1\n", "2: unknown key 'bogus' in section [http]"},
	{"[http]\nthreads = 4\nmax_inflight = 9\nTHREADS = 8\n",
	 "4: duplicate key 'THREADS' (first set on line 2)"},
	{"[http]\nkeep_alive = maybe\n", "2: [http] keep_alive must be yes or no, got 'maybe'"},
	{"[http]\nkeep_alive = \n", "2: [http] keep_alive must be yes or no, got ''"},
	{"[log]\nlevel = loud\n",
	 "2: [log] level must be one of debug, info, warn, error, got 'loud'"},
	{"[storage]\nsqlite_synchronous = 1\n",
	 "2: [storage] sqlite_synchronous must be one of off, normal, full, got '1'"},
	{"[http]\nthreads = many\n", "2: [http] 'many' is not a number"},
	{"[http]\nthreads = +4\n", "2: [http] '+4' is not a number"},
	{"[http]\nthreads = 12x\n", "2: [http] '12x' is not a whole number"},
	{"[http]\nthreads = 4K\n", "2: [http] '4K' is not a whole number"},
	{"[http]\nthreads = 99999999999999999999\n",
	 "2: [http] '99999999999999999999' is not a number"},
	{"[http]\nthreads = 1\n", "2: [http] threads must be between 2 and 4096, got '1'"},
	{"[http]\nthreads = 4097\n", "2: [http] threads must be between 2 and 4096, got '4097'"},
	{"[http]\nthreads = -3\n", "2: [http] threads must be between 2 and 4096, got '-3'"},
	{"[http]\nmax_body = 65M\n",
	 "2: [http] max_body must be between 1024 and 67108864, got '65M'"},
	{"[http]\nmax_body = 1023\n",
	 "2: [http] max_body must be between 1024 and 67108864, got '1023'"},
	{"[storage]\nlmdb_map_size = 9000000000G\n",
	 "2: [storage] lmdb_map_size must be between 1048576 and 1099511627776, got '9000000000G'"},
	{"[http]\nmax_body = 1T\n",
	 "2: [http] '1T' is not a size (number with optional K, M or G)"},
	{"[http]\nmax_body = 1KB\n",
	 "2: [http] '1KB' is not a size (number with optional K, M or G)"},
	{"[http]\nlisten = localhost\n", "2: [http] expected HOST:PORT, got 'localhost'"},
	{"[http]\nlisten = :80\n", "2: [http] expected HOST:PORT, got ':80'"},
	{"[http]\nlisten = ::1:80\n", "2: [http] expected HOST:PORT, got '::1:80'"},
	{"[http]\nlisten = [::1]:8080\n",
	 "2: [http] IPv6 addresses are not supported, got '[::1]:8080'"},
	{"[http]\nlisten = []:80\n", "2: [http] IPv6 addresses are not supported, got '[]:80'"},
	{"[http]\nlisten = host_name:80\n", "2: [http] invalid host in 'host_name:80'"},
	{"[http]\nlisten = 127.0.0.1:70000\n",
	 "2: [http] port must be 0-65535 in '127.0.0.1:70000'"},
	{"[http]\nlisten = 127.0.0.1:\n", "2: [http] port must be 0-65535 in '127.0.0.1:'"},
	{"[http]\nlisten = 127.0.0.1:-1\n", "2: [http] port must be 0-65535 in '127.0.0.1:-1'"},
	{"[stubs]\nlisten = 127.0.0.1:8x\n", "2: [stubs] port must be 0-65535 in '127.0.0.1:8x'"},
	{"[storage]\ndata_dir =\n", "2: [storage] data_dir must be 1 to 448 characters long"},
	/* values that would not read back the same once rendered */
	{"[storage]\ndata_dir =;x\n",
	 "2: [storage] data_dir must not have ';' at its start or after a space"},
	{"[log]\nfile = a\x01b\n", "2: [log] file must not contain control characters"},
	{"[log]\nfile = a\tb\n", "2: [log] file must not contain control characters"},
	/* a key's own check ([auth] tiers: auth/tiers.c) */
	{"[auth]\ntiers = USER:0,gold:1\n",
	 "2: [auth] tiers: tier name 'gold' must be 1-32 characters of A-Z, 0-9 or _"},
	{"[auth]\nissuer = x\ntiers = GOLD:1\n", "3: [auth] tiers: USER must be one of the tiers"},
	{"[auth]\ntiers =\n", "2: [auth] tiers must be 1 to 511 characters long"},
	/* [limits] and [features]: bounds, enums and the lists' own checks (limit/policy.c) */
	{"[limits]\ntoken_capacity = 0\n",
	 "2: [limits] token_capacity must be between 1 and 1000000000, got '0'"},
	{"[limits]\ntoken_rate = 1000000001\n",
	 "2: [limits] token_rate must be between 1 and 1000000000, got '1000000001'"},
	{"[limits]\ntoken_period_ms = 86400001\n",
	 "2: [limits] token_period_ms must be between 1 and 86400000, got '86400001'"},
	{"[limits]\nrequest_limit = 0\n",
	 "2: [limits] request_limit must be between 1 and 1000000000, got '0'"},
	{"[limits]\nrequest_window_ms = 0\n",
	 "2: [limits] request_window_ms must be between 1 and 86400000, got '0'"},
	{"[limits]\norg_capacity = -1\n",
	 "2: [limits] org_capacity must be between 0 and 1000000000000, got '-1'"},
	{"[limits]\norg_rate = 1000000000001\n",
	 "2: [limits] org_rate must be between 0 and 1000000000000, got '1000000000001'"},
	{"[limits]\ntoken_algorithm = bucket\n",
	 "2: [limits] token_algorithm must be one of leaky, token, fixed, gcra, got 'bucket'"},
	{"[limits]\nrequest_algorithm = sliding\n",
	 "2: [limits] request_algorithm must be one of leaky, token, fixed, gcra, got 'sliding'"},
	{"[limits]\nclient_key = header\n",
	 "2: [limits] client_key must be one of auto, api_key, user, ip, got 'header'"},
	{"[limits]\ntier_multipliers = USER:1,ADMIN:0\n",
	 "2: [limits] tier_multipliers: multiplier of ADMIN must be a whole number 1-1000, got "
	 "'0'"},
	{"[limits]\ntier_multipliers = USER:1,USER:2\n",
	 "2: [limits] tier_multipliers: tier USER is listed twice"},
	{"[limits]\nrequest_routes = /api/*=5\n",
	 "2: [limits] request_routes: path '/api/*': '*' is allowed only as a final /**"},
	{"[limits]\nrequest_routes = /api/v1/tokens/**\n",
	 "2: [limits] request_routes: expected PATH=LIMIT, got '/api/v1/tokens/**'"},
	{"[limits]\nwhitelist = /healthz,readyz\n",
	 "2: [limits] whitelist: path 'readyz' must start with '/'"},
	{"[limits]\nwhitelist = /a,,/b\n", "2: [limits] whitelist: empty item"},
	{"[limits]\nwhitelist = /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,"
	 "/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb,"
	 "/cccccccccccccccccccccccccccccccccccccccccccc\n",
	 "2: [limits] whitelist must be 0 to 176 characters long"},
	{"[limits]\nbogus = 1\n", "2: unknown key 'bogus' in section [limits]"},
	{"[features]\nrate_limiting = maybe\n",
	 "2: [features] rate_limiting must be yes or no, got 'maybe'"},
	{"[features]\nquota_enforcement = 2\n",
	 "2: [features] quota_enforcement must be yes or no, got '2'"},
	{"threads = 4\n[http]\n", "1: key 'threads' outside any section"},
	{"[http]\nthreads\n", "2: syntax error (expected [section] or key = value)"},
	/* an indented line is not a continuation of the value above */
	{"[http]\nthreads = 4\n  8\n", "3: syntax error (expected [section] or key = value)"},
	{"[http\nthreads = 4\n", "1: syntax error (expected [section] or key = value)"},
	/* the first error wins, whichever kind it is */
	{"[http]\nthreads\nbogus = 1\n", "2: syntax error (expected [section] or key = value)"},
	{"[http]\nbogus = 1\nthreads\n", "2: unknown key 'bogus' in section [http]"},
	{"[http]\nthreads = 4\nthreads = 1\n", "3: duplicate key 'threads' (first set on line 2)"},
};

static void test_load_rejects(void **state)
{
	struct fixture *f = *state;
	for (size_t i = 0; i < sizeof rejects / sizeof rejects[0]; i++) {
		struct lt_config cfg;
		char err[LT_CFG_ERR_MAX], want[LT_CFG_ERR_MAX + TU_PATH_MAX];
		enum lt_err e = load_text(f, rejects[i].text, &cfg, err);
		snprintf(want, sizeof want, "%s:%s", f->path, rejects[i].msg);
		if (e != LT_ECONFIG || strcmp(err, want) != 0)
			fail_msg("case %zu: %s\n got  %d '%s'\n want %d '%s'", i, rejects[i].text,
				 (int)e, err, (int)LT_ECONFIG, want);
	}
}

/* inih's line buffer is 200 bytes: 198 characters plus newline and NUL. */
static void test_load_line_length(void **state)
{
	struct fixture *f = *state;
	struct lt_config cfg;
	char err[LT_CFG_ERR_MAX], want[LT_CFG_ERR_MAX + TU_PATH_MAX];
	char text[1024];
	char pad[400];

	/* longest line accepted: a 198-character value line */
	memset(pad, 'a', sizeof pad);
	int n = snprintf(text, sizeof text, "[log]\nfile = /%.*s\n[http]\nthreads = 7\n", 198 - 8,
			 pad);
	assert_true(n > 0);
	assert_int_equal(load_text(f, text, &cfg, err), LT_OK);
	assert_int_equal(strlen(cfg.log_file), 198 - 7);
	assert_int_equal(cfg.http_threads, 7);

	/* one more character is refused, on its own line number, even as a comment */
	snprintf(text, sizeof text, "[http]\nthreads = 7\n# %.*s\nthreads = 9\n", 199 - 2, pad);
	assert_int_equal(load_text(f, text, &cfg, err), LT_ECONFIG);
	snprintf(want, sizeof want, "%s:3: line longer than 198 characters", f->path);
	assert_string_equal(err, want);

	/* a very long line whose tail looks like another line: still one line */
	snprintf(text, sizeof text, "[http]\nthreads = 4 ;%.*s\nbogus = 1\n", 300, pad);
	memset(strchr(text, ';') + 1 + 300, ' ', 1); /* join the tail to the line */
	assert_int_equal(load_text(f, text, &cfg, err), LT_ECONFIG);
	snprintf(want, sizeof want, "%s:2: line longer than 198 characters", f->path);
	assert_string_equal(err, want);
}

static void test_size_suffixes(void **state)
{
	struct fixture *f = *state;
	struct lt_config cfg;
	char err[LT_CFG_ERR_MAX];
	static const struct {
		const char *text;
		int64_t want;
	} cases[] = {
		{"1024", 1024},	 {"2K", 2 * KIB},   {"2k", 2 * KIB}, {"3M", 3 * MIB},
		{"3m", 3 * MIB}, {"64M", 64 * MIB}, {"1536", 1536},  {"0M", -1},
		{"1G", -1},	 {"1g", -1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char text[128];
		snprintf(text, sizeof text, "[http]\nmax_body = %s\n", cases[i].text);
		enum lt_err e = load_text(f, text, &cfg, err);
		if (cases[i].want < 0) { /* out of [1K, 64M] */
			assert_int_equal(e, LT_ECONFIG);
		} else {
			assert_int_equal(e, LT_OK);
			assert_int_equal(cfg.http_max_body, cases[i].want);
		}
	}
	assert_int_equal(load_text(f, "[storage]\nlmdb_map_size = 2g\n", &cfg, err), LT_OK);
	assert_int_equal(cfg.storage_lmdb_map_size, 2 * GIB);
	assert_int_equal(load_text(f, "[storage]\nlmdb_map_size = 1024G\n", &cfg, err), LT_OK);
	assert_int_equal(cfg.storage_lmdb_map_size, 1024 * GIB);

	/* rendering picks the largest exact unit */
	char val[64];
	cfg.storage_lmdb_map_size = 3 * GIB;
	lt_config_value_str(&cfg, key("storage", "lmdb_map_size"), val, sizeof val);
	assert_string_equal(val, "3G");
	cfg.storage_lmdb_map_size = 1536 * MIB;
	lt_config_value_str(&cfg, key("storage", "lmdb_map_size"), val, sizeof val);
	assert_string_equal(val, "1536M");
	cfg.http_max_body = 1536;
	lt_config_value_str(&cfg, key("http", "max_body"), val, sizeof val);
	assert_string_equal(val, "1536");
	cfg.http_max_body = 2048;
	lt_config_value_str(&cfg, key("http", "max_body"), val, sizeof val);
	assert_string_equal(val, "2K");
}

static void test_set_origin(void **state)
{
	(void)state;
	struct lt_config cfg;
	char err[LT_CFG_ERR_MAX];
	lt_config_defaults(&cfg);

	assert_int_equal(lt_config_set(&cfg, "http", "listen", "0.0.0.0:0", "--listen", err),
			 LT_OK);
	assert_string_equal(cfg.http_listen, "0.0.0.0:0");
	assert_int_equal(
		lt_config_set(&cfg, "storage", "data_dir", "/tmp/x", "LEAKYD_DATA_DIR", err),
		LT_OK);
	assert_string_equal(cfg.storage_data_dir, "/tmp/x");

	assert_int_equal(lt_config_set(&cfg, "http", "listen", "nowhere", "--listen", err),
			 LT_ECONFIG);
	assert_string_equal(err, "--listen: expected HOST:PORT, got 'nowhere'");
	assert_string_equal(cfg.http_listen, "0.0.0.0:0"); /* unchanged on error */

	assert_int_equal(lt_config_set(&cfg, "http", "listen", "h:99999", "LEAKYD_LISTEN", err),
			 LT_ECONFIG);
	assert_string_equal(err, "LEAKYD_LISTEN: port must be 0-65535 in 'h:99999'");

	assert_int_equal(lt_config_set(&cfg, "http", "bogus", "1", "--bogus", err), LT_ECONFIG);
	assert_string_equal(err, "--bogus: unknown key [http] bogus");

	assert_int_equal(lt_config_set(&cfg, "http", "threads", "1", "--threads", err), LT_ECONFIG);
	assert_string_equal(err, "--threads: threads must be between 2 and 4096, got '1'");
	assert_int_equal(cfg.http_threads, 128);

	assert_int_equal(
		lt_config_set(&cfg, "auth", "tiers", "USER:0,GOLD:1,GOLD:2", "--tiers", err),
		LT_ECONFIG);
	assert_string_equal(err, "--tiers: tiers: tier GOLD is listed twice");
	assert_string_equal(cfg.auth_tiers, "USER:0,ORG_ADMIN:1,ADMIN:2"); /* unchanged */

	/* string values must survive lt_config_render and a reload */
	static const char *const unsafe[][2] = {
		{" /x", "-d: data_dir must not start or end with a space"},
		{"/x ", "-d: data_dir must not start or end with a space"},
		{";x", "-d: data_dir must not have ';' at its start or after a space"},
		{"/a ;b", "-d: data_dir must not have ';' at its start or after a space"},
		{"/x\n[debug]\nmanual_clock = yes",
		 "-d: data_dir must not contain control characters"},
		{"/x\r", "-d: data_dir must not contain control characters"},
		{"/x\x7f", "-d: data_dir must not contain control characters"},
	};
	for (size_t i = 0; i < sizeof unsafe / sizeof unsafe[0]; i++) {
		assert_int_equal(
			lt_config_set(&cfg, "storage", "data_dir", unsafe[i][0], "-d", err),
			LT_ECONFIG);
		assert_string_equal(err, unsafe[i][1]);
	}
	assert_int_equal(lt_config_set(&cfg, "storage", "data_dir", "/a;b #c", "-d", err), LT_OK);
	assert_string_equal(cfg.storage_data_dir, "/a;b #c");
	assert_int_equal(lt_config_set(&cfg, "storage", "data_dir", "/tmp/x", "-d", err), LT_OK);

	char longdir[600];
	memset(longdir, 'd', sizeof longdir - 1);
	longdir[sizeof longdir - 1] = '\0';
	assert_int_equal(lt_config_set(&cfg, "storage", "data_dir", longdir, "-d", err),
			 LT_ECONFIG);
	assert_string_equal(err, "-d: data_dir must be 1 to 448 characters long");
	assert_string_equal(cfg.storage_data_dir, "/tmp/x");
}

/* Every key's rendered value, joined; equal strings mean equal configs. */
static void values_of(const struct lt_config *cfg, struct lt_buf *out)
{
	size_t n;
	const struct lt_config_key *keys = lt_config_keys(&n);
	char val[LT_CFG_STR_MAX];
	for (size_t i = 0; i < n; i++) {
		lt_config_value_str(cfg, &keys[i], val, sizeof val);
		lt_buf_printf(out, "[%s] %s = %s\n", keys[i].section, keys[i].name, val);
	}
}

static void assert_render_roundtrip(struct fixture *f, const struct lt_config *cfg)
{
	struct lt_buf text, a, b, again;
	lt_buf_init(&text, NULL, 0, 1 << 20);
	lt_buf_init(&a, NULL, 0, 1 << 20);
	lt_buf_init(&b, NULL, 0, 1 << 20);
	lt_buf_init(&again, NULL, 0, 1 << 20);
	lt_config_render(cfg, &text);
	assert_int_equal(text.err, LT_OK);

	struct lt_config back;
	char err[LT_CFG_ERR_MAX] = "";
	tu_write_file(f->path, text.data, text.len);
	if (lt_config_load(f->path, &back, err) != LT_OK)
		fail_msg("rendered config does not load: %s\n%s", err, text.data);
	values_of(cfg, &a);
	values_of(&back, &b);
	assert_string_equal(a.data, b.data);
	lt_config_render(&back, &again);
	assert_string_equal(text.data, again.data);

	lt_buf_release(&text);
	lt_buf_release(&a);
	lt_buf_release(&b);
	lt_buf_release(&again);
}

static void test_render_roundtrip(void **state)
{
	struct fixture *f = *state;
	struct lt_config cfg;
	char err[LT_CFG_ERR_MAX];

	lt_config_defaults(&cfg);
	assert_render_roundtrip(f, &cfg);

	static const char *const sets[][3] = {
		{"http", "listen", "0.0.0.0:443"},
		{"http", "threads", "4096"},
		{"http", "max_body", "1536"},
		{"http", "max_header", "1M"},
		{"http", "keep_alive", "off"},
		{"http", "keep_alive_timeout_ms", "0"},
		{"storage", "data_dir", "/var/lib/leaky tokens/#1;x"},
		{"storage", "sqlite_synchronous", "off"},
		{"storage", "lmdb_map_size", "1024G"},
		{"log", "level", "error"},
		{"log", "access", "false"},
		{"log", "file", "/var/log/leakyd.log"},
		{"stubs", "enabled", "yes"},
		{"stubs", "listen", "stubs.example-1.test:0"},
		{"debug", "manual_clock", "on"},
		{"limits", "token_algorithm", "GCRA"},
		{"limits", "token_capacity", "1000000000"},
		{"limits", "token_rate", "1"},
		{"limits", "token_period_ms", "86400000"},
		{"limits", "tier_multipliers", "USER:1, GOLD_1 : 1000,ADMIN:2"},
		{"limits", "request_algorithm", "token"},
		{"limits", "request_limit", "1"},
		{"limits", "request_window_ms", "1"},
		{"limits", "request_routes",
		 "/api/v1/tokens/**=200,/api/v1/tokens/consume=5,/**=9"},
		{"limits", "whitelist", ""},
		{"limits", "client_key", "api_key"},
		{"limits", "org_capacity", "1000000000000"},
		{"limits", "org_rate", "7"},
		{"features", "rate_limiting", "no"},
		{"features", "quota_enforcement", "off"},
	};
	for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
		if (lt_config_set(&cfg, sets[i][0], sets[i][1], sets[i][2], "test", err))
			fail_msg("set %s.%s: %s", sets[i][0], sets[i][1], err);
	assert_render_roundtrip(f, &cfg);

	/* the rendering documents each key */
	struct lt_buf text;
	lt_buf_init(&text, NULL, 0, 1 << 20);
	lt_config_render(&cfg, &text);
	assert_non_null(strstr(text.data, "[http]\n# Address and port of the API listener"));
	assert_non_null(strstr(text.data, "# Range 2-4096. Default 128. Needs a restart.\n"
					  "threads = 4096\n"));
	assert_non_null(strstr(text.data, "Reloaded on SIGHUP.\nlevel = error\n"));
	assert_non_null(strstr(text.data, "# Default \"info\"."));
	assert_non_null(strstr(text.data, "\n[limits]\n"));
	assert_non_null(strstr(text.data, "Reloaded on SIGHUP.\ntoken_algorithm = gcra\n"));
	assert_non_null(strstr(text.data, "\nwhitelist = \n"));
	assert_non_null(strstr(text.data, "\n[features]\n"));
	assert_non_null(strstr(text.data, "Reloaded on SIGHUP.\nrate_limiting = no\n"));
	lt_buf_release(&text);

	/* the longest list values (176 characters) still fit one line of the
	 * file and load back */
	char v[LT_CFG_LIMITS_STR_MAX + 2];
	int n = snprintf(v, sizeof v, "/a%.56s,/b%.56s,/c%.56s", PAD, PAD, PAD);
	assert_int_equal(n, LT_CFG_LIMITS_STR_MAX);
	if (lt_config_set(&cfg, "limits", "whitelist", v, "test", err))
		fail_msg("whitelist '%s': %s", v, err);
	size_t len = 0;
	for (int i = 0; i < 35; i++)
		len += (size_t)snprintf(v + len, sizeof v - len, "%s%c%c:%s", i ? "," : "",
					'A' + i / 26, 'A' + i % 26, i == 34 ? "100" : "1");
	assert_int_equal(len, LT_CFG_LIMITS_STR_MAX);
	if (lt_config_set(&cfg, "limits", "tier_multipliers", v, "test", err))
		fail_msg("tier_multipliers '%s': %s", v, err);
	n = snprintf(v, sizeof v, "/%.124s/**=1000000000,/%.24s=1000000000", PAD, PAD);
	assert_int_equal(n, LT_CFG_LIMITS_STR_MAX);
	if (lt_config_set(&cfg, "limits", "request_routes", v, "test", err))
		fail_msg("request_routes '%s': %s", v, err);
	assert_render_roundtrip(f, &cfg);

	/* one character more is refused, and so is a route path of 129 */
	n = snprintf(v, sizeof v, "/a%.56s,/b%.56s,/c%.57s", PAD, PAD, PAD);
	assert_int_equal(n, LT_CFG_LIMITS_STR_MAX + 1);
	assert_int_equal(lt_config_set(&cfg, "limits", "whitelist", v, "-", err), LT_ECONFIG);
	assert_string_equal(err, "-: whitelist must be 0 to 176 characters long");
	snprintf(v, sizeof v, "/%.125s/**=1", PAD);
	assert_int_equal(lt_config_set(&cfg, "limits", "request_routes", v, "-", err), LT_ECONFIG);
	assert_non_null(strstr(err, "-: request_routes: path '/aaaa"));
	assert_non_null(strstr(err, "is longer than 128 characters"));
	assert_render_roundtrip(f, &cfg);
}

struct diff {
	char key[64];
	char old_value[LT_CFG_STR_MAX];
	char new_value[LT_CFG_STR_MAX];
	bool applied;
};

struct diffs {
	size_t n;
	struct diff d[16];
};

static void record_diff(void *arg, const struct lt_config_key *k, const char *old_value,
			const char *new_value, bool applied)
{
	struct diffs *ds = arg;
	if (ds->n == 16)
		return;
	struct diff *d = &ds->d[ds->n++];
	snprintf(d->key, sizeof d->key, "%s.%s", k->section, k->name);
	snprintf(d->old_value, sizeof d->old_value, "%s", old_value);
	snprintf(d->new_value, sizeof d->new_value, "%s", new_value);
	d->applied = applied;
}

static void assert_diff(const struct diff *d, const char *key, const char *old_value,
			const char *new_value, bool applied)
{
	assert_string_equal(d->key, key);
	assert_string_equal(d->old_value, old_value);
	assert_string_equal(d->new_value, new_value);
	assert_int_equal(d->applied, applied);
}

static void test_merge_reload(void **state)
{
	struct fixture *f = *state;
	struct lt_config cur, next;
	char err[LT_CFG_ERR_MAX];
	lt_config_defaults(&cur);
	const char *text = "[http]\n"
			   "listen = 127.0.0.1:9999\n"
			   "threads = 8\n"
			   "max_inflight = 64\n"
			   "keep_alive = no\n"
			   "[storage]\n"
			   "data_dir = /elsewhere\n"
			   "[log]\n"
			   "level = debug\n"
			   "access = no\n";
	assert_int_equal(load_text(f, text, &next, err), LT_OK);

	struct diffs ds = {0};
	size_t n = lt_config_merge_reload(&cur, &next, record_diff, &ds);
	assert_int_equal(n, 7);
	assert_int_equal(ds.n, 7);
	/* in table order */
	assert_diff(&ds.d[0], "http.listen", "127.0.0.1:8080", "127.0.0.1:9999", false);
	assert_diff(&ds.d[1], "http.threads", "128", "8", false);
	assert_diff(&ds.d[2], "http.max_inflight", "512", "64", true);
	assert_diff(&ds.d[3], "http.keep_alive", "yes", "no", false);
	assert_diff(&ds.d[4], "storage.data_dir", "./var", "/elsewhere", false);
	assert_diff(&ds.d[5], "log.level", "info", "debug", true);
	assert_diff(&ds.d[6], "log.access", "yes", "no", true);

	/* non-reloadable values were put back, reloadable ones kept */
	assert_string_equal(next.http_listen, "127.0.0.1:8080");
	assert_int_equal(next.http_threads, 128);
	assert_true(next.http_keep_alive);
	assert_string_equal(next.storage_data_dir, "./var");
	assert_int_equal(next.http_max_inflight, 64);
	assert_int_equal(next.log_level, 0);
	assert_false(next.log_access);

	/* merging again reports only what is still different: the applied keys */
	memset(&ds, 0, sizeof ds);
	n = lt_config_merge_reload(&cur, &next, record_diff, &ds);
	assert_int_equal(n, 3);
	assert_int_equal(ds.n, 3);
	for (size_t i = 0; i < ds.n; i++)
		assert_true(ds.d[i].applied);

	/* no callback is fine; identical configs differ nowhere */
	assert_int_equal(lt_config_merge_reload(&next, &next, NULL, NULL), 0);
}

/* [provider.NAME] and [model.NAME]: slots, defaults, lookups, checks. */
static void test_named_sections(void **state)
{
	struct fixture *f = *state;
	struct lt_config cfg;
	char err[LT_CFG_ERR_MAX];
	const char *good = "[provider.OpenAI]\n"
			   "base_url = https://api.example.test:8443/v1/\n"
			   "credential = env:OPENAI_KEY\n"
			   "default_model = gpt-4o-mini\n"
			   "timeout_ms = 30000\n"
			   "[model.gpt-4o-mini]\n"
			   "provider = OPENAI\n"
			   "price_input = 150000\n"
			   "rpm = 60\n"
			   "tpm = 10000000000\n"
			   "[provider.gemini]\n"
			   "base_url = http://127.0.0.1:8090/gemini/v1beta\n"
			   "format = gemini\n"
			   "[model.gemini-2.0-flash]\n"
			   "provider = gemini\n"
			   "kind = chat\n"
			   "upstream = models-gemini-2.0\n";
	assert_int_equal(load_text(f, good, &cfg, err), LT_OK);
	assert_int_equal(cfg.nproviders, 2);
	assert_int_equal(cfg.nmodels, 2);
	const struct lt_cfg_provider *p = lt_config_provider(&cfg, "openai");
	assert_non_null(p);
	assert_string_equal(p->name, "openai"); /* stored lower-case */
	assert_int_equal(p->timeout_ms, 30000);
	assert_int_equal(p->connect_timeout_ms, 1000); /* defaults filled */
	assert_int_equal(p->bulkhead, 20);
	assert_int_equal(p->breaker_window, 20);
	assert_int_equal(p->breaker_min_calls, 10);
	assert_int_equal(p->breaker_failure_pct, 50);
	assert_int_equal(p->breaker_open_ms, 10000);
	assert_int_equal(p->retry_attempts, 3);
	assert_int_equal(p->retry_backoff_ms, 250);
	assert_string_equal(p->ca_file, "/etc/ssl/certs/ca-certificates.crt");
	assert_non_null(lt_config_provider(&cfg, "GEMINI"));
	assert_int_equal(lt_config_provider(&cfg, "gemini")->format, LT_PFMT_GEMINI);
	const struct lt_cfg_model *m = lt_config_model(&cfg, "gpt-4o-mini");
	assert_non_null(m);
	assert_string_equal(m->provider, "openai");
	assert_int_equal(m->price_input, 150000);
	assert_int_equal(m->max_output, 4096);
	assert_int_equal(m->rpm, 60);
	assert_int_equal(m->tpm, INT64_C(10000000000));
	assert_int_equal(lt_config_model(&cfg, "gemini-2.0-flash")->rpm, 0); /* no limit */
	assert_int_equal(lt_config_model(&cfg, "gemini-2.0-flash")->tpm, 0);
	assert_null(lt_config_model(&cfg, "nope"));

	/* rendering reads back the same */
	assert_render_roundtrip(f, &cfg);

	static const struct {
		const char *text, *want;
	} bad[] = {
		{"[provider.x]\nformat = openai\n", "base_url is required"},
		{"[provider.x]\nbase_url = ftp://h/\n", "http:// or https://"},
		{"[provider.x]\nbase_url = http://h\ncredential = key:abc\n", "env:VARIABLE"},
		{"[provider.x]\nbase_url = http://h\nbogus = 1\n", "unknown key 'bogus'"},
		{"[provider.x]\nbase_url = http://h\nbase_url = http://g\n", "duplicate key"},
		{"[provider.a.b]\nbase_url = http://h\n", "provider name"},
		{"[provider.x]\nbase_url = http://h\ndefault_model = m\n", "default_model 'm'"},
		{"[model.m]\nkind = chat\n", "provider is required"},
		{"[model.m]\nprovider = ghost\n", "has no [provider.ghost]"},
		{"[model.m/x]\nprovider = a\n", "model name"},
		{"[provider.x]\nbase_url = http://h\nbulkhead = 0\n", "bulkhead must be between"},
		{"[provider.x]\nbase_url = http://h\n[model.m]\nprovider = x\nrpm = -1\n",
		 "[model.m] rpm must be between 0 and 100000000, got '-1'"},
		{"[provider.x]\nbase_url = http://h\n[model.m]\nprovider = x\ntpm = 10000000001\n",
		 "[model.m] tpm must be between 0 and 10000000000, got '10000000001'"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(load_text(f, bad[i].text, &cfg, err), LT_ECONFIG);
		if (!strstr(err, bad[i].want))
			fail_msg("case %zu: '%s' not in '%s'", i, bad[i].want, err);
		assert_non_null(strstr(err, "leakyd.conf:"));
	}
}

/* A reload reports changed, added and removed named sections. */
static int diffs_seen;
static void count_diff(void *arg, const struct lt_config_key *k, const char *a, const char *b,
		       bool applied)
{
	(void)arg, (void)k, (void)a, (void)b;
	assert_true(applied);
	diffs_seen++;
}

static void test_named_reload(void **state)
{
	struct fixture *f = *state;
	struct lt_config a, b;
	char err[LT_CFG_ERR_MAX];
	assert_int_equal(
		load_text(f,
			  "[provider.x]\nbase_url = http://h\n[provider.y]\nbase_url = http://y\n",
			  &a, err),
		LT_OK);
	assert_int_equal(load_text(f,
				   "[provider.x]\nbase_url = http://h\ntimeout_ms = 50\n"
				   "[provider.z]\nbase_url = http://z\n",
				   &b, err),
			 LT_OK);
	diffs_seen = 0;
	/* timeout changed on x, y removed, z added */
	assert_int_equal(lt_config_merge_reload(&a, &b, count_diff, NULL), 3);
	assert_int_equal(diffs_seen, 3);
	assert_int_equal(b.nproviders, 2); /* named sections are applied as given */
}

/* Every [limits], [features] and model rpm/tpm key is applied by a reload. */
static void test_limits_reload(void **state)
{
	struct fixture *f = *state;
	struct lt_config a, b;
	char err[LT_CFG_ERR_MAX];
	const char *base = "[provider.x]\nbase_url = http://h\n[model.m]\nprovider = x\n";
	assert_int_equal(load_text(f, base, &a, err), LT_OK);
	char text[2048];
	snprintf(text, sizeof text,
		 "%s"
		 "rpm = 5\ntpm = 500\n"
		 "[limits]\ntoken_algorithm = token\ntoken_capacity = 5\ntoken_rate = 6\n"
		 "token_period_ms = 7\ntier_multipliers = USER:2\nrequest_algorithm = gcra\n"
		 "request_limit = 8\nrequest_window_ms = 9\nrequest_routes = /x=1\n"
		 "whitelist = /y\nclient_key = ip\norg_capacity = 10\norg_rate = 11\n"
		 "[features]\nrate_limiting = no\nquota_enforcement = no\n",
		 base);
	assert_int_equal(load_text(f, text, &b, err), LT_OK);
	diffs_seen = 0;
	/* count_diff asserts that every difference is applied */
	assert_int_equal(lt_config_merge_reload(&a, &b, count_diff, NULL), 17);
	assert_int_equal(diffs_seen, 17);
	assert_int_equal(b.limits_token_algorithm, LT_ALGO_TOKEN);
	assert_int_equal(b.limits_request_algorithm, LT_ALGO_GCRA);
	assert_int_equal(b.limits_client_key, LT_CLIENT_IP);
	assert_string_equal(b.limits_request_routes, "/x=1");
	assert_false(b.features_rate_limiting);
	assert_false(b.features_quota_enforcement);
	assert_int_equal(lt_config_model(&b, "m")->rpm, 5);
	assert_int_equal(lt_config_model(&b, "m")->tpm, 500);
	size_t n;
	const struct lt_config_key *keys = lt_config_keys(&n);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(keys[i].section, "limits") || !strcmp(keys[i].section, "features"))
			assert_true(keys[i].reloadable);
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_table_defaults_parse),
		cmocka_unit_test_setup_teardown(test_load_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_empty_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_missing_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_rejects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_line_length, setup, teardown),
		cmocka_unit_test_setup_teardown(test_size_suffixes, setup, teardown),
		cmocka_unit_test(test_set_origin),
		cmocka_unit_test_setup_teardown(test_render_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_merge_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_named_sections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_named_reload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits_reload, setup, teardown),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
