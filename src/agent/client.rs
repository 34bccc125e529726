//! The appliance's device API as the kernel speaks it: pairing, token
//! refresh, push, pull, the org's concept listing and a device revoking
//! itself. `https://` always, with the system roots and an optional
//! private CA; plain `http://` only to a loopback address. Every answer is
//! mapped to an [`ApiError`] the sync loop can act on.

use std::time::Duration;

use serde::Deserialize;

use super::checks::{RemoteGrade, ServedCheck};
use super::error::AgentError;
use super::store::{WireBatch, WireDelta};

/// Tokens the appliance hands out at pairing and at each refresh.
#[derive(Debug, Clone, Deserialize)]
pub struct Grant {
    pub device_id: String,
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds the access token lives.
    pub expires_in: i64,
}

/// What a push did.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Pushed {
    pub accepted: usize,
    pub duplicates: usize,
}

/// A page of pulled deltas.
#[derive(Debug, Clone, Deserialize)]
pub struct Pulled {
    pub deltas: Vec<WireDelta>,
    pub cursor: i64,
    pub more: bool,
}

/// Why a call failed, as far as the caller can act on it.
#[derive(Debug)]
pub enum ApiError {
    /// 401: the token (or code) was refused; the detail says why.
    Unauthorized(String),
    /// 400 naming a delta of the batch (`/deltas/N/...`).
    Schema { pointer: String, message: String },
    /// Anything else: unreachable, rate-limited, refused.
    Agent(AgentError),
}

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        Self::Agent(e)
    }
}

#[derive(Deserialize, Default)]
struct Problem {
    #[serde(default)]
    detail: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    pointer: Option<String>,
}

/// Checks a server URL: `https://`, or `http://` to a loopback host only.
/// Returns it with a trailing slash, ready to join API paths to.
///
/// # Errors
/// [`AgentError::Config`] naming what is wrong.
pub fn check_url(raw: &str) -> Result<url::Url, AgentError> {
    let mut url = url::Url::parse(raw.trim()).map_err(|e| {
        AgentError::Config(format!(
            "`{raw}` is not a URL ({e}); give the appliance's address, e.g. https://skills.example.com"
        ))
    })?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(AgentError::Config(format!(
                "`{raw}` is plain http to a host that is not this machine: the device's tokens would cross the network in clear; use https:// (with --ca-file PEM for a private CA)"
            )));
        }
        other => {
            return Err(AgentError::Config(format!(
                "`{raw}` has scheme `{other}`; use https://"
            )));
        }
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(AgentError::Config(format!(
            "`{raw}` carries a query, fragment or user name; give only the appliance's address"
        )));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// The appliance, as a client.
#[derive(Debug, Clone)]
pub struct Server {
    base: url::Url,
    http: reqwest::Client,
}

impl Server {
    /// A client for `url` trusting the system roots and, when given, the
    /// certificates of `ca_pem`.
    ///
    /// # Errors
    /// [`AgentError::Config`] for a refused URL or an unusable CA file.
    pub fn new(url: &str, ca_pem: Option<&str>) -> Result<Server, AgentError> {
        let base = check_url(url)?;
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(true)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("aiworklab-agent/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| {
                AgentError::Config(format!("the CA file is not PEM certificates: {e}"))
            })?;
            if certs.is_empty() {
                return Err(AgentError::Config(
                    "the CA file holds no certificate (-----BEGIN CERTIFICATE-----)".into(),
                ));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let http = b
            .build()
            .map_err(|e| AgentError::Config(format!("cannot set up HTTPS: {e}")))?;
        Ok(Server { base, http })
    }

    /// The address as given at pairing (with a trailing slash).
    pub fn url(&self) -> &str {
        self.base.as_str()
    }

    fn endpoint(&self, path: &str) -> Result<url::Url, AgentError> {
        self.base
            .join(path)
            .map_err(|e| AgentError::Config(format!("bad server URL: {e}")))
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ApiError> {
        let res = req.send().await.map_err(|e| {
            let reason = if e.is_connect() {
                format!("cannot connect ({})", root_cause(&e))
            } else if e.is_timeout() {
                "no answer in time".to_string()
            } else {
                root_cause(&e)
            };
            AgentError::Unreachable {
                url: self.base.to_string(),
                reason,
            }
        })?;
        let status = res.status();
        if status.is_success() {
            return Ok(res);
        }
        let retry_after = res
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let problem: Problem = res.json().await.unwrap_or_default();
        let detail_given = problem.detail.is_some();
        let detail = problem
            .detail
            .or(problem.title)
            .unwrap_or_else(|| status.to_string());
        Err(match status.as_u16() {
            401 => ApiError::Unauthorized(detail),
            429 | 503 if retry_after.is_some() => ApiError::Agent(AgentError::RateLimited {
                retry_after_secs: retry_after.unwrap_or(1),
            }),
            400 if problem
                .pointer
                .as_deref()
                .is_some_and(|p| p.starts_with("/deltas/")) =>
            {
                ApiError::Schema {
                    pointer: problem.pointer.unwrap_or_default(),
                    message: detail,
                }
            }
            // The appliance's own 404s are problem documents that say what
            // is missing (a concept's slug); anything else is not it.
            404 if detail_given => ApiError::Agent(AgentError::Server(detail)),
            404 => ApiError::Agent(AgentError::Server(format!(
                "{} is not an aiworklab appliance's device API (404); check --server",
                self.base
            ))),
            _ => ApiError::Agent(AgentError::Server(format!("{status}: {detail}"))),
        })
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ApiError> {
        let res = self.send(req).await?;
        res.json().await.map_err(|e| {
            ApiError::Agent(AgentError::Server(format!(
                "an answer the kernel does not understand ({e}); is the appliance up to date?"
            )))
        })
    }

    /// `POST /api/v1/devices/pair`.
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn pair(&self, code: &str, device_name: &str) -> Result<Grant, ApiError> {
        let body = serde_json::json!({ "code": code, "device_name": device_name });
        self.json(
            self.http
                .post(self.endpoint("api/v1/devices/pair")?)
                .json(&body),
        )
        .await
    }

    /// `POST /api/v1/devices/token`: the next access token and the next
    /// refresh secret (the presented one is dead from now on).
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn refresh(&self, refresh_token: &str) -> Result<Grant, ApiError> {
        let body = serde_json::json!({ "refresh_token": refresh_token });
        self.json(
            self.http
                .post(self.endpoint("api/v1/devices/token")?)
                .json(&body),
        )
        .await
    }

    /// `POST /api/v1/sync/deltas`.
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn push(&self, access: &str, batch: &WireBatch) -> Result<Pushed, ApiError> {
        let req = self
            .http
            .post(self.endpoint("api/v1/sync/deltas")?)
            .bearer_auth(access)
            .json(batch);
        self.json(req).await
    }

    /// `GET /api/v1/sync/deltas?since=&limit=`.
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn pull(&self, access: &str, since: i64, limit: u32) -> Result<Pulled, ApiError> {
        let mut url = self.endpoint("api/v1/sync/deltas")?;
        url.query_pairs_mut()
            .append_pair("since", &since.to_string())
            .append_pair("limit", &limit.to_string());
        self.json(self.http.get(url).bearer_auth(access)).await
    }

    /// `GET /api/v1/concepts`, as received.
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn concepts(&self, access: &str) -> Result<String, ApiError> {
        let req = self
            .http
            .get(self.endpoint("api/v1/concepts")?)
            .bearer_auth(access);
        let res = self.send(req).await?;
        res.text().await.map_err(|e| {
            ApiError::Agent(AgentError::Unreachable {
                url: self.base.to_string(),
                reason: root_cause(&e),
            })
        })
    }

    /// `GET /api/v1/checks/next?concept=SLUG`: one check about the concept,
    /// with its answer key (the kernel grades multiple choice itself).
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn next_check(&self, access: &str, concept: &str) -> Result<ServedCheck, ApiError> {
        let mut url = self.endpoint("api/v1/checks/next")?;
        url.query_pairs_mut().append_pair("concept", concept);
        self.json(self.http.get(url).bearer_auth(access)).await
    }

    /// `POST /api/v1/checks/grade` with an answer in the engineer's own
    /// words, which the appliance hands to its model and drops.
    ///
    /// # Errors
    /// [`ApiError`]; 503 when the appliance has no model to grade with.
    pub async fn grade(
        &self,
        access: &str,
        check_id: &str,
        answer: &str,
    ) -> Result<RemoteGrade, ApiError> {
        let body = serde_json::json!({ "check_id": check_id, "answer": answer });
        let req = self
            .http
            .post(self.endpoint("api/v1/checks/grade")?)
            .bearer_auth(access)
            .json(&body);
        self.json(req).await
    }

    /// `DELETE /api/v1/me/devices/{id}` with the device's own token: the
    /// device revokes itself (audited as `device.revoke`).
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn revoke_self(&self, access: &str, device_id: &str) -> Result<(), ApiError> {
        let url = self.endpoint(&format!("api/v1/me/devices/{device_id}"))?;
        self.send(self.http.delete(url).bearer_auth(access))
            .await
            .map(|_| ())
    }

    /// `GET /healthz`: whether the appliance answers at all.
    ///
    /// # Errors
    /// [`ApiError`].
    pub async fn health(&self) -> Result<(), ApiError> {
        self.send(self.http.get(self.endpoint("healthz")?))
            .await
            .map(|_| ())
    }
}

/// The innermost cause of a transport error (e.g. the certificate
/// problem), which is what tells the engineer what to fix.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_for_loopback_only() {
        for ok in [
            "https://skills.example.com",
            "https://skills.example.com/aiworklab",
            "http://127.0.0.1:8080",
            "http://[::1]:8080/",
            "http://localhost:3000",
        ] {
            let u = check_url(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert!(u.path().ends_with('/'), "{u}");
        }
        for bad in [
            "http://skills.example.com",
            "http://10.0.0.5:8080",
            "http://127.0.0.1.example.com",
            "ftp://skills.example.com",
            "https://user@skills.example.com",
            "https://skills.example.com/?x=1",
            "skills.example.com",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let err = Server::new("https://a.example", Some("not a pem")).expect_err("refused");
        assert!(err.to_string().contains("CA file"), "{err}");
    }
}
