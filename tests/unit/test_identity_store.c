/*
 * test_identity_store.c — src/auth/identity_store.c against a real,
 * migrated leaky.db in a temp directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "auth/identity_store.h"
#include "store/datadir.h"
#include "store/db.h"
#include "testutil.h"

struct fx {
	char dir[TU_PATH_MAX];
	sqlite3 *db;
};

static int setup(void **state)
{
	static struct fx f;
	char err[LT_DATADIR_ERR_MAX];
	int from, to;
	tu_tmpdir(f.dir);
	if (lt_storage_open_db(f.dir, 1, 1000, &f.db, &from, &to, err))
		return -1;
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	lt_db_close(f->db);
	tu_rmtree(f->dir);
	return 0;
}

static void mkuser(struct lt_user *u, const char *id, const char *name, const char *email,
		   unsigned roles)
{
	memset(u, 0, sizeof *u);
	snprintf(u->id, sizeof u->id, "%s", id);
	snprintf(u->username, sizeof u->username, "%s", name);
	snprintf(u->email, sizeof u->email, "%s", email);
	u->roles = roles;
	u->created_ms = 1000;
}

#define U1 "00000000-0000-4000-8000-000000000001"
#define U2 "00000000-0000-4000-8000-000000000002"
#define O1 "00000000-0000-4000-8000-0000000000a1"

static void test_roles(void **state)
{
	(void)state;
	assert_string_equal(lt_role_name(LT_ROLE_ADMIN), "ADMIN");
	assert_string_equal(lt_role_name(LT_ROLE_ORG_ADMIN), "ORG_ADMIN");
	assert_string_equal(lt_role_name(LT_ROLE_USER), "USER");
	assert_null(lt_role_name(LT_ROLE_USER | LT_ROLE_ADMIN));
	assert_int_equal(lt_role_parse("ADMIN"), LT_ROLE_ADMIN);
	assert_int_equal(lt_role_parse("admin"), 0);
	assert_int_equal(lt_role_parse(NULL), 0);
}

static void test_users(void **state)
{
	struct fx *f = *state;
	struct lt_user u, got;
	enum lt_conflict c;
	char hash[LT_PWHASH_MAX + 1];
	mkuser(&u, U1, "Alice", "alice@example.com", LT_ROLE_USER | LT_ROLE_ADMIN);
	assert_int_equal(lt_ident_user_insert(f->db, &u, "$argon2id$x", &c), LT_OK);
	mkuser(&u, U2, "alice", "other@example.com", LT_ROLE_USER);
	assert_int_equal(lt_ident_user_insert(f->db, &u, "h", &c), LT_EEXIST);
	assert_int_equal(c, LT_CONFLICT_USERNAME);
	mkuser(&u, U2, "bob", "ALICE@example.com", LT_ROLE_USER);
	assert_int_equal(lt_ident_user_insert(f->db, &u, "h", &c), LT_EEXIST);
	assert_int_equal(c, LT_CONFLICT_EMAIL);
	mkuser(&u, U2, "bob", "bob@example.com", LT_ROLE_USER);
	assert_int_equal(lt_ident_user_insert(f->db, &u, "hb", &c), LT_OK);

	assert_int_equal(lt_ident_user_by_name(f->db, "Alice", &got, hash), LT_OK);
	assert_string_equal(got.id, U1);
	assert_string_equal(hash, "$argon2id$x");
	assert_int_equal(got.roles, LT_ROLE_USER | LT_ROLE_ADMIN);
	assert_false(got.disabled);
	assert_string_equal(got.tier, "");
	assert_int_equal(lt_ident_user_by_name(f->db, "nobody", &got, NULL), LT_ENOTFOUND);

	assert_int_equal(lt_ident_user_set_roles(f->db, U2, LT_ROLE_ORG_ADMIN, 2000), LT_OK);
	assert_int_equal(lt_ident_user_set_disabled(f->db, U2, true, 2001), LT_OK);
	assert_int_equal(lt_ident_user_set_tier(f->db, U2, "GOLD", 2002), LT_OK);
	assert_int_equal(lt_ident_user_set_password(f->db, U2, "new", 2003), LT_OK);
	assert_int_equal(lt_ident_user_by_name(f->db, "bob", &got, hash), LT_OK);
	assert_int_equal(got.roles, LT_ROLE_ORG_ADMIN);
	assert_true(got.disabled);
	assert_string_equal(got.tier, "GOLD");
	assert_string_equal(hash, "new");
	assert_int_equal(got.updated_ms, 2003);
	assert_int_equal(lt_ident_user_set_tier(f->db, U2, NULL, 2004), LT_OK);
	assert_int_equal(lt_ident_user_by_id(f->db, U2, &got), LT_OK);
	assert_string_equal(got.tier, "");
	assert_int_equal(lt_ident_user_set_disabled(f->db, "missing", true, 1), LT_ENOTFOUND);

	int64_t n = 0;
	assert_int_equal(lt_ident_user_count(f->db, &n), LT_OK);
	assert_int_equal(n, 2);
}

static bool count_key(void *arg, const struct lt_api_key_row *k)
{
	(void)k;
	(*(int *)arg)++;
	return true;
}

static void test_keys(void **state)
{
	struct fx *f = *state;
	struct lt_api_key_row k, got;
	memset(&k, 0, sizeof k);
	memcpy(k.id, "00000000-0000-4000-8000-0000000000b1", LT_ID_LEN);
	snprintf(k.public_id, sizeof k.public_id, "abcdefghij12");
	snprintf(k.user_id, sizeof k.user_id, "%s", U1);
	snprintf(k.name, sizeof k.name, "ci");
	memset(k.digest, 0x5A, sizeof k.digest);
	k.created_ms = 10;
	k.expires_ms = 99;
	assert_int_equal(lt_ident_key_insert(f->db, &k), LT_OK);
	assert_int_equal(lt_ident_key_insert(f->db, &k), LT_EEXIST);
	assert_int_equal(lt_ident_key_by_public(f->db, "abcdefghij12", &got), LT_OK);
	assert_memory_equal(got.digest, k.digest, sizeof k.digest);
	assert_string_equal(got.name, "ci");
	assert_int_equal(got.expires_ms, 99);
	assert_int_equal(got.revoked_ms, 0);
	assert_int_equal(lt_ident_key_touch(f->db, got.id, 50), LT_OK);
	int n = 0;
	assert_int_equal(lt_ident_key_list(f->db, U1, count_key, &n), LT_OK);
	assert_int_equal(n, 1);
	assert_int_equal(lt_ident_key_revoke(f->db, U2, got.id, 60), LT_ENOTFOUND); /* not U2's */
	assert_int_equal(lt_ident_key_revoke(f->db, U1, got.id, 60), LT_OK);
	assert_int_equal(lt_ident_key_revoke(f->db, U1, got.id, 61), LT_ENOTFOUND); /* already */
	assert_int_equal(lt_ident_key_by_public(f->db, "abcdefghij12", &got), LT_OK);
	assert_int_equal(got.revoked_ms, 60);
	assert_int_equal(got.last_used_ms, 50);
	n = 0;
	assert_int_equal(lt_ident_key_list(f->db, U1, count_key, &n), LT_OK);
	assert_int_equal(n, 0);
	assert_int_equal(lt_ident_key_by_public(f->db, "zzzzzzzzzzzz", &got), LT_ENOTFOUND);
}

static bool collect_member(void *arg, const struct lt_membership *m)
{
	struct lt_membership *out = arg;
	*out = *m;
	return true;
}

static void test_orgs(void **state)
{
	struct fx *f = *state;
	struct lt_org o = {.created_ms = 5}, got;
	enum lt_conflict c;
	snprintf(o.id, sizeof o.id, "%s", O1);
	snprintf(o.name, sizeof o.name, "Acme");
	assert_int_equal(lt_ident_org_insert(f->db, &o, &c), LT_OK);
	memcpy(o.id, "00000000-0000-4000-8000-0000000000a2", LT_ID_LEN);
	snprintf(o.name, sizeof o.name, "ACME");
	assert_int_equal(lt_ident_org_insert(f->db, &o, &c), LT_EEXIST);
	assert_int_equal(c, LT_CONFLICT_NAME);
	assert_int_equal(lt_ident_org_by_id(f->db, O1, &got), LT_OK);
	assert_string_equal(got.name, "Acme");

	struct lt_membership m = {.role = LT_ROLE_USER, .created_ms = 7}, seen;
	snprintf(m.org_id, sizeof m.org_id, "%s", O1);
	snprintf(m.user_id, sizeof m.user_id, "%s", U2);
	assert_int_equal(lt_ident_member_put(f->db, &m), LT_OK);
	m.role = LT_ROLE_ORG_ADMIN;
	assert_int_equal(lt_ident_member_put(f->db, &m), LT_OK); /* role change */
	memset(&seen, 0, sizeof seen);
	assert_int_equal(lt_ident_member_list(f->db, NULL, U2, collect_member, &seen), LT_OK);
	assert_string_equal(seen.org_id, O1);
	assert_int_equal(seen.role, LT_ROLE_ORG_ADMIN);
	m.role = LT_ROLE_ADMIN;
	assert_int_equal(lt_ident_member_put(f->db, &m), LT_EINVAL);
	m.role = LT_ROLE_USER;
	memcpy(m.user_id, "00000000-0000-4000-8000-00000000ffff", LT_ID_LEN);
	assert_int_equal(lt_ident_member_put(f->db, &m), LT_ENOTFOUND);
	assert_int_equal(lt_ident_member_remove(f->db, O1, U2), LT_OK);
	assert_int_equal(lt_ident_member_remove(f->db, O1, U2), LT_ENOTFOUND);
}

static void test_audit(void **state)
{
	struct fx *f = *state;
	assert_int_equal(lt_ident_audit(f->db, 123, "leakyctl", "user.created", U1,
					"{\"username\":\"Alice\"}"),
			 LT_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(f->db, "SELECT at, actor, action, target FROM audit",
					    -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int64(st, 0), 123);
	assert_string_equal((const char *)sqlite3_column_text(st, 2), "user.created");
	sqlite3_finalize(st);
}

static bool collect_named(void *arg, const struct lt_membership *m, const char *username)
{
	char *out = arg;
	size_t n = strlen(out);
	snprintf(out + n, 256 - n, "%s:%s:%s;", username, lt_role_name(m->role), m->user_id + 34);
	return true;
}

static void test_members_named(void **state)
{
	struct fx *f = *state;
	struct lt_org o = {.created_ms = 5};
	struct lt_user u;
	struct lt_membership m, got;
	enum lt_conflict c;
	char seen[256] = "";
#define O3 "00000000-0000-4000-8000-0000000000a3"
#define U5 "00000000-0000-4000-8000-000000000005"
#define U6 "00000000-0000-4000-8000-000000000006"
	snprintf(o.id, sizeof o.id, "%s", O3);
	snprintf(o.name, sizeof o.name, "Named");
	assert_int_equal(lt_ident_org_insert(f->db, &o, &c), LT_OK);
	mkuser(&u, U5, "erin", "erin@example.com", LT_ROLE_USER);
	assert_int_equal(lt_ident_user_insert(f->db, &u, "h", &c), LT_OK);
	mkuser(&u, U6, "frank", "frank@example.com", LT_ROLE_USER);
	assert_int_equal(lt_ident_user_insert(f->db, &u, "h", &c), LT_OK);
	assert_int_equal(lt_ident_member_get(f->db, O3, U5, &got), LT_ENOTFOUND);
	m = (struct lt_membership){.role = LT_ROLE_ORG_ADMIN, .created_ms = 20};
	snprintf(m.org_id, sizeof m.org_id, "%s", O3);
	snprintf(m.user_id, sizeof m.user_id, "%s", U6);
	assert_int_equal(lt_ident_member_put(f->db, &m), LT_OK);
	m.role = LT_ROLE_USER;
	m.created_ms = 10;
	snprintf(m.user_id, sizeof m.user_id, "%s", U5);
	assert_int_equal(lt_ident_member_put(f->db, &m), LT_OK);
	m.created_ms = 99; /* a role change keeps the join time */
	assert_int_equal(lt_ident_member_put(f->db, &m), LT_OK);
	assert_int_equal(lt_ident_member_get(f->db, O3, U5, &got), LT_OK);
	assert_string_equal(got.org_id, O3);
	assert_int_equal(got.role, LT_ROLE_USER);
	assert_int_equal(got.created_ms, 10);
	assert_int_equal(lt_ident_member_list_named(f->db, O3, collect_named, seen), LT_OK);
	assert_string_equal(seen, "erin:USER:05;frank:ORG_ADMIN:06;");
	seen[0] = '\0';
	assert_int_equal(lt_ident_member_list_named(f->db, O1, collect_named, seen), LT_OK);
	assert_string_equal(seen, "");
}

static bool collect_tier(void *arg, const char *tier)
{
	char *out = arg;
	size_t n = strlen(out);
	snprintf(out + n, 128 - n, "%s;", tier);
	return true;
}

static void test_tiers(void **state)
{
	struct fx *f = *state;
	char seen[128] = "";
	assert_int_equal(lt_ident_user_set_tier(f->db, U1, "ZED", 1), LT_OK);
	assert_int_equal(lt_ident_user_set_tier(f->db, U2, "GOLD", 1), LT_OK);
	assert_int_equal(lt_ident_tier_list(f->db, collect_tier, seen), LT_OK);
	assert_string_equal(seen, "GOLD;ZED;");
	assert_int_equal(lt_ident_user_set_tier(f->db, U1, "GOLD", 1), LT_OK);
	seen[0] = '\0';
	assert_int_equal(lt_ident_tier_list(f->db, collect_tier, seen), LT_OK);
	assert_string_equal(seen, "GOLD;");
	assert_int_equal(lt_ident_user_set_tier(f->db, U1, NULL, 1), LT_OK);
	assert_int_equal(lt_ident_user_set_tier(f->db, U2, NULL, 1), LT_OK);
	seen[0] = '\0';
	assert_int_equal(lt_ident_tier_list(f->db, collect_tier, seen), LT_OK);
	assert_string_equal(seen, "");
}

static void test_validators(void **state)
{
	(void)state;
	assert_true(lt_ident_valid_username("a.b_c-1"));
	assert_false(lt_ident_valid_username("ab"));
	assert_false(lt_ident_valid_username("a b c"));
	assert_true(lt_ident_valid_email("x@y.io"));
	assert_false(lt_ident_valid_email("x@y"));
	assert_false(lt_ident_valid_email("x@@y.io"));
	assert_false(lt_ident_valid_email("x y@y.io"));
	assert_true(lt_ident_valid_tier("GOLD_2"));
	assert_true(lt_ident_valid_tier("A"));
	assert_false(lt_ident_valid_tier(""));
	assert_false(lt_ident_valid_tier("gold"));
	assert_false(lt_ident_valid_tier("GOLD-2"));
	assert_true(lt_ident_valid_tier("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"));
	assert_false(lt_ident_valid_tier("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"));
}

struct audit_seen {
	int n;
	int64_t ids[8];
	struct lt_audit_row last;
};

static bool collect_audit(void *arg, const struct lt_audit_row *r)
{
	struct audit_seen *s = arg;
	if (s->n < 8)
		s->ids[s->n] = r->at_ms;
	s->n++;
	s->last = *r;
	return true;
}

static void test_audit_list(void **state)
{
	struct fx *f = *state;
	struct audit_seen s = {0};
	/* test_audit wrote one row at 123. */
	assert_int_equal(lt_ident_audit(f->db, 500, U1, "user.roles", U2, "{\"roles\":[]}"), LT_OK);
	assert_int_equal(lt_ident_audit(f->db, 400, "system", "org.created", NULL, NULL), LT_OK);
	assert_int_equal(lt_ident_audit(f->db, 500, U1, "user.tier", U2, NULL), LT_OK);
	assert_int_equal(lt_ident_audit_list(f->db, 0, 10, collect_audit, &s), LT_OK);
	assert_int_equal(s.n, 4);
	assert_int_equal(s.ids[0], 500);
	assert_int_equal(s.ids[1], 500);
	assert_int_equal(s.ids[2], 400);
	assert_int_equal(s.ids[3], 123);
	assert_string_equal(s.last.action, "user.created");
	assert_string_equal(s.last.actor, "leakyctl");
	assert_string_equal(s.last.detail, "{\"username\":\"Alice\"}");
	memset(&s, 0, sizeof s);
	assert_int_equal(lt_ident_audit_list(f->db, 0, 1, collect_audit, &s), LT_OK);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.last.action, "user.tier"); /* same time: higher id first */
	memset(&s, 0, sizeof s);
	assert_int_equal(lt_ident_audit_list(f->db, 400, 10, collect_audit, &s), LT_OK);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.last.action, "org.created");
	assert_string_equal(s.last.target, "");
	assert_string_equal(s.last.detail, "");
	memset(&s, 0, sizeof s);
	assert_int_equal(lt_ident_audit_list(f->db, 501, 10, collect_audit, &s), LT_OK);
	assert_int_equal(s.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roles),	   cmocka_unit_test(test_users),
		cmocka_unit_test(test_keys),	   cmocka_unit_test(test_orgs),
		cmocka_unit_test(test_audit),	   cmocka_unit_test(test_members_named),
		cmocka_unit_test(test_tiers),	   cmocka_unit_test(test_validators),
		cmocka_unit_test(test_audit_list),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
