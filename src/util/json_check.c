/*
 * json_check.c — strict JSON grammar scanner.  See json_check.h.
 *
 * Iterative (an explicit stack of open containers, bounded by max_depth),
 * so hostile nesting costs no C stack.
 */
#include <stdbool.h>
#include <stdint.h>

#include "util/json_check.h"

struct scan {
	const unsigned char *s;
	size_t n, i;
};

static void skip_ws(struct scan *c)
{
	while (c->i < c->n && (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\n' ||
			       c->s[c->i] == '\r'))
		c->i++;
}

static int hexval(unsigned char h)
{
	if (h >= '0' && h <= '9')
		return h - '0';
	if (h >= 'a' && h <= 'f')
		return h - 'a' + 10;
	if (h >= 'A' && h <= 'F')
		return h - 'A' + 10;
	return -1;
}

/* Four hex digits at c->i; advances past them.  -1 on error (c->i at the
 * bad byte). */
static long hex4(struct scan *c)
{
	long v = 0;
	for (int k = 0; k < 4; k++) {
		if (c->i >= c->n)
			return -1;
		int h = hexval(c->s[c->i]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
		c->i++;
	}
	return v;
}

/* A string starting at the opening quote. */
static bool scan_string(struct scan *c)
{
	c->i++; /* opening quote */
	while (c->i < c->n) {
		unsigned char ch = c->s[c->i];
		if (ch == '"') {
			c->i++;
			return true;
		}
		if (ch < 0x20)
			return false;
		if (ch != '\\') {
			c->i++;
			continue;
		}
		size_t esc = c->i;
		c->i++;
		if (c->i >= c->n)
			return false;
		ch = c->s[c->i];
		if (ch == '"' || ch == '\\' || ch == '/' || ch == 'b' || ch == 'f' || ch == 'n' ||
		    ch == 'r' || ch == 't') {
			c->i++;
			continue;
		}
		if (ch != 'u')
			return false;
		c->i++;
		long cp = hex4(c);
		if (cp < 0)
			return false;
		if (cp >= 0xDC00 && cp <= 0xDFFF) {
			c->i = esc;
			return false;
		}
		if (cp >= 0xD800 && cp <= 0xDBFF) {
			if (c->i + 1 >= c->n || c->s[c->i] != '\\' || c->s[c->i + 1] != 'u') {
				c->i = esc;
				return false;
			}
			size_t low_at = c->i;
			c->i += 2;
			long lo = hex4(c);
			if (lo < 0)
				return false;
			if (lo < 0xDC00 || lo > 0xDFFF) {
				c->i = low_at;
				return false;
			}
		}
	}
	return false; /* unterminated: c->i == n */
}

static bool digits(struct scan *c)
{
	size_t start = c->i;
	while (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9')
		c->i++;
	return c->i > start;
}

static bool scan_number(struct scan *c)
{
	if (c->s[c->i] == '-')
		c->i++;
	if (c->i >= c->n)
		return false;
	if (c->s[c->i] == '0') {
		c->i++;
		if (c->i < c->n && c->s[c->i] >= '0' && c->s[c->i] <= '9')
			return false; /* leading zero */
	} else if (!digits(c)) {
		return false;
	}
	if (c->i < c->n && c->s[c->i] == '.') {
		c->i++;
		if (!digits(c))
			return false;
	}
	if (c->i < c->n && (c->s[c->i] == 'e' || c->s[c->i] == 'E')) {
		c->i++;
		if (c->i < c->n && (c->s[c->i] == '+' || c->s[c->i] == '-'))
			c->i++;
		if (!digits(c))
			return false;
	}
	return true;
}

/* A literal that does not match is reported at its first byte. */
static bool scan_literal(struct scan *c, const char *lit)
{
	size_t start = c->i;
	for (const char *p = lit; *p; p++, c->i++) {
		if (c->i >= c->n || c->s[c->i] != (unsigned char)*p) {
			c->i = start;
			return false;
		}
	}
	return true;
}

enum lt_err lt_json_check(const char *s, size_t n, size_t max_depth, size_t *err_pos)
{
	struct scan c = {(const unsigned char *)s, n, 0};
	char stack[256]; /* '{' or '[' per open container */
	size_t depth = 0;
	if (max_depth > sizeof stack)
		max_depth = sizeof stack;
	enum lt_err fail = LT_ESYNTAX;

	skip_ws(&c);
	for (;;) {
		/* expect a value */
		if (c.i >= c.n)
			goto bad;
		unsigned char ch = c.s[c.i];
		bool ok = true;
		if (ch == '{' || ch == '[') {
			if (depth == max_depth) {
				fail = LT_ETOOBIG;
				goto bad;
			}
			stack[depth++] = (char)ch;
			c.i++;
			skip_ws(&c);
			if (c.i < c.n && c.s[c.i] == (ch == '{' ? '}' : ']')) {
				depth--;
				c.i++;
				goto after_value;
			}
			if (ch == '{')
				goto member;
			continue;
		} else if (ch == '"') {
			ok = scan_string(&c);
		} else if (ch == '-' || (ch >= '0' && ch <= '9')) {
			ok = scan_number(&c);
		} else if (ch == 't') {
			ok = scan_literal(&c, "true");
		} else if (ch == 'f') {
			ok = scan_literal(&c, "false");
		} else if (ch == 'n') {
			ok = scan_literal(&c, "null");
		} else {
			goto bad;
		}
		if (!ok)
			goto bad;
	after_value:
		skip_ws(&c);
		if (depth == 0) {
			if (c.i != c.n)
				goto bad;
			return LT_OK;
		}
		if (c.i >= c.n)
			goto bad;
		ch = c.s[c.i];
		if (ch == ',') {
			c.i++;
			skip_ws(&c);
			if (stack[depth - 1] == '{')
				goto member;
			continue;
		}
		if (ch == (stack[depth - 1] == '{' ? '}' : ']')) {
			depth--;
			c.i++;
			goto after_value;
		}
		goto bad;
	member:
		/* "key" ws : ws value */
		if (c.i >= c.n || c.s[c.i] != '"' || !scan_string(&c))
			goto bad;
		skip_ws(&c);
		if (c.i >= c.n || c.s[c.i] != ':')
			goto bad;
		c.i++;
		skip_ws(&c);
	}
bad:
	*err_pos = c.i > c.n ? c.n : c.i;
	return fail;
}
