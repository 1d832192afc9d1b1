/*
 * test_sse.c — src/provider/sse.c: LF, CRLF and CR line endings; the same
 * events whatever the split; multi-line data, comments, event types, BOM,
 * events without data, lt_sse_finish with a pending event, limits, callback
 * errors; and the streams OpenAI and Gemini actually send.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "provider/sse.h"

/* Events recorded as "type\x1f" data "\x1e", so sequences compare as one
 * string (data may hold any byte). */
struct log {
	char buf[1 << 17];
	size_t len;
	size_t n;
	size_t fail_at; /* 1-based event number that returns LT_ESTOPPED, 0 = never */
};

static void log_put(struct log *l, const char *p, size_t n)
{
	if (n > sizeof l->buf - l->len)
		fail_msg("event log overflow");
	memcpy(l->buf + l->len, p, n);
	l->len += n;
}

static enum lt_err on_event(void *arg, const char *event, const char *data, size_t data_len)
{
	struct log *l = arg;
	assert_int_equal(data[data_len], '\0');
	log_put(l, event, strlen(event));
	log_put(l, "\x1f", 1);
	log_put(l, data, data_len);
	log_put(l, "\x1e", 1);
	l->n++;
	return l->n == l->fail_at ? LT_ESTOPPED : LT_OK;
}

/* Feed the whole of in as pieces cut at the given offsets (ascending). */
static enum lt_err feed_cuts(struct lt_sse *s, const char *in, size_t len, const size_t *cuts,
			     size_t ncuts, struct log *l)
{
	size_t at = 0;
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : len;
		enum lt_err e = lt_sse_feed(s, in + at, end - at, on_event, l);
		if (e != LT_OK)
			return e;
		at = end;
	}
	return LT_OK;
}

/* Parse in whole with max_event; the log goes to l, the result is returned,
 * *pending gets lt_sse_finish's answer. */
static enum lt_err parse(const char *in, size_t len, size_t max_event, struct log *l, bool *pending)
{
	struct lt_sse s;
	memset(l, 0, sizeof *l);
	assert_int_equal(lt_sse_init(&s, max_event), LT_OK);
	enum lt_err e = lt_sse_feed(&s, in, len, on_event, l);
	bool p = lt_sse_finish(&s);
	if (pending)
		*pending = p;
	lt_sse_free(&s);
	return e;
}

static void expect(const char *in, const char *want_log)
{
	struct log l;
	assert_int_equal(parse(in, strlen(in), 4096, &l, NULL), LT_OK);
	if (l.len != strlen(want_log) || memcmp(l.buf, want_log, l.len) != 0)
		fail_msg("stream '%s':\n got '%.*s'\nwant '%s'", in, (int)l.len, l.buf, want_log);
}

#define EV(type, data) type "\x1f" data "\x1e"

static void test_line_endings(void **state)
{
	(void)state;
	expect("data: a\n\n", EV("message", "a"));
	expect("data: a\r\n\r\n", EV("message", "a"));
	expect("data: a\r\r", EV("message", "a"));
	expect("data: a\rdata: b\n\r\ndata: c\r\n\n", EV("message", "a\nb") EV("message", "c"));
	/* CR LF is one line end, CR CR two, LF CR two */
	expect("data: a\r\n\rdata: b\n\r", EV("message", "a") EV("message", "b"));
	expect("data: a\n\rdata: b\r\n\r\n", EV("message", "a") EV("message", "b"));
	/* an unterminated last line is not a line */
	expect("data: a\n\ndata: b\n", EV("message", "a"));
	expect("data: a", "");
}

static void test_fields(void **state)
{
	(void)state;
	expect("data: a\ndata: b\ndata:c\n\n", EV("message", "a\nb\nc"));
	expect("data:  two\n\n", EV("message", " two"));
	expect("data:\n\n", EV("message", ""));
	expect("data\n\n", EV("message", ""));
	expect("data\ndata\n\n", EV("message", "\n"));
	expect("data: a:b: c\n\n", EV("message", "a:b: c"));
	/* comments */
	expect(": ping\n\n", "");
	expect(":\n: keep-alive\ndata: x\n: in between\n\n", EV("message", "x"));
	/* event types, reset after each dispatch */
	expect("event: delta\ndata: x\n\ndata: y\n\n", EV("delta", "x") EV("message", "y"));
	expect("event:error\ndata: boom\n\n", EV("error", "boom"));
	expect("event:\ndata: z\n\n", EV("message", "z"));
	expect("event: a\nevent: b\ndata: z\n\n", EV("b", "z"));
	/* events without data are not dispatched, and forget their type */
	expect("event: a\nid: 1\nretry: 100\n\n", "");
	expect("event: a\n\ndata: y\n\n", EV("message", "y"));
	/* id, retry and unknown fields are ignored; names are case-sensitive */
	expect("id: 7\nretry: 3000\nfoo: bar\nData: no\ndata: yes\n\n", EV("message", "yes"));
	expect("DATA: x\n\n", "");
	/* a long event type is truncated to the field */
	char in[256], want[256];
	memset(in, 0, sizeof in);
	memcpy(in, "event: ", 7);
	memset(in + 7, 't', 100);
	memcpy(in + 107, "\ndata: d\n\n", 10);
	memset(want, 0, sizeof want);
	memset(want, 't', 63);
	memcpy(want + 63,
	       "\x1f"
	       "d\x1e",
	       3);
	expect(in, want);
	/* data may hold NUL bytes */
	static const char nul[] = "data: a\0b\n\n";
	struct log l;
	assert_int_equal(parse(nul, sizeof nul - 1, 100, &l, NULL), LT_OK);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.len, sizeof "message\x1f"
				       "a\0b\x1e" -
					1);
	assert_memory_equal(l.buf,
			    "message\x1f"
			    "a\0b\x1e",
			    l.len);
}

static void test_bom(void **state)
{
	(void)state;
	expect("\xEF\xBB\xBF"
	       "data: a\n\n",
	       EV("message", "a"));
	expect("\xEF\xBB\xBF\n"
	       "data: a\n\n",
	       EV("message", "a"));
	/* only one, only at the start */
	expect("\xEF\xBB\xBF\xEF\xBB\xBF"
	       "data: a\n\n",
	       "");
	expect("data: a\n\n\xEF\xBB\xBF"
	       "data: b\n\n",
	       EV("message", "a"));
	/* a partial BOM is line text */
	expect("\xEF\xBB"
	       "data: a\n\n",
	       "");
	expect("\xEF\n"
	       "data: a\n\n",
	       EV("message", "a"));
	/* the value may start with BOM bytes */
	expect("data: \xEF\xBB\xBF\n\n", EV("message", "\xEF\xBB\xBF"));
}

static const char openai_stream[] =
	"data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"choices\":"
	"[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"
	"data: "
	"{\"id\":\"chatcmpl-9\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n"
	"data: {\"id\":\"chatcmpl-9\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},"
	"\"finish_reason\":\"stop\"}]}\n\n"
	"data: {\"id\":\"chatcmpl-9\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,"
	"\"completion_tokens\":2,\"total_tokens\":11}}\n\n"
	"data: [DONE]\n\n";

static const char gemini_stream[] =
	"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hel\"}],\"role\": "
	"\"model\"}}],\"modelVersion\": \"gemini-2.0-flash\"}\r\n\r\n"
	"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"lo\"}],\"role\": "
	"\"model\"},\"finishReason\": \"STOP\"}],\"usageMetadata\": {\"promptTokenCount\": 4,"
	"\"candidatesTokenCount\": 2,\"totalTokenCount\": 6}}\r\n\r\n";

static void test_provider_streams(void **state)
{
	(void)state;
	struct log l;
	bool pending = true;
	assert_int_equal(parse(openai_stream, strlen(openai_stream), 4096, &l, &pending), LT_OK);
	assert_false(pending);
	assert_int_equal(l.n, 5);
	static const char last[] = EV("message", "[DONE]");
	assert_true(l.len > sizeof last);
	assert_memory_equal(l.buf + l.len - (sizeof last - 1), last, sizeof last - 1);
	static const char first[] = "message\x1f{\"id\":\"chatcmpl-9\",";
	assert_memory_equal(l.buf, first, sizeof first - 1);

	assert_int_equal(parse(gemini_stream, strlen(gemini_stream), 4096, &l, &pending), LT_OK);
	assert_false(pending);
	assert_int_equal(l.n, 2);
	static const char gfirst[] = "message\x1f{\"candidates\": [{";
	assert_memory_equal(l.buf, gfirst, sizeof gfirst - 1);
	/* the data ends at the closing brace: no CR kept */
	const char *end = memchr(l.buf, '\x1e', l.len);
	assert_non_null(end);
	assert_int_equal(end[-1], '}');

	/* an OpenAI error event, as some compatible servers send it */
	expect("event: error\ndata: {\"error\":{\"message\":\"overloaded\"}}\n\n",
	       EV("error", "{\"error\":{\"message\":\"overloaded\"}}"));
}

static const char *const split_streams[] = {
	openai_stream,
	gemini_stream,
	"\xEF\xBB\xBF"
	"data: a\r\ndata: b\r\r\n: c\revent: e\ndata\n\n",
	"data: a\r\n\r\ndata: b\r\rdata: c\n\ndata: d\r\n",
	"event: x\n\nid: 1\ndata: y\r\nretry: 5\r\n\r\n\r\n\n\r",
	/* 32 bytes of data: exactly the limit used below; then 43, over it */
	"data: 0123456789\ndata: 0123456789\ndata: 0123456789\n\n"
	"data: 0123456789\ndata: 0123456789\ndata: 0123456789\ndata: 0123456789\n\n",
	"data: short\n\n: a comment line much longer than ninety six bytes, so that it trips the "
	"line limit of max_event + 64\n\ndata: never\n\n",
};

static void test_split_everywhere(void **state)
{
	(void)state;
	static struct log a, b;
	for (size_t t = 0; t < sizeof split_streams / sizeof split_streams[0]; t++) {
		const char *in = split_streams[t];
		size_t len = strlen(in);
		const size_t max_event = 32;
		memset(&a, 0, sizeof a);
		struct lt_sse s;
		assert_int_equal(lt_sse_init(&s, max_event), LT_OK);
		enum lt_err ea = lt_sse_feed(&s, in, len, on_event, &a);
		lt_sse_free(&s);
		/* one cut at every position, and two cuts around every pair */
		for (size_t k = 0; k <= len; k++) {
			for (size_t k2 = k; k2 <= len && k2 <= k + 2; k2++) {
				size_t cuts[2] = {k, k2};
				memset(&b, 0, sizeof b);
				assert_int_equal(lt_sse_init(&s, max_event), LT_OK);
				enum lt_err eb = feed_cuts(&s, in, len, cuts, 2, &b);
				lt_sse_free(&s);
				if (ea != eb || a.len != b.len || memcmp(a.buf, b.buf, a.len) != 0)
					fail_msg("stream %zu cut at %zu,%zu: err %d/%d, %zu/%zu "
						 "events",
						 t, k, k2, (int)ea, (int)eb, a.n, b.n);
			}
		}
		/* byte at a time */
		memset(&b, 0, sizeof b);
		assert_int_equal(lt_sse_init(&s, max_event), LT_OK);
		enum lt_err eb = LT_OK;
		for (size_t i = 0; i < len && eb == LT_OK; i++)
			eb = lt_sse_feed(&s, in + i, 1, on_event, &b);
		lt_sse_free(&s);
		assert_int_equal(ea, eb);
		assert_int_equal(a.len, b.len);
		assert_memory_equal(a.buf, b.buf, a.len);
	}
}

static void test_finish(void **state)
{
	(void)state;
	struct log l;
	bool pending;
	assert_int_equal(parse("data: a\n", 8, 100, &l, &pending), LT_OK);
	assert_true(pending);
	assert_int_equal(l.n, 0);
	assert_int_equal(parse("data: a", 7, 100, &l, &pending), LT_OK);
	assert_true(pending);
	assert_int_equal(parse("event: x\n", 9, 100, &l, &pending), LT_OK);
	assert_true(pending);
	assert_int_equal(parse("data: a\n\n", 9, 100, &l, &pending), LT_OK);
	assert_false(pending);
	assert_int_equal(l.n, 1);
	assert_int_equal(parse("data: a\n\n: bye\n", 15, 100, &l, &pending), LT_OK);
	assert_false(pending);
	assert_int_equal(parse("", 0, 100, &l, &pending), LT_OK);
	assert_false(pending);
	assert_int_equal(parse("\xEF\xBB", 2, 100, &l, &pending), LT_OK);
	assert_true(pending);

	/* the dropped event does not leak into the next stream */
	struct lt_sse s;
	memset(&l, 0, sizeof l);
	assert_int_equal(lt_sse_init(&s, 100), LT_OK);
	assert_int_equal(lt_sse_feed(&s, "event: old\ndata: old\r", 21, on_event, &l), LT_OK);
	assert_true(lt_sse_finish(&s));
	assert_false(lt_sse_finish(&s));
	assert_int_equal(lt_sse_feed(&s, "\ndata: new\n\n", 12, on_event, &l), LT_OK);
	assert_int_equal(l.n, 1);
	assert_int_equal(l.len, strlen(EV("message", "new")));
	assert_memory_equal(l.buf, EV("message", "new"), l.len);
	assert_int_equal(s.events, 1);
	lt_sse_free(&s);
	lt_sse_free(&s); /* twice is harmless */
}

static void test_limits(void **state)
{
	(void)state;
	struct log l;
	/* data of exactly max_event passes, one more byte does not */
	assert_int_equal(parse("data: 0123456789\n\n", 18, 10, &l, NULL), LT_OK);
	assert_int_equal(l.n, 1);
	assert_int_equal(parse("data: 0123456789A\n\n", 19, 10, &l, NULL), LT_ETOOBIG);
	assert_int_equal(l.n, 0);
	/* the joining newline counts */
	assert_int_equal(parse("data: 01234\ndata: 5678\n\n", 24, 10, &l, NULL), LT_OK);
	assert_int_equal(parse("data: 01234\ndata: 56789\n\n", 25, 10, &l, NULL), LT_ETOOBIG);
	/* events before the one too big are delivered */
	assert_int_equal(parse("data: ok\n\ndata: 0123456789A\n\n", 29, 10, &l, NULL), LT_ETOOBIG);
	assert_int_equal(l.n, 1);
	/* a line may be max_event + 64 bytes, not more (comments included) */
	char line[200];
	memset(line, 'c', sizeof line);
	line[0] = ':';
	line[74] = '\n';
	assert_int_equal(parse(line, 75, 10, &l, NULL), LT_OK);
	line[74] = 'c';
	line[75] = '\n';
	assert_int_equal(parse(line, 76, 10, &l, NULL), LT_ETOOBIG);
	/* the same limit without any line end */
	assert_int_equal(parse(line, 75, 10, &l, NULL), LT_ETOOBIG);
	/* data that grows its buffer well past the initial size */
	static char big[70000];
	memcpy(big, "data: ", 6);
	memset(big + 6, 'x', 65536);
	memcpy(big + 6 + 65536, "\n\n", 2);
	assert_int_equal(parse(big, 6 + 65536 + 2, 65536, &l, NULL), LT_OK);
	assert_int_equal(l.n, 1);
	assert_int_equal(parse(big, 6 + 65536 + 2, 65535, &l, NULL), LT_ETOOBIG);
	/* max_event 0: only empty data */
	assert_int_equal(parse("data:\n\n", 7, 0, &l, NULL), LT_OK);
	assert_int_equal(l.n, 1);
	assert_int_equal(parse("data: x\n\n", 9, 0, &l, NULL), LT_ETOOBIG);
}

static void test_callback_error(void **state)
{
	(void)state;
	struct lt_sse s;
	struct log l;
	memset(&l, 0, sizeof l);
	l.fail_at = 2;
	assert_int_equal(lt_sse_init(&s, 100), LT_OK);
	static const char in[] = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
	assert_int_equal(lt_sse_feed(&s, in, strlen(in), on_event, &l), LT_ESTOPPED);
	assert_int_equal(l.n, 2);
	assert_int_equal(s.events, 2);
	lt_sse_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_endings),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_bom),
		cmocka_unit_test(test_provider_streams),
		cmocka_unit_test(test_split_everywhere),
		cmocka_unit_test(test_finish),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_callback_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
