//! The archive format (version 1): a tar stream inside an age envelope.
//!
//! ```text
//! age( tar( format.json        {format, appliance_version}
//!           db/system.db       SQLCipher snapshot under its own random key
//!           db/orgs/<slug>.db  one per org
//!           manifest.json      times, host, and per file: size, SHA-256,
//!                              schema version, row counts, key ) )
//! ```
//!
//! `format.json` comes first so that a newer format is refused before
//! anything is written; `manifest.json` comes last so that hashes are taken
//! while streaming and every byte is read once. age authenticates every
//! 64 KiB chunk and the end of the stream, so a changed or truncated archive
//! fails to decrypt. The manifest's keys never leave the envelope.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::BackupError;
use super::snapshot::Contents;
use crate::ids::OrgSlug;

/// The format this binary writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;
const HEADER_ENTRY: &str = "format.json";
const MANIFEST_ENTRY: &str = "manifest.json";
const DB_PREFIX: &str = "db/";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    format: u32,
    appliance_version: String,
}

/// A snapshot file's key, hex; `Debug` redacts it.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyHex(pub String);

impl fmt::Debug for KeyHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for KeyHex {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// One database in the archive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    /// `system.db` or `orgs/<slug>.db`.
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub key: KeyHex,
    #[serde(flatten)]
    pub contents: Contents,
}

impl FileEntry {
    /// The org this file belongs to, if it is an org database.
    pub fn org(&self) -> Option<OrgSlug> {
        self.path
            .strip_prefix("orgs/")
            .and_then(|p| p.strip_suffix(".db"))
            .and_then(|s| OrgSlug::parse(s).ok())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub appliance_version: String,
    pub created_at: DateTime<Utc>,
    pub host: String,
    pub files: Vec<FileEntry>,
}

/// Checks a path inside the archive: only `system.db` and
/// `orgs/<valid slug>.db`, so a crafted archive cannot name another file.
pub fn valid_db_path(p: &str) -> bool {
    p == "system.db"
        || p.strip_prefix("orgs/")
            .and_then(|r| r.strip_suffix(".db"))
            .is_some_and(|s| OrgSlug::parse(s).is_ok())
}

/// Counts and hashes what passes through.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    bytes: u64,
    progress: Option<indicatif::ProgressBar>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        if let Some(p) = &self.progress {
            p.inc(n as u64);
        }
        Ok(n)
    }
}

fn tar_header(size: u64, at: DateTime<Utc>) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o600);
    h.set_mtime(u64::try_from(at.timestamp()).unwrap_or(0));
    h.set_entry_type(tar::EntryType::Regular);
    h
}

/// Writes an archive to `out`.
pub struct Writer<W: Write> {
    tar: tar::Builder<age::stream::StreamWriter<W>>,
    at: DateTime<Utc>,
}

impl<W: Write> Writer<W> {
    /// Starts an archive encrypted to `recipients`.
    ///
    /// # Errors
    /// [`BackupError::NoRecipients`] for an empty list; I/O errors.
    pub fn new(
        out: W,
        recipients: &[age::x25519::Recipient],
        at: DateTime<Utc>,
    ) -> Result<Self, BackupError> {
        let encryptor =
            age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
                .map_err(|_| BackupError::NoRecipients)?;
        let stream = encryptor.wrap_output(out)?;
        let mut w = Self {
            tar: tar::Builder::new(stream),
            at,
        };
        let header = serde_json::to_vec(&Header {
            format: FORMAT_VERSION,
            appliance_version: env!("CARGO_PKG_VERSION").into(),
        })
        .map_err(io::Error::other)?;
        w.append(HEADER_ENTRY, &header)?;
        Ok(w)
    }

    fn append(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        let mut h = tar_header(data.len() as u64, self.at);
        self.tar.append_data(&mut h, name, data)
    }

    /// Streams the snapshot file at `file` in as `db/<path>`; returns its
    /// size and SHA-256 (hex).
    ///
    /// # Errors
    /// I/O errors.
    pub fn add_db(
        &mut self,
        path: &str,
        file: &Path,
        progress: Option<&indicatif::ProgressBar>,
    ) -> Result<(u64, String), BackupError> {
        let size = std::fs::metadata(file)?.len();
        let mut h = tar_header(size, self.at);
        let mut reader = Hashing {
            inner: File::open(file)?,
            hash: Sha256::new(),
            bytes: 0,
            progress: progress.cloned(),
        };
        self.tar
            .append_data(&mut h, format!("{DB_PREFIX}{path}"), &mut reader)?;
        Ok((reader.bytes, hex::encode(reader.hash.finalize())))
    }

    /// Appends the manifest and closes the envelope.
    ///
    /// # Errors
    /// I/O errors.
    pub fn finish(mut self, manifest: &Manifest) -> Result<W, BackupError> {
        let data = serde_json::to_vec_pretty(manifest).map_err(io::Error::other)?;
        self.append(MANIFEST_ENTRY, &data)?;
        let stream = self.tar.into_inner()?;
        Ok(stream.finish()?)
    }
}

/// Reads the identities in an age identity file (`AGE-SECRET-KEY-1…`).
///
/// # Errors
/// [`BackupError::Identity`] naming the file.
pub fn read_identities(
    path: &Path,
) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>, BackupError> {
    let err = |why: String| BackupError::Identity(format!("{}: {why}", path.display()));
    let file =
        age::IdentityFile::from_file(path.display().to_string()).map_err(|e| err(e.to_string()))?;
    let ids = file.into_identities().map_err(|e| err(e.to_string()))?;
    if ids.is_empty() {
        return Err(err("holds no AGE-SECRET-KEY-1 identity".into()));
    }
    Ok(ids)
}

fn damaged(e: &io::Error) -> BackupError {
    BackupError::Damaged(e.to_string())
}

/// Decrypts `input` and writes each database into `staging` (still under
/// its snapshot key: nothing decrypted reaches the disk). Checks the format,
/// paths, sizes and hashes against the manifest, which it returns.
///
/// # Errors
/// Wrong identity, damaged or truncated archive, newer format, hash
/// mismatch; files written so far stay in `staging` for the caller to
/// remove.
pub fn unpack<R: Read>(
    input: R,
    identities: &[Box<dyn age::Identity + Send + Sync>],
    staging: &Path,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<Manifest, BackupError> {
    let decryptor = age::Decryptor::new(input).map_err(|e| match e {
        age::DecryptError::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            BackupError::NotAnArchive("the file is empty or truncated".into())
        }
        other => BackupError::NotAnArchive(other.to_string()),
    })?;
    let reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => BackupError::WrongIdentity,
            other => BackupError::Damaged(other.to_string()),
        })?;
    let mut archive = tar::Archive::new(reader);
    let mut seen_header = false;
    let mut staged: Vec<(String, u64, String)> = Vec::new();
    let mut manifest: Option<Manifest> = None;
    for entry in archive.entries().map_err(|e| damaged(&e))? {
        let mut entry = entry.map_err(|e| damaged(&e))?;
        let name = entry
            .path()
            .map_err(|e| damaged(&e))?
            .to_string_lossy()
            .into_owned();
        if manifest.is_some() {
            return Err(BackupError::Damaged(format!(
                "unexpected entry `{name}` after the manifest"
            )));
        }
        if !seen_header {
            if name != HEADER_ENTRY {
                return Err(BackupError::NotAnArchive(
                    "it does not start with format.json".into(),
                ));
            }
            let h: Header = read_json(&mut entry)?;
            if h.format > FORMAT_VERSION {
                return Err(BackupError::NewerFormat {
                    found: h.format,
                    supported: FORMAT_VERSION,
                    writer: h.appliance_version,
                });
            }
            seen_header = true;
        } else if name == MANIFEST_ENTRY {
            manifest = Some(read_json(&mut entry)?);
        } else {
            let path = name
                .strip_prefix(DB_PREFIX)
                .filter(|p| valid_db_path(p))
                .ok_or_else(|| BackupError::Damaged(format!("unexpected entry `{name}`")))?
                .to_string();
            let (size, sha) = stage(&mut entry, &staging.join(&path), progress)?;
            staged.push((path, size, sha));
        }
    }
    let manifest = manifest.ok_or_else(|| {
        BackupError::Damaged("the manifest is missing (truncated archive?)".into())
    })?;
    check_against(&manifest, &staged)?;
    Ok(manifest)
}

fn read_json<T: serde::de::DeserializeOwned>(r: &mut impl Read) -> Result<T, BackupError> {
    let mut buf = Vec::new();
    r.take(16 << 20)
        .read_to_end(&mut buf)
        .map_err(|e| damaged(&e))?;
    serde_json::from_slice(&buf)
        .map_err(|e| BackupError::Damaged(format!("unreadable metadata: {e}")))
}

fn stage(
    entry: &mut impl Read,
    dest: &Path,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<(u64, String), BackupError> {
    if let Some(dir) = dest.parent() {
        crate::fsperm::ensure_private_dir(dir)?;
    }
    let mut out = crate::fsperm::create_private_file(dest)?;
    let mut reader = Hashing {
        inner: entry,
        hash: Sha256::new(),
        bytes: 0,
        progress: progress.cloned(),
    };
    io::copy(&mut reader, &mut out).map_err(|e| {
        if e.kind() == io::ErrorKind::StorageFull {
            BackupError::Io(e)
        } else {
            damaged(&e)
        }
    })?;
    out.sync_all()?;
    Ok((reader.bytes, hex::encode(reader.hash.finalize())))
}

fn check_against(manifest: &Manifest, staged: &[(String, u64, String)]) -> Result<(), BackupError> {
    if manifest.format > FORMAT_VERSION {
        return Err(BackupError::NewerFormat {
            found: manifest.format,
            supported: FORMAT_VERSION,
            writer: manifest.appliance_version.clone(),
        });
    }
    if manifest.files.len() != staged.len() {
        return Err(BackupError::Damaged(format!(
            "the manifest lists {} databases but the archive holds {}",
            manifest.files.len(),
            staged.len()
        )));
    }
    for f in &manifest.files {
        let Some((_, size, sha)) = staged.iter().find(|(p, _, _)| *p == f.path) else {
            return Err(BackupError::Damaged(format!(
                "{} is listed but missing",
                f.path
            )));
        };
        if *size != f.size || *sha != f.sha256 {
            return Err(BackupError::Damaged(format!(
                "{} does not match its checksum",
                f.path
            )));
        }
    }
    Ok(())
}
