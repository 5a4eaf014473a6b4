//! The server's configuration: defaults < optional TOML file < `SAMOKODER_*` environment.
//!
//! - Defaults are the `Default` impls below: with nothing configured the server listens on
//!   `127.0.0.1:8000`, keeps its data (SQLite database, development secrets) in `./.samokoder`,
//!   and rate-limits in memory.
//! - `SAMOKODER_CONFIG` names a TOML file; it must exist when set, and unknown keys in it are an
//!   error so a typo cannot silently fall back to a default.
//! - Every setting can be overridden by an environment variable: `SAMOKODER_` + the setting's path
//!   in upper case with `__` between levels, e.g. `SAMOKODER_RATE_LIMIT__AUTH_PER_MINUTE=5`.
//!   Lists take either a TOML array or a comma-separated string.
//!
//! [`Config::validate`] then checks the whole value (and refuses weak secrets in production), and
//! [`Config::resolve_secrets`] supplies the signing and encryption keys, generating development
//! ones once when none are configured outside production.
//!
//! Nothing here ever prints a secret: secrets are [`SecretString`]s, connection URLs hide their
//! passwords, and serializing a `Config` (what `samokoder-server config` prints) redacts both.

mod env;
mod generation;
mod secrets;
mod sections;
mod serde_util;
mod url;
mod validate;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

pub use self::env::ENV_PREFIX;
pub use self::generation::{
    BudgetDefaults, PreviewConfig, RunnerSettings, RunsConfig, SandboxMode, WorkersConfig,
};
pub use self::secrets::{DevSecretsOutcome, KeyedSecret, Secrets};
pub use self::sections::{
    AuthConfig, CookieSettings, DatabaseConfig, LlmSettings, LockoutConfig, PasswordHashConfig,
    StoreBackend,
};
pub use self::url::ConnectionUrl;
pub use self::validate::{Problem, Warning};

use samokoder_auth::secret::SecretString;

/// The environment variable naming the optional TOML configuration file.
pub const CONFIG_FILE_VAR: &str = "SAMOKODER_CONFIG";

/// Which kind of deployment this is; decides the defaults that trade safety for convenience.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// A developer's machine: generated secrets, compact logs, localhost CORS origins.
    #[default]
    #[serde(alias = "dev")]
    Development,
    /// A real deployment: secrets must be configured and strong, JSON logs, HSTS.
    #[serde(alias = "prod")]
    Production,
    /// Automated tests: like development.
    Test,
}

impl Environment {
    /// Whether this is a production deployment.
    pub fn is_production(self) -> bool {
        self == Self::Production
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Development => "development",
            Self::Production => "production",
            Self::Test => "test",
        })
    }
}

/// The whole configuration of the reference server.
///
/// Every field has a default, so an empty file and an empty environment give a working
/// development server. Fields are public so embedders and tests can build a `Config` in code.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `development` (default), `production` or `test`. Env: `SAMOKODER_ENV`.
    pub env: Environment,
    /// Address and port to listen on. Env: `SAMOKODER_LISTEN`.
    pub listen: SocketAddr,
    /// Where the server keeps local state: the default SQLite database and the generated
    /// development secrets. Relative paths are relative to the working directory.
    /// Env: `SAMOKODER_DATA_DIR`.
    pub data_dir: PathBuf,
    /// The database to use. Unset means a SQLite file in [`Config::data_dir`]; see
    /// [`Config::database_url`]. Only ever read from configuration, never from a request.
    /// Env: `SAMOKODER_DATABASE_URL`.
    pub database_url: Option<ConnectionUrl>,
    /// The database pool and migrations.
    pub database: DatabaseConfig,
    /// Redis, for rate limits shared between processes. Unset means in-memory limits.
    /// Env: `SAMOKODER_REDIS_URL`.
    pub redis_url: Option<ConnectionUrl>,
    /// Logging.
    pub log: LogConfig,
    /// Signing and encryption keys.
    pub secrets: SecretsConfig,
    /// Cross-origin requests from browsers.
    pub cors: CorsConfig,
    /// Who may scrape `/metrics`.
    pub metrics: MetricsConfig,
    /// Proxies whose `X-Forwarded-For` is believed, as CIDRs or bare addresses. Empty (the
    /// default) means the peer address is always the client. Env: `SAMOKODER_TRUSTED_PROXIES`.
    #[serde(deserialize_with = "serde_util::ip_nets")]
    pub trusted_proxies: Vec<IpNet>,
    /// Request rate limits.
    pub rate_limit: RateLimitConfig,
    /// Body sizes and time limits.
    pub limits: LimitsConfig,
    /// The readiness endpoint.
    pub health: HealthConfig,
    /// Sessions, password hashing, lockout and cookies.
    pub auth: AuthConfig,
    /// The LLM providers, routes and prices (`SAMOKODER_LLM__<PROVIDER>__API_KEY`, ...).
    pub llm: LlmSettings,
    /// The workers that drive generation runs.
    pub workers: WorkersConfig,
    /// Run defaults and event streaming.
    pub runs: RunsConfig,
    /// The sandbox generated code runs in.
    pub runner: RunnerSettings,
    /// Previews of generated apps.
    pub preview: PreviewConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            env: Environment::default(),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8000)),
            data_dir: PathBuf::from("./.samokoder"),
            database_url: None,
            database: DatabaseConfig::default(),
            redis_url: None,
            log: LogConfig::default(),
            secrets: SecretsConfig::default(),
            cors: CorsConfig::default(),
            metrics: MetricsConfig::default(),
            trusted_proxies: Vec::new(),
            rate_limit: RateLimitConfig::default(),
            limits: LimitsConfig::default(),
            health: HealthConfig::default(),
            auth: AuthConfig::default(),
            llm: LlmSettings::default(),
            workers: WorkersConfig::default(),
            runs: RunsConfig::default(),
            runner: RunnerSettings::default(),
            preview: PreviewConfig::default(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Multi-line, human-friendly.
    Pretty,
    /// One human-readable line per event.
    Compact,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json => "json",
            Self::Pretty => "pretty",
            Self::Compact => "compact",
        })
    }
}

/// Logging settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Output format; unset means `json` in production and `compact` elsewhere.
    /// Env: `SAMOKODER_LOG__FORMAT`.
    pub format: Option<LogFormat>,
    /// A `tracing` filter directive such as `info` or `info,samokoder_server=debug`.
    /// Env: `SAMOKODER_LOG__FILTER`.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: None,
            filter: "info".to_owned(),
        }
    }
}

/// Signing and encryption keys, each with a key id so keys can be rotated.
///
/// In each list the **first** key is the current one (it signs or encrypts); the others are only
/// used to verify or decrypt what older keys produced. In the environment a list is written as
/// `kid:value,kid:value` (ids may not contain `:` or `,`); in TOML as an array of tables with
/// `kid` and `secret`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    /// HMAC keys for access and refresh tokens; each at least 32 bytes.
    /// Env: `SAMOKODER_SECRETS__JWT_KEYS`.
    #[serde(deserialize_with = "serde_util::keyed_secrets")]
    pub jwt_keys: Vec<KeyedSecret>,
    /// Keys of the secret box that seals users' provider keys: base64 of exactly 32 bytes.
    /// Env: `SAMOKODER_SECRETS__SECRET_BOX_KEYS`.
    #[serde(deserialize_with = "serde_util::keyed_secrets")]
    pub secret_box_keys: Vec<KeyedSecret>,
}

/// Access to the Prometheus endpoint, whose counters (lockouts, refresh-token reuse, costs,
/// process figures) help an attacker as much as an operator.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// A bearer token scrapers must present (`Authorization: Bearer <token>`); at least 32
    /// characters in production. Unset means `/metrics` is open outside production and closed
    /// (403 `metrics_token_required`) in production. Env: `SAMOKODER_METRICS__TOKEN`.
    #[serde(serialize_with = "redact_optional")]
    pub token: Option<SecretString>,
}

/// Cross-origin settings. Credentials (cookies) are always allowed, so origins are an explicit
/// list: `*` is refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins (`scheme://host[:port]`) allowed to call the API from a browser. Unset means
    /// `http://localhost:5173` and `http://localhost:3000` outside production (the web app's
    /// development servers) and none in production. Env: `SAMOKODER_CORS__ALLOWED_ORIGINS`.
    #[serde(deserialize_with = "serde_util::optional_string_list")]
    pub allowed_origins: Option<Vec<String>>,
    /// How long browsers may cache a preflight answer, in seconds.
    /// Env: `SAMOKODER_CORS__MAX_AGE_SECS`.
    pub max_age_secs: u64,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            allowed_origins: None,
            max_age_secs: 3600,
        }
    }
}

/// Rate limits, per route class and per key (the user when authenticated, else the client
/// address). Limits are "N per minute" with a burst of N (GCRA: one request's worth of allowance
/// comes back every 60/N seconds).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Switches rate limiting off entirely (for benchmarks). Env: `SAMOKODER_RATE_LIMIT__ENABLED`.
    pub enabled: bool,
    /// Requests per minute to the authentication routes (login, register, refresh).
    /// Env: `SAMOKODER_RATE_LIMIT__AUTH_PER_MINUTE`.
    pub auth_per_minute: u32,
    /// Requests per minute to every other `/v1` route.
    /// Env: `SAMOKODER_RATE_LIMIT__GENERAL_PER_MINUTE`.
    pub general_per_minute: u32,
    /// How long to wait for Redis before deciding in memory instead, in milliseconds.
    /// Env: `SAMOKODER_RATE_LIMIT__BACKEND_TIMEOUT_MS`.
    pub backend_timeout_ms: u64,
    /// Prefix of the Redis keys, so several deployments can share one Redis.
    /// Env: `SAMOKODER_RATE_LIMIT__REDIS_KEY_PREFIX`.
    pub redis_key_prefix: String,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            auth_per_minute: 10,
            general_per_minute: 120,
            backend_timeout_ms: 250,
            redis_key_prefix: "samokoder:ratelimit:".to_owned(),
        }
    }
}

/// Request body sizes and time limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body accepted by the authentication routes, in bytes.
    /// Env: `SAMOKODER_LIMITS__AUTH_BODY_BYTES`.
    pub auth_body_bytes: usize,
    /// Largest request body accepted elsewhere, in bytes. Env: `SAMOKODER_LIMITS__BODY_BYTES`.
    pub body_bytes: usize,
    /// How long a request may take before it is answered with 503, in seconds.
    /// Env: `SAMOKODER_LIMITS__REQUEST_TIMEOUT_SECS`.
    pub request_timeout_secs: u64,
    /// How long shutdown waits for open requests to finish, in seconds.
    /// Env: `SAMOKODER_LIMITS__SHUTDOWN_GRACE_SECS`.
    pub shutdown_grace_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            auth_body_bytes: 16 * 1024,
            body_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            shutdown_grace_secs: 30,
        }
    }
}

/// Readiness checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// How long each readiness check may take before it counts as failed, in milliseconds.
    /// Env: `SAMOKODER_HEALTH__CHECK_TIMEOUT_MS`.
    pub check_timeout_ms: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            check_timeout_ms: 2000,
        }
    }
}

/// Why the configuration could not be loaded or is not acceptable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `SAMOKODER_CONFIG` names a file that does not exist.
    #[error("the configuration file {path} named by {CONFIG_FILE_VAR} does not exist")]
    MissingFile {
        /// The path as given.
        path: PathBuf,
    },
    /// A value has the wrong type, a key is unknown, or the file is not valid TOML.
    #[error("cannot read the configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    /// The configuration was read but is not acceptable (each problem names its setting).
    #[error("the configuration is not acceptable:{}", validate::bullet_list(.0))]
    Invalid(Vec<Problem>),
    /// The development secrets file could not be read or written.
    #[error("development secrets file {path}: {source}")]
    DevSecrets {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The development secrets file exists but does not hold valid keys.
    #[error("development secrets file {path} is malformed ({reason}); delete it to regenerate")]
    DevSecretsMalformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, without any of the file's content.
        reason: String,
    },
}

impl Config {
    /// Loads the configuration from the process environment (and the file it names).
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_from(std::env::vars())
    }

    /// Loads the configuration from the given environment variables (and the file
    /// `SAMOKODER_CONFIG` names among them), on top of the defaults.
    ///
    /// Taking the variables as an argument keeps tests free of process-global state.
    pub fn load_from<I, K, V>(vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let mut figment = Figment::new();
        // An empty SAMOKODER_CONFIG means "no file", as unset does.
        if let Some((_, path)) = vars
            .iter()
            .find(|(k, v)| k == CONFIG_FILE_VAR && !v.is_empty())
        {
            let path = PathBuf::from(path);
            if !path.is_file() {
                return Err(ConfigError::MissingFile { path });
            }
            figment = figment.merge(Toml::file_exact(&path));
        }
        figment = figment.merge(env::EnvProvider::new(&vars, &Self::top_level_keys()));
        figment
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))
    }

    /// `SAMOKODER_*` variables in `vars` that name no setting (and are not `SAMOKODER_CONFIG` or
    /// a `SAMOKODER_TEST_*` variable of the test suites). They are ignored; the binary warns
    /// about them so a misspelt variable does not go unnoticed.
    pub fn unknown_env_vars<I, K, V>(vars: I) -> Vec<String>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let known = Self::top_level_keys();
        vars.into_iter()
            .map(|(k, _)| k.into())
            .filter(|name| env::is_unknown(name, &known))
            .collect()
    }

    /// The names of the top-level settings, read from the type itself so the list cannot drift.
    fn top_level_keys() -> Vec<String> {
        match serde_json::to_value(Self::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            // Serializing plain data into a JSON value cannot fail, and a struct is an object.
            _ => unreachable!("Config serializes to a JSON object"),
        }
    }

    /// The database URL: the configured one, or a SQLite file in the data directory (created on
    /// first use).
    pub fn database_url(&self) -> ConnectionUrl {
        match &self.database_url {
            Some(url) => url.clone(),
            None => ConnectionUrl::new(format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("samokoder.db").display()
            )),
        }
    }

    /// The CORS origins in effect, with the environment's default applied.
    pub fn cors_origins(&self) -> Vec<String> {
        match &self.cors.allowed_origins {
            Some(origins) => origins.clone(),
            None if self.env.is_production() => Vec::new(),
            None => vec![
                "http://localhost:5173".to_owned(),
                "http://localhost:3000".to_owned(),
            ],
        }
    }

    /// The log format in effect, with the environment's default applied.
    pub fn log_format(&self) -> LogFormat {
        self.log.format.unwrap_or(if self.env.is_production() {
            LogFormat::Json
        } else {
            LogFormat::Compact
        })
    }

    /// Where runs materialise their files: `runs.workdir`, or `<data_dir>/work`.
    pub fn run_workdir(&self) -> PathBuf {
        self.runs
            .workdir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("work"))
    }

    /// The package cache installs share: `runner.package_cache`, or
    /// `<data_dir>/package-cache`.
    pub fn package_cache_dir(&self) -> PathBuf {
        self.runner
            .package_cache
            .clone()
            .unwrap_or_else(|| self.data_dir.join("package-cache"))
    }

    /// The preview origin template: `preview.origin`, or `http://{id}.localhost:{port}`.
    pub fn preview_origin_template(&self) -> String {
        self.preview
            .origin
            .clone()
            .unwrap_or_else(|| "http://{id}.localhost:{port}".to_owned())
    }

    /// The sandbox mode in effect, with the environment's default applied.
    pub fn sandbox_mode(&self) -> SandboxMode {
        self.runner.sandbox.unwrap_or(if self.env.is_production() {
            SandboxMode::Require
        } else {
            SandboxMode::Auto
        })
    }

    /// The request time limit.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.request_timeout_secs)
    }

    /// Checks the whole configuration. Problems that make the server unsafe or unable to work
    /// are errors, each naming its setting (never its value); in production that includes
    /// missing, short and placeholder secrets. Lesser findings come back as warnings to log.
    pub fn validate(&self) -> Result<Vec<Warning>, ConfigError> {
        validate::validate(self)
    }

    /// The signing and encryption keys to run with: the configured ones, completed outside
    /// production by development keys generated once into `<data_dir>/dev-secrets.toml`
    /// (mode 0600) and reused on later starts. Call after [`Config::validate`].
    pub fn resolve_secrets(&self) -> Result<(Secrets, DevSecretsOutcome), ConfigError> {
        secrets::resolve(self)
    }

    /// Where development secrets are kept.
    pub fn dev_secrets_path(&self) -> PathBuf {
        secrets::dev_secrets_path(&self.data_dir)
    }

    /// Renders the configuration as TOML with every secret redacted, for operators.
    pub fn to_redacted_toml(&self) -> String {
        // The Serialize impls of secrets and URLs redact, so this cannot leak; a failure would
        // mean a type TOML cannot represent, which the unit tests rule out.
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

/// Serializes any secret as a fixed marker.
pub(crate) fn redact<S: serde::Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("[redacted]")
}

/// Serializes an optional secret as the fixed marker, or as nothing when it is unset.
fn redact_optional<S: serde::Serializer>(
    secret: &Option<SecretString>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => redact(secret, s),
        None => s.serialize_none(),
    }
}
