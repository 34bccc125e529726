use super::*;

const EXISTING: &str = r#"{
  "model": "opus",
  "permissions": {
    "allow": ["Bash(npm run lint)"],
    "deny": []
  },
  "hooks": {
    "PostToolUse": [
      {
        "matcher": "Edit|Write",
        "hooks": [
          {
            "type": "command",
            "command": "npx prettier --write \"$CLAUDE_FILE_PATHS\""
          }
        ]
      }
    ],
    "Notification": [
      {
        "hooks": [
          {
            "type": "command",
            "command": "notify-send claude"
          }
        ]
      }
    ]
  },
  "env": {
    "FOO": "1"
  }
}
"#;

fn target(dir: &Path, harness: Harness, scope: Scope) -> Target {
    Target {
        harness,
        scope,
        bin: PathBuf::from("/opt/aiworklab/bin/aiworklab"),
        home: dir.join("home"),
        project: dir.join("project"),
        claude_config_dir: Some(dir.join("claude-config")),
        codex_home: Some(dir.join("codex-home")),
        xdg_config_home: None,
        codex_mode: CodexMode::Hooks,
    }
}

#[test]
fn claude_code_merges_is_idempotent_and_uninstall_restores_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = target(dir.path(), Harness::ClaudeCode, Scope::User);
    let file = t.file();
    assert_eq!(
        file,
        dir.path().join("claude-config/settings.json"),
        "CLAUDE_CONFIG_DIR is honoured"
    );
    std::fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
    std::fs::write(&file, EXISTING).expect("write");

    let report = install(&t).expect("install");
    assert!(report.changed);
    assert_eq!(report.lines.len(), 4, "{report}");
    assert_eq!(
        std::fs::read_to_string(backup_path(&file)).expect("backup"),
        EXISTING
    );
    let text = std::fs::read_to_string(&file).expect("read");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    let before: serde_json::Value = serde_json::from_str(EXISTING).expect("json");
    // Unrelated keys and the engineer's own hooks are untouched.
    for key in ["model", "permissions", "env"] {
        assert_eq!(v[key], before[key], "{key}");
    }
    assert_eq!(v["hooks"]["Notification"], before["hooks"]["Notification"]);
    assert_eq!(
        v["hooks"]["PostToolUse"][0],
        before["hooks"]["PostToolUse"][0]
    );
    assert_eq!(v["hooks"]["PostToolUse"][1]["matcher"], "*");
    assert_eq!(
        v["hooks"]["PostToolUse"][1]["hooks"][0]["command"],
        "/opt/aiworklab/bin/aiworklab agent hook --harness claude-code"
    );
    for event in ["SessionStart", "Stop", "SessionEnd"] {
        assert_eq!(
            v["hooks"][event].as_array().map(Vec::len),
            Some(1),
            "{event}"
        );
    }
    // Key order is the file's own.
    assert!(text.find("\"model\"") < text.find("\"permissions\""));
    assert!(text.find("\"hooks\"") < text.find("\"env\""));

    let again = install(&t).expect("second install");
    assert!(!again.changed, "{again}");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), text);

    let removed = uninstall(&t).expect("uninstall");
    assert!(removed.changed);
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        EXISTING,
        "restored exactly"
    );
    assert!(!backup_path(&file).exists());
    assert!(!uninstall(&t).expect("second uninstall").changed);
}

#[test]
fn uninstall_keeps_changes_made_since_install() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = target(dir.path(), Harness::ClaudeCode, Scope::Project);
    let file = t.file();
    assert_eq!(file, dir.path().join("project/.claude/settings.json"));
    install(&t).expect("install on no file");
    assert!(!backup_path(&file).exists(), "no file, nothing to back up");
    let text = std::fs::read_to_string(&file).expect("read");
    let edited = text.replacen('{', "{\n  \"theme\": \"dark\",", 1);
    std::fs::write(&file, edited).expect("write");
    uninstall(&t).expect("uninstall");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
    assert_eq!(v, serde_json::json!({"theme": "dark"}));
}

#[test]
fn invalid_settings_are_refused_with_the_fix_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = target(dir.path(), Harness::ClaudeCode, Scope::User);
    let file = t.file();
    std::fs::create_dir_all(file.parent().expect("dir")).expect("mkdir");
    for bad in [
        "{ \"hooks\": ",
        "[1, 2]",
        "{\"hooks\": []}",
        "{\"hooks\": {\"Stop\": {}}}",
    ] {
        std::fs::write(&file, bad).expect("write");
        let err = install(&t).expect_err(bad).to_string();
        assert!(err.contains("settings.json"), "{err}");
        assert!(err.contains("then run the command again"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), bad);
    }
}

#[test]
fn codex_hooks_json_and_notify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut t = target(dir.path(), Harness::Codex, Scope::User);
    let file = t.file();
    assert_eq!(
        file,
        dir.path().join("codex-home/hooks.json"),
        "CODEX_HOME is honoured"
    );
    install(&t).expect("install");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
    for event in ["SessionStart", "PostToolUse", "Stop"] {
        assert_eq!(
            v["hooks"][event][0]["hooks"][0]["command"],
            "/opt/aiworklab/bin/aiworklab agent hook --harness codex"
        );
    }
    assert!(!install(&t).expect("again").changed);
    uninstall(&t).expect("uninstall");
    assert!(!file.exists(), "the file install created is gone");

    t.codex_mode = CodexMode::Notify;
    let config = t.file();
    let original = "# my codex\nmodel = \"o3\"\n\n[profiles.fast]\nmodel = \"mini\"\n";
    std::fs::write(&config, original).expect("write");
    install(&t).expect("install notify");
    let text = std::fs::read_to_string(&config).expect("read");
    let doc: toml_edit::DocumentMut = text.parse().expect("toml");
    assert_eq!(doc["notify"].as_array().map(|a| a.len()), Some(5));
    assert_eq!(doc["profiles"]["fast"]["model"].as_str(), Some("mini"));
    assert!(text.starts_with("# my codex\n"));
    assert!(!install(&t).expect("again").changed);
    uninstall(&t).expect("uninstall");
    assert_eq!(std::fs::read_to_string(&config).expect("read"), original);
    // Someone else's notify is not replaced.
    std::fs::write(&config, "notify = [\"terminal-notifier\"]\n").expect("write");
    let err = install(&t).expect_err("conflict").to_string();
    assert!(err.contains("notify"), "{err}");
}

#[test]
fn opencode_plugin_is_written_and_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = target(dir.path(), Harness::OpenCode, Scope::User);
    let file = t.file();
    assert_eq!(
        file,
        dir.path().join("home/.config/opencode/plugin/aiworklab.js")
    );
    install(&t).expect("install");
    let js = std::fs::read_to_string(&file).expect("read");
    assert!(js.contains("\"/opt/aiworklab/bin/aiworklab\""));
    assert!(js.contains("tool.execute.after") && !js.contains("@AIWORKLAB@"));
    assert!(!install(&t).expect("again").changed);
    assert!(uninstall(&t).expect("uninstall").changed);
    assert!(!file.exists());
}
