-- API bearer tokens (SCIM, MCP). Only the SHA-256 of the secret is kept
-- (SECURITY.md P5); the plain value is shown once at creation.
-- Times are Unix milliseconds, UTC.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,            -- UUID v4
    kind         TEXT NOT NULL CHECK (kind IN ('scim', 'mcp')),
    name         TEXT NOT NULL,
    secret_hash  BLOB NOT NULL UNIQUE CHECK (length(secret_hash) = 32),
    created_at   INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    revoked_at   INTEGER
) STRICT;

-- Every privileged action (SECURITY.md P20): who did what to what, from
-- where, when, under which request, with a details JSON object. Rows older
-- than audit.retention_days are deleted by the nightly sweeper.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT,
    ip         TEXT,
    user_agent TEXT,
    request_id TEXT,
    details    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details))
) STRICT;
CREATE INDEX audit_log_at ON audit_log (at);
