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
//! This file has no dependency: the build script (`build.rs`) uses it as a
//! module, and compiled on its own (`rustc --edition 2024
//! build/provenance.rs`) it prints the same lines, which is how the
//! packaging tests check that a source tarball finds its commit.
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// The entry point when this file is compiled on its own.
#[allow(dead_code)]
fn main() {
    emit();
}

/// Prints the `cargo:` lines of the commit and the build date.
pub fn emit() {
    for var in [
        "AIWORKLAB_GIT_COMMIT",
        "AIWORKLAB_BUILD_DATE",
        "SOURCE_DATE_EPOCH",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=packaging/commit.txt");
    watch_git_head();
    println!("cargo:rustc-env=AIWORKLAB_GIT_COMMIT={}", commit());
    println!("cargo:rustc-env=AIWORKLAB_BUILD_DATE={}", build_date());
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
