//! The members directory of the admin pages: search by name, email or
//! user name, filters by role, status and group, pages in user-name order
//! by keyset (fast at 100,000 members: every filter is an index lookup, no
//! offset is ever scanned); and one member's page: who they are, their
//! sessions and devices, never their skill data.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{AdminCtx, Role, User, UserError, load};
use crate::config::OrgSettings;
use crate::store::OrgDb;
use crate::store::users::{self as sql, Directory, RoleFilter};

/// Members on one page.
pub const PAGE_SIZE: u32 = 50;

/// The search as typed in the form or the URL (empty means unset).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct RawQuery {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub after: String,
}

/// A checked search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub q: Option<String>,
    pub role: Option<Role>,
    /// `Some(true)`: active only; `Some(false)`: deactivated only.
    pub active: Option<bool>,
    pub group: Option<String>,
    pub after: Option<String>,
}

fn text(field: &str, v: &str, max: usize) -> Result<Option<String>, UserError> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if v.chars().count() > max || v.chars().any(char::is_control) {
        return Err(UserError::Invalid(format!(
            "{field}: at most {max} characters and no control characters"
        )));
    }
    Ok(Some(v.to_string()))
}

impl Query {
    /// Checks the typed search.
    ///
    /// # Errors
    /// [`UserError::Invalid`] naming the field and the values it takes.
    pub fn parse(raw: &RawQuery) -> Result<Self, UserError> {
        let role = match raw.role.trim() {
            "" | "any" => None,
            "admin" => Some(Role::Admin),
            "viewer" => Some(Role::Viewer),
            "member" => Some(Role::Member),
            other => {
                return Err(UserError::Invalid(format!(
                    "role: \"{}\" is not a role; choose admin, viewer or member",
                    other.chars().take(20).collect::<String>()
                )));
            }
        };
        let active = match raw.status.trim() {
            "" | "any" => None,
            "active" => Some(true),
            "deactivated" => Some(false),
            other => {
                return Err(UserError::Invalid(format!(
                    "status: \"{}\" is not a status; choose active or deactivated",
                    other.chars().take(20).collect::<String>()
                )));
            }
        };
        Ok(Self {
            q: text("search", &raw.q, 100)?,
            role,
            active,
            group: text("group", &raw.group, 256)?,
            after: text("after", &raw.after, 256)?,
        })
    }
}

/// One page of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub members: Vec<User>,
    /// The `after` of the next page, when there is one.
    pub next: Option<String>,
}

/// The members `q` keeps, one page of [`PAGE_SIZE`] in user-name order.
///
/// # Errors
/// [`UserError::Invalid`] for a group that does not exist; store errors.
pub fn search(org: &OrgDb, settings: &OrgSettings, q: &Query) -> Result<Page, UserError> {
    org.db.read(|c| {
        let group_id = match &q.group {
            None => None,
            Some(name) => Some(sql::group_id(c, name)?.ok_or_else(|| {
                UserError::Invalid(format!(
                    "group: no group is named \"{name}\"; choose one from the list"
                ))
            })?),
        };
        let ids = |names: &[String]| -> Result<Vec<String>, UserError> {
            let mut ids = Vec::new();
            for n in names {
                ids.extend(sql::group_id(c, n)?);
            }
            Ok(ids)
        };
        let admin_group_ids = ids(&settings.admin_groups)?;
        let viewer_group_ids = ids(&settings.viewer_groups)?;
        // Three characters make a trigram: shorter searches match the
        // start of the user name or display name instead.
        let (text, prefix) = match q.q.as_deref() {
            Some(s) if s.chars().count() >= 3 => (Some(s), None),
            Some(s) => (None, Some(s)),
            None => (None, None),
        };
        let d = Directory {
            text,
            prefix,
            active: q.active,
            group_id: group_id.as_deref(),
            role: q.role.map(|r| match r {
                Role::Admin => RoleFilter::Admin,
                Role::Viewer => RoleFilter::Viewer,
                Role::Member => RoleFilter::Member,
            }),
            admin_group_ids: &admin_group_ids,
            viewer_group_ids: &viewer_group_ids,
            after: q.after.as_deref(),
        };
        let mut rows = sql::directory(c, &d, PAGE_SIZE + 1)?;
        let next = if rows.len() > PAGE_SIZE as usize {
            rows.truncate(PAGE_SIZE as usize);
            rows.last().map(|r| r.user_name.clone())
        } else {
            None
        };
        let members = rows
            .into_iter()
            .map(|r| load(c, r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page { members, next })
    })
}

/// What a member's page shows: the person, their sessions and their
/// devices. Nothing of their skill data is read (docs/privacy.md: an
/// admin sees membership facts and sessions to end, never one engineer's
/// concepts).
#[derive(Debug, Clone)]
pub struct MemberView {
    pub user: User,
    pub sessions: Vec<crate::sessions::Session>,
    pub devices: Vec<crate::devices::Device>,
}

/// The member `id` of `org` for an admin's page.
///
/// # Errors
/// [`UserError::NotFound`] (also for one deleted over SCIM); store errors.
pub fn member(org: &OrgDb, id: &str) -> Result<MemberView, UserError> {
    let user = org.db.read(|c| {
        let row = sql::by_id(c, id)?.ok_or(UserError::NotFound)?;
        load(c, row)
    })?;
    let sessions = crate::sessions::list(org, &user.id)?;
    let devices = crate::devices::list(org, &user.id).map_err(|e| match e {
        crate::devices::DeviceError::Store(s) => UserError::Store(s),
        other => UserError::Invalid(other.to_string()),
    })?;
    Ok(MemberView {
        user,
        sessions,
        devices,
    })
}

/// Ends one session of the member `user_id`, named by its handle (as
/// their page lists it). Audited as `session.end` with `by: admin`.
///
/// # Errors
/// [`UserError::NotFound`] for no such member or session.
pub fn end_session(
    org: &OrgDb,
    admin: &AdminCtx,
    user_id: &str,
    handle: &str,
    now: DateTime<Utc>,
) -> Result<(), UserError> {
    let target = crate::sessions::list(org, user_id)?
        .into_iter()
        .find(|s| s.handle() == handle)
        .ok_or(UserError::NotFound)?;
    org.db.write(|tx| {
        sql::by_id(tx, user_id)?.ok_or(UserError::NotFound)?;
        crate::store::sessions::delete(tx, &target.id_hash)?;
        admin.audit().record(
            tx,
            "session.end",
            Some(user_id),
            &json!({ "by": "admin", "session": handle }),
            now,
        )?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_form_is_checked_field_by_field() {
        let q = Query::parse(&RawQuery {
            q: "  ada ".into(),
            role: "viewer".into(),
            status: "deactivated".into(),
            ..RawQuery::default()
        })
        .expect("valid");
        assert_eq!(q.q.as_deref(), Some("ada"));
        assert_eq!(q.role, Some(Role::Viewer));
        assert_eq!(q.active, Some(false));
        let e = Query::parse(&RawQuery {
            role: "owner".into(),
            ..RawQuery::default()
        })
        .expect_err("no such role");
        assert!(e.to_string().starts_with("role: \"owner\""), "{e}");
        let e = Query::parse(&RawQuery {
            status: "gone".into(),
            ..RawQuery::default()
        })
        .expect_err("no such status");
        assert!(e.to_string().contains("active or deactivated"), "{e}");
        let e = Query::parse(&RawQuery {
            q: "x".repeat(101),
            ..RawQuery::default()
        })
        .expect_err("too long");
        assert!(e.to_string().starts_with("search:"), "{e}");
    }
}
