/*
 * fuzz_stub_fault.c — lt_stub_fault_parse (the stubs' X-Stub-Fault header,
 * untrusted input on the stub listener) on arbitrary bytes.
 *
 * Checks, beyond "no crash and no sanitizer report":
 *   - a rejection is LT_ESYNTAX with a non-empty reason;
 *   - an accepted value has sane fields (status 0 or 100..599, delay and
 *     drop-after never below their "none" values);
 *   - describe() of an accepted fault parses back to the same fault.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stubs/stub_int.h"

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 1024)
		return 0;
	char s[1025];
	memcpy(s, data, size);
	s[size] = '\0'; /* a header value ends at the first NUL */
	struct lt_stub_fault f, g;
	char why[256] = "";
	enum lt_err e = lt_stub_fault_parse(s, &f, why, sizeof why);
	if (e) {
		CHECK(e == LT_ESYNTAX);
		CHECK(why[0] != '\0');
		return 0;
	}
	CHECK(f.status == 0 || (f.status >= 100 && f.status <= 599));
	CHECK(f.delay_ms >= 0);
	CHECK(f.drop_after >= -1);
	char text[512];
	lt_stub_fault_describe(&f, text, sizeof text);
	CHECK(lt_stub_fault_parse(text, &g, why, sizeof why) == LT_OK);
	CHECK(g.status == f.status && g.delay_ms == f.delay_ms && g.drop_after == f.drop_after &&
	      g.malformed == f.malformed);
	CHECK(g.status == 0 || g.retry_after_s == f.retry_after_s);
	return 0;
}
