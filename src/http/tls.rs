//! TLS with rustls (SECURITY.md P2): TLS 1.3 only by default, 1.2 only when
//! configured, and never anything older. The ring provider's cipher suites
//! are all AEAD with forward secrecy.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{TlsFiles, TlsVersion};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("server.tls_cert_file {path}: {problem}")]
    Cert { path: PathBuf, problem: String },
    #[error("server.tls_key_file {path}: {problem}")]
    Key { path: PathBuf, problem: String },
    #[error("the certificate and key do not form a usable TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |problem: String| TlsError::Cert {
        path: path.to_path_buf(),
        problem,
    };
    let file = File::open(path).map_err(|e| err(e.to_string()))?;
    let certs = CertificateDer::pem_reader_iter(BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(err(
            "holds no CERTIFICATE block; give the PEM certificate chain".into(),
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let err = |problem: String| TlsError::Key {
        path: path.to_path_buf(),
        problem,
    };
    crate::fsperm::check_private_file(path).map_err(|p| err(format!("{p}; fix: {}", p.fix())))?;
    let file = File::open(path).map_err(|e| err(e.to_string()))?;
    PrivateKeyDer::from_pem_reader(BufReader::new(file)).map_err(|e| match e {
        pem::Error::NoItemsFound => {
            err("holds no PRIVATE KEY block (PKCS#8, PKCS#1 or SEC1)".into())
        }
        e => err(format!("not valid PEM: {e}")),
    })
}

/// Builds the server configuration from the configured files.
///
/// # Errors
/// [`TlsError`] naming the file and what is wrong with it.
pub fn server_config(files: &TlsFiles, min: TlsVersion) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = read_certs(&files.cert_file)?;
    let key = read_key(&files.key_file)?;
    let versions: &[&rustls::SupportedProtocolVersion] = match min {
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
