//! The weekly trend of org aggregates: per concept and ISO week (Monday to
//! Sunday, UTC), how many counted engineers had any fact about the concept
//! that week (`n_seen`) and how many demonstrated it or passed a check on
//! it that week (`n_demonstrated`). Each push records the weeks of its new
//! deltas in `concept_weeks` (one small row per engineer, concept and
//! week), and the database sums those rows per scope (org, team), concept
//! and week in `week_totals` over the counted engineers, by the same rules
//! and triggers as the totals (migration 0009): a trend reads a few weeks
//! of one scope's rows, never the deltas, and opting out removes someone
//! from the totals at once. What an admin sees of a week is released by
//! `crate::privacy` once the week is closed, with noise, and then kept.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use rusqlite::{Connection, params};
use serde::Serialize;

use crate::skill::{Delta, Transition};

/// The default number of weeks in a trend, and the most one may ask for.
pub const DEFAULT_WEEKS: u32 = 12;
pub const MAX_WEEKS: u32 = 52;

/// The week holding `at`: its Monday (UTC) as days since 1970-01-01, a
/// Thursday, so a day's weekday counted from Monday is `(day + 3) % 7`
/// (the same formula as migration 0007's backfill).
pub fn week_of(at: DateTime<Utc>) -> i64 {
    let day = at.timestamp().div_euclid(86_400);
    day - (day + 3).rem_euclid(7)
}

/// The Monday that starts `week`.
pub fn monday(week: i64) -> NaiveDate {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    u64::try_from(week)
        .ok()
        .and_then(|d| epoch.checked_add_days(Days::new(d)))
        .unwrap_or(epoch)
}

/// The ISO 8601 name of `week`, e.g. `2026-W03`.
pub fn label(week: i64) -> String {
    let iso = monday(week).iso_week();
    format!("{}-W{:02}", iso.year(), iso.week())
}

pub(super) const UPSERT: &str = "INSERT INTO concept_weeks (user_id, week, concept, demonstrated)
     VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (user_id, week, concept) DO UPDATE
     SET demonstrated = max(demonstrated, excluded.demonstrated)";

/// Records the weeks of newly accepted `deltas` of `user_id` (inside the
/// push's transaction).
///
/// # Errors
/// SQLite errors.
pub fn record(conn: &Connection, user_id: &str, deltas: &[&Delta]) -> rusqlite::Result<()> {
    let mut weeks: BTreeMap<(i64, &str), bool> = BTreeMap::new();
    for d in deltas {
        let shown = matches!(
            d.transition,
            Transition::Demonstrated | Transition::CheckPassed
        );
        *weeks
            .entry((week_of(d.at), d.concept.as_str()))
            .or_default() |= shown;
    }
    let mut upsert = conn.prepare_cached(UPSERT)?;
    for ((week, concept), shown) in weeks {
        upsert.execute(params![user_id, week, concept, shown])?;
    }
    Ok(())
}

/// One week of one concept's trend. A suppressed week carries no numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WeekCount {
    /// ISO 8601 week, e.g. `2026-W03`.
    pub week: String,
    /// Its Monday.
    pub starts: NaiveDate,
    pub suppressed: bool,
    pub n_seen: Option<i64>,
    pub n_demonstrated: Option<i64>,
}

/// The weeks of a trend without activity, for a concept absent from
/// `weekly` (all zero).
pub fn empty(now: DateTime<Utc>, weeks: u32) -> Vec<WeekCount> {
    let last = week_of(now);
    let first = last - 7 * (i64::from(weeks.clamp(1, MAX_WEEKS)) - 1);
    (first..=last)
        .step_by(7)
        .map(|week| WeekCount {
            week: label(week),
            starts: monday(week),
            suppressed: false,
            n_seen: Some(0),
            n_demonstrated: Some(0),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
            .single()
            .expect("valid")
    }

    #[test]
    fn weeks_are_iso_weeks_starting_monday_utc() {
        // Thursday 15 January 2026 is in 2026-W03, which starts Monday the 12th.
        assert_eq!(label(week_of(at(2026, 1, 15, 12))), "2026-W03");
        assert_eq!(
            monday(week_of(at(2026, 1, 15, 12))),
            at(2026, 1, 12, 0).date_naive()
        );
        // Sunday late still belongs to the week that began on Monday.
        assert_eq!(week_of(at(2026, 1, 18, 23)), week_of(at(2026, 1, 12, 0)));
        assert_eq!(
            week_of(at(2026, 1, 19, 0)) - week_of(at(2026, 1, 18, 23)),
            7
        );
        // Year boundaries follow ISO 8601: 1 January 2026 (a Thursday) is
        // in 2026-W01, and 1 January 2027 (a Friday) in 2026-W53.
        assert_eq!(label(week_of(at(2026, 1, 1, 0))), "2026-W01");
        assert_eq!(label(week_of(at(2025, 12, 29, 0))), "2026-W01");
        assert_eq!(label(week_of(at(2027, 1, 1, 0))), "2026-W53");
    }

    #[test]
    fn the_migration_backfill_puts_deltas_in_the_same_weeks() {
        let conn = Connection::open_in_memory().expect("memory db");
        let sql = "SELECT ?1 / 86400000 - (?1 / 86400000 + 3) % 7";
        let mut t = at(2020, 1, 1, 0);
        while t < at(2027, 3, 1, 0) {
            let ms = t.timestamp_millis();
            let by_sql: i64 = conn.query_row(sql, [ms], |r| r.get(0)).expect("row");
            assert_eq!(by_sql, week_of(t), "{t}");
            t += chrono::Duration::hours(29);
        }
    }

    #[test]
    fn a_trend_has_every_week_oldest_first() {
        let now = at(2026, 1, 15, 12);
        let e = empty(now, 3);
        let names: Vec<&str> = e.iter().map(|w| w.week.as_str()).collect();
        assert_eq!(names, ["2026-W01", "2026-W02", "2026-W03"]);
        assert_eq!(empty(now, 0).len(), 1);
        assert_eq!(empty(now, 500).len(), MAX_WEEKS as usize);
    }
}
