/*
 * translate_int.h — helpers shared by the translate_*.c files (internal to
 * the translator; nothing outside src/provider/translate_*.c includes it).
 *
 * Ownership: functions that take a cJSON item to insert (lt_tr_set) adopt
 * it on success and on failure alike (a refused item is deleted), so a
 * caller never leaks or double-frees.  Strings written through char **out
 * are malloc'd and the caller frees them.
 */
#ifndef LT_PROVIDER_TRANSLATE_INT_H
#define LT_PROVIDER_TRANSLATE_INT_H

#include "provider/translate.h"

/* Largest client model name lt_chat_req_parse accepts (fits st->model). */
#define LT_TR_MODEL_MAX 95

/* Write "param" and a printf-formatted "why" (each NUL-terminated and
 * truncated to its capacity; NULL or 0 capacity skips it).  Returns
 * LT_EINVAL so a caller can `return lt_tr_fail(...)`. */
enum lt_err lt_tr_fail(char *param, size_t param_cap, const char *p, char *why, size_t why_cap,
		       const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Copy src into dst[cap] (cap > 0), truncated at a UTF-8 boundary. */
void lt_tr_copy(char *dst, size_t cap, const char *src);

/* Parse an upstream body as a JSON object.  LT_EPROTO when it is not valid
 * JSON or not an object, LT_ENOMEM.  The caller cJSON_Deletes *out. */
enum lt_err lt_tr_parse_object(const char *body, size_t len, cJSON **out);

/* Print j unformatted into a malloc'd string (LT_ENOMEM on failure). */
enum lt_err lt_tr_print(const cJSON *j, char **out, size_t *out_len);

/* obj[name] = item: the first member of that name is replaced in place,
 * any later duplicates are removed, else item is appended.  Adopts item
 * (deleted on failure); item may be NULL (a failed cJSON_Create*), which
 * gives LT_ENOMEM. */
enum lt_err lt_tr_set(cJSON *obj, const char *name, cJSON *item);

/* Remove every member called name. */
void lt_tr_remove(cJSON *obj, const char *name);

/* Member `name` of obj when present and not null, else NULL. */
const cJSON *lt_tr_get(const cJSON *obj, const char *name);

/* Upstream integer count at obj[name]: absent or null leaves *out as 0;
 * LT_EPROTO when it is not an exact integer in 0..LT_JSON_INT_MAX. */
enum lt_err lt_tr_get_count(const cJSON *obj, const char *name, int64_t *out);

/* Read an OpenAI-shaped usage object (prompt_tokens, completion_tokens,
 * prompt_tokens_details.cached_tokens, completion_tokens_details.
 * reasoning_tokens) into *t, clamped consistent.  LT_EPROTO on wrong types
 * or negative counts. */
enum lt_err lt_tr_usage_read(const cJSON *usage, struct lt_tokens *t);

/* Rewrite `usage` (an object) with t's normalised fields, keeping any other
 * members it has. */
enum lt_err lt_tr_usage_write(cJSON *usage, const struct lt_tokens *t);

/* A new OpenAI usage object for t (NULL on allocation failure). */
cJSON *lt_tr_usage_new(const struct lt_tokens *t);

/* A new {"id","object":"chat.completion.chunk","created","model"} for the
 * stream (NULL on allocation failure). */
cJSON *lt_tr_chunk_new(const struct lt_tr_stream *st);

/* Emit "data: <j>\n\n" (or "data: <raw>\n\n"), counting it in st->chunks. */
enum lt_err lt_tr_emit_json(struct lt_tr_stream *st, const cJSON *j, lt_tr_emit_fn emit, void *arg);
enum lt_err lt_tr_emit_raw(struct lt_tr_stream *st, const char *payload, lt_tr_emit_fn emit,
			   void *arg);

/* Event data that is only whitespace, or the "[DONE]" sentinel. */
bool lt_tr_data_blank(const char *data, size_t len);
bool lt_tr_data_done(const char *data, size_t len);

/* translate_openai.c: openai and qwen. */
enum lt_err lt_tr_openai_request(const struct lt_chat_req *rq, const char *upstream_model,
				 char **body, size_t *body_len);
enum lt_err lt_tr_openai_response(const char *body, size_t len, const char *client_model,
				  const char *id, int64_t created, char **out, size_t *out_len,
				  struct lt_tokens *usage, bool *usage_found);
enum lt_err lt_tr_openai_stream_event(struct lt_tr_stream *st, const char *data, size_t len,
				      lt_tr_emit_fn emit, void *arg);

/* translate_gemini.c. */
enum lt_err lt_tr_gemini_request(const struct lt_chat_req *rq, char **body, size_t *body_len,
				 char *param, size_t param_cap, char *why, size_t why_cap);
enum lt_err lt_tr_gemini_response(const char *body, size_t len, const char *client_model,
				  const char *id, int64_t created, char **out, size_t *out_len,
				  struct lt_tokens *usage, bool *usage_found);
enum lt_err lt_tr_gemini_stream_event(struct lt_tr_stream *st, const char *data, size_t len,
				      lt_tr_emit_fn emit, void *arg);
/* The role chunk (first) and the finish chunk of a gemini stream. */
enum lt_err lt_tr_gemini_role_chunk(struct lt_tr_stream *st, lt_tr_emit_fn emit, void *arg);
enum lt_err lt_tr_gemini_finish_chunk(struct lt_tr_stream *st, const char *reason,
				      lt_tr_emit_fn emit, void *arg);

#endif
