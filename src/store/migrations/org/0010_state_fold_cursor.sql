-- The whole fold of each engineer's state per concept, and its cursor: the
-- (at, id) of the last fact folded in. A push whose new facts all sort
-- after the cursor folds in only those facts instead of all the concept's
-- deltas again (see crate::graph::states). The card columns are the memory
-- model's state after the last graded check (NULL before one). Rows written
-- before this migration have no cursor (last_at NULL) and are folded again
-- from their deltas on their next push, which fills every column.
ALTER TABLE concept_states ADD COLUMN checks_passed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE concept_states ADD COLUMN checks_failed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE concept_states ADD COLUMN stability REAL;
ALTER TABLE concept_states ADD COLUMN difficulty REAL;
ALTER TABLE concept_states ADD COLUMN last_review INTEGER;
ALTER TABLE concept_states ADD COLUMN reps INTEGER;
ALTER TABLE concept_states ADD COLUMN lapses INTEGER;
ALTER TABLE concept_states ADD COLUMN last_at INTEGER;
ALTER TABLE concept_states ADD COLUMN last_id TEXT;
