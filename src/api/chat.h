/*
 * chat.h — one provider call on behalf of an HTTP request, shared by the
 * OpenAI-compatible API (v1.c) and the reference passthrough
 * (provider_chat.c).
 *
 * lt_chat_run resolves nothing: the caller has resolved the model
 * (lt_registry_resolve) and translated the body.  It makes the resilient
 * call, translates the answer back (non-streamed) or streams it to the
 * client (SSE, translated frame by frame), and emits the usage record
 * (usage_hook.h) whatever happened.
 *
 * Ownership: out->body is malloc'd (the translated OpenAI JSON of a 2xx
 * non-streamed call) and freed with lt_chat_result_free.
 */
#ifndef LT_API_CHAT_H
#define LT_API_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include "provider/registry.h"
#include "provider/translate.h"

struct lt_req;

enum lt_chat_kind { LT_CHAT_COMPLETION, LT_CHAT_EMBEDDINGS };

struct lt_chat_call {
	const struct lt_target *target;
	enum lt_chat_kind kind;
	const char *endpoint; /* static, for the usage record: "chat", "embeddings", "reference" */
	const char *path_suffix;
	const char *body; /* translated upstream body */
	size_t body_len;
	bool stream;		 /* chat only: stream the answer to the client as SSE */
	bool include_usage;	 /* stream_options.include_usage */
	int64_t prompt_estimate; /* tokens, for records of cut streams */
};

struct lt_chat_result {
	bool replied; /* a streamed answer already went to the client */
	int status;   /* for the caller's reply when !replied: 200 or an error status */
	char *body;   /* 200: the translated body (owned) */
	size_t body_len;
	const char *error_type; /* OpenAI error type and code for an error status */
	const char *error_code;
	char message[512];
	int64_t retry_after_s; /* -1 if none */
	struct lt_tokens tokens;
	struct lt_usage_record usage; /* the call's usage record (as emitted) */
};

void lt_chat_run(struct lt_req *req, const struct lt_chat_call *call, struct lt_chat_result *out);
void lt_chat_result_free(struct lt_chat_result *out);

/* The reference call (providers.c): {prompt} as a one-message chat on the
 * provider's default_model, answered in the reference stubs' shape
 * {id, provider, received, created, message} (*out, owned by the caller).
 * max_tokens > 0 caps the output (sent upstream).  *used (may be NULL)
 * gets the call's usage record, also when it failed.  On
 * failure *status / *message / *retry_after_s (-1: none) say what to
 * answer on /api/v1. */
struct cJSON;
enum lt_err lt_reference_call(struct lt_req *req, const struct lt_cfg_provider *p,
			      const char *prompt, const struct cJSON *received, int64_t max_tokens,
			      struct cJSON **out, struct lt_usage_record *used, int *status,
			      const char **message, int64_t *retry_after_s);

/* The provider named by the route's {provider} parameter, or NULL. */
const struct lt_cfg_provider *lt_api_provider_param(struct lt_req *req);

/* s names a configured provider (any case): its lower-case name into out.
 * false for an empty, too long or unknown name. */
bool lt_api_provider_name(const struct lt_config *cfg, const char *s, size_t n,
			  char out[LT_CFG_PROVIDER_NAME_MAX]);

/* Answer an lt_chat_result that is an error, in OpenAI's envelope. */
void lt_chat_reply_error(struct lt_req *req, const struct lt_chat_result *r);

#endif
