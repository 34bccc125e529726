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
    let mut whole: std::collections::BTreeMap<Lang, String> = Default::default();
    for (_, lang, code) in &cases {
        let text = whole.entry(*lang).or_default();
        text.push_str(code);
        text.push('\n');
    }
    for (lang, text) in whole {
        cases.push((format!("{lang:?} snippets as one text"), lang, text));
    }
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
