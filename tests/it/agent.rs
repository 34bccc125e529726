//! The kernel's sync client against a real appliance over loopback:
//! pairing (a refused code, plain http to another host refused), record
//! then sync, the offline queue across a restart and a stopped server,
//! 429, token rotation, two devices converging, revocation, unpair, and
//! the command line. Device side of P1: the outbox holds wire fields only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use aiworklab::AppState;
use aiworklab::agent::AgentError;
use aiworklab::agent::home::Home;
use aiworklab::agent::observe::Observation;
use aiworklab::agent::status;
use aiworklab::agent::store::LocalStore;
use aiworklab::agent::sync::{self, SyncOptions};
use aiworklab::audit::Context;
use aiworklab::clock::{Clock, ManualClock, SystemClock};
use aiworklab::config::RawRateLimit;
use aiworklab::http::server;
use aiworklab::skill::Transition;
use aiworklab::users::{self, AdminCtx};
use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::support::Env;

/// A running appliance with one org, `acme` (also used by `agent_privacy`).
pub(crate) struct Appliance {
    pub(crate) env: Env,
    pub(crate) state: AppState,
    running: Option<server::Running>,
    pub(crate) addr: SocketAddr,
}

impl Appliance {
    pub(crate) async fn start(env: Env, clock: Arc<dyn Clock>) -> Self {
        Self::start_on(env, clock, "127.0.0.1:0".parse().expect("addr")).await
    }

    async fn start_on(mut env: Env, clock: Arc<dyn Clock>, addr: SocketAddr) -> Self {
        let listener = server::bind(addr).expect("bind");
        let addr = listener.local_addr().expect("addr");
        env.raw.server.public_url = format!("http://{addr}");
        env.raw.server.shutdown_grace_secs = 1;
        let state = env.state_with_clock(clock);
        let running = server::start(state.clone(), listener)
            .await
            .expect("server starts");
        Self {
            env,
            state,
            running: Some(running),
            addr,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await.expect("stops");
        }
    }

    pub(crate) fn user(&self, name: &str) -> String {
        let db = self.state.store.org("acme").expect("org");
        users::add(
            db,
            &AdminCtx::operator(),
            name,
            name,
            None,
            false,
            self.state.clock.now(),
        )
        .expect("user")
        .id
    }

    pub(crate) fn code(&self, user_id: &str) -> String {
        let db = self.state.store.org("acme").expect("org");
        let (code, _) = aiworklab::devices::create_pairing_code(
            db,
            user_id,
            &Context::operator(),
            self.state.clock.now(),
        )
        .expect("code");
        code.expose().to_string()
    }

    /// The ids of the deltas the appliance holds for `user_id`.
    pub(crate) fn held(&self, user_id: &str) -> Vec<String> {
        let db = self.state.store.org("acme").expect("org");
        aiworklab::sync::pull(db, user_id, 0, 5000)
            .expect("pull")
            .deltas
            .into_iter()
            .map(|d| d.id)
            .collect()
    }

    /// How many audit entries of `action` there are (by `actor`, when given).
    fn audited(&self, action: &str, actor: Option<&str>) -> i64 {
        let db = self.state.store.org("acme").expect("org");
        db.db
            .read(|c| {
                c.query_row(
                    "SELECT count(*) FROM audit_log WHERE action = ?1 AND (?2 IS NULL OR actor = ?2)",
                    rusqlite::params![action, actor],
                    |r| r.get(0),
                )
                .map_err(aiworklab::store::StoreError::from)
            })
            .expect("audit")
    }
}

fn at(day: u32, minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, day, 9, 0, 0)
        .single()
        .expect("valid")
        + Duration::minutes(minute)
}

fn obs(concept: &str, transition: Transition, when: DateTime<Utc>) -> Observation {
    Observation {
        concept: concept.into(),
        transition,
        at: when,
    }
}

fn some_observations(n: i64) -> Vec<Observation> {
    let concepts = [
        "rust-lifetimes",
        "rust-traits",
        "sql-joins",
        "py-closures-scope",
    ];
    (0..n)
        .map(|i| {
            obs(
                concepts[usize::try_from(i).expect("small") % concepts.len()],
                Transition::Seen,
                at(10, i),
            )
        })
        .collect()
}

pub(crate) fn local(dir: &std::path::Path, name: &str) -> (Home, LocalStore) {
    let home = Home::at(dir.join(name));
    let store = LocalStore::open(&home).expect("store opens");
    (home, store)
}

/// Pairs a new store in `dir/name` for `user_id`.
pub(crate) async fn paired(
    app: &Appliance,
    dir: &std::path::Path,
    name: &str,
    user_id: &str,
) -> (Home, LocalStore) {
    let (home, mut store) = local(dir, name);
    let code = app.code(user_id);
    sync::pair(&mut store, &app.url(), &code, name, None)
        .await
        .expect("pairs");
    (home, store)
}

fn quick() -> SyncOptions {
    SyncOptions {
        max_wait: StdDuration::from_secs(5),
        ..SyncOptions::default()
    }
}

#[tokio::test]
async fn pair_record_sync_and_the_appliance_holds_exactly_the_outbox() {
    let app = Appliance::start(Env::new(&["acme"]), Arc::new(SystemClock)).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let uid = app.user("ada");
    let (_home, mut store) = paired(&app, tmp.path(), "laptop", &uid).await;
    let p = sync::pairing(&store).expect("read").expect("paired");
    assert!(p.server.starts_with("http://127.0.0.1:"), "{}", p.server);
    assert_eq!(p.revoked, None);
    // 1,100 deltas: three pushes (500, 500, 100).
    let mut obs = some_observations(1100);
    obs.push(obs[0].clone());
    assert_eq!(store.record("test", "1", &obs).expect("records"), 1100);
    let queued: Vec<String> = store
        .outbox(usize::MAX)
        .expect("outbox")
        .into_iter()
        .map(|d| d.id)
        .collect();
    let report = sync::sync(&mut store, quick()).await.expect("syncs");
    assert_eq!(
        (report.accepted, report.duplicates, report.queued),
        (1100, 0, 0)
    );
    assert!(
        report.concepts >= 400,
        "the org's catalogue copy was fetched"
    );
    let mut held = app.held(&uid);
    let mut sent = queued.clone();
    held.sort();
    sent.sort();
    assert_eq!(held, sent, "the appliance holds exactly what was queued");
    // Nothing is sent twice: a second sync pushes nothing, pulls nothing new.
    let again = sync::sync(&mut store, quick()).await.expect("syncs");
    assert_eq!((again.accepted, again.duplicates, again.pulled), (0, 0, 0));
    let s = status::status(&store, Utc::now()).expect("status");
    assert!(s.last_sync.is_some() && s.last_error.is_none());
    assert_eq!(s.queued, 0);
    assert_eq!(s.domains["rust"]["seen"], 2);
}

#[tokio::test]
async fn a_bad_code_and_plain_http_to_another_host_are_refused() {
    let app = Appliance::start(Env::new(&["acme"]), Arc::new(SystemClock)).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let (_home, mut store) = local(tmp.path(), "laptop");
    let err = sync::pair(
        &mut store,
        &app.url(),
        "aiwl_pair_notarealcode",
        "laptop",
        None,
    )
    .await
    .expect_err("refused")
    .to_string();
    assert!(
        err.contains("not valid") && err.contains("account page"),
        "{err}"
    );
    for url in ["http://skills.example.com", "http://192.0.2.7:8080"] {
        let err = sync::pair(&mut store, url, "aiwl_pair_x", "laptop", None)
            .await
            .expect_err("refused");
        assert!(matches!(err, AgentError::Config(_)), "{err:?}");
        assert!(err.to_string().contains("https://"), "{err}");
    }
    assert_eq!(sync::pairing(&store).expect("read"), None);
    let err = sync::sync(&mut store, quick())
        .await
        .expect_err("not paired");
    assert!(matches!(err, AgentError::NotPaired), "{err:?}");
    // A second pairing of a paired install is refused.
    let uid = app.user("bo");
    let code = app.code(&uid);
    sync::pair(&mut store, &app.url(), &code, "laptop", None)
        .await
        .expect("pairs");
    let again = sync::pair(&mut store, &app.url(), &app.code(&uid), "laptop", None)
        .await
        .expect_err("already paired");
    assert!(matches!(again, AgentError::AlreadyPaired(_)), "{again:?}");
}

#[tokio::test]
async fn the_queue_survives_a_restart_and_a_stopped_appliance_is_retried() {
    let mut app = Appliance::start(Env::new(&["acme"]), Arc::new(SystemClock)).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let uid = app.user("cy");
    let (home, mut store) = paired(&app, tmp.path(), "laptop", &uid).await;
    store
        .record("t", "1", &some_observations(30))
        .expect("records");
    let addr = app.addr;
    app.stop().await;
    let err = sync::sync(&mut store, quick())
        .await
        .expect_err("unreachable");
    assert!(matches!(err, AgentError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("stay queued"), "{err}");
    drop(store);
    // The kernel restarts: everything is still queued, with the error.
    let mut store = LocalStore::open(&home).expect("reopens");
    assert_eq!(store.outbox_len().expect("len"), 30);
    let s = status::status(&store, Utc::now()).expect("status");
    assert!(
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("cannot reach"))
    );
    // The appliance comes back on the same address.
    let Appliance { env, state, .. } = app;
    drop(state);
    let app = Appliance::start_on(env, Arc::new(SystemClock), addr).await;
    let report = sync::sync(&mut store, quick()).await.expect("syncs");
    assert_eq!(
        (report.accepted, report.duplicates, report.queued),
        (30, 0, 0)
    );
    assert_eq!(app.held(&uid).len(), 30);
}

#[tokio::test]
async fn a_429_is_waited_out_when_short_and_remembered_when_long() {
    let mut env = Env::new(&["acme"]);
    // One sync request per 2 s for the device: the pull after the push
    // gets a 429 with Retry-After.
    env.raw.rate_limits.sync = RawRateLimit::new(1, 2);
    let app = Appliance::start(env, Arc::new(SystemClock)).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let uid = app.user("di");
    let (_h, mut store) = paired(&app, tmp.path(), "laptop", &uid).await;
    store
        .record("t", "1", &some_observations(10))
        .expect("records");
    let started = std::time::Instant::now();
    let report = sync::sync(&mut store, quick())
        .await
        .expect("waits, then syncs");
    assert_eq!(report.accepted, 10);
    assert!(
        started.elapsed() >= StdDuration::from_secs(1),
        "the Retry-After was waited out"
    );

    // A wait longer than the client accepts ends the sync; the deltas stay
    // queued and the next sync does not ask before the wait is over.
    let mut env = Env::new(&["acme"]);
    env.raw.rate_limits.sync = RawRateLimit::new(1, 3600);
    let app = Appliance::start(env, Arc::new(SystemClock)).await;
    let uid = app.user("ed");
    let (_h, mut store) = paired(&app, tmp.path(), "desktop", &uid).await;
    store
        .record("t", "1", &some_observations(600))
        .expect("records");
    let err = sync::sync(&mut store, quick())
        .await
        .expect_err("rate limited");
    let AgentError::RateLimited { retry_after_secs } = err else {
        panic!("{err:?}");
    };
    assert!(retry_after_secs > 5, "{retry_after_secs}");
    // Both batches (500 and 100) were on the wire at once: the one the
    // appliance read first went, the other waits.
    let queued = store.outbox_len().expect("len");
    assert!(queued == 100 || queued == 500, "one batch went: {queued}");
    assert_eq!(app.held(&uid).len() + queued, 600, "nothing lost");
    let err = sync::sync(&mut store, quick())
        .await
        .expect_err("still waiting");
    assert!(matches!(err, AgentError::RateLimited { .. }), "{err:?}");
    assert_eq!(store.outbox_len().expect("len"), queued);
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_and_the_rotated_secret_kept() {
    let clock = Arc::new(ManualClock::new(at(15, 0)));
    let app = Appliance::start(Env::new(&["acme"]), clock.clone()).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let uid = app.user("fa");
    let (home, mut store) = paired(&app, tmp.path(), "laptop", &uid).await;
    for round in 0..3 {
        // The appliance's clock moves past the access token's life; the
        // client only learns it from the 401.
        clock.advance(Duration::minutes(20));
        store
            .record(
                "t",
                &round.to_string(),
                &[obs("rust-traits", Transition::Seen, at(10, round))],
            )
            .expect("records");
        let r = sync::sync(&mut store, quick())
            .await
            .expect("refreshes and syncs");
        assert_eq!(r.accepted, 1, "round {round}");
        // A restart between rounds: the rotated secret was stored.
        drop(store);
        store = LocalStore::open(&home).expect("reopens");
    }
    assert_eq!(app.held(&uid).len(), 3);
    assert_eq!(app.audited("device.refresh_reuse", None), 0);
    let p = sync::pairing(&store).expect("read").expect("paired");
    assert_eq!(p.revoked, None, "never revoked for reuse");
}

#[tokio::test]
async fn two_devices_of_one_engineer_converge() {
    let app = Appliance::start(Env::new(&["acme"]), Arc::new(SystemClock)).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let uid = app.user("gus");
    let (_a, mut a) = paired(&app, tmp.path(), "laptop", &uid).await;
    let (_b, mut b) = paired(&app, tmp.path(), "desktop", &uid).await;
    a.record(
        "t",
        "1",
        &[
            obs("rust-lifetimes", Transition::Seen, at(3, 0)),
            obs("sql-joins", Transition::Explained, at(3, 5)),
        ],
    )
    .expect("a records");
    b.record(
        "t",
        "1",
        &[
            obs("rust-lifetimes", Transition::CheckPassed, at(4, 0)),
            obs("rust-lifetimes", Transition::CheckPassed, at(12, 0)),
            obs("py-closures-scope", Transition::Seen, at(5, 0)),
        ],
    )
    .expect("b records");
    sync::sync(&mut a, quick()).await.expect("a");
    let rb = sync::sync(&mut b, quick()).await.expect("b");
    assert_eq!(rb.pulled, 2, "b pulled a's deltas");
    let ra = sync::sync(&mut a, quick()).await.expect("a again");
    assert_eq!(ra.pulled, 3, "a pulled b's deltas");
    let sa = a.states().expect("a states");
    let sb = b.states().expect("b states");
    assert_eq!(sa, sb, "the same state on both devices");
    assert_eq!(sa.len(), 3);
    let lt = sa
        .iter()
        .find(|r| r.concept == "rust-lifetimes")
        .expect("present");
    assert_eq!(lt.state.level, aiworklab::skill::state::Level::Retained);
    assert_eq!(
        a.outbox_len().expect("a"),
        0,
        "pulled deltas are not sent back"
    );
}

#[tokio::test]
async fn a_revoked_device_stops_with_how_to_pair_again_and_loses_nothing() {
    let app = Appliance::start(Env::new(&["acme"]), Arc::new(SystemClock)).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let uid = app.user("hal");
    let (_h, mut store) = paired(&app, tmp.path(), "laptop", &uid).await;
    let device = sync::pairing(&store)
        .expect("read")
        .expect("paired")
        .device_id;
    let db = app.state.store.org("acme").expect("org");
    aiworklab::devices::revoke(db, &uid, &device, &Context::operator(), Utc::now())
        .expect("revoked");
    store
        .record("t", "1", &some_observations(5))
        .expect("records");
    let err = sync::sync(&mut store, quick()).await.expect_err("revoked");
    assert!(matches!(err, AgentError::Revoked(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("revoked") && msg.contains("aiworklab agent pair --server"),
        "{msg}"
    );
    assert_eq!(store.outbox_len().expect("len"), 5, "nothing lost");
    // It stays stopped without asking the appliance again, and says so.
    let again = sync::sync(&mut store, quick())
        .await
        .expect_err("still revoked");
    assert!(matches!(again, AgentError::Revoked(_)), "{again:?}");
    let s = status::status(&store, Utc::now()).expect("status");
    assert!(status::render(&s).contains("REVOKED"));
    // Paired again, it sends what was queued.
    sync::pair(&mut store, &app.url(), &app.code(&uid), "laptop", None)
        .await
        .expect("pairs again");
    let r = sync::sync(&mut store, quick()).await.expect("syncs");
    assert_eq!(r.accepted, 5);
}

#[tokio::test]
async fn unpair_revokes_the_device_on_the_appliance_and_forgets_it() {
    let app = Appliance::start(Env::new(&["acme"]), Arc::new(SystemClock)).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let uid = app.user("ivy");
    let (_h, mut store) = paired(&app, tmp.path(), "laptop", &uid).await;
    let device = sync::pairing(&store)
        .expect("read")
        .expect("paired")
        .device_id;
    let u = sync::unpair(&mut store).await.expect("unpairs");
    assert_eq!(u.revoked_on_server, Ok(()));
    assert_eq!(sync::pairing(&store).expect("read"), None);
    let db = app.state.store.org("acme").expect("org");
    let listed = aiworklab::devices::list(db, &uid).expect("list");
    assert!(
        listed
            .iter()
            .any(|d| d.id == device && d.revoked_at.is_some())
    );
    assert_eq!(
        app.audited("device.revoke", Some(&format!("device:{device}"))),
        1
    );
    assert!(matches!(
        sync::unpair(&mut store).await,
        Err(AgentError::NotPaired)
    ));

    // With the appliance unreachable the credentials are forgotten anyway,
    // and the engineer told to revoke it on their account page.
    let mut app2 = Appliance::start(Env::new(&["acme"]), Arc::new(SystemClock)).await;
    let uid2 = app2.user("jo");
    let (_h, mut other) = paired(&app2, tmp.path(), "desktop", &uid2).await;
    app2.stop().await;
    let u = sync::unpair(&mut other).await.expect("unpairs offline");
    assert!(u.revoked_on_server.is_err());
    assert_eq!(sync::pairing(&other).expect("read"), None);
}

/// The store file alone, as a power loss that took the unsynced end of
/// the write-ahead log would leave it: copied with its key and opened.
fn store_file_alone(home: &Home, at: &std::path::Path) -> LocalStore {
    let copy = Home::at(at);
    std::fs::create_dir_all(at).expect("dir");
    std::fs::copy(home.store_path(), copy.store_path()).expect("store copied");
    std::fs::copy(home.key_path(), copy.key_path()).expect("key copied");
    LocalStore::open(&copy).expect("the copy opens")
}

/// A hook commits without a sync; a delta sent and then rolled back by a
/// power loss would be recorded again under a new id. So `agent sync`
/// makes what it sends durable first: the deltas it sent are in the
/// store file itself, not only in the unsynced log.
#[tokio::test]
async fn sync_sends_only_what_is_durable_in_the_store_file() {
    let app = Appliance::start(Env::new(&["acme"]), Arc::new(SystemClock)).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let uid = app.user("ada");
    let (home, mut store) = paired(&app, tmp.path(), "laptop", &uid).await;
    let mut hook = LocalStore::open_for_hook(&home).expect("hook opens");
    assert_eq!(
        hook.record("claude:s.jsonl", "900", &some_observations(3))
            .expect("records"),
        3
    );
    hook.release().expect("closes");
    let before = store_file_alone(&home, &tmp.path().join("before"));
    assert_eq!(before.outbox_len().expect("len"), 0, "only in the log");
    drop(before);
    let report = sync::sync(&mut store, quick()).await.expect("syncs");
    assert_eq!(report.accepted, 3);
    let mut held = app.held(&uid);
    held.sort();
    let after = store_file_alone(&home, &tmp.path().join("after"));
    let mut durable: Vec<String> = after
        .outbox(10)
        .expect("outbox")
        .into_iter()
        .map(|d| d.id)
        .collect();
    durable.sort();
    assert_eq!(durable, held, "every delta sent was in the store file");
    assert_eq!(
        after.cursor("claude:s.jsonl").expect("cursor").as_deref(),
        Some("900"),
        "with the cursor recorded with it"
    );
}

/// P1 from the device side: what the kernel queues to send is the wire
/// format and nothing else, and the appliance's own parser takes it.
#[tokio::test]
async fn the_outbox_holds_only_wire_fields() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (_h, mut store) = local(tmp.path(), "laptop");
    store
        .record(
            "claude:/home/me/secret-project/session.jsonl",
            "4096",
            &[
                obs("rust-lifetimes", Transition::Seen, at(10, 0)),
                obs("rust-lifetimes", Transition::CheckPassed, at(10, 1)),
                obs("sql-joins", Transition::CheckFailed, at(10, 2)),
            ],
        )
        .expect("records");
    let batches = status::outbox(&store).expect("outbox");
    let body = serde_json::to_value(&batches[0]).expect("json");
    let top: Vec<&String> = body.as_object().expect("object").keys().collect();
    assert_eq!(top, ["deltas"]);
    for d in body["deltas"].as_array().expect("array") {
        for k in d.as_object().expect("object").keys() {
            assert!(
                ["id", "concept", "transition", "at", "grade"].contains(&k.as_str()),
                "{k}"
            );
        }
    }
    let text = body.to_string();
    assert!(
        !text.contains("secret-project") && !text.contains("4096"),
        "{text}"
    );
    let cat = aiworklab::skill::Catalogue::builtin().expect("catalogue");
    let known = aiworklab::catalogue::KnownIds::shipped(&cat);
    let parsed = aiworklab::sync::wire::parse_push(text.as_bytes(), &known, Utc::now())
        .expect("the appliance's parser takes the outbox as it is");
    assert_eq!(parsed.len(), 3);
    assert_eq!(parsed[1].grade, Some(3));
}

/// `aiworklab agent ARGS` with the kernel in `home` and, beside it, a
/// scratch user home (`user`, also the current directory) for the
/// harnesses' settings.
pub(crate) fn agent_cli(home: &std::path::Path, args: &[&str]) -> std::process::Output {
    agent_command(home, args).output().expect("runs")
}

/// `aiworklab agent ARGS` for the kernel at `home`, as one engineer would
/// run it: a user home beside it, no keychain, no harness or server
/// configuration from the environment of the tests.
pub(crate) fn agent_command(home: &std::path::Path, args: &[&str]) -> std::process::Command {
    let user = home.with_file_name("user");
    std::fs::create_dir_all(&user).expect("user home");
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_aiworklab"));
    c.arg("agent")
        .args(args)
        .current_dir(&user)
        .env("AIWORKLAB_AGENT_HOME", home)
        .env("AIWORKLAB_AGENT_KEYCHAIN", "off")
        .env("HOME", &user)
        .env_remove("CLAUDE_CONFIG_DIR")
        .env_remove("CODEX_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("AIWORKLAB_CONFIG");
    c
}

#[tokio::test]
async fn the_command_line_pairs_syncs_shows_and_unpairs_without_a_server_configuration() {
    let app = Appliance::start(Env::new(&["acme"]), Arc::new(SystemClock)).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("agent");
    let uid = app.user("kai");
    let code = app.code(&uid);
    let url = app.url();
    let h = home.clone();
    let (pair, status_json, outbox, doctor, unpair, doctor_after) =
        tokio::task::spawn_blocking(move || {
            let pair = agent_cli(
                &h,
                &[
                    "pair", "--server", &url, "--code", &code, "--name", "ci box",
                ],
            );
            let status_json = agent_cli(&h, &["status", "--json"]);
            let outbox = agent_cli(&h, &["outbox", "--json"]);
            let install = agent_cli(&h, &["install", "--harness", "claude-code"]);
            assert!(install.status.success(), "{install:?}");
            let doctor = agent_cli(&h, &["doctor"]);
            let unpair = agent_cli(&h, &["unpair"]);
            let doctor_after = agent_cli(&h, &["doctor"]);
            (pair, status_json, outbox, doctor, unpair, doctor_after)
        })
        .await
        .expect("joins");
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(pair.status.success(), "{}", text(&pair));
    assert!(
        text(&pair).contains("Paired with") && text(&pair).contains("First sync"),
        "{}",
        text(&pair)
    );
    assert!(
        text(&pair).contains("kernel.key"),
        "the one-time key file warning: {}",
        text(&pair)
    );
    let s: serde_json::Value = serde_json::from_slice(&status_json.stdout).expect("status json");
    assert_eq!(s["pairing"]["device_name"], "ci box");
    assert_eq!(s["queued"], 0);
    let o: serde_json::Value = serde_json::from_slice(&outbox.stdout).expect("outbox json");
    assert_eq!(o, serde_json::json!([]));
    assert!(doctor.status.success(), "{}", text(&doctor));
    for check in [
        "store",
        "key",
        "ingest",
        "paired",
        "server",
        "token",
        "hook claude-code",
    ] {
        assert!(
            text(&doctor).contains(&format!("[ ok ] {check}")),
            "{check}: {}",
            text(&doctor)
        );
    }
    assert!(unpair.status.success(), "{}", text(&unpair));
    assert!(
        text(&unpair).contains("revoked the device"),
        "{}",
        text(&unpair)
    );
    assert!(!doctor_after.status.success());
    assert!(
        text(&doctor_after).contains("fix: aiworklab agent pair"),
        "{}",
        text(&doctor_after)
    );
    assert_eq!(app.audited("device.pair", Some(&format!("user:{uid}"))), 1);
}

/// Adds the org's own concept `slug` (domain `x-money`); returns the org.
fn org_concept<'a>(app: &'a Appliance, slug: &str) -> &'a aiworklab::store::OrgDb {
    let db = app.state.store.org("acme").expect("org");
    let concept = aiworklab::skill::Concept {
        slug: slug.into(),
        title: format!("Org concept {slug}"),
        domain: "x-money".into(),
        summary: "One of the org's own concepts".into(),
        prerequisites: vec![],
        related: vec![],
        matchers: aiworklab::skill::catalogue::Matchers::default(),
    };
    aiworklab::catalogue::custom::add(
        db,
        &app.state.catalogue,
        &AdminCtx::operator(),
        concept,
        Utc::now(),
    )
    .expect("org concept");
    db
}

#[tokio::test]
async fn a_delta_the_appliance_refuses_for_good_is_set_aside_and_the_rest_sent() {
    let app = Appliance::start(Env::new(&["acme"]), Arc::new(SystemClock)).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let uid = app.user("lu");
    let db = org_concept(&app, "x-ledger");
    let (_h, mut store) = paired(&app, tmp.path(), "laptop", &uid).await;
    assert!(!store.catalogue().expect("shipped").contains("x-ledger"));
    sync::sync(&mut store, quick()).await.expect("first sync");
    assert!(
        store.catalogue().expect("copy").contains("x-ledger"),
        "fetched at the first sync"
    );
    // Recorded for an hour from now; the org retires the concept meanwhile.
    let later = Utc::now() + Duration::hours(1);
    store
        .record(
            "t",
            "1",
            &[
                obs("rust-traits", Transition::Seen, later),
                obs("x-ledger", Transition::Seen, later),
                obs("sql-joins", Transition::Seen, later),
            ],
        )
        .expect("records");
    aiworklab::catalogue::custom::retire(db, &AdminCtx::operator(), "x-ledger", Utc::now())
        .expect("retired");
    let r = sync::sync(&mut store, quick()).await.expect("syncs");
    assert_eq!((r.accepted, r.refused, r.queued), (2, 1, 0));
    let s = status::status(&store, Utc::now()).expect("status");
    assert_eq!(s.refused, 1);
    assert!(
        !store.catalogue().expect("copy").contains("x-ledger"),
        "retired concepts are not tagged"
    );
    assert_eq!(app.held(&uid).len(), 2);
}

#[tokio::test]
async fn a_refused_delta_in_one_batch_on_the_wire_leaves_the_others_sent_once() {
    let app = Appliance::start(Env::new(&["acme"]), Arc::new(SystemClock)).await;
    let tmp = tempfile::tempdir().expect("tmp");
    let uid = app.user("mo");
    let db = org_concept(&app, "x-audit");
    let (_h, mut store) = paired(&app, tmp.path(), "laptop", &uid).await;
    sync::sync(&mut store, quick()).await.expect("first sync");
    // 1,200 deltas from an hour from now, the fourth about the concept
    // the org retires meanwhile: the first batch is refused while the
    // second is on the wire.
    let later = Utc::now() + Duration::hours(1);
    let facts: Vec<Observation> = some_observations(1200)
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            let concept = if i == 3 {
                "x-audit"
            } else {
                o.concept.as_str()
            };
            obs(
                concept,
                Transition::Seen,
                later + Duration::seconds(i as i64),
            )
        })
        .collect();
    assert_eq!(store.record("t", "1", &facts).expect("records"), 1200);
    aiworklab::catalogue::custom::retire(db, &AdminCtx::operator(), "x-audit", Utc::now())
        .expect("retired");
    let r = sync::sync(&mut store, quick()).await.expect("syncs");
    assert_eq!(
        (r.accepted, r.duplicates, r.refused, r.queued),
        (1199, 0, 1, 0),
        "each delta sent once, the refused one set aside"
    );
    assert_eq!(app.held(&uid).len(), 1199);
}

/// `agent doctor` with `codex` on PATH answering `--version` as `version`
/// (a script standing in for the Codex CLI), with the scratch user home of
/// `agent_cli` and `project` beside it as the current directory.
fn doctor_with_codex(home: &std::path::Path, version: Option<&str>) -> String {
    let project = home.with_file_name("project");
    let bin = home.with_file_name("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let codex = bin.join("codex");
    let _ = std::fs::remove_file(&codex);
    if let Some(v) = version {
        std::fs::write(&codex, format!("#!/bin/sh\necho 'codex-cli {v}'\n")).expect("script");
        std::fs::set_permissions(&codex, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aiworklab"))
        .args(["agent", "doctor"])
        .current_dir(&project)
        .env("AIWORKLAB_AGENT_HOME", home)
        .env("AIWORKLAB_AGENT_KEYCHAIN", "off")
        .env("HOME", home.with_file_name("user"))
        .env("PATH", &bin)
        .env_remove("CLAUDE_CONFIG_DIR")
        .env_remove("CODEX_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("AIWORKLAB_CONFIG")
        .output()
        .expect("runs");
    assert!(!out.status.success(), "not paired: doctor fails");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn doctor_checks_each_harness_hook_and_says_how_to_fix_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("agent");
    let user = tmp.path().join("user");
    let line = |out: &str, start: &str| -> String {
        let mut lines = out.lines();
        let Some(l) = lines.by_ref().find(|l| l.starts_with(start)) else {
            panic!("no line `{start}` in:\n{out}");
        };
        let fix = lines.next().filter(|f| f.trim_start().starts_with("fix:"));
        format!("{l}\n{}", fix.unwrap_or_default())
    };

    // Nothing installed: each harness says so, and that none has it fails.
    for d in ["user", "project"] {
        std::fs::create_dir_all(tmp.path().join(d)).expect("mkdir");
    }
    let out = doctor_with_codex(&home, None);
    for h in ["claude-code", "codex", "opencode"] {
        let l = line(&out, &format!("[ ok ] hook {h}: not installed"));
        assert!(l.contains(&format!("agent install --harness {h}")), "{l}");
    }
    let l = line(&out, "[FAIL] hooks:");
    assert!(
        l.contains("fix: aiworklab agent install --harness claude-code"),
        "{l}"
    );

    // Claude Code for the user, Codex's hooks.json in the project.
    let install = agent_cli(&home, &["install", "--harness", "claude-code"]);
    assert!(install.status.success(), "{install:?}");
    let install = std::process::Command::new(env!("CARGO_BIN_EXE_aiworklab"))
        .args([
            "agent",
            "install",
            "--harness",
            "codex",
            "--scope",
            "project",
        ])
        .current_dir(tmp.path().join("project"))
        .env("HOME", &user)
        .env_remove("CODEX_HOME")
        .output()
        .expect("runs");
    assert!(install.status.success(), "{install:?}");
    let out = doctor_with_codex(&home, Some("0.128.0"));
    let l = line(&out, "[ ok ] hook claude-code:");
    assert!(
        l.contains(".claude/settings.json (user) runs")
            && l.contains(env!("CARGO_BIN_EXE_aiworklab")),
        "{l}"
    );
    let l = line(&out, "[ ok ] hook codex:");
    assert!(l.contains("project/.codex/hooks.json (project)"), "{l}");
    assert!(line(&out, "[ ok ] codex version:").contains("codex-cli 0.128.0"));
    assert!(!out.contains("[FAIL] hooks:"), "{out}");
    assert!(!out.contains("[FAIL] hook "), "{out}");

    // A Codex without hooks: the fix is notify mode.
    let out = doctor_with_codex(&home, Some("0.120.3"));
    let l = line(&out, "[FAIL] codex version:");
    assert!(
        l.contains("0.120.3 has no hooks") && l.contains("--codex-mode notify"),
        "{l}"
    );

    // The binary a hook runs is gone (the kernel moved): named, with the fix.
    let settings = user.join(".claude/settings.json");
    let text = std::fs::read_to_string(&settings).expect("settings");
    std::fs::write(
        &settings,
        text.replace(env!("CARGO_BIN_EXE_aiworklab"), "/opt/gone/aiworklab"),
    )
    .expect("write");
    let out = doctor_with_codex(&home, None);
    let l = line(&out, "[FAIL] hook claude-code:");
    assert!(
        l.contains("runs /opt/gone/aiworklab, which does not exist")
            && l.contains("fix: aiworklab agent install --harness claude-code"),
        "{l}"
    );
    assert!(line(&out, "[ ok ] codex version:").contains("not on PATH"));
    // The fix fixes it.
    let install = agent_cli(&home, &["install", "--harness", "claude-code"]);
    assert!(install.status.success(), "{install:?}");
    let out = doctor_with_codex(&home, None);
    assert!(out.contains("[ ok ] hook claude-code:"), "{out}");

    // A hook missing on one event, and an OpenCode plugin edited by hand.
    let text = std::fs::read_to_string(&settings).expect("settings");
    let mut v: serde_json::Value = serde_json::from_str(&text).expect("json");
    v["hooks"].as_object_mut().expect("hooks").remove("Stop");
    std::fs::write(&settings, v.to_string()).expect("write");
    let install = agent_cli(&home, &["install", "--harness", "opencode"]);
    assert!(install.status.success(), "{install:?}");
    let plugin = user.join(".config/opencode/plugin/aiworklab.js");
    let mut js = std::fs::read_to_string(&plugin).expect("plugin");
    js.push_str("// edited\n");
    std::fs::write(&plugin, js).expect("write");
    let out = doctor_with_codex(&home, None);
    assert!(line(&out, "[FAIL] hook claude-code:").contains("no hook on Stop"));
    let l = line(&out, "[FAIL] hook opencode:");
    assert!(
        l.contains("not the one this version writes")
            && l.contains("fix: aiworklab agent install --harness opencode"),
        "{l}"
    );

    // Settings that are not JSON: named, not a crash.
    std::fs::write(&settings, "{not json").expect("write");
    let out = doctor_with_codex(&home, None);
    let l = line(&out, "[FAIL] hook claude-code:");
    assert!(l.contains("is not valid JSON"), "{l}");
}
