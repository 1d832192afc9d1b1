/*
 * runner.h — the purchase sagas' lifecycle in leakyd (owned by the saga
 * module; the pieces behind it: saga/machine.h, saga/saga_store.h,
 * saga/payment.h).
 *
 * lt_sagas_start creates srv->sagas and its worker threads ([saga]
 * workers), then resumes (forward when possible, else compensates) every
 * saga left unfinished by the previous run.  lt_sagas_tick runs the
 * periodic recovery ([saga] recovery_interval_ms / recovery_idle_ms); the
 * scheduler calls it.  lt_sagas_stop stops the workers after their current
 * step (a saga in flight is left in its last committed state and resumed
 * at the next start).
 *
 * Work: a bounded queue of saga ids (LT_SAGAS_QUEUE_MAX), each due at a
 * monotonic time; a saga is queued or run by one worker at a time.  A
 * worker runs a saga step after step (payment calls through saga/payment.h,
 * every state write through the writer: saga_store.h) until it is final or
 * a step fails; then it queues the saga again after the step's backoff
 * ([saga] retry_max_ms caps it).  A full queue loses nothing: the saga
 * stays in leaky.db and the next recovery scan finds it.
 *
 * Recovery: at start every unfinished saga is queued; lt_sagas_tick queues
 * every second the sagas marked for a try (next_attempt_at = 0: leakyctl
 * saga retry|compensate), and every recovery_interval_ms those untouched
 * for recovery_idle_ms.  A queued saga resumes at its next action: forward
 * (payment calls are idempotent by saga id) until a forward step fails
 * LT_SAGA_FORWARD_TRIES times or is refused, then it compensates.
 *
 * Waiting: lt_sagas_run_wait queues a saga and waits (bounded) until a
 * worker writes a final state for it, so POST /api/v1/tokens/purchase can
 * answer with the state reached ([saga] wait_ms); the saga continues in
 * the background either way.
 *
 * Threads: start, tick and stop from one thread at a time (main, then the
 * scheduler); kick and run_wait from any thread while the runner exists.
 * One mutex guards the queue, the running set and the waiters.  Each
 * worker owns a read connection to leaky.db, the tick another.
 * Ownership: lt_sagas_stop frees srv->sagas, unless HTTP handlers may
 * still be inside it (srv->inflight > 0: the process is about to exit).
 */
#ifndef LT_SAGA_RUNNER_H
#define LT_SAGA_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include "saga/machine.h"
#include "util/err.h"

struct lt_server;
struct lt_sagas;

#define LT_SAGAS_QUEUE_MAX 4096
#define LT_SAGAS_WAITERS_MAX 256
#define LT_SAGAS_MARK_POLL_MS 1000

enum lt_err lt_sagas_start(struct lt_server *srv);
void lt_sagas_tick(struct lt_server *srv, int64_t now_ms);
void lt_sagas_stop(struct lt_server *srv);

/* The runner, or NULL before start and after stop. */
struct lt_sagas *lt_sagas_get(struct lt_server *srv);

/* Queue saga `id` to run now (sooner, if it waits for a backoff; again
 * right after its current step, if it is running).  LT_EBUSY when the
 * queue is full, LT_ESTOPPED when stopping. */
enum lt_err lt_sagas_kick(struct lt_sagas *r, const char *id);

/* Kick `id` and wait up to wait_ms for a worker to write a final state
 * for it: *final says whether it did, *state (may be NULL) the last state
 * a worker wrote while waiting (untouched if none).  LT_OK also when the
 * wait ran out or the kick failed (the saga goes on without the caller);
 * LT_ESTOPPED when stopping. */
enum lt_err lt_sagas_run_wait(struct lt_sagas *r, const char *id, int64_t wait_ms, bool *final,
			      enum lt_saga_state *state);

#endif
