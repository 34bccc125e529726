//! The languages the tagger parses, how a file path or a Markdown fence
//! names one, and what each grammar calls its comments, strings and
//! imports.

use tree_sitter::Language;

/// A language with a syntax tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    Rust,
    Python,
    Go,
    TypeScript,
    Tsx,
    JavaScript,
    Sql,
}

impl Lang {
    pub const ALL: [Lang; 7] = [
        Self::Rust,
        Self::Python,
        Self::Go,
        Self::TypeScript,
        Self::Tsx,
        Self::JavaScript,
        Self::Sql,
    ];

    /// The language of a file, from its extension (`None`: no grammar).
    pub fn from_path(path: &str) -> Option<Lang> {
        let ext = extension(path)?;
        Some(match ext.as_str() {
            ".rs" => Self::Rust,
            ".py" | ".pyi" => Self::Python,
            ".go" => Self::Go,
            ".ts" | ".mts" | ".cts" => Self::TypeScript,
            ".tsx" => Self::Tsx,
            ".js" | ".mjs" | ".cjs" | ".jsx" => Self::JavaScript,
            ".sql" => Self::Sql,
            _ => return None,
        })
    }

    /// The language a Markdown code fence's info string names.
    pub fn from_fence(info: &str) -> Option<Lang> {
        let word = info.split_whitespace().next()?.to_ascii_lowercase();
        Some(match word.as_str() {
            "rust" | "rs" => Self::Rust,
            "python" | "py" | "python3" => Self::Python,
            "go" | "golang" => Self::Go,
            "typescript" | "ts" => Self::TypeScript,
            "tsx" => Self::Tsx,
            "javascript" | "js" | "jsx" | "mjs" => Self::JavaScript,
            "sql" | "postgresql" | "postgres" | "sqlite" | "mysql" | "plpgsql" => Self::Sql,
            _ => return None,
        })
    }

    /// The file extensions a catalogue concept lists for this language.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Self::Rust => &[".rs"],
            Self::Python => &[".py", ".pyi"],
            Self::Go => &[".go"],
            Self::TypeScript => &[".ts", ".mts", ".cts"],
            Self::Tsx => &[".tsx"],
            Self::JavaScript => &[".js", ".mjs", ".cjs", ".jsx"],
            Self::Sql => &[".sql"],
        }
    }

    pub(crate) fn grammar(self) -> Language {
        match self {
            Self::Rust => tree_sitter_rust::LANGUAGE.into(),
            Self::Python => tree_sitter_python::LANGUAGE.into(),
            Self::Go => tree_sitter_go::LANGUAGE.into(),
            Self::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Self::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Self::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Self::Sql => tree_sitter_sequel::LANGUAGE.into(),
        }
    }

    /// Whether keywords match regardless of case (SQL's do).
    pub(crate) fn case_insensitive(self) -> bool {
        self == Self::Sql
    }

    /// Node kinds that are comments: masked, never read.
    pub(crate) fn is_comment(self, kind: &str) -> bool {
        match self {
            Self::Rust => matches!(kind, "line_comment" | "block_comment"),
            Self::Sql => matches!(kind, "comment" | "marginalia"),
            _ => kind == "comment" || kind == "html_comment",
        }
    }

    /// Node kinds that are string literals: masked, but their text is
    /// kept aside in case it is embedded SQL.
    pub(crate) fn is_string(self, kind: &str) -> bool {
        match self {
            Self::Rust => matches!(
                kind,
                "string_literal" | "raw_string_literal" | "char_literal"
            ),
            Self::Python => kind == "string" || kind == "concatenated_string",
            Self::Go => matches!(
                kind,
                "interpreted_string_literal" | "raw_string_literal" | "rune_literal"
            ),
            Self::TypeScript | Self::Tsx | Self::JavaScript => {
                matches!(kind, "string" | "template_string" | "regex")
            }
            // `matcher` masks only quoted ones: `NULL` and numbers are code.
            Self::Sql => kind == "literal",
        }
    }

    /// Words every import form of the language holds.
    pub(crate) fn import_words(self) -> &'static [&'static str] {
        match self {
            Self::Rust => &["use", "extern"],
            Self::Python | Self::Go => &["import"],
            Self::TypeScript | Self::Tsx | Self::JavaScript => &["import", "require"],
            Self::Sql => &[],
        }
    }

    /// The separator between an import's path segments.
    pub(crate) fn import_separator(self) -> &'static str {
        match self {
            Self::Rust => "::",
            Self::Python => ".",
            _ => "/",
        }
    }
}

/// A path's extension with its dot, lower-cased (`.d.ts` kept whole).
pub fn extension(path: &str) -> Option<String> {
    let name = path.rsplit(['/', '\\']).next()?.to_ascii_lowercase();
    if name.ends_with(".d.ts") {
        return Some(".d.ts".into());
    }
    let dot = name.rfind('.')?;
    if dot == 0 {
        return None;
    }
    Some(name[dot..].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_fences_name_languages() {
        assert_eq!(Lang::from_path("src/main.rs"), Some(Lang::Rust));
        assert_eq!(Lang::from_path("/a/b/App.TSX"), Some(Lang::Tsx));
        assert_eq!(Lang::from_path("db/0001_init.sql"), Some(Lang::Sql));
        assert_eq!(Lang::from_path("Makefile"), None);
        assert_eq!(Lang::from_path(".bashrc"), None);
        assert_eq!(Lang::from_fence("python title=x"), Some(Lang::Python));
        assert_eq!(Lang::from_fence("text"), None);
        assert_eq!(extension("types/index.d.ts").as_deref(), Some(".d.ts"));
    }
}
