//! TLS over real loopback connections (P2): TLS 1.3 only by default, TLS
//! 1.2 only when configured; bad TLS files are clear errors.

use std::sync::Arc;

use aiworklab::http::server;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Env, tls_files};

/// Connects with a client limited to `versions`; on success sends
/// `GET /healthz` and returns the status line.
async fn handshake(
    addr: std::net::SocketAddr,
    ca: &[u8],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<String, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.to_vec()))
        .map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    tls.read_to_end(&mut buf).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf);
    Ok(text.lines().next().unwrap_or_default().to_string())
}

async fn start_tls(min: &str) -> (Env, server::Running, Vec<u8>) {
    let mut env = Env::new(&["acme"]);
    let (cert, key, ca) = tls_files(env.dir.path());
    env.raw.server.tls_cert_file = cert.display().to_string();
    env.raw.server.tls_key_file = key.display().to_string();
    env.raw.server.tls_min_version = min.into();
    env.raw.server.shutdown_grace_secs = 1;
    let listener = server::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let running = server::start(env.state(), listener)
        .await
        .expect("server starts");
    (env, running, ca)
}

#[tokio::test]
async fn tls12_is_refused_by_default_and_tls13_served() {
    let (_env, running, ca) = start_tls("1.3").await;
    let status = handshake(running.addr, &ca, &[&rustls::version::TLS13])
        .await
        .expect("TLS 1.3 handshake");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let refused = handshake(running.addr, &ca, &[&rustls::version::TLS12]).await;
    assert!(refused.is_err(), "TLS 1.2 was accepted: {refused:?}");
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn tls12_is_accepted_only_when_configured() {
    let (_env, running, ca) = start_tls("1.2").await;
    let status = handshake(running.addr, &ca, &[&rustls::version::TLS12])
        .await
        .expect("TLS 1.2 handshake");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let status = handshake(running.addr, &ca, &[&rustls::version::TLS13])
        .await
        .expect("TLS 1.3 still works");
    assert_eq!(status, "HTTP/1.1 200 OK");
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn plain_http_is_not_answered_on_a_tls_port() {
    let (_env, running, _) = start_tls("1.3").await;
    let url = format!("http://{}/healthz", running.addr);
    let result = reqwest::get(&url).await;
    assert!(
        result.is_err() || !result.as_ref().is_ok_and(|r| r.status().is_success()),
        "plain HTTP got an answer: {result:?}"
    );
    running.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn unusable_tls_files_are_clear_errors() {
    let mut env = Env::new(&["acme"]);
    let (cert, key, _) = tls_files(env.dir.path());
    std::fs::write(&cert, "not a certificate").expect("write");
    env.raw.server.tls_cert_file = cert.display().to_string();
    env.raw.server.tls_key_file = key.display().to_string();
    let listener = server::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let err = server::start(env.state(), listener)
        .await
        .err()
        .expect("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("server.tls_cert_file") && msg.contains("CERTIFICATE"),
        "{msg}"
    );
}
