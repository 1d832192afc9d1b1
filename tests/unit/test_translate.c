/*
 * test_translate.c — src/provider/translate_*.c: chat request validation
 * (a table of good and bad bodies with the param each error names), the
 * openai/qwen request rewrite, the Gemini request built from an OpenAI one,
 * chat paths, non-streamed responses of every format with usage
 * normalisation, stream translation sequences for every format with and
 * without include_usage, stream error frames and usage estimates, the
 * embeddings pair, and upstream error messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider/translate.h"
#include "util/json.h"
#include "util/utf8.h"

/* ---- helpers ---- */

static cJSON *J(const char *s)
{
	cJSON *j = NULL;
	size_t pos;
	if (lt_json_parse(s, strlen(s), &j, &pos) != LT_OK)
		fail_msg("test JSON does not parse at %zu: %s", pos, s);
	return j;
}

/* Dotted path: "choices.0.message.content"; numbers index arrays. */
static const cJSON *jp(const cJSON *root, const char *path)
{
	char key[64];
	const cJSON *cur = root;
	while (cur && *path) {
		size_t n = strcspn(path, ".");
		assert_true(n < sizeof key);
		memcpy(key, path, n);
		key[n] = '\0';
		path += n + (path[n] == '.');
		if (cJSON_IsArray(cur) && key[0] >= '0' && key[0] <= '9')
			cur = cJSON_GetArrayItem(cur, (int)strtol(key, NULL, 10));
		else
			cur = cJSON_GetObjectItemCaseSensitive(cur, key);
	}
	return cur;
}

static void assert_str_at(const cJSON *root, const char *path, const char *want)
{
	const cJSON *it = jp(root, path);
	if (!cJSON_IsString(it))
		fail_msg("%s: not a string", path);
	if (strcmp(it->valuestring, want) != 0)
		fail_msg("%s: got \"%s\", want \"%s\"", path, it->valuestring, want);
}

static void assert_num_at(const cJSON *root, const char *path, double want)
{
	const cJSON *it = jp(root, path);
	if (!cJSON_IsNumber(it))
		fail_msg("%s: not a number", path);
	if (it->valuedouble != want)
		fail_msg("%s: got %g, want %g", path, it->valuedouble, want);
}

static void assert_null_at(const cJSON *root, const char *path)
{
	const cJSON *it = jp(root, path);
	if (!cJSON_IsNull(it))
		fail_msg("%s: not null", path);
}

static void assert_absent(const cJSON *root, const char *path)
{
	if (jp(root, path))
		fail_msg("%s: present", path);
}

static void assert_usage(const struct lt_tokens *t, int64_t in, int64_t cached, int64_t out,
			 int64_t reasoning)
{
	assert_int_equal(t->input, in);
	assert_int_equal(t->cached_input, cached);
	assert_int_equal(t->output, out);
	assert_int_equal(t->reasoning, reasoning);
}

/* The OpenAI usage object at root.usage matches t. */
static void assert_usage_json(const cJSON *root, int64_t in, int64_t cached, int64_t out,
			      int64_t reasoning)
{
	assert_num_at(root, "usage.prompt_tokens", (double)in);
	assert_num_at(root, "usage.completion_tokens", (double)out);
	assert_num_at(root, "usage.total_tokens", (double)(in + out));
	assert_num_at(root, "usage.prompt_tokens_details.cached_tokens", (double)cached);
	assert_num_at(root, "usage.completion_tokens_details.reasoning_tokens", (double)reasoning);
}

/* ---- lt_chat_req_parse ---- */

static void test_format_names(void **state)
{
	(void)state;
	assert_string_equal(lt_format_name(LT_FMT_OPENAI), "openai");
	assert_string_equal(lt_format_name(LT_FMT_GEMINI), "gemini");
	assert_string_equal(lt_format_name(LT_FMT_QWEN), "qwen");
}

#define MSG "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

struct parse_case {
	const char *body;
	enum lt_err want;
	const char *param; /* for errors */
	const char *why;   /* substring of the message */
};

static const struct parse_case parse_cases[] = {
	/* good */
	{"{\"model\":\"m\"," MSG "}", LT_OK, NULL, NULL},
	{"{\"model\":\"m\"," MSG ",\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
	 LT_OK, NULL, NULL},
	{"{\"model\":\"m\"," MSG ",\"stream\":null,\"n\":null,\"stop\":null}", LT_OK, NULL, NULL},
	{"{\"model\":\"m\"," MSG ",\"max_tokens\":1,\"n\":8,\"temperature\":2,\"top_p\":0,"
	 "\"stop\":[\"a\",\"b\",\"c\",\"d\"],\"unknown\":{\"x\":1}}",
	 LT_OK, NULL, NULL},
	{"{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"s\"},"
	 "{\"role\":\"developer\",\"content\":\"d\"},{\"role\":\"user\",\"content\":[{\"type\":"
	 "\"text\",\"text\":\"a\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}}]},"
	 "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c\"}]},"
	 "{\"role\":\"tool\",\"content\":\"r\",\"tool_call_id\":\"c\"}]}",
	 LT_OK, NULL, NULL},
	{"{\"model\":\"m\"," MSG ",\"stop\":\"\\n\"}", LT_OK, NULL, NULL},
	/* the body */
	{"[]", LT_EINVAL, "", "must be a JSON object"},
	{"\"x\"", LT_EINVAL, "", "must be a JSON object"},
	/* model */
	{"{" MSG "}", LT_EINVAL, "model", "model is required"},
	{"{\"model\":null," MSG "}", LT_EINVAL, "model", "model is required"},
	{"{\"model\":5," MSG "}", LT_EINVAL, "model", "non-empty string"},
	{"{\"model\":\"\"," MSG "}", LT_EINVAL, "model", "non-empty string"},
	{"{\"model\":\"mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm"
	 "mmmmmmmmmmmmmmmmmmmmmmmm\"," MSG "}",
	 LT_EINVAL, "model", "at most 95 bytes"},
	{"{\"model\":\"a\",\"model\":\"b\"," MSG "}", LT_EINVAL, "model", "more than once"},
	/* messages */
	{"{\"model\":\"m\"}", LT_EINVAL, "messages", "messages is required"},
	{"{\"model\":\"m\",\"messages\":[]}", LT_EINVAL, "messages",
	 "messages must be a non-empty array"},
	{"{\"model\":\"m\",\"messages\":{}}", LT_EINVAL, "messages",
	 "messages must be a non-empty array"},
	{"{\"model\":\"m\",\"messages\":\"hi\"}", LT_EINVAL, "messages",
	 "messages must be a non-empty array"},
	{"{\"model\":\"m\",\"messages\":[1]}", LT_EINVAL, "messages[0]", "must be an object"},
	{"{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}", LT_EINVAL, "messages[0].role",
	 "one of system, developer, user, assistant, tool"},
	{"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"bot\","
	 "\"content\":\"x\"}]}",
	 LT_EINVAL, "messages[1].role", "one of system"},
	{"{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}", LT_EINVAL, "messages[0].content",
	 "is required"},
	{"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":null}]}", LT_EINVAL,
	 "messages[0].content", "is required"},
	{"{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":null}]}", LT_EINVAL,
	 "messages[0].content", "tool_calls"},
	{"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":7}]}", LT_EINVAL,
	 "messages[0].content", "a string or an array of content parts"},
	{"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[]}]}", LT_EINVAL,
	 "messages[0].content", "empty array"},
	{"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"a\"}]}]}",
	 LT_EINVAL, "messages[0].content[0].type", "string \"type\""},
	{"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[\"a\"]}]}", LT_EINVAL,
	 "messages[0].content[0].type", "must be an object"},
	{"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
	 "\"text\":\"a\"},{\"type\":\"text\",\"text\":3}]}]}",
	 LT_EINVAL, "messages[0].content[1].text", "must be a string"},
	{"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\",\"tool_calls\":[]}]}",
	 LT_EINVAL, "messages[0].tool_calls", "assistant"},
	/* stream */
	{"{\"model\":\"m\"," MSG ",\"stream\":\"yes\"}", LT_EINVAL, "stream", "boolean"},
	{"{\"model\":\"m\"," MSG ",\"stream_options\":{\"include_usage\":true}}", LT_EINVAL,
	 "stream_options", "only allowed when stream is true"},
	{"{\"model\":\"m\"," MSG ",\"stream\":true,\"stream_options\":true}", LT_EINVAL,
	 "stream_options", "must be an object"},
	{"{\"model\":\"m\"," MSG ",\"stream\":true,\"stream_options\":{\"include_usage\":1}}",
	 LT_EINVAL, "stream_options.include_usage", "boolean"},
	{"{\"model\":\"m\"," MSG ",\"stream\":false,\"stream\":true}", LT_EINVAL, "stream",
	 "more than once"},
	/* numbers */
	{"{\"model\":\"m\"," MSG ",\"max_tokens\":0}", LT_EINVAL, "max_tokens",
	 "between 1 and 1000000"},
	{"{\"model\":\"m\"," MSG ",\"max_tokens\":1000001}", LT_EINVAL, "max_tokens",
	 "between 1 and 1000000"},
	{"{\"model\":\"m\"," MSG ",\"max_tokens\":1.5}", LT_EINVAL, "max_tokens", "integer"},
	{"{\"model\":\"m\"," MSG ",\"max_tokens\":\"10\"}", LT_EINVAL, "max_tokens", "integer"},
	{"{\"model\":\"m\"," MSG ",\"max_completion_tokens\":-1}", LT_EINVAL,
	 "max_completion_tokens", "between 1 and 1000000"},
	{"{\"model\":\"m\"," MSG ",\"n\":0}", LT_EINVAL, "n", "between 1 and 8"},
	{"{\"model\":\"m\"," MSG ",\"n\":9}", LT_EINVAL, "n", "between 1 and 8"},
	{"{\"model\":\"m\"," MSG ",\"temperature\":2.01}", LT_EINVAL, "temperature",
	 "between 0 and 2"},
	{"{\"model\":\"m\"," MSG ",\"temperature\":-0.1}", LT_EINVAL, "temperature",
	 "between 0 and 2"},
	{"{\"model\":\"m\"," MSG ",\"temperature\":\"hot\"}", LT_EINVAL, "temperature", "number"},
	{"{\"model\":\"m\"," MSG ",\"top_p\":1.5}", LT_EINVAL, "top_p", "between 0 and 1"},
	/* stop */
	{"{\"model\":\"m\"," MSG ",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", LT_EINVAL, "stop",
	 "at most 4 strings"},
	{"{\"model\":\"m\"," MSG ",\"stop\":[1]}", LT_EINVAL, "stop", "at most 4 strings"},
	{"{\"model\":\"m\"," MSG ",\"stop\":5}", LT_EINVAL, "stop", "a string or an array"},
};

static void test_parse_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
		const struct parse_case *c = &parse_cases[i];
		cJSON *j = J(c->body);
		struct lt_chat_req rq;
		char param[64] = "junk", why[LT_TR_WHY_MAX] = "junk";
		enum lt_err e = lt_chat_req_parse(j, &rq, param, sizeof param, why, sizeof why);
		if (e != c->want)
			fail_msg("case %zu %s: got %d (%s: %s), want %d", i, c->body, e, param, why,
				 c->want);
		if (e == LT_OK) {
			assert_ptr_equal(rq.json, j);
			assert_string_equal(rq.model, "m");
		} else {
			if (strcmp(param, c->param) != 0)
				fail_msg("case %zu %s: param \"%s\", want \"%s\"", i, c->body,
					 param, c->param);
			if (!strstr(why, c->why))
				fail_msg("case %zu %s: why \"%s\" lacks \"%s\"", i, c->body, why,
					 c->why);
		}
		cJSON_Delete(j);
	}
}

static void test_parse_fields(void **state)
{
	(void)state;
	char param[64], why[LT_TR_WHY_MAX];
	struct lt_chat_req rq;
	cJSON *j =
		J("{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"system\",\"content\":\"abcd\"},"
		  "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"123456\"}]}],"
		  "\"stream\":true,\"stream_options\":{\"include_usage\":true},"
		  "\"max_tokens\":50,\"max_completion_tokens\":70}");
	assert_int_equal(lt_chat_req_parse(j, &rq, param, sizeof param, why, sizeof why), LT_OK);
	assert_string_equal(rq.model, "gpt-4o");
	assert_true(rq.stream);
	assert_true(rq.include_usage);
	assert_int_equal(rq.max_tokens, 70); /* max_completion_tokens wins */
	assert_int_equal(rq.prompt_bytes, 10);
	assert_int_equal(rq.nmessages, 2);
	cJSON_Delete(j);

	j = J("{\"model\":\"m\"," MSG ",\"max_tokens\":50}");
	assert_int_equal(lt_chat_req_parse(j, &rq, param, sizeof param, why, sizeof why), LT_OK);
	assert_int_equal(rq.max_tokens, 50);
	assert_false(rq.stream);
	assert_false(rq.include_usage);
	cJSON_Delete(j);

	j = J("{\"model\":\"m\"," MSG ",\"stream\":true}");
	assert_int_equal(lt_chat_req_parse(j, &rq, param, sizeof param, why, sizeof why), LT_OK);
	assert_int_equal(rq.max_tokens, -1);
	assert_true(rq.stream);
	assert_false(rq.include_usage);
	cJSON_Delete(j);

	/* 4096 messages are fine, 4097 are not */
	for (int n = 4096; n <= 4097; n++) {
		cJSON *b = J("{\"model\":\"m\",\"messages\":[]}");
		cJSON *msgs = cJSON_GetObjectItem(b, "messages");
		for (int i = 0; i < n; i++) {
			cJSON *m = cJSON_CreateObject();
			cJSON_AddStringToObject(m, "role", "user");
			cJSON_AddStringToObject(m, "content", "x");
			cJSON_AddItemToArray(msgs, m);
		}
		enum lt_err e = lt_chat_req_parse(b, &rq, param, sizeof param, why, sizeof why);
		if (n == 4096) {
			assert_int_equal(e, LT_OK);
			assert_int_equal(rq.nmessages, 4096);
		} else {
			assert_int_equal(e, LT_EINVAL);
			assert_string_equal(param, "messages");
			assert_non_null(strstr(why, "at most 4096"));
		}
		cJSON_Delete(b);
	}

	/* tiny param/why buffers are truncated, never overrun */
	char p2[4], w2[8];
	j = J("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":7}]}");
	assert_int_equal(lt_chat_req_parse(j, &rq, p2, sizeof p2, w2, sizeof w2), LT_EINVAL);
	assert_string_equal(p2, "mes");
	assert_int_equal(strlen(w2), 7);
	assert_int_equal(lt_chat_req_parse(j, &rq, NULL, 0, NULL, 0), LT_EINVAL);
	cJSON_Delete(j);
}

/* ---- request rewrite ---- */

static cJSON *request(enum lt_wire_format f, const char *client, const char *upstream,
		      enum lt_err want, const char *want_param)
{
	cJSON *j = J(client);
	struct lt_chat_req rq;
	char param[64], why[LT_TR_WHY_MAX];
	assert_int_equal(lt_chat_req_parse(j, &rq, param, sizeof param, why, sizeof why), LT_OK);
	char *body = (char *)1;
	size_t len = 1;
	enum lt_err e = lt_tr_chat_request(f, &rq, upstream, &body, &len, param, sizeof param, why,
					   sizeof why);
	if (e != want)
		fail_msg("%s: got %d (%s: %s), want %d", client, e, param, why, want);
	cJSON *out = NULL;
	if (e == LT_OK) {
		assert_int_equal(strlen(body), len);
		out = J(body);
		free(body);
	} else {
		assert_null(body);
		assert_string_equal(param, want_param);
		assert_true(why[0] != '\0');
	}
	cJSON_Delete(j);
	return out;
}

static void test_openai_request(void **state)
{
	(void)state;
	for (int k = 0; k < 2; k++) {
		enum lt_wire_format f = k ? LT_FMT_QWEN : LT_FMT_OPENAI;
		/* not streaming: only the model changes */
		cJSON *o = request(f,
				   "{\"model\":\"client\"," MSG ",\"temperature\":0.5,\"x_extra\":"
				   "{\"keep\":[1,2]},\"n\":3}",
				   "upstream-1", LT_OK, NULL);
		assert_str_at(o, "model", "upstream-1");
		assert_str_at(o, "messages.0.content", "hi");
		assert_num_at(o, "temperature", 0.5);
		assert_num_at(o, "x_extra.keep.1", 2);
		assert_num_at(o, "n", 3);
		assert_absent(o, "stream_options");
		assert_absent(o, "stream");
		assert_int_equal(cJSON_GetArraySize(o), 5);
		cJSON_Delete(o);

		/* streaming without stream_options: include_usage forced */
		o = request(f, "{\"model\":\"c\"," MSG ",\"stream\":true}", "u", LT_OK, NULL);
		assert_str_at(o, "model", "u");
		assert_true(cJSON_IsTrue(jp(o, "stream")));
		assert_true(cJSON_IsTrue(jp(o, "stream_options.include_usage")));
		cJSON_Delete(o);

		/* include_usage false is overridden; other stream_options kept */
		o = request(f,
			    "{\"model\":\"c\"," MSG ",\"stream\":true,\"stream_options\":{"
			    "\"include_usage\":false,\"other\":\"v\"}}",
			    "u", LT_OK, NULL);
		assert_true(cJSON_IsTrue(jp(o, "stream_options.include_usage")));
		assert_str_at(o, "stream_options.other", "v");
		assert_int_equal(cJSON_GetArraySize(jp(o, "stream_options")), 2);
		cJSON_Delete(o);

		/* stream_options null while streaming becomes an object */
		o = request(f, "{\"model\":\"c\"," MSG ",\"stream\":true,\"stream_options\":null}",
			    "u", LT_OK, NULL);
		assert_true(cJSON_IsTrue(jp(o, "stream_options.include_usage")));
		cJSON_Delete(o);

		/* stream false: untouched */
		o = request(f, "{\"model\":\"c\"," MSG ",\"stream\":false}", "u", LT_OK, NULL);
		assert_true(cJSON_IsFalse(jp(o, "stream")));
		assert_absent(o, "stream_options");
		cJSON_Delete(o);

		/* content parts and tool calls pass through */
		o = request(
			f,
			"{\"model\":\"c\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
			"\"image_url\",\"image_url\":{\"url\":\"data:x\"}}]},{\"role\":"
			"\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"t\"}]}],"
			"\"tools\":[{\"type\":\"function\"}]}",
			"u", LT_OK, NULL);
		assert_str_at(o, "messages.0.content.0.image_url.url", "data:x");
		assert_null_at(o, "messages.1.content");
		assert_str_at(o, "tools.0.type", "function");
		cJSON_Delete(o);
	}
	/* no upstream model */
	assert_null(request(LT_FMT_OPENAI, "{\"model\":\"c\"," MSG "}", "", LT_EINVAL, "model"));
}

static void test_gemini_request(void **state)
{
	(void)state;
	cJSON *o = request(LT_FMT_GEMINI,
			   "{\"model\":\"g\",\"messages\":["
			   "{\"role\":\"system\",\"content\":\"be brief\"},"
			   "{\"role\":\"user\",\"content\":\"q1\"},"
			   "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"q2a\"},"
			   "{\"type\":\"text\",\"text\":\"q2b\"}]},"
			   "{\"role\":\"assistant\",\"content\":\"a1\"},"
			   "{\"role\":\"developer\",\"content\":\"dev\"},"
			   "{\"role\":\"user\",\"content\":\"q3\"}],"
			   "\"max_tokens\":100,\"temperature\":0.25,\"top_p\":0.5,\"stop\":\"END\","
			   "\"n\":1,\"user\":\"ignored\"}",
			   "gemini-2.0-flash", LT_OK, NULL);
	assert_str_at(o, "systemInstruction.parts.0.text", "be brief");
	assert_str_at(o, "systemInstruction.parts.1.text", "dev");
	assert_int_equal(cJSON_GetArraySize(jp(o, "systemInstruction.parts")), 2);
	assert_int_equal(cJSON_GetArraySize(jp(o, "contents")), 4);
	assert_str_at(o, "contents.0.role", "user");
	assert_str_at(o, "contents.0.parts.0.text", "q1");
	assert_str_at(o, "contents.1.role", "user"); /* consecutive: kept separate */
	assert_str_at(o, "contents.1.parts.0.text", "q2a");
	assert_str_at(o, "contents.1.parts.1.text", "q2b");
	assert_str_at(o, "contents.2.role", "model");
	assert_str_at(o, "contents.2.parts.0.text", "a1");
	assert_str_at(o, "contents.3.parts.0.text", "q3");
	assert_num_at(o, "generationConfig.maxOutputTokens", 100);
	assert_num_at(o, "generationConfig.temperature", 0.25);
	assert_num_at(o, "generationConfig.topP", 0.5);
	assert_str_at(o, "generationConfig.stopSequences.0", "END");
	assert_int_equal(cJSON_GetArraySize(jp(o, "generationConfig.stopSequences")), 1);
	assert_num_at(o, "generationConfig.candidateCount", 1);
	assert_absent(o, "model");
	assert_absent(o, "messages");
	assert_absent(o, "user");
	cJSON_Delete(o);

	/* stop array, max_completion_tokens, no system: no systemInstruction */
	o = request(LT_FMT_GEMINI,
		    "{\"model\":\"g\"," MSG ",\"stop\":[\"x\",\"y\"],\"max_completion_tokens\":9,"
		    "\"stream\":true}",
		    "gm", LT_OK, NULL);
	assert_absent(o, "systemInstruction");
	assert_str_at(o, "generationConfig.stopSequences.0", "x");
	assert_str_at(o, "generationConfig.stopSequences.1", "y");
	assert_num_at(o, "generationConfig.maxOutputTokens", 9);
	assert_absent(o, "generationConfig.candidateCount");
	assert_absent(o, "stream_options");
	cJSON_Delete(o);

	/* no options: no generationConfig at all */
	o = request(LT_FMT_GEMINI, "{\"model\":\"g\"," MSG "}", "gm", LT_OK, NULL);
	assert_absent(o, "generationConfig");
	assert_int_equal(cJSON_GetArraySize(o), 1);
	cJSON_Delete(o);

	/* refusals */
	assert_null(
		request(LT_FMT_GEMINI, "{\"model\":\"g\"," MSG ",\"n\":2}", "gm", LT_EINVAL, "n"));
	assert_null(request(LT_FMT_GEMINI,
			    "{\"model\":\"g\",\"messages\":[{\"role\":\"user\",\"content\":[{"
			    "\"type\":\"text\",\"text\":\"look\"},{\"type\":\"image_url\","
			    "\"image_url\":{\"url\":\"u\"}}]}]}",
			    "gm", LT_EINVAL, "messages[0].content[1].type"));
	assert_null(
		request(LT_FMT_GEMINI,
			"{\"model\":\"g\",\"messages\":[{\"role\":\"system\",\"content\":\"s\"}]}",
			"gm", LT_EINVAL, "messages"));
	assert_null(request(LT_FMT_GEMINI,
			    "{\"model\":\"g\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"},"
			    "{\"role\":\"tool\",\"content\":\"r\"}]}",
			    "gm", LT_EINVAL, "messages[1].role"));
	assert_null(request(LT_FMT_GEMINI,
			    "{\"model\":\"g\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"},"
			    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{}]}]}",
			    "gm", LT_EINVAL, "messages[1].tool_calls"));
	assert_null(request(LT_FMT_GEMINI,
			    "{\"model\":\"g\"," MSG ",\"tools\":[{\"type\":\"function\"}]}", "gm",
			    LT_EINVAL, "tools"));

	/* a client's type name quoted in the reason is cut on a UTF-8 boundary */
	cJSON *j =
		J("{\"model\":\"g\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
		  "\"\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"
		  "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\"}]}]}");
	struct lt_chat_req rq;
	char param[64], why[LT_TR_WHY_MAX], small[93]; /* cut inside the second é */
	char *body;
	size_t len;
	assert_int_equal(lt_chat_req_parse(j, &rq, param, sizeof param, why, sizeof why), LT_OK);
	assert_int_equal(lt_tr_chat_request(LT_FMT_GEMINI, &rq, "gm", &body, &len, param,
					    sizeof param, why, sizeof why),
			 LT_EINVAL);
	assert_true(lt_utf8_valid(why, strlen(why), NULL));
	assert_non_null(strstr(why, "\"\xc3\xa9")); /* quoted, at most 32 bytes of it */
	assert_int_equal(lt_tr_chat_request(LT_FMT_GEMINI, &rq, "gm", &body, &len, param,
					    sizeof param, small, sizeof small),
			 LT_EINVAL);
	assert_true(lt_utf8_valid(small, strlen(small), NULL));
	assert_int_equal(strlen(small), 91);
	cJSON_Delete(j);
}

/* ---- paths ---- */

static void test_chat_path(void **state)
{
	(void)state;
	char p[128];
	assert_int_equal(lt_tr_chat_path(LT_FMT_OPENAI, "gpt-4o", false, p, sizeof p), LT_OK);
	assert_string_equal(p, "/chat/completions");
	assert_int_equal(lt_tr_chat_path(LT_FMT_OPENAI, "org/model-1.5", true, p, sizeof p), LT_OK);
	assert_string_equal(p, "/chat/completions");
	assert_int_equal(lt_tr_chat_path(LT_FMT_QWEN, "qwen-plus", true, p, sizeof p), LT_OK);
	assert_string_equal(p, "/chat/completions");
	assert_int_equal(lt_tr_chat_path(LT_FMT_GEMINI, "gemini-2.0-flash", false, p, sizeof p),
			 LT_OK);
	assert_string_equal(p, "/models/gemini-2.0-flash:generateContent");
	assert_int_equal(lt_tr_chat_path(LT_FMT_GEMINI, "gemini-2.0-flash", true, p, sizeof p),
			 LT_OK);
	assert_string_equal(p, "/models/gemini-2.0-flash:streamGenerateContent?alt=sse");
	/* characters outside the path-segment set */
	assert_int_equal(lt_tr_chat_path(LT_FMT_GEMINI, "a/b", false, p, sizeof p), LT_EINVAL);
	assert_int_equal(lt_tr_chat_path(LT_FMT_GEMINI, "a?b", false, p, sizeof p), LT_EINVAL);
	assert_int_equal(lt_tr_chat_path(LT_FMT_GEMINI, "a b", false, p, sizeof p), LT_EINVAL);
	assert_int_equal(lt_tr_chat_path(LT_FMT_GEMINI, "../x", false, p, sizeof p), LT_EINVAL);
	assert_int_equal(lt_tr_chat_path(LT_FMT_OPENAI, "a%2f", false, p, sizeof p), LT_EINVAL);
	assert_int_equal(lt_tr_chat_path(LT_FMT_QWEN, "a/b", false, p, sizeof p), LT_EINVAL);
	assert_int_equal(lt_tr_chat_path(LT_FMT_OPENAI, "", false, p, sizeof p), LT_EINVAL);
	/* too small */
	assert_int_equal(lt_tr_chat_path(LT_FMT_GEMINI, "gemini-2.0-flash", true, p, 40),
			 LT_ETOOBIG);
	assert_string_equal(p, "");
	assert_int_equal(lt_tr_chat_path(LT_FMT_OPENAI, "m", false, p, 17), LT_ETOOBIG);
	assert_int_equal(lt_tr_chat_path(LT_FMT_OPENAI, "m", false, p, 18), LT_OK);
}

/* ---- responses ---- */

static cJSON *response(enum lt_wire_format f, const char *body, enum lt_err want,
		       struct lt_tokens *t, bool *found)
{
	char *out = (char *)1;
	size_t len = 1;
	enum lt_err e = lt_tr_chat_response(f, body, strlen(body), "client-model", "chatcmpl-given",
					    1700000000, &out, &len, t, found);
	if (e != want)
		fail_msg("%s: got %d, want %d", body, e, want);
	if (e != LT_OK) {
		assert_null(out);
		return NULL;
	}
	assert_int_equal(strlen(out), len);
	cJSON *j = J(out);
	free(out);
	assert_str_at(j, "model", "client-model");
	return j;
}

static void test_openai_response(void **state)
{
	(void)state;
	struct lt_tokens t;
	bool found;
	for (int k = 0; k < 2; k++) {
		enum lt_wire_format f = k ? LT_FMT_QWEN : LT_FMT_OPENAI;
		cJSON *j = response(
			f,
			"{\"id\":\"chatcmpl-up\",\"object\":\"chat.completion\",\"created\":5,"
			"\"model\":\"upstream\",\"system_fingerprint\":\"fp\",\"choices\":[{"
			"\"index\":"
			"0,\"message\":{\"role\":\"assistant\",\"content\":\"hello\"},"
			"\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":20,"
			"\"completion_tokens\":7,\"total_tokens\":27,\"prompt_tokens_details\":{"
			"\"cached_tokens\":12,\"audio_tokens\":0},\"completion_tokens_details\":{"
			"\"reasoning_tokens\":3}}}",
			LT_OK, &t, &found);
		assert_true(found);
		assert_usage(&t, 20, 12, 7, 3);
		assert_usage_json(j, 20, 12, 7, 3);
		assert_num_at(j, "usage.prompt_tokens_details.audio_tokens", 0);
		assert_str_at(j, "id", "chatcmpl-up");
		assert_num_at(j, "created", 5);
		assert_str_at(j, "system_fingerprint", "fp");
		assert_str_at(j, "choices.0.message.content", "hello");
		cJSON_Delete(j);

		/* qwen-style usage with only the cached detail: the rest is added */
		j = response(f,
			     "{\"choices\":[],\"model\":\"qwen-plus\",\"usage\":{\"prompt_tokens\":"
			     "9,\"completion_tokens\":4,\"total_tokens\":13,"
			     "\"prompt_tokens_details\":{\"cached_tokens\":2}}}",
			     LT_OK, &t, &found);
		assert_true(found);
		assert_usage(&t, 9, 2, 4, 0);
		assert_usage_json(j, 9, 2, 4, 0);
		assert_str_at(j, "id", "chatcmpl-given"); /* none upstream */
		assert_num_at(j, "created", 1700000000);
		cJSON_Delete(j);

		/* subsets larger than their totals are clamped */
		j = response(f,
			     "{\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":"
			     "1,\"prompt_tokens_details\":{\"cached_tokens\":50},"
			     "\"completion_tokens_details\":{\"reasoning_tokens\":8}}}",
			     LT_OK, &t, &found);
		assert_usage(&t, 5, 5, 1, 1);
		assert_usage_json(j, 5, 5, 1, 1);
		cJSON_Delete(j);

		/* no usage, or null usage */
		j = response(f, "{\"choices\":[]}", LT_OK, &t, &found);
		assert_false(found);
		assert_usage(&t, 0, 0, 0, 0);
		assert_absent(j, "usage");
		cJSON_Delete(j);
		j = response(f, "{\"choices\":[],\"usage\":null}", LT_OK, &t, &found);
		assert_false(found);
		cJSON_Delete(j);

		/* protocol breaks */
		static const char *const bad[] = {
			"",
			"not json",
			"[]",
			"\"s\"",
			"{\"choices\":{}}",
			"{\"id\":\"x\"}",
			"{\"choices\":[],\"usage\":\"lots\"}",
			"{\"choices\":[],\"usage\":{\"prompt_tokens\":\"5\"}}",
			"{\"choices\":[],\"usage\":{\"prompt_tokens\":-1}}",
			"{\"choices\":[],\"usage\":{\"prompt_tokens\":1.5}}",
			"{\"choices\":[],\"usage\":{\"prompt_tokens\":1e300}}",
			"{\"choices\":[],\"usage\":{\"prompt_tokens_details\":[]}}",
			"{\"choices\":[],\"usage\":{\"completion_tokens_details\":{"
			"\"reasoning_tokens\":true}}}",
			"{\"choices\":[],\"id\":7}",
			"{\"choices\":[],\"created\":\"now\"}",
			"{\"choices\":[]}trailing",
		};
		for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			found = true;
			assert_null(response(f, bad[i], LT_EPROTO, &t, &found));
			assert_false(found);
		}
	}
}

static void test_gemini_response(void **state)
{
	(void)state;
	struct lt_tokens t;
	bool found;
	cJSON *j = response(
		LT_FMT_GEMINI,
		"{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"plan..."
		"\","
		"\"thought\":true},{\"text\":\"Hello\"},{\"text\":\", world\"}]},"
		"\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":"
		"10,\"candidatesTokenCount\":5,\"totalTokenCount\":19,\"cachedContentTokenCount\":"
		"4,"
		"\"thoughtsTokenCount\":4},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":"
		"\"abc123\"}",
		LT_OK, &t, &found);
	assert_true(found);
	assert_usage(&t, 10, 4, 9, 4); /* output = candidates + thoughts */
	assert_usage_json(j, 10, 4, 9, 4);
	assert_str_at(j, "id", "chatcmpl-abc123");
	assert_str_at(j, "object", "chat.completion");
	assert_num_at(j, "created", 1700000000);
	assert_int_equal(cJSON_GetArraySize(jp(j, "choices")), 1);
	assert_num_at(j, "choices.0.index", 0);
	assert_str_at(j, "choices.0.message.role", "assistant");
	assert_str_at(j, "choices.0.message.content", "Hello, world");
	assert_null_at(j, "choices.0.message.refusal");
	assert_null_at(j, "choices.0.logprobs");
	assert_str_at(j, "choices.0.finish_reason", "stop");
	cJSON_Delete(j);

	/* finish reasons */
	static const struct {
		const char *gemini, *openai;
	} fr[] = {
		{"STOP", "stop"},
		{"MAX_TOKENS", "length"},
		{"SAFETY", "content_filter"},
		{"RECITATION", "content_filter"},
		{"BLOCKLIST", "content_filter"},
		{"PROHIBITED_CONTENT", "content_filter"},
		{"SPII", "content_filter"},
		{"IMAGE_SAFETY", "content_filter"},
		{"OTHER", "stop"},
		{"MALFORMED_FUNCTION_CALL", "stop"},
		{"FINISH_REASON_UNSPECIFIED", "stop"},
	};
	for (size_t i = 0; i < sizeof fr / sizeof fr[0]; i++) {
		char body[256];
		snprintf(body, sizeof body,
			 "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}]},"
			 "\"finishReason\":\"%s\"}]}",
			 fr[i].gemini);
		j = response(LT_FMT_GEMINI, body, LT_OK, &t, &found);
		assert_str_at(j, "choices.0.finish_reason", fr[i].openai);
		assert_false(found);
		assert_absent(j, "usage");
		assert_str_at(j, "id", "chatcmpl-given");
		cJSON_Delete(j);
	}

	/* a safety stop without content; a blocked prompt without candidates */
	j = response(LT_FMT_GEMINI,
		     "{\"candidates\":[{\"finishReason\":\"SAFETY\",\"index\":0}],"
		     "\"usageMetadata\":{\"promptTokenCount\":3,\"totalTokenCount\":3}}",
		     LT_OK, &t, &found);
	assert_str_at(j, "choices.0.message.content", "");
	assert_str_at(j, "choices.0.finish_reason", "content_filter");
	assert_true(found);
	assert_usage(&t, 3, 0, 0, 0);
	cJSON_Delete(j);
	j = response(LT_FMT_GEMINI, "{\"promptFeedback\":{\"blockReason\":\"SAFETY\"}}", LT_OK, &t,
		     &found);
	assert_str_at(j, "choices.0.finish_reason", "content_filter");
	cJSON_Delete(j);
	j = response(LT_FMT_GEMINI,
		     "{\"candidates\":[],\"promptFeedback\":{\"blockReason\":\"OTHER\"}}", LT_OK,
		     &t, &found);
	assert_str_at(j, "choices.0.finish_reason", "content_filter");
	cJSON_Delete(j);
	j = response(LT_FMT_GEMINI, "{}", LT_OK, &t, &found);
	assert_str_at(j, "choices.0.finish_reason", "stop");
	assert_str_at(j, "choices.0.message.content", "");
	cJSON_Delete(j);

	/* cached and thoughts larger than their totals are clamped */
	j = response(LT_FMT_GEMINI,
		     "{\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":2,"
		     "\"cachedContentTokenCount\":9,\"thoughtsTokenCount\":3}}",
		     LT_OK, &t, &found);
	assert_usage(&t, 2, 2, 3, 3);
	cJSON_Delete(j);

	static const char *const bad[] = {
		"",
		"[{\"candidates\":[]}]",
		"{\"candidates\":{}}",
		"{\"candidates\":[1]}",
		"{\"candidates\":[{\"content\":[]}]}",
		"{\"candidates\":[{\"content\":{\"parts\":{}}}]}",
		"{\"candidates\":[{\"content\":{\"parts\":[\"x\"]}}]}",
		"{\"candidates\":[{\"content\":{\"parts\":[{\"text\":5}]}}]}",
		"{\"candidates\":[{\"finishReason\":1}]}",
		"{\"candidates\":[{\"index\":\"0\"}]}",
		"{\"candidates\":[],\"usageMetadata\":[]}",
		"{\"candidates\":[],\"usageMetadata\":{\"promptTokenCount\":-3}}",
		"{\"candidates\":[],\"responseId\":5}",
		"{\"error\":{\"code\":400,\"message\":\"bad\",\"status\":\"INVALID_ARGUMENT\"}}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		found = true;
		assert_null(response(LT_FMT_GEMINI, bad[i], LT_EPROTO, &t, &found));
		assert_false(found);
	}
}

/* ---- streams ---- */

#define MAX_FRAMES 32

struct sink {
	int n;
	char *frames[MAX_FRAMES];
	int fail_at; /* return LT_ECLOSED on this frame (1-based); 0 never */
};

static enum lt_err collect(void *arg, const char *frame, size_t len)
{
	struct sink *s = arg;
	assert_true(s->n < MAX_FRAMES);
	assert_int_equal(strlen(frame), len);
	assert_true(len >= 8);
	assert_memory_equal(frame, "data: ", 6);
	assert_memory_equal(frame + len - 2, "\n\n", 2);
	if (s->fail_at && s->n + 1 == s->fail_at)
		return LT_ECLOSED;
	s->frames[s->n] = malloc(len - 7);
	assert_non_null(s->frames[s->n]);
	memcpy(s->frames[s->n], frame + 6, len - 8);
	s->frames[s->n][len - 8] = '\0';
	s->n++;
	return LT_OK;
}

static void sink_free(struct sink *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->frames[i]);
	memset(s, 0, sizeof *s);
}

/* Frame i's payload as JSON (the caller deletes it). */
static cJSON *frame(const struct sink *s, int i)
{
	assert_true(i < s->n);
	return J(s->frames[i]);
}

static enum lt_err feed(struct lt_tr_stream *st, struct sink *s, const char *data)
{
	return lt_tr_stream_event(st, data, strlen(data), collect, s);
}

static int count_done(const struct sink *s)
{
	int n = 0;
	for (int i = 0; i < s->n; i++)
		n += !strcmp(s->frames[i], "[DONE]");
	return n;
}

static int count_usage_objects(const struct sink *s)
{
	int n = 0;
	for (int i = 0; i < s->n; i++) {
		if (!strcmp(s->frames[i], "[DONE]"))
			continue;
		cJSON *j = frame(s, i);
		n += cJSON_IsObject(cJSON_GetObjectItem(j, "usage"));
		cJSON_Delete(j);
	}
	return n;
}

#define OA_ROLE                                                                                    \
	"{\"id\":\"chatcmpl-u\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":"     \
	"\"up\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"    \
	"\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}"
#define OA_TEXT(t)                                                                                 \
	"{\"id\":\"chatcmpl-u\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":"     \
	"\"up\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" t "\"},\"logprobs\":null,"    \
	"\"finish_reason\":null}],\"usage\":null}"
#define OA_FINISH                                                                                  \
	"{\"id\":\"chatcmpl-u\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":"     \
	"\"up\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":"       \
	"\"stop\"}],\"usage\":null}"
#define OA_USAGE                                                                                   \
	"{\"id\":\"chatcmpl-u\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":"     \
	"\"up\",\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":6,"           \
	"\"total_tokens\":17,\"prompt_tokens_details\":{\"cached_tokens\":3},"                     \
	"\"completion_tokens_details\":{\"reasoning_tokens\":2}}}"

static void run_openai_stream(enum lt_wire_format f, bool include_usage)
{
	struct lt_tr_stream st;
	struct sink s = {0};
	lt_tr_stream_init(&st, f, "client-model", "chatcmpl-gw", 42, include_usage);
	assert_int_equal(feed(&st, &s, OA_ROLE), LT_OK);
	assert_int_equal(feed(&st, &s, OA_TEXT("Hello")), LT_OK);
	assert_int_equal(feed(&st, &s, OA_TEXT(" world")), LT_OK);
	assert_int_equal(feed(&st, &s, OA_FINISH), LT_OK);
	assert_true(st.finish_sent);
	assert_string_equal(st.finish_reason, "stop");
	assert_false(st.usage_found);
	assert_int_equal(feed(&st, &s, OA_USAGE), LT_OK);
	assert_true(st.usage_found);
	assert_usage(&st.usage, 11, 3, 6, 2);
	assert_int_equal(feed(&st, &s, "[DONE]"), LT_OK);
	assert_true(st.done);
	assert_int_equal(count_done(&s), 0);			 /* only finish sends it */
	assert_int_equal(feed(&st, &s, OA_TEXT("late")), LT_OK); /* ignored after [DONE] */
	assert_int_equal(lt_tr_stream_finish(&st, collect, &s), LT_OK);

	assert_int_equal(s.n, include_usage ? 6 : 5);
	assert_int_equal(st.chunks, (uint64_t)s.n);
	assert_int_equal(count_done(&s), 1);
	assert_string_equal(s.frames[s.n - 1], "[DONE]");
	assert_int_equal(count_usage_objects(&s), include_usage ? 1 : 0);
	assert_int_equal(st.content_bytes, 11);
	for (int i = 0; i < s.n - 1; i++) {
		cJSON *j = frame(&s, i);
		assert_str_at(j, "model", "client-model");
		assert_str_at(j, "id", "chatcmpl-u"); /* the upstream's id is kept */
		if (i < 4) {
			if (include_usage)
				assert_null_at(j, "usage");
			else
				assert_absent(j, "usage");
		}
		cJSON_Delete(j);
	}
	cJSON *j = frame(&s, 1);
	assert_str_at(j, "choices.0.delta.content", "Hello");
	cJSON_Delete(j);
	j = frame(&s, 3);
	assert_str_at(j, "choices.0.finish_reason", "stop");
	cJSON_Delete(j);
	if (include_usage) {
		j = frame(&s, 4);
		assert_int_equal(cJSON_GetArraySize(jp(j, "choices")), 0);
		assert_usage_json(j, 11, 3, 6, 2);
		cJSON_Delete(j);
		assert_true(st.usage_sent);
	} else {
		assert_false(st.usage_sent);
	}
	struct lt_tokens t;
	bool est = true;
	lt_tr_stream_usage(&st, 999, &t, &est);
	assert_false(est);
	assert_usage(&t, 11, 3, 6, 2);
	sink_free(&s);
}

static void test_openai_stream(void **state)
{
	(void)state;
	run_openai_stream(LT_FMT_OPENAI, false);
	run_openai_stream(LT_FMT_OPENAI, true);
	run_openai_stream(LT_FMT_QWEN, false);
	run_openai_stream(LT_FMT_QWEN, true);
}

static void test_openai_stream_usage_variants(void **state)
{
	(void)state;
	struct lt_tr_stream st;
	struct sink s = {0};

	/* a chunk with both choices and usage, client did not ask: usage stripped */
	lt_tr_stream_init(&st, LT_FMT_OPENAI, "cm", "chatcmpl-gw", 42, false);
	assert_int_equal(
		feed(&st, &s,
		     "{\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"abc\"},"
		     "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":4,"
		     "\"completion_tokens\":2}}"),
		LT_OK);
	assert_int_equal(s.n, 1);
	cJSON *j = frame(&s, 0);
	assert_absent(j, "usage");
	assert_str_at(j, "choices.0.delta.content", "abc");
	cJSON_Delete(j);
	assert_true(st.usage_found);
	assert_usage(&st.usage, 4, 0, 2, 0);
	assert_string_equal(st.finish_reason, "length");
	assert_int_equal(lt_tr_stream_finish(&st, collect, &s), LT_OK);
	assert_int_equal(s.n, 2);
	assert_string_equal(s.frames[1], "[DONE]");
	sink_free(&s);

	/* the client asked; the upstream repeats usage: forwarded once, last wins */
	lt_tr_stream_init(&st, LT_FMT_QWEN, "cm", "chatcmpl-gw", 42, true);
	assert_int_equal(feed(&st, &s, OA_USAGE), LT_OK);
	assert_int_equal(feed(&st, &s,
			      "{\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,"
			      "\"completion_tokens\":7}}"),
			 LT_OK);
	assert_int_equal(s.n, 1);
	assert_usage(&st.usage, 12, 0, 7, 0);
	assert_int_equal(lt_tr_stream_finish(&st, collect, &s), LT_OK);
	assert_int_equal(count_usage_objects(&s), 1);
	assert_int_equal(count_done(&s), 1);
	sink_free(&s);

	/* the client asked but the upstream never reported: finish makes one
	 * from the estimate */
	lt_tr_stream_init(&st, LT_FMT_OPENAI, "cm", "chatcmpl-gw", 42, true);
	assert_int_equal(feed(&st, &s, OA_TEXT("12345678")), LT_OK);
	assert_int_equal(lt_tr_stream_finish(&st, collect, &s), LT_OK);
	assert_int_equal(s.n, 3);
	j = frame(&s, 1);
	assert_str_at(j, "id", "chatcmpl-gw");
	assert_str_at(j, "object", "chat.completion.chunk");
	assert_num_at(j, "created", 42);
	assert_str_at(j, "model", "cm");
	assert_int_equal(cJSON_GetArraySize(jp(j, "choices")), 0);
	assert_usage_json(j, 0, 0, 2, 0);
	cJSON_Delete(j);
	sink_free(&s);

	/* blank keep-alives are ignored; garbage and error objects are protocol errors */
	lt_tr_stream_init(&st, LT_FMT_OPENAI, "cm", "chatcmpl-gw", 42, false);
	assert_int_equal(feed(&st, &s, ""), LT_OK);
	assert_int_equal(feed(&st, &s, " \n"), LT_OK);
	assert_int_equal(feed(&st, &s, "{nope"), LT_EPROTO);
	assert_int_equal(feed(&st, &s, "[1]"), LT_EPROTO);
	assert_int_equal(feed(&st, &s, "{\"choices\":{}}"), LT_EPROTO);
	assert_int_equal(feed(&st, &s, "{\"choices\":[{\"delta\":{\"content\":5}}]}"), LT_EPROTO);
	assert_int_equal(feed(&st, &s, "{\"choices\":[{\"finish_reason\":1}]}"), LT_EPROTO);
	assert_int_equal(feed(&st, &s, "{\"choices\":[],\"usage\":{\"prompt_tokens\":\"1\"}}"),
			 LT_EPROTO);
	assert_int_equal(feed(&st, &s, "{\"error\":{\"message\":\"overloaded\"}}"), LT_EPROTO);
	assert_int_equal(s.n, 0);
	assert_false(st.usage_found);
	sink_free(&s);
}

#define GM_EVENT(parts, extra)                                                                     \
	"{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[" parts "]}" extra           \
	",\"index\":0}],\"responseId\":\"r1\",\"modelVersion\":\"gemini-2.5-flash\"}"

static void run_gemini_stream(bool include_usage)
{
	struct lt_tr_stream st;
	struct sink s = {0};
	lt_tr_stream_init(&st, LT_FMT_GEMINI, "client-model", "chatcmpl-gw", 42, include_usage);
	assert_int_equal(
		feed(&st, &s,
		     "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":"
		     "\"thinking\",\"thought\":true}]},\"index\":0}],\"usageMetadata\":{"
		     "\"promptTokenCount\":10,\"totalTokenCount\":10}}"),
		LT_OK);
	assert_true(st.role_sent);
	assert_int_equal(s.n, 1); /* the role chunk only: thoughts are not content */
	assert_true(st.usage_found);
	assert_usage(&st.usage, 10, 0, 0, 0);
	assert_int_equal(feed(&st, &s, GM_EVENT("{\"text\":\"Hel\"},{\"text\":\"\"}", "")), LT_OK);
	assert_int_equal(feed(&st, &s, GM_EVENT("{\"text\":\"lo\"}", "")), LT_OK);
	assert_int_equal(
		feed(&st, &s,
		     "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":"
		     "\"!\"}]},\"finishReason\":\"MAX_TOKENS\",\"index\":0}],\"usageMetadata\":{"
		     "\"promptTokenCount\":10,\"candidatesTokenCount\":3,\"totalTokenCount\":20,"
		     "\"cachedContentTokenCount\":6,\"thoughtsTokenCount\":7}}"),
		LT_OK);
	assert_true(st.done);
	assert_true(st.finish_sent);
	assert_string_equal(st.finish_reason, "length");
	assert_usage(&st.usage, 10, 6, 10, 7);
	assert_int_equal(st.content_bytes, 8 + 3 + 2 + 1);
	/* after the finish: usage still recorded, no more content */
	assert_int_equal(
		feed(&st, &s, GM_EVENT("{\"text\":\"late\"}", ",\"finishReason\":\"STOP\"") ""),
		LT_OK);
	assert_int_equal(count_done(&s), 0);
	assert_int_equal(lt_tr_stream_finish(&st, collect, &s), LT_OK);

	/* role, Hel, lo, !, finish, [usage], [DONE] */
	assert_int_equal(s.n, include_usage ? 7 : 6);
	assert_int_equal(st.chunks, (uint64_t)s.n);
	assert_int_equal(count_done(&s), 1);
	assert_string_equal(s.frames[s.n - 1], "[DONE]");
	assert_int_equal(count_usage_objects(&s), include_usage ? 1 : 0);
	for (int i = 0; i < 5; i++) {
		cJSON *j = frame(&s, i);
		assert_str_at(j, "id", "chatcmpl-gw");
		assert_str_at(j, "object", "chat.completion.chunk");
		assert_num_at(j, "created", 42);
		assert_str_at(j, "model", "client-model");
		assert_int_equal(cJSON_GetArraySize(jp(j, "choices")), 1);
		assert_num_at(j, "choices.0.index", 0);
		assert_null_at(j, "choices.0.logprobs");
		if (include_usage)
			assert_null_at(j, "usage");
		else
			assert_absent(j, "usage");
		if (i < 4)
			assert_null_at(j, "choices.0.finish_reason");
		cJSON_Delete(j);
	}
	cJSON *j = frame(&s, 0);
	assert_str_at(j, "choices.0.delta.role", "assistant");
	assert_str_at(j, "choices.0.delta.content", "");
	cJSON_Delete(j);
	static const char *const texts[] = {"Hel", "lo", "!"};
	for (int i = 0; i < 3; i++) {
		j = frame(&s, i + 1);
		assert_str_at(j, "choices.0.delta.content", texts[i]);
		assert_absent(j, "choices.0.delta.role");
		cJSON_Delete(j);
	}
	j = frame(&s, 4);
	assert_str_at(j, "choices.0.finish_reason", "length");
	assert_int_equal(cJSON_GetArraySize(jp(j, "choices.0.delta")), 0);
	cJSON_Delete(j);
	if (include_usage) {
		j = frame(&s, 5);
		assert_int_equal(cJSON_GetArraySize(jp(j, "choices")), 0);
		assert_usage_json(j, 10, 6, 10, 7);
		assert_str_at(j, "model", "client-model");
		cJSON_Delete(j);
	}
	sink_free(&s);
}

static void test_gemini_stream(void **state)
{
	(void)state;
	run_gemini_stream(false);
	run_gemini_stream(true);
}

static void test_gemini_stream_edges(void **state)
{
	(void)state;
	struct lt_tr_stream st;
	struct sink s = {0};

	/* no finishReason ever: finish sends the finish chunk ("stop") */
	lt_tr_stream_init(&st, LT_FMT_GEMINI, "cm", "chatcmpl-gw", 1, false);
	assert_int_equal(feed(&st, &s, GM_EVENT("{\"text\":\"hi\"}", "")), LT_OK);
	assert_int_equal(lt_tr_stream_finish(&st, collect, &s), LT_OK);
	assert_int_equal(s.n, 4);
	cJSON *j = frame(&s, 2);
	assert_str_at(j, "choices.0.finish_reason", "stop");
	cJSON_Delete(j);
	assert_string_equal(s.frames[3], "[DONE]");
	sink_free(&s);

	/* an empty stream still makes a well-formed answer */
	lt_tr_stream_init(&st, LT_FMT_GEMINI, "cm", "chatcmpl-gw", 1, true);
	assert_int_equal(lt_tr_stream_finish(&st, collect, &s), LT_OK);
	assert_int_equal(s.n, 4); /* role, finish, usage, [DONE] */
	assert_int_equal(count_usage_objects(&s), 1);
	sink_free(&s);

	/* a blocked prompt: role and a content_filter finish */
	lt_tr_stream_init(&st, LT_FMT_GEMINI, "cm", "chatcmpl-gw", 1, false);
	assert_int_equal(feed(&st, &s, "{\"promptFeedback\":{\"blockReason\":\"OTHER\"}}"), LT_OK);
	assert_int_equal(s.n, 2);
	j = frame(&s, 1);
	assert_str_at(j, "choices.0.finish_reason", "content_filter");
	cJSON_Delete(j);
	sink_free(&s);

	/* protocol errors emit nothing, even when the bad part comes late */
	lt_tr_stream_init(&st, LT_FMT_GEMINI, "cm", "chatcmpl-gw", 1, false);
	assert_int_equal(feed(&st, &s, GM_EVENT("{\"text\":\"ok\"},{\"text\":1}", "")), LT_EPROTO);
	assert_int_equal(feed(&st, &s, "{\"candidates\":5}"), LT_EPROTO);
	assert_int_equal(feed(&st, &s, "{\"usageMetadata\":{\"promptTokenCount\":1.5}}"),
			 LT_EPROTO);
	assert_int_equal(feed(&st, &s, "{\"error\":{\"code\":500,\"message\":\"boom\"}}"),
			 LT_EPROTO);
	assert_int_equal(feed(&st, &s, "garbage"), LT_EPROTO);
	assert_int_equal(s.n, 0);
	assert_false(st.role_sent);
	sink_free(&s);

	/* the client going away stops the stream with its error */
	lt_tr_stream_init(&st, LT_FMT_GEMINI, "cm", "chatcmpl-gw", 1, false);
	s.fail_at = 2;
	assert_int_equal(feed(&st, &s, GM_EVENT("{\"text\":\"a\"},{\"text\":\"b\"}", "")),
			 LT_ECLOSED);
	assert_int_equal(s.n, 1);
	assert_int_equal(st.chunks, 1);
	sink_free(&s);
}

static void test_stream_error_and_estimate(void **state)
{
	(void)state;
	struct lt_tr_stream st;
	struct sink s = {0};
	lt_tr_stream_init(&st, LT_FMT_OPENAI, "cm", "chatcmpl-gw", 1, true);
	assert_int_equal(feed(&st, &s, OA_TEXT("0123456789")), LT_OK);
	assert_int_equal(feed(&st, &s, OA_TEXT("abc")), LT_OK);
	/* cut before usage: estimated from 13 content bytes */
	struct lt_tokens t;
	bool est = false;
	lt_tr_stream_usage(&st, 25, &t, &est);
	assert_true(est);
	assert_usage(&t, 25, 0, 4, 0);
	lt_tr_stream_usage(&st, -5, &t, &est);
	assert_usage(&t, 0, 0, 4, 0);

	assert_int_equal(
		lt_tr_stream_error(&st, "upstream_error", "the provider failed", collect, &s),
		LT_OK);
	assert_int_equal(s.n, 3);
	cJSON *j = frame(&s, 2);
	assert_str_at(j, "error.message", "the provider failed");
	assert_str_at(j, "error.type", "server_error");
	assert_null_at(j, "error.param");
	assert_str_at(j, "error.code", "upstream_error");
	cJSON_Delete(j);
	assert_int_equal(count_done(&s), 0);
	assert_int_equal(lt_tr_stream_error(&st, NULL, "quote \" and \n", collect, &s), LT_OK);
	j = frame(&s, 3);
	assert_null_at(j, "error.code");
	assert_str_at(j, "error.message", "quote \" and \n");
	cJSON_Delete(j);
	sink_free(&s);

	/* gemini: thought bytes count toward the estimate */
	lt_tr_stream_init(&st, LT_FMT_GEMINI, "cm", "chatcmpl-gw", 1, false);
	assert_int_equal(feed(&st, &s, GM_EVENT("{\"text\":\"abcdefgh\",\"thought\":true}", "")),
			 LT_OK);
	lt_tr_stream_usage(&st, 1, &t, &est);
	assert_true(est);
	assert_usage(&t, 1, 0, 2, 0);
	sink_free(&s);

	/* long names are cut to fit */
	char longname[300];
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	lt_tr_stream_init(&st, LT_FMT_OPENAI, longname, longname, 1, false);
	assert_int_equal(strlen(st.model), sizeof st.model - 1);
	assert_int_equal(strlen(st.id), sizeof st.id - 1);
}

/* ---- embeddings ---- */

static void test_embeddings(void **state)
{
	(void)state;
	char param[64], why[LT_TR_WHY_MAX];
	char *body;
	size_t len, bytes;
	cJSON *c = J("{\"model\":\"emb\",\"input\":[\"abc\",\"de\"],\"dimensions\":256}");
	for (int k = 0; k < 2; k++) {
		enum lt_wire_format f = k ? LT_FMT_QWEN : LT_FMT_OPENAI;
		assert_int_equal(lt_tr_embeddings_request(f, c, "text-embedding-3-small", &body,
							  &len, &bytes, param, sizeof param, why,
							  sizeof why),
				 LT_OK);
		assert_int_equal(bytes, 5);
		cJSON *o = J(body);
		assert_str_at(o, "model", "text-embedding-3-small");
		assert_str_at(o, "input.1", "de");
		assert_num_at(o, "dimensions", 256);
		cJSON_Delete(o);
		free(body);
	}
	assert_int_equal(lt_tr_embeddings_request(LT_FMT_GEMINI, c, "e", &body, &len, &bytes, param,
						  sizeof param, why, sizeof why),
			 LT_EINVAL);
	assert_null(body);
	assert_non_null(strstr(why, "not supported"));
	cJSON_Delete(c);

	c = J("{\"model\":\"emb\",\"input\":\"hello\"}");
	assert_int_equal(lt_tr_embeddings_request(LT_FMT_OPENAI, c, "e", &body, &len, &bytes, param,
						  sizeof param, why, sizeof why),
			 LT_OK);
	assert_int_equal(bytes, 5);
	free(body);
	cJSON_Delete(c);

	static const struct {
		const char *body, *param;
	} bad[] = {
		{"[]", ""},
		{"{\"input\":\"x\"}", "model"},
		{"{\"model\":3,\"input\":\"x\"}", "model"},
		{"{\"model\":\"m\"}", "input"},
		{"{\"model\":\"m\",\"input\":\"\"}", "input"},
		{"{\"model\":\"m\",\"input\":[]}", "input"},
		{"{\"model\":\"m\",\"input\":[1,2]}", "input"},
		{"{\"model\":\"m\",\"input\":[\"a\",\"\"]}", "input"},
		{"{\"model\":\"m\",\"input\":{}}", "input"},
		{"{\"model\":\"m\",\"model\":\"n\",\"input\":\"x\"}", "model"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		c = J(bad[i].body);
		enum lt_err e = lt_tr_embeddings_request(LT_FMT_OPENAI, c, "e", &body, &len, &bytes,
							 param, sizeof param, why, sizeof why);
		if (e != LT_EINVAL || strcmp(param, bad[i].param) != 0)
			fail_msg("%s: got %d param \"%s\"", bad[i].body, e, param);
		assert_true(why[0] != '\0');
		cJSON_Delete(c);
	}
	/* 2048 inputs are fine, 2049 are not */
	for (int n = 2048; n <= 2049; n++) {
		c = J("{\"model\":\"m\",\"input\":[]}");
		for (int i = 0; i < n; i++)
			cJSON_AddItemToArray(cJSON_GetObjectItem(c, "input"),
					     cJSON_CreateString("w"));
		enum lt_err e = lt_tr_embeddings_request(LT_FMT_OPENAI, c, "e", &body, &len, &bytes,
							 param, sizeof param, why, sizeof why);
		assert_int_equal(e, n == 2048 ? LT_OK : LT_EINVAL);
		if (e == LT_OK) {
			assert_int_equal(bytes, 2048);
			free(body);
		}
		cJSON_Delete(c);
	}

	/* responses */
	struct lt_tokens t;
	bool found;
	const char *r = "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,"
			"\"embedding\":[0.1,-0.2]}],\"model\":\"text-embedding-3-small\","
			"\"usage\":{\"prompt_tokens\":8,\"total_tokens\":8}}";
	assert_int_equal(lt_tr_embeddings_response(LT_FMT_QWEN, r, strlen(r), "emb", &body, &len,
						   &t, &found),
			 LT_OK);
	assert_true(found);
	assert_usage(&t, 8, 0, 0, 0);
	cJSON *o = J(body);
	assert_str_at(o, "model", "emb");
	assert_num_at(o, "data.0.embedding.1", -0.2);
	cJSON_Delete(o);
	free(body);
	r = "{\"data\":[]}";
	assert_int_equal(lt_tr_embeddings_response(LT_FMT_OPENAI, r, strlen(r), "emb", &body, &len,
						   &t, &found),
			 LT_OK);
	assert_false(found);
	free(body);
	static const char *const bad_r[] = {"",
					    "[]",
					    "{}",
					    "{\"data\":{}}",
					    "{\"data\":[],\"usage\":5}",
					    "{\"data\":[],\"usage\":{\"prompt_tokens\":\"8\"}}"};
	for (size_t i = 0; i < sizeof bad_r / sizeof bad_r[0]; i++)
		assert_int_equal(lt_tr_embeddings_response(LT_FMT_OPENAI, bad_r[i],
							   strlen(bad_r[i]), "emb", &body, &len, &t,
							   &found),
				 LT_EPROTO);
	assert_int_equal(lt_tr_embeddings_response(LT_FMT_GEMINI, r, strlen(r), "emb", &body, &len,
						   &t, &found),
			 LT_EINVAL);
}

/* ---- upstream error messages ---- */

static void test_error_message(void **state)
{
	(void)state;
	char m[128];
	static const struct {
		const char *body, *want;
	} cases[] = {
		/* openai */
		{"{\"error\":{\"message\":\"Incorrect API key provided\",\"type\":"
		 "\"invalid_request_error\",\"param\":null,\"code\":\"invalid_api_key\"}}",
		 "Incorrect API key provided"},
		/* gemini */
		{"{\"error\":{\"code\":400,\"message\":\"API key not valid.\",\"status\":"
		 "\"INVALID_ARGUMENT\"}}",
		 "API key not valid."},
		{"[{\"error\":{\"code\":429,\"message\":\"Resource exhausted\",\"status\":"
		 "\"RESOURCE_EXHAUSTED\"}}]",
		 "Resource exhausted"},
		/* qwen compatible mode, and DashScope's native shape */
		{"{\"error\":{\"message\":\"Range of input length should be [1, 30720]\",\"type\":"
		 "\"invalid_request_error\",\"param\":null,\"code\":\"invalid_parameter_error\"}}",
		 "Range of input length should be [1, 30720]"},
		{"{\"code\":\"InvalidApiKey\",\"message\":\"Invalid API-key provided.\","
		 "\"request_id\":\"x\"}",
		 "Invalid API-key provided."},
		{"{\"error\":\"plain string\"}", "plain string"},
		/* control characters are flattened */
		{"{\"error\":{\"message\":\"  line1\\nline2\\t\\u0001 end  \"}}",
		 "line1 line2 end"},
		/* garbage and shapes without a message */
		{"<html>502 Bad Gateway</html>", "the upstream provider returned HTTP 502"},
		{"{\"error\":{\"code\":1}}", "the upstream provider returned HTTP 502"},
		{"{\"error\":{\"message\":\"\"}}", "the upstream provider returned HTTP 502"},
		{"{\"error\":{\"message\":5}}", "the upstream provider returned HTTP 502"},
		{"", "the upstream provider returned HTTP 502"},
		{"\xff\xfe", "the upstream provider returned HTTP 502"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		memset(m, 'Z', sizeof m);
		lt_tr_error_message(cases[i].body, strlen(cases[i].body), 502, m, sizeof m);
		if (strcmp(m, cases[i].want) != 0)
			fail_msg("%s: got \"%s\", want \"%s\"", cases[i].body, m, cases[i].want);
	}
	lt_tr_error_message(NULL, 0, 503, m, sizeof m);
	assert_string_equal(m, "the upstream provider returned HTTP 503");
	/* truncation keeps whole UTF-8 characters */
	const char *u = "{\"error\":{\"message\":\"ab\xc3\xa9\xc3\xa9\"}}";
	char small[5];
	lt_tr_error_message(u, strlen(u), 400, small, sizeof small);
	assert_string_equal(small, "ab\xc3\xa9");
	char tiny[4];
	lt_tr_error_message(u, strlen(u), 400, tiny, sizeof tiny);
	assert_string_equal(tiny, "ab");
	lt_tr_error_message(u, strlen(u), 400, tiny, 0); /* never writes */
}

int main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_names),
		cmocka_unit_test(test_parse_table),
		cmocka_unit_test(test_parse_fields),
		cmocka_unit_test(test_openai_request),
		cmocka_unit_test(test_gemini_request),
		cmocka_unit_test(test_chat_path),
		cmocka_unit_test(test_openai_response),
		cmocka_unit_test(test_gemini_response),
		cmocka_unit_test(test_openai_stream),
		cmocka_unit_test(test_openai_stream_usage_variants),
		cmocka_unit_test(test_gemini_stream),
		cmocka_unit_test(test_gemini_stream_edges),
		cmocka_unit_test(test_stream_error_and_estimate),
		cmocka_unit_test(test_embeddings),
		cmocka_unit_test(test_error_message),
	};
	/* clang-format on */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
