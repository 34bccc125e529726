//! `aiworklab concept add|edit|list|retire|restore`: an org's own concepts
//! from the command line, for scripted set-up. Every change is checked like
//! the admin API's and audited with the operator as actor.

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use super::{Failure, settings};
use crate::catalogue::custom::{self, ConceptChanges, ConceptError};
use crate::clock::{Clock, SystemClock};
use crate::skill::catalogue::{Catalogue, Concept, Matchers};
use crate::store::{OpenMode, Store};
use crate::users::AdminCtx;

#[derive(Debug, Subcommand)]
pub enum ConceptCmd {
    /// Add a concept of the org's own (its slug starts with `x-`).
    Add {
        #[arg(long)]
        org: String,
        /// The id devices send, e.g. x-billing-ledger; it never changes.
        #[arg(long)]
        slug: String,
        #[arg(long)]
        title: String,
        /// A shipped domain (e.g. databases) or the org's own (x-...).
        #[arg(long)]
        domain: String,
        /// One sentence on what it is.
        #[arg(long)]
        summary: String,
        #[command(flatten)]
        edges: Edges,
    },
    /// Change a concept's fields; list options given replace the whole list.
    Edit {
        #[arg(long)]
        org: String,
        slug: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        domain: Option<String>,
        #[arg(long)]
        summary: Option<String>,
        #[command(flatten)]
        edges: Edges,
        /// Empty this list (repeatable).
        #[arg(long, value_enum)]
        clear: Vec<ListField>,
    },
    /// List the org's concepts, retired ones included.
    List {
        #[arg(long)]
        org: String,
    },
    /// Stop accepting new facts about a concept; its data is kept and still counts.
    Retire {
        #[arg(long)]
        org: String,
        slug: String,
    },
    /// Accept facts about a retired concept again.
    Restore {
        #[arg(long)]
        org: String,
        slug: String,
    },
}

/// The list fields, each given by repeating its option.
#[derive(Debug, Clone, Default, Args)]
pub struct Edges {
    /// A prerequisite (shipped or the org's own); repeat for more.
    #[arg(long = "prerequisite", value_name = "SLUG")]
    prerequisites: Vec<String>,
    /// A related concept; repeat for more.
    #[arg(long = "related", value_name = "SLUG")]
    related: Vec<String>,
    /// A file extension the kernel spots it by, e.g. .proto; repeat for more.
    #[arg(long = "extension", value_name = "EXT")]
    extensions: Vec<String>,
    /// An import or package name; repeat for more.
    #[arg(long = "import", value_name = "NAME")]
    imports: Vec<String>,
    /// A keyword (SQL, shell, error text); repeat for more.
    #[arg(long = "keyword", value_name = "WORD")]
    keywords: Vec<String>,
    /// An API name; repeat for more.
    #[arg(long = "api", value_name = "NAME")]
    apis: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListField {
    Prerequisites,
    Related,
    Extensions,
    Imports,
    Keywords,
    Apis,
}

impl From<ConceptError> for Failure {
    fn from(e: ConceptError) -> Self {
        match e {
            ConceptError::Store(s) => s.into(),
            ConceptError::Invalid { field, message } => {
                Self::new(format!("the concept is invalid: {field}: {message}"), None)
            }
            ConceptError::NotFound(_) => Self::new(
                e.to_string(),
                Some("list them with `aiworklab concept list --org <org>`".into()),
            ),
            ConceptError::Conflict(m) => Self::new(m, None),
        }
    }
}

/// `given` when the option was given, an empty list when cleared, else
/// unchanged (`None`).
fn replace(given: Vec<String>, cleared: bool) -> Option<Vec<String>> {
    if cleared || !given.is_empty() {
        Some(given)
    } else {
        None
    }
}

fn changes(
    title: Option<String>,
    domain: Option<String>,
    summary: Option<String>,
    e: Edges,
    clear: &[ListField],
    current: &Matchers,
) -> ConceptChanges {
    let cleared = |f| clear.contains(&f);
    let ext = replace(e.extensions, cleared(ListField::Extensions));
    let imp = replace(e.imports, cleared(ListField::Imports));
    let kw = replace(e.keywords, cleared(ListField::Keywords));
    let api = replace(e.apis, cleared(ListField::Apis));
    let matchers =
        (ext.is_some() || imp.is_some() || kw.is_some() || api.is_some()).then(|| Matchers {
            extensions: ext.unwrap_or_else(|| current.extensions.clone()),
            imports: imp.unwrap_or_else(|| current.imports.clone()),
            keywords: kw.unwrap_or_else(|| current.keywords.clone()),
            apis: api.unwrap_or_else(|| current.apis.clone()),
        });
    ConceptChanges {
        title,
        domain,
        summary,
        prerequisites: replace(e.prerequisites, cleared(ListField::Prerequisites)),
        related: replace(e.related, cleared(ListField::Related)),
        matchers,
    }
}

pub fn run(path: Option<&Path>, cmd: ConceptCmd) -> Result<ExitCode, Failure> {
    let settings = settings(path)?;
    let store = Store::open(&settings, OpenMode::Existing, &SystemClock)?;
    let catalogue = Catalogue::builtin().map_err(|e| Failure::new(e, None))?;
    let now = SystemClock.now();
    let op = AdminCtx::operator();
    match cmd {
        ConceptCmd::Add {
            org,
            slug,
            title,
            domain,
            summary,
            edges,
        } => {
            let concept = Concept {
                slug,
                title,
                domain,
                summary,
                prerequisites: edges.prerequisites,
                related: edges.related,
                matchers: Matchers {
                    extensions: edges.extensions,
                    imports: edges.imports,
                    keywords: edges.keywords,
                    apis: edges.apis,
                },
            };
            let c = custom::add(store.org(&org)?, &catalogue, &op, concept, now)?;
            println!("added {} to {org}", c.concept.slug);
        }
        ConceptCmd::Edit {
            org,
            slug,
            title,
            domain,
            summary,
            edges,
            clear,
        } => {
            let db = store.org(&org)?;
            let current = custom::get(db, &slug)?;
            let ch = changes(
                title,
                domain,
                summary,
                edges,
                &clear,
                &current.concept.matchers,
            );
            let c = custom::update(db, &catalogue, &op, &slug, ch, now)?;
            if c.updated_at == now {
                println!("updated {slug}");
            } else {
                println!("{slug} already had these values; nothing changed");
            }
        }
        ConceptCmd::List { org } => {
            println!(
                "{:<32}  {:<20}  {:<8}  {:<40}  PREREQUISITES",
                "SLUG", "DOMAIN", "STATE", "TITLE"
            );
            for c in custom::list(store.org(&org)?)? {
                println!(
                    "{:<32}  {:<20}  {:<8}  {:<40}  {}",
                    c.concept.slug,
                    c.concept.domain,
                    if c.retired_at.is_some() {
                        "retired"
                    } else {
                        "active"
                    },
                    c.concept.title.chars().take(40).collect::<String>(),
                    c.concept.prerequisites.join(",")
                );
            }
        }
        ConceptCmd::Retire { org, slug } => {
            custom::retire(store.org(&org)?, &op, &slug, now)?;
            println!("retired {slug}: its data is kept; facts dated from now on are refused");
        }
        ConceptCmd::Restore { org, slug } => {
            custom::restore(store.org(&org)?, &op, &slug, now)?;
            println!("restored {slug}: it accepts new facts again");
        }
    }
    Ok(ExitCode::SUCCESS)
}
