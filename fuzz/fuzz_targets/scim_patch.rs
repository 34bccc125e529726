//! SCIM PATCH bodies (RFC 7644 §3.5.2) from the raw request bytes, as the
//! Users and Groups endpoints handle them: the body read as a JSON object,
//! its operations parsed, applied to a user and to a group as the service
//! renders them, and the result read back as the fields that would be
//! written. No input panics any step.
#![no_main]

use std::sync::LazyLock;

use aiworklab::scim::patch::{apply, parse_operations};
use aiworklab::scim::path::{CORE_GROUP_URN, CORE_USER_URN, ENTERPRISE_USER_URN};
use aiworklab::scim::resource::{group_fields, user_fields};
use aiworklab::scim::service::object;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value as Json, json};

fn as_object(doc: Json) -> Map<String, Json> {
    match doc {
        Json::Object(o) => o,
        _ => unreachable!("the documents below are objects"),
    }
}

/// A user as `patch_user` hands it to `apply` (rendered, without `meta`
/// and `groups`).
static USER: LazyLock<Map<String, Json>> = LazyLock::new(|| {
    as_object(json!({
        "schemas": [CORE_USER_URN, ENTERPRISE_USER_URN],
        "id": "0190b8d2-7a3c-7e4f-8a1b-2c3d4e5f6a7b",
        "externalId": "00u1",
        "userName": "bjensen@example.com",
        "displayName": "Barbara Jensen",
        "active": true,
        "emails": [
            {"type": "work", "value": "bjensen@example.com", "primary": true},
            {"type": "home", "value": "babs@example.org"}
        ],
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        ENTERPRISE_USER_URN: {"employeeNumber": "701984", "manager": {"value": "26118915"}}
    }))
});

/// A group as `patch_group` hands it to `apply` (rendered, without `meta`).
static GROUP: LazyLock<Map<String, Json>> = LazyLock::new(|| {
    as_object(json!({
        "schemas": [CORE_GROUP_URN],
        "id": "0190b8d2-0000-7000-8000-000000000001",
        "displayName": "Engineering",
        "members": [
            {"value": "0190b8d2-7a3c-7e4f-8a1b-2c3d4e5f6a7b", "display": "bjensen@example.com",
             "$ref": "https://aiwl.example/scim/v2/Users/0190b8d2-7a3c-7e4f-8a1b-2c3d4e5f6a7b",
             "type": "User"}
        ]
    }))
});

fuzz_target!(|data: &[u8]| {
    let Ok(body) = object(data) else {
        return;
    };
    let Ok(ops) = parse_operations(&body) else {
        return;
    };
    let mut user = USER.clone();
    if apply(&mut user, CORE_USER_URN, &ops).is_ok() {
        let _ = user_fields(&user);
    }
    let mut group = GROUP.clone();
    if apply(&mut group, CORE_GROUP_URN, &ops).is_ok() {
        let _ = group_fields(&group);
    }
});
