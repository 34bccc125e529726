-- A push writes one engineer's rows. Two structures put those rows all
-- over the file instead of side by side (docs/benchmarks.md, sync ingest):
--
-- concept_weeks was keyed (week, concept, user_id), so one push's ~200
-- (week, concept) rows of one engineer landed among every other
-- engineer's rows of that week: about one page per row in a large org.
-- Nothing reads it week first (trends read week_totals; the totals
-- triggers and deletions read one engineer's rows), so it is keyed
-- (user_id, week, concept) now, which also makes its separate user_id
-- index unnecessary.
--
-- concept_states_concept indexed (concept, level), so each level change
-- moved an entry in an index ordered by concept. Its only reader counts
-- the engineers who met a concept (store::concepts::engineers), for
-- which (concept) is enough, and that entry never changes after the
-- state's first insert.
--
-- The update triggers of concept_states and concept_weeks, which fire on
-- most rows a push changes, add their differences through an upsert over
-- the engineer's scopes, as the insert triggers do, instead of an UPDATE
-- whose `scope IN (SELECT ...)` built a temporary table on every firing.
-- The row to add to always exists: a counted engineer's state or week is
-- in the totals of each of their scopes since it was inserted or since
-- they were counted (the property tests of crate::graph::aggregates check
-- that no total is left with n_seen 0 and anything else).
--
-- SQLite cannot change a primary key in place: the rows go to a
-- temporary copy, the table is made again under the new key, and the
-- rows come back. Dropping the table drops its index and its three
-- triggers (which do not fire on the drop); they are made again after
-- the rows are back, as week_totals already counts them: those of insert
-- and delete as migration 0009 made them, that of update as said above. The triggers of other tables that
-- name concept_weeks (counted_changes_apply, users_delete) refer to it
-- by name and read the new table.

CREATE TEMP TABLE concept_weeks_copy AS
SELECT user_id, week, concept, demonstrated FROM main.concept_weeks;

DROP TABLE main.concept_weeks;

CREATE TABLE main.concept_weeks (
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    week         INTEGER NOT NULL,   -- the week's Monday (UTC) as days since 1970-01-01
    concept      TEXT NOT NULL,
    demonstrated INTEGER NOT NULL CHECK (demonstrated IN (0, 1)),
    PRIMARY KEY (user_id, week, concept)
) STRICT, WITHOUT ROWID;

INSERT INTO main.concept_weeks (user_id, week, concept, demonstrated)
SELECT user_id, week, concept, demonstrated FROM temp.concept_weeks_copy;

DROP TABLE temp.concept_weeks_copy;

CREATE TRIGGER concept_weeks_insert AFTER INSERT ON concept_weeks
WHEN EXISTS (SELECT 1 FROM counted_users WHERE id = NEW.user_id)
BEGIN
    INSERT INTO week_totals
    SELECT sc.scope, NEW.week, NEW.concept, 1, NEW.demonstrated
    FROM (SELECT '' AS scope UNION ALL SELECT group_id FROM group_members WHERE user_id = NEW.user_id) sc
    WHERE true
    ON CONFLICT (scope, week, concept) DO UPDATE SET
        n_seen = n_seen + 1, n_demonstrated = n_demonstrated + excluded.n_demonstrated;
END;

CREATE TRIGGER concept_weeks_update AFTER UPDATE ON concept_weeks
WHEN NEW.demonstrated IS NOT OLD.demonstrated
 AND EXISTS (SELECT 1 FROM counted_users WHERE id = NEW.user_id)
BEGIN
    INSERT INTO week_totals
    SELECT sc.scope, NEW.week, NEW.concept, 0, NEW.demonstrated - OLD.demonstrated
    FROM (SELECT '' AS scope UNION ALL SELECT group_id FROM group_members WHERE user_id = NEW.user_id) sc
    WHERE true
    ON CONFLICT (scope, week, concept) DO UPDATE SET
        n_demonstrated = n_demonstrated + excluded.n_demonstrated;
END;

CREATE TRIGGER concept_weeks_delete AFTER DELETE ON concept_weeks
WHEN EXISTS (SELECT 1 FROM counted_users WHERE id = OLD.user_id)
BEGIN
    UPDATE week_totals SET n_seen = n_seen - 1, n_demonstrated = n_demonstrated - OLD.demonstrated
    WHERE week = OLD.week AND concept = OLD.concept
      AND scope IN (SELECT '' UNION ALL SELECT group_id FROM group_members WHERE user_id = OLD.user_id);
END;

DROP TRIGGER concept_states_update;
CREATE TRIGGER concept_states_update AFTER UPDATE ON concept_states
WHEN ((NEW.level >= 3) IS NOT (OLD.level >= 3)
      OR NEW.late_checks IS NOT OLD.late_checks OR NEW.late_passed IS NOT OLD.late_passed
      OR NEW.recall_30d IS NOT OLD.recall_30d)
 AND EXISTS (SELECT 1 FROM counted_users WHERE id = NEW.user_id)
BEGIN
    -- user_id and concept are the key: an update never moves a state.
    INSERT INTO concept_totals
    SELECT sc.scope, NEW.concept, 0, (NEW.level >= 3) - (OLD.level >= 3),
           NEW.late_checks - OLD.late_checks, NEW.late_passed - OLD.late_passed,
           (NEW.late_checks > 0) - (OLD.late_checks > 0),
           coalesce(CAST(round(NEW.recall_30d * 1000000) AS INTEGER), 0)
               - coalesce(CAST(round(OLD.recall_30d * 1000000) AS INTEGER), 0),
           (NEW.recall_30d IS NOT NULL) - (OLD.recall_30d IS NOT NULL)
    FROM (SELECT '' AS scope UNION ALL SELECT group_id FROM group_members WHERE user_id = NEW.user_id) sc
    WHERE true
    ON CONFLICT (scope, concept) DO UPDATE SET
        n_demonstrated = n_demonstrated + excluded.n_demonstrated,
        late_checks = late_checks + excluded.late_checks, late_passed = late_passed + excluded.late_passed,
        n_late = n_late + excluded.n_late, recall_micros = recall_micros + excluded.recall_micros,
        n_recall = n_recall + excluded.n_recall;
END;

DROP INDEX concept_states_concept;
CREATE INDEX concept_states_concept ON concept_states (concept);
