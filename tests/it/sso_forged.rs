//! Forged and mis-addressed ID tokens are refused (P7). The real test IdP
//! only ever issues valid tokens, so this module runs a small hostile
//! OpenID Provider of its own: discovery, a JWKS with one P-256 key, an
//! authorization endpoint that answers at once, and a token endpoint that
//! checks the code, the client and PKCE like a real one and then returns
//! an ID token built wrongly in exactly one way. Each case must end on the
//! "Sign-in failed" page, without a session, audited as `invalid_token`;
//! a correctly built token (`good`) signs in, so every refusal is for the
//! one defect and not for a flaw of the fake. The same provider also
//! serves the cases the real one cannot produce: a token without
//! `auth_time`, chosen `amr` values, an issuer with a trailing slash.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aiworklab::clock::SystemClock;
use aiworklab::config::RawOidc;
use aiworklab::http::server;
use aiworklab::store::StoreError;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Utc;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

use crate::support::Env;

const ORG: &str = "acme";
const CLIENT_ID: &str = "aiwl-acme";
const CLIENT_SECRET: &str = "forged-tests-client-secret-0123456789";
const KID: &str = "fake-key-1";
const COOKIE: &str = "__Host-aiwl_session";

/// How the token endpoint builds the ID token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Everything right: the positive control.
    Good,
    /// `aud` names another client.
    WrongAud,
    /// Signed by a key the JWKS does not have, under an unknown `kid`.
    ForeignKey,
    /// Signed by another key under the JWKS key's `kid`.
    SameKidForeignKey,
    /// `alg: none`, no signature.
    AlgNone,
    /// HS256 keyed with the client secret (which the client knows too).
    Hs256WithClientSecret,
    /// `iss` of another provider.
    WrongIssuer,
    /// `exp` five minutes ago (beyond the 60 s skew).
    Expired,
    /// `iat` an hour from now.
    FutureIat,
    /// A `nonce` other than the one of this sign-in.
    NonceMismatch,
    /// `aud` lists the client and another party, without `azp`.
    MultipleAudNoAzp,
    /// `aud` is the client, but `azp` names another party.
    AzpOfAnotherParty,
}

/// A sign-in started at `/auth`, waiting for its code at `/token`.
struct Pending {
    nonce: String,
    redirect_uri: String,
    code_challenge: String,
}

struct FakeState {
    issuer: String,
    mode: Mutex<Mode>,
    /// The key the JWKS publishes.
    key: EcdsaKeyPair,
    /// A key of nobody the client trusts.
    foreign: EcdsaKeyPair,
    rng: SystemRandom,
    codes: Mutex<HashMap<String, Pending>>,
    jwks_fetches: AtomicUsize,
    /// Whom the tokens speak for: `<person>-subject-1`, user name `<person>`.
    person: Mutex<String>,
    /// Claims set on (or, when null, removed from) every token issued.
    extra: Mutex<serde_json::Map<String, Value>>,
    /// When set, the token endpoint answers this `(error, error_description)`.
    token_error: Mutex<Option<(String, String)>>,
}

/// The hostile provider, served on loopback until dropped.
struct FakeOp {
    issuer: String,
    state: Arc<FakeState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn p256_key(rng: &SystemRandom) -> EcdsaKeyPair {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
        .expect("P-256 key generation");
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), rng)
        .expect("P-256 key parses")
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl FakeOp {
    async fn start(mode: Mode) -> Self {
        Self::start_as(mode, "").await
    }

    /// A provider whose issuer is `http://<addr>` followed by `suffix`
    /// (e.g. "/", as Auth0's issuers end).
    async fn start_as(mode: Mode, suffix: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake provider");
        let addr: SocketAddr = listener.local_addr().expect("addr");
        let issuer = format!("http://{addr}{suffix}");
        let rng = SystemRandom::new();
        let state = Arc::new(FakeState {
            issuer: issuer.clone(),
            mode: Mutex::new(mode),
            key: p256_key(&rng),
            foreign: p256_key(&rng),
            rng,
            codes: Mutex::new(HashMap::new()),
            jwks_fetches: AtomicUsize::new(0),
            person: Mutex::new("forge".into()),
            extra: Mutex::new(serde_json::Map::new()),
            token_error: Mutex::new(None),
        });
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/auth", get(authorize))
            .route("/token", post(token))
            .with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("fake provider");
        });
        Self {
            issuer,
            state,
            task,
        }
    }

    fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }
}

async fn discovery(State(s): State<Arc<FakeState>>) -> Json<Value> {
    let i = &s.issuer;
    let i = &i.trim_end_matches('/');
    Json(json!({
        "issuer": s.issuer,
        "authorization_endpoint": format!("{i}/auth"),
        "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256", "none", "HS256"],
        "scopes_supported": ["openid", "profile", "email"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks(State(s): State<Arc<FakeState>>) -> Json<Value> {
    s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    // An uncompressed P-256 point: 0x04 || x || y.
    let point = s.key.public_key().as_ref();
    assert_eq!(point.len(), 65);
    assert_eq!(point[0], 4);
    Json(json!({ "keys": [{
        "kty": "EC",
        "crv": "P-256",
        "x": b64(&point[1..33]),
        "y": b64(&point[33..]),
        "kid": KID,
        "alg": "ES256",
        "use": "sig",
    }]}))
}

fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

async fn authorize(
    State(s): State<Arc<FakeState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let param = |k: &str| q.get(k).cloned().unwrap_or_default();
    // A real provider would refuse these; refusing them here keeps the
    // appliance's side of the flow honest.
    if param("response_type") != "code"
        || param("client_id") != CLIENT_ID
        || !param("scope").split(' ').any(|s| s == "openid")
        || param("code_challenge_method") != "S256"
        || param("code_challenge").is_empty()
        || param("state").is_empty()
        || param("nonce").is_empty()
    {
        return oauth_error("invalid_request", &format!("unexpected request: {q:?}"));
    }
    let Ok(mut back) = url::Url::parse(&param("redirect_uri")) else {
        return oauth_error("invalid_request", "redirect_uri is not a URL");
    };
    let code = uuid::Uuid::new_v4().simple().to_string();
    s.codes.lock().expect("codes").insert(
        code.clone(),
        Pending {
            nonce: param("nonce"),
            redirect_uri: param("redirect_uri"),
            code_challenge: param("code_challenge"),
        },
    );
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &param("state"));
    Redirect::to(back.as_str()).into_response()
}

/// The client authenticated with `client_secret_basic` or `client_secret_post`.
fn client_authenticated(headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| STANDARD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok());
    match basic {
        Some(pair) => pair == format!("{CLIENT_ID}:{CLIENT_SECRET}"),
        None => {
            form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
        }
    }
}

async fn token(
    State(s): State<Arc<FakeState>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !client_authenticated(&headers, &form) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "invalid_client" })),
        )
            .into_response();
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error("unsupported_grant_type", "only authorization_code");
    }
    let code = form.get("code").cloned().unwrap_or_default();
    let Some(pending) = s.codes.lock().expect("codes").remove(&code) else {
        return oauth_error("invalid_grant", "unknown or used code");
    };
    if form.get("redirect_uri") != Some(&pending.redirect_uri) {
        return oauth_error("invalid_grant", "redirect_uri differs");
    }
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let challenge = b64(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref());
    if challenge != pending.code_challenge {
        return oauth_error("invalid_grant", "PKCE verification failed");
    }
    if let Some((error, description)) = s.token_error.lock().expect("token error").clone() {
        return oauth_error(&error, &description);
    }
    let mode = *s.mode.lock().expect("mode");
    let id_token = forge(&s, mode, &pending.nonce);
    Json(json!({
        "access_token": "x",
        "token_type": "Bearer",
        "expires_in": 600,
        "id_token": id_token,
    }))
    .into_response()
}

/// The ID token `mode` asks for: the good one, wrong in exactly one way.
fn forge(s: &FakeState, mode: Mode, nonce: &str) -> String {
    let now = Utc::now().timestamp();
    let person = s.person.lock().expect("person").clone();
    let mut claims = json!({
        "iss": s.issuer,
        "sub": format!("{person}-subject-1"),
        "aud": CLIENT_ID,
        "iat": now,
        "exp": now + 600,
        "nonce": nonce,
        "email": format!("{person}@acme.test"),
        "email_verified": true,
        "preferred_username": person,
        "name": "Forge Tester",
    });
    match mode {
        Mode::WrongAud => claims["aud"] = json!("someone-else"),
        Mode::WrongIssuer => claims["iss"] = json!("https://evil.example"),
        Mode::Expired => {
            claims["iat"] = json!(now - 900);
            claims["exp"] = json!(now - 300);
        }
        Mode::FutureIat => {
            claims["iat"] = json!(now + 3600);
            claims["exp"] = json!(now + 3600 + 600);
        }
        Mode::NonceMismatch => claims["nonce"] = json!("not-the-one"),
        Mode::MultipleAudNoAzp => claims["aud"] = json!([CLIENT_ID, "other"]),
        Mode::AzpOfAnotherParty => claims["azp"] = json!("someone-else"),
        _ => {}
    }
    for (k, v) in s.extra.lock().expect("extra").iter() {
        match (v, claims.as_object_mut()) {
            (Value::Null, Some(c)) => {
                c.remove(k);
            }
            (v, Some(c)) => {
                c.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
    let payload = b64(claims.to_string().as_bytes());
    let es256 = |kid: &str| json!({ "alg": "ES256", "typ": "JWT", "kid": kid });
    let (header, key) = match mode {
        Mode::AlgNone => {
            let header = b64(json!({ "alg": "none", "typ": "JWT" })
                .to_string()
                .as_bytes());
            return format!("{header}.{payload}.");
        }
        Mode::Hs256WithClientSecret => {
            let header = b64(json!({ "alg": "HS256", "typ": "JWT" })
                .to_string()
                .as_bytes());
            let input = format!("{header}.{payload}");
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, CLIENT_SECRET.as_bytes());
            let mac = ring::hmac::sign(&key, input.as_bytes());
            return format!("{input}.{}", b64(mac.as_ref()));
        }
        Mode::ForeignKey => (es256("rotated-away"), &s.foreign),
        Mode::SameKidForeignKey => (es256(KID), &s.foreign),
        _ => (es256(KID), &s.key),
    };
    let input = format!("{}.{payload}", b64(header.to_string().as_bytes()));
    // The fixed-length signature is r || s, as JWS wants it.
    let sig = key.sign(&s.rng, input.as_bytes()).expect("ES256 signs");
    format!("{input}.{}", b64(sig.as_ref()))
}

/// The fake provider and an appliance whose org `acme` signs in through it.
struct Rig {
    fake: FakeOp,
    _env: Env,
    base: String,
    state: aiworklab::AppState,
    running: server::Running,
}

/// What the appliance answered at its callback.
struct Outcome {
    status: reqwest::StatusCode,
    location: Option<String>,
    set_cookies: Vec<String>,
    body: String,
}

impl Rig {
    async fn start(mode: Mode) -> Self {
        Self::start_with(FakeOp::start(mode).await, |_| {}).await
    }

    /// An appliance against `fake`; `tweak` adjusts its configuration.
    async fn start_with(fake: FakeOp, tweak: impl FnOnce(&mut Env)) -> Self {
        let listener = server::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let mut env = Env::new(&[ORG]);
        env.raw.server.public_url = base.clone();
        env.raw.orgs[0].oidc = Some(RawOidc {
            issuer: fake.issuer.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            ..RawOidc::default()
        });
        env.raw.rate_limits.sign_in.requests = 1000;
        tweak(&mut env);
        let state = env.state_with_clock(Arc::new(SystemClock));
        let running = server::start(state.clone(), listener)
            .await
            .expect("server starts");
        Self {
            fake,
            _env: env,
            base,
            state,
            running,
        }
    }

    /// Starts a sign-in, passes the provider (which answers at once) and
    /// returns the appliance's answer at its callback.
    async fn sign_in(&self) -> Outcome {
        self.sign_in_at("login/start", None).await
    }

    /// A sign-in started at `/o/acme/<path>` by a browser holding the
    /// cookie `cookie` (a session) or none; the cookie the start sets is
    /// carried to the callback, as a browser would.
    async fn sign_in_at(&self, path: &str, cookie: Option<&str>) -> Outcome {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let location = |r: &reqwest::Response| {
            r.headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let mut req = http.get(format!("{}/o/{ORG}/{path}", self.base));
        if let Some(c) = cookie {
            req = req.header(reqwest::header::COOKIE, format!("{COOKIE}={c}"));
        }
        let start = req.send().await.expect("start");
        assert_eq!(start.status(), reqwest::StatusCode::SEE_OTHER, "start");
        let started = start
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.strip_prefix(&format!("{COOKIE}=")))
            .and_then(|c| c.split(';').next())
            .map(str::to_string);
        let carried = started.as_deref().or(cookie);
        let auth = location(&start).expect("to the provider");
        assert!(
            auth.starts_with(&format!("{}/auth?", self.fake.issuer.trim_end_matches('/'))),
            "{auth}"
        );
        let back = http.get(&auth).send().await.expect("authorize");
        assert_eq!(back.status(), reqwest::StatusCode::SEE_OTHER, "authorize");
        let callback = location(&back).expect("back to the appliance");
        assert!(
            callback.starts_with(&format!("{}/o/{ORG}/oidc/callback?", self.base)),
            "{callback}"
        );
        let mut req = http.get(&callback);
        if let Some(c) = carried {
            req = req.header(reqwest::header::COOKIE, format!("{COOKIE}={c}"));
        }
        let done = req.send().await.expect("callback");
        let status = done.status();
        let location = location(&done);
        let set_cookies = done
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect();
        let body = done.text().await.unwrap_or_default();
        Outcome {
            status,
            location,
            set_cookies,
            body,
        }
    }

    /// The reasons of the `sign_in.failed` rows of the audit log.
    fn failure_reasons(&self) -> Vec<String> {
        self.state
            .store
            .org(ORG)
            .expect("org")
            .db
            .read(|c| aiworklab::store::audit::recent(c, 200).map_err(StoreError::from))
            .expect("audit")
            .into_iter()
            .filter(|r| r.action == "sign_in.failed")
            .map(|r| r.details["reason"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    async fn stop(self) {
        self.running.shutdown().await.expect("shutdown");
    }
}

/// Runs a sign-in in `mode` and checks it is refused as a bad token with a
/// page naming `why`; returns the rig for further checks.
async fn refused(mode: Mode, why: &str) -> Rig {
    let rig = Rig::start(mode).await;
    let page = rig.sign_in().await;
    assert_eq!(
        page.status,
        reqwest::StatusCode::BAD_REQUEST,
        "{mode:?} was not refused: {:?} {}",
        page.location,
        page.body
    );
    assert!(page.body.contains("Sign-in failed"), "{}", page.body);
    assert!(
        page.body.contains(why),
        "{mode:?}: the page does not say {why:?}: {}",
        page.body
    );
    assert!(
        page.set_cookies.iter().all(|c| !c.starts_with(COOKIE)),
        "{mode:?} set a session cookie: {:?}",
        page.set_cookies
    );
    assert_eq!(
        rig.failure_reasons(),
        ["invalid_token"],
        "{mode:?} is audited as one invalid_token failure"
    );
    rig
}

#[tokio::test]
async fn a_correct_token_from_the_fake_provider_signs_in() {
    let rig = Rig::start(Mode::Good).await;
    let page = rig.sign_in().await;
    assert_eq!(
        page.status,
        reqwest::StatusCode::SEE_OTHER,
        "the positive control failed: {}",
        page.body
    );
    assert_eq!(page.location.as_deref(), Some("/account"));
    assert!(
        page.set_cookies
            .iter()
            .any(|c| c.starts_with(&format!("{COOKIE}=aiwl_sess_"))),
        "{:?}",
        page.set_cookies
    );
    assert!(rig.failure_reasons().is_empty());
    assert_eq!(rig.fake.jwks_fetches(), 1, "the JWKS came with discovery");
    // The same provider, now forging: the mode is the only difference.
    *rig.fake.state.mode.lock().expect("mode") = Mode::WrongAud;
    let page = rig.sign_in().await;
    assert_eq!(page.status, reqwest::StatusCode::BAD_REQUEST);
    assert_eq!(rig.failure_reasons(), ["invalid_token"]);
    rig.stop().await;
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    refused(Mode::WrongAud, "Invalid audiences")
        .await
        .stop()
        .await;
}

#[tokio::test]
async fn a_token_signed_by_a_key_not_in_the_jwks_is_refused_after_one_refetch() {
    let rig = refused(Mode::ForeignKey, "Signature verification failed").await;
    // Once with discovery, once more for the unknown kid; no further.
    assert_eq!(rig.fake.jwks_fetches(), 2);
    rig.stop().await;
}

#[tokio::test]
async fn a_token_signed_by_another_key_under_the_known_kid_is_refused() {
    let rig = refused(Mode::SameKidForeignKey, "Signature verification failed").await;
    // A known kid with a bad signature is no reason to refetch.
    assert_eq!(rig.fake.jwks_fetches(), 1);
    rig.stop().await;
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_refused() {
    refused(Mode::AlgNone, "Signature verification failed")
        .await
        .stop()
        .await;
}

#[tokio::test]
async fn an_hs256_token_keyed_with_the_client_secret_is_refused() {
    refused(Mode::Hs256WithClientSecret, "Signature verification failed")
        .await
        .stop()
        .await;
}

#[tokio::test]
async fn a_token_from_another_issuer_is_refused() {
    refused(Mode::WrongIssuer, "Invalid issuer")
        .await
        .stop()
        .await;
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    refused(Mode::Expired, "ID token expired")
        .await
        .stop()
        .await;
}

#[tokio::test]
async fn a_token_issued_in_the_future_is_refused() {
    refused(Mode::FutureIat, "issued in the future")
        .await
        .stop()
        .await;
}

#[tokio::test]
async fn a_token_with_another_nonce_is_refused() {
    refused(Mode::NonceMismatch, "Invalid nonce")
        .await
        .stop()
        .await;
}

#[tokio::test]
async fn a_token_also_addressed_to_an_untrusted_party_is_refused() {
    // openidconnect does not check `azp` at all (its verifier leaves that
    // step out on purpose); what refuses this token is its rule that every
    // audience besides the client must be trusted, and the appliance trusts
    // none. So the refusal names the extra audience, not the missing azp.
    refused(Mode::MultipleAudNoAzp, "`other` is not a trusted audience")
        .await
        .stop()
        .await;
}

// OpenID Connect Core §3.1.3.7 step 5: an `azp` that is present must be
// the client's own id. openidconnect 4.1 skips that step; `sso::Sso::finish`
// checks it.
#[tokio::test]
async fn a_token_authorised_for_another_party_is_refused() {
    refused(Mode::AzpOfAnotherParty, "azp").await.stop().await;
}

/// Sign-ins are limited per account as well as per address: one account
/// signing in over and over is stopped at its own budget (429 with
/// Retry-After, audited as `rate_limited`, no session), while another
/// account behind the same address, as behind a shared NAT, still signs in.
#[tokio::test]
async fn sign_ins_are_limited_per_account_under_the_address_ceiling() {
    let rig = Rig::start_with(FakeOp::start(Mode::Good).await, |env| {
        env.raw.rate_limits.sign_in = aiworklab::config::RawRateLimit {
            ip_requests: Some(100),
            ..aiworklab::config::RawRateLimit::new(2, 3600)
        };
    })
    .await;
    for _ in 0..2 {
        let page = rig.sign_in().await;
        assert_eq!(page.status, reqwest::StatusCode::SEE_OTHER, "{}", page.body);
    }
    let page = rig.sign_in().await;
    assert_eq!(
        page.status,
        reqwest::StatusCode::TOO_MANY_REQUESTS,
        "{}",
        page.body
    );
    assert!(page.body.contains("Sign-in failed"), "{}", page.body);
    assert!(
        page.set_cookies.iter().all(|c| !c.starts_with(COOKIE)),
        "{:?}",
        page.set_cookies
    );
    assert_eq!(rig.failure_reasons(), ["rate_limited"]);
    // Another engineer, from the same address.
    *rig.fake.state.person.lock().expect("person") = "other".into();
    for _ in 0..2 {
        let page = rig.sign_in().await;
        assert_eq!(page.status, reqwest::StatusCode::SEE_OTHER, "{}", page.body);
    }
    rig.stop().await;
}

impl FakeOp {
    fn set_claim(&self, name: &str, value: Value) {
        self.state
            .extra
            .lock()
            .expect("extra")
            .insert(name.into(), value);
    }
}

impl Rig {
    /// GET `path` with the session cookie `cookie`.
    async fn get(&self, path: &str, cookie: &str) -> reqwest::Response {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, format!("{COOKIE}={cookie}"))
            .send()
            .await
            .expect("get")
    }
}

impl Rig {
    /// POST the admin form `path` with the session cookie and CSRF token.
    async fn post(&self, path: &str, cookie: &str, csrf: &str) -> reqwest::Response {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::COOKIE, format!("{COOKIE}={cookie}"))
            .form(&[("csrf", csrf), ("grant", "1")])
            .send()
            .await
            .expect("post")
    }
}

/// The CSRF token of the session `cookie`, from the account page's forms.
async fn me_csrf(rig: &Rig, cookie: &str) -> String {
    let page = rig
        .get("/account", cookie)
        .await
        .text()
        .await
        .expect("body");
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a csrf field")
        .to_string()
}

impl Outcome {
    /// The session id the answer set, if any.
    fn session(&self) -> Option<String> {
        self.set_cookies
            .iter()
            .find_map(|c| c.strip_prefix(&format!("{COOKIE}=aiwl_sess_")))
            .and_then(|c| c.split(';').next())
            .map(|c| format!("aiwl_sess_{c}"))
    }
}

// Auth0 and others publish issuers that end in a slash. Discovery and the
// tokens' `iss` must match the configured issuer byte for byte (OpenID
// Connect Discovery §4.3), so it is used exactly as configured.
#[tokio::test]
async fn an_issuer_with_a_trailing_slash_works_exactly_as_configured() {
    let fake = FakeOp::start_as(Mode::Good, "/").await;
    let issuer = fake.issuer.clone();
    assert!(issuer.ends_with('/'));
    let rig = Rig::start_with(fake, |_| {}).await;
    let page = rig.sign_in().await;
    assert_eq!(
        page.status,
        reqwest::StatusCode::SEE_OTHER,
        "a trailing-slash issuer failed: {}",
        page.body
    );
    assert_eq!(page.location.as_deref(), Some("/account"));
    let user = aiworklab::users::find(rig.state.store.org(ORG).expect("org"), "forge")
        .expect("signed-in user");
    assert_eq!(
        user.identity.map(|(iss, _)| iss).as_deref(),
        Some(issuer.as_str()),
        "the identity is kept under the issuer as configured"
    );
    rig.stop().await;
}

// A token without `auth_time` says nothing about when the person last
// authenticated: the session counts as stale, so admin pages ask for a
// re-authentication, and that must bring a fresh `auth_time` or fail.
#[tokio::test]
async fn a_token_without_auth_time_is_stale_and_reauthentication_must_bring_a_fresh_one() {
    let fake = FakeOp::start(Mode::Good).await;
    fake.set_claim("groups", json!(["aiwl-admins"]));
    let rig = Rig::start_with(fake, |env| {
        env.raw.orgs[0].admin_groups = vec!["aiwl-admins".into()];
    })
    .await;
    let page = rig.sign_in().await;
    assert_eq!(page.status, reqwest::StatusCode::SEE_OTHER, "{}", page.body);
    let cookie = page.session().expect("a session");
    // An admin action (granting oneself the role, harmless) on the admin
    // page's form.
    let me = aiworklab::users::find(rig.state.store.org(ORG).expect("org"), "forge")
        .expect("signed-in user");
    let grant = format!("/o/{ORG}/admin/users/{}/admin", me.id);
    let csrf = me_csrf(&rig, &cookie).await;
    let admin = rig.post(&grant, &cookie, &csrf).await;
    assert_eq!(
        admin.status(),
        reqwest::StatusCode::SEE_OTHER,
        "a sign-in without auth_time acted as an admin"
    );
    let to = admin
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        to.starts_with(&format!("/o/{ORG}/login?reauth=1")),
        "a sign-in without auth_time acted as an admin: {to}"
    );

    // Re-authentication answered without auth_time: refused as stale.
    let again = rig
        .sign_in_at(
            "login/start?reauth=1&return_to=/o/acme/admin",
            Some(&cookie),
        )
        .await;
    assert_eq!(
        again.status,
        reqwest::StatusCode::BAD_REQUEST,
        "{}",
        again.body
    );
    assert!(again.body.contains("fresh sign-in"), "{}", again.body);
    assert_eq!(rig.failure_reasons(), ["stale_reauth"]);
    let still = rig.post(&grant, &cookie, &csrf).await;
    assert!(
        still
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|l| l.contains("reauth=1")),
        "still stale"
    );

    // With a fresh auth_time: admitted under a new session id.
    rig.fake
        .set_claim("auth_time", json!(Utc::now().timestamp()));
    let fresh = rig
        .sign_in_at(
            "login/start?reauth=1&return_to=/o/acme/admin",
            Some(&cookie),
        )
        .await;
    assert_eq!(
        fresh.status,
        reqwest::StatusCode::SEE_OTHER,
        "{}",
        fresh.body
    );
    assert_eq!(fresh.location.as_deref(), Some("/o/acme/admin"));
    let renewed = fresh.session().expect("a new session id");
    assert_ne!(renewed, cookie);
    let done = rig.post(&grant, &renewed, &csrf).await;
    assert_eq!(
        done.headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok()),
        Some("/o/acme/admin?done=granted"),
        "the fresh re-authentication did not let the admin act"
    );
    // The id from before the re-authentication is gone.
    assert_eq!(
        rig.get("/account", &cookie).await.status(),
        reqwest::StatusCode::SEE_OTHER
    );
    rig.stop().await;
}

// RFC 8176 names factors; one of them alone (a one-time code, an SMS, a
// key, a fingerprint) is one factor, not multi-factor.
#[tokio::test]
async fn one_factor_alone_does_not_satisfy_require_mfa() {
    let fake = FakeOp::start(Mode::Good).await;
    let rig = Rig::start_with(fake, |env| env.raw.orgs[0].require_mfa = true).await;
    let singles = ["otp", "sms", "hwk", "swk", "fpt", "face"];
    for single in singles {
        rig.fake.set_claim("amr", json!([single]));
        let page = rig.sign_in().await;
        assert_eq!(
            page.status,
            reqwest::StatusCode::FORBIDDEN,
            "amr [{single}] counted as multi-factor"
        );
        assert!(page.body.contains("multi-factor"), "{}", page.body);
        assert!(page.session().is_none());
    }
    assert_eq!(rig.failure_reasons(), vec!["mfa_required"; singles.len()]);
    for two in [json!(["pwd", "otp"]), json!(["mfa"]), json!(["hwk", "pin"])] {
        rig.fake.set_claim("amr", two.clone());
        let page = rig.sign_in().await;
        assert_eq!(
            page.status,
            reqwest::StatusCode::SEE_OTHER,
            "{two}: {}",
            page.body
        );
    }
    rig.stop().await;
}

// The token endpoint's `error_description` is the provider's free text: it
// is neither shown nor audited; the error code is.
#[tokio::test]
async fn the_token_endpoints_error_description_is_not_repeated() {
    let fake = FakeOp::start(Mode::Good).await;
    *fake.state.token_error.lock().expect("token error") = Some((
        "invalid_grant".into(),
        "Call the help desk at +1 555 0100 and read out your password".into(),
    ));
    let rig = Rig::start_with(fake, |_| {}).await;
    let page = rig.sign_in().await;
    assert_eq!(page.status, reqwest::StatusCode::BAD_REQUEST);
    assert!(page.body.contains("invalid_grant"), "{}", page.body);
    assert!(!page.body.contains("help desk"), "{}", page.body);
    let rows = rig
        .state
        .store
        .org(ORG)
        .expect("org")
        .db
        .read(|c| aiworklab::store::audit::recent(c, 50).map_err(StoreError::from))
        .expect("audit");
    assert!(
        rows.iter()
            .all(|r| !r.details.to_string().contains("help desk"))
    );
    assert_eq!(rig.failure_reasons(), ["code_rejected"]);
    rig.stop().await;
}
