//! What the local store keeps of comprehension checks: each check offered
//! (concept, check id, time, how), the check an MCP caller waits to have
//! answered (the question and its key, as served), the grade recorded,
//! and the engineer's settings (daily limit, snooze). Recording a result
//! is one transaction: the `check_passed`/`check_failed` delta with its
//! grade, queued for sync, the concept refolded, the offer closed. The
//! engineer's answer itself is never stored.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::super::checks::due::{DEFAULT_DAILY_LIMIT, Offered, Settings};
use super::super::error::AgentError;
use super::{LocalStore, QUEUE, fold};
use crate::skill::delta::Transition;

/// Meta keys of the engineer's check settings.
const DAILY_LIMIT: &str = "checks_daily_limit";
const SNOOZED_UNTIL: &str = "checks_snoozed_until";

const MET: &str = "SELECT concept, count(*) FROM deltas
     WHERE transition IN ('seen', 'explained') GROUP BY concept";
const OFFERED_SINCE: &str = "SELECT concept, at FROM checks_offered WHERE at > ?1 ORDER BY at";
const OFFER: &str = "INSERT INTO checks_offered (concept, check_id, at, via, pending)
     VALUES (?1, ?2, ?3, ?4, ?5)";
const PENDING: &str = "SELECT seq, concept, pending, at FROM checks_offered
     WHERE check_id = ?1 AND pending IS NOT NULL ORDER BY seq DESC LIMIT 1";
const CLOSE: &str = "UPDATE checks_offered SET pending = NULL, grade = ?2 WHERE seq = ?1";
const EXPIRE: &str =
    "UPDATE checks_offered SET pending = NULL WHERE pending IS NOT NULL AND at <= ?1";
const LAST_OFFERED: &str =
    "SELECT check_id, max(at) FROM checks_offered WHERE concept = ?1 GROUP BY check_id";
const INSERT_CHECK: &str = "INSERT INTO deltas (id, concept, transition, at, grade, origin)
     VALUES (?1, ?2, ?3, ?4, ?5, 'own')";

/// How a check reached the engineer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// `aiworklab agent check`.
    Terminal,
    /// The coding agent's `comprehension_check`.
    Mcp,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Self::Terminal => "terminal",
            Self::Mcp => "mcp",
        }
    }
}

/// A check offered and not yet answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The offer's row.
    pub seq: i64,
    pub concept: String,
    /// The check as served (JSON).
    pub check: String,
    pub offered_at: DateTime<Utc>,
}

/// What recording a check's result stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The delta's id (UUIDv7), queued for sync.
    pub id: String,
    pub transition: Transition,
    pub grade: u8,
}

fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::UNIX_EPOCH)
}

impl LocalStore {
    /// How many times each concept was met (`seen` and `explained`
    /// deltas, own and pulled).
    ///
    /// # Errors
    /// Store errors.
    pub fn met_counts(&self) -> Result<BTreeMap<String, u32>, AgentError> {
        let rows = self
            .conn
            .prepare_cached(MET)?
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// The checks offered after `since`, oldest first.
    ///
    /// # Errors
    /// Store errors.
    pub fn offered_since(&self, since: DateTime<Utc>) -> Result<Vec<Offered>, AgentError> {
        let rows = self
            .conn
            .prepare_cached(OFFERED_SINCE)?
            .query_map([since.timestamp_millis()], |r| {
                Ok(Offered {
                    concept: r.get(0)?,
                    at: from_ms(r.get(1)?),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// When each check of `concept` was last offered, by check id.
    ///
    /// # Errors
    /// Store errors.
    pub fn last_offered(
        &self,
        concept: &str,
    ) -> Result<BTreeMap<String, DateTime<Utc>>, AgentError> {
        let rows = self
            .conn
            .prepare_cached(LAST_OFFERED)?
            .query_map([concept], |r| {
                Ok((r.get::<_, String>(0)?, from_ms(r.get::<_, i64>(1)?)))
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Notes that `check_id` about `concept` was offered at `at`; with
    /// `pending`, the check as served is kept until it is answered.
    /// Returns the offer's row.
    ///
    /// # Errors
    /// Store errors.
    pub fn offer_check(
        &mut self,
        concept: &str,
        check_id: &str,
        via: Via,
        pending: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<i64, AgentError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached(OFFER)?.execute(params![
            concept,
            check_id,
            at.timestamp_millis(),
            via.as_str(),
            pending
        ])?;
        let seq = tx.last_insert_rowid();
        tx.commit()?;
        Ok(seq)
    }

    /// The latest offer of `check_id` still awaiting its answer, if it
    /// was offered after `since` (older ones are given up on first).
    ///
    /// # Errors
    /// Store errors.
    pub fn pending_check(
        &mut self,
        check_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<Pending>, AgentError> {
        self.conn
            .prepare_cached(EXPIRE)?
            .execute([since.timestamp_millis()])?;
        Ok(self
            .conn
            .prepare_cached(PENDING)?
            .query_row([check_id], |r| {
                Ok(Pending {
                    seq: r.get(0)?,
                    concept: r.get(1)?,
                    check: r.get(2)?,
                    offered_at: from_ms(r.get(3)?),
                })
            })
            .optional()?)
    }

    /// Records a check's result in one transaction: a `check_passed`
    /// (grade 2 to 4) or `check_failed` (grade 1) delta of `concept` at
    /// `at`, queued for sync, the concept refolded, and the offer `seq`
    /// (when given) closed with the grade.
    ///
    /// # Errors
    /// [`AgentError::Invalid`] for a grade outside 1 to 4 or a concept the
    /// catalogue does not hold; store errors.
    pub fn record_check(
        &mut self,
        concept: &str,
        grade: u8,
        offer: Option<i64>,
        at: DateTime<Utc>,
    ) -> Result<Recorded, AgentError> {
        if !(1..=4).contains(&grade) {
            return Err(AgentError::Invalid(format!(
                "grade {grade} is not on the FSRS scale (1 again, 2 hard, 3 good, 4 easy); nothing was recorded"
            )));
        }
        if !self.catalogue()?.contains(concept) {
            return Err(AgentError::Invalid(format!(
                "`{}` is not a concept of the catalogue; nothing was recorded",
                concept.chars().take(64).collect::<String>()
            )));
        }
        let transition = if grade == 1 {
            Transition::CheckFailed
        } else {
            Transition::CheckPassed
        };
        let id = uuid::Uuid::now_v7().to_string();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached(INSERT_CHECK)?.execute(params![
            id,
            concept,
            transition.as_str(),
            at.timestamp_millis(),
            grade
        ])?;
        tx.prepare_cached(QUEUE)?.execute([&id])?;
        let at_ms = at.timestamp_millis();
        fold::fold_in(
            &tx,
            concept,
            vec![fold::fact(&id, transition, at_ms, Some(grade))],
        )?;
        if let Some(seq) = offer {
            tx.prepare_cached(CLOSE)?.execute(params![seq, grade])?;
        }
        tx.commit()?;
        Ok(Recorded {
            id,
            transition,
            grade,
        })
    }

    /// The engineer's check settings.
    ///
    /// # Errors
    /// Store errors.
    pub fn check_settings(&self) -> Result<Settings, AgentError> {
        let daily_limit = self
            .meta(DAILY_LIMIT)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_DAILY_LIMIT);
        let snoozed_until = self
            .meta(SNOOZED_UNTIL)?
            .and_then(|v| v.parse::<i64>().ok())
            .map(from_ms);
        Ok(Settings {
            daily_limit,
            snoozed_until,
        })
    }

    /// Sets the number of checks offered in any 24 hours.
    ///
    /// # Errors
    /// Store errors.
    pub fn set_daily_limit(&mut self, limit: u32) -> Result<(), AgentError> {
        let v = limit.to_string();
        self.set_meta(&[(DAILY_LIMIT, Some(v.as_str()))])
    }

    /// Holds every offered check until `until` (`None` ends a snooze).
    ///
    /// # Errors
    /// Store errors.
    pub fn snooze(&mut self, until: Option<DateTime<Utc>>) -> Result<(), AgentError> {
        let v = until.map(|t| t.timestamp_millis().to_string());
        self.set_meta(&[(SNOOZED_UNTIL, v.as_deref())])
    }
}
