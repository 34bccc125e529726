//! Claude Code: command hooks get one JSON object on stdin with
//! `hook_event_name`, `session_id`, `transcript_path` and `cwd`, plus
//! per event `tool_name`/`tool_input`/`tool_response` (PostToolUse),
//! `last_assistant_message` (Stop), `source` (SessionStart) or `reason`
//! (SessionEnd). The transcript is JSONL: `user` and `assistant` lines
//! with a `message.content` of text, `tool_use` and `tool_result` blocks
//! and a `timestamp`.
//!
//! The transcript is the record: the hook reads it from the stored
//! offset. Only when it is missing does the payload itself count.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Harness, Outcome, Plan, Record, Step, text, time_or};
use crate::agent::tag::Tag;

/// Events after which the transcript is complete for now.
const TURN_ENDS: [&str; 3] = ["Stop", "SubagentStop", "SessionEnd"];

/// Events that only come while the agent works on a turn (a subagent's
/// end is inside its parent's turn).
const IN_TURN: [&str; 4] = [
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "SubagentStop",
];

/// Handles one hook payload. `cursor` looks up a source's stored cursor.
/// Malformed input yields nothing.
pub fn handle(
    tagger: &mut dyn Tag,
    payload: &[u8],
    cursor: &dyn Fn(&str) -> Option<String>,
    now: DateTime<Utc>,
) -> Outcome {
    plan(payload, now).carry_out(tagger, cursor, now)
}

/// What one hook payload asks for: the transcript it names, read up to
/// its length now; or, when it names none that exists, its own fields.
pub fn plan(payload: &[u8], now: DateTime<Utc>) -> Plan {
    let none = Plan::none(Harness::ClaudeCode);
    let Ok(event) = serde_json::from_slice::<Value>(payload) else {
        return none;
    };
    let Some(name) = text(&event, "hook_event_name") else {
        return none;
    };
    let last = TURN_ENDS.contains(&name);
    let mut plan = Plan {
        turn_ended: last,
        turn: super::turn_signal(
            Harness::ClaudeCode,
            text(&event, "session_id"),
            IN_TURN.contains(&name),
            matches!(name, "Stop" | "SessionEnd"),
        ),
        ..none
    };
    if let Some(path) = text(&event, "transcript_path").map(Path::new)
        && let Some(len) = super::record_len(path)
    {
        plan.read = Some(Record {
            harness: Harness::ClaudeCode,
            path: path.to_path_buf(),
            last,
            upto: Some(len),
            at: now,
        });
        return plan;
    }
    // No transcript: the payload is all there is.
    plan.payload = payload_steps(&event, name);
    plan
}

/// The steps of one tool call (Claude Code's tool names and inputs).
pub(crate) fn tool_steps(name: &str, input: &Value) -> Vec<Step> {
    let path = || text(input, "file_path").unwrap_or_default().to_string();
    match name {
        "Write" => text(input, "content")
            .map(|c| {
                vec![Step::Wrote {
                    path: path(),
                    text: c.to_string(),
                }]
            })
            .unwrap_or_default(),
        "Edit" => text(input, "new_string")
            .map(|c| {
                vec![Step::Wrote {
                    path: path(),
                    text: c.to_string(),
                }]
            })
            .unwrap_or_default(),
        "MultiEdit" => input
            .get("edits")
            .and_then(Value::as_array)
            .map(|edits| {
                edits
                    .iter()
                    .filter_map(|e| text(e, "new_string"))
                    .map(|c| Step::Wrote {
                        path: path(),
                        text: c.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        "Bash" => text(input, "command")
            .map(|c| vec![Step::Ran(c.to_string())])
            .unwrap_or_default(),
        _ => vec![Step::Tool],
    }
}

fn payload_steps(event: &Value, name: &str) -> Vec<Step> {
    match name {
        "PostToolUse" => {
            let tool = text(event, "tool_name").unwrap_or_default();
            event
                .get("tool_input")
                .map(|input| tool_steps(tool, input))
                .unwrap_or_default()
        }
        "Stop" | "SubagentStop" => text(event, "last_assistant_message")
            .map(|m| vec![Step::Said(m.to_string()), Step::TurnEnd])
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The steps of one transcript line.
pub(crate) fn transcript_line(line: &Value, now: DateTime<Utc>) -> Vec<(Step, DateTime<Utc>)> {
    let at = time_or(line.get("timestamp"), now);
    let content = line.get("message").and_then(|m| m.get("content"));
    let mut steps = Vec::new();
    match text(line, "type") {
        Some("assistant") => {
            for block in content.and_then(Value::as_array).into_iter().flatten() {
                match text(block, "type") {
                    Some("text") => {
                        if let Some(t) = text(block, "text") {
                            steps.push(Step::Said(t.to_string()));
                        }
                    }
                    Some("tool_use") => {
                        let name = text(block, "name").unwrap_or_default();
                        let input = block.get("input").cloned().unwrap_or(Value::Null);
                        steps.extend(tool_steps(name, &input));
                    }
                    _ => {}
                }
            }
        }
        Some("user") => {
            let prompt = match content {
                Some(Value::String(_)) => true,
                Some(Value::Array(blocks)) => {
                    blocks.iter().any(|b| text(b, "type") == Some("text"))
                        && !blocks
                            .iter()
                            .any(|b| text(b, "type") == Some("tool_result"))
                }
                _ => false,
            };
            if prompt && line.get("isMeta") != Some(&Value::Bool(true)) {
                steps.push(Step::Prompt);
            }
        }
        _ => {}
    }
    steps.into_iter().map(|s| (s, at)).collect()
}
