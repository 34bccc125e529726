//! The encrypted store: encryption at rest (P3), key and permission rules
//! (P4), and org isolation at the storage level (P18).

use std::fs;
use std::os::unix::fs::PermissionsExt;

use aiworklab::clock::{Clock, SystemClock};
use aiworklab::config;
use aiworklab::crypto::MasterKey;
use aiworklab::store::{DbOptions, OpenMode, Store, StoreError};
use aiworklab::tokens::{self, TokenKind};
use aiworklab::users::AdminCtx;

use crate::support::{Env, contains, files_below};

fn opts() -> DbOptions {
    DbOptions {
        busy_timeout: std::time::Duration::from_secs(5),
        read_pool_size: 2,
    }
}

#[test]
fn marker_written_through_the_api_is_absent_from_every_file_on_disk() {
    let env = Env::new(&["acme"]);
    let marker = "MARKER-7f3a9c-do-not-store-in-plaintext";
    {
        let store = env.store();
        let org = store.org("acme").expect("org");
        let now = SystemClock.now();
        tokens::create(
            org,
            TokenKind::Scim,
            marker,
            None,
            &AdminCtx::operator(),
            now,
        )
        .expect("token created");
        // Read it back through the store to prove it was really written.
        let listed = tokens::list(org).expect("list");
        assert_eq!(listed[0].name, marker);
    }
    let files = files_below(&env.data_dir());
    assert!(files.len() >= 3, "databases exist: {files:?}");
    for f in files {
        let bytes = fs::read(&f).expect("read");
        assert!(
            !contains(&bytes, marker.as_bytes()),
            "{} holds the marker",
            f.display()
        );
        assert!(
            !contains(&bytes, b"SQLite format 3"),
            "{} has a plaintext SQLite header",
            f.display()
        );
    }
}

#[test]
fn another_master_key_gives_a_clear_error_and_leaves_the_data_intact() {
    let env = Env::new(&["acme"]);
    let settings = env.settings();
    {
        let store = env.store();
        let org = store.org("acme").expect("org");
        tokens::create(
            org,
            TokenKind::Mcp,
            "keep-me",
            None,
            &AdminCtx::operator(),
            SystemClock.now(),
        )
        .expect("token");
    }
    let db = env.data_dir().join("orgs/acme.db");
    let before = fs::read(&db).expect("read");
    let wrong = MasterKey::from_bytes([9u8; 32]);
    let err = Store::open_with_key(
        &env.data_dir(),
        &wrong,
        &settings.orgs,
        &opts(),
        OpenMode::Existing,
        &SystemClock,
    )
    .expect_err("a wrong key must not open");
    assert!(matches!(err, StoreError::WrongKey { .. }), "{err:?}");
    assert!(err.to_string().contains("cannot be decrypted"), "{err}");
    assert!(err.fix().contains("master_key_file"), "{}", err.fix());
    assert_eq!(
        fs::read(&db).expect("read"),
        before,
        "the failed open changed the file"
    );

    // The right key still opens it, with the data.
    let store = Store::open(&settings, OpenMode::Existing, &SystemClock).expect("right key opens");
    let names: Vec<String> = tokens::list(store.org("acme").expect("org"))
        .expect("list")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["keep-me"]);
}

#[test]
fn a_plaintext_sqlite_file_in_place_of_a_database_is_refused() {
    let env = Env::new(&["acme"]);
    drop(env.store());
    let db = env.data_dir().join("orgs/acme.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let plain = rusqlite::Connection::open(&db).expect("plain sqlite");
    plain
        .execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (1);")
        .expect("write");
    drop(plain);
    fs::set_permissions(&db, fs::Permissions::from_mode(0o600)).expect("chmod");
    let err = Store::open(&env.settings(), OpenMode::Existing, &SystemClock).expect_err("refused");
    assert!(matches!(err, StoreError::WrongKey { .. }), "{err:?}");
}

#[test]
fn a_row_of_org_a_is_unreachable_from_org_b() {
    let env = Env::new(&["a", "b"]);
    let store = env.store();
    let now = SystemClock.now();
    let a = store.org("a").expect("a");
    let b = store.org("b").expect("b");
    let (info, secret) = tokens::create(
        a,
        TokenKind::Scim,
        "a-only",
        None,
        &AdminCtx::operator(),
        now,
    )
    .expect("token");
    assert!(
        tokens::list(b).expect("list b").is_empty(),
        "b lists a's token"
    );
    let id = info.id.to_string();
    assert!(
        matches!(
            tokens::revoke(b, &id, &AdminCtx::operator(), now),
            Err(tokens::TokenError::NotFound(_))
        ),
        "b revoked a's token"
    );
    assert!(tokens::list(a).expect("list a")[0].revoked_at.is_none());
    let (org, _) = tokens::authenticate(&store, TokenKind::Scim, secret.expose(), now)
        .expect("store")
        .expect("accepted");
    assert_eq!(org.slug.as_str(), "a", "a's token must identify org a");

    // Separate keys: b's key does not open a's file.
    let settings = env.settings();
    let master = MasterKey::load(&settings.keys.master_key_file).expect("key");
    let swapped = tempfile::tempdir().expect("tempdir");
    let data = swapped.path().join("data");
    fs::create_dir_all(data.join("orgs")).expect("mkdir");
    fs::set_permissions(&data, fs::Permissions::from_mode(0o700)).expect("chmod");
    fs::set_permissions(data.join("orgs"), fs::Permissions::from_mode(0o700)).expect("chmod");
    drop(store);
    fs::copy(env.data_dir().join("system.db"), data.join("system.db")).expect("copy");
    fs::copy(env.data_dir().join("orgs/a.db"), data.join("orgs/b.db")).expect("copy a as b");
    let b_only = config::from_raw(&{
        let mut raw = env.raw.clone();
        raw.orgs.retain(|o| o.slug == "b");
        raw
    })
    .expect("valid");
    let err = Store::open_with_key(
        &data,
        &master,
        &b_only.orgs,
        &opts(),
        OpenMode::Existing,
        &SystemClock,
    )
    .expect_err("a's file opened under b's name");
    assert!(matches!(err, StoreError::WrongKey { .. }), "{err:?}");
}

#[test]
fn hostile_org_slugs_never_name_a_file() {
    for slug in ["../x", "A", "a b", "", "-a", "a/b", "..", "x.db"] {
        let mut env = Env::new(&["ok"]);
        env.raw.orgs[0].slug = slug.into();
        let err = config::from_raw(&env.raw).expect_err(slug);
        assert!(err.for_key("orgs.0.slug").is_some(), "{slug}: {err}");
    }
    let env = Env::new(&["ok"]);
    let store = env.store();
    for slug in ["../ok", "OK", "ok/../ok", "ok "] {
        assert!(
            matches!(store.org(slug), Err(StoreError::UnknownOrg { .. })),
            "{slug}"
        );
    }
}

#[test]
fn loose_permissions_are_refused_with_the_chmod_that_fixes_them() {
    let env = Env::new(&["acme"]);
    drop(env.store());
    let settings = env.settings();
    let check = |path: &std::path::Path, mode: u32, want: &str| {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
        let err = Store::open(&settings, OpenMode::Create, &SystemClock).expect_err("refused");
        assert_eq!(
            err.fix(),
            format!("chmod {want} {}", path.display()),
            "{err}"
        );
        let restore = if want == "700" { 0o700 } else { 0o600 };
        fs::set_permissions(path, fs::Permissions::from_mode(restore)).expect("chmod");
    };
    check(&settings.keys.master_key_file, 0o644, "600");
    check(&env.data_dir(), 0o755, "700");
    check(&env.data_dir().join("orgs/acme.db"), 0o644, "600");
    check(&env.data_dir().join("system.db"), 0o640, "600");
    Store::open(&settings, OpenMode::Create, &SystemClock).expect("fixed permissions open");
}

#[test]
fn a_missing_org_database_is_reported_never_recreated_empty() {
    let env = Env::new(&["acme"]);
    drop(env.store());
    let db = env.data_dir().join("orgs/acme.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let err = Store::open(&env.settings(), OpenMode::Create, &SystemClock).expect_err("refused");
    assert!(matches!(err, StoreError::MissingDatabase { .. }), "{err:?}");
    assert!(!db.exists(), "an empty database was created");
}

#[test]
fn operator_commands_never_create_an_installation() {
    let env = Env::new(&["acme"]);
    let err = Store::open(&env.settings(), OpenMode::Existing, &SystemClock).expect_err("refused");
    assert!(matches!(err, StoreError::NotInitialised { .. }), "{err:?}");
    assert!(!env.data_dir().exists());
}

#[test]
fn read_paths_cannot_write() {
    let env = Env::new(&["acme"]);
    let store = env.store();
    let org = store.org("acme").expect("org");
    let err = org
        .db
        .read(|c| {
            c.execute("DELETE FROM audit_log", [])
                .map_err(StoreError::from)
        })
        .expect_err("the read-only handle wrote");
    assert!(
        err.to_string().to_lowercase().contains("readonly")
            || err.to_string().contains("read-only")
            || err.to_string().contains("query_only"),
        "{err}"
    );
}

#[test]
fn databases_and_directories_are_created_owner_only() {
    let env = Env::new(&["acme"]);
    drop(env.store());
    let mode = |p: &std::path::Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&env.data_dir()), 0o700);
    assert_eq!(mode(&env.data_dir().join("orgs")), 0o700);
    for f in files_below(&env.data_dir()) {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}
