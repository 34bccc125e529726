//! The skill graph on the server: each engineer's stored state per concept
//! (folded by `crate::skill::state`), org aggregates and their trend, the
//! engineer's own data, and their API.

pub mod aggregates;
pub mod checkpoints;
pub mod me;
pub mod refold;
pub mod routes;
pub mod states;
pub mod trend;
