/*
 * saga_json.h — a purchase saga as JSON, the one rendering the HTTP API
 * (api/purchase.c) and leakyctl saga (cli/cmd_saga.c) share.
 *
 * The public view (GET /api/v1/tokens/purchase/{id}, API.md §2) is {id,
 * userId, orgId, provider, tokens, idempotencyKey, status, createdAt,
 * updatedAt} and steps [{name, status, at}]; the admin view adds
 * amountMicros, paymentId, failureReason, attempts, compensationRequested,
 * nextAttemptAt, and each step's tries and detail.
 *
 * Pure apart from the step reader: appends to a caller's lt_buf (whose
 * sticky error says whether it fit).
 */
#ifndef LT_SAGA_SAGA_JSON_H
#define LT_SAGA_SAGA_JSON_H

#include <stdbool.h>

#include "saga/saga_store.h"
#include "util/buf.h"

struct sqlite3;

/* The saga's fields, opening the object and leaving it open (the caller
 * adds members or '}'). */
void lt_saga_json_fields(struct lt_buf *b, const struct lt_saga *s, bool admin);

/* The whole object with its "steps", read on db.  LT_OK, the reader's
 * error, or the buffer's. */
enum lt_err lt_saga_json(struct lt_buf *b, struct sqlite3 *db, const struct lt_saga *s, bool admin);

#endif
