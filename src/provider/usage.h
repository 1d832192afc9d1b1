/*
 * usage.h — the normalised usage record of one provider call, token
 * estimates and cost (pure: no I/O).
 *
 * Token kinds follow OpenAI's usage fields: `input` is prompt_tokens and
 * includes `cached_input` (a subset); `output` is completion_tokens and
 * includes `reasoning` (a subset).  Subsets are never added twice: a
 * translator that reads Gemini's candidatesTokenCount + thoughtsTokenCount
 * stores output = candidates + thoughts, reasoning = thoughts.
 *
 * Prices are integers in micro-dollars per one million tokens.  The cost of a
 * call is computed exactly in 128-bit arithmetic and rounded up to a whole
 * micro-dollar (the gateway never bills less than the provider charges):
 *
 *   cost = ceil(((input - cached) * p_in + cached * p_cached + output * p_out) / 1e6)
 *
 * Every completed or aborted call yields one struct lt_usage_record, handed
 * to lt_usage_sink (server.c) by the call path; the quota and events issues
 * consume it.
 */
#ifndef LT_PROVIDER_USAGE_H
#define LT_PROVIDER_USAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lt_tokens {
	int64_t input;	      /* prompt tokens, cached included */
	int64_t cached_input; /* subset of input read from the provider's cache */
	int64_t output;	      /* completion tokens, reasoning included */
	int64_t reasoning;    /* subset of output */
};

struct lt_price {
	int64_t input_per_m; /* micro-dollars per 1M input tokens */
	int64_t cached_input_per_m;
	int64_t output_per_m;
};

/* Where a call ended. */
enum lt_outcome {
	LT_OUTCOME_OK,		   /* upstream answered 2xx and the body was complete */
	LT_OUTCOME_CLIENT_ERROR,   /* upstream refused the request (4xx other than 429) */
	LT_OUTCOME_RATE_LIMITED,   /* upstream 429 after retries */
	LT_OUTCOME_UPSTREAM_ERROR, /* upstream 5xx, malformed body, TLS or connect failure */
	LT_OUTCOME_TIMEOUT,	   /* the call's deadline passed */
	LT_OUTCOME_CIRCUIT_OPEN,   /* refused by the breaker without calling */
	LT_OUTCOME_BULKHEAD_FULL,  /* refused by the bulkhead without calling */
	LT_OUTCOME_ABORTED,	   /* the upstream cut a stream short */
	LT_OUTCOME_CLIENT_GONE,	   /* our client went away mid-response */
	LT_OUTCOME_COUNT
};

/* Stable lower-case name ("ok", "client_error", ...), for metrics and logs. */
const char *lt_outcome_name(enum lt_outcome o);

struct lt_usage_record {
	char provider[32];
	char model[136]; /* the client's model name (may be provider/model) */
	char upstream_model[128];
	const char *endpoint; /* static: "chat", "embeddings", "reference" */
	bool stream;
	struct lt_tokens tokens;
	bool tokens_estimated; /* the upstream sent no usage: counted from the text */
	int64_t cost_micros;
	int64_t latency_ns; /* from the start of the call to its last byte */
	int64_t ttft_ns;    /* to the first streamed content byte; -1 if none */
	enum lt_outcome outcome;
	bool client_disconnected;
	int upstream_status; /* last HTTP status from the upstream, 0 if none */
	int attempts;	     /* upstream attempts made (retries + 1), 0 if refused */
	char correlation_id[129];
	char user_id[40]; /* "" when unauthenticated */
};

/* Exact cost in micro-dollars, rounded up.  Negative or inconsistent token
 * counts (cached > input) are clamped to the consistent range first. */
int64_t lt_cost_micros(const struct lt_price *price, const struct lt_tokens *t);

/* Tokens a text is estimated to hold when a provider does not say: one per
 * four bytes of UTF-8, rounded up (0 for empty text).  Used for prompt
 * estimates before a call and for streams cut before their usage arrived.
 * Deterministic; the stubs use it too, so estimates match their usage. */
int64_t lt_token_estimate(const char *text, size_t len);

/* Make t consistent: no negatives, cached <= input, reasoning <= output. */
void lt_tokens_clamp(struct lt_tokens *t);

#endif
