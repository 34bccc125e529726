//! Checked settings: what the rest of the appliance receives. Built once at
//! start-up from the raw configuration; every field here is already valid.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use zeroize::Zeroizing;

use super::error::{ConfigError, ConfigErrors};
use super::raw::{RawConfig, RawRateLimit};
use crate::ids::OrgSlug;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Where outbound connections may go (`air_gapped`, `egress_allow`).
    pub egress: crate::egress::Egress,
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub keys: KeySettings,
    pub log: LogSettings,
    pub audit: AuditSettings,
    pub metrics: MetricsSettings,
    pub rate_limits: RateLimits,
    pub backup: BackupSettings,
    pub sso: SsoSettings,
    /// Cohorts smaller than this are suppressed in org aggregates.
    pub min_cohort: usize,
    /// How long a SCIM token made on an org's admin page lives.
    pub scim_token_expiry: chrono::Duration,
    /// The privacy parameters of aggregate releases (docs/privacy.md).
    pub privacy: crate::privacy::Params,
    /// The org's local model; `None` without a `[model]` section.
    pub model: Option<super::model::ModelSettings>,
    pub orgs: Vec<OrgSettings>,
    /// The configuration this was made from, every secret already
    /// replaced by `<redacted>` (`config::redacted`): what the admins'
    /// settings page shows. Never holds a secret, so `Debug` is safe.
    pub shown: std::sync::Arc<RawConfig>,
}

#[derive(Debug, Clone)]
pub struct SsoSettings {
    pub reauth_max_age: Duration,
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    pub rotate_after: Duration,
}

/// Who may sign in to an org.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provisioning {
    /// Users are created at their first sign-in (allowed domains apply).
    Jit,
    /// Only users an identity provider provisioned over SCIM, and left active.
    ScimOnly,
}

/// How a first sign-in may take over an account that exists (made by SCIM
/// or the operator) but has no identity yet. Never onto an admin: that
/// takes `aiworklab user link`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkBy {
    /// A verified email whose domain the org lists in `allowed_email_domains`.
    Email,
    /// The `link_claim` claim equals the SCIM `externalId` of a SCIM user.
    ExternalId,
    /// The `username_claim` claim equals the SCIM `userName` of a SCIM user.
    UserName,
    /// Never: accounts are linked by the operator only.
    None,
}

#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The issuer exactly as configured (a trailing slash kept or left
    /// out): OpenID Connect Discovery §4.3 compares it byte for byte with
    /// the discovery document's and the tokens' `iss`.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scopes: Vec<String>,
    pub groups_claim: String,
    pub username_claim: String,
    pub use_userinfo: bool,
    pub mfa_amr: Vec<String>,
    pub mfa_acr: Vec<String>,
    pub link_by: LinkBy,
    pub link_claim: String,
}

#[derive(Debug, Clone)]
pub struct BackupSettings {
    /// Empty: scheduled backups are off and `backup create` refuses.
    pub recipients: Vec<age::x25519::Recipient>,
    pub dir: PathBuf,
    /// Daily UTC time of the scheduled backup.
    pub schedule: chrono::NaiveTime,
    pub retention_days: u32,
    /// The key that signs each archive's manifest (read when a backup is
    /// made, so a rotated key is used without a restart).
    pub signing_key_file: PathBuf,
    /// Verification keys trusted besides the signing key's own.
    pub verify_keys: Vec<crate::backup::signing::VerifyKey>,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    pub public_url: url::Url,
    pub tls: Option<TlsFiles>,
    pub tls_min_version: TlsVersion,
    pub trusted_proxies: Vec<IpNet>,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    V1_2,
    V1_3,
}

#[derive(Debug, Clone)]
pub struct StorageSettings {
    pub data_dir: PathBuf,
    pub read_pool_size: u32,
    pub busy_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct KeySettings {
    pub master_key_file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone)]
pub struct AuditSettings {
    pub retention_days: u32,
}

#[derive(Debug, Clone)]
pub struct MetricsSettings {
    pub allow_from: Vec<IpNet>,
    pub token: Option<Secret>,
}

/// A budget of `requests` per `window` per caller (the class's key), and
/// `ip_requests` per `window` per client IP across every caller behind it.
/// For classes keyed by IP alone the two are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub window: Duration,
    pub ip_requests: u32,
}

#[derive(Debug, Clone)]
pub struct RateLimits {
    pub general: RateLimit,
    pub sign_in: RateLimit,
    pub sync: RateLimit,
    pub scim: RateLimit,
    pub export: RateLimit,
    pub pairing: RateLimit,
    pub refresh: RateLimit,
    /// Facts a device's pushes may fold again per window because they
    /// arrived out of order (`requests` counts facts; no IP ceiling).
    pub refold: RateLimit,
    /// The question service, per paired device.
    pub checks: RateLimit,
}

#[derive(Debug, Clone)]
pub struct OrgSettings {
    pub slug: OrgSlug,
    pub name: String,
    pub provisioning: Provisioning,
    /// Lower-case domains; empty means any.
    pub allowed_email_domains: Vec<String>,
    pub admin_groups: Vec<String>,
    /// IdP groups whose members are viewers (the org dashboard only).
    pub viewer_groups: Vec<String>,
    pub require_mfa: bool,
    pub oidc: Option<OidcSettings>,
}

/// A secret value from the configuration. `Debug` never shows it and the
/// memory is wiped on drop.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Collects problems while validating, so all are reported at once.
pub(super) struct Checker<'a> {
    origin: &'a dyn Fn(&str) -> String,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    pub(super) fn fail(&mut self, key: &str, problem: impl Into<String>, fix: impl Into<String>) {
        self.errors.push(ConfigError {
            key: key.to_string(),
            origin: (self.origin)(key),
            problem: problem.into(),
            fix: fix.into(),
        });
    }

    pub(super) fn range<T: PartialOrd + fmt::Display + Copy>(
        &mut self,
        key: &str,
        v: T,
        lo: T,
        hi: T,
    ) -> T {
        if v < lo || v > hi {
            self.fail(
                key,
                format!("{v} is out of range"),
                format!("use a value from {lo} to {hi}"),
            );
        }
        v
    }

    fn nets(&mut self, key: &str, values: &[String]) -> Vec<IpNet> {
        let mut out = Vec::new();
        for (i, v) in values.iter().enumerate() {
            match parse_net(v) {
                Some(n) => out.push(n),
                None => self.fail(
                    &format!("{key}.{i}"),
                    format!("`{v}` is not an IP address or CIDR network"),
                    "write it like \"10.0.0.5\" or \"10.0.0.0/8\" or \"fd00::/8\"",
                ),
            }
        }
        out
    }

    /// A budget keyed by something besides the client IP, whose IP
    /// ceiling is `ip_requests` (ten times `requests` when absent).
    fn rate(&mut self, key: &str, raw: RawRateLimit) -> RateLimit {
        let requests = self.range(&format!("{key}.requests"), raw.requests, 1, 1_000_000);
        let window = self.range(&format!("{key}.window_secs"), raw.window_secs, 1, 86_400);
        let ip_requests = match raw.ip_requests {
            None => requests.saturating_mul(10).min(10_000_000),
            Some(ip) if ip < requests => {
                self.fail(
                    &format!("{key}.ip_requests"),
                    format!("{ip} is below {key}.requests ({requests})"),
                    "the IP ceiling covers every caller behind one address: make it at least `requests` (or leave it out for ten times `requests`)",
                );
                ip
            }
            Some(ip) => self.range(&format!("{key}.ip_requests"), ip, 1, 10_000_000),
        };
        RateLimit {
            requests: requests.max(1),
            window: Duration::from_secs(u64::from(window.max(1))),
            ip_requests: ip_requests.max(1),
        }
    }

    /// A budget keyed by the client IP alone: no separate ceiling.
    fn ip_rate(&mut self, key: &str, raw: RawRateLimit) -> RateLimit {
        if raw.ip_requests.is_some() {
            self.fail(
                &format!("{key}.ip_requests"),
                format!("{key} is counted per client IP already"),
                format!("remove ip_requests; {key}.requests is the per-IP budget"),
            );
        }
        let limit = self.rate(
            key,
            RawRateLimit {
                ip_requests: None,
                ..raw
            },
        );
        RateLimit {
            ip_requests: limit.requests,
            ..limit
        }
    }

    /// Resolves a secret given inline (`key`) or as a file (`key_file`).
    fn secret(&mut self, key: &str, inline: &str, file: &str) -> Option<Secret> {
        match (inline.is_empty(), file.is_empty()) {
            (true, true) => None,
            (false, false) => {
                self.fail(
                    key,
                    format!("both {key} and {key}_file are set"),
                    format!("keep only {key}_file (preferred) or {key}"),
                );
                None
            }
            (false, true) => Some(Secret::new(inline.to_string())),
            (true, false) => {
                let file_key = format!("{key}_file");
                match read_secret_file(Path::new(file)) {
                    Ok(s) => Some(s),
                    Err((problem, fix)) => {
                        self.fail(&file_key, problem, fix);
                        None
                    }
                }
            }
        }
    }
}

fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Reads a `*_file` secret: owner-only permissions, non-empty, one trailing
/// newline trimmed.
pub(super) fn read_secret_file(path: &Path) -> Result<Secret, (String, String)> {
    if let Err(problem) = crate::fsperm::check_private_file(path) {
        return Err((problem.to_string(), problem.fix()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        (
            format!("cannot read {}: {e}", path.display()),
            "check the path and that the service user can read it".to_string(),
        )
    })?;
    let value = text.strip_suffix('\n').unwrap_or(&text);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.is_empty() {
        return Err((
            format!("{} is empty", path.display()),
            "write the secret into the file".to_string(),
        ));
    }
    Ok(Secret::new(value.to_string()))
}

pub(super) fn is_local_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl Settings {
    /// Validates `raw`. `origin` names where a key was set, for messages.
    ///
    /// # Errors
    /// Every problem found, each naming its key and fix.
    pub fn from_raw(
        raw: &RawConfig,
        origin: &dyn Fn(&str) -> String,
    ) -> Result<Self, ConfigErrors> {
        let mut c = Checker {
            origin,
            errors: Vec::new(),
        };
        let r = &raw.server;

        let bind = match r.bind.parse::<SocketAddr>() {
            Ok(b) => b,
            Err(_) => {
                c.fail(
                    "server.bind",
                    format!("`{}` is not an IP address with a port", r.bind),
                    "write it like \"127.0.0.1:8080\" or \"0.0.0.0:8443\" or \"[::]:8443\"",
                );
                SocketAddr::from(([127, 0, 0, 1], 8080))
            }
        };
        let tls = match (r.tls_cert_file.is_empty(), r.tls_key_file.is_empty()) {
            (true, true) => None,
            (false, false) => {
                for (key, path) in [
                    ("server.tls_cert_file", &r.tls_cert_file),
                    ("server.tls_key_file", &r.tls_key_file),
                ] {
                    if !Path::new(path).is_file() {
                        c.fail(
                            key,
                            format!("{path} does not exist or is not a file"),
                            "give the path of a PEM file the service user can read",
                        );
                    }
                }
                Some(TlsFiles {
                    cert_file: r.tls_cert_file.clone().into(),
                    key_file: r.tls_key_file.clone().into(),
                })
            }
            (cert_missing, _) => {
                let (set, unset) = if cert_missing {
                    ("server.tls_key_file", "server.tls_cert_file")
                } else {
                    ("server.tls_cert_file", "server.tls_key_file")
                };
                c.fail(
                    unset,
                    format!("{set} is set but {unset} is not"),
                    "set both to enable TLS, or neither to serve plain HTTP on loopback",
                );
                None
            }
        };
        let tls_min_version = match r.tls_min_version.as_str() {
            "1.3" => TlsVersion::V1_3,
            "1.2" => TlsVersion::V1_2,
            other => {
                c.fail(
                    "server.tls_min_version",
                    format!("`{other}` is not a supported TLS version"),
                    "use \"1.3\" (default) or \"1.2\"; older versions are not offered",
                );
                TlsVersion::V1_3
            }
        };
        let trusted_proxies = c.nets("server.trusted_proxies", &r.trusted_proxies);
        if tls.is_none() && !bind.ip().is_loopback() && trusted_proxies.is_empty() {
            c.fail(
                "server.bind",
                format!("plain HTTP on the non-loopback address {bind} would expose sessions and tokens"),
                "set server.tls_cert_file and server.tls_key_file, or bind to 127.0.0.1 behind a reverse proxy, or list that proxy in server.trusted_proxies",
            );
        }
        let public_url = public_url(&mut c, &r.public_url, bind, tls.is_some());
        let request_timeout = c.range(
            "server.request_timeout_secs",
            r.request_timeout_secs,
            1,
            3_600,
        );
        let max_body = c.range("server.max_body_bytes", r.max_body_bytes, 1_024, 1 << 30);
        let grace = c.range("server.shutdown_grace_secs", r.shutdown_grace_secs, 0, 600);

        let s = &raw.storage;
        if s.data_dir.trim().is_empty() {
            c.fail(
                "storage.data_dir",
                "is empty",
                "give a directory, e.g. \"/var/lib/aiworklab\"",
            );
        }
        let data_dir = PathBuf::from(&s.data_dir);
        let read_pool_size = c.range("storage.read_pool_size", s.read_pool_size, 1, 64);
        let busy = c.range("storage.busy_timeout_ms", s.busy_timeout_ms, 0, 600_000);
        let master_key_file = if raw.keys.master_key_file.is_empty() {
            data_dir.join("master.key")
        } else {
            PathBuf::from(&raw.keys.master_key_file)
        };

        let format = match raw.log.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                c.fail(
                    "log.format",
                    format!("`{other}` is not a log format"),
                    "use \"text\" or \"json\"",
                );
                LogFormat::Text
            }
        };
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&raw.log.level) {
            c.fail(
                "log.level",
                format!("`{}` is not a log filter: {e}", raw.log.level),
                "use error, warn, info, debug or trace, optionally per module (\"info,aiworklab::http=debug\")",
            );
        }
        let retention_days = c.range("audit.retention_days", raw.audit.retention_days, 30, 3_650);
        let allow_from = c.nets("metrics.allow_from", &raw.metrics.allow_from);
        let token = c.secret("metrics.token", &raw.metrics.token, &raw.metrics.token_file);

        let rl = &raw.rate_limits;
        let rate_limits = RateLimits {
            general: c.ip_rate("rate_limits.general", rl.general),
            sign_in: c.rate("rate_limits.sign_in", rl.sign_in),
            sync: c.rate("rate_limits.sync", rl.sync),
            scim: c.rate("rate_limits.scim", rl.scim),
            export: c.rate("rate_limits.export", rl.export),
            pairing: c.ip_rate("rate_limits.pairing", rl.pairing),
            refresh: c.rate("rate_limits.refresh", rl.refresh),
            refold: c.rate("rate_limits.refold", rl.refold),
            checks: c.rate("rate_limits.checks", rl.checks),
        };
        let backup = backup(&mut c, raw, &data_dir);
        let sso = SsoSettings {
            reauth_max_age: Duration::from_secs(c.range(
                "sso.reauth_max_age_secs",
                raw.sso.reauth_max_age_secs,
                0,
                86_400,
            )),
            idle_timeout: Duration::from_secs(c.range(
                "sso.idle_timeout_secs",
                raw.sso.idle_timeout_secs,
                60,
                86_400,
            )),
            absolute_timeout: Duration::from_secs(c.range(
                "sso.absolute_timeout_secs",
                raw.sso.absolute_timeout_secs,
                300,
                30 * 86_400,
            )),
            rotate_after: Duration::from_secs(c.range(
                "sso.rotate_after_secs",
                raw.sso.rotate_after_secs,
                10,
                86_400,
            )),
        };
        let floor = crate::privacy::Params::FLOOR;
        let min_cohort = c.range(
            "privacy.min_cohort",
            raw.privacy.min_cohort,
            floor.min_cohort,
            1_000,
        );
        let epsilon = c.range(
            "privacy.epsilon",
            raw.privacy.epsilon,
            crate::privacy::Params::MIN_EPSILON,
            floor.epsilon(),
        );
        let releases = c.range(
            "privacy.releases_per_period",
            raw.privacy.releases_per_period,
            2,
            floor.budget,
        );
        let privacy = crate::privacy::Params::new(min_cohort, epsilon, releases);
        let min_cohort = min_cohort as usize;
        let scim_expiry_days = c.range(
            "tokens.scim_expiry_days",
            raw.tokens.scim_expiry_days,
            1,
            3_650,
        );
        let orgs = orgs(&mut c, raw);
        let model = raw
            .model
            .as_ref()
            .and_then(|m| super::model::model(&mut c, m, request_timeout));
        let egress = egress(&mut c, raw, &orgs, model.as_ref());

        if !c.errors.is_empty() {
            return Err(ConfigErrors(c.errors));
        }
        Ok(Settings {
            shown: std::sync::Arc::new(super::redacted(raw)),
            egress,
            server: ServerSettings {
                bind,
                public_url,
                tls,
                tls_min_version,
                trusted_proxies,
                request_timeout: Duration::from_secs(request_timeout),
                max_body_bytes: usize::try_from(max_body).unwrap_or(usize::MAX),
                shutdown_grace: Duration::from_secs(grace),
            },
            storage: StorageSettings {
                data_dir,
                read_pool_size,
                busy_timeout: Duration::from_millis(busy),
            },
            keys: KeySettings { master_key_file },
            log: LogSettings {
                format,
                level: raw.log.level.clone(),
            },
            audit: AuditSettings { retention_days },
            metrics: MetricsSettings { allow_from, token },
            rate_limits,
            backup,
            sso,
            min_cohort,
            scim_token_expiry: chrono::Duration::days(i64::from(scim_expiry_days)),
            privacy,
            model,
            orgs,
        })
    }

    /// Air-gapped, resolves every named outbound destination now and
    /// refuses one that resolves only to addresses the egress rule does not
    /// allow (`config check` and `serve` at start). A name that does not
    /// resolve now is not refused (it is checked again at every
    /// connection): it comes back as a warning.
    ///
    /// # Errors
    /// One [`ConfigError`] per refused destination, naming its key.
    pub async fn check_egress(&self) -> Result<Vec<String>, ConfigErrors> {
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        for (key, url) in destinations(&self.orgs, self.model.as_ref()) {
            match self.egress.check_url_resolved(&url).await {
                Ok(None) => {}
                Ok(Some(lookup)) => warnings.push(format!(
                    "{key}: {} does not resolve now ({lookup}); it is checked again when the appliance connects",
                    url.host_str().unwrap_or_default()
                )),
                Err(refused) => errors.push(ConfigError {
                    origin: "as resolved now".into(),
                    key,
                    problem: refused.to_string(),
                    fix: "use a destination inside your network, or add it to egress_allow".into(),
                }),
            }
        }
        if errors.is_empty() {
            Ok(warnings)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// The configured org with this slug.
    pub fn org(&self, slug: &OrgSlug) -> Option<&OrgSettings> {
        self.orgs.iter().find(|o| &o.slug == slug)
    }
}

fn public_url(c: &mut Checker<'_>, raw: &str, bind: SocketAddr, tls: bool) -> url::Url {
    let derived = || {
        let scheme = if tls { "https" } else { "http" };
        let host = if bind.ip().is_unspecified() {
            "localhost".to_string()
        } else {
            match bind.ip() {
                IpAddr::V6(ip) => format!("[{ip}]"),
                IpAddr::V4(ip) => ip.to_string(),
            }
        };
        url::Url::parse(&format!("{scheme}://{host}:{}/", bind.port()))
            .expect("a scheme, an IP or localhost, and a port always form a valid URL")
    };
    if raw.is_empty() {
        return derived();
    }
    let url = match url::Url::parse(raw) {
        Ok(u) => u,
        Err(e) => {
            c.fail(
                "server.public_url",
                format!("`{raw}` is not a URL: {e}"),
                "write it like \"https://skills.example.com\"",
            );
            return derived();
        }
    };
    let fix = "use https:// (http:// only for localhost), with no path, query or fragment, e.g. \"https://skills.example.com\"";
    if !matches!(url.scheme(), "https" | "http") || (url.scheme() == "http" && !is_local_host(&url))
    {
        c.fail(
            "server.public_url",
            format!("`{raw}` must be https: session cookies are Secure-only"),
            fix,
        );
    } else if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        c.fail(
            "server.public_url",
            format!("`{raw}` has a path, query or fragment"),
            fix,
        );
    }
    url
}

fn backup(c: &mut Checker<'_>, raw: &RawConfig, data_dir: &Path) -> BackupSettings {
    let b = &raw.backup;
    let mut recipients = Vec::new();
    for (i, r) in b.recipients.iter().enumerate() {
        match r.trim().parse::<age::x25519::Recipient>() {
            Ok(k) => recipients.push(k),
            Err(_) => c.fail(
                &format!("backup.recipients.{i}"),
                format!("`{r}` is not an age X25519 public key"),
                "give the age1… line printed by `aiworklab backup keygen` or `age-keygen`; never the secret key",
            ),
        }
    }
    let schedule = chrono::NaiveTime::parse_from_str(&b.schedule, "%H:%M").unwrap_or_else(|_| {
        c.fail(
            "backup.schedule",
            format!("`{}` is not a time of day", b.schedule),
            "write HH:MM in UTC, e.g. \"02:00\"",
        );
        chrono::NaiveTime::MIN
    });
    let retention_days = c.range("backup.retention_days", b.retention_days, 1, 3_650);
    let mut verify_keys = Vec::new();
    for (i, k) in b.verify_keys.iter().enumerate() {
        match k.parse() {
            Ok(k) => verify_keys.push(k),
            Err(why) => c.fail(
                &format!("backup.verify_keys.{i}"),
                why,
                "give the aiwl_bkv_… line printed by `aiworklab backup keygen --signing`; never the signing key",
            ),
        }
    }
    let signing_key_file = if b.signing_key_file.is_empty() {
        data_dir.join("backup-signing.key")
    } else {
        PathBuf::from(&b.signing_key_file)
    };
    let dir = if b.dir.is_empty() {
        data_dir.join("backups")
    } else {
        PathBuf::from(&b.dir)
    };
    BackupSettings {
        recipients,
        dir,
        schedule,
        retention_days,
        signing_key_file,
        verify_keys,
    }
}

/// The egress rule, and every configured outbound destination checked
/// against it (the addresses written in URLs; names are resolved by
/// [`Settings::check_egress`] and at every connection).
fn egress(
    c: &mut Checker<'_>,
    raw: &RawConfig,
    orgs: &[OrgSettings],
    model: Option<&super::model::ModelSettings>,
) -> crate::egress::Egress {
    use crate::egress::{Allowed, Egress};
    let mut allow = Vec::new();
    for (i, entry) in raw.egress_allow.iter().enumerate() {
        match Allowed::parse(entry) {
            Ok(a) => allow.push(a),
            Err(problem) => c.fail(
                &format!("egress_allow.{i}"),
                problem,
                "list host names or address ranges, e.g. egress_allow = [\"idp.example.com\", \"203.0.113.0/24\"]",
            ),
        }
    }
    if !raw.air_gapped {
        if !allow.is_empty() {
            c.fail(
                "egress_allow",
                "is set but air_gapped is false, so it would have no effect",
                "set air_gapped = true, or remove egress_allow",
            );
        }
        return Egress::open();
    }
    let egress = Egress::air_gapped(allow);
    for (key, url) in destinations(orgs, model) {
        if let Err(refused) = egress.check_url(&url) {
            c.fail(
                &key,
                refused.to_string(),
                "use an address inside your network, or add this one to egress_allow",
            );
        }
    }
    egress
}

/// Every outbound destination, with its key: each org's OIDC issuer (the
/// JWKS, token and userinfo URLs its discovery document names are checked
/// when they are used) and the model's `base_url`.
pub fn destinations(
    orgs: &[OrgSettings],
    model: Option<&super::model::ModelSettings>,
) -> Vec<(String, url::Url)> {
    let model = model.map(|m| ("model.base_url".to_string(), m.base_url.clone()));
    orgs.iter()
        .enumerate()
        .filter_map(|(i, o)| {
            let oidc = o.oidc.as_ref()?;
            let url = url::Url::parse(oidc.issuer.trim()).ok()?;
            Some((format!("orgs.{i}.oidc.issuer"), url))
        })
        .chain(model)
        .collect()
}

fn orgs(c: &mut Checker<'_>, raw: &RawConfig) -> Vec<OrgSettings> {
    if raw.orgs.is_empty() {
        c.fail(
            "orgs",
            "no organisation is configured",
            "add an [[orgs]] table with slug and name",
        );
    }
    let mut out: Vec<OrgSettings> = Vec::new();
    for (i, o) in raw.orgs.iter().enumerate() {
        let slug = match OrgSlug::parse(&o.slug) {
            Ok(s) => s,
            Err(e) => {
                c.fail(
                    &format!("orgs.{i}.slug"),
                    e.to_string(),
                    "rename it to match ^[a-z0-9][a-z0-9-]{0,62}$",
                );
                continue;
            }
        };
        if out.iter().any(|x| x.slug == slug) {
            c.fail(
                &format!("orgs.{i}.slug"),
                format!("org `{slug}` is declared twice"),
                "remove the duplicate [[orgs]] table",
            );
            continue;
        }
        let name = o.name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            c.fail(
                &format!("orgs.{i}.name"),
                "must be 1 to 200 printable characters",
                "give the organisation's display name, e.g. \"Acme Corp\"",
            );
        }
        let key = |k: &str| format!("orgs.{i}.{k}");
        let provisioning = match o.provisioning.as_str() {
            "jit" => Provisioning::Jit,
            "scim_only" => Provisioning::ScimOnly,
            other => {
                c.fail(
                    &key("provisioning"),
                    format!("`{other}` is not a provisioning policy"),
                    "use \"jit\" or \"scim_only\"",
                );
                Provisioning::ScimOnly
            }
        };
        let mut allowed_email_domains = Vec::new();
        for (j, d) in o.allowed_email_domains.iter().enumerate() {
            let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
            if d.is_empty() || d.contains(['@', '/', ' ']) || !d.contains('.') {
                c.fail(
                    &format!("orgs.{i}.allowed_email_domains.{j}"),
                    format!("`{d}` is not an email domain"),
                    "write the part after @, e.g. \"acme.com\"",
                );
            }
            allowed_email_domains.push(d);
        }
        let oidc = o.oidc.as_ref().and_then(|raw| oidc(c, &key("oidc"), raw));
        out.push(OrgSettings {
            slug,
            name: name.to_string(),
            provisioning,
            allowed_email_domains,
            admin_groups: group_names(&o.admin_groups),
            viewer_groups: group_names(&o.viewer_groups),
            require_mfa: o.require_mfa,
            oidc,
        });
    }
    out
}

/// Group names from the configuration, trimmed, empty ones dropped.
fn group_names(raw: &[String]) -> Vec<String> {
    raw.iter()
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty())
        .collect()
}

fn oidc(c: &mut Checker<'_>, key: &str, raw: &super::raw::RawOidc) -> Option<OidcSettings> {
    let k = |s: &str| format!("{key}.{s}");
    let issuer = match url::Url::parse(&raw.issuer) {
        Ok(u) if u.scheme() == "https" || (u.scheme() == "http" && is_local_host(&u)) => {
            Some(raw.issuer.trim().to_string())
        }
        Ok(_) => {
            c.fail(&k("issuer"), format!("`{}` must be https (http only on loopback, for labs)", raw.issuer), "use the issuer URL your identity provider shows, e.g. \"https://login.example.com/realms/acme\"");
            None
        }
        Err(e) => {
            c.fail(
                &k("issuer"),
                format!("`{}` is not a URL: {e}", raw.issuer),
                "use the issuer URL your identity provider shows",
            );
            None
        }
    };
    if raw.client_id.trim().is_empty() {
        c.fail(
            &k("client_id"),
            "is empty",
            "give the client id of the application registered at the identity provider",
        );
    }
    let secret = c.secret(
        &k("client_secret"),
        &raw.client_secret,
        &raw.client_secret_file,
    );
    if secret.is_none() && raw.client_secret.is_empty() && raw.client_secret_file.is_empty() {
        c.fail(
            &k("client_secret_file"),
            "no client secret is configured",
            "write the client secret into a file of mode 0600 and name it here",
        );
    }
    if !raw.scopes.iter().any(|s| s == "openid") {
        c.fail(
            &k("scopes"),
            "does not include \"openid\"",
            "add \"openid\" to the scopes",
        );
    }
    let link_by = match raw.link_by.as_str() {
        "email" => LinkBy::Email,
        "external_id" => LinkBy::ExternalId,
        "user_name" => LinkBy::UserName,
        "none" => LinkBy::None,
        other => {
            c.fail(
                &k("link_by"),
                format!("`{other}` is not a way to link accounts"),
                "use \"email\", \"external_id\", \"user_name\" or \"none\" (see docs/sso.md, Linking)",
            );
            LinkBy::None
        }
    };
    if link_by == LinkBy::ExternalId && raw.link_claim.trim().is_empty() {
        c.fail(
            &k("link_claim"),
            "is empty",
            "name the ID-token claim that carries the SCIM externalId, e.g. \"sub\" (Okta) or \"oid\" (Entra ID)",
        );
    }
    Some(OidcSettings {
        issuer: issuer?,
        client_id: raw.client_id.trim().to_string(),
        client_secret: secret?,
        scopes: raw.scopes.clone(),
        groups_claim: raw.groups_claim.clone(),
        username_claim: raw.username_claim.clone(),
        use_userinfo: raw.use_userinfo,
        mfa_amr: raw.mfa_amr.clone(),
        mfa_acr: raw.mfa_acr.clone(),
        link_by,
        link_claim: raw.link_claim.trim().to_string(),
    })
}
