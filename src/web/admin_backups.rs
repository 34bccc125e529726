//! The backups status page (admins only). Thin: the status is
//! `crate::backup::status`'s.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::PageError;
use super::extract::AdminViewer;
use super::pages::render;
use crate::http::AppState;

#[derive(Template)]
#[template(path = "admin_backups.html")]
pub struct BackupsPage {
    pub org_slug: String,
    pub org_name: String,
    pub csrf: String,
    pub dir: String,
    pub problem: Option<String>,
    pub last_success: String,
    pub next_run: String,
    pub kept_summary: String,
    pub last_drill: String,
    pub drill_passed: Option<bool>,
    pub advice: Option<String>,
    /// Made, covers, size, file name; newest first.
    pub kept: Vec<(String, String, String, String)>,
}

fn size(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    #[allow(clippy::cast_precision_loss)]
    let b = bytes as f64;
    if b >= MIB {
        format!("{:.1} MiB", b / MIB)
    } else {
        format!("{:.1} KiB", b / 1024.0)
    }
}

pub async fn get_backups(
    State(state): State<AppState>,
    admin: AdminViewer,
) -> Result<Response, PageError> {
    let who = &admin.who;
    let now = state.clock.now();
    let st = state.clone();
    let s = tokio::task::spawn_blocking(move || {
        crate::backup::status::status(&st.settings.backup, now)
    })
    .await
    .map_err(PageError::internal)?;
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    let file = |p: &std::path::Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let advice = if !s.scheduled {
        Some(
            "set backup.recipients in the configuration: scheduled backups are off without it"
                .to_string(),
        )
    } else if s.last_success.is_none() {
        Some("no archive yet: the first one is made at the next scheduled run, or by `aiworklab backup create`".into())
    } else if !s.last_drill.as_ref().is_some_and(|d| d.passed) {
        Some("run `aiworklab drill --identity backup.key` where the identity is kept: it restores the newest archive into a throwaway instance and tests it".into())
    } else {
        None
    };
    Ok(render(&BackupsPage {
        org_slug: who.org.slug.to_string(),
        org_name: who.org.name.clone(),
        csrf: who.session.csrf.clone(),
        dir: state.settings.backup.dir.display().to_string(),
        last_success: s.last_success.as_ref().map_or_else(
            || "none in the backup directory".into(),
            |a| {
                format!(
                    "{} ({}, {})",
                    fmt(a.created_at),
                    file(&a.path),
                    size(a.size)
                )
            },
        ),
        next_run: match s.next_run {
            Some(t) => fmt(t),
            None => "none: scheduled backups are off (backup.recipients is empty)".into(),
        },
        kept_summary: format!(
            "{} archive(s), {} in all; archives older than {} days are deleted after each scheduled run (backup.retention_days)",
            s.kept.len(),
            size(s.kept.iter().map(|a| a.size).sum()),
            s.retention_days
        ),
        last_drill: s.last_drill.as_ref().map_or_else(
            || "none recorded on this machine".into(),
            |d| {
                format!(
                    "{} on {}, {}",
                    if d.passed { "PASSED" } else { "FAILED" },
                    fmt(d.at),
                    d.archive
                )
            },
        ),
        drill_passed: s.last_drill.as_ref().map(|d| d.passed),
        advice,
        problem: s.problem,
        kept: s
            .kept
            .iter()
            .map(|a| {
                (
                    fmt(a.created_at),
                    a.org
                        .clone()
                        .unwrap_or_else(|| "the whole installation".into()),
                    size(a.size),
                    file(&a.path),
                )
            })
            .collect(),
    }))
}
