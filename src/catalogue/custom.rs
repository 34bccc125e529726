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

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{CUSTOM_PREFIX, Catalogue, Concept, MAX_SUMMARY, MAX_TITLE, Matchers, valid_slug};
use crate::clock::{from_millis, to_millis};
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

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConceptError {
    ConceptError::Invalid {
        field: field.into(),
        message: message.into(),
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

fn by_slug(all: Vec<CustomConcept>) -> BTreeMap<String, CustomConcept> {
    all.into_iter()
        .map(|c| (c.concept.slug.clone(), c))
        .collect()
}

/// A short, printable excerpt of a client-supplied value for messages.
fn excerpt(s: &str) -> String {
    let cut: String = s.chars().filter(|c| !c.is_control()).take(64).collect();
    if s.chars().count() > 64 {
        format!("{cut}…")
    } else {
        cut
    }
}

/// Trims text fields (edges and matchers are checked as given).
fn normalise(c: &mut Concept) {
    c.title = c.title.trim().to_string();
    c.summary = c.summary.trim().to_string();
    c.domain = c.domain.trim().to_string();
}

/// The fields that differ, as `{field: {"from": .., "to": ..}}`.
fn difference(a: &Concept, b: &Concept) -> serde_json::Map<String, serde_json::Value> {
    let (a, b) = (json!(a), json!(b));
    let mut out = serde_json::Map::new();
    if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
        for (k, before) in a {
            let after = &b[k];
            if before != after {
                out.insert(k.clone(), json!({ "from": before, "to": after }));
            }
        }
    }
    out
}

fn check_new_slug(catalogue: &Catalogue, slug: &str) -> Result<(), ConceptError> {
    let shown = excerpt(slug);
    let Some(rest) = slug.strip_prefix(CUSTOM_PREFIX) else {
        let hint = if catalogue.contains(slug) {
            format!(" (`{shown}` is a shipped concept already)")
        } else {
            String::new()
        };
        return Err(invalid(
            "slug",
            format!(
                "custom concept slugs start with `{CUSTOM_PREFIX}`, e.g. `{CUSTOM_PREFIX}{shown}`, so they never collide with the shipped catalogue{hint}"
            ),
        ));
    };
    if rest.is_empty() || !valid_slug(slug) {
        return Err(invalid(
            "slug",
            format!(
                "`{shown}` is not a concept slug: after `{CUSTOM_PREFIX}` use lower-case letters, digits and hyphens, 64 characters in all, e.g. `{CUSTOM_PREFIX}billing-ledger`"
            ),
        ));
    }
    Ok(())
}

/// Checks a whole concept against the catalogue and the org's other
/// custom concepts (`others`, without this one). `before` is its previous
/// version when editing: edges it had to retired concepts may stay.
fn check(
    catalogue: &Catalogue,
    others: &BTreeMap<String, CustomConcept>,
    c: &Concept,
    before: Option<&Concept>,
) -> Result<(), ConceptError> {
    check_text("title", &c.title, MAX_TITLE)?;
    check_domain(catalogue, &c.domain)?;
    check_text("summary", &c.summary, MAX_SUMMARY)?;
    for (field, edges, old) in [
        (
            "prerequisites",
            &c.prerequisites,
            before.map(|b| &b.prerequisites),
        ),
        ("related", &c.related, before.map(|b| &b.related)),
    ] {
        check_edges(catalogue, others, c, field, edges, old)?;
    }
    if let Some(both) = c.related.iter().find(|&r| c.prerequisites.contains(r)) {
        return Err(invalid(
            "related",
            format!("`{both}` is a prerequisite already; list it only there"),
        ));
    }
    check_matchers(&c.matchers)?;
    if let Some(cycle) = cycle_through(others, c) {
        return Err(invalid(
            "prerequisites",
            format!(
                "these prerequisites would make a cycle: {}; remove one of its edges",
                cycle.join(" -> ")
            ),
        ));
    }
    Ok(())
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), ConceptError> {
    let n = value.chars().count();
    if n == 0 {
        return Err(invalid(field, "required; it must not be empty"));
    }
    if n > max {
        return Err(invalid(
            field,
            format!("{n} characters; shorten it to at most {max}"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(
            field,
            "must be one line of text, without line breaks or control characters",
        ));
    }
    Ok(())
}

fn check_domain(catalogue: &Catalogue, domain: &str) -> Result<(), ConceptError> {
    if catalogue.has_domain(domain)
        || (domain.starts_with(CUSTOM_PREFIX) && domain.len() > 2 && valid_slug(domain))
    {
        return Ok(());
    }
    let shipped: Vec<&str> = catalogue.domains.iter().map(|d| d.slug.as_str()).collect();
    let what = if domain.is_empty() {
        "required".to_string()
    } else {
        format!("`{}` is not a domain", excerpt(domain))
    };
    Err(invalid(
        "domain",
        format!(
            "{what}: use a shipped one ({}) or name your own with the `{CUSTOM_PREFIX}` prefix, e.g. `{CUSTOM_PREFIX}payments`",
            shipped.join(", ")
        ),
    ))
}

fn check_edges(
    catalogue: &Catalogue,
    others: &BTreeMap<String, CustomConcept>,
    c: &Concept,
    field: &str,
    edges: &[String],
    old: Option<&Vec<String>>,
) -> Result<(), ConceptError> {
    if edges.len() > MAX_EDGES {
        return Err(invalid(
            field,
            format!("{} edges; at most {MAX_EDGES}", edges.len()),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, e) in edges.iter().enumerate() {
        let at = format!("{field}/{i}");
        if e == &c.slug {
            return Err(invalid(at, "a concept cannot point at itself"));
        }
        if !seen.insert(e) {
            return Err(invalid(at, format!("`{}` is listed twice", excerpt(e))));
        }
        if catalogue.contains(e) {
            continue;
        }
        match others.get(e) {
            None => {
                return Err(invalid(
                    at,
                    format!(
                        "`{}` is neither a shipped concept nor one of this org's (GET /api/v1/concepts lists both)",
                        excerpt(e)
                    ),
                ));
            }
            Some(o) if o.retired_at.is_some() && !old.is_some_and(|old| old.contains(e)) => {
                return Err(invalid(
                    at,
                    format!("`{e}` is retired; restore it first, or point at another concept"),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn check_matchers(m: &Matchers) -> Result<(), ConceptError> {
    for (name, list) in [
        ("extensions", &m.extensions),
        ("imports", &m.imports),
        ("keywords", &m.keywords),
        ("apis", &m.apis),
    ] {
        let field = format!("matchers/{name}");
        if list.len() > MAX_MATCHERS {
            return Err(invalid(
                field,
                format!("{} entries; at most {MAX_MATCHERS}", list.len()),
            ));
        }
        for (i, v) in list.iter().enumerate() {
            let at = format!("{field}/{i}");
            let n = v.chars().count();
            if n == 0 || n > MAX_MATCHER_LEN || v.trim() != v || v.chars().any(char::is_control) {
                return Err(invalid(
                    at,
                    format!(
                        "each entry is 1 to {MAX_MATCHER_LEN} characters, without surrounding spaces or control characters"
                    ),
                ));
            }
            if name == "extensions" && (!v.starts_with('.') || v.contains('/')) {
                return Err(invalid(
                    at,
                    format!(
                        "`{}` is not a file extension: write it with its dot, e.g. `.proto`",
                        excerpt(v)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The prerequisite cycle `c` would close, as `c -> .. -> c`. The graph
/// without `c` is acyclic (every change is checked), and shipped concepts
/// never point at custom ones, so any new cycle runs through `c` and
/// through custom concepts only.
fn cycle_through(others: &BTreeMap<String, CustomConcept>, c: &Concept) -> Option<Vec<String>> {
    let prereqs = |s: &str| -> Vec<String> {
        if s == c.slug {
            c.prerequisites.clone()
        } else {
            others
                .get(s)
                .map(|o| o.concept.prerequisites.clone())
                .unwrap_or_default()
        }
    };
    // Depth-first from c, remembering how each concept was reached.
    let mut came_from: HashMap<String, String> = HashMap::new();
    let mut stack = vec![c.slug.clone()];
    while let Some(s) = stack.pop() {
        for p in prereqs(&s) {
            if p == c.slug {
                let mut path = vec![c.slug.clone(), s.clone()];
                let mut at = s;
                while let Some(prev) = came_from.get(&at) {
                    path.push(prev.clone());
                    at = prev.clone();
                }
                // path is c, s, .., c reversed: c <- s <- .. <- c.
                path.reverse();
                return Some(path);
            }
            if others.contains_key(&p) && !came_from.contains_key(&p) {
                came_from.insert(p.clone(), s.clone());
                stack.push(p);
            }
        }
    }
    None
}

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

    fn concept(slug: &str, prerequisites: &[&str]) -> Concept {
        Concept {
            slug: slug.into(),
            title: format!("Title of {slug}"),
            domain: "x-internal".into(),
            summary: "What it is.".into(),
            prerequisites: prerequisites.iter().map(|s| (*s).to_string()).collect(),
            related: vec![],
            matchers: Matchers::default(),
        }
    }

    fn stored(c: Concept) -> CustomConcept {
        CustomConcept {
            concept: c,
            created_at: DateTime::UNIX_EPOCH,
            created_by: "operator:test".into(),
            updated_at: DateTime::UNIX_EPOCH,
            retired_at: None,
        }
    }

    fn field_of(r: Result<(), ConceptError>) -> String {
        match r {
            Err(ConceptError::Invalid { field, message }) => format!("{field}: {message}"),
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn slugs_need_the_prefix_and_the_shipped_pattern() {
        let cat = Catalogue::builtin().expect("valid");
        assert!(check_new_slug(&cat, "x-billing-ledger").is_ok());
        let e = check_new_slug(&cat, "rust-lifetimes").expect_err("shipped");
        assert!(
            e.to_string().contains("x-rust-lifetimes") && e.to_string().contains("shipped"),
            "{e}"
        );
        for bad in [
            "x-",
            "x-Upper",
            "x-a_b",
            "x-../etc",
            &format!("x-{}", "a".repeat(63)),
        ] {
            let e = check_new_slug(&cat, bad).expect_err(bad);
            assert!(e.to_string().starts_with("slug: "), "{bad}: {e}");
        }
    }

    #[test]
    fn each_bad_field_is_named_with_its_fix() {
        let cat = Catalogue::builtin().expect("valid");
        let others = BTreeMap::new();
        let base = concept("x-a", &["rust-ownership"]);
        assert!(check(&cat, &others, &base, None).is_ok());
        let cases: Vec<(Concept, &str)> = vec![
            (
                Concept {
                    title: String::new(),
                    ..base.clone()
                },
                "title: required",
            ),
            (
                Concept {
                    title: "t".repeat(81),
                    ..base.clone()
                },
                "title: 81 characters",
            ),
            (
                Concept {
                    summary: "a\nb".into(),
                    ..base.clone()
                },
                "summary: must be one line",
            ),
            (
                Concept {
                    domain: "cooking".into(),
                    ..base.clone()
                },
                "domain: `cooking` is not a domain",
            ),
            (
                concept("x-a", &["nope-nope"]),
                "prerequisites/0: `nope-nope` is neither",
            ),
            (
                concept("x-a", &["x-a"]),
                "prerequisites/0: a concept cannot point at itself",
            ),
            (
                concept("x-a", &["sql-joins", "sql-joins"]),
                "prerequisites/1: `sql-joins` is listed twice",
            ),
            (
                Concept {
                    related: vec!["rust-ownership".into()],
                    ..base.clone()
                },
                "related: `rust-ownership` is a prerequisite already",
            ),
            (
                Concept {
                    matchers: Matchers {
                        extensions: vec!["proto".into()],
                        ..Matchers::default()
                    },
                    ..base.clone()
                },
                "matchers/extensions/0: `proto` is not a file extension",
            ),
        ];
        for (c, want) in cases {
            let got = field_of(check(&cat, &others, &c, None));
            assert!(got.starts_with(want), "wanted {want:?}, got {got:?}");
        }
    }

    #[test]
    fn a_cycle_is_refused_and_named() {
        let cat = Catalogue::builtin().expect("valid");
        let mut others = BTreeMap::new();
        others.insert(
            "x-a".to_string(),
            stored(concept("x-a", &["rust-ownership"])),
        );
        others.insert("x-b".to_string(), stored(concept("x-b", &["x-a"])));
        others.insert("x-c".to_string(), stored(concept("x-c", &["x-b"])));
        // x-a -> x-c would close x-a -> x-c -> x-b -> x-a.
        let mut a = others.remove("x-a").expect("x-a").concept;
        a.prerequisites.push("x-c".into());
        let got = field_of(check(&cat, &others, &a, None));
        assert!(
            got.contains("x-a -> x-c -> x-b -> x-a"),
            "the cycle is named: {got}"
        );
        // A diamond is not a cycle.
        let d = concept("x-d", &["x-b", "x-c"]);
        others.insert("x-a".into(), stored(concept("x-a", &["rust-ownership"])));
        assert!(check(&cat, &others, &d, None).is_ok());
    }

    #[test]
    fn new_edges_to_retired_concepts_are_refused_but_old_ones_stay() {
        let cat = Catalogue::builtin().expect("valid");
        let mut others = BTreeMap::new();
        let mut old = stored(concept("x-old", &[]));
        old.retired_at = Some(DateTime::UNIX_EPOCH);
        others.insert("x-old".to_string(), old);
        let c = concept("x-new", &["x-old"]);
        assert!(field_of(check(&cat, &others, &c, None)).contains("retired"));
        assert!(check(&cat, &others, &c, Some(&c)).is_ok());
    }

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
