//! The state of backups as the admin pages show it (docs/backup.md): the
//! last successful archive, the next scheduled run, the archives kept and
//! the last restore drill's result, read from the backup directory (the
//! archives and `last-drill.json`, which `aiworklab drill` writes) and the
//! configuration. Nothing here reads an archive's contents.

use chrono::{DateTime, Utc};

use super::ArchiveInfo;
use crate::config::BackupSettings;
use crate::setup::checklist::{DrillRecord, read_drill};

/// What the backups page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Whether scheduled backups run (`backup.recipients` set).
    pub scheduled: bool,
    /// The next scheduled run, when they do.
    pub next_run: Option<DateTime<Utc>>,
    /// The newest whole-installation archive (scheduled or by hand).
    pub last_success: Option<ArchiveInfo>,
    /// Every archive in the backup directory, newest first.
    pub kept: Vec<ArchiveInfo>,
    pub retention_days: u32,
    /// The last restore drill recorded on this machine.
    pub last_drill: Option<DrillRecord>,
    /// Why the backup directory could not be read, when it could not.
    pub problem: Option<String>,
}

/// The status of backups under `s` at `now`.
pub fn status(s: &BackupSettings, now: DateTime<Utc>) -> Status {
    let (mut kept, problem) = match super::list(&s.dir) {
        Ok(l) => (l, None),
        Err(e) => (
            Vec::new(),
            Some(format!(
                "the backup directory {} could not be read: {e}",
                s.dir.display()
            )),
        ),
    };
    kept.reverse();
    let scheduled = !s.recipients.is_empty();
    Status {
        scheduled,
        next_run: scheduled.then(|| super::schedule::next_run(now, s.schedule)),
        last_success: kept.iter().find(|a| a.org.is_none()).cloned(),
        kept,
        retention_days: s.retention_days,
        last_drill: read_drill(&s.dir),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn settings(dir: &std::path::Path, recipients: bool) -> BackupSettings {
        let id = age::x25519::Identity::generate();
        BackupSettings {
            recipients: if recipients {
                vec![id.to_public()]
            } else {
                vec![]
            },
            dir: dir.to_path_buf(),
            schedule: chrono::NaiveTime::from_hms_opt(2, 0, 0).expect("time"),
            retention_days: 30,
            signing_key_file: dir.join("signing.key"),
            verify_keys: vec![],
        }
    }

    #[test]
    fn the_status_reads_the_archives_the_schedule_and_the_last_drill() {
        let dir = tempfile::tempdir().expect("dir");
        let now = Utc
            .with_ymd_and_hms(2026, 3, 5, 12, 0, 0)
            .single()
            .expect("now");
        let empty = status(&settings(dir.path(), false), now);
        assert!(!empty.scheduled && empty.next_run.is_none());
        assert!(
            empty.kept.is_empty() && empty.last_success.is_none() && empty.last_drill.is_none()
        );
        for name in [
            "aiworklab-backup-20260303T020000Z.age",
            "aiworklab-backup-20260304T020000Z.age",
            "aiworklab-backup-20260304T090000Z-acme.age",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), b"x").expect("file");
        }
        crate::setup::checklist::record_drill(
            dir.path(),
            &DrillRecord {
                at: now,
                archive: "aiworklab-backup-20260304T020000Z.age".into(),
                passed: true,
            },
        )
        .expect("drill");
        let s = status(&settings(dir.path(), true), now);
        assert!(s.scheduled);
        assert_eq!(
            s.next_run,
            Some(
                Utc.with_ymd_and_hms(2026, 3, 6, 2, 0, 0)
                    .single()
                    .expect("next")
            )
        );
        assert_eq!(s.kept.len(), 3, "the archives only, newest first");
        assert_eq!(s.kept[0].org.as_deref(), Some("acme"));
        let last = s.last_success.expect("a whole archive");
        assert!(last.path.ends_with("aiworklab-backup-20260304T020000Z.age"));
        assert!(s.last_drill.expect("drill").passed);
        assert_eq!(s.problem, None);
    }
}
