//! The kernel's local store: one SQLCipher file per install, opened with a
//! raw 256-bit key (`key.rs`), with its own embedded migrations. It holds
//! the device's credentials, the org's catalogue copy, the engineer's
//! deltas (own and pulled from their other devices), the folded state per
//! concept, the outbox, the sync cursors and each ingestion source's
//! cursor. Concept-level facts only: never code, diffs, prompts or paths.
//!
//! Writers (the hook, `agent sync`) may run at once: each write is one
//! immediate transaction, readers wait up to [`BUSY_TIMEOUT`].
//!
//! Durability. The store is in write-ahead-log mode. Every connection but
//! the hook's commits with `synchronous=FULL` (the log is synced at each
//! commit: the device's rotated refresh secret, pairing, answers). The
//! hook's connection ([`LocalStore::open_for_hook`]) commits with
//! `synchronous=NORMAL` (no sync at commit), does not checkpoint when it
//! closes and keeps the log between hooks, checkpointing it only once it
//! passes [`HOOK_LOG_LIMIT`]: a power loss can roll back a hook's last
//! commits, and since each holds its observations together with the
//! session record's cursor, the next hook reads those lines again and
//! records them again. Nothing is counted twice on the appliance because
//! `agent sync` reads the outbox through [`LocalStore::outbox_durable`],
//! which checkpoints (syncing the log and the store) before anything it
//! returns can be sent, once per batch that holds a delta committed since
//! its last checkpoint. `agent sync` takes what was sent off the queue
//! without a sync of its own ([`LocalStore::mark_sent`]): a power loss
//! that rolls that back sends those deltas again, and the appliance,
//! which already holds them under the same id and time, counts them as
//! duplicates.

mod catalogue;
mod checks;
mod fold;
pub mod key;
mod outbox;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use rusqlite_migration::{M, Migrations};

use super::error::AgentError;
use super::home::Home;
use super::observe::Observation;
use crate::skill::catalogue::{Catalogue, valid_slug};
use crate::skill::delta::Transition;
use crate::skill::state::Fact;

pub use catalogue::OrgConcept;
pub use checks::{Pending, Recorded, Via};
pub use fold::StateRow;
pub use key::KeyLocation;
pub use outbox::{PULL_CURSOR as PULL_CURSOR_KEY, WireBatch, WireDelta};

/// How long a writer waits for another process's transaction.
pub const BUSY_TIMEOUT: StdDuration = StdDuration::from_secs(5);

/// The size the hook lets the write-ahead log reach before it
/// checkpoints it (and truncates it): every hook process reads the whole
/// log once at open to index it, so it is kept small.
pub const HOOK_LOG_LIMIT: u64 = 1024 * 1024;

const STEPS: &[M<'static>] = &[
    M::up(include_str!("migrations/0001_store.sql"))
        .comment("meta, deltas, outbox, refused, states, cursors"),
    M::up(include_str!("migrations/0002_checks.sql")).comment("checks offered"),
    M::up(include_str!("migrations/0003_fold_checkpoints.sql"))
        .comment("where each state was folded up to"),
];

const GET_CURSOR: &str = "SELECT cursor FROM cursors WHERE source = ?1";
const SET_CURSOR: &str = "INSERT INTO cursors (source, cursor) VALUES (?1, ?2)
     ON CONFLICT (source) DO UPDATE SET cursor = excluded.cursor";
const INSERT_OWN: &str = "INSERT OR IGNORE INTO deltas (id, concept, transition, at, grade, origin)
     VALUES (?1, ?2, ?3, ?4, ?5, 'own')";
const QUEUE: &str = "INSERT INTO outbox (id) VALUES (?1)";
const GET_META: &str = "SELECT value FROM meta WHERE key = ?1";
const SET_META: &str = "INSERT INTO meta (key, value) VALUES (?1, ?2)
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";
const DELETE_META: &str = "DELETE FROM meta WHERE key = ?1";
/// The meta key of the identity that opens the hooks' signals.
const SIGNAL_IDENTITY: &str = "signal_identity";

/// The local store, open.
pub struct LocalStore {
    conn: Connection,
    path: PathBuf,
    /// Opened by the hook: `synchronous=NORMAL`, no checkpoint at close.
    hook: bool,
    key: KeyLocation,
    warning: Option<String>,
    catalogue: catalogue::Cached,
    /// The outbox's rows up to this `seq` are known to be in the store
    /// file itself (a checkpoint this connection ran completed after they
    /// were committed): [`LocalStore::outbox_durable`] does not sync
    /// again for them. `seq` is `AUTOINCREMENT`, never given twice.
    durable_outbox: std::cell::Cell<i64>,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("path", &self.path)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// The first moment a fact may carry (the appliance refuses earlier ones).
fn earliest() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// The grade a transition carries on the wire, as the appliance defaults
/// it, so the local fold and the appliance's agree.
pub(crate) fn default_grade(t: Transition) -> Option<u8> {
    match t {
        Transition::CheckPassed => Some(3),
        Transition::CheckFailed => Some(1),
        _ => None,
    }
}

impl LocalStore {
    /// Opens the store in `home`, creating it (and its key) on first use.
    /// No key derivation: the key is used raw.
    ///
    /// With the OS keychain on Linux this talks to the Secret Service over
    /// D-Bus on its own executor; it blocks, so async callers use
    /// `spawn_blocking`.
    ///
    /// # Errors
    /// [`AgentError::Key`] or [`AgentError::WrongKey`] when the store's key
    /// is missing or not the store's, I/O and SQLite errors otherwise.
    pub fn open(home: &Home) -> Result<LocalStore, AgentError> {
        Self::open_as(home, false)
    }

    /// [`LocalStore::open`] for the hook, which runs as a new process on
    /// every event of the agent: its commits are not synced
    /// (`synchronous=NORMAL`) and closing it neither checkpoints nor
    /// deletes the write-ahead log, so a hook costs no sync at all until
    /// the log passes [`HOOK_LOG_LIMIT`] (see [`LocalStore::release`]).
    /// A power loss can roll back its last commits; the session record's
    /// cursor is rolled back with them, so the next hook records them
    /// again, and `agent sync` never sends what could still be rolled
    /// back ([`LocalStore::outbox_durable`]).
    ///
    /// # Errors
    /// As [`LocalStore::open`].
    pub fn open_for_hook(home: &Home) -> Result<LocalStore, AgentError> {
        Self::open_as(home, true)
    }

    fn open_as(home: &Home, hook: bool) -> Result<LocalStore, AgentError> {
        home.ensure()?;
        let key = key::load_or_create(home)?;
        let path = home.store_path();
        let mut conn = Connection::open(&path)?;
        // SQLCipher logs a wrong key to stderr itself; the error says it.
        conn.pragma_update(None, "cipher_log_level", "NONE")?;
        conn.pragma_update(None, "key", key.pragma().as_str())?;
        let wrong = || AgentError::WrongKey {
            path: path.clone(),
            key: key.location.to_string(),
        };
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
                wrong()
            }
            other => AgentError::Store(other),
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| AgentError::io("cannot restrict the store's permissions", &path, e))?;
        }
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        if hook {
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            // The hook checkpoints itself, with a truncation
            // (`release`): a passive checkpoint in a new process would
            // copy the whole log again each time, since the log's index
            // (and what of it was already copied) is rebuilt at open.
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
            conn.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )?;
        } else {
            conn.pragma_update(None, "synchronous", "FULL")?;
        }
        Migrations::from_slice(STEPS)
            .to_latest(&mut conn)
            .map_err(|e| AgentError::Migration(e.to_string()))?;
        let mut store = LocalStore {
            conn,
            path,
            hook,
            durable_outbox: std::cell::Cell::new(0),
            key: key.location,
            warning: key.warning,
            catalogue: catalogue::Cached::default(),
        };
        store.publish_signal_recipient(&home.signal_recipient_path())?;
        Ok(store)
    }

    /// The key that opens the hooks' sealed signals (`agent::ingest`):
    /// an age X25519 identity kept in the store, made on first use.
    ///
    /// # Errors
    /// Store errors; a stored identity that does not parse.
    pub fn signal_identity(&mut self) -> Result<age::x25519::Identity, AgentError> {
        use age::secrecy::ExposeSecret;
        if let Some(text) = self.meta(SIGNAL_IDENTITY)? {
            return text.parse().map_err(|e: &str| {
                AgentError::Invalid(format!(
                    "the store's signal key does not parse ({e}); move the store aside and pair again"
                ))
            });
        }
        let identity = age::x25519::Identity::generate();
        let text = identity.to_string();
        self.set_meta(&[(SIGNAL_IDENTITY, Some(text.expose_secret()))])?;
        Ok(identity)
    }

    /// Writes the public half of [`LocalStore::signal_identity`] to
    /// `path` (what a hook seals its signals to without opening the
    /// store), unless it already holds it.
    fn publish_signal_recipient(&mut self, path: &std::path::Path) -> Result<(), AgentError> {
        let recipient = self.signal_identity()?.to_public().to_string();
        if std::fs::read_to_string(path).is_ok_and(|t| t.trim() == recipient) {
            return Ok(());
        }
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir)
            .map_err(|e| AgentError::io("cannot create the ingest directory", dir, e))?;
        let tmp = tempfile::NamedTempFile::new_in(dir)
            .map_err(|e| AgentError::io("cannot write the signal key", dir, e))?;
        std::fs::write(tmp.path(), format!("{recipient}\n"))
            .map_err(|e| AgentError::io("cannot write the signal key", tmp.path(), e))?;
        tmp.persist(path)
            .map_err(|e| AgentError::io("cannot write the signal key", path, e.error))?;
        Ok(())
    }

    /// The write-ahead log's file beside the store.
    fn log_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push("-wal");
        PathBuf::from(p)
    }

    /// Closes a hook's store. When the write-ahead log has passed
    /// [`HOOK_LOG_LIMIT`] it is checkpointed and truncated first (one
    /// sync of the log, one of the store), unless another process is
    /// using it (then the next hook tries again). Returns whether it
    /// checkpointed. A store opened with [`LocalStore::open`] closes as
    /// usual (SQLite checkpoints when the last connection closes).
    ///
    /// # Errors
    /// Store errors (the store is closed all the same).
    pub fn release(self) -> Result<bool, AgentError> {
        let size = std::fs::metadata(self.log_path()).map_or(0, |m| m.len());
        if !self.hook || size <= HOOK_LOG_LIMIT {
            return Ok(false);
        }
        // No waiting: a busy store is left for the next hook.
        self.conn.busy_timeout(StdDuration::ZERO)?;
        let (busy, _, _) = self.checkpoint("TRUNCATE")?;
        Ok(busy == 0)
    }

    /// `PRAGMA wal_checkpoint(mode)`: (busy, frames in the log, frames
    /// checkpointed); -1 frames when the store is not in WAL mode.
    fn checkpoint(&self, mode: &str) -> Result<(i64, i64, i64), AgentError> {
        Ok(self
            .conn
            .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?)
    }

    /// Where the store's key lives.
    pub fn key_location(&self) -> &KeyLocation {
        &self.key
    }

    /// The store file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The one-time warning of this open, if the key file was just made
    /// because no keychain was usable. Taken once.
    pub fn take_warning(&mut self) -> Option<String> {
        self.warning.take()
    }

    /// The org's catalogue copy (fetched at sync), else the shipped one.
    /// Parsed once per copy: while the stored copy is unchanged, this
    /// store hands out the same catalogue again.
    ///
    /// # Errors
    /// Store errors; a stored copy that no longer parses falls back to
    /// the shipped catalogue.
    pub fn catalogue(&self) -> Result<Arc<Catalogue>, AgentError> {
        catalogue::current(self)
    }

    /// Where `source` was read up to, as its adapter last recorded it.
    ///
    /// # Errors
    /// Store errors.
    pub fn cursor(&self, source: &str) -> Result<Option<String>, AgentError> {
        Ok(self
            .conn
            .query_row(GET_CURSOR, [source], |r| r.get(0))
            .optional()?)
    }

    /// One transaction: mints a UUIDv7 id per observation, stores the
    /// deltas, queues them in the outbox, refreshes the folded state, and
    /// sets `source`'s cursor. Returns how many were new: an observation
    /// of a fact already recorded here (same concept, transition and
    /// millisecond) is not recorded again.
    ///
    /// # Errors
    /// [`AgentError::Invalid`] when an observation names no concept of the
    /// catalogue or carries a time the appliance would refuse; then nothing
    /// is stored and the cursor stays where it was.
    pub fn record(
        &mut self,
        source: &str,
        cursor: &str,
        observations: &[Observation],
    ) -> Result<usize, AgentError> {
        // Only a cursor to move (the hook read lines with nothing to
        // tag): no catalogue needed.
        let catalogue = if observations.is_empty() {
            None
        } else {
            Some(self.catalogue()?)
        };
        let latest = Utc::now() + Duration::days(1);
        for o in observations {
            let known = catalogue.as_ref().is_some_and(|c| c.contains(&o.concept));
            if !valid_slug(&o.concept) || !known {
                return Err(AgentError::Invalid(format!(
                    "`{}` is not a concept of the catalogue; nothing from {source} was recorded",
                    o.concept.chars().take(64).collect::<String>()
                )));
            }
            if o.at < earliest() || o.at > latest {
                return Err(AgentError::Invalid(format!(
                    "an observation of `{}` is dated {}, before 2020 or more than a day ahead; check the clock; nothing from {source} was recorded",
                    o.concept,
                    o.at.to_rfc3339()
                )));
            }
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut new = 0;
        let mut touched: BTreeMap<&str, Vec<Fact>> = BTreeMap::new();
        {
            let mut insert = tx.prepare_cached(INSERT_OWN)?;
            let mut queue = tx.prepare_cached(QUEUE)?;
            for o in observations {
                let id = uuid::Uuid::now_v7().to_string();
                let at = o.at.timestamp_millis();
                let grade = default_grade(o.transition);
                if insert.execute(params![id, o.concept, o.transition.as_str(), at, grade])? == 1 {
                    queue.execute([&id])?;
                    touched
                        .entry(o.concept.as_str())
                        .or_default()
                        .push(fold::fact(&id, o.transition, at, grade));
                    new += 1;
                }
            }
        }
        for (concept, facts) in touched {
            fold::fold_in(&tx, concept, facts)?;
        }
        tx.execute(SET_CURSOR, [source, cursor])?;
        tx.commit()?;
        Ok(new)
    }

    pub(crate) fn meta(&self, key: &str) -> Result<Option<String>, AgentError> {
        Ok(self
            .conn
            .query_row(GET_META, [key], |r| r.get(0))
            .optional()?)
    }

    /// Sets (or, with `None`, removes) several meta values in one transaction.
    pub(crate) fn set_meta(&mut self, values: &[(&str, Option<&str>)]) -> Result<(), AgentError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (k, v) in values {
            match v {
                Some(v) => tx.execute(SET_META, [k, v])?,
                None => tx.execute(DELETE_META, [k])?,
            };
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
