//! Backup and restore of a large org database, beside the floor measured in
//! the same run: reading the same bytes and age-encrypting them into a file.
//!
//! Run: `cargo bench --bench backup` (size: BENCH_DB_MIB, default 1024;
//! under `cargo test` it runs on 8 MiB as a smoke check). Backup and restore
//! run as the real CLI in child processes; their peak RSS is the kernel's
//! high-water mark (VmHWM), sampled every 5 ms.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use age::secrecy::ExposeSecret;
use aiworklab::audit::Context;
use aiworklab::clock::{Clock, SystemClock};
use aiworklab::config::{self, RawConfig, RawOrg};
use aiworklab::store::{OpenMode, Store, StoreError};

const MIB: u64 = 1 << 20;

/// Fills org `bench` with audit rows of ~4 KiB until the file reaches `target`.
fn fill(store: &Store, target: u64) {
    let org = store.org("bench").expect("org");
    let details = serde_json::json!({ "blob": "x".repeat(4000) });
    let mut batch = 0u64;
    while org.db.size_on_disk() < target {
        org.db
            .write(|tx| {
                for i in 0..1000 {
                    Context::system().record(
                        tx,
                        "bench.fill",
                        Some(&format!("{batch}-{i}")),
                        &details,
                        SystemClock.now(),
                    )?;
                }
                Ok::<_, StoreError>(())
            })
            .expect("insert");
        batch += 1;
    }
    org.db
        .with_writer(|c| c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);"))
        .expect("checkpoint");
}

/// Runs `cmd`, returning wall time and peak RSS in MiB.
fn measure(cmd: &mut Command) -> (Duration, f64) {
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_path)
            && let Some(line) = s.lines().find(|l| l.starts_with("VmHWM:"))
            && let Some(kib) = line.split_whitespace().nth(1).and_then(|v| v.parse().ok())
        {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "{cmd:?} failed");
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (started.elapsed(), peak_kib as f64 / 1024.0)
}

/// The floor: read `db` and age-encrypt it into a file, fsynced.
fn floor(db: &Path, out: &Path, recipient: &age::x25519::Recipient) -> Duration {
    let started = Instant::now();
    let mut input = std::fs::File::open(db).expect("open");
    let file = std::fs::File::create(out).expect("create");
    let enc = age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
        .expect("encryptor");
    let mut w = enc
        .wrap_output(std::io::BufWriter::with_capacity(1 << 20, file))
        .expect("wrap");
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        w.write_all(&buf[..n]).expect("write");
    }
    let file = w.finish().expect("finish").into_inner().expect("flush");
    file.sync_all().expect("fsync");
    started.elapsed()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary without it, as a quick check that the bench still works.
    let full = std::env::args().any(|a| a == "--bench");
    let mib: u64 = std::env::var("BENCH_DB_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 1024 } else { 8 });
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into()))
        .expect("tempdir");
    let data = dir.path().join("data");
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public();
    let key_file = dir.path().join("backup.key");
    aiworklab::fsperm::create_private_file(&key_file)
        .and_then(|mut f| {
            std::io::Write::write_all(
                &mut f,
                format!("{}\n", identity.to_string().expose_secret()).as_bytes(),
            )
        })
        .expect("identity");
    let signing_file = dir.path().join("backup-signing.key");
    aiworklab::backup::signing::SigningKey::generate()
        .and_then(|k| k.write_new(&signing_file, "bench"))
        .expect("signing key");
    let mut raw = RawConfig::default();
    raw.storage.data_dir = data.display().to_string();
    raw.backup.recipients = vec![recipient.to_string()];
    raw.backup.signing_key_file = signing_file.display().to_string();
    raw.orgs = vec![RawOrg {
        slug: "bench".into(),
        name: "Bench".into(),
        ..RawOrg::default()
    }];
    let config_file = dir.path().join("aiworklab.toml");
    std::fs::write(
        &config_file,
        toml_edit::ser::to_string_pretty(&raw).expect("toml"),
    )
    .expect("config");
    let settings = config::from_raw(&raw).expect("valid");

    eprintln!("filling a {mib} MiB org database ...");
    let t = Instant::now();
    {
        let store = Store::open(&settings, OpenMode::Create, &SystemClock).expect("store");
        fill(&store, mib * MIB);
    }
    let db = data.join("orgs/bench.db");
    let size = std::fs::metadata(&db).expect("meta").len();
    eprintln!(
        "filled {:.0} MiB in {:.1} s",
        size as f64 / MIB as f64,
        t.elapsed().as_secs_f64()
    );

    let bin = env!("CARGO_BIN_EXE_aiworklab");
    let floor_time = floor(&db, &dir.path().join("floor.age"), &recipient);
    std::fs::remove_file(dir.path().join("floor.age")).expect("rm");
    let out = dir.path().join("backups");
    let (backup_time, backup_rss) = measure(
        Command::new(bin)
            .args(["--config"])
            .arg(&config_file)
            .args(["backup", "create", "--to"])
            .arg(&out),
    );
    let archive = std::fs::read_dir(&out)
        .expect("dir")
        .flatten()
        .next()
        .expect("an archive")
        .path();
    let (restore_time, restore_rss) = measure(
        Command::new(bin)
            .args(["--config"])
            .arg(&config_file)
            .arg("restore")
            .arg(&archive)
            .arg("--identity")
            .arg(&key_file)
            .arg("--data-dir")
            .arg(dir.path().join("restored")),
    );
    let _ = SystemClock.now();
    let mb = size as f64 / MIB as f64;
    println!("| database | {mb:.0} MiB |");
    println!(
        "| floor: read + age-encrypt + fsync | {:.2} s ({:.0} MiB/s) |",
        floor_time.as_secs_f64(),
        mb / floor_time.as_secs_f64()
    );
    println!(
        "| aiworklab backup create | {:.2} s ({:.2}x floor), peak RSS {:.0} MiB |",
        backup_time.as_secs_f64(),
        backup_time.as_secs_f64() / floor_time.as_secs_f64(),
        backup_rss
    );
    println!(
        "| aiworklab restore | {:.2} s ({:.2}x floor), peak RSS {:.0} MiB |",
        restore_time.as_secs_f64(),
        restore_time.as_secs_f64() / floor_time.as_secs_f64(),
        restore_rss
    );
}
