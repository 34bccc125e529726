//! Codex CLI. Two ways in: its hooks (`hooks.json`, Claude-shaped JSON
//! on stdin: `hook_event_name`, `session_id`, `transcript_path`, `cwd`,
//! `turn_id`, and `tool_name`/`tool_input` or `last_assistant_message`),
//! or, on versions without hooks, its `notify` program, which gets one
//! JSON argument `{"type": "agent-turn-complete", "thread-id", "turn-id",
//! "cwd", "input-messages", "last-assistant-message"}`.
//!
//! The record is the rollout file under `$CODEX_HOME/sessions/YYYY/MM/DD/`
//! (`rollout-<time>-<thread id>.jsonl`): lines `{"timestamp", "type",
//! "payload"}` where `response_item` payloads are `message`s (role and
//! `output_text`/`input_text` content), `function_call`s (a JSON
//! `arguments` string: `shell` with `command`, `exec_command` with `cmd`),
//! `custom_tool_call`s (`apply_patch` with the patch as `input`) and
//! `local_shell_call`s, and `event_msg` payloads mark `task_complete`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Harness, Outcome, Places, Plan, Record, Step, patch, text, time_or};
use crate::agent::tag::Tag;

/// Handles a hooks payload on stdin or a `notify` argument.
pub fn handle(
    tagger: &mut dyn Tag,
    places: &Places,
    payload: &[u8],
    notify_arg: Option<&str>,
    cursor: &dyn Fn(&str) -> Option<String>,
    now: DateTime<Utc>,
) -> Outcome {
    plan(places, payload, notify_arg, now).carry_out(tagger, cursor, now)
}

/// What a hooks payload or a `notify` argument asks for: the rollout it
/// names (or its thread's), read up to its length now; or, when there is
/// none, the payload's own fields.
pub fn plan(places: &Places, payload: &[u8], notify_arg: Option<&str>, now: DateTime<Utc>) -> Plan {
    let none = Plan::none(Harness::Codex);
    let event = notify_arg
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
        .or_else(|| serde_json::from_slice::<Value>(payload).ok());
    let Some(event) = event.filter(Value::is_object) else {
        return none;
    };
    let session = text(&event, "session_id").or_else(|| text(&event, "thread-id"));
    let mut in_turn = false;
    let (record, last, fallback) = if let Some(name) = text(&event, "hook_event_name") {
        in_turn = matches!(name, "UserPromptSubmit" | "PreToolUse" | "PostToolUse");
        let record = text(&event, "transcript_path").map(PathBuf::from);
        let last = name == "Stop";
        let mut steps = Vec::new();
        if name == "PostToolUse" {
            steps = tool_steps(
                text(&event, "tool_name").unwrap_or_default(),
                event.get("tool_input").unwrap_or(&Value::Null),
            );
        } else if let Some(m) = text(&event, "last_assistant_message").filter(|_| last) {
            steps = vec![Step::Said(m.to_string()), Step::TurnEnd];
        }
        (record, last, steps)
    } else if text(&event, "type") == Some("agent-turn-complete") {
        let record = text(&event, "thread-id")
            .zip(places.codex_home.as_deref())
            .and_then(|(id, home)| rollout_for(home, id));
        let steps = text(&event, "last-assistant-message")
            .map(|m| vec![Step::Said(m.to_string()), Step::TurnEnd])
            .unwrap_or_default();
        (record, true, steps)
    } else {
        return none;
    };
    let mut plan = Plan {
        turn_ended: last,
        turn: super::turn_signal(Harness::Codex, session, in_turn, last),
        ..none
    };
    if let Some((path, len)) = record.and_then(|p| super::record_len(&p).map(|l| (p, l))) {
        plan.read = Some(Record {
            harness: Harness::Codex,
            path,
            last,
            upto: Some(len),
            at: now,
        });
        return plan;
    }
    plan.payload = fallback;
    plan
}

/// The rollout file of a thread: its name ends with the thread id.
pub fn rollout_for(codex_home: &Path, thread_id: &str) -> Option<PathBuf> {
    if thread_id.is_empty() || thread_id.contains(['/', '\\']) {
        return None;
    }
    let suffix = format!("{thread_id}.jsonl");
    rollouts(codex_home).into_iter().find(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with(&suffix))
    })
}

/// Every rollout file under `$CODEX_HOME/sessions`, newest day first.
pub fn rollouts(codex_home: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: u8, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        entries.reverse();
        for p in entries {
            if p.is_dir() && depth < 4 {
                walk(&p, depth + 1, out);
            } else if p.extension().is_some_and(|e| e == "jsonl") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&codex_home.join("sessions"), 0, &mut out);
    out
}

/// A shell command from Codex's argument shapes: a string, or an argv
/// (`["bash", "-lc", "cargo test"]`: the script).
fn command_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let parts: Vec<&str> = parts.iter().filter_map(Value::as_str).collect();
            match parts.as_slice() {
                [shell, flag, script, ..]
                    if flag.starts_with('-') && flag.contains('c') && shell.contains("sh") =>
                {
                    Some((*script).to_string())
                }
                _ => Some(parts.join(" ")),
            }
        }
        _ => None,
    }
}

/// The command of a shell tool's arguments: `shell`'s `command` (argv or
/// string) or `exec_command`'s `cmd` (a script; Codex 0.171 writes files
/// with `apply_patch <<'EOF' … EOF` through it).
fn command_arg(args: &Value) -> Option<String> {
    args.get("command")
        .or_else(|| args.get("cmd"))
        .and_then(command_of)
}

/// Steps of a command that may be an `apply_patch` invocation.
fn command_steps(command: &str) -> Vec<Step> {
    let trimmed = command.trim_start();
    if trimmed.starts_with("apply_patch") || trimmed.starts_with("*** Begin Patch") {
        return patch_steps(trimmed);
    }
    vec![Step::Ran(command.to_string())]
}

fn patch_steps(patch_text: &str) -> Vec<Step> {
    let files = patch::added(patch_text);
    if files.is_empty() {
        return vec![Step::Tool];
    }
    files
        .into_iter()
        .map(|(path, text)| Step::Wrote { path, text })
        .collect()
}

/// A hook's PostToolUse (`Bash` with `command`, `apply_patch` with the
/// patch as `command` or `input`).
fn tool_steps(name: &str, input: &Value) -> Vec<Step> {
    let patch_text = text(input, "input").or_else(|| text(input, "patch"));
    match (name, patch_text, command_arg(input)) {
        ("apply_patch", Some(p), _) => patch_steps(p),
        (_, _, Some(cmd)) => command_steps(&cmd),
        _ => vec![Step::Tool],
    }
}

pub(crate) fn rollout_line(line: &Value, now: DateTime<Utc>) -> Vec<(Step, DateTime<Utc>)> {
    let at = time_or(line.get("timestamp"), now);
    let Some(p) = line.get("payload") else {
        return Vec::new();
    };
    let steps = match (text(line, "type"), text(p, "type")) {
        (Some("response_item"), Some("message")) => match text(p, "role") {
            Some("assistant") => p
                .get("content")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|c| text(c, "type") == Some("output_text"))
                .filter_map(|c| text(c, "text"))
                .map(|t| Step::Said(t.to_string()))
                .collect(),
            Some("user") => vec![Step::Prompt],
            _ => Vec::new(),
        },
        (Some("response_item"), Some("function_call")) => {
            let args = text(p, "arguments")
                .and_then(|a| serde_json::from_str::<Value>(a).ok())
                .unwrap_or(Value::Null);
            match command_arg(&args) {
                Some(cmd) => command_steps(&cmd),
                None => vec![Step::Tool],
            }
        }
        (Some("response_item"), Some("custom_tool_call")) => {
            match (text(p, "name"), text(p, "input")) {
                (Some("apply_patch"), Some(input)) => patch_steps(input),
                _ => vec![Step::Tool],
            }
        }
        (Some("response_item"), Some("local_shell_call")) => {
            match p
                .get("action")
                .and_then(|a| a.get("command"))
                .and_then(command_of)
            {
                Some(cmd) => command_steps(&cmd),
                None => vec![Step::Tool],
            }
        }
        (Some("event_msg"), Some("task_complete" | "turn_aborted")) => vec![Step::TurnEnd],
        _ => Vec::new(),
    };
    steps.into_iter().map(|s| (s, at)).collect()
}
