//! The one integration test binary. Each module tries to break one group of
//! promises from SECURITY.md; `docs/security.md` names the tests per row.

mod agent;
mod agent_mcp;
mod agent_privacy;
mod aggregates_page;
mod air_gapped;
mod audit;
mod backup;
mod backup_signing;
mod browser;
mod browser_dashboard;
mod checks_access;
mod checks_service;
mod cli;
mod concepts;
mod dashboard;
mod first_run;
mod graph;
mod harness_real;
mod http;
mod idp;
mod privacy_attacks;
mod ratelimit;
mod scim;
mod scim_conformance;
mod scim_tokens;
mod scripted_model;
mod session_api;
mod sso;
mod sso_forged;
mod store;
mod support;
mod sync;
mod tls;
mod tokens;
