use super::super::{CodexMode, backup_path, install_all, uninstall_all};
use super::*;

/// A `~/.claude.json` as Claude Code keeps it: state, projects, and the
/// engineer's own MCP server.
const CLAUDE_JSON: &str = r#"{
  "numStartups": 12,
  "projects": {
    "/home/e/repo": {
      "allowedTools": [],
      "mcpServers": {}
    }
  },
  "mcpServers": {
    "github": {
      "type": "stdio",
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-github"],
      "env": {"GITHUB_TOKEN": "x"}
    }
  },
  "oauthAccount": {"emailAddress": "e@example.com"}
}
"#;

const CODEX_TOML: &str = r#"# my codex
model = "o3"

[mcp_servers.docs]
command = "docs-mcp"
args = ["--stdio"]

[profiles.fast]
model = "mini"
"#;

fn target(dir: &Path, harness: Harness, scope: Scope) -> Target {
    Target {
        harness,
        scope,
        bin: PathBuf::from("/opt/aiworklab/bin/aiworklab"),
        home: dir.join("home"),
        project: dir.join("project"),
        claude_config_dir: None,
        codex_home: Some(dir.join("codex-home")),
        xdg_config_home: None,
        codex_mode: CodexMode::Hooks,
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("read")
}

#[test]
fn claude_code_user_scope_merges_into_claude_json_and_uninstall_restores_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = target(dir.path(), Harness::ClaudeCode, Scope::User);
    let file = t.mcp_file().expect("claude registers");
    assert_eq!(file, dir.path().join("home/.claude.json"));
    write(&file, CLAUDE_JSON);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }

    let reports = install_all(&t).expect("install");
    assert_eq!(reports.len(), 2, "hooks and MCP");
    assert_eq!(reports[1].file, file);
    assert!(reports[1].changed, "{}", reports[1]);
    let v: serde_json::Value = serde_json::from_str(&read(&file)).expect("json");
    let before: serde_json::Value = serde_json::from_str(CLAUDE_JSON).expect("json");
    assert_eq!(
        v["mcpServers"]["aiworklab"],
        serde_json::json!({"type": "stdio", "command": "/opt/aiworklab/bin/aiworklab", "args": ["agent", "mcp"]})
    );
    assert_eq!(v["mcpServers"]["github"], before["mcpServers"]["github"]);
    for key in ["numStartups", "projects", "oauthAccount"] {
        assert_eq!(v[key], before[key], "{key}");
    }
    let text = read(&file);
    assert!(text.find("\"numStartups\"") < text.find("\"oauthAccount\""));
    assert_eq!(read(&backup_path(&file)), CLAUDE_JSON);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for p in [&file, &backup_path(&file)] {
            let mode = std::fs::metadata(p).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{} keeps its mode", p.display());
        }
    }

    let again = install_all(&t).expect("again");
    assert!(again.iter().all(|r| !r.changed), "{again:?}");
    assert_eq!(read(&file), text);

    let removed = uninstall_all(&t).expect("uninstall");
    assert!(removed.iter().all(|r| r.changed), "{removed:?}");
    assert_eq!(read(&file), CLAUDE_JSON, "restored exactly");
    assert!(!backup_path(&file).exists());
    assert!(uninstall_all(&t).expect("again").iter().all(|r| !r.changed));
}

#[test]
fn claude_config_dir_and_project_scope_and_changes_made_since() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut t = target(dir.path(), Harness::ClaudeCode, Scope::User);
    t.claude_config_dir = Some(dir.path().join("cc"));
    assert_eq!(t.mcp_file(), Some(dir.path().join("cc/.claude.json")));

    let t = target(dir.path(), Harness::ClaudeCode, Scope::Project);
    let file = t.mcp_file().expect("project");
    assert_eq!(file, dir.path().join("project/.mcp.json"));
    register(&t).expect("register on no file");
    assert!(!backup_path(&file).exists(), "nothing to back up");
    // The harness (or the engineer) adds another server meanwhile.
    let v: serde_json::Value = serde_json::from_str(&read(&file)).expect("json");
    let mut v = v;
    v["mcpServers"]["db"] = serde_json::json!({"command": "db-mcp"});
    write(&file, &serde_json::to_string_pretty(&v).expect("json"));
    unregister(&t).expect("unregister");
    let v: serde_json::Value = serde_json::from_str(&read(&file)).expect("json");
    assert_eq!(
        v,
        serde_json::json!({"mcpServers": {"db": {"command": "db-mcp"}}})
    );
    // Alone, the file install created is removed with the server.
    std::fs::remove_file(&file).expect("rm");
    register(&t).expect("register");
    unregister(&t).expect("unregister");
    assert!(!file.exists());
}

#[test]
fn someone_elses_aiworklab_server_and_broken_files_are_refused_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = target(dir.path(), Harness::ClaudeCode, Scope::Project);
    let file = t.mcp_file().expect("file");
    for bad in [
        "{\"mcpServers\": {\"aiworklab\": {\"command\": \"other\", \"args\": []}}}",
        "{\"mcpServers\": []}",
        "{\"mcpServers\": ",
    ] {
        write(&file, bad);
        let err = register(&t).expect_err(bad).to_string();
        assert!(
            err.contains(".mcp.json") && err.contains("then run the command again"),
            "{err}"
        );
        assert_eq!(read(&file), bad);
    }
    // An older path of our own server is updated in place.
    write(
        &file,
        "{\"mcpServers\": {\"aiworklab\": {\"command\": \"/old/aiworklab\", \"args\": [\"agent\", \"mcp\"]}, \"z\": {}}}",
    );
    let r = register(&t).expect("update").expect("report");
    assert!(r.lines[0].contains("updated"), "{r}");
    let text = read(&file);
    assert!(text.contains("/opt/aiworklab/bin/aiworklab") && !text.contains("/old/"));
    assert!(
        text.find("aiworklab\"") < text.find("\"z\""),
        "kept its place: {text}"
    );
}

#[test]
fn codex_config_toml_gets_a_server_table_beside_the_notify_hook() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut t = target(dir.path(), Harness::Codex, Scope::User);
    let file = t.mcp_file().expect("codex registers");
    assert_eq!(file, dir.path().join("codex-home/config.toml"));
    write(&file, CODEX_TOML);

    // hooks mode: hooks.json for the hooks, config.toml for the server.
    let reports = install_all(&t).expect("install");
    assert_eq!(reports.len(), 2);
    let text = read(&file);
    let doc: toml_edit::DocumentMut = text.parse().expect("toml");
    assert_eq!(
        doc["mcp_servers"]["aiworklab"]["command"].as_str(),
        Some("/opt/aiworklab/bin/aiworklab")
    );
    let args: Vec<&str> = doc["mcp_servers"]["aiworklab"]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(args, ["agent", "mcp"]);
    assert_eq!(
        doc["mcp_servers"]["docs"]["command"].as_str(),
        Some("docs-mcp")
    );
    assert_eq!(doc["profiles"]["fast"]["model"].as_str(), Some("mini"));
    assert!(text.starts_with("# my codex\n"));
    assert!(install_all(&t).expect("again").iter().all(|r| !r.changed));
    uninstall_all(&t).expect("uninstall");
    assert_eq!(read(&file), CODEX_TOML, "restored exactly");

    // notify mode: both in config.toml, and uninstall still restores it.
    t.codex_mode = CodexMode::Notify;
    install_all(&t).expect("install notify");
    let doc: toml_edit::DocumentMut = read(&file).parse().expect("toml");
    assert!(doc.get("notify").is_some() && doc["mcp_servers"].get("aiworklab").is_some());
    assert!(install_all(&t).expect("again").iter().all(|r| !r.changed));
    uninstall_all(&t).expect("uninstall");
    assert_eq!(read(&file), CODEX_TOML, "restored exactly");
    assert!(!backup_path(&file).exists());

    // A config without servers: the table goes again with ours.
    t.codex_mode = CodexMode::Hooks;
    write(&file, "model = \"o3\"\n");
    register(&t).expect("register");
    assert!(
        read(&file).contains("[mcp_servers.aiworklab]"),
        "{}",
        read(&file)
    );
    unregister(&t).expect("unregister");
    assert_eq!(read(&file), "model = \"o3\"\n");
    // Someone else's server of that name is not replaced.
    write(&file, "[mcp_servers.aiworklab]\ncommand = \"x\"\n");
    let err = register(&t).expect_err("conflict").to_string();
    assert!(err.contains("another program"), "{err}");
}

#[test]
fn opencode_has_no_mcp_registration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = target(dir.path(), Harness::OpenCode, Scope::User);
    assert_eq!(t.mcp_file(), None);
    assert_eq!(install_all(&t).expect("install").len(), 1);
}
