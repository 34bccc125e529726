-- A delta is stored once per (engineer, at, id) instead of (engineer, id)
-- (issue 23, docs/skill-graph.md#idempotency-and-ids). The unique index
-- on (user_id, id) put each random UUIDv4 id at a random place of the
-- engineer's part of the index: about one page written per delta, which
-- made a push of v4 ids cost twice a push of time-ordered ids and grow
-- with the engineer's history. Keyed by time first, every id lands at the
-- end of the engineer's part, whatever its version, and a batch sent again
-- (same id, same time) is still a duplicate.
--
-- SQLite cannot drop a table's UNIQUE constraint: the table is renamed,
-- made again without it, refilled in `seq` order and the old one dropped.
-- No trigger or view names `deltas` and no table refers to it, so the
-- rename rewrites nothing. `seq` values are kept, and so is the
-- AUTOINCREMENT high-water mark (`sqlite_sequence`), which may be above
-- the largest `seq` left when deleted engineers' deltas were the newest:
-- devices pull with `seq` cursors, so a number is never given twice. The
-- indexes are built after the rows are in (a sort, not 10 million
-- inserts at random places).

ALTER TABLE deltas RENAME TO deltas_0021;

CREATE TABLE deltas (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL,                      -- client UUID
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id   TEXT,
    concept     TEXT NOT NULL,
    transition  TEXT NOT NULL CHECK (transition IN ('seen', 'explained', 'check_passed', 'check_failed', 'demonstrated')),
    at          INTEGER NOT NULL,
    grade       INTEGER CHECK (grade IS NULL OR grade BETWEEN 1 AND 4),
    received_at INTEGER NOT NULL
) STRICT;

INSERT INTO deltas (seq, id, user_id, device_id, concept, transition, at, grade, received_at)
SELECT seq, id, user_id, device_id, concept, transition, at, grade, received_at
FROM deltas_0021 ORDER BY seq;

-- The high-water mark: the old table's (renamed with it) replaces the one
-- the copy made.
DELETE FROM sqlite_sequence WHERE name = 'deltas';
UPDATE sqlite_sequence SET name = 'deltas' WHERE name = 'deltas_0021';

DROP TABLE deltas_0021;

CREATE UNIQUE INDEX deltas_user_at_id ON deltas (user_id, at, id);
CREATE INDEX deltas_user_seq ON deltas (user_id, seq);
CREATE INDEX deltas_user_concept ON deltas (user_id, concept, at);
