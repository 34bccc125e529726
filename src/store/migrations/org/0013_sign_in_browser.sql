-- Each sign-in in progress is bound to the browser that started it
-- (SECURITY.md P7, login CSRF): browser_hash is the SHA-256 of a secret
-- only that browser presents at the callback. Rows live ten minutes, so
-- the table is made again rather than altered: a sign-in in progress
-- during the upgrade is started again.
DROP TABLE oidc_logins;
CREATE TABLE oidc_logins (
    state_hash    BLOB PRIMARY KEY CHECK (length(state_hash) = 32),
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    return_to     TEXT NOT NULL,
    reauth        INTEGER NOT NULL CHECK (reauth IN (0, 1)),
    browser_hash  BLOB NOT NULL CHECK (length(browser_hash) = 32),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT;
