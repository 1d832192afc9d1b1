/*
 * sse.h — Server-Sent Events splitter (pure: no I/O).
 *
 * Fed arbitrary slices of an event stream (as they come off the socket), it
 * dispatches complete events per the WHATWG rules: lines end in LF, CRLF or
 * CR; a blank line dispatches; "data:" lines are joined with '\n'; one space
 * after the colon is dropped; "event:" sets the type; lines starting with ':'
 * are comments; "id:" and "retry:" are accepted and ignored; unknown fields
 * are ignored; an event with no data lines is not dispatched.  A leading
 * UTF-8 BOM is skipped.  At end of stream an unterminated event is dropped
 * (lt_sse_finish reports whether one was pending).
 *
 * Limits: one event's data may not exceed max_event bytes and one line may
 * not exceed max_event + 64 bytes (LT_ETOOBIG).
 *
 * Ownership: lt_sse_init allocates the line and data buffers; lt_sse_free
 * releases them.  Pointers passed to the callback are valid during the call.
 */
#ifndef LT_PROVIDER_SSE_H
#define LT_PROVIDER_SSE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/err.h"

/* One event: `event` is its type ("message" when none was given), `data`
 * is NUL-terminated with length data_len.  A non-LT_OK return stops the
 * feed and is returned by it. */
typedef enum lt_err (*lt_sse_event_fn)(void *arg, const char *event, const char *data,
				       size_t data_len);

struct lt_sse {
	size_t max_event;
	char *line; /* current line, owned */
	size_t line_len, line_cap;
	char *data; /* data of the event being built, owned */
	size_t data_len, data_cap;
	bool has_data;
	char event[64];
	bool bom_checked;
	bool last_cr;  /* the previous byte was CR (so a following LF is part of it) */
	size_t events; /* events dispatched so far */
};

/* LT_ENOMEM if the buffers cannot be allocated. */
enum lt_err lt_sse_init(struct lt_sse *s, size_t max_event);
void lt_sse_free(struct lt_sse *s);

/* Feed bytes; dispatches every event completed by them. */
enum lt_err lt_sse_feed(struct lt_sse *s, const char *data, size_t len, lt_sse_event_fn fn,
			void *arg);

/* End of stream.  Returns true if a partial event (or partial line) was
 * pending and has been dropped. */
bool lt_sse_finish(struct lt_sse *s);

#endif
