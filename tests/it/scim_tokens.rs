//! SCIM tokens made on the admin page (P5, P12): they expire after
//! `tokens.scim_expiry_days` by default, the page shows expiry and maker,
//! and they are revoked when their maker stops being an admin, by whatever
//! route: the admin page, a SCIM group or user change, the CLI, or a
//! change the appliance only notices when the token is next used.

use std::process::Command;

use aiworklab::AppState;
use aiworklab::audit::Context;
use aiworklab::store::StoreError;
use aiworklab::tokens::{self, TokenKind};
use aiworklab::users::{self, AdminCtx};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Duration;
use serde_json::{Value, json};

use crate::support::{Answer, Env, get_with_cookie, manual_clock, send, signed_in};

fn csrf_of(state: &AppState, uid: &str) -> String {
    aiworklab::sessions::list(state.store.org("acme").expect("org"), uid).expect("sessions")[0]
        .csrf
        .clone()
}

fn form_post(uri: &str, cookie: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body.to_string()))
        .expect("request")
}

async fn scim(
    state: &AppState,
    method: &str,
    uri: &str,
    token: &str,
    body: Option<&Value>,
) -> Answer {
    let r = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/scim+json");
    send(
        state,
        r.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("request"),
    )
    .await
}

/// An admin (by session) makes a SCIM token on the admin page; its secret.
async fn make_token(state: &AppState, cookie: &str, uid: &str, name: &str) -> String {
    let csrf = csrf_of(state, uid);
    let created = send(
        state,
        form_post(
            "/o/acme/admin/scim-tokens",
            cookie,
            &format!("csrf={csrf}&name={name}"),
        ),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    created
        .text()
        .split("id=\"new-scim-token\" class=\"secret\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .expect("the secret is shown")
        .to_string()
}

fn token_named(state: &AppState, name: &str) -> tokens::TokenInfo {
    tokens::list(state.store.org("acme").expect("org"))
        .expect("tokens")
        .into_iter()
        .find(|t| t.name == name)
        .expect("the token")
}

/// The `token.revoke` audit rows for `id` that give the maker's lost role
/// as the reason, with their actors.
fn revoked_for_lost_role(state: &AppState, id: &str) -> Vec<String> {
    state
        .store
        .org("acme")
        .expect("org")
        .db
        .read(|c| aiworklab::store::audit::recent(c, 200).map_err(StoreError::from))
        .expect("audit")
        .into_iter()
        .filter(|r| {
            r.action == "token.revoke"
                && r.target.as_deref() == Some(id)
                && r.details["reason"] == "creator_lost_admin"
        })
        .map(|r| r.actor)
        .collect()
}

#[tokio::test]
async fn admin_page_scim_tokens_expire_by_default_and_the_page_shows_expiry_and_maker() {
    let mut env = Env::new(&["acme"]);
    env.raw.tokens.scim_expiry_days = 30;
    let clock = manual_clock();
    let state = env.state_with_clock(clock.clone());
    let (cookie, uid) = signed_in(&state, "acme", "ines", true);
    let secret = make_token(&state, &cookie, &uid, "okta").await;
    let t = token_named(&state, "okta");
    assert_eq!(t.expires_at, Some(state.clock.now() + Duration::days(30)));
    assert_eq!(t.created_by, format!("user:{uid}"));
    let page = send(&state, get_with_cookie("/o/acme/admin", &cookie))
        .await
        .text();
    assert!(page.contains(">Expires<"), "{page}");
    // 15 Jan 2026 12:00 UTC + 30 days, and the maker by user name.
    assert!(page.contains(">2026-02-14 12:00 UTC<"), "{page}");
    assert!(page.contains("expires after 30 days"), "{page}");
    assert!(page.contains(">ines<"), "{page}");
    assert_eq!(
        scim(&state, "GET", "/scim/v2/Users", &secret, None)
            .await
            .status,
        StatusCode::OK
    );
    clock.advance(Duration::days(30) + Duration::seconds(1));
    assert_eq!(
        scim(&state, "GET", "/scim/v2/Users", &secret, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "an expired token still provisions"
    );
}

#[tokio::test]
async fn a_scim_token_dies_when_its_maker_loses_the_admin_role_on_the_page_or_over_scim() {
    let mut env = Env::new(&["acme"]);
    env.raw.orgs[0].admin_groups = vec!["aiwl-admins".into()];
    let state = env.state_with_clock(manual_clock());
    let now = state.clock.now();
    let org = state.store.org("acme").expect("org");
    // The IdP's own token, made by the operator: tied to nobody's role.
    let (_, idp) = tokens::create(
        org,
        TokenKind::Scim,
        "idp",
        None,
        &AdminCtx::operator(),
        now,
    )
    .expect("operator token");
    let idp = idp.expose().to_string();

    // On the admin page: Kai demotes Ines; her token goes, Kai's stays.
    let (ines, ines_id) = signed_in(&state, "acme", "ines", true);
    let (kai, kai_id) = signed_in(&state, "acme", "kai", true);
    let t_ines = make_token(&state, &ines, &ines_id, "ines-token").await;
    let t_kai = make_token(&state, &kai, &kai_id, "kai-token").await;
    let demote = send(
        &state,
        form_post(
            &format!("/o/acme/admin/users/{ines_id}/admin"),
            &kai,
            &format!("csrf={}&grant=0", csrf_of(&state, &kai_id)),
        ),
    )
    .await;
    assert!(demote.status.is_redirection(), "{}", demote.text());
    let gone = token_named(&state, "ines-token");
    assert!(
        gone.revoked_at.is_some(),
        "the demoted admin's token is live"
    );
    assert_eq!(
        revoked_for_lost_role(&state, &gone.id.to_string()),
        [format!("user:{kai_id}")]
    );
    assert_eq!(
        scim(&state, "GET", "/scim/v2/Users", &t_ines, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        scim(&state, "GET", "/scim/v2/Users", &t_kai, None)
            .await
            .status,
        StatusCode::OK
    );

    // Over SCIM: Gus is an admin by the admin group, makes a token, and the
    // IdP takes him out of the group. The token is revoked by that change,
    // before anyone presents it.
    let (gus, gus_id) = signed_in(&state, "acme", "gus", false);
    let group = scim(
        &state,
        "POST",
        "/scim/v2/Groups",
        &idp,
        Some(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "aiwl-admins",
            "members": [{"value": gus_id}],
        })),
    )
    .await;
    assert_eq!(group.status, StatusCode::CREATED, "{}", group.text());
    let group_id = group.json()["id"].as_str().expect("id").to_string();
    let t_gus = make_token(&state, &gus, &gus_id, "gus-token").await;
    assert_eq!(
        scim(&state, "GET", "/scim/v2/Users", &t_gus, None)
            .await
            .status,
        StatusCode::OK
    );
    let patch = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Groups/{group_id}"),
        &idp,
        Some(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "remove", "path": format!("members[value eq \"{gus_id}\"]")}],
        })),
    )
    .await;
    assert_eq!(patch.status, StatusCode::OK, "{}", patch.text());
    let gone = token_named(&state, "gus-token");
    assert!(
        gone.revoked_at.is_some(),
        "a token of one no longer in the admin group is live"
    );
    assert_eq!(
        revoked_for_lost_role(&state, &gone.id.to_string()),
        ["system"]
    );
    assert_eq!(
        scim(&state, "GET", "/scim/v2/Users", &t_gus, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // Deactivation over SCIM ends a maker's tokens too.
    let t_kai2 = make_token(&state, &kai, &kai_id, "kai-second").await;
    let off = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Users/{kai_id}"),
        &idp,
        Some(&json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": false}],
        })),
    )
    .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.text());
    assert!(token_named(&state, "kai-token").revoked_at.is_some());
    assert!(token_named(&state, "kai-second").revoked_at.is_some());
    assert_eq!(
        scim(&state, "GET", "/scim/v2/Users", &t_kai2, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // The operator's token provisioned throughout.
    assert_eq!(
        scim(&state, "GET", "/scim/v2/Users", &idp, None)
            .await
            .status,
        StatusCode::OK
    );
}

/// A role lost where the appliance does not see it happen (here the group
/// membership removed behind its back, as when `admin_groups` changes):
/// the token is refused and revoked when it is next presented.
#[tokio::test]
async fn a_token_whose_maker_lost_the_role_unseen_is_refused_and_revoked_at_use() {
    let mut env = Env::new(&["acme"]);
    env.raw.orgs[0].admin_groups = vec!["aiwl-admins".into()];
    let state = env.state_with_clock(manual_clock());
    let now = state.clock.now();
    let org = state.store.org("acme").expect("org");
    let (_, idp) = tokens::create(
        org,
        TokenKind::Scim,
        "idp",
        None,
        &AdminCtx::operator(),
        now,
    )
    .expect("operator token");
    let (gus, gus_id) = signed_in(&state, "acme", "gus", false);
    let group = scim(
        &state,
        "POST",
        "/scim/v2/Groups",
        idp.expose(),
        Some(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "aiwl-admins",
            "members": [{"value": gus_id}],
        })),
    )
    .await;
    assert_eq!(group.status, StatusCode::CREATED, "{}", group.text());
    let t_gus = make_token(&state, &gus, &gus_id, "gus-token").await;
    org.db
        .write(|tx| {
            tx.execute("DELETE FROM group_members WHERE user_id = ?1", [&gus_id])
                .map_err(StoreError::from)
        })
        .expect("membership removed unseen");
    assert!(token_named(&state, "gus-token").revoked_at.is_none());
    assert_eq!(
        scim(&state, "GET", "/scim/v2/Users", &t_gus, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let gone = token_named(&state, "gus-token");
    assert!(gone.revoked_at.is_some());
    assert_eq!(
        revoked_for_lost_role(&state, &gone.id.to_string()),
        ["system"]
    );
}

#[test]
fn the_cli_revoking_a_makers_admin_role_or_disabling_them_revokes_their_tokens() {
    let env = Env::new(&["acme"]);
    let (ines_token, kai_token) = {
        let store = env.store();
        let org = store.org("acme").expect("org");
        let now = chrono::Utc::now();
        let mut made = Vec::new();
        for name in ["ines", "kai"] {
            let u =
                users::add(org, &AdminCtx::operator(), name, name, None, true, now).expect("user");
            let on_the_page = Context {
                actor: format!("user:{}", u.id),
                ..Context::default()
            };
            let (t, _) = tokens::create(
                org,
                TokenKind::Scim,
                name,
                Some(now + Duration::days(9)),
                &AdminCtx::operator_as(on_the_page),
                now,
            )
            .expect("token");
            made.push(t.id);
        }
        (made[0], made[1])
    };
    std::fs::write(
        env.dir.path().join("aiworklab.toml"),
        format!(
            "[storage]\ndata_dir = \"{}\"\n\n[[orgs]]\nslug = \"acme\"\nname = \"Org acme\"\n",
            env.data_dir().display()
        ),
    )
    .expect("config");
    let cli = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_aiworklab"));
        for (k, _) in std::env::vars() {
            if k.starts_with("AIWORKLAB_") {
                c.env_remove(k);
            }
        }
        let out = c
            .current_dir(env.dir.path())
            .arg("--config")
            .arg("aiworklab.toml")
            .args(args)
            .output()
            .expect("the binary runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = cli(&["user", "revoke-admin", "--org", "acme", "ines"]);
    assert!(out.contains("revoked 1 SCIM token"), "{out}");
    let out = cli(&["user", "disable", "--org", "acme", "kai"]);
    assert!(out.contains("revoked 1 SCIM token"), "{out}");
    let store = env.store();
    let held = tokens::list(store.org("acme").expect("org")).expect("tokens");
    for id in [ines_token, kai_token] {
        let t = held.iter().find(|t| t.id == id).expect("token");
        assert!(t.revoked_at.is_some(), "{} is live", t.name);
    }
}
