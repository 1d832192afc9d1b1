/*
 * cmd_config.c — leakyctl config check | dump.
 */
#include <stdio.h>
#include <sysexits.h>

#include "cli/cli.h"

int lt_cmd_config_check(struct lt_cli *cli, int argc, char **argv)
{
	const char *path = argc > 0 ? argv[0] : cli->config_path;
	if (argc > 1) {
		fprintf(stderr, "leakyctl config check: unexpected argument '%s'\n", argv[1]);
		return EX_USAGE;
	}
	if (!path) {
		fprintf(stderr,
			"leakyctl config check: no file given (argument, -c or LEAKYD_CONFIG)\n");
		return EX_USAGE;
	}
	char err[LT_CFG_ERR_MAX];
	struct lt_config cfg;
	enum lt_err e = lt_config_load(path, &cfg, err);
	if (e) {
		fprintf(stderr, "%s\n", err);
		return e == LT_ECONFIG ? EX_CONFIG : EX_NOINPUT;
	}
	printf("%s: ok\n", path);
	return 0;
}

int lt_cmd_config_dump(struct lt_cli *cli, int argc, char **argv)
{
	if (argc > 0) {
		fprintf(stderr, "leakyctl config dump: unexpected argument '%s'\n", argv[0]);
		return EX_USAGE;
	}
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 1u << 20);
	lt_config_render(&cli->cfg, &b);
	if (b.err) {
		lt_buf_release(&b);
		return EX_SOFTWARE;
	}
	fwrite(b.data, 1, b.len, stdout);
	lt_buf_release(&b);
	return 0;
}
