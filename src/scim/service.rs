//! The SCIM operations on one org's users and groups (RFC 7644 §3): each
//! mutation is one transaction with its audit row, checked whole before it
//! writes, so an error leaves nothing behind. The org is always the one the
//! bearer token belongs to; resources of other orgs are simply not found.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value as Json, json};

use super::error::ScimError;
use super::members;
use super::patch::{self, Operation};
use super::path::{CORE_GROUP_URN, CORE_USER_URN};
use super::resource::{self, GroupFields, UserFields};
use crate::audit::Context;
use crate::clock::to_millis;
use crate::store::OrgDb;
use crate::store::deltas as deltas_sql;
use crate::store::devices as device_sql;
use crate::store::scim::{self as sql, GroupRow, ScimUserRow};
use crate::store::sessions as session_sql;
use crate::store::users::{self as user_sql, UserRow};
use rusqlite::Connection;

/// One org as a SCIM client sees it: the database, who is acting (the
/// token, with the request's audit context) and the base URL of locations.
pub struct Scim<'o> {
    pub org: &'o OrgDb,
    pub audit: Context,
    /// `<public_url>/scim/v2`, without a trailing slash.
    pub base: String,
}

/// An `If-Match` precondition: the versions the client accepts.
#[derive(Debug, Clone, Default)]
pub struct IfMatch(pub Option<Vec<String>>);

impl IfMatch {
    fn check(&self, version: i64) -> Result<(), ScimError> {
        let Some(tags) = &self.0 else { return Ok(()) };
        let ok = tags.iter().any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/").trim_matches('"') == version.to_string()
        });
        if ok {
            Ok(())
        } else {
            Err(ScimError::precondition(version))
        }
    }
}

impl Scim<'_> {
    pub(super) fn render_user(&self, c: &Connection, row: &ScimUserRow) -> Result<Json, ScimError> {
        let groups = sql::memberships(c, &row.user.id)?;
        Ok(resource::render_user(row, &groups, &self.base))
    }

    pub(super) fn render_group(&self, c: &Connection, g: &GroupRow) -> Result<Json, ScimError> {
        let users = sql::members(c, &g.id)?;
        let groups = crate::store::groups::child_groups(c, &g.id)?;
        Ok(resource::render_group(g, &users, &groups, &self.base))
    }

    /// # Errors
    /// 404 for an id that is not a live user of this org.
    pub fn get_user(&self, id: &str) -> Result<Json, ScimError> {
        self.org.db.read(|c| {
            let row = sql::user(c, id)?.ok_or_else(|| ScimError::not_found("user", id))?;
            self.render_user(c, &row)
        })
    }

    /// Creates a user, provisioned by SCIM. Audited as `scim.user.create`.
    ///
    /// # Errors
    /// 409 `uniqueness` for a user name in use; 400 for invalid fields.
    pub fn create_user(&self, f: UserFields, now: DateTime<Utc>) -> Result<Json, ScimError> {
        let ms = to_millis(now);
        self.org.db.write(|tx| {
            unique_user_name(tx, &f.user_name, None)?;
            let row = UserRow {
                id: uuid::Uuid::new_v4().to_string(),
                oidc_issuer: None,
                oidc_subject: None,
                user_name: f.user_name.clone(),
                display_name: f.display_name.clone(),
                emails: json!(f.emails).to_string(),
                external_id: f.external_id.clone(),
                active: f.active.unwrap_or(true),
                admin_granted: false,
                provisioned_by: "scim".into(),
                created_at: ms,
                updated_at: ms,
            };
            user_sql::insert(tx, &row)?;
            sql::set_user_scim(tx, &row.id, 1, &Json::Object(f.attrs.clone()).to_string())?;
            self.audit.record(
                tx,
                "scim.user.create",
                Some(&row.id),
                &json!({ "user_name": row.user_name, "active": row.active }),
                now,
            )?;
            let created =
                sql::user(tx, &row.id)?.ok_or_else(|| ScimError::not_found("user", &row.id))?;
            self.render_user(tx, &created)
        })
    }

    /// Replaces a user's attributes (PUT). Audited as `scim.user.replace`.
    ///
    /// # Errors
    /// 404, 409 `uniqueness`, 412.
    pub fn replace_user(
        &self,
        id: &str,
        if_match: &IfMatch,
        f: UserFields,
        now: DateTime<Utc>,
    ) -> Result<Json, ScimError> {
        self.org.db.write(|tx| {
            let old = sql::user(tx, id)?.ok_or_else(|| ScimError::not_found("user", id))?;
            if_match.check(old.version)?;
            self.write_user(tx, old, f, "scim.user.replace", now)
        })
    }

    /// Applies PATCH operations to a user, atomically. Audited as
    /// `scim.user.patch`.
    ///
    /// # Errors
    /// 404, 400 (path, value, mutability), 409 `uniqueness`, 412.
    pub fn patch_user(
        &self,
        id: &str,
        if_match: &IfMatch,
        ops: &[Operation],
        now: DateTime<Utc>,
    ) -> Result<Json, ScimError> {
        self.org.db.write(|tx| {
            let old = sql::user(tx, id)?.ok_or_else(|| ScimError::not_found("user", id))?;
            if_match.check(old.version)?;
            let Json::Object(mut doc) = self.render_user(tx, &old)? else {
                return Err(ScimError::Internal(anyhow::anyhow!(
                    "a user renders as an object"
                )));
            };
            for k in ["meta", "groups"] {
                doc.remove(k);
            }
            patch::apply(&mut doc, CORE_USER_URN, ops)?;
            let mut f = resource::user_fields(&doc)?;
            // The document had `active`; without it now, a `remove` took it
            // away: an unassigned `active` is not active, so the user is
            // deactivated (sessions and devices revoked), never left as was.
            if resource::get_ci(&doc, "active").is_none_or(Json::is_null) {
                f.active = Some(false);
            }
            self.write_user(tx, old, f, "scim.user.patch", now)
        })
    }

    fn write_user(
        &self,
        tx: &Connection,
        old: ScimUserRow,
        f: UserFields,
        action: &str,
        now: DateTime<Utc>,
    ) -> Result<Json, ScimError> {
        let id = old.user.id.clone();
        unique_user_name(tx, &f.user_name, Some(&id))?;
        let mut row = old.user.clone();
        row.user_name = f.user_name;
        row.display_name = f.display_name;
        row.emails = json!(f.emails).to_string();
        row.external_id = f.external_id;
        row.active = f.active.unwrap_or(old.user.active);
        row.updated_at = to_millis(now);
        user_sql::update(tx, &row)?;
        sql::set_user_scim(tx, &id, old.version + 1, &Json::Object(f.attrs).to_string())?;
        let mut details = json!({ "user_name": row.user_name, "active": row.active });
        if old.user.active && !row.active {
            let (sessions, devices) = revoke_access(tx, &id, now)?;
            details["sessions_ended"] = json!(sessions);
            details["devices_revoked"] = json!(devices);
            self.audit
                .record(tx, "user.deactivate", Some(&id), &details, now)?;
        } else if !old.user.active && row.active {
            self.audit
                .record(tx, "user.activate", Some(&id), &json!({}), now)?;
        }
        self.audit.record(tx, action, Some(&id), &details, now)?;
        let new = sql::user(tx, &id)?.ok_or_else(|| ScimError::not_found("user", &id))?;
        self.render_user(tx, &new)
    }

    /// Deletes a user: out of SCIM (a later GET is 404), deactivated with
    /// every session and device revoked, their user name freed, and their
    /// data in the 30-day deletion hold (as `graph::me::request_deletion`).
    /// Audited as `scim.user.delete` and `data.delete_request`.
    ///
    /// # Errors
    /// 404, 412.
    pub fn delete_user(
        &self,
        id: &str,
        if_match: &IfMatch,
        now: DateTime<Utc>,
    ) -> Result<(), ScimError> {
        self.org.db.write(|tx| {
            let old = sql::user(tx, id)?.ok_or_else(|| ScimError::not_found("user", id))?;
            if_match.check(old.version)?;
            let (sessions, devices) = revoke_access(tx, id, now)?;
            sql::mark_deleted(tx, id, &format!("deleted:{id}"), to_millis(now))?;
            deltas_sql::set_deletion(tx, id, Some(to_millis(now)))?;
            self.audit.record(
                tx,
                "scim.user.delete",
                Some(id),
                &json!({ "user_name": old.user.user_name, "sessions_ended": sessions, "devices_revoked": devices }),
                now,
            )?;
            self.audit.record(
                tx,
                "data.delete_request",
                Some(id),
                &json!({ "deletion_due_at": now + crate::graph::me::DELETION_HOLD }),
                now,
            )?;
            Ok(())
        })
    }

    /// # Errors
    /// 404.
    pub fn get_group(&self, id: &str) -> Result<Json, ScimError> {
        self.org.db.read(|c| {
            let g = sql::group_by_id(c, id)?.ok_or_else(|| ScimError::not_found("group", id))?;
            self.render_group(c, &g)
        })
    }

    /// Creates a group (a team; an admin group when its name is in the
    /// org's `admin_groups`). Audited as `scim.group.create`.
    ///
    /// # Errors
    /// 409 `uniqueness` for a name in use; 400 for unknown members.
    pub fn create_group(&self, f: GroupFields, now: DateTime<Utc>) -> Result<Json, ScimError> {
        let ms = to_millis(now);
        self.org.db.write(|tx| {
            unique_group_name(tx, &f.display_name, None)?;
            let resolved = members::resolve(tx, None, &f.members)?;
            let g = GroupRow {
                id: uuid::Uuid::new_v4().to_string(),
                display_name: f.display_name.clone(),
                external_id: f.external_id.clone(),
                created_at: ms,
                updated_at: ms,
                version: 1,
            };
            sql::insert_group(tx, &g)?;
            members::write(tx, &g.id, &resolved)?;
            self.audit.record(
                tx,
                "scim.group.create",
                Some(&g.id),
                &json!({ "display_name": g.display_name, "members": f.members.len() }),
                now,
            )?;
            self.render_group(tx, &g)
        })
    }

    /// Replaces a group (PUT). Audited as `scim.group.replace`.
    ///
    /// # Errors
    /// 404, 409, 412, 400 for unknown members.
    pub fn replace_group(
        &self,
        id: &str,
        if_match: &IfMatch,
        f: GroupFields,
        now: DateTime<Utc>,
    ) -> Result<Json, ScimError> {
        self.org.db.write(|tx| {
            let old = sql::group_by_id(tx, id)?.ok_or_else(|| ScimError::not_found("group", id))?;
            if_match.check(old.version)?;
            self.write_group(tx, old, f, "scim.group.replace", now)
        })
    }

    /// Applies PATCH operations to a group (members in bulk), atomically.
    /// Audited as `scim.group.patch`.
    ///
    /// # Errors
    /// 404, 400, 409, 412.
    pub fn patch_group(
        &self,
        id: &str,
        if_match: &IfMatch,
        ops: &[Operation],
        now: DateTime<Utc>,
    ) -> Result<Json, ScimError> {
        self.org.db.write(|tx| {
            let old = sql::group_by_id(tx, id)?.ok_or_else(|| ScimError::not_found("group", id))?;
            if_match.check(old.version)?;
            let Json::Object(mut doc) = self.render_group(tx, &old)? else {
                return Err(ScimError::Internal(anyhow::anyhow!(
                    "a group renders as an object"
                )));
            };
            doc.remove("meta");
            patch::apply(&mut doc, CORE_GROUP_URN, ops)?;
            let f = resource::group_fields(&doc)?;
            self.write_group(tx, old, f, "scim.group.patch", now)
        })
    }

    fn write_group(
        &self,
        tx: &Connection,
        old: GroupRow,
        f: GroupFields,
        action: &str,
        now: DateTime<Utc>,
    ) -> Result<Json, ScimError> {
        unique_group_name(tx, &f.display_name, Some(&old.id))?;
        let resolved = members::resolve(
            tx,
            Some((old.id.as_str(), old.display_name.as_str())),
            &f.members,
        )?;
        let before = members::current(tx, &old.id)?;
        let g = GroupRow {
            display_name: f.display_name,
            external_id: f.external_id,
            updated_at: to_millis(now),
            version: old.version + 1,
            ..old
        };
        sql::update_group(tx, &g)?;
        members::write(tx, &g.id, &resolved)?;
        let added = resolved.not_in(&before);
        let removed = before.not_in(&resolved);
        self.audit.record(
            tx,
            action,
            Some(&g.id),
            &json!({ "display_name": g.display_name, "members_added": added, "members_removed": removed }),
            now,
        )?;
        self.render_group(tx, &g)
    }

    /// Deletes a group and its memberships. Audited as `scim.group.delete`.
    ///
    /// # Errors
    /// 404, 412.
    pub fn delete_group(
        &self,
        id: &str,
        if_match: &IfMatch,
        now: DateTime<Utc>,
    ) -> Result<(), ScimError> {
        self.org.db.write(|tx| {
            let old = sql::group_by_id(tx, id)?.ok_or_else(|| ScimError::not_found("group", id))?;
            if_match.check(old.version)?;
            sql::delete_group(tx, id)?;
            self.audit.record(
                tx,
                "scim.group.delete",
                Some(id),
                &json!({ "display_name": old.display_name }),
                now,
            )?;
            Ok(())
        })
    }
}

/// Ends every session and revokes every device of a user.
fn revoke_access(
    tx: &Connection,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(usize, usize), ScimError> {
    let sessions = session_sql::delete_for_user(tx, id)?;
    let devices = device_sql::revoke_for_user(
        tx,
        id,
        "deactivated by the identity provider",
        to_millis(now),
    )?;
    Ok((sessions, devices))
}

fn unique_user_name(tx: &Connection, name: &str, this: Option<&str>) -> Result<(), ScimError> {
    // Users deleted over SCIM have their name freed; any other row counts.
    if let Some(other) = user_sql::by_user_name_including_deleted(tx, name)?
        && Some(other.id.as_str()) != this
    {
        return Err(ScimError::uniqueness(format!(
            "the userName {name:?} is taken"
        )));
    }
    Ok(())
}

fn unique_group_name(tx: &Connection, name: &str, this: Option<&str>) -> Result<(), ScimError> {
    if sql::groups_by_display_name(tx, name)?
        .iter()
        .any(|g| Some(g.id.as_str()) != this)
    {
        return Err(ScimError::uniqueness(format!(
            "the displayName {name:?} is taken"
        )));
    }
    Ok(())
}

/// The `Map` of a JSON body, or 400 `invalidSyntax`.
///
/// # Errors
/// 400 `invalidSyntax` when the body is not a JSON object.
pub fn object(body: &[u8]) -> Result<Map<String, Json>, ScimError> {
    match serde_json::from_slice::<Json>(body) {
        Ok(Json::Object(o)) => Ok(o),
        Ok(_) => Err(ScimError::invalid_syntax("the body must be a JSON object")),
        Err(e) => Err(ScimError::invalid_syntax(format!(
            "the body is not valid JSON: {e}"
        ))),
    }
}
