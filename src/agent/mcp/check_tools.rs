//! The MCP tools that let the coding agent offer a comprehension check
//! inline: `comprehension_check` gives a question (never its answer key),
//! `answer_check` grades the engineer's reply and records the result.
//! The daily limit, the snooze, a running turn elsewhere and the
//! cool-down apply as they do to every offered check (`checks::due`).
//! The engineer's reply is graded in memory (or by the appliance's model)
//! and dropped: never stored or logged.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::agent::checks::{self, Ask, Context, Target};
use crate::agent::store::{LocalStore, Via};
use crate::checks::Bank;

/// What the agent is told to do with a question.
pub const HOW_TO_ASK: &str = "Finish your reply first. Then show the engineer this question (and, for multiple choice, the numbered options) exactly as given, say it is optional, and end your turn: do not answer it, hint at it or explain the concept before they reply. When they reply, call `answer_check` with `check_id` and their reply as they wrote it (the option's number, or their words), then show them the feedback and the explanation.";

/// Input of `comprehension_check`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckInput {
    /// A catalogue concept slug you just worked with (e.g. `git-rebase`).
    /// Without it, the concept most due for a check.
    #[serde(default)]
    pub concept: Option<String>,
}

/// A question for the engineer, without its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Question {
    pub check_id: String,
    pub concept: String,
    pub title: String,
    /// `choice` (answer with an option's number) or `short` (a few words).
    pub kind: String,
    pub prompt: String,
    /// The options, to be shown numbered from 1; none for `short`.
    pub options: Option<Vec<String>>,
}

/// Answer of `comprehension_check`: a question, or why there is none now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct CheckOffer {
    pub question: Option<Question>,
    /// How to ask it, or why no check may be asked now.
    pub note: String,
}

/// Input of `answer_check`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerInput {
    /// The `check_id` `comprehension_check` gave.
    pub check_id: String,
    /// The engineer's reply as they wrote it: an option's number (1-based)
    /// or letter, or their answer in words.
    pub answer: String,
}

/// Answer of `answer_check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct CheckResult {
    pub concept: String,
    pub right: bool,
    /// FSRS grade: 1 again, 2 hard, 3 good, 4 easy.
    pub grade: u8,
    pub feedback: String,
    pub right_answer: String,
    pub explanation: String,
    /// `check_passed` or `check_failed`, recorded in the engineer's graph.
    pub recorded: String,
}

/// A runtime for one tool call's network requests (the tools run on the
/// blocking pool with the store open).
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the network runtime: {e}"))
}

/// `comprehension_check`.
///
/// # Errors
/// An unknown concept; no check anywhere for it; store errors.
pub fn offer(
    store: &mut LocalStore,
    bank: &Bank,
    input: &CheckInput,
    now: DateTime<Utc>,
) -> Result<CheckOffer, String> {
    let cx = Context {
        bank,
        offline: false,
        via: Via::Mcp,
    };
    let target = input
        .concept
        .as_deref()
        .map_or(Target::Due, Target::Offered);
    let asked = runtime()?
        .block_on(checks::ask(store, &cx, target, now))
        .map_err(|e| e.to_string())?;
    match asked {
        Ask::Nothing(why) => Ok(CheckOffer {
            question: None,
            note: why,
        }),
        Ask::Asked(a) => {
            let c = &a.check;
            let title = store
                .catalogue()
                .map_err(|e| e.to_string())?
                .get(&c.concept)
                .map_or(c.concept.clone(), |k| k.title.clone());
            Ok(CheckOffer {
                question: Some(Question {
                    check_id: c.id.clone(),
                    concept: c.concept.clone(),
                    title,
                    kind: c.kind.clone(),
                    prompt: c.prompt.clone(),
                    options: c.options.clone(),
                }),
                note: HOW_TO_ASK.into(),
            })
        }
    }
}

/// `answer_check`.
///
/// # Errors
/// No such check waiting; an unreadable reply; a reply in words the
/// appliance could not grade (nothing recorded); store errors.
pub fn answer(
    store: &mut LocalStore,
    input: &AnswerInput,
    now: DateTime<Utc>,
) -> Result<CheckResult, String> {
    let (check, offer) = checks::waiting(store, &input.check_id, now).map_err(|e| e.to_string())?;
    let reply = checks::parse_reply(&check, &input.answer).map_err(|e| e.to_string())?;
    let done = runtime()?
        .block_on(checks::answer(store, &check, offer, &reply, now))
        .map_err(|e| e.to_string())?;
    Ok(CheckResult {
        concept: check.concept,
        right: done.graded.right,
        grade: done.graded.grade,
        feedback: done.graded.feedback,
        right_answer: done.graded.right_answer,
        explanation: done.graded.explanation,
        recorded: done.recorded.transition.as_str().to_string(),
    })
}
