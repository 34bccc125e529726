-- Facts kept with their folds, and no index of deltas by concept (issue
-- 23, docs/skill-graph.md#facts-kept-with-the-folds).
--
-- The per-concept index of migration 0018 was about two thirds of the
-- pages a push wrote: each delta landed at a random place in it. A refold
-- now reads a concept's facts from the rows that already hold its folds:
-- each checkpoint keeps the facts of its interval (`span`), each stored
-- state the facts it folded since its last checkpoint (`tail`), both
-- packed (crate::skill::packed). A concept queued for the refold worker
-- keeps its newer facts in `fold_pending` until the worker folds them.
-- Every fact of a concept is in exactly one of the three.
--
-- The Rust step of this migration (crate::store::migrations) fills the
-- spans and tails from the deltas through the index, queues for the
-- worker every concept it cannot fill (queued ones, rows from before
-- migration 0018) with all its facts waiting, then drops the index.
ALTER TABLE concept_states ADD COLUMN tail BLOB;
ALTER TABLE fold_checkpoints ADD COLUMN span BLOB NOT NULL DEFAULT x'';

CREATE TABLE fold_pending (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    concept    TEXT NOT NULL,
    at         INTEGER NOT NULL,
    id         TEXT NOT NULL,
    transition TEXT NOT NULL
        CHECK (transition IN ('seen', 'explained', 'check_passed', 'check_failed', 'demonstrated')),
    grade      INTEGER,
    PRIMARY KEY (user_id, concept, at, id)
) STRICT, WITHOUT ROWID;

-- A state's waiting facts go with it, whichever path deletes it.
CREATE TRIGGER concept_states_delete_pending AFTER DELETE ON concept_states
BEGIN
    DELETE FROM fold_pending WHERE user_id = OLD.user_id AND concept = OLD.concept;
END;

-- Where a queued refold starts again is now a checkpoint (the last one
-- before its first fact not yet folded), not that fact; every concept
-- queued here is queued again from its first fact by the Rust step.
