//! aiworklab appliance: the org server, operator tools and backup tooling in
//! one binary, and (to come) the engineer-side kernel, which shares only
//! `skill`. This file is the table of contents; `docs/architecture.md`
//! says which module may use which.
#![forbid(unsafe_code)]

/// The teaching kernel (`aiworklab agent`) on an engineer's machine: no server state, only `skill`.
pub mod agent;
/// The audit log: one-line recording of privileged actions, and its sweeper.
pub mod audit;
/// Backups: age-encrypted online snapshots, verify, restore, drill, schedule.
pub mod backup;
/// Each org's own concepts beside the shipped catalogue, and their admin API.
pub mod catalogue;
/// Comprehension checks: the question bank shipped in the binary, its validation and lookups.
pub mod checks;
/// Command-line interface: one file per subcommand.
pub mod cli;
/// Time as a parameter: the `Clock` trait, a system and a manual clock.
pub mod clock;
/// Configuration loading (figment) and validation into `Settings`.
pub mod config;
/// The key hierarchy: master key file and HKDF-derived keys.
pub mod crypto;
/// Devices: pairing codes, rotating refresh secrets, signed access tokens.
pub mod devices;
/// Where outbound connections may go: `air_gapped`, `egress_allow`, the guarded resolver (P25).
pub mod egress;
/// The JSON API's error type at the HTTP edge (RFC 9457 problem documents).
pub mod error;
/// Permission rules for secrets and data files.
pub mod fsperm;
/// The skill graph on the server: stored states, org aggregates and their trend, the engineer's own data.
pub mod graph;
/// The HTTP edge: state, extractors, middleware, TLS, serving, operations endpoints.
pub mod http;
/// Identifier newtypes that have passed their allow-list check.
pub mod ids;
/// Logging setup: text or JSON, request-scoped fields, nothing sensitive.
pub mod logging;
/// Prometheus metrics.
pub mod metrics;
/// The model client: OpenAI-compatible chat completions with structured output, bounded and counted.
pub mod model;
/// Aggregate releases with no path back to one engineer: periods, noise, scope rules, budget.
pub mod privacy;
/// The question service: checks from the bank or the model, grading, generated checks for admins.
pub mod question;
/// SCIM 2.0 provisioning: filters, PATCH, Users and Groups endpoints.
pub mod scim;
/// Bearer secrets: generation, prefixes, hashing, constant-time checks.
pub mod secrets;
/// Browser sessions: creation, rotation, timeouts, sign-out.
pub mod sessions;
/// First run: the setup link, the setup checklist, what `serve` says at start.
pub mod setup;
/// The shared fact model (no server state): deltas, FSRS, the state fold, the shipped catalogue.
pub mod skill;
/// OIDC single sign-on: the relying party, discovery cache, ID-token checks.
pub mod sso;
/// The encrypted SQLCipher store: files, keys, migrations, SQL.
pub mod store;
/// The daily sweeper: audit retention, engineers' data past its deletion hold, expired sessions.
pub mod sweeper;
/// Sync of concept-level deltas: the wire schema (privacy boundary), push, pull, API.
pub mod sync;
/// API tokens (SCIM, MCP): create, list, revoke, authenticate.
pub mod tokens;
/// People in an org: users, groups, roles, and who a sign-in is.
pub mod users;
/// The web shell: server-rendered pages for sign-in, account, administration.
pub mod web;

pub use http::AppState;

use axum::Router;
use axum::middleware::from_fn_with_state;

/// The whole application as a `Router`, so tests need no socket: each
/// capability's router, inside the HTTP edge's layers.
pub fn app(state: AppState) -> Router {
    let routes = Router::new()
        .merge(http::ops::router(&state))
        .merge(web::router(&state))
        .merge(sync::routes::router(&state))
        .merge(graph::routes::router(&state))
        .merge(catalogue::routes::router(&state))
        .merge(question::routes::router(&state))
        .merge(scim::routes::router(&state));
    let routes = http::request_layers(routes, &state)
        // SCIM clients get RFC 7644 errors, even from the layers inside.
        .layer(from_fn_with_state(state.clone(), scim::routes::scim_errors));
    http::response_layers(routes, state)
}
