/*
 * machine.c — the purchase saga's transitions.  See machine.h.
 */
#include <string.h>
#include <strings.h>

#include "saga/machine.h"

static const char *const state_names[LT_SAGA_STATE_COUNT] = {
	[LT_SAGA_STARTED] = "STARTED",
	[LT_SAGA_PAYMENT_RESERVED] = "PAYMENT_RESERVED",
	[LT_SAGA_TOKENS_ALLOCATED] = "TOKENS_ALLOCATED",
	[LT_SAGA_COMPLETED] = "COMPLETED",
	[LT_SAGA_COMPENSATING] = "COMPENSATING",
	[LT_SAGA_FAILED] = "FAILED",
};

static const char *const action_names[LT_SAGA_ACT_COUNT] = {
	[LT_SAGA_ACT_NONE] = "none",
	[LT_SAGA_ACT_AUTHORIZE] = "authorize_payment",
	[LT_SAGA_ACT_ALLOCATE] = "allocate_tokens",
	[LT_SAGA_ACT_CAPTURE] = "capture_payment",
	[LT_SAGA_ACT_COMPLETE] = "complete",
	[LT_SAGA_ACT_REVERSE_ALLOCATION] = "reverse_allocation",
	[LT_SAGA_ACT_RELEASE_PAYMENT] = "release_payment",
	[LT_SAGA_ACT_FAIL] = "fail",
};

static const char *const outcome_names[LT_SAGA_OUTCOME_COUNT] = {
	[LT_SAGA_OK] = "ok",	       [LT_SAGA_RETRY] = "retry",
	[LT_SAGA_REFUSED] = "refused", [LT_SAGA_CONFLICT] = "conflict",
	[LT_SAGA_GONE] = "gone",       [LT_SAGA_UNSENT] = "unsent",
};

/* Event types (API.md §2, plus the compensation and capture events). */
#define EV_RESERVED "TOKEN_PAYMENT_RESERVED"
#define EV_ALLOCATED "TOKEN_ALLOCATED"
#define EV_CAPTURED "TOKEN_PAYMENT_CAPTURED"
#define EV_COMPLETED "TOKEN_PURCHASE_COMPLETED"
#define EV_COMPENSATING "TOKEN_PURCHASE_COMPENSATING"
#define EV_REVERSED "TOKEN_ALLOCATION_REVERSED"
#define EV_RELEASE_REQUESTED "PAYMENT_RELEASE_REQUESTED"
#define EV_RELEASED "PAYMENT_RELEASED"
#define EV_FAILED "TOKEN_PURCHASE_FAILED"

const char *lt_saga_state_name(enum lt_saga_state s)
{
	return (unsigned)s < LT_SAGA_STATE_COUNT ? state_names[s] : NULL;
}

enum lt_err lt_saga_state_parse(const char *s, enum lt_saga_state *out)
{
	for (unsigned i = 0; s && i < LT_SAGA_STATE_COUNT; i++) {
		if (strcasecmp(s, state_names[i]) == 0) {
			*out = (enum lt_saga_state)i;
			return LT_OK;
		}
	}
	return LT_EINVAL;
}

bool lt_saga_state_final(enum lt_saga_state s)
{
	return s == LT_SAGA_COMPLETED || s == LT_SAGA_FAILED;
}

const char *lt_saga_action_name(enum lt_saga_action a)
{
	return (unsigned)a < LT_SAGA_ACT_COUNT ? action_names[a] : "none";
}

const char *lt_saga_step_status_name(enum lt_saga_step_status s)
{
	switch (s) {
	case LT_STEP_SUCCEEDED: return "SUCCEEDED";
	case LT_STEP_RETRYING: return "RETRYING";
	case LT_STEP_FAILED: return "FAILED";
	}
	return "FAILED";
}

const char *lt_saga_outcome_name(enum lt_saga_outcome o)
{
	return (unsigned)o < LT_SAGA_OUTCOME_COUNT ? outcome_names[o] : "unknown";
}

static bool has(unsigned done, unsigned bits)
{
	return (done & bits) == bits;
}

bool lt_saga_sm_valid(const struct lt_saga_sm *s)
{
	unsigned d = s->done;
	if ((unsigned)s->state >= LT_SAGA_STATE_COUNT || (d & ~(unsigned)LT_SAGA_DONE_ALL) ||
	    s->attempts < 0)
		return false;
	/* implications that hold in every state */
	if ((d & LT_SAGA_DONE_AUTHORIZED) && !(d & LT_SAGA_DONE_AUTH_TRIED))
		return false;
	if ((d & LT_SAGA_DONE_CAPTURED) && !(d & LT_SAGA_DONE_AUTHORIZED))
		return false;
	if ((d & LT_SAGA_DONE_REVERSED) && !(d & LT_SAGA_DONE_ALLOCATED))
		return false;
	if ((d & LT_SAGA_DONE_ALLOCATED) && !(d & LT_SAGA_DONE_AUTHORIZED))
		return false;
	if ((d & LT_SAGA_DONE_CAPTURE_TRIED) && !(d & LT_SAGA_DONE_ALLOCATED))
		return false;
	const unsigned undone = LT_SAGA_DONE_REVERSED | LT_SAGA_DONE_RELEASED;
	switch (s->state) {
	case LT_SAGA_STARTED: return (d & ~(unsigned)LT_SAGA_DONE_AUTH_TRIED) == 0;
	case LT_SAGA_PAYMENT_RESERVED:
		return has(d, LT_SAGA_DONE_AUTHORIZED) && !(d & (LT_SAGA_DONE_ALLOCATED | undone));
	case LT_SAGA_TOKENS_ALLOCATED:
		return has(d, LT_SAGA_DONE_AUTHORIZED | LT_SAGA_DONE_ALLOCATED) && !(d & undone);
	case LT_SAGA_COMPLETED:
		return has(d, LT_SAGA_DONE_ALLOCATED | LT_SAGA_DONE_CAPTURED) && !(d & undone);
	case LT_SAGA_COMPENSATING:
		/* after a capture try the payment is released before the
		 * allocation is reversed */
		return !(d & LT_SAGA_DONE_CAPTURED) &&
		       !(has(d, LT_SAGA_DONE_CAPTURE_TRIED | LT_SAGA_DONE_REVERSED) &&
			 !(d & LT_SAGA_DONE_RELEASED));
	case LT_SAGA_FAILED:
		return !(d & LT_SAGA_DONE_CAPTURED) &&
		       (!(d & LT_SAGA_DONE_ALLOCATED) || (d & LT_SAGA_DONE_REVERSED)) &&
		       (!(d & LT_SAGA_DONE_AUTH_TRIED) || (d & LT_SAGA_DONE_RELEASED));
	case LT_SAGA_STATE_COUNT: break;
	}
	return false;
}

enum lt_saga_action lt_saga_action(const struct lt_saga_sm *s)
{
	unsigned d = s->done;
	switch (s->state) {
	case LT_SAGA_STARTED: return LT_SAGA_ACT_AUTHORIZE;
	case LT_SAGA_PAYMENT_RESERVED: return LT_SAGA_ACT_ALLOCATE;
	case LT_SAGA_TOKENS_ALLOCATED:
		return (d & LT_SAGA_DONE_CAPTURED) ? LT_SAGA_ACT_COMPLETE : LT_SAGA_ACT_CAPTURE;
	case LT_SAGA_COMPENSATING: {
		bool reverse = (d & LT_SAGA_DONE_ALLOCATED) && !(d & LT_SAGA_DONE_REVERSED);
		bool release = (d & LT_SAGA_DONE_AUTH_TRIED) && !(d & LT_SAGA_DONE_RELEASED);
		/* A capture may have reached the service: release first, so a
		 * 409 (captured) finds the allocation still standing. */
		if (release && (d & LT_SAGA_DONE_CAPTURE_TRIED))
			return LT_SAGA_ACT_RELEASE_PAYMENT;
		if (reverse)
			return LT_SAGA_ACT_REVERSE_ALLOCATION;
		if (release)
			return LT_SAGA_ACT_RELEASE_PAYMENT;
		return LT_SAGA_ACT_FAIL;
	}
	case LT_SAGA_COMPLETED:
	case LT_SAGA_FAILED:
	case LT_SAGA_STATE_COUNT: break;
	}
	return LT_SAGA_ACT_NONE;
}

static void add_event(struct lt_saga_move *m, const char *type)
{
	if (m->nevents < LT_SAGA_EVENTS_MAX) {
		m->events[m->nevents++] = type;
		m->events[m->nevents] = NULL;
	}
}

/* A move that lands on `next` after a success: the step succeeded, tries
 * start again at 0, and a release that becomes due is announced. */
static void land(const struct lt_saga_sm *from, struct lt_saga_move *m, enum lt_saga_state st,
		 unsigned done, const char *event)
{
	m->next.state = st;
	m->next.done = done;
	m->next.attempts = 0;
	m->step = LT_STEP_SUCCEEDED;
	if (event)
		add_event(m, event);
	if (lt_saga_action(&m->next) == LT_SAGA_ACT_RELEASE_PAYMENT &&
	    lt_saga_action(from) != LT_SAGA_ACT_RELEASE_PAYMENT)
		add_event(m, EV_RELEASE_REQUESTED);
}

/* Enter COMPENSATING from a forward step that failed for good. */
static void to_compensating(const struct lt_saga_sm *from, unsigned done, struct lt_saga_move *m)
{
	land(from, m, LT_SAGA_COMPENSATING, done, EV_COMPENSATING);
	m->step = LT_STEP_FAILED;
	m->compensating = true;
}

/* A failed try that is tried again (after a backoff). */
static void again(const struct lt_saga_sm *s, unsigned done, struct lt_saga_move *m)
{
	m->next = *s;
	m->next.done = done;
	m->next.attempts = s->attempts + 1;
	m->step = LT_STEP_RETRYING;
	m->retry = true;
}

/* A forward step failed: try again while tries remain (and always once
 * the payment is captured: that purchase can only complete), else
 * compensate. */
static void forward_failed(const struct lt_saga_sm *s, unsigned done, enum lt_saga_outcome o,
			   struct lt_saga_move *m)
{
	bool captured = (done & LT_SAGA_DONE_CAPTURED) != 0;
	bool may_pass = o == LT_SAGA_RETRY || o == LT_SAGA_UNSENT;
	if (captured || (may_pass && s->attempts + 1 < LT_SAGA_FORWARD_TRIES))
		again(s, done, m);
	else
		to_compensating(s, done, m);
}

enum lt_err lt_saga_advance(const struct lt_saga_sm *s, enum lt_saga_action a,
			    enum lt_saga_outcome o, struct lt_saga_move *out)
{
	memset(out, 0, sizeof *out);
	if (!lt_saga_sm_valid(s) || a == LT_SAGA_ACT_NONE || a != lt_saga_action(s) ||
	    (unsigned)o >= LT_SAGA_OUTCOME_COUNT)
		return LT_EINVAL;
	unsigned d = s->done;
	switch (a) {
	case LT_SAGA_ACT_AUTHORIZE:
		if (o == LT_SAGA_OK)
			land(s, out, LT_SAGA_PAYMENT_RESERVED,
			     d | LT_SAGA_DONE_AUTH_TRIED | LT_SAGA_DONE_AUTHORIZED, EV_RESERVED);
		else /* an unanswered authorize may have taken effect */
			forward_failed(s, o == LT_SAGA_RETRY ? d | LT_SAGA_DONE_AUTH_TRIED : d, o,
				       out);
		break;
	case LT_SAGA_ACT_ALLOCATE:
		if (o == LT_SAGA_OK)
			land(s, out, LT_SAGA_TOKENS_ALLOCATED, d | LT_SAGA_DONE_ALLOCATED,
			     EV_ALLOCATED);
		else
			forward_failed(s, d, o, out);
		break;
	case LT_SAGA_ACT_CAPTURE:
		if (o == LT_SAGA_OK)
			land(s, out, LT_SAGA_TOKENS_ALLOCATED, d | LT_SAGA_DONE_CAPTURED,
			     EV_CAPTURED);
		else /* only a refusal (4xx, 404) says for sure nothing was
		      * captured; even an unsent try may follow one cut off by a
		      * restart, which leaves no outcome behind */
			forward_failed(s,
				       o == LT_SAGA_REFUSED || o == LT_SAGA_GONE
					       ? d
					       : d | LT_SAGA_DONE_CAPTURE_TRIED,
				       o, out);
		break;
	case LT_SAGA_ACT_COMPLETE:
		if (o == LT_SAGA_OK)
			land(s, out, LT_SAGA_COMPLETED, d, EV_COMPLETED);
		else
			again(s, d, out);
		break;
	case LT_SAGA_ACT_REVERSE_ALLOCATION:
		if (o == LT_SAGA_OK)
			land(s, out, LT_SAGA_COMPENSATING, d | LT_SAGA_DONE_REVERSED, EV_REVERSED);
		else
			again(s, d, out);
		break;
	case LT_SAGA_ACT_RELEASE_PAYMENT:
		if (o == LT_SAGA_OK || o == LT_SAGA_GONE) {
			land(s, out, LT_SAGA_COMPENSATING, d | LT_SAGA_DONE_RELEASED, EV_RELEASED);
		} else if (o == LT_SAGA_CONFLICT && (d & LT_SAGA_DONE_CAPTURE_TRIED)) {
			/* The payment was captured (a capture whose answer was lost):
			 * the purchase stands.  The release came before the reversal,
			 * so the allocation stands too: complete with it. */
			land(s, out, LT_SAGA_TOKENS_ALLOCATED, d | LT_SAGA_DONE_CAPTURED,
			     EV_CAPTURED);
		} else {
			/* A 409 with no capture ever sent that could have worked
			 * cannot be this saga's capture: retried like any failure
			 * (never a second grant); an operator sees it in the step
			 * log. */
			again(s, d, out);
		}
		break;
	case LT_SAGA_ACT_FAIL:
		if (o == LT_SAGA_OK)
			land(s, out, LT_SAGA_FAILED, d, EV_FAILED);
		else
			again(s, d, out);
		break;
	case LT_SAGA_ACT_NONE:
	case LT_SAGA_ACT_COUNT: return LT_EINVAL;
	}
	return LT_OK;
}

enum lt_err lt_saga_compensate(const struct lt_saga_sm *s, struct lt_saga_move *out)
{
	memset(out, 0, sizeof *out);
	if (!lt_saga_sm_valid(s) || lt_saga_state_final(s->state))
		return LT_EINVAL;
	if (s->done & LT_SAGA_DONE_CAPTURED)
		return LT_EDENIED;
	if (s->state == LT_SAGA_COMPENSATING)
		return LT_EEXIST;
	to_compensating(s, s->done, out); /* CAPTURE_TRIED, if set, carries over */
	return LT_OK;
}

int64_t lt_saga_backoff_ms(int attempts, int64_t max_ms)
{
	if (max_ms < 1)
		max_ms = 1;
	int64_t v = LT_SAGA_BACKOFF_BASE_MS;
	for (int i = 1; i < attempts && v < max_ms; i++)
		v *= 2;
	return v < max_ms ? v : max_ms;
}
