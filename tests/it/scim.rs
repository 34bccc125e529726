//! SCIM 2.0 provisioning (RFC 7643, RFC 7644) as Okta and Microsoft Entra
//! ID drive it: request sequences replayed as those providers send them,
//! the RFC's filter and PATCH examples, tenant isolation (P18), immediate
//! revocation on deactivation and deletion, and malformed input answered
//! with SCIM errors and nothing written.

use aiworklab::AppState;
use aiworklab::audit::Context;
use aiworklab::tokens::{self, TokenKind};
use aiworklab::users::AdminCtx;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};

use crate::support::{Answer, Env, send};

pub(crate) const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub(crate) const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub(crate) const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub(crate) const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// An installation with these orgs and one SCIM token per org.
pub(crate) fn setup(orgs: &[&str]) -> (Env, AppState, Vec<String>) {
    setup_with(orgs, |_| {})
}

/// [`setup`] with a configuration changed by `configure`.
pub(crate) fn setup_with(
    orgs: &[&str],
    configure: impl FnOnce(&mut aiworklab::config::RawConfig),
) -> (Env, AppState, Vec<String>) {
    let mut env = Env::new(orgs);
    configure(&mut env.raw);
    let state = env.state();
    let toks = orgs
        .iter()
        .map(|o| {
            let (_, secret) = tokens::create(
                state.store.org(o).expect("org"),
                TokenKind::Scim,
                "okta",
                None,
                &AdminCtx::operator(),
                state.clock.now(),
            )
            .expect("token");
            secret.expose().to_string()
        })
        .collect();
    (env, state, toks)
}

fn req(method: &str, uri: &str, token: &str, body: Option<&Value>) -> Request<Body> {
    let r = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/scim+json");
    r.body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("request")
}

pub(crate) async fn scim(
    state: &AppState,
    method: &str,
    uri: &str,
    token: &str,
    body: Option<&Value>,
) -> Answer {
    send(state, req(method, uri, token, body)).await
}

pub(crate) fn q(filter: &str) -> String {
    url_escape(filter)
}

fn url_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) fn assert_error(a: &Answer, status: StatusCode, scim_type: Option<&str>) {
    assert_eq!(a.status, status, "{}", a.text());
    assert_eq!(a.header("content-type"), Some("application/scim+json"));
    let j = a.json();
    assert_eq!(j["schemas"], json!([ERROR]));
    assert_eq!(j["status"], json!(status.as_u16().to_string()));
    if let Some(t) = scim_type {
        assert_eq!(j["scimType"], json!(t), "{j}");
    }
    assert!(j["detail"].is_string());
}

/// How many rows the org's audit log and users table hold.
pub(crate) fn counts(state: &AppState, org: &str) -> (i64, i64, i64) {
    state
        .store
        .org(org)
        .expect("org")
        .db
        .read(|c| {
            let n = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0));
            Ok::<_, aiworklab::store::StoreError>((
                n("SELECT count(*) FROM users")?,
                n("SELECT count(*) FROM groups")?,
                n("SELECT count(*) FROM audit_log")?,
            ))
        })
        .expect("counts")
}

fn okta_user(name: &str) -> Value {
    json!({
        "schemas": [USER],
        "userName": name,
        "name": { "givenName": "Barbara", "familyName": "Jensen" },
        "emails": [{ "primary": true, "value": name, "type": "work" }],
        "displayName": "Barbara Jensen",
        "locale": "en-US",
        "externalId": "00u1abcd",
        "groups": [],
        "password": "ignored-secret",
        "active": true
    })
}

pub(crate) async fn create(state: &AppState, token: &str, body: &Value) -> Value {
    let a = scim(state, "POST", "/scim/v2/Users", token, Some(body)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    a.json()
}

#[tokio::test]
async fn okta_user_lifecycle_as_okta_sends_it() {
    let (_env, state, t) = setup(&["a"]);
    let t = &t[0];
    // Okta first looks the user up, then creates them.
    let a = scim(
        &state,
        "GET",
        &format!(
            "/scim/v2/Users?filter={}&startIndex=1&count=100",
            q("userName eq \"bjensen@example.com\"")
        ),
        t,
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["totalResults"], 0);
    assert_eq!(a.json()["Resources"], json!([]));

    let a = scim(
        &state,
        "POST",
        "/scim/v2/Users",
        t,
        Some(&okta_user("bjensen@example.com")),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let u = a.json();
    let id = u["id"].as_str().expect("id").to_string();
    assert_eq!(a.header("location"), u["meta"]["location"].as_str());
    assert!(
        u["meta"]["location"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/scim/v2/Users/{id}"))
    );
    assert_eq!(a.header("etag"), Some("W/\"1\""));
    assert_eq!(u["userName"], "bjensen@example.com");
    assert_eq!(u["name"]["givenName"], "Barbara");
    assert_eq!(u["name"]["familyName"], "Jensen");
    assert_eq!(u["emails"][0]["value"], "bjensen@example.com");
    assert_eq!(u["emails"][0]["primary"], true);
    assert_eq!(u["displayName"], "Barbara Jensen");
    assert_eq!(u["externalId"], "00u1abcd");
    assert_eq!(u["active"], true);
    assert_eq!(u["meta"]["resourceType"], "User");
    assert_eq!(u["meta"]["version"], "W/\"1\"");
    assert!(u.get("password").is_none());
    let user = aiworklab::users::get(state.store.org("a").unwrap(), &id).expect("user");
    assert_eq!(user.provisioned_by, "scim");

    // Filter by userName, case-insensitively.
    let a = scim(
        &state,
        "GET",
        &format!(
            "/scim/v2/Users?filter={}",
            q("userName eq \"BJENSEN@example.com\"")
        ),
        t,
        None,
    )
    .await;
    assert_eq!(a.json()["totalResults"], 1);
    assert_eq!(a.json()["Resources"][0]["id"], json!(id));

    // PUT replace: everything not sent is cleared.
    let mut put = okta_user("bjensen@example.com");
    put["id"] = json!(id);
    put["name"]["givenName"] = json!("Babs");
    put.as_object_mut().unwrap().remove("locale");
    let a = scim(
        &state,
        "PUT",
        &format!("/scim/v2/Users/{id}"),
        t,
        Some(&put),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let u = a.json();
    assert_eq!(u["name"]["givenName"], "Babs");
    assert!(u.get("locale").is_none());
    assert_eq!(u["meta"]["version"], "W/\"2\"");

    // Deactivate, as Okta does.
    let deact =
        json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": false}}]});
    let a = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        t,
        Some(&deact),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["active"], false);
    assert_eq!(a.json()["name"]["givenName"], "Babs");
    // Reactivate.
    let react =
        json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": true}}]});
    let a = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        t,
        Some(&react),
    )
    .await;
    assert_eq!(a.json()["active"], true);

    // DELETE: gone from SCIM, name free again, in the deletion hold.
    let a = scim(&state, "DELETE", &format!("/scim/v2/Users/{id}"), t, None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    let a = scim(&state, "GET", &format!("/scim/v2/Users/{id}"), t, None).await;
    assert_error(&a, StatusCode::NOT_FOUND, None);
    let a = scim(
        &state,
        "GET",
        &format!(
            "/scim/v2/Users?filter={}",
            q("userName eq \"bjensen@example.com\"")
        ),
        t,
        None,
    )
    .await;
    assert_eq!(a.json()["totalResults"], 0);
    let deleted =
        aiworklab::users::get(state.store.org("a").unwrap(), &id).expect("row kept for the hold");
    assert!(!deleted.active, "a deleted user cannot sign in");
    let held: Option<i64> = state
        .store
        .org("a")
        .unwrap()
        .db
        .read(|c| {
            c.query_row(
                "SELECT deletion_requested_at FROM user_privacy WHERE user_id = ?1",
                [&id],
                |r| r.get(0),
            )
            .map_err(aiworklab::store::StoreError::from)
        })
        .expect("hold");
    assert!(held.is_some());
    let again = create(&state, t, &okta_user("bjensen@example.com")).await;
    assert_ne!(again["id"], json!(id));
}

#[tokio::test]
async fn okta_group_push_adds_and_removes_members() {
    let (_env, state, t) = setup(&["a"]);
    let t = &t[0];
    let u1 = create(&state, t, &okta_user("one@example.com")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let u2 = create(&state, t, &okta_user("two@example.com")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a = scim(
        &state,
        "POST",
        "/scim/v2/Groups",
        t,
        Some(&json!({"schemas": [GROUP], "displayName": "Engineering", "members": []})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let gid = a.json()["id"].as_str().unwrap().to_string();
    assert_eq!(a.json()["members"], json!([]));

    // Okta renames with the id repeated in the value, and adds members.
    let p = json!({"schemas": [PATCH], "Operations": [
        {"op": "replace", "value": {"id": gid, "displayName": "Engineers"}},
        {"op": "add", "path": "members", "value": [{"value": u1, "display": "one@example.com"}, {"value": u2, "display": "two@example.com"}]}
    ]});
    let a = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Groups/{gid}"),
        t,
        Some(&p),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["displayName"], "Engineers");
    assert_eq!(a.json()["members"].as_array().unwrap().len(), 2);
    let user = aiworklab::users::get(state.store.org("a").unwrap(), &u1).unwrap();
    assert_eq!(user.groups, vec!["Engineers".to_string()]);
    let a = scim(&state, "GET", &format!("/scim/v2/Users/{u1}"), t, None).await;
    assert_eq!(a.json()["groups"][0]["value"], json!(gid));

    let p = json!({"schemas": [PATCH], "Operations": [
        {"op": "remove", "path": format!("members[value eq \"{u1}\"]")}
    ]});
    let a = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Groups/{gid}"),
        t,
        Some(&p),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(
        a.json()["members"],
        json!([{"value": u2, "display": "two@example.com", "$ref": a.json()["members"][0]["$ref"], "type": "User"}])
    );

    let a = scim(
        &state,
        "GET",
        &format!(
            "/scim/v2/Groups?filter={}",
            q(&format!("members.value eq \"{u2}\""))
        ),
        t,
        None,
    )
    .await;
    assert_eq!(a.json()["totalResults"], 1);
    let a = scim(
        &state,
        "GET",
        &format!(
            "/scim/v2/Groups?filter={}",
            q("displayName eq \"engineers\"")
        ),
        t,
        None,
    )
    .await;
    assert_eq!(a.json()["totalResults"], 1);
    let a = scim(
        &state,
        "GET",
        "/scim/v2/Groups?excludedAttributes=members",
        t,
        None,
    )
    .await;
    assert!(a.json()["Resources"][0].get("members").is_none());

    let a = scim(&state, "DELETE", &format!("/scim/v2/Groups/{gid}"), t, None).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let a = scim(&state, "GET", &format!("/scim/v2/Groups/{gid}"), t, None).await;
    assert_error(&a, StatusCode::NOT_FOUND, None);
}

#[tokio::test]
async fn admin_groups_give_the_admin_role() {
    let mut env = Env::new(&["a"]);
    env.raw.orgs[0].admin_groups = vec!["aiworklab-admins".into()];
    let state = env.state();
    let (_, secret) = tokens::create(
        state.store.org("a").unwrap(),
        TokenKind::Scim,
        "entra",
        None,
        &AdminCtx::operator(),
        state.clock.now(),
    )
    .unwrap();
    let t = secret.expose().to_string();
    let uid = create(&state, &t, &okta_user("boss@example.com")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a = scim(&state, "POST", "/scim/v2/Groups", &t, Some(&json!({"schemas": [GROUP], "displayName": "aiworklab-admins", "members": [{"value": uid}]}))).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let user = aiworklab::users::get(state.store.org("a").unwrap(), &uid).unwrap();
    let org = state
        .settings
        .orgs
        .iter()
        .find(|o| o.slug.as_str() == "a")
        .unwrap();
    assert_eq!(user.role(org), aiworklab::users::Role::Admin);
}

#[tokio::test]
async fn entra_sequence_with_capitalised_ops_string_booleans_and_urn_paths() {
    let (_env, state, t) = setup(&["a"]);
    let t = &t[0];
    let a = scim(
        &state,
        "GET",
        &format!(
            "/scim/v2/Users?filter={}",
            q("userName eq \"alex@contoso.com\"")
        ),
        t,
        None,
    )
    .await;
    assert_eq!(a.json()["totalResults"], 0);
    let body = json!({
        "schemas": [USER, ENTERPRISE],
        "externalId": "alex",
        "userName": "alex@contoso.com",
        "active": true,
        "displayName": "Alex Wilber",
        "emails": [{"primary": true, "type": "work", "value": "alex@contoso.com"}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "Alex Wilber", "familyName": "Wilber", "givenName": "Alex"},
        "title": "Engineer",
        ENTERPRISE: {"employeeNumber": "701984", "department": "Sales", "manager": {"value": "mgr-1"}}
    });
    let u = create(&state, t, &body).await;
    let id = u["id"].as_str().unwrap().to_string();
    assert_eq!(u["schemas"], json!([USER, ENTERPRISE]));
    assert_eq!(u[ENTERPRISE]["employeeNumber"], "701984");
    assert_eq!(u[ENTERPRISE]["manager"]["value"], "mgr-1");
    assert_eq!(u["title"], "Engineer");

    let a = scim(
        &state,
        "GET",
        &format!("/scim/v2/Users?filter={}", q("externalId eq \"alex\"")),
        t,
        None,
    )
    .await;
    assert_eq!(a.json()["totalResults"], 1);

    let p = json!({"schemas": [PATCH], "Operations": [
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "alex.w@contoso.com"},
        {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Marketing"},
        {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0100"},
        {"op": "Replace", "path": "name.givenName", "value": "Alexander"},
        {"op": "Replace", "path": "title", "value": "Lead"},
        {"op": "Remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"},
        {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "mgr-2"}
    ]});
    let a = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        t,
        Some(&p),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let u = a.json();
    assert_eq!(
        u["emails"],
        json!([{"value": "alex.w@contoso.com", "type": "work", "primary": true}])
    );
    assert_eq!(u[ENTERPRISE]["department"], "Marketing");
    assert_eq!(u[ENTERPRISE]["employeeNumber"], "701984");
    assert_eq!(u[ENTERPRISE]["manager"], json!({"value": "mgr-2"}));
    assert_eq!(
        u["phoneNumbers"],
        json!([{"type": "mobile", "value": "+1 555 0100"}])
    );
    assert_eq!(u["name"]["givenName"], "Alexander");
    assert_eq!(u["name"]["familyName"], "Wilber");
    assert_eq!(u["title"], "Lead");

    // Entra disables with a string boolean.
    let p = json!({"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
    let a = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        t,
        Some(&p),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["active"], false);
    let p = json!({"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": "True"}]});
    let a = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        t,
        Some(&p),
    )
    .await;
    assert_eq!(a.json()["active"], true);

    // Groups: Entra adds and removes members by value.
    let other = create(
        &state,
        t,
        &json!({"schemas": [USER], "userName": "megan@contoso.com"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a = scim(&state, "POST", "/scim/v2/Groups", t, Some(&json!({"schemas": [GROUP], "displayName": "Sales", "externalId": "g-1", "members": []}))).await;
    let gid = a.json()["id"].as_str().unwrap().to_string();
    let p = json!({"schemas": [PATCH], "Operations": [{"op": "Add", "path": "members", "value": [{"value": id}, {"value": other}]}]});
    let a = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Groups/{gid}"),
        t,
        Some(&p),
    )
    .await;
    assert_eq!(a.json()["members"].as_array().unwrap().len(), 2);
    let p = json!({"schemas": [PATCH], "Operations": [{"op": "Remove", "path": "members", "value": [{"value": id}]}]});
    let a = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Groups/{gid}"),
        t,
        Some(&p),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["members"].as_array().unwrap().len(), 1);
    assert_eq!(a.json()["members"][0]["value"], json!(other));
    let p = json!({"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "displayName", "value": "Sales EMEA"}]});
    let a = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Groups/{gid}"),
        t,
        Some(&p),
    )
    .await;
    assert_eq!(a.json()["displayName"], "Sales EMEA");
    let a = scim(
        &state,
        "GET",
        &format!("/scim/v2/Groups?filter={}", q("externalId eq \"g-1\"")),
        t,
        None,
    )
    .await;
    assert_eq!(a.json()["totalResults"], 1);
}

#[tokio::test]
async fn rfc7644_filter_examples_and_paging() {
    let (_env, state, t) = setup(&["a"]);
    let t = &t[0];
    for (name, family, title, email_type) in [
        ("bjensen", "Jensen", Some("Tour Guide"), "work"),
        ("jsmith", "Smith", None, "home"),
        ("ajensen", "jensen", Some("Engineer"), "work"),
    ] {
        let mut b = json!({"schemas": [USER], "userName": name, "name": {"familyName": family},
            "emails": [{"value": format!("{name}@example.com"), "type": email_type}]});
        if let Some(title) = title {
            b["title"] = json!(title);
        }
        create(&state, t, &b).await;
    }
    let names = |a: &Answer| -> Vec<String> {
        a.json()["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["userName"].as_str().unwrap().to_string())
            .collect()
    };
    let cases: [(&str, &[&str]); 7] = [
        ("userName Eq \"bjensen\"", &["bjensen"]),
        ("name.familyName co \"ense\"", &["bjensen", "ajensen"]),
        ("userName sw \"J\"", &["jsmith"]),
        ("title pr", &["bjensen", "ajensen"]),
        ("title pr and userName sw \"a\"", &["ajensen"]),
        (
            "emails[type eq \"work\" and value co \"@example.com\"]",
            &["bjensen", "ajensen"],
        ),
        (
            "not (title pr) or userName eq \"ajensen\"",
            &["jsmith", "ajensen"],
        ),
    ];
    for (f, want) in cases {
        let a = scim(
            &state,
            "GET",
            &format!("/scim/v2/Users?filter={}", q(f)),
            t,
            None,
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{f}: {}", a.text());
        assert_eq!(names(&a), want.to_vec(), "{f}");
        assert_eq!(a.json()["totalResults"], want.len(), "{f}");
    }
    // Paging: 1-based, stable order by creation.
    let a = scim(
        &state,
        "GET",
        "/scim/v2/Users?startIndex=2&count=1",
        t,
        None,
    )
    .await;
    assert_eq!(a.json()["totalResults"], 3);
    assert_eq!(a.json()["startIndex"], 2);
    assert_eq!(a.json()["itemsPerPage"], 1);
    assert_eq!(names(&a), vec!["jsmith"]);
    let a = scim(&state, "GET", "/scim/v2/Users?count=0", t, None).await;
    assert_eq!(a.json()["totalResults"], 3);
    assert_eq!(a.json()["Resources"], json!([]));
    let a = scim(
        &state,
        "GET",
        "/scim/v2/Users?startIndex=0&count=2",
        t,
        None,
    )
    .await;
    assert_eq!(names(&a), vec!["bjensen", "jsmith"]);
    let a = scim(&state, "GET", "/scim/v2/Users?attributes=userName", t, None).await;
    let r = &a.json()["Resources"][0];
    assert!(r.get("name").is_none() && r.get("userName").is_some() && r.get("id").is_some());

    for bad in [
        "userName eq",
        "userName xx \"a\"",
        "(userName eq \"a\"",
        "emails[type eq \"work\"",
        "userName eq bjensen",
    ] {
        let a = scim(
            &state,
            "GET",
            &format!("/scim/v2/Users?filter={}", q(bad)),
            t,
            None,
        )
        .await;
        assert_error(&a, StatusCode::BAD_REQUEST, Some("invalidFilter"));
    }
}

#[tokio::test]
async fn rfc7644_patch_examples() {
    let (_env, state, t) = setup(&["a"]);
    let t = &t[0];
    let u = create(&state, t, &json!({"schemas": [USER], "userName": "bjensen",
        "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}, {"value": "babs@jensen.org", "type": "home"}],
        "phoneNumbers": [{"value": "555-555-5555", "type": "work"}]})).await;
    let id = u["id"].as_str().unwrap().to_string();
    let patch = |ops: Value| json!({"schemas": [PATCH], "Operations": ops});
    let uri = format!("/scim/v2/Users/{id}");
    // §3.5.2.1: add without a path.
    let a = scim(&state, "PATCH", &uri, t, Some(&patch(json!([{"op": "add", "value": {"emails": [{"value": "babs@jensen.com", "type": "other"}], "nickName": "Babs"}}])))).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["emails"].as_array().unwrap().len(), 3);
    assert_eq!(a.json()["nickName"], "Babs");
    // §3.5.2.2: remove with a value filter.
    let a = scim(
        &state,
        "PATCH",
        &uri,
        t,
        Some(&patch(
            json!([{"op": "remove", "path": "emails[type eq \"other\"]"}]),
        )),
    )
    .await;
    assert_eq!(a.json()["emails"].as_array().unwrap().len(), 2);
    // §3.5.2.3: replace a sub-attribute of filtered values.
    let a = scim(&state, "PATCH", &uri, t, Some(&patch(json!([{"op": "replace", "path": "emails[type eq \"home\"].value", "value": "b@jensen.org"}])))).await;
    assert_eq!(a.json()["emails"][1]["value"], "b@jensen.org");
    // Remove a whole attribute.
    let a = scim(
        &state,
        "PATCH",
        &uri,
        t,
        Some(&patch(json!([{"op": "remove", "path": "phoneNumbers"}]))),
    )
    .await;
    assert!(a.json().get("phoneNumbers").is_none());
    // Read-only attributes refuse changes; one bad operation writes nothing.
    let before = scim(&state, "GET", &uri, t, None).await.json();
    let a = scim(&state, "PATCH", &uri, t, Some(&patch(json!([{"op": "replace", "path": "nickName", "value": "X"}, {"op": "replace", "path": "id", "value": "x"}])))).await;
    assert_error(&a, StatusCode::BAD_REQUEST, Some("mutability"));
    let a = scim(&state, "PATCH", &uri, t, Some(&patch(json!([{"op": "replace", "path": "nickName", "value": "X"}, {"op": "replace", "path": "emails[type eq", "value": "x"}])))).await;
    assert_error(&a, StatusCode::BAD_REQUEST, Some("invalidPath"));
    let a = scim(&state, "PATCH", &uri, t, Some(&patch(json!([{"op": "replace", "path": "nickName", "value": "X"}, {"op": "replace", "path": "active", "value": "maybe"}])))).await;
    assert_error(&a, StatusCode::BAD_REQUEST, Some("invalidValue"));
    let a = scim(
        &state,
        "PATCH",
        &uri,
        t,
        Some(&patch(json!([{"op": "move", "path": "nickName"}]))),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, Some("invalidSyntax"));
    let a = scim(
        &state,
        "PATCH",
        &uri,
        t,
        Some(&patch(json!([{"op": "remove"}]))),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, Some("noTarget"));
    assert_eq!(scim(&state, "GET", &uri, t, None).await.json(), before);
}

#[tokio::test]
async fn duplicate_user_names_conflict_and_if_match_is_honoured() {
    let (_env, state, t) = setup(&["a"]);
    let t = &t[0];
    let u = create(&state, t, &okta_user("dup@example.com")).await;
    let id = u["id"].as_str().unwrap().to_string();
    let before = counts(&state, "a");
    let a = scim(
        &state,
        "POST",
        "/scim/v2/Users",
        t,
        Some(&okta_user("DUP@example.com")),
    )
    .await;
    assert_error(&a, StatusCode::CONFLICT, Some("uniqueness"));
    assert_eq!(counts(&state, "a"), before);
    let other = create(&state, t, &okta_user("other@example.com")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let p = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "userName", "value": "dup@example.com"}]});
    let a = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Users/{other}"),
        t,
        Some(&p),
    )
    .await;
    assert_error(&a, StatusCode::CONFLICT, Some("uniqueness"));

    let p = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "displayName", "value": "New"}]});
    let mut r = req("PATCH", &format!("/scim/v2/Users/{id}"), t, Some(&p));
    r.headers_mut()
        .insert("if-match", "W/\"7\"".parse().unwrap());
    let a = send(&state, r).await;
    assert_error(&a, StatusCode::PRECONDITION_FAILED, None);
    let mut r = req("PATCH", &format!("/scim/v2/Users/{id}"), t, Some(&p));
    r.headers_mut()
        .insert("if-match", "W/\"1\"".parse().unwrap());
    let a = send(&state, r).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.header("etag"), Some("W/\"2\""));
    let mut r = req("DELETE", &format!("/scim/v2/Users/{id}"), t, None);
    r.headers_mut()
        .insert("if-match", "W/\"1\"".parse().unwrap());
    assert_error(
        &send(&state, r).await,
        StatusCode::PRECONDITION_FAILED,
        None,
    );
}

#[tokio::test]
async fn one_orgs_token_never_reaches_another_orgs_users_or_groups() {
    let (_env, state, t) = setup(&["a", "b"]);
    let (ta, tb) = (&t[0], &t[1]);
    let ub = create(&state, tb, &okta_user("bob@b.example")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let gb = scim(
        &state,
        "POST",
        "/scim/v2/Groups",
        tb,
        Some(&json!({"schemas": [GROUP], "displayName": "B team", "members": [{"value": ub}]})),
    )
    .await
    .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = counts(&state, "b");
    // By id.
    for uri in [
        format!("/scim/v2/Users/{ub}"),
        format!("/scim/v2/Groups/{gb}"),
    ] {
        assert_error(
            &scim(&state, "GET", &uri, ta, None).await,
            StatusCode::NOT_FOUND,
            None,
        );
        assert_error(
            &scim(&state, "DELETE", &uri, ta, None).await,
            StatusCode::NOT_FOUND,
            None,
        );
        let p = json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "displayName", "value": "x"}]});
        assert_error(
            &scim(&state, "PATCH", &uri, ta, Some(&p)).await,
            StatusCode::NOT_FOUND,
            None,
        );
    }
    assert_error(
        &scim(
            &state,
            "PUT",
            &format!("/scim/v2/Users/{ub}"),
            ta,
            Some(&okta_user("bob@b.example")),
        )
        .await,
        StatusCode::NOT_FOUND,
        None,
    );
    // By filter and listing.
    for uri in [
        "/scim/v2/Users".to_string(),
        "/scim/v2/Groups".to_string(),
        format!("/scim/v2/Users?filter={}", q(&format!("id eq \"{ub}\""))),
        format!(
            "/scim/v2/Users?filter={}",
            q("userName eq \"bob@b.example\"")
        ),
        format!(
            "/scim/v2/Groups?filter={}",
            q(&format!("members.value eq \"{ub}\""))
        ),
        format!("/scim/v2/Groups?filter={}", q("displayName eq \"B team\"")),
    ] {
        let a = scim(&state, "GET", &uri, ta, None).await;
        assert_eq!(a.status, StatusCode::OK, "{uri}");
        assert_eq!(a.json()["totalResults"], 0, "{uri}");
    }
    // By members references: org A cannot put B's user in its group.
    let a = scim(
        &state,
        "POST",
        "/scim/v2/Groups",
        ta,
        Some(&json!({"schemas": [GROUP], "displayName": "A team", "members": [{"value": ub}]})),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, Some("invalidValue"));
    // Org A can use the same names without conflict.
    create(&state, ta, &okta_user("bob@b.example")).await;
    assert_eq!(counts(&state, "b").0, before.0);
    assert_eq!(counts(&state, "b").1, before.1);
    let b = scim(&state, "GET", &format!("/scim/v2/Users/{ub}"), tb, None).await;
    assert_eq!(b.json()["userName"], "bob@b.example");
    assert_eq!(b.json()["active"], true);
}

#[tokio::test]
async fn deactivation_and_deletion_end_sessions_and_revoke_devices() {
    let (_env, state, t) = setup(&["a"]);
    let t = &t[0];
    let org = state.store.org("a").unwrap();
    let id = create(&state, t, &okta_user("leaver@example.com")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let now = state.clock.now();
    let cookie =
        aiworklab::sessions::create(org, &id, now, &[], &Context::system(), now).expect("session");
    let cookie = format!("__Host-aiwl_session={}", cookie.expose());
    let (code, _) =
        aiworklab::devices::create_pairing_code(org, &id, &Context::system(), now).expect("code");
    aiworklab::devices::pair(
        &state.store,
        code.expose(),
        "laptop",
        &Context::system(),
        now,
    )
    .expect("pair");
    let me = |cookie: &str| {
        Request::get("/api/v1/me/devices")
            .header("cookie", cookie)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(send(&state, me(&cookie)).await.status, StatusCode::OK);

    let p =
        json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": false}}]});
    let a = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        t,
        Some(&p),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        send(&state, me(&cookie)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(aiworklab::sessions::list(org, &id).unwrap().is_empty());
    let devices = aiworklab::devices::list(org, &id).unwrap();
    assert_eq!(devices.len(), 1);
    assert!(devices[0].revoked_at.is_some());
    let audited: i64 = org.db.read(|c| c.query_row(
        "SELECT count(*) FROM audit_log WHERE actor = 'token:scim:okta' AND action = 'user.deactivate' AND target = ?1",
        [&id], |r| r.get(0)).map_err(aiworklab::store::StoreError::from)).unwrap();
    assert_eq!(audited, 1);

    // Reactivated, signed in again, then deleted: the new session ends too.
    let p =
        json!({"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": true}}]});
    scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        t,
        Some(&p),
    )
    .await;
    let s =
        aiworklab::sessions::create(org, &id, now, &[], &Context::system(), now).expect("session");
    let cookie = format!("__Host-aiwl_session={}", s.expose());
    assert_eq!(send(&state, me(&cookie)).await.status, StatusCode::OK);
    assert_eq!(
        scim(&state, "DELETE", &format!("/scim/v2/Users/{id}"), t, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        send(&state, me(&cookie)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(!aiworklab::users::get(org, &id).unwrap().active);
    // A deleted person cannot be re-enabled and leaves the member list.
    let enabled =
        aiworklab::users::set_active(org, &aiworklab::users::AdminCtx::operator(), &id, true, now);
    assert!(matches!(
        enabled,
        Err(aiworklab::users::UserError::NotFound)
    ));
    assert!(
        aiworklab::users::list(org)
            .unwrap()
            .iter()
            .all(|u| u.id != id)
    );
}

#[tokio::test]
async fn bad_requests_get_clear_scim_errors_and_write_nothing() {
    let (_env, state, t) = setup(&["a"]);
    let t = &t[0];
    let before = counts(&state, "a");
    // Authentication.
    let r = Request::get("/scim/v2/Users").body(Body::empty()).unwrap();
    let a = send(&state, r).await;
    assert_error(&a, StatusCode::UNAUTHORIZED, None);
    assert_eq!(a.header("www-authenticate"), Some("Bearer"));
    for bad in ["aiwl_scim_notarealtoken", "nonsense", ""] {
        assert_error(
            &scim(&state, "GET", "/scim/v2/Users", bad, None).await,
            StatusCode::UNAUTHORIZED,
            None,
        );
        // Without a valid token a bad query, a bad id or a delete learns
        // nothing more than 401 either (the token is checked first).
        for (method, uri) in [
            (
                "GET",
                format!("/scim/v2/Users?filter={}", q("userName zz \"a\"")),
            ),
            ("GET", "/scim/v2/Groups?count=x".to_string()),
            (
                "GET",
                "/scim/v2/Users/no-such-id?attributes=%5B".to_string(),
            ),
            ("DELETE", "/scim/v2/Users/no-such-id".to_string()),
            ("DELETE", "/scim/v2/Groups/no-such-id".to_string()),
        ] {
            assert_error(
                &scim(&state, method, &uri, bad, None).await,
                StatusCode::UNAUTHORIZED,
                None,
            );
        }
    }
    assert_error(
        &scim(
            &state,
            "GET",
            &format!("/scim/v2/Users?filter={}", q("userName zz \"a\"")),
            t,
            None,
        )
        .await,
        StatusCode::BAD_REQUEST,
        Some("invalidFilter"),
    );
    let raw = |body: &str, ct: &str| {
        Request::post("/scim/v2/Users")
            .header("authorization", format!("Bearer {t}"))
            .header("content-type", ct)
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    assert_error(
        &send(&state, raw("{\"schemas\": [", "application/scim+json")).await,
        StatusCode::BAD_REQUEST,
        Some("invalidSyntax"),
    );
    assert_error(
        &send(&state, raw("[1, 2]", "application/json")).await,
        StatusCode::BAD_REQUEST,
        Some("invalidSyntax"),
    );
    let deep = format!(
        "{{\"schemas\": [\"{USER}\"], \"userName\": \"d\", \"x\": {}{}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    assert_error(
        &send(&state, raw(&deep, "application/scim+json")).await,
        StatusCode::BAD_REQUEST,
        Some("invalidSyntax"),
    );
    let body = okta_user("ct@example.com").to_string();
    assert_eq!(
        send(&state, raw(&body, "text/plain")).await.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        send(&state, raw(&body, "application/x-www-form-urlencoded"))
            .await
            .status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let huge = json!({"schemas": [USER], "userName": "huge", "nickName": "x".repeat(1_200_000)})
        .to_string();
    assert_error(
        &send(&state, raw(&huge, "application/scim+json")).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        None,
    );
    let unknown = json!({"schemas": ["urn:example:evil:2.0:User"], "userName": "u"});
    assert_error(
        &scim(&state, "POST", "/scim/v2/Users", t, Some(&unknown)).await,
        StatusCode::BAD_REQUEST,
        Some("invalidValue"),
    );
    let noname = json!({"schemas": [USER], "displayName": "No name"});
    assert_error(
        &scim(&state, "POST", "/scim/v2/Users", t, Some(&noname)).await,
        StatusCode::BAD_REQUEST,
        Some("invalidValue"),
    );
    let spaced = json!({"schemas": [USER], "userName": "a b"});
    assert_error(
        &scim(&state, "POST", "/scim/v2/Users", t, Some(&spaced)).await,
        StatusCode::BAD_REQUEST,
        Some("invalidValue"),
    );
    let group_bad =
        json!({"schemas": [GROUP], "displayName": "G", "members": [{"value": "no-such-user"}]});
    assert_error(
        &scim(&state, "POST", "/scim/v2/Groups", t, Some(&group_bad)).await,
        StatusCode::BAD_REQUEST,
        Some("invalidValue"),
    );
    let too_many: Vec<Value> = (0..1001)
        .map(|_| json!({"op": "add", "path": "nickName", "value": "x"}))
        .collect();
    assert_error(
        &scim(
            &state,
            "PATCH",
            "/scim/v2/Users/x",
            t,
            Some(&json!({"schemas": [PATCH], "Operations": too_many})),
        )
        .await,
        StatusCode::BAD_REQUEST,
        Some("tooMany"),
    );
    assert_eq!(counts(&state, "a"), before);
}

#[tokio::test]
async fn discovery_endpoints_describe_what_is_supported() {
    let (_env, state, t) = setup(&["a"]);
    let t = &t[0];
    let a = scim(&state, "GET", "/scim/v2/ServiceProviderConfig", t, None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("content-type"), Some("application/scim+json"));
    let c = a.json();
    assert_eq!(c["patch"]["supported"], true);
    assert_eq!(c["bulk"]["supported"], false);
    assert_eq!(c["filter"]["supported"], true);
    assert_eq!(c["etag"]["supported"], true);
    assert_eq!(c["authenticationSchemes"][0]["type"], "oauthbearertoken");
    let a = scim(&state, "GET", "/scim/v2/ResourceTypes", t, None).await;
    assert_eq!(a.json()["totalResults"], 2);
    let a = scim(&state, "GET", "/scim/v2/ResourceTypes/User", t, None).await;
    assert_eq!(a.json()["schemaExtensions"][0]["schema"], ENTERPRISE);
    let a = scim(&state, "GET", "/scim/v2/Schemas", t, None).await;
    assert_eq!(a.json()["totalResults"], 3);
    let a = scim(
        &state,
        "GET",
        &format!("/scim/v2/Schemas/{ENTERPRISE}"),
        t,
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.json()["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "department")
    );
    for (m, uri) in [("POST", "/scim/v2/Bulk"), ("GET", "/scim/v2/Me")] {
        assert_error(
            &scim(&state, m, uri, t, Some(&json!({}))).await,
            StatusCode::NOT_FOUND,
            None,
        );
    }
    assert_error(
        &scim(&state, "DELETE", "/scim/v2/Users", t, None).await,
        StatusCode::METHOD_NOT_ALLOWED,
        None,
    );
    let r = Request::get("/scim/v2/Bulk").body(Body::empty()).unwrap();
    assert_error(&send(&state, r).await, StatusCode::UNAUTHORIZED, None);
    let r = Request::get("/scim/v2/ServiceProviderConfig")
        .body(Body::empty())
        .unwrap();
    assert_error(&send(&state, r).await, StatusCode::UNAUTHORIZED, None);
}

#[tokio::test]
async fn over_the_scim_rate_limit_answers_429_in_scim_format() {
    let mut env = Env::new(&["a"]);
    env.raw.rate_limits.scim = aiworklab::config::RawRateLimit::new(2, 3600);
    let state = env.state();
    let (_, secret) = tokens::create(
        state.store.org("a").unwrap(),
        TokenKind::Scim,
        "okta",
        None,
        &AdminCtx::operator(),
        state.clock.now(),
    )
    .unwrap();
    let t = secret.expose().to_string();
    for _ in 0..2 {
        assert_eq!(
            scim(&state, "GET", "/scim/v2/Users", &t, None).await.status,
            StatusCode::OK
        );
    }
    let a = scim(&state, "GET", "/scim/v2/Users", &t, None).await;
    assert_error(&a, StatusCode::TOO_MANY_REQUESTS, None);
    assert!(a.header("retry-after").is_some());
}

#[tokio::test]
async fn a_token_calling_from_many_addresses_shares_one_budget() {
    let (_env, state, t) = setup_with(&["a"], |raw| {
        raw.rate_limits.scim = aiworklab::config::RawRateLimit::new(3, 3600);
    });
    let from = |last: u8, token: &str| {
        let peer = std::net::SocketAddr::from(([10, 0, 0, last], 40000));
        crate::support::send_from(&state, peer, req("GET", "/scim/v2/Users", token, None))
    };
    // Three addresses, one request each: each address is within its own
    // budget, and the token has now spent its three.
    for last in 1..=3 {
        assert_eq!(from(last, &t[0]).await.status, StatusCode::OK);
    }
    let a = from(4, &t[0]).await;
    assert_error(&a, StatusCode::TOO_MANY_REQUESTS, None);
    assert!(
        a.header("retry-after")
            .is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1))
    );
    // Another token of the same org, from a fresh address, has its own.
    let (_, other) = tokens::create(
        state.store.org("a").expect("org"),
        TokenKind::Scim,
        "entra",
        None,
        &AdminCtx::operator(),
        state.clock.now(),
    )
    .expect("token");
    assert_eq!(from(5, other.expose()).await.status, StatusCode::OK);
    let metrics = crate::support::send(&state, crate::support::get("/metrics")).await;
    assert!(
        metrics
            .text()
            .contains("aiworklab_rate_limited_requests_total{class=\"scim\"} 1"),
        "{}",
        metrics.text()
    );
}

#[tokio::test]
async fn put_without_active_keeps_a_deactivated_user_deactivated() {
    let (_env, state, t) = setup(&["a"]);
    let t = &t[0];
    let mut body = okta_user("keep@example.com");
    body["active"] = json!(false);
    let id = create(&state, t, &body).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    body.as_object_mut().unwrap().remove("active");
    let a = scim(
        &state,
        "PUT",
        &format!("/scim/v2/Users/{id}"),
        t,
        Some(&body),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["active"], false);
}

#[tokio::test]
async fn scim_only_orgs_admit_provisioned_people_and_never_deleted_ones() {
    use aiworklab::users::signin::{Identity, Refusal, resolve};
    let mut env = Env::new(&["a"]);
    env.raw.orgs[0].provisioning = "scim_only".into();
    // Okta's contract: the SCIM userName is the sign-in's preferred_username.
    env.raw.orgs[0].oidc = Some(aiworklab::config::RawOidc {
        issuer: "https://idp.example".into(),
        client_id: "aiwl".into(),
        client_secret: "secret".into(),
        link_by: "user_name".into(),
        ..aiworklab::config::RawOidc::default()
    });
    let state = env.state();
    let (_, secret) = tokens::create(
        state.store.org("a").unwrap(),
        TokenKind::Scim,
        "entra",
        None,
        &AdminCtx::operator(),
        state.clock.now(),
    )
    .unwrap();
    let t = secret.expose().to_string();
    let org = state.store.org("a").unwrap();
    let settings = state.settings.orgs[0].clone();
    let who = |name: &str, sub: &str| Identity {
        issuer: "https://idp.example".into(),
        subject: sub.into(),
        user_name: name.into(),
        display_name: String::new(),
        email: None,
        email_verified: true,
        groups: None,
        link_value: None,
    };
    let now = state.clock.now();
    let sys = Context::system();
    // Not provisioned: refused.
    let r = resolve(org, &settings, &who("pat@example.com", "s1"), &sys, now).unwrap();
    assert_eq!(r.err(), Some(Refusal::NotProvisioned));
    // Provisioned over SCIM: admitted, the identity linked by user name.
    let id = create(&state, &t, &okta_user("pat@example.com")).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let u = resolve(org, &settings, &who("PAT@example.com", "s1"), &sys, now)
        .unwrap()
        .expect("admitted");
    assert_eq!(u.id, id);
    // Deleted: refused, by identity and by name.
    scim(&state, "DELETE", &format!("/scim/v2/Users/{id}"), &t, None).await;
    let r = resolve(org, &settings, &who("pat@example.com", "s1"), &sys, now).unwrap();
    assert_eq!(r.err(), Some(Refusal::Deactivated));
    let r = resolve(org, &settings, &who("pat@example.com", "s2"), &sys, now).unwrap();
    assert_eq!(r.err(), Some(Refusal::NotProvisioned));
}

#[tokio::test]
async fn a_user_the_idp_finds_and_updates_becomes_scim_managed() {
    // Someone created by the operator (or at a jit sign-in) before SCIM was
    // connected: the IdP's POST conflicts, it looks the user up and PATCHes.
    let (_env, state, toks) = setup(&["acme"]);
    let db = state.store.org("acme").expect("org");
    let before = aiworklab::users::add(
        db,
        &aiworklab::users::AdminCtx::operator(),
        "dana@acme.test",
        "Dana",
        None,
        false,
        state.clock.now(),
    )
    .expect("user");
    assert_eq!(before.provisioned_by, "operator");
    let conflict = scim(
        &state,
        "POST",
        "/scim/v2/Users",
        &toks[0],
        Some(&okta_user("dana@acme.test")),
    )
    .await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    let found = scim(
        &state,
        "GET",
        &format!(
            "/scim/v2/Users?filter={}",
            q("userName eq \"dana@acme.test\"")
        ),
        &toks[0],
        None,
    )
    .await;
    let id = found.json()["Resources"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(id, before.id);
    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"displayName": "Dana D."}}]
    });
    let done = scim(
        &state,
        "PATCH",
        &format!("/scim/v2/Users/{id}"),
        &toks[0],
        Some(&patch),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    let after = aiworklab::users::get(db, &id).expect("user");
    assert_eq!(
        after.provisioned_by, "scim",
        "a scim_only org would still refuse them"
    );
    assert_eq!(after.display_name, "Dana D.");
}

#[tokio::test]
async fn pages_count_and_list_live_users_only_in_creation_order() {
    let (_env, state, t) = setup(&["a"]);
    let t = &t[0];
    let mut ids = Vec::new();
    for name in ["p1", "p2", "p3", "p4", "p5"] {
        let u = create(&state, t, &json!({"schemas": [USER], "userName": name})).await;
        ids.push(u["id"].as_str().unwrap().to_string());
    }
    for gone in [&ids[1], &ids[4]] {
        let a = scim(&state, "DELETE", &format!("/scim/v2/Users/{gone}"), t, None).await;
        assert_eq!(a.status, StatusCode::NO_CONTENT);
    }
    let page = |start: usize, count: usize| {
        let state = state.clone();
        async move {
            let a = scim(
                &state,
                "GET",
                &format!("/scim/v2/Users?startIndex={start}&count={count}"),
                t,
                None,
            )
            .await;
            assert_eq!(a.status, StatusCode::OK, "{}", a.text());
            let j = a.json();
            let names: Vec<String> = j["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["userName"].as_str().unwrap().to_string())
                .collect();
            (j["totalResults"].as_u64().unwrap(), names)
        }
    };
    assert_eq!(page(1, 2).await, (3, vec!["p1".into(), "p3".into()]));
    assert_eq!(page(3, 2).await, (3, vec!["p4".into()]));
    assert_eq!(page(4, 2).await, (3, vec![]));
    assert_eq!(page(2, 0).await, (3, vec![]));
    // An indexed equality on one side of `and` narrows; the other side
    // still applies.
    let f = |filter: &str| format!("/scim/v2/Users?filter={}", q(filter));
    let a = scim(
        &state,
        "GET",
        &f("userName eq \"p3\" and active eq true"),
        t,
        None,
    )
    .await;
    assert_eq!(a.json()["totalResults"], 1);
    let a = scim(
        &state,
        "GET",
        &f("active eq false and userName eq \"p3\""),
        t,
        None,
    )
    .await;
    assert_eq!(a.json()["totalResults"], 0);
    let a = scim(&state, "GET", &f("userName eq \"p2\""), t, None).await;
    assert_eq!(a.json()["totalResults"], 0, "a deleted user is not found");
}

/// A request with a body of `size` bytes of valid JSON, with or without a
/// `Content-Length` header (without, the limit applies as the body streams).
pub(crate) fn big(
    method: &str,
    uri: &str,
    token: &str,
    size: usize,
    length_header: bool,
) -> Request<Body> {
    let padding = size.saturating_sub(60);
    let body =
        json!({"schemas": [USER], "userName": "big", "nickName": "x".repeat(padding)}).to_string();
    let mut r = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/scim+json");
    if length_header {
        r = r.header("content-length", body.len());
    }
    r.body(Body::from(body)).expect("request")
}

#[tokio::test]
async fn bodies_over_the_server_limit_get_a_scim_413_and_write_nothing() {
    let (_env, state, t) = setup_with(&["a"], |raw| raw.server.max_body_bytes = 64 * 1024);
    let t = &t[0];
    let u = create(&state, t, &json!({"schemas": [USER], "userName": "kept"})).await;
    let id = u["id"].as_str().unwrap().to_string();
    let before = counts(&state, "a");
    for (method, uri) in [
        ("POST", "/scim/v2/Users".to_string()),
        ("PUT", format!("/scim/v2/Users/{id}")),
        ("PATCH", format!("/scim/v2/Users/{id}")),
        ("POST", "/scim/v2/Groups".to_string()),
    ] {
        for length_header in [true, false] {
            let a = send(&state, big(method, &uri, t, 100 * 1024, length_header)).await;
            assert_error(&a, StatusCode::PAYLOAD_TOO_LARGE, None);
            assert!(
                a.json()["detail"].as_str().unwrap().contains("65536 bytes"),
                "{method} {uri}: {}",
                a.text()
            );
            // The server-wide layers still apply.
            assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
        }
    }
    // Just under the limit is read (and refused for what it says, not its size).
    let a = send(&state, big("POST", "/scim/v2/Users", t, 60 * 1024, true)).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let a = scim(&state, "GET", &format!("/scim/v2/Users/{id}"), t, None).await;
    assert_eq!(a.json()["meta"]["version"], u["meta"]["version"]);
    let after = counts(&state, "a");
    assert_eq!((after.0, after.1), (before.0 + 1, before.1));
}

#[tokio::test]
async fn the_default_limits_answer_in_scim_format_too() {
    let (_env, state, t) = setup(&["a"]);
    let t = &t[0];
    let before = counts(&state, "a");
    // Over SCIM's own 1 MiB, and over the server's 2 MiB.
    for size in [1536 * 1024, 3 * 1024 * 1024] {
        let a = send(&state, big("POST", "/scim/v2/Users", t, size, true)).await;
        assert_error(&a, StatusCode::PAYLOAD_TOO_LARGE, None);
        assert!(a.text().contains("1048576 bytes"), "{}", a.text());
    }
    assert_eq!(counts(&state, "a"), before);
}

#[tokio::test]
async fn unknown_routes_and_methods_under_scim_get_scim_errors() {
    let (_env, state, t) = setup(&["a"]);
    let t = &t[0];
    for uri in [
        "/scim/v2",
        "/scim/v2/",
        "/scim/v2/Nope",
        "/scim/v2/Users/x/y",
        "/scim/v2/Bulk",
    ] {
        assert_error(
            &scim(&state, "GET", uri, t, None).await,
            StatusCode::NOT_FOUND,
            None,
        );
        // Without the token, the token is what is wrong.
        let a = send(&state, Request::get(uri).body(Body::empty()).unwrap()).await;
        assert_error(&a, StatusCode::UNAUTHORIZED, None);
    }
    for (method, uri, allow) in [
        ("DELETE", "/scim/v2/Users", "GET, POST"),
        ("POST", "/scim/v2/Users/x", "GET, PUT, PATCH, DELETE"),
        ("PUT", "/scim/v2/Groups", "GET, POST"),
        ("POST", "/scim/v2/ServiceProviderConfig", "GET"),
        ("DELETE", "/scim/v2/Schemas", "GET"),
        ("PATCH", "/scim/v2/ResourceTypes/User", "GET"),
    ] {
        let a = scim(&state, method, uri, t, Some(&json!({}))).await;
        assert_error(&a, StatusCode::METHOD_NOT_ALLOWED, None);
        assert_eq!(a.header("allow"), Some(allow), "{method} {uri}");
    }
    // Outside /scim/v2 the API's problem documents are unchanged.
    let a = send(
        &state,
        Request::get("/scim/v2x").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.header("content-type"), Some("application/problem+json"));
}

#[tokio::test]
async fn lists_sort_by_sort_by_and_sort_order() {
    let (_env, state, t) = setup(&["a"]);
    let t = &t[0];
    for (name, display, external) in [
        ("carol", Some("Zed"), Some("x2")),
        ("Alice", None, Some("X1")),
        ("bob", Some("amy"), None),
        ("dave", Some("Amy"), Some("x10")),
    ] {
        let mut b = json!({"schemas": [USER], "userName": name});
        if let Some(d) = display {
            b["displayName"] = json!(d);
        }
        if let Some(x) = external {
            b["externalId"] = json!(x);
        }
        create(&state, t, &b).await;
    }
    let names = |a: &Answer| -> Vec<String> {
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        a.json()["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["userName"].as_str().unwrap().to_string())
            .collect()
    };
    let get = |query: String| {
        let state = state.clone();
        async move { scim(&state, "GET", &format!("/scim/v2/Users?{query}"), t, None).await }
    };
    // userName ignores case; ascending is the default.
    let a = get("sortBy=userName".into()).await;
    assert_eq!(names(&a), ["Alice", "bob", "carol", "dave"]);
    let a = get("sortBy=userName&sortOrder=descending".into()).await;
    assert_eq!(names(&a), ["dave", "carol", "bob", "Alice"]);
    // Equal displayNames (in any case) by id; no displayName last, or
    // first when descending.
    let a = get("sortBy=displayName".into()).await;
    let got = names(&a);
    assert_eq!(got[2..], ["carol", "Alice"]);
    let amys = {
        let j = a.json();
        let mut ids: Vec<String> = j["Resources"].as_array().unwrap()[..2]
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        let in_order = ids.clone();
        ids.sort();
        (in_order, ids)
    };
    assert_eq!(amys.0, amys.1, "ties are broken by id");
    let a = get("sortBy=displayName&sortOrder=Descending".into()).await;
    assert_eq!(names(&a)[..2], ["Alice", "carol"]);
    // externalId is case-exact: "X1" before "x10" before "x2".
    let a = get("sortBy=externalId".into()).await;
    assert_eq!(names(&a), ["Alice", "dave", "carol", "bob"]);
    // With a filter and paging: the sorted matches, cut into pages.
    let f = q("userName ne \"bob\"");
    let a = get(format!(
        "filter={f}&sortBy=userName&sortOrder=descending&startIndex=2&count=1"
    ))
    .await;
    assert_eq!(a.json()["totalResults"], 3);
    assert_eq!(names(&a), ["carol"]);
    // Creation times (users made in the same millisecond tie, by id).
    let a = get("sortBy=meta.created&sortOrder=descending".into()).await;
    let created: Vec<String> = a.json()["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["meta"]["created"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(created.len(), 4);
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "{created:?}");

    // Groups sort too.
    for g in ["beta", "Alpha", "gamma"] {
        let a = scim(
            &state,
            "POST",
            "/scim/v2/Groups",
            t,
            Some(&json!({"schemas": [GROUP], "displayName": g})),
        )
        .await;
        assert_eq!(a.status, StatusCode::CREATED);
    }
    let a = scim(
        &state,
        "GET",
        "/scim/v2/Groups?sortBy=displayName&sortOrder=descending",
        t,
        None,
    )
    .await;
    let shown: Vec<String> = a.json()["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["displayName"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(shown, ["gamma", "beta", "Alpha"]);

    for bad in [
        "sortBy=name.givenName",
        "sortBy=password",
        "sortBy=userName&sortOrder=sideways",
        "sortOrder=up",
    ] {
        assert_error(
            &get(bad.into()).await,
            StatusCode::BAD_REQUEST,
            Some("invalidValue"),
        );
    }
    let a = scim(&state, "GET", "/scim/v2/Groups?sortBy=userName", t, None).await;
    assert_error(&a, StatusCode::BAD_REQUEST, Some("invalidValue"));
    let a = scim(&state, "GET", "/scim/v2/ServiceProviderConfig", t, None).await;
    assert_eq!(a.json()["sort"]["supported"], true);
}

#[tokio::test]
async fn search_with_post_answers_as_the_same_get() {
    const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
    let (_env, state, t) = setup(&["a"]);
    let t = &t[0];
    for name in ["bjensen", "jsmith", "ajensen", "mjensen"] {
        create(
            &state,
            t,
            &json!({"schemas": [USER], "userName": name, "displayName": name.to_uppercase()}),
        )
        .await;
    }
    let group = scim(
        &state,
        "POST",
        "/scim/v2/Groups",
        t,
        Some(&json!({"schemas": [GROUP], "displayName": "Tour Guides"})),
    )
    .await;
    assert_eq!(group.status, StatusCode::CREATED);
    let before = counts(&state, "a");

    // RFC 7644 §3.4.3's example, with sorting and paging.
    let body = json!({
        "schemas": [SEARCH],
        "attributes": ["displayName", "userName"],
        "filter": "userName ew \"jensen\"",
        "sortBy": "userName",
        "sortOrder": "descending",
        "startIndex": 2,
        "count": 2
    });
    let posted = scim(&state, "POST", "/scim/v2/Users/.search", t, Some(&body)).await;
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.text());
    assert_eq!(posted.header("content-type"), Some("application/scim+json"));
    let got = scim(
        &state,
        "GET",
        &format!(
            "/scim/v2/Users?attributes=displayName,userName&filter={}&sortBy=userName&sortOrder=descending&startIndex=2&count=2",
            q("userName ew \"jensen\"")
        ),
        t,
        None,
    )
    .await;
    assert_eq!(posted.json(), got.json());
    let j = posted.json();
    assert_eq!(j["totalResults"], 3);
    let names: Vec<&str> = j["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bjensen", "ajensen"]);
    assert!(
        j["Resources"][0].get("active").is_none(),
        "attributes applied"
    );

    let groups = scim(
        &state,
        "POST",
        "/scim/v2/Groups/.search",
        t,
        Some(&json!({"schemas": [SEARCH], "filter": "displayName eq \"tour guides\""})),
    )
    .await;
    assert_eq!(groups.status, StatusCode::OK, "{}", groups.text());
    assert_eq!(groups.json()["totalResults"], 1);
    // An empty search lists everything.
    let all = scim(
        &state,
        "POST",
        "/scim/v2/Users/.search",
        t,
        Some(&json!({"schemas": [SEARCH]})),
    )
    .await;
    assert_eq!(all.json()["totalResults"], 4);

    for (bad, scim_type) in [
        (
            json!({"schemas": [USER], "filter": "userName pr"}),
            "invalidValue",
        ),
        (json!({"filter": "userName pr"}), "invalidValue"),
        (json!({"schemas": [SEARCH], "count": "10"}), "invalidValue"),
        (
            json!({"schemas": [SEARCH], "startIndex": 1.5}),
            "invalidValue",
        ),
        (
            json!({"schemas": [SEARCH], "attributes": "userName"}),
            "invalidValue",
        ),
        (
            json!({"schemas": [SEARCH], "attributes": ["a,b"]}),
            "invalidValue",
        ),
        (
            json!({"schemas": [SEARCH], "password": "x"}),
            "invalidValue",
        ),
        (
            json!({"schemas": [SEARCH], "sortBy": "password"}),
            "invalidValue",
        ),
        (
            json!({"schemas": [SEARCH], "filter": "userName eq"}),
            "invalidFilter",
        ),
    ] {
        let a = scim(&state, "POST", "/scim/v2/Users/.search", t, Some(&bad)).await;
        assert_error(&a, StatusCode::BAD_REQUEST, Some(scim_type));
    }
    let a = scim(&state, "GET", "/scim/v2/Users/.search", t, None).await;
    assert_error(&a, StatusCode::METHOD_NOT_ALLOWED, None);
    assert_eq!(a.header("allow"), Some("POST"));
    let r = Request::post("/scim/v2/Groups/.search")
        .header("content-type", "application/scim+json")
        .body(Body::from(json!({"schemas": [SEARCH]}).to_string()))
        .unwrap();
    assert_error(&send(&state, r).await, StatusCode::UNAUTHORIZED, None);
    // Searching changes nothing and is not audited as a change.
    assert_eq!(counts(&state, "a"), before);
}

/// The CSRF token of the session `uid` holds (the one its pages carry).
fn csrf_of_session(state: &AppState, org: &str, uid: &str) -> String {
    aiworklab::sessions::list(state.store.org(org).expect("org"), uid).expect("sessions")[0]
        .csrf
        .clone()
}

fn form_post(uri: &str, cookie: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body.to_string()))
        .expect("request")
}

fn scim_token_count(state: &AppState, org: &str) -> usize {
    tokens::list(state.store.org(org).expect("org"))
        .expect("tokens")
        .iter()
        .filter(|t| t.kind == TokenKind::Scim)
        .count()
}

#[tokio::test]
async fn admins_create_and_revoke_scim_tokens_on_the_admin_page_with_a_fresh_sign_in() {
    let env = Env::new(&["acme", "other"]);
    let clock = crate::support::manual_clock();
    let state = env.state_with_clock(clock.clone());
    let (cookie, uid) = crate::support::signed_in(&state, "acme", "ines", true);
    let csrf = csrf_of_session(&state, "acme", &uid);

    let page = send(
        &state,
        crate::support::get_with_cookie("/o/acme/admin", &cookie),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.text().contains("No SCIM token yet"), "{}", page.text());
    assert!(page.text().contains("/scim/v2</code>"));

    // Created: the secret is shown once, on the page, and works at once.
    let created = send(
        &state,
        form_post(
            "/o/acme/admin/scim-tokens",
            &cookie,
            &format!("csrf={csrf}&name=okta+prod"),
        ),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    let html = created.text();
    let secret = html
        .split("id=\"new-scim-token\" class=\"secret\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .expect("the secret is shown")
        .to_string();
    assert!(secret.starts_with("aiwl_scim_"), "{secret}");
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let listed = scim(&state, "GET", "/scim/v2/Users", &secret, None).await;
    assert_eq!(listed.status, StatusCode::OK);
    let again = send(
        &state,
        crate::support::get_with_cookie("/o/acme/admin", &cookie),
    )
    .await;
    let html = again.text();
    assert!(
        html.contains("okta prod") && html.contains(">ines<"),
        "{html}"
    );
    assert!(!html.contains(&secret), "the secret is shown only once");
    let org = state.store.org("acme").expect("org");
    let audited: i64 = org
        .db
        .read(|c| {
            c.query_row(
                "SELECT count(*) FROM audit_log WHERE action = 'token.create' AND actor = ?1",
                [format!("user:{uid}")],
                |r| r.get(0),
            )
            .map_err(aiworklab::store::StoreError::from)
        })
        .expect("audit");
    assert_eq!(audited, 1);

    // A bad name: a 400 page naming the problem; nothing created.
    for bad in ["name=", "name=%01x", &format!("name={}", "n".repeat(101))] {
        let a = send(
            &state,
            form_post(
                "/o/acme/admin/scim-tokens",
                &cookie,
                &format!("csrf={csrf}&{bad}"),
            ),
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            a.text().contains("1 to 100 printable characters"),
            "{}",
            a.text()
        );
    }
    // A forged CSRF token, a member, another org's admin: nothing created.
    let forged = send(
        &state,
        form_post(
            "/o/acme/admin/scim-tokens",
            &cookie,
            "csrf=forged&name=evil",
        ),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let (member, member_id) = crate::support::signed_in(&state, "acme", "mo", false);
    let member_csrf = csrf_of_session(&state, "acme", &member_id);
    let refused = send(
        &state,
        form_post(
            "/o/acme/admin/scim-tokens",
            &member,
            &format!("csrf={member_csrf}&name=evil"),
        ),
    )
    .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let (outsider, outsider_id) = crate::support::signed_in(&state, "other", "oz", true);
    let outsider_csrf = csrf_of_session(&state, "other", &outsider_id);
    let refused = send(
        &state,
        form_post(
            "/o/acme/admin/scim-tokens",
            &outsider,
            &format!("csrf={outsider_csrf}&name=evil"),
        ),
    )
    .await;
    assert_ne!(refused.status, StatusCode::OK);
    assert_eq!(scim_token_count(&state, "acme"), 1);
    assert_eq!(scim_token_count(&state, "other"), 0);

    // An MCP token is not revocable here.
    let (mcp, _) = tokens::create(
        org,
        TokenKind::Mcp,
        "agent",
        None,
        &AdminCtx::operator(),
        aiworklab::clock::Clock::now(clock.as_ref()),
    )
    .expect("mcp token");
    let a = send(
        &state,
        form_post(
            &format!("/o/acme/admin/scim-tokens/{}/revoke", mcp.id),
            &cookie,
            &format!("csrf={csrf}"),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // After reauth_max_age, a change sends the admin to sign in again and
    // changes nothing.
    let id = tokens::list(org)
        .expect("tokens")
        .into_iter()
        .find(|t| t.kind == TokenKind::Scim)
        .expect("scim")
        .id;
    clock.advance(chrono::Duration::seconds(301));
    let stale = send(
        &state,
        form_post(
            &format!("/o/acme/admin/scim-tokens/{id}/revoke"),
            &cookie,
            &format!("csrf={csrf}"),
        ),
    )
    .await;
    assert_eq!(stale.status, StatusCode::SEE_OTHER);
    assert!(
        stale
            .header("location")
            .expect("location")
            .contains("reauth=1")
    );
    assert_eq!(
        scim(&state, "GET", "/scim/v2/Users", &secret, None)
            .await
            .status,
        StatusCode::OK
    );

    // Revoked with a fresh sign-in: the identity provider is refused at once.
    let (fresh, fresh_id) = crate::support::signed_in(&state, "acme", "ines2", true);
    let fresh_csrf = csrf_of_session(&state, "acme", &fresh_id);
    let revoked = send(
        &state,
        form_post(
            &format!("/o/acme/admin/scim-tokens/{id}/revoke"),
            &fresh,
            &format!("csrf={fresh_csrf}"),
        ),
    )
    .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.text());
    assert_eq!(
        scim(&state, "GET", "/scim/v2/Users", &secret, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let page = send(
        &state,
        crate::support::get_with_cookie("/o/acme/admin?done=token-revoked", &fresh),
    )
    .await;
    assert!(
        page.text().contains("SCIM token revoked"),
        "{}",
        page.text()
    );
    assert!(page.text().contains("revoked 20"), "{}", page.text());
}
