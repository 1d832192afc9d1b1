/*
 * cmd_saga.c — leakyctl saga list | show | retry | compensate: the token
 * purchase sagas in leaky.db (saga/saga_store.h), offline.
 *
 * list and show only read (beside a running leakyd: WAL).  leakyctl cannot
 * run a saga — the payment calls and the workers live in leakyd — so retry
 * and compensate only mark it, in one BEGIN IMMEDIATE transaction with an
 * audit row (saga.retry, saga.compensate; actor "leakyctl"):
 * next_attempt_at = 0 asks for a try now, and compensate also sets the
 * saga's compensate flag.  A running leakyd finds marked sagas at its next
 * scheduler tick (within about a second, runner.h: LT_SAGAS_MARK_POLL_MS)
 * and runs them; a stopped one at its next start, which resumes every
 * unfinished saga anyway.  A final saga cannot be marked (EX_DATAERR), nor
 * can a saga whose payment is captured be compensated.
 *
 * Nothing here allocates beyond the lt_buf it releases.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "auth/identity_store.h"
#include "cli/cmd_saga.h"
#include "saga/saga_json.h"
#include "saga/saga_store.h"
#include "store/db.h"
#include "util/buf.h"

#define ACTOR "leakyctl"
#define LIST_DEFAULT 50

/* A saga id argument, lower-cased into out; EX_USAGE if it is not one. */
static int id_arg(const char *cmd, const char *arg, char out[LT_UUID_LEN])
{
	size_t n = strlen(arg);
	if (n != LT_UUID_LEN - 1 || !lt_uuid_valid(arg, n)) {
		fprintf(stderr, "leakyctl %s: '%.64s' is not a saga id (a UUID)\n", cmd, arg);
		return EX_USAGE;
	}
	for (size_t i = 0; i <= n; i++)
		out[i] = (char)((arg[i] >= 'A' && arg[i] <= 'Z') ? arg[i] - 'A' + 'a' : arg[i]);
	return 0;
}

/* ---- saga list ---- */

struct list_ctx {
	struct lt_buf *b;
	bool json;
	size_t n;
};

static enum lt_err list_row(void *arg, const struct lt_saga *s)
{
	struct list_ctx *c = arg;
	if (c->json) {
		if (c->n)
			lt_buf_putc(c->b, ',');
		lt_saga_json_fields(c->b, s, true);
		lt_buf_putc(c->b, '}');
	} else {
		char at[32];
		lt_cli_iso(s->created_ms, "-", at);
		lt_buf_printf(c->b, "%s  %-16s  %s  %s%s  %-8s %9lld  %s\n", s->id,
			      lt_saga_state_name(s->sm.state), at, s->org_id[0] ? "org " : "",
			      s->org_id[0] ? s->org_id : s->user_id, s->provider,
			      (long long)s->tokens, s->failure_reason[0] ? s->failure_reason : "");
	}
	c->n++;
	return c->b->err;
}

int lt_cmd_saga_list(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "saga list";
	const char *status = NULL, *limit_s = NULL;
	bool json = false;
	const struct lt_cli_opt opts[] = {{"--status", NULL, &status},
					  {"--limit", NULL, &limit_s},
					  {"--json", &json, NULL},
					  {NULL, NULL, NULL}};
	char *pos[1];
	int npos, rc = lt_cli_args(cmd, argc, argv, opts, 0, 0, pos, &npos);
	if (rc)
		return rc;
	enum lt_saga_state st;
	if (status && lt_saga_state_parse(status, &st)) {
		fprintf(stderr,
			"leakyctl %s: --status is one of STARTED, PAYMENT_RESERVED, "
			"TOKENS_ALLOCATED, COMPLETED, COMPENSATING, FAILED\n",
			cmd);
		return EX_USAGE;
	}
	long long limit = LIST_DEFAULT;
	if (limit_s) {
		char *end;
		limit = strtoll(limit_s, &end, 10);
		if (end == limit_s || *end || limit < 1 || limit > LT_SAGA_LIST_MAX) {
			fprintf(stderr, "leakyctl %s: --limit must be 1-%d\n", cmd,
				LT_SAGA_LIST_MAX);
			return EX_USAGE;
		}
	}
	struct sqlite3 *db;
	if ((rc = lt_cli_db_open(cli, cmd, false, &db)))
		return rc;
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 64u << 20);
	struct list_ctx c = {&b, json, 0};
	if (json)
		lt_buf_puts(&b, "{\"items\":[");
	enum lt_err e = lt_saga_store_list(db, status ? &st : NULL, (size_t)limit, list_row, &c);
	if (json)
		lt_buf_printf(&b, "],\"count\":%zu}\n", c.n);
	lt_db_close(db);
	if (e || b.err)
		rc = lt_cli_fail(cmd, e ? e : b.err, "listing the sagas");
	else
		fwrite(b.data, 1, b.len, stdout);
	lt_buf_release(&b);
	return rc;
}

/* ---- saga show ---- */

static enum lt_err step_text(void *arg, const struct lt_saga_step_row *r)
{
	struct lt_buf *b = arg;
	char at[32];
	lt_cli_iso(r->at_ms, "-", at);
	lt_buf_printf(b, "  %s  %-18s %-9s", at, r->name, r->status);
	if (r->tries > 1)
		lt_buf_printf(b, " x%lld", (long long)r->tries);
	lt_buf_printf(b, "%s%s\n", r->detail[0] ? "  " : "", r->detail);
	return b->err;
}

static void show_text(struct lt_buf *b, struct sqlite3 *db, const struct lt_saga *s)
{
	char created[32], updated[32], next[32];
	lt_cli_iso(s->created_ms, "-", created);
	lt_cli_iso(s->updated_ms, "-", updated);
	lt_cli_iso(s->next_attempt_ms, "now (marked)", next);
	lt_buf_printf(b,
		      "id: %s\nstatus: %s\nuser: %s\norg: %s\nprovider: %s\ntokens: %lld\n"
		      "amount_micros: %lld\nidempotency_key: %s\npayment_id: %s\n"
		      "failure_reason: %s\nattempts: %d\ncompensation_requested: %s\n"
		      "next_attempt: %s\ncreated: %s\nupdated: %s\nsteps:\n",
		      s->id, lt_saga_state_name(s->sm.state), s->user_id,
		      s->org_id[0] ? s->org_id : "-", s->provider, (long long)s->tokens,
		      (long long)s->amount_micros, s->has_key ? s->idem_key : "-",
		      s->payment_id[0] ? s->payment_id : "-",
		      s->failure_reason[0] ? s->failure_reason : "-", s->sm.attempts,
		      s->compensate ? "yes" : "no", lt_saga_state_final(s->sm.state) ? "-" : next,
		      created, updated);
	enum lt_err e = lt_saga_store_steps(db, s->id, step_text, b);
	if (e && !b->err)
		b->err = e;
}

int lt_cmd_saga_show(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "saga show";
	bool json = false;
	const struct lt_cli_opt opts[] = {{"--json", &json, NULL}, {NULL, NULL, NULL}};
	char *pos[1], id[LT_UUID_LEN];
	int npos, rc = lt_cli_args(cmd, argc, argv, opts, 1, 1, pos, &npos);
	if (rc || (rc = id_arg(cmd, pos[0], id)))
		return rc;
	struct sqlite3 *db;
	if ((rc = lt_cli_db_open(cli, cmd, false, &db)))
		return rc;
	struct lt_saga s;
	struct lt_buf b;
	lt_buf_init(&b, NULL, 0, 1u << 20);
	enum lt_err e = lt_saga_store_get(db, id, &s);
	if (e == LT_ENOTFOUND) {
		fprintf(stderr, "leakyctl %s: no saga %s\n", cmd, id);
		rc = EX_NOINPUT;
		goto out;
	}
	if (e) {
		rc = lt_cli_fail(cmd, e, "reading the saga");
		goto out;
	}
	if (json) {
		e = lt_saga_json(&b, db, &s, true);
		lt_buf_putc(&b, '\n');
	} else {
		show_text(&b, db, &s);
		e = b.err;
	}
	if (e || b.err) {
		rc = lt_cli_fail(cmd, e ? e : b.err, "rendering the saga");
		goto out;
	}
	fwrite(b.data, 1, b.len, stdout);
out:
	lt_buf_release(&b);
	lt_db_close(db);
	return rc;
}

/* ---- saga retry / compensate ---- */

static int mark(struct lt_cli *cli, const char *cmd, int argc, char **argv, bool compensate)
{
	char *pos[1], id[LT_UUID_LEN];
	int npos, rc = lt_cli_args(cmd, argc, argv, NULL, 1, 1, pos, &npos);
	if (rc || (rc = id_arg(cmd, pos[0], id)))
		return rc;
	struct sqlite3 *db;
	if ((rc = lt_cli_db_open(cli, cmd, false, &db)))
		return rc;
	if ((rc = lt_cli_begin(db, cmd)))
		goto out;
	struct lt_saga s;
	enum lt_err e = lt_saga_store_mark(db, id, compensate, &s);
	if (e == LT_ENOTFOUND) {
		fprintf(stderr, "leakyctl %s: no saga %s\n", cmd, id);
		rc = EX_NOINPUT;
		goto rollback;
	}
	if (e == LT_EINVAL || e == LT_EDENIED) {
		if (e == LT_EDENIED)
			fprintf(stderr,
				"leakyctl %s: refused: the payment of saga %s is already captured; "
				"the purchase can only complete\n",
				cmd, id);
		else if (lt_saga_store_get(db, id, &s) == LT_OK)
			fprintf(stderr, "leakyctl %s: refused: saga %s is %s: nothing to %s\n", cmd,
				id, lt_saga_state_name(s.sm.state),
				compensate ? "compensate" : "retry");
		else
			fprintf(stderr, "leakyctl %s: refused: saga %s is final\n", cmd, id);
		rc = EX_DATAERR;
		goto rollback;
	}
	if (e) {
		rc = lt_cli_fail(cmd, e, "marking the saga");
		goto rollback;
	}
	char detail[128];
	snprintf(detail, sizeof detail, "{\"status\":\"%s\"}", lt_saga_state_name(s.sm.state));
	e = lt_ident_audit(db, lt_cli_now_ms(), ACTOR,
			   compensate ? "saga.compensate" : "saga.retry", id, detail);
	if (e) {
		rc = lt_cli_fail(cmd, e, "writing the audit row");
		goto rollback;
	}
	if ((rc = lt_cli_commit(db, cmd)))
		goto out;
	printf("saga %s (%s) marked for %s: a running leakyd %s it at its next scheduler tick, "
	       "a stopped one at its next start\n",
	       id, lt_saga_state_name(s.sm.state), compensate ? "compensation" : "a retry",
	       compensate ? "compensates" : "resumes");
	goto out;
rollback:
	lt_cli_rollback(db);
out:
	lt_db_close(db);
	return rc;
}

int lt_cmd_saga_retry(struct lt_cli *cli, int argc, char **argv)
{
	return mark(cli, "saga retry", argc, argv, false);
}

int lt_cmd_saga_compensate(struct lt_cli *cli, int argc, char **argv)
{
	return mark(cli, "saga compensate", argc, argv, true);
}
