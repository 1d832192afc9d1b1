/*
 * cmd_audit.c — leakyctl audit: the identity audit trail, newest first.
 *
 * One line per row: time, actor (a user id, "leakyctl" or "system"),
 * action, target, and the detail JSON object ("-" when there is none).
 * Read-only; reads never block leakyd (WAL).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "auth/identity_store.h"
#include "cli/cli.h"
#include "store/db.h"
#include "util/timefmt.h"

#define AUDIT_LIMIT_DEFAULT 100
#define AUDIT_LIMIT_MAX 100000

static bool print_row(void *arg, const struct lt_audit_row *r)
{
	(void)arg;
	char at[32];
	lt_cli_iso(r->at_ms, "-", at);
	printf("%s %s %s %s %s\n", at, r->actor[0] ? r->actor : "-", r->action,
	       r->target[0] ? r->target : "-", r->detail[0] ? r->detail : "-");
	return true;
}

int lt_cmd_audit(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "audit";
	const char *since = NULL, *limit_s = NULL;
	const struct lt_cli_opt opts[] = {
		{"--since", NULL, &since}, {"--limit", NULL, &limit_s}, {NULL, NULL, NULL}};
	char *pos[1];
	int npos, rc = lt_cli_args(cmd, argc, argv, opts, 0, 0, pos, &npos);
	if (rc)
		return rc;
	int64_t since_ms = 0, limit = AUDIT_LIMIT_DEFAULT;
	if (since) {
		int64_t ns;
		if (lt_time_parse_iso(since, strlen(since), &ns)) {
			fprintf(stderr,
				"leakyctl %s: invalid --since '%s' (YYYY-MM-DDTHH:MM:SSZ)\n", cmd,
				since);
			return EX_USAGE;
		}
		since_ms = ns / 1000000;
	}
	if (limit_s) {
		char *end;
		long long v = strtoll(limit_s, &end, 10);
		if (end == limit_s || *end || v < 1 || v > AUDIT_LIMIT_MAX) {
			fprintf(stderr, "leakyctl %s: --limit must be 1-%d\n", cmd,
				AUDIT_LIMIT_MAX);
			return EX_USAGE;
		}
		limit = v;
	}
	struct sqlite3 *db;
	if ((rc = lt_cli_db_open(cli, cmd, false, &db)))
		return rc;
	enum lt_err e = lt_ident_audit_list(db, since_ms, limit, print_row, NULL);
	lt_db_close(db);
	return e ? lt_cli_fail(cmd, e, "reading the audit trail") : 0;
}
