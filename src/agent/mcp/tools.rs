//! What the MCP tools answer, apart from the protocol: their inputs
//! checked, a snippet tagged with the kernel's offline tagger, and each
//! concept's state and recall read from the local store's folded state.
//! Pure functions over a store, a tagger and a time; nothing here writes.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::agent::store::LocalStore;
use crate::agent::tag::{Concepts, Lang, Tagger, extension};
use crate::skill::catalogue::Catalogue;

/// The largest snippet a tool tags: 256 KiB, a long source file. The
/// tagger reads several MB/s, so this answers in well under a second.
pub const MAX_SNIPPET_BYTES: usize = 256 * 1024;
/// The most concept slugs one `skill_profile` call may name.
pub const MAX_CONCEPTS: usize = 200;
/// Longest slug echoed back in `unknown` (catalogue slugs are far shorter).
const ECHO_CHARS: usize = 64;

/// Input of `tag_concepts`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TagInput {
    /// The code (or Markdown explanation) to tag, at most 262144 bytes.
    pub snippet: String,
    /// The snippet's language (`rust`, `python`, `go`, `typescript`, `tsx`,
    /// `javascript`, `sql`), a file extension (`.rs`, `toml`) or a file name
    /// (`src/main.rs`). Without it the snippet is read as Markdown: fenced
    /// blocks by their fence's language, the rest by concept titles and
    /// multi-word terms.
    #[serde(default)]
    pub language: Option<String>,
}

/// Input of `skill_profile`: concept slugs, a snippet, or both.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileInput {
    /// Catalogue concept slugs, e.g. `rust-lifetimes` (at most 200).
    #[serde(default)]
    pub concepts: Vec<String>,
    /// Code (or a Markdown explanation) whose concepts to profile, at most
    /// 262144 bytes.
    #[serde(default)]
    pub snippet: Option<String>,
    /// The snippet's language, file extension or file name (as for
    /// `tag_concepts`).
    #[serde(default)]
    pub language: Option<String>,
}

/// One concept the snippet shows.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct TaggedConcept {
    pub slug: String,
    pub title: String,
    pub domain: String,
}

/// Answer of `tag_concepts`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Tagged {
    /// How the snippet was read: a language, `file .ext` or `markdown`.
    pub read_as: String,
    pub concepts: Vec<TaggedConcept>,
}

/// One concept as the engineer knows it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ProfileLine {
    pub slug: String,
    pub title: String,
    pub domain: String,
    /// unseen, seen, explained, demonstrated, retained or decaying.
    pub state: String,
    /// Predicted recall now (0 to 1), once a check of it was graded.
    pub recall: Option<f64>,
    /// When the engineer last met it (RFC 3339).
    pub last_activity: Option<String>,
    /// How to pitch an explanation of it for this engineer.
    pub pitch: String,
}

/// Answer of `skill_profile`.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Profile {
    /// How the snippet was read, when one was given.
    pub read_as: Option<String>,
    pub concepts: Vec<ProfileLine>,
    /// Slugs asked for that the catalogue does not know.
    pub unknown: Vec<String>,
}

/// How a snippet is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadAs {
    Code(Lang),
    /// A file with no grammar, matched as plain text for its extension.
    File(String),
    Markdown,
}

impl ReadAs {
    /// The hint resolved: a language name, a file name, an extension
    /// (with or without its dot) that the tagger parses or that a
    /// catalogue concept lists.
    ///
    /// # Errors
    /// A message naming the hint and the accepted forms.
    pub fn from_hint(hint: Option<&str>, catalogue: &Catalogue) -> Result<ReadAs, String> {
        let Some(hint) = hint.map(str::trim).filter(|h| !h.is_empty()) else {
            return Ok(Self::Markdown);
        };
        if matches!(hint.to_ascii_lowercase().as_str(), "markdown" | "md") {
            return Ok(Self::Markdown);
        }
        if let Some(lang) = Lang::from_fence(hint) {
            return Ok(Self::Code(lang));
        }
        let path = if hint.starts_with('.') {
            format!("snippet{hint}")
        } else if hint.contains('.') {
            hint.to_string()
        } else {
            format!("snippet.{hint}")
        };
        if let Some(lang) = Lang::from_path(&path) {
            return Ok(Self::Code(lang));
        }
        let listed = extension(&path).filter(|ext| {
            catalogue
                .concepts()
                .any(|c| c.matchers.extensions.iter().any(|e| e == ext))
        });
        listed.map(Self::File).ok_or_else(|| {
            format!(
                "`{}` is not a language the tagger knows: give one of rust, python, go, typescript, tsx, javascript, sql, markdown, or a file name or extension (`.rs`, `Cargo.toml`)",
                hint.chars().take(ECHO_CHARS).collect::<String>()
            )
        })
    }

    fn label(&self) -> String {
        match self {
            Self::Code(lang) => lang_name(*lang).to_string(),
            Self::File(ext) => format!("file {ext}"),
            Self::Markdown => "markdown".to_string(),
        }
    }
}

fn lang_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "rust",
        Lang::Python => "python",
        Lang::Go => "go",
        Lang::TypeScript => "typescript",
        Lang::Tsx => "tsx",
        Lang::JavaScript => "javascript",
        Lang::Sql => "sql",
    }
}

/// Refuses an empty or too large snippet.
///
/// # Errors
/// A message that says what to send instead.
pub fn check_snippet(snippet: &str) -> Result<(), String> {
    if snippet.trim().is_empty() {
        return Err("`snippet` is empty: pass the code (or explanation) to tag".into());
    }
    if snippet.len() > MAX_SNIPPET_BYTES {
        return Err(format!(
            "`snippet` is {} bytes; at most {MAX_SNIPPET_BYTES} (256 KiB) are tagged: pass the part you are explaining",
            snippet.len()
        ));
    }
    Ok(())
}

/// The concepts `snippet` shows, read as `hint` says.
///
/// # Errors
/// A bad snippet or hint (see [`check_snippet`], [`ReadAs::from_hint`]).
pub fn tag(tagger: &mut Tagger, snippet: &str, hint: Option<&str>) -> Result<Tagged, String> {
    check_snippet(snippet)?;
    let read_as = ReadAs::from_hint(hint, tagger.catalogue())?;
    let found = tag_as(tagger, snippet, &read_as);
    let catalogue = tagger.catalogue();
    let concepts = found
        .iter()
        .filter_map(|slug| catalogue.get(slug))
        .map(|c| TaggedConcept {
            slug: c.slug.clone(),
            title: c.title.clone(),
            domain: c.domain.clone(),
        })
        .collect();
    Ok(Tagged {
        read_as: read_as.label(),
        concepts,
    })
}

fn tag_as(tagger: &mut Tagger, snippet: &str, read_as: &ReadAs) -> Concepts {
    match read_as {
        ReadAs::Code(lang) => tagger.tag_code(*lang, snippet),
        ReadAs::File(ext) => tagger.tag_file(&format!("snippet{ext}"), snippet),
        ReadAs::Markdown => tagger.tag_prose(snippet),
    }
}

/// How to pitch an explanation to someone in `state`.
pub fn pitch(state: &str) -> &'static str {
    match state {
        "seen" => {
            "met in code the agent wrote, never explained: explain the idea briefly, with this code as the example"
        }
        "explained" => "explained before: a one-line reminder is enough, tied to the code at hand",
        "demonstrated" => "the engineer has shown they can use it: skip the basics",
        "retained" => "known and retained: no explanation unless asked",
        "decaying" => "known once, but recall is fading: a short refresher helps",
        _ => "new to the engineer: explain it from the start, with a small example",
    }
}

/// The engineer's state of the concepts named and those `snippet` shows,
/// at `now`. Unknown slugs are listed, not refused, unless nothing known
/// is left.
///
/// # Errors
/// Bad input (no concepts and no snippet, too many slugs, a bad snippet
/// or hint, only unknown slugs) as a message for the agent; store errors.
pub fn profile(
    store: &LocalStore,
    tagger: &mut Tagger,
    input: &ProfileInput,
    now: DateTime<Utc>,
) -> Result<Profile, String> {
    let asked = &input.concepts;
    if asked.is_empty() && input.snippet.is_none() {
        return Err(
            "give `concepts` (catalogue slugs such as `rust-lifetimes`) or a `snippet` to profile"
                .into(),
        );
    }
    if asked.len() > MAX_CONCEPTS {
        return Err(format!(
            "`concepts` names {} slugs; at most {MAX_CONCEPTS} per call",
            asked.len()
        ));
    }
    let mut wanted = BTreeSet::new();
    let mut unknown = Vec::new();
    for slug in asked {
        let slug = slug.trim();
        if tagger.catalogue().contains(slug) {
            wanted.insert(slug.to_string());
        } else {
            let echo: String = slug.chars().take(ECHO_CHARS).collect();
            if !unknown.contains(&echo) {
                unknown.push(echo);
            }
        }
    }
    let mut read_as = None;
    if let Some(snippet) = &input.snippet {
        let tagged = tag(tagger, snippet, input.language.as_deref())?;
        wanted.extend(tagged.concepts.into_iter().map(|c| c.slug));
        read_as = Some(tagged.read_as);
    } else if wanted.is_empty() {
        return Err(format!(
            "none of these is a concept of the catalogue: {}; use slugs such as `rust-lifetimes` (`tag_concepts` names the concepts a snippet shows)",
            unknown
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let states = store.states().map_err(|e| e.to_string())?;
    let catalogue = tagger.catalogue();
    let concepts = wanted
        .iter()
        .filter_map(|slug| catalogue.get(slug))
        .map(|c| {
            let held = states.iter().find(|r| r.concept == c.slug);
            let state = held.map_or("unseen", |r| r.state.label(now));
            ProfileLine {
                slug: c.slug.clone(),
                title: c.title.clone(),
                domain: c.domain.clone(),
                state: state.to_string(),
                recall: held.and_then(|r| r.state.recall(now)),
                last_activity: held
                    .and_then(|r| r.state.last_activity)
                    .map(|t| t.to_rfc3339()),
                pitch: pitch(state).to_string(),
            }
        })
        .collect();
    Ok(Profile {
        read_as,
        concepts,
        unknown,
    })
}

#[cfg(test)]
mod tests;
