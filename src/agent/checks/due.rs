//! Which concepts are worth a comprehension check now, and whether one may
//! be asked at all. A pure function of the folded states, how often each
//! concept was met, the catalogue, the checks already offered and the
//! engineer's settings, at a time; `agent status`, `agent check` and the
//! MCP server's `comprehension_check` all ask it.
//!
//! A concept is **due** when
//! - its memory card says so: a check was graded before and the FSRS
//!   schedule's next review (recall down to 90%) has come; or
//! - it is **worth asking**: met at least [`SEEN_OFTEN`] times (seen in
//!   code or explained), never checked, and every prerequisite the
//!   catalogue names is demonstrated, so the graph grows from its roots.
//!
//! A concept offered in the last [`COOL_DOWN`] is not due again, answered
//! or not. Checks are **held** while snoozed, while the engineer's coding
//! agent is in the middle of a turn, and once `daily_limit` checks were
//! offered in the last 24 hours; the plan still lists what is due (status
//! shows it) but offers none.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::agent::store::StateRow;
use crate::skill::catalogue::Catalogue;
use crate::skill::state::Level;

/// Checks offered in any 24 hours, unless the engineer sets another limit.
pub const DEFAULT_DAILY_LIMIT: u32 = 3;
/// The most the daily limit may be set to.
pub const MAX_DAILY_LIMIT: u32 = 50;
/// The window the daily limit counts in.
pub const WINDOW: Duration = Duration::hours(24);
/// A concept offered this recently is not offered again.
pub const COOL_DOWN: Duration = Duration::hours(24);
/// Times a never-checked concept must have been met to be worth asking.
pub const SEEN_OFTEN: u32 = 3;
/// Most due concepts a plan lists.
pub const MAX_LISTED: usize = 20;

/// The engineer's check settings (kept in the local store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// Checks offered in any 24 hours; 0 turns offering off.
    pub daily_limit: u32,
    /// No check is offered before this.
    pub snoozed_until: Option<DateTime<Utc>>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            daily_limit: DEFAULT_DAILY_LIMIT,
            snoozed_until: None,
        }
    }
}

/// One check offered: its concept and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    pub concept: String,
    pub at: DateTime<Utc>,
}

/// Why a concept is due.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum Why {
    /// The FSRS schedule's review has come: predicted recall now.
    Review { due: DateTime<Utc>, recall: f64 },
    /// Met this often, never checked, prerequisites demonstrated.
    WorthAsking { met: u32 },
}

/// A concept due for a check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DueConcept {
    pub concept: String,
    pub title: String,
    pub domain: String,
    #[serde(flatten)]
    pub why: Why,
}

/// Why no check may be offered now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "held", rename_all = "snake_case")]
pub enum Hold {
    /// `agent snooze`: until then.
    Snoozed { until: DateTime<Utc> },
    /// The coding agent is working (its last in-turn event at `since`).
    TurnRunning { since: DateTime<Utc> },
    /// `limit` checks were offered in the last 24 hours; the next may be
    /// offered at `next_at`.
    DailyLimit {
        limit: u32,
        next_at: Option<DateTime<Utc>>,
    },
}

impl std::fmt::Display for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Snoozed { until } => write!(
                f,
                "checks are snoozed until {} (`aiworklab agent snooze off` ends it)",
                until.to_rfc3339()
            ),
            Self::TurnRunning { since } => write!(
                f,
                "your coding agent is in the middle of a turn (active at {}); checks wait until it finishes",
                since.to_rfc3339()
            ),
            Self::DailyLimit { limit: 0, .. } => write!(
                f,
                "offering checks is off (daily limit 0; `aiworklab agent settings --daily-limit N` turns it on)"
            ),
            Self::DailyLimit { limit, next_at } => {
                write!(
                    f,
                    "{limit} check(s) were offered in the last 24 hours, the daily limit"
                )?;
                if let Some(t) = next_at {
                    write!(f, "; the next may be offered at {}", t.to_rfc3339())?;
                }
                write!(
                    f,
                    " (`aiworklab agent settings --daily-limit N` changes it)"
                )
            }
        }
    }
}

/// What may be asked now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// Due concepts, most pressing first (reviews by due time, then the
    /// concepts worth asking by how often they were met), at most
    /// [`MAX_LISTED`].
    pub due: Vec<DueConcept>,
    /// How many of `due` may be offered now: 0 while held, else what is
    /// left of the daily limit.
    pub offerable: usize,
    /// Why none may be offered, if so.
    pub hold: Option<Hold>,
    /// Checks offered in the last 24 hours.
    pub offered_today: u32,
    pub daily_limit: u32,
}

impl Plan {
    /// The concepts that may be offered now, most pressing first.
    pub fn offer(&self) -> &[DueConcept] {
        &self.due[..self.offerable.min(self.due.len())]
    }
}

/// Everything the plan is made from.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub states: &'a [StateRow],
    /// How many `seen` and `explained` deltas each concept has.
    pub met: &'a BTreeMap<String, u32>,
    pub catalogue: &'a Catalogue,
    /// Checks offered recently (at least the last 24 hours).
    pub offered: &'a [Offered],
    pub settings: Settings,
    /// The coding agent's last in-turn event, while a turn runs.
    pub turn: Option<DateTime<Utc>>,
}

/// Why a check is held at `now`, if it is.
pub fn hold(input: &Input<'_>, now: DateTime<Utc>) -> Option<Hold> {
    if let Some(until) = input.settings.snoozed_until.filter(|u| *u > now) {
        return Some(Hold::Snoozed { until });
    }
    if let Some(since) = input.turn {
        return Some(Hold::TurnRunning { since });
    }
    let limit = input.settings.daily_limit;
    let recent: Vec<DateTime<Utc>> = within_window(input.offered, now).map(|o| o.at).collect();
    if recent.len() >= limit as usize {
        // The oldest offer inside the window leaves it first.
        let next_at = (limit > 0)
            .then(|| recent.iter().min().map(|t| *t + WINDOW))
            .flatten();
        return Some(Hold::DailyLimit { limit, next_at });
    }
    None
}

fn within_window(offered: &[Offered], now: DateTime<Utc>) -> impl Iterator<Item = &Offered> {
    offered
        .iter()
        .filter(move |o| o.at > now - WINDOW && o.at <= now)
}

/// Whether `concept` was offered within the cool-down before `now`.
pub fn cooling(offered: &[Offered], concept: &str, now: DateTime<Utc>) -> bool {
    offered
        .iter()
        .any(|o| o.concept == concept && o.at > now - COOL_DOWN && o.at <= now)
}

/// The plan at `now`.
pub fn plan(input: &Input<'_>, now: DateTime<Utc>) -> Plan {
    let levels: BTreeMap<&str, Level> = input
        .states
        .iter()
        .map(|r| (r.concept.as_str(), r.state.level))
        .collect();
    let recent: BTreeSet<&str> = input
        .offered
        .iter()
        .filter(|o| o.at > now - COOL_DOWN && o.at <= now)
        .map(|o| o.concept.as_str())
        .collect();
    let mut reviews = Vec::new();
    let mut worth = Vec::new();
    for row in input.states {
        let Some(concept) = input.catalogue.get(&row.concept) else {
            continue; // retired from the org's catalogue: not asked
        };
        if recent.contains(row.concept.as_str()) {
            continue;
        }
        let line = |why| DueConcept {
            concept: concept.slug.clone(),
            title: concept.title.clone(),
            domain: concept.domain.clone(),
            why,
        };
        match (&row.state.card, row.state.due()) {
            (Some(card), Some(due)) => {
                if due <= now {
                    let recall = crate::skill::fsrs::retrievability(card, now);
                    reviews.push(line(Why::Review { due, recall }));
                }
            }
            _ => {
                let met = input.met.get(&row.concept).copied().unwrap_or(0);
                let below = row.state.level < Level::Demonstrated;
                let roots_known = concept.prerequisites.iter().all(|p| {
                    levels
                        .get(p.as_str())
                        .is_some_and(|l| *l >= Level::Demonstrated)
                });
                if below && met >= SEEN_OFTEN && roots_known {
                    worth.push(line(Why::WorthAsking { met }));
                }
            }
        }
    }
    reviews.sort_by(|a, b| match (&a.why, &b.why) {
        (Why::Review { due: x, .. }, Why::Review { due: y, .. }) => {
            x.cmp(y).then_with(|| a.concept.cmp(&b.concept))
        }
        _ => a.concept.cmp(&b.concept),
    });
    worth.sort_by(|a, b| match (&a.why, &b.why) {
        (Why::WorthAsking { met: x }, Why::WorthAsking { met: y }) => {
            y.cmp(x).then_with(|| a.concept.cmp(&b.concept))
        }
        _ => a.concept.cmp(&b.concept),
    });
    let mut due = reviews;
    due.extend(worth);
    due.truncate(MAX_LISTED);
    let offered_today =
        u32::try_from(within_window(input.offered, now).count()).unwrap_or(u32::MAX);
    let hold = hold(input, now);
    let offerable = if hold.is_some() {
        0
    } else {
        (input.settings.daily_limit.saturating_sub(offered_today) as usize).min(due.len())
    };
    Plan {
        due,
        offerable,
        hold,
        offered_today,
        daily_limit: input.settings.daily_limit,
    }
}

#[cfg(test)]
mod tests;
