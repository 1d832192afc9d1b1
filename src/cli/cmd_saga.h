/*
 * cmd_saga.h — leakyctl saga list | show | retry | compensate (cmd_saga.c),
 * registered in leakyctl.c's command table.  See cmd_saga.c.
 */
#ifndef LT_CLI_CMD_SAGA_H
#define LT_CLI_CMD_SAGA_H

#include "cli/cli.h"

int lt_cmd_saga_list(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_saga_show(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_saga_retry(struct lt_cli *cli, int argc, char **argv);
int lt_cmd_saga_compensate(struct lt_cli *cli, int argc, char **argv);

#endif
