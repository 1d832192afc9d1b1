/*
 * usage.c — cost and token estimates.  See usage.h.
 */
#include "provider/usage.h"

const char *lt_outcome_name(enum lt_outcome o)
{
	switch (o) {
	case LT_OUTCOME_OK: return "ok";
	case LT_OUTCOME_CLIENT_ERROR: return "client_error";
	case LT_OUTCOME_RATE_LIMITED: return "rate_limited";
	case LT_OUTCOME_UPSTREAM_ERROR: return "upstream_error";
	case LT_OUTCOME_TIMEOUT: return "timeout";
	case LT_OUTCOME_CIRCUIT_OPEN: return "circuit_open";
	case LT_OUTCOME_BULKHEAD_FULL: return "bulkhead_full";
	case LT_OUTCOME_ABORTED: return "aborted";
	case LT_OUTCOME_CLIENT_GONE: return "client_gone";
	case LT_OUTCOME_COUNT: break;
	}
	return "unknown";
}

void lt_tokens_clamp(struct lt_tokens *t)
{
	if (t->input < 0)
		t->input = 0;
	if (t->output < 0)
		t->output = 0;
	if (t->cached_input < 0)
		t->cached_input = 0;
	if (t->reasoning < 0)
		t->reasoning = 0;
	if (t->cached_input > t->input)
		t->cached_input = t->input;
	if (t->reasoning > t->output)
		t->reasoning = t->output;
}

int64_t lt_cost_micros(const struct lt_price *price, const struct lt_tokens *tokens)
{
	struct lt_tokens t = *tokens;
	lt_tokens_clamp(&t);
	__int128 p_in = price->input_per_m > 0 ? price->input_per_m : 0;
	__int128 p_ca = price->cached_input_per_m > 0 ? price->cached_input_per_m : 0;
	__int128 p_out = price->output_per_m > 0 ? price->output_per_m : 0;
	__int128 num = (__int128)(t.input - t.cached_input) * p_in +
		       (__int128)t.cached_input * p_ca + (__int128)t.output * p_out;
	__int128 cost = (num + 999999) / 1000000;
	if (cost > INT64_MAX)
		return INT64_MAX;
	return (int64_t)cost;
}

int64_t lt_token_estimate(const char *text, size_t len)
{
	(void)text;
	return (int64_t)((len + 3) / 4);
}
