//! Who an OIDC sign-in is: the rules that turn a verified identity into a
//! user of the org, or refuse it. `jit` orgs create users on first sign-in
//! (from allowed email domains); `scim_only` orgs admit only users their
//! identity provider provisioned over SCIM and left active.
//!
//! An account that exists (made by SCIM or the operator) but has no
//! identity yet is linked to a first sign-in only by the org's contract
//! (`oidc.link_by`): a verified email in an allowed domain, or the SCIM
//! `externalId` / `userName` the IdP is configured to send. Never by a
//! matching name alone, and never onto an account that holds the admin
//! role: that takes the operator (`aiworklab user link`, [`super::link`]).

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Email, Role, User, UserError, load};
use crate::audit::Context;
use crate::clock::to_millis;
use crate::config::{LinkBy, OrgSettings, Provisioning};
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
    /// The value of the org's `link_claim`, compared with SCIM `externalId`
    /// when the org links by it.
    pub link_value: Option<String>,
}

/// Why a verified identity may not sign in. Shown to the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Deactivated,
    NotProvisioned,
    DomainNotAllowed(String),
    EmailUnverified,
    NameConflict(String),
    /// The sign-in would link to an account holding the admin role; the
    /// operator links it (`aiworklab user link`).
    AdminLink {
        user_name: String,
        subject: String,
    },
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Deactivated => "deactivated",
            Self::NotProvisioned => "not_provisioned",
            Self::DomainNotAllowed(_) => "domain_not_allowed",
            Self::EmailUnverified => "email_unverified",
            Self::NameConflict(_) => "name_conflict",
            Self::AdminLink { .. } => "admin_link_needs_operator",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::Deactivated => "Your account in this organisation is deactivated. Ask your administrator to reactivate it.".into(),
            Self::NotProvisioned => "Your account has not been set up for this organisation yet. Ask your administrator to assign you the aiworklab application in your identity provider.".into(),
            Self::DomainNotAllowed(d) => format!("Accounts from {d} may not sign in to this organisation. Sign in with your work account."),
            Self::EmailUnverified => "Your identity provider has not verified your email address, so this organisation cannot admit you. Verify it there and try again.".into(),
            Self::NameConflict(n) => format!("Another account already uses the name {n}. Ask your administrator to resolve the conflict."),
            Self::AdminLink { user_name, subject } => format!("The account {user_name} is an administrator's, so a first sign-in is never linked to it automatically. Ask your operator to confirm it is you and run: aiworklab user link --org <org> --user {user_name} --subject {subject}"),
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

/// The unlinked account `id` may take over under the org's contract, if
/// exactly one fits.
fn link_candidate(
    tx: &rusqlite::Connection,
    settings: &OrgSettings,
    id: &Identity,
) -> rusqlite::Result<Option<UserRow>> {
    let by = settings.oidc.as_ref().map_or(LinkBy::None, |o| o.link_by);
    let found = match by {
        LinkBy::Email => {
            let Some(email) = id.email.as_deref().filter(|_| id.email_verified) else {
                return Ok(None);
            };
            // Only in a domain the org lists: with no list, no domain is
            // the org's to vouch for.
            let listed =
                domain_of(email).is_some_and(|d| settings.allowed_email_domains.contains(&d));
            if !listed {
                return Ok(None);
            }
            sql::unlinked_by_email(tx, email)?
        }
        LinkBy::ExternalId => match id.link_value.as_deref() {
            Some(v) if !v.is_empty() => sql::unlinked_by_external_id(tx, v)?,
            _ => return Ok(None),
        },
        LinkBy::UserName => sql::by_user_name(tx, &id.user_name)?
            .filter(|u| u.oidc_subject.is_none() && u.provisioned_by == "scim")
            .into_iter()
            .collect(),
        LinkBy::None => Vec::new(),
    };
    Ok(match <[UserRow; 1]>::try_from(found) {
        Ok([one]) => Some(one),
        Err(_) => None,
    })
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
    /// the operator, not yet signed in, that the org's `link_by` contract
    /// gives this identity) or `created` (a new account, `jit`).
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
        } else if link_candidate(&tx, settings, id)?.is_some() {
            "linked"
        } else {
            "created"
        };
        let out = resolve_in(&tx, settings, id, &Context::system(), now);
        tx.rollback()?;
        Ok(out?.map(|user| Preview { user, account }))
    })
}

/// The rules of [`resolve`], on a transaction the caller commits or rolls
/// back.
fn resolve_in(
    tx: &rusqlite::Connection,
    settings: &OrgSettings,
    id: &Identity,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<Result<User, Refusal>, UserError> {
    let existing = match sql::by_identity(tx, &id.issuer, &id.subject)? {
        Some(u) => Some(u),
        None => match link_candidate(tx, settings, id)? {
            Some(u) => {
                if load(tx, u.clone())?.role(settings) == Role::Admin {
                    return Ok(Err(Refusal::AdminLink {
                        user_name: u.user_name,
                        subject: id.subject.clone(),
                    }));
                }
                let by = settings.oidc.as_ref().map_or(LinkBy::None, |o| o.link_by);
                ctx.record(
                    tx,
                    "user.link",
                    Some(&u.id),
                    &json!({ "issuer": id.issuer, "by": format!("{by:?}") }),
                    now,
                )?;
                Some(u)
            }
            // A name alone never links: the account is someone else's
            // until the contract or the operator says otherwise.
            None => match sql::by_user_name(tx, &id.user_name)? {
                Some(_) => return Ok(Err(Refusal::NameConflict(id.user_name.clone()))),
                None => None,
            },
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
    // The role before this sign-in's groups: a change is audited below.
    let before = load(tx, row.clone())?.role(settings);
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
    let user = load(tx, row)?;
    let after = user.role(settings);
    if after != before {
        // Roles from `admin_groups` / `viewer_groups` follow the groups the
        // IdP sends; each change a sign-in makes is on record.
        ctx.record(
            tx,
            "role.change",
            Some(&user.id),
            &json!({ "from": before.as_str(), "to": after.as_str(), "via": "sign_in.groups", "groups": user.groups }),
            now,
        )?;
    }
    Ok(Ok(user))
}
