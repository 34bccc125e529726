//! API tokens: only hashes at rest (P5), refusals, audit (P20).

use aiworklab::audit::Context;
use aiworklab::clock::{Clock, SystemClock};
use aiworklab::store::StoreError;
use aiworklab::tokens::{self, Refusal, TokenKind};
use aiworklab::users::AdminCtx;
use chrono::Duration;
use sha2::{Digest, Sha256};

use crate::support::{Env, contains, manual_clock};

/// Every value of every row of every table, as bytes.
fn all_cells(conn: &rusqlite::Connection) -> Vec<Vec<u8>> {
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let mut cells = Vec::new();
    for t in tables {
        let sql = format!("SELECT * FROM \"{t}\"");
        let mut stmt = conn.prepare(&sql).expect("prepare");
        let n = stmt.column_count();
        let mut rows = stmt.query([]).expect("query");
        while let Some(row) = rows.next().expect("row") {
            for i in 0..n {
                let v: rusqlite::types::Value = row.get(i).expect("value");
                cells.push(match v {
                    rusqlite::types::Value::Text(s) => s.into_bytes(),
                    rusqlite::types::Value::Blob(b) => b,
                    other => format!("{other:?}").into_bytes(),
                });
            }
        }
    }
    cells
}

#[test]
fn only_the_sha256_of_a_token_is_stored() {
    let env = Env::new(&["acme"]);
    let store = env.store();
    let org = store.org("acme").expect("org");
    let (_, secret) = tokens::create(
        org,
        TokenKind::Scim,
        "okta",
        None,
        &AdminCtx::operator(),
        SystemClock.now(),
    )
    .expect("token");
    let plain = secret.expose().as_bytes().to_vec();
    let body = &plain["aiwl_scim_".len()..];
    let digest: [u8; 32] = Sha256::digest(&plain).into();
    let cells = org
        .db
        .read(|c| Ok::<_, StoreError>(all_cells(c)))
        .expect("decrypted scan");
    assert!(!cells.is_empty());
    for cell in &cells {
        assert!(!contains(cell, body), "the secret is stored in clear");
    }
    assert!(cells.iter().any(|c| c == &digest), "the SHA-256 is stored");
}

#[test]
fn revoked_unknown_expired_malformed_and_wrong_kind_tokens_are_refused() {
    let env = Env::new(&["acme"]);
    let store = env.store();
    let clock = manual_clock();
    let org = store.org("acme").expect("org");
    let ctx = AdminCtx::operator();
    let (live, live_secret) =
        tokens::create(org, TokenKind::Scim, "live", None, &ctx, clock.now()).expect("token");
    let (_, short_secret) = tokens::create(
        org,
        TokenKind::Scim,
        "short",
        Some(clock.now() + Duration::hours(1)),
        &ctx,
        clock.now(),
    )
    .expect("token");
    let (_, mcp_secret) =
        tokens::create(org, TokenKind::Mcp, "mcp", None, &ctx, clock.now()).expect("token");

    let auth = |kind, s: &str| tokens::authenticate(&store, kind, s, clock.now()).expect("store");
    assert!(auth(TokenKind::Scim, live_secret.expose()).is_ok());
    assert!(auth(TokenKind::Scim, short_secret.expose()).is_ok());
    // Wrong kind: an MCP token is not a SCIM token, even with a SCIM prefix.
    assert_eq!(
        auth(TokenKind::Scim, mcp_secret.expose()).err(),
        Some(Refusal::Malformed)
    );
    let forged = mcp_secret.expose().replacen("aiwl_mcp_", "aiwl_scim_", 1);
    assert!(auth(TokenKind::Scim, &forged).is_err());
    // Unknown: well formed, never issued.
    let unknown = format!("aiwl_scim_{}", "A".repeat(43));
    assert_eq!(
        auth(TokenKind::Scim, &unknown).err(),
        Some(Refusal::Unknown)
    );
    // Malformed.
    for bad in ["", "Bearer x", "aiwl_scim_", &live_secret.expose()[..40]] {
        assert_eq!(
            auth(TokenKind::Scim, bad).err(),
            Some(Refusal::Malformed),
            "{bad}"
        );
    }
    // Expired.
    clock.advance(Duration::hours(2));
    assert_eq!(
        auth(TokenKind::Scim, short_secret.expose()).err(),
        Some(Refusal::Expired)
    );
    // Revoked: refused at once.
    tokens::revoke(org, &live.id.to_string(), &ctx, clock.now()).expect("revoke");
    assert_eq!(
        auth(TokenKind::Scim, live_secret.expose()).err(),
        Some(Refusal::Revoked)
    );
}

#[test]
fn token_changes_are_audited_with_actor_and_target() {
    let env = Env::new(&["acme"]);
    let store = env.store();
    let org = store.org("acme").expect("org");
    let ctx = Context {
        actor: "operator:alice".into(),
        ..Context::default()
    };
    let admin = AdminCtx::operator_as(ctx);
    let now = SystemClock.now();
    let (info, secret) =
        tokens::create(org, TokenKind::Mcp, "claude", None, &admin, now).expect("token");
    tokens::revoke(org, &info.id.to_string(), &admin, now).expect("revoke");
    let rows = org
        .db
        .read(|c| aiworklab::store::audit::recent(c, 10).map_err(StoreError::from))
        .expect("audit");
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["token.revoke", "token.create"]);
    for r in &rows {
        assert_eq!(r.actor, "operator:alice");
        assert_eq!(r.target.as_deref(), Some(info.id.to_string().as_str()));
        assert!(
            !r.details.to_string().contains(&secret.expose()[10..]),
            "secret in audit"
        );
    }
    assert_eq!(rows[1].details["name"], "claude");
}

#[test]
fn token_names_and_expiries_are_validated() {
    let env = Env::new(&["acme"]);
    let store = env.store();
    let org = store.org("acme").expect("org");
    let now = SystemClock.now();
    let ctx = AdminCtx::operator();
    for bad in ["", "a\nb", &"x".repeat(101)] {
        assert!(
            tokens::create(org, TokenKind::Scim, bad, None, &ctx, now).is_err(),
            "{bad:?}"
        );
    }
    assert!(
        tokens::create(
            org,
            TokenKind::Scim,
            "past",
            Some(now - Duration::seconds(1)),
            &ctx,
            now
        )
        .is_err()
    );
    assert!(
        tokens::list(org).expect("list").is_empty(),
        "a refused token was stored"
    );
}
