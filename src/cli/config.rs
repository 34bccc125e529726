//! `aiworklab config show|check`.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use super::Failure;
use crate::config::{self, DEFAULT_CONFIG_PATH};

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Print the effective configuration (defaults, file, environment) with secrets redacted.
    Show,
    /// Validate the configuration, TLS files and key permissions without starting.
    Check,
}

pub fn run(path: Option<&Path>, cmd: ConfigCmd) -> Result<ExitCode, Failure> {
    match cmd {
        ConfigCmd::Show => show(path),
        ConfigCmd::Check => check(path),
    }
}

fn source_line(file: Option<&Path>) -> String {
    match file {
        Some(f) => format!(
            "# from built-in defaults, {}, and AIWORKLAB_* variables",
            f.display()
        ),
        None => format!(
            "# from built-in defaults and AIWORKLAB_* variables (no file: {DEFAULT_CONFIG_PATH} does not exist)"
        ),
    }
}

fn show(path: Option<&Path>) -> Result<ExitCode, Failure> {
    let loaded = config::load_raw(path)?;
    println!("{}", source_line(loaded.file.as_deref()));
    print!("{}", config::render_redacted(&loaded.raw));
    // Show first, then say what is wrong, so both are visible.
    config::load(path)?;
    Ok(ExitCode::SUCCESS)
}

fn check(path: Option<&Path>) -> Result<ExitCode, Failure> {
    let (settings, loaded) = config::load(path)?;
    if let Some(files) = &settings.server.tls {
        crate::http::tls::server_config(files, settings.server.tls_min_version)
            .map_err(|e| Failure::new(e.to_string(), None))?;
    }
    let key = &settings.keys.master_key_file;
    if key.exists() {
        crate::crypto::MasterKey::load(key)
            .map_err(|e| Failure::new(e.to_string(), Some(e.fix())))?;
    }
    let dir = &settings.storage.data_dir;
    if dir.exists() {
        crate::fsperm::check_private_dir(dir)
            .map_err(|p| Failure::new(p.to_string(), Some(p.fix())))?;
    }
    println!(
        "configuration is valid ({}); {} org(s): {}",
        loaded
            .file
            .as_deref()
            .map_or("no file".to_string(), |f| f.display().to_string()),
        settings.orgs.len(),
        settings
            .orgs
            .iter()
            .map(|o| o.slug.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    print!("{}", checklist(&settings));
    Ok(ExitCode::SUCCESS)
}

/// The setup checklist of every org, as the admin page shows it; with the
/// installation's data when it can be opened, else from the configuration
/// alone (before the first start, or run as another user).
fn checklist(settings: &crate::config::Settings) -> String {
    use crate::clock::{Clock, SystemClock};
    use crate::setup::checklist;
    let now = SystemClock.now();
    let store = crate::store::Store::open(settings, crate::store::OpenMode::Existing, &SystemClock);
    let mut out = String::new();
    if let Err(e) = &store {
        out.push_str(&format!(
            "(the installation's data could not be read: {e}; items that need it say so)\n"
        ));
    }
    for org in &settings.orgs {
        let facts = store
            .as_ref()
            .ok()
            .and_then(|s| s.org(org.slug.as_str()).ok())
            .and_then(|db| checklist::facts(settings, db, now).ok());
        let items = checklist::items(settings, org, facts.as_ref());
        out.push_str(&checklist::render_text(org, &items));
    }
    out
}
