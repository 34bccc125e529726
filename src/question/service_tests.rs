//! Unit tests of the question service's pure parts: keyed grading and
//! drawing from the pool. The service against a database and a model
//! server is tested in `tests/it/checks_service.rs`.

use super::*;

fn choice() -> Check {
    Check {
        id: "x-1".into(),
        concept: "x".into(),
        prompt: "Which?".into(),
        answer: Answer::Choice {
            options: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            correct: 1,
        },
        explanation: "Because b.".into(),
    }
}

fn short() -> Check {
    Check {
        answer: Answer::Short {
            accepted: vec!["sparse checkout".into()],
        },
        ..choice()
    }
}

fn req(choice: Option<usize>, answer: Option<&str>) -> GradeRequest {
    GradeRequest {
        check_id: "x-1".into(),
        choice,
        answer: answer.map(str::to_string),
    }
}

#[test]
fn choices_and_matching_short_answers_are_graded_by_the_key() {
    let right = keyed(&choice(), &req(Some(1), None)).expect("valid");
    let wrong = keyed(&choice(), &req(Some(0), None)).expect("valid");
    let Verdict::Keyed(r) = right else {
        panic!("keyed")
    };
    let Verdict::Keyed(w) = wrong else {
        panic!("keyed")
    };
    assert_eq!((r.grade, w.grade), (RIGHT, WRONG));
    assert!(r.feedback.contains("Because b.") && r.graded_by == "key");
    let Verdict::Keyed(s) = keyed(&short(), &req(None, Some("Sparse-Checkout"))).expect("valid")
    else {
        panic!("keyed")
    };
    assert_eq!(s.grade, RIGHT);
}

#[test]
fn free_text_the_key_cannot_decide_needs_the_model() {
    for c in [choice(), short()] {
        assert_eq!(
            keyed(&c, &req(None, Some("in my own words: it narrows the tree"))).expect("valid"),
            Verdict::NeedsModel
        );
    }
}

#[test]
fn requests_that_do_not_fit_the_check_are_refused() {
    for (c, r, why) in [
        (choice(), req(Some(4), None), "not an option"),
        (choice(), req(Some(1), Some("b")), "exactly one"),
        (choice(), req(None, None), "exactly one"),
        (short(), req(Some(0), None), "short-answer"),
        (short(), req(None, Some("  ")), "1 to"),
    ] {
        let e = keyed(&c, &r).expect_err(why).to_string();
        assert!(e.contains(why), "{why}: {e}");
    }
    let long = "x".repeat(MAX_ANSWER + 1);
    assert!(keyed(&short(), &req(None, Some(&long))).is_err());
}

#[test]
fn the_pool_draws_from_bank_and_generated_checks_and_wants_more_until_full() {
    use rand::SeedableRng;
    let g = |i: usize| GeneratedCheck {
        id: format!("gen-{i}"),
        concept: "x".into(),
        prompt: "Which one?".into(),
        options: vec!["a".into(), "b".into(), "c".into(), "d".into()],
        correct: 0,
        explanation: "a".into(),
        model: "m".into(),
        prompt_sha256: "h".into(),
        created_at: DateTime::UNIX_EPOCH,
        retired_at: None,
    };
    let pool = |n: usize| Pool {
        brief: Brief {
            slug: "x".into(),
            title: "X".into(),
            summary: "x".into(),
            prerequisites: vec![],
        },
        bank: vec![choice()],
        generated: (0..n).map(g).collect(),
    };
    assert!(pool(GENERATE_UNTIL - 1).wants_generation());
    assert!(!pool(GENERATE_UNTIL).wants_generation());
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut sources = std::collections::BTreeSet::new();
    for _ in 0..50 {
        let s = pool(2).pick(&mut rng).expect("a check");
        sources.insert(matches!(s.source, Source::Bank));
    }
    assert_eq!(sources.len(), 2, "both kinds are drawn");
    let empty = Pool {
        bank: vec![],
        ..pool(0)
    };
    assert!(empty.pick(&mut rng).is_none());
}
