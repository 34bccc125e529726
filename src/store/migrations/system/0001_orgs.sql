-- Organisations whose database this appliance has created. The row is
-- written when orgs/<slug>.db is first created, so a listed org whose file
-- is missing is reported as data loss instead of being recreated empty.
-- Times are Unix milliseconds, UTC.
CREATE TABLE orgs (
    slug       TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
