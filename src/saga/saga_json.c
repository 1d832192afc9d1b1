/*
 * saga_json.c — a purchase saga as JSON.  See saga_json.h.
 */
#include <string.h>

#include "saga/saga_json.h"
#include "util/clock.h"
#include "util/timefmt.h"

static void put_time(struct lt_buf *b, const char *name, int64_t ms)
{
	char ts[LT_ISO_LEN];
	lt_time_iso(ms * LT_NS_PER_MS, ts);
	lt_buf_printf(b, ",\"%s\":\"%s\"", name, ts);
}

static void put_str_or_null(struct lt_buf *b, const char *name, const char *s, bool present)
{
	lt_buf_printf(b, ",\"%s\":", name);
	if (present)
		lt_buf_put_json_str(b, s, strlen(s));
	else
		lt_buf_puts(b, "null");
}

void lt_saga_json_fields(struct lt_buf *b, const struct lt_saga *s, bool admin)
{
	lt_buf_printf(b, "{\"id\":\"%s\",\"userId\":\"%s\"", s->id, s->user_id);
	put_str_or_null(b, "orgId", s->org_id, s->org_id[0] != '\0');
	lt_buf_puts(b, ",\"provider\":");
	lt_buf_put_json_str(b, s->provider, strlen(s->provider));
	lt_buf_printf(b, ",\"tokens\":%lld", (long long)s->tokens);
	put_str_or_null(b, "idempotencyKey", s->idem_key, s->has_key);
	lt_buf_printf(b, ",\"status\":\"%s\"", lt_saga_state_name(s->sm.state));
	if (admin) {
		lt_buf_printf(b, ",\"amountMicros\":%lld", (long long)s->amount_micros);
		put_str_or_null(b, "paymentId", s->payment_id, s->payment_id[0] != '\0');
		put_str_or_null(b, "failureReason", s->failure_reason,
				s->failure_reason[0] != '\0');
		lt_buf_printf(b, ",\"attempts\":%d,\"compensationRequested\":%s", s->sm.attempts,
			      s->compensate ? "true" : "false");
		if (s->next_attempt_ms > 0)
			put_time(b, "nextAttemptAt", s->next_attempt_ms);
		else
			lt_buf_puts(b, ",\"nextAttemptAt\":null");
	}
	put_time(b, "createdAt", s->created_ms);
	put_time(b, "updatedAt", s->updated_ms);
}

struct steps_out {
	struct lt_buf *b;
	bool admin;
	size_t n;
};

static enum lt_err put_step(void *arg, const struct lt_saga_step_row *row)
{
	struct steps_out *o = arg;
	lt_buf_puts(o->b, o->n++ ? ",{\"name\":" : "{\"name\":");
	lt_buf_put_json_str(o->b, row->name, strlen(row->name));
	lt_buf_puts(o->b, ",\"status\":");
	lt_buf_put_json_str(o->b, row->status, strlen(row->status));
	char ts[LT_ISO_LEN];
	lt_time_iso(row->at_ms * LT_NS_PER_MS, ts);
	lt_buf_printf(o->b, ",\"at\":\"%s\"", ts);
	if (o->admin) {
		lt_buf_printf(o->b, ",\"tries\":%lld", (long long)row->tries);
		put_str_or_null(o->b, "detail", row->detail, row->detail[0] != '\0');
	}
	lt_buf_putc(o->b, '}');
	return o->b->err;
}

enum lt_err lt_saga_json(struct lt_buf *b, struct sqlite3 *db, const struct lt_saga *s, bool admin)
{
	lt_saga_json_fields(b, s, admin);
	lt_buf_puts(b, ",\"steps\":[");
	struct steps_out o = {b, admin, 0};
	enum lt_err e = lt_saga_store_steps(db, s->id, put_step, &o);
	lt_buf_puts(b, "]}");
	return e ? e : b->err;
}
