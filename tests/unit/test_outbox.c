/*
 * test_outbox.c — src/events/outbox.c against a real leaky.db in a temp
 * directory, migrated by the project's own migration code; and the audit
 * event lt_ident_audit writes beside its row (auth/identity_store.c).
 *
 * Covered: add (ids increasing, fields stored, key NULL as ""), pending
 * (id order, after_id, max, a callback error stops and is returned),
 * mark (only pending rows up to the id, counted once), stat (pending,
 * oldest pending, max id, published retained), prune (only published
 * rows published before the time, at most max, oldest first), bounds
 * (LT_EINVAL for every field out of frame.h's limits, nothing inserted;
 * the limits themselves accepted), ids never reused after prune
 * (AUTOINCREMENT, even when the newest row is deleted), an add inside a
 * transaction that rolls back leaves nothing; the audit event: topic
 * "audit", key = target, type = action, payload {id, at, actor, action,
 * target, detail} with detail the object itself, in the same transaction
 * as the audit row.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "auth/identity_store.h"
#include "conf/config.h"
#include "events/outbox.h"
#include "store/datadir.h"
#include "store/db.h"
#include "util/json.h"
#include "testutil.h"

#define T0 INT64_C(1767225600000) /* 2026-01-01T00:00:00Z */

struct fx {
	char dir[TU_PATH_MAX];
	sqlite3 *db;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	if (!f)
		return -1;
	tu_tmpdir(f->dir);
	char err[LT_DATADIR_ERR_MAX] = "";
	int from, to;
	if (lt_storage_open_db(f->dir, LT_SYNC_NORMAL, 5000, &f->db, &from, &to, err)) {
		fprintf(stderr, "open: %s\n", err);
		tu_rmtree(f->dir);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	lt_db_close(f->db);
	tu_rmtree(f->dir);
	free(f);
	return 0;
}

static int64_t q64(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int64_t rows(sqlite3 *db)
{
	return q64(db, "SELECT count(*) FROM outbox");
}

static int64_t add(sqlite3 *db, const char *topic, const char *key, const char *payload,
		   int64_t now)
{
	int64_t id = -1;
	assert_int_equal(lt_outbox_add(db, topic, key, "T", payload, now, &id), LT_OK);
	assert_true(id > 0);
	return id;
}

/* pending rows as "id:topic:key:type:payload:created;" */
struct seen {
	char text[4096];
	size_t n;
	size_t stop_after; /* 0: never */
};

static enum lt_err see(void *arg, const struct lt_outbox_row *r)
{
	struct seen *s = arg;
	size_t len = strlen(s->text);
	snprintf(s->text + len, sizeof s->text - len, "%lld:%s:%s:%s:%.*s:%lld;", (long long)r->id,
		 r->topic, r->key, r->type, (int)r->payload_len, r->payload,
		 (long long)(r->created_ms - T0));
	s->n++;
	return s->stop_after && s->n == s->stop_after ? LT_EBUSY : LT_OK;
}

static void test_add_pending(void **state)
{
	struct fx *f = *state;
	int64_t a = add(f->db, LT_TOPIC_USAGE, "u1", "{\"a\":1}", T0 + 1);
	int64_t b = add(f->db, LT_TOPIC_AUDIT, NULL, "{}", T0 + 2);
	int64_t c = add(f->db, LT_TOPIC_PURCHASE, "s1", "{\"c\":3}", T0 + 3);
	assert_true(a < b && b < c);
	struct seen s = {"", 0, 0};
	assert_int_equal(lt_outbox_pending(f->db, 0, 100, see, &s), LT_OK);
	char want[512];
	snprintf(want, sizeof want,
		 "%lld:token-usage:u1:T:{\"a\":1}:1;%lld:audit::T:{}:2;"
		 "%lld:token-purchase:s1:T:{\"c\":3}:3;",
		 (long long)a, (long long)b, (long long)c);
	assert_string_equal(s.text, want);
	/* after_id and max */
	struct seen s2 = {"", 0, 0};
	assert_int_equal(lt_outbox_pending(f->db, a, 1, see, &s2), LT_OK);
	assert_int_equal(s2.n, 1);
	snprintf(want, sizeof want, "%lld:audit::T:{}:2;", (long long)b);
	assert_string_equal(s2.text, want);
	/* a callback error stops and is returned */
	struct seen s3 = {"", 0, 2};
	assert_int_equal(lt_outbox_pending(f->db, 0, 100, see, &s3), LT_EBUSY);
	assert_int_equal(s3.n, 2);
	/* nothing after the last */
	struct seen s4 = {"", 0, 0};
	assert_int_equal(lt_outbox_pending(f->db, c, 100, see, &s4), LT_OK);
	assert_int_equal(s4.n, 0);
	assert_int_equal(lt_outbox_pending(f->db, 0, 0, see, &s4), LT_EINVAL);
	assert_int_equal(lt_outbox_pending(f->db, 0, 1, NULL, &s4), LT_EINVAL);
	assert_int_equal(lt_outbox_pending(NULL, 0, 1, see, &s4), LT_EINVAL);
}

static void test_mark_stat(void **state)
{
	struct fx *f = *state;
	struct lt_outbox_stat st;
	assert_int_equal(lt_outbox_stat(f->db, &st), LT_OK);
	assert_int_equal(st.pending, 0);
	assert_int_equal(st.oldest_pending_ms, 0);
	assert_int_equal(st.max_id, 0);
	assert_int_equal(st.published_retained, 0);
	int64_t id[5];
	for (int i = 0; i < 5; i++)
		id[i] = add(f->db, LT_TOPIC_USAGE, "k", "{}", T0 + 10 * i);
	assert_int_equal(lt_outbox_stat(f->db, &st), LT_OK);
	assert_int_equal(st.pending, 5);
	assert_int_equal(st.oldest_pending_ms, T0);
	assert_int_equal(st.max_id, id[4]);
	int64_t n = -1;
	assert_int_equal(lt_outbox_mark(f->db, id[2], T0 + 100, &n), LT_OK);
	assert_int_equal(n, 3);
	/* marking again changes nothing (the first time stays) */
	assert_int_equal(lt_outbox_mark(f->db, id[2], T0 + 200, &n), LT_OK);
	assert_int_equal(n, 0);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM outbox WHERE published_at = "
				    "1767225600100"),
			 3);
	assert_int_equal(lt_outbox_stat(f->db, &st), LT_OK);
	assert_int_equal(st.pending, 2);
	assert_int_equal(st.oldest_pending_ms, T0 + 30);
	assert_int_equal(st.published_retained, 3);
	struct seen s = {"", 0, 0};
	assert_int_equal(lt_outbox_pending(f->db, 0, 100, see, &s), LT_OK);
	assert_int_equal(s.n, 2);
	assert_int_equal(lt_outbox_mark(f->db, id[4], T0 + 300, NULL), LT_OK);
	assert_int_equal(lt_outbox_stat(f->db, &st), LT_OK);
	assert_int_equal(st.pending, 0);
	assert_int_equal(st.oldest_pending_ms, 0);
	assert_int_equal(st.published_retained, 5);
	assert_int_equal(lt_outbox_mark(NULL, 1, 0, NULL), LT_EINVAL);
	assert_int_equal(lt_outbox_stat(f->db, NULL), LT_EINVAL);
}

static void test_prune_ids_not_reused(void **state)
{
	struct fx *f = *state;
	int64_t id[6];
	for (int i = 0; i < 6; i++)
		id[i] = add(f->db, LT_TOPIC_USAGE, "k", "{}", T0 + i);
	assert_int_equal(lt_outbox_mark(f->db, id[1], T0 + 100, NULL), LT_OK); /* 0, 1 */
	assert_int_equal(lt_outbox_mark(f->db, id[3], T0 + 200, NULL), LT_OK); /* 2, 3 */
	int64_t n = -1;
	/* published before T0+100: none (strictly before) */
	assert_int_equal(lt_outbox_prune(f->db, T0 + 100, 100, &n), LT_OK);
	assert_int_equal(n, 0);
	/* before T0+201, at most 3: the oldest three published */
	assert_int_equal(lt_outbox_prune(f->db, T0 + 201, 3, &n), LT_OK);
	assert_int_equal(n, 3);
	assert_int_equal(rows(f->db), 3);
	assert_int_equal(q64(f->db, "SELECT min(id) FROM outbox"), id[3]);
	/* pending rows are never pruned */
	assert_int_equal(lt_outbox_prune(f->db, T0 + 1000000, 100, &n), LT_OK);
	assert_int_equal(n, 1);
	assert_int_equal(rows(f->db), 2);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM outbox WHERE published_at IS NULL"), 2);
	/* publish and prune everything, the newest row included: the next id
	 * still follows the largest ever given */
	assert_int_equal(lt_outbox_mark(f->db, id[5], T0 + 300, NULL), LT_OK);
	assert_int_equal(lt_outbox_prune(f->db, T0 + 301, 100, &n), LT_OK);
	assert_int_equal(n, 2);
	assert_int_equal(rows(f->db), 0);
	struct lt_outbox_stat st;
	assert_int_equal(lt_outbox_stat(f->db, &st), LT_OK);
	assert_int_equal(st.max_id, id[5]);
	assert_int_equal(st.published_retained, 0);
	int64_t next = add(f->db, LT_TOPIC_USAGE, "k", "{}", T0 + 400);
	assert_int_equal(next, id[5] + 1);
	/* also across a reopen */
	lt_db_close(f->db);
	char err[LT_DATADIR_ERR_MAX] = "";
	int from, to;
	assert_int_equal(lt_storage_open_db(f->dir, LT_SYNC_NORMAL, 5000, &f->db, &from, &to, err),
			 LT_OK);
	assert_int_equal(lt_outbox_mark(f->db, next, T0 + 500, NULL), LT_OK);
	assert_int_equal(lt_outbox_prune(f->db, T0 + 501, 10, &n), LT_OK);
	assert_int_equal(add(f->db, LT_TOPIC_USAGE, "k", "{}", T0 + 600), next + 1);
	assert_int_equal(lt_outbox_prune(f->db, T0, 0, &n), LT_EINVAL);
	assert_int_equal(lt_outbox_prune(NULL, T0, 1, &n), LT_EINVAL);
}

static char *filled(size_t n, char c)
{
	char *s = malloc(n + 1);
	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void test_bounds(void **state)
{
	struct fx *f = *state;
	char *topic_max = filled(LT_EV_TOPIC_MAX, 't'),
	     *topic_over = filled(LT_EV_TOPIC_MAX + 1, 't');
	char *type_max = filled(LT_EV_TYPE_MAX, 'y'), *type_over = filled(LT_EV_TYPE_MAX + 1, 'y');
	char *key_max = filled(LT_EV_KEY_MAX, 'k'), *key_over = filled(LT_EV_KEY_MAX + 1, 'k');
	char *pl_max = filled(LT_EV_PAYLOAD_MAX, ' '),
	     *pl_over = filled(LT_EV_PAYLOAD_MAX + 1, ' ');
	int64_t id = 0;
	assert_int_equal(lt_outbox_add(f->db, "", "k", "T", "{}", T0, &id), LT_EINVAL);
	assert_int_equal(lt_outbox_add(f->db, NULL, "k", "T", "{}", T0, &id), LT_EINVAL);
	assert_int_equal(lt_outbox_add(f->db, topic_over, "k", "T", "{}", T0, &id), LT_EINVAL);
	assert_int_equal(lt_outbox_add(f->db, "t", "k", "", "{}", T0, &id), LT_EINVAL);
	assert_int_equal(lt_outbox_add(f->db, "t", "k", NULL, "{}", T0, &id), LT_EINVAL);
	assert_int_equal(lt_outbox_add(f->db, "t", "k", type_over, "{}", T0, &id), LT_EINVAL);
	assert_int_equal(lt_outbox_add(f->db, "t", key_over, "T", "{}", T0, &id), LT_EINVAL);
	assert_int_equal(lt_outbox_add(f->db, "t", "k", "T", NULL, T0, &id), LT_EINVAL);
	assert_int_equal(lt_outbox_add(f->db, "t", "k", "T", pl_over, T0, &id), LT_EINVAL);
	assert_int_equal(lt_outbox_add(NULL, "t", "k", "T", "{}", T0, &id), LT_EINVAL);
	assert_int_equal(id, 0);
	assert_int_equal(rows(f->db), 0);
	/* the limits themselves */
	assert_int_equal(lt_outbox_add(f->db, topic_max, key_max, type_max, pl_max, T0, &id),
			 LT_OK);
	assert_int_equal(id, 1);
	assert_int_equal(q64(f->db, "SELECT length(topic) + length(type) + length(key) + "
				    "length(payload) FROM outbox"),
			 LT_EV_TOPIC_MAX + LT_EV_TYPE_MAX + LT_EV_KEY_MAX + LT_EV_PAYLOAD_MAX);
	/* id may be NULL */
	assert_int_equal(lt_outbox_add(f->db, "t", "", "T", "", T0, NULL), LT_OK);
	assert_int_equal(rows(f->db), 2);
	free(topic_max), free(topic_over), free(type_max), free(type_over);
	free(key_max), free(key_over), free(pl_max), free(pl_over);
}

static void test_rollback(void **state)
{
	struct fx *f = *state;
	assert_int_equal(lt_db_exec(f->db, "BEGIN IMMEDIATE", NULL), LT_OK);
	int64_t id = add(f->db, LT_TOPIC_USAGE, "k", "{}", T0);
	assert_int_equal(lt_db_exec(f->db, "ROLLBACK", NULL), LT_OK);
	assert_int_equal(rows(f->db), 0);
	struct lt_outbox_stat st;
	assert_int_equal(lt_outbox_stat(f->db, &st), LT_OK);
	assert_int_equal(st.pending, 0);
	/* a rolled-back id may come again: it was never seen by anyone */
	assert_int_equal(add(f->db, LT_TOPIC_USAGE, "k", "{}", T0), id);
}

/* ---- the audit event ---- */

struct one_row {
	struct lt_outbox_row r;
	char payload[4096];
	size_t n;
};

static enum lt_err take(void *arg, const struct lt_outbox_row *r)
{
	struct one_row *o = arg;
	o->r = *r;
	snprintf(o->payload, sizeof o->payload, "%.*s", (int)r->payload_len, r->payload);
	o->r.payload = o->payload;
	o->n++;
	return LT_OK;
}

static cJSON *audit_event(sqlite3 *db, int64_t after, struct one_row *o)
{
	memset(o, 0, sizeof *o);
	assert_int_equal(lt_outbox_pending(db, after, 10, take, o), LT_OK);
	assert_int_equal(o->n, 1);
	assert_string_equal(o->r.topic, LT_TOPIC_AUDIT);
	cJSON *j = NULL;
	size_t pos;
	assert_int_equal(lt_json_parse(o->payload, strlen(o->payload), &j, &pos), LT_OK);
	return j;
}

static void test_audit_event(void **state)
{
	struct fx *f = *state;
	assert_int_equal(lt_db_exec(f->db, "BEGIN IMMEDIATE", NULL), LT_OK);
	assert_int_equal(lt_ident_audit(f->db, T0 + 1234, "leakyctl", "quota.granted", "user-1",
					"{\"tokens\":500,\"reason\":\"x \\\"y\\\"\"}"),
			 LT_OK);
	assert_int_equal(lt_db_exec(f->db, "COMMIT", NULL), LT_OK);
	int64_t audit_id = q64(f->db, "SELECT max(id) FROM audit");
	struct one_row o;
	cJSON *j = audit_event(f->db, 0, &o);
	assert_string_equal(o.r.key, "user-1");
	assert_string_equal(o.r.type, "quota.granted");
	assert_int_equal(o.r.created_ms, T0 + 1234);
	int64_t v;
	const char *s;
	assert_int_equal(lt_json_get_i64(j, "id", 0, INT64_MAX, &v), LT_OK);
	assert_int_equal(v, audit_id);
	assert_int_equal(lt_json_get_str(j, "at", &s), LT_OK);
	assert_string_equal(s, "2026-01-01T00:00:01.234Z");
	assert_int_equal(lt_json_get_str(j, "actor", &s), LT_OK);
	assert_string_equal(s, "leakyctl");
	assert_int_equal(lt_json_get_str(j, "action", &s), LT_OK);
	assert_string_equal(s, "quota.granted");
	assert_int_equal(lt_json_get_str(j, "target", &s), LT_OK);
	assert_string_equal(s, "user-1");
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "detail");
	assert_true(cJSON_IsObject(d)); /* the object, not a string */
	assert_int_equal(lt_json_get_i64(d, "tokens", 0, INT64_MAX, &v), LT_OK);
	assert_int_equal(v, 500);
	assert_int_equal(lt_json_get_str(d, "reason", &s), LT_OK);
	assert_string_equal(s, "x \"y\"");
	cJSON_Delete(j);
	int64_t last = o.r.id;

	/* no detail, no target: null, key "" */
	assert_int_equal(lt_ident_audit(f->db, T0, "system", "key.created", NULL, NULL), LT_OK);
	j = audit_event(f->db, last, &o);
	last = o.r.id;
	assert_string_equal(o.r.key, "");
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "detail")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "target")));
	cJSON_Delete(j);

	/* a detail that is not a JSON object still makes a JSON payload */
	assert_int_equal(lt_ident_audit(f->db, T0, "system", "x.y", "t", "not json {"), LT_OK);
	j = audit_event(f->db, last, &o);
	last = o.r.id;
	assert_int_equal(lt_json_get_str(j, "detail", &s), LT_OK);
	assert_string_equal(s, "not json {");
	cJSON_Delete(j);

	/* rolled back with the audit row */
	assert_int_equal(lt_db_exec(f->db, "BEGIN IMMEDIATE", NULL), LT_OK);
	assert_int_equal(lt_ident_audit(f->db, T0, "a", "user.created", "u", "{}"), LT_OK);
	assert_int_equal(lt_db_exec(f->db, "ROLLBACK", NULL), LT_OK);
	struct seen s2 = {"", 0, 0};
	assert_int_equal(lt_outbox_pending(f->db, last, 10, see, &s2), LT_OK);
	assert_int_equal(s2.n, 0);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM audit"), 3);
	assert_int_equal(q64(f->db, "SELECT count(*) FROM outbox WHERE topic = 'audit'"), 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_add_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mark_stat, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune_ids_not_reused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_event, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
