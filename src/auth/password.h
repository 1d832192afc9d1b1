/*
 * password.h — Argon2id password hashes, a cap on concurrent hashing, and a
 * dummy verify for unknown usernames.
 *
 * Hashes are libsodium's crypto_pwhash_str strings ("$argon2id$v=19$m=...")
 * made with the interactive limits (2 passes, 64 MiB): ~80 ms and 64 MiB of
 * RAM each on this project's machines.  A stored hash made with other limits
 * (or with argon2i) still verifies, and lt_password_verify reports
 * needs_rehash so the login path can store a fresh hash.
 *
 * Because each hash takes 64 MiB and a core for ~80 ms, callers run every
 * hash and verify inside a struct lt_pwhash_gate: at most `max` at once, at
 * most `max_waiting` queued, and a bounded wait.  A login flood then costs
 * max * 64 MiB and gets LT_EBUSY (the HTTP layer answers 503) instead of
 * exhausting memory or worker threads.
 *
 * A login for an unknown username must take as long as one for a known
 * username with a wrong password, or response times reveal which usernames
 * exist.  struct lt_password_dummy holds a hash of a random password made once
 * at start; lt_password_dummy_verify spends one verify against it.
 *
 * Passwords are byte strings <pw, len>; the API accepts 8..LT_PASSWORD_MAX
 * bytes (the caller checks and answers with its own message), and these
 * functions refuse more than LT_PASSWORD_MAX with LT_ETOOBIG as a backstop.
 * Nothing here logs or keeps a password.
 *
 * Thread safety: the hash functions are reentrant.  A gate is shared by all
 * threads; its fields are guarded by its mutex.  A dummy is read-only after
 * lt_password_dummy_init.  sodium_init() must have been called.
 */
#ifndef LT_AUTH_PASSWORD_H
#define LT_AUTH_PASSWORD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/err.h"

#define LT_PASSWORD_MIN 8   /* checked by callers (API.md §1) */
#define LT_PASSWORD_MAX 256 /* checked by callers and refused here */

/* Size of a hash string buffer, NUL included (= crypto_pwhash_STRBYTES;
 * password.c checks the two agree). */
#define LT_PASSWORD_HASH_LEN 128

/* Hash pw[0..len) with Argon2id, interactive limits, a fresh random salt.
 * out receives a NUL-terminated string.  LT_ETOOBIG if len > LT_PASSWORD_MAX,
 * LT_ENOMEM if the 64 MiB could not be allocated. */
enum lt_err lt_password_hash(const char *pw, size_t len, char out[LT_PASSWORD_HASH_LEN]);

/* Check pw[0..len) against the NUL-terminated hash string `stored`.
 * *ok: the password matches.  *needs_rehash: the password matches and the
 * stored hash was made with other limits or another algorithm, so the caller
 * should store lt_password_hash(pw) in its place (always false when !*ok).
 * Returns LT_OK whether or not the password matches; LT_ETOOBIG if
 * len > LT_PASSWORD_MAX; LT_ECORRUPT if `stored` is not a hash string this
 * build can read (not NUL-terminated within LT_PASSWORD_HASH_LEN, or not
 * argon2id/argon2i); LT_ENOMEM if the hash memory could not be allocated.
 * On any error *ok and *needs_rehash are false. */
enum lt_err lt_password_verify(const char *stored, const char *pw, size_t len, bool *ok,
			       bool *needs_rehash);

/* ---- the concurrency gate ---- */

struct lt_pwhash_gate {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* signalled when running drops; CLOCK_MONOTONIC */
	int max;	   /* hashes allowed at once (>= 1) */
	int max_waiting;   /* callers allowed to wait for a slot (>= 0) */
	int running;	   /* guarded by mu: callers inside */
	int waiting;	   /* guarded by mu: callers blocked in enter */
};

/* LT_EINVAL unless max >= 1 and max_waiting >= 0; LT_ENOMEM if the mutex or
 * condition variable cannot be made.  Release with lt_pwhash_gate_release
 * once no thread uses it. */
enum lt_err lt_pwhash_gate_init(struct lt_pwhash_gate *g, int max, int max_waiting);
void lt_pwhash_gate_release(struct lt_pwhash_gate *g);

/* Take a slot.  Enters at once when a slot is free; otherwise queues if
 * fewer than max_waiting are waiting and waits up to timeout_ns (<= 0: do
 * not wait; waits longer than a day are cut to a day).  Not FIFO.  LT_OK: the caller holds a slot and must
 * call lt_pwhash_gate_leave.  LT_EBUSY: the queue was full or the wait timed
 * out (the caller holds nothing; answer 503/429). */
enum lt_err lt_pwhash_gate_enter(struct lt_pwhash_gate *g, int64_t timeout_ns);
void lt_pwhash_gate_leave(struct lt_pwhash_gate *g);

/* Current counts, for metrics and tests (a snapshot under the mutex). */
void lt_pwhash_gate_stats(struct lt_pwhash_gate *g, int *running, int *waiting);

/* ---- timing equaliser for unknown usernames ---- */

struct lt_password_dummy {
	char hash[LT_PASSWORD_HASH_LEN]; /* hash of 32 random bytes, made once */
};

/* One Argon2id hash (~80 ms); call once at start.  LT_ENOMEM on failure. */
enum lt_err lt_password_dummy_init(struct lt_password_dummy *d);

/* Spend the time of lt_password_verify on an unknown username's login; the
 * result is always "no match" and is not returned.  Run it inside the gate
 * like a real verify. */
void lt_password_dummy_verify(const struct lt_password_dummy *d, const char *pw, size_t len);

#endif
