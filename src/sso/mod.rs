//! OIDC single sign-on, the relying party (SECURITY.md P7, P8, P10): the
//! authorization code flow with PKCE S256, `state` and `nonce` bound to a
//! short-lived server-side record consumed once, and full ID-token
//! validation (signature against the discovered JWKS, refetched once on an
//! unknown key; `iss`, `aud`, `azp`, `exp`, `iat`, `nonce`; `none` and
//! symmetric algorithms refused). Each sign-in is bound to the browser
//! that started it: the hash of a value only that browser holds (its
//! pre-sign-in cookie, or its live session) is stored with the state, and a
//! callback from any other browser is refused (login CSRF). The IdP's free
//! text (`error_description`, error bodies) never reaches a page or a log:
//! only its error code does. Discovery is cached; the HTTP client follows
//! no redirects.
//! (OpenID Connect Core 1.0 §3.1; RFC 7636 for PKCE.)

pub mod break_glass;
mod claims;
pub mod test_signin;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreAuthPrompt, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreResponseType,
};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret,
    CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, SignatureVerificationError,
};

pub use claims::Verified;

use crate::clock::to_millis;
use crate::config::{OidcSettings, OrgSettings};
use crate::ids::OrgSlug;
use crate::secrets::SecretHash;
use crate::store::sessions::{self as sql, LoginRow};
use crate::store::{OrgDb, StoreError};
use crate::users::signin::Refusal;

/// How long discovery documents (and with them the JWKS) are reused.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// How long a started sign-in may take.
const LOGIN_TTL: chrono::Duration = chrono::Duration::minutes(10);
/// Tolerated difference between our clock and the IdP's.
pub const CLOCK_SKEW: chrono::Duration = chrono::Duration::seconds(60);

/// Why a sign-in failed. Each ends on a page that says so, and in the audit
/// log under its `code()`.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("single sign-on is not configured for this organisation")]
    NotConfigured,
    #[error("the identity provider did not answer: {0}")]
    IdpUnavailable(String),
    /// The IdP answered the authorization request with an error; holds
    /// its error code (one of [`IDP_ERROR_CODES`], or `other`).
    #[error("the identity provider refused the sign-in (error `{0}`)")]
    Denied(&'static str),
    #[error("this sign-in has expired or was already used")]
    BadState,
    #[error("this sign-in was started in another browser")]
    OtherBrowser,
    #[error("the identity provider did not accept the sign-in code: {0}")]
    Exchange(String),
    #[error("the identity provider's answer failed validation: {0}")]
    InvalidToken(String),
    #[error("this organisation requires multi-factor authentication")]
    MfaRequired,
    #[error("the identity provider did not confirm a fresh sign-in")]
    StaleReauth,
    #[error("{}", .0.message())]
    Refused(Refusal),
    /// The account's own sign-in budget (`rate_limits.sign_in`) is spent;
    /// the seconds to wait.
    #[error("too many sign-ins to this account in a short time")]
    TooManySignIns(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A failure of ours after the IdP's answer was accepted (a task that
    /// panicked, an account that could not be written); logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl SsoError {
    /// Whether the failure is ours (answered 500 and logged as an error)
    /// rather than the IdP's or the person's.
    pub fn is_internal(&self) -> bool {
        matches!(self, Self::Store(_) | Self::Internal(_))
    }

    /// A stable code for the audit log and tests.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotConfigured => "not_configured",
            Self::IdpUnavailable(_) => "idp_unavailable",
            Self::Denied(_) => "denied",
            Self::BadState => "bad_state",
            Self::OtherBrowser => "other_browser",
            Self::Exchange(_) => "code_rejected",
            Self::InvalidToken(_) => "invalid_token",
            Self::MfaRequired => "mfa_required",
            Self::StaleReauth => "stale_reauth",
            Self::Refused(r) => r.code(),
            Self::TooManySignIns(_) => "rate_limited",
            Self::Store(_) | Self::Internal(_) => "internal",
        }
    }

    /// The details of the `sign_in.failed` audit row: the reason, and what
    /// the operator needs to act on it (never the IdP's free text).
    pub fn audit_details(&self) -> serde_json::Value {
        match self {
            Self::Denied(code) => serde_json::json!({ "reason": self.code(), "error": code }),
            Self::Refused(Refusal::AdminLink { user_name, subject }) => serde_json::json!({
                "reason": self.code(),
                "user_name": user_name,
                "subject": subject,
            }),
            _ => serde_json::json!({ "reason": self.code() }),
        }
    }

    /// What the person should do, for the error page.
    pub fn advice(&self) -> String {
        match self {
            Self::NotConfigured => "Ask your administrator to configure single sign-on for this organisation.".into(),
            Self::IdpUnavailable(_) => "Try again in a few minutes. If it persists, your administrator can check the identity provider.".into(),
            Self::Denied("access_denied") => "Start the sign-in again; if you cancelled it, nothing happened.".into(),
            Self::Denied("temporarily_unavailable" | "server_error") => "Try again in a few minutes. If it persists, your administrator can check the identity provider.".into(),
            Self::Denied(code) => format!("Start the sign-in again. If it keeps failing, tell your administrator the error code `{code}` and the time."),
            Self::BadState => "Start the sign-in again from the sign-in page; links to it expire after ten minutes and work once.".into(),
            Self::OtherBrowser => "Start the sign-in again from the sign-in page, in the browser you want to use. If someone sent you a link that signs you in, do not use it.".into(),
            Self::Exchange(_) | Self::InvalidToken(_) => "Start the sign-in again. If it keeps failing, tell your administrator the time and the request id below.".into(),
            Self::MfaRequired => "Sign in again using a second factor (authenticator app, security key).".into(),
            Self::StaleReauth => "Sign in again: admin actions need a fresh sign-in.".into(),
            Self::Refused(r) => r.message(),
            Self::TooManySignIns(secs) => format!("Wait {secs} seconds, then sign in again."),
            Self::Store(_) | Self::Internal(_) => "Try again; if it persists, tell your administrator the request id below.".into(),
        }
    }
}

/// The OIDC client of every org, with cached discovery.
pub struct Sso {
    http: openidconnect::reqwest::Client,
    cache: Mutex<HashMap<OrgSlug, (CoreProviderMetadata, Instant)>>,
}

impl std::fmt::Debug for Sso {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sso")
    }
}

/// What a sign-in starts from: where to return, whether it re-authenticates
/// a live session, and the secret of the browser starting it.
#[derive(Debug, Clone, Copy)]
pub struct Start<'a> {
    pub return_to: &'a str,
    pub reauth: bool,
    pub browser: &'a str,
}

/// What the callback received: the code and state from the IdP, and the
/// secret of the browser that brought them (if it has one).
#[derive(Debug, Clone, Copy)]
pub struct Callback<'a> {
    pub code: &'a str,
    pub state: &'a str,
    pub browser: Option<&'a str>,
}

/// An authorization request: the URL for the browser, and the secrets
/// the callback needs, to be kept server-side.
pub(crate) struct Authorization {
    pub url: url::Url,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// The started sign-in: where to send the browser.
#[derive(Debug, Clone)]
pub struct Started {
    pub authorize_url: url::Url,
}

fn store_err(e: rusqlite::Error) -> SsoError {
    SsoError::Store(e.into())
}

impl Sso {
    /// # Errors
    /// When the HTTP client cannot be built (no TLS roots at all).
    pub fn new() -> Result<Self, SsoError> {
        let http = openidconnect::reqwest::ClientBuilder::new()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| SsoError::IdpUnavailable(e.to_string()))?;
        Ok(Self {
            http,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self, slug: &OrgSlug) -> Option<CoreProviderMetadata> {
        let cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache
            .get(slug)
            .filter(|(_, at)| at.elapsed() < DISCOVERY_TTL)
            .map(|(m, _)| m.clone())
    }

    async fn metadata(
        &self,
        org: &OrgSettings,
        oidc: &OidcSettings,
        refresh: bool,
    ) -> Result<CoreProviderMetadata, SsoError> {
        if !refresh && let Some(m) = self.cached(&org.slug) {
            return Ok(m);
        }
        let issuer = IssuerUrl::new(oidc.issuer.clone())
            .map_err(|e| SsoError::IdpUnavailable(e.to_string()))?;
        let meta = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| SsoError::IdpUnavailable(error_chain(&e)))?;
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(org.slug.clone(), (meta.clone(), Instant::now()));
        Ok(meta)
    }

    fn client(
        meta: CoreProviderMetadata,
        oidc: &OidcSettings,
        redirect: &url::Url,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        SsoError,
    > {
        let redirect = RedirectUrl::new(redirect.to_string())
            .map_err(|e| SsoError::InvalidToken(e.to_string()))?;
        Ok(CoreClient::from_provider_metadata(
            meta,
            ClientId::new(oidc.client_id.clone()),
            Some(ClientSecret::new(oidc.client_secret.expose().to_string())),
        )
        .set_redirect_uri(redirect))
    }

    /// Starts a sign-in: records state, nonce, PKCE verifier and the hash of
    /// `browser` (a secret the starting browser presents again at the
    /// callback, see `web::signin`) server-side and returns the IdP's
    /// authorization URL. With `reauth`, the IdP is asked for a fresh login
    /// (`prompt=login`, `max_age=0`).
    ///
    /// # Errors
    /// [`SsoError::NotConfigured`], [`SsoError::IdpUnavailable`], store errors.
    pub async fn begin(
        &self,
        db: &OrgDb,
        org: &OrgSettings,
        redirect: &url::Url,
        start: Start<'_>,
        now: DateTime<Utc>,
    ) -> Result<Started, SsoError> {
        let Start {
            return_to,
            reauth,
            browser,
        } = start;
        let auth = self.authorization(org, redirect, reauth).await?;
        let row = LoginRow {
            state_hash: SecretHash::of(&auth.state).0.to_vec(),
            nonce: auth.nonce,
            pkce_verifier: auth.pkce_verifier,
            return_to: return_to.to_string(),
            reauth,
            browser_hash: SecretHash::of(browser).0.to_vec(),
            created_at: to_millis(now),
            expires_at: to_millis(now + LOGIN_TTL),
        };
        db.db
            .write(|tx| sql::insert_login(tx, &row).map_err(store_err))?;
        Ok(Started {
            authorize_url: auth.url,
        })
    }

    /// An authorization request to the org's IdP (code flow, PKCE S256,
    /// fresh `state` and `nonce`): the URL to send the browser to, and the
    /// values the caller keeps server-side for the callback. With `fresh`,
    /// the IdP is asked for a new login (`prompt=login`, `max_age=0`).
    ///
    /// # Errors
    /// [`SsoError::NotConfigured`], [`SsoError::IdpUnavailable`].
    pub(crate) async fn authorization(
        &self,
        org: &OrgSettings,
        redirect: &url::Url,
        fresh: bool,
    ) -> Result<Authorization, SsoError> {
        let oidc = org.oidc.as_ref().ok_or(SsoError::NotConfigured)?;
        let meta = self.metadata(org, oidc, false).await?;
        let client = Self::client(meta, oidc, redirect)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for s in oidc.scopes.iter().filter(|s| *s != "openid") {
            req = req.add_scope(Scope::new(s.clone()));
        }
        if fresh {
            req = req
                .add_prompt(CoreAuthPrompt::Login)
                .set_max_age(Duration::ZERO);
        }
        let (url, state, nonce) = req.url();
        Ok(Authorization {
            url,
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Completes a sign-in at the callback: consumes the state, checks that
    /// `browser` is the secret of the browser that started it, exchanges
    /// the code with the PKCE verifier, and validates the ID token.
    ///
    /// # Errors
    /// Every way a callback can be wrong, as [`SsoError`].
    pub async fn finish(
        &self,
        db: &OrgDb,
        org: &OrgSettings,
        redirect: &url::Url,
        callback: Callback<'_>,
        now: DateTime<Utc>,
    ) -> Result<(Verified, LoginRow), SsoError> {
        let Callback {
            code,
            state,
            browser,
        } = callback;
        let oidc = org.oidc.as_ref().ok_or(SsoError::NotConfigured)?;
        let hash = SecretHash::of(state).0;
        let login = db
            .db
            .write(|tx| sql::take_login(tx, &hash, to_millis(now)).map_err(store_err))?
            .ok_or(SsoError::BadState)?;
        // Login CSRF: a callback URL is worthless in any other browser.
        let bound = SecretHash::from_slice(&login.browser_hash);
        if !browser.is_some_and(|b| bound.is_some_and(|h| h.verify(b))) {
            return Err(SsoError::OtherBrowser);
        }
        let (verified, _) = self
            .redeem_code(org, redirect, code, &login.pkce_verifier, &login.nonce, now)
            .await?;
        if login.reauth {
            let started = crate::clock::from_millis(login.created_at);
            if verified.auth_time.is_none_or(|t| t + CLOCK_SKEW < started) {
                return Err(SsoError::StaleReauth);
            }
        }
        if org.require_mfa && !verified.has_mfa(oidc) {
            return Err(SsoError::MfaRequired);
        }
        Ok((verified, login))
    }

    /// Exchanges an authorization code (with its PKCE verifier) at the
    /// token endpoint and validates the ID token against `nonce`; reads
    /// userinfo when configured. Returns what the sign-in says about the
    /// person and every claim of the ID token's payload. Checks no policy
    /// (MFA, re-authentication): the callers do.
    ///
    /// # Errors
    /// [`SsoError::Exchange`] when the IdP refuses the code or the client,
    /// [`SsoError::InvalidToken`], [`SsoError::IdpUnavailable`].
    pub(crate) async fn redeem_code(
        &self,
        org: &OrgSettings,
        redirect: &url::Url,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
        now: DateTime<Utc>,
    ) -> Result<(Verified, serde_json::Map<String, serde_json::Value>), SsoError> {
        let oidc = org.oidc.as_ref().ok_or(SsoError::NotConfigured)?;
        let meta = self.metadata(org, oidc, false).await?;
        let client = Self::client(meta, oidc, redirect)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| SsoError::Exchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| exchange_failed(&e))?;
        let id_token = response
            .extra_fields()
            .id_token()
            .ok_or_else(|| SsoError::InvalidToken("the token response has no id_token".into()))?
            .clone();
        let nonce = Nonce::new(nonce.to_string());
        let verify = |client: &CoreClient<_, _, _, _, _, _>| {
            let verifier = client
                .id_token_verifier()
                .set_allowed_algs(ASYMMETRIC_ALGS.iter().cloned())
                .set_time_fn(move || now - CLOCK_SKEW)
                .set_issue_time_verifier_fn(move |iat| {
                    if iat > now + CLOCK_SKEW {
                        Err(format!("issued in the future ({iat})"))
                    } else {
                        Ok(())
                    }
                });
            id_token.claims(&verifier, &nonce).cloned()
        };
        let claims = match verify(&client) {
            Ok(c) => c,
            // An unknown signing key: the IdP may have rotated. Refetch the
            // JWKS once and try again.
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                let meta = self.metadata(org, oidc, true).await?;
                let client = Self::client(meta, oidc, redirect)?;
                verify(&client).map_err(|e| SsoError::InvalidToken(e.to_string()))?
            }
            Err(e) => return Err(SsoError::InvalidToken(e.to_string())),
        };
        let extra = claims::payload(&id_token.to_string())?;
        // OIDC Core 1.0 §3.1.3.7 step 5: if azp is present, it must be us.
        // (The library leaves this check to the client.)
        if let Some(azp) = extra.get("azp")
            && azp.as_str() != Some(oidc.client_id.as_str())
        {
            return Err(SsoError::InvalidToken(format!(
                "the token was authorised for another party (azp {azp})"
            )));
        }
        let mut verified = claims::Verified::from_claims(&claims, &extra, oidc);
        if oidc.use_userinfo {
            let info = client
                .user_info(
                    response.access_token().clone(),
                    Some(claims.subject().clone()),
                )
                .map_err(|e| SsoError::InvalidToken(e.to_string()))?
                .request_async::<claims::ExtraClaims, _, openidconnect::core::CoreGenderClaim>(
                    &self.http,
                )
                .await
                // Not the chain: an error body of the IdP is its free text.
                .map_err(|_| {
                    SsoError::IdpUnavailable(
                        "the userinfo endpoint did not answer with claims".into(),
                    )
                })?;
            verified.merge_userinfo(&info, oidc);
        }
        Ok((verified, extra))
    }
}

/// Signature algorithms accepted on ID tokens: asymmetric only, so neither
/// `none` nor an HMAC keyed with the (shared) client secret passes.
const ASYMMETRIC_ALGS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// The error codes of RFC 6749 §4.1.2.1 and OpenID Connect Core §3.1.2.6
/// that an authorization response may carry. Anything else is `other`: the
/// IdP's words are never repeated.
pub const IDP_ERROR_CODES: [&str; 16] = [
    "access_denied",
    "invalid_request",
    "unauthorized_client",
    "unsupported_response_type",
    "invalid_scope",
    "server_error",
    "temporarily_unavailable",
    "interaction_required",
    "login_required",
    "account_selection_required",
    "consent_required",
    "invalid_request_uri",
    "invalid_request_object",
    "request_not_supported",
    "request_uri_not_supported",
    "registration_not_supported",
];

/// The authorization error `error` as one of our own codes.
pub fn denied(error: &str) -> SsoError {
    SsoError::Denied(
        IDP_ERROR_CODES
            .into_iter()
            .find(|c| *c == error)
            .unwrap_or("other"),
    )
}

/// A failed code exchange, told by its error code (RFC 6749 §5.2) only:
/// the token endpoint's `error_description` and body are the IdP's text.
fn exchange_failed<RE: std::error::Error + 'static>(
    e: &openidconnect::RequestTokenError<
        RE,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> SsoError {
    use openidconnect::RequestTokenError as E;
    match e {
        E::ServerResponse(r) => {
            let code = r.error().as_ref();
            let code =
                if code.len() <= 40 && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                    code
                } else {
                    "other"
                };
            SsoError::Exchange(format!("the token endpoint answered `{code}`"))
        }
        E::Request(inner) => SsoError::IdpUnavailable(error_chain(inner)),
        E::Parse(..) => {
            SsoError::Exchange("the token endpoint's answer is not a token response".into())
        }
        E::Other(_) => SsoError::Exchange("the token endpoint's answer was not understood".into()),
    }
}

/// An error with its causes, for logs and error details.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
