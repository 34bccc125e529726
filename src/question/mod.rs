//! The question service on the appliance: one comprehension check for a
//! concept, from the question bank or written by the org's model and
//! stored with its provenance, and the grading of answers, for paired
//! devices (`routes`); the admin's view of the generated checks. The
//! domain is in [`service`]; `docs/checks.md` describes the policy.

pub mod routes;
pub mod service;

pub use service::{Checks, GradeRequest, ServiceError, Writing};
