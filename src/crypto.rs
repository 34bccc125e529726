//! The key hierarchy. One 32-byte master key, kept in a 0600 file, is the
//! only long-lived secret; every database key and signing key is derived from
//! it with HKDF-SHA256 (RFC 5869) and a purpose label, so one master key
//! serves any number of orgs and no derived key is ever stored.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use hkdf::Hkdf;
use rand::TryRngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::fsperm::{self, PermProblem};
use crate::ids::OrgSlug;

/// HKDF salt: fixes the derivation scheme's version.
const HKDF_SALT: &[u8] = b"aiworklab/key-derivation/v1";

/// What a derived key is for. The label is the HKDF `info`; changing one
/// would make every existing database unreadable.
#[derive(Debug, Clone, Copy)]
pub enum KeyPurpose<'a> {
    /// The key of `system.db`.
    SystemDb,
    /// The key of `orgs/<slug>.db`; the slug is the org's permanent id.
    OrgDb(&'a OrgSlug),
    /// The HMAC key that signs short-lived device access tokens.
    AccessTokens,
    /// The key that draws the noise of an org's aggregate releases.
    PrivacyNoise(&'a OrgSlug),
}

impl KeyPurpose<'_> {
    fn info(&self) -> Vec<u8> {
        match self {
            Self::SystemDb => b"db:system".to_vec(),
            Self::OrgDb(slug) => [b"db:org:".as_slice(), slug.as_str().as_bytes()].concat(),
            Self::AccessTokens => b"mac:device-access-tokens".to_vec(),
            Self::PrivacyNoise(slug) => {
                [b"mac:privacy-noise:".as_slice(), slug.as_str().as_bytes()].concat()
            }
        }
    }
}

/// A derived 256-bit key, wiped on drop.
pub type DerivedKey = Zeroizing<[u8; 32]>;

/// A derived key that must not show in `Debug` output (it is kept in
/// long-lived structures that are).
pub struct SecretKey(DerivedKey);

impl SecretKey {
    pub fn new(key: DerivedKey) -> Self {
        Self(key)
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Errors loading or creating the master key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("master key file {path} is unsafe: {problem}")]
    Permissions {
        path: PathBuf,
        #[source]
        problem: PermProblem,
    },
    #[error(
        "master key file {path} holds {len} bytes; it must hold exactly 32 raw bytes or 64 hex characters"
    )]
    BadLength { path: PathBuf, len: usize },
    #[error("master key file {path} does not exist")]
    Missing { path: PathBuf },
    #[error("cannot read or write master key file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

impl KeyError {
    /// What the operator should do.
    pub fn fix(&self) -> String {
        match self {
            Self::Permissions { problem, .. } => problem.fix(),
            Self::BadLength { .. } => {
                "restore the original key file from your offline copy (or, for a new install with no data, delete it to have one generated)".into()
            }
            Self::Missing { path } => format!(
                "restore {} from your offline copy, or start `aiworklab serve` once to generate a key for a new install",
                path.display()
            ),
            Self::Io { path, .. } => format!(
                "check that {} is readable by the service user",
                path.display()
            ),
            Self::Random(_) => "check the host's entropy source (/dev/urandom)".into(),
        }
    }
}

/// The master key. `Debug` does not show it; memory is wiped on drop.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// Wraps raw key bytes (tests, restore tooling).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A fresh random key from the OS.
    ///
    /// # Errors
    /// [`KeyError::Random`] when the OS random source fails.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng
            .try_fill_bytes(bytes.as_mut_slice())
            .map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// Reads the key from `path`, which must be owner-only.
    ///
    /// # Errors
    /// [`KeyError`] for a missing file, loose permissions or a bad length.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        if !path.exists() {
            return Err(KeyError::Missing {
                path: path.to_path_buf(),
            });
        }
        fsperm::check_private_file(path).map_err(|problem| KeyError::Permissions {
            path: path.to_path_buf(),
            problem,
        })?;
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let raw = Zeroizing::new(fs::read(path).map_err(io)?);
        Self::parse(&raw).ok_or(KeyError::BadLength {
            path: path.to_path_buf(),
            len: raw.len(),
        })
    }

    /// 32 raw bytes, or 64 hex characters with an optional trailing newline.
    fn parse(raw: &[u8]) -> Option<Self> {
        let mut key = Zeroizing::new([0u8; 32]);
        if raw.len() == 32 {
            key.copy_from_slice(raw);
            return Some(Self(key));
        }
        let text = raw.strip_suffix(b"\n").unwrap_or(raw);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        hex::decode_to_slice(text, key.as_mut_slice()).ok()?;
        Some(Self(key))
    }

    /// Loads the key at `path`, or generates and writes one (mode 0600,
    /// fsynced) when the file does not exist. Returns whether it was created.
    ///
    /// # Errors
    /// As [`MasterKey::load`], plus I/O errors writing a new key.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), KeyError> {
        if path.exists() {
            return Ok((Self::load(path)?, false));
        }
        let key = Self::generate()?;
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = fsperm::create_private_file(path).map_err(io)?;
        file.write_all(key.0.as_slice()).map_err(io)?;
        file.sync_all().map_err(io)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok((key, true))
    }

    /// Derives the key for `purpose` with HKDF-SHA256.
    pub fn derive(&self, purpose: KeyPurpose<'_>) -> DerivedKey {
        let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), self.0.as_slice());
        let mut okm = Zeroizing::new([0u8; 32]);
        hk.expand(&purpose.info(), okm.as_mut_slice())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        okm
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn slug(s: &str) -> OrgSlug {
        OrgSlug::parse(s).expect("valid slug")
    }

    #[test]
    fn derivation_matches_rfc5869_hkdf_and_separates_purposes() {
        let mk = MasterKey::from_bytes([7u8; 32]);
        let a = mk.derive(KeyPurpose::OrgDb(&slug("a")));
        let b = mk.derive(KeyPurpose::OrgDb(&slug("b")));
        let sys = mk.derive(KeyPurpose::SystemDb);
        assert_ne!(*a, *b);
        assert_ne!(*a, *sys);
        assert_eq!(
            *a,
            *mk.derive(KeyPurpose::OrgDb(&slug("a"))),
            "deterministic"
        );
        // Independent computation of HKDF-SHA256 (extract then expand, one
        // block) with the same salt and info.
        use sha2::Digest;
        let hmac = |key: &[u8], msg: &[u8]| -> [u8; 32] {
            let mut k = [0u8; 64];
            k[..key.len()].copy_from_slice(key);
            let ipad: Vec<u8> = k.iter().map(|x| x ^ 0x36).collect();
            let opad: Vec<u8> = k.iter().map(|x| x ^ 0x5c).collect();
            let inner = Sha256::new()
                .chain_update(&ipad)
                .chain_update(msg)
                .finalize();
            Sha256::new()
                .chain_update(&opad)
                .chain_update(inner)
                .finalize()
                .into()
        };
        let prk = hmac(HKDF_SALT, &[7u8; 32]);
        let t1 = hmac(&prk, &[b"db:org:a".as_slice(), &[1u8]].concat());
        assert_eq!(*a, t1);
    }

    #[test]
    fn created_key_is_private_and_reloads_identically() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("master.key");
        let (k1, created) = MasterKey::load_or_create(&path).expect("create");
        assert!(created);
        let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::metadata(&path).expect("meta").len(), 32);
        let (k2, created) = MasterKey::load_or_create(&path).expect("load");
        assert!(!created);
        assert_eq!(*k1.0, *k2.0);
    }

    #[test]
    fn hex_keys_are_accepted_and_bad_files_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        fs::write(&path, format!("{}\n", "ab".repeat(32))).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).expect("chmod");
        assert_eq!(*MasterKey::load(&path).expect("hex").0, [0xab; 32]);

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = MasterKey::load(&path).expect_err("0644 refused");
        assert!(matches!(err, KeyError::Permissions { .. }));
        assert_eq!(err.fix(), format!("chmod 600 {}", path.display()));

        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        fs::write(&path, b"short").expect("write");
        assert!(matches!(
            MasterKey::load(&path),
            Err(KeyError::BadLength { len: 5, .. })
        ));
        assert!(matches!(
            MasterKey::load(&dir.path().join("absent")),
            Err(KeyError::Missing { .. })
        ));
    }

    #[test]
    fn debug_does_not_print_the_key() {
        let mk = MasterKey::from_bytes([0x41; 32]);
        assert_eq!(format!("{mk:?}"), "MasterKey(<redacted>)");
    }
}
