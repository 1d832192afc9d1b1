/*
 * tiers.c — parsing [auth] tiers and choosing a user's tier.  See tiers.h.
 */
#include <stdio.h>
#include <string.h>

#include "auth/tiers.h"

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* [p, *end) with blanks trimmed on both sides. */
static const char *trim(const char *p, const char **end)
{
	while (p < *end && is_blank(*p))
		p++;
	while (*end > p && is_blank((*end)[-1]))
		(*end)--;
	return p;
}

static int valid_name(const char *p, size_t n)
{
	if (n == 0 || n > LT_TIER_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
			return 0;
	}
	return 1;
}

/* A whole number 0..LT_TIER_PRIORITY_MAX, digits only. */
static int parse_priority(const char *p, size_t n, int *out)
{
	int v = 0;
	if (n == 0 || n > 4)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return 0;
		v = v * 10 + (p[i] - '0');
	}
	if (v > LT_TIER_PRIORITY_MAX)
		return 0;
	*out = v;
	return 1;
}

enum lt_err lt_tiers_parse(const char *spec, struct lt_tiers *out, char *why, size_t whylen)
{
	memset(out, 0, sizeof *out);
	size_t item = 0;
	const char *p = spec;
	for (;;) {
		const char *comma = strchr(p, ',');
		const char *end = comma ? comma : p + strlen(p);
		const char *s = trim(p, &end);
		item++;
		if (s == end) {
			snprintf(why, whylen, "item %zu is empty (expected NAME:PRIORITY,...)",
				 item);
			return LT_EINVAL;
		}
		const char *colon = memchr(s, ':', (size_t)(end - s));
		if (!colon) {
			snprintf(why, whylen, "'%.*s' is not NAME:PRIORITY", (int)(end - s), s);
			return LT_EINVAL;
		}
		const char *nend = colon, *pend = end;
		const char *name = trim(s, &nend), *prio = trim(colon + 1, &pend);
		size_t nlen = (size_t)(nend - name);
		if (!valid_name(name, nlen)) {
			snprintf(why, whylen,
				 "tier name '%.*s' must be 1-%d characters of A-Z, 0-9 or _",
				 (int)nlen, name, LT_TIER_MAX);
			return LT_EINVAL;
		}
		int v;
		if (!parse_priority(prio, (size_t)(pend - prio), &v)) {
			snprintf(why, whylen,
				 "priority of %.*s must be a whole number 0-%d, got '%.*s'",
				 (int)nlen, name, LT_TIER_PRIORITY_MAX, (int)(pend - prio), prio);
			return LT_EINVAL;
		}
		for (size_t i = 0; i < out->n; i++) {
			if (strlen(out->t[i].name) == nlen &&
			    memcmp(out->t[i].name, name, nlen) == 0) {
				snprintf(why, whylen, "tier %.*s is listed twice", (int)nlen, name);
				return LT_EINVAL;
			}
		}
		if (out->n == LT_TIERS_MAX) {
			snprintf(why, whylen, "at most %d tiers may be configured", LT_TIERS_MAX);
			return LT_EINVAL;
		}
		memcpy(out->t[out->n].name, name, nlen);
		out->t[out->n].name[nlen] = '\0';
		out->t[out->n].priority = v;
		out->n++;
		if (!comma)
			break;
		p = comma + 1;
	}
	if (lt_tiers_find(out, "USER") < 0) {
		snprintf(why, whylen, "USER must be one of the tiers");
		return LT_EINVAL;
	}
	return LT_OK;
}

int lt_tiers_find(const struct lt_tiers *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->t[i].name, name) == 0)
			return (int)i;
	return -1;
}

void lt_tiers_effective(const struct lt_tiers *t, unsigned roles, const char *explicit_tier,
			char out[LT_TIER_MAX + 1])
{
	static const unsigned order[] = {LT_ROLE_ADMIN, LT_ROLE_ORG_ADMIN, LT_ROLE_USER};
	const char *best = "USER";
	int best_prio = -1;
	if (explicit_tier && explicit_tier[0]) {
		snprintf(out, LT_TIER_MAX + 1, "%s", explicit_tier);
		return;
	}
	for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
		if (!(roles & order[i]))
			continue;
		int k = lt_tiers_find(t, lt_role_name(order[i]));
		if (k >= 0 && t->t[k].priority > best_prio) {
			best = t->t[k].name;
			best_prio = t->t[k].priority;
		}
	}
	snprintf(out, LT_TIER_MAX + 1, "%s", best);
}

/* Insertion sort: n is at most LT_TIERS_MAX. */
void lt_tiers_sort(struct lt_tiers *t)
{
	for (size_t i = 1; i < t->n; i++) {
		struct lt_tier x = t->t[i];
		size_t j = i;
		while (j > 0 && (t->t[j - 1].priority < x.priority ||
				 (t->t[j - 1].priority == x.priority &&
				  strcmp(t->t[j - 1].name, x.name) > 0))) {
			t->t[j] = t->t[j - 1];
			j--;
		}
		t->t[j] = x;
	}
}
