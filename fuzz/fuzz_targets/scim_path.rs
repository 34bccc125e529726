//! SCIM attribute paths: PATCH operation paths (RFC 7644 §3.5.2) and
//! `sortBy` (§3.4.2.3). No input panics, and a parsed PATCH path renders
//! to text that parses back to the same path.
#![no_main]

use aiworklab::scim::filter::MAX_INPUT_LEN;
use aiworklab::scim::list::{Kind, Sort};
use aiworklab::scim::path::parse_path;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Sort::parse(text, Some("descending"), Kind::User);
    let _ = Sort::parse(text, None, Kind::Group);
    let Ok(parsed) = parse_path(text) else {
        return;
    };
    let target = parsed.target();
    let _ = target.values(&json!({"emails": [{"type": "work", "value": "a@example.com"}]}));
    let rendered = parsed.to_string();
    if rendered.len() <= MAX_INPUT_LEN {
        assert_eq!(
            parse_path(&rendered),
            Ok(parsed),
            "{text:?} rendered as {rendered:?}"
        );
    }
});
