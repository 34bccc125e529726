//! The JSON schema of a structured answer, in one place with the
//! `max_tokens` it needs.
//!
//! **Property order.** A grammar-constrained server (llama.cpp's
//! `llama-server` turns the schema into a grammar) makes the model write
//! the properties in the order the schema lists them, so the order is part
//! of the prompt: the question before its options, the options before the
//! index of the right one and the explanation. `serde_json::Map` is a
//! `BTreeMap` here (the crate does not enable serde_json's
//! `preserve_order`, which would change map order everywhere), so a schema
//! built with `json!` reaches the server in alphabetical order. A
//! [`Schema`] is therefore a list of [`Property`]s that serializes its
//! `properties` (and `required`) itself, in the order they were written,
//! and the request body around it is a struct (`super::Body`), never a
//! `Value`, so nothing reorders it on the way out.
//!
//! **`max_tokens`.** A call asks for at most [`Schema::max_tokens`]: the
//! characters of the longest answer the schema allows (every string at its
//! `maxLength`, every array at its `maxItems`, written as compact JSON
//! with one space after each `:` and `,`), divided by
//! [`MIN_CHARS_PER_TOKEN`], plus one for the end-of-answer token. Since the
//! limit is computed from the same [`Field`]s the schema is written from,
//! the two cannot drift apart: a model that writes the longest valid answer
//! is never cut off (`finish_reason: "length"`, refused as a bad answer).
//! The grammar ends the answer at its closing brace, so a short answer
//! costs no more for the higher limit.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};

/// The fewest characters a token is counted to carry. Chat models'
/// tokenizers are byte-level BPE: every token covers at least one byte,
/// which is at least one character of ASCII text (English prose averages
/// about four characters a token; one is the worst case, e.g. a model
/// that spells an answer out letter by letter). An escape such as `\"` or
/// `\n` is one character of the value and typically one token. Text
/// outside ASCII can take more than one token a character; the bank's and
/// the prompts' language is English.
pub const MIN_CHARS_PER_TOKEN: usize = 1;

/// What one property may hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// A string of `min` to `max` characters.
    Text { min: usize, max: usize },
    /// Exactly this string (`enum` of one value).
    Exactly(String),
    /// `min_items` to `max_items` strings of `min` to `max` characters.
    Texts {
        min_items: usize,
        max_items: usize,
        min: usize,
        max: usize,
    },
    /// An integer from `min` to `max`.
    Integer { min: i64, max: i64 },
}

impl Field {
    /// The JSON schema of this field. Its own keys' order does not matter
    /// (they are constraints, not output), so a `Value` is fine here.
    fn schema(&self) -> Value {
        match self {
            Self::Text { min, max } => {
                json!({"type": "string", "minLength": min, "maxLength": max})
            }
            Self::Exactly(s) => json!({"type": "string", "enum": [s]}),
            Self::Texts {
                min_items,
                max_items,
                min,
                max,
            } => json!({
                "type": "array",
                "items": {"type": "string", "minLength": min, "maxLength": max},
                "minItems": min_items,
                "maxItems": max_items,
            }),
            Self::Integer { min, max } => {
                json!({"type": "integer", "minimum": min, "maximum": max})
            }
        }
    }

    /// The most characters a valid value takes, as JSON.
    fn max_chars(&self) -> usize {
        let quoted = |n: usize| n + 2;
        match self {
            Self::Text { max, .. } => quoted(*max),
            Self::Exactly(s) => quoted(s.chars().count()),
            Self::Texts { max_items, max, .. } => {
                // `[` items joined by `, ` `]`
                2 + max_items * quoted(*max) + max_items.saturating_sub(1) * 2
            }
            Self::Integer { min, max } => min.to_string().len().max(max.to_string().len()),
        }
    }
}

/// One property of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    pub name: &'static str,
    pub field: Field,
}

/// The schema of an answer: an object of exactly these properties, all
/// required, written in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    pub properties: Vec<Property>,
}

impl Schema {
    /// A schema of `properties`, in the order the model should write them.
    pub fn object(properties: Vec<Property>) -> Self {
        Self { properties }
    }

    /// The most characters a valid answer takes: `{`, each `"name": value`
    /// joined by `, `, `}`.
    pub fn max_answer_chars(&self) -> usize {
        let members: usize = self
            .properties
            .iter()
            .map(|p| p.name.chars().count() + 2 + 2 + p.field.max_chars())
            .sum();
        2 + members + self.properties.len().saturating_sub(1) * 2
    }

    /// The `max_tokens` that covers the longest valid answer (see the
    /// module's documentation).
    pub fn max_tokens(&self) -> u32 {
        let tokens = self.max_answer_chars().div_ceil(MIN_CHARS_PER_TOKEN) + 1;
        u32::try_from(tokens).unwrap_or(u32::MAX)
    }

    /// The property named `name`, if any.
    pub fn property(&self, name: &str) -> Option<&Field> {
        self.properties
            .iter()
            .find(|p| p.name == name)
            .map(|p| &p.field)
    }
}

/// `properties` as a JSON object whose members keep their order.
struct Ordered<'a>(&'a [Property]);

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for p in self.0 {
            map.serialize_entry(p.name, &p.field.schema())?;
        }
        map.end()
    }
}

impl Serialize for Schema {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let required: Vec<&str> = self.properties.iter().map(|p| p.name).collect();
        let mut map = s.serialize_map(Some(4))?;
        map.serialize_entry("type", "object")?;
        map.serialize_entry("properties", &Ordered(&self.properties))?;
        map.serialize_entry("required", &required)?;
        map.serialize_entry("additionalProperties", &false)?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Schema {
        Schema::object(vec![
            Property {
                name: "zeta",
                field: Field::Text { min: 1, max: 10 },
            },
            Property {
                name: "alpha",
                field: Field::Texts {
                    min_items: 1,
                    max_items: 3,
                    min: 1,
                    max: 4,
                },
            },
            Property {
                name: "mid",
                field: Field::Integer { min: -5, max: 120 },
            },
            Property {
                name: "c",
                field: Field::Exactly("git-x".into()),
            },
        ])
    }

    #[test]
    fn properties_and_required_keep_the_written_order() {
        let text = serde_json::to_string(&sample()).expect("json");
        let at = |k: &str| text.find(&format!("\"{k}\":")).expect(k);
        assert!(at("zeta") < at("alpha") && at("alpha") < at("mid") && at("mid") < at("c"));
        assert!(
            text.contains(r#""required":["zeta","alpha","mid","c"],"additionalProperties":false"#),
            "{text}"
        );
        let v: Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(v["properties"]["alpha"]["maxItems"], 3);
        assert_eq!(v["properties"]["c"]["enum"][0], "git-x");
    }

    #[test]
    fn the_longest_valid_answer_is_counted_exactly() {
        let longest = json!({
            "zeta": "z".repeat(10),
            "alpha": ["aaaa", "bbbb", "cccc"],
            "mid": 120,
            "c": "git-x",
        });
        // serde_json writes compact JSON; the bound allows a space after
        // each `:` and `,`.
        let compact = serde_json::to_string(&longest).expect("json").len();
        let separators = 4 + 3 + 2; // 4 colons, 3 commas between members, 2 in the array
        assert_eq!(sample().max_answer_chars(), compact + separators);
        assert_eq!(
            sample().max_tokens() as usize,
            (compact + separators).div_ceil(MIN_CHARS_PER_TOKEN) + 1
        );
    }
}
