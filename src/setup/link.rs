//! The setup link (SECURITY.md P5): while an installation has no admin,
//! each start of `serve` makes a new 256-bit setup secret, stores only its
//! SHA-256 in `system.db`, prints the link once and writes it to a 0600
//! file in the data directory. Opening the link asks for the first admin's
//! user name and email; submitting creates that admin, signs them in and
//! consumes the secret. The link stops working when it was used, when any
//! admin exists (however made), or 24 hours after it was made.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::audit::Context;
use crate::clock::{from_millis, to_millis};
use crate::config::Settings;
use crate::ids::OrgSlug;
use crate::secrets::{self, BearerSecret, SecretHash, SecretKind};
use crate::store::setup as sql;
use crate::store::{Store, StoreError};
use crate::users::{self, AdminCtx, UserError};

/// How long a setup link works at most.
pub const TTL: Duration = Duration::hours(24);

/// The file in the data directory that holds the link while it works.
pub const FILE_NAME: &str = "setup-url";

/// The audit actor of what the link does: the operator, who alone could
/// read the server's output or the data directory.
pub const ACTOR: &str = "operator:setup-link";

/// What can go wrong with the setup link.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the setup link to {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Random(#[from] secrets::RandomError),
    #[error(transparent)]
    User(#[from] UserError),
}

/// A setup link just made: shown once, and kept in `file` until used.
#[derive(Debug)]
pub struct Issued {
    pub url: url::Url,
    pub file: PathBuf,
    pub expires_at: DateTime<Utc>,
}

/// Where the link is written while it works, as an absolute path (it is
/// shown to the operator, who may be in another directory).
pub fn file_path(data_dir: &Path) -> PathBuf {
    let file = data_dir.join(FILE_NAME);
    std::path::absolute(&file).unwrap_or(file)
}

/// Whether any configured org has an active admin (granted directly or
/// through one of its `admin_groups`).
///
/// # Errors
/// Store errors.
pub fn admin_exists(store: &Store, settings: &Settings) -> Result<bool, StoreError> {
    for org in store.orgs() {
        let groups = settings
            .org(&org.slug)
            .map(|o| o.admin_groups.clone())
            .unwrap_or_default();
        if org
            .db
            .read(|c| sql::any_admin(c, &groups).map_err(StoreError::from))?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// At the start of `serve`: with no admin, a new setup link (replacing any
/// earlier one), written to its file; with an admin, forgets any link and
/// removes its file.
///
/// # Errors
/// Store errors, the random source, or the file not being writable.
pub fn at_start(
    store: &Store,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<Option<Issued>, SetupError> {
    if admin_exists(store, settings)? {
        retire(store)?;
        return Ok(None);
    }
    let secret = secrets::generate(SecretKind::Setup)?;
    let expires_at = now + TTL;
    store.system().write(|tx| {
        sql::put_secret(tx, &secret.hash().0, to_millis(now), to_millis(expires_at))
            .map_err(StoreError::from)
    })?;
    let url = url_of(settings, &secret);
    let file = file_path(store.data_dir());
    crate::fsperm::replace_private_file(&file, format!("{url}\n").as_bytes()).map_err(
        |source| SetupError::File {
            path: file.clone(),
            source,
        },
    )?;
    Ok(Some(Issued {
        url,
        file,
        expires_at,
    }))
}

fn url_of(settings: &Settings, secret: &BearerSecret) -> url::Url {
    let mut url = settings.server.public_url.clone();
    url.set_path(&format!("setup/{}", secret.expose()));
    url
}

/// Forgets the setup secret and removes the link's file.
///
/// # Errors
/// Store errors, or the file not being removable.
pub fn retire(store: &Store) -> Result<(), SetupError> {
    store
        .system()
        .write(|tx| sql::delete_secret(tx).map_err(StoreError::from))?;
    let file = file_path(store.data_dir());
    match std::fs::remove_file(&file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SetupError::File { path: file, source }),
    }
}

/// Whether a setup link is waiting to be used (for the sign-in page's
/// hint to loopback visitors; never the link itself).
///
/// # Errors
/// Store errors.
pub fn pending(store: &Store, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let row = store
        .system()
        .read(|c| sql::get_secret(c).map_err(StoreError::from))?;
    Ok(row.is_some_and(|r| r.expires_at > to_millis(now)))
}

/// When the stored link expires, if one is stored and unexpired.
///
/// # Errors
/// Store errors.
pub fn expiry(store: &Store, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, StoreError> {
    let row = store
        .system()
        .read(|c| sql::get_secret(c).map_err(StoreError::from))?;
    Ok(row
        .filter(|r| r.expires_at > to_millis(now))
        .map(|r| from_millis(r.expires_at)))
}

/// Whether `presented` is the stored, unexpired setup secret and no admin
/// exists yet.
///
/// # Errors
/// Store errors.
pub fn is_valid(
    store: &Store,
    settings: &Settings,
    presented: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    if !secrets::well_formed(presented, SecretKind::Setup) {
        return Ok(false);
    }
    let row = store
        .system()
        .read(|c| sql::get_secret(c).map_err(StoreError::from))?;
    let matches = row.is_some_and(|r| {
        r.expires_at > to_millis(now)
            && SecretHash::from_slice(&r.secret_hash).is_some_and(|h| h.verify(presented))
    });
    Ok(matches && !admin_exists(store, settings)?)
}

/// The first admin, as the setup form gives them.
#[derive(Debug, Clone)]
pub struct FirstAdmin {
    pub org: String,
    pub user_name: String,
    pub email: String,
    pub display_name: String,
}

/// Why the setup form was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The link was used, expired, replaced, or an admin exists.
    Dead,
    /// Something in the form: what, and how to fix it.
    Invalid(String),
}

/// A plausible email address: one `@` with text on both sides, no spaces
/// or control characters, at most 254 characters. The identity provider
/// is the authority on it; this only catches typing mistakes.
fn check_email(email: &str) -> Result<(), String> {
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email
            .split_once('@')
            .is_some_and(|(a, d)| !a.is_empty() && d.contains('.') && !d.contains('@'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not an email address; write it like priya@example.com",
            email.chars().take(80).collect::<String>()
        ))
    }
}

/// Checks the form before the secret is spent, so a typo does not use up
/// the link.
fn check_form(store: &Store, form: &FirstAdmin) -> Result<(), Refused> {
    let org = store
        .org(&form.org)
        .map_err(|_| Refused::Invalid("choose one of the organisations listed".into()))?;
    users::check_user_name(&form.user_name).map_err(|e| Refused::Invalid(e.to_string()))?;
    check_email(&form.email).map_err(Refused::Invalid)?;
    if form.display_name.chars().count() > 256 || form.display_name.chars().any(char::is_control) {
        return Err(Refused::Invalid(
            "a display name is at most 256 characters, with no control characters".into(),
        ));
    }
    match users::find(org, &form.user_name) {
        Err(UserError::NotFound) => Ok(()),
        Ok(_) => Err(Refused::Invalid(format!(
            "the user name {} is taken; choose another",
            form.user_name
        ))),
        Err(e) => Err(Refused::Invalid(e.to_string())),
    }
}

/// Uses the link: checks the form, consumes the secret, creates the first
/// admin (audited as the operator's setup, `setup.first_admin`), removes
/// the link's file and starts the admin's session, whose `amr` is
/// `["setup-link"]`. Returns the org and the session id.
///
/// # Errors
/// `Ok(Err(refused))` for a dead link or a bad form; `Err` for store,
/// user and file errors.
pub fn redeem(
    store: &Store,
    settings: &Settings,
    presented: &str,
    form: &FirstAdmin,
    request: &Context,
    now: DateTime<Utc>,
) -> Result<Result<(OrgSlug, BearerSecret), Refused>, SetupError> {
    if !is_valid(store, settings, presented, now)? {
        if admin_exists(store, settings)? {
            retire(store)?;
        }
        return Ok(Err(Refused::Dead));
    }
    if let Err(r) = check_form(store, form) {
        return Ok(Err(r));
    }
    let hash = SecretHash::of(presented);
    let taken = store
        .system()
        .write(|tx| sql::take_secret(tx, &hash.0, to_millis(now)).map_err(StoreError::from))?;
    if !taken {
        return Ok(Err(Refused::Dead));
    }
    // From here the link is spent: if anything below fails, the next start
    // of `serve` (still without an admin) makes a new one.
    let org = store.org(&form.org)?;
    let ctx = Context {
        actor: ACTOR.into(),
        ..request.clone()
    };
    let admin = AdminCtx::setup(ctx.clone());
    let user = users::add(
        org,
        &admin,
        &form.user_name,
        form.display_name.trim(),
        Some(&form.email),
        true,
        now,
    )?;
    org.db.write(|tx| {
        ctx.record(
            tx,
            "setup.first_admin",
            Some(&user.id),
            &json!({ "user_name": user.user_name }),
            now,
        )
    })?;
    retire(store)?;
    let session_ctx = Context {
        actor: format!("user:{}", user.id),
        ..request.clone()
    };
    let session = crate::sessions::create(
        org,
        &user.id,
        now,
        &["setup-link".to_string()],
        &session_ctx,
        now,
    )?;
    Ok(Ok((org.slug.clone(), session)))
}

#[cfg(test)]
mod tests {
    use super::check_email;

    #[test]
    fn emails_are_checked_only_for_typing_mistakes() {
        for ok in ["priya@example.com", "a.b+c@sub.example.co.uk"] {
            assert!(check_email(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "priya",
            "@example.com",
            "priya@",
            "pri ya@example.com",
            "a@b@c.d",
            "a@localhost",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }
}
