//! SCIM attribute paths: the attribute notation of RFC 7644 §3.10
//! (`[schema URN ":"] name ["." sub-attribute]`) shared with filters, and
//! PATCH operation paths (RFC 7644 §3.5.2: `attrPath / valuePath [subAttr]`).
//!
//! Attribute names are case-insensitive (RFC 7643 §2.1), but a parsed path
//! keeps them as written so that rendering gives back the client's text;
//! compare with [`AttrPath::eq_ignore_case`] or look up by [`AttrPath::key`].
//!
//! The tokens both grammars are made of (attribute names with their URN
//! prefixes, JSON strings and numbers, brackets) are lexed here too.

use std::borrow::Cow;
use std::fmt;

use serde_json::{Number, Value as Json};

use super::filter::{ErrorKind, Filter, FilterError, MAX_INPUT_LEN};

/// The core User schema (RFC 7643 §4.1).
pub const CORE_USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema (RFC 7643 §4.2).
pub const CORE_GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The enterprise User extension (RFC 7643 §4.3).
pub const ENTERPRISE_USER_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// An attribute reference: `userName`, `name.familyName`,
/// `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value`.
///
/// The schema URN is everything before the last `:`; so a bare schema URN
/// such as `urn:…:enterprise:2.0:User` (not an attribute path in the RFC
/// grammar, but sent by some clients as a PATCH path) parses as the URN
/// `urn:…:enterprise:2.0` with the name `User`. Callers that accept that form
/// should recognise it with [`AttrPath::is_schema`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttrPath {
    /// The schema URN prefix as written, without the trailing `:`.
    pub urn: Option<String>,
    /// The attribute name as written.
    pub name: String,
    /// The sub-attribute name as written, for `name.sub`.
    pub sub: Option<String>,
}

impl AttrPath {
    /// A plain attribute, `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            urn: None,
            name: name.into(),
            sub: None,
        }
    }

    /// The same path with the sub-attribute `sub`.
    #[must_use]
    pub fn with_sub(mut self, sub: impl Into<String>) -> Self {
        self.sub = Some(sub.into());
        self
    }

    /// The same path with the schema URN prefix `urn`.
    #[must_use]
    pub fn with_urn(mut self, urn: impl Into<String>) -> Self {
        self.urn = Some(urn.into());
        self
    }

    /// Whether both paths name the same attribute, ignoring ASCII case.
    pub fn eq_ignore_case(&self, other: &AttrPath) -> bool {
        let opt_eq = |a: &Option<String>, b: &Option<String>| match (a, b) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            (None, None) => true,
            _ => false,
        };
        self.name.eq_ignore_ascii_case(&other.name)
            && opt_eq(&self.urn, &other.urn)
            && opt_eq(&self.sub, &other.sub)
    }

    /// Whether this path, read as one URN (`urn:name`), is the schema `urn`:
    /// the bare-schema PATCH path described on [`AttrPath`].
    pub fn is_schema(&self, urn: &str) -> bool {
        match (&self.urn, &self.sub) {
            (Some(prefix), None) => urn.rsplit_once(':').is_some_and(|(p, n)| {
                p.eq_ignore_ascii_case(prefix) && n.eq_ignore_ascii_case(&self.name)
            }),
            _ => false,
        }
    }

    /// A lower-case lookup key, `name`, `name.sub` or `urn:name.sub`, with
    /// the URN left out when it is the resource's `core_urn`: both
    /// `userName` and `urn:…:core:2.0:User:userName` give `username`. Meant
    /// for tables that map attributes to storage (e.g. SQL columns).
    pub fn key(&self, core_urn: &str) -> String {
        let mut key = String::new();
        if let Some(urn) = self
            .urn
            .as_deref()
            .filter(|u| !u.eq_ignore_ascii_case(core_urn))
        {
            key.push_str(urn);
            key.push(':');
        }
        key.push_str(&self.name);
        if let Some(sub) = &self.sub {
            key.push('.');
            key.push_str(sub);
        }
        key.to_ascii_lowercase()
    }
}

impl AttrPath {
    /// Every value this path names in `resource` (a SCIM resource as JSON),
    /// matching names case-insensitively, with multi-valued attributes
    /// flattened and nulls left out. A URN prefix selects the extension
    /// object keyed by that URN, or the resource itself for the core User
    /// and Group schemas (when its `schemas` lists the URN, or it has none).
    pub fn values<'j>(&self, resource: &'j Json) -> Vec<&'j Json> {
        let base = match &self.urn {
            None => Some(resource),
            Some(urn) => schema_base(resource, urn),
        };
        let mut top = Vec::new();
        push_values(&mut top, base.and_then(|b| get_ci(b, &self.name)));
        let Some(sub) = &self.sub else { return top };
        let mut out = Vec::new();
        for value in top {
            push_values(&mut out, get_ci(value, sub));
        }
        out
    }

    /// This path as seen from outside `parent[...]`: `value` inside
    /// `emails[...]` is `emails.value`.
    pub(crate) fn within(&self, parent: Option<&AttrPath>) -> Cow<'_, AttrPath> {
        match parent {
            Some(parent) if self.urn.is_none() && self.sub.is_none() => Cow::Owned(AttrPath {
                urn: parent.urn.clone(),
                name: parent.name.clone(),
                sub: Some(self.name.clone()),
            }),
            _ => Cow::Borrowed(self),
        }
    }
}

/// `node[key]`, the key matched case-insensitively.
pub(crate) fn get_ci<'j>(node: &'j Json, key: &str) -> Option<&'j Json> {
    let object = node.as_object()?;
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Pushes `value`, or the elements of an array, leaving out nulls.
fn push_values<'j>(out: &mut Vec<&'j Json>, value: Option<&'j Json>) {
    match value {
        None | Some(Json::Null) => {}
        Some(Json::Array(items)) => out.extend(items.iter().filter(|v| !v.is_null())),
        Some(v) => out.push(v),
    }
}

/// Where attributes of the schema `urn` live in `root` (see
/// [`AttrPath::values`]).
fn schema_base<'j>(root: &'j Json, urn: &str) -> Option<&'j Json> {
    if let Some(extension) = get_ci(root, urn) {
        return Some(extension);
    }
    let core = urn.eq_ignore_ascii_case(CORE_USER_URN) || urn.eq_ignore_ascii_case(CORE_GROUP_URN);
    let declared = match get_ci(root, "schemas").and_then(Json::as_array) {
        Some(list) => list
            .iter()
            .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(urn))),
        None => true,
    };
    (core && declared).then_some(root)
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(urn) = &self.urn {
            write!(f, "{urn}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

/// `ATTRNAME = ALPHA *(ALPHA / DIGIT / "_" / "-")` (RFC 7643 §2.1), plus
/// `$ref`, the one reserved name that does not follow it.
pub(crate) fn is_attr_name(s: &str) -> bool {
    if s.eq_ignore_ascii_case("$ref") {
        return true;
    }
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A schema URN prefix: `urn:` and non-empty `:`-separated segments of
/// letters, digits, `.`, `-` and `_` (enough for every SCIM schema URN).
fn is_schema_urn(s: &str) -> bool {
    s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
        && s.split(':').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        })
}

const NAME_RULE: &str =
    "an attribute name starts with a letter and has only letters, digits, '_' and '-'";

/// Why `name.sub[...]` is refused, in filters and paths alike.
pub(crate) const SUB_BEFORE_FILTER: &str =
    "a value filter applies to a multi-valued attribute, not to a sub-attribute";

/// Splits one attribute token (`[urn ":"] name ["." sub]`) into its parts,
/// or says what is wrong with it.
pub(crate) fn split_attr(token: &str) -> Result<AttrPath, &'static str> {
    let (urn, rest) = match token.rsplit_once(':') {
        Some((urn, rest)) => (Some(urn), rest),
        None => (None, token),
    };
    if let Some(urn) = urn {
        if !is_schema_urn(urn) {
            return Err(
                "a schema prefix must be a URN such as urn:ietf:params:scim:schemas:core:2.0:User",
            );
        }
        if rest.is_empty() {
            return Err("expected an attribute name after the schema URN");
        }
    }
    let (name, sub) = match rest.split_once('.') {
        Some((name, sub)) => (name, Some(sub)),
        None => (rest, None),
    };
    if !is_attr_name(name) {
        return Err(NAME_RULE);
    }
    if let Some(sub) = sub {
        if sub.contains('.') {
            return Err("at most one sub-attribute is allowed (name.sub)");
        }
        if !is_attr_name(sub) {
            return Err(NAME_RULE);
        }
    }
    Ok(AttrPath {
        urn: urn.map(str::to_owned),
        name: name.to_owned(),
        sub: sub.map(str::to_owned),
    })
}

/// The target of a PATCH operation (RFC 7644 §3.5.2).
#[derive(Debug, Clone, PartialEq)]
pub enum PatchPath {
    /// `attr`, `attr.sub` or `urn:…:attr.sub`.
    Attr(AttrPath),
    /// `attr[filter]` or `attr[filter].sub`: the values of the multi-valued
    /// `attr` that match `filter` (whose paths are relative to one value),
    /// or their sub-attribute `sub`. `attr` never has a sub-attribute.
    Filtered {
        /// The multi-valued attribute.
        attr: AttrPath,
        /// Which of its values.
        filter: Filter,
        /// The sub-attribute of those values, if any.
        sub: Option<String>,
    },
}

impl PatchPath {
    /// The attribute addressed, with the value filter left out:
    /// `emails[type eq "work"].value` gives `emails.value`.
    pub fn target(&self) -> AttrPath {
        match self {
            PatchPath::Attr(path) => path.clone(),
            PatchPath::Filtered { attr, sub, .. } => AttrPath {
                sub: sub.clone(),
                ..attr.clone()
            },
        }
    }
}

impl fmt::Display for PatchPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatchPath::Attr(path) => path.fmt(f),
            PatchPath::Filtered { attr, filter, sub } => {
                write!(f, "{attr}[{filter}]")?;
                match sub {
                    Some(sub) => write!(f, ".{sub}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// A PATCH path that does not parse; the position counts characters from 0.
/// The endpoint answers it with 400 and `scimType: invalidPath`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path at position {position}: {kind}")]
pub struct PathError {
    /// Where the problem is, in characters from the start of the path.
    pub position: usize,
    /// What the problem is.
    pub kind: ErrorKind,
}

impl From<FilterError> for PathError {
    fn from(e: FilterError) -> Self {
        Self {
            position: e.position,
            kind: e.kind,
        }
    }
}

/// Parses a PATCH operation path.
///
/// # Errors
///
/// [`PathError`] with the position and what was expected there, when the
/// path is empty, malformed, longer than [`MAX_INPUT_LEN`] bytes or nested
/// deeper than [`MAX_DEPTH`](super::filter::MAX_DEPTH).
pub fn parse_path(input: &str) -> Result<PatchPath, PathError> {
    let mut p = Parser::new(input)?;
    let (attr, at) = p.attr_path("an attribute path")?;
    let tok = p.next()?;
    match tok {
        Tok::End => return Ok(PatchPath::Attr(attr)),
        Tok::LBracket => {}
        _ => return Err(p.expected(&tok, "\"[\" or end of input").into()),
    }
    if attr.sub.is_some() {
        return Err(p
            .error(at, ErrorKind::BadAttrPath(SUB_BEFORE_FILTER))
            .into());
    }
    let filter = p.bracketed()?;
    let tok = p.next()?;
    let sub = match tok {
        Tok::End => None,
        Tok::Dot => {
            let name = p.next()?;
            match name {
                Tok::Name(s) if is_attr_name(s) => {
                    let sub = s.to_owned();
                    let end = p.next()?;
                    if end != Tok::End {
                        return Err(p.expected(&end, "end of input").into());
                    }
                    Some(sub)
                }
                Tok::Name(_) => return Err(p.here(ErrorKind::BadAttrPath(NAME_RULE)).into()),
                _ => return Err(p.expected(&name, "a sub-attribute name").into()),
            }
        }
        _ => return Err(p.expected(&tok, "\".\" or end of input").into()),
    };
    Ok(PatchPath::Filtered { attr, filter, sub })
}

impl std::str::FromStr for PatchPath {
    type Err = PathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_path(s)
    }
}

// ---------------------------------------------------------------------------
// Tokens, shared by filters and PATCH paths
// ---------------------------------------------------------------------------

/// One token. Keywords (`and`, `pr`, `true`, ...) are names until the
/// grammar says otherwise, so an attribute may be called `not` or `and`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok<'a> {
    Name(&'a str),
    Str(String),
    Num(Number),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Dot,
    End,
}

fn describe(tok: &Tok<'_>) -> String {
    match tok {
        Tok::Name(n) if n.chars().count() > 40 => {
            format!("\"{}…\"", n.chars().take(40).collect::<String>())
        }
        Tok::Name(n) => format!("\"{n}\""),
        Tok::Str(_) => "a string".to_owned(),
        Tok::Num(_) => "a number".to_owned(),
        Tok::LParen => "\"(\"".to_owned(),
        Tok::RParen => "\")\"".to_owned(),
        Tok::LBracket => "\"[\"".to_owned(),
        Tok::RBracket => "\"]\"".to_owned(),
        Tok::Dot => "\".\"".to_owned(),
        Tok::End => "end of input".to_owned(),
    }
}

/// A JSON number's text as a [`Number`]: an integer when it fits, else the
/// nearest finite `f64` (Rust's parsing is exact where serde_json's default
/// is not, so rendered floats read back to the same value).
fn to_number(text: &str) -> Option<Number> {
    if !text.contains(['.', 'e', 'E']) {
        if let Ok(n) = text.parse::<i64>() {
            return Some(n.into());
        }
        if let Ok(n) = text.parse::<u64>() {
            return Some(n.into());
        }
    }
    text.parse::<f64>().ok().and_then(Number::from_f64)
}

/// Characters of an attribute token: names, sub-attributes and URNs.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '$')
}

/// The lexer of filters and paths; its grammar methods are in `filter.rs`.
/// It reads one token ahead, so the first error in the text is the one
/// reported.
pub(crate) struct Parser<'a> {
    src: &'a str,
    /// Byte offset just after the last lexed token.
    pos: usize,
    peeked: Option<(Tok<'a>, usize)>,
    /// Byte offset where the token last returned by `next` starts.
    pub(crate) last_start: usize,
    /// Open `(`, `not (` and `[`.
    pub(crate) depth: usize,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(src: &'a str) -> Result<Self, FilterError> {
        if src.len() > MAX_INPUT_LEN {
            let position = src
                .char_indices()
                .take_while(|(i, _)| *i < MAX_INPUT_LEN)
                .count();
            return Err(FilterError {
                position,
                kind: ErrorKind::TooLong { len: src.len() },
            });
        }
        Ok(Self {
            src,
            pos: 0,
            peeked: None,
            last_start: 0,
            depth: 0,
        })
    }

    /// An error at byte offset `at`, reported as a character position.
    pub(crate) fn error(&self, at: usize, kind: ErrorKind) -> FilterError {
        let position = self.src.char_indices().take_while(|(i, _)| *i < at).count();
        FilterError { position, kind }
    }

    /// An error at the token last returned by `next`.
    pub(crate) fn here(&self, kind: ErrorKind) -> FilterError {
        self.error(self.last_start, kind)
    }

    /// "expected …, found `tok`", at the token last returned by `next`.
    pub(crate) fn expected(&self, tok: &Tok<'_>, expected: &'static str) -> FilterError {
        self.here(ErrorKind::Expected {
            expected,
            found: describe(tok),
        })
    }

    pub(crate) fn next(&mut self) -> Result<Tok<'a>, FilterError> {
        let (tok, start) = match self.peeked.take() {
            Some(t) => t,
            None => self.lex()?,
        };
        self.last_start = start;
        Ok(tok)
    }

    pub(crate) fn peek(&mut self) -> Result<&Tok<'a>, FilterError> {
        let t = match self.peeked.take() {
            Some(t) => t,
            None => self.lex()?,
        };
        Ok(&self.peeked.insert(t).0)
    }

    pub(crate) fn peek_keyword(&mut self, keyword: &str) -> Result<bool, FilterError> {
        Ok(matches!(self.peek()?, Tok::Name(n) if n.eq_ignore_ascii_case(keyword)))
    }

    fn lex(&mut self) -> Result<(Tok<'a>, usize), FilterError> {
        let src = self.src;
        let rest = src
            .get(self.pos..)
            .unwrap_or("")
            .trim_start_matches([' ', '\t', '\r', '\n']);
        let start = src.len() - rest.len();
        let Some(c) = rest.chars().next() else {
            self.pos = start;
            return Ok((Tok::End, start));
        };
        let single = match c {
            '(' => Some(Tok::LParen),
            ')' => Some(Tok::RParen),
            '[' => Some(Tok::LBracket),
            ']' => Some(Tok::RBracket),
            '.' => Some(Tok::Dot),
            _ => None,
        };
        if let Some(tok) = single {
            self.pos = start + 1;
            return Ok((tok, start));
        }
        let tok = match c {
            '"' => Tok::Str(self.string(start)?),
            '-' | '0'..='9' => Tok::Num(self.number(start)?),
            c if c.is_ascii_alphabetic() || c == '$' => {
                let len = rest.find(|c| !is_name_char(c)).unwrap_or(rest.len());
                self.pos = start + len;
                Tok::Name(&rest[..len])
            }
            other => return Err(self.error(start, ErrorKind::UnexpectedChar(other))),
        };
        Ok((tok, start))
    }

    /// A JSON string (RFC 8259 §7) starting with the `"` at `start`; its
    /// escapes are decoded by serde_json.
    fn string(&mut self, start: usize) -> Result<String, FilterError> {
        let bytes = self.src.as_bytes();
        let mut end = start + 1;
        while let Some(&b) = bytes.get(end) {
            match b {
                b'"' => break,
                b'\\' => end += 2,
                _ => end += 1,
            }
        }
        let literal = match self.src.get(start..=end) {
            Some(literal) if bytes.get(end) == Some(&b'"') => literal,
            _ => return Err(self.error(start, ErrorKind::BadString("no closing '\"'"))),
        };
        if let Some(at) = literal.bytes().position(|b| b < b' ') {
            let kind = ErrorKind::BadString("control characters must be escaped");
            return Err(self.error(start + at, kind));
        }
        let text = serde_json::from_str::<String>(literal).map_err(|e| {
            // One line, so the column (from 1, in bytes) places the escape.
            let kind = ErrorKind::BadString(
                "JSON escapes are \\\" \\\\ \\/ \\b \\f \\n \\r \\t and \\uXXXX (surrogates paired)",
            );
            self.error(start + e.column().saturating_sub(1), kind)
        })?;
        self.pos = end + 1;
        Ok(text)
    }

    /// A JSON number (RFC 8259 §6) starting at `start`: serde_json checks
    /// the grammar (`IgnoredAny` ignores range), `to_number` converts.
    fn number(&mut self, start: usize) -> Result<Number, FilterError> {
        let rest = self.src.get(start..).unwrap_or("");
        let len = rest
            .find(|c| !is_name_char(c) && c != '+')
            .unwrap_or(rest.len());
        let text = &rest[..len];
        let bad = |why| self.error(start, ErrorKind::BadNumber(why));
        if serde_json::from_str::<serde::de::IgnoredAny>(text).is_err() {
            return Err(bad("expected a JSON number such as 42, -1.5 or 1e3"));
        }
        let number = to_number(text).ok_or_else(|| bad("out of range"))?;
        self.pos = start + len;
        Ok(number)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::scim::filter::strategy;
    use crate::scim::filter::{CompValue, CompareOp, MAX_DEPTH};

    fn pp(s: &str) -> PatchPath {
        parse_path(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn eq(name: &str, value: &str) -> Filter {
        Filter::Compare {
            path: AttrPath::new(name),
            op: CompareOp::Eq,
            value: CompValue::String(value.into()),
        }
    }

    #[test]
    fn plain_sub_attribute_and_urn_paths() {
        assert_eq!(pp("userName"), PatchPath::Attr(AttrPath::new("userName")));
        assert_eq!(
            pp("name.givenName"),
            PatchPath::Attr(AttrPath::new("name").with_sub("givenName"))
        );
        assert_eq!(
            pp("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value"),
            PatchPath::Attr(
                AttrPath::new("manager")
                    .with_sub("value")
                    .with_urn(ENTERPRISE_USER_URN)
            )
        );
        assert_eq!(
            pp(" urn:ietf:params:scim:schemas:core:2.0:User:userName "),
            PatchPath::Attr(AttrPath::new("userName").with_urn(CORE_USER_URN))
        );
    }

    #[test]
    fn filtered_paths_with_and_without_sub_attribute() {
        assert_eq!(
            pp(r#"emails[type eq "work"].value"#),
            PatchPath::Filtered {
                attr: AttrPath::new("emails"),
                filter: eq("type", "work"),
                sub: Some("value".into()),
            }
        );
        assert_eq!(
            pp(r#"members[value eq "2819c223"]"#),
            PatchPath::Filtered {
                attr: AttrPath::new("members"),
                filter: eq("value", "2819c223"),
                sub: None,
            }
        );
        let p = pp(r#"emails[type eq "work" and not (primary eq false)] . value"#);
        assert_eq!(
            p.to_string(),
            r#"emails[type eq "work" and not (primary eq false)].value"#
        );
    }

    /// RFC 7644 §3.5.2 and its examples (§3.5.2.1 to §3.5.2.3), verbatim.
    #[test]
    fn rfc7644_patch_paths_parse_and_round_trip() {
        for path in [
            "members",
            "name.familyName",
            r#"addresses[type eq "work"]"#,
            r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#,
            r#"members[value eq "2819c223-7f76-453a-919d-413861904646"].displayName"#,
            r#"emails[type eq "work" and value ew "example.com"]"#,
            r#"addresses[type eq "work"].streetAddress"#,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
        ] {
            let p = pp(path);
            assert_eq!(p.to_string(), path);
            assert_eq!(parse_path(&p.to_string()), Ok(p));
        }
    }

    #[test]
    fn bad_paths_name_the_position_and_what_was_expected() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 0, "expected an attribute path, found end of input"),
            (
                "emails[",
                7,
                "expected an attribute name, \"not\" or \"(\", found end of input",
            ),
            (
                r#"emails[type eq "work""#,
                21,
                "expected \"and\", \"or\" or \"]\", found end of input",
            ),
            (
                r#"emails[type eq "work"]value"#,
                22,
                "expected \".\" or end of input, found \"value\"",
            ),
            (
                r#"emails[type eq "work"]."#,
                23,
                "expected a sub-attribute name, found end of input",
            ),
            (
                r#"emails[type eq "work"].a.b"#,
                23,
                "an attribute name starts with a letter",
            ),
            (
                r#"emails[type eq "work"].value x"#,
                29,
                "expected end of input, found \"x\"",
            ),
            (
                r#"emails[type eq "work"][x pr]"#,
                22,
                "expected \".\" or end of input, found \"[\"",
            ),
            ("emails]", 6, "expected \"[\" or end of input, found \"]\""),
            ("a.b.c", 0, "at most one sub-attribute"),
            ("name.givenName[x pr]", 0, "not to a sub-attribute"),
            ("urn:x:", 0, "after the schema URN"),
            ("emails[x[y pr]]", 8, "cannot contain another value filter"),
            (
                "emails pr",
                7,
                "expected \"[\" or end of input, found \"pr\"",
            ),
            (
                "\"userName\"",
                0,
                "expected an attribute path, found a string",
            ),
        ];
        for &(input, position, message) in cases {
            let e = parse_path(input).expect_err(input);
            assert_eq!(e.position, position, "{input:?}: {e}");
            assert!(e.to_string().contains(message), "{input:?}: {e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("invalid path at position {position}: "))
            );
        }
        let deep = format!("e[{}a pr{}]", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(
            parse_path(&deep).map_err(|e| e.kind),
            Err(ErrorKind::TooDeep)
        );
    }

    #[test]
    fn target_leaves_out_the_value_filter() {
        assert_eq!(
            pp(r#"emails[type eq "work"].value"#).target(),
            AttrPath::new("emails").with_sub("value")
        );
        assert_eq!(
            pp(r#"members[value eq "1"]"#).target(),
            AttrPath::new("members")
        );
        assert_eq!(
            pp("name.givenName").target(),
            AttrPath::new("name").with_sub("givenName")
        );
    }

    #[test]
    fn keys_ignore_case_and_the_core_schema() {
        let core = pp("urn:ietf:params:scim:schemas:core:2.0:User:Name.FamilyName").target();
        assert_eq!(core.key(CORE_USER_URN), "name.familyname");
        assert_eq!(AttrPath::new("userName").key(CORE_USER_URN), "username");
        let ext = pp(&format!("{ENTERPRISE_USER_URN}:manager.value")).target();
        assert_eq!(
            ext.key(CORE_USER_URN),
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:manager.value"
        );
    }

    #[test]
    fn case_insensitive_comparison_and_bare_schema_urns() {
        let a = AttrPath::new("NAME")
            .with_sub("givenname")
            .with_urn(CORE_USER_URN.to_uppercase());
        assert!(
            a.eq_ignore_case(
                &AttrPath::new("name")
                    .with_sub("givenName")
                    .with_urn(CORE_USER_URN)
            )
        );
        assert!(!a.eq_ignore_case(&AttrPath::new("name").with_sub("givenName")));
        let PatchPath::Attr(bare) = pp(ENTERPRISE_USER_URN) else {
            panic!("an attribute path")
        };
        assert!(bare.is_schema(ENTERPRISE_USER_URN));
        assert!(!bare.is_schema(CORE_USER_URN));
        assert!(!AttrPath::new("manager").is_schema(ENTERPRISE_USER_URN));
    }

    #[test]
    fn values_flatten_multi_valued_attributes_and_follow_urns() {
        let user = serde_json::json!({
            "schemas": [CORE_USER_URN, ENTERPRISE_USER_URN],
            "Emails": [{"value": "a@x"}, null, {"value": "b@x"}, {"type": "home"}],
            "nickName": null,
            ENTERPRISE_USER_URN: {"manager": {"value": "m1"}},
        });
        let values = |path: &str| {
            pp(path)
                .target()
                .values(&user)
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(values("emails.VALUE"), ["a@x", "b@x"]);
        assert_eq!(values("emails").len(), 3);
        assert!(values("nickName").is_empty());
        assert!(values("phoneNumbers").is_empty());
        assert_eq!(
            values(&format!("{ENTERPRISE_USER_URN}:manager.value")),
            ["m1"]
        );
        assert_eq!(values(&format!("{CORE_USER_URN}:emails.value")).len(), 2);
        assert!(values(&format!("{CORE_GROUP_URN}:emails")).is_empty());
    }

    fn patch_path() -> impl Strategy<Value = PatchPath> {
        prop_oneof![
            strategy::attr_path().prop_map(PatchPath::Attr),
            (
                strategy::plain_attr(),
                strategy::value_filter(),
                prop::option::of(strategy::name())
            )
                .prop_map(|(attr, filter, sub)| PatchPath::Filtered {
                    attr,
                    filter,
                    sub
                }),
        ]
    }

    proptest! {
        #[test]
        fn prop_parse_path_never_panics(s in any::<String>()) {
            let _ = parse_path(&s);
        }

        #[test]
        fn prop_parse_path_never_panics_on_path_like_text(
            s in r#"([a-zA-Z]{1,6}|[ ()\[\].:$"]|[0-9]{1,2}|eq|pr|and|not|urn:x:){0,30}"#
        ) {
            if let Ok(p) = parse_path(&s) {
                prop_assert_eq!(parse_path(&p.to_string()), Ok(p));
            }
        }

        #[test]
        fn prop_render_then_parse_gives_the_same_path(p in patch_path()) {
            let text = p.to_string();
            prop_assume!(text.len() <= crate::scim::filter::MAX_INPUT_LEN);
            prop_assert_eq!(parse_path(&text), Ok(p));
        }
    }
}
