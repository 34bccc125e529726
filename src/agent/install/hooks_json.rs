//! Command hooks in Claude Code's `settings.json` and Codex's
//! `hooks.json`: both are `{"hooks": {"<Event>": [{"matcher": "...",
//! "hooks": [{"type": "command", "command": "...", "timeout": s}]}]}}`.

use std::path::Path;

use super::InstallError;
use super::ojson::Json;
use crate::agent::harness::Harness;

/// Claude Code: every tool's PostToolUse (`*`), session start and end,
/// and each turn's Stop.
const CLAUDE_EVENTS: [(&str, Option<&str>); 4] = [
    ("SessionStart", None),
    ("PostToolUse", Some("*")),
    ("Stop", None),
    ("SessionEnd", None),
];

/// Codex: the events its hooks offer that matter here.
const CODEX_EVENTS: [(&str, Option<&str>); 3] = [
    ("SessionStart", None),
    ("PostToolUse", None),
    ("Stop", None),
];

/// Seconds the harness waits for the hook (it returns in milliseconds).
const TIMEOUT_SECONDS: u64 = 10;

fn ours(command: &str, harness: Harness) -> bool {
    command.ends_with(&format!("agent hook --harness {harness}"))
}

/// A JSON settings file (none or blank: an empty object).
pub(super) fn parse(file: &Path, text: Option<&str>) -> Result<Json, InstallError> {
    let text = text.unwrap_or_default();
    if text.trim().is_empty() {
        return Ok(Json::Object(Vec::new()));
    }
    let root: Json = serde_json::from_str(text).map_err(|e| InstallError::Unreadable {
        path: file.to_path_buf(),
        kind: "JSON",
        detail: e.to_string(),
    })?;
    if !matches!(root, Json::Object(_)) {
        return Err(InstallError::Unreadable {
            path: file.to_path_buf(),
            kind: "JSON settings",
            detail: "the top level is not an object".into(),
        });
    }
    Ok(root)
}

fn conflict(file: &Path, what: &str) -> InstallError {
    InstallError::Conflict {
        path: file.to_path_buf(),
        detail: format!(
            "{what} is not what Claude Code/Codex expect there; fix it by hand, then run the command again"
        ),
    }
}

fn hook(command: &str) -> Json {
    Json::Object(vec![
        ("type".into(), Json::String("command".into())),
        ("command".into(), Json::String(command.into())),
        ("timeout".into(), Json::Number(TIMEOUT_SECONDS.into())),
    ])
}

/// Adds our command hook to each event; returns the new text and what
/// changed (the old text itself when nothing did).
pub fn add(
    file: &Path,
    before: Option<&str>,
    command: &str,
    claude: bool,
) -> Result<(String, Vec<String>), InstallError> {
    let harness = if claude {
        Harness::ClaudeCode
    } else {
        Harness::Codex
    };
    let events: &[(&str, Option<&str>)] = if claude {
        &CLAUDE_EVENTS
    } else {
        &CODEX_EVENTS
    };
    let mut root = parse(file, before)?;
    let hooks = root
        .entry("hooks", Json::Object(Vec::new()))
        .filter(|h| matches!(h, Json::Object(_)))
        .ok_or_else(|| conflict(file, "`hooks`"))?;
    let mut lines = Vec::new();
    for (event, matcher) in events {
        let Some(Json::Array(groups)) = hooks.entry(event, Json::Array(Vec::new())) else {
            return Err(conflict(file, &format!("`hooks.{event}`")));
        };
        let mut present = false;
        for group in groups.iter_mut() {
            if let Some(Json::Array(list)) = group.get_mut("hooks") {
                for h in list.iter_mut() {
                    let Some(cmd) = h.get("command").and_then(Json::as_str).map(str::to_string)
                    else {
                        continue;
                    };
                    if ours(&cmd, harness) {
                        present = true;
                        if cmd != command
                            && let Some(c) = h.get_mut("command")
                        {
                            *c = Json::String(command.into());
                            lines.push(format!(
                                "hooks.{event}: updated the kernel's hook to {command}"
                            ));
                        }
                    }
                }
            }
        }
        if !present {
            let mut group = Vec::new();
            if let Some(m) = matcher {
                group.push(("matcher".to_string(), Json::String((*m).into())));
            }
            group.push(("hooks".to_string(), Json::Array(vec![hook(command)])));
            groups.push(Json::Object(group));
            lines.push(format!("hooks.{event}: added `{command}`"));
        }
    }
    if lines.is_empty() {
        return Ok((before.unwrap_or_default().to_string(), lines));
    }
    Ok((root.pretty(), lines))
}

/// Removes our hooks (and the groups, events and `hooks` object that
/// held only them). When the rest equals the backup, returns the
/// backup's text.
pub fn remove(
    file: &Path,
    before: &str,
    saved: Option<&str>,
    harness: Harness,
) -> Result<(String, Vec<String>), InstallError> {
    let mut root = parse(file, Some(before))?;
    let mut lines = Vec::new();
    let mut emptied = false;
    if let Some(Json::Object(events)) = root.get_mut("hooks") {
        for (event, groups) in events.iter_mut() {
            let Json::Array(groups) = groups else {
                continue;
            };
            let mut removed_here = false;
            groups.retain_mut(|group| {
                let Some(Json::Array(list)) = group.get_mut("hooks") else {
                    return true;
                };
                let n = list.len();
                list.retain(|h| {
                    !h.get("command")
                        .and_then(Json::as_str)
                        .is_some_and(|c| ours(c, harness))
                });
                if list.len() == n {
                    return true;
                }
                removed_here = true;
                !list.is_empty()
            });
            if removed_here {
                lines.push(format!("hooks.{event}: removed the kernel's hook"));
            }
        }
        let before_len = events.len();
        let touched: Vec<String> = lines
            .iter()
            .filter_map(|l| {
                l.strip_prefix("hooks.")?
                    .split(':')
                    .next()
                    .map(String::from)
            })
            .collect();
        events
            .retain(|(k, v)| !(touched.contains(k) && matches!(v, Json::Array(a) if a.is_empty())));
        emptied = events.is_empty() && (before_len > 0) && !lines.is_empty();
    }
    if lines.is_empty() {
        return Ok((before.to_string(), lines));
    }
    if emptied {
        root.remove("hooks");
    }
    if let Some(saved) = saved
        && serde_json::from_str::<Json>(saved).is_ok_and(|s| s == root)
    {
        return Ok((saved.to_string(), lines));
    }
    Ok((root.pretty(), lines))
}

/// The kernel's hook commands found in a settings file, as
/// (event, command), and the events install adds that lack it.
pub(super) struct Found {
    pub commands: Vec<(String, String)>,
    pub missing: Vec<&'static str>,
}

/// What of the kernel's hooks a settings text holds (for `agent doctor`).
///
/// # Errors
/// The text is not valid JSON settings.
pub(super) fn installed(file: &Path, text: &str, harness: Harness) -> Result<Found, InstallError> {
    let root = parse(file, Some(text))?;
    let mut found = Vec::new();
    if let Some(Json::Object(events)) = root.get("hooks") {
        for (event, groups) in events {
            let Json::Array(groups) = groups else {
                continue;
            };
            let commands = groups
                .iter()
                .filter_map(|g| match g.get("hooks") {
                    Some(Json::Array(list)) => Some(list),
                    _ => None,
                })
                .flatten()
                .filter_map(|h| h.get("command").and_then(Json::as_str))
                .filter(|c| ours(c, harness));
            found.extend(commands.map(|c| (event.clone(), c.to_string())));
        }
    }
    let expected: &[(&str, Option<&str>)] = if harness == Harness::ClaudeCode {
        &CLAUDE_EVENTS
    } else {
        &CODEX_EVENTS
    };
    let missing = expected
        .iter()
        .map(|(e, _)| *e)
        .filter(|e| !found.iter().any(|(f, _)| f == e))
        .collect();
    Ok(Found {
        commands: found,
        missing,
    })
}
