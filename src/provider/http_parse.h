/*
 * http_parse.h — incremental parser of one HTTP/1.1 response (pure: no I/O).
 *
 * The upstream client feeds it whatever bytes arrive from the socket; the
 * parser reads the status line and headers into fixed fields, then hands the
 * body to a callback already de-chunked.  Bodies are delimited by
 * Content-Length, by chunked Transfer-Encoding (extensions ignored, trailers
 * skipped) or, when neither is present, by the connection closing
 * (lt_http_resp_eof).  1xx interim responses (100 Continue) are skipped.
 *
 * Limits are explicit: the status line plus headers may not exceed
 * max_header bytes, a body may not exceed max_body bytes (LT_ETOOBIG), and
 * anything malformed (bad status line, bad chunk size, conflicting or
 * invalid Content-Length, a header line without ':', bare CR) is LT_EPROTO.
 * After an error the parser stays in error and feeds return the same code.
 *
 * Ownership: the struct is the caller's (stack or embedded); it holds no heap
 * memory.  Strings in it are NUL-terminated copies, truncated to their field.
 */
#ifndef LT_PROVIDER_HTTP_PARSE_H
#define LT_PROVIDER_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

/* Body bytes, de-chunked.  A non-LT_OK return stops the parse and is
 * returned by lt_http_resp_feed (e.g. the client of a stream went away). */
typedef enum lt_err (*lt_http_body_fn)(void *arg, const char *data, size_t len);

enum lt_http_resp_state {
	LT_HR_STATUS,	  /* reading the status line */
	LT_HR_HEADERS,	  /* reading header lines */
	LT_HR_BODY_LEN,	  /* Content-Length body */
	LT_HR_CHUNK_SIZE, /* chunked: size line */
	LT_HR_CHUNK_DATA, /* chunked: data */
	LT_HR_CHUNK_CRLF, /* chunked: CRLF after data */
	LT_HR_TRAILERS,	  /* chunked: trailer lines until an empty one */
	LT_HR_BODY_EOF,	  /* body runs to connection close */
	LT_HR_DONE,	  /* the whole response has been read */
	LT_HR_ERROR,
};

struct lt_http_resp {
	/* limits, set by init */
	size_t max_header;
	size_t max_body;
	bool head; /* response to HEAD: no body whatever the headers say */

	/* results, valid once headers_done */
	bool headers_done;
	int status;		/* 100..599 */
	int minor;		/* HTTP/1.x minor version */
	int64_t content_length; /* -1 when absent */
	bool chunked;
	bool close;		/* Connection: close, or HTTP/1.0 without keep-alive */
	int64_t retry_after_s;	/* Retry-After in seconds (delta form), -1 if absent or a
				     date (dates are treated as absent) */
	char content_type[128]; /* media type as sent, "" if absent */
	char request_id[128];	/* x-request-id as sent, "" if absent */
	uint64_t body_bytes;	/* body bytes delivered so far */

	/* internal */
	enum lt_http_resp_state state;
	enum lt_err err;
	size_t header_bytes; /* bytes of status line + headers seen */
	uint64_t remaining;  /* bytes left in the Content-Length body or chunk */
	char line[1024];     /* the current line being assembled */
	size_t line_len;
	bool saw_cl;
	bool interim; /* the header block being read belongs to a 1xx response */
};

/* Start a fresh response.  max_header and max_body must be > 0. */
void lt_http_resp_init(struct lt_http_resp *p, size_t max_header, size_t max_body, bool head);

/* Feed bytes.  Stops at the end of the response: *consumed (may be NULL)
 * tells how many bytes of data belonged to it; bytes after it are the next
 * response's (a keep-alive peer must not send any: the client treats them as
 * a protocol error).  LT_OK while more is needed or once done (check
 * lt_http_resp_done); LT_EPROTO, LT_ETOOBIG, or the callback's error. */
enum lt_err lt_http_resp_feed(struct lt_http_resp *p, const char *data, size_t len,
			      size_t *consumed, lt_http_body_fn on_body, void *arg);

/* The peer closed the connection.  LT_OK if that completes the response
 * (a close-delimited body), LT_ECLOSED if the response was cut short. */
enum lt_err lt_http_resp_eof(struct lt_http_resp *p);

/* True once the whole response has been read. */
bool lt_http_resp_done(const struct lt_http_resp *p);

/* True if the connection may be reused after this response: done, HTTP/1.1,
 * no Connection: close, and the body was not close-delimited. */
bool lt_http_resp_reusable(const struct lt_http_resp *p);

#endif
