/*
 * stub_payment.c — the payment service the purchase saga calls.
 *
 *   POST /payment/v1/authorize {amountMicros, currency?, reference?}
 *        → 200 {paymentId, status:"AUTHORIZED", amountMicros, currency, reference}
 *   POST /payment/v1/capture   {paymentId} → status "CAPTURED"
 *   POST /payment/v1/release   {paymentId} → status "RELEASED"
 *   GET  /payment/v1/payments/{paymentId}  → the payment as it is now
 *
 * Every POST needs an Idempotency-Key header (400 without).  The first
 * answer for a (path, key) pair that reached the service (200, 404, 409) is
 * stored and replayed, status and body, to every later request with that
 * pair, with "Idempotent-Replayed: true" and no second effect; validation
 * failures (400) are not stored, as Stripe does.  Capturing a RELEASED or
 * releasing a CAPTURED payment is a 409; capturing twice, or releasing
 * twice, is a 200 with no change.  Unknown ids are 404.
 *
 * Faults act as the network does: an injected error status means the
 * request never reached the service (nothing stored); a drop or a malformed
 * answer happens after the effect, so a retry with the same key replays.
 *
 * Storage: in memory, bounded: at most max_payments payments and as many
 * stored answers, each table evicting its oldest entry when full.  One
 * mutex guards both tables and is held for the whole check-execute-store of
 * a request (no I/O under it), so two requests with the same key never both
 * execute.  Ownership: lt_stub_payments_free frees everything.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stubs/stub_int.h"
#include "util/json.h"
#include "util/uuid.h"

#define IDEM_KEY_MAX 255

/* A string-keyed table that remembers insertion order and, when full,
 * evicts the oldest entry (a ring of entries, chained hash buckets). */
struct fifo_ent {
	uint64_t hash;
	char *key;     /* owned; NULL = free slot */
	void *val;     /* owned, freed with free() */
	uint32_t next; /* index + 1 of the next entry in the bucket, 0 = end */
};

struct fifo_map {
	size_t cap;
	size_t mask;	   /* buckets - 1 */
	uint32_t *buckets; /* index + 1 of the first entry, 0 = empty */
	struct fifo_ent *ents;
	size_t next_slot; /* the oldest entry once the ring is full */
};

static enum lt_err fifo_init(struct fifo_map *m, size_t cap)
{
	memset(m, 0, sizeof *m);
	size_t nb = 1;
	while (nb < cap * 2)
		nb *= 2;
	m->cap = cap;
	m->mask = nb - 1;
	m->buckets = calloc(nb, sizeof *m->buckets);
	m->ents = calloc(cap, sizeof *m->ents);
	if (!m->buckets || !m->ents) {
		free(m->buckets);
		free(m->ents);
		memset(m, 0, sizeof *m);
		return LT_ENOMEM;
	}
	return LT_OK;
}

static void fifo_release(struct fifo_map *m)
{
	for (size_t i = 0; m->ents && i < m->cap; i++) {
		free(m->ents[i].key);
		free(m->ents[i].val);
	}
	free(m->buckets);
	free(m->ents);
	memset(m, 0, sizeof *m);
}

static void *fifo_get(const struct fifo_map *m, const char *key)
{
	uint64_t h = lt_stub_fnv1a(LT_STUB_FNV_BASIS, key, strlen(key));
	for (uint32_t i = m->buckets[h & m->mask]; i; i = m->ents[i - 1].next) {
		const struct fifo_ent *e = &m->ents[i - 1];
		if (e->hash == h && strcmp(e->key, key) == 0)
			return e->val;
	}
	return NULL;
}

static void fifo_evict(struct fifo_map *m, size_t slot)
{
	struct fifo_ent *e = &m->ents[slot];
	uint32_t *link = &m->buckets[e->hash & m->mask];
	while (*link && *link != slot + 1)
		link = &m->ents[*link - 1].next;
	if (*link)
		*link = e->next;
	free(e->key);
	free(e->val);
	memset(e, 0, sizeof *e);
}

/* Adopt val (freed on failure too).  The key must not be present. */
static enum lt_err fifo_put(struct fifo_map *m, const char *key, void *val)
{
	size_t kl = strlen(key);
	char *k = malloc(kl + 1);
	if (!k) {
		free(val);
		return LT_ENOMEM;
	}
	memcpy(k, key, kl + 1);
	size_t slot = m->next_slot;
	m->next_slot = (slot + 1) % m->cap;
	if (m->ents[slot].key)
		fifo_evict(m, slot);
	struct fifo_ent *e = &m->ents[slot];
	e->hash = lt_stub_fnv1a(LT_STUB_FNV_BASIS, key, kl);
	e->key = k;
	e->val = val;
	e->next = m->buckets[e->hash & m->mask];
	m->buckets[e->hash & m->mask] = (uint32_t)(slot + 1);
	return LT_OK;
}

enum pay_state { AUTHORIZED, CAPTURED, RELEASED };
static const char *const state_names[] = {"AUTHORIZED", "CAPTURED", "RELEASED"};

struct payment {
	char id[LT_UUID_LEN];
	int64_t amount_micros;
	enum pay_state state;
	bool has_reference;
	char currency[16];
	char reference[256];
};

struct stored {
	int status;
	size_t len;
	char body[]; /* NUL-terminated */
};

struct lt_stub_payments {
	pthread_mutex_t mu;
	struct fifo_map payments; /* id → struct payment */
	struct fifo_map answers;  /* path "\n" key → struct stored */
};

enum lt_err lt_stub_payments_new(size_t max_payments, struct lt_stub_payments **out)
{
	struct lt_stub_payments *p = calloc(1, sizeof *p);
	if (!p)
		return LT_ENOMEM;
	if (fifo_init(&p->payments, max_payments) || fifo_init(&p->answers, max_payments)) {
		fifo_release(&p->payments);
		free(p);
		return LT_ENOMEM;
	}
	pthread_mutex_init(&p->mu, NULL);
	*out = p;
	return LT_OK;
}

void lt_stub_payments_free(struct lt_stub_payments *p)
{
	if (!p)
		return;
	fifo_release(&p->payments);
	fifo_release(&p->answers);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

static void put_view(struct lt_buf *b, const struct payment *pm)
{
	lt_buf_printf(b,
		      "{\"paymentId\":\"%s\",\"status\":\"%s\",\"amountMicros\":%lld,\"currency\":",
		      pm->id, state_names[pm->state], (long long)pm->amount_micros);
	lt_buf_put_json_str(b, pm->currency, strlen(pm->currency));
	lt_buf_puts(b, ",\"reference\":");
	if (pm->has_reference)
		lt_buf_put_json_str(b, pm->reference, strlen(pm->reference));
	else
		lt_buf_puts(b, "null");
	lt_buf_putc(b, '}');
}

static void put_error(struct lt_buf *b, int status, const char *msg)
{
	lt_buf_puts(b, "{\"message\":");
	lt_buf_put_json_str(b, msg, strlen(msg));
	lt_buf_printf(b, ",\"status\":%d}", status);
}

/* Validate the body of an authorize into pm; else NULL and why. */
static const char *read_authorize(const cJSON *j, struct payment *pm)
{
	memset(pm, 0, sizeof *pm);
	snprintf(pm->currency, sizeof pm->currency, "USD");
	if (!cJSON_IsObject(j) ||
	    lt_json_get_i64(j, "amountMicros", 0, LT_JSON_INT_MAX, &pm->amount_micros))
		return "amountMicros must be an integer >= 0";
	const char *s = NULL;
	enum lt_err e = lt_json_get_str(j, "currency", &s);
	if (e == LT_EINVAL || (e == LT_OK && (!s[0] || strlen(s) >= sizeof pm->currency)))
		return "currency must be a string of 1 to 15 bytes";
	if (e == LT_OK)
		snprintf(pm->currency, sizeof pm->currency, "%s", s);
	e = lt_json_get_str(j, "reference", &s);
	if (e == LT_EINVAL || (e == LT_OK && strlen(s) >= sizeof pm->reference))
		return "reference must be a string of at most 255 bytes";
	if (e == LT_OK) {
		pm->has_reference = true;
		snprintf(pm->reference, sizeof pm->reference, "%s", s);
	}
	return NULL;
}

/* Run one POST, under the mutex: the answer goes to out and *st.  True if
 * the answer is to be stored for its idempotency key (not 400s / 503s). */
static bool execute(const cJSON *j, struct lt_stub_payments *p, enum lt_stub_pay_op op, int *st,
		    struct lt_buf *out)
{
	char msg[160];
	const char *why;
	if (op == LT_STUB_PAY_AUTHORIZE) {
		struct payment *pm = malloc(sizeof *pm);
		if (!pm) {
			*st = 503;
			put_error(out, *st, "out of memory");
			return false;
		}
		if ((why = read_authorize(j, pm)) != NULL) {
			free(pm);
			*st = 400;
			put_error(out, *st, why);
			return false;
		}
		lt_uuid_v4(pm->id);
		put_view(out, pm);
		if (fifo_put(&p->payments, pm->id, pm)) {
			lt_buf_reset(out);
			*st = 503;
			put_error(out, *st, "out of memory");
			return false;
		}
		*st = 200;
		return true;
	}
	const char *id = NULL;
	if (!cJSON_IsObject(j) || lt_json_get_str(j, "paymentId", &id) || !id[0] ||
	    strlen(id) >= LT_UUID_LEN) {
		*st = 400;
		put_error(out, *st, "paymentId is required");
		return false;
	}
	struct payment *pm = fifo_get(&p->payments, id);
	if (!pm) {
		snprintf(msg, sizeof msg, "no payment %s", id);
		*st = 404;
		put_error(out, *st, msg);
		return true;
	}
	enum pay_state want = op == LT_STUB_PAY_CAPTURE ? CAPTURED : RELEASED;
	if (pm->state != AUTHORIZED && pm->state != want) {
		snprintf(msg, sizeof msg, "payment %s is %s: it cannot be %s", pm->id,
			 state_names[pm->state], want == CAPTURED ? "captured" : "released");
		*st = 409;
		put_error(out, *st, msg);
		return true;
	}
	pm->state = want;
	*st = 200;
	put_view(out, pm);
	return true;
}

static bool valid_key(const char *k)
{
	size_t n = strlen(k);
	if (!n || n > IDEM_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (k[i] < 0x21 || k[i] > 0x7E)
			return false;
	return true;
}

void lt_stub_payment(struct lt_stub_req *r, enum lt_stub_pay_op op)
{
	struct lt_stub_payments *p = r->s->pay;
	char stack[512];
	struct lt_buf b;
	lt_buf_init(&b, stack, sizeof stack, 64 * 1024);
	if (op == LT_STUB_PAY_GET) {
		char id[LT_UUID_LEN + 1], msg[128];
		int st = 404;
		pthread_mutex_lock(&p->mu);
		const struct payment *pm = NULL;
		if (lt_stub_param(r, "paymentId", id, sizeof id) == LT_OK)
			pm = fifo_get(&p->payments, id);
		if (pm) {
			st = 200;
			put_view(&b, pm);
		}
		pthread_mutex_unlock(&p->mu);
		if (!pm) {
			snprintf(msg, sizeof msg, "no such payment");
			put_error(&b, st, msg);
		}
		lt_stub_reply_json(r, st, &b, NULL);
		lt_buf_release(&b);
		return;
	}
	const char *key = lt_stub_header(r, "Idempotency-Key");
	if (!key || !valid_key(key)) {
		lt_stub_reply_error(r, 400,
				    "an Idempotency-Key header (1 to 255 printable characters) is "
				    "required",
				    NULL);
		return;
	}
	char scoped[LT_STUB_PATH_MAX + IDEM_KEY_MAX + 2];
	snprintf(scoped, sizeof scoped, "%s\n%s", r->path, key);

	pthread_mutex_lock(&p->mu);
	const struct stored *prev = fifo_get(&p->answers, scoped);
	if (prev) {
		int st = prev->status;
		lt_buf_append(&b, prev->body, prev->len);
		pthread_mutex_unlock(&p->mu);
		lt_stub_reply(r, st, "application/json", "Idempotent-Replayed: true\r\n", b.data,
			      b.len);
		lt_buf_release(&b);
		return;
	}
	int st = 0;
	bool store = execute(r->json, p, op, &st, &b);
	if (store && !b.err) {
		struct stored *s = malloc(sizeof *s + b.len + 1);
		if (s) {
			s->status = st;
			s->len = b.len;
			memcpy(s->body, b.data, b.len + 1);
			fifo_put(&p->answers, scoped, s);
		}
	}
	pthread_mutex_unlock(&p->mu);
	lt_stub_reply_json(r, st, &b, NULL);
	lt_buf_release(&b);
}
