//! The skill graph: what each engineer knows of each concept; `fsrs` is its memory model.

pub mod aggregates;
pub mod fsrs;
pub mod me;
pub mod routes;
pub mod state;
pub mod states;
pub mod trend;
