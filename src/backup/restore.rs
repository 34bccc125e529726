//! Restore and verify. Both decrypt the archive as a stream and write each
//! database's page image into a new SQLCipher file (encrypted page by page,
//! never plaintext on disk). Verify writes them under a throwaway key,
//! checks and discards them; restore writes them under the target's own
//! master-derived keys and swaps them in, keeping the files it replaces
//! until the restored ones open.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::json;

use super::archive::{self, FileEntry, Manifest};
use super::signing::{OpenKeys, VerifyKey};
use super::snapshot::{self, FileKey, open_keyed};
use super::{BackupError, Cleanup, fsync_dir, on};
use crate::audit::Context;
use crate::crypto::{KeyPurpose, MasterKey};
use crate::fsperm;
use crate::ids::OrgSlug;
use crate::store::{DataDirLock, Db, DbOptions, StoreError};

/// What `verify` found.
#[derive(Debug, Clone)]
pub struct Verified {
    pub manifest: Manifest,
    /// The key that signed it; `None` only for a format 2 archive the
    /// operator allowed.
    pub signed_by: Option<VerifyKey>,
}

/// Where and what to restore.
#[derive(Debug, Clone)]
pub struct Target {
    pub data_dir: PathBuf,
    pub master_key_file: PathBuf,
    /// Restore only this org's database.
    pub only_org: Option<OrgSlug>,
    /// Replace the databases of an existing (stopped) installation.
    pub force: bool,
}

/// What `restore` did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub manifest: Manifest,
    pub signed_by: Option<VerifyKey>,
    pub restored: Vec<String>,
    pub created_master_key: bool,
}

fn staging_dir(parent: &Path) -> PathBuf {
    parent.join(format!(".restore-{}", uuid::Uuid::new_v4()))
}

/// Checks a staged file: it opens with its key, passes `integrity_check`,
/// and holds exactly the rows the manifest says.
fn check_staged(file: &Path, entry: &FileEntry, key: &FileKey) -> Result<(), BackupError> {
    let conn = open_keyed(file, key)?;
    snapshot::integrity_check(&conn, &entry.path)?;
    let found = snapshot::contents(&conn)?;
    if found != entry.contents {
        return Err(BackupError::Corrupt(format!(
            "{}: row counts differ from the manifest",
            entry.path
        )));
    }
    Ok(())
}

/// Decrypts `file` in a private temporary directory, checks the manifest's
/// signature, the manifest, checksums, `integrity_check` and row counts of every database, and
/// removes everything again.
///
/// # Errors
/// [`BackupError`] for any failed check.
pub fn verify(file: &Path, keys: &OpenKeys, scratch: &Path) -> Result<Verified, BackupError> {
    let staging = staging_dir(scratch);
    fsperm::ensure_private_dir(&staging)?;
    let _guard = Cleanup(Some(staging.clone()));
    let size = fs::metadata(file).map_err(on(file))?.len();
    let bar = super::progress(size, "verify");
    let key = snapshot::new_file_key()?;
    let (manifest, signed_by) = archive::unpack(
        fs::File::open(file).map_err(on(file))?,
        keys,
        &staging,
        &|_| key.clone(),
        Some(&bar),
    )?;
    bar.finish_and_clear();
    for entry in &manifest.files {
        check_staged(&staging.join(&entry.path), entry, &key)?;
    }
    Ok(Verified {
        manifest,
        signed_by,
    })
}

fn aside(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.pre-restore", path.display()))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

/// Restores `file` into `target`.
///
/// # Errors
/// [`BackupError`]; on error the target is as it was.
pub fn restore(
    file: &Path,
    keys: &OpenKeys,
    target: &Target,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<Restored, BackupError> {
    let dir = &target.data_dir;
    // A data directory or master key made here goes again on failure
    // (dropped after the lock is released).
    let mut made_dir = Cleanup((!dir.exists()).then(|| dir.clone()));
    fsperm::ensure_private_dir(dir)?;
    fsperm::check_private_dir(dir).map_err(StoreError::from)?;
    let _lock = DataDirLock::acquire(dir).map_err(|e| match e {
        StoreError::Locked { path } => BackupError::Locked(path),
        other => other.into(),
    })?;
    let (master, created_master_key) =
        MasterKey::load_or_create(&target.master_key_file).map_err(StoreError::from)?;
    let mut made_key = Cleanup(
        (created_master_key && made_dir.0.is_none()).then(|| target.master_key_file.clone()),
    );

    let staging = staging_dir(dir);
    fsperm::ensure_private_dir(&staging)?;
    let _guard = Cleanup(Some(staging.clone()));
    let size = fs::metadata(file).map_err(on(file))?.len();
    let bar = super::progress(size, "restore");
    let key_for = |path: &str| target_key(&master, path);
    let (manifest, signed_by) = archive::unpack(
        fs::File::open(file).map_err(on(file))?,
        keys,
        &staging,
        &key_for,
        Some(&bar),
    )?;
    bar.finish_and_clear();

    let selected: Vec<&FileEntry> = match &target.only_org {
        Some(org) => {
            let e = manifest
                .files
                .iter()
                .find(|f| f.org().as_ref() == Some(org))
                .ok_or_else(|| BackupError::OrgNotInArchive(org.to_string()))?;
            vec![e]
        }
        None => manifest.files.iter().collect(),
    };
    if !target.force {
        for e in &selected {
            if dir.join(&e.path).exists() {
                return Err(BackupError::Exists(dir.clone()));
            }
        }
    }
    for e in &selected {
        check_staged(&staging.join(&e.path), e, &target_key(&master, &e.path))?;
    }
    swap_in(dir, &staging, &selected, &master)?;
    let restored: Vec<String> = selected.iter().map(|e| e.path.clone()).collect();
    let details = json!({ "archive": file.file_name().map(|n| n.to_string_lossy().into_owned()), "created_at": manifest.created_at });
    for e in &selected {
        if let Some(slug) = e.org() {
            let db = open_restored(dir, e, &master)?;
            db.write(|tx| ctx.record(tx, "backup.restore", Some(slug.as_str()), &details, now))?;
        }
    }
    made_key.0 = None;
    made_dir.0 = None;
    Ok(Restored {
        manifest,
        signed_by,
        restored,
        created_master_key,
    })
}

/// The key a database at `path` (`system.db`, `orgs/<slug>.db`) has under
/// `master`; the archive's paths were checked by `valid_db_path`.
fn target_key(master: &MasterKey, path: &str) -> FileKey {
    let org = path
        .strip_prefix("orgs/")
        .and_then(|p| p.strip_suffix(".db"))
        .and_then(|s| OrgSlug::parse(s).ok());
    let key = match &org {
        Some(slug) => master.derive(KeyPurpose::OrgDb(slug)),
        None => master.derive(KeyPurpose::SystemDb),
    };
    zeroize::Zeroizing::new(hex::encode(key.as_slice()))
}

fn open_restored(dir: &Path, e: &FileEntry, master: &MasterKey) -> Result<Db, BackupError> {
    let key = match e.org() {
        Some(slug) => master.derive(KeyPurpose::OrgDb(&slug)),
        None => master.derive(KeyPurpose::SystemDb),
    };
    let opts = DbOptions {
        busy_timeout: std::time::Duration::from_secs(5),
        read_pool_size: 1,
    };
    Ok(Db::open(&dir.join(&e.path), key, &opts)?)
}

/// Moves the current files aside, the staged ones in, and proves each opens
/// with the target key; rolls everything back if any step fails.
fn swap_in(
    dir: &Path,
    staging: &Path,
    selected: &[&FileEntry],
    master: &MasterKey,
) -> Result<(), BackupError> {
    let mut moved: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut placed: Vec<PathBuf> = Vec::new();
    let result = (|| -> Result<(), BackupError> {
        for e in selected {
            let final_path = dir.join(&e.path);
            if let Some(parent) = final_path.parent() {
                fsperm::ensure_private_dir(parent)?;
            }
            for suffix in ["", "-wal", "-shm"] {
                let p = with_suffix(&final_path, suffix);
                if p.exists() {
                    let a = aside(&p);
                    fs::rename(&p, &a)?;
                    moved.push((a, p));
                }
            }
            fs::rename(staging.join(&e.path), &final_path)?;
            placed.push(final_path.clone());
            if let Some(parent) = final_path.parent() {
                fsync_dir(parent)?;
            }
        }
        for e in selected {
            open_restored(dir, e, master)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            for (a, _) in moved {
                let _ = fs::remove_file(a);
            }
            Ok(())
        }
        Err(e) => {
            for p in placed {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = fs::remove_file(with_suffix(&p, suffix));
                }
            }
            for (a, p) in moved {
                let _ = fs::rename(a, p);
            }
            Err(e)
        }
    }
}
