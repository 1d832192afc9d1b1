/*
 * saga_store.h — purchase sagas in leaky.db (schema.sql migration 5): the
 * SQL adapter around saga/machine.h.
 *
 * Writes are writer operations (lt_writer_run(&srv->writer, fn, arg), or
 * leakyctl's own BEGIN IMMEDIATE): each one changes the saga row, its step
 * log, the token pool when the step moves tokens (quota/pool_store.h, with
 * its ledger row) and inserts the step's events into the outbox
 * (events/outbox.h, topic LT_TOPIC_PURCHASE, key = saga id), all in the
 * caller's transaction, so a committed state always has its events and its
 * effect, and a rolled-back one has neither.
 *
 *   lt_saga_store_create   insert-or-get by (user, idempotency key): a new
 *                          saga in STARTED with its "start" step and
 *                          TOKEN_PURCHASE_STARTED, or the saga that key
 *                          already names (nothing written).
 *   lt_saga_store_advance  one step: the transition of the action's
 *                          outcome (machine.h), performing the database
 *                          actions itself — allocate (a grant, reason
 *                          "purchase <id>"), reverse the allocation (an
 *                          adjust by minus what is left of the tokens,
 *                          reason "purchase <id> compensated"), complete,
 *                          fail — or recording the outcome of a payment
 *                          call; or, with `compensate`, start compensating.
 *   lt_saga_store_mark     ask for a try now (next_attempt_at = 0) and, for
 *                          compensate, set the compensate flag: what the
 *                          admin API and leakyctl do; leakyd's runner
 *                          applies the flag at the saga's next step.
 *
 * A saga row whose state contradicts itself (lt_saga_sm_valid) reads as
 * LT_ECORRUPT.  Reversing an allocation removes at most what remains in the
 * pool: tokens already spent cannot be taken back (the step's detail says
 * how many were removed).
 *
 * Statements are cached on the connection (store/stmt.h).  Ownership: no
 * allocation outlives a call; strings are copied into fixed-size fields.
 * Times are Unix milliseconds.
 */
#ifndef LT_SAGA_SAGA_STORE_H
#define LT_SAGA_SAGA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "saga/machine.h"
#include "saga/payment.h"
#include "util/err.h"
#include "util/uuid.h"

struct sqlite3;

#define LT_SAGA_TOKENS_MAX 10000000
#define LT_SAGA_KEY_CHARS 100			/* idempotency key: characters after trimming */
#define LT_SAGA_KEY_MAX (4 * LT_SAGA_KEY_CHARS) /* ... and bytes (UTF-8) */
#define LT_SAGA_TEXT_MAX 255
#define LT_SAGA_HASH_LEN 64 /* hex characters */
#define LT_SAGA_LIST_MAX 1000
#define LT_SAGA_ACTOR "saga" /* the ledger rows' actor */

struct lt_saga {
	char id[LT_UUID_LEN];
	char user_id[LT_UUID_LEN];
	char org_id[LT_UUID_LEN]; /* "" when the user's own pool */
	char provider[32];
	int64_t tokens;
	int64_t amount_micros;
	bool has_key;
	char idem_key[LT_SAGA_KEY_MAX + 1];
	char payload_hash[LT_SAGA_HASH_LEN + 1];
	struct lt_saga_sm sm;
	char payment_id[LT_PAY_ID_MAX + 1]; /* "" until known */
	char failure_reason[LT_SAGA_TEXT_MAX + 1];
	bool compensate;	 /* compensation was asked for */
	int64_t next_attempt_ms; /* 0: a try was asked for */
	int64_t version;
	int64_t created_ms, updated_ms;
};

struct lt_saga_step_row {
	int64_t seq;
	char name[32];
	char status[16]; /* SUCCEEDED, RETRYING, FAILED */
	int64_t at_ms;
	int64_t tries;
	char detail[LT_SAGA_TEXT_MAX + 1];
};

/* The hex BLAKE2b-256 of the purchase's fields (user, org or "", provider,
 * tokens): two requests with the same key must agree on it. */
void lt_saga_payload_hash(const char *user_id, const char *org_id, const char *provider,
			  int64_t tokens, char out[LT_SAGA_HASH_LEN + 1]);

/* ceil(tokens * price_per_1m / 1e6) without overflow; LT_ERANGE for a
 * negative input. */
enum lt_err lt_saga_amount(int64_t tokens, int64_t price_per_1m, int64_t *out);

/* Insert-or-get (a writer operation).  In: s->id (a new UUID), user_id,
 * org_id, provider, tokens, amount_micros, has_key/idem_key, payload_hash.
 * A new saga: *created = true, *s as stored.  A key the user already used:
 * *created = false, *s = that saga, nothing written, and LT_EEXIST when
 * its payload_hash differs from the one asked.  LT_EINVAL for fields out
 * of bounds. */
enum lt_err lt_saga_store_create(struct sqlite3 *db, struct lt_saga *s, int64_t now_ms,
				 bool *created);

/* Reads.  LT_ENOTFOUND for an unknown id. */
enum lt_err lt_saga_store_get(struct sqlite3 *db, const char *id, struct lt_saga *out);
/* The step log in order; fn returning non-OK stops (returned). */
enum lt_err lt_saga_store_steps(struct sqlite3 *db, const char *id,
				enum lt_err (*fn)(void *arg, const struct lt_saga_step_row *row),
				void *arg);
/* Newest first (created, then id), in one state when status is not NULL,
 * at most limit (1..LT_SAGA_LIST_MAX). */
enum lt_err lt_saga_store_list(struct sqlite3 *db, const enum lt_saga_state *status, size_t limit,
			       enum lt_err (*fn)(void *arg, const struct lt_saga *s), void *arg);
/* Ids of unfinished sagas that are due for recovery: a try was asked for
 * (next_attempt_at = 0) or untouched since idle_before_ms (updated_at <=
 * it; INT64_MAX: every unfinished saga), oldest first, at most max. */
enum lt_err lt_saga_store_due(struct sqlite3 *db, int64_t idle_before_ms, size_t max,
			      enum lt_err (*fn)(void *arg, const char *id), void *arg);

/* Ask for a try now, and for compensate also set the compensate flag.
 * LT_ENOTFOUND, LT_EINVAL for a final saga, LT_EDENIED (compensate) once
 * its payment is captured; nothing written then.  out (may be NULL): the
 * saga as it is now. */
enum lt_err lt_saga_store_mark(struct sqlite3 *db, const char *id, bool compensate,
			       struct lt_saga *out);

/* Every final saga against the ledger (leakyctl check; read-only, one
 * pass over the ledger): a COMPLETED saga has exactly one grant "purchase
 * <id>" of its tokens and no reversal; a FAILED one has at most one grant,
 * and its grant plus reversal ("purchase <id> compensated") is between 0
 * and its tokens (0 when nothing was spent in between; a reversal takes
 * back at most what is left).  *sagas counts the final sagas, *bad the
 * ones that fail; fn (may be NULL) is told of each with a reason. */
enum lt_err lt_saga_store_check(struct sqlite3 *db, size_t *sagas, size_t *bad,
				void (*fn)(void *arg, const char *id, const char *problem),
				void *arg);

/* One step (a writer operation; arg is a struct lt_saga_advance). */
struct lt_saga_advance {
	char id[LT_UUID_LEN];
	int64_t version;	      /* as the caller loaded it: LT_EEXIST if it changed since */
	bool compensate;	      /* apply the compensate flag instead of an action */
	enum lt_saga_action action;   /* lt_saga_action() of the saga as loaded */
	enum lt_saga_outcome outcome; /* payment actions; the database actions find their own */
	const char *detail;	      /* the step log's detail, may be NULL */
	const char *payment_id;	      /* learned by this step, may be NULL */
	int64_t now_ms;
	int64_t retry_max_ms;	    /* cap of the backoff of a failed try */
	const char *correlation_id; /* ledger rows, may be NULL */
	/* out */
	struct lt_saga saga;	  /* as written */
	struct lt_saga_move move; /* the transition applied */
	bool changed;		  /* false: only the compensate flag was cleared */
};
enum lt_err lt_saga_store_advance(struct sqlite3 *db, void *arg);

#endif
