/*
 * err.c — names for enum lt_err.  Static strings only; no state.
 */
#include "util/err.h"

const char *lt_strerror(enum lt_err err)
{
	switch (err) {
	case LT_OK: return "ok";
	case LT_ENOMEM: return "out of memory";
	case LT_EINVAL: return "invalid argument";
	case LT_ERANGE: return "value out of range";
	case LT_ENOTFOUND: return "not found";
	case LT_EEXIST: return "already exists";
	case LT_EIO: return "I/O error";
	case LT_EBUSY: return "busy";
	case LT_ETOOBIG: return "too large";
	case LT_ESCHEMA: return "schema newer than this build";
	case LT_ECORRUPT: return "data corrupt";
	case LT_ESTOPPED: return "stopped";
	case LT_EDENIED: return "denied";
	case LT_ECONFIG: return "configuration error";
	case LT_ETIMEOUT: return "timed out";
	case LT_ESYNTAX: return "syntax error";
	case LT_ECONNECT: return "connection failed";
	case LT_ETLS: return "TLS failure";
	case LT_EPROTO: return "protocol error";
	case LT_EUNAVAIL: return "unavailable";
	case LT_ECLOSED: return "connection closed";
	case LT_EAGAIN: return "incomplete";
	}
	return "unknown error";
}
