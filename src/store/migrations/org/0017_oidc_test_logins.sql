-- Test sign-ins in progress (the admin page's "test sign-in"): like
-- oidc_logins, the state (hashed), nonce and PKCE verifier of one
-- authorization request, consumed once by the callback, expiring quickly;
-- and the admin who started it, the only one whose session may finish it.
-- A test sign-in never creates a session or a user. Unix ms, UTC.
CREATE TABLE oidc_test_logins (
    state_hash    BLOB PRIMARY KEY CHECK (length(state_hash) = 32),
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    admin_id      TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT;
