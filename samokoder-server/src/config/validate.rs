//! Checks on a loaded configuration. Findings name the setting and its variable, never a value.

use std::collections::HashSet;
use std::fmt;

use super::env::ENV_PREFIX;
use super::{Config, ConfigError, KeyedSecret};
use crate::generation::preview_origin::PreviewOrigin;

/// Minimum length of a JWT key, in bytes (HS256 wants at least the hash size).
const MIN_JWT_KEY_BYTES: usize = 32;
/// A key drawn from fewer distinct characters (or bytes) than this is not random.
const MIN_DISTINCT: usize = 8;

/// Fragments that mark a value copied from an example rather than generated. Compared after
/// lower-casing and dropping everything but letters and digits, so `CHANGE_ME`, `change-me` and
/// `ChangeMe` all match. Every fragment has six or more characters: a shorter one would turn up
/// in a random 64-character key often enough to refuse a good key.
const PLACEHOLDER_FRAGMENTS: &[&str] = &[
    "changeme",
    "changethis",
    "replaceme",
    "yoursecret",
    "secret",
    "placeholder",
    "example",
    "default",
    "password",
    "passw0rd",
    "insecure",
    "generate",
    "samokoder",
    "development",
    "qwerty",
    "letmein",
    "12345678",
    "abcdefgh",
];

/// A setting that makes the configuration unacceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The setting's path, e.g. `secrets.jwt_keys[kid=2026-01]`.
    pub setting: String,
    /// What is wrong, without the value.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(setting: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.setting,
            env_var_for(&self.setting),
            self.message
        )
    }
}

/// A finding worth logging that does not stop the server.
pub type Warning = Problem;

/// `secrets.jwt_keys[kid=x]` → `SAMOKODER_SECRETS__JWT_KEYS`.
fn env_var_for(setting: &str) -> String {
    let path = setting.split('[').next().unwrap_or(setting);
    format!(
        "{ENV_PREFIX}{}",
        path.replace('.', "__").to_ascii_uppercase()
    )
}

/// Formats problems one per line for [`ConfigError::Invalid`].
pub(super) fn bullet_list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("\n  - {p}")).collect()
}

pub(super) fn validate(config: &Config) -> Result<Vec<Warning>, ConfigError> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    let production = config.env.is_production();

    check_cors(config, &mut problems, &mut warnings);
    check_limits(config, &mut problems);
    check_redis(config, &mut problems);
    check_auth(config, &mut problems, &mut warnings);
    check_sandbox(config, &mut problems, &mut warnings);

    let secrets = &config.secrets;
    for (setting, keys) in [
        ("secrets.jwt_keys", &secrets.jwt_keys),
        ("secrets.secret_box_keys", &secrets.secret_box_keys),
    ] {
        check_key_ids(setting, keys, &mut problems);
        if production && keys.is_empty() {
            problems.push(Problem::new(
                setting,
                "missing: production never generates secrets; configure at least one key",
            ));
        }
    }
    // Weak secrets are fatal in production; elsewhere a configured weak key is only a warning,
    // since it protects nothing real (and a missing one is generated).
    let mut weak = Vec::new();
    for key in &secrets.jwt_keys {
        let setting = format!("secrets.jwt_keys[kid={}]", key.kid);
        if let Some(reason) = secret_weakness(key.secret.expose()) {
            weak.push(Problem::new(setting, reason));
        }
    }
    check_metrics(config, &mut problems, &mut weak, &mut warnings);
    for key in &secrets.secret_box_keys {
        let setting = format!("secrets.secret_box_keys[kid={}]", key.kid);
        match key.secret_box_bytes() {
            None => problems.push(Problem::new(
                setting,
                "not base64 of exactly 32 bytes (generate one with `openssl rand -base64 32`)",
            )),
            Some(bytes) => {
                if distinct(bytes.iter()) < MIN_DISTINCT {
                    weak.push(Problem::new(setting, "not random (too few distinct bytes)"));
                }
            }
        }
    }
    // One value both signing tokens and encrypting data was a flaw of the original (B18).
    for jwt in &secrets.jwt_keys {
        if secrets
            .secret_box_keys
            .iter()
            .any(|b| b.secret == jwt.secret)
        {
            weak.push(Problem::new(
                format!("secrets.jwt_keys[kid={}]", jwt.kid),
                "the same value is also a secret-box key; use independent keys",
            ));
        }
    }

    if production {
        problems.extend(weak);
    } else {
        warnings.extend(weak);
    }

    if !config.rate_limit.enabled && production {
        warnings.push(Problem::new(
            "rate_limit.enabled",
            "rate limiting is off in production",
        ));
    }
    for net in &config.trusted_proxies {
        if net.prefix_len() == 0 {
            warnings.push(Problem::new(
                "trusted_proxies",
                format!(
                    "{net} trusts X-Forwarded-For from anyone: clients can pick their own rate-limit key"
                ),
            ));
        }
    }

    if problems.is_empty() {
        Ok(warnings)
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// The scrape token: an empty one can never be presented (a mistake anywhere); a weak one is
/// fatal only in production; none at all in production closes `/metrics`, which is safe but
/// worth saying.
fn check_metrics(
    config: &Config,
    problems: &mut Vec<Problem>,
    weak: &mut Vec<Problem>,
    warnings: &mut Vec<Warning>,
) {
    match &config.metrics.token {
        Some(token) if token.expose().trim().is_empty() => problems.push(Problem::new(
            "metrics.token",
            "empty: no scraper could present it; unset it or generate one",
        )),
        Some(token) => {
            if let Some(reason) = secret_weakness(token.expose()) {
                weak.push(Problem::new("metrics.token", reason));
            }
        }
        None if config.env.is_production() => warnings.push(Problem::new(
            "metrics.token",
            "unset in production: /metrics refuses every scrape until a token is configured",
        )),
        None => {}
    }
}

/// Why a generated secret (a signing key, a token) is unfit for production, if it is.
fn secret_weakness(value: &str) -> Option<&'static str> {
    if value.trim().is_empty() {
        return Some("empty");
    }
    if value.len() < MIN_JWT_KEY_BYTES {
        return Some("shorter than 32 bytes (generate one with `openssl rand -base64 48`)");
    }
    if is_placeholder(value) {
        return Some("looks like a placeholder or example value, not a generated key");
    }
    if distinct(value.bytes()) < MIN_DISTINCT {
        return Some("not random (too few distinct characters)");
    }
    None
}

/// Whether `value` contains a known placeholder fragment.
pub(crate) fn is_placeholder(value: &str) -> bool {
    let normalized: String = value
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    PLACEHOLDER_FRAGMENTS
        .iter()
        .any(|fragment| normalized.contains(fragment))
}

fn distinct<'a, T: Eq + std::hash::Hash + Copy + 'a>(items: impl IntoIterator<Item = T>) -> usize {
    items.into_iter().collect::<HashSet<T>>().len()
}

fn check_key_ids(setting: &str, keys: &[KeyedSecret], problems: &mut Vec<Problem>) {
    let mut seen = HashSet::new();
    for key in keys {
        // The rule of samokoder-auth's keyrings, which put the id in every token and ciphertext.
        let valid = !key.kid.is_empty()
            && key.kid.len() <= 32
            && key
                .kid
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
        if !valid {
            problems.push(Problem::new(
                setting,
                "a key id must be 1-32 characters of letters, digits, '_' or '-'",
            ));
        } else if !seen.insert(key.kid.as_str()) {
            problems.push(Problem::new(
                format!("{setting}[kid={}]", key.kid),
                "key id used twice",
            ));
        }
    }
}

fn check_cors(config: &Config, problems: &mut Vec<Problem>, warnings: &mut Vec<Warning>) {
    const SETTING: &str = "cors.allowed_origins";
    for origin in config.cors_origins() {
        if origin == "*" || origin == "null" {
            problems.push(Problem::new(
                SETTING,
                format!(
                    "`{origin}` cannot be allowed: credentials (cookies) are allowed, so every origin must be listed"
                ),
            ));
            continue;
        }
        let Some((scheme, host)) = origin.split_once("://") else {
            problems.push(Problem::new(
                SETTING,
                format!("`{origin}` is not an origin like https://app.example.com"),
            ));
            continue;
        };
        let well_formed = matches!(scheme, "http" | "https")
            && !host.is_empty()
            && !host.contains(['/', '?', '#', '*', ' '])
            && http::HeaderValue::from_str(&origin).is_ok();
        if !well_formed {
            problems.push(Problem::new(
                SETTING,
                format!(
                    "`{origin}` is not an origin like https://app.example.com (no path, no trailing slash, no wildcard)"
                ),
            ));
        } else if config.env.is_production()
            && scheme == "http"
            && !host.starts_with("localhost")
            && !host.starts_with("127.0.0.1")
        {
            warnings.push(Problem::new(
                SETTING,
                format!("`{origin}` is plain http in production; cookies will not be Secure there"),
            ));
        }
    }
}

fn check_limits(config: &Config, problems: &mut Vec<Problem>) {
    let rate = &config.rate_limit;
    if rate.enabled {
        for (setting, value) in [
            ("rate_limit.auth_per_minute", rate.auth_per_minute),
            ("rate_limit.general_per_minute", rate.general_per_minute),
        ] {
            if value == 0 {
                problems.push(Problem::new(
                    setting,
                    "must be at least 1 (set rate_limit.enabled = false to switch limits off)",
                ));
            }
        }
        if rate.backend_timeout_ms == 0 {
            problems.push(Problem::new(
                "rate_limit.backend_timeout_ms",
                "must be at least 1",
            ));
        }
    }
    if config.workers.lease_secs < 3 {
        // A worker renews its lease every third of it, so a shorter lease would need
        // heartbeats more often than once a second.
        problems.push(Problem::new("workers.lease_secs", "must be at least 3"));
    }
    let limits = &config.limits;
    for (setting, value) in [
        ("limits.auth_body_bytes", limits.auth_body_bytes as u64),
        ("limits.body_bytes", limits.body_bytes as u64),
        ("limits.request_timeout_secs", limits.request_timeout_secs),
        ("health.check_timeout_ms", config.health.check_timeout_ms),
        (
            "workers.max_attempts",
            u64::from(config.workers.max_attempts),
        ),
        ("runs.max_steps", config.runs.max_steps),
        ("preview.max_per_user", config.preview.max_per_user as u64),
        (
            "preview.idle_timeout_secs",
            config.preview.idle_timeout_secs,
        ),
        (
            "preview.max_lifetime_secs",
            config.preview.max_lifetime_secs,
        ),
    ] {
        if value == 0 {
            problems.push(Problem::new(setting, "must be at least 1"));
        }
    }
}

fn check_auth(config: &Config, problems: &mut Vec<Problem>, warnings: &mut Vec<Warning>) {
    let auth = &config.auth;
    if auth.access_ttl_secs < 60 {
        problems.push(Problem::new(
            "auth.access_ttl_secs",
            "must be at least 60 seconds",
        ));
    }
    if auth.refresh_ttl_secs <= auth.access_ttl_secs {
        problems.push(Problem::new(
            "auth.refresh_ttl_secs",
            "must be longer than auth.access_ttl_secs",
        ));
    }
    let params = auth.password_hash.params();
    if let Err(error) = params.validate() {
        // Test suites hash thousands of passwords; only they may trade strength for speed (as
        // long as argon2 itself accepts the parameters).
        let weak_but_usable = config.env == super::Environment::Test
            && samokoder_auth::hashing::PasswordHasher::dangerous_with_weak_params(params).is_ok();
        if weak_but_usable {
            warnings.push(Problem::new(
                "auth.password_hash",
                "below the OWASP minimum (accepted because env = test)",
            ));
        } else {
            problems.push(Problem::new("auth.password_hash", error.to_string()));
        }
    }
    if let Err(error) = auth.lockout.policy().validate() {
        problems.push(Problem::new("auth.lockout", error.to_string()));
    }
    if config.database.max_connections == 0 {
        problems.push(Problem::new(
            "database.max_connections",
            "must be at least 1",
        ));
    }
    if config.database.acquire_timeout_ms == 0 {
        problems.push(Problem::new(
            "database.acquire_timeout_ms",
            "must be at least 1",
        ));
    }
    if config.env.is_production() && auth.cookies.secure == Some(false) {
        warnings.push(Problem::new(
            "auth.cookies.secure",
            "session cookies without Secure in production can leak over plain HTTP",
        ));
    }
}

fn check_sandbox(config: &Config, problems: &mut Vec<Problem>, warnings: &mut Vec<Warning>) {
    if config.preview.enabled {
        // The listener's port is known once it is bound; any port checks the template.
        if let Err(why) = PreviewOrigin::parse(&config.preview_origin_template(), 1) {
            problems.push(Problem::new("preview.origin", why));
        }
        if config.env.is_production() && config.preview.origin.is_none() {
            warnings.push(Problem::new(
                "preview.origin",
                "unset: previews are reachable only on this machine (http://{id}.localhost); set a wildcard origin that reaches the preview listener",
            ));
        }
    }
    let policy = samokoder_core::runner::EgressPolicy {
        allowed_hosts: config.runner.egress_hosts.clone().unwrap_or_default(),
        allowed_private_networks: Vec::new(),
    };
    if let Err(error) = policy.compile() {
        problems.push(Problem::new("runner.egress_hosts", error.to_string()));
    }
}

fn check_redis(config: &Config, problems: &mut Vec<Problem>) {
    if let Some(url) = &config.redis_url {
        // Parsing does not connect. The parser's message may quote the URL, so it is dropped.
        if redis::Client::open(url.expose()).is_err() {
            problems.push(Problem::new(
                "redis_url",
                "not a valid Redis URL (redis://[:password@]host[:port][/db])",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_placeholders_in_any_spelling() {
        for value in [
            "CHANGE_ME_GENERATE_RANDOM_KEY_64_CHARS_MIN",
            "change-me-please-this-is-long-enough",
            "your-secret-key-here-0123456789abcdef",
            "my-super-secret-jwt-signing-key-for-prod",
        ] {
            assert!(is_placeholder(value), "{value}");
        }
        assert!(!is_placeholder(
            "q8Zx0VbN3k_TyW7pRm2LcJ4hFa9sDe1GuKo5YiXtBnQvMwPzAr6S"
        ));
    }

    #[test]
    fn names_the_variable_of_a_setting() {
        assert_eq!(
            env_var_for("secrets.jwt_keys[kid=a]"),
            "SAMOKODER_SECRETS__JWT_KEYS"
        );
        assert_eq!(env_var_for("redis_url"), "SAMOKODER_REDIS_URL");
    }
}
