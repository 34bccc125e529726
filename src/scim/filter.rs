//! SCIM filter expressions (RFC 7644 §3.4.2.2): a recursive-descent parser
//! with positioned errors, a canonical rendering that parses back to the
//! same tree, and an in-memory evaluator over JSON resources.
//!
//! The grammar, with `not` binding tighter than `and`, and `and` tighter
//! than `or` (both left-associative):
//!
//! ```text
//! filter    = and *("or" and)
//! and       = atom *("and" atom)
//! atom      = "(" filter ")" / "not" "(" filter ")"
//!           / attrPath "[" valFilter "]"      ; no "[" inside valFilter
//!           / attrPath "pr" / attrPath compareOp compValue
//! compValue = JSON string / JSON number / "true" / "false" / "null"
//! ```
//!
//! Operators, `and`, `or`, `not` and attribute names are case-insensitive;
//! whitespace between tokens is free. Input is limited to [`MAX_INPUT_LEN`]
//! bytes and [`MAX_DEPTH`] levels of brackets, so parsing and every
//! recursive walk of a parsed tree stay shallow.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use chrono::DateTime;
use serde_json::{Number, Value as Json};

use super::path::{AttrPath, Parser, SUB_BEFORE_FILTER, Tok, get_ci, split_attr};

/// The longest filter or PATCH path accepted, in bytes.
pub const MAX_INPUT_LEN: usize = 4096;
/// The deepest nesting of `(`, `not (` and `[` accepted.
pub const MAX_DEPTH: usize = 32;

/// A parsed filter. `a and b and c` is `And(And(a, b), c)`; grouping
/// parentheses leave no node of their own.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `path op value`, e.g. `userName eq "bjensen"`.
    Compare {
        /// The attribute compared.
        path: AttrPath,
        /// The comparison.
        op: CompareOp,
        /// The literal it is compared with.
        value: CompValue,
    },
    /// `path pr`: the attribute has a non-empty value.
    Present(AttrPath),
    /// `left and right`.
    And(Box<Filter>, Box<Filter>),
    /// `left or right`.
    Or(Box<Filter>, Box<Filter>),
    /// `not (inner)`.
    Not(Box<Filter>),
    /// `attr[filter]`: some value of the multi-valued `attr` matches
    /// `filter`, whose paths are relative to that value. Never nested.
    ValuePath {
        /// The (multi-valued, complex) attribute.
        attr: AttrPath,
        /// The condition on one of its values.
        filter: Box<Filter>,
    },
}

/// The attribute operators of RFC 7644 §3.4.2.2 other than `pr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `eq`: equal.
    Eq,
    /// `ne`: not equal.
    Ne,
    /// `co`: contains (strings).
    Co,
    /// `sw`: starts with (strings).
    Sw,
    /// `ew`: ends with (strings).
    Ew,
    /// `gt`: greater than.
    Gt,
    /// `ge`: greater than or equal.
    Ge,
    /// `lt`: less than.
    Lt,
    /// `le`: less than or equal.
    Le,
}

impl CompareOp {
    /// Every operator, in the RFC's order.
    pub const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Ge,
        CompareOp::Lt,
        CompareOp::Le,
    ];

    /// The operator's canonical (lower-case) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    fn from_keyword(word: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(word))
    }
}

/// A comparison literal: a JSON string, number, boolean or null.
#[derive(Debug, Clone, PartialEq)]
pub enum CompValue {
    /// A string, with its JSON escapes decoded.
    String(String),
    /// A number, as JSON has it (integer or finite float).
    Number(Number),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
}

/// What is wrong with a filter or path; shown after its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Longer than [`MAX_INPUT_LEN`] bytes.
    #[error("the input is {len} bytes long; at most {MAX_INPUT_LEN} are allowed")]
    TooLong {
        /// The input's length in bytes.
        len: usize,
    },
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("more than {MAX_DEPTH} levels of nested \"(\", \"not (\" or \"[\"")]
    TooDeep,
    /// A token other than the grammar allows here.
    #[error("expected {expected}, found {found}")]
    Expected {
        /// What the grammar allows at this position.
        expected: &'static str,
        /// What is there instead.
        found: String,
    },
    /// A character that starts no token.
    #[error("unexpected character {0:?}")]
    UnexpectedChar(char),
    /// A string literal that is not a valid JSON string.
    #[error("invalid string: {0}")]
    BadString(&'static str),
    /// A number literal that is not a valid JSON number.
    #[error("invalid number: {0}")]
    BadNumber(&'static str),
    /// A malformed attribute path.
    #[error("invalid attribute path: {0}")]
    BadAttrPath(&'static str),
    /// `a[b[...]]`, which RFC 7644 does not allow.
    #[error("a value filter cannot contain another value filter")]
    NestedValueFilter,
}

/// A filter that does not parse; the endpoint answers it with 400 and
/// `scimType: invalidFilter` (RFC 7644 §3.12).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter at position {position}: {kind}")]
pub struct FilterError {
    /// Where the problem is, in characters from the start of the filter
    /// (the first character is 0).
    pub position: usize,
    /// What the problem is.
    pub kind: ErrorKind,
}

/// Parses a filter expression.
///
/// # Errors
///
/// [`FilterError`] with the position and what was expected there, when the
/// filter is empty, malformed, longer than [`MAX_INPUT_LEN`] bytes or nested
/// deeper than [`MAX_DEPTH`].
pub fn parse(input: &str) -> Result<Filter, FilterError> {
    let mut p = Parser::new(input)?;
    let filter = p.filter(false)?;
    let tok = p.next()?;
    if tok != Tok::End {
        return Err(p.expected(&tok, "\"and\", \"or\" or end of input"));
    }
    Ok(filter)
}

impl FromStr for Filter {
    type Err = FilterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

// ---------------------------------------------------------------------------
// Parser (the tokens are in `path.rs`)
// ---------------------------------------------------------------------------

fn is_operator_word(word: &str) -> bool {
    word.eq_ignore_ascii_case("pr") || CompareOp::from_keyword(word).is_some()
}

const OPERATOR: &str = "an operator (eq, ne, co, sw, ew, gt, ge, lt, le or pr) or \"[\"";
const OPERATOR_IN_VALUE: &str = "an operator (eq, ne, co, sw, ew, gt, ge, lt, le or pr)";

/// The grammar; the lexer half of `Parser` is in `path.rs`.
impl Parser<'_> {
    fn enter(&mut self) -> Result<(), FilterError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.here(ErrorKind::TooDeep));
        }
        self.depth += 1;
        Ok(())
    }

    /// `or`-level expression; `in_value` inside `attr[...]`.
    pub(crate) fn filter(&mut self, in_value: bool) -> Result<Filter, FilterError> {
        let mut left = self.and_expr(in_value)?;
        while self.peek_keyword("or")? {
            self.next()?;
            let right = self.and_expr(in_value)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self, in_value: bool) -> Result<Filter, FilterError> {
        let mut left = self.atom(in_value)?;
        while self.peek_keyword("and")? {
            self.next()?;
            let right = self.atom(in_value)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn atom(&mut self, in_value: bool) -> Result<Filter, FilterError> {
        let tok = self.next()?;
        let at = self.last_start;
        match tok {
            Tok::LParen => self.group(in_value),
            Tok::Name(n) if n.eq_ignore_ascii_case("not") && *self.peek()? == Tok::LParen => {
                self.next()?;
                Ok(Filter::Not(Box::new(self.group(in_value)?)))
            }
            // `not x pr`: a missing "(" rather than an attribute called `not`.
            Tok::Name(n)
                if n.eq_ignore_ascii_case("not")
                    && matches!(self.peek()?, Tok::Name(w) if !is_operator_word(w)) =>
            {
                let tok = self.next()?;
                Err(self.expected(&tok, "\"(\" after \"not\""))
            }
            Tok::Name(n) => self.attr_expr(n, at, in_value),
            _ => Err(self.expected(&tok, "an attribute name, \"not\" or \"(\"")),
        }
    }

    /// The rest of `( filter )` after the `(`.
    fn group(&mut self, in_value: bool) -> Result<Filter, FilterError> {
        self.enter()?;
        let inner = self.filter(in_value)?;
        let close = self.next()?;
        if close != Tok::RParen {
            return Err(self.expected(&close, "\"and\", \"or\" or \")\""));
        }
        self.depth -= 1;
        Ok(inner)
    }

    /// The rest of `attr[ filter ]` after the `[`.
    pub(crate) fn bracketed(&mut self) -> Result<Filter, FilterError> {
        self.enter()?;
        let inner = self.filter(true)?;
        let close = self.next()?;
        if close != Tok::RBracket {
            return Err(self.expected(&close, "\"and\", \"or\" or \"]\""));
        }
        self.depth -= 1;
        Ok(inner)
    }

    /// The next token as an attribute path, with its byte offset.
    pub(crate) fn attr_path(
        &mut self,
        what: &'static str,
    ) -> Result<(AttrPath, usize), FilterError> {
        let tok = self.next()?;
        let at = self.last_start;
        match tok {
            Tok::Name(n) => split_attr(n)
                .map(|path| (path, at))
                .map_err(|why| self.error(at, ErrorKind::BadAttrPath(why))),
            _ => Err(self.expected(&tok, what)),
        }
    }

    /// `attrPath "pr"`, `attrPath compareOp compValue` or `attrPath "[" ...`
    /// once the attribute token `name` (at byte `at`) has been read.
    fn attr_expr(&mut self, name: &str, at: usize, in_value: bool) -> Result<Filter, FilterError> {
        let path = split_attr(name).map_err(|why| self.error(at, ErrorKind::BadAttrPath(why)))?;
        let tok = self.next()?;
        let operator = if in_value {
            OPERATOR_IN_VALUE
        } else {
            OPERATOR
        };
        match tok {
            Tok::LBracket if in_value => Err(self.here(ErrorKind::NestedValueFilter)),
            Tok::LBracket if path.sub.is_some() => {
                Err(self.error(at, ErrorKind::BadAttrPath(SUB_BEFORE_FILTER)))
            }
            Tok::LBracket => Ok(Filter::ValuePath {
                attr: path,
                filter: Box::new(self.bracketed()?),
            }),
            Tok::Name(word) if word.eq_ignore_ascii_case("pr") => Ok(Filter::Present(path)),
            Tok::Name(word) => match CompareOp::from_keyword(word) {
                Some(op) => Ok(Filter::Compare {
                    path,
                    op,
                    value: self.value()?,
                }),
                None => Err(self.expected(&tok, operator)),
            },
            _ => Err(self.expected(&tok, operator)),
        }
    }

    fn value(&mut self) -> Result<CompValue, FilterError> {
        let tok = self.next()?;
        match tok {
            Tok::Str(s) => Ok(CompValue::String(s)),
            Tok::Num(n) => Ok(CompValue::Number(n)),
            Tok::Name("true") => Ok(CompValue::Bool(true)),
            Tok::Name("false") => Ok(CompValue::Bool(false)),
            Tok::Name("null") => Ok(CompValue::Null),
            _ => Err(self.expected(
                &tok,
                "a value (a JSON string, a number, true, false or null)",
            )),
        }
    }
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

/// Canonical text: single spaces, lower-case operators, `not (…)`, and
/// parentheses exactly where the tree needs them, so that
/// `parse(&f.to_string()) == Ok(f)`.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn operand(f: &mut fmt::Formatter<'_>, x: &Filter, parens: bool) -> fmt::Result {
            if parens {
                write!(f, "({x})")
            } else {
                write!(f, "{x}")
            }
        }
        match self {
            Filter::Compare { path, op, value } => write!(f, "{path} {} {value}", op.as_str()),
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::And(l, r) => {
                operand(f, l, matches!(**l, Filter::Or(..)))?;
                f.write_str(" and ")?;
                operand(f, r, matches!(**r, Filter::Or(..) | Filter::And(..)))
            }
            Filter::Or(l, r) => {
                operand(f, l, false)?;
                f.write_str(" or ")?;
                operand(f, r, matches!(**r, Filter::Or(..)))
            }
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::ValuePath { attr, filter } => write!(f, "{attr}[{filter}]"),
        }
    }
}

impl fmt::Display for CompareOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::String(s) => f.write_str(&serde_json::to_string(s).map_err(|_| fmt::Error)?),
            CompValue::Number(n) => write!(f, "{n}"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Null => f.write_str("null"),
        }
    }
}

// ---------------------------------------------------------------------------
// Evaluation
// ---------------------------------------------------------------------------

/// How the strings of an attribute compare, as its schema says (RFC 7643
/// §2.3): `caseExact` or not, or as `dateTime` instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `caseExact: false`: ASCII letters compare without case. Only ASCII,
    /// as SQLite's `NOCASE` does: the equivalence `userName` uniqueness and
    /// the indexed lookups use, so a filter and the store agree on which
    /// names are the same.
    CaseIgnore,
    /// `caseExact: true`: code point by code point.
    CaseExact,
    /// `type: dateTime`: two RFC 3339 values compare as instants (other
    /// values as exact strings).
    DateTime,
}

impl Filter {
    /// Whether `resource` (a SCIM resource as JSON) matches, by RFC 7644
    /// §3.4.2.2: attribute names are case-insensitive; strings compare as
    /// `schema` says for the attribute (it gets the path as written, or
    /// `emails.value` for `value` inside `emails[…]`); a multi-valued
    /// attribute matches if any value does; `pr` needs a non-null,
    /// non-empty value; `gt`/`ge`/`lt`/`le` order strings lexicographically
    /// (by code point, after folding case unless case-exact), numbers
    /// numerically and date-times chronologically; a comparison between
    /// different types is false.
    ///
    /// Absent, `null` and `[]` are alike (RFC 7643 §2.5): such an attribute
    /// matches `eq null` and `ne` anything else, and nothing more.
    pub fn matches(&self, resource: &Json, schema: &dyn Fn(&AttrPath) -> Comparison) -> bool {
        self.eval(resource, None, schema)
    }

    fn eval(
        &self,
        node: &Json,
        parent: Option<&AttrPath>,
        schema: &dyn Fn(&AttrPath) -> Comparison,
    ) -> bool {
        match self {
            Filter::And(l, r) => l.eval(node, parent, schema) && r.eval(node, parent, schema),
            Filter::Or(l, r) => l.eval(node, parent, schema) || r.eval(node, parent, schema),
            Filter::Not(inner) => !inner.eval(node, parent, schema),
            Filter::Present(path) => path.values(node).into_iter().any(non_empty),
            Filter::ValuePath { attr, filter } => attr
                .values(node)
                .into_iter()
                .any(|value| filter.eval(value, Some(attr), schema)),
            Filter::Compare { path, op, value } => {
                let found = path.values(node);
                match value {
                    CompValue::Null => match op {
                        CompareOp::Eq => found.is_empty(),
                        CompareOp::Ne => !found.is_empty(),
                        _ => false,
                    },
                    _ if found.is_empty() => *op == CompareOp::Ne,
                    _ => {
                        let how = schema(&path.within(parent));
                        found.into_iter().any(|v| compare(v, *op, value, how))
                    }
                }
            }
        }
    }
}

/// RFC 7644 `pr`: a non-empty value, or a complex value with one.
fn non_empty(value: &Json) -> bool {
    match value {
        Json::Null => false,
        Json::String(s) => !s.is_empty(),
        Json::Array(items) => items.iter().any(non_empty),
        Json::Object(fields) => fields.values().any(non_empty),
        Json::Bool(_) | Json::Number(_) => true,
    }
}

fn ordered(op: CompareOp, order: Ordering) -> bool {
    match op {
        CompareOp::Eq => order == Ordering::Equal,
        CompareOp::Ne => order != Ordering::Equal,
        CompareOp::Gt => order == Ordering::Greater,
        CompareOp::Ge => order != Ordering::Less,
        CompareOp::Lt => order == Ordering::Less,
        CompareOp::Le => order != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

fn compare(value: &Json, op: CompareOp, literal: &CompValue, how: Comparison) -> bool {
    match (value, literal) {
        (Json::String(a), CompValue::String(b)) => compare_strings(a, b, op, how),
        (Json::Number(a), CompValue::Number(b)) => {
            number_order(a, b).is_some_and(|o| ordered(op, o))
        }
        // `emails co "example.com"` (RFC 7644 §3.4.2.2): a complex value
        // compares by its `value` sub-attribute (RFC 7643 §2.4).
        (Json::Object(_), _) => match get_ci(value, "value") {
            Some(inner) if !inner.is_object() => compare(inner, op, literal, how),
            _ => false,
        },
        (Json::Bool(a), CompValue::Bool(b)) => match op {
            CompareOp::Eq => a == b,
            CompareOp::Ne => a != b,
            _ => false,
        },
        _ => false,
    }
}

fn compare_strings(a: &str, b: &str, op: CompareOp, how: Comparison) -> bool {
    let substring = matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew);
    if how == Comparison::DateTime
        && !substring
        && let (Ok(x), Ok(y)) = (
            DateTime::parse_from_rfc3339(a),
            DateTime::parse_from_rfc3339(b),
        )
    {
        return ordered(op, x.cmp(&y));
    }
    let (a, b) = if how == Comparison::CaseIgnore {
        (
            Cow::Owned(a.to_ascii_lowercase()),
            Cow::Owned(b.to_ascii_lowercase()),
        )
    } else {
        (Cow::Borrowed(a), Cow::Borrowed(b))
    };
    match op {
        CompareOp::Co => a.contains(&*b),
        CompareOp::Sw => a.starts_with(&*b),
        CompareOp::Ew => a.ends_with(&*b),
        _ => ordered(op, a.cmp(&b)),
    }
}

fn number_order(a: &Number, b: &Number) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return Some(x.cmp(&y));
    }
    a.as_f64()?.partial_cmp(&b.as_f64()?)
}

/// Proptest strategies for filters, shared with the path tests.
#[cfg(test)]
pub(crate) mod strategy {
    use proptest::prelude::*;
    use serde_json::Number;

    use super::{CompValue, CompareOp, Filter};
    use crate::scim::path::{AttrPath, CORE_USER_URN, ENTERPRISE_USER_URN};

    /// Attribute names, including ones spelled like keywords.
    pub fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => "[a-zA-Z][a-zA-Z0-9_-]{0,8}",
            1 => prop::sample::select(vec![
                "userName", "not", "NOT", "and", "or", "pr", "eq", "true", "null", "$ref",
            ])
            .prop_map(str::to_owned),
        ]
    }

    pub fn urn() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(ENTERPRISE_USER_URN.to_owned()),
            Just(CORE_USER_URN.to_owned()),
            "urn(:[a-zA-Z0-9._-]{1,6}){1,4}",
        ]
    }

    pub fn attr_path() -> impl Strategy<Value = AttrPath> {
        (prop::option::of(urn()), name(), prop::option::of(name()))
            .prop_map(|(urn, name, sub)| AttrPath { urn, name, sub })
    }

    /// An attribute without a sub-attribute, as before `[...]`.
    pub fn plain_attr() -> impl Strategy<Value = AttrPath> {
        (prop::option::of(urn()), name()).prop_map(|(urn, name)| AttrPath {
            urn,
            name,
            sub: None,
        })
    }

    pub fn comp_value() -> impl Strategy<Value = CompValue> {
        prop_oneof![
            prop::collection::vec(any::<char>(), 0..8)
                .prop_map(|chars| CompValue::String(chars.into_iter().collect())),
            any::<i64>().prop_map(|n| CompValue::Number(n.into())),
            any::<u64>().prop_map(|n| CompValue::Number(n.into())),
            any::<f64>()
                .prop_filter_map("finite", Number::from_f64)
                .prop_map(CompValue::Number),
            any::<bool>().prop_map(CompValue::Bool),
            Just(CompValue::Null),
        ]
    }

    fn leaf() -> BoxedStrategy<Filter> {
        prop_oneof![
            3 => (attr_path(), prop::sample::select(CompareOp::ALL.to_vec()), comp_value())
                .prop_map(|(path, op, value)| Filter::Compare { path, op, value }),
            1 => attr_path().prop_map(Filter::Present),
        ]
        .boxed()
    }

    fn combine(inner: BoxedStrategy<Filter>) -> BoxedStrategy<Filter> {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(l, r)| Filter::And(Box::new(l), Box::new(r))),
            (inner.clone(), inner.clone()).prop_map(|(l, r)| Filter::Or(Box::new(l), Box::new(r))),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
        .boxed()
    }

    /// Filters without value paths: what may stand inside `attr[...]`.
    pub fn value_filter() -> BoxedStrategy<Filter> {
        leaf().prop_recursive(3, 8, 2, combine).boxed()
    }

    /// Any filter the parser can produce.
    pub fn filter() -> BoxedStrategy<Filter> {
        let value_path =
            (plain_attr(), value_filter()).prop_map(|(attr, filter)| Filter::ValuePath {
                attr,
                filter: Box::new(filter),
            });
        prop_oneof![3 => leaf(), 1 => value_path]
            .prop_recursive(4, 16, 2, combine)
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::scim::path::ENTERPRISE_USER_URN;

    fn p(s: &str) -> Filter {
        parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    fn cmp(name: &str, op: CompareOp, value: CompValue) -> Filter {
        Filter::Compare {
            path: AttrPath::new(name),
            op,
            value,
        }
    }

    fn num(n: i64) -> CompValue {
        CompValue::Number(n.into())
    }

    fn present(name: &str) -> Filter {
        Filter::Present(AttrPath::new(name))
    }

    fn and(l: Filter, r: Filter) -> Filter {
        Filter::And(Box::new(l), Box::new(r))
    }

    fn or(l: Filter, r: Filter) -> Filter {
        Filter::Or(Box::new(l), Box::new(r))
    }

    fn not(f: Filter) -> Filter {
        Filter::Not(Box::new(f))
    }

    /// RFC 7644 §3.4.2.2, Figure 2, verbatim.
    const RFC_EXAMPLES: [&str; 17] = [
        r#"userName eq "bjensen""#,
        r#"name.familyName co "O'Malley""#,
        r#"userName sw "J""#,
        r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
        r#"title pr"#,
        r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
        r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
        r#"title pr and userType eq "Employee""#,
        r#"title pr or userType eq "Intern""#,
        r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
        r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
        r#"userType eq "Employee" and (emails.type eq "work")"#,
        r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
        r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
    ];

    #[test]
    fn every_operator_parses_in_any_case() {
        for op in CompareOp::ALL {
            for spelling in [op.as_str().to_owned(), op.as_str().to_uppercase()] {
                let f = p(&format!(r#"userName {spelling} "x""#));
                assert_eq!(f, cmp("userName", op, CompValue::String("x".into())));
            }
        }
        assert_eq!(p("title pr"), present("title"));
        assert_eq!(p("title PR"), present("title"));
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let (a, b, c) = (
            cmp("a", CompareOp::Eq, num(1)),
            cmp("b", CompareOp::Eq, num(2)),
            cmp("c", CompareOp::Eq, num(3)),
        );
        assert_eq!(
            p("a eq 1 or b eq 2 and c eq 3"),
            or(a.clone(), and(b.clone(), c.clone()))
        );
        assert_eq!(p("a eq 1 and b eq 2 or c eq 3"), or(and(a, b), c));
    }

    #[test]
    fn not_binds_tighter_than_and() {
        assert_eq!(
            p("not (x pr) and y pr"),
            and(not(present("x")), present("y"))
        );
        assert_eq!(p("y pr or not(x pr)"), or(present("y"), not(present("x"))));
    }

    #[test]
    fn and_and_or_are_left_associative() {
        assert_eq!(
            p("a pr and b pr and c pr"),
            and(and(present("a"), present("b")), present("c"))
        );
        assert_eq!(
            p("a pr or b pr or c pr"),
            or(or(present("a"), present("b")), present("c"))
        );
    }

    #[test]
    fn parentheses_group_and_leave_no_node() {
        assert_eq!(
            p("(a pr or b pr) and c pr"),
            and(or(present("a"), present("b")), present("c"))
        );
        assert_eq!(
            p("a pr and (b pr and c pr)"),
            and(present("a"), and(present("b"), present("c")))
        );
        assert_eq!(p("((((a pr))))"), present("a"));
    }

    #[test]
    fn keywords_and_whitespace_are_free() {
        assert_eq!(
            p("  A pr\tAND NoT (b pr)\nOr c pr "),
            or(and(present("A"), not(present("b"))), present("c"))
        );
    }

    #[test]
    fn attributes_may_be_named_like_keywords() {
        assert_eq!(p("not eq 1"), cmp("not", CompareOp::Eq, num(1)));
        assert_eq!(p("and pr and or pr"), and(present("and"), present("or")));
        assert_eq!(p("pr pr"), present("pr"));
    }

    #[test]
    fn string_escapes_decode() {
        let f = p(r#"a eq "q\"b\\s\/\b\f\n\r\t\u00e9\ud83d\ude00 é""#);
        assert_eq!(
            f,
            cmp(
                "a",
                CompareOp::Eq,
                CompValue::String("q\"b\\s/\u{8}\u{c}\n\r\té😀 é".into())
            )
        );
        assert_eq!(f.to_string(), r#"a eq "q\"b\\s/\b\f\n\r\té😀 é""#);
    }

    #[test]
    fn bad_strings_are_errors() {
        for (input, position) in [
            // At (or just after) the bad escape, counted in characters.
            (r#"a eq "\q""#, 7),
            (r#"a eq "é\q""#, 8),
            (r#"a eq "\u12""#, 10),
            (r#"a eq "\ud800""#, 12),
            (r#"a eq "\ud800\u0041""#, 17),
            (r#"a eq "\udc00""#, 11),
            ("a eq \"tab\there\"", 9),
            (r#"a eq "open"#, 5),
            (r#"a eq "\"#, 5),
        ] {
            let e = parse(input).expect_err(input);
            assert!(matches!(e.kind, ErrorKind::BadString(_)), "{input}: {e}");
            assert_eq!(e.position, position, "{input}: {e}");
        }
    }

    #[test]
    fn numbers_booleans_and_null() {
        assert_eq!(p("a eq 42"), cmp("a", CompareOp::Eq, num(42)));
        assert_eq!(p("a eq -7"), cmp("a", CompareOp::Eq, num(-7)));
        assert_eq!(p("a eq 0"), cmp("a", CompareOp::Eq, num(0)));
        let float = |x| CompValue::Number(Number::from_f64(x).expect("finite"));
        assert_eq!(p("a gt -1.5"), cmp("a", CompareOp::Gt, float(-1.5)));
        assert_eq!(p("a lt 1e3"), cmp("a", CompareOp::Lt, float(1000.0)));
        assert_eq!(p("a le 2.5E-1"), cmp("a", CompareOp::Le, float(0.25)));
        assert_eq!(
            p("a eq true"),
            cmp("a", CompareOp::Eq, CompValue::Bool(true))
        );
        assert_eq!(
            p("a ne false"),
            cmp("a", CompareOp::Ne, CompValue::Bool(false))
        );
        assert_eq!(p("a eq null"), cmp("a", CompareOp::Eq, CompValue::Null));
        // Floats read back exactly what they render as.
        let f = p("a eq 4.6256915640702205e221");
        assert_eq!(f.to_string(), "a eq 4.6256915640702205e+221");
        assert_eq!(parse(&f.to_string()), Ok(f));
        let big = p("a eq 123456789012345678901234567890");
        assert_eq!(parse(&big.to_string()), Ok(big));
    }

    #[test]
    fn bad_numbers_are_errors() {
        for input in [
            "a eq 01",
            "a eq 1.",
            "a eq -",
            "a eq 1e",
            "a eq 1e999",
            "a eq 1abc",
            "a eq .5",
            "a eq +1",
        ] {
            let e = parse(input).expect_err(input);
            assert_eq!(e.position, 5, "{input}: {e}");
        }
        assert!(matches!(
            parse("a eq 1e999").map_err(|e| e.kind),
            Err(ErrorKind::BadNumber("out of range"))
        ));
    }

    #[test]
    fn urn_prefixed_and_sub_attributes() {
        let f = p(&format!(
            r#"{ENTERPRISE_USER_URN}:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#
        ));
        let Filter::Compare { path, .. } = &f else {
            panic!("{f:?}")
        };
        assert_eq!(path.urn.as_deref(), Some(ENTERPRISE_USER_URN));
        assert_eq!(
            (path.name.as_str(), path.sub.as_deref()),
            ("manager", Some("value"))
        );
        assert_eq!(
            p("name.familyName pr"),
            Filter::Present(AttrPath::new("name").with_sub("familyName"))
        );
        assert_eq!(p("members[$ref pr]").to_string(), "members[$ref pr]");
    }

    #[test]
    fn rfc7644_examples_parse_and_round_trip() {
        for example in RFC_EXAMPLES {
            let f = p(example);
            assert_eq!(parse(&f.to_string()), Ok(f.clone()));
            // Only the redundant parentheses of one example are not canonical.
            let canonical =
                example.replace(r#"(emails.type eq "work")"#, r#"emails.type eq "work""#);
            assert_eq!(f.to_string(), canonical);
        }
    }

    #[test]
    fn rfc7644_examples_have_the_expected_shape() {
        let emails_or = or(
            cmp(
                "emails",
                CompareOp::Co,
                CompValue::String("example.com".into()),
            ),
            Filter::Compare {
                path: AttrPath::new("emails").with_sub("value"),
                op: CompareOp::Co,
                value: CompValue::String("example.org".into()),
            },
        );
        let employee = |op| cmp("userType", op, CompValue::String("Employee".into()));
        assert_eq!(
            p(RFC_EXAMPLES[12]),
            and(employee(CompareOp::Eq), emails_or.clone())
        );
        assert_eq!(
            p(RFC_EXAMPLES[13]),
            and(employee(CompareOp::Ne), not(emails_or))
        );
        let Filter::Or(l, r) = p(RFC_EXAMPLES[16]) else {
            panic!("an or")
        };
        assert!(matches!(
            (*l, *r),
            (Filter::ValuePath { .. }, Filter::ValuePath { .. })
        ));
    }

    #[test]
    fn bad_filters_name_the_position_and_what_was_expected() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "",
                0,
                "expected an attribute name, \"not\" or \"(\", found end of input",
            ),
            ("   ", 3, "found end of input"),
            (
                r#"(userName eq "a""#,
                16,
                "expected \"and\", \"or\" or \")\", found end of input",
            ),
            (
                r#"userName eq "a")"#,
                15,
                "expected \"and\", \"or\" or end of input, found \")\"",
            ),
            (
                r#"emails[type eq "work""#,
                21,
                "expected \"and\", \"or\" or \"]\"",
            ),
            (r#"emails[type eq "work"]]"#, 22, "found \"]\""),
            (
                r#"userName xx "a""#,
                9,
                "expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le or pr) or \"[\", found \"xx\"",
            ),
            (
                "userName eq",
                11,
                "expected a value (a JSON string, a number, true, false or null), found end of input",
            ),
            ("userName eq bjensen", 12, "expected a value"),
            (r#"userName eq "a" garbage"#, 16, "found \"garbage\""),
            (r#"userName eq "a" and"#, 19, "expected an attribute name"),
            ("title pr pr", 9, "found \"pr\""),
            (
                "not title pr",
                4,
                "expected \"(\" after \"not\", found \"title\"",
            ),
            ("a eq 'x'", 5, "unexpected character '\\''"),
            (
                "emails[types[value pr]]",
                12,
                "a value filter cannot contain another value filter",
            ),
            ("name.familyName[value pr]", 0, "not to a sub-attribute"),
            ("a.b.c pr", 0, "at most one sub-attribute"),
            ("emails. pr", 0, "an attribute name starts with a letter"),
            ("foo:bar pr", 0, "must be a URN"),
            ("urn:x: pr", 0, "after the schema URN"),
            ("a eq 1 and ]", 11, "found \"]\""),
            ("é eq 1", 0, "unexpected character 'é'"),
            ("a eq \"é\" x", 9, "found \"x\""),
        ];
        for &(input, position, message) in cases {
            let e = parse(input).expect_err(input);
            assert_eq!(e.position, position, "{input:?}: {e}");
            assert!(e.to_string().contains(message), "{input:?}: {e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("invalid filter at position {position}: "))
            );
        }
    }

    #[test]
    fn length_and_depth_are_limited() {
        let long = format!(r#"a eq "{}""#, "x".repeat(MAX_INPUT_LEN));
        let e = parse(&long).expect_err("too long");
        assert_eq!(e.kind, ErrorKind::TooLong { len: long.len() });
        assert_eq!(e.position, MAX_INPUT_LEN);
        let at_limit = format!(r#"a eq "{}""#, "x".repeat(MAX_INPUT_LEN - 7));
        assert!(parse(&at_limit).is_ok());

        let nested = |n: usize| format!("{}a pr{}", "(".repeat(n), ")".repeat(n));
        assert_eq!(parse(&nested(MAX_DEPTH)), Ok(present("a")));
        let e = parse(&nested(MAX_DEPTH + 1)).expect_err("too deep");
        assert_eq!((e.position, e.kind), (MAX_DEPTH, ErrorKind::TooDeep));
        let nots = format!(
            "{}a pr{}",
            "not (".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(parse(&nots).map_err(|e| e.kind), Err(ErrorKind::TooDeep));
        let brackets = format!("{}e[a pr]{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(
            parse(&brackets).map_err(|e| e.kind),
            Err(ErrorKind::TooDeep)
        );
        // A long flat chain is not deep.
        let chain = vec!["a pr"; 400].join(" and ");
        assert!(parse(&chain).is_ok());
    }

    #[test]
    fn rendering_is_canonical() {
        assert_eq!(
            p(r#"userName Eq "john""#).to_string(),
            r#"userName eq "john""#
        );
        assert_eq!(p("((a pr)  AND b pr)").to_string(), "a pr and b pr");
        assert_eq!(
            p("(a pr and b pr) and c pr").to_string(),
            "a pr and b pr and c pr"
        );
        assert_eq!(
            p("a pr and (b pr and c pr)").to_string(),
            "a pr and (b pr and c pr)"
        );
        assert_eq!(
            p("(a pr or b pr) and c pr").to_string(),
            "(a pr or b pr) and c pr"
        );
        assert_eq!(
            p("a pr or (b pr and c pr)").to_string(),
            "a pr or b pr and c pr"
        );
        assert_eq!(
            p("a pr or (b pr or c pr)").to_string(),
            "a pr or (b pr or c pr)"
        );
        assert_eq!(p("not(a pr)").to_string(), "not (a pr)");
        assert_eq!(p("a eq 1E3").to_string(), "a eq 1000.0");
    }

    fn user() -> Json {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER_URN],
            "userName": "BJensen",
            "name": {"familyName": "O'Malley", "givenName": "Barbara"},
            "userType": "Employee",
            "active": true,
            "title": "",
            "nickName": null,
            "x509Certificates": [],
            "logins": 42,
            "emails": [
                {"type": "work", "value": "bjensen@example.com", "primary": true},
                {"type": "home", "value": "babs@acme.org"}
            ],
            "meta": {"lastModified": "2011-05-13T04:42:34Z"},
            ENTERPRISE_USER_URN: {"employeeNumber": "701984", "manager": {"value": "26118915"}}
        })
    }

    /// The test user's schema: `meta.*` are date-times, the rest ignores case.
    fn schema(path: &AttrPath) -> Comparison {
        if path.name.eq_ignore_ascii_case("meta") {
            Comparison::DateTime
        } else {
            Comparison::CaseIgnore
        }
    }

    fn check(filter: &str, expected: bool) {
        let f = p(filter);
        assert_eq!(f.matches(&user(), &schema), expected, "{filter}");
    }

    #[test]
    fn evaluation_ignores_the_case_of_attribute_names() {
        check(r#"USERNAME eq "bjensen""#, true);
        check(r#"Name.FAMILYNAME eq "o'malley""#, true);
    }

    #[test]
    fn evaluation_of_strings_is_case_insensitive_unless_case_exact() {
        let f = p(r#"userName eq "bjensen""#);
        assert!(f.matches(&user(), &|_| Comparison::CaseIgnore));
        assert!(!f.matches(&user(), &|path| {
            if path.name.eq_ignore_ascii_case("userName") {
                Comparison::CaseExact
            } else {
                Comparison::CaseIgnore
            }
        }));
        let exact = p(r#"userName eq "BJensen""#);
        assert!(exact.matches(&user(), &|_| Comparison::CaseExact));
    }

    #[test]
    fn evaluation_of_every_operator() {
        check(r#"userName ne "someone""#, true);
        check(r#"userName ne "BJENSEN""#, false);
        check(r#"userName co "JENS""#, true);
        check(r#"userName sw "bj""#, true);
        check(r#"userName sw "jen""#, false);
        check(r#"userName ew "SEN""#, true);
        check(r#"userName gt "a""#, true);
        check(r#"userName gt "bjensen""#, false);
        check(r#"userName ge "bjensen""#, true);
        check(r#"userName lt "c""#, true);
        check(r#"userName le "BJENSEN""#, true);
        check("logins gt 41.5", true);
        check("logins ge 42", true);
        check("logins lt 42", false);
        check("logins le 42.0", true);
        check("logins eq 42", true);
        check("logins ne 42", false);
        check("logins co 4", false);
        check("active eq true", true);
        check("active ne true", false);
        check("active gt false", false);
    }

    #[test]
    fn evaluation_of_multi_valued_attributes_matches_any_value() {
        check(r#"emails.value ew "@acme.org""#, true);
        check(r#"emails.type eq "home""#, true);
        check(r#"emails.type eq "other""#, false);
        check(r#"emails co "example.com""#, true); // by the `value` sub-attribute
        check(r#"name co "o'malley""#, false); // no `value` sub-attribute
        check(
            r#"schemas eq "urn:ietf:params:scim:schemas:core:2.0:User""#,
            true,
        );
    }

    #[test]
    fn evaluation_of_value_filters_needs_one_value_to_match_all() {
        check(
            r#"emails[type eq "work" and value co "@example.com"]"#,
            true,
        );
        check(r#"emails[type eq "work" and value co "@acme"]"#, false);
        check(r#"emails[type eq "home" and value co "@ACME"]"#, true);
        check(r#"emails[not (type eq "work")]"#, true);
        check(
            r#"emails[primary eq true] and userType eq "Employee""#,
            true,
        );
        let mut seen = std::cell::RefCell::new(Vec::new());
        p(r#"emails[value co "zzz"]"#).matches(&user(), &|path| {
            seen.borrow_mut().push(path.to_string());
            Comparison::CaseIgnore
        });
        assert_eq!(seen.get_mut(), &vec!["emails.value".to_owned(); 2]);
    }

    #[test]
    fn evaluation_of_presence() {
        check("userName pr", true);
        check("name pr", true);
        check("emails pr", true);
        check("title pr", false); // empty string
        check("nickName pr", false); // null
        check("x509Certificates pr", false); // empty array
        check("phoneNumbers pr", false); // absent
        check("not (phoneNumbers pr)", true);
    }

    #[test]
    fn evaluation_of_date_times_is_chronological() {
        check(r#"meta.lastModified eq "2011-05-13T06:42:34+02:00""#, true);
        check(r#"meta.lastModified gt "2011-05-13T04:42:33.999Z""#, true);
        check(r#"meta.lastModified ge "2011-05-13T04:42:34Z""#, true);
        // Lexicographically greater, chronologically earlier (03:00Z).
        check(r#"meta.lastModified lt "2011-05-13T05:00:00+02:00""#, false);
        check(r#"meta.lastModified gt "2011-05-13T05:00:00+02:00""#, true);
        check(r#"meta.lastModified le "2012-01-01T00:00:00Z""#, true);
        check(r#"meta.lastModified sw "2011-05""#, true);
    }

    #[test]
    fn only_date_time_attributes_compare_as_instants() {
        // The same instant written two ways: equal as meta.created, not as
        // a userName (which the store looks up as text).
        let r = json!({
            "userName": "2020-01-01T01:00:00+01:00",
            "meta": {"created": "2020-01-01T01:00:00+01:00"}
        });
        let f = |text: &str| p(text).matches(&r, &schema);
        assert!(f(r#"meta.created eq "2020-01-01T00:00:00Z""#));
        assert!(!f(r#"userName eq "2020-01-01T00:00:00Z""#));
        // As text "…T01:00…" sorts after "…T00:59…"; as instants it is earlier.
        assert!(f(r#"userName gt "2020-01-01T00:59:59Z""#));
        assert!(!f(r#"meta.created gt "2020-01-01T00:59:59Z""#));
        assert!(f(r#"meta.created sw "2020-01-01T01""#)); // substrings stay text
    }

    #[test]
    fn case_is_folded_for_ascii_letters_only() {
        let r = json!({"userName": "\u{c4}rger", "displayName": "\u{212a}im"});
        let f = |text: &str| p(text).matches(&r, &schema);
        assert!(f("userName eq \"\u{c4}RGER\""));
        assert!(!f("userName eq \"\u{e4}rger\""));
        // The Kelvin sign lower-cases to `k` in Unicode, not in ASCII.
        assert!(!f(r#"displayName eq "kim""#));
        assert!(f("displayName eq \"\u{212a}IM\""));
    }

    #[test]
    fn evaluation_of_incompatible_types_is_false() {
        check(r#"logins eq "42""#, false);
        check(r#"logins ne "42""#, false);
        check("userName eq 1", false);
        check("userName gt true", false);
        check(r#"active eq "true""#, false);
        check("name eq 1", false);
    }

    #[test]
    fn evaluation_of_absent_and_null() {
        check("nickName eq null", true);
        check("phoneNumbers eq null", true);
        check("x509Certificates eq null", true);
        check("userName eq null", false);
        check("userName ne null", true);
        check(r#"phoneNumbers ne "x""#, true);
        check(r#"phoneNumbers eq "x""#, false);
        check("phoneNumbers gt null", false);
    }

    #[test]
    fn evaluation_of_urn_prefixed_attributes() {
        check(
            &format!(r#"{ENTERPRISE_USER_URN}:employeeNumber eq "701984""#),
            true,
        );
        check(
            &format!(r#"{ENTERPRISE_USER_URN}:manager.value eq "26118915""#),
            true,
        );
        check(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "b""#,
            true,
        );
        check(
            r#"urn:ietf:params:scim:schemas:core:2.0:Group:userName sw "b""#,
            false,
        );
        check(r#"urn:example:other:2.0:User:userName sw "b""#, false);
        check(r#"employeeNumber eq "701984""#, false);
    }

    #[test]
    fn evaluation_of_rfc7644_examples() {
        let expected = [
            true, true, false, false, false, false, true, false, true, false, false, true, true,
            false, true, true, true,
        ];
        for (example, want) in RFC_EXAMPLES.iter().zip(expected) {
            check(example, want);
        }
    }

    proptest! {
        #[test]
        fn prop_parse_never_panics(s in any::<String>()) {
            let _ = parse(&s);
        }

        #[test]
        fn prop_parse_never_panics_on_filter_like_text(
            s in r#"([a-zA-Z]{1,6}|[ ()\[\].:$"\\-]|[0-9]{1,3}|eq|pr|and|or|not|u[0-9a-f]{4}|urn:x:){0,40}"#
        ) {
            if let Ok(f) = parse(&s) {
                prop_assert_eq!(parse(&f.to_string()), Ok(f));
            }
        }

        #[test]
        fn prop_render_then_parse_gives_the_same_filter(f in strategy::filter()) {
            let text = f.to_string();
            prop_assume!(text.len() <= MAX_INPUT_LEN);
            prop_assert_eq!(parse(&text), Ok(f));
        }

        #[test]
        fn prop_damaged_filters_never_panic(f in strategy::filter(), at in any::<usize>(), c in any::<char>()) {
            let text = f.to_string();
            let cut = text.char_indices().map(|(i, _)| i).nth(at % text.chars().count().max(1)).unwrap_or(0);
            let _ = parse(&text[..cut]);
            let mut inserted = text.clone();
            inserted.insert(cut, c);
            let _ = parse(&inserted);
        }

        #[test]
        fn prop_matches_never_panics(f in strategy::filter()) {
            let _ = f.matches(&user(), &|path| match path.name.len() % 3 {
                0 => Comparison::CaseIgnore,
                1 => Comparison::CaseExact,
                _ => Comparison::DateTime,
            });
        }
    }
}
