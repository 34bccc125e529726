//! The local store on real SQLCipher files in a temporary home.

use chrono::{Duration, TimeZone, Utc};

use super::*;

fn obs(concept: &str, transition: Transition, minute: i64) -> Observation {
    Observation {
        concept: concept.into(),
        transition,
        at: Utc
            .with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
            .single()
            .expect("valid")
            + Duration::minutes(minute),
    }
}

fn home() -> (tempfile::TempDir, Home) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = Home::at(tmp.path().join("agent"));
    (tmp, home)
}

#[cfg(unix)]
#[test]
fn the_key_file_is_private_and_the_store_is_encrypted() {
    use std::os::unix::fs::PermissionsExt;
    let (_tmp, home) = home();
    let mut s = LocalStore::open(&home).expect("opens");
    let warning = s
        .take_warning()
        .expect("a one-time warning about the key file");
    assert!(warning.contains("kernel.key"), "{warning}");
    assert_eq!(s.take_warning(), None, "taken once");
    assert_eq!(s.key_location(), &KeyLocation::File(home.key_path()));
    s.record("t", "1", &[obs("rust-lifetimes", Transition::Seen, 0)])
        .expect("records");
    drop(s);
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&home.key_path()), 0o600);
    assert_eq!(mode(&home.store_path()), 0o600);
    let bytes = std::fs::read(home.store_path()).expect("read");
    assert!(!bytes.starts_with(b"SQLite format 3"), "encrypted");
    assert!(
        !bytes.windows(14).any(|w| w == b"rust-lifetimes"),
        "concept ids are not readable in the file"
    );
    let mut again = LocalStore::open(&home).expect("reopens");
    assert_eq!(again.take_warning(), None, "the warning is given once");
    assert_eq!(again.cursor("t").expect("cursor").as_deref(), Some("1"));
}

#[cfg(unix)]
#[test]
fn a_readable_key_file_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let (_tmp, home) = home();
    drop(LocalStore::open(&home).expect("opens"));
    std::fs::set_permissions(home.key_path(), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let err = LocalStore::open(&home).expect_err("refused").to_string();
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn a_wrong_key_is_refused_clearly() {
    let (_tmp, home) = home();
    drop(LocalStore::open(&home).expect("opens"));
    std::fs::write(home.key_path(), format!("{}\n", "ab".repeat(32))).expect("overwrite");
    let err = LocalStore::open(&home).expect_err("wrong key");
    assert!(matches!(err, AgentError::WrongKey { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("kernel.db") && msg.contains("kernel.key"),
        "{msg}"
    );
}

#[test]
fn a_lost_key_is_never_replaced_by_a_new_one() {
    let (_tmp, home) = home();
    drop(LocalStore::open(&home).expect("opens"));
    std::fs::remove_file(home.key_path()).expect("lose the key");
    let err = LocalStore::open(&home).expect_err("no key").to_string();
    assert!(err.contains("move the store aside"), "{err}");
    assert!(!home.key_path().exists(), "no new key was made");
}

/// The store file alone, as a power loss that took the unsynced end of
/// the write-ahead log would leave it: copied with its key into a new
/// home and opened there.
fn store_file_alone(tmp: &tempfile::TempDir, home: &Home, name: &str) -> LocalStore {
    let copy = Home::at(tmp.path().join(name));
    copy.ensure().expect("home");
    std::fs::copy(home.store_path(), copy.store_path()).expect("store copied");
    std::fs::copy(home.key_path(), copy.key_path()).expect("key copied");
    LocalStore::open(&copy).expect("the copy opens")
}

fn log_size(home: &Home) -> u64 {
    let mut p = home.store_path().into_os_string();
    p.push("-wal");
    std::fs::metadata(p).map_or(0, |m| m.len())
}

#[test]
fn a_hooks_commits_are_not_synced_and_the_outbox_is_made_durable_before_it_is_sent() {
    let (tmp, home) = home();
    drop(LocalStore::open(&home).expect("made"));
    let mut hook = LocalStore::open_for_hook(&home).expect("opens");
    let sync: i64 = hook
        .conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .expect("pragma");
    assert_eq!(sync, 1, "NORMAL");
    hook.record(
        "claude:a.jsonl",
        "120",
        &[
            obs("rust-lifetimes", Transition::Seen, 0),
            obs("sql-joins", Transition::Seen, 1),
        ],
    )
    .expect("records");
    assert!(!hook.release().expect("closes"), "a small log is kept");
    assert!(log_size(&home) > 0, "the log is kept between hooks");
    // The commit is only in the log: the store file alone lacks it.
    let lost = store_file_alone(&tmp, &home, "before");
    assert_eq!(lost.outbox_len().expect("len"), 0);
    assert_eq!(lost.cursor("claude:a.jsonl").expect("cursor"), None);
    drop(lost);
    // What `agent sync` sends is in the store file before it returns.
    let s = LocalStore::open(&home).expect("opens");
    let sent = s.outbox_durable(10).expect("outbox");
    assert_eq!(sent.len(), 2);
    let durable = store_file_alone(&tmp, &home, "after");
    assert_eq!(durable.outbox(10).expect("outbox"), sent);
    assert_eq!(
        durable.cursor("claude:a.jsonl").expect("cursor").as_deref(),
        Some("120")
    );
}

/// A hook's commit of `n` observations (from `minute` on) under `cursor`:
/// in the log, not synced.
fn hook_records(home: &Home, cursor: &str, minute: i64, n: i64) {
    let mut hook = LocalStore::open_for_hook(home).expect("opens");
    let batch: Vec<Observation> = (0..n)
        .map(|i| obs("rust-lifetimes", Transition::Seen, minute + i))
        .collect();
    hook.record("claude:a.jsonl", cursor, &batch)
        .expect("records");
    assert!(!hook.release().expect("closes"), "a small log is kept");
}

#[test]
fn a_backlog_sent_in_batches_is_synced_once_and_again_only_for_what_hooks_queue_meanwhile() {
    let (tmp, home) = home();
    drop(LocalStore::open(&home).expect("made"));
    hook_records(&home, "4", 0, 4);
    let mut s = LocalStore::open(&home).expect("opens");
    // The first batch's checkpoint makes the whole queue durable.
    let first = s.outbox_durable(2).expect("outbox");
    assert_eq!(first.len(), 2);
    let alone = store_file_alone(&tmp, &home, "first");
    assert_eq!(alone.outbox_len().expect("len"), 4, "all four are durable");
    drop(alone);
    s.mark_sent(&first.iter().map(|d| d.id.clone()).collect::<Vec<_>>())
        .expect("sent");
    // A hook queues one more meanwhile, not synced.
    hook_records(&home, "5", 10, 1);
    // The next batch holds only deltas known durable: no checkpoint, so
    // the hook's commit is still only in the log.
    let second = s.outbox_durable(2).expect("outbox");
    assert_eq!(second, s.outbox(2).expect("outbox"));
    assert_eq!(second.len(), 2);
    let alone = store_file_alone(&tmp, &home, "second");
    assert_eq!(
        alone.cursor("claude:a.jsonl").expect("cursor").as_deref(),
        Some("4")
    );
    drop(alone);
    // A batch that holds the hook's delta is made durable before it is
    // returned.
    let third = s.outbox_durable(10).expect("outbox");
    assert_eq!(third.len(), 3);
    let alone = store_file_alone(&tmp, &home, "third");
    assert_eq!(alone.outbox(10).expect("outbox"), third);
    assert_eq!(
        alone.cursor("claude:a.jsonl").expect("cursor").as_deref(),
        Some("5")
    );
}

#[test]
fn a_hook_checkpoints_and_truncates_the_log_once_it_passes_the_limit() {
    let (_tmp, home) = home();
    drop(LocalStore::open(&home).expect("made"));
    let mut minute = 0;
    let mut released = false;
    for round in 0..400 {
        let mut hook = LocalStore::open_for_hook(&home).expect("opens");
        let batch: Vec<Observation> = (0..20)
            .map(|i| {
                minute += 1;
                let concept = if i % 2 == 0 {
                    "rust-lifetimes"
                } else {
                    "sql-joins"
                };
                obs(concept, Transition::Seen, minute)
            })
            .collect();
        hook.record("p", &round.to_string(), &batch)
            .expect("records");
        let before = log_size(&home);
        released = hook.release().expect("closes");
        if released {
            assert!(before > HOOK_LOG_LIMIT, "{before}");
            break;
        }
        assert!(before <= HOOK_LOG_LIMIT, "kept below the limit: {before}");
        assert_eq!(log_size(&home), before, "kept as it was");
    }
    assert!(released, "the log passed the limit and was checkpointed");
    assert_eq!(log_size(&home), 0, "truncated");
    let s = LocalStore::open(&home).expect("reopens");
    assert_eq!(s.delta_count().expect("count"), minute as usize);
}

#[test]
fn record_queues_folds_and_sets_the_cursor_in_one_go() {
    let (_tmp, home) = home();
    let mut s = LocalStore::open(&home).expect("opens");
    assert_eq!(s.cursor("claude:a.jsonl").expect("cursor"), None);
    let n = s
        .record(
            "claude:a.jsonl",
            "120",
            &[
                obs("rust-lifetimes", Transition::Seen, 0),
                obs("rust-lifetimes", Transition::Explained, 1),
                obs("sql-joins", Transition::Seen, 2),
            ],
        )
        .expect("records");
    assert_eq!(n, 3);
    assert_eq!(
        s.cursor("claude:a.jsonl").expect("cursor").as_deref(),
        Some("120")
    );
    let out = s.outbox(10).expect("outbox");
    assert_eq!(out.len(), 3);
    for d in &out {
        let id = uuid::Uuid::parse_str(&d.id).expect("uuid");
        assert_eq!(id.get_version_num(), 7, "UUIDv7");
    }
    let states = s.states().expect("states");
    let lt = states
        .iter()
        .find(|r| r.concept == "rust-lifetimes")
        .expect("folded");
    assert_eq!(lt.state.level, crate::skill::state::Level::Explained);
}

#[test]
fn nothing_is_recorded_twice() {
    let (_tmp, home) = home();
    let mut s = LocalStore::open(&home).expect("opens");
    let batch = [
        obs("rust-lifetimes", Transition::Seen, 0),
        obs("rust-lifetimes", Transition::Seen, 0),
        obs("sql-joins", Transition::Seen, 0),
    ];
    assert_eq!(s.record("a", "1", &batch).expect("records"), 2);
    // The same facts again, from another source (the hook and the session
    // record both saw them): nothing new.
    assert_eq!(s.record("b", "9", &batch).expect("records"), 0);
    assert_eq!(s.outbox_len().expect("len"), 2);
    assert_eq!(s.delta_count().expect("count"), 2);
    assert_eq!(s.cursor("b").expect("cursor").as_deref(), Some("9"));
}

#[test]
fn a_refused_record_stores_nothing_and_keeps_the_cursor() {
    let (_tmp, home) = home();
    let mut s = LocalStore::open(&home).expect("opens");
    s.record("a", "1", &[obs("rust-lifetimes", Transition::Seen, 0)])
        .expect("records");
    for bad in [
        vec![
            obs("sql-joins", Transition::Seen, 1),
            obs("not-a-concept-here", Transition::Seen, 2),
        ],
        vec![
            obs("sql-joins", Transition::Seen, 1),
            obs("/home/me/secret.rs", Transition::Seen, 2),
        ],
        vec![Observation {
            at: Utc::now() + Duration::days(3),
            ..obs("sql-joins", Transition::Seen, 1)
        }],
    ] {
        let err = s.record("a", "2", &bad).expect_err("refused");
        assert!(matches!(err, AgentError::Invalid(_)), "{err:?}");
        assert_eq!(s.cursor("a").expect("cursor").as_deref(), Some("1"));
        assert_eq!(
            s.outbox_len().expect("len"),
            1,
            "nothing of the batch stored"
        );
        assert_eq!(s.states().expect("states").len(), 1);
    }
}

#[test]
fn pulled_deltas_fold_with_own_ones_and_are_not_queued() {
    let (_tmp, home) = home();
    let mut s = LocalStore::open(&home).expect("opens");
    s.record("a", "1", &[obs("rust-traits", Transition::Seen, 0)])
        .expect("records");
    let own = s.outbox(10).expect("outbox");
    let pulled = vec![
        own[0].clone(),
        WireDelta {
            id: uuid::Uuid::now_v7().to_string(),
            concept: "rust-traits".into(),
            transition: "demonstrated".into(),
            at: obs("x", Transition::Seen, 5).at,
            grade: None,
        },
    ];
    assert_eq!(s.apply_pulled(&pulled, 7).expect("applies"), 1);
    assert_eq!(s.apply_pulled(&pulled, 7).expect("again"), 0);
    assert_eq!(
        s.meta(outbox::PULL_CURSOR).expect("meta").as_deref(),
        Some("7")
    );
    assert_eq!(
        s.outbox_len().expect("len"),
        1,
        "pulled deltas are not sent back"
    );
    let st = s.states().expect("states");
    assert_eq!(st[0].state.level, crate::skill::state::Level::Demonstrated);
}

#[test]
fn the_org_catalogue_copy_replaces_the_shipped_one_without_retired_concepts() {
    let (_tmp, home) = home();
    let mut s = LocalStore::open(&home).expect("opens");
    assert!(s.catalogue().expect("shipped").contains("rust-lifetimes"));
    let listing = serde_json::json!({
        "domains": [{"slug": "rust", "title": "Rust", "custom": false}],
        "concepts": [
            {"slug": "rust-lifetimes", "title": "Lifetimes", "domain": "rust", "summary": "s",
             "prerequisites": ["x-gone"], "related": [], "matchers": {}, "custom": false, "retired": false},
            {"slug": "x-payments", "title": "Payments", "domain": "x-money", "summary": "s",
             "prerequisites": [], "related": [], "matchers": {"keywords": ["ledger"]}, "custom": true, "retired": false},
            {"slug": "x-gone", "title": "Gone", "domain": "x-money", "summary": "s",
             "custom": true, "retired": true, "retired_at": "2026-01-01T00:00:00Z"}
        ]
    });
    assert_eq!(s.set_org_catalogue(&listing.to_string()).expect("kept"), 2);
    let cat = s.catalogue().expect("copy");
    assert!(cat.contains("x-payments") && !cat.contains("x-gone"));
    s.record("a", "1", &[obs("x-payments", Transition::Seen, 0)])
        .expect("an org concept is recorded");
    assert!(
        s.record("a", "2", &[obs("x-gone", Transition::Seen, 0)])
            .is_err()
    );
    // A broken listing is refused and the copy kept.
    assert!(s.set_org_catalogue("{\"domains\": 3}").is_err());
    assert!(s.catalogue().expect("copy").contains("x-payments"));
    // The org's own live concepts, with their matchers, are what the
    // engineer is shown (`agent status`): the shipped and retired ones not.
    let own = s.org_concepts().expect("org concepts");
    assert_eq!(own.len(), 1, "{own:?}");
    assert_eq!(own[0].slug, "x-payments");
    assert_eq!(own[0].matchers.keywords, vec!["ledger".to_string()]);
    let status = crate::agent::status::status(&s, Utc::now()).expect("status");
    assert_eq!(status.org_concepts, own);
    let text = crate::agent::status::render(&status);
    assert!(
        text.contains("x-payments") && text.contains("keywords: ledger"),
        "{text}"
    );
    assert!(!text.contains("x-gone"), "{text}");
}

#[test]
fn without_an_org_catalogue_the_status_says_the_org_has_no_concepts_of_its_own() {
    let (_tmp, home) = home();
    let s = LocalStore::open(&home).expect("opens");
    assert!(s.org_concepts().expect("none").is_empty());
    let text = crate::agent::status::render(
        &crate::agent::status::status(&s, Utc::now()).expect("status"),
    );
    assert!(text.contains("no concepts of its own"), "{text}");
}

mod fold_checkpoints {
    //! Recording folds on from each concept's stored state when the new
    //! deltas come after it, and refolds otherwise: either way the stored
    //! state must be what folding every delta of the concept gives.

    use proptest::prelude::*;

    use super::*;
    use crate::skill::state::{Fact, fold};

    const CONCEPTS: [&str; 3] = ["rust-lifetimes", "sql-joins", "rust-traits"];

    /// One write: own observations, pulled deltas, or a graded check.
    #[derive(Debug, Clone)]
    enum Write {
        Own(Vec<(usize, usize, i64)>),
        Pulled(Vec<(usize, usize, i64, u8)>),
        Check(usize, u8, i64),
    }

    fn write() -> impl Strategy<Value = Write> {
        // Minutes from -30 to 90 days around a start, mostly moving on
        // (as a hook's facts do), sometimes earlier (a late pull).
        let obs = (0..CONCEPTS.len(), 0..5usize, -600i64..130_000);
        prop_oneof![
            4 => proptest::collection::vec(obs.clone(), 1..6).prop_map(Write::Own),
            1 => proptest::collection::vec((0..CONCEPTS.len(), 0..5usize, -43_200i64..130_000, 1u8..=4), 1..4)
                .prop_map(Write::Pulled),
            1 => (0..CONCEPTS.len(), 1u8..=4, 0i64..130_000).prop_map(|(c, g, m)| Write::Check(c, g, m)),
        ]
    }

    /// Every delta of `concept` in the store, folded from scratch.
    fn refolded(s: &LocalStore, concept: &str) -> crate::skill::state::ConceptState {
        let facts: Vec<Fact> = s
            .conn
            .prepare("SELECT id, transition, at, grade FROM deltas WHERE concept = ?1")
            .expect("prepare")
            .query_map([concept], |r| {
                let tr: String = r.get(1)?;
                Ok(fold::fact(
                    &r.get::<_, String>(0)?,
                    Transition::parse(&tr).unwrap_or(Transition::Seen),
                    r.get(2)?,
                    r.get(3)?,
                ))
            })
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        fold(&facts)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn the_stored_state_is_the_fold_of_every_delta(writes in proptest::collection::vec(write(), 1..14)) {
            let (_tmp, home) = home();
            let mut s = LocalStore::open(&home).expect("opens");
            for (i, w) in writes.iter().enumerate() {
                match w {
                    Write::Own(list) => {
                        let list: Vec<Observation> = list
                            .iter()
                            .map(|&(c, t, m)| obs(CONCEPTS[c], Transition::ALL[t], m))
                            .collect();
                        s.record("p", &i.to_string(), &list).expect("records");
                    }
                    Write::Pulled(list) => {
                        let list: Vec<WireDelta> = list
                            .iter()
                            .map(|&(c, t, m, g)| {
                                let transition = Transition::ALL[t];
                                WireDelta {
                                    id: uuid::Uuid::now_v7().to_string(),
                                    concept: CONCEPTS[c].into(),
                                    transition: transition.as_str().into(),
                                    at: obs("x", Transition::Seen, m).at,
                                    grade: match transition {
                                        Transition::CheckFailed => Some(1),
                                        Transition::CheckPassed => Some(g.max(2)),
                                        _ => None,
                                    },
                                }
                            })
                            .collect();
                        s.apply_pulled(&list, i as i64).expect("pulled");
                    }
                    Write::Check(c, g, m) => {
                        s.record_check(CONCEPTS[*c], *g, None, obs("x", Transition::Seen, *m).at)
                            .expect("check");
                    }
                }
            }
            for row in s.states().expect("states") {
                prop_assert_eq!(&row.state, &refolded(&s, &row.concept), "{}", row.concept);
            }
        }
    }

    /// A state written before migration 0003 has no fold point: the next
    /// write refolds it and sets one.
    #[test]
    fn a_state_without_a_fold_point_is_refolded() {
        let (_tmp, home) = home();
        let mut s = LocalStore::open(&home).expect("opens");
        s.record("p", "1", &[obs("sql-joins", Transition::Seen, 0)])
            .expect("records");
        s.conn
            .execute(
                "UPDATE states SET folded_at = NULL, folded_id = NULL, checks_passed = 7",
                [],
            )
            .expect("as before 0003");
        s.record("p", "2", &[obs("sql-joins", Transition::Explained, 5)])
            .expect("records");
        let st = s.states().expect("states");
        assert_eq!(st[0].state, refolded(&s, "sql-joins"));
        assert_eq!(st[0].state.level, crate::skill::state::Level::Explained);
        assert_eq!(st[0].state.checks_passed, 0, "refolded, not folded on");
        let point: Option<i64> = s
            .conn
            .query_row("SELECT folded_at FROM states", [], |r| r.get(0))
            .expect("point");
        assert_eq!(
            point,
            Some(obs("x", Transition::Seen, 5).at.timestamp_millis())
        );
    }
}
