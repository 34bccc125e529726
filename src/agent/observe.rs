//! An observation: the kernel's raw finding before it becomes a delta.
//! The harness adapters and the tagger produce them from an agent's
//! events; the local store mints each one a UUIDv7 id once, records it
//! as a delta and queues it for sync. An observation carries only what
//! a delta carries: a concept, a transition and a time.

use chrono::{DateTime, Utc};

use crate::skill::delta::Transition;

/// One concept seen, explained, checked or demonstrated at a moment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Observation {
    /// A concept slug of the catalogue the kernel tags with.
    pub concept: String,
    pub transition: Transition,
    pub at: DateTime<Utc>,
}
