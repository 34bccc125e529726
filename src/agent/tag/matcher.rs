//! The matching machinery behind `Tagger`: per-language indexes of the
//! catalogue's terms and imports, the masking of comments and strings
//! from a syntax tree, and the syntax rules run as one tree-sitter query.

use std::collections::{HashMap, HashSet};

use aho_corasick::{AhoCorasick, AhoCorasickKind};
use tree_sitter::{Language, Node, Parser, Query, QueryCursor, StreamingIterator, Tree};

use super::Concepts;
use super::lang::Lang;
use super::lex;
use super::rules::{Rule, STOP_IMPORTS, STOP_TERMS, rules, stopped};
use crate::skill::catalogue::{Catalogue, Concept};

/// Terms of concepts, found at identifier boundaries.
///
/// No automaton over every term is built up front: a hook tags a few KB
/// and building one over the thousands of terms a language has cost more
/// than the whole rest of the tagging. A term can only match where each of
/// its identifier tokens (maximal runs of ASCII letters, digits and `_`)
/// is a whole token of the text: its inner tokens sit between the same
/// non-identifier bytes in the text, and its first and last are held at
/// identifier boundaries by [`Terms::find`]. So `find` picks the terms
/// whose tokens the text all holds and builds an automaton over those
/// alone, which finds exactly what one over every term would.
struct Terms {
    patterns: Vec<String>,
    concepts: Vec<Vec<String>>,
    /// Each pattern's identifier tokens but its key (`None`: the pattern
    /// is one identifier token and nothing else, so the text holding that
    /// token is a match at identifier boundaries and no search is needed).
    rest: Vec<Option<Vec<String>>>,
    /// Pattern indexes by their [`key_token`] (`std::sync::Arc` under
    /// `sync`, not under `std`).
    by_token: HashMap<String, Vec<usize>, FxBuild>,
    /// Patterns without an identifier token (`?.`, `=>`): always tried.
    bare: Vec<usize>,
}

/// Which of a pattern's identifier tokens to index it by: its longest
/// (the last of equals), as a long word is rarer in a text than a short
/// one.
fn key_token(toks: &[&str]) -> Option<usize> {
    toks.iter()
        .enumerate()
        .max_by_key(|(at, t)| (t.len(), *at))
        .map(|(at, _)| at)
}

/// Token lists indexed by their [`key_token`]: the indexes of the lists
/// by key, and those of the lists without a token.
type KeyIndex = (HashMap<String, Vec<usize>, FxBuild>, Vec<usize>);

fn key_index<'a>(lists: impl IntoIterator<Item = &'a [&'a str]>) -> KeyIndex {
    let mut by_key: HashMap<String, Vec<usize>, FxBuild> = HashMap::default();
    let mut bare = Vec::new();
    for (i, toks) in lists.into_iter().enumerate() {
        match key_token(toks) {
            Some(k) => by_key.entry(toks[k].to_string()).or_default().push(i),
            None => bare.push(i),
        }
    }
    (by_key, bare)
}

/// The identifier tokens of `text`: maximal runs of [`ident`] bytes.
fn tokens(text: &str) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() && !ident(bytes[i]) {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && ident(bytes[i]) {
            i += 1;
        }
        // Runs of ASCII bytes begin and end on character boundaries.
        (i > start).then(|| &text[start..i])
    })
}

impl Terms {
    fn build(entries: Vec<(String, String)>, fold_case: bool) -> Self {
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut patterns = Vec::new();
        let mut concepts: Vec<Vec<String>> = Vec::new();
        for (term, concept) in entries {
            let norm = normalize(&term, fold_case);
            if norm.trim().is_empty() {
                continue;
            }
            let i = *index.entry(norm.clone()).or_insert_with(|| {
                patterns.push(norm);
                concepts.push(Vec::new());
                patterns.len() - 1
            });
            if !concepts[i].contains(&concept) {
                concepts[i].push(concept);
            }
        }
        let toks: Vec<Vec<&str>> = patterns.iter().map(|p| tokens(p).collect()).collect();
        let (by_token, bare) = key_index(toks.iter().map(Vec::as_slice));
        let rest = patterns
            .iter()
            .zip(&toks)
            .map(|(p, toks)| {
                let key = key_token(toks);
                let one_token = p.bytes().all(ident);
                (!one_token).then(|| {
                    (0..toks.len())
                        .filter(|at| Some(*at) != key)
                        .map(|at| toks[at].to_string())
                        .collect()
                })
            })
            .collect();
        Self {
            patterns,
            concepts,
            rest,
            by_token,
            bare,
        }
    }

    /// Shows the concepts of the one-token patterns the text holds (`held`
    /// tokens) and returns the other patterns that may match, in index
    /// order.
    fn candidates(&self, held: &HashSet<&str, FxBuild>, found: &mut Concepts) -> Vec<usize> {
        let mut out = self.bare.clone();
        for t in held {
            for &p in self.by_token.get(*t).into_iter().flatten() {
                match &self.rest[p] {
                    None => self.show(p, found),
                    Some(rest) => {
                        if rest.iter().all(|u| held.contains(u.as_str())) {
                            out.push(p);
                        }
                    }
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// Adds pattern `p`'s concepts to `found`.
    fn show(&self, p: usize, found: &mut Concepts) {
        for c in &self.concepts[p] {
            if !found.contains(c) {
                found.insert(c.clone());
            }
        }
    }

    fn find(&self, normalized: &str, found: &mut Concepts) {
        let mut held: HashSet<&str, FxBuild> =
            HashSet::with_capacity_and_hasher(normalized.len() / 8, FxBuild::default());
        held.extend(tokens(normalized));
        let chosen = self.candidates(&held, found);
        self.find_among(&chosen, normalized, found);
    }

    /// Every match of the patterns `chosen` (indexes) in `normalized`,
    /// leaving out those whose concepts are all found already.
    fn find_among(&self, chosen: &[usize], normalized: &str, found: &mut Concepts) {
        let chosen: Vec<usize> = chosen
            .iter()
            .copied()
            .filter(|&p| self.concepts[p].iter().any(|c| !found.contains(c)))
            .collect();
        if normalized.len().saturating_mul(chosen.len()) > SEARCH_ALONE {
            self.find_ac(&chosen, normalized, found);
            return;
        }
        // Over a hook's few KB, building any automaton costs more than
        // searching for each candidate in turn (building one was a third
        // of tagging a snippet): the first match at identifier
        // boundaries shows a pattern's concepts.
        for &p in &chosen {
            let pat = self.patterns[p].as_str();
            let step = pat.chars().next().map_or(1, char::len_utf8);
            let mut from = 0;
            while let Some(at) = normalized[from..].find(pat) {
                let start = from + at;
                if bounded(
                    pat.as_bytes(),
                    normalized.as_bytes(),
                    start,
                    start + pat.len(),
                ) {
                    self.show(p, found);
                    break;
                }
                from = start + step;
            }
        }
    }

    /// Every match of the patterns `chosen` in `normalized`, with one
    /// automaton over them.
    fn find_ac(&self, chosen: &[usize], normalized: &str, found: &mut Concepts) {
        if chosen.is_empty() {
            return;
        }
        // Below a few hundred KB a DFA costs more to build than it saves.
        let kind = (normalized.len() < DFA_FROM).then_some(AhoCorasickKind::NoncontiguousNFA);
        let Ok(ac) = AhoCorasick::builder()
            .kind(kind)
            .build(chosen.iter().map(|&p| &self.patterns[p]))
        else {
            return;
        };
        let bytes = normalized.as_bytes();
        for m in ac.find_overlapping_iter(normalized) {
            let p = chosen[m.pattern().as_usize()];
            if bounded(self.patterns[p].as_bytes(), bytes, m.start(), m.end()) {
                self.show(p, found);
            }
        }
    }

    /// [`Terms::find`] with an automaton over every pattern, as the
    /// tagger did before: the reference `find` is checked against.
    #[cfg(test)]
    fn find_with_all(&self, normalized: &str, found: &mut Concepts) {
        let all: Vec<usize> = (0..self.patterns.len()).collect();
        self.find_ac(&all, normalized, found);
    }
}

/// From which text length the term automaton may be a DFA.
const DFA_FROM: usize = 256 * 1024;

/// Up to how many bytes searched in all (text length times candidate
/// terms) the candidates are searched for one by one, not with an
/// automaton.
const SEARCH_ALONE: usize = 1 << 22;

/// A fast, non-keyed hash for the term index's token maps (a text can
/// only slow its own tagging down with colliding tokens).
#[derive(Default, Clone, Copy)]
struct Fx(u64);

impl std::hash::Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u8(&mut self, b: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxBuild = std::hash::BuildHasherDefault<Fx>;

fn ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether a match of `pat` at `start..end` of `bytes` is at identifier
/// boundaries: not glued to an identifier byte where `pat` begins or ends
/// with one.
fn bounded(pat: &[u8], bytes: &[u8], start: usize, end: usize) -> bool {
    let starts_ident = pat.first().is_some_and(|b| ident(*b));
    let ends_ident = pat.last().is_some_and(|b| ident(*b));
    let glued_before = starts_ident && start > 0 && ident(bytes[start - 1]);
    let glued_after = ends_ident && end < bytes.len() && ident(bytes[end]);
    !glued_before && !glued_after
}

/// Whether a rule's marker `word` found at `start..end` of `bytes` counts:
/// a word only as a whole word, and a sign of one character only alone
/// (`:` is not in `::`, `|` not in `||`): rules whose node holds a doubled
/// sign list the double too (`||` for a Rust closure without parameters).
fn marker_at(word: &[u8], bytes: &[u8], start: usize, end: usize) -> bool {
    if let [sign] = word
        && !ident(*sign)
    {
        let doubled = (start > 0 && bytes[start - 1] == *sign) || bytes.get(end) == Some(sign);
        return !doubled;
    }
    bounded(word, bytes, start, end)
}

/// `text` with its comments (the lexer's masked spans that are not
/// string literals) blanked: where the syntax rules' markers are looked
/// for, so a marker in a comment does not get a part parsed, and one in a
/// string still does (a template string's code is code).
pub(super) fn without_comments(text: &str, lexed: &lex::Lexed) -> String {
    let strings: HashSet<&(usize, usize)> = lexed.strings.iter().collect();
    let comments: Vec<(usize, usize)> = lexed
        .masked
        .iter()
        .filter(|s| !strings.contains(s))
        .copied()
        .collect();
    mask(text, &comments)
}

/// Whether `view` (a part [`without_comments`], [`normalize`]d) holds one
/// of `words` as [`marker_at`] counts them: the test of a rule's markers
/// that [`LangIndex::needed`] runs with one automaton.
#[cfg(test)]
pub(super) fn holds_one(words: &[&str], view: &str) -> bool {
    words.iter().any(|w| marker_hits(w, view).next().is_some())
}

/// Whether `view` holds `word` twice or more, as [`marker_at`] counts it
/// (a word in both a rule's markers and its `also` words).
#[cfg(test)]
pub(super) fn holds_twice(word: &str, view: &str) -> bool {
    marker_hits(word, view).nth(1).is_some()
}

/// Where in `view` `word` stands as [`marker_at`] counts it.
#[cfg(test)]
fn marker_hits<'v>(word: &'v str, view: &'v str) -> impl Iterator<Item = usize> + 'v {
    (0..view.len())
        .filter(move |&at| view[at..].starts_with(word))
        .filter(move |&at| marker_at(word.as_bytes(), view.as_bytes(), at, at + word.len()))
}

/// Whitespace runs become one space, no space before `(`, and (for SQL)
/// upper case: `OVER  (` and `over(` both read `OVER(`.
pub(super) fn normalize(text: &str, fold_case: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(len) = white_at(text, i) {
            space = !out.is_empty();
            i += len;
            continue;
        }
        // A run of anything but white space, copied whole.
        let start = i;
        while i < bytes.len() {
            let b = bytes[i];
            if b < 0x80 {
                if ascii_white(b) {
                    break;
                }
                i += 1;
            } else if white_at(text, i).is_some() {
                break;
            } else {
                i += utf8_len(b);
            }
        }
        let run = &text[start..i];
        if space && !run.starts_with('(') {
            out.push(' ');
        }
        space = false;
        let from = out.len();
        out.push_str(run);
        if fold_case {
            out[from..].make_ascii_uppercase();
        }
    }
    out
}

/// ASCII white space as [`char::is_whitespace`] has it (tab to carriage
/// return, and space).
fn ascii_white(b: u8) -> bool {
    b == b' ' || (b'\t'..=b'\r').contains(&b)
}

/// The length of the UTF-8 sequence a leading byte opens.
fn utf8_len(lead: u8) -> usize {
    match lead {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    }
}

/// The length of the white-space character at byte `i` of `text` (which
/// starts a character), if it is one.
#[inline]
fn white_at(text: &str, i: usize) -> Option<usize> {
    match text.as_bytes()[i] {
        b if ascii_white(b) => Some(1),
        b if b < 0x80 => None,
        _ => text[i..]
            .chars()
            .next()
            .filter(|c| c.is_whitespace())
            .map(char::len_utf8),
    }
}

/// A term that reads as code rather than as an English word: it has
/// punctuation, a space (a phrase), or an inner capital (`BinaryHeap`).
fn code_shaped(term: &str) -> bool {
    term.chars().any(|c| ".:(!@#[<$/={}&*'\" ".contains(c))
        || term
            .as_bytes()
            .windows(2)
            .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase())
}

/// Code-shaped, or an API name with an underscore (`binary_search`).
fn code_shaped_api(term: &str) -> bool {
    code_shaped(term) || term.contains('_')
}

fn terms_of(c: &Concept) -> impl Iterator<Item = &String> {
    c.matchers.keywords.iter().chain(&c.matchers.apis)
}

/// Domains whose language-neutral concepts belong to other kinds of file:
/// browser code (TypeScript/JavaScript only) and CI configuration (plain
/// files only), so `fetch(` in Go or `jobs:` in a Go `case` shows neither.
fn neutral_applies(c: &Concept, exts: &[&str]) -> bool {
    let web = [
        ".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts", ".html", ".vue", ".svelte",
        ".css",
    ];
    match c.domain.as_str() {
        "frontend" => exts.iter().any(|e| web.contains(e)),
        "ci-cd" => !exts
            .iter()
            .any(|e| [".rs", ".py", ".pyi", ".go", ".sql"].contains(e) || web.contains(e)),
        _ => true,
    }
}

fn lists_any(c: &Concept, exts: &[&str]) -> bool {
    c.matchers
        .extensions
        .iter()
        .any(|e| exts.contains(&e.to_ascii_lowercase().as_str()))
}

/// Terms of the concepts that list one of `exts` (all of them) and of
/// the language-neutral concepts (code-shaped ones only).
fn code_terms(cat: &Catalogue, exts: &[&str]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for c in cat.concepts() {
        let own = lists_any(c, exts);
        let neutral = c.matchers.extensions.is_empty() && neutral_applies(c, exts);
        for t in &c.matchers.keywords {
            if !stopped(&c.slug, t, STOP_TERMS) && (own || (neutral && code_shaped(t))) {
                out.push((t.clone(), c.slug.clone()));
            }
        }
        for t in &c.matchers.apis {
            if !stopped(&c.slug, t, STOP_TERMS) && (own || (neutral && code_shaped_api(t))) {
                out.push((t.clone(), c.slug.clone()));
            }
        }
    }
    out
}

/// A language's index: terms, unambiguous imports, syntax rules, parser.
pub(super) struct LangIndex {
    lang: Lang,
    terms: Terms,
    imports: Vec<(String, String)>,
    /// Each import entry's identifier tokens: a text that imports the
    /// entry (or a path under it) holds every one as a whole token.
    import_tokens: Vec<Vec<String>>,
    /// Import entries by their [`key_token`], and those without a token.
    import_keys: HashMap<String, Vec<usize>, FxBuild>,
    import_bare: Vec<usize>,
    rules: SyntaxRules,
    markers: Markers,
    parser: Option<Parser>,
}

/// The syntax rules' markers and the language's import words, found in
/// one pass over a part of a text.
struct Markers {
    /// Over every marker and import word (`None`: more than 128 of them,
    /// or more than 128 rules, so every part is parsed).
    ac: Option<AhoCorasick>,
    /// The automaton's patterns, to count a match as [`marker_at`] does.
    words: Vec<&'static str>,
    /// Each rule's markers, in the order of [`super::rules::rules`].
    rules: Vec<MarkerRule>,
    /// The import words' bits.
    imports: u128,
}

/// What one rule's match holds: bits by the automaton's pattern.
struct MarkerRule {
    /// One of these.
    any: u128,
    /// One of these too (`0`: no such condition) once...
    also: u128,
    /// ...or, for these (in `any` too), the same one twice.
    twice: u128,
    /// The [`super::rules::Place`] bit its markers must stand at (`0`:
    /// anywhere).
    place: u8,
    concept: &'static str,
}

impl MarkerRule {
    /// Whether a part whose markers are `held` (`held2`: twice or more),
    /// and where the lexer saw `places`, may hold a match.
    fn may_match(&self, held: u128, held2: u128, places: u8) -> bool {
        held & self.any != 0
            && (self.also == 0 || held & self.also & !self.twice != 0 || held2 & self.twice != 0)
            && places & self.place == self.place
    }
}

impl Markers {
    fn build(cat: &Catalogue, lang: Lang) -> Self {
        let mut words: Vec<&'static str> = Vec::new();
        let mut bits = |w: &'static str| {
            let i = words.iter().position(|x| *x == w).unwrap_or_else(|| {
                words.push(w);
                words.len() - 1
            });
            1u128
                .checked_shl(u32::try_from(i).unwrap_or(u32::MAX))
                .unwrap_or(0)
        };
        let rules: Vec<MarkerRule> = super::rules::rules(lang)
            .filter(|r| cat.contains(r.concept))
            .map(|r| {
                let any = r.markers.iter().fold(0, |a, m| a | bits(m));
                let also = r.also.iter().fold(0, |a, m| a | bits(m));
                MarkerRule {
                    any,
                    also,
                    twice: any & also,
                    place: r.place.map_or(0, |p| p.bit()),
                    concept: r.concept,
                }
            })
            .collect();
        let imports = lang.import_words().iter().fold(0, |a, w| a | bits(w));
        let ac = (words.len() <= 128 && rules.len() <= 128)
            .then(|| {
                AhoCorasick::builder()
                    .ascii_case_insensitive(lang.case_insensitive())
                    .build(&words)
                    .ok()
            })
            .flatten();
        Self {
            ac,
            words,
            rules,
            imports,
        }
    }
}

/// What [`LangIndex::tag`] still looks for: the rules whose concepts are
/// not found (bits by index in [`Markers::rules`]). Import entries are
/// looked up only once a part holds all of an entry's tokens.
struct Pending {
    rules: u128,
}

/// How many bytes of neighbouring items [`LangIndex::tag`] parses at once.
const GROUP: usize = 4096;

/// [`SyntaxRules::class`] bits: a one-kind rule tests the node's text...
const TESTED: u8 = 1;
/// ...a compiled rule's pattern has the node's kind at its root...
const ROOT: u8 = 2;
/// ...the node is a comment or a string ([`visit`] masks it)...
const MASKED: u8 = 4;
/// ...or [`visit`] reads an import from it.
const IMPORT: u8 = 8;

/// `text` with the byte ranges `spans` blanked (newlines kept).
fn mask(text: &str, spans: &[(usize, usize)]) -> String {
    let mut masked = text.as_bytes().to_vec();
    for (start, end) in spans {
        for b in &mut masked[*start..*end] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    }
    // Spans start and end on character boundaries, so the masked text is
    // UTF-8 unless a parser cut one (then as before: lossily).
    String::from_utf8(masked).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A language's syntax rules, ready to run on a tree.
///
/// Compiling a tree-sitter query scans the grammar's whole parse table
/// whatever the query holds (milliseconds for Rust or TypeScript, more
/// than parsing and matching a hook's text), so as few are compiled as
/// can be, and none up front:
/// - a rule that is one node kind (`(closure_expression) @x`) matches
///   exactly where a node of that kind is, and one that is one node kind
///   with a text predicate (`((lifetime) @x (#not-eq? @x "'_"))`) where
///   such a node's text passes it: both are read off the tree;
/// - the others are compiled, as one query, only when the tree holds every
///   node kind and token they name outside an alternation, and the text
///   one of the strings each `#eq?`/`#any-of?` compares a capture with:
///   without those they cannot match.
///
/// Running a query over the whole tree visits every node again (as long
/// as parsing's third on a large text), so a compiled rule whose pattern
/// has one root node kind is run only at the nodes of that kind, starting
/// there and nowhere below, and no more once it has matched: a rule shows
/// its concept when it matches anywhere, and wherever it matches its root
/// is a node of its kind. The nodes are noted by the one walk that also
/// masks comments and strings and reads the one-kind rules.
///
/// A pattern's matches do not depend on the other patterns of its query,
/// so this finds what one query of every rule over the whole tree finds
/// (a test compares the two over the tagging corpus, snippet by snippet
/// and each language's snippets as one text).
struct SyntaxRules {
    grammar: Language,
    /// Rules read off the tree: a node kind's id, a test of its text, the
    /// concept.
    nodes: Vec<(u16, Option<TextTest>, &'static str)>,
    /// The other rules, with what the tree and text must hold for them to
    /// match and their pattern's root node kind (`None`: not one kind, so
    /// run over the whole tree).
    queried: Vec<(Needs, Option<u16>, &'static Rule)>,
    /// By node kind id, what the walk does at such a node ([`TESTED`],
    /// [`ROOT`], [`MASKED`], [`IMPORT`]); most kinds are none of these.
    class: Vec<u8>,
    /// The query compiled for a set of `queried` rules (indexes, sorted;
    /// pattern `i` is rule `set[i]`). A text whose rules the set holds
    /// runs it, ignoring the other patterns' matches; one that needs a
    /// rule outside it compiles the union of the two, so a tagger that
    /// tags many texts compiles at most once per rule it ever needs (a
    /// cache of sets kept each set apart and, tagging the corpus snippet
    /// by snippet, compiled one in three texts).
    compiled: Option<(Vec<usize>, Query)>,
    /// One cursor for every run of the query (making one allocates).
    cursor: QueryCursor,
}

/// What the walk over a tree notes for [`SyntaxRules::tag`].
struct Seen<'t> {
    /// By node kind id: whether the tree holds such a node.
    held: Vec<bool>,
    /// The nodes whose kind is a compiled rule's root kind, in order.
    roots: Vec<Node<'t>>,
}

impl Seen<'_> {
    fn holds(&self, id: u16) -> bool {
        self.held.get(usize::from(id)).copied().unwrap_or(false)
    }
}

/// A text predicate on one captured node.
#[derive(Debug, Clone, PartialEq)]
enum TextTest {
    Eq(String),
    NotEq(String),
    AnyOf(Vec<String>),
}

impl TextTest {
    fn passes(&self, text: &str) -> bool {
        match self {
            Self::Eq(s) => text == s,
            Self::NotEq(s) => text != s,
            Self::AnyOf(v) => v.iter().any(|s| s == text),
        }
    }
}

/// What a tree and its text must hold for a pattern to match.
#[derive(Debug, Default, PartialEq)]
struct Needs {
    /// Node kinds and tokens, by id.
    kinds: Vec<u16>,
    /// Groups of strings; the text holds one of each group.
    texts: Vec<Vec<String>>,
}

/// A token of a query pattern.
#[derive(Debug, Clone, PartialEq)]
enum Tok<'q> {
    Open,
    Close,
    OpenAlt,
    CloseAlt,
    Word(&'q str),
    Field(&'q str),
    Capture(&'q str),
    Str(String),
}

/// The tokens of a query pattern (`None`: a string left open).
fn query_tokens(q: &str) -> Option<Vec<Tok<'_>>> {
    let b = q.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'(' => out.push(Tok::Open),
            b')' => out.push(Tok::Close),
            b'[' => out.push(Tok::OpenAlt),
            b']' => out.push(Tok::CloseAlt),
            c if c.is_ascii_whitespace() => {}
            b'"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match *b.get(i)? {
                        b'"' => break,
                        b'\\' => {
                            i += 1;
                            s.push(match *b.get(i)? {
                                b'n' => '\n',
                                b't' => '\t',
                                c => char::from(c),
                            });
                        }
                        _ => {
                            let ch = q[i..].chars().next()?;
                            s.push(ch);
                            i += ch.len_utf8() - 1;
                        }
                    }
                    i += 1;
                }
                out.push(Tok::Str(s));
            }
            _ => {
                let start = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && !b"()[]\"".contains(&b[i]) {
                    i += 1;
                }
                let w = &q[start..i];
                out.push(if let Some(c) = w.strip_prefix('@') {
                    Tok::Capture(c)
                } else if let Some(f) = w.strip_suffix(':') {
                    Tok::Field(f)
                } else {
                    Tok::Word(w)
                });
                continue;
            }
        }
        i += 1;
    }
    Some(out)
}

/// How a rule is run: read off the tree (one node kind, perhaps with a
/// text test), or compiled when the tree and text hold what it [`Needs`].
/// `None`: it names a kind the grammar does not have, so it matches
/// nothing (`every_rule_compiles_and_names_a_shipped_concept` keeps every
/// rule valid).
enum Plan {
    Node(u16, Option<TextTest>),
    Query(Needs, Option<u16>),
}

fn plan(grammar: &Language, query: &str) -> Option<Plan> {
    let named = |k: &str| Some(grammar.id_for_node_kind(k, true)).filter(|id| *id != 0);
    let toks = query_tokens(query)?;
    use Tok::{Capture, Close, Open, Str, Word};
    // `(K) @x`
    if let [Open, Word(k), Close, Capture(_)] = toks.as_slice()
        && !k.starts_with('#')
        && *k != "_"
    {
        return Some(Plan::Node(named(k)?, None));
    }
    // `((K) @c (#eq? @c "s"))`, `#not-eq?`, `#any-of? @c "a" "b"`
    if let [
        Open,
        Open,
        Word(k),
        Close,
        Capture(c),
        Open,
        Word(p),
        Capture(c2),
        args @ ..,
        Close,
        Close,
    ] = toks.as_slice()
        && c == c2
        && !k.starts_with('#')
        && *k != "_"
        && !args.is_empty()
        && args.iter().all(|a| matches!(a, Str(_)))
    {
        let strs: Vec<String> = args
            .iter()
            .filter_map(|a| match a {
                Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        let test = match (*p, strs.as_slice()) {
            ("#eq?", [s]) => Some(TextTest::Eq(s.clone())),
            ("#not-eq?", [s]) => Some(TextTest::NotEq(s.clone())),
            ("#any-of?", _) => Some(TextTest::AnyOf(strs.clone())),
            _ => None,
        };
        if let Some(test) = test {
            return Some(Plan::Node(named(k)?, Some(test)));
        }
    }
    // Anything else: what it names outside alternations must be held, and
    // a pattern that opens with a node kind has that kind at its root.
    let root = match toks.as_slice() {
        [Open, Word(k), ..] if !k.starts_with('#') && *k != "_" => named(k),
        _ => None,
    };
    let mut needs = Needs::default();
    let mut alt = 0usize;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::OpenAlt => alt += 1,
            Tok::CloseAlt => alt = alt.saturating_sub(1),
            Open => match toks.get(i + 1) {
                Some(Word(p)) if p.starts_with('#') => {
                    // A predicate: skip to its end, noting the strings
                    // `#eq?`/`#any-of?` compare a capture with.
                    let mut strs = Vec::new();
                    let mut j = i + 2;
                    while let Some(t) = toks.get(j) {
                        match t {
                            Close => break,
                            Str(s) => strs.push(s.clone()),
                            _ => {}
                        }
                        j += 1;
                    }
                    let on_capture = matches!(toks.get(i + 2), Some(Capture(_)));
                    if alt == 0
                        && on_capture
                        && !strs.is_empty()
                        && matches!(*p, "#eq?" | "#any-of?")
                    {
                        needs.texts.push(strs);
                    }
                    i = j;
                }
                Some(Word(k)) if *k != "_" && alt == 0 => needs.kinds.push(named(k)?),
                _ => {}
            },
            Str(s) if alt == 0 => {
                let id = grammar.id_for_node_kind(s, false);
                if id == 0 {
                    return None;
                }
                needs.kinds.push(id);
            }
            // A quantifier, an anchor or a negated field: give up on
            // anything but the pattern's nodes being held... or compile
            // it whenever it is asked for.
            Word(w) if !w.starts_with('#') && w.chars().any(|c| "?*+.!".contains(c)) => {
                return Some(Plan::Query(Needs::default(), root));
            }
            _ => {}
        }
        i += 1;
    }
    Some(Plan::Query(needs, root))
}

impl SyntaxRules {
    fn build(cat: &Catalogue, lang: Lang) -> Self {
        let grammar = lang.grammar();
        let mut nodes = Vec::new();
        let mut queried = Vec::new();
        for rule in rules(lang).filter(|r| cat.contains(r.concept)) {
            match plan(&grammar, rule.query) {
                Some(Plan::Node(id, test)) => nodes.push((id, test, rule.concept)),
                Some(Plan::Query(needs, root)) => queried.push((needs, root, rule)),
                None => {}
            }
        }
        let mut class: Vec<u8> = (0..grammar.node_kind_count())
            .map(|id| {
                let kind = u16::try_from(id)
                    .ok()
                    .and_then(|id| grammar.node_kind_for_id(id))
                    .unwrap_or("");
                let mut c = 0;
                if lang.is_comment(kind) || lang.is_string(kind) {
                    c |= MASKED;
                }
                if import_kind(lang, kind) {
                    c |= IMPORT;
                }
                c
            })
            .collect();
        for (id, test, _) in &nodes {
            if test.is_some()
                && let Some(c) = class.get_mut(usize::from(*id))
            {
                *c |= TESTED;
            }
        }
        for (_, root, _) in &queried {
            if let Some(c) = root.and_then(|id| class.get_mut(usize::from(id))) {
                *c |= ROOT;
            }
        }
        Self {
            grammar,
            nodes,
            queried,
            class,
            compiled: None,
            cursor: QueryCursor::new(),
        }
    }

    fn seen<'t>(&self) -> Seen<'t> {
        Seen {
            held: vec![false; self.grammar.node_kind_count()],
            roots: Vec::new(),
        }
    }

    /// What the walk does at a node of kind `id`.
    fn class(&self, id: u16) -> u8 {
        self.class.get(usize::from(id)).copied().unwrap_or(0)
    }

    /// Notes one node of the walk (of kind `id`, [`SyntaxRules::class`]
    /// `class`): its kind held, the one-kind rules with a text test it
    /// passes, whether a compiled rule may start at it.
    fn see<'t>(
        &self,
        node: Node<'t>,
        (id, class): (u16, u8),
        text: &str,
        seen: &mut Seen<'t>,
        found: &mut Concepts,
    ) {
        if let Some(h) = seen.held.get_mut(usize::from(id)) {
            *h = true;
        }
        if class & TESTED != 0 {
            let span = node.utf8_text(text.as_bytes()).unwrap_or("");
            for (rule_id, test, concept) in &self.nodes {
                if *rule_id == id
                    && test.as_ref().is_some_and(|t| t.passes(span))
                    && !found.contains(*concept)
                {
                    found.insert((*concept).to_string());
                }
            }
        }
        if class & ROOT != 0 {
            seen.roots.push(node);
        }
    }

    /// Adds the concepts the rules find in `tree` to `found`, given what
    /// the walk over it saw.
    fn tag(&mut self, seen: &Seen, tree: &Tree, text: &str, found: &mut Concepts) {
        for (id, test, concept) in &self.nodes {
            if test.is_none() && seen.holds(*id) {
                found.insert((*concept).to_string());
            }
        }
        let chosen: Vec<usize> = (0..self.queried.len())
            .filter(|&i| {
                let (needs, _, rule) = &self.queried[i];
                !found.contains(rule.concept)
                    && needs.kinds.iter().all(|k| seen.holds(*k))
                    && needs
                        .texts
                        .iter()
                        .all(|group| group.iter().any(|s| text.contains(s.as_str())))
            })
            .collect();
        if chosen.is_empty() {
            return;
        }
        let held = self
            .compiled
            .as_ref()
            .is_some_and(|(set, _)| chosen.iter().all(|i| set.contains(i)));
        if !held {
            let mut set = chosen.clone();
            if let Some((old, _)) = &self.compiled {
                set.extend(old);
                set.sort_unstable();
                set.dedup();
            }
            let rules: Vec<&Rule> = set.iter().map(|&i| self.queried[i].2).collect();
            let Some(query) = compile(&self.grammar, &rules) else {
                return;
            };
            self.compiled = Some((set, query));
        }
        let Some((set, query)) = &self.compiled else {
            return;
        };
        // By pattern: its root kind, its concept, whether this text needs it.
        let roots: Vec<Option<u16>> = set.iter().map(|&i| self.queried[i].1).collect();
        let concepts: Vec<&str> = set.iter().map(|&i| self.queried[i].2.concept).collect();
        let mut pending: Vec<bool> = set.iter().map(|i| chosen.contains(i)).collect();
        let cursor = &mut self.cursor;
        cursor.set_max_start_depth(None);
        if roots.iter().zip(&pending).any(|(r, p)| *p && r.is_none()) {
            // A pattern without one root kind: the whole tree, as before.
            let mut matches = cursor.matches(query, tree.root_node(), text.as_bytes());
            while let Some(m) = matches.next() {
                if pending.get(m.pattern_index).copied().unwrap_or(false) {
                    found.insert(concepts[m.pattern_index].to_string());
                }
            }
            return;
        }
        let mut left = chosen.len();
        cursor.set_max_start_depth(Some(0));
        for node in &seen.roots {
            let id = Some(node.kind_id());
            if !roots.iter().zip(&pending).any(|(r, p)| *p && *r == id) {
                continue;
            }
            let mut matches = cursor.matches(query, *node, text.as_bytes());
            while let Some(m) = matches.next() {
                if let Some(p) = pending.get_mut(m.pattern_index).filter(|p| **p) {
                    *p = false;
                    left -= 1;
                    found.insert(concepts[m.pattern_index].to_string());
                }
            }
            if left == 0 {
                return;
            }
        }
    }

    /// Every rule as one query over the whole tree, as the tagger ran
    /// them before: the reference [`SyntaxRules::tag`] is checked against.
    #[cfg(test)]
    fn tag_with_all(
        &self,
        cat: &Catalogue,
        lang: Lang,
        tree: &Tree,
        text: &str,
        found: &mut Concepts,
    ) {
        let all: Vec<&Rule> = rules(lang).filter(|r| cat.contains(r.concept)).collect();
        let Some(query) = compile(&self.grammar, &all) else {
            return;
        };
        let mut cursor = QueryCursor::new();
        let mut matches = cursor.matches(&query, tree.root_node(), text.as_bytes());
        while let Some(m) = matches.next() {
            if let Some(rule) = all.get(m.pattern_index) {
                found.insert(rule.concept.to_string());
            }
        }
    }
}

/// `rules` as one query, pattern `i` being rule `i` (`None`: it does not
/// compile, which `every_rule_compiles_and_names_a_shipped_concept` rules
/// out).
fn compile(grammar: &Language, rules: &[&Rule]) -> Option<Query> {
    let mut source = String::new();
    for rule in rules {
        source.push_str(rule.query);
        source.push('\n');
    }
    Query::new(grammar, &source).ok()
}

impl LangIndex {
    pub(super) fn build(cat: &Catalogue, lang: Lang) -> Self {
        let exts = lang.extensions();
        let terms = Terms::build(code_terms(cat, exts), lang.case_insensitive());
        let mut imports: Vec<(String, String)> = Vec::new();
        let mut owners: HashMap<&str, usize> = HashMap::new();
        for c in cat.concepts() {
            if !(lists_any(c, exts)
                || (c.matchers.extensions.is_empty() && neutral_applies(c, exts)))
            {
                continue;
            }
            for i in &c.matchers.imports {
                *owners.entry(i.as_str()).or_default() += 1;
                if !stopped(&c.slug, i, STOP_IMPORTS) {
                    imports.push((i.clone(), c.slug.clone()));
                }
            }
        }
        imports.retain(|(i, _)| owners.get(i.as_str()) == Some(&1));
        let import_tokens: Vec<Vec<String>> = imports
            .iter()
            .map(|(i, _)| tokens(i).map(String::from).collect())
            .collect();
        let lists: Vec<Vec<&str>> = import_tokens
            .iter()
            .map(|t| t.iter().map(String::as_str).collect())
            .collect();
        let (import_keys, import_bare) = key_index(lists.iter().map(Vec::as_slice));
        let rules = SyntaxRules::build(cat, lang);
        let markers = Markers::build(cat, lang);
        let mut parser = Parser::new();
        let parser = parser.set_language(&rules.grammar).ok().map(|()| parser);
        Self {
            lang,
            terms,
            imports,
            import_tokens,
            import_keys,
            import_bare,
            rules,
            markers,
            parser,
        }
    }

    /// Adds what `text` shows to `found`; returns the string literals
    /// that read as SQL.
    ///
    /// When the lexer is sure of the text (`lex`), it gives the masked
    /// text and the string literals without a tree, and splits the text
    /// at its top-level items; only the items that may still show
    /// something are parsed: those holding a marker of a syntax rule, or
    /// every part of an import entry, whose concept is not found yet (by
    /// the terms, or by an item before). One match anywhere shows a
    /// rule's concept, so a rule found once needs no more looking for.
    /// Otherwise the whole text is parsed, as before.
    pub(super) fn tag(&mut self, text: &str, found: &mut Concepts) -> Vec<String> {
        let lexed = match self.parser {
            Some(_) => lex::lex(self.lang, text),
            None => None,
        };
        let Some(lexed) = lexed else {
            return self.tag_whole(text, found);
        };
        let masked = mask(text, &lexed.masked);
        let sql: Vec<String> = lexed
            .strings
            .iter()
            .filter_map(|&(s, e)| embedded_sql(&text[s..e]))
            .map(String::from)
            .collect();
        let fold_case = self.lang.case_insensitive();
        self.terms.find(&normalize(&masked, fold_case), found);
        let mut pending = self.pending(found);
        if pending.rules == 0 && self.lang.import_words().is_empty() {
            return sql;
        }
        // Where the markers are looked for: the text without its comments.
        let view = without_comments(text, &lexed);
        let view_of = |from: usize, to: usize| {
            normalize(view.get(from..to).unwrap_or(&text[from..to]), fold_case)
        };
        // The places the lexer saw between two offsets.
        let seen = lexed.places;
        let places = |from: usize, to: usize| {
            let at = seen.partition_point(|(i, _)| *i < from);
            seen[at..]
                .iter()
                .take_while(|(i, _)| *i < to)
                .fold(0u8, |a, (_, bit)| a | bit)
        };
        let mut bounds = lexed.chunks;
        bounds.push(text.len());
        let mut k = 0;
        while k + 1 < bounds.len() {
            let (from, mut to) = (bounds[k], bounds[k + 1]);
            k += 1;
            if !self.needed(&view_of(from, to), places(from, to), &pending, found) {
                continue;
            }
            // Items next to each other are parsed together, up to a few
            // KB (fewer parser runs).
            while k + 1 < bounds.len()
                && to - from < GROUP
                && self.needed(
                    &view_of(to, bounds[k + 1]),
                    places(to, bounds[k + 1]),
                    &pending,
                    found,
                )
            {
                to = bounds[k + 1];
                k += 1;
            }
            let before = found.len();
            self.tag_tree(&text[from..to], found);
            if found.len() != before {
                pending = self.pending(found);
            }
        }
        sql
    }

    /// The rules whose concepts are not in `found`.
    fn pending(&self, found: &Concepts) -> Pending {
        let mut rules = 0u128;
        for (k, rule) in self.markers.rules.iter().enumerate() {
            if !found.contains(rule.concept) {
                rules |= 1u128
                    .checked_shl(u32::try_from(k).unwrap_or(u32::MAX))
                    .unwrap_or(0);
            }
        }
        Pending { rules }
    }

    /// Whether parsing a part may show a concept still `pending`, from
    /// `view`, the part [`without_comments`] and [`normalize`]d, and the
    /// `places` the lexer saw in it: a rule not found whose markers (and
    /// `also` words, at its place) it holds, or an import entry not found
    /// whose tokens it holds beside an import word.
    fn needed(&self, view: &str, places: u8, pending: &Pending, found: &Concepts) -> bool {
        let Some(ac) = &self.markers.ac else {
            return true;
        };
        let bytes = view.as_bytes();
        let (mut held, mut held2) = (0u128, 0u128);
        for m in ac.find_overlapping_iter(view) {
            let i = m.pattern().as_usize();
            if marker_at(self.markers.words[i].as_bytes(), bytes, m.start(), m.end()) {
                held2 |= held & (1u128 << i);
                held |= 1u128 << i;
            }
        }
        let rules = self.markers.rules.iter().enumerate();
        for (k, rule) in rules {
            if (pending.rules >> k) & 1 == 1 && rule.may_match(held, held2, places) {
                return true;
            }
        }
        if held & self.markers.imports == 0 {
            return false;
        }
        // An import path is read off the tree from the text's own tokens
        // (a `use` tree's segments, a quoted module path), so every
        // identifier token of an entry it shows is a whole token of the
        // part.
        let words: HashSet<&str, FxBuild> = tokens(view).collect();
        let shown = |i: &usize| {
            self.import_tokens[*i]
                .iter()
                .all(|t| words.contains(t.as_str()))
                && !found.contains(&self.imports[*i].1)
        };
        self.import_bare.iter().any(shown)
            || words
                .iter()
                .any(|t| self.import_keys.get(*t).into_iter().flatten().any(shown))
    }

    /// Parses `part` alone: its imports and syntax rules.
    fn tag_tree(&mut self, part: &str, found: &mut Concepts) {
        let Some(tree) = self.parser.as_mut().and_then(|p| p.parse(part, None)) else {
            return;
        };
        let (scan, seen) = self.walked(&tree, part, false, found);
        self.imported(&scan.imports, found);
        self.rules.tag(&seen, &tree, part, found);
    }

    /// The whole text parsed, masked from the tree: for text the lexer is
    /// not sure of.
    fn tag_whole(&mut self, text: &str, found: &mut Concepts) -> Vec<String> {
        let tree = self.parser.as_mut().and_then(|p| p.parse(text, None));
        let Some(tree) = tree else {
            self.terms
                .find(&normalize(text, self.lang.case_insensitive()), found);
            return Vec::new();
        };
        let (scan, seen) = self.walked(&tree, text, true, found);
        let masked = self.masked(scan, text, found);
        self.terms.find(
            &normalize(&masked.text, self.lang.case_insensitive()),
            found,
        );
        self.rules.tag(&seen, &tree, text, found);
        masked.sql
    }

    /// One walk over `tree` (of `text`): what it found to import and (when
    /// `masking`) to mask, and the nodes the syntax rules may start at.
    fn walked<'t>(
        &self,
        tree: &'t Tree,
        text: &str,
        masking: bool,
        found: &mut Concepts,
    ) -> (Scan, Seen<'t>) {
        let mut scan = Scan {
            masking,
            ..Scan::default()
        };
        let mut seen = self.rules.seen();
        walk(
            self.lang,
            &self.rules,
            tree.root_node(),
            text,
            &mut scan,
            &mut seen,
            found,
        );
        (scan, seen)
    }

    /// Masks the comments and strings the walk found and adds the
    /// concepts its imports show to `found`.
    fn masked(&self, scan: Scan, text: &str, found: &mut Concepts) -> Masked {
        self.imported(&scan.imports, found);
        Masked {
            text: mask(text, &scan.masked),
            sql: scan.sql,
        }
    }

    /// Adds the concepts the import paths show to `found`.
    fn imported(&self, paths: &[String], found: &mut Concepts) {
        let sep = self.lang.import_separator();
        for path in paths {
            for (entry, concept) in &self.imports {
                let hit = path == entry
                    || path
                        .strip_prefix(entry.as_str())
                        .is_some_and(|rest| rest.starts_with(sep));
                if hit {
                    found.insert(concept.clone());
                }
            }
        }
    }

    /// The masked text and embedded SQL from the lexer (`None`: not sure)
    /// and from the tree's walk, for the tests comparing the two.
    #[cfg(test)]
    pub(super) fn masks(&mut self, text: &str) -> (Option<MaskedText>, MaskedText) {
        let lexed = lex::lex(self.lang, text).map(|l| {
            let sql = l
                .strings
                .iter()
                .filter_map(|&(s, e)| embedded_sql(&text[s..e]))
                .map(String::from)
                .collect();
            (mask(text, &l.masked), sql)
        });
        let tree = self
            .parser
            .as_mut()
            .and_then(|p| p.parse(text, None))
            .expect("a tree");
        let mut scan = Scan {
            masking: true,
            ..Scan::default()
        };
        walk_masking_only(self.lang, tree.root_node(), text, &mut scan);
        (lexed, (mask(text, &scan.masked), scan.sql))
    }

    /// [`LangIndex::tag`] with every term in one automaton and every rule
    /// in one query over the whole tree, masking in a walk of its own, as
    /// the tagger did before; for the equivalence tests.
    #[cfg(test)]
    pub(super) fn tag_with_all(
        &mut self,
        cat: &Catalogue,
        text: &str,
        found: &mut Concepts,
    ) -> Vec<String> {
        let tree = self.parser.as_mut().and_then(|p| p.parse(text, None));
        let Some(tree) = tree else {
            self.terms
                .find_with_all(&normalize(text, self.lang.case_insensitive()), found);
            return Vec::new();
        };
        let mut scan = Scan {
            masking: true,
            ..Scan::default()
        };
        walk_masking_only(self.lang, tree.root_node(), text, &mut scan);
        let masked = self.masked(scan, text, found);
        self.terms.find_with_all(
            &normalize(&masked.text, self.lang.case_insensitive()),
            found,
        );
        self.rules.tag_with_all(cat, self.lang, &tree, text, found);
        masked.sql
    }
}

/// A masked text and the SQL found in its string literals.
#[cfg(test)]
pub(super) type MaskedText = (String, Vec<String>);

struct Masked {
    text: String,
    sql: Vec<String>,
}

#[derive(Default)]
struct Scan {
    /// Whether comments and strings are noted in `masked` and `sql` (not
    /// when the lexer masked the text already).
    masking: bool,
    masked: Vec<(usize, usize)>,
    imports: Vec<String>,
    sql: Vec<String>,
}

/// Visits every node once, depth first, with a cursor (no recursion, so
/// a deeply nested input cannot exhaust the stack): [`visit`] for the
/// masking and the imports (not below a node it says to skip: a comment,
/// a string, a Go import), [`SyntaxRules::see`] for the rules (everywhere:
/// code inside a template string is code).
fn walk<'t>(
    lang: Lang,
    rules: &SyntaxRules,
    root: Node<'t>,
    text: &str,
    scan: &mut Scan,
    seen: &mut Seen<'t>,
    found: &mut Concepts,
) {
    let mut cursor = root.walk();
    // The nodes above the cursor's, and how many of them `visit` reads
    // below (all of them unless one said to skip its children).
    let mut path: Vec<Node<'t>> = Vec::new();
    let mut visited = usize::MAX;
    loop {
        let node = cursor.node();
        let id = node.kind_id();
        let class = rules.class(id);
        let depth = path.len();
        // A node that is no comment, string or import needs no visit: its
        // children matter.
        if depth <= visited {
            let descend = class & (MASKED | IMPORT) == 0
                || visit(lang, node, path.last().copied(), text, scan);
            visited = if descend { usize::MAX } else { depth };
        }
        rules.see(node, (id, class), text, seen, found);
        if cursor.goto_first_child() {
            path.push(node);
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return;
            }
            path.pop();
        }
    }
}

/// The masking walk as it was before [`walk`] also read the rules: the
/// reference it is checked against.
#[cfg(test)]
fn walk_masking_only(lang: Lang, root: Node, text: &str, scan: &mut Scan) {
    let mut cursor = root.walk();
    loop {
        let node = cursor.node();
        let descend = visit(lang, node, node.parent(), text, scan);
        if descend && cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return;
            }
        }
    }
}

/// The node kinds [`visit`] reads an import from.
fn import_kind(lang: Lang, kind: &str) -> bool {
    match lang {
        Lang::Rust => matches!(kind, "use_declaration" | "extern_crate_declaration"),
        Lang::Python => matches!(kind, "import_statement" | "import_from_statement"),
        Lang::Go => kind == "import_spec",
        Lang::TypeScript | Lang::Tsx | Lang::JavaScript => {
            matches!(kind, "import_statement" | "call_expression")
        }
        Lang::Sql => false,
    }
}

/// Records what one node shows; returns whether its children matter.
fn visit(lang: Lang, node: Node, parent: Option<Node>, text: &str, scan: &mut Scan) -> bool {
    let kind = node.kind();
    let span = || text.get(node.start_byte()..node.end_byte()).unwrap_or("");
    if lang.is_comment(kind) {
        if scan.masking {
            scan.masked.push((node.start_byte(), node.end_byte()));
        }
        return false;
    }
    let quoted = || lang != Lang::Sql || span().contains('\'') || span().starts_with('$');
    if lang.is_string(kind) && quoted() {
        let go_tag = lang == Lang::Go && parent.is_some_and(|p| p.kind() == "field_declaration");
        if scan.masking && !go_tag {
            scan.masked.push((node.start_byte(), node.end_byte()));
            if let Some(sql) = embedded_sql(span()) {
                scan.sql.push(sql.to_string());
            }
        }
        return false;
    }
    match (lang, kind) {
        (Lang::Rust, "use_declaration") => {
            if let Some(arg) = node.child_by_field_name("argument") {
                let t = &text[arg.start_byte()..arg.end_byte()];
                scan.imports.extend(expand_use(t));
            }
        }
        (Lang::Rust, "extern_crate_declaration") => {
            if let Some(n) = node.child_by_field_name("name") {
                scan.imports.push(text[n.start_byte()..n.end_byte()].into());
            }
        }
        (Lang::Python, "import_statement" | "import_from_statement") => {
            let module = node
                .child_by_field_name("module_name")
                .map(|m| text[m.start_byte()..m.end_byte()].to_string());
            let mut cursor = node.walk();
            for child in node.children_by_field_name("name", &mut cursor) {
                let target = child.child_by_field_name("name").unwrap_or(child);
                let name = &text[target.start_byte()..target.end_byte()];
                match &module {
                    Some(m) => scan.imports.push(format!("{m}.{name}")),
                    None => scan.imports.push(name.to_string()),
                }
            }
            scan.imports.extend(module);
        }
        (Lang::Go, "import_spec") => {
            if let Some(p) = node.child_by_field_name("path") {
                let t = &text[p.start_byte()..p.end_byte()];
                scan.imports.push(t.trim_matches(['"', '`']).to_string());
            }
            return false;
        }
        (Lang::TypeScript | Lang::Tsx | Lang::JavaScript, "import_statement") => {
            if let Some(s) = node.child_by_field_name("source") {
                let t = &text[s.start_byte()..s.end_byte()];
                scan.imports.push(t.trim_matches(['"', '\'']).to_string());
            }
        }
        (Lang::TypeScript | Lang::Tsx | Lang::JavaScript, "call_expression") => {
            let is_require = node
                .child_by_field_name("function")
                .is_some_and(|f| &text[f.start_byte()..f.end_byte()] == "require");
            if let Some(arg) = node
                .child_by_field_name("arguments")
                .and_then(|a| a.named_child(0))
                .filter(|a| is_require && a.kind() == "string")
            {
                let t = &text[arg.start_byte()..arg.end_byte()];
                scan.imports.push(t.trim_matches(['"', '\'']).to_string());
            }
        }
        _ => {}
    }
    true
}

/// A string literal's content when it reads as a SQL statement.
fn embedded_sql(literal: &str) -> Option<&str> {
    let quote = literal.find(['"', '\'', '`'])?;
    if quote > 3 {
        return None;
    }
    let body = literal[quote..]
        .trim_start_matches(['"', '\'', '`', '#'])
        .trim_end_matches(['"', '\'', '`', '#']);
    let head: String = body
        .trim_start()
        .chars()
        .take(12)
        .collect::<String>()
        .to_ascii_uppercase();
    const STARTS: [&str; 8] = [
        "SELECT ",
        "INSERT INTO",
        "UPDATE ",
        "DELETE FROM",
        "WITH ",
        "CREATE ",
        "ALTER ",
        "EXPLAIN ",
    ];
    STARTS.iter().any(|s| head.starts_with(s)).then_some(body)
}

/// `a::{b, c::{d, e}}` becomes `a::b`, `a::c::d`, `a::c::e`.
fn expand_use(tree: &str) -> Vec<String> {
    let compact: String = tree
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" as ", "@")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut out = Vec::new();
    expand_into("", &compact, &mut out);
    out
}

fn expand_into(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let join = |p: &str, s: &str| {
        if p.is_empty() {
            s.to_string()
        } else {
            format!("{p}::{s}")
        }
    };
    match tree.find('{') {
        Some(open) if tree.ends_with('}') => {
            let head = tree[..open].trim_end_matches("::");
            let base = join(prefix, head);
            if !head.is_empty() {
                out.push(base.clone());
            }
            let inner = &tree[open + 1..tree.len() - 1];
            let mut depth = 0;
            let mut start = 0;
            for (i, ch) in inner.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand_into(&base, &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            expand_into(&base, &inner[start..], out);
        }
        _ => {
            let item = tree.split('@').next().unwrap_or(tree);
            if !item.is_empty() && item != "self" {
                out.push(join(prefix, item));
            } else if item == "self" && !prefix.is_empty() {
                out.push(prefix.to_string());
            }
        }
    }
}

/// Plain-text matching for files with no grammar, shell commands and
/// prose.
pub(super) struct PlainIndex {
    terms: Terms,
    titles: Terms,
}

impl PlainIndex {
    pub(super) fn for_extension(cat: &Catalogue, ext: &str) -> Self {
        let exts: Vec<&str> = if ext.is_empty() { vec![] } else { vec![ext] };
        Self {
            terms: Terms::build(code_terms(cat, &exts), false),
            titles: Terms::build(Vec::new(), true),
        }
    }

    pub(super) fn for_prose(cat: &Catalogue) -> Self {
        let mut phrases = Vec::new();
        let mut titles = Vec::new();
        for c in cat.concepts() {
            for t in terms_of(c) {
                if t.trim().contains(' ') && !stopped(&c.slug, t, STOP_TERMS) {
                    phrases.push((t.clone(), c.slug.clone()));
                }
            }
            if c.title.split_whitespace().count() >= 2 {
                titles.push((c.title.clone(), c.slug.clone()));
            }
        }
        Self {
            terms: Terms::build(phrases, false),
            titles: Terms::build(titles, true),
        }
    }

    pub(super) fn tag(&self, text: &str, found: &mut Concepts) {
        self.terms.find(&normalize(text, false), found);
        self.titles.find(&normalize(text, true), found);
    }

    /// [`PlainIndex::tag`] with every term in one automaton.
    #[cfg(test)]
    pub(super) fn tag_with_all(&self, text: &str, found: &mut Concepts) {
        self.terms.find_with_all(&normalize(text, false), found);
        self.titles.find_with_all(&normalize(text, true), found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Text made of pieces of the index's own patterns (whole, cut short,
    /// glued to identifiers or punctuation), where terms match, nearly
    /// match and overlap.
    fn text_of(terms: &Terms, picks: &[(usize, u8, u8)]) -> String {
        const GLUE: [&str; 10] = [" ", "", "_", "x", ".", "(", "::", "\n", "é", "9"];
        let mut out = String::new();
        for &(p, cut, glue) in picks {
            let pat = &terms.patterns[p % terms.patterns.len()];
            let keep = if cut % 4 == 0 {
                pat.char_indices()
                    .nth(usize::from(cut) % pat.chars().count().max(1))
                    .map_or(pat.len(), |(i, _)| i)
            } else {
                pat.len()
            };
            out.push_str(&pat[..keep]);
            out.push_str(GLUE[usize::from(glue) % GLUE.len()]);
        }
        out
    }

    fn indexes() -> Vec<(&'static str, Terms)> {
        static CAT: std::sync::OnceLock<Catalogue> = std::sync::OnceLock::new();
        let cat = CAT.get_or_init(|| Catalogue::builtin().expect("catalogue"));
        let mut out = Vec::new();
        for lang in [Lang::Rust, Lang::Sql, Lang::TypeScript] {
            let exts = lang.extensions();
            out.push((
                "code",
                Terms::build(code_terms(cat, exts), lang.case_insensitive()),
            ));
        }
        let prose = PlainIndex::for_prose(cat);
        out.push(("prose", prose.terms));
        out.push(("titles", prose.titles));
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn picking_candidate_terms_finds_what_every_term_finds(picks in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..40)) {
            for (what, terms) in indexes() {
                let text = normalize(&text_of(&terms, &picks), false);
                let (mut fast, mut all) = (Concepts::new(), Concepts::new());
                terms.find(&text, &mut fast);
                terms.find_with_all(&text, &mut all);
                prop_assert_eq!(&fast, &all, "{}: {:?}", what, text);
                let upper = text.to_ascii_uppercase();
                let (mut fast, mut all) = (Concepts::new(), Concepts::new());
                terms.find(&upper, &mut fast);
                terms.find_with_all(&upper, &mut all);
                prop_assert_eq!(&fast, &all, "{}: {:?}", what, upper);
            }
        }
    }

    #[test]
    fn rules_are_read_off_the_tree_or_compiled_when_their_kinds_are_held_and_run_at_their_root() {
        let g = Lang::Rust.grammar();
        let id = |k: &str, named: bool| g.id_for_node_kind(k, named);
        assert!(matches!(
            plan(&g, "(closure_expression) @x"),
            Some(Plan::Node(k, None)) if k == id("closure_expression", true)
        ));
        assert!(matches!(
            plan(&g, "((lifetime) @x (#not-eq? @x \"'_\"))"),
            Some(Plan::Node(k, Some(TextTest::NotEq(s)))) if k == id("lifetime", true) && s == "'_"
        ));
        assert!(matches!(
            plan(&g, "((type_identifier) @t (#any-of? @t \"Send\" \"Sync\"))"),
            Some(Plan::Node(_, Some(TextTest::AnyOf(v)))) if v == ["Send", "Sync"]
        ));
        let Some(Plan::Query(needs, root)) = plan(
            &g,
            "(impl_item trait: (type_identifier) @t (#eq? @t \"Drop\")) @x",
        ) else {
            panic!("a query");
        };
        assert_eq!(
            needs,
            Needs {
                kinds: vec![id("impl_item", true), id("type_identifier", true)],
                texts: vec![vec!["Drop".to_string()]],
            }
        );
        assert_eq!(root, Some(id("impl_item", true)));
        let Some(Plan::Query(needs, root)) = plan(&g, "(function_modifiers \"async\") @x") else {
            panic!("a query");
        };
        assert_eq!(
            needs.kinds,
            vec![id("function_modifiers", true), id("async", false)]
        );
        assert_eq!(root, Some(id("function_modifiers", true)));
        let py = Lang::Python.grammar();
        let Some(Plan::Query(needs, root)) = plan(
            &py,
            "(default_parameter value: [(list) (dictionary) (set)]) @x",
        ) else {
            panic!("a query");
        };
        assert_eq!(
            needs.kinds,
            vec![py.id_for_node_kind("default_parameter", true)]
        );
        assert_eq!(root, Some(py.id_for_node_kind("default_parameter", true)));
        // A pattern that opens with a wildcard or an alternation has no one
        // root kind: it runs over the whole tree.
        assert!(matches!(
            plan(&g, "(_ (closure_expression)) @x"),
            Some(Plan::Query(_, None))
        ));
        assert!(matches!(
            plan(&g, "[(closure_expression) (async_block)] @x"),
            Some(Plan::Query(_, None))
        ));
        assert!(plan(&g, "(no_such_kind) @x").is_none());
        assert_eq!(
            query_tokens("((x) @a (#eq? @a \"q\\\"\"))").expect("tokens")[6..],
            [
                Tok::Word("#eq?"),
                Tok::Capture("a"),
                Tok::Str("q\"".into()),
                Tok::Close,
                Tok::Close
            ]
        );
    }

    #[test]
    fn use_trees_expand() {
        assert_eq!(
            expand_use("std::sync::{Arc, Mutex, mpsc::{self, Sender}}"),
            vec![
                "std::sync",
                "std::sync::Arc",
                "std::sync::Mutex",
                "std::sync::mpsc",
                "std::sync::mpsc",
                "std::sync::mpsc::Sender"
            ]
        );
        assert_eq!(expand_use("tokio"), vec!["tokio"]);
    }

    #[test]
    fn normalizing_joins_spacing_and_case() {
        assert_eq!(
            normalize("row_number()  over\n (", true),
            "ROW_NUMBER() OVER("
        );
        assert_eq!(normalize("  a\t b ", false), "a b");
    }

    #[test]
    fn sql_in_string_literals_is_recognised() {
        assert_eq!(embedded_sql("\"SELECT 1\""), Some("SELECT 1"));
        assert_eq!(
            embedded_sql("r#\"update t set a = 1\"#"),
            Some("update t set a = 1")
        );
        assert!(embedded_sql("f\"\"\"\n  WITH x AS (SELECT 1) SELECT * FROM x\"\"\"").is_some());
        assert_eq!(embedded_sql("\"selection\""), None);
    }
}
