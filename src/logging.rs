//! Logging with `tracing`: human-readable text by default, JSON lines with
//! `log.format = "json"`. Request spans carry request id, route, org and
//! actor, so one line is enough to start an investigation (SECURITY.md P24).
//! What is logged is chosen field by field; bodies, paths, query strings,
//! headers, tokens and answers are never among them.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. Calling it twice is harmless (the second
/// call is ignored), which keeps tests simple.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_new(&settings.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::NONE);
    let _ = match settings.format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
