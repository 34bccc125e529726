//! People in an org: users, groups, roles. A user signs in with an OIDC
//! identity (issuer + subject); the admin role comes from membership of a
//! group named in the org's `admin_groups`, or is granted directly by the
//! operator CLI or another admin. The viewer role (the org dashboard,
//! nothing to administer) comes the same way from `viewer_groups` or a
//! direct grant by an admin. Admin operations take an [`AdminCtx`],
//! which only a fresh admin session or the operator can produce, so a
//! forgotten check does not compile.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::Context;
use crate::clock::{from_millis, to_millis};
use crate::config::OrgSettings;
use crate::store::users::{self as sql, UserRow};
use crate::store::{OrgDb, StoreError, sessions as session_sql};

/// One email address, as SCIM and the IdP describe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    pub value: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub primary: bool,
}

/// A user with their groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: String,
    pub user_name: String,
    pub display_name: String,
    pub emails: Vec<Email>,
    pub active: bool,
    pub admin_granted: bool,
    /// The viewer role granted directly by an admin (not through a group).
    pub viewer_granted: bool,
    pub provisioned_by: String,
    pub groups: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub identity: Option<(String, String)>,
}

impl User {
    fn from_row(r: UserRow, groups: Vec<String>, viewer_granted: bool) -> Self {
        Self {
            emails: serde_json::from_str(&r.emails).unwrap_or_default(),
            identity: r.oidc_issuer.zip(r.oidc_subject),
            id: r.id,
            user_name: r.user_name,
            display_name: r.display_name,
            active: r.active,
            admin_granted: r.admin_granted,
            viewer_granted,
            provisioned_by: r.provisioned_by,
            groups,
            created_at: from_millis(r.created_at),
            updated_at: from_millis(r.updated_at),
        }
    }

    /// The primary email, or the first.
    pub fn email(&self) -> Option<&str> {
        self.emails
            .iter()
            .find(|e| e.primary)
            .or_else(|| self.emails.first())
            .map(|e| e.value.as_str())
    }

    /// The user's role in `org`: admin (granted, or through one of
    /// `admin_groups`) before viewer (granted, or through one of
    /// `viewer_groups`) before member.
    pub fn role(&self, org: &OrgSettings) -> Role {
        let in_any = |names: &[String]| {
            self.groups
                .iter()
                .any(|g| names.iter().any(|a| a.eq_ignore_ascii_case(g)))
        };
        if self.admin_granted || in_any(&org.admin_groups) {
            Role::Admin
        } else if self.viewer_granted || in_any(&org.viewer_groups) {
            Role::Viewer
        } else {
            Role::Member
        }
    }

    /// A name to greet the user with.
    pub fn greeting_name(&self) -> &str {
        if self.display_name.is_empty() {
            &self.user_name
        } else {
            &self.display_name
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    /// Sees the org dashboard; administers nothing.
    Viewer,
    Member,
}

impl Role {
    /// The role's name, as the audit log and the CLI write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Viewer => "viewer",
            Self::Member => "member",
        }
    }

    /// Whether the role may see the org dashboard.
    pub fn sees_dashboard(self) -> bool {
        matches!(self, Self::Admin | Self::Viewer)
    }
}

/// Proof that the caller may perform admin operations on one org: built
/// only from a fresh admin session (`http::extract`) or for the operator.
#[derive(Debug, Clone)]
pub struct AdminCtx {
    audit: Context,
    /// The acting admin's user id (none for the operator).
    pub admin_id: Option<String>,
}

impl AdminCtx {
    /// The operator at the command line.
    pub fn operator() -> Self {
        Self {
            audit: Context::operator(),
            admin_id: None,
        }
    }

    /// The operator, recorded in the audit log as `audit` says (a tool
    /// that names the operator itself, or a test).
    pub fn operator_as(audit: Context) -> Self {
        Self {
            audit,
            admin_id: None,
        }
    }

    /// The operator acting through the setup link of a new installation
    /// (`crate::setup::link`), from the request in `audit`.
    pub(crate) fn setup(audit: Context) -> Self {
        Self {
            audit,
            admin_id: None,
        }
    }

    /// An admin whose session was checked for role and fresh sign-in.
    pub(crate) fn for_admin(audit: Context, admin_id: String) -> Self {
        Self {
            audit,
            admin_id: Some(admin_id),
        }
    }

    pub fn audit(&self) -> &Context {
        &self.audit
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Invalid(String),
    #[error("no such user in this org")]
    NotFound,
    #[error("the user name `{0}` is taken")]
    Taken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for UserError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

fn load(conn: &rusqlite::Connection, row: UserRow) -> Result<User, UserError> {
    let groups = sql::group_names(conn, &row.id)?;
    let viewer = sql::viewer_granted(conn, &row.id)?;
    Ok(User::from_row(row, groups, viewer))
}

/// The user with this id, one deleted over SCIM included (with `active`
/// false): what is still held about them during the deletion hold.
///
/// # Errors
/// [`UserError::NotFound`].
pub fn get(org: &OrgDb, id: &str) -> Result<User, UserError> {
    org.db.read(|c| {
        let row = sql::by_id_including_deleted(c, id)?.ok_or(UserError::NotFound)?;
        load(c, row)
    })
}

/// Finds a user by id or user name (operator commands accept either).
///
/// # Errors
/// [`UserError::NotFound`].
pub fn find(org: &OrgDb, id_or_name: &str) -> Result<User, UserError> {
    org.db.read(|c| {
        let row = match sql::by_id(c, id_or_name)? {
            Some(r) => r,
            None => sql::by_user_name(c, id_or_name)?.ok_or(UserError::NotFound)?,
        };
        load(c, row)
    })
}

/// Every user, by user name (not those deleted over SCIM, which wait out
/// their deletion hold).
///
/// # Errors
/// Store errors.
pub fn list(org: &OrgDb) -> Result<Vec<User>, UserError> {
    org.db.read(|c| {
        sql::list(c)?
            .into_iter()
            .map(|r| load(c, r))
            .collect::<Result<Vec<_>, _>>()
    })
}

/// The org's teams (its groups), by name: what org aggregates can be
/// narrowed to.
///
/// # Errors
/// Store errors.
pub fn teams(org: &OrgDb) -> Result<Vec<String>, StoreError> {
    org.db
        .read(|c| sql::all_group_names(c).map_err(StoreError::from))
}

pub(crate) fn check_user_name(name: &str) -> Result<(), UserError> {
    let n = name.chars().count();
    if n == 0 || n > 256 || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(UserError::Invalid(
            "a user name is 1 to 256 characters with no spaces or control characters".into(),
        ));
    }
    Ok(())
}

/// Creates a user by hand (operator CLI: labs, break-glass, scripted
/// set-up). Audited as `user.create`.
///
/// # Errors
/// [`UserError::Taken`] for a user name in use; [`UserError::Invalid`].
pub fn add(
    org: &OrgDb,
    admin: &AdminCtx,
    user_name: &str,
    display_name: &str,
    email: Option<&str>,
    grant_admin: bool,
    now: DateTime<Utc>,
) -> Result<User, UserError> {
    check_user_name(user_name)?;
    let emails: Vec<Email> = email
        .map(|e| Email {
            value: e.to_string(),
            kind: Some("work".into()),
            primary: true,
        })
        .into_iter()
        .collect();
    let row = UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        oidc_issuer: None,
        oidc_subject: None,
        user_name: user_name.to_string(),
        display_name: display_name.to_string(),
        emails: serde_json::to_string(&emails).unwrap_or_else(|_| "[]".into()),
        external_id: None,
        active: true,
        admin_granted: grant_admin,
        provisioned_by: "operator".into(),
        created_at: to_millis(now),
        updated_at: to_millis(now),
    };
    org.db.write(|tx| {
        if sql::by_user_name(tx, user_name)?.is_some() {
            return Err(UserError::Taken(user_name.to_string()));
        }
        sql::insert(tx, &row)?;
        let details = json!({ "user_name": user_name, "admin": grant_admin });
        admin
            .audit()
            .record(tx, "user.create", Some(&row.id), &details, now)?;
        Ok(())
    })?;
    get(org, &row.id)
}

/// Activates or deactivates a user. Deactivation ends every session and
/// revokes every device of the user at once. Audited as `user.activate` / `user.deactivate`.
///
/// # Errors
/// [`UserError::NotFound`], also for a user deleted over SCIM (who must
/// never be able to sign in again).
pub fn set_active(
    org: &OrgDb,
    admin: &AdminCtx,
    id: &str,
    active: bool,
    now: DateTime<Utc>,
) -> Result<User, UserError> {
    org.db.write(|tx| {
        // `by_id` does not see a user deleted over SCIM.
        let mut row = sql::by_id(tx, id)?.ok_or(UserError::NotFound)?;
        row.active = active;
        row.updated_at = to_millis(now);
        sql::update(tx, &row)?;
        // Deactivation ends sessions and revokes devices at once; a
        // reactivated person signs in and pairs their devices again.
        let (ended, revoked) = if active {
            (0, 0)
        } else {
            (
                session_sql::delete_for_user(tx, id)?,
                crate::store::devices::revoke_for_user(tx, id, "user deactivated", to_millis(now))?,
            )
        };
        let action = if active {
            "user.activate"
        } else {
            "user.deactivate"
        };
        let details = json!({ "sessions_ended": ended, "devices_revoked": revoked });
        admin.audit().record(tx, action, Some(id), &details, now)?;
        Ok::<_, UserError>(())
    })?;
    get(org, id)
}

/// Grants or revokes the directly granted admin role. Audited.
///
/// # Errors
/// [`UserError::NotFound`].
pub fn set_admin(
    org: &OrgDb,
    admin: &AdminCtx,
    id: &str,
    granted: bool,
    now: DateTime<Utc>,
) -> Result<User, UserError> {
    org.db.write(|tx| {
        let mut row = sql::by_id(tx, id)?.ok_or(UserError::NotFound)?;
        row.admin_granted = granted;
        row.updated_at = to_millis(now);
        sql::update(tx, &row)?;
        let action = if granted {
            "admin.grant"
        } else {
            "admin.revoke"
        };
        admin.audit().record(
            tx,
            action,
            Some(id),
            &json!({ "user_name": row.user_name }),
            now,
        )?;
        Ok::<_, UserError>(())
    })?;
    get(org, id)
}

/// Grants or revokes the directly granted viewer role. Audited as
/// `viewer.grant` / `viewer.revoke` (also when nothing changed, with
/// `changed: false`, so every attempt is on record).
///
/// # Errors
/// [`UserError::NotFound`].
pub fn set_viewer(
    org: &OrgDb,
    admin: &AdminCtx,
    id: &str,
    granted: bool,
    now: DateTime<Utc>,
) -> Result<User, UserError> {
    org.db.write(|tx| {
        let row = sql::by_id(tx, id)?.ok_or(UserError::NotFound)?;
        let changed = sql::set_viewer(tx, id, granted, to_millis(now))?;
        let action = if granted {
            "viewer.grant"
        } else {
            "viewer.revoke"
        };
        admin.audit().record(
            tx,
            action,
            Some(id),
            &json!({ "user_name": row.user_name, "changed": changed }),
            now,
        )?;
        Ok::<_, UserError>(())
    })?;
    get(org, id)
}

/// Links the IdP identity (`issuer`, `subject`) to an account by hand: the
/// only way onto an account holding the admin role, which a sign-in never
/// takes over by itself (see [`signin`]). The subject is the one the
/// refused sign-in showed the person, and the `sign_in.failed` audit row
/// recorded. Audited as `user.link`.
///
/// # Errors
/// [`UserError::NotFound`]; [`UserError::Invalid`] when the account has
/// an identity already or the identity belongs to another account.
pub fn link(
    org: &OrgDb,
    admin: &AdminCtx,
    id_or_name: &str,
    issuer: &str,
    subject: &str,
    now: DateTime<Utc>,
) -> Result<User, UserError> {
    if issuer.trim().is_empty() || subject.trim().is_empty() {
        return Err(UserError::Invalid(
            "give the issuer and the subject of the identity to link".into(),
        ));
    }
    let user = find(org, id_or_name)?;
    org.db.write(|tx| {
        let mut row = sql::by_id(tx, &user.id)?.ok_or(UserError::NotFound)?;
        if let Some(current) = &row.oidc_subject {
            return Err(UserError::Invalid(format!(
                "{} is already linked to the subject {current}; nothing changed",
                row.user_name
            )));
        }
        if let Some(other) = sql::by_identity(tx, issuer, subject)? {
            return Err(UserError::Invalid(format!(
                "that identity already signs in as {}; nothing changed",
                other.user_name
            )));
        }
        row.oidc_issuer = Some(issuer.to_string());
        row.oidc_subject = Some(subject.to_string());
        row.updated_at = to_millis(now);
        sql::update(tx, &row)?;
        admin.audit().record(
            tx,
            "user.link",
            Some(&row.id),
            &json!({ "issuer": issuer, "subject": subject, "by": "operator" }),
            now,
        )?;
        Ok::<_, UserError>(())
    })?;
    get(org, &user.id)
}

/// Ends every session of a user. Audited as `sessions.revoke_all`.
///
/// # Errors
/// [`UserError::NotFound`].
pub fn revoke_sessions(
    org: &OrgDb,
    admin: &AdminCtx,
    id: &str,
    now: DateTime<Utc>,
) -> Result<usize, UserError> {
    org.db.write(|tx| {
        sql::by_id(tx, id)?.ok_or(UserError::NotFound)?;
        let n = session_sql::delete_for_user(tx, id)?;
        admin.audit().record(
            tx,
            "sessions.revoke_all",
            Some(id),
            &json!({ "sessions_ended": n }),
            now,
        )?;
        Ok(n)
    })
}

pub mod directory;
pub mod signin;
