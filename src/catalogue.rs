//! Each org's own concepts beside the shipped catalogue
//! (`crate::skill::catalogue`), under the reserved `x-` prefix: the write
//! path (`custom`), the checks a change must pass, cycle detection
//! included (`check`), the lookups sync and the pages use (`known`), and
//! their admin API (`routes`).

pub mod check;
pub mod custom;
pub mod known;
pub mod routes;

pub use known::{KnownIds, OrgConcepts, Standing};
