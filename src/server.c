/*
 * server.c — configuration snapshots and readiness of struct lt_server.
 * See server.h for what the struct owns.
 */
#include <stddef.h>
#include <stdlib.h>

#include "server.h"

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

enum lt_err lt_server_config_install(struct lt_server *srv, const struct lt_config *cfg)
{
	struct lt_config_snap *s = malloc(sizeof *s);
	if (!s)
		return LT_ENOMEM;
	s->cfg = *cfg;
	atomic_init(&s->refs, 1); /* the server's own reference */
	pthread_mutex_lock(&srv->cfg_lock);
	struct lt_config_snap *old = srv->config;
	srv->config = s;
	pthread_mutex_unlock(&srv->cfg_lock);
	if (old)
		snap_put(old);
	return LT_OK;
}

bool lt_server_is_ready(const struct lt_server *srv)
{
	unsigned r = atomic_load(&srv->ready);
	return (r & LT_READY_ALL) == LT_READY_ALL && !(r & LT_READY_DRAINING);
}
