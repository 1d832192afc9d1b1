/*
 * test_saga_payment.c — src/saga/payment.c: the strict parser of the
 * payment service's answers (valid answers, every member missing, of the
 * wrong type or size, repeated; trailing bytes, non-objects), the outcome
 * of every kind of answer, and the client against the real payment stub
 * (lt_stubs_start on 127.0.0.1:0): authorize, capture and release with
 * their idempotent replays, the 409s and 404s, an injected 503 and 402
 * (fault plans), a delay past the deadline, a malformed answer replayed
 * well, a closed port, a wrong path, and a base URL that changes; and the
 * keep-alive resend whose connect fails (the first copy was sent: upstream
 * says LT_ECLOSED, the call may have taken effect, never LT_SAGA_UNSENT).
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/config.h"
#include "provider/upstream.h"
#include "saga/payment.h"
#include "stubs/stub_int.h"
#include "stubs/stubs.h"
#include "util/clock.h"
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
		/* only a connect error says nothing was sent */
		assert_int_equal(lt_payment_outcome(op, LT_ECONNECT, 0), LT_SAGA_UNSENT);
		/* a TLS error may come after the request was written; a lost
		 * connection (also a resend that could not connect) or a
		 * time-out: it may have happened */
		assert_int_equal(lt_payment_outcome(op, LT_ETLS, 0), LT_SAGA_RETRY);
		assert_int_equal(lt_payment_outcome(op, LT_ECLOSED, 0), LT_SAGA_RETRY);
		assert_int_equal(lt_payment_outcome(op, LT_ETIMEOUT, 0), LT_SAGA_RETRY);
		assert_int_equal(lt_payment_outcome(op, LT_EIO, 0), LT_SAGA_RETRY);
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

/* ---- the keep-alive resend that cannot connect ---- */

/* One connection: answers its first request (keep-alive), reads the
 * second, then closes the listener (nothing accepts any more) and the
 * connection without answering. */
struct one_srv {
	int lfd;
	uint16_t port;
	pthread_t th;
	int requests; /* complete request heads read */
};

/* Read until a request head ends ("\r\n\r\n"; the test sends no
 * body); false on EOF or error. */
static bool read_head(int fd)
{
	char buf[4096];
	size_t n = 0;
	while (n < sizeof buf) {
		ssize_t k = read(fd, buf + n, sizeof buf - n);
		if (k <= 0)
			return false;
		n += (size_t)k;
		for (size_t i = 3; i < n; i++)
			if (!memcmp(buf + i - 3, "\r\n\r\n", 4))
				return true;
	}
	return false;
}

static void *one_srv_main(void *arg)
{
	struct one_srv *sv = arg;
	int fd = accept(sv->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	if (read_head(fd)) {
		sv->requests++;
		if (write(fd, ok, sizeof ok - 1) == (ssize_t)(sizeof ok - 1) && read_head(fd))
			sv->requests++;
	}
	close(sv->lfd); /* the resend's connect is refused */
	sv->lfd = -1;
	close(fd);
	return NULL;
}

static void test_resend_connect_fails(void **state)
{
	(void)state;
	struct one_srv sv = {.lfd = socket(AF_INET, SOCK_STREAM, 0)};
	assert_true(sv.lfd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(sv.lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(sv.lfd, 4), 0);
	socklen_t sl = sizeof sa;
	assert_int_equal(getsockname(sv.lfd, (struct sockaddr *)&sa, &sl), 0);
	sv.port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&sv.th, NULL, one_srv_main, &sv), 0);

	char url[64], why[256];
	snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)sv.port);
	struct lt_upstream_opts o = {.pool_max = 2, .idle_timeout_ns = 60 * LT_NS_PER_S};
	assert_int_equal(lt_url_parse(url, &o.url, why, sizeof why), LT_OK);
	struct lt_upstream *u = NULL;
	assert_int_equal(lt_upstream_new(&o, &u), LT_OK);
	int64_t now = lt_clock_mono_ns();
	struct lt_upstream_req rq = {
		.method = "POST",
		.path = "/payment/v1/capture",
		.connect_deadline_ns = now + 10 * LT_NS_PER_S,
		.first_byte_deadline_ns = now + 20 * LT_NS_PER_S,
		.deadline_ns = now + 30 * LT_NS_PER_S,
		.max_header = 8192,
		.max_body = 65536,
	};
	struct lt_upstream_resp r;
	assert_int_equal(lt_upstream_do(u, &rq, &r, NULL, NULL), LT_OK);
	assert_int_equal(r.status, 200);
	lt_upstream_resp_free(&r);
	/* the second goes out on the kept connection, which is closed with no
	 * answer; the resend finds nothing listening */
	enum lt_err e = lt_upstream_do(u, &rq, &r, NULL, NULL);
	assert_int_equal(pthread_join(sv.th, NULL), 0);
	assert_int_equal(sv.requests, 2); /* the first copy did reach the server */
	assert_int_equal(e, LT_ECLOSED);  /* not LT_ECONNECT: it was sent */
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.why, "closed the connection before responding"));
	assert_non_null(strstr(r.why, "the resend failed"));
	assert_int_equal(lt_payment_outcome(LT_PAY_AUTHORIZE, e, 0), LT_SAGA_RETRY);
	assert_int_equal(lt_payment_outcome(LT_PAY_CAPTURE, e, 0), LT_SAGA_RETRY);
	lt_upstream_resp_free(&r);

	/* a fresh connect that fails is still LT_ECONNECT (nothing sent) */
	now = lt_clock_mono_ns();
	rq.connect_deadline_ns = now + 10 * LT_NS_PER_S;
	rq.first_byte_deadline_ns = now + 20 * LT_NS_PER_S;
	rq.deadline_ns = now + 30 * LT_NS_PER_S;
	e = lt_upstream_do(u, &rq, &r, NULL, NULL);
	assert_int_equal(e, LT_ECONNECT);
	assert_int_equal(lt_payment_outcome(LT_PAY_CAPTURE, e, 0), LT_SAGA_UNSENT);
	lt_upstream_resp_free(&r);
	lt_upstream_free(u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_outcomes),
		cmocka_unit_test(test_resend_connect_fails),
		cmocka_unit_test_setup_teardown(test_client_flow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_faults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_urls, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
