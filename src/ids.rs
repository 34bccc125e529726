//! Identifier newtypes. A value of one of these types has passed its
//! allow-list check, so code that takes an `OrgSlug` may use it to name a
//! file without checking again.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An organisation slug: `^[a-z0-9][a-z0-9-]{0,62}$`. It names the org's
/// database file (`orgs/<slug>.db`) and is the HKDF info for its key, so it
/// never changes once an org exists.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct OrgSlug(String);

/// Why a string is not an org slug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a valid org slug: use 1 to 63 lower-case letters, digits and hyphens, starting with a letter or digit (e.g. `acme` or `acme-eu`)"
)]
pub struct InvalidSlug(pub String);

impl OrgSlug {
    /// Checks `s` against the slug pattern.
    ///
    /// # Errors
    /// [`InvalidSlug`] when `s` is empty, longer than 63 bytes, starts with a
    /// hyphen, or holds anything but `[a-z0-9-]`.
    pub fn parse(s: &str) -> Result<Self, InvalidSlug> {
        let bytes = s.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= 63
            && bytes[0] != b'-'
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidSlug(s.chars().take(80).collect()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl<'de> Deserialize<'de> for OrgSlug {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        OrgSlug::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for OrgSlug {
    type Err = InvalidSlug;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_good_slugs() {
        for s in ["a", "acme", "acme-eu", "0rg", &"a".repeat(63)] {
            assert!(OrgSlug::parse(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn refuses_hostile_slugs() {
        for s in [
            "",
            "../x",
            "A",
            "a b",
            "-a",
            "a/b",
            "a.db",
            "..",
            "a\0b",
            "é",
            "a_b",
            &"a".repeat(64),
        ] {
            assert!(OrgSlug::parse(s).is_err(), "{s:?} was accepted");
        }
    }

    proptest! {
        #[test]
        fn a_parsed_slug_is_a_safe_file_name(s in ".{0,80}") {
            if let Ok(slug) = OrgSlug::parse(&s) {
                prop_assert!(!slug.as_str().contains('/'));
                prop_assert!(!slug.as_str().contains(".."));
                prop_assert!(!slug.as_str().starts_with('-'));
            }
        }
    }
}
