/*
 * log.c — JSON-lines logger.  See log.h.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/timefmt.h"

#define LOG_LINE_MAX 8192

void lt_log_init(struct lt_log *log, int fd, enum lt_log_level level, bool access)
{
	atomic_init(&log->level, (int)level);
	atomic_init(&log->access, access);
	log->fd = fd;
	log->own_fd = false;
}

enum lt_err lt_log_open(struct lt_log *log, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return LT_EIO;
	if (log->own_fd)
		close(log->fd);
	log->fd = fd;
	log->own_fd = true;
	return LT_OK;
}

void lt_log_release(struct lt_log *log)
{
	if (log->own_fd)
		close(log->fd);
	log->own_fd = false;
	log->fd = 2;
}

const char *lt_log_level_name(enum lt_log_level level)
{
	switch (level) {
	case LT_LOG_DEBUG: return "debug";
	case LT_LOG_INFO: return "info";
	case LT_LOG_WARN: return "warn";
	case LT_LOG_ERROR: return "error";
	}
	return "info";
}

bool lt_log_enabled(const struct lt_log *log, enum lt_log_level level)
{
	return (int)level >= atomic_load_explicit(&log->level, memory_order_relaxed);
}

static void line_start(struct lt_buf *b, enum lt_log_level level)
{
	char ts[LT_ISO_LEN];
	lt_time_iso(lt_clock_real_ns(), ts);
	lt_buf_printf(b, "{\"time\":\"%s\",\"level\":\"%s\"", ts, lt_log_level_name(level));
}

static void line_finish(struct lt_log *log, struct lt_buf *b)
{
	if (lt_buf_puts(b, "}\n")) {
		/* Over the cap: say so rather than write a broken line. */
		lt_buf_reset(b);
		line_start(b, LT_LOG_ERROR);
		lt_buf_puts(b, ",\"msg\":\"log line over its size limit, dropped\"}\n");
	}
	size_t off = 0;
	while (off < b->len) {
		ssize_t w = write(log->fd, b->data + off, b->len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
}

void lt_log_msg(struct lt_log *log, enum lt_log_level level, const char *extra, const char *fmt,
		...)
{
	if (!lt_log_enabled(log, level))
		return;
	char store[1024], msg[2048];
	struct lt_buf b;
	lt_buf_init(&b, store, sizeof store, LOG_LINE_MAX);
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof msg)
		n = sizeof msg - 1;
	line_start(&b, level);
	lt_buf_puts(&b, ",\"msg\":");
	lt_buf_put_json_str(&b, msg, (size_t)n);
	if (extra)
		lt_buf_puts(&b, extra);
	line_finish(log, &b);
	lt_buf_release(&b);
}

void lt_log_request(struct lt_log *log, const char *correlation_id, const char *route,
		    const char *method, const char *path, int status, int64_t duration_ns)
{
	if (!atomic_load_explicit(&log->access, memory_order_relaxed) ||
	    !lt_log_enabled(log, LT_LOG_INFO))
		return;
	char store[1024];
	struct lt_buf b;
	lt_buf_init(&b, store, sizeof store, LOG_LINE_MAX);
	line_start(&b, LT_LOG_INFO);
	lt_buf_puts(&b, ",\"msg\":\"request\",\"correlationId\":");
	lt_buf_put_json_str(&b, correlation_id, strlen(correlation_id));
	lt_buf_puts(&b, ",\"route\":");
	lt_buf_put_json_str(&b, route, strlen(route));
	lt_buf_puts(&b, ",\"method\":");
	lt_buf_put_json_str(&b, method, strlen(method));
	lt_buf_puts(&b, ",\"path\":");
	lt_buf_put_json_str(&b, path, strlen(path));
	lt_buf_printf(&b, ",\"status\":%d,\"durationMs\":%.3f", status, (double)duration_ns / 1e6);
	line_finish(log, &b);
	lt_buf_release(&b);
}
