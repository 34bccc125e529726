//! Devices (SECURITY.md P11): an engineer's teaching kernel pairs once with
//! a single-use code (30 days), then holds a rotating refresh secret and
//! gets access tokens that live 15 minutes. Reusing a used pairing code or
//! a rotated-away refresh secret means a copy was taken: the device is
//! revoked and the event audited.
//!
//! Refresh tokens form a family per device, numbered by generation: each
//! carries its org, device and generation (and 256 random bits) under the
//! appliance's HMAC, and the device row keeps only the hash of the current
//! token and its generation. Any token of an earlier generation, however
//! many rotations ago, is a superseded secret of that device: presenting it
//! revokes the device (`device.refresh_reuse`). A token whose MAC does not
//! verify says nothing about any device and is merely invalid, so nobody can
//! revoke a device by naming it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;

use crate::audit::Context;
use crate::clock::{from_millis, to_millis};
use crate::secrets::{self, BearerSecret, SecretHash, SecretKind};
use crate::store::devices::{self as sql, DeviceRow};
use crate::store::users as user_sql;
use crate::store::{OrgDb, Store, StoreError};

pub const PAIRING_TTL: Duration = Duration::days(30);
pub const ACCESS_TTL: Duration = Duration::minutes(15);
const ACCESS_PREFIX: &str = "aiwl_at_";

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("the pairing code is not valid")]
    InvalidCode,
    #[error("the pairing code was already used; the device it paired has been revoked")]
    CodeReused,
    #[error("the pairing code has expired; create a new one on your account page")]
    CodeExpired,
    #[error("the refresh token is not valid")]
    InvalidRefresh,
    #[error("the refresh token was already used; the device has been revoked, pair it again")]
    RefreshReused,
    #[error("this device has been revoked; pair it again")]
    Revoked,
    #[error("the account is deactivated")]
    Inactive,
    #[error("{0}")]
    Invalid(String),
    #[error("no such device of yours; see GET /api/v1/me/devices for their ids")]
    NotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for DeviceError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

fn random(kind: SecretKind) -> Result<BearerSecret, DeviceError> {
    secrets::generate(kind).map_err(|e| DeviceError::Invalid(e.to_string()))
}

/// A device as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_reason: Option<String>,
}

impl From<DeviceRow> for Device {
    fn from(d: DeviceRow) -> Self {
        Self {
            id: d.id,
            name: d.name,
            created_at: from_millis(d.created_at),
            last_seen_at: d.last_seen_at.map(from_millis),
            revoked_at: d.revoked_at.map(from_millis),
            revoked_reason: d.revoked_reason,
        }
    }
}

/// Tokens handed to a device at pairing and at each refresh.
#[derive(Debug, Serialize)]
pub struct Grant {
    pub device_id: String,
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds the access token lives.
    pub expires_in: i64,
}

/// Creates a single-use pairing code for `user_id`, valid 30 days, shown
/// once. Audited as `pairing_code.create`.
///
/// # Errors
/// Store errors.
pub fn create_pairing_code(
    org: &OrgDb,
    user_id: &str,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<(BearerSecret, DateTime<Utc>), DeviceError> {
    let code = random(SecretKind::Pairing)?;
    let expires = now + PAIRING_TTL;
    org.db.write(|tx| {
        sql::insert_code(
            tx,
            &code.hash().0,
            user_id,
            to_millis(now),
            to_millis(expires),
        )?;
        ctx.record(
            tx,
            "pairing_code.create",
            Some(user_id),
            &json!({ "expires_at": expires }),
            now,
        )?;
        Ok::<_, DeviceError>(())
    })?;
    Ok((code, expires))
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Claims {
    o: String,
    d: String,
    u: String,
    e: i64,
}

/// What a refresh token says about itself, under the MAC.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RefreshClaims {
    /// Org slug.
    o: String,
    /// Device id.
    d: String,
    /// Generation: 0 at pairing, one more at each rotation.
    g: i64,
    /// 256 random bits, so a token is a secret even to one who knows the rest.
    n: String,
}

/// Longest token [`open`] looks at; real ones are well under half of it.
const MAX_TOKEN_LEN: usize = 1024;

fn mac(key: &[u8; 32], data: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(data);
    m
}

/// `<prefix><base64url(JSON claims)>.<base64url(HMAC-SHA256)>`, the MAC
/// over everything before the dot. Access and refresh tokens have distinct
/// prefixes, so one can never be taken for the other.
fn sign(key: &[u8; 32], prefix: &str, claims: &impl Serialize) -> String {
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signed = format!("{prefix}{body}");
    let tag = URL_SAFE_NO_PAD.encode(mac(key, signed.as_bytes()).finalize().into_bytes());
    format!("{signed}.{tag}")
}

/// The claims of a token made by [`sign`] with `key` and `prefix`; `None`
/// unless the MAC verifies (in constant time) over exactly these bytes.
fn open<C: serde::de::DeserializeOwned>(key: &[u8; 32], prefix: &str, token: &str) -> Option<C> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let (signed, tag) = token.rsplit_once('.')?;
    let body = signed.strip_prefix(prefix)?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    mac(key, signed.as_bytes()).verify_slice(&tag).ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()
}

/// A signed access token for a device, valid [`ACCESS_TTL`].
pub fn access_token(
    key: &[u8; 32],
    org: &str,
    device_id: &str,
    user_id: &str,
    now: DateTime<Utc>,
) -> String {
    let claims = Claims {
        o: org.into(),
        d: device_id.into(),
        u: user_id.into(),
        e: (now + ACCESS_TTL).timestamp(),
    };
    sign(key, ACCESS_PREFIX, &claims)
}

/// A refresh token of `generation` for a device, signed with `key` (the
/// store's token key; tests pass another to forge one).
///
/// # Errors
/// [`DeviceError::Invalid`] when the random source fails.
pub fn refresh_token(
    key: &[u8; 32],
    org: &str,
    device_id: &str,
    generation: i64,
) -> Result<String, DeviceError> {
    let nonce = random(SecretKind::DeviceRefresh)?;
    let claims = RefreshClaims {
        o: org.into(),
        d: device_id.into(),
        g: generation,
        n: nonce.expose()[SecretKind::DeviceRefresh.prefix().len()..].to_string(),
    };
    Ok(sign(key, SecretKind::DeviceRefresh.prefix(), &claims))
}

/// Who a valid access token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCaller {
    pub org: String,
    pub device_id: String,
    pub user_id: String,
}

/// Checks an access token: signature (constant time), expiry, and that the
/// device is not revoked and its user active (so revocation is immediate).
///
/// # Errors
/// Store errors; an invalid token is `Ok(None)`.
pub fn verify_access(
    store: &Store,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<DeviceCaller>, StoreError> {
    let Some(claims) = open::<Claims>(store.access_token_key(), ACCESS_PREFIX, token) else {
        return Ok(None);
    };
    if claims.e <= now.timestamp() {
        return Ok(None);
    }
    let Ok(org) = store.org(&claims.o) else {
        return Ok(None);
    };
    let live = org.db.read(|c| {
        let device = sql::by_id(c, &claims.d)?;
        let user = user_sql::by_id(c, &claims.u)?;
        Ok::<_, StoreError>(
            device.is_some_and(|d| d.revoked_at.is_none() && d.user_id == claims.u)
                && user.is_some_and(|u| u.active),
        )
    })?;
    Ok(live.then_some(DeviceCaller {
        org: claims.o,
        device_id: claims.d,
        user_id: claims.u,
    }))
}

fn check_name(name: &str) -> Result<String, DeviceError> {
    valid_name(name, "device_name")
}

/// `name` trimmed, when it is 1 to 100 printable characters; otherwise an
/// error naming `field`.
fn valid_name(name: &str, field: &str) -> Result<String, DeviceError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(DeviceError::Invalid(format!(
            "{field} must be 1 to 100 printable characters (no line breaks or tabs)"
        )));
    }
    Ok(name.to_string())
}

/// Exchanges a pairing code for a device and its first tokens. Audited as
/// `device.pair`; a reused code revokes the device it created
/// (`pairing_code.reuse`).
///
/// # Errors
/// [`DeviceError`] for every refusal.
pub fn pair<'s>(
    store: &'s Store,
    code: &str,
    device_name: &str,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<(&'s OrgDb, Grant), DeviceError> {
    let name = check_name(device_name)?;
    if !secrets::well_formed(code, SecretKind::Pairing) {
        return Err(DeviceError::InvalidCode);
    }
    let hash = SecretHash::of(code);
    for org in store.orgs() {
        let Some(sql::CodeRow {
            user_id,
            expires_at: expires,
            used_at: used,
            device_id: created_device,
        }) = org
            .db
            .read(|c| sql::code(c, &hash.0).map_err(DeviceError::from))?
        else {
            continue;
        };
        if used.is_some() {
            org.db.write(|tx| {
                if let Some(d) = &created_device {
                    sql::revoke(tx, d, "pairing code reused", to_millis(now))?;
                }
                ctx.record(
                    tx,
                    "pairing_code.reuse",
                    Some(&user_id),
                    &json!({ "revoked_device": created_device }),
                    now,
                )?;
                Ok::<_, DeviceError>(())
            })?;
            return Err(DeviceError::CodeReused);
        }
        if from_millis(expires) <= now {
            return Err(DeviceError::CodeExpired);
        }
        let active = org
            .db
            .read(|c| user_sql::by_id(c, &user_id).map_err(DeviceError::from))?
            .is_some_and(|u| u.active);
        if !active {
            return Err(DeviceError::Inactive);
        }
        let device_id = uuid::Uuid::new_v4().to_string();
        let refresh = refresh_token(store.access_token_key(), org.slug.as_str(), &device_id, 0)?;
        let device = DeviceRow {
            id: device_id,
            user_id: user_id.clone(),
            name: name.clone(),
            created_at: to_millis(now),
            last_seen_at: None,
            revoked_at: None,
            revoked_reason: None,
        };
        org.db.write(|tx| {
            if !sql::use_code(tx, &hash.0, &device.id, to_millis(now))? {
                return Err(DeviceError::CodeReused);
            }
            sql::insert_device(tx, &device, &SecretHash::of(&refresh).0)?;
            let ctx = Context {
                actor: format!("user:{user_id}"),
                ..ctx.clone()
            };
            ctx.record(
                tx,
                "device.pair",
                Some(&device.id),
                &json!({ "name": name }),
                now,
            )?;
            Ok(())
        })?;
        let access_token = access_token(
            store.access_token_key(),
            org.slug.as_str(),
            &device.id,
            &user_id,
            now,
        );
        return Ok((
            org,
            Grant {
                device_id: device.id,
                access_token,
                refresh_token: refresh,
                expires_in: ACCESS_TTL.num_seconds(),
            },
        ));
    }
    Err(DeviceError::InvalidCode)
}

/// The org and device a presented refresh token belongs to, if it is one
/// of ours (a numbered token whose MAC verifies, or a bare secret some
/// device holds or held): what the device's own rate budget is keyed by.
///
/// # Errors
/// Store errors.
pub fn device_of(store: &Store, presented: &str) -> Result<Option<(String, String)>, StoreError> {
    if secrets::well_formed(presented, SecretKind::DeviceRefresh) {
        let hash = SecretHash::of(presented);
        for org in store.orgs() {
            if let Some((d, _)) = org
                .db
                .read(|c| Ok::<_, StoreError>(sql::by_refresh(c, &hash.0)?))?
            {
                return Ok(Some((org.slug.to_string(), d.id)));
            }
        }
        return Ok(None);
    }
    Ok(open::<RefreshClaims>(
        store.access_token_key(),
        SecretKind::DeviceRefresh.prefix(),
        presented,
    )
    .map(|c| (c.o, c.d)))
}

/// What a refresh attempt came to, decided inside one transaction.
enum Refreshed {
    /// Rotated: the device's owner and the next token.
    Rotated {
        user_id: String,
        token: String,
    },
    /// A superseded token: the device is now revoked.
    Reused,
    Revoked,
    Inactive,
    Invalid,
}

/// Rotates a device's refresh token and issues a new access token. A token
/// of any earlier generation revokes the device (`device.refresh_reuse`).
///
/// # Errors
/// [`DeviceError`] for every refusal.
pub fn refresh(
    store: &Store,
    presented: &str,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<Grant, DeviceError> {
    if secrets::well_formed(presented, SecretKind::DeviceRefresh) {
        return refresh_unnumbered(store, presented, ctx, now);
    }
    let key = store.access_token_key();
    let claims = open::<RefreshClaims>(key, SecretKind::DeviceRefresh.prefix(), presented)
        .ok_or(DeviceError::InvalidRefresh)?;
    let org = store
        .org(&claims.o)
        .map_err(|_| DeviceError::InvalidRefresh)?;
    let hash = SecretHash::of(presented);
    let outcome = org.db.write(|tx| {
        let (Some(device), Some((generation, current))) = (
            sql::by_id(tx, &claims.d)?,
            sql::refresh_state(tx, &claims.d)?,
        ) else {
            return Ok(Refreshed::Invalid);
        };
        if device.revoked_at.is_some() {
            return Ok(Refreshed::Revoked);
        }
        if claims.g < generation {
            sql::revoke(tx, &device.id, "refresh token reused", to_millis(now))?;
            ctx.record(
                tx,
                "device.refresh_reuse",
                Some(&device.id),
                &json!({
                    "user": device.user_id,
                    "presented_generation": claims.g,
                    "current_generation": generation,
                }),
                now,
            )?;
            return Ok(Refreshed::Reused);
        }
        let current = current.as_deref().and_then(SecretHash::from_slice);
        if claims.g != generation || !current.is_some_and(|c| c.verify(presented)) {
            return Ok(Refreshed::Invalid);
        }
        next_generation(tx, org, key, &device, generation, &hash, now)
    })?;
    grant(store, org, &claims.d, outcome, now)
}

/// Rotates `device` from `generation` (whose token hashes to `hash`) to
/// the next, if its owner is active.
fn next_generation(
    tx: &rusqlite::Connection,
    org: &OrgDb,
    key: &[u8; 32],
    device: &DeviceRow,
    generation: i64,
    hash: &SecretHash,
    now: DateTime<Utc>,
) -> Result<Refreshed, DeviceError> {
    if !user_sql::by_id(tx, &device.user_id)?.is_some_and(|u| u.active) {
        return Ok(Refreshed::Inactive);
    }
    let token = refresh_token(key, org.slug.as_str(), &device.id, generation + 1)?;
    let fresh = SecretHash::of(&token);
    if !sql::rotate_generation(
        tx,
        &device.id,
        generation,
        &hash.0,
        &fresh.0,
        to_millis(now),
    )? {
        return Ok(Refreshed::Invalid);
    }
    Ok(Refreshed::Rotated {
        user_id: device.user_id.clone(),
        token,
    })
}

/// The answer to a refresh attempt.
fn grant(
    store: &Store,
    org: &OrgDb,
    device_id: &str,
    outcome: Refreshed,
    now: DateTime<Utc>,
) -> Result<Grant, DeviceError> {
    match outcome {
        Refreshed::Rotated { user_id, token } => Ok(Grant {
            access_token: access_token(
                store.access_token_key(),
                org.slug.as_str(),
                device_id,
                &user_id,
                now,
            ),
            device_id: device_id.to_string(),
            refresh_token: token,
            expires_in: ACCESS_TTL.num_seconds(),
        }),
        Refreshed::Reused => Err(DeviceError::RefreshReused),
        Refreshed::Revoked => Err(DeviceError::Revoked),
        Refreshed::Inactive => Err(DeviceError::Inactive),
        Refreshed::Invalid => Err(DeviceError::InvalidRefresh),
    }
}

/// A refresh secret of the form issued before generations (a bare random
/// secret): found by its hash; the current one moves the device to the
/// numbered form, the one before it revokes the device.
fn refresh_unnumbered(
    store: &Store,
    presented: &str,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<Grant, DeviceError> {
    let hash = SecretHash::of(presented);
    let key = store.access_token_key();
    for org in store.orgs() {
        let Some((device, previous)) = org
            .db
            .read(|c| sql::by_refresh(c, &hash.0).map_err(DeviceError::from))?
        else {
            continue;
        };
        let outcome = org.db.write(|tx| {
            if previous {
                sql::revoke(tx, &device.id, "refresh token reused", to_millis(now))?;
                ctx.record(
                    tx,
                    "device.refresh_reuse",
                    Some(&device.id),
                    &json!({ "user": device.user_id }),
                    now,
                )?;
                return Ok(Refreshed::Reused);
            }
            if device.revoked_at.is_some() {
                return Ok(Refreshed::Revoked);
            }
            if !user_sql::by_id(tx, &device.user_id)?.is_some_and(|u| u.active) {
                return Ok(Refreshed::Inactive);
            }
            let Some((generation, _)) = sql::refresh_state(tx, &device.id)? else {
                return Ok(Refreshed::Invalid);
            };
            let token = refresh_token(key, org.slug.as_str(), &device.id, generation + 1)?;
            let fresh = SecretHash::of(&token);
            if !sql::rotate_refresh(tx, &device.id, &hash.0, &fresh.0, to_millis(now))? {
                return Ok(Refreshed::Invalid);
            }
            Ok::<_, DeviceError>(Refreshed::Rotated {
                user_id: device.user_id.clone(),
                token,
            })
        })?;
        return grant(store, org, &device.id, outcome, now);
    }
    Err(DeviceError::InvalidRefresh)
}

/// The user's devices.
///
/// # Errors
/// Store errors.
pub fn list(org: &OrgDb, user_id: &str) -> Result<Vec<Device>, DeviceError> {
    let rows = org
        .db
        .read(|c| sql::for_user(c, user_id).map_err(DeviceError::from))?;
    Ok(rows.into_iter().map(Device::from).collect())
}

/// Revokes one of the user's own devices. Audited as `device.revoke`.
///
/// # Errors
/// [`DeviceError::Invalid`] when the device is not the user's.
pub fn revoke(
    org: &OrgDb,
    user_id: &str,
    device_id: &str,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<(), DeviceError> {
    org.db.write(|tx| {
        let d = sql::by_id(tx, device_id)?
            .filter(|d| d.user_id == user_id)
            .ok_or_else(|| DeviceError::Invalid("no such device".into()))?;
        sql::revoke(tx, &d.id, "revoked by its owner", to_millis(now))?;
        ctx.record(
            tx,
            "device.revoke",
            Some(&d.id),
            &json!({ "name": d.name }),
            now,
        )?;
        Ok(())
    })
}

/// Renames one of the user's own devices (what its owner calls it; the
/// kernel keeps its own name until it pairs again). Audited as
/// `device.rename` with the old and new names.
///
/// # Errors
/// [`DeviceError::Invalid`] for a name that is not 1 to 100 printable
/// characters; [`DeviceError::NotFound`] when the device is not the user's.
pub fn rename(
    org: &OrgDb,
    user_id: &str,
    device_id: &str,
    name: &str,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<Device, DeviceError> {
    let name = valid_name(name, "name")?;
    org.db.write(|tx| {
        let d = sql::by_id(tx, device_id)?
            .filter(|d| d.user_id == user_id)
            .ok_or(DeviceError::NotFound)?;
        sql::rename(tx, &d.id, user_id, &name)?;
        ctx.record(
            tx,
            "device.rename",
            Some(&d.id),
            &json!({ "from": d.name, "to": name }),
            now,
        )?;
        Ok(Device {
            name,
            ..Device::from(d)
        })
    })
}

/// Revokes a device of the member `user_id` for an admin (from the
/// member's page). Audited as `device.revoke` with `by: admin` and the
/// device's owner.
///
/// # Errors
/// [`DeviceError::NotFound`] when the device is not that member's.
pub fn revoke_as_admin(
    org: &OrgDb,
    admin: &crate::users::AdminCtx,
    user_id: &str,
    device_id: &str,
    now: DateTime<Utc>,
) -> Result<(), DeviceError> {
    org.db.write(|tx| {
        let d = sql::by_id(tx, device_id)?
            .filter(|d| d.user_id == user_id)
            .ok_or(DeviceError::NotFound)?;
        sql::revoke(tx, &d.id, "revoked by an administrator", to_millis(now))?;
        admin.audit().record(
            tx,
            "device.revoke",
            Some(&d.id),
            &json!({ "name": d.name, "by": "admin", "user": user_id }),
            now,
        )?;
        Ok(())
    })
}
