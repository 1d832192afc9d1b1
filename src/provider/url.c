/*
 * url.c — lt_url_parse: the base URLs of providers (pure).  See upstream.h.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "provider/upstream.h"

enum lt_err lt_url_parse(const char *url, struct lt_url *out, char *why, size_t why_cap)
{
	memset(out, 0, sizeof *out);
	const char *p;
	if (!strncasecmp(url, "http://", 7)) {
		p = url + 7;
		out->port = 80;
	} else if (!strncasecmp(url, "https://", 8)) {
		p = url + 8;
		out->tls = true;
		out->port = 443;
	} else {
		snprintf(why, why_cap, "URL must start with http:// or https://, got '%s'", url);
		return LT_EINVAL;
	}
	size_t hl = strcspn(p, ":/?#");
	if (hl == 0 || p[0] == '[') {
		snprintf(why, why_cap, "URL has no host (IPv6 literals are not supported): '%s'",
			 url);
		return LT_EINVAL;
	}
	if (hl >= sizeof out->host) {
		snprintf(why, why_cap, "URL host is longer than %zu characters",
			 sizeof out->host - 1);
		return LT_EINVAL;
	}
	for (size_t i = 0; i < hl; i++) {
		char c = p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-')) {
			snprintf(why, why_cap,
				 "URL host holds '%c' (userinfo is not supported): '%s'", c, url);
			return LT_EINVAL;
		}
		out->host[i] = c;
	}
	p += hl;
	if (*p == ':') {
		p++;
		unsigned long port = 0;
		size_t digits = 0;
		while (*p >= '0' && *p <= '9' && digits < 6) {
			port = port * 10 + (unsigned long)(*p - '0');
			p++;
			digits++;
		}
		if (!digits || port == 0 || port > 65535 || (*p && *p != '/')) {
			snprintf(why, why_cap, "URL port must be 1-65535: '%s'", url);
			return LT_EINVAL;
		}
		out->port = (uint16_t)port;
	}
	if (*p == '?' || *p == '#') {
		snprintf(why, why_cap, "URL must not have a query or fragment: '%s'", url);
		return LT_EINVAL;
	}
	size_t pl = strlen(p);
	while (pl && p[pl - 1] == '/')
		pl--;
	if (pl >= sizeof out->path) {
		snprintf(why, why_cap, "URL path is longer than %zu characters",
			 sizeof out->path - 1);
		return LT_EINVAL;
	}
	for (size_t i = 0; i < pl; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c <= 0x20 || c >= 0x7F || c == '?' || c == '#') {
			snprintf(why, why_cap,
				 "URL path holds a character that must be escaped: '%s'", url);
			return LT_EINVAL;
		}
	}
	memcpy(out->path, p, pl);
	out->path[pl] = '\0';
	return LT_OK;
}
