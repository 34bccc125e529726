//! Reading back the org's release of an earlier period: figures already
//! released (made at a read of that period, with that period's noise),
//! never recomputed. The dashboard compares them with this period's to
//! show which concepts' predicted retention is rising or fading.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::release::Figure;
use crate::graph::trend;
use crate::store::{OrgDb, StoreError};

const LATEST_BEFORE: &str = "SELECT period, figures FROM releases
     WHERE scope = '' AND period < ?1 ORDER BY period DESC LIMIT 1";

/// The org's most recent release before the period holding `now`.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlierRelease {
    /// The ISO week of that period, e.g. `2026-W02`.
    pub period: String,
    /// Per concept, the predicted retention released then (`None`:
    /// suppressed or resting on too few).
    pub predicted: Vec<(String, Option<f64>)>,
}

/// The org's latest kept release of an earlier period, if any.
///
/// # Errors
/// Store errors, or a kept release that does not parse.
pub fn earlier_org_release(
    org: &OrgDb,
    now: DateTime<Utc>,
) -> Result<Option<EarlierRelease>, StoreError> {
    let period = trend::week_of(now);
    let row: Option<(i64, String)> = org.db.read(|c| {
        c.prepare_cached(LATEST_BEFORE)?
            .query_row(params![period], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(StoreError::from)
    })?;
    let Some((week, figures)) = row else {
        return Ok(None);
    };
    let figures: Vec<Figure> = serde_json::from_str(&figures).map_err(|e| {
        StoreError::from(rusqlite::Error::FromSqlConversionFailure(
            1,
            rusqlite::types::Type::Text,
            Box::new(e),
        ))
    })?;
    Ok(Some(EarlierRelease {
        period: trend::label(week),
        predicted: figures
            .into_iter()
            .map(|f| (f.concept, f.predicted.map(|m| m as f64 / 1e6)))
            .collect(),
    }))
}
