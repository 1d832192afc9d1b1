/*
 * config.h — leakyd's configuration: one table drives everything.
 *
 * Each row of the table (config.c) names a key: section, name, type, where it
 * lives in struct lt_config, default, bounds, whether SIGHUP may change it,
 * and a one-line help.  The same table parses the INI file, applies
 * command-line and environment overrides, renders the commented sample
 * (`leakyctl config dump`), and is checked against the man page by a test.
 *
 * A struct lt_config is a plain value (fixed-size strings, no pointers), so a
 * snapshot is a copy.  Parsing is pure apart from reading the named file.
 *
 * Errors are reported as "file:line: message" (or "--flag: message",
 * "ENV_VAR: message") in a caller-provided buffer.
 */
#ifndef LT_CONF_CONFIG_H
#define LT_CONF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/err.h"

#define LT_CFG_STR_MAX 512
#define LT_CFG_ERR_MAX 1024

enum lt_sync_mode { LT_SYNC_OFF, LT_SYNC_NORMAL, LT_SYNC_FULL };

struct lt_config {
	/* [http] */
	char http_listen[LT_CFG_STR_MAX];
	int64_t http_threads;
	int64_t http_max_inflight;
	int64_t http_max_body;
	int64_t http_max_header;
	int64_t http_request_timeout_ms;
	bool http_keep_alive;
	int64_t http_keep_alive_timeout_ms;
	int64_t http_drain_timeout_ms;
	/* [storage] */
	char storage_data_dir[LT_CFG_STR_MAX];
	int64_t storage_sqlite_synchronous; /* enum lt_sync_mode */
	int64_t storage_busy_timeout_ms;
	int64_t storage_writer_batch;
	int64_t storage_writer_queue;
	int64_t storage_lmdb_map_size;
	int64_t storage_lmdb_sync_interval_ms;
	int64_t storage_checkpoint_interval_ms;
	/* [auth] */
	char auth_issuer[LT_CFG_STR_MAX];
	char auth_audience[LT_CFG_STR_MAX];
	int64_t auth_token_ttl_s;
	int64_t auth_cache_size;
	int64_t auth_hash_concurrency;
	int64_t auth_hash_queue;
	char auth_tiers[LT_CFG_STR_MAX]; /* "NAME:PRIORITY,...", see auth/tiers.h */
	/* [log] */
	int64_t log_level; /* enum lt_log_level */
	bool log_access;
	char log_file[LT_CFG_STR_MAX];
	/* [stubs] */
	bool stubs_enabled;
	char stubs_listen[LT_CFG_STR_MAX];
	/* [debug] */
	bool debug_manual_clock;
	bool debug_test_endpoints;

	char source[LT_CFG_STR_MAX]; /* file it came from, "" for defaults */
};

enum lt_cfg_type { LT_CFG_INT, LT_CFG_SIZE, LT_CFG_BOOL, LT_CFG_ENUM, LT_CFG_STR, LT_CFG_HOSTPORT };

struct lt_config_key {
	const char *section;
	const char *name;
	enum lt_cfg_type type;
	size_t offset;
	const char *def;	    /* default, written as in the file */
	int64_t min, max;	    /* INT and SIZE bounds; STR max length */
	const char *const *choices; /* ENUM: NULL-terminated, index stored */
	bool reloadable;
	const char *help;
	/* Optional, STR keys: a further check after the type's own; false with
	 * a message in why (written without the key name, which is prefixed). */
	bool (*check)(const char *value, char *why, size_t whylen);
};

/* The table, in file order. */
const struct lt_config_key *lt_config_keys(size_t *n);

/* Fill cfg with every default.  Cannot fail (the defaults are tested). */
void lt_config_defaults(struct lt_config *cfg);

/* Defaults, then the file at path.  LT_ECONFIG with "path:line: msg" in err
 * (LT_CFG_ERR_MAX bytes) on any unknown section or key, duplicate key, bad
 * value or out-of-range number; LT_EIO if the file cannot be read. */
enum lt_err lt_config_load(const char *path, struct lt_config *cfg, char *err);

/* Set one key from text (a flag or environment override); `origin` names
 * the source in the error message, e.g. "--listen". */
enum lt_err lt_config_set(struct lt_config *cfg, const char *section, const char *name,
			  const char *value, const char *origin, char *err);

/* Render a key's current value as it would be written in the file. */
void lt_config_value_str(const struct lt_config *cfg, const struct lt_config_key *k, char *out,
			 size_t out_len);

/* The commented INI rendering of cfg: every key with its help, bounds and
 * whether it reloads.  Used for `leakyctl config dump` and the sample. */
void lt_config_render(const struct lt_config *cfg, struct lt_buf *out);

/* Called by lt_config_merge_reload for each key that differs. */
typedef void (*lt_config_diff_fn)(void *arg, const struct lt_config_key *k, const char *old_value,
				  const char *new_value, bool applied);

/* Prepare a reload: in `next`, keys that may not be reloaded are reset to
 * their value in `cur`; `fn` is told of every difference and whether it was
 * applied.  Returns the number of differences. */
size_t lt_config_merge_reload(const struct lt_config *cur, struct lt_config *next,
			      lt_config_diff_fn fn, void *arg);

#endif
