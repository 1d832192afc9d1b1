/*
 * spend.h — the admission of one request that spends provider tokens,
 * shared by consume (tokens.c) and the OpenAI-compatible API (v1.c):
 *
 *   lt_spend_admit    plan every bucket that applies (limit/policy.h) and
 *                     admit them all or none in one LMDB transaction; the
 *                     request's rate-limit headers (§4 style on /v1, §6 on
 *                     /api/v1) are set on req for every later reply
 *   lt_spend_reserve  hold the quota in one writer operation: the owner's
 *                     token pool for the provider and, when the call has a
 *                     price, the owner's money budget if it has one
 *   lt_spend_settle   after the call: the pools and the token buckets are
 *                     brought to the real use (refund or charge the
 *                     difference)
 *   lt_spend_release  after a failure: everything charged is given back
 *
 * The buckets and the pools are charged differently on purpose.  A pool
 * holds the worst case (prompt estimate + the output cap) so no pool can
 * ever be overspent, whatever runs concurrently.  A token bucket is a rate:
 * it is charged what the request is known to use (the prompt estimate plus
 * an explicit max_tokens, as OpenAI counts TPM) and settled to the real
 * use afterwards, which may leave it in debt (bucket.h) — so a default
 * 16k-token output cap does not need a 16k-token bucket.
 *
 * Feature flags: with rate-limiting off the plan is empty (no buckets, no
 * headers); with quota-enforcement off nothing is reserved or settled.
 *
 * Events: every request that reaches admission leaves exactly one
 * token-usage event in the outbox, in the same transaction as its settle
 * or release, or alone for a refusal (events/usage_event.h).
 *
 * Metrics: leaky_ratelimit_decisions_total{scope,outcome} per admission
 * item, leaky_quota_reservations_total{outcome}, leaky_quota_unbilled_total.
 *
 * Threads: any worker; the struct lives on the handler's stack.
 */
#ifndef LT_API_SPEND_H
#define LT_API_SPEND_H

#include <stdbool.h>
#include <stdint.h>

#include "limit/policy.h"
#include "provider/usage.h"
#include "quota/pool_store.h"

struct lt_req;

struct lt_spend {
	/* in (filled by the caller before lt_spend_admit) */
	enum lt_owner_kind owner_kind; /* whose pools pay */
	char owner_id[40];
	const char *user_id;   /* whose token bucket (the spender) */
	const char *tier;      /* the spender's tier, or NULL */
	const char *org_id;    /* org spent for (org bucket), or NULL */
	char provider[32];     /* lower-case */
	const char *model;     /* configured model name (model rpm/tpm), or NULL */
	int64_t bucket_tokens; /* charged to the token buckets at admission */
	int64_t pool_tokens;   /* held on the token pool (>= 1) */
	int64_t money_micros;  /* held on the money budget, if the owner has one; 0: none */
	bool openai;	       /* /v1 header style (x-ratelimit-*) */
	const char *reason;    /* ledger reason: "consume", "chat", "embeddings" */
	const char *endpoint;  /* the usage event's endpoint (static) */

	/* state */
	struct lt_limit_plan plan;
	int64_t now_ns; /* the admission's time */
	bool admitted;	/* the buckets were charged */
	bool reserved;	/* a reservation exists */
	struct lt_reservation resv;
	bool money_refused; /* lt_spend_reserve: the money budget was short */
};

/* Fill the plan and admit it.  LT_OK: *allowed says whether every bucket
 * admitted (when false nothing was charged; the headers, Retry-After
 * included, are set).  LT_ERANGE: some cost exceeds what its bucket can
 * ever admit (*item = its index; nothing charged).  LT_ETOOBIG: a key did
 * not fit (a bug).  LT_EBUSY / LT_EIO: the bucket store failed (503). */
enum lt_err lt_spend_admit(struct lt_req *req, struct lt_spend *sp, bool *allowed, int *item);

/* The binding item of a refused admission and its retry (ns), for the
 * 429 body.  *scope is LT_SCOPE_REQUESTS when nothing was planned. */
void lt_spend_refusal(const struct lt_spend *sp, enum lt_limit_scope *scope, int64_t *retry_ns);

/* Answer an error found before admission on a route that admits itself:
 * the request still counts against the client's request limit (when that
 * refuses it, the answer is its 429 instead) and the answer carries the
 * limit's headers.  The _openai form answers in OpenAI's envelope. */
void lt_spend_reply_early(struct lt_req *req, int status, const char *message,
			  const char *extra_headers);
void lt_spend_reply_early_openai(struct lt_req *req, int status, const char *type, const char *code,
				 const char *param, const char *message, const char *extra_headers);

/* Answer an lt_spend_admit error on /api/v1: LT_ERANGE 400 "tokens
 * exceed bucket capacity", LT_ETOOBIG 500, anything else 503. */
void lt_spend_reply_admit_error(struct lt_req *req, enum lt_err e);

/* Answer 429 for a refused admission: OpenAI's envelope with type
 * "requests" or "tokens" and code rate_limit_exceeded (sp->openai), else
 * the §0 envelope with retryAfterSeconds.  The headers (Retry-After
 * included) are already on req. */
void lt_spend_reply_limited(struct lt_req *req, const struct lt_spend *sp);

/* Hold the quota (nothing when quota-enforcement is off).  On any failure
 * the buckets are refunded and the headers re-rendered from the refunded
 * buckets.  LT_OK; LT_ENOTFOUND: the owner has no pool for the provider;
 * LT_EDENIED: a pool is short (money_refused tells which); other errors:
 * the store failed. */
enum lt_err lt_spend_reserve(struct lt_req *req, struct lt_spend *sp);

/* The call is over; rec is its usage record (tokens by kind, exact cost,
 * outcome, latency).  In one writer transaction: settle the reservation to
 * rec's input + output tokens and cost, and write the token-usage event
 * (events/usage_event.h) to the outbox; then bring the token buckets from
 * what admission charged to the real use.  With quota enforcement off only
 * the event is written.  Errors are logged, never answered. */
void lt_spend_settle(struct lt_req *req, struct lt_spend *sp, const struct lt_usage_record *rec);

/* The call failed before using anything: release the reservation and
 * write its usage event (allowed, reason "provider_failed", rec's outcome
 * when rec is not NULL) in one transaction, and refund the buckets
 * (headers re-rendered).  `why` goes to the ledger. */
void lt_spend_release(struct lt_req *req, struct lt_spend *sp, const char *why,
		      const struct lt_usage_record *rec);

/* Refusals write their usage event themselves (allowed false):
 * lt_spend_admit when a bucket refuses ("rate_limited") or a cost can
 * never fit ("request_too_large"), lt_spend_reserve when the quota is
 * short or missing ("insufficient_quota"). */

/* The request limit alone, for a route that does not admit itself (the
 * dispatcher calls it after authentication): client key from the
 * principal or the address, headers set on req.  true: go on; false:
 * answered (429 with Retry-After, or 503 when the store failed). */
bool lt_spend_admit_request(struct lt_req *req);

/* Register the admission and quota metric families (at start). */
struct lt_server;
enum lt_err lt_spend_metrics_init(struct lt_server *srv);

/* Append leaky_quota_pool_remaining and leaky_quota_pool_reserved for the
 * LT_SPEND_TOP_POOLS pools that spent the most (read at scrape time from
 * leaky.db, so a pool that leaves the top leaves the output). */
#define LT_SPEND_TOP_POOLS 20
struct lt_buf;
void lt_spend_metrics_render_pools(struct lt_server *srv, struct lt_buf *out);

#endif
