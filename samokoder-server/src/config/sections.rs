//! The settings of the store, the authentication services and the LLM layer.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use samokoder_auth::cookies::CookieConfig;
use samokoder_auth::hashing::HashParams;
use samokoder_auth::lockout::{LockoutLimit, LockoutPolicy};
use samokoder_core::llm::LlmConfig;
use samokoder_store::BackendKind;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::Environment;

/// Which storage backend opens the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreBackend {
    /// SQLite through sqlx (`sqlite:` URLs).
    SqlxSqlite,
    /// PostgreSQL through sqlx.
    SqlxPostgres,
    /// PostgreSQL through diesel-async.
    DieselPostgres,
}

impl StoreBackend {
    /// The store crate's name for it.
    pub fn kind(self) -> BackendKind {
        match self {
            Self::SqlxSqlite => BackendKind::SqlxSqlite,
            Self::SqlxPostgres => BackendKind::SqlxPostgres,
            Self::DieselPostgres => BackendKind::DieselPostgres,
        }
    }
}

/// The database connection pool and migrations. (The URL itself is `database_url`.)
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// The backend; unset picks by the URL's scheme (`sqlite:` → sqlx-sqlite, `postgres:` →
    /// sqlx-postgres). Set `diesel-postgres` to use diesel-async for PostgreSQL.
    /// Env: `SAMOKODER_DATABASE__BACKEND`.
    pub backend: Option<StoreBackend>,
    /// Most connections in the pool. Env: `SAMOKODER_DATABASE__MAX_CONNECTIONS`.
    pub max_connections: u32,
    /// How long a request waits for a free connection before failing with 503, in
    /// milliseconds. Env: `SAMOKODER_DATABASE__ACQUIRE_TIMEOUT_MS`.
    pub acquire_timeout_ms: u64,
    /// Apply pending migrations when the server starts (`serve`). Turn off when deployments
    /// run `samokoder-server migrate` as a separate step. Env:
    /// `SAMOKODER_DATABASE__MIGRATE_ON_START`.
    pub migrate_on_start: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            backend: None,
            max_connections: 8,
            acquire_timeout_ms: 10_000,
            migrate_on_start: true,
        }
    }
}

impl DatabaseConfig {
    /// The acquire timeout.
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }
}

/// Sessions, passwords, lockout and cookies.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Lifetime of access tokens, in seconds (the original's 15 minutes by default).
    /// Env: `SAMOKODER_AUTH__ACCESS_TTL_SECS`.
    pub access_ttl_secs: u64,
    /// Lifetime of refresh tokens, in seconds (7 days by default).
    /// Env: `SAMOKODER_AUTH__REFRESH_TTL_SECS`.
    pub refresh_ttl_secs: u64,
    /// argon2id cost of new password hashes.
    pub password_hash: PasswordHashConfig,
    /// When repeated failed logins lock an account.
    pub lockout: LockoutConfig,
    /// The `access_token` and `refresh_token` cookies.
    pub cookies: CookieSettings,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_ttl_secs: samokoder_auth::tokens::DEFAULT_ACCESS_TTL_SECONDS,
            refresh_ttl_secs: samokoder_auth::tokens::DEFAULT_REFRESH_TTL_SECONDS,
            password_hash: PasswordHashConfig::default(),
            lockout: LockoutConfig::default(),
            cookies: CookieSettings::default(),
        }
    }
}

/// argon2id parameters. Values below OWASP's minimum are refused, except with `env = "test"`,
/// where test suites use tiny ones to stay fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordHashConfig {
    /// Memory per hash in KiB. Env: `SAMOKODER_AUTH__PASSWORD_HASH__MEMORY_KIB`.
    pub memory_kib: u32,
    /// Passes. Env: `SAMOKODER_AUTH__PASSWORD_HASH__ITERATIONS`.
    pub iterations: u32,
    /// Lanes. Env: `SAMOKODER_AUTH__PASSWORD_HASH__PARALLELISM`.
    pub parallelism: u32,
}

impl Default for PasswordHashConfig {
    fn default() -> Self {
        let params = HashParams::OWASP_MINIMUM;
        Self {
            memory_kib: params.memory_kib,
            iterations: params.iterations,
            parallelism: params.parallelism,
        }
    }
}

impl PasswordHashConfig {
    /// The parameters in `samokoder-auth`'s terms.
    pub fn params(&self) -> HashParams {
        HashParams {
            memory_kib: self.memory_kib,
            iterations: self.iterations,
            parallelism: self.parallelism,
        }
    }

    /// Tiny parameters for test suites (only accepted with `env = "test"`).
    pub fn fast_for_tests() -> Self {
        Self {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        }
    }
}

/// The lockout: a sliding window per account and client address, and a higher ceiling per
/// account from all addresses together (so a stranger cannot lock the owner out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LockoutConfig {
    /// Failures from one address that lock the account for that address.
    /// Env: `SAMOKODER_AUTH__LOCKOUT__PER_CLIENT_MAX_FAILURES`.
    pub per_client_max_failures: u32,
    /// The window of the per-address limit, in seconds.
    /// Env: `SAMOKODER_AUTH__LOCKOUT__PER_CLIENT_WINDOW_SECS`.
    pub per_client_window_secs: u64,
    /// Failures from all addresses that lock the account everywhere.
    /// Env: `SAMOKODER_AUTH__LOCKOUT__PER_ACCOUNT_MAX_FAILURES`.
    pub per_account_max_failures: u32,
    /// The window of the account-wide limit, in seconds.
    /// Env: `SAMOKODER_AUTH__LOCKOUT__PER_ACCOUNT_WINDOW_SECS`.
    pub per_account_window_secs: u64,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        let policy = LockoutPolicy::default();
        Self {
            per_client_max_failures: policy.per_client.max_failures,
            per_client_window_secs: policy.per_client.window_seconds,
            per_account_max_failures: policy.per_account.max_failures,
            per_account_window_secs: policy.per_account.window_seconds,
        }
    }
}

impl LockoutConfig {
    /// The policy in `samokoder-auth`'s terms.
    pub fn policy(&self) -> LockoutPolicy {
        LockoutPolicy {
            per_client: LockoutLimit {
                max_failures: self.per_client_max_failures,
                window_seconds: self.per_client_window_secs,
            },
            per_account: LockoutLimit {
                max_failures: self.per_account_max_failures,
                window_seconds: self.per_account_window_secs,
            },
        }
    }
}

/// Cookie attributes. Both cookies are always `HttpOnly` and `SameSite=Strict`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CookieSettings {
    /// Add `Secure` (HTTPS only). Unset means on everywhere except `development` and `test`,
    /// which run over plain HTTP on localhost. Env: `SAMOKODER_AUTH__COOKIES__SECURE`.
    pub secure: Option<bool>,
    /// `Path` of the access cookie. Env: `SAMOKODER_AUTH__COOKIES__ACCESS_PATH`.
    pub access_path: String,
    /// `Path` of the refresh cookie; a deployment with one public base may narrow it to its
    /// auth routes (e.g. `/api/v1/auth`). Env: `SAMOKODER_AUTH__COOKIES__REFRESH_PATH`.
    pub refresh_path: String,
    /// `Domain`; unset keeps the cookies host-only. Env: `SAMOKODER_AUTH__COOKIES__DOMAIN`.
    pub domain: Option<String>,
}

impl Default for CookieSettings {
    fn default() -> Self {
        Self {
            secure: None,
            access_path: "/".to_owned(),
            refresh_path: "/".to_owned(),
            domain: None,
        }
    }
}

impl CookieSettings {
    /// The cookie attributes in effect in `env`.
    pub fn cookie_config(&self, env: Environment) -> CookieConfig {
        let secure = self.secure.unwrap_or(match env {
            Environment::Production => true,
            Environment::Development | Environment::Test => false,
        });
        CookieConfig {
            secure,
            access_path: self.access_path.clone(),
            refresh_path: self.refresh_path.clone(),
            domain: self.domain.clone(),
        }
    }
}

/// The LLM layer's configuration (`llm`): providers with their keys, base URLs and models,
/// per-role routes, prices, and the hosts users' own base URLs may point at. See
/// `samokoder_core::llm::LlmConfig`; e.g. `SAMOKODER_LLM__OPENAI__API_KEY=sk-...`,
/// `SAMOKODER_LLM__ALLOWED_BASE_URL_HOSTS=openrouter.ai`.
///
/// Printing it (the `config` command) shows which providers are set up and never their keys.
#[derive(Debug, Clone, Default)]
pub struct LlmSettings(pub LlmConfig);

impl<'de> Deserialize<'de> for LlmSettings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        LlmConfig::deserialize(deserializer).map(Self)
    }
}

impl Serialize for LlmSettings {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let config = &self.0;
        let mut out = Map::new();
        let hosts: Vec<Value> = config
            .allowed_base_url_hosts
            .iter()
            .cloned()
            .map(Value::String)
            .collect();
        out.insert("allowed_base_url_hosts".into(), Value::Array(hosts));
        if !config.agents.is_empty() {
            let agents: Map<String, Value> = config
                .agents
                .iter()
                .map(|(role, route)| {
                    let mut entry = Map::new();
                    put(&mut entry, "provider", route.provider.clone());
                    put(&mut entry, "model", route.model.clone());
                    (role.clone(), Value::Object(entry))
                })
                .collect();
            out.insert("agents".into(), Value::Object(agents));
        }
        let providers: BTreeMap<&String, Value> = config
            .providers
            .iter()
            .map(|(name, provider)| {
                let mut entry = Map::new();
                put(&mut entry, "base_url", provider.base_url.clone());
                put(&mut entry, "model", provider.model.clone());
                if provider.api_key.as_ref().is_some_and(|key| !key.is_empty()) {
                    entry.insert("api_key".into(), Value::String("[redacted]".into()));
                }
                if !provider.models.is_empty() {
                    let models = provider.models.keys().cloned().map(Value::String).collect();
                    entry.insert("models".into(), Value::Array(models));
                }
                (name, Value::Object(entry))
            })
            .collect();
        for (name, entry) in providers {
            out.insert(name.clone(), entry);
        }
        Value::Object(out).serialize(serializer)
    }
}

/// Inserts `value` under `key` when it is set (TOML has no null).
fn put(map: &mut Map<String, Value>, key: &str, value: Option<String>) {
    if let Some(value) = value {
        map.insert(key.to_owned(), Value::String(value));
    }
}

impl fmt::Display for LlmSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.providers.keys().map(String::as_str).collect();
        write!(f, "providers: {}", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llm_settings_print_without_keys() {
        let settings: LlmSettings = serde_json::from_value(serde_json::json!({
            "openai": {"api_key": "sk-very-secret-deployment-key", "model": "gpt-4o-mini"},
            "agents": {"default": {"provider": "openai"}},
        }))
        .unwrap();
        let printed = toml::to_string(&settings).unwrap();
        assert!(!printed.contains("sk-very-secret"), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
        assert!(printed.contains("gpt-4o-mini"), "{printed}");
    }

    #[test]
    fn cookies_are_secure_in_production_only_by_default() {
        let settings = CookieSettings::default();
        assert!(settings.cookie_config(Environment::Production).secure);
        assert!(!settings.cookie_config(Environment::Development).secure);
        assert!(!settings.cookie_config(Environment::Test).secure);
        let forced = CookieSettings {
            secure: Some(true),
            ..CookieSettings::default()
        };
        assert!(forced.cookie_config(Environment::Test).secure);
    }

    #[test]
    fn defaults_match_the_auth_crate() {
        assert_eq!(
            AuthConfig::default().lockout.policy(),
            LockoutPolicy::default()
        );
        assert_eq!(
            PasswordHashConfig::default().params(),
            HashParams::OWASP_MINIMUM
        );
    }
}
