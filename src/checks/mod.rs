//! Comprehension checks: the question bank shipped in the binary, one TOML
//! file per catalogue domain under `config/checks/`, at least three checks
//! for every shipped concept, so a check can be asked and graded with no
//! model at all. A check is multiple choice (one right option, an
//! explanation shown after answering) or a short answer matched against
//! accepted answers after [`normalise`]. The bank is loaded and validated
//! against the catalogue once ([`bank`]); this module holds the read-only
//! types and lookups. It depends only on the catalogue's read-only types, so
//! the server and the engineer-side kernel share it. Format: `docs/checks.md`.

pub mod bank;

use std::collections::{BTreeMap, HashMap};

pub use bank::{BankError, Problem};

/// How a check is answered, and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Pick one of `options`; `correct` is the index of the right one.
    Choice {
        options: Vec<String>,
        correct: usize,
    },
    /// Type a short answer; right if it [`normalise`]s to one of `accepted`.
    Short { accepted: Vec<String> },
}

/// One check of the bank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Stable id, `<concept-slug>-<n>`; recorded with a check's result.
    pub id: String,
    /// The catalogue concept the check tests.
    pub concept: String,
    /// The question; may hold short code in backticks or on its own lines.
    pub prompt: String,
    pub answer: Answer,
    /// Why the right answer is right, shown after answering.
    pub explanation: String,
}

/// A response to a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response<'a> {
    /// The index of the chosen option.
    Choice(usize),
    /// Free text for a short-answer check.
    Text(&'a str),
}

impl Check {
    /// Whether `response` answers this check rightly. A response of the
    /// wrong kind (text for a multiple-choice check, or the reverse) or an
    /// option index out of range is simply wrong.
    pub fn is_right(&self, response: Response<'_>) -> bool {
        match (&self.answer, response) {
            (Answer::Choice { correct, .. }, Response::Choice(i)) => *correct == i,
            (Answer::Short { accepted }, Response::Text(t)) => {
                let given = normalise(t);
                !given.is_empty() && accepted.iter().any(|a| normalise(a) == given)
            }
            _ => false,
        }
    }
}

/// The form a short answer is compared in: lower case, every character
/// that is not a letter or digit read as a space, runs of spaces collapsed,
/// trimmed. So `Sparse-Checkout.` and ` sparse checkout` are the same
/// answer, and `--autosquash` matches `autosquash`.
pub fn normalise(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_lowercase().collect::<String>()
            } else {
                " ".to_string()
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The loaded, validated bank: checks by concept, in file order.
#[derive(Debug, Clone)]
pub struct Bank {
    by_concept: BTreeMap<String, Vec<Check>>,
    /// id -> (concept, index in `by_concept[concept]`).
    by_id: HashMap<String, (String, usize)>,
}

impl Bank {
    /// The checks for `concept`, in file order; empty for a concept the
    /// bank does not cover (an org's own concept, for instance).
    pub fn for_concept(&self, concept: &str) -> &[Check] {
        self.by_concept.get(concept).map_or(&[], Vec::as_slice)
    }

    /// The check with this id.
    pub fn get(&self, id: &str) -> Option<&Check> {
        let (concept, i) = self.by_id.get(id)?;
        self.by_concept.get(concept)?.get(*i)
    }

    /// The concepts with at least one check, in slug order.
    pub fn concepts(&self) -> impl Iterator<Item = &str> {
        self.by_concept.keys().map(String::as_str)
    }

    /// Every check, grouped by concept in slug order.
    pub fn checks(&self) -> impl Iterator<Item = &Check> {
        self.by_concept.values().flatten()
    }

    /// The number of checks.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_ignores_case_whitespace_and_punctuation() {
        assert_eq!(normalise("  Sparse-Checkout. "), "sparse checkout");
        assert_eq!(normalise("--autosquash"), "autosquash");
        assert_eq!(normalise("git\trebase  --continue"), "git rebase continue");
        assert_eq!(normalise("O(n log n)"), "o n log n");
        assert_eq!(normalise("?!"), "");
    }

    fn short() -> Check {
        Check {
            id: "x-1".into(),
            concept: "x".into(),
            prompt: "p".into(),
            answer: Answer::Short {
                accepted: vec!["git rebase --continue".into(), "--continue".into()],
            },
            explanation: "e".into(),
        }
    }

    #[test]
    fn short_answers_match_after_normalising_only() {
        let c = short();
        assert!(c.is_right(Response::Text("Git Rebase --Continue")));
        assert!(c.is_right(Response::Text("continue.")));
        assert!(!c.is_right(Response::Text("git rebase --abort")));
        assert!(!c.is_right(Response::Text("  ")), "blank is never right");
        assert!(!c.is_right(Response::Choice(0)), "wrong kind of response");
    }

    #[test]
    fn choices_match_the_key_only() {
        let c = Check {
            answer: Answer::Choice {
                options: vec!["a".into(), "b".into(), "c".into(), "d".into()],
                correct: 2,
            },
            ..short()
        };
        assert!(c.is_right(Response::Choice(2)));
        assert!(!c.is_right(Response::Choice(0)));
        assert!(!c.is_right(Response::Choice(99)));
        assert!(!c.is_right(Response::Text("c")));
    }
}
