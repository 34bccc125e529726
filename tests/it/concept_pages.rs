//! The concept pages (`/o/<org>/concepts/<slug>`) and team pages
//! (`/o/<org>/teams`, `/o/<org>/teams/<team>`) over real HTTP: viewers and
//! admins see them, members get 403 with the reason, another org's admin
//! and nobody are sent to sign in (P18); unknown slugs and teams are a 404
//! naming them; the checks of the bank are for admins only; the pages are
//! escaped and script- and style-free (P16); the dashboard links to them;
//! and no engineer below `min_cohort` shows on any of them (P19).

use std::collections::{BTreeSet, VecDeque};

use aiworklab::catalogue::custom;
use aiworklab::skill::Concept;
use aiworklab::users::AdminCtx;
use chrono::Duration;
use reqwest::StatusCode;

use crate::aggregates_page::{Served, push, t, team};
use crate::support::{Env, signed_in};

/// Last week's org release, so the teams made before it have held still
/// since an earlier period and are released this week (docs/privacy.md,
/// rule 1).
fn release_last_week(site: &Served) {
    let state = &site.state;
    let req = aiworklab::privacy::Request {
        team: None,
        now: state.clock.now() - Duration::days(7),
        weeks: 12,
    };
    aiworklab::privacy::release(
        state.store.org("acme").expect("org"),
        &state.catalogue,
        &req,
        state.settings.privacy,
        &aiworklab::audit::Context::system(),
    )
    .expect("last week's release");
}

fn own_concept(site: &Served, slug: &str, title: &str, prerequisites: &[&str]) {
    let state = &site.state;
    custom::add(
        state.store.org("acme").expect("org"),
        &state.catalogue,
        &AdminCtx::operator(),
        Concept {
            slug: slug.into(),
            title: title.into(),
            domain: "x-lab".into(),
            summary: format!("{title}, for the tests."),
            prerequisites: prerequisites.iter().map(|p| (*p).to_string()).collect(),
            related: vec![],
            matchers: Default::default(),
        },
        state.clock.now(),
    )
    .expect("custom concept");
}

fn assert_clean(who: &str, path: &str, html: &str) {
    assert!(!html.contains("<script"), "{who}: script on {path}");
    assert!(
        !html.contains(" style="),
        "{who}: inline style on {path} breaks the CSP"
    );
}

#[tokio::test]
async fn concept_and_team_pages_are_for_viewers_and_admins_and_link_from_the_dashboard() {
    let mut env = Env::new(&["acme", "other"]);
    let site = Served::start(&mut env).await;
    let state = &site.state;
    let (admin, _) = signed_in(state, "acme", "admin", true);
    let vera = site.viewer("vera").0;
    let (member, _) = signed_in(state, "acme", "member", false);
    let (other_admin, _) = signed_in(state, "other", "boss", true);
    // Forty engineers met Lifetimes last week, thirty demonstrated it.
    let engineers: Vec<String> = (0..40)
        .map(|i| signed_in(state, "acme", &format!("eng{i}"), false).1)
        .collect();
    for (i, e) in engineers.iter().enumerate() {
        let mut facts = vec![("seen", t(1, 6))];
        if i < 30 {
            facts.push(("demonstrated", t(1, 7)));
        }
        push(state, e, "rust-lifetimes", &facts);
    }
    team(state, "platform & ops", &engineers[..20]);
    team(state, "tiny", &engineers[20..23]);
    release_last_week(&site);
    own_concept(
        &site,
        "x-mentoring",
        "Mentoring <b>juniors</b>",
        &["rust-lifetimes"],
    );
    own_concept(&site, "x-gone", "Retired practice", &[]);
    custom::retire(
        state.store.org("acme").expect("org"),
        &AdminCtx::operator(),
        "x-gone",
        state.clock.now(),
    )
    .expect("retire");
    // A check the org's model wrote for the org's concept.
    state
        .store
        .org("acme")
        .expect("org")
        .db
        .write(|tx| {
            aiworklab::store::generated_checks::insert(
                tx,
                &aiworklab::store::generated_checks::GeneratedRow {
                    id: "gen-mentoring-1".into(),
                    concept: "x-mentoring".into(),
                    prompt: "Who should speak first in a pairing session?".into(),
                    options: r#"["the senior","the junior","nobody","the manager"]"#.into(),
                    correct: 1,
                    explanation: "So the junior thinks aloud.".into(),
                    model: "test-model".into(),
                    prompt_sha256: "00".repeat(32),
                    created_at: 0,
                    retired_at: None,
                },
            )
            .map_err(aiworklab::store::StoreError::from)
        })
        .expect("generated check");

    let concept = "/o/acme/concepts/rust-lifetimes";
    for (who, cookie) in [("viewer", &vera), ("admin", &admin)] {
        let (status, _, html) = site.page(concept, Some(cookie)).await;
        assert_eq!(status, StatusCode::OK, "{who}: {html}");
        assert_clean(who, concept, &html);
        for part in [
            "<h1 id=\"concept-title\">Lifetimes</h1>",
            "Lifetime parameters name how long references stay valid",
            "id=\"graph-chart\"",
            // The prerequisite is a link in the graph.
            "href=\"/o/acme/concepts/rust-borrowing\"",
            "id=\"trend-chart\"",
            "role=\"img\" aria-labelledby=\"trend-title trend-desc\"",
            "id=\"figure-met\"",
            "<details class=\"numbers\">",
            // The released team's row links to its page; the small one is
            // refused with its reason.
            "href=\"/o/acme/teams/platform%20%26%20ops\"",
            "<strong>tiny</strong>: not shown this week: fewer than 5 counted engineers",
        ] {
            assert!(html.contains(part), "{who}: no {part} in {html}");
        }
        let has_checks = html.contains("id=\"checks\"");
        assert_eq!(has_checks, who == "admin", "{who}: checks section");
        if who == "admin" {
            assert!(
                html.contains("<code>rust-lifetimes-1</code>"),
                "the bank's checks: {html}"
            );
        }
        // The org's own concept: its prerequisite links back; its title
        // is escaped.
        let (status, _, html) = site
            .page("/o/acme/concepts/x-mentoring", Some(cookie))
            .await;
        assert_eq!(status, StatusCode::OK, "{who}");
        assert!(
            html.contains("Mentoring &#60;b&#62;juniors&#60;/b&#62;"),
            "{html}"
        );
        assert!(!html.contains("<b>juniors"), "{who}: unescaped title");
        assert!(html.contains("href=\"/o/acme/concepts/rust-lifetimes\""));
        assert_eq!(
            html.contains("gen-mentoring-1"),
            who == "admin",
            "{who}: the model's check"
        );
        if who == "admin" {
            assert!(html.contains("written by test-model"), "{html}");
            assert!(
                html.contains(">the junior</td>"),
                "its right answer: {html}"
            );
        }

        // Unknown and retired concepts: a 404 that names the slug.
        let (status, _, html) = site
            .page("/o/acme/concepts/no-such-thing", Some(cookie))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{who}");
        assert!(
            html.contains("There is no concept `no-such-thing`"),
            "{html}"
        );
        let (status, _, html) = site.page("/o/acme/concepts/x-gone", Some(cookie)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{who}");
        assert!(html.contains("`x-gone` is retired"), "{html}");
        let (status, _, html) = site
            .page("/o/acme/concepts/%3Cscript%3E", Some(cookie))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(!html.contains("<script"), "the slug is escaped");

        // Teams: side by side, one released team, one refused, one unknown.
        let (status, _, html) = site.page("/o/acme/teams", Some(cookie)).await;
        assert_eq!(status, StatusCode::OK, "{who}: {html}");
        assert_clean(who, "/o/acme/teams", &html);
        for part in [
            "id=\"coverage-chart\"",
            "id=\"compare-table\"",
            "<a href=\"/o/acme/teams/platform%20%26%20ops\">platform &#38; ops</a>",
            "<a href=\"/o/acme/teams/tiny\">tiny</a>",
            "<strong>tiny</strong>: not shown this week",
        ] {
            assert!(html.contains(part), "{who}: no {part} in {html}");
        }
        let path = "/o/acme/teams/platform%20%26%20ops";
        let (status, _, html) = site.page(path, Some(cookie)).await;
        assert_eq!(status, StatusCode::OK, "{who}: {html}");
        assert_clean(who, path, &html);
        for part in [
            "Team platform &#38; ops",
            "id=\"headline-engineers\"",
            "id=\"trend-chart\"",
            "id=\"domains-chart\"",
        ] {
            assert!(html.contains(part), "{who}: no {part} in {html}");
        }
        let (status, _, html) = site.page("/o/acme/teams/TINY", Some(cookie)).await;
        assert_eq!(status, StatusCode::OK, "{who}");
        assert!(html.contains("Team tiny"), "the team's own name: {html}");
        assert!(
            html.contains("<p id=\"refused-why\">fewer than 5 counted engineers"),
            "{html}"
        );
        for figure in ["id=\"headline-", "id=\"trend-chart\"", "<table"] {
            assert!(
                !html.contains(figure),
                "{who}: a refused team shows {figure}"
            );
        }
        let (status, _, html) = site.page("/o/acme/teams/nobody-here", Some(cookie)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(html.contains("There is no team `nobody-here`"), "{html}");
    }

    // The dashboard links to the concept pages and team pages.
    let (_, _, html) = site.page("/o/acme/dashboard", Some(&vera)).await;
    for link in [
        "href=\"/o/acme/concepts/rust-lifetimes\"",
        "href=\"/o/acme/teams/platform%20%26%20ops\"",
        "href=\"/o/acme/teams\"",
    ] {
        assert!(html.contains(link), "no {link} on the dashboard: {html}");
    }

    // Refused: a member (with the reason), another org's admin, nobody.
    for path in [concept, "/o/acme/teams", "/o/acme/teams/tiny"] {
        let (status, _, body) = site.page(path, Some(&member)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "a member opened {path}");
        assert!(body.contains("viewers and administrators"), "{body}");
        let (status, location, _) = site.page(path, Some(&other_admin)).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "another org's admin: {path}");
        assert!(location.starts_with("/o/acme/login"), "{location}");
        let (status, location, _) = site.page(path, None).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "nobody: {path}");
        assert!(location.starts_with("/o/acme/login"), "{location}");
    }
    let (status, _, _) = site
        .page("/o/other/concepts/rust-lifetimes", Some(&vera))
        .await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "acme's viewer opened other's"
    );
    site.running.shutdown().await.expect("shutdown");
}

/// The pages under `/o/acme/` that `html` links to.
fn links(html: &str) -> Vec<String> {
    html.split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .filter(|h| h.starts_with("/o/acme/concepts/") || h.starts_with("/o/acme/teams"))
        .map(str::to_string)
        .collect()
}

/// The text of every `<td>` inside the element with `id`.
fn cells_in(html: &str, id: &str) -> Vec<String> {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let end = html[start..]
        .find("</section>")
        .map_or(html.len(), |e| start + e);
    html[start..end]
        .split("<td")
        .skip(1)
        .filter_map(|c| c.split_once('>').map(|(_, rest)| rest))
        .filter_map(|c| c.split("</td>").next())
        .map(str::to_string)
        .collect()
}

/// Engineers alone on marker concepts, and a team of just them: on every
/// concept and team page a viewer or admin can reach, none of their data.
#[tokio::test]
async fn no_engineer_below_min_cohort_shows_on_concept_or_team_pages() {
    let mut env = Env::new(&["acme"]);
    // A larger cohort makes "noise lifted a lone engineer over it"
    // negligible (below 1e-4 per figure), so the test cannot flake.
    env.raw.privacy.min_cohort = 20;
    let site = Served::start(&mut env).await;
    let state = &site.state;
    let (admin, _) = signed_in(state, "acme", "admin", true);
    let vera = site.viewer("vera").0;
    let crowd: Vec<String> = (0..60)
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
        own_concept(&site, slug, &format!("Marker{i} concept"), &[]);
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
    // A released team of thirty, and the three alone as a team.
    team(state, "crowd", &crowd[..30]);
    team(state, "lonely", &loners);
    release_last_week(&site);

    for (who, cookie) in [("viewer", &vera), ("admin", &admin)] {
        // Every concept and team page reachable from the dashboard, and
        // the markers' own pages asked for by name.
        let mut queue: VecDeque<String> = ["/o/acme/dashboard", "/o/acme/teams/lonely"]
            .iter()
            .map(|p| (*p).to_string())
            .chain(markers.iter().map(|m| format!("/o/acme/concepts/{m}")))
            .collect();
        let mut seen = BTreeSet::new();
        while let Some(path) = queue.pop_front() {
            if !seen.insert(path.clone()) {
                continue;
            }
            let (status, _, html) = site.page(&path, Some(cookie)).await;
            assert_eq!(status, StatusCode::OK, "{who}: {path}: {html}");
            queue.extend(links(&html));
            if let Some(m) = markers.iter().position(|m| path.ends_with(m)) {
                // The marker's own page: the catalogue's title, and not
                // one figure.
                assert!(html.contains(&format!("Marker{m} concept")));
                for id in ["met", "demonstrated", "predicted", "observed"] {
                    assert!(html.contains(&format!("id=\"figure-{id}\"")), "{path}");
                }
                let figures: Vec<&str> = html
                    .split("<span class=\"figure\">")
                    .skip(1)
                    .filter_map(|s| s.split('<').next())
                    .collect();
                assert_eq!(figures, ["suppressed"; 4], "{who}: {path}");
                for cell in cells_in(&html, "trend")
                    .iter()
                    .chain(&cells_in(&html, "teams"))
                {
                    assert!(
                        cell == "suppressed" || cell == "not released this week",
                        "{who}: {path} shows {cell}"
                    );
                }
                assert!(!html.contains("id=\"teams-chart\""), "{who}: {path}");
                continue;
            }
            for (i, slug) in markers.iter().enumerate() {
                assert!(!html.contains(slug), "{who}: {slug} on {path}");
                assert!(
                    !html.contains(&format!("Marker{i}")),
                    "{who}: a lone engineer's concept on {path}"
                );
            }
            if path.ends_with("/teams/lonely") {
                assert!(html.contains("id=\"refused-why\""), "{html}");
                assert!(!html.contains("<table"), "{who}: the lonely team's figures");
            }
        }
        for page in [
            "/o/acme/concepts/rust-lifetimes",
            "/o/acme/concepts/rust-borrowing",
            "/o/acme/teams",
            "/o/acme/teams/crowd",
            "/o/acme/teams/lonely",
        ] {
            assert!(
                seen.contains(page),
                "{who}: the crawl missed {page}: {seen:?}"
            );
        }
    }
    site.running.shutdown().await.expect("shutdown");
}

/// More teams than the page compares at once: the first twelve by name
/// are drawn, the chooser lists all fourteen with those twelve ticked;
/// `?team=` draws the chosen ones instead, in the order asked, and names
/// an unknown team, too many teams or another parameter as the mistake.
#[tokio::test]
async fn the_teams_to_compare_are_chosen_and_bad_choices_are_named() {
    let mut env = Env::new(&["acme"]);
    let site = Served::start(&mut env).await;
    let state = &site.state;
    let vera = site.viewer("vera").0;
    let names: Vec<String> = ('a'..='n').map(|c| format!("team-{c}")).collect();
    for (i, name) in names.iter().enumerate() {
        let members: Vec<String> = (0..6)
            .map(|j| signed_in(state, "acme", &format!("e{i}-{j}"), false).1)
            .collect();
        team(state, name, &members);
    }
    release_last_week(&site);
    let drawn = |html: &str| -> Vec<String> {
        names
            .iter()
            .filter(|n| html.contains(&format!("<a href=\"/o/acme/teams/{n}\">{n}</a>")))
            .cloned()
            .collect()
    };
    let ticked = |html: &str, n: &str| {
        html.contains(&format!(
            "<input type=\"checkbox\" name=\"team\" value=\"{n}\" checked>"
        ))
    };

    let (status, _, html) = site.page("/o/acme/teams", Some(&vera)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(drawn(&html), names[..12], "the first twelve by name");
    assert!(html.contains("2 more teams are not shown here"), "{html}");
    for (i, n) in names.iter().enumerate() {
        assert!(html.contains(&format!("value=\"{n}\"")), "{n} is offered");
        assert_eq!(ticked(&html, n), i < 12, "{n}");
    }
    assert!(!html.contains("id=\"compare-first\""));

    let (status, _, html) = site
        .page(
            "/o/acme/teams?team=TEAM-N&team=team-m&team=team-n",
            Some(&vera),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(drawn(&html), ["team-m", "team-n"]);
    let n_at = html.find("teams/team-n\">").expect("team-n");
    let m_at = html.find("teams/team-m\">").expect("team-m");
    assert!(n_at < m_at, "in the order asked");
    assert!(html.contains("12 more teams are not shown here (the chosen ones are)"));
    assert!(ticked(&html, "team-n") && ticked(&html, "team-m") && !ticked(&html, "team-a"));
    assert!(html.contains("<details class=\"choose-teams\" id=\"choose-teams\" open>"));
    assert!(html.contains("id=\"compare-first\""), "a way back");

    let too_many: String = names
        .iter()
        .take(13)
        .map(|n| format!("team={n}&"))
        .collect();
    for (query, says) in [
        ("team=nobody", "there is no team `nobody` to compare"),
        (
            too_many.as_str(),
            "13 teams were chosen; compare at most 12",
        ),
        ("colour=red", "`colour` is not something this page takes"),
    ] {
        let (status, _, html) = site
            .page(&format!("/o/acme/teams?{query}"), Some(&vera))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {html}");
        assert!(html.contains(says), "{query}: {html}");
    }
}
