-- Each engineer's state per concept, maintained on every push from that
-- engineer's deltas for the concept (a fold; see crate::graph::state), so
-- org aggregates read one small row per engineer and concept instead of
-- every delta. level: 1 seen, 2 explained, 3 demonstrated, 4 retained.
-- recall_30d is the memory model's predicted recall 30 days after the last
-- check (NULL without a graded check). Times are Unix ms, UTC.
CREATE TABLE concept_states (
    user_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    concept            TEXT NOT NULL,
    level              INTEGER NOT NULL CHECK (level BETWEEN 1 AND 4),
    first_seen_at      INTEGER NOT NULL,
    first_demonstrated INTEGER,
    recall_30d         REAL,
    late_checks        INTEGER NOT NULL DEFAULT 0,
    late_passed        INTEGER NOT NULL DEFAULT 0,
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (user_id, concept)
) STRICT, WITHOUT ROWID;
CREATE INDEX concept_states_concept ON concept_states (concept, level);
