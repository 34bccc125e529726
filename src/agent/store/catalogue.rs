//! The org's catalogue copy: what `GET /api/v1/concepts` listed at the last
//! sync (the shipped concepts and the org's own), kept as received. The
//! kernel tags with its live concepts; retired ones are left out, and
//! edges to them dropped.

use std::collections::BTreeSet;
use std::sync::Arc;

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
    /// One of the org's own concepts (not shipped with the binary).
    #[serde(default)]
    custom: bool,
    #[serde(default)]
    retired: bool,
}

/// One of the org's own concepts the kernel tags with, and exactly how it
/// spots it: shown by `agent status`, so that no engineer's kernel tags
/// against a keyword the engineer cannot see (docs/privacy.md).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OrgConcept {
    pub slug: String,
    pub title: String,
    pub domain: String,
    pub matchers: Matchers,
}

/// The org's own live concepts in `listing`, by slug.
fn org_concepts_of(json: &str) -> Result<Vec<OrgConcept>, String> {
    let listing: Listing = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut out: Vec<OrgConcept> = listing
        .concepts
        .into_iter()
        .filter(|c| c.custom && !c.retired)
        .map(|c| OrgConcept {
            slug: c.slug,
            title: c.title,
            domain: c.domain,
            matchers: c.matchers,
        })
        .collect();
    out.sort_by(|a, b| a.slug.cmp(&b.slug));
    Ok(out)
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

fn shipped() -> Result<Arc<Catalogue>, AgentError> {
    static SHIPPED: std::sync::OnceLock<Result<Arc<Catalogue>, String>> =
        std::sync::OnceLock::new();
    SHIPPED
        .get_or_init(|| Catalogue::builtin().map(Arc::new))
        .clone()
        .map_err(|e| AgentError::Invalid(format!("the shipped catalogue is invalid: {e}")))
}

/// The catalogue a store holds, kept with the listing it was read from
/// (`None`: the shipped one), so reading it again costs a comparison
/// while the listing is unchanged. Parsing and checking a listing of
/// hundreds of concepts is milliseconds; a hook needs the catalogue
/// twice (to tag, then to check what it records).
pub(super) type Cached = std::cell::RefCell<Option<(Option<String>, Arc<Catalogue>)>>;

pub(super) fn current(store: &LocalStore) -> Result<Arc<Catalogue>, AgentError> {
    let listing = store.meta(META_KEY)?;
    if let Some((held, cat)) = &*store.catalogue.borrow()
        && *held == listing
    {
        return Ok(cat.clone());
    }
    let cat = match listing.as_deref().map(from_listing) {
        Some(Ok(c)) => Arc::new(c),
        Some(Err(_)) | None => shipped()?,
    };
    *store.catalogue.borrow_mut() = Some((listing, cat.clone()));
    Ok(cat)
}

impl LocalStore {
    /// The org's own live concepts in the catalogue copy the kernel tags
    /// with (none before the first sync, or when the copy held does not
    /// parse and the shipped catalogue is used instead).
    ///
    /// # Errors
    /// Store errors.
    pub fn org_concepts(&self) -> Result<Vec<OrgConcept>, AgentError> {
        Ok(match self.meta(META_KEY)? {
            Some(json) if from_listing(&json).is_ok() => org_concepts_of(&json).unwrap_or_default(),
            _ => Vec::new(),
        })
    }

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
