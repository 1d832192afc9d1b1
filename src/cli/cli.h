/*
 * cli.h — leakyctl's command table and the context every command gets.
 *
 * leakyctl works directly on the data directory, safely beside a running
 * leakyd: SQLite in WAL mode lets it read (and write through short
 * transactions that wait on busy_timeout), LMDB is multi-process.
 * Commands return a sysexits.h code.
 */
#ifndef LT_CLI_CLI_H
#define LT_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "conf/config.h"

struct lt_cli {
	const char *data_dir;	 /* resolved: -d, LEAKYD_DATA_DIR, config, ./var */
	const char *config_path; /* -c or LEAKYD_CONFIG, or NULL */
	struct lt_config cfg;	 /* defaults + file + overrides */
};

struct lt_cli_cmd {
	const char *name; /* "init", "config check", ... */
	const char *args; /* argument synopsis, "" if none */
	const char *help;
	int (*run)(struct lt_cli *cli, int argc, char **argv);
};

/* The command table, NULL-name terminated. */
const struct lt_cli_cmd *lt_cli_commands(void);

int lt_cmd_init(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_check(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_version(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_config_check(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_config_dump(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_help(struct lt_cli *cli, int argc, char **argv);

/* ---- identity: users, orgs, API keys, signing keys, audit ----
 *
 * cmd_user.c, cmd_org.c, cmd_key.c, cmd_audit.c.  Every change runs in one
 * BEGIN IMMEDIATE transaction (waiting up to busy_timeout_ms for leakyd's
 * writer) together with its audit row (actor "leakyctl"); after the commit
 * the LMDB counter LT_IDENTITY_GEN is bumped so leakyd drops its credential
 * caches on its next request. */
int lt_cmd_user_add(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_user_list(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_user_show(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_user_disable(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_user_enable(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_user_roles(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_user_tier(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_user_passwd(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_org_add(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_org_list(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_org_member_add(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_org_member_remove(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_org_members(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_key_create(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_key_list(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_key_revoke(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_keys_rotate(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_keys_list(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_audit(struct lt_cli *cli, int argc, char **argv);

/* ---- providers (cmd_provider.c) ----
 *
 * list reads the configuration; set-credential and delete-credential write
 * DATA_DIR/secrets/provider-NAME.cred (provider/credential.h) and nothing
 * else: leakyd loads stored credentials at start and on SIGHUP. */
int lt_cmd_provider_list(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_provider_set_credential(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_provider_delete_credential(struct lt_cli *cli, int argc, char **argv);

/* ---- quota pools (cmd_quota.c) ----
 *
 * show reads a pool as of now; grant and adjust change it through
 * lt_pool_store_change (ledger row, actor "leakyctl") with an audit row
 * (quota.granted, quota.adjusted) in one BEGIN IMMEDIATE transaction. */
int lt_cmd_quota_show(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_quota_grant(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_quota_adjust(struct lt_cli *cli, int argc, char **argv);

/* ---- the event log (cmd_events.c) ----
 *
 * tail, show and stat open DATA_DIR/events read-only; stat and replay
 * also open leaky.db (outbox, consumer_offsets).  replay sets a
 * consumer's next offset in one BEGIN IMMEDIATE transaction. */
int lt_cmd_events_tail(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_events_show(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_events_stat(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_events_replay(struct lt_cli *cli, int argc, char **argv);

/* ---- analytics (cmd_usage.c) ----
 *
 * usage report|top|cost|anomalies read DATA_DIR/analytics.db read-only
 * with analytics/query.h (safe beside leakyd); analytics rebuild takes the
 * event log's writer lock (refused while leakyd runs), empties
 * analytics.db and re-ingests the token-usage topic on its own thread. */
int lt_cmd_usage_report(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_usage_top(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_usage_cost(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_usage_anomalies(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_analytics_rebuild(struct lt_cli *cli, int argc, char **argv);

/* Helpers shared by the identity commands (cmd_user.c).  Each int-returning
 * helper returns 0 or a sysexits.h code after printing
 * "leakyctl CMD: message" on stderr. */
struct sqlite3;
struct lt_user;

/* One option of a command: "--name" alone sets *set; with value != NULL it
 * takes an argument ("--name V" or "--name=V"). */
struct lt_cli_opt {
	const char *name;
	bool *set;
	const char **value;
};

/* Split argv into options (opts, NULL-name terminated; may be NULL) and
 * between min and max positionals (into pos[0..max)).  A lone "-" and
 * everything after "--" are positionals.  EX_USAGE on anything else. */
int lt_cli_args(const char *cmd, int argc, char **argv, const struct lt_cli_opt *opts, int min,
		int max, char **pos, int *npos);

/* Open leaky.db of the data directory (migrated).  create: make the data
 * directory and the database when missing (commands that write); else
 * EX_NOINPUT when there is none.  Close with lt_db_close. */
int lt_cli_db_open(struct lt_cli *cli, const char *cmd, bool create, struct sqlite3 **db);
/* BEGIN IMMEDIATE (waits busy_timeout_ms for the write lock). */
int lt_cli_begin(struct sqlite3 *db, const char *cmd);
/* COMMIT; on failure the transaction is rolled back. */
int lt_cli_commit(struct sqlite3 *db, const char *cmd);
void lt_cli_rollback(struct sqlite3 *db);
/* Bump LT_IDENTITY_GEN in the bucket store; call after the commit. */
int lt_cli_changed(struct lt_cli *cli, const char *cmd);
/* Print "leakyctl CMD: WHAT: <error>" and map e to a sysexits code. */
int lt_cli_fail(const char *cmd, enum lt_err e, const char *what);
/* The user named `username` (case-insensitive): EX_NOUSER if none. */
int lt_cli_user(struct sqlite3 *db, const char *cmd, const char *username, struct lt_user *out);
/* The org with id or name `ref` (name case-insensitive): EX_DATAERR if none
 * (cmd_org.c). */
struct lt_org;
int lt_cli_org(struct sqlite3 *db, const char *cmd, const char *ref, struct lt_org *out);
/* Wall-clock Unix milliseconds. */
int64_t lt_cli_now_ms(void);
/* ISO-8601 of Unix ms, or `zero` when ms is 0. */
void lt_cli_iso(int64_t ms, const char *zero, char out[32]);
/* "ADMIN,USER" (in that order) for role bits. */
void lt_cli_roles(unsigned roles, char out[32]);

#endif
