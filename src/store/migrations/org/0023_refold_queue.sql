-- Deep refolds leave the push (issue 23, docs/skill-graph.md#deep-refolds-the-queue).
-- A push whose late facts would make it fold more of a concept's history
-- again than it may (crate::graph::states::INLINE_REFOLD) queues the
-- concept here instead; the push stores its deltas, and the refold worker
-- (crate::graph::refold) folds the concept from the last checkpoint before
-- `from` in bounded slices, each its own transaction, so no push waits
-- long for the writer. While a concept is queued its concept_states row
-- holds the fold before the late facts, and later pushes about it only
-- store their deltas (and move `from` back if they are earlier still):
-- a backlog sent oldest first folds each concept once, not once per push.
CREATE TABLE refold_queue (
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    concept   TEXT NOT NULL,
    -- The first fact not yet folded, in (at, id) order.
    from_at   INTEGER NOT NULL,
    from_id   TEXT NOT NULL,
    queued_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, concept)
) STRICT, WITHOUT ROWID;
CREATE INDEX refold_queue_queued ON refold_queue (queued_at);

-- A state's queued refold goes with it, whichever path deletes it.
CREATE TRIGGER concept_states_delete_refold AFTER DELETE ON concept_states
BEGIN
    DELETE FROM refold_queue WHERE user_id = OLD.user_id AND concept = OLD.concept;
END;
