//! Tests of the shipped bank (coverage, well-formedness, no duplicates,
//! answer keys) and of the validation refusing broken banks.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use toml_edit::{ArrayOfTables, DocumentMut, value};

use super::*;
use crate::checks::Response;

fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| Catalogue::builtin().expect("the shipped catalogue is valid"))
}

fn bank() -> &'static Bank {
    static BANK: OnceLock<Bank> = OnceLock::new();
    BANK.get_or_init(|| {
        Bank::builtin(catalogue()).unwrap_or_else(|e| panic!("the shipped bank is valid: {e}"))
    })
}

#[test]
fn every_concept_of_the_catalogue_has_at_least_three_checks() {
    let cat = catalogue();
    let bank = bank();
    for d in &cat.domains {
        assert!(
            FILES.iter().any(|(name, _)| *name == d.slug),
            "{}: no checks file",
            d.slug
        );
    }
    assert_eq!(FILES.len(), cat.domains.len(), "one file per domain");
    let thin: Vec<_> = cat
        .concepts()
        .filter(|c| bank.for_concept(&c.slug).len() < MIN_PER_CONCEPT)
        .map(|c| c.slug.as_str())
        .collect();
    assert!(
        thin.is_empty(),
        "concepts with fewer than 3 checks: {thin:?}"
    );
    assert!(bank.concepts().all(|c| cat.contains(c)));
    assert!(
        bank.len() >= MIN_PER_CONCEPT * cat.len(),
        "{} checks",
        bank.len()
    );
}

#[test]
fn every_check_is_well_formed_and_its_key_grades_right() {
    let bank = bank();
    assert!(!bank.is_empty());
    for c in bank.checks() {
        assert!(c.id.starts_with(&format!("{}-", c.concept)), "{}", c.id);
        assert_eq!(bank.get(&c.id), Some(c), "lookup by id");
        assert!(!c.explanation.trim().is_empty(), "{}", c.id);
        match &c.answer {
            Answer::Choice { options, correct } => {
                assert!((MIN_OPTIONS..=MAX_OPTIONS).contains(&options.len()));
                assert!(*correct < options.len(), "{}: key out of range", c.id);
                assert!(c.is_right(Response::Choice(*correct)), "{}", c.id);
                let right = (0..options.len()).filter(|i| c.is_right(Response::Choice(*i)));
                assert_eq!(right.count(), 1, "{}: exactly one right option", c.id);
                let distinct: HashSet<_> = options.iter().map(|o| squash(o)).collect();
                assert_eq!(distinct.len(), options.len(), "{}", c.id);
            }
            Answer::Short { accepted } => {
                for a in accepted {
                    assert!(c.is_right(Response::Text(a)), "{}: `{a}`", c.id);
                    assert!(c.is_right(Response::Text(&a.to_uppercase())), "{}", c.id);
                }
                assert!(!c.is_right(Response::Text("")), "{}", c.id);
            }
        }
    }
}

#[test]
fn ids_and_prompts_are_unique_and_every_table_is_loaded() {
    let bank = bank();
    let tables: usize = FILES
        .iter()
        .map(|(_, text)| {
            let doc: DocumentMut = text.parse().expect("valid TOML");
            doc["check"]
                .as_array_of_tables()
                .map_or(0, ArrayOfTables::len)
        })
        .sum();
    assert_eq!(bank.len(), tables, "every [[check]] is loaded once");
    let ids: HashSet<_> = bank.checks().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), bank.len());
    let prompts: HashSet<_> = bank.checks().map(|c| squash(&c.prompt)).collect();
    assert_eq!(prompts.len(), bank.len());
}

#[test]
fn right_answers_are_spread_over_the_positions() {
    // A reader who always picks the same position must not score well.
    let bank = bank();
    let cat = catalogue();
    for (domain, _) in FILES {
        let mut at: HashMap<usize, usize> = HashMap::new();
        let mut total = 0;
        for c in bank.checks() {
            let in_domain = cat.get(&c.concept).is_some_and(|k| k.domain == *domain);
            if let (true, Answer::Choice { correct, .. }) = (in_domain, &c.answer) {
                *at.entry(*correct).or_default() += 1;
                total += 1;
            }
        }
        let most = at.values().max().copied().unwrap_or(0);
        assert!(most * 2 <= total, "{domain}: {at:?} of {total}");
    }
}

fn git_text() -> &'static str {
    let (_, text) = FILES
        .iter()
        .find(|(n, _)| *n == "git")
        .expect("git is written");
    text
}

/// The shipped `git.toml`, edited by `edit`, loaded on its own.
fn load_with_git(edit: impl FnOnce(&mut ArrayOfTables)) -> Result<Bank, BankError> {
    let mut doc: DocumentMut = git_text().parse().expect("valid TOML");
    edit(doc["check"].as_array_of_tables_mut().expect("[[check]]"));
    let edited = doc.to_string();
    Bank::load(&[("git", edited.as_str())], catalogue())
}

fn refused(edit: impl FnOnce(&mut ArrayOfTables)) -> BankError {
    load_with_git(edit).expect_err("the broken bank is refused")
}

fn find<'a>(checks: &'a mut ArrayOfTables, id: &str) -> &'a mut toml_edit::Table {
    checks
        .iter_mut()
        .find(|t| t["id"].as_str() == Some(id))
        .expect("the check exists")
}

#[test]
fn an_unedited_copy_loads() {
    let bank = load_with_git(|_| {}).expect("unchanged");
    let shipped = self::bank()
        .checks()
        .filter(|c| c.concept.starts_with("git-"));
    assert_eq!(bank.len(), shipped.count());
}

#[test]
fn a_concept_without_checks_is_refused() {
    let err = refused(|checks| checks.retain(|t| t["concept"].as_str() != Some("git-rebase")));
    assert_eq!(err.file, "git");
    let concept = "git-rebase".to_string();
    assert_eq!(err.problem, Problem::TooFewChecks { concept, have: 0 });
    let msg = err.to_string();
    assert!(msg.contains("config/checks/git.toml") && msg.contains("git-rebase"));
    assert!(msg.contains("write at least 3"), "{msg}");
}

#[test]
fn a_concept_with_two_checks_is_refused() {
    let err = refused(|checks| checks.retain(|t| t["id"].as_str() != Some("git-rebase-2")));
    let concept = "git-rebase".to_string();
    assert_eq!(err.problem, Problem::TooFewChecks { concept, have: 2 });
}

#[test]
fn an_answer_index_out_of_range_is_refused() {
    let err = refused(|checks| {
        find(checks, "git-merge-1")["answer"] = value(7_i64);
    });
    assert_eq!(err.check.as_deref(), Some("git-merge-1"));
    assert!(matches!(
        err.problem,
        Problem::AnswerOutOfRange { answer: 7, .. }
    ));
    let msg = err.to_string();
    assert!(
        msg.contains("config/checks/git.toml, check `git-merge-1`"),
        "{msg}"
    );
    assert!(msg.contains("point it at the right option"), "{msg}");
}

#[test]
fn a_duplicate_id_is_refused() {
    let err = refused(|checks| {
        find(checks, "git-merge-2")["id"] = value("git-merge-1");
    });
    assert_eq!(err.check.as_deref(), Some("git-merge-1"));
    assert_eq!(err.problem, Problem::DuplicateId);
    assert!(err.to_string().contains("next free number"));
}

#[test]
fn a_duplicate_prompt_is_refused() {
    let err = refused(|checks| {
        let p = find(checks, "git-merge-1")["prompt"].clone();
        find(checks, "git-merge-2")["prompt"] = p;
    });
    assert_eq!(err.check.as_deref(), Some("git-merge-2"));
    assert_eq!(err.problem, Problem::DuplicatePrompt("git-merge-1".into()));
}

#[test]
fn unknown_and_foreign_concepts_are_refused() {
    let err = refused(|checks| {
        let t = find(checks, "git-merge-1");
        t["concept"] = value("git-merging");
        t["id"] = value("git-merging-1");
    });
    assert_eq!(err.problem, Problem::UnknownConcept("git-merging".into()));
    let err = refused(|checks| {
        let t = find(checks, "git-merge-1");
        t["concept"] = value("rust-borrowing");
        t["id"] = value("rust-borrowing-1");
    });
    assert!(matches!(err.problem, Problem::ForeignConcept { ref domain, .. } if domain == "rust"));
}

#[test]
fn malformed_checks_are_refused() {
    let err = refused(|checks| {
        find(checks, "git-merge-1")["id"] = value("merge-one");
    });
    assert!(matches!(err.problem, Problem::BadId { .. }), "{err}");

    let err = refused(|checks| {
        let t = find(checks, "git-merge-1");
        let first = t["options"].as_array().expect("options").get(0).cloned();
        let opts = t["options"].as_array_mut().expect("options");
        opts.replace(1, first.expect("one option"));
    });
    assert!(matches!(err.problem, Problem::DuplicateOption(..)), "{err}");

    let err = refused(|checks| {
        let t = find(checks, "git-merge-1");
        let opts = t["options"].as_array_mut().expect("options");
        while opts.len() > 2 {
            opts.remove(opts.len() - 1);
        }
        t["answer"] = value(0_i64);
    });
    assert_eq!(err.problem, Problem::OptionCount(2));

    let err = refused(|checks| {
        find(checks, "git-merge-1").remove("answer");
    });
    assert_eq!(err.problem, Problem::MissingAnswer);

    let err = refused(|checks| {
        find(checks, "git-merge-1")["accepted"] = value(toml_edit::Array::from_iter(["x"]));
    });
    assert_eq!(err.problem, Problem::Shape);

    let err = refused(|checks| {
        find(checks, "git-merge-1")["explanation"] = value("  ");
    });
    assert_eq!(
        err.problem,
        Problem::Empty {
            field: "explanation"
        }
    );

    let err = refused(|checks| {
        find(checks, "git-merge-1")["prompt"] = value("x".repeat(MAX_PROMPT + 1));
    });
    assert!(matches!(
        err.problem,
        Problem::TooLong {
            field: "prompt",
            ..
        }
    ));

    let err = refused(|checks| {
        find(checks, "git-merge-3")["accepted"] =
            value(toml_edit::Array::from_iter(["Two", "two."]));
    });
    assert!(
        matches!(err.problem, Problem::DuplicateAccepted(..)),
        "{err}"
    );

    let err = refused(|checks| {
        find(checks, "git-merge-3")["accepted"] = value(toml_edit::Array::from_iter(["??"]));
    });
    assert_eq!(err.problem, Problem::Unmatchable("??".into()));
}

#[test]
fn unknown_keys_and_wrong_domains_are_refused() {
    let err = refused(|checks| {
        find(checks, "git-merge-1")["hint"] = value("try harder");
    });
    assert!(
        matches!(err.problem, Problem::Parse(ref m) if m.contains("hint")),
        "{err}"
    );

    let files = [("git", "domain = \"rust\"\n")];
    let err = Bank::load(&files, catalogue()).expect_err("wrong domain");
    assert!(matches!(err.problem, Problem::WrongDomain { .. }), "{err}");

    let files = [("gits", "domain = \"gits\"\n")];
    let err = Bank::load(&files, catalogue()).expect_err("no such domain");
    assert_eq!(err.problem, Problem::UnknownDomain);
}

#[test]
fn a_missing_domain_file_is_refused() {
    let files: Vec<_> = FILES.iter().copied().filter(|(n, _)| *n != "git").collect();
    let err = every_domain_has_a_file(&files, catalogue()).expect_err("git has no file");
    assert_eq!(err.problem, Problem::MissingDomain("git".into()));
    assert!(err.to_string().contains("write config/checks/git.toml"));
}

#[test]
fn lookups_answer_by_concept_and_id() {
    let bank = bank();
    let merge = bank.for_concept("git-merge");
    assert!(merge.len() >= 3);
    assert_eq!(merge[0].id, "git-merge-1");
    assert!(merge.iter().all(|c| c.concept == "git-merge"));
    assert!(bank.for_concept("x-our-own-thing").is_empty());
    assert!(bank.get("git-merge-999").is_none());
}
