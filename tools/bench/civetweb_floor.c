/*
 * civetweb_floor.c — the civetweb floor for tools/bench/healthz.sh (FLOOR=1).
 *
 * A bare civetweb 1.15 server whose begin_request answers every request with
 * one mg_write of a fixed keep-alive 200 {"status":"ok"}: no routing, no
 * correlation id, no metrics, no config.  It measures what civetweb's
 * thread-per-connection model costs on this machine, so leakyd's number can
 * be split into "civetweb" and "leakyd's own pipeline".  Same options as
 * leakyd's listener (tcp_nodelay, keep-alive, thread count).
 *
 *   cc -O2 -o floor tools/bench/civetweb_floor.c -lcivetweb -lpthread
 *   ./floor 127.0.0.1:PORT THREADS      # runs until SIGTERM/SIGINT
 *
 * Not part of leakyd; built only by the benchmark script, into its temp dir.
 */
#define _POSIX_C_SOURCE 200809L
#include <civetweb.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static int begin_request(struct mg_connection *conn)
{
	static const char reply[] = "HTTP/1.1 200 OK\r\n"
				    "Content-Type: application/json\r\n"
				    "Content-Length: 15\r\n"
				    "Connection: keep-alive\r\n"
				    "\r\n"
				    "{\"status\":\"ok\"}";
	mg_write(conn, reply, sizeof reply - 1);
	return 200;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s HOST:PORT THREADS\n", argv[0]);
		return 64;
	}
	const char *options[] = {
		"listening_ports",
		argv[1],
		"num_threads",
		argv[2],
		"enable_keep_alive",
		"yes",
		"keep_alive_timeout_ms",
		"5000",
		"request_timeout_ms",
		"30000",
		"tcp_nodelay",
		"1",
		NULL,
	};
	struct mg_callbacks cb;
	memset(&cb, 0, sizeof cb);
	cb.begin_request = begin_request;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	struct mg_context *ctx = mg_start(&cb, NULL, options);
	if (!ctx) {
		fprintf(stderr, "civetweb_floor: cannot listen on %s\n", argv[1]);
		return 1;
	}
	while (!stop_requested)
		pause();
	mg_stop(ctx);
	return 0;
}
