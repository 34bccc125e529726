//! PATCH (RFC 7644 §3.5.2) as identity providers send it, applied to a
//! resource's JSON document: `add`, `replace` and `remove` in any case
//! (Entra sends `Replace`), with a path, a value-filtered path
//! (`emails[type eq "work"].value`, `members[value eq "…"]`), an
//! enterprise-extension URN path, or no path and an object of attributes
//! (Okta's `{"op":"replace","value":{"active":false}}`). The caller reads the
//! patched document back with `resource::user_fields`/`group_fields`, so
//! every operation is checked before anything is written.

use serde_json::{Map, Value as Json};

use super::error::ScimError;
use super::filter::{CompValue, CompareOp, Filter};
use super::path::{
    AttrPath, CORE_GROUP_URN, CORE_USER_URN, ENTERPRISE_USER_URN, PatchPath, parse_path,
};
use super::resource::{comparison, get_ci, is_read_only, key_ci};

/// The PatchOp message schema.
pub const PATCH_OP_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The most operations one PATCH may carry.
pub const MAX_OPERATIONS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

/// One operation, parsed.
#[derive(Debug, Clone)]
pub struct Operation {
    op: Op,
    path: Option<PatchPath>,
    value: Option<Json>,
}

/// Reads a PatchOp body into its operations.
///
/// # Errors
/// 400 `invalidSyntax` for a malformed body, `invalidPath` for a path that
/// does not parse, `tooMany` past [`MAX_OPERATIONS`].
pub fn parse_operations(body: &Map<String, Json>) -> Result<Vec<Operation>, ScimError> {
    super::resource::check_schemas(body, &[PATCH_OP_URN])?;
    let Some(Json::Array(ops)) = get_ci(body, "Operations") else {
        return Err(ScimError::invalid_syntax(
            "a PATCH body needs an Operations array",
        ));
    };
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::bad(
            "tooMany",
            format!("at most {MAX_OPERATIONS} operations per PATCH"),
        ));
    }
    ops.iter().map(operation).collect()
}

fn operation(raw: &Json) -> Result<Operation, ScimError> {
    let Json::Object(o) = raw else {
        return Err(ScimError::invalid_syntax(
            "each operation must be an object",
        ));
    };
    let op = match get_ci(o, "op").and_then(Json::as_str) {
        Some(s) if s.eq_ignore_ascii_case("add") => Op::Add,
        Some(s) if s.eq_ignore_ascii_case("replace") => Op::Replace,
        Some(s) if s.eq_ignore_ascii_case("remove") => Op::Remove,
        _ => {
            return Err(ScimError::invalid_syntax(
                "op must be add, replace or remove",
            ));
        }
    };
    let path = match get_ci(o, "path") {
        None | Some(Json::Null) => None,
        Some(Json::String(p)) if p.trim().is_empty() => None,
        Some(Json::String(p)) => {
            Some(parse_path(p.trim()).map_err(|e| ScimError::invalid_path(format!("{p:?}: {e}")))?)
        }
        Some(_) => return Err(ScimError::invalid_path("path must be a string")),
    };
    let value = get_ci(o, "value").cloned();
    if op != Op::Remove && value.is_none() {
        return Err(ScimError::invalid_syntax("add and replace need a value"));
    }
    if op == Op::Remove && path.is_none() {
        return Err(ScimError::bad("noTarget", "remove needs a path"));
    }
    Ok(Operation { op, path, value })
}

/// Applies `ops` in order to `doc`, a resource of the schema `core_urn`.
///
/// # Errors
/// 400 `invalidPath`, `invalidValue`, `noTarget` or `mutability`.
pub fn apply(
    doc: &mut Map<String, Json>,
    core_urn: &str,
    ops: &[Operation],
) -> Result<(), ScimError> {
    for o in ops {
        match &o.path {
            Some(path) => apply_path(doc, core_urn, o.op, path, o.value.clone())?,
            None => {
                let Some(Json::Object(values)) = &o.value else {
                    return Err(ScimError::invalid_value(
                        "without a path, the value must be an object of attributes",
                    ));
                };
                for (k, v) in values {
                    // Okta repeats `id` (and sometimes `schemas`) in the value.
                    if ["id", "schemas", "meta"]
                        .iter()
                        .any(|r| r.eq_ignore_ascii_case(k))
                    {
                        continue;
                    }
                    let path = parse_path(k)
                        .map_err(|e| ScimError::invalid_path(format!("{k:?}: {e}")))?;
                    if let (PatchPath::Attr(a), Json::Object(inner)) = (&path, v)
                        && a.is_schema(ENTERPRISE_USER_URN)
                        && core_urn == CORE_USER_URN
                    {
                        for (ik, iv) in inner {
                            let attr = AttrPath::new(ik.clone()).with_urn(ENTERPRISE_USER_URN);
                            apply_path(
                                doc,
                                core_urn,
                                o.op,
                                &PatchPath::Attr(attr),
                                Some(iv.clone()),
                            )?;
                        }
                        continue;
                    }
                    apply_path(doc, core_urn, o.op, &path, Some(v.clone()))?;
                }
            }
        }
    }
    Ok(())
}

/// The object an attribute lives in: the resource, or its extension.
fn container<'d>(
    doc: &'d mut Map<String, Json>,
    core_urn: &str,
    attr: &AttrPath,
) -> Result<&'d mut Map<String, Json>, ScimError> {
    let Some(urn) = &attr.urn else { return Ok(doc) };
    if urn.eq_ignore_ascii_case(core_urn) {
        return Ok(doc);
    }
    if core_urn == CORE_USER_URN && urn.eq_ignore_ascii_case(ENTERPRISE_USER_URN) {
        let key = key_ci(doc, ENTERPRISE_USER_URN).unwrap_or_else(|| ENTERPRISE_USER_URN.into());
        let slot = doc.entry(key).or_insert_with(|| Json::Object(Map::new()));
        if !slot.is_object() {
            *slot = Json::Object(Map::new());
        }
        return slot
            .as_object_mut()
            .ok_or_else(|| ScimError::invalid_path("the extension is not an object"));
    }
    Err(ScimError::invalid_path(format!(
        "unknown schema {urn} (this resource is {core_urn})"
    )))
}

fn apply_path(
    doc: &mut Map<String, Json>,
    core_urn: &str,
    op: Op,
    path: &PatchPath,
    value: Option<Json>,
) -> Result<(), ScimError> {
    let attr = match path {
        PatchPath::Attr(a) | PatchPath::Filtered { attr: a, .. } => a,
    };
    // A bare extension URN as the path: its value is an object of attributes.
    if let PatchPath::Attr(a) = path
        && a.is_schema(ENTERPRISE_USER_URN)
        && core_urn == CORE_USER_URN
    {
        let key = key_ci(doc, ENTERPRISE_USER_URN).unwrap_or_else(|| ENTERPRISE_USER_URN.into());
        return match (op, value) {
            (Op::Remove, _) => {
                doc.remove(&key);
                Ok(())
            }
            (_, Some(Json::Object(inner))) => {
                for (k, v) in inner {
                    let attr = AttrPath::new(k).with_urn(ENTERPRISE_USER_URN);
                    apply_path(doc, core_urn, op, &PatchPath::Attr(attr), Some(v))?;
                }
                Ok(())
            }
            _ => Err(ScimError::invalid_value(
                "the value of the extension must be an object",
            )),
        };
    }
    let top_level = attr
        .urn
        .as_deref()
        .is_none_or(|u| u.eq_ignore_ascii_case(core_urn));
    if top_level && is_read_only(&attr.name) {
        return Err(ScimError::mutability(format!("{} is read-only", attr.name)));
    }
    if core_urn == CORE_GROUP_URN && attr.sub.is_some() && attr.name.eq_ignore_ascii_case("members")
    {
        return Err(ScimError::invalid_path(
            "members' sub-attributes cannot be changed",
        ));
    }
    let obj = container(doc, core_urn, attr)?;
    let key = key_ci(obj, &attr.name).unwrap_or_else(|| attr.name.clone());
    match path {
        PatchPath::Attr(a) => match &a.sub {
            None => set_attr(obj, &key, op, value),
            Some(sub) => {
                let slot = obj
                    .entry(key.clone())
                    .or_insert_with(|| Json::Object(Map::new()));
                match slot {
                    Json::Object(inner) => {
                        let sk = key_ci(inner, sub).unwrap_or_else(|| sub.clone());
                        set_attr(inner, &sk, op, value)
                    }
                    Json::Null => {
                        let mut inner = Map::new();
                        set_attr(&mut inner, sub, op, value)?;
                        *slot = Json::Object(inner);
                        Ok(())
                    }
                    // `emails.type` without a filter: every value (RFC 7644 §3.5.2.3).
                    Json::Array(items) => {
                        for item in items.iter_mut() {
                            let Json::Object(inner) = item else {
                                return Err(ScimError::invalid_path(format!(
                                    "{key} has simple values"
                                )));
                            };
                            let sk = key_ci(inner, sub).unwrap_or_else(|| sub.clone());
                            set_attr(inner, &sk, op, value.clone())?;
                        }
                        Ok(())
                    }
                    _ => Err(ScimError::invalid_path(format!(
                        "{key} has no sub-attributes"
                    ))),
                }
            }
        },
        PatchPath::Filtered { filter, sub, .. } => {
            filtered(obj, &key, attr, filter, sub.as_deref(), op, value)
        }
    }
}

/// `add`/`replace`/`remove` of a whole attribute.
fn set_attr(
    obj: &mut Map<String, Json>,
    key: &str,
    op: Op,
    value: Option<Json>,
) -> Result<(), ScimError> {
    match op {
        Op::Remove => {
            match (obj.get_mut(key), value) {
                // Entra removes group members by value: {"path":"members","value":[{"value":"id"}]}.
                (Some(Json::Array(items)), Some(Json::Array(gone))) => {
                    let ids: Vec<&Json> = gone.iter().filter_map(|g| g.get("value")).collect();
                    items.retain(|i| !i.get("value").is_some_and(|v| ids.contains(&v)));
                }
                _ => {
                    obj.remove(key);
                }
            }
            Ok(())
        }
        Op::Replace => {
            obj.insert(key.to_string(), value.unwrap_or(Json::Null));
            Ok(())
        }
        Op::Add => {
            let value = value.unwrap_or(Json::Null);
            match (obj.get_mut(key), value) {
                (Some(Json::Array(items)), Json::Array(new)) => {
                    for v in new {
                        let dup = items.iter().any(|i| same_value(i, &v));
                        if !dup {
                            items.push(v);
                        }
                    }
                }
                (Some(Json::Array(items)), v @ Json::Object(_)) => {
                    if !items.iter().any(|i| same_value(i, &v)) {
                        items.push(v);
                    }
                }
                (Some(Json::Object(old)), Json::Object(new)) => old.extend(new),
                (_, v) => {
                    obj.insert(key.to_string(), v);
                }
            }
            Ok(())
        }
    }
}

/// Two values of a multi-valued attribute are the same when equal, or
/// when both have the same `value` (members are known by id).
fn same_value(a: &Json, b: &Json) -> bool {
    a == b || matches!((a.get("value"), b.get("value")), (Some(x), Some(y)) if x == y)
}

/// Operations on `attr[filter]` and `attr[filter].sub`.
fn filtered(
    obj: &mut Map<String, Json>,
    key: &str,
    attr: &AttrPath,
    filter: &Filter,
    sub: Option<&str>,
    op: Op,
    value: Option<Json>,
) -> Result<(), ScimError> {
    let how = |p: &AttrPath| comparison(&p.within(Some(attr)));
    let items = match obj.get_mut(key) {
        Some(Json::Array(items)) => items,
        _ => {
            obj.insert(key.to_string(), Json::Array(Vec::new()));
            match obj.get_mut(key) {
                Some(Json::Array(items)) => items,
                _ => return Err(ScimError::invalid_path("not a multi-valued attribute")),
            }
        }
    };
    let hits: Vec<usize> = (0..items.len())
        .filter(|&i| filter.matches(&items[i], &how))
        .collect();
    if hits.is_empty() {
        if op == Op::Remove {
            // Removing what is not there leaves the resource as asked.
            return Ok(());
        }
        // Entra replaces `emails[type eq "work"].value` before any work email
        // exists: create the value the filter describes (`type` = "work").
        let Some(seed) = seed_of(filter) else {
            return Err(ScimError::bad(
                "noTarget",
                format!("no value of {key} matches the filter"),
            ));
        };
        let mut new = seed;
        match (sub, value) {
            (Some(s), Some(v)) => {
                new.insert(s.to_string(), v);
            }
            (None, Some(Json::Object(v))) => new.extend(v),
            _ => return Err(ScimError::invalid_value("the value does not fit the path")),
        }
        items.push(Json::Object(new));
        return Ok(());
    }
    if op == Op::Remove && sub.is_none() {
        let mut i = 0;
        items.retain(|_| {
            let keep = !hits.contains(&i);
            i += 1;
            keep
        });
        return Ok(());
    }
    for i in hits {
        let Json::Object(item) = &mut items[i] else {
            return Err(ScimError::invalid_path(format!("{key} has simple values")));
        };
        match sub {
            Some(s) => {
                let sk = key_ci(item, s).unwrap_or_else(|| s.to_string());
                set_attr(item, &sk, op, value.clone())?;
            }
            None => match (op, value.clone()) {
                (Op::Replace, Some(Json::Object(v))) => *item = v,
                (Op::Add, Some(Json::Object(v))) => item.extend(v),
                _ => return Err(ScimError::invalid_value("the value must be an object")),
            },
        }
    }
    Ok(())
}

/// `type eq "work"` (and `and`s of such) as the object it describes.
fn seed_of(filter: &Filter) -> Option<Map<String, Json>> {
    match filter {
        Filter::Compare {
            path,
            op: CompareOp::Eq,
            value,
        } if path.urn.is_none() && path.sub.is_none() => {
            let v = match value {
                CompValue::String(s) => Json::String(s.clone()),
                CompValue::Number(n) => Json::Number(n.clone()),
                CompValue::Bool(b) => Json::Bool(*b),
                CompValue::Null => return None,
            };
            let mut m = Map::new();
            m.insert(path.name.clone(), v);
            Some(m)
        }
        Filter::And(l, r) => {
            let mut m = seed_of(l)?;
            m.extend(seed_of(r)?);
            Some(m)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(doc: Json, ops: Json) -> Result<Json, ScimError> {
        let Json::Object(mut doc) = doc else {
            panic!("test documents are objects")
        };
        let body = json!({ "schemas": [PATCH_OP_URN], "Operations": ops });
        let ops = parse_operations(body.as_object().expect("object"))?;
        apply(&mut doc, CORE_USER_URN, &ops)?;
        Ok(Json::Object(doc))
    }

    #[test]
    fn ops_are_case_insensitive_and_pathless_values_spread() {
        let out = run(
            json!({"userName": "a", "active": true}),
            json!([{"op": "Replace", "value": {"active": "False", "name.givenName": "A"}}]),
        )
        .expect("applies");
        assert_eq!(out["active"], "False");
        assert_eq!(out["name"]["givenName"], "A");
    }

    #[test]
    fn enterprise_urn_as_path_and_as_value_key() {
        let out = run(
            json!({"userName": "a"}),
            json!([
                {"op": "add", "path": ENTERPRISE_USER_URN, "value": {"department": "R&D"}},
                {"op": "add", "value": {ENTERPRISE_USER_URN: {"employeeNumber": "7"}}},
                {"op": "replace", "path": format!("{ENTERPRISE_USER_URN}:manager.value"), "value": "m"}
            ]),
        )
        .expect("applies");
        assert_eq!(
            out[ENTERPRISE_USER_URN],
            json!({"department": "R&D", "employeeNumber": "7", "manager": {"value": "m"}})
        );
    }

    #[test]
    fn filtered_paths_update_create_and_remove() {
        let doc = json!({"userName": "a", "emails": [{"type": "home", "value": "h@x"}]});
        let out = run(
            doc,
            json!([
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "w@x"},
                {"op": "replace", "path": "EMAILS[TYPE eq \"HOME\"].value", "value": "h2@x"},
                {"op": "remove", "path": "emails[type eq \"nothing\"]"}
            ]),
        )
        .expect("applies");
        assert_eq!(
            out["emails"],
            json!([{"type": "home", "value": "h2@x"}, {"type": "work", "value": "w@x"}])
        );
        let out = run(
            out,
            json!([{"op": "remove", "path": "emails[type eq \"home\"]"}]),
        )
        .expect("applies");
        assert_eq!(out["emails"], json!([{"type": "work", "value": "w@x"}]));
    }

    #[test]
    fn a_sub_attribute_of_a_multi_valued_attribute_changes_every_value() {
        let doc =
            json!({"userName": "a", "emails": [{"value": "1", "primary": true}, {"value": "2"}]});
        let out = run(doc, json!([{"op": "remove", "path": "emails.primary"}])).expect("applies");
        assert_eq!(out["emails"], json!([{"value": "1"}, {"value": "2"}]));
    }

    #[test]
    fn members_add_is_idempotent_and_remove_by_value_works() {
        let doc = json!({"displayName": "g", "members": [{"value": "1"}]});
        let out = run(
            doc,
            json!([
                {"op": "add", "path": "members", "value": [{"value": "1"}, {"value": "2"}]},
                {"op": "remove", "path": "members", "value": [{"value": "1"}]}
            ]),
        )
        .expect("applies");
        assert_eq!(out["members"], json!([{"value": "2"}]));
    }

    #[test]
    fn bad_operations_are_refused_with_their_scim_type() {
        let kind = |r: Result<Json, ScimError>| match r {
            Err(ScimError::Client { scim_type, .. }) => scim_type,
            other => panic!("expected a client error, got {other:?}"),
        };
        let doc = || json!({"userName": "a"});
        assert_eq!(
            kind(run(
                doc(),
                json!([{"op": "replace", "path": "meta.created", "value": "x"}])
            )),
            Some("mutability")
        );
        assert_eq!(
            kind(run(
                doc(),
                json!([{"op": "add", "path": "a[", "value": "x"}])
            )),
            Some("invalidPath")
        );
        assert_eq!(
            kind(run(
                doc(),
                json!([{"op": "add", "path": "urn:x:y:Z:attr", "value": "x"}])
            )),
            Some("invalidPath")
        );
        assert_eq!(
            kind(run(doc(), json!([{"op": "copy", "path": "a"}]))),
            Some("invalidSyntax")
        );
        assert_eq!(
            kind(run(doc(), json!([{"op": "replace", "value": "x"}]))),
            Some("invalidValue")
        );
        assert_eq!(
            kind(run(doc(), json!([{"op": "remove"}]))),
            Some("noTarget")
        );
    }
}
