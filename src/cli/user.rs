//! `aiworklab user add|list|disable|enable|grant-admin|revoke-admin|grant-viewer|revoke-viewer|link` and
//! `aiworklab admin login-link`: operator tools for labs, scripted set-up
//! and break-glass. Every change is audited with the operator as actor.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use super::{Failure, settings};
use crate::clock::{Clock, SystemClock};
use crate::store::{OpenMode, Store};
use crate::users::{self, AdminCtx, UserError};

#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create a user (a first SSO sign-in links to them by the org's `link_by` contract, never to an admin: use `user link`; or a break-glass link).
    Add {
        #[arg(long)]
        org: String,
        #[arg(long)]
        user_name: String,
        #[arg(long, default_value = "")]
        display_name: String,
        #[arg(long)]
        email: Option<String>,
        /// Grant the admin role.
        #[arg(long)]
        admin: bool,
    },
    /// List users with their role and state.
    List {
        #[arg(long)]
        org: String,
    },
    /// Deactivate a user and end their sessions at once.
    Disable {
        #[arg(long)]
        org: String,
        /// User id or user name.
        user: String,
    },
    /// Reactivate a user.
    Enable {
        #[arg(long)]
        org: String,
        user: String,
    },
    /// Grant the admin role directly.
    GrantAdmin {
        #[arg(long)]
        org: String,
        user: String,
    },
    /// Revoke the directly granted admin role.
    RevokeAdmin {
        #[arg(long)]
        org: String,
        user: String,
    },
    /// Grant the viewer role directly (the org dashboard, nothing to administer).
    GrantViewer {
        #[arg(long)]
        org: String,
        user: String,
    },
    /// Revoke the directly granted viewer role.
    RevokeViewer {
        #[arg(long)]
        org: String,
        user: String,
    },
    /// Link an IdP identity to a user who has none yet: the only way onto an admin's account.
    /// The subject is shown on the person's refused sign-in page and in the audit log.
    Link {
        #[arg(long)]
        org: String,
        /// User id or user name.
        #[arg(long)]
        user: String,
        /// The identity's `sub` at the IdP.
        #[arg(long)]
        subject: String,
        /// The IdP's issuer; defaults to the org's configured issuer.
        #[arg(long)]
        issuer: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCmd {
    /// Print a single-use pairing code (valid 30 days) for a user, for scripted roll-outs.
    PairingCode {
        #[arg(long)]
        org: String,
        /// User id or user name.
        #[arg(long)]
        user: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCmd {
    /// Print a single-use sign-in link, valid 15 minutes, for when the IdP is down.
    LoginLink {
        #[arg(long)]
        org: String,
        /// User id or user name.
        #[arg(long)]
        user: String,
    },
}

impl From<UserError> for Failure {
    fn from(e: UserError) -> Self {
        match e {
            UserError::Store(s) => s.into(),
            other => Self::new(
                other.to_string(),
                Some("check `aiworklab user list --org <org>`".into()),
            ),
        }
    }
}

pub fn run(path: Option<&Path>, cmd: UserCmd) -> Result<ExitCode, Failure> {
    let settings = settings(path)?;
    let store = Store::open(&settings, OpenMode::Existing, &SystemClock)?;
    let now = SystemClock.now();
    let op = AdminCtx::operator();
    let org_settings = |slug: &str| settings.orgs.iter().find(|o| o.slug.as_str() == slug);
    match cmd {
        UserCmd::Add {
            org,
            user_name,
            display_name,
            email,
            admin,
        } => {
            let u = users::add(
                store.org(&org)?,
                &op,
                &user_name,
                &display_name,
                email.as_deref(),
                admin,
                now,
            )?;
            println!("created {} ({})", u.user_name, u.id);
        }
        UserCmd::List { org } => {
            let db = store.org(&org)?;
            let cfg = org_settings(&org);
            println!(
                "{:<36}  {:<24}  {:<24}  {:<6}  {:<8}  GROUPS",
                "ID", "USER NAME", "NAME", "ROLE", "STATE"
            );
            for u in users::list(db)? {
                let role = cfg.map_or("member", |c| u.role(c).as_str());
                println!(
                    "{:<36}  {:<24}  {:<24}  {:<6}  {:<8}  {}",
                    u.id,
                    u.user_name,
                    u.display_name.chars().take(24).collect::<String>(),
                    role,
                    if u.active { "active" } else { "disabled" },
                    u.groups.join(",")
                );
            }
        }
        UserCmd::Disable { org, user } => {
            let db = store.org(&org)?;
            let u = users::find(db, &user)?;
            users::set_active(db, &op, &u.id, false, now)?;
            println!("disabled {}; their sessions are ended", u.user_name);
            revoke_their_tokens(db, org_settings(&org), now)?;
        }
        UserCmd::Enable { org, user } => {
            let db = store.org(&org)?;
            let u = users::find(db, &user)?;
            users::set_active(db, &op, &u.id, true, now)?;
            println!("enabled {}", u.user_name);
        }
        UserCmd::GrantAdmin { org, user } => {
            let db = store.org(&org)?;
            let u = users::find(db, &user)?;
            users::set_admin(db, &op, &u.id, true, now)?;
            println!("{} is now an admin", u.user_name);
        }
        UserCmd::RevokeAdmin { org, user } => {
            let db = store.org(&org)?;
            let u = users::find(db, &user)?;
            users::set_admin(db, &op, &u.id, false, now)?;
            println!("{} is no longer a directly granted admin", u.user_name);
            revoke_their_tokens(db, org_settings(&org), now)?;
        }
        UserCmd::GrantViewer { org, user } => {
            let db = store.org(&org)?;
            let u = users::find(db, &user)?;
            users::set_viewer(db, &op, &u.id, true, now)?;
            println!("{} is now a viewer", u.user_name);
        }
        UserCmd::RevokeViewer { org, user } => {
            let db = store.org(&org)?;
            let u = users::find(db, &user)?;
            users::set_viewer(db, &op, &u.id, false, now)?;
            println!("{} is no longer a directly granted viewer", u.user_name);
        }
        UserCmd::Link {
            org,
            user,
            subject,
            issuer,
        } => {
            let db = store.org(&org)?;
            let issuer = match issuer.or_else(|| {
                org_settings(&org).and_then(|o| o.oidc.as_ref().map(|c| c.issuer.clone()))
            }) {
                Some(i) => i,
                None => {
                    return Err(Failure::new(
                        format!("the org {org} has no [orgs.oidc] issuer configured"),
                        Some(
                            "give the issuer with --issuer, or configure the org's OIDC provider"
                                .into(),
                        ),
                    ));
                }
            };
            let u = users::link(db, &op, &user, &issuer, &subject, now)?;
            println!("{} now signs in as {subject} at {issuer}", u.user_name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// SCIM tokens made on the admin page by someone who just lost the admin
/// role are revoked with it; says how many.
fn revoke_their_tokens(
    db: &crate::store::OrgDb,
    cfg: Option<&crate::config::OrgSettings>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Failure> {
    let Some(cfg) = cfg else { return Ok(()) };
    let n =
        crate::tokens::revoke_for_lost_admins(db, cfg, &crate::audit::Context::operator(), now)?
            .len();
    if n > 0 {
        println!("revoked {n} SCIM token(s) made on the admin page by someone no longer an admin");
    }
    Ok(())
}

pub fn run_admin(path: Option<&Path>, cmd: AdminCmd) -> Result<ExitCode, Failure> {
    let AdminCmd::LoginLink { org, user } = cmd;
    let settings = settings(path)?;
    let store = Store::open(&settings, OpenMode::Existing, &SystemClock)?;
    let db = store.org(&org)?;
    let secret =
        crate::sso::break_glass::mint(db, &AdminCtx::operator(), &user, SystemClock.now())?;
    let url = settings
        .server
        .public_url
        .join(&format!("o/{}/break-glass/{}", db.slug, secret.expose()))
        .map_err(|e| Failure::new(e.to_string(), None))?;
    eprintln!(
        "Single-use sign-in link for {user} in {org}, valid 15 minutes (its use is audited):"
    );
    println!("{url}");
    Ok(ExitCode::SUCCESS)
}

pub fn run_device(path: Option<&Path>, cmd: DeviceCmd) -> Result<ExitCode, Failure> {
    let DeviceCmd::PairingCode { org, user } = cmd;
    let settings = settings(path)?;
    let store = Store::open(&settings, OpenMode::Existing, &SystemClock)?;
    let db = store.org(&org)?;
    let u = users::find(db, &user)?;
    if !u.active {
        return Err(Failure::new(
            format!("{} is deactivated", u.user_name),
            Some("reactivate them first with `aiworklab user enable`".into()),
        ));
    }
    let (code, expires) = crate::devices::create_pairing_code(
        db,
        &u.id,
        &crate::audit::Context::operator(),
        SystemClock.now(),
    )
    .map_err(|e| Failure::new(e.to_string(), None))?;
    eprintln!(
        "Single-use pairing code for {} in {org}, valid until {} (shown once; its creation is audited):",
        u.user_name,
        expires.to_rfc3339()
    );
    println!("{}", code.expose());
    Ok(ExitCode::SUCCESS)
}
