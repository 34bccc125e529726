//! The discovery endpoints of RFC 7644 §4: what this service provider
//! supports (`ServiceProviderConfig`), its resource types and the schemas
//! of the attributes it keeps (RFC 7643 §5–§7).

use serde_json::{Value as Json, json};

use super::path::{CORE_GROUP_URN, CORE_USER_URN, ENTERPRISE_USER_URN};

const SPC_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RT_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// `GET /ServiceProviderConfig` (RFC 7643 §5).
pub fn service_provider_config(base: &str) -> Json {
    json!({
        "schemas": [SPC_URN],
        "patch": { "supported": true },
        "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
        "filter": { "supported": true, "maxResults": super::query::MAX_COUNT },
        "changePassword": { "supported": false },
        "sort": { "supported": true },
        "etag": { "supported": true },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "An org's SCIM token: aiworklab token create --org X --kind scim",
            "primary": true,
        }],
        "meta": { "resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig") },
    })
}

/// `GET /ResourceTypes` (RFC 7643 §6).
pub fn resource_types(base: &str) -> Vec<Json> {
    vec![
        json!({
            "schemas": [RT_URN], "id": "User", "name": "User", "endpoint": "/Users",
            "description": "A person of the org", "schema": CORE_USER_URN,
            "schemaExtensions": [{ "schema": ENTERPRISE_USER_URN, "required": false }],
            "meta": { "resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User") },
        }),
        json!({
            "schemas": [RT_URN], "id": "Group", "name": "Group", "endpoint": "/Groups",
            "description": "A team; admin groups give the admin role", "schema": CORE_GROUP_URN,
            "meta": { "resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/Group") },
        }),
    ]
}

fn attr(
    name: &str,
    kind: &str,
    multi: bool,
    required: bool,
    mutability: &str,
    uniqueness: &str,
) -> Json {
    json!({
        "name": name, "type": kind, "multiValued": multi, "required": required,
        "caseExact": false, "mutability": mutability, "returned": "default", "uniqueness": uniqueness,
    })
}

fn complex(name: &str, multi: bool, subs: &[&str]) -> Json {
    let mut a = attr(name, "complex", multi, false, "readWrite", "none");
    a["subAttributes"] = Json::Array(
        subs.iter()
            .map(|s| match *s {
                "primary" => attr(s, "boolean", false, false, "readWrite", "none"),
                _ => attr(s, "string", false, false, "readWrite", "none"),
            })
            .collect(),
    );
    a
}

/// `GET /Schemas` (RFC 7643 §7): the attributes this provider keeps.
pub fn schemas(base: &str) -> Vec<Json> {
    let s = |id: &str, name: &str, attrs: Vec<Json>| {
        json!({
            "schemas": [SCHEMA_URN], "id": id, "name": name, "attributes": attrs,
            "meta": { "resourceType": "Schema", "location": format!("{base}/Schemas/{id}") },
        })
    };
    let mv = ["value", "display", "type", "primary"];
    // A member's value and type are what a client writes; display and
    // $ref are filled in by the server from the member it names.
    let mut members = complex("members", true, &["value", "display", "$ref", "type"]);
    members["subAttributes"][0]["mutability"] = json!("immutable");
    members["subAttributes"][1]["mutability"] = json!("readOnly");
    members["subAttributes"][2]["mutability"] = json!("readOnly");
    members["subAttributes"][2]["type"] = json!("reference");
    members["subAttributes"][2]["referenceTypes"] = json!(["User", "Group"]);
    members["subAttributes"][3]["mutability"] = json!("immutable");
    members["subAttributes"][3]["canonicalValues"] = json!(["User", "Group"]);
    let mut groups = complex("groups", true, &["value", "display", "$ref", "type"]);
    groups["mutability"] = json!("readOnly");
    vec![
        s(
            CORE_USER_URN,
            "User",
            vec![
                attr("userName", "string", false, true, "readWrite", "server"),
                complex(
                    "name",
                    false,
                    &[
                        "formatted",
                        "familyName",
                        "givenName",
                        "middleName",
                        "honorificPrefix",
                        "honorificSuffix",
                    ],
                ),
                attr("displayName", "string", false, false, "readWrite", "none"),
                attr("nickName", "string", false, false, "readWrite", "none"),
                attr("profileUrl", "reference", false, false, "readWrite", "none"),
                attr("title", "string", false, false, "readWrite", "none"),
                attr("userType", "string", false, false, "readWrite", "none"),
                attr(
                    "preferredLanguage",
                    "string",
                    false,
                    false,
                    "readWrite",
                    "none",
                ),
                attr("locale", "string", false, false, "readWrite", "none"),
                attr("timezone", "string", false, false, "readWrite", "none"),
                attr("active", "boolean", false, false, "readWrite", "none"),
                complex("emails", true, &mv),
                complex("phoneNumbers", true, &mv),
                complex("ims", true, &mv),
                complex("photos", true, &mv),
                complex(
                    "addresses",
                    true,
                    &[
                        "formatted",
                        "streetAddress",
                        "locality",
                        "region",
                        "postalCode",
                        "country",
                        "type",
                        "primary",
                    ],
                ),
                groups,
                complex("entitlements", true, &mv),
                complex("roles", true, &mv),
                complex("x509Certificates", true, &mv),
            ],
        ),
        s(
            ENTERPRISE_USER_URN,
            "EnterpriseUser",
            vec![
                attr(
                    "employeeNumber",
                    "string",
                    false,
                    false,
                    "readWrite",
                    "none",
                ),
                attr("costCenter", "string", false, false, "readWrite", "none"),
                attr("organization", "string", false, false, "readWrite", "none"),
                attr("division", "string", false, false, "readWrite", "none"),
                attr("department", "string", false, false, "readWrite", "none"),
                complex("manager", false, &["value", "$ref", "displayName"]),
            ],
        ),
        s(
            CORE_GROUP_URN,
            "Group",
            vec![
                attr("displayName", "string", false, true, "readWrite", "server"),
                members,
            ],
        ),
    ]
}
