//! The engineer's own page `/me` in headless Chromium, signed in through
//! the real test IdP as a member: reached from the account page, it shows
//! her graph, curves and weeks and never another engineer's marker
//! concept; axe-core finds no violation in light and dark colour schemes
//! nor after each action; nothing scrolls sideways at 390 px; every
//! control is reached by keyboard; a device is renamed by its form; the
//! privacy controls round-trip (opt out, and she leaves the counted
//! engineers at once; back in; delete, the 30-day hold shows; cancel).
//! An admin's `/me` is their own, empty one. The screenshots in
//! `docs/img/me*.png` are taken here.

use std::sync::Arc;

use aiworklab::audit::Context;
use aiworklab::catalogue::custom;
use aiworklab::clock::SystemClock;
use aiworklab::skill::{Concept, Transition};
use aiworklab::users::{self, AdminCtx};
use chrono::Duration;
use serde_json::json;

use crate::browser::{Browser, DESKTOP, PHONE, focused, inspect};
use crate::browser_dashboard::{axe, color_scheme, delta, docs_img, signed_in};
use crate::idp::Site;

/// Whether `user_id` is among the engineers org figures count now.
fn counted(site: &Site, user_id: &str) -> bool {
    site.state
        .store
        .org("acme")
        .expect("org")
        .db
        .read(|c| {
            c.query_row(
                "SELECT count(*) FROM counted_users WHERE id = ?1",
                [user_id],
                |r| r.get::<_, i64>(0),
            )
            .map_err(aiworklab::store::StoreError::from)
        })
        .expect("counted")
        == 1
}

/// The page's whole HTML as the browser has it.
async fn html(b: &Browser) -> String {
    b.execute("return document.documentElement.outerHTML")
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn me_in_chromium_is_hers_alone_accessible_fits_a_phone_and_its_controls_round_trip() {
    let site = Site::start(&["acme"], Arc::new(SystemClock), |_| {}).await;
    let allowed = [site.base.as_str(), site.idp.issuer.as_str()];
    let state = &site.state;
    let org = state.store.org("acme").expect("org");
    let now = state.clock.now();
    let day = |d: i64| now - Duration::days(d);
    // Dave, another engineer, with a concept only he has met.
    custom::add(
        org,
        &state.catalogue,
        &AdminCtx::operator(),
        Concept {
            slug: "x-marker-narwhal".into(),
            title: "Narwhal marker".into(),
            domain: "x-lab".into(),
            summary: "A marker.".into(),
            prerequisites: vec![],
            related: vec![],
            matchers: Default::default(),
        },
        now,
    )
    .expect("custom concept");
    let dave = users::add(org, &AdminCtx::operator(), "dave", "", None, false, now).expect("dave");
    aiworklab::sync::push(
        org,
        &dave.id,
        None,
        &[
            delta("x-marker-narwhal", Transition::Seen, day(9)),
            delta("x-marker-narwhal", Transition::CheckPassed, day(8)),
        ],
        now,
    )
    .expect("push");

    // Carol, a member, signs in; then her kernel's facts and device.
    let (driver, b) = signed_in(&site, "acme", "carol").await;
    let carol = users::find(org, "carol").expect("carol");
    aiworklab::sync::push(
        org,
        &carol.id,
        None,
        &[
            delta("rust-lifetimes", Transition::Seen, day(60)),
            delta("rust-lifetimes", Transition::Demonstrated, day(58)),
            delta("rust-lifetimes", Transition::CheckPassed, day(40)),
            delta("rust-lifetimes", Transition::CheckPassed, day(3)),
            delta("go-goroutines", Transition::Seen, day(50)),
            delta("go-goroutines", Transition::CheckPassed, day(45)),
            delta("sql-joins", Transition::Seen, day(10)),
            delta("sql-joins", Transition::Explained, day(2)),
        ],
        now,
    )
    .expect("push");
    let (code, _) =
        aiworklab::devices::create_pairing_code(org, &carol.id, &Context::system(), now)
            .expect("code");
    let (_, grant) = aiworklab::devices::pair(
        &state.store,
        code.expose(),
        "laptop",
        &Context::system(),
        now,
    )
    .expect("pair");
    let device = grant.device_id;

    let me = format!("{}/me", site.base);
    b.click("#me-link").await;
    b.wait_for_url("/me", |u| u == me).await;
    assert!(b.text("h1").await.contains("My skills"));
    for id in [
        "#concept-rust-lifetimes",
        "#concept-sql-joins",
        "#curve-rust-lifetimes",
        "#curve-go-goroutines",
        "#history-chart",
        "#states-chart",
    ] {
        assert!(b.try_find(id).await.is_some(), "{id} on /me");
    }
    assert!(
        b.try_find("#curve-sql-joins").await.is_none(),
        "no check, no curve"
    );
    let page = html(&b).await;
    assert!(
        !page.contains("narwhal") && !page.contains("Narwhal"),
        "dave's marker on carol's /me"
    );
    axe(&b, "/me (light)").await;
    inspect(&b, "me-desktop", &allowed).await;
    b.screenshot(&docs_img("me.png")).await;

    // Every control is reached by keyboard, in order.
    let mut order = Vec::new();
    for _ in 0..80 {
        b.press_tab().await;
        let f = focused(&b).await;
        let done = f == "button#opt-out";
        order.push(f);
        if done {
            break;
        }
    }
    for want in [
        "summary",
        &format!("input#name-{device}"),
        "button#export",
        "button#opt-out",
    ] {
        assert!(
            order.iter().any(|f| f.starts_with(want)),
            "Tab never reached {want}: {order:?}"
        );
    }

    // Rename the device by its form.
    b.fill(&format!("#name-{device}"), "carol’s desk").await;
    b.click(&format!("#device-{device} .rename button")).await;
    b.wait_for_url("renamed", |u| u.contains("done=renamed"))
        .await;
    assert_eq!(
        b.text(&format!("#device-{device} .device-name")).await,
        "carol’s desk"
    );
    assert_eq!(b.text("#notice").await, "Device renamed.");

    // Opt out: out of the counted engineers at once; then back in.
    assert!(counted(&site, &carol.id));
    b.click("#opt-out").await;
    b.wait_for_url("opted out", |u| u.contains("done=opted-out"))
        .await;
    assert!(b.text("#opt-state").await.contains("You are excluded"));
    assert!(!counted(&site, &carol.id), "opting out applies at once");
    axe(&b, "/me (opted out)").await;
    b.click("#opt-in").await;
    b.wait_for_url("opted in", |u| u.contains("done=opted-in"))
        .await;
    assert!(b.text("#opt-state").await.contains("You are counted"));
    assert!(counted(&site, &carol.id));

    // Delete: the box first, then the hold with its date; then cancel.
    b.click("#request-deletion").await;
    assert!(
        !b.execute("return location.href")
            .await
            .as_str()
            .unwrap_or_default()
            .contains("done=deletion"),
        "the unticked box stops the form"
    );
    b.click("#confirm-deletion").await;
    b.click("#request-deletion").await;
    b.wait_for_url("deletion requested", |u| u.contains("done=deletion"))
        .await;
    let due = (state.clock.now() + Duration::days(30))
        .format("%Y-%m-%d")
        .to_string();
    let held = b.text("#deletion-state").await;
    assert!(held.contains(&due), "{held}");
    assert!(
        !counted(&site, &carol.id),
        "a pending deletion leaves the figures at once"
    );
    axe(&b, "/me (deletion pending)").await;
    b.click("#cancel-deletion").await;
    b.wait_for_url("deletion cancelled", |u| u.contains("done=cancelled"))
        .await;
    assert!(b.try_find("#request-deletion").await.is_some());
    assert!(counted(&site, &carol.id));

    // A phone, light then dark.
    b.set_window_size(PHONE).await;
    b.goto(&me).await;
    inspect(&b, "me-phone", &allowed).await;
    b.screenshot(&docs_img("me-phone.png")).await;
    color_scheme(&b, "dark").await;
    let bg = b
        .execute("return getComputedStyle(document.documentElement).backgroundColor")
        .await;
    assert_eq!(bg, json!("rgb(17, 20, 24)"), "the dark scheme applies");
    axe(&b, "/me (dark, phone)").await;
    inspect(&b, "me-phone-dark", &allowed).await;
    b.set_window_size(DESKTOP).await;
    b.screenshot(&docs_img("me-dark.png")).await;
    b.close().await;
    drop(driver);

    // Alice, an admin: her own /me, nothing of carol's or dave's.
    let (driver, b) = signed_in(&site, "acme", "alice").await;
    b.goto(&me).await;
    assert!(b.try_find("#no-concepts").await.is_some());
    let page = html(&b).await;
    for m in [
        "Lifetimes",
        "Goroutines",
        "narwhal",
        "Narwhal",
        "carol’s desk",
    ] {
        assert!(!page.contains(m), "the admin's /me shows {m}");
    }
    axe(&b, "/me (admin, empty)").await;
    b.close().await;
    drop(driver);
    site.stop().await;
}
