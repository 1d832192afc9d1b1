/*
 * err.h — the project's error vocabulary.
 *
 * Every fallible function returns an enum lt_err (0 = LT_OK) and writes its
 * results through out-parameters.  The list is append-only: values are logged
 * and may be compared across versions.  lt_strerror() never returns NULL.
 * The single place that maps an lt_err to an HTTP status is lt_err_http_status()
 * in src/http/reply.c.
 */
#ifndef LT_UTIL_ERR_H
#define LT_UTIL_ERR_H

enum lt_err {
	LT_OK = 0,
	LT_ENOMEM,    /* allocation failed */
	LT_EINVAL,    /* bad input (caller's or client's) */
	LT_ERANGE,    /* value outside its bounds */
	LT_ENOTFOUND, /* no such thing */
	LT_EEXIST,    /* already exists */
	LT_EIO,	      /* I/O or storage failure */
	LT_EBUSY,     /* a bounded queue or table is full; try later */
	LT_ETOOBIG,   /* input larger than its limit */
	LT_ESCHEMA,   /* database schema newer than this build knows */
	LT_ECORRUPT,  /* stored data failed a check */
	LT_ESTOPPED,  /* the component is shutting down */
	LT_EDENIED,   /* not allowed */
	LT_ECONFIG,   /* configuration error */
	LT_ETIMEOUT,  /* a deadline passed */
	LT_ESYNTAX,   /* malformed input that could not be parsed */
	LT_ECONNECT,  /* could not connect to an upstream */
	LT_ETLS,      /* TLS handshake or certificate failure */
	LT_EPROTO,    /* an upstream broke its protocol (bad HTTP, bad JSON) */
	LT_EUNAVAIL,  /* refused without trying: circuit open */
	LT_ECLOSED,   /* the peer closed the connection */
	LT_EAGAIN,    /* incomplete: more input needed */
};

/* Static, human-readable name of an error; never NULL. */
const char *lt_strerror(enum lt_err err);

#endif
