-- The single-use setup secret of a new installation (SECURITY.md P5): at
-- most one row, only the SHA-256 of the secret, valid until expires_at or
-- until the installation's first admin exists (then the row is deleted).
-- Renewed at each start of `serve` while no admin exists. Unix ms, UTC.
CREATE TABLE setup_secret (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    secret_hash BLOB NOT NULL CHECK (length(secret_hash) = 32),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;
