//! Who an OIDC sign-in is: the rules that turn a verified identity into a
//! user of the org, or refuse it. `jit` orgs create users on first sign-in
//! (from allowed email domains); `scim_only` orgs admit only users their
//! identity provider provisioned over SCIM and left active.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Email, User, UserError, load};
use crate::audit::Context;
use crate::clock::to_millis;
use crate::config::{OrgSettings, Provisioning};
use crate::store::OrgDb;
use crate::store::users::{self as sql, UserRow};

/// What the identity provider asserted, after the ID token was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub user_name: String,
    pub display_name: String,
    pub email: Option<String>,
    pub email_verified: bool,
    /// `None` when the token carried no groups claim.
    pub groups: Option<Vec<String>>,
}

/// Why a verified identity may not sign in. Shown to the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Deactivated,
    NotProvisioned,
    DomainNotAllowed(String),
    EmailUnverified,
    NameConflict(String),
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Deactivated => "deactivated",
            Self::NotProvisioned => "not_provisioned",
            Self::DomainNotAllowed(_) => "domain_not_allowed",
            Self::EmailUnverified => "email_unverified",
            Self::NameConflict(_) => "name_conflict",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::Deactivated => "Your account in this organisation is deactivated. Ask your administrator to reactivate it.".into(),
            Self::NotProvisioned => "Your account has not been set up for this organisation yet. Ask your administrator to assign you the aiworklab application in your identity provider.".into(),
            Self::DomainNotAllowed(d) => format!("Accounts from {d} may not sign in to this organisation. Sign in with your work account."),
            Self::EmailUnverified => "Your identity provider has not verified your email address, so this organisation cannot admit you. Verify it there and try again.".into(),
            Self::NameConflict(n) => format!("Another account already uses the name {n}. Ask your administrator to resolve the conflict."),
        }
    }
}

fn domain_of(email: &str) -> Option<String> {
    email.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase())
}

fn domain_allowed(settings: &OrgSettings, email: Option<&str>) -> Result<(), Refusal> {
    if settings.allowed_email_domains.is_empty() {
        return Ok(());
    }
    let d = email.and_then(domain_of).unwrap_or_default();
    if settings.allowed_email_domains.contains(&d) {
        Ok(())
    } else {
        Err(Refusal::DomainNotAllowed(if d.is_empty() {
            "accounts without an email".into()
        } else {
            d
        }))
    }
}

/// Resolves `id` to a user of `org`, creating or linking one when policy
/// allows, and refreshes profile and groups from the token. Audited.
///
/// # Errors
/// `Ok(Err(refusal))` when policy refuses; `Err` for store failures.
pub fn resolve(
    org: &OrgDb,
    settings: &OrgSettings,
    id: &Identity,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<Result<User, Refusal>, UserError> {
    org.db.write(|tx| resolve_in(tx, settings, id, ctx, now))
}

/// What a sign-in would do, found by [`preview`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    /// The user as they would be after the sign-in (profile and groups
    /// refreshed from the token).
    pub user: User,
    /// `existing` (signed in before), `linked` (an account made by SCIM or
    /// the operator, not yet signed in, with this user name) or `created`
    /// (a new account, `jit`).
    pub account: &'static str,
}

/// What [`resolve`] would do with `id`, without doing it: the very same
/// rules run in a transaction that is rolled back, so no user, group,
/// link or audit row is kept (the test sign-in of the admin checklist).
///
/// # Errors
/// `Ok(Err(refusal))` when policy would refuse; `Err` for store failures.
pub fn preview(
    org: &OrgDb,
    settings: &OrgSettings,
    id: &Identity,
    now: DateTime<Utc>,
) -> Result<Result<Preview, Refusal>, UserError> {
    org.db.with_writer(|conn| {
        let tx = conn.transaction()?;
        let account = if sql::by_identity(&tx, &id.issuer, &id.subject)?.is_some() {
            "existing"
        } else if sql::by_user_name(&tx, &id.user_name)?.is_some() {
            "linked"
        } else {
            "created"
        };
        let out = resolve_in(&tx, settings, id, &Context::system(), now);
        tx.rollback()?;
        Ok(out?.map(|user| Preview { user, account }))
    })
}

/// The rules of [`resolve`], on a transaction the caller commits or rolls back.
fn resolve_in(
    tx: &rusqlite::Connection,
    settings: &OrgSettings,
    id: &Identity,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<Result<User, Refusal>, UserError> {
    let existing = match sql::by_identity(tx, &id.issuer, &id.subject)? {
        Some(u) => Some(u),
        None => match sql::by_user_name(tx, &id.user_name)? {
            // Link an account created by SCIM or the operator that has
            // not signed in yet; never take over another identity.
            Some(u) if u.oidc_subject.is_none() => {
                ctx.record(
                    tx,
                    "user.link",
                    Some(&u.id),
                    &json!({ "issuer": id.issuer }),
                    now,
                )?;
                Some(u)
            }
            Some(_) => return Ok(Err(Refusal::NameConflict(id.user_name.clone()))),
            None => None,
        },
    };
    let mut row = match existing {
        Some(row) => row,
        None => {
            if settings.provisioning == Provisioning::ScimOnly {
                return Ok(Err(Refusal::NotProvisioned));
            }
            if !id.email_verified && !settings.allowed_email_domains.is_empty() {
                return Ok(Err(Refusal::EmailUnverified));
            }
            if let Err(r) = domain_allowed(settings, id.email.as_deref()) {
                return Ok(Err(r));
            }
            let row = UserRow {
                id: uuid::Uuid::new_v4().to_string(),
                oidc_issuer: Some(id.issuer.clone()),
                oidc_subject: Some(id.subject.clone()),
                user_name: id.user_name.clone(),
                display_name: id.display_name.clone(),
                emails: "[]".into(),
                external_id: None,
                active: true,
                admin_granted: false,
                provisioned_by: "jit".into(),
                created_at: to_millis(now),
                updated_at: to_millis(now),
            };
            sql::insert(tx, &row)?;
            ctx.record(
                tx,
                "user.jit_create",
                Some(&row.id),
                &json!({ "user_name": row.user_name }),
                now,
            )?;
            row
        }
    };
    if settings.provisioning == Provisioning::ScimOnly && row.provisioned_by != "scim" {
        return Ok(Err(Refusal::NotProvisioned));
    }
    if !row.active {
        return Ok(Err(Refusal::Deactivated));
    }
    if row.provisioned_by == "jit"
        && let Err(r) = domain_allowed(settings, id.email.as_deref())
    {
        return Ok(Err(r));
    }
    row.oidc_issuer = Some(id.issuer.clone());
    row.oidc_subject = Some(id.subject.clone());
    // SCIM owns the profile and groups of the users it provisions.
    if row.provisioned_by != "scim" {
        if !id.display_name.is_empty() {
            row.display_name = id.display_name.clone();
        }
        if let Some(e) = &id.email {
            let emails = vec![Email {
                value: e.clone(),
                kind: Some("work".into()),
                primary: true,
            }];
            row.emails = serde_json::to_string(&emails).unwrap_or_else(|_| "[]".into());
        }
        if let Some(groups) = &id.groups {
            let mut ids = Vec::new();
            for g in groups.iter().filter(|g| !g.trim().is_empty()).take(500) {
                ids.push(sql::ensure_group(
                    tx,
                    &uuid::Uuid::new_v4().to_string(),
                    g.trim(),
                    to_millis(now),
                )?);
            }
            sql::set_memberships(tx, &row.id, &ids)?;
        }
    }
    row.updated_at = to_millis(now);
    sql::update(tx, &row)?;
    Ok(Ok(load(tx, row)?))
}
