//! Bearer secrets (SECURITY.md P5, P11, P12): 256-bit random values with a
//! recognisable prefix per kind, so secret scanners can spot a leaked one.
//! Only the SHA-256 of a secret is ever stored; the plain value is returned
//! once, to be shown once. Verification compares hashes in constant time.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Every kind of bearer secret the appliance issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretKind {
    /// SCIM provisioning token (one per identity provider connection).
    Scim,
    /// MCP bearer token for AI clients.
    Mcp,
    /// Single-use device pairing code.
    Pairing,
    /// Rotating device refresh secret.
    DeviceRefresh,
    /// Browser session id.
    Session,
    /// Single-use break-glass sign-in link.
    BreakGlass,
    /// The pre-sign-in value a browser holds in the session cookie while an
    /// OIDC sign-in it started is under way (binds the callback to it).
    SignIn,
    /// Single-use setup link that creates the installation's first admin.
    Setup,
}

impl SecretKind {
    pub const ALL: [SecretKind; 8] = [
        Self::Scim,
        Self::Mcp,
        Self::Pairing,
        Self::DeviceRefresh,
        Self::Session,
        Self::BreakGlass,
        Self::SignIn,
        Self::Setup,
    ];

    /// The prefix a secret of this kind starts with.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Scim => "aiwl_scim_",
            Self::Mcp => "aiwl_mcp_",
            Self::Pairing => "aiwl_pair_",
            Self::DeviceRefresh => "aiwl_dev_",
            Self::Session => "aiwl_sess_",
            Self::BreakGlass => "aiwl_bg_",
            Self::SignIn => "aiwl_signin_",
            Self::Setup => "aiwl_setup_",
        }
    }

    /// The kind whose prefix `presented` carries.
    pub fn of(presented: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| presented.starts_with(k.prefix()))
    }
}

/// Length of the random part: 32 bytes as unpadded base64url.
const BODY_LEN: usize = 43;

/// A plain bearer secret. Shown once; `Debug` redacts it; wiped on drop.
pub struct BearerSecret(Zeroizing<String>);

impl BearerSecret {
    /// The plain value, for the one response that shows it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> SecretHash {
        SecretHash::of(&self.0)
    }
}

impl fmt::Debug for BearerSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerSecret(<redacted>)")
    }
}

/// The SHA-256 of a bearer secret: all that is stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash(pub [u8; 32]);

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretHash({}…)", hex::encode(&self.0[..4]))
    }
}

impl SecretHash {
    pub fn of(presented: &str) -> Self {
        Self(Sha256::digest(presented.as_bytes()).into())
    }

    /// Whether `presented` hashes to this value, in constant time.
    pub fn verify(&self, presented: &str) -> bool {
        Self::of(presented).0.ct_eq(&self.0).into()
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }
}

/// Errors generating a secret.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random source failed: {0}")]
pub struct RandomError(String);

/// A new random secret of `kind`.
///
/// # Errors
/// [`RandomError`] when the OS random source fails.
pub fn generate(kind: SecretKind) -> Result<BearerSecret, RandomError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng
        .try_fill_bytes(bytes.as_mut_slice())
        .map_err(|e| RandomError(e.to_string()))?;
    let mut s = String::with_capacity(kind.prefix().len() + BODY_LEN);
    s.push_str(kind.prefix());
    URL_SAFE_NO_PAD.encode_string(bytes.as_slice(), &mut s);
    Ok(BearerSecret(Zeroizing::new(s)))
}

/// Whether `presented` has the shape of a secret of `kind` (prefix and
/// length). A cheap pre-check before any database lookup.
pub fn well_formed(presented: &str, kind: SecretKind) -> bool {
    presented.len() == kind.prefix().len() + BODY_LEN
        && presented.starts_with(kind.prefix())
        && presented[kind.prefix().len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_256_bit() {
        let a = generate(SecretKind::Scim).expect("rng");
        let b = generate(SecretKind::Scim).expect("rng");
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with("aiwl_scim_"));
        assert!(well_formed(a.expose(), SecretKind::Scim));
        assert!(!well_formed(a.expose(), SecretKind::Mcp));
        let body = &a.expose()["aiwl_scim_".len()..];
        assert_eq!(URL_SAFE_NO_PAD.decode(body).expect("base64").len(), 32);
        assert_eq!(SecretKind::of(a.expose()), Some(SecretKind::Scim));
    }

    #[test]
    fn verify_accepts_only_the_exact_secret() {
        let s = generate(SecretKind::Mcp).expect("rng");
        let h = s.hash();
        assert!(h.verify(s.expose()));
        let mut other = s.expose().to_string();
        other.pop();
        other.push('x');
        assert!(!h.verify(&other));
        assert!(!h.verify(""));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let s = generate(SecretKind::Pairing).expect("rng");
        assert!(!format!("{s:?}").contains(&s.expose()[10..]));
        assert!(!format!("{:?}", s.hash()).contains(&hex::encode(s.hash().0)));
    }

    #[test]
    fn prefixes_are_distinct() {
        for a in SecretKind::ALL {
            for b in SecretKind::ALL {
                if a != b {
                    assert!(!a.prefix().starts_with(b.prefix()), "{a:?} {b:?}");
                }
            }
        }
    }
}
