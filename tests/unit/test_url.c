/*
 * test_url.c — src/provider/url.c: lt_url_parse on a table of good URLs
 * (scheme, default and explicit ports, base paths with trailing slashes
 * trimmed, case of the scheme) and bad ones (other schemes, userinfo, IPv6
 * literals, bad ports, query, fragment, unescaped characters, overlong
 * host or path), each refused with an explanation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "provider/upstream.h"

struct good {
	const char *url;
	bool tls;
	const char *host;
	uint16_t port;
	const char *path;
};

static const struct good goods[] = {
	{"http://example.com", false, "example.com", 80, ""},
	{"https://example.com", true, "example.com", 443, ""},
	{"https://example.com/", true, "example.com", 443, ""},
	{"https://api.openai.com/v1", true, "api.openai.com", 443, "/v1"},
	{"https://api.openai.com/v1/", true, "api.openai.com", 443, "/v1"},
	{"https://api.openai.com/v1//", true, "api.openai.com", 443, "/v1"},
	{"https://generativelanguage.googleapis.com/v1beta", true,
	 "generativelanguage.googleapis.com", 443, "/v1beta"},
	{"http://127.0.0.1:8080", false, "127.0.0.1", 8080, ""},
	{"http://127.0.0.1:8080/a/b-c_d.e~f", false, "127.0.0.1", 8080, "/a/b-c_d.e~f"},
	{"http://localhost:1", false, "localhost", 1, ""},
	{"http://localhost:65535/", false, "localhost", 65535, ""},
	{"https://host:443/x", true, "host", 443, "/x"},
	{"http://host:00080", false, "host", 80, ""},
	{"HTTPS://Example.COM/V1", true, "Example.COM", 443, "/V1"},
	{"HtTp://a-b.c", false, "a-b.c", 80, ""},
	{"http://h/compatible-mode/v1", false, "h", 80, "/compatible-mode/v1"},
	{"http://h/%7Euser", false, "h", 80, "/%7Euser"},
};

static const char *const bads[] = {
	"",
	"example.com",
	"ftp://example.com",
	"http:/example.com",
	"http//example.com",
	"http://",
	"https://",
	"http:///path",
	"http://:80",
	"http://[::1]:8080",
	"http://[::1]",
	"http://user@example.com",
	"http://user:pass@example.com/",
	"http://exa_mple.com",
	"http://exa mple.com",
	"http://example.com:",
	"http://example.com:0",
	"http://example.com:65536",
	"http://example.com:99999",
	"http://example.com:1234567",
	"http://example.com:-1",
	"http://example.com:80x",
	"http://example.com:8 0",
	"http://example.com?q=1",
	"http://example.com/?q=1",
	"http://example.com/v1?q=1",
	"http://example.com#frag",
	"http://example.com/v1#frag",
	"http://example.com/a b",
	"http://example.com/a\tb",
	"http://example.com/a\nb",
	"http://example.com/caf\xc3\xa9",
	"http://example.com/\x7f",
};

static void test_good(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof goods / sizeof goods[0]; i++) {
		const struct good *g = &goods[i];
		struct lt_url u;
		char why[256] = "";
		enum lt_err err = lt_url_parse(g->url, &u, why, sizeof why);
		if (err != LT_OK)
			fail_msg("'%s' refused: %s", g->url, why);
		if (u.tls != g->tls || strcmp(u.host, g->host) != 0 || u.port != g->port ||
		    strcmp(u.path, g->path) != 0)
			fail_msg("'%s': got tls=%d host=%s port=%u path=%s", g->url, u.tls, u.host,
				 (unsigned)u.port, u.path);
	}
}

static void test_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
		struct lt_url u;
		char why[256] = "";
		enum lt_err err = lt_url_parse(bads[i], &u, why, sizeof why);
		if (err != LT_EINVAL)
			fail_msg("'%s' accepted (err %d): host=%s port=%u path=%s", bads[i], err,
				 u.host, (unsigned)u.port, u.path);
		if (!why[0])
			fail_msg("'%s' refused without an explanation", bads[i]);
	}
}

static void test_limits(void **state)
{
	(void)state;
	struct lt_url u;
	char why[256], url[2048];

	/* Host: 255 characters fit, 256 do not. */
	char host[300];
	memset(host, 'h', 255);
	host[255] = '\0';
	snprintf(url, sizeof url, "http://%s/x", host);
	assert_int_equal(lt_url_parse(url, &u, why, sizeof why), LT_OK);
	assert_int_equal(strlen(u.host), 255);
	memset(host, 'h', 256);
	host[256] = '\0';
	snprintf(url, sizeof url, "http://%s/x", host);
	assert_int_equal(lt_url_parse(url, &u, why, sizeof why), LT_EINVAL);
	assert_non_null(strstr(why, "host"));

	/* Path: 511 characters fit, 512 do not (trailing '/' not counted). */
	char path[600];
	path[0] = '/';
	memset(path + 1, 'p', 510);
	path[511] = '\0';
	snprintf(url, sizeof url, "http://h%s///", path);
	assert_int_equal(lt_url_parse(url, &u, why, sizeof why), LT_OK);
	assert_int_equal(strlen(u.path), 511);
	path[511] = 'p';
	path[512] = '\0';
	snprintf(url, sizeof url, "http://h%s", path);
	assert_int_equal(lt_url_parse(url, &u, why, sizeof why), LT_EINVAL);
	assert_non_null(strstr(why, "path"));

	/* A small why buffer is truncated, never overrun. */
	char tiny[8];
	memset(tiny, 'x', sizeof tiny);
	assert_int_equal(lt_url_parse("ftp://example.com", &u, tiny, sizeof tiny), LT_EINVAL);
	assert_int_equal(tiny[7], '\0');
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_limits),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
