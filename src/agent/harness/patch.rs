//! The patch format Codex's and OpenCode's `apply_patch` tools take:
//! `*** Begin Patch`, then per file `*** Add File: p` (every line `+`),
//! `*** Update File: p` (hunks after `@@`, added lines `+`) or
//! `*** Delete File: p`, then `*** End Patch`. What matters to the
//! tagger is each file's path and the lines the agent added.

/// Each file a patch adds to, with the text of its added lines.
pub fn added(patch: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in patch.lines() {
        let header = line
            .strip_prefix("*** Add File: ")
            .or_else(|| line.strip_prefix("*** Update File: "));
        if let Some(path) = header {
            out.extend(current.take());
            current = Some((path.trim().to_string(), String::new()));
            continue;
        }
        if line.starts_with("*** ") {
            // Delete File, Move to, End Patch, End of File.
            if !line.starts_with("*** Move to: ") && !line.starts_with("*** End of File") {
                out.extend(current.take());
            }
            continue;
        }
        if let (Some((_, text)), Some(added)) = (current.as_mut(), line.strip_prefix('+')) {
            text.push_str(added);
            text.push('\n');
        }
    }
    out.extend(current);
    out.retain(|(_, text)| !text.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_lines_per_file() {
        let patch = "*** Begin Patch\n*** Add File: src/a.rs\n+fn a() {}\n+fn b() {}\n\
                     *** Update File: b.py\n@@ def f():\n-    return 1\n+    return 2\n \
                     x = 1\n*** Delete File: c.go\n*** End Patch\n";
        assert_eq!(
            added(patch),
            vec![
                ("src/a.rs".to_string(), "fn a() {}\nfn b() {}\n".to_string()),
                ("b.py".to_string(), "    return 2\n".to_string()),
            ]
        );
        assert!(added("not a patch").is_empty());
    }
}
