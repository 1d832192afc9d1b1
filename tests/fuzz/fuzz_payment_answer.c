/*
 * fuzz_payment_answer.c — lt_payment_parse_answer (the payment service's
 * answers, which the purchase saga trusts to move money and tokens) on
 * arbitrary bytes.
 *
 * Checks, beyond "no crash and no sanitizer report":
 *   - the result is LT_OK, LT_ESYNTAX or LT_EINVAL, and the same on a
 *     second parse;
 *   - a refusal leaves the answer zeroed (no half-parsed payment id);
 *   - an accepted input is strict JSON (lt_json_check agrees);
 *   - an accepted answer has sane fields: payment id 1-63 printable ASCII
 *     without spaces, a known status, amount 0..2^53-1, currency 1-15
 *     bytes, reference at most 255 bytes;
 *   - the answer rendered back as JSON (as the stub writes it) parses to
 *     exactly the same answer (strings are valid UTF-8 once accepted).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "saga/payment.h"
#include "util/buf.h"
#include "util/json.h"
#include "util/json_check.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const status_names[] = {"AUTHORIZED", "CAPTURED", "RELEASED"};

static void render(struct lt_buf *b, const struct lt_pay_answer *a)
{
	lt_buf_puts(b, "{\"paymentId\":");
	lt_buf_put_json_str(b, a->payment_id, strlen(a->payment_id));
	lt_buf_printf(b, ",\"status\":\"%s\",\"amountMicros\":%lld,\"currency\":",
		      status_names[a->status], (long long)a->amount_micros);
	lt_buf_put_json_str(b, a->currency, strlen(a->currency));
	lt_buf_puts(b, ",\"reference\":");
	if (a->has_reference)
		lt_buf_put_json_str(b, a->reference, strlen(a->reference));
	else
		lt_buf_puts(b, "null");
	lt_buf_putc(b, '}');
}

static bool zeroed(const struct lt_pay_answer *a)
{
	static const struct lt_pay_answer zero;
	return memcmp(a, &zero, sizeof zero) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 8192)
		return 0;
	const char *s = (const char *)data;
	struct lt_pay_answer a, b;
	enum lt_err e = lt_payment_parse_answer(s, size, &a);
	CHECK(e == LT_OK || e == LT_ESYNTAX || e == LT_EINVAL);
	CHECK(lt_payment_parse_answer(s, size, &b) == e);
	if (e) {
		CHECK(zeroed(&a));
		return 0;
	}
	size_t pos;
	CHECK(lt_json_check(s, size, LT_JSON_MAX_DEPTH, &pos) == LT_OK);
	size_t n = strlen(a.payment_id);
	CHECK(n >= 1 && n <= LT_PAY_ID_MAX);
	for (size_t i = 0; i < n; i++)
		CHECK(a.payment_id[i] > 0x20 && a.payment_id[i] < 0x7F);
	CHECK(a.status == LT_PAY_AUTHORIZED || a.status == LT_PAY_CAPTURED ||
	      a.status == LT_PAY_RELEASED);
	CHECK(a.amount_micros >= 0 && a.amount_micros <= LT_JSON_INT_MAX);
	CHECK(strlen(a.currency) >= 1 && strlen(a.currency) <= LT_PAY_CURRENCY_MAX);
	CHECK(strlen(a.reference) <= LT_PAY_REFERENCE_MAX);
	CHECK(a.has_reference || a.reference[0] == '\0');
	CHECK(memcmp(&a, &b, sizeof a) == 0);

	char stack[1024];
	struct lt_buf out;
	lt_buf_init(&out, stack, sizeof stack, 8192);
	render(&out, &a);
	CHECK(!out.err);
	struct lt_pay_answer c;
	CHECK(lt_payment_parse_answer(out.data, out.len, &c) == LT_OK);
	CHECK(memcmp(&a, &c, sizeof a) == 0);
	lt_buf_release(&out);
	return 0;
}
