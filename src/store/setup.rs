//! The SQL of first run: the setup secret in `system.db`, whether an org
//! has an admin, test sign-ins in progress, and the last test sign-in.

use rusqlite::{Connection, OptionalExtension, params};

/// The setup secret's hash and expiry (Unix ms), when one is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupRow {
    pub secret_hash: Vec<u8>,
    pub created_at: i64,
    pub expires_at: i64,
}

const PUT_SECRET: &str = "INSERT INTO setup_secret (id, secret_hash, created_at, expires_at)
     VALUES (1, ?1, ?2, ?3)
     ON CONFLICT (id) DO UPDATE SET secret_hash = excluded.secret_hash,
         created_at = excluded.created_at, expires_at = excluded.expires_at";

/// Stores (replacing any previous one) the setup secret's hash.
///
/// # Errors
/// SQLite errors.
pub fn put_secret(
    conn: &Connection,
    hash: &[u8],
    now_ms: i64,
    expires_ms: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(PUT_SECRET)?
        .execute(params![hash, now_ms, expires_ms])?;
    Ok(())
}

const GET_SECRET: &str =
    "SELECT secret_hash, created_at, expires_at FROM setup_secret WHERE id = 1";

/// The stored setup secret, expired or not.
///
/// # Errors
/// SQLite errors.
pub fn get_secret(conn: &Connection) -> rusqlite::Result<Option<SetupRow>> {
    conn.prepare_cached(GET_SECRET)?
        .query_row([], |r| {
            Ok(SetupRow {
                secret_hash: r.get(0)?,
                created_at: r.get(1)?,
                expires_at: r.get(2)?,
            })
        })
        .optional()
}

const TAKE_SECRET: &str =
    "DELETE FROM setup_secret WHERE id = 1 AND secret_hash = ?1 AND expires_at > ?2 RETURNING id";

/// Consumes the setup secret with this hash if it is unexpired: true when
/// it was (and is now gone), so it works once.
///
/// # Errors
/// SQLite errors.
pub fn take_secret(conn: &Connection, hash: &[u8], now_ms: i64) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached(TAKE_SECRET)?
        .query_row(params![hash, now_ms], |_| Ok(()))
        .optional()?
        .is_some())
}

const DELETE_SECRET: &str = "DELETE FROM setup_secret";

/// Forgets the setup secret (an admin exists).
///
/// # Errors
/// SQLite errors.
pub fn delete_secret(conn: &Connection) -> rusqlite::Result<bool> {
    Ok(conn.prepare_cached(DELETE_SECRET)?.execute([])? > 0)
}

const ANY_ADMIN: &str = "SELECT EXISTS (
         SELECT 1 FROM users u WHERE u.active = 1 AND u.deleted_at IS NULL AND (
             u.admin_granted = 1
             OR EXISTS (SELECT 1 FROM group_members m JOIN groups g ON g.id = m.group_id
                        WHERE m.user_id = u.id
                          AND lower(g.display_name) IN (SELECT lower(value) FROM json_each(?1)))))";

/// Whether the org has an active admin: directly granted, or a member of
/// one of `admin_groups` (compared without case, as roles are).
///
/// # Errors
/// SQLite errors.
pub fn any_admin(conn: &Connection, admin_groups: &[String]) -> rusqlite::Result<bool> {
    let groups = serde_json::to_string(admin_groups).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(ANY_ADMIN)?
        .query_row([groups], |r| r.get(0))
}

/// A test sign-in in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestLoginRow {
    pub state_hash: Vec<u8>,
    pub nonce: String,
    pub pkce_verifier: String,
    pub admin_id: String,
    pub created_at: i64,
    pub expires_at: i64,
}

const INSERT_TEST_LOGIN: &str = "INSERT INTO oidc_test_logins
     (state_hash, nonce, pkce_verifier, admin_id, created_at, expires_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// Records a started test sign-in.
///
/// # Errors
/// SQLite errors.
pub fn insert_test_login(conn: &Connection, l: &TestLoginRow) -> rusqlite::Result<()> {
    conn.prepare_cached(INSERT_TEST_LOGIN)?.execute(params![
        l.state_hash,
        l.nonce,
        l.pkce_verifier,
        l.admin_id,
        l.created_at,
        l.expires_at
    ])?;
    Ok(())
}

const EXPIRE_TEST_LOGINS: &str = "DELETE FROM oidc_test_logins WHERE expires_at <= ?1";
const TAKE_TEST_LOGIN: &str = "DELETE FROM oidc_test_logins WHERE state_hash = ?1
     RETURNING state_hash, nonce, pkce_verifier, admin_id, created_at, expires_at";

/// Consumes the unexpired test sign-in with this state hash (and forgets
/// expired ones).
///
/// # Errors
/// SQLite errors.
pub fn take_test_login(
    conn: &Connection,
    state_hash: &[u8],
    now_ms: i64,
) -> rusqlite::Result<Option<TestLoginRow>> {
    conn.prepare_cached(EXPIRE_TEST_LOGINS)?.execute([now_ms])?;
    conn.prepare_cached(TAKE_TEST_LOGIN)?
        .query_row([state_hash], |r| {
            Ok(TestLoginRow {
                state_hash: r.get(0)?,
                nonce: r.get(1)?,
                pkce_verifier: r.get(2)?,
                admin_id: r.get(3)?,
                created_at: r.get(4)?,
                expires_at: r.get(5)?,
            })
        })
        .optional()
}

const IS_TEST_LOGIN: &str = "SELECT EXISTS (SELECT 1 FROM oidc_test_logins WHERE state_hash = ?1)";

/// Whether a callback's state belongs to a test sign-in (without using it).
///
/// # Errors
/// SQLite errors.
pub fn is_test_login(conn: &Connection, state_hash: &[u8]) -> rusqlite::Result<bool> {
    conn.prepare_cached(IS_TEST_LOGIN)?
        .query_row([state_hash], |r| r.get(0))
}

const LAST_TEST: &str = "SELECT at, details FROM audit_log WHERE action = 'sso.test_sign_in'
     ORDER BY at DESC, id DESC LIMIT 1";

/// The time and details JSON of the last audited test sign-in.
///
/// # Errors
/// SQLite errors.
pub fn last_test(conn: &Connection) -> rusqlite::Result<Option<(i64, String)>> {
    conn.prepare_cached(LAST_TEST)?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}
