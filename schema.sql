-- schema.sql — leaky.db, as forward-only migrations.
--
-- Each migration starts with a line "-- migration N: title" (N = 1, 2, ...
-- in order, no gaps).  leakyd and `leakyctl init` apply, in one transaction,
-- every migration above the database's PRAGMA user_version and then set
-- user_version to the last one.  A database whose user_version is above the
-- last migration here was written by a newer build and is refused.
-- Never edit a migration that has shipped: add a new one.

-- migration 1: foundation
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT;

INSERT INTO meta (key, value)
VALUES ('created_at', strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
       ('instance_id', lower(hex(randomblob(16))));

-- migration 2: identity
-- Users, their roles, orgs and members, API keys (only a keyed digest of the
-- secret), JWT signing keys (public part; the private key is a file under
-- secrets/), and the audit trail of identity changes.  Times are Unix
-- milliseconds (UTC).  Ids are lowercase canonical UUIDs.
CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
	email         TEXT NOT NULL UNIQUE COLLATE NOCASE,
	password_hash TEXT NOT NULL,
	tier          TEXT,                      -- explicit tier, NULL: derived from roles
	disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE user_roles (
	user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	role    TEXT NOT NULL CHECK (role IN ('ADMIN', 'ORG_ADMIN', 'USER')),
	PRIMARY KEY (user_id, role)
) STRICT, WITHOUT ROWID;

CREATE TABLE orgs (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL UNIQUE COLLATE NOCASE,
	created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE org_members (
	org_id     TEXT NOT NULL REFERENCES orgs(id) ON DELETE CASCADE,
	user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	role       TEXT NOT NULL CHECK (role IN ('ORG_ADMIN', 'USER')),
	created_at INTEGER NOT NULL,
	PRIMARY KEY (org_id, user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX org_members_by_user ON org_members(user_id);

CREATE TABLE api_keys (
	id           TEXT PRIMARY KEY,
	public_id    TEXT NOT NULL UNIQUE,       -- the "lt_<public id>" part
	user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	name         TEXT,
	digest       BLOB NOT NULL CHECK (length(digest) = 32), -- keyed BLAKE2b of the secret
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER,
	last_used_at INTEGER,
	revoked_at   INTEGER
) STRICT;
CREATE INDEX api_keys_by_user ON api_keys(user_id);

CREATE TABLE signing_keys (
	kid        TEXT PRIMARY KEY,             -- RFC 7638 thumbprint
	alg        TEXT NOT NULL CHECK (alg = 'RS256'),
	public_jwk TEXT NOT NULL,                -- JSON object served at /oauth2/jwks
	file       TEXT NOT NULL,                -- private key, relative to the data dir
	created_at INTEGER NOT NULL,
	retired_at INTEGER                       -- NULL: the active key (at most one)
) STRICT;
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys((retired_at IS NULL))
	WHERE retired_at IS NULL;

CREATE TABLE audit (
	id     INTEGER PRIMARY KEY,
	at     INTEGER NOT NULL,
	actor  TEXT,                             -- user id, 'leakyctl', or 'system'
	action TEXT NOT NULL,                    -- e.g. user.created, key.revoked
	target TEXT,
	detail TEXT                              -- JSON object, never secrets
) STRICT;
CREATE INDEX audit_by_time ON audit(at);

-- migration 3: quotas
-- Pools of tokens (per provider) or money (provider '$', micro-dollars) per
-- user or org; the ledger, where every movement is a row, so that a pool's
-- remaining and reserved always equal the sums of its ledger's d_remaining
-- and d_reserved (`leakyctl check` verifies it); and the reservations of
-- calls in flight, which a settle or release deletes (any left after a
-- crash are released at the next start).  Arithmetic: quota/pool.h.
CREATE TABLE pools (
	id           INTEGER PRIMARY KEY,
	owner_kind   TEXT NOT NULL CHECK (owner_kind IN ('user', 'org')),
	owner_id     TEXT NOT NULL,
	provider     TEXT NOT NULL,            -- lower-case provider name, or '$'
	total        INTEGER NOT NULL CHECK (total >= 0),
	remaining    INTEGER NOT NULL CHECK (remaining >= 0),
	reserved     INTEGER NOT NULL CHECK (reserved >= 0),
	window       TEXT NOT NULL CHECK (window IN ('none', 'hour', 'day', 'month')),
	window_start INTEGER NOT NULL,
	window_cap   INTEGER NOT NULL CHECK (window_cap >= -1), -- -1: no cap
	window_used  INTEGER NOT NULL CHECK (window_used >= 0),
	created_at   INTEGER NOT NULL,
	updated_at   INTEGER NOT NULL,
	UNIQUE (owner_kind, owner_id, provider)
) STRICT;

CREATE TABLE ledger (
	id             INTEGER PRIMARY KEY,
	pool_id        INTEGER NOT NULL REFERENCES pools(id),
	at             INTEGER NOT NULL,
	kind           TEXT NOT NULL CHECK (kind IN ('grant', 'adjust', 'reserve', 'settle',
	                                             'release', 'window_reset')),
	d_remaining    INTEGER NOT NULL,
	d_reserved     INTEGER NOT NULL,
	reservation    TEXT,                     -- reserve, settle, release
	amount         INTEGER,                  -- reserve: held; settle: the real usage
	unbilled       INTEGER NOT NULL DEFAULT 0 CHECK (unbilled >= 0),
	actor          TEXT,                     -- user id, 'leakyctl', 'system'
	reason         TEXT,
	correlation_id TEXT
) STRICT;
CREATE INDEX ledger_by_pool ON ledger(pool_id, id);

CREATE TABLE reservations (
	id         TEXT NOT NULL,                -- one id may hold several pools
	pool_id    INTEGER NOT NULL REFERENCES pools(id),
	held       INTEGER NOT NULL CHECK (held >= 0),
	created_at INTEGER NOT NULL,
	PRIMARY KEY (id, pool_id)
) STRICT, WITHOUT ROWID;

-- migration 4: outbox and consumer offsets
-- The transactional outbox: every state change others must hear about
-- (usage settled, quota granted, a saga step, an audit row) inserts its
-- event here in the same transaction as the change.  The relay thread
-- appends unpublished rows to the event log (events/) in id order and then
-- sets published_at; the row id is the event id, so a row appended again
-- after a crash is recognisable.  AUTOINCREMENT: ids are never reused, even
-- after published rows are deleted.  Consumers of the log keep the next
-- offset they will read per topic, advanced in the same transaction as
-- their effects (exactly once across crashes).
CREATE TABLE outbox (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	topic        TEXT NOT NULL,
	key          TEXT NOT NULL DEFAULT '',
	type         TEXT NOT NULL,
	payload      TEXT NOT NULL,              -- the event's JSON
	created_at   INTEGER NOT NULL,
	published_at INTEGER                     -- NULL until it is in the event log
) STRICT;
CREATE INDEX outbox_pending ON outbox(id) WHERE published_at IS NULL;

CREATE TABLE consumer_offsets (
	consumer    TEXT NOT NULL,
	topic       TEXT NOT NULL,
	next_offset INTEGER NOT NULL CHECK (next_offset >= 0),
	updated_at  INTEGER NOT NULL,
	PRIMARY KEY (consumer, topic)
) STRICT, WITHOUT ROWID;

-- migration 5: purchase sagas
-- A token purchase (API.md §2) is a saga (saga/machine.h): one row with its
-- state, the steps it has completed (`done`, LT_SAGA_DONE_* bits), the
-- failed tries of its current step and when the next try is due; and its
-- step log, one row per step outcome (retries of a step with the same
-- outcome update that row and count `tries`).  Every state write carries
-- its outbox event in the same transaction.  (user_id, idempotency_key) is
-- unique where the key is given, so the same key from the same user names
-- one saga even when two requests race.  compensate = 1 asks leakyd to
-- compensate at the saga's next step (admin API, leakyctl saga
-- compensate); next_attempt_at = 0 asks for a try at the next scheduler
-- tick (leakyctl saga retry|compensate); leakyd itself always writes a
-- time there.  version counts state writes (an optimistic check).
CREATE TABLE sagas (
	id              TEXT PRIMARY KEY,
	user_id         TEXT NOT NULL,
	org_id          TEXT,                     -- NULL: the user's own pool
	provider        TEXT NOT NULL,
	tokens          INTEGER NOT NULL CHECK (tokens BETWEEN 1 AND 10000000),
	amount_micros   INTEGER NOT NULL CHECK (amount_micros >= 0),
	idempotency_key TEXT,
	payload_hash    TEXT NOT NULL,            -- BLAKE2b of the request's fields, hex
	status          TEXT NOT NULL CHECK (status IN ('STARTED', 'PAYMENT_RESERVED',
	                    'TOKENS_ALLOCATED', 'COMPLETED', 'COMPENSATING', 'FAILED')),
	done            INTEGER NOT NULL DEFAULT 0 CHECK (done BETWEEN 0 AND 63),
	payment_id      TEXT,
	failure_reason  TEXT,
	attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
	next_attempt_at INTEGER NOT NULL DEFAULT 0,
	compensate      INTEGER NOT NULL DEFAULT 0 CHECK (compensate IN (0, 1)),
	version         INTEGER NOT NULL DEFAULT 0,
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX sagas_idempotency ON sagas(user_id, idempotency_key)
	WHERE idempotency_key IS NOT NULL;
CREATE INDEX sagas_by_time ON sagas(created_at);
CREATE INDEX sagas_by_status ON sagas(status, created_at);
CREATE INDEX sagas_unfinished ON sagas(updated_at) WHERE status NOT IN ('COMPLETED', 'FAILED');

CREATE TABLE saga_steps (
	saga_id TEXT NOT NULL REFERENCES sagas(id),
	seq     INTEGER NOT NULL,                 -- 1, 2, ... per saga
	name    TEXT NOT NULL,                    -- start, authorize_payment, ... (machine.h)
	status  TEXT NOT NULL CHECK (status IN ('SUCCEEDED', 'RETRYING', 'FAILED')),
	at      INTEGER NOT NULL,
	tries   INTEGER NOT NULL DEFAULT 1 CHECK (tries >= 1),
	detail  TEXT,
	PRIMARY KEY (saga_id, seq)
) STRICT, WITHOUT ROWID;
