//! Group members (RFC 7643 §4.2): a member is a user or a group, named by
//! `value` and, optionally, `type` ("User" or "Group"). Members are checked
//! whole before anything is written: every one must exist in this org, and
//! no group may end up inside itself. The effective membership (users
//! through nested groups) is derived by `store::groups`.

use rusqlite::Connection;

use super::error::ScimError;
use super::resource::Member;
use crate::store::groups::{self, MemberType};
use crate::store::scim as sql;

/// The most members a group may have.
const MAX_MEMBERS: usize = 10_000;

/// A group's direct members, checked: user ids and group ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    pub users: Vec<String>,
    pub groups: Vec<String>,
}

impl Resolved {
    /// How many of `self` are not in `other`.
    pub fn not_in(&self, other: &Resolved) -> usize {
        self.users
            .iter()
            .filter(|u| !other.users.contains(u))
            .count()
            + self
                .groups
                .iter()
                .filter(|g| !other.groups.contains(g))
                .count()
    }
}

/// Checks `members` of the group `group` (`None` for a group not created
/// yet, which nothing can contain).
///
/// # Errors
/// 400 `tooMany` over [`MAX_MEMBERS`]; 400 `invalidValue` naming a member
/// that is no user or group of this org, one whose `type` is not what it
/// is, and a group that would contain itself.
pub fn resolve(
    tx: &Connection,
    group: Option<(&str, &str)>,
    members: &[Member],
) -> Result<Resolved, ScimError> {
    if members.len() > MAX_MEMBERS {
        return Err(ScimError::bad(
            "tooMany",
            format!("at most {MAX_MEMBERS} members per group"),
        ));
    }
    let mut out = Resolved::default();
    for m in members {
        let user = sql::user(tx, &m.id)?.is_some();
        let found = if user {
            None
        } else {
            sql::group_by_id(tx, &m.id)?
        };
        match (m.kind, user, found) {
            (Some(MemberType::User) | None, true, _) => out.users.push(m.id.clone()),
            (Some(MemberType::Group) | None, false, Some(g)) => {
                if let Some((id, name)) = group
                    && (g.id == id || groups::contains_group(tx, &g.id, id)?)
                {
                    return Err(ScimError::invalid_value(cycle(
                        name,
                        &g.display_name,
                        &g.id,
                    )));
                }
                out.groups.push(g.id);
            }
            (Some(MemberType::Group), true, _) => {
                return Err(ScimError::invalid_value(format!(
                    "member {:?} is a user, not a group; send type \"User\"",
                    m.id
                )));
            }
            (Some(MemberType::User), false, Some(_)) => {
                return Err(ScimError::invalid_value(format!(
                    "member {:?} is a group, not a user; send type \"Group\"",
                    m.id
                )));
            }
            (_, false, None) => {
                let what = match m.kind {
                    Some(MemberType::User) => "user",
                    Some(MemberType::Group) => "group",
                    None => "user or group",
                };
                return Err(ScimError::invalid_value(format!(
                    "member {:?}: no {what} with this id in this org; create it first",
                    m.id
                )));
            }
        }
    }
    Ok(out)
}

fn cycle(group: &str, member: &str, member_id: &str) -> String {
    if group.eq_ignore_ascii_case(member) {
        format!("group {group:?} cannot be a member of itself")
    } else {
        format!(
            "group {member:?} ({member_id}) cannot be a member of {group:?}: {group:?} is already a member of it, directly or through nested groups, and groups may not form a cycle"
        )
    }
}

/// The direct members `group_id` has now.
///
/// # Errors
/// Store errors.
pub fn current(tx: &Connection, group_id: &str) -> Result<Resolved, ScimError> {
    Ok(Resolved {
        users: sql::members(tx, group_id)?
            .into_iter()
            .map(|(id, _)| id)
            .collect(),
        groups: groups::child_groups(tx, group_id)?
            .into_iter()
            .map(|(id, _)| id)
            .collect(),
    })
}

/// Makes `members` the direct members of `group_id`; the effective
/// membership of it and of the groups it is nested in follows.
///
/// # Errors
/// Store errors.
pub fn write(tx: &Connection, group_id: &str, members: &Resolved) -> Result<(), ScimError> {
    groups::set_direct(tx, group_id, MemberType::User, &members.users)?;
    groups::set_direct(tx, group_id, MemberType::Group, &members.groups)?;
    Ok(())
}
