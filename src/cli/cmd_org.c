/*
 * cmd_org.c — leakyctl org add | list | member add | member remove | members.
 *
 * An ORG argument is an org id or its name (case-insensitive); ids are
 * tried first.  Membership changes run with their audit row in one
 * BEGIN IMMEDIATE transaction and bump the identity generation after the
 * commit (membership decides what a USER may do for an org).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>

#include "auth/identity_store.h"
#include "cli/cli.h"
#include "store/db.h"
#include "util/buf.h"
#include "util/uuid.h"

#define ACTOR "leakyctl"

struct find_org {
	const char *name;
	struct lt_org *out;
	bool found;
};

static bool match_org(void *arg, const struct lt_org *o)
{
	struct find_org *f = arg;
	if (strcasecmp(o->name, f->name) != 0)
		return true;
	*f->out = *o;
	f->found = true;
	return false;
}

/* The org with id or name `ref`: EX_DATAERR if none. */
int lt_cli_org(struct sqlite3 *db, const char *cmd, const char *ref, struct lt_org *out)
{
	enum lt_err e = LT_ENOTFOUND;
	if (lt_uuid_valid(ref, strlen(ref))) {
		char id[LT_ID_LEN + 1];
		for (size_t i = 0; i <= LT_ID_LEN; i++)
			id[i] = (char)(ref[i] >= 'A' && ref[i] <= 'F' ? ref[i] - 'A' + 'a'
								      : ref[i]);
		e = lt_ident_org_by_id(db, id, out);
	}
	if (e == LT_ENOTFOUND) {
		struct find_org f = {ref, out, false};
		e = lt_ident_org_list(db, match_org, &f);
		if (!e && !f.found)
			e = LT_ENOTFOUND;
	}
	if (e == LT_ENOTFOUND) {
		fprintf(stderr, "leakyctl %s: no such org '%s'\n", cmd, ref);
		return EX_DATAERR;
	}
	return e ? lt_cli_fail(cmd, e, "reading the org") : 0;
}

int lt_cmd_org_add(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "org add";
	char *pos[1];
	int npos, rc = lt_cli_args(cmd, argc, argv, NULL, 1, 1, pos, &npos);
	if (rc)
		return rc;
	size_t n = strlen(pos[0]);
	bool ok = n >= 1 && n <= LT_NAME_MAX;
	for (size_t i = 0; ok && i < n; i++)
		ok = (unsigned char)pos[0][i] >= ' ' && pos[0][i] != 0x7F;
	if (!ok) {
		fprintf(stderr, "leakyctl %s: an org name is 1-%d printable characters\n", cmd,
			LT_NAME_MAX);
		return EX_DATAERR;
	}
	struct sqlite3 *db;
	if ((rc = lt_cli_db_open(cli, cmd, true, &db)))
		return rc;
	struct lt_org o;
	struct lt_buf d;
	lt_buf_init(&d, NULL, 0, 1024);
	memset(&o, 0, sizeof o);
	lt_uuid_v4(o.id);
	snprintf(o.name, sizeof o.name, "%s", pos[0]);
	if ((rc = lt_cli_begin(db, cmd)))
		goto out;
	o.created_ms = lt_cli_now_ms();
	enum lt_conflict conflict = LT_CONFLICT_NONE;
	enum lt_err e = lt_ident_org_insert(db, &o, &conflict);
	lt_buf_puts(&d, "{\"name\":");
	lt_buf_put_json_str(&d, o.name, strlen(o.name));
	lt_buf_putc(&d, '}');
	if (!e)
		e = d.err ? d.err
			  : lt_ident_audit(db, o.created_ms, ACTOR, "org.created", o.id, d.data);
	if (e) {
		lt_cli_rollback(db);
		if (conflict == LT_CONFLICT_NAME) {
			fprintf(stderr, "leakyctl %s: org name already exists\n", cmd);
			rc = EX_DATAERR;
		} else {
			rc = lt_cli_fail(cmd, e, "creating the org");
		}
		goto out;
	}
	if ((rc = lt_cli_commit(db, cmd)))
		goto out;
	printf("created org %s (%s)\n", o.name, o.id);
out:
	lt_buf_release(&d);
	lt_db_close(db);
	return rc;
}

static bool print_org(void *arg, const struct lt_org *o)
{
	(void)arg;
	char created[32];
	lt_cli_iso(o->created_ms, "-", created);
	printf("%s %s created=%s\n", o->id, o->name, created);
	return true;
}

int lt_cmd_org_list(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "org list";
	char *pos[1];
	int npos, rc = lt_cli_args(cmd, argc, argv, NULL, 0, 0, pos, &npos);
	struct sqlite3 *db;
	if (rc || (rc = lt_cli_db_open(cli, cmd, false, &db)))
		return rc;
	enum lt_err e = lt_ident_org_list(db, print_org, NULL);
	lt_db_close(db);
	return e ? lt_cli_fail(cmd, e, "listing orgs") : 0;
}

/* member add (role != 0) or member remove (role == 0). */
static int member_change(struct lt_cli *cli, const char *cmd, const char *org_ref,
			 const char *username, unsigned role)
{
	struct sqlite3 *db;
	int rc = lt_cli_db_open(cli, cmd, false, &db);
	if (rc)
		return rc;
	struct lt_org o;
	struct lt_user u;
	struct lt_buf d;
	lt_buf_init(&d, NULL, 0, 1024);
	if ((rc = lt_cli_begin(db, cmd)))
		goto out;
	if ((rc = lt_cli_org(db, cmd, org_ref, &o)) || (rc = lt_cli_user(db, cmd, username, &u))) {
		lt_cli_rollback(db);
		goto out;
	}
	int64_t now = lt_cli_now_ms();
	enum lt_err e;
	if (role) {
		struct lt_membership m;
		memcpy(m.org_id, o.id, sizeof m.org_id);
		memcpy(m.user_id, u.id, sizeof m.user_id);
		m.role = role;
		m.created_ms = now;
		e = lt_ident_member_put(db, &m);
	} else {
		e = lt_ident_member_remove(db, o.id, u.id);
	}
	lt_buf_printf(&d, "{\"orgId\":\"%s\",\"userId\":\"%s\",\"username\":", o.id, u.id);
	lt_buf_put_json_str(&d, u.username, strlen(u.username));
	if (role)
		lt_buf_printf(&d, ",\"role\":\"%s\"", lt_role_name(role));
	lt_buf_putc(&d, '}');
	if (!e)
		e = d.err ? d.err
			  : lt_ident_audit(db, now, ACTOR,
					   role ? "org.member.added" : "org.member.removed", o.id,
					   d.data);
	if (e) {
		lt_cli_rollback(db);
		if (e == LT_ENOTFOUND && !role) {
			fprintf(stderr, "leakyctl %s: %s is not a member of %s\n", cmd, u.username,
				o.name);
			rc = EX_DATAERR;
		} else {
			rc = lt_cli_fail(cmd, e, "updating the membership");
		}
		goto out;
	}
	if ((rc = lt_cli_commit(db, cmd)) || (rc = lt_cli_changed(cli, cmd)))
		goto out;
	if (role)
		printf("%s is %s of %s\n", u.username, lt_role_name(role), o.name);
	else
		printf("%s removed from %s\n", u.username, o.name);
out:
	lt_buf_release(&d);
	lt_db_close(db);
	return rc;
}

int lt_cmd_org_member_add(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "org member add";
	char *pos[3];
	int npos, rc = lt_cli_args(cmd, argc, argv, NULL, 3, 3, pos, &npos);
	if (rc)
		return rc;
	char role_s[16];
	snprintf(role_s, sizeof role_s, "%s", pos[2]);
	for (char *p = role_s; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	unsigned role = lt_role_parse(role_s);
	if (role != LT_ROLE_USER && role != LT_ROLE_ORG_ADMIN) {
		fprintf(stderr, "leakyctl %s: an org role is ORG_ADMIN or USER, not '%s'\n", cmd,
			pos[2]);
		return EX_USAGE;
	}
	return member_change(cli, cmd, pos[0], pos[1], role);
}

int lt_cmd_org_member_remove(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "org member remove";
	char *pos[2];
	int npos, rc = lt_cli_args(cmd, argc, argv, NULL, 2, 2, pos, &npos);
	return rc ? rc : member_change(cli, cmd, pos[0], pos[1], 0);
}

static bool print_member(void *arg, const struct lt_membership *m, const char *username)
{
	(void)arg;
	char since[32];
	lt_cli_iso(m->created_ms, "-", since);
	printf("%s %s %s since=%s\n", m->user_id, username,
	       lt_role_name(m->role) ? lt_role_name(m->role) : "?", since);
	return true;
}

int lt_cmd_org_members(struct lt_cli *cli, int argc, char **argv)
{
	const char *cmd = "org members";
	char *pos[1];
	int npos, rc = lt_cli_args(cmd, argc, argv, NULL, 1, 1, pos, &npos);
	struct sqlite3 *db;
	if (rc || (rc = lt_cli_db_open(cli, cmd, false, &db)))
		return rc;
	struct lt_org o;
	if (!(rc = lt_cli_org(db, cmd, pos[0], &o))) {
		enum lt_err e = lt_ident_member_list_named(db, o.id, print_member, NULL);
		if (e)
			rc = lt_cli_fail(cmd, e, "listing members");
	}
	lt_db_close(db);
	return rc;
}
