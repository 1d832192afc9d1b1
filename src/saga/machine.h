/*
 * machine.h — the token-purchase saga as a pure state machine (API.md §2).
 *
 * Forward:  STARTED --authorize--> PAYMENT_RESERVED --allocate-->
 *           TOKENS_ALLOCATED --capture--> (captured) --complete--> COMPLETED
 * Failure:  any forward step refused, or failing LT_SAGA_FORWARD_TRIES times
 *           in a row, enters COMPENSATING; every completed step is then
 *           undone in reverse (reverse the allocation, release the payment;
 *           the other way round after a capture try, below) and the saga
 *           ends FAILED.  Compensation steps (and complete and
 *           fail, which only write the database) are retried until they
 *           succeed, with a backoff capped by the caller.
 *
 * The machine knows nothing of HTTP or SQL.  The orchestrator asks
 * lt_saga_action() what to do for a saga as stored (state, completed steps,
 * failed tries of the current step), does it, classifies what happened as
 * an lt_saga_outcome, and asks lt_saga_advance() for the next stored value,
 * the events to publish with it (saga/saga_store.c writes both in one
 * transaction) and whether to retry after a backoff.
 *
 * Payments are called with idempotency keys derived from the saga id, so a
 * step may be repeated safely; an authorize whose answer was lost (time-out,
 * 5xx, dropped connection) may still have taken effect, which the machine
 * remembers (LT_SAGA_DONE_AUTH_TRIED): compensation then releases the
 * payment too (the orchestrator replays the authorize to learn its id).
 * One that never left (LT_SAGA_UNSENT: no connection) is retried the same
 * but leaves nothing to release.
 *
 * Likewise a capture that may have reached the service is remembered
 * (LT_SAGA_DONE_CAPTURE_TRIED): any failed try but a refusal (4xx, 404)
 * sets it: a lost answer, a 409 from a twin still in flight, and even an
 * unsent try, which may follow one cut off by a restart (that leaves no
 * outcome).  An admin compensate keeps it.  Compensation then releases the
 * payment BEFORE reversing the allocation: a release answered 409 means
 * the payment was captured after all, so the purchase stands and the saga
 * goes forward to TOKENS_ALLOCATED (captured) and completes with its one
 * allocation, never reversed; a release that succeeds is followed by the
 * reversal, and the saga fails.  Without the bit the order is the
 * documented one (reverse, then release), and a release answered 409 is
 * retried like a failure: no capture of this saga should have taken effect
 * (the one gap: a capture cut off by a restart, then compensated by an
 * admin before it was tried again), and the tokens are never granted
 * twice.  So the allocation is made at most once, a captured payment is
 * never compensated, and a COMPLETED saga was never reversed.
 *
 * Pure: no I/O, no clock, no allocation.  Thread-safe (no state).
 */
#ifndef LT_SAGA_MACHINE_H
#define LT_SAGA_MACHINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

enum lt_saga_state {
	LT_SAGA_STARTED,
	LT_SAGA_PAYMENT_RESERVED,
	LT_SAGA_TOKENS_ALLOCATED,
	LT_SAGA_COMPLETED,
	LT_SAGA_COMPENSATING,
	LT_SAGA_FAILED,
	LT_SAGA_STATE_COUNT
};

/* Completed steps (bits of lt_saga_sm.done). */
enum {
	LT_SAGA_DONE_AUTH_TRIED = 1 << 0,    /* an authorize may have taken effect */
	LT_SAGA_DONE_AUTHORIZED = 1 << 1,    /* the payment is authorized (its id is known) */
	LT_SAGA_DONE_ALLOCATED = 1 << 2,     /* the tokens were granted */
	LT_SAGA_DONE_CAPTURED = 1 << 3,	     /* the payment was captured */
	LT_SAGA_DONE_REVERSED = 1 << 4,	     /* the allocation was undone */
	LT_SAGA_DONE_RELEASED = 1 << 5,	     /* the payment was released (or never existed) */
	LT_SAGA_DONE_CAPTURE_TRIED = 1 << 6, /* a capture may have reached the service */
	LT_SAGA_DONE_ALL = (1 << 7) - 1,
};

enum lt_saga_action {
	LT_SAGA_ACT_NONE, /* final: nothing left to do */
	LT_SAGA_ACT_AUTHORIZE,
	LT_SAGA_ACT_ALLOCATE,
	LT_SAGA_ACT_CAPTURE,
	LT_SAGA_ACT_COMPLETE,
	LT_SAGA_ACT_REVERSE_ALLOCATION,
	LT_SAGA_ACT_RELEASE_PAYMENT,
	LT_SAGA_ACT_FAIL,
	LT_SAGA_ACT_COUNT
};

/* What one try of an action came to. */
enum lt_saga_outcome {
	LT_SAGA_OK,	  /* done */
	LT_SAGA_RETRY,	  /* failed in a way that may pass (time-out, 5xx, busy); may have
			     taken effect */
	LT_SAGA_REFUSED,  /* refused for good (4xx); no effect */
	LT_SAGA_CONFLICT, /* 409: the payment is already in the other final state
			     (capture: released; release: captured) */
	LT_SAGA_GONE,	  /* 404: no such payment */
	LT_SAGA_UNSENT,	  /* failed before the request left (no connection): no effect,
			     may pass later */
	LT_SAGA_OUTCOME_COUNT
};

/* Failed tries of a forward step before the saga compensates. */
#define LT_SAGA_FORWARD_TRIES 3
/* Backoff of the first retry; each later one doubles, up to the cap. */
#define LT_SAGA_BACKOFF_BASE_MS 100
#define LT_SAGA_EVENTS_MAX 2

/* A saga as the machine sees it (what the store keeps). */
struct lt_saga_sm {
	enum lt_saga_state state;
	unsigned done; /* LT_SAGA_DONE_* */
	int attempts;  /* failed tries of the current step */
};

/* How a step ended, for the step log. */
enum lt_saga_step_status { LT_STEP_SUCCEEDED, LT_STEP_RETRYING, LT_STEP_FAILED };

/* One transition. */
struct lt_saga_move {
	struct lt_saga_sm next;
	enum lt_saga_step_status step;		    /* the action's step row */
	bool retry;				    /* try next.action again after a backoff */
	bool compensating;			    /* this move entered COMPENSATING */
	const char *events[LT_SAGA_EVENTS_MAX + 1]; /* event types, NULL-terminated */
	size_t nevents;
};

/* "STARTED", ... ; NULL out of range.  Parse: exact upper-case name, or
 * the same in any case (LT_EINVAL otherwise). */
const char *lt_saga_state_name(enum lt_saga_state s);
enum lt_err lt_saga_state_parse(const char *s, enum lt_saga_state *out);
bool lt_saga_state_final(enum lt_saga_state s);

/* "authorize_payment", "allocate_tokens", "capture_payment", "complete",
 * "reverse_allocation", "release_payment", "fail"; "none". */
const char *lt_saga_action_name(enum lt_saga_action a);
/* "SUCCEEDED", "RETRYING", "FAILED". */
const char *lt_saga_step_status_name(enum lt_saga_step_status s);
const char *lt_saga_outcome_name(enum lt_saga_outcome o);

/* A consistent stored value: state in range, known bits only, and bits
 * that fit the state (e.g. ALLOCATED implies AUTHORIZED; CAPTURE_TRIED
 * implies ALLOCATED; COMPLETED implies CAPTURED; COMPENSATING never has
 * CAPTURE_TRIED and REVERSED without RELEASED).  The store refuses anything
 * else as LT_ECORRUPT.  (PAYMENT_RESERVED with CAPTURED, written by older
 * versions after a 409 release, stays valid: it allocates and completes.) */
bool lt_saga_sm_valid(const struct lt_saga_sm *s);

/* The next action for s (LT_SAGA_ACT_NONE when final). */
enum lt_saga_action lt_saga_action(const struct lt_saga_sm *s);

/* The transition after action `a` ended with outcome `o`.  LT_EINVAL if s
 * is not valid, `a` is not lt_saga_action(s) or o is out of range. */
enum lt_err lt_saga_advance(const struct lt_saga_sm *s, enum lt_saga_action a,
			    enum lt_saga_outcome o, struct lt_saga_move *out);

/* Start compensating now (admin compensate).  LT_EINVAL for a final saga,
 * LT_EDENIED once the payment is captured (the purchase can only
 * complete), LT_EEXIST when already compensating (nothing to change). */
enum lt_err lt_saga_compensate(const struct lt_saga_sm *s, struct lt_saga_move *out);

/* Milliseconds to wait before try number attempts + 1 (attempts >= 1
 * failed tries so far): LT_SAGA_BACKOFF_BASE_MS doubled per try, at most
 * max_ms (and at least 1). */
int64_t lt_saga_backoff_ms(int attempts, int64_t max_ms);

#endif
