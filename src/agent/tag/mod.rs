//! Offline concept tagging: which catalogue concepts a piece of code, a
//! shell command or an explanation shows. Pure functions over text; no
//! network, no model.
//!
//! Code is parsed with tree-sitter (Rust, Python, Go, TypeScript/TSX,
//! JavaScript, SQL). Comments and string literals are masked before the
//! catalogue's matchers run, so a keyword inside them is not a concept
//! seen; SQL inside a string literal of another language is tagged as
//! SQL. The catalogue's imports, keywords and APIs then match on the
//! masked text at identifier boundaries, and the syntax rules of
//! `rules` add the structure a keyword cannot see (lifetimes, trait
//! bounds, generics, CTEs, joins, window functions, ...). What comes out
//! is concept slugs only; `observations` stamps them with a transition
//! and a time.

mod lang;
mod lex;
mod matcher;
pub mod rules;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use lang::{Lang, extension};

use crate::agent::observe::Observation;
use crate::skill::catalogue::Catalogue;
use crate::skill::delta::Transition;
use matcher::{LangIndex, PlainIndex};

/// Concept slugs, sorted.
pub type Concepts = BTreeSet<String>;

/// The tagger for one catalogue. Per-language indexes and parsers are
/// built on first use, so a hook that sees one Rust edit pays for Rust.
pub struct Tagger {
    catalogue: Arc<Catalogue>,
    langs: HashMap<Lang, LangIndex>,
    other: HashMap<String, PlainIndex>,
    prose: Option<PlainIndex>,
}

impl Tagger {
    pub fn new(catalogue: impl Into<Arc<Catalogue>>) -> Self {
        Self {
            catalogue: catalogue.into(),
            langs: HashMap::new(),
            other: HashMap::new(),
            prose: None,
        }
    }

    /// The catalogue shipped in the binary.
    ///
    /// # Errors
    /// The shipped catalogue's own check failing (a build defect).
    pub fn builtin() -> Result<Self, String> {
        Ok(Self::new(Catalogue::builtin()?))
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Concepts shown by code in `lang`.
    pub fn tag_code(&mut self, lang: Lang, text: &str) -> Concepts {
        let mut found = Concepts::new();
        let embedded = {
            let index = self
                .langs
                .entry(lang)
                .or_insert_with(|| LangIndex::build(&self.catalogue, lang));
            index.tag(text, &mut found)
        };
        if lang != Lang::Sql {
            for sql in embedded {
                found.extend(self.tag_code(Lang::Sql, &sql));
            }
        }
        found
    }

    /// Concepts shown by a file's new content, its language from its
    /// path. A file with no grammar is matched as plain text against the
    /// concepts that list its extension and the catalogue's
    /// language-neutral, code-shaped terms.
    pub fn tag_file(&mut self, path: &str, text: &str) -> Concepts {
        if let Some(lang) = Lang::from_path(path) {
            return self.tag_code(lang, text);
        }
        let ext = extension(path).unwrap_or_default();
        let index = self
            .other
            .entry(ext.clone())
            .or_insert_with(|| PlainIndex::for_extension(&self.catalogue, &ext));
        let mut found = Concepts::new();
        index.tag(text, &mut found);
        found
    }

    /// Concepts a shell command the agent ran shows (`cargo test`,
    /// `go test -race`, `EXPLAIN ANALYZE` through psql, ...): the
    /// catalogue's multi-word terms only.
    pub fn tag_command(&mut self, command: &str) -> Concepts {
        let mut found = Concepts::new();
        self.prose_index().tag(command, &mut found);
        found
    }

    /// Concepts an explanation covers: its fenced code blocks tagged as
    /// code of the fence's language, its prose by concept titles and the
    /// catalogue's multi-word terms.
    pub fn tag_prose(&mut self, text: &str) -> Concepts {
        let mut found = Concepts::new();
        let mut prose = String::with_capacity(text.len());
        for block in markdown_blocks(text) {
            match block {
                Block::Prose(p) => {
                    prose.push_str(p);
                    prose.push('\n');
                }
                Block::Code(info, code) => match Lang::from_fence(info) {
                    Some(lang) => found.extend(self.tag_code(lang, code)),
                    None => {
                        prose.push_str(code);
                        prose.push('\n');
                    }
                },
            }
        }
        self.prose_index().tag(&prose, &mut found);
        found
    }

    fn prose_index(&mut self) -> &PlainIndex {
        self.prose
            .get_or_insert_with(|| PlainIndex::for_prose(&self.catalogue))
    }
}

/// The tree-sitter grammar the tagger parses `lang` with (the tagging
/// bench parses with it alone for its baseline).
pub fn grammar(lang: Lang) -> tree_sitter::Language {
    lang.grammar()
}

/// What the harness adapters tag with: a [`Tagger`], or a [`Lazy`] one.
pub trait Tag {
    /// [`Tagger::tag_file`].
    fn tag_file(&mut self, path: &str, text: &str) -> Concepts;
    /// [`Tagger::tag_command`].
    fn tag_command(&mut self, command: &str) -> Concepts;
    /// [`Tagger::tag_prose`].
    fn tag_prose(&mut self, text: &str) -> Concepts;
}

impl Tag for Tagger {
    fn tag_file(&mut self, path: &str, text: &str) -> Concepts {
        Tagger::tag_file(self, path, text)
    }
    fn tag_command(&mut self, command: &str) -> Concepts {
        Tagger::tag_command(self, command)
    }
    fn tag_prose(&mut self, text: &str) -> Concepts {
        Tagger::tag_prose(self, text)
    }
}

/// A catalogue loader for [`Lazy`].
pub type Load<'a> = &'a dyn Fn() -> Result<Arc<Catalogue>, String>;

/// A tagger whose catalogue is loaded the first time a text is tagged,
/// so a hook that finds nothing new to tag (most events: a file read, a
/// search, a session start) never loads it. When loading fails it finds
/// nothing and [`Lazy::failure`] says why: the caller must then keep
/// nothing of what it read.
pub struct Lazy<'a> {
    load: Load<'a>,
    tagger: Option<Tagger>,
    failure: Option<String>,
}

impl<'a> Lazy<'a> {
    pub fn new(load: Load<'a>) -> Self {
        Self {
            load,
            tagger: None,
            failure: None,
        }
    }

    /// Why the catalogue could not be loaded, if it could not.
    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Whether anything was tagged (and so the catalogue loaded).
    pub fn loaded(&self) -> bool {
        self.tagger.is_some()
    }

    fn tagger(&mut self) -> Option<&mut Tagger> {
        if self.tagger.is_none() && self.failure.is_none() {
            match (self.load)() {
                Ok(c) => self.tagger = Some(Tagger::new(c)),
                Err(e) => self.failure = Some(e),
            }
        }
        self.tagger.as_mut()
    }
}

impl Tag for Lazy<'_> {
    fn tag_file(&mut self, path: &str, text: &str) -> Concepts {
        self.tagger()
            .map_or_else(Concepts::new, |t| t.tag_file(path, text))
    }
    fn tag_command(&mut self, command: &str) -> Concepts {
        self.tagger()
            .map_or_else(Concepts::new, |t| t.tag_command(command))
    }
    fn tag_prose(&mut self, text: &str) -> Concepts {
        self.tagger()
            .map_or_else(Concepts::new, |t| t.tag_prose(text))
    }
}

/// Stamps concepts with a transition and a time.
pub fn observations(
    concepts: &Concepts,
    transition: Transition,
    at: DateTime<Utc>,
) -> Vec<Observation> {
    concepts
        .iter()
        .map(|c| Observation {
            concept: c.clone(),
            transition,
            at,
        })
        .collect()
}

enum Block<'a> {
    Prose(&'a str),
    Code(&'a str, &'a str),
}

/// Splits Markdown into prose and fenced code blocks (``` or ~~~); an
/// unclosed fence runs to the end.
fn markdown_blocks(text: &str) -> Vec<Block<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        let Some(open) = find_fence(rest) else {
            out.push(Block::Prose(rest));
            return out;
        };
        out.push(Block::Prose(&rest[..open]));
        let after = &rest[open..];
        let fence = &after[..3];
        let line_end = after.find('\n').unwrap_or(after.len());
        let info = after[3..line_end].trim_start_matches(['`', '~']).trim();
        let body = &after[(line_end + 1).min(after.len())..];
        let close = body
            .match_indices(fence)
            .map(|(i, _)| i)
            .find(|&i| i == 0 || body.as_bytes()[i - 1] == b'\n');
        match close {
            Some(c) => {
                out.push(Block::Code(info, &body[..c]));
                let tail = &body[c..];
                rest = &tail[tail.find('\n').unwrap_or(tail.len())..];
            }
            None => {
                out.push(Block::Code(info, body));
                return out;
            }
        }
    }
}

fn find_fence(s: &str) -> Option<usize> {
    let mut start = 0;
    for line in s.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with("```") || t.starts_with("~~~") {
            return Some(start + (line.len() - t.len()));
        }
        start += line.len();
    }
    None
}

#[cfg(test)]
mod tests;
