//! The admin pages in headless Chromium, signed in through the real test
//! IdP: an admin searches the members, opens one member's page, filters
//! the audit log (a bad date is named), exports it (audited) and reads the
//! backups status; axe-core finds no violation on any of them in light and
//! dark colour schemes; none scrolls sideways at 390 px; the search works
//! by keyboard; a viewer is refused with the reason and another org's
//! admin is sent to sign in; the screenshots in `docs/img/` are taken here.

use std::sync::Arc;

use aiworklab::clock::SystemClock;
use aiworklab::users::{self, AdminCtx};

use crate::browser::{DESKTOP, PHONE, focused, inspect};
use crate::browser_dashboard::{axe, color_scheme, docs_img, signed_in};
use crate::idp::Site;
use crate::support::audit_rows;

#[tokio::test]
async fn the_admin_pages_in_chromium_are_for_admins_accessible_and_fit_a_phone() {
    let site = Site::start(&["acme", "other"], Arc::new(SystemClock), |env| {
        env.raw.orgs[0].viewer_groups = vec!["eng".into()];
    })
    .await;
    let allowed = [site.base.as_str(), site.idp.issuer.as_str()];
    let db = site.state.store.org("acme").expect("org");
    let now = site.state.clock.now();
    for i in 0..60 {
        users::add(
            db,
            &AdminCtx::operator(),
            &format!("person.{i:03}"),
            &format!("Person {i}"),
            Some(&format!("p{i}@acme.example")),
            false,
            now,
        )
        .expect("member");
    }
    let base = &site.base;

    // Alice, an admin.
    let (driver, b) = signed_in(&site, "acme", "alice").await;
    let alice = users::find(db, "alice").expect("alice");
    b.goto(&format!("{base}/o/acme/admin")).await;
    b.click("#members-link").await;
    let members = format!("{base}/o/acme/admin/members");
    b.wait_for_url("the members page", |u| u == members).await;
    assert_eq!(b.text("h1").await, "Members of Org acme");
    axe(&b, "the members page (light)").await;
    inspect(&b, "admin-members-desktop", &allowed).await;
    b.screenshot(&docs_img("admin-members.png")).await;
    // The search by keyboard: Tab from the skip link reaches the field.
    b.goto(&members).await;
    let mut reached = false;
    for _ in 0..20 {
        b.press_tab().await;
        if focused(&b).await.starts_with("input#m-q") {
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab never reached the search field");
    b.fill("#m-q", "p42@acme").await;
    b.click("#apply-search").await;
    b.wait_for_url("the search", |u| u.contains("q=p42")).await;
    let table = b.text("#members-table tbody").await;
    assert!(
        table.contains("person.042") && !table.contains("person.041"),
        "{table}"
    );
    b.set_window_size(PHONE).await;
    b.goto(&members).await;
    inspect(&b, "admin-members-phone", &allowed).await;
    b.screenshot(&docs_img("admin-members-phone.png")).await;
    color_scheme(&b, "dark").await;
    axe(&b, "the members page (dark, phone)").await;
    b.set_window_size(DESKTOP).await;
    b.screenshot(&docs_img("admin-members-dark.png")).await;
    color_scheme(&b, "light").await;

    // A member's page: Alice's own, with her session.
    b.goto(&format!("{base}/o/acme/admin/members/{}", alice.id))
        .await;
    assert!(b.try_find("#member-sessions form button").await.is_some());
    axe(&b, "a member's page").await;
    b.screenshot(&docs_img("admin-member.png")).await;
    b.set_window_size(PHONE).await;
    inspect(&b, "admin-member-phone", &allowed).await;
    b.set_window_size(DESKTOP).await;

    // The audit log: a bad date is named; then an export, audited.
    let audit = format!("{base}/o/acme/admin/audit");
    b.goto(&audit).await;
    b.fill("#f-from", "2026-13-01").await;
    b.click("#apply-filter").await;
    b.wait_for_url("the filtered log", |u| u.contains("from=2026-13-01"))
        .await;
    let error = b.text("#filter-error").await;
    assert!(
        error.contains("from:") && error.contains("YYYY-MM-DD"),
        "{error}"
    );
    axe(&b, "the audit log with a bad date").await;
    b.goto(&format!("{audit}?action=session")).await;
    assert!(b.text("#audit-table").await.contains("session.create"));
    axe(&b, "the audit log (light)").await;
    inspect(&b, "admin-audit-desktop", &allowed).await;
    b.screenshot(&docs_img("admin-audit.png")).await;
    b.click("#export-csv").await;
    let mut audited = false;
    for _ in 0..50 {
        audited = audit_rows(&site.state, "acme").iter().any(|r| {
            r.action == "audit.export"
                && r.actor == format!("user:{}", alice.id)
                && r.details["format"] == "csv"
                && r.details["filters"]["action"] == "session"
        });
        if audited {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(audited, "the export from the browser is audited");
    b.set_window_size(PHONE).await;
    b.goto(&audit).await;
    inspect(&b, "admin-audit-phone", &allowed).await;
    b.screenshot(&docs_img("admin-audit-phone.png")).await;
    color_scheme(&b, "dark").await;
    axe(&b, "the audit log (dark, phone)").await;
    b.set_window_size(DESKTOP).await;
    b.screenshot(&docs_img("admin-audit-dark.png")).await;
    color_scheme(&b, "light").await;

    // Backups.
    b.goto(&format!("{base}/o/acme/admin/backups")).await;
    assert!(b.text("#last-drill").await.contains("none recorded"));
    axe(&b, "the backups page").await;
    b.screenshot(&docs_img("admin-backups.png")).await;
    b.set_window_size(PHONE).await;
    inspect(&b, "admin-backups-phone", &allowed).await;
    b.set_window_size(DESKTOP).await;

    // The org's own concepts: one added by form.
    b.goto(&format!("{base}/o/acme/admin/concepts")).await;
    b.fill("#c-slug", "x-ledger").await;
    b.fill("#c-title", "Ledgers").await;
    b.fill("#c-domain", "x-billing").await;
    b.fill("#c-summary", "Debits and credits that balance.")
        .await;
    b.fill("#c-keywords", "ledger, journal entry").await;
    b.click("#create-concept").await;
    if let Some(e) = b.try_find("#concept-error").await {
        panic!(
            "the concept was refused: {}",
            e.text().await.unwrap_or_default()
        );
    }
    b.wait_for_url("the concepts page", |u| u.contains("done=created"))
        .await;
    assert!(b.try_find("#concept-x-ledger").await.is_some());
    axe(&b, "the concepts page").await;
    b.screenshot(&docs_img("admin-concepts.png")).await;
    b.set_window_size(PHONE).await;
    inspect(&b, "admin-concepts-phone", &allowed).await;
    b.goto(&format!("{base}/o/acme/admin/concepts/x-ledger"))
        .await;
    inspect(&b, "admin-concept-phone", &allowed).await;
    color_scheme(&b, "dark").await;
    axe(&b, "a concept's page (dark, phone)").await;
    color_scheme(&b, "light").await;
    b.set_window_size(DESKTOP).await;

    // The effective settings, read-only.
    b.goto(&format!("{base}/o/acme/admin/settings")).await;
    let toml = b.text("#effective-settings pre").await;
    assert!(
        toml.contains("<redacted>") && toml.contains("slug = \"acme\""),
        "{toml}"
    );
    assert!(!toml.contains("slug = \"other\""), "{toml}");
    axe(&b, "the settings page").await;
    b.screenshot(&docs_img("admin-settings.png")).await;
    b.set_window_size(PHONE).await;
    inspect(&b, "admin-settings-phone", &allowed).await;
    color_scheme(&b, "dark").await;
    axe(&b, "the settings page (dark, phone)").await;
    b.close().await;
    drop(driver);

    // Bob, a viewer (group `eng`): refused with the reason, accessibly.
    let (driver, b) = signed_in(&site, "acme", "bob").await;
    for path in ["members", "audit", "backups", "settings", "concepts"] {
        b.goto(&format!("{base}/o/acme/admin/{path}")).await;
        let body = b.body_text().await;
        assert!(body.contains("for administrators"), "{path}: {body}");
    }
    axe(&b, "the refusal of an admin page").await;
    b.close().await;
    drop(driver);

    // Mallory, the other org's admin: sent to sign in to acme.
    let (driver, b) = signed_in(&site, "other", "mallory").await;
    b.goto(&format!("{base}/o/acme/admin/audit")).await;
    b.wait_for_url("acme's sign-in", |u| u.contains("/o/acme/login"))
        .await;
    assert!(b.try_find("#audit-table").await.is_none());
    b.close().await;
    drop(driver);
    site.stop().await;
}

/// The members directory answers in Chromium with 100,000 members: a
/// search typed into the page finds the one person among them, a filter
/// pages through the deactivated, and the next page follows. (The
/// directory's figures at this size: docs/benchmarks.md.)
#[tokio::test]
async fn the_members_search_answers_in_chromium_at_100000() {
    let site = Site::start(&["acme"], Arc::new(SystemClock), |_| {}).await;
    crate::admin_pages::seed_members(&site.state);
    let (driver, b) = signed_in(&site, "acme", "alice").await;
    let members = format!("{}/o/acme/admin/members", site.base);
    b.goto(&members).await;
    assert_eq!(b.text("h1").await, "Members of Org acme");
    assert!(
        b.try_find("#next-page").await.is_some(),
        "100,000 are paged"
    );
    b.fill("#m-q", "person.099998").await;
    b.click("#apply-search").await;
    b.wait_for_url("the search", |u| u.contains("q=person.099998"))
        .await;
    let table = b.text("#members-table tbody").await;
    assert!(table.contains("person.099998"), "{table}");
    assert_eq!(table.matches("person.").count(), 1, "{table}");
    b.goto(&format!("{members}?status=deactivated")).await;
    let first = b.text("#members-table tbody").await;
    assert!(first.contains("person.000000"), "{first}");
    b.click("#next-page").await;
    b.wait_for_url("the next page", |u| u.contains("after="))
        .await;
    let next = b.text("#members-table tbody").await;
    assert!(
        !next.contains("person.000000") && next.contains("person."),
        "{next}"
    );
    b.close().await;
    drop(driver);
    site.stop().await;
}
