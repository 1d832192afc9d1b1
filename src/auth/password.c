/*
 * password.c — Argon2id hashing, the hash gate, the dummy verify.  See
 * password.h.  Owns no global state; the gate's counters are guarded by its
 * mutex and nothing is held across a hash.
 */
#define _POSIX_C_SOURCE 200809L
#include <assert.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "auth/password.h"

_Static_assert(LT_PASSWORD_HASH_LEN == crypto_pwhash_STRBYTES, "hash buffer size");

#define LT_PW_OPSLIMIT crypto_pwhash_OPSLIMIT_INTERACTIVE
#define LT_PW_MEMLIMIT crypto_pwhash_MEMLIMIT_INTERACTIVE

enum lt_err lt_password_hash(const char *pw, size_t len, char out[LT_PASSWORD_HASH_LEN])
{
	memset(out, 0, LT_PASSWORD_HASH_LEN);
	if (len > LT_PASSWORD_MAX)
		return LT_ETOOBIG;
	/* Fails only when the memory cannot be had (the limits are valid). */
	if (crypto_pwhash_str(out, pw, len, LT_PW_OPSLIMIT, LT_PW_MEMLIMIT) != 0) {
		memset(out, 0, LT_PASSWORD_HASH_LEN);
		return LT_ENOMEM;
	}
	return LT_OK;
}

enum lt_err lt_password_verify(const char *stored, const char *pw, size_t len, bool *ok,
			       bool *needs_rehash)
{
	*ok = false;
	*needs_rehash = false;
	if (len > LT_PASSWORD_MAX)
		return LT_ETOOBIG;
	/* libsodium reads `stored` up to its NUL: make sure there is one. */
	if (strnlen(stored, LT_PASSWORD_HASH_LEN) == LT_PASSWORD_HASH_LEN)
		return LT_ECORRUPT;
	/* -1: not an argon2 string we can decode (checked before verifying so
	 * that a mismatch below means a mismatch). */
	int rehash = crypto_pwhash_str_needs_rehash(stored, LT_PW_OPSLIMIT, LT_PW_MEMLIMIT);
	if (rehash < 0)
		return LT_ECORRUPT;
	errno = 0;
	if (crypto_pwhash_str_verify(stored, pw, len) == 0) {
		*ok = true;
		*needs_rehash = rehash != 0;
		return LT_OK;
	}
	/* libsodium sets EINVAL for a mismatch; allocation failures leave
	 * ENOMEM from malloc/mmap.  Anything else is a hash it could not use. */
	if (errno == EINVAL)
		return LT_OK;
	return errno == ENOMEM ? LT_ENOMEM : LT_ECORRUPT;
}

/* ---- gate ---- */

enum lt_err lt_pwhash_gate_init(struct lt_pwhash_gate *g, int max, int max_waiting)
{
	enum lt_err e = LT_ENOMEM;
	pthread_condattr_t attr;
	bool attr_ok = false, mu_ok = false;

	memset(g, 0, sizeof *g);
	if (max < 1 || max_waiting < 0)
		return LT_EINVAL;
	if (pthread_condattr_init(&attr) != 0)
		goto out;
	attr_ok = true;
	if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0)
		goto out;
	if (pthread_mutex_init(&g->mu, NULL) != 0)
		goto out;
	mu_ok = true;
	if (pthread_cond_init(&g->cv, &attr) != 0)
		goto out;
	g->max = max;
	g->max_waiting = max_waiting;
	e = LT_OK;
out:
	if (attr_ok)
		pthread_condattr_destroy(&attr);
	if (e != LT_OK && mu_ok)
		pthread_mutex_destroy(&g->mu);
	return e;
}

void lt_pwhash_gate_release(struct lt_pwhash_gate *g)
{
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
}

static struct timespec deadline_after(int64_t timeout_ns)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* Cap the wait at a day so the arithmetic cannot overflow. */
	const int64_t day = INT64_C(86400) * 1000000000;
	if (timeout_ns > day)
		timeout_ns = day;
	int64_t ns = (int64_t)ts.tv_nsec + timeout_ns % 1000000000;
	ts.tv_sec += (time_t)(timeout_ns / 1000000000 + ns / 1000000000);
	ts.tv_nsec = (long)(ns % 1000000000);
	return ts;
}

enum lt_err lt_pwhash_gate_enter(struct lt_pwhash_gate *g, int64_t timeout_ns)
{
	enum lt_err e = LT_OK;

	pthread_mutex_lock(&g->mu);
	/* A free slot is taken at once, even ahead of a waiter that a leave has
	 * just woken (it finds the gate full and waits on, within its own
	 * deadline): the gate sheds load, it does not promise FIFO order. */
	if (g->running < g->max)
		goto take;
	if (timeout_ns <= 0 || g->waiting >= g->max_waiting) {
		e = LT_EBUSY;
		goto out;
	}
	struct timespec deadline = deadline_after(timeout_ns);
	g->waiting++;
	while (g->running >= g->max) {
		int rc = pthread_cond_timedwait(&g->cv, &g->mu, &deadline);
		/* On timeout, a slot freed meanwhile is still taken (the loop
		 * condition), so a signal consumed here is never lost. */
		if (rc == ETIMEDOUT && g->running >= g->max) {
			g->waiting--;
			e = LT_EBUSY;
			goto out;
		}
	}
	g->waiting--;
take:
	g->running++;
out:
	pthread_mutex_unlock(&g->mu);
	return e;
}

void lt_pwhash_gate_leave(struct lt_pwhash_gate *g)
{
	pthread_mutex_lock(&g->mu);
	assert(g->running > 0); /* a leave without an enter is our bug */
	g->running--;
	if (g->waiting > 0)
		pthread_cond_signal(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

void lt_pwhash_gate_stats(struct lt_pwhash_gate *g, int *running, int *waiting)
{
	pthread_mutex_lock(&g->mu);
	*running = g->running;
	*waiting = g->waiting;
	pthread_mutex_unlock(&g->mu);
}

/* ---- dummy ---- */

enum lt_err lt_password_dummy_init(struct lt_password_dummy *d)
{
	unsigned char pw[32];
	randombytes_buf(pw, sizeof pw);
	enum lt_err e = lt_password_hash((const char *)pw, sizeof pw, d->hash);
	sodium_memzero(pw, sizeof pw);
	return e;
}

void lt_password_dummy_verify(const struct lt_password_dummy *d, const char *pw, size_t len)
{
	bool ok, rehash;
	/* Same checks and the same work as a real verify: a real one refuses
	 * an over-long password before hashing too. */
	(void)lt_password_verify(d->hash, pw, len, &ok, &rehash);
}
