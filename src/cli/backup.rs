//! `aiworklab backup create|list|verify|prune|keygen`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use super::restore::OpenArgs;
use super::{Failure, settings};
use crate::audit::Context;
use crate::backup::signing::SigningKey;
use crate::backup::{self, BackupError};
use crate::clock::{Clock, SystemClock};
use crate::ids::OrgSlug;
use crate::store::{OpenMode, Store};

#[derive(Debug, Subcommand)]
pub enum BackupCmd {
    /// Take an online backup of every database (safe while the server runs).
    Create {
        /// Only this org's database.
        #[arg(long)]
        org: Option<OrgSlug>,
        /// Output directory. Default: backup.dir.
        #[arg(long)]
        to: Option<PathBuf>,
    },
    /// List archives, oldest first.
    List {
        /// Default: backup.dir.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Decrypt in memory and check manifest, checksums, integrity and row counts.
    Verify {
        file: PathBuf,
        #[command(flatten)]
        open: OpenArgs,
    },
    /// Delete archives older than N days.
    Prune {
        #[arg(long)]
        keep_days: Option<u32>,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Make a backup key pair: writes the identity (0600), prints the public
    /// key. With --signing: the key that signs manifests, printing its
    /// verification key.
    Keygen {
        #[arg(long)]
        out: PathBuf,
        /// Make the manifest signing key (Ed25519) instead of an age identity.
        #[arg(long)]
        signing: bool,
    },
}

impl From<BackupError> for Failure {
    fn from(e: BackupError) -> Self {
        Self::new(e.to_string(), Some(e.fix()))
    }
}

pub fn run(path: Option<&Path>, cmd: BackupCmd) -> Result<ExitCode, Failure> {
    // Keygen needs no configuration: it runs before one exists.
    let settings = match cmd {
        BackupCmd::Keygen { ref out, signing } => {
            return if signing {
                signing_keygen(out)
            } else {
                keygen(out)
            };
        }
        _ => settings(path)?,
    };
    let b = &settings.backup;
    match cmd {
        BackupCmd::Keygen { .. } => {}
        BackupCmd::Create { org, to } => {
            let signer = SigningKey::load(&b.signing_key_file)?;
            let store = Store::open(&settings, OpenMode::Existing, &SystemClock)?;
            let dir = to.unwrap_or_else(|| b.dir.clone());
            let c = backup::create(
                &store,
                &b.recipients,
                &signer,
                org.as_ref(),
                &dir,
                &Context::operator(),
                SystemClock.now(),
            )?;
            println!(
                "{}  ({} bytes, {} databases, {} rows, {:.2} s)",
                c.path.display(),
                c.size,
                c.databases,
                c.rows,
                c.elapsed.as_secs_f64()
            );
        }
        BackupCmd::List { dir } => {
            let dir = dir.unwrap_or_else(|| b.dir.clone());
            let all = backup::list(&dir)?;
            if all.is_empty() {
                eprintln!("no archives in {}", dir.display());
            }
            for a in all {
                println!(
                    "{}  {:>14}  {:<12}  {}",
                    a.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    a.size,
                    a.org.as_deref().unwrap_or("all orgs"),
                    a.path.display()
                );
            }
        }
        BackupCmd::Verify { file, open } => {
            let keys = open.keys(&settings)?;
            let v = backup::restore::verify(&file, &keys, &std::env::temp_dir())?;
            let m = &v.manifest;
            let signed = match &v.signed_by {
                Some(k) => format!("signed by {k}"),
                None => "UNSIGNED, accepted by --accept-unsigned-format-2".into(),
            };
            println!(
                "{}: OK (format {}, {signed}, aiworklab {}, made {} on {})",
                file.display(),
                m.format,
                m.appliance_version,
                m.created_at.to_rfc3339(),
                m.host
            );
            for f in &m.files {
                let rows: i64 = f.contents.rows.values().sum();
                println!(
                    "  {:<28} schema {:>3}  {:>12} bytes  {:>10} rows  integrity ok",
                    f.path, f.contents.schema_version, f.size, rows
                );
            }
        }
        BackupCmd::Prune { keep_days, dir } => {
            let dir = dir.unwrap_or_else(|| b.dir.clone());
            let removed = backup::prune(
                &dir,
                keep_days.unwrap_or(b.retention_days),
                SystemClock.now(),
            )?;
            for p in &removed {
                println!("removed {}", p.display());
            }
            eprintln!("{} removed", removed.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn keygen(out: &Path) -> Result<ExitCode, Failure> {
    use age::secrecy::ExposeSecret;
    let identity = age::x25519::Identity::generate();
    let public = identity.to_public();
    let mut f = crate::fsperm::create_private_file(out).map_err(|e| {
        Failure::new(
            format!("cannot create {}: {e}", out.display()),
            Some("choose a path that does not exist yet".into()),
        )
    })?;
    let text = format!(
        "# aiworklab backup identity, created {}\n# public key: {public}\n{}\n",
        SystemClock.now().to_rfc3339(),
        identity.to_string().expose_secret()
    );
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Failure::new(format!("cannot write {}: {e}", out.display()), None))?;
    eprintln!(
        "Wrote the backup identity to {} (mode 0600). Store it offline, away from this machine.",
        out.display()
    );
    eprintln!("Add this public key to backup.recipients:");
    println!("{public}");
    Ok(ExitCode::SUCCESS)
}

fn signing_keygen(out: &Path) -> Result<ExitCode, Failure> {
    let key = SigningKey::generate()?;
    key.write_new(out, &SystemClock.now().to_rfc3339())?;
    eprintln!(
        "Wrote the backup signing key to {} (mode 0600). Point backup.signing_key_file at it on the appliance;",
        out.display()
    );
    eprintln!(
        "keep this verification key with the backup identity (backup.verify_keys or --verify-key where you restore):"
    );
    println!("{}", key.verify_key());
    Ok(ExitCode::SUCCESS)
}
