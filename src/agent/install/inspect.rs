//! What `agent install` put in a harness's configuration, read back with
//! the installer's own parsing (for `agent doctor`): whether the kernel's
//! hook is there, which binary it runs, and what install would add that
//! is missing. Reads only; never writes.

use std::path::{Path, PathBuf};

use super::{CodexMode, InstallError, Scope, Target, hooks_json, is_ours, parse_toml, read};
use crate::agent::harness::Harness;

/// The kernel's hook as found in one settings file.
#[derive(Debug, Clone, PartialEq)]
pub struct Installed {
    pub harness: Harness,
    pub scope: Scope,
    pub codex_mode: CodexMode,
    pub file: PathBuf,
    /// The binaries its commands run (usually one).
    pub bins: Vec<PathBuf>,
    /// What install would add or change there (an event without the
    /// hook, a plugin from another version).
    pub incomplete: Vec<String>,
}

impl Installed {
    /// The command that puts this install right.
    pub fn reinstall(&self) -> String {
        let scope = match self.scope {
            Scope::User => "",
            Scope::Project => " --scope project",
        };
        match self.codex_mode {
            // Install leaves a `notify` that is already the kernel's alone.
            CodexMode::Notify if self.harness == Harness::Codex => format!(
                "aiworklab agent uninstall --harness codex --codex-mode notify{scope}, then \
                 aiworklab agent install --harness codex --codex-mode notify{scope}"
            ),
            _ => format!("aiworklab agent install --harness {}{scope}", self.harness),
        }
    }
}

/// Every place install can write for `base.harness`: both scopes, and for
/// Codex both modes (hooks and `notify`).
pub fn targets(base: &Target) -> Vec<Target> {
    let modes: &[CodexMode] = if base.harness == Harness::Codex {
        &[CodexMode::Hooks, CodexMode::Notify]
    } else {
        &[CodexMode::Hooks]
    };
    let mut out = Vec::new();
    for scope in [Scope::User, Scope::Project] {
        for mode in modes {
            out.push(Target {
                scope,
                codex_mode: *mode,
                ..base.clone()
            });
        }
    }
    out
}

/// The kernel's hook in `t`'s file, or `None` when the file or the hook
/// is not there.
///
/// # Errors
/// The file cannot be read or is not valid JSON/TOML.
pub fn inspect(t: &Target) -> Result<Option<Installed>, InstallError> {
    let file = t.file();
    let Some(text) = read(&file)? else {
        return Ok(None);
    };
    let (bins, incomplete) = match (t.harness, t.codex_mode) {
        (Harness::ClaudeCode, _) | (Harness::Codex, CodexMode::Hooks) => {
            let hooks_json::Found { commands, missing } =
                hooks_json::installed(&file, &text, t.harness)?;
            if commands.is_empty() {
                return Ok(None);
            }
            let bins = commands
                .iter()
                .filter_map(|(_, c)| command_bin(c, t.harness))
                .collect();
            let incomplete = missing
                .into_iter()
                .map(|e| format!("no hook on {e}"))
                .collect();
            (bins, incomplete)
        }
        (Harness::Codex, CodexMode::Notify) => {
            let doc = parse_toml(&file, Some(&text))?;
            let Some(notify) = doc.get(super::NOTIFY_KEY).filter(|i| is_ours(i)) else {
                return Ok(None);
            };
            let bin = notify
                .as_array()
                .and_then(|a| a.get(0))
                .and_then(|v| v.as_str())
                .map(PathBuf::from);
            (bin.into_iter().collect(), Vec::new())
        }
        (Harness::OpenCode, _) => {
            if !text.contains(super::PLUGIN_MARK) {
                return Ok(None);
            }
            let bin = plugin_bin(&text);
            let current = bin.as_ref().is_some_and(|b| {
                text == crate::agent::harness::opencode::PLUGIN
                    .replace("@AIWORKLAB@", &b.to_string_lossy())
            });
            let incomplete = if current {
                Vec::new()
            } else {
                vec!["the plugin is not the one this version writes".to_string()]
            };
            (bin.into_iter().collect(), incomplete)
        }
    };
    let mut bins: Vec<PathBuf> = bins;
    bins.sort();
    bins.dedup();
    Ok(Some(Installed {
        harness: t.harness,
        scope: t.scope,
        codex_mode: t.codex_mode,
        file,
        bins,
        incomplete,
    }))
}

/// The binary of a hook command `<quoted bin> agent hook --harness <h>`:
/// the inverse of the installer's shell quoting.
fn command_bin(command: &str, harness: Harness) -> Option<PathBuf> {
    let quoted = command
        .strip_suffix(&format!("agent hook --harness {harness}"))?
        .trim_end();
    let bin = match quoted.strip_prefix('\'').and_then(|q| q.strip_suffix('\'')) {
        Some(inner) => inner.replace("'\\''", "'"),
        None => quoted.to_string(),
    };
    (!bin.is_empty()).then(|| PathBuf::from(bin))
}

/// The binary the OpenCode plugin spawns (`const AIWORKLAB = "…";`).
fn plugin_bin(text: &str) -> Option<PathBuf> {
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("const AIWORKLAB = \""))?;
    let bin = line.strip_suffix("\";")?;
    (!bin.is_empty()).then(|| PathBuf::from(bin))
}

/// Whether `bin` is a file this user may run.
pub fn runnable(bin: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(bin) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_is_read_back_from_what_install_writes() {
        for bin in ["/usr/bin/aiworklab", "/opt/my tools/ai'worklab"] {
            let t = Target {
                harness: Harness::ClaudeCode,
                scope: Scope::User,
                bin: PathBuf::from(bin),
                home: PathBuf::from("/h"),
                project: PathBuf::from("/p"),
                claude_config_dir: None,
                codex_home: None,
                xdg_config_home: None,
                codex_mode: CodexMode::Hooks,
            };
            assert_eq!(
                command_bin(&t.command(), Harness::ClaudeCode),
                Some(PathBuf::from(bin))
            );
            let plugin = crate::agent::harness::opencode::PLUGIN.replace("@AIWORKLAB@", bin);
            assert_eq!(plugin_bin(&plugin), Some(PathBuf::from(bin)));
        }
        assert_eq!(
            command_bin("agent hook --harness codex", Harness::Codex),
            None
        );
    }
}
