//! The memory model: FSRS-5 (Free Spaced Repetition Scheduler, version 5,
//! by Jarrett Ye and open-spaced-repetition), which turns one engineer's
//! comprehension-check results on one concept into a stability, a
//! difficulty, a predicted recall and a next-due time.
//!
//! Pure functions: time is always a parameter, nothing here reads the clock
//! or does I/O. The same reviews in the same order always give the same
//! [`Card`], bit for bit, so the state can be folded over append-only deltas.
//! Fold them sorted by `(at, delta id)`: two results with the same timestamp
//! but different grades give different states in different orders.
//!
//! # The three numbers
//!
//! **Retrievability** `R` is the probability that the engineer would pass a
//! check on the concept right now. It is 1 straight after a review and
//! decays along a power-law forgetting curve, `t` days after the last review:
//!
//! ```text
//! R(t, S) = (1 + FACTOR * t / S) ^ DECAY      DECAY = -0.5, FACTOR = 19/81
//! ```
//!
//! FACTOR is chosen so that `R(S, S) = 0.9` exactly: `0.9 ^ (1 / DECAY) - 1`.
//!
//! **Stability** `S` (in days) is therefore the time it takes recall to fall
//! from 100% to 90%. A stability of 30 means "after a month, 9 in 10 chances
//! of still knowing it". It is what a review changes most.
//!
//! **Difficulty** `D`, from 1 (easy) to 10 (hard), is how hard this concept
//! is for this engineer. It sets how much a successful review can raise the
//! stability (the `11 - D` factor below): hard concepts grow slowly.
//!
//! # Grades
//!
//! Each check result is graded 1 Again (failed), 2 Hard, 3 Good, 4 Easy
//! ([`Grade`]). Below, `G` is that number and `w0..w18` are the 19 FSRS-5
//! weights ([`DEFAULT_WEIGHTS`]).
//!
//! # First review
//!
//! ```text
//! S0(G) = w[G-1]                              (w0..w3: Again, Hard, Good, Easy)
//! D0(G) = w4 - e^(w5 * (G - 1)) + 1,          clamped to [1, 10]
//! ```
//!
//! # Each later review
//!
//! With `t` the days since the previous review, `S` and `D` the state before
//! it and `R = R(t, S)` the recall the model predicted for that moment:
//!
//! ```text
//! difficulty (every grade):
//!   dD   = -w6 * (G - 3)                      Again/Hard raise it, Easy lowers it
//!   D'   = D + dD * (10 - D) / 9              linear damping: slower near 10
//!   D''  = w7 * D0(4) + (1 - w7) * D'         mean reversion towards D0(Easy)
//!   clamped to [1, 10]
//!
//! stability, same day (t < 1):
//!   S' = S * e^(w17 * (G - 3 + w18))
//!
//! stability, passed (G >= 2, t >= 1):
//!   S' = S * (1 + e^w8 * (11 - D) * S^(-w9) * (e^(w10 * (1 - R)) - 1) * h * b)
//!   h = w15 if Hard else 1,  b = w16 if Easy else 1
//!
//! stability, failed (G = 1, t >= 1):
//!   S' = min(w11 * D^(-w12) * ((S + 1)^w13 - 1) * e^(w14 * (1 - R)),
//!            S / e^(w17 * w18))
//!
//! S' is clamped to [0.01, 36500] days.
//! ```
//!
//! The success formula says: a pass raises stability more when the concept
//! is easy (`11 - D`), when the memory was still young (`S^(-w9)`), and when
//! the pass came late, close to forgetting (`1 - R` large): recalling what
//! you nearly lost strengthens it most. A failure resets stability to a
//! fraction that still remembers part of the old one (`(S + 1)^w13`).
//!
//! # Scheduling
//!
//! Solving `R(I, S) = r` for the interval gives the next due time for a
//! desired retention `r`, rounded to whole days in `[1, 36500]`:
//!
//! ```text
//! I(r, S) = S / FACTOR * (r ^ (1 / DECAY) - 1)        I(0.9, S) = S
//! ```
//!
//! # Choices beyond the published algorithm
//!
//! Time is fractional days (milliseconds / 86 400 000) rather than calendar
//! days, so `R` is smooth between days; "same day" means less than 24 hours
//! since the previous review. A timestamp earlier than the previous review
//! counts as the same moment. Inputs read back from storage are brought into
//! range (`S` to `[0.01, 36500]`, `D` to `[1, 10]`, NaN to the nearest bound)
//! so that no value ever becomes NaN or infinite.
//!
//! Formulas and defaults follow the reference implementation,
//! open-spaced-repetition/fsrs-rs 2.0 (`src/model.rs`, `src/inference.rs`),
//! also described at
//! <https://github.com/open-spaced-repetition/fsrs4anki/wiki/The-Algorithm>.

use chrono::{DateTime, TimeDelta, Utc};

/// The published FSRS-5 default weights `w0..w18`, fitted by
/// open-spaced-repetition on a large corpus of review logs (fsrs-rs 2.0
/// `DEFAULT_PARAMETERS`).
pub const DEFAULT_WEIGHTS: Weights = [
    0.40255, 1.18385, 3.173, 15.69105, 7.1949, 0.5345, 1.4604, 0.0046, 1.54575, 0.1192, 1.01925,
    1.9395, 0.11, 0.29605, 2.2698, 0.2315, 2.9898, 0.51655, 0.6621,
];

/// The retention most schedules aim for: due when recall falls to 90%.
pub const DEFAULT_RETENTION: f64 = 0.9;

/// The 19 FSRS-5 weights.
pub type Weights = [f64; 19];

const DECAY: f64 = -0.5;
/// `0.9 ^ (1 / DECAY) - 1`, so that `R(S, S) = 0.9`.
const FACTOR: f64 = 19.0 / 81.0;
const S_MIN: f64 = 0.01;
const S_MAX: f64 = 36_500.0;
const D_MIN: f64 = 1.0;
const D_MAX: f64 = 10.0;
const MS_PER_DAY: f64 = 86_400_000.0;

/// A comprehension-check result on the FSRS rating scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grade {
    /// 1: failed, the concept was not recalled.
    Again = 1,
    /// 2: recalled with serious difficulty.
    Hard = 2,
    /// 3: recalled.
    Good = 3,
    /// 4: recalled effortlessly.
    Easy = 4,
}

/// A number that is not on the FSRS rating scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("grade {0} is not an FSRS rating: expected 1 (Again), 2 (Hard), 3 (Good) or 4 (Easy)")]
pub struct InvalidGrade(pub u8);

impl Grade {
    /// The grade for its number on the rating scale.
    ///
    /// # Errors
    ///
    /// [`InvalidGrade`] for anything but 1, 2, 3 or 4.
    pub fn from_u8(value: u8) -> Result<Self, InvalidGrade> {
        match value {
            1 => Ok(Self::Again),
            2 => Ok(Self::Hard),
            3 => Ok(Self::Good),
            4 => Ok(Self::Easy),
            other => Err(InvalidGrade(other)),
        }
    }

    /// Its number on the rating scale, 1 to 4.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    fn value(self) -> f64 {
        f64::from(self.as_u8())
    }
}

/// What the model knows about one engineer's memory of one concept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryState {
    /// Days for recall to fall from 100% to 90% after the last review.
    pub stability_days: f64,
    /// How hard the concept is for this engineer, 1 (easy) to 10 (hard).
    pub difficulty: f64,
}

impl MemoryState {
    /// The state brought into range; NaN goes to the lower bound.
    fn in_range(self) -> Self {
        Self {
            stability_days: bounded(self.stability_days, S_MIN, S_MAX),
            difficulty: bounded(self.difficulty, D_MIN, D_MAX),
        }
    }
}

/// `x` clamped to `[lo, hi]`, NaN to `lo` (`f64::clamp` keeps NaN).
fn bounded(x: f64, lo: f64, hi: f64) -> f64 {
    if x.is_nan() { lo } else { x.clamp(lo, hi) }
}

/// One engineer-concept pair after at least one graded check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Card {
    /// Stability and difficulty after the last review.
    pub memory: MemoryState,
    /// When the last review happened (the latest timestamp folded in).
    pub last_review: DateTime<Utc>,
    /// Number of graded checks folded in.
    pub reps: u32,
    /// Number of failed checks (Again) after the first review.
    pub lapses: u32,
}

/// The card after one more graded check at `at`; `None` is the first one.
pub fn review(state: Option<&Card>, grade: Grade, at: DateTime<Utc>) -> Card {
    review_with(&DEFAULT_WEIGHTS, state, grade, at)
}

/// The predicted probability of recall at `at`, in `(0, 1]`: the forgetting
/// curve `R(t, S)` with `t` the days since the last review (0 if `at` is
/// earlier).
pub fn retrievability(card: &Card, at: DateTime<Utc>) -> f64 {
    recall_at(card, elapsed_days(card.last_review, at))
}

/// The predicted probability of recall `days_after_last_review` days after
/// the last review, e.g. 30 for "recall at 30 days". Negative or NaN days
/// count as 0 (recall 1); it tends to 0 as the days grow without bound.
pub fn recall_at(card: &Card, days_after_last_review: f64) -> f64 {
    let t = days_after_last_review.max(0.0);
    forgetting_curve(t, card.memory.in_range().stability_days)
}

/// When recall is predicted to fall to `desired_retention` (e.g. 0.9): the
/// last review plus `I(r, S)` rounded to whole days, at least 1 and at most
/// 36500. The retention is clamped to `[0.01, 1]`; NaN means 0.9.
pub fn next_due(card: &Card, desired_retention: f64) -> DateTime<Utc> {
    let retention = if desired_retention.is_nan() {
        DEFAULT_RETENTION
    } else {
        desired_retention.clamp(0.01, 1.0)
    };
    let stability = card.memory.in_range().stability_days;
    let days = interval_days(stability, retention)
        .round()
        .clamp(1.0, S_MAX);
    // `days` is a whole number in [1, 36500], so the cast is exact.
    card.last_review
        .checked_add_signed(TimeDelta::days(days as i64))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn review_with(w: &Weights, state: Option<&Card>, grade: Grade, at: DateTime<Utc>) -> Card {
    let Some(card) = state else {
        return Card {
            memory: initial_memory(w, grade),
            last_review: at,
            reps: 1,
            lapses: 0,
        };
    };
    let t = elapsed_days(card.last_review, at);
    Card {
        memory: next_memory(w, card.memory.in_range(), t, grade),
        last_review: card.last_review.max(at),
        reps: card.reps.saturating_add(1),
        lapses: card.lapses.saturating_add(u32::from(grade == Grade::Again)),
    }
}

/// Days from `from` to `to`, fractional, never negative.
fn elapsed_days(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    // Any two representable times are less than i64::MAX ms apart; the
    // cast is exact below 2^53 ms (some 285 000 years).
    (to - from).num_milliseconds().max(0) as f64 / MS_PER_DAY
}

fn forgetting_curve(t: f64, s: f64) -> f64 {
    (1.0 + FACTOR * t / s).powf(DECAY)
}

fn interval_days(s: f64, retention: f64) -> f64 {
    s / FACTOR * (retention.powf(1.0 / DECAY) - 1.0)
}

fn initial_memory(w: &Weights, g: Grade) -> MemoryState {
    MemoryState {
        stability_days: w[usize::from(g.as_u8()) - 1],
        difficulty: initial_difficulty(w, g),
    }
    .in_range()
}

/// `D0(G)`, unclamped: mean reversion aims at the raw `D0(Easy)`.
fn initial_difficulty(w: &Weights, g: Grade) -> f64 {
    w[4] - (w[5] * (g.value() - 1.0)).exp() + 1.0
}

fn next_memory(w: &Weights, m: MemoryState, t: f64, g: Grade) -> MemoryState {
    let (s, d) = (m.stability_days, m.difficulty);
    let stability = if t < 1.0 {
        short_term_stability(w, s, g)
    } else {
        let r = forgetting_curve(t, s);
        match g {
            Grade::Again => stability_after_failure(w, s, d, r),
            Grade::Hard | Grade::Good | Grade::Easy => stability_after_success(w, s, d, r, g),
        }
    };
    MemoryState {
        stability_days: stability,
        difficulty: mean_reversion(w, damped_difficulty(w, d, g)),
    }
    .in_range()
}

/// `D'`: the grade's step, damped linearly as `D` approaches 10.
fn damped_difficulty(w: &Weights, d: f64, g: Grade) -> f64 {
    let delta = -w[6] * (g.value() - 3.0);
    d + delta * (10.0 - d) / 9.0
}

/// `D''`: a small pull (`w7`) towards the initial difficulty of an Easy.
fn mean_reversion(w: &Weights, d: f64) -> f64 {
    w[7] * initial_difficulty(w, Grade::Easy) + (1.0 - w[7]) * d
}

fn stability_after_success(w: &Weights, s: f64, d: f64, r: f64, g: Grade) -> f64 {
    let hard_penalty = if g == Grade::Hard { w[15] } else { 1.0 };
    let easy_bonus = if g == Grade::Easy { w[16] } else { 1.0 };
    let growth = w[8].exp() * (11.0 - d) * s.powf(-w[9]) * ((1.0 - r) * w[10]).exp_m1();
    s * (1.0 + growth * hard_penalty * easy_bonus)
}

fn stability_after_failure(w: &Weights, s: f64, d: f64, r: f64) -> f64 {
    let relearned =
        w[11] * d.powf(-w[12]) * ((s + 1.0).powf(w[13]) - 1.0) * ((1.0 - r) * w[14]).exp();
    // Never above what a same-day Again would leave.
    relearned.min(s / (w[17] * w[18]).exp())
}

fn short_term_stability(w: &Weights, s: f64, g: Grade) -> f64 {
    s * (w[17] * (g.value() - 3.0 + w[18])).exp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 9, 30, 0)
            .single()
            .expect("valid date")
    }

    fn days(n: f64) -> TimeDelta {
        TimeDelta::milliseconds((n * MS_PER_DAY) as i64)
    }

    /// Folds `(grade, days since the previous review)`; the first gap is ignored.
    fn fold(w: &Weights, reviews: &[(u8, f64)]) -> Card {
        let mut card: Option<Card> = None;
        let mut at = t0();
        for &(g, gap) in reviews {
            if card.is_some() {
                at += days(gap);
            }
            let grade = Grade::from_u8(g).expect("test grades are valid");
            card = Some(review_with(w, card.as_ref(), grade, at));
        }
        card.expect("at least one review")
    }

    /// Equal to within `rel` of the expected magnitude (the reference
    /// values are f32, printed to 5-8 significant digits).
    fn assert_close(actual: f64, expected: f64, rel: f64) {
        let tolerance = rel * expected.abs().max(1.0);
        assert!(
            (actual - expected).abs() <= tolerance,
            "{actual} is not within {tolerance} of {expected}"
        );
    }

    const GRADES: [Grade; 4] = [Grade::Again, Grade::Hard, Grade::Good, Grade::Easy];

    #[test]
    fn grade_from_u8_accepts_the_rating_scale_only() {
        for (n, grade) in (1..=4).zip(GRADES) {
            assert_eq!(Grade::from_u8(n), Ok(grade));
            assert_eq!(grade.as_u8(), n);
        }
        for n in [0, 5, 9, 255] {
            assert_eq!(Grade::from_u8(n), Err(InvalidGrade(n)));
        }
    }

    #[test]
    fn recall_is_0_9_at_t_equal_stability() {
        for s in [0.01, 0.4, 1.0, 3.173, 30.0, 365.0, 36_500.0] {
            let card = Card {
                memory: MemoryState {
                    stability_days: s,
                    difficulty: 5.0,
                },
                last_review: t0(),
                reps: 1,
                lapses: 0,
            };
            assert_close(recall_at(&card, s), 0.9, 1e-12);
            assert_eq!(recall_at(&card, 0.0), 1.0);
        }
    }

    /// fsrs-rs 2.0.4 `model.rs` test `power_forgetting_curve` and
    /// `inference.rs` test `current_retrievability`.
    #[test]
    fn forgetting_curve_matches_fsrs_rs() {
        let cases = [
            (0.0, 1.0, 1.0),
            (1.0, 2.0, 0.946059),
            (2.0, 3.0, 0.9299294),
            (3.0, 4.0, 0.9221679),
            (4.0, 4.0, 0.90000004),
            (5.0, 2.0, 0.79394597),
            (1.0, 1.0, 0.9),
            (2.0, 1.0, 0.82502866),
            (3.0, 1.0, 0.76613088),
        ];
        for (t, s, r) in cases {
            assert_close(forgetting_curve(t, s), r, 1e-6);
        }
    }

    #[test]
    fn retrievability_uses_time_since_last_review() {
        let card = review(None, Grade::Good, t0());
        let s = DEFAULT_WEIGHTS[2];
        assert_close(retrievability(&card, t0() + days(s)), 0.9, 1e-9);
        assert_eq!(retrievability(&card, t0() - days(3.0)), 1.0);
        assert_eq!(recall_at(&card, -1.0), 1.0);
        assert_eq!(recall_at(&card, f64::NAN), 1.0);
    }

    #[test]
    fn first_review_stability_is_w0_to_w3() {
        for (i, grade) in GRADES.into_iter().enumerate() {
            let card = review(None, grade, t0());
            assert_eq!(card.memory.stability_days, DEFAULT_WEIGHTS[i]);
            assert_eq!((card.reps, card.lapses, card.last_review), (1, 0, t0()));
        }
    }

    /// D0(G) = w4 - e^(w5 (G - 1)) + 1 with the defaults, to 5 decimals.
    #[test]
    fn first_review_difficulty_follows_d0() {
        let expected = [7.1949, 6.48831, 5.28243, 3.2245];
        for (grade, d0) in GRADES.into_iter().zip(expected) {
            let w = &DEFAULT_WEIGHTS;
            let formula = w[4] - (w[5] * (grade.value() - 1.0)).exp() + 1.0;
            let card = review(None, grade, t0());
            assert_eq!(card.memory.difficulty, formula);
            assert_close(card.memory.difficulty, d0, 1e-5);
        }
        // Clamped to [1, 10] with weights that would leave the range.
        let mut w = DEFAULT_WEIGHTS;
        w[4] = 12.0;
        w[5] = 2.0;
        assert_eq!(fold(&w, &[(1, 0.0)]).memory.difficulty, 10.0);
        assert_eq!(fold(&w, &[(4, 0.0)]).memory.difficulty, 1.0);
    }

    /// fsrs-rs 2.0.4 `model.rs` test `next_difficulty`, default weights, D = 5.
    #[test]
    fn difficulty_update_matches_fsrs_rs() {
        let damped = [6.622667, 5.811333, 5.0, 4.188667];
        let reverted = [6.607035, 5.7994337, 4.9918327, 4.1842318];
        for ((grade, d1), d2) in GRADES.into_iter().zip(damped).zip(reverted) {
            let d = damped_difficulty(&DEFAULT_WEIGHTS, 5.0, grade);
            assert_close(d, d1, 1e-6);
            assert_close(mean_reversion(&DEFAULT_WEIGHTS, d), d2, 1e-6);
        }
    }

    /// fsrs-rs 2.0.4 `model.rs` test `next_stability`, default weights,
    /// S = 5, D = 1..4, R = 0.9..0.6, grades 1..4.
    #[test]
    fn stability_updates_match_fsrs_rs() {
        let w = &DEFAULT_WEIGHTS;
        let dr = [(1.0, 0.9), (2.0, 0.8), (3.0, 0.7), (4.0, 0.6)];
        let success = [25.77614, 14.121894, 60.40441, 208.97597];
        let failure = [1.7028502, 1.9798818, 2.3759942, 2.8885393];
        let short_term = [2.5051427, 4.199207, 7.038856, 11.798775];
        for (i, ((d, r), g)) in dr.into_iter().zip(GRADES).enumerate() {
            assert_close(stability_after_success(w, 5.0, d, r, g), success[i], 1e-6);
            assert_close(stability_after_failure(w, 5.0, d, r), failure[i], 1e-6);
            assert_close(short_term_stability(w, 5.0, g), short_term[i], 1e-6);
        }
    }

    /// fsrs-rs 2.0.4 `model.rs` test `forward`: two reviews with the same
    /// grade, the second 1 or 2 days after the first, default weights.
    #[test]
    fn two_review_sequences_match_fsrs_rs() {
        let cases = [
            (1, 1.0, 0.2619, 8.0827),
            (2, 1.0, 1.7074, 7.0405),
            (3, 1.0, 5.8691, 5.2729),
            (4, 1.0, 25.0124, 2.1301),
            (1, 2.0, 0.2859, 8.0827),
            (2, 2.0, 2.1482, 7.0405),
        ];
        for (g, gap, s, d) in cases {
            let card = fold(&DEFAULT_WEIGHTS, &[(g, 0.0), (g, gap)]);
            assert_close(card.memory.stability_days, s, 1e-4);
            assert_close(card.memory.difficulty, d, 1e-4);
        }
    }

    /// The weights fsrs-rs 2.0.4 `inference.rs` fits in its tests (`PARAMETERS`).
    const FSRS_RS_TEST_WEIGHTS: Weights = [
        0.6845422,
        1.6790825,
        4.7349424,
        10.042885,
        7.4410233,
        0.64219797,
        1.071918,
        0.0025195254,
        1.432437,
        0.1544,
        0.8692766,
        2.0696752,
        0.0953,
        0.2975,
        2.4691248,
        0.19542035,
        3.201072,
        0.18046261,
        0.121442534,
    ];

    /// fsrs-rs 2.0.4 `inference.rs` tests `test_memo_state` and
    /// `next_states`: Again, then Good after 1, 3, 8 and 21 days, then each
    /// grade 21 days after the fourth review.
    #[test]
    fn multi_review_sequence_matches_fsrs_rs() {
        let w = &FSRS_RS_TEST_WEIGHTS;
        let history = [(1, 0.0), (3, 1.0), (3, 3.0), (3, 8.0)];
        let card = fold(w, &history);
        let expected = [
            (Grade::Again, 2.969144, 8.000659),
            (Grade::Hard, 17.091442, 7.6913934),
            (Grade::Good, 31.722975, 7.382128),
            (Grade::Easy, 71.75015, 7.0728626),
        ];
        for (grade, s, d) in expected {
            let next = review_with(w, Some(&card), grade, card.last_review + days(21.0));
            assert_close(next.memory.stability_days, s, 1e-5);
            assert_close(next.memory.difficulty, d, 1e-5);
            assert_eq!(next.reps, 5);
            assert_eq!(next.lapses, u32::from(grade == Grade::Again));
            // The interval for 90% retention is the stability, rounded.
            let due = next_due(&next, 0.9) - next.last_review;
            assert_eq!(due.num_days(), s.round() as i64);
        }
        // Its starting point, from `test_memo_state`'s second assertion.
        let from = MemoryState {
            stability_days: 20.925528,
            difficulty: 7.005062,
        };
        let good = next_memory(w, from, 21.0, Grade::Good);
        assert_close(good.stability_days, 40.874535, 1e-5);
        assert_close(good.difficulty, 6.9913807, 1e-5);
    }

    /// fsrs-rs 2.0.4 `inference.rs` test `test_next_interval`: S = 1 and
    /// desired retention 0.1 to 1.0, rounded, at least one day.
    #[test]
    fn next_due_matches_fsrs_rs_intervals() {
        let card = Card {
            memory: MemoryState {
                stability_days: 1.0,
                difficulty: 5.0,
            },
            last_review: t0(),
            reps: 1,
            lapses: 0,
        };
        let expected = [422, 102, 43, 22, 13, 8, 4, 2, 1, 1];
        for (tenths, days) in (1..=10).zip(expected) {
            let due = next_due(&card, f64::from(tenths) / 10.0);
            assert_eq!((due - t0()).num_days(), days, "retention 0.{tenths}");
        }
        assert_eq!(next_due(&card, f64::NAN), next_due(&card, 0.9));
        assert_eq!((next_due(&card, 0.0) - t0()).num_days(), 36_500);
    }

    #[test]
    fn same_day_reviews_use_the_short_term_formula() {
        let first = review(None, Grade::Good, t0());
        let again = review(Some(&first), Grade::Good, t0() + TimeDelta::hours(23));
        let w = &DEFAULT_WEIGHTS;
        assert_close(
            again.memory.stability_days,
            w[2] * (w[17] * w[18]).exp(),
            1e-12,
        );
        assert_eq!(again.last_review, t0() + TimeDelta::hours(23));
    }

    #[test]
    fn a_stored_state_out_of_range_is_brought_back() {
        let card = Card {
            memory: MemoryState {
                stability_days: f64::NAN,
                difficulty: f64::INFINITY,
            },
            last_review: t0(),
            reps: 3,
            lapses: 1,
        };
        let r = retrievability(&card, t0() + days(1.0));
        assert!(r > 0.0 && r < 1.0);
        let next = review(Some(&card), Grade::Good, t0() + days(2.0));
        assert!(next.memory.stability_days.is_finite());
        assert!((1.0..=10.0).contains(&next.memory.difficulty));
    }

    /// Grades and gaps in milliseconds: often zero or seconds, sometimes
    /// hours, days or years.
    fn history() -> impl Strategy<Value = Vec<(u8, i64)>> {
        let gap = prop_oneof![
            Just(0_i64),
            0..60_000_i64,
            0..86_400_000_i64,
            0..(30 * 86_400_000_i64),
            0..(10 * 365 * 86_400_000_i64),
        ];
        prop::collection::vec((1..=4_u8, gap), 1..40)
    }

    fn fold_ms(reviews: &[(u8, i64)]) -> Vec<Card> {
        let mut at = t0();
        let mut cards: Vec<Card> = Vec::with_capacity(reviews.len());
        for &(g, gap) in reviews {
            at += TimeDelta::milliseconds(gap);
            let grade = Grade::from_u8(g).expect("strategy grades are valid");
            cards.push(review(cards.last(), grade, at));
        }
        cards
    }

    proptest! {
        #[test]
        fn every_state_is_finite_and_in_range(reviews in history()) {
            for card in fold_ms(&reviews) {
                let MemoryState { stability_days: s, difficulty: d } = card.memory;
                prop_assert!(s.is_finite() && (S_MIN..=S_MAX).contains(&s), "stability {s}");
                prop_assert!(d.is_finite() && (D_MIN..=D_MAX).contains(&d), "difficulty {d}");
                let r = recall_at(&card, 30.0);
                prop_assert!(r.is_finite() && r > 0.0 && r <= 1.0);
                prop_assert!(next_due(&card, 0.9) > card.last_review);
            }
        }

        #[test]
        fn the_same_history_gives_the_same_card(reviews in history()) {
            prop_assert_eq!(fold_ms(&reviews), fold_ms(&reviews));
        }

        #[test]
        fn good_never_lowers_stability_relative_to_again(
            reviews in history(),
            gap in 0..(5 * 365 * 86_400_000_i64),
        ) {
            let cards = fold_ms(&reviews);
            let card = cards.last().expect("at least one review");
            let at = card.last_review + TimeDelta::milliseconds(gap);
            let good = review(Some(card), Grade::Good, at).memory;
            let again = review(Some(card), Grade::Again, at).memory;
            prop_assert!(good.stability_days >= again.stability_days);
            prop_assert!(good.difficulty <= again.difficulty);
        }

        #[test]
        fn retrievability_decreases_with_time_and_stays_in_0_1(
            reviews in history(),
            a in 0..(100 * 365 * 86_400_000_i64),
            b in 0..(100 * 365 * 86_400_000_i64),
        ) {
            let cards = fold_ms(&reviews);
            let card = cards.last().expect("at least one review");
            let (early, late) = (a.min(b), a.max(b));
            let r_early = retrievability(card, card.last_review + TimeDelta::milliseconds(early));
            let r_late = retrievability(card, card.last_review + TimeDelta::milliseconds(late));
            prop_assert!(r_late <= r_early);
            prop_assert!(r_late > 0.0 && r_early <= 1.0);
        }
    }
}
