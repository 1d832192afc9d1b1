/*
 * payment.h — the purchase saga's client of the payment service
 * ([payment] base_url; the built-in stub is src/stubs/stub_payment.c):
 *
 *   POST {base}/authorize {amountMicros, currency, reference}
 *   POST {base}/capture   {paymentId}
 *   POST {base}/release   {paymentId}
 *
 * each answered 200 {paymentId, status, amountMicros, currency, reference}.
 * Every call carries Idempotency-Key "<sagaId>:<op>" (authorize, capture,
 * release), so a call repeated after a lost answer, a crash or a restart is
 * answered again without a second effect: retries never double-charge.
 *
 * Outcomes (machine.h): a 2xx whose body parses and matches the request is
 * LT_SAGA_OK; no connection (LT_ECONNECT: connect failed before anything
 * was sent) is LT_SAGA_UNSENT (nothing happened); a time-out, a connection
 * lost after sending (also when upstream's resend of it could not
 * connect), a TLS error (it may come after the request was written), a
 * malformed or mismatching answer, 408, 425, 429 and 5xx are
 * LT_SAGA_RETRY (the call may have taken effect); 409 on capture or
 * release is LT_SAGA_CONFLICT (the payment is
 * already released or captured), 404 on them LT_SAGA_GONE; any other
 * status is LT_SAGA_REFUSED.  lt_payment_outcome and
 * lt_payment_parse_answer are pure (tests/fuzz/fuzz_payment_answer.c).
 *
 * The client is an HTTP/1.1 keep-alive pool (provider/upstream.h) for the
 * current base_url, rebuilt when a reload changes it; https:// verifies the
 * server against the system CA bundle.  Threads: calls may run
 * concurrently; the current pool is reference-counted under `lock`.
 * Ownership: lt_payment_free frees the client once no call is running.
 */
#ifndef LT_SAGA_PAYMENT_H
#define LT_SAGA_PAYMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "saga/machine.h"
#include "util/err.h"

#define LT_PAY_ID_MAX 63
#define LT_PAY_CURRENCY_MAX 15
#define LT_PAY_REFERENCE_MAX 255
#define LT_PAY_ANSWER_MAX (64 * 1024)
#define LT_PAY_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

enum lt_pay_op { LT_PAY_AUTHORIZE, LT_PAY_CAPTURE, LT_PAY_RELEASE };
enum lt_pay_status { LT_PAY_AUTHORIZED, LT_PAY_CAPTURED, LT_PAY_RELEASED };

/* "authorize", "capture", "release". */
const char *lt_pay_op_name(enum lt_pay_op op);

/* A 200 answer of the payment service. */
struct lt_pay_answer {
	char payment_id[LT_PAY_ID_MAX + 1]; /* 1-63 printable ASCII, no space */
	enum lt_pay_status status;
	int64_t amount_micros; /* 0 .. 2^53-1 */
	char currency[LT_PAY_CURRENCY_MAX + 1];
	bool has_reference;
	char reference[LT_PAY_REFERENCE_MAX + 1];
};

/* Parse body[0..n) strictly: RFC 8259 JSON, an object holding paymentId,
 * status (AUTHORIZED, CAPTURED or RELEASED), amountMicros (an integer >=
 * 0), currency (1-15 bytes) and optionally reference (a string of at most
 * 255 bytes, or null), each at most once and of its type; other members
 * are ignored.  LT_ESYNTAX for text that is not such an object, LT_EINVAL
 * for a member of the wrong type or size (out untouched beyond zeroing). */
enum lt_err lt_payment_parse_answer(const char *body, size_t n, struct lt_pay_answer *out);

/* The outcome of a call that ended with transport error `err` (LT_OK: an
 * answer with HTTP `status` arrived). */
enum lt_saga_outcome lt_payment_outcome(enum lt_pay_op op, enum lt_err err, int status);

struct lt_payment;
enum lt_err lt_payment_new(struct lt_payment **out);
void lt_payment_free(struct lt_payment *p);

struct lt_pay_call {
	enum lt_pay_op op;
	const char *base_url;	/* [payment] base_url */
	int64_t timeout_ms;	/* [payment] timeout_ms: the whole call */
	const char *saga_id;	/* idempotency key prefix and authorize reference */
	const char *payment_id; /* capture, release */
	int64_t amount_micros;	/* authorize */
	/* out */
	enum lt_saga_outcome outcome;
	int status;		     /* HTTP status, 0 if none arrived */
	struct lt_pay_answer answer; /* valid when outcome is LT_SAGA_OK */
	char why[256];		     /* what happened, for the step log */
};

/* Make the call; never fails as a function: c->outcome says how it went. */
void lt_payment_call(struct lt_payment *p, struct lt_pay_call *c);

#endif
