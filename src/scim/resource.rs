//! SCIM resources as JSON (RFC 7643 §4): rendering users and groups from
//! their rows, and reading a resource body (POST, PUT, or the result of a
//! PATCH) back into the fields we store. Attribute names are matched
//! case-insensitively (RFC 7643 §2.1) and stored in their canonical spelling.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json, json};

use super::error::ScimError;
use super::filter::Comparison;
use super::path::{CORE_GROUP_URN, CORE_USER_URN, ENTERPRISE_USER_URN};
use crate::clock::from_millis;
use crate::store::groups::MemberType;
use crate::store::scim::{GroupRow, Membership, ScimUserRow};

/// Attributes of the core User schema kept in `scim_attrs` as sent.
const USER_EXTRA: [&str; 15] = [
    "name",
    "nickName",
    "profileUrl",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
    "phoneNumbers",
    "addresses",
    "photos",
    "ims",
    "entitlements",
    "roles",
    "x509Certificates",
];

/// Attributes of the enterprise User extension (RFC 7643 §4.3).
const ENTERPRISE: [&str; 6] = [
    "employeeNumber",
    "costCenter",
    "organization",
    "division",
    "department",
    "manager",
];

/// Attributes clients may send but never set: ignored on POST and PUT.
const READ_ONLY: [&str; 4] = ["id", "meta", "groups", "schemas"];

/// One email address with every sub-attribute `/Schemas` advertises
/// (RFC 7643 §4.1.2), so that each round-trips. Stored in `users.emails`,
/// which `users::Email` reads too (it ignores `display`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimEmail {
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub display: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub primary: bool,
}

/// The value of `name` in `obj`, matching case-insensitively.
pub fn get_ci<'j>(obj: &'j Map<String, Json>, name: &str) -> Option<&'j Json> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// The key spelling `obj` uses for `name`, if it has one.
pub fn key_ci(obj: &Map<String, Json>, name: &str) -> Option<String> {
    obj.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// The fields of a user as a request describes them.
#[derive(Debug, Clone, PartialEq)]
pub struct UserFields {
    pub user_name: String,
    pub display_name: String,
    pub external_id: Option<String>,
    /// `None` when the document does not say: a new user is active, a
    /// replaced one keeps its state (a PUT never reactivates by omission).
    pub active: Option<bool>,
    pub emails: Vec<ScimEmail>,
    /// The other core and enterprise attributes, canonical names.
    pub attrs: Map<String, Json>,
}

/// A boolean, also as IdPs send it: `"True"`, `"false"`.
fn boolean(v: &Json, what: &str) -> Result<bool, ScimError> {
    match v {
        Json::Bool(b) => Ok(*b),
        Json::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Json::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(ScimError::invalid_value(format!(
            "{what} must be true or false"
        ))),
    }
}

fn opt_string(v: Option<&Json>, what: &str, max: usize) -> Result<Option<String>, ScimError> {
    match v {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) if s.chars().count() <= max => Ok(Some(s.clone())),
        Some(Json::String(_)) => Err(ScimError::invalid_value(format!(
            "{what} is longer than {max} characters"
        ))),
        Some(_) => Err(ScimError::invalid_value(format!("{what} must be a string"))),
    }
}

fn emails(v: Option<&Json>) -> Result<Vec<ScimEmail>, ScimError> {
    let items = match v {
        None | Some(Json::Null) => return Ok(Vec::new()),
        Some(Json::Array(items)) => items,
        Some(_) => return Err(ScimError::invalid_value("emails must be an array")),
    };
    if items.len() > 20 {
        return Err(ScimError::invalid_value("at most 20 emails are kept"));
    }
    let mut out = Vec::new();
    for item in items {
        let Json::Object(o) = item else {
            return Err(ScimError::invalid_value("each email must be an object"));
        };
        let Some(value) = opt_string(get_ci(o, "value"), "emails.value", 320)? else {
            continue;
        };
        out.push(ScimEmail {
            value,
            display: opt_string(get_ci(o, "display"), "emails.display", 256)?,
            kind: opt_string(get_ci(o, "type"), "emails.type", 64)?,
            primary: match get_ci(o, "primary") {
                None | Some(Json::Null) => false,
                Some(p) => boolean(p, "emails.primary")?,
            },
        });
    }
    Ok(out)
}

/// Checks `schemas` of a request body: present, and only schemas we serve.
///
/// # Errors
/// 400 `invalidValue` naming the unknown schema.
pub fn check_schemas(body: &Map<String, Json>, allowed: &[&str]) -> Result<(), ScimError> {
    let Some(Json::Array(schemas)) = get_ci(body, "schemas") else {
        return Err(ScimError::invalid_value("the body must list its schemas"));
    };
    for s in schemas {
        let known = s
            .as_str()
            .is_some_and(|s| allowed.iter().any(|a| a.eq_ignore_ascii_case(s)));
        if !known {
            return Err(ScimError::invalid_value(format!(
                "unknown schema {s}; this endpoint accepts {}",
                allowed.join(", ")
            )));
        }
    }
    Ok(())
}

/// Reads a User document (a POST or PUT body, or a patched resource).
/// Unknown attributes are ignored, read-only ones too (RFC 7643 §2.2).
///
/// # Errors
/// 400 `invalidValue` for a missing userName or a value of the wrong type.
pub fn user_fields(doc: &Map<String, Json>) -> Result<UserFields, ScimError> {
    let user_name = opt_string(get_ci(doc, "userName"), "userName", 256)?
        .ok_or_else(|| ScimError::invalid_value("userName is required"))?;
    if user_name.is_empty()
        || user_name
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(ScimError::invalid_value(
            "userName must be 1 to 256 characters with no spaces or control characters",
        ));
    }
    let mut attrs = Map::new();
    for name in USER_EXTRA {
        if let Some(v) = get_ci(doc, name).filter(|v| !v.is_null()) {
            attrs.insert(name.to_string(), v.clone());
        }
    }
    match get_ci(doc, ENTERPRISE_USER_URN) {
        None | Some(Json::Null) => {}
        Some(Json::Object(ext)) => {
            let mut out = Map::new();
            for name in ENTERPRISE {
                match get_ci(ext, name).filter(|v| !v.is_null()) {
                    // Entra sends the manager as a bare id.
                    Some(Json::String(id)) if name == "manager" => {
                        out.insert(name.to_string(), json!({ "value": id }));
                    }
                    Some(v) => {
                        out.insert(name.to_string(), v.clone());
                    }
                    None => {}
                }
            }
            if !out.is_empty() {
                attrs.insert(ENTERPRISE_USER_URN.to_string(), Json::Object(out));
            }
        }
        Some(_) => {
            return Err(ScimError::invalid_value(
                "the enterprise extension must be an object",
            ));
        }
    }
    if Json::Object(attrs.clone()).to_string().len() > 64 * 1024 {
        return Err(ScimError::invalid_value(
            "the user's attributes exceed 64 KiB",
        ));
    }
    Ok(UserFields {
        display_name: opt_string(get_ci(doc, "displayName"), "displayName", 256)?
            .unwrap_or_default(),
        external_id: opt_string(get_ci(doc, "externalId"), "externalId", 256)?,
        active: match get_ci(doc, "active") {
            None | Some(Json::Null) => None,
            Some(v) => Some(boolean(v, "active")?),
        },
        emails: emails(get_ci(doc, "emails"))?,
        attrs,
        user_name,
    })
}

/// `meta` of a resource (RFC 7643 §3.1).
fn meta(kind: &str, location: &str, created: i64, modified: i64, version: i64) -> Json {
    json!({
        "resourceType": kind,
        "created": from_millis(created).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "lastModified": from_millis(modified).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "location": location,
        "version": etag(version),
    })
}

/// The weak ETag of a version.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// A user as SCIM shows it. `base` is `<public_url>/scim/v2`; `groups`
/// are every group the user is in, `type` "direct" or, through a nested
/// group, "indirect" (RFC 7643 §4.1.2).
pub fn render_user(row: &ScimUserRow, groups: &[Membership], base: &str) -> Json {
    let u = &row.user;
    let attrs: Map<String, Json> = serde_json::from_str(&row.attrs).unwrap_or_default();
    let mut schemas = vec![json!(CORE_USER_URN)];
    if attrs.contains_key(ENTERPRISE_USER_URN) {
        schemas.push(json!(ENTERPRISE_USER_URN));
    }
    let emails: Vec<ScimEmail> = serde_json::from_str(&u.emails).unwrap_or_default();
    let mut out = Map::new();
    out.insert("schemas".into(), Json::Array(schemas));
    out.insert("id".into(), json!(u.id));
    if let Some(x) = &u.external_id {
        out.insert("externalId".into(), json!(x));
    }
    out.insert("userName".into(), json!(u.user_name));
    if !u.display_name.is_empty() {
        out.insert("displayName".into(), json!(u.display_name));
    }
    out.insert("active".into(), json!(u.active));
    if !emails.is_empty() {
        out.insert("emails".into(), json!(emails));
    }
    out.extend(attrs);
    if !groups.is_empty() {
        let groups: Vec<Json> = groups
            .iter()
            .map(|(id, name, direct)| {
                let kind = if *direct { "direct" } else { "indirect" };
                json!({ "value": id, "display": name, "$ref": format!("{base}/Groups/{id}"), "type": kind })
            })
            .collect();
        out.insert("groups".into(), Json::Array(groups));
    }
    let location = format!("{base}/Users/{}", u.id);
    out.insert(
        "meta".into(),
        meta("User", &location, u.created_at, u.updated_at, row.version),
    );
    Json::Object(out)
}

/// A group as SCIM shows it; `users` are its direct user members (id,
/// user name), `groups` its direct group members (id, display name).
pub fn render_group(
    g: &GroupRow,
    users: &[(String, String)],
    groups: &[(String, String)],
    base: &str,
) -> Json {
    let mut out = Map::new();
    out.insert("schemas".into(), json!([CORE_GROUP_URN]));
    out.insert("id".into(), json!(g.id));
    if let Some(x) = &g.external_id {
        out.insert("externalId".into(), json!(x));
    }
    out.insert("displayName".into(), json!(g.display_name));
    let members: Vec<Json> = users
        .iter()
        .map(|(id, name)| {
            json!({ "value": id, "display": name, "$ref": format!("{base}/Users/{id}"), "type": "User" })
        })
        .chain(groups.iter().map(|(id, name)| {
            json!({ "value": id, "display": name, "$ref": format!("{base}/Groups/{id}"), "type": "Group" })
        }))
        .collect();
    out.insert("members".into(), Json::Array(members));
    let location = format!("{base}/Groups/{}", g.id);
    out.insert(
        "meta".into(),
        meta("Group", &location, g.created_at, g.updated_at, g.version),
    );
    Json::Object(out)
}

/// One member as a request names it: its id and, when given, its `type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: String,
    pub kind: Option<MemberType>,
}

/// The fields of a group as a request describes them.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupFields {
    pub display_name: String,
    pub external_id: Option<String>,
    /// Members (users or groups), in order, without duplicates.
    pub members: Vec<Member>,
}

/// Reads a Group document.
///
/// # Errors
/// 400 `invalidValue` for a missing displayName or malformed members.
pub fn group_fields(doc: &Map<String, Json>) -> Result<GroupFields, ScimError> {
    let display_name = opt_string(get_ci(doc, "displayName"), "displayName", 256)?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ScimError::invalid_value("displayName is required"))?;
    let mut members: Vec<Member> = Vec::new();
    match get_ci(doc, "members") {
        None | Some(Json::Null) => {}
        Some(Json::Array(items)) => {
            for item in items {
                let Json::Object(o) = item else {
                    return Err(ScimError::invalid_value(
                        "each member must be an object with a value",
                    ));
                };
                let id = opt_string(get_ci(o, "value"), "members.value", 64)?.ok_or_else(|| {
                    ScimError::invalid_value("each member must be an object with a value")
                })?;
                let kind = match opt_string(get_ci(o, "type"), "members.type", 16)? {
                    None => None,
                    Some(t) if t.eq_ignore_ascii_case("User") => Some(MemberType::User),
                    Some(t) if t.eq_ignore_ascii_case("Group") => Some(MemberType::Group),
                    Some(t) => {
                        return Err(ScimError::invalid_value(format!(
                            "member {id:?} has type {t:?}; a member's type is \"User\" or \"Group\""
                        )));
                    }
                };
                if !members.iter().any(|m| m.id == id) {
                    members.push(Member { id, kind });
                }
            }
        }
        Some(_) => return Err(ScimError::invalid_value("members must be an array")),
    }
    Ok(GroupFields {
        display_name: display_name.trim().to_string(),
        external_id: opt_string(get_ci(doc, "externalId"), "externalId", 256)?,
        members,
    })
}

/// Whether a top-level attribute is one a client may not change.
pub fn is_read_only(name: &str) -> bool {
    READ_ONLY.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// How `path` compares (RFC 7643 §7): `meta.created` and
/// `meta.lastModified` are date-times; ids, externalId and `$ref`s are
/// `caseExact`; everything else ignores case.
pub fn comparison(path: &super::path::AttrPath) -> Comparison {
    let name = path.sub.as_deref().unwrap_or(&path.name);
    let sub_of = |parent: &str, sub: &str| {
        path.name.eq_ignore_ascii_case(parent)
            && path
                .sub
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case(sub))
    };
    if sub_of("meta", "created") || sub_of("meta", "lastModified") {
        Comparison::DateTime
    } else if ["id", "externalId", "$ref"]
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
        || sub_of("members", "value")
        || sub_of("groups", "value")
    {
        Comparison::CaseExact
    } else {
        Comparison::CaseIgnore
    }
}
