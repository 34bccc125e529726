-- Aggregate releases (docs/privacy.md): what an admin is shown of the org
-- and its teams is computed once per scope and period (ISO week), with
-- noise, and kept here, so that asking again in the same period gives the
-- same figures whatever changed in between (membership, deactivation,
-- opt-out, pushes) and averaging repeated answers gains nothing.

-- The privacy parameters of each period, fixed by its first release: a
-- change of configuration takes effect from the next period on.
CREATE TABLE privacy_periods (
    period       INTEGER PRIMARY KEY,          -- the Monday of the ISO week, days since 1970-01-01
    min_cohort   INTEGER NOT NULL,
    epsilon_milli INTEGER NOT NULL,            -- per released figure, in thousandths
    budget       INTEGER NOT NULL,             -- releases containing one engineer per period
    fixed_at     INTEGER NOT NULL              -- ms since epoch
) STRICT;

-- One release of one scope ('' for the org, else groups.id) in a period.
-- A scope whose counted engineers are exactly those of a scope already
-- released in the period is served that release (alias_of), never a
-- second draw of noise.
CREATE TABLE releases (
    period      INTEGER NOT NULL,
    scope       TEXT NOT NULL,
    n_members   INTEGER NOT NULL,
    alias_of    TEXT,                           -- the scope whose release this is
    figures     TEXT NOT NULL,                  -- JSON: the released (noisy) figures per concept
    released_at INTEGER NOT NULL,
    PRIMARY KEY (period, scope)
) STRICT, WITHOUT ROWID;

-- Who was counted in each release that is not an alias: what the rule of
-- minimum difference between scopes and the per-engineer budget check.
-- Kept only for the current and previous period (older rows are removed
-- when a period's first release is made).
CREATE TABLE release_members (
    period  INTEGER NOT NULL,
    scope   TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (period, scope, user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX release_members_by_user ON release_members (period, user_id);

-- Closed weeks of a scope's trend, released once and then kept, so a
-- later period shows the same cells (recomputing them after an opt-out or
-- deactivation would show exactly what that engineer did that week).
CREATE TABLE release_weeks (
    scope       TEXT NOT NULL,
    week        INTEGER NOT NULL,
    cells       TEXT NOT NULL,                  -- JSON: concept -> [n_seen, n_demonstrated] or null
    released_at INTEGER NOT NULL,
    PRIMARY KEY (scope, week)
) STRICT, WITHOUT ROWID;

-- The counted membership of each team as last seen, and since which
-- period it has been so: a team is released only once its membership has
-- been the same since an earlier period.
CREATE TABLE scope_sightings (
    scope        TEXT PRIMARY KEY,
    members_hash BLOB NOT NULL,                 -- SHA-256 of the sorted counted member ids
    since_period INTEGER NOT NULL
) STRICT;
