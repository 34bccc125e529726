//! An engineer's state per concept: a pure fold over their deltas, ordered
//! by (`at`, `id`), so devices converge whatever order deltas arrive in.
//!
//! ```text
//! unseen --seen--> seen --explained--> explained --demonstrated / check_passed--> demonstrated
//! demonstrated --check_passed, at least RETAIN_AFTER after the first demonstration--> retained
//! any state with a memory card whose predicted recall is below DECAY_BELOW --> decaying
//! ```
//! States only move forward; `check_failed` feeds the memory model (which
//! then predicts lower recall) instead of moving the state back.
//! `docs/skill-graph.md` explains the model with a worked example.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::delta::Transition;
use super::fsrs::{self, Card, Grade};

/// A passed check this long after the first demonstration shows retention.
pub const RETAIN_AFTER: Duration = Duration::days(7);
/// Predicted recall below this marks a concept as decaying.
pub const DECAY_BELOW: f64 = 0.7;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Unseen,
    Seen,
    Explained,
    Demonstrated,
    Retained,
}

/// One fact, as the fold needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub id: String,
    pub transition: Transition,
    pub at: DateTime<Utc>,
    pub grade: Option<u8>,
}

/// What an engineer knows of one concept.
#[derive(Debug, Clone, PartialEq)]
pub struct ConceptState {
    pub level: Level,
    pub first_seen: Option<DateTime<Utc>>,
    pub first_demonstrated: Option<DateTime<Utc>>,
    pub last_activity: Option<DateTime<Utc>>,
    /// The memory model's card, once a check was graded.
    pub card: Option<Card>,
    pub checks_passed: u32,
    pub checks_failed: u32,
    /// Checks taken at least 30 days after the first demonstration, and how
    /// many of them passed (observed 30-day retention).
    pub late_checks: u32,
    pub late_passed: u32,
}

/// How long after the first demonstration a check counts as "late".
pub const LATE_AFTER: Duration = Duration::days(30);

impl ConceptState {
    /// Predicted recall now, when there is a card.
    pub fn recall(&self, now: DateTime<Utc>) -> Option<f64> {
        self.card.as_ref().map(|c| fsrs::retrievability(c, now))
    }

    /// Whether the concept is decaying at `now`.
    pub fn decaying(&self, now: DateTime<Utc>) -> bool {
        self.recall(now).is_some_and(|r| r < DECAY_BELOW)
    }

    /// When the next check is due for the default target retention.
    pub fn due(&self) -> Option<DateTime<Utc>> {
        self.card
            .as_ref()
            .map(|c| fsrs::next_due(c, fsrs::DEFAULT_RETENTION))
    }

    /// The displayed state: the level, or `decaying`.
    pub fn label(&self, now: DateTime<Utc>) -> &'static str {
        if self.decaying(now) {
            return "decaying";
        }
        match self.level {
            Level::Unseen => "unseen",
            Level::Seen => "seen",
            Level::Explained => "explained",
            Level::Demonstrated => "demonstrated",
            Level::Retained => "retained",
        }
    }
}

/// The order facts are folded in: time, then id. The rest only breaks ties
/// between facts that reuse an id, which idempotency prevents within one
/// engineer's facts, so (`at`, `id`) is the fold's cursor (`super::states`).
pub fn fact_order(a: &Fact, b: &Fact) -> Ordering {
    a.at.cmp(&b.at)
        .then_with(|| a.id.cmp(&b.id))
        .then_with(|| a.transition.cmp(&b.transition))
        .then_with(|| a.grade.cmp(&b.grade))
}

/// Folds one concept's facts (any order) into its state.
pub fn fold(facts: &[Fact]) -> ConceptState {
    let mut sorted: Vec<&Fact> = facts.iter().collect();
    sorted.sort_by(|a, b| fact_order(a, b));
    let mut s = ConceptState::unseen();
    for f in sorted {
        s.apply(f);
    }
    s
}

impl ConceptState {
    /// The state before any fact.
    pub fn unseen() -> Self {
        Self {
            level: Level::Unseen,
            first_seen: None,
            first_demonstrated: None,
            last_activity: None,
            card: None,
            checks_passed: 0,
            checks_failed: 0,
            late_checks: 0,
            late_passed: 0,
        }
    }

    /// Folds in one more fact. It must sort after every fact already
    /// folded in ([`fact_order`]): then folding a sorted list one fact at a
    /// time, in any number of steps, gives [`fold`] of the whole list.
    pub fn apply(&mut self, f: &Fact) {
        self.first_seen.get_or_insert(f.at);
        self.last_activity = Some(f.at);
        self.level = self.level.max(Level::Seen);
        match f.transition {
            Transition::Seen => {}
            Transition::Explained => self.level = self.level.max(Level::Explained),
            Transition::Demonstrated => {
                self.first_demonstrated.get_or_insert(f.at);
                self.level = self.level.max(Level::Demonstrated);
            }
            Transition::CheckPassed | Transition::CheckFailed => {
                let grade = f.grade.and_then(|g| Grade::from_u8(g).ok()).unwrap_or(
                    if f.transition == Transition::CheckPassed {
                        Grade::Good
                    } else {
                        Grade::Again
                    },
                );
                self.card = Some(fsrs::review(self.card.as_ref(), grade, f.at));
                if self
                    .first_demonstrated
                    .is_some_and(|first| f.at - first >= LATE_AFTER)
                {
                    self.late_checks += 1;
                    self.late_passed += u32::from(f.transition == Transition::CheckPassed);
                }
                if f.transition == Transition::CheckPassed {
                    self.checks_passed += 1;
                    match self.first_demonstrated {
                        Some(first) if f.at - first >= RETAIN_AFTER => {
                            self.level = self.level.max(Level::Retained)
                        }
                        Some(_) => {}
                        None => {
                            self.first_demonstrated = Some(f.at);
                            self.level = self.level.max(Level::Demonstrated);
                        }
                    }
                } else {
                    self.checks_failed += 1;
                }
            }
        }
    }
}

/// Folds an engineer's facts for every concept.
pub fn fold_all(facts: impl IntoIterator<Item = (String, Fact)>) -> BTreeMap<String, ConceptState> {
    let mut by_concept: BTreeMap<String, Vec<Fact>> = BTreeMap::new();
    for (concept, f) in facts {
        by_concept.entry(concept).or_default().push(f);
    }
    by_concept
        .into_iter()
        .map(|(c, fs)| (c, fold(&fs)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t(day: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0)
            .single()
            .expect("valid")
            + Duration::days(day)
    }

    fn fact(id: &str, tr: Transition, day: i64, grade: Option<u8>) -> Fact {
        Fact {
            id: id.into(),
            transition: tr,
            at: t(day),
            grade,
        }
    }

    #[test]
    fn the_state_machine_moves_forward() {
        let facts = vec![
            fact("a", Transition::Seen, 0, None),
            fact("b", Transition::Explained, 1, None),
            fact("c", Transition::Demonstrated, 2, None),
        ];
        assert_eq!(fold(&facts).level, Level::Demonstrated);
        let mut more = facts.clone();
        more.push(fact("d", Transition::CheckPassed, 5, Some(3)));
        assert_eq!(
            fold(&more).level,
            Level::Demonstrated,
            "too soon to count as retained"
        );
        more.push(fact("e", Transition::CheckPassed, 12, Some(3)));
        let s = fold(&more);
        assert_eq!(s.level, Level::Retained);
        assert_eq!(s.checks_passed, 2);
        assert!(s.card.is_some());
        // A failure lowers recall, not the level.
        more.push(fact("f", Transition::CheckFailed, 13, Some(1)));
        let s = fold(&more);
        assert_eq!(s.level, Level::Retained);
        assert_eq!(s.checks_failed, 1);
    }

    #[test]
    fn an_unpractised_concept_decays() {
        let s = fold(&[fact("a", Transition::CheckPassed, 0, Some(3))]);
        assert_eq!(s.label(t(1)), "demonstrated");
        assert_eq!(s.label(t(400)), "decaying");
        assert!(s.due().is_some_and(|d| d > t(0)));
    }

    fn arb_fact() -> impl Strategy<Value = Fact> {
        (
            0u32..1000,
            0usize..5,
            0i64..400,
            proptest::option::of(1u8..=4),
        )
            .prop_map(|(id, tr, day, grade)| {
                let transition = Transition::ALL[tr];
                let grade = match transition {
                    Transition::CheckFailed => Some(1),
                    Transition::CheckPassed => grade.map(|g| g.max(2)),
                    _ => None,
                };
                Fact {
                    id: format!("{id:04}"),
                    transition,
                    at: t(day),
                    grade,
                }
            })
    }

    proptest! {
        #[test]
        fn any_arrival_order_converges_to_the_same_state(facts in proptest::collection::vec(arb_fact(), 0..40), seed in any::<u64>()) {
            let mut shuffled = facts.clone();
            // A deterministic shuffle from the seed.
            let n = shuffled.len();
            let mut x = seed | 1;
            for i in (1..n).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                shuffled.swap(i, (x % (i as u64 + 1)) as usize);
            }
            prop_assert_eq!(fold(&facts), fold(&shuffled));
        }

        #[test]
        fn folding_on_from_a_stored_state_equals_folding_everything(facts in proptest::collection::vec(arb_fact(), 0..40), cut in any::<proptest::sample::Index>()) {
            let mut sorted = facts.clone();
            sorted.sort_by(fact_order);
            let at = cut.index(sorted.len() + 1);
            let mut resumed = fold(&sorted[..at]);
            for f in &sorted[at..] {
                resumed.apply(f);
            }
            prop_assert_eq!(resumed, fold(&facts));
        }
    }
}
