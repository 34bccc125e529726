//! Concepts an org adds to the shipped catalogue: its own libraries,
//! services and practices (`x-billing-ledger`, `x-deploy-train`). Admins add,
//! edit, retire and restore them through the admin API or the operator CLI;
//! every change is checked whole (fields, edges, an acyclic prerequisite
//! graph) and audited in the same transaction.
//!
//! Slugs start with [`CUSTOM_PREFIX`]: the shipped catalogue never uses it,
//! so no release can collide with an org's concept, and the slug pattern of
//! the sync schema stays as strict as before. A concept is never deleted,
//! since engineers' deltas refer to it: it is *retired*, keeping its
//! deltas, states and aggregates, while facts dated after the retirement
//! are refused. `docs/skill-graph.md` explains the rules for admins.
//!
//! This file is the write path; the checks are in `check.rs`, the lookups
//! that sync and the pages use (`KnownIds`, `OrgConcepts`) in `known.rs`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::check::{check, check_new_slug, difference, excerpt, normalise};
use crate::clock::{from_millis, to_millis};
use crate::skill::catalogue::{Catalogue, Concept, Matchers};
use crate::store::concepts::{self as sql, ConceptRow};
use crate::store::{OrgDb, StoreError};
use crate::users::AdminCtx;

/// Most custom concepts (retired included) one org may hold.
pub const MAX_CUSTOM: usize = 2000;
/// Most prerequisite (or related) edges of one concept.
pub const MAX_EDGES: usize = 16;
/// Most entries in one matcher list.
pub const MAX_MATCHERS: usize = 32;
/// Longest matcher entry, in characters.
pub const MAX_MATCHER_LEN: usize = 64;

/// A concept the org added, with its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomConcept {
    #[serde(flatten)]
    pub concept: Concept,
    pub created_at: DateTime<Utc>,
    /// The audit actor who added it (`user:<id>` or `operator:<login>`).
    pub created_by: String,
    pub updated_at: DateTime<Utc>,
    /// When it stopped accepting new facts; `None` while active.
    pub retired_at: Option<DateTime<Utc>>,
}

impl CustomConcept {
    fn from_row(r: ConceptRow) -> Self {
        Self {
            concept: Concept {
                prerequisites: serde_json::from_str(&r.prerequisites).unwrap_or_default(),
                related: serde_json::from_str(&r.related).unwrap_or_default(),
                matchers: serde_json::from_str(&r.matchers).unwrap_or_default(),
                slug: r.slug,
                title: r.title,
                domain: r.domain,
                summary: r.summary,
            },
            created_at: from_millis(r.created_at),
            created_by: r.created_by,
            updated_at: from_millis(r.updated_at),
            retired_at: r.retired_at.map(from_millis),
        }
    }

    fn to_row(&self) -> ConceptRow {
        let c = &self.concept;
        ConceptRow {
            slug: c.slug.clone(),
            title: c.title.clone(),
            domain: c.domain.clone(),
            summary: c.summary.clone(),
            prerequisites: json!(c.prerequisites).to_string(),
            related: json!(c.related).to_string(),
            matchers: json!(c.matchers).to_string(),
            created_at: to_millis(self.created_at),
            created_by: self.created_by.clone(),
            updated_at: to_millis(self.updated_at),
            retired_at: self.retired_at.map(to_millis),
        }
    }
}

/// The fields an edit may change; absent ones stay as they are. Lists are
/// replaced whole.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConceptChanges {
    pub title: Option<String>,
    pub domain: Option<String>,
    pub summary: Option<String>,
    pub prerequisites: Option<Vec<String>>,
    pub related: Option<Vec<String>>,
    pub matchers: Option<Matchers>,
}

/// Why a change to custom concepts was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ConceptError {
    /// A field breaks the rules; the message says how to fix it.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("no custom concept `{0}` in this org")]
    NotFound(String),
    /// The change conflicts with the concept's current state.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for ConceptError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Every custom concept of the org, retired ones included, by slug.
///
/// # Errors
/// Store errors.
pub fn list(org: &OrgDb) -> Result<Vec<CustomConcept>, StoreError> {
    org.db.read(|c| load_all(c).map_err(StoreError::from))
}

fn load_all(conn: &Connection) -> rusqlite::Result<Vec<CustomConcept>> {
    Ok(sql::all(conn)?
        .into_iter()
        .map(CustomConcept::from_row)
        .collect())
}

/// The custom concept `slug`.
///
/// # Errors
/// [`ConceptError::NotFound`].
pub fn get(org: &OrgDb, slug: &str) -> Result<CustomConcept, ConceptError> {
    org.db.read(|c| {
        sql::get(c, slug)?
            .map(CustomConcept::from_row)
            .ok_or_else(|| ConceptError::NotFound(excerpt(slug)))
    })
}

/// Adds `concept` to the org. Audited as `concept.create`.
///
/// # Errors
/// [`ConceptError::Invalid`] naming the first bad field;
/// [`ConceptError::Conflict`] for a slug in use or a full org.
pub fn add(
    org: &OrgDb,
    catalogue: &Catalogue,
    admin: &AdminCtx,
    mut concept: Concept,
    now: DateTime<Utc>,
) -> Result<CustomConcept, ConceptError> {
    check_new_slug(catalogue, &concept.slug)?;
    normalise(&mut concept);
    org.db.write(|tx| {
        if let Some(old) = sql::get(tx, &concept.slug)? {
            let state = match old.retired_at {
                Some(_) => "exists (retired); restore it instead",
                None => "exists; edit it instead",
            };
            return Err(ConceptError::Conflict(format!(
                "`{}` already {state}",
                concept.slug
            )));
        }
        if sql::count(tx)? >= MAX_CUSTOM {
            return Err(ConceptError::Conflict(format!(
                "this org already has {MAX_CUSTOM} custom concepts, the most it may hold"
            )));
        }
        let others = by_slug(load_all(tx)?);
        check(catalogue, &others, &concept, None)?;
        let created = CustomConcept {
            concept,
            created_at: now,
            created_by: admin.audit().actor.clone(),
            updated_at: now,
            retired_at: None,
        };
        sql::insert(tx, &created.to_row())?;
        admin.audit().record(
            tx,
            "concept.create",
            Some(&created.concept.slug),
            &json!({ "concept": created.concept }),
            now,
        )?;
        Ok(created)
    })
}

/// Applies `changes` to the custom concept `slug`. Audited as
/// `concept.update` with the fields that changed, before and after.
///
/// # Errors
/// As [`add`], and [`ConceptError::NotFound`].
pub fn update(
    org: &OrgDb,
    catalogue: &Catalogue,
    admin: &AdminCtx,
    slug: &str,
    changes: ConceptChanges,
    now: DateTime<Utc>,
) -> Result<CustomConcept, ConceptError> {
    org.db.write(|tx| {
        let mut all = by_slug(load_all(tx)?);
        let mut current = all
            .remove(slug)
            .ok_or_else(|| ConceptError::NotFound(excerpt(slug)))?;
        let before = current.concept.clone();
        let c = &mut current.concept;
        if let Some(v) = changes.title {
            c.title = v;
        }
        if let Some(v) = changes.domain {
            c.domain = v;
        }
        if let Some(v) = changes.summary {
            c.summary = v;
        }
        if let Some(v) = changes.prerequisites {
            c.prerequisites = v;
        }
        if let Some(v) = changes.related {
            c.related = v;
        }
        if let Some(v) = changes.matchers {
            c.matchers = v;
        }
        normalise(c);
        check(catalogue, &all, c, Some(&before))?;
        let diff = difference(&before, c);
        if diff.is_empty() {
            return Ok(current);
        }
        current.updated_at = now;
        sql::update(tx, &current.to_row())?;
        admin.audit().record(
            tx,
            "concept.update",
            Some(slug),
            &json!({ "changed": diff }),
            now,
        )?;
        Ok(current)
    })
}

/// Retires the custom concept `slug`: its deltas, states and aggregates are
/// kept, and facts dated from `now` on are refused. Audited as
/// `concept.retire` with how many engineers had met it.
///
/// # Errors
/// [`ConceptError::NotFound`]; [`ConceptError::Conflict`] when it is
/// retired already.
pub fn retire(
    org: &OrgDb,
    admin: &AdminCtx,
    slug: &str,
    now: DateTime<Utc>,
) -> Result<CustomConcept, ConceptError> {
    set_retired(org, admin, slug, Some(now), now)
}

/// Makes a retired concept accept new facts again. Audited as
/// `concept.restore`.
///
/// # Errors
/// [`ConceptError::NotFound`]; [`ConceptError::Conflict`] when it is
/// active.
pub fn restore(
    org: &OrgDb,
    admin: &AdminCtx,
    slug: &str,
    now: DateTime<Utc>,
) -> Result<CustomConcept, ConceptError> {
    set_retired(org, admin, slug, None, now)
}

fn set_retired(
    org: &OrgDb,
    admin: &AdminCtx,
    slug: &str,
    retired_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<CustomConcept, ConceptError> {
    org.db.write(|tx| {
        let mut c = sql::get(tx, slug)?
            .map(CustomConcept::from_row)
            .ok_or_else(|| ConceptError::NotFound(excerpt(slug)))?;
        match (c.retired_at, retired_at) {
            (Some(at), Some(_)) => {
                return Err(ConceptError::Conflict(format!(
                    "`{slug}` is retired already (since {})",
                    at.to_rfc3339()
                )));
            }
            (None, None) => {
                return Err(ConceptError::Conflict(format!(
                    "`{slug}` is not retired, so there is nothing to restore"
                )));
            }
            _ => {}
        }
        c.retired_at = retired_at;
        c.updated_at = now;
        sql::update(tx, &c.to_row())?;
        let engineers = sql::engineers(tx, slug)?;
        let action = if retired_at.is_some() {
            "concept.retire"
        } else {
            "concept.restore"
        };
        admin.audit().record(
            tx,
            action,
            Some(slug),
            &json!({ "engineers_with_data": engineers }),
            now,
        )?;
        Ok(c)
    })
}

pub(super) fn by_slug(all: Vec<CustomConcept>) -> BTreeMap<String, CustomConcept> {
    all.into_iter()
        .map(|c| (c.concept.slug.clone(), c))
        .collect()
}
