//! Air-gapped operation (P25): with `air_gapped = true` the appliance
//! reaches only loopback, the private ranges and `egress_allow`. Checked
//! on the configuration at start-up, on every URL an IdP request goes to
//! (the discovery document names more), and on every name when it is
//! resolved for a connection.

use std::process::Command;
use std::sync::Arc;

use aiworklab::AppState;
use aiworklab::clock::SystemClock;
use aiworklab::egress::Lookup;
use aiworklab::store::StoreError;
use axum::http::StatusCode;

use crate::idp::{Browser, Site};
use crate::support::{Env, get, send};

fn audit_actions(state: &AppState, org: &str) -> Vec<(String, String)> {
    state
        .store
        .org(org)
        .expect("org")
        .db
        .read(|c| aiworklab::store::audit::recent(c, 200).map_err(StoreError::from))
        .expect("audit")
        .into_iter()
        .map(|r| (r.action, r.details.to_string()))
        .collect()
}

/// With everything local, air-gapped changes nothing: a sign-in through
/// the IdP on loopback completes.
#[tokio::test]
async fn air_gapped_sign_in_through_a_loopback_idp_works() {
    let site = Site::start(&["acme"], Arc::new(SystemClock), |env| {
        env.raw.air_gapped = true;
    })
    .await;
    assert!(site.state.settings.egress.is_air_gapped());
    let mut b = Browser::new();
    let done = b.sign_in(&site, "acme", "alice", false).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location().as_deref(), Some("/account"));
    site.stop().await;
}

/// The IdP's name resolves to a public address (a resolver the test
/// controls: the machine's own is not touched): the connection is refused
/// when it is dialled, the page says why in words a person can pass on,
/// and the audit log records the reason.
#[tokio::test]
async fn a_name_resolving_to_a_public_address_is_refused_when_dialled() {
    let mut env = Env::new(&["acme"]);
    env.raw.air_gapped = true;
    env.raw.orgs[0].oidc = Some(aiworklab::config::RawOidc {
        issuer: "https://idp.corp.example/realms/acme".into(),
        client_id: "aiwl".into(),
        client_secret: "secret".into(),
        ..aiworklab::config::RawOidc::default()
    });
    let asked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&asked);
    let lookup: Lookup = Arc::new(move |host: String| {
        seen.lock().expect("lock").push(host);
        Box::pin(async { Ok(vec!["93.184.216.34".parse().expect("ip")]) })
    });
    let mut settings = env.settings();
    // Start-up (as `serve` and `config check` do) already refuses it.
    settings.egress = settings.egress.clone().with_lookup(Arc::clone(&lookup));
    let refused = settings
        .check_egress()
        .await
        .expect_err("refused at start-up");
    let text = refused.to_string();
    assert!(text.contains("orgs.0.oidc.issuer"), "{text}");
    assert!(
        text.contains("idp.corp.example resolves only to public addresses (93.184.216.34)"),
        "{text}"
    );
    // Started anyway (the name resolved elsewhere before), it is refused
    // again when dialled.
    let state = AppState::new(
        Arc::new(settings),
        Arc::new(env.store()),
        Arc::new(SystemClock),
    );
    let page = send(&state, get("/o/acme/login/start")).await;
    assert_eq!(page.status, StatusCode::BAD_GATEWAY, "{}", page.text());
    assert!(
        page.text()
            .contains("outside the network this appliance may reach"),
        "{}",
        page.text()
    );
    assert!(page.text().contains("egress_allow"), "{}", page.text());
    assert!(
        asked
            .lock()
            .expect("lock")
            .iter()
            .any(|h| h == "idp.corp.example"),
        "the name went through the guarded resolver"
    );
    assert!(
        audit_actions(&state, "acme")
            .iter()
            .any(|(a, d)| a == "sign_in.failed" && d.contains("egress_refused")),
        "audited with its reason"
    );
}

/// A discovery document, served from loopback, that names a JWKS at a
/// public address: air-gapped, the JWKS request is refused before any
/// connection; not air-gapped, the same document is followed (and here
/// fails only because the machine has no route out).
#[tokio::test]
async fn a_discovery_document_naming_a_public_address_is_refused() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let issuer = format!("http://{}", listener.local_addr().expect("addr"));
    let doc = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": "https://93.184.216.34/jwks",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    });
    let app = axum::Router::new().route(
        "/.well-known/openid-configuration",
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { axum::Json(doc) }
        }),
    );
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let start = |air_gapped: bool| {
        let mut env = Env::new(&["acme"]);
        env.raw.air_gapped = air_gapped;
        env.raw.orgs[0].oidc = Some(aiworklab::config::RawOidc {
            issuer: issuer.clone(),
            client_id: "aiwl".into(),
            client_secret: "secret".into(),
            ..aiworklab::config::RawOidc::default()
        });
        (env.state(), env)
    };
    let (state, _env) = start(true);
    let page = send(&state, get("/o/acme/login/start")).await;
    assert_eq!(page.status, StatusCode::BAD_GATEWAY, "{}", page.text());
    assert!(
        page.text()
            .contains("outside the network this appliance may reach"),
        "{}",
        page.text()
    );
    let (state, _env) = start(false);
    let page = send(&state, get("/o/acme/login/start")).await;
    assert_eq!(page.status, StatusCode::BAD_GATEWAY, "{}", page.text());
    assert!(
        !page.text().contains("outside the network"),
        "not air-gapped, the rule does not apply: {}",
        page.text()
    );
    server.abort();
}

/// `config check`, as an operator runs it before starting: a public
/// address is refused with the key, where it was set, and the fix.
#[test]
fn config_check_refuses_a_public_destination_and_names_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("aiworklab.toml");
    let write = |extra: &str| {
        std::fs::write(
            &file,
            format!(
                "{extra}\n[storage]\ndata_dir = \"{}\"\n[[orgs]]\nslug = \"acme\"\nname = \"Acme\"\n[orgs.oidc]\nissuer = \"https://8.8.8.8/realms/acme\"\nclient_id = \"aiwl\"\nclient_secret = \"s\"\n",
                dir.path().join("data").display()
            ),
        )
        .expect("write");
    };
    let check = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_aiworklab"));
        for (k, _) in std::env::vars() {
            if k.starts_with("AIWORKLAB_") {
                c.env_remove(k);
            }
        }
        c.arg("--config").arg(&file).args(["config", "check"]);
        c.output().expect("runs")
    };
    write("air_gapped = true");
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("orgs.0.oidc.issuer"), "{err}");
    assert!(
        err.contains("8.8.8.8") && err.contains("egress_allow"),
        "{err}"
    );
    write("air_gapped = true\negress_allow = [\"8.8.8.8\"]");
    let out = check();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
