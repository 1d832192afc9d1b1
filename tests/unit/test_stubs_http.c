/*
 * test_stubs_http.c — the provider stubs running for real (lt_stubs_start on
 * 127.0.0.1:0), driven over sockets with a small HTTP/1.1 client written
 * here: every endpoint non-stream and stream, the SSE framings, include_usage,
 * payments (idempotency, 409s, 404s), the control API, fault plans, the
 * X-Stub-Fault header, dropped and malformed answers, the 1 MiB body limit,
 * reload, stop cutting a delay short, and HTTPS (a certificate made with the
 * openssl CLI, fetched with curl --cacert; skipped only if those tools are
 * missing).
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conf/config.h"
#include "provider/usage.h"
#include "stubs/stubs.h"
#include "testutil.h"
#include "util/json.h"
#include "util/timefmt.h"
#include "util/uuid.h"

/* ---- a minimal HTTP/1.1 client ---- */

struct resp {
	int status;
	char head[16384]; /* status line and headers */
	char *body;	  /* de-chunked, NUL-terminated; malloc'd */
	size_t body_len;
	bool chunked;
	bool complete;		  /* the framing (Content-Length or last chunk) was complete */
	long long content_length; /* -1 when absent */
};

static void resp_free(struct resp *r)
{
	free(r->body);
	r->body = NULL;
}

/* Value of a header (case-insensitive name) into out; NULL if absent. */
static const char *header(const struct resp *r, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	const char *p = strstr(r->head, "\r\n");
	while (p && p[2]) {
		p += 2;
		const char *end = strstr(p, "\r\n");
		if (!end)
			break;
		if ((size_t)(end - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
			const char *v = p + nl + 1;
			while (*v == ' ')
				v++;
			size_t vl = (size_t)(end - v);
			if (vl >= cap)
				vl = cap - 1;
			memcpy(out, v, vl);
			out[vl] = '\0';
			return out;
		}
		p = end;
	}
	return NULL;
}

static int connect_port(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct timeval tv = {60, 0}; /* a hang fails the test instead of blocking it */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
	return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return; /* the server may refuse early (413); reading tells */
		p += w;
		n -= (size_t)w;
	}
}

/* Read until EOF into a malloc'd buffer. */
static char *read_all(int fd, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap + 1);
	assert_non_null(buf);
	for (;;) {
		if (n == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
			assert_non_null(buf);
		}
		ssize_t r = recv(fd, buf + n, cap - n, 0);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

static void parse_response(const char *raw, size_t len, struct resp *r)
{
	memset(r, 0, sizeof *r);
	r->content_length = -1;
	const char *eoh = strstr(raw, "\r\n\r\n");
	assert_non_null(eoh);
	size_t hl = (size_t)(eoh - raw) + 2;
	assert_true(hl < sizeof r->head);
	memcpy(r->head, raw, hl);
	r->head[hl] = '\0';
	assert_int_equal(sscanf(raw, "HTTP/1.1 %d", &r->status), 1);
	char v[64];
	if (header(r, "Content-Length", v, sizeof v))
		r->content_length = strtoll(v, NULL, 10);
	r->chunked = header(r, "Transfer-Encoding", v, sizeof v) && strcasecmp(v, "chunked") == 0;
	const char *b = eoh + 4;
	size_t blen = len - (size_t)(b - raw);
	r->body = malloc(blen + 1);
	assert_non_null(r->body);
	if (!r->chunked) {
		memcpy(r->body, b, blen);
		r->body_len = blen;
		r->complete = r->content_length >= 0 && (size_t)r->content_length == blen;
	} else {
		size_t off = 0;
		for (;;) {
			const char *crlf = off < blen ? strstr(b + off, "\r\n") : NULL;
			if (!crlf)
				break;
			size_t sz = strtoul(b + off, NULL, 16);
			size_t data = (size_t)(crlf - b) + 2;
			if (sz == 0) {
				r->complete = data + 2 <= blen && memcmp(b + data, "\r\n", 2) == 0;
				break;
			}
			if (data + sz + 2 > blen)
				break;
			memcpy(r->body + r->body_len, b + data, sz);
			r->body_len += sz;
			off = data + sz + 2;
		}
	}
	r->body[r->body_len] = '\0';
}

/* One request on a fresh connection ("Connection: close"); extra_headers
 * are complete lines. */
static void request(int port, const char *method, const char *path, const char *extra_headers,
		    const char *body, struct resp *r)
{
	int fd = connect_port(port);
	char head[4096];
	size_t bl = body ? strlen(body) : 0;
	int n = snprintf(head, sizeof head,
			 "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%s%s", method,
			 path, extra_headers ? extra_headers : "",
			 body ? "Content-Type: application/json\r\n" : "");
	if (body)
		n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %zu\r\n", bl);
	n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
	send_all(fd, head, (size_t)n);
	if (body)
		send_all(fd, body, bl);
	size_t len;
	char *raw = read_all(fd, &len);
	close(fd);
	parse_response(raw, len, r);
	free(raw);
}

static void post(int port, const char *path, const char *hdrs, const char *body, struct resp *r)
{
	request(port, "POST", path, hdrs, body, r);
}

static cJSON *json_of(const char *s, size_t n)
{
	cJSON *j = NULL;
	size_t pos;
	if (lt_json_parse(s, n, &j, &pos) != LT_OK)
		fail_msg("not JSON (byte %zu): %.*s", pos, (int)(n > 400 ? 400 : n), s);
	return j;
}

static cJSON *body_json(const struct resp *r)
{
	return json_of(r->body, r->body_len);
}

static const cJSON *path_get(const cJSON *j, const char *dotted)
{
	char buf[256];
	snprintf(buf, sizeof buf, "%s", dotted);
	const cJSON *cur = j;
	for (char *save = NULL, *tok = strtok_r(buf, ".", &save); tok && cur;
	     tok = strtok_r(NULL, ".", &save)) {
		if (cJSON_IsArray(cur))
			cur = cJSON_GetArrayItem(cur, (int)strtol(tok, NULL, 10));
		else
			cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
	}
	return cur;
}

static long long num(const cJSON *j, const char *dotted)
{
	const cJSON *v = path_get(j, dotted);
	if (!cJSON_IsNumber(v))
		fail_msg("%s is not a number", dotted);
	return (long long)v->valuedouble;
}

static const char *str(const cJSON *j, const char *dotted)
{
	const cJSON *v = path_get(j, dotted);
	if (!cJSON_IsString(v))
		fail_msg("%s is not a string", dotted);
	return v->valuestring;
}

/* Every answer has a Content-Type and an x-request-id. */
static void common_headers(const struct resp *r, const char *ctype)
{
	char v[256];
	assert_non_null(header(r, "Content-Type", v, sizeof v));
	assert_string_equal(v, ctype);
	assert_non_null(header(r, "x-request-id", v, sizeof v));
	assert_true(strncmp(v, "req_", 4) == 0 && strlen(v) == 36);
}

/* Split an SSE body into its data payloads (malloc'd array of malloc'd
 * strings); every event must be one "data: " line ended by term. */
static size_t sse_split(const char *body, const char *term, char ***out)
{
	size_t n = 0, cap = 8, tl = strlen(term);
	char **v = malloc(cap * sizeof *v);
	const char *p = body;
	while (*p) {
		const char *end = strstr(p, term);
		if (!end)
			fail_msg("unterminated SSE event: %s", p);
		if (strncmp(p, "data: ", 6) != 0)
			fail_msg("SSE event without data: %.*s", (int)(end - p), p);
		if (memchr(p, '\n', (size_t)(end - p)))
			fail_msg("multi-line SSE event: %.*s", (int)(end - p), p);
		if (n == cap)
			v = realloc(v, (cap *= 2) * sizeof *v);
		size_t l = (size_t)(end - p) - 6;
		v[n] = malloc(l + 1);
		memcpy(v[n], p + 6, l);
		v[n][l] = '\0';
		n++;
		p = end + tl;
	}
	*out = v;
	return n;
}

static void sse_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- fixture ---- */

struct fx {
	struct lt_log log;
	struct lt_config cfg;
	struct lt_stubs *s;
	int port;
};

static void fx_config(struct lt_config *cfg)
{
	lt_config_defaults(cfg);
	snprintf(cfg->stubs_listen, sizeof cfg->stubs_listen, "127.0.0.1:0");
	cfg->stubs_threads = 16;
}

static void fx_start(struct fx *f)
{
	lt_log_init(&f->log, STDERR_FILENO, LT_LOG_WARN, false);
	char why[512];
	enum lt_err e = lt_stubs_start(&f->cfg, &f->log, &f->s, why, sizeof why);
	if (e)
		fail_msg("lt_stubs_start: %s", why);
	f->port = lt_stubs_port(f->s);
	assert_true(f->port > 0);
}

static int group_setup(void **state)
{
	if (sodium_init() < 0)
		return -1;
	struct fx *f = calloc(1, sizeof *f);
	fx_config(&f->cfg);
	fx_start(f);
	*state = f;
	return 0;
}

static int group_teardown(void **state)
{
	struct fx *f = *state;
	lt_stubs_stop(f->s);
	free(f);
	return 0;
}

/* Each test starts with no fault plans and an empty request log. */
static int reset(void **state)
{
	struct fx *f = *state;
	struct resp r;
	request(f->port, "DELETE", "/_stub/faults", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	request(f->port, "DELETE", "/_stub/requests", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	return 0;
}

#define CHAT_OPENAI "/openai/v1/chat/completions"
#define CHAT_QWEN "/qwen/compatible-mode/v1/chat/completions"

/* ---- OpenAI / Qwen chat ---- */

static void test_openai_chat(void **state)
{
	struct fx *f = *state;
	const char *body = "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"system\","
			   "\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"hello "
			   "world\"}]}";
	struct resp r, r2;
	post(f->port, CHAT_OPENAI, NULL, body, &r);
	assert_int_equal(r.status, 200);
	common_headers(&r, "application/json");
	assert_true(r.complete);
	cJSON *j = body_json(&r);
	assert_true(strncmp(str(j, "id"), "chatcmpl-", 9) == 0);
	assert_string_equal(str(j, "object"), "chat.completion");
	assert_string_equal(str(j, "model"), "gpt-4o-mini");
	assert_true(num(j, "created") > 1600000000);
	assert_true(strncmp(str(j, "system_fingerprint"), "fp_", 3) == 0);
	assert_int_equal(num(j, "choices.0.index"), 0);
	assert_string_equal(str(j, "choices.0.message.role"), "assistant");
	assert_true(cJSON_IsNull(path_get(j, "choices.0.message.refusal")));
	assert_true(cJSON_IsNull(path_get(j, "choices.0.logprobs")));
	assert_string_equal(str(j, "choices.0.finish_reason"), "stop");
	const char *content = str(j, "choices.0.message.content");
	assert_true(strncmp(content, "Stubbed OpenAI response", 23) == 0);
	long long out = num(j, "usage.completion_tokens");
	assert_int_equal(strlen(content), 4 * out);
	assert_int_equal(lt_token_estimate(content, strlen(content)), out);
	assert_true(out >= 8 && out <= 32);
	/* prompt tokens: the estimate of all message text concatenated */
	const char *all = "Be brief.hello world";
	assert_int_equal(num(j, "usage.prompt_tokens"), lt_token_estimate(all, strlen(all)));
	assert_int_equal(num(j, "usage.total_tokens"),
			 num(j, "usage.prompt_tokens") + num(j, "usage.completion_tokens"));
	assert_int_equal(num(j, "usage.prompt_tokens_details.cached_tokens"), 0);
	assert_int_equal(num(j, "usage.completion_tokens_details.reasoning_tokens"), 0);

	/* Same input, same answer (created may differ). */
	post(f->port, CHAT_OPENAI, NULL, body, &r2);
	cJSON *j2 = body_json(&r2);
	assert_string_equal(str(j, "id"), str(j2, "id"));
	assert_string_equal(content, str(j2, "choices.0.message.content"));
	assert_int_equal(out, num(j2, "usage.completion_tokens"));
	cJSON_Delete(j2);
	resp_free(&r2);
	/* A different prompt, a different answer. */
	post(f->port, CHAT_OPENAI, NULL,
	     "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"other\"}]}",
	     &r2);
	j2 = body_json(&r2);
	assert_string_not_equal(str(j, "id"), str(j2, "id"));
	cJSON_Delete(j2);
	resp_free(&r2);
	cJSON_Delete(j);
	resp_free(&r);
}

static void test_openai_max_tokens_and_reasoning(void **state)
{
	struct fx *f = *state;
	struct resp r;
	post(f->port, CHAT_OPENAI, NULL,
	     "{\"model\":\"gpt-4o\",\"max_tokens\":3,\"messages\":[{\"role\":\"user\","
	     "\"content\":[{\"type\":\"text\",\"text\":\"parts\"},{\"type\":\"image_url\","
	     "\"image_url\":{\"url\":\"x\"}}]}]}",
	     &r);
	assert_int_equal(r.status, 200);
	cJSON *j = body_json(&r);
	assert_string_equal(str(j, "choices.0.finish_reason"), "length");
	assert_int_equal(num(j, "usage.completion_tokens"), 3);
	assert_int_equal(strlen(str(j, "choices.0.message.content")), 12);
	assert_int_equal(num(j, "usage.prompt_tokens"), 2); /* "parts" */
	cJSON_Delete(j);
	resp_free(&r);

	/* max_completion_tokens wins; a reasoning model adds 16 reasoning
	 * tokens to completion_tokens. */
	post(f->port, CHAT_OPENAI, NULL,
	     "{\"model\":\"o3-mini\",\"max_tokens\":30,\"max_completion_tokens\":5,"
	     "\"messages\":[{\"role\":\"user\",\"content\":\"think\"}]}",
	     &r);
	assert_int_equal(r.status, 200);
	j = body_json(&r);
	assert_int_equal(num(j, "usage.completion_tokens_details.reasoning_tokens"), 16);
	assert_int_equal(num(j, "usage.completion_tokens"), 5 + 16);
	assert_int_equal(strlen(str(j, "choices.0.message.content")), 20);
	assert_string_equal(str(j, "choices.0.finish_reason"), "length");
	cJSON_Delete(j);
	resp_free(&r);

	/* A long prompt has cached tokens: 4096 bytes = 1024 tokens → 512. */
	char *big = malloc(4200);
	memset(big, 'a', 4096);
	big[4096] = '\0';
	char *body = malloc(4400);
	snprintf(body, 4400,
		 "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}",
		 big);
	post(f->port, CHAT_OPENAI, NULL, body, &r);
	j = body_json(&r);
	assert_int_equal(num(j, "usage.prompt_tokens"), 1024);
	assert_int_equal(num(j, "usage.prompt_tokens_details.cached_tokens"), 512);
	cJSON_Delete(j);
	resp_free(&r);
	/* Qwen reports prompt_tokens_details only when something was cached. */
	post(f->port, CHAT_QWEN, NULL, body, &r);
	j = body_json(&r);
	assert_int_equal(num(j, "usage.prompt_tokens_details.cached_tokens"), 512);
	cJSON_Delete(j);
	resp_free(&r);
	free(body);
	free(big);
}

static void test_openai_bad_requests(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *body;
		const char *needle;
	} cases[] = {
		{"{bad json", "parse the JSON"},
		{"[1,2]", "JSON object"},
		{"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", "model"},
		{"{\"model\":\"m\"}", "messages"},
		{"{\"model\":\"m\",\"messages\":[]}", "messages"},
		{"{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}", "role"},
		{"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}", "content"},
		{"{\"model\":\"m\",\"max_tokens\":0,\"messages\":[{\"role\":\"user\",\"content\":"
		 "\"x\"}]}",
		 "max_tokens"},
		{"{\"model\":\"m\",\"stream\":\"yes\",\"messages\":[{\"role\":\"user\",\"content\":"
		 "\"x\"}]}",
		 "stream"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct resp r;
		post(f->port, i % 2 ? CHAT_QWEN : CHAT_OPENAI, NULL, cases[i].body, &r);
		assert_int_equal(r.status, 400);
		common_headers(&r, "application/json");
		cJSON *j = body_json(&r);
		assert_string_equal(str(j, "error.type"), "invalid_request_error");
		assert_true(cJSON_IsNull(path_get(j, "error.param")));
		assert_true(cJSON_IsNull(path_get(j, "error.code")));
		if (!strstr(str(j, "error.message"), cases[i].needle))
			fail_msg("case %zu: message %s lacks %s", i, str(j, "error.message"),
				 cases[i].needle);
		cJSON_Delete(j);
		resp_free(&r);
	}
}

/* Stream a chat; check the frames; return the content and the parsed
 * frames count. */
static void check_openai_stream(struct fx *f, const char *path, bool include_usage,
				const char *expect_content, long long expect_tokens)
{
	char body[512];
	snprintf(body, sizeof body,
		 "{\"model\":\"gpt-4o-mini\",\"stream\":true,%s\"messages\":[{\"role\":\"user\","
		 "\"content\":\"stream me\"}]}",
		 include_usage ? "\"stream_options\":{\"include_usage\":true}," : "");
	struct resp r;
	post(f->port, path, NULL, body, &r);
	assert_int_equal(r.status, 200);
	common_headers(&r, "text/event-stream");
	assert_true(r.chunked);
	assert_true(r.complete);
	char **ev;
	size_t n = sse_split(r.body, "\n\n", &ev);
	assert_true(n >= 4);
	assert_string_equal(ev[n - 1], "[DONE]");
	size_t nchunks = n - 1;
	char content[1024] = "";
	for (size_t i = 0; i < nchunks; i++) {
		cJSON *j = json_of(ev[i], strlen(ev[i]));
		assert_string_equal(str(j, "object"), "chat.completion.chunk");
		assert_true(strncmp(str(j, "id"), "chatcmpl-", 9) == 0);
		assert_string_equal(str(j, "model"), "gpt-4o-mini");
		const cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
		bool last = i == nchunks - 1;
		if (!include_usage) {
			assert_null(usage);
		} else if (!last) {
			assert_true(cJSON_IsNull(usage));
		}
		const cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
		if (include_usage && last) {
			assert_int_equal(cJSON_GetArraySize(choices), 0);
			assert_int_equal(num(j, "usage.completion_tokens"), expect_tokens);
			assert_int_equal(num(j, "usage.prompt_tokens"), 3); /* "stream me" */
			assert_int_equal(num(j, "usage.total_tokens"), 3 + expect_tokens);
		} else if (i == 0) {
			assert_string_equal(str(j, "choices.0.delta.role"), "assistant");
			assert_string_equal(str(j, "choices.0.delta.content"), "");
			assert_true(cJSON_IsNull(path_get(j, "choices.0.finish_reason")));
		} else if (i == nchunks - 1 - include_usage) {
			assert_string_equal(str(j, "choices.0.finish_reason"), "stop");
			assert_int_equal(cJSON_GetArraySize(path_get(j, "choices.0.delta")), 0);
		} else {
			const char *piece = str(j, "choices.0.delta.content");
			assert_true(strlen(piece) >= 1 && strlen(piece) <= 4);
			assert_true(strlen(content) + strlen(piece) < sizeof content);
			memcpy(content + strlen(content), piece, strlen(piece) + 1);
			assert_true(cJSON_IsNull(path_get(j, "choices.0.finish_reason")));
		}
		cJSON_Delete(j);
	}
	assert_string_equal(content, expect_content);
	/* one chunk per token, plus role, finish (and usage) */
	assert_int_equal(nchunks, (size_t)expect_tokens + 2 + include_usage);
	sse_free(ev, n);
	resp_free(&r);
}

static void test_openai_stream(void **state)
{
	struct fx *f = *state;
	/* The non-stream answer to the same request gives the expected text. */
	struct resp r;
	post(f->port, CHAT_OPENAI, NULL,
	     "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"stream "
	     "me\"}]}",
	     &r);
	cJSON *j = body_json(&r);
	char *content = strdup(str(j, "choices.0.message.content"));
	long long tokens = num(j, "usage.completion_tokens");
	cJSON_Delete(j);
	resp_free(&r);
	check_openai_stream(f, CHAT_OPENAI, false, content, tokens);
	check_openai_stream(f, CHAT_OPENAI, true, content, tokens);
	free(content);
}

static void test_qwen_chat_and_stream(void **state)
{
	struct fx *f = *state;
	struct resp r;
	post(f->port, CHAT_QWEN, "Authorization: Bearer sk-qwen\r\n",
	     "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"stream "
	     "me\"}]}",
	     &r);
	assert_int_equal(r.status, 200);
	cJSON *j = body_json(&r);
	assert_true(strncmp(str(j, "id"), "chatcmpl-", 9) == 0);
	assert_null(cJSON_GetObjectItemCaseSensitive(j, "system_fingerprint"));
	assert_null(path_get(j, "usage.prompt_tokens_details"));
	assert_null(path_get(j, "usage.completion_tokens_details"));
	const char *content = str(j, "choices.0.message.content");
	assert_true(strncmp(content, "Stubbed Qwen response", 21) == 0);
	char *c = strdup(content);
	long long tokens = num(j, "usage.completion_tokens");
	cJSON_Delete(j);
	resp_free(&r);
	check_openai_stream(f, CHAT_QWEN, true, c, tokens);
	check_openai_stream(f, CHAT_QWEN, false, c, tokens);
	free(c);
}

/* ---- embeddings ---- */

static void test_embeddings(void **state)
{
	struct fx *f = *state;
	static const char *const paths[] = {"/openai/v1/embeddings",
					    "/qwen/compatible-mode/v1/embeddings"};
	for (size_t p = 0; p < 2; p++) {
		struct resp r;
		post(f->port, paths[p], NULL,
		     "{\"model\":\"text-embedding-3-small\",\"input\":[\"alpha\",\"beta gamma\"]}",
		     &r);
		assert_int_equal(r.status, 200);
		common_headers(&r, "application/json");
		cJSON *j = body_json(&r);
		assert_string_equal(str(j, "object"), "list");
		assert_string_equal(str(j, "model"), "text-embedding-3-small");
		assert_int_equal(cJSON_GetArraySize(path_get(j, "data")), 2);
		for (int i = 0; i < 2; i++) {
			char k[32];
			snprintf(k, sizeof k, "data.%d", i);
			const cJSON *d = path_get(j, k);
			assert_string_equal(str(d, "object"), "embedding");
			assert_int_equal(num(d, "index"), i);
			const cJSON *v = path_get(d, "embedding");
			assert_int_equal(cJSON_GetArraySize(v), 8);
			double sum = 0;
			for (const cJSON *x = v->child; x; x = x->next)
				sum += x->valuedouble * x->valuedouble;
			assert_true(fabs(sum - 1.0) < 1e-4);
		}
		assert_int_equal(num(j, "usage.prompt_tokens"), 2 + 3);
		assert_int_equal(num(j, "usage.total_tokens"), 5);
		cJSON_Delete(j);
		resp_free(&r);
	}
	struct resp r, r2;
	post(f->port, "/openai/v1/embeddings", NULL,
	     "{\"model\":\"e\",\"input\":\"one\",\"dimensions\":4}", &r);
	post(f->port, "/openai/v1/embeddings", NULL,
	     "{\"model\":\"e\",\"input\":\"one\",\"dimensions\":4,\"encoding_format\":\"base64\"}",
	     &r2);
	cJSON *j = body_json(&r), *j2 = body_json(&r2);
	assert_int_equal(cJSON_GetArraySize(path_get(j, "data.0.embedding")), 4);
	const char *b64 = str(j2, "data.0.embedding");
	unsigned char raw[16];
	size_t rawlen = 0;
	assert_int_equal(sodium_base642bin(raw, sizeof raw, b64, strlen(b64), NULL, &rawlen, NULL,
					   sodium_base64_VARIANT_ORIGINAL),
			 0);
	assert_int_equal(rawlen, 16);
	for (int i = 0; i < 4; i++) {
		float fl;
		uint32_t u = (uint32_t)raw[4 * i] | (uint32_t)raw[4 * i + 1] << 8 |
			     (uint32_t)raw[4 * i + 2] << 16 | (uint32_t)raw[4 * i + 3] << 24;
		memcpy(&fl, &u, 4);
		char k[32];
		snprintf(k, sizeof k, "data.0.embedding.%d", i);
		assert_true(fabs((double)fl - path_get(j, k)->valuedouble) < 1e-6);
	}
	cJSON_Delete(j);
	cJSON_Delete(j2);
	resp_free(&r);
	resp_free(&r2);
	post(f->port, "/openai/v1/embeddings", NULL, "{\"model\":\"e\",\"input\":[1,2]}", &r);
	assert_int_equal(r.status, 400);
	resp_free(&r);
}

/* ---- Gemini ---- */

#define GEMINI_BODY                                                                                \
	"{\"systemInstruction\":{\"parts\":[{\"text\":\"Be brief.\"}]},\"contents\":[{\"role\":"   \
	"\"user\",\"parts\":[{\"text\":\"hello \"},{\"text\":\"gemini\"}]}]%s}"

static void test_gemini_generate(void **state)
{
	struct fx *f = *state;
	char body[512];
	snprintf(body, sizeof body, GEMINI_BODY, "");
	struct resp r;
	post(f->port, "/gemini/v1beta/models/gemini-2.0-flash:generateContent",
	     "x-goog-api-key: g-key\r\n", body, &r);
	assert_int_equal(r.status, 200);
	common_headers(&r, "application/json");
	cJSON *j = body_json(&r);
	assert_string_equal(str(j, "candidates.0.content.role"), "model");
	assert_string_equal(str(j, "candidates.0.finishReason"), "STOP");
	assert_int_equal(num(j, "candidates.0.index"), 0);
	const char *text = str(j, "candidates.0.content.parts.0.text");
	assert_true(strncmp(text, "Stubbed Gemini response", 23) == 0);
	long long out = num(j, "usageMetadata.candidatesTokenCount");
	assert_int_equal(strlen(text), 4 * out);
	const char *all = "Be brief.hello gemini";
	assert_int_equal(num(j, "usageMetadata.promptTokenCount"),
			 lt_token_estimate(all, strlen(all)));
	assert_int_equal(num(j, "usageMetadata.totalTokenCount"),
			 num(j, "usageMetadata.promptTokenCount") + out);
	assert_null(path_get(j, "usageMetadata.thoughtsTokenCount"));
	assert_null(path_get(j, "usageMetadata.cachedContentTokenCount"));
	assert_string_equal(str(j, "modelVersion"), "gemini-2.0-flash");
	assert_int_equal(strlen(str(j, "responseId")), 22);
	cJSON_Delete(j);
	resp_free(&r);

	/* 2.5 models think: thoughtsTokenCount, outside candidatesTokenCount;
	 * maxOutputTokens cuts with MAX_TOKENS. */
	snprintf(body, sizeof body, GEMINI_BODY, ",\"generationConfig\":{\"maxOutputTokens\":2}");
	post(f->port, "/gemini/v1beta/models/gemini-2.5-flash:generateContent?key=q-key", NULL,
	     body, &r);
	assert_int_equal(r.status, 200);
	j = body_json(&r);
	assert_string_equal(str(j, "candidates.0.finishReason"), "MAX_TOKENS");
	assert_int_equal(num(j, "usageMetadata.candidatesTokenCount"), 2);
	assert_int_equal(num(j, "usageMetadata.thoughtsTokenCount"), 16);
	assert_int_equal(num(j, "usageMetadata.totalTokenCount"),
			 num(j, "usageMetadata.promptTokenCount") + 2 + 16);
	assert_int_equal(strlen(str(j, "candidates.0.content.parts.0.text")), 8);
	cJSON_Delete(j);
	resp_free(&r);

	post(f->port, "/gemini/v1beta/models/gemini-2.0-flash:generateContent", NULL,
	     "{\"contents\":[]}", &r);
	assert_int_equal(r.status, 400);
	j = body_json(&r);
	assert_int_equal(num(j, "error.code"), 400);
	assert_string_equal(str(j, "error.status"), "INVALID_ARGUMENT");
	cJSON_Delete(j);
	resp_free(&r);
	post(f->port, "/gemini/v1beta/models/gemini-2.0-flash:generateContent", NULL, "{nope", &r);
	assert_int_equal(r.status, 400);
	j = body_json(&r);
	assert_string_equal(str(j, "error.status"), "INVALID_ARGUMENT");
	cJSON_Delete(j);
	resp_free(&r);
}

static void test_gemini_stream(void **state)
{
	struct fx *f = *state;
	char body[512];
	snprintf(body, sizeof body, GEMINI_BODY, "");
	struct resp r;
	post(f->port, "/gemini/v1beta/models/gemini-2.5-flash:generateContent", NULL, body, &r);
	cJSON *j = body_json(&r);
	char *text = strdup(str(j, "candidates.0.content.parts.0.text"));
	long long out = num(j, "usageMetadata.candidatesTokenCount");
	long long prompt = num(j, "usageMetadata.promptTokenCount");
	cJSON_Delete(j);
	resp_free(&r);

	post(f->port, "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", NULL,
	     body, &r);
	assert_int_equal(r.status, 200);
	common_headers(&r, "text/event-stream");
	assert_true(r.chunked && r.complete);
	char **ev;
	size_t n = sse_split(r.body, "\r\n\r\n", &ev);
	assert_true(n >= 2);
	char got[1024] = "";
	long long prev = 0;
	for (size_t i = 0; i < n; i++) {
		j = json_of(ev[i], strlen(ev[i]));
		const char *piece = str(j, "candidates.0.content.parts.0.text");
		assert_true(strlen(piece) >= 1 && strlen(piece) <= 16);
		memcpy(got + strlen(got), piece, strlen(piece) + 1);
		long long cand = num(j, "usageMetadata.candidatesTokenCount");
		assert_true(cand > prev); /* cumulative */
		prev = cand;
		assert_int_equal(num(j, "usageMetadata.promptTokenCount"), prompt);
		assert_int_equal(num(j, "usageMetadata.thoughtsTokenCount"), 16);
		assert_int_equal(num(j, "usageMetadata.totalTokenCount"), prompt + cand + 16);
		assert_string_equal(str(j, "candidates.0.content.role"), "model");
		if (i == n - 1)
			assert_string_equal(str(j, "candidates.0.finishReason"), "STOP");
		else
			assert_null(path_get(j, "candidates.0.finishReason"));
		cJSON_Delete(j);
	}
	assert_string_equal(got, text);
	assert_int_equal(prev, out);
	sse_free(ev, n);
	resp_free(&r);

	/* Without alt=sse: the responses as one JSON array. */
	post(f->port, "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent", NULL, body,
	     &r);
	assert_int_equal(r.status, 200);
	j = body_json(&r);
	assert_true(cJSON_IsArray(j));
	assert_int_equal((size_t)cJSON_GetArraySize(j), n);
	cJSON_Delete(j);
	resp_free(&r);
	free(text);
}

/* ---- the reference's /api/v1/{provider}/chat ---- */

static void test_reference(void **state)
{
	struct fx *f = *state;
	static const char *const prov[] = {"qwen", "gemini", "openai"};
	static const char *const msg[] = {"Stubbed Qwen response", "Stubbed Gemini response",
					  "Stubbed OpenAI response"};
	for (int i = 0; i < 3; i++) {
		char path[64];
		snprintf(path, sizeof path, "/api/v1/%s/chat", prov[i]);
		struct resp r;
		post(f->port, path, NULL, "{\"prompt\":\"Hi there\",\"n\":[1,2]}", &r);
		assert_int_equal(r.status, 200);
		common_headers(&r, "application/json");
		cJSON *j = body_json(&r);
		assert_true(lt_uuid_valid(str(j, "id"), strlen(str(j, "id"))));
		assert_string_equal(str(j, "provider"), prov[i]);
		assert_string_equal(str(j, "message"), msg[i]);
		assert_string_equal(str(j, "received.prompt"), "Hi there");
		assert_int_equal(num(j, "received.n.1"), 2);
		int64_t ns;
		assert_int_equal(
			lt_time_parse_iso(str(j, "created"), strlen(str(j, "created")), &ns),
			LT_OK);
		cJSON_Delete(j);
		resp_free(&r);
	}
	struct resp r;
	post(f->port, "/api/v1/claude/chat", NULL, "{\"prompt\":\"x\"}", &r);
	assert_int_equal(r.status, 404);
	resp_free(&r);
}

/* ---- payments ---- */

static void pay(struct fx *f, const char *op, const char *key, const char *body, struct resp *r)
{
	char path[64], hdr[300];
	snprintf(path, sizeof path, "/payment/v1/%s", op);
	snprintf(hdr, sizeof hdr, "Idempotency-Key: %s\r\n", key);
	post(f->port, path, key ? hdr : NULL, body, r);
}

static void test_payments(void **state)
{
	struct fx *f = *state;
	struct resp r, r2;
	pay(f, "authorize", NULL, "{\"amountMicros\":5000}", &r);
	assert_int_equal(r.status, 400);
	resp_free(&r);
	pay(f, "authorize", "a-1", "{\"amountMicros\":-1}", &r);
	assert_int_equal(r.status, 400);
	resp_free(&r);

	pay(f, "authorize", "a-1", "{\"amountMicros\":5000,\"reference\":\"saga-1\"}", &r);
	assert_int_equal(r.status, 200);
	common_headers(&r, "application/json");
	cJSON *j = body_json(&r);
	char id[64];
	snprintf(id, sizeof id, "%s", str(j, "paymentId"));
	assert_string_equal(str(j, "status"), "AUTHORIZED");
	assert_int_equal(num(j, "amountMicros"), 5000);
	assert_string_equal(str(j, "reference"), "saga-1");
	cJSON_Delete(j);
	/* The same key replays the first answer: no second payment. */
	pay(f, "authorize", "a-1", "{\"amountMicros\":5000,\"reference\":\"saga-1\"}", &r2);
	assert_int_equal(r2.status, 200);
	assert_int_equal(r2.body_len, r.body_len);
	assert_memory_equal(r2.body, r.body, r.body_len);
	char v[64];
	assert_non_null(header(&r2, "Idempotent-Replayed", v, sizeof v));
	assert_string_equal(v, "true");
	resp_free(&r2);
	resp_free(&r);
	/* Another key, another payment. */
	pay(f, "authorize", "a-2", "{\"amountMicros\":5000}", &r);
	j = body_json(&r);
	assert_string_not_equal(str(j, "paymentId"), id);
	char id2[64];
	snprintf(id2, sizeof id2, "%s", str(j, "paymentId"));
	cJSON_Delete(j);
	resp_free(&r);

	char body[128];
	snprintf(body, sizeof body, "{\"paymentId\":\"%s\"}", id);
	pay(f, "capture", "c-1", body, &r);
	assert_int_equal(r.status, 200);
	j = body_json(&r);
	assert_string_equal(str(j, "status"), "CAPTURED");
	cJSON_Delete(j);
	resp_free(&r);
	pay(f, "capture", "c-1b", body, &r); /* capturing twice is harmless */
	assert_int_equal(r.status, 200);
	resp_free(&r);
	pay(f, "release", "r-1", body, &r);
	assert_int_equal(r.status, 409);
	j = body_json(&r);
	assert_int_equal(num(j, "status"), 409);
	cJSON_Delete(j);
	resp_free(&r);
	pay(f, "release", "r-1", body, &r); /* the 409 is replayed too */
	assert_int_equal(r.status, 409);
	assert_non_null(header(&r, "Idempotent-Replayed", v, sizeof v));
	resp_free(&r);

	snprintf(body, sizeof body, "{\"paymentId\":\"%s\"}", id2);
	pay(f, "release", "r-2", body, &r);
	assert_int_equal(r.status, 200);
	j = body_json(&r);
	assert_string_equal(str(j, "status"), "RELEASED");
	cJSON_Delete(j);
	resp_free(&r);
	pay(f, "capture", "c-2", body, &r);
	assert_int_equal(r.status, 409);
	resp_free(&r);

	char path[128];
	snprintf(path, sizeof path, "/payment/v1/payments/%s", id);
	request(f->port, "GET", path, NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	j = body_json(&r);
	assert_string_equal(str(j, "status"), "CAPTURED");
	assert_string_equal(str(j, "paymentId"), id);
	cJSON_Delete(j);
	resp_free(&r);
	request(f->port, "GET", "/payment/v1/payments/00000000-0000-4000-8000-000000000000", NULL,
		NULL, &r);
	assert_int_equal(r.status, 404);
	resp_free(&r);
	pay(f, "capture", "c-3", "{\"paymentId\":\"00000000-0000-4000-8000-000000000000\"}", &r);
	assert_int_equal(r.status, 404);
	resp_free(&r);
}

/* A drop after the effect: the retry with the same key replays it. */
static void test_payment_drop_then_replay(void **state)
{
	struct fx *f = *state;
	struct resp r;
	post(f->port, "/payment/v1/authorize",
	     "Idempotency-Key: drop-1\r\nX-Stub-Fault: drop-after=0\r\n", "{\"amountMicros\":7}",
	     &r);
	assert_int_equal(r.status, 200);
	assert_false(r.complete);
	resp_free(&r);
	pay(f, "authorize", "drop-1", "{\"amountMicros\":7}", &r);
	assert_int_equal(r.status, 200);
	assert_true(r.complete);
	char v[16];
	assert_non_null(header(&r, "Idempotent-Replayed", v, sizeof v));
	resp_free(&r);
}

/* ---- control API and faults ---- */

static void test_control_api(void **state)
{
	struct fx *f = *state;
	struct resp r;
	request(f->port, "GET", "/_stub/health", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	common_headers(&r, "application/json");
	assert_string_equal(r.body, "{\"status\":\"ok\"}");
	resp_free(&r);
	request(f->port, "GET", "/no/such/path", NULL, NULL, &r);
	assert_int_equal(r.status, 404);
	common_headers(&r, "application/json");
	cJSON_Delete(body_json(&r));
	resp_free(&r);
	request(f->port, "GET", CHAT_OPENAI, NULL, NULL, &r);
	assert_int_equal(r.status, 405);
	char v[64];
	assert_non_null(header(&r, "Allow", v, sizeof v));
	assert_string_equal(v, "POST");
	resp_free(&r);
	post(f->port, "/_stub/faults", NULL, "{\"status\":503}", &r);
	assert_int_equal(r.status, 400); /* match is required */
	resp_free(&r);
	post(f->port, "/_stub/faults", NULL, "{\"match\":\"/x\",\"stauts\":503}", &r);
	assert_int_equal(r.status, 400); /* a typo is an error */
	resp_free(&r);

	/* The request log: credentials, faults, sizes; control requests are not in it. */
	post(f->port, CHAT_OPENAI, "Authorization: Bearer sk-test-1\r\n",
	     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &r);
	resp_free(&r);
	post(f->port, "/gemini/v1beta/models/g:generateContent?key=kq", NULL,
	     "{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}]}", &r);
	resp_free(&r);
	post(f->port, "/gemini/v1beta/models/g:generateContent",
	     "x-goog-api-key: kh\r\n"
	     "X-Stub-Fault: status=500\r\n",
	     "{}", &r);
	assert_int_equal(r.status, 500);
	resp_free(&r);
	request(f->port, "GET", "/_stub/requests", NULL, NULL, &r);
	assert_int_equal(r.status, 200);
	cJSON *j = body_json(&r);
	const cJSON *reqs = path_get(j, "requests");
	assert_int_equal(cJSON_GetArraySize(reqs), 3);
	assert_string_equal(str(reqs, "0.method"), "POST");
	assert_string_equal(str(reqs, "0.path"), CHAT_OPENAI);
	assert_string_equal(str(reqs, "0.credential"), "Bearer sk-test-1");
	assert_true(cJSON_IsNull(path_get(reqs, "0.fault")));
	assert_int_equal(num(reqs, "0.body_bytes"), 56);
	assert_true(num(reqs, "0.received_ms") > 1600000000000LL);
	assert_string_equal(str(reqs, "1.credential"), "kq");
	assert_string_equal(str(reqs, "2.credential"), "kh");
	assert_string_equal(str(reqs, "2.fault"), "status=500");
	assert_true(num(reqs, "1.seq") == num(reqs, "0.seq") + 1);
	cJSON_Delete(j);
	resp_free(&r);
	request(f->port, "DELETE", "/_stub/requests", NULL, NULL, &r);
	assert_string_equal(r.body, "{\"cleared\":3}");
	resp_free(&r);
	request(f->port, "GET", "/_stub/requests", NULL, NULL, &r);
	assert_string_equal(r.body, "{\"requests\":[]}");
	resp_free(&r);
}

static void test_fault_plans(void **state)
{
	struct fx *f = *state;
	struct resp r;
	post(f->port, "/_stub/faults", NULL,
	     "{\"match\":\"/openai\",\"status\":503,\"retry_after_s\":3,\"count\":2}", &r);
	assert_int_equal(r.status, 200);
	cJSON *j = body_json(&r);
	assert_true(cJSON_IsTrue(path_get(j, "queued")));
	assert_int_equal(num(j, "count"), 2);
	cJSON_Delete(j);
	resp_free(&r);
	post(f->port, "/_stub/faults", NULL, "{\"match\":\"/gemini\",\"status\":429}", &r);
	resp_free(&r);
	request(f->port, "GET", "/_stub/faults", NULL, NULL, &r);
	j = body_json(&r);
	assert_int_equal(cJSON_GetArraySize(path_get(j, "plans")), 2);
	cJSON_Delete(j);
	resp_free(&r);

	const char *chat = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
	char v[64];
	for (int i = 0; i < 2; i++) {
		post(f->port, i ? "/openai/v1/embeddings" : CHAT_OPENAI, NULL, chat, &r);
		assert_int_equal(r.status, 503);
		common_headers(&r, "application/json");
		assert_non_null(header(&r, "Retry-After", v, sizeof v));
		assert_string_equal(v, "3");
		j = body_json(&r);
		assert_string_equal(str(j, "error.type"), "server_error");
		cJSON_Delete(j);
		resp_free(&r);
	}
	post(f->port, CHAT_OPENAI, NULL, chat, &r); /* the plan is used up */
	assert_int_equal(r.status, 200);
	resp_free(&r);
	post(f->port, "/gemini/v1beta/models/g:generateContent", NULL, "{}", &r);
	assert_int_equal(r.status, 429);
	assert_non_null(header(&r, "Retry-After", v, sizeof v));
	assert_string_equal(v, "1"); /* the configured retry_after_s */
	j = body_json(&r);
	assert_int_equal(num(j, "error.code"), 429);
	assert_string_equal(str(j, "error.status"), "RESOURCE_EXHAUSTED");
	cJSON_Delete(j);
	resp_free(&r);

	/* DELETE clears queued plans. */
	post(f->port, "/_stub/faults", NULL, "{\"match\":\"/qwen\",\"status\":500,\"count\":5}",
	     &r);
	resp_free(&r);
	request(f->port, "DELETE", "/_stub/faults", NULL, NULL, &r);
	assert_string_equal(r.body, "{\"cleared\":1}");
	resp_free(&r);
	post(f->port, CHAT_QWEN, NULL, chat, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	/* A 400 status plan in the OpenAI shape; 4xx other than 429 carry no Retry-After. */
	post(f->port, "/_stub/faults", NULL, "{\"match\":\"/qwen\",\"status\":400}", &r);
	resp_free(&r);
	post(f->port, CHAT_QWEN, NULL, chat, &r);
	assert_int_equal(r.status, 400);
	assert_null(header(&r, "Retry-After", v, sizeof v));
	resp_free(&r);
}

static void test_drop_mid_stream(void **state)
{
	struct fx *f = *state;
	const char *sbody = "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\","
			    "\"content\":\"a longer prompt\"}]}";
	struct resp r;
	post(f->port, CHAT_OPENAI, "X-Stub-Fault: drop-after=3\r\n", sbody, &r);
	assert_int_equal(r.status, 200);
	assert_true(r.chunked);
	assert_false(r.complete); /* no terminating chunk */
	char **ev;
	size_t n = sse_split(r.body, "\n\n", &ev);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++)
		cJSON_Delete(json_of(ev[i], strlen(ev[i])));
	sse_free(ev, n);
	resp_free(&r);

	/* The same through a queued plan, for Gemini's framing. */
	post(f->port, "/_stub/faults", NULL, "{\"match\":\"/gemini\",\"drop_after\":1}", &r);
	resp_free(&r);
	post(f->port, "/gemini/v1beta/models/g:streamGenerateContent?alt=sse", NULL,
	     "{\"contents\":[{\"parts\":[{\"text\":\"x\"}]}]}", &r);
	assert_int_equal(r.status, 200);
	assert_false(r.complete);
	n = sse_split(r.body, "\r\n\r\n", &ev);
	assert_int_equal(n, 1);
	sse_free(ev, n);
	resp_free(&r);

	/* Non-stream: Content-Length promises more than arrives. */
	post(f->port, CHAT_OPENAI, "X-Stub-Fault: drop-after=1\r\n",
	     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &r);
	assert_int_equal(r.status, 200);
	assert_true(r.content_length > 0);
	assert_true((long long)r.body_len < r.content_length);
	assert_false(r.complete);
	resp_free(&r);
}

static void test_malformed(void **state)
{
	struct fx *f = *state;
	struct resp r;
	post(f->port, CHAT_OPENAI, "X-Stub-Fault: malformed\r\n",
	     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &r);
	assert_int_equal(r.status, 200);
	assert_true(r.complete); /* the HTTP is fine ... */
	cJSON *j = NULL;
	size_t pos;
	assert_int_not_equal(lt_json_parse(r.body, r.body_len, &j, &pos),
			     LT_OK); /* ... the JSON not */
	assert_true(r.body[0] == '{');
	resp_free(&r);

	post(f->port, CHAT_OPENAI, "X-Stub-Fault: malformed\r\n",
	     "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]"
	     "}",
	     &r);
	assert_int_equal(r.status, 200);
	assert_true(r.complete);
	char **ev;
	size_t n = sse_split(r.body, "\n\n", &ev);
	assert_true(n >= 4);
	cJSON_Delete(json_of(ev[0], strlen(ev[0])));
	assert_int_not_equal(lt_json_parse(ev[1], strlen(ev[1]), &j, &pos), LT_OK);
	assert_string_equal(ev[n - 1], "[DONE]");
	sse_free(ev, n);
	resp_free(&r);

	/* A bad X-Stub-Fault header is the client's error. */
	post(f->port, CHAT_OPENAI, "X-Stub-Fault: status=abc\r\n", "{}", &r);
	assert_int_equal(r.status, 400);
	j = body_json(&r);
	assert_non_null(strstr(str(j, "error.message"), "X-Stub-Fault"));
	cJSON_Delete(j);
	resp_free(&r);
	/* A header status wins over the handler and carries Retry-After. */
	post(f->port, CHAT_OPENAI, "X-Stub-Fault: status=429; retry-after=2\r\n", "{}", &r);
	assert_int_equal(r.status, 429);
	char v[16];
	assert_string_equal(header(&r, "Retry-After", v, sizeof v), "2");
	j = body_json(&r);
	assert_string_equal(str(j, "error.code"), "rate_limit_exceeded");
	cJSON_Delete(j);
	resp_free(&r);
}

static void test_body_limit(void **state)
{
	struct fx *f = *state;
	/* Declared over 1 MiB: refused before the body is read. */
	int fd = connect_port(f->port);
	const char *req = "POST " CHAT_OPENAI " HTTP/1.1\r\nHost: x\r\nContent-Type: "
			  "application/json\r\nContent-Length: 1048577\r\n\r\n";
	send_all(fd, req, strlen(req));
	size_t len;
	char *raw = read_all(fd, &len);
	close(fd);
	struct resp r;
	parse_response(raw, len, &r);
	free(raw);
	assert_int_equal(r.status, 413);
	cJSON *j = body_json(&r);
	assert_string_equal(str(j, "error.type"), "invalid_request_error");
	cJSON_Delete(j);
	resp_free(&r);
	/* Exactly 1 MiB is read (and then judged on its JSON). */
	char *body = malloc(1048577);
	memset(body, ' ', 1048576);
	body[0] = '{';
	body[1048575] = '}';
	body[1048576] = '\0';
	post(f->port, CHAT_OPENAI, NULL, body, &r);
	assert_int_equal(r.status, 400); /* {} has no model */
	resp_free(&r);
	free(body);
}

/* Keep-alive: several answers, streams included, on one connection. */
static void test_keep_alive(void **state)
{
	struct fx *f = *state;
	int fd = connect_port(f->port);
	const char *b1 = "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\","
			 "\"content\":\"x\"}]}";
	char req[1024];
	int n = snprintf(req, sizeof req,
			 "POST " CHAT_OPENAI " HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s"
			 "GET /_stub/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			 strlen(b1), b1);
	send_all(fd, req, (size_t)n);
	size_t len;
	char *raw = read_all(fd, &len);
	close(fd);
	/* The stream ends with its last chunk, then the second answer follows. */
	const char *second = strstr(raw, "0\r\n\r\nHTTP/1.1 200 OK\r\n");
	assert_non_null(second);
	assert_non_null(strstr(second, "{\"status\":\"ok\"}"));
	free(raw);
}

/* Expect: 100-continue is answered before the body is sent. */
static void test_expect_continue(void **state)
{
	struct fx *f = *state;
	int fd = connect_port(f->port);
	const char *body = "{\"prompt\":\"x\"}";
	char head[256];
	int n = snprintf(head, sizeof head,
			 "POST /api/v1/openai/chat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
			 "Expect: 100-continue\r\nContent-Length: %zu\r\n\r\n",
			 strlen(body));
	send_all(fd, head, (size_t)n);
	char interim[64];
	const char want[] = "HTTP/1.1 100 Continue\r\n\r\n";
	size_t got = 0;
	while (got < sizeof want - 1) {
		ssize_t r = recv(fd, interim + got, sizeof want - 1 - got, 0);
		assert_true(r > 0);
		got += (size_t)r;
	}
	assert_memory_equal(interim, want, sizeof want - 1);
	send_all(fd, body, strlen(body));
	size_t len;
	char *raw = read_all(fd, &len);
	close(fd);
	struct resp r;
	parse_response(raw, len, &r);
	free(raw);
	assert_int_equal(r.status, 200);
	resp_free(&r);
}

/* ---- reload and stop ---- */

static void test_reload(void **state)
{
	struct fx *f = *state;
	struct lt_config cfg = f->cfg;
	cfg.stubs_error_rate_pct = 100;
	cfg.stubs_error_status = 429;
	cfg.stubs_retry_after_s = 11;
	lt_stubs_reload(f->s, &cfg);
	struct resp r;
	post(f->port, "/api/v1/openai/chat", NULL, "{\"prompt\":\"x\"}", &r);
	assert_int_equal(r.status, 429);
	char v[16];
	assert_string_equal(header(&r, "Retry-After", v, sizeof v), "11");
	resp_free(&r);
	request(f->port, "GET", "/_stub/health", NULL, NULL, &r); /* control is never faulted */
	assert_int_equal(r.status, 200);
	resp_free(&r);
	lt_stubs_reload(f->s, &f->cfg);
	post(f->port, "/api/v1/openai/chat", NULL, "{\"prompt\":\"x\"}", &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
}

struct slow {
	int port;
	struct resp r;
	bool got_status;
	size_t raw_len;
};

static void *slow_client(void *arg)
{
	struct slow *c = arg;
	int fd = connect_port(c->port);
	const char *req = "POST /api/v1/qwen/chat HTTP/1.1\r\nHost: x\r\nX-Stub-Fault: "
			  "delay=600000\r\nContent-Length: 2\r\n\r\n{}";
	send_all(fd, req, strlen(req));
	char *raw = read_all(fd, &c->raw_len);
	close(fd);
	c->got_status = c->raw_len > 12 && sscanf(raw, "HTTP/1.1 %d", &c->r.status) == 1;
	free(raw);
	return NULL;
}

static bool seen_request(void *arg)
{
	struct fx *f = arg;
	struct resp r;
	request(f->port, "GET", "/_stub/requests", NULL, NULL, &r);
	bool seen = strstr(r.body, "delay=600000") != NULL;
	resp_free(&r);
	return seen;
}

static void test_stop_cuts_delay(void **state)
{
	(void)state;
	struct fx g;
	memset(&g, 0, sizeof g);
	fx_config(&g.cfg);
	fx_start(&g);
	struct slow c;
	memset(&c, 0, sizeof c);
	c.port = g.port;
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, slow_client, &c), 0);
	assert_true(tu_wait_until(seen_request, &g));
	/* Stop returns although a request sleeps for 10 minutes, and the
	 * sleeper answers 503 before its connection closes. */
	lt_stubs_stop(g.s);
	pthread_join(th, NULL);
	assert_true(c.got_status);
	assert_int_equal(c.r.status, 503);
}

/* ---- HTTPS ---- */

/* Copy a path into a config string (it must fit). */
static void set_str(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	assert_true(n < cap);
	memcpy(dst, src, n + 1);
}

static bool have_tool(const char *name)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
	return system(cmd) == 0;
}

/* Run cmd, capture stdout; returns the exit status. */
static int run_capture(const char *cmd, char *out, size_t cap)
{
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t n = fread(out, 1, cap - 1, p);
	out[n] = '\0';
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_tls(void **state)
{
	(void)state;
	if (!have_tool("openssl") || !have_tool("curl")) {
		fprintf(stderr, "test_tls: openssl or curl missing; HTTPS is covered by "
				"tests/integration/test_stubs.py\n");
		skip();
	}
	char dir[TU_PATH_MAX], cert[TU_PATH_MAX], key[TU_PATH_MAX], both[TU_PATH_MAX];
	tu_tmpdir(dir);
	tu_path(cert, dir, "cert.pem");
	tu_path(key, dir, "key.pem");
	tu_path(both, dir, "both.pem");
	char cmd[6 * TU_PATH_MAX];
	snprintf(cmd, sizeof cmd,
		 "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -addext "
		 "subjectAltName=DNS:localhost -days 2 -keyout %s -out %s >/dev/null 2>&1 && "
		 "cat %s %s > %s",
		 key, cert, cert, key, both);
	assert_int_equal(system(cmd), 0);

	struct fx g;
	memset(&g, 0, sizeof g);
	fx_config(&g.cfg);
	snprintf(g.cfg.stubs_tls_listen, sizeof g.cfg.stubs_tls_listen, "127.0.0.1:0");
	set_str(g.cfg.stubs_tls_cert, sizeof g.cfg.stubs_tls_cert, both);
	fx_start(&g);
	int tls = lt_stubs_tls_port(g.s);
	assert_true(tls > 0 && tls != g.port);

	static char out[65536];
	snprintf(cmd, sizeof cmd,
		 "curl -sS --max-time 30 --cacert %s -H 'Authorization: Bearer tls-key' "
		 "-d "
		 "'{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"tls\"}]}' "
		 "https://localhost:%d/openai/v1/chat/completions",
		 cert, tls);
	assert_int_equal(run_capture(cmd, out, sizeof out), 0);
	cJSON *j = json_of(out, strlen(out));
	assert_true(strncmp(str(j, "choices.0.message.content"), "Stubbed OpenAI", 14) == 0);
	cJSON_Delete(j);
	/* A stream, frame by frame, through the terminator. */
	snprintf(cmd, sizeof cmd,
		 "curl -sS -N --max-time 30 --cacert %s "
		 "-d '{\"contents\":[{\"parts\":[{\"text\":\"tls\"}]}]}' "
		 "'https://localhost:%d/gemini/v1beta/models/g:streamGenerateContent?alt=sse'",
		 cert, tls);
	assert_int_equal(run_capture(cmd, out, sizeof out), 0);
	char **ev;
	size_t n = sse_split(out, "\r\n\r\n", &ev);
	assert_true(n >= 2);
	j = json_of(ev[n - 1], strlen(ev[n - 1]));
	assert_string_equal(str(j, "candidates.0.finishReason"), "STOP");
	cJSON_Delete(j);
	sse_free(ev, n);
	/* A dropped stream is cut short over TLS too (curl: 18, partial file). */
	snprintf(
		cmd, sizeof cmd,
		"curl -sS -N --max-time 30 --cacert %s -H 'X-Stub-Fault: drop-after=2' "
		"-d '{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\","
		"\"content\":\"x\"}]}' https://localhost:%d/openai/v1/chat/completions 2>/dev/null",
		cert, tls);
	assert_int_equal(run_capture(cmd, out, sizeof out), 18);
	/* The request log saw the credential sent over TLS. */
	struct resp r;
	request(g.port, "GET", "/_stub/requests", NULL, NULL, &r);
	assert_non_null(strstr(r.body, "\"credential\":\"Bearer tls-key\""));
	resp_free(&r);
	lt_stubs_stop(g.s);

	/* A TLS listener that cannot start fails the start with a reason. */
	struct lt_config cfg;
	fx_config(&cfg);
	snprintf(cfg.stubs_tls_listen, sizeof cfg.stubs_tls_listen, "127.0.0.1:0");
	set_str(cfg.stubs_tls_cert, sizeof cfg.stubs_tls_cert, cert); /* no key */
	struct lt_stubs *s = NULL;
	char why[512] = "";
	assert_int_equal(lt_stubs_start(&cfg, &g.log, &s, why, sizeof why), LT_EIO);
	assert_null(s);
	assert_non_null(strstr(why, "PRIVATE KEY"));
	tu_path(both, dir, "missing.pem");
	set_str(cfg.stubs_tls_cert, sizeof cfg.stubs_tls_cert, both);
	assert_int_equal(lt_stubs_start(&cfg, &g.log, &s, why, sizeof why), LT_EIO);
	assert_non_null(strstr(why, "missing.pem"));
	cfg.stubs_tls_cert[0] = '\0';
	assert_int_equal(lt_stubs_start(&cfg, &g.log, &s, why, sizeof why), LT_EIO);
	assert_non_null(strstr(why, "tls_cert"));
	tu_rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_openai_chat, reset),
		cmocka_unit_test_setup(test_openai_max_tokens_and_reasoning, reset),
		cmocka_unit_test_setup(test_openai_bad_requests, reset),
		cmocka_unit_test_setup(test_openai_stream, reset),
		cmocka_unit_test_setup(test_qwen_chat_and_stream, reset),
		cmocka_unit_test_setup(test_embeddings, reset),
		cmocka_unit_test_setup(test_gemini_generate, reset),
		cmocka_unit_test_setup(test_gemini_stream, reset),
		cmocka_unit_test_setup(test_reference, reset),
		cmocka_unit_test_setup(test_payments, reset),
		cmocka_unit_test_setup(test_payment_drop_then_replay, reset),
		cmocka_unit_test_setup(test_control_api, reset),
		cmocka_unit_test_setup(test_fault_plans, reset),
		cmocka_unit_test_setup(test_drop_mid_stream, reset),
		cmocka_unit_test_setup(test_malformed, reset),
		cmocka_unit_test_setup(test_body_limit, reset),
		cmocka_unit_test_setup(test_keep_alive, reset),
		cmocka_unit_test_setup(test_expect_continue, reset),
		cmocka_unit_test_setup(test_reload, reset),
		cmocka_unit_test(test_stop_cuts_delay),
		cmocka_unit_test(test_tls),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
