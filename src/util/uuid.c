/*
 * uuid.c — v4 UUIDs from libsodium's randombytes.  See uuid.h.
 */
#include <sodium.h>

#include "util/uuid.h"

void lt_uuid_v4(char out[LT_UUID_LEN])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[16];
	randombytes_buf(r, sizeof r);
	r[6] = (unsigned char)((r[6] & 0x0F) | 0x40);
	r[8] = (unsigned char)((r[8] & 0x3F) | 0x80);
	size_t o = 0;
	for (size_t i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[r[i] >> 4];
		out[o++] = hex[r[i] & 15];
	}
	out[o] = '\0';
}

bool lt_uuid_valid(const char *s, size_t n)
{
	if (n != 36)
		return false;
	for (size_t i = 0; i < 36; i++) {
		char c = s[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			     (c >= 'A' && c <= 'F'))) {
			return false;
		}
	}
	return true;
}

bool lt_uuid_canonical(const char *s, size_t n, char out[LT_UUID_LEN])
{
	if (!s || !lt_uuid_valid(s, n))
		return false;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] - 'A' + 'a' : s[i]);
	out[n] = '\0';
	return true;
}
