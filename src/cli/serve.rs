//! `aiworklab serve`: the org server.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::{Failure, settings};
use crate::clock::{Clock, SystemClock};
use crate::http::{AppState, server};
use crate::store::{OpenMode, Store};

pub fn run(path: Option<&Path>) -> Result<ExitCode, Failure> {
    let settings = Arc::new(settings(path)?);
    crate::logging::init(&settings.log);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = Arc::new(Store::open(&settings, OpenMode::Create, clock.as_ref())?);
    for r in store.unconfigured_orgs()? {
        tracing::warn!(org = %r.slug, "org has data on disk but is not configured; it is not served (data kept)");
    }
    // `admin_groups` may have changed since the last start: SCIM tokens made
    // by someone no longer an admin go now.
    let system = crate::audit::Context::system();
    for org in store.orgs() {
        if let Some(cfg) = settings.org(&org.slug) {
            crate::tokens::revoke_for_lost_admins(org, cfg, &system, clock.now())?;
        }
    }
    if settings.server.bind.ip().is_unspecified()
        && settings.server.public_url.host_str() == Some("localhost")
    {
        tracing::warn!(
            "server.public_url is not set; links will say localhost. Set it to the URL users reach"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(format!("cannot start the async runtime: {e}"), None))?;
    let setup = crate::setup::link::at_start(&store, &settings, clock.now()).map_err(|e| {
        Failure::new(
            e.to_string(),
            Some("check that the data directory is writable by the service user".into()),
        )
    })?;
    runtime.block_on(async move {
        let listener = server::bind(settings.server.bind)?;
        let state = AppState::new(Arc::clone(&settings), store, clock);
        let running = server::start(state, listener).await?;
        let banner = crate::setup::banner::build(&settings, setup.as_ref());
        crate::setup::banner::log(&banner, setup.as_ref());
        server::shutdown_signal().await;
        running.shutdown().await?;
        tracing::info!("stopped");
        Ok::<_, Failure>(ExitCode::SUCCESS)
    })
}
