//! Signed manifests (SECURITY.md P23). age gives an archive confidentiality
//! but not authenticity: anyone holding a backup recipient (a public key)
//! can write an archive it accepts. So each archive's manifest, which holds
//! the SHA-256 of every database in it, is signed with an Ed25519 **backup
//! signing key** kept apart from the recipients and the identity; verify,
//! restore and the drill accept only a manifest signed by a key the operator
//! trusts.
//!
//! Text forms: the signing key file holds one line
//! `AIWL-BACKUP-SIGNING-KEY-<base64url seed>` (mode 0600, comments with `#`
//! allowed); a verification key is `aiwl_bkv_<base64url public key>`.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer;
use rand::TryRngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::BackupError;
use crate::fsperm;

const SIGNING_PREFIX: &str = "AIWL-BACKUP-SIGNING-KEY-";
const VERIFY_PREFIX: &str = "aiwl_bkv_";
/// Domain separation: a signature over a manifest is never one over
/// anything else the appliance might sign.
const CONTEXT: &[u8] = b"aiworklab backup manifest v3\n";

/// The key that signs manifests. `Debug` redacts it.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.verify_key())
    }
}

/// A public key that verifies manifests: `aiwl_bkv_…`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VerifyKey(ed25519_dalek::VerifyingKey);

impl fmt::Display for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{VERIFY_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(self.0.as_bytes())
        )
    }
}

impl fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for VerifyKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bytes = s
            .trim()
            .strip_prefix(VERIFY_PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| format!("`{s}` is not a backup verification key (aiwl_bkv_…)"))?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| format!("`{s}` is not a valid Ed25519 public key"))
    }
}

impl SigningKey {
    /// A new random key.
    ///
    /// # Errors
    /// [`BackupError::SigningKey`] when the OS random source fails.
    pub fn generate() -> Result<Self, BackupError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng
            .try_fill_bytes(seed.as_mut_slice())
            .map_err(|e| BackupError::SigningKey(format!("the random source failed: {e}")))?;
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    pub fn verify_key(&self) -> VerifyKey {
        VerifyKey(self.0.verifying_key())
    }

    /// Writes the key to a new file at `path` (mode 0600; an existing file
    /// is never overwritten).
    ///
    /// # Errors
    /// [`BackupError::Write`] naming the file.
    pub fn write_new(&self, path: &Path, created: &str) -> Result<(), BackupError> {
        let seed = Zeroizing::new(self.0.to_bytes());
        let text = Zeroizing::new(format!(
            "# aiworklab backup signing key, created {created}\n# verification key: {}\n{SIGNING_PREFIX}{}\n",
            self.verify_key(),
            URL_SAFE_NO_PAD.encode(seed.as_slice())
        ));
        let mut f = fsperm::create_private_file(path).map_err(super::write_to(path))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(super::write_to(path))
    }

    /// Reads the key at `path`, which must be owner-only (0600).
    ///
    /// # Errors
    /// [`BackupError::NoSigningKey`] when the file is absent,
    /// [`BackupError::Permissions`] when others may read it,
    /// [`BackupError::SigningKey`] when it holds no key.
    pub fn load(path: &Path) -> Result<Self, BackupError> {
        if !path.exists() {
            return Err(BackupError::NoSigningKey(path.to_path_buf()));
        }
        fsperm::check_private_file(path)?;
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(super::on(path))?);
        let err = |why: &str| BackupError::SigningKey(format!("{}: {why}", path.display()));
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .ok_or_else(|| err("holds no key"))?;
        let seed = line
            .strip_prefix(SIGNING_PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .map(Zeroizing::new)
            .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok().map(Zeroizing::new))
            .ok_or_else(|| err("its key line is not AIWL-BACKUP-SIGNING-KEY-…"))?;
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// Signs the exact bytes of a manifest.
    pub fn sign(&self, manifest: &[u8]) -> ManifestSignature {
        let sig = self.0.sign(&message(manifest));
        ManifestSignature {
            key: self.verify_key().to_string(),
            signature: URL_SAFE_NO_PAD.encode(sig.to_bytes()),
        }
    }
}

fn message(manifest: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(CONTEXT.len() + manifest.len());
    m.extend_from_slice(CONTEXT);
    m.extend_from_slice(manifest);
    m
}

/// The archive entry `manifest.sig`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSignature {
    /// The verification key, `aiwl_bkv_…`.
    pub key: String,
    /// The Ed25519 signature (base64url) over the manifest's bytes.
    pub signature: String,
}

/// What it takes to open an archive: the age identities that decrypt it
/// and the verification keys trusted to have signed it.
pub struct OpenKeys {
    pub identities: Vec<Box<dyn age::Identity + Send + Sync>>,
    pub trusted: Vec<VerifyKey>,
    /// The operator typed `--accept-unsigned-format-2`: an archive of
    /// format 2, which predates signatures, may be opened.
    pub accept_unsigned_format_2: bool,
}

impl OpenKeys {
    /// Checks `sig` over the manifest bytes `manifest`.
    ///
    /// # Errors
    /// [`BackupError::NoVerifyKeys`] when nothing is trusted,
    /// [`BackupError::Unsigned`] when the signature is missing,
    /// [`BackupError::BadSignature`] when it is not a trusted key's
    /// signature over these bytes.
    pub fn check(
        &self,
        manifest: &[u8],
        sig: Option<&ManifestSignature>,
    ) -> Result<VerifyKey, BackupError> {
        if self.trusted.is_empty() {
            return Err(BackupError::NoVerifyKeys);
        }
        let sig = sig.ok_or(BackupError::Unsigned { format: 3 })?;
        let key: VerifyKey = sig.key.parse().map_err(BackupError::BadSignature)?;
        if !self.trusted.contains(&key) {
            return Err(BackupError::BadSignature(format!(
                "it is signed by {key}, which is not a trusted backup verification key"
            )));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(&sig.signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .ok_or_else(|| BackupError::BadSignature("the signature is malformed".into()))?;
        let signature = ed25519_dalek::Signature::from_bytes(&bytes);
        key.0
            .verify_strict(&message(manifest), &signature)
            .map_err(|_| {
                BackupError::BadSignature(format!(
                    "the manifest does not match its signature by {key}: it was altered"
                ))
            })?;
        Ok(key)
    }

    /// Whether an unsigned archive of `format` may be opened.
    ///
    /// # Errors
    /// [`BackupError::Unsigned`] unless the operator allowed format 2.
    pub fn allow_unsigned(&self, format: u32) -> Result<(), BackupError> {
        if format == 2 && self.accept_unsigned_format_2 {
            Ok(())
        } else {
            Err(BackupError::Unsigned { format })
        }
    }
}

/// The verification keys an installation trusts: its own signing key's
/// (when that file is on this machine), `backup.verify_keys`, and `extra`
/// (given on the command line).
///
/// # Errors
/// A signing key file that is present but loose or unreadable.
pub fn trusted(
    settings: &crate::config::BackupSettings,
    extra: &[VerifyKey],
) -> Result<Vec<VerifyKey>, BackupError> {
    let mut keys = Vec::new();
    match SigningKey::load(&settings.signing_key_file) {
        Ok(k) => keys.push(k.verify_key()),
        Err(BackupError::NoSigningKey(_)) => {}
        Err(e) => return Err(e),
    }
    for k in settings.verify_keys.iter().chain(extra) {
        if !keys.contains(k) {
            keys.push(*k);
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn keys(trusted: Vec<VerifyKey>) -> OpenKeys {
        OpenKeys {
            identities: Vec::new(),
            trusted,
            accept_unsigned_format_2: false,
        }
    }

    #[test]
    fn a_signature_verifies_only_over_its_bytes_and_under_a_trusted_key() {
        let k = SigningKey::generate().expect("rng");
        let other = SigningKey::generate().expect("rng");
        let sig = k.sign(b"{\"a\":1}");
        let trusting = keys(vec![other.verify_key(), k.verify_key()]);
        assert_eq!(
            trusting.check(b"{\"a\":1}", Some(&sig)).expect("valid"),
            k.verify_key()
        );
        let altered = trusting
            .check(b"{\"a\":2}", Some(&sig))
            .expect_err("altered");
        assert!(altered.to_string().contains("altered"), "{altered}");
        let untrusted = keys(vec![other.verify_key()])
            .check(b"{\"a\":1}", Some(&sig))
            .expect_err("untrusted");
        assert!(
            untrusted.to_string().contains("not a trusted"),
            "{untrusted}"
        );
        // A key swapped into the entry does not make another's signature its own.
        let mut swapped = sig.clone();
        swapped.key = other.verify_key().to_string();
        assert!(trusting.check(b"{\"a\":1}", Some(&swapped)).is_err());
        assert!(matches!(
            trusting.check(b"{\"a\":1}", None),
            Err(BackupError::Unsigned { format: 3 })
        ));
        assert!(matches!(
            keys(Vec::new()).check(b"{\"a\":1}", Some(&sig)),
            Err(BackupError::NoVerifyKeys)
        ));
    }

    #[test]
    fn the_key_file_round_trips_and_a_loose_one_is_refused_with_the_chmod() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("signing.key");
        let k = SigningKey::generate().expect("rng");
        k.write_new(&path, "now").expect("write");
        assert!(k.write_new(&path, "now").is_err(), "never overwritten");
        let back = SigningKey::load(&path).expect("load");
        assert_eq!(back.verify_key(), k.verify_key());
        let text = k.verify_key().to_string();
        assert_eq!(text.parse::<VerifyKey>().expect("parse"), k.verify_key());
        assert!(!format!("{k:?}").contains(SIGNING_PREFIX));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = SigningKey::load(&path).expect_err("loose");
        assert_eq!(e.fix(), format!("chmod 600 {}", path.display()));
        let missing = SigningKey::load(&dir.path().join("nope")).expect_err("missing");
        assert!(
            missing.fix().contains("keygen --signing"),
            "{}",
            missing.fix()
        );
        assert!("aiwl_bkv_xyz".parse::<VerifyKey>().is_err());
        assert!("age1abc".parse::<VerifyKey>().is_err());
    }
}
