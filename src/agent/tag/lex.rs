//! A small hand-written lexer per language that finds what the syntax
//! tree's walk masks (comments and string literals) and where top-level
//! items begin, without building a tree.
//!
//! It answers `None` for any text it is not sure of (a literal or comment
//! left open, brackets that do not balance, JSX, an HTML comment, a
//! template literal in a TypeScript type, ...): the caller then parses the
//! whole text as before. What it answers is checked against the tree's
//! masking on every corpus snippet, each language's snippets as one text,
//! and adversarial snippets (`tests`).

use super::lang::Lang;
use super::rules::Place;

/// What the lexer found in a text.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Lexed {
    /// Comments and string literals to blank, as byte ranges in order.
    pub masked: Vec<(usize, usize)>,
    /// The string literals among them (each read for embedded SQL).
    pub strings: Vec<(usize, usize)>,
    /// Where the top-level items begin (`0` first), so that parsing the
    /// text between two of them alone gives the tree the whole text
    /// would have there.
    pub chunks: Vec<usize>,
    /// Where a [`Place`] was seen, as byte offsets and the place's bit, in
    /// order.
    pub places: Vec<(usize, u8)>,
}

/// Lexes `text` as `lang`; `None` when not sure (parse it whole).
pub(super) fn lex(lang: Lang, text: &str) -> Option<Lexed> {
    let mut l = Lexer {
        lang,
        b: text.as_bytes(),
        i: 0,
        out: Lexed {
            chunks: vec![0],
            ..Lexed::default()
        },
        stack: Vec::new(),
        last: Last::Start,
        decorated: false,
        type_stmt: false,
        quiet: false,
        line: PyLine::default(),
        before: Last::Start,
        rust: RustAngles::default(),
    };
    match lang {
        Lang::Python => l.python()?,
        Lang::Sql => l.sql()?,
        _ => {
            if matches!(lang, Lang::Tsx | Lang::JavaScript)
                && (text.contains("</") || text.contains("/>"))
            {
                return None; // JSX: its text is neither code nor string.
            }
            if text.contains("<!--") || text.contains("-->") {
                return None;
            }
            l.c_like(false)?;
        }
    }
    if !l.stack.is_empty() {
        return None;
    }
    Some(l.out)
}

/// The last significant thing the lexer passed (comments do not count).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Last {
    Start,
    /// A punctuation byte.
    Punct(u8),
    /// An identifier or keyword ending at this byte offset, starting at
    /// the first.
    Word(usize, usize),
    /// A literal (string, number, regex, char).
    Literal,
}

struct Lexer<'a> {
    lang: Lang,
    b: &'a [u8],
    i: usize,
    out: Lexed,
    /// Open brackets; for Go, `s` marks a struct body's brace.
    stack: Vec<u8>,
    last: Last,
    /// Python: the last top-level line was a decorator.
    decorated: bool,
    /// TypeScript: inside a `type X = ...` statement.
    type_stmt: bool,
    /// Inside a masked template literal's `${...}`: nothing more to mask.
    quiet: bool,
    /// Python: the logical line being lexed.
    line: PyLine,
    /// What `last` was when the last word began: the token before it.
    before: Last,
    /// Rust: where a colon may begin trait bounds.
    rust: RustAngles,
}

/// Rust: what the lexer knows to tell a colon that may begin trait bounds
/// ([`Place::RustBound`]) from one of a `let`, a parameter or a field.
#[derive(Debug, Default)]
struct RustAngles {
    /// `<` not yet closed by a `>` since the innermost open bracket: a
    /// comparison's counts too, which only makes more colons count.
    open: usize,
    /// `open` of each enclosing bracket.
    outer: Vec<usize>,
    /// The bracket depth of a `where`, `trait` or `type` whose bounds may
    /// follow, until a `{` or `;` at that depth.
    bounds_at: Option<usize>,
}

/// The Rust words a type's or function's name follows, whose type
/// parameters open right after that name.
const RUST_NAMED: &[&[u8]] = &[b"fn", b"struct", b"enum", b"union", b"trait", b"type"];

/// Python: what the lexer knows of the logical line it is in, to tell a
/// compound statement's header colon from one that may begin an
/// annotation ([`Place::PyAnnotation`]).
#[derive(Debug, Default, Clone, Copy)]
struct PyLine {
    /// Its first token is still to come.
    first: bool,
    /// Its first token is a keyword that opens a compound statement.
    header: bool,
    /// The header's colon (its first outside brackets) was passed.
    header_colon: bool,
}

/// Python's keywords that open a compound statement (or one's clause),
/// whose header ends at its first colon outside brackets. The soft ones
/// (`match`, `case`) are left out: they are names too (`match: int`), as
/// the grammar has `async` (see [`Lexer::py_header`]).
const PY_HEADERS: &[&[u8]] = &[
    b"if", b"elif", b"else", b"for", b"while", b"with", b"def", b"class", b"try", b"except",
    b"finally",
];

fn ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b'$' || c >= 0x80
}

fn ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

impl Lexer<'_> {
    fn peek(&self, k: usize) -> u8 {
        self.b.get(self.i + k).copied().unwrap_or(0)
    }

    /// Where the run of identifier bytes from `from` ends.
    fn word_end(&self, from: usize) -> usize {
        let mut e = from;
        while e < self.b.len() && ident(self.b[e]) {
            e += 1;
        }
        e
    }

    fn word(&self, (s, e): (usize, usize)) -> &[u8] {
        &self.b[s..e]
    }

    fn last_word(&self) -> &[u8] {
        match self.last {
            Last::Word(s, e) => self.word((s, e)),
            _ => b"",
        }
    }

    /// Notes that `place` was seen at the current offset.
    fn place(&mut self, place: Place) {
        self.out.places.push((self.i, place.bit()));
    }

    fn mask(&mut self, start: usize, end: usize, string: bool) {
        if self.quiet {
            return;
        }
        self.out.masked.push((start, end));
        if string {
            self.out.strings.push((start, end));
        }
    }

    /// Rust, Go, TypeScript/TSX/JavaScript. `nested`: lexing a template
    /// literal's `${...}` (quiet, ends at its closing brace).
    fn c_like(&mut self, nested: bool) -> Option<()> {
        let base = self.stack.len();
        while self.i < self.b.len() {
            let c = self.b[self.i];
            let start = self.i;
            match c {
                b'\n' => {
                    self.i += 1;
                    if !nested {
                        self.boundary_c();
                    }
                }
                b'/' if self.peek(1) == b'/' => {
                    let end = self.line_end(self.i);
                    self.mask(start, end, false);
                    self.i = end;
                }
                b'/' if self.peek(1) == b'*' => {
                    let end = self.block_comment(self.i, self.lang == Lang::Rust)?;
                    self.mask(start, end, false);
                    self.i = end;
                }
                b'/' if self.is_js() && self.regex_allowed() => {
                    let end = self.regex(self.i)?;
                    self.mask(start, end, true);
                    self.i = end;
                    self.last = Last::Literal;
                }
                b'"' => {
                    let end = self.quoted(self.i, b'"', self.lang != Lang::Rust)?;
                    self.string(start, end);
                }
                b'\'' => self.quote()?,
                b'`' if self.lang == Lang::Go => {
                    let end = memchr(b'`', self.b, self.i + 1)? + 1;
                    self.string(start, end);
                }
                b'`' if self.is_js() => {
                    let typed = self.lang != Lang::JavaScript && self.type_stmt;
                    if self.lang != Lang::JavaScript
                        && !typed
                        && (matches!(self.last, Last::Punct(b':' | b'|' | b'&' | b'<'))
                            || self.last_word() == b"extends")
                    {
                        return None; // a template literal type or a string?
                    }
                    // A template literal type is no string: not masked,
                    // its `${...}` are types (`string` among them masked).
                    let end = self.template(self.i, !typed)?;
                    if typed {
                        self.i = end;
                        self.last = Last::Literal;
                    } else {
                        self.string(start, end);
                    }
                }
                b'(' | b'[' | b'{' => {
                    if self.lang == Lang::Rust {
                        self.rust_open(c);
                    }
                    let mark =
                        if c == b'{' && self.lang == Lang::Go && self.last_word() == b"struct" {
                            b's'
                        } else {
                            c
                        };
                    self.stack.push(mark);
                    self.i += 1;
                    self.last = Last::Punct(c);
                }
                b')' | b']' | b'}' => {
                    if nested && c == b'}' && self.stack.len() == base {
                        return Some(());
                    }
                    let open = self.stack.pop()?;
                    let want = match c {
                        b')' => b'(',
                        b']' => b'[',
                        _ => b'{',
                    };
                    if open != want && !(open == b's' && c == b'}') {
                        return None;
                    }
                    if self.lang == Lang::Rust {
                        self.rust.open = self.rust.outer.pop().unwrap_or(0);
                    }
                    self.i += 1;
                    self.last = Last::Punct(c);
                }
                c if ident_start(c) => {
                    let e = self.word_end(self.i + 1);
                    let w = &self.b[self.i..e];
                    let next = self.b.get(e).copied().unwrap_or(0);
                    if self.lang == Lang::Rust && self.rust_prefix(w, next) {
                        let end = self.rust_literal(self.i, e)?;
                        self.string(start, end);
                        continue;
                    }
                    if self.is_js()
                        && self.lang != Lang::JavaScript
                        && w == b"type"
                        && self.stack.len() == base
                        && (matches!(self.last, Last::Start | Last::Punct(b';' | b'}'))
                            || self.last_word() == b"export")
                    {
                        self.type_stmt = true;
                    }
                    if self.lang == Lang::Go && w == b"func" && self.stack.is_empty() {
                        self.place(Place::GoTopLevel);
                    }
                    if self.lang == Lang::Rust && matches!(w, b"where" | b"trait" | b"type") {
                        self.rust.bounds_at = Some(self.stack.len());
                    }
                    self.before = self.last;
                    if self.lang != Lang::JavaScript && w == b"string" && self.ts_string_type(e) {
                        // TypeScript's predefined type `string` is a node
                        // of kind `string` too, and masked as one.
                        self.mask(start, e, false);
                    }
                    self.last = Last::Word(self.i, e);
                    self.i = e;
                }
                c if c.is_ascii_digit() => {
                    while self.i < self.b.len()
                        && (ident(self.b[self.i])
                            || (self.b[self.i] == b'.' && self.peek(1).is_ascii_digit()))
                    {
                        self.i += 1;
                    }
                    self.last = Last::Literal;
                }
                c if c.is_ascii_whitespace() => self.i += 1,
                _ => {
                    if c == b';' && self.stack.len() == base {
                        self.type_stmt = false;
                    }
                    if self.lang == Lang::Rust {
                        self.rust_punct(c);
                    }
                    self.i += 1;
                    self.last = Last::Punct(c);
                }
            }
        }
        if nested { None } else { Some(()) }
    }

    /// Rust: a bracket `c` opens at the current offset.
    fn rust_open(&mut self, c: u8) {
        if c == b'{' && self.rust.bounds_at == Some(self.stack.len()) {
            self.rust.bounds_at = None;
        }
        self.rust.outer.push(self.rust.open);
        self.rust.open = 0;
    }

    /// Rust: the places a punctuation byte `c` at the current offset may
    /// be, and the angles it opens or closes.
    fn rust_punct(&mut self, c: u8) {
        let (prev, next) = (self.i.checked_sub(1).map_or(0, |p| self.b[p]), self.peek(1));
        match c {
            b';' if self.rust.bounds_at == Some(self.stack.len()) => self.rust.bounds_at = None,
            b':' if prev != b':'
                && next != b':'
                && (self.rust.open > 0 || self.rust.bounds_at.is_some()) =>
            {
                self.place(Place::RustBound);
            }
            b'<' if next != b'=' => {
                self.rust.open += 1;
                // Type parameters open right after `impl`, `for` or the
                // name a `fn`, `struct`, ... declares (`r#name` too).
                let named = match (self.before, self.last) {
                    (_, Last::Word(..)) if matches!(self.last_word(), b"impl" | b"for") => true,
                    (Last::Punct(b'#'), Last::Word(..)) => true,
                    (Last::Word(s, e), Last::Word(..)) => RUST_NAMED.contains(&self.word((s, e))),
                    _ => false,
                };
                if named {
                    self.place(Place::RustTypeParams);
                }
            }
            b'>' if !matches!(prev, b'-' | b'=') && next != b'=' => {
                self.rust.open = self.rust.open.saturating_sub(1);
            }
            _ => {}
        }
    }

    /// Whether the word `string` ending at `e` is TypeScript's type (not
    /// a member, a key, a call or a name being declared).
    fn ts_string_type(&self, e: usize) -> bool {
        if !self.is_js() {
            return false;
        }
        let declared = matches!(
            self.last_word(),
            b"const" | b"let" | b"var" | b"function" | b"class"
        );
        let next = self.b[e..]
            .iter()
            .find(|c| !c.is_ascii_whitespace())
            .copied()
            .unwrap_or(0);
        !declared && self.last != Last::Punct(b'.') && !matches!(next, b':' | b'(')
    }

    fn is_js(&self) -> bool {
        matches!(self.lang, Lang::TypeScript | Lang::Tsx | Lang::JavaScript)
    }

    /// A string literal found: masked and kept, unless a Go struct tag.
    fn string(&mut self, start: usize, end: usize) {
        let tag = self.lang == Lang::Go && self.stack.last() == Some(&b's');
        if !tag {
            self.mask(start, end, true);
        }
        self.i = end;
        self.last = Last::Literal;
    }

    /// A top-level item may begin after this newline: after a `}` or `;`
    /// at depth 0, at a line that starts at column 0 with a word that does
    /// not continue the statement before.
    fn boundary_c(&mut self) {
        if !self.stack.is_empty() || !matches!(self.last, Last::Punct(b'}' | b';')) {
            return;
        }
        let c = self.peek(0);
        if !(ident_start(c) || c == b'#' || c == b'@') {
            return;
        }
        let e = self.word_end(self.i);
        const GO_ON: [&[u8]; 12] = [
            b"else",
            b"catch",
            b"finally",
            b"while",
            b"as",
            b"satisfies",
            b"instanceof",
            b"in",
            b"of",
            b"extends",
            b"implements",
            b"where",
        ];
        if GO_ON.contains(&&self.b[self.i..e]) {
            return;
        }
        self.type_stmt = false;
        self.out.chunks.push(self.i);
    }

    fn line_end(&self, from: usize) -> usize {
        memchr(b'\n', self.b, from).unwrap_or(self.b.len())
    }

    /// `/* ... */` from `from`; nested ones count when `nests`.
    fn block_comment(&self, from: usize, nests: bool) -> Option<usize> {
        let mut depth = 0usize;
        let mut i = from;
        while i + 1 < self.b.len() {
            match (self.b[i], self.b[i + 1]) {
                (b'/', b'*') if depth == 0 || nests => {
                    depth += 1;
                    i += 2;
                }
                (b'*', b'/') => {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        return Some(i);
                    }
                }
                _ => i += 1,
            }
        }
        None
    }

    /// A literal quoted by `q` from `from` (at the quote); a backslash
    /// escapes the next byte. `one_line`: a newline first means no literal.
    fn quoted(&self, from: usize, q: u8, one_line: bool) -> Option<usize> {
        let mut i = from + 1;
        while i < self.b.len() {
            match self.b[i] {
                b'\\' => i += 2,
                b'\n' if one_line => return None,
                c if c == q => return Some(i + 1),
                _ => i += 1,
            }
        }
        None
    }

    /// `'`: a Rust char literal or a lifetime or label; a Go rune; a
    /// JavaScript string.
    fn quote(&mut self) -> Option<()> {
        let start = self.i;
        if self.lang == Lang::Rust {
            let next = self.peek(1);
            // The byte after the quote starts a character; its length
            // from its first byte.
            let char_len = match next {
                0xF0.. => 4,
                0xE0.. => 3,
                0xC0.. => 2,
                _ => 1,
            };
            let is_char = next == b'\\'
                || (next != b'\'' && self.b.get(self.i + 1 + char_len) == Some(&b'\''));
            if !is_char {
                // A lifetime or a label: a quote and a word, not masked.
                self.i = self.word_end(self.i + 1);
                self.last = Last::Literal;
                return Some(());
            }
            let end = self.quoted(self.i, b'\'', true)?;
            self.string(start, end);
            return Some(());
        }
        let end = self.quoted(self.i, b'\'', true)?;
        self.string(start, end);
        Some(())
    }

    /// Whether the word `w` (followed by `next`) opens a Rust literal:
    /// `b'x'`, `b"..."`, `c"..."`, `r"..."`, `r#"..."#`, `br"..."`, `cr#"..."#`.
    fn rust_prefix(&self, w: &[u8], next: u8) -> bool {
        match w {
            b"b" => next == b'"' || next == b'\'',
            b"c" => next == b'"',
            b"r" | b"br" | b"cr" => next == b'"' || next == b'#',
            _ => false,
        }
    }

    /// The end of a prefixed Rust literal whose prefix spans `from..at`.
    fn rust_literal(&self, from: usize, at: usize) -> Option<usize> {
        let raw = self.b[from..at].contains(&b'r');
        if !raw {
            return self.quoted(at, self.b[at], self.b[at] == b'\'');
        }
        let mut hashes = 0;
        let mut i = at;
        while self.b.get(i) == Some(&b'#') {
            hashes += 1;
            i += 1;
        }
        if self.b.get(i) != Some(&b'"') {
            return None; // `r#ident`: a raw identifier; not sure, parse it.
        }
        let mut j = i + 1;
        loop {
            let q = memchr(b'"', self.b, j)?;
            let closes = (1..=hashes).all(|k| self.b.get(q + k) == Some(&b'#'));
            if closes {
                return Some(q + 1 + hashes);
            }
            j = q + 1;
        }
    }

    /// Whether a `/` here starts a regular expression (JavaScript reads it
    /// as one where an expression may begin).
    fn regex_allowed(&self) -> bool {
        match self.last {
            Last::Start => true,
            Last::Punct(c) => !matches!(c, b')' | b']' | b'}'),
            Last::Word(s, e) => matches!(
                self.word((s, e)),
                b"return"
                    | b"typeof"
                    | b"instanceof"
                    | b"in"
                    | b"of"
                    | b"new"
                    | b"delete"
                    | b"void"
                    | b"throw"
                    | b"case"
                    | b"do"
                    | b"else"
                    | b"yield"
                    | b"await"
            ),
            Last::Literal => false,
        }
    }

    fn regex(&self, from: usize) -> Option<usize> {
        let mut i = from + 1;
        let mut class = false;
        while i < self.b.len() {
            match self.b[i] {
                b'\\' => i += 2,
                b'\n' => return None,
                b'[' => {
                    class = true;
                    i += 1;
                }
                b']' => {
                    class = false;
                    i += 1;
                }
                b'/' if !class => {
                    return Some(self.word_end(i + 1));
                }
                _ => i += 1,
            }
        }
        None
    }

    /// A template literal from its backtick: `${...}` is code (lexed for
    /// its own strings, comments and braces), all of it inside the
    /// literal.
    fn template(&mut self, from: usize, quiet: bool) -> Option<usize> {
        let mut i = from + 1;
        while i < self.b.len() {
            match self.b[i] {
                b'\\' => i += 2,
                b'`' => return Some(i + 1),
                b'$' if self.b.get(i + 1) == Some(&b'{') => {
                    let saved = (self.i, self.last, self.type_stmt, self.quiet);
                    self.i = i + 2;
                    self.last = Last::Punct(b'{');
                    self.type_stmt = !quiet && saved.2;
                    self.quiet = saved.3 || quiet;
                    self.c_like(true)?;
                    i = self.i + 1;
                    (self.i, self.last, self.type_stmt, self.quiet) = saved;
                }
                _ => i += 1,
            }
        }
        None
    }

    /// Python: comments, strings (prefixes, triple quotes, f-strings,
    /// adjacent literals as one), brackets, and items at column 0.
    fn python(&mut self) -> Option<()> {
        let mut line_start = true;
        while self.i < self.b.len() {
            let c = self.b[self.i];
            if line_start {
                line_start = false;
                if self.stack.is_empty() {
                    self.line = PyLine {
                        first: true,
                        ..PyLine::default()
                    };
                }
                self.python_line();
            }
            if self.line.first && !c.is_ascii_whitespace() && c != b'\\' && c != b'#' {
                self.line.first = false;
                if c == b'@' && self.i > 0 && self.b[self.i - 1] != b'\n' {
                    self.place(Place::PyInnerDecorator);
                }
                self.line.header = self.py_header();
            }
            match c {
                b'\n' => {
                    self.i += 1;
                    line_start = true;
                }
                b':' => {
                    if self.peek(1) != b'=' {
                        match self.stack.last() {
                            Some(b'(') => self.place(Place::PyAnnotation),
                            None if self.line.header && !self.line.header_colon => {
                                self.line.header_colon = true;
                            }
                            None => self.place(Place::PyAnnotation),
                            Some(_) => {}
                        }
                    }
                    self.i += 1;
                }
                b'\\' if self.peek(1) == b'\n' => self.i += 2,
                b'\\' if self.peek(1) == b'\r' && self.peek(2) == b'\n' => self.i += 3,
                b'#' => {
                    let end = self.line_end(self.i);
                    self.mask(self.i, end, false);
                    self.i = end;
                }
                b'(' | b'[' | b'{' => {
                    if c != b'(' && self.stack.last() == Some(&b'(') {
                        self.place(Place::PyCollectionInParens);
                    }
                    self.stack.push(c);
                    self.i += 1;
                }
                b')' | b']' | b'}' => {
                    let open = self.stack.pop()?;
                    if (c == b')' && open != b'(')
                        || (c == b']' && open != b'[')
                        || (c == b'}' && open != b'{')
                    {
                        return None;
                    }
                    self.i += 1;
                }
                b'"' | b'\'' => {
                    let end = self.py_strings(self.i)?;
                    self.py_string_places(end);
                    self.mask(self.i, end, true);
                    self.i = end;
                }
                c if ident_start(c) => {
                    let e = self.word_end(self.i + 1);
                    let w = &self.b[self.i..e];
                    if py_prefix(w) && matches!(self.b.get(e), Some(b'"' | b'\'')) {
                        let end = self.py_strings(e)?;
                        self.py_string_places(end);
                        self.mask(self.i, end, true);
                        self.i = end;
                    } else {
                        if w == b"lambda" {
                            self.place(Place::PyAnnotation);
                            self.place(Place::PyCollectionInParens);
                        } else if w == b"for" && self.stack.last() == Some(&b'(') {
                            self.place(Place::PyGenerator);
                        }
                        self.i = e;
                    }
                }
                _ => self.i += 1,
            }
        }
        Some(())
    }

    /// Whether the Python line's first token, at the current offset, opens
    /// a compound statement's header: one of [`PY_HEADERS`], or `async`
    /// before `def`, `for` or `with` (alone it is a name to the grammar).
    fn py_header(&self) -> bool {
        let word_at = |from: usize| &self.b[from..self.word_end(from)];
        let first = word_at(self.i);
        if first == b"async" {
            let mut j = self.i + first.len();
            while matches!(self.b.get(j), Some(b' ' | b'\t')) {
                j += 1;
            }
            return matches!(word_at(j), b"def" | b"for" | b"with");
        }
        !first.is_empty() && PY_HEADERS.contains(&first)
    }

    /// The places in the Python string literals from the offset to `end`:
    /// an f-string's `{...}` is code, so a `for` or `lambda` in a literal
    /// with a brace counts wherever it stands.
    fn py_string_places(&mut self, end: usize) {
        let lit = &self.b[self.i..end];
        if !lit.contains(&b'{') {
            return;
        }
        let words = lit.split(|c| !ident(*c));
        let (mut generator, mut lambda) = (false, false);
        for w in words {
            generator |= w == b"for";
            lambda |= w == b"lambda";
        }
        if generator {
            self.place(Place::PyGenerator);
        }
        if lambda {
            self.place(Place::PyAnnotation);
            self.place(Place::PyCollectionInParens);
        }
    }

    /// At a line's start (outside brackets and strings): a new top-level
    /// item begins here unless it continues the one before.
    fn python_line(&mut self) {
        if !self.stack.is_empty() || self.i == 0 {
            if self.i == 0 {
                self.decorated = self.b.first() == Some(&b'@');
            }
            return;
        }
        let c = self.peek(0);
        if !(ident_start(c) || c == b'@') {
            return;
        }
        if self.i >= 2 && self.b[self.i - 2] == b'\\' {
            return;
        }
        let e = self.word_end(self.i);
        let w = &self.b[self.i..e];
        let go_on = matches!(w, b"else" | b"elif" | b"except" | b"finally");
        if !go_on && !self.decorated {
            self.out.chunks.push(self.i);
        }
        self.decorated = c == b'@';
    }

    /// The end of the Python string literal whose quote is at `q`, with the literals written right after it (one
    /// `concatenated_string` in the tree).
    fn py_strings(&self, q: usize) -> Option<usize> {
        let mut end = self.py_string(q)?;
        loop {
            // Between adjacent literals: blanks, and inside brackets also
            // newlines and comments, or a backslash-newline.
            let mut i = end;
            loop {
                match self.b.get(i) {
                    Some(b' ' | b'\t' | b'\x0c') => i += 1,
                    Some(b'\\') if self.b.get(i + 1) == Some(&b'\n') => i += 2,
                    Some(b'\n' | b'\r') if !self.stack.is_empty() => i += 1,
                    Some(b'#') if !self.stack.is_empty() => i = self.line_end(i),
                    _ => break,
                }
            }
            let e = self.word_end(i);
            let quote_at = if matches!(self.b.get(e), Some(b'"' | b'\''))
                && (e == i || py_prefix(&self.b[i..e]))
            {
                e
            } else {
                return Some(end);
            };
            end = self.py_string(quote_at)?;
        }
    }

    /// One Python literal from its quote at `q` (its prefix before it).
    fn py_string(&self, q: usize) -> Option<usize> {
        let mut p = q;
        while p > 0 && ident(self.b[p - 1]) {
            p -= 1;
        }
        let prefix = self.b[p..q].to_ascii_lowercase();
        let fmt = prefix.contains(&b'f') || prefix.contains(&b't');
        let quote = self.b[q];
        let triple = self.b.get(q + 1) == Some(&quote) && self.b.get(q + 2) == Some(&quote);
        let mut i = if triple { q + 3 } else { q + 1 };
        while i < self.b.len() {
            match self.b[i] {
                b'\\' => i += 2,
                b'\n' if !triple => return None,
                b'{' if fmt && self.b.get(i + 1) == Some(&b'{') => i += 2,
                b'{' if fmt => i = self.py_interpolation(i + 1)?,
                c if c == quote => {
                    if !triple {
                        return Some(i + 1);
                    }
                    if self.b.get(i + 1) == Some(&quote) && self.b.get(i + 2) == Some(&quote) {
                        return Some(i + 3);
                    }
                    i += 1;
                }
                _ => i += 1,
            }
        }
        None
    }

    /// An f-string's `{...}` from after its brace: to the closing brace,
    /// past nested brackets and strings.
    fn py_interpolation(&self, from: usize) -> Option<usize> {
        let mut depth = 0usize;
        let mut i = from;
        while i < self.b.len() {
            match self.b[i] {
                b'(' | b'[' | b'{' => {
                    depth += 1;
                    i += 1;
                }
                b')' | b']' => {
                    depth = depth.checked_sub(1)?;
                    i += 1;
                }
                b'}' if depth == 0 => return Some(i + 1),
                b'}' => {
                    depth -= 1;
                    i += 1;
                }
                b'"' | b'\'' => i = self.py_string(i)?,
                _ => i += 1,
            }
        }
        None
    }

    /// SQL: `--` and `/* */` comments, `'...'` and `$tag$...$tag$`
    /// literals, `"..."` identifiers (not masked), statements ending at
    /// `;`.
    fn sql(&mut self) -> Option<()> {
        let upper = self.b.to_ascii_uppercase();
        if compound_sql(&upper) {
            return None;
        }
        let mut after_semicolon = false;
        while self.i < self.b.len() {
            let c = self.b[self.i];
            let start = self.i;
            match c {
                b'\n' => {
                    self.i += 1;
                    if after_semicolon && self.stack.is_empty() && self.i < self.b.len() {
                        self.out.chunks.push(self.i);
                        after_semicolon = false;
                    }
                }
                b'-' if self.peek(1) == b'-' => {
                    let end = self.line_end(self.i);
                    self.mask(start, end, false);
                    self.i = end;
                }
                b'/' if self.peek(1) == b'*' => {
                    let end = self.block_comment(self.i, false)?;
                    self.mask(start, end, false);
                    self.i = end;
                }
                b'\'' => {
                    let end = self.sql_string(self.i)?;
                    self.mask(start, end, true);
                    self.i = end;
                    after_semicolon = false;
                }
                b'"' => {
                    self.i = memchr(b'"', self.b, self.i + 1)? + 1;
                    after_semicolon = false;
                }
                // A dollar quote is a literal in a statement but a body
                // the tree parses in a function's definition: not sure.
                b'$' if !self.peek(1).is_ascii_digit() => return None,
                b'(' | b'[' => {
                    self.stack.push(c);
                    self.i += 1;
                }
                b')' | b']' => {
                    let open = self.stack.pop()?;
                    if (c == b')') != (open == b'(') {
                        return None;
                    }
                    self.i += 1;
                }
                b';' => {
                    self.i += 1;
                    after_semicolon = self.stack.is_empty();
                }
                c if c.is_ascii_whitespace() => self.i += 1,
                c if ident_start(c) => {
                    self.i = self.word_end(self.i);
                    after_semicolon = false;
                }
                _ => {
                    self.i += 1;
                    after_semicolon = false;
                }
            }
        }
        Some(())
    }

    fn sql_string(&self, from: usize) -> Option<usize> {
        let mut i = from + 1;
        while i < self.b.len() {
            if self.b[i] == b'\'' {
                if self.b.get(i + 1) == Some(&b'\'') {
                    i += 2;
                    continue;
                }
                return Some(i + 1);
            }
            i += 1;
        }
        None
    }
}

/// Python string prefixes.
fn py_prefix(w: &[u8]) -> bool {
    w.len() <= 2
        && w.iter()
            .all(|c| matches!(c.to_ascii_lowercase(), b'r' | b'b' | b'u' | b'f' | b't'))
}

/// Whether a SQL text has a `BEGIN ... END` block (a procedure or trigger
/// body, whose `;` end no statement), which the lexer does not split.
fn compound_sql(upper: &[u8]) -> bool {
    let mut i = 0;
    while let Some(at) = find(upper, b"BEGIN", i) {
        i = at + 5;
        let before = at == 0 || !ident(upper[at - 1]);
        let after = upper.get(i).is_none_or(|c| !ident(*c));
        if !(before && after) {
            continue;
        }
        let rest = &upper[i..];
        let rest = &rest[rest.len() - rest.trim_ascii_start().len()..];
        let plain = rest.is_empty()
            || rest.starts_with(b";")
            || [
                &b"TRANSACTION"[..],
                b"WORK",
                b"ISOLATION",
                b"READ",
                b"DEFERRED",
                b"IMMEDIATE",
                b"EXCLUSIVE",
            ]
            .iter()
            .any(|w| rest.starts_with(w));
        if !plain {
            return true;
        }
    }
    false
}

fn memchr(c: u8, b: &[u8], from: usize) -> Option<usize> {
    b.get(from..)?
        .iter()
        .position(|x| *x == c)
        .map(|p| p + from)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}
