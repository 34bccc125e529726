//! What can go wrong in the kernel, each saying what happened and how to
//! fix it: the command line prints the message as it is.

use std::path::PathBuf;

/// A kernel failure. The message names the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(
        "cannot find a data directory for the kernel (no home directory); set AIWORKLAB_AGENT_HOME to a directory it may use"
    )]
    NoHome,
    #[error("{what} ({path}): {source}; check that the directory exists and belongs to you")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The store's key is missing, unreadable or unusable.
    #[error("{0}")]
    Key(String),
    #[error(
        "the local store {path} cannot be opened with its key from {key}: the key is not the one it was made with, or the file is damaged; if the key is lost, move the store aside and pair again (deltas not yet synced are lost)"
    )]
    WrongKey { path: PathBuf, key: String },
    #[error("the local store failed: {0}; run `aiworklab agent doctor`")]
    Store(#[from] rusqlite::Error),
    /// Another kernel process kept the store from being made durable
    /// before a sync sent anything.
    #[error(
        "the local store {0} stayed busy (another aiworklab process was writing or reading it), so nothing was sent; nothing is lost (deltas not yet synced stay queued): run the command again"
    )]
    Busy(PathBuf),
    #[error("the local store's schema could not be brought up to date: {0}")]
    Migration(String),
    /// An observation or argument the kernel refuses; nothing was stored.
    #[error("{0}")]
    Invalid(String),
    #[error(
        "this install is not paired with an appliance; run `aiworklab agent pair --server URL --code CODE` (get a code on your account page)"
    )]
    NotPaired,
    #[error("this install is already paired with {0}; run `aiworklab agent unpair` first")]
    AlreadyPaired(String),
    /// The server revoked this device or refuses its credentials.
    #[error(
        "{0}; this device no longer syncs. Pair it again: `aiworklab agent unpair`, then `aiworklab agent pair --server URL --code CODE` with a new code from your account page (nothing queued is lost)"
    )]
    Revoked(String),
    /// The server URL or CA file is unusable.
    #[error("{0}")]
    Config(String),
    #[error(
        "cannot reach the appliance at {url}: {reason}; nothing is lost (deltas not yet synced stay queued): run the command again once it is reachable"
    )]
    Unreachable { url: String, reason: String },
    #[error(
        "the appliance asks this device to wait {retry_after_secs} s (rate limit); nothing is lost (deltas not yet synced stay queued): run the command again after that"
    )]
    RateLimited { retry_after_secs: u64 },
    /// The server answered with an error the kernel cannot act on.
    #[error("the appliance refused: {0}")]
    Server(String),
}

impl AgentError {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.into(),
            source,
        }
    }
}
