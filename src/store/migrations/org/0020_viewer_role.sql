-- The viewer role (engineering managers, L&D: the org dashboard, nothing
-- to administer). Like the admin role it comes from the org's
-- `viewer_groups` or is granted directly by an admin; a direct grant is
-- one row here, removed with the user.
CREATE TABLE IF NOT EXISTS role_grants (
    user_id    TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role = 'viewer'),
    granted_at INTEGER NOT NULL                  -- ms since epoch
) STRICT;

-- Engineers with a device that synced in the 30 days before a release was
-- made (the dashboard's headline, with noise added when it is read); kept
-- with the release so that every read of the period shows the same figure.
-- NULL for releases made before this column existed.
ALTER TABLE releases ADD COLUMN n_syncing INTEGER;
