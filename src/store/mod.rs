//! The encrypted store (SECURITY.md P3, P4, P18). `data_dir` (0700) holds
//! `system.db` and one database per organisation, `orgs/<slug>.db` (0600),
//! every one encrypted with SQLCipher under its own key derived from the
//! master key. This module is the only one that opens database files; a
//! PostgreSQL backend would replace it without touching the handlers.

pub mod audit;
mod checkpointer;
pub mod concepts;
pub mod db;
pub mod deltas;
pub mod devices;
pub mod generated_checks;
pub mod groups;
mod lock;
pub mod migrations;
pub mod orgs;
mod readers;
pub mod scim;
pub mod sessions;
pub mod setup;
pub mod tokens;
pub mod users;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rusqlite_migration::Migrations;

pub use db::{Db, DbOptions};
pub use lock::DataDirLock;

use crate::clock::Clock;
use crate::config::{OrgSettings, Settings};
use crate::crypto::{KeyError, KeyPurpose, MasterKey};
use crate::fsperm::{self, PermProblem};
use crate::ids::OrgSlug;

/// Everything that can go wrong opening or using the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path} does not exist: this appliance has not been initialised")]
    NotInitialised { path: PathBuf },
    #[error("unsafe permissions: {0}")]
    Permissions(#[from] PermProblem),
    #[error("{path} belongs to uid {owner}, but this process runs as uid {euid}")]
    WrongOwner {
        path: PathBuf,
        owner: u32,
        euid: u32,
    },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(
        "{path} cannot be decrypted with the configured master key (wrong key, or not an aiworklab database)"
    )]
    WrongKey { path: PathBuf },
    #[error("the database of org `{org}` is missing: {path} was created before but is gone")]
    MissingDatabase { org: OrgSlug, path: PathBuf },
    #[error("org `{org}` has no database yet")]
    OrgNotCreated { org: OrgSlug },
    #[error("{path} is in use by another running aiworklab server")]
    Locked { path: PathBuf },
    #[error("org `{org}` is not configured")]
    UnknownOrg { org: String },
    #[error("{path} has schema version {found}, newer than this binary understands ({supported})")]
    TooNew {
        path: PathBuf,
        found: usize,
        supported: usize,
    },
    #[error("migrating {path} failed: {source}")]
    Migration {
        path: PathBuf,
        #[source]
        source: rusqlite_migration::Error,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("all {size} read connections of {path} stayed busy for {waited:?}")]
    ReadersBusy {
        path: PathBuf,
        size: usize,
        waited: std::time::Duration,
    },
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A secret stored beside a row (a session id, a CSRF token) could not
    /// be made: the operating system's random source failed.
    #[error(transparent)]
    Random(#[from] crate::secrets::RandomError),
}

impl StoreError {
    /// What the operator should do about it.
    pub fn fix(&self) -> String {
        match self {
            Self::NotInitialised { .. } | Self::OrgNotCreated { .. } => {
                "start `aiworklab serve` once with this configuration to create it, as the service user".into()
            }
            Self::Permissions(p) => p.fix(),
            Self::WrongOwner { path, .. } => format!(
                "run the command as the owner of {} (e.g. `sudo -u aiworklab aiworklab ...`)",
                path.display()
            ),
            Self::Key(k) => k.fix(),
            Self::WrongKey { .. } => {
                "point keys.master_key_file at the key this data directory was created with".into()
            }
            Self::MissingDatabase { .. } => {
                "restore the file from a backup; the appliance will not silently recreate it empty".into()
            }
            Self::UnknownOrg { .. } => "use a slug listed by `aiworklab org list`".into(),
            Self::Locked { .. } => {
                "stop the other server, or give this one its own storage.data_dir".into()
            }
            Self::TooNew { .. } => {
                "run the newer aiworklab version that wrote it, or restore a backup made by this version".into()
            }
            Self::ReadersBusy { .. } => {
                "the server is overloaded: raise storage.read_pool_size, or look in the log for a slow request holding connections".into()
            }
            Self::Migration { .. } | Self::Sqlite(_) => {
                "check the log for details; restore from a backup if the file is damaged".into()
            }
            Self::Io { path, .. } => format!(
                "check that {} exists and the service user may read and write it",
                path.display()
            ),
            Self::Random(_) => {
                "check the kernel's random source (getrandom, /dev/urandom) and the logs".into()
            }
        }
    }
}

/// Whether opening may create what is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// `serve`: create the data dir, master key and databases when absent.
    Create,
    /// Operator commands: everything must exist already, so a command run
    /// by mistake never creates a second, empty installation.
    Existing,
}

/// One organisation's database.
#[derive(Debug)]
pub struct OrgDb {
    pub slug: OrgSlug,
    pub name: String,
    pub db: Db,
    /// Draws the noise of this org's aggregate releases (`crate::privacy`).
    pub noise_key: crate::crypto::SecretKey,
}

/// The open store.
pub struct Store {
    /// Held by `serve` (open in `Create` mode) for the store's lifetime.
    _lock: Option<DataDirLock>,
    data_dir: PathBuf,
    /// Signs device access tokens (derived from the master key).
    access_token_key: crate::crypto::DerivedKey,
    system: Db,
    orgs: BTreeMap<OrgSlug, OrgDb>,
}

/// A database's schema state, for readiness and `org list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbStatus {
    pub name: String,
    pub version: usize,
    pub expected: usize,
    pub error: Option<String>,
}

impl DbStatus {
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.version == self.expected
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Refuses a data dir owned by another user: files this process created
/// there would be unreadable to the service.
fn check_owner(path: &Path) -> Result<(), StoreError> {
    let owner = std::fs::metadata(path).map_err(io_err(path))?.uid();
    let euid = rustix::process::geteuid().as_raw();
    if owner != euid {
        return Err(StoreError::WrongOwner {
            path: path.to_path_buf(),
            owner,
            euid,
        });
    }
    Ok(())
}

fn migrate(db: &Db, migrations: &Migrations<'_>, expected: usize) -> Result<(), StoreError> {
    db.with_writer(|conn| {
        let found: usize = conn
            .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
            .map(|v| usize::try_from(v).unwrap_or(0))?;
        if found > expected {
            return Err(StoreError::TooNew {
                path: db.path().to_path_buf(),
                found,
                supported: expected,
            });
        }
        if found == expected {
            return Ok(());
        }
        // A few migrations read every delta and take minutes on a large
        // org (docs/operations.md, "Upgrades"): say so before and after,
        // so that a slow start is not taken for a hung one.
        let started = std::time::Instant::now();
        tracing::info!(
            path = %db.path().display(),
            from = found,
            to = expected,
            "migrating a database; on a large organisation this can take minutes, do not stop it"
        );
        migrations
            .to_latest(conn)
            .map_err(|source| StoreError::Migration {
                path: db.path().to_path_buf(),
                source,
            })?;
        tracing::info!(
            path = %db.path().display(),
            version = expected,
            secs = started.elapsed().as_secs_f64(),
            "database migrated"
        );
        Ok(())
    })
}

/// Opens (and in `Create` mode, creates) the database at `path`.
fn open_db(
    path: &Path,
    key: crate::crypto::DerivedKey,
    opts: &DbOptions,
    mode: OpenMode,
    missing: impl FnOnce() -> StoreError,
) -> Result<Db, StoreError> {
    if !path.exists() {
        if mode == OpenMode::Existing {
            return Err(missing());
        }
        db::create(path, &key)?;
    }
    fsperm::check_private_file(path)?;
    Db::open(path, key, opts)
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("data_dir", &self.data_dir)
            .field("orgs", &self.orgs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store described by `settings`.
    ///
    /// # Errors
    /// Any [`StoreError`]; each carries a `fix()`.
    pub fn open(
        settings: &Settings,
        mode: OpenMode,
        clock: &dyn Clock,
    ) -> Result<Self, StoreError> {
        let data_dir = &settings.storage.data_dir;
        if !data_dir.exists() {
            if mode == OpenMode::Existing {
                return Err(StoreError::NotInitialised {
                    path: data_dir.clone(),
                });
            }
            fsperm::ensure_private_dir(data_dir).map_err(io_err(data_dir))?;
        }
        fsperm::check_private_dir(data_dir)?;
        check_owner(data_dir)?;
        let lock = match mode {
            OpenMode::Create => Some(DataDirLock::acquire(data_dir)?),
            OpenMode::Existing => None,
        };
        let key_path = &settings.keys.master_key_file;
        let master = match mode {
            OpenMode::Create => {
                let (key, created) = MasterKey::load_or_create(key_path)?;
                if created {
                    tracing::warn!(
                        path = %key_path.display(),
                        "generated a new master key; keep an offline copy: without it the data cannot be read"
                    );
                }
                key
            }
            OpenMode::Existing => MasterKey::load(key_path)?,
        };
        let opts = DbOptions {
            busy_timeout: settings.storage.busy_timeout,
            read_pool_size: settings.storage.read_pool_size,
        };
        let mut store = Self::open_with_key(data_dir, &master, &settings.orgs, &opts, mode, clock)?;
        store._lock = lock;
        Ok(store)
    }

    /// Opens the store with an explicit master key (restore, tests).
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open_with_key(
        data_dir: &Path,
        master: &MasterKey,
        orgs: &[OrgSettings],
        opts: &DbOptions,
        mode: OpenMode,
        clock: &dyn Clock,
    ) -> Result<Self, StoreError> {
        let system_path = data_dir.join("system.db");
        let system = open_db(
            &system_path,
            master.derive(KeyPurpose::SystemDb),
            opts,
            mode,
            || StoreError::NotInitialised {
                path: system_path.clone(),
            },
        )?;
        migrate(&system, &migrations::SYSTEM, migrations::SYSTEM_VERSION)?;

        let orgs_dir = data_dir.join("orgs");
        if mode == OpenMode::Create {
            fsperm::ensure_private_dir(&orgs_dir).map_err(io_err(&orgs_dir))?;
        }
        if orgs_dir.exists() {
            fsperm::check_private_dir(&orgs_dir)?;
        }
        let registered = system.read(|c| orgs::list(c).map_err(StoreError::from))?;
        let mut open = BTreeMap::new();
        for org in orgs {
            let path = orgs_dir.join(format!("{}.db", org.slug));
            let known = registered.iter().any(|r| r.slug == org.slug);
            if known && !path.exists() {
                return Err(StoreError::MissingDatabase {
                    org: org.slug.clone(),
                    path,
                });
            }
            let db = open_db(
                &path,
                master.derive(KeyPurpose::OrgDb(&org.slug)),
                opts,
                mode,
                || StoreError::OrgNotCreated {
                    org: org.slug.clone(),
                },
            )?;
            migrate(&db, &migrations::ORG, migrations::ORG_VERSION)?;
            let now = clock.now();
            system.write(|tx| {
                orgs::upsert(tx, &org.slug, &org.name, now).map_err(StoreError::from)
            })?;
            open.insert(
                org.slug.clone(),
                OrgDb {
                    slug: org.slug.clone(),
                    name: org.name.clone(),
                    db,
                    noise_key: crate::crypto::SecretKey::new(
                        master.derive(KeyPurpose::PrivacyNoise(&org.slug)),
                    ),
                },
            );
        }
        Ok(Self {
            _lock: None,
            data_dir: data_dir.to_path_buf(),
            access_token_key: master.derive(KeyPurpose::AccessTokens),
            system,
            orgs: open,
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The key that signs device access tokens.
    pub fn access_token_key(&self) -> &[u8; 32] {
        &self.access_token_key
    }

    pub fn system(&self) -> &Db {
        &self.system
    }

    /// The open org with this slug.
    ///
    /// # Errors
    /// [`StoreError::UnknownOrg`] when it is not configured.
    pub fn org(&self, slug: &str) -> Result<&OrgDb, StoreError> {
        OrgSlug::parse(slug)
            .ok()
            .and_then(|s| self.orgs.get(&s))
            .ok_or_else(|| StoreError::UnknownOrg {
                org: slug.chars().take(64).collect(),
            })
    }

    pub fn orgs(&self) -> impl Iterator<Item = &OrgDb> {
        self.orgs.values()
    }

    /// Orgs present in `system.db` but not in the configuration: their data
    /// is kept and not served.
    ///
    /// # Errors
    /// A store error reading `system.db`.
    pub fn unconfigured_orgs(&self) -> Result<Vec<orgs::OrgRecord>, StoreError> {
        let all = self
            .system
            .read(|c| orgs::list(c).map_err(StoreError::from))?;
        Ok(all
            .into_iter()
            .filter(|r| !self.orgs.contains_key(&r.slug))
            .collect())
    }

    /// Closes, in every database, the read connections idle for `idle_for`
    /// or longer. Returns how many were closed.
    pub fn close_idle_readers(&self, idle_for: std::time::Duration) -> usize {
        std::iter::once(&self.system)
            .chain(self.orgs.values().map(|o| &o.db))
            .map(|db| db.close_idle_readers(idle_for))
            .sum()
    }

    /// Schema state of every database, read through the read-only pools.
    pub fn status(&self) -> Vec<DbStatus> {
        let probe = |name: String, db: &Db, expected: usize| {
            let version: Result<usize, StoreError> = db.read(|c| {
                let v: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
                Ok(usize::try_from(v).unwrap_or(0))
            });
            match version {
                Ok(version) => DbStatus {
                    name,
                    version,
                    expected,
                    error: None,
                },
                Err(e) => DbStatus {
                    name,
                    version: 0,
                    expected,
                    error: Some(e.to_string()),
                },
            }
        };
        let mut out = vec![probe(
            "system".into(),
            &self.system,
            migrations::SYSTEM_VERSION,
        )];
        for org in self.orgs.values() {
            out.push(probe(
                format!("org:{}", org.slug),
                &org.db,
                migrations::ORG_VERSION,
            ));
        }
        out
    }
}
