//! `aiworklab org list`.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use super::{Failure, settings};
use crate::clock::SystemClock;
use crate::store::{OpenMode, Store};

#[derive(Debug, Subcommand)]
pub enum OrgCmd {
    /// List organisations: configured ones with their database state, and
    /// any whose data is kept on disk but no longer configured.
    List,
}

pub fn run(path: Option<&Path>, cmd: OrgCmd) -> Result<ExitCode, Failure> {
    let OrgCmd::List = cmd;
    let settings = settings(path)?;
    let store = Store::open(&settings, OpenMode::Existing, &SystemClock)?;
    let status = store.status();
    println!(
        "{:<24} {:<32} {:>12} {:>8}  STATE",
        "SLUG", "NAME", "SIZE", "SCHEMA"
    );
    for org in store.orgs() {
        let s = status
            .iter()
            .find(|s| s.name == format!("org:{}", org.slug));
        let (version, state) = match s {
            Some(s) if s.ok() => (s.version.to_string(), "ok".to_string()),
            Some(s) => (
                s.version.to_string(),
                s.error.clone().unwrap_or_else(|| "not migrated".into()),
            ),
            None => ("-".into(), "unknown".into()),
        };
        println!(
            "{:<24} {:<32} {:>12} {:>8}  {}",
            org.slug,
            truncate(&org.name, 32),
            org.db.size_on_disk(),
            version,
            state
        );
    }
    for r in store.unconfigured_orgs()? {
        println!(
            "{:<24} {:<32} {:>12} {:>8}  not configured (data kept)",
            r.slug,
            truncate(&r.name, 32),
            "-",
            "-"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}
