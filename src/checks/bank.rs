//! Loading and validating the question bank: the `config/checks/*.toml`
//! files embedded at build time, parsed strictly (unknown keys refused) and
//! checked against the catalogue. Every problem is a [`BankError`] naming
//! the file, the check and the fix; the tests keep the shipped bank free of
//! them.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::{Answer, Bank, Check, normalise};
use crate::skill::Catalogue;

/// The shipped files, one per catalogue domain, in the catalogue's order.
const FILES: &[(&str, &str)] = &[
    (
        "algorithms",
        include_str!("../../config/checks/algorithms.toml"),
    ),
    ("auth", include_str!("../../config/checks/auth.toml")),
    ("ci-cd", include_str!("../../config/checks/ci-cd.toml")),
    ("cloud", include_str!("../../config/checks/cloud.toml")),
    (
        "concurrency",
        include_str!("../../config/checks/concurrency.toml"),
    ),
    (
        "containers",
        include_str!("../../config/checks/containers.toml"),
    ),
    (
        "databases",
        include_str!("../../config/checks/databases.toml"),
    ),
    (
        "distributed-systems",
        include_str!("../../config/checks/distributed-systems.toml"),
    ),
    (
        "frontend",
        include_str!("../../config/checks/frontend.toml"),
    ),
    ("git", include_str!("../../config/checks/git.toml")),
    ("go", include_str!("../../config/checks/go.toml")),
    (
        "observability",
        include_str!("../../config/checks/observability.toml"),
    ),
    (
        "performance",
        include_str!("../../config/checks/performance.toml"),
    ),
    ("python", include_str!("../../config/checks/python.toml")),
    ("rust", include_str!("../../config/checks/rust.toml")),
    (
        "security",
        include_str!("../../config/checks/security.toml"),
    ),
    ("sql", include_str!("../../config/checks/sql.toml")),
    ("testing", include_str!("../../config/checks/testing.toml")),
    (
        "typescript",
        include_str!("../../config/checks/typescript.toml"),
    ),
    (
        "web-http",
        include_str!("../../config/checks/web-http.toml"),
    ),
];

/// Fewest checks a concept may have.
pub const MIN_PER_CONCEPT: usize = 3;
/// Options of a multiple-choice check: one right answer and 3-4 distractors.
pub const MIN_OPTIONS: usize = 4;
pub const MAX_OPTIONS: usize = 5;
/// Most accepted answers of a short-answer check.
pub const MAX_ACCEPTED: usize = 8;
/// Longest prompt, in characters (room for a few lines of code).
pub const MAX_PROMPT: usize = 700;
/// Longest explanation, in characters.
pub const MAX_EXPLANATION: usize = 500;
/// Longest option, in characters.
pub const MAX_OPTION: usize = 200;
/// Longest accepted short answer, in characters.
pub const MAX_ACCEPTED_LEN: usize = 80;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    domain: String,
    #[serde(default)]
    check: Vec<RawCheck>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    id: String,
    concept: String,
    prompt: String,
    options: Option<Vec<String>>,
    answer: Option<usize>,
    accepted: Option<Vec<String>>,
    explanation: String,
}

/// What is wrong with the bank, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error(
        "{0}; fix the TOML (keys: domain, and [[check]] tables with id, concept, prompt, options + answer or accepted, explanation)"
    )]
    Parse(String),
    #[error("declares domain `{declared}`; set `domain = \"{expected}\"` to match the file name")]
    WrongDomain { declared: String, expected: String },
    #[error("is not a catalogue domain; name the file after a domain in config/catalogue/")]
    UnknownDomain,
    #[error(
        "has no checks file; write config/checks/{0}.toml with at least {min_per_concept} checks per concept", min_per_concept = MIN_PER_CONCEPT
    )]
    MissingDomain(String),
    #[error("the id must be `<concept>-<number>` (here `{concept}-N`); rename it")]
    BadId { concept: String },
    #[error("the id is used twice; give one of them the next free number")]
    DuplicateId,
    #[error("concept `{0}` is not in the catalogue; use a slug from config/catalogue/")]
    UnknownConcept(String),
    #[error(
        "concept `{concept}` belongs to domain `{domain}`; move the check to config/checks/{domain}.toml"
    )]
    ForeignConcept { concept: String, domain: String },
    #[error(
        "the same prompt as check `{0}` (ignoring case and spacing); reword one so each asks its own question"
    )]
    DuplicatePrompt(String),
    #[error("`{field}` is empty; write it")]
    Empty { field: &'static str },
    #[error("`{field}` has {len} characters, more than {max}; shorten it")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error(
        "give either `options` with `answer` (multiple choice) or `accepted` (short answer), not both or neither"
    )]
    Shape,
    #[error("a multiple-choice check needs `answer`, the 0-based index of the right option")]
    MissingAnswer,
    #[error(
        "has {0} options; give one right answer and 3 or 4 distractors ({min_options}-{max_options} options)", max_options = MAX_OPTIONS, min_options = MIN_OPTIONS
    )]
    OptionCount(usize),
    #[error(
        "`answer = {answer}` is not an option index (0 to {last}); point it at the right option"
    )]
    AnswerOutOfRange { answer: usize, last: usize },
    #[error(
        "options {0} and {1} (0-based) are the same text (ignoring case and spacing); make every option distinct"
    )]
    DuplicateOption(usize, usize),
    #[error("has {0} accepted answers; give 1 to {max_accepted}", max_accepted = MAX_ACCEPTED)]
    AcceptedCount(usize),
    #[error(
        "accepted answers `{0}` and `{1}` are the same after normalising (case, spaces, punctuation); keep one"
    )]
    DuplicateAccepted(String, String),
    #[error(
        "accepted answer `{0}` has no letter or digit, so no typed answer can match it; ask this as multiple choice"
    )]
    Unmatchable(String),
    #[error("concept `{concept}` has {have} checks; write at least {min_per_concept}", min_per_concept = MIN_PER_CONCEPT)]
    TooFewChecks { concept: String, have: usize },
}

/// A problem in the bank: the file it is in, the check (if one), and what
/// is wrong with how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankError {
    /// The file's domain (its name without `.toml`).
    pub file: String,
    pub check: Option<String>,
    pub problem: Problem,
}

impl std::fmt::Display for BankError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "config/checks/{}.toml", self.file)?;
        if let Some(id) = &self.check {
            write!(f, ", check `{id}`")?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl std::error::Error for BankError {}

impl BankError {
    fn new(file: &str, check: Option<&str>, problem: Problem) -> Self {
        Self {
            file: file.to_string(),
            check: check.map(str::to_string),
            problem,
        }
    }
}

impl Bank {
    /// The bank shipped in the binary, checked against `catalogue`.
    ///
    /// # Errors
    /// The first problem found (tests keep the shipped bank free of them).
    pub fn builtin(catalogue: &Catalogue) -> Result<Self, BankError> {
        every_domain_has_a_file(FILES, catalogue)?;
        Self::load(FILES, catalogue)
    }

    /// Parses and validates `files` (`(domain, TOML text)` pairs): every
    /// concept of each file's domain has at least [`MIN_PER_CONCEPT`]
    /// checks, ids and prompts are unique across the files, and each check
    /// is well formed (see [`Problem`]). [`Bank::builtin`] also requires a
    /// file for every catalogue domain.
    ///
    /// # Errors
    /// The first problem found, naming the file, the check and the fix.
    pub fn load(files: &[(&str, &str)], catalogue: &Catalogue) -> Result<Self, BankError> {
        let mut by_concept: BTreeMap<String, Vec<Check>> = BTreeMap::new();
        let mut by_id: HashMap<String, (String, usize)> = HashMap::new();
        let mut prompts: HashMap<String, String> = HashMap::new();
        for (name, text) in files {
            if !catalogue.has_domain(name) {
                return Err(BankError::new(name, None, Problem::UnknownDomain));
            }
            let file: RawFile = toml_edit::de::from_str(text)
                .map_err(|e| BankError::new(name, None, Problem::Parse(e.to_string())))?;
            if file.domain != *name {
                let problem = Problem::WrongDomain {
                    declared: file.domain,
                    expected: name.to_string(),
                };
                return Err(BankError::new(name, None, problem));
            }
            for raw in file.check {
                let id = raw.id.clone();
                let err = |p| BankError::new(name, Some(&id), p);
                let check = validate(raw, name, catalogue).map_err(err)?;
                if let Some(other) = prompts.insert(squash(&check.prompt), id.clone()) {
                    return Err(err(Problem::DuplicatePrompt(other)));
                }
                let list = by_concept.entry(check.concept.clone()).or_default();
                if by_id
                    .insert(id.clone(), (check.concept.clone(), list.len()))
                    .is_some()
                {
                    return Err(err(Problem::DuplicateId));
                }
                list.push(check);
            }
        }
        for (name, _) in files {
            for c in catalogue.concepts().filter(|c| c.domain == *name) {
                let have = by_concept.get(&c.slug).map_or(0, Vec::len);
                if have < MIN_PER_CONCEPT {
                    let concept = c.slug.clone();
                    let problem = Problem::TooFewChecks { concept, have };
                    return Err(BankError::new(name, None, problem));
                }
            }
        }
        Ok(Self { by_concept, by_id })
    }
}

/// Every catalogue domain has a file among `files`.
fn every_domain_has_a_file(files: &[(&str, &str)], catalogue: &Catalogue) -> Result<(), BankError> {
    match catalogue
        .domains
        .iter()
        .find(|d| !files.iter().any(|(name, _)| *name == d.slug))
    {
        Some(d) => Err(BankError::new(
            &d.slug,
            None,
            Problem::MissingDomain(d.slug.clone()),
        )),
        None => Ok(()),
    }
}

/// One check on its own: id, concept, lengths, and its answer key.
fn validate(raw: RawCheck, domain: &str, catalogue: &Catalogue) -> Result<Check, Problem> {
    let concept = catalogue
        .get(&raw.concept)
        .ok_or_else(|| Problem::UnknownConcept(raw.concept.clone()))?;
    if concept.domain != domain {
        return Err(Problem::ForeignConcept {
            concept: raw.concept,
            domain: concept.domain.clone(),
        });
    }
    let number = raw.id.strip_prefix(&format!("{}-", raw.concept));
    if !number.is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) {
        return Err(Problem::BadId {
            concept: raw.concept,
        });
    }
    text("prompt", &raw.prompt, MAX_PROMPT)?;
    text("explanation", &raw.explanation, MAX_EXPLANATION)?;
    let answer = match (raw.options, raw.answer, raw.accepted) {
        (Some(options), Some(answer), None) => choice(options, answer)?,
        (Some(_), None, None) => return Err(Problem::MissingAnswer),
        (None, None, Some(accepted)) => short(accepted)?,
        _ => return Err(Problem::Shape),
    };
    Ok(Check {
        id: raw.id,
        concept: raw.concept,
        prompt: raw.prompt,
        answer,
        explanation: raw.explanation,
    })
}

/// The form prompts and options are compared in to find duplicates: lower
/// case, whitespace collapsed. Punctuation is kept, since in code it
/// matters (`a & b` and `a | b` are different options).
pub(crate) fn squash(text: &str) -> String {
    text.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

fn text(field: &'static str, value: &str, max: usize) -> Result<(), Problem> {
    let len = value.chars().count();
    if value.trim().is_empty() {
        Err(Problem::Empty { field })
    } else if len > max {
        Err(Problem::TooLong { field, len, max })
    } else {
        Ok(())
    }
}

fn choice(options: Vec<String>, answer: usize) -> Result<Answer, Problem> {
    if !(MIN_OPTIONS..=MAX_OPTIONS).contains(&options.len()) {
        return Err(Problem::OptionCount(options.len()));
    }
    if answer >= options.len() {
        let last = options.len() - 1;
        return Err(Problem::AnswerOutOfRange { answer, last });
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, o) in options.iter().enumerate() {
        text("options", o, MAX_OPTION)?;
        if let Some(j) = seen.insert(squash(o), i) {
            return Err(Problem::DuplicateOption(j, i));
        }
    }
    Ok(Answer::Choice {
        options,
        correct: answer,
    })
}

fn short(accepted: Vec<String>) -> Result<Answer, Problem> {
    if !(1..=MAX_ACCEPTED).contains(&accepted.len()) {
        return Err(Problem::AcceptedCount(accepted.len()));
    }
    let mut seen: HashMap<String, &str> = HashMap::new();
    for a in &accepted {
        text("accepted", a, MAX_ACCEPTED_LEN)?;
        if normalise(a).is_empty() {
            return Err(Problem::Unmatchable(a.clone()));
        }
        if let Some(other) = seen.insert(normalise(a), a) {
            return Err(Problem::DuplicateAccepted(other.to_string(), a.clone()));
        }
    }
    Ok(Answer::Short { accepted })
}

#[cfg(test)]
#[path = "bank_tests.rs"]
mod tests;
