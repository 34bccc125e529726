//! The binary as an operator runs it: embedded default, config errors,
//! token commands, graceful stop on SIGTERM.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aiworklab"));
    // Nothing from the caller's environment may change what is tested.
    for (k, _) in std::env::vars() {
        if k.starts_with("AIWORKLAB_") {
            c.env_remove(k);
        }
    }
    c
}

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = bin();
    c.current_dir(dir).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("the binary runs")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[test]
fn plain_http_on_a_public_bind_stops_start_up_with_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(
        dir.path(),
        &["serve"],
        &[("AIWORKLAB_SERVER__BIND", "0.0.0.0:0")],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AIWORKLAB_SERVER__BIND"), "{err}");
    assert!(err.contains("tls_cert_file"), "{err}");
    assert!(
        !dir.path().join("data").exists(),
        "nothing is created on a refused start"
    );
}

#[test]
fn config_show_redacts_and_check_reports_every_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run(
        dir.path(),
        &["config", "show"],
        &[("AIWORKLAB_METRICS__TOKEN", "very-secret-scrape-token")],
    );
    assert!(out.status.success());
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(!shown.contains("very-secret"), "{shown}");
    assert!(shown.contains("token = \"<redacted>\""), "{shown}");
    assert!(shown.contains("bind = \"127.0.0.1:8080\""), "{shown}");

    std::fs::write(
        dir.path().join("bad.toml"),
        "[server]\nbind = \"nowhere\"\n[log]\nformat = \"xml\"\n",
    )
    .expect("write");
    let out = run(
        dir.path(),
        &["--config", "bad.toml", "config", "check"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.bind (set in bad.toml, line 2)"),
        "{err}"
    );
    assert!(
        err.contains("log.format (set in bad.toml, line 4)"),
        "{err}"
    );
    assert!(err.contains("fix:"), "{err}");
}

#[test]
fn embedded_default_serves_mints_tokens_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let env = [("AIWORKLAB_SERVER__BIND", bind.as_str())];

    // Operator commands refuse to create an installation.
    let out = run(dir.path(), &["org", "list"], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("aiworklab serve"));

    let child = bin()
        .current_dir(dir.path())
        .args(["serve"])
        .env("AIWORKLAB_SERVER__BIND", &bind)
        .env("AIWORKLAB_LOG__FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    let healthy = loop {
        let out = run(dir.path(), &["healthcheck"], &env);
        if out.status.success() {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(healthy, "the embedded default never became healthy");
    let mode = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).expect("meta").permissions().mode() & 0o777
    };
    assert_eq!(mode(&dir.path().join("data/master.key")), 0o600);
    assert_eq!(
        std::fs::metadata(dir.path().join("data/master.key"))
            .expect("meta")
            .len(),
        32
    );

    // A token minted while the server runs.
    let out = run(
        dir.path(),
        &[
            "token", "create", "--org", "default", "--kind", "scim", "--name", "okta", "--json",
        ],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let secret = created["secret"].as_str().expect("secret").to_string();
    assert!(secret.starts_with("aiwl_scim_"));
    let out = run(dir.path(), &["token", "list", "--org", "default"], &env);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("okta") && listed.contains("active"),
        "{listed}"
    );
    assert!(!listed.contains(&secret[10..]), "list shows the secret");
    let out = run(dir.path(), &["org", "list"], &env);
    assert!(String::from_utf8_lossy(&out.stdout).contains("default"));

    // SIGTERM: graceful stop, exit 0.
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("serve exits");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "serve exited with {:?}:\n{log}",
        out.status
    );
    assert!(log.contains("draining in-flight requests"), "{log}");
    assert!(
        !log.contains(&secret[10..]),
        "the secret reached the server log"
    );
}
