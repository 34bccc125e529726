//! The org's own concepts (admins only): list, add, edit, retire and
//! restore, through `crate::catalogue::custom` (the functions behind
//! `/api/v1/org/concepts`, which check and audit every change). Thin: the
//! form is turned into a concept by plain functions, tested below.

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::PageError;
use super::account::CsrfOnly;
use super::extract::{AdminSession, AdminViewer, check_csrf};
use super::pages::render;
use crate::catalogue::custom::{self, ConceptChanges, ConceptError, CustomConcept};
use crate::http::AppState;
use crate::skill::Concept;
use crate::skill::catalogue::Matchers;

/// The fields of the concept form, as typed (lists comma-separated).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ConceptFields {
    #[serde(default)]
    pub slug: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub domain: String,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub prerequisites: String,
    #[serde(default)]
    pub related: String,
    #[serde(default)]
    pub keywords: String,
    #[serde(default)]
    pub imports: String,
    #[serde(default)]
    pub apis: String,
    #[serde(default)]
    pub extensions: String,
}

/// A comma-separated list: each item trimmed, empty ones dropped.
fn items(s: &str) -> Vec<String> {
    s.split([',', '\n'])
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(str::to_string)
        .collect()
}

impl ConceptFields {
    /// The concept the form describes (checked by `custom::add`).
    pub fn concept(&self) -> Concept {
        Concept {
            slug: self.slug.trim().to_string(),
            title: self.title.trim().to_string(),
            domain: self.domain.trim().to_string(),
            summary: self.summary.trim().to_string(),
            prerequisites: items(&self.prerequisites),
            related: items(&self.related),
            matchers: Matchers {
                extensions: items(&self.extensions),
                imports: items(&self.imports),
                keywords: items(&self.keywords),
                apis: items(&self.apis),
            },
        }
    }

    /// Every field of the form as a change (checked by `custom::update`).
    pub fn changes(&self) -> ConceptChanges {
        let c = self.concept();
        ConceptChanges {
            title: Some(c.title),
            domain: Some(c.domain),
            summary: Some(c.summary),
            prerequisites: Some(c.prerequisites),
            related: Some(c.related),
            matchers: Some(c.matchers),
        }
    }

    /// The form filled in with `c`.
    pub fn of(c: &Concept) -> Self {
        Self {
            slug: c.slug.clone(),
            title: c.title.clone(),
            domain: c.domain.clone(),
            summary: c.summary.clone(),
            prerequisites: c.prerequisites.join(", "),
            related: c.related.join(", "),
            keywords: c.matchers.keywords.join(", "),
            imports: c.matchers.imports.join(", "),
            apis: c.matchers.apis.join(", "),
            extensions: c.matchers.extensions.join(", "),
        }
    }
}

/// A refused change as one line naming the field, or the page's error.
fn refusal(e: ConceptError) -> Result<String, PageError> {
    match e {
        ConceptError::Invalid { field, message } => {
            Ok(format!("Nothing was saved: {field}: {message}."))
        }
        ConceptError::Conflict(m) => Ok(format!("Nothing was saved: {m}.")),
        ConceptError::NotFound(_) => Err(PageError::NotFound),
        ConceptError::Store(s) => Err(s.into()),
    }
}

pub struct ConceptLine {
    pub slug: String,
    pub title: String,
    pub domain: String,
    pub retired: bool,
    pub updated: String,
}

#[derive(Template)]
#[template(path = "admin_concepts.html")]
pub struct ConceptsPage {
    pub org_slug: String,
    pub org_name: String,
    pub csrf: String,
    pub notice: Option<String>,
    pub error: Option<String>,
    pub concepts: Vec<ConceptLine>,
    pub f: ConceptFields,
}

#[derive(Template)]
#[template(path = "admin_concept.html")]
pub struct ConceptPage {
    pub org_slug: String,
    pub org_name: String,
    pub csrf: String,
    pub notice: Option<String>,
    pub error: Option<String>,
    pub retired: bool,
    pub f: ConceptFields,
}

#[derive(Debug, Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
}

fn notice(done: Option<&str>) -> Option<String> {
    done.map(|d| {
        match d {
            "created" => "Concept added: the kernel tags work with it from its next sync.",
            "retired" => "Concept retired: no new tagging; what was recorded is kept.",
            "restored" => "Concept restored: it is active again.",
            _ => "Changes saved.",
        }
        .to_string()
    })
}

async fn concepts_page(
    state: &AppState,
    admin: &AdminViewer,
    notice: Option<String>,
    error: Option<String>,
    f: ConceptFields,
) -> Result<Response, PageError> {
    let who = &admin.who;
    let st = state.clone();
    let slug = who.org.slug.to_string();
    let held = tokio::task::spawn_blocking(move || custom::list(st.store.org(&slug)?))
        .await
        .map_err(PageError::internal)??;
    let failed = error.is_some();
    let mut res = render(&ConceptsPage {
        org_slug: who.org.slug.to_string(),
        org_name: who.org.name.clone(),
        csrf: who.session.csrf.clone(),
        notice,
        error,
        concepts: held
            .into_iter()
            .map(|c: CustomConcept| ConceptLine {
                retired: c.retired_at.is_some(),
                updated: c.updated_at.format("%Y-%m-%d %H:%M UTC").to_string(),
                slug: c.concept.slug,
                title: c.concept.title,
                domain: c.concept.domain,
            })
            .collect(),
        f,
    });
    if failed {
        *res.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(res)
}

pub async fn get_concepts(
    State(state): State<AppState>,
    Query(q): Query<DoneQuery>,
    admin: AdminViewer,
) -> Result<Response, PageError> {
    concepts_page(
        &state,
        &admin,
        notice(q.done.as_deref()),
        None,
        ConceptFields::default(),
    )
    .await
}

#[derive(Debug, Deserialize)]
pub struct ConceptForm {
    csrf: String,
    #[serde(flatten)]
    fields: ConceptFields,
}

pub async fn post_concept(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(org): Path<String>,
    admin: AdminSession,
    Form(form): Form<ConceptForm>,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, &admin.who, &form.csrf)?;
    let st = state.clone();
    let now = state.clock.now();
    let (slug, ctx) = (org.clone(), admin.ctx.clone());
    let concept = form.fields.concept();
    let result = tokio::task::spawn_blocking(move || {
        custom::add(st.store.org(&slug)?, &st.catalogue, &ctx, concept, now)
    })
    .await
    .map_err(PageError::internal)?;
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/o/{org}/admin/concepts?done=created")).into_response()),
        Err(e) => {
            let why = refusal(e)?;
            concepts_page(&state, &admin.viewer(), None, Some(why), form.fields).await
        }
    }
}

async fn concept_page(
    state: &AppState,
    admin: &AdminViewer,
    slug: String,
    notice: Option<String>,
    error: Option<(String, ConceptFields)>,
) -> Result<Response, PageError> {
    let who = &admin.who;
    let st = state.clone();
    let org = who.org.slug.to_string();
    let held = tokio::task::spawn_blocking(move || custom::get(st.store.org(&org)?, &slug))
        .await
        .map_err(PageError::internal)?
        .map_err(|e| match e {
            ConceptError::Store(s) => PageError::from(s),
            _ => PageError::NotFound,
        })?;
    let failed = error.is_some();
    let (error, f) = match error {
        Some((why, f)) => (Some(why), f),
        None => (None, ConceptFields::of(&held.concept)),
    };
    let mut res = render(&ConceptPage {
        org_slug: who.org.slug.to_string(),
        org_name: who.org.name.clone(),
        csrf: who.session.csrf.clone(),
        notice,
        error,
        retired: held.retired_at.is_some(),
        f: ConceptFields {
            slug: held.concept.slug,
            ..f
        },
    });
    if failed {
        *res.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(res)
}

pub async fn get_concept(
    State(state): State<AppState>,
    Path((_org, slug)): Path<(String, String)>,
    Query(q): Query<DoneQuery>,
    admin: AdminViewer,
) -> Result<Response, PageError> {
    concept_page(&state, &admin, slug, notice(q.done.as_deref()), None).await
}

pub async fn post_update(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((org, slug)): Path<(String, String)>,
    admin: AdminSession,
    Form(form): Form<ConceptForm>,
) -> Result<Response, PageError> {
    check_csrf(&state, &headers, &admin.who, &form.csrf)?;
    let st = state.clone();
    let now = state.clock.now();
    let (o, s, ctx) = (org.clone(), slug.clone(), admin.ctx.clone());
    let changes = form.fields.changes();
    let result = tokio::task::spawn_blocking(move || {
        custom::update(st.store.org(&o)?, &st.catalogue, &ctx, &s, changes, now)
    })
    .await
    .map_err(PageError::internal)?;
    match result {
        Ok(_) => {
            Ok(Redirect::to(&format!("/o/{org}/admin/concepts/{slug}?done=saved")).into_response())
        }
        Err(e) => {
            let why = refusal(e)?;
            concept_page(
                &state,
                &admin.viewer(),
                slug,
                None,
                Some((why, form.fields)),
            )
            .await
        }
    }
}

async fn set_state(
    state: &AppState,
    headers: &HeaderMap,
    org: String,
    slug: String,
    admin: AdminSession,
    csrf: &str,
    retire: bool,
) -> Result<Response, PageError> {
    check_csrf(state, headers, &admin.who, csrf)?;
    let st = state.clone();
    let now = state.clock.now();
    let (o, s, ctx) = (org.clone(), slug.clone(), admin.ctx.clone());
    let result = tokio::task::spawn_blocking(move || {
        let db = st.store.org(&o)?;
        if retire {
            custom::retire(db, &ctx, &s, now)
        } else {
            custom::restore(db, &ctx, &s, now)
        }
    })
    .await
    .map_err(PageError::internal)?;
    let done = if retire { "retired" } else { "restored" };
    match result {
        Ok(_) => Ok(
            Redirect::to(&format!("/o/{org}/admin/concepts/{slug}?done={done}")).into_response(),
        ),
        Err(e) => {
            let why = refusal(e)?;
            Err(PageError::BadRequest(why))
        }
    }
}

pub async fn post_retire(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((org, slug)): Path<(String, String)>,
    admin: AdminSession,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    set_state(&state, &headers, org, slug, admin, &form.csrf, true).await
}

pub async fn post_restore(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((org, slug)): Path<(String, String)>,
    admin: AdminSession,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    set_state(&state, &headers, org, slug, admin, &form.csrf, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_becomes_a_concept_and_back() {
        let f = ConceptFields {
            slug: " x-ledger ".into(),
            title: "Ledger".into(),
            domain: "x-billing".into(),
            summary: "Double entry.".into(),
            prerequisites: "rust-ownership, , rust-traits".into(),
            related: String::new(),
            keywords: "ledger,\njournal".into(),
            imports: "ledger_core".into(),
            apis: String::new(),
            extensions: ".ldg".into(),
        };
        let c = f.concept();
        assert_eq!(c.slug, "x-ledger");
        assert_eq!(c.prerequisites, ["rust-ownership", "rust-traits"]);
        assert!(c.related.is_empty());
        assert_eq!(c.matchers.keywords, ["ledger", "journal"]);
        let back = ConceptFields::of(&c);
        assert_eq!(back.prerequisites, "rust-ownership, rust-traits");
        assert_eq!(back.keywords, "ledger, journal");
        assert_eq!(
            f.changes().matchers.expect("matchers").imports,
            ["ledger_core"]
        );
    }
}
