//! File-system permission rules for secrets and data (SECURITY.md P4): the
//! master key, secret files and database files are owner-only (0600 or
//! stricter), data directories owner-only (0700). Checks return a problem
//! that carries the exact `chmod` that fixes it.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A path whose permissions are looser than required, or that cannot be
/// inspected.
#[derive(Debug, thiserror::Error)]
pub enum PermProblem {
    #[error("{path} has mode {mode:04o}; it must not be readable or writable by group or others")]
    TooOpen { path: PathBuf, mode: u32, want: u32 },
    #[error("{path} is not a {expected}")]
    WrongKind {
        path: PathBuf,
        expected: &'static str,
    },
    #[error("cannot inspect {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl PermProblem {
    /// The command or action that fixes the problem.
    pub fn fix(&self) -> String {
        match self {
            Self::TooOpen { path, want, .. } => format!("chmod {want:o} {}", path.display()),
            Self::WrongKind { path, expected } => {
                format!("replace {} with a {expected}", path.display())
            }
            Self::Io { path, .. } => format!(
                "check that {} exists and the service user may read it",
                path.display()
            ),
        }
    }
}

fn check(path: &Path, dir: bool) -> Result<(), PermProblem> {
    let meta = fs::metadata(path).map_err(|source| PermProblem::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let expected = if dir { "directory" } else { "file" };
    if meta.is_dir() != dir {
        return Err(PermProblem::WrongKind {
            path: path.to_path_buf(),
            expected,
        });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(PermProblem::TooOpen {
            path: path.to_path_buf(),
            mode,
            want: if dir { 0o700 } else { 0o600 },
        });
    }
    Ok(())
}

/// Checks that `path` is a file only its owner may read or write.
///
/// # Errors
/// [`PermProblem`] naming the path and the fix.
pub fn check_private_file(path: &Path) -> Result<(), PermProblem> {
    check(path, false)
}

/// Checks that `path` is a directory only its owner may enter.
///
/// # Errors
/// [`PermProblem`] naming the path and the fix.
pub fn check_private_dir(path: &Path) -> Result<(), PermProblem> {
    check(path, true)
}

/// Creates `path` (and missing parents) with mode 0700 when it is absent.
///
/// # Errors
/// The I/O error from creating it.
pub fn ensure_private_dir(path: &Path) -> io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Creates a new file with mode 0600, failing if it exists.
///
/// # Errors
/// The I/O error, `AlreadyExists` included.
pub fn create_private_file(path: &Path) -> io::Result<fs::File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Writes `contents` to `path` with mode 0600, replacing any file there
/// atomically (a `.partial` sibling, synced, then renamed): a reader sees
/// the old contents or the new, never a half-written file.
///
/// # Errors
/// The I/O error.
pub fn replace_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = std::path::PathBuf::from(tmp);
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = create_private_file(&tmp)?;
    f.write_all(contents)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loose_file_and_dir_are_refused_with_the_chmod_that_fixes_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("k");
        fs::write(&f, b"x").expect("write");
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = check_private_file(&f).expect_err("0644 must be refused");
        assert_eq!(err.fix(), format!("chmod 600 {}", f.display()));
        assert!(err.to_string().contains("0644"));
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).expect("chmod");
        check_private_file(&f).expect("0600 is fine");
        fs::set_permissions(&f, fs::Permissions::from_mode(0o400)).expect("chmod");
        check_private_file(&f).expect("0400 is fine");

        let d = dir.path().join("d");
        fs::create_dir(&d).expect("mkdir");
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).expect("chmod");
        let err = check_private_dir(&d).expect_err("0755 must be refused");
        assert_eq!(err.fix(), format!("chmod 700 {}", d.display()));
        assert!(check_private_dir(&f).is_err(), "a file is not a directory");
    }

    #[test]
    fn created_paths_are_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().join("a/b");
        ensure_private_dir(&d).expect("mkdir");
        check_private_dir(&d).expect("0700");
        let f = d.join("f");
        create_private_file(&f).expect("create");
        check_private_file(&f).expect("0600");
        assert!(
            create_private_file(&f).is_err(),
            "create_new must not overwrite"
        );
    }
}
