//! Asking, grading and recording checks against a real local store
//! (SQLCipher in a temporary home), offline: the shipped bank answers.

use chrono::{Duration, Utc};

use super::*;
use crate::agent::home::Home;
use crate::agent::observe::Observation;
use crate::skill::catalogue::Catalogue;
use crate::skill::delta::Transition;

fn home() -> (tempfile::TempDir, Home) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = Home::at(tmp.path().join("agent"));
    (tmp, home)
}

fn bank() -> Bank {
    Bank::builtin(&Catalogue::builtin().expect("catalogue")).expect("bank")
}

fn choice(n: usize, correct: usize) -> ServedCheck {
    ServedCheck {
        id: "git-rebase-1".into(),
        concept: "git-rebase".into(),
        kind: "choice".into(),
        prompt: "p".into(),
        options: Some((0..n).map(|i| format!("option {i}")).collect()),
        answer: ServedKey {
            correct: Some(correct),
            accepted: None,
        },
        explanation: "e".into(),
        source: "bank".into(),
    }
}

#[test]
fn replies_are_read_as_option_numbers_or_letters_or_words() {
    let c = choice(4, 1);
    assert_eq!(parse_reply(&c, " 2 ").expect("number"), Reply::Choice(1));
    assert_eq!(parse_reply(&c, "D").expect("letter"), Reply::Choice(3));
    for bad in ["0", "5", "e", "two", "", "   "] {
        let e = parse_reply(&c, bad).expect_err(bad).to_string();
        assert!(e.contains("1 to 4") || e.contains("empty"), "{bad}: {e}");
    }
    let short = ServedCheck {
        kind: "short".into(),
        options: None,
        answer: ServedKey {
            correct: None,
            accepted: Some(vec!["--continue".into()]),
        },
        ..c
    };
    assert_eq!(
        parse_reply(&short, "git rebase --continue").expect("text"),
        Reply::Text("git rebase --continue".into())
    );
    let long = "x".repeat(MAX_ANSWER + 1);
    assert!(parse_reply(&short, &long).is_err());
}

#[test]
fn a_served_check_without_a_usable_key_is_refused() {
    assert!(choice(4, 3).to_check().is_ok());
    for bad in [
        choice(4, 4),
        choice(1, 0),
        ServedCheck {
            options: None,
            ..choice(4, 0)
        },
        ServedCheck {
            kind: "essay".into(),
            ..choice(4, 0)
        },
        ServedCheck {
            kind: "short".into(),
            answer: ServedKey {
                correct: None,
                accepted: Some(vec![]),
            },
            ..choice(4, 0)
        },
    ] {
        let e = bad.to_check().expect_err("refused").to_string();
        assert!(e.contains("git-rebase-1"), "{e}");
    }
}

#[test]
fn the_bank_serves_each_check_of_a_concept_before_repeating_one() {
    let (_tmp, home) = home();
    let mut store = LocalStore::open(&home).expect("store");
    let bank = bank();
    let n = bank.for_concept("git-rebase").len();
    assert!(n >= 3);
    let mut seen = std::collections::BTreeSet::new();
    let t = Utc::now() - Duration::hours(1);
    for i in 0..n {
        let c = from_bank(&store, &bank, "git-rebase").expect("a check");
        assert!(
            seen.insert(c.id.clone()),
            "{} repeated before all were asked",
            c.id
        );
        store
            .offer_check(
                "git-rebase",
                &c.id,
                Via::Terminal,
                None,
                t + Duration::seconds(i as i64),
            )
            .expect("offer");
    }
    let again = from_bank(&store, &bank, "git-rebase").expect("a check");
    assert_eq!(
        again.id,
        bank.for_concept("git-rebase")[0].id,
        "the least recently asked"
    );
    let e = from_bank(&store, &bank, "x-our-own").expect_err("no bank check");
    assert!(e.to_string().contains("from the appliance"), "{e}");
}

#[tokio::test]
async fn offline_a_choice_is_graded_by_its_key_recorded_queued_and_the_concept_not_due_again() {
    let (_tmp, home) = home();
    let mut store = LocalStore::open(&home).expect("store");
    let now = Utc::now();
    store
        .record(
            "t",
            "1",
            &[Observation {
                concept: "git-commits-and-staging".into(),
                transition: Transition::Seen,
                at: now - Duration::hours(2),
            }],
        )
        .expect("record");
    let bank = bank();
    let cx = Context {
        bank: &bank,
        offline: true,
        via: Via::Terminal,
    };
    // Met once: nothing is due yet.
    let Ask::Nothing(why) = ask(&mut store, &cx, Target::Due, now).await.expect("ask") else {
        panic!("nothing should be due");
    };
    assert!(why.contains("Nothing is due"), "{why}");
    // Asked for by name, offline: the bank's check.
    let Ask::Asked(a) = ask(
        &mut store,
        &cx,
        Target::Asked("git-commits-and-staging"),
        now,
    )
    .await
    .expect("ask") else {
        panic!("asked by name");
    };
    assert_eq!(a.check.source, "bank");
    assert!(a.note.as_deref().is_some_and(|n| n.contains("--offline")));
    let key = a.check.to_check().expect("key");
    let reply = match &key.answer {
        crate::checks::Answer::Choice { correct, .. } => Reply::Choice(*correct),
        crate::checks::Answer::Short { accepted } => Reply::Text(accepted[0].clone()),
    };
    let done = answer(&mut store, &a.check, a.offer, &reply, now)
        .await
        .expect("graded");
    assert_eq!((done.graded.grade, done.graded.right), (3, true));
    assert_eq!(done.graded.graded_by, "key");
    assert_eq!(done.recorded.transition, Transition::CheckPassed);
    // Queued for sync exactly as a delta with its grade.
    let queued = store.outbox(10).expect("outbox");
    let d = queued
        .iter()
        .find(|d| d.id == done.recorded.id)
        .expect("queued");
    assert_eq!(
        (d.concept.as_str(), d.transition.as_str(), d.grade),
        ("git-commits-and-staging", "check_passed", Some(3))
    );
    // The folded state has a card now; the concept is not due.
    let p = plan(&store, now).expect("plan");
    assert!(p.due.iter().all(|d| d.concept != "git-commits-and-staging"));
    assert_eq!(p.offered_today, 1);
    // The offer is closed: it cannot be answered twice.
    assert!(waiting(&mut store, &a.check.id, now).is_err());
}

#[tokio::test]
async fn a_wrong_choice_records_a_failed_check_and_words_need_the_appliance() {
    let (_tmp, home) = home();
    let mut store = LocalStore::open(&home).expect("store");
    let now = Utc::now();
    let bank = bank();
    let cx = Context {
        bank: &bank,
        offline: true,
        via: Via::Mcp,
    };
    let Ask::Asked(a) = ask(&mut store, &cx, Target::Asked("git-rebase"), now)
        .await
        .expect("ask")
    else {
        panic!("asked");
    };
    let (kept, offer) = waiting(&mut store, &a.check.id, now).expect("waits for its answer");
    assert_eq!((kept.clone(), offer), (a.check.clone(), a.offer));
    let key = kept.to_check().expect("key");
    let reply = match &key.answer {
        crate::checks::Answer::Choice { correct, options } => {
            Reply::Choice((correct + 1) % options.len())
        }
        crate::checks::Answer::Short { .. } => Reply::Text("certainly not this".into()),
    };
    let result = answer(&mut store, &kept, offer, &reply, now).await;
    match &key.answer {
        crate::checks::Answer::Choice { .. } => {
            let done = result.expect("graded");
            assert_eq!((done.graded.grade, done.graded.right), (1, false));
            assert_eq!(done.recorded.transition, Transition::CheckFailed);
            assert_eq!(done.graded.feedback, "Not quite.");
            assert_eq!(done.graded.right_answer, kept.right_answer());
            let shown = super::present::result(&done);
            assert!(
                shown.contains(&format!(
                    "Not quite. (grade 1 again, graded by the check's key)\nThe answer: {}\n",
                    kept.right_answer()
                )),
                "{shown}"
            );
        }
        crate::checks::Answer::Short { .. } => {
            let e = result.expect_err("words need the appliance").to_string();
            assert!(e.contains("nothing was recorded"), "{e}");
            assert_eq!(store.outbox_len().expect("len"), 0);
        }
    }
    // Free text to a short check, not paired: not graded, nothing recorded.
    let short = bank
        .checks()
        .find(|c| matches!(c.answer, crate::checks::Answer::Short { .. }))
        .expect("a short-answer check");
    let served = ServedCheck::from_bank(short);
    let before = store.outbox_len().expect("len");
    let e = grade(
        &mut store,
        &served,
        &Reply::Text("in my own words, marker-7d1".into()),
    )
    .await
    .expect_err("no appliance to grade words")
    .to_string();
    assert!(e.contains("not paired"), "{e}");
    assert!(!e.contains("marker-7d1"), "the answer is never echoed: {e}");
    assert_eq!(store.outbox_len().expect("len"), before);
}

#[tokio::test]
async fn the_coding_agent_may_not_offer_while_snoozed_over_the_limit_or_within_the_cool_down() {
    let (_tmp, home) = home();
    let mut store = LocalStore::open(&home).expect("store");
    let now = Utc::now();
    let bank = bank();
    let cx = Context {
        bank: &bank,
        offline: true,
        via: Via::Mcp,
    };
    let offered = |r: Ask| matches!(r, Ask::Asked(_));
    assert!(offered(
        ask(&mut store, &cx, Target::Offered("git-merge"), now)
            .await
            .expect("ask")
    ));
    // The same concept again within the day: refused with the reason.
    let Ask::Nothing(why) = ask(&mut store, &cx, Target::Offered("git-merge"), now)
        .await
        .expect("ask")
    else {
        panic!("cooling down");
    };
    assert!(why.contains("last 24 hours"), "{why}");
    // The engineer may still ask for it themselves.
    assert!(offered(
        ask(&mut store, &cx, Target::Asked("git-merge"), now)
            .await
            .expect("ask")
    ));
    store
        .snooze(Some(now + Duration::hours(1)))
        .expect("snooze");
    let Ask::Nothing(why) = ask(&mut store, &cx, Target::Offered("git-remotes"), now)
        .await
        .expect("ask")
    else {
        panic!("snoozed");
    };
    assert!(why.contains("snoozed"), "{why}");
    store.snooze(None).expect("unsnooze");
    // Two offers so far; a limit of 2 holds the third.
    store.set_daily_limit(2).expect("limit");
    assert_eq!(store.check_settings().expect("settings").daily_limit, 2);
    let Ask::Nothing(why) = ask(&mut store, &cx, Target::Offered("git-remotes"), now)
        .await
        .expect("ask")
    else {
        panic!("over the limit");
    };
    assert!(why.contains("daily limit"), "{why}");
    // A running turn holds it too.
    store.set_daily_limit(10).expect("limit");
    turn::note(home.dir(), &turn::Signal::Running("claude-code:s".into()));
    let Ask::Nothing(why) = ask(&mut store, &cx, Target::Offered("git-remotes"), now)
        .await
        .expect("ask")
    else {
        panic!("mid-turn");
    };
    assert!(why.contains("middle of a turn"), "{why}");
    turn::note(home.dir(), &turn::Signal::Ended("claude-code:s".into()));
    assert!(offered(
        ask(&mut store, &cx, Target::Offered("git-remotes"), now)
            .await
            .expect("ask")
    ));
    // An unknown concept names itself and where to look.
    let e = ask(&mut store, &cx, Target::Offered("no-such-thing"), now)
        .await
        .expect_err("unknown")
        .to_string();
    assert!(
        e.contains("no-such-thing") && e.contains("agent status"),
        "{e}"
    );
}

#[test]
fn a_grade_outside_the_scale_or_an_unknown_concept_records_nothing() {
    let (_tmp, home) = home();
    let mut store = LocalStore::open(&home).expect("store");
    let now = Utc::now();
    for g in [0u8, 5] {
        assert!(store.record_check("git-rebase", g, None, now).is_err());
    }
    assert!(store.record_check("no-such-concept", 3, None, now).is_err());
    assert_eq!(store.outbox_len().expect("len"), 0);
    let r = store
        .record_check("git-rebase", 2, None, now)
        .expect("hard is a pass");
    assert_eq!((r.transition, r.grade), (Transition::CheckPassed, 2));
}
