//! The question service for paired devices: one check for a concept
//! ([`Checks::next`]) and the grade of an answer ([`Checks::grade`]), plus
//! the admin's view of the checks the model wrote ([`list_generated`],
//! [`retire`], [`restore`]).
//!
//! Policy (`docs/checks.md`): while a concept has fewer than
//! [`GENERATE_UNTIL`] active generated checks and a model is configured,
//! `next` asks the model for a new one from the concept's slug, title,
//! summary and prerequisites only; a valid answer is stored with its
//! provenance (model, time, prompt hash; never who asked) and served.
//! Otherwise, or when the model fails in any way, one check is drawn at
//! random from the bank's and the stored generated ones. A request waits
//! for the model at most `model.generate_wait_secs`; a check the model is
//! still writing then is stored when it comes, for the next request, and
//! only one is written per concept at a time ([`Writing`]). Grading by the
//! key needs no model; a free-text answer the key cannot decide goes to
//! the model, and is neither stored nor logged.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use rand::seq::IndexedRandom;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::catalogue::OrgConcepts;
use crate::checks::{Answer, Bank, Check, Response};
use crate::clock::{from_millis, to_millis};
use crate::model::generate::{self, Brief, Draft};
use crate::model::{ModelClient, ModelError, grade as model_grade};
use crate::skill::Catalogue;
use crate::store::generated_checks::{self as sql, GeneratedRow};
use crate::store::{OrgDb, Store, StoreError};
use crate::users::AdminCtx;

/// Active generated checks a concept gets before the model is no longer
/// asked for more of it.
pub const GENERATE_UNTIL: usize = 5;
/// Longest free-text answer graded, in characters.
pub const MAX_ANSWER: usize = 2_000;
/// FSRS ratings of a keyed grade.
const RIGHT: u8 = 3;
const WRONG: u8 = 1;

/// Why the service could not answer. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("no concept `{0}` in this organisation; GET /api/v1/concepts lists them")]
    UnknownConcept(String),
    #[error("the concept `{0}` is retired: its org retired it, so no check is served for it")]
    RetiredConcept(String),
    #[error(
        "no check for `{0}`: the question bank has none for it and no model could write one (configure [model], see docs/checks.md)"
    )]
    NoCheck(String),
    #[error("no check `{0}`; use the id GET /api/v1/checks/next gave")]
    UnknownCheck(String),
    /// A request that does not fit the check; the message says how.
    #[error("{0}")]
    Invalid(String),
    #[error(
        "a model is not configured, so free-text answers cannot be graded: add a [model] section (base_url, model) to the configuration and restart (docs/operations.md, \"A local model\")"
    )]
    NoModel,
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blocking task running a database step panicked (a bug).
    #[error("a worker thread failed: {0}")]
    Worker(String),
}

impl From<rusqlite::Error> for ServiceError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Where a served check came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Source {
    Bank,
    Generated {
        model: String,
        created_at: DateTime<Utc>,
        prompt_sha256: String,
    },
}

/// A check as served, its key included: the engineer's kernel grades a
/// multiple-choice answer itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub check: Check,
    pub source: Source,
}

impl Served {
    /// The JSON of `GET /api/v1/checks/next`.
    pub fn to_json(&self) -> serde_json::Value {
        let c = &self.check;
        let (kind, options, answer) = match &c.answer {
            Answer::Choice { options, correct } => {
                ("choice", json!(options), json!({ "correct": correct }))
            }
            Answer::Short { accepted } => (
                "short",
                serde_json::Value::Null,
                json!({ "accepted": accepted }),
            ),
        };
        let mut v = json!({
            "id": c.id, "concept": c.concept, "kind": kind, "prompt": c.prompt,
            "options": options, "answer": answer, "explanation": c.explanation,
        });
        if let (Some(obj), serde_json::Value::Object(src)) = (v.as_object_mut(), json!(self.source))
        {
            obj.extend(src);
        }
        v
    }
}

/// A generated check as admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GeneratedCheck {
    pub id: String,
    pub concept: String,
    pub prompt: String,
    pub options: Vec<String>,
    pub correct: usize,
    pub explanation: String,
    pub model: String,
    pub prompt_sha256: String,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

impl GeneratedCheck {
    fn from_row(r: GeneratedRow) -> Self {
        Self {
            options: serde_json::from_str(&r.options).unwrap_or_default(),
            correct: usize::try_from(r.correct).unwrap_or(usize::MAX),
            created_at: from_millis(r.created_at),
            retired_at: r.retired_at.map(from_millis),
            id: r.id,
            concept: r.concept,
            prompt: r.prompt,
            explanation: r.explanation,
            model: r.model,
            prompt_sha256: r.prompt_sha256,
        }
    }

    fn served(self) -> Served {
        Served {
            check: Check {
                id: self.id,
                concept: self.concept,
                prompt: self.prompt,
                answer: Answer::Choice {
                    options: self.options,
                    correct: self.correct,
                },
                explanation: self.explanation,
            },
            source: Source::Generated {
                model: self.model,
                created_at: self.created_at,
                prompt_sha256: self.prompt_sha256,
            },
        }
    }
}

/// What `next` may serve for one concept.
#[derive(Debug, Clone)]
pub struct Pool {
    pub brief: Brief,
    pub bank: Vec<Check>,
    pub generated: Vec<GeneratedCheck>,
}

impl Pool {
    /// Whether the model should be asked for another check.
    pub fn wants_generation(&self) -> bool {
        self.generated.len() < GENERATE_UNTIL
    }

    /// One check drawn with `rng`, bank and generated alike.
    pub fn pick(self, rng: &mut impl rand::Rng) -> Option<Served> {
        let mut all: Vec<Served> = self
            .bank
            .into_iter()
            .map(|check| Served {
                check,
                source: Source::Bank,
            })
            .collect();
        all.extend(self.generated.into_iter().map(GeneratedCheck::served));
        let i = (0..all.len()).collect::<Vec<_>>().choose(rng).copied()?;
        Some(all.swap_remove(i))
    }
}

/// The concept `slug` as the model may be told about it, and the checks
/// already there for it.
///
/// # Errors
/// [`ServiceError::UnknownConcept`], [`ServiceError::RetiredConcept`], store errors.
pub fn pool(
    org: &OrgDb,
    catalogue: &Catalogue,
    bank: &Bank,
    slug: &str,
) -> Result<Pool, ServiceError> {
    let concepts = OrgConcepts::load(catalogue, org)?;
    let shown = || slug.chars().filter(|c| !c.is_control()).take(64).collect();
    let concept = concepts
        .get(slug)
        .ok_or_else(|| ServiceError::UnknownConcept(shown()))?;
    if concepts.retired_at(slug).is_some() {
        return Err(ServiceError::RetiredConcept(shown()));
    }
    let brief = Brief {
        slug: concept.slug.clone(),
        title: concept.title.clone(),
        summary: concept.summary.clone(),
        prerequisites: concept
            .prerequisites
            .iter()
            .map(|p| {
                concepts
                    .get(p)
                    .map_or_else(|| p.clone(), |c| c.title.clone())
            })
            .collect(),
    };
    let generated = org
        .db
        .read(|c| sql::active_for(c, slug).map_err(StoreError::from))?;
    Ok(Pool {
        brief,
        bank: bank.for_concept(slug).to_vec(),
        generated: generated
            .into_iter()
            .map(GeneratedCheck::from_row)
            .collect(),
    })
}

/// Stores a check `model` wrote, and answers it as served.
///
/// # Errors
/// Store errors.
pub fn store_generated(
    org: &OrgDb,
    draft: Draft,
    model: &str,
    now: DateTime<Utc>,
) -> Result<Served, ServiceError> {
    let row = GeneratedRow {
        id: format!("gen-{}", uuid::Uuid::new_v4().simple()),
        concept: draft.concept,
        prompt: draft.prompt,
        options: json!(draft.options).to_string(),
        correct: i64::try_from(draft.correct).unwrap_or(i64::MAX),
        explanation: draft.explanation,
        model: model.to_string(),
        prompt_sha256: generate::prompt_sha256(),
        created_at: to_millis(now),
        retired_at: None,
    };
    org.db
        .write(|tx| sql::insert(tx, &row).map_err(StoreError::from))?;
    Ok(GeneratedCheck::from_row(row).served())
}

/// A request to grade: exactly one of `choice` and `answer`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradeRequest {
    pub check_id: String,
    pub choice: Option<usize>,
    pub answer: Option<String>,
}

impl std::fmt::Display for GradeRequest {
    /// Never the answer.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "grade request for {}", self.check_id)
    }
}

/// A grade on FSRS's scale, and feedback for the engineer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grade {
    pub grade: u8,
    pub feedback: String,
    /// `key` (the check's own answer key) or `model`.
    pub graded_by: &'static str,
}

/// How [`Checks::grade`] will grade a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Decided by the check's key.
    Keyed(Grade),
    /// Free text the key cannot decide: the model grades it.
    NeedsModel,
}

/// Grades by the check's key what the key can decide.
///
/// # Errors
/// [`ServiceError::Invalid`] for a request that does not fit the check.
pub fn keyed(check: &Check, req: &GradeRequest) -> Result<Verdict, ServiceError> {
    let feedback = |right: bool| {
        let lead = if right { "Right." } else { "Not quite." };
        format!("{lead} {}", check.explanation)
    };
    let keyed = |right: bool| {
        Verdict::Keyed(Grade {
            grade: if right { RIGHT } else { WRONG },
            feedback: feedback(right),
            graded_by: "key",
        })
    };
    match (&check.answer, req.choice, req.answer.as_deref()) {
        (_, Some(_), Some(_)) | (_, None, None) => Err(ServiceError::Invalid(
            "send exactly one of `choice` (an option's index) and `answer` (free text)".into(),
        )),
        (Answer::Choice { options, .. }, Some(i), None) => {
            if i >= options.len() {
                return Err(ServiceError::Invalid(format!(
                    "choice {i} is not an option; the check has options 0 to {}",
                    options.len() - 1
                )));
            }
            Ok(keyed(check.is_right(Response::Choice(i))))
        }
        (Answer::Short { .. }, Some(_), None) => Err(ServiceError::Invalid(
            "this is a short-answer check: send `answer` as text, not `choice`".into(),
        )),
        (_, None, Some(text)) => {
            let n = text.chars().count();
            if text.trim().is_empty() || n > MAX_ANSWER {
                return Err(ServiceError::Invalid(format!(
                    "`answer` must hold 1 to {MAX_ANSWER} characters of text"
                )));
            }
            if check.is_right(Response::Text(text)) {
                Ok(keyed(true))
            } else {
                Ok(Verdict::NeedsModel)
            }
        }
    }
}

/// The check with this id: the bank's, or one the org's model wrote
/// (retired ones included, so an answer to one served just before its
/// retirement is still graded).
///
/// # Errors
/// [`ServiceError::UnknownCheck`], store errors.
pub fn find(org: &OrgDb, bank: &Bank, id: &str) -> Result<Check, ServiceError> {
    if let Some(c) = bank.get(id) {
        return Ok(c.clone());
    }
    let unknown =
        || ServiceError::UnknownCheck(id.chars().filter(|c| !c.is_control()).take(64).collect());
    if !id.starts_with("gen-") {
        return Err(unknown());
    }
    let row = org
        .db
        .read(|c| sql::get(c, id).map_err(StoreError::from))?
        .ok_or_else(unknown)?;
    Ok(GeneratedCheck::from_row(row).served().check)
}

/// The service's dependencies. Cheap to clone.
#[derive(Clone)]
pub struct Checks {
    pub store: Arc<Store>,
    pub catalogue: Arc<Catalogue>,
    pub bank: Arc<Bank>,
    pub model: Option<Arc<ModelClient>>,
    pub writing: Arc<Writing>,
}

/// The (org, concept) pairs the model is writing a check for right now:
/// one call at a time per concept, however many engineers ask meanwhile
/// (they are served what is there), so a slow model is not sent a queue
/// of the same question.
#[derive(Debug, Default)]
pub struct Writing(Mutex<HashSet<(String, String)>>);

/// A concept claimed in [`Writing`] until this is dropped.
struct Claim {
    writing: Arc<Writing>,
    key: (String, String),
}

impl Writing {
    fn claim(self: &Arc<Self>, org: &str, slug: &str) -> Option<Claim> {
        let key = (org.to_string(), slug.to_string());
        let mut set = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        set.insert(key.clone()).then(|| Claim {
            writing: Arc::clone(self),
            key,
        })
    }

    /// Whether the model is writing a check about `slug` for `org`.
    pub fn is_writing(&self, org: &str, slug: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&(org.to_string(), slug.to_string()))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.writing
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

/// Asks the model for a check about `brief` and stores it: `None` when the
/// model failed (logged and counted by the client) or it could not be
/// stored (logged). Runs on its own task, so it finishes and stores the
/// check even when the request that started it has been answered.
async fn write_check(
    checks: Checks,
    model: Arc<ModelClient>,
    org: String,
    brief: Brief,
    now: DateTime<Utc>,
    claim: Claim,
) -> Option<Served> {
    let asked = generate::request(&brief);
    let draft = model
        .complete(&asked, |v| generate::parse(v, &brief.slug))
        .await
        .ok()?;
    let name = model.model_name().to_string();
    let stored =
        blocking(move || store_generated(checks.store.org(&org)?, draft, &name, now)).await;
    drop(claim);
    match stored {
        Ok(served) => Some(served),
        Err(e) => {
            tracing::warn!(concept = %brief.slug, error = %e, "a check the model wrote could not be stored");
            None
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServiceError::Worker(e.to_string()))?
}

impl Checks {
    /// One check about `slug` for `org` (see the module's policy). A model
    /// that fails in any way is logged by the client and counted; the
    /// caller gets a stored or bank check instead.
    ///
    /// # Errors
    /// An unknown or retired concept, no check at all, store errors.
    pub async fn next(
        &self,
        org: &str,
        slug: &str,
        now: DateTime<Utc>,
    ) -> Result<Served, ServiceError> {
        let (me, org_slug, slug) = (self.clone(), org.to_string(), slug.to_string());
        let pool = blocking(move || pool(me.store.org(&org_slug)?, &me.catalogue, &me.bank, &slug))
            .await?;
        if let Some(model) = &self.model
            && pool.wants_generation()
            && let Some(claim) = self.writing.claim(org, &pool.brief.slug)
        {
            let job = tokio::spawn(write_check(
                self.clone(),
                Arc::clone(model),
                org.to_string(),
                pool.brief.clone(),
                now,
                claim,
            ));
            match tokio::time::timeout(model.generate_wait(), job).await {
                Ok(Ok(Some(served))) => return Ok(served),
                // Refused, failed or not stored: logged; fall back.
                Ok(_) => {}
                Err(_) => tracing::info!(
                    concept = %pool.brief.slug,
                    wait_secs = model.generate_wait().as_secs(),
                    "the model is still writing a check: served one of those there; the model's is kept when it comes"
                ),
            }
        }
        let slug = pool.brief.slug.clone();
        pool.pick(&mut rand::rng())
            .ok_or(ServiceError::NoCheck(slug))
    }

    /// Grades `req` for `org`: by the key when it decides, else by the
    /// model. The answer is neither stored nor logged.
    ///
    /// # Errors
    /// An unknown check, a request that does not fit it,
    /// [`ServiceError::NoModel`] for free text without a model, the
    /// model's failure.
    pub async fn grade(&self, org: &str, req: GradeRequest) -> Result<Grade, ServiceError> {
        let (me, org, id) = (self.clone(), org.to_string(), req.check_id.clone());
        let check = blocking(move || find(me.store.org(&org)?, &me.bank, &id)).await?;
        match keyed(&check, &req)? {
            Verdict::Keyed(g) => Ok(g),
            Verdict::NeedsModel => {
                let model = self.model.as_ref().ok_or(ServiceError::NoModel)?;
                let answer = req.answer.as_deref().unwrap_or_default();
                let g = model
                    .complete(&model_grade::request(&check, answer), model_grade::parse)
                    .await?;
                Ok(Grade {
                    grade: g.grade,
                    feedback: g.feedback,
                    graded_by: "model",
                })
            }
        }
    }
}

/// The org's generated checks, retired ones included, newest first;
/// optionally of one concept.
///
/// # Errors
/// Store errors.
pub fn list_generated(
    org: &OrgDb,
    concept: Option<&str>,
) -> Result<Vec<GeneratedCheck>, ServiceError> {
    let rows = org
        .db
        .read(|c| sql::all(c, concept).map_err(StoreError::from))?;
    Ok(rows.into_iter().map(GeneratedCheck::from_row).collect())
}

/// Stops serving a generated check; audited as `check.retire`.
///
/// # Errors
/// [`ServiceError::UnknownCheck`]; [`ServiceError::Conflict`] when retired already.
pub fn retire(
    org: &OrgDb,
    admin: &AdminCtx,
    id: &str,
    now: DateTime<Utc>,
) -> Result<GeneratedCheck, ServiceError> {
    set_retired(org, admin, id, Some(now), now)
}

/// Serves a retired generated check again; audited as `check.restore`.
///
/// # Errors
/// [`ServiceError::UnknownCheck`]; [`ServiceError::Conflict`] when active.
pub fn restore(
    org: &OrgDb,
    admin: &AdminCtx,
    id: &str,
    now: DateTime<Utc>,
) -> Result<GeneratedCheck, ServiceError> {
    set_retired(org, admin, id, None, now)
}

fn set_retired(
    org: &OrgDb,
    admin: &AdminCtx,
    id: &str,
    retired_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<GeneratedCheck, ServiceError> {
    org.db.write(|tx| {
        let mut g = sql::get(tx, id)?
            .map(GeneratedCheck::from_row)
            .ok_or_else(|| ServiceError::UnknownCheck(id.chars().take(64).collect()))?;
        match (g.retired_at, retired_at) {
            (Some(at), Some(_)) => {
                return Err(ServiceError::Conflict(format!(
                    "`{id}` is retired already (since {})",
                    at.to_rfc3339()
                )));
            }
            (None, None) => {
                return Err(ServiceError::Conflict(format!(
                    "`{id}` is not retired, so there is nothing to restore"
                )));
            }
            _ => {}
        }
        sql::set_retired(tx, id, retired_at.map(to_millis))?;
        g.retired_at = retired_at;
        let action = if retired_at.is_some() {
            "check.retire"
        } else {
            "check.restore"
        };
        admin
            .audit()
            .record(tx, action, Some(id), &json!({ "concept": g.concept }), now)?;
        Ok(g)
    })
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
