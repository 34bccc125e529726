//! `aiworklab restore` and `aiworklab drill`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::{Failure, settings};
use crate::audit::Context;
use crate::backup::{self, archive, drill, restore};
use crate::clock::{Clock, SystemClock};
use crate::ids::OrgSlug;

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The archive (aiworklab-backup-*.age).
    file: PathBuf,
    /// The age identity file (AGE-SECRET-KEY-1...).
    #[arg(long)]
    identity: PathBuf,
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
    /// The age identity file (AGE-SECRET-KEY-1...).
    #[arg(long)]
    identity: PathBuf,
    /// Directory of archives; the newest whole-installation archive is used.
    /// Default: backup.dir.
    #[arg(long)]
    from: Option<PathBuf>,
}

pub fn restore(path: Option<&Path>, args: RestoreArgs) -> Result<ExitCode, Failure> {
    let settings = settings(path)?;
    let ids = archive::read_identities(&args.identity)?;
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
        &ids,
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
    let ids = archive::read_identities(&args.identity)?;
    let dir = args.from.unwrap_or_else(|| settings.backup.dir.clone());
    let latest = backup::latest(&dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format!("cannot start the async runtime: {e}"), None))?;
    let report = runtime.block_on(drill::run(&latest.path, ids, &std::env::temp_dir()));
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
