//! Backups (SECURITY.md P23): online snapshots of every database, packed
//! with a manifest into one archive encrypted with age to the configured
//! backup recipients (X25519 keys separate from the master key). An archive
//! restores on a fresh machine with only itself and the backup identity; at
//! no point does a plaintext database or archive touch the disk.

pub mod archive;
pub mod drill;
pub mod restore;
pub mod schedule;
pub mod signing;
pub mod snapshot;
pub mod status;

use std::fs;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::json;

use crate::audit::Context;
use crate::fsperm;
use crate::ids::OrgSlug;
use crate::store::{Db, Store, StoreError};
use archive::{FileEntry, Manifest};

/// Archive names: `aiworklab-backup-<UTC time>[-<org>].age`.
const PREFIX: &str = "aiworklab-backup-";
const SUFFIX: &str = ".age";
const TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("no backup recipients are configured")]
    NoRecipients,
    #[error("the identity does not match any recipient this archive was encrypted to")]
    WrongIdentity,
    #[error("cannot read the backup identity {0}")]
    Identity(String),
    #[error("there is no backup signing key at {0}")]
    NoSigningKey(PathBuf),
    #[error("cannot read the backup signing key {0}")]
    SigningKey(String),
    #[error(transparent)]
    Permissions(#[from] fsperm::PermProblem),
    #[error("no backup verification key is trusted, so no archive can be checked")]
    NoVerifyKeys,
    #[error("{}", unsigned(.format))]
    Unsigned { format: u32 },
    #[error("the archive's signature is wrong: {0}")]
    BadSignature(String),
    #[error("not an aiworklab backup archive: {0}")]
    NotAnArchive(String),
    #[error("the archive is damaged or truncated: {0}")]
    Damaged(String),
    #[error(
        "the archive has format {found}, written by aiworklab {writer}; this binary reads format {supported} and older"
    )]
    NewerFormat {
        found: u32,
        supported: u32,
        writer: String,
    },
    #[error("a restored database failed its checks: {0}")]
    Corrupt(String),
    #[error("{0} is in use by a running aiworklab server")]
    Locked(PathBuf),
    #[error("{0} already holds data")]
    Exists(PathBuf),
    #[error("no backup archives in {0}")]
    NoArchives(PathBuf),
    #[error("org `{0}` is not in this archive")]
    OrgNotInArchive(String),
    #[error(
        "this aiworklab binary was built without SQLite's sqlite_dbpage table, which backups read and write"
    )]
    Unsupported,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Writing a database or an archive failed (the error names the file).
    #[error("{0}")]
    Write(std::io::Error),
}

impl BackupError {
    /// What the operator should do about it.
    pub fn fix(&self) -> String {
        match self {
            Self::NoRecipients => "add your backup public key (age1…) to backup.recipients; `aiworklab backup keygen --out backup.key` makes a pair".into(),
            Self::WrongIdentity => "use the identity file whose public key was in backup.recipients when the archive was made".into(),
            Self::Identity(_) => "give the age identity file (AGE-SECRET-KEY-1…) made by `aiworklab backup keygen` or `age-keygen`".into(),
            Self::NoSigningKey(path) => format!("make one with `aiworklab backup keygen --signing --out {}` (or point backup.signing_key_file at yours)", path.display()),
            Self::SigningKey(_) => "give the file made by `aiworklab backup keygen --signing` (one AIWL-BACKUP-SIGNING-KEY-… line)".into(),
            Self::Permissions(p) => p.fix(),
            Self::NoVerifyKeys => "list the backup verification keys (aiwl_bkv_…, printed by `aiworklab backup keygen --signing`) in backup.verify_keys, or give --verify-key".into(),
            Self::Unsigned { format: 2 } => "format 2 predates signed manifests; only if you know where this archive came from, add --accept-unsigned-format-2".into(),
            Self::Unsigned { .. } => "this archive was not written by an appliance holding a trusted signing key, or its signature was removed: use another archive, and check who can write to the backup store".into(),
            Self::BadSignature(_) => "use another archive and check who can write to the backup store; if the archive is yours and was signed by an older key, add that key's aiwl_bkv_… to backup.verify_keys (or --verify-key)".into(),
            Self::NotAnArchive(_) | Self::Damaged(_) => "use another archive (`aiworklab backup list`), or copy this one again from its off-site store".into(),
            Self::NewerFormat { writer, .. } => format!("restore with aiworklab {writer} or newer"),
            Self::Corrupt(_) => "use an older archive; report the problem if new backups fail too".into(),
            Self::Locked(_) => "stop the server first (systemctl stop aiworklab), or restore into another --data-dir".into(),
            Self::Exists(_) => "restore into an empty --data-dir, or add --force to replace the databases of this stopped instance".into(),
            Self::NoArchives(_) => "check --from/backup.dir, or make one with `aiworklab backup create`".into(),
            Self::OrgNotInArchive(_) => "list the archive's orgs with `aiworklab backup verify`".into(),
            Self::Unsupported => "use the released binary or package, or build from the repository, whose .cargo/config.toml sets LIBSQLITE3_FLAGS=-DSQLITE_ENABLE_DBPAGE_VTAB".into(),
            Self::Store(e) => e.fix(),
            Self::Io(e) | Self::Write(e) if e.kind() == std::io::ErrorKind::StorageFull => "free disk space on the file system holding the file named above (or write elsewhere: --to, --data-dir) and run it again; nothing partial was kept".into(),
            Self::Write(_) => "check that the file system holding the file named above is writable and has room (permissions, quota, file size limit); nothing partial was kept".into(),
            Self::Io(_) => "check the paths and permissions named above".into(),
        }
    }
}

fn unsigned(format: &u32) -> String {
    if *format == 2 {
        "the archive has format 2, whose manifest is not signed".into()
    } else {
        format!("the archive's manifest (format {format}) has no signature")
    }
}

/// One archive on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveInfo {
    pub path: PathBuf,
    pub created_at: DateTime<Utc>,
    pub org: Option<String>,
    pub size: u64,
}

/// What `create` made.
#[derive(Debug, Clone)]
pub struct Created {
    pub path: PathBuf,
    pub size: u64,
    pub databases: usize,
    pub rows: i64,
    pub elapsed: Duration,
}

fn archive_name(at: DateTime<Utc>, org: Option<&OrgSlug>) -> String {
    let time = at.format(TIME_FORMAT);
    match org {
        Some(o) => format!("{PREFIX}{time}-{o}{SUFFIX}"),
        None => format!("{PREFIX}{time}{SUFFIX}"),
    }
}

fn parse_name(name: &str) -> Option<(DateTime<Utc>, Option<String>)> {
    let stem = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let (time, org) = match stem.split_once('-') {
        Some((t, o)) => (t, Some(o.to_string())),
        None => (stem, None),
    };
    let at = NaiveDateTime::parse_from_str(time, TIME_FORMAT)
        .ok()?
        .and_utc();
    Some((at, org))
}

/// A progress bar on a terminal, nothing otherwise.
pub fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// Removes a path on drop unless disarmed: nothing partial is left behind.
struct Cleanup(Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
    }
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// An I/O error that names the file it happened on, keeping its kind (so a
/// full disk is still recognised as one).
fn on(path: &Path) -> impl Fn(std::io::Error) -> std::io::Error + '_ {
    move |e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// A failed write to `path`, naming it.
pub(crate) fn write_to(path: &Path) -> impl Fn(std::io::Error) -> BackupError + '_ {
    move |e| BackupError::Write(writing(path)(e))
}

/// An I/O error on writing `path`, naming it and keeping its kind.
fn writing(path: &Path) -> impl Fn(std::io::Error) -> std::io::Error + '_ {
    move |e| std::io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
}

/// The archive file being written: its errors name it.
struct OutFile<'a> {
    file: fs::File,
    path: &'a Path,
}

impl std::io::Write for OutFile<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf).map_err(writing(self.path))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush().map_err(writing(self.path))
    }
}

/// Makes an archive of every database (or of one org's) in `out_dir`,
/// its manifest signed by `signer`.
///
/// Each database's page image is streamed from one read transaction
/// through tar and age into a `.partial` file that is fsynced and renamed.
/// On any error it is removed.
///
/// # Errors
/// [`BackupError`]; nothing is left in `out_dir` on error.
pub fn create(
    store: &Store,
    recipients: &[age::x25519::Recipient],
    signer: &signing::SigningKey,
    only_org: Option<&OrgSlug>,
    out_dir: &Path,
    ctx: &Context,
    now: DateTime<Utc>,
) -> Result<Created, BackupError> {
    let started = Instant::now();
    if recipients.is_empty() {
        return Err(BackupError::NoRecipients);
    }
    fsperm::ensure_private_dir(out_dir)?;
    let name = archive_name(now, only_org);
    let partial = out_dir.join(format!(".{name}.partial"));
    let mut partial_guard = Cleanup(Some(partial.clone()));

    let mut dbs: Vec<(String, &Db)> = Vec::new();
    if only_org.is_none() {
        dbs.push(("system.db".into(), store.system()));
    }
    for org in store.orgs() {
        if only_org.is_none_or(|o| o == &org.slug) {
            dbs.push((format!("orgs/{}.db", org.slug), &org.db));
        }
    }
    if let Some(o) = only_org
        && dbs.is_empty()
    {
        return Err(StoreError::UnknownOrg { org: o.to_string() }.into());
    }
    // The images' sizes are known inside their read transactions; the
    // files' sizes on disk are close enough for a progress bar.
    let estimate = dbs.iter().map(|(_, db)| db.size_on_disk()).sum();
    let bar = progress(estimate, "backup");
    let file = fsperm::create_private_file(&partial).map_err(write_to(&partial))?;
    let out = OutFile {
        file,
        path: &partial,
    };
    let out = std::io::BufWriter::with_capacity(1 << 20, out);
    let (manifest, out) = archive::write(out, recipients, signer, now, |w| {
        let mut files = Vec::new();
        for (path, db) in &dbs {
            let entry = snapshot::read_image(db, |contents, shape, pages| {
                let (size, sha256) = w.add_image(path, shape.bytes(), pages, Some(&bar))?;
                Ok(FileEntry {
                    path: path.clone(),
                    size,
                    sha256,
                    page_size: shape.page_size,
                    contents: contents.clone(),
                })
            })?;
            files.push(entry);
        }
        Ok(Manifest {
            format: archive::FORMAT_VERSION,
            appliance_version: env!("CARGO_PKG_VERSION").into(),
            created_at: now,
            host: hostname(),
            files,
        })
    })?;
    let rows = manifest
        .files
        .iter()
        .flat_map(|f| f.contents.rows.values())
        .sum();
    let databases = manifest.files.len();
    let out = out
        .into_inner()
        .map_err(|e| BackupError::Write(e.into_error()))?;
    out.file.sync_all().map_err(write_to(&partial))?;
    drop(out);
    bar.finish_and_clear();
    let path = out_dir.join(&name);
    fs::rename(&partial, &path).map_err(write_to(&path))?;
    partial_guard.0 = None;
    fsync_dir(out_dir).map_err(write_to(out_dir))?;
    let size = fs::metadata(&path)?.len();
    let details = json!({ "file": name, "size": size, "databases": databases });
    for org in store
        .orgs()
        .filter(|o| only_org.is_none_or(|x| x == &o.slug))
    {
        org.db
            .write(|tx| ctx.record(tx, "backup.create", Some(&name), &details, now))?;
    }
    Ok(Created {
        path,
        size,
        databases,
        rows,
        elapsed: started.elapsed(),
    })
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The archives in `dir`, oldest first.
///
/// # Errors
/// I/O errors reading the directory (a missing directory is an empty list).
pub fn list(dir: &Path) -> Result<Vec<ArchiveInfo>, BackupError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some((created_at, org)) = parse_name(&name) {
            out.push(ArchiveInfo {
                path: e.path(),
                created_at,
                org,
                size: e.metadata()?.len(),
            });
        }
    }
    out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.path.cmp(&b.path)));
    Ok(out)
}

/// The newest whole-installation archive in `dir`.
///
/// # Errors
/// [`BackupError::NoArchives`] when there is none.
pub fn latest(dir: &Path) -> Result<ArchiveInfo, BackupError> {
    list(dir)?
        .into_iter()
        .rev()
        .find(|a| a.org.is_none())
        .ok_or_else(|| BackupError::NoArchives(dir.to_path_buf()))
}

/// Deletes archives older than `keep_days` before `now`, and work files a
/// crashed run left behind (older than a day). Returns what was removed.
///
/// # Errors
/// I/O errors.
pub fn prune(dir: &Path, keep_days: u32, now: DateTime<Utc>) -> Result<Vec<PathBuf>, BackupError> {
    let cutoff = now - chrono::Duration::days(i64::from(keep_days));
    let mut removed = Vec::new();
    for a in list(dir)? {
        if a.created_at < cutoff {
            fs::remove_file(&a.path)?;
            removed.push(a.path);
        }
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let stale = name.starts_with(&format!(".{PREFIX}"))
                && (name.ends_with(".partial") || name.ends_with(".work"))
                && name
                    .strip_prefix('.')
                    .and_then(|n| n.split(".age").next())
                    .and_then(|n| parse_name(&format!("{n}{SUFFIX}")))
                    .is_some_and(|(t, _)| t < now - chrono::Duration::days(1));
            if stale {
                let p = e.path();
                let _ = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
                removed.push(p);
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn names_round_trip() {
        let t = Utc
            .with_ymd_and_hms(2026, 11, 23, 2, 0, 0)
            .single()
            .expect("valid");
        let org = OrgSlug::parse("acme-eu").expect("slug");
        assert_eq!(
            archive_name(t, None),
            "aiworklab-backup-20261123T020000Z.age"
        );
        assert_eq!(parse_name(&archive_name(t, None)), Some((t, None)));
        assert_eq!(
            parse_name(&archive_name(t, Some(&org))),
            Some((t, Some("acme-eu".into())))
        );
        assert_eq!(parse_name("aiworklab-backup-garbage.age"), None);
        assert_eq!(parse_name("other.age"), None);
    }

    #[test]
    fn a_full_disk_names_the_file_and_asks_for_space() {
        let path = Path::new("/backups/.aiworklab-backup-x.age.partial");
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let e = write_to(path)(full);
        assert!(
            e.to_string()
                .starts_with("cannot write /backups/.aiworklab-backup-x.age.partial: "),
            "{e}"
        );
        assert!(e.fix().contains("free disk space"), "{}", e.fix());
        let denied = write_to(path)(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert!(denied.fix().contains("writable"), "{}", denied.fix());
    }
}
