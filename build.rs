//! Build provenance for `aiworklab --version`, the image labels and the
//! package metadata: the git commit the binary was built from and the build
//! date, as the compile-time variables `AIWORKLAB_GIT_COMMIT` and
//! `AIWORKLAB_BUILD_DATE`.
//!
//! Where the commit comes from, first match wins:
//! 1. `AIWORKLAB_GIT_COMMIT` in the build environment (any build system);
//! 2. `git rev-parse HEAD` in a clone or worktree;
//! 3. `packaging/commit.txt` in a source tarball made by `git archive`
//!    (its `$Format:%H$` placeholder is filled in by the `export-subst`
//!    attribute in `.gitattributes`);
//! 4. otherwise `unknown`.
//!
//! The date is `SOURCE_DATE_EPOCH` (reproducible builds) when set, else the
//! time this script ran, as an RFC 3339 UTC time (`2026-12-03T14:05:09Z`).
//! `AIWORKLAB_BUILD_DATE` overrides it verbatim.
//!
//! It also turns the shipped catalogue (`config/catalogue/*.toml`) into
//! JSON in `OUT_DIR`, value for value, which `skill::catalogue` embeds:
//! reading TOML cost the kernel's hook milliseconds on every event, JSON a
//! fraction of that. A file that is not valid TOML fails the build, naming
//! it.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    for var in [
        "AIWORKLAB_GIT_COMMIT",
        "AIWORKLAB_BUILD_DATE",
        "SOURCE_DATE_EPOCH",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=packaging/commit.txt");
    watch_git_head();
    catalogue_as_json();
    println!("cargo:rustc-env=AIWORKLAB_GIT_COMMIT={}", commit());
    println!("cargo:rustc-env=AIWORKLAB_BUILD_DATE={}", build_date());
}

/// Each `config/catalogue/NAME.toml` as `OUT_DIR/catalogue/NAME.json`.
fn catalogue_as_json() {
    let src = Path::new("config/catalogue");
    println!("cargo:rerun-if-changed={}", src.display());
    let out =
        Path::new(&std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("catalogue");
    std::fs::create_dir_all(&out).expect("OUT_DIR/catalogue can be made");
    let entries = std::fs::read_dir(src).expect("config/catalogue is readable");
    for entry in entries {
        let path = entry.expect("config/catalogue is readable").path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        println!("cargo:rerun-if-changed={}", path.display());
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let value: serde_json::Value = toml_edit::de::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not valid TOML: {e}", path.display()));
        let json = serde_json::to_string(&value).expect("a JSON value renders");
        let stem = path.file_stem().expect("a file name").to_string_lossy();
        std::fs::write(out.join(format!("{stem}.json")), json).expect("OUT_DIR is writable");
    }
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Re-run when HEAD moves: the HEAD file itself, the branch's ref file and
/// packed-refs (a worktree keeps HEAD apart from the shared refs).
fn watch_git_head() {
    if git(&["rev-parse", "--is-inside-work-tree"]).is_none() {
        return;
    }
    let mut paths = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        paths.push(git(&["rev-parse", "--git-path", &branch]));
    }
    paths.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    for p in paths.into_iter().flatten() {
        if Path::new(&p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
}

fn is_commit(s: &str) -> bool {
    (7..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn commit() -> String {
    if let Ok(c) = std::env::var("AIWORKLAB_GIT_COMMIT")
        && !c.trim().is_empty()
    {
        return c.trim().to_string();
    }
    if let Some(c) = git(&["rev-parse", "HEAD"]).filter(|c| is_commit(c)) {
        return c;
    }
    if let Ok(c) = std::fs::read_to_string("packaging/commit.txt")
        && is_commit(c.trim())
    {
        return c.trim().to_string();
    }
    "unknown".into()
}

fn build_date() -> String {
    if let Ok(d) = std::env::var("AIWORKLAB_BUILD_DATE")
        && !d.trim().is_empty()
    {
        return d.trim().to_string();
    }
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        });
    rfc3339(secs)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch, by Howard Hinnant's
/// days-to-civil algorithm; the build script has no date crate.
fn rfc3339(secs: u64) -> String {
    let (hh, mm, ss) = (secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}
