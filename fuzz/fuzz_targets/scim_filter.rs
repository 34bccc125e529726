//! SCIM filters (RFC 7644 §3.4.2.2) as `?filter=` brings them: no input
//! panics the parser or the matcher, and a parsed filter renders to text
//! that parses back to the same filter.
#![no_main]

use std::sync::LazyLock;

use aiworklab::scim::filter::{self, MAX_INPUT_LEN};
use aiworklab::scim::resource::comparison;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value as Json, json};

/// A user as the list endpoint renders one, to run parsed filters against.
static USER: LazyLock<Json> = LazyLock::new(|| {
    json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "id": "0190b8d2-7a3c-7e4f-8a1b-2c3d4e5f6a7b",
        "externalId": "00u1",
        "userName": "bjensen@example.com",
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "displayName": "Barbara Jensen",
        "active": true,
        "logins": 42,
        "emails": [
            {"type": "work", "value": "bjensen@example.com", "primary": true},
            {"type": "home", "value": "babs@example.org"}
        ],
        "groups": [{"value": "0190b8d2-0000-7000-8000-000000000001", "display": "Eng"}],
        "meta": {
            "resourceType": "User",
            "created": "2026-01-02T03:04:05Z",
            "lastModified": "2026-11-23T08:00:00.5Z"
        },
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701984",
            "manager": {"value": "26118915"}
        }
    })
});

fuzz_target!(|data: &[u8]| {
    // The query string reaches the parser as UTF-8 text.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = filter::parse(text) else {
        return;
    };
    let _ = parsed.matches(&USER, &comparison);
    let rendered = parsed.to_string();
    // Rendering may add quotes, escapes or parentheses; past the input
    // limit the parser refuses it, as it should.
    if rendered.len() <= MAX_INPUT_LEN {
        assert_eq!(
            filter::parse(&rendered),
            Ok(parsed),
            "{text:?} rendered as {rendered:?}"
        );
    }
});
