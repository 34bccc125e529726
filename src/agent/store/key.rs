//! The store's key: 256 random bits used raw by SQLCipher (no key
//! derivation, so the hook opens the store in microseconds). It lives in
//! the OS keychain (`keyring`: macOS Keychain, Windows Credential Manager,
//! the Secret Service on Linux desktops) when one is usable, else in a key
//! file beside the store, mode 0600, with a one-time warning.
//!
//! A key is only ever made for a store that does not exist yet: a store
//! whose key cannot be found is never silently replaced.

use std::io::Write;
use std::path::Path;

use rand::RngCore;
use zeroize::Zeroizing;

use super::super::error::AgentError;
use super::super::home::Home;

/// The keychain service name; the account is the store's path, so two
/// homes on one machine keep two keys.
const SERVICE: &str = "aiworklab-agent";

/// Where the key was found or put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLocation {
    /// The OS keychain, under service `aiworklab-agent`.
    Keychain,
    /// A key file, mode 0600.
    File(std::path::PathBuf),
}

impl std::fmt::Display for KeyLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Keychain => write!(f, "the OS keychain (service {SERVICE})"),
            Self::File(p) => write!(f, "the key file {}", p.display()),
        }
    }
}

/// The store's key and where it lives.
pub struct StoreKey {
    pub(super) bytes: Zeroizing<[u8; 32]>,
    pub location: KeyLocation,
    /// Set once, when the key file was created because no keychain was usable.
    pub warning: Option<String>,
}

impl StoreKey {
    /// The `PRAGMA key` value: a raw key, so SQLCipher derives nothing.
    pub(super) fn pragma(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("x'{}'", hex::encode(self.bytes.as_slice())))
    }
}

fn entry(home: &Home) -> Result<keyring::Entry, keyring::Error> {
    keyring::Entry::new(SERVICE, &home.store_path().display().to_string())
}

fn parse(text: &str, path: &Path) -> Result<Zeroizing<[u8; 32]>, AgentError> {
    let mut key = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim(), key.as_mut_slice()).map_err(|_| {
        AgentError::Key(format!(
            "the key file {} does not hold 64 hexadecimal digits; restore it from a backup, or move the store aside and pair again",
            path.display()
        ))
    })?;
    Ok(key)
}

fn read_file(path: &Path) -> Result<Zeroizing<[u8; 32]>, AgentError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| AgentError::io("cannot read the store's key file", path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(AgentError::Key(format!(
                "the key file {} can be read by other users (mode {:o}); run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            )));
        }
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| AgentError::io("cannot read the store's key file", path, e))?,
    );
    parse(&text, path)
}

fn write_file(path: &Path, key: &[u8; 32]) -> Result<(), AgentError> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o
        .open(path)
        .map_err(|e| AgentError::io("cannot create the store's key file", path, e))?;
    let text = Zeroizing::new(format!("{}\n", hex::encode(key)));
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| AgentError::io("cannot write the store's key file", path, e))
}

/// The key of the store in `home`, made when the store does not exist yet.
///
/// # Errors
/// [`AgentError::Key`] when the store exists but its key is nowhere to be
/// found or read; I/O errors of the key file.
pub fn load_or_create(home: &Home) -> Result<StoreKey, AgentError> {
    let file = home.key_path();
    if file.exists() {
        return Ok(StoreKey {
            bytes: read_file(&file)?,
            location: KeyLocation::File(file),
            warning: None,
        });
    }
    let store_exists = home.store_path().exists();
    let mut keychain_problem = None;
    if home.uses_keychain() {
        match entry(home).and_then(|e| e.get_secret()) {
            Ok(secret) => {
                let secret = Zeroizing::new(secret);
                let bytes: [u8; 32] = secret.as_slice().try_into().map_err(|_| {
                    AgentError::Key(format!(
                        "the keychain entry {SERVICE} for {} is not a 32-byte key; delete it and move the store aside, then pair again",
                        home.store_path().display()
                    ))
                })?;
                return Ok(StoreKey {
                    bytes: Zeroizing::new(bytes),
                    location: KeyLocation::Keychain,
                    warning: None,
                });
            }
            Err(keyring::Error::NoEntry) => {}
            Err(e) if store_exists => {
                return Err(AgentError::Key(format!(
                    "the OS keychain holding the local store's key cannot be used ({e}); unlock it (sign in to the desktop session) and try again"
                )));
            }
            Err(e) => keychain_problem = Some(e.to_string()),
        }
    } else {
        keychain_problem = Some(format!(
            "the keychain is off for this home ({}=off, or a home chosen by the caller)",
            super::super::home::KEYCHAIN_ENV
        ));
    }
    if store_exists {
        return Err(AgentError::Key(format!(
            "the key of the local store {} is neither in the OS keychain nor in {}; restore the key file, or move the store aside and pair again (deltas not yet synced are lost)",
            home.store_path().display(),
            file.display()
        )));
    }
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(bytes.as_mut_slice());
    if keychain_problem.is_none() {
        match put_in_keychain(home, &bytes) {
            Ok(()) => {
                return Ok(StoreKey {
                    bytes,
                    location: KeyLocation::Keychain,
                    warning: None,
                });
            }
            Err(e) => keychain_problem = Some(e),
        }
    }
    home.ensure()?;
    write_file(&file, &bytes)?;
    let reason = keychain_problem.unwrap_or_default();
    Ok(StoreKey {
        bytes,
        location: KeyLocation::File(file.clone()),
        warning: Some(format!(
            "no usable OS keychain ({reason}): the local store's key is kept in {} (mode 0600); anyone who can read your files can read the store",
            file.display()
        )),
    })
}

/// Stores the key and reads it back, so a keychain that accepts but
/// does not keep secrets is not trusted.
fn put_in_keychain(home: &Home, key: &[u8; 32]) -> Result<(), String> {
    let e = entry(home).map_err(|e| e.to_string())?;
    e.set_secret(key).map_err(|e| e.to_string())?;
    match e.get_secret() {
        Ok(back) if back.as_slice() == key.as_slice() => Ok(()),
        Ok(_) => Err("the keychain returned another value than it was given".into()),
        Err(e) => Err(e.to_string()),
    }
}
