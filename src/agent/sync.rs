//! Pairing and the sync client: `agent pair`, `agent unpair`, `agent sync`.
//!
//! A sync fetches the org's catalogue copy, pushes the outbox in batches
//! of at most [`MAX_BATCH`], [`IN_FLIGHT`] on the wire at once (ids
//! minted once at record time, so a batch
//! sent again after a lost answer is only counted as duplicates by the
//! appliance), then pulls the engineer's deltas from their other devices
//! since the stored cursor. Access tokens are refreshed with the rotating
//! refresh secret, and the next secret is stored before anything else is
//! done with it: the appliance revokes a device that presents a rotated
//! secret. A 429 is honoured (waited out when short, remembered when
//! long); an unreachable appliance leaves everything queued; a revoked
//! device stops and says how to pair again.

use std::collections::VecDeque;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::client::{ApiError, Grant, Pushed, Server};
use super::error::AgentError;
use super::store::{LocalStore, WireBatch};

/// Most deltas one push carries.
pub const MAX_BATCH: usize = 500;
/// Pushes on the wire at once. With one, the appliance waited while the
/// kernel took each batch off its queue and read the next, and the
/// kernel while the appliance stored it; with two, the next batch is
/// sent while the last is stored (a 100,000-delta backlog: about 10 s
/// down to 7 to 9, `docs/benchmarks.md`). A batch is sent when the one
/// two ahead of it comes back, a whole push after the one just ahead of
/// it, so batches reach the appliance in order; only the first two, sent
/// together, may swap, and the appliance folds facts in whatever order
/// they arrive.
const IN_FLIGHT: usize = 2;
/// Deltas asked for per pull page.
const PULL_PAGE: u32 = 1000;
/// An access token this close to expiry is refreshed first.
const REFRESH_MARGIN: Duration = Duration::seconds(60);

/// Meta keys of the device's credentials and sync bookkeeping.
pub(crate) mod keys {
    pub const SERVER: &str = "server_url";
    pub const CA_PEM: &str = "server_ca_pem";
    pub const DEVICE_ID: &str = "device_id";
    pub const DEVICE_NAME: &str = "device_name";
    pub const REFRESH: &str = "refresh_token";
    pub const ACCESS: &str = "access_token";
    pub const ACCESS_EXPIRES: &str = "access_expires_at";
    pub const REVOKED: &str = "revoked";
    pub const NOT_BEFORE: &str = "not_before";
    pub const LAST_SYNC: &str = "last_sync_at";
    pub const LAST_ERROR: &str = "last_sync_error";
    pub const LAST_ATTEMPT: &str = "last_sync_attempt_at";
}

/// The device's pairing, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pairing {
    pub server: String,
    pub device_id: String,
    pub device_name: String,
    /// Why the appliance stopped accepting this device, once it did.
    pub revoked: Option<String>,
}

/// The stored pairing, if any.
///
/// # Errors
/// Store errors.
pub fn pairing(store: &LocalStore) -> Result<Option<Pairing>, AgentError> {
    let (Some(server), Some(device_id)) = (store.meta(keys::SERVER)?, store.meta(keys::DEVICE_ID)?)
    else {
        return Ok(None);
    };
    Ok(Some(Pairing {
        server,
        device_id,
        device_name: store.meta(keys::DEVICE_NAME)?.unwrap_or_default(),
        revoked: store.meta(keys::REVOKED)?,
    }))
}

fn server_of(store: &LocalStore) -> Result<Server, AgentError> {
    let url = store.meta(keys::SERVER)?.ok_or(AgentError::NotPaired)?;
    Server::new(&url, store.meta(keys::CA_PEM)?.as_deref())
}

fn expiry(grant: &Grant, now: DateTime<Utc>) -> String {
    (now + Duration::seconds(grant.expires_in))
        .timestamp_millis()
        .to_string()
}

/// Exchanges a pairing code for this device's tokens and stores them with
/// the server's address and CA. An install that was revoked may pair again.
///
/// # Errors
/// [`AgentError::AlreadyPaired`]; [`AgentError::Config`] for a refused URL
/// or CA; the appliance's refusal of the code, with what to do.
pub async fn pair(
    store: &mut LocalStore,
    url: &str,
    code: &str,
    device_name: &str,
    ca_pem: Option<&str>,
) -> Result<Pairing, AgentError> {
    if let Some(p) = pairing(store)?
        && p.revoked.is_none()
    {
        return Err(AgentError::AlreadyPaired(p.server));
    }
    let server = Server::new(url, ca_pem)?;
    let code = code.trim();
    let grant = server.pair(code, device_name).await.map_err(|e| match e {
        ApiError::Unauthorized(detail) => AgentError::Server(format!(
            "{detail}; ask for a new code on your account page (or your administrator: `aiworklab device pairing-code`)"
        )),
        ApiError::Schema { message, .. } => AgentError::Server(message),
        ApiError::Agent(a) => a,
    })?;
    let same_server = store.meta(keys::SERVER)?.as_deref() == Some(server.url());
    let expires = expiry(&grant, Utc::now());
    let mut values = vec![
        (keys::SERVER, Some(server.url())),
        (keys::CA_PEM, ca_pem),
        (keys::DEVICE_ID, Some(grant.device_id.as_str())),
        (keys::DEVICE_NAME, Some(device_name)),
        (keys::REFRESH, Some(grant.refresh_token.as_str())),
        (keys::ACCESS, Some(grant.access_token.as_str())),
        (keys::ACCESS_EXPIRES, Some(expires.as_str())),
        (keys::REVOKED, None),
        (keys::NOT_BEFORE, None),
        (keys::LAST_ERROR, None),
    ];
    if !same_server {
        values.push((super::store::PULL_CURSOR_KEY, None));
    }
    store.set_meta(&values)?;
    pairing(store)?.ok_or(AgentError::NotPaired)
}

/// What `unpair` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unpaired {
    pub server: String,
    /// Whether the appliance confirmed the revocation; when not, the
    /// reason (the engineer can revoke it on their account page).
    pub revoked_on_server: Result<(), String>,
}

/// Revokes the device on the appliance when it is reachable, then forgets
/// the credentials whatever the appliance said. The local graph and the
/// outbox stay (a later pairing sends what is queued).
///
/// # Errors
/// [`AgentError::NotPaired`]; store errors.
pub async fn unpair(store: &mut LocalStore) -> Result<Unpaired, AgentError> {
    let p = pairing(store)?.ok_or(AgentError::NotPaired)?;
    let revoked_on_server = if p.revoked.is_some() {
        Ok(())
    } else {
        match Session::start(store).await {
            Ok(mut s) => s.revoke_self(&p.device_id).await.map_err(|e| e.to_string()),
            Err(AgentError::Revoked(_)) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    };
    store.set_meta(&[
        (keys::SERVER, None),
        (keys::CA_PEM, None),
        (keys::DEVICE_ID, None),
        (keys::DEVICE_NAME, None),
        (keys::REFRESH, None),
        (keys::ACCESS, None),
        (keys::ACCESS_EXPIRES, None),
        (keys::REVOKED, None),
        (keys::NOT_BEFORE, None),
    ])?;
    Ok(Unpaired {
        server: p.server,
        revoked_on_server,
    })
}

/// An authenticated conversation with the appliance.
pub(crate) struct Session<'s> {
    store: &'s mut LocalStore,
    server: Server,
    access: String,
}

impl<'s> Session<'s> {
    /// Loads the credentials, refreshing the access token when it is close
    /// to expiry.
    pub(crate) async fn start(store: &'s mut LocalStore) -> Result<Session<'s>, AgentError> {
        if let Some(reason) = store.meta(keys::REVOKED)? {
            return Err(AgentError::Revoked(reason));
        }
        let server = server_of(store)?;
        let fresh = store
            .meta(keys::ACCESS_EXPIRES)?
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(DateTime::from_timestamp_millis)
            .is_some_and(|exp| exp - REFRESH_MARGIN > Utc::now());
        let access = store.meta(keys::ACCESS)?.filter(|_| fresh);
        let mut s = Session {
            store,
            server,
            access: access.unwrap_or_default(),
        };
        if s.access.is_empty() {
            s.refresh().await?;
        }
        Ok(s)
    }

    /// Rotates the refresh secret. The next secret is stored before this
    /// returns: losing it would revoke the device at the next refresh.
    async fn refresh(&mut self) -> Result<(), AgentError> {
        let secret = self
            .store
            .meta(keys::REFRESH)?
            .ok_or(AgentError::NotPaired)?;
        match self.server.refresh(&secret).await {
            Ok(grant) => {
                let expires = expiry(&grant, Utc::now());
                self.store.set_meta(&[
                    (keys::REFRESH, Some(grant.refresh_token.as_str())),
                    (keys::ACCESS, Some(grant.access_token.as_str())),
                    (keys::ACCESS_EXPIRES, Some(expires.as_str())),
                ])?;
                self.access = grant.access_token;
                Ok(())
            }
            Err(ApiError::Unauthorized(detail)) => Err(self.revoked(detail)?),
            Err(ApiError::Schema { message, .. }) => Err(AgentError::Server(message)),
            Err(ApiError::Agent(e)) => Err(e),
        }
    }

    /// Remembers that the appliance no longer accepts this device.
    fn revoked(&mut self, detail: String) -> Result<AgentError, AgentError> {
        let reason = format!("the appliance no longer accepts this device ({detail})");
        self.store
            .set_meta(&[(keys::REVOKED, Some(reason.as_str())), (keys::ACCESS, None)])?;
        Ok(AgentError::Revoked(reason))
    }

    /// Runs `call` with the access token; on a 401 refreshes once and
    /// retries; a second 401 means the device is revoked.
    async fn authed<T, F, Fut>(&mut self, call: F) -> Result<T, ApiError>
    where
        F: Fn(Server, String) -> Fut,
        Fut: std::future::Future<Output = Result<T, ApiError>>,
    {
        match call(self.server.clone(), self.access.clone()).await {
            Err(ApiError::Unauthorized(_)) => {
                self.refresh().await?;
                match call(self.server.clone(), self.access.clone()).await {
                    Err(ApiError::Unauthorized(detail)) => Err(self.revoked(detail)?.into()),
                    other => other,
                }
            }
            other => other,
        }
    }

    async fn revoke_self(&mut self, device_id: &str) -> Result<(), AgentError> {
        let id = device_id.to_string();
        self.authed(|s, a| {
            let id = id.clone();
            async move { s.revoke_self(&a, &id).await }
        })
        .await
        .map_err(flatten)
    }

    /// One check about `concept` from the appliance's question service.
    pub(crate) async fn next_check(
        &mut self,
        concept: &str,
    ) -> Result<crate::agent::checks::ServedCheck, AgentError> {
        let concept = concept.to_string();
        self.authed(|s, a| {
            let concept = concept.clone();
            async move { s.next_check(&a, &concept).await }
        })
        .await
        .map_err(flatten)
    }

    /// The appliance's grade of an answer in the engineer's own words.
    pub(crate) async fn grade(
        &mut self,
        check_id: &str,
        answer: &str,
    ) -> Result<crate::agent::checks::RemoteGrade, AgentError> {
        let (id, answer) = (check_id.to_string(), answer.to_string());
        self.authed(|s, a| {
            let (id, answer) = (id.clone(), answer.clone());
            async move { s.grade(&a, &id, &answer).await }
        })
        .await
        .map_err(flatten)
    }

    /// Whether the access token works (doctor): a refresh when needed and
    /// one authenticated read.
    pub(crate) async fn check(&mut self) -> Result<(), AgentError> {
        self.authed(|s, a| async move { s.concepts(&a).await.map(|_| ()) })
            .await
            .map_err(flatten)
    }
}

fn flatten(e: ApiError) -> AgentError {
    match e {
        ApiError::Agent(a) => a,
        ApiError::Unauthorized(d) => AgentError::Revoked(d),
        ApiError::Schema { pointer, message } => {
            AgentError::Server(format!("{pointer}: {message}"))
        }
    }
}

/// How a sync behaves.
#[derive(Debug, Clone, Copy)]
pub struct SyncOptions {
    /// Deltas per push, 1 to [`MAX_BATCH`].
    pub batch: usize,
    /// A 429 asking for at most this long is waited out; a longer one
    /// ends the sync (the wait is remembered and honoured next time).
    pub max_wait: StdDuration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            batch: MAX_BATCH,
            max_wait: StdDuration::from_secs(30),
        }
    }
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Deltas the appliance took as new.
    pub accepted: usize,
    /// Deltas it already held (a batch sent again after a lost answer).
    pub duplicates: usize,
    /// Deltas it refused for good (e.g. a concept retired meanwhile).
    pub refused: usize,
    /// Deltas pulled from the engineer's other devices, new here.
    pub pulled: usize,
    /// Deltas still queued.
    pub queued: usize,
    /// Concepts in the org's catalogue copy.
    pub concepts: usize,
}

/// One sync: catalogue, push, pull. Bookkeeping (last sync, last error,
/// a server-requested wait) is stored whatever the outcome.
///
/// # Errors
/// [`AgentError::NotPaired`], [`AgentError::Revoked`],
/// [`AgentError::RateLimited`] (also before any request, while an earlier
/// wait is in force), [`AgentError::Unreachable`]; nothing queued is lost.
pub async fn sync(store: &mut LocalStore, opts: SyncOptions) -> Result<SyncReport, AgentError> {
    if let Some(until) = store
        .meta(keys::NOT_BEFORE)?
        .and_then(|v| v.parse::<i64>().ok())
        .and_then(DateTime::from_timestamp_millis)
    {
        let left = (until - Utc::now()).num_seconds();
        if left > 0 {
            return Err(AgentError::RateLimited {
                retry_after_secs: u64::try_from(left).unwrap_or(1),
            });
        }
    }
    let now = Utc::now().timestamp_millis().to_string();
    store.set_meta(&[(keys::LAST_ATTEMPT, Some(now.as_str()))])?;
    let result = run(store, opts).await;
    let now = Utc::now();
    match &result {
        Ok(_) => {
            let at = now.timestamp_millis().to_string();
            store.set_meta(&[
                (keys::LAST_SYNC, Some(at.as_str())),
                (keys::LAST_ERROR, None),
                (keys::NOT_BEFORE, None),
            ])?;
        }
        Err(e) => {
            let msg = e.to_string();
            let wait = match e {
                AgentError::RateLimited { retry_after_secs } => Some(
                    (now + Duration::seconds(i64::try_from(*retry_after_secs).unwrap_or(60)))
                        .timestamp_millis()
                        .to_string(),
                ),
                _ => None,
            };
            store.set_meta(&[
                (keys::LAST_ERROR, Some(msg.as_str())),
                (keys::NOT_BEFORE, wait.as_deref()),
            ])?;
        }
    }
    result
}

/// A push on the wire.
type InFlight = tokio::task::JoinHandle<Result<Pushed, ApiError>>;

/// What a push came back with. A push that panicked panics here, as it
/// would have had it run on this task.
async fn landed(push: InFlight) -> Result<Pushed, ApiError> {
    match push.await {
        Ok(result) => result,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Waits out a short 429, or gives up with it.
async fn wait_or_stop(e: ApiError, opts: SyncOptions) -> Result<(), ApiError> {
    match e {
        ApiError::Agent(AgentError::RateLimited { retry_after_secs })
            if StdDuration::from_secs(retry_after_secs) <= opts.max_wait =>
        {
            tokio::time::sleep(StdDuration::from_secs(retry_after_secs.max(1))).await;
            Ok(())
        }
        other => Err(other),
    }
}

async fn run(store: &mut LocalStore, opts: SyncOptions) -> Result<SyncReport, AgentError> {
    let batch_size = opts.batch.clamp(1, MAX_BATCH);
    let mut report = SyncReport::default();
    let mut s = Session::start(store).await?;
    // The org's catalogue copy first: the kernel tags with it.
    let listing = loop {
        match s.authed(|sv, a| async move { sv.concepts(&a).await }).await {
            Ok(l) => break l,
            Err(e) => wait_or_stop(e, opts).await.map_err(flatten)?,
        }
    };
    report.concepts = s.store.set_org_catalogue(&listing)?;
    // Push, oldest first, the next batch on the wire while the appliance
    // stores the one before it.
    let mut in_flight: VecDeque<(Vec<String>, InFlight)> = VecDeque::new();
    // The queue position of the last delta in flight.
    let mut after = 0;
    // A 401 right after a refresh means the device is revoked.
    let mut refreshed = false;
    loop {
        while in_flight.len() < IN_FLIGHT {
            // Durable before it is sent: a hook's commit is not synced,
            // and a delta rolled back after it was sent would be recorded
            // again under a new id.
            let (deltas, last) = s.store.outbox_durable_after(after, batch_size)?;
            if deltas.is_empty() {
                break;
            }
            after = last;
            let ids: Vec<String> = deltas.iter().map(|d| d.id.clone()).collect();
            let (server, access) = (s.server.clone(), s.access.clone());
            let batch = WireBatch { deltas };
            let push = tokio::spawn(async move { server.push(&access, &batch).await });
            in_flight.push_back((ids, push));
        }
        let Some((ids, push)) = in_flight.pop_front() else {
            break;
        };
        match landed(push).await {
            Ok(p) => {
                s.store.mark_sent(&ids)?;
                report.accepted += p.accepted;
                report.duplicates += p.duplicates;
                refreshed = false;
            }
            Err(e) => {
                let after_refresh = std::mem::take(&mut refreshed);
                // The batches behind it finish (what they delivered leaves
                // the queue); the queue is then read again from its head.
                for (ids, push) in in_flight.drain(..) {
                    if let Ok(p) = landed(push).await {
                        s.store.mark_sent(&ids)?;
                        report.accepted += p.accepted;
                        report.duplicates += p.duplicates;
                    }
                }
                after = 0;
                match e {
                    ApiError::Schema { pointer, message } => {
                        // One delta the appliance will never take: set it
                        // aside with the reason, send the rest.
                        let index = pointer
                            .strip_prefix("/deltas/")
                            .and_then(|r| r.split('/').next())
                            .and_then(|i| i.parse::<usize>().ok());
                        let Some(id) = index.and_then(|i| ids.get(i)) else {
                            return Err(AgentError::Server(format!("{pointer}: {message}")));
                        };
                        s.store.refuse(id, &message)?;
                        report.refused += 1;
                    }
                    ApiError::Unauthorized(detail) if after_refresh => {
                        return Err(s.revoked(detail)?);
                    }
                    ApiError::Unauthorized(_) => {
                        s.refresh().await?;
                        refreshed = true;
                    }
                    e => wait_or_stop(e, opts).await.map_err(flatten)?,
                }
            }
        }
    }
    // Pull what the engineer's other devices sent.
    loop {
        let since = s
            .store
            .meta(super::store::PULL_CURSOR_KEY)?
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        let page = match s
            .authed(|sv, a| async move { sv.pull(&a, since, PULL_PAGE).await })
            .await
        {
            Ok(p) => p,
            Err(e) => {
                wait_or_stop(e, opts).await.map_err(flatten)?;
                continue;
            }
        };
        report.pulled += s.store.apply_pulled(&page.deltas, page.cursor)?;
        if !page.more || page.deltas.is_empty() {
            break;
        }
    }
    report.queued = s.store.outbox_len()?;
    Ok(report)
}
