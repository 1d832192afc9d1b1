/*
 * registry.c — provider state, model resolution and the resilient call.
 * See registry.h.
 */
#define _POSIX_C_SOURCE 200809L
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "provider/credential.h"
#include "provider/registry.h"
#include "provider/retry.h"
#include "util/buf.h"
#include "util/timefmt.h"

struct lt_upstream_ref {
	struct lt_upstream *u;
	atomic_int refs;	       /* the provider's own reference + one per call */
	char base_url[LT_CFG_STR_MAX]; /* what it was built from: a change swaps it */
	char ca_file[LT_CFG_STR_MAX];
	int64_t pool_size;
	struct lt_url url; /* base_url, parsed once */
};

static void ref_put(struct lt_upstream_ref *ref)
{
	if (ref && atomic_fetch_sub(&ref->refs, 1) == 1) {
		lt_upstream_free(ref->u);
		free(ref);
	}
}

enum lt_err lt_registry_init(struct lt_registry *r, const struct lt_clock *clock,
			     struct lt_log *log, struct lt_metrics *metrics,
			     const char *secrets_dir)
{
	memset(r, 0, sizeof *r);
	pthread_mutex_init(&r->lock, NULL);
	r->clock = clock;
	r->log = log;
	r->metrics = metrics;
	snprintf(r->secrets_dir, sizeof r->secrets_dir, "%s", secrets_dir ? secrets_dir : "");
	static const char *const prov[] = {"provider"};
	struct {
		enum lt_metric_type t;
		const char *name, *help;
		struct lt_metric_family **out;
	} fams[] = {
		{LT_METRIC_GAUGE, "leaky_provider_circuit_state",
		 "Circuit breaker state per provider: 0 closed, 1 open, 2 half-open.", &r->f_state},
		{LT_METRIC_GAUGE, "leaky_provider_bulkhead_inflight",
		 "Calls to the provider in progress.", &r->f_inflight},
		{LT_METRIC_GAUGE, "leaky_provider_bulkhead_limit",
		 "Most calls to the provider allowed at once.", &r->f_limit},
		{LT_METRIC_COUNTER, "leaky_provider_retries_total",
		 "Upstream attempts that were retries.", &r->f_retries},
		{LT_METRIC_COUNTER, "leaky_provider_circuit_opens_total",
		 "Times the provider's circuit breaker opened.", &r->f_opens},
	};
	for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++) {
		enum lt_err e =
			lt_metrics_register(metrics, fams[i].t, fams[i].name, fams[i].help, 1, prov,
					    0, NULL, LT_CFG_MAX_PROVIDERS * 2, fams[i].out);
		if (e)
			return e;
	}
	return LT_OK;
}

void lt_registry_release(struct lt_registry *r)
{
	for (size_t i = 0; i < r->nslots; i++) {
		struct lt_provider_rt *rt = r->slots[i];
		ref_put(rt->up);
		sodium_memzero(rt->credential, sizeof rt->credential);
		pthread_mutex_destroy(&rt->lock);
		free(rt);
	}
	for (size_t i = 0; i < r->nanchors; i++)
		lt_tls_anchors_free(r->anchors[i].anchors);
	pthread_mutex_destroy(&r->lock);
	memset(r, 0, sizeof *r);
}

struct lt_provider_rt *lt_registry_provider(struct lt_registry *r, const char *name)
{
	pthread_mutex_lock(&r->lock);
	struct lt_provider_rt *found = NULL;
	for (size_t i = 0; i < r->nslots && !found; i++)
		if (!strcmp(r->slots[i]->name, name))
			found = r->slots[i];
	if (!found && r->nslots < sizeof r->slots / sizeof r->slots[0] &&
	    strlen(name) < LT_CFG_PROVIDER_NAME_MAX) {
		found = calloc(1, sizeof *found);
		if (found) {
			memcpy(found->name, name, strlen(name) + 1);
			pthread_mutex_init(&found->lock, NULL);
			lt_breaker_init(&found->breaker);
			const char *v[] = {found->name};
			found->m_state = lt_metric_series(r->metrics, r->f_state, v);
			found->m_inflight = lt_metric_series(r->metrics, r->f_inflight, v);
			found->m_limit = lt_metric_series(r->metrics, r->f_limit, v);
			found->m_retries = lt_metric_series(r->metrics, r->f_retries, v);
			found->m_opens = lt_metric_series(r->metrics, r->f_opens, v);
			r->slots[r->nslots++] = found;
		}
	}
	pthread_mutex_unlock(&r->lock);
	return found;
}

/* Trust anchors for a bundle path, loaded once (r->lock held). */
static const struct lt_tls_anchors *anchors_for(struct lt_registry *r, const char *path, char *why,
						size_t why_cap)
{
	for (size_t i = 0; i < r->nanchors; i++)
		if (!strcmp(r->anchors[i].path, path)) {
			if (!r->anchors[i].anchors)
				snprintf(why, why_cap, "%s", r->anchors[i].err);
			return r->anchors[i].anchors;
		}
	struct lt_anchor_cache tmp = {0};
	snprintf(tmp.path, sizeof tmp.path, "%s", path);
	if (lt_tls_anchors_load(path, &tmp.anchors, tmp.err, sizeof tmp.err) != LT_OK)
		tmp.anchors = NULL;
	if (r->nanchors < sizeof r->anchors / sizeof r->anchors[0])
		r->anchors[r->nanchors++] = tmp;
	else if (tmp.anchors) {
		/* cache full (more than 8 bundles): keep it anyway in the last slot's
		 * place would free anchors in use; refuse instead */
		lt_tls_anchors_free(tmp.anchors);
		snprintf(why, why_cap, "too many distinct ca_file bundles (at most 8)");
		return NULL;
	}
	if (!tmp.anchors)
		snprintf(why, why_cap, "%s", tmp.err);
	return tmp.anchors;
}

/* The provider's current upstream with a reference for the caller, built
 * or swapped when the settings that shape it changed. */
static struct lt_upstream_ref *upstream_get(struct lt_registry *r, struct lt_provider_rt *rt,
					    const struct lt_cfg_provider *p, char *why,
					    size_t why_cap)
{
	pthread_mutex_lock(&rt->lock);
	if (rt->up && rt->up->pool_size == p->pool_size && !strcmp(rt->up->base_url, p->base_url) &&
	    !strcmp(rt->up->ca_file, p->ca_file)) {
		atomic_fetch_add(&rt->up->refs, 1);
		struct lt_upstream_ref *ref = rt->up;
		pthread_mutex_unlock(&rt->lock);
		return ref;
	}
	struct lt_upstream_opts o = {0};
	struct lt_upstream_ref *ref = NULL;
	if (lt_url_parse(p->base_url, &o.url, why, why_cap) != LT_OK)
		goto out;
	if (o.url.tls) {
		pthread_mutex_lock(&r->lock);
		o.anchors = anchors_for(r, p->ca_file, why, why_cap);
		pthread_mutex_unlock(&r->lock);
		if (!o.anchors)
			goto out;
	}
	o.pool_max = (size_t)p->pool_size;
	o.idle_timeout_ns = 30 * LT_NS_PER_S;
	ref = calloc(1, sizeof *ref);
	if (!ref || lt_upstream_new(&o, &ref->u) != LT_OK) {
		free(ref);
		ref = NULL;
		snprintf(why, why_cap, "out of memory");
		goto out;
	}
	atomic_init(&ref->refs, 2); /* the provider's and the caller's */
	memcpy(ref->base_url, p->base_url, sizeof ref->base_url);
	memcpy(ref->ca_file, p->ca_file, sizeof ref->ca_file);
	ref->pool_size = p->pool_size;
	ref->url = o.url;
	ref_put(rt->up);
	rt->up = ref;
out:
	pthread_mutex_unlock(&rt->lock);
	return ref;
}

void lt_registry_configure(struct lt_registry *r, const struct lt_config *cfg)
{
	for (size_t i = 0; i < cfg->nproviders; i++) {
		const struct lt_cfg_provider *p = &cfg->providers[i];
		struct lt_provider_rt *rt = lt_registry_provider(r, p->name);
		if (!rt)
			continue;
		char cred[LT_CREDENTIAL_MAX] = "", why[LT_SECRET_ERR_MAX] = "";
		if (!strncmp(p->credential, "env:", 4)) {
			const char *v = getenv(p->credential + 4);
			if (!v || !*v)
				snprintf(why, sizeof why, "environment variable %s is not set",
					 p->credential + 4);
			else if (strlen(v) >= sizeof cred)
				snprintf(why, sizeof why, "environment variable %s is too long",
					 p->credential + 4);
			else
				memcpy(cred, v, strlen(v) + 1);
		} else if (!strcmp(p->credential, "secret")) {
			if (!r->secrets_dir[0])
				snprintf(why, sizeof why,
					 "no data directory for stored credentials");
			else
				(void)lt_credential_load(r->secrets_dir, p->name, cred, sizeof cred,
							 why);
		}
		if (why[0])
			lt_log_warn(r->log, "provider %s: credential %s: %s; calls go without one",
				    p->name, p->credential, why);
		pthread_mutex_lock(&rt->lock);
		memcpy(rt->credential, cred, sizeof cred);
		snprintf(rt->credential_err, sizeof rt->credential_err, "%.159s", why);
		pthread_mutex_unlock(&rt->lock);
		sodium_memzero(cred, sizeof cred);
		struct lt_url u;
		char uwhy[256];
		if (lt_url_parse(p->base_url, &u, uwhy, sizeof uwhy) == LT_OK && u.tls) {
			pthread_mutex_lock(&r->lock);
			if (!anchors_for(r, p->ca_file, uwhy, sizeof uwhy))
				lt_log_warn(r->log, "provider %s: ca_file: %s", p->name, uwhy);
			pthread_mutex_unlock(&r->lock);
		}
	}
	lt_registry_observe(r, cfg);
}

/* ---- resolution ---- */

static void target_from_model(const struct lt_config *cfg, const struct lt_cfg_model *m,
			      struct lt_target *out)
{
	out->model = m;
	out->provider = lt_config_provider(cfg, m->provider);
	snprintf(out->upstream_model, sizeof out->upstream_model, "%s",
		 m->upstream[0] ? m->upstream : m->name);
	out->price.input_per_m = m->price_input;
	out->price.cached_input_per_m = m->price_cached_input;
	out->price.output_per_m = m->price_output;
	out->max_output = m->max_output;
	out->context_window = m->context_window;
	out->kind = (enum lt_model_kind)m->kind;
}

enum lt_err lt_registry_resolve(const struct lt_config *cfg, const char *model,
				struct lt_target *out)
{
	memset(out, 0, sizeof *out);
	if (!model || !*model || strlen(model) >= sizeof out->client_model)
		return LT_ENOTFOUND;
	snprintf(out->client_model, sizeof out->client_model, "%s", model);
	const struct lt_cfg_model *m = lt_config_model(cfg, model);
	if (m) {
		target_from_model(cfg, m, out);
	} else {
		const char *slash = strchr(model, '/');
		if (!slash || slash == model || !slash[1])
			return LT_ENOTFOUND;
		char pname[LT_CFG_PROVIDER_NAME_MAX];
		size_t pl = (size_t)(slash - model);
		if (pl >= sizeof pname)
			return LT_ENOTFOUND;
		memcpy(pname, model, pl);
		pname[pl] = '\0';
		const struct lt_cfg_provider *p = lt_config_provider(cfg, pname);
		if (!p)
			return LT_ENOTFOUND;
		m = lt_config_model(cfg, slash + 1);
		if (m && !strcasecmp(m->provider, p->name)) {
			target_from_model(cfg, m, out);
		} else {
			if (!p->passthrough_models)
				return LT_ENOTFOUND;
			for (const char *c = slash + 1; *c; c++)
				if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
				      (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' ||
				      *c == '_' || *c == ':'))
					return LT_ENOTFOUND;
			out->provider = p;
			snprintf(out->upstream_model, sizeof out->upstream_model, "%s", slash + 1);
			out->price.input_per_m = p->price_input;
			out->price.cached_input_per_m = p->price_cached_input;
			out->price.output_per_m = p->price_output;
			out->max_output = 16384;
			out->context_window = 1000000;
			out->kind = LT_MODEL_CHAT;
		}
	}
	if (!out->provider)
		return LT_ENOTFOUND;
	out->format = (enum lt_wire_format)out->provider->format;
	return LT_OK;
}

/* ---- the call ---- */

static void record_error(struct lt_provider_rt *rt, const struct lt_clock *clock, int status,
			 const char *msg)
{
	pthread_mutex_lock(&rt->lock);
	struct lt_provider_error *e = &rt->errors[rt->nerrors % LT_PROVIDER_ERRORS];
	e->at_ns = lt_clock_now_ns(clock);
	e->status = status;
	snprintf(e->message, sizeof e->message, "%s", msg);
	rt->nerrors++;
	pthread_mutex_unlock(&rt->lock);
}

static void breaker_policy(const struct lt_cfg_provider *p, struct lt_breaker_policy *bp)
{
	bp->window = (int)p->breaker_window;
	bp->min_calls = (int)(p->breaker_min_calls < p->breaker_window ? p->breaker_min_calls
								       : p->breaker_window);
	bp->failure_pct = (int)p->breaker_failure_pct;
	bp->open_ns = p->breaker_open_ms * LT_NS_PER_MS;
	bp->probes = (int)p->breaker_probes;
}

struct stream_tap {
	lt_http_body_fn fn;
	void *arg;
	bool delivered; /* a byte went to the caller: no more retries */
};

static enum lt_err tap_body(void *arg, const char *data, size_t len)
{
	struct stream_tap *t = arg;
	if (len)
		t->delivered = true;
	return t->fn(t->arg, data, len);
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts = {(time_t)(ns / LT_NS_PER_S), (long)(ns % LT_NS_PER_S)};
	while (nanosleep(&ts, &ts) != 0)
		;
}

/* The provider misbehaved (counts against the breaker). */
static bool is_failure(enum lt_err err, int status)
{
	if (err != LT_OK)
		return true;
	return status == 429 || status >= 500;
}

void lt_provider_call(struct lt_registry *r, const struct lt_cfg_provider *p,
		      const struct lt_call_req *rq, struct lt_call_result *res)
{
	memset(res, 0, sizeof *res);
	res->retry_after_s = -1;
	res->started_ns = lt_clock_mono_ns();
	struct lt_provider_rt *rt = lt_registry_provider(r, p->name);
	if (!rt) {
		res->err = LT_EBUSY;
		res->outcome = LT_OUTCOME_BULKHEAD_FULL;
		res->client_status = 503;
		snprintf(res->why, sizeof res->why, "too many providers");
		return;
	}
	/* bulkhead */
	int now_in = atomic_fetch_add(&rt->inflight, 1) + 1;
	if (now_in > p->bulkhead) {
		atomic_fetch_sub(&rt->inflight, 1);
		pthread_mutex_lock(&rt->lock);
		rt->rejected_full++;
		pthread_mutex_unlock(&rt->lock);
		res->err = LT_EBUSY;
		res->outcome = LT_OUTCOME_BULKHEAD_FULL;
		res->client_status = 503;
		snprintf(res->why, sizeof res->why,
			 "provider %s is at its limit of %lld concurrent calls", p->name,
			 (long long)p->bulkhead);
		return;
	}
	if (rt->m_inflight)
		lt_gauge_set(rt->m_inflight, (double)atomic_load(&rt->inflight));

	char why[256] = "";
	struct lt_upstream_ref *ref = upstream_get(r, rt, p, why, sizeof why);
	if (!ref) {
		res->err = LT_ECONFIG;
		res->outcome = LT_OUTCOME_UPSTREAM_ERROR;
		res->client_status = 502;
		snprintf(res->why, sizeof res->why, "provider %s is misconfigured: %.180s", p->name,
			 why);
		record_error(rt, r->clock, 0, res->why);
		goto done;
	}

	/* headers: content type and credential */
	char headers[LT_CREDENTIAL_MAX + 128];
	pthread_mutex_lock(&rt->lock);
	if (!rt->credential[0])
		snprintf(headers, sizeof headers, "Content-Type: application/json\r\n");
	else if (p->format == LT_PFMT_GEMINI)
		snprintf(headers, sizeof headers,
			 "Content-Type: application/json\r\nx-goog-api-key: %s\r\n",
			 rt->credential);
	else
		snprintf(headers, sizeof headers,
			 "Content-Type: application/json\r\nAuthorization: Bearer %s\r\n",
			 rt->credential);
	pthread_mutex_unlock(&rt->lock);

	char path[1024];
	snprintf(path, sizeof path, "%s%s", ref->url.path, rq->path_suffix);

	struct lt_breaker_policy bp;
	breaker_policy(p, &bp);
	struct lt_retry_policy rp = {(int)p->retry_attempts, p->retry_backoff_ms * LT_NS_PER_MS,
				     p->retry_max_backoff_ms * LT_NS_PER_MS};
	int64_t first_deadline = res->started_ns + p->timeout_ms * LT_NS_PER_MS;
	int64_t deadline =
		rq->stream ? res->started_ns + p->stream_timeout_ms * LT_NS_PER_MS : first_deadline;
	struct stream_tap tap = {rq->on_body, rq->arg, false};

	for (int attempt = 1;; attempt++) {
		int64_t retry_in = 0;
		pthread_mutex_lock(&rt->lock);
		uint64_t opens_before = rt->breaker.opens;
		bool allowed =
			lt_breaker_allow(&rt->breaker, &bp, lt_clock_now_ns(r->clock), &retry_in);
		if (!allowed)
			rt->rejected_open++;
		pthread_mutex_unlock(&rt->lock);
		if (!allowed) {
			if (attempt == 1) {
				res->err = LT_EUNAVAIL;
				res->outcome = LT_OUTCOME_CIRCUIT_OPEN;
				res->client_status = 503;
				res->retry_after_s = (retry_in + LT_NS_PER_S - 1) / LT_NS_PER_S;
				snprintf(res->why, sizeof res->why,
					 "provider %s is unavailable: circuit breaker open",
					 p->name);
			}
			/* else: keep the previous attempt's result */
			break;
		}
		(void)opens_before;
		struct lt_upstream_req ur = {
			.method = "POST",
			.path = path,
			.headers = headers,
			.body = rq->body,
			.body_len = rq->body_len,
			.connect_deadline_ns =
				lt_clock_mono_ns() + p->connect_timeout_ms * LT_NS_PER_MS,
			.first_byte_deadline_ns = first_deadline,
			.deadline_ns = deadline,
			.max_header = 64 * 1024,
			.max_body = (size_t)p->max_response,
			.stream_2xx_only = true,
		};
		if (ur.connect_deadline_ns > first_deadline)
			ur.connect_deadline_ns = first_deadline;
		struct lt_upstream_resp resp;
		enum lt_err err = lt_upstream_do(ref->u, &ur, &resp, rq->on_body ? tap_body : NULL,
						 rq->on_body ? &tap : NULL);
		res->attempts = attempt;
		res->status = resp.status;
		res->retry_after_s = resp.retry_after_s;
		if (resp.first_byte_ns && !res->first_byte_ns)
			res->first_byte_ns = resp.first_byte_ns;
		free(res->body);
		res->body = resp.body;
		res->body_len = resp.body_len;
		resp.body = NULL;
		res->err = err;
		snprintf(res->why, sizeof res->why, "%s", resp.why);
		lt_upstream_resp_free(&resp);

		bool client_gone = err != LT_OK && tap.delivered && err != LT_ETIMEOUT &&
				   err != LT_ECLOSED && err != LT_EPROTO && err != LT_ETOOBIG &&
				   err != LT_ECONNECT && err != LT_ETLS;
		bool failure = !client_gone && is_failure(err, res->status);
		pthread_mutex_lock(&rt->lock);
		rt->calls++;
		if (failure)
			rt->failures++;
		if (client_gone) /* says nothing about the provider */
			lt_breaker_cancel(&rt->breaker);
		else
			lt_breaker_record(&rt->breaker, &bp, lt_clock_now_ns(r->clock), failure);
		uint64_t opened = rt->breaker.opens - opens_before;
		pthread_mutex_unlock(&rt->lock);
		if (opened && rt->m_opens) {
			lt_counter_add(rt->m_opens, opened);
			lt_log_warn(r->log, "provider %s: circuit breaker opened", p->name);
		}
		if (failure) {
			char msg[200];
			if (err != LT_OK)
				snprintf(msg, sizeof msg, "%.199s", res->why);
			else
				snprintf(msg, sizeof msg, "HTTP %d", res->status);
			record_error(rt, r->clock, res->status, msg);
		}
		if (client_gone)
			break;
		int64_t wait = 0;
		uint64_t rnd = 0;
		if (err || res->status < 200 || res->status >= 300) /* a retry is possible */
			randombytes_buf(&rnd, sizeof rnd);
		if (tap.delivered || !lt_retry_next(&rp, attempt, err, err ? 0 : res->status,
						    res->retry_after_s, rnd, lt_clock_mono_ns(),
						    rq->stream ? first_deadline : deadline, &wait))
			break;
		pthread_mutex_lock(&rt->lock);
		rt->retries++;
		pthread_mutex_unlock(&rt->lock);
		if (rt->m_retries)
			lt_counter_add(rt->m_retries, 1);
		sleep_ns(wait);
	}
	ref_put(ref);

	/* classify */
	if (res->outcome == LT_OUTCOME_CIRCUIT_OPEN)
		goto done;
	if (res->err == LT_OK) {
		if (res->status >= 200 && res->status < 300) {
			res->outcome = LT_OUTCOME_OK;
			res->client_status = 200;
		} else if (res->status == 429) {
			res->outcome = LT_OUTCOME_RATE_LIMITED;
			res->client_status = 429;
		} else if (res->status >= 500) {
			res->outcome = LT_OUTCOME_UPSTREAM_ERROR;
			res->client_status = 502;
		} else if (res->status == 401 || res->status == 403) {
			/* the provider refused the gateway's credential, not the client */
			res->outcome = LT_OUTCOME_UPSTREAM_ERROR;
			res->client_status = 502;
		} else {
			res->outcome = LT_OUTCOME_CLIENT_ERROR;
			res->client_status = res->status == 404 ? 404 : 400;
		}
		if (res->outcome != LT_OUTCOME_OK && !res->why[0])
			snprintf(res->why, sizeof res->why, "provider %s answered HTTP %d", p->name,
				 res->status);
	} else if (res->err == LT_ETIMEOUT) {
		res->outcome = LT_OUTCOME_TIMEOUT;
		res->client_status = 504;
	} else if (tap.delivered && res->err != LT_ECLOSED && res->err != LT_EPROTO &&
		   res->err != LT_ETOOBIG) {
		res->outcome = LT_OUTCOME_CLIENT_GONE;
		res->client_status = 499;
	} else if (tap.delivered) {
		res->outcome = LT_OUTCOME_ABORTED;
		res->client_status = 502;
	} else {
		res->outcome = LT_OUTCOME_UPSTREAM_ERROR;
		res->client_status = 502;
	}
done:
	atomic_fetch_sub(&rt->inflight, 1);
	if (rt->m_inflight)
		lt_gauge_set(rt->m_inflight, (double)atomic_load(&rt->inflight));
}

void lt_call_result_free(struct lt_call_result *res)
{
	free(res->body);
	res->body = NULL;
}

/* ---- introspection ---- */

void lt_registry_observe(struct lt_registry *r, const struct lt_config *cfg)
{
	for (size_t i = 0; i < cfg->nproviders; i++) {
		struct lt_provider_rt *rt = lt_registry_provider(r, cfg->providers[i].name);
		if (!rt)
			continue;
		pthread_mutex_lock(&rt->lock);
		enum lt_breaker_state st = rt->breaker.state;
		if (st == LT_BREAKER_OPEN &&
		    lt_clock_now_ns(r->clock) - rt->breaker.opened_at >=
			    cfg->providers[i].breaker_open_ms * LT_NS_PER_MS)
			st = LT_BREAKER_HALF_OPEN; /* the next call will probe */
		pthread_mutex_unlock(&rt->lock);
		if (rt->m_state)
			lt_gauge_set(rt->m_state, st == LT_BREAKER_CLOSED ? 0
						  : st == LT_BREAKER_OPEN ? 1
									  : 2);
		if (rt->m_inflight)
			lt_gauge_set(rt->m_inflight, (double)atomic_load(&rt->inflight));
		if (rt->m_limit)
			lt_gauge_set(rt->m_limit, (double)cfg->providers[i].bulkhead);
	}
}

void lt_registry_render(struct lt_registry *r, const struct lt_config *cfg, struct lt_buf *out)
{
	lt_buf_putc(out, '[');
	for (size_t i = 0; i < cfg->nproviders; i++) {
		const struct lt_cfg_provider *p = &cfg->providers[i];
		struct lt_provider_rt *rt = lt_registry_provider(r, p->name);
		if (!rt)
			continue;
		if (i)
			lt_buf_putc(out, ',');
		pthread_mutex_lock(&rt->lock);
		enum lt_breaker_state st = rt->breaker.state;
		int64_t now = lt_clock_now_ns(r->clock);
		int64_t open_left = 0;
		if (st == LT_BREAKER_OPEN) {
			open_left = rt->breaker.opened_at + p->breaker_open_ms * LT_NS_PER_MS - now;
			if (open_left <= 0) {
				st = LT_BREAKER_HALF_OPEN;
				open_left = 0;
			}
		}
		lt_buf_puts(out, "{\"name\":");
		lt_buf_put_json_str(out, p->name, strlen(p->name));
		lt_buf_printf(out, ",\"format\":\"%s\",\"baseUrl\":",
			      lt_format_name((enum lt_wire_format)p->format));
		lt_buf_put_json_str(out, p->base_url, strlen(p->base_url));
		lt_buf_printf(out, ",\"credential\":{\"source\":\"%s\",\"present\":%s",
			      !strncmp(p->credential, "env:", 4) ? "env"
			      : !strcmp(p->credential, "secret") ? "secret"
								 : "none",
			      rt->credential[0] ? "true" : "false");
		if (rt->credential_err[0]) {
			lt_buf_puts(out, ",\"problem\":");
			lt_buf_put_json_str(out, rt->credential_err, strlen(rt->credential_err));
		}
		lt_buf_printf(out,
			      "},\"circuit\":{\"state\":\"%s\",\"failureRatePct\":%d,\"calls\":%d,"
			      "\"opens\":%llu,\"retryInMs\":%lld},",
			      lt_breaker_state_name(st), lt_breaker_failure_pct(&rt->breaker),
			      rt->breaker.ring_len, (unsigned long long)rt->breaker.opens,
			      (long long)(open_left / LT_NS_PER_MS));
		lt_buf_printf(
			out,
			"\"bulkhead\":{\"inflight\":%d,\"limit\":%lld},\"pool\":{\"idle\":%zu,"
			"\"max\":%lld},",
			atomic_load(&rt->inflight), (long long)p->bulkhead,
			rt->up ? lt_upstream_idle(rt->up->u) : (size_t)0, (long long)p->pool_size);
		lt_buf_printf(out,
			      "\"counters\":{\"attempts\":%llu,\"failures\":%llu,\"retries\":%llu,"
			      "\"rejectedOpen\":%llu,\"rejectedFull\":%llu},\"lastErrors\":[",
			      (unsigned long long)rt->calls, (unsigned long long)rt->failures,
			      (unsigned long long)rt->retries,
			      (unsigned long long)rt->rejected_open,
			      (unsigned long long)rt->rejected_full);
		unsigned n = rt->nerrors < LT_PROVIDER_ERRORS ? rt->nerrors : LT_PROVIDER_ERRORS;
		for (unsigned k = 0; k < n; k++) {
			const struct lt_provider_error *e =
				&rt->errors[(rt->nerrors - 1 - k) % LT_PROVIDER_ERRORS];
			char ts[LT_ISO_LEN];
			lt_time_iso(e->at_ns, ts);
			lt_buf_printf(out,
				      "%s{\"at\":\"%s\",\"status\":%d,\"message\":", k ? "," : "",
				      ts, e->status);
			lt_buf_put_json_str(out, e->message, strlen(e->message));
			lt_buf_putc(out, '}');
		}
		lt_buf_puts(out, "]}");
		pthread_mutex_unlock(&rt->lock);
	}
	lt_buf_putc(out, ']');
}
