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
