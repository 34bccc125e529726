-- Devices and sync (SECURITY.md P1, P11, P19). Times are Unix ms, UTC.

-- An engineer's paired device (their teaching kernel). It holds one
-- rotating refresh secret; only hashes are kept. The previous secret is
-- remembered so that its reuse (a stolen copy) is detected and the device
-- revoked.
CREATE TABLE devices (
    id                TEXT PRIMARY KEY,             -- UUID v4
    user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    refresh_hash      BLOB UNIQUE CHECK (refresh_hash IS NULL OR length(refresh_hash) = 32),
    prev_refresh_hash BLOB UNIQUE,
    created_at        INTEGER NOT NULL,
    last_seen_at      INTEGER,
    revoked_at        INTEGER,
    revoked_reason    TEXT
) STRICT;
CREATE INDEX devices_user ON devices (user_id);

-- Single-use pairing codes, valid 30 days. device_id records which device
-- the code created, so a reused code revokes that device.
CREATE TABLE pairing_codes (
    code_hash  BLOB PRIMARY KEY CHECK (length(code_hash) = 32),
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    device_id  TEXT
) STRICT;

-- Concept-level facts, append-only. `seq` is the arrival order and the
-- sync cursor; (user_id, id) is the idempotency key. Nothing else about
-- the engineer's work is ever stored: no code, paths or prompt text.
CREATE TABLE deltas (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL,                      -- client UUID
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id   TEXT,
    concept     TEXT NOT NULL,
    transition  TEXT NOT NULL CHECK (transition IN ('seen', 'explained', 'check_passed', 'check_failed', 'demonstrated')),
    at          INTEGER NOT NULL,
    grade       INTEGER CHECK (grade IS NULL OR grade BETWEEN 1 AND 4),
    received_at INTEGER NOT NULL,
    UNIQUE (user_id, id)
) STRICT;
CREATE INDEX deltas_user_seq ON deltas (user_id, seq);
CREATE INDEX deltas_user_concept ON deltas (user_id, concept, at);

-- Each engineer's choices about their data.
CREATE TABLE user_privacy (
    user_id               TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    opted_out             INTEGER NOT NULL DEFAULT 0 CHECK (opted_out IN (0, 1)),
    deletion_requested_at INTEGER
) STRICT;
