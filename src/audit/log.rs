//! Reading the audit log (docs/dashboard.md, "The audit log"): filters by
//! actor, action, target and time range, checked with an error that names
//! the field and the form expected; pages of it newest first by keyset;
//! and the export of what a filter keeps as CSV or JSON Lines, which is
//! itself audited (`audit.export`, with the filters and the format) in the
//! same step that hands it out, so no export leaves without its row.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use serde_json::json;

use super::Context;
use crate::clock::to_millis;
use crate::store::audit::{self as sql, AuditRow, Search};
use crate::store::users as user_sql;
use crate::store::{OrgDb, StoreError};

/// Rows on one page of the log.
pub const PAGE_ROWS: u32 = 50;

/// The most rows one export holds; a filter keeping more is refused with
/// the advice to narrow the time range (an export is built in memory).
pub const MAX_EXPORT_ROWS: usize = 100_000;

/// Rows read per query while an export is built.
const EXPORT_CHUNK: u32 = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A filter or cursor that is not understood: the message names the
    /// field and what it should look like.
    #[error("{0}")]
    Invalid(String),
    #[error(
        "the filter keeps more than {MAX_EXPORT_ROWS} entries; narrow the time range (from, to) and export it in parts"
    )]
    TooMany,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for LogError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Store(e.into())
    }
}

/// The filters as typed in the form or the URL (empty means unset).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct RawFilter {
    #[serde(default)]
    pub actor: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
}

/// Checked filters. `to` is exclusive: a date given as `to` keeps the
/// whole of that day, a time the whole of that minute.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// What was typed, for the form and the export's audit row.
    pub raw: RawFilter,
}

const TIME_FORMS: &str =
    "YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC), e.g. 2026-03-01 or 2026-03-01T14:30";

/// When `value` starts (`end` false) or the first instant after it
/// (`end` true), for the field `field`.
fn parse_time(field: &str, value: &str, end: bool) -> Result<DateTime<Utc>, LogError> {
    let v = value.trim();
    let bad = || {
        LogError::Invalid(format!(
            "{field}: \"{}\" is not a date or time; write it as {TIME_FORMS}",
            v.chars().take(40).collect::<String>()
        ))
    };
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        let start = d.and_hms_opt(0, 0, 0).ok_or_else(bad)?.and_utc();
        return Ok(if end {
            start + Duration::days(1)
        } else {
            start
        });
    }
    for (form, step) in [
        ("%Y-%m-%dT%H:%M", Duration::minutes(1)),
        ("%Y-%m-%dT%H:%M:%S", Duration::seconds(1)),
        ("%Y-%m-%d %H:%M", Duration::minutes(1)),
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, form) {
            let t = t.and_utc();
            return Ok(if end { t + step } else { t });
        }
    }
    Err(bad())
}

fn text_filter(field: &str, value: &str) -> Result<Option<String>, LogError> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if v.chars().count() > 256 || v.chars().any(char::is_control) {
        return Err(LogError::Invalid(format!(
            "{field}: at most 256 characters and no control characters"
        )));
    }
    Ok(Some(v.to_string()))
}

impl Filter {
    /// Checks the typed filters.
    ///
    /// # Errors
    /// [`LogError::Invalid`] naming the field and the form expected.
    pub fn parse(raw: &RawFilter) -> Result<Self, LogError> {
        let action = text_filter("action", &raw.action)?;
        if let Some(a) = &action
            && !a
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        {
            return Err(LogError::Invalid(format!(
                "action: \"{a}\" is not an action; actions are lower-case words joined by dots, e.g. session.create, or session for every session action"
            )));
        }
        let from = match raw.from.trim() {
            "" => None,
            v => Some(parse_time("from", v, false)?),
        };
        let to = match raw.to.trim() {
            "" => None,
            v => Some(parse_time("to", v, true)?),
        };
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            return Err(LogError::Invalid(format!(
                "from ({}) is not before to ({}); swap them or widen the range",
                raw.from.trim(),
                raw.to.trim()
            )));
        }
        Ok(Self {
            actor: text_filter("actor", &raw.actor)?,
            action: action.map(|a| a.trim_end_matches('.').to_string()),
            target: text_filter("target", &raw.target)?,
            from,
            to,
            raw: raw.clone(),
        })
    }

    /// The query of the log this filter asks for: an actor or target
    /// typed as a user name also matches that user's id (`user:<id>` for an
    /// actor), so admins can type the names they know.
    fn search(&self, conn: &rusqlite::Connection) -> Result<Search, LogError> {
        let user_id = |name: &str| -> Result<Option<String>, LogError> {
            Ok(user_sql::by_user_name_including_deleted(conn, name)?.map(|u| u.id))
        };
        let mut actors = Vec::new();
        if let Some(a) = &self.actor {
            actors.push(a.clone());
            if let Some(id) = user_id(a)? {
                actors.push(format!("user:{id}"));
            }
        }
        let mut targets = Vec::new();
        if let Some(t) = &self.target {
            targets.push(t.clone());
            if let Some(id) = user_id(t)? {
                targets.push(id);
            }
        }
        Ok(Search {
            actors,
            action: self.action.clone(),
            targets,
            from_ms: self.from.map(to_millis),
            to_ms: self.to.map(to_millis),
            before: None,
        })
    }
}

/// Parses a page cursor (`<at ms>.<id>`, as [`Page::next`] writes it).
///
/// # Errors
/// [`LogError::Invalid`] for anything else.
pub fn parse_cursor(s: &str) -> Result<(i64, i64), LogError> {
    s.split_once('.')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .ok_or_else(|| {
            LogError::Invalid(
                "before: not a page of this log; start again from the first page".into(),
            )
        })
}

/// One page of the log, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub rows: Vec<AuditRow>,
    /// The cursor of the next (older) page, when there is one.
    pub next: Option<String>,
    /// User names of the `user:<id>` actors and user-id targets on the
    /// page, by actor or target as written in the row.
    pub names: HashMap<String, String>,
}

/// The page of rows `filter` keeps that are older than `before`.
///
/// # Errors
/// Store errors.
pub fn page(org: &OrgDb, filter: &Filter, before: Option<(i64, i64)>) -> Result<Page, LogError> {
    org.db.read(|c| {
        let mut s = filter.search(c)?;
        s.before = before;
        let mut rows = sql::search(c, &s, PAGE_ROWS + 1)?;
        let next = if rows.len() > PAGE_ROWS as usize {
            rows.truncate(PAGE_ROWS as usize);
            rows.last().map(|r| format!("{}.{}", to_millis(r.at), r.id))
        } else {
            None
        };
        let mut names = HashMap::new();
        for r in &rows {
            let mut ids = vec![];
            if let Some(id) = r.actor.strip_prefix("user:") {
                ids.push((r.actor.clone(), id.to_string()));
            }
            if let Some(t) = &r.target {
                ids.push((t.clone(), t.clone()));
            }
            for (key, id) in ids {
                if names.contains_key(&key) {
                    continue;
                }
                if let Some(u) = user_sql::by_id_including_deleted(c, &id)? {
                    names.insert(key, u.user_name);
                }
            }
        }
        Ok(Page { rows, next, names })
    })
}

/// The two export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    JsonLines,
}

impl Format {
    /// # Errors
    /// [`LogError::Invalid`] for anything but `csv` or `jsonl`.
    pub fn parse(s: &str) -> Result<Self, LogError> {
        match s {
            "csv" => Ok(Self::Csv),
            "jsonl" => Ok(Self::JsonLines),
            other => Err(LogError::Invalid(format!(
                "format: \"{}\" is not an export format; choose csv or jsonl",
                other.chars().take(20).collect::<String>()
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::JsonLines => "jsonl",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::JsonLines => "application/jsonl; charset=utf-8",
        }
    }
}

/// An export, ready to hand out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    pub body: String,
    pub rows: usize,
    /// `aiworklab-<org>-audit-<time>.<csv|jsonl>`.
    pub file_name: String,
}

/// The CSV header, in the column order of [`csv_line`].
pub const CSV_HEADER: &str = "id,at,actor,action,target,ip,user_agent,request_id,details\r\n";

/// One CSV cell: always quoted (quotes doubled), and a value a
/// spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`,
/// a tab or a carriage return) prefixed with `'` so it stays text.
pub fn csv_cell(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    format!("\"{}\"", guarded.replace('"', "\"\""))
}

fn at_text(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// One row as a CSV record (RFC 4180, CRLF).
pub fn csv_line(r: &AuditRow) -> String {
    let cells = [
        r.id.to_string(),
        at_text(r.at),
        r.actor.clone(),
        r.action.clone(),
        r.target.clone().unwrap_or_default(),
        r.ip.clone().unwrap_or_default(),
        r.user_agent.clone().unwrap_or_default(),
        r.request_id.clone().unwrap_or_default(),
        r.details.to_string(),
    ];
    let mut line = cells
        .iter()
        .map(|c| csv_cell(c))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// One row as a JSON Lines record.
pub fn json_line(r: &AuditRow) -> String {
    let mut line = json!({
        "id": r.id,
        "at": at_text(r.at),
        "actor": r.actor,
        "action": r.action,
        "target": r.target,
        "ip": r.ip,
        "user_agent": r.user_agent,
        "request_id": r.request_id,
        "details": r.details,
    })
    .to_string();
    line.push('\n');
    line
}

/// Exports every row `filter` keeps, newest first, as `format`, and
/// records `audit.export` (the filters as typed, the format and the number
/// of rows) by `ctx`. The rows are read first; the export is returned only
/// once its audit row is committed.
///
/// # Errors
/// [`LogError::TooMany`] past [`MAX_EXPORT_ROWS`]; store errors.
pub fn export(
    org: &OrgDb,
    ctx: &Context,
    filter: &Filter,
    format: Format,
    now: DateTime<Utc>,
) -> Result<Export, LogError> {
    let mut body = String::new();
    if format == Format::Csv {
        body.push_str(CSV_HEADER);
    }
    let mut rows = 0usize;
    let mut before = None;
    loop {
        let chunk = org.db.read(|c| {
            let mut s = filter.search(c)?;
            s.before = before;
            Ok::<_, LogError>(sql::search(c, &s, EXPORT_CHUNK)?)
        })?;
        for r in &chunk {
            rows += 1;
            if rows > MAX_EXPORT_ROWS {
                return Err(LogError::TooMany);
            }
            body.push_str(&match format {
                Format::Csv => csv_line(r),
                Format::JsonLines => json_line(r),
            });
        }
        match chunk.last() {
            Some(last) if chunk.len() == EXPORT_CHUNK as usize => {
                before = Some((to_millis(last.at), last.id));
            }
            _ => break,
        }
    }
    let raw = &filter.raw;
    let details = json!({
        "format": format.as_str(),
        "rows": rows,
        "filters": {
            "actor": raw.actor.trim(),
            "action": raw.action.trim(),
            "target": raw.target.trim(),
            "from": raw.from.trim(),
            "to": raw.to.trim(),
        },
    });
    org.db.write(|tx| {
        ctx.record(tx, "audit.export", None, &details, now)
            .map_err(LogError::from)
    })?;
    let mut file_name = String::new();
    let _ = write!(
        file_name,
        "aiworklab-{}-audit-{}.{}",
        org.slug,
        now.format("%Y%m%dT%H%M%SZ"),
        format.as_str()
    );
    Ok(Export {
        body,
        rows,
        file_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(from: &str, to: &str) -> RawFilter {
        RawFilter {
            from: from.into(),
            to: to.into(),
            ..RawFilter::default()
        }
    }

    #[test]
    fn a_bad_date_names_the_field_and_the_form_expected() {
        let e = Filter::parse(&raw("2026-13-01", "")).expect_err("month 13");
        let msg = e.to_string();
        assert!(msg.starts_with("from: \"2026-13-01\""), "{msg}");
        assert!(msg.contains("YYYY-MM-DD"), "{msg}");
        let e = Filter::parse(&raw("", "yesterday")).expect_err("words");
        assert!(e.to_string().starts_with("to: \"yesterday\""), "{e}");
        let e = Filter::parse(&raw("2026-03-02", "2026-03-01")).expect_err("reversed");
        assert!(e.to_string().contains("is not before"), "{e}");
        let e = Filter::parse(&RawFilter {
            action: "DROP TABLE".into(),
            ..RawFilter::default()
        })
        .expect_err("not an action");
        assert!(e.to_string().starts_with("action:"), "{e}");
    }

    #[test]
    fn to_keeps_the_whole_day_or_minute_it_names() {
        let f = Filter::parse(&raw("2026-03-01", "2026-03-01")).expect("one day");
        assert_eq!(f.to.expect("to") - f.from.expect("from"), Duration::days(1));
        let f = Filter::parse(&raw("2026-03-01T10:00", "2026-03-01T10:00")).expect("a minute");
        assert_eq!(
            f.to.expect("to") - f.from.expect("from"),
            Duration::minutes(1)
        );
        assert_eq!(
            Filter::parse(&RawFilter::default()).expect("none").from,
            None
        );
    }

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        assert_eq!(csv_cell("plain"), "\"plain\"");
        assert_eq!(csv_cell("say \"hi\", then"), "\"say \"\"hi\"\", then\"");
        assert_eq!(csv_cell("line\nbreak"), "\"line\nbreak\"");
        for f in ["=1+1", "+1", "-2", "@SUM(A1)", "\tx", "\rx"] {
            let c = csv_cell(f);
            assert!(c.starts_with("\"'"), "{f:?} became {c:?}");
        }
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
    }

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        assert_eq!(
            parse_cursor("1700000000000.42").expect("cursor"),
            (1_700_000_000_000, 42)
        );
        for junk in ["", "12", "a.b", "1.2.3"] {
            assert!(parse_cursor(junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn formats_are_csv_or_jsonl() {
        assert_eq!(Format::parse("csv").expect("csv"), Format::Csv);
        assert_eq!(Format::parse("jsonl").expect("jsonl"), Format::JsonLines);
        assert!(
            Format::parse("xlsx")
                .expect_err("xlsx")
                .to_string()
                .contains("csv or jsonl")
        );
    }
}
