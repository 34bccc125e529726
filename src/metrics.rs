//! Prometheus metrics: request counts and latency by route and status,
//! rate-limit rejections by endpoint class, database sizes and read
//! connections. Held in the application state, never in a global registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::store::Store;

/// Labels of the request metrics. Every value comes from a bounded set, so
/// no client can create new series: the method is one of [`method_label`]'s
/// names, the route a route template of the router (or `unmatched`), the
/// status one the server answered with.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabels {
    pub class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DbLabels {
    pub database: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReaderLabels {
    pub database: String,
    /// `busy` (handed out) or `idle` (open, waiting to be).
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    pub version: &'static str,
}

/// The request method as a metric label: the methods of RFC 9110 and
/// PATCH (RFC 5789) by name, anything else `other`. A method is any token
/// the client likes, so using it as it came would let an anonymous client
/// create a new series per request.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::PATCH, "PATCH"),
        (Method::DELETE, "DELETE"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::TRACE, "TRACE"),
        (Method::CONNECT, "CONNECT"),
    ];
    KNOWN
        .iter()
        .find(|(m, _)| m == method)
        .map_or("other", |(_, name)| name)
}

/// Latency buckets in seconds, from 1 ms to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Labels of model calls: what the call was for (`generate`, `grade`)
/// and how it ended (`ok`, `timeout`, `unreachable`, `unauthorized`,
/// `refused`, `http_error`, `bad_answer`). Both from fixed sets.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelCallLabels {
    pub purpose: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PurposeLabels {
    pub purpose: &'static str,
}

/// Calls to the model server (`crate::model`): counts by outcome and
/// latency. Never a prompt, an answer or the key.
pub struct ModelMetrics {
    pub calls: Family<ModelCallLabels, Counter>,
    pub latency: Family<PurposeLabels, Histogram>,
}

impl Default for ModelMetrics {
    fn default() -> Self {
        Self {
            calls: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS)),
        }
    }
}

/// Results of scheduled backups.
#[derive(Default)]
pub struct BackupMetrics {
    pub last_success: Gauge,
    pub last_duration: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub last_size: Gauge,
    pub failures: Counter,
}

pub struct Metrics {
    registry: Registry,
    pub backup: BackupMetrics,
    pub model: ModelMetrics,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RequestLabels, Histogram>,
    pub rate_limited: Family<ClassLabels, Counter>,
    db_bytes: Family<DbLabels, Gauge>,
    db_readers: Family<ReaderLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("aiworklab");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(LATENCY_BUCKETS)
        });
        let rate_limited = Family::<ClassLabels, Counter>::default();
        let db_bytes = Family::<DbLabels, Gauge>::default();
        let db_readers = Family::<ReaderLabels, Gauge>::default();
        let info = Family::<VersionLabels, Gauge>::default();
        info.get_or_create(&VersionLabels {
            version: env!("CARGO_PKG_VERSION"),
        })
        .set(1);
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency, by method, route and status",
            latency.clone(),
        );
        registry.register(
            "rate_limited_requests",
            "Requests refused with 429, by endpoint class",
            rate_limited.clone(),
        );
        registry.register(
            "database_size_bytes",
            "Size on disk of each database (file plus WAL)",
            db_bytes.clone(),
        );
        registry.register(
            "database_read_connections",
            "Open read-only connections of each database, busy or idle (at most storage.read_pool_size)",
            db_readers.clone(),
        );
        registry.register("build_info", "Version of the running binary", info);
        let backup = BackupMetrics::default();
        registry.register(
            "backup_last_success_timestamp_seconds",
            "Unix time of the last successful scheduled backup",
            backup.last_success.clone(),
        );
        registry.register(
            "backup_last_duration_seconds",
            "Duration of the last successful scheduled backup",
            backup.last_duration.clone(),
        );
        registry.register(
            "backup_last_size_bytes",
            "Size of the last successful scheduled backup archive",
            backup.last_size.clone(),
        );
        registry.register(
            "backup_failures",
            "Scheduled backups that failed",
            backup.failures.clone(),
        );
        let model = ModelMetrics::default();
        registry.register(
            "model_calls",
            "Calls to the model server, by purpose (generate, grade) and outcome",
            model.calls.clone(),
        );
        registry.register(
            "model_call_duration_seconds",
            "Latency of calls to the model server, by purpose",
            model.latency.clone(),
        );
        Self {
            registry,
            backup,
            model,
            requests,
            latency,
            rate_limited,
            db_bytes,
            db_readers,
        }
    }

    /// The OpenMetrics text exposition, with database sizes and read
    /// connections read now.
    pub fn render(&self, store: &Store) -> String {
        let dbs = std::iter::once(("system".to_string(), store.system()))
            .chain(store.orgs().map(|o| (format!("org:{}", o.slug), &o.db)));
        for (database, db) in dbs {
            let (open, idle) = db.reader_counts();
            for (state, n) in [("busy", open - idle), ("idle", idle)] {
                self.db_readers
                    .get_or_create(&ReaderLabels {
                        database: database.clone(),
                        state,
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            self.db_bytes
                .get_or_create(&DbLabels { database })
                .set(i64::try_from(db.size_on_disk()).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn methods_outside_the_known_set_are_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for made_up in ["FOO", "get", "X-PROBE1", "PROPFIND"] {
            let m = Method::from_bytes(made_up.as_bytes()).expect("a method token");
            assert_eq!(method_label(&m), "other", "{made_up}");
        }
    }
}
