/*
 * leakyctl.c — main(): global options, data-dir resolution, dispatch.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "cli/cli.h"
#include "cli/cmd_saga.h"

static const struct lt_cli_cmd commands[] = {
	{"init", "", "create the data directory, leaky.db (migrated) and the bucket store",
	 lt_cmd_init},
	{"check", "", "integrity_check leaky.db, verify its schema version, stat the bucket store",
	 lt_cmd_check},
	{"version", "", "print the version and the schema version this build writes",
	 lt_cmd_version},
	{"config check", "[FILE]", "validate a configuration file (default: -c or LEAKYD_CONFIG)",
	 lt_cmd_config_check},
	{"config dump", "", "print the effective configuration as a commented INI file",
	 lt_cmd_config_dump},
	{"user add", "USERNAME EMAIL [--admin] [--password-stdin] [--json]",
	 "create a user (roles USER, +ADMIN); prints a generated password once", lt_cmd_user_add},
	{"user list", "", "list the users", lt_cmd_user_list},
	{"user show", "USERNAME [--json]", "show a user, its orgs and key count", lt_cmd_user_show},
	{"user disable", "USERNAME", "disable a user: login, tokens and keys refused at once",
	 lt_cmd_user_disable},
	{"user enable", "USERNAME", "enable a disabled user", lt_cmd_user_enable},
	{"user roles", "USERNAME ROLE[,ROLE...]", "set a user's roles (ADMIN, ORG_ADMIN, USER)",
	 lt_cmd_user_roles},
	{"user tier", "USERNAME TIER|-", "set a user's tier, or - to derive it from roles",
	 lt_cmd_user_tier},
	{"user passwd", "USERNAME [--password-stdin]", "set a user's password", lt_cmd_user_passwd},
	{"org add", "NAME", "create an org", lt_cmd_org_add},
	{"org list", "", "list the orgs", lt_cmd_org_list},
	{"org member add", "ORG USERNAME ROLE",
	 "add a member (ROLE: ORG_ADMIN or USER) or change its role", lt_cmd_org_member_add},
	{"org member remove", "ORG USERNAME", "remove a member", lt_cmd_org_member_remove},
	{"org members", "ORG", "list an org's members", lt_cmd_org_members},
	{"key create", "USERNAME [--name NAME] [--expires ISO] [--json]",
	 "create an API key; prints it once", lt_cmd_key_create},
	{"key list", "USERNAME", "list a user's live API keys (never the key)", lt_cmd_key_list},
	{"key revoke", "USERNAME KEY_ID", "revoke an API key at once", lt_cmd_key_revoke},
	{"keys rotate", "", "add a new JWT signing key; the old one keeps verifying",
	 lt_cmd_keys_rotate},
	{"keys list", "", "list the JWT signing keys", lt_cmd_keys_list},
	{"audit", "[--since ISO] [--limit N]", "print the identity audit trail, newest first",
	 lt_cmd_audit},
	{"provider list", "", "list configured providers and models, and stored credentials",
	 lt_cmd_provider_list},
	{"provider set-credential", "NAME [--force]",
	 "store a provider's API key, read from stdin, encrypted", lt_cmd_provider_set_credential},
	{"provider delete-credential", "NAME", "delete a provider's stored API key",
	 lt_cmd_provider_delete_credential},
	{"quota show", "(--user USERNAME | --org ORG) PROVIDER [--json]",
	 "show a token pool (PROVIDER) or the money budget ($) as of now", lt_cmd_quota_show},
	{"quota grant",
	 "(--user USERNAME | --org ORG) PROVIDER TOKENS --reason TEXT [--window W] "
	 "[--window-cap N]",
	 "grant tokens (or micro-dollars) to a pool, creating it if missing", lt_cmd_quota_grant},
	{"quota adjust", "(--user USERNAME | --org ORG) PROVIDER DELTA --reason TEXT",
	 "add to or take from a pool; never below zero", lt_cmd_quota_adjust},
	{"events tail", "--topic T [--from OFFSET] [--limit N] [--follow]",
	 "print events as JSON lines (the last 10 without --from)", lt_cmd_events_tail},
	{"events show", "--topic T OFFSET", "print one event, its payload indented",
	 lt_cmd_events_show},
	{"events stat", "[--json]", "topics, outbox depth and age, consumer offsets and lag",
	 lt_cmd_events_stat},
	{"events replay", "--consumer NAME --topic T --from OFFSET",
	 "set a consumer's next offset so it re-applies from there", lt_cmd_events_replay},
	{"saga list", "[--status S] [--limit N] [--json]",
	 "list the token purchase sagas, newest first", lt_cmd_saga_list},
	{"saga show", "ID [--json]", "show a purchase saga and its steps", lt_cmd_saga_show},
	{"saga retry", "ID", "mark an unfinished saga for a try at leakyd's next tick",
	 lt_cmd_saga_retry},
	{"saga compensate", "ID", "mark an unfinished saga for compensation at leakyd's next tick",
	 lt_cmd_saga_compensate},
	{"usage report", "--provider P [--window M | --from T --to T] [--json]",
	 "usage totals of a window: events, allowed, denied, tokens, users, top users",
	 lt_cmd_usage_report},
	{"usage top", "--provider P [--window M] [--limit N] [--json]",
	 "the users with the most tokens in a window", lt_cmd_usage_top},
	{"usage cost", "[--from T] [--to T] [--group-by G] [--bucket B] [--json]",
	 "exact cost per user, org, provider or model, per minute, hour or day", lt_cmd_usage_cost},
	{"usage anomalies", "--provider P [--window M] [--baselines N] [--threshold X] [--json]",
	 "tokens of the current window against the previous windows' average",
	 lt_cmd_usage_anomalies},
	{"analytics rebuild", "",
	 "empty analytics.db and ingest the whole event log again (leakyd stopped)",
	 lt_cmd_analytics_rebuild},
	{"help", "", "list the commands", lt_cmd_help},
	{NULL, NULL, NULL, NULL},
};

const struct lt_cli_cmd *lt_cli_commands(void)
{
	return commands;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: leakyctl [-d DATA_DIR] [-c CONFIG] COMMAND [ARGS]\n\ncommands:\n");
	/* keep in step with man/leakyctl.1 (a test checks every name): the name,
	 * padded so at least two spaces follow the longest, then the synopsis
	 * (padded to the usual width; a longer one pushes the help along) and
	 * the help, with two spaces or more between columns */
	int name_w = 0, args_w = 0;
	for (const struct lt_cli_cmd *c = commands; c->name; c++) {
		if ((int)strlen(c->name) > name_w)
			name_w = (int)strlen(c->name);
		if ((int)strlen(c->args) > args_w && strlen(c->args) <= 24)
			args_w = (int)strlen(c->args);
	}
	for (const struct lt_cli_cmd *c = commands; c->name; c++)
		fprintf(out, "  %-*s  %-*s  %s\n", name_w, c->name, args_w, c->args, c->help);
	fprintf(out, "\nSee leakyctl(1).\n");
}

int lt_cmd_help(struct lt_cli *cli, int argc, char **argv)
{
	(void)cli, (void)argc, (void)argv;
	usage(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	struct lt_cli *cli = calloc(1, sizeof *cli);
	const char *dir_flag = NULL;
	int i = 1;
	if (!cli)
		return EX_OSERR;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if ((!strcmp(a, "-d") || !strcmp(a, "--data-dir")) && i + 1 < argc)
			dir_flag = argv[++i];
		else if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && i + 1 < argc)
			cli->config_path = argv[++i];
		else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			free(cli);
			return 0;
		} else {
			fprintf(stderr, "leakyctl: unknown option '%s'\n", a);
			usage(stderr);
			free(cli);
			return EX_USAGE;
		}
	}
	if (i == argc) {
		usage(stderr);
		free(cli);
		return EX_USAGE;
	}
	if (!cli->config_path) {
		const char *env = getenv("LEAKYD_CONFIG");
		if (env && *env)
			cli->config_path = env;
	}
	/* Find the command: the longest table name matching the next words. */
	const struct lt_cli_cmd *cmd = NULL;
	int used = 0;
	for (const struct lt_cli_cmd *c = commands; c->name; c++) {
		char name[64];
		snprintf(name, sizeof name, "%s", c->name);
		int words = 0, k = i;
		bool ok = true;
		for (char *w = name, *sp; ok && w; w = sp ? sp + 1 : NULL, words++) {
			sp = strchr(w, ' ');
			if (sp)
				*sp = '\0';
			ok = k < argc && strcmp(argv[k++], w) == 0;
		}
		if (ok && words > used) {
			cmd = c;
			used = words;
		}
	}
	if (!cmd) {
		fprintf(stderr, "leakyctl: unknown command '%s'\n", argv[i]);
		usage(stderr);
		free(cli);
		return EX_USAGE;
	}
	/* Configuration: needed for the data dir; config commands report
	 * their own errors. */
	char err[LT_CFG_ERR_MAX];
	lt_config_defaults(&cli->cfg);
	bool needs_config = cmd->run != lt_cmd_config_check && cmd->run != lt_cmd_help &&
			    cmd->run != lt_cmd_version;
	if (cli->config_path && needs_config && lt_config_load(cli->config_path, &cli->cfg, err)) {
		fprintf(stderr, "leakyctl: %s\n", err);
		free(cli);
		return EX_CONFIG;
	}
	const char *env_dir = getenv("LEAKYD_DATA_DIR");
	if (dir_flag)
		cli->data_dir = dir_flag;
	else if (env_dir && *env_dir)
		cli->data_dir = env_dir;
	else
		cli->data_dir = cli->cfg.storage_data_dir;
	if (cli->data_dir != cli->cfg.storage_data_dir &&
	    lt_config_set(&cli->cfg, "storage", "data_dir", cli->data_dir, "--data-dir", err)) {
		fprintf(stderr, "leakyctl: %s\n", err);
		free(cli);
		return EX_USAGE;
	}
	int rc = cmd->run(cli, argc - i - used, argv + i + used);
	free(cli);
	return rc;
}
