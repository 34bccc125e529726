//! Registers `aiworklab agent mcp` as an MCP server named `aiworklab`
//! with the harnesses that take MCP servers from a file:
//!
//! - Claude Code: the top-level `mcpServers` object of `~/.claude.json`
//!   (`$CLAUDE_CONFIG_DIR/.claude.json` when that is set) for `--scope
//!   user`, of `.mcp.json` in the project root for `--scope project`;
//!   each server `{"type": "stdio", "command": …, "args": […]}`.
//! - Codex: the `[mcp_servers.aiworklab]` table (`command`, `args`) of
//!   `$CODEX_HOME/config.toml` (else `~/.codex/config.toml`), or of the
//!   project's `.codex/config.toml`.
//!
//! OpenCode is not registered. Like the hooks, registration merges (the
//! rest of the file keeps its keys and order), is idempotent, keeps a
//! backup, and unregistering removes exactly what it added.

use std::path::{Path, PathBuf};

use super::ojson::Json;
use super::{InstallError, Report, Scope, Target, hooks_json, parse_toml};
use crate::agent::harness::Harness;
use crate::agent::mcp::SERVER_NAME;

/// The arguments that start the server; an entry with these is ours.
const ARGS: [&str; 2] = ["agent", "mcp"];
const CLAUDE_KEY: &str = "mcpServers";
const CODEX_KEY: &str = "mcp_servers";

impl Target {
    /// The file that registers MCP servers for this harness and scope
    /// (`None`: the harness is not registered).
    pub fn mcp_file(&self) -> Option<PathBuf> {
        match (self.harness, self.scope) {
            (Harness::ClaudeCode, Scope::User) => Some(
                self.claude_config_dir
                    .clone()
                    .unwrap_or_else(|| self.home.clone())
                    .join(".claude.json"),
            ),
            (Harness::ClaudeCode, Scope::Project) => Some(self.project.join(".mcp.json")),
            (Harness::Codex, Scope::User) => Some(
                self.codex_home
                    .clone()
                    .unwrap_or_else(|| self.home.join(".codex"))
                    .join("config.toml"),
            ),
            (Harness::Codex, Scope::Project) => Some(self.project.join(".codex/config.toml")),
            (Harness::OpenCode, _) => None,
        }
    }
}

/// Registers the server; `None` for a harness that takes none.
///
/// # Errors
/// The file is not valid JSON/TOML, already names another server
/// `aiworklab`, or cannot be written.
pub fn register(t: &Target) -> Result<Option<Report>, InstallError> {
    let Some(file) = t.mcp_file() else {
        return Ok(None);
    };
    let before = super::read(&file)?;
    let (after, lines) = match t.harness {
        Harness::Codex => codex_add(&file, before.as_deref(), &t.bin)?,
        _ => claude_add(&file, before.as_deref(), &t.bin)?,
    };
    super::write_if_changed(&file, before.as_deref(), &after, lines, true).map(Some)
}

/// Removes the registration; the rest of the file stays.
///
/// # Errors
/// As [`register`].
pub fn unregister(t: &Target) -> Result<Option<Report>, InstallError> {
    let Some(file) = t.mcp_file() else {
        return Ok(None);
    };
    let Some(before) = super::read(&file)? else {
        return Ok(Some(super::unchanged(file)));
    };
    let saved = std::fs::read_to_string(super::backup_path(&file)).ok();
    let (after, lines) = match t.harness {
        Harness::Codex => codex_remove(&file, &before, saved.as_deref())?,
        _ => claude_remove(&file, &before, saved.as_deref())?,
    };
    super::finish_removal(file, &before, &after, saved.as_deref(), lines).map(Some)
}

fn conflict(file: &Path, found: String) -> InstallError {
    InstallError::Conflict {
        path: file.to_path_buf(),
        detail: format!(
            "{found}; rename or remove it, then run the command again (the kernel registers its server as `{SERVER_NAME}`)"
        ),
    }
}

fn claude_entry(bin: &Path) -> Json {
    Json::Object(vec![
        ("type".into(), Json::String("stdio".into())),
        (
            "command".into(),
            Json::String(bin.to_string_lossy().into_owned()),
        ),
        (
            "args".into(),
            Json::Array(ARGS.iter().map(|a| Json::String((*a).into())).collect()),
        ),
    ])
}

fn claude_ours(v: &Json) -> bool {
    matches!(v.get("args"), Some(Json::Array(a))
        if a.iter().map(Json::as_str).eq(ARGS.iter().map(|s| Some(*s))))
}

fn claude_add(
    file: &Path,
    before: Option<&str>,
    bin: &Path,
) -> Result<(String, Vec<String>), InstallError> {
    let mut root = hooks_json::parse(file, before)?;
    let servers = root
        .entry(CLAUDE_KEY, Json::Object(Vec::new()))
        .filter(|s| matches!(s, Json::Object(_)))
        .ok_or_else(|| conflict(file, format!("`{CLAUDE_KEY}` is not an object")))?;
    let wanted = claude_entry(bin);
    let line = match servers.get(SERVER_NAME) {
        Some(v) if *v == wanted => return Ok((before.unwrap_or_default().to_string(), Vec::new())),
        Some(v) if claude_ours(v) => {
            format!("{CLAUDE_KEY}.{SERVER_NAME}: updated to {}", bin.display())
        }
        Some(_) => {
            return Err(conflict(
                file,
                format!("`{CLAUDE_KEY}.{SERVER_NAME}` already runs another program"),
            ));
        }
        None => format!(
            "{CLAUDE_KEY}.{SERVER_NAME}: added the MCP server `{} agent mcp`",
            bin.display()
        ),
    };
    match servers.get_mut(SERVER_NAME) {
        Some(v) => *v = wanted,
        None => {
            if let Json::Object(m) = servers {
                m.push((SERVER_NAME.into(), wanted));
            }
        }
    }
    Ok((root.pretty(), vec![line]))
}

fn claude_remove(
    file: &Path,
    before: &str,
    saved: Option<&str>,
) -> Result<(String, Vec<String>), InstallError> {
    let mut root = hooks_json::parse(file, Some(before))?;
    let Some(servers) = root.get_mut(CLAUDE_KEY) else {
        return Ok((before.to_string(), Vec::new()));
    };
    if !servers.get(SERVER_NAME).is_some_and(claude_ours) {
        return Ok((before.to_string(), Vec::new()));
    }
    servers.remove(SERVER_NAME);
    if matches!(servers, Json::Object(m) if m.is_empty()) {
        root.remove(CLAUDE_KEY);
    }
    let lines = vec![format!(
        "{CLAUDE_KEY}.{SERVER_NAME}: removed the MCP server"
    )];
    if let Some(saved) = saved
        && serde_json::from_str::<Json>(saved).is_ok_and(|s| s == root)
    {
        return Ok((saved.to_string(), lines));
    }
    Ok((root.pretty(), lines))
}

fn codex_ours(item: &toml_edit::Item) -> bool {
    item.as_table_like()
        .and_then(|t| t.get("args"))
        .and_then(toml_edit::Item::as_array)
        .is_some_and(|a| {
            a.iter()
                .map(|v| v.as_str())
                .eq(ARGS.iter().map(|s| Some(*s)))
        })
}

fn codex_command(item: &toml_edit::Item) -> Option<&str> {
    item.as_table_like()?.get("command")?.as_str()
}

fn codex_add(
    file: &Path,
    before: Option<&str>,
    bin: &Path,
) -> Result<(String, Vec<String>), InstallError> {
    let mut doc = parse_toml(file, before)?;
    let command = bin.to_string_lossy().into_owned();
    let servers = doc.entry(CODEX_KEY).or_insert_with(|| {
        let mut t = toml_edit::Table::new();
        t.set_implicit(true);
        toml_edit::Item::Table(t)
    });
    let line = match servers.get(SERVER_NAME) {
        Some(item) if codex_ours(item) && codex_command(item) == Some(command.as_str()) => {
            return Ok((before.unwrap_or_default().to_string(), Vec::new()));
        }
        Some(item) if codex_ours(item) => {
            format!("[{CODEX_KEY}.{SERVER_NAME}]: updated to {command}")
        }
        Some(_) => {
            return Err(conflict(
                file,
                format!("`[{CODEX_KEY}.{SERVER_NAME}]` already runs another program"),
            ));
        }
        None => format!("[{CODEX_KEY}.{SERVER_NAME}]: added the MCP server `{command} agent mcp`"),
    };
    let mut args = toml_edit::Array::new();
    for a in ARGS {
        args.push(a);
    }
    if let Some(table) = servers.as_table_mut() {
        let mut ours = toml_edit::Table::new();
        ours.insert("command", toml_edit::value(command));
        ours.insert("args", toml_edit::value(args));
        table.insert(SERVER_NAME, toml_edit::Item::Table(ours));
    } else if let Some(inline) = servers.as_inline_table_mut() {
        let mut ours = toml_edit::InlineTable::new();
        ours.insert("command", command.into());
        ours.insert("args", args.into());
        inline.insert(SERVER_NAME, ours.into());
    } else {
        return Err(conflict(file, format!("`{CODEX_KEY}` is not a table")));
    }
    Ok((doc.to_string(), vec![line]))
}

fn codex_remove(
    file: &Path,
    before: &str,
    saved: Option<&str>,
) -> Result<(String, Vec<String>), InstallError> {
    let mut doc = parse_toml(file, Some(before))?;
    let Some(servers) = doc.get_mut(CODEX_KEY).and_then(|s| s.as_table_like_mut()) else {
        return Ok((before.to_string(), Vec::new()));
    };
    if !servers.get(SERVER_NAME).is_some_and(codex_ours) {
        return Ok((before.to_string(), Vec::new()));
    }
    servers.remove(SERVER_NAME);
    if servers.is_empty() {
        doc.remove(CODEX_KEY);
    }
    let after = doc.to_string();
    let lines = vec![format!(
        "[{CODEX_KEY}.{SERVER_NAME}]: removed the MCP server"
    )];
    let restored = saved
        .filter(|s| {
            s.parse::<toml_edit::DocumentMut>()
                .is_ok_and(|d| d.to_string() == after)
        })
        .map_or(after, str::to_string);
    Ok((restored, lines))
}

#[cfg(test)]
mod tests;
