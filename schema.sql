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
