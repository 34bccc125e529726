use super::*;

fn tagger() -> Tagger {
    Tagger::builtin().expect("shipped catalogue")
}

fn has(found: &Concepts, slug: &str) -> bool {
    found.contains(slug)
}

#[test]
fn keywords_in_comments_and_strings_are_not_concepts_seen() {
    let mut t = tagger();
    let rust = "// we could use a match or Box<dyn Trait> here, or async fn\n\
                fn f() -> u32 { let s = \"match Box<dyn X> unsafe { }\"; s.len() as u32 }";
    let found = t.tag_code(Lang::Rust, rust);
    for slug in [
        "rust-enums-pattern-matching",
        "rust-trait-objects",
        "rust-async-futures",
        "rust-unsafe",
    ] {
        assert!(
            !has(&found, slug),
            "{slug} from a comment or string: {found:?}"
        );
    }
    let py = "# with open(x) as f: yield\ndef f():\n    return \"async def yield\"\n";
    assert!(
        t.tag_code(Lang::Python, py).is_empty(),
        "{:?}",
        t.tag_code(Lang::Python, py)
    );
    let sql = "-- WITH RECURSIVE t AS (...) JOIN\nSELECT 'LEFT JOIN x OVER (' FROM t;";
    let found = t.tag_code(Lang::Sql, sql);
    assert!(
        !has(&found, "sql-recursive-ctes") && !has(&found, "sql-joins"),
        "{found:?}"
    );
}

#[test]
fn syntax_rules_see_structure_keywords_cannot() {
    let mut t = tagger();
    let found = t.tag_code(
        Lang::Rust,
        "fn longest<'x>(a: &'x str, b: &'x str) -> &'x str { if a.len() > b.len() { a } else { b } }",
    );
    assert!(has(&found, "rust-lifetimes"), "{found:?}");
    let found = t.tag_code(
        Lang::Rust,
        "fn show<T>(v: T) -> String where T: std::fmt::Display { v.to_string() }",
    );
    assert!(
        has(&found, "rust-traits") && has(&found, "rust-generics-monomorphization"),
        "{found:?}"
    );
    let found = t.tag_code(
        Lang::Sql,
        "with recent as (select * from orders where placed_at > now() - interval '1 day')\n\
         select c.name, sum(r.total) over (partition by c.id) from recent r join customers c on c.id = r.customer_id;",
    );
    for slug in ["sql-ctes", "sql-joins", "sql-window-functions"] {
        assert!(has(&found, slug), "{slug}: {found:?}");
    }
    let found = t.tag_code(
        Lang::Go,
        "func Map[T, U any](xs []T, f func(T) U) []U { return nil }",
    );
    assert!(has(&found, "go-generics"), "{found:?}");
}

#[test]
fn sql_inside_a_string_literal_is_tagged_as_sql() {
    let mut t = tagger();
    let found = t.tag_code(
        Lang::Python,
        "rows = cur.execute(\"SELECT a.id FROM a LEFT JOIN b ON b.a_id = a.id\").fetchall()\n",
    );
    assert!(has(&found, "sql-joins"), "{found:?}");
}

#[test]
fn imports_count_only_when_one_concept_claims_them() {
    let mut t = tagger();
    let found = t.tag_code(Lang::Python, "import asyncio\n");
    // asyncio is listed under three concepts: no evidence for any one.
    assert!(!has(&found, "py-asyncio-tasks"), "{found:?}");
    let found = t.tag_code(Lang::Python, "from dataclasses import dataclass, field\n");
    assert!(has(&found, "py-dataclasses"), "{found:?}");
    let found = t.tag_code(Lang::Rust, "use std::sync::{Arc, Mutex};\n");
    assert!(
        has(&found, "rust-smart-pointers") && has(&found, "rust-std-sync"),
        "{found:?}"
    );
}

#[test]
fn prose_fences_are_code_and_titles_are_concepts() {
    let mut t = tagger();
    let found = t.tag_prose(
        "I used a recursive CTE for the tree walk:\n\n```sql\nWITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) SELECT * FROM t;\n```\n\nThis is binary search on the sorted keys.",
    );
    assert!(has(&found, "sql-recursive-ctes"), "{found:?}");
    assert!(has(&found, "algo-binary-search"), "{found:?}");
    let found = t.tag_command("cargo clippy --all-targets -- -D warnings");
    assert!(has(&found, "ci-quality-gates"), "{found:?}");
}

#[test]
fn malformed_code_still_yields_only_catalogue_slugs() {
    let mut t = tagger();
    for lang in Lang::ALL {
        let found = t.tag_code(lang, "}}}} fn ( [ select from where <<< \u{0} \u{1F600}");
        for slug in &found {
            assert!(t.catalogue().contains(slug), "{slug}");
        }
    }
    assert!(t.tag_code(Lang::Rust, "").is_empty());
}

#[test]
fn observations_carry_concept_transition_and_time_only() {
    let at = chrono::DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z")
        .expect("time")
        .with_timezone(&Utc);
    let set: Concepts = ["sql-ctes".to_string(), "sql-joins".to_string()].into();
    let obs = observations(&set, Transition::Explained, at);
    assert_eq!(obs.len(), 2);
    assert!(
        obs.iter()
            .all(|o| o.transition == Transition::Explained && o.at == at)
    );
}

mod corpus;

#[test]
fn deeply_nested_input_does_not_exhaust_the_stack() {
    let mut t = tagger();
    let deep = format!(
        "fn f() {{ let x = {}1{}; }}",
        "(".repeat(50_000),
        ")".repeat(50_000)
    );
    let found = t.tag_code(Lang::Rust, &deep);
    assert!(found.iter().all(|c| t.catalogue().contains(c)));
    let deep_sql = format!("SELECT {}1{};", "(".repeat(50_000), ")".repeat(50_000));
    t.tag_code(Lang::Sql, &deep_sql);
}

/// The hook builds no automaton over every term, compiles only the
/// syntax rules whose kinds the tree holds and runs them only at nodes of
/// their root kind, in the walk that masks comments and strings
/// (`matcher`): on the whole corpus snippet by snippet and each
/// language's snippets as one text, as code and as prose, and on code
/// where rules match inside strings, that tags exactly what every term
/// and rule at once over the whole tree, after a masking walk of its
/// own, did.
#[test]
fn lazy_rules_and_candidate_terms_tag_as_every_rule_and_term_did() {
    use super::matcher::{LangIndex, PlainIndex};
    let cat = Catalogue::builtin().expect("catalogue");
    let mut indexes: std::collections::HashMap<Lang, LangIndex> = Default::default();
    let prose = PlainIndex::for_prose(&cat);
    let mut cases: Vec<(String, Lang, String)> = corpus::load()
        .into_iter()
        .map(|s| (s.id, s.lang, s.code))
        .collect();
    for (lang, code) in [
        (
            Lang::Python,
            "async def f(x):\n    return f\"{await x} {[y for y in x]}\"\n",
        ),
        (
            Lang::TypeScript,
            "const s = `${a?.b ?? await c} ${new Map()}`;\n// x as any\n",
        ),
        (
            Lang::JavaScript,
            "/* await x */ const t = `${(async () => 1)()}`;",
        ),
        (
            Lang::Rust,
            "fn f() { let s = \"SELECT a FROM t JOIN u ON true\"; } // &'a dyn T",
        ),
        (
            Lang::Go,
            "func f() { s := `SELECT 1 UNION SELECT 2`; if err != nil { go g() } }",
        ),
        (
            Lang::Sql,
            "SELECT rank() OVER (PARTITION BY a) FROM t -- JOIN u\n",
        ),
        (Lang::Rust, "fn ( {{{ <'a> unsafe"),
        // Code inside a string is read by the rules but is no import.
        (
            Lang::JavaScript,
            "const t = `${require(\"zustand\")} ${await x}`;\nrequire(\"react\");",
        ),
    ] {
        cases.push(("extra".into(), lang, code.into()));
    }
    for (lang, code) in tricky() {
        cases.push(("tricky".into(), lang, code.into()));
    }
    let mut t = tagger();
    let found = t.tag_code(
        Lang::JavaScript,
        "const t = `${require(\"zustand\")} ${await x}`;\nrequire(\"react\");",
    );
    assert!(!has(&found, "react-context"), "{found:?}");
    assert!(has(&found, "react-components-props"), "{found:?}");
    assert!(has(&found, "ts-promises-async"), "{found:?}");
    // Each language's snippets as one text, as the bench tags them: many
    // nodes of each compiled rule's root kind, most rules matching early.
    add_each_language_as_one_text(&mut cases);
    for (id, lang, code) in &cases {
        let index = indexes
            .entry(*lang)
            .or_insert_with(|| LangIndex::build(&cat, *lang));
        let (mut fast, mut all) = (Concepts::new(), Concepts::new());
        let sql_fast = index.tag(code, &mut fast);
        let sql_all = index.tag_with_all(&cat, code, &mut all);
        assert_eq!(fast, all, "{id}");
        assert_eq!(sql_fast, sql_all, "{id}");
        let (mut fast, mut all) = (Concepts::new(), Concepts::new());
        prose.tag(code, &mut fast);
        prose.tag_with_all(code, &mut all);
        assert_eq!(fast, all, "{id} as prose");
    }
}

/// Adds to `cases` each language's snippets joined into one text.
fn add_each_language_as_one_text(cases: &mut Vec<(String, Lang, String)>) {
    let mut whole: std::collections::BTreeMap<Lang, String> = Default::default();
    for (_, lang, code) in cases.iter() {
        let text = whole.entry(*lang).or_default();
        text.push_str(code);
        text.push('\n');
    }
    for (lang, text) in whole {
        cases.push((format!("{lang:?} snippets as one text"), lang, text));
    }
}

/// Adversarial snippets for the lexer: strings holding comment markers
/// and comments holding quotes, nested template literals, raw strings,
/// lifetimes beside char literals, Python prefixes and triple quotes,
/// Go raw strings, runes and struct tags, SQL dollar quotes.
fn tricky() -> Vec<(Lang, &'static str)> {
    vec![
        (
            Lang::Rust,
            "fn f<'a>(x: &'a str) -> char { let s = \"// not a comment /* \"; let c = '\"'; let q = '\\''; 'outer: loop { break 'outer; } 'x' }\n// a \"quote\n/* nested /* block */ still \" comment */\nfn g() { let r = r##\"raw \"# quote\"##; let r1 = r#\"SELECT a FROM t JOIN u ON true\"#; let b = b'x'; let bs = br\"\\\"; let u = '\\u{1F600}'; }\n",
        ),
        (
            Lang::Rust,
            "const S: &str = \"multi\nline SELECT * FROM t JOIN u ON true\";\nimpl<'a> X<'a> for Y { fn m(&self) -> &'a u8 { match self { _ => &0 } } }\n",
        ),
        (
            Lang::Python,
            "s = f\"{x['k']} # not comment\" # a 'comment'\nt = rb'\\d+' \"\"\"triple ' \" \"\"\"\nu = (\"SELECT a \"\n     # between\n     \"FROM t JOIN u ON true\")\n@dec\ndef f(a: int = [], *args):\n    '''doc with \"quotes\" and # hash'''\n    return f'{a!r:>{10}}' + F\"{'nested'}\"\nelse_ = 1\n",
        ),
        // Where the lexer's places must be seen (`markers_are_held_by_every_match`).
        (
            Lang::Python,
            "if ok: n: int = 1\nclass A: x: int\ntotal = sum(\n    x\n    for x in xs\n)\nmsg = f\"{sum(x for x in xs)} {(lambda v=[]: v)()}\"\ndef g(\n    a: int,\n    b: str = \"\",\n    c=[],\n): pass\nh = lambda y={}: y\nif (n := 10) > 5: pass\nwhile m := next(it): pass\ndef outer(f):\n    @wraps(f)\n    def inner(*a):\n        return f(*a)\n    return inner\nelse_: int = 2\nmatch: int = 3\nx = 1; y: int = 2\nfor i in r: k: int = i\nasync: int = 4\nasync def co(q: int): pass\n",
        ),
        (
            Lang::Rust,
            "fn f<T: Clone, const N: usize>(x: impl Iterator<Item: Ord>) -> u8 where T: Copy { let y: u8 = if a < b { 1 } else { 2 }; y }\ntrait A: B { type T: Ord; fn g<U>(&self) where U: Send; }\nimpl<T> X for Y<T> where T: for<'a> Fn(&'a u8) {}\nstruct S<T> { a: T }\nenum E<T> { V(T) }\nunion W<T: Copy> { a: T }\ntype Al<T> = Vec<T>;\nfn h(x: &dyn for<'b> Fn(&'b u8)) -> Vec<Box<dyn Iterator<Item = u8>>> { let v: Vec<Vec<u8>> = Vec::new(); v }\nfn k(it: impl Iterator<Item: Clone + Ord>) {}\n",
        ),
        (
            Lang::Go,
            "var f = func() int { return 1 }\nfunc (s *S) M() { g := func(x int) {}; g(1) }\nfunc (s S[T]) N() {}\n",
        ),
        (
            Lang::Go,
            "type T struct {\n\tID int `json:\"id\" db:\"id\"`\n\tName string \"plain tag\"\n}\n\nfunc f() rune { s := `raw // not comment\n \"still\"`; r := '\\''; t := \"/* no */\"; _ = s + t; return r } // \"c\n/* 'x' */\nvar q = \"SELECT 1 UNION SELECT 2\"\n",
        ),
        (
            Lang::TypeScript,
            "type H = `on${Capitalize<M>}` | `x-${string}`;\nconst a = `outer ${`inner ${b /* c } */ + '}'} tail`} // ${not}`; // comment ' \"\nconst r = /[/\"']+\\//g.test(x) ? 1 / 2 : a / b / c;\nconst q = \"SELECT 1 FROM t JOIN u ON true\";\n/* block ` ' \" */ function g(): string { return '//'; }\n",
        ),
        (
            Lang::JavaScript,
            "const t = `${require(\"zustand\")} ${`n${1}`}`;\nlet x = y / 2 / z; let re = /a\\/b/i;\nif (x) { return; }\nelse { z(); }\n",
        ),
        (
            Lang::Sql,
            "SELECT 'it''s -- not a comment', \"col;name\" FROM t -- a 'comment'\nWHERE x = $1 /* ; */;\nSELECT 'a;b' AS \"x'y\"; -- ;\nSELECT 1;\n",
        ),
    ]
}

/// The places the lexer notes are sharp: a compound statement's header
/// colon, a `for` statement or comprehension, a top-level decorator or a
/// function literal in a body is none of them (that each one found where
/// a rule matches is `markers_are_held_by_every_match`'s).
#[test]
fn the_lexer_places_markers_where_their_nodes_can_be() {
    use super::rules::Place::{
        self, GoTopLevel, PyAnnotation, PyCollectionInParens, PyGenerator, PyInnerDecorator,
        RustBound, RustTypeParams,
    };
    let places = |lang: Lang, code: &str| -> Vec<Place> {
        let lexed = super::lex::lex(lang, code).expect("lexed");
        [
            PyAnnotation,
            PyGenerator,
            PyCollectionInParens,
            PyInnerDecorator,
            GoTopLevel,
            RustBound,
            RustTypeParams,
        ]
        .into_iter()
        .filter(|p| lexed.places.iter().any(|(_, bit)| *bit == p.bit()))
        .collect()
    };
    let cases: &[(Lang, &str, &[Place])] = &[
        (
            Lang::Python,
            "@app.get(\"/x\")\ndef f(a, b=1) -> None:\n    if a: return [i for i in b if i]\n    for k, v in {1: 2}.items():\n        print(f\"{k:>3}\")\n        s = a[1:2]\n    with open(a) as h:\n        pass\n    try:\n        pass\n    except E:\n        pass\n    else:\n        pass\n",
            &[],
        ),
        (Lang::Python, "def f(a: int): pass\n", &[PyAnnotation]),
        (Lang::Python, "x: int = 1\n", &[PyAnnotation]),
        (Lang::Python, "if a: x: int = 1\n", &[PyAnnotation]),
        (Lang::Python, "s = sum(i for i in a)\n", &[PyGenerator]),
        (Lang::Python, "def f(a=[]): pass\n", &[PyCollectionInParens]),
        (
            Lang::Python,
            "def f():\n    @d\n    def g(): pass\n",
            &[PyInnerDecorator],
        ),
        (
            Lang::Python,
            "f = lambda a=[]: a\n",
            &[PyAnnotation, PyCollectionInParens],
        ),
        (
            Lang::Go,
            "func f() { g := func() {}; g() }\n",
            &[GoTopLevel],
        ),
        (Lang::Go, "var x = 1\n", &[]),
        (
            Lang::Rust,
            "fn f(a: u8) -> Vec<u8> { let v: Vec<Vec<u8>> = g::<u8>(a); if a < b { S { x: 1 } } else { v } }\nstruct P { x: u8 }\n",
            &[],
        ),
        (
            Lang::Rust,
            "fn f<T: Copy>(x: T) {}\n",
            &[RustBound, RustTypeParams],
        ),
        (Lang::Rust, "fn f(x: u8) where u8: Copy {}\n", &[RustBound]),
    ];
    for (lang, code, want) in cases {
        assert_eq!(places(*lang, code), *want, "{code}");
    }
    let lexed = super::lex::lex(Lang::Go, "func f() { g := func() {}; g() }\n").expect("lexed");
    assert_eq!(lexed.places, vec![(0, GoTopLevel.bit())]);
}

/// The lexer masks what the tree's walk masks and finds the same SQL in
/// string literals, on every corpus snippet it accepts, each language's
/// snippets as one text, and the adversarial snippets; it accepts every
/// corpus snippet but those with JSX.
#[test]
fn the_lexer_masks_what_the_tree_masks() {
    use super::matcher::LangIndex;
    let cat = Catalogue::builtin().expect("catalogue");
    let mut indexes: std::collections::HashMap<Lang, LangIndex> = Default::default();
    let mut cases: Vec<(String, Lang, String)> = corpus::load()
        .into_iter()
        .map(|s| (s.id, s.lang, s.code))
        .collect();
    add_each_language_as_one_text(&mut cases);
    for (i, (lang, code)) in tricky().into_iter().enumerate() {
        cases.push((format!("tricky {i}"), lang, code.to_string()));
    }
    let mut refused = Vec::new();
    let mut failures = Vec::new();
    for (id, lang, code) in &cases {
        let index = indexes
            .entry(*lang)
            .or_insert_with(|| LangIndex::build(&cat, *lang));
        let (lexed, tree) = index.masks(code);
        match lexed {
            None => refused.push(id.clone()),
            Some(lexed) if lexed != tree => {
                failures.push(format!(
                    "{id}:\n--- lexer\n{}\n{:?}\n--- tree\n{}\n{:?}",
                    lexed.0, lexed.1, tree.0, tree.1
                ));
            }
            Some(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // Only JSX is refused (parsed whole, as before).
    for (id, _, code) in &cases {
        if refused.contains(id) {
            assert!(code.contains("</") || code.contains("/>"), "{id} refused");
        }
    }
    assert!(refused.len() < 10, "{refused:?}");
}

/// A rule's markers are held by every top-level item (as the lexer cuts
/// them) in which the rule matches, parsed alone, over the corpus and the
/// adversarial snippets: an item without one is rightly not parsed.
#[test]
fn markers_are_held_by_every_match() {
    use super::matcher::{holds_one, holds_twice};
    let cat = Catalogue::builtin().expect("catalogue");
    let mut texts: Vec<(Lang, String)> = corpus::load()
        .into_iter()
        .map(|s| (s.lang, s.code))
        .collect();
    texts.extend(tricky().into_iter().map(|(l, c)| (l, c.to_string())));
    let (mut matched, mut placed) = (0, 0);
    for (lang, code) in &texts {
        let Some(lexed) = super::lex::lex(*lang, code) else {
            continue;
        };
        let view = super::matcher::without_comments(code, &lexed);
        let mut bounds = lexed.chunks.clone();
        bounds.push(code.len());
        let mut parser = tree_sitter::Parser::new();
        parser.set_language(&lang.grammar()).expect("grammar");
        for w in bounds.windows(2) {
            let part = &code[w[0]..w[1]];
            let tree = parser.parse(part, None).expect("tree");
            // As the tagger looks: comments blanked, spacing normalized.
            let hay = super::matcher::normalize(&view[w[0]..w[1]], lang.case_insensitive());
            for rule in rules::rules(*lang).filter(|r| cat.contains(r.concept)) {
                let query = tree_sitter::Query::new(&lang.grammar(), rule.query).expect("query");
                let mut cursor = tree_sitter::QueryCursor::new();
                let mut matches = cursor.matches(&query, tree.root_node(), part.as_bytes());
                if tree_sitter::StreamingIterator::next(&mut matches).is_some() {
                    matched += 1;
                    assert!(
                        holds_one(rule.markers, &hay),
                        "{:?} matches without a marker {:?} in:\n{part}",
                        rule.query,
                        rule.markers
                    );
                    let twice: Vec<&str> = rule
                        .also
                        .iter()
                        .copied()
                        .filter(|w| rule.markers.contains(w))
                        .collect();
                    let once: Vec<&str> = rule
                        .also
                        .iter()
                        .copied()
                        .filter(|w| !rule.markers.contains(w))
                        .collect();
                    assert!(
                        rule.also.is_empty()
                            || holds_one(&once, &hay)
                            || twice.iter().any(|w| holds_twice(w, &hay)),
                        "{:?} matches without one of {:?} in:\n{part}",
                        rule.query,
                        rule.also
                    );
                    if let Some(place) = rule.place {
                        assert!(
                            lexed
                                .places
                                .iter()
                                .any(|(at, bit)| (w[0]..w[1]).contains(at) && *bit == place.bit()),
                            "{:?} matches where the lexer saw no {place:?} in:\n{part}",
                            rule.query,
                        );
                        placed += 1;
                    }
                }
            }
        }
    }
    assert!(matched > 300, "{matched}");
    assert!(placed > 10, "{placed}");
}

/// Fragments that trip a lexer: every language's quotes, comment markers,
/// raw and template literals, brackets, escapes, multi-byte characters,
/// and words that rules and imports look for.
const FRAGMENTS: &[&str] = &[
    "\"",
    "'",
    "`",
    "r#\"",
    "\"#",
    "b'",
    "f\"",
    "\"\"\"",
    "'''",
    "/*",
    "*/",
    "//",
    "#",
    "--",
    "${",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "<",
    ">",
    ";",
    ":",
    "|",
    "&",
    "/",
    "\\",
    "\n",
    "\n\n",
    " ",
    "\t",
    "$$",
    "$tag$",
    "'a",
    "'_",
    "é",
    "😀",
    "\u{0}",
    "async ",
    "await ",
    "fn f",
    "def f",
    "impl<T> X for Y",
    "where T: Clone",
    "func (s *S) ",
    "SELECT a FROM t JOIN u ON true",
    "WITH x AS (",
    "OVER (PARTITION BY a)",
    "import x from \"react\"",
    "use std::sync::Arc;",
    "from typing import Protocol",
    "import \"context\"",
    "</div>",
    "<div>",
    "=>",
    "extends ",
    "else",
    "except",
    "BEGIN",
    "END",
    "x",
    "1",
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]

    /// Whatever the text, in every language, nothing panics and only
    /// catalogue concepts are tagged; where the text parses without an
    /// error, the tags are those of the whole text parsed with every rule
    /// and term. (Where the tree holds an error, the two may rightly
    /// differ: the lexer masks `'a'` in SQL, or a `//` comment through a
    /// NUL byte, where the tree's error recovery kept them. The masks
    /// themselves are compared on the corpus and the adversarial snippets
    /// by `the_lexer_masks_what_the_tree_masks`: on random text they
    /// differ in ways no tag sees, such as Python's backticks.)
    #[test]
    fn random_fragments_never_panic_and_tag_as_every_rule_did_where_valid(
        picks in proptest::collection::vec(0..FRAGMENTS.len(), 0..60),
    ) {
        use super::matcher::LangIndex;
        let code: String = picks.iter().map(|&i| FRAGMENTS[i]).collect();
        let cat = Catalogue::builtin().expect("catalogue");
        for lang in Lang::ALL {
            let mut index = LangIndex::build(&cat, lang);
            let (mut fast, mut all) = (Concepts::new(), Concepts::new());
            let sql_fast = index.tag(&code, &mut fast);
            let sql_all = index.tag_with_all(&cat, &code, &mut all);
            for slug in &fast {
                proptest::prop_assert!(cat.contains(slug), "{} from {:?}", slug, code);
            }
            let mut parser = tree_sitter::Parser::new();
            parser.set_language(&lang.grammar()).expect("grammar");
            let valid = parser
                .parse(&code, None)
                .is_some_and(|t| !t.root_node().has_error());
            if !valid {
                continue;
            }
            proptest::prop_assert_eq!(fast, all, "{:?} tags {:?}", lang, code);
            proptest::prop_assert_eq!(sql_fast, sql_all, "{:?} SQL {:?}", lang, code);
        }
    }
}
