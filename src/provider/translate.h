/*
 * translate.h — OpenAI-shaped requests and responses to and from each
 * provider's wire format (pure: no I/O; cJSON only).
 *
 * Formats:
 *   LT_FMT_OPENAI  OpenAI Chat Completions / Embeddings.
 *   LT_FMT_QWEN    DashScope "compatible mode": OpenAI's shape on another
 *                  base URL; usage may carry prompt_tokens_details.
 *   LT_FMT_GEMINI  Google generateContent / streamGenerateContent?alt=sse:
 *                  contents[] with role user|model and parts[].text,
 *                  systemInstruction, generationConfig; responses carry
 *                  candidates[] and usageMetadata.
 *
 * Usage is normalised to struct lt_tokens (see provider/usage.h): cached
 * tokens are a subset of input, reasoning a subset of output, never added
 * twice.  Gemini: input = promptTokenCount, cached = cachedContentTokenCount,
 * output = candidatesTokenCount + thoughtsTokenCount, reasoning =
 * thoughtsTokenCount.
 *
 * Every function returns LT_OK, LT_EINVAL (the client's request is not
 * acceptable: `why` says why, `param` names the field when there is one),
 * LT_EPROTO (the upstream's bytes are not what its format promises) or
 * LT_ENOMEM.  Output strings are malloc'd and owned by the caller (free()).
 */
#ifndef LT_PROVIDER_TRANSLATE_H
#define LT_PROVIDER_TRANSLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "provider/usage.h"
#include "util/err.h"

enum lt_wire_format { LT_FMT_OPENAI, LT_FMT_GEMINI, LT_FMT_QWEN };

/* "openai", "gemini", "qwen". */
const char *lt_format_name(enum lt_wire_format f);

#define LT_TR_WHY_MAX 256

/* A client's chat request, validated.  Points into the cJSON tree it was
 * parsed from (borrowed; the tree must outlive it). */
struct lt_chat_req {
	const cJSON *json; /* the whole client body */
	const char *model; /* client's model name */
	bool stream;
	bool include_usage;  /* stream_options.include_usage */
	int64_t max_tokens;  /* max_completion_tokens, else max_tokens; -1 if absent */
	size_t prompt_bytes; /* bytes of message text, for estimates */
	size_t nmessages;
};

/* Validate an OpenAI chat request body: model (non-empty string ≤ 95
 * bytes), messages (1..4096 objects with role system|developer|user|
 * assistant|tool and content string, null for assistant with tool_calls, or
 * an array of parts), stream (bool), stream_options (object, only with
 * stream), max_tokens / max_completion_tokens (1..1000000), n (1..8),
 * temperature (0..2), top_p (0..1), stop (string or ≤4 strings).
 * Unknown fields are passed through untouched for OpenAI-format upstreams. */
enum lt_err lt_chat_req_parse(const cJSON *body, struct lt_chat_req *out, char *param,
			      size_t param_cap, char *why, size_t why_cap);

/* The path (after the provider's base URL path) of the chat call:
 * openai/qwen "/chat/completions"; gemini "/models/<model>:generateContent"
 * or "/models/<model>:streamGenerateContent?alt=sse".  LT_ETOOBIG if it
 * does not fit, LT_EINVAL if the model id holds characters that are not
 * allowed in a path segment ([A-Za-z0-9._:-] plus '/' for openai). */
enum lt_err lt_tr_chat_path(enum lt_wire_format f, const char *upstream_model, bool stream,
			    char *out, size_t cap);

/* Body for the upstream.  openai/qwen: the client's body with "model"
 * replaced by upstream_model and, when streaming, stream_options.
 * include_usage forced to true (the gateway always bills from the
 * upstream's usage); "n" > 1 is refused for gemini.  gemini: contents[]
 * (assistant → role "model", consecutive same-role messages kept as separate
 * entries), system/developer messages joined into systemInstruction,
 * generationConfig {maxOutputTokens, temperature, topP, stopSequences,
 * candidateCount}; non-text parts → LT_EINVAL. */
enum lt_err lt_tr_chat_request(enum lt_wire_format f, const struct lt_chat_req *rq,
			       const char *upstream_model, char **body, size_t *body_len,
			       char *param, size_t param_cap, char *why, size_t why_cap);

/* A 2xx non-streamed upstream body → an OpenAI chat.completion body with
 * "model" set to client_model.  openai/qwen: the upstream object with model
 * replaced and usage normalised (prompt_tokens_details.cached_tokens and
 * completion_tokens_details.reasoning_tokens always present).  gemini:
 * {id, object:"chat.completion", created, model, choices:[{index, message:
 * {role:"assistant", content}, logprobs:null, finish_reason}], usage}.
 * `id` and `created` are used where the upstream gives none.  *usage_found
 * tells whether the upstream reported usage (usage is zero otherwise). */
enum lt_err lt_tr_chat_response(enum lt_wire_format f, const char *body, size_t len,
				const char *client_model, const char *id, int64_t created,
				char **out, size_t *out_len, struct lt_tokens *usage,
				bool *usage_found);

/* Embeddings (openai and qwen formats only; gemini → LT_EINVAL).  Request:
 * input (string or array of 1..2048 strings) and model required; model
 * replaced.  Response: model replaced, usage read (prompt_tokens). */
enum lt_err lt_tr_embeddings_request(enum lt_wire_format f, const cJSON *client_body,
				     const char *upstream_model, char **body, size_t *body_len,
				     size_t *input_bytes, char *param, size_t param_cap, char *why,
				     size_t why_cap);
enum lt_err lt_tr_embeddings_response(enum lt_wire_format f, const char *body, size_t len,
				      const char *client_model, char **out, size_t *out_len,
				      struct lt_tokens *usage, bool *usage_found);

/* The human message in an upstream error body ({"error":{"message"}} for
 * all three formats), else a generic one with the status.  Never fails. */
void lt_tr_error_message(const char *body, size_t len, int status, char *out, size_t cap);

/* ---- streams ---- */

/* Emits one complete SSE frame to the client ("data: ...\n\n").  A non-OK
 * return (client gone) is passed back by the stream functions. */
typedef enum lt_err (*lt_tr_emit_fn)(void *arg, const char *frame, size_t len);

struct lt_tr_stream {
	enum lt_wire_format f;
	char model[136]; /* client's model name */
	char id[96];	 /* chatcmpl id used for translated chunks */
	int64_t created; /* unix seconds */
	bool include_usage;
	bool role_sent;	  /* gemini: the first chunk with the role went out */
	bool finish_sent; /* a chunk with a finish_reason went out */
	bool usage_found; /* the upstream reported usage */
	bool usage_sent;  /* a usage chunk went to the client */
	bool done;	  /* openai/qwen: upstream sent [DONE]; gemini: finishReason seen */
	struct lt_tokens usage;
	uint64_t content_bytes; /* content (and reasoning) text bytes sent to the client */
	uint64_t chunks;	/* frames emitted */
	char finish_reason[32];
};

void lt_tr_stream_init(struct lt_tr_stream *st, enum lt_wire_format f, const char *client_model,
		       const char *id, int64_t created, bool include_usage);

/* One upstream SSE event's data.  openai/qwen: "[DONE]" marks the end
 * (nothing emitted); a chunk is re-emitted with model replaced; a chunk
 * carrying usage records it and is emitted only if include_usage (a chunk
 * that has both choices and usage is emitted without its usage when the
 * client did not ask); "usage": null fields are dropped unless
 * include_usage.  gemini: each GenerateContentResponse becomes a role chunk
 * (first time), content delta chunks, and a finish chunk when finishReason
 * appears; usageMetadata is recorded (the last one wins). */
enum lt_err lt_tr_stream_event(struct lt_tr_stream *st, const char *data, size_t len,
			       lt_tr_emit_fn emit, void *arg);

/* The upstream stream ended normally: gemini emits its finish chunk if none
 * went out yet; then, if include_usage and no usage chunk was forwarded, a
 * usage chunk ({choices:[], usage}); then "data: [DONE]\n\n". */
enum lt_err lt_tr_stream_finish(struct lt_tr_stream *st, lt_tr_emit_fn emit, void *arg);

/* The upstream failed mid-stream: emit one OpenAI error frame
 * (data: {"error":{"message","type":"server_error","param":null,
 * "code":code}}) and no [DONE]. */
enum lt_err lt_tr_stream_error(struct lt_tr_stream *st, const char *code, const char *message,
			       lt_tr_emit_fn emit, void *arg);

/* Usage so far: the upstream's if it reported one, else estimated from the
 * streamed content (lt_token_estimate) with input = prompt_estimate;
 * *estimated tells which. */
void lt_tr_stream_usage(const struct lt_tr_stream *st, int64_t prompt_estimate,
			struct lt_tokens *out, bool *estimated);

#endif
