//! Group membership, direct and effective (migration 0017). `group_direct`
//! holds each group's direct members as the identity provider gives them,
//! users and groups (RFC 7643 §4.2); `group_members` holds the effective
//! membership, every user in a group directly or through the groups nested
//! in it, and is written only by [`refresh`]. Whoever asks who is in a
//! team (the admin role, team scopes, the aggregate totals kept by the
//! triggers of migrations 0009 and 0012) reads `group_members` and so sees
//! the effective membership.

use rusqlite::{Connection, params};

/// A direct member's kind, as SCIM's `members[].type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberType {
    User,
    Group,
}

impl MemberType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Group => "Group",
        }
    }
}

/// The group `?1` and every group it is nested in, at any depth. `UNION`
/// (not `UNION ALL`) ends the walk even if a cycle were ever stored.
const SELF_AND_ANCESTORS: &str = "WITH RECURSIVE up(g) AS (
         SELECT ?1
         UNION SELECT d.group_id FROM group_direct d JOIN up ON d.member_id = up.g
               WHERE d.member_type = 'Group')
     SELECT g FROM up";

/// Every user in the group `?1` directly or through nested groups.
const EFFECTIVE_MEMBERS: &str = "WITH RECURSIVE down(g) AS (
         SELECT ?1
         UNION SELECT d.member_id FROM group_direct d JOIN down ON d.group_id = down.g
               WHERE d.member_type = 'Group')
     SELECT DISTINCT d.member_id FROM group_direct d JOIN down ON d.group_id = down.g
     WHERE d.member_type = 'User' ORDER BY d.member_id";

/// Whether the group `?2` is `?1` or nested in it at any depth.
const CONTAINS_GROUP: &str = "WITH RECURSIVE down(g) AS (
         SELECT ?1
         UNION SELECT d.member_id FROM group_direct d JOIN down ON d.group_id = down.g
               WHERE d.member_type = 'Group')
     SELECT EXISTS (SELECT 1 FROM down WHERE g = ?2)";

/// The users in `group_id` directly or through nested groups: the
/// effective membership, computed from the direct one.
///
/// # Errors
/// SQLite errors.
pub fn effective_members(conn: &Connection, group_id: &str) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached(EFFECTIVE_MEMBERS)?
        .query_map([group_id], |r| r.get(0))?
        .collect()
}

/// Rewrites the effective membership (`group_members`) of `group_id` and
/// of every group it is nested in from the direct memberships. Only rows
/// that change are written, so the aggregate triggers move exactly the
/// shares of the users who came or went.
///
/// # Errors
/// SQLite errors.
pub fn refresh(conn: &Connection, group_id: &str) -> rusqlite::Result<()> {
    let groups: Vec<String> = conn
        .prepare_cached(SELF_AND_ANCESTORS)?
        .query_map([group_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for g in groups {
        let members = effective_members(conn, &g)?;
        let keep = serde_json::to_string(&members).unwrap_or_else(|_| "[]".into());
        conn.prepare_cached(
            "DELETE FROM group_members WHERE group_id = ?1
             AND user_id NOT IN (SELECT value FROM json_each(?2))",
        )?
        .execute([g.as_str(), keep.as_str()])?;
        let mut add = conn.prepare_cached(
            "INSERT OR IGNORE INTO group_members (group_id, user_id) VALUES (?1, ?2)",
        )?;
        for u in &members {
            add.execute([g.as_str(), u.as_str()])?;
        }
    }
    Ok(())
}

/// Replaces the direct members of `kind` of `group_id` with exactly `ids`,
/// then refreshes the effective membership of the group and the groups it
/// is nested in. The caller has checked that every id exists and that no
/// group added makes a cycle ([`contains_group`]).
///
/// # Errors
/// SQLite errors.
pub fn set_direct(
    conn: &Connection,
    group_id: &str,
    kind: MemberType,
    ids: &[String],
) -> rusqlite::Result<()> {
    let keep = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
    let removed = conn
        .prepare_cached(
            "DELETE FROM group_direct WHERE group_id = ?1 AND member_type = ?2
             AND member_id NOT IN (SELECT value FROM json_each(?3))",
        )?
        .execute(params![group_id, kind.as_str(), keep])?;
    let mut add = conn.prepare_cached(
        "INSERT OR IGNORE INTO group_direct (group_id, member_id, member_type) VALUES (?1, ?2, ?3)",
    )?;
    let mut added = 0;
    for id in ids {
        added += add.execute(params![group_id, id, kind.as_str()])?;
    }
    if removed + added > 0 {
        refresh(conn, group_id)?;
    }
    Ok(())
}

/// Replaces the groups `user_id` is a direct member of with exactly
/// `group_ids` (the groups claim at sign-in), then refreshes the effective
/// membership of every group that changed and those they are nested in.
///
/// # Errors
/// SQLite errors.
pub fn set_user_groups(
    conn: &Connection,
    user_id: &str,
    group_ids: &[String],
) -> rusqlite::Result<()> {
    let before = direct_groups_of_user(conn, user_id)?;
    let keep = serde_json::to_string(group_ids).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(
        "DELETE FROM group_direct WHERE member_id = ?1 AND member_type = 'User'
         AND group_id NOT IN (SELECT value FROM json_each(?2))",
    )?
    .execute([user_id, keep.as_str()])?;
    let mut add = conn.prepare_cached(
        "INSERT OR IGNORE INTO group_direct (group_id, member_id, member_type) VALUES (?1, ?2, 'User')",
    )?;
    for g in group_ids {
        add.execute([g.as_str(), user_id])?;
    }
    let changed = before
        .iter()
        .filter(|g| !group_ids.contains(g))
        .chain(group_ids.iter().filter(|g| !before.contains(g)));
    for g in changed {
        refresh(conn, g)?;
    }
    Ok(())
}

/// The groups `user_id` is a direct member of.
///
/// # Errors
/// SQLite errors.
pub fn direct_groups_of_user(conn: &Connection, user_id: &str) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached(
        "SELECT group_id FROM group_direct WHERE member_id = ?1 AND member_type = 'User'",
    )?
    .query_map([user_id], |r| r.get(0))?
    .collect()
}

/// Removes `user_id` from every group, directly and effectively (a user
/// deleted over SCIM).
///
/// # Errors
/// SQLite errors.
pub fn remove_user(conn: &Connection, user_id: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM group_direct WHERE member_id = ?1 AND member_type = 'User'")?
        .execute([user_id])?;
    conn.prepare_cached("DELETE FROM group_members WHERE user_id = ?1")?
        .execute([user_id])?;
    Ok(())
}

/// The groups `group_id` is a direct member of.
///
/// # Errors
/// SQLite errors.
pub fn parents(conn: &Connection, group_id: &str) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached(
        "SELECT group_id FROM group_direct WHERE member_id = ?1 AND member_type = 'Group'",
    )?
    .query_map([group_id], |r| r.get(0))?
    .collect()
}

/// Whether `inner` is `outer` or nested in it at any depth: adding `outer`
/// as a member of `inner` would then make a cycle.
///
/// # Errors
/// SQLite errors.
pub fn contains_group(conn: &Connection, outer: &str, inner: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached(CONTAINS_GROUP)?
        .query_row([outer, inner], |r| r.get(0))
}

/// The direct members of `group_id` that are groups: (id, display name),
/// oldest first.
///
/// # Errors
/// SQLite errors.
pub fn child_groups(conn: &Connection, group_id: &str) -> rusqlite::Result<Vec<(String, String)>> {
    conn.prepare_cached(
        "SELECT g.id, g.display_name FROM group_direct d JOIN groups g ON g.id = d.member_id
         WHERE d.group_id = ?1 AND d.member_type = 'Group' ORDER BY g.created_at, g.id",
    )?
    .query_map([group_id], |r| Ok((r.get(0)?, r.get(1)?)))?
    .collect()
}

/// The direct members of `group_id` that are live users: (id, user name),
/// oldest first.
///
/// # Errors
/// SQLite errors.
pub fn direct_users(conn: &Connection, group_id: &str) -> rusqlite::Result<Vec<(String, String)>> {
    conn.prepare_cached(
        "SELECT u.id, u.user_name FROM group_direct d JOIN users u ON u.id = d.member_id
         WHERE d.group_id = ?1 AND d.member_type = 'User' AND u.deleted_at IS NULL
         ORDER BY u.created_at, u.id",
    )?
    .query_map([group_id], |r| Ok((r.get(0)?, r.get(1)?)))?
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().expect("memory db");
        crate::store::migrations::ORG
            .to_latest(&mut conn)
            .expect("migrate");
        for u in ["u1", "u2", "u3"] {
            conn.execute(
                "INSERT INTO users (id, user_name, provisioned_by, created_at, updated_at)
                 VALUES (?1, ?1, 'scim', 0, 0)",
                [u],
            )
            .expect("user");
        }
        for g in ["a", "b", "c"] {
            conn.execute(
                "INSERT INTO groups (id, display_name, created_at, updated_at) VALUES (?1, ?1, 0, 0)",
                [g],
            )
            .expect("group");
        }
        conn
    }

    fn effective(conn: &Connection, g: &str) -> Vec<String> {
        conn.prepare("SELECT user_id FROM group_members WHERE group_id = ?1 ORDER BY user_id")
            .expect("prepare")
            .query_map([g], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    fn v(ids: &[&str]) -> Vec<String> {
        ids.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn nested_members_count_in_every_enclosing_group_and_leave_with_their_group() {
        let conn = db();
        // a ⊃ b ⊃ c; u1 in a, u2 in b, u3 in c.
        set_direct(&conn, "c", MemberType::User, &v(&["u3"])).expect("c");
        set_direct(&conn, "b", MemberType::User, &v(&["u2"])).expect("b");
        set_direct(&conn, "b", MemberType::Group, &v(&["c"])).expect("b ⊃ c");
        set_direct(&conn, "a", MemberType::User, &v(&["u1"])).expect("a");
        set_direct(&conn, "a", MemberType::Group, &v(&["b"])).expect("a ⊃ b");
        assert_eq!(effective(&conn, "a"), v(&["u1", "u2", "u3"]));
        assert_eq!(effective(&conn, "b"), v(&["u2", "u3"]));
        assert_eq!(
            effective_members(&conn, "a").expect("a"),
            effective(&conn, "a")
        );
        assert!(contains_group(&conn, "a", "c").expect("walk"));
        assert!(!contains_group(&conn, "c", "a").expect("walk"));

        // A user joining the innermost group counts in all three.
        set_user_groups(&conn, "u1", &v(&["a", "c"])).expect("claim");
        assert_eq!(effective(&conn, "b"), v(&["u1", "u2", "u3"]));
        // c leaves b: b and a lose u3 (u1 stays in a directly).
        set_direct(&conn, "b", MemberType::Group, &[]).expect("b");
        assert_eq!(effective(&conn, "b"), v(&["u2"]));
        assert_eq!(effective(&conn, "a"), v(&["u1", "u2"]));
        // A group deleted leaves its parents' effective membership.
        set_direct(&conn, "b", MemberType::Group, &v(&["c"])).expect("again");
        let parents = parents(&conn, "c").expect("parents");
        conn.execute("DELETE FROM groups WHERE id = 'c'", [])
            .expect("delete");
        for p in parents {
            refresh(&conn, &p).expect("refresh");
        }
        assert_eq!(effective(&conn, "a"), v(&["u1", "u2"]));
        remove_user(&conn, "u2").expect("remove");
        assert_eq!(effective(&conn, "a"), v(&["u1"]));
    }
}
