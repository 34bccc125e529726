//! The admin pages of issue 18 over real HTTP: the audit log (filters,
//! keyset pages, a bad date named with the form expected, CSV and JSON
//! Lines export that is itself audited and safe to open in a spreadsheet,
//! P20); the members directory searched, filtered and paged at 100,000
//! members; a member's page with sessions and devices to end and revoke
//! (recent sign-in, CSRF, audited: P10, P16) and none of their skill data
//! (P19); every page for admins only (P18).

use aiworklab::audit::Context;
use aiworklab::catalogue::custom;
use aiworklab::skill::Concept;
use aiworklab::store::StoreError;
use aiworklab::users::AdminCtx;
use aiworklab::users::directory::{self, Query, RawQuery};
use reqwest::StatusCode;

use crate::aggregates_page::{Served, push, t, team};
use crate::support::{Env, audit_rows, csrf_of, signed_in};

/// POSTs a form with the session's own CSRF token: status, headers, body.
async fn post(
    site: &Served,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    fields: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let token = csrf.map_or_else(|| csrf_of(&site.state, cookie), str::to_string);
    let mut form: Vec<(&str, &str)> = vec![("csrf", &token)];
    form.extend_from_slice(fields);
    let res = site
        .http
        .post(format!("{}{path}", site.base))
        .header("cookie", cookie)
        .header("origin", site.base.as_str())
        .form(&form)
        .send()
        .await
        .expect("request");
    let status = res.status();
    let headers = res.headers().clone();
    (status, headers, res.text().await.expect("body"))
}

/// The admin pages refuse a viewer and a member (403, with the reason)
/// and send another org's admin to sign in.
async fn only_admins(site: &Served, path: &str, viewer: &str, member: &str, other_admin: &str) {
    for (who, cookie) in [("viewer", viewer), ("member", member)] {
        let (status, _, body) = site.page(path, Some(cookie)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "a {who} opened {path}");
        assert!(body.contains("for administrators"), "{who} {path}: {body}");
    }
    let (status, location, _) = site.page(path, Some(other_admin)).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "another org's admin opened {path}"
    );
    assert!(location.starts_with("/o/acme/login"), "{location}");
    let (status, location, _) = site.page(path, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(location.starts_with("/o/acme/login"), "{location}");
}

#[tokio::test]
async fn the_audit_log_filters_pages_and_exports_and_each_export_is_audited() {
    let mut env = Env::new(&["acme", "other"]);
    let site = Served::start(&mut env).await;
    let state = &site.state;
    let (admin, admin_id) = signed_in(state, "acme", "admin", true);
    let (viewer, _) = site.viewer("vera");
    let (member, member_id) = signed_in(state, "acme", "member", false);
    let (other_admin, _) = signed_in(state, "other", "boss", true);
    let db = state.store.org("acme").expect("org");
    // 120 rows of one action over five days of January, and one whose
    // actor, target and details would run as formulas in a spreadsheet.
    db.db
        .write(|tx| {
            let sys = Context::system();
            for i in 0..120u32 {
                let at = t(1, 5 + i / 30) + chrono::Duration::minutes(i64::from(i));
                sys.record(
                    tx,
                    "test.ping",
                    Some(&format!("thing-{i}")),
                    &serde_json::json!({ "i": i }),
                    at,
                )?;
            }
            let evil = Context {
                actor: "+cmd|' /C calc'!A0".into(),
                ..Context::default()
            };
            evil.record(
                tx,
                "test.evil",
                Some("=HYPERLINK(\"http://evil.test\",\"x\")"),
                &serde_json::json!({ "note": "a, \"quoted\"\nline" }),
                t(1, 9),
            )?;
            Ok::<_, StoreError>(())
        })
        .expect("seed");
    // The admin does something, so the actor filter has a user to find.
    let (status, _, _) = post(
        &site,
        &format!("/o/acme/admin/users/{member_id}/viewer"),
        &admin,
        None,
        &[("grant", "1")],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    // Newest first, 50 a page, the next page by keyset without overlap.
    let (status, _, html) = site
        .page("/o/acme/admin/audit?action=test.ping", Some(&admin))
        .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        !html.contains("<script") && !html.contains(" style="),
        "CSP"
    );
    let ids = |html: &str| -> Vec<i64> {
        html.match_indices("<tr id=\"audit-")
            .map(|(at, _)| {
                let rest = &html[at + 14..];
                rest[..rest.find('"').expect("end")].parse().expect("id")
            })
            .collect()
    };
    let first = ids(&html);
    assert_eq!(first.len(), 50, "{html}");
    assert!(
        first.windows(2).all(|w| w[0] > w[1]),
        "newest first: {first:?}"
    );
    assert!(html.contains("thing-119"), "the newest row comes first");
    let next = html
        .split("id=\"next-page\"")
        .next()
        .and_then(|s| s.rsplit("href=\"").next())
        .map(|s| {
            s[..s.find('"').expect("href end")]
                .replace("&#38;", "&")
                .replace("&amp;", "&")
        })
        .expect("a next page link");
    assert!(next.contains("before="), "{next}");
    let (_, _, html2) = site.page(&next, Some(&admin)).await;
    let second = ids(&html2);
    assert_eq!(second.len(), 50);
    assert!(second[0] < first[49], "the second page is older");
    assert!(
        html2.contains("action=test.ping"),
        "the filter stays on the page links"
    );

    // The time range keeps whole days; the actor filter takes a user name.
    let (_, _, html) = site
        .page(
            "/o/acme/admin/audit?action=test&from=2026-01-06&to=2026-01-06",
            Some(&admin),
        )
        .await;
    assert_eq!(ids(&html).len(), 30, "one day of 30 rows: {html}");
    let (_, _, html) = site
        .page("/o/acme/admin/audit?actor=admin", Some(&admin))
        .await;
    assert!(html.contains("<code>viewer.grant</code>"), "{html}");
    assert!(!html.contains("test.ping"), "{html}");
    assert!(html.contains(&format!("user:{admin_id}")), "{html}");

    // A bad date names the field and the form it should take.
    for (query, field) in [
        ("from=2026-13-01", "from: &#34;2026-13-01&#34;"),
        ("to=soon", "to: &#34;soon&#34;"),
    ] {
        let (status, _, html) = site
            .page(&format!("/o/acme/admin/audit?{query}"), Some(&admin))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(
            html.contains(field) && html.contains("YYYY-MM-DD"),
            "{query}: {html}"
        );
    }

    // CSV: an attachment, every cell quoted, formulas defused.
    let (status, headers, csv) = post(
        &site,
        "/o/acme/admin/audit/export",
        &admin,
        None,
        &[("format", "csv"), ("action", "test")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    let header = |h: &reqwest::header::HeaderMap, n: &str| {
        h.get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert!(header(&headers, "content-type").starts_with("text/csv"));
    let disposition = header(&headers, "content-disposition");
    assert!(
        disposition.starts_with("attachment; filename=\"aiworklab-acme-audit-")
            && disposition.ends_with(".csv\""),
        "{disposition}"
    );
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert!(csv.starts_with("id,at,actor,action,target,ip,user_agent,request_id,details\r\n"));
    assert_eq!(csv.matches("\"test.ping\"").count(), 120);
    assert!(
        csv.contains("\"'+cmd|' /C calc'!A0\""),
        "actor defused: {csv}"
    );
    assert!(
        csv.contains("\"'=HYPERLINK(\"\"http://evil.test\"\",\"\"x\"\")\""),
        "target defused and quoted"
    );
    assert!(!csv.contains(",\"=") && !csv.contains(",=") && !csv.contains(",\"+"));
    // JSON Lines: one object per row, the same rows.
    let (status, headers, jsonl) = post(
        &site,
        "/o/acme/admin/audit/export",
        &admin,
        None,
        &[
            ("format", "jsonl"),
            ("action", "test.ping"),
            ("from", "2026-01-06"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{jsonl}");
    assert!(header(&headers, "content-disposition").ends_with(".jsonl\""));
    let lines: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 90, "from the 6th on");
    assert!(lines.iter().all(|l| l["action"] == "test.ping"));
    assert_eq!(lines[0]["target"], "thing-119");

    // Each export is audited with its filters and format.
    let exports: Vec<_> = audit_rows(state, "acme")
        .into_iter()
        .filter(|r| r.action == "audit.export")
        .collect();
    assert_eq!(exports.len(), 2);
    assert_eq!(exports[0].actor, format!("user:{admin_id}"));
    assert_eq!(exports[0].details["format"], "jsonl");
    assert_eq!(exports[0].details["filters"]["from"], "2026-01-06");
    assert_eq!(exports[0].details["rows"], 90);
    assert_eq!(exports[1].details["format"], "csv");
    assert_eq!(exports[1].details["filters"]["action"], "test");

    // Refused: a forged token, a bad format, a viewer; nothing exported.
    let (status, _, _) = post(
        &site,
        "/o/acme/admin/audit/export",
        &admin,
        Some("forged"),
        &[("format", "csv")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, body) = post(
        &site,
        "/o/acme/admin/audit/export",
        &admin,
        None,
        &[("format", "xlsx")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("csv or jsonl"), "{body}");
    let (status, _, _) = post(
        &site,
        "/o/acme/admin/audit/export",
        &viewer,
        None,
        &[("format", "csv")],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let n = audit_rows(state, "acme")
        .iter()
        .filter(|r| r.action == "audit.export")
        .count();
    assert_eq!(n, 2, "no refused export is made");
    only_admins(&site, "/o/acme/admin/audit", &viewer, &member, &other_admin).await;
    site.running.shutdown().await.expect("shutdown");
}

/// 100,000 members written straight into the org database in one
/// transaction (the triggers fill the search index as SCIM would).
pub(crate) fn seed_members(state: &aiworklab::AppState) -> Vec<String> {
    let db = state.store.org("acme").expect("org");
    db.db
        .write(|tx| {
            let mut ins = tx.prepare(
                "INSERT INTO users (id, user_name, display_name, emails, active, admin_granted,
                     provisioned_by, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'scim', 0, 0)",
            )?;
            for i in 0..100_000u32 {
                let emails = format!("[{{\"value\":\"p{i}@acme.example\",\"primary\":true}}]");
                ins.execute(rusqlite::params![
                    format!("id-{i:06}"),
                    format!("person.{i:06}"),
                    format!("Person {i}"),
                    emails,
                    i % 1000 != 0,
                    matches!(i, 7 | 50_007 | 99_999),
                ])?;
            }
            tx.execute_batch(
                "INSERT INTO role_grants (user_id, role, granted_at)
                 VALUES ('id-000011', 'viewer', 0), ('id-070000', 'viewer', 0)",
            )?;
            Ok::<_, StoreError>(())
        })
        .expect("seed");
    (0..120).map(|i| format!("id-{:06}", i * 800 + 3)).collect()
}

fn names(page: &directory::Page) -> Vec<&str> {
    page.members.iter().map(|u| u.user_name.as_str()).collect()
}

#[tokio::test]
async fn members_are_searched_filtered_and_paged_at_100000() {
    let mut env = Env::new(&["acme"]);
    let site = Served::start(&mut env).await;
    let state = &site.state;
    let (admin, _) = signed_in(state, "acme", "zz-admin", true);
    let core = seed_members(state);
    team(state, "core", &core);
    let db = state.store.org("acme").expect("org");
    let org = state.settings.orgs[0].clone();
    let find = |raw: RawQuery| {
        directory::search(db, &org, &Query::parse(&raw).expect("valid")).expect("search")
    };
    let q = |s: &str| RawQuery {
        q: s.into(),
        ..RawQuery::default()
    };

    // Paging in user-name order, by keyset, without overlap or gap.
    let mut raw = RawQuery::default();
    let mut seen = vec![];
    for _ in 0..3 {
        let page = find(raw.clone());
        assert_eq!(page.members.len(), 50);
        seen.extend(names(&page).into_iter().map(str::to_string));
        raw.after = page.next.clone().expect("a next page");
    }
    let expected: Vec<String> = (0..150).map(|i| format!("person.{i:06}")).collect();
    assert_eq!(seen, expected);
    // The last page ends the listing.
    let last = find(RawQuery {
        after: "person.099960".into(),
        ..RawQuery::default()
    });
    assert_eq!(names(&last).len(), 40, "39 people and zz-admin");
    assert_eq!(last.next, None);

    // Search: any part of the user name, display name or email.
    let hit = find(q("person.04217"));
    assert_eq!(
        names(&hit),
        (0..10)
            .map(|i| format!("person.04217{i}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        names(&find(q("P99998@ACME"))),
        ["person.099998"],
        "email, any case"
    );
    assert_eq!(
        names(&find(q("person 1234"))).len(),
        11,
        "display names 1234 and 12340-12349"
    );
    assert_eq!(names(&find(q("nobody-here"))).len(), 0);
    // One or two characters: the start of a name.
    assert_eq!(names(&find(q("zz"))), ["zz-admin"]);
    // Filters, alone and together.
    let admins = find(RawQuery {
        role: "admin".into(),
        ..RawQuery::default()
    });
    assert_eq!(
        names(&admins),
        [
            "person.000007",
            "person.050007",
            "person.099999",
            "zz-admin"
        ]
    );
    let viewers = find(RawQuery {
        role: "viewer".into(),
        ..RawQuery::default()
    });
    assert_eq!(names(&viewers), ["person.000011", "person.070000"]);
    let off = find(RawQuery {
        status: "deactivated".into(),
        ..RawQuery::default()
    });
    assert_eq!(off.members.len(), 50);
    assert!(off.members.iter().all(|u| !u.active));
    let off2 = find(RawQuery {
        status: "deactivated".into(),
        after: off.next.clone().expect("more"),
        ..RawQuery::default()
    });
    assert_eq!(off2.members.len(), 50, "100 deactivated in all");
    assert_eq!(off2.next, None);
    let in_core = find(RawQuery {
        group: "CORE".into(),
        ..RawQuery::default()
    });
    assert_eq!(in_core.members.len(), 50);
    assert!(in_core.members.iter().all(|u| u.groups == ["core"]));
    let both = find(RawQuery {
        q: "person.0000".into(),
        status: "deactivated".into(),
        ..RawQuery::default()
    });
    assert_eq!(names(&both), ["person.000000"]);
    let members_in_core = find(RawQuery {
        role: "member".into(),
        group: "core".into(),
        q: "person.00".into(),
        ..RawQuery::default()
    });
    assert_eq!(
        names(&members_in_core).len(),
        13,
        "core members below person.010000"
    );
    let e = directory::search(
        db,
        &org,
        &Query::parse(&RawQuery {
            group: "nope".into(),
            ..RawQuery::default()
        })
        .expect("parsed"),
    )
    .expect_err("no such group");
    assert!(e.to_string().starts_with("group: no group is named"), "{e}");

    // The same over HTTP.
    let (status, _, html) = site
        .page("/o/acme/admin/members?q=p99998%40acme", Some(&admin))
        .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("href=\"/o/acme/admin/members/id-099998\""),
        "{html}"
    );
    assert_eq!(html.matches("<tr id=\"member-").count(), 1);
    let (status, _, html) = site.page("/o/acme/admin/members", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(html.matches("<tr id=\"member-").count(), 50);
    assert!(html.contains("after=person.000049"), "{html}");
    let (status, _, html) = site
        .page("/o/acme/admin/members?role=owner", Some(&admin))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        html.contains("role: &#34;owner&#34; is not a role"),
        "{html}"
    );
    site.running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_members_page_ends_sessions_and_revokes_devices_and_shows_no_skill_data() {
    let mut env = Env::new(&["acme", "other"]);
    let site = Served::start(&mut env).await;
    let state = &site.state;
    let (admin, admin_id) = signed_in(state, "acme", "admin", true);
    let (carol, carol_id) = signed_in(state, "acme", "carol", false);
    let (viewer, _) = site.viewer("vera");
    let (other_admin, _) = signed_in(state, "other", "boss", true);
    let db = state.store.org("acme").expect("org");
    let now = state.clock.now();
    // Carol's own skill data: a marker concept only she has met.
    custom::add(
        db,
        &state.catalogue,
        &AdminCtx::operator(),
        Concept {
            slug: "x-quokka-marker".into(),
            title: "Quokka Marker Technique".into(),
            domain: "x-lab".into(),
            summary: "A marker.".into(),
            prerequisites: vec![],
            related: vec![],
            matchers: Default::default(),
        },
        now,
    )
    .expect("concept");
    push(
        state,
        &carol_id,
        "x-quokka-marker",
        &[("seen", t(1, 6)), ("demonstrated", t(1, 7))],
    );
    push(state, &carol_id, "rust-lifetimes", &[("seen", t(1, 6))]);
    let (code, _) = aiworklab::devices::create_pairing_code(db, &carol_id, &Context::system(), now)
        .expect("code");
    let (_, grant) = aiworklab::devices::pair(
        &state.store,
        code.expose(),
        "carol-laptop",
        &Context::system(),
        now,
    )
    .expect("pair");
    let page = format!("/o/acme/admin/members/{carol_id}");

    let (status, _, html) = site.page(&page, Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("carol-laptop"), "{html}");
    let handle = aiworklab::sessions::list(db, &carol_id).expect("sessions")[0].handle();
    assert!(html.contains(&format!("id=\"session-{handle}\"")), "{html}");
    for marker in [
        "quokka",
        "Quokka",
        "lifetimes",
        "Lifetimes",
        "demonstrated",
        "retention",
    ] {
        assert!(
            !html.contains(marker),
            "{marker} on the member's page: {html}"
        );
    }
    assert!(
        !html.contains("<script") && !html.contains(" style="),
        "CSP"
    );

    // Refused without the form's token; then ended and revoked, audited.
    let end = format!("{page}/sessions/{handle}/end");
    let revoke = format!("{page}/devices/{}/revoke", grant.device_id);
    for path in [&end, &revoke] {
        let (status, _, _) = post(&site, path, &admin, Some("forged"), &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        let (status, _, _) = post(&site, path, &viewer, None, &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "a viewer posted {path}");
    }
    assert_eq!(
        aiworklab::sessions::list(db, &carol_id)
            .expect("list")
            .len(),
        1
    );
    let (status, headers, _) = post(&site, &end, &admin, None, &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers.get("location").and_then(|v| v.to_str().ok()),
        Some(format!("{page}?done=session").as_str())
    );
    assert!(
        aiworklab::sessions::list(db, &carol_id)
            .expect("list")
            .is_empty()
    );
    let (status, location, _) = site.page("/account", Some(&carol)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "carol is signed out");
    assert!(location.contains("login") || location == "/", "{location}");
    let (status, _, _) = post(&site, &revoke, &admin, None, &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let devices = aiworklab::devices::list(db, &carol_id).expect("devices");
    assert!(devices[0].revoked_at.is_some());
    assert_eq!(
        devices[0].revoked_reason.as_deref(),
        Some("revoked by an administrator")
    );
    let rows = audit_rows(state, "acme");
    let by_admin = |action: &str| {
        rows.iter().any(|r| {
            r.action == action
                && r.actor == format!("user:{admin_id}")
                && r.details["by"] == "admin"
        })
    };
    assert!(by_admin("session.end"), "the ended session is audited");
    assert!(by_admin("device.revoke"), "the revoked device is audited");
    // Another member's device is not revoked through carol's page.
    let (status, _, _) = post(
        &site,
        &format!("{page}/devices/nope/revoke"),
        &admin,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = site
        .page("/o/acme/admin/members/no-such-id", Some(&admin))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, _, html) = site.page(&page, Some(&admin)).await;
    assert!(html.contains("revoked"), "{html}");

    let (member, _) = signed_in(state, "acme", "member", false);
    only_admins(&site, &page, &viewer, &member, &other_admin).await;
    only_admins(
        &site,
        "/o/acme/admin/members",
        &viewer,
        &member,
        &other_admin,
    )
    .await;
    site.running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn the_backups_page_shows_the_last_archive_the_schedule_and_the_last_drill() {
    let mut env = Env::new(&["acme", "other"]);
    let site = Served::start(&mut env).await;
    let state = &site.state;
    let (admin, _) = signed_in(state, "acme", "admin", true);
    let (viewer, _) = site.viewer("vera");
    let (member, _) = signed_in(state, "acme", "member", false);
    let (other_admin, _) = signed_in(state, "other", "boss", true);
    let (status, _, html) = site.page("/o/acme/admin/backups", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("none in the backup directory"), "{html}");
    assert!(html.contains("none recorded on this machine"), "{html}");
    assert!(
        !html.contains("<script") && !html.contains(" style="),
        "CSP"
    );

    let dir = &state.settings.backup.dir;
    std::fs::create_dir_all(dir).expect("backup dir");
    std::fs::write(
        dir.join("aiworklab-backup-20260104T020000Z.age"),
        vec![0u8; 4096],
    )
    .expect("archive");
    std::fs::write(
        dir.join("aiworklab-backup-20260105T020000Z.age"),
        vec![0u8; 2048],
    )
    .expect("archive");
    aiworklab::setup::checklist::record_drill(
        dir,
        &aiworklab::setup::checklist::DrillRecord {
            at: t(1, 5),
            archive: "aiworklab-backup-20260105T020000Z.age".into(),
            passed: false,
        },
    )
    .expect("drill");
    let (_, _, html) = site.page("/o/acme/admin/backups", Some(&admin)).await;
    assert!(
        html.contains("2026-01-05 02:00 UTC (aiworklab-backup-20260105T020000Z.age, 2.0 KiB)"),
        "{html}"
    );
    assert!(html.contains("2 archive(s), 6.0 KiB in all"), "{html}");
    assert!(html.contains("FAILED on 2026-01-05 10:00 UTC"), "{html}");
    only_admins(
        &site,
        "/o/acme/admin/backups",
        &viewer,
        &member,
        &other_admin,
    )
    .await;
    site.running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn the_settings_page_shows_this_orgs_effective_settings_with_secrets_redacted() {
    let mut env = Env::new(&["acme", "other"]);
    env.raw.metrics.token = "s3cret-metrics-token-for-the-settings-page".into();
    let site = Served::start(&mut env).await;
    let state = &site.state;
    let (admin, _) = signed_in(state, "acme", "admin", true);
    let (viewer, _) = site.viewer("vera");
    let (member, _) = signed_in(state, "acme", "member", false);
    let (other_admin, _) = signed_in(state, "other", "boss", true);
    let (status, _, html) = site.page("/o/acme/admin/settings", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("slug = &#34;acme&#34;"), "{html}");
    assert!(
        html.contains("&#60;redacted&#62;"),
        "the token is shown redacted: {html}"
    );
    assert!(!html.contains("s3cret"), "a secret on the page");
    assert!(
        !html.contains("slug = &#34;other&#34;"),
        "another org's entry on the page"
    );
    assert!(
        !html.contains("<script") && !html.contains(" style="),
        "CSP"
    );
    only_admins(
        &site,
        "/o/acme/admin/settings",
        &viewer,
        &member,
        &other_admin,
    )
    .await;
    site.running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn admins_add_edit_retire_and_restore_the_orgs_own_concepts_by_form() {
    let mut env = Env::new(&["acme", "other"]);
    let site = Served::start(&mut env).await;
    let state = &site.state;
    let (admin, admin_id) = signed_in(state, "acme", "admin", true);
    let (viewer, _) = site.viewer("vera");
    let (member, _) = signed_in(state, "acme", "member", false);
    let (other_admin, _) = signed_in(state, "other", "boss", true);
    let db = state.store.org("acme").expect("org");
    let (status, _, html) = site.page("/o/acme/admin/concepts", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("id=\"concepts-empty\""), "{html}");

    // A bad slug is refused with the field named, the form kept.
    let fields = [
        ("slug", "ledger"),
        ("title", "Double-entry <ledger>"),
        ("domain", "x-billing"),
        ("summary", "Debits and credits."),
        ("keywords", "ledger, journal entry"),
        ("extensions", ".ldg"),
    ];
    let (status, _, html) = post(&site, "/o/acme/admin/concepts", &admin, None, &fields).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(
        html.contains("Nothing was saved: slug:") && html.contains("x-"),
        "{html}"
    );
    assert!(
        html.contains("value=\"Double-entry &#60;ledger&#62;\""),
        "kept, escaped: {html}"
    );
    let mut good = fields.to_vec();
    good[0] = ("slug", "x-ledger");
    let (status, headers, _) = post(&site, "/o/acme/admin/concepts", &admin, None, &good).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers.get("location").and_then(|v| v.to_str().ok()),
        Some("/o/acme/admin/concepts?done=created")
    );
    let held = custom::get(db, "x-ledger").expect("added");
    assert_eq!(held.concept.matchers.keywords, ["ledger", "journal entry"]);
    let (_, _, html) = site.page("/o/acme/admin/concepts", Some(&admin)).await;
    assert!(html.contains("id=\"concept-x-ledger\""), "{html}");

    // Edit, retire, restore: each audited as the admin.
    let page = "/o/acme/admin/concepts/x-ledger";
    let (_, _, html) = site.page(page, Some(&admin)).await;
    assert!(html.contains("value=\"ledger, journal entry\""), "{html}");
    let mut edit = good[1..].to_vec();
    edit[0] = ("title", "Ledgers");
    let (status, _, _) = post(&site, page, &admin, None, &edit).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        custom::get(db, "x-ledger").expect("held").concept.title,
        "Ledgers"
    );
    let (status, _, html) = post(&site, page, &admin, None, &[("title", "")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an empty title: {html}");
    assert!(html.contains("Nothing was saved:"), "{html}");
    assert_eq!(
        custom::get(db, "x-ledger").expect("held").concept.title,
        "Ledgers"
    );
    let (status, _, _) = post(&site, &format!("{page}/retire"), &admin, None, &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        custom::get(db, "x-ledger")
            .expect("held")
            .retired_at
            .is_some()
    );
    let (_, _, html) = site.page(page, Some(&admin)).await;
    assert!(html.contains("id=\"restore-concept\""), "{html}");
    let (status, _, _) = post(&site, &format!("{page}/restore"), &admin, None, &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        custom::get(db, "x-ledger")
            .expect("held")
            .retired_at
            .is_none()
    );
    let rows = audit_rows(state, "acme");
    for action in [
        "concept.create",
        "concept.update",
        "concept.retire",
        "concept.restore",
    ] {
        assert!(
            rows.iter()
                .any(|r| r.action == action && r.actor == format!("user:{admin_id}")),
            "{action} is audited"
        );
    }

    // Refused: a forged token, a viewer; another org's admin to sign in.
    let (status, _, _) = post(
        &site,
        &format!("{page}/retire"),
        &admin,
        Some("forged"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = post(&site, "/o/acme/admin/concepts", &viewer, None, &good).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        custom::get(db, "x-ledger")
            .expect("held")
            .retired_at
            .is_none()
    );
    let (status, _, _) = site
        .page("/o/acme/admin/concepts/x-nothing", Some(&admin))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    only_admins(
        &site,
        "/o/acme/admin/concepts",
        &viewer,
        &member,
        &other_admin,
    )
    .await;
    only_admins(&site, page, &viewer, &member, &other_admin).await;
    site.running.shutdown().await.expect("shutdown");
}
