/*
 * log.h — structured logging: one JSON object per line.
 *
 * Every line has "time" (real UTC, ISO-8601), "level" and "msg"; request
 * lines add "correlationId", "route", "method", "status", "durationMs".
 * A line is built in one buffer and written with one write(2), so lines from
 * different threads never interleave.  Level and access logging are atomics
 * (SIGHUP changes them while requests run).
 *
 * Never pass secrets (passwords, tokens, keys, request bodies) to these
 * functions: callers log names and ids, not credentials.
 *
 * Ownership: struct lt_log is owned by struct lt_server; fd is borrowed
 * unless own_fd is set.
 */
#ifndef LT_UTIL_LOG_H
#define LT_UTIL_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/err.h"

enum lt_log_level { LT_LOG_DEBUG, LT_LOG_INFO, LT_LOG_WARN, LT_LOG_ERROR };

struct lt_log {
	atomic_int level;   /* enum lt_log_level: lines below it are dropped */
	atomic_bool access; /* write one line per HTTP request */
	int fd;
	bool own_fd;
};

void lt_log_init(struct lt_log *log, int fd, enum lt_log_level level, bool access);
/* Open `path` for appending (0600) and log there; LT_EIO on failure. */
enum lt_err lt_log_open(struct lt_log *log, const char *path);
void lt_log_release(struct lt_log *log);

bool lt_log_enabled(const struct lt_log *log, enum lt_log_level level);
const char *lt_log_level_name(enum lt_log_level level);

/* A line with a printf-formatted message.  `extra` is NULL or a
 * pre-rendered JSON fragment of more members, starting with a comma. */
void lt_log_msg(struct lt_log *log, enum lt_log_level level, const char *extra, const char *fmt,
		...) __attribute__((format(printf, 4, 5)));

#define lt_log_debug(log, ...) lt_log_msg((log), LT_LOG_DEBUG, NULL, __VA_ARGS__)
#define lt_log_info(log, ...) lt_log_msg((log), LT_LOG_INFO, NULL, __VA_ARGS__)
#define lt_log_warn(log, ...) lt_log_msg((log), LT_LOG_WARN, NULL, __VA_ARGS__)
#define lt_log_error(log, ...) lt_log_msg((log), LT_LOG_ERROR, NULL, __VA_ARGS__)

/* The access line for one request (level info, only if access is on). */
void lt_log_request(struct lt_log *log, const char *correlation_id, const char *route,
		    const char *method, const char *path, int status, int64_t duration_ns);

#endif
