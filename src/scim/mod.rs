//! SCIM 2.0 provisioning (RFC 7643, RFC 7644). For now the grammar the
//! `/scim/v2` endpoints will parse: filters (`?filter=`, RFC 7644 §3.4.2.2)
//! and attribute and PATCH paths (RFC 7644 §3.5.2, §3.10).

pub mod filter;
pub mod path;
