/*
 * fuzz_apikey.c — lt_apikey_parse, base 62 and the login throttle on
 * arbitrary bytes.
 *
 * Checks, beyond "no crash and no sanitizer report":
 *   - lt_apikey_parse accepts exactly what an independent, obvious checker
 *     accepts (tag, 12 of [a-z0-9], '_', 43 of [0-9A-Za-z] not above the
 *     encoding of 2^256 - 1), and an accepted key re-assembles from its parts
 *     into exactly the input; a rejection leaves the parts zeroed;
 *   - base 62 of any 32 bytes is 43 digits and decodes back to them;
 *   - the throttle treats each newline-separated chunk as a key: F failures
 *     lock it, success unlocks it, and the table never exceeds its capacity.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "auth/apikey.h"
#include "auth/throttle.h"

#include "fuzz_check.h"

/* base 62 of 2^256 - 1: the largest secret (fixed width, and the alphabet is
 * in ASCII order, so memcmp compares values). */
static const char MAX_SECRET[] = "yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp1";

static int in(unsigned char c, char lo, char hi)
{
	return c >= (unsigned char)lo && c <= (unsigned char)hi;
}

static int reference_accepts(const uint8_t *d, size_t n)
{
	if (n != 59 || memcmp(d, "lt_", 3) != 0 || d[15] != '_')
		return 0;
	for (size_t i = 3; i < 15; i++)
		if (!in(d[i], 'a', 'z') && !in(d[i], '0', '9'))
			return 0;
	for (size_t i = 16; i < 59; i++)
		if (!in(d[i], 'a', 'z') && !in(d[i], 'A', 'Z') && !in(d[i], '0', '9'))
			return 0;
	return memcmp(d + 16, MAX_SECRET, 43) <= 0;
}

static void check_parse(const uint8_t *data, size_t size)
{
	struct lt_apikey_parts p, zero;
	memset(&p, 0x5a, sizeof p);
	memset(&zero, 0, sizeof zero);
	enum lt_err e = lt_apikey_parse((const char *)data, size, &p);
	CHECK(e == LT_OK || e == LT_EINVAL);
	CHECK((e == LT_OK) == reference_accepts(data, size));
	if (e != LT_OK) {
		CHECK(memcmp(&p, &zero, sizeof p) == 0);
		return;
	}
	char again[LT_APIKEY_LEN + 1];
	char prefix[LT_APIKEY_PREFIX_LEN + 1];
	CHECK(strlen(p.id) == LT_APIKEY_ID_LEN && strlen(p.secret) == LT_APIKEY_SECRET_LEN);
	lt_apikey_prefix(p.id, prefix);
	int n = snprintf(again, sizeof again, "%s_%s", prefix, p.secret);
	CHECK(n == LT_APIKEY_LEN);
	CHECK(memcmp(again, data, size) == 0);

	unsigned char raw[32];
	char enc[LT_APIKEY_SECRET_LEN];
	CHECK(lt_apikey_base62_decode(p.secret, LT_APIKEY_SECRET_LEN, raw) == LT_OK);
	lt_apikey_base62_encode(raw, enc);
	CHECK(memcmp(enc, p.secret, LT_APIKEY_SECRET_LEN) == 0);
	lt_apikey_parts_wipe(&p);
}

static void check_base62(const uint8_t *data, size_t size)
{
	unsigned char in32[32] = {0}, back[32];
	char enc[LT_APIKEY_SECRET_LEN];
	memcpy(in32, data, size < 32 ? size : 32);
	lt_apikey_base62_encode(in32, enc);
	CHECK(lt_apikey_base62_decode(enc, sizeof enc, back) == LT_OK);
	CHECK(memcmp(back, in32, 32) == 0);
	/* decoding arbitrary bytes never crashes and agrees with the range */
	if (size >= LT_APIKEY_SECRET_LEN) {
		enum lt_err e =
			lt_apikey_base62_decode((const char *)data, LT_APIKEY_SECRET_LEN, back);
		if (e == LT_OK) {
			lt_apikey_base62_encode(back, enc);
			CHECK(memcmp(enc, data, LT_APIKEY_SECRET_LEN) == 0);
		}
	}
}

static struct lt_throttle throttle;
static int throttle_ready;
static int64_t now_ns = INT64_C(1) << 40;

static void check_throttle(const uint8_t *data, size_t size)
{
	struct lt_throttle_policy pol;
	lt_throttle_policy_default(&pol);
	if (!throttle_ready) {
		CHECK(lt_throttle_init(&throttle, &pol, 16) == LT_OK);
		throttle_ready = 1;
	}
	size_t start = 0;
	for (size_t i = 0; i <= size; i++) {
		if (i < size && data[i] != '\n')
			continue;
		const uint8_t *key = data + start;
		size_t n = i - start;
		start = i + 1;
		now_ns += (int64_t)(n + 1) * 1000003;
		int64_t retry;
		switch (n ? key[0] % 3 : 0) {
		case 0:
			for (int f = 0; f < pol.max_failures; f++)
				lt_throttle_fail(&throttle, key, n, now_ns);
			CHECK(lt_throttle_check(&throttle, key, n, now_ns, &retry) == LT_EBUSY);
			CHECK(retry > 0 && retry <= pol.max_lockout_ns);
			break;
		case 1:
			lt_throttle_success(&throttle, key, n);
			CHECK(lt_throttle_check(&throttle, key, n, now_ns, &retry) == LT_OK);
			CHECK(retry == 0);
			break;
		default:
			lt_throttle_fail(&throttle, key, n, now_ns);
			(void)lt_throttle_check(&throttle, key, n, now_ns, &retry);
			break;
		}
		uint32_t used;
		uint64_t ev;
		lt_throttle_stats(&throttle, &used, &ev);
		CHECK(used <= 16);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int sodium_ready;
	if (!sodium_ready) {
		CHECK(sodium_init() >= 0);
		sodium_ready = 1;
	}
	check_parse(data, size);
	check_base62(data, size);
	check_throttle(data, size);
	return 0;
}
