//! `aiworklab checks list|retire|restore`: the comprehension checks an
//! org's model wrote (`docs/checks.md`), as the admin API shows them.
//! Retiring and restoring are audited with the operator as actor.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use super::{Failure, settings};
use crate::clock::{Clock, SystemClock};
use crate::question::ServiceError;
use crate::question::service;
use crate::store::{OpenMode, Store};
use crate::users::AdminCtx;

#[derive(Debug, Subcommand)]
pub enum ChecksCmd {
    /// List the checks the org's model wrote, retired ones included, newest first.
    List {
        #[arg(long)]
        org: String,
        /// Only the checks about this concept.
        #[arg(long)]
        concept: Option<String>,
    },
    /// Stop serving a generated check (it is kept: results may name it).
    Retire {
        #[arg(long)]
        org: String,
        /// The check's id (gen-...), as `checks list` shows it.
        id: String,
    },
    /// Serve a retired generated check again.
    Restore {
        #[arg(long)]
        org: String,
        id: String,
    },
}

impl From<ServiceError> for Failure {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Store(s) => s.into(),
            ServiceError::UnknownCheck(_) => Self::new(
                e.to_string(),
                Some("list them with `aiworklab checks list --org <org>`".into()),
            ),
            other => Self::new(other.to_string(), None),
        }
    }
}

pub fn run(path: Option<&Path>, cmd: ChecksCmd) -> Result<ExitCode, Failure> {
    let settings = settings(path)?;
    let store = Store::open(&settings, OpenMode::Existing, &SystemClock)?;
    let now = SystemClock.now();
    let op = AdminCtx::operator();
    match cmd {
        ChecksCmd::List { org, concept } => {
            println!(
                "{:<36}  {:<32}  {:<8}  {:<24}  {:<20}  PROMPT",
                "ID", "CONCEPT", "STATE", "MODEL", "CREATED"
            );
            for g in service::list_generated(store.org(&org)?, concept.as_deref())? {
                println!(
                    "{:<36}  {:<32}  {:<8}  {:<24}  {:<20}  {}",
                    g.id,
                    g.concept,
                    if g.retired_at.is_some() {
                        "retired"
                    } else {
                        "active"
                    },
                    g.model.chars().take(24).collect::<String>(),
                    g.created_at.format("%Y-%m-%d %H:%M"),
                    g.prompt
                        .chars()
                        .map(|c| if c.is_control() { ' ' } else { c })
                        .take(60)
                        .collect::<String>()
                );
            }
        }
        ChecksCmd::Retire { org, id } => {
            service::retire(store.org(&org)?, &op, &id, now)?;
            println!("retired {id}: it is no longer served");
        }
        ChecksCmd::Restore { org, id } => {
            service::restore(store.org(&org)?, &op, &id, now)?;
            println!("restored {id}: it is served again");
        }
    }
    Ok(ExitCode::SUCCESS)
}
