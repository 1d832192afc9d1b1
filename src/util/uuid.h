/*
 * uuid.h — random (v4) UUIDs and canonical-form checks.
 * lt_uuid_v4 uses libsodium's CSPRNG: sodium_init() must have run.
 */
#ifndef LT_UTIL_UUID_H
#define LT_UTIL_UUID_H

#include <stdbool.h>
#include <stddef.h>

#define LT_UUID_LEN 37 /* 36 characters and the NUL */

/* Write a new lowercase canonical v4 UUID. */
void lt_uuid_v4(char out[LT_UUID_LEN]);

/* True if s[0..n) is canonical 8-4-4-4-12 hex (either case). */
bool lt_uuid_valid(const char *s, size_t n);

/* lt_uuid_valid, and then the lower-case form into out (NUL-terminated;
 * out untouched when false).  s may be NULL (false). */
bool lt_uuid_canonical(const char *s, size_t n, char out[LT_UUID_LEN]);

#endif
