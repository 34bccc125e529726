//! The audit log and its sweeper, with a controllable clock (P20).

use aiworklab::audit::{self, Context};
use aiworklab::clock::Clock;
use aiworklab::store::StoreError;
use chrono::Duration;
use serde_json::json;

use crate::support::{Env, manual_clock};

#[test]
fn sweeper_deletes_exactly_the_rows_older_than_retention_in_every_org() {
    let env = Env::new(&["a", "b"]);
    let store = env.store();
    let clock = manual_clock();
    let start = clock.now();
    // Rows at day 0, 100, 300, 396 and 400, in both orgs.
    for org in store.orgs() {
        for day in [0, 100, 300, 396, 400] {
            let at = start + Duration::days(day);
            org.db
                .write(|tx| {
                    Context::system().record(
                        tx,
                        "test.event",
                        Some(&day.to_string()),
                        &json!({}),
                        at,
                    )
                })
                .expect("insert");
        }
    }
    // At day 500 with 395 days' retention, the cut-off is day 105.
    clock.advance(Duration::days(500));
    let report = audit::sweep(&store, clock.now(), 395).expect("sweep");
    assert_eq!(
        report.deleted,
        vec![("a".to_string(), 2), ("b".to_string(), 2)]
    );
    for org in store.orgs() {
        let rows = org
            .db
            .read(|c| aiworklab::store::audit::recent(c, 100).map_err(StoreError::from))
            .expect("rows");
        let mut days: Vec<String> = rows.into_iter().filter_map(|r| r.target).collect();
        days.sort();
        assert_eq!(days, ["300", "396", "400"]);
    }
    // Sweeping again at the same instant removes nothing more.
    let again = audit::sweep(&store, clock.now(), 395).expect("sweep");
    assert!(again.deleted.iter().all(|(_, n)| *n == 0));
}

#[test]
fn an_audit_row_carries_every_field() {
    let env = Env::new(&["a"]);
    let store = env.store();
    let org = store.org("a").expect("org");
    let ctx = Context {
        actor: "user:42".into(),
        request_id: Some("req-1".into()),
        ip: Some("192.0.2.7".parse().expect("ip")),
        user_agent: Some(format!("agent/{}", "x".repeat(2000))),
    };
    let now = manual_clock().now();
    org.db
        .write(|tx| {
            ctx.record(
                tx,
                "admin.grant",
                Some("user:7"),
                &json!({"role": "admin"}),
                now,
            )
        })
        .expect("insert");
    let row = org
        .db
        .read(|c| aiworklab::store::audit::recent(c, 1).map_err(StoreError::from))
        .expect("row")
        .remove(0);
    assert_eq!(row.actor, "user:42");
    assert_eq!(row.action, "admin.grant");
    assert_eq!(row.target.as_deref(), Some("user:7"));
    assert_eq!(row.ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(row.request_id.as_deref(), Some("req-1"));
    assert_eq!(
        row.user_agent.as_deref().map(str::len),
        Some(512),
        "user agent is capped"
    );
    assert_eq!(row.at, now);
    assert_eq!(row.details["role"], "admin");
}

#[test]
fn a_failed_action_leaves_no_audit_row_and_no_change() {
    let env = Env::new(&["a"]);
    let store = env.store();
    let org = store.org("a").expect("org");
    let now = manual_clock().now();
    let result: Result<(), StoreError> = org.db.write(|tx| {
        Context::system().record(tx, "half.done", None, &json!({}), now)?;
        Err(StoreError::UnknownOrg { org: "boom".into() })
    });
    assert!(result.is_err());
    let rows = org
        .db
        .read(|c| aiworklab::store::audit::recent(c, 10).map_err(StoreError::from))
        .expect("rows");
    assert!(rows.is_empty(), "a rolled-back action left an audit row");
}
