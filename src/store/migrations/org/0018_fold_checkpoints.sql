-- Fold checkpoints: a push stays bounded whatever order deltas arrive in
-- (crate::graph::states, docs/skill-graph.md).
--
-- `facts` counts the facts folded into a concept_states row. Rows written
-- before this migration have none (NULL) and are folded again from their
-- deltas on their next push, which also lays their checkpoints; nothing is
-- rewritten here, so migrating a large org costs the index below only.
ALTER TABLE concept_states ADD COLUMN facts INTEGER;

-- The state of (user, concept) after its first `facts` facts in (at, id)
-- order, for every multiple of the checkpoint interval: a fact that sorts
-- before a row's cursor is folded again from the last checkpoint before it
-- instead of from the concept's first fact. The columns are those of
-- concept_states' fold; (last_at, last_id) is the checkpoint's cursor.
CREATE TABLE fold_checkpoints (
    user_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    concept            TEXT NOT NULL,
    last_at            INTEGER NOT NULL,
    last_id            TEXT NOT NULL,
    facts              INTEGER NOT NULL,
    level              INTEGER NOT NULL CHECK (level BETWEEN 1 AND 4),
    first_seen_at      INTEGER NOT NULL,
    first_demonstrated INTEGER,
    checks_passed      INTEGER NOT NULL,
    checks_failed      INTEGER NOT NULL,
    late_checks        INTEGER NOT NULL,
    late_passed        INTEGER NOT NULL,
    stability          REAL,
    difficulty         REAL,
    last_review        INTEGER,
    reps               INTEGER,
    lapses             INTEGER,
    PRIMARY KEY (user_id, concept, last_at, last_id)
) STRICT, WITHOUT ROWID;

-- A state's checkpoints go with it, whichever path deletes it (the
-- deletion sweep, a user's removal).
CREATE TRIGGER concept_states_delete_checkpoints AFTER DELETE ON concept_states
BEGIN
    DELETE FROM fold_checkpoints WHERE user_id = OLD.user_id AND concept = OLD.concept;
END;

-- A refold reads one concept's deltas from a checkpoint on, not the
-- engineer's whole history (migration 0011 dropped this index when every
-- out-of-order fact read all of the engineer's deltas instead).
CREATE INDEX deltas_user_concept ON deltas (user_id, concept, at);
