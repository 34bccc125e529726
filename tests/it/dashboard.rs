//! The org dashboard and the viewer role over real HTTP: viewers and
//! admins see `/o/<org>/dashboard`, members and other orgs' admins do not
//! (P18); a viewer is refused every admin page and admin API; the role
//! comes from `viewer_groups` at sign-in (through the real test IdP) and
//! goes with the group, or from an admin's grant, each change audited; the
//! page is escaped, script- and style-free (P16); and no engineer's
//! concept below `min_cohort` shows on it (P19).

use aiworklab::catalogue::custom;
use aiworklab::skill::Concept;
use aiworklab::users::{self, AdminCtx};
use reqwest::StatusCode;

use crate::aggregates_page::{Served, push, t, team};
use crate::idp::Site;
use crate::support::{Env, audit_rows, csrf_of, signed_in};

const URL: &str = "/o/acme/dashboard";

/// Thirty engineers who met `rust-lifetimes` in 2026-W02 (twenty-five
/// demonstrated it), so the dashboard has figures whatever the noise.
fn seed(site: &Served) -> Vec<String> {
    let state = &site.state;
    let engineers: Vec<String> = (0..30)
        .map(|i| signed_in(state, "acme", &format!("eng{i}"), false).1)
        .collect();
    for (i, e) in engineers.iter().enumerate() {
        let mut facts = vec![("seen", t(1, 6))];
        if i < 25 {
            facts.push(("demonstrated", t(1, 7)));
        }
        push(state, e, "rust-lifetimes", &facts);
    }
    engineers
}

/// POST a form with the session's CSRF token, from this site's origin.
async fn post_form(
    site: &Served,
    path: &str,
    cookie: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String) {
    let (status, _, body) = site
        .post_form(path, cookie, &csrf_of(&site.state, cookie), fields)
        .await;
    (status, body)
}

#[tokio::test]
async fn viewers_and_admins_see_the_dashboard_members_and_other_orgs_do_not() {
    let mut env = Env::new(&["acme", "other"]);
    let site = Served::start(&mut env).await;
    let state = &site.state;
    let (admin, _) = signed_in(state, "acme", "admin", true);
    let (viewer, viewer_id) = site.viewer("vera");
    let (member, member_id) = signed_in(state, "acme", "member", false);
    let (other_admin, _) = signed_in(state, "other", "boss", true);
    let db = state.store.org("acme").expect("org");
    let engineers = seed(&site);
    team(state, "core", &engineers[5..]);

    for (who, cookie) in [("viewer", &viewer), ("admin", &admin)] {
        let (status, _, html) = site.page(URL, Some(cookie)).await;
        assert_eq!(status, StatusCode::OK, "{who}: {html}");
        for part in [
            "id=\"headline-engineers\"",
            "id=\"headline-recent-concepts\"",
            "id=\"headline-observed\"",
            "id=\"headline-predicted\"",
            "id=\"headline-syncing\"",
            "id=\"trend-chart\"",
            "id=\"coverage-chart\"",
            "id=\"top-chart\"",
            "role=\"img\" aria-labelledby=\"trend-title trend-desc\"",
            "<details class=\"numbers\">",
        ] {
            assert!(html.contains(part), "{who}: no {part} in {html}");
        }
        assert!(!html.contains("<script"), "{who}: script on the page");
        assert!(
            !html.contains(" style="),
            "{who}: inline style breaks the CSP"
        );
        // Rust Lifetimes is the most demonstrated concept, with a noisy
        // count near 25 in the chart's table.
        assert!(html.contains("Lifetimes"), "{html}");
    }
    let (_, _, html) = site.page(URL, Some(&viewer)).await;
    assert!(
        !html.contains("href=\"/o/acme/admin\""),
        "a viewer is not shown the administration"
    );
    // The new team waits a week (its membership is new): said, hatched.
    assert!(
        html.contains("<strong>core</strong>: not shown this week"),
        "{html}"
    );

    // Refused: a member, another org's admin, nobody.
    let (status, _, body) = site.page(URL, Some(&member)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a member saw the dashboard");
    assert!(body.contains("viewers and administrators"), "{body}");
    let (status, location, _) = site.page(URL, Some(&other_admin)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "another org's admin got in");
    assert!(location.starts_with("/o/acme/login"), "{location}");
    let (status, _, _) = site.page("/o/other/dashboard", Some(&viewer)).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "acme's viewer opened other's"
    );
    let (status, location, _) = site.page(URL, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.starts_with("/o/acme/login"), "{location}");

    // A viewer administers nothing: every admin page, form and API is 403.
    for path in [
        "/o/acme/admin",
        "/o/acme/admin/aggregates",
        "/o/acme/admin/test-sign-in",
    ] {
        let (status, _, _) = site.page(path, Some(&viewer)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "a viewer opened {path}");
    }
    for (path, fields) in [
        (
            format!("/o/acme/admin/users/{member_id}/admin"),
            vec![("grant", "1")],
        ),
        (
            format!("/o/acme/admin/users/{member_id}/viewer"),
            vec![("grant", "1")],
        ),
        (
            format!("/o/acme/admin/users/{viewer_id}/admin"),
            vec![("grant", "1")],
        ),
        (
            format!("/o/acme/admin/users/{member_id}/sessions/revoke"),
            vec![],
        ),
        (
            "/o/acme/admin/scim-tokens".to_string(),
            vec![("name", "mine")],
        ),
    ] {
        let (status, body) = post_form(&site, &path, &viewer, &fields).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "a viewer posted {path}: {body}"
        );
    }
    for path in ["/api/v1/org/aggregates", "/api/v1/org/concepts"] {
        let res = site
            .http
            .get(format!("{}{path}", site.base))
            .header("cookie", &viewer)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "a viewer read {path}");
    }
    let member_now = users::get(db, &member_id).expect("member");
    assert!(!member_now.admin_granted && !member_now.viewer_granted);

    // Audited: the grant, and every dashboard read of the releases.
    let rows = audit_rows(state, "acme");
    assert!(
        rows.iter()
            .any(|r| r.action == "viewer.grant" && r.target.as_deref() == Some(viewer_id.as_str())),
        "the grant is audited"
    );
    assert!(
        rows.iter()
            .any(|r| r.action == "aggregates.read" && r.actor == format!("user:{viewer_id}")),
        "the viewer's reads are audited"
    );
    site.running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn an_admin_grants_and_revokes_the_viewer_role_and_each_change_is_audited() {
    let mut env = Env::new(&["acme"]);
    let site = Served::start(&mut env).await;
    let state = &site.state;
    let (admin, admin_id) = signed_in(state, "acme", "admin", true);
    let (member, member_id) = signed_in(state, "acme", "manager", false);
    let grant = format!("/o/acme/admin/users/{member_id}/viewer");

    let (status, _, page) = site.page("/o/acme/admin", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("id=\"make-viewer-manager\""), "{page}");
    let (status, body) = post_form(&site, &grant, &admin, &[("grant", "1")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let (status, _, _) = site.page(URL, Some(&member)).await;
    assert_eq!(status, StatusCode::OK, "the new viewer sees the dashboard");
    let (_, _, page) = site
        .page("/o/acme/admin?done=viewer-granted", Some(&admin))
        .await;
    assert!(page.contains("id=\"revoke-viewer-manager\""), "{page}");
    assert!(page.contains("Viewer role granted"), "{page}");
    let (status, _, _) = site.page("/o/acme/admin", Some(&member)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a viewer is no admin");

    // A forged form (no CSRF token) changes nothing.
    let res = site
        .http
        .post(format!("{}{grant}", site.base))
        .header("cookie", &admin)
        .form(&[("csrf", "forged"), ("grant", "0")])
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(
        users::get(state.store.org("acme").expect("org"), &member_id)
            .expect("user")
            .viewer_granted
    );

    let (status, _) = post_form(&site, &grant, &admin, &[("grant", "0")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, _) = site.page(URL, Some(&member)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "revoked at once");

    let rows = audit_rows(state, "acme");
    for action in ["viewer.grant", "viewer.revoke"] {
        let row = rows
            .iter()
            .find(|r| r.action == action)
            .unwrap_or_else(|| panic!("no {action} row"));
        assert_eq!(row.actor, format!("user:{admin_id}"));
        assert_eq!(row.target.as_deref(), Some(member_id.as_str()));
        assert_eq!(row.details["changed"], true, "{}", row.details);
    }
    site.running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn viewer_groups_give_the_role_at_sign_in_and_it_goes_with_the_group() {
    let site = Site::start(
        &["acme"],
        std::sync::Arc::new(aiworklab::clock::SystemClock),
        |env| env.raw.orgs[0].viewer_groups = vec!["eng".into()],
    )
    .await;
    let mut browser = crate::idp::Browser::new();
    // Bob is in the IdP's group `eng`, named in viewer_groups.
    let landed = browser.sign_in(&site, "acme", "bob", false).await;
    assert_eq!(landed.status, StatusCode::SEE_OTHER, "{}", landed.body);
    let page = browser.get(&format!("{}{URL}", site.base)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let account = browser.get(&format!("{}/account", site.base)).await;
    assert!(
        account.body.contains("id=\"dashboard-link\""),
        "{}",
        account.body
    );
    let db = site.state.store.org("acme").expect("org");
    let bob = users::find(db, "bob").expect("bob");
    let changed = |to: &str| {
        audit_rows(&site.state, "acme").into_iter().any(|r| {
            r.action == "role.change"
                && r.target.as_deref() == Some(bob.id.as_str())
                && r.details["to"] == to
        })
    };
    assert!(changed("viewer"), "the role the sign-in gave is audited");

    // The IdP drops Bob from `eng`: his next sign-in carries no groups,
    // the role goes at once (his open session included) and is audited.
    let (issuer, subject) = bob.identity.clone().expect("linked");
    let identity = users::signin::Identity {
        issuer,
        subject,
        user_name: "bob".into(),
        display_name: "Bob Builder".into(),
        email: Some("bob@acme.test".into()),
        email_verified: true,
        groups: Some(vec![]),
        link_value: None,
    };
    let settings = site.state.settings.org(&db.slug).expect("org settings");
    let ctx = aiworklab::audit::Context::system();
    users::signin::resolve(db, settings, &identity, &ctx, site.state.clock.now())
        .expect("store")
        .expect("signs in");
    let page = browser.get(&format!("{}{URL}", site.base)).await;
    assert_eq!(
        page.status,
        StatusCode::FORBIDDEN,
        "the role outlived its group"
    );
    assert!(changed("member"), "the role's end is audited");
    site.stop().await;
}

/// Engineers whose concepts nobody else met: a viewer or admin must find
/// none of them on the dashboard.
#[tokio::test]
async fn no_engineer_below_min_cohort_shows_on_the_dashboard() {
    let mut env = Env::new(&["acme"]);
    // A larger cohort makes "noise lifted a lone engineer over it"
    // negligible (below 1e-4 per figure), so the test cannot flake.
    env.raw.privacy.min_cohort = 20;
    let site = Served::start(&mut env).await;
    let state = &site.state;
    let (admin, _) = signed_in(state, "acme", "admin", true);
    let (viewer, _viewer_id) = site.viewer("vera");
    // Forty engineers on a common concept, so the page has figures.
    let crowd: Vec<String> = (0..40)
        .map(|i| signed_in(state, "acme", &format!("eng{i}"), false).1)
        .collect();
    for e in &crowd {
        push(
            state,
            e,
            "rust-lifetimes",
            &[("seen", t(1, 6)), ("demonstrated", t(1, 7))],
        );
    }
    let markers = ["x-marker-quokka", "x-marker-axolotl", "x-marker-pangolin"];
    let mut loners = Vec::new();
    for (i, slug) in markers.iter().enumerate() {
        custom::add(
            state.store.org("acme").expect("org"),
            &state.catalogue,
            &AdminCtx::operator(),
            Concept {
                slug: (*slug).into(),
                title: format!("Marker{i} concept"),
                domain: "x-lab".into(),
                summary: "A marker.".into(),
                prerequisites: vec![],
                related: vec![],
                matchers: Default::default(),
            },
            state.clock.now(),
        )
        .expect("custom concept");
        let (_, id) = signed_in(state, "acme", &format!("loner{i}"), false);
        push(
            state,
            &id,
            slug,
            &[
                ("seen", t(1, 6)),
                ("demonstrated", t(1, 7)),
                ("check_passed", t(1, 8)),
            ],
        );
        loners.push(id);
    }
    // A team of the three alone, too small to release.
    team(state, "lonely", &loners);
    for (who, cookie) in [("viewer", &viewer), ("admin", &admin)] {
        let (status, _, html) = site.page(URL, Some(cookie)).await;
        assert_eq!(status, StatusCode::OK, "{who}");
        assert!(html.contains("Lifetimes"), "{who}");
        for (i, slug) in markers.iter().enumerate() {
            assert!(!html.contains(slug), "{who}: {slug} on the dashboard");
            assert!(
                !html.contains(&format!("Marker{i}")),
                "{who}: a lone engineer's concept on the dashboard"
            );
        }
        assert!(
            html.contains("<strong>lonely</strong>: not shown this week"),
            "{who}: {html}"
        );
    }
    site.running.shutdown().await.expect("shutdown");
}

/// The operator's `aiworklab user grant-viewer` / `revoke-viewer`, as the
/// binary runs them: the role shows in `user list` and each change is
/// audited with the operator as actor.
#[test]
fn the_operator_grants_and_revokes_the_viewer_role_from_the_cli() {
    let env = Env::new(&["acme"]);
    {
        let store = env.store();
        let org = store.org("acme").expect("org");
        users::add(
            org,
            &AdminCtx::operator(),
            "mia",
            "Mia",
            None,
            false,
            chrono::Utc::now(),
        )
        .expect("user");
    }
    std::fs::write(
        env.dir.path().join("aiworklab.toml"),
        format!(
            "[storage]\ndata_dir = \"{}\"\n\n[[orgs]]\nslug = \"acme\"\nname = \"Org acme\"\n",
            env.data_dir().display()
        ),
    )
    .expect("config");
    let cli = |args: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_aiworklab"));
        for (k, _) in std::env::vars() {
            if k.starts_with("AIWORKLAB_") {
                c.env_remove(k);
            }
        }
        let out = c
            .current_dir(env.dir.path())
            .args(["--config", "aiworklab.toml"])
            .args(args)
            .output()
            .expect("the binary runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let role_of_mia = |listing: &str| {
        listing
            .lines()
            .find(|l| l.contains(" mia "))
            .map(|l| l.split_whitespace().nth(3).unwrap_or_default().to_string())
            .unwrap_or_else(|| panic!("no mia in {listing}"))
    };
    assert!(cli(&["user", "grant-viewer", "--org", "acme", "mia"]).contains("mia is now a viewer"));
    assert_eq!(
        role_of_mia(&cli(&["user", "list", "--org", "acme"])),
        "viewer"
    );
    cli(&["user", "revoke-viewer", "--org", "acme", "mia"]);
    assert_eq!(
        role_of_mia(&cli(&["user", "list", "--org", "acme"])),
        "member"
    );
    let store = env.store();
    let rows = store
        .org("acme")
        .expect("org")
        .db
        .read(|c| {
            aiworklab::store::audit::recent(c, 50).map_err(aiworklab::store::StoreError::from)
        })
        .expect("audit");
    for action in ["viewer.grant", "viewer.revoke"] {
        assert!(
            rows.iter()
                .any(|r| r.action == action && r.actor.starts_with("operator:")),
            "no {action} by the operator"
        );
    }
}
