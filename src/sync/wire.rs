//! The sync wire format, which is the privacy boundary (SECURITY.md P1):
//! concept ids, state transitions, timestamps and an optional grade, and
//! nothing else. Every field is checked by hand so a refusal names the
//! first offending delta and field (as a JSON pointer); a batch with any
//! bad delta is refused whole.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Map, Value};

use crate::catalogue::{KnownIds, Standing};
use crate::skill::catalogue::valid_slug;
use crate::skill::delta::{Delta, Transition};

/// Most deltas one request may carry.
pub const MAX_DELTAS: usize = 1000;
/// Largest request body, in bytes.
pub const MAX_BODY: usize = 1 << 20;

/// Why a batch was refused: where, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pointer}: {message}")]
pub struct WireError {
    /// JSON pointer to the offending value, e.g. `/deltas/3/concept`.
    pub pointer: String,
    pub message: String,
}

fn err(pointer: impl Into<String>, message: impl Into<String>) -> WireError {
    WireError {
        pointer: pointer.into(),
        message: message.into(),
    }
}

/// A short, safe excerpt of a refused value (never the whole thing).
fn excerpt(s: &str) -> String {
    let cut: String = s.chars().take(32).filter(|c| !c.is_control()).collect();
    if s.chars().count() > 32 {
        format!("{cut}…")
    } else {
        cut
    }
}

const FIELDS: [&str; 5] = ["id", "concept", "transition", "at", "grade"];

fn earliest() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// Why a fact about a retired concept is refused: facts dated before the
/// retirement are still taken (a device may sync late), later ones not.
pub fn retired_message(concept: &str, since: DateTime<Utc>) -> String {
    format!(
        "`{concept}` was retired by your organisation at {}; facts dated after that are refused, so drop them (GET /api/v1/concepts marks it retired)",
        since.to_rfc3339()
    )
}

/// Parses and checks a push body.
///
/// # Errors
/// The first problem found, as a [`WireError`].
pub fn parse_push(
    body: &[u8],
    concepts: &KnownIds<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<Delta>, WireError> {
    if body.len() > MAX_BODY {
        return Err(err(
            "",
            format!(
                "the body is larger than {MAX_BODY} bytes; send at most {MAX_DELTAS} deltas per request"
            ),
        ));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| err("", format!("not valid JSON: {e}")))?;
    let Value::Object(top) = value else {
        return Err(err(
            "",
            "the body must be a JSON object {\"deltas\": [...]}",
        ));
    };
    if let Some(k) = top.keys().find(|k| k.as_str() != "deltas") {
        return Err(err(
            format!("/{}", excerpt(k)),
            "unknown field; the body has only `deltas`",
        ));
    }
    let Some(Value::Array(items)) = top.get("deltas") else {
        return Err(err("/deltas", "required, as an array of deltas"));
    };
    if items.len() > MAX_DELTAS {
        return Err(err(
            "/deltas",
            format!("{} deltas; at most {MAX_DELTAS} per request", items.len()),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| parse_delta(i, v, concepts, now))
        .collect()
}

fn string_field<'a>(
    o: &'a Map<String, Value>,
    p: &str,
    name: &str,
    max: usize,
) -> Result<&'a str, WireError> {
    match o.get(name) {
        None | Some(Value::Null) => Err(err(format!("{p}/{name}"), "required")),
        Some(Value::String(s)) if s.len() > max => Err(err(
            format!("{p}/{name}"),
            format!("longer than {max} characters"),
        )),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(err(format!("{p}/{name}"), "must be a string")),
    }
}

fn parse_delta(
    i: usize,
    v: &Value,
    concepts: &KnownIds<'_>,
    now: DateTime<Utc>,
) -> Result<Delta, WireError> {
    let p = format!("/deltas/{i}");
    let Value::Object(o) = v else {
        return Err(err(p, "each delta must be an object"));
    };
    if let Some(k) = o.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(err(
            format!("{p}/{}", excerpt(k)),
            "unknown field: a delta has only id, concept, transition, at and grade; nothing else is ever synced",
        ));
    }
    let id = string_field(o, &p, "id", 36)?;
    let id = uuid::Uuid::parse_str(id).map_err(|_| err(format!("{p}/id"), "must be a UUID"))?;
    let concept = string_field(o, &p, "concept", 64)?;
    if !valid_slug(concept) {
        return Err(err(
            format!("{p}/concept"),
            format!(
                "`{}` is not a concept id: ids look like `rust-lifetimes`; paths, code and text are never accepted",
                excerpt(concept)
            ),
        ));
    }
    let standing = concepts.standing(concept);
    if standing == Standing::Unknown {
        return Err(err(
            format!("{p}/concept"),
            format!("`{concept}` is not in the catalogue (GET /api/v1/concepts)"),
        ));
    }
    let transition = string_field(o, &p, "transition", 16)?;
    let transition = Transition::parse(transition).ok_or_else(|| {
        err(
            format!("{p}/transition"),
            "must be one of seen, explained, check_passed, check_failed, demonstrated",
        )
    })?;
    let at = string_field(o, &p, "at", 40)?;
    let at = DateTime::parse_from_rfc3339(at)
        .map_err(|_| {
            err(
                format!("{p}/at"),
                "must be an RFC 3339 timestamp, e.g. 2026-11-23T08:00:00Z",
            )
        })?
        .with_timezone(&Utc);
    if at < earliest() {
        return Err(err(format!("{p}/at"), "before 2020-01-01"));
    }
    if at > now + Duration::days(1) {
        return Err(err(
            format!("{p}/at"),
            "more than a day in the future; check the device's clock",
        ));
    }
    if let Standing::Retired(since) = standing
        && at >= since
    {
        return Err(err(format!("{p}/concept"), retired_message(concept, since)));
    }
    let grade = match o.get("grade") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64() {
            Some(g @ 1..=4) => Some(u8::try_from(g).unwrap_or(1)),
            _ => {
                return Err(err(
                    format!("{p}/grade"),
                    "must be 1 (again), 2 (hard), 3 (good) or 4 (easy)",
                ));
            }
        },
        Some(_) => return Err(err(format!("{p}/grade"), "must be a number from 1 to 4")),
    };
    let grade = match (transition, grade) {
        (Transition::CheckFailed, None | Some(1)) => Some(1),
        (Transition::CheckFailed, Some(_)) => {
            return Err(err(format!("{p}/grade"), "a failed check has grade 1"));
        }
        (Transition::CheckPassed, None) => Some(3),
        (Transition::CheckPassed, Some(1)) => {
            return Err(err(
                format!("{p}/grade"),
                "a passed check has grade 2, 3 or 4",
            ));
        }
        (Transition::CheckPassed, g) => g,
        (_, Some(_)) => {
            return Err(err(
                format!("{p}/grade"),
                "only check_passed and check_failed carry a grade",
            ));
        }
        (_, None) => None,
    };
    Ok(Delta {
        id,
        concept: concept.to_string(),
        transition,
        at,
        grade,
    })
}
