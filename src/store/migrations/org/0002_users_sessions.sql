-- People and sign-in (SECURITY.md P7, P9, P18). Times are Unix ms, UTC.

-- A person in this org. They sign in with (oidc_issuer, oidc_subject);
-- user_name is their login name (SCIM userName, or the IdP's
-- preferred_username). A deactivated user cannot sign in and has no
-- sessions. admin_granted is the admin role given directly (operator CLI
-- or another admin); the role also comes from membership of a group named
-- in the org's admin_groups.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,                 -- UUID v4
    oidc_issuer   TEXT,
    oidc_subject  TEXT,
    user_name     TEXT NOT NULL,
    display_name  TEXT NOT NULL DEFAULT '',
    emails        TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(emails)),
    external_id   TEXT,
    active        INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    admin_granted INTEGER NOT NULL DEFAULT 0 CHECK (admin_granted IN (0, 1)),
    provisioned_by TEXT NOT NULL CHECK (provisioned_by IN ('jit', 'scim', 'operator')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (oidc_issuer, oidc_subject)
) STRICT;
CREATE UNIQUE INDEX users_user_name ON users (user_name COLLATE NOCASE);

-- Groups, from the IdP's groups claim at sign-in or from SCIM.
CREATE TABLE groups (
    id           TEXT PRIMARY KEY,                  -- UUID v4
    display_name TEXT NOT NULL,
    external_id  TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX groups_display_name ON groups (display_name COLLATE NOCASE);

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
) STRICT;
CREATE INDEX group_members_user ON group_members (user_id);

-- Server-side sessions. Only the SHA-256 of the session id is kept. When
-- the id rotates, the previous hash stays valid until prev_valid_until so
-- requests already in flight do not fail. auth_time is when the IdP last
-- authenticated the person (re-authentication for admin actions).
CREATE TABLE sessions (
    id_hash          BLOB PRIMARY KEY CHECK (length(id_hash) = 32),
    prev_hash        BLOB UNIQUE,
    prev_valid_until INTEGER,
    user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf             TEXT NOT NULL,
    auth_time        INTEGER NOT NULL,
    amr              TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(amr)),
    created_at       INTEGER NOT NULL,
    last_seen_at     INTEGER NOT NULL,
    rotated_at       INTEGER NOT NULL,
    ip               TEXT,
    user_agent       TEXT
) STRICT;
CREATE INDEX sessions_user ON sessions (user_id);

-- Sign-ins in progress: the state (hashed), nonce and PKCE verifier of one
-- authorization request, consumed once by the callback, expiring quickly.
CREATE TABLE oidc_logins (
    state_hash    BLOB PRIMARY KEY CHECK (length(state_hash) = 32),
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    return_to     TEXT NOT NULL,
    reauth        INTEGER NOT NULL CHECK (reauth IN (0, 1)),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT;

-- Single-use break-glass sign-in links, minted by the operator CLI.
CREATE TABLE break_glass (
    secret_hash BLOB PRIMARY KEY CHECK (length(secret_hash) = 32),
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) STRICT;
