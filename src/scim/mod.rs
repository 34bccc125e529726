//! SCIM 2.0 provisioning (RFC 7643, RFC 7644): the `/scim/v2` endpoints an
//! org's identity provider (Okta, Microsoft Entra ID) drives with the org's
//! SCIM token. The grammar they parse: filters (`?filter=`, RFC 7644
//! §3.4.2.2) and attribute and PATCH paths (RFC 7644 §3.5.2, §3.10).

pub mod demotion;
pub mod discovery;
pub mod error;
pub mod extract;
pub mod filter;
pub mod list;
pub mod members;
pub mod patch;
pub mod path;
pub mod query;
pub mod resource;
pub mod routes;
pub mod search;
pub mod service;
