/*
 * tiers.h — the configured tiers and how a user's tier is chosen.
 *
 * A tier is a name (1-LT_TIER_MAX characters of A-Z, 0-9, _) with a priority
 * (0-1000).  The set comes from [auth] tiers, written "NAME:PRIORITY,...";
 * USER must be one of them.  A user's tier is its explicit tier if it has
 * one, else the highest-priority configured tier named after one of its
 * roles (ADMIN, ORG_ADMIN, USER), else USER (the reference's rule).
 *
 * Pure: no I/O, no allocation, no locking.  struct lt_tiers is a plain value
 * (a copy is a snapshot); it is filled by lt_tiers_parse and read-only after.
 */
#ifndef LT_AUTH_TIERS_H
#define LT_AUTH_TIERS_H

#include <stddef.h>

#include "auth/identity_store.h"
#include "util/err.h"

#define LT_TIERS_MAX 16
#define LT_TIER_PRIORITY_MAX 1000
#define LT_TIERS_DEFAULT "USER:0,ORG_ADMIN:1,ADMIN:2"

struct lt_tiers {
	size_t n;
	struct lt_tier {
		char name[LT_TIER_MAX + 1];
		int priority;
	} t[LT_TIERS_MAX];
};

/* Parse spec ("USER:0,ORG_ADMIN:1,ADMIN:2"; spaces and tabs around items,
 * names and priorities are ignored) into *out, in the order written.
 * LT_OK, or LT_EINVAL with a message in why (whylen bytes) for an empty
 * item, a missing ':', a bad name, a priority that is not a whole number
 * 0-1000, a name listed twice, more than LT_TIERS_MAX tiers, or no USER. */
enum lt_err lt_tiers_parse(const char *spec, struct lt_tiers *out, char *why, size_t whylen);

/* Index of the tier called name (exact, case-sensitive), or -1. */
int lt_tiers_find(const struct lt_tiers *t, const char *name);

/* The effective tier into out: explicit if non-empty (NULL counts as empty),
 * else the highest-priority configured tier among the names of the roles in
 * `roles` (enum lt_role bits; on equal priority ADMIN, then ORG_ADMIN, then
 * USER), else "USER". */
void lt_tiers_effective(const struct lt_tiers *t, unsigned roles, const char *explicit_tier,
			char out[LT_TIER_MAX + 1]);

/* Sort in place by priority, highest first, then by name. */
void lt_tiers_sort(struct lt_tiers *t);

#endif
