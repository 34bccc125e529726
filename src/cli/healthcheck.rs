//! `aiworklab healthcheck`: a liveness probe for container health checks.
//! Connects to the configured bind address on loopback, sends one
//! `GET /healthz`, and exits 0 on a 200.
//!
//! Over TLS the probe pins the configured certificate instead of verifying
//! a chain: it talks to its own process on loopback, where the public host
//! name does not apply, and a pinned certificate still proves it reached
//! this appliance and not something else on the port. The pin is a
//! rustls verifier handed to `reqwest` as its TLS configuration.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::{Failure, settings};

const TIMEOUT: Duration = Duration::from_secs(5);

pub fn run(path: Option<&Path>) -> Result<ExitCode, Failure> {
    let settings = settings(path)?;
    let bind = settings.server.bind;
    let ip = match bind.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    };
    let addr = SocketAddr::new(ip, bind.port());
    let pinned = match &settings.server.tls {
        Some(files) => {
            let pem = std::fs::read(&files.cert_file).map_err(|e| {
                Failure::new(
                    format!("cannot read {}: {e}", files.cert_file.display()),
                    None,
                )
            })?;
            let first = CertificateDer::pem_slice_iter(&pem)
                .next()
                .and_then(Result::ok)
                .ok_or_else(|| Failure::new("server.tls_cert_file holds no certificate", None))?;
            Some(first)
        }
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format!("cannot start the async runtime: {e}"), None))?;
    let status =
        runtime.block_on(async { tokio::time::timeout(TIMEOUT, probe(addr, pinned)).await });
    match status {
        Ok(Ok(200)) => {
            println!("healthy: {addr} answered 200");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Ok(code)) => Err(Failure::new(
            format!("{addr} answered /healthz with {code}"),
            None,
        )),
        Ok(Err(e)) => Err(Failure::new(
            format!("cannot reach {addr}: {}", with_causes(&e)),
            None,
        )),
        Err(_) => Err(Failure::new(
            format!("{addr} did not answer within {} s", TIMEOUT.as_secs()),
            None,
        )),
    }
}

/// `GET /healthz` on `addr`, over TLS with the pinned certificate when
/// there is one.
async fn probe(
    addr: SocketAddr,
    pinned: Option<CertificateDer<'static>>,
) -> Result<u16, reqwest::Error> {
    // Loopback: never through a proxy, and a redirect is an answer.
    let builder = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none());
    let (builder, scheme) = match pinned {
        None => (builder, "http"),
        Some(cert) => {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned { cert, provider }))
                .with_no_client_auth();
            (builder.use_preconfigured_tls(config), "https")
        }
    };
    let client = builder.build()?;
    let answer = client
        .get(format!("{scheme}://{addr}/healthz"))
        .send()
        .await?;
    Ok(answer.status().as_u16())
}

/// An error and its causes, one after the other: `reqwest` keeps the
/// useful part (connection refused, the certificate) in the causes.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

/// Accepts exactly the configured certificate.
#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the server presented a certificate other than server.tls_cert_file".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
