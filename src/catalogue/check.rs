//! The checks of an org's own concept before anything is written: the
//! slug, every field, the edges (which must resolve, and may not point at
//! retired concepts unless they already did), and the prerequisite graph,
//! which must stay acyclic (the cycle a change would close is named).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::json;

use super::custom::{ConceptError, CustomConcept, MAX_EDGES, MAX_MATCHER_LEN, MAX_MATCHERS};
use crate::skill::catalogue::{
    CUSTOM_PREFIX, Catalogue, Concept, MAX_SUMMARY, MAX_TITLE, Matchers, valid_slug,
};

pub(super) fn invalid(field: impl Into<String>, message: impl Into<String>) -> ConceptError {
    ConceptError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// A short, printable excerpt of a client-supplied value for messages.
pub(super) fn excerpt(s: &str) -> String {
    let cut: String = s.chars().filter(|c| !c.is_control()).take(64).collect();
    if s.chars().count() > 64 {
        format!("{cut}…")
    } else {
        cut
    }
}

/// Trims text fields (edges and matchers are checked as given).
pub(super) fn normalise(c: &mut Concept) {
    c.title = c.title.trim().to_string();
    c.summary = c.summary.trim().to_string();
    c.domain = c.domain.trim().to_string();
}

/// The fields that differ, as `{field: {"from": .., "to": ..}}`.
pub(super) fn difference(a: &Concept, b: &Concept) -> serde_json::Map<String, serde_json::Value> {
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

pub(super) fn check_new_slug(catalogue: &Catalogue, slug: &str) -> Result<(), ConceptError> {
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
pub(super) fn check(
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

pub(super) fn check_text(field: &str, value: &str, max: usize) -> Result<(), ConceptError> {
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

pub(super) fn check_domain(catalogue: &Catalogue, domain: &str) -> Result<(), ConceptError> {
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

pub(super) fn check_edges(
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

pub(super) fn check_matchers(m: &Matchers) -> Result<(), ConceptError> {
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
pub(super) fn cycle_through(
    others: &BTreeMap<String, CustomConcept>,
    c: &Concept,
) -> Option<Vec<String>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

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
}
