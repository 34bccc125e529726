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
use axum::http::StatusCode;

use crate::idp::{Browser, Site};
use crate::support::{Env, get, send};

fn audit_actions(state: &AppState, org: &str) -> Vec<(String, String)> {
    crate::support::audit_rows(state, org)
        .into_iter()
        .map(|r| (r.action, r.details.to_string()))
        .collect()
}

/// An org's OIDC settings with this issuer (no IdP behind it).
fn oidc_at(issuer: &str) -> aiworklab::config::RawOidc {
    aiworklab::config::RawOidc {
        issuer: issuer.into(),
        client_id: "aiwl".into(),
        client_secret: "secret".into(),
        ..aiworklab::config::RawOidc::default()
    }
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
    env.raw.orgs[0].oidc = Some(oidc_at("https://idp.corp.example/realms/acme"));
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
        env.raw.orgs[0].oidc = Some(oidc_at(&issuer));
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

/// The inet destinations (`address:port`) of every `connect` and addressed
/// `sendto`/`sendmsg` in an strace log, and any other socket family met.
fn destinations(trace: &str) -> (Vec<String>, Vec<String>) {
    let mut inet = Vec::new();
    let mut other = Vec::new();
    for line in trace.lines() {
        let call = ["connect(", "sendto(", "sendmsg("]
            .iter()
            .any(|c| line.contains(c));
        if !call || !line.contains("sa_family=") {
            continue;
        }
        let port = line
            .split("htons(")
            .nth(1)
            .and_then(|r| r.split(')').next())
            .unwrap_or("?");
        if line.contains("sa_family=AF_INET,") {
            let ip = line
                .split("inet_addr(\"")
                .nth(1)
                .and_then(|r| r.split('"').next());
            inet.push(format!("{}:{port}", ip.unwrap_or("?")));
        } else if line.contains("sa_family=AF_INET6") {
            let ip = line
                .split("inet_pton(AF_INET6, \"")
                .nth(1)
                .and_then(|r| r.split('"').next());
            inet.push(format!("[{}]:{port}", ip.unwrap_or("?")));
        } else {
            other.push(line.to_string());
        }
    }
    (inet, other)
}

/// `aiworklab ARGS` under `strace -f`, tracing where it connects to.
fn traced(
    trace: &std::path::Path,
    envs: &[(&str, &std::path::Path)],
    args: &[&str],
) -> std::process::Output {
    let mut c = Command::new("strace");
    c.args(["-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o"])
        .arg(trace)
        .arg(env!("CARGO_BIN_EXE_aiworklab"))
        .args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("AIWORKLAB_") {
            c.env_remove(k);
        }
    }
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("strace runs")
}

/// A full run of the real binary, air-gapped, under `strace`: sign-in
/// through the IdP, a SCIM token minted and used, a device paired by the
/// kernel (`aiworklab agent pair`), a comprehension check the org's model
/// writes (a scripted OpenAI-compatible server on loopback) answered with
/// `aiworklab agent check` and synced, a backup made. Every socket the
/// server connected to (or sent a datagram to) is the IdP or the model on
/// loopback; the kernel's and the backup's only the appliance or none:
/// no update check, no telemetry, no DNS.
#[tokio::test]
async fn every_connection_of_a_full_run_goes_to_a_configured_local_destination() {
    assert!(
        Command::new("strace").arg("-V").output().is_ok(),
        "strace is not installed: run ./tests/run (it installs Debian's strace)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let idp =
        crate::idp::Idp::start(&[("aiwl-acme".into(), format!("{base}/o/acme/oidc/callback"))]);
    let oidc = idp.oidc("aiwl-acme");
    let idp_port = url::Url::parse(&idp.issuer)
        .expect("issuer")
        .port()
        .expect("port");
    let model = crate::scripted_model::Scripted::start().await;
    let model_addr = url::Url::parse(&model.base_url()).expect("model url");
    let model_addr = format!("127.0.0.1:{}", model_addr.port().expect("the model's port"));
    let key_file = dir.path().join("model.key");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&key_file, "sk-air-gapped\n").expect("key");
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let recipient = age::x25519::Identity::generate().to_public().to_string();
    let config = dir.path().join("aiworklab.toml");
    std::fs::write(
        &config,
        format!(
            "air_gapped = true\n[server]\nbind = \"127.0.0.1:{port}\"\npublic_url = \"{base}\"\n[storage]\ndata_dir = \"{}\"\n[model]\nbase_url = \"{}\"\nmodel = \"scripted-model\"\napi_key_file = \"{}\"\ntimeout_secs = 10\n[backup]\nrecipients = [\"{recipient}\"]\n[[orgs]]\nslug = \"acme\"\nname = \"Acme\"\nadmin_groups = [\"aiwl-admins\"]\n[orgs.oidc]\nissuer = \"{}\"\nclient_id = \"aiwl-acme\"\nclient_secret = \"{}\"\nscopes = [\"openid\", \"profile\", \"email\", \"groups\"]\n",
            dir.path().join("data").display(),
            model.base_url(),
            key_file.display(),
            oidc.issuer,
            oidc.client_secret,
        ),
    )
    .expect("config");
    let aiworklab = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_aiworklab"));
        for (k, _) in std::env::vars() {
            if k.starts_with("AIWORKLAB_") {
                c.env_remove(k);
            }
        }
        c.arg("--config").arg(&config).args(args);
        c
    };
    let trace = dir.path().join("strace.log");
    let mut server = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o"])
        .arg(&trace)
        .arg(env!("CARGO_BIN_EXE_aiworklab"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env_remove("AIWORKLAB_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("strace runs the server");
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while http.get(format!("{base}/readyz")).send().await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never answered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }

    // Sign-in through the IdP (discovery, JWKS, token endpoint).
    let mut b = Browser::new();
    let callback = b
        .idp_login(&format!("{base}/o/acme/login/start"), "alice", false)
        .await;
    let landed = b.get(&callback).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.body);
    assert_eq!(landed.location().as_deref(), Some("/account"));

    // SCIM with a token minted by the operator.
    let out = aiworklab(&[
        "token", "create", "--org", "acme", "--kind", "scim", "--name", "okta", "--json",
    ])
    .output()
    .expect("token create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let scim = created["secret"].as_str().expect("secret");
    let res = http
        .post(format!("{base}/scim/v2/Users"))
        .bearer_auth(scim)
        .header("content-type", "application/scim+json")
        .body(serde_json::json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bob@example.com", "active": true}).to_string())
        .send()
        .await
        .expect("scim");
    assert_eq!(res.status(), reqwest::StatusCode::CREATED);

    // A device paired with an operator's code, and a push.
    let out = aiworklab(&["device", "pairing-code", "--org", "acme", "--user", "alice"])
        .output()
        .expect("pairing code");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // The kernel pairs, gets a check the model writes, answers, syncs.
    model.then([crate::scripted_model::Step::json(
        &crate::checks_service::good_check("git-branches", 1),
    )]);
    let kernel_home = dir.path().join("kernel");
    let kernel_trace = dir.path().join("kernel.strace.log");
    let kernel_run = |args: &'static [&'static str], extra: &[&str]| {
        let (trace, home) = (kernel_trace.clone(), kernel_home.clone());
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(extra.iter().map(|a| a.to_string()));
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = all.iter().map(String::as_str).collect();
            // The OS keychain is a Unix socket to the session's D-Bus, not
            // a destination off the host; the key file keeps the trace to
            // inet sockets only.
            let off = std::path::Path::new("off");
            let out = traced(
                &trace,
                &[
                    ("AIWORKLAB_AGENT_HOME", home.as_path()),
                    ("AIWORKLAB_AGENT_KEYCHAIN", off),
                ],
                &args,
            );
            let log = std::fs::read_to_string(&trace).unwrap_or_default();
            (out, log)
        })
    };
    let (paired, pair_log) = kernel_run(&["agent", "pair", "--server"], &[&base, "--code", &code])
        .await
        .expect("pair");
    assert!(
        paired.status.success(),
        "{}",
        String::from_utf8_lossy(&paired.stderr)
    );
    let (checked, check_log) = kernel_run(
        &[
            "agent",
            "check",
            "--concept",
            "git-branches",
            "--answer",
            "1",
            "--json",
        ],
        &[],
    )
    .await
    .expect("check");
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&checked.stdout).expect("json");
    assert_eq!(v["asked"]["source"], "generated", "the model wrote it: {v}");
    assert_eq!(v["synced"], true, "{v}");
    for (what, log) in [("agent pair", pair_log), ("agent check", check_log)] {
        let (inet, other) = destinations(&log);
        let elsewhere: Vec<&String> = inet
            .iter()
            .filter(|d| **d != format!("127.0.0.1:{port}"))
            .collect();
        assert!(!inet.is_empty(), "{what} connected to the appliance");
        assert!(elsewhere.is_empty(), "{what} connected to {elsewhere:?}");
        assert!(other.is_empty(), "{what}: other sockets: {other:?}");
    }
    // A backup, made by the operator's command: no socket at all.
    let signing = dir.path().join("data").join("backup-signing.key");
    let keygen = aiworklab(&[
        "backup",
        "keygen",
        "--signing",
        "--out",
        signing.to_str().expect("utf-8"),
    ])
    .output()
    .expect("keygen");
    assert!(
        keygen.status.success(),
        "{}",
        String::from_utf8_lossy(&keygen.stderr)
    );
    let backup_trace = dir.path().join("backup.strace.log");
    let cfg = config.clone();
    let (made, backup_log) = tokio::task::spawn_blocking(move || {
        let out = traced(
            &backup_trace,
            &[],
            &["--config", cfg.to_str().expect("utf-8"), "backup", "create"],
        );
        (
            out,
            std::fs::read_to_string(&backup_trace).unwrap_or_default(),
        )
    })
    .await
    .expect("backup");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (inet, other) = destinations(&backup_log);
    assert!(
        inet.is_empty() && other.is_empty(),
        "the backup connected to {inet:?} {other:?}"
    );
    // Stop the server (strace's child) with SIGTERM; strace ends with it.
    let children = std::fs::read_to_string(format!(
        "/proc/{pid}/task/{pid}/children",
        pid = server.id()
    ))
    .expect("strace's children");
    let pid: i32 = children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the server runs under strace");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).expect("pid"),
        rustix::process::Signal::TERM,
    )
    .expect("SIGTERM");
    let _ = server.wait();
    let log = std::fs::read_to_string(&trace).expect("strace log");
    let (inet, other) = destinations(&log);
    let idp_addr = format!("127.0.0.1:{idp_port}");
    assert!(
        inet.contains(&idp_addr),
        "the trace holds the server's connections to the IdP: {inet:?}"
    );
    assert!(
        inet.contains(&model_addr),
        "the trace holds the server's connection to the model: {inet:?}"
    );
    let elsewhere: Vec<&String> = inet
        .iter()
        .filter(|d| **d != idp_addr && **d != model_addr)
        .collect();
    assert!(
        elsewhere.is_empty(),
        "the server connected to {elsewhere:?} besides the IdP at {idp_addr} and the model at {model_addr}"
    );
    assert!(other.is_empty(), "other sockets: {other:?}");
}
