//! The lookups of the concepts one org works with: the ids it accepts in
//! deltas ([`KnownIds`], read on every push) and the shipped catalogue with
//! its own concepts ([`OrgConcepts`], for listings and pages).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde_json::json;

use super::custom::{CustomConcept, by_slug, list};
use crate::clock::from_millis;
use crate::skill::catalogue::{Catalogue, Concept};
use crate::store::concepts as sql;
use crate::store::{OrgDb, StoreError};

/// How a concept id stands for a fact about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Shipped, or the org's own and active.
    Known,
    /// The org's own, retired at this instant.
    Retired(DateTime<Utc>),
    /// Neither shipped nor the org's.
    Unknown,
}

/// The concept ids an org accepts in deltas: the shipped catalogue and its
/// own concepts with their retirement times. Loaded on every push (one
/// narrow query), so a change by an admin or the operator CLI applies to
/// the next push.
#[derive(Debug, Clone)]
pub struct KnownIds<'a> {
    shipped: &'a Catalogue,
    custom: HashMap<String, Option<DateTime<Utc>>>,
}

impl<'a> KnownIds<'a> {
    /// The shipped catalogue alone.
    pub fn shipped(catalogue: &'a Catalogue) -> Self {
        Self {
            shipped: catalogue,
            custom: HashMap::new(),
        }
    }

    /// Adds one of the org's own concepts, retired since `retired` when
    /// given: the set a database would give, built without one (fuzzing,
    /// tests).
    #[must_use]
    pub fn with_custom(mut self, slug: &str, retired: Option<DateTime<Utc>>) -> Self {
        self.custom.insert(slug.to_string(), retired);
        self
    }

    /// The shipped catalogue and `org`'s own concepts, read on `conn`.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn read(catalogue: &'a Catalogue, conn: &Connection) -> rusqlite::Result<Self> {
        Ok(Self {
            shipped: catalogue,
            custom: sql::standings(conn)?
                .into_iter()
                .map(|(slug, at)| (slug, at.map(from_millis)))
                .collect(),
        })
    }

    /// # Errors
    /// Store errors.
    pub fn load(catalogue: &'a Catalogue, org: &OrgDb) -> Result<Self, StoreError> {
        org.db
            .read(|c| Self::read(catalogue, c).map_err(StoreError::from))
    }

    pub fn standing(&self, slug: &str) -> Standing {
        if self.shipped.contains(slug) {
            return Standing::Known;
        }
        match self.custom.get(slug) {
            Some(None) => Standing::Known,
            Some(Some(at)) => Standing::Retired(*at),
            None => Standing::Unknown,
        }
    }
}

/// The concepts one org works with: the shipped catalogue and its own.
#[derive(Debug, Clone)]
pub struct OrgConcepts<'a> {
    pub shipped: &'a Catalogue,
    pub custom: BTreeMap<String, CustomConcept>,
}

impl<'a> OrgConcepts<'a> {
    /// # Errors
    /// Store errors.
    pub fn load(catalogue: &'a Catalogue, org: &OrgDb) -> Result<Self, StoreError> {
        Ok(Self {
            shipped: catalogue,
            custom: by_slug(list(org)?),
        })
    }

    /// The concept `slug`, shipped or the org's.
    pub fn get(&self, slug: &str) -> Option<&Concept> {
        self.shipped
            .get(slug)
            .or_else(|| self.custom.get(slug).map(|c| &c.concept))
    }

    /// When the org's concept `slug` was retired.
    pub fn retired_at(&self, slug: &str) -> Option<DateTime<Utc>> {
        self.custom.get(slug).and_then(|c| c.retired_at)
    }

    /// The display title of a domain: the shipped title, or an org
    /// domain's own slug.
    pub fn domain_title(&self, slug: &str) -> String {
        self.shipped
            .domains
            .iter()
            .find(|d| d.slug == slug)
            .map_or_else(|| slug.to_string(), |d| d.title.clone())
    }

    /// Every concept as `GET /api/v1/concepts` lists it, and the domains
    /// in use (shipped first, then the org's own).
    pub fn listing(&self) -> serde_json::Value {
        let entry = |c: &Concept, custom: bool, retired: Option<DateTime<Utc>>| {
            json!({
                "slug": c.slug, "title": c.title, "domain": c.domain, "summary": c.summary,
                "prerequisites": c.prerequisites, "related": c.related, "matchers": c.matchers,
                "custom": custom, "retired": retired.is_some(), "retired_at": retired,
            })
        };
        let mut concepts: Vec<_> = self
            .shipped
            .concepts()
            .map(|c| entry(c, false, None))
            .collect();
        concepts.extend(
            self.custom
                .values()
                .map(|c| entry(&c.concept, true, c.retired_at)),
        );
        let mut domains: Vec<_> = self
            .shipped
            .domains
            .iter()
            .map(|d| json!({ "slug": d.slug, "title": d.title, "custom": false }))
            .collect();
        let own: BTreeSet<&str> = self
            .custom
            .values()
            .map(|c| c.concept.domain.as_str())
            .filter(|d| !self.shipped.has_domain(d))
            .collect();
        domains.extend(
            own.into_iter()
                .map(|d| json!({ "slug": d, "title": d, "custom": true })),
        );
        json!({ "domains": domains, "concepts": concepts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standing_follows_retirement() {
        let cat = Catalogue::builtin().expect("valid");
        let ids = KnownIds::shipped(&cat)
            .with_custom("x-live", None)
            .with_custom("x-gone", Some(DateTime::UNIX_EPOCH));
        assert_eq!(ids.standing("rust-lifetimes"), Standing::Known);
        assert_eq!(ids.standing("x-live"), Standing::Known);
        assert_eq!(
            ids.standing("x-gone"),
            Standing::Retired(DateTime::UNIX_EPOCH)
        );
        assert_eq!(ids.standing("x-other"), Standing::Unknown);
    }
}
