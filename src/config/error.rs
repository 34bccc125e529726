//! Configuration errors that an operator can act on: each names the key, the
//! place it was set (file and line, environment variable, or built-in
//! default), what is wrong with it, and how to fix it.

use std::fmt;
use std::path::Path;

use figment::{Figment, Metadata, Source};

/// Prefix of every environment variable the appliance reads.
pub const ENV_PREFIX: &str = "AIWORKLAB_";

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path, e.g. `server.bind` or `orgs.0.slug`.
    pub key: String,
    /// Where the value came from, in words.
    pub origin: String,
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}\n    fix: {}",
            self.key, self.origin, self.problem, self.fix
        )
    }
}

/// Every problem found in one load, so an operator fixes them in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "configuration is invalid ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    /// The single problem with `key`, if any (used by tests and `config check`).
    pub fn for_key(&self, key: &str) -> Option<&ConfigError> {
        self.0.iter().find(|e| e.key == key)
    }
}

/// The environment variable that sets `key` (`server.bind` ->
/// `AIWORKLAB_SERVER__BIND`).
pub fn env_var_for(key: &str) -> String {
    let parts: Vec<String> = key.split('.').map(str::to_ascii_uppercase).collect();
    format!("{ENV_PREFIX}{}", parts.join("__"))
}

/// Describes where `key` was set, looking its metadata up in `figment`.
pub fn origin_of(figment: &Figment, key: &str) -> String {
    // Arrays of tables are found through their parent array's metadata.
    let mut probe = key.to_string();
    loop {
        if let Some(md) = figment.find_metadata(&probe) {
            return describe(md, key);
        }
        match probe.rfind('.') {
            Some(i) => probe.truncate(i),
            None => return "built-in default".into(),
        }
    }
}

/// Words for a metadata record, with the file line of `key` when known.
pub fn describe(md: &Metadata, key: &str) -> String {
    match &md.source {
        Some(Source::File(path)) => match line_of(path, key) {
            Some(line) => format!("set in {}, line {line}", path.display()),
            None => format!("set in {}", path.display()),
        },
        _ if md.name.contains("environment") => {
            format!("set by environment variable {}", env_var_for(key))
        }
        _ => "built-in default".into(),
    }
}

/// The 1-based line of `key` (or of its closest present parent) in the
/// TOML file at `path`.
fn line_of(path: &Path, key: &str) -> Option<usize> {
    use toml_edit::TableLike;
    let text = std::fs::read_to_string(path).ok()?;
    let doc = toml_edit::ImDocument::parse(text.as_str()).ok()?;
    let mut span = None;
    let mut table: &dyn TableLike = doc.as_table();
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        let Some((k, item)) = table.get_key_value(part) else {
            break;
        };
        span = k.span().or(span);
        if let Some(array) = item.as_array_of_tables() {
            // `orgs.1.slug`: the number picks one `[[orgs]]` table.
            let Some(index) = parts.next().and_then(|p| p.parse::<usize>().ok()) else {
                break;
            };
            let Some(t) = array.get(index) else { break };
            span = t.span().or(span);
            table = t;
        } else if let Some(t) = item.as_table_like() {
            table = t;
        } else {
            break;
        }
    }
    span.map(|s| line_at(&text, s.start))
}

fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Turns figment's deserialisation errors into operator-facing ones.
pub fn from_figment(figment: &Figment, err: figment::Error) -> ConfigErrors {
    use figment::error::Kind;
    let mut out = Vec::new();
    for e in err {
        let mut path = e.path.clone();
        let (problem, fix) = match &e.kind {
            Kind::UnknownField(name, expected) => {
                if path.last() != Some(name) {
                    path.push(name.clone());
                }
                (
                    "unknown key".to_string(),
                    if expected.is_empty() {
                        "remove it".to_string()
                    } else {
                        format!("remove it, or use one of: {}", expected.join(", "))
                    },
                )
            }
            Kind::InvalidType(actual, expected) => (
                format!("wrong type: found {actual}, expected {expected}"),
                format!("give {expected}"),
            ),
            Kind::InvalidValue(actual, expected) => (
                format!("invalid value {actual}, expected {expected}"),
                format!("give {expected}"),
            ),
            Kind::MissingField(name) => {
                if path.last().map(String::as_str) != Some(name.as_ref()) {
                    path.push(name.to_string());
                }
                ("required key is missing".to_string(), "add it".to_string())
            }
            Kind::UnknownVariant(v, expected) => (
                format!("unknown value `{v}`"),
                format!("use one of: {}", expected.join(", ")),
            ),
            other => (other.to_string(), "see config/aiworklab.toml".to_string()),
        };
        let key = path.join(".");
        let origin = match &e.metadata {
            Some(md) => describe(md, &key),
            None => origin_of(figment, &key),
        };
        out.push(ConfigError {
            key,
            origin,
            problem,
            fix,
        });
    }
    ConfigErrors(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_names_use_double_underscores() {
        assert_eq!(env_var_for("server.bind"), "AIWORKLAB_SERVER__BIND");
        assert_eq!(
            env_var_for("rate_limits.sign_in.requests"),
            "AIWORKLAB_RATE_LIMITS__SIGN_IN__REQUESTS"
        );
    }

    #[test]
    fn line_lookup_finds_nested_and_array_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.toml");
        std::fs::write(
            &path,
            "[server]\nbind = \"x\"\n\n[rate_limits]\ngeneral = { requests = 1, window_secs = 2 }\n\n[[orgs]]\nslug = \"a\"\nname = \"A\"\n\n[[orgs]]\nslug = \"B\"\nname = \"b\"\n",
        )
        .expect("write");
        assert_eq!(line_of(&path, "server.bind"), Some(2));
        assert_eq!(line_of(&path, "rate_limits.general.requests"), Some(5));
        assert_eq!(line_of(&path, "orgs.1.slug"), Some(12));
        assert_eq!(line_of(&path, "orgs.0.name"), Some(9));
    }
}
