/*
 * test_saga_payment.c — src/saga/payment.c: the strict parser of the
 * payment service's answers (valid answers, every member missing, of the
 * wrong type or size, repeated; trailing bytes, non-objects), the outcome
 * of every kind of answer, and the client against the real payment stub
 * (lt_stubs_start on 127.0.0.1:0): authorize, capture and release with
 * their idempotent replays, the 409s and 404s, an injected 503 and 402
 * (fault plans), a delay past the deadline, a malformed answer replayed
 * well, a closed port, a wrong path, and a base URL that changes.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conf/config.h"
#include "saga/payment.h"
#include "stubs/stub_int.h"
#include "stubs/stubs.h"
#include "util/log.h"
#include "util/uuid.h"

/* ---- the parser ---- */

static enum lt_err parse(const char *s, struct lt_pay_answer *a)
{
	return lt_payment_parse_answer(s, strlen(s), a);
}

static void test_parse_valid(void **state)
{
	(void)state;
	struct lt_pay_answer a;
	assert_int_equal(parse("{\"paymentId\":\"p-1\",\"status\":\"AUTHORIZED\",\"amountMicros\":"
			       "2000,\"currency\":\"USD\",\"reference\":\"r\"}",
			       &a),
			 LT_OK);
	assert_string_equal(a.payment_id, "p-1");
	assert_int_equal(a.status, LT_PAY_AUTHORIZED);
	assert_int_equal(a.amount_micros, 2000);
	assert_string_equal(a.currency, "USD");
	assert_true(a.has_reference);
	assert_string_equal(a.reference, "r");

	assert_int_equal(parse(" {\"status\":\"CAPTURED\",\"paymentId\":\"x\",\"currency\":\"EUR\","
			       "\"amountMicros\":0,\"reference\":null,\"extra\":[1,{}]} ",
			       &a),
			 LT_OK);
	assert_int_equal(a.status, LT_PAY_CAPTURED);
	assert_false(a.has_reference);
	assert_int_equal(parse("{\"status\":\"RELEASED\",\"paymentId\":\"x\",\"currency\":\"E\","
			       "\"amountMicros\":9007199254740991}",
			       &a),
			 LT_OK);
	assert_int_equal(a.status, LT_PAY_RELEASED);
	assert_int_equal(a.amount_micros, INT64_C(9007199254740991));
	assert_false(a.has_reference);
	/* an empty reference is a reference */
	assert_int_equal(parse("{\"status\":\"RELEASED\",\"paymentId\":\"x\",\"currency\":\"E\","
			       "\"amountMicros\":1,\"reference\":\"\"}",
			       &a),
			 LT_OK);
	assert_true(a.has_reference);
}

static void test_parse_invalid(void **state)
{
	(void)state;
	static const char *const syntax[] = {
		"",
		"null",
		"[]",
		"\"x\"",
		"{",
		"{\"paymentId\":\"p\"} x",
		"{\"paymentId\":\"p\",}",
		"{'paymentId':'p'}",
	};
	static const char *const invalid[] = {
		/* each required member missing */
		"{\"status\":\"AUTHORIZED\",\"amountMicros\":1,\"currency\":\"USD\"}",
		"{\"paymentId\":\"p\",\"amountMicros\":1,\"currency\":\"USD\"}",
		"{\"paymentId\":\"p\",\"status\":\"AUTHORIZED\",\"currency\":\"USD\"}",
		"{\"paymentId\":\"p\",\"status\":\"AUTHORIZED\",\"amountMicros\":1}",
		/* types and sizes */
		"{\"paymentId\":1,\"status\":\"AUTHORIZED\",\"amountMicros\":1,\"currency\":"
		"\"USD\"}",
		"{\"paymentId\":\"\",\"status\":\"AUTHORIZED\",\"amountMicros\":1,\"currency\":"
		"\"USD\"}",
		"{\"paymentId\":\"a b\",\"status\":\"AUTHORIZED\",\"amountMicros\":1,\"currency\":"
		"\"USD\"}",
		"{\"paymentId\":"
		"\"0123456789012345678901234567890123456789012345678901234567890123\","
		"\"status\":\"AUTHORIZED\",\"amountMicros\":1,\"currency\":\"USD\"}",
		"{\"paymentId\":\"p\",\"status\":\"authorized\",\"amountMicros\":1,\"currency\":"
		"\"USD\"}",
		"{\"paymentId\":\"p\",\"status\":\"VOID\",\"amountMicros\":1,\"currency\":\"USD\"}",
		"{\"paymentId\":\"p\",\"status\":null,\"amountMicros\":1,\"currency\":\"USD\"}",
		"{\"paymentId\":\"p\",\"status\":\"AUTHORIZED\",\"amountMicros\":-1,\"currency\":"
		"\"USD\"}",
		"{\"paymentId\":\"p\",\"status\":\"AUTHORIZED\",\"amountMicros\":1.5,\"currency\":"
		"\"USD\"}",
		"{\"paymentId\":\"p\",\"status\":\"AUTHORIZED\",\"amountMicros\":\"1\","
		"\"currency\":"
		"\"USD\"}",
		"{\"paymentId\":\"p\",\"status\":\"AUTHORIZED\",\"amountMicros\":1e300,"
		"\"currency\":"
		"\"USD\"}",
		"{\"paymentId\":\"p\",\"status\":\"AUTHORIZED\",\"amountMicros\":9007199254740992,"
		"\"currency\":\"USD\"}",
		"{\"paymentId\":\"p\",\"status\":\"AUTHORIZED\",\"amountMicros\":1,\"currency\":"
		"\"\"}",
		"{\"paymentId\":\"p\",\"status\":\"AUTHORIZED\",\"amountMicros\":1,\"currency\":"
		"\"SIXTEEN-BYTES-XX\"}",
		"{\"paymentId\":\"p\",\"status\":\"AUTHORIZED\",\"amountMicros\":1,\"currency\":"
		"\"USD\","
		"\"reference\":7}",
		/* repeated members */
		"{\"paymentId\":\"p\",\"paymentId\":\"q\",\"status\":\"AUTHORIZED\","
		"\"amountMicros\":1,"
		"\"currency\":\"USD\"}",
		"{\"paymentId\":\"p\",\"status\":\"AUTHORIZED\",\"amountMicros\":1,"
		"\"amountMicros\":2,"
		"\"currency\":\"USD\"}",
		"{\"paymentId\":\"p\",\"status\":\"AUTHORIZED\",\"amountMicros\":1,\"currency\":"
		"\"USD\","
		"\"reference\":\"a\",\"reference\":\"b\"}",
	};
	struct lt_pay_answer a;
	for (size_t i = 0; i < sizeof syntax / sizeof syntax[0]; i++) {
		if (parse(syntax[i], &a) != LT_ESYNTAX)
			fail_msg("accepted or misjudged: %s", syntax[i]);
		assert_string_equal(a.payment_id, "");
	}
	for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
		if (parse(invalid[i], &a) != LT_EINVAL)
			fail_msg("not LT_EINVAL: %s", invalid[i]);
		assert_string_equal(a.payment_id, "");
	}
	/* a reference over 255 bytes */
	char big[600];
	int n = snprintf(big, sizeof big,
			 "{\"paymentId\":\"p\",\"status\":\"AUTHORIZED\",\"amountMicros\":1,"
			 "\"currency\":\"USD\",\"reference\":\"");
	memset(big + n, 'r', 256);
	snprintf(big + n + 256, sizeof big - (size_t)n - 256, "\"}");
	assert_int_equal(parse(big, &a), LT_EINVAL);
	big[n + 255] = '"';
	big[n + 256] = '}';
	big[n + 257] = '\0';
	assert_int_equal(parse(big, &a), LT_OK);
	assert_int_equal(strlen(a.reference), 255);
	assert_int_equal(lt_payment_parse_answer(NULL, 0, &a), LT_ESYNTAX);
	/* an embedded NUL is not JSON */
	assert_int_equal(lt_payment_parse_answer("{}\0{}", 5, &a), LT_ESYNTAX);
}

static void test_outcomes(void **state)
{
	(void)state;
	const enum lt_pay_op ops[] = {LT_PAY_AUTHORIZE, LT_PAY_CAPTURE, LT_PAY_RELEASE};
	const enum lt_err lost[] = {LT_ETIMEOUT, LT_ECLOSED, LT_EPROTO, LT_ETOOBIG, LT_EIO};
	for (size_t i = 0; i < 3; i++) {
		enum lt_pay_op op = ops[i];
		for (size_t k = 0; k < sizeof lost / sizeof lost[0]; k++)
			assert_int_equal(lt_payment_outcome(op, lost[k], 0), LT_SAGA_RETRY);
		assert_int_equal(lt_payment_outcome(op, LT_ECONNECT, 0), LT_SAGA_UNSENT);
		assert_int_equal(lt_payment_outcome(op, LT_ETLS, 0), LT_SAGA_UNSENT);
		assert_int_equal(lt_payment_outcome(op, LT_OK, 200), LT_SAGA_OK);
		assert_int_equal(lt_payment_outcome(op, LT_OK, 201), LT_SAGA_OK);
		for (int st = 500; st <= 599; st++)
			assert_int_equal(lt_payment_outcome(op, LT_OK, st), LT_SAGA_RETRY);
		assert_int_equal(lt_payment_outcome(op, LT_OK, 408), LT_SAGA_RETRY);
		assert_int_equal(lt_payment_outcome(op, LT_OK, 425), LT_SAGA_RETRY);
		assert_int_equal(lt_payment_outcome(op, LT_OK, 429), LT_SAGA_RETRY);
		assert_int_equal(lt_payment_outcome(op, LT_OK, 400), LT_SAGA_REFUSED);
		assert_int_equal(lt_payment_outcome(op, LT_OK, 401), LT_SAGA_REFUSED);
		assert_int_equal(lt_payment_outcome(op, LT_OK, 402), LT_SAGA_REFUSED);
		assert_int_equal(lt_payment_outcome(op, LT_OK, 422), LT_SAGA_REFUSED);
		assert_int_equal(lt_payment_outcome(op, LT_OK, 302), LT_SAGA_REFUSED);
	}
	assert_int_equal(lt_payment_outcome(LT_PAY_CAPTURE, LT_OK, 409), LT_SAGA_CONFLICT);
	assert_int_equal(lt_payment_outcome(LT_PAY_RELEASE, LT_OK, 409), LT_SAGA_CONFLICT);
	assert_int_equal(lt_payment_outcome(LT_PAY_CAPTURE, LT_OK, 404), LT_SAGA_GONE);
	assert_int_equal(lt_payment_outcome(LT_PAY_RELEASE, LT_OK, 404), LT_SAGA_GONE);
	assert_int_equal(lt_payment_outcome(LT_PAY_AUTHORIZE, LT_OK, 409), LT_SAGA_RETRY);
	assert_int_equal(lt_payment_outcome(LT_PAY_AUTHORIZE, LT_OK, 404), LT_SAGA_REFUSED);
	assert_string_equal(lt_pay_op_name(LT_PAY_RELEASE), "release");
}

/* ---- against the stub ---- */

struct gw {
	struct lt_config cfg;
	struct lt_log log;
	struct lt_stubs *s;
	struct lt_payment *p;
	char base[128];
};

static int setup(void **state)
{
	if (sodium_init() < 0)
		return -1;
	struct gw *g = calloc(1, sizeof *g);
	if (!g)
		return -1;
	lt_config_defaults(&g->cfg);
	snprintf(g->cfg.stubs_listen, sizeof g->cfg.stubs_listen, "127.0.0.1:0");
	g->cfg.stubs_threads = 8;
	lt_log_init(&g->log, STDERR_FILENO, LT_LOG_ERROR, false);
	char why[512];
	if (lt_stubs_start(&g->cfg, &g->log, &g->s, why, sizeof why) || lt_payment_new(&g->p)) {
		fprintf(stderr, "setup: %s\n", why);
		free(g);
		return -1;
	}
	snprintf(g->base, sizeof g->base, "http://127.0.0.1:%d/payment/v1", lt_stubs_port(g->s));
	*state = g;
	return 0;
}

static int teardown(void **state)
{
	struct gw *g = *state;
	lt_payment_free(g->p);
	lt_stubs_stop(g->s);
	lt_log_release(&g->log);
	free(g);
	return 0;
}

static void plan(struct gw *g, const char *match, int status, int64_t delay_ms, bool malformed,
		 int64_t count)
{
	struct lt_stub_plan p;
	memset(&p, 0, sizeof p);
	snprintf(p.match, sizeof p.match, "%s", match);
	lt_stub_fault_none(&p.fault);
	p.fault.status = status;
	p.fault.delay_ms = delay_ms;
	p.fault.malformed = malformed;
	p.count = count;
	assert_int_equal(lt_stub_plans_push(&g->s->plans, &p), LT_OK);
}

static struct lt_pay_call call(struct gw *g, enum lt_pay_op op, const char *saga, const char *pid,
			       int64_t amount)
{
	struct lt_pay_call c = {.op = op,
				.base_url = g->base,
				.timeout_ms = 2000,
				.saga_id = saga,
				.payment_id = pid,
				.amount_micros = amount};
	lt_payment_call(g->p, &c);
	return c;
}

static void test_client_flow(void **state)
{
	struct gw *g = *state;
	char saga[LT_UUID_LEN], pid[LT_PAY_ID_MAX + 1];
	lt_uuid_v4(saga);
	struct lt_pay_call c = call(g, LT_PAY_AUTHORIZE, saga, NULL, 2500);
	assert_int_equal(c.outcome, LT_SAGA_OK);
	assert_int_equal(c.status, 200);
	assert_int_equal(c.answer.status, LT_PAY_AUTHORIZED);
	assert_int_equal(c.answer.amount_micros, 2500);
	assert_string_equal(c.answer.reference, saga);
	snprintf(pid, sizeof pid, "%s", c.answer.payment_id);
	/* the same key again: the same payment, no second one */
	c = call(g, LT_PAY_AUTHORIZE, saga, NULL, 2500);
	assert_int_equal(c.outcome, LT_SAGA_OK);
	assert_string_equal(c.answer.payment_id, pid);
	c = call(g, LT_PAY_CAPTURE, saga, pid, 0);
	assert_int_equal(c.outcome, LT_SAGA_OK);
	assert_int_equal(c.answer.status, LT_PAY_CAPTURED);
	c = call(g, LT_PAY_CAPTURE, saga, pid, 0);
	assert_int_equal(c.outcome, LT_SAGA_OK);
	/* releasing a captured payment: 409 */
	c = call(g, LT_PAY_RELEASE, saga, pid, 0);
	assert_int_equal(c.outcome, LT_SAGA_CONFLICT);
	assert_int_equal(c.status, 409);
	assert_non_null(strstr(c.why, "CAPTURED"));

	/* authorize then release; a capture after it is 409 */
	lt_uuid_v4(saga);
	c = call(g, LT_PAY_AUTHORIZE, saga, NULL, 1);
	assert_int_equal(c.outcome, LT_SAGA_OK);
	snprintf(pid, sizeof pid, "%s", c.answer.payment_id);
	c = call(g, LT_PAY_RELEASE, saga, pid, 0);
	assert_int_equal(c.outcome, LT_SAGA_OK);
	assert_int_equal(c.answer.status, LT_PAY_RELEASED);
	c = call(g, LT_PAY_CAPTURE, saga, pid, 0);
	assert_int_equal(c.outcome, LT_SAGA_CONFLICT);

	/* an unknown payment, and none at all */
	lt_uuid_v4(saga);
	c = call(g, LT_PAY_CAPTURE, saga, "00000000-0000-4000-8000-000000000000", 0);
	assert_int_equal(c.outcome, LT_SAGA_GONE);
	assert_int_equal(c.status, 404);
	c = call(g, LT_PAY_RELEASE, saga, "", 0);
	assert_int_equal(c.outcome, LT_SAGA_GONE);
	assert_int_equal(c.status, 0);
}

static void test_client_faults(void **state)
{
	struct gw *g = *state;
	char saga[LT_UUID_LEN], pid[LT_PAY_ID_MAX + 1];
	lt_uuid_v4(saga);
	/* an injected 503 never reached the service: retry, then it works */
	plan(g, "/payment/v1/authorize", 503, 0, false, 1);
	struct lt_pay_call c = call(g, LT_PAY_AUTHORIZE, saga, NULL, 10);
	assert_int_equal(c.outcome, LT_SAGA_RETRY);
	assert_int_equal(c.status, 503);
	c = call(g, LT_PAY_AUTHORIZE, saga, NULL, 10);
	assert_int_equal(c.outcome, LT_SAGA_OK);
	snprintf(pid, sizeof pid, "%s", c.answer.payment_id);
	/* declined: refused */
	plan(g, "/payment/v1/capture", 402, 0, false, 1);
	c = call(g, LT_PAY_CAPTURE, saga, pid, 0);
	assert_int_equal(c.outcome, LT_SAGA_REFUSED);
	assert_int_equal(c.status, 402);
	/* slower than the deadline: retry (it happens later at the stub) */
	plan(g, "/payment/v1/capture", 0, 1500, false, 1);
	struct lt_pay_call slow = {.op = LT_PAY_CAPTURE,
				   .base_url = g->base,
				   .timeout_ms = 200,
				   .saga_id = saga,
				   .payment_id = pid};
	lt_payment_call(g->p, &slow);
	assert_int_equal(slow.outcome, LT_SAGA_RETRY);
	assert_int_equal(slow.status, 0);
	assert_non_null(strstr(slow.why, "capture: "));
	/* a malformed answer after the effect: retry; the replay parses */
	lt_uuid_v4(saga);
	plan(g, "/payment/v1/authorize", 0, 0, true, 1);
	c = call(g, LT_PAY_AUTHORIZE, saga, NULL, 77);
	assert_int_equal(c.outcome, LT_SAGA_RETRY);
	assert_int_equal(c.status, 200);
	assert_non_null(strstr(c.why, "malformed"));
	c = call(g, LT_PAY_AUTHORIZE, saga, NULL, 77);
	assert_int_equal(c.outcome, LT_SAGA_OK);
	assert_int_equal(c.answer.amount_micros, 77);
	/* the same key asked for another amount: the answer does not match */
	c = call(g, LT_PAY_AUTHORIZE, saga, NULL, 78);
	assert_int_equal(c.outcome, LT_SAGA_RETRY);
	assert_non_null(strstr(c.why, "another amount"));
}

static void test_client_urls(void **state)
{
	struct gw *g = *state;
	char saga[LT_UUID_LEN];
	lt_uuid_v4(saga);
	/* a wrong path: the stub's 404 for an authorize is final */
	char wrong[160];
	snprintf(wrong, sizeof wrong, "http://127.0.0.1:%d/nowhere", lt_stubs_port(g->s));
	struct lt_pay_call c = {.op = LT_PAY_AUTHORIZE,
				.base_url = wrong,
				.timeout_ms = 2000,
				.saga_id = saga,
				.amount_micros = 1};
	lt_payment_call(g->p, &c);
	assert_int_equal(c.outcome, LT_SAGA_REFUSED);
	assert_int_equal(c.status, 404);
	/* and back to the right one (the pool follows the URL) */
	c = call(g, LT_PAY_AUTHORIZE, saga, NULL, 1);
	assert_int_equal(c.outcome, LT_SAGA_OK);
	/* nothing listening: not sent, may pass later */
	c.base_url = "http://127.0.0.1:1/payment/v1";
	lt_payment_call(g->p, &c);
	assert_non_null(strstr(c.why, "connection failed"));
	assert_int_equal(c.outcome, LT_SAGA_UNSENT);
	assert_int_equal(c.status, 0);
	/* not a URL: not sent (the configuration may be fixed), with a reason */
	c.base_url = "ftp://x";
	lt_payment_call(g->p, &c);
	assert_int_equal(c.outcome, LT_SAGA_UNSENT);
	assert_non_null(strstr(c.why, "unusable"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_outcomes),
		cmocka_unit_test_setup_teardown(test_client_flow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_faults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_urls, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
