//! SQL of SCIM provisioning (see `crate::scim`): the SCIM columns of users,
//! groups and their members. Users deleted over SCIM are invisible here.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::users::UserRow;

/// A user row with its SCIM columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimUserRow {
    pub user: UserRow,
    pub version: i64,
    /// JSON object of the attributes without a column of their own.
    pub attrs: String,
}

macro_rules! scim_user_columns {
    () => {
        "id, oidc_issuer, oidc_subject, user_name, display_name, emails, external_id, active, admin_granted, provisioned_by, created_at, updated_at, scim_version, scim_attrs FROM users WHERE deleted_at IS NULL"
    };
}

fn scim_user(r: &Row<'_>) -> rusqlite::Result<ScimUserRow> {
    // The first twelve columns are those `store::users` reads.
    Ok(ScimUserRow {
        user: super::users::user(r)?,
        version: r.get(12)?,
        attrs: r.get(13)?,
    })
}

/// A live (not deleted) user by id.
///
/// # Errors
/// SQLite errors.
pub fn user(conn: &Connection, id: &str) -> rusqlite::Result<Option<ScimUserRow>> {
    const SQL: &str = concat!("SELECT ", scim_user_columns!(), " AND id = ?1");
    conn.prepare_cached(SQL)?
        .query_row([id], scim_user)
        .optional()
}

/// Live users whose user name is `name`, case-insensitively (index
/// `users_user_name`).
///
/// # Errors
/// SQLite errors.
pub fn users_by_user_name(conn: &Connection, name: &str) -> rusqlite::Result<Vec<ScimUserRow>> {
    const SQL: &str = concat!(
        "SELECT ",
        scim_user_columns!(),
        " AND user_name = ?1 COLLATE NOCASE ORDER BY created_at, id"
    );
    conn.prepare_cached(SQL)?
        .query_map([name], scim_user)?
        .collect()
}

/// Live users whose externalId is `value` (case-exact, index
/// `users_external_id`).
///
/// # Errors
/// SQLite errors.
pub fn users_by_external_id(conn: &Connection, value: &str) -> rusqlite::Result<Vec<ScimUserRow>> {
    const SQL: &str = concat!(
        "SELECT ",
        scim_user_columns!(),
        " AND external_id = ?1 ORDER BY created_at, id"
    );
    conn.prepare_cached(SQL)?
        .query_map([value], scim_user)?
        .collect()
}

/// Every live user, oldest first.
///
/// # Errors
/// SQLite errors.
pub fn users(conn: &Connection) -> rusqlite::Result<Vec<ScimUserRow>> {
    const SQL: &str = concat!("SELECT ", scim_user_columns!(), " ORDER BY created_at, id");
    conn.prepare_cached(SQL)?
        .query_map([], scim_user)?
        .collect()
}

/// A count as SQLite's integer (`usize::MAX` means no limit).
fn clamp(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// How many live users there are: every row less the deleted ones, which
/// SQLite counts from the smallest index and `users_deleted` without
/// reading the table.
///
/// # Errors
/// SQLite errors.
pub fn count_users(conn: &Connection) -> rusqlite::Result<usize> {
    const SQL: &str = "SELECT (SELECT count(*) FROM users)
         - (SELECT count(*) FROM users WHERE deleted_at IS NOT NULL)";
    conn.prepare_cached(SQL)?
        .query_row([], |r| r.get::<_, i64>(0))
        .map(|n| usize::try_from(n).unwrap_or(0))
}

/// One page of live users, oldest first: at most `limit`, after skipping
/// `offset` (index `users_live_created`, so skipped users are never read).
///
/// # Errors
/// SQLite errors.
pub fn users_page(
    conn: &Connection,
    limit: usize,
    offset: usize,
) -> rusqlite::Result<Vec<ScimUserRow>> {
    const SQL: &str = concat!(
        "SELECT ",
        scim_user_columns!(),
        " ORDER BY created_at, id LIMIT ?1 OFFSET ?2"
    );
    conn.prepare_cached(SQL)?
        .query_map(params![clamp(limit), clamp(offset)], scim_user)?
        .collect()
}

/// One of a user's groups: id, display name, and whether the membership
/// is direct (else through a nested group).
pub type Membership = (String, String, bool);

/// Every effective membership of a live user as (user id, membership),
/// each user's groups oldest first: one query instead of one per user when
/// every user is rendered.
///
/// # Errors
/// SQLite errors.
pub fn all_memberships(conn: &Connection) -> rusqlite::Result<Vec<(String, Membership)>> {
    const SQL: &str = "SELECT m.user_id, g.id, g.display_name,
             EXISTS (SELECT 1 FROM group_direct d WHERE d.group_id = m.group_id
                     AND d.member_id = m.user_id AND d.member_type = 'User')
         FROM group_members m
         JOIN groups g ON g.id = m.group_id ORDER BY m.user_id, g.created_at, g.id";
    conn.prepare_cached(SQL)?
        .query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))?
        .collect()
}

/// The groups `user_id` is in, directly or through nested groups, oldest
/// first.
///
/// # Errors
/// SQLite errors.
pub fn memberships(conn: &Connection, user_id: &str) -> rusqlite::Result<Vec<Membership>> {
    const SQL: &str = "SELECT g.id, g.display_name,
             EXISTS (SELECT 1 FROM group_direct d WHERE d.group_id = m.group_id
                     AND d.member_id = m.user_id AND d.member_type = 'User')
         FROM group_members m JOIN groups g ON g.id = m.group_id
         WHERE m.user_id = ?1 ORDER BY g.created_at, g.id";
    conn.prepare_cached(SQL)?
        .query_map([user_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect()
}

/// Stores the SCIM version and extra attributes of a user.
///
/// # Errors
/// SQLite errors.
pub fn set_user_scim(
    conn: &Connection,
    id: &str,
    version: i64,
    attrs: &str,
) -> rusqlite::Result<()> {
    // Any SCIM write takes the user over: from then on the identity
    // provider manages them (and a `scim_only` org admits them).
    conn.prepare_cached(
        "UPDATE users SET scim_version = ?2, scim_attrs = ?3, provisioned_by = 'scim' WHERE id = ?1",
    )?
        .execute(params![id, version, attrs])?;
    Ok(())
}

/// Marks a user deleted: inactive, out of SCIM and out of every group,
/// with its user name replaced by `freed_name` so the name can be reused.
///
/// # Errors
/// SQLite errors.
pub fn mark_deleted(
    conn: &Connection,
    id: &str,
    freed_name: &str,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    super::groups::remove_user(conn, id)?;
    Ok(conn
        .prepare_cached(
            "UPDATE users SET deleted_at = ?3, active = 0, user_name = ?2, updated_at = ?3
             WHERE id = ?1 AND deleted_at IS NULL",
        )?
        .execute(params![id, freed_name, now_ms])?
        == 1)
}

/// A group row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    pub id: String,
    pub display_name: String,
    pub external_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

macro_rules! group_columns {
    () => {
        "id, display_name, external_id, created_at, updated_at, scim_version FROM groups"
    };
}

fn group(r: &Row<'_>) -> rusqlite::Result<GroupRow> {
    Ok(GroupRow {
        id: r.get(0)?,
        display_name: r.get(1)?,
        external_id: r.get(2)?,
        created_at: r.get(3)?,
        updated_at: r.get(4)?,
        version: r.get(5)?,
    })
}

/// # Errors
/// SQLite errors (a duplicate display name is a constraint error).
pub fn insert_group(conn: &Connection, g: &GroupRow) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO groups (id, display_name, external_id, created_at, updated_at, scim_version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        g.id,
        g.display_name,
        g.external_id,
        g.created_at,
        g.updated_at,
        g.version
    ])?;
    Ok(())
}

/// # Errors
/// SQLite errors.
pub fn update_group(conn: &Connection, g: &GroupRow) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE groups SET display_name = ?2, external_id = ?3, updated_at = ?4, scim_version = ?5
         WHERE id = ?1",
    )?
    .execute(params![
        g.id,
        g.display_name,
        g.external_id,
        g.updated_at,
        g.version
    ])?;
    Ok(())
}

/// Deletes a group and its memberships; the groups it was nested in lose
/// the users who were theirs through it.
///
/// # Errors
/// SQLite errors.
pub fn delete_group(conn: &Connection, id: &str) -> rusqlite::Result<bool> {
    let parents = super::groups::parents(conn, id)?;
    conn.prepare_cached("DELETE FROM group_members WHERE group_id = ?1")?
        .execute([id])?;
    let deleted = conn
        .prepare_cached("DELETE FROM groups WHERE id = ?1")?
        .execute([id])?
        == 1;
    for p in parents {
        super::groups::refresh(conn, &p)?;
    }
    Ok(deleted)
}

/// # Errors
/// SQLite errors.
pub fn group_by_id(conn: &Connection, id: &str) -> rusqlite::Result<Option<GroupRow>> {
    const SQL: &str = concat!("SELECT ", group_columns!(), " WHERE id = ?1");
    conn.prepare_cached(SQL)?.query_row([id], group).optional()
}

/// Groups named `name`, case-insensitively (index `groups_display_name`).
///
/// # Errors
/// SQLite errors.
pub fn groups_by_display_name(conn: &Connection, name: &str) -> rusqlite::Result<Vec<GroupRow>> {
    const SQL: &str = concat!(
        "SELECT ",
        group_columns!(),
        " WHERE display_name = ?1 COLLATE NOCASE ORDER BY created_at, id"
    );
    conn.prepare_cached(SQL)?
        .query_map([name], group)?
        .collect()
}

/// Groups whose externalId is `value`.
///
/// # Errors
/// SQLite errors.
pub fn groups_by_external_id(conn: &Connection, value: &str) -> rusqlite::Result<Vec<GroupRow>> {
    const SQL: &str = concat!(
        "SELECT ",
        group_columns!(),
        " WHERE external_id = ?1 ORDER BY created_at, id"
    );
    conn.prepare_cached(SQL)?
        .query_map([value], group)?
        .collect()
}

/// Groups that have the user `user_id` as a member, directly or through
/// nested groups (index `group_members_user`).
///
/// # Errors
/// SQLite errors.
pub fn groups_with_member(conn: &Connection, user_id: &str) -> rusqlite::Result<Vec<GroupRow>> {
    const SQL: &str = "SELECT g.id, g.display_name, g.external_id, g.created_at, g.updated_at,
         g.scim_version FROM groups g JOIN group_members m ON m.group_id = g.id
         WHERE m.user_id = ?1 ORDER BY g.created_at, g.id";
    conn.prepare_cached(SQL)?
        .query_map([user_id], group)?
        .collect()
}

/// Every group, oldest first.
///
/// # Errors
/// SQLite errors.
pub fn groups(conn: &Connection) -> rusqlite::Result<Vec<GroupRow>> {
    const SQL: &str = concat!("SELECT ", group_columns!(), " ORDER BY created_at, id");
    conn.prepare_cached(SQL)?.query_map([], group)?.collect()
}

/// How many groups there are.
///
/// # Errors
/// SQLite errors.
pub fn count_groups(conn: &Connection) -> rusqlite::Result<usize> {
    conn.prepare_cached("SELECT count(*) FROM groups")?
        .query_row([], |r| r.get::<_, i64>(0))
        .map(|n| usize::try_from(n).unwrap_or(0))
}

/// One page of groups, oldest first (index `groups_created`).
///
/// # Errors
/// SQLite errors.
pub fn groups_page(
    conn: &Connection,
    limit: usize,
    offset: usize,
) -> rusqlite::Result<Vec<GroupRow>> {
    const SQL: &str = concat!(
        "SELECT ",
        group_columns!(),
        " ORDER BY created_at, id LIMIT ?1 OFFSET ?2"
    );
    conn.prepare_cached(SQL)?
        .query_map(params![clamp(limit), clamp(offset)], group)?
        .collect()
}

/// The live direct user members of a group: (user id, user name), oldest
/// first.
///
/// # Errors
/// SQLite errors.
pub fn members(conn: &Connection, group_id: &str) -> rusqlite::Result<Vec<(String, String)>> {
    super::groups::direct_users(conn, group_id)
}

/// Replaces the direct user members of a group with exactly `user_ids`.
/// Only the memberships that change are written: each one moves that
/// member's share of the aggregates of the team and of every team it is
/// nested in (migration 0009's triggers, through `groups::refresh`).
///
/// # Errors
/// SQLite errors.
pub fn set_members(conn: &Connection, group_id: &str, user_ids: &[String]) -> rusqlite::Result<()> {
    super::groups::set_direct(conn, group_id, super::groups::MemberType::User, user_ids)
}
