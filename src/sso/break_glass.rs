//! Break-glass sign-in: when the IdP is down, the operator mints a
//! single-use link for one user, valid 15 minutes; opening it shows a
//! confirmation (so link scanners cannot use it up), and confirming signs
//! the user in. Minting and use are both audited.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::audit::Context;
use crate::clock::to_millis;
use crate::secrets::{self, BearerSecret, SecretHash, SecretKind};
use crate::store::sessions as sql;
use crate::store::{OrgDb, StoreError};
use crate::users::{self, AdminCtx, UserError};

/// How long a link works.
pub const TTL: Duration = Duration::minutes(15);

/// Mints a link secret for `user` (id or user name). The caller prints the
/// URL `<public_url>/o/<org>/break-glass/<secret>` once.
///
/// # Errors
/// [`UserError::NotFound`], or an inactive user as [`UserError::Invalid`].
pub fn mint(
    org: &OrgDb,
    admin: &AdminCtx,
    user: &str,
    now: DateTime<Utc>,
) -> Result<BearerSecret, UserError> {
    let user = users::find(org, user)?;
    if !user.active {
        return Err(UserError::Invalid(format!(
            "{} is deactivated; reactivate them first",
            user.user_name
        )));
    }
    let secret =
        secrets::generate(SecretKind::BreakGlass).map_err(|e| UserError::Invalid(e.to_string()))?;
    let hash = secret.hash();
    org.db.write(|tx| {
        sql::insert_break_glass(
            tx,
            &hash.0,
            &user.id,
            &admin.audit().actor,
            to_millis(now),
            to_millis(now + TTL),
        )?;
        admin.audit().record(
            tx,
            "break_glass.create",
            Some(&user.id),
            &json!({ "user_name": user.user_name, "expires_in_minutes": TTL.num_minutes() }),
            now,
        )?;
        Ok::<_, UserError>(())
    })?;
    Ok(secret)
}

/// Whether `presented` is an unused, unexpired link of this org.
///
/// # Errors
/// Store errors.
pub fn is_valid(org: &OrgDb, presented: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
    if !secrets::well_formed(presented, SecretKind::BreakGlass) {
        return Ok(false);
    }
    let hash = SecretHash::of(presented);
    org.db
        .read(|c| sql::break_glass_valid(c, &hash.0, to_millis(now)).map_err(StoreError::from))
}

/// Uses the link: marks it used and starts a session for its user, whose
/// `auth_time` is now and `amr` is `["break-glass"]`. `None` when the link
/// is unknown, used, expired, or its user deactivated.
///
/// # Errors
/// Store errors.
pub fn redeem(
    org: &OrgDb,
    presented: &str,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<Option<BearerSecret>, StoreError> {
    if !secrets::well_formed(presented, SecretKind::BreakGlass) {
        return Ok(None);
    }
    let hash = SecretHash::of(presented);
    let Some(user_id) = org
        .db
        .write(|tx| sql::use_break_glass(tx, &hash.0, to_millis(now)).map_err(StoreError::from))?
    else {
        return Ok(None);
    };
    let active = users::get(org, &user_id).is_ok_and(|u| u.active);
    let ctx = Context {
        actor: format!("user:{user_id}"),
        ..ctx.clone()
    };
    org.db.write(|tx| {
        ctx.record(
            tx,
            "break_glass.use",
            Some(&user_id),
            &json!({ "admitted": active }),
            now,
        )
    })?;
    if !active {
        return Ok(None);
    }
    crate::sessions::create(org, &user_id, now, &["break-glass".to_string()], &ctx, now).map(Some)
}
