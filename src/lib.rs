//! aiworklab appliance: the org server, operator tools and backup tooling in
//! one binary. This file is the table of contents.
#![forbid(unsafe_code)]

/// The audit log: one-line recording of privileged actions, and its sweeper.
pub mod audit;
/// Backups: age-encrypted online snapshots, verify, restore, drill, schedule.
pub mod backup;
/// The concept catalogue shipped in the binary, and each org's own concepts beside it.
pub mod catalogue;
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
/// The error type at the HTTP edge and its renderers.
pub mod error;
/// Permission rules for secrets and data files.
pub mod fsperm;
/// The skill graph: per-engineer concept state and the FSRS memory model.
pub mod graph;
/// The HTTP server: router assembly, middleware, TLS, operations endpoints.
pub mod http;
/// Identifier newtypes that have passed their allow-list check.
pub mod ids;
/// Logging setup: text or JSON, request-scoped fields, nothing sensitive.
pub mod logging;
/// Prometheus metrics.
pub mod metrics;
/// SCIM 2.0 provisioning: filters, PATCH, Users and Groups endpoints.
pub mod scim;
/// Bearer secrets: generation, prefixes, hashing, constant-time checks.
pub mod secrets;
/// Browser sessions: creation, rotation, timeouts, sign-out.
pub mod sessions;
/// First run: the setup link, the setup checklist, what `serve` says at start.
pub mod setup;
/// OIDC single sign-on: the relying party, discovery cache, ID-token checks.
pub mod sso;
/// The encrypted SQLCipher store: files, keys, migrations, SQL.
pub mod store;
/// The daily sweeper: audit retention and expired sessions.
pub mod sweeper;
/// Sync of concept-level deltas: the wire schema (privacy boundary), push, pull, API.
pub mod sync;
/// API tokens (SCIM, MCP): create, list, revoke, authenticate.
pub mod tokens;
/// People in an org: users, groups, roles, and who a sign-in is.
pub mod users;
/// The web shell: server-rendered pages for sign-in, account, administration.
pub mod web;

pub use http::{AppState, app};
