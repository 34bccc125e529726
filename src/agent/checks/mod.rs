//! Comprehension checks in the kernel: which concepts are due (`due`),
//! whether the coding agent is mid-turn (`turn`), and asking one check:
//! fetched from the appliance's question service (the bank's or one the
//! org's model wrote), or from the question bank shipped in the binary
//! when the appliance cannot be reached; multiple choice and accepted
//! short answers graded here, offline; an answer in the engineer's own
//! words graded by the appliance's model. The result is recorded as a
//! `check_passed` or `check_failed` delta with its FSRS grade and synced
//! like every other fact. The answer itself is never stored, logged or
//! sent anywhere but to the appliance for grading.
//!
//! `aiworklab agent check` (the terminal) and the MCP tools
//! `comprehension_check` / `answer_check` are the two ways in; both go
//! through [`ask`] and [`answer`].

pub mod due;
pub mod present;
pub mod turn;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::error::AgentError;
use super::store::{LocalStore, Recorded, Via};
use super::sync::Session;
use crate::checks::{Answer, Bank, Check, Response as KeyResponse};
use due::{Input, Plan};

/// An MCP check not answered within this is given up (not graded).
pub const ANSWER_WITHIN: Duration = Duration::hours(24);
/// The longest answer sent for grading, in characters.
pub const MAX_ANSWER: usize = 2000;

/// A check as the question service serves it (`GET /api/v1/checks/next`),
/// and as the kernel keeps it while an answer is awaited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedCheck {
    pub id: String,
    pub concept: String,
    /// `choice` or `short`.
    pub kind: String,
    pub prompt: String,
    #[serde(default)]
    pub options: Option<Vec<String>>,
    pub answer: ServedKey,
    pub explanation: String,
    /// `bank` or `generated`.
    #[serde(default = "bank_source")]
    pub source: String,
}

fn bank_source() -> String {
    "bank".into()
}

/// A served check's answer key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedKey {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<Vec<String>>,
}

/// The appliance's grade of an answer (`POST /api/v1/checks/grade`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteGrade {
    pub grade: u8,
    pub feedback: String,
    pub graded_by: String,
}

impl ServedCheck {
    /// A check of the shipped bank, as the service would serve it.
    pub fn from_bank(c: &Check) -> Self {
        let (kind, options, answer) = match &c.answer {
            Answer::Choice { options, correct } => (
                "choice",
                Some(options.clone()),
                ServedKey {
                    correct: Some(*correct),
                    accepted: None,
                },
            ),
            Answer::Short { accepted } => (
                "short",
                None,
                ServedKey {
                    correct: None,
                    accepted: Some(accepted.clone()),
                },
            ),
        };
        Self {
            id: c.id.clone(),
            concept: c.concept.clone(),
            kind: kind.into(),
            prompt: c.prompt.clone(),
            options,
            answer,
            explanation: c.explanation.clone(),
            source: bank_source(),
        }
    }

    /// The check with its key, checked: a choice with options and a key
    /// among them, or a short answer with accepted answers.
    ///
    /// # Errors
    /// [`AgentError::Server`] naming what the served check lacks.
    pub fn to_check(&self) -> Result<Check, AgentError> {
        let bad = |what: &str| {
            AgentError::Server(format!(
                "the check `{}` the appliance served {what}; is the appliance up to date?",
                self.id
            ))
        };
        let answer = match (self.kind.as_str(), &self.options, &self.answer) {
            (
                "choice",
                Some(options),
                ServedKey {
                    correct: Some(correct),
                    ..
                },
            ) if *correct < options.len() && options.len() >= 2 => Answer::Choice {
                options: options.clone(),
                correct: *correct,
            },
            ("choice", ..) => return Err(bad("has no options or a key outside them")),
            (
                "short",
                _,
                ServedKey {
                    accepted: Some(accepted),
                    ..
                },
            ) if !accepted.is_empty() => Answer::Short {
                accepted: accepted.clone(),
            },
            ("short", ..) => return Err(bad("has no accepted answers")),
            _ => return Err(bad(&format!("is of an unknown kind `{}`", self.kind))),
        };
        Ok(Check {
            id: self.id.clone(),
            concept: self.concept.clone(),
            prompt: self.prompt.clone(),
            answer,
            explanation: self.explanation.clone(),
        })
    }

    /// The right answer, as shown after answering.
    pub fn right_answer(&self) -> String {
        match (&self.options, &self.answer) {
            (
                Some(o),
                ServedKey {
                    correct: Some(i), ..
                },
            ) => o.get(*i).cloned().unwrap_or_default(),
            (
                _,
                ServedKey {
                    accepted: Some(a), ..
                },
            ) => a.first().cloned().unwrap_or_default(),
            _ => String::new(),
        }
    }
}

/// What the engineer answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// An option, 0-based.
    Choice(usize),
    /// Words.
    Text(String),
}

/// Reads `raw` as an answer to `check`: an option's number (1-based) or
/// letter for multiple choice, text for a short answer.
///
/// # Errors
/// [`AgentError::Invalid`] saying what to answer instead.
pub fn parse_reply(check: &ServedCheck, raw: &str) -> Result<Reply, AgentError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(AgentError::Invalid(
            "the answer is empty: give an option's number or your answer".into(),
        ));
    }
    if raw.chars().count() > MAX_ANSWER {
        return Err(AgentError::Invalid(format!(
            "the answer is longer than {MAX_ANSWER} characters: answer in a sentence or two"
        )));
    }
    match &check.options {
        Some(options) if check.kind == "choice" => {
            let n = options.len();
            let by_number = raw.parse::<usize>().ok().filter(|i| (1..=n).contains(i));
            let by_letter = (raw.len() == 1)
                .then(|| raw.to_ascii_lowercase().as_bytes()[0])
                .filter(u8::is_ascii_lowercase)
                .map(|b| usize::from(b - b'a') + 1)
                .filter(|i| (1..=n).contains(i));
            by_number
                .or(by_letter)
                .map(|i| Reply::Choice(i - 1))
                .ok_or_else(|| {
                    AgentError::Invalid(format!(
                        "answer with an option's number, 1 to {n} (or its letter, a to {})",
                        char::from(b'a' + u8::try_from(n - 1).unwrap_or(0))
                    ))
                })
        }
        _ => Ok(Reply::Text(raw.to_string())),
    }
}

/// A check's result, as shown to the engineer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Graded {
    /// FSRS grade: 1 again, 2 hard, 3 good, 4 easy.
    pub grade: u8,
    pub right: bool,
    pub feedback: String,
    /// `key` (graded here by the check's answer key) or `model` (by the
    /// appliance's model).
    pub graded_by: String,
    pub right_answer: String,
    pub explanation: String,
}

/// Grades `reply` to `check`: by its key here when it can (an option, an
/// accepted short answer), else by the appliance's model.
///
/// # Errors
/// An answer in the engineer's own words when the appliance cannot grade
/// it (not paired, unreachable, no model): nothing is recorded.
pub async fn grade(
    store: &mut LocalStore,
    check: &ServedCheck,
    reply: &Reply,
) -> Result<Graded, AgentError> {
    let keyed = check.to_check()?;
    let graded = |grade: u8, feedback: String, by: &str| Graded {
        grade,
        right: grade >= 2,
        feedback,
        graded_by: by.into(),
        right_answer: check.right_answer(),
        explanation: check.explanation.clone(),
    };
    match reply {
        Reply::Choice(i) => {
            let right = keyed.is_right(KeyResponse::Choice(*i));
            // The right answer goes with the result (`right_answer`), as
            // the appliance's keyed grades give it.
            let feedback = if right { "Right." } else { "Not quite." }.to_string();
            Ok(graded(if right { 3 } else { 1 }, feedback, "key"))
        }
        Reply::Text(t) if keyed.is_right(KeyResponse::Text(t)) => {
            Ok(graded(3, "Right.".into(), "key"))
        }
        Reply::Text(t) => {
            let remote = match Session::start(store).await {
                Ok(mut s) => s.grade(&check.id, t).await,
                Err(e) => Err(e),
            }
            .map_err(|e| {
                AgentError::Invalid(format!(
                    "your answer does not match the accepted answers, and answers in your own words are graded by the appliance's model, which could not be asked ({e}); nothing was recorded"
                ))
            })?;
            if !(1..=4).contains(&remote.grade) {
                return Err(AgentError::Server(format!(
                    "the appliance graded {} (not 1 to 4); nothing was recorded",
                    remote.grade
                )));
            }
            Ok(graded(remote.grade, remote.feedback, &remote.graded_by))
        }
    }
}

/// Which check to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// The most pressing due concept, if one may be offered now.
    Due,
    /// This concept, because the engineer asked for it (no limit applies).
    Asked(&'a str),
    /// This concept, offered by the coding agent: the limit, the snooze,
    /// a running turn and the cool-down apply.
    Offered(&'a str),
}

/// A check asked, waiting for its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub check: ServedCheck,
    /// The offer's row in the store.
    pub offer: i64,
    /// Why the shipped bank answered instead of the appliance, if it did.
    pub note: Option<String>,
}

/// What [`ask`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    Asked(Box<Asked>),
    /// No check now, and why (held, or nothing due).
    Nothing(String),
}

/// Everything [`ask`] needs besides the store.
pub struct Context<'a> {
    pub bank: &'a Bank,
    /// Only the shipped bank: no request to the appliance.
    pub offline: bool,
    pub via: Via,
}

/// The plan at `now` from the store (and the turn stamps beside it).
///
/// # Errors
/// Store errors.
pub fn plan(store: &LocalStore, now: DateTime<Utc>) -> Result<Plan, AgentError> {
    let states = store.states()?;
    let met = store.met_counts()?;
    let catalogue = store.catalogue()?;
    let offered = store.offered_since(now - due::WINDOW.max(due::COOL_DOWN))?;
    let now_sys = std::time::SystemTime::from(now);
    let input = Input {
        states: &states,
        met: &met,
        catalogue: &catalogue,
        offered: &offered,
        settings: store.check_settings()?,
        turn: store
            .path()
            .parent()
            .and_then(|d| turn::running(d, now_sys)),
    };
    Ok(due::plan(&input, now))
}

/// Picks a check about `target`, fetches it and notes the offer.
///
/// # Errors
/// An unknown concept, no check for it anywhere; store errors.
pub async fn ask(
    store: &mut LocalStore,
    cx: &Context<'_>,
    target: Target<'_>,
    now: DateTime<Utc>,
) -> Result<Ask, AgentError> {
    let concept = match target {
        Target::Due => {
            let p = plan(store, now)?;
            if let Some(h) = &p.hold {
                return Ok(Ask::Nothing(format!("No check now: {h}.")));
            }
            match p.offer().first() {
                Some(d) => d.concept.clone(),
                None => {
                    return Ok(Ask::Nothing(
                        "Nothing is due: no concept's review has come, and none met often enough is waiting for a first check. `aiworklab agent check --concept SLUG` asks about any concept.".into(),
                    ));
                }
            }
        }
        Target::Asked(c) | Target::Offered(c) => {
            let c = c.trim();
            if !store.catalogue()?.contains(c) {
                return Err(AgentError::Invalid(format!(
                    "`{}` is not a concept of your org's catalogue; `aiworklab agent status` lists the concepts you met, with their slugs",
                    c.chars().take(64).collect::<String>()
                )));
            }
            if let Target::Offered(_) = target {
                let p = plan(store, now)?;
                if let Some(h) = held(&p, store, c, now)? {
                    return Ok(Ask::Nothing(format!("No check now: {h}.")));
                }
            }
            c.to_string()
        }
    };
    let (check, note) = fetch(store, cx, &concept).await?;
    let pending = serde_json::to_string(&check)
        .map_err(|e| AgentError::Invalid(format!("cannot keep the check: {e}")))?;
    let offer = store.offer_check(&concept, &check.id, cx.via, Some(&pending), now)?;
    Ok(Ask::Asked(Box::new(Asked { check, offer, note })))
}

/// Why the coding agent may not offer a check of `concept` now.
fn held(
    p: &Plan,
    store: &LocalStore,
    concept: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>, AgentError> {
    if let Some(h) = &p.hold {
        return Ok(Some(h.to_string()));
    }
    let offered = store.offered_since(now - due::COOL_DOWN)?;
    if due::cooling(&offered, concept, now) {
        return Ok(Some(format!(
            "`{concept}` was offered in the last 24 hours; ask about it again later"
        )));
    }
    Ok(None)
}

/// A check about `concept`: the appliance's, else the shipped bank's.
async fn fetch(
    store: &mut LocalStore,
    cx: &Context<'_>,
    concept: &str,
) -> Result<(ServedCheck, Option<String>), AgentError> {
    let why_local = if cx.offline {
        "offline (--offline)".to_string()
    } else {
        let remote = match Session::start(store).await {
            Ok(mut s) => s.next_check(concept).await,
            Err(e) => Err(e),
        };
        match remote {
            Ok(c) if c.concept == concept && c.to_check().is_ok() => return Ok((c, None)),
            Ok(c) => format!(
                "the appliance served a check for `{}` that is not a well-formed check of `{concept}`",
                c.concept.chars().take(64).collect::<String>()
            ),
            Err(e) => e.to_string(),
        }
    };
    let check = from_bank(store, cx.bank, concept).map_err(|e| match e {
        AgentError::Invalid(m) => AgentError::Invalid(format!("{m} ({why_local})")),
        other => other,
    })?;
    Ok((check, Some(why_local)))
}

/// The shipped bank's check of `concept` offered least recently here.
///
/// # Errors
/// [`AgentError::Invalid`] when the bank has none (an org's own concept).
pub fn from_bank(
    store: &LocalStore,
    bank: &Bank,
    concept: &str,
) -> Result<ServedCheck, AgentError> {
    let checks = bank.for_concept(concept);
    let last = store.last_offered(concept)?;
    checks
        .iter()
        .min_by_key(|c| (last.get(&c.id).copied(), c.id.clone()))
        .map(ServedCheck::from_bank)
        .ok_or_else(|| {
            AgentError::Invalid(format!(
                "the shipped question bank has no check of `{concept}` (your org's own concepts' checks come from the appliance)"
            ))
        })
}

/// What answering did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    pub graded: Graded,
    pub recorded: Recorded,
}

/// Grades `reply` to the check offered as `offer` and records the result.
///
/// # Errors
/// See [`grade`]; store errors. Nothing is recorded on error.
pub async fn answer(
    store: &mut LocalStore,
    check: &ServedCheck,
    offer: i64,
    reply: &Reply,
    now: DateTime<Utc>,
) -> Result<Answered, AgentError> {
    let graded = grade(store, check, reply).await?;
    let recorded = store.record_check(&check.concept, graded.grade, Some(offer), now)?;
    Ok(Answered { graded, recorded })
}

/// The check offered (over MCP) as `check_id` and still waiting for its
/// answer.
///
/// # Errors
/// [`AgentError::Invalid`] when no such check waits (answered already,
/// given up after [`ANSWER_WITHIN`], or never offered).
pub fn waiting(
    store: &mut LocalStore,
    check_id: &str,
    now: DateTime<Utc>,
) -> Result<(ServedCheck, i64), AgentError> {
    let p = store
        .pending_check(check_id.trim(), now - ANSWER_WITHIN)?
        .ok_or_else(|| {
            AgentError::Invalid(format!(
                "no check `{}` is waiting for an answer: it was answered already, offered more than 24 hours ago, or never offered; call comprehension_check for a new one",
                check_id.chars().take(64).collect::<String>()
            ))
        })?;
    let check: ServedCheck = serde_json::from_str(&p.check)
        .map_err(|e| AgentError::Invalid(format!("the kept check cannot be read: {e}")))?;
    Ok((check, p.seq))
}

#[cfg(test)]
mod tests;
