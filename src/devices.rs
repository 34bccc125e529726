//! Devices (SECURITY.md P11): an engineer's teaching kernel pairs once with
//! a single-use code (30 days), then holds a rotating refresh secret and
//! gets access tokens that live 15 minutes. Reusing a used pairing code or
//! a rotated-away refresh secret means a copy was taken: the device is
//! revoked and the event audited.

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
struct Claims {
    o: String,
    d: String,
    u: String,
    e: i64,
}

fn mac(key: &[u8; 32], data: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(data);
    m
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
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
    let signed = format!("{ACCESS_PREFIX}{body}");
    let tag = URL_SAFE_NO_PAD.encode(mac(key, signed.as_bytes()).finalize().into_bytes());
    format!("{signed}.{tag}")
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
    let Some((signed, tag)) = token.rsplit_once('.') else {
        return Ok(None);
    };
    let Some(body) = signed.strip_prefix(ACCESS_PREFIX) else {
        return Ok(None);
    };
    let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
        return Ok(None);
    };
    if mac(store.access_token_key(), signed.as_bytes())
        .verify_slice(&tag)
        .is_err()
    {
        return Ok(None);
    }
    let Some(claims) = URL_SAFE_NO_PAD
        .decode(body)
        .ok()
        .and_then(|b| serde_json::from_slice::<Claims>(&b).ok())
    else {
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
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(DeviceError::Invalid(
            "device_name must be 1 to 100 printable characters".into(),
        ));
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
        let refresh = random(SecretKind::DeviceRefresh)?;
        let device = DeviceRow {
            id: uuid::Uuid::new_v4().to_string(),
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
            sql::insert_device(tx, &device, &refresh.hash().0)?;
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
                refresh_token: refresh.expose().to_string(),
                expires_in: ACCESS_TTL.num_seconds(),
            },
        ));
    }
    Err(DeviceError::InvalidCode)
}

/// Rotates a device's refresh secret and issues a new access token. A
/// rotated-away secret revokes the device (`device.refresh_reuse`).
///
/// # Errors
/// [`DeviceError`] for every refusal.
pub fn refresh(
    store: &Store,
    presented: &str,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<Grant, DeviceError> {
    if !secrets::well_formed(presented, SecretKind::DeviceRefresh) {
        return Err(DeviceError::InvalidRefresh);
    }
    let hash = SecretHash::of(presented);
    for org in store.orgs() {
        let Some((device, previous)) = org
            .db
            .read(|c| sql::by_refresh(c, &hash.0).map_err(DeviceError::from))?
        else {
            continue;
        };
        if previous {
            org.db.write(|tx| {
                sql::revoke(tx, &device.id, "refresh token reused", to_millis(now))?;
                ctx.record(
                    tx,
                    "device.refresh_reuse",
                    Some(&device.id),
                    &json!({ "user": device.user_id }),
                    now,
                )?;
                Ok::<_, DeviceError>(())
            })?;
            return Err(DeviceError::RefreshReused);
        }
        if device.revoked_at.is_some() {
            return Err(DeviceError::Revoked);
        }
        let active = org
            .db
            .read(|c| user_sql::by_id(c, &device.user_id).map_err(DeviceError::from))?
            .is_some_and(|u| u.active);
        if !active {
            return Err(DeviceError::Inactive);
        }
        let fresh = random(SecretKind::DeviceRefresh)?;
        let rotated = org.db.write(|tx| {
            sql::rotate_refresh(tx, &device.id, &hash.0, &fresh.hash().0, to_millis(now))
                .map_err(DeviceError::from)
        })?;
        if !rotated {
            return Err(DeviceError::InvalidRefresh);
        }
        return Ok(Grant {
            access_token: access_token(
                store.access_token_key(),
                org.slug.as_str(),
                &device.id,
                &device.user_id,
                now,
            ),
            device_id: device.id,
            refresh_token: fresh.expose().to_string(),
            expires_in: ACCESS_TTL.num_seconds(),
        });
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
