/*
 * server.c — configuration snapshots, runtime feature overrides and
 * readiness of struct lt_server.  See server.h for what the struct owns.
 *
 * Locking: cfg_lock guards srv->config and the feature_* arrays.  A new
 * snapshot is allocated and filled outside the lock; under it only the
 * overrides are applied (a few bools) and the pointer swapped, so readers
 * (one acquire per request) never wait for a copy.  The old snapshot is
 * freed by its last reader (snap_put).
 *
 * Features: every install, from the file (lt_server_config_install) or from
 * the admin API (lt_server_feature_swap), goes through install_locked(),
 * which writes the effective value of every feature into the snapshot being
 * installed.  So whichever of a SIGHUP reload and an override comes last,
 * the current snapshot carries both.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

/* One row per feature: its API name, its [features] key, its field. */
static const struct {
	const char *name;
	const char *key;
	size_t offset; /* of a bool in struct lt_config */
} features[LT_FEATURE_COUNT] = {
	[LT_FEATURE_RATE_LIMITING] = {"rate-limiting", "rate_limiting",
				      offsetof(struct lt_config, features_rate_limiting)},
	[LT_FEATURE_QUOTA_ENFORCEMENT] = {"quota-enforcement", "quota_enforcement",
					  offsetof(struct lt_config, features_quota_enforcement)},
	[LT_FEATURE_SAGA_PURCHASES] = {"saga-purchases", "saga_purchases",
				       offsetof(struct lt_config, features_saga_purchases)},
};

static bool *feature_field(struct lt_config *cfg, enum lt_feature f)
{
	return (bool *)((char *)cfg + features[f].offset);
}

static bool feature_value(const struct lt_config *cfg, enum lt_feature f)
{
	return *(const bool *)((const char *)cfg + features[f].offset);
}

const char *lt_feature_name(enum lt_feature f)
{
	return (unsigned)f < LT_FEATURE_COUNT ? features[f].name : NULL;
}

enum lt_err lt_feature_parse(const char *s, size_t n, enum lt_feature *out)
{
	if (!s || !out)
		return LT_EINVAL;
	for (unsigned f = 0; f < LT_FEATURE_COUNT; f++) {
		if ((strlen(features[f].name) == n && memcmp(features[f].name, s, n) == 0) ||
		    (strlen(features[f].key) == n && memcmp(features[f].key, s, n) == 0)) {
			*out = (enum lt_feature)f;
			return LT_OK;
		}
	}
	return LT_ENOTFOUND;
}

const struct lt_config *lt_server_config_acquire(struct lt_server *srv)
{
	pthread_mutex_lock(&srv->cfg_lock);
	struct lt_config_snap *s = srv->config;
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&srv->cfg_lock);
	return &s->cfg;
}

static void snap_put(struct lt_config_snap *s)
{
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		free(s);
}

void lt_server_config_release(struct lt_server *srv, const struct lt_config *cfg)
{
	(void)srv;
	if (cfg)
		snap_put((struct lt_config_snap *)((char *)cfg -
						   offsetof(struct lt_config_snap, cfg)));
}

/* Under cfg_lock: write the effective features into s, make it current;
 * returns the old snapshot, whose reference the caller drops after unlocking. */
static struct lt_config_snap *install_locked(struct lt_server *srv, struct lt_config_snap *s)
{
	for (unsigned f = 0; f < LT_FEATURE_COUNT; f++)
		*feature_field(&s->cfg, (enum lt_feature)f) =
			srv->feature_pinned[f] ? srv->feature_value[f] : srv->feature_configured[f];
	struct lt_config_snap *old = srv->config;
	srv->config = s;
	return old;
}

/* Under cfg_lock, with a current snapshot. */
static void state_locked(const struct lt_server *srv, enum lt_feature f,
			 struct lt_feature_state *out)
{
	out->configured = srv->feature_configured[f];
	out->override = srv->feature_pinned[f] ? (int)srv->feature_value[f] : -1;
	out->effective = feature_value(&srv->config->cfg, f);
}

void lt_server_config_unpin(struct lt_server *srv, struct lt_config *cfg)
{
	pthread_mutex_lock(&srv->cfg_lock);
	for (unsigned f = 0; f < LT_FEATURE_COUNT; f++)
		*feature_field(cfg, (enum lt_feature)f) = srv->feature_configured[f];
	pthread_mutex_unlock(&srv->cfg_lock);
}

enum lt_err lt_server_config_install(struct lt_server *srv, const struct lt_config *cfg)
{
	struct lt_config_snap *s = malloc(sizeof *s);
	if (!s)
		return LT_ENOMEM;
	s->cfg = *cfg;
	atomic_init(&s->refs, 1); /* the server's own reference */
	pthread_mutex_lock(&srv->cfg_lock);
	for (unsigned f = 0; f < LT_FEATURE_COUNT; f++)
		srv->feature_configured[f] = feature_value(cfg, (enum lt_feature)f);
	struct lt_config_snap *old = install_locked(srv, s);
	pthread_mutex_unlock(&srv->cfg_lock);
	if (old)
		snap_put(old);
	return LT_OK;
}

enum lt_err lt_server_feature_get(struct lt_server *srv, enum lt_feature f,
				  struct lt_feature_state *out)
{
	if ((unsigned)f >= LT_FEATURE_COUNT || !out)
		return LT_EINVAL;
	pthread_mutex_lock(&srv->cfg_lock);
	enum lt_err e = srv->config ? LT_OK : LT_ENOTFOUND;
	if (!e)
		state_locked(srv, f, out);
	pthread_mutex_unlock(&srv->cfg_lock);
	return e;
}

enum lt_err lt_server_feature_swap(struct lt_server *srv, enum lt_feature f, int value,
				   struct lt_feature_state *before, struct lt_feature_state *after)
{
	if ((unsigned)f >= LT_FEATURE_COUNT || value < -1 || value > 1)
		return LT_EINVAL;
	struct lt_config_snap *s = malloc(sizeof *s);
	if (!s)
		return LT_ENOMEM;
	atomic_init(&s->refs, 1);
	/* Copy the current snapshot outside the lock, then install the copy
	 * only if it is still current (we hold a reference, so its address
	 * cannot be reused meanwhile); a reload in between means copy again. */
	for (;;) {
		const struct lt_config *cur = lt_server_config_acquire(srv);
		s->cfg = *cur;
		pthread_mutex_lock(&srv->cfg_lock);
		if (&srv->config->cfg != cur) {
			pthread_mutex_unlock(&srv->cfg_lock);
			lt_server_config_release(srv, cur);
			continue;
		}
		if (before)
			state_locked(srv, f, before);
		srv->feature_pinned[f] = value >= 0;
		srv->feature_value[f] = value == 1;
		struct lt_config_snap *old = install_locked(srv, s);
		if (after)
			state_locked(srv, f, after);
		pthread_mutex_unlock(&srv->cfg_lock);
		lt_server_config_release(srv, cur); /* ours */
		snap_put(old);			    /* the server's */
		return LT_OK;
	}
}

enum lt_err lt_server_feature_set(struct lt_server *srv, enum lt_feature f, int value)
{
	return lt_server_feature_swap(srv, f, value, NULL, NULL);
}

bool lt_server_is_ready(const struct lt_server *srv)
{
	unsigned r = atomic_load(&srv->ready);
	return (r & LT_READY_ALL) == LT_READY_ALL && !(r & LT_READY_DRAINING);
}
