//! `aiworklab agent install|uninstall --harness claude-code|codex|opencode
//! [--scope user|project]`: puts the kernel's hook into a harness's own
//! configuration and takes it out again.
//!
//! Both are idempotent. Install merges into the existing file (keys keep
//! their order, nothing else changes), keeps the file as it was in
//! `<file>.aiworklab-backup` before its first change, and says what it
//! changed. Uninstall removes only what install added; when the rest is
//! exactly what the backup holds, the backup's bytes are restored.

mod hooks_json;
pub mod inspect;
/// The kernel's MCP server in Claude Code's and Codex's settings.
pub mod mcp;
pub mod ojson;

use std::path::{Path, PathBuf};

use crate::agent::harness::Harness;

/// Where a harness's settings live: the engineer's own, or the project's
/// (checked in, shared with the team).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    User,
    Project,
}

impl Scope {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Self::User),
            "project" => Some(Self::Project),
            _ => None,
        }
    }
}

/// What the installer needs to know about this machine.
#[derive(Debug, Clone)]
pub struct Target {
    pub harness: Harness,
    pub scope: Scope,
    /// The `aiworklab` binary the hook runs.
    pub bin: PathBuf,
    /// The user's home directory.
    pub home: PathBuf,
    /// The project directory (`--scope project`): the current directory.
    pub project: PathBuf,
    /// `$CLAUDE_CONFIG_DIR` (else `~/.claude`).
    pub claude_config_dir: Option<PathBuf>,
    /// `$CODEX_HOME` (else `~/.codex`).
    pub codex_home: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME` (else `~/.config`).
    pub xdg_config_home: Option<PathBuf>,
    /// How to reach Codex: hooks (`hooks.json`) or, for Codex versions
    /// without hooks, `notify` in `config.toml`.
    pub codex_mode: CodexMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodexMode {
    Hooks,
    Notify,
}

impl Target {
    /// A target from the environment (`HOME`, `CLAUDE_CONFIG_DIR`,
    /// `CODEX_HOME`, `XDG_CONFIG_HOME`, the current directory and
    /// executable).
    ///
    /// # Errors
    /// No home directory or current directory.
    pub fn from_env(
        harness: Harness,
        scope: Scope,
        codex_mode: CodexMode,
    ) -> Result<Self, InstallError> {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let home =
            var("HOME").ok_or_else(|| InstallError::Environment("HOME is not set".into()))?;
        let project = std::env::current_dir()
            .map_err(|e| InstallError::Environment(format!("the current directory: {e}")))?;
        let bin = std::env::current_exe()
            .map_err(|e| InstallError::Environment(format!("this program's path: {e}")))?;
        Ok(Self {
            harness,
            scope,
            bin,
            home,
            project,
            claude_config_dir: var("CLAUDE_CONFIG_DIR"),
            codex_home: var("CODEX_HOME"),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            codex_mode,
        })
    }

    /// The file install changes.
    pub fn file(&self) -> PathBuf {
        match (self.harness, self.scope) {
            (Harness::ClaudeCode, Scope::User) => self
                .claude_config_dir
                .clone()
                .unwrap_or_else(|| self.home.join(".claude"))
                .join("settings.json"),
            (Harness::ClaudeCode, Scope::Project) => self.project.join(".claude/settings.json"),
            (Harness::Codex, scope) => {
                let dir = match scope {
                    Scope::User => self
                        .codex_home
                        .clone()
                        .unwrap_or_else(|| self.home.join(".codex")),
                    Scope::Project => self.project.join(".codex"),
                };
                dir.join(match self.codex_mode {
                    CodexMode::Hooks => "hooks.json",
                    CodexMode::Notify => "config.toml",
                })
            }
            (Harness::OpenCode, Scope::User) => self
                .xdg_config_home
                .clone()
                .unwrap_or_else(|| self.home.join(".config"))
                .join("opencode/plugin/aiworklab.js"),
            (Harness::OpenCode, Scope::Project) => {
                self.project.join(".opencode/plugin/aiworklab.js")
            }
        }
    }

    /// The hook command line, the binary quoted for a POSIX shell.
    pub fn command(&self) -> String {
        format!(
            "{} agent hook --harness {}",
            shell_quote(&self.bin),
            self.harness
        )
    }
}

/// What install or uninstall did.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub file: PathBuf,
    pub changed: bool,
    pub backup: Option<PathBuf>,
    /// One line per change, for the engineer.
    pub lines: Vec<String>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.changed {
            return writeln!(f, "{}: nothing to change", self.file.display());
        }
        writeln!(f, "{}:", self.file.display())?;
        for l in &self.lines {
            writeln!(f, "  {l}")?;
        }
        if let Some(b) = &self.backup {
            writeln!(
                f,
                "  (the file as it was before is kept in {})",
                b.display()
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot locate the settings: {0}")]
    Environment(String),
    #[error("{path} is not valid {kind} ({detail}); fix or move it, then run the command again")]
    Unreadable {
        path: PathBuf,
        kind: &'static str,
        detail: String,
    },
    #[error("{path}: {detail}")]
    Conflict { path: PathBuf, detail: String },
    #[error("cannot write {path}: {source}; check its permissions")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Adds the kernel's hook to the harness's settings.
///
/// # Errors
/// The existing file is not valid JSON/TOML, holds something the hook
/// cannot be merged with, or cannot be written.
pub fn install(t: &Target) -> Result<Report, InstallError> {
    let file = t.file();
    let before = read(&file)?;
    let (after, lines) = match (t.harness, t.codex_mode) {
        (Harness::ClaudeCode, _) => hooks_json::add(&file, before.as_deref(), &t.command(), true)?,
        (Harness::Codex, CodexMode::Hooks) => {
            hooks_json::add(&file, before.as_deref(), &t.command(), false)?
        }
        (Harness::Codex, CodexMode::Notify) => codex_notify_add(&file, before.as_deref(), t)?,
        (Harness::OpenCode, _) => {
            let plugin = crate::agent::harness::opencode::PLUGIN.replace(
                "@AIWORKLAB@",
                &t.bin.to_string_lossy().replace(['\\', '"'], ""),
            );
            (
                plugin,
                vec!["the OpenCode plugin that forwards events to the kernel".to_string()],
            )
        }
    };
    write_if_changed(&file, before.as_deref(), &after, lines, true)
}

/// `agent install`: the hooks, then the MCP server for the harnesses
/// that take one (Claude Code, Codex); one report per file.
///
/// # Errors
/// As [`install`] and [`mcp::register`]; the hooks stay installed when
/// the MCP registration fails.
pub fn install_all(t: &Target) -> Result<Vec<Report>, InstallError> {
    let mut reports = vec![install(t)?];
    reports.extend(mcp::register(t)?);
    Ok(reports)
}

/// `agent uninstall`: the MCP server, then the hooks (so a file both
/// changed, Codex's `config.toml` in notify mode, ends as it was).
///
/// # Errors
/// As [`uninstall`] and [`mcp::unregister`].
pub fn uninstall_all(t: &Target) -> Result<Vec<Report>, InstallError> {
    let mut reports: Vec<Report> = mcp::unregister(t)?.into_iter().collect();
    reports.push(uninstall(t)?);
    Ok(reports)
}

fn unchanged(file: PathBuf) -> Report {
    Report {
        file,
        changed: false,
        backup: None,
        lines: Vec::new(),
    }
}

/// Removes what install added; everything else stays.
///
/// # Errors
/// As `install`.
pub fn uninstall(t: &Target) -> Result<Report, InstallError> {
    let file = t.file();
    let Some(before) = read(&file)? else {
        return Ok(unchanged(file));
    };
    let backup = backup_path(&file);
    let saved = std::fs::read_to_string(&backup).ok();
    let (after, lines) = match (t.harness, t.codex_mode) {
        (Harness::ClaudeCode, _) | (Harness::Codex, CodexMode::Hooks) => {
            hooks_json::remove(&file, &before, saved.as_deref(), t.harness)?
        }
        (Harness::Codex, CodexMode::Notify) => {
            codex_notify_remove(&file, &before, saved.as_deref())?
        }
        (Harness::OpenCode, _) => return remove_plugin(file, &before, &backup),
    };
    finish_removal(file, &before, &after, saved.as_deref(), lines)
}

/// Writes what is left after a removal: a file install created and that
/// is now empty is deleted; a file back to its backup's content gets the
/// backup's bytes and the backup goes.
fn finish_removal(
    file: PathBuf,
    before: &str,
    after: &str,
    saved: Option<&str>,
    lines: Vec<String>,
) -> Result<Report, InstallError> {
    let created_by_us = saved.is_none() && matches!(after.trim(), "" | "{}");
    if created_by_us && !lines.is_empty() {
        std::fs::remove_file(&file).map_err(|source| InstallError::Io {
            path: file.clone(),
            source,
        })?;
        return Ok(Report {
            file,
            changed: true,
            backup: None,
            lines,
        });
    }
    let report = write_if_changed(&file, Some(before), after, lines, false)?;
    if report.changed && saved == Some(after) {
        let _ = std::fs::remove_file(backup_path(&file));
    }
    Ok(report)
}

/// What marks the OpenCode plugin as the kernel's.
const PLUGIN_MARK: &str = "\"agent\", \"hook\", \"--harness\", \"opencode\"";

fn remove_plugin(file: PathBuf, text: &str, backup: &Path) -> Result<Report, InstallError> {
    if !text.contains(PLUGIN_MARK) {
        return Err(InstallError::Conflict {
            path: file,
            detail:
                "this plugin file was not written by `aiworklab agent install`; remove it yourself"
                    .into(),
        });
    }
    std::fs::remove_file(&file).map_err(|source| InstallError::Io {
        path: file.clone(),
        source,
    })?;
    let _ = std::fs::remove_file(backup);
    Ok(Report {
        file,
        changed: true,
        backup: None,
        lines: vec!["removed the OpenCode plugin".into()],
    })
}

fn read(file: &Path) -> Result<Option<String>, InstallError> {
    match std::fs::read_to_string(file) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(InstallError::Io {
            path: file.to_path_buf(),
            source,
        }),
    }
}

/// `settings.json` -> `settings.json.aiworklab-backup`.
pub fn backup_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".aiworklab-backup");
    file.with_file_name(name)
}

fn write_if_changed(
    file: &Path,
    before: Option<&str>,
    after: &str,
    lines: Vec<String>,
    installing: bool,
) -> Result<Report, InstallError> {
    if before == Some(after) {
        return Ok(Report {
            file: file.to_path_buf(),
            changed: false,
            backup: None,
            lines: Vec::new(),
        });
    }
    let io = |source| InstallError::Io {
        path: file.to_path_buf(),
        source,
    };
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    // The backup and the new file keep the old file's mode: settings such
    // as `~/.claude.json` are private to their owner.
    let mode = std::fs::metadata(file).ok().map(|m| m.permissions());
    let mut backup = None;
    if installing && let Some(old) = before {
        let path = backup_path(file);
        if !path.exists() {
            write_with(&path, old, mode.as_ref()).map_err(io)?;
        }
        backup = Some(path);
    }
    // Write beside, then rename: a crash leaves the old file or the new.
    let tmp = file.with_extension("aiworklab-tmp");
    write_with(&tmp, after, mode.as_ref()).map_err(io)?;
    std::fs::rename(&tmp, file).map_err(io)?;
    Ok(Report {
        file: file.to_path_buf(),
        changed: true,
        backup,
        lines,
    })
}

/// Writes `text` to a new `path`. With the `mode` of the file it stands
/// for, it is created owner-only and then given that mode; without, the
/// umask decides.
fn write_with(path: &Path, text: &str, mode: Option<&std::fs::Permissions>) -> std::io::Result<()> {
    use std::io::Write;
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if mode.is_some() {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(text.as_bytes())?;
    if let Some(m) = mode {
        std::fs::set_permissions(path, m.clone())?;
    }
    Ok(())
}

const NOTIFY_KEY: &str = "notify";

fn notify_argv(t: &Target) -> Vec<String> {
    vec![
        t.bin.to_string_lossy().into_owned(),
        "agent".into(),
        "hook".into(),
        "--harness".into(),
        "codex".into(),
    ]
}

fn is_ours(item: &toml_edit::Item) -> bool {
    item.as_array().is_some_and(|a| {
        let parts: Vec<&str> = a.iter().filter_map(|v| v.as_str()).collect();
        parts.ends_with(&["agent", "hook", "--harness", "codex"])
    })
}

fn parse_toml(file: &Path, text: Option<&str>) -> Result<toml_edit::DocumentMut, InstallError> {
    text.unwrap_or_default()
        .parse::<toml_edit::DocumentMut>()
        .map_err(|e| InstallError::Unreadable {
            path: file.to_path_buf(),
            kind: "TOML",
            detail: e.to_string(),
        })
}

fn codex_notify_add(
    file: &Path,
    before: Option<&str>,
    t: &Target,
) -> Result<(String, Vec<String>), InstallError> {
    let mut doc = parse_toml(file, before)?;
    if let Some(existing) = doc.get(NOTIFY_KEY) {
        if is_ours(existing) {
            return Ok((before.unwrap_or_default().to_string(), Vec::new()));
        }
        return Err(InstallError::Conflict {
            path: file.to_path_buf(),
            detail: "`notify` already runs another program and Codex takes only one; use \
                     `--codex-mode hooks` (Codex 0.124 or later) or call `aiworklab agent hook \
                     --harness codex \"$1\"` from your notify script"
                .into(),
        });
    }
    let mut arr = toml_edit::Array::new();
    for a in notify_argv(t) {
        arr.push(a);
    }
    // A top-level key must come before the first table.
    doc.insert(NOTIFY_KEY, toml_edit::value(arr));
    Ok((doc.to_string(), vec!["notify = the kernel's hook".into()]))
}

fn codex_notify_remove(
    file: &Path,
    before: &str,
    saved: Option<&str>,
) -> Result<(String, Vec<String>), InstallError> {
    let mut doc = parse_toml(file, Some(before))?;
    if !doc.get(NOTIFY_KEY).is_some_and(is_ours) {
        return Ok((before.to_string(), Vec::new()));
    }
    doc.remove(NOTIFY_KEY);
    let after = doc.to_string();
    let restored = saved
        .filter(|s| {
            s.parse::<toml_edit::DocumentMut>()
                .is_ok_and(|d| d.to_string() == after)
        })
        .map_or(after, str::to_string);
    Ok((restored, vec!["removed notify".into()]))
}

/// Quotes a path for a POSIX shell when it needs it.
fn shell_quote(p: &Path) -> String {
    let s = p.to_string_lossy();
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests;
