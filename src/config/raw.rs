//! The configuration as written: serde types that mirror the TOML file and
//! the `AIWORKLAB_*` environment one to one. Every struct denies unknown
//! keys, so a typo stops start-up instead of being silently ignored.
//! Values stay loosely typed here (strings, integers); `settings.rs` turns
//! them into checked types with errors that name the key and the fix.

use serde::{Deserialize, Serialize};

/// The whole file. Field order is the order of `config show`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// Refuse every outbound destination that is not on loopback, in a
    /// private range or in `egress_allow` (P25).
    pub air_gapped: bool,
    /// Host names and address ranges an air-gapped appliance may reach
    /// beyond loopback and the private ranges.
    pub egress_allow: Vec<String>,
    pub server: RawServer,
    pub storage: RawStorage,
    pub keys: RawKeys,
    pub log: RawLog,
    pub audit: RawAudit,
    pub metrics: RawMetrics,
    pub rate_limits: RawRateLimits,
    pub backup: RawBackup,
    pub sso: RawSso,
    pub privacy: RawPrivacy,
    pub tokens: RawTokens,
    /// The org's local model (OpenAI-compatible); absent, no model is used
    /// and checks come from the question bank alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<RawModel>,
    pub orgs: Vec<RawOrg>,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            air_gapped: false,
            egress_allow: Vec::new(),
            server: RawServer::default(),
            storage: RawStorage::default(),
            keys: RawKeys::default(),
            log: RawLog::default(),
            audit: RawAudit::default(),
            metrics: RawMetrics::default(),
            rate_limits: RawRateLimits::default(),
            backup: RawBackup::default(),
            sso: RawSso::default(),
            privacy: RawPrivacy::default(),
            tokens: RawTokens::default(),
            model: None,
            orgs: vec![RawOrg {
                slug: "default".into(),
                name: "Default organisation".into(),
                ..RawOrg::default()
            }],
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub bind: String,
    /// Empty means "derived from `bind` and whether TLS is on".
    pub public_url: String,
    pub tls_cert_file: String,
    pub tls_key_file: String,
    pub tls_min_version: String,
    pub trusted_proxies: Vec<String>,
    pub request_timeout_secs: u64,
    pub max_body_bytes: u64,
    pub shutdown_grace_secs: u64,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            public_url: String::new(),
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            tls_min_version: "1.3".into(),
            trusted_proxies: Vec::new(),
            request_timeout_secs: 30,
            max_body_bytes: 2 * 1024 * 1024,
            shutdown_grace_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawStorage {
    pub data_dir: String,
    pub read_pool_size: u32,
    pub busy_timeout_ms: u64,
}

impl Default for RawStorage {
    fn default() -> Self {
        Self {
            data_dir: "./data".into(),
            read_pool_size: 4,
            busy_timeout_ms: 5_000,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawKeys {
    /// Empty means `<data_dir>/master.key`.
    pub master_key_file: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    pub format: String,
    pub level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawAudit {
    pub retention_days: u32,
}

impl Default for RawAudit {
    fn default() -> Self {
        // 13 months: the upper end of the 12-to-13-month promise (P20).
        Self {
            retention_days: 395,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawMetrics {
    /// Networks allowed to scrape `/metrics` (CIDR or single addresses).
    pub allow_from: Vec<String>,
    /// Optional bearer token scrapers must present; a secret.
    pub token: String,
    pub token_file: String,
}

impl Default for RawMetrics {
    fn default() -> Self {
        Self {
            allow_from: vec!["127.0.0.0/8".into(), "::1/128".into()],
            token: String::new(),
            token_file: String::new(),
        }
    }
}

/// One budget: `requests` per `window_secs` per caller (the class's key:
/// client IP, or the user, device, account or token), refilled evenly.
/// `ip_requests` is each client IP's ceiling in the same window across all
/// the callers behind it; absent, ten times `requests`. Classes keyed by
/// IP alone (`general`, `pairing`) take no `ip_requests`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub requests: u32,
    pub window_secs: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_requests: Option<u32>,
}

impl RawRateLimit {
    /// `requests` per `window_secs`, with the default IP ceiling.
    pub const fn new(requests: u32, window_secs: u32) -> Self {
        Self {
            requests,
            window_secs,
            ip_requests: None,
        }
    }
}

const fn limit(requests: u32, window_secs: u32) -> RawRateLimit {
    RawRateLimit::new(requests, window_secs)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawRateLimits {
    pub general: RawRateLimit,
    pub sign_in: RawRateLimit,
    pub sync: RawRateLimit,
    pub scim: RawRateLimit,
    pub export: RawRateLimit,
    pub pairing: RawRateLimit,
    pub refresh: RawRateLimit,
    /// Facts (not requests) a device's pushes may fold again per window
    /// because they arrived out of order.
    pub refold: RawRateLimit,
    /// The question service (`/api/v1/checks/*`), per paired device.
    pub checks: RawRateLimit,
}

impl Default for RawRateLimits {
    fn default() -> Self {
        Self {
            general: limit(600, 60),
            sign_in: limit(30, 60),
            sync: limit(600, 60),
            scim: limit(6_000, 60),
            export: limit(3, 3_600),
            pairing: limit(10, 60),
            refresh: limit(30, 60),
            refold: limit(300_000, 60),
            checks: limit(60, 60),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawBackup {
    /// age X25519 public keys (`age1…`) archives are encrypted to.
    pub recipients: Vec<String>,
    /// Empty means `<data_dir>/backups`.
    pub dir: String,
    /// Daily UTC time of the scheduled backup, `HH:MM`.
    pub schedule: String,
    pub retention_days: u32,
    /// The Ed25519 key that signs manifests. Empty means
    /// `<data_dir>/backup-signing.key`.
    pub signing_key_file: String,
    /// Verification keys (`aiwl_bkv_…`) trusted besides the signing key's
    /// own: earlier keys, so their archives still verify after a rotation,
    /// or the appliance's key on a machine that only restores.
    pub verify_keys: Vec<String>,
}

impl Default for RawBackup {
    fn default() -> Self {
        Self {
            recipients: Vec::new(),
            dir: String::new(),
            schedule: "02:00".into(),
            retention_days: 30,
            signing_key_file: String::new(),
            verify_keys: Vec::new(),
        }
    }
}

/// What org aggregates may reveal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawPrivacy {
    /// Cohorts (a concept's engineers, a team) smaller than this are
    /// suppressed, and two scopes released in one period must differ by at
    /// least this many engineers (docs/privacy.md). Never below 5.
    pub min_cohort: u32,
    /// The differential-privacy parameter of each released figure (the
    /// geometric mechanism); smaller is more private and noisier. At most 1.
    pub epsilon: f64,
    /// How many releases (org or team) may contain one engineer per period.
    pub releases_per_period: u32,
}

impl Default for RawPrivacy {
    fn default() -> Self {
        Self {
            min_cohort: 5,
            epsilon: 0.5,
            releases_per_period: 4,
        }
    }
}

/// The `[model]` section: an OpenAI-compatible chat-completions server
/// inside the customer's network (llama.cpp's server, vLLM, Ollama).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawModel {
    /// The API root, `/v1` included: requests go to
    /// `{base_url}/chat/completions`.
    pub base_url: String,
    /// The model name sent with each request.
    pub model: String,
    /// A file holding the API key (mode 0600); empty for a server that
    /// takes none. The key itself is never a configuration value.
    pub api_key_file: String,
    /// One call's limit, waiting for a free slot included; at least
    /// `FALLBACK_MARGIN_SECS` below `server.request_timeout_secs`.
    pub timeout_secs: u64,
    /// How long `GET /api/v1/checks/next` waits for the model to write a
    /// new check before it answers from the bank and the stored checks;
    /// the model's check is stored when it comes (within `timeout_secs`).
    /// At most `timeout_secs`; unset, 10 or `timeout_secs` if that is
    /// shorter.
    pub generate_wait_secs: Option<u64>,
    /// Calls in flight at once; more wait for a slot.
    pub max_concurrency: u32,
    /// PEM certificates trusted for an https `base_url` besides the
    /// system's roots (a private CA).
    pub tls_ca_file: String,
}

impl Default for RawModel {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            model: String::new(),
            api_key_file: String::new(),
            timeout_secs: super::model::DEFAULT_TIMEOUT_SECS,
            generate_wait_secs: None,
            max_concurrency: 2,
            tls_ca_file: String::new(),
        }
    }
}

/// API tokens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawTokens {
    /// SCIM tokens created on an org's admin page expire this many days
    /// after creation.
    pub scim_expiry_days: u32,
}

impl Default for RawTokens {
    fn default() -> Self {
        Self {
            scim_expiry_days: 180,
        }
    }
}

/// Sessions and re-authentication, for every org.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawSso {
    /// Admin actions need an IdP sign-in at most this old.
    pub reauth_max_age_secs: u64,
    /// A session unused this long ends.
    pub idle_timeout_secs: u64,
    /// A session ends this long after sign-in, however active.
    pub absolute_timeout_secs: u64,
    /// The session id is replaced when it is older than this and used.
    pub rotate_after_secs: u64,
}

impl Default for RawSso {
    fn default() -> Self {
        Self {
            reauth_max_age_secs: 300,
            idle_timeout_secs: 1_800,
            absolute_timeout_secs: 43_200,
            rotate_after_secs: 300,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawOrg {
    pub slug: String,
    pub name: String,
    /// "jit": create users at first sign-in; "scim_only": only users an
    /// identity provider provisioned and left active may sign in.
    pub provisioning: String,
    /// With jit, only these email domains may sign in (empty: any).
    pub allowed_email_domains: Vec<String>,
    /// Members of these IdP groups are admins of the org.
    pub admin_groups: Vec<String>,
    /// Members of these IdP groups are viewers of the org: they see the org
    /// dashboard and administer nothing.
    pub viewer_groups: Vec<String>,
    /// Refuse sign-ins whose amr/acr do not show multi-factor authentication.
    pub require_mfa: bool,
    /// The org's OpenID Provider; without it, only break-glass links sign in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc: Option<RawOidc>,
}

impl Default for RawOrg {
    fn default() -> Self {
        Self {
            slug: String::new(),
            name: String::new(),
            provisioning: "jit".into(),
            allowed_email_domains: Vec::new(),
            admin_groups: Vec::new(),
            viewer_groups: Vec::new(),
            require_mfa: false,
            oidc: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawOidc {
    pub issuer: String,
    pub client_id: String,
    /// A secret; prefer client_secret_file.
    pub client_secret: String,
    pub client_secret_file: String,
    pub scopes: Vec<String>,
    /// ID token (or userinfo) claim holding the user's groups.
    pub groups_claim: String,
    /// Claim used as the user name.
    pub username_claim: String,
    /// Also fetch the userinfo endpoint and merge its claims.
    pub use_userinfo: bool,
    /// `amr` values that each count as multi-factor on their own (RFC
    /// 8176). Two `amr` values of different factor types count as well.
    pub mfa_amr: Vec<String>,
    /// `acr` values that count as multi-factor.
    pub mfa_acr: Vec<String>,
    /// How a first sign-in finds an account that exists but has not signed
    /// in yet: "email", "external_id", "user_name" or "none".
    pub link_by: String,
    /// The claim compared with the SCIM `externalId` when `link_by` is
    /// "external_id".
    pub link_claim: String,
}

impl Default for RawOidc {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            client_id: String::new(),
            client_secret: String::new(),
            client_secret_file: String::new(),
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            groups_claim: "groups".into(),
            username_claim: "preferred_username".into(),
            use_userinfo: false,
            mfa_amr: vec!["mfa".into()],
            mfa_acr: Vec::new(),
            link_by: "email".into(),
            link_claim: "sub".into(),
        }
    }
}
