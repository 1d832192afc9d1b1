/*
 * civet.c — civetweb start/stop shared by the listeners.  See civet.h.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http/civet.h"

enum lt_err lt_civet_start(const char *what, const char *listen, const char **options,
			   const struct mg_callbacks *cb, void *user, struct mg_context **out,
			   int *port, char *err, size_t err_cap)
{
	struct mg_init_data init = {
		.callbacks = cb, .user_data = user, .configuration_options = options};
	struct mg_error_data ed;
	char errtxt[256] = "";
	memset(&ed, 0, sizeof ed);
	ed.text = errtxt;
	ed.text_buffer_size = sizeof errtxt;
	*port = 0;
	*out = mg_start2(&init, &ed);
	if (!*out) {
		snprintf(err, err_cap, "%s %s: %s", what, listen,
			 errtxt[0] ? errtxt : "civetweb failed to start");
		return LT_EIO;
	}
	struct mg_server_port ports[4];
	memset(ports, 0, sizeof ports);
	if (mg_get_server_ports(*out, 4, ports) > 0)
		*port = ports[0].port;
	return LT_OK;
}

void lt_civet_local_addr(const char *listen, int port, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[64];
	const char *colon = strrchr(listen, ':');
	size_t hl = colon ? (size_t)(colon - listen) : 0;
	if (hl >= sizeof host)
		hl = 0;
	memcpy(host, listen, hl);
	host[hl] = '\0';
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1 &&
	    !IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr)) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		*len = sizeof *a6;
		return;
	}
	memset(ss, 0, sizeof *ss);
	a4->sin_family = AF_INET;
	a4->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &a4->sin_addr) != 1 || a4->sin_addr.s_addr == INADDR_ANY)
		a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*len = sizeof *a4;
}

struct poker {
	struct sockaddr_storage addr;
	socklen_t addr_len;
	atomic_bool done;
};

static void *poke_listener(void *arg)
{
	struct poker *p = arg;
	for (int i = 0; i < 500 && !atomic_load(&p->done); i++) {
		int fd = socket(p->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0) {
			(void)connect(fd, (struct sockaddr *)&p->addr, p->addr_len);
			close(fd);
		}
		struct timespec ts = {0, 20 * 1000000L};
		nanosleep(&ts, NULL);
	}
	return NULL;
}

void lt_civet_stop(struct mg_context *ctx, const char *listen, int port)
{
	if (!ctx)
		return;
	struct poker p;
	memset(&p, 0, sizeof p);
	atomic_init(&p.done, false);
	lt_civet_local_addr(listen, port, &p.addr, &p.addr_len);
	pthread_t t;
	bool poking = port > 0 && pthread_create(&t, NULL, poke_listener, &p) == 0;
	mg_stop(ctx);
	if (poking) {
		atomic_store(&p.done, true);
		pthread_join(t, NULL);
	}
}
