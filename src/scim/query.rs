//! The query of a SCIM list, without HTTP: the parameters of a `GET`
//! (RFC 7644 §3.4.2), the body of a `POST …/.search` (§3.4.3) read as the
//! same parameters, and the projection of `attributes` /
//! `excludedAttributes` (§3.4.2.5) on each resource returned.

use std::collections::HashMap;

use serde_json::{Map, Value as Json};

use super::error::ScimError;
use super::filter::{self, Filter};
use super::list::{Kind, Page, Sort};
use super::path::ENTERPRISE_USER_URN;
use super::resource;

/// The most resources one list page returns.
pub const MAX_COUNT: usize = 1000;

/// `?filter=&sortBy=&sortOrder=&startIndex=&count=&attributes=&excludedAttributes=`.
#[derive(Default)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    pub sort: Option<Sort>,
    pub page: Page,
    pub attributes: Vec<String>,
    pub excluded: Vec<String>,
}

/// Reads the query parameters of a list (names case-insensitive).
///
/// # Errors
/// 400 `invalidFilter` for a filter that does not parse, `invalidValue`
/// for a number that is not one or a bad sort.
pub fn list_query(q: &HashMap<String, String>, kind: Kind) -> Result<ListQuery, ScimError> {
    let get = |name: &str| {
        q.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let filter = match get("filter").map(str::trim).filter(|f| !f.is_empty()) {
        None => None,
        Some(f) => {
            Some(filter::parse(f).map_err(|e| ScimError::bad("invalidFilter", e.to_string()))?)
        }
    };
    let number = |name: &str, default: usize| -> Result<usize, ScimError> {
        match get(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<i64>()
                .map(|n| usize::try_from(n.max(0)).unwrap_or(0))
                .map_err(|_| ScimError::invalid_value(format!("{name} must be an integer"))),
        }
    };
    let list = |name: &str| -> Vec<String> {
        get(name)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    let sort = match get("sortBy").map(str::trim).filter(|s| !s.is_empty()) {
        Some(by) => Some(Sort::parse(by, get("sortOrder"), kind)?),
        None => {
            // Without sortBy the order is fixed, but a bad sortOrder is
            // still a mistake worth naming.
            Sort::parse("id", get("sortOrder"), kind)?;
            None
        }
    };
    Ok(ListQuery {
        filter,
        sort,
        page: Page {
            start: number("startIndex", 1)?.max(1),
            count: number("count", 100)?.min(MAX_COUNT),
        },
        attributes: list("attributes"),
        excluded: list("excludedAttributes"),
    })
}

/// The `SearchRequest` message (RFC 7644 §3.4.3).
const SEARCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// A `POST …/.search` body read as the query parameters of a `GET` list:
/// `schemas` must name the `SearchRequest` message; `filter`, `sortBy`,
/// `sortOrder` are strings, `startIndex` and `count` integers,
/// `attributes` and `excludedAttributes` arrays of strings.
///
/// # Errors
/// 400 `invalidValue` for another schema, an unknown member or a value of
/// the wrong type.
pub fn search_query(body: &Map<String, Json>) -> Result<HashMap<String, String>, ScimError> {
    resource::check_schemas(body, &[SEARCH_URN])?;
    let mut q = HashMap::new();
    for (name, value) in body {
        let known = |n: &str| name.eq_ignore_ascii_case(n);
        let text = match value {
            _ if known("schemas") => continue,
            Json::Null => continue,
            Json::String(v) if known("filter") || known("sortBy") || known("sortOrder") => {
                v.clone()
            }
            Json::Number(n) if (known("startIndex") || known("count")) && n.is_i64() => {
                n.to_string()
            }
            Json::Array(items) if known("attributes") || known("excludedAttributes") => items
                .iter()
                .map(|a| match a {
                    Json::String(a) if !a.contains(',') => Ok(a.as_str()),
                    _ => Err(ScimError::invalid_value(format!(
                        "{name} must be an array of attribute names"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            _ if [
                "filter",
                "sortBy",
                "sortOrder",
                "startIndex",
                "count",
                "attributes",
                "excludedAttributes",
            ]
            .iter()
            .any(|n| known(n)) =>
            {
                return Err(ScimError::invalid_value(format!(
                    "{name} has the wrong type for a SearchRequest"
                )));
            }
            _ => {
                return Err(ScimError::invalid_value(format!(
                    "a SearchRequest has no member {name:?}"
                )));
            }
        };
        q.insert(name.clone(), text);
    }
    Ok(q)
}

/// `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5), on top-level
/// attributes; `id`, `schemas` and `meta` are always returned.
pub fn project(mut r: Json, attributes: &[String], excluded: &[String]) -> Json {
    let always = ["id", "schemas", "meta"];
    let top = |a: &String| {
        let a = a.rsplit_once(':').map_or(a.as_str(), |(_, n)| n);
        a.split('.').next().unwrap_or(a).to_string()
    };
    if let Json::Object(o) = &mut r {
        if !attributes.is_empty() {
            let keep: Vec<String> = attributes.iter().map(top).collect();
            o.retain(|k, _| {
                always.contains(&k.as_str())
                    || keep.iter().any(|a| a.eq_ignore_ascii_case(k))
                    || (k == ENTERPRISE_USER_URN
                        && attributes
                            .iter()
                            .any(|a| a.starts_with(ENTERPRISE_USER_URN)))
            });
        }
        for e in excluded.iter().map(top) {
            if !always.iter().any(|a| a.eq_ignore_ascii_case(&e)) {
                o.retain(|k, _| !k.eq_ignore_ascii_case(&e));
            }
        }
    }
    r
}
