//! Scheduled backups inside `serve`: daily at `backup.schedule` (UTC), then
//! pruning to `backup.retention_days`. A failure is logged loudly, counted
//! in `/metrics`, and retried every 15 minutes until the next scheduled
//! run; it never stops the server.
//!
//! It takes the store, the backup settings, the clock and the backup
//! metrics as plain values: a background job, not part of the HTTP edge.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use tokio::sync::watch;

use crate::audit::Context;
use crate::clock::Clock;
use crate::config::{BackupSettings, Settings};
use crate::metrics::Metrics;
use crate::store::Store;

const RETRY_AFTER: Duration = Duration::from_secs(15 * 60);

/// The first run strictly after `now` at `at` (UTC).
pub fn next_run(now: DateTime<Utc>, at: NaiveTime) -> DateTime<Utc> {
    let today = now.date_naive().and_time(at).and_utc();
    if today > now {
        today
    } else {
        today + chrono::Duration::days(1)
    }
}

/// One scheduled backup and prune; updates the backup metrics.
///
/// # Errors
/// The backup error, already logged and counted.
pub fn run_once(
    store: &Store,
    s: &BackupSettings,
    clock: &dyn Clock,
    metrics: &Metrics,
) -> Result<super::Created, super::BackupError> {
    let now = clock.now();
    // Read at every run, so a rotated key is used without a restart.
    let result = super::signing::SigningKey::load(&s.signing_key_file).and_then(|signer| {
        super::create(
            store,
            &s.recipients,
            &signer,
            None,
            &s.dir,
            &Context::system(),
            now,
        )
    });
    let m = &metrics.backup;
    match &result {
        Ok(c) => {
            m.last_success.set(now.timestamp());
            m.last_duration.set(c.elapsed.as_secs_f64());
            m.last_size.set(i64::try_from(c.size).unwrap_or(i64::MAX));
            tracing::info!(file = %c.path.display(), size = c.size, databases = c.databases, secs = c.elapsed.as_secs_f64(), "scheduled backup written");
            match super::prune(&s.dir, s.retention_days, now) {
                Ok(removed) if !removed.is_empty() => {
                    tracing::info!(removed = removed.len(), "old backups pruned");
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "pruning old backups failed"),
            }
        }
        Err(e) => {
            m.failures.inc();
            tracing::error!(error = %e, fix = %e.fix(), "SCHEDULED BACKUP FAILED; retrying in 15 minutes");
        }
    }
    result
}

/// Runs the schedule until `shutdown` turns true. Does nothing (after one
/// warning) when no recipients are configured.
pub async fn run(
    store: Arc<Store>,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    if settings.backup.recipients.is_empty() {
        tracing::warn!("backup.recipients is empty: scheduled backups are off");
        return;
    }
    // Said at start-up rather than first at 02:00.
    if let Err(e) = super::signing::SigningKey::load(&settings.backup.signing_key_file) {
        tracing::error!(error = %e, fix = %e.fix(), "scheduled backups will fail until the backup signing key is fixed");
    }
    let at = settings.backup.schedule;
    let mut due = next_run(clock.now(), at);
    loop {
        let wait = (due - clock.now()).to_std().unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        let (store, s) = (Arc::clone(&store), Arc::clone(&settings));
        let (c, m) = (Arc::clone(&clock), Arc::clone(&metrics));
        let ok = matches!(
            tokio::task::spawn_blocking(move || run_once(&store, &s.backup, c.as_ref(), &m)).await,
            Ok(Ok(_))
        );
        let now = clock.now();
        let next = next_run(now, at);
        due = if ok {
            next
        } else {
            (now + chrono::Duration::from_std(RETRY_AFTER).unwrap_or_default()).min(next)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn next_run_is_today_or_tomorrow() {
        let at = NaiveTime::from_hms_opt(2, 0, 0).expect("time");
        let t = |h, m| {
            Utc.with_ymd_and_hms(2026, 5, 1, h, m, 0)
                .single()
                .expect("valid")
        };
        assert_eq!(next_run(t(1, 59), at), t(2, 0));
        assert_eq!(next_run(t(2, 0), at), t(2, 0) + chrono::Duration::days(1));
        assert_eq!(next_run(t(13, 0), at), t(2, 0) + chrono::Duration::days(1));
    }
}
