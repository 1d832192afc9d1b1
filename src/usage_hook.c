/*
 * usage_hook.c — provider usage records into metrics.  See usage_hook.h.
 */
#include <stdio.h>

#include "server.h"
#include "usage_hook.h"

static const double latency_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
					2.5,   5,    10,    20,	  30,  60,   120, 300};

enum lt_err lt_usage_hook_init(struct lt_server *srv)
{
	static const char *const pmo[] = {"provider", "model", "outcome"};
	static const char *const pmk[] = {"provider", "model", "kind"};
	static const char *const pm[] = {"provider", "model"};
	static const char *const p[] = {"provider"};
	struct lt_server_metrics *m = &srv->m;
	struct {
		enum lt_metric_type t;
		const char *name, *help;
		size_t nl;
		const char *const *labels;
		bool hist;
		struct lt_metric_family **out;
	} f[] = {
		{LT_METRIC_COUNTER, "leaky_provider_requests_total",
		 "Provider calls by provider, model and outcome.", 3, pmo, false,
		 &m->prov_requests},
		{LT_METRIC_COUNTER, "leaky_provider_tokens_total",
		 "Tokens used by provider, model and kind (input, cached_input, output, reasoning; "
		 "cached and reasoning are subsets).",
		 3, pmk, false, &m->prov_tokens},
		{LT_METRIC_COUNTER, "leaky_provider_cost_micros_total",
		 "Cost of provider calls in micro-dollars, from the configured prices.", 2, pm,
		 false, &m->prov_cost},
		{LT_METRIC_HISTOGRAM, "leaky_provider_latency_seconds",
		 "Provider call time from start to last byte, by provider.", 1, p, true,
		 &m->prov_latency},
		{LT_METRIC_HISTOGRAM, "leaky_provider_ttft_seconds",
		 "Streamed calls: time to the first content byte, by provider.", 1, p, true,
		 &m->prov_ttft},
		{LT_METRIC_COUNTER, "leaky_provider_client_disconnects_total",
		 "Calls whose client went away before the response was complete.", 1, p, false,
		 &m->prov_disconnects},
	};
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
		enum lt_err e = lt_metrics_register(
			&srv->metrics, f[i].t, f[i].name, f[i].help, f[i].nl, f[i].labels,
			f[i].hist ? sizeof latency_bounds / sizeof latency_bounds[0] : 0,
			f[i].hist ? latency_bounds : NULL, 1024, f[i].out);
		if (e)
			return e;
	}
	return LT_OK;
}

void lt_usage_emit(struct lt_server *srv, const struct lt_usage_record *rec)
{
	struct lt_server_metrics *m = &srv->m;
	const char *pmo[] = {rec->provider, rec->model, lt_outcome_name(rec->outcome)};
	lt_counter_add(lt_metric_series(&srv->metrics, m->prov_requests, pmo), 1);
	static const char *const kinds[] = {"input", "cached_input", "output", "reasoning"};
	const int64_t v[] = {rec->tokens.input, rec->tokens.cached_input, rec->tokens.output,
			     rec->tokens.reasoning};
	for (size_t i = 0; i < 4; i++) {
		if (v[i] <= 0)
			continue;
		const char *pmk[] = {rec->provider, rec->model, kinds[i]};
		lt_counter_add(lt_metric_series(&srv->metrics, m->prov_tokens, pmk),
			       (uint64_t)v[i]);
	}
	const char *pm[] = {rec->provider, rec->model};
	struct lt_series *cost = lt_metric_series(&srv->metrics, m->prov_cost, pm);
	if (rec->cost_micros > 0)
		lt_counter_add(cost, (uint64_t)rec->cost_micros);
	const char *p[] = {rec->provider};
	lt_histogram_observe(m->prov_latency, lt_metric_series(&srv->metrics, m->prov_latency, p),
			     (double)rec->latency_ns / 1e9);
	if (rec->ttft_ns >= 0)
		lt_histogram_observe(m->prov_ttft, lt_metric_series(&srv->metrics, m->prov_ttft, p),
				     (double)rec->ttft_ns / 1e9);
	if (rec->client_disconnected)
		lt_counter_add(lt_metric_series(&srv->metrics, m->prov_disconnects, p), 1);
	char extra[512];
	snprintf(extra, sizeof extra,
		 ",\"provider\":\"%s\",\"model\":\"%s\",\"outcome\":\"%s\",\"input\":%lld,"
		 "\"cached\":%lld,\"output\":%lld,\"reasoning\":%lld,\"costMicros\":%lld,"
		 "\"estimated\":%s,\"stream\":%s,\"clientGone\":%s,\"attempts\":%d",
		 rec->provider, rec->model, lt_outcome_name(rec->outcome),
		 (long long)rec->tokens.input, (long long)rec->tokens.cached_input,
		 (long long)rec->tokens.output, (long long)rec->tokens.reasoning,
		 (long long)rec->cost_micros, rec->tokens_estimated ? "true" : "false",
		 rec->stream ? "true" : "false", rec->client_disconnected ? "true" : "false",
		 rec->attempts);
	/* the correlation id is already in the log line of the request's thread */
	lt_log_msg(&srv->log, LT_LOG_DEBUG, extra, "usage %s %s", rec->provider, rec->model);
}
