//! The audit log (SECURITY.md P10, P20): every privileged action records
//! actor, action, target, IP, user agent, time, request id and a details
//! JSON object, in the same transaction as the action itself, so an action
//! without its audit row cannot happen. The daily sweeper (`crate::sweeper`)
//! deletes rows older than `audit.retention_days`.

pub mod log;

use std::net::IpAddr;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use rusqlite::Connection;

use crate::clock::to_millis;
use crate::store::audit::{self as sql, NewAuditRow};
use crate::store::{Store, StoreError};

/// Longest user agent kept; longer ones are cut (they are attacker-chosen).
const MAX_USER_AGENT: usize = 512;

/// Who is acting and from where: built once per request (or CLI command)
/// and passed to every domain function that changes something.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// `operator:<login>`, `token:<kind>:<name>`, `user:<id>`, `system`.
    pub actor: String,
    pub request_id: Option<String>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl Context {
    /// The operator running a CLI command, named by their login.
    pub fn operator() -> Self {
        let login = std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| format!("uid{}", rustix::process::getuid().as_raw()));
        Self {
            actor: format!("operator:{login}"),
            ..Self::default()
        }
    }

    /// The appliance itself (sweepers, schedules).
    pub fn system() -> Self {
        Self {
            actor: "system".into(),
            ..Self::default()
        }
    }

    /// Writes one audit row on `conn`, which should be the transaction of
    /// the action being recorded.
    ///
    /// # Errors
    /// SQLite errors; the caller's transaction then rolls back.
    pub fn record(
        &self,
        conn: &Connection,
        action: &str,
        target: Option<&str>,
        details: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let ip = self.ip.map(|ip| ip.to_string());
        let user_agent = self
            .user_agent
            .as_deref()
            .map(|ua| ua.chars().take(MAX_USER_AGENT).collect::<String>());
        let details = details.to_string();
        sql::insert(
            conn,
            &NewAuditRow {
                at_ms: to_millis(now),
                actor: &self.actor,
                action,
                target,
                ip: ip.as_deref(),
                user_agent: user_agent.as_deref(),
                request_id: self.request_id.as_deref(),
                details: &details,
            },
        )?;
        Ok(())
    }
}

/// What one sweep removed, per org.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub deleted: Vec<(String, usize)>,
}

/// Deletes audit rows older than `retention_days` before `now` in every org.
///
/// # Errors
/// The first store error; orgs before it are already swept.
pub fn sweep(
    store: &Store,
    now: DateTime<Utc>,
    retention_days: u32,
) -> Result<SweepReport, StoreError> {
    let cutoff = to_millis(now - Duration::days(i64::from(retention_days)));
    let mut report = SweepReport::default();
    for org in store.orgs() {
        let n = org
            .db
            .write(|tx| sql::delete_before(tx, cutoff).map_err(StoreError::from))?;
        report.deleted.push((org.slug.to_string(), n));
    }
    Ok(report)
}

/// The daily time (UTC) the sweepers run.
pub const SWEEP_AT: NaiveTime = match NaiveTime::from_hms_opt(3, 17, 0) {
    Some(t) => t,
    None => panic!("03:17:00 is a valid time"),
};

/// The first sweep time strictly after `now`.
pub fn next_sweep(now: DateTime<Utc>) -> DateTime<Utc> {
    let today = now.date_naive().and_time(SWEEP_AT).and_utc();
    if today > now {
        today
    } else {
        today + Duration::days(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn next_sweep_is_the_next_0317_utc() {
        let t = |h, m| {
            Utc.with_ymd_and_hms(2026, 3, 1, h, m, 0)
                .single()
                .expect("valid")
        };
        assert_eq!(next_sweep(t(1, 0)), t(3, 17));
        assert_eq!(next_sweep(t(3, 17)), t(3, 17) + Duration::days(1));
        assert_eq!(next_sweep(t(23, 59)), t(3, 17) + Duration::days(1));
    }
}
