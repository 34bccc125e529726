//! The data directory lock: `serve` and `restore` hold an exclusive
//! `flock` on `<data_dir>/.lock` for as long as they run, so a restore can
//! never replace files under a live server, and two servers never share a
//! data directory. Operator commands that only read or append through
//! SQLite (token, org, backup create) do not take it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::{FlockOperation, flock};

use super::StoreError;

/// Held lock; released when dropped (or when the process exits).
#[derive(Debug)]
pub struct DataDirLock(#[allow(dead_code)] File);

impl DataDirLock {
    /// Takes the lock without waiting.
    ///
    /// # Errors
    /// [`StoreError::Locked`] when another process holds it.
    pub fn acquire(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
        flock(&file, FlockOperation::NonBlockingLockExclusive).map_err(|_| StoreError::Locked {
            path: data_dir.to_path_buf(),
        })?;
        Ok(Self(file))
    }
}
