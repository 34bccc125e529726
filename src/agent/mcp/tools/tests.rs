use super::*;
use crate::agent::home::Home;
use crate::agent::observe::Observation;
use crate::skill::delta::Transition;
use chrono::TimeZone;

fn store(dir: &std::path::Path) -> LocalStore {
    LocalStore::open(&Home::at(dir.join("k"))).expect("store")
}

fn tagger(s: &LocalStore) -> Tagger {
    Tagger::new(s.catalogue().expect("catalogue"))
}

#[test]
fn hints_name_languages_extensions_and_files() {
    let cat = Catalogue::builtin().expect("catalogue");
    let read = |h| ReadAs::from_hint(h, &cat);
    assert_eq!(read(None), Ok(ReadAs::Markdown));
    assert_eq!(read(Some("  ")), Ok(ReadAs::Markdown));
    assert_eq!(read(Some("Rust")), Ok(ReadAs::Code(Lang::Rust)));
    assert_eq!(read(Some(".py")), Ok(ReadAs::Code(Lang::Python)));
    assert_eq!(read(Some("ts")), Ok(ReadAs::Code(Lang::TypeScript)));
    assert_eq!(read(Some("src/app.tsx")), Ok(ReadAs::Code(Lang::Tsx)));
    assert_eq!(read(Some("db/0001.sql")), Ok(ReadAs::Code(Lang::Sql)));
    let err = read(Some("cobol")).expect_err("unknown");
    assert!(
        err.contains("`cobol`") && err.contains("rust, python"),
        "{err}"
    );
}

#[test]
fn snippets_must_be_present_and_bounded() {
    let err = check_snippet(" \n\t").expect_err("empty");
    assert!(err.contains("empty"), "{err}");
    let big = "x".repeat(MAX_SNIPPET_BYTES + 1);
    let err = check_snippet(&big).expect_err("too large");
    assert!(
        err.contains("262145 bytes") && err.contains("262144"),
        "{err}"
    );
    assert!(check_snippet(&"x".repeat(MAX_SNIPPET_BYTES)).is_ok());
}

#[test]
fn tagging_a_rust_snippet_names_its_concepts_with_titles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(dir.path());
    let mut t = tagger(&s);
    let code = "fn longest<'a>(a: &'a str, b: &'a str) -> &'a str { if a.len() > b.len() { a } else { b } }";
    let tagged = tag(&mut t, code, Some("rust")).expect("tags");
    assert_eq!(tagged.read_as, "rust");
    let lifetimes = tagged
        .concepts
        .iter()
        .find(|c| c.slug == "rust-lifetimes")
        .expect("lifetimes shown");
    assert!(!lifetimes.title.is_empty() && !lifetimes.domain.is_empty());
    // The same words in a comment show nothing.
    let comment = tag(&mut t, "// fn f<'a>(x: &'a str) -> &'a str", Some(".rs")).expect("tags");
    assert!(comment.concepts.is_empty(), "{comment:?}");
}

#[test]
fn a_profile_reports_state_recall_and_unknown_slugs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = store(dir.path());
    let day = |d| {
        chrono::Utc
            .with_ymd_and_hms(2026, 3, d, 9, 0, 0)
            .single()
            .expect("t")
    };
    let obs = |c: &str, tr, at| Observation {
        concept: c.into(),
        transition: tr,
        at,
    };
    s.record(
        "test",
        "1",
        &[
            obs("rust-lifetimes", Transition::Seen, day(1)),
            obs("rust-lifetimes", Transition::CheckPassed, day(2)),
            obs("rust-traits", Transition::Explained, day(2)),
        ],
    )
    .expect("record");
    let mut t = tagger(&s);
    let input = ProfileInput {
        concepts: vec![
            "rust-lifetimes".into(),
            "rust-traits".into(),
            "ds-hash-maps".into(),
            "no-such-thing".into(),
        ],
        snippet: None,
        language: None,
    };
    let p = profile(&s, &mut t, &input, day(3)).expect("profile");
    assert_eq!(p.unknown, vec!["no-such-thing".to_string()]);
    assert_eq!(p.read_as, None);
    let line = |slug: &str| {
        p.concepts
            .iter()
            .find(|c| c.slug == slug)
            .unwrap_or_else(|| panic!("{slug} in {p:?}"))
            .clone()
    };
    let lt = line("rust-lifetimes");
    assert_eq!(lt.state, "demonstrated");
    let recall = lt.recall.expect("graded, so a recall");
    assert!(recall > 0.5 && recall <= 1.0, "{recall}");
    assert_eq!(
        lt.last_activity.as_deref(),
        Some("2026-03-02T09:00:00+00:00")
    );
    assert_eq!(line("rust-traits").state, "explained");
    assert_eq!(line("rust-traits").recall, None);
    let hm = line("ds-hash-maps");
    assert_eq!(hm.state, "unseen");
    assert_eq!(hm.pitch, pitch("unseen"));
}

#[test]
fn a_profile_of_a_snippet_and_bad_profile_inputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(dir.path());
    let mut t = tagger(&s);
    let now = chrono::Utc::now();
    let input = ProfileInput {
        concepts: vec![],
        snippet: Some("WITH t AS (SELECT id FROM a) SELECT * FROM t JOIN b ON b.id = t.id".into()),
        language: Some("sql".into()),
    };
    let p = profile(&s, &mut t, &input, now).expect("profile");
    assert_eq!(p.read_as.as_deref(), Some("sql"));
    assert!(!p.concepts.is_empty());
    assert!(p.concepts.iter().all(|c| c.state == "unseen"), "{p:?}");

    let none = ProfileInput {
        concepts: vec![],
        snippet: None,
        language: None,
    };
    let err = profile(&s, &mut t, &none, now).expect_err("nothing asked");
    assert!(
        err.contains("`concepts`") && err.contains("`snippet`"),
        "{err}"
    );
    let unknown = ProfileInput {
        concepts: vec!["nope".into(), "nope".into(), "nada".into()],
        snippet: None,
        language: None,
    };
    let err = profile(&s, &mut t, &unknown, now).expect_err("only unknown");
    assert!(err.contains("`nope`, `nada`"), "{err}");
    let many = ProfileInput {
        concepts: vec!["rust-lifetimes".into(); MAX_CONCEPTS + 1],
        snippet: None,
        language: None,
    };
    let err = profile(&s, &mut t, &many, now).expect_err("too many");
    assert!(err.contains("at most 200"), "{err}");
}
