//! Configuration: built-in defaults, then a TOML file (`--config`, else
//! `/etc/aiworklab/aiworklab.toml` when present), then `AIWORKLAB_*`
//! environment variables with `__` between nested keys. Loaded and checked
//! once at start-up, then passed down as [`Settings`]; never global.

mod error;
mod model;
mod raw;
mod settings;

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};

pub use error::{ConfigError, ConfigErrors, ENV_PREFIX, env_var_for};
pub use model::ModelSettings;
pub use raw::{RawConfig, RawModel, RawOidc, RawOrg, RawPrivacy, RawRateLimit, RawSso};
pub use settings::{
    AuditSettings, BackupSettings, KeySettings, LinkBy, LogFormat, LogSettings, MetricsSettings,
    OidcSettings, OrgSettings, Provisioning, RateLimit, RateLimits, Secret, ServerSettings,
    Settings, SsoSettings, StorageSettings, TlsFiles, TlsVersion,
};

/// Where the configuration file is looked for when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/aiworklab/aiworklab.toml";

/// The environment variable that names the configuration file; read by the
/// CLI, so the settings provider ignores it.
pub const CONFIG_PATH_ENV: &str = "AIWORKLAB_CONFIG";

/// The merged configuration before validation, with the figment that knows
/// where each value came from.
pub struct Loaded {
    pub raw: RawConfig,
    pub figment: Figment,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
}

/// Builds the layered figment: defaults < file < environment.
fn figment(file: Option<&Path>) -> Figment {
    let mut f = Figment::from(Serialized::defaults(RawConfig::default()));
    if let Some(path) = file {
        f = f.merge(Toml::file_exact(path));
    }
    f.merge(
        Env::prefixed(ENV_PREFIX)
            .filter(|key| !not_configuration(key.as_str()))
            .split("__"),
    )
}

/// `AIWORKLAB_*` variables that are not configuration keys, so the settings
/// provider leaves them alone: the configuration file's path (read by the
/// CLI), the build's commit and date (`build.rs` sets them for the compiler,
/// and cargo repeats them in the environment of `cargo run` and `cargo
/// test`), the kernel's own (`AIWORKLAB_AGENT_*`, the pairing code), on
/// a machine that runs both, and CI's (`AIWORKLAB_ADVISORY_SNAPSHOT`,
/// `AIWORKLAB_CI_*`), which reach the tests `.ci/run` starts.
fn not_configuration(key: &str) -> bool {
    let key = key.to_ascii_uppercase();
    matches!(
        key.as_str(),
        "CONFIG" | "GIT_COMMIT" | "BUILD_DATE" | "PAIRING_CODE" | "ADVISORY_SNAPSHOT"
    ) || key.starts_with("AGENT_")
        || key.starts_with("CI_")
}

/// Chooses the file: the explicit path, else the default path when it exists.
fn choose_file(explicit: Option<&Path>) -> Option<PathBuf> {
    match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => {
            let default = Path::new(DEFAULT_CONFIG_PATH);
            default.exists().then(|| default.to_path_buf())
        }
    }
}

/// Loads the configuration without validating values.
///
/// # Errors
/// A missing explicit file, TOML syntax errors, unknown keys and wrong types,
/// each naming the key and where it was set.
pub fn load_raw(explicit: Option<&Path>) -> Result<Loaded, ConfigErrors> {
    let file = choose_file(explicit);
    if let Some(path) = &file
        && !path.is_file()
    {
        return Err(ConfigErrors(vec![ConfigError {
            key: "--config".into(),
            origin: format!("{CONFIG_PATH_ENV} or the --config flag"),
            problem: format!("{} does not exist or is not a file", path.display()),
            fix: "give the path of an existing TOML file (see config/aiworklab.toml)".into(),
        }]));
    }
    let figment = figment(file.as_deref());
    match figment.extract::<RawConfig>() {
        Ok(raw) => Ok(Loaded { raw, figment, file }),
        Err(e) => Err(error::from_figment(&figment, e)),
    }
}

/// Loads and validates the configuration.
///
/// # Errors
/// Every problem found, each naming the key, where it was set, and the fix.
pub fn load(explicit: Option<&Path>) -> Result<(Settings, Loaded), ConfigErrors> {
    let loaded = load_raw(explicit)?;
    let origin = |key: &str| error::origin_of(&loaded.figment, key);
    let settings = Settings::from_raw(&loaded.raw, &origin)?;
    Ok((settings, loaded))
}

/// Validates a raw configuration built in code (tests, embedded default).
///
/// # Errors
/// As [`load`].
pub fn from_raw(raw: &RawConfig) -> Result<Settings, ConfigErrors> {
    Settings::from_raw(raw, &|_| "built-in default".to_string())
}

/// Renders the effective configuration as TOML with every secret redacted,
/// for `aiworklab config show`.
pub fn render_redacted(raw: &RawConfig) -> String {
    toml_string(&redacted(raw))
}

/// The effective configuration as one org's admins may see it: the
/// installation-wide sections and that org's own `[[orgs]]` entry only
/// (nothing of the other orgs), secrets redacted as [`render_redacted`]
/// does. `redacted` is [`Settings::shown`], already redacted.
pub fn render_for_org(redacted: &RawConfig, slug: &str) -> String {
    let mut shown = redacted.clone();
    shown.orgs.retain(|o| o.slug == slug);
    toml_string(&shown)
}

/// `raw` with every secret replaced by `<redacted>`.
pub fn redacted(raw: &RawConfig) -> RawConfig {
    let mut shown = raw.clone();
    if !shown.metrics.token.is_empty() {
        shown.metrics.token = "<redacted>".into();
    }
    for org in &mut shown.orgs {
        if let Some(oidc) = &mut org.oidc
            && !oidc.client_secret.is_empty()
        {
            oidc.client_secret = "<redacted>".into();
        }
    }
    shown
}

fn toml_string(raw: &RawConfig) -> String {
    // `toml_edit::ser` keeps tables readable and arrays of tables as [[orgs]].
    toml_edit::ser::to_string_pretty(raw).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
}

#[cfg(test)]
mod tests;
