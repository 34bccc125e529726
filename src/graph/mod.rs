//! The skill graph: what each engineer knows of each concept; `fsrs` is its memory model.

pub mod fsrs;
