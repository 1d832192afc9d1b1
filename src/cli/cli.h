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

#endif
