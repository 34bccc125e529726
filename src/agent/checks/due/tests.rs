use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

use super::*;
use crate::skill::delta::Transition;
use crate::skill::state::{ConceptState, Fact, fold};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("valid")
}

fn catalogue() -> Catalogue {
    Catalogue::builtin().expect("catalogue")
}

/// A concept's state folded from `(transition, minutes after t0, grade)`.
fn state(concept: &str, facts: &[(Transition, i64, Option<u8>)]) -> StateRow {
    let facts: Vec<Fact> = facts
        .iter()
        .enumerate()
        .map(|(i, (t, m, g))| Fact {
            id: format!("{i:04}"),
            transition: *t,
            at: t0() + Duration::minutes(*m),
            grade: *g,
        })
        .collect();
    StateRow {
        concept: concept.into(),
        state: if facts.is_empty() {
            ConceptState::unseen()
        } else {
            fold(&facts)
        },
    }
}

fn input<'a>(
    states: &'a [StateRow],
    met: &'a BTreeMap<String, u32>,
    catalogue: &'a Catalogue,
    offered: &'a [Offered],
) -> Input<'a> {
    Input {
        states,
        met,
        catalogue,
        offered,
        settings: Settings::default(),
        turn: None,
    }
}

fn met(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(c, n)| (c.to_string(), *n)).collect()
}

const ROOT: &str = "git-commits-and-staging";
const CHILD: &str = "git-branches";

#[test]
fn a_review_is_due_when_the_schedule_says_so_and_not_before() {
    let cat = catalogue();
    let states = [state(ROOT, &[(Transition::CheckPassed, 0, Some(3))])];
    let due_at = states[0].state.due().expect("a card");
    let m = met(&[]);
    let before = plan(
        &input(&states, &m, &cat, &[]),
        due_at - Duration::minutes(1),
    );
    assert!(before.due.is_empty(), "{before:?}");
    let after = plan(&input(&states, &m, &cat, &[]), due_at);
    assert_eq!(after.due.len(), 1);
    assert!(
        matches!(after.due[0].why, Why::Review { recall, .. } if recall > 0.85 && recall < 0.95)
    );
    assert_eq!(after.offer().len(), 1);
}

#[test]
fn a_concept_met_often_is_worth_asking_once_its_prerequisites_are_demonstrated() {
    let cat = catalogue();
    assert_eq!(
        cat.get(CHILD).expect("child").prerequisites,
        vec![ROOT.to_string()],
        "the test's premise"
    );
    let seen = |c| {
        state(
            c,
            &[
                (Transition::Seen, 0, None),
                (Transition::Explained, 5, None),
            ],
        )
    };
    let now = t0() + Duration::hours(1);
    // The root met often; the child too, but its prerequisite is not demonstrated.
    let states = [seen(ROOT), seen(CHILD)];
    let m = met(&[(ROOT, SEEN_OFTEN), (CHILD, 10)]);
    let p = plan(&input(&states, &m, &cat, &[]), now);
    let slugs: Vec<&str> = p.due.iter().map(|d| d.concept.as_str()).collect();
    assert_eq!(slugs, vec![ROOT], "roots first");
    // Met less than SEEN_OFTEN times: not yet.
    let m = met(&[(ROOT, SEEN_OFTEN - 1)]);
    assert!(plan(&input(&states, &m, &cat, &[]), now).due.is_empty());
    // Once the root is demonstrated (a passed check), the child is worth asking.
    let states = [
        state(ROOT, &[(Transition::CheckPassed, 0, Some(3))]),
        seen(CHILD),
    ];
    let m = met(&[(ROOT, 9), (CHILD, 4)]);
    let p = plan(&input(&states, &m, &cat, &[]), now);
    let slugs: Vec<&str> = p.due.iter().map(|d| d.concept.as_str()).collect();
    assert_eq!(slugs, vec![CHILD], "the root was just checked: not due");
    assert!(matches!(p.due[0].why, Why::WorthAsking { met: 4 }));
}

#[test]
fn snooze_a_running_turn_and_the_daily_limit_hold_every_offer_but_status_still_lists() {
    let cat = catalogue();
    let states = [state(ROOT, &[(Transition::Seen, 0, None)])];
    let m = met(&[(ROOT, 5)]);
    let now = t0() + Duration::hours(1);
    let mut i = input(&states, &m, &cat, &[]);
    i.settings.snoozed_until = Some(now + Duration::hours(2));
    let p = plan(&i, now);
    assert_eq!((p.due.len(), p.offerable), (1, 0));
    assert!(matches!(p.hold, Some(Hold::Snoozed { .. })));
    assert!(
        p.hold
            .expect("held")
            .to_string()
            .contains("agent snooze off")
    );
    // A snooze that ended holds nothing.
    i.settings.snoozed_until = Some(now - Duration::seconds(1));
    assert_eq!(plan(&i, now).offerable, 1);
    i.turn = Some(now - Duration::seconds(30));
    let p = plan(&i, now);
    assert!(matches!(p.hold, Some(Hold::TurnRunning { .. })), "{p:?}");
    assert_eq!(p.offerable, 0);
    i.turn = None;
    // Three offers in the last 24 hours (the default limit), of other concepts.
    let offered: Vec<Offered> = (0..3)
        .map(|h| Offered {
            concept: "git-merge".into(),
            at: now - Duration::hours(20 - h),
        })
        .collect();
    i.offered = &offered;
    let p = plan(&i, now);
    assert_eq!(p.offerable, 0);
    assert_eq!(
        p.hold,
        Some(Hold::DailyLimit {
            limit: 3,
            next_at: Some(now - Duration::hours(20) + WINDOW)
        })
    );
    // Four hours later the oldest offer left the window.
    assert_eq!(plan(&i, now + Duration::hours(4)).offerable, 1);
    // A limit of 0 turns offering off.
    i.offered = &[];
    i.settings.daily_limit = 0;
    let p = plan(&i, now);
    assert_eq!(p.offerable, 0);
    assert!(
        p.hold
            .expect("held")
            .to_string()
            .contains("offering checks is off")
    );
}

#[test]
fn a_concept_offered_in_the_last_day_is_not_due_answered_or_not() {
    let cat = catalogue();
    let states = [state(ROOT, &[(Transition::Seen, 0, None)])];
    let m = met(&[(ROOT, 5)]);
    let now = t0() + Duration::hours(30);
    let offered = [Offered {
        concept: ROOT.into(),
        at: now - Duration::hours(23),
    }];
    let i = input(&states, &m, &cat, &offered);
    assert!(plan(&i, now).due.is_empty());
    assert!(cooling(&offered, ROOT, now));
    assert_eq!(plan(&i, now + Duration::hours(2)).due.len(), 1);
}

#[test]
fn a_concept_the_catalogue_no_longer_holds_is_never_due() {
    let cat = catalogue();
    let states = [state(
        "x-retired-thing",
        &[(Transition::CheckFailed, 0, Some(1))],
    )];
    let m = met(&[("x-retired-thing", 50)]);
    assert!(
        plan(&input(&states, &m, &cat, &[]), t0() + Duration::days(30))
            .due
            .is_empty()
    );
}

/// Concepts the property test draws from: roots and their children.
const POOL: [&str; 8] = [
    ROOT,
    CHILD,
    "git-merge",
    "git-remotes",
    "rust-ownership",
    "rust-borrowing",
    "py-names-references",
    "sql-select-basics",
];

fn arb_facts() -> impl Strategy<Value = Vec<(Transition, i64, Option<u8>)>> {
    let t = prop_oneof![
        Just((Transition::Seen, None)),
        Just((Transition::Explained, None)),
        (2u8..=4).prop_map(|g| (Transition::CheckPassed, Some(g))),
        Just((Transition::CheckFailed, Some(1))),
    ];
    proptest::collection::vec((t, 0i64..60 * 24 * 60), 0..6).prop_map(|v| {
        v.into_iter()
            .map(|((t, g), m)| (t, m, g))
            .collect::<Vec<_>>()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the states, the offers of the last day and the settings:
    /// never more offerable than the limit leaves, nothing offered while
    /// held, no concept offered within its cool-down, and a concept
    /// whose check was just recorded is not due.
    #[test]
    fn never_more_than_the_daily_limit_and_a_concept_just_checked_is_not_due(
        histories in proptest::collection::vec(arb_facts(), POOL.len()),
        met_counts in proptest::collection::vec(0u32..8, POOL.len()),
        offers in proptest::collection::vec((0usize..POOL.len(), 0i64..48 * 60), 0..8),
        limit in 0u32..6,
        at_minute in 60 * 24 * 60i64..120 * 24 * 60,
        snoozed in proptest::option::of(-120i64..120),
        turn in any::<bool>(),
        just_checked in 0usize..POOL.len(),
        grade in 1u8..=4,
    ) {
        let cat = catalogue();
        let now = t0() + Duration::minutes(at_minute);
        let states: Vec<StateRow> = POOL
            .iter()
            .zip(&histories)
            .map(|(c, h)| state(c, h))
            .collect();
        let m: BTreeMap<String, u32> =
            POOL.iter().zip(&met_counts).map(|(c, n)| (c.to_string(), *n)).collect();
        let offered: Vec<Offered> = offers
            .iter()
            .map(|(i, ago)| Offered { concept: POOL[*i].into(), at: now - Duration::minutes(*ago) })
            .collect();
        let settings = Settings {
            daily_limit: limit,
            snoozed_until: snoozed.map(|m| now + Duration::minutes(m)),
        };
        let i = Input {
            states: &states,
            met: &m,
            catalogue: &cat,
            offered: &offered,
            settings,
            turn: turn.then_some(now - Duration::minutes(1)),
        };
        let p = plan(&i, now);
        let in_window = offered.iter().filter(|o| o.at > now - WINDOW).count() as u32;
        prop_assert!(p.offer().len() as u32 + in_window <= limit.max(in_window));
        prop_assert!(p.offer().len() as u32 <= limit.saturating_sub(in_window));
        prop_assert_eq!(p.offered_today, in_window);
        let held = turn || settings.snoozed_until.is_some_and(|u| u > now) || in_window >= limit;
        prop_assert_eq!(p.hold.is_some(), held);
        if held {
            prop_assert!(p.offer().is_empty());
        }
        for d in &p.due {
            prop_assert!(!cooling(&offered, &d.concept, now), "{} offered within the cool-down", d.concept);
            prop_assert!(p.due.iter().filter(|e| e.concept == d.concept).count() == 1);
        }
        // Record a check of one concept now: it is not due afterwards.
        let c = POOL[just_checked];
        let mut h = histories[just_checked].clone();
        h.push((
            if grade == 1 { Transition::CheckFailed } else { Transition::CheckPassed },
            at_minute,
            Some(grade),
        ));
        let mut checked = states.clone();
        checked[just_checked] = state(c, &h);
        let i = Input { states: &checked, ..i };
        let after = plan(&i, now);
        prop_assert!(after.due.iter().all(|d| d.concept != c), "{} due right after its check", c);
    }
}
