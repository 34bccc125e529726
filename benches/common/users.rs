//! Engineers for the benches that seed an org (sync, ingest): user rows as
//! SCIM makes them, inserted 1,000 per transaction.

use aiworklab::store::users as user_sql;
use aiworklab::store::{OrgDb, StoreError};
use serde_json::json;
use user_sql::UserRow;

/// The user row of engineer `i`, as SCIM would have created it.
pub fn user_row(i: usize, now_ms: i64) -> UserRow {
    let name = format!("engineer.{i:05}@acme.example");
    UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        oidc_issuer: None,
        oidc_subject: None,
        user_name: name.clone(),
        display_name: format!("Engineer {i}"),
        emails: json!([{ "value": name, "type": "work", "primary": true }]).to_string(),
        external_id: Some(format!("00u{i:08}")),
        active: true,
        admin_granted: false,
        provisioned_by: "scim".into(),
        created_at: now_ms,
        updated_at: now_ms,
    }
}

/// Inserts `rows` into `org`, 1,000 per transaction.
pub fn insert_users(org: &OrgDb, rows: &[UserRow]) {
    for chunk in rows.chunks(1000) {
        org.db
            .write(|tx| {
                for r in chunk {
                    user_sql::insert(tx, r)?;
                }
                Ok::<_, StoreError>(())
            })
            .expect("seed users");
    }
}

/// Seeds the members directory of `org` with `engineer.<i>` for every `i`
/// in `range`, as the members bench measures it: 1 % deactivated, a
/// directly granted admin every 25,000 (`i % 25_000 == 7`), the members in
/// groups of `group_size` named by `group_name`, and the first of every
/// 10,000 of them granted viewer. Returns the new members' ids.
#[allow(dead_code)] // the members and pages benches'; the others include this module too
pub fn seed_directory(
    org: &OrgDb,
    range: std::ops::Range<usize>,
    group_size: usize,
    group_name: impl Fn(usize) -> String,
    now_ms: i64,
) -> Vec<String> {
    use aiworklab::store::scim as scim_sql;
    let rows: Vec<_> = range
        .map(|i| {
            let mut r = user_row(i, now_ms);
            r.active = i % 100 != 0;
            r.admin_granted = i % 25_000 == 7;
            r
        })
        .collect();
    insert_users(org, &rows);
    let ids: Vec<String> = rows.into_iter().map(|r| r.id).collect();
    org.db
        .write(|tx| {
            for (g, chunk) in ids.chunks(group_size.max(1)).enumerate() {
                let row = scim_sql::GroupRow {
                    id: uuid::Uuid::new_v4().to_string(),
                    display_name: group_name(g),
                    external_id: None,
                    created_at: now_ms,
                    updated_at: now_ms,
                    version: 1,
                };
                scim_sql::insert_group(tx, &row)?;
                scim_sql::set_members(tx, &row.id, chunk)?;
            }
            for id in ids.iter().step_by(10_000) {
                tx.execute(
                    "INSERT INTO role_grants (user_id, role, granted_at) VALUES (?1, 'viewer', 0)",
                    [id],
                )?;
            }
            Ok::<_, StoreError>(())
        })
        .expect("groups");
    ids
}
