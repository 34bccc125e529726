//! Org aggregates (SECURITY.md P19): per concept, and per team, how many
//! engineers have seen and demonstrated it and how well it is retained.
//! Each engineer's state per concept lives in `concept_states`, kept by
//! every push (`states`); the sums over the counted engineers of each
//! scope (the org, each team) live in `concept_totals`, kept by the
//! database's triggers on every change of who is counted or what they
//! hold (migration 0009), so a request reads one row per concept, never
//! every engineer's states or deltas. Opted-out engineers and those awaiting deletion are never
//! counted. The totals are exact and never shown as they are: what an
//! admin sees is a release made from them by `crate::privacy`, with noise,
//! once per scope and period, under its scope rules. There is no way to ask
//! for one engineer's graph here.

use serde::Serialize;

use super::trend::WeekCount;

/// One concept's released aggregate in a cohort (every figure with noise,
/// see `crate::privacy`). Suppressed rows carry no numbers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConceptAggregate {
    pub concept: String,
    pub title: String,
    pub domain: String,
    /// An org concept that no longer takes new facts (its data still counts).
    pub retired: bool,
    pub suppressed: bool,
    pub n_seen: Option<i64>,
    pub n_demonstrated: Option<i64>,
    /// Pass rate of checks taken 30 days or more after first demonstration.
    pub retention_30d_observed: Option<f64>,
    /// Mean predicted recall 30 days after the last check (FSRS).
    pub retention_30d_predicted: Option<f64>,
    /// The last weeks, oldest first (see `trend`).
    pub trend: Vec<WeekCount>,
}

/// The totals of one scope: `?1` is the team (group id), or `''` for the
/// whole org. A concept nobody counted holds any more has a row of zeros.
/// Only `crate::privacy` reads them, to make releases with noise.
pub(crate) const TOTALS: &str =
    "SELECT concept, n_seen, n_demonstrated, late_checks, late_passed, n_late,
            recall_micros, n_recall
     FROM concept_totals WHERE scope = ?1 AND n_seen > 0 ORDER BY concept";

#[cfg(test)]
mod tests {
    //! The totals kept by migration 0009's triggers must equal, after any
    //! sequence of changes to their inputs, the same sums computed from
    //! scratch with the rule for who is counted written out again here
    //! (not through the `counted_users` view the triggers use).

    use proptest::prelude::*;
    use rusqlite::{Connection, params};

    use super::TOTALS as AGGREGATE;
    use crate::graph::trend;
    use crate::store::{deltas, migrations, scim as scim_sql, users as user_sql};

    /// Writes the columns of a state the totals read (those of migration
    /// 0004, so the backfill test can write them before 0009 too).
    const UPSERT: &str = "INSERT INTO concept_states
         (user_id, concept, level, first_seen_at, first_demonstrated, recall_30d, late_checks, late_passed, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (user_id, concept) DO UPDATE SET level = excluded.level,
           first_seen_at = excluded.first_seen_at, first_demonstrated = excluded.first_demonstrated,
           recall_30d = excluded.recall_30d, late_checks = excluded.late_checks,
           late_passed = excluded.late_passed, updated_at = excluded.updated_at";

    const USERS: usize = 5;
    const GROUPS: usize = 3;
    const CONCEPTS: usize = 3;

    /// One change to what the totals depend on, made the way the
    /// appliance makes it.
    #[derive(Debug, Clone)]
    enum Op {
        State {
            user: usize,
            concept: usize,
            level: u8,
            late: (u8, u8),
            recall: Option<f64>,
        },
        Week {
            user: usize,
            concept: usize,
            week: i64,
            demonstrated: bool,
        },
        Active(usize, bool),
        OptOut(usize, bool),
        Deletion(usize, Option<i64>),
        ForgetPrivacy(usize),
        Sweep,
        Join(usize, usize),
        Leave(usize, usize),
        SetMembers(usize, Vec<usize>),
        SetMemberships(usize, Vec<usize>),
        /// The groups nested in a group (only lower-numbered ones: no cycle).
        Nest(usize, Vec<usize>),
        DeleteGroup(usize),
        ScimDelete(usize),
        DeleteUser(usize),
    }

    fn user(i: usize) -> String {
        format!("u{i}")
    }

    fn group(i: usize) -> String {
        format!("g{i}")
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        let u = 0..USERS;
        let g = 0..GROUPS;
        prop_oneof![
            4 => (u.clone(), 0..CONCEPTS, 1u8..=4, (0u8..4, 0u8..4), proptest::option::of(0.0f64..1.0))
                .prop_map(|(user, concept, level, (a, b), recall)| Op::State {
                    user, concept, level, late: (a.max(b), a.min(b)), recall,
                }),
            2 => (u.clone(), 0..CONCEPTS, 0i64..3, any::<bool>())
                .prop_map(|(user, concept, week, demonstrated)| Op::Week { user, concept, week: week * 7, demonstrated }),
            1 => (u.clone(), any::<bool>()).prop_map(|(u, a)| Op::Active(u, a)),
            1 => (u.clone(), any::<bool>()).prop_map(|(u, o)| Op::OptOut(u, o)),
            1 => (u.clone(), proptest::option::of(0i64..10)).prop_map(|(u, d)| Op::Deletion(u, d)),
            1 => u.clone().prop_map(Op::ForgetPrivacy),
            1 => Just(Op::Sweep),
            2 => (g.clone(), u.clone()).prop_map(|(g, u)| Op::Join(g, u)),
            1 => (g.clone(), u.clone()).prop_map(|(g, u)| Op::Leave(g, u)),
            1 => (g.clone(), proptest::collection::vec(u.clone(), 0..4)).prop_map(|(g, m)| Op::SetMembers(g, m)),
            1 => (u.clone(), proptest::collection::vec(g.clone(), 0..3)).prop_map(|(u, m)| Op::SetMemberships(u, m)),
            1 => (1..GROUPS).prop_flat_map(|g| (Just(g), proptest::collection::vec(0..g, 0..3)))
                .prop_map(|(g, c)| Op::Nest(g, c)),
            1 => g.prop_map(Op::DeleteGroup),
            1 => u.clone().prop_map(Op::ScimDelete),
            1 => u.prop_map(Op::DeleteUser),
        ]
    }

    /// An org database with every user and group present (a removed one is
    /// put back before it is used again, as a new sign-in or push would).
    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().expect("memory db");
        conn.pragma_update(None, "foreign_keys", "ON").expect("fk");
        migrations::ORG.to_latest(&mut conn).expect("migrate");
        conn
    }

    fn ensure(conn: &Connection, users: &[usize], groups: &[usize]) {
        for u in users {
            conn.execute(
                "INSERT OR IGNORE INTO users (id, user_name, provisioned_by, created_at, updated_at)
                 VALUES (?1, ?1, 'operator', 0, 0)",
                [user(*u)],
            )
            .expect("user");
        }
        for g in groups {
            conn.execute(
                "INSERT OR IGNORE INTO groups (id, display_name, created_at, updated_at)
                 VALUES (?1, ?1, 0, 0)",
                [group(*g)],
            )
            .expect("group");
        }
    }

    fn apply(conn: &Connection, op: &Op) {
        match op {
            Op::State {
                user: u,
                concept,
                level,
                late,
                recall,
            } => {
                ensure(conn, &[*u], &[]);
                conn.execute(
                    UPSERT,
                    params![
                        user(*u),
                        format!("c{concept}"),
                        level,
                        0,
                        None::<i64>,
                        recall,
                        late.0,
                        late.1,
                        0
                    ],
                )
                .expect("state");
            }
            Op::Week {
                user: u,
                concept,
                week,
                demonstrated,
            } => {
                ensure(conn, &[*u], &[]);
                conn.execute(
                    trend::UPSERT,
                    params![user(*u), week, format!("c{concept}"), demonstrated],
                )
                .expect("week");
            }
            Op::Active(u, active) => {
                conn.execute(
                    "UPDATE users SET active = ?2 WHERE id = ?1",
                    params![user(*u), active],
                )
                .expect("active");
            }
            Op::OptOut(u, out) => {
                ensure(conn, &[*u], &[]);
                deltas::set_opted_out(conn, &user(*u), *out).expect("opt out");
            }
            Op::Deletion(u, at) => {
                ensure(conn, &[*u], &[]);
                deltas::set_deletion(conn, &user(*u), *at).expect("deletion");
            }
            Op::ForgetPrivacy(u) => {
                conn.execute("DELETE FROM user_privacy WHERE user_id = ?1", [user(*u)])
                    .expect("forget");
            }
            Op::Sweep => {
                deltas::sweep_deletions(conn, 5).expect("sweep");
            }
            Op::Join(g, u) => {
                ensure(conn, &[*u], &[*g]);
                conn.execute(
                    "INSERT OR IGNORE INTO group_members (group_id, user_id) VALUES (?1, ?2)",
                    [group(*g), user(*u)],
                )
                .expect("join");
            }
            Op::Leave(g, u) => {
                conn.execute(
                    "DELETE FROM group_members WHERE group_id = ?1 AND user_id = ?2",
                    [group(*g), user(*u)],
                )
                .expect("leave");
            }
            Op::SetMembers(g, members) => {
                ensure(conn, members, &[*g]);
                let ids: Vec<String> = members.iter().map(|u| user(*u)).collect();
                scim_sql::set_members(conn, &group(*g), &ids).expect("members");
            }
            Op::SetMemberships(u, groups) => {
                ensure(conn, &[*u], groups);
                let ids: Vec<String> = groups.iter().map(|g| group(*g)).collect();
                user_sql::set_memberships(conn, &user(*u), &ids).expect("memberships");
            }
            Op::Nest(g, children) => {
                let mut all = children.clone();
                all.push(*g);
                ensure(conn, &[], &all);
                let ids: Vec<String> = children.iter().map(|c| group(*c)).collect();
                crate::store::groups::set_direct(
                    conn,
                    &group(*g),
                    crate::store::groups::MemberType::Group,
                    &ids,
                )
                .expect("nest");
            }
            Op::DeleteGroup(g) => {
                scim_sql::delete_group(conn, &group(*g)).expect("delete group");
            }
            Op::ScimDelete(u) => {
                scim_sql::mark_deleted(conn, &user(*u), &format!("deleted-{u}"), 1)
                    .expect("scim delete");
            }
            Op::DeleteUser(u) => {
                conn.execute("DELETE FROM users WHERE id = ?1", [user(*u)])
                    .expect("delete user");
            }
        }
    }

    /// [`apply`] on a database older than migration 0017 (no
    /// `group_direct`): the membership writes as the store made them then,
    /// straight into `group_members`.
    fn apply_before_nesting(conn: &Connection, op: &Op) {
        let run = |sql: &str, p: &[&dyn rusqlite::ToSql]| {
            conn.execute(sql, p).expect("membership write");
        };
        match op {
            Op::SetMembers(g, members) => {
                ensure(conn, members, &[*g]);
                run(
                    "DELETE FROM group_members WHERE group_id = ?1",
                    &[&group(*g)],
                );
                for u in members {
                    run(
                        "INSERT OR IGNORE INTO group_members (group_id, user_id) VALUES (?1, ?2)",
                        &[&group(*g), &user(*u)],
                    );
                }
            }
            Op::SetMemberships(u, groups) => {
                ensure(conn, &[*u], groups);
                run("DELETE FROM group_members WHERE user_id = ?1", &[&user(*u)]);
                for g in groups {
                    run(
                        "INSERT OR IGNORE INTO group_members (group_id, user_id) VALUES (?1, ?2)",
                        &[&group(*g), &user(*u)],
                    );
                }
            }
            Op::DeleteGroup(g) => run("DELETE FROM groups WHERE id = ?1", &[&group(*g)]),
            Op::ScimDelete(u) => {
                run("DELETE FROM group_members WHERE user_id = ?1", &[&user(*u)]);
                run(
                    "UPDATE users SET deleted_at = 1, active = 0, user_name = ?2 WHERE id = ?1 AND deleted_at IS NULL",
                    &[&user(*u), &format!("deleted-{u}")],
                );
            }
            // Groups were not nested then.
            Op::Nest(..) => {}
            other => apply(conn, other),
        }
    }

    /// Who is counted, written out independently of the `counted_users`
    /// view; `?1` is the scope ('' or a group id).
    const COUNTED_FROM_SCRATCH: &str = "SELECT u.id FROM users u
         LEFT JOIN user_privacy p ON p.user_id = u.id
         WHERE u.active = 1 AND coalesce(p.opted_out, 0) = 0 AND p.deletion_requested_at IS NULL
           AND (?1 = '' OR u.id IN (SELECT user_id FROM group_members WHERE group_id = ?1))";

    type Row = (String, i64, i64, i64, i64, i64, i64, i64);
    type WeekRow = (String, i64, i64, i64);
    type Totals = (Vec<Row>, Vec<WeekRow>);

    fn rows(conn: &Connection, sql: &str, scope: &str) -> Vec<Row> {
        conn.prepare(sql)
            .expect("prepare")
            .query_map([scope], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    fn from_scratch(conn: &Connection, scope: &str) -> Totals {
        let totals = rows(
            conn,
            &format!(
                "WITH counted AS ({COUNTED_FROM_SCRATCH})
                 SELECT s.concept, count(*), sum(s.level >= 3), sum(s.late_checks), sum(s.late_passed),
                        sum(s.late_checks > 0),
                        sum(coalesce(CAST(round(s.recall_30d * 1000000) AS INTEGER), 0)),
                        count(s.recall_30d)
                 FROM concept_states s JOIN counted c ON c.id = s.user_id
                 GROUP BY s.concept ORDER BY s.concept"
            ),
            scope,
        );
        let weeks = weeks(
            conn,
            &format!(
                "WITH counted AS ({COUNTED_FROM_SCRATCH})
                 SELECT w.concept, w.week, count(*), sum(w.demonstrated)
                 FROM concept_weeks w JOIN counted c ON c.id = w.user_id
                 GROUP BY w.concept, w.week ORDER BY w.concept, w.week"
            ),
            scope,
        );
        (totals, weeks)
    }

    fn weeks(conn: &Connection, sql: &str, scope: &str) -> Vec<WeekRow> {
        conn.prepare(sql)
            .expect("prepare")
            .query_map([scope], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    fn kept(conn: &Connection, scope: &str) -> Totals {
        let mut w = weeks(
            conn,
            "SELECT concept, week, n_seen, n_demonstrated FROM week_totals
             WHERE scope = ?1 AND n_seen > 0 ORDER BY concept, week",
            scope,
        );
        w.sort();
        (rows(conn, AGGREGATE, scope), w)
    }

    fn check(conn: &Connection) -> Result<(), TestCaseError> {
        let mut scopes = vec![String::new()];
        scopes.extend(
            conn.prepare("SELECT id FROM groups ORDER BY id")
                .expect("groups")
                .query_map([], |r| r.get::<_, String>(0))
                .expect("query")
                .map(|g| g.expect("group")),
        );
        for scope in &scopes {
            prop_assert_eq!(
                kept(conn, scope),
                from_scratch(conn, scope),
                "scope {:?}",
                scope
            );
        }
        // Nothing is left over: no totals of a group that is gone, no
        // negative counts, and a row nobody holds any more is all zeros.
        let stray: i64 = conn
            .query_row(
                "SELECT (SELECT count(*) FROM concept_totals WHERE scope <> '' AND scope NOT IN (SELECT id FROM groups)
                         OR n_seen < 0 OR n_demonstrated < 0 OR late_checks < 0 OR n_late < 0 OR n_recall < 0
                         OR (n_seen = 0 AND (n_demonstrated, late_checks, late_passed, n_late, recall_micros, n_recall)
                                            IS NOT (0, 0, 0, 0, 0, 0)))
                      + (SELECT count(*) FROM week_totals WHERE scope <> '' AND scope NOT IN (SELECT id FROM groups)
                         OR n_seen < 0 OR n_demonstrated < 0 OR (n_seen = 0 AND n_demonstrated <> 0))
                      + (SELECT count(*) FROM counted_changes)",
                [],
                |r| r.get(0),
            )
            .expect("stray");
        prop_assert_eq!(stray, 0);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn totals_kept_by_triggers_equal_the_sums_from_scratch(ops in proptest::collection::vec(arb_op(), 1..40)) {
            let conn = db();
            for op in &ops {
                apply(&conn, op);
                check(&conn)?;
            }
        }

        /// Migration 0012 makes `concept_weeks` again under a new key: its
        /// rows come through, and the totals stay kept afterwards (the
        /// triggers made again, and those of other tables that name it).
        #[test]
        fn the_rekeyed_weekly_rows_keep_their_totals(
            before in proptest::collection::vec(arb_op(), 1..30),
            after in proptest::collection::vec(arb_op(), 1..30),
        ) {
            let mut conn = Connection::open_in_memory().expect("memory db");
            conn.pragma_update(None, "foreign_keys", "ON").expect("fk");
            migrations::ORG.to_version(&mut conn, 11).expect("to 11");
            for op in &before {
                apply_before_nesting(&conn, op);
            }
            let held = |conn: &Connection| -> Vec<(String, i64, String, i64)> {
                conn.prepare("SELECT user_id, week, concept, demonstrated FROM concept_weeks ORDER BY 1, 2, 3")
                    .expect("prepare")
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .expect("query")
                    .collect::<Result<_, _>>()
                    .expect("rows")
            };
            let rows = held(&conn);
            migrations::ORG.to_latest(&mut conn).expect("to latest");
            prop_assert_eq!(held(&conn), rows);
            check(&conn)?;
            for op in &after {
                apply(&conn, op);
                check(&conn)?;
            }
        }
    }

    #[test]
    fn the_migration_totals_what_is_already_held() {
        let mut conn = Connection::open_in_memory().expect("memory db");
        conn.pragma_update(None, "foreign_keys", "ON").expect("fk");
        migrations::ORG.to_version(&mut conn, 8).expect("to 8");
        ensure(&conn, &[0, 1, 2, 3], &[0, 1]);
        for (u, c, level, recall) in [
            (0, 0, 3, Some(0.9)),
            (1, 0, 1, None),
            (2, 1, 4, Some(0.25)),
            (3, 0, 3, Some(0.5)),
        ] {
            conn.execute(
                UPSERT,
                params![
                    user(u),
                    format!("c{c}"),
                    level,
                    0,
                    None::<i64>,
                    recall,
                    1,
                    1,
                    0
                ],
            )
            .expect("state");
            conn.execute(
                trend::UPSERT,
                params![user(u), 7, format!("c{c}"), level >= 3],
            )
            .expect("week");
        }
        for (g, u) in [(0, 0), (0, 1), (1, 2), (1, 0)] {
            conn.execute(
                "INSERT INTO group_members (group_id, user_id) VALUES (?1, ?2)",
                [group(g), user(u)],
            )
            .expect("member");
        }
        deltas::set_opted_out(&conn, &user(3), true).expect("opt out");
        migrations::ORG.to_latest(&mut conn).expect("to latest");
        check(&conn).expect("totals of the data already held");
        let (org, _) = kept(&conn, "");
        assert_eq!(org[0], ("c0".into(), 2, 1, 2, 2, 2, 900_000, 1));
    }
}
