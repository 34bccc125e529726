//! The concept catalogue shipped inside the binary: one TOML file per
//! domain under `config/catalogue/`, each concept with a slug, title,
//! summary, prerequisite and related edges (the graph), and the matchers
//! the teaching kernel uses to spot it. Loaded once and checked: slugs
//! valid and unique, every edge resolves, prerequisites acyclic. Orgs add
//! their own concepts beside it (`catalogue::custom`), under the
//! reserved `x-` prefix.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// The shipped files, in a fixed order, as JSON: `build.rs` renders each
/// `config/catalogue/NAME.toml` value for value (parsing TOML here cost
/// the kernel's hook several milliseconds on every event).
const FILES: [(&str, &str); 20] = [
    (
        "algorithms",
        include_str!(concat!(env!("OUT_DIR"), "/catalogue/algorithms.json")),
    ),
    (
        "auth",
        include_str!(concat!(env!("OUT_DIR"), "/catalogue/auth.json")),
    ),
    (
        "ci-cd",
        include_str!(concat!(env!("OUT_DIR"), "/catalogue/ci-cd.json")),
    ),
    (
        "cloud",
        include_str!(concat!(env!("OUT_DIR"), "/catalogue/cloud.json")),
    ),
    (
        "concurrency",
        include_str!(concat!(env!("OUT_DIR"), "/catalogue/concurrency.json")),
    ),
    (
        "containers",
        include_str!(concat!(env!("OUT_DIR"), "/catalogue/containers.json")),
    ),
    (
        "databases",
        include_str!(concat!(env!("OUT_DIR"), "/catalogue/databases.json")),
    ),
    (
        "distributed-systems",
        include_str!(concat!(
            env!("OUT_DIR"),
            "/catalogue/distributed-systems.json"
        )),
    ),
    (
        "frontend",
        include_str!(concat!(env!("OUT_DIR"), "/catalogue/frontend.json")),
    ),
    (
        "git",
        include_str!(concat!(env!("OUT_DIR"), "/catalogue/git.json")),
    ),
    (
        "go",
        include_str!(concat!(env!("OUT_DIR"), "/catalogue/go.json")),
    ),
    (
        "observability",
        include_str!(concat!(env!("OUT_DIR"), "/catalogue/observability.json")),
    ),
    (
        "performance",
        include_str!(concat!(env!("OUT_DIR"), "/catalogue/performance.json")),
    ),
    (
        "python",
        include_str!(concat!(env!("OUT_DIR"), "/catalogue/python.json")),
    ),
    (
        "rust",
        include_str!(concat!(env!("OUT_DIR"), "/catalogue/rust.json")),
    ),
    (
        "security",
        include_str!(concat!(env!("OUT_DIR"), "/catalogue/security.json")),
    ),
    (
        "sql",
        include_str!(concat!(env!("OUT_DIR"), "/catalogue/sql.json")),
    ),
    (
        "testing",
        include_str!(concat!(env!("OUT_DIR"), "/catalogue/testing.json")),
    ),
    (
        "typescript",
        include_str!(concat!(env!("OUT_DIR"), "/catalogue/typescript.json")),
    ),
    (
        "web-http",
        include_str!(concat!(env!("OUT_DIR"), "/catalogue/web-http.json")),
    ),
];

/// How the teaching kernel spots a concept in agent events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Matchers {
    pub extensions: Vec<String>,
    pub imports: Vec<String>,
    pub keywords: Vec<String>,
    pub apis: Vec<String>,
}

/// One concept of the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concept {
    pub slug: String,
    pub title: String,
    #[serde(default)]
    pub domain: String,
    pub summary: String,
    #[serde(default)]
    pub prerequisites: Vec<String>,
    #[serde(default)]
    pub related: Vec<String>,
    #[serde(default)]
    pub matchers: Matchers,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    domain: String,
    title: String,
    concept: Vec<Concept>,
}

/// A domain and its display name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Domain {
    pub slug: String,
    pub title: String,
}

/// The loaded, checked catalogue.
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub domains: Vec<Domain>,
    concepts: BTreeMap<String, Concept>,
}

/// The prefix of every org's own concepts (and org-defined domains). The
/// shipped catalogue never uses it, so an org's concept can never collide
/// with one shipped in a later release; the slug pattern stays the same,
/// so the sync schema (the privacy boundary) does not widen.
pub const CUSTOM_PREFIX: &str = "x-";
/// Longest concept title, in characters (shipped and custom alike).
pub const MAX_TITLE: usize = 80;
/// Longest one-line summary, in characters.
pub const MAX_SUMMARY: usize = 200;

/// Concept slugs: `^[a-z0-9][a-z0-9-]{1,63}$`.
pub fn valid_slug(s: &str) -> bool {
    let b = s.as_bytes();
    (2..=64).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

impl Catalogue {
    /// The catalogue shipped in the binary.
    ///
    /// # Errors
    /// A description of the first problem (tests keep it at none).
    pub fn builtin() -> Result<Self, String> {
        let mut domains = Vec::new();
        let mut concepts = BTreeMap::new();
        for (name, text) in FILES {
            let file: File = serde_json::from_str(text)
                .map_err(|e| format!("config/catalogue/{name}.toml: {e}"))?;
            if file.domain.starts_with(CUSTOM_PREFIX) {
                return Err(format!(
                    "config/catalogue/{name}.toml: the `{CUSTOM_PREFIX}` prefix is reserved for org domains"
                ));
            }
            if file.domain != name {
                return Err(format!(
                    "config/catalogue/{name}.toml declares domain {}",
                    file.domain
                ));
            }
            domains.push(Domain {
                slug: file.domain.clone(),
                title: file.title,
            });
            for mut c in file.concept {
                c.domain = file.domain.clone();
                if !valid_slug(&c.slug) {
                    return Err(format!("{name}: `{}` is not a valid concept slug", c.slug));
                }
                if c.slug.starts_with(CUSTOM_PREFIX) {
                    return Err(format!(
                        "{name}: `{}` uses the `{CUSTOM_PREFIX}` prefix, which is reserved for org concepts",
                        c.slug
                    ));
                }
                if concepts.insert(c.slug.clone(), c.clone()).is_some() {
                    return Err(format!("{name}: `{}` is defined twice", c.slug));
                }
            }
        }
        let cat = Self { domains, concepts };
        cat.check()?;
        Ok(cat)
    }

    /// A catalogue of the given domains and concepts (an org's copy, as
    /// the appliance lists it), checked like the shipped one.
    ///
    /// # Errors
    /// A description of the first problem: an invalid or repeated slug, an
    /// edge to an unknown concept, a prerequisite cycle.
    pub fn from_parts(domains: Vec<Domain>, list: Vec<Concept>) -> Result<Self, String> {
        let mut concepts = BTreeMap::new();
        for c in list {
            if !valid_slug(&c.slug) {
                return Err(format!("`{}` is not a valid concept slug", c.slug));
            }
            if concepts.insert(c.slug.clone(), c.clone()).is_some() {
                return Err(format!("`{}` is defined twice", c.slug));
            }
        }
        let cat = Self { domains, concepts };
        cat.check()?;
        Ok(cat)
    }

    fn check(&self) -> Result<(), String> {
        for c in self.concepts.values() {
            for e in c.prerequisites.iter().chain(&c.related) {
                if !self.concepts.contains_key(e) {
                    return Err(format!("{}: edge to unknown concept `{e}`", c.slug));
                }
                if e == &c.slug {
                    return Err(format!("{}: links to itself", c.slug));
                }
            }
        }
        // Prerequisites must be acyclic: depth-first search with colours.
        let mut colour: HashMap<&str, u8> = HashMap::new();
        fn visit<'a>(
            cat: &'a Catalogue,
            s: &'a str,
            colour: &mut HashMap<&'a str, u8>,
            path: &mut Vec<&'a str>,
        ) -> Result<(), String> {
            match colour.get(s) {
                Some(2) => return Ok(()),
                Some(1) => {
                    path.push(s);
                    return Err(format!("prerequisite cycle: {}", path.join(" -> ")));
                }
                _ => {}
            }
            colour.insert(s, 1);
            path.push(s);
            for p in &cat.concepts[s].prerequisites {
                visit(cat, p, colour, path)?;
            }
            path.pop();
            colour.insert(s, 2);
            Ok(())
        }
        for s in self.concepts.keys() {
            visit(self, s, &mut colour, &mut Vec::new())?;
        }
        Ok(())
    }

    pub fn get(&self, slug: &str) -> Option<&Concept> {
        self.concepts.get(slug)
    }

    pub fn contains(&self, slug: &str) -> bool {
        self.concepts.contains_key(slug)
    }

    pub fn len(&self) -> usize {
        self.concepts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.concepts.is_empty()
    }

    pub fn concepts(&self) -> impl Iterator<Item = &Concept> {
        self.concepts.values()
    }

    /// Whether `slug` names a shipped domain.
    pub fn has_domain(&self, slug: &str) -> bool {
        self.domains.iter().any(|d| d.slug == slug)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `build.rs` renders each TOML file as JSON; read both ways, every
    /// file gives the same domain and concepts.
    #[test]
    fn the_embedded_json_is_the_toml_value_for_value() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/catalogue");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("config/catalogue")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .map(|p| p.file_stem().expect("stem").to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut shipped: Vec<&str> = FILES.iter().map(|(n, _)| *n).collect();
        shipped.sort_unstable();
        assert_eq!(names, shipped, "every TOML file is shipped");
        for (name, json) in FILES {
            let toml = std::fs::read_to_string(dir.join(format!("{name}.toml"))).expect("toml");
            let from_toml: File = toml_edit::de::from_str(&toml).expect("toml parses");
            let from_json: File = serde_json::from_str(json).expect("json parses");
            assert_eq!(from_json, from_toml, "{name}");
        }
    }

    #[test]
    fn the_shipped_catalogue_is_large_valid_and_acyclic() {
        let cat = Catalogue::builtin().expect("the shipped catalogue is valid");
        assert!(cat.len() >= 400, "{} concepts", cat.len());
        assert!(cat.domains.len() >= 15);
        for d in &cat.domains {
            assert!(
                cat.concepts().filter(|c| c.domain == d.slug).count() >= 15,
                "{}",
                d.slug
            );
        }
        assert!(
            cat.concepts()
                .all(|c| !c.slug.starts_with(CUSTOM_PREFIX) && !c.domain.starts_with(CUSTOM_PREFIX)),
            "the x- prefix is reserved for org concepts"
        );
        let c = cat.get("rust-borrowing").expect("a known concept");
        assert_eq!(c.domain, "rust");
        assert!(c.prerequisites.contains(&"rust-ownership".to_string()));
    }

    #[test]
    fn a_cycle_is_detected() {
        let mut cat = Catalogue::builtin().expect("valid");
        let a = cat.concepts.get_mut("rust-ownership").expect("present");
        a.prerequisites.push("rust-borrowing".into());
        let err = cat.check().expect_err("cycle");
        assert!(err.contains("cycle"), "{err}");
    }

    #[test]
    fn slugs_are_checked() {
        for ok in ["pg-advisory-locks", "a1", "http-2"] {
            assert!(valid_slug(ok), "{ok}");
        }
        for bad in ["", "a", "-x", "A-b", "a_b", "a b", "../x", &"a".repeat(65)] {
            assert!(!valid_slug(bad), "{bad}");
        }
    }
}
