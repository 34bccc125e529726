//! The org's catalogue copy: what `GET /api/v1/concepts` listed at the last
//! sync (the shipped concepts and the org's own), kept as received. The
//! kernel tags with its live concepts; retired ones are left out, and
//! edges to them dropped.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::super::error::AgentError;
use super::LocalStore;
use crate::skill::catalogue::{Catalogue, Concept, Domain, Matchers};

/// The meta key of the copy.
pub(super) const META_KEY: &str = "org_catalogue";

#[derive(Deserialize)]
struct Listing {
    domains: Vec<ListedDomain>,
    concepts: Vec<Listed>,
}

#[derive(Deserialize)]
struct ListedDomain {
    slug: String,
    title: String,
}

#[derive(Deserialize)]
struct Listed {
    slug: String,
    title: String,
    domain: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    prerequisites: Vec<String>,
    #[serde(default)]
    related: Vec<String>,
    #[serde(default)]
    matchers: Matchers,
    #[serde(default)]
    retired: bool,
}

/// The catalogue a listing describes.
///
/// # Errors
/// What is wrong with it.
pub(crate) fn from_listing(json: &str) -> Result<Catalogue, String> {
    let listing: Listing = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let live: BTreeSet<String> = listing
        .concepts
        .iter()
        .filter(|c| !c.retired)
        .map(|c| c.slug.clone())
        .collect();
    let keep = |v: Vec<String>| v.into_iter().filter(|s| live.contains(s)).collect();
    let concepts = listing
        .concepts
        .into_iter()
        .filter(|c| !c.retired)
        .map(|c| Concept {
            slug: c.slug,
            title: c.title,
            domain: c.domain,
            summary: c.summary,
            prerequisites: keep(c.prerequisites),
            related: keep(c.related),
            matchers: c.matchers,
        })
        .collect();
    let domains = listing
        .domains
        .into_iter()
        .map(|d| Domain {
            slug: d.slug,
            title: d.title,
        })
        .collect();
    Catalogue::from_parts(domains, concepts)
}

fn shipped() -> Result<Catalogue, AgentError> {
    static SHIPPED: std::sync::OnceLock<Result<Catalogue, String>> = std::sync::OnceLock::new();
    SHIPPED
        .get_or_init(Catalogue::builtin)
        .clone()
        .map_err(|e| AgentError::Invalid(format!("the shipped catalogue is invalid: {e}")))
}

pub(super) fn current(store: &LocalStore) -> Result<Catalogue, AgentError> {
    match store.meta(META_KEY)? {
        Some(json) => match from_listing(&json) {
            Ok(c) => Ok(c),
            Err(_) => shipped(),
        },
        None => shipped(),
    }
}

impl LocalStore {
    /// Keeps `listing` (the body of `GET /api/v1/concepts`) as the org's
    /// catalogue copy, once it is known to make a valid catalogue.
    ///
    /// # Errors
    /// [`AgentError::Server`] when the listing is not a valid catalogue
    /// (the copy held stays); store errors.
    pub fn set_org_catalogue(&mut self, listing: &str) -> Result<usize, AgentError> {
        let cat = from_listing(listing).map_err(|e| {
            AgentError::Server(format!(
                "the org's concept listing is not a valid catalogue ({e}); the copy held is kept"
            ))
        })?;
        self.set_meta(&[(META_KEY, Some(listing))])?;
        Ok(cat.len())
    }
}
