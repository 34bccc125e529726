-- The kernel's local store. Concept-level facts only: concept ids,
-- transitions, times and grades; never code, diffs, prompts or paths.

-- Device credentials, sync cursors and settings, one value per key.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- Every delta this engineer holds: recorded here (`own`) or pulled from
-- their other devices (`pulled`). `at` in milliseconds since the epoch.
CREATE TABLE deltas (
    id         TEXT PRIMARY KEY,
    concept    TEXT NOT NULL,
    transition TEXT NOT NULL,
    at         INTEGER NOT NULL,
    grade      INTEGER,
    origin     TEXT NOT NULL CHECK (origin IN ('own', 'pulled'))
) STRICT;
CREATE INDEX deltas_concept ON deltas (concept);
-- The same fact observed twice (a hook and the session record both
-- report it) is recorded once.
CREATE UNIQUE INDEX deltas_own_fact ON deltas (concept, transition, at) WHERE origin = 'own';

-- Own deltas not yet accepted by the appliance, in recording order.
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id  TEXT NOT NULL UNIQUE REFERENCES deltas (id)
) STRICT;

-- Deltas the appliance refused for good (e.g. a concept the org retired),
-- with its reason; kept so the engineer can see them.
CREATE TABLE refused (
    id     TEXT PRIMARY KEY REFERENCES deltas (id),
    reason TEXT NOT NULL
) STRICT;

-- The folded state per concept (skill::state::fold over its deltas).
CREATE TABLE states (
    concept            TEXT PRIMARY KEY,
    level              TEXT NOT NULL,
    first_seen         INTEGER,
    first_demonstrated INTEGER,
    last_activity      INTEGER,
    stability_days     REAL,
    difficulty         REAL,
    last_review        INTEGER,
    reps               INTEGER,
    lapses             INTEGER,
    checks_passed      INTEGER NOT NULL,
    checks_failed      INTEGER NOT NULL
) STRICT;

-- Where each ingestion source (a harness's session file, a hook stream)
-- has been read up to; set in the transaction that records its deltas.
CREATE TABLE cursors (
    source TEXT PRIMARY KEY,
    cursor TEXT NOT NULL
) STRICT;
