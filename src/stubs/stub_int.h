/*
 * stub_int.h — internals shared by the provider stubs' files (not a public
 * interface: only src/stubs/ and the stubs' unit tests include it).
 *
 * Files and what each owns:
 *   stubs.c          the civetweb listener, the route table, dispatch, the
 *                    reloadable knobs, start/stop.
 *   stub_reply.c     response writers: one-buffer replies, provider error
 *                    shapes, chunked SSE streams, stop-aware sleeps; the
 *                    drop and malformed faults are applied here.
 *   stub_fault.c     the fault engine: X-Stub-Fault parsing, the queued
 *                    fault plans, rate-based decisions (pure apart from the
 *                    plan queue's mutex).
 *   stub_control.c   the control API (/_stub/...) and the request log.
 *   stub_text.c      pure: FNV-1a, the xorshift PRNG, deterministic text,
 *                    usage rules, embedding vectors.
 *   stub_openai.c    OpenAI and Qwen (compatible mode): chat and embeddings.
 *   stub_gemini.c    Gemini generateContent / streamGenerateContent.
 *   stub_reference.c the Java reference's /api/v1/{provider}/chat.
 *   stub_payment.c   the payment service for the purchase saga.
 *   stub_tls.c       the HTTPS listener: a BearSSL terminator forwarding to
 *                    the plain listener.
 *
 * Threads: civetweb workers run requests concurrently.  struct lt_stubs is
 * shared; each mutable part has its own mutex (knobs, plans, request log,
 * payments) and nothing is held across I/O or sleeps.  struct lt_stub_req
 * lives on one worker's stack for one request.
 */
#ifndef LT_STUBS_STUB_INT_H
#define LT_STUBS_STUB_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>

#include "http/router.h"
#include "stubs/stubs.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/log.h"

struct mg_context;
struct mg_connection;
struct mg_request_info;

#define LT_STUB_MAX_BODY (1024 * 1024) /* request bodies above this get 413 */
#define LT_STUB_RESP_MAX (8 * 1024 * 1024)
#define LT_STUB_MODEL_MAX 128
#define LT_STUB_MATCH_MAX 256
#define LT_STUB_PLANS_MAX 1000
#define LT_STUB_REQLOG_MAX 1000
#define LT_STUB_PATH_MAX 512
#define LT_STUB_CRED_MAX 512
#define LT_STUB_FAULT_DESC_MAX 96
#define LT_STUB_SLEEP_SLICE_MS 50
#define LT_STUB_REASONING_TOKENS 16
#define LT_STUB_EMBED_DIMS_DEFAULT 8
#define LT_STUB_EMBED_DIMS_MAX 4096

/* ---- pure parts (stub_text.c) ---- */

enum lt_stub_provider { LT_STUB_OPENAI, LT_STUB_QWEN, LT_STUB_GEMINI };

#define LT_STUB_FNV_BASIS UINT64_C(0xcbf29ce484222325)

/* FNV-1a 64 of p[0..n), continuing from h (start with LT_STUB_FNV_BASIS). */
uint64_t lt_stub_fnv1a(uint64_t h, const void *p, size_t n);

/* xorshift64* — fast, not cryptographic; one per request or per text. */
struct lt_stub_rng {
	uint64_t s; /* never 0 */
};

void lt_stub_rng_seed(struct lt_stub_rng *r, uint64_t seed);
uint64_t lt_stub_rng_next(struct lt_stub_rng *r);
/* Uniform in [0, n); 0 when n is 0. */
uint64_t lt_stub_rng_below(struct lt_stub_rng *r, uint64_t n);
/* True with probability pct/100 (pct clamped to 0..100). */
bool lt_stub_rng_pct(struct lt_stub_rng *r, int64_t pct);

/* "OpenAI", "Qwen", "Gemini". */
const char *lt_stub_provider_label(enum lt_stub_provider p);

/* The prompt of one request: its text concatenated (usage counts it) and a
 * hash of the model and every (role, text) pair (seeds the answer).
 * Ownership: lt_stub_prompt_release frees text. */
struct lt_stub_prompt {
	struct lt_buf text;
	uint64_t hash;
};

void lt_stub_prompt_init(struct lt_stub_prompt *p, const char *model);
/* LT_ETOOBIG past LT_STUB_MAX_BODY bytes of text, LT_ENOMEM. */
enum lt_err lt_stub_prompt_add(struct lt_stub_prompt *p, const char *role, const char *text,
			       size_t len);
void lt_stub_prompt_release(struct lt_stub_prompt *p);

/* Usage of one answer.  The visible content is exactly 4 * output bytes, so
 * lt_token_estimate(content) == output. */
struct lt_stub_usage {
	int64_t prompt;	   /* lt_token_estimate of the prompt text */
	int64_t cached;	   /* subset of prompt: prompt >= 1024 ? prompt/2 floored to 128s : 0 */
	int64_t output;	   /* visible output tokens */
	int64_t reasoning; /* reasoning/thought tokens, NOT included in output */
	bool cut;	   /* max_tokens ended the output ("length" / "MAX_TOKENS") */
};

/* Output length the hash asks for: 8 + hash % 25 (8..32). */
int64_t lt_stub_natural_tokens(uint64_t hash);
int64_t lt_stub_cached_tokens(int64_t prompt_tokens);
/* LT_STUB_REASONING_TOKENS for reasoning models (OpenAI ids matching
 * ^o[0-9], Gemini ids containing "2.5"), else 0. */
int64_t lt_stub_reasoning_tokens(enum lt_stub_provider p, const char *model);
/* max_tokens <= 0 means no limit. */
void lt_stub_usage_compute(enum lt_stub_provider p, const char *model,
			   const struct lt_stub_prompt *prompt, int64_t max_tokens,
			   struct lt_stub_usage *u);

/* Append the answer text: "Stubbed <Label> response" and words seeded by
 * hash, cut to exactly 4 * n bytes (ASCII). */
enum lt_err lt_stub_text_generate(enum lt_stub_provider p, uint64_t hash, int64_t n,
				  struct lt_buf *out);

/* A unit-length vector of dims floats, determined by seed. */
void lt_stub_embedding(uint64_t seed, float *out, size_t dims);

/* ---- faults (stub_fault.c) ---- */

struct lt_stub_fault {
	int status;	    /* answer this status instead of serving; 0 = no */
	int retry_after_s;  /* Retry-After with 429/503; -1 = the configured value */
	int64_t delay_ms;   /* extra delay before answering */
	int64_t drop_after; /* streams: frames sent before the drop; plain answers: drop
			       mid-body; -1 = no drop */
	bool malformed;	    /* 200 with a truncated JSON body / frame */
};

/* The reloadable [stubs] knobs, copied per request. */
struct lt_stub_knobs {
	int64_t latency_ms, jitter_ms, token_delay_ms;
	int64_t error_rate_pct, error_status, retry_after_s;
	int64_t spike_rate_pct, spike_ms;
	int64_t drop_rate_pct, malformed_rate_pct;
};

void lt_stub_fault_none(struct lt_stub_fault *f);
bool lt_stub_fault_active(const struct lt_stub_fault *f);

/* Parse an X-Stub-Fault value ("status=503; retry-after=2; delay=500;
 * drop-after=3; malformed", any subset, any order).  LT_ESYNTAX with a
 * reason in why on anything else.  Pure. */
enum lt_err lt_stub_fault_parse(const char *s, struct lt_stub_fault *f, char *why, size_t why_cap);

/* The same syntax back ("" for no fault), for the request log. */
void lt_stub_fault_describe(const struct lt_stub_fault *f, char *out, size_t cap);

/* Draw a fault from the configured rates.  Pure given rng. */
void lt_stub_fault_roll(const struct lt_stub_knobs *k, struct lt_stub_rng *rng,
			struct lt_stub_fault *f);

struct lt_stub_plan {
	char match[LT_STUB_MATCH_MAX]; /* path prefix */
	struct lt_stub_fault fault;
	int64_t count; /* requests left */
};

/* FIFO of fault plans, bounded by LT_STUB_PLANS_MAX; own mutex. */
struct lt_stub_plans {
	pthread_mutex_t mu;
	struct lt_stub_plan *v; /* owned, LT_STUB_PLANS_MAX entries */
	size_t n;
};

enum lt_err lt_stub_plans_init(struct lt_stub_plans *q);
void lt_stub_plans_release(struct lt_stub_plans *q);
/* LT_EBUSY when the queue is full. */
enum lt_err lt_stub_plans_push(struct lt_stub_plans *q, const struct lt_stub_plan *p);
/* The first plan whose match prefixes path: copy its fault, consume one
 * of its count.  False if none matches. */
bool lt_stub_plans_take(struct lt_stub_plans *q, const char *path, struct lt_stub_fault *out);
size_t lt_stub_plans_clear(struct lt_stub_plans *q);
void lt_stub_plans_render(struct lt_stub_plans *q, struct lt_buf *out);

/* ---- the running stubs (stubs.c) ---- */

struct lt_stub_reqlog_entry {
	uint64_t seq;
	int64_t received_ms;
	int64_t body_bytes;
	char method[16];
	char path[LT_STUB_PATH_MAX];
	char fault[LT_STUB_FAULT_DESC_MAX];
	char credential[LT_STUB_CRED_MAX];
};

/* Ring of the last LT_STUB_REQLOG_MAX requests; own mutex. */
struct lt_stub_reqlog {
	pthread_mutex_t mu;
	struct lt_stub_reqlog_entry *v; /* owned ring */
	size_t head;			/* next slot to write */
	size_t n;
	uint64_t seq;
};

struct lt_stub_payments; /* stub_payment.c */
struct lt_stub_tls;	 /* stub_tls.c */

struct lt_stubs {
	struct mg_context *ctx;
	struct lt_log *log; /* borrowed */
	int port, tls_port;
	char listen[LT_CFG_STR_MAX], tls_listen[LT_CFG_STR_MAX];
	struct lt_stub_tls *tls; /* the HTTPS terminator, or NULL */
	atomic_bool stopping;
	atomic_int inflight; /* requests inside begin_request */
	atomic_uint_fast64_t seed_ctr;
	uint64_t seed0;
	pthread_mutex_t knobs_mu;
	struct lt_stub_knobs knobs;
	struct lt_stub_plans plans;
	struct lt_stub_reqlog reqlog;
	struct lt_stub_payments *pay;
};

/* Which error envelope a request gets. */
enum lt_stub_shape {
	LT_STUB_SHAPE_OPENAI, /* {"error":{"message","type","param","code"}} (Qwen too) */
	LT_STUB_SHAPE_GEMINI, /* {"error":{"code","message","status"}} */
	LT_STUB_SHAPE_PLAIN,  /* {"message","status"} (reference, payment, control) */
};

/* One request, on a worker's stack. */
struct lt_stub_req {
	struct lt_stubs *s;
	struct mg_connection *conn;
	const struct mg_request_info *ri;
	const char *method;
	const char *path;
	const char *query; /* raw query string or NULL */
	struct lt_route_match m;
	char *body; /* owned, NUL-terminated */
	size_t body_len;
	cJSON *json; /* owned parsed body, or NULL */
	enum lt_stub_shape shape;
	struct lt_stub_fault fault;
	struct lt_stub_knobs knobs;
	struct lt_stub_rng rng;
	char request_id[40];
	bool head;
	bool keep_alive;
	bool replied;
	bool streaming;	     /* the 200 head of a chunked stream is out */
	bool closed;	     /* dropped by a fault, by stop, or the client went away */
	int malformed_frame; /* which stream frame a malformed fault truncates */
	int frames;	     /* stream frames sent */
	int status;
};

/* ---- writers (stub_reply.c) ---- */

/* Whole response: status line, headers, body, one write.  extra_headers is
 * NULL or complete lines ending "\r\n".  For a 200, the request's drop and
 * malformed faults are applied. */
void lt_stub_reply(struct lt_stub_req *r, int status, const char *content_type,
		   const char *extra_headers, const char *body, size_t len);
/* A JSON body from a buffer; a buffer error becomes a 500. */
void lt_stub_reply_json(struct lt_stub_req *r, int status, const struct lt_buf *body,
			const char *extra_headers);
/* An error in the request's shape; never faulted. */
void lt_stub_reply_error(struct lt_stub_req *r, int status, const char *message,
			 const char *extra_headers);

/* Streams (chunked, one write per frame).  Each returns false once the
 * stream is over early (drop fault, stop, client gone): stop producing. */
bool lt_stub_stream_begin(struct lt_stub_req *r);
/* One SSE event "data: <payload><term>" (term "\n\n" or "\r\n\r\n"). */
bool lt_stub_stream_event(struct lt_stub_req *r, const char *payload, size_t len, const char *term);
/* End the stream early: close with no terminating chunk. */
void lt_stub_stream_abort(struct lt_stub_req *r);
/* The terminating chunk (skipped if the stream ended early). */
void lt_stub_stream_end(struct lt_stub_req *r);

/* Sleep ms in slices of at most LT_STUB_SLEEP_SLICE_MS; false if the stubs
 * began stopping meanwhile. */
bool lt_stub_sleep(struct lt_stubs *s, int64_t ms);

/* Wall clock, Unix seconds and milliseconds. */
int64_t lt_stub_now_s(void);
int64_t lt_stub_now_ms(void);

/* ---- handlers ---- */

void lt_stub_openai_chat(struct lt_stub_req *r, enum lt_stub_provider p);
void lt_stub_openai_embeddings(struct lt_stub_req *r, enum lt_stub_provider p);
void lt_stub_gemini_generate(struct lt_stub_req *r, bool stream);
void lt_stub_reference_chat(struct lt_stub_req *r);

enum lt_stub_pay_op {
	LT_STUB_PAY_AUTHORIZE,
	LT_STUB_PAY_CAPTURE,
	LT_STUB_PAY_RELEASE,
	LT_STUB_PAY_GET
};
enum lt_err lt_stub_payments_new(size_t max_payments, struct lt_stub_payments **out);
void lt_stub_payments_free(struct lt_stub_payments *p);
void lt_stub_payment(struct lt_stub_req *r, enum lt_stub_pay_op op);

/* Control API (stub_control.c). */
enum lt_stub_ctl {
	LT_STUB_CTL_FAULTS_ADD,
	LT_STUB_CTL_FAULTS_LIST,
	LT_STUB_CTL_FAULTS_CLEAR,
	LT_STUB_CTL_REQUESTS_LIST,
	LT_STUB_CTL_REQUESTS_CLEAR,
	LT_STUB_CTL_HEALTH
};
void lt_stub_control(struct lt_stub_req *r, enum lt_stub_ctl op);

enum lt_err lt_stub_reqlog_init(struct lt_stub_reqlog *l);
void lt_stub_reqlog_release(struct lt_stub_reqlog *l);
void lt_stub_reqlog_add(struct lt_stub_reqlog *l, const struct lt_stub_reqlog_entry *e);

/* The HTTPS listener (stub_tls.c): a BearSSL terminator on addr that
 * forwards each connection to backend (the plain stubs listener).  LT_EIO
 * or LT_ENOMEM with why. */
enum lt_err lt_stub_tls_start(const char *addr, const char *cert_path,
			      const struct sockaddr_storage *backend, socklen_t backend_len,
			      int max_conns, struct lt_log *log, struct lt_stub_tls **out,
			      char *why, size_t why_cap);
int lt_stub_tls_port(const struct lt_stub_tls *t);
void lt_stub_tls_stop(struct lt_stub_tls *t);

/* Request helpers (stubs.c). */
const char *lt_stub_header(const struct lt_stub_req *r, const char *name);
/* The route parameter `name` copied into out; LT_ETOOBIG if it does not
 * fit, LT_ENOTFOUND if absent. */
enum lt_err lt_stub_param(const struct lt_stub_req *r, const char *name, char *out, size_t cap);

#endif
