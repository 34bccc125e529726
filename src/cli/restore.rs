//! `aiworklab restore` and `aiworklab drill`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::{Failure, settings};
use crate::audit::Context;
use crate::backup::signing::{self, OpenKeys, VerifyKey};
use crate::backup::{self, archive, drill, restore};
use crate::clock::{Clock, SystemClock};
use crate::ids::OrgSlug;

/// What opens an archive: the identity that decrypts it and the keys
/// trusted to have signed it.
#[derive(Debug, Args)]
pub struct OpenArgs {
    /// The age identity file (AGE-SECRET-KEY-1...), mode 0600.
    #[arg(long)]
    identity: PathBuf,
    /// A backup verification key (aiwl_bkv_...) to trust besides
    /// backup.verify_keys and the signing key's own. Repeatable.
    #[arg(long = "verify-key", value_name = "KEY")]
    verify_keys: Vec<VerifyKey>,
    /// Open an archive of format 2, which predates signed manifests and so
    /// cannot be told from a forged one. Only for archives whose origin you
    /// know.
    #[arg(long)]
    accept_unsigned_format_2: bool,
}

impl OpenArgs {
    /// The identities and trusted keys these arguments and `settings` give.
    ///
    /// # Errors
    /// An unreadable or loose identity or signing key file.
    pub fn keys(&self, settings: &crate::config::Settings) -> Result<OpenKeys, Failure> {
        Ok(OpenKeys {
            identities: archive::read_identities(&self.identity)?,
            trusted: signing::trusted(&settings.backup, &self.verify_keys)?,
            accept_unsigned_format_2: self.accept_unsigned_format_2,
        })
    }
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The archive (aiworklab-backup-*.age).
    file: PathBuf,
    #[command(flatten)]
    open: OpenArgs,
    /// Restore only this org's database.
    #[arg(long)]
    org: Option<OrgSlug>,
    /// Target data directory. Default: storage.data_dir.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Replace the databases of an existing, stopped installation.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    #[command(flatten)]
    open: OpenArgs,
    /// Directory of archives; the newest whole-installation archive is used.
    /// Default: backup.dir.
    #[arg(long)]
    from: Option<PathBuf>,
}

pub fn restore(path: Option<&Path>, args: RestoreArgs) -> Result<ExitCode, Failure> {
    let settings = settings(path)?;
    let keys = args.open.keys(&settings)?;
    let configured = &settings.storage.data_dir;
    let data_dir = args.data_dir.clone().unwrap_or_else(|| configured.clone());
    // The default key file lives in the data directory: follow --data-dir.
    let key = if settings.keys.master_key_file == configured.join("master.key") {
        data_dir.join("master.key")
    } else {
        settings.keys.master_key_file.clone()
    };
    let target = restore::Target {
        data_dir: data_dir.clone(),
        master_key_file: key.clone(),
        only_org: args.org,
        force: args.force,
    };
    let r = restore::restore(
        &args.file,
        &keys,
        &target,
        &Context::operator(),
        SystemClock.now(),
    )?;
    println!(
        "restored {} from {} (made {} on {}) into {}",
        r.restored.join(", "),
        args.file.display(),
        r.manifest.created_at.to_rfc3339(),
        r.manifest.host,
        data_dir.display()
    );
    if r.created_master_key {
        eprintln!(
            "A new master key was generated at {}; keep an offline copy of it.",
            key.display()
        );
    }
    let configured_orgs: Vec<&str> = settings.orgs.iter().map(|o| o.slug.as_str()).collect();
    for f in &r.manifest.files {
        if let Some(org) = f.org()
            && r.restored.contains(&f.path)
            && !configured_orgs.contains(&org.as_str())
        {
            eprintln!(
                "note: org `{org}` was restored but is not in the configuration; add an [[orgs]] table to serve it"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn drill(path: Option<&Path>, args: DrillArgs) -> Result<ExitCode, Failure> {
    let settings = settings(path)?;
    let keys = args.open.keys(&settings)?;
    let dir = args.from.unwrap_or_else(|| settings.backup.dir.clone());
    let latest = backup::latest(&dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format!("cannot start the async runtime: {e}"), None))?;
    let report = runtime.block_on(drill::run(
        &latest.path,
        keys,
        &std::env::temp_dir(),
        crate::http::server::start_on_loopback,
    ));
    print!("{}", report.render());
    // For the setup checklist: the last drill on this machine, beside the archives.
    let record = crate::setup::checklist::DrillRecord {
        at: SystemClock.now(),
        archive: latest
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        passed: report.ok(),
    };
    if let Err(e) = crate::setup::checklist::record_drill(&dir, &record) {
        eprintln!("note: could not record the drill in {}: {e}", dir.display());
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
