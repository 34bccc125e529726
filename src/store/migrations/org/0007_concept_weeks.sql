-- Weekly activity per engineer and concept: the source of the weekly trend
-- in org aggregates (see crate::graph::trend). One row per engineer,
-- concept and ISO week in which the engineer had at least one fact about
-- the concept; demonstrated is 1 when one of those facts was
-- `demonstrated` or `check_passed`. week is the week's Monday (UTC) as
-- days since 1970-01-01. Maintained on every push from the newly accepted
-- deltas (a duplicate changes nothing), so a trend reads a few weeks of
-- these small rows and never the deltas; the counted engineers are chosen
-- at read time, so opting out removes someone from past weeks at once.
CREATE TABLE concept_weeks (
    week         INTEGER NOT NULL,
    concept      TEXT NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    demonstrated INTEGER NOT NULL CHECK (demonstrated IN (0, 1)),
    PRIMARY KEY (week, concept, user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX concept_weeks_user ON concept_weeks (user_id);

-- The weeks of the deltas already held. 1970-01-01 was a Thursday, so a
-- day's weekday counted from Monday is (day + 3) % 7.
INSERT INTO concept_weeks (week, concept, user_id, demonstrated)
SELECT at / 86400000 - (at / 86400000 + 3) % 7, concept, user_id,
       max(transition IN ('demonstrated', 'check_passed'))
FROM deltas
GROUP BY 1, 2, 3;
