//! Backups (P23): round trip under concurrent writes onto another master
//! key, no plaintext on disk, tamper/truncation/wrong identity/newer format
//! refused, prune, restore safety, drill, schedule.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use age::secrecy::ExposeSecret;
use aiworklab::audit::Context;
use aiworklab::backup::signing::{self, OpenKeys, SigningKey};
use aiworklab::backup::{self, BackupError, archive, drill, restore};
use aiworklab::clock::{Clock, SystemClock};
use aiworklab::config;
use aiworklab::http::server::start_on_loopback;
use aiworklab::store::{OpenMode, Store, StoreError};
use aiworklab::tokens::{self, TokenKind};
use aiworklab::users::AdminCtx;
use chrono::{Duration, TimeZone, Utc};

use crate::support::{Env, contains, files_below};

/// An installation with backups configured (recipient and signing key),
/// and the keys that open its archives; the path is the identity file.
pub(crate) fn env_with_backups(orgs: &[&str]) -> (Env, OpenKeys, PathBuf) {
    let mut env = Env::new(orgs);
    let identity = age::x25519::Identity::generate();
    env.raw.backup.recipients = vec![identity.to_public().to_string()];
    let key_file = env.dir.path().join("backup.key");
    aiworklab::fsperm::create_private_file(&key_file)
        .and_then(|mut f| writeln!(f, "{}", identity.to_string().expose_secret()))
        .expect("write identity");
    let signing_file = env.dir.path().join("backup-signing.key");
    SigningKey::generate()
        .expect("rng")
        .write_new(&signing_file, "test")
        .expect("write signing key");
    env.raw.backup.signing_key_file = signing_file.display().to_string();
    let keys = open_keys(&env, &key_file);
    (env, keys, key_file)
}

/// The keys the installation itself trusts, with the identity in `key_file`.
pub(crate) fn open_keys(env: &Env, key_file: &Path) -> OpenKeys {
    OpenKeys {
        identities: archive::read_identities(key_file).expect("identity file parses"),
        trusted: signing::trusted(&env.settings().backup, &[]).expect("trusted keys"),
        accept_unsigned_format_2: false,
    }
}

pub(crate) fn backup_now(env: &Env, store: &Store) -> backup::Created {
    let s = env.settings();
    backup::create(
        store,
        &s.backup.recipients,
        &SigningKey::load(&s.backup.signing_key_file).expect("signing key"),
        None,
        &s.backup.dir,
        &Context::operator(),
        SystemClock.now(),
    )
    .expect("backup")
}

pub(crate) fn fresh_target(dir: &Path) -> restore::Target {
    let data = dir.join("restored");
    restore::Target {
        master_key_file: data.join("master.key"),
        data_dir: data,
        only_org: None,
        force: false,
    }
}

fn token_names(store: &Store, org: &str) -> Vec<String> {
    let mut v: Vec<String> = tokens::list(store.org(org).expect("org"))
        .expect("list")
        .into_iter()
        .map(|t| t.name)
        .collect();
    v.sort();
    v
}

#[test]
fn round_trip_under_concurrent_writes_onto_another_master_key() {
    let (env, ids, _) = env_with_backups(&["a", "b"]);
    let store = Arc::new(env.store());
    for i in 0..50 {
        for org in ["a", "b"] {
            tokens::create(
                store.org(org).expect("org"),
                TokenKind::Scim,
                &format!("{org}-{i}"),
                None,
                &AdminCtx::operator(),
                SystemClock.now(),
            )
            .expect("token");
        }
    }
    // A writer keeps adding rows while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                tokens::create(
                    store.org("a").expect("org"),
                    TokenKind::Mcp,
                    &format!("during-{n}"),
                    None,
                    &AdminCtx::operator(),
                    SystemClock.now(),
                )
                .expect("concurrent write");
                n += 1;
            }
            n
        })
    };
    let created = backup_now(&env, &store);
    stop.store(true, Ordering::Relaxed);
    let written_during = writer.join().expect("writer");
    assert!(written_during > 0);

    let target = fresh_target(env.dir.path());
    let r = restore::restore(
        &created.path,
        &ids,
        &target,
        &Context::operator(),
        SystemClock.now(),
    )
    .expect("restore");
    assert!(
        r.created_master_key,
        "the target has its own, new master key"
    );
    assert_ne!(
        std::fs::read(&target.master_key_file).expect("key"),
        std::fs::read(env.settings().keys.master_key_file).expect("key")
    );
    let mut raw = env.raw.clone();
    raw.storage.data_dir = target.data_dir.display().to_string();
    let restored = Store::open(
        &config::from_raw(&raw).expect("valid"),
        OpenMode::Existing,
        &SystemClock,
    )
    .expect("restored store opens with the new key");
    // Every row of the snapshot is back: all 50 of b, and for a exactly
    // the rows the manifest counted (a prefix of what the writer added).
    assert_eq!(token_names(&restored, "b"), token_names(&store, "b"));
    let manifest_rows = r
        .manifest
        .files
        .iter()
        .find(|f| f.path == "orgs/a.db")
        .expect("a")
        .contents
        .rows["api_tokens"];
    let restored_a = token_names(&restored, "a");
    assert_eq!(restored_a.len() as i64, manifest_rows);
    assert!(restored_a.len() >= 50);
    let live_a = token_names(&store, "a");
    assert!(
        restored_a.iter().all(|n| live_a.contains(n)),
        "a restored row that never existed"
    );
}

/// Scans `dirs` over and over until `stop`, failing on plaintext.
fn watch_for_plaintext(
    dirs: Vec<PathBuf>,
    marker: &'static [u8],
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut scans = 0;
        loop {
            let done = stop.load(Ordering::Relaxed);
            for d in &dirs {
                if !d.exists() {
                    continue;
                }
                for f in files_below_lossy(d) {
                    if let Ok(bytes) = std::fs::read(&f) {
                        assert!(
                            !contains(&bytes, marker),
                            "marker in clear in {}",
                            f.display()
                        );
                        assert!(
                            !contains(&bytes, b"SQLite format 3"),
                            "plaintext database {}",
                            f.display()
                        );
                    }
                }
            }
            scans += 1;
            if done {
                return scans;
            }
        }
    })
}

/// Like `files_below`, but files may vanish while we look.
fn files_below_lossy(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn no_plaintext_database_or_archive_touches_the_disk() {
    const MARKER: &[u8] = b"PLAINTEXT-MARKER-4b1d";
    let (env, ids, _) = env_with_backups(&["acme"]);
    let store = env.store();
    let org = store.org("acme").expect("org");
    for i in 0..200 {
        tokens::create(
            org,
            TokenKind::Scim,
            &format!("PLAINTEXT-MARKER-4b1d-{i}"),
            None,
            &AdminCtx::operator(),
            SystemClock.now(),
        )
        .expect("token");
    }
    let scratch = env.dir.path().join("scratch");
    std::fs::create_dir(&scratch).expect("mkdir");
    let target = fresh_target(env.dir.path());
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_for_plaintext(
        vec![env.data_dir(), scratch.clone(), target.data_dir.clone()],
        MARKER,
        Arc::clone(&stop),
    );
    let created = backup_now(&env, &store);
    // The archive itself is an age file: no tar header, manifest or key in clear.
    let archive_bytes = std::fs::read(&created.path).expect("read archive");
    assert!(
        archive_bytes.starts_with(b"age-encryption.org/v1\n"),
        "not an age file"
    );
    for clear in [&b"format.json"[..], b"manifest.json", b"ustar", b"db/orgs/"] {
        assert!(
            !contains(&archive_bytes, clear),
            "archive shows {:?} in clear",
            String::from_utf8_lossy(clear)
        );
    }
    restore::verify(&created.path, &ids, &scratch).expect("verify");
    restore::restore(
        &created.path,
        &ids,
        &target,
        &Context::operator(),
        SystemClock.now(),
    )
    .expect("restore");
    stop.store(true, Ordering::Relaxed);
    let scans = watcher.join().expect("no plaintext seen while running");
    assert!(scans >= 2);
    for f in files_below(env.dir.path()) {
        let bytes = std::fs::read(&f).expect("read");
        assert!(
            !contains(&bytes, MARKER),
            "marker in clear in {}",
            f.display()
        );
        assert!(
            !contains(&bytes, b"SQLite format 3"),
            "plaintext database {}",
            f.display()
        );
    }
    assert!(files_below(&scratch).is_empty(), "verify left files behind");
    let leftovers: Vec<_> = std::fs::read_dir(&target.data_dir)
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".restore-"))
        .collect();
    assert!(leftovers.is_empty(), "restore left its staging directory");
}

pub(crate) fn corrupt(path: &Path, f: impl FnOnce(&mut Vec<u8>)) -> PathBuf {
    let mut bytes = std::fs::read(path).expect("read");
    f(&mut bytes);
    let out = path.with_file_name("aiworklab-backup-20200101T000000Z.age");
    std::fs::write(&out, bytes).expect("write");
    out
}

#[test]
fn tampered_truncated_and_foreign_archives_are_refused_and_nothing_is_restored() {
    let (env, ids, _) = env_with_backups(&["acme"]);
    let store = env.store();
    tokens::create(
        store.org("acme").expect("org"),
        TokenKind::Scim,
        "t",
        None,
        &AdminCtx::operator(),
        SystemClock.now(),
    )
    .expect("token");
    let created = backup_now(&env, &store);
    let scratch = env.dir.path().join("scratch");
    std::fs::create_dir(&scratch).expect("mkdir");
    let len = std::fs::metadata(&created.path).expect("meta").len() as usize;

    let tampered = corrupt(&created.path, |b| b[len / 2] ^= 0x01);
    let err = restore::verify(&tampered, &ids, &scratch).expect_err("tamper detected");
    assert!(matches!(err, BackupError::Damaged(_)), "{err:?}");

    let truncated = corrupt(&created.path, |b| b.truncate(len - 100));
    let err = restore::verify(&truncated, &ids, &scratch).expect_err("truncation detected");
    assert!(matches!(err, BackupError::Damaged(_)), "{err:?}");
    let target = fresh_target(env.dir.path());
    let err = restore::restore(
        &truncated,
        &ids,
        &target,
        &Context::operator(),
        SystemClock.now(),
    )
    .expect_err("refused");
    assert!(matches!(err, BackupError::Damaged(_)), "{err:?}");
    assert!(
        !target.data_dir.join("system.db").exists(),
        "a truncated archive restored something"
    );

    let empty = corrupt(&created.path, Vec::clear);
    assert!(matches!(
        restore::verify(&empty, &ids, &scratch),
        Err(BackupError::NotAnArchive(_))
    ));
    let text = corrupt(&created.path, |b| *b = b"just some text file\n".to_vec());
    assert!(matches!(
        restore::verify(&text, &ids, &scratch),
        Err(BackupError::NotAnArchive(_))
    ));

    let other = OpenKeys {
        identities: vec![Box::new(age::x25519::Identity::generate())],
        trusted: ids.trusted.clone(),
        accept_unsigned_format_2: false,
    };
    let err = restore::verify(&created.path, &other, &scratch).expect_err("wrong identity");
    assert!(matches!(err, BackupError::WrongIdentity), "{err:?}");
    assert!(err.fix().contains("backup.recipients"), "{}", err.fix());
    assert!(
        files_below(&scratch).is_empty(),
        "failed runs left files behind"
    );
}

#[test]
fn an_archive_of_a_newer_format_is_refused_before_anything_is_written() {
    let (env, ids, _) = env_with_backups(&["acme"]);
    let s = env.settings();
    let path = env.dir.path().join("aiworklab-backup-20300101T000000Z.age");
    let out = std::fs::File::create(&path).expect("create");
    let enc = age::Encryptor::with_recipients(
        s.backup.recipients.iter().map(|r| r as &dyn age::Recipient),
    )
    .expect("encryptor");
    let mut stream = enc.wrap_output(out).expect("wrap");
    {
        let mut tar = tar::Builder::new(&mut stream);
        let body = br#"{"format": 99, "appliance_version": "9.0.0"}"#;
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o600);
        tar.append_data(&mut h, "format.json", &body[..])
            .expect("append");
        tar.finish().expect("finish tar");
    }
    stream.finish().expect("finish age").flush().expect("flush");
    let target = fresh_target(env.dir.path());
    let err = restore::restore(
        &path,
        &ids,
        &target,
        &Context::operator(),
        SystemClock.now(),
    )
    .expect_err("refused");
    match &err {
        BackupError::NewerFormat { found, writer, .. } => {
            assert_eq!(*found, 99);
            assert!(err.fix().contains(writer.as_str()));
        }
        other => panic!("{other:?}"),
    }
    assert!(!target.data_dir.join("system.db").exists());
}

#[test]
fn missing_recipients_is_a_clear_error_and_writes_nothing() {
    let env = Env::new(&["acme"]);
    let store = env.store();
    let s = env.settings();
    let err = backup::create(
        &store,
        &[],
        &SigningKey::generate().expect("rng"),
        None,
        &s.backup.dir,
        &Context::operator(),
        SystemClock.now(),
    )
    .expect_err("refused");
    assert!(matches!(err, BackupError::NoRecipients));
    assert!(err.fix().contains("backup.recipients"));
    assert!(!s.backup.dir.exists() || files_below(&s.backup.dir).is_empty());
    let mut raw = env.raw.clone();
    raw.backup.recipients = vec!["AGE-SECRET-KEY-1QQQQ".into()];
    let e = config::from_raw(&raw).expect_err("a secret key is not a recipient");
    assert!(e.for_key("backup.recipients.0").is_some(), "{e}");
}

/// Runs the binary with its file size limited to `kib` KiB, the way a disk
/// that fills up mid-write looks to it: writes past the limit fail (EFBIG;
/// SIGXFSZ is ignored, as it is for a process that handles the error).
fn run_with_file_limit(kib: u32, args: &[&str]) -> std::process::Output {
    let script = format!("trap '' XFSZ; ulimit -f {}; exec \"$0\" \"$@\"", kib * 2);
    let mut c = std::process::Command::new("sh");
    c.arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_aiworklab"))
        .args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("AIWORKLAB_") {
            c.env_remove(k);
        }
    }
    c.output().expect("the binary runs")
}

#[test]
fn a_write_failure_mid_backup_or_restore_fails_clearly_and_leaves_nothing_behind() {
    let (env, ids, key_file) = env_with_backups(&["acme"]);
    let store = env.store();
    for i in 0..200 {
        tokens::create(
            store.org("acme").expect("org"),
            TokenKind::Scim,
            &format!("token {i}"),
            None,
            &AdminCtx::operator(),
            SystemClock.now(),
        )
        .expect("token");
    }
    let good = backup_now(&env, &store);
    let s = env.settings();
    drop(store);
    let config = env.dir.path().join("aiworklab.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = {:?}\n[backup]\nrecipients = [{:?}]\ndir = {:?}\nsigning_key_file = {:?}\n[[orgs]]\nslug = \"acme\"\nname = \"Acme\"\n",
            env.data_dir().display().to_string(),
            env.raw.backup.recipients[0],
            s.backup.dir.display().to_string(),
            env.raw.backup.signing_key_file,
        ),
    )
    .expect("config");
    let config = config.display().to_string();
    // The databases are well over the limit; SQLite's shared-memory file
    // (32 KiB) is not. (Their pages may still be in the WAL: the writer
    // checkpoints every 4,000 pages.)
    let held: u64 = ["orgs/acme.db", "orgs/acme.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(env.data_dir().join(f)).ok())
        .map(|m| m.len())
        .sum();
    assert!(held > 128 * 1024, "{held}");

    let out_dir = env.dir.path().join("out");
    let out = run_with_file_limit(
        64,
        &[
            "backup",
            "create",
            "--config",
            &config,
            "--to",
            &out_dir.display().to_string(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot write") && stderr.contains(".partial"),
        "names the file: {stderr}"
    );
    assert!(stderr.contains("too large"), "gives the cause: {stderr}");
    assert!(stderr.contains("has room"), "says what to do: {stderr}");
    assert!(
        files_below(&out_dir).is_empty(),
        "left behind: {:?}",
        files_below(&out_dir)
    );

    let target = env.dir.path().join("restored");
    let out = run_with_file_limit(
        64,
        &[
            "restore",
            &good.path.display().to_string(),
            "--identity",
            &key_file.display().to_string(),
            "--config",
            &config,
            "--data-dir",
            &target.display().to_string(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot write") && stderr.contains("acme.db"),
        "names the file, not the archive, as the cause: {stderr}"
    );
    assert!(!target.exists(), "left behind: {:?}", files_below(&target));
    // The archive itself is untouched and still restores.
    restore::verify(&good.path, &ids, &env.dir.path().join("scratch")).expect("still good");
}

#[test]
fn prune_keeps_exactly_the_archives_within_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = Utc
        .with_ymd_and_hms(2026, 6, 30, 3, 0, 0)
        .single()
        .expect("valid");
    let mut expect_kept = Vec::new();
    for days in [0, 1, 29, 30, 31, 90] {
        let t = now - Duration::days(days) + Duration::seconds(if days == 30 { 1 } else { 0 });
        let name = format!("aiworklab-backup-{}.age", t.format("%Y%m%dT%H%M%SZ"));
        std::fs::write(dir.path().join(&name), b"x").expect("write");
        if days <= 30 {
            expect_kept.push(name);
        }
    }
    std::fs::write(dir.path().join("unrelated.txt"), b"keep me").expect("write");
    let stale = format!(
        ".aiworklab-backup-{}.age.partial",
        (now - Duration::days(3)).format("%Y%m%dT%H%M%SZ")
    );
    std::fs::write(dir.path().join(&stale), b"x").expect("write");
    let fresh = format!(
        ".aiworklab-backup-{}.age.partial",
        now.format("%Y%m%dT%H%M%SZ")
    );
    std::fs::write(dir.path().join(&fresh), b"x").expect("write");

    let removed = backup::prune(dir.path(), 30, now).expect("prune");
    assert_eq!(removed.len(), 3, "{removed:?}");
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let mut want = expect_kept;
    want.push("unrelated.txt".into());
    want.push(fresh);
    want.sort();
    assert_eq!(left, want);
}

#[test]
fn restore_refuses_a_live_or_populated_data_dir_and_force_replaces_atomically() {
    let (env, ids, _) = env_with_backups(&["acme"]);
    let org = "acme";
    let created;
    {
        let store = env.store(); // serve's mode: holds the data-dir lock
        tokens::create(
            store.org(org).expect("org"),
            TokenKind::Scim,
            "in-backup",
            None,
            &AdminCtx::operator(),
            SystemClock.now(),
        )
        .expect("token");
        created = backup_now(&env, &store);
        let live = restore::Target {
            data_dir: env.data_dir(),
            master_key_file: env.settings().keys.master_key_file,
            only_org: None,
            force: true,
        };
        let err = restore::restore(
            &created.path,
            &ids,
            &live,
            &Context::operator(),
            SystemClock.now(),
        )
        .expect_err("live");
        assert!(matches!(err, BackupError::Locked(_)), "{err:?}");
        tokens::create(
            store.org(org).expect("org"),
            TokenKind::Scim,
            "after-backup",
            None,
            &AdminCtx::operator(),
            SystemClock.now(),
        )
        .expect("token");
    }
    let key_before = std::fs::read(env.settings().keys.master_key_file).expect("key");
    let mut target = restore::Target {
        data_dir: env.data_dir(),
        master_key_file: env.settings().keys.master_key_file,
        only_org: None,
        force: false,
    };
    let err = restore::restore(
        &created.path,
        &ids,
        &target,
        &Context::operator(),
        SystemClock.now(),
    )
    .expect_err("populated");
    assert!(matches!(err, BackupError::Exists(_)), "{err:?}");

    target.force = true;
    restore::restore(
        &created.path,
        &ids,
        &target,
        &Context::operator(),
        SystemClock.now(),
    )
    .expect("forced restore");
    assert_eq!(
        std::fs::read(env.settings().keys.master_key_file).expect("key"),
        key_before,
        "the instance keeps its key"
    );
    let store =
        Store::open(&env.settings(), OpenMode::Create, &SystemClock).expect("opens after restore");
    assert_eq!(
        token_names(&store, org),
        ["in-backup"],
        "the state of the backup, not after"
    );
    let aside: Vec<_> = files_below(&env.data_dir())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("pre-restore"))
        .collect();
    assert!(
        aside.is_empty(),
        "replaced files were not cleaned up: {aside:?}"
    );
    let audit = store
        .org(org)
        .expect("org")
        .db
        .read(|c| aiworklab::store::audit::recent(c, 5).map_err(StoreError::from))
        .expect("audit");
    assert!(
        audit.iter().any(|r| r.action == "backup.restore"),
        "restore is audited"
    );
}

#[test]
fn restoring_one_org_leaves_the_others_alone() {
    let (env, ids, _) = env_with_backups(&["a", "b"]);
    let created;
    {
        let store = env.store();
        for org in ["a", "b"] {
            tokens::create(
                store.org(org).expect("org"),
                TokenKind::Scim,
                "old",
                None,
                &AdminCtx::operator(),
                SystemClock.now(),
            )
            .expect("token");
        }
        created = backup_now(&env, &store);
        for org in ["a", "b"] {
            tokens::create(
                store.org(org).expect("org"),
                TokenKind::Scim,
                "new",
                None,
                &AdminCtx::operator(),
                SystemClock.now(),
            )
            .expect("token");
        }
    }
    let target = restore::Target {
        data_dir: env.data_dir(),
        master_key_file: env.settings().keys.master_key_file,
        only_org: Some("a".parse().expect("slug")),
        force: true,
    };
    restore::restore(
        &created.path,
        &ids,
        &target,
        &Context::operator(),
        SystemClock.now(),
    )
    .expect("restore a");
    let store = env.store();
    assert_eq!(token_names(&store, "a"), ["old"]);
    assert_eq!(token_names(&store, "b"), ["new", "old"]);
}

#[tokio::test]
async fn the_drill_passes_on_a_good_backup_and_fails_clearly_on_a_corrupted_one() {
    let (env, ids, key_file) = env_with_backups(&["a", "b"]);
    let created = {
        let store = env.store();
        tokens::create(
            store.org("a").expect("org"),
            TokenKind::Scim,
            "x",
            None,
            &AdminCtx::operator(),
            SystemClock.now(),
        )
        .expect("token");
        backup_now(&env, &store)
    };
    let scratch = env.dir.path().join("scratch");
    std::fs::create_dir(&scratch).expect("mkdir");
    let report = drill::run(&created.path, ids, &scratch, start_on_loopback).await;
    assert!(report.ok(), "{}", report.render());
    let text = report.render();
    for step in [
        "restore",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "org a: tokens",
        "org b: tokens",
        "org a: SCIM list",
        "org b: SCIM list",
        "org a: signed-in page",
        "org b: signed-in page",
        "org a: aggregates",
        "org a: sync pull",
        "org b: sync pull",
        "stop server",
    ] {
        assert!(text.contains(step), "{step} missing from\n{text}");
    }
    assert!(
        files_below(&scratch).is_empty(),
        "the drill left files behind"
    );

    let bad = corrupt(&created.path, |b| {
        let n = b.len();
        b[n / 3] ^= 0xff;
    });
    let report = drill::run(
        &bad,
        open_keys(&env, &key_file),
        &scratch,
        start_on_loopback,
    )
    .await;
    assert!(!report.ok());
    let text = report.render();
    assert!(
        text.contains("FAIL") && text.contains("result: FAILED"),
        "{text}"
    );
    assert!(text.contains("damaged"), "{text}");
}

#[tokio::test]
async fn a_scheduled_backup_updates_metrics_and_audit_and_a_failure_is_counted() {
    let (mut env, _, _) = env_with_backups(&["acme"]);
    let state = env.state();
    let created = backup::schedule::run_once(
        &state.store,
        &state.settings.backup,
        state.clock.as_ref(),
        &state.metrics,
    )
    .expect("scheduled backup");
    assert!(created.path.exists());
    let text = state.metrics.render(&state.store);
    assert!(
        text.contains("aiworklab_backup_last_success_timestamp_seconds"),
        "{text}"
    );
    assert!(
        !text.contains("aiworklab_backup_last_success_timestamp_seconds 0\n"),
        "{text}"
    );
    assert!(text.contains("aiworklab_backup_failures_total 0"), "{text}");
    let audit = state
        .store
        .org("acme")
        .expect("org")
        .db
        .read(|c| aiworklab::store::audit::recent(c, 5).map_err(StoreError::from))
        .expect("audit");
    assert!(
        audit
            .iter()
            .any(|r| r.action == "backup.create" && r.actor == "system")
    );
    drop(state);

    // A backup directory that cannot be created: the failure is counted and
    // nothing panics.
    let blocker = env.dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"file").expect("write");
    env.raw.backup.dir = blocker.join("backups").display().to_string();
    let state = env.state();
    assert!(
        backup::schedule::run_once(
            &state.store,
            &state.settings.backup,
            state.clock.as_ref(),
            &state.metrics,
        )
        .is_err()
    );
    assert!(
        state
            .metrics
            .render(&state.store)
            .contains("aiworklab_backup_failures_total 1")
    );
}
