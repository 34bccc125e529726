//! Serving: binding, TLS or plain HTTP, background tasks (sweeper,
//! scheduled backups, rate-limit trimming), and graceful
//! shutdown on SIGTERM/SIGINT that lets in-flight requests finish.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::AppState;
use crate::app;

/// How long a client may take to send its first request, or to finish a TLS
/// handshake, before the connection is dropped (slow-client defence).
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A running server.
pub struct Running {
    /// The address actually bound (useful with port 0).
    pub addr: SocketAddr,
    handle: Handle<SocketAddr>,
    task: JoinHandle<std::io::Result<()>>,
    stop_background: watch::Sender<bool>,
    grace: Duration,
}

impl Running {
    /// Stops accepting connections, gives in-flight requests the configured
    /// grace period, stops background tasks, and waits for the end.
    ///
    /// # Errors
    /// The server's I/O error, if it failed.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        tracing::info!(
            grace_secs = self.grace.as_secs(),
            "shutting down: draining in-flight requests"
        );
        let _ = self.stop_background.send(true);
        self.handle.graceful_shutdown(Some(self.grace));
        match self.task.await {
            Ok(r) => Ok(r?),
            Err(e) => Err(ServeError::Io(std::io::Error::other(e))),
        }
    }
}

/// Binds the configured address.
///
/// # Errors
/// [`ServeError::Bind`] when the address is taken or not allowed.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    let l = TcpListener::bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
    l.set_nonblocking(true)
        .map_err(|source| ServeError::Bind { addr, source })?;
    Ok(l)
}

/// Starts serving `state` on `listener`, with the background tasks (audit
/// sweeper, the refold worker, trimming of rate-limit memory and idle
/// read connections, scheduled backups).
///
/// # Errors
/// TLS configuration errors and listener errors.
pub async fn start(state: AppState, listener: TcpListener) -> Result<Running, ServeError> {
    let addr = listener.local_addr()?;
    let settings = Arc::clone(&state.settings);
    let handle: Handle<SocketAddr> = Handle::new();
    let (stop_background, stop_rx) = watch::channel(false);

    tokio::spawn(crate::sweeper::run(
        Arc::clone(&state.store),
        Arc::clone(&state.settings),
        Arc::clone(&state.clock),
        stop_rx.clone(),
    ));
    tokio::spawn(crate::graph::refold::run(
        Arc::clone(&state.store),
        Arc::clone(&state.clock),
        stop_rx.clone(),
    ));
    tokio::spawn(trim_idle(state.clone(), stop_rx.clone()));
    tokio::spawn(crate::backup::schedule::run(
        Arc::clone(&state.store),
        Arc::clone(&state.settings),
        Arc::clone(&state.clock),
        Arc::clone(&state.metrics),
        stop_rx,
    ));

    let make = app(state).into_make_service_with_connect_info::<SocketAddr>();
    let task = match &settings.server.tls {
        Some(files) => {
            let config = super::tls::server_config(files, settings.server.tls_min_version)?;
            let mut acceptor =
                axum_server::tls_rustls::RustlsAcceptor::new(RustlsConfig::from_config(config));
            acceptor = acceptor.handshake_timeout(FIRST_REQUEST_TIMEOUT);
            let server = axum_server::from_tcp(listener)?
                .acceptor(acceptor)
                .first_request_timeout(FIRST_REQUEST_TIMEOUT)
                .handle(handle.clone());
            tokio::spawn(server.serve(make))
        }
        None => {
            let server = axum_server::from_tcp(listener)?
                .first_request_timeout(FIRST_REQUEST_TIMEOUT)
                .handle(handle.clone());
            tokio::spawn(server.serve(make))
        }
    };
    let scheme = if settings.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(%addr, scheme, public_url = %settings.server.public_url, "listening");
    Ok(Running {
        addr,
        handle,
        task,
        stop_background,
        grace: settings.server.shutdown_grace,
    })
}

/// Starts the appliance on `settings`, `store` and `clock` on an ephemeral
/// loopback port, for the restore drill (a `crate::backup::drill::Start`):
/// answers the address and the future that drains and stops it.
pub fn start_on_loopback(
    settings: Arc<crate::config::Settings>,
    store: Arc<crate::store::Store>,
    clock: Arc<dyn crate::clock::Clock>,
) -> crate::backup::drill::Starting {
    Box::pin(async move {
        let any = SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0));
        let listener = bind(any).map_err(|e| e.to_string())?;
        let running = start(AppState::new(settings, store, clock), listener)
            .await
            .map_err(|e| e.to_string())?;
        let addr = running.addr;
        let stop: Stop =
            Box::pin(async move { running.shutdown().await.map_err(|e| e.to_string()) });
        Ok((addr, stop))
    })
}

/// Drains and stops a server started by [`start_on_loopback`].
pub type Stop = std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// How long a read connection may sit unused before it is closed and its
/// page cache (up to 16 MiB) given back: an org read once an hour does not
/// hold a full pool between reads.
const READER_IDLE: Duration = Duration::from_secs(600);

/// Every minute: forgets rate-limit buckets not used lately and closes the
/// read connections idle for [`READER_IDLE`].
async fn trim_idle(state: AppState, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(60)) => {
                state.limits.retain_recent();
                let store = Arc::clone(&state.store);
                if let Err(e) =
                    tokio::task::spawn_blocking(move || store.close_idle_readers(READER_IDLE)).await
                {
                    tracing::error!(error = %e, "closing idle read connections panicked");
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
