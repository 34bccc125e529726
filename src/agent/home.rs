//! The install's directory: where the local store, its key file (when
//! there is no usable keychain) and the kernel's log live. The platform's
//! data directory (`directories`), or `$AIWORKLAB_AGENT_HOME` when set
//! (tests and scripted roll-outs use it).

use std::path::{Path, PathBuf};

use super::error::AgentError;

/// Overrides the platform data directory.
pub const HOME_ENV: &str = "AIWORKLAB_AGENT_HOME";
/// Set to `off` to keep the store's key in a key file even when an OS
/// keychain is available (headless machines, tests).
pub const KEYCHAIN_ENV: &str = "AIWORKLAB_AGENT_KEYCHAIN";

/// The kernel's directory on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    dir: PathBuf,
    keychain: bool,
}

impl Home {
    /// `$AIWORKLAB_AGENT_HOME`, else the platform data directory
    /// (`~/.local/share/aiworklab-agent` on Linux, `~/Library/Application
    /// Support/com.aiworklab.aiworklab-agent` on macOS). Created on first use by
    /// [`Home::ensure`]. The keychain is used unless
    /// `$AIWORKLAB_AGENT_KEYCHAIN` is `off`.
    ///
    /// # Errors
    /// [`AgentError::NoHome`] when neither is known.
    pub fn locate() -> Result<Home, AgentError> {
        let keychain = std::env::var(KEYCHAIN_ENV).as_deref() != Ok("off");
        if let Some(dir) = std::env::var_os(HOME_ENV).filter(|v| !v.is_empty()) {
            return Ok(Home {
                dir: PathBuf::from(dir),
                keychain,
            });
        }
        let dirs = directories::ProjectDirs::from("com", "aiworklab", "aiworklab-agent")
            .ok_or(AgentError::NoHome)?;
        Ok(Home {
            dir: dirs.data_dir().to_path_buf(),
            keychain,
        })
    }

    /// A home at `dir` that keeps its key in a key file (tests, and
    /// callers that chose the directory themselves).
    pub fn at(dir: impl Into<PathBuf>) -> Home {
        Home {
            dir: dir.into(),
            keychain: false,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the store's key may live in the OS keychain.
    pub fn uses_keychain(&self) -> bool {
        self.keychain
    }

    /// The encrypted local store.
    pub fn store_path(&self) -> PathBuf {
        self.dir.join("kernel.db")
    }

    /// The store's key when there is no usable keychain (mode 0600).
    pub fn key_path(&self) -> PathBuf {
        self.dir.join("kernel.key")
    }

    /// The kernel's own log (failures of the hook path go there).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("kernel.log")
    }

    /// Where hooks leave signals for the ingest worker (`agent::ingest`).
    pub fn ingest_dir(&self) -> PathBuf {
        self.dir.join("ingest")
    }

    /// The public key hooks seal their signals to (the store keeps the
    /// private half).
    pub fn signal_recipient_path(&self) -> PathBuf {
        self.ingest_dir().join("recipient")
    }

    /// Creates the directory (mode 0700 on Unix) when missing.
    ///
    /// # Errors
    /// [`AgentError::Io`] when it cannot be created.
    pub fn ensure(&self) -> Result<(), AgentError> {
        if self.dir.is_dir() {
            return Ok(());
        }
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(&self.dir)
            .map_err(|e| AgentError::io("cannot create the kernel's directory", &self.dir, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_home_keeps_its_files_inside_and_no_keychain() {
        let h = Home::at("/tmp/x");
        assert_eq!(h.store_path(), Path::new("/tmp/x/kernel.db"));
        assert_eq!(h.key_path(), Path::new("/tmp/x/kernel.key"));
        assert!(!h.uses_keychain());
    }

    #[cfg(unix)]
    #[test]
    fn ensure_creates_a_private_directory() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let h = Home::at(tmp.path().join("a/b"));
        h.ensure().expect("created");
        h.ensure().expect("idempotent");
        let mode = std::fs::metadata(h.dir())
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
