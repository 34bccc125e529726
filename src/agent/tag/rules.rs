//! The tagger's own rules beside the catalogue's matchers: syntax-tree
//! queries for structure a keyword cannot see, and the matcher terms too
//! generic to count as evidence in code (they stay useful to people
//! reading the catalogue, and in explanations). docs/kernel.md
//! ("Tagging rules") lists them in prose.

use super::lang::Lang;

/// One syntax rule: a tree-sitter query pattern that, when it matches
/// anywhere in the tree, shows `concept`.
pub struct Rule {
    pub concept: &'static str,
    /// Text a match must hold one of (case aside, for SQL): a part of
    /// the text holding none cannot match, so it is not parsed for this
    /// rule (`markers_are_held_by_every_match` checks them on the corpus).
    /// They are looked for in the text with its comments blanked and its
    /// spacing normalized as the terms' is (runs of white space read as
    /// one space, none before `(`), a word only as a whole word and a
    /// sign of one character only alone: `in` is not in `string`, `:` not
    /// in `::`, and `if let` is in `if\n  let`.
    pub markers: &'static [&'static str],
    /// When not empty, text a match must also hold one of: the rule's
    /// node only ever appears beside one of these words or signs. A word
    /// in both lists must be held twice (a nested `def` holds `def` twice).
    pub also: &'static [&'static str],
    /// When set, a place the lexer must have seen in a part for the rule
    /// to match there (`markers_are_held_by_every_match` checks these too).
    pub place: Option<Place>,
    pub query: &'static str,
}

/// Where a marker stands, as the lexer sees it (comments and strings
/// aside, brackets counted); [`super::lex::Lexed::places`] notes each.
/// Only what valid code can hold is promised: a text that does not parse
/// may be tagged otherwise than its whole tree would be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Python: a `:` that may begin an annotation (`x: int`, a typed
    /// parameter): one whose innermost open bracket is `(`, or one outside
    /// brackets that is not the colon ending a compound statement's header
    /// (`if x:`, `def f(...) -> T:`); never `:=`; and wherever `lambda` is
    /// (the grammar parses a lambda's parameters as a function's, typed
    /// ones included).
    PyAnnotation,
    /// Python: a `for` whose innermost open bracket is `(`: a generator
    /// expression is always in parentheses, its own or a call's, while a
    /// `for` statement is outside brackets and a comprehension's `for` is
    /// in `[` or `{`. An f-string's code counts wherever it is.
    PyGenerator,
    /// Python: a `[` or `{` opened right inside `(` (a parameter's
    /// default value is in the parameters' parentheses), and wherever
    /// `lambda` is (a lambda's parameters have none).
    PyCollectionInParens,
    /// Python: an `@` that begins an indented line: a decorator inside a
    /// body (a top-level one begins its line).
    PyInnerDecorator,
    /// Rust: a `:` (not in `::`) inside `<...>` (type parameters, or
    /// arguments with associated type bounds), or after a `where`, `trait`
    /// or `type` before the `{` or `;` that ends its header: where trait
    /// bounds begin. Any `<` opens, so a comparison only makes more count.
    RustBound,
    /// Rust: a `<` right after `impl`, `for`, or the name a `fn`,
    /// `struct`, `enum`, `union`, `trait` or `type` declares: where type
    /// parameters open.
    RustTypeParams,
    /// Go: `func` outside any bracket: a method is a top-level
    /// declaration, and a function literal inside a body is not one.
    GoTopLevel,
}

impl Place {
    /// Each place's bit in a set of places.
    pub const fn bit(self) -> u8 {
        match self {
            Self::PyAnnotation => 1,
            Self::PyGenerator => 2,
            Self::PyCollectionInParens => 4,
            Self::PyInnerDecorator => 8,
            Self::GoTopLevel => 16,
            Self::RustBound => 32,
            Self::RustTypeParams => 64,
        }
    }
}

const fn r(concept: &'static str, markers: &'static [&'static str], query: &'static str) -> Rule {
    Rule {
        concept,
        markers,
        also: &[],
        place: None,
        query,
    }
}

/// A rule whose match holds one of `markers` and one of `also`.
const fn r2(
    concept: &'static str,
    markers: &'static [&'static str],
    also: &'static [&'static str],
    query: &'static str,
) -> Rule {
    Rule {
        concept,
        markers,
        also,
        place: None,
        query,
    }
}

impl Rule {
    /// The rule with its markers counting only at `place`.
    const fn at(self, place: Place) -> Rule {
        Rule {
            place: Some(place),
            ..self
        }
    }
}

const RUST: &[Rule] = &[
    r(
        "rust-lifetimes",
        &["'"],
        "((lifetime) @x (#not-eq? @x \"'_\"))",
    ),
    r("rust-traits", &["trait"], "(trait_item) @x"),
    // Bounds follow a type or lifetime parameter (`<T: Clone>`), an
    // associated type binding (`Iterator<Item: Ord>`), a trait's name
    // (`trait A: B`), an associated type (`type T: Ord;`) or a where
    // predicate.
    r("rust-traits", &[":"], "(trait_bounds) @x").at(Place::RustBound),
    r("rust-traits", &["where"], "(where_clause) @x"),
    r2(
        "rust-traits",
        &["impl"],
        &["for"],
        "(impl_item trait: (_)) @x",
    ),
    // Type parameters belong to a function, a type, an impl or a
    // higher-ranked `for<...>`.
    r(
        "rust-generics-monomorphization",
        &["<", "<<"],
        "(type_parameters (type_parameter)) @x",
    )
    .at(Place::RustTypeParams),
    r(
        "rust-generics-monomorphization",
        &["impl"],
        "(abstract_type) @x",
    ),
    r("rust-trait-objects", &["dyn"], "(dynamic_type) @x"),
    r("rust-closures", &["|", "||"], "(closure_expression) @x"),
    r("rust-async-futures", &["async"], "(async_block) @x"),
    r("rust-async-futures", &["await"], "(await_expression) @x"),
    r(
        "rust-async-futures",
        &["async"],
        "(function_modifiers \"async\") @x",
    ),
    r("conc-async-await", &["async"], "(async_block) @x"),
    r("conc-async-await", &["await"], "(await_expression) @x"),
    r(
        "conc-async-await",
        &["async"],
        "(function_modifiers \"async\") @x",
    ),
    r("rust-unsafe", &["unsafe"], "(unsafe_block) @x"),
    r(
        "rust-unsafe",
        &["unsafe"],
        "(function_modifiers \"unsafe\") @x",
    ),
    r(
        "rust-unsafe",
        &["*const", "*mut", "* const", "* mut"],
        "(pointer_type) @x",
    ),
    r(
        "rust-enums-pattern-matching",
        &["match"],
        "(match_expression) @x",
    ),
    // A let condition follows `if`, `while` (or a match guard's `if`),
    // or `&&` in a let chain.
    r(
        "rust-enums-pattern-matching",
        &["if let", "while let", "&& let", "&&let"],
        "(let_condition) @x",
    ),
    r("rust-enums-pattern-matching", &["enum"], "(enum_item) @x"),
    r(
        "rust-result-error-handling",
        &["?", "??"],
        "(try_expression) @x",
    ),
    r("rust-macros", &["macro_rules"], "(macro_definition) @x"),
    r("rust-borrowing", &["&", "&&"], "(reference_expression) @x"),
    r("rust-borrowing", &["&", "&&"], "(reference_type) @x"),
    r(
        "rust-send-sync",
        &["Send", "Sync"],
        "((type_identifier) @t (#any-of? @t \"Send\" \"Sync\"))",
    ),
    r(
        "rust-drop-raii",
        &["Drop"],
        "(impl_item trait: (type_identifier) @t (#eq? @t \"Drop\"))",
    ),
];

const PYTHON: &[Rule] = &[
    // A decorator's wrapper and a closure are functions inside a function:
    // `def` twice.
    r2(
        "py-decorators",
        &["def"],
        &["def"],
        "(function_definition body: (block (function_definition name: (identifier) @a parameters: (parameters (list_splat_pattern))) (return_statement (identifier) @b)) (#eq? @a @b)) @x",
    ),
    r2(
        "py-decorators",
        &["def"],
        &["def"],
        "(function_definition body: (block (decorated_definition definition: (function_definition name: (identifier) @a)) (return_statement (identifier) @b)) (#eq? @a @b)) @x",
    ),
    r2(
        "py-closures-scope",
        &["def"],
        &["def"],
        "(function_definition body: (block (function_definition) @x))",
    ),
    r2(
        "py-closures-scope",
        &["@"],
        &["def"],
        "(function_definition body: (block (decorated_definition) @x))",
    )
    .at(Place::PyInnerDecorator),
    r(
        "py-closures-scope",
        &["nonlocal"],
        "(nonlocal_statement) @x",
    ),
    r("py-closures-scope", &["global"], "(global_statement) @x"),
    r("py-iterators-generators", &["yield"], "(yield) @x"),
    r(
        "py-iterators-generators",
        &["for"],
        "(generator_expression) @x",
    )
    .at(Place::PyGenerator),
    r("py-context-managers", &["with"], "(with_statement) @x"),
    r("py-exceptions", &["try"], "(try_statement) @x"),
    r("py-exceptions", &["raise"], "(raise_statement) @x"),
    r(
        "py-type-hints",
        &["->"],
        "(function_definition return_type: (type)) @x",
    ),
    r("py-type-hints", &[":"], "(typed_parameter) @x").at(Place::PyAnnotation),
    r("py-type-hints", &[":"], "(typed_default_parameter) @x").at(Place::PyAnnotation),
    r("py-type-hints", &[":"], "(assignment type: (type)) @x").at(Place::PyAnnotation),
    r("py-asyncio-event-loop", &["await"], "(await) @x"),
    r("conc-async-await", &["await"], "(await) @x"),
    r("test-assertions", &["assert"], "(assert_statement) @x"),
    // Default values are a function's or a lambda's parameters'.
    r2(
        "py-mutable-defaults",
        &["[", "{", "[[", "{{"],
        &["def", "lambda"],
        "(default_parameter value: [(list) (dictionary) (set)]) @x",
    )
    .at(Place::PyCollectionInParens),
];

const GO: &[Rule] = &[
    // Type parameters belong to a function or a type declaration.
    r2(
        "go-generics",
        &["["],
        &["func", "type"],
        "(type_parameter_list) @x",
    ),
    r("go-goroutines", &["go"], "(go_statement) @x"),
    r("go-channels", &["chan"], "(channel_type) @x"),
    r("go-channels", &["<-"], "(send_statement) @x"),
    r(
        "go-channels",
        &["<-"],
        "(unary_expression operator: \"<-\") @x",
    ),
    r("go-select", &["select"], "(select_statement) @x"),
    r("go-defer-panic-recover", &["defer"], "(defer_statement) @x"),
    // `func (r T) Name(...)`: the receiver's list follows `func`, at the
    // top level.
    r("go-structs-methods", &["func("], "(method_declaration) @x").at(Place::GoTopLevel),
    r("go-structs-methods", &["struct"], "(struct_type) @x"),
    r("go-interfaces", &["interface"], "(interface_type) @x"),
    // `x.(T)` and `switch v := x.(type)`.
    r("go-interfaces", &[".("], "(type_switch_statement) @x"),
    r("go-interfaces", &[".("], "(type_assertion_expression) @x"),
    r("go-slices-maps", &["map"], "(map_type) @x"),
    r(
        "go-errors",
        &["!="],
        "(binary_expression left: (identifier) @e operator: \"!=\" right: (nil) (#eq? @e \"err\")) @x",
    ),
];

/// TypeScript's and TSX's own rules; they also take every rule of
/// [`JAVASCRIPT`] (see [`rules`]).
const TYPESCRIPT: &[Rule] = &[
    r("ts-generics", &["<", "<<"], "(type_parameters) @x"),
    r("ts-unions-narrowing", &["|"], "(union_type) @x"),
    r(
        "ts-discriminated-unions",
        &["|"],
        "(union_type (object_type (property_signature type: (type_annotation (literal_type))))) @x",
    ),
    r(
        "ts-discriminated-unions",
        &["switch"],
        "(switch_statement value: (parenthesized_expression (member_expression property: (property_identifier) @p)) (#any-of? @p \"kind\" \"type\" \"tag\")) @x",
    ),
    r(
        "ts-any-unknown-never",
        &["any", "unknown", "never"],
        "((predefined_type) @t (#any-of? @t \"any\" \"unknown\" \"never\"))",
    ),
    r("ts-type-assertions", &["as"], "(as_expression (_) (_)) @x"),
    r(
        "ts-type-assertions",
        &["!", "!!"],
        "(non_null_expression) @x",
    ),
    r("ts-type-guards", &["is"], "(type_predicate_annotation) @x"),
    r("ts-type-guards", &["asserts"], "(asserts_annotation) @x"),
    r(
        "ts-mapped-conditional-types",
        &["extends"],
        "(conditional_type) @x",
    ),
    // `{ [K in keyof T]: ... }`
    r2(
        "ts-mapped-conditional-types",
        &["in"],
        &["["],
        "(mapped_type_clause) @x",
    ),
    r("ts-mapped-conditional-types", &["infer"], "(infer_type) @x"),
    r(
        "ts-template-literal-types",
        &["`", "``"],
        "(template_literal_type) @x",
    ),
    r("ts-satisfies", &["satisfies"], "(satisfies_expression) @x"),
    r("ts-enums", &["enum"], "(enum_declaration) @x"),
    r(
        "ts-classes-modifiers",
        &["public", "private", "protected"],
        "(accessibility_modifier) @x",
    ),
    r(
        "ts-classes-modifiers",
        &["abstract"],
        "(abstract_class_declaration) @x",
    ),
    r(
        "ts-type-vs-interface",
        &["interface"],
        "(interface_declaration) @x",
    ),
    r2(
        "ts-type-vs-interface",
        &["type"],
        &["{"],
        "(type_alias_declaration value: (object_type)) @x",
    ),
    r(
        "ts-literal-types",
        &["|"],
        "(union_type (literal_type [(string) (number) (true) (false)])) @x",
    ),
    r(
        "ts-unions-narrowing",
        &["typeof"],
        "(unary_expression operator: \"typeof\") @x",
    ),
    r(
        "ds-hash-maps",
        &["Map", "Set"],
        "(new_expression constructor: (identifier) @c (#any-of? @c \"Map\" \"Set\")) @x",
    ),
];

const JAVASCRIPT: &[Rule] = &[
    r("ts-null-undefined", &["?."], "(optional_chain) @x"),
    r(
        "ts-null-undefined",
        &["??"],
        "(binary_expression operator: \"??\") @x",
    ),
    r("ts-promises-async", &["await"], "(await_expression) @x"),
    r(
        "ts-promises-async",
        &["async"],
        "(arrow_function \"async\") @x",
    ),
    r(
        "ts-promises-async",
        &["async"],
        "(function_declaration \"async\") @x",
    ),
    r(
        "ts-promises-async",
        &["async"],
        "(method_definition \"async\") @x",
    ),
    r(
        "ts-promises-async",
        &["Promise"],
        "(new_expression constructor: (identifier) @c (#eq? @c \"Promise\")) @x",
    ),
    r(
        "ts-promises-async",
        &["then"],
        "(call_expression function: (member_expression property: (property_identifier) @p (#eq? @p \"then\"))) @x",
    ),
    r("conc-async-await", &["await"], "(await_expression) @x"),
    r(
        "conc-async-await",
        &["async"],
        "(arrow_function \"async\") @x",
    ),
    r(
        "conc-async-await",
        &["async"],
        "(function_declaration \"async\") @x",
    ),
    r(
        "conc-async-await",
        &["async"],
        "(method_definition \"async\") @x",
    ),
];

const SQL: &[Rule] = &[
    r("sql-ctes", &["WITH"], "(cte) @x"),
    r("sql-joins", &["JOIN"], "(join) @x"),
    r("sql-joins", &["JOIN"], "(cross_join) @x"),
    r("sql-joins", &["JOIN", "LATERAL"], "(lateral_join) @x"),
    r("sql-joins", &["JOIN", "LATERAL"], "(lateral_cross_join) @x"),
    r(
        "sql-window-functions",
        &["OVER", "WINDOW"],
        "(window_specification) @x",
    ),
    r("sql-window-functions", &["OVER"], "(window_function) @x"),
    r("sql-aggregation-group-by", &["GROUP"], "(group_by) @x"),
    r(
        "sql-set-operations",
        &["UNION", "INTERSECT", "EXCEPT"],
        "(set_operation) @x",
    ),
    r("sql-select-basics", &["SELECT"], "(select) @x"),
    r(
        "db-composite-indexes",
        &["INDEX"],
        "(create_index (index_fields (field) (field))) @x",
    ),
    r(
        "db-partial-expression-indexes",
        &["INDEX"],
        "(create_index (where)) @x",
    ),
];

/// The syntax rules of a language.
pub fn rules(lang: Lang) -> impl Iterator<Item = &'static Rule> {
    let (own, shared): (&[Rule], &[Rule]) = match lang {
        Lang::Rust => (RUST, &[]),
        Lang::Python => (PYTHON, &[]),
        Lang::Go => (GO, &[]),
        Lang::TypeScript | Lang::Tsx => (TYPESCRIPT, JAVASCRIPT),
        Lang::JavaScript => (JAVASCRIPT, &[]),
        Lang::Sql => (SQL, &[]),
    };
    own.iter().chain(shared)
}

/// Matcher terms (keywords, APIs) that are not evidence in code, as
/// `(concept, term)`; `*` stands for every concept. Each one either names
/// something far more common than the concept (`type`, `switch`,
/// `WHERE`), or is shown better by a syntax rule above (`WITH`: a CTE
/// node, not `TIMESTAMP WITH TIME ZONE`).
pub const STOP_TERMS: &[(&str, &str)] = &[
    ("*", "includes("),
    ("*", "http.get("),
    ("*", "retry("),
    ("*", "Json<"),
    ("*", "flush"),
    ("*", "fold"),
    ("*", "Copy"),
    ("*", "Session"),
    ("*", "select("),
    ("*", "Condition"),
    ("*", "promote"),
    ("sec-sql-injection", "UNION SELECT"),
    ("*", "write_all"),
    ("conc-backpressure", "mpsc::channel"),
    ("dist-backpressure", "mpsc::channel("),
    ("perf-cache-stampede", "OnceCell"),
    ("obs-structured-logging", "json()"),
    ("conc-actor-model", "oneshot::channel"),
    ("ds-arrays-and-vectors", "Vec::new"),
    ("ds-arrays-and-vectors", "vec!["),
    ("ds-arrays-and-vectors", "make([]"),
    ("rust-macros", "#[derive("),
    ("rust-traits", "impl<T"),
    ("py-asyncio-blocking", "time.sleep"),
    ("py-asyncio-blocking", "requests.get"),
    ("py-closures-scope", "lambda"),
    ("py-iterators-generators", "next("),
    ("go-structs-methods", "func ("),
    ("go-select", "default:"),
    ("go-channels", "close("),
    ("go-generics", "comparable"),
    ("go-slices-maps", "copy("),
    ("ts-catch-unknown", "catch (e)"),
    ("ts-catch-unknown", "catch (err)"),
    ("ts-runtime-validation", "JSON.parse"),
    ("ts-runtime-validation", ".parse("),
    ("ts-discriminated-unions", "switch"),
    ("ts-discriminated-unions", "never"),
    ("ts-discriminated-unions", "type:"),
    ("ts-discriminated-unions", "kind:"),
    ("ts-any-unknown-never", "never"),
    ("ts-mapped-conditional-types", "keyof"),
    ("ts-mapped-conditional-types", "infer"),
    ("ts-type-vs-interface", "interface"),
    ("ts-type-vs-interface", "type"),
    ("ts-type-vs-interface", "extends"),
    ("ts-structural-typing", "interface"),
    ("ts-structural-typing", "implements"),
    ("ts-classes-modifiers", "readonly"),
    ("ts-classes-modifiers", "implements"),
    ("ts-literal-types", "readonly"),
    ("ts-enums", "enum"),
    ("ts-unions-narrowing", "typeof"),
    ("ts-template-literal-types", "`${"),
    ("sql-ctes", "WITH"),
    ("sql-recursive-ctes", "CYCLE"),
    ("sql-window-functions", "PARTITION BY"),
    ("sql-ddl-constraints", "NOT NULL"),
    ("sql-select-basics", "WHERE"),
    ("sql-select-basics", "LIMIT"),
    ("sql-select-basics", "ORDER BY"),
    ("sql-write-skew", "SERIALIZABLE"),
    ("sql-write-skew", "40001"),
    ("sql-keyset-pagination", "OFFSET"),
    ("perf-pagination-streaming", "OFFSET"),
    ("db-normalization", "CREATE TABLE"),
    ("db-normalization", "REFERENCES"),
    ("db-composite-indexes", "CREATE INDEX"),
    ("db-composite-indexes", "CREATE UNIQUE INDEX"),
    ("db-partial-expression-indexes", "CREATE INDEX"),
    ("db-partial-expression-indexes", "CREATE UNIQUE INDEX"),
    ("db-planner-statistics", "ANALYZE"),
    ("auth-tenant-isolation", "tenant_id"),
    ("auth-tenant-isolation", "org_id"),
    ("db-wal-durability", "checkpoint"),
    ("sql-transactions", "BEGIN"),
];

/// Imports too broad to show their concept: `(concept, import)`.
pub const STOP_IMPORTS: &[(&str, &str)] = &[
    ("*", "ast"),
    ("*", "requests"),
    ("*", "tempfile"),
    ("*", "io"),
    ("*", "random"),
    ("*", "runtime"),
    ("*", "cmp"),
    ("test-test-runners", "pytest"),
    ("test-test-runners", "jest"),
    ("test-test-runners", "vitest"),
    ("test-test-runners", "mocha"),
];

/// Whether `term` of `concept` is on the stop list.
pub fn stopped(concept: &str, term: &str, list: &[(&str, &str)]) -> bool {
    list.iter()
        .any(|(c, t)| (*c == "*" || *c == concept) && t.eq_ignore_ascii_case(term))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_compiles_and_names_a_shipped_concept() {
        let cat = crate::skill::catalogue::Catalogue::builtin().expect("catalogue");
        for lang in Lang::ALL {
            for rule in rules(lang) {
                assert!(cat.contains(rule.concept), "{}: unknown", rule.concept);
                if let Err(e) = tree_sitter::Query::new(&lang.grammar(), rule.query) {
                    panic!("{lang:?} {}: {e}", rule.query);
                }
            }
        }
        for (c, _) in STOP_TERMS.iter().chain(STOP_IMPORTS) {
            assert!(*c == "*" || cat.contains(c), "{c}: unknown");
        }
    }
}
