-- Fold checkpoints: each concept's stored state says which delta it was
-- folded up to, (`folded_at`, `folded_id`), the fold's order, and keeps
-- the late-check counts the fold carries on with. New deltas that all
-- sort after that point are folded on from the stored state; any other
-- (a delta pulled from another device with an earlier time, a row from
-- before this migration, whose point is NULL) refolds the concept from
-- all its deltas, as every write did before.
ALTER TABLE states ADD COLUMN late_checks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE states ADD COLUMN late_passed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE states ADD COLUMN folded_at INTEGER;
ALTER TABLE states ADD COLUMN folded_id TEXT;
