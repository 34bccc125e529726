//! The engineer's own page `/me` over real HTTP: it shows only the
//! signed-in person's data, whoever they are (an engineer, an admin, a
//! viewer), never another engineer's marker concept (P18, P19); the
//! privacy forms round-trip and call the same functions as the API (opt
//! out and back in, delete and cancel, download), each audited and each
//! refused without the CSRF token (P16, P19, P21, P22); devices are
//! renamed by form and by `PATCH /api/v1/me/devices/{id}` with a validated
//! name, only the owner's.

use aiworklab::audit::Context;
use aiworklab::catalogue::custom;
use aiworklab::skill::Concept;
use aiworklab::users::{self, AdminCtx};
use axum::body::Body;
use axum::http::Request;
use reqwest::StatusCode;

use crate::aggregates_page::{Served, push, t};
use crate::support::{Env, audit_rows, csrf_of, send, signed_in, with_csrf};

/// An org concept only one engineer meets: its slug and title must never
/// be on anyone else's page.
fn marker(state: &aiworklab::AppState, slug: &str, title: &str) {
    custom::add(
        state.store.org("acme").expect("org"),
        &state.catalogue,
        &AdminCtx::operator(),
        Concept {
            slug: slug.into(),
            title: title.into(),
            domain: "x-lab".into(),
            summary: "A marker.".into(),
            prerequisites: vec![],
            related: vec![],
            matchers: Default::default(),
        },
        state.clock.now(),
    )
    .expect("custom concept");
}

/// POST a form with the session's CSRF token (unless `csrf` is false),
/// from this site's origin: status, Location, body.
async fn post_form(
    site: &Served,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
    csrf: bool,
) -> (StatusCode, String, String) {
    let token = if csrf {
        csrf_of(&site.state, cookie)
    } else {
        "not-the-token".to_string()
    };
    site.post_form(path, cookie, &token, fields).await
}

fn actions(state: &aiworklab::AppState) -> Vec<String> {
    audit_rows(state, "acme")
        .into_iter()
        .map(|r| r.action)
        .collect()
}

#[tokio::test]
async fn me_shows_only_the_signed_in_persons_own_data_whoever_they_are() {
    let mut env = Env::new(&["acme", "other"]);
    let site = Served::start(&mut env).await;
    let state = &site.state;
    marker(state, "x-marker-quokka", "Quokka marker");
    marker(state, "x-marker-axolotl", "Axolotl marker");
    let (ann, ann_id) = signed_in(state, "acme", "ann", false);
    let (ben, ben_id) = signed_in(state, "acme", "ben", false);
    let (admin, _) = signed_in(state, "acme", "boss", true);
    let (viewer, viewer_id) = signed_in(state, "acme", "vera", false);
    let (other_admin, _) = signed_in(state, "other", "mallory", true);
    users::set_viewer(
        state.store.org("acme").expect("org"),
        &AdminCtx::operator(),
        &viewer_id,
        true,
        state.clock.now(),
    )
    .expect("grant");
    push(
        state,
        &ann_id,
        "x-marker-quokka",
        &[
            ("seen", t(1, 6)),
            ("demonstrated", t(1, 7)),
            ("check_passed", t(1, 8)),
        ],
    );
    push(state, &ann_id, "rust-lifetimes", &[("seen", t(1, 12))]);
    push(
        state,
        &ben_id,
        "x-marker-axolotl",
        &[("seen", t(1, 13)), ("check_passed", t(1, 14))],
    );

    let (status, _, html) = site.page("/me", Some(&ann)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("Quokka marker") && html.contains("Lifetimes"),
        "{html}"
    );
    assert!(html.contains("id=\"curve-x-marker-quokka\""), "ann's curve");
    // The page's figures (from the stored states) are the API's (from the
    // fold of every delta): recall now and the due date.
    let api = send(
        state,
        Request::get("/api/v1/me/graph")
            .header("cookie", ann.as_str())
            .body(Body::empty())
            .expect("request"),
    )
    .await
    .json();
    let quokka = api["concepts"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["slug"] == "x-marker-quokka"))
        .cloned()
        .expect("in the API's graph");
    let recall = quokka["recall"].as_f64().expect("a recall");
    let due = quokka["due"].as_str().expect("a due date");
    let row = html
        .split("id=\"concept-x-marker-quokka\"")
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap_or_default();
    assert!(row.contains(&format!("{:.0} %", recall * 100.0)), "{row}");
    assert!(row.contains(&due[..10]), "{due}: {row}");

    assert!(
        !html.contains("axolotl") && !html.contains("Axolotl"),
        "ben's marker on ann's page"
    );
    assert!(
        !html.contains("<script") && !html.contains("style="),
        "CSP: no script or inline style"
    );

    // Ben, even naming Ann in the query, sees his own.
    for path in [
        "/me",
        &format!("/me?user={ann_id}"),
        &format!("/me?user_id={ann_id}&done=x"),
    ] {
        let (status, _, html) = site.page(path, Some(&ben)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(html.contains("Axolotl marker"), "{path}");
        assert!(
            !html.contains("quokka") && !html.contains("Quokka"),
            "{path}: ann's marker"
        );
        assert!(!html.contains("Lifetimes"), "{path}: ann's concept");
    }
    // An admin, a viewer and another org's admin: their own (empty) page.
    for (who, cookie) in [
        ("admin", &admin),
        ("viewer", &viewer),
        ("other org's admin", &other_admin),
    ] {
        let (status, _, html) = site.page("/me", Some(cookie)).await;
        assert_eq!(status, StatusCode::OK, "{who}");
        assert!(html.contains("id=\"no-concepts\""), "{who}: {html}");
        for m in ["quokka", "Quokka", "axolotl", "Axolotl", "Lifetimes"] {
            assert!(!html.contains(m), "{who} sees {m}");
        }
    }
    // Signed out: sent to sign in.
    let (status, location, _) = site.page("/me", None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location == "/" || location.contains("/login"), "{location}");
    site.running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn the_privacy_forms_round_trip_are_audited_and_need_the_csrf_token() {
    let mut env = Env::new(&["acme"]);
    let site = Served::start(&mut env).await;
    let state = &site.state;
    let (ann, ann_id) = signed_in(state, "acme", "ann", false);
    push(state, &ann_id, "rust-lifetimes", &[("seen", t(1, 12))]);
    let privacy = || async {
        send(
            state,
            Request::get("/api/v1/me/privacy")
                .header("cookie", ann.as_str())
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .json()
    };

    let (_, _, html) = site.page("/me", Some(&ann)).await;
    assert!(html.contains("You are counted"), "{html}");
    // "At once" is spelled out with this week and the next Monday.
    assert!(
        html.contains("2026-W03") && html.contains("Monday 2026-01-19 00:00 UTC"),
        "{html}"
    );

    // Without the token: refused, nothing changes.
    let (status, _, _) =
        post_form(&site, "/me/opt-out", &ann, &[("opted_out", "yes")], false).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(privacy().await["opted_out"], false);
    let (status, _, body) =
        post_form(&site, "/me/opt-out", &ann, &[("opted_out", "maybe")], true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("opted_out must be yes or no"), "{body}");

    // Opt out, then back in.
    let (status, location, _) =
        post_form(&site, "/me/opt-out", &ann, &[("opted_out", "yes")], true).await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/me?done=opted-out#privacy")
    );
    assert_eq!(privacy().await["opted_out"], true);
    let (_, _, html) = site.page("/me?done=opted-out", Some(&ann)).await;
    assert!(
        html.contains("You are excluded") && html.contains("id=\"opt-in\""),
        "{html}"
    );
    assert!(html.contains("excluded from your organisation’s aggregates from now on"));
    post_form(&site, "/me/opt-out", &ann, &[("opted_out", "no")], true).await;
    assert_eq!(privacy().await["opted_out"], false);
    let (_, _, html) = site.page("/me", Some(&ann)).await;
    assert!(html.contains("You are counted"), "{html}");

    // Delete: the box must be ticked; then the hold shows; then cancel.
    let (status, _, body) = post_form(&site, "/me/deletion", &ann, &[], true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Tick"), "{body}");
    assert!(privacy().await["deletion_due_at"].is_null());
    let (status, location, _) =
        post_form(&site, "/me/deletion", &ann, &[("confirm", "yes")], true).await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/me?done=deletion#privacy")
    );
    assert_eq!(privacy().await["deletion_due_at"], "2026-02-14T12:00:00Z");
    let (_, _, html) = site.page("/me", Some(&ann)).await;
    assert!(
        html.contains("2026-02-14 12:00 UTC") && html.contains("id=\"cancel-deletion\""),
        "{html}"
    );
    let (status, _, _) = post_form(&site, "/me/deletion/cancel", &ann, &[], false).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!privacy().await["deletion_due_at"].is_null());
    post_form(&site, "/me/deletion/cancel", &ann, &[], true).await;
    assert!(privacy().await["deletion_due_at"].is_null());
    let (_, _, html) = site.page("/me", Some(&ann)).await;
    assert!(html.contains("id=\"request-deletion\""), "{html}");

    // Download: the API's document, as an attachment, audited.
    let (status, _, _) = post_form(&site, "/me/export", &ann, &[], false).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let token = csrf_of(state, &ann);
    let res = site
        .http
        .post(format!("{}/me/export", site.base))
        .header("cookie", ann.as_str())
        .header("origin", site.base.as_str())
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .expect("export");
    assert_eq!(res.status(), StatusCode::OK);
    let disposition = res.headers()["content-disposition"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        disposition.starts_with("attachment;") && disposition.contains(".json"),
        "{disposition}"
    );
    let doc: serde_json::Value = res.json().await.expect("json");
    assert_eq!(doc["profile"]["user_name"], "ann");
    assert_eq!(doc["deltas"][0]["concept"], "rust-lifetimes");
    // The same budget as the API: three an hour, then 429 with when to
    // come back (the API call spends it too).
    let api = send(
        state,
        with_csrf(
            state,
            Request::get("/api/v1/me/export")
                .header("cookie", ann.as_str())
                .body(Body::empty())
                .expect("request"),
            &ann,
        ),
    )
    .await;
    assert_eq!(api.status, StatusCode::OK);
    let download = || async {
        site.http
            .post(format!("{}/me/export", site.base))
            .header("cookie", ann.as_str())
            .header("origin", site.base.as_str())
            .form(&[("csrf", token.as_str())])
            .send()
            .await
            .expect("export")
    };
    assert_eq!(download().await.status(), StatusCode::OK);
    let over = download().await;
    assert_eq!(over.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(over.headers().contains_key("retry-after"));

    let seen = actions(state);
    for a in [
        "privacy.opt_out",
        "data.delete_request",
        "data.delete_cancel",
        "data.export",
    ] {
        assert!(seen.iter().any(|s| s == a), "{a} audited: {seen:?}");
    }
    assert_eq!(seen.iter().filter(|s| *s == "privacy.opt_out").count(), 2);
    assert_eq!(
        seen.iter().filter(|s| *s == "data.export").count(),
        3,
        "three made (two downloads, one API call); refused ones are not"
    );
    site.running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn devices_are_renamed_by_form_and_api_only_by_their_owner_with_a_valid_name() {
    let mut env = Env::new(&["acme"]);
    let site = Served::start(&mut env).await;
    let state = &site.state;
    let (ann, ann_id) = signed_in(state, "acme", "ann", false);
    let (ben, _) = signed_in(state, "acme", "ben", false);
    let org = state.store.org("acme").expect("org");
    let now = state.clock.now();
    let (code, _) = aiworklab::devices::create_pairing_code(org, &ann_id, &Context::system(), now)
        .expect("code");
    let (_, grant) = aiworklab::devices::pair(
        &state.store,
        code.expose(),
        "laptop",
        &Context::system(),
        now,
    )
    .expect("pair");
    let id = grant.device_id.clone();
    let patch = |cookie: &str, body: &str| {
        with_csrf(
            state,
            Request::patch(format!("/api/v1/me/devices/{id}"))
                .header("cookie", cookie)
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .expect("request"),
            cookie,
        )
    };
    let name_of = || {
        aiworklab::devices::list(org, &ann_id).expect("list")[0]
            .name
            .clone()
    };

    // The API: renamed, trimmed, audited.
    let a = send(state, patch(&ann, r#"{"name": "  work laptop  "}"#)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert_eq!(a.json()["device"]["name"], "work laptop");
    assert_eq!(name_of(), "work laptop");
    // Bad names and bodies, each with what to fix.
    for (body, says) in [
        (r#"{"name": ""}"#, "1 to 100 printable characters"),
        (r#"{"name": "a\nb"}"#, "1 to 100 printable characters"),
        (
            &format!(r#"{{"name": "{}"}}"#, "x".repeat(101)),
            "1 to 100 printable characters",
        ),
        (
            r#"{"title": "x"}"#,
            "the device's new name: unknown field `title`",
        ),
    ] {
        let a = send(state, patch(&ann, body)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(a.text().contains(says), "{body}: {}", a.text());
    }
    // Without the CSRF header: refused.
    let bare = Request::patch(format!("/api/v1/me/devices/{id}"))
        .header("cookie", ann.as_str())
        .body(Body::from(r#"{"name": "x"}"#))
        .expect("request");
    assert_eq!(send(state, bare).await.status, StatusCode::FORBIDDEN);
    // Another engineer: not found, nothing renamed.
    let a = send(state, patch(&ben, r#"{"name": "stolen"}"#)).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text());
    assert!(a.text().contains("no such device of yours"));
    let (status, _, _) = post_form(
        &site,
        &format!("/me/devices/{id}/rename"),
        &ben,
        &[("name", "stolen")],
        true,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(name_of(), "work laptop");

    // The form.
    let (status, location, _) = post_form(
        &site,
        &format!("/me/devices/{id}/rename"),
        &ann,
        &[("name", "desk <b>pc</b>")],
        true,
    )
    .await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/me?done=renamed#devices")
    );
    let (status, _, body) = post_form(
        &site,
        &format!("/me/devices/{id}/rename"),
        &ann,
        &[("name", " ")],
        true,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("1 to 100 printable characters"), "{body}");
    let (_, _, html) = site.page("/me", Some(&ann)).await;
    assert!(
        html.contains("desk &#60;b&#62;pc&#60;/b&#62;") && !html.contains("<b>pc"),
        "escaped"
    );
    // Revoked from /me.
    let (status, location, _) =
        post_form(&site, &format!("/me/devices/{id}/revoke"), &ann, &[], true).await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/me?done=revoked#devices")
    );
    assert!(
        aiworklab::devices::list(org, &ann_id).expect("list")[0]
            .revoked_at
            .is_some()
    );
    let renames = audit_rows(state, "acme")
        .into_iter()
        .filter(|r| r.action == "device.rename")
        .count();
    assert_eq!(renames, 2, "each rename audited, refused ones not");
    site.running.shutdown().await.expect("shutdown");
}
