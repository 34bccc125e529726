//! The facts a device reports: one delta says that an engineer reached a
//! transition on a concept at a moment, with a grade on checks. Both
//! programs speak them: the kernel records them, the server stores and
//! folds them. Parsing them off the wire is `sync::wire`'s job.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What happened to an engineer and a concept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    Seen,
    Explained,
    CheckPassed,
    CheckFailed,
    Demonstrated,
}

impl Transition {
    pub const ALL: [Transition; 5] = [
        Self::Seen,
        Self::Explained,
        Self::CheckPassed,
        Self::CheckFailed,
        Self::Demonstrated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Seen => "seen",
            Self::Explained => "explained",
            Self::CheckPassed => "check_passed",
            Self::CheckFailed => "check_failed",
            Self::Demonstrated => "demonstrated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One validated delta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    pub id: uuid::Uuid,
    pub concept: String,
    pub transition: Transition,
    pub at: DateTime<Utc>,
    /// FSRS rating 1..=4, only on checks.
    pub grade: Option<u8>,
}
