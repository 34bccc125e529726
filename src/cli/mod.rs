//! The command line (clap). One file per subcommand; each returns an exit
//! code or a [`Failure`] that says what went wrong and how to fix it.

mod agent;
mod backup;
mod checks;
mod concept;
mod config;
mod healthcheck;
mod org;
mod restore;
mod serve;
mod token;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{CONFIG_PATH_ENV, ConfigErrors, Settings};

/// What `aiworklab --version` prints after the name: the version, the git
/// commit and the build date (set by build.rs; see docs/operations.md).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("AIWORKLAB_GIT_COMMIT"),
    ", built ",
    env!("AIWORKLAB_BUILD_DATE"),
    ")"
);

#[derive(Debug, Parser)]
#[command(name = "aiworklab", version = VERSION, about = "aiworklab on-prem appliance")]
pub struct Cli {
    /// Configuration file (TOML). Default: /etc/aiworklab/aiworklab.toml when it exists.
    #[arg(long, global = true, env = CONFIG_PATH_ENV, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the org server (skill-graph store, APIs, dashboard).
    Serve,
    /// Show or check the configuration.
    #[command(subcommand)]
    Config(config::ConfigCmd),
    /// Organisations.
    #[command(subcommand)]
    Org(org::OrgCmd),
    /// API tokens for SCIM provisioning and MCP clients.
    #[command(subcommand)]
    Token(token::TokenCmd),
    /// Probe /healthz of the local server; exit 0 when healthy (for container health checks).
    Healthcheck,
    /// Users of an org: add, list, disable, enable, grant-admin, revoke-admin.
    #[command(subcommand)]
    User(user::UserCmd),
    /// Break-glass sign-in links.
    #[command(subcommand)]
    Admin(user::AdminCmd),
    /// The org's own concepts: add, edit, list, retire, restore.
    #[command(subcommand)]
    Concept(concept::ConceptCmd),
    /// The comprehension checks the org's model wrote: list, retire, restore.
    #[command(subcommand)]
    Checks(checks::ChecksCmd),
    /// Devices: pairing codes for scripted roll-outs.
    #[command(subcommand)]
    Device(user::DeviceCmd),
    /// Encrypted backups: create, list, verify, prune, keygen.
    #[command(subcommand)]
    Backup(backup::BackupCmd),
    /// Restore an archive into a new data directory (or, with --force, a stopped instance).
    Restore(restore::RestoreArgs),
    /// Restore the latest archive into a throwaway instance, smoke-test it, tear it down.
    Drill(restore::DrillArgs),
    /// The teaching kernel on an engineer's machine: pair, sync, status, outbox, doctor.
    #[command(subcommand)]
    Agent(agent::AgentCmd),
}

/// A failed command: the message, and the fix when one is known.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub fix: Option<String>,
    pub code: u8,
}

impl Failure {
    pub fn new(message: impl Into<String>, fix: Option<String>) -> Self {
        Self {
            message: message.into(),
            fix,
            code: 1,
        }
    }
}

impl From<ConfigErrors> for Failure {
    fn from(e: ConfigErrors) -> Self {
        Self {
            message: e.to_string().trim_end().to_string(),
            fix: None,
            code: 2,
        }
    }
}

impl From<crate::store::StoreError> for Failure {
    fn from(e: crate::store::StoreError) -> Self {
        Self::new(e.to_string(), Some(e.fix()))
    }
}

impl From<crate::tokens::TokenError> for Failure {
    fn from(e: crate::tokens::TokenError) -> Self {
        match e {
            crate::tokens::TokenError::Store(s) => s.into(),
            other => Self::new(other.to_string(), None),
        }
    }
}

impl From<crate::http::server::ServeError> for Failure {
    fn from(e: crate::http::server::ServeError) -> Self {
        Self::new(e.to_string(), None)
    }
}

/// Loads and validates the configuration named on the command line.
fn settings(cli_config: Option<&std::path::Path>) -> Result<Settings, Failure> {
    Ok(crate::config::load(cli_config)?.0)
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = cli.config.as_deref();
    let result = match cli.command {
        Command::Serve => serve::run(path),
        Command::Config(cmd) => config::run(path, cmd),
        Command::Org(cmd) => org::run(path, cmd),
        Command::Token(cmd) => token::run(path, cmd),
        Command::Healthcheck => healthcheck::run(path),
        Command::User(cmd) => user::run(path, cmd),
        Command::Admin(cmd) => user::run_admin(path, cmd),
        Command::Device(cmd) => user::run_device(path, cmd),
        Command::Concept(cmd) => concept::run(path, cmd),
        Command::Checks(cmd) => checks::run(path, cmd),
        Command::Backup(cmd) => backup::run(path, cmd),
        Command::Restore(args) => restore::restore(path, args),
        Command::Drill(args) => restore::drill(path, args),
        Command::Agent(cmd) => agent::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(f) => {
            eprintln!("error: {}", f.message);
            if let Some(fix) = f.fix {
                eprintln!("  fix: {fix}");
            }
            ExitCode::from(f.code)
        }
    }
}
