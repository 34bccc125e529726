//! SCIM 2.0 as a strict client tests it (P9, P15): `POST /.search` at the
//! root across resource types (RFC 7644 §3.4.3); every sub-attribute
//! `/Schemas` advertises as writable round-trips through POST, PUT and
//! PATCH; `remove` of `active` deactivates; nested groups (RFC 7643 §4.2)
//! are stored, cycles refused, and the admin role and team scopes follow
//! the effective membership; unknown members are named; bodies over the
//! limit keep their SCIM 413.

use aiworklab::AppState;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use crate::scim::{
    ENTERPRISE, GROUP, PATCH, USER, assert_error, big, counts, create, scim, setup, setup_with,
};
use crate::support::send;

const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

fn search(extra: Value) -> Value {
    let mut body = json!({ "schemas": [SEARCH] });
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    body
}

async fn group(state: &AppState, t: &str, name: &str, members: Value) -> Value {
    let a = scim(
        state,
        "POST",
        "/scim/v2/Groups",
        t,
        Some(&json!({ "schemas": [GROUP], "displayName": name, "members": members })),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    a.json()
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

#[tokio::test]
async fn post_search_at_the_root_finds_users_and_groups() {
    let (_env, state, t) = setup(&["a"]);
    let t = &t[0];
    let u1 = create(&state, t, &json!({"schemas": [USER], "userName": "ada"})).await;
    create(&state, t, &json!({"schemas": [USER], "userName": "brian"})).await;
    let g = group(&state, t, "Platform", json!([{ "value": id(&u1) }])).await;

    let a = scim(
        &state,
        "POST",
        "/scim/v2/.search",
        t,
        Some(&search(json!({}))),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let all = a.json();
    assert_eq!(all["totalResults"], 3, "{all}");
    let kinds: Vec<&str> = all["Resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r["meta"]["resourceType"].as_str().expect("type"))
        .collect();
    assert_eq!(kinds, ["User", "User", "Group"]);

    let only = |filter: &str| search(json!({ "filter": filter }));
    let a = scim(
        &state,
        "POST",
        "/scim/v2/.search",
        t,
        Some(&only(r#"meta.resourceType eq "Group""#)),
    )
    .await;
    assert_eq!(a.json()["totalResults"], 1);
    assert_eq!(a.json()["Resources"][0]["id"], json!(id(&g)));
    let a = scim(
        &state,
        "POST",
        "/scim/v2/.search",
        t,
        Some(&only(r#"userName eq "ADA""#)),
    )
    .await;
    assert_eq!(a.json()["totalResults"], 1);
    assert_eq!(a.json()["Resources"][0]["id"], json!(id(&u1)));
    // A filter naming what both types have finds both.
    let a = scim(
        &state,
        "POST",
        "/scim/v2/.search",
        t,
        Some(&only(r#"id pr"#)),
    )
    .await;
    assert_eq!(a.json()["totalResults"], 3);

    // Paging runs over users then groups as one list.
    let a = scim(
        &state,
        "POST",
        "/scim/v2/.search",
        t,
        Some(&search(
            json!({"startIndex": 2, "count": 2, "attributes": ["displayName"]}),
        )),
    )
    .await;
    let page = a.json();
    assert_eq!(page["totalResults"], 3);
    assert_eq!(page["startIndex"], 2);
    assert_eq!(page["itemsPerPage"], 2);
    assert_eq!(page["Resources"][1]["displayName"], "Platform");
    assert!(page["Resources"][0].get("userName").is_none(), "projected");

    let a = scim(
        &state,
        "POST",
        "/scim/v2/.search",
        t,
        Some(&search(json!({"sortBy": "id"}))),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, Some("invalidValue"));
    assert!(a.text().contains("/Users/.search"), "{}", a.text());
    let a = scim(
        &state,
        "POST",
        "/scim/v2/.search",
        t,
        Some(&json!({"schemas": [USER]})),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, Some("invalidValue"));
    let a = scim(&state, "GET", "/scim/v2/.search", t, None).await;
    assert_error(&a, StatusCode::METHOD_NOT_ALLOWED, None);
    assert_eq!(a.header("allow"), Some("POST"));
    let a = scim(
        &state,
        "POST",
        "/scim/v2/.search",
        "aiwl_scim_wrong",
        Some(&search(json!({}))),
    )
    .await;
    assert_error(&a, StatusCode::UNAUTHORIZED, None);
}

/// A value for an attribute as `/Schemas` describes it, marked with `tag`.
fn sample(attr: &Value, tag: &str) -> Option<Value> {
    let name = attr["name"].as_str().expect("name");
    if attr["mutability"] == "readOnly" {
        return None;
    }
    let simple = |a: &Value, n: &str| match a["type"].as_str() {
        Some("boolean") => json!(tag.len().is_multiple_of(2)),
        Some("reference") => json!(format!("https://example.com/{tag}/{n}")),
        _ => json!(format!("{tag}-{n}")),
    };
    let one = || -> Value {
        match attr["subAttributes"].as_array() {
            Some(subs) => Value::Object(
                subs.iter()
                    .filter(|s| s["mutability"] != "readOnly")
                    .map(|s| {
                        let n = s["name"].as_str().expect("name");
                        (n.to_string(), simple(s, &format!("{name}.{n}")))
                    })
                    .collect(),
            ),
            None => simple(attr, name),
        }
    };
    Some(if attr["multiValued"] == true {
        json!([one()])
    } else {
        one()
    })
}

/// A User document setting every writable attribute and sub-attribute the
/// schemas advertise, and the list of (schema, attribute) it set.
fn every_attribute(schemas: &Value, tag: &str) -> (Map<String, Value>, Vec<(String, String)>) {
    let mut doc = Map::new();
    let mut set = Vec::new();
    for schema in schemas["Resources"].as_array().expect("schemas") {
        let urn = schema["id"].as_str().expect("id");
        if urn == GROUP {
            continue;
        }
        let mut ext = Map::new();
        for attr in schema["attributes"].as_array().expect("attributes") {
            let name = attr["name"].as_str().expect("name");
            // userName must be unique and active is a state of its own.
            if name == "userName" || name == "active" {
                continue;
            }
            let Some(v) = sample(attr, tag) else { continue };
            if urn == USER {
                doc.insert(name.into(), v);
            } else {
                ext.insert(name.into(), v);
            }
            set.push((urn.to_string(), name.to_string()));
        }
        if urn == ENTERPRISE {
            doc.insert(ENTERPRISE.into(), Value::Object(ext));
        }
    }
    doc.insert("userName".into(), json!(format!("user-{tag}")));
    doc.insert("schemas".into(), json!([USER, ENTERPRISE]));
    (doc, set)
}

fn assert_round_trip(sent: &Map<String, Value>, got: &Value, set: &[(String, String)], how: &str) {
    for (urn, name) in set {
        let (want, found) = if urn == USER {
            (&sent[name], &got[name])
        } else {
            (&sent[urn][name], &got[urn][name])
        };
        assert_eq!(found, want, "{how}: {name} did not round-trip in {got}");
    }
}

#[tokio::test]
async fn every_advertised_sub_attribute_round_trips_through_post_put_and_patch() {
    let (_env, state, t) = setup(&["a"]);
    let t = &t[0];
    let schemas = scim(&state, "GET", "/scim/v2/Schemas", t, None)
        .await
        .json();
    let (doc, set) = every_attribute(&schemas, "post");
    assert!(
        set.iter().any(|(_, n)| n == "emails"),
        "the schemas advertise emails"
    );
    assert!(
        schemas.to_string().contains(r#""name":"display""#),
        "emails advertise display"
    );
    let created = create(&state, t, &Value::Object(doc.clone())).await;
    let uid = id(&created);
    let got = scim(&state, "GET", &format!("/scim/v2/Users/{uid}"), t, None)
        .await
        .json();
    assert_round_trip(&doc, &got, &set, "POST");
    assert_eq!(got["emails"][0]["display"], "post-emails.display", "{got}");

    let (mut put, _) = every_attribute(&schemas, "put");
    put.insert("userName".into(), json!("user-post"));
    let a = scim(
        &state,
        "PUT",
        &format!("/scim/v2/Users/{uid}"),
        t,
        Some(&Value::Object(put.clone())),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let got = scim(&state, "GET", &format!("/scim/v2/Users/{uid}"), t, None)
        .await
        .json();
    assert_round_trip(&put, &got, &set, "PUT");

    let (patched, _) = every_attribute(&schemas, "patch");
    let mut ops: Vec<Value> = Vec::new();
    for (urn, name) in &set {
        let (path, value) = if urn == USER {
            (name.clone(), patched[name].clone())
        } else {
            (format!("{urn}:{name}"), patched[urn][name].clone())
        };
        ops.push(json!({ "op": "replace", "path": path, "value": value }));
    }
    let a = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Users/{uid}"),
        t,
        Some(&json!({ "schemas": [PATCH], "Operations": ops })),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let got = scim(&state, "GET", &format!("/scim/v2/Users/{uid}"), t, None)
        .await
        .json();
    assert_round_trip(&patched, &got, &set, "PATCH");
    // A sub-attribute patched on its own.
    let a = scim(&state, "PATCH", &format!("/scim/v2/Users/{uid}"), t, Some(&json!({ "schemas": [PATCH], "Operations": [{ "op": "replace", "path": "emails[value eq \"patch-emails.value\"].display", "value": "Work mail" }] }))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["emails"][0]["display"], "Work mail");
}

#[tokio::test]
async fn patch_remove_of_active_deactivates_the_user() {
    let (_env, state, t) = setup(&["a"]);
    let t = &t[0];
    let u = create(
        &state,
        t,
        &json!({"schemas": [USER], "userName": "ada", "active": true}),
    )
    .await;
    let uid = id(&u);
    let remove =
        json!({ "schemas": [PATCH], "Operations": [{ "op": "remove", "path": "active" }] });
    let a = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Users/{uid}"),
        t,
        Some(&remove),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["active"], false, "{}", a.text());
    let user = aiworklab::users::get(state.store.org("a").expect("org"), &uid).expect("user");
    assert!(!user.active);
    let audit = state
        .store
        .org("a")
        .expect("org")
        .db
        .read(|c| {
            aiworklab::store::audit::recent(c, 10).map_err(aiworklab::store::StoreError::from)
        })
        .expect("audit");
    assert!(
        audit.iter().any(|r| r.action == "user.deactivate"),
        "audited as a deactivation"
    );
    // Removing it again changes nothing; replacing it reactivates.
    let a = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Users/{uid}"),
        t,
        Some(&remove),
    )
    .await;
    assert_eq!(a.json()["active"], false);
    let a = scim(&state, "PATCH", &format!("/scim/v2/Users/{uid}"), t, Some(&json!({ "schemas": [PATCH], "Operations": [{ "op": "replace", "path": "active", "value": true }] }))).await;
    assert_eq!(a.json()["active"], true);
}

/// Whether `team` has at least `min_cohort` active engineers in its
/// effective membership (direct and through nested groups): the count the
/// team aggregates are released on (privacy::release's team-size rule).
fn team_size_ok(state: &AppState, team: &str, min_cohort: usize) -> bool {
    const COUNT: &str = "SELECT COUNT(*) FROM group_members m
        JOIN groups g ON g.id = m.group_id
        JOIN users u ON u.id = m.user_id
        WHERE g.display_name = ?1 COLLATE NOCASE AND u.active = 1";
    let org = state.store.org("a").expect("org");
    let n: i64 = org
        .db
        .read(|c| {
            c.query_row(COUNT, [team], |r| r.get(0))
                .map_err(aiworklab::store::StoreError::from)
        })
        .expect("count");
    usize::try_from(n).expect("count") >= min_cohort
}

#[tokio::test]
async fn nested_groups_are_stored_cycles_refused_and_roles_and_teams_follow_them() {
    let (_env, state, t) = setup_with(&["a"], |raw| {
        raw.orgs[0].admin_groups = vec!["Engineering".into()];
    });
    let t = &t[0];
    let mut users = Vec::new();
    for name in ["ada", "brian", "chen"] {
        users.push(id(&create(
            &state,
            t,
            &json!({"schemas": [USER], "userName": name}),
        )
        .await));
    }
    let platform = group(&state, t, "Platform", json!([{ "value": users[1] }])).await;
    let pid = id(&platform);
    let eng = group(
        &state,
        t,
        "Engineering",
        json!([{ "value": users[0], "type": "User" }, { "value": pid, "type": "Group" }]),
    )
    .await;
    let eid = id(&eng);
    let members = eng["members"].as_array().expect("members");
    assert_eq!(members.len(), 2, "{eng}");
    assert!(
        members.iter().any(|m| m["value"] == json!(pid)
            && m["type"] == "Group"
            && m["display"] == "Platform"),
        "{eng}"
    );

    // Brian is in Engineering through Platform: indirect, and an admin.
    let brian = scim(
        &state,
        "GET",
        &format!("/scim/v2/Users/{}", users[1]),
        t,
        None,
    )
    .await
    .json();
    let groups = brian["groups"].as_array().expect("groups");
    assert!(
        groups
            .iter()
            .any(|g| g["value"] == json!(eid) && g["type"] == "indirect"),
        "{brian}"
    );
    assert!(
        groups
            .iter()
            .any(|g| g["value"] == json!(pid) && g["type"] == "direct"),
        "{brian}"
    );
    let org = state
        .settings
        .orgs
        .iter()
        .find(|o| o.slug.as_str() == "a")
        .expect("org");
    let role = |uid: &str| {
        aiworklab::users::get(state.store.org("a").expect("org"), uid)
            .expect("user")
            .role(org)
    };
    assert_eq!(role(&users[1]), aiworklab::users::Role::Admin);
    assert_eq!(role(&users[2]), aiworklab::users::Role::Member);
    // Team scopes count the effective membership: two, then three.
    assert!(team_size_ok(&state, "Engineering", 2));
    assert!(!team_size_ok(&state, "Engineering", 3));
    let add = |v: Value| json!({ "schemas": [PATCH], "Operations": [{ "op": "add", "path": "members", "value": v }] });
    let a = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Groups/{pid}"),
        t,
        Some(&add(json!([{ "value": users[2] }]))),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert!(team_size_ok(&state, "Engineering", 3));
    assert_eq!(role(&users[2]), aiworklab::users::Role::Admin);
    // A filter on a group member finds the group holding it.
    let a = scim(
        &state,
        "GET",
        &format!(
            "/scim/v2/Groups?filter={}",
            crate::scim::q(&format!("members.value eq \"{pid}\""))
        ),
        t,
        None,
    )
    .await;
    assert_eq!(a.json()["totalResults"], 1, "{}", a.text());
    assert_eq!(a.json()["Resources"][0]["id"], json!(eid));

    // Cycles, a group in itself, a member that exists nowhere, a wrong type:
    // refused, naming the cause, with nothing written.
    let before = counts(&state, "a");
    let version = scim(&state, "GET", &format!("/scim/v2/Groups/{pid}"), t, None)
        .await
        .json()["meta"]["version"]
        .clone();
    let a = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Groups/{pid}"),
        t,
        Some(&add(json!([{ "value": eid, "type": "Group" }]))),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, Some("invalidValue"));
    assert!(
        a.text().contains("cycle") && a.text().contains("Engineering"),
        "{}",
        a.text()
    );
    let a = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Groups/{pid}"),
        t,
        Some(&add(json!([{ "value": pid }]))),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, Some("invalidValue"));
    assert!(a.text().contains("itself"), "{}", a.text());
    let a = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Groups/{pid}"),
        t,
        Some(&add(json!([{ "value": "no-such-id" }]))),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, Some("invalidValue"));
    assert!(a.text().contains("no-such-id"), "{}", a.text());
    let a = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Groups/{pid}"),
        t,
        Some(&add(json!([{ "value": users[0], "type": "Group" }]))),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, Some("invalidValue"));
    assert!(a.text().contains("is a user"), "{}", a.text());
    let a = scim(&state, "POST", "/scim/v2/Groups", t, Some(&json!({ "schemas": [GROUP], "displayName": "Ghosts", "members": [{ "value": "ghost-1", "type": "Group" }] }))).await;
    assert_error(&a, StatusCode::BAD_REQUEST, Some("invalidValue"));
    assert!(a.text().contains("ghost-1"), "{}", a.text());
    assert_eq!(
        counts(&state, "a"),
        before,
        "a refused change wrote something"
    );
    let after = scim(&state, "GET", &format!("/scim/v2/Groups/{pid}"), t, None)
        .await
        .json();
    assert_eq!(after["meta"]["version"], version);

    // Platform leaves Engineering (PUT without it): Brian and Chen lose the role.
    let a = scim(&state, "PUT", &format!("/scim/v2/Groups/{eid}"), t, Some(&json!({ "schemas": [GROUP], "displayName": "Engineering", "members": [{ "value": users[0] }] }))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(role(&users[1]), aiworklab::users::Role::Member);
    assert!(!team_size_ok(&state, "Engineering", 2));
    // Nested again, then Platform deleted: the same.
    let a = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Groups/{eid}"),
        t,
        Some(&add(json!([{ "value": pid, "type": "Group" }]))),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(role(&users[2]), aiworklab::users::Role::Admin);
    let a = scim(&state, "DELETE", &format!("/scim/v2/Groups/{pid}"), t, None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert_eq!(role(&users[2]), aiworklab::users::Role::Member);
    let eng = scim(&state, "GET", &format!("/scim/v2/Groups/{eid}"), t, None)
        .await
        .json();
    assert_eq!(
        eng["members"].as_array().expect("members").len(),
        1,
        "{eng}"
    );
}

#[tokio::test]
async fn bodies_over_the_limit_keep_their_scim_413_on_the_new_endpoints() {
    let (_env, state, t) = setup_with(&["a"], |raw| raw.server.max_body_bytes = 64 * 1024);
    let t = &t[0];
    let g = group(&state, t, "Platform", json!([])).await;
    for (method, uri) in [
        ("POST", "/scim/v2/.search".to_string()),
        ("PATCH", format!("/scim/v2/Groups/{}", id(&g))),
        ("PUT", format!("/scim/v2/Groups/{}", id(&g))),
    ] {
        for length_header in [true, false] {
            let a = send(&state, big(method, &uri, t, 100 * 1024, length_header)).await;
            assert_error(&a, StatusCode::PAYLOAD_TOO_LARGE, None);
            assert!(
                a.text().contains("65536 bytes"),
                "{method} {uri}: {}",
                a.text()
            );
        }
    }
}
