//! Browser sessions (SECURITY.md P7): server-side rows keyed by the SHA-256
//! of a 256-bit id carried in one cookie, `__Host-aiwl_session`. Idle and
//! absolute timeouts end them; the id is replaced at sign-in and then
//! periodically while in use (the previous id keeps working for a short
//! grace period, for requests already in flight); signing out deletes the
//! row, so a copied cookie is worthless afterwards. Re-authentication
//! replaces the id with no grace period. Before sign-in, the same cookie
//! may hold a pre-sign-in value instead (`web::signin`), never a session.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::audit::Context;
use crate::clock::{from_millis, to_millis};
use crate::config::SsoSettings;
use crate::secrets::{self, BearerSecret, SecretHash, SecretKind};
use crate::store::sessions::{self as sql, SessionRow};
use crate::store::users as user_sql;
use crate::store::{OrgDb, Store, StoreError};

/// The one cookie the appliance sets (a session id, or during a sign-in a
/// pre-sign-in value).
pub const COOKIE: &str = "__Host-aiwl_session";

/// How long a replaced id keeps working.
pub const ROTATION_GRACE: Duration = Duration::seconds(30);

/// `last_seen_at` is written at most this often.
const TOUCH_EVERY: Duration = Duration::seconds(30);

/// A live session, as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id_hash: Vec<u8>,
    pub user_id: String,
    pub csrf: String,
    pub auth_time: DateTime<Utc>,
    pub amr: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Session {
    fn from_row(r: SessionRow) -> Self {
        Self {
            id_hash: r.id_hash,
            user_id: r.user_id,
            csrf: r.csrf,
            auth_time: from_millis(r.auth_time),
            amr: serde_json::from_str(&r.amr).unwrap_or_default(),
            created_at: from_millis(r.created_at),
            last_seen_at: from_millis(r.last_seen_at),
            ip: r.ip,
            user_agent: r.user_agent,
        }
    }

    /// A short, stable, non-secret handle for listing and revoking.
    pub fn handle(&self) -> String {
        hex::encode(&self.id_hash[..8])
    }
}

/// Creates a session for `user_id` and returns its secret id (for the
/// cookie, never stored). Audited as `session.create`.
///
/// # Errors
/// Store errors, or a failing random source.
pub fn create(
    org: &OrgDb,
    user_id: &str,
    auth_time: DateTime<Utc>,
    amr: &[String],
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<BearerSecret, StoreError> {
    let secret = secrets::generate(SecretKind::Session)?;
    let csrf = secrets::generate(SecretKind::Session)
        .map(|s| s.expose()[SecretKind::Session.prefix().len()..].to_string())?;
    let row = SessionRow {
        id_hash: secret.hash().0.to_vec(),
        prev_hash: None,
        prev_valid_until: None,
        user_id: user_id.to_string(),
        csrf,
        auth_time: to_millis(auth_time),
        amr: serde_json::to_string(amr).unwrap_or_else(|_| "[]".into()),
        created_at: to_millis(now),
        last_seen_at: to_millis(now),
        rotated_at: to_millis(now),
        ip: ctx.ip.map(|i| i.to_string()),
        user_agent: ctx
            .user_agent
            .as_deref()
            .map(|u| u.chars().take(512).collect()),
    };
    org.db.write(|tx| {
        sql::insert(tx, &row)?;
        ctx.record(
            tx,
            "session.create",
            Some(user_id),
            &json!({ "amr": amr }),
            now,
        )?;
        Ok::<_, StoreError>(())
    })?;
    Ok(secret)
}

/// A presented session cookie that is valid, with a replacement id when it
/// was rotated on this request (send it back as the new cookie).
#[derive(Debug)]
pub struct Authenticated<'s> {
    pub org: &'s OrgDb,
    pub session: Session,
    pub rotated: Option<BearerSecret>,
}

/// Checks a presented session id: known (current, or previous within its
/// grace period), not idle or past its absolute lifetime, and its user
/// active. Rotates the id when it is due.
///
/// # Errors
/// Store errors; an invalid session is `Ok(None)`.
pub fn authenticate<'s>(
    store: &'s Store,
    presented: &str,
    sso: &SsoSettings,
    now: DateTime<Utc>,
) -> Result<Option<Authenticated<'s>>, StoreError> {
    if !secrets::well_formed(presented, SecretKind::Session) {
        return Ok(None);
    }
    let hash = SecretHash::of(presented);
    let now_ms = to_millis(now);
    for org in store.orgs() {
        let Some((row, via_previous)) = org
            .db
            .read(|c| sql::by_hash(c, &hash.0, now_ms).map_err(StoreError::from))?
        else {
            continue;
        };
        let idle = Duration::from_std(sso.idle_timeout).unwrap_or(Duration::MAX);
        let absolute = Duration::from_std(sso.absolute_timeout).unwrap_or(Duration::MAX);
        let expired = from_millis(row.last_seen_at) + idle <= now
            || from_millis(row.created_at) + absolute <= now;
        let user_active = org
            .db
            .read(|c| user_sql::by_id(c, &row.user_id).map_err(StoreError::from))?
            .is_some_and(|u| u.active);
        if expired || !user_active {
            org.db
                .write(|tx| sql::delete(tx, &row.id_hash).map_err(StoreError::from))?;
            return Ok(None);
        }
        let rotate_after = Duration::from_std(sso.rotate_after).unwrap_or(Duration::MAX);
        let mut rotated = None;
        if !via_previous && from_millis(row.rotated_at) + rotate_after <= now {
            let fresh = secrets::generate(SecretKind::Session)?;
            let grace = to_millis(now + ROTATION_GRACE);
            let changed = org.db.write(|tx| {
                sql::rotate(tx, &row.id_hash, &fresh.hash().0, now_ms, grace)
                    .map_err(StoreError::from)
            })?;
            if changed {
                rotated = Some(fresh);
            }
        } else if !via_previous && from_millis(row.last_seen_at) + TOUCH_EVERY <= now {
            org.db
                .write(|tx| sql::touch(tx, &row.id_hash, now_ms).map_err(StoreError::from))?;
        }
        let mut session = Session::from_row(row);
        if let Some(f) = &rotated {
            session.id_hash = f.hash().0.to_vec();
        }
        return Ok(Some(Authenticated {
            org,
            session,
            rotated,
        }));
    }
    Ok(None)
}

/// Ends one session (sign-out). Audited as `session.end`.
///
/// # Errors
/// Store errors.
pub fn end(
    org: &OrgDb,
    session: &Session,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    org.db.write(|tx| {
        sql::delete(tx, &session.id_hash)?;
        ctx.record(tx, "session.end", Some(&session.user_id), &json!({}), now)?;
        Ok(())
    })
}

/// Ends every session of the user (sign out everywhere). Audited.
///
/// # Errors
/// Store errors.
pub fn end_all(
    org: &OrgDb,
    user_id: &str,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    org.db.write(|tx| {
        let n = sql::delete_for_user(tx, user_id)?;
        ctx.record(
            tx,
            "session.end_all",
            Some(user_id),
            &json!({ "sessions_ended": n }),
            now,
        )?;
        Ok(n)
    })
}

/// The user's sessions, most recently used first.
///
/// # Errors
/// Store errors.
pub fn list(org: &OrgDb, user_id: &str) -> Result<Vec<Session>, StoreError> {
    let rows = org
        .db
        .read(|c| sql::for_user(c, user_id).map_err(StoreError::from))?;
    Ok(rows.into_iter().map(Session::from_row).collect())
}

/// Ends the user's session with this handle (from the account page).
/// Returns whether one was ended. Audited.
///
/// # Errors
/// Store errors.
pub fn end_by_handle(
    org: &OrgDb,
    user_id: &str,
    handle: &str,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let Some(target) = list(org, user_id)?
        .into_iter()
        .find(|s| s.handle() == handle)
    else {
        return Ok(false);
    };
    end(org, &target, ctx, now)?;
    Ok(true)
}

/// Records a fresh sign-in at the IdP on an existing session (re-auth)
/// under a new session id, returned for the cookie: the old id (and any id
/// it replaced) stops working at once, so a copy taken before the
/// re-authentication never carries its freshness. `None` when the session
/// ended meanwhile. Audited as `session.reauth`.
///
/// # Errors
/// Store errors, or a failing random source.
pub fn reauthenticate(
    org: &OrgDb,
    session: &Session,
    auth_time: DateTime<Utc>,
    amr: &[String],
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<Option<BearerSecret>, StoreError> {
    let fresh = secrets::generate(SecretKind::Session).map_err(|e| StoreError::Io {
        path: "random source".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let amr_json = serde_json::to_string(amr).unwrap_or_else(|_| "[]".into());
    let changed = org.db.write(|tx| {
        let changed = sql::reauthenticate(
            tx,
            &session.id_hash,
            &fresh.hash().0,
            to_millis(auth_time),
            &amr_json,
            to_millis(now),
        )?;
        if changed {
            ctx.record(
                tx,
                "session.reauth",
                Some(&session.user_id),
                &json!({ "amr": amr }),
                now,
            )?;
        }
        Ok::<_, StoreError>(changed)
    })?;
    Ok(changed.then_some(fresh))
}

/// Deletes expired sessions in every org (daily sweeper).
///
/// # Errors
/// Store errors.
pub fn sweep(store: &Store, sso: &SsoSettings, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let idle = to_millis(now - Duration::from_std(sso.idle_timeout).unwrap_or(Duration::zero()));
    let absolute =
        to_millis(now - Duration::from_std(sso.absolute_timeout).unwrap_or(Duration::zero()));
    let mut n = 0;
    for org in store.orgs() {
        n += org
            .db
            .write(|tx| sql::delete_expired(tx, idle, absolute).map_err(StoreError::from))?;
    }
    Ok(n)
}
