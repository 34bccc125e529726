-- Org aggregates as running totals (see crate::graph::totals), so that the
-- aggregates page reads one row per concept instead of summing every
-- engineer's concept_states on each request.
--
-- The invariant: for every scope (''  for the whole org, else a group id)
-- and concept, a concept_totals row holds the sums over the *counted*
-- engineers of that scope of what their concept_states row contributes,
-- and a week_totals row the same over their concept_weeks rows. An
-- engineer is counted while active, not opted out and not awaiting
-- deletion (the view counted_users; crate::graph's counted_engineers! is
-- the same rule). The triggers below keep the invariant on every change
-- of its inputs, whichever code path makes it: a push (concept_states,
-- concept_weeks), a deactivation (users.active), an opt-out or deletion
-- hold (user_privacy), a team change (group_members), a group or user
-- removed. A row whose n_seen falls to 0 stays, and is skipped on read.
--
-- recall_micros is the sum of round(recall_30d * 1e6): integers, so that
-- adding and later removing an engineer leaves exactly what was there.

CREATE VIEW counted_users AS
SELECT u.id FROM users u
LEFT JOIN user_privacy p ON p.user_id = u.id
WHERE u.active = 1 AND coalesce(p.opted_out, 0) = 0 AND p.deletion_requested_at IS NULL;

CREATE TABLE concept_totals (
    scope          TEXT NOT NULL,               -- '' for the org, else groups.id
    concept        TEXT NOT NULL,
    n_seen         INTEGER NOT NULL,            -- engineers with a state (level >= 1)
    n_demonstrated INTEGER NOT NULL,            -- level >= 3
    late_checks    INTEGER NOT NULL,            -- checks taken >= 30 days after demonstration
    late_passed    INTEGER NOT NULL,
    n_late         INTEGER NOT NULL,            -- engineers with a late check
    recall_micros  INTEGER NOT NULL,            -- sum of round(recall_30d * 1e6)
    n_recall       INTEGER NOT NULL,            -- engineers with a recall
    PRIMARY KEY (scope, concept)
) STRICT, WITHOUT ROWID;

CREATE TABLE week_totals (
    scope          TEXT NOT NULL,
    week           INTEGER NOT NULL,            -- as concept_weeks.week
    concept        TEXT NOT NULL,
    n_seen         INTEGER NOT NULL,
    n_demonstrated INTEGER NOT NULL,
    PRIMARY KEY (scope, week, concept)
) STRICT, WITHOUT ROWID;

-- The totals of what is already held.
INSERT INTO concept_totals
SELECT sc.scope, s.concept, count(*), sum(s.level >= 3), sum(s.late_checks), sum(s.late_passed),
       sum(s.late_checks > 0), sum(coalesce(CAST(round(s.recall_30d * 1000000) AS INTEGER), 0)),
       count(s.recall_30d)
FROM concept_states s
JOIN counted_users c ON c.id = s.user_id
JOIN (SELECT id AS user_id, '' AS scope FROM users
      UNION ALL SELECT user_id, group_id FROM group_members) sc ON sc.user_id = s.user_id
GROUP BY sc.scope, s.concept;

INSERT INTO week_totals
SELECT sc.scope, w.week, w.concept, count(*), sum(w.demonstrated)
FROM concept_weeks w
JOIN counted_users c ON c.id = w.user_id
JOIN (SELECT id AS user_id, '' AS scope FROM users
      UNION ALL SELECT user_id, group_id FROM group_members) sc ON sc.user_id = w.user_id
GROUP BY sc.scope, w.week, w.concept;

-- A push: one engineer's state of one concept appears, changes or goes.
-- (The WHERE true after each SELECT is SQLite's rule for an upsert from a
-- SELECT.)

CREATE TRIGGER concept_states_insert AFTER INSERT ON concept_states
WHEN EXISTS (SELECT 1 FROM counted_users WHERE id = NEW.user_id)
BEGIN
    INSERT INTO concept_totals
    SELECT sc.scope, NEW.concept, 1, NEW.level >= 3, NEW.late_checks, NEW.late_passed,
           NEW.late_checks > 0, coalesce(CAST(round(NEW.recall_30d * 1000000) AS INTEGER), 0),
           NEW.recall_30d IS NOT NULL
    FROM (SELECT '' AS scope UNION ALL SELECT group_id FROM group_members WHERE user_id = NEW.user_id) sc
    WHERE true
    ON CONFLICT (scope, concept) DO UPDATE SET
        n_seen = n_seen + excluded.n_seen, n_demonstrated = n_demonstrated + excluded.n_demonstrated,
        late_checks = late_checks + excluded.late_checks, late_passed = late_passed + excluded.late_passed,
        n_late = n_late + excluded.n_late, recall_micros = recall_micros + excluded.recall_micros,
        n_recall = n_recall + excluded.n_recall;
END;

CREATE TRIGGER concept_states_update AFTER UPDATE ON concept_states
WHEN (NEW.level >= 3) IS NOT (OLD.level >= 3)
  OR NEW.late_checks IS NOT OLD.late_checks OR NEW.late_passed IS NOT OLD.late_passed
  OR NEW.recall_30d IS NOT OLD.recall_30d
BEGIN
    -- user_id and concept are the key: an update never moves a state.
    UPDATE concept_totals SET
        n_demonstrated = n_demonstrated + (NEW.level >= 3) - (OLD.level >= 3),
        late_checks = late_checks + NEW.late_checks - OLD.late_checks,
        late_passed = late_passed + NEW.late_passed - OLD.late_passed,
        n_late = n_late + (NEW.late_checks > 0) - (OLD.late_checks > 0),
        recall_micros = recall_micros
            + coalesce(CAST(round(NEW.recall_30d * 1000000) AS INTEGER), 0)
            - coalesce(CAST(round(OLD.recall_30d * 1000000) AS INTEGER), 0),
        n_recall = n_recall + (NEW.recall_30d IS NOT NULL) - (OLD.recall_30d IS NOT NULL)
    WHERE concept = NEW.concept
      AND EXISTS (SELECT 1 FROM counted_users WHERE id = NEW.user_id)
      AND scope IN (SELECT '' UNION ALL SELECT group_id FROM group_members WHERE user_id = NEW.user_id);
END;

CREATE TRIGGER concept_states_delete AFTER DELETE ON concept_states
WHEN EXISTS (SELECT 1 FROM counted_users WHERE id = OLD.user_id)
BEGIN
    UPDATE concept_totals SET
        n_seen = n_seen - 1, n_demonstrated = n_demonstrated - (OLD.level >= 3),
        late_checks = late_checks - OLD.late_checks, late_passed = late_passed - OLD.late_passed,
        n_late = n_late - (OLD.late_checks > 0),
        recall_micros = recall_micros - coalesce(CAST(round(OLD.recall_30d * 1000000) AS INTEGER), 0),
        n_recall = n_recall - (OLD.recall_30d IS NOT NULL)
    WHERE concept = OLD.concept
      AND scope IN (SELECT '' UNION ALL SELECT group_id FROM group_members WHERE user_id = OLD.user_id);
END;

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
BEGIN
    UPDATE week_totals SET n_demonstrated = n_demonstrated + NEW.demonstrated - OLD.demonstrated
    WHERE week = NEW.week AND concept = NEW.concept
      AND EXISTS (SELECT 1 FROM counted_users WHERE id = NEW.user_id)
      AND scope IN (SELECT '' UNION ALL SELECT group_id FROM group_members WHERE user_id = NEW.user_id);
END;

CREATE TRIGGER concept_weeks_delete AFTER DELETE ON concept_weeks
WHEN EXISTS (SELECT 1 FROM counted_users WHERE id = OLD.user_id)
BEGIN
    UPDATE week_totals SET n_seen = n_seen - 1, n_demonstrated = n_demonstrated - OLD.demonstrated
    WHERE week = OLD.week AND concept = OLD.concept
      AND scope IN (SELECT '' UNION ALL SELECT group_id FROM group_members WHERE user_id = OLD.user_id);
END;

-- An engineer starts or stops being counted, or joins or leaves a team:
-- everything they contribute is added to, or taken from, the scopes
-- concerned. The four bodies differ only in the sign and the scopes; each
-- `counted_*` pair is kept side by side so that they stay alike.

CREATE TABLE counted_changes (
    user_id TEXT NOT NULL,
    scope   TEXT,                               -- NULL: every scope of the user
    sign    INTEGER NOT NULL CHECK (sign IN (-1, 1))
) STRICT;

-- Rows put here are applied at once and removed by this trigger, so the
-- table is always empty between statements: it only gives the sign and
-- the scopes of a change a single place to be written down.
CREATE TRIGGER counted_changes_apply AFTER INSERT ON counted_changes
BEGIN
    INSERT INTO concept_totals
    SELECT sc.scope, s.concept, NEW.sign, NEW.sign * (s.level >= 3), NEW.sign * s.late_checks,
           NEW.sign * s.late_passed, NEW.sign * (s.late_checks > 0),
           NEW.sign * coalesce(CAST(round(s.recall_30d * 1000000) AS INTEGER), 0),
           NEW.sign * (s.recall_30d IS NOT NULL)
    FROM concept_states s,
         (SELECT '' AS scope UNION ALL SELECT group_id FROM group_members WHERE user_id = NEW.user_id) sc
    WHERE s.user_id = NEW.user_id AND (NEW.scope IS NULL OR sc.scope = NEW.scope)
    ON CONFLICT (scope, concept) DO UPDATE SET
        n_seen = n_seen + excluded.n_seen, n_demonstrated = n_demonstrated + excluded.n_demonstrated,
        late_checks = late_checks + excluded.late_checks, late_passed = late_passed + excluded.late_passed,
        n_late = n_late + excluded.n_late, recall_micros = recall_micros + excluded.recall_micros,
        n_recall = n_recall + excluded.n_recall;
    INSERT INTO week_totals
    SELECT sc.scope, w.week, w.concept, NEW.sign, NEW.sign * w.demonstrated
    FROM concept_weeks w,
         (SELECT '' AS scope UNION ALL SELECT group_id FROM group_members WHERE user_id = NEW.user_id) sc
    WHERE w.user_id = NEW.user_id AND (NEW.scope IS NULL OR sc.scope = NEW.scope)
    ON CONFLICT (scope, week, concept) DO UPDATE SET
        n_seen = n_seen + excluded.n_seen, n_demonstrated = n_demonstrated + excluded.n_demonstrated;
    DELETE FROM counted_changes;
END;

-- Activation and deactivation (SCIM, the CLI, sign-in policy).
CREATE TRIGGER users_active AFTER UPDATE OF active ON users
WHEN NEW.active IS NOT OLD.active
 AND NOT EXISTS (SELECT 1 FROM user_privacy p WHERE p.user_id = NEW.id
                 AND (p.opted_out = 1 OR p.deletion_requested_at IS NOT NULL))
BEGIN
    INSERT INTO counted_changes VALUES (NEW.id, NULL, CASE NEW.active WHEN 1 THEN 1 ELSE -1 END);
END;

-- Opt-out and deletion hold: counted before is "active and no objection in
-- OLD", counted after is "active and no objection in NEW".
CREATE TRIGGER user_privacy_insert AFTER INSERT ON user_privacy
WHEN (NEW.opted_out = 1 OR NEW.deletion_requested_at IS NOT NULL)
 AND EXISTS (SELECT 1 FROM users WHERE id = NEW.user_id AND active = 1)
BEGIN
    INSERT INTO counted_changes VALUES (NEW.user_id, NULL, -1);
END;

CREATE TRIGGER user_privacy_update AFTER UPDATE ON user_privacy
WHEN (OLD.opted_out = 0 AND OLD.deletion_requested_at IS NULL)
  IS NOT (NEW.opted_out = 0 AND NEW.deletion_requested_at IS NULL)
 AND EXISTS (SELECT 1 FROM users WHERE id = NEW.user_id AND active = 1)
BEGIN
    INSERT INTO counted_changes
    VALUES (NEW.user_id, NULL, CASE WHEN NEW.opted_out = 0 AND NEW.deletion_requested_at IS NULL THEN 1 ELSE -1 END);
END;

CREATE TRIGGER user_privacy_delete AFTER DELETE ON user_privacy
WHEN (OLD.opted_out = 1 OR OLD.deletion_requested_at IS NOT NULL)
 AND EXISTS (SELECT 1 FROM users WHERE id = OLD.user_id AND active = 1)
BEGIN
    INSERT INTO counted_changes VALUES (OLD.user_id, NULL, 1);
END;

-- Team changes. A member added counts in the team from then on with all
-- they hold; one removed is taken out of it.
CREATE TRIGGER group_members_insert AFTER INSERT ON group_members
WHEN EXISTS (SELECT 1 FROM counted_users WHERE id = NEW.user_id)
BEGIN
    INSERT INTO counted_changes VALUES (NEW.user_id, NEW.group_id, 1);
END;

-- Before the row goes, while it still names the team among the user's
-- scopes.
CREATE TRIGGER group_members_delete BEFORE DELETE ON group_members
WHEN EXISTS (SELECT 1 FROM counted_users WHERE id = OLD.user_id)
BEGIN
    INSERT INTO counted_changes VALUES (OLD.user_id, OLD.group_id, -1);
END;

-- A group or a user removed: their rows go first, through the triggers
-- above (rather than by the foreign keys' cascade, whose order against
-- these triggers SQLite does not promise), then the group's totals.
CREATE TRIGGER groups_delete BEFORE DELETE ON groups
BEGIN
    DELETE FROM group_members WHERE group_id = OLD.id;
    DELETE FROM concept_totals WHERE scope = OLD.id;
    DELETE FROM week_totals WHERE scope = OLD.id;
END;

CREATE TRIGGER users_delete BEFORE DELETE ON users
BEGIN
    DELETE FROM group_members WHERE user_id = OLD.id;
    DELETE FROM concept_states WHERE user_id = OLD.id;
    DELETE FROM concept_weeks WHERE user_id = OLD.id;
END;
