/*
 * router.c — path pattern matching.  See router.h.
 */
#include <string.h>

#include "http/router.h"

/* Match one pattern segment [ps, pe) against one path segment [s, e). */
static bool match_segment(const char *ps, const char *pe, const char *s, const char *e,
			  struct lt_route_match *m)
{
	const char *open = memchr(ps, '{', (size_t)(pe - ps));
	if (!open)
		return (size_t)(pe - ps) == (size_t)(e - s) && memcmp(ps, s, (size_t)(e - s)) == 0;
	const char *close = memchr(open, '}', (size_t)(pe - open));
	if (!close)
		return false;
	size_t prefix = (size_t)(open - ps);
	size_t suffix = (size_t)(pe - close - 1);
	size_t have = (size_t)(e - s);
	if (have < prefix + suffix + 1)
		return false;
	if (memcmp(ps, s, prefix) != 0 || memcmp(close + 1, e - suffix, suffix) != 0)
		return false;
	if (m->nparams == LT_ROUTE_MAX_PARAMS)
		return false;
	struct lt_route_param *p = &m->params[m->nparams++];
	p->name = open + 1;
	p->name_len = (size_t)(close - open - 1);
	p->value = s + prefix;
	p->len = have - prefix - suffix;
	return true;
}

bool lt_route_pattern_match(const char *pattern, const char *path, struct lt_route_match *m)
{
	m->nparams = 0;
	const char *p = pattern, *s = path;
	if (*p != '/' || *s != '/')
		return false;
	for (;;) {
		p++;
		s++;
		const char *pe = strchr(p, '/');
		const char *se = strchr(s, '/');
		if (!pe)
			pe = p + strlen(p);
		if (!se)
			se = s + strlen(s);
		if (!match_segment(p, pe, s, se, m))
			return false;
		if (!*pe || !*se)
			return !*pe && !*se;
		p = pe;
		s = se;
	}
}

static void allow_add(char *allow, const char *method)
{
	size_t len = strlen(allow);
	/* already listed? */
	for (const char *a = allow; (a = strstr(a, method)) != NULL; a++) {
		size_t ml = strlen(method);
		if ((a == allow || a[-1] == ' ') && (a[ml] == ',' || a[ml] == '\0'))
			return;
	}
	size_t need = strlen(method) + (len ? 2 : 0);
	if (len + need + 1 > LT_ROUTE_ALLOW_MAX)
		return;
	if (len) {
		memcpy(allow + len, ", ", 2);
		len += 2;
	}
	memcpy(allow + len, method, strlen(method) + 1);
}

enum lt_err lt_router_match(const struct lt_route *routes, size_t n, const char *method,
			    const char *path, struct lt_route_match *m)
{
	bool path_matched = false;
	bool head = strcmp(method, "HEAD") == 0;
	struct lt_route_match tmp;
	m->route = NULL;
	m->nparams = 0;
	m->allow[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (!lt_route_pattern_match(routes[i].pattern, path, &tmp))
			continue;
		if (strcmp(routes[i].method, method) == 0 ||
		    (head && strcmp(routes[i].method, "GET") == 0)) {
			*tmp.allow = '\0';
			*m = tmp;
			m->route = &routes[i];
			return LT_OK;
		}
		path_matched = true;
	}
	if (!path_matched)
		return LT_ENOTFOUND;
	for (size_t i = 0; i < n; i++) {
		if (!lt_route_pattern_match(routes[i].pattern, path, &tmp))
			continue;
		allow_add(m->allow, routes[i].method);
		if (strcmp(routes[i].method, "GET") == 0)
			allow_add(m->allow, "HEAD");
	}
	return LT_EDENIED;
}
