//! The teaching kernel: `aiworklab agent` on an engineer's machine. It
//! listens to the events and session records of the engineer's coding
//! agent, tags the concepts they show offline, keeps the engineer's skill
//! graph in a local encrypted store and syncs concept-level facts (never
//! code, diffs, prompts or paths) to the org's appliance.
//!
//! It uses `skill` (the shared fact model) and nothing server-side: no
//! `store`, no `http`, no `AppState` (docs/architecture.md).

/// The kernel's errors, each naming its fix.
pub mod error;
/// The install's directory.
pub mod home;
/// What the harness adapters and the tagger hand to the local store.
pub mod observe;
/// The local encrypted store.
pub mod store;

pub use error::AgentError;
/// The appliance's device API, as a client.
pub mod client;
/// What the engineer sees: status, outbox, doctor.
pub mod status;
/// Pairing and the sync client.
pub mod sync;

/// Offline concept tagging: catalogue matchers and syntax-tree rules.
pub mod tag;

/// Harness adapters: hook payloads and session records to observations.
pub mod harness;

/// `agent install` / `agent uninstall`: the harnesses' hook settings.
pub mod install;

/// `agent hook`: the entry each harness event runs.
pub mod hook;

/// `agent ingest`: the hooks' signals, and the worker that reads them.
pub mod ingest;

/// Comprehension checks: what is due, asking one, grading, recording.
pub mod checks;

/// `agent mcp`: the MCP server the coding agent asks about the engineer's skills.
pub mod mcp;
