//! SQL of users, groups and memberships (see `crate::users`).
//!
//! One rule for users deleted over SCIM (who wait out their deletion hold
//! with `deleted_at` set): the lookups here do not see them, so no caller
//! has to remember to check. The two that must see every row say so in
//! their names or docs: [`by_id_including_deleted`] (reading what is held
//! during the deletion hold), [`by_user_name_including_deleted`]
//! (uniqueness, as the index counts every row) and [`by_identity`] (a
//! deleted person's identity must stay refused, never be created afresh).

use rusqlite::{Connection, OptionalExtension, Row, params};

/// A user row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: String,
    pub oidc_issuer: Option<String>,
    pub oidc_subject: Option<String>,
    pub user_name: String,
    pub display_name: String,
    /// JSON array of `{value, type?, primary?}`.
    pub emails: String,
    pub external_id: Option<String>,
    pub active: bool,
    pub admin_granted: bool,
    pub provisioned_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! user_columns {
    () => {
        "id, oidc_issuer, oidc_subject, user_name, display_name, emails, external_id, active, admin_granted, provisioned_by, created_at, updated_at"
    };
}

/// Maps the first twelve columns (in `user_columns!` order) to a row.
pub(crate) fn user(r: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        id: r.get(0)?,
        oidc_issuer: r.get(1)?,
        oidc_subject: r.get(2)?,
        user_name: r.get(3)?,
        display_name: r.get(4)?,
        emails: r.get(5)?,
        external_id: r.get(6)?,
        active: r.get(7)?,
        admin_granted: r.get(8)?,
        provisioned_by: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
    })
}

/// # Errors
/// SQLite errors (a duplicate user name or identity is a constraint error).
pub fn insert(conn: &Connection, u: &UserRow) -> rusqlite::Result<()> {
    const SQL: &str = concat!(
        "INSERT INTO users (",
        user_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    );
    conn.prepare_cached(SQL)?.execute(params![
        u.id,
        u.oidc_issuer,
        u.oidc_subject,
        u.user_name,
        u.display_name,
        u.emails,
        u.external_id,
        u.active,
        u.admin_granted,
        u.provisioned_by,
        u.created_at,
        u.updated_at
    ])?;
    Ok(())
}

/// Updates every mutable column of `u` (matched by id).
///
/// # Errors
/// SQLite errors.
pub fn update(conn: &Connection, u: &UserRow) -> rusqlite::Result<bool> {
    const SQL: &str = "UPDATE users SET oidc_issuer = ?2, oidc_subject = ?3, user_name = ?4,
         display_name = ?5, emails = ?6, external_id = ?7, active = ?8, admin_granted = ?9,
         updated_at = ?10 WHERE id = ?1";
    Ok(conn.prepare_cached(SQL)?.execute(params![
        u.id,
        u.oidc_issuer,
        u.oidc_subject,
        u.user_name,
        u.display_name,
        u.emails,
        u.external_id,
        u.active,
        u.admin_granted,
        u.updated_at
    ])? == 1)
}

/// # Errors
/// SQLite errors.
pub fn by_id(conn: &Connection, id: &str) -> rusqlite::Result<Option<UserRow>> {
    const SQL: &str = concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE id = ?1 AND deleted_at IS NULL"
    );
    conn.prepare_cached(SQL)?.query_row([id], user).optional()
}

/// Like [`by_id`], a user deleted over SCIM included: for reading what is
/// still held about them during the deletion hold.
///
/// # Errors
/// SQLite errors.
pub fn by_id_including_deleted(conn: &Connection, id: &str) -> rusqlite::Result<Option<UserRow>> {
    const SQL: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id = ?1");
    conn.prepare_cached(SQL)?.query_row([id], user).optional()
}

/// The user who signs in as (`issuer`, `subject`), deleted over SCIM or
/// not: the caller refuses a deleted (inactive) one, and must never create
/// a second row for the same identity.
///
/// # Errors
/// SQLite errors.
pub fn by_identity(
    conn: &Connection,
    issuer: &str,
    subject: &str,
) -> rusqlite::Result<Option<UserRow>> {
    const SQL: &str = concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE oidc_issuer = ?1 AND oidc_subject = ?2"
    );
    conn.prepare_cached(SQL)?
        .query_row([issuer, subject], user)
        .optional()
}

/// Case-insensitive, as user names are compared everywhere.
///
/// # Errors
/// SQLite errors.
pub fn by_user_name(conn: &Connection, user_name: &str) -> rusqlite::Result<Option<UserRow>> {
    const SQL: &str = concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE user_name = ?1 COLLATE NOCASE AND deleted_at IS NULL"
    );
    conn.prepare_cached(SQL)?
        .query_row([user_name], user)
        .optional()
}

/// Like [`by_user_name`], users deleted over SCIM included: for checks of
/// uniqueness, since the index on `user_name` counts every row.
///
/// # Errors
/// SQLite errors.
pub fn by_user_name_including_deleted(
    conn: &Connection,
    user_name: &str,
) -> rusqlite::Result<Option<UserRow>> {
    const SQL: &str = concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE user_name = ?1 COLLATE NOCASE"
    );
    conn.prepare_cached(SQL)?
        .query_row([user_name], user)
        .optional()
}

/// Accounts without an identity yet that list `email` (case-insensitive)
/// among their emails: candidates for linking by verified email.
///
/// # Errors
/// SQLite errors.
pub fn unlinked_by_email(conn: &Connection, email: &str) -> rusqlite::Result<Vec<UserRow>> {
    const SQL: &str = concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE oidc_subject IS NULL AND EXISTS (
             SELECT 1 FROM json_each(users.emails) e
             WHERE lower(json_extract(e.value, '$.value')) = lower(?1))"
    );
    conn.prepare_cached(SQL)?
        .query_map([email], user)?
        .collect()
}

/// SCIM-provisioned accounts without an identity yet whose `externalId`
/// is `external_id`: candidates for linking by the IdP's externalId.
///
/// # Errors
/// SQLite errors.
pub fn unlinked_by_external_id(
    conn: &Connection,
    external_id: &str,
) -> rusqlite::Result<Vec<UserRow>> {
    const SQL: &str = concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE oidc_subject IS NULL AND provisioned_by = 'scim' AND external_id = ?1"
    );
    conn.prepare_cached(SQL)?
        .query_map([external_id], user)?
        .collect()
}

/// # Errors
/// SQLite errors.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<UserRow>> {
    const SQL: &str = concat!(
        "SELECT ",
        user_columns!(),
        " FROM users WHERE deleted_at IS NULL ORDER BY user_name COLLATE NOCASE"
    );
    conn.prepare_cached(SQL)?.query_map([], user)?.collect()
}

/// Names of the groups `user_id` belongs to, directly or through nested
/// groups (the effective membership: what `admin_groups` is matched to).
///
/// # Errors
/// SQLite errors.
pub fn group_names(conn: &Connection, user_id: &str) -> rusqlite::Result<Vec<String>> {
    const SQL: &str =
        "SELECT g.display_name FROM groups g JOIN group_members m ON m.group_id = g.id
         WHERE m.user_id = ?1 ORDER BY g.display_name";
    conn.prepare_cached(SQL)?
        .query_map([user_id], |r| r.get(0))?
        .collect()
}

/// The names of every group of the org, alphabetically.
///
/// # Errors
/// SQLite errors.
pub fn all_group_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    const SQL: &str = "SELECT display_name FROM groups ORDER BY display_name COLLATE NOCASE";
    conn.prepare_cached(SQL)?
        .query_map([], |r| r.get(0))?
        .collect()
}

/// The id of the group named `name` (case-insensitive), creating it.
///
/// # Errors
/// SQLite errors.
pub fn ensure_group(
    conn: &Connection,
    id_if_new: &str,
    name: &str,
    now_ms: i64,
) -> rusqlite::Result<String> {
    const FIND: &str = "SELECT id FROM groups WHERE display_name = ?1 COLLATE NOCASE";
    if let Some(id) = conn
        .prepare_cached(FIND)?
        .query_row([name], |r| r.get(0))
        .optional()?
    {
        return Ok(id);
    }
    const INSERT: &str =
        "INSERT INTO groups (id, display_name, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)";
    conn.prepare_cached(INSERT)?
        .execute(params![id_if_new, name, now_ms])?;
    Ok(id_if_new.to_string())
}

/// Replaces the groups `user_id` is a direct member of with exactly
/// `group_ids`. Only the memberships that change are written: each one
/// moves the user's share of the aggregates of the team and of the teams it
/// is nested in (migration 0009's triggers, through `groups::refresh`).
///
/// # Errors
/// SQLite errors.
pub fn set_memberships(
    conn: &Connection,
    user_id: &str,
    group_ids: &[String],
) -> rusqlite::Result<()> {
    super::groups::set_user_groups(conn, user_id, group_ids)
}

/// Whether `user_id` holds the directly granted viewer role.
///
/// # Errors
/// SQLite errors.
pub fn viewer_granted(conn: &Connection, user_id: &str) -> rusqlite::Result<bool> {
    const SQL: &str = "SELECT 1 FROM role_grants WHERE user_id = ?1 AND role = 'viewer'";
    Ok(conn
        .prepare_cached(SQL)?
        .query_row([user_id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Grants (`granted`) or removes the direct viewer role of `user_id`;
/// whether anything changed.
///
/// # Errors
/// SQLite errors.
pub fn set_viewer(
    conn: &Connection,
    user_id: &str,
    granted: bool,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    const GRANT: &str =
        "INSERT INTO role_grants (user_id, role, granted_at) VALUES (?1, 'viewer', ?2)
         ON CONFLICT (user_id) DO NOTHING";
    const REVOKE: &str = "DELETE FROM role_grants WHERE user_id = ?1 AND role = 'viewer'";
    let n = if granted {
        conn.prepare_cached(GRANT)?
            .execute(params![user_id, now_ms])?
    } else {
        conn.prepare_cached(REVOKE)?.execute([user_id])?
    };
    Ok(n > 0)
}

/// The role a directory search keeps (see `crate::users::Role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleFilter {
    Admin,
    Viewer,
    Member,
}

/// A search of the members directory: each `Some` narrows it; pages are
/// in user-name order (case-insensitive), `after` the last user name of
/// the previous page (user names are unique, case-insensitively).
#[derive(Debug, Clone, Default)]
pub struct Directory<'a> {
    /// Three characters or more: found anywhere in the user name, display
    /// name or an email address (the trigram index `member_search`).
    pub text: Option<&'a str>,
    /// One or two characters: the start of the user name or display name.
    pub prefix: Option<&'a str>,
    pub active: Option<bool>,
    pub group_id: Option<&'a str>,
    pub role: Option<RoleFilter>,
    /// Ids of the groups named in `admin_groups` (those that exist).
    pub admin_group_ids: &'a [String],
    /// Ids of the groups named in `viewer_groups` (those that exist).
    pub viewer_group_ids: &'a [String],
    pub after: Option<&'a str>,
}

/// How many rows of the user-name order a filtered page first looks at
/// before it asks the filters' indexes for their candidates instead.
const WINDOW: u32 = 2_000;

/// The two ways a page is found: walking the user-name index and testing
/// each row (best when many match: the page fills at once), or taking the
/// candidates from the filters' indexes and sorting them (best when few
/// match).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Walk the user-name order, at most `Some(n)` rows of it.
    Walk(Option<u32>),
    Candidates,
}

/// The users `d` keeps, in user-name order, at most `limit`: keyset
/// paging (never an offset). Without a selective filter the page is a walk
/// of the user-name index; with one (a search, a group, the admin or
/// viewer role, deactivated) the first [`WINDOW`] rows of that walk are
/// tried first, and when they do not fill the page the candidates come
/// from the filter's index (the trigram search, the group's members, the
/// grants) and are sorted. Both give the same rows (migration 0021).
///
/// # Errors
/// SQLite errors.
pub fn directory(
    conn: &Connection,
    d: &Directory<'_>,
    limit: u32,
) -> rusqlite::Result<Vec<UserRow>> {
    let selective = d.text.is_some()
        || d.group_id.is_some()
        || d.active == Some(false)
        || matches!(d.role, Some(RoleFilter::Admin | RoleFilter::Viewer));
    if !selective {
        return page(conn, d, limit, Plan::Walk(None));
    }
    // Admins and viewers are few: their candidates are cheap and a walk
    // would rarely fill a page. The walk tests a search with ASCII case
    // folding; the trigram index folds other letters too, so a non-ASCII
    // search takes the candidates.
    let few = matches!(d.role, Some(RoleFilter::Admin | RoleFilter::Viewer));
    if !few && d.text.is_none_or(|t| t.is_ascii()) {
        let rows = page(conn, d, limit, Plan::Walk(Some(WINDOW)))?;
        if rows.len() >= limit as usize {
            return Ok(rows);
        }
    }
    page(conn, d, limit, Plan::Candidates)
}

/// The search text of the row `u` (as migration 0021's triggers write it).
const SEARCH_TEXT: &str = "lower(u.user_name || ' ' || u.display_name || ' ' || coalesce(
    (SELECT group_concat(json_extract(e.value, '$.value'), ' ') FROM json_each(u.emails) e), ''))";

fn page(
    conn: &Connection,
    d: &Directory<'_>,
    limit: u32,
    plan: Plan,
) -> rusqlite::Result<Vec<UserRow>> {
    use rusqlite::types::Value;
    let walk = matches!(plan, Plan::Walk(_));
    let mut args: Vec<Value> = Vec::new();
    let mut arg = |v: Value| {
        args.push(v);
        format!("?{}", args.len())
    };
    let cols = "u.id, u.oidc_issuer, u.oidc_subject, u.user_name, u.display_name, u.emails, u.external_id, u.active, u.admin_granted, u.provisioned_by, u.created_at, u.updated_at";
    let mut sql = match plan {
        Plan::Walk(Some(n)) => {
            let after = d.after.map_or(String::new(), |a| {
                format!(
                    " AND user_name COLLATE NOCASE > {}",
                    arg(Value::Text(a.to_string()))
                )
            });
            format!(
                "SELECT {cols} FROM (SELECT * FROM users WHERE deleted_at IS NULL{after}
                 ORDER BY user_name COLLATE NOCASE LIMIT {n}) u WHERE 1"
            )
        }
        _ => format!("SELECT {cols} FROM users u WHERE u.deleted_at IS NULL"),
    };
    if let Some(t) = d.text {
        if walk {
            let a = arg(Value::Text(t.to_ascii_lowercase()));
            sql.push_str(&format!(" AND instr({SEARCH_TEXT}, {a}) > 0"));
        } else {
            let phrase = format!("\"{}\"", t.replace('"', "\"\""));
            sql.push_str(&format!(
                " AND u.rowid IN (SELECT rowid FROM member_search WHERE member_search MATCH {})",
                arg(Value::Text(phrase))
            ));
        }
    }
    if let Some(p) = d.prefix {
        let a = arg(Value::Text(format!("{p}%")));
        sql.push_str(&format!(
            " AND (u.user_name LIKE {a} OR u.display_name LIKE {a})"
        ));
    }
    if let Some(active) = d.active {
        sql.push_str(if active {
            " AND u.active = 1"
        } else {
            " AND u.active = 0"
        });
    }
    if let Some(g) = d.group_id {
        let a = arg(Value::Text(g.to_string()));
        sql.push_str(&if walk {
            format!(
                " AND EXISTS (SELECT 1 FROM group_members WHERE group_id = {a} AND user_id = u.id)"
            )
        } else {
            format!(" AND u.id IN (SELECT user_id FROM group_members WHERE group_id = {a})")
        });
    }
    if let Some(role) = d.role {
        // `u` is in one of `ids` (false for none).
        let mut member_of = |who: &str, ids: &[String]| {
            if ids.is_empty() {
                return ("0".to_string(), None);
            }
            let list = ids
                .iter()
                .map(|id| arg(Value::Text(id.clone())))
                .collect::<Vec<_>>()
                .join(", ");
            (
                format!(
                    "EXISTS (SELECT 1 FROM group_members m WHERE m.user_id = {who} AND m.group_id IN ({list}))"
                ),
                Some(format!(
                    "SELECT x.rowid FROM users x JOIN group_members m ON m.user_id = x.id WHERE m.group_id IN ({list})"
                )),
            )
        };
        let (in_admin_group, admin_members) = member_of("u.id", d.admin_group_ids);
        let (in_viewer_group, viewer_members) = member_of("u.id", d.viewer_group_ids);
        let is_admin = format!("(u.admin_granted = 1 OR {in_admin_group})");
        let is_viewer = format!(
            "(EXISTS (SELECT 1 FROM role_grants r WHERE r.user_id = u.id AND r.role = 'viewer') OR {in_viewer_group})"
        );
        let union = |set: Option<String>| set.map_or(String::new(), |q| format!(" UNION {q}"));
        sql.push_str(&match (role, walk) {
            (RoleFilter::Admin, true) => format!(" AND {is_admin}"),
            (RoleFilter::Admin, false) => format!(
                " AND u.rowid IN (SELECT rowid FROM users WHERE admin_granted = 1{})",
                union(admin_members)
            ),
            (RoleFilter::Viewer, true) => format!(" AND NOT {is_admin} AND {is_viewer}"),
            (RoleFilter::Viewer, false) => format!(
                " AND u.rowid IN (SELECT x.rowid FROM users x JOIN role_grants r ON r.user_id = x.id
                  WHERE r.role = 'viewer'{}) AND NOT {is_admin}",
                union(viewer_members)
            ),
            (RoleFilter::Member, _) => format!(" AND NOT {is_admin} AND NOT {is_viewer}"),
        });
    }
    match (plan, d.after) {
        (Plan::Walk(None), Some(after)) => {
            let a = arg(Value::Text(after.to_string()));
            sql.push_str(&format!(" AND u.user_name COLLATE NOCASE > {a}"));
        }
        // `lower` orders as NOCASE does (both fold ASCII only), and keeps
        // the user-name index out of the plan: the candidates drive it.
        (Plan::Candidates, Some(after)) => {
            let a = arg(Value::Text(after.to_string()));
            sql.push_str(&format!(" AND lower(u.user_name) > lower({a})"));
        }
        _ => {}
    }
    let lim = arg(Value::Integer(i64::from(limit)));
    sql.push_str(&if plan == Plan::Candidates {
        format!(" ORDER BY lower(u.user_name) LIMIT {lim}")
    } else {
        format!(" ORDER BY u.user_name COLLATE NOCASE LIMIT {lim}")
    });
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), user)?;
    rows.collect()
}

/// The id of the group named `name` (case-insensitive), if there is one.
///
/// # Errors
/// SQLite errors.
pub fn group_id(conn: &Connection, name: &str) -> rusqlite::Result<Option<String>> {
    const SQL: &str = "SELECT id FROM groups WHERE display_name = ?1 COLLATE NOCASE";
    conn.prepare_cached(SQL)?
        .query_row([name], |r| r.get(0))
        .optional()
}
