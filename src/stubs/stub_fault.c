/*
 * stub_fault.c — the stubs' fault engine.
 *
 * A request's fault comes from exactly one source, first found wins:
 *   1. its X-Stub-Fault header (lt_stub_fault_parse),
 *   2. the first queued plan whose `match` prefixes its path (the plan's
 *      count is consumed; a plan at zero is removed),
 *   3. the configured rates (lt_stub_fault_roll).
 * A fault may set an error status (the request is not served), an extra
 * delay, a dropped connection, or a malformed 200.
 *
 * Locking: the plan queue has its own mutex, held only to copy or edit
 * plans.  Parsing, describing and rolling are pure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "stubs/stub_int.h"

void lt_stub_fault_none(struct lt_stub_fault *f)
{
	memset(f, 0, sizeof *f);
	f->retry_after_s = -1;
	f->drop_after = -1;
}

bool lt_stub_fault_active(const struct lt_stub_fault *f)
{
	return f->status || f->delay_ms > 0 || f->drop_after >= 0 || f->malformed;
}

/* Decimal integer in [min, max] from s[0..n). */
static bool parse_int(const char *s, size_t n, int64_t min, int64_t max, int64_t *out)
{
	if (!n || n > 12)
		return false;
	int64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool key_is(const char *k, size_t kn, const char *name)
{
	return kn == strlen(name) && strncasecmp(k, name, kn) == 0;
}

enum lt_err lt_stub_fault_parse(const char *s, struct lt_stub_fault *f, char *why, size_t why_cap)
{
	lt_stub_fault_none(f);
	const char *p = s;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		const char *item = p;
		size_t n = strcspn(item, ";");
		p = item + n;
		if (*p == ';')
			p++;
		while (n && (item[n - 1] == ' ' || item[n - 1] == '\t'))
			n--;
		if (!n)
			continue;
		const char *eq = memchr(item, '=', n);
		size_t kn = eq ? (size_t)(eq - item) : n;
		while (kn && (item[kn - 1] == ' ' || item[kn - 1] == '\t'))
			kn--;
		const char *v = eq ? eq + 1 : NULL;
		size_t vn = eq ? n - (size_t)(v - item) : 0;
		while (v && vn && (*v == ' ' || *v == '\t')) {
			v++;
			vn--;
		}
		int64_t x;
		if (key_is(item, kn, "malformed")) {
			if (v) {
				snprintf(why, why_cap, "X-Stub-Fault: malformed takes no value");
				return LT_ESYNTAX;
			}
			f->malformed = true;
			continue;
		}
		if (!v) {
			snprintf(why, why_cap, "X-Stub-Fault: %.*s needs a value", (int)kn, item);
			return LT_ESYNTAX;
		}
		if (key_is(item, kn, "status")) {
			if (!parse_int(v, vn, 100, 599, &x))
				goto bad_value;
			f->status = (int)x;
		} else if (key_is(item, kn, "retry-after")) {
			if (!parse_int(v, vn, 0, 3600, &x))
				goto bad_value;
			f->retry_after_s = (int)x;
		} else if (key_is(item, kn, "delay")) {
			if (!parse_int(v, vn, 0, 600000, &x))
				goto bad_value;
			f->delay_ms = x;
		} else if (key_is(item, kn, "drop-after")) {
			if (!parse_int(v, vn, 0, 1000000, &x))
				goto bad_value;
			f->drop_after = x;
		} else {
			snprintf(why, why_cap,
				 "X-Stub-Fault: unknown item \"%.*s\" (status, retry-after, delay, "
				 "drop-after, malformed)",
				 (int)(kn > 40 ? 40 : kn), item);
			return LT_ESYNTAX;
		}
		continue;
	bad_value:
		snprintf(why, why_cap, "X-Stub-Fault: bad value for %.*s", (int)kn, item);
		return LT_ESYNTAX;
	}
	return LT_OK;
}

void lt_stub_fault_describe(const struct lt_stub_fault *f, char *out, size_t cap)
{
	struct lt_buf b;
	lt_buf_init(&b, out, cap, cap - 1);
	const char *sep = "";
	if (f->status) {
		lt_buf_printf(&b, "status=%d", f->status);
		sep = "; ";
	}
	if (f->retry_after_s >= 0) {
		lt_buf_printf(&b, "%sretry-after=%d", sep, f->retry_after_s);
		sep = "; ";
	}
	if (f->delay_ms > 0) {
		lt_buf_printf(&b, "%sdelay=%lld", sep, (long long)f->delay_ms);
		sep = "; ";
	}
	if (f->drop_after >= 0) {
		lt_buf_printf(&b, "%sdrop-after=%lld", sep, (long long)f->drop_after);
		sep = "; ";
	}
	if (f->malformed)
		lt_buf_printf(&b, "%smalformed", sep);
	if (b.err)
		out[0] = '\0';
}

void lt_stub_fault_roll(const struct lt_stub_knobs *k, struct lt_stub_rng *rng,
			struct lt_stub_fault *f)
{
	lt_stub_fault_none(f);
	if (lt_stub_rng_pct(rng, k->spike_rate_pct))
		f->delay_ms = k->spike_ms;
	if (lt_stub_rng_pct(rng, k->error_rate_pct)) {
		f->status = (int)k->error_status;
		f->retry_after_s = (int)k->retry_after_s;
	} else if (lt_stub_rng_pct(rng, k->drop_rate_pct)) {
		/* streams: after 1..4 frames (the role frame at least) */
		f->drop_after = 1 + (int64_t)lt_stub_rng_below(rng, 4);
	} else if (lt_stub_rng_pct(rng, k->malformed_rate_pct)) {
		f->malformed = true;
	}
}

enum lt_err lt_stub_plans_init(struct lt_stub_plans *q)
{
	memset(q, 0, sizeof *q);
	q->v = calloc(LT_STUB_PLANS_MAX, sizeof *q->v);
	if (!q->v)
		return LT_ENOMEM;
	if (pthread_mutex_init(&q->mu, NULL) != 0) {
		free(q->v);
		q->v = NULL;
		return LT_ENOMEM;
	}
	return LT_OK;
}

void lt_stub_plans_release(struct lt_stub_plans *q)
{
	if (!q->v)
		return;
	pthread_mutex_destroy(&q->mu);
	free(q->v);
	q->v = NULL;
	q->n = 0;
}

enum lt_err lt_stub_plans_push(struct lt_stub_plans *q, const struct lt_stub_plan *p)
{
	enum lt_err e = LT_OK;
	pthread_mutex_lock(&q->mu);
	if (q->n >= LT_STUB_PLANS_MAX)
		e = LT_EBUSY;
	else
		q->v[q->n++] = *p;
	pthread_mutex_unlock(&q->mu);
	return e;
}

bool lt_stub_plans_take(struct lt_stub_plans *q, const char *path, struct lt_stub_fault *out)
{
	bool found = false;
	pthread_mutex_lock(&q->mu);
	for (size_t i = 0; i < q->n; i++) {
		struct lt_stub_plan *p = &q->v[i];
		if (strncmp(path, p->match, strlen(p->match)) != 0)
			continue;
		*out = p->fault;
		found = true;
		if (--p->count <= 0) {
			memmove(&q->v[i], &q->v[i + 1], (q->n - i - 1) * sizeof q->v[0]);
			q->n--;
		}
		break;
	}
	pthread_mutex_unlock(&q->mu);
	return found;
}

size_t lt_stub_plans_clear(struct lt_stub_plans *q)
{
	pthread_mutex_lock(&q->mu);
	size_t n = q->n;
	q->n = 0;
	pthread_mutex_unlock(&q->mu);
	return n;
}

void lt_stub_plans_render(struct lt_stub_plans *q, struct lt_buf *out)
{
	lt_buf_puts(out, "{\"plans\":[");
	pthread_mutex_lock(&q->mu);
	for (size_t i = 0; i < q->n; i++) {
		const struct lt_stub_plan *p = &q->v[i];
		char desc[LT_STUB_FAULT_DESC_MAX];
		lt_stub_fault_describe(&p->fault, desc, sizeof desc);
		lt_buf_puts(out, i ? ",{\"match\":" : "{\"match\":");
		lt_buf_put_json_str(out, p->match, strlen(p->match));
		lt_buf_puts(out, ",\"fault\":");
		lt_buf_put_json_str(out, desc, strlen(desc));
		lt_buf_printf(out, ",\"count\":%lld}", (long long)p->count);
	}
	pthread_mutex_unlock(&q->mu);
	lt_buf_puts(out, "]}");
}
