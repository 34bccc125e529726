//! OpenCode. Its plugin (`PLUGIN`, installed by `agent install`)
//! forwards `tool.execute.after` and session events to `aiworklab agent
//! hook --harness opencode` as `{"hook_event_name", "session_id"}`: a
//! signal only. The record is OpenCode's SQLite database (tables
//! `session`, `message`, `part`, each row's `data` a JSON object), read
//! read-only from a cursor of (`part.time_created`, `part.id`).
//!
//! A `tool` part's `state.input` holds what the tool was given (`write`:
//! `filePath`, `content`; `edit`: `filePath`, `newString`; `bash`:
//! `command`; `patch`: `patchText`); a `text` part of an assistant
//! message whose `finish` is `stop` is the answer that ends a turn. A
//! part still running, or text of a message still streaming, stops the
//! read so it is read again when complete.

use std::path::Path;

use chrono::{TimeZone, Utc};
use rusqlite::{Connection, OpenFlags, params};
use serde_json::Value;

use super::{Batch, Harness, Item, Outcome, Places, Plan, Record, Step, fold, patch, text};
use crate::agent::tag::Tag;

/// The plugin file `agent install --harness opencode` writes;
/// `@AIWORKLAB@` is replaced by the binary's path.
pub const PLUGIN: &str = include_str!("opencode_plugin.js");

/// Session events after which a turn is over.
const TURN_ENDS: [&str; 2] = ["session.idle", "session.deleted"];

/// Parts read per hook event at most (the rest on the next event).
const BATCH: i64 = 2000;

const PARTS_SINCE: &str = "SELECT p.id, p.time_created, p.data, m.data FROM part p \
     JOIN message m ON m.id = p.message_id \
     WHERE p.time_created > ?1 OR (p.time_created = ?1 AND p.id > ?2) \
     ORDER BY p.time_created, p.id LIMIT ?3";

/// Handles one event the plugin forwarded.
pub fn handle(
    tagger: &mut dyn Tag,
    places: &Places,
    payload: &[u8],
    cursor: &dyn Fn(&str) -> Option<String>,
) -> Outcome {
    let now = Utc::now();
    plan(places, payload, now).carry_out(tagger, cursor, now)
}

/// What one forwarded event asks for: OpenCode's database, read from its
/// cursor (the plugin's events carry nothing else).
pub fn plan(places: &Places, payload: &[u8], now: chrono::DateTime<Utc>) -> Plan {
    let none = Plan::none(Harness::OpenCode);
    let Ok(event) = serde_json::from_slice::<Value>(payload) else {
        return none;
    };
    let Some(name) = text(&event, "hook_event_name") else {
        return none;
    };
    let ended = TURN_ENDS.contains(&name);
    let mut plan = Plan {
        turn_ended: ended,
        turn: super::turn_signal(
            Harness::OpenCode,
            text(&event, "session_id"),
            name == "tool.execute.after",
            ended,
        ),
        ..none
    };
    if let Some(db) = places.opencode_db.as_deref().filter(|p| p.is_file()) {
        plan.read = Some(Record {
            harness: Harness::OpenCode,
            path: db.to_path_buf(),
            last: true,
            upto: None,
            at: now,
        });
    }
    plan
}

/// Reads the database from `cursor` (`"<time_created>:<part id>"`).
///
/// # Errors
/// The database cannot be opened read-only or queried (not OpenCode's,
/// or a schema this version does not know).
pub fn ingest(
    tagger: &mut dyn Tag,
    db: &Path,
    source: &str,
    cursor: Option<&str>,
) -> rusqlite::Result<Batch> {
    let (mut since_time, mut since_id) = cursor
        .and_then(|c| c.split_once(':'))
        .and_then(|(t, id)| Some((t.parse::<i64>().ok()?, id.to_string())))
        .unwrap_or((i64::MIN, String::new()));
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_millis(200))?;
    let mut stmt = conn.prepare(PARTS_SINCE)?;
    let rows = stmt.query_map(params![since_time, since_id, BATCH], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut items = Vec::new();
    for row in rows {
        let (id, created, part, message) = row?;
        let (Ok(part), Ok(message)) = (
            serde_json::from_str::<Value>(&part),
            serde_json::from_str::<Value>(&message),
        ) else {
            since_time = created;
            since_id = id;
            continue;
        };
        let at = Utc
            .timestamp_millis_opt(created)
            .single()
            .unwrap_or_else(Utc::now);
        match part_steps(&part, &message) {
            Some(steps) => {
                items.extend(steps.into_iter().map(|step| Item { step, at, start: 0 }));
                since_time = created;
                since_id = id;
            }
            None => break,
        }
    }
    let (observations, _) = fold(tagger, items, 0, true);
    Ok(Batch {
        source: source.to_string(),
        cursor: format!("{since_time}:{since_id}"),
        observations,
    })
}

/// The steps of one part, or `None` when it is not complete yet.
fn part_steps(part: &Value, message: &Value) -> Option<Vec<Step>> {
    let assistant = text(message, "role") == Some("assistant");
    match text(part, "type") {
        Some("tool") => {
            let state = part.get("state")?;
            match text(state, "status") {
                Some("completed" | "error") => {}
                _ => return None,
            }
            let input = state.get("input").unwrap_or(&Value::Null);
            let path = text(input, "filePath").unwrap_or_default().to_string();
            let steps = match text(part, "tool").unwrap_or_default() {
                "write" => text(input, "content")
                    .map(|c| {
                        vec![Step::Wrote {
                            path,
                            text: c.to_string(),
                        }]
                    })
                    .unwrap_or_default(),
                "edit" => text(input, "newString")
                    .map(|c| {
                        vec![Step::Wrote {
                            path,
                            text: c.to_string(),
                        }]
                    })
                    .unwrap_or_default(),
                "bash" => text(input, "command")
                    .map(|c| vec![Step::Ran(c.to_string())])
                    .unwrap_or_default(),
                "patch" | "apply_patch" => {
                    patch::added(text(input, "patchText").unwrap_or_default())
                        .into_iter()
                        .map(|(path, text)| Step::Wrote { path, text })
                        .collect()
                }
                _ => vec![Step::Tool],
            };
            Some(steps)
        }
        Some("text") if assistant => {
            let done = message
                .get("time")
                .and_then(|t| t.get("completed"))
                .is_some()
                || message.get("finish").is_some();
            if !done {
                return None;
            }
            if text(message, "finish") == Some("stop") {
                let said = text(part, "text").unwrap_or_default().to_string();
                Some(vec![Step::Said(said), Step::TurnEnd])
            } else {
                Some(Vec::new())
            }
        }
        _ => Some(Vec::new()),
    }
}
