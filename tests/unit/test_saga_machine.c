/*
 * test_saga_machine.c — src/saga/machine.c, every transition: the action
 * of every state; each action with each outcome (success, a try that may
 * pass, refused, 409, 404); forward steps retried LT_SAGA_FORWARD_TRIES
 * times then compensated; compensation in reverse order (reverse the
 * allocation, release the payment, fail) and retried without end until
 * it succeeds; after a capture that may have reached the service
 * (CAPTURE_TRIED) the payment released before the allocation is reversed,
 * and a release answered 409 completing with the allocation intact; admin
 * compensation; the events of each move; the stored-value check; the
 * backoff; and an exhaustive sweep plus seeded random walks checking that
 * every move lands on a valid value, that compensation undoes in its
 * order, that the tokens are allocated at most once and that a COMPLETED
 * saga was never reversed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "saga/machine.h"

#define TRIED LT_SAGA_DONE_AUTH_TRIED
#define AUTH LT_SAGA_DONE_AUTHORIZED
#define ALLOC LT_SAGA_DONE_ALLOCATED
#define CAPT LT_SAGA_DONE_CAPTURED
#define REV LT_SAGA_DONE_REVERSED
#define REL LT_SAGA_DONE_RELEASED
#define CT LT_SAGA_DONE_CAPTURE_TRIED

static struct lt_saga_sm sm(enum lt_saga_state st, unsigned done, int attempts)
{
	struct lt_saga_sm s = {st, done, attempts};
	return s;
}

/* Advance s by its own next action with outcome o; asserts success. */
static struct lt_saga_move step(struct lt_saga_sm *s, enum lt_saga_outcome o)
{
	struct lt_saga_move m;
	enum lt_saga_action a = lt_saga_action(s);
	assert_int_not_equal(a, LT_SAGA_ACT_NONE);
	assert_int_equal(lt_saga_advance(s, a, o, &m), LT_OK);
	assert_true(lt_saga_sm_valid(&m.next));
	*s = m.next;
	return m;
}

static void assert_events(const struct lt_saga_move *m, const char *e0, const char *e1)
{
	size_t n = (e0 != NULL) + (e1 != NULL);
	assert_int_equal(m->nevents, n);
	if (e0)
		assert_string_equal(m->events[0], e0);
	if (e1)
		assert_string_equal(m->events[1], e1);
	assert_null(m->events[n]);
}

static void test_names(void **state)
{
	(void)state;
	static const char *const names[] = {"STARTED",	 "PAYMENT_RESERVED", "TOKENS_ALLOCATED",
					    "COMPLETED", "COMPENSATING",     "FAILED"};
	for (int i = 0; i < LT_SAGA_STATE_COUNT; i++) {
		enum lt_saga_state st;
		assert_string_equal(lt_saga_state_name((enum lt_saga_state)i), names[i]);
		assert_int_equal(lt_saga_state_parse(names[i], &st), LT_OK);
		assert_int_equal(st, i);
	}
	enum lt_saga_state st;
	assert_int_equal(lt_saga_state_parse("completed", &st), LT_OK);
	assert_int_equal(st, LT_SAGA_COMPLETED);
	assert_int_equal(lt_saga_state_parse("DONE", &st), LT_EINVAL);
	assert_int_equal(lt_saga_state_parse("", &st), LT_EINVAL);
	assert_int_equal(lt_saga_state_parse(NULL, &st), LT_EINVAL);
	assert_null(lt_saga_state_name(LT_SAGA_STATE_COUNT));
	assert_true(lt_saga_state_final(LT_SAGA_COMPLETED));
	assert_true(lt_saga_state_final(LT_SAGA_FAILED));
	assert_false(lt_saga_state_final(LT_SAGA_COMPENSATING));
	assert_false(lt_saga_state_final(LT_SAGA_STARTED));
	assert_string_equal(lt_saga_action_name(LT_SAGA_ACT_AUTHORIZE), "authorize_payment");
	assert_string_equal(lt_saga_action_name(LT_SAGA_ACT_REVERSE_ALLOCATION),
			    "reverse_allocation");
	assert_string_equal(lt_saga_action_name(LT_SAGA_ACT_COUNT), "none");
	assert_string_equal(lt_saga_step_status_name(LT_STEP_RETRYING), "RETRYING");
	assert_string_equal(lt_saga_outcome_name(LT_SAGA_CONFLICT), "conflict");
}

static void test_action_of_each_state(void **state)
{
	(void)state;
	struct {
		struct lt_saga_sm s;
		enum lt_saga_action a;
	} cases[] = {
		{sm(LT_SAGA_STARTED, 0, 0), LT_SAGA_ACT_AUTHORIZE},
		{sm(LT_SAGA_STARTED, TRIED, 1), LT_SAGA_ACT_AUTHORIZE},
		{sm(LT_SAGA_PAYMENT_RESERVED, TRIED | AUTH, 0), LT_SAGA_ACT_ALLOCATE},
		{sm(LT_SAGA_PAYMENT_RESERVED, TRIED | AUTH | CAPT, 0), LT_SAGA_ACT_ALLOCATE},
		{sm(LT_SAGA_TOKENS_ALLOCATED, TRIED | AUTH | ALLOC, 0), LT_SAGA_ACT_CAPTURE},
		{sm(LT_SAGA_TOKENS_ALLOCATED, TRIED | AUTH | ALLOC | CAPT, 0),
		 LT_SAGA_ACT_COMPLETE},
		{sm(LT_SAGA_COMPLETED, TRIED | AUTH | ALLOC | CAPT, 0), LT_SAGA_ACT_NONE},
		{sm(LT_SAGA_COMPENSATING, 0, 0), LT_SAGA_ACT_FAIL},
		{sm(LT_SAGA_COMPENSATING, TRIED, 0), LT_SAGA_ACT_RELEASE_PAYMENT},
		{sm(LT_SAGA_COMPENSATING, TRIED | AUTH, 0), LT_SAGA_ACT_RELEASE_PAYMENT},
		{sm(LT_SAGA_COMPENSATING, TRIED | AUTH | ALLOC, 0), LT_SAGA_ACT_REVERSE_ALLOCATION},
		{sm(LT_SAGA_COMPENSATING, TRIED | AUTH | ALLOC | REV, 0),
		 LT_SAGA_ACT_RELEASE_PAYMENT},
		{sm(LT_SAGA_COMPENSATING, TRIED | AUTH | ALLOC | REV | REL, 0), LT_SAGA_ACT_FAIL},
		{sm(LT_SAGA_COMPENSATING, TRIED | REL, 0), LT_SAGA_ACT_FAIL},
		/* after a capture try: release first, then reverse */
		{sm(LT_SAGA_TOKENS_ALLOCATED, TRIED | AUTH | ALLOC | CT, 1), LT_SAGA_ACT_CAPTURE},
		{sm(LT_SAGA_TOKENS_ALLOCATED, TRIED | AUTH | ALLOC | CT | CAPT, 0),
		 LT_SAGA_ACT_COMPLETE},
		{sm(LT_SAGA_COMPENSATING, TRIED | AUTH | ALLOC | CT, 0),
		 LT_SAGA_ACT_RELEASE_PAYMENT},
		{sm(LT_SAGA_COMPENSATING, TRIED | AUTH | ALLOC | CT | REL, 0),
		 LT_SAGA_ACT_REVERSE_ALLOCATION},
		{sm(LT_SAGA_COMPENSATING, TRIED | AUTH | ALLOC | CT | REL | REV, 0),
		 LT_SAGA_ACT_FAIL},
		{sm(LT_SAGA_COMPLETED, TRIED | AUTH | ALLOC | CT | CAPT, 0), LT_SAGA_ACT_NONE},
		{sm(LT_SAGA_FAILED, TRIED | AUTH | ALLOC | CT | REL | REV, 0), LT_SAGA_ACT_NONE},
		{sm(LT_SAGA_FAILED, 0, 0), LT_SAGA_ACT_NONE},
		{sm(LT_SAGA_FAILED, TRIED | AUTH | ALLOC | REV | REL, 0), LT_SAGA_ACT_NONE},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_true(lt_saga_sm_valid(&cases[i].s));
		assert_int_equal(lt_saga_action(&cases[i].s), cases[i].a);
	}
}

static void test_happy_path(void **state)
{
	(void)state;
	struct lt_saga_sm s = sm(LT_SAGA_STARTED, 0, 0);
	struct lt_saga_move m = step(&s, LT_SAGA_OK);
	assert_int_equal(s.state, LT_SAGA_PAYMENT_RESERVED);
	assert_int_equal(s.done, TRIED | AUTH);
	assert_int_equal(m.step, LT_STEP_SUCCEEDED);
	assert_false(m.retry);
	assert_events(&m, "TOKEN_PAYMENT_RESERVED", NULL);

	m = step(&s, LT_SAGA_OK);
	assert_int_equal(s.state, LT_SAGA_TOKENS_ALLOCATED);
	assert_int_equal(s.done, TRIED | AUTH | ALLOC);
	assert_events(&m, "TOKEN_ALLOCATED", NULL);

	m = step(&s, LT_SAGA_OK);
	assert_int_equal(s.state, LT_SAGA_TOKENS_ALLOCATED);
	assert_int_equal(s.done, TRIED | AUTH | ALLOC | CAPT);
	assert_events(&m, "TOKEN_PAYMENT_CAPTURED", NULL);
	assert_int_equal(lt_saga_action(&s), LT_SAGA_ACT_COMPLETE);

	m = step(&s, LT_SAGA_OK);
	assert_int_equal(s.state, LT_SAGA_COMPLETED);
	assert_events(&m, "TOKEN_PURCHASE_COMPLETED", NULL);
	assert_int_equal(lt_saga_action(&s), LT_SAGA_ACT_NONE);
	assert_false(m.compensating);
}

/* A forward step at `from` failing with RETRY LT_SAGA_FORWARD_TRIES times:
 * tried again with attempts counting up, then compensated. */
static struct lt_saga_sm retries_then_compensates(struct lt_saga_sm from, unsigned done_after)
{
	struct lt_saga_sm s = from;
	for (int i = 1; i < LT_SAGA_FORWARD_TRIES; i++) {
		struct lt_saga_move m = step(&s, LT_SAGA_RETRY);
		assert_true(m.retry);
		assert_int_equal(m.step, LT_STEP_RETRYING);
		assert_int_equal(m.nevents, 0);
		assert_int_equal(s.state, from.state);
		assert_int_equal(s.attempts, i);
		assert_int_equal(s.done, done_after);
	}
	struct lt_saga_move m = step(&s, LT_SAGA_RETRY);
	assert_false(m.retry);
	assert_true(m.compensating);
	assert_int_equal(m.step, LT_STEP_FAILED);
	assert_int_equal(s.state, LT_SAGA_COMPENSATING);
	assert_int_equal(s.attempts, 0);
	assert_int_equal(s.done, done_after);
	assert_string_equal(m.events[0], "TOKEN_PURCHASE_COMPENSATING");
	return s;
}

static void test_authorize_outcomes(void **state)
{
	(void)state;
	/* a lost answer may have taken effect: remembered, and released */
	struct lt_saga_sm s = retries_then_compensates(sm(LT_SAGA_STARTED, 0, 0), TRIED);
	assert_int_equal(lt_saga_action(&s), LT_SAGA_ACT_RELEASE_PAYMENT);

	/* refused for good, nothing sent that could have worked: just fail */
	for (enum lt_saga_outcome o = LT_SAGA_REFUSED; o <= LT_SAGA_GONE; o++) {
		s = sm(LT_SAGA_STARTED, 0, 0);
		struct lt_saga_move m = step(&s, o);
		assert_true(m.compensating);
		assert_int_equal(m.step, LT_STEP_FAILED);
		assert_int_equal(s.state, LT_SAGA_COMPENSATING);
		assert_int_equal(s.done, 0);
		assert_events(&m, "TOKEN_PURCHASE_COMPENSATING", NULL);
		assert_int_equal(lt_saga_action(&s), LT_SAGA_ACT_FAIL);
		m = step(&s, LT_SAGA_OK);
		assert_int_equal(s.state, LT_SAGA_FAILED);
		assert_events(&m, "TOKEN_PURCHASE_FAILED", NULL);
	}

	/* never sent (no connection) until the tries run out: nothing to
	 * release, the saga just fails */
	s = sm(LT_SAGA_STARTED, 0, 0);
	assert_true(step(&s, LT_SAGA_UNSENT).retry);
	assert_true(step(&s, LT_SAGA_UNSENT).retry);
	assert_int_equal(s.done, 0);
	struct lt_saga_move m0 = step(&s, LT_SAGA_UNSENT);
	assert_true(m0.compensating);
	assert_events(&m0, "TOKEN_PURCHASE_COMPENSATING", NULL);
	assert_int_equal(lt_saga_action(&s), LT_SAGA_ACT_FAIL);
	/* but one lost answer among them is remembered */
	s = sm(LT_SAGA_STARTED, 0, 0);
	step(&s, LT_SAGA_UNSENT);
	step(&s, LT_SAGA_RETRY);
	step(&s, LT_SAGA_UNSENT);
	assert_int_equal(s.state, LT_SAGA_COMPENSATING);
	assert_int_equal(lt_saga_action(&s), LT_SAGA_ACT_RELEASE_PAYMENT);

	/* refused after an earlier lost answer: the earlier one is released */
	s = sm(LT_SAGA_STARTED, 0, 0);
	step(&s, LT_SAGA_RETRY);
	struct lt_saga_move m = step(&s, LT_SAGA_REFUSED);
	assert_int_equal(s.done, TRIED);
	assert_events(&m, "TOKEN_PURCHASE_COMPENSATING", "PAYMENT_RELEASE_REQUESTED");

	/* a success after a retry starts the next step with fresh tries */
	s = sm(LT_SAGA_STARTED, 0, 0);
	step(&s, LT_SAGA_RETRY);
	step(&s, LT_SAGA_OK);
	assert_int_equal(s.state, LT_SAGA_PAYMENT_RESERVED);
	assert_int_equal(s.attempts, 0);
}

static void test_allocate_outcomes(void **state)
{
	(void)state;
	const unsigned d = TRIED | AUTH;
	struct lt_saga_sm s = retries_then_compensates(sm(LT_SAGA_PAYMENT_RESERVED, d, 0), d);
	assert_int_equal(lt_saga_action(&s), LT_SAGA_ACT_RELEASE_PAYMENT);
	for (enum lt_saga_outcome o = LT_SAGA_REFUSED; o <= LT_SAGA_GONE; o++) {
		s = sm(LT_SAGA_PAYMENT_RESERVED, d, 0);
		struct lt_saga_move m = step(&s, o);
		assert_true(m.compensating);
		assert_events(&m, "TOKEN_PURCHASE_COMPENSATING", "PAYMENT_RELEASE_REQUESTED");
		assert_int_equal(s.done, d);
	}
}

/* Compensation after the allocation: reverse it, then release the
 * payment, then fail — in that order, each retried until it succeeds. */
static void compensate_in_reverse(struct lt_saga_sm s)
{
	assert_int_equal(s.state, LT_SAGA_COMPENSATING);
	assert_int_equal(lt_saga_action(&s), LT_SAGA_ACT_REVERSE_ALLOCATION);
	for (int i = 1; i <= 50; i++) { /* never gives up */
		struct lt_saga_move m = step(&s, i % 2 ? LT_SAGA_RETRY : LT_SAGA_REFUSED);
		assert_true(m.retry);
		assert_int_equal(s.attempts, i);
		assert_int_equal(s.state, LT_SAGA_COMPENSATING);
		assert_int_equal(lt_saga_action(&s), LT_SAGA_ACT_REVERSE_ALLOCATION);
	}
	struct lt_saga_move m = step(&s, LT_SAGA_OK);
	assert_events(&m, "TOKEN_ALLOCATION_REVERSED", "PAYMENT_RELEASE_REQUESTED");
	assert_true(s.done & REV);
	assert_int_equal(s.attempts, 0);
	assert_int_equal(lt_saga_action(&s), LT_SAGA_ACT_RELEASE_PAYMENT);
	for (int i = 1; i <= 50; i++) {
		m = step(&s, i % 2 ? LT_SAGA_RETRY : LT_SAGA_REFUSED);
		assert_true(m.retry);
		assert_int_equal(m.nevents, 0);
		assert_int_equal(lt_saga_action(&s), LT_SAGA_ACT_RELEASE_PAYMENT);
	}
	m = step(&s, LT_SAGA_OK);
	assert_events(&m, "PAYMENT_RELEASED", NULL);
	assert_int_equal(lt_saga_action(&s), LT_SAGA_ACT_FAIL);
	for (int i = 1; i <= 5; i++)
		assert_true(step(&s, LT_SAGA_RETRY).retry);
	m = step(&s, LT_SAGA_OK);
	assert_int_equal(s.state, LT_SAGA_FAILED);
	assert_events(&m, "TOKEN_PURCHASE_FAILED", NULL);
	assert_int_equal(s.done, TRIED | AUTH | ALLOC | REV | REL);
}

/* Compensation after a capture that may have reached the service: the
 * payment is released first (retried until it passes), then the
 * allocation reversed, then the saga fails. */
static void compensate_release_first(struct lt_saga_sm s)
{
	assert_int_equal(s.state, LT_SAGA_COMPENSATING);
	assert_true(s.done & CT);
	assert_int_equal(lt_saga_action(&s), LT_SAGA_ACT_RELEASE_PAYMENT);
	for (int i = 1; i <= 50; i++) {
		struct lt_saga_move m = step(&s, i % 2 ? LT_SAGA_RETRY : LT_SAGA_REFUSED);
		assert_true(m.retry);
		assert_int_equal(m.nevents, 0);
		assert_int_equal(lt_saga_action(&s), LT_SAGA_ACT_RELEASE_PAYMENT);
	}
	struct lt_saga_move m = step(&s, LT_SAGA_OK);
	assert_events(&m, "PAYMENT_RELEASED", NULL);
	assert_false(s.done & REV);
	assert_int_equal(lt_saga_action(&s), LT_SAGA_ACT_REVERSE_ALLOCATION);
	for (int i = 1; i <= 5; i++)
		assert_true(step(&s, LT_SAGA_RETRY).retry);
	m = step(&s, LT_SAGA_OK);
	assert_events(&m, "TOKEN_ALLOCATION_REVERSED", NULL);
	assert_int_equal(lt_saga_action(&s), LT_SAGA_ACT_FAIL);
	m = step(&s, LT_SAGA_OK);
	assert_int_equal(s.state, LT_SAGA_FAILED);
	assert_events(&m, "TOKEN_PURCHASE_FAILED", NULL);
	assert_int_equal(s.done, TRIED | AUTH | ALLOC | CT | REV | REL);
}

/* From COMPENSATING with CAPTURE_TRIED, the release answered 409 (the
 * payment was captured after all): forward to COMPLETED with the one
 * allocation, never reversed, never allocated again. */
static void release_conflict_completes(struct lt_saga_sm s)
{
	assert_int_equal(lt_saga_action(&s), LT_SAGA_ACT_RELEASE_PAYMENT);
	struct lt_saga_move m = step(&s, LT_SAGA_CONFLICT);
	assert_false(m.retry);
	assert_false(m.compensating);
	assert_int_equal(m.step, LT_STEP_SUCCEEDED);
	assert_events(&m, "TOKEN_PAYMENT_CAPTURED", NULL);
	assert_int_equal(s.state, LT_SAGA_TOKENS_ALLOCATED);
	assert_int_equal(s.done, TRIED | AUTH | ALLOC | CT | CAPT);
	assert_int_equal(lt_saga_action(&s), LT_SAGA_ACT_COMPLETE);
	m = step(&s, LT_SAGA_OK);
	assert_events(&m, "TOKEN_PURCHASE_COMPLETED", NULL);
	assert_int_equal(s.state, LT_SAGA_COMPLETED);
	assert_false(s.done & REV);
}

static void test_capture_outcomes(void **state)
{
	(void)state;
	const unsigned d = TRIED | AUTH | ALLOC;
	/* time-outs until the tries run out: the capture may have happened,
	 * so the payment is released first */
	struct lt_saga_sm s = retries_then_compensates(sm(LT_SAGA_TOKENS_ALLOCATED, d, 0), d | CT);
	compensate_release_first(s);
	s = retries_then_compensates(sm(LT_SAGA_TOKENS_ALLOCATED, d, 0), d | CT);
	struct lt_saga_move m = step(&s, LT_SAGA_RETRY); /* a 503 first */
	assert_true(m.retry);
	release_conflict_completes(s);

	/* refused or unknown (404): nothing captured; compensate at once in
	 * the documented order */
	for (enum lt_saga_outcome o = LT_SAGA_REFUSED; o <= LT_SAGA_GONE; o++) {
		if (o == LT_SAGA_CONFLICT)
			continue;
		s = sm(LT_SAGA_TOKENS_ALLOCATED, d, 0);
		m = step(&s, o);
		assert_true(m.compensating);
		assert_int_equal(m.step, LT_STEP_FAILED);
		assert_int_equal(s.done, d);
		assert_events(&m, "TOKEN_PURCHASE_COMPENSATING", NULL);
		compensate_in_reverse(s);
	}
	/* 409: released meanwhile, or a twin capture still in flight:
	 * compensate at once, releasing first */
	s = sm(LT_SAGA_TOKENS_ALLOCATED, d, 0);
	m = step(&s, LT_SAGA_CONFLICT);
	assert_true(m.compensating);
	assert_int_equal(s.done, d | CT);
	assert_events(&m, "TOKEN_PURCHASE_COMPENSATING", "PAYMENT_RELEASE_REQUESTED");
	compensate_release_first(s);
	s = sm(LT_SAGA_TOKENS_ALLOCATED, d, 0);
	step(&s, LT_SAGA_CONFLICT);
	release_conflict_completes(s); /* the twin captured */

	/* a lost answer, then refusals: still released first */
	s = sm(LT_SAGA_TOKENS_ALLOCATED, d, 0);
	step(&s, LT_SAGA_RETRY);
	m = step(&s, LT_SAGA_REFUSED);
	assert_true(m.compensating);
	assert_int_equal(s.done, d | CT);
	release_conflict_completes(s);

	/* unsent tries: one cut off by a restart may precede them */
	s = sm(LT_SAGA_TOKENS_ALLOCATED, d, 0);
	step(&s, LT_SAGA_UNSENT);
	step(&s, LT_SAGA_UNSENT);
	m = step(&s, LT_SAGA_UNSENT);
	assert_true(m.compensating);
	assert_int_equal(s.done, d | CT);
	compensate_release_first(s);

	/* a lost answer, then success: captured, completes */
	s = sm(LT_SAGA_TOKENS_ALLOCATED, d, 0);
	step(&s, LT_SAGA_RETRY);
	m = step(&s, LT_SAGA_OK);
	assert_events(&m, "TOKEN_PAYMENT_CAPTURED", NULL);
	assert_int_equal(s.done, d | CT | CAPT);
	step(&s, LT_SAGA_OK);
	assert_int_equal(s.state, LT_SAGA_COMPLETED);
}

static void test_complete_retried(void **state)
{
	(void)state;
	struct lt_saga_sm s = sm(LT_SAGA_TOKENS_ALLOCATED, TRIED | AUTH | ALLOC | CAPT, 0);
	for (enum lt_saga_outcome o = LT_SAGA_RETRY; o <= LT_SAGA_GONE; o++) {
		for (int i = 0; i < 10; i++) {
			struct lt_saga_move m = step(&s, o);
			assert_true(m.retry);
			assert_false(m.compensating);
			assert_int_equal(s.state, LT_SAGA_TOKENS_ALLOCATED);
		}
	}
	assert_int_equal(s.attempts, 40);
	step(&s, LT_SAGA_OK);
	assert_int_equal(s.state, LT_SAGA_COMPLETED);
	assert_int_equal(s.attempts, 0);
}

static void test_release_outcomes(void **state)
{
	(void)state;
	/* 404 on release: nothing to release, done */
	struct lt_saga_sm s = sm(LT_SAGA_COMPENSATING, TRIED | AUTH, 0);
	struct lt_saga_move m = step(&s, LT_SAGA_GONE);
	assert_events(&m, "PAYMENT_RELEASED", NULL);
	assert_int_equal(lt_saga_action(&s), LT_SAGA_ACT_FAIL);

	/* 404 on the release after a capture try: then reverse and fail */
	s = sm(LT_SAGA_COMPENSATING, TRIED | AUTH | ALLOC | CT, 0);
	m = step(&s, LT_SAGA_GONE);
	assert_events(&m, "PAYMENT_RELEASED", NULL);
	assert_int_equal(lt_saga_action(&s), LT_SAGA_ACT_REVERSE_ALLOCATION);

	/* 409 with no capture try (the allocation reversed, or never made):
	 * not this saga's capture; retried, never allocated again */
	const unsigned cases[] = {TRIED | AUTH | ALLOC | REV, TRIED | AUTH, TRIED};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		s = sm(LT_SAGA_COMPENSATING, cases[i], 0);
		for (int k = 1; k <= 5; k++) {
			m = step(&s, LT_SAGA_CONFLICT);
			assert_true(m.retry);
			assert_false(m.compensating);
			assert_int_equal(m.nevents, 0);
			assert_int_equal(m.step, LT_STEP_RETRYING);
			assert_int_equal(s.state, LT_SAGA_COMPENSATING);
			assert_int_equal(s.done, cases[i]);
			assert_int_equal(s.attempts, k);
			assert_int_equal(lt_saga_action(&s), LT_SAGA_ACT_RELEASE_PAYMENT);
		}
		step(&s, LT_SAGA_OK);
		step(&s, LT_SAGA_OK);
		assert_int_equal(s.state, LT_SAGA_FAILED);
	}
}

static void test_invalid_calls(void **state)
{
	(void)state;
	struct lt_saga_move m;
	struct lt_saga_sm s = sm(LT_SAGA_STARTED, 0, 0);
	assert_int_equal(lt_saga_advance(&s, LT_SAGA_ACT_CAPTURE, LT_SAGA_OK, &m), LT_EINVAL);
	assert_int_equal(lt_saga_advance(&s, LT_SAGA_ACT_NONE, LT_SAGA_OK, &m), LT_EINVAL);
	assert_int_equal(lt_saga_advance(&s, LT_SAGA_ACT_AUTHORIZE, LT_SAGA_OUTCOME_COUNT, &m),
			 LT_EINVAL);
	s = sm(LT_SAGA_COMPLETED, TRIED | AUTH | ALLOC | CAPT, 0);
	assert_int_equal(lt_saga_advance(&s, LT_SAGA_ACT_COMPLETE, LT_SAGA_OK, &m), LT_EINVAL);
	s = sm(LT_SAGA_TOKENS_ALLOCATED, TRIED, 0); /* allocated without a payment */
	assert_false(lt_saga_sm_valid(&s));
	assert_int_equal(lt_saga_advance(&s, LT_SAGA_ACT_CAPTURE, LT_SAGA_OK, &m), LT_EINVAL);
}

static void test_valid_values(void **state)
{
	(void)state;
	struct lt_saga_sm bad[] = {
		sm(LT_SAGA_STATE_COUNT, 0, 0),
		sm(LT_SAGA_STARTED, 1u << 7, 0),
		sm(LT_SAGA_STARTED, CT, 0),
		sm(LT_SAGA_PAYMENT_RESERVED, TRIED | AUTH | CT, 0), /* tried before allocated */
		sm(LT_SAGA_COMPENSATING, TRIED | AUTH | CT, 0),
		/* reversed before the release after a capture try */
		sm(LT_SAGA_COMPENSATING, TRIED | AUTH | ALLOC | CT | REV, 0),
		sm(LT_SAGA_TOKENS_ALLOCATED, TRIED | AUTH | ALLOC | CT | REL, 0),
		sm(LT_SAGA_FAILED, TRIED | AUTH | ALLOC | CT | REL, 0),
		sm(LT_SAGA_STARTED, 0, -1),
		sm(LT_SAGA_STARTED, TRIED | AUTH, 0),
		sm(LT_SAGA_PAYMENT_RESERVED, TRIED, 0),
		sm(LT_SAGA_PAYMENT_RESERVED, AUTH, 0), /* authorized but never tried */
		sm(LT_SAGA_TOKENS_ALLOCATED, TRIED | AUTH | ALLOC | REV, 0),
		sm(LT_SAGA_COMPLETED, TRIED | AUTH | ALLOC, 0),
		sm(LT_SAGA_COMPENSATING, TRIED | AUTH | CAPT, 0),
		sm(LT_SAGA_COMPENSATING, TRIED | AUTH | REV, 0),
		sm(LT_SAGA_FAILED, TRIED | AUTH, 0),
		sm(LT_SAGA_FAILED, TRIED | AUTH | ALLOC | REL, 0),
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_false(lt_saga_sm_valid(&bad[i]));
}

static void test_admin_compensate(void **state)
{
	(void)state;
	struct lt_saga_move m;
	struct lt_saga_sm s = sm(LT_SAGA_STARTED, 0, 2);
	assert_int_equal(lt_saga_compensate(&s, &m), LT_OK);
	assert_true(m.compensating);
	assert_int_equal(m.next.state, LT_SAGA_COMPENSATING);
	assert_int_equal(m.next.attempts, 0);
	assert_events(&m, "TOKEN_PURCHASE_COMPENSATING", NULL);
	assert_int_equal(lt_saga_action(&m.next), LT_SAGA_ACT_FAIL);

	/* allocated, no capture tried: the documented order */
	s = sm(LT_SAGA_TOKENS_ALLOCATED, TRIED | AUTH | ALLOC, 0);
	assert_int_equal(lt_saga_compensate(&s, &m), LT_OK);
	assert_events(&m, "TOKEN_PURCHASE_COMPENSATING", NULL);
	assert_int_equal(m.next.done, TRIED | AUTH | ALLOC);
	compensate_in_reverse(m.next);

	/* after one lost capture: the payment released first; a 409 there
	 * completes with the one allocation, a release reverses and fails */
	s = sm(LT_SAGA_TOKENS_ALLOCATED, TRIED | AUTH | ALLOC, 0);
	step(&s, LT_SAGA_RETRY);
	assert_int_equal(lt_saga_compensate(&s, &m), LT_OK);
	assert_events(&m, "TOKEN_PURCHASE_COMPENSATING", "PAYMENT_RELEASE_REQUESTED");
	assert_int_equal(m.next.done, TRIED | AUTH | ALLOC | CT);
	release_conflict_completes(m.next);
	compensate_release_first(m.next);

	s = sm(LT_SAGA_PAYMENT_RESERVED, TRIED | AUTH, 0);
	assert_int_equal(lt_saga_compensate(&s, &m), LT_OK);
	assert_events(&m, "TOKEN_PURCHASE_COMPENSATING", "PAYMENT_RELEASE_REQUESTED");

	s = sm(LT_SAGA_TOKENS_ALLOCATED, TRIED | AUTH | ALLOC | CAPT, 0);
	assert_int_equal(lt_saga_compensate(&s, &m), LT_EDENIED);
	s = sm(LT_SAGA_COMPENSATING, TRIED, 0);
	assert_int_equal(lt_saga_compensate(&s, &m), LT_EEXIST);
	s = sm(LT_SAGA_COMPLETED, TRIED | AUTH | ALLOC | CAPT, 0);
	assert_int_equal(lt_saga_compensate(&s, &m), LT_EINVAL);
	s = sm(LT_SAGA_FAILED, 0, 0);
	assert_int_equal(lt_saga_compensate(&s, &m), LT_EINVAL);
}

static void test_backoff(void **state)
{
	(void)state;
	assert_int_equal(lt_saga_backoff_ms(1, 30000), LT_SAGA_BACKOFF_BASE_MS);
	assert_int_equal(lt_saga_backoff_ms(2, 30000), 2 * LT_SAGA_BACKOFF_BASE_MS);
	assert_int_equal(lt_saga_backoff_ms(3, 30000), 4 * LT_SAGA_BACKOFF_BASE_MS);
	assert_int_equal(lt_saga_backoff_ms(40, 30000), 30000);
	assert_int_equal(lt_saga_backoff_ms(1000000, 30000), 30000);
	assert_int_equal(lt_saga_backoff_ms(5, 250), 250);
	assert_int_equal(lt_saga_backoff_ms(1, 10), 10);
	assert_int_equal(lt_saga_backoff_ms(1, 0), 1);
	int64_t prev = 0;
	for (int i = 1; i < 100; i++) {
		int64_t v = lt_saga_backoff_ms(i, 30000);
		assert_true(v >= prev && v <= 30000);
		prev = v;
	}
}

/* Every valid value, every outcome of its action: the move is defined and
 * lands on a valid value; a final value never moves. */
static void test_exhaustive(void **state)
{
	(void)state;
	size_t valid = 0;
	for (int st = 0; st < LT_SAGA_STATE_COUNT; st++) {
		for (unsigned d = 0; d <= LT_SAGA_DONE_ALL; d++) {
			for (int att = 0; att <= LT_SAGA_FORWARD_TRIES; att++) {
				struct lt_saga_sm s = sm((enum lt_saga_state)st, d, att);
				if (!lt_saga_sm_valid(&s))
					continue;
				valid++;
				enum lt_saga_action a = lt_saga_action(&s);
				assert_int_equal(a == LT_SAGA_ACT_NONE,
						 lt_saga_state_final(s.state));
				for (int o = 0; o < LT_SAGA_OUTCOME_COUNT; o++) {
					struct lt_saga_move m;
					enum lt_err e =
						lt_saga_advance(&s, a, (enum lt_saga_outcome)o, &m);
					if (a == LT_SAGA_ACT_NONE) {
						assert_int_equal(e, LT_EINVAL);
						continue;
					}
					assert_int_equal(e, LT_OK);
					assert_true(lt_saga_sm_valid(&m.next));
					/* what was done stays done */
					assert_int_equal(m.next.done & s.done, s.done);
					/* a captured payment is never compensated */
					if (s.done & CAPT)
						assert_int_not_equal(m.next.state,
								     LT_SAGA_COMPENSATING);
					/* at most one allocation: never allocated again
					 * once allocated or reversed */
					if (a == LT_SAGA_ACT_ALLOCATE)
						assert_false(s.done & (ALLOC | REV));
					/* a reversed saga is never captured nor completed;
					 * a captured one never reversed */
					if (s.done & REV)
						assert_false(m.next.done & CAPT);
					if (m.next.done & CAPT)
						assert_false(m.next.done & REV);
					if (m.next.state == LT_SAGA_COMPLETED)
						assert_true((m.next.done & (ALLOC | REV)) == ALLOC);
					/* after a capture try the payment is released
					 * before the allocation is reversed */
					if (a == LT_SAGA_ACT_REVERSE_ALLOCATION)
						assert_true(!(s.done & CT) || (s.done & REL));
					assert_true(m.nevents <= LT_SAGA_EVENTS_MAX);
					assert_true(m.retry || m.next.attempts == 0);
				}
			}
		}
	}
	assert_true(valid > 40);
}

/* A small deterministic generator (the C library one is banned). */
static uint32_t next_rand(uint64_t *x)
{
	*x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(*x >> 33);
}

/* The place of an undo action in compensation's order: after a capture
 * try release, reverse, fail; else reverse, release, fail. */
static int undo_rank(enum lt_saga_action a, unsigned done)
{
	switch (a) {
	case LT_SAGA_ACT_REVERSE_ALLOCATION: return (done & CT) ? 1 : 0;
	case LT_SAGA_ACT_RELEASE_PAYMENT: return (done & CT) ? 0 : 1;
	case LT_SAGA_ACT_FAIL: return 2;
	default: fail_msg("not an undo action: %d", (int)a);
	}
	return -1;
}

/* Seeded random walks with random outcomes (successes more likely, so a
 * walk ends): every walk ends final; in COMPENSATING, the undo actions come
 * in their order; the tokens are allocated at most once (never again after
 * a reversal) and reversed at most once; a FAILED saga has undone all it
 * did; a COMPLETED one has its payment captured and its one allocation,
 * never reversed. */
static void test_random_walks(void **state)
{
	(void)state;
	uint64_t seed = 42;
	size_t completed = 0, failed = 0, completed_after_compensating = 0;
	for (int walk = 0; walk < 20000; walk++) {
		struct lt_saga_sm s = sm(LT_SAGA_STARTED, 0, 0);
		int last_rank = -1, allocs = 0, reversals = 0;
		bool compensated = false;
		int steps = 0;
		while (!lt_saga_state_final(s.state)) {
			assert_true(++steps < 1000);
			uint32_t r = next_rand(&seed) % 11;
			enum lt_saga_outcome o = r < 5	  ? LT_SAGA_OK
						 : r < 7  ? LT_SAGA_RETRY
						 : r < 8  ? LT_SAGA_REFUSED
						 : r < 9  ? LT_SAGA_CONFLICT
						 : r < 10 ? LT_SAGA_GONE
							  : LT_SAGA_UNSENT;
			enum lt_saga_action a = lt_saga_action(&s);
			if (s.state == LT_SAGA_COMPENSATING) {
				compensated = true;
				int rank = undo_rank(a, s.done);
				assert_true(rank >= last_rank);
				last_rank = rank;
			} else {
				last_rank = -1;
			}
			step(&s, o);
			if (o == LT_SAGA_OK && a == LT_SAGA_ACT_ALLOCATE)
				allocs++;
			if (o == LT_SAGA_OK && a == LT_SAGA_ACT_REVERSE_ALLOCATION)
				reversals++;
			assert_true(allocs <= 1);
			assert_true(reversals <= allocs);
		}
		if (s.state == LT_SAGA_COMPLETED) {
			completed++;
			completed_after_compensating += compensated;
			assert_true(s.done & CAPT);
			assert_true(s.done & ALLOC);
			assert_false(s.done & REV);
			assert_int_equal(allocs, 1);
			assert_int_equal(reversals, 0);
		} else {
			failed++;
			assert_false(s.done & CAPT);
			assert_int_equal(allocs, reversals);
			if (s.done & ALLOC)
				assert_true(s.done & REV);
			if (s.done & TRIED)
				assert_true(s.done & REL);
		}
	}
	assert_true(completed > 100 && failed > 100);
	assert_true(completed_after_compensating > 10); /* the 409 release path ran */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_action_of_each_state),
		cmocka_unit_test(test_happy_path),
		cmocka_unit_test(test_authorize_outcomes),
		cmocka_unit_test(test_allocate_outcomes),
		cmocka_unit_test(test_capture_outcomes),
		cmocka_unit_test(test_complete_retried),
		cmocka_unit_test(test_release_outcomes),
		cmocka_unit_test(test_invalid_calls),
		cmocka_unit_test(test_valid_values),
		cmocka_unit_test(test_admin_compensate),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_exhaustive),
		cmocka_unit_test(test_random_walks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
