//! The daily sweeper: at start-up and then every day at
//! [`audit::SWEEP_AT`] (UTC) it deletes audit rows past retention (P20),
//! engineers' data whose 30-day deletion hold has ended (P22), and expired
//! sessions; and it notes every team's membership, so that a team left
//! unchanged for a week is released even if nobody read the aggregates
//! (docs/privacy.md). Failures are logged and retried at the next run.
//!
//! It takes the store, the settings and the clock as plain values: a
//! background job, not part of the HTTP edge.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::audit;
use crate::clock::Clock;
use crate::config::Settings;
use crate::store::Store;

/// One sweep of every kind, at `now`.
pub fn sweep_once(store: &Store, settings: &Settings, now: DateTime<Utc>) {
    match audit::sweep(store, now, settings.audit.retention_days) {
        Ok(report) => {
            for (org, n) in report.deleted.iter().filter(|(_, n)| *n > 0) {
                tracing::info!(org = %org, deleted = n, "audit sweep removed expired rows");
            }
        }
        Err(e) => tracing::error!(error = %e, "audit sweep failed; retrying at the next run"),
    }
    match crate::graph::me::sweep_deletions(store, now) {
        Ok(n) if n > 0 => tracing::info!(engineers = n, "data deleted after the 30-day hold"),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "deletion sweep failed; retrying at the next run"),
    }
    if let Err(e) = crate::privacy::release::sight_teams(store, now) {
        tracing::error!(error = %e, "noting team memberships failed; retrying at the next run");
    }
    match crate::sessions::sweep(store, &settings.sso, now) {
        Ok(n) if n > 0 => tracing::info!(deleted = n, "expired sessions removed"),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "session sweep failed; retrying at the next run"),
    }
}

/// Runs until `shutdown` turns true.
pub async fn run(
    store: Arc<Store>,
    settings: Arc<Settings>,
    clock: Arc<dyn Clock>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let now = clock.now();
        let (store, settings) = (Arc::clone(&store), Arc::clone(&settings));
        if let Err(e) =
            tokio::task::spawn_blocking(move || sweep_once(&store, &settings, now)).await
        {
            tracing::error!(error = %e, "sweeper task panicked");
        }
        let wait = (audit::next_sweep(now) - now).to_std().unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}
