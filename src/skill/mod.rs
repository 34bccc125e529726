//! The concept-level fact model both programs in the binary share: the
//! server, and the engineer-side kernel to come, which runs on engineers'
//! machines with no server state. Deltas and their transitions
//! (`delta.rs`), the FSRS-5 memory model and its grades (`fsrs.rs`), the
//! pure fold from deltas to a state per concept (`state.rs`), a compact
//! binary form of a run of facts (`packed.rs`, which the appliance keeps
//! beside its folds), and the concept catalogue shipped in the binary
//! (`catalogue.rs`).
//!
//! Nothing here depends on anything server-side: no `store`, no `http`,
//! no server state, no I/O. `sync` and `graph` depend on this module;
//! `docs/architecture.md` has the rule and the check.

pub mod catalogue;
pub mod delta;
pub mod fsrs;
pub mod packed;
pub mod state;

pub use catalogue::{Catalogue, Concept};
pub use delta::{Delta, Transition};
