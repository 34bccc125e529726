//! The archive format (version 3): a tar stream inside an age envelope.
//!
//! ```text
//! age( tar( format.json        {format, appliance_version}
//!           db/system.db       the database's page image (see snapshot.rs)
//!           db/orgs/<slug>.db  one per org
//!           manifest.json      format, times, host, and per file: size,
//!                              SHA-256, page size, schema version, row counts
//!           manifest.sig       Ed25519 signature over manifest.json's bytes
//!                              (see signing.rs) ) )
//! ```
//!
//! The page images are plaintext SQLite databases, but only ever inside the
//! envelope: they are streamed from the pager into age while written, and
//! from age into a new SQLCipher file (encrypted page by page) while read.
//! `format.json` comes first so that a newer format is refused before
//! anything is written; `manifest.json` comes last so that hashes are taken
//! while streaming and every byte is read once. age authenticates every
//! 64 KiB chunk and the end of the stream, so a changed or truncated archive
//! fails to decrypt.
//!
//! Encryption (writing) and decryption (reading) run on a thread of their
//! own, fed through a bounded channel of 1 MiB chunks, so the pager's work
//! and age's use both cores while memory stays a few MiB.
//!
//! The signature is what makes an archive authentic: age only keeps it
//! secret, and anyone with a recipient (a public key) can write one. A
//! reader checks the signature before it trusts any hash in the manifest.
//! Format 2 was format 3 without `manifest.sig`; it is opened only when the
//! operator says so. Format 1 (development builds) held SQLCipher files
//! under per-archive keys; no release wrote it, and it is refused.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::BackupError;
use super::signing::{ManifestSignature, OpenKeys, SigningKey, VerifyKey};
use super::snapshot::{self, Contents, FileKey};
use crate::ids::OrgSlug;

/// The format this binary writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 3;
/// The last format without signatures.
const UNSIGNED_FORMAT: u32 = 2;
const HEADER_ENTRY: &str = "format.json";
const MANIFEST_ENTRY: &str = "manifest.json";
const SIGNATURE_ENTRY: &str = "manifest.sig";
const DB_PREFIX: &str = "db/";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    format: u32,
    appliance_version: String,
}

/// One database in the archive.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    /// `system.db` or `orgs/<slug>.db`.
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub page_size: u32,
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

/// Bytes per chunk passed between the archive and its age thread.
const CHUNK: usize = 1 << 20;
/// Chunks in flight: bounds memory at a few MiB.
const IN_FLIGHT: usize = 4;

/// The producer's end of the pipe to the age thread.
pub struct ChannelWriter {
    tx: SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .send(full)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the archive writer stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Adds entries to an archive being written; see [`write`].
pub struct Writer {
    tar: tar::Builder<ChannelWriter>,
    at: DateTime<Utc>,
}

impl Writer {
    fn append(&mut self, name: &str, data: &[u8]) -> io::Result<()> {
        let mut h = tar_header(data.len() as u64, self.at);
        self.tar.append_data(&mut h, name, data)
    }

    /// Streams a page image of `size` bytes in as `db/<path>`; returns its
    /// size and SHA-256 (hex).
    ///
    /// # Errors
    /// I/O errors, and an image shorter than `size`.
    pub fn add_image(
        &mut self,
        path: &str,
        size: u64,
        image: &mut dyn Read,
        progress: Option<&indicatif::ProgressBar>,
    ) -> Result<(u64, String), BackupError> {
        let mut h = tar_header(size, self.at);
        let mut reader = Hashing {
            inner: image,
            hash: Sha256::new(),
            bytes: 0,
            progress: progress.cloned(),
        };
        self.tar
            .append_data(&mut h, format!("{DB_PREFIX}{path}"), &mut reader)?;
        if reader.bytes != size {
            return Err(BackupError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{path}: the snapshot gave {} of {size} bytes", reader.bytes),
            )));
        }
        Ok((reader.bytes, hex::encode(reader.hash.finalize())))
    }
}

/// Writes an archive encrypted to `recipients` into `out`: the format
/// header, whatever `f` adds, then the manifest `f` returns and its
/// signature by `signer`. age runs on a second thread. Returns the manifest and `out`, flushed but not fsynced.
///
/// # Errors
/// [`BackupError::NoRecipients`] for an empty list; the error `f` returns;
/// I/O errors writing `out` (which then holds no complete archive).
pub fn write<W: Write + Send>(
    out: W,
    recipients: &[age::x25519::Recipient],
    signer: &SigningKey,
    at: DateTime<Utc>,
    f: impl FnOnce(&mut Writer) -> Result<Manifest, BackupError>,
) -> Result<(Manifest, W), BackupError> {
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|_| BackupError::NoRecipients)?;
    let mut stream = encryptor.wrap_output(out)?;
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
    std::thread::scope(|scope| {
        let sink = scope.spawn(move || -> io::Result<W> {
            for chunk in rx {
                stream.write_all(&chunk)?;
            }
            let mut out = stream.finish()?;
            out.flush()?;
            Ok(out)
        });
        let produced = (|| {
            let mut w = Writer {
                tar: tar::Builder::new(ChannelWriter {
                    tx,
                    buf: Vec::with_capacity(CHUNK),
                }),
                at,
            };
            let header = serde_json::to_vec(&Header {
                format: FORMAT_VERSION,
                appliance_version: env!("CARGO_PKG_VERSION").into(),
            })
            .map_err(io::Error::other)?;
            w.append(HEADER_ENTRY, &header)?;
            let manifest = f(&mut w)?;
            let data = serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?;
            w.append(MANIFEST_ENTRY, &data)?;
            let sig = serde_json::to_vec(&signer.sign(&data)).map_err(io::Error::other)?;
            w.append(SIGNATURE_ENTRY, &sig)?;
            w.tar.into_inner()?.send()?;
            Ok::<_, BackupError>(manifest)
            // The channel closes here, on success or error, so the age
            // thread always ends.
        })();
        let sunk = sink
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the archive writer panicked")));
        match (produced, sunk) {
            (Ok(manifest), Ok(out)) => Ok((manifest, out)),
            // A failed write stops the pipe; its cause is the writer's error.
            (_, Err(e)) => Err(BackupError::Write(e)),
            (Err(e), Ok(_)) => Err(e),
        }
    })
}

/// Reads the identities in an age identity file (`AGE-SECRET-KEY-1…`),
/// which must be owner-only (0600) like every other secret file.
///
/// # Errors
/// [`BackupError::Permissions`] with the `chmod` that fixes a loose file;
/// [`BackupError::Identity`] naming the file.
pub fn read_identities(
    path: &Path,
) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>, BackupError> {
    if path.exists() {
        crate::fsperm::check_private_file(path)?;
    }
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

/// The consumer's end of the pipe from the age thread.
struct ChannelReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.buf = chunk?;
                    self.pos = 0;
                }
                // The age thread ended: the stream is over.
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Sends the decrypted stream in chunks until it ends, fails, or the
/// receiver is gone.
fn pump(mut input: impl Read, tx: &SyncSender<io::Result<Vec<u8>>>) {
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let mut filled = 0;
        let result = loop {
            match input.read(&mut chunk[filled..]) {
                Ok(0) => break Ok(true),
                Ok(n) => {
                    filled += n;
                    if filled == CHUNK {
                        break Ok(false);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        chunk.truncate(filled);
        let (msg, last) = match result {
            Ok(end) => (Ok(chunk), end),
            Err(e) => (Err(e), true),
        };
        if tx.send(msg).is_err() || last {
            return;
        }
    }
}

/// Decrypts `input` and writes each database into `staging` as a new
/// SQLCipher file under the key `key_for(path)` gives: nothing decrypted
/// reaches the disk. Checks the format, the manifest's signature, paths,
/// sizes and hashes against the manifest, which it returns with the key
/// that signed it (none for an allowed format 2 archive). Decryption runs
/// on a second thread.
///
/// # Errors
/// Wrong identity, damaged or truncated archive, newer format, missing or
/// wrong signature, hash mismatch; files written so far stay in `staging`
/// for the caller to remove.
pub fn unpack<R: Read + Send>(
    input: R,
    keys: &OpenKeys,
    staging: &Path,
    key_for: &dyn Fn(&str) -> FileKey,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<(Manifest, Option<VerifyKey>), BackupError> {
    let decryptor = age::Decryptor::new(input).map_err(|e| match e {
        age::DecryptError::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
            BackupError::NotAnArchive("the file is empty or truncated".into())
        }
        other => BackupError::NotAnArchive(other.to_string()),
    })?;
    let reader = decryptor
        .decrypt(
            keys.identities
                .iter()
                .map(|i| i.as_ref() as &dyn age::Identity),
        )
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => BackupError::WrongIdentity,
            other => BackupError::Damaged(other.to_string()),
        })?;
    let (tx, rx) = mpsc::sync_channel(IN_FLIGHT);
    std::thread::scope(|scope| {
        scope.spawn(move || pump(reader, &tx));
        let plain = ChannelReader {
            rx,
            buf: Vec::new(),
            pos: 0,
        };
        // Returning drops `plain`, which stops the age thread early on error.
        read_entries(tar::Archive::new(plain), keys, staging, key_for, progress)
    })
}

fn read_entries(
    mut archive: tar::Archive<ChannelReader>,
    keys: &OpenKeys,
    staging: &Path,
    key_for: &dyn Fn(&str) -> FileKey,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<(Manifest, Option<VerifyKey>), BackupError> {
    let mut format: Option<u32> = None;
    let mut staged: Vec<(String, u64, String)> = Vec::new();
    let mut manifest: Option<Vec<u8>> = None;
    let mut signature: Option<ManifestSignature> = None;
    for entry in archive.entries().map_err(|e| damaged(&e))? {
        let mut entry = entry.map_err(|e| damaged(&e))?;
        let name = entry
            .path()
            .map_err(|e| damaged(&e))?
            .to_string_lossy()
            .into_owned();
        if signature.is_some() || (manifest.is_some() && name != SIGNATURE_ENTRY) {
            return Err(BackupError::Damaged(format!(
                "unexpected entry `{name}` after the manifest"
            )));
        }
        if format.is_none() {
            if name != HEADER_ENTRY {
                return Err(BackupError::NotAnArchive(
                    "it does not start with format.json".into(),
                ));
            }
            let h: Header = parse_json(&read_bytes(&mut entry)?)?;
            check_format(h.format, &h.appliance_version)?;
            if h.format == UNSIGNED_FORMAT {
                // Refused before anything is written, unless allowed.
                keys.allow_unsigned(h.format)?;
            }
            format = Some(h.format);
        } else if name == MANIFEST_ENTRY {
            manifest = Some(read_bytes(&mut entry)?);
        } else if name == SIGNATURE_ENTRY && manifest.is_some() {
            signature = Some(parse_json(&read_bytes(&mut entry)?)?);
        } else {
            let path = name
                .strip_prefix(DB_PREFIX)
                .filter(|p| valid_db_path(p))
                .ok_or_else(|| BackupError::Damaged(format!("unexpected entry `{name}`")))?
                .to_string();
            let size = entry.size();
            let sha = stage(
                &mut entry,
                size,
                &staging.join(&path),
                &key_for(&path),
                progress,
            )?;
            staged.push((path, size, sha));
        }
    }
    let bytes = manifest.ok_or_else(|| {
        BackupError::Damaged("the manifest is missing (truncated archive?)".into())
    })?;
    // Only a manifest whose signature checks is believed: its hashes are
    // what make the databases authentic.
    let signed_by = if format == Some(UNSIGNED_FORMAT) && signature.is_none() {
        keys.allow_unsigned(UNSIGNED_FORMAT)?;
        None
    } else {
        Some(keys.check(&bytes, signature.as_ref())?)
    };
    let manifest: Manifest = parse_json(&bytes)?;
    if Some(manifest.format) != format {
        return Err(BackupError::Damaged(
            "the manifest's format differs from format.json".into(),
        ));
    }
    check_against(&manifest, &staged)?;
    Ok((manifest, signed_by))
}

fn check_format(found: u32, writer: &str) -> Result<(), BackupError> {
    match found {
        UNSIGNED_FORMAT | FORMAT_VERSION => Ok(()),
        f if f > FORMAT_VERSION => Err(BackupError::NewerFormat {
            found,
            supported: FORMAT_VERSION,
            writer: writer.to_string(),
        }),
        _ => Err(BackupError::NotAnArchive(format!(
            "format {found} (aiworklab {writer}) is a development format this release does not read"
        ))),
    }
}

fn read_bytes(r: &mut impl Read) -> Result<Vec<u8>, BackupError> {
    let mut buf = Vec::new();
    r.take(16 << 20)
        .read_to_end(&mut buf)
        .map_err(|e| damaged(&e))?;
    Ok(buf)
}

fn parse_json<T: serde::de::DeserializeOwned>(buf: &[u8]) -> Result<T, BackupError> {
    serde_json::from_slice(buf)
        .map_err(|e| BackupError::Damaged(format!("unreadable metadata: {e}")))
}

/// Writes one page image into a new SQLCipher file at `dest`, hashing it
/// on the way, and makes the file durable. Returns the SHA-256 (hex).
fn stage(
    entry: &mut impl Read,
    size: u64,
    dest: &Path,
    key: &FileKey,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<String, BackupError> {
    if let Some(dir) = dest.parent() {
        crate::fsperm::ensure_private_dir(dir)?;
    }
    let mut reader = Hashing {
        inner: entry,
        hash: Sha256::new(),
        bytes: 0,
        progress: progress.cloned(),
    };
    snapshot::write_image(dest, key, snapshot::PAGE_SIZE, size, &mut reader).map_err(
        |e| match e {
            BackupError::Io(e) if e.kind() != io::ErrorKind::StorageFull => damaged(&e),
            other => other,
        },
    )?;
    File::open(dest)
        .and_then(|f| f.sync_all())
        .map_err(super::write_to(dest))?;
    Ok(hex::encode(reader.hash.finalize()))
}

fn check_against(manifest: &Manifest, staged: &[(String, u64, String)]) -> Result<(), BackupError> {
    check_format(manifest.format, &manifest.appliance_version)?;
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
        if *size != f.size || *sha != f.sha256 || f.page_size != snapshot::PAGE_SIZE {
            return Err(BackupError::Damaged(format!(
                "{} does not match its checksum",
                f.path
            )));
        }
    }
    Ok(())
}
