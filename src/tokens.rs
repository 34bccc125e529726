//! API bearer tokens for machine clients: SCIM (identity providers) and MCP
//! (AI clients). A token belongs to one org and identifies it. The secret is
//! shown once at creation; only its SHA-256 is stored (SECURITY.md P5, P12).

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::audit::Context;
use crate::clock::{from_millis, to_millis};
use crate::config::OrgSettings;
use crate::secrets::{self, BearerSecret, SecretHash, SecretKind};
use crate::store::tokens::{self as sql, TokenRow};
use crate::store::{OrgDb, Store, StoreError};
use crate::users::{self, AdminCtx, Role, UserError};

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Scim,
    Mcp,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scim => "scim",
            Self::Mcp => "mcp",
        }
    }

    fn secret_kind(self) -> SecretKind {
        match self {
            Self::Scim => SecretKind::Scim,
            Self::Mcp => SecretKind::Mcp,
        }
    }
}

impl FromStr for TokenKind {
    type Err = TokenError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "scim" => Ok(Self::Scim),
            "mcp" => Ok(Self::Mcp),
            other => Err(TokenError::Invalid(format!(
                "unknown token kind `{other}`: use scim or mcp"
            ))),
        }
    }
}

/// A token as listed: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub id: Uuid,
    pub kind: TokenKind,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl TokenInfo {
    fn from_row(r: TokenRow) -> Result<Self, TokenError> {
        let corrupt = || TokenError::Store(StoreError::Sqlite(rusqlite::Error::InvalidQuery));
        Ok(Self {
            id: Uuid::parse_str(&r.id).map_err(|_| corrupt())?,
            kind: r.kind.parse().map_err(|_| corrupt())?,
            name: r.name,
            created_at: from_millis(r.created_at),
            created_by: r.created_by,
            expires_at: r.expires_at.map(from_millis),
            last_used_at: r.last_used_at.map(from_millis),
            revoked_at: r.revoked_at.map(from_millis),
        })
    }

    /// Whether the token is usable at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{0}")]
    Invalid(String),
    #[error("no token with id {0} in this org")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Random(#[from] secrets::RandomError),
}

impl From<rusqlite::Error> for TokenError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

fn check_name(name: &str) -> Result<(), TokenError> {
    let n = name.chars().count();
    if n == 0 || n > 100 || name.chars().any(char::is_control) {
        return Err(TokenError::Invalid(
            "token name must be 1 to 100 printable characters".into(),
        ));
    }
    Ok(())
}

/// Creates a token and returns it with its secret, the only time the secret
/// exists outside the caller's hands. Only an admin of the org or the
/// operator can: `admin` is the proof. Audited as `token.create`.
///
/// # Errors
/// [`TokenError::Invalid`] for a bad name or an expiry not in the future.
pub fn create(
    org: &OrgDb,
    kind: TokenKind,
    name: &str,
    expires_at: Option<DateTime<Utc>>,
    admin: &AdminCtx,
    now: DateTime<Utc>,
) -> Result<(TokenInfo, BearerSecret), TokenError> {
    let ctx = admin.audit();
    check_name(name)?;
    if expires_at.is_some_and(|e| e <= now) {
        return Err(TokenError::Invalid("expiry must be in the future".into()));
    }
    let secret = secrets::generate(kind.secret_kind())?;
    let id = Uuid::new_v4();
    let row = TokenRow {
        id: id.to_string(),
        kind: kind.as_str().into(),
        name: name.into(),
        created_at: to_millis(now),
        created_by: ctx.actor.clone(),
        expires_at: expires_at.map(to_millis),
        last_used_at: None,
        revoked_at: None,
    };
    let details = json!({ "kind": kind.as_str(), "name": name, "expires_at": expires_at });
    org.db.write(|tx| {
        sql::insert(tx, &row, &secret.hash().0)?;
        ctx.record(tx, "token.create", Some(&row.id), &details, now)?;
        Ok::<_, TokenError>(())
    })?;
    Ok((TokenInfo::from_row(row)?, secret))
}

/// Every token of the org, oldest first.
///
/// # Errors
/// Store errors.
pub fn list(org: &OrgDb) -> Result<Vec<TokenInfo>, TokenError> {
    let rows = org.db.read(|c| sql::list(c).map_err(TokenError::from))?;
    rows.into_iter().map(TokenInfo::from_row).collect()
}

/// Revokes a token at once; `admin` is the proof that the caller may.
/// Audited as `token.revoke`.
///
/// # Errors
/// [`TokenError::NotFound`] for an id not in this org.
pub fn revoke(
    org: &OrgDb,
    id: &str,
    admin: &AdminCtx,
    now: DateTime<Utc>,
) -> Result<TokenInfo, TokenError> {
    let ctx = admin.audit();
    let not_found = || TokenError::NotFound(id.chars().take(64).collect());
    let id = Uuid::parse_str(id).map_err(|_| not_found())?.to_string();
    org.db.write(|tx| {
        let row = sql::by_id(tx, &id)?.ok_or_else(not_found)?;
        let changed = sql::revoke(tx, &id, to_millis(now))?;
        let details = json!({ "name": row.name, "already_revoked": !changed });
        ctx.record(tx, "token.revoke", Some(&id), &details, now)?;
        Ok::<_, TokenError>(())
    })?;
    let row = org
        .db
        .read(|c| sql::by_id(c, &id).map_err(TokenError::from))?
        .ok_or_else(not_found)?;
    TokenInfo::from_row(row)
}

/// Why a presented token was refused. Callers answer all of them with the
/// same 401, so a client cannot tell an unknown token from a revoked one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    Unknown,
    Revoked,
    Expired,
}

/// How often `last_used_at` is refreshed; a write per request would be waste.
const TOUCH_EVERY: Duration = Duration::seconds(60);

/// Finds the live token of `kind` whose secret is `presented`, in any org.
///
/// The lookup is by SHA-256, so timing reveals nothing about the secret;
/// the stored hash is then compared in constant time as well.
///
/// # Errors
/// `Ok(Err(refusal))` for a token that is not accepted; `Err` for store
/// failures.
pub fn authenticate<'s>(
    store: &'s Store,
    kind: TokenKind,
    presented: &str,
    now: DateTime<Utc>,
) -> Result<Result<(&'s OrgDb, TokenInfo), Refusal>, TokenError> {
    if !secrets::well_formed(presented, kind.secret_kind()) {
        return Ok(Err(Refusal::Malformed));
    }
    let hash = SecretHash::of(presented);
    for org in store.orgs() {
        let found = org
            .db
            .read(|c| sql::by_hash(c, &hash.0).map_err(TokenError::from))?;
        let Some((row, stored)) = found else { continue };
        let stored = SecretHash::from_slice(&stored).ok_or(TokenError::Store(
            StoreError::Sqlite(rusqlite::Error::InvalidQuery),
        ))?;
        if !stored.verify(presented) {
            continue;
        }
        let info = TokenInfo::from_row(row)?;
        if info.kind != kind {
            return Ok(Err(Refusal::Unknown));
        }
        if info.revoked_at.is_some() {
            return Ok(Err(Refusal::Revoked));
        }
        if !info.is_live(now) {
            return Ok(Err(Refusal::Expired));
        }
        if info.last_used_at.is_none_or(|t| now - t >= TOUCH_EVERY) {
            let id = info.id.to_string();
            org.db
                .write(|tx| sql::touch(tx, &id, to_millis(now)).map_err(TokenError::from))?;
        }
        return Ok(Ok((org, info)));
    }
    Ok(Err(Refusal::Unknown))
}

/// Whether the token was made on the admin page by someone who is no
/// longer an active admin of the org (demoted, dropped from the admin
/// group, deactivated or deleted). Tokens the operator made are not tied
/// to anyone's role.
///
/// # Errors
/// Store errors.
fn maker_lost_admin(
    org: &OrgDb,
    settings: &OrgSettings,
    t: &TokenInfo,
) -> Result<bool, TokenError> {
    let Some(maker) = t.created_by.strip_prefix("user:") else {
        return Ok(false);
    };
    match users::get(org, maker) {
        Ok(u) => Ok(!u.active || u.role(settings) != Role::Admin),
        Err(UserError::NotFound) => Ok(true),
        Err(UserError::Store(e)) => Err(TokenError::Store(e)),
        Err(e) => Err(TokenError::Invalid(e.to_string())),
    }
}

/// Revokes every live SCIM token whose maker has lost the admin role (see
/// [`maker_lost_admin`]), each audited as `token.revoke` with the reason
/// `creator_lost_admin`; `ctx` is whoever's change took the role away.
/// Called after every change that can take the role away (SCIM user and
/// group changes, the admin page, the CLI) and at start-up (the org's
/// `admin_groups` may have changed); [`check_maker`] covers any other path
/// when the token is next used. Returns the ids revoked.
///
/// # Errors
/// Store errors.
pub fn revoke_for_lost_admins(
    org: &OrgDb,
    settings: &OrgSettings,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, TokenError> {
    let mut revoked = Vec::new();
    for t in list(org)? {
        if t.kind == TokenKind::Scim && t.is_live(now) && check_maker(org, settings, &t, ctx, now)?
        {
            revoked.push(t.id);
        }
    }
    Ok(revoked)
}

/// Revokes `t` if its maker has lost the admin role; true when it did (or
/// the token was revoked already).
///
/// # Errors
/// Store errors.
pub fn check_maker(
    org: &OrgDb,
    settings: &OrgSettings,
    t: &TokenInfo,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<bool, TokenError> {
    if !maker_lost_admin(org, settings, t)? {
        return Ok(false);
    }
    let id = t.id.to_string();
    let details =
        json!({ "name": t.name, "reason": "creator_lost_admin", "created_by": t.created_by });
    org.db.write(|tx| {
        if sql::revoke(tx, &id, to_millis(now))? {
            ctx.record(tx, "token.revoke", Some(&id), &details, now)?;
        }
        Ok::<_, TokenError>(())
    })?;
    Ok(true)
}

/// Parses an expiry given on the command line: a duration (`90d`, `12h`,
/// `2w`) from `now`, or a date (`2027-06-30`, end of that day UTC).
///
/// # Errors
/// [`TokenError::Invalid`] naming the accepted forms.
pub fn parse_expiry(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, TokenError> {
    let bad = || {
        TokenError::Invalid(format!(
            "`{s}` is not an expiry: use a duration like 90d, 12h or 2w, or a date like 2027-06-30"
        ))
    };
    if let Ok(date) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return date
            .and_hms_opt(23, 59, 59)
            .map(|t| t.and_utc())
            .ok_or_else(bad);
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = num.parse().map_err(|_| bad())?;
    let d = match unit {
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        "w" => Duration::try_weeks(n),
        _ => None,
    }
    .filter(|d| *d > Duration::zero())
    .ok_or_else(bad)?;
    now.checked_add_signed(d).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn expiry_forms() {
        let now = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("valid");
        assert_eq!(
            parse_expiry("90d", now).expect("90d"),
            now + Duration::days(90)
        );
        assert_eq!(
            parse_expiry("12h", now).expect("12h"),
            now + Duration::hours(12)
        );
        assert_eq!(
            parse_expiry("2027-06-30", now).expect("date"),
            Utc.with_ymd_and_hms(2027, 6, 30, 23, 59, 59)
                .single()
                .expect("valid")
        );
        for bad in [
            "",
            "d",
            "90",
            "90y",
            "-1d",
            "0d",
            "2027-13-01",
            "9999999999999w",
        ] {
            assert!(parse_expiry(bad, now).is_err(), "{bad}");
        }
    }
}
