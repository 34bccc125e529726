//! Aggregate releases that have no path back to one engineer (SECURITY.md
//! P18, P19; the model, its attacks and its guarantee are in
//! docs/privacy.md). What an admin sees of the org or a team is a
//! *release*: computed once per scope and period (ISO week) from the
//! totals of `graph::aggregates`, with two-sided geometric noise on every
//! count and rate (`noise`), and kept (`release`), so asking again in the
//! period gives the same figures whatever changed in between. A team is
//! released only when its membership has been the same since an earlier
//! period, when it is not within `min_cohort` engineers of any scope (or
//! complement of one) already released that period, and when none of its
//! engineers is in `budget` releases of the period already. Every read is
//! audited with its scope. The parameters come from configuration only
//! (no admin route changes them), never below `Params::FLOOR`, and a change
//! applies from the next period on.

pub mod earlier;
pub mod noise;
pub mod release;

use serde::Serialize;

pub use earlier::{EarlierRelease, earlier_org_release};
pub use release::{Outcome, Release, ReleaseError, Request, release};

/// The privacy parameters of one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Params {
    /// Smallest cohort shown, and smallest difference between two scopes
    /// released in one period.
    pub min_cohort: u32,
    /// ε of each released figure, in thousandths.
    pub epsilon_milli: u32,
    /// Releases that may contain one engineer in one period.
    pub budget: u32,
}

impl Params {
    /// The least private parameters the appliance accepts: `min_cohort` at
    /// least 5, ε at most 1 per figure, at most 8 releases per engineer and
    /// period. Configuration outside them is refused at start-up, and a
    /// period's parameters are clamped to them again when they are fixed.
    pub const FLOOR: Params = Params {
        min_cohort: 5,
        epsilon_milli: 1_000,
        budget: 8,
    };

    /// The smallest ε accepted (noisier than this is useless).
    pub const MIN_EPSILON: f64 = 0.05;

    /// Parameters from configuration, clamped to the floor.
    pub fn new(min_cohort: u32, epsilon: f64, budget: u32) -> Self {
        let milli = (epsilon * 1_000.0).round();
        let milli = if milli.is_finite() && milli >= 50.0 {
            milli.min(f64::from(Self::FLOOR.epsilon_milli)) as u32
        } else {
            50
        };
        Self {
            min_cohort: min_cohort.max(Self::FLOOR.min_cohort),
            epsilon_milli: milli,
            budget: budget.clamp(2, Self::FLOOR.budget),
        }
    }

    pub fn epsilon(&self) -> f64 {
        f64::from(self.epsilon_milli) / 1_000.0
    }

    /// How the figures are protected, to show beside them.
    pub fn protection(&self) -> Protection {
        let bound = noise::bound(self.epsilon(), 0.95);
        Protection {
            mechanism: "two-sided geometric (discrete Laplace) noise on every count and on the sums behind every rate",
            epsilon: self.epsilon(),
            min_cohort: self.min_cohort,
            releases_per_period: self.budget,
            count_bound_95: bound,
            // ±10 % of n covers the 95 % bound once n >= 10 * bound.
            accurate_from: bound * 10,
            period: "ISO week (Monday to Sunday, UTC); figures are computed once per scope and week and stay the same all week",
        }
    }
}

impl Default for Params {
    fn default() -> Self {
        Self::new(5, 0.5, 4)
    }
}

/// What the aggregates page and API say about how the figures are protected.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Protection {
    pub mechanism: &'static str,
    pub epsilon: f64,
    pub min_cohort: u32,
    pub releases_per_period: u32,
    /// 95 % of released counts are within this many of the truth.
    pub count_bound_95: i64,
    /// From this many engineers on, a count is within ±10 % of the truth
    /// 95 % of the time.
    pub accurate_from: i64,
    pub period: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_never_go_below_the_floor() {
        let p = Params::new(2, 5.0, 100);
        assert_eq!(p, Params::FLOOR);
        let q = Params::new(7, 0.0, 1);
        assert_eq!((q.min_cohort, q.epsilon_milli, q.budget), (7, 50, 2));
        assert_eq!(Params::new(5, f64::NAN, 4).epsilon_milli, 50);
        let d = Params::default().protection();
        assert_eq!((d.count_bound_95, d.accurate_from), (6, 60));
    }
}

#[cfg(test)]
mod model_tests;
