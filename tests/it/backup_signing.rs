//! Signed manifests (P23): an archive planted by anyone who holds only the
//! public recipient, or one whose manifest was changed, is refused by
//! verify, restore and the drill; a rotated key still verifies its old
//! archives; an unsigned format 2 archive opens only with the flag the
//! operator must type; a loose identity file is refused with its fix.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use aiworklab::audit::Context;
use aiworklab::backup::signing::{OpenKeys, SigningKey};
use aiworklab::backup::{BackupError, archive, drill, restore};
use aiworklab::clock::{Clock, SystemClock};
use aiworklab::http::server::start_on_loopback;
use aiworklab::tokens::{self, TokenKind};

use crate::backup::{backup_now, env_with_backups, fresh_target, open_keys};
use crate::support::{Env, files_below};

/// One tar entry of an archive: its name and bytes.
type Entries = Vec<(String, Vec<u8>)>;

/// Decrypts `path` with `keys`, lets `edit` change its entries, and
/// encrypts them to `recipients` again as `name`: what anyone holding the
/// recipient (a public key) can write.
fn repack(
    path: &Path,
    keys: &OpenKeys,
    recipients: &[age::x25519::Recipient],
    name: &str,
    edit: impl FnOnce(&mut Entries),
) -> PathBuf {
    let decryptor = age::Decryptor::new(std::fs::File::open(path).expect("open")).expect("age");
    let reader = decryptor
        .decrypt(
            keys.identities
                .iter()
                .map(|i| i.as_ref() as &dyn age::Identity),
        )
        .expect("decrypt");
    let mut tar = tar::Archive::new(reader);
    let mut entries: Entries = Vec::new();
    for e in tar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let n = e.path().expect("path").to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).expect("read entry");
        entries.push((n, bytes));
    }
    edit(&mut entries);
    let out = path.with_file_name(name);
    let enc = age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
        .expect("encryptor");
    let mut stream = enc
        .wrap_output(std::fs::File::create(&out).expect("create"))
        .expect("wrap");
    {
        let mut tar = tar::Builder::new(&mut stream);
        for (n, bytes) in &entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o600);
            tar.append_data(&mut h, n, &bytes[..]).expect("append");
        }
        tar.finish().expect("finish tar");
    }
    stream.finish().expect("finish age").flush().expect("flush");
    out
}

/// Changes the JSON entry `name` with `f`.
fn edit_json(entries: &mut Entries, name: &str, f: impl FnOnce(&mut serde_json::Value)) {
    let (_, bytes) = entries
        .iter_mut()
        .find(|(n, _)| n == name)
        .expect("entry present");
    let mut v: serde_json::Value = serde_json::from_slice(bytes).expect("json");
    f(&mut v);
    *bytes = serde_json::to_vec_pretty(&v).expect("json");
}

/// An installation with one org holding a token, and one archive of it.
fn installation_with_archive() -> (Env, OpenKeys, PathBuf, PathBuf) {
    let (env, keys, key_file) = env_with_backups(&["acme"]);
    let store = env.store();
    tokens::create(
        store.org("acme").expect("org"),
        TokenKind::Scim,
        "genuine",
        None,
        &aiworklab::users::AdminCtx::operator(),
        SystemClock.now(),
    )
    .expect("token");
    let created = backup_now(&env, &store);
    (env, keys, key_file, created.path)
}

fn scratch(env: &Env) -> PathBuf {
    let s = env.dir.path().join("scratch");
    std::fs::create_dir_all(&s).expect("mkdir");
    s
}

/// Verify, restore and the drill all refuse `planted`; nothing is restored
/// and nothing is left behind. Returns the restore error.
async fn refused_everywhere(env: &Env, key_file: &Path, planted: &Path) -> BackupError {
    let keys = open_keys(env, key_file);
    let scratch = scratch(env);
    let err = restore::verify(planted, &keys, &scratch).expect_err("verify refuses");
    let shown = err.to_string();
    let target = fresh_target(env.dir.path());
    let restored = restore::restore(
        planted,
        &keys,
        &target,
        &Context::operator(),
        SystemClock.now(),
    )
    .expect_err("restore refuses");
    assert_eq!(restored.to_string(), shown);
    assert!(
        !target.data_dir.join("orgs/acme.db").exists(),
        "a refused archive was restored"
    );
    let report = drill::run(
        planted,
        open_keys(env, key_file),
        &scratch,
        start_on_loopback,
    )
    .await;
    assert!(!report.ok(), "{}", report.render());
    assert!(report.render().contains(&shown), "{}", report.render());
    assert!(files_below(&scratch).is_empty(), "left behind");
    err
}

#[tokio::test]
async fn an_archive_planted_with_only_the_public_recipient_is_refused() {
    let (env, _, key_file, _) = installation_with_archive();
    // The attacker runs an appliance of their own, with a signing key of
    // their own, and encrypts to the victim's public recipient.
    let (mut attacker, _, _) = env_with_backups(&["acme"]);
    attacker.raw.backup.recipients = env.raw.backup.recipients.clone();
    let store = attacker.store();
    tokens::create(
        store.org("acme").expect("org"),
        TokenKind::Scim,
        "planted",
        None,
        &aiworklab::users::AdminCtx::operator(),
        SystemClock.now(),
    )
    .expect("token");
    let planted = backup_now(&attacker, &store).path;
    let err = refused_everywhere(&env, &key_file, &planted).await;
    assert!(matches!(err, BackupError::BadSignature(_)), "{err:?}");
    assert!(err.to_string().contains("not a trusted"), "{err}");
    assert!(err.fix().contains("backup store"), "{}", err.fix());

    // Without any signature at all.
    let recipients = env.settings().backup.recipients;
    let unsigned = repack(
        &planted,
        &open_keys(&env, &key_file),
        &recipients,
        "aiworklab-backup-20210101T000000Z.age",
        |e| e.retain(|(n, _)| n != "manifest.sig"),
    );
    let err = refused_everywhere(&env, &key_file, &unsigned).await;
    assert!(
        matches!(err, BackupError::Unsigned { format: 3 }),
        "{err:?}"
    );

    // Made to look like an older, unsigned format: refused without the flag.
    let old = repack(
        &planted,
        &open_keys(&env, &key_file),
        &recipients,
        "aiworklab-backup-20210102T000000Z.age",
        |e| {
            e.retain(|(n, _)| n != "manifest.sig");
            edit_json(e, "format.json", |v| v["format"] = 2.into());
            edit_json(e, "manifest.json", |v| v["format"] = 2.into());
        },
    );
    let err = refused_everywhere(&env, &key_file, &old).await;
    assert!(
        matches!(err, BackupError::Unsigned { format: 2 }),
        "{err:?}"
    );
    assert!(
        err.fix().contains("--accept-unsigned-format-2"),
        "{}",
        err.fix()
    );
}

#[tokio::test]
async fn a_tampered_manifest_is_refused() {
    let (env, keys, key_file, path) = installation_with_archive();
    let recipients = env.settings().backup.recipients;
    // Someone who can read an archive changes its manifest and keeps the
    // signature: another host, and a database swapped with its hash.
    let host = repack(
        &path,
        &keys,
        &recipients,
        "aiworklab-backup-20210101T000000Z.age",
        |e| edit_json(e, "manifest.json", |v| v["host"] = "elsewhere".into()),
    );
    let err = refused_everywhere(&env, &key_file, &host).await;
    assert!(matches!(err, BackupError::BadSignature(_)), "{err:?}");
    assert!(err.to_string().contains("altered"), "{err}");

    let (other, other_keys, _, other_path) = installation_with_archive();
    let mut foreign_db = Vec::new();
    repack(
        &other_path,
        &other_keys,
        &other.settings().backup.recipients,
        "aiworklab-backup-20210102T000000Z.age",
        |e| {
            foreign_db = e
                .iter()
                .find(|(n, _)| n == "db/orgs/acme.db")
                .expect("db")
                .1
                .clone();
        },
    );
    let swapped = repack(
        &path,
        &keys,
        &recipients,
        "aiworklab-backup-20210103T000000Z.age",
        |e| {
            let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&foreign_db));
            let len = foreign_db.len();
            e.iter_mut()
                .find(|(n, _)| n == "db/orgs/acme.db")
                .expect("db")
                .1 = std::mem::take(&mut foreign_db);
            edit_json(e, "manifest.json", |v| {
                for f in v["files"].as_array_mut().expect("files") {
                    if f["path"] == "orgs/acme.db" {
                        f["sha256"] = sha.clone().into();
                        f["size"] = len.into();
                    }
                }
            });
        },
    );
    let err = refused_everywhere(&env, &key_file, &swapped).await;
    assert!(matches!(err, BackupError::BadSignature(_)), "{err:?}");
}

#[test]
fn a_valid_archive_restores_and_a_rotated_key_still_verifies_old_archives() {
    let (mut env, keys, key_file, old) = installation_with_archive();
    let scratch = scratch(&env);
    let v = restore::verify(&old, &keys, &scratch).expect("verify");
    let old_key = v.signed_by.expect("signed");
    let target = fresh_target(env.dir.path());
    let r = restore::restore(
        &old,
        &keys,
        &target,
        &Context::operator(),
        SystemClock.now(),
    )
    .expect("a valid archive restores");
    assert_eq!(r.signed_by, Some(old_key));

    // Rotation: a new key signs from now on; the old verification key is
    // kept in backup.verify_keys so the archives it signed still verify.
    let file = std::path::PathBuf::from(&env.raw.backup.signing_key_file);
    std::fs::remove_file(&file).expect("remove");
    SigningKey::generate()
        .expect("rng")
        .write_new(&file, "rotated")
        .expect("write");
    // Archives are named to the second: the next one must not take the
    // old one's name (it would replace it).
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let new = backup_now(&env, &env.store()).path;
    assert_ne!(new, old, "the rotated key's archive is a new file");
    let without_old = open_keys(&env, &key_file);
    let err = restore::verify(&old, &without_old, &scratch).expect_err("old key not trusted");
    assert!(matches!(err, BackupError::BadSignature(_)), "{err:?}");
    assert!(err.fix().contains("backup.verify_keys"), "{}", err.fix());
    env.raw.backup.verify_keys = vec![old_key.to_string()];
    let keys = open_keys(&env, &key_file);
    assert_eq!(
        restore::verify(&old, &keys, &scratch)
            .expect("old archive")
            .signed_by,
        Some(old_key)
    );
    let new_key = restore::verify(&new, &keys, &scratch)
        .expect("new archive")
        .signed_by
        .expect("signed");
    assert_ne!(new_key, old_key);
}

#[test]
fn an_unsigned_format_2_archive_restores_only_with_the_flag() {
    let (env, keys, key_file, path) = installation_with_archive();
    let recipients = env.settings().backup.recipients;
    let old = repack(
        &path,
        &keys,
        &recipients,
        "aiworklab-backup-20210101T000000Z.age",
        |e| {
            e.retain(|(n, _)| n != "manifest.sig");
            edit_json(e, "format.json", |v| v["format"] = 2.into());
            edit_json(e, "manifest.json", |v| v["format"] = 2.into());
        },
    );
    // The command line: refused, with the flag named; accepted with it.
    let s = env.settings();
    let config = env.dir.path().join("aiworklab.toml");
    std::fs::write(
        &config,
        format!(
            "[storage]\ndata_dir = {:?}\n[backup]\nrecipients = [{:?}]\nsigning_key_file = {:?}\n[[orgs]]\nslug = \"acme\"\nname = \"Acme\"\n",
            s.storage.data_dir.display().to_string(),
            env.raw.backup.recipients[0],
            env.raw.backup.signing_key_file,
        ),
    )
    .expect("config");
    let target = env.dir.path().join("restored");
    let run = |extra: &[&str]| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_aiworklab"));
        c.args(["restore", &old.display().to_string(), "--identity"])
            .arg(&key_file)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&target)
            .args(extra);
        for (k, _) in std::env::vars() {
            if k.starts_with("AIWORKLAB_") {
                c.env_remove(k);
            }
        }
        c.output().expect("runs")
    };
    let out = run(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("format 2") && stderr.contains("--accept-unsigned-format-2"),
        "{stderr}"
    );
    assert!(!target.join("orgs/acme.db").exists());
    let out = run(&["--accept-unsigned-format-2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(target.join("orgs/acme.db").exists());

    // The flag opens format 2 only: a format 3 archive still needs its signature.
    let unsigned3 = repack(
        &path,
        &keys,
        &recipients,
        "aiworklab-backup-20210102T000000Z.age",
        |e| e.retain(|(n, _)| n != "manifest.sig"),
    );
    let mut lenient = open_keys(&env, &key_file);
    lenient.accept_unsigned_format_2 = true;
    let scratch = scratch(&env);
    assert!(
        restore::verify(&old, &lenient, &scratch)
            .expect("format 2 allowed")
            .signed_by
            .is_none()
    );
    assert!(matches!(
        restore::verify(&unsigned3, &lenient, &scratch),
        Err(BackupError::Unsigned { format: 3 })
    ));
}

#[test]
fn a_loose_identity_or_signing_key_file_is_refused_with_the_chmod_fix() {
    use std::os::unix::fs::PermissionsExt;
    let (env, _, key_file) = env_with_backups(&["acme"]);
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = archive::read_identities(&key_file)
        .err()
        .expect("a loose identity file is refused");
    assert!(matches!(err, BackupError::Permissions(_)), "{err:?}");
    assert_eq!(err.fix(), format!("chmod 600 {}", key_file.display()));

    let signing = PathBuf::from(&env.raw.backup.signing_key_file);
    std::fs::set_permissions(&signing, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let err = SigningKey::load(&signing).expect_err("loose signing key");
    assert_eq!(err.fix(), format!("chmod 600 {}", signing.display()));
    let state = env.state();
    let err = aiworklab::backup::schedule::run_once(
        &state.store,
        &state.settings.backup,
        state.clock.as_ref(),
        &state.metrics,
    )
    .expect_err("no backup");
    assert_eq!(err.fix(), format!("chmod 600 {}", signing.display()));
}
